"""A local stand-in of the OpenAI Responses API (POST /v1/responses, streamed as SSE), scripted turn by turn.

Used to drive the real `codex` CLI in tests. Each request's turn is the number of tool outputs
(`function_call_output` / `custom_tool_call_output` items) already in its `input` history, so the
script is a list of steps: turn 0 answers with the first step, turn 1 with the second, and so on
(the last step repeats). A step is one of:

- `ToolCall(name, arguments)` — a function call, e.g. `exec_command` with `{"cmd": "..."}`;
- `Message(text)` — the final assistant message (ends Codex's turn);
- `Hang(seconds)` — never answer (a stuck provider), until the server closes;
- `HttpError(status, body)` — e.g. 401 with an OpenAI-style error body;
- `Failed(message)` — a `response.failed` event in the stream.

Each answered step reports `usage` (input / cached / output tokens) in `response.completed`, the way
the real API does. Every request is recorded (method, path, parsed JSON body); requests the server
does not know (anything other than POST /v1/responses and GET /v1/models) are answered 404 and
kept in `unknown` so a test can show what the CLI asked for.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from .servers import LocalServer

DEFAULT_USAGE = {"input_tokens": 1200, "cached_tokens": 200, "output_tokens": 80}


@dataclass
class ToolCall:
    name: str
    arguments: dict | str
    usage: dict = field(default_factory=lambda: dict(DEFAULT_USAGE))


@dataclass
class Message:
    text: str
    usage: dict = field(default_factory=lambda: dict(DEFAULT_USAGE))


@dataclass
class Hang:
    seconds: float = 600.0


@dataclass
class HttpError:
    status: int
    body: dict = field(default_factory=dict)


@dataclass
class Failed:
    message: str
    code: str = "server_error"


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: dict | None

    @property
    def turn(self) -> int:
        return turn_of(self.body or {})

    @property
    def tool_names(self) -> list[str]:
        names = []
        for tool in (self.body or {}).get("tools") or []:
            names.append(tool.get("name") or (tool.get("function") or {}).get("name") or tool.get("type"))
        return names


OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")


def turn_of(body: dict) -> int:
    """How many tool results the client has sent back so far: the index of the step to answer with."""
    items = body.get("input") or []
    return sum(1 for item in items if isinstance(item, dict) and item.get("type") in OUTPUT_TYPES)


class ResponsesServer(LocalServer):
    """`with ResponsesServer([ToolCall(...), Message("done")]) as server: server.base_url ...`"""

    def __init__(self, script: list):
        self.script = list(script)
        self.requests: list[Request] = []
        self.unknown: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        super().__init__()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def responses(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path.split("?")[0] == "/v1/responses"]

    def step_for(self, request: Request):
        if not self.script:
            return Message("done")
        return self.script[min(request.turn, len(self.script) - 1)]

    # --- SSE ----------------------------------------------------------------------------------

    def sse_events(self, step) -> list[dict]:
        rid = f"resp_{next(self._ids)}"
        model = "mock-model"
        base = {"id": rid, "object": "response", "model": model, "status": "in_progress", "output": []}
        events = [{"type": "response.created", "response": base},
                  {"type": "response.in_progress", "response": base}]
        if isinstance(step, Failed):
            events.append({"type": "response.failed", "response": {
                **base, "status": "failed", "error": {"code": step.code, "message": step.message}}})
            return events
        if isinstance(step, ToolCall):
            call_id = f"call_{next(self._ids)}"
            arguments = step.arguments if isinstance(step.arguments, str) else json.dumps(step.arguments)
            item = {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": step.name,
                    "arguments": arguments, "status": "completed"}
            if step.name == "apply_patch" and isinstance(step.arguments, str):  # the freeform (custom) tool
                item = {"type": "custom_tool_call", "id": f"ctc_{call_id}", "call_id": call_id, "name": step.name,
                        "input": step.arguments, "status": "completed"}
            usage = step.usage
        else:
            item = {"type": "message", "id": f"msg_{next(self._ids)}", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": step.text, "annotations": []}]}
            usage = step.usage
        added = {**item, "status": "in_progress"}
        if item["type"] == "message":
            added["content"] = []
        events.append({"type": "response.output_item.added", "output_index": 0, "item": added})
        if item["type"] == "message":
            events.append({"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                           "item_id": item["id"], "delta": step.text})
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
        events.append({"type": "response.completed", "response": {
            **base, "status": "completed", "output": [item],
            "usage": {
                "input_tokens": usage["input_tokens"],
                "input_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["input_tokens"] + usage["output_tokens"],
            }}})
        return events

    # --- HTTP ---------------------------------------------------------------------------------

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _read(self) -> Request:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw and self.headers.get("Content-Encoding", "").lower() == "zstd":
                    raise ValueError("zstd request bodies are not supported by this stand-in")
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(request)
                return request

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                request = self._read()
                if request.path.split("?")[0] == "/v1/models":
                    self._json(200, {"object": "list", "data": [], "models": []})
                    return
                server.unknown.append((request.method, request.path))
                self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self) -> None:
                request = self._read()
                if request.path.split("?")[0] != "/v1/responses":
                    server.unknown.append((request.method, request.path))
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                step = server.step_for(request)
                if isinstance(step, Hang):
                    server._closing.wait(step.seconds)
                    self.close_connection = True
                    return
                if isinstance(step, HttpError):
                    self._json(step.status, step.body or {"error": {"message": f"HTTP {step.status}", "type": "error"}})
                    return
                payload = "".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in server.sse_events(step))
                data = payload.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _other(self) -> None:
                request = self._read()
                server.unknown.append((request.method, request.path))
                self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            do_PUT = do_PATCH = do_DELETE = do_HEAD = _other

            def log_message(self, *args) -> None:  # quiet
                pass

        return Handler
