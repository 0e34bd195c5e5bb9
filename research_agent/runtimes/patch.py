"""The `patch` runtime: applies the hypothesis's diff (fenced in the plan, or its patch file) with a 3-way apply. No LLM involved."""

from __future__ import annotations

from pathlib import Path

from .. import git, proc
from .base import Brief, Runtime, RuntimeResult, blocked_result


class PatchRuntime(Runtime):
    name = "patch"

    @classmethod
    def from_spec(cls, options: dict, timeout: float, fence=None) -> PatchRuntime:
        return cls(timeout=min(timeout, 120), fence=fence)  # git apply is quick: a hang is a fault

    def __init__(self, timeout: float = 120, fence=None):
        self.timeout = timeout
        self.fence = fence

    @staticmethod
    def _roots(workdir: Path) -> list[Path]:
        """The worktree, plus its index and the object store: --3way records blobs. No program of the
        patch runs here (git apply only writes files, and refuses paths outside the tree)."""
        try:
            gitdir = git.worktree_gitdir(workdir)
        except git.GitError:
            return [workdir]
        return [workdir, gitdir, gitdir.parent.parent / "objects"]

    def apply(self, workdir: Path, brief: Brief) -> RuntimeResult:
        diff = brief.diff
        if not diff and brief.patch_file is not None:
            try:
                diff = Path(brief.patch_file).read_text(encoding="utf-8")
            except OSError as error:
                return RuntimeResult(False, f"patch file {brief.patch_file} cannot be read: {error.strerror}")
        if not diff:
            return RuntimeResult(False, f"{brief.hypothesis_id} has no diff for the patch runtime")
        patch_file = (brief.exp_dir or brief.path.parent) / "hypothesis.diff"
        patch_file.write_text(diff, encoding="utf-8")
        # --3way falls back to a merge when the context moved; it needs the blobs, which the worktree has.
        confined = self.fence.confine(self._roots(workdir)) if self.fence else None
        result = proc.run(git.argv(workdir, "apply", "--3way", "--whitespace=nowarn", str(patch_file)), cwd=workdir,
                          timeout=self.timeout, log_path=patch_file.parent / "runtime.log", env=git.environment(), fence=confined)
        if result.blocked:
            return blocked_result(result.blocked, patch_file.parent / "runtime.log")
        if result.ok:
            return RuntimeResult(True)
        conflicts = [line[2:].strip() for line in result.output.splitlines() if line.startswith("U ")]
        if conflicts:  # the 3-way fallback left these files in conflict
            return RuntimeResult(False, f"patch does not apply: conflict in {', '.join(conflicts)}")
        first = next((line for line in result.output.splitlines() if line.strip().startswith("error")), result.tail(1))
        return RuntimeResult(False, f"patch does not apply: {first.strip()}")
