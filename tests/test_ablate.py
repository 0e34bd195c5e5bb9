"""`research-agent ablate`: a research arm and a control arm from one baseline, through the real CLI.

The coding agent is a scripted one (the `command` runtime): it applies the brief's proposed diff when there
is one, else makes a fixed no-op (a comment), and reports a fixed cost, so budgets are exact.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import DEMO, ROOT, make_repo, make_target
from .openai_server import OpenAIServer
from .test_resume import ledger_rows, start

pytestmark = pytest.mark.slow

AGENT = '''\
import re, subprocess, sys
brief, workdir = open(sys.argv[1]).read(), sys.argv[2]
found = re.search(r"```diff\\n(.*?)```", brief, re.S)
if found:
    subprocess.run(["git", "apply", "-"], input=found.group(1), text=True, cwd=workdir, check=True)
else:  # the fixed no-op: a comment that changes nothing measurable
    with open(workdir + "/" + sys.argv[3], "a") as f:
        f.write(sys.argv[4] + "\\n")
print("RESEARCH_AGENT_COST_USD=0.10")
'''


def agent_cmd(tmp_path: Path, noop_file: str, comment: str) -> str:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    return f"{sys.executable} {script} {{brief}} {{workdir}} {noop_file} '{comment}'"


def cli(*args, cwd=ROOT, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def rows(run_dir: Path, sql: str) -> list[dict]:
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql).fetchall()]
    finally:
        db.close()


def test_demo_research_arm_keeps_the_competitor_speedup_control_keeps_nothing(tmp_path):
    run_dir = tmp_path / "run"
    done = cli("ablate", "tasks/demo/task.yaml", "--offline", "--runtime", "command",
               "--runtime-cmd", agent_cmd(tmp_path, "kernel.c", "/* explored: no change */"), "--experiments", "2",
               "--run-dir", str(run_dir), env={"RESEARCH_AGENT_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    experiments = rows(run_dir, "SELECT * FROM experiments WHERE kind='hypothesis'")
    by_arm = {arm: [e for e in experiments if e["arm"] == arm] for arm in ("research-1", "control-1")}
    assert [len(v) for v in by_arm.values()] == [2, 2]  # equal experiments
    research_kept = [e for e in by_arm["research-1"] if e["decision"] == "kept"]
    assert len(research_kept) == 1 and research_kept[0]["ci_lo"] > 0.5
    plan = (run_dir / "arms" / "research-1" / "plan.md").read_text()
    block = plan.split(f"### {research_kept[0]['hypothesis']}:")[1].split("### ")[0]
    assert "local:competitors/fast-matmul.bundle@" in block  # the competitor's speed-up
    assert [e["decision"] for e in by_arm["control-1"]] and all(e["decision"] != "kept" for e in by_arm["control-1"])
    assert {e["origin"] for e in by_arm["control-1"]} == {"explore"}
    control_plan = (run_dir / "arms" / "control-1" / "plan.md").read_text()
    assert "## Sources\n" in control_plan and "local:" not in control_plan  # nothing read, nothing cited
    brief = (run_dir / "experiments" / by_arm["control-1"][0]["id"] / "brief.md").read_text()
    assert "# Sources" not in brief and "```diff" not in brief and "kernel.c" in brief  # the code, not the sources

    # The report's numbers are the ledger's.
    report = (run_dir / "ablation.md").read_text()
    line = next(l for l in report.splitlines() if l.startswith("| research |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:4] == ["2", "1"]
    effect = research_kept[0]
    assert cells[4] == f"{effect['effect_median']:+.1%} [{effect['ci_lo']:+.1%}, {effect['ci_hi']:+.1%}]"
    assert "competitor 1" in cells[8]
    control = next(l for l in report.splitlines() if l.startswith("| control |"))
    assert [c.strip() for c in control.strip("|").split("|")][2:5] == ["2", "0", "+0.0% [+0.0%, +0.0%]"]
    assert "Research paid" in report
    spent = sum(r["usd"] for r in rows(run_dir, "SELECT usd FROM costs WHERE experiment_id LIKE 'research-1-%'"))
    assert f"| research-1 | extractive | 2 | 1 | {effect['hypothesis']} |" in report and f"${spent:.2f}" in report
    assert (run_dir / "ablation.html").read_text().count("<img") == 1 and (run_dir / "ablation.png").stat().st_size > 1000
    assert f"ra/{run_dir.name}/research-1/best" in subprocess.run(
        ["git", "-C", str(run_dir / "repo.git"), "branch", "--list"], capture_output=True, text=True).stdout


def synthetic(tmp_path: Path, delay: str | None = None, explore: int = 0) -> tuple[Path, str]:
    _repo, task, _plan = make_target(tmp_path, {}, delay=delay,
                                     task_extra="experiments: {parallel: 2, repeats: 3, max_repeats: 8, min_effect: 0.01}\n"
                                                f"research: {{explore: {explore}}}\n")
    return task, agent_cmd(tmp_path, "notes.txt", "more notes")


def test_equal_budget_neither_arm_overspends(tmp_path):
    task, agent = synthetic(tmp_path, explore=5)  # five ideas per arm; the budget affords two
    done = cli("ablate", str(task), "--offline", "--runtime", "command", "--runtime-cmd", agent, "--budget-usd", "0.25",
               "--run-dir", "run", cwd=tmp_path, env={"RESEARCH_AGENT_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "run"
    for arm in ("research-1", "control-1"):
        spent = sum(r["usd"] for r in rows(run_dir, f"SELECT usd FROM costs WHERE experiment_id LIKE '{arm}-%'"))
        assert spent <= 0.25 + 1e-9, (arm, spent)
        finished = rows(run_dir, f"SELECT id FROM experiments WHERE arm='{arm}' AND status='done'")
        assert len(finished) == 2  # $0.10 each: a third would bring the arm to $0.30
    stops = [e["message"] for e in rows(run_dir, "SELECT message FROM events WHERE kind='arm_budget'")]
    assert len(stops) == 2 and all("no more launches for this arm" in s for s in stops)
    assert "both" not in done.stderr and "Traceback" not in done.stderr


def test_ablate_refuses_the_patch_runtime_and_both_budgets(tmp_path):
    task, _agent = synthetic(tmp_path)
    patch = cli("ablate", str(task), "--offline", "--run-dir", "run", cwd=tmp_path)
    assert patch.returncode == 2 and patch.stderr.count("\n") == 1
    assert patch.stderr.startswith("research-agent: ablate needs a coding-agent runtime")
    both = cli("ablate", str(task), "--offline", "--budget-usd", "1", "--experiments", "2", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr and both.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_sigkill_mid_ablation_then_resume_repeats_nothing(tmp_path):
    task, agent = synthetic(tmp_path, delay="0.15")
    run_dir = tmp_path / "run"
    env = {**os.environ, "RESEARCH_AGENT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "research_agent.cli", "ablate", str(task), "--offline", "--runtime",
                             "command", "--runtime-cmd", agent, "--experiments", "3", "--run-dir", "run"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait on the ledger's state: one finished, one running
        assert proc.poll() is None, proc.stderr.read()
        states = [r[0] for r in ledger_rows(run_dir, "SELECT status FROM experiments")] if (run_dir / "ledger.sqlite").exists() else []
        if states.count("done") >= 1 and states.count("running") >= 1:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the ablation never reached the middle of its experiments")
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(30)
    before = ledger_rows(run_dir, "SELECT id, attempt, decision, finished FROM experiments WHERE status='done'")
    assert before
    resumed = subprocess.run([sys.executable, "-m", "research_agent.cli", "resume", "run"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = {r[0]: r for r in ledger_rows(run_dir, "SELECT id, attempt, decision, finished FROM experiments")}
    for row in before:
        assert after[row[0]] == row, "a finished experiment was repeated"
    hyp_rows = ledger_rows(run_dir, "SELECT arm, COUNT(*) FROM experiments WHERE kind='hypothesis' AND decision IS NOT NULL GROUP BY arm")
    assert sorted(hyp_rows) == [("control-1", 3), ("research-1", 3)]
    assert ledger_rows(run_dir, "SELECT status FROM runs") == [("done",)]
    assert (run_dir / "ablation.md").exists()


NOTE = "# Unrolling\n\nZEBRA-QUOTE: unroll the scoring loop by four to cut the loop overhead of the score.\n"


def test_llm_planner_control_prompt_holds_no_source_text(tmp_path):
    from .test_llm_distiller import KEY, answer, hyp

    make_repo(tmp_path / "target", {"value.txt": "100\n", "bench.sh": "#!/bin/sh\necho METRIC score=$(cat value.txt)\n",
                                    "notes.txt": "notes\n", "src/engine.c": "int engine(void) { return 1; }\n"})
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "unroll.md").write_text(NOTE)
    agent = agent_cmd(tmp_path, "notes.txt", "more notes")
    (tmp_path / "task.yaml").write_text(
        "name: llm-ablate\nrepo: target\ngoal: Raise the score\nbench: ./bench.sh\nmetric: score\n"
        "timeouts: {build: 30, bench: 10, check: 30, runtime: 30}\n"
        "experiments: {parallel: 1, repeats: 3, max_repeats: 8, min_effect: 0.01}\n"
        "research: {papers: 0, repos: 0, prs: 0, local: [notes/]}\nplanner: {model: m}\n")

    def planner(request):
        prompt = request.messages[-1]["content"]
        if "# NO SOURCES" in prompt:
            return answer(hyp("Cache the engine's result", []))
        return answer(hyp("Unroll the scoring loop", re.findall(r'<untrusted id="(local:[^"]+)"', prompt)))

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    with OpenAIServer({"m": planner}) as server:
        env.update(RESEARCH_AGENT_CACHE=str(tmp_path / "cache"), RESEARCH_AGENT_BASE_URL=server.url, RESEARCH_AGENT_API_KEY=KEY)
        done = subprocess.run([sys.executable, "-m", "research_agent.cli", "ablate", "task.yaml", "--runtime", "command",
                               "--runtime-cmd", agent, "--experiments", "1", "--run-dir", "run"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        prompts = [request.messages[-1]["content"] for request in server.requests_for("m")]
    control = [p for p in prompts if "# NO SOURCES" in p]
    research = [p for p in prompts if "# NO SOURCES" not in p]
    assert len(control) == 1 and len(research) == 1
    assert "ZEBRA-QUOTE" in research[0] and "local:notes/unroll.md" in research[0]
    assert "ZEBRA-QUOTE" not in control[0] and "unroll" not in control[0].lower() and "kind=\"note\"" not in control[0]
    assert "int engine(void)" in control[0]  # the code is what the control planner sees instead
    control_plan = (tmp_path / "run" / "arms" / "control-1" / "plan.md").read_text()
    assert "Cache the engine's result" in control_plan and "- origin: explore" in control_plan
    planner_costs = {r["experiment_id"] for r in rows(tmp_path / "run", "SELECT experiment_id FROM costs WHERE kind='llm'")}
    assert planner_costs <= {"research-1:plan", "control-1:plan"}


def test_old_ledgers_stay_readable(tmp_path):
    from research_agent.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger

    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:3]):
        db.executescript("BEGIN;" + script + f"PRAGMA user_version={number + 1}; COMMIT;")
    db.execute("INSERT INTO experiments (id, hypothesis, title, round, status, seq) VALUES ('r1-H1','H1','t',1,'done',1)")
    db.commit()
    db.close()
    ledger = Ledger(path)
    assert ledger._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    (row,) = ledger.experiments()
    assert row["id"] == "r1-H1" and row["arm"] is None and row["origin"] is None and ledger.arms() == []
    ledger.close()


def test_dryrun_on_skypilot_writes_the_tasks_and_launches_nothing(tmp_path):
    run_dir = tmp_path / "run"
    done = cli("ablate", "tasks/demo/task.yaml", "--offline", "--runtime", "command", "--runtime-cmd", "true {brief}",
               "--backend", "skypilot", "--dryrun", "--experiments", "2", "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert (run_dir / "sky" / "cluster.yaml").is_file() and "nothing launched" in done.stdout
    (run,) = rows(run_dir, "SELECT status, options FROM runs")
    assert run["status"] == "dryrun" and json.loads(run["options"])["ablate"]["experiments"] == 2
    assert rows(run_dir, "SELECT * FROM experiments") == [] and rows(run_dir, "SELECT * FROM arms") == []


def test_seeds_repeat_each_arm_and_a_null_difference_is_called_not_significant(tmp_path):
    task, agent = synthetic(tmp_path)  # research finds nothing offline: both arms explore the same no-op
    done = cli("ablate", str(task), "--offline", "--runtime", "command", "--runtime-cmd", agent, "--experiments", "1",
               "--seeds", "2", "--run-dir", "run", cwd=tmp_path, env={"RESEARCH_AGENT_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "run"
    assert [a["label"] for a in rows(run_dir, "SELECT label FROM arms ORDER BY seed, arm DESC")] == [
        "research-1", "control-1", "research-2", "control-2"]
    order = [e["arm"] for e in rows(run_dir, "SELECT arm FROM experiments WHERE kind='hypothesis' ORDER BY seq")]
    assert order == ["research-1", "control-1", "control-2", "research-2"]  # interleaved, the first arm alternating
    report = (run_dir / "ablation.md").read_text()
    assert "**Not significant:" in report and "mean over 2 seeds" in report
    assert all(e["decision"] != "kept" for e in rows(run_dir, "SELECT decision FROM experiments"))
