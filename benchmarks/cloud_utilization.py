"""Cloud worker utilization: the SkyPilot backend (clusters mode) against the SDK stand-in, in the
published run's shape, side by side with a one-agent-dispatches-sequentially loop; then leaked
workers over randomized fault schedules.

Shape (the published research-driven llama.cpp run: ~30 experiments in ~3 hours on 4 VMs): 4 spot
workers, each experiment ~2 min of builds (base and candidate, 1 min each, a little varied) and ~3
min of benchmark (7 interleaved A/B pairs). Time is scaled down: one simulated minute is SCALE real
seconds. The stand-in runs the real task `run` script — research_agent.worker with its git
worktrees, patch runtime, builds, checks and benchmark — in a folder per simulated VM, so the
worker's own overhead is real (and, at this scale, large: it counts as busy, which it is on a VM).

- parallel: the real orchestrator + SkyPilotBackend, 4 clusters launched in parallel, experiments
  queued onto free clusters, clusters torn down when the gate is done.
- sequential: the published recipe — one agent dispatches one experiment at a time and waits for
  it; its 4 VMs are kept up for the whole session (so 4 × wall is held and paid for).

Utilization = time a worker runs a job / time it is held (launch requested → torn down), summed
over workers; the experiment-phase figure counts only first experiment start → last finish, like
benchmarks/worker_utilization.py. Experiments per worker-hour are in simulated hours.

Usage: python benchmarks/cloud_utilization.py [--experiments N] [--schedules N] [--scale S]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _synthetic import ROOT, make_target  # also puts the project root on sys.path

WORKERS = 4
TARGET_UTILIZATION = 0.85
PUBLISHED = {"experiments": 30, "hours": 3.0, "vms": 4}  # the published run, for reference
BENCH = '#!/bin/sh\nsleep "$(cat bench_seconds.txt)"\necho "METRIC score=$(cat value.txt)"\n'


def shaped_target(root: Path, n: int, scale: float, parallel: int, count: int):
    """n hypotheses; builds of 1 min per arm (±20%), 7 pairs of benchmark runs ≈ 3 min in total."""
    rng = random.Random(11)
    build = 1.0 * scale
    edits = {f"h{i:02d}": {"build_seconds.txt": f"{build * rng.uniform(0.8, 1.2):.3f}\n"} for i in range(1, n + 1)}
    target = make_target(
        root,
        {"bench.sh": BENCH, "build_seconds.txt": f"{build:.3f}\n", "bench_seconds.txt": f"{3.0 * scale / 14:.4f}\n"},
        edits,
        build="sleep $(cat build_seconds.txt)",
        check="test -f value.txt",
        experiments={"parallel": parallel, "repeats": 7, "max_repeats": 7},
        bench="./bench.sh",
    )
    workers = {"backend": "skypilot", "mode": "clusters", "count": count, "cpus": 8, "use_spot": True,
               "poll_seconds": 0.02, "est_minutes": 0.1, "price_per_hour": 0.40}
    with target.task.open("a", encoding="utf-8") as handle:
        handle.write(f"workers: {json.dumps(workers)}\n")
    return target


def run_shape(root: Path, n: int, scale: float, parallel: int, count: int, hold: int) -> dict:
    """One run through the real orchestrator; `hold` VMs are counted as held for the whole session."""
    from research_agent import rundir
    from research_agent.backends.skypilot import SkyPilotBackend
    from research_agent.orchestrator import Orchestrator
    from research_agent.plan import load_plan
    from research_agent.task import load_task
    from tests.sky_standin import Faults, StandIn

    target = shaped_target(root, n, scale, parallel, count)
    run, _ = rundir.create(load_task(target.task), load_plan(target.plan), root / "run", False)
    api = StandIn(root / "cloud", Faults(provision=(0.5 * scale, 1.0 * scale), price=0.40))
    spans = _JobClock(api)
    started = time.time()
    Orchestrator(run, SkyPilotBackend(run, {"api": api})).execute()
    wall = time.time() - started
    workers = run.ledger.workers()
    experiments = run.ledger.experiments("hypothesis")
    first = min(e["started"] for e in experiments)
    last = max(e["finished"] for e in experiments)
    busy_phase = spans.busy(first, last)
    held = sum((w.ended or time.time()) - w.created for w in workers)
    if hold > len(workers):  # the recipe keeps every VM up for the whole session
        held = hold * wall
    result = {
        "experiments": len(experiments),
        "decisions": sorted({e["decision"] for e in experiments}),
        "wall": wall,
        "phase": last - first,
        "busy_phase": busy_phase,
        "busy_all": spans.busy(0, float("inf")),
        "held": held,
        "utilization_phase": busy_phase / (hold * (last - first)),
        "utilization_held": spans.busy(0, float("inf")) / held,
        "per_worker_hour": len(experiments) / (held / scale / 60),  # simulated hours: held / scale = simulated minutes
        "leaked": api.live(),
        "cost": run.ledger.cost(),
    }
    run.ledger.close()
    return result


class _JobClock:
    """Job start/end times as the stand-in sees them (the process on the 'VM' runs)."""

    def __init__(self, api):
        self.api = api
        self.spans: list[tuple[float, float]] = []
        original = api._start

        def timed_start(home, task, secrets, log):
            pid = original(home, task, secrets, log)
            self.spans.append((time.time(), log.with_suffix(".rc")))
            return pid

        api._start = timed_start
        self.ends: dict[Path, float] = {}
        down = api.down

        def timed_down(cluster):  # the VM's folder goes with it: note when its jobs ended first
            self._note_ends()
            return down(cluster)

        api.down = timed_down

    def _note_ends(self) -> None:
        for _begin, rc in self.spans:
            if rc not in self.ends and rc.exists():
                self.ends[rc] = rc.stat().st_mtime

    def busy(self, lo: float, hi: float) -> float:
        self._note_ends()
        total = 0.0
        for begin, rc in self.spans:
            end = self.ends.get(rc, begin)
            total += max(0.0, min(end, hi) - max(begin, lo))
        return total


def leak_check(n: int) -> dict:
    """The randomized fault schedules of tests/test_skypilot.py: anything left up counts as leaked."""
    from tests.test_skypilot import fault_schedules

    with tempfile.TemporaryDirectory(prefix="ra-faults-") as tmp:
        os.environ["RESEARCH_AGENT_STATE_DIR"] = str(Path(tmp) / "state")
        results = fault_schedules(Path(tmp), n, count_failures=True)
    return {
        "schedules": len(results),
        "leaked": sum(1 for r in results if r.get("leaked")),
        "failed": [r for r in results if r.get("error")],
        "preemptions": sum(r.get("preempted", 0) for r in results),
        "interrupted": sum(1 for r in results if str(r.get("outcome", "")).startswith("interrupted")),
        "modes": sorted({r.get("mode") for r in results if r.get("mode")}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=12, help="experiments for the sequential loop (a rate is compared)")
    parser.add_argument("--schedules", type=int, default=50)
    parser.add_argument("--scale", type=float, default=0.25, help="real seconds per simulated minute")
    args = parser.parse_args()
    os.environ.setdefault("RESEARCH_AGENT_STATE_DIR", tempfile.mkdtemp(prefix="ra-state-"))
    sys.path.insert(0, str(ROOT))

    with tempfile.TemporaryDirectory(prefix="ra-cloud-") as tmp:
        parallel = run_shape(Path(tmp) / "parallel", args.experiments, args.scale, WORKERS, WORKERS, WORKERS)
        sequential = run_shape(Path(tmp) / "sequential", args.sequential, args.scale, 1, 1, WORKERS)
    faults = leak_check(args.schedules)

    minute = args.scale
    published = PUBLISHED["experiments"] / (PUBLISHED["hours"] * PUBLISHED["vms"])
    print(f"## Cloud worker utilization — {datetime.date.today().isoformat()}\n")
    print(f"SkyPilot backend (clusters mode) on the SDK stand-in; 1 simulated minute = {minute} s; each experiment "
          f"≈ 2 min of builds + 3 min of benchmark (7 pairs) + the real worker's overhead; spot price $0.40/h.\n")
    print("| measure | parallel: 4 clusters, experiments queued onto free ones | sequential: one agent, 4 VMs held all session | published run |")
    print("|---|---:|---:|---:|")
    print(f"| experiments | {parallel['experiments']} | {sequential['experiments']} | {PUBLISHED['experiments']} |")
    print(f"| wall (simulated) | {parallel['wall'] / minute:.0f} min | {sequential['wall'] / minute:.0f} min | {PUBLISHED['hours'] * 60:.0f} min |")
    print(f"| **worker utilization, experiment phase** | **{parallel['utilization_phase']:.1%}** | {sequential['utilization_phase']:.1%} | – |")
    print(f"| worker utilization of all held time (launch → down, incl. provisioning and baseline) | {parallel['utilization_held']:.1%} | {sequential['utilization_held']:.1%} | – |")
    print(f"| **experiments per worker-hour** (simulated) | **{parallel['per_worker_hour']:.1f}** | {sequential['per_worker_hour']:.1f} | {published:.1f} |")
    print(f"| compute cost per experiment (simulated hours × $0.40) | ${parallel['held'] / minute / 60 * 0.40 / parallel['experiments']:.3f} | "
          f"${sequential['held'] / minute / 60 * 0.40 / sequential['experiments']:.3f} | – |")
    print(f"| workers left up after the run | {len(parallel['leaked'])} | {len(sequential['leaked'])} | never torn down |")
    print()
    print(f"Fault schedules: {faults['schedules']} (modes {', '.join(faults['modes'])}; {faults['preemptions']} preemptions, "
          f"{faults['interrupted']} SIGINTs with resume, failed launches, slow provisioning, lost and truncated transfers) — "
          f"**leaked workers: {faults['leaked']}**, schedules failing an invariant: {len(faults['failed'])}")
    for failure in faults["failed"][:5]:
        print(f"  - seed {failure['seed']}: {failure['error']}")
    ok = (parallel["utilization_phase"] >= TARGET_UTILIZATION and faults["leaked"] == 0 and not faults["failed"]
          and not parallel["leaked"] and not sequential["leaked"])
    print(f"\n{'PASS' if ok else 'FAIL'}: utilization {parallel['utilization_phase']:.1%} (target ≥ {TARGET_UTILIZATION:.0%}), "
          f"{parallel['per_worker_hour']:.1f} vs {sequential['per_worker_hour']:.1f} experiments per worker-hour (sequential), "
          f"leaked workers {faults['leaked']} over {faults['schedules']} fault schedules (target 0)")


if __name__ == "__main__":
    main()
