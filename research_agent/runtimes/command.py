"""The `command` runtime: any coding-agent CLI, run in the worktree with `{brief}` and `{workdir}` filled in."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .. import proc
from ..errors import UserError
from .base import Brief, Runtime, RuntimeResult, blocked_result


class CommandRuntime(Runtime):
    name = "command"

    @classmethod
    def from_spec(cls, options: dict, timeout: float, fence=None) -> CommandRuntime:
        command = options.get("command")
        if not command:
            raise UserError("runtime 'command' needs a command: use --runtime-cmd 'agent --message-file {brief}'")
        return cls(command, timeout=timeout, fence=fence)

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
        cost = reported_cost(result.output)
        if result.returncode != 0:
            return RuntimeResult(False, f"runtime exited {result.returncode}: {result.tail(1)}", transcript=log, cost_usd=cost)
        return RuntimeResult(True, transcript=log, cost_usd=cost)


# An agent CLI may say what it spent: the last `RESEARCH_AGENT_COST_USD=<x>` line it prints counts toward the budget.
COST_LINE = re.compile(r"^RESEARCH_AGENT_COST_USD=([0-9]+(?:\.[0-9]+)?)\s*$", re.MULTILINE)


def reported_cost(output: str) -> float:
    found = COST_LINE.findall(output or "")
    return float(found[-1]) if found else 0.0
