"""Research that reaches a whole history and learns between rounds, end to end through the real CLI.

- A fork history with dependent commits, a rename, a merge, a protected-only commit and a commit
  that builds only on the kept best: every commit is tried or skipped with its reason, and the
  plan's counts add up.
- A round that keeps nothing triggers a second research whose queries come from what failed; the
  hypothesis it finds (only findable that way) is tried and kept.
- With an LLM planner, the re-plan's prompt holds the ledger's results.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from research_agent.plan import load_plan

from .conftest import BENCH, ROOT, make_repo
from .openai_server import OpenAIServer

pytestmark = pytest.mark.slow


def cli(*args, cwd, env=None, timeout=900):
    env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def status(cwd, run="run") -> dict:
    return json.loads(cli("status", run, "--json", cwd=cwd).stdout)


def mined_counts(text: str) -> tuple[int, int, int, list[str]]:
    """(mined, tried, skipped, table rows) from the plan's Research log."""
    found = re.search(r"\*\*Mined commits\.\*\* (\d+) read from \d+ sources?: (\d+) tried, (\d+) skipped\.", text)
    assert found, text
    rows = [line for line in text.split("**Mined commits.**")[1].splitlines() if line.startswith("| ") and "---" not in line]
    return int(found.group(1)), int(found.group(2)), int(found.group(3)), rows[1:]  # minus the header row


@pytest.mark.skipif(not os.access("/usr/bin/cc", os.X_OK) and not os.access("/usr/bin/gcc", os.X_OK), reason="needs cc")
def test_a_fork_history_is_reached_stack_by_stack_and_every_commit_is_accounted_for(tmp_path):
    from .chain_target import build

    chain = build(tmp_path, rounds=2)
    short = {letter: sha[:12] for letter, sha in chain["shas"].items()}
    done = cli("optimize", str(chain["task"]), "--offline", "--run-dir", "run", cwd=tmp_path,
               env={"RESEARCH_AGENT_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr

    plan = load_plan(tmp_path / "run" / "plan.md")
    held = {h.id: h.fields.get("commits") for h in plan.hypotheses}
    by_commits = {commits: hid for hid, commits in held.items()}
    a, ab = by_commits[short["A"]], by_commits[f"{short['A']}, {short['B']}"]  # B only on top of A, as one hypothesis
    d, g = by_commits[short["D"]], by_commits[short["G"]]
    assert plan.hypothesis(d).files == ["lib/codec.c"]  # D edits third_party/codec.c in the fork: through the rename

    runs = {(e["round"], e["hypothesis"]): e for e in status(tmp_path)["experiments"] if e["id"].startswith("r")
            and "combine" not in e["id"]}
    assert runs[(1, a)]["decision"] == runs[(1, ab)]["decision"] == runs[(1, d)]["decision"] == "kept"
    assert runs[(1, g)]["decision"] == "failed"
    assert "undefined reference to `codec_fast_init'" in runs[(1, g)]["reason"]  # the linker's line, not make's
    assert runs[(2, g)]["decision"] == "kept"  # G in round 2, on the best that holds A
    assert {hid for (round_no, hid) in runs if round_no == 2} == {g}

    text = (tmp_path / "run" / "plan.md").read_text()
    mined, tried, skipped, rows = mined_counts(text)
    assert (mined, tried, skipped) == (8, 4, 4) and mined == tried + skipped == len(rows)
    outcome = {letter: next(row for row in rows if short[letter] in row) for letter in short}
    assert "merge commit" in outcome["E"] and "only protected files (bench.sh)" in outcome["F"]
    assert "no file the target has (docs/tuning.md)" in outcome["S"] and "only renames files" in outcome["C"]
    assert f"tried as {a}" in outcome["A"] and f"in {ab} (stacked)" in outcome["B"]
    assert f"tried as {d}" in outcome["D"] and f"tried as {g}" in outcome["G"]
    assert "re-mined on the round-1 best" in text and f"retried on the new best: {g}" in text

    report = (tmp_path / "run" / "report.md").read_text()
    assert "**Mined commits:** 8 read from 1 source — 4 tried, 4 skipped." in report
    assert "**Noise** (from the run's own A/B pairs)" in report
    log = json.loads((tmp_path / "run" / "research" / "log.json").read_text())
    assert [entry["step"] for entry in log] == ["first", "remine"] and log[1]["seconds"] >= 0


NOTES = {
    "unroll.md": "# Unroll the benchmark loop\n\nUnrolling the loop raises the benchmark score. The score of the "
                 "benchmark rises when the loop is unrolled.\n",
    "shaders.md": "# Shaders\n\nShaders on a GPU raise the frame rate score of a renderer.\n",
    "batching.md": "# Batching in crunch_rows\n\nThe engine spends its time in crunch_rows: batch the rows in blocks "
                   "of eight before crunching them.\n",
}
ENGINE = ("double crunch_rows(const double *v, int n)\n{\n    double s = 0;\n    for (int i = 0; i < n; i++)\n"
          "        s += v[i];\n    return s;\n}\n")
# A stand-in coding agent (the command runtime runs it): the batching idea raises the score, anything else
# edits crunch_rows without effect.
AGENT = """#!/bin/sh
if grep -q "crunch_rows" "$1"; then echo 150 > "$2/value.txt"
else sed -i 's|    return s;|    return s; /* unrolled */|' "$2/src/engine.c"; fi
"""


def learning_target(tmp_path: Path, planner: str = "") -> Path:
    make_repo(tmp_path / "target", {"value.txt": "100\n", "bench.sh": BENCH, "src/engine.c": ENGINE})
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / name).write_text(text)
    agent = tmp_path / "agent.sh"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    task = tmp_path / "task.yaml"
    task.write_text(
        "name: learning\nrepo: target\ngoal: Raise the benchmark score\nbench: ./bench.sh\nmetric: score\n"
        "timeouts: {build: 30, bench: 10, check: 30, runtime: 30}\n"
        "experiments: {parallel: 1, rounds: 2, repeats: 5, max_repeats: 10, min_effect: 0.02}\n"
        f"runtime: {{name: command, command: '{agent} {{brief}} {{workdir}}'}}\n"
        "research: {papers: 0, repos: 0, prs: 0, notes: 1, local: [notes/]}\n" + planner)
    return task


def test_a_round_that_keeps_nothing_researches_again_with_what_failed(tmp_path):
    task = learning_target(tmp_path)
    done = cli("optimize", str(task), "--offline", "--run-dir", "run", cwd=tmp_path,
               env={"RESEARCH_AGENT_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr

    first = json.loads((tmp_path / "run" / "research" / "sources.json").read_text())
    ranked = {item["id"]: item for item in first["items"]}
    assert [i for i, item in ranked.items() if item["selected"]] == ["local:notes/unroll.md"]
    # Against the goal alone the batching note ranks below the shader note: only the failures find it.
    score = {i: item["meta"]["score"]["relevance"] for i, item in ranked.items()}
    assert score["local:notes/batching.md"] < score["local:notes/shaders.md"]

    plan = load_plan(tmp_path / "run" / "plan.md")
    (h1,) = [h for h in plan.hypotheses if h.fields.get("research-round") == "1"]
    (found,) = [h for h in plan.hypotheses if h.fields.get("research-round") == "2"]
    assert found.sources == ["local:notes/batching.md"] and h1.sources == ["local:notes/unroll.md"]
    decisions = {e["id"]: e["decision"] for e in status(tmp_path)["experiments"]}
    assert decisions == {f"r1-{h1.id}": "discarded", f"r2-{found.id}": "kept"}

    log = json.loads((tmp_path / "run" / "research" / "log.json").read_text())
    again = log[-1]
    assert again["step"] == "again" and again["when"] == "after round 1: it kept nothing"
    assert any("crunch_rows" in query for query in again["queries"])  # the function the discarded change touched
    second = json.loads((tmp_path / "run" / "research" / "round-2" / "sources.json").read_text())
    assert [item["id"] for item in second["items"] if item["selected"]] == ["local:notes/batching.md"]
    assert "local:notes/unroll.md" not in {item["id"] for item in second["items"]}  # read already: not again

    improvements = (tmp_path / "run" / "IMPROVEMENTS.md").read_text()
    assert "**Found by** research round 2 (after round 1: it kept nothing)." in improvements
    assert "**Research round 2** (after round 1: it kept nothing)" in (tmp_path / "run" / "plan.md").read_text()


def test_the_llm_re_plan_prompt_holds_the_ledgers_results(tmp_path):
    from .test_llm_distiller import KEY, answer, hyp

    def planner(request):
        prompt = request.messages[-1]["content"]
        notes = re.findall(r'<untrusted id="(local:notes/[^"]+)" kind="note"', prompt)
        if "# RESULTS SO FAR" in prompt:
            return answer(hyp("Batch the rows in crunch_rows", notes))
        return answer(hyp("Unroll the benchmark loop", notes))

    task = learning_target(tmp_path, planner="planner: {model: m}\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    with OpenAIServer({"m": planner}) as server:
        env.update(RESEARCH_AGENT_CACHE=str(tmp_path / "cache"), RESEARCH_AGENT_BASE_URL=server.url,
                   RESEARCH_AGENT_API_KEY=KEY)
        done = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--run-dir", "run"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        prompts = [request.messages[-1]["content"] for request in server.requests_for("m")]
    assert len(prompts) == 2 and "# RESULTS SO FAR" not in prompts[0]
    results = prompts[1].split("# RESULTS SO FAR")[1].split("</untrusted>")[0]
    assert "r1-H1 'Unroll the benchmark loop' (sources: local:notes/unroll.md): discarded" in results
    assert re.search(r"discarded [+-]\d+\.\d% \[[+-]\d+\.\d%, [+-]\d+\.\d%\] over \d+ pairs — ", results)
    assert 'id="local:notes/batching.md"' in prompts[1]  # found with the learned queries
    plan = load_plan(tmp_path / "run" / "plan.md")
    assert plan.hypothesis("H2").title == "Batch the rows in crunch_rows"
    assert plan.hypothesis("H2").fields.get("research-round") == "2"
    assert {e["id"]: e["decision"] for e in status(tmp_path)["experiments"]}["r2-H2"] == "kept"
