"""One experiment, start to finish, inside two checkouts (base and candidate) on one worker.

(noise check of a fresh worker) → runtime edits the candidate → commit → protected-path check →
clean builds → identical-build short cut → checks → interleaved A/B benchmark with the sequential
gate and its guards → holdout benchmarks. Backend-agnostic: the local backend calls it with git
worktrees; a cloud worker can call it the same way on its VM.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pathspec

from . import build_outputs, git, proc
from .fence import Fence, WriteBlocked
from .gate import HOLDOUT_ALPHA, Bound, Check, SequentialGate, pair_orders, parse_metric, parse_metrics
from .noise import base_vs_base
from .runtimes.base import Brief, Runtime, RuntimeResult


@dataclass
class Commands:
    build: str | None
    check: str | None
    bench: str
    metric: str
    regex: str | None
    direction: str
    build_timeout: float
    check_timeout: float
    bench_timeout: float
    format: str | None = None  # metric_formats: the bench tool's own output, beside METRIC lines
    fence: dict | None = None  # research_agent.fence.Fence.to_spec(): build, check and bench run confined; None = unconfined


@dataclass
class HoldoutBench:
    command: str   # run from the worktree root, with $RA_HOLDOUT_DIR set
    bound: Bound   # its metric, direction and max_regression
    regex: str | None = None


@dataclass
class Holdout:
    benches: list[HoldoutBench]
    directory: str  # the holdout files on this worker ($RA_HOLDOUT_DIR)

    def to_spec(self) -> dict:
        return {"directory": self.directory, "benches": [{"command": b.command, "regex": b.regex,
                                                          "bound": dataclasses.asdict(b.bound)} for b in self.benches]}

    @classmethod
    def from_spec(cls, spec: dict) -> Holdout:
        return cls([HoldoutBench(b["command"], Bound(**b["bound"]), b.get("regex")) for b in spec["benches"]],
                   spec["directory"])


@dataclass
class NoiseCheck:
    """Base-vs-base pairs on a worker before its first experiment (noise.base_vs_base)."""
    pairs: int
    bound: float
    stop_if_noisy: bool = False  # the backend replaces noisy workers: stop before the runtime runs


# Called with (bench, arm, index, metrics): every METRIC of a run plus rss_mb and cpu_s.
OnMetrics = Callable[[str, str, int, dict], None]


@dataclass
class Job:
    exp_id: str
    title: str
    brief: Brief
    commands: Commands
    protected: list[str]
    gate: SequentialGate
    exp_dir: Path
    seed: int = 0
    # Called with (arm, index, value, seconds) as soon as a sample exists, so none is lost on a crash.
    on_sample: Callable[[str, int, float, float], None] | None = None
    on_phase: Callable[[str], None] | None = None
    holdout: Holdout | None = None
    noise: NoiseCheck | None = None
    on_metrics: OnMetrics | None = None


@dataclass
class JobResult:
    decision: str  # kept | discarded | failed | rejected | stopped
    reason: str
    effect: dict | None = None
    cand_commit: str | None = None
    changed: list[str] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    cand: list[float] = field(default_factory=list)
    runtime: RuntimeResult | None = None
    checks: dict = field(default_factory=dict)  # guards, holdout, build: what decided besides the main metric
    noise: dict | None = None  # the worker's noise check, when this job ran one


@dataclass
class BaselineJob:
    commands: Commands
    repeats: int
    log: Path
    on_sample: Callable[[int, float, float], None] | None = None  # (index, value, seconds)
    profile: str | None = None  # the task's profile command, run after the benchmark
    profile_timeout: float = 900
    on_metrics: OnMetrics | None = None


@dataclass
class BaselineResult:
    values: list[float] = field(default_factory=list)
    failure: str | None = None  # one line: what failed, e.g. "build failed (exit 2): ..."
    profile: str | None = None


def measure_baseline(workdir: Path, job: BaselineJob) -> BaselineResult:
    """Clean build, check, `repeats` benchmark runs and the optional profile, in one checkout."""
    try:
        return _measure_baseline(workdir, job)
    except WriteBlocked as blocked:
        return BaselineResult(failure=f"{blocked} (name the path in workers.writable if the build needs it)")


def _measure_baseline(workdir: Path, job: BaselineJob) -> BaselineResult:
    commands, log = job.commands, job.log
    failure = clean_build(workdir, commands, log)
    if failure:
        return BaselineResult(failure=f"{failure} — nothing to compare against")
    if commands.check:
        result = run_command(commands, commands.check, workdir, commands.check_timeout, log)
        if not result.ok:
            return BaselineResult(failure=describe_failure("check", result, commands.check_timeout))
    outcome = BaselineResult()
    for index in range(job.repeats):
        run = run_bench(workdir, commands, log)
        if run.failure:
            return BaselineResult(outcome.values, run.failure)
        outcome.values.append(run.value)
        if job.on_metrics:
            job.on_metrics("bench", "baseline", index, run.metrics)
        if job.on_sample:
            job.on_sample(index, run.value, run.seconds)
    if job.profile:
        outcome.profile = run_command(commands, job.profile, workdir, job.profile_timeout, log).output
    return outcome


def execute(job: Job, runtime: Runtime, base_dir: Path, cand_dir: Path, message: str) -> JobResult:
    phase = job.on_phase or (lambda _name: None)
    log = job.exp_dir / "experiment.log"

    noise = None
    if job.noise:
        phase("noise")
        noise, failure = check_noise(base_dir, job, log)
        if failure:
            return JobResult("failed", f"noise check: base {failure}", noise=noise)
        if noise["noisy"] and job.noise.stop_if_noisy:
            return JobResult("noisy", f"worker too noisy: paired noise {noise['noise']:.2%} > {noise['bound']:.2%}", noise=noise)

    try:
        result = _execute(job, runtime, base_dir, cand_dir, message, log, phase)
    except WriteBlocked as blocked:  # a build, check or bench (a patch can change the Makefile) hit the fence
        result = JobResult("rejected", str(blocked), checks={"blocked": [blocked.path]})
    result.noise = noise
    return result


def _execute(job: Job, runtime: Runtime, base_dir: Path, cand_dir: Path, message: str, log: Path, phase) -> JobResult:
    phase("runtime")
    outcome = runtime.apply(cand_dir, job.brief)
    if proc.stopping():
        return JobResult("stopped", "interrupted", runtime=outcome)
    if outcome.details.get("rejected"):  # e.g. the agent wrote outside its worktree
        return JobResult("rejected", outcome.reason or "runtime broke a constraint", runtime=outcome)
    if not outcome.ok:
        return JobResult("failed", outcome.reason or "runtime failed", runtime=outcome)

    commit, changed = commit_candidate(cand_dir, message)
    if not changed:
        return JobResult("failed", "no change", runtime=outcome)
    (job.exp_dir / "patch.diff").write_text(git.in_worktree(cand_dir, "diff", "HEAD~1", "HEAD", strip=False), encoding="utf-8")  # unstripped: a last context line may be " "
    touched = protected_touched(changed, job.protected)
    if touched:
        return JobResult("rejected", f"protected path touched: {', '.join(touched)}", cand_commit=commit, changed=changed, runtime=outcome)

    phase("build")
    build_outputs.mark_unread(cand_dir, changed)
    for arm, workdir in (("base", base_dir), ("candidate", cand_dir)):
        failure = clean_build(workdir, job.commands, log)
        if failure:
            return JobResult("failed", f"{arm} {failure}", cand_commit=commit, changed=changed, runtime=outcome)
    same = build_outputs.identical(base_dir, cand_dir, changed) if job.commands.build else 0
    if same:
        return JobResult("discarded", f"identical build output: base and candidate built the same {same} file(s); "
                         "not benchmarked (0 pairs)", cand_commit=commit, changed=changed, runtime=outcome,
                         checks={"build": {"identical": True, "outputs": same}})

    if job.commands.check:
        phase("check")
        result = run_command(job.commands, job.commands.check, cand_dir, job.commands.check_timeout, log)
        if not result.ok:
            return JobResult("failed", describe_failure("check", result, job.commands.check_timeout), cand_commit=commit, changed=changed, runtime=outcome)

    phase("bench")
    return benchmark(job, base_dir, cand_dir, log, commit, changed, outcome)


def benchmark(job: Job, base_dir: Path, cand_dir: Path, log: Path, commit: str, changed: list[str], outcome: RuntimeResult) -> JobResult:
    """Interleaved A/B pairs, order randomized per pair, until the sequential gate (with its guards,
    on the same pairs) decides; a keep must then pass the holdout benchmarks too."""
    rng = random.Random(job.seed)

    samples: dict[str, list[float]] = {"base": [], "cand": []}
    guards = {g.bound.name: ([], []) for g in job.gate.guards}  # name -> (base, cand) of the same runs
    dirs = {"base": base_dir, "cand": cand_dir}

    def result(decision: str, reason: str, effect=None, checks=None) -> JobResult:
        return JobResult(decision, reason, effect, commit, changed, samples["base"], samples["cand"], outcome, checks or {})

    while True:
        more = job.gate.next_batch(len(samples["cand"]))
        if more <= 0:
            break
        for order in pair_orders(more, rng):
            for arm in order:
                run = run_bench(dirs[arm], job.commands, log)
                where = "base" if arm == "base" else "candidate"
                if run.failure:
                    return result("failed", f"bench failed on {where}: {run.failure}")
                index = len(samples[arm])
                if job.on_metrics:
                    job.on_metrics("bench", arm, index, run.metrics)
                for name, values in guards.items():
                    if run.metrics.get(name) is None:
                        return result("failed", f"bench failed on {where}: no value for guard '{name}' in the output")
                    values[arm == "cand"].append(run.metrics[name])
                samples[arm].append(run.value)
                if job.on_sample:
                    job.on_sample(arm, index, run.value, run.seconds)
        try:
            verdict = job.gate.decide(samples["base"], samples["cand"], guards)
        except ValueError as error:  # e.g. a zero or negative metric: no relative effect exists
            return result("failed", f"gate: {error}")
        if verdict.action != "more":
            break
    effect = verdict.effect.to_dict() if verdict.effect else None
    checks = {"guards": [c.to_dict() for c in verdict.checks]} if verdict.checks else {}
    if verdict.action != "keep":
        return result("discarded", verdict.reason, effect, checks)
    if job.holdout:
        held, failure = run_holdout(job, dirs, log, rng)
        checks["holdout"] = [c.to_dict() for c in held]
        if failure:
            return result("failed", f"holdout {failure}", effect, checks)
        lost = next((c for c in held if c.status != "pass"), None)
        if lost:
            return result("discarded", f"holdout {lost.describe()} (main effect {_signed(effect['median'])})", effect, checks)
        verdict = dataclasses.replace(verdict, reason=verdict.reason + "; holdout " + ", ".join(
            f"{c.name} {_signed(c.change)}" for c in held))
    return result("kept", verdict.reason, effect, checks)


def run_holdout(job: Job, dirs: dict[str, Path], log: Path, rng: random.Random) -> tuple[list[Check], str | None]:
    """Each holdout benchmark in interleaved pairs until its non-inferiority test decides (the main
    gate's looks); stops at the first that is not shown within its bound. (checks, failure line)."""
    env = {"RA_HOLDOUT_DIR": job.holdout.directory}
    checks: list[Check] = []
    for number, bench in enumerate(job.holdout.benches, 1):
        test = job.gate.non_inferiority(bench.bound, HOLDOUT_ALPHA)
        commands = dataclasses.replace(job.commands, bench=bench.command, metric=bench.bound.name, regex=bench.regex)
        values: dict[str, list[float]] = {"base": [], "cand": []}
        check = None
        while (more := job.gate.next_batch(len(values["cand"]))) > 0:
            for order in pair_orders(more, rng):
                for arm in order:
                    run = run_bench(dirs[arm], commands, log, env)
                    if run.failure:
                        return checks, f"bench {number} failed on {'base' if arm == 'base' else 'candidate'}: {run.failure}"
                    if job.on_metrics:
                        job.on_metrics(f"holdout-{number}", arm, len(values[arm]), run.metrics)
                    values[arm].append(run.value)
            try:
                check = test.assess(values["base"], values["cand"])
            except ValueError as error:
                return checks, f"bench {number}: {error}"
            if check.status != "open":
                break
        checks.append(check)
        if check.status != "pass":
            break
    return checks, None


def check_noise(base_dir: Path, job: Job, log: Path) -> tuple[dict | None, str | None]:
    """Paired noise of this worker: `pairs` pairs of base-vs-base runs of one clean build."""
    failure = clean_build(base_dir, job.commands, log)
    if failure:
        return None, failure
    runs: dict[str, list[float]] = {"first": [], "second": []}
    for index in range(job.noise.pairs):
        for arm, values in runs.items():
            run = run_bench(base_dir, job.commands, log)
            if run.failure:
                return None, f"bench {run.failure}"
            values.append(run.value)
            if job.on_metrics:
                job.on_metrics("noise", arm, index, run.metrics)
    try:
        noise = base_vs_base(runs["first"], runs["second"]).sigma
    except ValueError:  # zero or negative values: no relative noise to speak of
        noise = None
    return {"pairs": job.noise.pairs, "noise": noise, "bound": job.noise.bound,
            "noisy": noise is not None and noise > job.noise.bound}, None


@dataclass
class BenchRun:
    value: float          # the metric the gate decides on (0.0 when the run failed)
    seconds: float
    failure: str | None   # one line, or None
    metrics: dict = field(default_factory=dict)  # every METRIC printed, plus rss_mb / cpu_s from the OS


def run_bench(workdir: Path, commands: Commands, log: Path, env: dict | None = None) -> BenchRun:
    """One benchmark run. A run without the metric is a failure, never a zero."""
    result = run_command(commands, commands.bench, workdir, commands.bench_timeout, log, env=env, usage=True)
    if not result.ok:
        return BenchRun(0.0, result.seconds, describe_failure("bench", result, commands.bench_timeout))
    metrics = parse_metrics(result.output)
    if commands.format is not None:
        from . import metric_formats

        metrics = {**metric_formats.parse(result.output, commands.format), **metrics}  # METRIC lines win
    if result.usage is not None:
        metrics.update(result.usage.metrics())  # measured, not printed: the benchmark cannot set these
    value = metrics.get(commands.metric) if commands.regex is None else parse_metric(result.output, commands.metric, commands.regex)
    if value is None:
        return BenchRun(0.0, result.seconds, f"no metric '{commands.metric}' in the output", metrics)
    return BenchRun(value, result.seconds, None, metrics)


def run_command(commands: Commands, line: str, workdir: Path, timeout: float, log: Path, env: dict | None = None,
                usage: bool = False) -> proc.Result:
    """One of the task's commands in `workdir`, inside the fence when the run has one. A write the
    fence stopped raises WriteBlocked: the experiment is rejected, whatever the command's exit."""
    fence = Fence.from_spec(commands.fence)
    confined = fence.confine([workdir]) if fence else None
    result = proc.run(line, cwd=workdir, timeout=timeout, log_path=log, env=env, usage=usage, fence=confined)
    if result.blocked:
        raise WriteBlocked(result.blocked[0])
    return result


def _signed(x: float) -> str:
    return f"{x * 100:+.1f}%"


def clean_build(workdir: Path, commands: Commands, log: Path) -> str | None:
    """Build from clean (untracked and ignored files removed); returns a failure line or None."""
    git.in_worktree(workdir, "clean", "-f", "-d", "-x", "-q")
    if not commands.build:
        return None
    result = run_command(commands, commands.build, workdir, commands.build_timeout, log)
    return None if result.ok else describe_failure("build", result, commands.build_timeout)


# The line that says what went wrong: a compiler or linker error, not make's "*** Error 1" echo of it.
_ERROR_LINE = re.compile(r"\berror\b|undefined reference to|multiple definition of|cannot find -l|undefined symbol", re.IGNORECASE)
_ECHO_LINE = re.compile(r"^\S*make(\[\d+\])?: \*\*\*|^ninja: build stopped|collect2: error: ld returned|^\d+ errors? generated")


def first_error(output: str) -> str:
    """The first compiler/linker error line of a failed command's output; else its last line that is
    not a build tool's summary (make's `*** [...] Error 1`); else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if _ERROR_LINE.search(line) and not _ECHO_LINE.search(line):
            return line
    own = [line for line in lines if not _ECHO_LINE.search(line)]
    return (own or lines or [""])[-1]


def describe_failure(what: str, result: proc.Result, timeout: float) -> str:
    if result.timed_out:
        return f"{what} timed out after {timeout:.0f}s"
    if result.stopped:
        return f"{what} interrupted"
    line = first_error(result.output)
    return f"{what} failed (exit {result.returncode})" + (f": {line[:200]}" if line else "")


def retry_on_new_best(reason: str | None) -> bool:
    """A failure the best moving can cure: the patch did not apply, or the candidate did not build."""
    return bool(reason) and reason.startswith(("patch does not apply", "candidate build failed"))


def commit_candidate(workdir: Path, message: str) -> tuple[str, list[str]]:
    """Commit everything the runtime changed on disk — the disk is the truth, not the transcript."""
    git.in_worktree(workdir, "add", "--all", ".")
    changed = [line for line in git.in_worktree(workdir, "diff", "--cached", "--name-only", "HEAD").splitlines() if line]
    if not changed:
        return git.in_worktree(workdir, "rev-parse", "HEAD"), []
    git.in_worktree(workdir, "commit", "--quiet", "--no-verify", "-m", message)
    return git.in_worktree(workdir, "rev-parse", "HEAD"), changed


def protected_touched(changed: list[str], protected: list[str]) -> list[str]:
    spec = pathspec.PathSpec.from_lines("gitwildmatch", protected)
    return [path for path in changed if spec.match_file(path)]
