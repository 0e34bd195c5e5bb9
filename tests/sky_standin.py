"""A stand-in for the SkyPilot SDK calls the backend makes (research_agent.backends.sky_api.SkyAPI).

No cloud here, so this simulates one — faithfully where it matters:

- every task file is loaded with the real `sky.Task.from_yaml`;
- a "VM" is a folder used as HOME: the task's file_mounts are copied into it, its workdir into
  ~/sky_workdir, setup is replaced by a venv shim (~/.ra/venv/bin/python -> this Python, which has
  the worker's dependencies), and the task's real `run` script runs there as a detached process
  group with the task's envs and secrets — so research_agent.worker really clones, patches,
  builds, benchmarks and emits its results bundle into the job log;
- state (clusters, jobs, pools, pids) lives in ROOT/state.json, so a new process (after a SIGKILL)
  sees what the killed one left running, as it would with a real API server;
- faults, from a seeded schedule: slow provisioning, failed launches, no offering anywhere, spot
  preemption of the n-th job mid-experiment, lost connections and truncated logs while fetching
  results. Times are scaled down to fractions of a second.

`live()` lists everything still up (clusters, pools, unfinished jobs, live processes): the tests
assert it is empty after every run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from research_agent.backends.sky_api import LaunchError, WorkerLost

TERMINAL = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "CANCELLED", "FAILED_NO_RESOURCE", "FAILED_CONTROLLER"}


@dataclass
class Faults:
    seed: int = 0
    provision: tuple[float, float] = (0.01, 0.05)  # seconds a launch takes (uniform)
    fail_launches: list[int] = field(default_factory=list)  # these launch numbers (1-based) fail: no spot capacity
    unavailable: bool = False  # no offering anywhere (e.g. an accelerator no region has)
    no_infra: bool = False  # `sky check` enabled nothing
    preempt: dict[int, float] = field(default_factory=dict)  # job number -> seconds after its start
    lose_fetch: list[int] = field(default_factory=list)  # these log fetches raise ConnectionError
    truncate_fetch: list[int] = field(default_factory=list)  # these log fetches return a cut-off log
    price: float = 0.40  # USD per hour per VM
    infra: list[str] = field(default_factory=lambda: ["AWS", "Kubernetes"])  # what `sky check` enabled
    managed_fail: dict[int, str] = field(default_factory=dict)  # managed job number -> terminal status it gets instead of running
    exec_lost: list[int] = field(default_factory=list)  # these exec calls (1-based) fail as a failed file sync
    pool_never_ready: bool = False  # the pool's workers never come up (its jobs stay PENDING)
    launch_request_delay: float = 0.0  # seconds before a launch's request id reaches the client
    down_fails: bool = False  # every `sky down` / pool down raises (e.g. the cloud refuses)
    fail_setup: bool = False  # the clusters' setup job exits non-zero (e.g. a broken workers.setup)

    def __post_init__(self):  # after a JSON round trip (subprocess runs)
        self.preempt = {int(k): float(v) for k, v in self.preempt.items()}
        self.managed_fail = {int(k): str(v) for k, v in self.managed_fail.items()}
        self.provision = tuple(self.provision)

    @classmethod
    def random(cls, seed: int, jobs: int = 3) -> "Faults":
        rng = random.Random(seed)
        return cls(
            seed=seed,
            provision=(0.01, rng.choice([0.02, 0.1, 0.4])),
            fail_launches=rng.sample(range(1, 5), rng.choice([0, 0, 1, 2])),
            preempt={n: rng.uniform(0.02, 0.3) for n in rng.sample(range(1, jobs + 1), rng.choice([0, 1, 1, 2]))},
            lose_fetch=rng.sample(range(1, 8), rng.choice([0, 1, 2])),
            truncate_fetch=rng.sample(range(1, 8), rng.choice([0, 1])),
        )


def _gone(member: psutil.Process) -> bool:
    try:
        return member.status() == psutil.STATUS_ZOMBIE  # dead, waiting for its parent to reap it
    except psutil.Error:
        return True


def make_api():
    """Factory for RESEARCH_AGENT_SKY_API=tests.sky_standin:make_api (subprocess runs)."""
    faults = json.loads(os.environ.get("RA_STANDIN_FAULTS") or "{}")
    return StandIn(Path(os.environ["RA_STANDIN_ROOT"]), Faults(**faults) if faults else None)


class StandIn:
    def __init__(self, root: Path, faults: Faults | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self._lock = threading.RLock()
        self._procs: dict[int, subprocess.Popen] = {}
        self._cancelled: set[str] = set()
        self._timers: list[threading.Timer] = []
        self.calls: list[tuple] = []  # (method, name) for assertions
        self.state = self._load()

    # --- persistence ----------------------------------------------------------------------------

    def _load(self) -> dict:
        path = self.root / "state.json"
        if path.exists():
            return json.loads(path.read_text())
        return {"clusters": {}, "jobs": {}, "managed": {}, "pools": {}, "requests": {},
                "counters": {"launch": 0, "job": 0, "fetch": 0, "managed": 0, "exec": 0, "request": 0}}

    def _save(self) -> None:
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.root / "state.json")

    def _count(self, what: str) -> int:
        with self._lock:
            self.state["counters"].setdefault(what, 0)
            self.state["counters"][what] += 1
            self._save()
            return self.state["counters"][what]

    # --- a VM -----------------------------------------------------------------------------------

    def _task(self, yaml_path: Path):
        import sky

        return sky.Task.from_yaml(str(yaml_path))  # the real loader, every time

    def _make_vm(self, name: str, task) -> Path:
        home = self.root / "vms" / name
        if home.exists():
            shutil.rmtree(home)
        (home / ".ra" / "venv" / "bin").mkdir(parents=True)
        shim = home / ".ra" / "venv" / "bin" / "python"  # setup, simulated: this Python has the worker's dependencies
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        shim.chmod(0o755)
        self._mount(home, task)
        return home

    def _mount(self, home: Path, task) -> None:
        for dst, src in (task.file_mounts or {}).items():
            target = home / dst.replace("~/", "", 1)
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(src).is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, target)

    def _start(self, home: Path, task, secrets: dict, log: Path, sync_workdir: bool = True) -> int:
        if task.workdir and sync_workdir:
            workdir = home / "sky_workdir"
            if workdir.exists():
                shutil.rmtree(workdir)
            shutil.copytree(task.workdir, workdir)
        script = log.with_suffix(".sh")
        script.write_text(task.run or "true")
        rc = log.with_suffix(".rc")
        rc.unlink(missing_ok=True)
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
               **{k: str(v) for k, v in (task.envs or {}).items()}, **{k: str(v) for k, v in (secrets or {}).items()}}
        for key in ("RESEARCH_AGENT_DEBUG",):
            if key in os.environ:
                env[key] = os.environ[key]
        process = subprocess.Popen(["bash", "-c", f'bash "{script}" >> "{log}" 2>&1; echo $? > "{rc}.tmp"; mv "{rc}.tmp" "{rc}"'],
                                   cwd=str(home / "sky_workdir") if task.workdir and sync_workdir else str(home), env=env,
                                   start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with self._lock:
            self._procs[process.pid] = process
        return process.pid

    def _alive(self, pid: int | None) -> bool:
        if not pid:
            return False
        process = self._procs.get(pid)
        if process is not None:
            return process.poll() is None
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _kill(self, pid: int | None) -> None:
        """The VM's end for a job: its whole process tree (the worker's commands run in their own sessions)."""
        if not pid:
            return
        try:
            family = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            family = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for member in family:
                try:
                    os.killpg(member.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    member.send_signal(sig)
                except psutil.Error:
                    pass
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not all(_gone(m) for m in family):
                time.sleep(0.005)
            if all(_gone(m) for m in family):
                break
        process = self._procs.get(pid)
        if process is not None:
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass

    def _job_state(self, job: dict) -> str:
        rc = Path(job["log"]).with_suffix(".rc")
        if job.get("state") in TERMINAL:
            return job["state"]
        if rc.exists():
            return "SUCCEEDED" if rc.read_text().strip() == "0" else "FAILED"
        if self._alive(job.get("pid")):
            return "RUNNING"
        return job.get("state") or "FAILED"

    def _read_log(self, path: Path) -> str:
        number = self._count("fetch")
        if number in self.faults.lose_fetch:
            raise ConnectionError("connection reset by peer while streaming logs")
        text = path.read_text(errors="replace") if path.exists() else ""
        if number in self.faults.truncate_fetch and text:
            return text[: self.rng.randrange(len(text) // 2, len(text))]
        return text

    def _sleep_provision(self, name: str) -> bool:
        """Sleep the provisioning time; False if the launch was cancelled meanwhile."""
        end = time.monotonic() + self.rng.uniform(*self.faults.provision)
        while time.monotonic() < end:
            if name in self._cancelled:
                return False
            time.sleep(0.01)
        return name not in self._cancelled

    def _schedule_preemption(self, number: int, action) -> None:
        delay = self.faults.preempt.get(number)
        if delay is not None:
            timer = threading.Timer(delay, action)
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    # --- clusters -------------------------------------------------------------------------------

    def _new_request(self, what: str, name: str) -> str:
        with self._lock:
            request_id = f"req-{self._count('request')}"
            self.state["requests"][request_id] = {"what": what, "name": name, "status": "RUNNING"}
            self._save()
        return request_id

    def _end_request(self, request_id: str, status: str) -> None:
        with self._lock:
            record = self.state["requests"].get(request_id)
            if record and record["status"] == "RUNNING":
                record["status"] = status
                self._save()

    def launch(self, yaml_path: Path, cluster: str, idle_minutes: int | None, secrets: dict, on_request=None) -> None:
        task = self._task(yaml_path)
        self.calls.append(("launch", cluster))
        number = self._count("launch")
        self._cancelled.discard(cluster)
        request_id = self._new_request("launch", cluster)
        # sky.client.sdk.launch validates and uploads the task's files before it POSTs: the request id
        # reaches the client late, and only api_cancel(request_id) aborts the launch (sky down of an
        # INIT cluster does not: the server's launch holds on and finishes).
        if self.faults.launch_request_delay:
            time.sleep(self.faults.launch_request_delay)
        if on_request is not None:
            on_request(request_id)
        try:
            self._launch(task, cluster, number, idle_minutes, request_id)
        except LaunchError:
            self._end_request(request_id, "FAILED")
            raise
        self._end_request(request_id, "SUCCEEDED")

    def _launch(self, task, cluster: str, number: int, idle_minutes, request_id: str) -> None:
        if self.faults.no_infra:
            raise LaunchError("no infra enabled: run `sky check` (No cloud access)", unavailable=True)
        if self.faults.unavailable:
            res = next(iter(task.resources))
            raise LaunchError(f"Catalog does not contain any instances satisfying the request: 1x {res}. "
                              "To fix: relax or change the resource requirements.", unavailable=True)
        with self._lock:
            self.state["clusters"][cluster] = {"status": "INIT", "home": None, "autostop": idle_minutes, "created": time.time()}
            self._save()
        ok = self._sleep_provision(request_id)
        if number in self.faults.fail_launches or not ok:
            with self._lock:
                self.state["clusters"].pop(cluster, None)
                self._save()
            if not ok:
                raise LaunchError("launch cancelled")
            raise LaunchError(f"Failed to provision all possible launchable resources. Relax the task's resource requirements: "
                              f"1x {next(iter(task.resources))} (spot capacity unavailable in every zone)")
        home = self._make_vm(cluster, task)
        with self._lock:
            if request_id in self._cancelled:  # api_cancel raced the launch: it wins
                shutil.rmtree(home, ignore_errors=True)
                self.state["clusters"].pop(cluster, None)
                self._save()
                raise LaunchError("launch cancelled")
            self.state["clusters"][cluster].update(status="UP", home=str(home))
            self._save()

    def cancel_request(self, request_id: str) -> None:
        """sky.client.sdk.api_cancel: aborts a request still running; a finished one is left as it is."""
        self.calls.append(("cancel_request", request_id))
        with self._lock:
            record = self.state["requests"].get(request_id)
        if record and record["status"] == "RUNNING":
            self._cancelled.add(request_id)
            self._end_request(request_id, "CANCELLED")

    def exec(self, yaml_path: Path, cluster: str, secrets: dict) -> int:
        task = self._task(yaml_path)
        if (task.envs or {}).get("RA_SETUP") == "1":
            return self._setup_job(cluster)
        if self._count("exec") in self.faults.exec_lost:
            # sky.client.sdk.exec syncs the workdir with rsync first: a failed sync raises
            # sky.exceptions.CommandError — mapped by the facade (sky_api.exec_error).
            from sky import exceptions

            from research_agent.backends.sky_api import exec_error

            raise exec_error(exceptions.CommandError(255, "rsync", "rsync: connection unexpectedly closed", None))
        with self._lock:
            record = self.state["clusters"].get(cluster)
            if not record or record["status"] != "UP":
                raise WorkerLost(f"cluster {cluster} is not up")
            number = self._count("job")
            job_id = number
            log = Path(record["home"]) / "sky_logs" / f"job-{job_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            pid = self._start(Path(record["home"]), task, secrets, log)
            self.state["jobs"][str(job_id)] = {"cluster": cluster, "pid": pid, "log": str(log), "name": task.name, "state": None}
            self._save()
        self.calls.append(("exec", cluster))
        self._schedule_preemption(number, lambda: self.preempt_cluster(cluster))
        return job_id

    def _setup_job(self, cluster: str) -> int:
        """The clusters' setup job (sky/cluster-setup.yaml), simulated like launch-time setup is: the VM's
        venv shim stands for what it installs. It ends at once, SUCCEEDED — or FAILED with
        `fail_setup`, as a real setup job whose script exits non-zero (skylet marks the job FAILED).
        Its own id range, so the fault schedules' exec and job numbers still count experiments only."""
        with self._lock:
            record = self.state["clusters"].get(cluster)
            if not record or record["status"] != "UP":
                raise WorkerLost(f"cluster {cluster} is not up")
            job_id = 100_000 + self._count("setup")
            log = Path(record["home"]) / "sky_logs" / f"job-{job_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            failed = self.faults.fail_setup
            log.write_text("RA_SETUP_FAILED exit 127: bash: workers.setup: command not found\n" if failed else "")  # as sky/cluster-setup.yaml prints it
            self.state["jobs"][str(job_id)] = {"cluster": cluster, "pid": None, "log": str(log), "name": "setup",
                                               "state": "FAILED" if failed else "SUCCEEDED"}
            self._save()
        self.calls.append(("exec", cluster))
        return job_id

    def preempt_cluster(self, cluster: str) -> None:
        """Spot preemption: the VM vanishes with whatever ran on it."""
        with self._lock:
            record = self.state["clusters"].get(cluster)
            if not record:
                return
            jobs = [j for j in self.state["jobs"].values() if j["cluster"] == cluster and j.get("state") not in TERMINAL]
        for job in jobs:
            self._kill(job.get("pid"))
        with self._lock:
            if cluster not in self.state["clusters"]:
                return  # taken down meanwhile
            self.state["clusters"][cluster]["status"] = "STOPPED"  # preempted spot cluster, SkyPilot shows it stopped
            self._save()
        self.calls.append(("preempted", cluster))

    def job_status(self, cluster: str, job_id: int) -> str | None:
        with self._lock:
            record = self.state["clusters"].get(cluster)
            if not record or record["status"] != "UP":
                raise WorkerLost(f"cluster {cluster} is {record['status'] if record else 'gone'}")
            job = self.state["jobs"].get(str(job_id))
            return self._job_state(job) if job else None

    def cluster_status(self, names: list[str]) -> dict[str, str]:
        with self._lock:
            return {n: self.state["clusters"][n]["status"] for n in names if n in self.state["clusters"]}

    def logs(self, cluster: str, job_id: int) -> str:
        with self._lock:
            record = self.state["clusters"].get(cluster)
            job = self.state["jobs"].get(str(job_id))
        if not record or record["status"] != "UP" or job is None:
            raise ConnectionError(f"cluster {cluster} unreachable")
        return self._read_log(Path(job["log"]))

    def cancel(self, cluster: str, job_ids: list[int] | None) -> None:
        # sky.client.sdk.cancel -> skylet job_lib.cancel_jobs: all jobs only with all=True (the facade's
        # None); a list cancels exactly those jobs, so [] cancels nothing.
        with self._lock:
            jobs = [(k, j) for k, j in self.state["jobs"].items() if j["cluster"] == cluster and (job_ids is None or int(k) in job_ids)]
        for key, job in jobs:
            if job.get("state") not in TERMINAL and self._job_state(job) == "RUNNING":
                self._kill(job.get("pid"))
                with self._lock:
                    self.state["jobs"][key]["state"] = "CANCELLED"
                    self._save()

    def down(self, cluster: str) -> None:
        self.calls.append(("down", cluster))
        if self.faults.down_fails:
            raise RuntimeError("Failed to terminate the cluster: permission denied (simulated)")
        with self._lock:
            record = self.state["clusters"].get(cluster)
            jobs = [j for j in self.state["jobs"].values() if j["cluster"] == cluster]
        for job in jobs:
            self._kill(job.get("pid"))
        with self._lock:
            for job in self.state["jobs"].values():
                if job["cluster"] == cluster and job.get("state") not in TERMINAL:
                    job["state"] = "CANCELLED"
            self.state["clusters"].pop(cluster, None)
            self._save()
        if record and record.get("home"):
            shutil.rmtree(record["home"], ignore_errors=True)

    def autostop(self, cluster: str, idle_minutes: int) -> None:
        with self._lock:
            if cluster in self.state["clusters"]:
                self.state["clusters"][cluster]["autostop"] = idle_minutes
                self._save()

    def cluster_price(self, cluster: str) -> float | None:
        return self.faults.price

    # --- managed jobs and pools -----------------------------------------------------------------

    def jobs_launch(self, yaml_path: Path, name: str, pool: str | None, secrets: dict, on_request=None) -> int:
        task = self._task(yaml_path)
        self.calls.append(("jobs_launch", name))
        request_id = self._new_request("jobs.launch", name)
        if on_request is not None:
            on_request(request_id)
        try:
            return self._jobs_launch(task, yaml_path, name, pool, secrets)
        finally:
            self._end_request(request_id, "SUCCEEDED")

    def _jobs_launch(self, task, yaml_path: Path, name: str, pool: str | None, secrets: dict) -> int:
        if self.faults.unavailable:
            raise LaunchError("Catalog does not contain any instances satisfying the request.", unavailable=True)
        with self._lock:
            if pool and pool not in self.state["pools"]:
                raise LaunchError(f"pool {pool} does not exist")
            job_id = self._count("managed")
            log = self.root / "managed" / f"{job_id}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            self.state["managed"][str(job_id)] = {"name": name, "pool": pool, "status": "PENDING", "recovery_count": 0,
                                                  "log": str(log), "pid": None, "home": None, "submitted": time.time(),
                                                  "started": None, "ended": None, "yaml": str(yaml_path), "secrets": sorted(secrets)}
            self._save()
        fail = self.faults.managed_fail.get(job_id)
        if fail:  # e.g. FAILED_NO_RESOURCE: the controller found no capacity; FAILED_PRECHECKS
            with self._lock:
                self.state["managed"][str(job_id)].update(status=fail, ended=time.time(),
                                                          failure_reason=f"{fail}: simulated by the stand-in")
                self._save()
            return job_id
        thread = threading.Thread(target=self._run_managed, args=(job_id, task, secrets, True), daemon=True)
        thread.start()
        return job_id

    def _run_managed(self, job_id: int, task, secrets: dict, first: bool) -> None:
        key = str(job_id)
        with self._lock:
            job = self.state["managed"][key]
        if job["status"] in TERMINAL:
            return
        if job["pool"]:
            # A pool job runs on a pool worker via exec: no workdir, no file_mounts, no setup of its own
            # (sky/jobs: pool jobs reuse the pool's cluster; the docs forbid workdir/file_mounts there).
            home = self._pool_worker(job["pool"], key)
            while home is None:  # wait for a free pool worker
                time.sleep(0.02)
                with self._lock:
                    if self.state["managed"][key]["status"] in TERMINAL:
                        return
                home = self._pool_worker(job["pool"], key)
        else:
            if not self._sleep_provision(f"job-{job_id}"):
                return
            home = self._make_vm(f"job-{job_id}-{job['recovery_count']}", task)
        with self._lock:
            job = self.state["managed"][key]
            if job["status"] in TERMINAL:
                if not job["pool"]:
                    shutil.rmtree(home, ignore_errors=True)
                return
            pid = self._start(home, task, secrets, Path(job["log"]), sync_workdir=not job["pool"])
            job.update(status="RUNNING", pid=pid, home=str(home), started=job["started"] or time.time())
            self._save()
        if first:
            self._schedule_preemption(job_id, lambda: self._preempt_managed(job_id, task, secrets))
        threading.Thread(target=self._watch_managed, args=(job_id, pid), daemon=True).start()

    def _watch_managed(self, job_id: int, pid: int) -> None:
        key = str(job_id)
        while self._alive(pid):
            time.sleep(0.01)
        with self._lock:
            job = self.state["managed"][key]
            if job["pid"] != pid or job["status"] in TERMINAL or job["status"] == "RECOVERING":
                return
            rc = Path(job["log"]).with_suffix(".rc")
            job["status"] = "SUCCEEDED" if rc.exists() and rc.read_text().strip() == "0" else "FAILED"
            job["ended"] = time.time()
            self._release_job_vm(job)
            self._save()

    def _preempt_managed(self, job_id: int, task, secrets: dict) -> None:
        key = str(job_id)
        with self._lock:
            job = self.state["managed"][key]
            if job["status"] != "RUNNING":
                return
            job["status"] = "RECOVERING"
            job["recovery_count"] += 1
            pid = job["pid"]
            self._save()
        self._kill(pid)
        with self._lock:
            self._release_job_vm(self.state["managed"][key])
            self._save()
        self.calls.append(("preempted", f"managed-{job_id}"))
        self._run_managed(job_id, task, secrets, first=False)

    def _release_job_vm(self, job: dict) -> None:
        if job.get("pool"):
            for worker in self.state["pools"].get(job["pool"], {}).get("workers", []):
                if worker["job"] == str(job.get("id", "")) or worker["home"] == job.get("home"):
                    worker["job"] = None
        elif job.get("home"):
            shutil.rmtree(job["home"], ignore_errors=True)

    def _pool_worker(self, pool: str, key: str) -> Path | None:
        with self._lock:
            for worker in self.state["pools"].get(pool, {}).get("workers", []):
                if worker["job"] is None:
                    worker["job"] = key
                    self._save()
                    return Path(worker["home"])
        return None

    def jobs_status(self, job_ids: list[int], fields=None) -> dict[int, dict]:
        # sky.jobs.client.sdk.queue_v2: failure_reason only when named in `fields`
        # (sky.jobs.constants.DEFAULT_MANAGED_JOB_FIELDS leaves it out).
        fields = fields or ()
        with self._lock:
            out = {}
            for job_id in job_ids:
                job = self.state["managed"].get(str(job_id))
                if job is None:
                    continue
                status = job["status"]
                if status == "RUNNING" and not self._alive(job["pid"]):
                    rc = Path(job["log"]).with_suffix(".rc")
                    status = "SUCCEEDED" if rc.exists() and rc.read_text().strip() == "0" else status
                end = job["ended"] or time.time()
                out[int(job_id)] = {"status": status, "recovery_count": job["recovery_count"],
                                    "duration": end - job["started"] if job["started"] else 0.0,
                                    "reason": job.get("failure_reason") if "failure_reason" in fields else None}
            return out

    def jobs_logs(self, job_id: int) -> str:
        with self._lock:
            job = self.state["managed"].get(str(job_id))
        if job is None:
            raise ConnectionError(f"no managed job {job_id}")
        return self._read_log(Path(job["log"]))

    def jobs_cancel(self, job_ids: list[int]) -> None:
        # sky.jobs.server.core.cancel only signals the controller: the job goes CANCELLING now and
        # CANCELLED later, when the controller has stopped it (here: a thread, after a moment).
        for job_id in job_ids:
            with self._lock:
                job = self.state["managed"].get(str(job_id))
                if job is None or job["status"] in TERMINAL or job["status"] == "CANCELLING":
                    continue
                job["status"] = "CANCELLING"
                self._save()
            self.calls.append(("jobs_cancel", job_id))
            threading.Thread(target=self._finish_cancel, args=(job_id,), daemon=True).start()

    def _finish_cancel(self, job_id: int) -> None:
        time.sleep(0.05)
        with self._lock:
            pid = self.state["managed"][str(job_id)]["pid"]
        self._kill(pid)
        with self._lock:
            job = self.state["managed"][str(job_id)]
            job["status"] = "CANCELLED"
            job["ended"] = job["ended"] or time.time()
            self._release_job_vm(job)
            self._save()

    def pool_apply(self, yaml_path: Path, pool: str, workers: int, secrets: dict, on_request=None) -> None:
        task = self._task(yaml_path)
        self.calls.append(("pool_apply", pool))
        request_id = self._new_request("pool_apply", pool)
        if on_request is not None:
            on_request(request_id)
        if self.faults.pool_never_ready:  # the pool exists, its workers never come up
            with self._lock:
                self.state["pools"][pool] = {"status": "STARTING", "workers": []}
                self._save()
            self._end_request(request_id, "SUCCEEDED")
            return
        if self.faults.unavailable:
            raise LaunchError("Catalog does not contain any instances satisfying the request.", unavailable=True)
        with self._lock:
            self.state["pools"][pool] = {"status": "STARTING", "workers": []}
            self._save()
        self._sleep_provision(pool)
        homes = [self._make_vm(f"{pool}-w{i}", task) for i in range(1, workers + 1)]
        with self._lock:
            if pool not in self.state["pools"]:  # pool_down raced the apply
                for home in homes:
                    shutil.rmtree(home, ignore_errors=True)
                raise LaunchError("pool removed while starting")
            self.state["pools"][pool] = {"status": "READY", "workers": [{"home": str(h), "job": None} for h in homes]}
            self._save()

    def pool_status(self, pool: str) -> dict | None:
        with self._lock:
            record = self.state["pools"].get(pool)
            return {"status": record["status"]} if record else None

    def pool_down(self, pool: str) -> None:
        # sky.serve.serve_utils.terminate_services(pool=True): a pool with nonterminal jobs is left
        # as it is (a yellow message, no error) — cancel its jobs and wait for them first.
        self.calls.append(("pool_down", pool))
        with self._lock:
            if any(j["pool"] == pool and j["status"] not in TERMINAL for j in self.state["managed"].values()):
                return
            record = self.state["pools"].pop(pool, None)
            self._save()
        for worker in (record or {}).get("workers", []):
            shutil.rmtree(worker["home"], ignore_errors=True)

    # --- discovery, prices, infra ---------------------------------------------------------------

    def list_clusters(self, prefix: str) -> list[str]:
        with self._lock:
            return [n for n in self.state["clusters"] if n.startswith(prefix)]

    def list_jobs(self, prefix: str) -> list[tuple[int, str]]:
        with self._lock:
            return [(int(k), j["name"]) for k, j in self.state["managed"].items() if j["name"].startswith(prefix) and j["status"] not in TERMINAL]

    def list_pools(self, prefix: str) -> list[str]:
        with self._lock:
            return [p for p in self.state["pools"] if p.startswith(prefix)]

    def hourly_price(self, resources: dict) -> float | None:
        return self.faults.price

    def enabled_infra(self) -> list[str] | None:
        return [] if self.faults.no_infra else list(self.faults.infra)

    # --- for the tests --------------------------------------------------------------------------

    def live(self) -> list[str]:
        """Everything still up: clusters, pools, unfinished managed jobs, running job processes."""
        with self._lock:
            self.state = self._load() if not self._procs else self.state
            up = [f"cluster {n}" for n in self.state["clusters"]]
            up += [f"pool {p}" for p in self.state["pools"]]
            up += [f"managed job {k} ({j['status']})" for k, j in self.state["managed"].items() if j["status"] not in TERMINAL]
            pids = [j.get("pid") for j in list(self.state["jobs"].values()) + list(self.state["managed"].values())]
        up += [f"process {pid}" for pid in pids if self._alive(pid)]
        return up

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()


def faults_json(faults: Faults) -> str:
    data = asdict(faults)
    data["preempt"] = {int(k): v for k, v in data["preempt"].items()}
    return json.dumps(data)
