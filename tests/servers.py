"""Local HTTP servers for tests and benchmarks: replay recorded real responses, count requests.

A `ReplayServer` answers from a list of routes; each route matches method, path and (optionally)
query parameters, and returns a recorded status, headers and body. Routes can be scripted as a
sequence (e.g. 503 then 200) to test retries. Every request is counted and logged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (simulated latency or a hang)


@dataclass
class Route:
    method: str
    path: str  # exact path, or a prefix when it ends with '*'
    replies: list[Reply]  # answered in order; the last one repeats
    query: dict[str, str] | None = None  # required query parameters (exact values)
    hits: int = 0

    def matches(self, method: str, path: str, query: dict[str, list[str]]) -> bool:
        if method != self.method:
            return False
        if self.path.endswith("*"):
            if not path.startswith(self.path[:-1]):
                return False
        elif path != self.path:
            return False
        return all(query.get(key, [None])[0] == value for key, value in (self.query or {}).items())

    def next_reply(self) -> Reply:
        reply = self.replies[min(self.hits, len(self.replies) - 1)]
        self.hits += 1
        return reply


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) for one test: `with Server(...) as server`.

    Subclasses set their own state, then call `super().__init__()`, and give `_handler()` (a
    request-handler class). `_closing` is set on exit so handlers that hang or sleep can stop.
    """

    http_server_class = ThreadingHTTPServer
    poll_interval = 0.05  # how long shutdown may wait for serve_forever to notice

    def __init__(self):
        self._closing = threading.Event()
        self._httpd = self.http_server_class(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": self.poll_interval},
                                        daemon=True)

    @property
    def root_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.root_url

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()  # releases handlers that hang or sleep
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        raise NotImplementedError


class ReplayServer(LocalServer):
    """`with ReplayServer(routes) as server: server.url ...` — serves on 127.0.0.1, a free port."""

    def __init__(self, routes: list[Route] | None = None, latency: float = 0.0,
                 fallback: Callable[[str, str, dict, bytes], Reply | None] | None = None):
        self.routes = list(routes or [])
        self.latency = latency  # added to every response
        self.fallback = fallback
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def count(self) -> int:
        return len(self.requests)

    def add(self, method: str, path: str, *replies: Reply, query: dict[str, str] | None = None) -> Route:
        route = Route(method, path, list(replies), query)
        self.routes.append(route)
        return route

    def answer(self, method: str, raw_path: str, body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query, keep_blank_values=True)
        with self._lock:
            self.requests.append((method, raw_path))
            self.bodies.append(body)
            for route in self.routes:
                if route.matches(method, parts.path, query):
                    return route.next_reply()
        if self.fallback is not None:
            reply = self.fallback(method, parts.path, query, body)
            if reply is not None:
                return reply
        return Reply(404, '{"message": "Not Found"}', {"Content-Type": "application/json"})

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = server.answer(self.command, self.path, body)
                if server.latency or reply.delay:
                    time.sleep(server.latency + reply.delay)
                payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                headers = {k: v for k, v in reply.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args) -> None:  # quiet
                pass

        return Handler
