import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "tasks" / "demo"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if name.endswith(".sh"):
            target.chmod(0o755)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


def snapshot_of_user_repo(path: Path) -> dict:
    """Everything of the user's that must never change: files, index, refs, HEAD."""
    state = {}
    for file in sorted(path.rglob("*")):
        if file.is_file() and ".git/objects" not in str(file) and not file.name.endswith(".lock"):
            state[str(file.relative_to(path))] = file.read_bytes()
    return state


@pytest.fixture
def user_repo(tmp_path):
    return make_repo(tmp_path / "user", {"a.txt": "one\n", "bench.sh": "#!/bin/sh\necho METRIC x=1\n"})
