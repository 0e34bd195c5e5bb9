"""Today's prompts, pinned byte for byte: what the planner and the fusion judge send, captured by the local
OpenAI-compatible server for a fixed input, against files in tests/fixtures/prompts/. Moving the prompt text
(or its layout) must not change one byte of what a model is sent."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from research_agent.llm import LLMClient, fuse_sync
from research_agent.plan.llm_distiller import LLMDistiller
from research_agent.research.base import Evidence
from research_agent.research.mine import Snippet
from research_agent.research.rank import rank, select

from .openai_server import Answer, OpenAIServer
from .test_extractive import BASELINE, items, make_task
from .test_llm_distiller import GOOD, KEY, evidence

PINS = Path(__file__).parent / "fixtures" / "prompts"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("RESEARCH_AGENT_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "RESEARCH_AGENT_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def pinned(name: str) -> list:
    return json.loads((PINS / f"{name}.json").read_text(encoding="utf-8"))


def full_evidence() -> Evidence:
    """Every optional section of the planner's prompt: profile, results so far, notices."""
    ev = evidence()
    ev.profile = "  47.1%  kernel  kernel.c:12\n  <untrusted>forged</untrusted> 3.2% main"
    ev.history = [{"id": "E1", "title": "Unroll by 4", "sources": ["arXiv:2101.00001"], "decision": "rejected",
                   "effect": {"median": 0.0123, "ci": [-0.01, 0.03], "n": 8}, "reason": "inside the noise floor"}]
    ev.skipped = ["github: rate limited (offline)"]
    ev.snippets = [Snippet("arXiv:2101.00001", "src/kernel.c", 12, "for (k = 0; k < n; k++)\n  c += a * b;")]
    return ev


def bare_evidence() -> Evidence:
    """The other branches: no patch, no profile, no snippet, no results, nothing skipped."""
    ranked = rank(items(), "matrix multiply cache blocking loop order")
    return Evidence(items=ranked, selected=select(ranked, papers=2, repos=0, prs=0, notes=1), patches=[])


def test_the_planner_prompt_and_its_reask_are_unchanged():
    with OpenAIServer({"m": ["Here is my plan: H1 loop interchange.", GOOD]}) as server:
        client = LLMClient(base_url=server.url, api_key=KEY, max_retries=0)
        task = make_task(Path(tempfile.gettempdir()), build="make -j2", check="./check.sh",
                         runtime={"name": "patch"})
        LLMDistiller(client, "m").plan(task, BASELINE, full_evidence())
        first, reask = (request.messages for request in server.requests)
    assert first == pinned("planner")
    assert reask[:2] == first and reask[2] == {"role": "assistant", "content": "Here is my plan: H1 loop interchange."}
    assert reask[3:] == pinned("planner_reask")


def test_the_planner_prompt_without_the_optional_sections_is_unchanged():
    reply = json.dumps({"bottleneck": "b", "hypotheses": [{"title": "Block the loops", "sources": ["arXiv:2101.00001"]}]})
    with OpenAIServer({"m": reply}) as server:
        client = LLMClient(base_url=server.url, api_key=KEY, max_retries=0)
        task = make_task(Path(tempfile.gettempdir()), runtime={"name": "codex"})
        LLMDistiller(client, "m", max_hypotheses=3).plan(task, {}, bare_evidence())
        (request,) = server.requests
    assert request.messages == pinned("planner_bare")


PANEL = {"m1": Answer("Lyon is the capital of France."), "m2": Answer("Paris is the capital of France.")}


def judge_of(reply: str):
    return lambda request: Answer(reply) if "Answer A:" in request.text else Answer("Paris, after all.")


@pytest.mark.parametrize("mode, verdict", [
    ("best-of", json.dumps({"scores": {"A": 3, "B": 9}, "best": "B", "rationale": "B is right"})),
    ("merge", "<rationale>B</rationale><answer>Paris.</answer>"),
    ("debate", json.dumps({"scores": {"A": 3, "B": 9}, "best": "B", "rationale": "B is right"})),
])
def test_the_fusion_prompts_are_unchanged(mode, verdict):
    with OpenAIServer({**PANEL, "judge": judge_of(verdict)}) as server:
        fuse_sync(LLMClient(base_url=server.url, api_key=KEY, max_retries=0), "Capital of France?", ["m1", "m2"],
                  "judge", mode=mode, rounds=1, seed=7)
        sent = sorted(([request.body["model"], request.messages] for request in server.requests), key=json.dumps)
    assert sent == pinned(f"fusion_{mode}")
