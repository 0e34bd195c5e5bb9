"""An LLM client for any OpenAI-compatible chat-completions endpoint, through the `openai` SDK.

Default endpoint: OpenRouter (one key, every model). Also OpenAI, Anthropic's OpenAI-compatible
endpoint, vLLM, Ollama, LM Studio — anything that speaks `POST /chat/completions`.

- **Where**: `base_url` argument (task spec `planner: {base_url: ...}` or `--base-url`), else
  `RESEARCH_AGENT_BASE_URL`, else OpenRouter.
- **Key**: `api_key` argument, else `RESEARCH_AGENT_API_KEY`, else `OPENROUTER_API_KEY`, else
  `OPENAI_API_KEY` (for an api.openai.com base URL, `OPENAI_API_KEY` comes before the OpenRouter
  one). The key is only ever handed to the SDK: it is never logged, never put into an error
  message (provider messages are scrubbed of it) and never written to the ledger.
- **Cost**: OpenRouter's `usage.cost` when present (plus the upstream cost for BYOK keys), else
  tokens x the price table (`research_agent/prices.py`, extendable by the user), else unknown (`None`) — never $0.
- **Failures**: 429 / 500 / 502 / 503 / 504 (`retry.HTTP_RETRY_STATUSES`) and connection errors are
  retried by `retry.py` with exponential backoff and jitter, honouring `Retry-After` (a wait longer
  than `max_retry_wait` is not attempted); another status is an `LLMError` at once; 402 (out of credits, key
  limit) raises `BudgetError` at once; 400 / 404 / 422 raise `ModelError` naming the model and the
  provider's message; 401 / 403 raise `AuthError`; each attempt has `timeout` seconds (a timeout
  is not retried: it already used the call's time) and raises `LLMTimeout`. All are `UserError`s:
  one line, no traceback.
- **Ledger**: with `ledger=`, every call is an `llm_call` event (model, tokens, cost, latency,
  outcome, attempts) and every known cost a `costs` row of kind `llm`.

The SDK's own retries are switched off (`max_retries=0`) so that each retry is ours, counted and
bounded; `openai` is imported lazily, on first use.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import UserError
from ..retry import HTTP_RETRY_STATUSES, Transient, aretrying, retry_after, retrying
from ..prices import PriceTable
from ..text import one_line

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
BASE_URL_VAR = "RESEARCH_AGENT_BASE_URL"
KEY_VARS = ("RESEARCH_AGENT_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY")
NO_KEY_MESSAGE = "no API key: set RESEARCH_AGENT_API_KEY, OPENROUTER_API_KEY or OPENAI_API_KEY"

MODEL_STATUSES = {400, 404, 422}
AUTH_STATUSES = {401, 403}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class LLMError(UserError):
    """A provider call failed. `transient` errors may succeed later; the others need the user."""

    transient = False

    def __init__(self, message: str, model: str | None = None, status: int | None = None):
        super().__init__(message)
        self.model = model
        self.status = status


class BudgetError(LLMError):
    """402: the account is out of credits or the key hit its spending limit."""


class ModelError(LLMError):
    """The provider rejected the request for this model: unknown model id, bad parameters (400/404/422)."""


class AuthError(LLMError):
    """The provider refused the key (401/403)."""


class ProviderError(LLMError):
    """Rate limits, server errors or connection failures that persisted through the retries."""

    transient = True


class LLMTimeout(LLMError):
    """A call took longer than its timeout."""

    transient = True


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    cost_source: str  # "provider" | "price table" | "unknown"
    reasoning_tokens: int = 0

    def __add__(self, other: "Usage | None") -> "Usage":
        if other is None:
            return self
        known = self.cost_usd is not None and other.cost_usd is not None
        sources = {self.cost_source, other.cost_source}
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            (self.cost_usd + other.cost_usd) if known else None,  # type: ignore[operator]
            sources.pop() if len(sources) == 1 else ("unknown" if not known else "mixed"),
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass
class Completion:
    model: str
    text: str
    usage: Usage
    latency_s: float
    raw: dict | None = None
    finish_reason: str | None = None
    reasoning: str | None = None
    provider: str | None = None  # OpenRouter: which upstream served the call
    attempts: int = 1


class _BodyError(Exception):
    """An error reported inside a 200 response (OpenRouter, after its keep-alive padding) or a stream."""

    def __init__(self, status: int | None, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _StreamTimeout(Exception):
    pass


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------


def resolve_base_url(base_url: str | None = None) -> str:
    url = (base_url or os.environ.get(BASE_URL_VAR) or DEFAULT_BASE_URL).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"base URL must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def resolve_api_key(base_url: str, api_key: str | None = None) -> str:
    if api_key:
        return api_key
    order = list(KEY_VARS)
    if (urlsplit(base_url).hostname or "").endswith("openai.com"):
        order = ["RESEARCH_AGENT_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY"]
    for var in order:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    raise UserError(NO_KEY_MESSAGE)


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint; see the module docstring."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 120,
                 max_retries: int = 3, prices: dict | None = None, ledger=None, *,
                 retry_base_delay: float = 0.5, max_retry_wait: float = 60.0):
        self.base_url = resolve_base_url(base_url)
        self._api_key = resolve_api_key(self.base_url, api_key)
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.prices = PriceTable(prices)
        self.ledger = ledger
        self.retry_base_delay = retry_base_delay
        self.max_retry_wait = max_retry_wait
        self.host = urlsplit(self.base_url).hostname or ""
        self.is_openrouter = self.host == "openrouter.ai" or self.host.endswith(".openrouter.ai")
        self._sync_client = None
        self._async_client = None
        self._async_loop = None
        self._ssl_context = None

    @classmethod
    def from_config(cls, planner: dict | None = None, *, base_url: str | None = None, ledger=None, **overrides: Any) -> "LLMClient":
        """From a task spec's `planner:` block (`base_url`, `timeout`, `max_retries`, `prices`); `base_url` wins."""
        planner = dict(planner or {})
        kwargs: dict[str, Any] = {"base_url": base_url or planner.get("base_url"), "ledger": ledger}
        for key in ("timeout", "max_retries", "prices"):
            if planner.get(key) is not None:
                kwargs[key] = planner[key]
        kwargs.update(overrides)
        return cls(**kwargs)

    def __repr__(self) -> str:  # never the key
        return f"LLMClient(base_url={self.base_url!r}, timeout={self.timeout}, max_retries={self.max_retries})"

    # --- SDK clients (lazy) -----------------------------------------------------------------

    def _client_options(self) -> dict:
        headers = {"X-Title": "research-agent"} if self.is_openrouter else {}
        return dict(api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout,
                    default_headers=headers or None)

    def sdk(self):
        """The synchronous `openai.OpenAI` client (created, and openai imported, on first use)."""
        if self._sync_client is None:
            import openai

            self._sync_client = openai.OpenAI(**self._client_options())
        return self._sync_client

    def async_sdk(self):
        """The `openai.AsyncOpenAI` client of the running event loop (created on first use in each loop)."""
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop:
            import openai

            # An AsyncOpenAI's connection pool belongs to one event loop: one client per loop.
            options = self._client_options()
            http_client = self._async_http_client(openai)
            if http_client is not None:
                options["http_client"] = http_client
            self._async_client = openai.AsyncOpenAI(**options)
            self._async_loop = loop
        return self._async_client

    def _async_http_client(self, openai):
        """The SDK's default async HTTP client, sharing one SSL context across event loops (building
        one loads the CA bundle: ~15 ms per `fuse_sync` otherwise). None: let the SDK build its own."""
        factory = getattr(openai, "DefaultAsyncHttpxClient", None)
        if factory is None:
            return None
        try:
            if self._ssl_context is None:
                try:
                    import httpx2 as http  # the SDK's HTTP library in recent openai releases
                except ImportError:
                    import httpx as http
                self._ssl_context = http.create_ssl_context()  # the same defaults (CA bundle, SSL_CERT_FILE) as the SDK's
            return factory(verify=self._ssl_context)
        except Exception:  # noqa: BLE001 - an optimisation only
            return None

    def close(self) -> None:
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        client, self._async_client, self._async_loop = self._async_client, None, None
        if client is not None:
            await client.close()

    # --- requests ---------------------------------------------------------------------------

    def _request(self, model: str, messages: list[dict], temperature, max_tokens, response_format, stream: bool) -> dict:
        if not model or not str(model).strip():
            raise UserError("no model given")
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        if self.is_openrouter:
            kwargs["extra_body"] = {"usage": {"include": True}}  # cost in every response
        return kwargs

    def complete(self, model: str, messages: list[dict], *, temperature: float | None = None, max_tokens: int | None = None,
                 response_format: dict | None = None, stream: bool = False, timeout: float | None = None) -> Completion:
        kwargs = self._request(model, messages, temperature, max_tokens, response_format, stream)
        limit = float(timeout or self.timeout)
        client = self.sdk()  # (the first call imports openai: not part of the call's latency)
        started = time.monotonic()
        attempt = 0
        try:
            for attempt_state in retrying(model, **self._retry_options(model)):
                with attempt_state:
                    attempt = attempt_state.retry_state.attempt_number
                    try:
                        if stream:
                            raw = self._stream_sync(client, kwargs, limit)
                        else:
                            raw = client.chat.completions.create(**kwargs, timeout=limit).model_dump()
                        return self._finish(model, raw, time.monotonic() - started, attempt)
                    except Exception as exc:  # noqa: BLE001 - classified; anything unknown is re-raised
                        self._raise_classified(exc, model, attempt, limit)
        except LLMError as error:
            self._log_failure(model, error, time.monotonic() - started, attempt)
            raise
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def acomplete(self, model: str, messages: list[dict], *, temperature: float | None = None, max_tokens: int | None = None,
                        response_format: dict | None = None, stream: bool = False, timeout: float | None = None) -> Completion:
        kwargs = self._request(model, messages, temperature, max_tokens, response_format, stream)
        limit = float(timeout or self.timeout)
        client = self.async_sdk()  # (the first call imports openai: not part of the call's latency)
        started = time.monotonic()
        attempt = 0
        try:
            async for attempt_state in aretrying(model, **self._retry_options(model)):
                with attempt_state:
                    attempt = attempt_state.retry_state.attempt_number
                    try:
                        if stream:
                            raw = await self._stream_async(client, kwargs, limit)
                        else:
                            raw = (await client.chat.completions.create(**kwargs, timeout=limit)).model_dump()
                        return self._finish(model, raw, time.monotonic() - started, attempt)
                    except Exception as exc:  # noqa: BLE001
                        self._raise_classified(exc, model, attempt, limit)
        except LLMError as error:
            self._log_failure(model, error, time.monotonic() - started, attempt)
            raise
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _retry_options(self, model: str) -> dict:
        """Backoff from `retry_base_delay` (at most 20 s a wait), a provider's Retry-After as asked (a longer
        one than `max_retry_wait` is refused by `_classify`); each wait an `llm_retry` ledger event."""

        def on_wait(attempt: int, wait: float, error: BaseException) -> None:
            status = getattr(getattr(error, "value", None), "status", None)
            self._log_retry(model, status, str(error), attempt, wait)

        return dict(attempts=self.max_retries + 1, base=self.retry_base_delay, cap=20.0, after_cap=self.max_retry_wait,
                    retry_if=None, on_wait=on_wait)

    # --- streaming --------------------------------------------------------------------------

    def _stream_sync(self, client, kwargs: dict, limit: float) -> dict:
        deadline = time.monotonic() + limit
        acc = _StreamAccumulator()
        with client.chat.completions.create(**kwargs, timeout=limit) as stream:
            for chunk in stream:
                acc.add(chunk.model_dump())
                if time.monotonic() > deadline:
                    raise _StreamTimeout()
        return acc.result()

    async def _stream_async(self, client, kwargs: dict, limit: float) -> dict:
        deadline = time.monotonic() + limit
        acc = _StreamAccumulator()
        stream = await client.chat.completions.create(**kwargs, timeout=limit)
        try:
            async for chunk in stream:
                acc.add(chunk.model_dump())
                if time.monotonic() > deadline:
                    raise _StreamTimeout()
        finally:
            await stream.close()
        return acc.result()

    # --- results ----------------------------------------------------------------------------

    def _finish(self, model: str, raw: dict, latency: float, attempts: int) -> Completion:
        error = raw.get("error")
        if error and not raw.get("choices"):
            status = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise _BodyError(status if isinstance(status, int) else None, str(message or "error in response body"))
        choice = (raw.get("choices") or [{}])[0] or {}
        message = choice.get("message") or {}
        text = _text_of(message.get("content"))
        usage = self.usage_of(model, raw.get("model"), raw.get("usage"))
        completion = Completion(
            model=model, text=text, usage=usage, latency_s=latency, raw=raw,
            finish_reason=choice.get("finish_reason"), reasoning=message.get("reasoning") or message.get("reasoning_content"),
            provider=raw.get("provider"), attempts=attempts,
        )
        self._log_ok(completion)
        return completion

    def usage_of(self, model: str, answered_model: str | None, usage: dict | None) -> Usage:
        """Tokens and cost of one response: provider's cost, else the price table, else unknown."""
        usage = usage or {}
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        reasoning = _int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))
        cost = usage.get("cost")
        if _is_number(cost):
            total = float(cost)
            upstream = (usage.get("cost_details") or {}).get("upstream_inference_cost")
            if usage.get("is_byok") and _is_number(upstream):
                total += float(upstream)  # BYOK: OpenRouter's fee plus what the upstream provider billed
            return Usage(prompt, completion, total, "provider", reasoning)
        if not usage or ("prompt_tokens" not in usage and "completion_tokens" not in usage):
            return Usage(prompt, completion, None, "unknown", reasoning)
        price = self.prices.lookup(model, answered_model)
        if price is None:
            return Usage(prompt, completion, None, "unknown", reasoning)
        cached = _int((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
        return Usage(prompt, completion, price.cost(prompt, completion, cached), "price table", reasoning)

    # --- failures ---------------------------------------------------------------------------

    def _raise_classified(self, exc: Exception, model: str, attempt: int, limit: float) -> None:
        """Raise `exc` as an LLMError — inside a `Transient` (carrying any Retry-After) when it is worth retrying."""
        error, retry, after, message = self._classify(exc, model, attempt, limit)
        if retry:
            raise Transient(message, after=after, value=error) from exc
        raise error from exc

    def _classify(self, exc: Exception, model: str, attempt: int, limit: float) -> tuple[LLMError, bool, float | None, str]:
        """(the error, whether to retry, the provider's Retry-After, the provider's message)."""
        import openai

        if isinstance(exc, (openai.APITimeoutError, _StreamTimeout)):
            return LLMTimeout(f"{model}: no answer within {limit:g} s", model), False, None, ""
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = self._provider_message(exc.body, exc.message)
            headers = exc.response.headers
        elif isinstance(exc, openai.APIConnectionError):
            status, message, headers = None, f"cannot reach {self.base_url}: {self._scrub(str(exc.__cause__ or exc))}", None
        elif isinstance(exc, _BodyError):
            status, message, headers = exc.status, self._scrub(exc.message), None
        elif isinstance(exc, openai.APIError):  # an error event inside a stream
            body = exc.body if isinstance(exc.body, dict) else {}
            code = body.get("code")
            status = code if isinstance(code, int) else None
            message, headers = self._provider_message(exc.body, exc.message), None
        else:
            raise exc
        where = f"{model}: " if model else ""
        if status == 402:
            return BudgetError(f"{where}out of credits or over the key's spending limit (402): {message}", model, status), False, None, message
        if status in AUTH_STATUSES:
            return AuthError(f"{where}the provider refused the API key ({status}): {message}", model, status), False, None, message
        if status in MODEL_STATUSES:
            return ModelError(f"model {model!r} rejected by {self.host or self.base_url} ({status}): {message}", model, status), False, None, message
        if status is None or status in HTTP_RETRY_STATUSES:
            label = f"{status}" if status else "connection error"
            if status == 429:
                error = ProviderError(f"{where}rate limited (429) after {attempt} attempts: {message}", model, status)
            else:
                error = ProviderError(f"{where}provider error ({label}) after {attempt} attempts: {message}", model, status)
            if attempt > self.max_retries:
                return error, False, None, message
            wait = retry_after(headers)
            if wait is not None and wait > self.max_retry_wait:
                error = ProviderError(f"{where}rate limited ({status}): the provider asks to retry after {wait:g} s: {message}", model, status)
                return error, False, None, message
            return error, True, wait, message
        return LLMError(f"{where}provider error ({status}): {message}", model, status), False, None, message

    def _provider_message(self, body: Any, fallback: str) -> str:
        message = None
        if isinstance(body, dict):
            error = body.get("error", body)
            if isinstance(error, dict):
                message = error.get("message") or error.get("detail")
                raw = (error.get("metadata") or {}).get("raw") if isinstance(error.get("metadata"), dict) else None
                if raw and isinstance(raw, str) and raw not in str(message):
                    message = f"{message} ({raw})" if message else raw
            elif isinstance(error, str):
                message = error
        elif isinstance(body, str) and body.strip():
            message = body.strip()
        return self._scrub(one_line(message or fallback, 400))

    def _scrub(self, text: str) -> str:
        """Provider messages sometimes echo the key they were sent: never pass it on."""
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text

    # --- ledger -----------------------------------------------------------------------------

    def _log_ok(self, c: Completion) -> None:
        if self.ledger is None:
            return
        if c.usage.cost_usd is not None:
            self.ledger.add_cost("llm", c.usage.cost_usd, experiment_id=None, detail=c.model)
        cost = "unknown cost" if c.usage.cost_usd is None else f"${c.usage.cost_usd:.6f}"
        self.ledger.event(
            "llm_call", f"{c.model} ok {c.latency_s:.1f}s {c.usage.prompt_tokens}+{c.usage.completion_tokens} tokens {cost}",
            model=c.model, prompt_tokens=c.usage.prompt_tokens, completion_tokens=c.usage.completion_tokens,
            cost_usd=c.usage.cost_usd, cost_source=c.usage.cost_source, latency_s=round(c.latency_s, 4), outcome="ok",
            attempts=c.attempts, provider=c.provider,
        )

    def _log_failure(self, model: str, error: LLMError, latency: float, attempts: int) -> None:
        if self.ledger is None:
            return
        outcome = type(error).__name__
        self.ledger.event(
            "llm_call", f"{model} {outcome} {latency:.1f}s", model=model, prompt_tokens=None, completion_tokens=None,
            cost_usd=None, latency_s=round(latency, 4), outcome=outcome, status=error.status, attempts=attempts,
            error=str(error),
        )

    def _log_retry(self, model: str, status: int | None, message: str, attempt: int, wait: float) -> None:
        if self.ledger is None:
            return
        self.ledger.event("llm_retry", f"{model} {status or 'connection error'}: retry in {wait:.1f}s",
                          model=model, status=status, attempt=attempt, wait_s=round(wait, 3), error=message)


class _StreamAccumulator:
    """Joins streamed chunks into the shape of a non-streamed response."""

    def __init__(self):
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.finish: str | None = None
        self.usage: dict | None = None
        self.meta: dict = {}

    def add(self, chunk: dict) -> None:
        if chunk.get("error") and not chunk.get("choices"):
            error = chunk["error"]
            status = error.get("code") if isinstance(error, dict) else None
            raise _BodyError(status if isinstance(status, int) else None,
                             str(error.get("message") if isinstance(error, dict) else error))
        for key in ("id", "model", "provider", "created"):
            if chunk.get(key) is not None:
                self.meta.setdefault(key, chunk[key])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            self.parts.append(_text_of(delta.get("content")))
            if delta.get("reasoning"):
                self.reasoning.append(delta["reasoning"])
            self.finish = choice.get("finish_reason") or self.finish
        if chunk.get("usage"):
            self.usage = chunk["usage"]

    def result(self) -> dict:
        message = {"role": "assistant", "content": "".join(self.parts)}
        if self.reasoning:
            message["reasoning"] = "".join(self.reasoning)
        return {**self.meta, "object": "chat.completion", "choices": [{"index": 0, "finish_reason": self.finish, "message": message}],
                "usage": self.usage}


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
