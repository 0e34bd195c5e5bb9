"""Between two rounds: re-mine against the new best, and research again when the run stalls.

After a round that moved the best, every mined source is mined again against it (the cached
clones, no fetch): commits that did not apply to the old best may apply now, a stack shrinks to
what the best lacks, and a mined hypothesis that failed to apply or to build gets its diff made for
the new best (the next round retries it). When a round keeps nothing, or no hypothesis is left
while rounds remain, the run researches again with what it learned: queries from the functions
and files its discarded and failed changes touched and from the profile, only items it has not
read yet, twice the mining depth; with an LLM planner the re-plan's prompt holds the ledger's
results. New hypotheses are appended to the run's plan with their sources and `- research-round: N`.

Every step is recorded (a ledger event, research/log.json, the plan's Research log), and a resumed
run does not repeat a step it finished.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

from .diffstat import diffstat, is_large
from .errors import UserError
from .plan import Hypothesis, Plan
from .plan.patches import PATCH_DIR, externalize_diffs, write_patch
from .plan.extractive import commit_ref
from .research.accounting import commits_of, load_rounds, record_commits, record_round, research_log

ROUND_FIELD = "research-round"
_STAT_BLOCK = re.compile(r"\n*The diff \([^\n]*\) is in [^\n]*:\n\n```text\n.*?\n```\s*$", re.DOTALL)


class BetweenRounds:
    def __init__(self, run, notify: Callable[[str], None] = lambda _line: None):
        self.run = run
        self.ledger = run.ledger
        self.task = run.task
        self.notify = notify

    # --- what already happened ---------------------------------------------------------------

    def _done(self, step: str, round_no: int) -> bool:
        for event in self.ledger.events():
            if event["kind"] == "research" and event["data"]:
                data = json.loads(event["data"])
                if data.get("step") == step and data.get("round") == round_no:
                    return True
        return False

    def in_best(self) -> dict[str, str]:
        """Ids of the mined commits merged into the best -> how ("kept as H2")."""
        plan = self.run.plan
        experiments = self.ledger.experiments()
        merged: list[str] = []
        for round_no in sorted({e["round"] for e in experiments}):
            winners = sorted((e for e in experiments if e["round"] == round_no and e["kind"] == "hypothesis"
                              and e["decision"] == "kept"), key=lambda e: e["effect_median"] or 0.0, reverse=True)
            if winners:
                merged.append(winners[0]["hypothesis"])
            merged += [e["hypothesis"] for e in experiments if e["round"] == round_no and e["kind"] == "combine"
                       and e["decision"] == "kept"]
        found: dict[str, str] = {}
        for hid in merged:
            try:
                hyp = plan.hypothesis(hid)
            except KeyError:
                continue
            refs = set(commits_of(hyp))
            for sid in hyp.sources:
                if commit_ref(sid) in refs:
                    found.setdefault(sid, f"kept as {hid}")
        return found

    # --- re-mining ---------------------------------------------------------------------------

    def remine(self, round_no: int) -> dict | None:
        """Mine every selected source again against the best, before round `round_no`."""
        if self._done("remine", round_no):
            return None
        from .research.base import SourceItem
        from .research.pipeline import MINED_KINDS, mine

        items = {}
        for record in _source_records(self.run.path):
            for data in record.get("items", []):
                if data.get("selected") and data.get("kind") in MINED_KINDS:
                    items.setdefault(data["id"], SourceItem.from_dict(data))
        best = self.ledger.run()["best_commit"]
        entry = {"round": round_no, "step": "remine", "when": f"re-mined on the round-{round_no - 1} best {best[:12]}",
                 "queries": [], "added": [], "retried": []}
        started = time.monotonic()
        if items:
            self.notify(f"research: re-mining {len(items)} source(s) against the new best {best[:12]}")
            patches, _snippets, notices, commits = mine(
                self.task, list(items.values()), self.run.repo_dir, best, bool(self.ledger.options().get("offline")),
                limit=self._depth(), refresh=False, target_label="best", in_target=self.in_best(), snippets=False)
            entry["seconds"] = round(time.monotonic() - started, 3)
            record_commits(self.run.path, commits, round_no)
            entry["retried"] = self._refresh_failed(patches, round_no)
            fresh = [p for p in patches if self._holder(p) is None]
            entry["added"] = self._append_patches(fresh, list(items.values()), round_no)
            entry["summary"] = f"{len(commits)} commit(s) read, {len(patches)} patch(es) for the best"
            for line in notices:
                self.ledger.event("notice", line)
        else:
            entry["seconds"] = 0.0
            entry["summary"] = "no mined source to re-mine"
        self._finish(entry)
        return entry

    def _depth(self) -> int:
        from .research.mine import COMMITS

        rounds = sum(1 for entry in load_rounds(self.run.path) if entry.get("step") == "again")
        return COMMITS * 2 ** rounds

    def _holder(self, patch) -> Hypothesis | None:
        """The plan's hypothesis that holds exactly this patch's commits, if any."""
        refs = [commit_ref(c) for c in patch.commits]
        for hyp in self.run.plan.hypotheses:
            if commits_of(hyp) == refs and patch.id in hyp.sources:
                return hyp
        return None

    def _refresh_failed(self, patches: list, round_no: int) -> list[str]:
        """Mined hypotheses that failed to apply or to build last round get their diff for the new best."""
        from .experiment import retry_on_new_best

        last = {e["hypothesis"]: e for e in self.ledger.experiments("hypothesis") if e["round"] == round_no - 1}
        retried = []
        for patch in patches:
            hyp = self._holder(patch)
            row = last.get(hyp.id) if hyp is not None else None
            if row is None or row["decision"] != "failed" or not retry_on_new_best(row["reason"]):
                continue
            if self.run.plan.patch_text(hyp) != patch.diff:
                set_patch(hyp, patch.diff, self.run.path)
            retried.append(hyp.id)
        return retried

    def _append_patches(self, patches: list, items: list, round_no: int) -> list[str]:
        if not patches:
            return []
        from .plan.extractive import ExtractiveDistiller
        from .research.base import Evidence

        evidence = Evidence(items=items, selected=[], patches=patches)
        try:
            new = ExtractiveDistiller().plan(self.task, self._baseline(), evidence)
        except UserError:
            return []
        return append_hypotheses(self.run.plan, new, round_no)

    # --- research again ----------------------------------------------------------------------

    def research_again(self, round_no: int, why: str) -> dict | None:
        """Research with what the run learned, before round `round_no`; new hypotheses go into the plan."""
        if self._done("again", round_no):
            return None
        from .plan.choose import choose_distiller
        from .research.pipeline import run_research
        from .research.queries import build_queries, learned_queries, target_files

        best = self.ledger.run()["best_commit"]
        tried = self._tried()
        profile = _read(self.run.path / "research" / "profile.txt")
        words = _code_words(self.run.repo_dir, best, target_files(self.run.repo_dir, best)) if profile else set()
        queries = learned_queries(self.task, [t["diff"] for t in tried if t["decision"] in ("discarded", "failed")],
                                  profile, words)
        if not queries:  # nothing tried touched a function or a file: the task's own queries, mined deeper
            queries = build_queries(self.task, self.run.repo_dir, best)
        entry = {"round": round_no, "step": "again", "when": why, "queries": queries, "added": [], "retried": []}
        started = time.monotonic()
        depth = 2 ** (1 + sum(1 for e in load_rounds(self.run.path) if e.get("step") == "again"))
        self.notify(f"research: {why} — researching again with what the run learned")
        options = self.ledger.options()
        offline = bool(options.get("offline"))
        try:
            evidence = run_research(
                self.task, self.run.repo_dir, best, self.run.path / "research" / f"round-{round_no}", offline=offline,
                notify=self.notify, profile=profile, queries=queries, known=set(self.run.plan.sources), scale=depth,
                history=tried, target_label="best", in_target=self.in_best())
        except UserError as error:
            entry["summary"] = str(error)
            entry["seconds"] = round(time.monotonic() - started, 3)
            self._finish(entry)
            return entry
        record_commits(self.run.path, evidence.commits, round_no)
        evidence.patches = [p for p in evidence.patches if self._holder(p) is None]
        distiller, notice = choose_distiller(self.task, offline=offline, explicit=bool(options.get("planner_explicit")),
                                             ledger=self.ledger, notify=self.notify)
        if notice:
            self.ledger.event("notice", notice)
        try:
            new = distiller.plan(self.task, self._baseline(), evidence)
        except UserError as error:
            entry["summary"] = f"{len(evidence.selected)} new item(s) selected; {error}"
        else:
            entry["added"] = append_hypotheses(self.run.plan, new, round_no)
            entry["summary"] = (f"{len(evidence.items)} new item(s) read, {len(evidence.selected)} selected, "
                                f"{len(evidence.commits)} commit(s) read ({depth}× the first depth)")
        entry["seconds"] = round(time.monotonic() - started, 3)
        self._finish(entry)
        return entry

    def _tried(self) -> list[dict]:
        """What the run tried so far, for the learned queries and a re-plan: each hypothesis's last experiment."""
        from .report import read_patch

        out = []
        for row in self.ledger.experiments("hypothesis"):
            if not row["decision"]:
                continue
            try:
                hyp = self.run.plan.hypothesis(row["hypothesis"])
            except KeyError:
                continue
            diff = read_patch(self.run.path, row["id"]) or (self.run.plan.patch_text(hyp) or "")
            effect = None
            if row["effect_median"] is not None:
                effect = {"median": row["effect_median"], "ci": [row["ci_lo"], row["ci_hi"]], "n": row["n_pairs"]}
            out.append({"id": row["id"], "hypothesis": hyp.id, "title": hyp.title, "sources": list(hyp.sources),
                        "files": list(hyp.files), "decision": row["decision"], "reason": row["reason"] or "",
                        "effect": effect, "round": row["round"], "diff": diff})
        return out

    # --- shared ------------------------------------------------------------------------------

    def _baseline(self) -> dict:
        from .noise import paired_noise

        run = self.ledger.run()
        baseline = {"median": run["baseline_median"], "cv": run["baseline_cv"],
                    "samples": self.ledger.samples("baseline", "baseline")}
        noise = paired_noise(self._pairs())
        if noise is not None:
            baseline["noise"] = noise
        return baseline

    def _pairs(self) -> dict[str, tuple[list[float], list[float]]]:
        return {row["id"]: (self.ledger.samples(row["id"], "base"), self.ledger.samples(row["id"], "cand"))
                for row in self.ledger.experiments() if row["decision"]}

    def _finish(self, entry: dict) -> None:
        record_round(self.run.path, entry)
        plan = self.run.plan
        externalize_diffs(plan, self.run.path)
        plan.research_log = research_log(self.run.path, plan, noise_line(self.task, self._baseline()))
        self.run.save_plan()
        added, retried = entry.get("added") or [], entry.get("retried") or []
        what = "re-mined against the new best" if entry["step"] == "remine" else "researched again"
        message = (f"round {entry['round']}: {what}: " + (f"new {', '.join(added)}" if added else "nothing new")
                   + (f"; retrying {', '.join(retried)}" if retried else ""))
        self.ledger.event("research", message, step=entry["step"], round=entry["round"], added=added, retried=retried,
                          seconds=entry.get("seconds"))
        self.notify(f"research: {message}")


def after_first_research(run, evidence) -> None:
    """Round 1's plan, as the distiller wrote it: mark where each hypothesis came from, move large diffs
    out, account for every mined commit."""
    plan = run.plan
    for hyp in plan.hypotheses:
        hyp.fields[ROUND_FIELD] = "1"
    record_commits(run.path, evidence.commits, 1)
    record_round(run.path, {"round": 1, "step": "first", "when": "before round 1", "queries": list(evidence.queries),
                            "summary": f"{len(evidence.items)} item(s) read, {len(evidence.selected)} selected, "
                                       f"{len(evidence.commits)} commit(s) read",
                            "added": [h.id for h in plan.hypotheses], "retried": []})
    externalize_diffs(plan, run.path)
    plan.research_log = research_log(run.path, plan)


def append_hypotheses(plan: Plan, new: Plan, round_no: int) -> list[str]:
    """Add `new`'s hypotheses to `plan` under fresh ids (H<n+1>…), with their sources and
    `- research-round: N`; leave out those the plan already has (same commits, same diff, same title)."""
    have_commits = {tuple(commits_of(h)) for h in plan.hypotheses if commits_of(h)}
    have_diffs = {(plan.patch_text(h) or "").strip() for h in plan.hypotheses if h.has_patch}
    have_titles = {h.title.strip().lower() for h in plan.hypotheses}
    number = max([int(m.group(1)) for h in plan.hypotheses if (m := re.fullmatch(r"H(\d+)", h.id))] + [0])
    added = []
    for hyp in new.hypotheses:
        refs = tuple(commits_of(hyp))
        if (refs and refs in have_commits) or (hyp.diff and hyp.diff.strip() in have_diffs) \
                or hyp.title.strip().lower() in have_titles:
            continue
        number += 1
        fields = {k: v for k, v in hyp.fields.items() if k not in ("status", ROUND_FIELD)}
        fresh = Hypothesis(id=f"H{number}", title=hyp.title, expected=hyp.expected, risk=hyp.risk, files=hyp.files,
                           sources=hyp.sources, rationale=hyp.rationale, diff=hyp.diff,
                           fields={**fields, ROUND_FIELD: str(round_no)})
        for sid in hyp.sources:
            plan.sources.setdefault(sid, new.sources.get(sid, sid))
        plan.hypotheses.append(fresh)
        have_titles.add(hyp.title.strip().lower())
        added.append(fresh.id)
    return added


def set_patch(hyp: Hypothesis, diff: str, folder: Path) -> None:
    """Give a hypothesis a new diff (made for the new best), inline or in its patch file."""
    hyp.rationale = _STAT_BLOCK.sub("", hyp.rationale)
    if is_large(diff):
        relative = hyp.patch_file or f"{PATCH_DIR}/{hyp.id}.diff"
        write_patch(Path(folder) / relative, diff)
        hyp.diff = None
        hyp.fields["patch"] = relative
        stat = diffstat(diff)
        hyp.rationale += f"\n\nThe diff ({stat.splitlines()[-1].strip()}) is in {relative}:\n\n```text\n{stat}\n```"
    else:
        hyp.fields.pop("patch", None)
        hyp.diff = diff


def noise_line(task, baseline: dict) -> str:
    """The noise advice for the plan's research log: from the run's own pairs once there are any."""
    from .noise import Noise, pairs_note, unpaired

    noise = baseline.get("noise")
    if not isinstance(noise, Noise):
        cv = baseline.get("cv")
        if not isinstance(cv, (int, float)):
            return ""
        noise = unpaired(cv)
    exp = task.experiments
    return pairs_note(noise, exp.min_effect, exp.repeats, exp.max_repeats)


def _source_records(run_path: Path) -> list[dict]:
    out = []
    for path in sorted(Path(run_path, "research").glob("**/sources.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _code_words(repo: Path, commit: str, files: list[str]) -> set[str]:
    """Identifiers in the target's source files (to tell its functions in a profile from noise)."""
    from .research.queries import LANGUAGES
    from .target import git

    words: set[str] = set()
    sources = [f for f in files if Path(f).suffix in LANGUAGES][:200]
    for name in sources:
        text = git(["show", f"{commit}:{name}"], cwd=repo, check=False)
        words |= set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b", text))
    return words
