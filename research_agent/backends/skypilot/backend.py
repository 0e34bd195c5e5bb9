"""SkyPilotBackend: the Backend interface over the mode classes (clusters.ClustersBackend,
managed.ManagedBackend). `SkyPilotBackend(run, options)` gives the class for the task's mode; each
mode implements the same few methods (_ensure_workers, _worker_names, _attempt, _reattachable,
_accrued, _mode_tasks, _mode_plan); the rest is shared: inputs, the execute/fetch/deliver loop,
costs, teardown."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Callable

from ... import proc
from ...experiment import BaselineJob, BaselineResult, Job, JobResult
from ...runtimes import runtime_kind
from ...runtimes.base import Brief, Runtime, RuntimeResult
from ..base import Backend, quiet
from ..sky_api import LaunchError, load_api
from .costs import CostsMixin
from .execute import ExecuteMixin, _samples
from .inputs import InputsMixin
from .options import NAME, PREFIX, SkyOptions, parse_options, slug
from .teardown import TeardownMixin


class RemoteRuntime(Runtime):
    """The runtime as the orchestrator sees it with this backend: it runs on the worker, not here
    (nothing to preflight here either: the worker checks its own key)."""

    def __init__(self, name: str, options: dict, timeout: float):
        self.name, self.options, self.timeout = name, dict(options or {}), timeout
        self.notices: list[str] = []

    def apply(self, workdir: Path, brief: Brief) -> RuntimeResult:  # pragma: no cover - never called locally
        raise RuntimeError("a SkyPilot runtime runs on its worker")



class SkyPilotBackend(ExecuteMixin, InputsMixin, CostsMixin, TeardownMixin, Backend):
    name = NAME

    def __new__(cls, run, options: dict | None = None, notify: Callable[[str], None] = quiet):
        if cls is SkyPilotBackend:  # the task's mode picks the implementation
            merged = {**run.task.workers.options, **{k: v for k, v in (options or {}).items() if k in SkyOptions.model_fields}}
            if parse_options(merged).mode == "clusters":
                from .clusters import ClustersBackend as cls
            else:
                from .managed import ManagedBackend as cls
        return object.__new__(cls)

    @property
    def prefix(self) -> str:
        """`ra-<slug>-`: every SkyPilot name of this run starts with it."""
        return f"{PREFIX}{self.slug}-"

    def __init__(self, run, options: dict | None = None, notify: Callable[[str], None] = quiet):
        super().__init__(notify)
        options = dict(options or {})
        self.rundir, self.task, self.ledger = run, run.task, run.ledger
        self.opts = parse_options({**self.task.workers.options, **{k: v for k, v in options.items() if k in SkyOptions.model_fields}})
        self.api = options.get("api") or load_api()
        self.slug = slug(run.run_id)
        self.sky_dir = run.path / "sky"
        self.resources = self.opts.resources_dict()
        self._lock = threading.RLock()
        self._git_lock = threading.Lock()  # RUN_DIR/repo.git takes one fetch at a time
        self._cond = threading.Condition(self._lock)
        self._clusters: dict[str, Cluster] = {}
        self._running: dict[str, tuple[float, float]] = {}  # job name -> (start, USD/h)
        self._stopping = threading.Event()
        self._reconciled = False  # the first teardown() re-attaches a killed run's workers; down() skips it
        self._pool_since: float | None = None  # when this process saw the pool up (managed pool mode)
        self._cluster_yaml: Path | None = None  # written once per process (clusters mode)
        self._price: float | None = None
        self._price_known = False
        self._pool_ready = False
        self._prepared = False
        self._ever_up = False
        self._launch_seconds: list[float] = []  # request to up, per cluster: the removal reserve's first guess
        self._down_seconds: list[float] = []  # per removal seen in this run
        self._last_launch_error: LaunchError | None = None
        self._baseline_seconds: float | None = None
        self.leftovers: list[tuple[str, str]] = []  # (worker, the `sky` command that removes it): what down could not remove

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

    def make_runtime(self, name: str, options: dict, timeout: float, fence=None) -> RemoteRuntime:  # the worker fences itself
        runtime = RemoteRuntime(name, options, timeout)
        if runtime_kind(name).npm:
            runtime.notices.append(f"{name} runs on the workers (installed there by the task's setup)")
        return runtime

    def provision(self, n: int) -> list[str]:
        self._prepare()
        count = self.opts.count or n
        self._ensure_workers(count)
        return self._worker_names(count)

    def baseline(self, commit: str, job: BaselineJob) -> BaselineResult:
        self._prepare()
        self._ensure_workers(self.count, baseline=True)
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
        rt_name = runtime.name
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

    def dry_run(self) -> tuple[list[Path], list[str]]:
        """Write every task this run would launch (validated) and describe the launch; launch nothing."""
        self._prepare(dry=True)
        written = list(self._mode_tasks())
        run = self.ledger.run()
        commands = self._commands()
        spec = self._spec("baseline", run.get("best_commit"), {
            "baseline": {"repeats": self.task.experiments.repeats, "profile": self.task.profile, "profile_timeout": self.task.timeouts.bench * 3},
            "commands": commands})
        written.append(self._write_job("baseline", self.job_name("baseline", 1), spec)[0])
        hypotheses = []
        if self.rundir.plan is not None:
            hypotheses = [h for h in self.rundir.plan.hypotheses if h.status in ("pending", "running")]
            if not runtime_kind(self.task.runtime.name).agent:  # the patch runtime tries only hypotheses with a diff
                hypotheses = [h for h in hypotheses if h.has_patch]
        from ...brief import write_brief
        from ...orchestrator import exp_id

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
        lines += self._mode_plan(n_experiments, spot, what)
        lines.append(f"  estimated {each}{total}; one experiment ≈ {self.estimate_hours() * 60:.0f} min (workers.est_minutes until measured)")
        budget = self.ledger.options().get("budget_usd") or self.task.budget_usd
        if budget:
            lines.append(f"  budget ${budget:.2f}: no launch whose projected cost would cross it")
        return lines
