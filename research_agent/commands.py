"""What the CLI commands do, kept out of cli.py so the CLI stays thin and imports stay lazy."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from rich.console import Console

from .errors import TargetError, UserError

err = Console(stderr=True, highlight=False, soft_wrap=True)


def load_task_for(repo_or_task: str, task_file: Path | None, overrides: dict):
    """A task from a YAML file (REPO_OR_TASK or --task), or from a repository path plus options."""
    from .task import apply_overrides, load_task, task_from_repo

    candidate = Path(repo_or_task)
    if task_file is not None:
        task = load_task(task_file)
        if repo_or_task != str(task_file):
            task = task.model_copy(update={"repo": str(candidate.resolve()) if candidate.exists() else repo_or_task})
    elif candidate.is_file() and candidate.suffix in (".yaml", ".yml"):
        task = load_task(candidate)
    elif candidate.is_file():
        raise UserError(f"{repo_or_task} is a file but not a task spec (.yaml)")
    else:
        looks_like_url = "://" in repo_or_task or repo_or_task.startswith("git@")
        if not candidate.exists() and not looks_like_url:
            raise TargetError(f"target not found: {repo_or_task}")
        basics = {key: overrides.get(key) for key in ("bench", "build", "check", "metric", "direction")}
        task = task_from_repo(repo_or_task, **{k: v for k, v in basics.items() if v is not None})
    return apply_overrides(task, **overrides)


def start_run(repo_or_task: str, task_file: Path | None, plan_file: Path | None, overrides: dict, run_dir: Path | None,
              allow_dirty: bool, offline: bool = False, stop_after_plan: bool = False) -> None:
    from . import rundir
    from .plan import load_plan

    task = load_task_for(repo_or_task, task_file, overrides)
    plan = None
    if plan_file is not None:
        plan = load_plan(plan_file)
        if not any(h.status in ("pending", "running") for h in plan.hypotheses):
            raise UserError(f"{plan_file}: no pending hypothesis to try")
    path = run_dir or rundir.default_run_dir(task)
    options = {"offline": offline, "stop_after_plan": stop_after_plan}
    run, notice = rundir.create(task, plan, path, allow_dirty, options)
    if notice:
        err.print(f"note: {notice}")
    err.print(f"run {run.run_id} in {shown(path)}")
    _execute(run)


def resume_run(run_dir: Path, task_file: Path | None) -> None:
    from . import rundir
    from .task import load_task

    check = load_task(task_file) if task_file else None
    run = rundir.open_run(run_dir, check)
    state = run.ledger.run()["status"]
    if state == "done":
        err.print(f"run {run.run_id} is already finished; rewriting its report")
        write_reports(run_dir)
        return
    if state == "planned":  # the plan was reviewed: go on to the experiments
        options = {**run.ledger.options(), "stop_after_plan": False}
        run.ledger.update_run(options=json.dumps(options))
    err.print(f"resuming run {run.run_id} ({state})")
    _execute(run)


def _execute(run) -> None:
    from .backends import make_backend
    from .orchestrator import Interrupted, Orchestrator
    from .view import live

    backend = make_backend(run)
    orchestrator = Orchestrator(run, backend)
    try:
        with live(orchestrator, err):
            orchestrator.execute()
    except Interrupted as stop:
        err.print(f"interrupted ({stop}); workers removed, ledger saved. Continue with:")
        err.print(f"  research-agent resume {shlex.quote(shown(run.path))}")
        sys.exit(128 + stop.signum)
    if run.ledger.run()["status"] == "planned":
        where = shown(run.path)
        print(f"plan written: {where}/plan.md (sources: {where}/research/sources.json)")
        print(f"review it (research-agent plan show {where}/plan.md), then run it: research-agent resume {where}")
        return
    paths = write_reports(run.path, quiet=True)
    _summary(run, paths)


def _summary(run, paths: dict) -> None:
    from .status import build_status

    status = build_status(run.path)
    counts: dict[str, int] = {}
    for exp in status["experiments"]:
        counts[exp["decision"] or exp["status"]] = counts.get(exp["decision"] or exp["status"], 0) + 1
    print(f"run {run.run_id}: " + ", ".join(f"{n} {d}" for d, n in counts.items()))
    for exp in status["experiments"]:
        effect = exp.get("effect")
        figures = f" {effect['median']:+.1%} [{effect['ci'][0]:+.1%}, {effect['ci'][1]:+.1%}]" if effect else ""
        print(f"  {exp['hypothesis']:<6} {exp['decision'] or exp['status']:<9}{figures}  {exp['reason'] or ''}")
    if status.get("best"):
        print(f"best: {status['best']['hypothesis']} on branch ra/{run.run_id}/best in {shown(run.repo_dir)}")
    print(f"report: {shown(paths['report.md'])}")


def shown(path: Path) -> str:
    """A path as short as it can be: relative to the working directory when it lies under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def show_status(run_dir: Path, as_json: bool) -> None:
    from .status import build_status, status_table

    status = build_status(run_dir)
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        Console().print(status_table(status))


def write_reports(run_dir: Path, quiet: bool = False) -> dict:
    from .report import write_report
    from .rundir import open_run

    open_run(run_dir)  # a clear error for a path that is not a run directory
    paths = write_report(run_dir)
    if not quiet:
        for path in paths.values():
            print(path)
    return {Path(p).name: p for p in paths.values()}


def doctor() -> None:
    """A table of runtimes: always-available ones, then the agent CLIs found (or not) here."""
    import importlib
    import shutil as _shutil

    from rich.table import Table

    table = Table(title="research-agent doctor")
    for column in ("runtime", "usable", "binary", "version", "key", "note"):
        table.add_column(column)
    table.add_row("patch", "yes", _shutil.which("git") or "git missing", "", "", "applies plan diffs with git apply --3way")
    table.add_row("command", "yes", "", "", "", "any agent CLI via --runtime-cmd")
    for module in ("claude_code", "codex"):
        try:
            info = importlib.import_module(f"research_agent.runtimes.{module}").doctor_info()
        except Exception as error:  # a broken runtime module must not hide the others
            info = {"runtime": module, "usable": False, "note": f"error: {error}"}
        table.add_row(
            info.get("runtime", module), "yes" if info.get("usable") else "no", shown(info["binary"]) if info.get("binary") else "not found",
            info.get("version") or "", "present" if info.get("key_present") else "missing", info.get("note", ""),
        )
    Console().print(table)
