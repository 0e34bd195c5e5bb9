"""`research-agent plan new`: a valid plan to fill in by hand, with one commented example hypothesis.

For a repository with no notes or competitors to read, or a change the user already has in mind:
the patch runtime applies each hypothesis's diff, a coding-agent runtime implements its text.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .parse import parse_plan

TEMPLATE = """\
---
objective: {objective}
{metric_line}direction: {direction}
status: draft                # `research-agent plan approve` sets approved; `run` wants it
---
# Plan

## Bottleneck analysis
<!-- Where the time goes (a profile, a hunch): the agents read this before every change. -->

## Hypotheses
<!--
One section per change to try, each headed `H<n>: title` at heading level 3, ids unique.
Bullets under the heading (all optional): expected, risk (low | medium | high), files
(comma-separated), sources (ids listed under Sources below), status (leave it pending).
Free text after the bullets is the rationale. With the patch runtime, end with a fenced
`diff` block (a unified diff from the repository root); coding-agent runtimes (claude-code,
codex, command) implement the text instead. Replace the example below, then validate:
research-agent plan validate {path}
-->

### H1: Example — hoist the loop-invariant computation out of the inner loop
- expected: +5%
- risk: low
- files: src/kernel.c
- status: pending

Example rationale: the inner loop recomputes a value that does not change across its
iterations; computing it once per outer iteration removes that work. Replace this
hypothesis with your own (keep the id format H1, H2, ...).

## Sources
<!-- One line per source a hypothesis cites: `- local:notes/idea.md — title`. -->
"""


def skeleton(path: Path, task_file: Path | None) -> str:
    objective, metric, direction = "Describe the goal (edit me)", None, "max"
    if task_file is not None:
        from ..task import load_task

        task = load_task(task_file)
        objective, metric, direction = task.goal, task.metric.name, task.metric.direction
    metric_line = f"metric: {metric}\n" if metric else "# metric: name of the task's metric\n"
    text = TEMPLATE.format(objective=_one_line(objective), metric_line=metric_line, direction=direction, path=path)
    parse_plan(text, str(path))  # the skeleton must itself be a valid plan
    return text


def write_skeleton(path: Path, task_file: Path | None) -> None:
    if path.exists():
        raise UserError(f"{path} exists: not overwritten (choose another path)")
    text = skeleton(path, task_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _one_line(text: str) -> str:
    import json

    line = " ".join(text.split())
    return json.dumps(line) if any(c in line for c in ":#{}[]&*!|>'\"%@`") else line
