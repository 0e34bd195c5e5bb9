"""`go test -bench`: `BenchmarkNAME-P  N  V ns/op [V unit]...`.

    BenchmarkFib10-8        3032916               395.3 ns/op
    BenchmarkEncode/small-8  912363  1302 ns/op  98.31 MB/s  64 B/op  2 allocs/op

The `-P` GOMAXPROCS suffix is dropped; ns/op is the benchmark's value, every other unit a metric
named `NAME.unit` with '/' spelt '_per_' (`BenchmarkEncode/small.B_per_op`). `-count=N` repeats
give their median.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from . import Sample, one_word

_LINE = re.compile(r"^(?P<name>Benchmark\S*?)(?:-\d+)?\s+\d+\s+(?P<pairs>(?:[0-9.eE+-]+ \S+\s*)+)$", re.MULTILINE)
_PAIR = re.compile(r"([0-9.eE+-]+) (\S+)")


def parse(output: str) -> Iterator[Sample]:
    for match in _LINE.finditer(output):
        name = one_word(match["name"])
        for value, unit in _PAIR.findall(match["pairs"]):
            try:
                number = float(value)
            except ValueError:
                continue
            if unit == "ns/op":
                yield Sample(name, number)
            else:
                yield Sample(f"{name}.{unit.replace('/', '_per_')}", number, main=False)
