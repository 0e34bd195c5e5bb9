"""What the write fence costs: start-up per command, and the demo's wall time, fenced vs unfenced.

1. Start-up: `true`, `sh -c 'echo x > f'` and `python3 -c pass` run N times each through
   research_agent.proc.run, unfenced and inside every fence mechanism this machine has (Landlock,
   bubblewrap, sandbox-exec), interleaved so a load change hits every arm alike. Prints the median
   ms per command and the fenced − unfenced difference.
2. The demo: `research-agent optimize tasks/demo/task.yaml --offline` with the default `sandbox: on`
   and with `sandbox: off`, alternated, `--demo-runs` times each; prints the median wall seconds and
   the ratio.

Usage: python benchmarks/fence_startup.py [--runs 30] [--demo-runs 2] [--no-demo]
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research_agent import fence, proc  # noqa: E402
from research_agent.fence import bwrap, landlock, sandbox_exec  # noqa: E402

COMMANDS = {"true": "true", "sh write": "echo x > f", "python3 -c pass": "python3 -c pass"}


def mechanisms() -> list[str]:
    found = []
    if landlock.abi_version() >= 1:
        found.append("landlock")
    if bwrap.works():
        found.append("bubblewrap")
    if sandbox_exec.works():
        found.append("sandbox-exec")
    return found


def startup(runs: int) -> None:
    arms = [None, *mechanisms()]
    work = Path(tempfile.mkdtemp(prefix="ra-fence-bench-"))
    try:
        print(f"fence start-up: median ms per command over {runs} runs (interleaved), Landlock ABI {landlock.abi_version()}")
        header = f"{'command':<18}" + "".join(f"{arm or 'unfenced':>14}" for arm in arms)
        print(header + "".join(f"{'+' + arm:>16}" for arm in arms[1:]))
        for label, line in COMMANDS.items():
            times: dict[str | None, list[float]] = {arm: [] for arm in arms}
            for _ in range(runs):
                for arm in arms:
                    confined = fence.Fence(arm).confine([work]) if arm else None
                    started = time.perf_counter()
                    result = proc.run(line, cwd=work, fence=confined)
                    times[arm].append((time.perf_counter() - started) * 1000)
                    assert result.ok, result.output
            medians = {arm: statistics.median(values) for arm, values in times.items()}
            row = f"{label:<18}" + "".join(f"{medians[arm]:>14.1f}" for arm in arms)
            print(row + "".join(f"{medians[arm] - medians[None]:>+16.1f}" for arm in arms[1:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def demo(runs: int) -> None:
    cli = Path(sys.executable).parent / "research-agent"
    command = [str(cli) if cli.exists() else "research-agent"]
    source = ROOT / "tasks" / "demo"
    times: dict[str, list[float]] = {"on": [], "off": []}
    for index in range(runs):
        for mode in ("on", "off"):
            with tempfile.TemporaryDirectory(prefix="ra-fence-demo-") as scratch:
                copy = Path(scratch) / "demo"
                shutil.copytree(source, copy)
                task = copy / "task.yaml"
                task.write_text(task.read_text() + f"sandbox: {mode}\n")
                started = time.perf_counter()
                result = subprocess.run([*command, "optimize", str(task), "--offline", "--run-dir", str(Path(scratch) / "run")],
                                        cwd=scratch, capture_output=True, text=True)
                times[mode].append(time.perf_counter() - started)
                if result.returncode != 0:
                    sys.exit(f"demo run failed (sandbox: {mode}): {result.stderr.strip()[-400:]}")
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"demo wall time (median of {runs}, alternated): sandbox on {on:.1f} s, off {off:.1f} s, on/off {on / off:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--demo-runs", type=int, default=2)
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    print(f"{datetime.date.today()}  {sys.platform}  python {sys.version.split()[0]}")
    if not mechanisms():
        sys.exit("no fence mechanism on this machine")
    startup(args.runs)
    if not args.no_demo:
        demo(args.demo_runs)


if __name__ == "__main__":
    main()
