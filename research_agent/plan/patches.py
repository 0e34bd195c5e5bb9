"""Large diffs out of the plan: into `research/patches/<id>.diff` beside it, with a diffstat in their place.

A hypothesis keeps a short diff inline (the ```diff fence); a long one becomes `- patch:
research/patches/H3.diff` and its rationale ends with the diffstat, so plan.md stays readable at
real-world size. Runtimes read either (Plan.patch_text).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..diffstat import diffstat, is_large
from .model import Plan

PATCH_DIR = "research/patches"


def externalize_diffs(plan: Plan, folder: Path) -> list[str]:
    """Move every large inline diff into FOLDER/research/patches/<id>.diff; returns the ids moved."""
    moved = []
    for hyp in plan.hypotheses:
        if not is_large(hyp.diff):
            continue
        relative = f"{PATCH_DIR}/{hyp.id}.diff"
        write_patch(Path(folder) / relative, hyp.diff)
        stat = diffstat(hyp.diff)
        hyp.diff = None
        hyp.fields["patch"] = relative
        hyp.rationale = (hyp.rationale.rstrip() + "\n\n" if hyp.rationale.strip() else "") + \
            f"The diff ({_summary(stat)}) is in {relative}:\n\n```text\n{stat}\n```"
        moved.append(hyp.id)
    return moved


def write_patch(path: Path, diff: str) -> None:
    """Atomically, so a reader never sees half a patch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(diff)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _summary(stat: str) -> str:
    return stat.strip().splitlines()[-1].strip()
