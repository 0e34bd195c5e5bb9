"""Makefile targets: `bench`/`benchmark`/`perf` to benchmark, `check`/`test` to check, `make` to build."""

from __future__ import annotations

import re
from pathlib import Path

from . import Finding, Step, read

_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", re.MULTILINE)


def detect(repo: Path) -> Finding | None:
    makefile = next((repo / n for n in ("GNUmakefile", "makefile", "Makefile") if (repo / n).is_file()), None)
    if makefile is None:
        return None
    targets = [t for t in _TARGET.findall(read(makefile)) if not t.startswith(".")]
    finding = Finding("make")
    if targets:
        finding.build = Step("make", f"{makefile.name}'s default target '{targets[0]}'")
    bench = next((t for t in ("bench", "benchmark", "benchmarks", "perf") if t in targets), None)
    if bench:
        finding.bench = Step(f"make -s {bench}", f"{makefile.name} target '{bench}'")
        if re.search(r"-lbenchmark\b|benchmark/benchmark\.h", read(makefile)):
            finding.format = "google-benchmark"
    check = next((t for t in ("check", "test", "tests") if t in targets), None)
    if check:
        finding.check = Step(f"make {check}", f"{makefile.name} target '{check}'")
    return finding
