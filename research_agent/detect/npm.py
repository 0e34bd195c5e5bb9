"""package.json scripts: `bench`/`benchmark` to benchmark, `test` to check, `build` to build."""

from __future__ import annotations

import json
from pathlib import Path

from . import Finding, Step, read


def detect(repo: Path) -> Finding | None:
    if not (repo / "package.json").is_file():
        return None
    try:
        scripts = json.loads(read(repo / "package.json")).get("scripts") or {}
    except (ValueError, AttributeError):
        return None
    if not isinstance(scripts, dict):
        return None
    finding = Finding("npm")
    if "build" in scripts:
        finding.build = Step("npm run --silent build", "package.json script 'build'")
    bench = next((s for s in ("bench", "benchmark", "perf") if s in scripts), None)
    if bench:
        finding.bench = Step(f"npm run --silent {bench}", f"package.json script '{bench}'")
    if "test" in scripts and "no test specified" not in str(scripts["test"]):
        finding.check = Step("npm test --silent", "package.json script 'test'")
    return finding
