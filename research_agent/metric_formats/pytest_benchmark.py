"""pytest-benchmark's JSON report (`--benchmark-json=FILE`, then `cat FILE` in the bench command).

    {"machine_info": {...}, "benchmarks": [{"name": "test_sort[1000]", "fullname": "...",
      "stats": {"min": 0.0011, "median": 0.0012, "mean": 0.0013, "rounds": 800, ...}}], ...}

Each benchmark's median (seconds in the file) becomes nanoseconds, under its test name
(`test_sort[1000]`); `NAME.min` and `NAME.mean` are there too.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import Sample, json_documents, one_word


def parse(output: str) -> Iterator[Sample]:
    for document in json_documents(output):
        for bench in document.get("benchmarks") or []:
            stats = bench.get("stats") or {}
            name = one_word(str(bench.get("name") or bench.get("fullname") or ""))
            if not name or not isinstance(stats.get("median"), (int, float)):
                continue
            yield Sample(name, stats["median"] * 1e9)
            for extra in ("min", "mean"):
                if isinstance(stats.get(extra), (int, float)):
                    yield Sample(f"{name}.{extra}", stats[extra] * 1e9, main=False)
