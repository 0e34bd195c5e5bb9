"""The live view while a run goes: a rich table on a terminal, plain lines elsewhere (CI, logs).

Pairs show as n/max (max: `experiments.max_repeats`, where the gate must decide); the ETA is an
upper bound from the running experiments' own pair times — each may need every pair up to max —
plus the pending ones at the mean time a finished experiment took, spread over the workers.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from .status import fmt_effect
from .text import cut_at_word

COLOURS = {"kept": "green", "discarded": "yellow", "failed": "red", "rejected": "magenta", "running": "cyan"}
TITLE_WIDTH = 48


def effect_text(row: dict) -> str:
    if row.get("effect_median") is None:
        return ""
    return fmt_effect({"median": row["effect_median"], "ci": [row.get("ci_lo"), row.get("ci_hi")]})


def cut_title(text: str, width: int = TITLE_WIDTH) -> str:
    """At most `width` characters, cut at a word boundary (… marks the cut)."""
    return cut_at_word(text or "", width)


def eta_seconds(running: list[tuple[int, int, float]], pending: int, finished_s: list[float], workers: int) -> float | None:
    """Upper bound on the seconds left. `running`: (pairs done, max pairs, seconds so far on those pairs) per
    running experiment; `pending`: experiments not started; `finished_s`: how long finished ones took."""
    if any(done == 0 for done, _, _ in running):
        return None  # an experiment has no pair time measured yet
    left = max(((most - done) * seconds / done for done, most, seconds in running), default=0.0)  # they run at once
    if pending:
        if finished_s:
            each = sum(finished_s) / len(finished_s)
        elif running:  # nothing finished yet: a pending one may need every pair, at the running ones' pace
            each = max(most * seconds / done for done, most, seconds in running)
        else:
            return None
        left += pending * each / max(1, workers)
    return left


def fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA –"
    if seconds < 90:
        return f"ETA ≤ {seconds:.0f}s"
    if seconds < 5400:
        return f"ETA ≤ {seconds / 60:.0f} min"
    return f"ETA ≤ {seconds / 3600:.1f} h"


class LiveView:
    def __init__(self, orchestrator, console: Console):
        self.orch = orchestrator
        self.console = console

    def __rich__(self):
        ledger, progress = self.orch.ledger, self.orch.progress
        most = self.orch.task.experiments.max_repeats
        run = ledger.run() or {}
        table = Table(title=f"{self.orch.run.run_id} — {progress.message}", expand=False)
        for column in ("experiment", "hypothesis", "status", "pairs", "effect", "elapsed"):
            table.add_column(column, no_wrap=True)  # titles are already cut at a word; nothing wraps mid-word
        # The title gets what the other columns leave (they need about 88 columns), cut at a word.
        title_width = max(16, min(TITLE_WIDTH, self.console.width - 88))
        rows = ledger.experiments()  # one read per refresh (4 a second) serves the table and the best line
        running, finished = [], []
        for row in rows:
            state = row["decision"] or progress.phase.get(row["id"]) or row["status"]
            colour = COLOURS.get(row["decision"] or row["status"], "white")
            elapsed = ""
            if row["id"] in progress.started and row["status"] == "running":
                elapsed = f"{time.monotonic() - progress.started[row['id']]:.0f}s"
            elif row["finished"] and row["started"]:
                elapsed = f"{row['finished'] - row['started']:.0f}s"
                finished.append(row["finished"] - row["started"])
            if row["n_pairs"] is not None:
                pairs = f"{row['n_pairs']}/{most}"
            elif row["status"] == "running":
                done, seconds = ledger.pair_times(row["id"])
                running.append((done, most, seconds))
                pairs = f"{done}/{most}"
            else:
                pairs = ""
            table.add_row(row["id"], cut_title(row["title"], title_width), f"[{colour}]{state}[/]", pairs, effect_text(row), elapsed)
        lines = []
        pending = sum(1 for r in rows if r["status"] == "pending")
        if running or pending:
            lines.append(f"{len(running)} running, {pending} pending; "
                         + fmt_eta(eta_seconds(running, pending, finished, self.orch.task.experiments.parallel)))
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
