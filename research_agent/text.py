"""Small text helpers shared by the package: one line of text, clipped; the JSON object in a model's answer.

(`plan.extractive.one_line` is a different thing: it also makes untrusted text safe for a plan file.)
"""

from __future__ import annotations

import json
import re
from typing import Any

ELLIPSIS = "…"


def squash(text: Any) -> str:
    """Every run of white space (newlines included) as one space; no leading or trailing space."""
    return " ".join(str(text).split())


def clip(text: str, limit: int | None) -> str:
    """At most `limit` characters, the last an ellipsis when something was cut (None: no limit)."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


def one_line(text: Any, limit: int | None = None) -> str:
    """`text` squashed to one line and clipped to `limit` characters: for messages and notices."""
    return clip(squash(text), limit)


def first_line(text: str) -> str:
    """The first line that is not blank, stripped ("" when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def last_line(text: str) -> str:
    """The last line that is not blank, stripped ("" when there is none)."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


_OPEN_BRACE = re.compile(r"\{")


def first_json_object(text: str, key: str | None = None) -> dict | None:
    """The first JSON object in a model's answer: bare, inside a ```json fence, after prose or reasoning,
    or beside broken ones. With `key`, the first object that has it wins over earlier ones. None: no object."""
    decoder = json.JSONDecoder()
    found = None
    for match in _OPEN_BRACE.finditer(text or ""):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            if key is None or key in value:
                return value
            if found is None:
                found = value
    return found


# Terminal colour and cursor codes (SkyPilot's messages carry colorama's, a worker's log a progress bar's).
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """`text` without terminal colour and cursor codes."""
    return _TERMINAL_CODES.sub("", text)


def error_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's message as one plain line clipped to `limit`; its class name when it says nothing."""
    return clip(squash(plain(str(error))) or type(error).__name__, limit)


def cut_at_word(text: str, width: int) -> str:
    """`text` as one line of at most `width` characters, cut at a word boundary (… marks the cut)."""
    text = squash(text)
    if len(text) <= width:
        return text
    return text[: width - 1].rsplit(" ", 1)[0].rstrip(" ,;:—-") + ELLIPSIS
