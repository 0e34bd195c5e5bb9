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


BENCH = """#!/bin/sh
# Prints the score in value.txt with 1% noise; sleeps as long as delay.txt says; hangs if hang.txt exists.
[ -f hang.txt ] && sleep 600
[ -f delay.txt ] && sleep "$(cat delay.txt)"
python3 -c "import random; print('METRIC score=%f' % ($(cat value.txt) * random.gauss(1, 0.01)))"
"""


def make_target(root: Path, changes: dict[str, dict[str, str | None]], *, value: str = "100", delay: str | None = None,
                task_extra: str = "", check: str = "test -f bench.sh", files: dict[str, str] | None = None) -> tuple[Path, Path, Path]:
    """A small git repo + task.yaml + plan.md whose hypotheses carry real diffs.

    `changes` maps a hypothesis id to {file: new content (None deletes)}; a value of "<bad>" for a
    file makes a diff that does not apply. `files` adds repo files (or replaces bench.sh).
    """
    files = {"value.txt": value + "\n", "bench.sh": BENCH, "notes.txt": "notes\n", **(files or {})}
    if delay:
        files["delay.txt"] = delay + "\n"
    repo = make_repo(root / "target", files)
    scratch = root / "scratch"
    subprocess.run(["git", "clone", "-q", str(repo), str(scratch)], check=True)
    blocks, sources = [], "## Sources\n- local:notes.txt — Notes\n"
    for hid, edits in changes.items():
        for name, text in edits.items():
            path = scratch / name
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
        git(scratch, "add", "-A")
        diff = git(scratch, "diff", "--cached") + "\n"
        git(scratch, "reset", "-q", "--hard")
        if any(text == "<bad>" for text in edits.values()):
            diff = diff.replace("-notes", "-no such line")
        blocks.append(f"### {hid}: Try {hid}\n- files: {', '.join(edits)}\n- sources: local:notes.txt\n- status: pending\n\n"
                      f"Because.\n\n```diff\n{diff}```\n")
    plan = root / "plan.md"
    plan.write_text("---\nobjective: Raise the score\nmetric: score\ndirection: max\nstatus: approved\n---\n# Plan\n\n"
                    "## Hypotheses\n\n" + "\n".join(blocks) + "\n" + sources)
    task = root / "task.yaml"
    task.write_text(f"name: synthetic\nrepo: target\nbench: ./bench.sh\ncheck: {check}\nmetric: score\n"
                    f"timeouts: {{build: 30, bench: 5, check: 30, runtime: 30}}\n{task_extra}")
    return repo, task, plan


# --- the real-SkyPilot tier (tests marked `slurm`): runs only where scripts/local-slurm.sh is up ------

SKY_API_HEALTH = "http://127.0.0.1:46580/api/health"


def local_slurm_up() -> str | None:
    """None when a local Slurm answers and the local SkyPilot API server is healthy, else why not."""
    import shutil
    import urllib.request

    if not shutil.which("sinfo"):
        return "no local Slurm (sinfo not found)"
    try:
        state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=20).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        state = []
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in state):
        return "local Slurm is not up (no idle node)"
    try:
        with urllib.request.urlopen(SKY_API_HEALTH, timeout=5):
            pass
    except OSError:
        return "no local SkyPilot API server on 127.0.0.1:46580"
    return None


def pytest_collection_modifyitems(config, items):
    tier = [item for item in items if item.get_closest_marker("slurm")]
    if not tier:
        return
    why = local_slurm_up()
    if why:
        skip = pytest.mark.skip(reason=f"real-SkyPilot tier: {why}; run `scripts/local-slurm.sh up` (root, Debian) first")
        for item in tier:
            item.add_marker(skip)
