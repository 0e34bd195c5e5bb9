"""The live view while a run goes: a rich table on a terminal, plain lines elsewhere (CI, logs)."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

COLOURS = {"kept": "green", "discarded": "yellow", "failed": "red", "rejected": "magenta", "running": "cyan"}


def effect_text(row: dict) -> str:
    if row.get("effect_median") is None:
        return ""
    return f"{row['effect_median']:+.1%} [{row['ci_lo']:+.1%}, {row['ci_hi']:+.1%}]"


class LiveView:
    def __init__(self, orchestrator, console: Console):
        self.orch = orchestrator
        self.console = console

    def __rich__(self):
        ledger, progress = self.orch.ledger, self.orch.progress
        run = ledger.run() or {}
        table = Table(title=f"{self.orch.run.run_id} — {progress.message}", expand=False)
        for column in ("experiment", "hypothesis", "status", "pairs", "effect", "elapsed"):
            table.add_column(column)
        rows = ledger.experiments()  # one read per refresh (4 a second) serves the table and the best line
        for row in rows:
            state = row["decision"] or progress.phase.get(row["id"]) or row["status"]
            colour = COLOURS.get(row["decision"] or row["status"], "white")
            elapsed = ""
            if row["id"] in progress.started and row["status"] == "running":
                elapsed = f"{time.monotonic() - progress.started[row['id']]:.0f}s"
            elif row["finished"] and row["started"]:
                elapsed = f"{row['finished'] - row['started']:.0f}s"
            pairs = row["n_pairs"] if row["n_pairs"] is not None else ledger.sample_count(row["id"]) or ""
            table.add_row(row["id"], row["title"][:48], f"[{colour}]{state}[/]", str(pairs), effect_text(row), elapsed)
        lines = []
        if run.get("baseline_median") is not None:
            lines.append(f"baseline {run['baseline_median']:.4g} (noise CV {run['baseline_cv']:.2%})")
        kept = [r for r in rows if r["decision"] == "kept"]
        if kept:
            best = max(kept, key=lambda r: r["effect_median"] or 0)
            lines.append(f"best so far: {best['id']} {effect_text(best)}")
        kinds = ledger.costs_by_kind()
        if kinds:
            total = sum(kinds.values())
            lines.append(f"cost so far: ${total:.2f} (" + ", ".join(f"{k} ${v:.2f}" for k, v in kinds.items()) + ")"
                         + (f", ${total / len(kept):.2f} per kept improvement" if kept else ""))
        return Group(table, *lines)


@contextmanager
def live(orchestrator, console: Console | None = None):
    """Show the live table on a terminal; otherwise let the orchestrator's notices print as lines."""
    console = console or Console(stderr=True)
    # Notices print as lines in both modes; under Live, rich prints them above the table.
    orchestrator.notify = lambda line: console.print(line, highlight=False, soft_wrap=True)
    if not (console.is_terminal and sys.stderr.isatty()):
        yield
        return
    with Live(LiveView(orchestrator, console), console=console, refresh_per_second=4, transient=False):
        yield
