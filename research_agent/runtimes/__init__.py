"""Coding-agent runtimes, registered in one place."""

from __future__ import annotations

from ..errors import UserError
from .base import Brief, Runtime, RuntimeResult


def make_runtime(name: str, options: dict, timeout: float, fence=None) -> Runtime:
    """The named runtime; with `fence` (a research_agent.fence.Fence) it runs confined to its worktree."""
    if name == "patch":
        from .patch import PatchRuntime

        return PatchRuntime(timeout=min(timeout, 120), fence=fence)
    if name == "command":
        from .command import CommandRuntime

        command = options.get("command")
        if not command:
            raise UserError("runtime 'command' needs a command: use --runtime-cmd 'agent --message-file {brief}'")
        return CommandRuntime(command, timeout=timeout, fence=fence)
    if name == "claude-code":
        from .claude_code import ClaudeCodeRuntime

        return ClaudeCodeRuntime(options, timeout=timeout, fence=fence)
    if name == "codex":
        from .codex import CodexRuntime

        return CodexRuntime(options, timeout=timeout, fence=fence)
    raise UserError(f"unknown runtime '{name}' (available: patch, command, claude-code, codex)")


__all__ = ["Brief", "Runtime", "RuntimeResult", "make_runtime"]
