"""Worker utilization and per-experiment overhead of the real orchestrator on the local backend.

Target: 4 local workers, >= 24 synthetic experiments with varied durations — busy time /
(workers x wall) >= 85%, and the tool's own overhead per experiment <= 0.2 s.

The synthetic target's build sleeps for the seconds in build_seconds.txt; each hypothesis's diff
sets a different value (0.5–2.5 s), so experiments have varied lengths. The bench prints the same
score every run, so the gate sees identical arms and discards at its only look (7 pairs): no
winners, no combine step, one round — the experiment phase is pure parallel work.

Busy time is measured twice:
- ledger spans: experiments.started -> finished, as the orchestrator records them;
- inside commands: every command the experiment runs through research_agent.proc.run (base and
  candidate builds, check, bench pairs, and the patch runtime's `git apply`), timed by wrapping
  proc.run in this process and cross-checked with the `[exit N, S s]` lines of experiment.log.
Overhead per experiment = ledger span - time inside commands: worktrees, git commits, ledger
writes, plan saves, Python.

Usage: python benchmarks/worker_utilization.py [--hypotheses N] [--profile]
  --profile  also run every experiment under cProfile and print where the overhead goes
             (profiling slows Python down: its figures are for attribution, not the target).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import pstats
import random
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _synthetic import create_run, make_target, run_orchestrator  # also puts the project root on sys.path

from research_agent import proc
from research_agent.orchestrator import Orchestrator

WORKERS = 4
TARGET_UTILIZATION = 0.85
TARGET_OVERHEAD_S = 0.2
BASE_BUILD_S = "0.5"
EXIT_LINE = re.compile(r"^\[exit -?\d+, ([0-9.]+)s\]$", re.MULTILINE)


def build_seconds(n: int, seed: int = 7) -> list[str]:
    """Per-hypothesis build durations, spread over 0.5–2.5 s, reproducible."""
    rng = random.Random(seed)
    return [f"{rng.uniform(0.5, 2.5):.1f}" for _ in range(n)]


def make_sleeping_target(root: Path, n: int):
    edits = {f"h{i:02d}": {"build_seconds.txt": f"{s}\n"} for i, s in enumerate(build_seconds(n), 1)}
    return make_target(
        root,
        {"build_seconds.txt": f"{BASE_BUILD_S}\n"},
        edits,
        build="sleep $(cat build_seconds.txt)",
        check="test -f value.txt",
        experiments={"parallel": WORKERS, "repeats": 7, "max_repeats": 7},
    )


class CommandClock:
    """Wraps proc.run to time every command, keyed by the worktree it ran in."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._original = proc.run

    def __enter__(self):
        def timed_run(command, cwd, *args, **kwargs):
            started = time.monotonic()
            try:
                return self._original(command, cwd, *args, **kwargs)
            finally:
                with self._lock:
                    name = Path(cwd).name
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started

        proc.run = timed_run  # every module calls proc.run through the module: this catches all
        return self

    def __exit__(self, *_exc):
        proc.run = self._original

    def for_experiment(self, exp_id: str) -> float:
        """Worktrees are named <exp>-base and <exp>-cand (see LocalBackend.run)."""
        return sum(self.seconds.get(f"{exp_id}-{arm}", 0.0) for arm in ("base", "cand"))


class ExperimentProfiler:
    """Runs each experiment (Orchestrator._run_one, in its worker thread) under its own cProfile."""

    def __init__(self):
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()
        self._original = Orchestrator._run_one

    def __enter__(self):
        original, profiles, lock = self._original, self.profiles, self._lock

        def profiled(orchestrator, *args, **kwargs):
            profile = cProfile.Profile()  # cProfile sees only its own thread: one per experiment
            profile.enable()
            try:
                return original(orchestrator, *args, **kwargs)
            finally:
                profile.disable()
                with lock:
                    profiles.append(profile)

        Orchestrator._run_one = profiled
        return self

    def __exit__(self, *_exc):
        Orchestrator._run_one = self._original

    def hot_spots(self, top: int = 15) -> list[tuple[float, float, int, str]]:
        """The tool's own functions that do not wait on a command, by cumulative time per
        experiment: (cumulative s, own s, calls over all experiments, function), biggest first."""
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        waiting = _callers_of(stats, lambda file, func: file.endswith("research_agent/proc.py") and func == "run")
        n = len(self.profiles)
        rows = []
        for key, (_cc, calls, own, cumulative, _callers) in stats.stats.items():
            file, line, func = key
            # Ours (research_agent) or GitPython's (site-packages/git): library internals would mix both sides.
            if key in waiting or not ("/research_agent/" in file or "/git/" in file):
                continue
            rows.append((cumulative / n, own / n, calls, f"{func} ({Path(file).parent.name}/{Path(file).name}:{line})"))
        rows.sort(reverse=True)
        return rows[:top]


def _callers_of(stats: pstats.Stats, is_target) -> set:
    """The target functions and everything that calls them, directly or not."""
    found = [key for key in stats.stats if is_target(key[0], key[2])]
    seen = set(found)
    while found:
        for caller in stats.stats.get(found.pop(), (0, 0, 0, 0, {}))[4]:
            if caller not in seen:
                seen.add(caller)
                found.append(caller)
    return seen


def logged_seconds(exp_dir: Path) -> float:
    """Sum of the `[exit N, S s]` lines proc.run wrote for the experiment's logged commands."""
    log = exp_dir / "experiment.log"
    return sum(float(s) for s in EXIT_LINE.findall(log.read_text(encoding="utf-8"))) if log.exists() else 0.0


def measure(run, clock: CommandClock) -> dict:
    experiments = run.ledger.experiments("hypothesis")
    first_start = min(e["started"] for e in experiments)
    last_finish = max(e["finished"] for e in experiments)
    wall = last_finish - first_start
    spans = {e["id"]: e["finished"] - e["started"] for e in experiments}
    inside = {e["id"]: clock.for_experiment(e["id"]) for e in experiments}
    logged = {e["id"]: logged_seconds(run.exp_dir(e["id"])) for e in experiments}
    overhead = [spans[x] - inside[x] for x in spans]
    overhead_vs_log = [spans[x] - logged[x] for x in spans]
    return {
        "experiments": len(experiments),
        "decisions": sorted({e["decision"] for e in experiments}),
        "wall": wall,
        "busy_spans": sum(spans.values()),
        "busy_commands": sum(inside.values()),
        "busy_logged": sum(logged.values()),
        "utilization_spans": sum(spans.values()) / (WORKERS * wall),
        "utilization_commands": sum(inside.values()) / (WORKERS * wall),
        "overhead_mean": statistics.fmean(overhead),
        "overhead_max": max(overhead),
        "overhead_vs_log_mean": statistics.fmean(overhead_vs_log),
        "span_mean": statistics.fmean(spans.values()),
    }


def print_report(m: dict, n_hypotheses: int, total_wall: float, profiled: bool) -> None:
    print(f"## Worker utilization — {datetime.date.today().isoformat()}\n")
    print(f"{n_hypotheses} hypotheses, {WORKERS} local workers, build sleeps 0.5–2.5 s (base {BASE_BUILD_S} s), "
          f"7 bench pairs each; decisions: {', '.join(m['decisions'])}"
          + (" — PROFILED run (cProfile slows Python)" if profiled else "") + "\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| experiments | {m['experiments']} |")
    print(f"| experiment-phase wall (first start → last finish) | {m['wall']:.2f} s |")
    print(f"| mean experiment span | {m['span_mean']:.2f} s |")
    print(f"| busy, ledger spans | {m['busy_spans']:.2f} s |")
    print(f"| busy, inside commands (proc.run wrapper) | {m['busy_commands']:.2f} s |")
    print(f"| busy, inside logged commands (experiment.log) | {m['busy_logged']:.2f} s |")
    print(f"| **utilization** = spans / ({WORKERS} × wall) | **{m['utilization_spans']:.1%}** |")
    print(f"| utilization counting only time inside commands | {m['utilization_commands']:.1%} |")
    print(f"| **overhead per experiment, mean** (span − commands) | **{m['overhead_mean']:.3f} s** |")
    print(f"| overhead per experiment, max | {m['overhead_max']:.3f} s |")
    print(f"| overhead per experiment, mean, vs logged commands only (runtime's git apply counted as overhead) "
          f"| {m['overhead_vs_log_mean']:.3f} s |")
    print(f"| whole run incl. baseline and run-dir setup | {total_wall:.1f} s |")
    ok = m["utilization_spans"] >= TARGET_UTILIZATION and m["overhead_mean"] <= TARGET_OVERHEAD_S
    print(f"\n{'PASS' if ok else 'FAIL'}: utilization {m['utilization_spans']:.1%} (target ≥ {TARGET_UTILIZATION:.0%}), "
          f"mean overhead {m['overhead_mean']:.3f} s per experiment (target ≤ {TARGET_OVERHEAD_S} s)")


def print_hot_spots(rows: list[tuple[float, float, int, str]]) -> None:
    print("\n### Where the overhead goes (cProfile, wall-clock per experiment; functions that never wait on a command)\n")
    print("| cumulative s | own s | calls (all experiments) | function |")
    print("|---:|---:|---:|---|")
    for cumulative, own, calls, name in rows:
        print(f"| {cumulative:.3f} | {own:.3f} | {calls} | `{name}` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hypotheses", type=int, default=32)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ra-util-") as tmp:
        started = time.monotonic()
        target = make_sleeping_target(Path(tmp), args.hypotheses)
        run = create_run(target, Path(tmp) / "run")
        profiler = ExperimentProfiler() if args.profile else None
        with CommandClock() as clock:
            if profiler:
                with profiler:
                    run_orchestrator(run)
            else:
                run_orchestrator(run)
        total_wall = time.monotonic() - started
        figures = measure(run, clock)
        run.ledger.close()
    print_report(figures, args.hypotheses, total_wall, profiled=bool(profiler))
    if profiler:
        print_hot_spots(profiler.hot_spots())


if __name__ == "__main__":
    main()
