"""`research-agent init`: a commented task.yaml from what the repository shows (research_agent/detect).

The detected bench is tried once in a throwaway copy of the repository (never in the user's
checkout), to confirm the metric parses or, when the files do not say, to find it in the output.
`optimize DIR` with no task file uses the same detection (`task_for_directory`).
"""

from __future__ import annotations

import json
import os
import shutil
from . import git
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from .detect import NOTHING_FOUND, Finding, detect, guess_direction
from .errors import TargetError, UserError
from .runtimes import DEFAULT_RUNTIME, RUNTIME_NAMES

TRIAL_TIMEOUT_S = 120  # per step (build, bench): a trial longer than this is not "cheap"; the task is written unconfirmed


@dataclass
class Trial:
    ran: bool
    ok: bool = False
    seconds: float = 0.0
    value: float | None = None
    problem: str = ""  # one line when not ok


def discover(repo: Path, trial: bool, notify=print) -> tuple[Finding, Trial]:
    """What the repository shows, and a trial run of it (`trial`, or always when only the output can tell the metric)."""
    if not repo.is_dir():
        raise TargetError(f"not a directory: {repo}")
    finding = detect(repo)
    if finding is None:
        raise TargetError(NOTHING_FOUND)
    result = Trial(ran=False)
    if trial or finding.metric is None:
        notify(f"trying `{finding.bench.command}` once in a copy of {repo}" + ("" if finding.metric else " to find its metric"))
        result = trial_run(repo, finding)
    if finding.metric is None:
        raise TargetError(f"found a benchmark (`{finding.bench.command}`: {finding.bench.why}) but not its metric"
                          f"{': ' + result.problem if result.problem else ''}; make it print `METRIC name=value` "
                          "lines (or give optimize --bench and --metric)")
    return finding, result


def trial_run(repo: Path, finding: Finding) -> Trial:
    """Build and bench once in a temporary copy; learns the metric (and format) from the output if unknown."""
    from . import proc
    from .gate import parse_metrics
    from .metric_formats import FORMATS, parse

    with tempfile.TemporaryDirectory(prefix="ra-init-") as tmp:
        copy = Path(tmp) / (repo.resolve().name or "repo")
        _copy_repo(repo, copy)
        seconds = 0.0
        if finding.build:
            built = proc.run(finding.build.command, cwd=copy, timeout=TRIAL_TIMEOUT_S)
            seconds += built.seconds
            if not built.ok:
                return Trial(True, seconds=seconds, problem=_failed("build", finding.build.command, built))
        ran = proc.run(finding.bench.command, cwd=copy, timeout=TRIAL_TIMEOUT_S)
        seconds += ran.seconds
        if not ran.ok:
            return Trial(True, seconds=seconds, problem=_failed("bench", finding.bench.command, ran))
    metrics = {k: v for k, v in parse_metrics(ran.output).items() if v is not None}
    if finding.format:
        metrics = {**parse(ran.output, finding.format), **metrics}
    if finding.metric is None:
        _learn_metric(finding, ran.output, metrics, FORMATS, parse)
        metrics = {**parse(ran.output, finding.format), **metrics} if finding.format else metrics
    value = metrics.get(finding.metric) if finding.metric else None
    if value is None:
        shown = f"metric '{finding.metric}'" if finding.metric else "metric"
        return Trial(True, seconds=seconds, problem=f"the trial run printed no {shown}")
    return Trial(True, ok=True, seconds=seconds, value=value)


def _learn_metric(finding: Finding, output: str, metrics: dict, formats, parse) -> None:
    if metrics:  # METRIC lines: the first one printed is the one to gate
        printed = [words[1].split("=")[0] for words in map(str.split, output.splitlines())
                   if len(words) > 1 and words[0] == "METRIC" and "=" in words[1]]
        finding.metric = next((name for name in printed if name in metrics), next(iter(metrics)))
        finding.metric_why = "the first METRIC line of the trial run"
    else:
        for name in formats:
            values = parse(output, name)
            if values:
                finding.format = name
                benches = [k for k in values if k != "geomean" and "." not in k]
                finding.metric = benches[0] if len(benches) == 1 else "geomean"
                finding.metric_why = f"the trial run printed {name} output"
                break
    if finding.metric:
        finding.direction = "min" if finding.format else guess_direction(finding.metric)


def _failed(step: str, command: str, result) -> str:
    if result.timed_out:
        return f"trial {step} `{command}` took over {TRIAL_TIMEOUT_S} s (stopped)"
    last = result.tail(1).strip()
    return f"trial {step} `{command}` failed (exit {result.returncode})" + (f": {last[:160]}" if last else "")


def _copy_repo(repo: Path, into: Path) -> None:
    """The files git tracks or would track (no build outputs), or the whole folder outside git."""
    listed = git.call(repo, "ls-files", "-z", "-co", "--exclude-standard", user=True)
    if listed.returncode != 0:
        shutil.copytree(repo, into, symlinks=True, ignore=shutil.ignore_patterns(".git", "node_modules", "target", "build"))
        return
    into.mkdir(parents=True)
    for name in listed.stdout.decode("utf-8", "surrogateescape").split("\0"):
        source = repo / name
        if name and (source.is_file() or source.is_symlink()):
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name, follow_symlinks=False)


# ---------------------------------------------------------------------------
# The task file
# ---------------------------------------------------------------------------


def task_data(repo: str, finding: Finding, folder: Path | None = None) -> dict:
    """The task spec's keys for what was found (`repo` as it is to be written; `folder`: where it is)."""
    metric = {"name": finding.metric, "direction": finding.direction or "max"}
    if finding.format:
        metric["format"] = finding.format
    data = {"repo": repo, "goal": _goal(folder or Path(repo), finding), "bench": finding.bench.command, "metric": metric}
    data["build"] = finding.build.command if finding.build else None
    data["check"] = finding.check.command if finding.check else None
    return data


def _goal(repo: Path, finding: Finding) -> str:
    name = repo.resolve().name or "the project"
    if finding.format:
        return f"Speed up {name} on its {finding.format} benchmarks"
    return f"Improve {finding.metric}"


def render(finding: Finding, trial: Trial, repo_field: str, repo: Path) -> str:
    """A commented task.yaml: each value says whether it was found in a file or guessed."""
    data = task_data(repo_field, finding, repo)

    def line(key: str, value, why: str = "", indent: str = "") -> str:
        text = f"{indent}{key}: {_scalar(value)}"
        if not why:
            return text + "\n"
        if len(text) > 39:  # a long command: its note above it, so neither runs off the screen
            return f"{indent}# {why}\n{text}\n"
        return f"{text:<40} # {why}\n"

    def step_why(step) -> str:
        return ("guessed: " if step.guessed else "found: ") + step.why if step else "none found: add one (a build or check command)"

    out = [
        f"# research-agent task, written by `research-agent init` on {date.today().isoformat()}.\n",
        "# found: read from the repository's files · guessed: a convention; check it. Every key: README \"Task spec\".\n",
        f"# Trial run: {_trial_text(finding, trial)}\n",
    ]
    out += [f"# Note: {note}\n" for note in finding.notes]
    out.append("\n")
    out.append(line("repo", data["repo"], "relative to this file"))
    out.append(line("goal", data["goal"], "guessed: say what to improve, in your words (research reads it)"))
    out.append(line("build", data["build"], step_why(finding.build)) if finding.build
               else f"{'# build:':<40} # none found: the bench builds what it needs\n")
    out.append(line("bench", data["bench"], step_why(finding.bench)))
    out.append(line("check", data["check"], step_why(finding.check)) if finding.check
               else f"{'# check:':<40} # none found: add one; a kept change must pass it\n")
    out.append("metric:\n")
    found_name = "found: " if finding.metric_why and "trial" not in finding.metric_why else "found in the output: "
    out.append(line("name", data["metric"]["name"], found_name + finding.metric_why, "  "))
    direction_why = ("found: times (nanoseconds), lower is better" if finding.format
                     else "guessed from the name: " + ("lower is better" if finding.direction == "min" else "higher is better"))
    out.append(line("direction", data["metric"]["direction"], direction_why, "  "))
    if finding.format:
        out.append(line("format", finding.format, "found: the bench prints this tool's output", "  "))
    out.append("experiments: {parallel: 2, repeats: 5}   # pairs of A/B runs per change before the gate first looks\n")
    out.append(f"{'runtime: {name: ' + DEFAULT_RUNTIME + '}':<40} # {' | '.join(RUNTIME_NAMES)} (a coding agent)\n")
    text = "".join(out)
    _validate(text, repo)
    return text


def _trial_text(finding: Finding, trial: Trial) -> str:
    if not trial.ran:
        return "not run (--no-trial): the metric is not confirmed"
    if not trial.ok:
        return f"the metric is not confirmed: {trial.problem}"
    done = "built and benchmarked" if finding.build else "benchmarked"
    return (f"{done} once in a copy of the repository ({trial.seconds:.1f} s): "
            f"{finding.metric} = {trial.value:.6g} — the metric parses")


def _scalar(value) -> str:
    text = str(value)
    try:
        plain_ok = yaml.safe_load(f"k: {text}") == {"k": text} and " #" not in text and not text.startswith("#")
    except yaml.YAMLError:
        plain_ok = False
    return text if plain_ok else json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def _validate(text: str, repo: Path) -> None:
    """The written file must load as a task (a bug of ours otherwise, caught before writing)."""
    from .task import load_task

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "task.yaml").write_text(text.replace("\nrepo: ", f"\nrepo: {json.dumps(str(repo.resolve()))} #", 1),
                                             encoding="utf-8")
        load_task(Path(tmp) / "task.yaml")


# ---------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------


def run_init(repo: Path, yes: bool, trial: bool, output: Path | None) -> None:
    target = output or repo / "task.yaml"
    if target.exists():
        raise UserError(f"{target} exists: not overwritten (delete it to detect again, or pass --output PATH)")
    finding, result = discover(repo, trial)
    repo_field = os.path.relpath(repo.resolve(), target.resolve().parent)
    text = render(finding, result, Path(repo_field).as_posix(), repo)
    print(summary(finding, result))
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"{target} not written: stdin is not a terminal, pass --yes to write it")
        try:
            answer = input(f"Write {target}? [Y/n] ").strip().lower()
        except EOFError:  # Ctrl-D: no answer is no
            answer = "n"
        if answer not in ("", "y", "yes"):
            print("not written")
            return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    shown = repo if output is None else target
    print(f"wrote {target} — edit it, then: research-agent optimize {shown}")


def summary(finding: Finding, trial: Trial) -> str:
    lines = [f"bench:  {finding.bench.command}  ({finding.bench.why})"]
    for label, step in (("build", finding.build), ("check", finding.check)):
        lines.append(f"{label}:  {step.command}  ({'guessed: ' if step.guessed else ''}{step.why})" if step
                     else f"{label}:  none found")
    fmt = f", format {finding.format}" if finding.format else ""
    lines.append(f"metric: {finding.metric} ({finding.direction}{fmt}; {finding.metric_why})")
    lines.append(f"trial:  {_trial_text(finding, trial)}")
    lines += [f"note:   {note}" for note in finding.notes]
    return "\n".join(lines)


def task_for_directory(repo: str, notify) -> object:
    """A Task for `optimize DIR` when DIR has no task file and no --bench/--metric: what init would write."""
    from .task import _validate_cli_task

    path = Path(repo)
    finding, _ = discover(path, trial=False, notify=notify)
    fmt = f" ({finding.format} output)" if finding.format else ""
    notify(f"no task file in {repo}: benchmarking with `{finding.bench.command}` ({finding.bench.why}), "
           f"metric {finding.metric}{fmt}, {finding.direction}")
    notify(f"`research-agent init {repo}` writes this as a task.yaml to review and edit")
    return _validate_cli_task(task_data(repo, finding), source=None, base_dir=Path.cwd())
