"""The patch and command runtimes through a real run: edits land, no-ops fail, briefs carry the hypothesis."""

import json
import subprocess
import sys

from .conftest import make_target

FAST = "experiments: {parallel: 2, repeats: 3, max_repeats: 8}\n"


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def decisions(cwd, run="run"):
    status = json.loads(cli("status", run, "--json", cwd=cwd).stdout)
    return {e["hypothesis"]: e for e in status["experiments"]}


def test_command_runtime_edits_the_worktree_with_brief_and_workdir(tmp_path):
    repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}, "H2": {"notes.txt": "n\n"}}, task_extra=FAST)
    # An "agent" that reads the brief (it must name the hypothesis) and edits only when asked for H1.
    agent = tmp_path / "agent.sh"
    agent.write_text('#!/bin/sh\ngrep -q "Hypothesis H1" "$1" && echo 150 > "$2/value.txt"\nexit 0\n')
    agent.chmod(0o755)
    result = cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run",
                 "--runtime-cmd", f"{agent} {{brief}} {{workdir}}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = decisions(tmp_path)
    assert found["H1"]["decision"] == "kept"
    assert found["H2"]["decision"] == "failed" and found["H2"]["reason"] == "no change"
    brief = (tmp_path / "run" / "experiments" / "r1-H1" / "brief.md").read_text()
    assert "# Hypothesis H1: Try H1" in brief and "protected paths" in brief and "score" in brief
    assert "bench.sh" in brief  # the bench script is always protected, and the agent is told so


def test_command_runtime_failure_is_recorded_and_the_loop_goes_on(tmp_path):
    repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}, "H2": {"notes.txt": "n\n"}}, task_extra=FAST)
    result = cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", "--runtime-cmd", "echo boom; exit 9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = decisions(tmp_path)
    assert {e["decision"] for e in found.values()} == {"failed"}
    assert "runtime exited 9: boom" in found["H1"]["reason"]


def test_patch_runtime_keeps_a_real_gain_and_rejects_protected_edits(tmp_path):
    repo, task, plan = make_target(tmp_path, {
        "H1": {"value.txt": "150\n"},
        "H2": {"bench.sh": "#!/bin/sh\necho METRIC score=1000\n"},
    }, task_extra=FAST)
    assert cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", cwd=tmp_path).returncode == 0
    found = decisions(tmp_path)
    assert found["H1"]["decision"] == "kept" and found["H1"]["effect"]["ci"][0] > 0.3
    assert found["H2"]["decision"] == "rejected" and found["H2"]["effect"] is None
    patch = (tmp_path / "run" / "experiments" / "r1-H1" / "patch.diff").read_text()
    assert "+150" in patch


def test_two_winners_are_combined_and_regated(tmp_path):
    # H1 and H2 each win alone; stacked, H2's change conflicts with H1's, so it is dropped from the best.
    repo, task, plan = make_target(tmp_path, {
        "H1": {"value.txt": "150\n"},
        "H2": {"value.txt": "130\n"},
    }, task_extra=FAST)
    assert cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", cwd=tmp_path).returncode == 0
    status = json.loads(cli("status", "run", "--json", cwd=tmp_path).stdout)
    by_id = {e["id"]: e for e in status["experiments"]}
    assert by_id["r1-H1"]["decision"] == "kept" and by_id["r1-H2"]["decision"] == "kept"
    assert by_id["r1-combine-H2"]["decision"] == "failed"  # the patch conflicts on top of H1
    assert "not in the best" in by_id["r1-H2"]["reason"]
    assert status["best"]["hypothesis"] == "H1"
    best = subprocess.run(["git", "-C", str(tmp_path / "run" / "repo.git"), "show", f"{status['best_commit']}:value.txt"],
                          capture_output=True, text=True).stdout
    assert best == "150\n"


def test_second_round_retries_the_discarded_on_the_new_best(tmp_path):
    repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}, "H2": {"notes.txt": "n\n"}},
                                   task_extra="experiments: {parallel: 2, rounds: 3, repeats: 3, max_repeats: 8}\n")
    assert cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", cwd=tmp_path).returncode == 0
    status = json.loads(cli("status", "run", "--json", cwd=tmp_path).stdout)
    by_id = {e["id"]: e for e in status["experiments"]}
    assert set(by_id) == {"r1-H1", "r1-H2", "r2-H2"}  # round 3 never starts: round 2 kept nothing
    assert by_id["r2-H2"]["base_commit"] == status["best_commit"]  # tried on top of H1's win
    assert by_id["r2-H2"]["branch"].endswith("/H2-r2")
    assert status["best"]["hypothesis"] == "H1"
