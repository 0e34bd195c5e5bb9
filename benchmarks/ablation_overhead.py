"""What `research-agent ablate` costs against the two optimize runs it replaces, on the demo.

Side by side, one after the other, on this machine, through the real CLI (offline, the `command` runtime
with a scripted agent: it applies a brief's proposed diff, else makes a fixed no-op):

1. `ablate tasks/demo/task.yaml --experiments N` — the research and control arms, one shared baseline;
2. `optimize` of the demo (the research arm on its own), then `optimize` of the demo with no sources and
   `research.explore: N` (the control arm on its own): two baselines, two runs.

Wall seconds of each, and benchmark seconds (every baseline and A/B benchmark run's wall time, from the
ledgers' samples), with the ratios ablate / (two optimize runs). Also prints the demo's ablation table.

Usage: python benchmarks/ablation_overhead.py [--experiments N]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "tasks" / "demo"
AGENT = '''\
import re, subprocess, sys
brief, workdir = open(sys.argv[1]).read(), sys.argv[2]
found = re.search(r"```diff\\n(.*?)```", brief, re.S)
if found:
    subprocess.run(["git", "apply", "-"], input=found.group(1), text=True, cwd=workdir, check=True)
else:
    open(workdir + "/kernel.c", "a").write("/* explored: no change */\\n")
'''


def cli(args: list[str], env: dict) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.monotonic() - started


def bench_seconds(run_dir: Path) -> float:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        return float(db.execute("SELECT COALESCE(SUM(seconds), 0) FROM samples").fetchone()[0])
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=2)
    n = parser.parse_args().experiments
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "agent.py").write_text(AGENT)
        runtime = ["--offline", "--runtime", "command", "--runtime-cmd", f"{sys.executable} {tmp / 'agent.py'} {{brief}} {{workdir}}"]
        env = {**os.environ, "RESEARCH_AGENT_CACHE": str(tmp / "cache")}
        # The control arm as its own optimize run: the demo's task without sources, exploring N ideas.
        control_task = tmp / "control.yaml"  # outside the demo: the demo's folder stays as it is
        text = (DEMO / "task.yaml").read_text().split("research:")[0]
        text = text.replace("repo: .", f"repo: {DEMO}").replace("holdout: ./", f"holdout: {DEMO}/")
        control_task.write_text(text + f"research: {{papers: 0, repos: 0, prs: 0, explore: {n}}}\n")
        wall_ablate = cli(["ablate", "tasks/demo/task.yaml", *runtime, "--experiments", str(n), "--run-dir",
                           str(tmp / "ablate")], env)
        wall_research = cli(["optimize", "tasks/demo/task.yaml", *runtime, "--run-dir", str(tmp / "research")], env)
        wall_control = cli(["optimize", str(control_task), *runtime, "--run-dir", str(tmp / "control")], env)
        bench_ablate = bench_seconds(tmp / "ablate")
        bench_two = bench_seconds(tmp / "research") + bench_seconds(tmp / "control")
        wall_two = wall_research + wall_control
        print(f"ablation overhead on the demo ({n} experiments per arm), {datetime.date.today()}")
        print(f"{'':28}{'ablate':>10}{'2 x optimize':>14}{'ratio':>8}")
        print(f"{'wall seconds':28}{wall_ablate:>10.1f}{wall_two:>14.1f}{wall_ablate / wall_two:>8.2f}")
        print(f"{'benchmark seconds':28}{bench_ablate:>10.1f}{bench_two:>14.1f}{bench_ablate / bench_two:>8.2f}")
        print()
        report = (tmp / "ablate" / "ablation.md").read_text()
        print("\n".join(line for line in report.splitlines() if line.startswith(("|", "**", "Research minus"))))


if __name__ == "__main__":
    main()
