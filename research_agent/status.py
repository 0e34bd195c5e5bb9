"""`research-agent status`: a read-only view of a run, live or finished.

Everything comes from RUN_DIR/ledger.sqlite, opened read-only (so a running `optimize` is never
blocked or written to), plus the run's task.yaml for the metric. `build_status` returns the JSON
contract; `status_table` renders the same dict for a terminal.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import yaml

from .errors import RunDirError
from .ledger import LedgerView, RunStatus, read_view
from .text import one_line, squash
from .result import kept as kept_result

DECISION_STYLES = {"kept": "bold green", "discarded": "dim", "failed": "red", "rejected": "magenta"}
STATUS_STYLES = {"pending": "dim", "running": "yellow"}


# --- reading the ledger -------------------------------------------------------------------------


def require_run_dir(path: Path) -> None:
    """The one wording of a missing or wrong run directory, for every command that takes RUN_DIR."""
    if not Path(path).is_dir():
        raise RunDirError(f"run directory not found: {path}")
    if not (Path(path) / "ledger.sqlite").is_file() or not (Path(path) / "task.yaml").is_file():
        raise RunDirError(f"not a run directory (no ledger.sqlite / task.yaml): {path}")


def read_ledger(run_dir: Path) -> LedgerView:
    """Read RUN_DIR/ledger.sqlite without writing to it; RunDirError if it is missing or unreadable."""
    require_run_dir(Path(run_dir))
    return read_view(Path(run_dir))


def read_task(run_dir: Path) -> dict:
    """The run's resolved task.yaml as a dict ({} if absent or unreadable: status must still work)."""
    path = Path(run_dir) / "task.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def task_metric(task: dict) -> dict:
    metric = task.get("metric")
    if isinstance(metric, dict):
        return {"name": metric.get("name"), "direction": metric.get("direction")}
    if isinstance(metric, str):
        return {"name": metric, "direction": task.get("direction")}
    return {"name": None, "direction": None}


def lower_is_better(direction: str | None) -> bool:
    return str(direction or "").lower() in {"min", "minimize", "lower", "less", "decrease"}


# --- the status contract ------------------------------------------------------------------------


def experiment_entry(exp: dict, view: LedgerView) -> dict:
    effect = None
    if exp.get("effect_median") is not None:
        effect = {"median": exp["effect_median"], "ci": [exp.get("ci_lo"), exp.get("ci_hi")]}
    return {
        "id": exp["id"],
        "hypothesis": exp["hypothesis"],
        "title": exp["title"],
        "status": exp["status"],
        "decision": exp.get("decision"),
        "effect": effect,
        "base_commit": exp.get("base_commit"),
        "branch": exp.get("branch"),
        "cost_usd": round(view.costs_by_experiment.get(exp["id"], 0.0), 6),
        "reason": exp.get("reason"),
        # extras
        "kind": exp.get("kind"),
        "round": exp.get("round"),
        "n_pairs": exp.get("n_pairs"),
        "cand_commit": exp.get("cand_commit"),
        "checks": _checks(exp),  # guards, holdout, identical build
    }


def _checks(exp: dict) -> dict:
    try:
        return json.loads(exp.get("checks") or "{}")
    except (TypeError, ValueError):
        return {}


def build_status(run_dir: Path) -> dict:
    """The status of a run as the documented JSON dict. Raises RunDirError without a ledger."""
    run_dir = Path(run_dir)
    view = read_ledger(run_dir)
    return status_from_view(view, read_task(run_dir))


def status_from_view(view: LedgerView, task: dict) -> dict:
    run = view.run
    experiments = [experiment_entry(exp, view) for exp in view.experiments]
    split = kept_result(experiments, run.get("base_commit"), run.get("best_commit"))
    in_best = {e["id"] for e in split.in_best}
    kept = [e for e in experiments if e["decision"] == "kept" and e["effect"] is not None]
    # The best is a change in the best (not a winner dropped when stacking), once the round has stacked them.
    kept = [e for e in kept if e["id"] in in_best] or kept
    best = None
    if kept:
        best = dict(max(kept, key=lambda e: e["effect"]["median"]))
        best["commit"] = run.get("best_commit")
    for entry in experiments:
        entry["in_best"] = entry["id"] in in_best
    cv = run.get("baseline_cv")
    median = run.get("baseline_median")
    if median is None and view.baseline_samples:
        median = statistics.median(view.baseline_samples)
    return {
        "run": run["id"],
        "task": run.get("task_name") or task.get("name"),
        "baseline": {"median": median, "cv": cv, "samples": list(view.baseline_samples)},
        "experiments": experiments,
        "best": best,
        # extras
        "state": run.get("status"),
        "round": run.get("round"),
        "metric": task_metric(task),
        "base_commit": run.get("base_commit"),
        "best_commit": run.get("best_commit"),
        "total_cost_usd": round(view.total_cost, 6),
        "cost_by_kind_usd": {kind: round(usd, 6) for kind, usd in sorted(view.costs_by_kind.items())},  # compute | llm | agent
        "cost_per_kept_usd": round(view.total_cost / len(kept), 6) if kept else None,
        # the one count of kept changes: in the best, or won alone and dropped when stacking (see result.py)
        "kept": {"in_best": [e["id"] for e in split.in_best], "dropped": [e["id"] for e in split.dropped],
                 "summary": split.summary()},
    }


# --- formatting ---------------------------------------------------------------------------------


def fmt_value(value: float | None) -> str:
    """A metric value with 4 significant digits: 2.600, 43.21, 1234, 12346, 1.235e+06."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–" if value is None or math.isnan(value) else str(value)
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if 1e-3 <= magnitude < 1e4:
        return f"{value:#.4g}".rstrip(".")
    if 1e4 <= magnitude < 1e6:
        return f"{value:.0f}"
    return f"{value:.4g}"


def fmt_pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "–"
    percent = round(value * 100, 1) + 0.0  # no "-0.0%"
    return f"{percent:+.1f}%" if signed else f"{percent:.1f}%"


def fmt_multiple(change: float | None) -> str:
    """A relative change over +100% as the multiple it is: 1.562 → ×2.56, 155.3 → ×156; else ""."""
    if change is None or not math.isfinite(change) or change <= 1.0:
        return ""
    factor = 1.0 + change
    return f"×{factor:.2f}" if factor < 10 else f"×{factor:.1f}" if factor < 100 else f"×{factor:.0f}"


def fmt_effect(effect: dict | None) -> str:
    """+3.1% [+2.0%, +4.2%]; over +100% the multiple too: +1462.9% (×15.6) [+1401.0%, +1530.2%]"""
    if not effect or effect.get("median") is None:
        return "–"
    text = fmt_pct(effect["median"])
    if fmt_multiple(effect["median"]):
        text += f" ({fmt_multiple(effect['median'])})"
    lo, hi = (list(effect.get("ci") or []) + [None, None])[:2]
    if lo is None or hi is None:
        return text
    return f"{text} [{fmt_pct(lo)}, {fmt_pct(hi)}]"


def fmt_usd(value: float | None) -> str:
    value = value or 0.0
    return f"${value:.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def outcome(exp: dict) -> str:
    """The decision if there is one, else the status (pending/running)."""
    return exp.get("decision") or exp.get("status") or "?"


WIDE = 110  # below this many columns (an 80-column terminal, a pipe) the status is a list, not a table


def _wide_table(experiments: list[dict]):
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, header_style="bold")
    for name, kwargs in (
        ("id", {"no_wrap": True}),
        ("hyp", {"no_wrap": True}),
        ("title", {"max_width": 40}),
        ("status", {"no_wrap": True}),
        ("effect [interval]", {"no_wrap": True, "justify": "right"}),
        ("pairs", {"justify": "right"}),
        ("reason", {"overflow": "ellipsis", "max_width": 50}),
    ):
        table.add_column(name, **kwargs)
    for exp in experiments:
        state = outcome(exp)
        table.add_row(
            exp["id"],
            exp.get("hypothesis") or "",
            exp.get("title") or "",
            Text(state, style=DECISION_STYLES.get(state) or STATUS_STYLES.get(state, "")),
            fmt_effect(exp.get("effect")),
            str(exp["n_pairs"]) if exp.get("n_pairs") is not None else "",
            one_line(exp.get("reason") or "", 60),
        )
    return table


def _narrow_list(experiments: list[dict]):
    """Each experiment as a short block — decision, effect and pairs; then title; then reason — wrapped at
    word boundaries, so nothing is dropped or cut mid-word at 80 columns or in a pipe."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")  # folds only a single word longer than the column
    for exp in experiments:
        state = outcome(exp)
        cell = Text()
        cell.append(state, style=DECISION_STYLES.get(state) or STATUS_STYLES.get(state, ""))
        if exp.get("effect"):
            cell.append(f"  {fmt_effect(exp['effect'])}")
        if exp.get("n_pairs") is not None:
            cell.append(f"  {exp['n_pairs']} pairs")
        cell.append(f"\n{exp.get('hypothesis') or ''}: {squash(exp.get('title') or '')}")
        if exp.get("reason"):
            cell.append("\n" + one_line(exp["reason"], 240), style="dim")
        grid.add_row(exp["id"], cell)
    return grid


def status_table(status: dict, width: int | None = None):
    """A rich renderable for `research-agent status` without --json; `width`: the console's (narrow below WIDE)."""
    from rich.console import Group
    from rich.text import Text

    metric = status.get("metric") or {}
    header = Text()
    header.append(f"run {status['run']}", style="bold")
    header.append(f"  task {status.get('task') or '?'}")
    if status.get("state"):
        header.append(f"  [{status['state']}]", style="yellow" if status["state"] == RunStatus.RUNNING else "")
    if metric.get("name"):
        better = "lower" if lower_is_better(metric.get("direction")) else "higher"
        header.append(f"  metric {metric['name']} ({better} is better)")

    base = status.get("baseline") or {}
    baseline = Text("baseline: ", style="bold")
    if base.get("median") is None:
        baseline.append("not measured yet", style="dim")
    else:
        cv = base.get("cv")
        baseline.append(f"median {fmt_value(base['median'])}")
        baseline.append(f", CV {fmt_pct(cv, signed=False)}" if cv is not None else "")
        baseline.append(f", n={len(base.get('samples') or [])}")

    experiments = status.get("experiments") or []
    table = _wide_table(experiments) if width is None or width >= WIDE else _narrow_list(experiments)
    best = status.get("best")
    best_line = Text("best: ", style="bold")
    if best:
        best_line.append(f"{best['id']} ({best.get('title') or best.get('hypothesis')}) ", style="green")
        best_line.append(fmt_effect(best.get("effect")))
        if best.get("commit"):
            best_line.append(f"  commit {best['commit'][:12]}")
    else:
        best_line.append("nothing kept yet" if status.get("state") == RunStatus.RUNNING else "nothing kept", style="dim")
    total = status.get("total_cost_usd")
    parts = [header, baseline]
    parts.append(table if experiments else Text("no experiments yet", style="dim"))
    parts.append(best_line)
    if (status.get("kept") or {}).get("in_best") or (status.get("kept") or {}).get("dropped"):
        parts.append(Text("kept: " + status["kept"]["summary"]))
    if total:
        kinds = status.get("cost_by_kind_usd") or {}
        line = f"cost: {fmt_usd(total)}" + (" (" + ", ".join(f"{k} {fmt_usd(v)}" for k, v in kinds.items()) + ")" if kinds else "")
        if status.get("cost_per_kept_usd") is not None:
            line += f"; {fmt_usd(status['cost_per_kept_usd'])} per kept improvement"
        parts.append(Text(line, style="dim"))
    return Group(*parts)
