"""The one retry helper (research_agent.retry, on tenacity), through its real callers against local servers:
Retry-After is what is waited (not the backoff), each wait is logged, and the attempts are bounded."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

import pytest

from research_agent.research.base import SourceUnavailable
from research_agent.research.http import Http
from research_agent.retry import HTTP_RETRY_STATUSES, Transient, retry_after, retrying

from .servers import ReplayServer, Reply


class Waits(logging.Handler):
    """Collects the retry helper's log records; `seen` is set at the first one."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.seen = threading.Event()

    def emit(self, record):
        self.records.append(record)
        self.seen.set()


@pytest.fixture
def waits():
    handler, logger = Waits(), logging.getLogger("research_agent.retry")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_http_waits_what_retry_after_says_not_the_backoff(tmp_path, waits):
    with ReplayServer() as server:
        route = server.add("GET", "/x", Reply(429, "slow down", {"Retry-After": "0.05"}), Reply(200, "ok"))
        # The backoff alone would wait ~10 minutes: only the header's 0.05 s lets this finish.
        http = Http(cache=tmp_path, retries=2, backoff=600.0, timeout=5.0)
        got: dict = {}
        worker = threading.Thread(target=lambda: got.setdefault("response", http.request("GET", server.url + "/x", "x")),
                                  daemon=True)
        worker.start()
        assert waits.seen.wait(60), "no retry was logged"
        (record,) = waits.records
        assert record.args[-1] == pytest.approx(0.05)  # the wait logged before sleeping: the server's
        assert "HTTP 429" in record.getMessage() and "retry 1 of 2" in record.getMessage()
        worker.join(60)
        assert got["response"].status_code == 200 and got["response"].text == "ok"
        assert route.hits == 2


def test_http_gives_up_after_its_attempts_with_one_clear_error(tmp_path, waits):
    with ReplayServer() as server:
        route = server.add("GET", "/down", Reply(503, "busy", {"Retry-After": "0"}))
        with pytest.raises(SourceUnavailable, match=r"^the thing: HTTP 503 after 3 tries$"):
            Http(cache=tmp_path, retries=2, backoff=600.0, timeout=5.0).request("GET", server.url + "/down", "the thing")
        assert route.hits == 3 and len(waits.records) == 2


def test_backoff_grows_with_jitter_and_stops_at_the_cap(waits):
    calls = []

    def flaky():
        calls.append(1)
        raise Transient("not yet")

    slept: list[float] = []
    with pytest.raises(Transient, match="not yet"):  # the last failure itself, never tenacity's RetryError
        retrying("flaky", attempts=5, base=1.0, cap=3.0, jitter=0.25, sleep=slept.append)(flaky)
    assert len(calls) == 5 and len(slept) == 4
    for wait, nominal in zip(slept, (1.0, 2.0, 3.0, 3.0)):
        assert nominal * 0.75 <= wait <= nominal * 1.25
    assert [r.args[-1] for r in waits.records] == slept  # every wait logged, as slept


def test_only_what_asks_for_it_is_retried():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("a bug, not a blip")

    with pytest.raises(ValueError):
        retrying("broken", attempts=4, sleep=lambda s: None)(broken)
    assert calls == [1]


def test_retry_after_forms():
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past: now
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None and retry_after(None) is None
    assert HTTP_RETRY_STATUSES == {429, 500, 502, 503, 504}


def test_debug_switch_shows_the_package_log_on_stderr():
    code = ("import logging, sys\nfrom research_agent.logs import configure\nconfigure({flag})\n"
            "logging.getLogger('research_agent.retry').info('waiting 1.00 s')\n")
    quiet = subprocess.run([sys.executable, "-c", code.format(flag=False)], capture_output=True, text=True,
                           env={"PATH": ""})
    loud = subprocess.run([sys.executable, "-c", code.format(flag=True)], capture_output=True, text=True, env={"PATH": ""})
    by_env = subprocess.run([sys.executable, "-c", code.format(flag=False)], capture_output=True, text=True,
                            env={"PATH": "", "RESEARCH_AGENT_DEBUG": "1"})
    assert quiet.returncode == loud.returncode == by_env.returncode == 0
    assert quiet.stderr == ""
    for result in (loud, by_env):
        assert "research-agent debug" in result.stderr and "research_agent.retry: waiting 1.00 s" in result.stderr


def test_the_llm_client_waits_what_retry_after_says_and_records_each_wait(tmp_path, waits, monkeypatch):
    from research_agent.ledger import Ledger
    from research_agent.llm import LLMClient

    from .openai_server import Answer, OpenAIServer

    for var in ("RESEARCH_AGENT_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "RESEARCH_AGENT_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    script = [Answer(status=429, error="slow down", headers={"Retry-After": "0.05"}),
              Answer(status=503, error="busy", headers={"retry-after-ms": "20"}), Answer("done")]
    with OpenAIServer({"m": script, "teapot": Answer(status=418, error="short and stout")}) as server:
        # The backoff alone would wait ~10 minutes a retry: only the headers let this finish.
        client = LLMClient(base_url=server.url, api_key="sk-test-retry", ledger=ledger, retry_base_delay=600.0)
        result = client.complete("m", [{"role": "user", "content": "hi"}])
        with pytest.raises(Exception, match=r"provider error \(418\)"):
            client.complete("teapot", [{"role": "user", "content": "hi"}])
        assert server.hits("m") == 3 and server.hits("teapot") == 1  # 418 is not a retryable status
    assert result.text == "done" and result.attempts == 3
    retries = [json.loads(e["data"]) for e in ledger.events() if e["kind"] == "llm_retry"]
    assert [(r["status"], r["attempt"], r["wait_s"]) for r in retries] == [(429, 1, 0.05), (503, 2, 0.02)]
    assert [r.args[-1] for r in waits.records] == pytest.approx([0.05, 0.02])
