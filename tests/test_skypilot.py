"""The SkyPilot backend against a stand-in of the SDK (tests/sky_standin.py), with the real SkyPilot
package validating every generated task. No cloud, no API server: the stand-in's "VMs" are folders
where the task's real `run` script executes research_agent.worker on tiny targets."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from research_agent import proc, rundir
from research_agent.backends.sky_api import CloudError
from research_agent.errors import BaselineError
from research_agent.backends.skypilot import SkyPilotBackend
from research_agent.orchestrator import Interrupted, Orchestrator
from research_agent.plan import load_plan
from research_agent.task import load_task
from research_agent.worker import TransferError, emit_bundle, read_bundle, write_checksums

from . import conftest
from .sky_standin import Faults, StandIn, faults_json

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy 2.0 notices from inside SkyPilot

ROOT = Path(__file__).resolve().parent.parent
FAST_BENCH = '#!/bin/sh\necho "METRIC score=$(cat value.txt)"\n'  # no noise: decisions are deterministic
HYPOTHESES = {"H1": {"value.txt": "130\n"}, "H2": {"value.txt": "90\n"}}
DECIDED = {"kept", "discarded", "failed", "rejected"}


def task_extra(mode: str, **workers) -> str:
    options = {"backend": "skypilot", "mode": mode, "poll_seconds": 0.02, "cpus": 2, "est_minutes": 0.02, **workers}
    return ("experiments: {parallel: 2, repeats: 2, max_repeats: 7, min_effect: 0.01}\n"
            f"workers: {json.dumps(options)}\n")


def fast_target(root: Path, mode: str = "clusters", hypotheses=None, **workers):
    original = conftest.BENCH
    conftest.BENCH = FAST_BENCH
    try:
        return conftest.make_target(root, hypotheses or HYPOTHESES, task_extra=task_extra(mode, **workers))
    finally:
        conftest.BENCH = original


@pytest.fixture(autouse=True)
def _state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_AGENT_STATE_DIR", str(tmp_path / "state"))
    yield
    proc.reset()


def new_run(task: Path, plan: Path, run_dir: Path, options: dict | None = None):
    run, _ = rundir.create(load_task(task), load_plan(plan), run_dir, False, options or {})
    return run


def standin_run(root: Path, mode: str = "clusters", faults: Faults | None = None, options: dict | None = None,
                target=None, **workers):
    """A target's run in root/run (fast_target unless `target` says) and a fresh stand-in cloud in root/cloud: (run, api)."""
    _repo, task, plan = (target or fast_target)(root, mode, **workers)
    return new_run(task, plan, root / "run", options), StandIn(root / "cloud", faults)


def run_on(run, api) -> dict:
    """The whole run, orchestrated against the stand-in."""
    return Orchestrator(run, SkyPilotBackend(run, {"api": api})).execute()


def rows(run_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def check_ledger(run_dir: Path, finished: bool) -> None:
    """No duplicate rows, no double-counted samples, every decision recorded once with its reason."""
    experiments = rows(run_dir, "SELECT id, hypothesis, status, decision, reason, n_pairs, attempt FROM experiments WHERE kind='hypothesis'")
    if finished or experiments:  # (an interrupted baseline leaves none yet)
        assert sorted(r[1] for r in experiments) == sorted(HYPOTHESES)
    decisions = dict(rows(run_dir, "SELECT experiment_id, decision FROM decisions"))
    for exp, _hyp, status, decision, reason, n_pairs, attempt in experiments:
        if finished:
            assert status == "done" and decision in DECIDED, (exp, status, decision)
        if status == "done":
            assert decisions[exp] == decision and reason, (exp, decision, reason)
            if n_pairs:  # the latest attempt's samples are exactly the pairs the gate decided on
                for arm in ("base", "cand"):
                    idx = [r[0] for r in rows(run_dir, f"SELECT idx FROM samples WHERE experiment_id='{exp}' AND attempt={attempt} AND arm='{arm}' ORDER BY idx")]
                    assert idx == list(range(n_pairs)), (exp, arm, idx, n_pairs)
        else:
            assert exp not in decisions
    assert rows(run_dir, "SELECT COUNT(*) FROM workers WHERE status != 'down'") == [(0,)]
    baseline = rows(run_dir, "SELECT attempt, COUNT(*) FROM samples WHERE experiment_id='baseline' GROUP BY attempt")
    assert all(count == 2 for _attempt, count in baseline)


# --- tasks: rendered from sky/, validated by SkyPilot itself, secrets never written ----------------


@pytest.mark.parametrize("mode", ["clusters", "jobs", "pool"])
def test_dry_run_writes_valid_tasks_and_no_secret(tmp_path, monkeypatch, mode):
    import sky

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret-value")
    _repo, task, plan = fast_target(tmp_path, mode, secrets=["HF_TOKEN"])
    text = task.read_text().replace("check: test -f bench.sh", "check: test -f bench.sh\nruntime: {name: claude-code, model: m}")
    task.write_text(text)
    run = new_run(task, plan, tmp_path / "run", {"dryrun": True})
    api = StandIn(tmp_path / "cloud")
    written, lines = SkyPilotBackend(run, {"api": api}).dry_run()
    names = {p.name for p in written}
    assert {"ra-run-baseline-1.yaml", "ra-run-r1-h1-1.yaml", "ra-run-r1-h2-1.yaml"} <= names
    assert ({"clusters": "cluster.yaml", "pool": "pool.yaml"}.get(mode) or "ra-run-baseline-1.yaml") in names
    assert api.calls == [] and api.live() == []  # nothing launched
    for path in written:
        body = path.read_text()
        assert "sk-ant-very-secret-value" not in body
        assert "ANTHROPIC_API_KEY" in body  # named, so a reader knows what is passed
        loaded = sky.Task.from_yaml(str(path))
        assert next(iter(loaded.resources)).use_spot
        for script in (loaded.setup, loaded.run):
            if script:
                assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
        if loaded.setup:
            assert "@anthropic-ai/claude-code@" in loaded.setup and "'numpy>=1.26'" in loaded.setup
    job = json.loads((tmp_path / "run/sky/work/ra-run-r1-h1-1/job.json").read_text())
    assert job["runtime"]["name"] == "claude-code" and job["brief"]["hypothesis_id"] == "H1"
    assert any(mode in line for line in lines) and any("$0.400/h each" in line for line in lines)


def test_invalid_resources_are_refused_by_skypilot_before_anything_is_written(tmp_path):
    run, api = standin_run(tmp_path, options={"dryrun": True}, resources={"cpuz": 4})
    with pytest.raises(Exception, match="cpuz"):
        SkyPilotBackend(run, {"api": api}).dry_run()
    assert not list((tmp_path / "run" / "sky").glob("*.yaml"))


def test_bundle_refuses_truncated_reordered_or_corrupted_results(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"decision": "kept"}))
    (out / "transcript.jsonl").write_bytes(os.urandom(5000))  # several lines of base64
    write_checksums(out)
    import io

    stream = io.StringIO()
    emit_bundle(out, "job-1", stream)
    log = "(task, pid=1) noise\n" + "\n".join(f"(task, pid=1) {line}" for line in stream.getvalue().splitlines()) + "\nafter\n"
    files = read_bundle(log, "job-1")
    assert files["transcript.jsonl"] == (out / "transcript.jsonl").read_bytes()
    lines = log.splitlines()
    body = [i for i, line in enumerate(lines) if "RA-BUNDLE 1 " in line][0]
    for damaged, why in (
        ("\n".join(lines[: len(lines) // 2]), "truncated"),
        ("\n".join(lines[:body] + lines[body + 1:]), "missing or out of order"),
        ("\n".join(lines[:body] + [lines[body][:-8] + "AAAAAAAA"] + lines[body + 1:]), "checksum"),
        ("nothing here", "no results"),
    ):
        with pytest.raises(TransferError, match=why):
            read_bundle(damaged, "job-1")


# --- whole runs against the stand-in ---------------------------------------------------------------


def test_clusters_run_brings_results_back_intact_and_tears_down(tmp_path):
    run, api = standin_run(tmp_path, faults=Faults(price=0.5))
    run_on(run, api)
    assert api.live() == []
    exp_dir = tmp_path / "run" / "experiments" / "r1-H1"
    sums = dict(reversed(line.split("  ", 1)) for line in (exp_dir / "SHA256SUMS").read_text().splitlines())
    assert {"results.json", "samples.jsonl", "patch.diff", "experiment.log", "candidate.bundle"} <= set(sums)
    assert "+130" in (exp_dir / "patch.diff").read_text()
    decisions = dict(rows(tmp_path / "run", "SELECT hypothesis, decision FROM experiments"))
    assert decisions == {"H1": "kept", "H2": "discarded"}
    # the kept commit came back into the run's repository: its branch and the best exist here
    best = subprocess.run(["git", "rev-parse", "ra/run/best"], cwd=tmp_path / "run/repo.git", capture_output=True, text=True)
    assert best.returncode == 0 and best.stdout.strip() == json.loads((exp_dir / "results.json").read_text())["cand_commit"]
    costs = rows(tmp_path / "run", "SELECT experiment_id, kind, usd, detail FROM costs")
    assert {c[0] for c in costs if c[0]} >= {"baseline", "r1-H1", "r1-H2"} and all(c[1] == "compute" for c in costs)
    down = [c for c in api.calls if c[0] == "down"]
    assert {c[1] for c in down} == {"ra-run-1", "ra-run-2"}
    check_ledger(tmp_path / "run", finished=True)


def test_url_target_winners_are_combined_on_workers_from_bundles(tmp_path):
    """A git-URL target is cloned only on the workers; the second winner is stacked on the first on a
    worker that gets the first's commit as a bundle; the best comes back into RUN_DIR/repo.git."""
    bench = '#!/bin/sh\necho "METRIC score=$(awk "BEGIN{print $(cat value.txt) * $(cat factor.txt)}")"\n'
    repo = conftest.make_repo(tmp_path / "upstream", {"value.txt": "100\n", "factor.txt": "1\n", "bench.sh": bench})
    blocks = []
    for hid, (name, text) in {"H1": ("value.txt", "130\n"), "H2": ("factor.txt", "1.2\n")}.items():
        (repo / name).write_text(text)
        diff = conftest.git(repo, "diff") + "\n"
        conftest.git(repo, "checkout", "--", name)
        blocks.append(f"### {hid}: Try {hid}\n- sources: local:n\n- status: pending\n\nBecause.\n\n```diff\n{diff}```\n")
    plan = tmp_path / "plan.md"
    plan.write_text("---\nobjective: score\nmetric: score\nstatus: approved\n---\n# Plan\n\n## Hypotheses\n\n"
                    + "\n".join(blocks) + "\n## Sources\n- local:n — notes\n")
    task = tmp_path / "task.yaml"
    task.write_text(f"name: combine\nrepo: file://{repo}\nbench: ./bench.sh\nmetric: score\n" + task_extra("jobs"))
    run = new_run(task, plan, tmp_path / "run")
    assert not list((tmp_path / "run/repo.git/objects/pack").glob("*.pack"))  # nothing cloned here
    api = StandIn(tmp_path / "cloud")
    run_on(run, api)
    assert api.live() == []
    decided = dict(rows(tmp_path / "run", "SELECT id, decision FROM experiments"))
    assert decided == {"r1-H1": "kept", "r1-H2": "kept", "r1-combine-H2": "kept"}, decided
    combine = json.loads(next((tmp_path / "run/sky/work").glob("*combine*/job.json")).read_text())
    assert len(combine["repo"]["lineage"]) == 1  # the first winner's commit, as a bundle
    best = subprocess.run(["git", "show", "ra/run/best:value.txt", "ra/run/best:factor.txt"], cwd=tmp_path / "run/repo.git",
                          capture_output=True, text=True)
    assert best.stdout.split() == ["130", "1.2"], best.stderr


def run_schedule(base: Path, seed: int) -> dict:
    """One randomized fault schedule: mode, launch failures, slow provisioning, preemptions, lost and
    truncated transfers, and maybe a SIGINT at a random moment followed by a resume."""
    rng = random.Random(seed)
    mode = rng.choice(["clusters", "clusters", "jobs", "pool"])
    root = base / f"s{seed}"
    faults = Faults.random(seed)
    run, api = standin_run(root, mode, faults, max_attempts=4)
    orchestrator = Orchestrator(run, SkyPilotBackend(run, {"api": api}))
    sigint_at = rng.choice([None, None, rng.uniform(0.05, 1.2)])
    fired = threading.Event()
    done = threading.Event()

    def interrupt():
        if not done.is_set():
            fired.set()
            orchestrator._on_signal(signal.SIGINT, None)  # exactly what the SIGINT handler does

    timer = threading.Timer(sigint_at, interrupt) if sigint_at else None
    outcome = "done"
    try:
        if timer:
            timer.start()
        orchestrator.execute()
    except Interrupted:
        outcome = "interrupted"
    except CloudError as error:
        outcome = f"cloud error: {error}"
    except BaselineError as error:  # every attempt of the baseline lost to faults: recorded, nothing decided
        assert "infrastructure:" in str(error), error
        outcome = "baseline failed"
    finally:
        done.set()
        if timer:
            timer.cancel()
    leaked = api.live()
    assert leaked == [], (seed, mode, outcome, leaked)
    check_ledger(root / "run", finished=outcome == "done")
    if outcome == "baseline failed":
        assert rows(root / "run", "SELECT status FROM runs") == [("failed",)]
    if outcome == "interrupted":
        proc.reset()
        resumed = rundir.open_run(root / "run")
        api2 = StandIn(root / "cloud", Faults(seed=seed, price=faults.price))
        run_on(resumed, api2)
        leaked = api2.live()
        assert leaked == [], (seed, mode, outcome, leaked)
        check_ledger(root / "run", finished=True)
        outcome = "interrupted, resumed"
    api.close()
    return {"seed": seed, "mode": mode, "outcome": outcome, "preempted": sum(1 for c in api.calls if c[0] == "preempted"),
            "leaked": len(leaked), "duplicates": duplicates(root / "run")}


def duplicates(run_dir: Path) -> int:
    """Samples counted twice for one (experiment, attempt, arm, index), or a hypothesis run twice in a round."""
    samples = rows(run_dir, "SELECT COUNT(*) - COUNT(DISTINCT experiment_id || '/' || attempt || '/' || arm || '/' || idx) FROM samples")[0][0]
    experiments = rows(run_dir, "SELECT COUNT(*) - COUNT(DISTINCT hypothesis) FROM experiments WHERE kind='hypothesis'")[0][0]
    return samples + experiments


def run_schedules(base: str, seeds: list[int], count_failures: bool = False) -> list[dict]:
    """Each seed's schedule in turn. With `count_failures` (the benchmarks) a failed check is a result row
    with its error, counted as a leak or a duplicate, instead of an AssertionError."""
    out = []
    for seed in seeds:
        proc.reset()
        try:
            out.append(run_schedule(Path(base), seed))
        except AssertionError as error:
            if not count_failures:
                raise
            text = str(error)
            out.append({"seed": seed, "error": text[:300], "leaked": 1 if "live" in text or "cluster" in text else 0,
                        "duplicates": 0 if "live" in text else 1})
    return out


def fault_schedules(base: Path, count: int, count_failures: bool = False) -> list[dict]:
    """Seeds 0..count-1 over four spawned processes (a simulated SIGINT stops only its own process's run);
    also what benchmarks/fault_schedules.py and cloud_utilization.py measure."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    seeds = list(range(count))
    shards = [seeds[i::4] for i in range(4)]
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [r for shard in pool.map(run_schedules, [str(base)] * 4, shards, [count_failures] * 4) for r in shard]


def test_fifty_random_fault_schedules_leave_nothing_up(tmp_path):
    results = fault_schedules(tmp_path, 50)
    assert len(results) == 50
    outcomes = [r["outcome"] for r in results]
    assert all(o in ("done", "interrupted, resumed", "baseline failed") for o in outcomes), outcomes
    assert outcomes.count("baseline failed") <= 2, outcomes
    assert sum(r["preempted"] for r in results) >= 10  # the schedules really did preempt
    assert {r["mode"] for r in results} == {"clusters", "jobs", "pool"}
    assert sum(r["leaked"] for r in results) == 0 and sum(r["duplicates"] for r in results) == 0


def budget_target(root: Path, mode: str = "clusters", count: int = 2):
    hypotheses = {f"H{i}": {"value.txt": f"{100 + i}\n"} for i in range(1, count + 1)}
    original = conftest.BENCH
    conftest.BENCH = FAST_BENCH
    try:
        return conftest.make_target(root, hypotheses, task_extra=task_extra(mode, price_per_hour=3600.0) + "build: sleep 0.3\n")
    finally:
        conftest.BENCH = original


def dollar_a_second() -> Faults:
    return Faults(price=3600.0, provision=(0.01, 0.02))


def calibrated_budget(root: Path, count: int, factor: float) -> float:
    """At $1 per worker-second the cost is this machine's speed: `factor` times what a `count`-experiment
    run beside the test spent, instead of assuming an idle machine."""
    calibration, api = standin_run(root, faults=dollar_a_second(), target=budget_target, count=count)
    run_on(calibration, api)
    return factor * calibration.ledger.cost()


def test_budget_stops_before_crossing_and_tears_down(tmp_path):
    budget = calibrated_budget(tmp_path / "calibrate", 2, 1.5)  # and an eight-experiment run
    run, api = standin_run(tmp_path, faults=dollar_a_second(), options={"budget_usd": budget}, target=budget_target, count=8)
    result = run_on(run, api)
    spent = run.ledger.cost()
    assert result["status"] == "budget", result
    assert spent <= budget, (spent, budget)
    assert api.live() == []
    states = [r[0] for r in rows(tmp_path / "run", "SELECT status FROM experiments")]
    assert states.count("done") >= 1 and "pending" in states, states  # it ran some, then stopped launching
    assert any(e["kind"] == "budget" for e in run.ledger.events())


HANG_BENCH = '#!/bin/sh\nif [ -f hang.txt ]; then exec sleep 100000; fi\necho "METRIC score=$(cat value.txt)"\n'


def test_running_experiments_stop_before_the_budget_is_crossed(tmp_path):
    """The launch-time projection is beaten on purpose (the candidates' benchmark never ends): the
    hard stop ends the running experiments undecided, tears down, and the spend stays within budget."""
    budget = calibrated_budget(tmp_path / "calibrate", 1, 4)
    _repo, task, plan = conftest.make_target(tmp_path, {"H1": {"hang.txt": "x\n"}, "H2": {"hang.txt": "y\n"}, "H3": {"value.txt": "130\n"}},
                                             files={"bench.sh": HANG_BENCH},
                                             task_extra=task_extra("clusters", price_per_hour=3600.0) + "build: sleep 0.3\n")
    task.write_text(task.read_text().replace("bench: 5,", "bench: 3600,"))  # only the budget ends them
    run = new_run(task, plan, tmp_path / "run", {"budget_usd": budget})
    api = StandIn(tmp_path / "cloud", dollar_a_second())
    result = run_on(run, api)
    assert result["status"] == "budget", result
    assert run.ledger.cost() <= budget, (run.ledger.cost(), budget)
    assert api.live() == []
    states = dict(rows(tmp_path / "run", "SELECT id, status FROM experiments"))
    assert states["r1-H1"] == states["r1-H2"] == "pending", states  # stopped undecided: resume repeats them
    assert any("stopping them before it is crossed" in e["message"] for e in run.ledger.events())


def test_the_hard_stop_sees_each_cost_row_as_it_is_written(tmp_path):
    """The hard stop reads the spend every 0.2 s from a total the ledger sums again only when a cost row is
    written: a row written after it last looked, by this process or another one, still stops the run."""
    run, api = standin_run(tmp_path, faults=Faults(price=3600.0), options={"budget_usd": 10.0}, price_per_hour=3600.0)
    orchestrator = Orchestrator(run, SkyPilotBackend(run, {"api": api}))
    assert not orchestrator._crossing_budget()  # nothing spent, no worker held: the total is now cached
    other = sqlite3.connect(tmp_path / "run" / "ledger.sqlite", isolation_level=None)  # e.g. `down` charging idle time
    other.execute("INSERT INTO costs (experiment_id, kind, usd, detail, created) VALUES (NULL, 'compute', 4.0, 'idle', 0)")
    other.close()
    assert run.ledger.cost() == 4.0 and not orchestrator._crossing_budget() and orchestrator._budget_stop is None
    run.ledger.add_cost("compute", 6.0, "baseline", detail="ra-run-1")  # as the backend charges an experiment
    assert orchestrator._crossing_budget()
    assert orchestrator._budget_stop.startswith("budget: $10.00 spent and $0.00 held by running workers")


# --- the CLI: bad input, SIGKILL then down / resume ----------------------------------------------------


def cli(args, cwd, env=None, **kwargs):
    full = {**os.environ, "PYTHONPATH": str(ROOT), "RESEARCH_AGENT_SKY_API": "tests.sky_standin:make_api", **(env or {})}
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, **kwargs)


def standin_env(tmp_path, faults: Faults | None = None) -> dict:
    return {"RA_STANDIN_ROOT": str(tmp_path / "cloud"), "RA_STANDIN_FAULTS": faults_json(faults or Faults()),
            "RESEARCH_AGENT_STATE_DIR": str(tmp_path / "state")}


@pytest.mark.parametrize("faults, code, message", [
    (Faults(no_infra=True), 8, "no infra enabled: run `sky check`"),
    (Faults(unavailable=True), 8, "requested resources unavailable: Catalog does not contain any instances"),
])
def test_cloud_problems_are_one_line(tmp_path, faults, code, message):
    _repo, task, plan = fast_target(tmp_path, "clusters", accelerators="H100:8")
    result = cli(["optimize", str(task), "--plan", str(plan), "--run-dir", "run"], tmp_path, standin_env(tmp_path, faults))
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("research-agent: ") and message in lines[-1] and "Traceback" not in result.stderr
    assert StandIn(tmp_path / "cloud").live() == []


def test_a_failing_setup_is_one_line_not_retried_and_leaves_nothing(tmp_path):
    """Setup runs as the cluster's first job, after the launch set autodown (sky/cluster.yaml): a setup
    that fails ends the run with one line (exit 8), is not relaunched (the same script fails the same way),
    and leaves no cluster."""
    _repo, task, plan = fast_target(tmp_path, "clusters")
    result = cli(["optimize", str(task), "--plan", str(plan), "--run-dir", "run"], tmp_path, standin_env(tmp_path, Faults(fail_setup=True)))
    assert result.returncode == 8, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("research-agent: no worker could be launched: the workers' setup failed: job FAILED") and "Traceback" not in result.stderr
    assert "exit 127: bash: workers.setup: command not found" in last and "sky logs ra-" in last
    cloud = StandIn(tmp_path / "cloud")
    assert cloud.state["counters"]["launch"] == 1 and cloud.state["counters"]["setup"] == 1, cloud.state["counters"]
    assert cloud.live() == []
    assert rows(tmp_path / "run", "SELECT id, status FROM workers WHERE status != 'down'") == []


def test_budget_below_one_experiment_is_refused(tmp_path):
    _repo, task, plan = fast_target(tmp_path, "clusters", est_minutes=30)
    result = cli(["optimize", str(task), "--plan", str(plan), "--run-dir", "run", "--budget-usd", "0.05"], tmp_path, standin_env(tmp_path))
    assert result.returncode == 2
    assert "budget $0.05 is below one experiment's projected cost $0.20" in result.stderr and "Traceback" not in result.stderr
    assert StandIn(tmp_path / "cloud").calls == [] and StandIn(tmp_path / "cloud").live() == []


def start_cli(args, cwd, env):
    full = {**os.environ, "PYTHONPATH": str(ROOT), "RESEARCH_AGENT_SKY_API": "tests.sky_standin:make_api", **env}
    return subprocess.Popen([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SLOW = {"H1": {"value.txt": "130\n", "delay.txt": "0.3\n"}, "H2": {"value.txt": "90\n", "delay.txt": "0.3\n"}}


def running_cli(root: Path, mode: str = "clusters", target=None):
    """`optimize` in a subprocess against the stand-in (SLOW hypotheses unless `target` says), returned once an
    experiment runs on a worker that is up: (process, env)."""
    _repo, task, plan = target(root, mode) if target else fast_target(root, mode, hypotheses=SLOW)
    env = standin_env(root)
    process = start_cli(["optimize", str(task), "--plan", str(plan), "--run-dir", "run"], root, env)
    wait_for_running(root / "run", process)
    return process, env


def kill(process) -> None:
    process.kill()
    process.wait(30)


def wait_for_running(run_dir: Path, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if (run_dir / "ledger.sqlite").exists():
            try:
                running = rows(run_dir, "SELECT COUNT(*) FROM experiments WHERE status='running'")[0][0]
                up = rows(run_dir, "SELECT COUNT(*) FROM workers WHERE status='up'")[0][0]
            except sqlite3.OperationalError:
                running = up = 0
            if running and up:
                return
        time.sleep(0.02)
    raise AssertionError("no experiment started")


@pytest.mark.parametrize("mode", ["clusters", "jobs"])
def test_sigkill_then_down_removes_everything(tmp_path, mode):
    process, env = running_cli(tmp_path, mode)
    kill(process)
    assert StandIn(tmp_path / "cloud").live(), "the kill should leave workers up"
    result = cli(["down", "run"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stdout
    assert StandIn(tmp_path / "cloud").live() == []
    assert rows(tmp_path / "run", "SELECT COUNT(*) FROM workers WHERE status != 'down'") == [(0,)]
    again = cli(["down", "run"], tmp_path, env)
    assert again.returncode == 0 and "nothing to remove" in again.stdout
    everything = cli(["down", "--all"], tmp_path, env)
    assert everything.returncode == 0 and "nothing left" in everything.stdout


def test_sigkill_then_resume_reattaches_and_finishes(tmp_path):
    process, env = running_cli(tmp_path)
    kill(process)
    up_before = {r[0] for r in rows(tmp_path / "run", "SELECT id FROM workers WHERE status='up'")}
    launches_before = StandIn(tmp_path / "cloud").state["counters"]["launch"]
    result = cli(["resume", "run"], tmp_path, env, timeout=120)
    assert result.returncode == 0, result.stderr
    events = [r[0] for r in rows(tmp_path / "run", "SELECT message FROM events WHERE kind='resume'")]
    reattached = [name for name in up_before if any(f"re-attached to cluster {name}" in e for e in events)]
    assert reattached, events
    launches = StandIn(tmp_path / "cloud").state["counters"]["launch"] - launches_before
    assert launches == 2 - len(reattached)  # each worker slot re-attached or, if it was gone, launched anew
    check_ledger(tmp_path / "run", finished=True)
    assert StandIn(tmp_path / "cloud").live() == []


def test_url_target_dry_run_clones_nothing(tmp_path):
    """tasks/llama-cpp: its dry run writes valid SkyPilot tasks and the plan, and clones nothing here."""
    result = cli(["optimize", str(ROOT / "tasks/llama-cpp/task.yaml"), "--plan", str(ROOT / "tasks/llama-cpp/plan.md"),
                  "--backend", "skypilot", "--dryrun", "--run-dir", "run"], tmp_path, standin_env(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "run"
    assert "launch plan (clusters mode" in result.stdout and "4 × spot cluster" in result.stdout
    written = [line.strip() for line in result.stdout.splitlines() if line.strip().endswith(".yaml")]
    assert len(written) >= 5 and all((tmp_path / p).is_file() for p in written)
    objects = subprocess.run(["git", "count-objects", "-v"], cwd=run_dir / "repo.git", capture_output=True, text=True).stdout
    assert "count: 0" in objects and "in-pack: 0" in objects  # nothing fetched
    job = json.loads(next((run_dir / "sky" / "work").glob("*r1-h1*/job.json")).read_text())
    assert job["repo"]["url"] == "https://github.com/ggml-org/llama.cpp" and job["repo"]["base_commit"] is None
    assert "llama-bench" in (ROOT / "tasks/llama-cpp/bench.sh").read_text()
    assert StandIn(tmp_path / "cloud").calls == []
    assert rows(run_dir, "SELECT status FROM runs") == [("dryrun",)]


def test_doctor_reports_sky_check_without_launching(tmp_path):
    env = {"HOME": str(tmp_path), "RESEARCH_AGENT_SKY_API": ""}
    result = cli(["doctor"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    # With no API server it names `sky check`; with one up on this machine it reports what sky check enabled.
    assert "skypilot" in result.stdout and ("sky check" in result.stdout or "enabled infra" in result.stdout), result.stdout


def test_help_does_not_import_skypilot():
    code = "import sys, research_agent.cli as c; sys.argv=['research-agent','--help']\ntry: c.app()\nexcept SystemExit: pass\nprint('sky' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_sigterm_tears_down_and_prints_the_resume_line(tmp_path):
    process, _env = running_cli(tmp_path, "pool")
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "research-agent resume run" in err and "Traceback" not in err
    assert StandIn(tmp_path / "cloud").live() == []
    assert rows(tmp_path / "run", "SELECT status FROM runs") == [("interrupted",)]
    assert rows(tmp_path / "run", "SELECT COUNT(*) FROM workers WHERE status != 'down'") == [(0,)]


# --- issue 9: SkyPilot's real semantics (each test fails against the code before its fix) -----------


def managed_running(api: StandIn) -> bool:
    with api._lock:
        return any(j["status"] == "RUNNING" and j.get("name", "").endswith("-1") and "baseline" not in j["name"]
                   for j in api.state["managed"].values())


def start_in_thread(run, api):
    """The orchestrator in a thread (a run in progress); returns (backend, thread, outcome dict)."""
    backend = SkyPilotBackend(run, {"api": api})
    orchestrator = Orchestrator(run, backend)
    outcome: dict = {}

    def go():
        try:
            outcome["result"] = orchestrator.execute()
        except BaseException as error:  # noqa: BLE001 — interrupted by the teardown under test
            outcome["error"] = error

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return backend, thread, outcome


def wait_until(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def hang_target(root: Path, mode: str, **workers):
    return conftest.make_target(root, {"H1": {"hang.txt": "x\n"}, "H2": {"hang.txt": "y\n"}}, files={"bench.sh": HANG_BENCH},
                                task_extra=task_extra(mode, **workers))


def test_pool_down_waits_for_cancelled_jobs_and_checks_the_pool_is_gone(tmp_path):
    """Item 1: sky.jobs.cancel is asynchronous and pool_down ignores a pool with unfinished jobs."""
    run, api = standin_run(tmp_path, "pool", target=hang_target)
    backend, thread, _outcome = start_in_thread(run, api)
    wait_until(lambda: managed_running(api))
    backend.down_all()
    thread.join(120)
    assert api.live() == [], api.live()
    assert backend.leftovers == []
    assert rows(tmp_path / "run", "SELECT COUNT(*) FROM workers WHERE status != 'down'") == [(0,)]
    calls = [c[0] for c in api.calls]
    assert calls.index("pool_down") > max(i for i, c in enumerate(calls) if c == "jobs_cancel")


def test_pool_jobs_get_their_inputs_without_workdir_or_file_mounts(tmp_path):
    """Item 2: a pool job's YAML sets neither workdir nor file_mounts; the inputs travel in its env."""
    import sky

    run, api = standin_run(tmp_path, "pool")
    run_on(run, api)
    assert api.live() == []
    decisions = dict(rows(tmp_path / "run", "SELECT hypothesis, decision FROM experiments"))
    assert decisions == {"H1": "kept", "H2": "discarded"}, decisions
    loaded = sky.Task.from_yaml(str(next((tmp_path / "run/sky").glob("ra-run-r1-h1-*.yaml"))))
    assert loaded.workdir is None and not loaded.file_mounts and not loaded.setup
    assert "RA_JOB_INPUTS" in loaded.envs
    check_ledger(tmp_path / "run", finished=True)


def test_down_prints_each_leftover_with_its_sky_command_and_exits_9(tmp_path):
    """Item 3: a failed removal is reported (exit 9, the exact `sky` command) and the row stays live."""
    process, env = running_cli(tmp_path)
    kill(process)
    failing = cli(["down", "run"], tmp_path, standin_env(tmp_path, Faults(down_fails=True)))
    assert failing.returncode == 9, (failing.stdout, failing.stderr)
    assert "sky down ra-run-1 -y" in failing.stdout and "nothing to remove" not in failing.stdout
    assert failing.stderr.startswith("research-agent: ") and "Traceback" not in failing.stderr
    assert rows(tmp_path / "run", "SELECT COUNT(*) FROM workers WHERE status != 'down'")[0][0] >= 1
    result = cli(["down", "run"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert StandIn(tmp_path / "cloud").live() == []
    assert rows(tmp_path / "run", "SELECT COUNT(*) FROM workers WHERE status != 'down'") == [(0,)]


def test_a_launch_in_flight_is_cancelled_by_its_request_id(tmp_path):
    """Item 4: the request id is in the ledger as soon as it exists; down cancels by it (sky down of an
    INIT cluster would not stop the launch); the cluster is marked down once SkyPilot shows it gone."""
    run, api = standin_run(tmp_path, faults=Faults(provision=(30.0, 30.0), launch_request_delay=0.2))
    backend = SkyPilotBackend(run, {"api": api})
    backend._prepare()
    backend._ensure_clusters(1)

    def request_id():
        meta = [json.loads(m or "{}") for (m,) in rows(tmp_path / "run", "SELECT meta FROM workers")]
        return next((m["request_id"] for m in meta if m.get("request_id")), None)

    wait_until(lambda: request_id() is not None)
    started = time.monotonic()
    backend.down_all()
    assert ("cancel_request", request_id()) in api.calls
    assert time.monotonic() - started < 30.0  # cancelled, not waited out
    assert api.live() == [] and backend.leftovers == []
    assert rows(tmp_path / "run", "SELECT status FROM workers") == [("down",)]


def test_reattach_cancels_what_the_killed_run_left_running(tmp_path):
    """Item 5: sky.cancel(cluster, job_ids=[]) cancels nothing: re-attach must cancel every job."""
    process, _env = running_cli(tmp_path, target=hang_target)
    api = StandIn(tmp_path / "cloud")
    wait_until(lambda: any(j["name"] and "r1-h" in j["name"] for j in api._load()["jobs"].values()))
    kill(process)
    resumed = rundir.open_run(tmp_path / "run")
    api = StandIn(tmp_path / "cloud")
    backend = SkyPilotBackend(resumed, {"api": api})
    backend.teardown()  # the resume's first call: reconcile (re-attach)
    reattached = [c.name for c in backend._clusters.values()]
    assert reattached
    alive = [j["name"] for j in api.state["jobs"].values() if j["cluster"] in reattached and api._alive(j.get("pid"))]
    assert alive == []
    backend.down_all()
    assert api.live() == []


def test_price_lookup_takes_one_resources_from_skypilots_set():
    """Item 6: sky.Resources.from_yaml_config returns a set of Resources."""
    import sky

    from research_agent.backends import sky_api

    assert isinstance(sky.Resources.from_yaml_config({"cpus": 2, "infra": "aws"}), set)
    one = sky_api.one_resources({"cpus": 2, "infra": "aws", "use_spot": True})
    assert str(one.cloud).lower() == "aws" and one.use_spot


@pytest.mark.parametrize("status", ["FAILED_PRECHECKS", "FAILED_NO_RESOURCE"])
def test_managed_job_failures_read_their_reason_from_queue_v2(tmp_path, status):
    """Items 7, 8: the reason comes only when failure_reason is asked for; no capacity is exit 8 at once,
    a precheck failure a clear failure without another attempt."""
    run, api = standin_run(tmp_path, "jobs", Faults(managed_fail={2: status}))
    orchestrator = Orchestrator(run, SkyPilotBackend(run, {"api": api}))
    if status == "FAILED_NO_RESOURCE":
        with pytest.raises(CloudError, match="no capacity: FAILED_NO_RESOURCE: simulated"):
            orchestrator.execute()
        assert CloudError("x").exit_code == 8
    else:
        orchestrator.execute()
        reasons = [r[0] for r in rows(tmp_path / "run", "SELECT reason FROM experiments WHERE kind='hypothesis'")]
        assert any("FAILED_PRECHECKS: simulated" in (r or "") for r in reasons), reasons
    launched = [c[1] for c in api.calls if c[0] == "jobs_launch"]
    failed = launched[1]  # job 2: the first experiment
    assert launched.count(failed) == 1 and not any(n.startswith(failed.rsplit("-", 1)[0] + "-2") for n in launched)
    assert api.live() == []


def test_exec_failures_requeue_and_replace_the_cluster(tmp_path):
    """Item 9: a failed rsync, ResourcesMismatchError or a dropped API connection is a lost worker."""
    from sky import exceptions

    from research_agent.backends.sky_api import WorkerLost, exec_error

    for error in (exceptions.CommandError(255, "rsync", "rsync failed", None), exceptions.ResourcesMismatchError("no"),
                  exceptions.ApiServerConnectionError("http://127.0.0.1:1"), ConnectionError("reset")):
        assert isinstance(exec_error(error), WorkerLost), error
    assert isinstance(exec_error(ValueError("bad task")), ValueError)
    run, api = standin_run(tmp_path, faults=Faults(exec_lost=[2]))
    run_on(run, api)
    decisions = dict(rows(tmp_path / "run", "SELECT hypothesis, decision FROM experiments"))
    assert decisions == {"H1": "kept", "H2": "discarded"}, decisions
    assert any(c[0] == "launch" and c[1].endswith("-g2") for c in api.calls), api.calls  # the worker was replaced
    assert api.live() == []
    check_ledger(tmp_path / "run", finished=True)


def test_spot_only_where_spot_exists_and_infra_instead_of_cloud_region_zone(tmp_path):
    """Items 10, 11: Slurm/Kubernetes-only users get on-demand (said once); cloud/region/zone -> infra."""
    import sky

    run, api = standin_run(tmp_path / "a", faults=Faults(infra=["Slurm", "Kubernetes"]), options={"dryrun": True})
    backend = SkyPilotBackend(run, {"api": api})
    written, lines = backend.dry_run()
    assert not next(iter(sky.Task.from_yaml(str(written[0])).resources)).use_spot
    assert any("on-demand" in line for line in lines)
    assert [e["message"] for e in run.ledger.events() if "no spot market" in e["message"]]
    run, api = standin_run(tmp_path / "b", options={"dryrun": True}, cloud="aws", region="us-east-1")
    written, _lines = SkyPilotBackend(run, {"api": api}).dry_run()
    text = written[0].read_text()
    assert "infra: \"aws/us-east-1\"" in text and "cloud:" not in text and "region:" not in text


def test_pool_whose_workers_never_come_up_times_out(tmp_path):
    """Item 11: managed jobs PENDING on a pool that never gets workers end as no capacity (exit 8)."""
    run, api = standin_run(tmp_path, "pool", Faults(pool_never_ready=True), launch_timeout=1)
    with pytest.raises(CloudError, match="no capacity: pool .* did not come up"):
        run_on(run, api)
    assert api.live() == []


def test_a_failed_pool_is_removed_not_reattached(tmp_path):
    run, api = standin_run(tmp_path, "pool")
    backend = SkyPilotBackend(run, {"api": api})
    backend._prepare()
    backend._ensure_pool(1)
    with api._lock:
        api.state["pools"][backend.pool_name]["status"] = "FAILED"
        api._save()
    again = SkyPilotBackend(run, {"api": api})
    assert again.pool_name in again.teardown()
    assert not again._pool_ready and api.live() == []
    assert not [e for e in run.ledger.events() if "re-attached to worker pool" in e["message"]]


def test_sweep_leaves_a_run_whose_name_extends_this_one(tmp_path):
    """Item 11: `ra-run-` must not match run `run-2`'s `ra-run-2-1`."""
    run, api = standin_run(tmp_path)
    with api._lock:
        for name in ("ra-run-2-1", "ra-run-1"):
            api.state["clusters"][name] = {"status": "UP", "home": None, "autostop": None, "created": time.time()}
        api._save()
    removed = SkyPilotBackend(run, {"api": api}).sweep()
    assert removed == ["ra-run-1"] and list(api.state["clusters"]) == ["ra-run-2-1"]


def test_error_lines_carry_no_colour_codes():
    from research_agent.backends.skypilot import _why

    assert _why(RuntimeError("\x1b[33mPool 'x' has 1 nonterminal jobs\x1b[0m")) == "Pool 'x' has 1 nonterminal jobs"
