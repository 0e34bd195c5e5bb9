"""Teardown, verified: re-attach after a kill (reconcile), remove every worker (cancel in-flight
requests by id, cancel managed jobs and wait until SkyPilot shows them ended, pool down only then,
mark a worker down only once SkyPilot no longer lists it), the name sweep, `research-agent down`
(exit 9 with the `sky` command for whatever is left) and the doctor row."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Callable

from ...errors import TeardownError, UserError
from ...ledger import Worker, WorkerStatus
from .. import sky_api
from ..sky_api import load_api
from .execute import _why
from .options import NAME, PREFIX, REMOVAL_SECONDS, TERMINAL_JOB_STATES
from .registry import registered_runs


class TeardownMixin:
    def teardown(self) -> list[str]:
        """At the start of a run (the orchestrator's cleanup call) this reconciles: live workers of a
        killed run are re-attached, vanished ones marked down. Every later call removes everything."""
        if not self._reconciled:
            self._reconciled = True
            return self._reconcile()
        return self.down_all()

    def down(self, sweep: bool = False) -> list[str]:
        """`research-agent down`: nothing is re-attached, everything goes (see down_all)."""
        self._reconciled = True
        return self.down_all(sweep=sweep)

    def _reconcile(self) -> list[str]:
        """A resumed run: adopt what still runs, mark what vanished as down. Returns the names marked down."""
        live = self.ledger.workers(live_only=True, backend=NAME)
        if not live:
            return []
        gone = []
        clusters = [w.id for w in live if w.kind == "cluster"]
        states = {}
        if clusters:
            try:
                states = self.api.cluster_status(clusters)
            except Exception:  # noqa: BLE001
                states = {}
        for worker in live:
            if worker.kind == "cluster":
                # "up" in the ledger only once its setup job succeeded: a cluster killed mid-setup is removed
                if states.get(worker.id) == "UP" and worker.status == WorkerStatus.UP and not self._stopping.is_set():
                    slot = int(worker.meta.get("slot") or 1)
                    match = re.search(r"-g(\d+)$", worker.id)
                    from .clusters import Cluster

                    cluster = Cluster(worker.id, slot, int(match.group(1)) if match else 1, state="up", requested=worker.created)
                    try:
                        self.api.cancel(worker.id, None)  # every job the killed run left there ([] would cancel none)
                        self.api.autostop(worker.id, self.opts.idle_minutes)
                    except Exception:  # noqa: BLE001
                        pass
                    cluster.price = self.price()
                    cluster.charged = self.ledger.cost_with_detail(cluster.name)
                    self._clusters[cluster.name] = cluster
                    self._ever_up = True
                    self.ledger.set_worker_status(worker.id, WorkerStatus.UP)
                    self._say(f"re-attached to cluster {worker.id}", kind="resume")
                else:
                    self._down_quietly(worker.id)
                    if self._cluster_gone(worker.id):
                        self.ledger.set_worker_status(worker.id, WorkerStatus.DOWN)
                        gone.append(worker.id)
            elif worker.kind == "pool":
                status = None
                try:
                    status = self.api.pool_status(worker.id)
                except Exception:  # noqa: BLE001
                    pass
                if status is not None and str(status.get("status") or "").startswith("FAILED"):
                    self._say(f"worker pool {worker.id} is {status['status']}: removing it, not re-attaching", kind="resume")
                    self._remove_pools([worker.id])
                    gone.append(worker.id)
                elif status is not None:
                    self._pool_ready, self._ever_up = True, True
                    self._pool_since = worker.created
                    self._say(f"re-attached to worker pool {worker.id}", kind="resume")
                else:
                    self.ledger.set_worker_status(worker.id, WorkerStatus.DOWN)
                    gone.append(worker.id)
            elif worker.kind == "job" and worker.meta.get("job_id") is None:
                self._cancel_job_by_name(worker.id)  # requested, id never recorded
                gone.append(worker.id)
        if gone:
            self._say(f"workers already gone, marked down: {', '.join(gone)}", kind="resume")
        return gone

    def down_all(self, sweep: bool = False) -> list[str]:
        """Remove every worker the ledger knows to be live (and, with `sweep`, anything named after
        this run in SkyPilot). Idempotent; returns the names removed. A worker is marked down only
        once SkyPilot says it is gone; what could not be removed is in `self.leftovers`."""
        self._stopping.set()
        self.leftovers = []
        with self._cond:
            launching = [c for c in self._clusters.values() if c.state == "launching"]
            self._cond.notify_all()
        live = self.ledger.workers(live_only=True, backend=NAME)
        # In-flight requests (launch, jobs.launch, pool_apply) go by request id: `sky down` of an INIT
        # cluster does not stop the server's launch (sky.client.sdk.api_cancel does).
        requests = {c.request_id for c in launching if c.request_id}
        requests |= {w.meta["request_id"] for w in live if w.meta.get("request_id") and w.meta.get("job_id") is None}
        for request_id in sorted(requests):
            try:
                self.api.cancel_request(request_id)
            except Exception:  # noqa: BLE001 — finished already, or the server is gone: down below still runs
                pass
        for cluster in launching:
            if cluster.thread is not None:
                cluster.thread.join(timeout=max(60.0, self.opts.poll_seconds * 4))
        removed: list[str] = []
        jobs = [w for w in live if w.kind == "job"]
        others = [w for w in live if w not in jobs]
        removed += self._remove_jobs(jobs)
        pools = [w.id for w in others if w.kind == "pool"]
        clusters = [w for w in others if w.kind != "pool"]
        results: dict[str, bool] = {}
        threads = []
        for worker in clusters:
            thread = threading.Thread(target=lambda n=worker.id: results.__setitem__(n, self._remove_cluster(n)), daemon=True)
            thread.start()
            threads.append(thread)
        for name in self._remove_pools(pools):
            results[name] = True
        for thread in threads:
            thread.join()
        for name, command in list(self.leftovers):  # a job submitted while this ran: the pool removal cancelled it
            if command.startswith("sky jobs cancel") and self._job_absent(name):
                self.leftovers.remove((name, command))
                self.ledger.set_worker_status(name, WorkerStatus.DOWN)
                removed.append(name)
        now = time.time()
        for worker in others:
            if results.get(worker.id):
                self._charge_held(worker, now)
                self.ledger.set_worker_status(worker.id, WorkerStatus.DOWN)
                removed.append(worker.id)
            elif worker.kind == "pool":
                self.leftovers.append((worker.id, f"sky jobs cancel --pool {worker.id} -y && sky jobs pool down {worker.id} -y"))
            else:
                self.leftovers.append((worker.id, f"sky down {worker.id} -y"))
        if sweep:
            removed += self.sweep()
        if removed:
            self.ledger.event("teardown", f"removed {len(removed)} SkyPilot worker(s)", workers=removed)
        for name, command in self.leftovers:
            self.ledger.event("teardown", f"could not remove {name}: run `{command}`", worker=name)
        return removed

    def _remove_jobs(self, jobs: list[Worker]) -> list[str]:
        """Cancel managed jobs and wait until SkyPilot shows them terminal (jobs.cancel is asynchronous)."""
        ids = {int(w.meta["job_id"]): w.id for w in jobs if w.meta.get("job_id") is not None}
        for worker in jobs:  # requested, id never recorded: find it by name
            if worker.meta.get("job_id") is None:
                try:
                    ids.update({job_id: worker.id for job_id, name in self.api.list_jobs(worker.id) if name == worker.id})
                except Exception:  # noqa: BLE001
                    pass
        done = self._cancel_jobs_waiting(sorted(ids))
        removed = []
        for worker in jobs:
            mine = [job_id for job_id, name in ids.items() if name == worker.id]
            if all(job_id in done for job_id in mine) and (mine or self._job_absent(worker.id)):
                self.ledger.set_worker_status(worker.id, WorkerStatus.DOWN)
                removed.append(worker.id)
            else:
                self.leftovers.append((worker.id, f"sky jobs cancel {' '.join(map(str, mine)) or '-n ' + worker.id} -y"))
        return removed

    def _job_absent(self, name: str) -> bool:
        try:
            return not any(n == name for _, n in self.api.list_jobs(name))
        except Exception:  # noqa: BLE001
            return False

    def _cancel_jobs_waiting(self, job_ids: list[int]) -> set[int]:
        """sky.jobs.cancel, then poll queue_v2 until each job is terminal (or vanished), with a deadline.
        Returns the ids SkyPilot shows finished."""
        if not job_ids:
            return set()
        self._retry(lambda: self.api.jobs_cancel(list(job_ids)), "cancel managed jobs")
        deadline = time.monotonic() + REMOVAL_SECONDS
        done: set[int] = set()
        while True:
            try:
                states = self.api.jobs_status(list(job_ids), sky_api.JOB_FIELDS)
                done = {j for j in job_ids if j not in states or states[j].get("status") in TERMINAL_JOB_STATES}
            except Exception:  # noqa: BLE001 — the controller briefly unreachable: ask again
                pass
            if len(done) == len(job_ids) or time.monotonic() > deadline:
                return done
            time.sleep(min(1.0, self.opts.poll_seconds))

    def _remove_pools(self, pools: list[str]) -> list[str]:
        """Cancel a pool's jobs, wait for them to end, then pool down and wait until it is gone:
        pool_down leaves a pool with unfinished jobs as it is (sky.serve.serve_utils.terminate_services)."""
        removed = []
        for pool in pools:
            mine = {p.stem for p in self.sky_dir.glob(f"{PREFIX}*.yaml")}
            try:
                jobs = [job_id for job_id, name in self.api.list_jobs(f"{PREFIX}{self.slug}-") if name in mine]
            except Exception:  # noqa: BLE001
                jobs = []
            self._cancel_jobs_waiting(jobs)
            if not self._retry(lambda n=pool: self.api.pool_down(n), f"remove {pool}"):
                continue
            deadline = time.monotonic() + REMOVAL_SECONDS
            while not self._pool_gone(pool):
                if time.monotonic() > deadline:
                    break
                time.sleep(min(1.0, self.opts.poll_seconds))
            else:
                removed.append(pool)
        return removed

    def _remove_cluster(self, name: str) -> bool:
        """sky down, then SkyPilot's own word that the cluster is gone."""
        if not self._retry(lambda: self._timed_down(name), f"remove {name}"):
            return False
        return self._cluster_gone(name)

    def _cluster_gone(self, name: str) -> bool:
        """SkyPilot says the cluster is not there (sky.client.sdk.status lists no record of it)."""
        try:
            return name not in self.api.cluster_status([name])
        except Exception:  # noqa: BLE001 — unknown is not gone
            return False

    def _pool_gone(self, name: str) -> bool:
        try:
            return self.api.pool_status(name) is None
        except Exception:  # noqa: BLE001
            return False

    def _record_request(self, name: str, request_id: str, cluster: Cluster | None = None) -> None:
        """A request id the moment SkyPilot gave it: in memory and in the ledger (for `down` after a kill)."""
        if cluster is not None:
            cluster.request_id = request_id
        try:
            self.ledger.update_worker_meta(name, request_id=request_id)
        except Exception:  # noqa: BLE001 — the in-memory copy still cancels it in this process
            pass

    def _cancel_job_by_name(self, name: str) -> None:
        try:
            for job_id, job_name in self.api.list_jobs(name):
                if job_name == name:
                    self.api.jobs_cancel([job_id])
            self.ledger.set_worker_status(name, WorkerStatus.DOWN)
        except Exception:  # noqa: BLE001 — left 'requested': teardown finds it by name
            pass

    def sweep(self) -> list[str]:
        """Anything in SkyPilot named after this run (found by name, whatever the ledger says): its
        clusters `ra-<slug>-<slot>[-g<n>]`, its pool, and managed jobs whose task file this run wrote —
        not another run's whose slug merely starts with this one's."""
        own = re.compile(re.escape(f"{PREFIX}{self.slug}-") + r"(\d+(-g\d+)?|pool)")
        jobs = {p.stem for p in self.sky_dir.glob(f"{PREFIX}*.yaml")}
        return _sweep(self.api, f"{PREFIX}{self.slug}-", lambda line: self._say(line, kind="teardown"),
                      keep=lambda name: bool(own.fullmatch(name)) or name in jobs, leftovers=self.leftovers)

    def _retry(self, action: Callable[[], None], what: str, tries: int = 4) -> bool:
        for attempt in range(1, tries + 1):
            try:
                action()
                return True
            except Exception as error:  # noqa: BLE001
                if attempt == tries:
                    self._say(f"could not {what}: {_why(error)} (run `research-agent down {self.rundir.path}` later)", kind="teardown")
                    return False
                time.sleep(min(5.0, 0.05 * 2 ** attempt))
        return False

    def _timed_down(self, name: str) -> None:
        started = time.time()
        self.api.down(name)
        with self._lock:
            self._down_seconds.append(time.time() - started)

    def _down_quietly(self, name: str) -> None:
        try:
            self._timed_down(name)
        except Exception:  # noqa: BLE001 — it stays live in the ledger: teardown retries
            pass


def doctor_info() -> dict:
    """One row for the doctor table: is SkyPilot installed, which infra `sky check` enabled."""

    info = {"runtime": "skypilot backend", "usable": False, "binary": None, "version": None, "key_present": False}
    if not sky_api.installed():
        info["note"] = "not installed: pip install 'research-agent[cloud]'"
        return info
    import importlib.metadata

    info["version"] = importlib.metadata.version("skypilot")
    try:
        infra = load_api().enabled_infra()
    except Exception as error:  # noqa: BLE001
        infra, info["note"] = None, f"cannot read sky check status: {_why(error)}"
    if infra:
        info.update(usable=True, key_present=True, note="enabled infra: " + ", ".join(infra))
    elif "note" not in info:
        info["note"] = "no infra enabled: run `sky check`"
    return info


def down_command(run_dir: Path | None, everything: bool) -> list[str]:
    """Tear down what runs left behind: the given run's workers (its ledger, then its name prefix in
    SkyPilot), and with `everything` every run this tool registered plus anything named `ra-…`."""
    from ...commands import shown
    from ...rundir import open_run
    from .. import make_backend

    lines: list[str] = []
    leftovers: list[tuple[str, str]] = []
    runs: list[Path] = [run_dir] if run_dir is not None else []
    if everything:
        runs += [p for p in registered_runs() if p.is_dir() and (run_dir is None or p.resolve() != run_dir.resolve())]
    api = None
    for path in runs:
        explicit = run_dir is not None and path == run_dir
        if not explicit and not (path / "ledger.sqlite").is_file():
            continue
        run = open_run(path)  # a clear RunDirError for a path that is not a run directory
        backend = make_backend(run, {"api": api} if api else {})
        if backend.name == NAME:
            api = backend.api  # one SkyPilot client for every run
        removed = backend.down(sweep=True)
        leftovers += backend.leftovers
        if removed:
            run.ledger.event("down", f"research-agent down removed {len(removed)} worker(s)", workers=removed)
            lines.append(f"{shown(run.path)}: removed {', '.join(removed)}")
        elif not leftovers:
            lines.append(f"{shown(run.path)}: nothing to remove (every worker is already down)")
        run.ledger.close()
    if everything:
        try:
            api = api or load_api()
        except UserError:  # SkyPilot not installed: nothing of it can be running from here
            lines.append("SkyPilot is not installed here: nothing else to look for")
            return lines
        removed = _sweep(api, PREFIX, lambda line: lines.append(line), leftovers=leftovers)
        lines.append(f"by name prefix {PREFIX}: removed {', '.join(removed)}" if removed else f"by name prefix {PREFIX}: nothing left")
    for name, command in dict(leftovers).items():
        lines.append(f"NOT removed: {name} — remove it with: {command}")
    if leftovers:
        raise TeardownIncomplete(lines, len(dict(leftovers)))
    return lines


class TeardownIncomplete(TeardownError):
    """`down` could not remove everything: `lines` is the whole report (printed before the error)."""

    def __init__(self, lines: list[str], count: int):
        super().__init__(f"{count} SkyPilot worker(s) could not be removed: run the `sky` command(s) printed above, "
                         "or `research-agent down` again")
        self.lines = lines


def _sweep(api, prefix: str, say: Callable[[str], None], keep: Callable[[str], bool] = lambda _n: True,
           leftovers: list | None = None) -> list[str]:
    """Remove what SkyPilot holds under `prefix` (and `keep` accepts): managed jobs first (a pool with
    unfinished jobs is not removed by pool_down), then pools and clusters, each checked gone."""
    removed = []
    leftovers = leftovers if leftovers is not None else []
    try:
        jobs = [(job_id, name) for job_id, name in api.list_jobs(prefix) if keep(name)]
        if jobs:
            api.jobs_cancel([job_id for job_id, _ in jobs])
            deadline = time.monotonic() + REMOVAL_SECONDS
            ids = [job_id for job_id, _ in jobs]
            while time.monotonic() < deadline:
                states = api.jobs_status(ids, sky_api.JOB_FIELDS)
                if all(j not in states or states[j].get("status") in TERMINAL_JOB_STATES for j in ids):
                    break
                time.sleep(0.2)
            else:
                leftovers += [(name, f"sky jobs cancel {job_id} -y") for job_id, name in jobs]
            removed += [name for _, name in jobs]
    except Exception as error:  # noqa: BLE001
        say(f"could not cancel managed jobs: {_why(error)}")
    for lister, remover, gone, command in (
            (api.list_pools, api.pool_down, lambda n: api.pool_status(n) is None, "sky jobs pool down {} -y"),
            (api.list_clusters, api.down, lambda n: n not in api.cluster_status([n]), "sky down {} -y")):
        try:
            names = [n for n in lister(prefix) if keep(n)]
        except Exception as error:  # noqa: BLE001
            say(f"could not list SkyPilot workers: {_why(error)}")
            names = []
        for name in names:
            try:
                remover(name)
                deadline = time.monotonic() + REMOVAL_SECONDS
                while not gone(name):
                    if time.monotonic() > deadline:
                        raise RuntimeError("still there after removal")
                    time.sleep(0.2)
                removed.append(name)
            except Exception as error:  # noqa: BLE001
                say(f"could not remove {name}: {_why(error)}")
                leftovers.append((name, command.format(name)))
    return removed
