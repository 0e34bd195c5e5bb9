"""`status` at 80 columns and in a pipe: nothing dropped, nothing cut mid-word; big effects as multiples."""

import os
import subprocess
import sys

from research_agent.ledger import Ledger
from research_agent.status import fmt_effect, fmt_multiple

TASK = "name: demo-matmul\nrepo: .\nbench: ./bench.sh\nmetric: {name: gflops, direction: max}\n"


def make_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "task.yaml").write_text(TASK)
    ledger = Ledger(run_dir / "ledger.sqlite")
    ledger.create_run("demo-run", "demo-matmul", "fp")
    ledger.update_run(baseline_median=2.60, baseline_cv=0.006, base_commit="a" * 40, best_commit="c" * 40, status="done")
    rows = [
        ("r1-H1", "H1", "kernel: i-k-j loop order, four rows of B per pass with a remainder loop", "kept",
         {"median": 14.629, "ci": [14.01, 15.302], "n": 10}, "c" * 40,
         "lower bound +1401.0% clears min_effect +1.0% (80% one-sided); guards within bounds: rss_mb +0.2%"),
        ("r1-H2", "H2", "Build the kernel with float-store for reproducible results", "discarded",
         {"median": -0.735, "ci": [-0.752, -0.703], "n": 5}, None,
         "futile: 85% upper bound -69.9% is below min_effect +1.0% (n=5 pairs)"),
    ]
    for exp_id, hyp, title, decision, effect, cand, reason in rows:
        ledger.add_experiment(exp_id, hyp, title, 1)
        ledger.start_experiment(exp_id, "a" * 40, f"ra/demo-run/{hyp}", "local-1")
        ledger.decide(exp_id, decision, reason, effect, cand_commit=cand)
    ledger.close()
    return run_dir


EXPECTED = """\
run demo-run  task demo-matmul  [done]  metric gflops (higher is better)
baseline: median 2.600, CV 0.6%, n=0
r1-H1  kept  +1462.9% (×15.6) [+1401.0%, +1530.2%]  10 pairs
       H1: kernel: i-k-j loop order, four rows of B per pass with a remainder
       loop
       lower bound +1401.0% clears min_effect +1.0% (80% one-sided); guards
       within bounds: rss_mb +0.2%
r1-H2  discarded  -73.5% [-75.2%, -70.3%]  5 pairs
       H2: Build the kernel with float-store for reproducible results
       futile: 85% upper bound -69.9% is below min_effect +1.0% (n=5 pairs)
best: r1-H1 (kernel: i-k-j loop order, four rows of B per pass with a remainder
loop) +1462.9% (×15.6) [+1401.0%, +1530.2%]  commit cccccccccccc
kept: 1 kept into the best
"""


def test_status_at_80_columns_in_a_pipe(tmp_path):
    run_dir = make_run(tmp_path)
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("FORCE_COLOR", None)
    shown = subprocess.run([sys.executable, "-m", "research_agent.cli", "status", str(run_dir)], capture_output=True,
                           text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == EXPECTED
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80


def test_wide_terminal_keeps_the_table(tmp_path):
    env = {**os.environ, "COLUMNS": "160"}
    shown = subprocess.run([sys.executable, "-m", "research_agent.cli", "status", str(make_run(tmp_path))], capture_output=True,
                           text=True, env=env, timeout=60)
    assert "┃ title" in shown.stdout and "+1462.9% (×15.6)" in shown.stdout


def test_effects_over_100_percent_read_as_multiples():
    assert fmt_multiple(1.562) == "×2.56" and fmt_multiple(14.629) == "×15.6" and fmt_multiple(1562.898) == "×1564"
    assert fmt_multiple(0.99) == "" and fmt_multiple(-0.5) == ""
    assert fmt_effect({"median": 0.031, "ci": [0.02, 0.042]}) == "+3.1% [+2.0%, +4.2%]"
