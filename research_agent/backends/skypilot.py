"""The SkyPilot backend: experiments on cloud VMs, Kubernetes or Slurm, on spot capacity, many at once.

Three modes (task spec `workers: {backend: skypilot, mode: ...}`):

- `clusters` — N spot clusters `ra-<run>-<i>` launched in parallel (autodown after `idle_minutes`
  as a safety net); experiments are queued onto whichever cluster is free with `sky exec`; every
  cluster goes with `sky down` when the gate is done.
- `jobs` — every experiment a managed job on its own spot cluster: SkyPilot recovers preemptions and
  removes the cluster when the job ends.
- `pool` — a worker pool (warm workers) with the experiments submitted to it as managed jobs; the
  pool goes with `pool down` at the end.

Every cluster, job and pool is written to the ledger before it is requested, so teardown (success,
error, budget stop, SIGINT, SIGTERM) and `research-agent down` after a SIGKILL always find it.
Results come back through the job log as a checksummed bundle (see research_agent.worker); a
truncated transfer is retried, then the experiment is rerun — it is never decided on. A preempted
cluster is replaced and its experiment requeued on the next free worker; samples reach the ledger
only from a verified transfer, keyed by (experiment, attempt, arm, index), so nothing is counted
twice. Compute cost = each worker's hourly price × the time it is held, charged to the experiment
that used it (idle and provisioning time as overhead).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import proc
from ..errors import TaskError, UserError
from ..experiment import BaselineJob, BaselineResult, Job, JobResult
from ..runtimes.base import Brief, RuntimeResult
from . import sky_tasks
from .sky_api import CloudError, LaunchError, WorkerLost, load_api

NAME = "skypilot"
PREFIX = "ra-"
NO_SPOT_INFRA = ("k8s", "kubernetes", "slurm", "ssh")  # no spot market there
RESOURCE_KEYS = ("cpus", "memory", "accelerators", "infra", "cloud", "region", "zone", "use_spot", "disk_size",
                 "disk_tier", "image_id", "instance_type")
RUNNING_STATES = {"PENDING", "SETTING_UP", "RUNNING", "INIT", "STARTING", "SUBMITTED", "RECOVERING", "WINDING_DOWN", "CANCELLING"}


class SkyOptions(BaseModel):
    """`workers:` options of the skypilot backend (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["clusters", "jobs", "pool"] = "clusters"
    count: int | None = Field(None, ge=1)  # workers; default: experiments.parallel
    resources: dict[str, Any] = Field(default_factory=dict)  # any SkyPilot `resources:` keys
    cpus: int | float | str | None = None
    memory: int | float | str | None = None
    accelerators: str | dict | None = None
    infra: str | None = None
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    use_spot: bool | None = None  # default: spot, except on Kubernetes / Slurm / SSH pools
    disk_size: int | None = None
    disk_tier: str | None = None
    image_id: str | None = None
    instance_type: str | None = None
    idle_minutes: int = Field(30, ge=1)  # clusters mode: autodown after this long idle
    price_per_hour: float | None = Field(None, ge=0)  # USD per worker-hour; default: SkyPilot's catalog
    est_minutes: float = Field(10.0, gt=0)  # one experiment's length until one has been measured
    setup: str = ""  # the project's build dependencies (shell, runs once per VM)
    files: list[str] = Field(default_factory=list)  # files beside the task file shipped to ~/.ra/task ($RA_TASK_DIR)
    envs: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)  # env var names passed as SkyPilot secrets
    max_attempts: int = Field(3, ge=1)  # per experiment: preemptions, lost transfers, crashed workers
    launch_attempts: int = Field(3, ge=1)
    fetch_attempts: int = Field(4, ge=1)
    poll_seconds: float = Field(5.0, gt=0)
    launch_timeout: float = Field(3600.0, gt=0)  # seconds a worker may take to come up

    def resources_dict(self) -> dict:
        merged = dict(self.resources)
        for key in RESOURCE_KEYS:
            value = getattr(self, key)
            if value is not None:
                merged[key] = value
        if "use_spot" not in merged:
            where = str(merged.get("infra") or merged.get("cloud") or "").lower()
            merged["use_spot"] = not where.startswith(NO_SPOT_INFRA)
        return merged


def parse_options(raw: dict) -> SkyOptions:
    data = {k: v for k, v in raw.items() if k not in ("api", "dryrun", "budget_usd")}
    try:
        return SkyOptions.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TaskError(f"workers.{where}: {first['msg']}") from None


def with_resolved_files(task):
    """The task with workers.files made absolute (relative to the task file) and checked to exist."""
    files = task.workers.options.get("files") or []
    if isinstance(files, str):
        files = [files]
    resolved = []
    for name in files:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else task.base_dir / path
        if not path.exists():
            raise TaskError(f"workers.files: {name} not found next to the task file")
        resolved.append(str(path.resolve()))
    if not files:
        return task
    workers = task.workers.model_copy(update={"options": {**task.workers.options, "files": resolved}})
    return task.model_copy(update={"workers": workers})


def slug(text: str, limit: int = 24) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"
    if len(cleaned) > limit:
        import hashlib

        cleaned = cleaned[: limit - 5].rstrip("-") + "-" + hashlib.sha1(text.encode()).hexdigest()[:4]
    return cleaned


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


class RemoteRuntime:
    """The runtime as the orchestrator sees it with this backend: it runs on the worker, not here."""

    def __init__(self, name: str, options: dict, timeout: float):
        self.name, self.options, self.timeout = name, dict(options or {}), timeout
        self.notices: list[str] = []

    def apply(self, workdir: Path, brief: Brief) -> RuntimeResult:  # pragma: no cover - never called locally
        raise RuntimeError("a SkyPilot runtime runs on its worker")


class SkyPilotBackend:
    name = NAME

    def __init__(self, run, options: dict | None = None):
        options = dict(options or {})
        self.rundir, self.task, self.ledger = run, run.task, run.ledger
        self.opts = parse_options({**self.task.workers.options, **{k: v for k, v in options.items() if k in SkyOptions.model_fields}})
        self.api = options.get("api") or load_api()
        self.notify: Callable[[str], None] = lambda _line: None
        self.slug = slug(run.run_id)
        self.sky_dir = run.path / "sky"
        self.resources = self.opts.resources_dict()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._clusters: dict[str, Cluster] = {}
        self._running: dict[str, tuple[float, float]] = {}  # job name -> (start, USD/h)
        self._stopping = threading.Event()
        self._reconciled = False
        self._price: float | None = None
        self._price_known = False
        self._pool_ready = False
        self._prepared = False
        self._ever_up = False
        self._launch_seconds: list[float] = []  # request to up, per cluster: the removal reserve's first guess
        self._down_seconds: list[float] = []  # per removal seen in this run
        self._last_launch_error: LaunchError | None = None
        self._baseline_seconds: float | None = None

    # --- names ------------------------------------------------------------------------------

    def cluster_name(self, slot: int, generation: int = 1) -> str:
        return f"{PREFIX}{self.slug}-{slot}" + (f"-g{generation}" if generation > 1 else "")

    @property
    def pool_name(self) -> str:
        return f"{PREFIX}{self.slug}-pool"

    def job_name(self, exp_id: str, try_no: int | None = None) -> str:
        base = f"{PREFIX}{self.slug}-{slug(exp_id, 20)}"
        if try_no is None:  # the next unused one: names are never reused, even across resumes
            try_no = 1
            while (self.sky_dir / f"{base}-{try_no}.yaml").exists():
                try_no += 1
        return f"{base}-{try_no}"

    @property
    def count(self) -> int:
        return self.opts.count or self.task.experiments.parallel

    def _say(self, line: str, kind: str = "skypilot", **data) -> None:
        self.ledger.event(kind, line, **data)
        try:
            self.notify(line)
        except Exception:  # noqa: BLE001 — a display problem must not stop the run
            pass

    # --- the Backend interface ----------------------------------------------------------------

    def make_runtime(self, name: str, options: dict, timeout: float) -> RemoteRuntime:
        runtime = RemoteRuntime(name, options, timeout)
        if name in ("claude-code", "codex"):
            runtime.notices.append(f"{name} runs on the workers (installed there by the task's setup)")
        return runtime

    def provision(self, n: int) -> list[str]:
        self._prepare()
        count = self.opts.count or n
        if self.opts.mode == "clusters":
            self._ensure_clusters(count)
            return [self.cluster_name(i) for i in range(1, count + 1)]
        if self.opts.mode == "pool":
            self._ensure_pool(count)
        return [f"{PREFIX}{self.slug}-slot{i}" for i in range(1, count + 1)]

    def baseline(self, commit: str, job: BaselineJob) -> BaselineResult:
        self._prepare()
        if self.opts.mode == "clusters":
            self._ensure_clusters(1)
        elif self.opts.mode == "pool":
            self._ensure_pool(self.count)
        spec = self._spec("baseline", commit, {
            "baseline": {"repeats": job.repeats, "profile": job.profile, "profile_timeout": job.profile_timeout},
            "commands": dataclasses.asdict(job.commands),
        })
        started = time.time()
        outcome = self._execute("baseline", spec, job.log.parent, phase=None)
        if isinstance(outcome, str):
            return BaselineResult(failure=outcome)
        files, results = outcome
        self._baseline_seconds = time.time() - started
        if results.get("error"):
            return BaselineResult(failure=f"worker error: {results['error']}")
        for sample in _samples(files):
            if job.on_sample:
                job.on_sample(sample["idx"], sample["value"], sample.get("seconds") or 0.0)
        for row in _samples(files, "metrics.jsonl"):
            if job.on_metrics:
                job.on_metrics(row["bench"], row["arm"], row["idx"], row["metrics"])
        run = self.ledger.run()
        if results.get("base_commit") and not run.get("base_commit"):  # a URL target's HEAD, resolved on the worker
            self.ledger.update_run(base_commit=results["base_commit"], best_commit=results["base_commit"])
        if self.task.repo_is_url() and self.rundir.plan is None:
            self._fetch_base()  # research reads the target's files: that one commit, blobs on demand
        return BaselineResult(list(results.get("values") or []), results.get("failure"), results.get("profile"))

    def run(self, worker: str, job: Job, runtime, base_commit: str, branch: str) -> JobResult:
        self._prepare()
        rt_name = getattr(runtime, "name", self.task.runtime.name)
        spec = self._spec(job.exp_id, base_commit, {
            "exp_id": job.exp_id, "title": job.title, "message": f"{job.exp_id}: {job.title}", "branch": branch,
            "commands": dataclasses.asdict(job.commands), "protected": list(job.protected), "seed": job.seed,
            "gate": job.gate.to_spec(),
            # The holdout's files are mounted at ~/.ra/holdout (_context), outside the worktrees.
            "holdout": {**job.holdout.to_spec(), "directory": "~/.ra/holdout"} if job.holdout else None,
            # Issue 13 hook: set `replaces_noisy_workers = True` and implement replace_worker(worker, reason)
            # (down that cluster, launch a fresh one under the same name) to replace noisy VMs.
            "noise": dataclasses.asdict(job.noise) if job.noise else None,
            "runtime": {"name": rt_name, "options": self.task.runtime.options if rt_name == self.task.runtime.name else {},
                        "timeout": self.task.timeouts.runtime},
            "brief": {"text": job.brief.text, "hypothesis_id": job.brief.hypothesis_id, "diff": job.brief.diff},
        })
        outcome = self._execute(job.exp_id, spec, job.exp_dir, phase=job.on_phase)
        if isinstance(outcome, str):
            return JobResult("stopped" if proc.stopping() else "failed", outcome)
        files, results = outcome
        if results.get("error"):
            return JobResult("failed", f"worker error: {results['error']}")
        for sample in _samples(files):
            if job.on_sample:
                job.on_sample(sample["arm"], sample["idx"], sample["value"], sample.get("seconds") or 0.0)
        for row in _samples(files, "metrics.jsonl"):
            if job.on_metrics:
                job.on_metrics(row["bench"], row["arm"], row["idx"], row["metrics"])
        runtime_result = None
        info = results.get("runtime")
        if info:
            transcript = job.exp_dir / info["transcript"] if info.get("transcript") else None
            runtime_result = RuntimeResult(bool(info.get("ok")), info.get("reason"), transcript, info.get("tokens"),
                                           float(info.get("cost_usd") or 0.0), info.get("turns"), info.get("details") or {})
        if results.get("cand_commit") and (job.exp_dir / "candidate.bundle").is_file():
            self._import_candidate(job.exp_dir, results)
        return JobResult(results["decision"], results["reason"], results.get("effect"), results.get("cand_commit"),
                         list(results.get("changed") or []), list(results.get("base") or []), list(results.get("cand") or []),
                         runtime_result, results.get("checks") or {}, results.get("noise"))

    def teardown(self) -> list[str]:
        """At the start of a run (the orchestrator's cleanup call) this reconciles: live workers of a
        killed run are re-attached, vanished ones marked down. Every later call removes everything."""
        if not self._reconciled:
            self._reconciled = True
            return self._reconcile()
        return self.down_all()

    def projected_cost(self) -> float:
        """USD not yet in the ledger that launching one more experiment commits to: what live workers
        have accrued, plus every live worker held for one more experiment's length (at least one)."""
        price = self.price()
        if not price:
            return 0.0
        accrued, live = self._accrued()
        return accrued + max(live, 1) * price * self.estimate_hours()

    def committed_cost(self, ahead_seconds: float = 0.0) -> float:
        """USD not yet in the ledger that the live workers already hold, plus what stopping them
        within `ahead_seconds` and removing them would add: the orchestrator stops running
        experiments when this would cross the budget, because a projection made at launch can be
        beaten by a slow machine."""
        price = self.price()
        if not price:
            return 0.0
        accrued, live = self._accrued()
        return accrued + live * price * (self._down_hours() + ahead_seconds / 3600)

    def _accrued(self) -> tuple[float, int]:
        price = self.price() or 0.0
        now = time.time()
        with self._lock:
            accrued = 0.0
            live = 0
            if self.opts.mode == "clusters":
                for cluster in self._clusters.values():
                    if cluster.state != "dead":
                        live += 1
                        accrued += max(0.0, (cluster.price or price) * (now - cluster.requested) / 3600 - cluster.charged)
            else:
                if self.opts.mode == "pool" and self._pool_ready:
                    live = self.count
                    accrued = max(0.0, price * self.count * (now - self._pool_since) / 3600 - self.ledger_cost_pool())
                else:
                    for start, usd_h in self._running.values():
                        live += 1
                        accrued += usd_h * (now - start) / 3600
        return accrued, live

    def _down_hours(self) -> float:
        """How long removing a worker keeps it billed: the slowest removal seen in this run, else the
        slowest launch (removal is rarely slower), else a minute."""
        with self._lock:
            seen = self._down_seconds or self._launch_seconds
            return (max(seen) if seen else 60.0) / 3600

    def estimate_hours(self) -> float:
        durations = [e["finished"] - e["started"] for e in self.ledger.experiments()
                     if e["status"] == "done" and e["started"] and e["finished"] and e["decision"] in ("kept", "discarded")]
        if durations:  # the longest so far: a projection should not be optimistic
            return max(durations) / 3600
        if self._baseline_seconds:
            return 2.5 * self._baseline_seconds / 3600  # two builds and more benchmark runs than the baseline
        return self.opts.est_minutes / 60

    # --- prices ---------------------------------------------------------------------------------

    def price(self) -> float | None:
        """USD per worker-hour: workers.price_per_hour, else SkyPilot's catalog (cached)."""
        if self.opts.price_per_hour is not None:
            return self.opts.price_per_hour
        with self._lock:
            if not self._price_known:
                self._price = self.api.hourly_price(self.resources)
                self._price_known = True
            return self._price

    def check_budget(self, budget: float | None) -> None:
        if not budget:
            return
        price = self.price()
        if price is None:
            raise UserError("cannot keep to the budget: no price for these resources in SkyPilot's catalog; "
                            "set workers.price_per_hour (USD per worker-hour)")
        one = price * self.estimate_hours()
        if budget < one:
            raise UserError(f"budget ${budget:.2f} is below one experiment's projected cost ${one:.2f} "
                            f"(${price:.3f}/h × {self.estimate_hours() * 60:.0f} min); raise --budget-usd")

    # --- dry run --------------------------------------------------------------------------------

    def dry_run(self) -> tuple[list[Path], list[str]]:
        """Write every task this run would launch (validated) and describe the launch; launch nothing."""
        self._prepare(dry=True)
        written = []
        if self.opts.mode == "clusters":
            written.append(self._write_cluster_yaml())
        elif self.opts.mode == "pool":
            written.append(self._write_pool_yaml(self.count))
        run = self.ledger.run()
        commands = self._commands()
        spec = self._spec("baseline", run.get("best_commit"), {
            "baseline": {"repeats": self.task.experiments.repeats, "profile": self.task.profile, "profile_timeout": self.task.timeouts.bench * 3},
            "commands": commands})
        written.append(self._write_job("baseline", self.job_name("baseline", 1), spec)[0])
        hypotheses = []
        if self.rundir.plan is not None:
            hypotheses = [h for h in self.rundir.plan.hypotheses if h.status in ("pending", "running")]
            if self.task.runtime.name == "patch":
                hypotheses = [h for h in hypotheses if h.has_patch]
        from ..brief import write_brief
        from ..orchestrator import exp_id

        for hyp in hypotheses:
            exp = exp_id(1, hyp.id)
            brief = write_brief(self.rundir, hyp, self.rundir.exp_dir(exp))
            spec = self._spec(exp, run.get("best_commit"), {
                "exp_id": exp, "title": hyp.title, "message": f"{exp}: {hyp.title}", "branch": f"ra/{self.rundir.run_id}/{hyp.id}",
                "commands": commands, "protected": self.task.protected_paths(), "seed": 0,
                "gate": {"min_effect": self.task.experiments.min_effect, "repeats": self.task.experiments.repeats,
                         "max_repeats": self.task.experiments.max_repeats, "direction": self.task.metric.direction, "alpha": None},
                "runtime": {"name": self.task.runtime.name, "options": self.task.runtime.options, "timeout": self.task.timeouts.runtime},
                "brief": {"text": brief.text, "hypothesis_id": hyp.id, "diff": brief.diff}})
            written.append(self._write_job(exp, self.job_name(exp, 1), spec)[0])
        budget = self.ledger.options().get("budget_usd") or self.task.budget_usd
        if budget and self.price() is not None:
            self.check_budget(budget)
        return written, self._plan_lines(len(hypotheses))

    def _plan_lines(self, n_experiments: int) -> list[str]:
        res = self.resources
        what = ", ".join(f"{k} {v}" for k, v in res.items() if k != "use_spot") or "SkyPilot's default VM"
        spot = "spot" if res.get("use_spot") else "on-demand"
        price = self.price()
        each = f"${price:.3f}/h each" if price is not None else "price unknown (nothing in SkyPilot's catalog for these resources here: name an infra, or set workers.price_per_hour)"
        total = f", ${price * self.count:.2f}/h for {self.count}" if price is not None else ""
        mode = self.opts.mode
        lines = [f"launch plan ({mode} mode, nothing launched):"]
        if mode == "clusters":
            lines.append(f"  {self.count} × {spot} cluster {self.cluster_name(1)} … {self.cluster_name(self.count)} ({what}), launched in parallel, "
                         f"autodown after {self.opts.idle_minutes} idle min")
            lines.append(f"  baseline on {self.cluster_name(1)}, then {n_experiments} experiment(s) queued onto free clusters with sky exec; "
                         "sky down for every cluster when the gate is done")
        elif mode == "jobs":
            lines.append(f"  baseline, then {n_experiments} experiment(s), each a managed job on its own {spot} cluster ({what}); "
                         f"up to {self.count} at once; SkyPilot recovers preemptions and removes each cluster when its job ends")
        else:
            lines.append(f"  worker pool {self.pool_name}: {self.count} × {spot} worker ({what}); baseline and {n_experiments} experiment(s) "
                         "submitted to it as managed jobs; pool down when the gate is done")
        lines.append(f"  estimated {each}{total}; one experiment ≈ {self.estimate_hours() * 60:.0f} min (workers.est_minutes until measured)")
        budget = self.ledger.options().get("budget_usd") or self.task.budget_usd
        if budget:
            lines.append(f"  budget ${budget:.2f}: no launch whose projected cost would cross it")
        return lines

    # --- preparing the inputs every VM needs ---------------------------------------------------

    def _prepare(self, dry: bool = False) -> None:
        with self._lock:
            if self._prepared:
                return
            self.sky_dir.mkdir(parents=True, exist_ok=True)
            sky_tasks.ship_package(self.sky_dir / "pkg")
            if not self.task.repo_is_url():
                self._target_bundle()
            self._ship_task_files()
            if not dry:
                self._check_infra()
                _register(self.rundir.path)
                if self.ledger.options().get("dryrun"):  # launching a dry run: its files give way to the real ones
                    for old in list(self.sky_dir.glob(f"{PREFIX}*.yaml")) + [self.sky_dir / "work"]:
                        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
                    self.ledger.update_run(options=json.dumps({**self.ledger.options(), "dryrun": False}))
            self._prepared = True

    def _check_infra(self) -> None:
        """`sky check`'s verdict, before anything is requested (unknown when no API server ran yet)."""
        infra = self.api.enabled_infra()
        if infra is None:
            return
        if not infra:
            raise CloudError("no infra enabled: run `sky check` to enable a cloud, Kubernetes or Slurm")
        wanted = str(self.resources.get("infra") or self.resources.get("cloud") or "").split("/")[0].lower()
        wanted = {"k8s": "kubernetes"}.get(wanted, wanted)
        enabled = [str(i).lower() for i in infra]
        if wanted and wanted not in enabled:
            raise CloudError(f"{wanted} is not enabled (enabled: {', '.join(map(str, infra))}): run `sky check {wanted}`")

    def _ship_task_files(self) -> None:
        """workers.files (absolute once the run exists) into RUN_DIR/sky/task, mounted at ~/.ra/task."""
        folder = self.sky_dir / "task"
        for name in self.opts.files:
            source = Path(name)
            target = folder / source.name
            if not source.exists():
                if target.exists():  # a resumed run whose task folder moved: the run's copy is the truth
                    continue
                raise TaskError(f"workers.files: {name} not found")
            folder.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)

    def _target_bundle(self) -> Path:
        """The run's repository as a git bundle for the VMs (a local target has no URL to clone)."""
        bundle = self.sky_dir / "target.bundle"
        base = self.ledger.run()["base_commit"]
        repo = self.rundir.repo_dir
        ref = f"refs/heads/ra/{self.rundir.run_id}/base"
        subprocess.run(["git", "update-ref", ref, base], cwd=repo, check=True, capture_output=True)
        result = subprocess.run(["git", "bundle", "create", "--quiet", str(bundle), ref], cwd=repo, capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(f"cannot bundle the target for the workers: {result.stderr.strip()[:200]}")
        return bundle

    def secrets(self) -> dict[str, str]:
        return {name: os.environ[name] for name in self.secret_names() if os.environ.get(name)}

    def secret_names(self) -> list[str]:
        names = list(self.opts.secrets)
        runtime = self.task.runtime
        if runtime.name == "claude-code":
            names += ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]
        elif runtime.name == "codex":
            names += [runtime.options.get("env_key") or "OPENAI_API_KEY"]
        return list(dict.fromkeys(names))

    def _context(self, name: str) -> dict:
        return {
            "name": name, "run_id": self.rundir.run_id, "resources": self.resources, "autostop_minutes": None,
            "pkg_dir": str(self.sky_dir / "pkg"),
            "target_bundle": None if self.task.repo_is_url() else str(self.sky_dir / "target.bundle"),
            "task_files": str(self.sky_dir / "task") if self.opts.files else None,
            "holdout_files": str(self.rundir.path / "holdout") if self.task.holdout else None,
            "setup": sky_tasks.render_script("setup.sh", worker_requirements=" ".join(shlex.quote(r) for r in sky_tasks.WORKER_REQUIREMENTS),
                                             runtime=self.task.runtime.name, runtime_setup=sky_tasks.runtime_setup(self.task.runtime.name),
                                             project_setup=self.opts.setup.strip()),
            "secret_names": [n for n in self.secret_names()],
        }

    def _write_cluster_yaml(self) -> Path:
        ctx = self._context(f"{PREFIX}{self.slug}-worker")
        ctx["autostop_minutes"] = self.opts.idle_minutes
        return sky_tasks.write(self.sky_dir / "cluster.yaml", sky_tasks.render("cluster.yaml", **ctx))

    def _write_pool_yaml(self, workers: int) -> Path:
        ctx = self._context(self.pool_name)
        return sky_tasks.write(self.sky_dir / "pool.yaml", sky_tasks.render("pool.yaml", workers=workers, **ctx))

    def _spec(self, kind_or_exp: str, base_commit: str | None, fields: dict) -> dict:
        url = self.task.repo_is_url()
        spec = {"version": 1, "kind": "baseline" if kind_or_exp == "baseline" else "experiment",
                "repo": {"url": self.task.repo if url else None, "bundle": None if url else "~/.ra/target.bundle",
                         "base_commit": base_commit, "lineage": []}}
        spec.update(fields)
        return spec

    def _commands(self) -> dict:
        t = self.task
        return {"build": t.build, "check": t.check, "bench": t.bench, "metric": t.metric.name, "regex": t.metric.regex,
                "direction": t.metric.direction, "build_timeout": t.timeouts.build, "check_timeout": t.timeouts.check,
                "bench_timeout": t.timeouts.bench}

    def _write_job(self, exp: str, name: str, spec: dict) -> tuple[Path, Path]:
        """RUN_DIR/sky/work/<name>/ (job.json + bundles of the base's lineage) and RUN_DIR/sky/<name>.yaml."""
        work = self.sky_dir / "work" / name
        if work.exists():
            shutil.rmtree(work)
        (work / "inputs").mkdir(parents=True)
        spec = {**spec, "name": name, "repo": dict(spec["repo"])}
        spec["repo"]["lineage"] = self._lineage(spec["repo"].get("base_commit"), work / "inputs")
        (work / "job.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        ctx = self._context(name)
        title = "the baseline" if exp == "baseline" else f"experiment {exp}: {spec.get('title', '')}"
        text = sky_tasks.render("experiment.yaml", mode=self.opts.mode, pool=self.pool_name, title=title,
                                workdir=str(work), envs=self.opts.envs, run=sky_tasks.render_script("run.sh"), **ctx)
        return sky_tasks.write(self.sky_dir / f"{name}.yaml", text), work

    def _lineage(self, commit: str | None, inputs: Path) -> list[str]:
        """Bundles of the candidate commits between the run's base and `commit`, oldest first."""
        base = self.ledger.run().get("base_commit")
        known = {}
        for results in (self.rundir.path / "experiments").glob("*/results.json"):
            try:
                data = json.loads(results.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            bundle = results.parent / "candidate.bundle"
            if data.get("cand_commit") and bundle.is_file():
                known[data["cand_commit"]] = (bundle, data.get("base_commit"))
        chain = []
        while commit and commit != base and commit in known and len(chain) < 100:
            bundle, parent = known[commit]
            chain.append(bundle)
            commit = parent
        names = []
        for index, bundle in enumerate(reversed(chain)):
            name = f"inputs/{index:02d}-{bundle.parent.name}.bundle"
            shutil.copyfile(bundle, inputs.parent / name)
            names.append(name)
        return names

    # --- running one job (baseline or experiment), whatever the mode ------------------------------

    def _execute(self, exp: str, spec: dict, exp_dir: Path, phase) -> tuple[dict, dict] | str:
        """Run the job until it gives verified results; returns (files, results) or a failure reason."""
        phase = phase or (lambda _name: None)
        reason = "not started"
        reattach = self._live_job_for(exp) if self.opts.mode != "clusters" else None
        attempt, tries = 0, 0
        while attempt < self.opts.max_attempts and tries < 4 * self.opts.max_attempts:
            if self._halted():
                return "interrupted"
            tries += 1
            name, reattaching, reattach = reattach or self.job_name(exp), bool(reattach), None
            try:
                files = self._attempt(exp, name, spec, phase, reattaching)
            except (WorkerLost, TransferError, LaunchError, _JobFailed, _NotStarted) as error:
                if self._halted():
                    return "interrupted"
                if isinstance(error, LaunchError) and error.unavailable and not self._ever_up:
                    raise _cloud_error(error) from None
                attempt += 0 if isinstance(error, _NotStarted) else 1  # a worker found dead before the job began costs no attempt
                reason = _why(error)
                self._say(f"{exp}: {reason} — " + ("requeued" if attempt < self.opts.max_attempts else "giving up"),
                          kind="requeue", experiment=exp, attempt=attempt)
                continue
            phase("verified")
            self._deliver(files, exp_dir)
            return files, json.loads(files["results.json"])
        return f"infrastructure: {reason} (after {self.opts.max_attempts} attempts)"

    def _halted(self) -> bool:
        return proc.stopping() or self._stopping.is_set()

    def _attempt(self, exp: str, name: str, spec: dict, phase, reattach: bool) -> dict[str, bytes]:
        if self.opts.mode == "clusters":
            return self._attempt_on_cluster(exp, name, spec, phase)
        return self._attempt_managed(exp, name, spec, phase, reattach)

    # clusters mode

    def _attempt_on_cluster(self, exp: str, name: str, spec: dict, phase) -> dict[str, bytes]:
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
            if not getattr(self, "_cluster_yaml", None):
                self._cluster_yaml = self._write_cluster_yaml()  # this process's settings, even over a dry run's file
            slots = {c.slot for c in self._clusters.values() if c.state != "dead"}
            for slot in range(1, count + 1):
                if slot not in slots:
                    self._launch(slot, self._next_generation(slot))

    def _next_generation(self, slot: int) -> int:
        used = [c.generation for c in self._clusters.values() if c.slot == slot]
        for worker in self.ledger.workers():
            match = re.fullmatch(re.escape(f"{PREFIX}{self.slug}-{slot}") + r"(?:-g(\d+))?", worker["id"])
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
                self.api.launch(yaml_path, cluster.name, self.opts.idle_minutes, self.secrets())
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
            with self._lock:
                self._ever_up = True
                self._launch_seconds.append(time.time() - cluster.requested)
                cluster.price = self.api.cluster_price(cluster.name) if self.opts.price_per_hour is None else self.opts.price_per_hour
                cluster.price = cluster.price if cluster.price is not None else self.price()
                cluster.state = "up" if cluster.state == "launching" else cluster.state
                self.ledger.set_worker_status(cluster.name, "up")
                self._cond.notify_all()
            return
        with self._lock:
            cluster.state = "dead"
            cluster.error = error.reason if error else "launch stopped"
            self._last_launch_error = error
            if not self._stopping.is_set():
                self.ledger.set_worker_status(cluster.name, "down")
            self._cond.notify_all()

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

    # jobs and pool modes

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
                    self.api.pool_apply(yaml_path, self.pool_name, workers, self.secrets())
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
                    self.ledger.set_worker_status(self.pool_name, "down")
                except Exception:  # noqa: BLE001 — teardown will try again
                    pass
                raise _cloud_error(error) if error.unavailable else CloudError(f"worker pool did not start: {error.reason}")
            self.ledger.set_worker_status(self.pool_name, "up")
            self._pool_ready = True
            self._ever_up = True

    def _live_job_for(self, exp: str) -> str | None:
        for worker in self.ledger.workers(live_only=True):
            meta = json.loads(worker.get("meta") or "{}")
            if worker["backend"] == NAME and meta.get("kind") == "job" and worker["experiment_id"] == exp and meta.get("job_id") is not None:
                return worker["id"]
        return None

    def _attempt_managed(self, exp: str, name: str, spec: dict, phase, reattach: bool) -> dict[str, bytes]:
        pool = self.pool_name if self.opts.mode == "pool" else None
        started = time.time()
        price = self.price() or 0.0
        if reattach:
            meta = json.loads(next(w for w in self.ledger.workers() if w["id"] == name).get("meta") or "{}")
            job_id = int(meta["job_id"])
            self._say(f"{exp}: re-attached to managed job {name} (id {job_id})", kind="resume")
        else:
            yaml_path, _ = self._write_job(exp, name, spec)
            self.ledger.add_worker(name, NAME, None, exp, meta={"kind": "job", "pool": pool, "mode": self.opts.mode})
            phase("submitting")
            try:
                job_id = self.api.jobs_launch(yaml_path, name, pool, self.secrets())
            except LaunchError:
                self._cancel_job_by_name(name)
                raise
            self._ever_up = True
            self.ledger.update_worker_meta(name, job_id=job_id)
            self.ledger.set_worker_status(name, "up")
        with self._lock:
            self._running[name] = (started, price)
        info: dict = {}
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
            if not self._halted():
                self.ledger.set_worker_status(name, "down")  # SkyPilot removes a finished job's cluster
            if price:
                seconds = float(info.get("duration") or 0.0) or (time.time() - started)  # SkyPilot's own count when it has one
                self.ledger.add_cost("compute", price * seconds / 3600, exp, detail=name)

    def _wait_managed(self, exp: str, job_id: int) -> tuple[str, dict]:
        recoveries, misses = 0, 0
        while True:
            if self._halted():
                raise _JobFailed("interrupted")
            try:
                info = self.api.jobs_status([job_id]).get(job_id)
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
            if state == "FAILED_NO_RESOURCE":
                raise LaunchError(info.get("reason") or "no resources for the managed job", unavailable=True)
            if state not in RUNNING_STATES and state != "UNKNOWN":
                return state, info
            self._sleep(self.opts.poll_seconds)

    def _cancel_job_by_name(self, name: str) -> None:
        try:
            for job_id, job_name in self.api.list_jobs(name):
                if job_name == name:
                    self.api.jobs_cancel([job_id])
            self.ledger.set_worker_status(name, "down")
        except Exception:  # noqa: BLE001 — left 'requested': teardown finds it by name
            pass

    # --- results --------------------------------------------------------------------------------

    def _fetch(self, get_log: Callable[[], str], name: str, exp: str) -> dict[str, bytes]:
        from ..worker import TransferError as WorkerTransferError
        from ..worker import read_bundle

        last = "no attempt"
        for attempt in range(1, self.opts.fetch_attempts + 1):
            if self._halted():
                raise _JobFailed("interrupted")
            try:
                log = get_log()
                files = read_bundle(log, name)
                self._save_log(exp, name, log)
                return files
            except WorkerTransferError as error:
                last = str(error)
            except Exception as error:  # noqa: BLE001 — a dropped connection, a timeout
                last = f"lost connection: {_why(error)}"
            self._say(f"{exp}: results of {name} not intact ({last}); fetching again ({attempt}/{self.opts.fetch_attempts})", kind="transfer")
            self._sleep(min(30.0, self.opts.poll_seconds * 2 ** (attempt - 1)))
        raise TransferError(f"results transfer failed: {last}")

    def _save_log(self, exp: str, name: str, log: str) -> None:
        from ..worker import MARK

        folder = self.rundir.exp_dir(exp)
        text = "\n".join(line for line in log.splitlines() if MARK not in line)
        (folder / f"{name}.log").write_text(text + "\n", encoding="utf-8")

    def _deliver(self, files: dict[str, bytes], exp_dir: Path) -> None:
        """Write the verified files into the experiment's folder, then check them again on disk."""
        from ..worker import TransferError as WorkerTransferError
        from ..worker import verify_checksums

        exp_dir.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            target = exp_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        try:
            verify_checksums({rel: (exp_dir / rel).read_bytes() for rel in files})
        except WorkerTransferError as error:
            raise TransferError(f"results damaged on disk: {error}") from None

    def _import_candidate(self, exp_dir: Path, results: dict) -> None:
        """Fetch the candidate commit into RUN_DIR/repo.git (so branches and the best exist locally)."""
        repo, bundle = self.rundir.repo_dir, exp_dir / "candidate.bundle"
        branch = results.get("branch")
        if not branch or not repo.exists():
            return
        if self.task.repo_is_url():
            self._fetch_base()
        lock = getattr(self, "_git_lock", None) or threading.Lock()
        self._git_lock = lock
        with lock:
            result = subprocess.run(["git", "fetch", "--quiet", str(bundle), f"+refs/heads/{branch}:refs/heads/{branch}"],
                                    cwd=repo, capture_output=True, text=True)
        if result.returncode != 0:
            self._say(f"{exp_dir.name}: candidate kept as {bundle.name} only ({result.stderr.strip()[:160]})", kind="notice")

    def _fetch_base(self) -> None:
        """A URL target's base commit into RUN_DIR/repo.git: that one commit, trees only, blobs fetched
        on demand — not a clone. Best effort: without it a kept change stays a bundle file."""
        repo, base = self.rundir.repo_dir, self.ledger.run().get("base_commit")
        if not base or subprocess.run(["git", "cat-file", "-e", f"{base}^{{commit}}"], cwd=repo, capture_output=True).returncode == 0:
            return
        subprocess.run(["git", "fetch", "--quiet", "--depth=1", "--filter=blob:none", "origin", base], cwd=repo, capture_output=True)

    # --- teardown, re-attach --------------------------------------------------------------------

    def _reconcile(self) -> list[str]:
        """A resumed run: adopt what still runs, mark what vanished as down. Returns the names marked down."""
        live = [w for w in self.ledger.workers(live_only=True) if w["backend"] == NAME]
        if not live:
            return []
        gone = []
        clusters = [w["id"] for w in live if json.loads(w.get("meta") or "{}").get("kind") == "cluster"]
        states = {}
        if clusters:
            try:
                states = self.api.cluster_status(clusters)
            except Exception:  # noqa: BLE001
                states = {}
        for worker in live:
            meta = json.loads(worker.get("meta") or "{}")
            kind = meta.get("kind")
            if kind == "cluster":
                if states.get(worker["id"]) == "UP" and not self._stopping.is_set():
                    slot = int(meta.get("slot") or 1)
                    match = re.search(r"-g(\d+)$", worker["id"])
                    cluster = Cluster(worker["id"], slot, int(match.group(1)) if match else 1, state="up", requested=worker["created"])
                    try:
                        self.api.cancel(worker["id"], [])  # what the killed run left running there
                        self.api.autostop(worker["id"], self.opts.idle_minutes)
                    except Exception:  # noqa: BLE001
                        pass
                    cluster.price = self.price()
                    cluster.charged = self.ledger_cost_detail(cluster.name)
                    self._clusters[cluster.name] = cluster
                    self._ever_up = True
                    self.ledger.set_worker_status(worker["id"], "up")
                    self._say(f"re-attached to cluster {worker['id']}", kind="resume")
                else:
                    self._down_quietly(worker["id"])
                    self.ledger.set_worker_status(worker["id"], "down")
                    gone.append(worker["id"])
            elif kind == "pool":
                status = None
                try:
                    status = self.api.pool_status(worker["id"])
                except Exception:  # noqa: BLE001
                    pass
                if status is not None:
                    self._pool_ready, self._ever_up = True, True
                    self._pool_since, self._pool_charged = worker["created"], 0.0
                    self._say(f"re-attached to worker pool {worker['id']}", kind="resume")
                else:
                    self.ledger.set_worker_status(worker["id"], "down")
                    gone.append(worker["id"])
            elif kind == "job" and meta.get("job_id") is None:
                self._cancel_job_by_name(worker["id"])  # requested, id never recorded
                gone.append(worker["id"])
        if gone:
            self._say(f"workers already gone, marked down: {', '.join(gone)}", kind="resume")
        return gone

    def down_all(self, sweep: bool = False) -> list[str]:
        """Remove every worker the ledger knows to be live (and, with `sweep`, anything named after
        this run in SkyPilot). Idempotent; returns the names removed."""
        self._stopping.set()
        with self._cond:
            launching = [c for c in self._clusters.values() if c.state == "launching"]
            self._cond.notify_all()
        for cluster in launching:
            try:
                self.api.cancel_launch(cluster.name)
            except Exception:  # noqa: BLE001
                pass
        for cluster in launching:
            if cluster.thread is not None:
                cluster.thread.join(timeout=max(60.0, self.opts.poll_seconds * 4))
        removed: list[str] = []
        live = [w for w in self.ledger.workers(live_only=True) if w["backend"] == NAME]
        jobs = [w for w in live if json.loads(w.get("meta") or "{}").get("kind") == "job"]
        others = [w for w in live if w not in jobs]
        ids = [int(json.loads(w["meta"]).get("job_id")) for w in jobs if json.loads(w.get("meta") or "{}").get("job_id") is not None]
        if ids:
            self._retry(lambda: self.api.jobs_cancel(ids), "cancel managed jobs")
        for worker in jobs:
            if json.loads(worker.get("meta") or "{}").get("job_id") is None:
                self._cancel_job_by_name(worker["id"])
            self.ledger.set_worker_status(worker["id"], "down")
            removed.append(worker["id"])
        threads = []
        results: dict[str, bool] = {}
        for worker in others:
            kind = json.loads(worker.get("meta") or "{}").get("kind")
            action = (lambda n=worker["id"]: self.api.pool_down(n)) if kind == "pool" else (lambda n=worker["id"]: self._timed_down(n))
            thread = threading.Thread(target=lambda n=worker["id"], a=action: results.__setitem__(n, self._retry(a, f"remove {n}")), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        now = time.time()
        for worker in others:
            if results.get(worker["id"]):
                self._charge_held(worker, now)
                self.ledger.set_worker_status(worker["id"], "down")
                removed.append(worker["id"])
        if sweep:
            removed += self.sweep(f"{PREFIX}{self.slug}-")
        if removed:
            self.ledger.event("teardown", f"removed {len(removed)} SkyPilot worker(s)", workers=removed)
        return removed

    def _charge_held(self, worker: dict, now: float) -> None:
        """Idle and provisioning time of a cluster or pool: what experiments did not pay for."""
        price = self.price()
        meta = json.loads(worker.get("meta") or "{}")
        if not price:
            return
        if meta.get("kind") == "cluster":
            cluster = self._clusters.get(worker["id"])
            charged = self.ledger_cost_detail(worker["id"])  # every process's charges, not just this one's
            since = cluster.requested if cluster else worker["created"]
            usd = (cluster.price if cluster and cluster.price else price) * (now - since) / 3600 - charged
        elif meta.get("kind") == "pool":
            since = getattr(self, "_pool_since", worker["created"])
            usd = price * int(meta.get("workers") or self.count) * (now - since) / 3600 - self.ledger_cost_pool()
        else:
            return
        if usd > 0:
            self.ledger.add_cost("compute", usd, None, detail=f"idle/provisioning {worker['id']}")

    def ledger_cost_detail(self, detail: str) -> float:
        row = self.ledger._execute("SELECT COALESCE(SUM(usd), 0) FROM costs WHERE detail=?", (detail,)).fetchone()
        return float(row[0])

    def ledger_cost_pool(self) -> float:
        row = self.ledger._execute("SELECT COALESCE(SUM(usd), 0) FROM costs WHERE kind='compute' AND detail LIKE ?",
                                   (f"{PREFIX}{self.slug}-%",)).fetchone()
        return float(row[0])

    def sweep(self, prefix: str) -> list[str]:
        """Anything in SkyPilot named with `prefix` (found by name, whatever the ledger says)."""
        return _sweep(self.api, prefix, lambda line: self._say(line, kind="teardown"))

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

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not (self._halted()):
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))


class TransferError(Exception):
    """Results did not arrive intact after every retry."""


class _JobFailed(Exception):
    pass


class _NotStarted(Exception):
    """The worker was gone before the job could start: requeue without spending an attempt."""


def _cloud_error(error: LaunchError) -> CloudError:
    if error.reason.startswith("no infra enabled"):
        return CloudError(error.reason)
    return CloudError(f"requested resources unavailable: {error.reason}")


def _why(error: BaseException) -> str:
    text = getattr(error, "reason", None) or " ".join(str(error).split()) or type(error).__name__
    return text[:300]


def _samples(files: dict[str, bytes], name: str = "samples.jsonl") -> list[dict]:
    raw = files.get(name, b"").decode("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


# --- the user-level registry of runs that used SkyPilot (for `down --all`) -----------------------


def registry_path() -> Path:
    folder = os.environ.get("RESEARCH_AGENT_STATE_DIR")
    if not folder:
        from platformdirs import user_state_dir

        folder = user_state_dir("research-agent")
    return Path(folder) / "skypilot-runs.txt"


def _register(run_path: Path) -> None:
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = str(Path(run_path).resolve())
    known = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if line not in known:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def registered_runs() -> list[Path]:
    path = registry_path()
    if not path.exists():
        return []
    return [Path(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- `research-agent doctor` ---------------------------------------------------------------------


def doctor_info() -> dict:
    """One row for the doctor table: is SkyPilot installed, which infra `sky check` enabled."""
    from . import sky_api

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


# --- `research-agent down` ---------------------------------------------------------------------------


def down_command(run_dir: Path | None, everything: bool) -> list[str]:
    """Tear down what runs left behind: the given run's workers (its ledger, then its name prefix in
    SkyPilot), and with `everything` every run this tool registered plus anything named `ra-…`."""
    from ..commands import shown
    from ..rundir import open_run

    lines: list[str] = []
    runs: list[Path] = [run_dir] if run_dir is not None else []
    if everything:
        runs += [p for p in registered_runs() if p.is_dir() and (run_dir is None or p.resolve() != run_dir.resolve())]
    api = None
    for path in runs:
        explicit = run_dir is not None and path == run_dir
        if not explicit and not (path / "ledger.sqlite").is_file():
            continue
        run = open_run(path)  # a clear RunDirError for a path that is not a run directory
        if run.task.workers.backend == NAME:
            backend = SkyPilotBackend(run, {"api": api} if api else {})
            api = backend.api
            backend._reconciled = True
            removed = backend.down_all(sweep=True)
        else:
            from .local import LocalBackend

            removed = LocalBackend(run.path, run.repo_dir, run.ledger).teardown()
        if removed:
            run.ledger.event("down", f"research-agent down removed {len(removed)} worker(s)", workers=removed)
            lines.append(f"{shown(run.path)}: removed {', '.join(removed)}")
        else:
            lines.append(f"{shown(run.path)}: nothing to remove (every worker is already down)")
        run.ledger.close()
    if everything:
        try:
            api = api or load_api()
        except UserError:  # SkyPilot not installed: nothing of it can be running from here
            lines.append("SkyPilot is not installed here: nothing else to look for")
            return lines
        removed = _sweep(api, PREFIX, lambda line: lines.append(line))
        lines.append(f"by name prefix {PREFIX}: removed {', '.join(removed)}" if removed else f"by name prefix {PREFIX}: nothing left")
    return lines


def _sweep(api, prefix: str, say: Callable[[str], None]) -> list[str]:
    removed = []
    for lister, remover in ((api.list_clusters, api.down), (api.list_pools, api.pool_down)):
        try:
            names = lister(prefix)
        except Exception as error:  # noqa: BLE001
            say(f"could not list SkyPilot workers: {_why(error)}")
            names = []
        for name in names:
            try:
                remover(name)
                removed.append(name)
            except Exception as error:  # noqa: BLE001
                say(f"could not remove {name}: {_why(error)}")
    try:
        jobs = api.list_jobs(prefix)
        if jobs:
            api.jobs_cancel([job_id for job_id, _ in jobs])
            removed += [name for _, name in jobs]
    except Exception as error:  # noqa: BLE001
        say(f"could not cancel managed jobs: {_why(error)}")
    return removed
