"""A distiller that asks a model (or a fusion panel) to write the plan, behind the Distiller interface.

The prompt holds the task, the baseline and its noise floor, the profile, the ranked sources, the
mined code snippets and the mined patches — and, when the run researches again between rounds, the
ledger's results so far (what was tried, its effect and interval, why it failed). Everything fetched (source text, titles, commit messages,
diffs, snippets, the profile) is wrapped in `<untrusted …>` blocks and labelled as quoted data the
model must never obey.

The answer is one JSON object (see prompts/response_schema.j2). It is parsed and checked before it becomes a
plan:

- a citation must be an id that was given in the prompt; invented ids are dropped and reported, and
  a hypothesis is kept only while at least one real source remains;
- patch hypotheses name a mined patch by its id; the diff in the plan is always the mined diff
  itself, attached here, never text the model wrote. Applying patches the model did not rank are
  appended after its hypotheses, as the extractive distiller describes them, so none is lost;
- every piece of model text is made safe for the plan file (no heading, field or fence injected),
  and the whole plan must survive render -> parse unchanged.

An answer that is not valid JSON of that shape (or leaves no usable hypothesis) is re-asked once,
with the problem stated; a second bad answer is one clear error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import PlanError, UserError
from ..prompts import render
from ..research.base import Evidence, NothingFound, SourceItem
from ..text import clip, first_json_object
from ..research.rank import query_text, score_of
from .extractive import (
    ExtractiveDistiller,
    _baseline_text,
    _Draft,
    _escape_inline,
    _item_title,
    _printable,
    _probe_hypothesis,
    _safe_files,
    _safe_id,
    best_sentences,
    clean_title,
    one_line,
    plan_baseline,
    quote,
)
from .model import Plan, new_plan
from .parse import parse_plan
from .render import render_plan

MAX_SOURCES = 24  # ranked sources shown to the model
MAX_SOURCE_CHARS = 1500  # text of one source
MAX_SNIPPETS = 24
MAX_SNIPPET_CHARS = 600
MAX_PATCHES = 12
MAX_DIFF_LINES = 80  # of each patch, shown to the model (the plan keeps the whole diff)
MAX_PROFILE_CHARS = 4000
MAX_HYPOTHESES = 10  # asked for at most this many; more are cut (and reported)
MAX_TEXT = 3000  # characters of model text kept per rationale / bottleneck
MAX_RESULTS = 40  # experiments shown to a re-plan

RISKS = ("low", "medium", "high")

# The prompts are templates in prompts/: system.j2 (with the answer's shape, response_schema.j2),
# request.j2 (the user message) and reask.j2.


@dataclass
class LLMPlanResult:
    """What the last plan() call did, for the caller's notices and the ledger."""

    planner: str = ""
    warnings: list[str] = field(default_factory=list)  # one line per dropped id, cut hypothesis, re-ask ...
    cost_usd: float | None = 0.0
    calls: int = 0
    reasked: bool = False


class LLMDistiller:
    """Plans with one model (`model`) or a fusion panel (`models` + `judge` + `mode`).

    `client` is an `research_agent.llm.client.LLMClient` (anything with its `complete()`).
    """

    def __init__(self, client: Any, model: str | None = None, *, models: list[str] | None = None,
                 judge: str | None = None, mode: str = "merge", rounds: int = 1, temperature: float | None = None,
                 max_tokens: int | None = None, timeout: float | None = None, json_mode: bool = False,
                 max_hypotheses: int = MAX_HYPOTHESES, notify: Callable[[str], None] | None = None):
        models = [m for m in (models or []) if m]
        if not model and not models:
            raise UserError("the LLM planner needs a model (planner: {model: ...}) or models for fusion")
        if models and len(models) == 1 and not model:
            model, models = models[0], []
        self.client = client
        self.model = model if not models else None
        self.models = models
        self.judge = (judge or models[0]) if models else None
        self.mode = mode
        self.rounds = rounds
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.json_mode = json_mode
        self.max_hypotheses = max_hypotheses
        self.notify = notify or (lambda _line: None)
        self.result = LLMPlanResult(planner=self.describe())

    def describe(self) -> str:
        if self.models:
            return f"fusion {self.mode} of {', '.join(self.models)} (judge {self.judge})"
        return f"model {self.model}"

    # --- the Distiller interface ----------------------------------------------------------

    def plan(self, task: Any, baseline: dict, evidence: Evidence) -> Plan:
        self.result = LLMPlanResult(planner=self.describe())
        context = _Context.build(task, baseline or {}, evidence)
        if not context.source_ids and not context.patch_drafts and not evidence.explore:
            raise NothingFound(ExtractiveDistiller()._nothing_message(evidence))
        messages = [
            {"role": "system", "content": render(__file__, "system.j2", max_hypotheses=self.max_hypotheses)},
            {"role": "user", "content": build_prompt(task, baseline or {}, evidence, context)},
        ]
        text = self._ask(messages, first=True)
        try:
            answer = self._read(text, context)
        except _Invalid as problem:
            self.result.reasked = True
            self.result.warnings.append(f"the planner's first answer was not usable ({problem}); asked again")
            self.notify(f"plan: the planner's answer was not usable ({one_line(str(problem), 160)}); asking again")
            retry = [*messages, {"role": "assistant", "content": clip(text, 8000)},
                     {"role": "user", "content": reask_message(str(problem))}]
            text = self._ask(retry, first=False)
            try:
                answer = self._read(text, context)
            except _Invalid as again:
                raise UserError(f"the planner ({self.describe()}) returned an unusable plan twice: {one_line(str(again), 300)}"
                                " (run with --offline or without a planner for the extractive plan)") from None
        return self._assemble(task, baseline or {}, evidence, context, answer)

    # --- asking ---------------------------------------------------------------------------

    def _ask(self, messages: list[dict], first: bool) -> str:
        """One answer's text: the panel for the first ask, the judge (or the model) for a re-ask."""
        if self.models and first:
            from ..llm.fusion import fuse_sync

            prompt = messages
            result = fuse_sync(self.client, prompt, self.models, self.judge, mode=self.mode, rounds=self.rounds,
                               **self._fusion_options())
            self.result.calls += len(getattr(result, "members", []) or []) + len(getattr(result, "judge_calls", []) or [])
            self._add_cost(getattr(result, "total_cost_usd", None))
            for warning in getattr(result, "warnings", None) or []:
                self.result.warnings.append(f"fusion: {one_line(str(warning), 200)}")
            final = getattr(result, "final", None)
            if not final or not str(final).strip():
                failed = "; ".join(one_line(str(f), 160) for f in (getattr(result, "failed", None) or [])) or "no answer"
                raise UserError(f"the planner panel gave no answer: {failed}")
            return str(final)
        model = self.judge if self.models else self.model
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.json_mode:
            options["response_format"] = {"type": "json_object"}
        completion = self.client.complete(model, messages, **options)
        self.result.calls += 1
        self._add_cost(_completion_cost(completion))
        return str(getattr(completion, "text", "") or "")

    def _fusion_options(self) -> dict:
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.timeout is not None:
            options.update(member_timeout=self.timeout, judge_timeout=self.timeout)
        return options

    def _add_cost(self, usd: float | None) -> None:
        if self.result.cost_usd is None:
            return
        if usd is None:
            self.result.cost_usd = None  # unknown stays unknown: never reported as $0
        else:
            self.result.cost_usd += float(usd)

    # --- reading the answer ---------------------------------------------------------------

    def _read(self, text: str, context: "_Context") -> "_Answer":
        data = parse_json_object(text)
        return validate_answer(data, context, self.max_hypotheses)

    # --- the plan -------------------------------------------------------------------------

    def _assemble(self, task: Any, baseline: dict, evidence: Evidence, context: "_Context", answer: "_Answer") -> Plan:
        objective = (getattr(task, "goal", "") or "").strip() or "Improve the metric"
        metric = getattr(getattr(task, "metric", None), "name", None)
        direction = getattr(getattr(task, "metric", None), "direction", "max")
        checker = ExtractiveDistiller()
        checker._frame = (objective, metric, direction)
        warnings = self.result.warnings
        warnings.extend(answer.warnings)

        drafts: list[_Draft] = []
        used_patches: set[int] = set()
        for proposal in answer.hypotheses:
            draft = self._draft(proposal, context)
            if draft is None:
                continue
            if not checker._round_trips(draft.hypothesis("H1"), draft.source_titles):
                draft.rationale = quote(draft.rationale, max_lines=20, max_chars=MAX_TEXT)
                if not checker._round_trips(draft.hypothesis("H1"), draft.source_titles):
                    warnings.append(f"dropped hypothesis {one_line(proposal.title, 60)!r}: its text cannot be written safely")
                    continue
            if proposal.patch is not None:
                used_patches.add(id(context.patch_drafts[proposal.patch]))
            drafts.append(draft)
        for pid, mined in context.patch_order():
            if id(mined) in used_patches:
                continue
            used_patches.add(id(mined))
            drafts.append(mined)
            warnings.append(f"mined patch {one_line(pid, 100)} was not ranked by the planner: added as mined")
        if not drafts:
            raise UserError(f"the planner ({self.describe()}) left no hypothesis that cites a real source")

        hypotheses = [d.hypothesis(f"H{i}") for i, d in enumerate(drafts, 1)]
        sources: dict[str, str] = {}
        for d in drafts:
            for sid in d.sources:
                sources.setdefault(sid, d.source_titles.get(sid) or context.titles.get(sid) or sid)
        for item in evidence.selected:  # context: selected but not cited
            if item.id not in sources and item.id in context.titles:
                entry = {item.id: context.titles[item.id]}
                if checker._round_trips(_probe_hypothesis(item.id), entry):
                    sources.update(entry)

        bottleneck = self._bottleneck(task, baseline, evidence, answer.bottleneck, warnings, context.notes)
        plan = new_plan(objective, metric, direction, hypotheses, sources, bottleneck=bottleneck,
                        baseline=plan_baseline(baseline), status="draft")
        plan.front["planner"] = self.describe()
        if parse_plan(render_plan(plan)) != plan:
            plan.bottleneck = self._bottleneck(task, baseline, evidence, quote(answer.bottleneck, 30, MAX_TEXT), warnings,
                                               context.notes)
            if parse_plan(render_plan(plan)) != plan:
                raise PlanError("internal error: the planner's plan does not survive render -> parse")
        return plan

    def _draft(self, proposal: "_Proposal", context: "_Context") -> _Draft | None:
        if proposal.patch is not None:
            mined = context.patch_drafts[proposal.patch]
            sources = list(mined.sources) + [s for s in proposal.sources if s not in mined.sources]
            titles = {**{s: context.titles.get(s, s) for s in sources}, **mined.source_titles}
            rationale = "\n\n".join(t for t in (safe_text(proposal.rationale), mined.rationale) if t)
            return _Draft(title=clean_title(proposal.title) or mined.title,
                          expected=_field_text(proposal.expected) or mined.expected,
                          risk=_risk(proposal.risk) or mined.risk, files=list(mined.files), sources=sources,
                          rationale=rationale, diff=mined.diff, source_titles=titles)
        return _Draft(title=clean_title(proposal.title), expected=_field_text(proposal.expected) or "unknown",
                      risk=_risk(proposal.risk) or "medium", files=_safe_files(proposal.files)[:10],
                      sources=list(proposal.sources), rationale=safe_text(proposal.rationale),
                      source_titles={s: context.titles.get(s, s) for s in proposal.sources})

    def _bottleneck(self, task: Any, baseline: dict, evidence: Evidence, analysis: str, warnings: list[str],
                    left_out: list[str]) -> str:
        blocks = []
        analysis = safe_text(analysis)
        if analysis:
            blocks.append(analysis)
        blocks.append(" ".join(_baseline_text(task, baseline)))
        cost = self.result.cost_usd
        cost_text = "cost unknown" if cost is None else f"${cost:.4f}"
        blocks.append(f"**Planner.** Written by {one_line(self.describe(), 200)} ({self.result.calls} "
                      f"call{'s' if self.result.calls != 1 else ''}, {cost_text}) from the sources below; "
                      "every citation was checked against them and every diff is the mined one.")
        if warnings:
            blocks.append("Planner notes:\n\n" + "\n".join(f"- {one_line(w, 240)}" for w in warnings))
        if left_out:
            blocks.append("Mined commits left out of the hypotheses:\n\n" + "\n".join(f"- {n}" for n in left_out))
        blocks.append(ExtractiveDistiller()._research_notes(evidence))
        return "\n\n".join(blocks)


# --- the prompt -----------------------------------------------------------------------------------


class _Invalid(Exception):
    """The answer cannot be used as it is (re-ask once)."""


@dataclass
class _Context:
    """What the prompt showed: the ids the model may cite and the mined patches by id."""

    titles: dict[str, str]  # citable id -> plan title (sources and patches)
    source_ids: list[str]  # the SOURCES shown, ranked
    items: dict[str, SourceItem]
    patch_drafts: dict[str, _Draft]  # patch id -> its draft (same object for duplicates of one diff)
    patches: list[Any]  # the CandidatePatch objects shown, in order
    notes: list[str]  # mined but unusable, from the extractive checks
    explore: bool = False  # no sources on purpose: hypotheses may cite none

    @classmethod
    def build(cls, task: Any, baseline: dict, evidence: Evidence) -> "_Context":
        items: dict[str, SourceItem] = {}
        for item in [*evidence.selected, *evidence.items]:
            items.setdefault(item.id, item)
        extractive = ExtractiveDistiller()
        objective = (getattr(task, "goal", "") or "").strip() or "Improve the metric"
        extractive._frame = (objective, getattr(getattr(task, "metric", None), "name", None),
                             getattr(getattr(task, "metric", None), "direction", "max"))
        notes: list[str] = []
        drafts, _patched = extractive._patch_drafts(evidence.patches, items, notes)
        patch_drafts: dict[str, _Draft] = {}
        patches = []
        by_id = {str(getattr(p, "id", "")): p for p in evidence.patches or []}
        for draft in drafts:  # one draft per distinct diff; every patch id with that diff maps to it
            ids = [sid for sid in draft.patch_ids if sid in by_id and getattr(by_id[sid], "applies", False)]
            for sid in ids:
                patch_drafts[sid] = draft
            if ids and len(patches) < MAX_PATCHES:  # more are not shown, and are appended as mined
                patches.append(by_id[ids[0]])
        titles: dict[str, str] = {}
        for draft in drafts:
            for sid, title in draft.source_titles.items():
                titles.setdefault(sid, title)
        source_ids = []
        for item in evidence.selected:
            if len(source_ids) >= MAX_SOURCES:
                break
            if not _safe_id(item.id) or _attr(item.id) != item.id:  # the model must see the id exactly
                continue
            entry = {item.id: _item_title(item)}
            if extractive._round_trips(_probe_hypothesis(item.id), entry):
                source_ids.append(item.id)
                titles.setdefault(item.id, _item_title(item))
        return cls(titles, source_ids, items, patch_drafts, patches, notes, explore=bool(evidence.explore))

    def patch_order(self) -> list[tuple[str, _Draft]]:
        seen: set[int] = set()
        out = []
        for pid, draft in self.patch_drafts.items():
            if id(draft) not in seen:
                seen.add(id(draft))
                out.append((pid, draft))
        return out


def build_prompt(task: Any, baseline: dict, evidence: Evidence, context: _Context) -> str:
    """The user message (prompts/request.j2): every fetched text already quoted as an `<untrusted>` block."""
    metric = getattr(task, "metric", None)
    exp = getattr(task, "experiments", None)
    gate = None if exp is None else {"min_effect": f"{float(exp.min_effect):.2%}", "repeats": exp.repeats,
                                     "max_repeats": exp.max_repeats}
    commands = [(label, one_line(getattr(task, key), 300))
                for label, key in (("Build command", "build"), ("Benchmark command", "bench"), ("Check command", "check"))
                if getattr(task, key, None)]
    query = query_text(task)
    sources = []
    for sid in context.source_ids:
        item = context.items[sid]
        attrs = {"id": sid, "kind": item.kind, "title": _item_title(item), "score": f"{score_of(item):.2f}"}
        if item.url:
            attrs["url"] = one_line(item.url, 200)
        why = (item.meta or {}).get("selected_because")
        if why:
            attrs["selected_because"] = one_line(why, 160)
        sources.append(untrusted(_excerpt(item.text or "", query), **attrs))
    shown = set(context.source_ids) | set(context.patch_drafts)
    snippets = [untrusted(str(getattr(s, "text", "") or "")[:MAX_SNIPPET_CHARS], source=str(s.item_id),
                          path=one_line(getattr(s, "path", "?"), 160), line=str(getattr(s, "line", "?")))
                for s in [s for s in evidence.snippets or [] if getattr(s, "item_id", None) in shown][:MAX_SNIPPETS]]
    history = list(getattr(evidence, "history", None) or [])
    skipped = [one_line(s, 200) for s in context.notes + list(evidence.skipped or []) if str(s).strip()]
    return render(__file__, "request.j2",
                  objective=one_line(getattr(task, "goal", "") or "Improve the metric", 400),
                  metric=getattr(metric, "name", None) or "the metric", maximize=getattr(metric, "direction", "max") == "max",
                  commands=commands, protected=[one_line(p, 100) for p in _protected(task)], gate=gate,
                  runtime=getattr(getattr(task, "runtime", None), "name", None),
                  baseline=_baseline_text(task, baseline),
                  profile=untrusted(evidence.profile[:MAX_PROFILE_CHARS], kind="profile") if (evidence.profile or "").strip() else "",
                  explore=bool(evidence.explore),
                  code=untrusted(evidence.code, kind="code") if (evidence.code or "").strip() else "",
                  sources=sources, snippets=snippets, patches=[_patch_block(patch, context) for patch in context.patches],
                  results=untrusted(_results(history), kind="results") if history else "", skipped=skipped[:20])


def _patch_block(patch: Any, context: _Context) -> str:
    draft = context.patch_drafts[str(patch.id)]
    diff_lines = draft.diff.splitlines() if draft.diff else []
    body = str(getattr(patch, "message", "") or getattr(patch, "title", "") or "").strip()
    shown_diff = "\n".join(diff_lines[:MAX_DIFF_LINES])
    if len(diff_lines) > MAX_DIFF_LINES:
        shown_diff += f"\n[... {len(diff_lines) - MAX_DIFF_LINES} more diff lines]"
    held = [str(c) for c in getattr(patch, "commits", None) or []]
    return untrusted(f"Commit message:\n{body}\n\nDiff:\n{shown_diff}", id=str(patch.id),
                     source=str(getattr(patch, "item_id", "") or ""), files=", ".join(draft.files),
                     holds=", ".join(held) if len(held) > 1 else "")


def _results(history: list[dict]) -> str:
    """One line per experiment the run decided: hypothesis, sources, decision, effect and interval, reason."""
    out = []
    for entry in history[:MAX_RESULTS]:
        effect = entry.get("effect") or {}
        measured = ""
        if isinstance(effect.get("median"), (int, float)):
            low, high = (effect.get("ci") or [None, None])[:2]
            measured = f" {effect['median']:+.1%}"
            if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                measured += f" [{low:+.1%}, {high:+.1%}]"
            if effect.get("n"):
                measured += f" over {effect['n']} pairs"
        sources = ", ".join(entry.get("sources") or [])
        out.append(f"- {entry.get('id', '?')} {entry.get('title', '')!r}" + (f" (sources: {sources})" if sources else "")
                   + f": {entry.get('decision', '?')}{measured} — {one_line(entry.get('reason') or '', 240)}")
    if len(history) > MAX_RESULTS:
        out.append(f"({len(history) - MAX_RESULTS} more not shown)")
    return "\n".join(out)


def reask_message(problem: str) -> str:
    return render(__file__, "reask.j2", problem=one_line(problem, 600))


_TAG_RE = re.compile(r"<(/?)(untrusted)", re.IGNORECASE)


def untrusted(text: str, **attrs: str) -> str:
    """Fetched text as a labelled, delimited block; a forged closing tag inside cannot end it."""
    body = _TAG_RE.sub(lambda m: "<" + m.group(1) + "\\" + m.group(2), _printable_block(text)).strip("\n")
    head = " ".join(f'{k}="{_attr(v)}"' for k, v in attrs.items() if v not in (None, ""))
    return f"<untrusted {head}>\n{body}\n</untrusted>" if head else f"<untrusted>\n{body}\n</untrusted>"


def _attr(value: Any) -> str:
    return one_line(str(value), 300).replace('"', "'").replace("<", "(").replace(">", ")")


def _printable_block(text: str) -> str:
    return "\n".join(_printable(line).rstrip() for line in str(text or "").splitlines())


def _excerpt(text: str, query: str) -> str:
    text = _printable_block(text).strip()
    if len(text) <= MAX_SOURCE_CHARS:
        return text
    head = text[: MAX_SOURCE_CHARS // 2]
    cut = head.rfind("\n")
    head = head[:cut] if cut > MAX_SOURCE_CHARS // 4 else head
    best = " ".join(best_sentences(text, query, k=4))[: MAX_SOURCE_CHARS // 2]
    return f"{head}\n[...]\n{best}" if best else head + "\n[...]"


def _protected(task: Any) -> list[str]:
    try:
        return list(task.protected_paths())
    except Exception:  # a URL repo or a task stand-in: the globs as written
        return list(getattr(task, "protected", []) or [])


# --- parsing and checking the answer -------------------------------------------------------------


@dataclass
class _Proposal:
    title: str
    patch: str | None
    sources: list[str]
    files: list[str]
    expected: str
    risk: str
    rationale: str


@dataclass
class _Answer:
    bottleneck: str
    hypotheses: list[_Proposal]
    warnings: list[str]


def parse_json_object(text: str) -> dict:
    """The JSON object in a model's answer: bare, inside a ```json fence, or after some prose (the first
    object with a "hypotheses" key wins, else the first object)."""
    text = str(text or "").strip()
    if not text:
        raise _Invalid("the answer was empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        first_error: Exception = e
    else:
        if isinstance(data, dict):
            return data
        raise _Invalid(f"the answer is a JSON {type(data).__name__}, not an object")
    found = first_json_object(text, key="hypotheses")
    if found is not None:
        return found
    raise _Invalid(f"the answer is not a JSON object ({one_line(str(first_error), 160)})")


def validate_answer(data: dict, context: _Context, max_hypotheses: int = MAX_HYPOTHESES) -> _Answer:
    """Check the answer's shape (_Invalid when it is unusable) and its citations (dropped and reported)."""
    hyps = data.get("hypotheses")
    if not isinstance(hyps, list) or not hyps:
        raise _Invalid("'hypotheses' must be a non-empty list")
    bottleneck = data.get("bottleneck", "")
    if bottleneck is None:
        bottleneck = ""
    if not isinstance(bottleneck, str):
        raise _Invalid("'bottleneck' must be a string")
    warnings: list[str] = []
    proposals: list[_Proposal] = []
    used_patches: set[int] = set()
    for n, h in enumerate(hyps, 1):
        if not isinstance(h, dict):
            raise _Invalid(f"hypothesis {n} is not an object")
        title = h.get("title")
        if not isinstance(title, str) or not clean_title(title):
            raise _Invalid(f"hypothesis {n} has no 'title' string")
        label = f"hypothesis {n} ({one_line(title, 60)!r})"
        sources = _str_list(h.get("sources"), f"hypothesis {n}: 'sources'")
        files = _str_list(h.get("files"), f"hypothesis {n}: 'files'")
        for key in ("expected", "risk", "rationale"):
            if h.get(key) is not None and not isinstance(h.get(key), (str, int, float)):
                raise _Invalid(f"hypothesis {n}: '{key}' must be a string")
        patch = h.get("patch")
        if patch in ("", "null", "none", "None"):
            patch = None
        if patch is not None and not isinstance(patch, str):
            raise _Invalid(f"hypothesis {n}: 'patch' must be a patch id or null")
        if patch is not None:
            patch = patch.strip()
            if patch not in context.patch_drafts:
                warnings.append(f"{label}: dropped unknown patch id {one_line(patch, 100)!r} (not among the mined patches)")
                patch = None
            elif id(context.patch_drafts[patch]) in used_patches:
                warnings.append(f"{label}: dropped: patch {one_line(patch, 100)} is already another hypothesis")
                continue
        real, invented = [], []
        for sid in sources:
            sid = sid.strip()
            if sid in context.titles:
                if sid not in real:
                    real.append(sid)
            elif sid:
                invented.append(sid)
        shown = ", ".join(repr(one_line(s, 80)) for s in invented[:5]) + (" …" if len(invented) > 5 else "")
        if patch is None and not real and not context.explore:
            why = f"it cites only invented source ids ({shown})" if invented else "it cites no source"
            warnings.append(f"{label}: dropped: {why}")
            continue
        if invented:
            warnings.append(f"{label}: dropped invented source id{'s' if len(invented) > 1 else ''} {shown}")
        if patch is not None:
            used_patches.add(id(context.patch_drafts[patch]))
        proposals.append(_Proposal(title=title, patch=patch, sources=real, files=files,
                                   expected=_scalar(h.get("expected")), risk=_scalar(h.get("risk")),
                                   rationale=_scalar(h.get("rationale"))))
    if len(proposals) > max_hypotheses:
        cut = proposals[max_hypotheses:]
        keep = [p for p in cut if p.patch is not None]  # a mined patch is never lost
        proposals = proposals[:max_hypotheses] + keep
        if len(cut) > len(keep):
            warnings.append(f"cut {len(cut) - len(keep)} hypotheses beyond the first {max_hypotheses}")
    if not proposals and not context.patch_drafts:
        problems = "; ".join(warnings[:4])
        raise _Invalid("no hypothesis cites an id from SOURCES or PATCHES" + (f" ({problems})" if problems else ""))
    return _Answer(bottleneck=bottleneck, hypotheses=proposals, warnings=warnings)


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"{what} must be a list of strings")
    return [v for v in value if v.strip()]


def _scalar(value: Any) -> str:
    return "" if value is None else str(value)


# --- model text into the plan --------------------------------------------------------------------


_HEADING_RE = re.compile(r"^(\s*)(#+)")


def safe_text(text: str, limit: int = MAX_TEXT) -> str:
    """Model text as plan prose: no heading, fence, front-matter or comment it could inject."""
    out = []
    for line in str(text or "").replace("\r\n", "\n").split("\n"):
        line = _escape_inline(_printable(line)).rstrip()
        line = _HEADING_RE.sub(lambda m: m.group(1) + "\\" + m.group(2), line)
        if line.strip() == "---":
            line = "\\---"
        out.append(line)
    text = "\n".join(out).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _field_text(value: str) -> str:
    return one_line(value, 80)


def _risk(value: str) -> str:
    text = one_line(value, 40).lower()
    return next((r for r in RISKS if text.startswith(r)), one_line(value, 40))


def _completion_cost(completion: Any) -> float | None:
    for holder in (completion, getattr(completion, "usage", None)):
        if holder is None:
            continue
        for key in ("cost_usd", "cost"):
            value = holder.get(key) if isinstance(holder, dict) else getattr(holder, key, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


