"""Coding-agent runtimes, registered in one place: `RUNTIMES` is the only list of their names (task
validation, the CLI's help and `make_runtime` read it). Each is imported only when it is made."""

from __future__ import annotations

from typing import Callable

from ..errors import UserError
from .base import Brief, Runtime, RuntimeResult


def _patch(options: dict, timeout: float, fence=None) -> Runtime:
    from .patch import PatchRuntime

    return PatchRuntime(timeout=min(timeout, 120), fence=fence)


def _command(options: dict, timeout: float, fence=None) -> Runtime:
    from .command import CommandRuntime

    command = options.get("command")
    if not command:
        raise UserError("runtime 'command' needs a command: use --runtime-cmd 'agent --message-file {brief}'")
    return CommandRuntime(command, timeout=timeout, fence=fence)


def _claude_code(options: dict, timeout: float, fence=None) -> Runtime:
    from .claude_code import ClaudeCodeRuntime

    return ClaudeCodeRuntime(options, timeout=timeout, fence=fence)


def _codex(options: dict, timeout: float, fence=None) -> Runtime:
    from .codex import CodexRuntime

    return CodexRuntime(options, timeout=timeout, fence=fence)


# name -> factory(options, timeout, fence); the order is the order shown to users.
RUNTIMES: dict[str, Callable[..., Runtime]] = {
    "patch": _patch, "command": _command, "claude-code": _claude_code, "codex": _codex,
}
RUNTIME_NAMES = tuple(RUNTIMES)


def make_runtime(name: str, options: dict, timeout: float, fence=None) -> Runtime:
    """The named runtime; with `fence` (a research_agent.fence.Fence) it runs confined to its worktree."""
    factory = RUNTIMES.get(name)
    if factory is None:
        raise UserError(f"unknown runtime '{name}' (available: {', '.join(RUNTIME_NAMES)})")
    return factory(options, timeout, fence)


__all__ = ["Brief", "RUNTIMES", "RUNTIME_NAMES", "Runtime", "RuntimeResult", "make_runtime"]
