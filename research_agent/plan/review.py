"""Plan review: `plan edit` (the editor, validated on save), `plan approve`, and the approval check of `run`.

`plan edit PLAN` opens `$VISUAL` / `$EDITOR` on the file and validates it when the editor exits. An
invalid plan is reported (one line naming the line at fault) and the editor opens again; it stops
with that error (exit 4) when the editor exits non-zero or the file comes back unchanged — the way
out of the loop is to quit the editor without saving.

`plan approve PLAN` sets `status: approved` in the front matter, changing only that line.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ..errors import PlanError, UserError
from .model import Plan
from .parse import load_plan
from .render import save_plan

MAX_EDITS = 20  # reopen the editor at most this many times


def approve_plan(path: Path) -> Plan:
    """Mark a plan approved (a surgical front-matter edit); a plan that does not validate is refused."""
    plan = load_plan(path)
    if plan.status != "approved":
        plan.set_plan_status("approved")
        save_plan(plan, path)
    return plan


def editor_command() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    if sys.stdin.isatty():
        for name in ("vi", "nano"):
            if shutil.which(name):
                return [name]
    raise UserError("no editor: set $EDITOR (or $VISUAL), e.g. EDITOR=nano")


def edit_plan(path: Path, say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Plan:
    """Open the editor until the plan validates; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise PlanError("plan file not found", str(path))
    command = editor_command()
    for _ in range(MAX_EDITS):
        before = _digest(path)
        try:
            code = subprocess.call([*command, str(path)])
        except FileNotFoundError:
            raise UserError(f"editor not found: {command[0]} (check $EDITOR)") from None
        try:
            return load_plan(path)
        except PlanError as error:
            if code != 0:
                raise PlanError(f"{error} (the editor exited with status {code})") from None
            if _digest(path) == before:
                raise  # saved unchanged: the user gave up on fixing it
            say(f"research-agent: {error}")
            say("reopening the editor to fix it (quit without saving to stop)")
    raise PlanError(f"still invalid after {MAX_EDITS} edits", str(path))


def require_approved(plan: Plan, where: str, yes: bool, how: str) -> None:
    """Refuse to run a plan that is not approved, unless `yes` (`--yes`); exit code 4 (PlanError)."""
    if yes or plan.status == "approved":
        return
    raise PlanError(f"the plan is {plan.status}, not approved: review it (research-agent plan show {shlex.quote(where)}), "
                    f"approve it (research-agent plan approve {shlex.quote(where)}), or {how}", where)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
