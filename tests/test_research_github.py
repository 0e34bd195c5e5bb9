"""GitHubSource through the real PyGithub against a local ReplayServer replaying recorded GitHub responses
(PyGithub's own ReplayData, tests/fixtures/github) plus a few scripted ones shaped like real GitHub JSON."""

from __future__ import annotations

import copy
import json
import socket
import time

import pytest

from research_agent.research.github_source import GitHubSource, UNAUTHENTICATED, is_performance
from research_agent.research.http import Http

from .replay_github import HeaderServer, load, serve
from .servers import Reply

SEARCH = "pygithub_Search.testSearchRepos.txt"
NO_RESULTS = "pygithub_Search.testSearchReposWithNoResults.txt"
REPO_2025 = "pygithub_Repository.setUp.txt"
PULLS = "pygithub_Repository.testGetPullsWithArguments.txt"
NOT_FOUND = "pygithub_Exceptions.testUnknownObject.txt"
RATE_LIMITED = "pygithub_SpecificExceptions.testRateLimitExceeded.txt"
ABUSE = "pygithub_SpecificExceptions.testAuthenticatedRateLimitExceeded.txt"
QUERY = "github language:Python"  # the recorded search: sort=stars, order=desc
JSON = {"Content-Type": "application/json; charset=utf-8"}


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("RESEARCH_AGENT_GITHUB_URL", raising=False)


@pytest.fixture
def server():
    with HeaderServer() as srv:
        yield srv


def source(server, tmp_path, **kwargs) -> GitHubSource:
    http_kwargs = {key: kwargs.pop(key) for key in ("offline", "retries") if key in kwargs}
    return GitHubSource(Http(cache=tmp_path / "cache", **http_kwargs), endpoint=server.url, **kwargs)


def recorded(name: str, index: int = 0):
    return load(name)[index]


def search_items():
    return recorded(SEARCH, 0).json()["items"] + recorded(SEARCH, 1).json()["items"]


# ----- search --------------------------------------------------------------------------------------


def test_search_repositories_across_pages(server, tmp_path):
    serve(server, SEARCH)
    src = source(server, tmp_path)
    items = src.search(QUERY, 35)
    expected = search_items()[:35]
    assert [item.id for item in items] == [f"github:{repo['full_name']}" for repo in expected]
    first, raw = items[0], expected[0]
    assert first.kind == "repo" and first.source == "github"
    assert first.title == f"{raw['full_name']}: {raw['description']}"
    assert first.url == raw["html_url"] and first.text == raw["description"]
    assert first.signals == {"stars": raw["stargazers_count"], "updated": raw["pushed_at"][:10]}
    assert first.meta["clone_url"] == raw["clone_url"] and first.meta["default_branch"] == raw["default_branch"]
    assert first.meta["language"] == raw["language"] and first.meta["topics"] == [] and first.meta["query"] == QUERY
    # two pages (the second through the rewritten `link` header), no request to complete an item
    assert [path.split("?")[0] for _, path in server.requests] == ["/search/repositories"] * 2
    assert "page=2" in server.requests[1][1]


def test_search_item_with_topics(server, tmp_path):
    repo = recorded(REPO_2025)
    body = json.dumps({"total_count": 1, "incomplete_results": False, "items": [repo.json()]})
    server.add("GET", "/search/repositories", Reply(200, body.replace("https://api.github.com", server.url), JSON),
               query={"q": "typed github api"})
    [item] = source(server, tmp_path).search("typed github api", 5)
    raw = repo.json()
    assert item.id == "github:PyGithub/PyGithub"
    assert item.signals == {"stars": raw["stargazers_count"], "updated": "2024-12-19"}
    assert item.meta["topics"] == raw["topics"] == ["github", "github-api", "pygithub", "python"]
    assert item.text == "Typed interactions with the GitHub API v3\nTopics: github, github-api, pygithub, python"
    assert server.count == 1


def test_search_with_no_results(server, tmp_path):
    serve(server, NO_RESULTS)  # recorded with per_page=1
    src = source(server, tmp_path)
    assert src.search("doesnotexist", 1) == []
    assert server.count == 1 and src.notices == [UNAUTHENTICATED]


# ----- pulls ---------------------------------------------------------------------------------------


def test_recorded_pulls_none_speaks_of_performance(server, tmp_path):
    serve(server, PULLS)
    pulls = recorded(PULLS).json()
    merged = [pull for pull in pulls if pull["merged_at"]]
    assert merged and not any(is_performance(pull["title"], pull["body"]) for pull in merged)
    assert source(server, tmp_path).pulls("PyGithub/PyGithub", 5) == []
    assert server.requests == [("GET", "/repos/PyGithub/PyGithub/pulls?per_page=100&state=closed")]


def scripted_pulls(server) -> list[dict]:
    """The recorded PR list, edited: the real shape, with titles, labels and bodies to match or not."""
    template = recorded(PULLS).json()[0]

    def pull(number, title, body="", labels=(), merged=True):
        data = copy.deepcopy(template)
        data.update(number=number, title=title, body=body, html_url=f"https://github.com/o/r/pull/{number}",
                    labels=[{"name": name} for name in labels], merge_commit_sha=f"{number:040d}",
                    merged_at="2024-03-0%dT10:00:00Z" % (number % 9 + 1) if merged else None)
        data["head"]["sha"] = f"{number:x}" * 8
        return data

    pulls = [
        pull(101, "Speed up pagination"),
        pull(102, "Faster JSON parsing", merged=False),  # closed, not merged
        pull(103, "Rework the requester", labels=["performance"]),
        pull(104, "Connection reuse", body="This cuts the latency of each call. $(rm -rf ~) `reboot`"),
        pull(105, "Use perfect hashing for docs", body="Prefetch nothing; the cachet of it."),  # no whole word
        pull(106, "Add docs", body="x" * 10),
        pull(107, "Vectorise the loop", body="y" * 9000),
    ]
    server.add("GET", "/repos/o/r/pulls",
               Reply(200, json.dumps(pulls).replace("https://api.github.com", server.url), JSON),
               query={"state": "closed"})
    return pulls


def test_pulls_merged_and_about_performance(server, tmp_path):
    pulls = {pull["number"]: pull for pull in scripted_pulls(server)}
    items = source(server, tmp_path).pulls("o/r", 10)
    assert [item.id for item in items] == ["github:o/r#101", "github:o/r#103", "github:o/r#104", "github:o/r#107"]
    first = items[0]
    assert first.kind == "pr" and first.title == "Speed up pagination" and first.url == "https://github.com/o/r/pull/101"
    assert first.signals == {"updated": pulls[101]["merged_at"][:10]}
    assert first.meta == {"number": 101, "merge_commit_sha": pulls[101]["merge_commit_sha"], "labels": [],
                          "base": pulls[101]["base"]["ref"], "head_sha": pulls[101]["head"]["sha"]}
    assert items[1].meta["labels"] == ["performance"]
    assert items[2].text == pulls[104]["body"]  # untrusted text, stored as it came
    assert len(items[3].text) == 4000
    assert server.count == 1


def test_pulls_stop_at_limit(server, tmp_path):
    scripted_pulls(server)
    assert [item.id for item in source(server, tmp_path).pulls("o/r", 2)] == ["github:o/r#101", "github:o/r#103"]


# ----- forks ---------------------------------------------------------------------------------------


def fork_json(url, owner, stars, created="2024-01-01T00:00:00Z", pushed="2024-06-01T00:00:00Z"):
    return {"id": abs(hash(owner)) % 10**8, "name": "PyGithub", "full_name": f"{owner}/PyGithub",
            "owner": {"login": owner, "type": "User"}, "private": False, "fork": True,
            "html_url": f"https://github.com/{owner}/PyGithub", "url": f"{url}/repos/{owner}/PyGithub",
            "description": f"{owner}'s fork", "clone_url": f"https://github.com/{owner}/PyGithub.git",
            "created_at": created, "updated_at": pushed, "pushed_at": pushed, "stargazers_count": stars,
            "language": "Python", "default_branch": "main", "topics": []}


def compare_json(url, owner, ahead, behind):
    return {"url": f"{url}/repos/PyGithub/PyGithub/compare/PyGithub:main...{owner}:main",
            "html_url": f"https://github.com/PyGithub/PyGithub/compare/PyGithub:main...{owner}:main",
            "status": "diverged" if ahead and behind else ("ahead" if ahead else "behind"),
            "ahead_by": ahead, "behind_by": behind, "total_commits": ahead, "commits": [], "files": []}


def script_forks(server):
    """The recorded 2025 PyGithub/PyGithub as upstream, five forks and their comparisons."""
    serve(server, REPO_2025)
    url = server.url
    forks = [fork_json(url, "dstar", 100, pushed="2024-01-01T00:00:00Z"),  # never pushed: ahead 0, no compare
             fork_json(url, "astar", 50), fork_json(url, "bahead", 5), fork_json(url, "cboth", 20),
             fork_json(url, "egone", 1)]
    server.add("GET", "/repos/PyGithub/PyGithub/forks", Reply(200, json.dumps(forks), JSON),
               query={"sort": "stargazers"})
    for owner, ahead, behind in [("astar", 0, 10), ("bahead", 12, 0), ("cboth", 3, 2)]:
        server.add("GET", f"/repos/PyGithub/PyGithub/compare/PyGithub%3Amain...{owner}%3Amain",
                   Reply(200, json.dumps(compare_json(url, owner, ahead, behind)), JSON))
    # egone's compare answers 404 (branch gone): its ahead_by stays unset


def test_forks_ranked_by_ahead_and_stars(server, tmp_path):
    script_forks(server)
    src = source(server, tmp_path)
    items = src.forks("PyGithub/PyGithub", 5)
    assert [item.id for item in items] == ["github:cboth/PyGithub", "github:bahead/PyGithub", "github:dstar/PyGithub",
                                           "github:astar/PyGithub", "github:egone/PyGithub"]
    assert [item.signals.get("ahead_by") for item in items] == [3, 12, 0, 0, None]
    assert [item.signals["stars"] for item in items] == [20, 5, 100, 50, 1]
    first = items[0]
    assert first.kind == "fork" and first.url == "https://github.com/cboth/PyGithub"
    assert first.meta["parent"] == "PyGithub/PyGithub" and first.meta["default_branch"] == "main"
    assert first.meta["clone_url"] == "https://github.com/cboth/PyGithub.git"
    assert first.signals["updated"] == "2024-06-01"
    assert "GitHub: ahead_by unknown for 1 fork(s) of PyGithub/PyGithub (compare failed)" in src.notices
    compares = [path for _, path in server.requests if "/compare/" in path]
    assert len(compares) == 4 and not any("dstar" in path for path in compares)
    assert src.forks("PyGithub/PyGithub", 2)[1].id == "github:bahead/PyGithub"


# ----- faults --------------------------------------------------------------------------------------


def test_rate_limited_long_reset_skips_without_waiting(server, tmp_path):
    limited = recorded(RATE_LIMITED, 1)  # 403 "API Rate Limit Exceeded", x-ratelimit-remaining: 0
    reset = int(time.time()) + 3600
    server.add("GET", "/search/repositories", limited.reply(server.url, x_ratelimit_reset=str(reset)))
    src = source(server, tmp_path)
    start = time.monotonic()
    assert src.search(QUERY, 5) == []
    assert time.monotonic() - start < 5
    lifts = {time.strftime("%H:%M", time.gmtime(reset + extra)) for extra in (0, 1)}
    assert any(src.notices == [UNAUTHENTICATED, f"GitHub: rate limited until {hhmm} UTC — skipped"] for hhmm in lifts)
    count = server.count
    assert src.pulls("o/r", 5) == [] and src.forks("o/r", 5) == []  # GitHub stays skipped: no request
    assert server.count == count == 1


def test_rate_limited_short_reset_waits_and_retries(server, tmp_path):
    limited = recorded(RATE_LIMITED, 1)
    page1, page2 = load(SEARCH)
    server.add("GET", "/search/repositories",
               limited.reply(server.url, x_ratelimit_reset=str(int(time.time()) + 1)), page1.reply(server.url))
    src = source(server, tmp_path)
    start = time.monotonic()
    items = src.search(QUERY, 3)
    assert [item.id for item in items] == [f"github:{repo['full_name']}" for repo in page1.json()["items"][:3]]
    assert 0.5 < time.monotonic() - start < 10
    assert server.count == 2 and not any("rate limited" in n for n in src.notices)


def test_abuse_limit_with_long_retry_after_skips(server, tmp_path):
    abuse = recorded(ABUSE, 1)  # 403 abuse detection, Retry-After: 60
    assert dict(abuse.headers)["Retry-After"] == "60"
    server.add("GET", "/search/repositories", abuse.reply(server.url))
    src = source(server, tmp_path, max_wait=1)
    start = time.monotonic()
    assert src.search(QUERY, 5) == []
    assert time.monotonic() - start < 5
    assert any(n.startswith("GitHub: rate limited until ") and n.endswith("— skipped") for n in src.notices)
    assert server.count == 1


def test_abuse_limit_with_short_retry_after_retries(server, tmp_path):
    abuse = recorded(ABUSE, 1)
    server.add("GET", "/search/repositories", abuse.reply(server.url, Retry_After="1"),
               recorded(SEARCH).reply(server.url))
    src = source(server, tmp_path, max_wait=5)
    assert len(src.search(QUERY, 2)) == 2 and server.count == 2


def test_named_repo_not_found(server, tmp_path):
    serve(server, NOT_FOUND)  # GET /repos/jacquev6/Xxx → 404 {"message":"Not Found"}
    server.add("GET", "/repos/jacquev6/Xxx/pulls", recorded(NOT_FOUND, 1).reply(server.url))
    src = source(server, tmp_path)
    assert src.forks("jacquev6/Xxx", 5) == []
    assert src.pulls("jacquev6/Xxx", 5) == []
    assert "GitHub: repository jacquev6/Xxx not found (404)" in src.notices
    assert src.notices.count("GitHub: repository jacquev6/Xxx not found (404)") == 1


def test_named_repository(server, tmp_path):
    serve(server, REPO_2025, NOT_FOUND)
    src = source(server, tmp_path)
    [item] = src.repo("PyGithub/PyGithub")
    assert item.id == "github:PyGithub/PyGithub" and item.kind == "competitor"
    assert item.meta["clone_url"] == "https://github.com/PyGithub/PyGithub.git" and item.signals["stars"] == 7122
    assert src.repo("jacquev6/Xxx") == []
    assert src.notices[-1] == "GitHub: repository jacquev6/Xxx not found (404)"


def test_unreachable_server_is_a_notice(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = GitHubSource(Http(cache=tmp_path, retries=0, timeout=2), endpoint=f"http://127.0.0.1:{port}")
    assert src.search(QUERY, 5) == [] and src.pulls("o/r", 5) == []
    assert any(n.startswith(f"GitHub: cannot reach http://127.0.0.1:{port} (") for n in src.notices)


# ----- token, endpoint ---------------------------------------------------------------------------------


def test_without_token_the_notice_is_said_once(server, tmp_path):
    serve(server, SEARCH, PULLS)
    src = GitHubSource(Http(cache=tmp_path), endpoint=server.url)  # no token argument, no GITHUB_TOKEN
    src.search(QUERY, 3)
    src.pulls("PyGithub/PyGithub", 3)
    src.search(QUERY, 5)
    assert src.notices == [UNAUTHENTICATED]
    assert all("Authorization" not in headers for headers in server.request_headers)


def test_token_is_sent_and_never_stored(server, tmp_path, monkeypatch):
    secret = "ghp_0123456789abcdefSECRET"
    serve(server, SEARCH)
    monkeypatch.setenv("GITHUB_TOKEN", secret)
    src = GitHubSource(Http(cache=tmp_path), endpoint=server.url)
    assert len(src.search(QUERY, 3)) == 3
    assert server.request_headers[0]["Authorization"] == f"token {secret}"
    assert src.notices == [] and secret not in repr(src)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert files and not any(secret.encode() in path.read_bytes() for path in files)


def test_endpoint_from_environment_and_enterprise_prefix(server, tmp_path, monkeypatch):
    serve(server, SEARCH, prefix="/api/v3")  # GitHub Enterprise: https://host/api/v3
    monkeypatch.setenv("RESEARCH_AGENT_GITHUB_URL", server.url + "/api/v3")
    src = GitHubSource(Http(cache=tmp_path), token="")
    assert len(src.search(QUERY, 35)) == 35
    assert all(path.startswith("/api/v3/search/repositories?") for _, path in server.requests)


# ----- cache ---------------------------------------------------------------------------------------


def test_warm_cache_makes_no_request_and_offline_replays(server, tmp_path):
    serve(server, SEARCH)
    script_forks(server)
    scripted_pulls(server)

    def run(src):
        return ([item.to_dict() for item in src.search(QUERY, 35)],
                [item.to_dict() for item in src.forks("PyGithub/PyGithub", 5)],
                [item.to_dict() for item in src.pulls("o/r", 5)])

    first = run(source(server, tmp_path))
    count = server.count
    assert count > 0 and all(first)
    assert run(source(server, tmp_path)) == first
    assert server.count == count  # warm: zero new requests
    offline = source(server, tmp_path, offline=True)
    assert run(offline) == first and server.count == count
    assert not any("offline" in n for n in offline.notices)


def test_offline_with_empty_cache(server, tmp_path):
    serve(server, SEARCH)
    src = source(server, tmp_path, offline=True)
    assert src.search(QUERY, 5) == []
    assert src.forks("PyGithub/PyGithub", 5) == []
    assert src.notices == [f"GitHub: 'search {QUERY}' not in the cache (offline) — skipped",
                           "GitHub: 'forks of PyGithub/PyGithub' not in the cache (offline) — skipped"]
    assert server.count == 0
