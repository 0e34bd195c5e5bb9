"""Benchmark scripts at conventional places: bench.sh, benchmark.sh, scripts/bench.sh, bench.py."""

from __future__ import annotations

import os
from pathlib import Path

from . import Finding, Step, read

SHELL = ("bench.sh", "benchmark.sh", "run_bench.sh", "scripts/bench.sh", "bench/run.sh", "benchmarks/run.sh")
PYTHON = ("bench.py", "benchmark.py", "benchmarks/bench.py", "scripts/bench.py")


def detect(repo: Path) -> Finding | None:
    for name in SHELL:
        path = repo / name
        if path.is_file():
            command = f"./{name}" if os.access(path, os.X_OK) else f"sh {name}"
            return Finding("script", bench=Step(command, f"{name}"))
    for name in PYTHON:
        path = repo / name
        if path.is_file():
            finding = Finding("script", bench=Step(f"python3 {name}", f"{name}"))
            if "pyperf" in read(path):
                finding.format = "pyperf"
                finding.bench.why += " (a pyperf script)"
            return finding
    return None
