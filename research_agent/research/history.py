"""A fork's history as the miner sees it: commits, what each changes, and which earlier ones it needs.

Pure bookkeeping (no git here): `Change` is one entry of `git diff-tree -r -M --raw` between a
commit and its parent; `identity` follows a file across renames — back to the target's path for
files the target has — so "touches the same file" still holds after a fork moved `lib/x.c` to
`third_party/x.c`. A commit's dependencies are its ancestors in the mined range that touch one of
its files, closed transitively, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ZERO = "0" * 40
GITLINK = "160000"  # a submodule entry: never part of a patch


@dataclass
class Change:
    status: str  # A M D T R C (the first letter of git's status)
    old_path: str | None
    new_path: str | None
    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str
    identity: str = ""  # the file this change is to: the target's path for a file the target has

    @property
    def pure_rename(self) -> bool:
        return self.status in ("R", "C") and self.old_blob == self.new_blob and self.old_mode == self.new_mode


@dataclass
class Commit:
    sha: str
    parents: list[str]
    subject: str = ""
    message: str = ""
    changes: list[Change] = field(default_factory=list)  # against the first parent; empty for merges

    @property
    def touched(self) -> set[str]:
        return {c.identity for c in self.changes if c.identity}


def parse_raw(output: bytes) -> list[Change]:
    """`git diff-tree -r -z -M --raw --no-abbrev` output as Changes (identity not yet set)."""
    fields = output.decode("utf-8", "surrogateescape").split("\0")
    changes: list[Change] = []
    i = 0
    while i < len(fields):
        meta = fields[i]
        if not meta.startswith(":"):
            i += 1
            continue
        parts = meta[1:].split()
        if len(parts) < 5:
            break
        old_mode, new_mode, old_blob, new_blob, status = parts[:5]
        letter = status[0]
        if letter in ("R", "C"):
            old_path, new_path = fields[i + 1], fields[i + 2]
            i += 3
        else:
            path = fields[i + 1]
            old_path = None if letter == "A" else path
            new_path = None if letter == "D" else path
            i += 2
        if GITLINK in (old_mode, new_mode):
            continue
        changes.append(Change(letter, old_path, new_path, old_mode, new_mode, old_blob, new_blob))
    return changes


def advance(names: dict[str, str], changes: list[Change]) -> dict[str, str]:
    """Set each change's identity from `names` (path -> identity, only where they differ) and return
    the map for the commit's own tree."""
    after = dict(names)
    for change in changes:
        if change.status in ("R", "C"):
            identity = names.get(change.old_path, change.old_path)
            if change.status == "R":
                after.pop(change.old_path, None)
            if identity != change.new_path:
                after[change.new_path] = identity
            else:
                after.pop(change.new_path, None)
        elif change.status == "D":
            identity = names.get(change.old_path, change.old_path)
            after.pop(change.old_path, None)
        else:
            identity = names.get(change.new_path, change.new_path)
        change.identity = identity
    return after


def compose(fork_renames: dict[str, str], target_renames: dict[str, str]) -> dict[str, str]:
    """Names in a fork commit's tree -> the target's names, given the renames since the fork point on
    each side ({fork-point path: path now})."""
    names = {}
    for old, now in fork_renames.items():
        target = target_renames.get(old, old)
        if target != now:
            names[now] = target
    for old, target in target_renames.items():
        if old not in fork_renames and old != target:
            names[old] = target
    return names


def ancestors(commits: list[Commit]) -> dict[str, set[str]]:
    """For each commit (oldest first), the shas of its ancestors among `commits`."""
    inside = {c.sha for c in commits}
    out: dict[str, set[str]] = {}
    for commit in commits:
        found: set[str] = set()
        for parent in commit.parents:
            if parent in inside:
                found.add(parent)
                found |= out.get(parent, set())
        out[commit.sha] = found
    return out


def dependencies(commit: Commit, earlier: dict[str, set[str]], by_sha: dict[str, Commit], eligible: set[str]) -> list[str]:
    """Ancestors of `commit` that touch one of its files (and theirs, transitively), oldest first.

    `eligible` are the commits that carry a change of their own (merges, renames-only and the like
    add nothing to a stack)."""
    order = list(by_sha)
    wanted: set[str] = set()
    frontier = [commit.sha]
    while frontier:
        sha = frontier.pop()
        files = by_sha[sha].touched
        for older in earlier.get(sha, set()):
            if older in wanted or older not in eligible:
                continue
            if files & by_sha[older].touched:
                wanted.add(older)
                frontier.append(older)
    return [sha for sha in order if sha in wanted]
