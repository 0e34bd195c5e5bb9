"""The command line: thin commands that parse options and call into the package.

Heavy modules are imported inside the commands so `research-agent --help` stays fast.
Exit codes: 0 ok · 1 internal error · 2 usage or bad input · 3 task spec · 4 plan file · 5 target repository ·
6 baseline failed · 7 run directory · 130 / 143 interrupted (SIGINT / SIGTERM; resumable).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Read first, then optimize: baseline, plan, parallel experiments, a statistical gate, a report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_app = typer.Typer(help="Inspect and validate plan files.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")

# Options shared by `optimize` and `run`.
TaskOpt = typer.Option(None, "--task", help="Task spec (YAML).")
BenchOpt = typer.Option(None, "--bench", help="Benchmark command (prints METRIC name=value).")
BuildOpt = typer.Option(None, "--build", help="Build command.")
CheckOpt = typer.Option(None, "--check", help="Correctness check command.")
MetricOpt = typer.Option(None, "--metric", help="Metric name to gate on.")
DirectionOpt = typer.Option(None, "--direction", help="max or min.")
RuntimeOpt = typer.Option(None, "--runtime", help="patch | command | claude-code | codex.")
RuntimeCmdOpt = typer.Option(None, "--runtime-cmd", help="Agent command for the command runtime; {brief} and {workdir} are filled in.")
ParallelOpt = typer.Option(None, "--parallel", help="Experiments at once.")
RoundsOpt = typer.Option(None, "--rounds", help="Rounds of experiments.")
RepeatsOpt = typer.Option(None, "--repeats", help="Benchmark pairs per experiment before the first look.")
MinEffectOpt = typer.Option(None, "--min-effect", help="Smallest relative gain worth keeping (0.01 = 1%).")
RunDirOpt = typer.Option(None, "--run-dir", help="Run directory (default: runs/<task>-<time>).")
AllowDirtyOpt = typer.Option(False, "--allow-dirty", help="Start from a snapshot of uncommitted changes.")
OfflineOpt = typer.Option(False, "--offline", help="Research from the cache and local sources only: no network.")


def main() -> None:
    """Console entry point: user errors become one line on stderr and a documented exit code."""
    from .errors import UserError

    try:
        app()  # typer handles usage errors itself (exit 2)
    except UserError as error:
        _fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as error:  # a bug of ours: one line, the traceback only on request
        import os

        if os.environ.get("RESEARCH_AGENT_DEBUG"):
            raise
        _fail(f"internal error: {type(error).__name__}: {error} (set RESEARCH_AGENT_DEBUG=1 for the traceback)", 1)


def _fail(message: str, code: int) -> None:
    print(f"research-agent: {message}", file=sys.stderr)
    sys.exit(code)


@app.command()
def optimize(
    repo_or_task: str = typer.Argument(..., help="A task spec (YAML) or a repository path / git URL."),
    plan: Optional[Path] = typer.Option(None, "--plan", help="Plan file of hypotheses to try."),
    task: Optional[Path] = TaskOpt,
    bench: Optional[str] = BenchOpt,
    build: Optional[str] = BuildOpt,
    check: Optional[str] = CheckOpt,
    metric: Optional[str] = MetricOpt,
    direction: Optional[str] = DirectionOpt,
    runtime: Optional[str] = RuntimeOpt,
    runtime_cmd: Optional[str] = RuntimeCmdOpt,
    parallel: Optional[int] = ParallelOpt,
    rounds: Optional[int] = RoundsOpt,
    repeats: Optional[int] = RepeatsOpt,
    min_effect: Optional[float] = MinEffectOpt,
    run_dir: Optional[Path] = RunDirOpt,
    allow_dirty: bool = AllowDirtyOpt,
    offline: bool = OfflineOpt,
) -> None:
    """Baseline, research (unless --plan is given), then the plan's hypotheses, keeping what the gate accepts."""
    from .commands import start_run

    overrides = dict(bench=bench, build=build, check=check, metric=metric, direction=direction, runtime=runtime,
                     runtime_cmd=runtime_cmd, parallel=parallel, rounds=rounds, repeats=repeats, min_effect=min_effect)
    start_run(repo_or_task, task, plan, overrides, run_dir, allow_dirty, offline=offline)


@app.command("run")
def run_plan(
    plan: Path = typer.Argument(..., help="Plan file of hypotheses."),
    task: Optional[Path] = TaskOpt,
    repo: Optional[str] = typer.Option(None, "--repo", help="Target repository (instead of the task's)."),
    bench: Optional[str] = BenchOpt,
    build: Optional[str] = BuildOpt,
    check: Optional[str] = CheckOpt,
    metric: Optional[str] = MetricOpt,
    direction: Optional[str] = DirectionOpt,
    runtime: Optional[str] = RuntimeOpt,
    runtime_cmd: Optional[str] = RuntimeCmdOpt,
    parallel: Optional[int] = ParallelOpt,
    rounds: Optional[int] = RoundsOpt,
    repeats: Optional[int] = RepeatsOpt,
    min_effect: Optional[float] = MinEffectOpt,
    run_dir: Optional[Path] = RunDirOpt,
    allow_dirty: bool = AllowDirtyOpt,
) -> None:
    """Same as optimize, plan first: `research-agent run PLAN --task TASK`."""
    from .commands import start_run
    from .errors import UserError

    if task is None and repo is None:
        raise UserError("run needs --task FILE (or --repo PATH with --bench and --metric)")
    overrides = dict(bench=bench, build=build, check=check, metric=metric, direction=direction, runtime=runtime,
                     runtime_cmd=runtime_cmd, parallel=parallel, rounds=rounds, repeats=repeats, min_effect=min_effect)
    start_run(repo or str(task), task if repo else None, plan, overrides, run_dir, allow_dirty)


@app.command()
def research(
    repo_or_task: str = typer.Argument(..., help="A task spec (YAML) or a repository path / git URL."),
    task: Optional[Path] = TaskOpt,
    bench: Optional[str] = BenchOpt,
    build: Optional[str] = BuildOpt,
    check: Optional[str] = CheckOpt,
    metric: Optional[str] = MetricOpt,
    direction: Optional[str] = DirectionOpt,
    run_dir: Optional[Path] = RunDirOpt,
    allow_dirty: bool = AllowDirtyOpt,
    offline: bool = OfflineOpt,
) -> None:
    """Baseline and research only: write plan.md (and research/) for review, then stop."""
    from .commands import start_run

    overrides = dict(bench=bench, build=build, check=check, metric=metric, direction=direction)
    start_run(repo_or_task, task, None, overrides, run_dir, allow_dirty, offline=offline, stop_after_plan=True)


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="Run directory of a killed or interrupted run."),
    task: Optional[Path] = typer.Option(None, "--task", help="Refuse to resume unless the run belongs to this task."),
) -> None:
    """Continue a killed or interrupted run; finished experiments are not repeated."""
    from .commands import resume_run

    resume_run(run_dir, task)


@app.command()
def status(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show a run's state (readable while it runs)."""
    from .commands import show_status

    show_status(run_dir, as_json)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="Run directory.")) -> None:
    """(Re)write report.md, report.html, progress.png and IMPROVEMENTS.md."""
    from .commands import write_reports

    write_reports(run_dir)


@app.command()
def doctor() -> None:
    """Which runtimes are usable here: binary, version, provider key present (never its value)."""
    from .commands import doctor as run_doctor

    run_doctor()


@plan_app.command("validate")
def plan_validate(plan: Path = typer.Argument(..., help="Plan file.")) -> None:
    """Check a plan file; errors name the line."""
    from .plan import load_plan

    parsed = load_plan(plan)
    with_diff = sum(1 for h in parsed.hypotheses if h.diff)
    print(f"{plan}: ok — {len(parsed.hypotheses)} hypotheses ({with_diff} with a diff), {len(parsed.sources)} sources, status {parsed.status}")


@plan_app.command("show")
def plan_show(plan: Path = typer.Argument(..., help="Plan file.")) -> None:
    """Show a plan's hypotheses, sources and status as a table."""
    from rich.console import Console

    from .plan import load_plan
    from .plan.show import plan_table

    parsed = load_plan(plan)
    console = Console()
    console.print(f"[bold]{parsed.objective}[/] — metric {parsed.metric or '?'} ({parsed.direction}), plan {parsed.status}")
    console.print(plan_table(parsed))


if __name__ == "__main__":
    main()
