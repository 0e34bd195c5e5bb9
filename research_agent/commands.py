"""What the CLI commands do, kept out of cli.py so the CLI stays thin and imports stay lazy."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from rich.console import Console

from .errors import TargetError, UserError
from .ledger import RunStatus

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
        if candidate.is_dir() and not (basics["bench"] or basics["metric"]):
            return apply_overrides(_task_in_directory(candidate, repo_or_task), **overrides)
        task = task_from_repo(repo_or_task, **{k: v for k, v in basics.items() if v is not None})
    return apply_overrides(task, **overrides)


def _task_in_directory(folder: Path, shown: str):
    """DIR/task.yaml (as `init` writes it), else what `init` would detect, said in two lines."""
    from .init_task import task_for_directory
    from .task import load_task

    if (folder / "task.yaml").is_file():
        err.print(f"task: {folder / 'task.yaml'}", markup=False)
        return load_task(folder / "task.yaml")
    return task_for_directory(shown, lambda line: err.print(line, markup=False))  # bench names may hold [brackets]


def start_run(repo_or_task: str, task_file: Path | None, plan_file: Path | None, overrides: dict, run_dir: Path | None,
              allow_dirty: bool, offline: bool = False, stop_after_plan: bool = False, planner: dict | None = None,
              require_approved: bool = False, backend: str | None = None, dryrun: bool = False,
              budget_usd: float | None = None) -> None:
    """`planner`: the --planner-* options given (see plan.choose.cli_planner); `require_approved`: refuse
    a --plan that is not approved (`run` without --yes)."""
    from . import rundir
    from .plan import load_plan
    from .plan.choose import check_planner, merge_planner

    task = load_task_for(repo_or_task, task_file, overrides)
    task = _with_backend(task, backend, dryrun, budget_usd)
    if planner:
        task = task.model_copy(update={"planner": merge_planner(task.planner, planner)})
    plan = None
    if plan_file is not None:
        plan = load_plan(plan_file)
        if require_approved:
            from .plan.review import require_approved as check_approved

            check_approved(plan, str(plan_file), False, "pass --yes to run it as it is")
        if not any(h.status in ("pending", "running") for h in plan.hypotheses):
            raise UserError(f"{plan_file}: no pending hypothesis to try")
    else:
        check_planner(task, offline, explicit=bool(planner))  # before the baseline: a bad planner fails fast
    path = run_dir or rundir.default_run_dir(task)
    options = {"offline": offline, "stop_after_plan": stop_after_plan, "planner_explicit": bool(planner)}
    if budget_usd is not None:
        options["budget_usd"] = budget_usd
    if dryrun:
        options["dryrun"] = True
    run, notice = rundir.create(task, plan, path, allow_dirty, options)
    if notice:
        err.print(f"note: {notice}")
    err.print(f"run {run.run_id} in {shown(path)}")
    if dryrun:
        _dry_run(run)
        return
    _execute(run)


def _with_backend(task, backend: str | None, dryrun: bool, budget_usd: float | None):
    """The task with --backend applied (that backend's options from the task, else its defaults)."""
    if budget_usd is not None and budget_usd <= 0:
        raise UserError(f"--budget-usd must be positive, got {budget_usd}")
    from .backends import REMOTE_BACKENDS, backend_kind

    if backend is not None:
        backend_kind(backend)  # an unknown name: one line naming the registered ones
    if backend is not None and backend != task.workers.backend:
        from .task import Workers

        task = task.model_copy(update={"workers": Workers(backend=backend)})
    kind = backend_kind(task.workers.backend)
    if dryrun and not kind.remote:
        raise UserError(f"--dryrun shows what a cloud run would launch: use it with --backend {' or '.join(REMOTE_BACKENDS)}")
    return kind.prepare_task(task)


def _dry_run(run) -> None:
    """Write every SkyPilot task the run would launch and print the launch plan; launch nothing."""
    from .backends import make_backend

    written, lines = make_backend(run).dry_run()
    run.ledger.update_run(status=RunStatus.DRYRUN)
    run.ledger.event("dryrun", f"dry run: {len(written)} SkyPilot task(s) written, nothing launched")
    print("SkyPilot tasks written (each validated with sky.Task.from_yaml):")
    for path in written:
        print(f"  {shown(path)}")
    for line in lines:
        print(line)
    print(f"launch it: research-agent resume {shlex.quote(shown(run.path))}")


def resume_run(run_dir: Path, task_file: Path | None, yes: bool = False) -> None:
    from . import rundir
    from .task import load_task

    check = load_task(task_file) if task_file else None
    run = rundir.open_run(run_dir, check)
    state = run.ledger.run_status()
    if state == RunStatus.DONE:
        err.print(f"run {run.run_id} is already finished; rewriting its report")
        write_reports(run_dir)
        return
    if state == RunStatus.PLANNED:  # the plan was reviewed: go on to the experiments, if it was approved
        from .plan.review import require_approved

        require_approved(run.plan, shown(run.plan_path), yes, "pass --yes to run it as it is")
        options = {**run.ledger.options(), "stop_after_plan": False}
        run.ledger.update_run(options=json.dumps(options))
    err.print(f"resuming run {run.run_id} ({state})")
    _execute(run)


def _execute(run) -> None:
    from .backends import make_backend
    from .orchestrator import Interrupted, Orchestrator
    from .view import live

    # The backend says what it does through the orchestrator's notifier, which the live view replaces.
    backend = make_backend(run, notify=lambda line: orchestrator.notify(line))
    if run.ledger.options().get("ablate"):
        from .ablation import Ablation as Orchestrator  # noqa: N814 — same loop, two arms
    orchestrator = Orchestrator(run, backend)
    try:
        with live(orchestrator, err):
            orchestrator.execute()
    except Interrupted as stop:
        err.print(f"interrupted ({stop}); workers removed, ledger saved. Continue with:")
        err.print(f"  research-agent resume {shlex.quote(shown(run.path))}")
        sys.exit(128 + stop.signum)
    if run.ledger.run_status() == RunStatus.PLANNED:
        where = shown(run.path)
        plan_file = shlex.quote(f"{where}/plan.md")
        print(f"plan written: {where}/plan.md (sources: {where}/research/sources.json)")
        print(f"  review:   research-agent plan show {plan_file}")
        print(f"  edit:     research-agent plan edit {plan_file}")
        print(f"  approve:  research-agent plan approve {plan_file}")
        print(f"  continue: research-agent resume {shlex.quote(where)}")
        return
    paths = write_reports(run.path, quiet=True)
    if run.ledger.options().get("ablate"):
        from .ablation_report import summary_lines

        for line in summary_lines(run.path):
            print(line)
        return
    _summary(run, paths)


def _summary(run, paths: dict) -> None:
    from .status import build_status, fmt_effect

    status = build_status(run.path)
    counts: dict[str, int] = {}
    for exp in status["experiments"]:  # kept ones are counted once, below; a combine step's outcome is that count
        if exp["decision"] != "kept" and exp.get("kind") != "combine":
            counts[exp["decision"] or exp["status"]] = counts.get(exp["decision"] or exp["status"], 0) + 1
    parts = ([status["kept"]["summary"]] if status["kept"]["in_best"] or status["kept"]["dropped"] else []) + \
        [f"{n} {d}" for d, n in counts.items()]
    print(f"run {run.run_id}: " + (", ".join(parts) or "nothing tried"))
    for exp in status["experiments"]:
        effect = exp.get("effect")
        figures = f" {fmt_effect(effect)}" if effect else ""
        print(f"  {exp['hypothesis']:<6} {exp['decision'] or exp['status']:<9}{figures}  {exp['reason'] or ''}")
    if status.get("best"):
        print(f"best: {status['best']['hypothesis']} on branch ra/{run.run_id}/best in {shown(run.repo_dir)}")
    print(f"report: {shown(paths['report.md'])}")


def shown(path: Path | str) -> str:
    """A path as short as it can be: relative to the working directory when it lies under it."""
    from .report import display_path

    return display_path(Path(path))


def show_status(run_dir: Path, as_json: bool) -> None:
    from .status import build_status, status_table

    status = build_status(run_dir)
    if as_json:
        print(json.dumps(status, indent=2))
    elif Console().is_terminal:
        console = Console()
        console.print(status_table(status, console.width))
    else:  # a pipe or a file: plain lines without the padding rich adds to fill the width
        console = Console()
        with console.capture() as captured:
            console.print(status_table(status, console.width))
        print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def write_reports(run_dir: Path, quiet: bool = False) -> dict:
    from .report import write_report
    from .rundir import open_run

    run = open_run(run_dir)  # a clear error for a path that is not a run directory
    if run.ledger.options().get("ablate"):
        from .ablation_report import write_ablation_report

        paths = write_ablation_report(run_dir)
    else:
        paths = write_report(run_dir)
    if not quiet:
        for path in paths.values():
            print(path)
    return {Path(p).name: p for p in paths.values()}


def apply_result(run_dir: Path, repo: Path | None, branch: str | None) -> None:
    from .apply import apply_run

    applied = apply_run(run_dir, repo, branch)
    onto = "the run's base commit" if applied.onto == "base" else "HEAD"
    print(f"branch {applied.branch} in {shown(applied.repo)}: {len(applied.commits)} commit(s) on {onto} ({applied.base[:12]})")
    for sha, subject in applied.commits:
        print(f"  {sha[:12]} {subject}")
    print(f"  look:  git -C {shlex.quote(shown(applied.repo))} log --stat {applied.base[:12]}..{shlex.quote(applied.branch)}")


def open_pr(run_dir: Path, repo: Path | None, remote: str, github_repo: str | None, base: str | None, split: bool,
            branch: str | None) -> None:
    from .pr import open_pull_requests

    for pr in open_pull_requests(run_dir, repo, remote, github_repo, base, split, branch):
        print(f"pull request #{pr.number}: {pr.url} ({pr.branch} → {pr.base})")
        if pr.stacked:
            print(f"  stacked: {pr.stacked}")


def doctor() -> None:
    """A table of runtimes: always-available ones, the fence, the backends, then the agent CLIs found (or not) here."""
    import importlib
    import shutil as _shutil

    from rich.table import Table

    from .backends import BACKENDS
    from .runtimes import RUNTIMES

    table = Table(title="research-agent doctor")
    for column in ("runtime", "usable", "binary", "version", "key", "note"):
        table.add_column(column)
    for name, kind in RUNTIMES.items():
        if not kind.doctor:
            binary = (_shutil.which(kind.needs) or f"{kind.needs} missing") if kind.needs else ""
            table.add_row(name, "yes", binary, "", "", kind.note)
    from .fence import available as fence_available

    mechanism = fence_available()
    table.add_row("fence", "yes" if mechanism else "no", mechanism or "", "", "",
                  "" if mechanism else "apt-get install bubblewrap")
    for name, backend in BACKENDS.items():
        if not backend.doctor:
            continue
        try:
            info = backend.doctor_info()
        except Exception as error:  # noqa: BLE001 — a backend row must not hide the runtimes
            info = {"runtime": f"{name} backend", "usable": False, "note": f"error: {error}"}
        table.add_row(info["runtime"], "yes" if info.get("usable") else "no", "", info.get("version") or "", "", info.get("note", ""))
    for name, kind in RUNTIMES.items():
        if not kind.doctor:
            continue
        module = kind.module.rsplit(".", 1)[-1]
        try:
            info = importlib.import_module(kind.module).doctor_info()
        except Exception as error:  # a broken runtime module must not hide the others
            info = {"runtime": module, "usable": False, "note": f"error: {error}"}
        table.add_row(
            info.get("runtime", module), "yes" if info.get("usable") else "no", shown(info["binary"]) if info.get("binary") else "not found",
            info.get("version") or "", "present" if info.get("key_present") else "missing", info.get("note", ""),
        )
    Console().print(table)


def down(run_dir: Path | None, everything: bool) -> None:
    """Remove what a run (or, with --all, this tool anywhere) left running."""
    from .backends.skypilot import down_command

    if run_dir is None and not everything:
        raise UserError("down needs RUN_DIR, or --all for everything research-agent launched")
    from .backends.skypilot import TeardownIncomplete

    try:
        lines = down_command(run_dir, everything)
    except TeardownIncomplete as error:
        for line in error.lines:
            print(line)
        raise
    for line in lines:
        print(line)


def ablate(task_or_repo: str, overrides: dict, run_dir: Path | None, allow_dirty: bool, offline: bool, planner: dict | None,
           backend: str | None, dryrun: bool, budget_usd: float | None, experiments: int | None, seeds: int) -> None:
    """Two arms (research, control) from one shared baseline; see ablation.py."""
    from . import rundir
    from .ablation import check_runtime
    from .plan.choose import check_planner, merge_planner

    if budget_usd is not None and experiments is not None:
        raise UserError("ablate compares at equal budget or at equal experiments: give --budget-usd or --experiments, not both")
    if experiments is not None and experiments < 1:
        raise UserError(f"--experiments must be at least 1, got {experiments}")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    task = load_task_for(task_or_repo, None, overrides)
    task = _with_backend(task, backend, dryrun, budget_usd)
    if planner:
        task = task.model_copy(update={"planner": merge_planner(task.planner, planner)})
    check_runtime(task)
    check_planner(task, offline, explicit=bool(planner))
    default = rundir.default_run_dir(task)
    path = run_dir or default.with_name(f"ablate-{default.name}")
    options = {"offline": offline, "planner_explicit": bool(planner),
               "ablate": {"seeds": seeds, "experiments": experiments, "budget_usd": budget_usd}}
    if dryrun:
        options["dryrun"] = True
    run, notice = rundir.create(task, None, path, allow_dirty, options)
    if notice:
        err.print(f"note: {notice}")
    err.print(f"ablation {run.run_id} in {shown(path)}: research vs control, {seeds} seed(s), "
              + (f"${budget_usd:g} per arm" if budget_usd else f"{experiments} experiment(s) per arm" if experiments
                 else "as many experiments per arm as the research arm's plan holds"))
    if dryrun:
        _dry_run(run)
        return
    _execute(run)
