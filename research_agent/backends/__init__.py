"""Workers that run experiments, registered in one place: local git worktrees, SkyPilot clouds."""

from __future__ import annotations

from ..errors import UserError


def make_backend(run, options: dict | None = None):
    """The backend named by the task (`workers: {backend: ...}`); SkyPilot is imported only when used."""
    name = run.task.workers.backend
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(run.path, run.repo_dir, run.ledger)
    if name == "skypilot":
        from .skypilot import SkyPilotBackend

        return SkyPilotBackend(run, options or {})
    raise UserError(f"unknown backend '{name}' (available: local, skypilot)")
