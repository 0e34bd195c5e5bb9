"""`research-agent report`: the run written up — report.md, report.html, progress.png, IMPROVEMENTS.md.

Everything is read from the run directory (ledger read-only, task.yaml, plan.md, each experiment's
patch.diff), so a report can be (re)made at any time, also while the run is still going. Every file
is written atomically: a reader never sees half a report.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shlex
import statistics
import tempfile
from importlib import resources
from pathlib import Path

from .errors import UserError
from .status import (
    LedgerView,
    fmt_effect,
    fmt_pct,
    fmt_usd,
    fmt_value,
    lower_is_better,
    outcome,
    read_ledger,
    read_task,
    status_from_view,
    task_metric,
)
from .text import squash

DECISIONS = ("kept", "discarded", "failed", "rejected")
REPORT_FILES = ("report.md", "report.html", "progress.png", "IMPROVEMENTS.md")


def write_report(run_dir: Path) -> dict[str, Path]:
    """(Re)write the four report files into RUN_DIR and return their paths by file name."""
    run_dir = Path(run_dir)
    view = read_ledger(run_dir)  # RunDirError when there is no ledger
    context = build_context(run_dir, view)
    png = render_progress(context)
    context["plot_data_uri"] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")

    paths = {name: run_dir / name for name in REPORT_FILES}
    _write_atomic(paths["progress.png"], png)
    _write_atomic(paths["report.md"], render_markdown(context).encode("utf-8"))
    _write_atomic(paths["report.html"], render_html(context).encode("utf-8"))
    _write_atomic(paths["IMPROVEMENTS.md"], render_improvements(context).encode("utf-8"))
    return paths


# --- gathering ----------------------------------------------------------------------------------


def load_run_plan(run_dir: Path):
    """The run's plan, or None when it is missing or unreadable (the ledger alone still makes a report)."""
    from .plan import load_plan

    path = Path(run_dir) / "plan.md"
    if not path.is_file():
        return None
    try:
        return load_plan(path)
    except (UserError, OSError, ValueError):
        return None


def build_context(run_dir: Path, view: LedgerView) -> dict:
    """Everything the three text renderings and the plot need, as plain data."""
    task = read_task(run_dir)
    status = status_from_view(view, task)
    plan = load_run_plan(run_dir)
    metric = task_metric(task)
    if not metric["name"] and plan is not None:
        metric = {"name": getattr(plan, "metric", None), "direction": getattr(plan, "direction", None)}
    lower = lower_is_better(metric["direction"])
    hypotheses = {h.id: h for h in getattr(plan, "hypotheses", None) or []}
    plan_sources = dict(getattr(plan, "sources", None) or {})

    baseline = _baseline_context(status["baseline"])
    experiments = []
    for row, entry in zip(view.experiments, status["experiments"]):
        arms = view.samples.get(row["id"], {})
        base, cand = arms.get("base", []), arms.get("cand", [])
        experiments.append({
            **entry,
            "seq": row["seq"],
            "outcome": outcome(entry),
            "effect_text": fmt_effect(entry["effect"]),
            "pairs": entry["n_pairs"] if entry["n_pairs"] is not None else (min(len(base), len(cand)) or None),
            "cost_text": fmt_usd(entry["cost_usd"]),
            "base_median": statistics.median(base) if base else None,
            "cand_median": statistics.median(cand) if cand else None,
            "confidence": (view.decision_effects.get(row["id"]) or {}).get("confidence"),
            **_checks_context(entry["checks"], view.metrics.get(row["id"], [])),
        })

    rounds = {entry.get("round"): entry for entry in _research_rounds(run_dir)}
    kept = [_kept_context(run_dir, exp, experiments, hypotheses, plan_sources, rounds) for exp in experiments
            if exp["decision"] == "kept"]

    # Kept changes are counted once, as in the best or dropped when stacking (result.py); a combine step's
    # other outcomes are that dropping, so only hypotheses count towards the other decisions.
    counts = {decision: sum(1 for e in experiments if e["decision"] == decision and e.get("kind") != "combine")
              for decision in DECISIONS if decision != "kept"}
    counts["unfinished"] = sum(1 for e in experiments if not e["decision"])
    counts["kept"] = status["kept"]["summary"] if (status["kept"]["in_best"] or status["kept"]["dropped"]) else ""
    research = _research_context(run_dir, plan, view, task)
    run = view.run
    best_commit, base_commit = run.get("best_commit"), run.get("base_commit")
    improved = bool(best_commit) and best_commit != base_commit and bool(kept)
    where = display_path(run_dir)
    saved = [e["saved_s"] for e in experiments if e["saved_s"] is not None]
    return {
        "identical_builds": sum(1 for e in experiments if e["identical_build"]),
        "saved_text": f"≥ {sum(saved):.1f} s" if saved else None,
        "workers_noise": [_noise_context(row) for row in view.noise],
        "warnings": view.warnings,
        "run": status["run"],
        "task": status["task"] or "?",
        "goal": task.get("goal") or getattr(plan, "objective", None) or "",
        "metric": metric["name"] or "metric",
        "direction": metric["direction"] or "",
        "lower_is_better": lower,
        "better": "lower is better" if lower else "higher is better",
        "state": status.get("state") or "?",
        "round": status.get("round"),
        "baseline": baseline,
        "experiments": experiments,
        "kept": kept,
        "best": status["best"],
        "counts": counts,
        "n_experiments": len(experiments),
        "total_cost": fmt_usd(view.total_cost),
        "costs_by_kind": {kind: fmt_usd(usd) for kind, usd in sorted(view.costs_by_kind.items())},
        "cost_per_kept": fmt_usd(view.total_cost / (len(status["kept"]["in_best"]) or len(kept))) if kept else None,
        "origins": _origins(run_dir),
        "base_commit": base_commit,
        "best_commit": best_commit,
        "improved": improved,
        "run_dir_display": where,
        "fetch_commands": _fetch_commands(where, run["id"], base_commit, best_commit) if improved else [],
        "research": research,
    }


def _checks_context(checks: dict, metric_rows: list[dict]) -> dict:
    """The holdout's effects, the guards' verdicts, every metric's medians and the build short cut."""
    holdout = checks.get("holdout") or []
    guards = {g["name"]: g for g in checks.get("guards") or []}
    build = checks.get("build") or {}
    arms: dict[str, dict[str, list[float]]] = {}
    for row in metric_rows:
        if row["bench"] == "bench" and row["arm"] in ("base", "cand") and row["value"] is not None:
            arms.setdefault(row["name"], {"base": [], "cand": []})[row["arm"]].append(row["value"])
    metrics = []
    for name, values in sorted(arms.items()):
        base = statistics.median(values["base"]) if values["base"] else None
        cand = statistics.median(values["cand"]) if values["cand"] else None
        guard = guards.get(name)
        metrics.append({
            "name": name, "base_text": fmt_value(base), "cand_text": fmt_value(cand),
            "change_text": fmt_pct(cand / base - 1) if base and cand is not None else "–",
            "guard_text": (f"guard ≤ {fmt_pct(guard['limit'])}: {'within' if guard['status'] == 'pass' else 'not shown within' if guard['status'] == 'open' else 'beyond'}"
                           if guard else ""),
        })
    return {
        "holdout_text": "; ".join(_change_text(h) + ("" if h["status"] == "pass" else f" ({'lost' if h['status'] == 'fail' else 'not shown'})")
                                  for h in holdout) or "–",
        "metrics": metrics,
        "identical_build": bool(build.get("identical")),
        "saved_s": build.get("saved_s"),
    }


def _change_text(check: dict) -> str:
    lo, hi = (list(check.get("interval") or []) + [None, None])[:2]
    text = fmt_pct(check.get("change"))
    return f"{text} [{fmt_pct(lo)}, {fmt_pct(hi)}]" if lo is not None and hi is not None else text


def _noise_context(row: dict) -> dict:
    return {"worker": row["worker"], "experiment": row.get("experiment_id") or "", "pairs": row["pairs"],
            "noise_text": fmt_pct(row["noise"], signed=False) if row["noise"] is not None else "–",
            "bound_text": fmt_pct(row["bound"], signed=False), "action": row["action"]}


def _baseline_context(base: dict) -> dict:
    samples = list(base.get("samples") or [])
    median = base.get("median")
    return {
        "n": len(samples),
        "median": median,
        "median_text": fmt_value(median),
        "cv": base.get("cv"),
        "cv_text": fmt_pct(base.get("cv"), signed=False) if base.get("cv") is not None else "–",
        "min_text": fmt_value(min(samples)) if samples else "–",
        "max_text": fmt_value(max(samples)) if samples else "–",
        "samples": samples,
        "samples_text": ", ".join(fmt_value(v) for v in samples),
        "histogram": text_histogram(samples),
    }


def _research_rounds(run_dir: Path) -> list[dict]:
    from .research.accounting import load_rounds

    return load_rounds(run_dir)


def _research_context(run_dir: Path, plan, view: LedgerView, task: dict) -> dict:
    """What research did, round by round; every mined commit's fate; the noise the gate saw."""
    from .noise import best_estimate, pairs_note
    from .research.accounting import account, counts, load_commits, outcome, round_line

    rows = account(load_commits(run_dir), getattr(plan, "hypotheses", None) or []) if plan is not None else []
    for row in rows:
        row["outcome"] = outcome(row)
    samples = {row["id"]: (view.samples.get(row["id"], {}).get("base", []), view.samples.get(row["id"], {}).get("cand", []))
               for row in view.experiments if row.get("decision")}
    noise = best_estimate(view.run.get("baseline_cv"), samples)
    experiments = (task or {}).get("experiments") or {}
    advice = pairs_note(noise, float(experiments.get("min_effect", 0.01)), int(experiments.get("repeats", 5)),
                        int(experiments.get("max_repeats", 15))) if noise is not None else ""
    return {"rounds": [round_line(entry) for entry in _research_rounds(run_dir)], "commits": rows,
            "counts": counts(rows), "noise": advice, "paired": bool(noise and noise.paired)}


def _kept_context(run_dir: Path, exp: dict, experiments: list[dict], hypotheses: dict, plan_sources: dict,
                  rounds: dict | None = None) -> dict:
    from .diffstat import diffstat, is_large

    hyp = hypotheses.get(exp["hypothesis"])
    patch = read_patch(run_dir, exp["id"])
    source_ids = list(getattr(hyp, "sources", None) or [])
    title = getattr(hyp, "title", None) or exp["title"]
    note = None
    if exp.get("kind") == "hypothesis":
        # A winner stacked onto the best in a later combine step that was not kept is not in the result.
        combos = [e for e in experiments if e.get("kind") == "combine" and e["hypothesis"] == exp["hypothesis"]
                  and e.get("round") == exp.get("round") and e["decision"]]
        if combos and combos[-1]["decision"] != "kept":
            note = f"measured alone, but not in the final best ({combos[-1]['id']}: {combos[-1]['decision']})"
    rationale = getattr(hyp, "rationale", None) or ""
    found = (getattr(hyp, "fields", None) or {}).get("research-round")
    entry = (rounds or {}).get(int(found)) if found and found.isdigit() else None
    large = is_large(patch)
    return {
        **exp,
        "heading": _heading(exp, hyp),
        "plan_title": title,
        "problem": first_paragraph(rationale) or title,
        "message": quoted_message(rationale),
        "found": (f"research round {found}" + (f" ({entry['when']})" if entry and entry.get("when") else "")) if found else None,
        "sources": [{"id": sid, "title": plan_sources.get(sid, "")} for sid in source_ids],
        "patch": "" if large else patch,
        "patch_lines": [] if large else diff_lines(patch),
        "patch_stat": diffstat(patch) if large else "",
        "patch_path": f"experiments/{exp['id']}/patch.diff",
        "files": files_in_patch(patch) or list(getattr(hyp, "files", None) or []),
        "note": note,
    }


def _heading(exp: dict, hyp) -> str:
    if exp.get("kind") != "combine":
        return f"{exp['hypothesis']}: {getattr(hyp, 'title', None) or exp['title']}"
    return exp["title"] + (f" ({exp['hypothesis']}: {hyp.title})" if getattr(hyp, "title", None) else "")


def display_path(run_dir: Path) -> str:
    """The run directory as the user gave it, or relative to the working directory when inside it."""
    if not run_dir.is_absolute():
        return run_dir.as_posix()
    try:
        relative = run_dir.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return run_dir.as_posix()
    return relative.as_posix() or "."


def _fetch_commands(where: str, run_id: str, base_commit: str | None, best_commit: str) -> list[str]:
    """`apply` and `pr` work for every target — a clone or a snapshot (whose run repository has a history
    of its own, so a plain `git merge` of the best would refuse it)."""
    run = shlex.quote(where)
    repo = shlex.quote(f"{where}/repo.git")
    commands = [
        f"research-agent apply {run}   # new branch research-agent/{run_id} in your repository, one commit per kept change",
        f"research-agent pr {run}      # or push it and open a pull request (GITHUB_TOKEN); --split: one per change",
        f"git -C {repo} log --oneline ra/{run_id}/best",
    ]
    if base_commit:
        commands.append(f"git -C {repo} diff {base_commit[:12]} {best_commit[:12]}")
    return commands


def read_patch(run_dir: Path, exp_id: str) -> str:
    try:
        return (Path(run_dir) / "experiments" / exp_id / "patch.diff").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def files_in_patch(patch: str) -> list[str]:
    files: list[str] = []
    for line in patch.splitlines():
        match = re.match(r"^diff --git a/(\S+) b/(\S+)", line) or re.match(r"^\+\+\+ b/(\S+)", line)
        if match:
            name = match.groups()[-1]
            if name not in files:
                files.append(name)
    return files


def diff_lines(patch: str) -> list[dict]:
    """Lines of a diff with a CSS class each, for the HTML rendering."""
    lines = []
    for line in patch.rstrip("\n").splitlines():
        if line.startswith(("+++", "---", "diff ", "index ")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        lines.append({"kind": kind, "text": line})
    return lines


def quoted_message(rationale: str) -> list[str]:
    """The blockquote a mined hypothesis's rationale introduces with "quoted as untrusted data:" (its commit message)."""
    lines = rationale.splitlines()
    for index, line in enumerate(lines):
        if line.strip().endswith("quoted as untrusted data:") and "message" in line:
            quote = []
            for following in lines[index + 1:]:
                if following.startswith(">"):
                    quote.append(following)
                elif quote or following.strip():
                    break
            return quote
    return []


def first_paragraph(text: str) -> str:
    """The first prose paragraph of a rationale, skipping code fences, joined onto one line; a last line
    that only introduces what follows ("…, quoted as untrusted data:") is left out."""
    lines = _first_paragraph_lines(text)
    if len(lines) > 1 and lines[-1].endswith(":"):
        lines = lines[:-1]
    return " ".join(lines)


def _first_paragraph_lines(text: str) -> list[str]:
    inside_fence = False
    paragraph: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside_fence = not inside_fence
            if paragraph:
                break
            continue
        if inside_fence:
            continue
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    return paragraph


def text_histogram(values: list[float], bins: int = 8, width: int = 30) -> list[str]:
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [f"{fmt_value(low):>10} | {'█' * min(width, len(values))} {len(values)}"]
    bins = max(1, min(bins, len(values)))
    step = (high - low) / bins
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / step))] += 1
    top = max(counts)
    edges = [(fmt_value(low + i * step), fmt_value(low + (i + 1) * step)) for i in range(bins)]
    left = max(len(a) for a, _ in edges)
    right = max(len(b) for _, b in edges)
    lines = []
    for (lo, hi), count in zip(edges, counts):
        bar = "█" * (round(count / top * width) if count else 0)
        lines.append(f"{lo:>{left}} – {hi:<{right}} | {bar} {count}")
    return lines


# --- the plot -----------------------------------------------------------------------------------


def render_progress(context: dict) -> bytes:
    """progress.png as bytes: each experiment's medians against the baseline band, best so far."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lower = context["lower_is_better"]
    baseline = context["baseline"]
    median, cv = baseline["median"], baseline["cv"]
    experiments = context["experiments"]

    fig = Figure(figsize=(10, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(1, len(experiments) + 1))

    if median is not None:
        if cv:
            ax.axhspan(median * (1 - cv), median * (1 + cv), color="#1f77b4", alpha=0.12, lw=0,
                       label=f"baseline ± noise (CV {fmt_pct(cv, signed=False)})")
        ax.axhline(median, color="#1f77b4", lw=1, alpha=0.6, ls="--")
    if baseline["samples"]:
        ax.scatter([0] * len(baseline["samples"]), baseline["samples"], s=14, color="#1f77b4", alpha=0.5,
                   label="baseline samples", zorder=3)

    legend_done: set[str] = set()

    def once(label: str) -> str | None:
        if label in legend_done:
            return None
        legend_done.add(label)
        return label

    best = median
    best_x, best_y = ([0], [median]) if median is not None else ([], [])
    for x, exp in zip(xs, experiments):
        state = exp["outcome"]
        cand, base = exp["cand_median"], exp["base_median"]
        if state in ("failed", "rejected"):
            if median is not None:
                ax.scatter([x], [median], marker="x", s=60, color="#d62728", zorder=4, label=once("failed / rejected"))
            continue
        if base is not None:
            ax.scatter([x], [base], s=18, facecolors="none", edgecolors="#999999", alpha=0.6, zorder=3,
                       label=once("base median"))
        if cand is None:
            continue
        if state == "kept":
            ax.scatter([x], [cand], s=90, color="#2ca02c", edgecolors="#1a661a", zorder=5, label=once("kept"))
            label = exp["hypothesis"] + ("+" if exp.get("kind") == "combine" else "")
            ax.annotate(label, (x, cand), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=8,
                        color="#1a661a", fontweight="bold")
            if best is None or (cand < best if lower else cand > best):
                best = cand
                best_x.append(x)
                best_y.append(best)
        elif state == "discarded":
            ax.scatter([x], [cand], s=36, color="#7f7f7f", zorder=4, label=once("discarded"))
        else:  # pending / running: a live run's partial measurement
            ax.scatter([x], [cand], s=30, color="#ff7f0e", alpha=0.7, zorder=4, label=once("in progress"))
    if best_x:
        best_x.append(max(xs[-1] if xs else 0, best_x[-1]) + 0.5)
        best_y.append(best_y[-1])
        ax.step(best_x, best_y, where="post", color="#2ca02c", lw=1.5, alpha=0.8, label="best so far", zorder=2)

    ticks = [0] + xs
    names = ["baseline"] + [e["id"] for e in experiments]
    if len(ticks) <= 25:
        ax.set_xticks(ticks)
        ax.set_xticklabels(names, rotation=45 if len(ticks) > 6 else 0, ha="right" if len(ticks) > 6 else "center",
                           fontsize=8)
    ax.set_xlim(-0.6, max(xs[-1] if xs else 0, 1) + 0.6)
    ax.set_xlabel("experiment (in order)")
    ax.set_ylabel(f"{context['metric']} ({context['better']})")
    ax.set_title(f"{context['task']}: {context['metric']} ({context['better']})")
    ax.margins(y=0.15)  # room for the hypothesis labels above kept points
    ax.grid(True, axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# --- the renderings -----------------------------------------------------------------------------


def _cell(text) -> str:
    """Text safe inside one markdown table cell."""
    return squash("" if text is None else text).replace("|", "\\|") or " "


def _fence(patch: str) -> str:
    """A ```diff block whose fence cannot be closed by the patch's own backticks."""
    ticks = "```"
    while ticks in patch:
        ticks += "`"
    return f"{ticks}diff\n{patch.rstrip()}\n{ticks}"


def render_markdown(c: dict) -> str:
    out = [f"# Research report: {c['task']}", ""]
    if c["goal"]:
        out += [f"- **Goal:** {c['goal']}"]
    out += [
        f"- **Metric:** `{c['metric']}` ({c['better']})",
        f"- **Run:** `{c['run']}` — {c['state']}" + (f", round {c['round']}" if c["round"] else ""),
        f"- **Experiments:** {c['n_experiments']} ({_counts_text(c['counts'])}); cost {c['total_cost']}",
    ]
    if c["best"]:
        best = c["best"]
        out.append(f"- **Best:** {best['id']} ({best['title']}) {fmt_effect(best['effect'])}")
    out += [f"- **{line}**" for line in c.get("warnings", [])]
    out += ["", "![progress](progress.png)", "", "## Baseline", ""]
    b = c["baseline"]
    if b["n"]:
        out += [f"{b['n']} samples: median **{b['median_text']}**, CV {b['cv_text']}, range {b['min_text']}–{b['max_text']}.",
                "", "```", *b["histogram"], "```", "", f"Samples: {b['samples_text']}"]
    else:
        out.append("Not measured yet.")

    out += ["", "## Experiments", ""]
    if c["experiments"]:
        out += ["| # | Experiment | Hypothesis | Title | Decision | Effect [interval] | Holdout [interval] | Pairs | Cost | Reason |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for e in c["experiments"]:
            out.append("| " + " | ".join(_cell(v) for v in (
                e["seq"], e["id"], e["hypothesis"], e["title"], e["outcome"], e["effect_text"], e["holdout_text"],
                e["pairs"] if e["pairs"] is not None else "–", e["cost_text"], e["reason"] or "")) + " |")
        out += ["", "Effects are relative changes in the better direction (median pairwise estimate and its interval); "
                    "holdout effects are the holdout metric's own relative change, on inputs the runtime never saw."]
        measured = [e for e in c["experiments"] if e["metrics"]]
        if measured:
            out += ["", "### Every metric", "",
                    "Medians over the benchmark runs of each arm; `rss_mb` (peak resident memory of the largest "
                    "process, MiB) and `cpu_s` (CPU seconds of the whole process tree) are measured by the OS.", "",
                    "| Experiment | Metric | Base | Candidate | Change | Guard |", "|---|---|---|---|---|---|"]
            for e in measured:
                out += ["| " + " | ".join(_cell(v) for v in (e["id"], m["name"], m["base_text"], m["cand_text"],
                                                             m["change_text"], m["guard_text"])) + " |" for m in e["metrics"]]
    else:
        out.append("No experiments yet.")

    if c["workers_noise"]:
        out += ["", "## Workers", "",
                "Paired noise of each worker before its first experiment (root mean square of log(second / first) "
                "over base-vs-base pairs of one build), against the bound `experiments.max_noise`.", "",
                "| Worker | Before | Pairs | Paired noise | Bound | Action |", "|---|---|---|---|---|---|"]
        out += ["| " + " | ".join(_cell(v) for v in (w["worker"], w["experiment"], w["pairs"], w["noise_text"],
                                                     w["bound_text"], w["action"])) + " |" for w in c["workers_noise"]]

    out += ["", "## Kept changes", ""]
    if not c["kept"]:
        out.append(_nothing_kept(c))
    for k in c["kept"]:
        out += [f"### {k['id']} — {k['heading']}", "",
                f"- **Effect:** {k['effect_text']} over {k['pairs'] or '?'} pairs"]
        if k["holdout_text"] != "–":
            out.append(f"- **Holdout:** {k['holdout_text']} (inputs the runtime never saw)")
        if k["branch"]:
            out.append(f"- **Branch:** `{k['branch']}`")
        if k["cand_commit"]:
            out.append(f"- **Commit:** `{k['cand_commit']}`" + (f" (on `{k['base_commit'][:12]}`)" if k["base_commit"] else ""))
        if k["files"]:
            out.append("- **Files:** " + ", ".join(f"`{f}`" for f in k["files"]))
        if k["note"]:
            out.append(f"- **Note:** {k['note']}")
        if k["found"]:
            out.append(f"- **Found by:** {k['found']}")
        if k["sources"]:
            out.append("- **Sources:**")
            out += [f"  - {s['id']}" + (f" — {s['title']}" if s["title"] else "") for s in k["sources"]]
        out.append("")
        out += _patch_block(k)

    out += _research_section(c["research"])
    out += ["## Totals", "", f"- Experiments: {c['n_experiments']} ({_counts_text(c['counts'])})",
            f"- Cost: {c['total_cost']}" + (" (" + ", ".join(f"{k} {v}" for k, v in c["costs_by_kind"].items()) + ")"
                                            if c["costs_by_kind"] else ""),
            f"- Cost per kept improvement: {c['cost_per_kept']}" if c.get("cost_per_kept") else "- Cost per kept improvement: – (nothing kept)"]
    if c.get("origins"):
        out.append("- Where ideas came from: " + "; ".join(
            f"{name} {n['tried']} tried, {n['kept']} kept" for name, n in c["origins"].items()))
    if c["identical_builds"]:
        out.append(f"- Identical build output, not benchmarked: {c['identical_builds']} experiment(s); benchmark time "
                   f"saved {c['saved_text'] or '–'} (at least the gate's first look, at the baseline's run time)")

    out += ["", "## Getting the result", ""]
    if c["improved"]:
        out += [f"The best commit is `{c['best_commit']}` (branch `ra/{c['run']}/best` in `{c['run_dir_display']}/repo.git`). "
                "Your checkout, working tree and current branch are not touched (the run directory path is as given to `report`):", "",
                "```sh", *c["fetch_commands"], "```"]
    else:
        out.append("Nothing was kept, so the best is still the starting commit"
                   + (f" `{c['base_commit']}`." if c["base_commit"] else "."))
    return "\n".join(out).rstrip() + "\n"


def render_improvements(c: dict) -> str:
    out = [f"# Improvements — {c['task']}", ""]
    if not c["kept"]:
        out.append(_nothing_kept(c))
        return "\n".join(out) + "\n"
    entries = _improvement_entries(c["kept"])
    out += [f"{c['counts']['kept'] or 'nothing kept'}, out of {c['n_experiments']} experiment(s) tried, measured on "
            f"`{c['metric']}` ({c['better']}); baseline median {c['baseline']['median_text']}.", ""]
    for number, (k, stacked) in enumerate(entries, 1):
        out += [f"## {number}. {k['heading']} (`{k['id']}`)", "", f"**Problem.** {k['problem']}", ""]
        if k["message"]:
            out += ["Its commit message, quoted as untrusted data:", "", *k["message"], ""]
        change = "**Change.** "
        change += ("Files: " + ", ".join(f"`{f}`" for f in k["files"]) + ".") if k["files"] else "No file list recorded."
        if k["branch"] or k["cand_commit"]:
            change += f" Branch `{k['branch'] or '?'}`, commit `{(k['cand_commit'] or '?')[:12]}`."
        out += [change, ""]
        if k["patch"] or k["patch_stat"]:
            out += _patch_block(k)
        effect = f"**Measured effect.** {k['effect_text']} over {k['pairs'] or '?'} interleaved pairs"
        if k["cand_median"] is not None and k["base_median"] is not None:
            effect += f" (candidate median {fmt_value(k['cand_median'])} vs base {fmt_value(k['base_median'])})"
        if k["holdout_text"] != "–":
            effect += f"; on the holdout benchmark (inputs the runtime never saw) {k['holdout_text']}"
        out += [effect + ".", ""]
        for combo in stacked:
            out += [f"**Stacked onto the best** (`{combo['id']}`): {combo['effect_text']} over "
                    f"{combo['pairs'] or '?'} pairs.", ""]
        if k["note"]:
            out += [f"**Note.** {k['note']}.", ""]
        if k["found"]:
            out += [f"**Found by** {k['found']}.", ""]
        out.append("**Sources.**" if k["sources"] else "**Sources.** none cited.")
        out += [f"- {s['id']}" + (f" — {s['title']}" if s["title"] else "") for s in k["sources"]]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _patch_block(k: dict) -> list[str]:
    """The diff inline when short; a diffstat and the file's path when long."""
    if k["patch_stat"]:
        return [f"The diff is in `{k['patch_path']}`:", "", "```text", k["patch_stat"], "```", ""]
    return [_fence(k["patch"]), ""] if k["patch"] else ["(no patch.diff recorded)", ""]


def _research_section(r: dict) -> list[str]:
    if not (r["rounds"] or r["commits"] or r["noise"]):
        return []
    out = ["## Research", ""]
    out += [f"- {line}" for line in r["rounds"]]
    if r["rounds"]:
        out.append("")
    if r["noise"]:
        which = "the run's own A/B pairs" if r["paired"] else "the baseline's unpaired runs (no pairs yet)"
        out += [f"**Noise** (from {which}): {r['noise']}", ""]
    if r["commits"]:
        n = r["counts"]
        out += [f"**Mined commits:** {n['mined']} read from {n['sources']} source{'s' if n['sources'] != 1 else ''} — "
                f"{n['tried']} tried, {n['skipped']} skipped.", "",
                "| Commit | Subject | Research round | Outcome |", "|---|---|---|---|"]
        out += ["| " + " | ".join(_cell(v) for v in (row["id"], row["title"], row["round"], row["outcome"])) + " |"
                for row in r["commits"]]
        out.append("")
    return out


def _improvement_entries(kept: list[dict]) -> list[tuple[dict, list[dict]]]:
    """One entry per kept change; a kept combine step is a note under the change it stacked."""
    entries = [(k, []) for k in kept if k.get("kind") != "combine"]
    for combo in (k for k in kept if k.get("kind") == "combine"):
        owner = next((k for k, _ in entries if k["hypothesis"] == combo["hypothesis"]
                      and k.get("round") == combo.get("round")), None)
        if owner is None:
            entries.append((combo, []))
        else:
            next(stacked for k, stacked in entries if k is owner).append(combo)
    return entries


def render_html(c: dict) -> str:
    import jinja2

    template_text = resources.files("research_agent").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["effect"] = fmt_effect
    env.filters["value"] = fmt_value
    return env.from_string(template_text).render(c=c, counts_text=_counts_text(c["counts"]),
                                                 nothing_kept=_nothing_kept(c))


def _counts_text(counts: dict) -> str:
    parts = [counts["kept"] if d == "kept" else f"{counts[d]} {d}" for d in DECISIONS if counts.get(d)]
    if counts.get("unfinished"):
        parts.append(f"{counts['unfinished']} unfinished")
    return ", ".join(parts) or "none"


def _nothing_kept(c: dict) -> str:
    n = c["n_experiments"]
    if n == 0:
        return "Nothing was kept: no experiment has run yet."
    return f"Nothing was kept: {n} experiment{'s' if n != 1 else ''} tried ({_counts_text(c['counts'])})."


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _origins(run_dir: Path) -> dict:
    """Research-grounded versus explored (agent-proposed) experiments, tried and kept; empty when none explored."""
    from .ledger import Ledger

    rows = Ledger.open_existing(Path(run_dir) / "ledger.sqlite").experiments("hypothesis")
    if not any(row.get("origin") == "explore" for row in rows):
        return {}
    out = {}
    for name, label in (("research", "research-grounded"), ("explore", "explored")):
        mine = [row for row in rows if (row.get("origin") or "research") == name]
        out[label] = {"tried": len(mine), "kept": sum(1 for row in mine if row["decision"] == "kept")}
    return out
