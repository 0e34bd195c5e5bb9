"""GitHub through PyGithub: repositories matching a query, forks of the target, its performance PRs.

Every request goes through the shared requests-cache store (`Http.patched()`), so a repeated research
makes no request and `offline` answers only from the cache. Nothing here raises for GitHub being
unavailable: each method returns what it has (usually []) and adds a one-line notice to `notices`.

Rate limits: a 403/429 whose reset (`x-ratelimit-reset` with `x-ratelimit-remaining: 0`, or
`Retry-After`) is at most `max_wait` seconds away is waited out and the call retried once; a longer one
skips GitHub until the reset, with a notice. PyGithub's own rate-limit retry (which sleeps until the
reset, possibly for an hour) is disabled; only a small urllib3 retry for connection errors and 5xx
remains.

Everything fetched (descriptions, topics, PR titles and bodies) is untrusted data: stored and quoted,
never executed. The token is handed to PyGithub (`github.Auth.Token`) and never logged or stored;
requests-cache leaves the Authorization header out of cache keys and stored requests.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable

import github
import requests
from github.GithubException import GithubException
from github.GithubObject import GithubObject
from github.PaginatedList import PaginatedList
from github.Repository import Repository
from urllib3.util.retry import Retry

from ..retry import HTTP_RETRY_STATUSES
from .base import SourceItem
from .http import Http

DEFAULT_URL = "https://api.github.com"
URL_ENV = "RESEARCH_AGENT_GITHUB_URL"
TOKEN_ENV = "GITHUB_TOKEN"

UNAUTHENTICATED = "GitHub: no GITHUB_TOKEN — unauthenticated rate limits apply (60 requests/hour)"

PULLS_SCANNED = 200  # merged-or-not closed PRs looked at, at most, per pulls() call
FORKS_LISTED = 100  # forks listed (one page, most starred first)
FORKS_COMPARED = 30  # compare requests per forks() call, at most
BODY_CHARS = 4000

# Words a performance PR uses in its title, labels or body (whole words, any case).
PERF_WORDS = re.compile(
    r"\b(?:perf|performance|faster|fastest|speed|speeds|speedup|speedups|speed[- ]up|sped up"
    r"|optimi[sz](?:e|es|ed|ing|ation|ations)|latency|throughput|simd|sse[0-9.]*|avx(?:2|-?512)?|neon"
    r"|vectori[sz](?:e|es|ed|ing|ation)|cach(?:e|es|ed|ing)|alloc|allocs|allocat(?:e|es|ed|ing|ion|ions|or|ors)"
    r"|benchmark|benchmarks|benchmarked|fast[- ]path|hot[- ]path|slow|slower|slowdown|bottleneck"
    r"|zero[- ]copy|memory usage|inlin(?:e|ed|ing))\b",
    re.IGNORECASE,
)


def is_performance(*texts: str | None) -> bool:
    return any(text and PERF_WORDS.search(text) for text in texts)


def _raw(obj: GithubObject) -> dict[str, Any]:
    """The JSON an object was built from, without PyGithub fetching the full object to complete it
    (a search item or list entry lacking a field would otherwise cost one request each)."""
    return GithubObject.raw_data.fget(obj) or {}  # type: ignore[attr-defined]


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)[:10] if value else ""


def _hhmm(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M UTC")


class GitHubSource:
    name = "github"
    search_sort = "stars"  # GitHub's search sort for repositories ("" = best match)

    def __init__(self, http: Http, endpoint: str | None = None, token: str | None = None,
                 max_wait: float = 30.0):
        """`endpoint`: the API base URL (PyGithub's `base_url`, e.g. `https://ghe.example/api/v3`),
        else $RESEARCH_AGENT_GITHUB_URL, else https://api.github.com. `token`: else $GITHUB_TOKEN;
        pass "" to force unauthenticated access."""
        self.http = http
        self.endpoint = (endpoint or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        if token is None:
            token = os.environ.get(TOKEN_ENV, "")
        self._auth = github.Auth.Token(token) if token else None
        self.max_wait = max_wait
        self.notices: list[str] = []
        self._sleep: Callable[[float], None] = time.sleep
        self._skip_until = 0.0  # rate limited: skip GitHub until then
        self._skip_notice = ""
        self._down = False  # a connection failed: skip GitHub for the rest of this run
        self._announced = False

    def __repr__(self) -> str:  # never shows the token
        return f"GitHubSource({self.endpoint!r}, authenticated={self._auth is not None})"

    # ----- the three queries -------------------------------------------------------------------

    def search(self, query: str, limit: int) -> list[SourceItem]:
        """Repositories matching `query` (GitHub search syntax), most starred first; no README."""
        if limit <= 0 or not query.strip():
            return []

        def run(gh: github.Github, out: list[SourceItem]) -> None:
            kwargs = {"sort": self.search_sort, "order": "desc"} if self.search_sort else {}
            for repo in itertools.islice(gh.search_repositories(query, **kwargs), limit):
                out.append(self._repo_item(_raw(repo), kind="repo", meta={"query": query}))

        return self._guarded(f"search {query}", run, per_page=min(limit, 100))

    def forks(self, repo: str, limit: int) -> list[SourceItem]:
        """Forks of `repo` (owner/name), ranked by (ahead of upstream at all, stars, commits ahead)."""
        if limit <= 0:
            return []

        def run(gh: github.Github, out: list[SourceItem]) -> None:
            upstream = gh.get_repo(repo).complete()
            up = _raw(upstream)
            parent = up.get("full_name") or repo
            up_owner = (up.get("owner") or {}).get("login") or parent.split("/")[0]
            up_branch = up.get("default_branch") or "main"
            listing = PaginatedList(Repository, upstream.requester, f"{upstream.url}/forks",
                                    {"sort": "stargazers", "per_page": 100})
            forks = [(fork, _raw(fork)) for fork in itertools.islice(listing, FORKS_LISTED)]
            ahead: dict[str, int | None] = {}
            # Compare only forks pushed to after they were made (the others hold no commit of their
            # own: ahead_by 0), most starred first, within a bounded number of requests.
            pushed = []
            for fork, data in forks:
                if data.get("pushed_at") and data.get("created_at") and data["pushed_at"] <= data["created_at"]:
                    ahead[data["full_name"]] = 0
                else:
                    pushed.append((fork, data))
            pushed.sort(key=lambda pair: (pair[1].get("stargazers_count") or 0, pair[1].get("pushed_at") or ""),
                        reverse=True)
            failed, waited, stop = 0, False, False
            for fork, data in pushed[:min(FORKS_COMPARED, max(3 * limit, 10))]:
                owner = (data.get("owner") or {}).get("login") or data["full_name"].split("/")[0]
                branch = data.get("default_branch") or up_branch
                for _ in range(2):
                    try:
                        comparison = upstream.compare(f"{up_owner}:{up_branch}", f"{owner}:{branch}")
                        ahead[data["full_name"]] = int(_raw(comparison.complete()).get("ahead_by"))
                        break
                    except (GithubException, TypeError, ValueError) as error:
                        wait = self._rate_wait(error) if isinstance(error, GithubException) else None
                        if wait is not None and not waited and wait <= self.max_wait:
                            waited = True  # one short wait per call, then retry this compare
                            self._sleep(wait)
                            continue
                        failed += 1
                        if wait is not None:  # no more compares now; keep what was gathered
                            self._rate_limited(error, waited=False)
                            stop = True
                        break
                if stop:
                    break
            if failed:
                self._notice(f"GitHub: ahead_by unknown for {failed} fork(s) of {parent} (compare failed)")
            items = []
            for _, data in forks:
                item = self._repo_item(data, kind="fork", meta={"parent": parent})
                if ahead.get(data["full_name"]) is not None:
                    item.signals["ahead_by"] = ahead[data["full_name"]]
                items.append(item)
            items.sort(key=lambda item: (item.signals.get("ahead_by", 0) > 0, item.signals.get("stars", 0),
                                         item.signals.get("ahead_by", 0)), reverse=True)
            out.extend(items[:limit])

        return self._guarded(f"forks of {repo}", run, target=repo, per_page=100)

    def repo(self, full_name: str, kind: str = "competitor") -> list[SourceItem]:
        """One named repository (owner/name), e.g. a competitor: [item], or [] with a notice."""

        def run(gh: github.Github, out: list[SourceItem]) -> None:
            out.append(self._repo_item(_raw(gh.get_repo(full_name).complete()), kind=kind, meta={}))

        return self._guarded(f"repository {full_name}", run, target=full_name)

    def pulls(self, repo: str, limit: int) -> list[SourceItem]:
        """`repo`'s merged PRs whose title, labels or body speak of performance (newest first)."""
        if limit <= 0:
            return []

        def run(gh: github.Github, out: list[SourceItem]) -> None:
            target = gh.get_repo(repo)  # lazy: no request
            for pull in itertools.islice(target.get_pulls(state="closed"), PULLS_SCANNED):
                data = _raw(pull)
                if not data.get("merged_at"):
                    continue
                labels = [label.get("name", "") for label in data.get("labels") or [] if isinstance(label, dict)]
                title, body = data.get("title") or "", data.get("body") or ""
                if not is_performance(title, body, *labels):
                    continue
                number = data.get("number")
                out.append(SourceItem(
                    id=f"github:{repo}#{number}", kind="pr", title=title, url=data.get("html_url") or "",
                    text=body[:BODY_CHARS], source=self.name, signals={"updated": _date(data["merged_at"])},
                    meta={"number": number, "merge_commit_sha": data.get("merge_commit_sha"), "labels": labels,
                          "base": (data.get("base") or {}).get("ref"),
                          "head_sha": (data.get("head") or {}).get("sha")}))
                if len(out) >= limit:
                    break

        return self._guarded(f"merged PRs of {repo}", run, target=repo, per_page=100)

    # ----- shared ------------------------------------------------------------------------------

    def _repo_item(self, data: dict, kind: str, meta: dict) -> SourceItem:
        full_name = data.get("full_name") or ""
        description = data.get("description") or ""
        topics = [str(topic) for topic in data.get("topics") or []]
        text = description + (f"\nTopics: {', '.join(topics)}" if topics else "")
        return SourceItem(
            id=f"github:{full_name}", kind=kind, title=f"{full_name}: {description}" if description else full_name,
            url=data.get("html_url") or "", text=text, source=self.name,
            signals={"stars": data.get("stargazers_count") or 0,
                     "updated": _date(data.get("pushed_at") or data.get("updated_at"))},
            meta={"clone_url": data.get("clone_url"), "default_branch": data.get("default_branch"),
                  "language": data.get("language"), "topics": topics, **meta})

    def _client(self, per_page: int) -> github.Github:
        retry = Retry(total=min(self.http.retries, 2), connect=min(self.http.retries, 2), read=0,
                      status=min(self.http.retries, 2), status_forcelist=sorted(HTTP_RETRY_STATUSES - {429}),  # 429: the rate-limit handling's
                      backoff_factor=self.http.backoff / 2, respect_retry_after_header=False,
                      raise_on_status=False)
        return github.Github(auth=self._auth, base_url=self.endpoint, timeout=max(1, int(self.http.timeout)),
                             per_page=per_page, retry=retry, seconds_between_requests=None,
                             seconds_between_writes=None, lazy=True)

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    def _guarded(self, what: str, run: Callable[[github.Github, list], None], target: str | None = None,
                 per_page: int = 30) -> list[SourceItem]:
        """Run one query; on a short rate limit wait and retry once; never raise for GitHub's faults.
        Returns what was gathered before a failure (e.g. the first pages of a search)."""
        if self._down:
            return []
        if self._skip_until > time.time():
            self._notice(self._skip_notice)
            return []
        if self._auth is None and not self._announced and not self.http.offline:
            self._announced = True
            self._notice(UNAUTHENTICATED)
        out: list[SourceItem] = []
        for attempt in range(2):
            out = []
            try:
                with self.http.patched():
                    gh = self._client(per_page)
                    try:
                        run(gh, out)
                    finally:
                        gh.close()
                return out
            except GithubException as error:
                if self.http.offline and error.status == 504:  # requests-cache's answer to a miss
                    self._notice(f"GitHub: '{what}' not in the cache (offline) — skipped")
                    return out
                if error.status == 404 and target:
                    self._notice(f"GitHub: repository {target} not found (404)")
                    return out
                if self._rate_wait(error) is not None:
                    if attempt == 0 and self._rate_limited(error, waited=True):
                        continue
                    if attempt == 1:
                        self._rate_limited(error, waited=False)
                    return out
                self._notice(f"GitHub: {what} failed (HTTP {error.status}: {_message(error)}) — skipped")
                return out
            except requests.RequestException as error:
                self._down = True
                self._notice(f"GitHub: cannot reach {self.endpoint} ({type(error).__name__}) — skipped")
                return out
        return out

    def _rate_wait(self, error: GithubException) -> float | None:
        """Seconds until a rate limit lifts (inf if unknown), or None if `error` is no rate limit."""
        if error.status not in (403, 429):
            return None
        headers = {str(key).lower(): value for key, value in (error.headers or {}).items()}
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return float("inf")
        if str(headers.get("x-ratelimit-remaining")) == "0":
            try:
                return max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 1.0
            except (KeyError, ValueError):
                return float("inf")
        if error.status == 429 or isinstance(error, github.RateLimitExceededException):
            return float("inf")  # secondary limit without a hint
        return None

    def _rate_limited(self, error: GithubException, waited: bool) -> bool:
        """Wait a short limit out (when `waited`) and return True; else skip GitHub until it lifts."""
        wait = self._rate_wait(error) or 0.0
        if waited and wait <= self.max_wait:
            self._sleep(wait)
            return True
        if wait == float("inf"):  # no hint when it lifts: skip GitHub for the rest of the hour
            self._skip_until = time.time() + 3600.0
            self._skip_notice = "GitHub: rate limited — skipped"
        else:
            self._skip_until = time.time() + wait
            self._skip_notice = f"GitHub: rate limited until {_hhmm(self._skip_until)} — skipped"
        self._notice(self._skip_notice)
        return False


def _message(error: GithubException) -> str:
    data = error.data if isinstance(error.data, dict) else {}
    return str(data.get("message") or error.message or "error")[:200]
