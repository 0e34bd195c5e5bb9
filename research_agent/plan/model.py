"""Plan data model.

Callers read and change the typed attributes (`status`, `files`, ...). Parsed plans also keep the raw
text of every piece (`_doc`, `_raw`) so that rendering reproduces the file byte for byte and rewrites
only what changed. `fields` / `front` hold everything as written; the typed attributes win when the
two disagree, and `_sync()` copies them back before rendering or comparing.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import PlanError

STATUSES = ("pending", "running", "kept", "discarded", "failed", "rejected")
PLAN_STATUSES = ("draft", "approved")
DIRECTIONS = ("max", "min")

ID_RE = re.compile(r"[A-Za-z][\w.-]*\Z")
FIELD_KEY_RE = re.compile(r"[A-Za-z][\w-]*\Z")

# Bullet fields with a typed attribute, in canonical order; the others stay in `fields` only.
TYPED_FIELDS = ("expected", "risk", "files", "sources", "status")
# Every hypothesis field the tool reads or writes; a person's own fields start with `x-` (x-owner: ...).
KNOWN_FIELDS = (*TYPED_FIELDS, "patch", "commits", "research-round", "origin")
USER_FIELD_PREFIX = "x-"
LIST_FIELDS = ("files", "sources")
# Front-matter keys with a typed attribute, and what their absence means.
TYPED_FRONT = ("objective", "metric", "direction", "status", "baseline")
FRONT_DEFAULTS = {"objective": None, "metric": None, "direction": "max", "status": "draft", "baseline": None}


def split_list(value: str | None) -> list[str]:
    """`a.c, b.c` -> ['a.c', 'b.c']; used for `files` and `sources`."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def trim(text: str | None) -> str:
    """Drop leading blank lines and trailing whitespace (keeps the first line's indentation)."""
    lines = (text or "").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines).rstrip()


def _typed_value(key: str, raw: str | None) -> Any:
    """What a bullet value (or its absence) means as a typed attribute."""
    if key in LIST_FIELDS:
        return split_list(raw)
    if key == "status":
        return "pending" if raw is None else raw
    return raw or None


def _norm(key: str, value: Any) -> Any:
    if key in LIST_FIELDS:
        return split_list(value) if isinstance(value, str) else list(value or [])
    if key == "status":
        return value
    return value or None


@dataclass(eq=False)
class Hypothesis:
    id: str
    title: str
    expected: str | None = None
    risk: str | None = None
    files: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    status: str = "pending"
    rationale: str = ""
    diff: str | None = None  # text inside the ```diff fence, ending with a newline
    fields: dict[str, str] = field(default_factory=dict)  # every bullet field as written, in order
    line: int = 0  # 1-based line of the ### heading; 0 when built in code
    _raw: Any = field(default=None, init=False, repr=False)  # RawHypothesis when parsed

    def __post_init__(self) -> None:
        self.title = self.title.strip()
        self.rationale = trim(self.rationale)
        self.files = _norm("files", self.files)
        self.sources = _norm("sources", self.sources)
        self.diff = diff_text(self.diff)
        # Built in code: list the typed fields in canonical order, then any extra fields given.
        given = {str(k): str(v) for k, v in self.fields.items()}
        self.fields = {}
        for key in TYPED_FIELDS:
            value = _norm(key, getattr(self, key))
            if value not in (None, []):
                self.fields[key] = _format(value)
        self.fields.update(given)
        self._sync()

    def _sync(self) -> None:
        for key in TYPED_FIELDS:
            value = _norm(key, getattr(self, key))
            if _typed_value(key, self.fields.get(key)) != value:
                if value in (None, []):
                    self.fields.pop(key, None)
                elif key in self.fields:
                    self.fields[key] = _format(value)
                else:
                    self.fields = _insert_field(self.fields, key, _format(value))

    @property
    def patch_file(self) -> str | None:
        """The `- patch: research/patches/H3.diff` field: a diff kept in a file beside the plan instead of inline."""
        return self.fields.get("patch") or None

    @property
    def has_patch(self) -> bool:
        return bool(self.diff or self.patch_file)

    def _key(self) -> tuple:
        self._sync()
        return (self.id, self.title, self.fields, trim(self.rationale), diff_text(self.diff))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hypothesis):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # mutable


@dataclass(eq=False)
class Plan:
    objective: str
    metric: str | None = None
    direction: str = "max"
    status: str = "draft"
    baseline: dict | None = None
    front: dict = field(default_factory=dict)  # all front-matter keys, as loaded
    bottleneck: str = ""
    hypotheses: list[Hypothesis] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # id -> title, ordered
    path: str | None = None
    research_log: str = ""  # the `## Research log` section: what research found, round by round (tool-written)
    _doc: Any = field(default=None, init=False, repr=False)  # RawDoc when parsed

    def __post_init__(self) -> None:
        self.bottleneck = trim(self.bottleneck)
        self.research_log = trim(self.research_log)
        self.baseline = copy.deepcopy(self.baseline)
        given = dict(self.front)
        self.front = {k: copy.deepcopy(getattr(self, k)) for k in TYPED_FRONT if getattr(self, k) is not None}
        self.front.update(given)
        self._sync()

    def hypothesis(self, hid: str) -> Hypothesis:
        for h in self.hypotheses:
            if h.id == hid:
                return h
        raise KeyError(f"no hypothesis {hid!r} in the plan")

    def patch_text(self, hyp: Hypothesis) -> str | None:
        """The hypothesis's diff: inline, or read from its patch file (relative to the plan's folder)."""
        if hyp.diff or not hyp.patch_file:
            return hyp.diff
        path = patch_path(self.path, hyp.patch_file)
        try:
            return diff_text(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise PlanError(f"hypothesis {hyp.id}: patch file {hyp.patch_file} cannot be read "
                            f"({getattr(error, 'strerror', None) or error})", self.path, hyp.line or None) from None

    def set_status(self, hid: str, status: str) -> None:
        if status not in STATUSES:
            raise PlanError(f"unknown hypothesis status {status!r} (expected one of {', '.join(STATUSES)})")
        self.hypothesis(hid).status = status

    def set_plan_status(self, status: str) -> None:
        if status not in PLAN_STATUSES:
            raise PlanError(f"unknown plan status {status!r} (expected draft or approved)")
        self.status = status

    def set_baseline(self, median: float, cv: float) -> None:
        # Keep any other keys a human put there; YAML needs plain floats (not numpy scalars).
        self.baseline = {**(self.baseline or {}), "median": float(median), "cv": float(cv)}

    def _sync(self) -> None:
        for key in TYPED_FRONT:
            value = getattr(self, key)
            if self.front.get(key, FRONT_DEFAULTS[key]) != value:
                if value is None:
                    self.front.pop(key, None)
                else:
                    self.front[key] = copy.deepcopy(value)
        for h in self.hypotheses:
            h._sync()

    def _key(self) -> tuple:
        self._sync()
        return (self.front, trim(self.bottleneck), self.hypotheses, self.sources, trim(self.research_log))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # mutable


def _insert_field(fields: dict[str, str], key: str, value: str) -> dict[str, str]:
    """Add a typed field before the next typed field already present (so `status` stays last)."""
    later = TYPED_FIELDS[TYPED_FIELDS.index(key) + 1 :]
    out: dict[str, str] = {}
    for k, v in fields.items():
        if k in later and key not in out:
            out[key] = value
        out[k] = v
    out.setdefault(key, value)
    return out


def _format(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def diff_text(diff: str | None) -> str | None:
    if not diff or not diff.strip():
        return None
    return diff if diff.endswith("\n") else diff + "\n"


def is_unified_diff(diff: str) -> bool:
    lines = diff.splitlines()
    return any(s.startswith("---") for s in lines) and any(s.startswith("+++") for s in lines)


def patch_path(plan_path: str | None, patch: str):
    """Where a hypothesis's patch file is: relative to the plan's folder (the working directory for a plan in memory)."""
    from pathlib import Path

    return (Path(plan_path).parent if plan_path else Path(".")) / patch


def patch_problem(patch: str) -> str | None:
    """Why a `patch:` value is not a usable reference, or None (relative, inside the plan's folder, a .diff/.patch)."""
    parts = patch.replace("\\", "/").split("/")
    if patch.startswith(("/", "~")) or re.match(r"[A-Za-z]:", patch) or ".." in parts or not patch.strip():
        return f"patch file {patch!r} must be a path relative to the plan's folder, inside it"
    if not patch.endswith((".diff", ".patch")):
        return f"patch file {patch!r} must end in .diff or .patch"
    return None


def new_plan(objective, metric, direction, hypotheses, sources, bottleneck="", baseline=None, status="draft",
             research_log="") -> Plan:
    """A plan built in code (e.g. by a distiller); validated, renders to the canonical format."""
    plan = Plan(
        objective=objective,
        metric=metric,
        direction=direction,
        status=status,
        baseline=dict(baseline) if baseline is not None else None,
        bottleneck=bottleneck,
        hypotheses=[h if isinstance(h, Hypothesis) else _hypothesis_from_dict(h) for h in hypotheses],
        sources={str(k): str(v).strip() for k, v in sources.items()},
        research_log=research_log,
    )
    validate(plan)
    return plan


def _hypothesis_from_dict(d: dict) -> Hypothesis:
    # Other keys (e.g. "x-source-commit") become extra bullet fields.
    known = {"id", "title", "expected", "risk", "files", "sources", "status", "rationale", "diff", "fields"}
    extra = {k: v for k, v in d.items() if k not in known}
    args = {k: v for k, v in d.items() if k in known and k != "fields"}
    return Hypothesis(**args, fields={**d.get("fields", {}), **extra})


def validate(plan: Plan) -> None:
    """Checks for plans built in code (the parser does the same checks with line numbers)."""
    if not isinstance(plan.objective, str) or not plan.objective.strip():
        raise PlanError("the plan needs a non-empty objective")
    if plan.direction not in DIRECTIONS:
        raise PlanError(f"unknown direction {plan.direction!r} (expected max or min)")
    if plan.status not in PLAN_STATUSES:
        raise PlanError(f"unknown plan status {plan.status!r} (expected draft or approved)")
    if plan.baseline is not None and not isinstance(plan.baseline, dict):
        raise PlanError("baseline must be a mapping like {median: 1.9, cv: 0.01}")
    for sid, title in plan.sources.items():
        if not sid or re.search(r"\s", sid) or "\n" in title:
            raise PlanError(f"invalid source entry {sid!r}")
    if not plan.hypotheses:
        raise PlanError("the plan has no hypotheses")
    seen: set[str] = set()
    for h in plan.hypotheses:
        if not ID_RE.match(h.id):
            raise PlanError(f"invalid hypothesis id {h.id!r} (letters, digits, '_', '.', '-'; starts with a letter)")
        if h.id in seen:
            raise PlanError(f"duplicate hypothesis id {h.id}")
        seen.add(h.id)
        if not h.title or "\n" in h.title:
            raise PlanError(f"hypothesis {h.id} needs a one-line title")
        if h.status not in STATUSES:
            raise PlanError(f"hypothesis {h.id}: unknown status {h.status!r} (expected one of {', '.join(STATUSES)})")
        h._sync()
        for key, value in h.fields.items():
            if not FIELD_KEY_RE.match(key) or "\n" in value:
                raise PlanError(f"hypothesis {h.id}: invalid field {key!r}")
        for sid in h.sources:
            if sid not in plan.sources:
                raise PlanError(f"hypothesis {h.id} cites source {sid!r}, which is not listed under ## Sources")
        if h.diff and not is_unified_diff(h.diff):
            raise PlanError(f"hypothesis {h.id}: the diff is not a unified diff (no ---/+++ lines)")
        if h.patch_file:
            problem = patch_problem(h.patch_file) or ("give a ```diff block or a patch file, not both" if h.diff else None)
            if problem:
                raise PlanError(f"hypothesis {h.id}: {problem}")


# Raw text records kept by the parser, read by the renderer.


@dataclass
class RawBullet:
    key: str
    head: str  # "- status: " (indent, marker, key, colon, spacing)
    value: str
    tail: str  # trailing spaces and the newline


@dataclass
class RawHypothesis:
    id: str
    title: str
    heading: str
    gap: list[str]  # blank lines between the heading and the bullets
    bullets: list[RawBullet]
    fields: dict[str, str]
    body: list[str]  # rationale and diff fence, up to the next heading
    rationale: str
    diff: str | None
    fence: tuple[int, int] | None  # indexes in `body` of the ```diff opening and closing lines


@dataclass
class RawSource:
    line: str
    sid: str | None = None  # None for lines that are not entries (free text, blank)
    head: str = ""
    sep: str = ""
    title: str = ""


@dataclass
class RawSection:
    kind: str | None  # "bottleneck" | "hypotheses" | "sources" | "log" | None (preamble, unknown section)
    heading: str  # "" for the preamble
    body: list[str]  # for "hypotheses": only the text before the first ### heading
    sources: list[RawSource] = field(default_factory=list)


@dataclass
class RawDoc:
    front_open: str
    front_lines: list[str]
    front_close: str
    front: dict  # snapshot as parsed
    parts: list[RawSection]
    bottleneck: str
    sources: dict[str, str]
    research_log: str = ""
