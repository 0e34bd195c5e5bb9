"""Recorded arXiv and Semantic Scholar responses (tests/fixtures/arxiv, tests/fixtures/semanticscholar)
turned into `Route`s and `Reply`s for the local `ReplayServer`.

arXiv: each `.json` wrapper holds the recorded request url, status_code and body; a route matches the
same search_query / id_list / start / max_results. Semantic Scholar: VCR cassettes (YAML), one
interaction each → method, path under /graph/v1, status and body.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from .servers import Reply, ReplayServer, Route

FIXTURES = Path(__file__).parent / "fixtures"
ARXIV = FIXTURES / "arxiv"
S2 = FIXTURES / "semanticscholar"
ARXIV_PATH = "/api/query"
S2_PREFIX = "/graph/v1"
ATOM_TYPE = {"Content-Type": "application/atom+xml; charset=utf-8"}
JSON_TYPE = {"Content-Type": "application/json"}

# the recorded arXiv pages, by what they are
ARXIV_TESTING = "arxivpy_q_testing_s0_m10_bc5a6c384fe9"  # search_query=testing, 10 entries
ARXIV_TESTING_PAGE2 = "arxivpy_q_testing_s10_m10_34e56e15aaac"  # the same, start=10
ARXIV_EMPTY = "arxivpy_id_0000.0000_s0_m100_8b51d9633a68"  # totalResults 0
ARXIV_ERROR = "arxivpy_id_abc_s0_m100_b79c8dcf6bc3"  # HTTP 400, Atom error feed
ARXIV_OLD_ID = "arxivpy_id_astro-ph_0601001_s0_m100_3150dca9dc76"  # astro-ph/0601001


def arxiv_fixture(name: str) -> dict:
    """{"url", "status_code", "body"} of one recorded arXiv response."""
    return json.loads((ARXIV / f"{name}.json").read_text(encoding="utf-8"))


def arxiv_body(name: str) -> str:
    return arxiv_fixture(name)["body"]


def arxiv_reply(name: str, body: str | None = None, status: int | None = None) -> Reply:
    """The recorded response (optionally with another body or status), as a Reply."""
    record = arxiv_fixture(name)
    return Reply(record["status_code"] if status is None else status,
                 record["body"] if body is None else body, dict(ATOM_TYPE))


def arxiv_query(name: str) -> dict[str, str]:
    """The recorded request's search_query, id_list, start and max_results."""
    params = parse_qs(urlsplit(arxiv_fixture(name)["url"]).query, keep_blank_values=True)
    return {key: params[key][0] for key in ("search_query", "id_list", "start", "max_results") if key in params}


def arxiv_route(name: str, *replies: Reply, match: bool = True, path: str = ARXIV_PATH) -> Route:
    """A route answering the recorded request (or, with match=False, any query) with the recorded
    response — or with `replies` in order (e.g. a 503 then the recording)."""
    return Route("GET", path, list(replies) or [arxiv_reply(name)], arxiv_query(name) if match else None)


def arxiv_routes(path: str = ARXIV_PATH) -> list[Route]:
    """Every recorded arXiv response, each matched by its own query."""
    return [arxiv_route(file.name[:-len(".json")], path=path) for file in sorted(ARXIV.glob("*.json"))]


def s2_interactions(name: str) -> list[dict]:
    """A VCR cassette as [{"method", "path", "query", "status", "body", "headers", "request_body"}]."""
    data = yaml.safe_load((S2 / f"{name}.yaml").read_text(encoding="utf-8"))
    out = []
    for interaction in data.get("interactions", []):
        request, response = interaction["request"], interaction["response"]
        parts = urlsplit(request["uri"])
        body = response.get("body", {}).get("string") if isinstance(response.get("body"), dict) else None
        if body is None:
            body = response.get("content", "")  # the older cassette format
        status = response.get("status", {}).get("code") if isinstance(response.get("status"), dict) else None
        if status is None:
            status = response.get("status_code", 200)
        headers = {key: values[0] if isinstance(values, list) else values
                   for key, values in (response.get("headers") or {}).items()}
        out.append({
            "method": request["method"].upper(),
            "path": parts.path[len(S2_PREFIX):] if parts.path.startswith(S2_PREFIX) else parts.path,
            "query": {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()},
            "status": int(status),
            "body": body,
            "headers": headers,
            "request_body": request.get("body") or "",
        })
    return out


def s2_reply(name: str, index: int = 0) -> Reply:
    record = s2_interactions(name)[index]
    content_type = record["headers"].get("Content-Type", JSON_TYPE["Content-Type"])
    return Reply(record["status"], record["body"], {"Content-Type": content_type})


def s2_route(name: str, index: int = 0, *, method: str | None = None, path: str | None = None) -> Route:
    """The recorded interaction as a route on its own method and path (under /graph/v1), any query
    and body — or on another method/path (e.g. a recorded 404 served for POST /paper/batch)."""
    record = s2_interactions(name)[index]
    return Route(method or record["method"], S2_PREFIX + (path or record["path"]), [s2_reply(name, index)])


class TimedReplayServer(ReplayServer):
    """A ReplayServer that also keeps when each request arrived (time.monotonic()) and its headers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.times: list[float] = []
        self.headers: list[dict[str, str]] = []
        self._times_lock = threading.Lock()
        handler = self._httpd.RequestHandlerClass
        server = self

        class Handler(handler):
            def _serve(self) -> None:
                with server._times_lock:
                    server.times.append(time.monotonic())
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                super()._serve()

            do_GET = do_POST = _serve

        self._httpd.RequestHandlerClass = Handler
