"""`clusters` mode: N long-lived clusters `ra-<run>-<slot>[-g<n>]` launched in parallel (autostop +
autodown in the launch request itself), experiments queued onto a free one with `sky exec`, a lost
cluster removed and replaced; every cluster goes with `sky down` at the end."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path
from typing import Callable

from ... import proc
from ...ledger import WorkerStatus
from ...text import one_line, plain
from ..sky_api import CloudError, LaunchError, WorkerLost
from .backend import SkyPilotBackend
from .execute import TransferError, _cloud_error, _JobFailed, _NotStarted, _why
from .options import NAME, PREFIX, RUNNING_STATES


class SetupFailed(LaunchError):
    """The worker's setup (toolchain, worker venv, runtime CLI, workers.setup) exited non-zero."""


@dataclasses.dataclass
class Cluster:
    name: str
    slot: int
    generation: int
    state: str = "launching"  # launching | up | busy | dead
    price: float | None = None
    requested: float = dataclasses.field(default_factory=time.time)
    charged: float = 0.0  # USD already charged to experiments
    error: str | None = None
    thread: threading.Thread | None = None
    request_id: str | None = None  # the launch request, from the moment SkyPilot gave one



class ClustersBackend(SkyPilotBackend):
    """The mode's methods (the same few in every mode): _ensure_workers, _worker_names, _attempt,
    _reattachable, _accrued, _mode_tasks, _mode_plan."""

    def _ensure_workers(self, count: int, baseline: bool = False) -> None:
        self._ensure_clusters(1 if baseline else count)

    def _worker_names(self, count: int) -> list[str]:
        return [self.cluster_name(i) for i in range(1, count + 1)]

    def _reattachable(self, exp: str) -> str | None:
        return None  # a sky exec job is not re-attached: its experiment is rerun

    def _accrued(self) -> tuple[float, int]:
        price = self.price() or 0.0
        now = time.time()
        with self._lock:
            accrued, live = 0.0, 0
            for cluster in self._clusters.values():
                if cluster.state != "dead":
                    live += 1
                    accrued += max(0.0, (cluster.price or price) * (now - cluster.requested) / 3600 - cluster.charged)
        return accrued, live

    def _mode_tasks(self) -> list[Path]:
        return [self._write_cluster_yaml(), self.sky_dir / "cluster-setup.yaml"]

    def _mode_plan(self, n_experiments: int, spot: str, what: str) -> list[str]:
        return [f"  {self.count} × {spot} cluster {self.cluster_name(1)} … {self.cluster_name(self.count)} ({what}), launched in parallel, "
                f"autodown after {self.opts.idle_minutes} idle min",
                f"  baseline on {self.cluster_name(1)}, then {n_experiments} experiment(s) queued onto free clusters with sky exec; "
                "sky down for every cluster when the gate is done"]

    def _attempt(self, exp: str, name: str, spec: dict, phase, reattach: bool) -> dict[str, bytes]:
        phase("waiting for a worker")
        cluster = self._acquire()
        started = time.time()
        lost = False
        try:
            yaml_path, _ = self._write_job(exp, name, spec)
            phase(f"on {cluster.name}")
            with self._lock:
                self._running[name] = (started, cluster.price or self.price() or 0.0)
            try:
                job_id = self.api.exec(yaml_path, cluster.name, self.secrets())
            except WorkerLost as error:
                raise _NotStarted(str(error)) from None
            state = self._wait(lambda: self.api.job_status(cluster.name, job_id), cluster)
            phase("fetching results")
            try:
                files = self._fetch(lambda: self.api.logs(cluster.name, job_id), name, exp)
            except TransferError:
                self._check_cluster(cluster)  # gone since the job ended: a lost worker, not just a bad line
                raise
            if state not in ("SUCCEEDED", None) and "results.json" not in files:
                raise _JobFailed(f"worker job {state}")
            return files
        except (WorkerLost, _NotStarted):
            lost = True
            raise
        finally:
            with self._lock:
                self._running.pop(name, None)
            self._charge(cluster, exp, started)
            self._release(cluster, lost)

    def _wait(self, status: Callable[[], str | None], cluster: Cluster | None) -> str | None:
        """Poll a job until it ends; WorkerLost if its cluster goes away meanwhile."""
        misses = 0
        while True:
            if self._halted():
                raise _JobFailed("interrupted")
            try:
                state = status()
                misses = 0
            except WorkerLost:
                raise
            except Exception as error:  # noqa: BLE001 — a flaky API call: look again, then check the cluster
                misses += 1
                state = "UNKNOWN"
                if misses >= 3:
                    raise WorkerLost(f"cannot reach the job: {error}") from None
            if state is not None and state not in RUNNING_STATES and state != "UNKNOWN":
                if cluster is not None and state in ("FAILED_DRIVER",):
                    self._check_cluster(cluster)
                return state
            if cluster is not None and (state is None or state == "UNKNOWN"):
                self._check_cluster(cluster)
            self._sleep(self.opts.poll_seconds)

    def _check_cluster(self, cluster: Cluster) -> None:
        try:
            states = self.api.cluster_status([cluster.name])
        except Exception:  # noqa: BLE001
            return
        if states.get(cluster.name) != "UP":
            raise WorkerLost(f"{cluster.name} is {states.get(cluster.name) or 'gone'} (preempted?)")

    def _ensure_clusters(self, count: int) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            if not self._cluster_yaml:
                self._cluster_yaml = self._write_cluster_yaml()  # this process's settings, even over a dry run's file
            slots = {c.slot for c in self._clusters.values() if c.state != "dead"}
            for slot in range(1, count + 1):
                if slot not in slots:
                    self._launch(slot, self._next_generation(slot))

    def _next_generation(self, slot: int) -> int:
        used = [c.generation for c in self._clusters.values() if c.slot == slot]
        for worker in self.ledger.workers():
            match = re.fullmatch(re.escape(f"{PREFIX}{self.slug}-{slot}") + r"(?:-g(\d+))?", worker.id)
            if match:
                used.append(int(match.group(1) or 1))
        return max(used, default=0) + 1

    def _launch(self, slot: int, generation: int) -> Cluster:
        cluster = Cluster(self.cluster_name(slot, generation), slot, generation)
        self.ledger.add_worker(cluster.name, NAME, None, None, meta={"kind": "cluster", "slot": slot, "mode": "clusters"})
        self._clusters[cluster.name] = cluster
        cluster.thread = threading.Thread(target=self._launch_thread, args=(cluster,), daemon=True, name=f"launch-{cluster.name}")
        cluster.thread.start()
        return cluster

    def _launch_thread(self, cluster: Cluster) -> None:
        yaml_path = self.sky_dir / "cluster.yaml"
        error: LaunchError | None = None
        for attempt in range(1, self.opts.launch_attempts + 1):
            if self._stopping.is_set() or proc.stopping():
                break
            try:
                self.api.launch(yaml_path, cluster.name, self.opts.idle_minutes, self.secrets(),
                                on_request=lambda rid, c=cluster: self._record_request(c.name, rid, c))
            except LaunchError as failure:
                error = failure
                self._say(f"launch of {cluster.name} failed ({attempt}/{self.opts.launch_attempts}): {failure.reason}", kind="launch")
                self._down_quietly(cluster.name)  # whatever half-made resources the failure left
                if failure.unavailable and not self._ever_up and attempt >= 1:
                    break  # nothing exists anywhere: retrying the same request will not help
                self._sleep(self.opts.poll_seconds * 2 ** (attempt - 1))
                continue
            except Exception as failure:  # noqa: BLE001
                error = LaunchError(_why(failure))
                self._down_quietly(cluster.name)
                continue
            try:
                self._setup(cluster)
            except SetupFailed as failure:  # the same script fails the same way again: no retry
                error = failure
                self._say(f"setup of {cluster.name} failed: {failure.reason}", kind="launch")
                self._down_quietly(cluster.name)
                break
            except (WorkerLost, _JobFailed, LaunchError) as failure:  # lost during setup, or interrupted
                error = failure if isinstance(failure, LaunchError) else LaunchError(f"setup did not finish: {_why(failure)}")
                self._down_quietly(cluster.name)
                continue
            with self._lock:
                self._ever_up = True
                self._launch_seconds.append(time.time() - cluster.requested)
                cluster.price = self.api.cluster_price(cluster.name) if self.opts.price_per_hour is None else self.opts.price_per_hour
                cluster.price = cluster.price if cluster.price is not None else self.price()
                cluster.state = "up" if cluster.state == "launching" else cluster.state
                self.ledger.set_worker_status(cluster.name, WorkerStatus.UP)
                self._cond.notify_all()
            return
        with self._lock:
            cluster.state = "dead"
            cluster.error = error.reason if error else "launch stopped"
            self._last_launch_error = error
            self._cond.notify_all()
        if not self._stopping.is_set() and self._cluster_gone(cluster.name):
            self.ledger.set_worker_status(cluster.name, WorkerStatus.DOWN)  # else it stays live: teardown removes it

    def _setup(self, cluster: Cluster) -> None:
        """The worker's setup as the cluster's first job: the launch has set autodown by now, so a
        setup that fails or hangs still ends with the cluster gone (see sky/cluster.yaml)."""
        job_id = self.api.exec(self.sky_dir / "cluster-setup.yaml", cluster.name, self.secrets())
        state = self._wait(lambda: self.api.job_status(cluster.name, job_id), cluster)
        if state != "SUCCEEDED":
            try:
                tail = _setup_failure(self.api.logs(cluster.name, job_id))
            except Exception:  # noqa: BLE001 — the state alone still says it failed
                tail = ""
            raise SetupFailed(f"job {state}{': ' + tail if tail else ''} (sky logs {cluster.name} {job_id})")

    def _acquire(self) -> Cluster:
        deadline = time.time() + self.opts.launch_timeout
        with self._cond:
            while True:
                if self._halted():
                    raise _JobFailed("interrupted")
                free = [c for c in self._clusters.values() if c.state == "up"]
                if free:
                    cluster = min(free, key=lambda c: (c.slot, c.generation))
                    cluster.state = "busy"
                    return cluster
                live = [c for c in self._clusters.values() if c.state in ("launching", "busy")]
                if not live:
                    error = self._last_launch_error
                    if error is not None and error.unavailable and not self._ever_up:
                        raise _cloud_error(error)
                    if isinstance(error, SetupFailed):
                        raise CloudError(f"no worker could be launched: the workers' setup failed: {error.reason}")
                    if not self._replace_any():
                        raise CloudError(f"no worker could be launched: {error.reason if error else 'unknown reason'}")
                if time.time() > deadline:
                    raise LaunchError(f"no worker came up within {self.opts.launch_timeout:.0f}s")
                self._cond.wait(timeout=0.2)

    def _replace_any(self) -> bool:
        """Every cluster is dead: launch replacements while the replacement allowance lasts."""
        dead = [c for c in self._clusters.values() if c.state == "dead"]
        if len(dead) >= self.count * (self.opts.launch_attempts + 1):
            return False
        for slot in sorted({c.slot for c in dead})[: self.count]:
            self._launch(slot, self._next_generation(slot))
        return True

    def _release(self, cluster: Cluster, lost: bool) -> None:
        with self._cond:
            if lost:
                cluster.state = "dead"
            elif cluster.state == "busy":
                cluster.state = "up"
            self._cond.notify_all()
        if lost:
            self._say(f"{cluster.name} lost (spot preemption or gone): removing it and launching a replacement", kind="preempted")
            self._down_quietly(cluster.name)
            with self._lock:
                if not self._stopping.is_set() and not proc.stopping():
                    self._launch(cluster.slot, self._next_generation(cluster.slot))

    def _charge(self, cluster: Cluster, exp: str, started: float) -> None:
        price = cluster.price if cluster.price is not None else self.price()
        if not price:
            return
        usd = price * (time.time() - started) / 3600
        with self._lock:
            cluster.charged += usd
        self.ledger.add_cost("compute", usd, exp, detail=cluster.name)


def _setup_failure(log: str) -> str:
    """The failure line sky/cluster-setup.yaml prints (exit code and the setup's last lines), found
    wherever SkyPilot's own framing puts it; else the log's last lines."""
    log = plain(log)
    marked = re.findall(r"RA_SETUP_FAILED (.*)", log)
    return one_line(marked[-1] if marked else " | ".join([line for line in log.splitlines() if line.strip()][-3:]), 300)
