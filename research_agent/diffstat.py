"""Diffs at real-world size: a git-style diffstat, and the rule for when a diff is shown inline.

A 2,000-line diff makes a plan or a report unreadable: above INLINE_LINES lines, the plan keeps the
diff in a file (`- patch: research/patches/H3.diff`) and the reports point to
`experiments/<id>/patch.diff`, each with a diffstat instead of the diff itself.
"""

from __future__ import annotations

import re

INLINE_LINES = 80  # lines of diff text shown inline; longer diffs live in a file
BAR = 40  # widest +/- bar, as git's default for a narrow terminal

_GIT_HEADER = re.compile(r"^diff --git a/(.+?) b/(.+)$")


def is_large(diff: str | None) -> bool:
    return bool(diff) and diff.count("\n") > INLINE_LINES


def file_stats(diff: str) -> list[tuple[str, int, int, bool]]:
    """(path, insertions, deletions, binary) per file of a unified diff, in order."""
    stats: list[list] = []
    current: list | None = None
    for line in diff.splitlines():
        header = _GIT_HEADER.match(line)
        if header:
            current = [header.group(2), 0, 0, False]
            stats.append(current)
            continue
        if line.startswith("--- "):
            if current is None or current[1] or current[2]:  # a plain diff without `diff --git` headers
                current = [_path(line[4:]), 0, 0, False]
                stats.append(current)
            continue
        if line.startswith("+++ "):
            if current is not None and not (current[1] or current[2]) and not line.startswith("+++ /dev/null"):
                current[0] = _path(line[4:])
            continue
        if current is None:
            continue
        if line.startswith(("Binary files ", "GIT binary patch")):
            current[3] = True
        elif line.startswith("+"):
            current[1] += 1
        elif line.startswith("-"):
            current[2] += 1
    return [tuple(entry) for entry in stats]


def diffstat(diff: str) -> str:
    """Like `git diff --stat`: one line per file with a +/- bar, then the totals."""
    stats = file_stats(diff or "")
    if not stats:
        return " 0 files changed"
    width = max(len(path) for path, *_ in stats)
    most = max((added + deleted for _p, added, deleted, _b in stats), default=0)
    scale = min(1.0, BAR / most) if most else 1.0
    count_width = max(len(str(added + deleted)) for _p, added, deleted, _b in stats)
    lines = []
    for path, added, deleted, binary in stats:
        if binary:
            lines.append(f" {path:<{width}} | {'Bin':>{count_width}}")
            continue
        plus = max(1, round(added * scale)) if added else 0
        minus = max(1, round(deleted * scale)) if deleted else 0
        lines.append(f" {path:<{width}} | {added + deleted:>{count_width}} {'+' * plus}{'-' * minus}".rstrip())
    added = sum(s[1] for s in stats)
    deleted = sum(s[2] for s in stats)
    summary = f" {len(stats)} file{'s' if len(stats) != 1 else ''} changed"
    if added:
        summary += f", {added} insertion{'s' if added != 1 else ''}(+)"
    if deleted:
        summary += f", {deleted} deletion{'s' if deleted != 1 else ''}(-)"
    return "\n".join(lines + [summary])


def _path(text: str) -> str:
    path = text.split("\t")[0].strip()
    return path[2:] if path[:2] in ("a/", "b/") else path
