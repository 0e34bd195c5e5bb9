"""One experiment, start to finish, inside two checkouts (base and candidate) on one worker.

runtime edits the candidate → commit → protected-path check → clean builds → checks →
interleaved A/B benchmark with the sequential gate. Backend-agnostic: the local backend calls it
with git worktrees; a cloud worker can call it the same way on its VM.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pathspec

from . import proc
from .gate import SequentialGate, pair_orders, parse_metric
from .runtimes.base import Brief, Runtime, RuntimeResult
from .target import GIT_IDENTITY as COMMITTER  # the tool's own commits: one identity everywhere


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


@dataclass
class BaselineJob:
    commands: Commands
    repeats: int
    log: Path
    on_sample: Callable[[int, float, float], None] | None = None  # (index, value, seconds)
    profile: str | None = None  # the task's profile command, run after the benchmark
    profile_timeout: float = 900


@dataclass
class BaselineResult:
    values: list[float] = field(default_factory=list)
    failure: str | None = None  # one line: what failed, e.g. "build failed (exit 2): ..."
    profile: str | None = None


def measure_baseline(workdir: Path, job: BaselineJob) -> BaselineResult:
    """Clean build, check, `repeats` benchmark runs and the optional profile, in one checkout."""
    commands, log = job.commands, job.log
    failure = clean_build(workdir, commands, log)
    if failure:
        return BaselineResult(failure=f"{failure} — nothing to compare against")
    if commands.check:
        result = proc.run(commands.check, cwd=workdir, timeout=commands.check_timeout, log_path=log)
        if not result.ok:
            return BaselineResult(failure=describe_failure("check", result, commands.check_timeout))
    outcome = BaselineResult()
    for index in range(job.repeats):
        value, seconds, failure = run_bench(workdir, commands, log)
        if failure:
            return BaselineResult(outcome.values, failure)
        outcome.values.append(value)
        if job.on_sample:
            job.on_sample(index, value, seconds)
    if job.profile:
        outcome.profile = proc.run(job.profile, cwd=workdir, timeout=job.profile_timeout, log_path=log).output
    return outcome


def execute(job: Job, runtime: Runtime, base_dir: Path, cand_dir: Path, message: str) -> JobResult:
    phase = job.on_phase or (lambda _name: None)
    log = job.exp_dir / "experiment.log"

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
    (job.exp_dir / "patch.diff").write_text(_git(cand_dir, "diff", "HEAD~1", "HEAD", strip=False), encoding="utf-8")  # unstripped: a last context line may be " "
    touched = protected_touched(changed, job.protected)
    if touched:
        return JobResult("rejected", f"protected path touched: {', '.join(touched)}", cand_commit=commit, changed=changed, runtime=outcome)

    phase("build")
    for arm, workdir in (("base", base_dir), ("candidate", cand_dir)):
        failure = clean_build(workdir, job.commands, log)
        if failure:
            return JobResult("failed", f"{arm} {failure}", cand_commit=commit, changed=changed, runtime=outcome)

    if job.commands.check:
        phase("check")
        result = proc.run(job.commands.check, cwd=cand_dir, timeout=job.commands.check_timeout, log_path=log)
        if not result.ok:
            return JobResult("failed", describe_failure("check", result, job.commands.check_timeout), cand_commit=commit, changed=changed, runtime=outcome)

    phase("bench")
    return benchmark(job, base_dir, cand_dir, log, commit, changed, outcome)


def benchmark(job: Job, base_dir: Path, cand_dir: Path, log: Path, commit: str, changed: list[str], outcome: RuntimeResult) -> JobResult:
    """Interleaved A/B pairs, order randomized per pair, until the sequential gate decides."""
    rng = random.Random(job.seed)

    samples: dict[str, list[float]] = {"base": [], "cand": []}
    dirs = {"base": base_dir, "cand": cand_dir}
    while True:
        more = job.gate.next_batch(len(samples["cand"]))
        if more <= 0:
            break
        for order in pair_orders(more, rng):
            for arm in order:
                value, seconds, failure = run_bench(dirs[arm], job.commands, log)
                if failure:
                    where = "base" if arm == "base" else "candidate"
                    return JobResult("failed", f"bench failed on {where}: {failure}", cand_commit=commit, changed=changed,
                                     base=samples["base"], cand=samples["cand"], runtime=outcome)
                samples[arm].append(value)
                if job.on_sample:
                    job.on_sample(arm, len(samples[arm]) - 1, value, seconds)
        try:
            verdict = job.gate.decide(samples["base"], samples["cand"])
        except ValueError as error:  # e.g. a zero or negative metric: no relative effect exists
            return JobResult("failed", f"gate: {error}", cand_commit=commit, changed=changed,
                             base=samples["base"], cand=samples["cand"], runtime=outcome)
        if verdict.action != "more":
            break
    effect = verdict.effect.to_dict() if verdict.effect else None
    decision = "kept" if verdict.action == "keep" else "discarded"
    return JobResult(decision, verdict.reason, effect, commit, changed, samples["base"], samples["cand"], outcome)


def run_bench(workdir: Path, commands: Commands, log: Path) -> tuple[float, float, str | None]:
    """One benchmark run: (value, seconds, failure). A run without the metric is a failure, never a zero."""
    result = proc.run(commands.bench, cwd=workdir, timeout=commands.bench_timeout, log_path=log)
    if not result.ok:
        return 0.0, result.seconds, describe_failure("bench", result, commands.bench_timeout)
    value = parse_metric(result.output, commands.metric, commands.regex)
    if value is None:
        return 0.0, result.seconds, f"no metric '{commands.metric}' in the output"
    return value, result.seconds, None


def clean_build(workdir: Path, commands: Commands, log: Path) -> str | None:
    """Build from clean (untracked and ignored files removed); returns a failure line or None."""
    _git(workdir, "clean", "-f", "-d", "-x", "-q")
    if not commands.build:
        return None
    result = proc.run(commands.build, cwd=workdir, timeout=commands.build_timeout, log_path=log)
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
    _git(workdir, "add", "--all", ".")
    changed = [line for line in _git(workdir, "diff", "--cached", "--name-only", "HEAD").splitlines() if line]
    if not changed:
        return _git(workdir, "rev-parse", "HEAD"), []
    _git(workdir, "commit", "--quiet", "--no-verify", "-m", message)
    return _git(workdir, "rev-parse", "HEAD"), changed


def protected_touched(changed: list[str], protected: list[str]) -> list[str]:
    spec = pathspec.PathSpec.from_lines("gitwildmatch", protected)
    return [path for path in changed if spec.match_file(path)]


def _git(workdir: Path, *args: str, strip: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=str(workdir), capture_output=True, text=True, env={**os.environ, **COMMITTER})
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip() if strip else result.stdout

