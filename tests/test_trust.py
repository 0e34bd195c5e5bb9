"""Results you can trust beyond one number, end to end through the real CLI on targets built here:
a memory guard, a holdout benchmark, the identical-build short cut and the noisy-worker check."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, make_target

pytestmark = pytest.mark.slow

# Allocates (and touches) mem.txt MiB, then prints the score in value.txt with 1% noise.
MEMORY_BENCH = """#!/bin/sh
exec python3 -S -c "
import random
block = bytearray(int(open('mem.txt').read()) * 2**20)
block[::4096] = b'x' * len(block[::4096])
print('METRIC score=%f' % (float(open('value.txt').read()) * random.gauss(1, 0.01)))
"
"""

# The score of an input size: its line in speeds.txt, else the '*' line (1% noise).
PROG = """import random, sys
table = dict(line.split() for line in open('speeds.txt'))
print('METRIC score=%f' % (float(table.get(sys.argv[1], table['*'])) * random.gauss(1, 0.01)))
"""


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def optimize(task: Path, plan: Path, run_dir: Path):
    done = cli("optimize", str(task), "--plan", str(plan), "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def experiments(run_dir: Path) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute("SELECT * FROM experiments")]
    finally:
        db.close()
    return {r["hypothesis"]: {**r, "checks": json.loads(r["checks"] or "{}")} for r in rows}


def query(run_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_twice_as_fast_with_three_times_the_memory_is_discarded_by_the_rss_guard(tmp_path):
    _repo, task, plan = make_target(tmp_path, {
        "H1": {"value.txt": "200\n", "mem.txt": "120\n"},  # doubles the score, triples the allocation
        "H2": {"value.txt": "200\n"},                      # doubles the score, same memory
    }, files={"bench.sh": MEMORY_BENCH, "mem.txt": "40\n"},
        task_extra="guards: {rss_mb: {max_regression: 0.05}}\nexperiments: {parallel: 2, noise_pairs: 0}\n")
    run_dir = tmp_path / "run"
    optimize(task, plan, run_dir)
    found = experiments(run_dir)

    h1, h2 = found["H1"], found["H2"]
    assert h1["decision"] == "discarded" and h1["reason"].startswith("guard rss_mb +"), h1["reason"]
    assert "beyond its bound +5.0%" in h1["reason"]
    assert h1["effect_median"] > 0.8  # the main metric alone would have kept it
    (guard,) = h1["checks"]["guards"]
    assert guard["status"] == "fail" and guard["interval"][0] > 1.0  # memory more than doubled, interval and all
    assert h2["decision"] == "kept" and "guards within bounds: rss_mb" in h2["reason"]

    # Every metric of every run is in the ledger: the printed score and the OS's rss_mb and cpu_s.
    names = {row[0] for row in query(run_dir, "SELECT DISTINCT name FROM metrics WHERE experiment_id='r1-H1'")}
    assert names == {"score", "rss_mb", "cpu_s"}
    (mean_base, mean_cand), = query(run_dir, "SELECT AVG(CASE WHEN arm='base' THEN value END), AVG(CASE WHEN arm='cand'"
                                             " THEN value END) FROM metrics WHERE experiment_id='r1-H1' AND name='rss_mb'")
    assert 40 < mean_base < 70 and 120 < mean_cand < 160
    report = (run_dir / "report.md").read_text()
    assert "rss_mb" in report and "cpu_s" in report and "guard rss_mb" in report
    brief = (run_dir / "experiments" / "r1-H1" / "brief.md").read_text()
    assert "Guard `rss_mb`" in brief and "5.0% higher" in brief


def test_special_casing_the_benchmarks_input_is_kept_by_the_main_gate_and_discarded_by_the_holdout(tmp_path):
    holdout = tmp_path / "holdout.sh"  # beside the task file, outside the repository
    holdout.write_text("#!/bin/sh\nexec python3 -S prog.py 500\n")
    holdout.chmod(0o755)
    _repo, task, plan = make_target(tmp_path, {
        "H1": {"speeds.txt": "384 200\n* 80\n"},  # fast on the benchmark's input, slower everywhere else
        "H2": {"speeds.txt": "* 130\n"},          # faster everywhere
    }, files={"bench.sh": "#!/bin/sh\nexec python3 -S prog.py 384\n", "prog.py": PROG, "speeds.txt": "* 100\n"},
        task_extra="holdout: ./holdout.sh\nexperiments: {parallel: 2, noise_pairs: 0}\n")
    run_dir = tmp_path / "run"
    optimize(task, plan, run_dir)
    found = experiments(run_dir)

    h1, h2 = found["H1"], found["H2"]
    assert h1["effect_median"] > 0.8 and h1["decision"] == "discarded", h1["reason"]
    assert h1["reason"].startswith("holdout score -"), h1["reason"]
    (lost,) = h1["checks"]["holdout"]
    assert lost["status"] == "fail" and lost["interval"][1] < -0.1
    assert h2["decision"] == "kept" and "holdout score +" in h2["reason"]
    assert h2["checks"]["holdout"][0]["status"] == "pass"

    # The runtime never sees it: not in the brief, not in the run's repository, not in any worktree.
    brief = (run_dir / "experiments" / "r1-H1" / "brief.md").read_text()
    assert "holdout benchmark you cannot see" in brief and "holdout.sh" not in brief and "500" not in brief
    assert (run_dir / "holdout" / "holdout.sh").is_file()
    tree = subprocess.run(["git", "-C", str(run_dir / "repo.git"), "ls-tree", "-r", "--name-only", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert "holdout.sh" not in tree
    # The report puts main and holdout effects side by side.
    report = (run_dir / "report.md").read_text()
    assert "| Holdout" in report
    row = next(line for line in report.splitlines() if line.startswith("| ") and "| r1-H1 |" in line)
    assert "| discarded | +" in row and "(lost) |" in row  # a large main gain next to the holdout's loss


C_PROG = """#include <stdio.h>

int main(void)
{
    double value = 100.0;
    printf("METRIC score=%f\\n", value);
    return 0;
}
"""


def test_a_rename_only_change_builds_identical_output_and_is_not_benchmarked(tmp_path):
    renamed = C_PROG.replace("value", "score_value")
    _repo, task, plan = make_target(tmp_path, {
        "H1": {"prog.c": renamed},                                # rename only: the same binary
        "H2": {"prog.c": C_PROG.replace("100.0", "120.0")},       # a different binary
        "H3": {"value.txt": "120\n"},                             # read by the benchmark, not by the build
    }, files={"prog.c": C_PROG, ".gitignore": "prog\n",
              "bench.sh": "#!/bin/sh\n./prog && echo \"METRIC other=$(cat value.txt)\"\n"},
        task_extra="build: cc -O2 -o prog prog.c\nexperiments: {parallel: 1, noise_pairs: 0}\n")
    run_dir = tmp_path / "run"
    optimize(task, plan, run_dir)
    found = experiments(run_dir)

    h1 = found["H1"]
    assert h1["decision"] == "discarded" and h1["reason"].startswith("identical build output"), h1["reason"]
    assert query(run_dir, "SELECT COUNT(*) FROM samples WHERE experiment_id='r1-H1'") == [(0,)]  # 0 pairs
    build = h1["checks"]["build"]
    assert build["identical"] is True and build["outputs"] == 1 and build["saved_s"] > 0
    assert found["H2"]["n_pairs"] >= 5 and "identical" not in found["H2"]["reason"]
    assert found["H3"]["n_pairs"] >= 5 and "identical" not in found["H3"]["reason"]  # the build never read value.txt
    report = (run_dir / "report.md").read_text()
    assert "identical build" in report and "saved" in report


def test_a_noisy_worker_is_flagged_with_its_figure_and_what_to_do(tmp_path):
    noisy = ("#!/bin/sh\npython3 -S -c \"import math, random; "
             "print('METRIC score=%f' % (float(open('value.txt').read()) * math.exp(random.gauss(0, 0.3))))\"\n")
    _repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "101\n"}}, files={"bench.sh": noisy},
                                    task_extra="experiments: {parallel: 1, repeats: 3, max_repeats: 9, noise_pairs: 4, "
                                               "max_noise: 0.05}\n")
    run_dir = tmp_path / "run"
    done = optimize(task, plan, run_dir)
    assert "warning: worker local-1: paired noise" in done.stderr
    assert "above experiments.max_noise 5.0%" in done.stderr and "cpu_s" in done.stderr
    ((worker, pairs, noise, bound, action),) = query(run_dir, "SELECT worker, pairs, noise, bound, action FROM noise")
    assert (worker, pairs, bound, action) == ("local-1", 4, 0.05, "warned") and noise > 0.1
    report = (run_dir / "report.md").read_text()
    assert "## Workers" in report and "local-1" in report and "5.0%" in report


def test_a_backend_that_replaces_noisy_workers_gets_the_experiment_back_on_a_quiet_one(tmp_path, monkeypatch):
    # The hook the cloud backend implements (backends/base.py): here a local backend whose
    # "replacement" is a quiet machine, so the experiment reruns there, checked again.
    from research_agent import rundir
    from research_agent.backends.local import LocalBackend
    from research_agent.orchestrator import Orchestrator
    from research_agent.plan import load_plan
    from research_agent.task import load_task

    noisy = ("#!/bin/sh\npython3 -S -c \"import math, random, os; print('METRIC score=%f' % "
             "(float(open('value.txt').read()) * math.exp(random.gauss(0, float(os.environ['TEST_NOISE'])))))\"\n")
    monkeypatch.setenv("TEST_NOISE", "0.3")
    _repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}}, files={"bench.sh": noisy},
                                    task_extra="experiments: {parallel: 1, noise_pairs: 3}\n")

    class Replacing(LocalBackend):
        replaces_noisy_workers = True
        replaced: list[str] = []

        def replace_worker(self, worker, reason):
            self.replaced.append(reason)
            monkeypatch.setenv("TEST_NOISE", "0.002")  # the fresh machine is quiet
            return True

    run, _ = rundir.create(load_task(task), load_plan(plan), tmp_path / "run", False, {})
    backend = Replacing(run.path, run.repo_dir, run.ledger)
    Orchestrator(run, backend).execute()
    assert len(backend.replaced) == 1 and "paired noise" in backend.replaced[0]
    assert [row["action"] for row in run.ledger.noise()] == ["replaced", "ok"]
    row = run.ledger.experiment("r1-H1")
    assert row["decision"] == "kept" and row["attempt"] == 2
    assert {r["bench"] for r in run.ledger.metrics("r1-H1", attempt=1)} == {"noise"}  # stopped before the runtime


def test_holdout_files_tracked_in_the_repository_are_refused(tmp_path):
    _repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "110\n"}},
                                    files={"holdout.sh": "#!/bin/sh\necho METRIC score=1\n"})
    moved = tmp_path / "target" / "task.yaml"  # the task file inside the repository, beside the tracked script
    moved.write_text(task.read_text().replace("repo: target", "repo: .") + "holdout: ./holdout.sh\n")
    done = cli("optimize", str(moved), "--plan", str(plan), "--run-dir", str(tmp_path / "run"))
    assert done.returncode != 0
    assert done.stderr.startswith("research-agent: holdout file holdout.sh is tracked in target/")
    assert not (tmp_path / "run").exists()
    assert os.path.exists(tmp_path / "target" / "holdout.sh")
