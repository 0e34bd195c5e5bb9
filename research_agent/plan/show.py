"""`plan show`: the hypotheses as a rich table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .model import Plan

STATUS_STYLES = {
    "pending": "dim",
    "running": "bold cyan",
    "kept": "bold green",
    "discarded": "yellow",
    "failed": "red",
    "rejected": "magenta",
}


def plan_table(plan: Plan) -> Table:
    caption = f"plan {plan.status}"
    if plan.metric:
        caption += f" · metric {plan.metric} ({plan.direction})"
    if plan.baseline and "median" in plan.baseline:
        caption += f" · baseline {plan.baseline['median']}"
    table = Table(title=plan.objective, caption=caption)
    for name in ("id", "title", "status", "expected", "risk", "diff?", "sources"):
        table.add_column(name, overflow="fold")
    for h in plan.hypotheses:
        table.add_row(
            h.id,
            h.title,
            Text(h.status, style=STATUS_STYLES.get(h.status, "")),
            h.expected or "",
            h.risk or "",
            "yes" if h.diff else ("file" if h.patch_file else "no"),
            ", ".join(h.sources),
        )
    return table
