"""Agent-proposed ("explore") hypotheses: when research yields nothing, or by choice (`research.explore: N`),
a coding-agent runtime is briefed with the goal, baseline, noise, profile and code — no sources — and
proposes and implements its own change. Each is recorded with `origin: explore` in the plan, so reports
keep research-grounded and explored changes apart.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from .plan import Hypothesis
from .plan.model import new_plan
from .research.queries import LANGUAGES, target_files
from .runtimes import AGENT_RUNTIMES
from .target import git

EXPLORE = "explore"
MAX_CODE_CHARS = 12000  # what a planner is shown of the code: the listing, then source files until this


def origin(hyp: Hypothesis | None) -> str:
    """`explore` for an agent-proposed hypothesis, else `research` (grounded in what was read)."""
    return EXPLORE if hyp is not None and hyp.fields.get("origin") == EXPLORE else "research"


def can_explore(task) -> bool:
    return task.runtime.name in AGENT_RUNTIMES  # a coding agent can implement an idea without a diff


def explore_hypotheses(task, count: int, first: int = 1) -> list[Hypothesis]:
    """`count` explore hypotheses X<first>...; each asks for a different idea (they run side by side)."""
    out = []
    for number in range(first, first + count):
        out.append(Hypothesis(
            id=f"X{number}",
            title=f"Explore: propose and implement one change that improves {task.metric.name} (idea {number})",
            risk="unknown",
            fields={"origin": EXPLORE},
            rationale=(f"No sources: study the code, the baseline and the profile, choose the change you expect to help "
                       f"`{task.metric.name}` most, and implement it. This is idea {number}: other explore ideas run "
                       "alongside it, so prefer a different one from the obvious first choice when your number is "
                       "above 1."),
        ))
    return out


def explore_plan(task, count: int, baseline: dict | None, why: str) -> "object":
    """A plan of `count` explore hypotheses only (research found nothing, or ablate's control arm)."""
    plan = new_plan(task.goal, task.metric.name, task.metric.direction, explore_hypotheses(task, count), {},
                    bottleneck=f"**Explore.** {why} The coding agent proposes and implements its own changes "
                    "from the goal, the baseline, the noise, the profile and the code.",
                    baseline=baseline)
    plan.front["planner"] = EXPLORE
    return plan


def nothing_found_line(message: str) -> str:
    """The patch runtime cannot explore: one line that says what to do instead."""
    head = message.split(". ")[0].rstrip(".")
    return (f"{head}. Next: write hypotheses yourself (research-agent plan new), add notes (research.local) or "
            "competitors (research.competitors) to the task, or let a coding agent explore "
            f"(--runtime {'|'.join(AGENT_RUNTIMES)})")


def code_listing(repo_dir: Path, commit: str, protected: list[str] | None = None) -> str:
    """The target's files, then the text of its source files (not the protected ones) up to MAX_CODE_CHARS."""
    files = target_files(repo_dir, commit)
    lines = ["Files: " + ", ".join(files), ""]
    used = len(lines[0])
    guarded = set(protected or [])
    for name in files:
        if PurePosixPath(name).suffix not in LANGUAGES or name in guarded:
            continue
        text = git(["show", f"{commit}:{name}"], cwd=repo_dir, check=False)
        block = f"--- {name}\n{text.rstrip()}\n"
        if used + len(block) > MAX_CODE_CHARS:
            block = block[: max(0, MAX_CODE_CHARS - used)] + "\n[... cut]\n"
        lines.append(block)
        used += len(block)
        if used >= MAX_CODE_CHARS:
            break
    return "\n".join(lines)
