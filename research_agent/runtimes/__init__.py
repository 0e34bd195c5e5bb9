"""Coding-agent runtimes, registered in one place: `RUNTIMES` is the only list of their names (task
validation, the CLI's help, `doctor`, the cloud workers' setup and `make_runtime` read it). Each is
named by a "module:Class" string and imported only when it is made."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import load, lookup
from .base import Brief, Runtime, RuntimeResult


@dataclass(frozen=True)
class RuntimeKind:
    """What the rest of the package needs to know about a runtime without importing it."""

    target: str  # "module:Class" of its Runtime
    agent: bool  # a coding agent: it can implement an idea without a diff (explore, ablate's control arm)
    npm: str | None = None  # the npm package of its CLI: cloud workers install it at the tested version
    doctor: bool = False  # its module has doctor_info() for `research-agent doctor`
    secrets: tuple[str, ...] = ()  # environment variables a cloud worker needs (their values stay in memory)
    key_option: str | None = None  # the option that names another variable for secrets[0]
    needs: str | None = None  # the program it runs, shown by `doctor` (for runtimes without doctor_info)
    note: str = ""  # `doctor`'s note for it (for runtimes without doctor_info)

    @property
    def module(self) -> str:
        return self.target.split(":")[0]

    def load(self) -> type[Runtime]:
        return load(self.target)

    def secret_names(self, options: dict) -> list[str]:
        names = list(self.secrets)
        if self.key_option and options.get(self.key_option):
            names[0] = options[self.key_option]
        return names


# The order is the order shown to users; the first is the default.
RUNTIMES: dict[str, RuntimeKind] = {
    "patch": RuntimeKind("research_agent.runtimes.patch:PatchRuntime", agent=False, needs="git",
                         note="applies plan diffs with git apply --3way"),
    "command": RuntimeKind("research_agent.runtimes.command:CommandRuntime", agent=True, note="any agent CLI via --runtime-cmd"),
    "claude-code": RuntimeKind("research_agent.runtimes.claude_code:ClaudeCodeRuntime", agent=True,
                               npm="@anthropic-ai/claude-code", doctor=True, secrets=("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")),
    "codex": RuntimeKind("research_agent.runtimes.codex:CodexRuntime", agent=True, npm="@openai/codex", doctor=True,
                         secrets=("OPENAI_API_KEY",), key_option="env_key"),
}
RUNTIME_NAMES = tuple(RUNTIMES)
DEFAULT_RUNTIME = RUNTIME_NAMES[0]
AGENT_RUNTIMES = tuple(name for name, kind in RUNTIMES.items() if kind.agent)


def runtime_kind(name: str) -> RuntimeKind:
    """The registered runtime `name`, or one clear error naming the registered ones."""
    return lookup(RUNTIMES, name, "runtime")


def make_runtime(name: str, options: dict, timeout: float, fence=None) -> Runtime:
    """The named runtime; with `fence` (a research_agent.fence.Fence) it runs confined to its worktree."""
    return runtime_kind(name).load().from_spec(options, timeout, fence)


__all__ = ["AGENT_RUNTIMES", "Brief", "DEFAULT_RUNTIME", "RUNTIMES", "RUNTIME_NAMES", "Runtime", "RuntimeKind",
           "RuntimeResult", "make_runtime", "runtime_kind"]
