"""Workers that run experiments, registered in one place: `BACKENDS` is the only list of their names
(task validation, the CLI's help, `doctor`, `down` and `make_backend` read it). Each is named by
"module:Class" strings and imported only when used: SkyPilot only when a run asks for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..registry import load, lookup


@dataclass(frozen=True)
class BackendKind:
    """What the rest of the package needs to know about a backend without importing it."""

    target: str  # "module:Class" of its Backend
    remote: bool  # the workers are other machines: they clone a URL target themselves; --dryrun shows their launch
    prepare: str | None = None  # "module:function(task) -> task": check its options, resolve its files, before the run dir is made
    doctor: str | None = None  # "module:function() -> dict": its row in `research-agent doctor`

    def load(self):
        return load(self.target)

    def prepare_task(self, task):
        return load(self.prepare)(task) if self.prepare else task

    def doctor_info(self) -> dict | None:
        return load(self.doctor)() if self.doctor else None


# The order is the order shown to users; the first is the default.
BACKENDS: dict[str, BackendKind] = {
    "local": BackendKind("research_agent.backends.local:LocalBackend", remote=False),
    "skypilot": BackendKind("research_agent.backends.skypilot:SkyPilotBackend", remote=True,
                            prepare="research_agent.backends.skypilot:prepare_task",
                            doctor="research_agent.backends.skypilot:doctor_info"),
}
BACKEND_NAMES = tuple(BACKENDS)
DEFAULT_BACKEND = BACKEND_NAMES[0]
REMOTE_BACKENDS = tuple(name for name, kind in BACKENDS.items() if kind.remote)


def backend_kind(name: str) -> BackendKind:
    """The registered backend `name`, or one clear error naming the registered ones."""
    return lookup(BACKENDS, name, "backend")


def make_backend(run, options: dict | None = None, notify: Callable[[str], None] | None = None):
    """The backend named by the task (`workers: {backend: ...}`); `notify` gets its one-line messages."""
    from .base import quiet

    return backend_kind(run.task.workers.backend).load().for_run(run, options or {}, notify or quiet)
