"""pyperf (`python -m pyperf timeit`, pyperf.Runner scripts): the `Mean +- std dev` summary lines.

    .....................
    sort_1000: Mean +- std dev: 51.2 us +- 1.3 us
    Mean +- std dev: 12.3 ns +- 0.4 ns                 (timeit: one unnamed benchmark)
    bench_json: Median +- MAD: 1.05 ms +- 0.02 ms      (--median)

Named benchmarks keep their name; an unnamed one is `timeit`. Values in nanoseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from . import Sample, one_word, to_ns

_SUMMARY = re.compile(r"^(?:(?P<name>\S.*?): )?(?:Mean \+- std dev|Median \+- MAD): (?P<value>[0-9.eE+-]+) (?P<unit>\S+)",
                      re.MULTILINE)


def parse(output: str) -> Iterator[Sample]:
    for match in _SUMMARY.finditer(output):
        value = to_ns(float(match["value"]), match["unit"])
        if value is not None:
            yield Sample(one_word(match["name"] or "timeit"), value)
