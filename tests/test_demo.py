"""The bundled demo, end to end through the real CLI: kept, discarded, failed, rejected."""

import json
import subprocess
import sys

import pytest

from .conftest import DEMO, ROOT, snapshot_of_user_repo

pytestmark = pytest.mark.slow


def cli(*args, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_demo_ends_kept_discarded_failed_rejected(tmp_path):
    before = snapshot_of_user_repo(DEMO)
    run_dir = tmp_path / "run"
    done = cli("optimize", "tasks/demo/task.yaml", "--plan", "tasks/demo/plan.md", "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "works on a snapshot" in done.stderr  # the demo is a folder inside this repository

    status = json.loads(cli("status", str(run_dir), "--json").stdout)
    decisions = {e["hypothesis"]: e["decision"] for e in status["experiments"]}
    assert decisions == {"H1": "kept", "H2": "discarded", "H3": "failed", "H4": "rejected"}
    by_id = {e["hypothesis"]: e for e in status["experiments"]}
    assert by_id["H1"]["effect"]["ci"][0] > 0.5  # loop interchange is a large, certain gain
    # A/A: the renamed local compiles to the same binary, so it is never benchmarked.
    assert by_id["H2"]["reason"].startswith("identical build output") and by_id["H2"]["effect"] is None
    assert by_id["H2"]["checks"]["build"]["saved_s"] > 0
    assert by_id["H1"]["checks"]["holdout"][0]["status"] == "pass"  # the gain holds on the unseen size too
    assert by_id["H1"]["checks"]["guards"][0]["name"] == "rss_mb"
    tree = subprocess.run(["git", "-C", str(run_dir / "repo.git"), "ls-tree", "-r", "--name-only", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert "bench-holdout.sh" not in tree and "bench.sh" in tree  # the holdout stays out of the run's repository
    assert "check failed" in by_id["H3"]["reason"]
    assert "bench.sh" in by_id["H4"]["reason"]
    assert by_id["H1"]["branch"].endswith("/H1")
    assert status["best"]["hypothesis"] == "H1"
    assert status["baseline"]["median"] > 0 and len(status["baseline"]["samples"]) == 5

    # The run's copy of the plan records each decision; the user's plan and demo folder are untouched.
    plan_text = (run_dir / "plan.md").read_text()
    for hid, decision in decisions.items():
        assert f"### {hid}:" in plan_text
    assert plan_text.count("- status: kept") == 1 and plan_text.count("- status: rejected") == 1
    assert snapshot_of_user_repo(DEMO) == before
    for name in ("report.md", "report.html", "progress.png", "IMPROVEMENTS.md"):
        assert (run_dir / name).is_file()
    assert not any((run_dir / "worktrees").iterdir()) if (run_dir / "worktrees").exists() else True
    best = subprocess.run(["git", "-C", str(run_dir / "repo.git"), "rev-parse", f"ra/{run_dir.name}/best"],
                          capture_output=True, text=True).stdout.strip()
    assert best == status["best"]["commit"]


def test_offline_demo_mines_the_competitor_keeps_the_speedup_and_discards_the_regression(tmp_path):
    import os

    run_dir = tmp_path / "run"
    env = {**os.environ, "RESEARCH_AGENT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", "tasks/demo/task.yaml", "--offline",
                           "--run-dir", str(run_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    status = json.loads(cli("status", str(run_dir), "--json").stdout)
    decided = {e["decision"]: e for e in status["experiments"]}
    assert sorted(e["decision"] for e in status["experiments"]) == ["discarded", "kept"]
    plan = (run_dir / "plan.md").read_text()
    kept = decided["kept"]
    block = plan.split(f"### {kept['hypothesis']}:")[1].split("### ")[0]
    assert "local:competitors/fast-matmul.bundle@" in block and "kernel.c" in block
    assert decided["discarded"]["effect"]["median"] < 0  # the regression measured as slower
    assert "not in the cache (offline)" in plan  # arXiv and GitHub skipped, and the plan says so
    improvements = (run_dir / "IMPROVEMENTS.md").read_text()
    assert "fast-matmul" in improvements
