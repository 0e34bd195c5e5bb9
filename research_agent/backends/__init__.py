"""Workers that run experiments, registered in one place: `BACKENDS` is the only list of their names
(task validation, the CLI's help and `make_backend` read it). SkyPilot is imported only when used."""

from __future__ import annotations

from typing import Callable

from ..errors import UserError


def _local(run, options: dict):
    from .local import LocalBackend

    return LocalBackend(run.path, run.repo_dir, run.ledger)


def _skypilot(run, options: dict):
    from .skypilot import SkyPilotBackend

    return SkyPilotBackend(run, options)


# name -> factory(run, options); the order is the order shown to users.
BACKENDS: dict[str, Callable] = {"local": _local, "skypilot": _skypilot}
BACKEND_NAMES = tuple(BACKENDS)


def make_backend(run, options: dict | None = None):
    """The backend named by the task (`workers: {backend: ...}`)."""
    name = run.task.workers.backend
    factory = BACKENDS.get(name)
    if factory is None:
        raise UserError(f"unknown backend '{name}' (available: {', '.join(BACKEND_NAMES)})")
    return factory(run, options or {})
