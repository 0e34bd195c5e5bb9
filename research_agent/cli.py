"""The command line: thin commands that parse options and call into the package.

Heavy modules are imported inside the commands so `research-agent --help` stays fast.
Exit codes: 0 ok · 1 internal error · 2 usage or bad input · 3 task spec · 4 plan file · 5 target repository ·
6 baseline failed · 7 run directory · 8 no cloud · 9 teardown incomplete · 130 / 143 interrupted (SIGINT / SIGTERM; resumable).
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
plan_app = typer.Typer(help="Inspect, validate, edit and approve plan files.", no_args_is_help=True)
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
BackendOpt = typer.Option(None, "--backend", help="Where experiments run: local | skypilot (default: the task's workers.backend).")
DryrunOpt = typer.Option(False, "--dryrun", help="Write the SkyPilot tasks and the launch plan to RUN_DIR/sky/; launch nothing.")
BudgetOpt = typer.Option(None, "--budget-usd", help="Hard stop for compute + LLM + agent spend, in USD (default: the task's budget_usd).")
# The planner (`optimize` without --plan, `research`): over the task's `planner:` block.
PlannerModelsOpt = typer.Option(None, "--planner-models", help="Model id(s) that write the plan; several (comma-separated) make a fusion panel.")
PlannerJudgeOpt = typer.Option(None, "--planner-judge", help="Judge of the planner panel (default: its first model).")
PlannerModeOpt = typer.Option(None, "--planner-mode", help="Planner panel mode: best-of | merge | debate (default merge).")


def _planner(models: Optional[str], judge: Optional[str], mode: Optional[str]) -> dict:
    from .plan.choose import cli_planner

    return cli_planner(models, judge, mode)


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
    review: bool = typer.Option(False, "--review", help="Stop after writing the plan; review, approve, then `resume`."),
    planner_models: Optional[str] = PlannerModelsOpt,
    planner_judge: Optional[str] = PlannerJudgeOpt,
    planner_mode: Optional[str] = PlannerModeOpt,
    backend: Optional[str] = BackendOpt,
    dryrun: bool = DryrunOpt,
    budget_usd: Optional[float] = BudgetOpt,
) -> None:
    """Baseline, research (unless --plan is given), then the plan's hypotheses, keeping what the gate accepts."""
    from .commands import start_run

    planner = _planner(planner_models, planner_judge, planner_mode)
    overrides = dict(bench=bench, build=build, check=check, metric=metric, direction=direction, runtime=runtime,
                     runtime_cmd=runtime_cmd, parallel=parallel, rounds=rounds, repeats=repeats, min_effect=min_effect)
    start_run(repo_or_task, task, plan, overrides, run_dir, allow_dirty, offline=offline, stop_after_plan=review,
              planner=planner, backend=backend, dryrun=dryrun, budget_usd=budget_usd)


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
    yes: bool = typer.Option(False, "--yes", "-y", help="Run the plan even if it is not approved (status: draft)."),
    backend: Optional[str] = BackendOpt,
    dryrun: bool = DryrunOpt,
    budget_usd: Optional[float] = BudgetOpt,
) -> None:
    """Same as optimize, plan first: `research-agent run PLAN --task TASK`; the plan must be approved (or --yes)."""
    from .commands import start_run
    from .errors import UserError

    if task is None and repo is None:
        raise UserError("run needs --task FILE (or --repo PATH with --bench and --metric)")
    overrides = dict(bench=bench, build=build, check=check, metric=metric, direction=direction, runtime=runtime,
                     runtime_cmd=runtime_cmd, parallel=parallel, rounds=rounds, repeats=repeats, min_effect=min_effect)
    start_run(repo or str(task), task if repo else None, plan, overrides, run_dir, allow_dirty, require_approved=not yes,
              backend=backend, dryrun=dryrun, budget_usd=budget_usd)


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
    planner_models: Optional[str] = PlannerModelsOpt,
    planner_judge: Optional[str] = PlannerJudgeOpt,
    planner_mode: Optional[str] = PlannerModeOpt,
) -> None:
    """Baseline and research only: write plan.md (and research/) for review, then stop."""
    from .commands import start_run

    planner = _planner(planner_models, planner_judge, planner_mode)
    overrides = dict(bench=bench, build=build, check=check, metric=metric, direction=direction)
    start_run(repo_or_task, task, None, overrides, run_dir, allow_dirty, offline=offline, stop_after_plan=True,
              planner=planner)


@app.command()
def resume(
    run_dir: Path = typer.Argument(..., help="Run directory of a killed or interrupted run."),
    task: Optional[Path] = typer.Option(None, "--task", help="Refuse to resume unless the run belongs to this task."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Go on with a reviewed run's plan even if it is not approved."),
) -> None:
    """Continue a killed, interrupted or reviewed run (its plan approved, or --yes); nothing finished is repeated."""
    from .commands import resume_run

    resume_run(run_dir, task, yes)


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
def down(
    run_dir: Optional[Path] = typer.Argument(None, help="Run directory whose workers to remove."),
    everything: bool = typer.Option(False, "--all", help="Everything research-agent ever launched (by ledger and ra- name prefix)."),
) -> None:
    """Remove every cloud worker (cluster, managed job, pool) a run left — e.g. after a kill -9."""
    from .commands import down as run_down

    run_down(run_dir, everything)


@app.command()
def doctor() -> None:
    """Which runtimes are usable here: binary, version, provider key present (never its value)."""
    from .commands import doctor as run_doctor

    run_doctor()


@app.command()
def fuse(
    prompt: Optional[str] = typer.Argument(None, help="The question; - reads it from stdin."),
    models: Optional[str] = typer.Option(None, "--models", help="Panel of 1-8 model ids, comma-separated."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge model (needed for best-of and merge)."),
    mode: str = typer.Option("best-of", "--mode", help="best-of | merge | debate."),
    rounds: int = typer.Option(1, "--rounds", help="Debate: revision rounds."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (default: $RESEARCH_AGENT_BASE_URL, else OpenRouter)."),
    member_timeout: float = typer.Option(120.0, "--member-timeout", help="Seconds per panel member (and per judge call)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the order answers are shown to the judge."),
    one_order: bool = typer.Option(False, "--one-order", help="Best-of: judge one shuffled order only (cheaper; no position-bias check)."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="YAML/JSON price table {model: {input, output}} in USD per 1M tokens."),
) -> None:
    """Ask a panel of models concurrently and fuse the answers (best-of, merge or debate)."""
    from .fuse_command import run_fuse

    run_fuse(prompt, models, judge, mode, rounds, as_json, base_url, member_timeout, seed, one_order, prices)


@plan_app.command("validate")
def plan_validate(plan: Path = typer.Argument(..., help="Plan file.")) -> None:
    """Check a plan file; errors name the line."""
    from .plan import load_plan

    parsed = load_plan(plan)
    with_diff = sum(1 for h in parsed.hypotheses if h.has_patch)
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


@plan_app.command("edit")
def plan_edit(plan: Path = typer.Argument(..., help="Plan file.")) -> None:
    """Open the plan in $EDITOR; it is validated on save and reopened while invalid (quit without saving to stop)."""
    from .plan.review import edit_plan

    parsed = edit_plan(plan)
    print(f"{plan}: ok — {len(parsed.hypotheses)} hypotheses, status {parsed.status}")


@plan_app.command("approve")
def plan_approve(plan: Path = typer.Argument(..., help="Plan file.")) -> None:
    """Mark a plan approved (status: approved), so `run` and `resume` go on with it."""
    from .plan.review import approve_plan

    parsed = approve_plan(plan)
    print(f"{plan}: approved — {len(parsed.hypotheses)} hypotheses")


if __name__ == "__main__":
    main()
