"""Coding-agent runtimes, registered in one place."""

from __future__ import annotations

from ..errors import UserError
from .base import Brief, Runtime, RuntimeResult


def make_runtime(name: str, options: dict, timeout: float) -> Runtime:
    if name == "patch":
        from .patch import PatchRuntime

        return PatchRuntime(timeout=min(timeout, 120))
    if name == "command":
        from .command import CommandRuntime

        command = options.get("command")
        if not command:
            raise UserError("runtime 'command' needs a command: use --runtime-cmd 'agent --message-file {brief}'")
        return CommandRuntime(command, timeout=timeout)
    if name == "claude-code":
        from .claude_code import ClaudeCodeRuntime

        return ClaudeCodeRuntime(options, timeout=timeout)
    if name == "codex":
        from .codex import CodexRuntime

        return CodexRuntime(options, timeout=timeout)
    raise UserError(f"unknown runtime '{name}' (available: patch, command, claude-code, codex)")


__all__ = ["Brief", "Runtime", "RuntimeResult", "make_runtime"]
