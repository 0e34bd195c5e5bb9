"""How a repository builds, checks and benchmarks, read from its files (`research-agent init`).

Each ecosystem is one module with `detect(repo: Path) -> Finding | None`. The first finding that
has a benchmark is the one chosen; a build or check it lacks is taken from the next findings that
have one (a Makefile's `check` beside a bench.sh, say). Every choice is recorded as found (read
from a file) or guessed (a convention), so the task file written can say which is which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

# Tried in this order: a repository's own bench entry points before its language's conventions.
DETECTORS = ("make", "scripts", "npm", "cargo", "go_test", "python", "cmake")

NOTHING_FOUND = ("no benchmark found: add a `bench` Make target, a bench.sh, an npm `bench` script, cargo/criterion "
                 "benches, Go Benchmark functions, pytest-benchmark tests or a pyperf script that prints "
                 "`METRIC name=value` — or pass --bench CMD --metric NAME")


@dataclass
class Step:
    command: str
    why: str            # one line, e.g. "Makefile target 'bench'"
    guessed: bool = False


@dataclass
class Finding:
    ecosystem: str                  # "make", "cargo", ...
    bench: Step | None = None
    build: Step | None = None
    check: Step | None = None
    metric: str | None = None       # a name when the files say it (METRIC lines, a format's geomean)
    metric_why: str = ""
    format: str | None = None       # metric_formats name when the bench is a known tool
    direction: str | None = None
    notes: list[str] = field(default_factory=list)


def detect(repo: Path) -> Finding | None:
    """The repository's best-supported benchmark with its build and check, or None."""
    findings = [f for f in (import_module(f"{__name__}.{name}").detect(repo) for name in DETECTORS) if f]
    chosen = next((f for f in findings if f.bench), None)
    if chosen is None:
        return None
    for other in findings:
        if other is chosen:
            continue
        chosen.build = chosen.build or other.build
        chosen.check = chosen.check or other.check
    if chosen.metric is None and chosen.format is None:
        name, where = metric_in_files(repo)
        if name:
            chosen.metric, chosen.metric_why = name, f"`METRIC {name}=` in {where}"
    if chosen.metric is None and chosen.format is not None:
        chosen.metric, chosen.metric_why = "geomean", f"geometric mean of every {chosen.format} benchmark's time"
    if chosen.direction is None and chosen.metric:
        chosen.direction = guess_direction(chosen.metric)
    others = [f.ecosystem for f in findings if f.bench and f is not chosen]
    if others:
        chosen.notes.append(f"also found benchmarks for: {', '.join(others)} (not chosen)")
    return chosen


_METRIC = re.compile(r"METRIC\s+([A-Za-z_][\w.:/-]*)=")
_SKIP_DIRS = {".git", "node_modules", "target", "build", "dist", ".venv", "venv", "__pycache__", ".tox"}
_TEXT_SUFFIXES = {"", ".sh", ".py", ".c", ".h", ".cc", ".cpp", ".hpp", ".rs", ".go", ".js", ".mjs", ".ts", ".mk",
                  ".txt", ".cmake", ".java", ".rb", ".pl", ".lua", ".zig"}


def metric_in_files(repo: Path, limit: int = 2000) -> tuple[str | None, str]:
    """The first `METRIC name=` a source file of the repo prints, and where (bench files first)."""
    files = sorted(iter_files(repo, limit), key=lambda p: ("bench" not in p.as_posix().lower(), p.as_posix()))
    for path in files:
        if path.suffix not in _TEXT_SUFFIXES:
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="ignore")[:200_000]
        except OSError:
            continue
        match = _METRIC.search(text)
        if match:
            return match.group(1), path.relative_to(repo).as_posix()
    return None, ""


def iter_files(repo: Path, limit: int = 2000):
    """Files of the repository, skipping VCS, dependency and build folders; at most `limit`."""
    count = 0
    stack = [repo]
    while stack and count < limit:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                if entry.name not in _SKIP_DIRS:
                    stack.append(entry)
            elif entry.is_file():
                count += 1
                yield entry
                if count >= limit:
                    return


_LOWER_IS_BETTER = re.compile(r"(time|latency|seconds|secs|_s$|_ms$|_us$|_ns$|^ns|^ms|cycles|bytes|_mb$|mem|size|"
                              r"duration|elapsed|cost|loss|error|geomean)", re.IGNORECASE)


_TIME_PER = re.compile(r"^(ps|ns|us|ms|s|sec|secs|seconds|cycles|time)[_/]?per", re.IGNORECASE)
_RATE = re.compile(r"(per_|_per|/s\b|ps$|ops|throughput|rate|flops|qps|rps|score|speedup|hz$|hits)", re.IGNORECASE)


def guess_direction(metric: str) -> str:
    """max for a rate or score, min for a time, size or cost, else max."""
    if _TIME_PER.search(metric):  # ns_per_op, seconds/iter: a time per unit of work
        return "min"
    if _RATE.search(metric):
        return "max"
    return "min" if _LOWER_IS_BETTER.search(metric) else "max"


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return ""
