"""macOS `sandbox-exec` (Seatbelt): allow everything but file writes, then allow writes under the
writable roots and to the terminal and null devices. Deprecated by Apple but still shipped and used
by the agent CLIs themselves.
"""

from __future__ import annotations

import os
import shutil
import sys

NAME = "sandbox-exec"
INSTALL = "sandbox-exec (part of macOS)"


def works() -> bool:
    return sys.platform == "darwin" and shutil.which("sandbox-exec") is not None


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile(writable: list[str]) -> str:
    # Seatbelt matches real paths (/private/var/..., not /var/...).
    roots = " ".join(f"(subpath {_quote(os.path.realpath(path))})" for path in writable)
    return ("(version 1)\n(allow default)\n(deny file-write*)\n"
            f"(allow file-write* {roots} (literal \"/dev/null\") (literal \"/dev/zero\") (literal \"/dev/tty\")"
            " (regex #\"^/dev/fd/\") (regex #\"^/dev/ttys\"))\n")


def argv(writable: list[str], command: list[str]) -> list[str]:
    return ["sandbox-exec", "-p", profile(writable), *command]
