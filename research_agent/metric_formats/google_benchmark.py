"""Google Benchmark binaries: the console table, or `--benchmark_format=json`.

    Benchmark                Time             CPU   Iterations
    ----------------------------------------------------------
    BM_StringCopy/8       12.3 ns         12.3 ns     56929860
    BM_memcpy/64          2.66 ns         2.66 ns    263092442 bytes_per_second=22.4G/s

Real time (the Time column, `real_time` in JSON) is the benchmark's value and CPU time is
`NAME.cpu`, both in nanoseconds. With repetitions the aggregates are names of their own
(`BM_x_mean`, `BM_x_median`); `_stddev` and `_cv` rows are left out (not times).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from . import Sample, json_documents, one_word, to_ns

_ROW = re.compile(r"^(?P<name>\S+)\s+(?P<time>[0-9.eE+-]+) (?P<tunit>[a-zµ]+)\s+(?P<cpu>[0-9.eE+-]+) (?P<cunit>[a-zµ]+)\s+\d+\b",
                  re.MULTILINE)
_NOT_TIMES = ("_stddev", "_cv")


def parse(output: str) -> Iterator[Sample]:
    documents = [d for d in json_documents(output) if isinstance(d.get("benchmarks"), list)]
    if documents:
        for document in documents:
            yield from _from_json(document)
        return
    for row in _ROW.finditer(output):
        if row["name"].endswith(_NOT_TIMES):
            continue
        real, cpu = to_ns(float(row["time"]), row["tunit"]), to_ns(float(row["cpu"]), row["cunit"])
        if real is not None:
            yield Sample(one_word(row["name"]), real)
        if cpu is not None:
            yield Sample(f"{one_word(row['name'])}.cpu", cpu, main=False)


def _from_json(document: dict) -> Iterator[Sample]:
    for bench in document["benchmarks"]:
        name = one_word(str(bench.get("name", "")))
        if not name or bench.get("aggregate_name") in ("stddev", "cv") or bench.get("error_occurred"):
            continue
        unit = bench.get("time_unit", "ns")
        for key, suffix, main in (("real_time", "", True), ("cpu_time", ".cpu", False)):
            value = bench.get(key)
            if isinstance(value, (int, float)) and to_ns(value, unit) is not None:
                yield Sample(name + suffix, to_ns(value, unit), main=main)
