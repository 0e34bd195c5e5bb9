"""The write fence: agents and candidate commands may write only inside their worktree.

Enforced by the kernel, one mechanism per file: Landlock on Linux (`landlock.py`, unprivileged,
≥ 5.13), else bubblewrap (`bwrap.py`), on macOS sandbox-exec (`sandbox_exec.py`). A confined
command may write to its writable roots — the worktree, a private TMPDIR, the runtime's own state
dir, the task's `workers.writable` paths — and nowhere else: not the run directory, not
`repo.git` (its hooks and config), not the user's checkout. Reads and the network stay open.

    fence = choose(extra_writable)            # FenceUnavailable: one line naming what to install
    probe(fence, scratch)                     # FenceBroken when a write outside succeeds
    confined = fence.confine([worktree])      # per command: a private TMPDIR is added
    proc.run(line, cwd=worktree, fence=confined)  # Result.blocked lists denied writes seen in the output
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc
from ..errors import FENCE, UserError
from . import blocked

FENCE_EXIT = FENCE  # errors.EXIT_CODES, the README's table


class FenceUnavailable(UserError):
    """No fence mechanism on this machine, and the task did not say `sandbox: off`."""

    exit_code = FENCE_EXIT


class FenceBroken(UserError):
    """The probe wrote outside its roots (or could not write inside them): stop before the loop."""

    exit_code = FENCE_EXIT


class WriteBlocked(Exception):
    """A confined command tried to write outside its roots (seen in its output)."""

    def __init__(self, path: str):
        super().__init__(f"write outside the worktree blocked: {path}")
        self.path = path


@dataclass(frozen=True)
class Fence:
    """A mechanism plus the task-named paths every confined command may also write."""

    mechanism: str  # landlock | bubblewrap | sandbox-exec
    extra: tuple[str, ...] = ()

    def confine(self, roots: list[Path | str]) -> Confinement:
        return Confinement(self, tuple(str(Path(root).absolute()) for root in roots))

    def to_spec(self) -> dict:
        return {"mechanism": self.mechanism, "extra": list(self.extra)}

    @classmethod
    def from_spec(cls, spec: dict | None) -> Fence | None:
        return cls(spec["mechanism"], tuple(spec.get("extra") or ())) if spec else None


@dataclass
class Confinement:
    """One confined command's roots; `prepare` makes its private TMPDIR, `cleanup` removes it."""

    fence: Fence
    roots: tuple[str, ...]
    tmpdir: str | None = field(default=None)

    def prepare(self) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="ra-fence-")

    def cleanup(self) -> None:
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    @property
    def writable(self) -> list[str]:
        extra = [os.path.expanduser(path) for path in self.fence.extra]
        return list(dict.fromkeys([*self.roots, *([self.tmpdir] if self.tmpdir else []), *extra]))

    @property
    def env(self) -> dict[str, str]:
        return {"TMPDIR": self.tmpdir, "TMP": self.tmpdir, "TEMP": self.tmpdir} if self.tmpdir else {}

    def wrap(self, argv: list[str]) -> list[str]:
        return _module(self.fence.mechanism).argv(self.writable, list(argv))

    def blocked(self, output: str, cwd: Path | str) -> list[str]:
        return blocked.blocked_paths(output, self.writable, cwd)


def _module(mechanism: str):
    if mechanism == "landlock":
        from . import landlock
        return landlock
    if mechanism == "bubblewrap":
        from . import bwrap
        return bwrap
    if mechanism == "sandbox-exec":
        from . import sandbox_exec
        return sandbox_exec
    raise ValueError(f"unknown fence mechanism {mechanism!r}")


def available() -> str | None:
    """The best fence mechanism this machine has, or None."""
    if sys.platform == "darwin":
        from . import sandbox_exec
        return "sandbox-exec" if sandbox_exec.works() else None
    from . import landlock
    if landlock.abi_version() >= 1:
        return "landlock"
    from . import bwrap
    return "bubblewrap" if bwrap.works() else None


def works(mechanism: str) -> bool:
    if mechanism == "landlock":
        from . import landlock
        return landlock.abi_version() >= 1
    return _module(mechanism).works()


def choose(extra: list[str] | tuple[str, ...] = (), mechanism: str | None = None) -> Fence:
    """The fence for a run (`mechanism`, or the best one here); FenceUnavailable (one line naming
    what to install) when there is none."""
    if mechanism is not None:
        if not works(mechanism):
            need = {"landlock": "this kernel has no Landlock (Linux ≥ 5.13 with landlock in its LSM list)",
                    "bubblewrap": "bubblewrap is missing or cannot run here: apt-get install bubblewrap",
                    "sandbox-exec": "sandbox-exec is missing (part of macOS)"}[mechanism]
            raise FenceUnavailable(f"sandbox: {mechanism} asked for, but {need} (or set `sandbox: on` for any fence)")
        return Fence(mechanism, tuple(str(path) for path in extra))
    found = available()
    if found is None:
        if sys.platform == "darwin":
            need = "sandbox-exec (part of macOS) is missing"
        else:
            need = "this kernel has no Landlock (Linux ≥ 5.13) and bubblewrap is missing or cannot run: apt-get install bubblewrap"
        raise FenceUnavailable(f"no write fence for the agents: {need} (or set `sandbox: off` in the task to run unconfined)")
    return Fence(found, tuple(str(path) for path in extra))


def probe(fence: Fence, scratch: Path) -> None:
    """Prove the fence is on: a write outside must fail, a write inside must work. FenceBroken otherwise."""
    scratch = Path(scratch)
    inside = scratch / "probe-inside"
    outside = scratch / "probe-outside.txt"
    inside.mkdir(parents=True, exist_ok=True)
    outside.unlink(missing_ok=True)
    confined = fence.confine([inside])
    argv = confined.wrap(["/bin/sh", "-c", f'echo ok > "{inside}/written" && echo no > "{outside}"'])
    try:
        result = proc.capture(argv, timeout=60)  # own process group, killed on timeout
        problem = None
        if result.timed_out:
            problem = "the probe could not run: it timed out after 60 s"
        elif outside.exists():
            problem = f"a probe write outside its roots succeeded ({outside})"
        elif not (inside / "written").exists():
            said = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
            problem = "a probe write inside its roots failed" + (f": {said[-1]}" if said else "")
    except OSError as error:
        problem = f"the probe could not run: {error}"
    finally:
        outside.unlink(missing_ok=True)
        shutil.rmtree(inside, ignore_errors=True)
    if problem:
        raise FenceBroken(f"the write fence ({fence.mechanism}) is not working: {problem}")


__all__ = ["Confinement", "Fence", "FenceBroken", "FenceUnavailable", "WriteBlocked", "available", "choose", "probe"]
