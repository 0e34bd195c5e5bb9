"""The user-level registry of runs that used SkyPilot (what `research-agent down --all` looks through)."""

from __future__ import annotations

import os
from pathlib import Path

def registry_path() -> Path:
    folder = os.environ.get("RESEARCH_AGENT_STATE_DIR")
    if not folder:
        from platformdirs import user_state_dir

        folder = user_state_dir("research-agent")
    return Path(folder) / "skypilot-runs.txt"


def _register(run_path: Path) -> None:
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = str(Path(run_path).resolve())
    known = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if line not in known:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def registered_runs() -> list[Path]:
    path = registry_path()
    if not path.exists():
        return []
    return [Path(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
