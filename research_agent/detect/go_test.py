"""Go modules: `go test -bench` over the packages with Benchmark functions; `go vet`-free `go test` checks."""

from __future__ import annotations

import re
from pathlib import Path

from . import Finding, Step, iter_files, read

_BENCH_FUNC = re.compile(r"^func Benchmark\w*\(\w+ \*testing\.B\)", re.MULTILINE)


def detect(repo: Path) -> Finding | None:
    if not (repo / "go.mod").is_file():
        return None
    finding = Finding("go", build=Step("go build ./...", "go.mod"), check=Step("go test ./...", "go.mod", guessed=True))
    with_benches = [p for p in iter_files(repo) if p.name.endswith("_test.go") and _BENCH_FUNC.search(read(p))]
    if with_benches:
        finding.bench = Step("go test -run '^$' -bench . -benchmem ./...",
                             f"Benchmark functions in {with_benches[0].relative_to(repo).as_posix()}"
                             + (f" and {len(with_benches) - 1} more file(s)" if len(with_benches) > 1 else ""))
        finding.format = "go"
    return finding
