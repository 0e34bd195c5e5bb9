"""Every mined commit accounted for, and what each research round did.

`research/mined.json` holds every commit any research round read (mine.MinedCommit, plus the round
that first read it); a mined hypothesis says which commits it holds (`- commits: 1a2b3c4d5e6f, …`).
Joining the two gives one row per commit — tried (as which hypotheses) or skipped with the reason —
so that mined = tried + skipped always. `research/log.json` has one entry per research round or
re-mining. Both feed the plan's `## Research log` section and the report.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..plan.extractive import commit_ref, one_line

MINED_FILE = "research/mined.json"
LOG_FILE = "research/log.json"
MAX_ROWS = 200  # commits listed in the plan's table (the counts always cover all)


def _read(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def _write(path: Path, data: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_commits(run_path: Path) -> list[dict]:
    return _read(Path(run_path) / MINED_FILE)


def record_commits(run_path: Path, commits: list, round_no: int) -> None:
    """Add (or refresh) the commits a research round read; the round that first read each is kept."""
    path = Path(run_path) / MINED_FILE
    rows = {row["id"]: row for row in _read(path) if isinstance(row, dict) and "id" in row}
    for commit in commits:
        data = commit.to_dict() if hasattr(commit, "to_dict") else dict(commit)
        known = rows.get(data["id"])
        data["round"] = known.get("round", round_no) if known else round_no
        rows[data["id"]] = {**(known or {}), **data}
    _write(path, list(rows.values()))


def load_rounds(run_path: Path) -> list[dict]:
    return _read(Path(run_path) / LOG_FILE)


def record_round(run_path: Path, entry: dict) -> None:
    path = Path(run_path) / LOG_FILE
    _write(path, [*_read(path), entry])


def commits_of(hypothesis) -> list[str]:
    """The commit refs a mined hypothesis holds (its `- commits:` field)."""
    return [part.strip() for part in (getattr(hypothesis, "fields", {}) or {}).get("commits", "").split(",") if part.strip()]


def account(commits: list[dict], hypotheses: list) -> list[dict]:
    """One row per mined commit: {id, item_id, title, round, tried: [hypothesis ids], stacked: [ids], reason}."""
    rows = []
    for commit in commits:
        ref, cid, item = commit_ref(commit["id"]), commit["id"], commit.get("item_id", "")
        holding, stacked, citing = [], [], []
        for hyp in hypotheses:
            refs = commits_of(hyp)
            cites = cid in hyp.sources or item in hyp.sources
            if ref in refs and cites:
                (holding if len(refs) == 1 else stacked).append(hyp.id)
            elif cid in hyp.sources:
                citing.append(hyp.id)
        reason = commit.get("reason") or ""
        if not holding and not stacked:
            if citing:
                reason = f"duplicate of the change tried as {', '.join(citing)}"
            elif not reason:
                reason = "left out of the plan by the planner (see the bottleneck analysis)"
        rows.append({"id": cid, "item_id": item, "title": commit.get("title", ""), "round": commit.get("round", 1),
                     "tried": holding, "stacked": stacked, "reason": "" if holding or stacked else reason})
    return rows


def counts(rows: list[dict]) -> dict[str, int]:
    tried = sum(1 for row in rows if row["tried"] or row["stacked"])
    return {"mined": len(rows), "tried": tried, "skipped": len(rows) - tried,
            "sources": len({row["item_id"] for row in rows})}


def outcome(row: dict) -> str:
    parts = []
    if row["tried"]:
        parts.append("tried as " + ", ".join(row["tried"]))
    if row["stacked"]:
        parts.append("in " + ", ".join(row["stacked"]) + " (stacked)")
    return "; ".join(parts) if parts else f"skipped: {row['reason']}"


def research_log(run_path: Path, plan, noise_line: str = "") -> str:
    """The plan's `## Research log` text: each research round, the noise estimate, every mined commit."""
    blocks = []
    for entry in load_rounds(run_path):
        blocks.append(round_line(entry))
    if noise_line:
        blocks.append(f"**Noise.** {one_line(noise_line, 600)}")
    rows = account(load_commits(run_path), plan.hypotheses)
    if rows:
        c = counts(rows)
        lines = [f"**Mined commits.** {c['mined']} read from {c['sources']} source{'s' if c['sources'] != 1 else ''}: "
                 f"{c['tried']} tried, {c['skipped']} skipped.", "",
                 "| commit | subject (untrusted) | research round | outcome |", "|---|---|---|---|"]
        for row in rows[:MAX_ROWS]:
            cells = (row["id"], row["title"], str(row["round"]), outcome(row))
            lines.append("| " + " | ".join(one_line(cell, 160).replace("|", "\\|") or " " for cell in cells) + " |")
        if len(rows) > MAX_ROWS:
            lines.append(f"\n({len(rows) - MAX_ROWS} more in {MINED_FILE})")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def round_line(entry: dict) -> str:
    """One research round (or re-mining) as a sentence for the plan and the report."""
    when = entry.get("when") or ""
    head = f"**Research round {entry.get('round', '?')}**" + (f" ({one_line(when, 160)})" if when else "")
    parts = []
    if entry.get("queries"):
        parts.append("queries: " + "; ".join(one_line(q, 120) for q in entry["queries"]))
    if entry.get("summary"):
        parts.append(one_line(entry["summary"], 300))
    if entry.get("seconds") is not None:
        parts.append(f"{entry['seconds']:.2f} s")
    added, retried = entry.get("added") or [], entry.get("retried") or []
    parts.append(("new hypotheses: " + ", ".join(added)) if added else "no new hypothesis")
    if retried:
        parts.append("retried on the new best: " + ", ".join(retried))
    return head + ": " + "; ".join(parts) + "."
