"""Multi-model fusion and `research-agent fuse`, against the scripted local OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from research_agent.llm import BudgetError, FusionError, JudgeError, LLMClient, fuse_sync
from tests.openai_server import Answer, OpenAIServer

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-fusion-test-key"
PANEL = {
    "m1": Answer("Lyon is the capital of France.", cost=0.001),
    "m2": Answer("Paris is the capital of France.", cost=0.002),
    "m3": Answer("Marseille is the capital of France.", cost=0.003),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("RESEARCH_AGENT_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "RESEARCH_AGENT_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def shown(request) -> list[tuple[str, str]]:
    """(label, answer) pairs in the order the judge was shown them."""
    return re.findall(r"Answer ([A-H]):\n<<<\n(.*?)\n>>>", request.text, re.S)


def judge_liking(word: str, cost: float = 0.0005):
    """A consistent judge: 9 for the answer containing `word`, 3 for the others, whatever the order."""

    def judge(request):
        if not shown(request):  # asked as a panel member, not as the judge
            return Answer(f"{word} is the answer.", cost=cost)
        scores = {label: 9 if word in text else 3 for label, text in shown(request)}
        best = max(scores, key=scores.get)
        return Answer(json.dumps({"scores": scores, "best": best, "rationale": f"only {word} is right"}), cost=cost)

    return judge


def biased_judge(request):
    """Always prefers whatever it is shown first."""
    scores = {label: 9 if label == "A" else 5 for label, _ in shown(request)}
    return Answer(json.dumps({"scores": scores, "best": "A", "rationale": "the first one reads best"}), cost=0.0005)


def client_for(server, **options) -> LLMClient:
    return LLMClient(base_url=server.url, api_key=KEY, **options)


# --- best-of --------------------------------------------------------------------------------


def test_best_of_picks_member_2_in_both_orders_verbatim():
    with OpenAIServer({**PANEL, "judge": judge_liking("Paris")}) as server:
        result = fuse_sync(client_for(server), "What is the capital of France?", ["m1", "m2", "m3"], "judge", seed=7)
        first, second = [shown(r) for r in server.requests_for("judge")]
    assert result.final == "Paris is the capital of France."  # verbatim, never rewritten by the judge
    assert result.mode == "best-of" and result.chosen == "m2" and result.judge == "judge"
    assert result.scores == {"m1": 3.0, "m2": 9.0, "m3": 3.0}
    assert result.agreement == 1.0 and result.failed == [] and result.warnings == []
    assert [text for _, text in second] == [text for _, text in first][::-1]  # the second pass is the reverse order
    assert [m.model for m in result.members] == ["m1", "m2", "m3"]
    assert [m.usage.cost_usd for m in result.members] == [0.001, 0.002, 0.003]
    assert len(result.judge_calls) == 2
    assert result.total_cost_usd == pytest.approx(0.001 + 0.002 + 0.003 + 2 * 0.0005)
    assert "best m2" in result.rationale and "only Paris is right" in result.rationale
    assert result.wall_s > 0


def test_position_biased_judge_is_reported_by_agreement():
    with OpenAIServer({**PANEL, "judge": biased_judge}) as server:
        result = fuse_sync(client_for(server), "What is the capital of France?", ["m1", "m2", "m3"], "judge", seed=7)
    assert result.agreement is not None and result.agreement < 1
    assert result.agreement == 0.0  # every pair flips with the order
    assert any("position bias" in w for w in result.warnings)
    assert result.final in {a.text for a in PANEL.values()}  # still a member's answer, verbatim


def test_one_order_only_when_asked():
    with OpenAIServer({**PANEL, "judge": judge_liking("Paris")}) as server:
        result = fuse_sync(client_for(server), "Capital?", ["m1", "m2", "m3"], "judge", both_orders=False, seed=1)
        assert server.hits("judge") == 1
    assert result.chosen == "m2" and result.agreement is None


# --- merge ----------------------------------------------------------------------------------


def test_merge_synthesises_and_keeps_the_members_and_the_rationale():
    def merger(request):
        answers = [text for _, text in shown(request)]
        assert len(answers) == 3
        return Answer("<rationale>B and C are wrong; A is right.</rationale>\n<answer>Paris — not Lyon or Marseille.</answer>", cost=0.004)

    with OpenAIServer({**PANEL, "judge": merger}) as server:
        result = fuse_sync(client_for(server), "What is the capital of France?", ["m1", "m2", "m3"], "judge", mode="merge", seed=3)
        (request,) = server.requests_for("judge")
    assert result.final == "Paris — not Lyon or Marseille."
    assert result.mode == "merge" and result.chosen is None
    assert "B and C are wrong; A is right." in result.rationale and "=m2" in result.rationale
    assert [m.text for m in result.members] == [a.text for a in PANEL.values()]
    assert "can be wrong" in request.text and "What is the capital of France?" in request.text
    assert result.total_cost_usd == pytest.approx(0.006 + 0.004)


# --- debate ---------------------------------------------------------------------------------


def debater(name: str):
    def answer(request):
        previous = [m["content"] for m in request.messages if m["role"] == "assistant"]
        n = int(previous[-1].rsplit(" r", 1)[1]) + 1 if previous else 0
        return Answer(f"{name} r{n}", cost=0.001)

    return answer


def test_debate_rounds_show_each_member_the_others_answers():
    script = {m: debater(m) for m in ("m1", "m2", "m3")}
    script["judge"] = judge_liking("m3")
    with OpenAIServer(script) as server:
        result = fuse_sync(client_for(server), "Debate this.", ["m1", "m2", "m3"], "judge", mode="debate", rounds=2, seed=5)
        m1 = server.requests_for("m1")
    assert [m.rounds for m in result.members] == [[f"{m} r0", f"{m} r1", f"{m} r2"] for m in ("m1", "m2", "m3")]
    assert len(m1) == 3
    round1, round2 = m1[1], m1[2]
    assert round1.messages[0] == {"role": "user", "content": "Debate this."}
    assert round1.messages[1] == {"role": "assistant", "content": "m1 r0"}
    assert "m2 r0" in round1.messages[2]["content"] and "m3 r0" in round1.messages[2]["content"]
    assert "m1 r0" not in round1.messages[2]["content"]
    assert "m2 r1" in round2.text and "m3 r1" in round2.text and "m2 r0" not in round2.text
    assert result.final == "m3 r2" and result.chosen == "m3"
    assert result.members[0].usage.cost_usd == pytest.approx(0.003)  # three rounds, summed
    assert result.total_cost_usd == pytest.approx(9 * 0.001 + 2 * 0.0005)


def test_debate_without_a_judge_returns_the_first_members_final_answer():
    with OpenAIServer({m: debater(m) for m in ("m1", "m2")}) as server:
        result = fuse_sync(client_for(server), "Debate this.", ["m1", "m2"], None, mode="debate", rounds=1)
    assert result.final == "m1 r1" and result.judge is None and result.judge_calls == []


# --- failures -------------------------------------------------------------------------------


def test_a_slow_member_times_out_and_the_survivors_are_used():
    script = {**PANEL, "m3": Answer("too late", delay=5), "judge": judge_liking("Paris")}
    with OpenAIServer(script) as server:
        started = time.monotonic()
        result = fuse_sync(client_for(server), "Capital?", ["m1", "m2", "m3"], "judge", member_timeout=0.5, seed=1)
        elapsed = time.monotonic() - started
    assert result.failed == ["m3"] and result.members[2].error == "timed out after 0.5 s"
    assert result.chosen == "m2" and result.scores == {"m1": 3.0, "m2": 9.0}
    assert any(w.startswith("m3 failed (timed out after 0.5 s); continuing with 2 of 3") for w in result.warnings)
    assert elapsed < 2.0


def test_an_erroring_member_is_listed_and_skipped():
    script = {**PANEL, "m1": Answer(status=500, error="upstream exploded"), "judge": judge_liking("Paris")}
    with OpenAIServer(script) as server:
        result = fuse_sync(client_for(server, max_retries=0), "Capital?", ["m1", "m2", "m3", "ghost"], "judge", seed=1)
    assert result.failed == ["m1", "ghost"]
    assert "upstream exploded" in result.members[0].error
    assert "ghost is not a valid model ID" in result.members[3].error
    assert result.final == "Paris is the capital of France."


def test_all_members_failing_is_a_clear_error():
    with OpenAIServer({"m1": Answer(status=500, error="down"), "judge": judge_liking("x")}) as server:
        with pytest.raises(FusionError) as info:
            fuse_sync(client_for(server, max_retries=0), "Capital?", ["m1", "ghost"], "judge")
    message = str(info.value)
    assert message.startswith("all 2 panel members failed — m1: ") and "ghost is not a valid model ID" in message
    assert "\n" not in message


@pytest.mark.parametrize("judge_answer", [Answer(status=500, error="judge down"), Answer("I like them all!")])
def test_judge_failure_falls_back_to_the_best_ranked_member_with_a_warning(judge_answer):
    with OpenAIServer({**PANEL, "judge": judge_answer}) as server:
        result = fuse_sync(client_for(server, max_retries=0), "Capital?", ["m2", "m1", "m3"], "judge", seed=1)
    assert result.final == "Paris is the capital of France." and result.chosen == "m2"  # first in the panel
    assert any("judge judge failed: returning the best-ranked member answer" in w for w in result.warnings)
    assert result.agreement is None and result.scores == {}


def test_one_failed_judging_order_uses_the_other():
    script = {**PANEL, "judge": [Answer("garbage"), judge_liking("Paris")]}
    with OpenAIServer(script) as server:
        result = fuse_sync(client_for(server), "Capital?", ["m1", "m2", "m3"], "judge", seed=1)
    assert result.chosen == "m2" and result.agreement is None
    assert any("position bias not checked" in w for w in result.warnings)


def test_merge_judge_failure_falls_back_to_a_member():
    with OpenAIServer({**PANEL, "judge": Answer("", delay=3)}) as server:
        result = fuse_sync(client_for(server), "Capital?", ["m1", "m2"], "judge", mode="merge", member_timeout=0.4)
    assert result.final == "Lyon is the capital of France." and result.chosen == "m1"
    assert any("returning the best-ranked member answer unmerged" in w for w in result.warnings)


def test_unknown_judge_is_an_error_naming_it():
    with OpenAIServer(PANEL) as server:
        with pytest.raises(JudgeError, match="judge 'nope' is not usable: .*nope is not a valid model ID"):
            fuse_sync(client_for(server), "Capital?", ["m1", "m2"], "nope")


def test_judge_refusing_a_too_long_request_gives_way_to_the_members():
    too_long = Answer(status=400, error="This endpoint's maximum context length is 8192 tokens.")
    with OpenAIServer({**PANEL, "judge": too_long}) as server:
        result = fuse_sync(client_for(server), "Capital?", ["m2", "m1"], "judge", seed=1)
    assert result.chosen == "m2" and any("maximum context length" in w for w in result.warnings)


def test_a_judge_on_its_own_panel_is_warned_about():
    with OpenAIServer({**PANEL, "m2": judge_liking("Paris")}) as server:
        result = fuse_sync(client_for(server), "Capital?", ["m1", "m3", "m2"], "m2", both_orders=False, seed=1)
    assert any("also on the panel" in w for w in result.warnings)
    assert result.failed == [] and result.chosen == "m2" and result.final == "Paris is the answer."


def test_out_of_credits_stops_the_fusion():
    with OpenAIServer({**PANEL, "m3": Answer(status=402, error="Insufficient credits"), "judge": judge_liking("Paris")}) as server:
        with pytest.raises(BudgetError):
            fuse_sync(client_for(server), "Capital?", ["m1", "m2", "m3"], "judge")


def test_unknown_cost_makes_the_total_unknown_not_zero():
    with OpenAIServer({**PANEL, "m1": "Lyon, no cost reported", "judge": judge_liking("Paris")}) as server:
        result = fuse_sync(client_for(server), "Capital?", ["m1", "m2"], "judge", seed=1)
    assert result.total_cost_usd is None and result.members[0].usage.cost_usd is None
    assert any(w.startswith("cost unknown for m1") for w in result.warnings)


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": "  "}, "empty prompt"),
    ({"mode": "vote"}, "unknown mode 'vote': use one of best-of, merge, debate"),
    ({"judge": None}, "--mode best-of needs a judge model (--judge MODEL)"),
    ({"models": [f"m{i}" for i in range(9)]}, "9 models: a panel has at most 8"),
    ({"models": ["m1", "m1"]}, "model 'm1' is listed twice"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    args = {"prompt": "Capital?", "models": ["m1", "m2"], "judge": "judge", "mode": "best-of", **kwargs}
    client = LLMClient(base_url="http://127.0.0.1:9/v1", api_key=KEY)
    with pytest.raises(FusionError) as info:
        fuse_sync(client, args["prompt"], args["models"], args["judge"], mode=args["mode"])
    assert str(info.value) == message


# --- the fuse command -----------------------------------------------------------------------


def cli(*args: str, stdin: str | None = None, key: str | None = KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RESEARCH_AGENT_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "RESEARCH_AGENT_BASE_URL")}
    env["COLUMNS"] = "200"
    if key:
        env["RESEARCH_AGENT_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "research_agent.cli", "fuse", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def server():
    script = {**PANEL, "judge": judge_liking("Paris"),
              "merger": Answer("<rationale>m2 is right</rationale><answer>Paris.</answer>", cost=0.004)}
    for name in ("d1", "d2"):
        script[name] = debater(name)
    with OpenAIServer(script) as srv:
        yield srv


def test_fuse_cli_best_of_json(server):
    run = cli("What is the capital of France?", "--models", "m1,m2,m3", "--judge", "judge", "--base-url", server.url,
              "--seed", "2", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["final"] == "Paris is the capital of France." and data["chosen"] == "m2" and data["agreement"] == 1.0
    assert [m["usage"]["cost_usd"] for m in data["members"]] == [0.001, 0.002, 0.003]
    assert data["total_cost_usd"] == pytest.approx(0.007)
    assert KEY not in run.stdout + run.stderr


def test_fuse_cli_merge_json_from_stdin(server):
    run = cli("-", "--models", "m1,m2", "--judge", "merger", "--mode", "merge", "--base-url", server.url, "--json",
              stdin="What is the capital of France?\n")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["final"] == "Paris." and data["mode"] == "merge" and "m2 is right" in data["rationale"]
    assert server.requests_for("m1")[-1].messages == [{"role": "user", "content": "What is the capital of France?\n"}]


def test_fuse_cli_debate_json(server):
    run = cli("Debate.", "--models", "d1,d2", "--judge", "judge", "--mode", "debate", "--rounds", "2",
              "--base-url", server.url, "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert [m["rounds"] for m in data["members"]] == [["d1 r0", "d1 r1", "d1 r2"], ["d2 r0", "d2 r1", "d2 r2"]]
    assert data["mode"] == "debate" and data["final"] in ("d1 r2", "d2 r2")


def test_fuse_cli_prints_the_panel_table(server):
    run = cli("What is the capital of France?", "--models", "m1,m2,m3,ghost", "--judge", "judge", "--base-url", server.url,
              "--seed", "2")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for model, cost in (("m1", "$0.001000"), ("m2", "$0.002000"), ("m3", "$0.003000")):
        (line,) = [l for l in out.splitlines() if l.startswith(f"│ {model} ")]
        assert cost in line and re.search(r"\d+\.\d\d s", line), line
    assert "ok, chosen" in [l for l in out.splitlines() if l.startswith("│ m2 ")][0]
    assert "failed: model 'ghost' rejected" in out
    judges = [l for l in out.splitlines() if l.startswith("│ judge ")]
    assert len(judges) == 2 and all("$0.000500" in l for l in judges)
    assert "Paris is the capital of France." in out
    assert "total cost $0.007000" in out and "agreement 1.00" in out and "failed: ghost" in out


@pytest.mark.parametrize("args, stdin, key, message", [
    (["Q?", "--models", "m1", "--judge", "judge"], None, None,
     "no API key: set RESEARCH_AGENT_API_KEY, OPENROUTER_API_KEY or OPENAI_API_KEY"),
    (["Q?", "--models", "nope", "--judge", "judge"], None, KEY,
     "all 1 panel members failed — nope: model 'nope' rejected by 127.0.0.1 (400): nope is not a valid model ID"),
    (["  ", "--models", "m1", "--judge", "judge"], None, KEY, "empty prompt"),
    (["-", "--models", "m1", "--judge", "judge"], "\n", KEY, "empty prompt on stdin"),
    (["Q?", "--models", "m1", "--judge", "judge", "--mode", "vote"], None, KEY,
     "unknown mode 'vote': use one of best-of, merge, debate"),
    (["Q?", "--models", "m1,m2", "--judge", "nope"], None, KEY,
     "judge 'nope' is not usable: model 'nope' rejected by 127.0.0.1 (400): nope is not a valid model ID"),
    (["Q?", "--models", "m1,m2"], None, KEY, "--mode best-of needs a judge model: --judge MODEL"),
    (["Q?"], None, KEY, "no models: give a panel of 1 to 8 (--models a,b,c)"),
])
def test_fuse_cli_bad_input_is_one_line(server, args, stdin, key, message):
    run = cli(*args, "--base-url", server.url, stdin=stdin, key=key)
    assert run.returncode == 2
    assert run.stderr == f"research-agent: {message}\n"
    assert run.stdout == ""


def test_help_does_not_import_openai():
    code = ("import runpy, sys\nsys.argv = ['research-agent', '--help']\n"
            "try:\n    runpy.run_module('research_agent.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('openai' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.stdout.strip().endswith("False") and "fuse" in run.stdout


def test_price_file_for_the_fuse_command(tmp_path):
    from research_agent.errors import UserError
    from research_agent.fuse_command import load_prices

    good = tmp_path / "prices.yaml"
    good.write_text("local-llm: {input: 0, output: 0}\nmy/model: {prompt: 1.5, completion: 6}\n")
    assert load_prices(good) == {"local-llm": {"input": 0, "output": 0}, "my/model": {"prompt": 1.5, "completion": 6}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("my/model: {input: cheap, output: 6}\n")
    with pytest.raises(UserError, match="bad.yaml: my/model: prices must be numbers"):
        load_prices(bad)
    with OpenAIServer({"local-llm": Answer("free", prompt_tokens=100, completion_tokens=10)}) as server:
        client = LLMClient(base_url=server.url, api_key=KEY, prices=load_prices(good))
        usage = client.complete("local-llm", [{"role": "user", "content": "hi"}]).usage
    assert usage.cost_usd == 0.0 and usage.cost_source == "price table"  # $0 only because the user said so
