"""The skypilot backend on REAL SkyPilot and a real local Slurm cluster: the demo with 2 workers, per mode.

Needs `scripts/local-slurm.sh up` (root, Debian). For each mode (clusters, jobs, pool) it runs
`research-agent optimize tasks/demo/task.yaml --plan tasks/demo/plan.md` through the CLI with
`workers: {backend: skypilot, mode: M, infra: slurm, use_spot: false, cpus: 1}` and prints:

- wall: the whole run, launch to teardown;
- busy: worker busy fraction = time a job runs on a worker (SkyPilot says RUNNING, until it is seen
  finished) / time workers are held (launch requested -> teardown returned; pool: pool size x its life);
- calls: SkyPilot SDK calls made through the facade (research_agent/backends/sky_api.py), by method;
- decisions, and what SkyPilot / Slurm still hold afterwards (leaked: must be 0).

Calls are counted by a recording wrapper around the real facade, loaded in the CLI process through
RESEARCH_AGENT_SKY_API (the facade's documented swap point): every call still goes to real SkyPilot.
Slow (a real cluster launch is about a minute): run once, e.g. `python benchmarks/skypilot_slurm.py`.

Usage: python benchmarks/skypilot_slurm.py [--modes clusters,jobs,pool]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "tasks" / "demo"
TERMINAL = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "FAILED_DRIVER", "FAILED_PRECHECKS", "FAILED_NO_RESOURCE",
            "FAILED_CONTROLLER", "CANCELLED"}


# --- the recording facade (runs inside the research-agent process) -----------------------------------


class Recording:
    """The real SkyAPI, with every call appended to $RA_BENCH_CALLS as one JSON line (method, times, key)."""

    def __init__(self, api, path: str):
        self._api, self._path, self._lock = api, path, threading.Lock()

    def __getattr__(self, name):
        target = getattr(self._api, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            started = time.time()
            result = error = None
            try:
                result = target(*args, **kwargs)
                return result
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                line = {"m": name, "t0": started, "t1": time.time(), "args": [_short(a) for a in args],
                        "ret": _short(result), "err": error}
                with self._lock, open(self._path, "a") as out:
                    out.write(json.dumps(line) + "\n")

        return call


def _short(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _short(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_short(v) for v in value]
    return str(value)


def recording_api():
    from research_agent.backends.sky_api import SkyAPI

    return Recording(SkyAPI(), os.environ["RA_BENCH_CALLS"])


# --- the figures ------------------------------------------------------------------------------------


def busy_and_held(calls: list[dict], mode: str, workers: int) -> tuple[float, float]:
    """(busy seconds, held seconds) from the recorded calls."""
    running: dict = {}  # job key -> first time seen RUNNING (or submitted, for exec)
    busy = 0.0
    held_from: dict = {}
    held = 0.0
    for c in sorted(calls, key=lambda c: c["t1"]):
        m, args, ret = c["m"], c["args"], c["ret"]
        if mode == "clusters":
            if m == "launch":
                held_from.setdefault(args[1], c["t0"])
            elif m == "down" and args[0] in held_from:
                held += c["t1"] - held_from.pop(args[0])
            elif m == "exec" and c["err"] is None:
                running[(args[1], ret)] = c["t1"]
            elif m == "job_status" and (args[0], args[1]) in running and ret in TERMINAL:
                busy += c["t1"] - running.pop((args[0], args[1]))
        else:
            if m == "pool_apply":
                held_from.setdefault("pool", c["t0"])
            elif m == "pool_down" and "pool" in held_from:
                held += workers * (c["t1"] - held_from.pop("pool"))
            elif m == "jobs_launch" and c["err"] is None and mode == "jobs":
                held_from[ret] = c["t0"]
            elif m == "jobs_status" and isinstance(ret, dict):
                for job_id, record in ret.items():
                    status = (record or {}).get("status")
                    key = int(job_id)
                    if status == "RUNNING":
                        running.setdefault(key, c["t1"])
                    elif status in TERMINAL:
                        if key in running:
                            busy += c["t1"] - running.pop(key)
                        if key in held_from:
                            held += c["t1"] - held_from.pop(key)
    now = max((c["t1"] for c in calls), default=0.0)
    held += sum(now - t for t in held_from.values()) * (workers if mode == "pool" else 1)
    return busy, held


def leaked() -> dict:
    import sky

    clusters = [getattr(r, "name", None) or r["name"] for r in sky.get(sky.status())]
    records = sky.get(sky.jobs.queue_v2(refresh=False, skip_finished=True, fields=["job_id", "job_name", "status"]))
    records = records[0] if isinstance(records, tuple) else records
    pools = sky.get(sky.jobs.pool_status(None))
    squeue = [line for line in subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.splitlines() if line.strip()]
    return {"clusters": len(clusters), "jobs": len(records), "pools": len(pools), "slurm_jobs": len(squeue)}


def run_mode(mode: str, base: Path) -> dict:
    folder = base / mode / "demo"
    shutil.copytree(DEMO, folder)
    options = {"backend": "skypilot", "mode": mode, "infra": "slurm", "use_spot": False, "cpus": 1, "poll_seconds": 2, "count": 2}
    task = folder / "task.yaml"
    task.write_text(task.read_text() + f"workers: {json.dumps(options)}\n")
    calls_file, run_dir = base / mode / "calls.jsonl", base / mode / "run"
    env = {**os.environ, "RESEARCH_AGENT_STATE_DIR": str(base / mode / "state"), "RA_BENCH_CALLS": str(calls_file),
           "RESEARCH_AGENT_SKY_API": "skypilot_slurm:recording_api",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)])}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--plan", str(DEMO / "plan.md"),
                           "--run-dir", str(run_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    status = subprocess.run([sys.executable, "-m", "research_agent.cli", "status", str(run_dir), "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    try:
        decided = sorted(e["decision"] or "-" for e in json.loads(status.stdout)["experiments"])
    except (ValueError, KeyError):
        decided = []
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
    busy, held = busy_and_held(calls, mode, 2)
    # What a failed run left must not leak into the next mode's figures: remove it the documented way.
    subprocess.run([sys.executable, "-m", "research_agent.cli", "down", "--all"], cwd=ROOT, env=env, capture_output=True, timeout=900)
    left = leaked()
    return {"mode": mode, "rc": done.returncode, "wall_s": round(wall, 1), "busy_fraction": round(busy / held, 3) if held else None,
            "calls": len(calls), "by_method": dict(Counter(c["m"] for c in calls).most_common()), "decisions": decided,
            "leaked": left, "stderr_tail": done.stderr.strip().splitlines()[-1:] if done.returncode else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="clusters,jobs,pool")
    args = parser.parse_args()
    print(f"# skypilot backend on real SkyPilot + local Slurm, demo, 2 workers ({datetime.date.today()})")
    with tempfile.TemporaryDirectory(prefix="ra-bench-slurm-") as tmp:
        for mode in args.modes.split(","):
            result = run_mode(mode, Path(tmp))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
