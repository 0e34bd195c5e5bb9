"""`research-agent ablate`: does research pay? The same task with and without research, at the same budget.

Two arms from one shared baseline, in one run directory and one ledger (experiments carry their `arm`):

- **research** — the normal pipeline: sources, mining, the planner (LLM or extractive);
- **control** — no sources and no mined patches: the LLM planner sees the goal, baseline, profile and code
  only, or (no planner) the coding agent gets explore hypotheses.

Both arms use the same runtime and get the same number of experiments (or the same budget each); their
experiments are interleaved on the same workers so machine drift hits both. `--seeds K` repeats each arm K
times (`research-1`, `control-1`, … — each a label in the `arms` table) with the hypotheses in another order.
This is the optimize loop with three steps replaced (plan, round, between rounds): baseline, resume, signals,
workers and the gate are the Orchestrator's own.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .explore import can_explore, code_listing, explore_hypotheses, explore_plan, origin
from .orchestrator import BASELINE, Orchestrator
from .runtimes import AGENT_RUNTIMES
from .plan import Hypothesis, Plan, load_plan, save_plan
from .rundir import RunDir
from .target import git

ARMS = ("research", "control")


def arm_labels(seeds: int) -> list[str]:
    return [f"{arm}-{seed}" for seed in range(1, seeds + 1) for arm in ARMS]


def arm_of(label: str) -> str:
    return label.rsplit("-", 1)[0]


def check_runtime(task) -> None:
    """The control arm has no mined patches: only a coding agent can try its ideas."""
    if not can_explore(task):
        raise UserError(f"ablate needs a coding-agent runtime (--runtime {'|'.join(AGENT_RUNTIMES)}): the control arm has "
                        f"no mined patches for the {task.runtime.name} runtime to apply")


@dataclass
class ArmRun(RunDir):
    """One arm's view of the run for the brief and the plan status: the run, with the arm's plan (and ledger)."""

    label: str

    @property
    def plan_path(self) -> Path:
        return self.path / "arms" / self.label / "plan.md"


class ArmLedger:
    """The run's ledger, with an arm's planner calls charged to that arm (`<label>:plan`)."""

    def __init__(self, ledger, label: str):
        self._ledger, self._label = ledger, label

    def add_cost(self, kind: str, usd: float, experiment_id: str | None = None, detail: str | None = None) -> None:
        self._ledger.add_cost(kind, usd, experiment_id or f"{self._label}:plan", detail)

    def __getattr__(self, name: str):
        return getattr(self._ledger, name)


class Ablation(Orchestrator):
    def __init__(self, run, backend, notify=lambda _line: None):
        super().__init__(run, backend, notify)
        self.arms: dict[str, ArmRun] = {}
        self._said_budget: set[str] = set()

    @property
    def settings(self) -> dict:
        return self.ledger.options()["ablate"]

    @property
    def labels(self) -> list[str]:
        return arm_labels(int(self.settings.get("seeds") or 1))

    # --- the three steps that differ from optimize -----------------------------------------

    def research(self) -> None:
        """Every arm's plan (kept on disk: resume reuses them). The research arm reads; the control arm does not."""
        evidence = None
        for label in self.labels:
            path = self.run.path / "arms" / label / "plan.md"
            if path.exists():  # resumed: the plan was written (its arm row too, unless killed in between)
                plan = load_plan(path)
                self.arms[label] = ArmRun(self.run.path, self.run.run_id, self.task, plan, self.ledger, label)
                self.ledger.add_arm(label, arm_of(label), int(label.rsplit("-", 1)[1]), plan.front.get("planner", "extractive"),
                                    self.ledger.run()["base_commit"])
                continue
            self.progress.message = f"plan: {label}"
            if arm_of(label) == "research":
                if evidence is None:
                    evidence = self._research_evidence()
                plan, planner = self._research_plan(label, evidence)
            else:
                plan, planner = self._control_plan(label)
            plan = self._sized(plan, label)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_plan(plan, path)
            arm = ArmRun(self.run.path, self.run.run_id, self.task, load_plan(path), self.ledger, label)
            self.arms[label] = arm
            self.ledger.add_arm(label, arm_of(label), int(label.rsplit("-", 1)[1]), planner, self.ledger.run()["base_commit"])
            self.ledger.event("plan", f"{label}: plan with {len(plan.hypotheses)} hypotheses ({planner})", arm=label)
            self.notify(f"{label}: {len(plan.hypotheses)} hypotheses ({planner})")

    def run_round(self, round_no: int) -> bool:
        """Every arm's experiments in one interleaved queue on the shared workers, then each arm's winners stacked."""
        if not self.arms:
            self.research()  # resumed after the plans were written
        for label, hyp in self._interleaved():
            self.ledger.add_experiment(f"{label}-{hyp.id}", hyp.id, hyp.title, 1, arm=label, origin=origin(hyp))
        todo = [e for e in self.ledger.experiments("hypothesis") if e["arm"] and e["status"] != "done"]
        self.progress.message = f"ablation: {len(todo)} experiment(s) across {len(self.arms)} arm(s)"
        self._run_parallel([(row, self.arms[row["arm"]].plan.hypothesis(row["hypothesis"])) for row in todo])
        for label in self.labels:
            self._combine_arm(label)
        return False

    def between_rounds(self, round_no: int, moved: bool) -> bool:
        return False  # one round per arm: equal experiments are the point, not more of them

    # --- plans ------------------------------------------------------------------------------

    def _baseline_dict(self) -> dict:
        run = self.ledger.run()
        return {"median": run["baseline_median"], "cv": run["baseline_cv"], "samples": self.ledger.samples(BASELINE, BASELINE)}

    def _profile(self) -> str:
        profile = self.run.path / "research" / "profile.txt"
        return profile.read_text(encoding="utf-8") if profile.exists() else ""

    def _research_evidence(self):
        from .research.base import NothingFound
        from .research.pipeline import run_research

        self.notify("research arm: reading local notes, competitors, arXiv and GitHub (cached)")
        try:
            return run_research(self.task, self.run.repo_dir, self.ledger.run()["base_commit"], self.run.path / "research",
                                offline=bool(self.ledger.options().get("offline")), notify=self.notify, profile=self._profile())
        except NothingFound as nothing:
            self.ledger.event("explore", f"research arm: {nothing}; it explores like the control arm")
            return False  # nothing to read: the research arm explores too (and the report says so)

    def _distiller(self, label: str):
        from .plan.choose import choose_distiller

        options = self.ledger.options()
        distiller, notice = choose_distiller(self.task, offline=bool(options.get("offline")),
                                             explicit=bool(options.get("planner_explicit")),
                                             ledger=ArmLedger(self.ledger, label), notify=self.notify)
        if notice and notice not in self._said:
            self._said.add(notice)
            self.ledger.event("notice", notice)
            self.notify(f"note: {notice}")
        return distiller

    def _research_plan(self, label: str, evidence) -> tuple[Plan, str]:
        from .research.base import NothingFound

        if evidence is False:
            return explore_plan(self.task, self._count(None), self._plan_baseline(), "Research found nothing to try."), "explore"
        try:
            plan = self._distiller(label).plan(self.task, self._baseline_dict(), evidence)
        except NothingFound:
            return explore_plan(self.task, self._count(None), self._plan_baseline(), "Research found nothing to try."), "explore"
        return plan, plan.front.get("planner", "extractive")

    def _control_plan(self, label: str) -> tuple[Plan, str]:
        """No sources, no mined patches: the planner (if any) sees the goal, baseline, profile and code only."""
        from .plan.llm_distiller import LLMDistiller
        from .research.base import Evidence

        distiller = self._distiller(label)
        count = self._count(None)
        if not isinstance(distiller, LLMDistiller):
            return explore_plan(self.task, count, self._plan_baseline(),
                                "Ablation control arm: nothing was read, on purpose."), "explore"
        commit = self.ledger.run()["base_commit"]
        evidence = Evidence(items=[], selected=[], profile=self._profile(), explore=True,
                            code=code_listing(self.run.repo_dir, commit, self.task.protected_paths()))
        plan = distiller.plan(self.task, self._baseline_dict(), evidence)
        for hyp in plan.hypotheses:
            hyp.fields["origin"] = "explore"  # no source behind it: the planner's own idea
        return plan, f"{plan.front.get('planner', 'planner')}, no sources"

    def _plan_baseline(self) -> dict | None:
        from .plan.extractive import plan_baseline

        return plan_baseline(self._baseline_dict())

    def _count(self, plan: Plan | None) -> int:
        """Experiments per arm: --experiments N, else the research arm's plan size (at least `parallel` and
        `research.explore`; remembered for the other arms)."""
        settings = self.settings
        if settings.get("experiments"):
            return int(settings["experiments"])
        if settings.get("n"):
            return int(settings["n"])
        n = max(len(plan.hypotheses) if plan else 0, self.task.experiments.parallel, self.task.research.explore)
        if plan is not None:
            options = self.ledger.options()
            options["ablate"] = {**settings, "n": n}
            self.ledger.update_run(options=json.dumps(options))
        return n

    def _sized(self, plan: Plan, label: str) -> Plan:
        """Exactly N hypotheses (explore ones added when the plan has fewer), in this seed's order."""
        n = self._count(plan)
        hypotheses = list(plan.hypotheses)
        seed = int(label.rsplit("-", 1)[1])
        if seed > 1:  # seed 1 keeps the planner's order; the others try the same ideas in another order
            random.Random(f"{self.run.run_id}/{label}").shuffle(hypotheses)
        if len(hypotheses) < n:
            taken = {h.id for h in hypotheses}
            extra = [h for h in explore_hypotheses(self.task, n + len(taken), 1) if h.id not in taken]
            hypotheses += extra[: n - len(hypotheses)]
        plan.hypotheses = hypotheses[:n]
        plan.set_plan_status("approved")  # the arm runs without review: the comparison is the point
        return plan

    # --- experiments ------------------------------------------------------------------------

    def _interleaved(self) -> list[tuple[str, Hypothesis]]:
        """R1 C1 R2 C2 …, the arm that goes first alternating by seed and position (drift hits both alike)."""
        out = []
        depth = max((len(arm.plan.hypotheses) for arm in self.arms.values()), default=0)
        seeds = int(self.settings.get("seeds") or 1)
        for index in range(depth):
            for seed in range(1, seeds + 1):
                pair = [f"research-{seed}", f"control-{seed}"]
                if (index + seed) % 2 == 0:
                    pair.reverse()
                for label in pair:
                    hypotheses = self.arms[label].plan.hypotheses
                    if index < len(hypotheses):
                        out.append((label, hypotheses[index]))
        return out

    def _context(self, row: dict | None):
        if row is not None and row.get("arm") in self.arms:
            return self.arms[row["arm"]]
        return self.run

    def branch_name(self, row: dict) -> str:
        suffix = "-combined" if row["kind"] == "combine" else ""
        return f"ra/{self.run.run_id}/{row['arm']}/{row['hypothesis']}{suffix}"

    def _next_launch(self, pending, running) -> int | None:
        """The first pending experiment whose arm stays within its budget (each arm has its own)."""
        if not self._within_budget():  # the task's overall budget_usd, if any, still holds
            return None
        for index, (row, _hyp) in enumerate(pending):
            if self.arm_may_launch(row["arm"], [r for _w, r in running]):
                return index
        return None

    def arm_may_launch(self, label: str, running: list[dict]) -> bool:
        budget = self.settings.get("budget_usd")
        if not budget:
            return True
        in_flight = sum(1 for row in running if row.get("arm") == label)
        spent, largest = self.arm_spend(label)
        per_experiment = max(largest, self.backend.projected_cost())
        if in_flight and not per_experiment:
            return False  # the arm's first experiment's cost is not known yet: one at a time until it is
        if spent + (in_flight + 1) * per_experiment <= budget:
            return True
        if label not in self._said_budget:
            self._said_budget.add(label)
            line = (f"{label}: budget ${budget:.2f} per arm: ${spent:.2f} spent, one more experiment would bring it to "
                    f"${spent + (in_flight + 1) * per_experiment:.2f}; no more launches for this arm")
            self.ledger.event("arm_budget", line, arm=label)
            self.notify(line)
        return False

    def arm_spend(self, label: str) -> tuple[float, float]:
        """(USD the arm spent so far, the most one of its finished experiments cost)."""
        return arm_spend(self.ledger, label)

    def _combine_arm(self, label: str) -> None:
        """The arm's winners stacked onto the shared base, biggest first, each addition re-gated (as optimize does)."""
        rows = [e for e in self.ledger.experiments("hypothesis") if e["arm"] == label]
        winners = sorted((e for e in rows if e["decision"] == "kept"), key=lambda e: e["effect_median"] or 0.0, reverse=True)
        best = self.ledger.run()["base_commit"]
        if winners:
            best = winners[0]["cand_commit"]
            for winner in winners[1:]:
                combo_id = f"{label}-combine-{winner['hypothesis']}"
                self.ledger.add_experiment(combo_id, winner["hypothesis"], f"combine {winner['hypothesis']} onto the best", 1,
                                           kind="combine", arm=label, origin=winner.get("origin"))
                row = self.ledger.experiment(combo_id)
                if row["status"] != "done" and not self.arm_may_launch(label, []):
                    break
                if row["status"] != "done":
                    patch = (self.run.exp_dir(winner["id"]) / "patch.diff").read_text(encoding="utf-8")
                    self._run_one(row, None, base_commit=best, diff=patch)
                    self._check_stop()
                    row = self.ledger.experiment(combo_id)
                if row["decision"] == "kept":
                    best = row["cand_commit"]
                else:
                    self.ledger.update_experiment(winner["id"], reason=f"{winner['reason']}; not in the best: {row['reason']}")
            git(["branch", "--force", f"ra/{self.run.run_id}/{label}/best", best], cwd=self.run.repo_dir)
        self.ledger.update_arm(label, best_commit=best, status="done")

    def _wind_down(self, status: str) -> None:
        super()._wind_down(status)
        for arm in self.arms.values():  # an interrupted experiment's hypothesis is pending again in its arm's plan
            if any(h.status == "running" for h in arm.plan.hypotheses):
                for hyp in arm.plan.hypotheses:
                    if hyp.status == "running":
                        arm.plan.set_status(hyp.id, "pending")
                arm.save_plan()


def arm_spend(ledger, label: str) -> tuple[float, float]:
    """(USD charged to an arm: its experiments and its planner, the largest single experiment's cost)."""
    ids = {e["id"] for e in ledger.experiments() if e.get("arm") == label}
    per: dict[str, float] = {}
    total = 0.0
    for cost in ledger.costs():
        owner = cost["experiment_id"]
        if owner in ids or owner == f"{label}:plan":
            total += cost["usd"]
            if owner in ids:
                per[owner] = per.get(owner, 0.0) + cost["usd"]
    return total, max(per.values(), default=0.0)
