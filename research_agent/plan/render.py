"""Plan renderer. A parsed plan is re-emitted from its raw text, regenerating only the pieces whose
values changed (a status edit rewrites one line); a plan built in code gets the canonical layout."""

from __future__ import annotations

import json
import os
import re
import tempfile

import yaml

from .model import Hypothesis, Plan, RawDoc, RawHypothesis, RawSection, RawSource, diff_text, trim

KEY_RE = r"{key}[ \t]*:"


def render_plan(plan: Plan) -> str:
    plan._sync()
    doc = plan._doc
    if doc is None:
        return _canonical(plan)
    chunks = [doc.front_open, _front(plan, doc), doc.front_close]
    kinds = {p.kind for p in doc.parts}
    for part in doc.parts:
        if part.kind == "hypotheses" and "bottleneck" not in kinds and plan.bottleneck:
            _add_block(chunks, _bottleneck_section(plan.bottleneck))
        if part.kind == "sources" and "log" not in kinds and plan.research_log:
            _add_block(chunks, _log_section(plan.research_log))
        chunks.append(part.heading)
        if part.kind == "bottleneck":
            same = plan.bottleneck == doc.bottleneck
            chunks.append("".join(part.body) if same else _replace_text(part.body, plan.bottleneck))
        elif part.kind == "log":
            same = plan.research_log == doc.research_log
            chunks.append("".join(part.body) if same else _replace_text(part.body, plan.research_log))
        elif part.kind == "hypotheses":
            chunks.append("".join(part.body))
            for h in plan.hypotheses:
                if h._raw is None:
                    _add_block(chunks, _canonical_hypothesis(h))
                else:
                    chunks.append(_hypothesis(h, h._raw))
        elif part.kind == "sources":
            chunks.append(_sources(plan.sources, doc.sources, part))
        else:
            chunks.append("".join(part.body))
    if "sources" not in kinds and "log" not in kinds and plan.research_log:
        _add_block(chunks, _log_section(plan.research_log))
    if "sources" not in kinds and plan.sources:
        _add_block(chunks, "## Sources\n" + "".join(_source_line(s, t) for s, t in plan.sources.items()))
    return _join(chunks)


def save_plan(plan: Plan, path) -> None:
    """Write atomically: a reader (or a crash) never sees a half-written plan."""
    text = render_plan(plan)
    path = os.fspath(path)
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)  # keep the existing file's permissions
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- helpers --------------------------------------------------------------------------------------


def _join(chunks: list[str]) -> str:
    # Only the file's last line can lack a newline; if something now follows it, add one.
    out = ""
    for c in chunks:
        if c and out and not out.endswith("\n") and not c.startswith("\n"):
            out += "\n"
        out += c
    return out


def _add_block(chunks: list[str], block: str) -> None:
    """Append a generated block, separated from what precedes it by a blank line."""
    text = "".join(chunks)
    if text and not text.endswith("\n"):
        chunks.append("\n")
        text += "\n"
    if text and not text.endswith("\n\n"):
        chunks.append("\n")
    chunks.append(block)


def _replace_text(body: list[str], text: str) -> str:
    """New free text for a section, keeping the blank lines around the old one."""
    content = [i for i, line in enumerate(body) if line.strip()]
    if not content:
        return (text + "\n" + ("".join(body) or "\n")) if text else "".join(body)
    lead, trail = body[: content[0]], body[content[-1] + 1 :]
    return "".join(lead) + (text + "\n" if text else "") + ("".join(trail) or "\n")


def _inline(value) -> str:
    """One-line YAML for a front-matter value: `{median: 1.92, cv: 0.012}`, `draft`, ..."""
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is valid double-quoted YAML
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=1 << 30).strip()
    return text[: -len("\n...")] if text.endswith("\n...") else text


# --- front matter ---------------------------------------------------------------------------------


def _front(plan: Plan, doc: RawDoc) -> str:
    if plan.front == doc.front:
        return "".join(doc.front_lines)
    lines = list(doc.front_lines)
    for key, old in doc.front.items():
        if key in plan.front and plan.front[key] == old:
            continue
        span = _key_span(lines, key)
        if span is None:  # unusual layout (quoted key, flow mapping): give up on surgery
            return _canonical_front(plan.front)
        a, b = span
        if key in plan.front:
            lines[a:b] = [_key_line(lines[a], key, plan.front[key])]
        else:
            del lines[a:b]
    lines += [f"{_inline(k)}: {_inline(v)}\n" for k, v in plan.front.items() if k not in doc.front]
    return "".join(lines)


def _key_span(lines: list[str], key) -> tuple[int, int] | None:
    """Lines of a top-level key: its own line plus indented continuation lines."""
    if not isinstance(key, str):
        return None
    pattern = re.compile(KEY_RE.format(key=re.escape(key)))
    start = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
    if start is None:
        return None
    end = start + 1
    for i in range(start + 1, len(lines)):
        if lines[i].strip() and not lines[i][0].isspace():
            break
        if lines[i].strip():
            end = i + 1
    return start, end


def _key_line(old: str, key: str, value) -> str:
    """`key: new` keeping the old line's trailing comment (and its column when it was aligned)."""
    head = re.match(KEY_RE.format(key=re.escape(key)) + r"[ \t]*", old).group(0)
    rest = old[len(head) :].rstrip("\n")
    head = head if head[-1] in " \t" else head + " "
    new = _inline(value)
    for m in re.finditer(r"[ \t]+#", rest):
        old_value = rest[: m.start()]
        try:
            yaml.safe_load(old_value or "~")
        except yaml.YAMLError:
            continue  # the '#' is inside a quoted value
        gap = m.group(0)[:-1]
        if len(gap) > 1:  # aligned comment: keep its column
            gap = " " * max(1, len(old_value) + len(gap) - len(new))
        return head + new + gap + rest[m.end() - 1 :].rstrip() + "\n"
    if rest.startswith("#"):  # `key:   # comment` with a block value below
        return head.rstrip() + " " + new + "  " + rest.rstrip() + "\n"
    return head + new + "\n"


def _canonical_front(front: dict) -> str:
    return "".join(f"{_inline(k)}: {_inline(v)}\n" for k, v in front.items())


# --- hypotheses -----------------------------------------------------------------------------------


def _hypothesis(h: Hypothesis, raw: RawHypothesis) -> str:
    if (h.id, h.title) == (raw.id, raw.title):
        heading = raw.heading
    else:
        heading = f"### {h.id}: {h.title}" + ("\n" if raw.heading.endswith("\n") else "")
    return _join([heading, "".join(raw.gap), _bullets(h, raw), _body(h, raw)])


def _bullets(h: Hypothesis, raw: RawHypothesis) -> str:
    if h.fields == raw.fields:
        return "".join(b.head + b.value + b.tail for b in raw.bullets)
    by_key = {b.key: b for b in raw.bullets}
    out = []
    for key, value in h.fields.items():
        b = by_key.get(key)
        if b is None:
            out.append(f"- {key}: {value}\n")
        elif value == raw.fields[key]:
            out.append(b.head + b.value + b.tail)
        else:
            head = b.head if b.head[-1] in " \t" else b.head + " "
            out.append(head + value + ("\n" if b.tail.endswith("\n") else ""))
    return _join(out)


def _body(h: Hypothesis, raw: RawHypothesis) -> str:
    diff = diff_text(h.diff)
    if trim(h.rationale) != raw.rationale:
        return _canonical_body(h.rationale, diff)
    if diff == raw.diff:
        return "".join(raw.body)
    lines = list(raw.body)
    if raw.fence and diff:  # new patch in the same fence
        o, c = raw.fence
        lines[o + 1 : c] = [diff]
    elif raw.fence:  # patch removed: drop the fence and one of the blank lines around it
        o, c = raw.fence
        del lines[o : c + 1]
        if 0 < o and not lines[o - 1].strip() and (o == len(lines) or not lines[o].strip()):
            del lines[o - 1]
    else:  # patch added: after the rationale, before the trailing blank lines
        content = [i for i, line in enumerate(lines) if line.strip()]
        if not content:
            lines = ["\n", _fence(diff), "\n"]
        else:
            k = content[-1] + 1
            lines = lines[:k] + ["\n", _fence(diff)] + (lines[k:] or ["\n"])
    return _join(lines)


def _fence(diff: str) -> str:
    return "```diff\n" + diff + "```\n"


def _canonical_body(rationale: str, diff: str | None) -> str:
    rationale, diff = trim(rationale), diff_text(diff)
    return "\n" + (rationale + "\n\n" if rationale else "") + (_fence(diff) + "\n" if diff else "")


def _canonical_hypothesis(h: Hypothesis) -> str:
    bullets = "".join(f"- {k}: {v}\n" for k, v in h.fields.items())
    return f"### {h.id}: {h.title}\n" + bullets + _canonical_body(h.rationale, h.diff)


# --- sources and the canonical document -----------------------------------------------------------


def _source_line(sid: str, title: str) -> str:
    return f"- {sid} — {title}\n" if title else f"- {sid}\n"


def _sources(sources: dict[str, str], old: dict[str, str], part: RawSection) -> str:
    if sources == old:
        return "".join(r.line for r in part.sources)
    out: list[str] = []
    last = -1  # index in `out` of the last entry, where new entries go
    for r in part.sources:
        if r.sid is None:
            out.append(r.line)
            continue
        if r.sid not in sources:
            continue
        out.append(r.line if sources[r.sid] == old[r.sid] else _edited_source(r, sources[r.sid]))
        last = len(out) - 1
    out[last + 1 : last + 1] = [_source_line(s, t) for s, t in sources.items() if s not in old]
    return _join(out)


def _edited_source(r: RawSource, title: str) -> str:
    nl = "\n" if r.line.endswith("\n") else ""
    return r.head + r.sid + ((r.sep or " — ") + title if title else "") + nl


def _bottleneck_section(text: str) -> str:
    return "## Bottleneck analysis\n" + (text + "\n\n" if text else "\n")


def _log_section(text: str) -> str:
    return "## Research log\n\n" + text + "\n\n"


def _canonical(plan: Plan) -> str:
    return (
        "---\n"
        + _canonical_front(plan.front)
        + "---\n# Plan\n\n"
        + _bottleneck_section(trim(plan.bottleneck))
        + "## Hypotheses\n\n"
        + "".join(_canonical_hypothesis(h) for h in plan.hypotheses)
        + (_log_section(trim(plan.research_log)) if plan.research_log else "")
        + "## Sources\n"
        + "".join(_source_line(s, t) for s, t in plan.sources.items())
    )
