"""Python: pytest-benchmark tests, asv suites, pyperf scripts; pytest as the check."""

from __future__ import annotations

import re
from pathlib import Path

from . import Finding, Step, iter_files, read

_BENCH_FIXTURE = re.compile(r"^\s*def test_\w*\([^)]*\bbenchmark\b", re.MULTILINE)
_PYPERF = re.compile(r"pyperf\.Runner\(")
# pytest-benchmark writes its JSON to a file: a temporary one, printed for the parser, then removed.
PYTEST_BENCH = ('f=$(mktemp); python3 -m pytest -q -p no:cacheprovider --benchmark-only --benchmark-json="$f" {where}'
                '&& cat "$f"; s=$?; rm -f "$f"; exit $s')


def detect(repo: Path) -> Finding | None:
    files = [p for p in iter_files(repo) if p.suffix == ".py"]
    project = any((repo / n).is_file() for n in ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt"))
    if not files and not project:
        return None
    finding = Finding("python")
    tests = [p for p in files if p.name.startswith("test_") or p.name.endswith("_test.py")]
    with_fixture = [p for p in tests if _BENCH_FIXTURE.search(read(p))]
    if tests:
        flags = " --benchmark-disable" if with_fixture else ""  # benchmarks run once, untimed, as tests
        finding.check = Step(f"python3 -m pytest -q -p no:cacheprovider{flags}", f"pytest tests ({tests[0].relative_to(repo).as_posix()})",
                             guessed=True)
    if with_fixture:
        where = " ".join(sorted({p.parent.relative_to(repo).as_posix() for p in with_fixture}))
        finding.bench = Step(PYTEST_BENCH.format(where=f"{where} " if where != "." else ""),
                             f"pytest-benchmark tests in {with_fixture[0].relative_to(repo).as_posix()}")
        finding.format = "pytest-benchmark"
        return finding
    runner = next((p for p in files if _PYPERF.search(read(p))), None)
    if runner is not None:
        name = runner.relative_to(repo).as_posix()
        finding.bench = Step(f"python3 {name} --quiet", f"pyperf script {name}")
        finding.format = "pyperf"
        return finding
    if (repo / "asv.conf.json").is_file():
        finding.bench = Step("asv run --python=same --quick --show-stderr", "asv.conf.json")
        finding.format = "asv"
    return finding
