"""Peak memory of the orchestrator over 100 synthetic experiments.

Target: peak RSS of the orchestrator <= 200 MB over 100 experiments.

A child process creates the run directory, runs the real orchestrator with the real local backend
(build `true`, a deterministic bench, 4 workers), then writes the report as the CLI does. The
child measures itself with getrusage(RUSAGE_SELF): the build and benchmark commands it starts are
separate processes and do not count. MB here are MiB (1024 × 1024 bytes), the stricter reading.

Usage: python benchmarks/orchestrator_memory.py [--hypotheses N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _synthetic import create_run, make_target, run_orchestrator  # also puts the project root on sys.path

TARGET_MB = 200
WORKERS = 4


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_quick_target(root: Path, n: int):
    edits = {f"h{i:03d}": {"knob.txt": f"{i}\n"} for i in range(1, n + 1)}
    return make_target(
        root,
        {"knob.txt": "0\n"},
        edits,
        build="true",
        check="test -f value.txt",
        experiments={"parallel": WORKERS, "repeats": 7, "max_repeats": 7},
    )


def child(root: Path) -> None:
    """Everything the CLI does for `research-agent run`, measured from inside; prints one JSON line."""
    from research_agent.report import write_report  # imported up front, as a real run has it loaded
    from _synthetic import SyntheticTarget

    target = SyntheticTarget(root, root / "target", root / "task.yaml", root / "plan.md")
    figures = {"after_imports_mb": peak_mb()}
    started = time.monotonic()
    run = create_run(target, root / "run")
    run_orchestrator(run)
    figures["orchestrator_s"] = time.monotonic() - started
    figures["after_orchestrator_mb"] = peak_mb()
    started = time.monotonic()
    write_report(run.path)
    figures["report_s"] = time.monotonic() - started
    figures["peak_mb"] = peak_mb()
    experiments = run.ledger.experiments()
    figures["experiments"] = len(experiments)
    figures["decisions"] = sorted({e["decision"] for e in experiments})
    print(json.dumps(figures))


def measure_in_child(root: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", str(root)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"child failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_report(f: dict, wall: float) -> None:
    print(f"## Orchestrator memory — {datetime.date.today().isoformat()}\n")
    print(f"{f['experiments']} experiments, {WORKERS} local workers, build `true`, 7 deterministic bench pairs each; "
          f"decisions: {', '.join(f['decisions'])}\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| peak RSS after imports | {f['after_imports_mb']:.1f} MB |")
    print(f"| peak RSS after the orchestrator | {f['after_orchestrator_mb']:.1f} MB |")
    print(f"| **peak RSS incl. report writing** | **{f['peak_mb']:.1f} MB** |")
    print(f"| orchestrator wall (run-dir setup, baseline, experiments) | {f['orchestrator_s']:.1f} s |")
    print(f"| report wall | {f['report_s']:.1f} s |")
    print(f"| child process wall (incl. interpreter start) | {wall:.1f} s |")
    ok = f["peak_mb"] <= TARGET_MB
    print(f"\n{'PASS' if ok else 'FAIL'}: peak RSS {f['peak_mb']:.1f} MB (target ≤ {TARGET_MB} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hypotheses", type=int, default=100)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: the measured process
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="ra-mem-") as tmp:
        make_quick_target(Path(tmp), args.hypotheses)
        started = time.monotonic()
        figures = measure_in_child(Path(tmp))
        wall = time.monotonic() - started
    print_report(figures, wall)


if __name__ == "__main__":
    main()
