"""A local stand-in for the Anthropic Messages API, scripted turn by turn, for driving the real `claude` CLI.

It answers POST /v1/messages with SSE streaming (message_start, content_block_start/delta/stop,
message_delta with stop_reason and usage, message_stop), exactly the events the CLI parses. The
next turn is chosen from the request's own message history — the number of tool_result blocks the
CLI sends back — so a retried request gets the same answer. Requests without `tools` (side calls
the CLI may make, e.g. a title or a quota probe) get a short text answer and do not advance the
script. HEAD /api/hello (the CLI's connectivity preflight, sent unless non-essential traffic is
disabled) gets a 200. Everything else is logged in `unknown` and answered with a JSON 404.

    with AnthropicServer([read("value.txt"), edit("value.txt", "100", "150"), text("done")]) as server:
        env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": server.api_key}
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

from .servers import LocalServer


@dataclass
class Turn:
    """One scripted model answer: optional text, then optionally one tool call; or an error; or a hang."""

    text: str | None = None
    tool: str | None = None
    input: dict = field(default_factory=dict)
    status: int = 200  # != 200: an API error with `error_type` / `message`
    error_type: str = "api_error"
    message: str = ""
    hang: float = 0.0  # seconds to wait before answering (the test's timeout should fire first)
    stall: float = 0.0  # seconds to pause mid-stream, after the content blocks, before message_delta
    input_tokens: int = 2000
    output_tokens: int = 300


def text(value: str, **usage) -> Turn:
    return Turn(text=value, **usage)


def tool(name: str, **tool_input) -> Turn:
    return Turn(tool=name, input=tool_input)


def read(path: str) -> Turn:
    return tool("Read", file_path=path)


def edit(path: str, old: str, new: str) -> Turn:
    return tool("Edit", file_path=path, old_string=old, new_string=new)


def write(path: str, content: str) -> Turn:
    return tool("Write", file_path=path, content=content)


def bash(command: str) -> Turn:
    return tool("Bash", command=command, description="run a command")


def error(status: int, error_type: str, message: str) -> Turn:
    return Turn(status=status, error_type=error_type, message=message)


def unauthorized() -> Turn:
    return error(401, "authentication_error", "invalid x-api-key")


def hang(seconds: float = 300.0) -> Turn:
    return Turn(hang=seconds)


Script = list[Turn] | Callable[[dict, int], Turn]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a killed CLI drops its connections: not an error here
        pass


class AnthropicServer(LocalServer):
    """Serves on 127.0.0.1 (a free port). `script[i]` answers the request that carries i tool results;
    past the end the last turn repeats. A callable script gets (request body, tool results) instead."""

    http_server_class = _QuietServer

    def __init__(self, script: Script, api_key: str = "sk-ant-test-dummy", check_key: bool = True):
        self.script = script
        self.api_key = api_key
        self.check_key = check_key
        self.log: list[dict] = []  # every request: method, path, kind (main / side / other), turn
        self.unknown: list[str] = []  # requests that are not POST /v1/messages
        self.bodies: list[dict] = []  # JSON bodies of the main-loop /v1/messages requests
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__()

    @property
    def main_requests(self) -> int:
        return sum(1 for entry in self.log if entry["kind"] == "main")

    # -- what to answer ------------------------------------------------------------------

    def turn_for(self, body: dict) -> tuple[int, Turn]:
        results = sum(
            1
            for message in body.get("messages", [])
            if message.get("role") == "user" and isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        )
        if callable(self.script):
            return results, self.script(body, results)
        return results, self.script[min(results, len(self.script) - 1)]

    def stream(self, turn: Turn, model: str) -> list[bytes]:
        """The SSE body in two parts: up to the last content_block_stop, then message_delta/stop."""
        number = next(self._ids)
        events = [("message_start", {"type": "message_start", "message": {
            "id": f"msg_local_{number:04d}", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": turn.input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})]
        index = 0
        if turn.text:
            events += [
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                ("ping", {"type": "ping"}),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": turn.text}}),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
            index += 1
        if turn.tool:
            arguments = json.dumps(turn.input)
            half = len(arguments) // 2  # two deltas: the CLI must join partial JSON
            events += [
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": f"toolu_local_{number:04d}", "name": turn.tool, "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": arguments[:half]}}),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": arguments[half:]}}),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
        head = _sse(events)
        events = [
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use" if turn.tool else "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": turn.output_tokens}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        return [head, _sse(events)]

    def answer(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, dict, bytes | list[bytes], float, float]:
        path = urlsplit(raw_path).path
        entry = {"method": method, "path": raw_path, "kind": "other", "time": time.time()}
        with self._lock:
            self.log.append(entry)
        if path == "/api/hello":  # the CLI's connectivity preflight (skipped with CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1)
            entry["kind"] = "preflight"
            return _json(200, {"message": "hello"})
        if method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            with self._lock:
                self.unknown.append(f"{method} {raw_path}")
            return _json(404, {"type": "error", "error": {"type": "not_found_error", "message": f"Not Found: {path}"}})
        if self.check_key and headers.get("x-api-key") != self.api_key:
            entry["kind"] = "bad key"
            return _json(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "body is not JSON"}})
        if path.endswith("/count_tokens"):
            entry["kind"] = "count_tokens"
            return _json(200, {"input_tokens": 100})
        model = request.get("model") or "claude-sonnet-4-5"
        if not request.get("tools"):
            entry["kind"] = "side"
            scripted = self.turn_for(request)[1]  # an error (e.g. a 401) fails side calls too
            turn = scripted if scripted.status != 200 else text("ok", input_tokens=10, output_tokens=2)
        else:
            entry["kind"] = "main"
            entry["turn"], turn = self.turn_for(request)
            with self._lock:
                self.bodies.append(request)
        if turn.status != 200:
            return _json(turn.status, {"type": "error", "error": {"type": turn.error_type, "message": turn.message}})
        if not request.get("stream"):
            return _json(200, _as_message(turn, model, next(self._ids)))
        return 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, self.stream(turn, model), turn.hang, turn.stall

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload, delay, stall = server.answer(self.command, self.path, self.headers, body)
                if delay and server._closing.wait(delay):
                    return  # shutting down mid-hang: drop the connection
                parts = payload if isinstance(payload, list) else [payload]
                self.send_response(status)
                for key, value in {**headers, "request-id": f"req_local_{time.monotonic_ns()}"}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(sum(len(part) for part in parts)))
                self.end_headers()
                try:
                    for number, part in enumerate(parts if self.command != "HEAD" else []):
                        if number and stall and server._closing.wait(stall):
                            return
                        self.wfile.write(part)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

            def log_message(self, *args) -> None:  # quiet
                pass

        return Handler


def _json(status: int, data: dict) -> tuple[int, dict, bytes, float, float]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode(), 0.0, 0.0


def _sse(events: list[tuple[str, dict]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def _as_message(turn: Turn, model: str, number: int) -> dict:
    content = []
    if turn.text:
        content.append({"type": "text", "text": turn.text})
    if turn.tool:
        content.append({"type": "tool_use", "id": f"toolu_local_{number:04d}", "name": turn.tool, "input": turn.input})
    return {"id": f"msg_local_{number:04d}", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": "tool_use" if turn.tool else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens}}
