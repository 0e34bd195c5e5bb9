"""Which changes are in the best: the one count of kept changes that summary, status, report and `apply` share.

A change the gate kept alone is not necessarily in the result: a round's winners are stacked onto
the base one by one and each addition is re-gated, so a winner can be dropped when stacking. The
best is a chain of single commits in the run's repository, base → … → best_commit, each the
candidate commit of one kept experiment (a hypothesis, or a combine step that stacked one). It is
read from the ledger alone (no git), so `status` can show it while the run goes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Kept:
    in_best: list[dict]  # experiments whose commit is in the best, oldest first (hypothesis or combine rows)
    dropped: list[dict]  # kept alone, then dropped when stacked onto the best

    def summary(self) -> str:
        """`2 kept into the best, 1 won alone but dropped when stacking` (the second part only when any)."""
        text = f"{len(self.in_best)} kept into the best"
        if self.dropped:
            text += f", {len(self.dropped)} won alone but dropped when stacking"
        return text


def best_chain(experiments: list[dict], base_commit: str | None, best_commit: str | None) -> list[dict]:
    """The kept experiments whose candidate commits lead from the run's base to its best, oldest first."""
    by_commit = {e["cand_commit"]: e for e in experiments if e.get("decision") == "kept" and e.get("cand_commit")}
    chain, commit, seen = [], best_commit, set()
    while commit and commit != base_commit and commit in by_commit and commit not in seen:
        seen.add(commit)
        exp = by_commit[commit]
        chain.append(exp)
        commit = exp.get("base_commit")
    return list(reversed(chain))


def kept(experiments: list[dict], base_commit: str | None, best_commit: str | None) -> Kept:
    """Split the kept experiments into those in the best and the winners dropped when stacking.

    A winner stacked by a kept combine step is in the best through that step (one change, counted once)."""
    chain = best_chain(experiments, base_commit, best_commit)
    in_chain = {e["id"] for e in chain}
    stacked = {(e["hypothesis"], e.get("round")) for e in chain if e.get("kind") == "combine"}
    dropped = [e for e in experiments
               if e.get("decision") == "kept" and e.get("kind", "hypothesis") == "hypothesis" and e["id"] not in in_chain
               and (e["hypothesis"], e.get("round")) not in stacked
               and not _pending_stack(e, experiments, best_commit)]
    return Kept(chain, dropped)


def _pending_stack(exp: dict, experiments: list[dict], best_commit: str | None) -> bool:
    """A winner of a round still being stacked (or not stacked yet) is not dropped: it is waiting."""
    combos = [e for e in experiments if e.get("kind") == "combine" and e["hypothesis"] == exp["hypothesis"]
              and e.get("round") == exp.get("round")]
    if combos:
        return not combos[-1].get("decision")
    # The round's first winner needs no combine step: it is the new best unless the round is not combined yet.
    return exp.get("base_commit") == best_commit
