"""Semantic Scholar: citation and influential-citation counts for ranking papers, and a paper search.

It goes through the shared `Http` (requests + requests-cache), not httpx nor the `semanticscholar`
package: one cache and one offline switch cover every source, and retries/backoff (429, 5xx,
Retry-After) are the same everywhere. The optional API key is sent as `x-api-key`; requests-cache
redacts that header from what it stores and leaves it out of the cache key.

Missing data is not an error: a null in the batch answer or a missing count leaves the signal
unset, and a service problem (rate limit, 4xx/5xx, offline miss) becomes a one-line notice —
`enrich` never raises for those. Fetched text is untrusted data: stored as text, never evaluated.
"""

from __future__ import annotations

import os
import re

from ..text import one_line
from .base import SourceItem, SourceUnavailable
from .http import Http

DEFAULT_ENDPOINT = "https://api.semanticscholar.org/graph/v1"
ENDPOINT_ENV = "RESEARCH_AGENT_S2_URL"
KEY_ENV = "S2_API_KEY"
BATCH_SIZE = 500  # the batch endpoint's limit
BATCH_FIELDS = "citationCount,influentialCitationCount,externalIds,year"
SEARCH_FIELDS = "title,abstract,externalIds,citationCount,influentialCitationCount,year,url"
SEARCH_LIMIT = 100  # the search endpoint's limit
WITHOUT = " — papers ranked without citations"
VERSION = re.compile(r"v\d+$")


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _arxiv_id(paper: dict) -> str | None:
    external = paper.get("externalIds")
    if not isinstance(external, dict):
        return None
    value = external.get("ArXiv")
    if not isinstance(value, str) or not value.strip():
        return None
    return VERSION.sub("", value.strip())


def _error_text(response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        message = data.get("error") or data.get("message")
        if isinstance(message, str):
            return one_line(message, 200)
    return ""


class SemanticScholar:
    name = "semantic-scholar"

    def __init__(self, http: Http, endpoint: str | None = None, api_key: str | None = None):
        self.http = http
        self.endpoint = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).strip().rstrip("/")
        self.api_key = api_key if api_key is not None else (os.environ.get(KEY_ENV) or None)

    def headers(self) -> dict[str, str]:
        # spelled as requests-cache spells it in its default ignored_parameters (it compares names
        # case-sensitively), so the stored request shows REDACTED instead of the key
        return {"X-API-Key": self.api_key} if self.api_key else {}

    # --- citations for papers found elsewhere ---------------------------------------------------

    def enrich(self, items: list[SourceItem]) -> list[str]:
        """Set signals["citations"] / ["influential_citations"] on arXiv paper items, in place.

        Returns notices (one line each); never raises for service problems.
        """
        by_id: dict[str, list[SourceItem]] = {}
        for item in items:
            if item.kind == "paper" and item.id.startswith("arXiv:") and len(item.id) > len("arXiv:"):
                by_id.setdefault(VERSION.sub("", item.id[len("arXiv:"):]), []).append(item)
        ids = list(by_id)
        notices: list[str] = []
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start:start + BATCH_SIZE]
            try:
                response = self.http.request(
                    "POST", f"{self.endpoint}/paper/batch", "Semantic Scholar",
                    params={"fields": BATCH_FIELDS}, json={"ids": [f"ARXIV:{i}" for i in chunk]},
                    headers=self.headers())
            except SourceUnavailable as error:
                notices.append(f"{error}{WITHOUT}")
                break  # rate limited, down or offline: the other chunks would fare no better
            if response.status_code != 200:
                detail = _error_text(response)
                notices.append(f"Semantic Scholar: HTTP {response.status_code}"
                               + (f" ({detail})" if detail else "") + WITHOUT)
                continue
            try:
                papers = response.json()
            except ValueError:
                notices.append("Semantic Scholar: the answer is not JSON" + WITHOUT)
                continue
            if not isinstance(papers, list):
                notices.append("Semantic Scholar: unexpected answer (not a list)" + WITHOUT)
                continue
            for arxiv_id, paper in self._pair(chunk, papers):
                for item in by_id.get(arxiv_id, []):
                    self._apply(item, paper)
        return notices

    @staticmethod
    def _pair(chunk: list[str], papers: list) -> list[tuple[str, dict]]:
        """The batch answer lists one entry (or null) per requested id, in order; when its length
        does not match, fall back to the ArXiv external id each paper carries."""
        if len(papers) == len(chunk):
            return [(arxiv_id, paper) for arxiv_id, paper in zip(chunk, papers) if isinstance(paper, dict)]
        wanted = set(chunk)
        pairs = []
        for paper in papers:
            if isinstance(paper, dict):
                arxiv_id = _arxiv_id(paper)
                if arxiv_id in wanted:
                    pairs.append((arxiv_id, paper))
        return pairs

    @staticmethod
    def _apply(item: SourceItem, paper: dict) -> None:
        citations = _count(paper.get("citationCount"))
        influential = _count(paper.get("influentialCitationCount"))
        if citations is not None:
            item.signals["citations"] = citations
        if influential is not None:
            item.signals["influential_citations"] = influential

    # --- search ------------------------------------------------------------------------------------

    def search(self, query: str, limit: int) -> list[SourceItem]:
        """Papers for `query` (relevance order). Raises SourceUnavailable when the service can't answer."""
        query = (query or "").strip()
        if not query or limit <= 0:
            return []
        what = f"Semantic Scholar search '{query}'"
        response = self.http.request(
            "GET", f"{self.endpoint}/paper/search", what,
            params={"query": query, "fields": SEARCH_FIELDS, "limit": str(min(limit, SEARCH_LIMIT))},
            headers=self.headers())
        if response.status_code != 200:
            detail = _error_text(response)
            raise SourceUnavailable(f"{what}: HTTP {response.status_code}" + (f" ({detail})" if detail else ""))
        try:
            data = response.json()
        except ValueError:
            raise SourceUnavailable(f"{what}: the answer is not JSON") from None
        papers = data.get("data") if isinstance(data, dict) else None
        items = []
        for paper in papers if isinstance(papers, list) else []:
            item = self._item(paper, query) if isinstance(paper, dict) else None
            if item is not None:
                items.append(item)
        return items[:limit]

    @staticmethod
    def _item(paper: dict, query: str) -> SourceItem | None:
        paper_id = paper.get("paperId") if isinstance(paper.get("paperId"), str) else ""
        title = paper.get("title") if isinstance(paper.get("title"), str) else ""
        arxiv_id = _arxiv_id(paper)
        if not (arxiv_id or paper_id) or not title.strip():
            return None
        signals = {}
        for key, name in (("citationCount", "citations"), ("influentialCitationCount", "influential_citations")):
            value = _count(paper.get(key))
            if value is not None:
                signals[name] = value
        external = paper.get("externalIds") if isinstance(paper.get("externalIds"), dict) else {}
        meta = {"query": query, "s2_paper_id": paper_id,
                "external_ids": {k: v for k, v in external.items() if isinstance(v, (str, int))}}
        if _count(paper.get("year")) is not None:
            meta["year"] = paper["year"]
        url = paper.get("url") if isinstance(paper.get("url"), str) else ""
        abstract = paper.get("abstract") if isinstance(paper.get("abstract"), str) else ""
        return SourceItem(
            id=f"arXiv:{arxiv_id}" if arxiv_id else f"s2:{paper_id}",
            kind="paper",
            title=" ".join(title.split()),
            url=url or (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else ""),
            text=" ".join(abstract.split()),
            source="semantic-scholar",
            signals=signals,
            meta=meta,
        )
