"""A distiller without a model: ranks and quotes what the research found.

Hypotheses, best evidence first:
1. every mined patch that applies cleanly to the current base, with its diff (any runtime can
   try it), ordered by the score of the item it came from;
2. one "Apply: ..." hypothesis per selected paper, note or repo, without a diff (for coding-agent
   runtimes), whose rationale quotes the sentences of its text that best match the goal.

Everything fetched is untrusted: titles become one line, quoted text becomes a Markdown blockquote
with code fences escaped, and every hypothesis is checked to survive render -> parse unchanged
before it goes into the plan, so no title or commit message can add a heading, a field or a fence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import PlanError
from ..noise import Noise, pairs_note, unpaired
from ..research.base import Evidence, NothingFound, SourceItem
from ..research.rank import LOCAL_KINDS, query_text, score_of, tokenize
from .model import Hypothesis, Plan, is_unified_diff, new_plan
from .parse import parse_plan
from .render import render_plan

MAX_TECHNIQUES = 6
TECHNIQUE_KINDS = ("paper", "note", "repo", "fork", "competitor")  # merged PRs are already in the target
REPO_KINDS = ("repo", "fork", "competitor")
SMALL_DIFF_LINES = 40  # changed lines
SMALL_DIFF_FILES = 3
PROFILE_LINES = 20
SNIPPETS_PER_ITEM = 5

KIND_LABEL = {
    "paper": "a paper",
    "note": "a local note",
    "repo": "a repository",
    "fork": "a fork",
    "competitor": "a competitor repository",
    "pr": "a merged pull request",
}

KIND_NOUN = {"paper": "paper", "note": "note", "repo": "repo", "fork": "fork", "competitor": "competitor", "pr": "PR"}

_FENCE_RUN_RE = re.compile(r"`{3,}|~{3,}")
_FENCE_LINE_RE = re.compile(r"[ \t]*(`{3,}|~{3,})")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_MARK_RE = re.compile(r"^\s*(?:[#>]+|[-*+]|\d+[.)])\s+")


# --- making untrusted text safe --------------------------------------------------------------


def _printable(text: str) -> str:
    """Control characters and Unicode line/paragraph separators become spaces."""
    return "".join(ch if ch.isprintable() else " " for ch in str(text or ""))


def _escape_inline(text: str) -> str:
    """Code-fence runs and HTML comments that a Markdown viewer would act on, made literal."""
    text = _FENCE_RUN_RE.sub(lambda m: "".join("\\" + c for c in m.group(0)), text)
    return text.replace("<!--", "&lt;!--")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def one_line(text: str, limit: int = 200) -> str:
    """Untrusted text as one safe line: no newlines or control characters, fences escaped."""
    return _shorten(" ".join(_escape_inline(_printable(text)).split()), limit)


def clean_title(text: str, limit: int = 72) -> str:
    """A one-line title without leading Markdown markers (`#`, `>`, `-`, ...)."""
    line = one_line(text, 10 * limit).lstrip("#>*+-=|: \t")
    return _shorten(line, limit)


def quote(text: str, max_lines: int = 8, max_chars: int = 600) -> str:
    """Untrusted multi-line text as a Markdown blockquote (every line starts with '>')."""
    lines = [" ".join(_escape_inline(_printable(line)).split()) for line in str(text or "").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    out, used = [], 0
    for line in lines:
        if len(out) >= max_lines or used >= max_chars:
            out.append("…")
            break
        line = _shorten(line, max(20, max_chars - used))
        used += len(line)
        out.append(line)
    return "\n".join(f"> {line}" if line else ">" for line in out)


# --- sentences --------------------------------------------------------------------------------


def _prose(text: str) -> list[str]:
    """Paragraphs of plain text: code blocks dropped, Markdown markers stripped."""
    paragraphs, current, in_code = [], [], False
    for raw in str(text or "").splitlines():
        if _FENCE_LINE_RE.match(raw):
            in_code = not in_code
            continue
        if in_code:
            continue
        line = _printable(raw).strip()
        if not line or raw.lstrip().startswith("#"):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        current.append(_LIST_MARK_RE.sub("", line))
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def sentences(text: str) -> list[str]:
    out = []
    for paragraph in _prose(text):
        for s in _SENTENCE_END_RE.split(paragraph):
            s = " ".join(s.split())
            if len(s) >= 20:
                out.append(s)
    return out


def best_sentences(text: str, query: str, k: int = 3) -> list[str]:
    """Up to k sentences of `text` sharing the most terms with `query`, in text order; the first
    sentences when none shares any."""
    terms = set(tokenize(query))
    candidates = sentences(text)
    scored = []
    for i, s in enumerate(candidates):
        words = tokenize(s)
        overlap = len(terms & set(words))
        if overlap:
            scored.append((overlap + overlap / math.sqrt(len(words) + 1), -i))  # ties: earlier first
    if not scored:
        return candidates[: min(2, k)]
    best = sorted(scored, reverse=True)[:k]
    return [candidates[i] for i in sorted(-neg for _, neg in best)]


# --- the baseline and the noise ----------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _baseline_text(task: Any, baseline: dict) -> list[str]:
    metric = getattr(getattr(task, "metric", None), "name", None) or "the metric"
    direction = getattr(getattr(task, "metric", None), "direction", "max")
    better = "higher is better" if direction == "max" else "lower is better"
    median, cv = baseline.get("median"), baseline.get("cv")
    samples = baseline.get("samples")
    n = len(samples) if isinstance(samples, (list, tuple)) else samples if isinstance(samples, int) else None
    if not isinstance(median, (int, float)):
        return [f"No baseline measurement of {metric} was given."]
    runs = f" over {n} runs" if n else ""
    cv_text = f", CV {cv:.2%}" if isinstance(cv, (int, float)) else ""
    lines = [f"Baseline: median {metric} = {_fmt(median)} ({better}){cv_text}{runs}."]
    exp = getattr(task, "experiments", None)
    min_effect = float(getattr(exp, "min_effect", 0.01))
    repeats = int(getattr(exp, "repeats", 5))
    max_repeats = int(getattr(exp, "max_repeats", 15))
    paired = baseline.get("noise")  # a noise.Noise from the run's own pairs, once there are any
    if isinstance(paired, Noise):
        lines.append(pairs_note(paired, min_effect, repeats, max_repeats))
    elif isinstance(cv, (int, float)) and math.isfinite(cv):
        lines.append(pairs_note(unpaired(cv), min_effect, repeats, max_repeats))
        if n is not None and n < 3:
            lines.append(f"(With only {n} baseline runs the CV is a rough guess.)")
    return lines


def _fenced(text: str, info: str = "text") -> str:
    """A fenced block whose fence is longer than any backtick run inside."""
    longest = max((len(m.group(0)) for m in re.finditer(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _profile_text(profile: str) -> list[str]:
    lines = [_printable(line).rstrip()[:200] for line in str(profile or "").splitlines()]
    lines = [line for line in lines if line.strip()]
    if not lines:
        return []
    shown = lines[:PROFILE_LINES]
    more = f" (first {PROFILE_LINES} of {len(lines)} lines)" if len(lines) > PROFILE_LINES else ""
    return [f"Profile{more}:", "", _fenced("\n".join(shown))]


# --- patches ----------------------------------------------------------------------------------


def _diff_files(diff: str) -> list[str]:
    files = []
    for line in diff.splitlines():
        if line.startswith("+++ ") and not line.startswith("+++ /dev/null"):
            path = line[4:].split("\t")[0].strip()
            files.append(path[2:] if path.startswith("b/") else path)
        elif line.startswith("--- a/"):
            path = line[6:].split("\t")[0].strip()
            if path and path not in files:
                files.append(path)
    return list(dict.fromkeys(files))


def _changed_lines(diff: str) -> int:
    return sum(1 for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---")))


def _diff_problem(diff: str) -> str | None:
    if not diff or not is_unified_diff(diff):
        return "not a unified diff"
    if any(_FENCE_LINE_RE.match(line) for line in diff.splitlines()):
        return "the diff has a code-fence line, which cannot be quoted in the plan"
    return None


def _safe_id(sid: Any) -> bool:
    return isinstance(sid, str) and bool(sid) and not re.search(r"[\s,]", sid) and sid.isprintable()


def _safe_files(files: list[str]) -> list[str]:
    out = []
    for f in files:
        f = str(f).strip()
        if f and "," not in f and f.isprintable() and f not in out:
            out.append(f)
    return out


def commit_ref(patch_id: str) -> str:
    for sep in ("@", "#"):
        if sep in patch_id:
            return patch_id.rsplit(sep, 1)[1]
    return patch_id


def _patch_kind(patch: Any, item: SourceItem | None) -> str:
    if item is not None:
        return item.kind
    pid = str(getattr(patch, "id", ""))
    if pid.startswith("local:"):
        return "competitor"
    return "pr" if "#" in pid else "fork"


def _subject(patch: Any) -> str:
    title = clean_title(getattr(patch, "title", "") or "")
    if not title:
        message = str(getattr(patch, "message", "") or "").strip()
        title = clean_title(message.splitlines()[0] if message else "")
    return title or f"Commit {one_line(commit_ref(str(patch.id)), 40)}"


# --- the distiller ----------------------------------------------------------------------------


@dataclass
class _Draft:
    title: str
    expected: str
    risk: str
    files: list[str]
    sources: list[str]
    rationale: str
    diff: str | None = None
    source_titles: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)  # extra bullet fields, e.g. commits
    patch_ids: list[str] = field(default_factory=list)  # the mined patches it applies (duplicates of one diff too)

    def hypothesis(self, hid: str) -> Hypothesis:
        return Hypothesis(id=hid, title=self.title, expected=self.expected, risk=self.risk,
                          files=self.files, sources=self.sources, rationale=self.rationale, diff=self.diff,
                          fields=dict(self.fields))


class ExtractiveDistiller:
    """Plans from evidence alone: mined patches first (with diffs), then quoted techniques."""

    def __init__(self, max_techniques: int = MAX_TECHNIQUES, max_patches: int | None = None):
        self.max_techniques = max_techniques
        self.max_patches = max_patches

    def plan(self, task: Any, baseline: dict, evidence: Evidence) -> Plan:
        baseline = dict(baseline or {})
        objective = (getattr(task, "goal", "") or "").strip() or "Improve the metric"
        metric = getattr(getattr(task, "metric", None), "name", None)
        direction = getattr(getattr(task, "metric", None), "direction", "max")
        query = query_text(task)
        self._frame = (objective, metric, direction)

        items: dict[str, SourceItem] = {}
        for item in [*evidence.selected, *evidence.items]:
            items.setdefault(item.id, item)

        notes: list[str] = []  # "mined but did not apply" and "could not be quoted" lines
        drafts, patched_items = self._patch_drafts(evidence.patches, items, notes)
        drafts += self._technique_drafts(evidence, query, patched_items, notes)

        if not drafts:
            raise NothingFound(self._nothing_message(evidence))

        hypotheses = [d.hypothesis(f"H{i}") for i, d in enumerate(drafts, 1)]
        sources: dict[str, str] = {}
        for d in drafts:
            for sid in d.sources:
                sources.setdefault(sid, d.source_titles.get(sid) or sid)
        for item in evidence.selected:  # context: selected but not cited
            if item.id not in sources and _safe_id(item.id):
                entry = {item.id: _item_title(item)}
                if self._round_trips(_probe_hypothesis(item.id), entry):
                    sources.update(entry)

        bottleneck = self._bottleneck(task, baseline, evidence, notes)
        plan = new_plan(objective, metric, direction, hypotheses, sources, bottleneck=bottleneck,
                        baseline=plan_baseline(baseline), status="draft")
        if parse_plan(render_plan(plan)) != plan:  # every piece was checked; this is a last guard
            raise PlanError("internal error: the extractive plan does not survive render -> parse")
        return plan

    # --- hypotheses from mined patches -------------------------------------------------------

    def _patch_drafts(self, patches: list, items: dict[str, SourceItem],
                      notes: list[str]) -> tuple[list[_Draft], set[str]]:
        usable = []
        for patch in patches or []:
            pid = str(getattr(patch, "id", "") or "")
            if not getattr(patch, "applies", False):
                reason = one_line(getattr(patch, "reason", "") or "does not apply to the current base", 160)
                notes.append(f"mined but did not apply: {one_line(pid, 120)} — {reason}")
                continue
            diff = str(getattr(patch, "diff", "") or "")
            problem = _diff_problem(diff) or (None if _safe_id(pid) else "its id cannot be cited")
            if problem:
                notes.append(f"mined but not usable: {one_line(pid, 120)} — {problem}")
                continue
            usable.append(patch)
        # Best source item first; the mining order breaks ties.
        usable.sort(key=lambda p: -score_of(items[p.item_id]) if getattr(p, "item_id", None) in items else 0.0)

        drafts: list[_Draft] = []
        by_diff: dict[str, _Draft] = {}
        patched_items: set[str] = set()
        for patch in usable:
            key = patch.diff.strip()
            if key in by_diff:  # the same change found twice (two forks, fork and PR): cite both
                d = by_diff[key]
                if patch.id not in d.sources:
                    d.sources.append(patch.id)
                    d.source_titles[patch.id] = self._patch_source_title(patch)
                    d.patch_ids.append(patch.id)
                continue
            if self.max_patches is not None and len(drafts) >= self.max_patches:
                notes.append(f"mined, applies, left out (max {self.max_patches} patches): {one_line(patch.id, 120)}")
                continue
            d = self._patch_draft(patch, items.get(getattr(patch, "item_id", None)))
            if not self._round_trips(d.hypothesis("H1"), d.source_titles):
                notes.append(f"mined but not usable: {one_line(patch.id, 120)} — its text cannot be quoted safely")
                continue
            by_diff[key] = d
            drafts.append(d)
            patched_items.add(getattr(patch, "item_id", None))
        return drafts, patched_items

    def _patch_source_title(self, patch: Any) -> str:
        return f"{_subject(patch)} (commit in {one_line(getattr(patch, 'item_id', '') or '?', 120)})"

    def _patch_draft(self, patch: Any, item: SourceItem | None) -> _Draft:
        kind = _patch_kind(patch, item)
        diff = patch.diff if patch.diff.endswith("\n") else patch.diff + "\n"
        files = _safe_files(list(getattr(patch, "files", None) or []) or _diff_files(diff))
        small = _changed_lines(diff) <= SMALL_DIFF_LINES and len(files) <= SMALL_DIFF_FILES
        held = [str(c) for c in getattr(patch, "commits", None) or [] if _safe_id(c)] or [patch.id]
        stacked = len(held) > 1
        risk = "low" if kind in ("competitor", "fork") and small and not stacked else "medium"

        item_id = getattr(patch, "item_id", None)
        titles = list(getattr(patch, "titles", None) or [])
        sources = [c for c in held if c != patch.id] + [patch.id]
        source_titles = {patch.id: self._patch_source_title(patch)}
        for cid, subject in zip(held, titles + [""] * len(held)):
            if cid != patch.id:
                source_titles[cid] = f"{clean_title(subject) or 'Commit ' + one_line(commit_ref(cid), 40)} (commit in {one_line(item_id or '?', 120)})"
        if _safe_id(item_id) and item_id != patch.id:
            sources.append(item_id)
            source_titles[item_id] = _item_title(item) if item is not None else one_line(item_id, 120)

        where = KIND_LABEL.get(kind, kind)
        ahead = (item.signals or {}).get("ahead_by") if item is not None else None
        if kind == "fork" and isinstance(ahead, (int, float)) and not isinstance(ahead, bool) and ahead > 0:
            where += f" {int(ahead)} commits ahead"
        origin = one_line(item.title, 100) if item is not None and item.title else one_line(item_id or "?", 100)
        message = str(getattr(patch, "message", "") or "").strip() or str(getattr(patch, "title", "") or "")
        changed = _changed_lines(diff)
        size = f"{changed} changed line{'s' if changed != 1 else ''} in {len(files)} file{'s' if len(files) != 1 else ''}"
        if stacked:
            earlier = ", ".join(one_line(commit_ref(c), 40) for c in held[:-1])
            what = (f"commit {one_line(commit_ref(patch.id), 40)} stacked on the earlier commit"
                    f"{'s' if len(held) > 2 else ''} it depends on ({earlier})")
            applies = f"It does not apply without them; together they apply cleanly to the current base ({size})."
        else:
            what = f"commit {one_line(commit_ref(patch.id), 40)}"
            applies = f"It applies cleanly to the current base ({size})."
        lead = f"Mined from {where}: {what} in {origin} ({one_line(item_id or '?', 120)}). {applies}"
        left_out = _safe_files(list(getattr(patch, "left_out", None) or []))
        if left_out:
            lead += f" Its changes to protected files ({', '.join(left_out)}) are left out."
        blocks = [lead]
        if stacked:
            blocks.append("It holds these commits, oldest first (subjects quoted as untrusted data):\n\n"
                          + "\n".join(f"- {one_line(commit_ref(c), 40)}: {one_line(t, 120) or '(no subject)'}"
                                       for c, t in zip(held, titles + [""] * len(held))))
        blocks.append("Its commit message, quoted as untrusted data:\n\n" + quote(message))
        fields = {"commits": ", ".join(one_line(commit_ref(c), 40) for c in held)}
        return _Draft(title=_subject(patch), expected=f"unknown (mined from {kind})", risk=risk, files=files,
                      sources=sources, rationale="\n\n".join(blocks), diff=diff, source_titles=source_titles,
                      fields=fields, patch_ids=[patch.id])

    # --- hypotheses from papers, notes and repos ---------------------------------------------

    def _technique_drafts(self, evidence: Evidence, query: str, patched_items: set[str],
                          notes: list[str]) -> list[_Draft]:
        drafts = []
        for item in evidence.selected:
            if len(drafts) >= self.max_techniques:
                break
            if item.kind not in TECHNIQUE_KINDS or not _safe_id(item.id):
                continue
            if item.kind in REPO_KINDS and item.id in patched_items:
                continue  # its commits are already hypotheses, with diffs
            if item.kind not in LOCAL_KINDS and _relevance_of(item) == 0.0:
                continue  # not a word in common with the goal: listed under Sources only
            d = self._technique_draft(item, query, evidence.snippets)
            if self._round_trips(d.hypothesis("H1"), d.source_titles):
                drafts.append(d)
            else:
                notes.append(f"left out: {one_line(item.id, 120)} — its text cannot be quoted safely")
        return drafts

    def _technique_draft(self, item: SourceItem, query: str, snippets: list) -> _Draft:
        title = "Apply: " + (clean_title(item.title, 64) or one_line(item.id, 64))
        why = one_line(item.meta.get("selected_because", ""), 160)
        label = KIND_LABEL.get(item.kind, item.kind)
        parts = [f"From {label}, {one_line(item.id, 120)}" + (f" ({why})." if why else ".")]
        passages = best_sentences(item.text or "", query)
        if passages:
            parts += ["Passages that best match the goal, quoted as untrusted data:", "",
                      "\n>\n".join(quote(s, max_lines=1, max_chars=400) for s in passages)]
        else:
            parts.append("It has no text to quote; read it at the source.")
        refs = [s for s in snippets or [] if getattr(s, "item_id", None) == item.id][:SNIPPETS_PER_ITEM]
        if refs:
            parts += ["", "Code references in it (untrusted excerpts):"]
            for s in refs:
                first = next((ln for ln in str(getattr(s, "text", "") or "").splitlines() if ln.strip()), "")
                where = f"{one_line(getattr(s, 'path', '?'), 120)}:{getattr(s, 'line', '?')}"
                parts.append(f"- {where}" + (f" — {one_line(first, 120)}" if first else ""))
        return _Draft(title=title, expected=f"unknown (technique from {item.kind})", risk="medium", files=[],
                      sources=[item.id], rationale="\n".join(parts), source_titles={item.id: _item_title(item)})

    # --- text sections -----------------------------------------------------------------------

    def _bottleneck(self, task: Any, baseline: dict, evidence: Evidence, notes: list[str]) -> str:
        blocks = [" ".join(_baseline_text(task, baseline))]
        profile = _profile_text(evidence.profile)
        if profile:
            blocks.append("\n".join(profile))
        else:
            blocks.append("No profile output was available, so the hot spots are not measured; the "
                          "hypotheses below come from the research alone.")
        if notes:
            blocks.append("Mined commits and items left out of the hypotheses:\n\n"
                          + "\n".join(f"- {n}" for n in notes))
        blocks.append(self._research_notes(evidence))
        return "\n\n".join(blocks)

    def _research_notes(self, evidence: Evidence) -> str:
        counts: dict[str, int] = {}
        for item in evidence.items:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        read = ", ".join(_plural(n, KIND_NOUN.get(k, k)) for k, n in counts.items()) or "nothing"
        applied = sum(1 for p in evidence.patches or [] if getattr(p, "applies", False))
        commits = getattr(evidence, "commits", None) or []
        if commits:
            mined = (f"read {_plural(len(commits), 'commit')} of forks and competitors, {applied} patch{'es' if applied != 1 else ''} "
                     "for the current base (every commit's fate is under Research log)")
        else:
            mined = f"mined {_plural(len(evidence.patches or []), 'commit')}, {applied} applying to the current base"
        text = f"**Research notes.** Read {read}; selected {len(evidence.selected)}; {mined}."
        skipped = [one_line(s, 200) for s in evidence.skipped or [] if str(s).strip()]
        if skipped:
            text += " Skipped:\n\n" + "\n".join(f"- {s}" for s in skipped)
        return text

    def _nothing_message(self, evidence: Evidence) -> str:
        patches = evidence.patches or []
        applied = sum(1 for p in patches if getattr(p, "applies", False))
        prs = sum(1 for item in evidence.selected if item.kind == "pr")
        parts = [f"{len(evidence.items)} items read", f"{len(evidence.selected)} selected"]
        if prs:
            parts.append(f"{prs} merged PRs (already in the target)")
        unrelated = sum(1 for item in evidence.selected
                        if item.kind not in LOCAL_KINDS and _relevance_of(item) == 0.0)
        if unrelated:
            parts.append(f"{unrelated} sharing no word with the goal")
        parts.append(f"{_plural(len(patches), 'commit')} mined, {applied} applying")
        message = "research found nothing to try: " + ", ".join(parts)
        skipped = [one_line(s, 160) for s in evidence.skipped or [] if str(s).strip()]
        if skipped:
            message += "; " + "; ".join(skipped)
        return (message + ". Add notes (research.local) or competitors to the task, "
                "or write the plan by hand.")

    # --- safety -------------------------------------------------------------------------------

    def _round_trips(self, hypothesis: Hypothesis, sources: dict[str, str]) -> bool:
        """True when a plan holding this hypothesis and these sources renders and parses back
        unchanged (no injected heading, field, fence or source line)."""
        objective, metric, direction = self._frame
        try:
            plan = new_plan(objective, metric, direction, [hypothesis], dict(sources))
            return parse_plan(render_plan(plan)) == plan
        except PlanError:
            return False


def _relevance_of(item: SourceItem) -> float | None:
    score = (item.meta or {}).get("score")
    value = score.get("relevance") if isinstance(score, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _item_title(item: SourceItem | None) -> str:
    if item is None:
        return ""
    return one_line(item.title, 120) or one_line(item.id, 120)


def plan_baseline(baseline: dict) -> dict | None:
    """The baseline as the plan's front matter records it: median to 6 significant digits, CV to 4 places."""
    if not isinstance(baseline.get("median"), (int, float)):
        return None
    recorded = {"median": float(f"{float(baseline['median']):.6g}")}
    if isinstance(baseline.get("cv"), (int, float)) and math.isfinite(baseline["cv"]):
        recorded["cv"] = round(float(baseline["cv"]), 4)
    return recorded


def _probe_hypothesis(sid: str) -> Hypothesis:
    return Hypothesis(id="H1", title="probe", sources=[sid])
