"""The Distiller interface: turns the baseline and the research evidence into a draft plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..research.base import Evidence
    from .model import Plan


@runtime_checkable
class Distiller(Protocol):
    """Implementations: `ExtractiveDistiller` (no model; quotes and ranks) and LLM distillers.

    `task` is the Task; `baseline` is {"median": float, "cv": float, "samples": [...]} from the
    baseline runs; `evidence` is what the research phase gathered. Returns a validated Plan with
    status "draft". Raises UserError when there is nothing to try.
    """

    def plan(self, task: Any, baseline: dict, evidence: "Evidence") -> "Plan": ...
