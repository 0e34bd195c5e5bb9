"""Criterion.rs (`cargo bench`): `NAME  time:   [low estimate high]`, the estimate in its unit.

    fib 20                  time:   [26.029 µs 26.251 µs 26.505 µs]
    group/long benchmark name
                            time:   [1.0012 ms 1.0150 ms 1.0301 ms]
                            thrpt:  [96.862 MiB/s 98.301 MiB/s 99.655 MiB/s]

A long name stands alone on the line before `time:`. Bencher-format lines
(`test NAME ... bench: 1,234 ns/iter (+/- 56)`, criterion's `--output-format bencher` and libtest) count too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from . import Sample, one_word, to_ns

_TIME = re.compile(r"^(?P<name>.*?)\s*time:\s+\[\S+ \S+ (?P<value>[0-9.]+) (?P<unit>\S+) \S+ \S+\]", re.MULTILINE)
_BENCHER = re.compile(r"^test (?P<name>.+?) \.\.\. bench:\s+(?P<value>[0-9,.]+) ns/iter", re.MULTILINE)
_NOISE_LINE = re.compile(r"^(Benchmarking |Found \d+ outliers|Gnuplot|\s|warning:|Running |Compiling |Finished )")


def parse(output: str) -> Iterator[Sample]:
    lines = output.splitlines()
    for number, line in enumerate(lines):
        match = _TIME.match(line)
        if not match:
            continue
        name = match["name"].strip() or _name_above(lines, number)
        value = to_ns(float(match["value"]), match["unit"])
        if name and value is not None:
            yield Sample(one_word(name), value)
    for match in _BENCHER.finditer(output):
        yield Sample(one_word(match["name"]), float(match["value"].replace(",", "")))


def _name_above(lines: list[str], number: int) -> str | None:
    above = lines[number - 1] if number else ""
    return None if not above.strip() or _NOISE_LINE.match(above) else above.strip()
