"""PyGithub ReplayData files (tests/fixtures/github/*.txt) as routes of a local `ReplayServer`.

A ReplayData file is a sequence of recorded requests, each ten lines (an empty response body is an
empty line), separated by blank lines:

    protocol / verb / host / port / path?query / request headers (a Python dict) / request body /
    status / response headers (a Python list of (name, value) tuples) / response body

The recorded host is api.github.com; the replies are served at the local server's root instead, and
`https://api.github.com` is rewritten to the server's URL in bodies and headers (PyGithub follows the
absolute `link` URLs of pagination, and objects carry their absolute `url`).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .servers import ReplayServer, Reply, Route

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "github"
RECORDED_URL = "https://api.github.com"
DROPPED_HEADERS = {"status", "content-length", "transfer-encoding", "content-encoding", "connection"}


@dataclass
class Recorded:
    method: str
    host: str
    path: str  # as sent, percent-encoded, without the query
    query: dict[str, str]  # decoded, first value of each parameter
    request_headers: dict
    status: int
    headers: list[tuple[str, str]]
    body: str

    def reply(self, url: str | None = None, **headers: str) -> Reply:
        """This recorded response, with api.github.com rewritten to `url`; keyword arguments add or
        replace headers (underscores for dashes: x_ratelimit_reset="...")."""
        out: dict[str, str] = {}
        for name, value in self.headers:
            if name.lower() not in DROPPED_HEADERS:
                out[name] = rewrite(str(value), url)
        for name, value in headers.items():
            name = name.replace("_", "-")
            for existing in [key for key in out if key.lower() == name.lower()]:
                del out[existing]
            out[name] = str(value)
        return Reply(self.status, rewrite(self.body, url).encode(), out)

    def json(self):
        return json.loads(self.body)


def rewrite(text: str, url: str | None) -> str:
    return text.replace(RECORDED_URL, url.rstrip("/")) if url else text


def load(name: str | Path) -> list[Recorded]:
    """The recorded requests of a ReplayData file (a name in tests/fixtures/github, or a path)."""
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = FIXTURES / name
    lines = path.read_text(encoding="utf-8").split("\n")
    records, i = [], 0
    while i < len(lines):
        if lines[i].strip() not in ("http", "https"):
            i += 1  # separators between records
            continue
        if i + 9 >= len(lines):
            raise ValueError(f"{path.name}: truncated record at line {i + 1}")
        protocol, verb, host, _port, target, req_headers, _req_body, status, headers, body = lines[i:i + 10]
        parts = urlsplit(target)
        query = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        records.append(Recorded(
            method=verb.strip(), host=host.strip(), path=parts.path, query=query,
            request_headers=ast.literal_eval(req_headers) if req_headers.strip() not in ("", "None") else {},
            status=int(status), headers=[tuple(pair) for pair in ast.literal_eval(headers)], body=body))
        i += 10
    return records


def routes(records: list[Recorded], url: str, prefix: str = "") -> list[Route]:
    """Routes answering the recorded requests: repeated requests (same verb, path and query) answer
    their recorded responses in order; routes with more query parameters come first, so a `page=2`
    request does not match the first page's route."""
    grouped: dict[tuple, Route] = {}
    for record in records:
        key = (record.method, record.path, tuple(sorted(record.query.items())))
        if key not in grouped:
            grouped[key] = Route(record.method, prefix + record.path, [], dict(record.query))
        grouped[key].replies.append(record.reply(url.rstrip("/") + prefix))
    return sorted(grouped.values(), key=lambda route: -len(route.query or {}))


def serve(server: ReplayServer, *names: str, prefix: str = "") -> list[Route]:
    """Add the routes of the named ReplayData files to `server` (in front of its other routes)."""
    added = [route for name in names for route in routes(load(name), server.url, prefix)]
    server.routes[:0] = added
    return added


class HeaderServer(ReplayServer):
    """A ReplayServer that also keeps each request's headers (`request_headers`, in order)."""

    def __init__(self, *args, **kwargs):
        self.request_headers: list[dict[str, str]] = []
        super().__init__(*args, **kwargs)

    def _handler(self):
        base = super()._handler()
        server = self

        class Handler(base):
            def _serve(self) -> None:
                server.request_headers.append(dict(self.headers.items()))
                super()._serve()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler
