"""`jobs` and `pool` modes: every experiment a SkyPilot managed job, on its own cluster (jobs: SkyPilot
recovers preemptions and removes the cluster) or in a worker pool (pool: `pool down` once its jobs
have ended). Job state from queue_v2 with failure_reason; FAILED_NO_RESOURCE is no capacity (exit 8),
FAILED_PRECHECKS a failure no retry would change; jobs PENDING past launch_timeout end as no capacity."""

from __future__ import annotations

import time

from ...ledger import WorkerStatus
from .. import sky_api
from ..sky_api import CloudError, LaunchError
from .backend import SkyPilotBackend
from .execute import TransferError, _cloud_error, _Final, _JobFailed, _why
from .options import NAME, RUNNING_STATES, TERMINAL_JOB_STATES


class ManagedBackend(SkyPilotBackend):
    """The mode's methods (the same few in every mode): _ensure_workers, _worker_names, _attempt,
    _reattachable, _accrued, _mode_tasks, _mode_plan."""

    def _ensure_workers(self, count: int, baseline: bool = False) -> None:
        if self.opts.mode == "pool":
            self._ensure_pool(self.count if baseline else count)

    def _worker_names(self, count: int) -> list[str]:
        return [f"{self.prefix}slot{i}" for i in range(1, count + 1)]

    def _reattachable(self, exp: str) -> str | None:
        return self._live_job_for(exp)

    def _accrued(self) -> tuple[float, int]:
        price = self.price() or 0.0
        now = time.time()
        with self._lock:
            if self.opts.mode == "pool" and self._pool_ready:  # the pool's workers are held whatever runs
                return max(0.0, price * self.count * (now - self._pool_since) / 3600 - self.ledger_cost_pool()), self.count
            return sum(usd_h * (now - start) / 3600 for start, usd_h in self._running.values()), len(self._running)

    def _mode_tasks(self):
        return [self._write_pool_yaml(self.count)] if self.opts.mode == "pool" else []

    def _mode_plan(self, n_experiments: int, spot: str, what: str) -> list[str]:
        if self.opts.mode == "jobs":
            lines = [f"  baseline, then {n_experiments} experiment(s), each a managed job on its own {spot} cluster ({what}); "
                     f"up to {self.count} at once; SkyPilot recovers preemptions and removes each cluster when its job ends"]
        else:
            lines = [f"  worker pool {self.pool_name}: {self.count} × {spot} worker ({what}); baseline and {n_experiments} experiment(s) "
                     "submitted to it as managed jobs; pool down when the gate is done"]
        return lines + ["  not counted: the jobs controller SkyPilot runs for managed jobs and pools (its own small VM, "
                        "or none with the controller inside the API server)"]

    def _ensure_pool(self, workers: int) -> None:
        with self._lock:
            if self._pool_ready or self._stopping.is_set():
                return
            yaml_path = self._write_pool_yaml(workers)
            self.ledger.add_worker(self.pool_name, NAME, None, None, meta={"kind": "pool", "workers": workers, "mode": "pool"})
            self._pool_since = time.time()
            error: LaunchError | None = None
            for attempt in range(1, self.opts.launch_attempts + 1):
                try:
                    self.api.pool_apply(yaml_path, self.pool_name, workers, self.secrets(),
                                        on_request=lambda rid: self._record_request(self.pool_name, rid))
                    error = None
                    break
                except LaunchError as failure:
                    error = failure
                    self._say(f"pool {self.pool_name} failed to start ({attempt}/{self.opts.launch_attempts}): {failure.reason}", kind="launch")
                    if failure.unavailable:
                        break
                    self._sleep(self.opts.poll_seconds * 2 ** (attempt - 1))
            if error is not None:
                try:
                    self.api.pool_down(self.pool_name)
                    if self._pool_gone(self.pool_name):
                        self.ledger.set_worker_status(self.pool_name, WorkerStatus.DOWN)
                except Exception:  # noqa: BLE001 — teardown will try again
                    pass
                raise _cloud_error(error) if error.unavailable else CloudError(f"worker pool did not start: {error.reason}")
            self.ledger.set_worker_status(self.pool_name, WorkerStatus.UP)
            self._pool_ready = True
            self._ever_up = True

    def _live_job_for(self, exp: str) -> str | None:
        for worker in self.ledger.workers(live_only=True, backend=NAME):
            if worker.kind == "job" and worker.experiment_id == exp and worker.meta.get("job_id") is not None:
                return worker.id
        return None

    def _attempt(self, exp: str, name: str, spec: dict, phase, reattach: bool) -> dict[str, bytes]:
        pool = self.pool_name if self.opts.mode == "pool" else None
        started = time.time()
        price = self.price() or 0.0
        if reattach:
            job_id = int(self.ledger.worker(name).meta["job_id"])
            self._say(f"{exp}: re-attached to managed job {name} (id {job_id})", kind="resume")
        else:
            yaml_path, _ = self._write_job(exp, name, spec)
            self.ledger.add_worker(name, NAME, None, exp, meta={"kind": "job", "pool": pool, "mode": self.opts.mode})
            phase("submitting")
            try:
                job_id = self.api.jobs_launch(yaml_path, name, pool, self.secrets(),
                                              on_request=lambda rid: self._record_request(name, rid))
            except LaunchError:
                self._cancel_job_by_name(name)
                raise
            self._ever_up = True
            self.ledger.update_worker_meta(name, job_id=job_id)
            self.ledger.set_worker_status(name, WorkerStatus.UP)
            if self._halted():  # teardown ran while this was being submitted: it may not have seen it
                self._cancel_jobs_waiting([job_id])
        with self._lock:
            self._running[name] = (started, price)
        info: dict = {}
        state = None
        try:
            phase(f"managed job {job_id}" + (f" in {pool}" if pool else ""))
            state, info = self._wait_managed(exp, job_id)
            phase("fetching results")
            try:
                return self._fetch(lambda: self.api.jobs_logs(job_id), name, exp)
            except TransferError:
                if state != "SUCCEEDED":  # the job failed before it could report: say why SkyPilot thinks it did
                    raise _JobFailed(f"managed job {state}: {info.get('reason') or 'no results'}") from None
                raise
        finally:
            with self._lock:
                self._running.pop(name, None)
            if not self._halted() and state in TERMINAL_JOB_STATES:
                self.ledger.set_worker_status(name, WorkerStatus.DOWN)  # SkyPilot removes a finished job's cluster
            if price:
                seconds = float(info.get("duration") or 0.0) or (time.time() - started)  # SkyPilot's own count when it has one
                self.ledger.add_cost("compute", price * seconds / 3600, exp, detail=name)

    def _wait_managed(self, exp: str, job_id: int) -> tuple[str, dict]:
        recoveries, misses = 0, 0
        pending_since = time.monotonic()
        while True:
            if self._halted():
                raise _JobFailed("interrupted")
            try:
                info = self.api.jobs_status([job_id], sky_api.JOB_FIELDS).get(job_id)
                misses = 0
            except Exception as error:  # noqa: BLE001 — the jobs controller briefly unreachable: ask again
                misses += 1
                if misses >= 20:
                    raise _JobFailed(f"jobs controller unreachable: {_why(error)}") from None
                info = {"status": "UNKNOWN"}
            if info is None:
                raise _JobFailed(f"managed job {job_id} vanished")
            if (info.get("recovery_count") or 0) > recoveries:
                recoveries = info["recovery_count"]
                self._say(f"{exp}: managed job {job_id} preempted; SkyPilot recovered it (recovery {recoveries})", kind="preempted")
            state = info.get("status")
            if state == "FAILED_NO_RESOURCE":  # the controller tried every offering: more attempts cannot help
                raise CloudError(f"no capacity: {info.get('reason') or 'SkyPilot found no resources for the managed job'}")
            if state == "FAILED_PRECHECKS":  # the job's spec cannot run (sky.jobs: checked before any launch)
                raise _Final(f"managed job FAILED_PRECHECKS: {info.get('reason') or 'SkyPilot refused the job before launching it'}")
            if state == "PENDING" and time.monotonic() - pending_since > self.opts.launch_timeout:
                self._cancel_jobs_waiting([job_id])
                where = f"pool {self.pool_name}'s workers" if self.opts.mode == "pool" else "its worker"
                raise CloudError(f"no capacity: {where} did not come up within {self.opts.launch_timeout:.0f}s (workers.launch_timeout)")
            if state != "PENDING":
                pending_since = time.monotonic()
            if state not in RUNNING_STATES and state != "UNKNOWN":
                return state, info
            self._sleep(self.opts.poll_seconds)
