"""The real-SkyPilot tier: research-agent's skypilot backend, through the CLI, on a real single-node
Slurm cluster on this machine with SkyPilot's own local API server (`scripts/local-slurm.sh up`).

Nothing here is simulated: `sky launch` / `exec` / managed jobs / pools provision real Slurm jobs,
the demo's builds and benchmarks run on them, and the faults are real (`scancel` of the Slurm job
behind a cluster, `kill -9` of research-agent). After every test, SkyPilot's state (`sky status`,
`sky jobs queue`, `sky jobs pool status`) and `squeue` must hold nothing, and the ledger must agree.

Launches are the cost (about a minute each here): each test is one demo run with 2 workers, the fault
tests reuse that run rather than adding their own. Skipped with one line when no local Slurm is up.
Waits are on states (ledger rows, SkyPilot records, squeue) with generous deadlines, never on sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import DEMO, ROOT

pytestmark = [pytest.mark.slurm, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

EXPECTED = {"H1": "kept", "H2": "discarded", "H3": "failed", "H4": "rejected"}
RUN_TIMEOUT = 1500  # seconds for one demo run on real Slurm (observed: a few minutes)
GONE_TIMEOUT = 300  # seconds for SkyPilot / Slurm to show a teardown


# --- helpers ---------------------------------------------------------------------------------------


def demo_task(tmp_path: Path, mode: str, **workers) -> Path:
    """The bundled demo (a copy), on 2 SkyPilot workers on the local Slurm cluster."""
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    options = {"backend": "skypilot", "mode": mode, "infra": "slurm", "use_spot": False, "cpus": 1,
               "poll_seconds": 2, "idle_minutes": 10, "count": 2, **workers}
    task = folder / "task.yaml"
    task.write_text(task.read_text() + f"workers: {json.dumps(options)}\n")
    return task


def env_for(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RESEARCH_AGENT_SKY_API"}  # the real SDK, never the stand-in
    env["RESEARCH_AGENT_STATE_DIR"] = str(tmp_path / "state")  # this test's runs only, for `down --all`
    return env


def cli_args(*args) -> list[str]:
    return [sys.executable, "-m", "research_agent.cli", *args]


def cli(tmp_path: Path, *args, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args(*args), cwd=ROOT, env=env_for(tmp_path), capture_output=True, text=True, timeout=timeout)


def rows(run_dir: Path, sql: str) -> list[tuple]:
    if not (run_dir / "ledger.sqlite").is_file():  # the run has not created it yet
        return []
    db = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()


def wait_for(what: str, predicate, timeout: float, proc: subprocess.Popen | None = None, every: float = 2.0):
    """Poll a state until it holds; a deadline only for a hang, and the run's death ends the wait."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"research-agent exited ({proc.returncode}) before: {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(every)


def sky_left() -> dict[str, list]:
    """What SkyPilot and Slurm still hold: clusters, unfinished managed jobs, pools, Slurm jobs."""
    import sky

    clusters = [r["name"] if isinstance(r, dict) else r.name for r in sky.get(sky.status())]
    records = sky.get(sky.jobs.queue_v2(refresh=False, skip_finished=True, fields=["job_id", "job_name", "status"]))
    records = records[0] if isinstance(records, tuple) else records
    jobs = [(_field(r, "job_id"), _field(r, "job_name"), str(_field(r, "status"))) for r in records]
    pools = [_field(r, "name") for r in sky.get(sky.jobs.pool_status(None))]
    slurm = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True).stdout.split("\n")
    return {"clusters": clusters, "jobs": jobs, "pools": pools, "squeue": [line for line in slurm if line.strip()]}


def _field(record, name):
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def assert_nothing_left() -> None:
    last = {}

    def empty():
        last.update(sky_left())
        return not any(last.values())

    deadline = time.monotonic() + GONE_TIMEOUT
    while not empty():
        assert time.monotonic() < deadline, f"left behind after {GONE_TIMEOUT}s: {last}"
        time.sleep(3)


def force_clean() -> None:
    """After a failed test: remove whatever SkyPilot still holds, so the next test starts empty."""
    import sky

    left = sky_left()
    for job_id, _name, _status in left["jobs"]:
        try:
            sky.get(sky.jobs.cancel(job_ids=[int(job_id)]))
        except Exception:  # noqa: BLE001 — best effort: the assertion that follows reports what stays
            pass
    for pool in left["pools"]:
        try:
            sky.get(sky.jobs.pool_down(pool, purge=True))
        except Exception:  # noqa: BLE001
            pass
    for cluster in left["clusters"]:
        try:
            sky.get(sky.down(cluster, purge=True))
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def clean(tmp_path):
    """Starts from an empty SkyPilot; ends with `down --all` of this test's runs and an empty SkyPilot."""
    before = sky_left()
    assert not any(before.values()), f"SkyPilot / Slurm not empty before the test: {before}"
    yield
    cli(tmp_path, "down", "--all", timeout=900)
    try:
        assert_nothing_left()
    except AssertionError:
        force_clean()
        raise


def decisions(tmp_path: Path, run_dir: Path) -> dict[str, str]:
    done = cli(tmp_path, "status", str(run_dir), "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    return {e["hypothesis"]: e["decision"] for e in json.loads(done.stdout)["experiments"]}


def check_ledger(run_dir: Path) -> None:
    """One row per hypothesis, decided once, on the pairs of its latest attempt only; every worker down."""
    experiments = rows(run_dir, "SELECT id, hypothesis, status, decision, n_pairs, attempt FROM experiments WHERE kind='hypothesis'")
    assert sorted(r[1] for r in experiments) == sorted(EXPECTED), experiments  # no duplicate experiment
    decided = dict(rows(run_dir, "SELECT experiment_id, decision FROM decisions"))
    for exp, _hyp, status, decision, n_pairs, attempt in experiments:
        assert status == "done" and decided[exp] == decision, (exp, status, decision)
        for arm in ("base", "cand"):
            idx = [r[0] for r in rows(run_dir, f"SELECT idx FROM samples WHERE experiment_id='{exp}' AND attempt={attempt} AND arm='{arm}' ORDER BY idx")]
            assert idx == list(range(n_pairs or 0)), (exp, arm, idx, n_pairs)
    assert rows(run_dir, "SELECT id, status FROM workers WHERE status != 'down'") == []


def running_jobs_on_clusters(run_dir: Path) -> dict[str, str]:
    """{cluster: job name} for every cluster of the run where an experiment's worker process runs now.

    Read from the node itself (the single Slurm node is this machine): a process of
    `research_agent.worker` with the job's RA_JOB in its environment, inside a Slurm job (SLURM_JOB_ID),
    whose name squeue reports as the cluster's name on Slurm. Polling SkyPilot's queue instead would
    load the API server the run itself depends on."""
    jobs = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"research_agent.worker" not in (proc / "cmdline").read_bytes():
                continue
            env = dict(item.split("=", 1) for item in (proc / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in item)
        except OSError:  # exited meanwhile, or not ours to read
            continue
        if env.get("RA_JOB", "").startswith(f"ra-{run_dir.name}-r") and env.get("SLURM_JOB_ID"):
            jobs[env["SLURM_JOB_ID"]] = env["RA_JOB"]
    if not jobs:
        return {}
    names = dict(line.split(maxsplit=1) for line in subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True,
                                                                     text=True).stdout.splitlines() if len(line.split()) == 2)
    return {names[slurm_id].rsplit("-", 1)[0]: job for slurm_id, job in jobs.items() if slurm_id in names}


def slurm_job_of(cluster: str) -> str:
    """The Slurm job id behind a SkyPilot cluster (SkyPilot names it `<cluster>-<hash>`)."""
    lines = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout.splitlines()
    ids = [line.split()[0] for line in lines if len(line.split()) > 1 and line.split()[1].rsplit("-", 1)[0] == cluster]
    assert len(ids) == 1, (cluster, lines)
    return ids[0]


# --- the demo, per mode ------------------------------------------------------------------------------


def test_clusters_demo_survives_a_slurm_preemption(tmp_path, clean):
    """clusters mode: 2 clusters; the Slurm job behind the cluster running H1 is `scancel`led mid-benchmark.
    The experiment is requeued (never decided on the partial pairs), the lost worker is replaced, and the
    demo still ends kept / discarded / failed / rejected with nothing left in SkyPilot or Slurm."""
    task, run_dir = demo_task(tmp_path, "clusters"), tmp_path / "clus"
    with open(tmp_path / "run.log", "w") as log:
        run = subprocess.Popen(cli_args("optimize", str(task), "--plan", str(DEMO / "plan.md"), "--run-dir", str(run_dir)),
                               cwd=ROOT, env=env_for(tmp_path), stdout=log, stderr=subprocess.STDOUT)
        try:
            busy = wait_for("H1 running on a cluster", lambda: {c: j for c, j in running_jobs_on_clusters(run_dir).items() if "-h1" in j},
                            RUN_TIMEOUT, run, every=1.0)
            preempted = next(iter(busy))
            subprocess.run(["scancel", slurm_job_of(preempted)], check=True)
            assert run.wait(timeout=RUN_TIMEOUT) == 0, (tmp_path / "run.log").read_text()[-3000:]
        finally:
            if run.poll() is None:
                run.kill()
    assert decisions(tmp_path, run_dir) == EXPECTED
    check_ledger(run_dir)
    # Requeued by the backend (a new try of the same experiment: one ledger row, its pairs only from the
    # verified transfer of the try that finished — check_ledger), not decided on the lost try's pairs.
    requeued = rows(run_dir, "SELECT message FROM events WHERE message LIKE 'r1-H1:%requeued%'")
    assert requeued, rows(run_dir, "SELECT kind, message FROM events")
    clusters = [r[0] for r in rows(run_dir, "SELECT id FROM workers WHERE meta LIKE '%\"kind\": \"cluster\"%'")]
    assert preempted in clusters and len(clusters) >= 3, clusters  # the lost worker was replaced
    assert_nothing_left()


def test_jobs_demo_ends_decided_and_leaves_nothing(tmp_path, clean):
    """jobs mode: every experiment is a managed job on its own Slurm cluster, 2 at a time."""
    task, run_dir = demo_task(tmp_path, "jobs"), tmp_path / "jobs"
    done = cli(tmp_path, "optimize", str(task), "--plan", str(DEMO / "plan.md"), "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert decisions(tmp_path, run_dir) == EXPECTED
    check_ledger(run_dir)
    assert_nothing_left()


def test_pool_demo_ends_decided_and_leaves_nothing(tmp_path, clean):
    """pool mode: a pool of 2 warm Slurm workers; every experiment is a managed job submitted to it."""
    task, run_dir = demo_task(tmp_path, "pool", launch_timeout=600), tmp_path / "pool"
    done = cli(tmp_path, "optimize", str(task), "--plan", str(DEMO / "plan.md"), "--run-dir", str(run_dir), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert decisions(tmp_path, run_dir) == EXPECTED
    check_ledger(run_dir)
    assert_nothing_left()


# --- kill -9 mid-round, then down and resume -----------------------------------------------------------


def test_kill_9_mid_round_then_down_and_resume(tmp_path, clean):
    """research-agent killed with SIGKILL while experiments run on 2 clusters: `down RUN_DIR` removes every
    cluster (SkyPilot and Slurm empty), `resume` finishes the run with no duplicate experiment."""
    task, run_dir = demo_task(tmp_path, "clusters"), tmp_path / "kill"
    run = subprocess.Popen(cli_args("optimize", str(task), "--plan", str(DEMO / "plan.md"), "--run-dir", str(run_dir)),
                           cwd=ROOT, env=env_for(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("an experiment running on a cluster", lambda: running_jobs_on_clusters(run_dir), RUN_TIMEOUT, run, every=1.0)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    down = cli(tmp_path, "down", str(run_dir), timeout=900)
    assert down.returncode == 0, down.stderr
    assert_nothing_left()
    assert rows(run_dir, "SELECT id, status FROM workers WHERE status != 'down'") == []  # the ledger agrees

    resumed = cli(tmp_path, "resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert decisions(tmp_path, run_dir) == EXPECTED
    check_ledger(run_dir)
    assert_nothing_left()


# --- SIGINT mid-launch; a setup command that fails ------------------------------------------------------


def test_sigint_mid_launch_cancels_the_launch_and_leaves_nothing(tmp_path, clean):
    """Ctrl-C while the first cluster is still being provisioned (its launch request in flight, its Slurm
    job allocated): research-agent exits 130 (resumable), the launch is cancelled by its request id and the
    cluster removed — before `down` is run — and the ledger agrees; no experiment was decided."""
    task, run_dir = demo_task(tmp_path, "clusters"), tmp_path / "sigint"
    with open(tmp_path / "run.log", "w") as log:
        run = subprocess.Popen(cli_args("optimize", str(task), "--plan", str(DEMO / "plan.md"), "--run-dir", str(run_dir)),
                               cwd=ROOT, env=env_for(tmp_path), stdout=log, stderr=subprocess.STDOUT)
        try:
            def launching():
                requested = rows(run_dir, "SELECT id FROM workers WHERE meta LIKE '%request_id%' AND status != 'up'")
                in_slurm = {line.split()[1].rsplit("-", 1)[0] for line in subprocess.run(
                    ["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout.splitlines() if len(line.split()) == 2}
                return [r[0] for r in requested if r[0] in in_slurm]

            wait_for("a cluster launch in flight (request id recorded, Slurm job allocated)", launching, RUN_TIMEOUT, run, every=0.5)
            run.send_signal(signal.SIGINT)
            code = run.wait(timeout=900)
        finally:
            if run.poll() is None:
                run.kill()
    output = (tmp_path / "run.log").read_text()
    assert code == 130, output[-3000:]
    assert "Traceback" not in output and "resume" in output
    assert_nothing_left()  # by the interrupted run itself: the fixture's `down --all` comes after
    assert rows(run_dir, "SELECT id, status FROM workers WHERE status != 'down'") == []
    assert rows(run_dir, "SELECT experiment_id FROM decisions") == []


def test_a_failing_setup_has_autodown_set_and_leaves_nothing(tmp_path, clean):
    """workers.setup that fails, after hanging a while: while it runs, SkyPilot already holds autodown for
    the cluster (setup is the cluster's first job, after the launch set it — a research-agent killed now
    still loses no cluster); when it fails, the run ends with one line naming the failure (exit 8), the
    setup is not retried, and nothing is left."""
    started, release = tmp_path / "setup-started", tmp_path / "setup-release"
    setup = f"touch {started}; while [ ! -f {release} ]; do sleep 1; done; echo workers-setup-broke >&2; exit 3"
    task, run_dir = demo_task(tmp_path, "clusters", setup=setup), tmp_path / "setup"
    with open(tmp_path / "run.log", "w") as log:
        run = subprocess.Popen(cli_args("optimize", str(task), "--plan", str(DEMO / "plan.md"), "--run-dir", str(run_dir)),
                               cwd=ROOT, env=env_for(tmp_path), stdout=log, stderr=subprocess.PIPE, text=True)
        try:
            wait_for("the workers' setup running", started.exists, RUN_TIMEOUT, run, every=1.0)
            import sky

            (cluster,) = [r[0] for r in rows(run_dir, "SELECT id FROM workers")]
            (record,) = sky.get(sky.status([cluster]))
            autostop = record["autostop"] if isinstance(record, dict) else record.autostop
            to_down = record["to_down"] if isinstance(record, dict) else record.to_down
            assert (autostop, to_down) == (10, True), record  # idle_minutes of demo_task, autodown
            release.touch()
            _out, err = run.communicate(timeout=900)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 8, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("research-agent: no worker could be launched: the workers' setup failed") and "Traceback" not in err
    assert "workers-setup-broke" in last, last
    assert len(rows(run_dir, "SELECT id FROM workers")) == 1  # not relaunched: the same script fails the same way
    assert_nothing_left()
    assert rows(run_dir, "SELECT id, status FROM workers WHERE status != 'down'") == []
