"""Mining a whole history: commits mined / tried / kept / skipped, and the wall time of re-mining per round.

Runs `research-agent optimize --offline` (patch runtime, local backend) on two targets, side by side:
- the bundled demo (tasks/demo: a competitor with an import, a speed-up and a regression), with
  --rounds 2 so the best moves once and the competitor is re-mined against it;
- the dependency-chain target of the tests (tests/chain_target.py: a fork whose commits need earlier
  ones, follow a rename, merge a branch, touch only a protected file, or build only on the kept best),
  3 rounds.
Counts come from the run's research/mined.json joined with its plan (every commit is either tried,
as some hypothesis, or skipped with a reason: mined = tried + skipped); "kept" counts the commits
held by a kept hypothesis. Re-mining times are the research/log.json entries of each re-mining.
A direct timing repeats the chain's mining against its base 5 times (median), cold clone excluded.

    python benchmarks/history_mining.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research_agent.plan import load_plan  # noqa: E402
from research_agent.research.accounting import account, counts, load_commits, load_rounds  # noqa: E402


def optimize(task: Path, run_dir: Path, cache: Path, *extra: str) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--offline",
                           "--run-dir", str(run_dir), *extra], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "RESEARCH_AGENT_CACHE": str(cache)}, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"optimize failed on {task}:\n{done.stderr}")
    return time.monotonic() - started


def figures(run_dir: Path) -> dict:
    plan = load_plan(run_dir / "plan.md")
    rows = account(load_commits(run_dir), plan.hypotheses)
    kept = {h.id for h in plan.hypotheses if h.status == "kept"}
    n = counts(rows)
    n["kept"] = sum(1 for row in rows if kept & set(row["tried"] + row["stacked"]))
    n["remine_s"] = [entry.get("seconds") for entry in load_rounds(run_dir) if entry.get("step") == "remine"]
    n["skipped_why"] = sorted({row["reason"].split(" (")[0] for row in rows if row["reason"]})
    return n


def direct_mining(folder: Path) -> float:
    from research_agent.research.local_source import LocalCompetitors
    from research_agent.research.mine import Miner
    from research_agent.target import prepare
    from tests.chain_target import build

    chain = build(folder / "direct")
    target = prepare(str(chain["target"]), False, folder / "direct" / "run", False)
    (item,) = LocalCompetitors(["fork"], folder / "direct").search("", 1)
    Miner(folder / "direct-cache", target.repo_dir, target.base_commit).clone(item)  # the cold clone, not timed
    times = []
    for _ in range(5):
        miner = Miner(folder / "direct-cache", target.repo_dir, target.base_commit, refresh=False,
                      protected=["bench.sh", "check.sh", "build.sh"])
        started = time.monotonic()
        miner.candidate_patches(item, miner.clone(item))
        times.append(time.monotonic() - started)
    return statistics.median(times)


def main() -> None:
    from tests.chain_target import build

    with tempfile.TemporaryDirectory(prefix="ra-history-") as scratch:
        folder = Path(scratch)
        results = {}
        wall = optimize(ROOT / "tasks" / "demo" / "task.yaml", folder / "demo-run", folder / "cache", "--rounds", "2")
        results["demo (2 rounds)"] = {**figures(folder / "demo-run"), "wall_s": wall}
        chain = build(folder / "chain", rounds=3)
        wall = optimize(chain["task"], folder / "chain-run", folder / "cache")
        results["dependency chain (3 rounds)"] = {**figures(folder / "chain-run"), "wall_s": wall}
        direct = direct_mining(folder)

    print(f"{'target':<30} {'mined':>5} {'tried':>5} {'kept':>4} {'skipped':>7}  re-mining per round (s)   run wall (s)")
    for name, n in results.items():
        remine = ", ".join(f"{s:.2f}" for s in n["remine_s"] if s is not None) or "–"
        print(f"{name:<30} {n['mined']:>5} {n['tried']:>5} {n['kept']:>4} {n['skipped']:>7}  {remine:<24} {n['wall_s']:.1f}")
        print(f"{'':<30} skipped: {'; '.join(n['skipped_why']) or '–'}")
    print(f"mining the chain's 8 commits against its base, warm clone: median {direct:.3f} s over 5")
    print(json.dumps({name: {k: v for k, v in n.items() if k != "skipped_why"} for name, n in results.items()}))


if __name__ == "__main__":
    main()
