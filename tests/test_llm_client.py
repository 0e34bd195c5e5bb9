"""The LLM client through the real `openai` SDK, against the local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from research_agent.errors import UserError
from research_agent.ledger import Ledger
from research_agent.llm import (AuthError, BudgetError, LLMClient, LLMTimeout, ModelError, ProviderError, fuse_sync)
from research_agent.llm.client import NO_KEY_MESSAGE
from tests.openai_server import Answer, OpenAIServer

FIXTURES = Path(__file__).parent / "fixtures" / "openrouter"
RECORDED = "paperqa_openrouter_deepseek-r1_chat_completion"
KEY = "sk-or-v1-TESTKEY-0123456789abcdef-never-written"
ASK = [{"role": "user", "content": "What is XAI exactly?"}]  # 4 words -> 4 prompt tokens


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("RESEARCH_AGENT_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "RESEARCH_AGENT_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def client_for(server: OpenAIServer, **options) -> LLMClient:
    options.setdefault("api_key", KEY)
    return LLMClient(base_url=server.url, **options)


# --- cost ------------------------------------------------------------------------------------


def test_cost_comes_from_usage_cost_like_openrouter():
    with OpenAIServer({"m": Answer("an exact answer", cost=0.0123, reasoning="thinking", reasoning_tokens=5)}) as server:
        result = client_for(server).complete("m", ASK)
    assert result.text == "an exact answer"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (4, 3)
    assert result.usage.cost_usd == 0.0123 and result.usage.cost_source == "provider"
    assert result.usage.reasoning_tokens == 5 and result.reasoning == "thinking"
    assert result.provider == "Local" and result.finish_reason == "stop" and result.attempts == 1


def test_recorded_openrouter_body_with_keepalive_padding_is_parsed_verbatim():
    raw = (FIXTURES / f"{RECORDED}.raw.txt").read_bytes()
    assert raw.startswith(b"\n") and raw.lstrip().startswith(b"{")  # the whitespace padding is really there
    recorded = json.loads(raw)
    request = json.loads((FIXTURES / f"{RECORDED}.request.json").read_text())
    model = request["model"]
    with OpenAIServer({model: Answer(raw=raw)}) as server:
        result = client_for(server).complete(model, request["messages"], temperature=0.0)
        sent = server.requests[0].body
    assert sent["model"] == model and sent["temperature"] == 0.0 and sent["messages"] == request["messages"]
    assert result.text == recorded["choices"][0]["message"]["content"]
    assert result.reasoning == recorded["choices"][0]["message"]["reasoning"]
    assert result.provider == "Novita"
    assert result.usage.cost_usd == pytest.approx(0.0027806) and result.usage.cost_source == "provider"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.reasoning_tokens) == (1608, 662, 346)
    assert result.raw["usage"]["cost_details"]["upstream_inference_cost"] == pytest.approx(0.0027806)


def test_cost_from_the_price_table_when_the_provider_reports_none():
    with OpenAIServer({"local-model": Answer("one two three four", prompt_tokens=1000, completion_tokens=500),
                       "openai/gpt-4o-mini": Answer("x", prompt_tokens=2_000_000, completion_tokens=1_000_000)}) as server:
        client = client_for(server, prices={"local-model": {"input": 2.0, "output": 10.0}})
        user = client.complete("local-model", ASK)
        builtin = client.complete("openai/gpt-4o-mini", ASK)
    assert user.usage.cost_source == "price table"
    assert user.usage.cost_usd == pytest.approx((1000 * 2.0 + 500 * 10.0) / 1e6)
    assert builtin.usage.cost_source == "price table"
    assert builtin.usage.cost_usd == pytest.approx(2 * 0.15 + 1 * 0.60)  # built-in list price of gpt-4o-mini


def test_unknown_price_is_none_never_zero(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with OpenAIServer({"mystery": "a b c"}) as server:
        result = client_for(server, ledger=ledger).complete("mystery", ASK)
    assert result.usage.cost_usd is None and result.usage.cost_source == "unknown"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (4, 3)
    assert ledger.cost() == 0 and not ledger.costs()  # no $0 row pretending to know
    (event,) = [e for e in ledger.events() if e["kind"] == "llm_call"]
    data = json.loads(event["data"])
    assert data["cost_usd"] is None and data["cost_source"] == "unknown" and "unknown cost" in event["message"]


def test_byok_cost_adds_the_upstream_bill():
    client = LLMClient(base_url="http://127.0.0.1:9/v1", api_key=KEY)
    usage = client.usage_of("m", "m", {"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.001, "is_byok": True,
                                       "cost_details": {"upstream_inference_cost": 0.02}})
    assert usage.cost_usd == pytest.approx(0.021) and usage.cost_source == "provider"


# --- retries, budget, timeouts ---------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_header():
    script = [Answer(status=429, error="Rate limit exceeded", headers={"Retry-After": "0.4"}), Answer("finally", cost=0.001)]
    with OpenAIServer({"m": script}) as server:
        started = time.monotonic()
        # backoff alone would wait >= 3.75 s: the header's 0.4 s must be what is used
        result = client_for(server, retry_base_delay=5.0).complete("m", ASK)
        elapsed = time.monotonic() - started
        first, second = server.requests
    assert result.text == "finally" and result.attempts == 2
    assert second.received - first.received >= 0.4
    assert elapsed < 2.0


def test_retry_after_too_long_is_not_waited_for():
    with OpenAIServer({"m": Answer(status=429, error="slow down", headers={"Retry-After": "3600"})}) as server:
        started = time.monotonic()
        with pytest.raises(ProviderError, match="retry after 3600 s"):
            client_for(server).complete("m", ASK)
        assert time.monotonic() - started < 1.0 and server.hits("m") == 1


def test_500_is_retried_with_backoff_then_gives_up():
    with OpenAIServer({"flaky": [Answer(status=500, error="boom"), Answer(status=503, error="busy"), "ok"],
                       "down": Answer(status=500, error="Internal Server Error")}) as server:
        client = client_for(server, retry_base_delay=0.05, max_retries=2)
        assert client.complete("flaky", ASK).text == "ok"
        assert server.hits("flaky") == 3
        with pytest.raises(ProviderError) as info:
            client.complete("down", ASK)
        assert server.hits("down") == 3  # 1 + max_retries
    assert "provider error (500) after 3 attempts: Internal Server Error" in str(info.value)
    assert isinstance(info.value, UserError) and info.value.transient


def test_error_inside_a_200_body_is_an_error_and_retried():
    script = [Answer(body_error={"code": 502, "message": "upstream died"}, padding=True), Answer("second time", cost=0.002)]
    with OpenAIServer({"m": script, "broke": Answer(body_error={"code": 402, "message": "no credits"})}) as server:
        client = client_for(server, retry_base_delay=0.01)
        assert client.complete("m", ASK).text == "second time"
        with pytest.raises(BudgetError):
            client.complete("broke", ASK)


def test_402_stops_at_once_with_a_budget_error(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with OpenAIServer({"m": Answer(status=402, error="Insufficient credits. Add more using https://openrouter.ai/credits")}) as server:
        started = time.monotonic()
        with pytest.raises(BudgetError) as info:
            client_for(server, ledger=ledger, retry_base_delay=5).complete("m", ASK)
        assert time.monotonic() - started < 0.5 and server.hits("m") == 1
    message = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in message
    assert message.startswith("m: out of credits or over the key's spending limit (402): Insufficient credits")
    (event,) = [e for e in ledger.events() if e["kind"] == "llm_call"]
    assert json.loads(event["data"])["outcome"] == "BudgetError"


def test_per_call_timeout_sync_and_async():
    with OpenAIServer({"slow": Answer("late", delay=5)}) as server:
        client = client_for(server, timeout=60)
        started = time.monotonic()
        with pytest.raises(LLMTimeout, match="slow: no answer within 0.3 s"):
            client.complete("slow", ASK, timeout=0.3)
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        with pytest.raises(LLMTimeout):
            asyncio.run(client.acomplete("slow", ASK, timeout=0.3))
        assert time.monotonic() - started < 1.5
        assert server.hits("slow") == 2  # a timeout is not retried


def test_unknown_model_shows_the_providers_error_plainly():
    with OpenAIServer({}, unknown_status=400) as openrouter, OpenAIServer({}, unknown_status=404) as openai_like:
        with pytest.raises(ModelError) as first:
            client_for(openrouter).complete("deepseek/no-such-model", ASK)
        with pytest.raises(ModelError) as second:
            client_for(openai_like).complete("gpt-99", ASK)
    assert str(first.value) == "model 'deepseek/no-such-model' rejected by 127.0.0.1 (400): deepseek/no-such-model is not a valid model ID"
    assert str(second.value) == "model 'gpt-99' rejected by 127.0.0.1 (404): The model `gpt-99` does not exist or you do not have access to it."


# --- streaming --------------------------------------------------------------------------------


def test_streaming_sync_and_async():
    answer = Answer("streamed in several small pieces", cost=0.0042, chunk_delay=0.01)
    with OpenAIServer({"m": answer}) as server:
        client = client_for(server)
        result = client.complete("m", ASK, stream=True)
        async_result = asyncio.run(client.acomplete("m", ASK, stream=True))
        body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    for got in (result, async_result):
        assert got.text == "streamed in several small pieces"
        assert got.usage.cost_usd == 0.0042 and got.usage.cost_source == "provider"
        assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (4, 5)
        assert got.finish_reason == "stop" and got.provider == "Local"


# --- configuration and keys -------------------------------------------------------------------


def test_no_key_is_one_line_naming_the_variables():
    with pytest.raises(UserError) as info:
        LLMClient()
    assert str(info.value) == NO_KEY_MESSAGE == "no API key: set RESEARCH_AGENT_API_KEY, OPENROUTER_API_KEY or OPENAI_API_KEY"


def test_key_and_base_url_come_from_the_environment_in_order(monkeypatch):
    with OpenAIServer({"m": "hi"}) as server:
        monkeypatch.setenv("RESEARCH_AGENT_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "openai-key")
        LLMClient().complete("m", ASK)
        monkeypatch.setenv("OPENROUTER_API_KEY", "openrouter-key")
        LLMClient().complete("m", ASK)
        monkeypatch.setenv("RESEARCH_AGENT_API_KEY", "ours")
        client = LLMClient()
        client.complete("m", ASK)
        assert [r.api_key for r in server.requests] == ["openai-key", "openrouter-key", "ours"]
    assert client.base_url == server.url and "ours" not in repr(client)
    assert LLMClient(base_url="https://api.openai.com/v1", api_key=None)._api_key == "ours"
    monkeypatch.delenv("RESEARCH_AGENT_API_KEY")
    assert LLMClient(base_url="https://api.openai.com/v1")._api_key == "openai-key"  # OpenAI's own key first there
    assert LLMClient()._api_key == "openrouter-key"


def test_openrouter_asks_for_the_cost_and_other_endpoints_do_not():
    openrouter = LLMClient(api_key=KEY)  # the default endpoint
    assert openrouter.base_url == "https://openrouter.ai/api/v1"
    assert openrouter._request("m", ASK, None, None, None, False)["extra_body"] == {"usage": {"include": True}}
    with OpenAIServer({"m": "hi"}) as server:
        client_for(server).complete("m", ASK)
        assert "usage" not in server.requests[0].body


def test_the_key_never_reaches_a_file_in_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ledger = Ledger(run_dir / "ledger.sqlite")

    def echo_key(request):  # like OpenAI's "Incorrect API key provided: sk-..."
        return Answer(status=401, error=f"Incorrect API key provided: {request.api_key}")

    script = {
        "good": Answer("fine", cost=0.001),
        "echo": echo_key,
        "flaky": [Answer(status=429, error=f"rate limited for key {KEY}", headers={"Retry-After": "0.05"}), "ok"],
        "judge": Answer(json.dumps({"scores": {"A": 5, "B": 7}, "best": "B", "rationale": "B"}), cost=0.001),
    }
    with OpenAIServer(script) as server:
        client = client_for(server, ledger=ledger)
        client.complete("good", ASK)
        client.complete("flaky", ASK)
        with pytest.raises(AuthError) as info:
            client.complete("echo", ASK)
        fuse_sync(client, "question", ["good", "flaky", "echo"], "judge", seed=1)
        assert all(r.api_key == KEY for r in server.requests)  # the key really was in use
    assert KEY not in str(info.value) and "***" in str(info.value)
    ledger._db.execute("PRAGMA wal_checkpoint(FULL)")
    assert any(e["kind"] == "llm_call" for e in ledger.events())
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "ledger.sqlite" for p in files)
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data, path
        assert b"TESTKEY" not in data, path
    ledger.close()
    assert KEY.encode() not in (run_dir / "ledger.sqlite").read_bytes()


def test_every_call_goes_into_the_ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with OpenAIServer({"a": Answer("one two", cost=0.01), "b": Answer(status=404, error="no such model")}) as server:
        client = client_for(server, ledger=ledger)
        client.complete("a", ASK)
        with pytest.raises(ModelError):
            client.complete("b", ASK)
    calls = [(e["message"], json.loads(e["data"])) for e in ledger.events() if e["kind"] == "llm_call"]
    assert len(calls) == 2
    message, data = calls[0]
    assert message.startswith("a ok ")
    assert {k: data[k] for k in ("model", "prompt_tokens", "completion_tokens", "cost_usd", "outcome")} == \
        {"model": "a", "prompt_tokens": 4, "completion_tokens": 2, "cost_usd": 0.01, "outcome": "ok"}
    assert data["latency_s"] >= 0
    assert calls[1][1]["outcome"] == "ModelError"
    rows = sqlite3.connect(tmp_path / "ledger.sqlite").execute("SELECT kind, usd, detail, experiment_id FROM costs").fetchall()
    assert rows == [("llm", 0.01, "a", None)]
