"""A killed run resumes without repeating finished work; an interrupted one stops cleanly."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from .conftest import make_target

pytestmark = pytest.mark.slow

HYPOTHESES = {
    "H1": {"value.txt": "110\n"},
    "H2": {"notes.txt": "more notes\n"},
    "H3": {"value.txt": "130\n"},
    "H4": {"notes.txt": "other notes\n"},
    "H5": {"value.txt": "99\n"},
    "H6": {"value.txt": "140\n"},
}
EXPERIMENTS = "experiments: {parallel: 2, repeats: 3, max_repeats: 8, min_effect: 0.01}\n"


def start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ledger_rows(run_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def wait_until_mid_round(run_dir: Path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        if (run_dir / "ledger.sqlite").exists():
            states = [row[0] for row in ledger_rows(run_dir, "SELECT status FROM experiments")]
            if states.count("done") >= 1 and states.count("running") >= 1:
                return
        time.sleep(0.05)
    raise AssertionError("the run never reached the middle of a round")


def processes_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd") or ""
        if cwd.startswith(str(folder)):
            found.append(process)
    return found


def finished_snapshot(run_dir):
    experiments = ledger_rows(run_dir, "SELECT id, attempt, decision, finished FROM experiments WHERE status='done'")
    samples = ledger_rows(run_dir, "SELECT experiment_id, attempt, arm, idx, value FROM samples ORDER BY 1,2,3,4")
    return experiments, samples


def test_sigkill_mid_round_then_resume_repeats_nothing(tmp_path):
    repo, task, plan = make_target(tmp_path, HYPOTHESES, delay="0.15", task_extra=EXPERIMENTS)
    run_dir = tmp_path / "run"
    proc = start(["optimize", str(task), "--plan", str(plan), "--run-dir", "run"], tmp_path)
    wait_until_mid_round(run_dir, proc)
    proc.kill()  # SIGKILL: no handler runs, worktrees and a 'running' experiment are left behind
    proc.wait(30)
    time.sleep(1)  # let orphaned benchmark commands end
    done_before, samples_before = finished_snapshot(run_dir)
    assert done_before and len(done_before) < len(HYPOTHESES)

    resumed = start(["resume", "run"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err

    rows = ledger_rows(run_dir, "SELECT id, hypothesis, attempt, decision, finished FROM experiments WHERE kind='hypothesis'")
    assert sorted(r[1] for r in rows) == sorted(HYPOTHESES)  # one experiment per hypothesis, no duplicates
    assert all(r[3] in ("kept", "discarded", "failed", "rejected") for r in rows)
    after = {r[0]: r for r in rows}
    for exp_id, attempt, decision, finished in done_before:
        assert after[exp_id][2:] == (attempt, decision, finished), "a finished experiment was repeated"
    samples_after = set(ledger_rows(run_dir, "SELECT experiment_id, attempt, arm, idx, value FROM samples"))
    assert set(samples_before) <= samples_after, "a finished sample was lost"
    assert not list((run_dir / "worktrees").iterdir()), "stale worktrees were not cleaned up"
    live = ledger_rows(run_dir, "SELECT id FROM workers WHERE status != 'down'")
    assert live == []
    status = json.loads(subprocess.run([sys.executable, "-m", "research_agent.cli", "status", "run", "--json"],
                                       cwd=tmp_path, capture_output=True, text=True).stdout)
    assert status["state"] == "done"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_cleanly_and_prints_the_resume_command(tmp_path, signum, code):
    repo, task, plan = make_target(tmp_path, HYPOTHESES, delay="0.3", task_extra=EXPERIMENTS)
    run_dir = tmp_path / "run"
    proc = start(["optimize", str(task), "--plan", str(plan), "--run-dir", "run"], tmp_path)
    wait_until_mid_round(run_dir, proc)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "research-agent resume run" in err and "Traceback" not in err
    time.sleep(0.2)
    assert processes_in(run_dir) == [], "a command survived the interrupt"
    assert not list((run_dir / "worktrees").iterdir())
    assert ledger_rows(run_dir, "SELECT status FROM runs") == [("interrupted",)]
    assert ledger_rows(run_dir, "SELECT COUNT(*) FROM experiments WHERE status='running'") == [(0,)]
    assert "- status: running" not in (run_dir / "plan.md").read_text()

    resumed = subprocess.run([sys.executable, "-m", "research_agent.cli", "resume", "run"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    decided = ledger_rows(run_dir, "SELECT COUNT(*) FROM experiments WHERE kind='hypothesis' AND decision IS NOT NULL")
    assert decided == [(len(HYPOTHESES),)]
