"""One cached HTTP session for every source.

requests-cache stores every response in SQLite (keyed by method, URL and body; max age 7 days by
default), so a second identical research makes zero network requests; `offline` answers only from
that cache. `arxiv` and `PyGithub` both use `requests`, so they share the session: arxiv by handing
it over, PyGithub through `requests_cache.enabled` while GitHub is queried.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import requests
import requests_cache

from ..retry import HTTP_RETRY_STATUSES, Transient, retry_after, retrying
from .base import SourceUnavailable

DEFAULT_MAX_AGE = timedelta(days=7)


def cache_dir() -> Path:
    """Where caches live: RESEARCH_AGENT_CACHE, else the platform's user cache folder."""
    override = os.environ.get("RESEARCH_AGENT_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("research-agent"))


class Http:
    def __init__(self, cache: Path | None = None, offline: bool = False, max_age: timedelta = DEFAULT_MAX_AGE,
                 retries: int = 3, backoff: float = 1.0, timeout: float = 30.0):
        self.cache_path = (cache or cache_dir()) / "http"
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        self.offline = offline
        self.max_age = max_age
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.session = self.new_session()
        self.network_requests = 0  # responses not served from the cache
        self._lock = threading.Lock()

    def cache_settings(self) -> dict:
        return dict(
            backend="sqlite",
            expire_after=self.max_age,
            allowable_methods=("GET", "POST"),
            allowable_codes=(200, 404),
            only_if_cached=self.offline,  # offline: a miss is a 504 from the cache, never a request
        )

    def new_session(self) -> requests_cache.CachedSession:
        return requests_cache.CachedSession(str(self.cache_path), **self.cache_settings())

    @contextmanager
    def patched(self):
        """Cache every `requests.Session` made inside (PyGithub makes its own)."""
        with requests_cache.enabled(str(self.cache_path), **self.cache_settings()):
            yield

    def count(self, response: requests.Response) -> None:
        if not getattr(response, "from_cache", False):
            with self._lock:
                self.network_requests += 1

    def request(self, method: str, url: str, what: str, **kwargs) -> requests.Response:
        """A request with retries (`retry.retrying`: backoff with jitter) on 429/5xx and network errors,
        honouring Retry-After (up to 60 s).

        Raises SourceUnavailable (naming `what`) when it gives up, or offline on a cache miss.
        """
        kwargs.setdefault("timeout", self.timeout)

        def attempt() -> requests.Response:
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.RequestException as error:
                raise Transient(type(error).__name__) from error
            self.count(response)
            if self.offline and response.status_code == 504:  # requests-cache's answer to a miss
                raise SourceUnavailable(f"{what}: not in the cache (offline)")
            if response.status_code in HTTP_RETRY_STATUSES:
                raise Transient(f"HTTP {response.status_code}", after=retry_after(response.headers), value=response)
            return response

        try:
            return retrying(what, attempts=self.retries + 1, base=self.backoff)(attempt)
        except Transient as gave_up:
            if gave_up.value is not None:
                raise SourceUnavailable(f"{what}: HTTP {gave_up.value.status_code} after {self.retries + 1} tries") from None
            raise SourceUnavailable(f"{what}: {gave_up.reason}") from None
