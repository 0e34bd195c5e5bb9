"""arXiv papers through the `arxiv` package, over the shared cached `Http` session.

The `arxiv.Client` does the paging and the Atom parsing; the fetching is ours:

- every page goes through `Http.request` (one requests-cache session for all sources, the offline
  switch, retries with backoff on 429/5xx and timeouts honouring Retry-After, the request counter);
  the client's own retries and delay are switched off (`num_retries=0`, `delay_seconds=0`) because
  its delay would sleep even before a response that comes from the cache;
- arXiv's API terms (one request every 3 seconds, one connection) are kept by a transport adapter
  mounted on the session for the endpoint: requests-cache only reaches the adapter for a request
  that really goes to the network, so a warm cache never waits. The throttle is one per host and
  per process, shared by every `ArxivSource` and thread: requests are sent one at a time, each at
  least `delay` seconds after the previous one finished;
- each page is screened before the client parses it: an entry without an arXiv id, a title or
  valid dates is replaced by a placeholder that is then dropped (logged) — so one malformed entry
  costs that entry, not the page, and the client's paging offsets stay right;
  arXiv's error feeds (HTTP 400 with an `Error` entry) become `SourceUnavailable` with arXiv's message.

Fetched titles and abstracts are untrusted data: stored as text, never evaluated.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from urllib.parse import urlsplit

import arxiv
import requests
from lxml import etree
from requests.adapters import HTTPAdapter

from ..retry import retrying
from .base import SourceItem, SourceUnavailable
from .http import Http

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://export.arxiv.org/api/query"
ENDPOINT_ENV = "RESEARCH_AGENT_ARXIV_URL"
MAX_PAGE_SIZE = 2000  # arXiv's limit per request

ATOM = "http://www.w3.org/2005/Atom"
NS = {"atom": ATOM, "arxiv": "http://arxiv.org/schemas/atom"}
ABS_ID = re.compile(r"arxiv\.org/abs/(?P<id>.+?)(?P<version>v\d+)?/?$")


# --- the throttle: one per host, per process --------------------------------------------------

class Throttle:
    """One request at a time, each starting at least `delay` seconds after the previous one ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_end: float | None = None  # time.monotonic() when the previous request finished

    @contextmanager
    def slot(self, delay: float):
        with self._lock:
            if self._last_end is not None:
                wait = self._last_end + delay - time.monotonic()
                if wait > 0:
                    logger.debug("arXiv throttle: sleeping %.2f s", wait)
                    time.sleep(wait)
            try:
                yield
            finally:
                self._last_end = time.monotonic()


_throttles: dict[str, Throttle] = {}
_throttles_lock = threading.Lock()
_current = threading.local()  # the delay asked for by the ArxivSource sending on this thread


def throttle_for(host: str) -> Throttle:
    with _throttles_lock:
        return _throttles.setdefault(host.lower(), Throttle())


def reset_throttles() -> None:
    """Forget every host's last request time (tests)."""
    with _throttles_lock:
        _throttles.clear()


class ThrottledAdapter(HTTPAdapter):
    """Mounted on the cached session for the arXiv endpoint; only cache misses reach `send`."""

    def __init__(self, default_delay: float = 3.0):
        super().__init__(pool_connections=1, pool_maxsize=1)  # one connection
        self.default_delay = default_delay

    def send(self, request, *args, **kwargs):
        delay = getattr(_current, "delay", None)
        delay = self.default_delay if delay is None else delay
        with throttle_for(urlsplit(request.url).netloc).slot(delay):
            return super().send(request, *args, **kwargs)


# --- what the arxiv client sees as its session --------------------------------------------------

class _Page:
    """The two attributes `arxiv.Client` reads from a response."""

    def __init__(self, status_code: int, content: bytes):
        self.status_code = status_code
        self.content = content


class _Fetcher:
    """Stands in for the client's `requests.Session`: `get` goes through `Http.request`."""

    def __init__(self, source: "ArxivSource", query: str):
        self.source = source
        self.query = query
        self.what = f"arXiv query '{query}'"
        self.error: str | None = None  # arXiv's own message from an error feed
        self.skipped = 0  # malformed entries dropped

    def get(self, url: str, headers: dict | None = None, **_ignored) -> _Page:
        http = self.source.http
        self.source.ensure_throttled()
        _current.delay = self.source.delay
        try:
            response = http.request("GET", url, self.what, headers=headers)
        finally:
            _current.delay = None
        if response.status_code != 200:
            self.error = error_message(response.content)
            return _Page(response.status_code, response.content)
        try:
            content, skipped, error = screen_feed(response.content)
        except ValueError as problem:
            forget(http, url)
            raise SourceUnavailable(f"{self.what}: {problem}") from None
        if error:
            raise SourceUnavailable(f"{self.what}: arXiv says: {error}")
        self.skipped += skipped
        return _Page(200, content)

    def close(self) -> None:  # the client never closes its session, but be a good stand-in
        pass


def forget(http: Http, url: str) -> None:
    """Drop a cached GET so a retry asks again (a bad page must not stick for max_age)."""
    try:
        http.session.cache.delete(urls=[url])
    except Exception:  # noqa: BLE001 — the cache is an optimisation
        logger.debug("could not drop %s from the cache", url, exc_info=True)


def _parse_xml(content: bytes):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        return etree.fromstring(content, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None


def _valid_date(text: str | None) -> bool:
    if not text:
        return False
    try:
        datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _error_entries(root) -> list[str]:
    messages = []
    for entry in root.iterfind("atom:entry", NS):
        entry_id = entry.findtext("atom:id", "", NS)
        if "/api/errors" in entry_id:
            messages.append(" ".join((entry.findtext("atom:summary", "", NS) or "error").split()))
    return messages


def error_message(content: bytes) -> str | None:
    """arXiv's message from an Atom error feed, if the body is one."""
    root = _parse_xml(content or b"")
    if root is None or root.tag != f"{{{ATOM}}}feed":
        return None
    return "; ".join(_error_entries(root)) or None


MALFORMED_ID = "urn:research-agent:malformed-entry"


def _blank(entry) -> None:
    """Turn a malformed entry into a placeholder the client parses and `to_item` drops. Not removed:
    the client counts a page's entries to know where the next page starts."""
    entry.clear()
    for tag, text in (("id", MALFORMED_ID), ("title", "malformed"), ("updated", "1970-01-01T00:00:00Z"),
                      ("published", "1970-01-01T00:00:00Z")):
        etree.SubElement(entry, f"{{{ATOM}}}{tag}").text = text


def screen_feed(content: bytes) -> tuple[bytes, int, str | None]:
    """Blank out malformed entries; return (content for the client, entries dropped, arXiv error message).

    Raises ValueError when the body is not an Atom feed at all.
    """
    root = _parse_xml(content or b"")
    if root is None or root.tag != f"{{{ATOM}}}feed":
        raise ValueError("the response is not an Atom feed")
    errors = _error_entries(root)
    if errors:
        return content, 0, "; ".join(errors)
    dropped = 0
    for entry in list(root.iterfind("atom:entry", NS)):
        entry_id = (entry.findtext("atom:id", "", NS) or "").strip()
        title = (entry.findtext("atom:title", "", NS) or "").strip()
        ok = (ABS_ID.search(entry_id) is not None and bool(title)
              and _valid_date(entry.findtext("atom:updated", None, NS))
              and _valid_date(entry.findtext("atom:published", None, NS)))
        if not ok:
            logger.warning("arXiv: skipping a malformed entry (%s)", entry_id[:100] or "no id")
            _blank(entry)
            dropped += 1
    if dropped:
        content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return content, dropped, None


# --- the source ------------------------------------------------------------------------------------

class ArxivSource:
    name = "arxiv"

    def __init__(self, http: Http, endpoint: str | None = None, delay: float = 3.0, page_size: int = 100):
        self.http = http
        self.endpoint = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).strip()
        self.delay = max(float(delay), 0.0)
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        self.skipped = 0  # malformed entries dropped by the last search
        self.ensure_throttled()

    def ensure_throttled(self) -> None:
        """Mount the throttling adapter for the endpoint on the (shared) session, once."""
        session = self.http.session
        try:
            mounted = session.get_adapter(self.endpoint)
        except requests.exceptions.InvalidSchema:
            return  # not an http(s) URL: the request itself will fail and be reported
        if not isinstance(mounted, ThrottledAdapter):
            session.mount(self.endpoint, ThrottledAdapter(self.delay))

    def _client(self, fetcher: _Fetcher, limit: int) -> arxiv.Client:
        client = arxiv.Client(page_size=min(limit, self.page_size), delay_seconds=0, num_retries=0)
        client._session.close()
        client._session = fetcher  # type: ignore[assignment]
        separator = "&" if "?" in self.endpoint else "?"
        client.query_url_format = self.endpoint.replace("{", "{{").replace("}", "}}") + separator + "{}"
        return client

    def search(self, query: str, limit: int) -> list[SourceItem]:
        """Up to `limit` papers for `query`, by relevance. Raises SourceUnavailable when arXiv can't answer."""
        query = (query or "").strip()
        if not query or limit <= 0:
            return []
        fetcher = _Fetcher(self, query)
        client = self._client(fetcher, limit)
        search = arxiv.Search(query=query, max_results=limit, sort_by=arxiv.SortCriterion.Relevance)
        results: list[arxiv.Result] = []

        def fetch() -> None:
            try:
                for result in client.results(search, offset=len(results)):
                    results.append(result)
            except arxiv.UnexpectedEmptyPageError as error:
                # a later page came back empty (arXiv does this now and then): retry from where we are
                forget(self.http, error.url)
                raise
            except arxiv.HTTPError as error:
                detail = f": {fetcher.error}" if fetcher.error else ""
                raise SourceUnavailable(f"arXiv query '{query}': HTTP {error.status}{detail}") from None
            except arxiv.ArxivError as error:
                raise SourceUnavailable(f"arXiv query '{query}': {error.message}") from None
            except requests.RequestException as error:
                raise SourceUnavailable(f"arXiv query '{query}': {type(error).__name__}") from None
            except (ValueError, etree.LxmlError) as error:  # a feed the screening let through but the client can't read
                raise SourceUnavailable(f"arXiv query '{query}': unreadable feed ({type(error).__name__})") from None

        try:
            retrying(fetcher.what, attempts=self.http.retries + 1, base=self.http.backoff,
                     retry_if=lambda error: isinstance(error, arxiv.UnexpectedEmptyPageError))(fetch)
        except arxiv.UnexpectedEmptyPageError:
            logger.warning("arXiv query %r: page at %d stayed empty; keeping %d results", query, len(results), len(results))
        self.skipped = fetcher.skipped
        items = []
        for result in results:
            item = to_item(result, query)
            if item is not None:
                items.append(item)
        return items[:limit]


def _day(value: datetime | None) -> str:
    if not isinstance(value, datetime) or value == datetime.min:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.date().isoformat()


def split_id(entry_id: str) -> tuple[str, str]:
    """'http://arxiv.org/abs/astro-ph/0601001v1' → ('astro-ph/0601001', 'v1')."""
    match = ABS_ID.search(entry_id or "")
    if not match:
        return "", ""
    return match.group("id"), match.group("version") or ""


def to_item(result: arxiv.Result, query: str) -> SourceItem | None:
    paper_id, version = split_id(result.entry_id)
    if not paper_id:
        return None
    abs_url = next((link.href for link in result.links if link.rel == "alternate" and link.href), "")
    meta = {
        "authors": [author.name for author in result.authors if author.name],
        "categories": list(result.categories),
        "primary_category": result.primary_category,
        "pdf_url": result.pdf_url or "",
        "version": version,
        "query": query,
    }
    for key in ("doi", "journal_ref", "comment"):
        value = getattr(result, key, None)
        if value:
            meta[key] = " ".join(str(value).split())
    return SourceItem(
        id=f"arXiv:{paper_id}",
        kind="paper",
        title=" ".join(result.title.split()),
        url=abs_url or f"https://arxiv.org/abs/{paper_id}{version}",
        text=" ".join((result.summary or "").split()),
        source="arxiv",
        signals={"updated": _day(result.updated), "published": _day(result.published)},
        meta=meta,
    )
