"""Helpers shared by the coding-agent CLI runtimes (Claude Code, Codex).

Kept small and stable on purpose: binary discovery, the version check, the constraint text every
agent gets, and the outside-the-worktree detection used to reject an experiment.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from ..errors import UserError

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_version_cache: dict[str, str | None] = {}


# ---------------------------------------------------------------------------
# Binary discovery and version
# ---------------------------------------------------------------------------


def find_binary(configured: str | None, default_name: str, install_hint: str) -> Path:
    """The agent binary: the `binary` option (a path or a name on PATH) or `default_name` on PATH.

    Missing → `UserError` with one line naming the install command.
    """
    wanted = str(configured) if configured else default_name
    expanded = os.path.expanduser(wanted)
    if os.sep in expanded:
        path = Path(expanded)
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
        raise UserError(f"agent binary not found or not executable: {wanted} (install it with: {install_hint})")
    found = shutil.which(expanded)
    if found is None:
        raise UserError(f"'{wanted}' not found on PATH (install it with: {install_hint}, or set runtime: {{binary: PATH}})")
    return Path(found)


def binary_version(binary: Path | str, timeout: float = 15.0, env: dict[str, str] | None = None) -> str | None:
    """`<binary> --version` as "X.Y.Z", or None when it cannot be run or parsed. Cached per path."""
    key = str(binary)
    if key in _version_cache:
        return _version_cache[key]
    try:
        result = subprocess.run([key, "--version"], capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        match = _VERSION.search(result.stdout or "") if result.returncode == 0 else None
        version = match.group(0) if match else None
    except (OSError, subprocess.SubprocessError):
        version = None
    _version_cache[key] = version
    return version


def version_tuple(version: str) -> tuple[int, int, int]:
    match = _VERSION.search(version)
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


def version_notice(tool: str, version: str | None, tested: tuple[str, str]) -> str | None:
    """A one-line warning when `version` is outside the tested range (inclusive), else None."""
    low, high = tested
    if version is None:
        return f"warning: could not read the {tool} version; research-agent was tested with {low}–{high}"
    if not version_tuple(low) <= version_tuple(version) <= version_tuple(high):
        return f"warning: {tool} {version} is outside the tested range {low}–{high}; its output format may differ"
    return None


# ---------------------------------------------------------------------------
# What the agent is told
# ---------------------------------------------------------------------------


def constraints_text(workdir: Path | str) -> str:
    """Rules appended to the agent's system prompt (the brief itself holds the task-specific ones)."""
    return (
        "You are running unattended inside a research-agent experiment. Rules:\n"
        f"- Work only inside the current working directory ({workdir}); never create, edit or delete files outside it.\n"
        "- Make the change the hypothesis in the brief describes, keep it minimal, then stop.\n"
        "- Do not touch the protected paths the brief lists, the benchmark, the tests or the build flags unless the brief allows it.\n"
        "- Do not commit, push, or change git configuration; research-agent commits your changes itself.\n"
        "- Do not try to reach the network.\n"
        "- Running the build and the checks to verify your change is fine; keep commands short.\n"
    )


# ---------------------------------------------------------------------------
# Edits outside the worktree
# ---------------------------------------------------------------------------

# Paths the agent may write even though they are outside the worktree (scratch and null devices).
_HARMLESS = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty")
_WRITING_COMMANDS = {"cp", "mv", "tee", "touch", "rm", "mkdir", "rmdir", "ln", "install", "truncate", "dd", "chmod", "chown"}


def outside_worktree(path: str, workdir: Path | str) -> bool:
    """True when `path` (absolute, `~/…`, or relative to `workdir`) resolves outside `workdir`."""
    if not path or path in _HARMLESS:
        return False
    root = Path(os.path.realpath(workdir))
    candidate = Path(os.path.expanduser(path))
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = Path(os.path.realpath(candidate))
    return resolved != root and root not in resolved.parents


def shell_write_targets(command: str) -> list[str]:
    """Paths a shell command line writes to, as far as a static look can tell.

    Covers redirections (`>`, `>>`, `&>`), `tee`, the last argument of `cp`/`mv`/`ln`/`install`,
    every argument of `touch`/`rm`/`mkdir`/`truncate`/…, `dd of=` and in-place `sed -i`. A best
    effort, not a sandbox: only absolute and `~` paths are reported (relative ones resolve in the
    worktree, where the commit and the protected-path check see them).
    """
    targets: list[str] = []
    for match in re.finditer(r"(?:\d|&)?>>?\|?\s*[\"']?([^\s;&|<>()\"']+)", command):
        targets.append(match.group(1))
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    segment: list[str] = []
    for word in words + [";"]:
        if word in (";", "&&", "||", "|", "&") or word.endswith(";"):
            if word.endswith(";") and word != ";":
                segment.append(word[:-1])
            targets += _segment_targets(segment)
            segment = []
        else:
            segment.append(word)
    return [t for t in dict.fromkeys(targets) if t.startswith(("/", "~"))]


def _segment_targets(words: list[str]) -> list[str]:
    while words and (("=" in words[0] and not words[0].startswith("=")) or words[0] in ("sudo", "env", "command", "nohup")):
        words = words[1:]
    if not words:
        return []
    name, args = os.path.basename(words[0]), [w for w in words[1:] if not w.startswith("-")]
    if name in ("cp", "mv", "ln", "install") and args:
        return [args[-1]]
    if name == "dd":
        return [w[3:] for w in words[1:] if w.startswith("of=")]
    if name == "sed" and any(w.startswith("-i") or w == "--in-place" for w in words[1:]):
        return args[1:]
    if name in _WRITING_COMMANDS:
        return args
    return []


def outside_paths(paths: list[str], workdir: Path | str) -> list[str]:
    """The members of `paths` that fall outside `workdir`, in order, without duplicates."""
    return [path for path in dict.fromkeys(paths) if outside_worktree(path, workdir)]


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value (8 characters or more) replaced: transcripts and logs never hold a key."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    return text
