"""What a clean build produced in a worktree, as content hashes: the identical-build short cut.

After `git clean -fdx` and the build, every file that is untracked, ignored or modified is a build
output. When base and candidate produced the same outputs, byte for byte (each worktree's own path
written as a placeholder, so a path baked into a binary does not count as a difference), the
candidate is the same program: benchmarking it would only measure noise.

That holds only if the candidate's changes reached the benchmark through the build. So the short
cut also needs every changed file to have been read by the candidate's build: before the build
each changed file's access time is set to the epoch (its modification time kept), and any later
read moves it again (Linux `relatime` updates an access time older than the modification time).
An interpreted target whose benchmark reads the changed sources itself, a deleted file, or a
filesystem mounted `noatime` therefore never takes the short cut: it is benchmarked as usual.
"""

from __future__ import annotations

import hashlib
import os
from . import git
from pathlib import Path

PLACEHOLDER = b"\0worktree\0"
CHUNK = 1 << 20


def mark_unread(workdir: Path, changed: list[str]) -> None:
    """Set the changed files' access times to the epoch, keeping their modification times."""
    for name in changed:
        path = Path(workdir) / name
        try:
            stat = path.lstat()
            if path.is_file() and not path.is_symlink():
                os.utime(path, ns=(0, stat.st_mtime_ns))
        except OSError:
            pass


def all_read(workdir: Path, changed: list[str]) -> bool:
    """True when every changed file exists and was read since mark_unread."""
    for name in changed:
        path = Path(workdir) / name
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_atime_ns == 0:
                return False
        except OSError:
            return False
    return bool(changed)


def outputs(workdir: Path) -> dict[str, str]:
    """{path: digest} of every file the build created or changed in `workdir`."""
    workdir = Path(workdir)
    status = git.call(workdir, "status", "--porcelain=v1", "-z", "--ignored", "--untracked-files=all", "--no-renames", user=True)
    if status.returncode != 0:
        raise git.GitError(("status",), status.stderr.decode("utf-8", "replace").strip(), status.returncode)
    listing = status.stdout.decode("utf-8", "surrogateescape")
    root = os.fsencode(str(workdir.resolve()))
    found: dict[str, str] = {}
    for entry in filter(None, listing.split("\0")):
        code, name = entry[:2], entry[3:]
        path = workdir / name
        if "D" in code:
            found[name] = "deleted"
        elif path.is_dir() and not path.is_symlink():
            for sub in sorted(p for p in path.rglob("*") if not p.is_dir() or p.is_symlink()):
                found[sub.relative_to(workdir).as_posix()] = _digest(sub, root)
        else:
            found[name.rstrip("/")] = _digest(path, root)
    return found


def identical(base_dir: Path, cand_dir: Path, changed: list[str]) -> int:
    """The number of build outputs when base and candidate built identical ones from changes the
    build read; 0 when they differ, the build made nothing, or a change may bypass the build."""
    if not all_read(cand_dir, changed):  # first: `git status` below reads changed files itself
        return 0
    base, cand = outputs(base_dir), outputs(cand_dir)
    return len(base) if base and base == cand else 0


def _digest(path: Path, root: bytes) -> str:
    if path.is_symlink():
        return "link:" + hashlib.sha256(os.fsencode(os.readlink(path)).replace(root, PLACEHOLDER)).hexdigest()
    digest, carry, keep = hashlib.sha256(), b"", len(root) - 1
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            data = (carry + chunk).replace(root, PLACEHOLDER)
            digest.update(data[:-keep] if keep else data)  # the tail may start a path: keep it for later
            carry = data[-keep:] if keep else b""
    digest.update(carry)
    return digest.hexdigest()
