"""airspeed velocity (`asv run`): one result per benchmark line, a time with its spread.

    [ 50.00%] ··· benchmarks.TimeSuite.time_keys                      1.23±0.01ms
    [100.00%] ··· benchmarks.TimeSuite.time_range                        4.56±0.1μs

Time benchmarks only (a parametrized benchmark's table, or a mem_/peakmem_ size, is left out).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from . import Sample, one_word, to_ns

_LINE = re.compile(r"···\s+(?P<name>\S+)\s+(?P<value>[0-9.]+)(?:±[0-9.]+)?(?P<unit>ns|μs|µs|us|ms|s)\s*$", re.MULTILINE)


def parse(output: str) -> Iterator[Sample]:
    for match in _LINE.finditer(output):
        yield Sample(one_word(match["name"]), to_ns(float(match["value"]), match["unit"]))
