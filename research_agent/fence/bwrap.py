"""bubblewrap (Debian/Ubuntu `bubblewrap`): the whole filesystem bind-mounted read-only, the
writable roots bound back read-write, a fresh /dev and /proc. The network namespace is shared
(agents call their APIs). Needs unprivileged user namespaces, or root.
"""

from __future__ import annotations

import shutil

from .. import proc

NAME = "bubblewrap"
INSTALL = "apt-get install bubblewrap (or your distribution's bubblewrap package)"


def binary() -> str | None:
    return shutil.which("bwrap")


def works() -> bool:
    """bwrap is installed and can make its namespaces here (containers often forbid it)."""
    found = binary()
    if not found:
        return False
    try:
        result = proc.capture([*argv([], ["true"])], timeout=30)  # own process group, killed on timeout
    except OSError:
        return False
    return result.returncode == 0


def argv(writable: list[str], command: list[str]) -> list[str]:
    wrapped = [binary() or "bwrap", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in writable:
        wrapped += ["--bind-try", path, path]
    return wrapped + ["--", *command]
