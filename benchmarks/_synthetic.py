"""A synthetic target for the benchmarks: a tiny git repo, a task.yaml and a plan.md whose
hypotheses carry real unified diffs (the same idea as tests/conftest.py's make_target).

Everything is written under a folder the caller owns (a temporary directory); the project's own
repository is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` puts benchmarks/, not the root, on the path
    sys.path.insert(0, str(ROOT))

GIT_ENV = {
    "GIT_AUTHOR_NAME": "benchmark",
    "GIT_AUTHOR_EMAIL": "benchmark@example.invalid",
    "GIT_COMMITTER_NAME": "benchmark",
    "GIT_COMMITTER_EMAIL": "benchmark@example.invalid",
}

# Prints the same score every run: identical arms make the gate's decision deterministic.
BENCH_SH = '#!/bin/sh\necho "METRIC score=$(cat value.txt)"\n'


@dataclass
class SyntheticTarget:
    root: Path
    repo: Path
    task: Path
    plan: Path


def make_target(
    root: Path,
    files: dict[str, str],
    edits: dict[str, dict[str, str]],
    *,
    build: str | None,
    check: str | None,
    experiments: dict[str, object],
    bench: str = "./bench.sh",
) -> SyntheticTarget:
    """Write repo + task.yaml + plan.md under `root`.

    `files` is the repo's content (bench.sh and value.txt are added when missing); `edits` maps a
    hypothesis id to {file: new content} — each becomes that hypothesis's diff.
    """
    files = {"bench.sh": BENCH_SH, "value.txt": "100\n", "notes.txt": "notes\n", **files}
    repo = _make_repo(root / "target", files)
    plan = root / "plan.md"
    plan.write_text(_plan_text(files, edits), encoding="utf-8")
    task = root / "task.yaml"
    task.write_text(_task_text(build, check, bench, experiments), encoding="utf-8")
    return SyntheticTarget(root, repo, task, plan)


def create_run(target: SyntheticTarget, run_dir: Path):
    """A fresh run directory for the target, made exactly as `research-agent run` makes one."""
    from research_agent import rundir
    from research_agent.plan import load_plan
    from research_agent.task import load_task

    run, _notice = rundir.create(load_task(target.task), load_plan(target.plan), run_dir, allow_dirty=False)
    return run


def run_orchestrator(run):
    """Drive the real orchestrator with the real local backend, in this process."""
    from research_agent.backends.local import LocalBackend
    from research_agent.orchestrator import Orchestrator

    orchestrator = Orchestrator(run, LocalBackend(run.path, run.repo_dir, run.ledger))
    return orchestrator.execute()


# --- helpers ------------------------------------------------------------------------------------


def _make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")
        if name.endswith(".sh"):
            (path / name).chmod(0o755)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, env={**os.environ, **GIT_ENV})
    return path


def _blob_id(text: str) -> str:
    data = text.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _diff(name: str, old: str, new: str) -> str:
    """A git-style diff that replaces the whole of a small file (index line included, so
    `git apply --3way` finds the blobs instead of falling back)."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    body = [f"-{line}" for line in old_lines] + [f"+{line}" for line in new_lines]
    return (
        f"diff --git a/{name} b/{name}\n"
        f"index {_blob_id(old)[:7]}..{_blob_id(new)[:7]} 100644\n"
        f"--- a/{name}\n+++ b/{name}\n"
        f"@@ -1,{len(old_lines)} +1,{len(new_lines)} @@\n" + "\n".join(body) + "\n"
    )


def _plan_text(files: dict[str, str], edits: dict[str, dict[str, str]]) -> str:
    blocks = []
    for hid, changes in edits.items():
        diff = "".join(_diff(name, files[name], text) for name, text in changes.items())
        blocks.append(
            f"### {hid}: Try {hid}\n- files: {', '.join(changes)}\n- sources: local:notes.txt\n- status: pending\n\n"
            f"Because.\n\n```diff\n{diff}```\n"
        )
    return (
        "---\nobjective: Raise the score\nmetric: score\ndirection: max\nstatus: approved\n---\n# Plan\n\n"
        "## Hypotheses\n\n" + "\n".join(blocks) + "\n## Sources\n- local:notes.txt — Notes\n"
    )


def _task_text(build: str | None, check: str | None, bench: str, experiments: dict[str, object]) -> str:
    lines = ["name: synthetic", "repo: target", f"bench: {bench}", "metric: score"]
    if build:
        lines.append(f"build: {json.dumps(build)}")  # JSON strings are YAML strings
    if check:
        lines.append(f"check: {json.dumps(check)}")
    lines.append("timeouts: {build: 60, bench: 30, check: 30, runtime: 60}")
    lines.append("experiments: {" + ", ".join(f"{k}: {v}" for k, v in experiments.items()) + "}")
    return "\n".join(lines) + "\n"
