"""The Runtime interface: something that edits the code in a worktree to try one hypothesis."""

from __future__ import annotations

from dataclasses import dataclass, field
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence


@dataclass
class Brief:
    """What a runtime is asked to do: plan context plus one hypothesis, also written to `path`."""

    text: str
    path: Path
    hypothesis_id: str
    diff: str | None = None  # the hypothesis's diff (fenced in the plan, or read from its patch file)
    exp_dir: Path | None = None  # where the runtime may keep its transcript and logs
    patch_file: Path | None = None  # the plan's patch file for a large diff, when the diff is not inline


@dataclass
class RuntimeResult:
    ok: bool
    reason: str | None = None  # why it failed, one line
    transcript: Path | None = None
    tokens: int | None = None
    cost_usd: float = 0.0
    turns: int | None = None
    details: dict = field(default_factory=dict)


def blocked_result(paths: list[str], transcript: Path | None = None, **details) -> RuntimeResult:
    """The runtime tried to write outside its worktree and the fence stopped it: rejected, never kept."""
    return RuntimeResult(False, f"write outside the worktree blocked: {paths[0]}", transcript=transcript,
                         details={**details, "rejected": True, "blocked": list(paths)})


class Runtime(ABC):
    """Edits one worktree for one hypothesis. Only `apply` is required; the rest has the defaults of a
    runtime that needs nothing checked and has nothing to warn about."""

    name: str
    notices: Sequence[str] = ()  # one-line warnings (version outside the tested range, unsafe mode...), each shown once

    @classmethod
    def from_spec(cls, options: dict, timeout: float, fence=None) -> Runtime:
        """The runtime as the task's `runtime:` block describes it (the registry makes runtimes with this)."""
        return cls(options, timeout=timeout, fence=fence)

    @abstractmethod
    def apply(self, workdir: Path, brief: Brief) -> RuntimeResult: ...

    def preflight(self) -> None:
        """Raise a UserError when it cannot run here (a missing key or login): before the baseline is spent."""
