"""A run directory: the resolved task, the run's copy of the plan, the ledger and the run's repository."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import target
from .backends import backend_kind
from .errors import RunDirError
from .ledger import Ledger
from .plan import Plan, load_plan, save_plan
from .task import Task, load_task


@dataclass
class RunDir:
    path: Path
    run_id: str
    task: Task
    plan: Plan | None  # None until the research phase writes one
    ledger: Ledger

    @property
    def repo_dir(self) -> Path:
        return self.path / "repo.git"

    @property
    def plan_path(self) -> Path:
        return self.path / "plan.md"

    def save_plan(self) -> None:
        save_plan(self.plan, self.plan_path)

    def exp_dir(self, exp_id: str) -> Path:
        folder = self.path / "experiments" / exp_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def default_run_dir(task: Task) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{_slug(task.name)}-{stamp}"


def create(task: Task, plan: Plan | None, path: Path, allow_dirty: bool, options: dict | None = None) -> tuple[RunDir, str | None]:
    """Make a new run directory and bring the target in; returns it and an optional notice line."""
    if (path / "ledger.sqlite").exists():
        existing = Ledger.open_existing(path / "ledger.sqlite").run() or {}
        if existing.get("task_fingerprint") == task.fingerprint():
            raise RunDirError(f"{path} already holds run {existing.get('id')}; continue it with: research-agent resume {path}")
        raise RunDirError(f"{path} belongs to another task ({existing.get('task_name')}); choose another --run-dir")
    if path.exists() and any(path.iterdir()):
        raise RunDirError(f"run directory {path} exists and is not empty")
    path.mkdir(parents=True, exist_ok=True)
    run_id = path.name
    path = path.resolve()  # commands run in other folders: keep no relative paths inside
    try:
        if task.repo_is_url() and backend_kind(task.workers.backend).remote:  # cloned on the workers, never here
            prepared = target.remote(task.repo, path, resolve=not (options or {}).get("dryrun"))
        else:
            prepared = target.prepare(
                task.repo if task.repo_is_url() else str(task.repo_path()),
                task.repo_is_url(),
                path,
                allow_dirty,
                hidden=task.holdout_inside_repo(),
            )
        copy_holdout(task, path)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # nothing half-made left behind on bad input
        raise
    (path / "task.yaml").write_text(task.to_yaml(), encoding="utf-8")
    if plan is not None:
        _copy_patch_files(plan, path)
        save_plan(plan, path / "plan.md")
    ledger = Ledger(path / "ledger.sqlite")
    ledger.create_run(run_id, task.name, task.fingerprint())
    ledger.update_run(repo_dir=str(prepared.repo_dir.name), base_commit=prepared.base_commit,
                      best_commit=prepared.base_commit, options=json.dumps(options or {}))
    ledger.event("created", f"run {run_id} created", base_commit=prepared.base_commit)
    run = RunDir(path, run_id, load_task(path / "task.yaml"), None, ledger)
    run.plan = load_plan(run.plan_path) if plan is not None else None
    return run, prepared.notice


def holdout_dir(run_path: Path) -> Path:
    """RUN_DIR/holdout: the run's copy of the holdout files, outside every worktree."""
    return Path(run_path) / "holdout"


def copy_holdout(task: Task, run_path: Path) -> None:
    """Copy the holdout files into RUN_DIR/holdout (a resumed run keeps its copy if the sources moved)."""
    if task.holdout is None:
        return
    for name, source in task.holdout.files.items():
        target_path = holdout_dir(run_path) / name
        if not Path(source).exists() and target_path.exists():
            continue
        target_path.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            shutil.copytree(source, target_path, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target_path)


def open_run(path: Path, task_check: Task | None = None) -> RunDir:
    """Open an existing run directory, refusing one that belongs to another task."""
    from .status import require_run_dir

    require_run_dir(path)
    path = path.resolve()
    ledger = Ledger.open_existing(path / "ledger.sqlite")
    run = ledger.run()
    if run is None:
        raise RunDirError(f"run directory {path} has an empty ledger")
    task = load_task(path / "task.yaml")
    if task_check is not None and task_check.fingerprint() != run["task_fingerprint"]:
        raise RunDirError(f"{path} belongs to another task ({run['task_name']}), not {task_check.name}")
    plan = load_plan(path / "plan.md") if (path / "plan.md").exists() else None
    return RunDir(path, run["id"], task, plan, ledger)


def _copy_patch_files(plan: Plan, run_path: Path) -> None:
    """The run's copy of the plan keeps its `patch:` references: the files come along, same relative paths."""
    from .plan.model import patch_path

    for hyp in plan.hypotheses:
        if hyp.patch_file:
            destination = run_path / hyp.patch_file
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(patch_path(plan.path, hyp.patch_file), destination)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"
