"""Benchmark seconds the identical-build short cut saves on the demo.

The demo's hand-written plan has H2, "keep the dot-product accumulator in a named local": a rename
that compiles to the same binary. This script

1. runs the demo with that plan through the real CLI (`research-agent optimize ... --plan`) and
   reads H2's decision, its pairs (0) and the report's lower-bound estimate of the time saved;
2. measures what H2 would have cost without the short cut: two clean checkouts of the demo (base,
   and base + H2's diff), built with make, benchmarked by the real interleaved gate loop
   (experiment.benchmark with the task's gate, guards and holdout), summing every benchmark run's
   wall time. Repeated with different seeds, since the gate's stopping depends on the noise.

Both halves run here, one after the other, on the same machine.

Usage: python benchmarks/identical_build.py [--repeats N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research_agent import experiment  # noqa: E402
from research_agent.plan import load_plan  # noqa: E402
from research_agent.task import load_task  # noqa: E402

DEMO = ROOT / "tasks" / "demo"


def real_run(tmp: Path) -> dict:
    run_dir = tmp / "run"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(DEMO / "task.yaml"), "--plan",
                           str(DEMO / "plan.md"), "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"demo run failed: {done.stderr[-2000:]}")
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    decision, reason, checks = db.execute("SELECT decision, reason, checks FROM experiments WHERE hypothesis='H2'").fetchone()
    pairs = db.execute("SELECT COUNT(*) FROM samples WHERE experiment_id='r1-H2' AND arm='cand'").fetchone()[0]
    db.close()
    return {"decision": decision, "reason": reason, "pairs": pairs, "checks": json.loads(checks or "{}"),
            "wall": time.perf_counter() - started}


def without_short_cut(tmp: Path, seed: int) -> tuple[float, int, str]:
    """Benchmark seconds and pairs the gate spends on H2 when it is benchmarked after all: a real
    run directory and orchestrator for the demo (for its commands, gate, guards and holdout), two
    worktrees from the local backend, H2's diff committed on one, both built from clean."""
    from research_agent import rundir
    from research_agent.backends.local import LocalBackend
    from research_agent.orchestrator import Orchestrator

    run, _ = rundir.create(load_task(DEMO / "task.yaml"), load_plan(DEMO / "plan.md"), tmp / f"run{seed}", False)
    backend = LocalBackend(run.path, run.repo_dir, run.ledger)
    orchestrator = Orchestrator(run, backend)
    commit = run.ledger.run()["best_commit"]
    base, cand = backend.checkout("base", commit, None), backend.checkout("cand", commit, None, branch="h2")
    try:
        hyp = run.plan.hypothesis("H2")
        subprocess.run(["git", "apply", "-"], cwd=cand, input=hyp.diff, text=True, check=True)
        _, changed = experiment.commit_candidate(cand, "H2")
        commands, log = orchestrator.commands(), run.path / "bench.log"
        for path in (base, cand):
            failure = experiment.clean_build(path, commands, log)
            if failure:
                raise SystemExit(failure)
        seconds: list[float] = []
        job = experiment.Job("H2", hyp.title, None, commands, [], orchestrator.new_gate(), run.path, seed,
                             on_sample=lambda arm, index, value, s: seconds.append(s), holdout=orchestrator.holdout())
        result = experiment.benchmark(job, base, cand, log, "", changed, None)
    finally:
        backend.teardown()
    return sum(seconds), len(result.cand), result.decision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="benchmarked-anyway runs of H2 (different seeds)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ra-identical-") as folder:
        tmp = Path(folder)
        run = real_run(tmp)
        costs = [without_short_cut(tmp, seed) for seed in range(args.repeats)]
    seconds = [c[0] for c in costs]
    print(f"## Identical-build short cut on the demo — {datetime.date.today().isoformat()}\n")
    print(f"- H2 in the real run: {run['decision']} — {run['reason']}; {run['pairs']} pairs; the report's "
          f"lower bound of the time saved: {run['checks'].get('build', {}).get('saved_s')} s "
          f"(whole demo run {run['wall']:.1f} s)")
    print(f"- H2 benchmarked anyway ({args.repeats} seeds): {statistics.mean(seconds):.1f} s of benchmark runs "
          f"(min {min(seconds):.1f}, max {max(seconds):.1f}), {statistics.mean(c[1] for c in costs):.1f} pairs on "
          f"average, decisions {sorted(set(c[2] for c in costs))}")
    print(f"- benchmark seconds saved by the short cut: {statistics.mean(seconds):.1f} s per identical build")


if __name__ == "__main__":
    main()
