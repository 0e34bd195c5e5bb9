"""The local backend: each worker is a pair of git worktrees of the run's repository, under RUN_DIR.

Worktrees are recorded in the ledger before they are created and marked down after removal, so a
resumed run (or `research-agent down`) can always find and remove what a killed run left behind.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Callable

from .. import experiment, git
from ..experiment import BaselineJob, BaselineResult, Job, JobResult
from ..ledger import Ledger, WorkerStatus
from ..runtimes.base import Runtime
from .base import Backend, quiet


class LocalBackend(Backend):
    """Keeps every default of the Backend contract: a local slot is this machine, so a noisy one is
    warned about, not replaced, and it costs nothing beyond what the runtimes report."""

    name = "local"

    @classmethod
    def for_run(cls, run, options: dict, notify: Callable[[str], None] = quiet) -> LocalBackend:
        return cls(run.path, run.repo_dir, run.ledger, notify=notify)

    def __init__(self, run_dir: Path, repo_dir: Path, ledger: Ledger, notify: Callable[[str], None] = quiet):
        super().__init__(notify)
        self.root = run_dir / "worktrees"
        self.repo = Path(repo_dir)  # RUN_DIR/repo.git: every git call on it goes through research_agent.git
        self.ledger = ledger
        self._git_lock = threading.Lock()  # git worktree add/remove on one repo must not overlap

    def provision(self, n: int) -> list[str]:
        """Local workers are slots on this machine; worktrees are made per experiment."""
        return [f"local-{i}" for i in range(1, n + 1)]

    def baseline(self, commit: str, job: BaselineJob) -> BaselineResult:
        workdir = self.checkout("baseline", commit, "baseline")
        try:
            return experiment.measure_baseline(workdir, job)
        finally:
            self.release(workdir)

    def run(self, worker: str, job: Job, runtime: Runtime, base_commit: str, branch: str) -> JobResult:
        base_dir = self.checkout(f"{job.exp_id}-base", base_commit, job.exp_id)
        try:
            cand_dir = self.checkout(f"{job.exp_id}-cand", base_commit, job.exp_id, branch=branch)
            try:
                return experiment.execute(job, runtime, base_dir, cand_dir, message=f"{job.exp_id}: {job.title}")
            finally:
                self.release(cand_dir)
        finally:
            self.release(base_dir)

    def checkout(self, name: str, commit: str, experiment_id: str | None, branch: str | None = None) -> Path:
        path = self.root / name
        self.ledger.add_worker(name, self.name, str(path), experiment_id)
        with self._git_lock:
            if path.exists():  # left over from a killed attempt
                self._remove(path)
            args = ["add", "--force", "--quiet"]
            args += ["-B", branch, str(path), commit] if branch else ["--detach", str(path), commit]
            git.run(self.repo, "worktree", *args)
        self.ledger.set_worker_status(name, WorkerStatus.UP)
        return path

    def release(self, path: Path) -> None:
        with self._git_lock:
            self._remove(path)
        self.ledger.set_worker_status(path.name, WorkerStatus.DOWN)

    def teardown(self) -> list[str]:
        """Remove every worktree the ledger knows to be up (or half-made); returns their names."""
        removed = []
        for worker in self.ledger.workers(live_only=True, backend=self.name):
            with self._git_lock:
                self._remove(Path(worker.path))
            self.ledger.set_worker_status(worker.id, WorkerStatus.DOWN)
            removed.append(worker.id)
        with self._git_lock:
            git.run(self.repo, "worktree", "prune")
        return removed

    def _remove(self, path: Path) -> None:
        try:
            git.run(self.repo, "worktree", "remove", "--force", "--force", str(path))
        except git.GitError:
            pass  # not registered (half-made, or already pruned): the folder is removed below
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
