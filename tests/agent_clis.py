"""The real coding-agent CLIs, installed from the npm registry at pinned versions into .tools/ (git-ignored).

Installed once and reused; npm's own cache makes a fresh clone's install quick. Where node/npm is
genuinely absent the tests that need them skip with that reason — except in CI, where they must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "agents"
PINNED = {"claude": "@anthropic-ai/claude-code@2.1.332", "codex": "@openai/codex@0.171.0"}


def agent_binary(name: str) -> Path:
    """Path of the pinned `claude` or `codex` binary, installing the pinned CLIs on first use."""
    binary = TOOLS / "node_modules" / ".bin" / name
    if binary.exists() and _pinned_installed():
        return binary
    if shutil.which("npm") is None or shutil.which("node") is None:
        message = "node/npm not found: the real agent CLIs cannot be installed here"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run these tests)")
        pytest.skip(message)
    TOOLS.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TOOLS / ".install.lock")):
        if not (binary.exists() and _pinned_installed()):
            result = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(TOOLS), *PINNED.values()],
                capture_output=True, text=True, timeout=900,
            )
            if result.returncode != 0:
                pytest.fail(f"npm install of the agent CLIs failed: {result.stderr.strip()[-500:]}")
            (TOOLS / "pinned.txt").write_text("\n".join(PINNED.values()) + "\n")
    return binary


def _pinned_installed() -> bool:
    stamp = TOOLS / "pinned.txt"
    return stamp.exists() and stamp.read_text().split() == list(PINNED.values())
