"""The one static write detector of the agent CLIs: which paths a tool call or a shell command writes,
and whether they leave the worktree.

A best effort, not a sandbox (the write fence, research_agent/fence, is): it names the escape in the
experiment's reason early, often before the write is tried, and stops the agent there.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

_DEVICES = re.compile(r"^/dev/(null|zero|stdout|stderr|stdin|tty|fd/\d+)$")
_WRAPPERS = {"sudo", "env", "command", "nohup", "time", "nice", "timeout", "exec"}
_ALL_ARGS = {"tee", "touch", "rm", "rmdir", "mkdir", "truncate", "chmod", "chown", "mv", "shred", "unlink"}
_LAST_ARG = {"cp", "ln", "install", "rsync"}
_OPERATORS = "();<>|&"


def write_targets(script: str, relative: bool = True) -> list[str]:
    """Paths a shell script writes to, as far as a static look can tell.

    Tokenized like a shell, so quoted text (`grep "=> /lib"`) is not mistaken for a redirection.
    Covers redirections (`>`, `>>`, `&>`, `>|`), `tee`, `touch`/`rm`/`mkdir`/`mv`/… arguments, the
    destination of `cp`/`ln`/`install`/`rsync`, `dd of=` and `sed -i`. Relative paths are kept
    (`../x` escapes the worktree); after `cd DIR` they are joined to DIR. `relative=False`: only the
    paths written as absolute or `~/…` ones.
    """
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: split on blanks and operators, quotes and all
        tokens = re.findall(rf"[{re.escape(_OPERATORS)}]+|[^\s{re.escape(_OPERATORS)}]+", script)
    targets: list[str] = []
    segment: list[str] = []
    cwd: str | None = None
    index = 0

    def keep(target: str) -> None:
        if relative or target.startswith(("/", "~")):
            targets.append(_join(cwd, target))

    def flush() -> None:
        nonlocal cwd
        words = list(segment)
        segment.clear()
        while words and (words[0] in _WRAPPERS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
            words = words[1:]
        if not words:
            return
        name, args = os.path.basename(words[0]), [word for word in words[1:] if not word.startswith("-")]
        found: list[str] = []
        if name == "cd":
            cwd = os.path.join(cwd or "", args[0]) if args else None
        elif name in _LAST_ARG and len(args) >= 2:
            found = [args[-1]]
        elif name in _ALL_ARGS:
            found = args
        elif name == "dd":
            found = [word[3:] for word in words[1:] if word.startswith("of=")]
        elif name in ("sed", "perl") and any(word.startswith("-i") or word == "--in-place" for word in words[1:]):
            found = args[1:]
        for target in found:
            keep(target)

    while index < len(tokens):
        token = tokens[index]
        if token and all(char in _OPERATORS for char in token):
            if ">" in token:  # a redirection: the next word is the target, unless it duplicates a descriptor
                target = tokens[index + 1] if index + 1 < len(tokens) else ""
                index += 2
                if target and not re.fullmatch(r"\d+|-", target) and not all(char in _OPERATORS for char in target):
                    keep(target)
                if segment and re.fullmatch(r"\d+", segment[-1]):
                    segment.pop()  # the `2` of `2>`
                continue
            if "<" not in token:
                flush()
            else:
                index += 1  # `< file` / `<< EOF`: the next word is read, not written
        else:
            segment.append(token)
        index += 1
    flush()
    return list(dict.fromkeys(target for target in targets if target))


def _join(cwd: str | None, path: str) -> str:
    if cwd is None or path.startswith(("/", "~", "$")):
        return path
    return os.path.join(cwd, path)


def outside_worktree(path: str, workdir: Path | str) -> bool:
    """True when `path` (absolute, `~/…`, or relative to `workdir`) resolves outside `workdir`.

    A path `realpath` cannot read (a NUL byte) raises ValueError: the caller must not take it as inside."""
    if not path or _DEVICES.match(path):
        return False
    root = Path(os.path.realpath(workdir))
    candidate = Path(os.path.expanduser(path))
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = Path(os.path.realpath(candidate))
    return resolved != root and root not in resolved.parents


class WriteCheck:
    """Decides whether a path (or a command's write targets) leaves the worktree; `allowed` (the
    agent's scratch TMPDIR first) may be written although outside."""

    def __init__(self, workdir: Path, allowed: list[Path], relative: bool = True):
        self.workdir = Path(workdir)
        self.allowed = [Path(os.path.realpath(path)) for path in allowed]
        self.relative = relative  # False: leave relative targets to the fence and the commit's own checks
        self.variables = {"HOME": os.path.expanduser("~"), "TMPDIR": str(allowed[0]) if allowed else "/tmp"}

    def absolute(self, path: str, cwd: str | None = None) -> str:
        """`path` made absolute: `~`, $HOME and $TMPDIR expanded, relative ones joined to `cwd` or the worktree."""
        candidate = os.path.expanduser(self._expand(path))
        if not os.path.isabs(candidate):
            base = os.path.expanduser(cwd) if cwd else str(self.workdir)
            candidate = os.path.join(str(self.workdir), base, candidate)
        return os.path.normpath(candidate)

    def outside(self, path: str, cwd: str | None = None) -> bool:
        if not path or _DEVICES.match(path):
            return False
        resolved = Path(os.path.realpath(self.absolute(path, cwd)))
        if any(resolved == root or root in resolved.parents for root in self.allowed):
            return False
        return outside_worktree(str(resolved), self.workdir)

    def _expand(self, path: str) -> str:
        for name, value in self.variables.items():
            path = re.sub(r"^\$(?:\{%s\}|%s\b)" % (name, name), lambda _m, v=value: v, path)
        return path

    def command(self, script: str, cwd: str | None = None) -> str | None:
        """The first path outside the worktree a shell script writes to (a static look), else None."""
        return self.paths(write_targets(script, self.relative), cwd)

    def paths(self, paths: list[str], cwd: str | None = None) -> str | None:
        """The first of `paths` outside the worktree (absolute, as it was meant), else None."""
        return next((self.absolute(path, cwd) for path in paths if self.outside(path, cwd)), None)
