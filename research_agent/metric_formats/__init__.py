"""Benchmark-tool output formats read as metrics, so a task needs no wrapper script.

`metric.format` in the task names one of FORMATS. Its parser turns the tool's own output into
samples; `parse(output, format)` gives one value per name (the median of repeats, as for METRIC
lines), plus `geomean`, the geometric mean of every benchmark's main value, for gating a suite
as a whole. Every timing is in nanoseconds per iteration (lower is better). `METRIC k=v` lines
printed beside the tool's output still count.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module

GEOMEAN = "geomean"


@dataclass(frozen=True)
class Sample:
    name: str          # one word: spaces become '_'
    value: float
    main: bool = True  # the benchmark's headline figure (its time); False for extra units, CPU time, ...


# format name -> module (each holds `parse(output) -> Iterable[Sample]` and `DIRECTION`)
FORMATS = {
    "criterion": "criterion",
    "go": "go_bench",
    "pytest-benchmark": "pytest_benchmark",
    "google-benchmark": "google_benchmark",
    "pyperf": "pyperf",
    "asv": "asv",
}


def parser(format: str) -> Callable[[str], Iterable[Sample]]:
    return import_module(f"{__name__}.{FORMATS[format]}").parse


def parse(output: str, format: str) -> dict[str, float]:
    """Every benchmark value the `format` finds in `output`, by name, and their geomean."""
    found: dict[str, list[float]] = {}
    main: set[str] = set()
    for sample in parser(format)(output):
        if math.isfinite(sample.value):
            found.setdefault(sample.name, []).append(sample.value)
            if sample.main:
                main.add(sample.name)
    values = {name: statistics.median(v) for name, v in found.items()}
    positive = [values[name] for name in main if values[name] > 0]
    if positive and GEOMEAN not in values:
        values[GEOMEAN] = math.exp(sum(math.log(v) for v in positive) / len(positive))
    return values


def one_word(name: str) -> str:
    """A benchmark name as a metric name: no whitespace, no '='."""
    return "_".join(name.replace("=", ":").split())


# Time units the tools print, in nanoseconds.
NANOSECONDS = {"ps": 1e-3, "ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "sec": 1e9,
               "min": 60e9}


def to_ns(value: float, unit: str) -> float | None:
    factor = NANOSECONDS.get(unit)
    return None if factor is None else value * factor


def json_documents(output: str) -> Iterable[dict]:
    """JSON objects embedded in mixed output (a tool's JSON after other lines), outermost only."""
    import json

    decoder = json.JSONDecoder()
    index = output.find("{")
    while index != -1:
        try:
            document, end = decoder.raw_decode(output, index)
        except ValueError:
            index = output.find("{", index + 1)
            continue
        if isinstance(document, dict):
            yield document
        index = output.find("{", end)
