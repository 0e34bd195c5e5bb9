"""Writes the fence stopped, as far as a command's output shows them (reporting, not enforcement).

A denied write prints EACCES ("Permission denied", Landlock) or EROFS ("Read-only file system",
bubblewrap) next to the path in every common form: `sh: 1: cannot create /x: …`, `tee: /x: …`,
`PermissionError: [Errno 13] Permission denied: '/x'`, `cp: cannot create regular file '/x': …`,
`EACCES: permission denied, open '/x'` (node). A path counts when it resolves (symlinks followed,
relative to the command's directory) outside every writable root and is readable to us — so a
failed *read* of a root-only file or a non-executable script in the worktree is not reported.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

_DENIED = re.compile(r"permission denied|read-only file system|operation not permitted", re.IGNORECASE)
_QUOTED = re.compile(r"[‘'\"`]([^'\"`’\n]+)[’'\"`]")
_BARE = re.compile(r"(?:^|[\s:=(])((?:~|\.\.?)?/[^\s:'\"`,;)]*|\.\./[^\s:'\"`,;)]*)")
_CANNOT = re.compile(r"cannot (?:create|touch|open|remove|write|overwrite)[^:']*?\s([^\s:']+):")
_NAMED = re.compile(r"^[\w.\-/]+: (?:line \d+: |\d+: )?([^\s:]+): ")
_PROGRAM = re.compile(r"^[\w.\-/]+: (?:line \d+: |\d+: )?")  # `/bin/sh: 1: ` names the shell, not the target


def blocked_paths(output: str, roots: list[Path | str], cwd: Path | str) -> list[str]:
    """Paths (resolved) a denied write in `output` aimed at outside `roots`, first seen first."""
    real_roots = [os.path.realpath(root) for root in roots]
    found: list[str] = []
    for line in _lines(output):
        if not _DENIED.search(line):
            continue
        body = _PROGRAM.sub("", line.strip())
        candidates = _QUOTED.findall(body) + _CANNOT.findall(body) + _NAMED.findall(line.strip()) + _BARE.findall(body)
        for raw in candidates:
            path = _outside(raw.strip(), real_roots, cwd)
            if path and path not in found:
                found.append(path)
    return found


def _lines(output: str):
    """The output's lines; a JSON line (an agent CLI's event stream) gives the lines of its strings,
    where tool results carry the commands' own messages."""
    for line in output.splitlines():
        if line.startswith("{") and _DENIED.search(line):
            try:
                event = json.loads(line)
            except ValueError:
                yield line
                continue
            for text in _strings(event):
                yield from text.splitlines()
        else:
            yield line


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _outside(raw: str, roots: list[str], cwd: Path | str) -> str | None:
    if not raw or " " in raw:  # a bare name counts too: it may be a symlink leading out
        return None
    if raw.startswith(("http://", "https://")) or raw in ("/dev/null", "/dev/tty"):
        return None
    path = os.path.realpath(os.path.join(str(cwd), os.path.expanduser(raw)))
    if any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots):
        return None
    probe = path if os.path.exists(path) else os.path.dirname(path)
    if os.path.exists(probe) and not os.access(probe, os.R_OK):
        return None  # we could not read it either: a permission problem, not the fence
    return path
