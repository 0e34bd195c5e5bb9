"""Leaked workers and duplicates over the randomized fault schedules of tests/test_skypilot.py,
against the faithful SDK stand-in (tests/sky_standin.py: asynchronous job cancel, pool_down a no-op
while jobs run, cancel of [] cancels nothing, launch request ids arriving late, pool jobs without
workdir, queue records without failure_reason unless asked).

Each schedule: a random mode (clusters / jobs / pool), failed and slow launches, spot preemptions,
lost and truncated result transfers, maybe a SIGINT then a resume. Leaked = anything the stand-in
still holds afterwards (clusters, pools, unfinished managed jobs, job processes); duplicates =
samples counted twice or a hypothesis run twice in one round.

Usage: python benchmarks/fault_schedules.py [--schedules N]
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

from _synthetic import ROOT  # noqa: F401  (puts the project root on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", type=int, default=50)
    args = parser.parse_args()
    from tests.test_skypilot import fault_schedules  # after _synthetic put the project on sys.path

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ra-faults-") as tmp:
        os.environ["RESEARCH_AGENT_STATE_DIR"] = str(Path(tmp) / "state")
        results = fault_schedules(Path(tmp), args.schedules, count_failures=True)  # a failed check is counted, never hidden
    modes = {m: sum(1 for r in results if r.get("mode") == m) for m in ("clusters", "jobs", "pool")}
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"schedules: {len(results)} ({', '.join(f'{m} {n}' for m, n in modes.items())})")
    print(f"interrupted and resumed: {sum(1 for r in results if str(r.get('outcome', '')).startswith('interrupted'))}")
    print(f"preemptions: {sum(r.get('preempted', 0) for r in results)}")
    print(f"leaked workers: {sum(r.get('leaked', 0) for r in results)}")
    print(f"duplicates: {sum(r.get('duplicates', 0) for r in results)}")
    print(f"failed checks: {sum(1 for r in results if r.get('error'))}")
    print(f"wall: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
