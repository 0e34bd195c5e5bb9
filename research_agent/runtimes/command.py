"""The `command` runtime: any coding-agent CLI, run in the worktree with `{brief}` and `{workdir}` filled in."""

from __future__ import annotations

import shlex
from pathlib import Path

from .. import proc
from .base import Brief, RuntimeResult, blocked_result


class CommandRuntime:
    name = "command"

    def __init__(self, command: str, timeout: float = 1800, fence=None):
        self.command = command
        self.timeout = timeout
        self.fence = fence

    def apply(self, workdir: Path, brief: Brief) -> RuntimeResult:
        # Quote the substitutions: paths may contain spaces, and the template is a shell line.
        line = self.command.replace("{brief}", shlex.quote(str(brief.path))).replace("{workdir}", shlex.quote(str(workdir)))
        log = (brief.exp_dir or brief.path.parent) / "runtime.log"
        confined = self.fence.confine([workdir]) if self.fence else None
        result = proc.run(line, cwd=workdir, timeout=self.timeout, log_path=log, fence=confined)
        if result.blocked:  # whatever its exit: the agent tried to write outside
            return blocked_result(result.blocked, log)
        if result.timed_out:
            return RuntimeResult(False, f"runtime timed out after {self.timeout:.0f}s", transcript=log)
        if result.stopped:
            return RuntimeResult(False, "stopped", transcript=log)
        if result.returncode != 0:
            return RuntimeResult(False, f"runtime exited {result.returncode}: {result.tail(1)}", transcript=log)
        return RuntimeResult(True, transcript=log)
