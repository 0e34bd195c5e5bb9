"""A local OpenAI-compatible chat-completions server, scripted per model, for tests and benchmarks.

`POST /v1/chat/completions` answers the way OpenRouter does (the shape of the recording in
`tests/fixtures/openrouter/`): `provider`, `choices[].message.reasoning`, `usage.cost`,
`cost_details`, `completion_tokens_details.reasoning_tokens`; `stream: true` is answered as SSE
(with OpenRouter's `: OPENROUTER PROCESSING` comment, and the usage chunk when
`stream_options.include_usage` asks for it). `GET /v1/models` lists the scripted models.

The script maps a model id to what it answers:

- a string — that text, every time;
- an `Answer` — text plus delay, status, headers, cost, tokens, a verbatim raw body, ...;
- a list of those — one per request, in order (the last repeats), e.g. `[Answer(status=429,
  headers={"Retry-After": "0.2"}), "ok"]`;
- a callable `f(request) -> str | Answer` — e.g. a judge that reads the answers it is shown.

A model not in the script gets the provider's unknown-model error: 400
`{"error": {"message": "<id> is not a valid model ID", "code": 400}}` like OpenRouter, or with
`unknown_status=404` OpenAI's `model_not_found` body. Every request is recorded (`requests`) with
its parsed body, headers and arrival time. Token counts default to word counts, so tests can
assert exact figures.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .servers import LocalServer

# OpenRouter writes whitespace while the upstream model works, before the JSON body.
KEEP_ALIVE_PADDING = b"\n         \n\n" * 4


@dataclass
class Answer:
    text: str = ""
    delay: float = 0.0  # seconds before the status line
    status: int = 200
    error: str | None = None  # message of an error body (status != 200)
    headers: dict[str, str] = field(default_factory=dict)
    cost: float | None = None  # usage.cost (OpenRouter); None: usage without cost, like OpenAI or vLLM
    prompt_tokens: int | None = None  # default: words in the request's messages
    completion_tokens: int | None = None  # default: words in the text
    reasoning: str | None = None
    reasoning_tokens: int = 0
    usage: bool = True  # False: no usage object at all
    raw: bytes | None = None  # a body served verbatim (status and headers still apply)
    padding: bool = False  # OpenRouter's keep-alive whitespace before the JSON
    chunk_delay: float = 0.0  # streaming: seconds between chunks
    body_error: dict | None = None  # a 200 whose JSON is {"error": ...} (OpenRouter, after padding)
    finish_reason: str = "stop"
    provider: str = "Local"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict
    received: float  # time.monotonic()

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages") or []

    @property
    def text(self) -> str:
        """All message contents, joined: what the model was shown."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)

    @property
    def api_key(self) -> str:
        return self.headers.get("authorization", "").removeprefix("Bearer ").strip()




def _words(text: str) -> int:
    return len(text.split())


class OpenAIServer(LocalServer):
    """`with OpenAIServer({"m": "hi"}) as server: LLMClient(base_url=server.url, api_key="k")`."""

    poll_interval = 0.02

    def __init__(self, models: dict[str, Any] | None = None, unknown_status: int = 400, provider: str = "Local"):
        self.models: dict[str, Any] = dict(models or {})
        self.unknown_status = unknown_status
        self.provider = provider
        self.requests: list[Request] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        super().__init__()

    @property
    def url(self) -> str:
        return self.root_url + "/v1"

    def requests_for(self, model: str) -> list[Request]:
        return [r for r in self.requests if r.model == model]

    def hits(self, model: str) -> int:
        return len(self.requests_for(model))

    # --- answering --------------------------------------------------------------------------

    def _answer_for(self, request: Request) -> Answer | None:
        with self._lock:
            self.requests.append(request)
            script = self.models.get(request.model)
            index = self._counts.get(request.model, 0)
            self._counts[request.model] = index + 1
        if script is None and request.model not in self.models:
            return None
        if isinstance(script, list):
            script = script[min(index, len(script) - 1)]
        if callable(script) and not isinstance(script, Answer):
            try:
                script = script(request)
            except Exception as error:  # a bug in a test's script: say so, as a server error
                return Answer(status=500, error=f"test script for {request.model} raised {type(error).__name__}: {error}")
        return Answer(text=script) if isinstance(script, str) else script

    def _unknown_model(self, model: str) -> tuple[int, dict]:
        if self.unknown_status == 404:
            return 404, {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                                   "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
        return self.unknown_status, {"error": {"message": f"{model} is not a valid model ID", "code": self.unknown_status}}

    def _usage(self, request: Request, answer: Answer) -> dict | None:
        if not answer.usage:
            return None
        prompt = answer.prompt_tokens if answer.prompt_tokens is not None else _words(request.text)
        completion = answer.completion_tokens if answer.completion_tokens is not None else _words(answer.text)
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        if answer.cost is not None:
            share = answer.cost * prompt / (prompt + completion) if prompt + completion else 0.0
            usage.update({
                "cost": answer.cost, "is_byok": False,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "cost_details": {"upstream_inference_cost": answer.cost, "upstream_inference_prompt_cost": share,
                                 "upstream_inference_completions_cost": answer.cost - share},
                "completion_tokens_details": {"reasoning_tokens": answer.reasoning_tokens, "audio_tokens": 0},
            })
        elif answer.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": answer.reasoning_tokens}
        return usage

    def _completion(self, request: Request, answer: Answer) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.reasoning is not None:
            message["reasoning"] = answer.reasoning
        body = {
            "id": f"gen-{next(self._ids)}", "provider": answer.provider or self.provider, "model": request.model,
            "object": "chat.completion", "created": int(time.time()),
            "choices": [{"logprobs": None, "finish_reason": answer.finish_reason, "native_finish_reason": answer.finish_reason,
                         "index": 0, "message": message}],
            "system_fingerprint": "",
        }
        usage = self._usage(request, answer)
        if usage is not None:
            body["usage"] = usage
        return body

    def _chunks(self, request: Request, answer: Answer) -> list[dict]:
        base = {"id": f"gen-{next(self._ids)}", "provider": answer.provider or self.provider, "model": request.model,
                "object": "chat.completion.chunk", "created": int(time.time())}
        pieces = [piece + " " for piece in answer.text.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        chunks = []
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None, "native_finish_reason": None, "logprobs": None}]})
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": answer.finish_reason,
                                            "native_finish_reason": answer.finish_reason, "logprobs": None}]})
        include_usage = (request.body.get("stream_options") or {}).get("include_usage")
        usage = self._usage(request, answer)
        if include_usage and usage is not None:
            chunks.append({**base, "choices": [], "usage": usage})
        return chunks

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload: bytes, headers: dict | None = None, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    data = [{"id": model, "object": "model"} for model in server.models]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode())
                else:
                    self._send(404, b'{"error": {"message": "Not Found", "code": 404}}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                if self.path.rstrip("/") != "/v1/chat/completions":
                    server.requests.append(request)
                    self._send(404, b'{"error": {"message": "Not Found", "code": 404}}')
                    return
                answer = server._answer_for(request)
                try:
                    self._reply(request, answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): fine

            def _reply(self, request: Request, answer: Answer | None) -> None:
                if answer is None:
                    status, body = server._unknown_model(request.model)
                    self._send(status, json.dumps(body).encode())
                    return
                if answer.delay and server._closing.wait(answer.delay):
                    return
                if answer.raw is not None:
                    self._send(answer.status, answer.raw, answer.headers)
                    return
                if answer.status != 200:
                    error = {"message": answer.error or f"error {answer.status}", "code": answer.status}
                    self._send(answer.status, json.dumps({"error": error}).encode(), answer.headers)
                    return
                if answer.body_error is not None:
                    payload = json.dumps({"error": answer.body_error}).encode()
                    self._send(200, (KEEP_ALIVE_PADDING if answer.padding else b"") + payload, answer.headers)
                    return
                if request.body.get("stream"):
                    self._stream(request, answer)
                    return
                payload = json.dumps(server._completion(request, answer)).encode()
                self._send(200, (KEEP_ALIVE_PADDING if answer.padding else b"") + payload, answer.headers)

            def _stream(self, request: Request, answer: Answer) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                events = [b": OPENROUTER PROCESSING\n\n"]
                events += [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in server._chunks(request, answer)]
                events.append(b"data: [DONE]\n\n")
                for i, event in enumerate(events):
                    if i and answer.chunk_delay and server._closing.wait(answer.chunk_delay):
                        return
                    self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler
