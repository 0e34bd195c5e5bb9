"""The ablation report: ablation.md, ablation.html and ablation.png, every number read from the ledger.

Per arm: experiments, kept, the best combined effect with its interval, cost per kept improvement (compute,
and LLM: planner plus coding agent), experiments per kept, and where the kept ideas came from. Then the
research arm's effect minus the control arm's, with an interval, and a plain verdict.

The combined effect of an arm is its kept chain: the first winner's effect against the baseline times each
stacked winner's re-gated effect against the best before it, (1+e1)(1+e2)… − 1; its interval multiplies the
steps' interval ends the same way (each end holds with the gate's one-sided 80%). An arm that kept nothing
is the baseline itself: exactly 0.
"""

from __future__ import annotations

import base64
import html
import io
import math
import statistics
from pathlib import Path

from .ablation import ARMS, arm_of, arm_spend
from .ledger import Ledger
from .plan import load_plan

DIFF_CONFIDENCE = 0.95  # two-sided, across seeds (Student t)
# Student t's 97.5% quantile by degrees of freedom (no scipy dependency for a handful of seeds).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.96


def source_kind(source_id: str) -> str:
    if source_id.startswith("local:") and "competitors/" in source_id:
        return "competitor"
    if source_id.startswith("local:"):
        return "local notes"
    if source_id.lower().startswith("arxiv:"):
        return "paper"
    if source_id.startswith("github:") and "#" in source_id:
        return "pull request"
    if source_id.startswith("github:"):
        return "github"
    return "other"


def arm_figures(run_dir: Path, ledger: Ledger, label: str, base_commit: str | None) -> dict:
    rows = [e for e in ledger.experiments() if e.get("arm") == label]
    tried = [e for e in rows if e["kind"] == "hypothesis" and e["status"] == "done"]
    kept = [e for e in tried if e["decision"] == "kept"]
    plan_path = Path(run_dir) / "arms" / label / "plan.md"
    plan = load_plan(plan_path) if plan_path.exists() else None
    # The kept chain: the biggest winner, then each stacked addition that was kept again.
    chain = sorted(kept, key=lambda e: e["effect_median"] or 0.0, reverse=True)[:1]
    chain += [e for e in rows if e["kind"] == "combine" and e["decision"] == "kept"]
    in_best = [chain[0]["hypothesis"]] + [e["hypothesis"] for e in chain[1:]] if chain else []
    median, lo, hi = 1.0, 1.0, 1.0
    for step in chain:
        median *= 1 + (step["effect_median"] or 0.0)
        lo *= 1 + (step["ci_lo"] if step["ci_lo"] is not None else 0.0)
        hi *= 1 + (step["ci_hi"] if step["ci_hi"] is not None else 0.0)
    ids = {e["id"] for e in rows}
    costs = {"compute": 0.0, "llm": 0.0, "agent": 0.0}
    for cost in ledger.costs():
        if cost["experiment_id"] in ids or cost["experiment_id"] == f"{label}:plan":
            costs[cost["kind"]] = costs.get(cost["kind"], 0.0) + cost["usd"]
    origins: dict[str, int] = {}
    for exp in kept:
        hyp = _hypothesis(plan, exp["hypothesis"])
        if (exp.get("origin") or "research") == "explore" or hyp is None or not hyp.sources:
            origins["explored (agent's own idea)"] = origins.get("explored (agent's own idea)", 0) + 1
            continue
        for kind in sorted({source_kind(s) for s in hyp.sources}):
            origins[kind] = origins.get(kind, 0) + 1
    spent, _largest = arm_spend(ledger, label)
    arm_row = next((a for a in ledger.arms() if a["label"] == label), {})
    return {
        "label": label, "arm": arm_of(label), "planner": arm_row.get("planner") or "?",
        "planned": len(plan.hypotheses) if plan else 0,
        "experiments": len(tried), "kept": len(kept), "in_best": in_best,
        "explored": sum(1 for e in tried if e.get("origin") == "explore"),
        "effect": {"median": median - 1, "ci": [lo - 1, hi - 1]},
        "costs": costs, "spent": spent,
        "compute_per_kept": costs["compute"] / len(kept) if kept else None,
        "llm_per_kept": (costs["llm"] + costs["agent"]) / len(kept) if kept else None,
        "experiments_per_kept": len(tried) / len(kept) if kept else None,
        "origins": origins,
        "best_commit": arm_row.get("best_commit") or base_commit,
    }


def _hypothesis(plan, hid: str):
    if plan is None:
        return None
    try:
        return plan.hypothesis(hid)
    except Exception:  # noqa: BLE001 — a hand-edited arm plan without it: counted as explored
        return None


def difference(research: list[dict], control: list[dict]) -> dict:
    """Research minus control, per seed, with an interval: across seeds (t) when K >= 2, else from the arms' intervals."""
    deltas = [r["effect"]["median"] - c["effect"]["median"] for r, c in zip(research, control)]
    k = len(deltas)
    if k == 0:
        return {"median": None, "ci": None, "k": 0, "how": "no arms"}
    mean = statistics.fmean(deltas)
    if k >= 2:
        half = t_quantile(k - 1) * statistics.stdev(deltas) / math.sqrt(k)
        return {"median": mean, "ci": [mean - half, mean + half], "k": k, "deltas": deltas,
                "how": f"mean over {k} seeds, {DIFF_CONFIDENCE:.0%} t-interval across seeds"}
    r, c = research[0]["effect"], control[0]["effect"]
    return {"median": mean, "ci": [r["ci"][0] - c["ci"][1], r["ci"][1] - c["ci"][0]], "k": 1, "deltas": deltas,
            "how": "one seed: the research interval's ends minus the control interval's opposite ends "
                   "(no between-seed spread; --seeds 3 or more measures it)"}


def ablation_summary(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    ledger = Ledger.open_existing(run_dir / "ledger.sqlite")
    try:
        run = ledger.run()
        options = ledger.options().get("ablate") or {}
        labels = [a["label"] for a in ledger.arms()]
        per_label = {label: arm_figures(run_dir, ledger, label, run["base_commit"]) for label in labels}
    finally:
        ledger.close()
    by_arm = {arm: [f for f in per_label.values() if f["arm"] == arm] for arm in ARMS}
    arms = {arm: _aggregate(figures) for arm, figures in by_arm.items()}
    diff = difference(sorted(by_arm["research"], key=lambda f: f["label"]), sorted(by_arm["control"], key=lambda f: f["label"]))
    if diff["ci"] is None:
        verdict = "No arm finished: nothing to compare yet."
    elif diff["ci"][0] > 0:
        verdict = "Research paid: the research arm's combined effect beats the control arm's, and the interval excludes zero."
    elif diff["ci"][1] < 0:
        verdict = "Research did not pay: the control arm beat the research arm, and the interval excludes zero."
    else:
        verdict = ("Not significant: the difference between the arms' effects is within the noise "
                   "(its interval includes zero). This budget does not show that research paid.")
    return {"run": run["id"], "status": run["status"], "baseline": {"median": run["baseline_median"], "cv": run["baseline_cv"]},
            "settings": options, "labels": per_label, "arms": arms, "difference": diff, "verdict": verdict}


def _aggregate(figures: list[dict]) -> dict:
    if not figures:
        return {}
    effects = [f["effect"]["median"] for f in figures]
    kept = sum(f["kept"] for f in figures)
    experiments = sum(f["experiments"] for f in figures)
    compute = sum(f["costs"]["compute"] for f in figures)
    llm = sum(f["costs"]["llm"] + f["costs"]["agent"] for f in figures)
    origins: dict[str, int] = {}
    for f in figures:
        for kind, n in f["origins"].items():
            origins[kind] = origins.get(kind, 0) + n
    if len(figures) == 1:
        effect = figures[0]["effect"]
    else:
        mean = statistics.fmean(effects)
        half = t_quantile(len(effects) - 1) * statistics.stdev(effects) / math.sqrt(len(effects))
        effect = {"median": mean, "ci": [mean - half, mean + half]}
    return {"seeds": len(figures), "experiments": experiments, "kept": kept, "effect": effect,
            "compute_per_kept": compute / kept if kept else None, "llm_per_kept": llm / kept if kept else None,
            "experiments_per_kept": experiments / kept if kept else None, "origins": origins,
            "spent": sum(f["spent"] for f in figures), "explored": sum(f["explored"] for f in figures)}


# --- rendering ----------------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1%}"


def interval(effect: dict | None) -> str:
    if not effect or effect.get("ci") is None:
        return "–"
    return f"{pct(effect['median'])} [{pct(effect['ci'][0])}, {pct(effect['ci'][1])}]"


def usd(x: float | None) -> str:
    return "–" if x is None else f"${x:.2f}"


def table_rows(summary: dict) -> list[list[str]]:
    rows = [["arm", "seeds", "experiments", "kept", "best combined effect [interval]", "compute / kept",
             "LLM / kept", "experiments / kept", "kept ideas from"]]
    for arm in ARMS:
        a = summary["arms"].get(arm) or {}
        if not a:
            continue
        origins = ", ".join(f"{kind} {n}" for kind, n in sorted(a["origins"].items())) or "–"
        rows.append([arm, str(a["seeds"]), str(a["experiments"]), str(a["kept"]), interval(a["effect"]),
                     usd(a["compute_per_kept"]), usd(a["llm_per_kept"]),
                     "–" if a["experiments_per_kept"] is None else f"{a['experiments_per_kept']:.1f}", origins])
    return rows


def render_markdown(summary: dict) -> str:
    s, diff = summary["settings"], summary["difference"]
    at = (f"${s['budget_usd']:g} per arm" if s.get("budget_usd") else
          f"{s.get('experiments') or s.get('n')} experiment(s) per arm")
    base = summary["baseline"]
    out = [f"# Ablation {summary['run']}: does research pay?", "",
           f"Research arm (sources, mining, planner) versus control arm (no sources, no mined patches), from one shared "
           f"baseline (median {base['median']:.4g}, CV {base['cv']:.2%}), same runtime and workers, experiments "
           f"interleaved; {at}; {s.get('seeds', 1)} seed(s). Status: {summary['status']}." if base["median"] is not None
           else f"Status: {summary['status']} (no baseline yet).", "", "## Result", "", f"**{summary['verdict']}**", "",
           f"Research minus control: {interval(diff) if diff.get('ci') else '–'} ({diff['how']}).", "",
           "## Per arm", ""]
    rows = table_rows(summary)
    out += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    out += ["", "## Per seed", "", "| arm | planner | experiments | kept | in the best | combined effect [interval] | spent |",
            "|---|---|---|---|---|---|---|"]
    for label, f in summary["labels"].items():
        out.append(f"| {label} | {f['planner']} | {f['experiments']} | {f['kept']} | {', '.join(f['in_best']) or '–'} | "
                   f"{interval(f['effect'])} | {usd(f['spent'])} |")
    out += ["", "Combined effect: the arm's kept chain, (1+e1)(1+e2)… − 1, each step re-gated against the best before it; "
            "interval ends multiplied the same way (each holds with the gate's one-sided 80%). "
            "LLM / kept counts the planner and the coding agent. Every number is read from ledger.sqlite "
            "(experiments carry their arm)."]
    return "\n".join(out) + "\n"


def plot_png(summary: dict) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.6), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    colors = {"research": "#1f77b4", "control": "#999999"}
    x = 0
    ticks, names = [], []
    for arm in ARMS:
        for f in [f for f in summary["labels"].values() if f["arm"] == arm]:
            e = f["effect"]
            ax.bar(x, e["median"] * 100, color=colors[arm], width=0.6)
            ax.errorbar(x, e["median"] * 100, yerr=[[max(0.0, (e["median"] - e["ci"][0]) * 100)],
                                                     [max(0.0, (e["ci"][1] - e["median"]) * 100)]],
                        color="black", capsize=4)
            ticks.append(x)
            names.append(f"{f['label']}\n{f['kept']}/{f['experiments']} kept")
            x += 1
        x += 0.5
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(ticks)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("best combined effect (%)")
    ax.set_title("research vs control: combined effect with interval, per seed", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def render_html(summary: dict, png: bytes) -> str:
    rows = table_rows(summary)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    diff = summary["difference"]
    image = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Ablation {html.escape(summary['run'])}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>"
            f"<h1>Ablation {html.escape(summary['run'])}: does research pay?</h1>"
            f"<p><strong>{html.escape(summary['verdict'])}</strong></p>"
            f"<p>Research minus control: {html.escape(interval(diff) if diff.get('ci') else '–')} ({html.escape(diff['how'])}).</p>"
            f"<table><tr>{head}</tr>{body}</table><p><img alt='combined effect per arm' src='{image}'></p>"
            "</body></html>\n")


def write_ablation_report(run_dir: Path) -> dict[str, Path]:
    run_dir = Path(run_dir)
    summary = ablation_summary(run_dir)
    png = plot_png(summary)
    paths = {"ablation.md": run_dir / "ablation.md", "ablation.html": run_dir / "ablation.html",
             "ablation.png": run_dir / "ablation.png"}
    paths["ablation.md"].write_text(render_markdown(summary), encoding="utf-8")
    paths["ablation.html"].write_text(render_html(summary, png), encoding="utf-8")
    paths["ablation.png"].write_bytes(png)
    return paths


def summary_lines(run_dir: Path) -> list[str]:
    summary = ablation_summary(run_dir)
    lines = [f"ablation {summary['run']}: {summary['verdict']}"]
    for row in table_rows(summary)[1:]:
        lines.append(f"  {row[0]:<9} {row[3]}/{row[2]} kept, best {row[4]}")
    diff = summary["difference"]
    if diff.get("ci"):
        lines.append(f"  research - control: {interval(diff)}")
    lines.append(f"report: {Path(run_dir) / 'ablation.md'}")
    return lines
