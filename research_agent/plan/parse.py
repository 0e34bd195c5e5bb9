"""Plan parser. Every piece's raw text is kept (see model.Raw*) so render_plan() can reproduce the
file exactly; every error names the line at fault."""

from __future__ import annotations

import copy
import os
import re

import yaml

from ..errors import PlanError
from ..text import squash
from .model import (
    DIRECTIONS,
    KNOWN_FIELDS,
    USER_FIELD_PREFIX,
    PLAN_STATUSES,
    STATUSES,
    Hypothesis,
    Plan,
    RawBullet,
    RawDoc,
    RawHypothesis,
    RawSection,
    RawSource,
    is_unified_diff,
    patch_path,
    patch_problem,
    split_list,
    trim,
)

FENCE_OPEN_RE = re.compile(r"(`{3,}|~{3,})(.*)$")
FENCE_CLOSE_RE = re.compile(r"(`{3,}|~{3,})[ \t]*$")
H2_RE = re.compile(r"##[ \t]+(\S.*?)[ \t]*$")
H3_RE = re.compile(r"###(?!#)")
HEADING_RE = re.compile(r"###[ \t]+([A-Za-z][\w.-]*)[ \t]*:[ \t]*(\S.*?)[ \t]*$")
def unknown_field(key: str) -> str:
    """`unknown field 'riskk' (did you mean 'risk'?)`, as the task spec says it; user fields take an x- prefix."""
    import difflib

    close = difflib.get_close_matches(key, KNOWN_FIELDS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(KNOWN_FIELDS)})"
    return f"unknown field '{key}'{hint}; fields of your own start with '{USER_FIELD_PREFIX}'"


BULLET_START_RE = re.compile(r"[ \t]*[-*+][ \t]")
BULLET_RE = re.compile(r"([ \t]*[-*+][ \t]+([A-Za-z][\w-]*)[ \t]*:[ \t]*)(.*?)([ \t]*\n?)$")
# `- id — title`; the separator may also be ` - ` or ` -- ` (or an en dash).
SOURCE_RE = re.compile(r"([ \t]*[-*+][ \t]+)(\S+)(?:([ \t]+(?:—|–|--|-)[ \t]+)(.*?))?[ \t]*\n?$")
SECTION_KINDS = {
    "bottleneck analysis": "bottleneck",
    "bottleneck": "bottleneck",
    "hypotheses": "hypotheses",
    "sources": "sources",
    "research log": "log",
}


def load_plan(path) -> Plan:
    """Parse the plan file; a hypothesis's `patch:` file must exist (beside the plan)."""
    plan = _read_plan(path)
    for h in plan.hypotheses:
        if h.patch_file and not patch_path(plan.path, h.patch_file).is_file():
            raise PlanError(f"hypothesis {h.id}: patch file {h.patch_file} not found (it is relative to the plan's folder)",
                            plan.path, h.line + 1 + len(h._raw.gap) + [b.key for b in h._raw.bullets].index("patch"))
    return plan


def _read_plan(path) -> Plan:
    where = os.fspath(path)
    try:
        # newline="" keeps line endings as they are, so saving does not rewrite them.
        with open(where, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise PlanError("plan file not found", where) from None
    except IsADirectoryError:
        raise PlanError("plan path is a directory, not a file", where) from None
    except UnicodeDecodeError as e:
        raise PlanError(f"plan file is not valid UTF-8 (byte {e.start})", where) from None
    except OSError as e:
        raise PlanError(f"cannot read plan file: {e.strerror}", where) from None
    return parse_plan(text, where)


def parse_plan(text: str, path: str | None = None) -> Plan:
    return _Parser(text, path).parse()


def _lines(text: str) -> list[str]:
    # Split on "\n" only (str.splitlines also splits on form feeds etc., which would skew line numbers).
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


class _Parser:
    def __init__(self, text: str, path: str | None):
        self.lines = _lines(text)
        self.path = path

    def error(self, message: str, index: int | None) -> PlanError:
        """`index` is 0-based; PlanError wants 1-based lines."""
        return PlanError(squash(message), self.path, None if index is None else index + 1)

    def parse(self) -> Plan:
        front, close = self.front_matter()
        self.fenced = self.scan_fences(close + 1)
        parts = self.sections(close + 1)
        hyp_part = next((p for p in parts if p.kind == "hypotheses"), None)
        if hyp_part is None:
            raise self.error("the plan has no '## Hypotheses' section", min(close + 1, len(self.lines)))
        hypotheses, cited = self.hypotheses(hyp_part)
        if not hypotheses:
            raise self.error("the plan has no hypotheses (expected '### H1: title' under it)", hyp_part.start)
        src_part = next((p for p in parts if p.kind == "sources"), None)
        sources = self.sources(src_part) if src_part else {}
        for h in hypotheses:
            for sid in h.sources:
                if sid not in sources:
                    message = f"hypothesis {h.id} cites source {sid!r}, which is not listed under ## Sources"
                    raise self.error(message, cited[h.id])
        bn = next((p for p in parts if p.kind == "bottleneck"), None)
        bottleneck = trim("".join(bn.body)) if bn else ""
        log = next((p for p in parts if p.kind == "log"), None)
        research_log = trim("".join(log.body)) if log else ""

        plan = Plan(
            objective=front["objective"],
            metric=front.get("metric"),
            direction=front.get("direction", "max"),
            status=front.get("status", "draft"),
            baseline=copy.deepcopy(front.get("baseline")),
            bottleneck=bottleneck,
            hypotheses=hypotheses,
            sources=dict(sources),
            path=self.path,
            research_log=research_log,
        )
        plan.front = front  # exactly as written (the constructor adds canonical keys)
        plan._doc = RawDoc(
            front_open=self.lines[0],
            front_lines=self.lines[1:close],
            front_close=self.lines[close],
            front=copy.deepcopy(front),
            parts=[RawSection(p.kind, p.heading, p.body, p.sources) for p in parts],
            bottleneck=bottleneck,
            sources=dict(sources),
            research_log=research_log,
        )
        return plan

    # --- front matter -------------------------------------------------------------------------

    def front_matter(self) -> tuple[dict, int]:
        lines = self.lines
        if not lines or lines[0].rstrip() != "---":
            raise self.error("missing front matter: the plan must start with a '---' line", 0)
        close = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
        if close is None:
            raise self.error("unterminated front matter: no closing '---' line", 0)
        try:
            front = yaml.safe_load("".join(lines[1:close]))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            # The YAML text starts on file line 2 (index 1).
            index = min(mark.line + 1, close) if mark is not None else 0
            raise self.error(f"invalid front matter: {getattr(e, 'problem', None) or e}", index) from None
        if front is None:
            front = {}
        if not isinstance(front, dict):
            raise self.error("front matter must be a mapping of 'key: value' lines", 1)

        def at(key: str) -> int:
            pattern = re.compile(rf"{re.escape(key)}[ \t]*:")
            return next((i for i in range(1, close) if pattern.match(lines[i])), 0)

        objective = front.get("objective")
        if not isinstance(objective, str) or not objective.strip():
            raise self.error("front matter needs a non-empty 'objective'", at("objective"))
        metric = front.get("metric")
        if metric is not None and not isinstance(metric, str):
            raise self.error(f"metric must be a name, got {metric!r}", at("metric"))
        if front.get("direction", "max") not in DIRECTIONS:
            raise self.error(f"unknown direction {front['direction']!r} (expected max or min)", at("direction"))
        if front.get("status", "draft") not in PLAN_STATUSES:
            raise self.error(f"unknown plan status {front['status']!r} (expected draft or approved)", at("status"))
        if front.get("baseline") is not None and not isinstance(front["baseline"], dict):
            raise self.error("baseline must be a mapping like {median: 1.92, cv: 0.012}", at("baseline"))
        return front, close

    # --- document structure -------------------------------------------------------------------

    def scan_fences(self, start: int) -> dict[int, tuple[int, int, str]]:
        """Map each line index inside a ``` block (delimiters included) to (open, close, info)."""
        fenced: dict[int, tuple[int, int, str]] = {}
        opened = None
        for i in range(start, len(self.lines)):
            s = self.lines[i].rstrip("\n")
            if opened is None:
                m = FENCE_OPEN_RE.match(s)
                if m:
                    opened = (i, m.group(1), m.group(2).strip())
            else:
                m = FENCE_CLOSE_RE.match(s)
                if m and m.group(1)[0] == opened[1][0] and len(m.group(1)) >= len(opened[1]):
                    for j in range(opened[0], i + 1):
                        fenced[j] = (opened[0], i, opened[2])
                    opened = None
        if opened is not None:
            raise self.error(f"unterminated {opened[1]} code block", opened[0])
        return fenced

    def sections(self, start: int) -> list["_Part"]:
        heads = [i for i in range(start, len(self.lines)) if i not in self.fenced and H2_RE.match(self.lines[i])]
        parts = [_Part(None, "", self.lines[start : heads[0] if heads else len(self.lines)], start)]
        seen: dict[str, int] = {}
        for n, i in enumerate(heads):
            name = H2_RE.match(self.lines[i]).group(1)
            kind = SECTION_KINDS.get(name.lower())
            if kind in seen:
                raise self.error(f"duplicate '## {name}' section (first on line {seen[kind] + 1})", i)
            if kind:
                seen[kind] = i
            end = heads[n + 1] if n + 1 < len(heads) else len(self.lines)
            parts.append(_Part(kind, self.lines[i], self.lines[i + 1 : end], i))
        return parts

    # --- hypotheses ---------------------------------------------------------------------------

    def hypotheses(self, part: "_Part") -> tuple[list[Hypothesis], dict[str, int]]:
        first = part.start + 1
        end = first + len(part.body)
        heads = [i for i in range(first, end) if i not in self.fenced and H3_RE.match(self.lines[i])]
        part.body = self.lines[first : heads[0] if heads else end]  # intro text only
        hypotheses: list[Hypothesis] = []
        seen: dict[str, int] = {}
        cited: dict[str, int] = {}
        for n, i in enumerate(heads):
            h = self.hypothesis(i, heads[n + 1] if n + 1 < len(heads) else end)
            if h.id in seen:
                raise self.error(f"duplicate hypothesis id {h.id} (first on line {seen[h.id] + 1})", i)
            seen[h.id] = i
            # The line of the `- sources:` bullet, for the "source not listed" error.
            first_bullet = i + 1 + len(h._raw.gap)
            cited[h.id] = next((first_bullet + k for k, b in enumerate(h._raw.bullets) if b.key == "sources"), i)
            hypotheses.append(h)
        return hypotheses, cited

    def hypothesis(self, start: int, end: int) -> Hypothesis:
        lines = self.lines
        m = HEADING_RE.match(lines[start].rstrip("\n"))
        if not m:
            raise self.error(f"hypothesis heading must look like '### H1: title', got {lines[start].strip()!r}", start)
        hid, title = m.groups()

        # Bullet fields: the list right under the heading (blank lines before it allowed).
        i = start + 1
        while i < end and not lines[i].strip():
            i += 1
        if not (i < end and i not in self.fenced and BULLET_START_RE.match(lines[i])):
            i = start + 1  # no bullets: the blank lines belong to the body
        gap = lines[start + 1 : i]
        bullets: list[RawBullet] = []
        fields: dict[str, str] = {}
        while i < end and i not in self.fenced and BULLET_START_RE.match(lines[i]):
            b = BULLET_RE.match(lines[i])
            if not b:
                raise self.error(f"hypothesis {hid}: malformed field {lines[i].strip()!r} (expected '- key: value')", i)
            key = b.group(2)
            if key in fields:
                raise self.error(f"hypothesis {hid}: field '{key}' given twice", i)
            if key not in KNOWN_FIELDS and not key.startswith(USER_FIELD_PREFIX):
                raise self.error(f"hypothesis {hid}: {unknown_field(key)}", i)
            if key == "status" and b.group(3) not in STATUSES:
                raise self.error(
                    f"hypothesis {hid}: unknown status {b.group(3)!r} (expected one of {', '.join(STATUSES)})", i
                )
            fields[key] = b.group(3)
            bullets.append(RawBullet(key, b.group(1), b.group(3), b.group(4)))
            i += 1

        # Body: rationale text plus an optional ```diff block.
        body_start = i
        body = lines[body_start:end]
        fences = sorted(
            {self.fenced[j][:2] for j in range(body_start, end) if j in self.fenced and _is_diff(self.fenced[j][2])}
        )
        if len(fences) > 1:
            raise self.error(f"hypothesis {hid} has more than one ```diff block", fences[1][0])
        diff, fence = None, None
        rationale = trim("".join(body))
        if fences:
            o, c = fences[0]
            diff = "".join(lines[o + 1 : c])
            if not is_unified_diff(diff):
                raise self.error(f"hypothesis {hid}: the diff block is not a unified diff (no ---/+++ lines)", o)
            fence = (o - body_start, c - body_start)
            before, after = trim("".join(lines[body_start:o])), trim("".join(lines[c + 1 : end]))
            rationale = "\n\n".join(t for t in (before, after) if t)

        h = Hypothesis(
            id=hid,
            title=title,
            expected=fields.get("expected") or None,
            risk=fields.get("risk") or None,
            files=split_list(fields.get("files")),
            sources=split_list(fields.get("sources")),
            status=fields.get("status", "pending"),
            rationale=rationale,
            diff=diff,
            line=start + 1,
        )
        if fields.get("patch"):
            where = next(start + 1 + len(gap) + k for k, b in enumerate(bullets) if b.key == "patch")
            problem = patch_problem(fields["patch"]) or ("give a ```diff block or a patch file, not both" if diff else None)
            if problem:
                raise self.error(f"hypothesis {hid}: {problem}", where)
        h.fields = fields  # exactly as written (the constructor adds canonical keys)
        h._raw = RawHypothesis(hid, title, lines[start], gap, bullets, dict(fields), body, rationale, diff, fence)
        return h

    # --- sources ------------------------------------------------------------------------------

    def sources(self, part: "_Part") -> dict[str, str]:
        sources: dict[str, str] = {}
        first_seen: dict[str, int] = {}
        for k, line in enumerate(part.body):
            i = part.start + 1 + k
            if i in self.fenced or not BULLET_START_RE.match(line):
                part.sources.append(RawSource(line))
                continue
            m = SOURCE_RE.match(line)
            if not m:
                raise self.error(f"malformed source entry {line.strip()!r} (expected '- id — title')", i)
            head, sid, sep, title = m.group(1), m.group(2), m.group(3) or "", (m.group(4) or "")
            if sid in sources:
                raise self.error(f"source {sid} listed twice (first on line {first_seen[sid] + 1})", i)
            sources[sid], first_seen[sid] = title, i
            part.sources.append(RawSource(line, sid, head, sep, title))
        return sources


def _is_diff(info: str) -> bool:
    return info.split()[:1] == ["diff"]


class _Part:
    """A top-level section while parsing; `start` is the 0-based index of its ## heading."""

    def __init__(self, kind, heading, body, start):
        self.kind, self.heading, self.body, self.start = kind, heading, body, start
        self.sources: list[RawSource] = []
