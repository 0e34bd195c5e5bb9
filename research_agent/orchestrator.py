"""The loop: baseline → rounds of parallel experiments → combine winners → report.

Talks only to the Backend and Runtime interfaces and the ledger. Every state change is committed
to the ledger before the next step, so `resume` after a kill repeats no finished experiment.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import experiment, proc
from .brief import write_brief
from .explore import origin
from .backends.base import Backend, WorkersUnavailable
from .errors import BaselineError, TaskError
from .fence import Fence, FenceUnavailable, choose as choose_fence, probe as probe_fence
from .experiment import BaselineJob, Commands, Holdout, HoldoutBench, Job, JobResult
from .gate import Bound, SequentialGate, summarize
from .ledger import RunStatus
from .worker_noise import WorkerNoise
from .plan import Hypothesis
from .rundir import RunDir, copy_holdout, holdout_dir
from .runtimes import runtime_kind
from .runtimes.patch import PatchRuntime
from .target import git

BASELINE = "baseline"


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Progress:
    """In-memory, live-only facts the ledger does not need (for the live view)."""

    phase: dict[str, str] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    message: str = ""


STOP_REACTION_SECONDS = 2.0  # a check every 0.2 s, then killing the commands and collecting the threads; generous on a loaded machine


class Orchestrator:
    def __init__(self, run: RunDir, backend: Backend, notify: Callable[[str], None] = lambda _line: None):
        self.run = run
        self.task = run.task
        self.ledger = run.ledger
        self.backend = backend
        self.notify = notify
        self.progress = Progress()
        self.fence: Fence | None = None  # the write fence every runtime and command runs in (None: sandbox: off)
        self._plan_lock = threading.Lock()
        self._signal: int | None = None
        self._said: set[str] = set()
        self._budget_stop: str | None = None  # why launching stopped at the budget
        self.noise = WorkerNoise(self.ledger, backend, self.task.experiments, lambda line: self.notify(line))

    # --- entry point ---------------------------------------------------------------------

    def execute(self) -> dict:
        """Run (or continue) the whole loop; returns the ledger's run row when done."""
        proc.reset()
        self._install_signal_handlers()
        try:
            stale = self.backend.teardown()  # worktrees a killed run left behind
            if stale:
                self.ledger.event("cleanup", f"removed {len(stale)} stale worker(s)", workers=stale)
            restarted = self.ledger.reset_unfinished()
            if restarted:
                self.ledger.event("resume", f"restarting unfinished experiment(s): {', '.join(restarted)}")
            self.ledger.update_run(status=RunStatus.RUNNING)
            self.new_gate()  # refuse impossible gate settings before spending any time
            self._setup_fence()  # no fence (or a broken one) stops here, before anything runs
            self._check_runtime()  # a missing agent CLI is one clear error, not N failed experiments
            self.baseline()
            if self.run.plan is None:
                self.research()
            if self.ledger.options().get("stop_after_plan"):
                self.backend.teardown()  # nothing runs while the plan is reviewed
                self.ledger.update_run(status=RunStatus.PLANNED)
                self.ledger.event("planned", "plan written; stopping for review")
                return self.ledger.run()
            while True:
                round_no = self.ledger.run()["round"]
                moved = self.run_round(round_no)
                if round_no >= self.task.experiments.rounds or self._budget_stop or not self.between_rounds(round_no, moved):
                    break
                self.ledger.update_run(round=round_no + 1)
            self.backend.teardown()  # every worker goes when the gate is done
            if self._budget_stop:
                self.ledger.update_run(status=RunStatus.BUDGET)
                self.ledger.event("budget", self._budget_stop)
                return self.ledger.run()
            self.ledger.update_run(status=RunStatus.DONE)
            self.ledger.event("done", "run finished")
            return self.ledger.run()
        except Interrupted:
            self._wind_down(RunStatus.INTERRUPTED)
            raise
        except BaseException:
            self._wind_down(RunStatus.FAILED)
            raise
        finally:
            self._restore_signal_handlers()

    # --- baseline ------------------------------------------------------------------------

    def baseline(self) -> None:
        run = self.ledger.run()
        if run["baseline_median"] is not None:
            return
        self.progress.message = "baseline"
        self.backend.check_budget(self.budget())  # a budget below one experiment's projected cost is refused before any launch
        self.notify("baseline: clean build, check, then the benchmark")
        log = self.run.exp_dir(BASELINE) / "baseline.log"

        def on_sample(index: int, value: float, seconds: float) -> None:
            self.progress.message = f"baseline: benchmark {index + 1}/{self.task.experiments.repeats}"
            self.ledger.add_sample(BASELINE, 1, BASELINE, index, value, seconds)

        def on_metrics(bench: str, arm: str, index: int, metrics: dict) -> None:
            self.ledger.add_metrics(BASELINE, 1, bench, arm, index, metrics)

        measured = self.backend.baseline(run["best_commit"], BaselineJob(
            self.commands(), self.task.experiments.repeats, log, on_sample, self.task.profile, self.task.timeouts.bench * 3,
            on_metrics))
        self._check_stop()
        if measured.failure:
            raise BaselineError(f"baseline {measured.failure} (log: {log})")
        values = measured.values
        if measured.profile is not None:
            (self.run.path / "research").mkdir(exist_ok=True)
            (self.run.path / "research" / "profile.txt").write_text(measured.profile, encoding="utf-8")
        stats = summarize(values)
        self.ledger.update_run(baseline_median=stats["median"], baseline_cv=stats["cv"])
        self.ledger.event("baseline", f"baseline {self.task.metric.name} median {stats['median']:.4g}, CV {stats['cv']:.2%}")
        if self.run.plan is not None:  # a plan written later by research carries the baseline itself
            with self._plan_lock:
                self.run.plan.set_baseline(round(stats["median"], 6), round(stats["cv"], 4))
                self.run.save_plan()

    # --- research ------------------------------------------------------------------------

    def research(self) -> None:
        """No plan yet: read, rank, mine, and write one (the LLM planner, or the extractive distiller)."""
        from .errors import UserError
        from .explore import can_explore, explore_hypotheses, explore_plan, nothing_found_line
        from .plan import load_plan, save_plan
        from .plan.choose import choose_distiller
        from .plan.extractive import plan_baseline
        from .research.base import Evidence, NothingFound
        from .research.pipeline import run_research

        self.progress.message = "research"
        self.notify("research: reading local notes, competitors, arXiv and GitHub (cached)")
        run = self.ledger.run()
        out_dir = self.run.path / "research"
        profile_file = out_dir / "profile.txt"
        baseline = {"median": run["baseline_median"], "cv": run["baseline_cv"], "samples": self.ledger.samples(BASELINE, BASELINE)}
        try:
            evidence = run_research(
                self.task, self.run.repo_dir, run["best_commit"], out_dir,
                offline=bool(self.ledger.options().get("offline")), notify=self.notify,
                profile=profile_file.read_text(encoding="utf-8") if profile_file.exists() else "",
            )
            self._check_stop()
            options = self.ledger.options()
            distiller, notice = choose_distiller(self.task, offline=bool(options.get("offline")),
                                                 explicit=bool(options.get("planner_explicit")), ledger=self.ledger,
                                                 notify=self.notify)
            if notice:
                self.ledger.event("notice", notice)
                self.notify(f"note: {notice}")
            plan = distiller.plan(self.task, baseline, evidence)
            for line in getattr(getattr(distiller, "result", None), "warnings", None) or []:
                self.ledger.event("plan_note", line)
                self.notify(f"plan: {line}")
            if self.task.research.explore and can_explore(self.task):  # by choice: explore beside research
                first = len([h for h in plan.hypotheses if h.id.startswith("X")]) + 1
                plan.hypotheses.extend(explore_hypotheses(self.task, self.task.research.explore, first))
        except NothingFound as nothing:
            if not can_explore(self.task):
                raise UserError(nothing_found_line(str(nothing))) from None
            count = self.task.research.explore or self.task.experiments.parallel
            line = f"{str(nothing).split('. ')[0]}; the {self.task.runtime.name} agent explores {count} idea(s) of its own"
            self.ledger.event("explore", line, count=count)
            self.notify(line)
            plan = explore_plan(self.task, count, plan_baseline(baseline), "Research found nothing to try.")
            evidence = Evidence(items=[], selected=[])
        from .between import after_first_research

        self.run.plan = plan
        after_first_research(self.run, evidence)  # sources of each hypothesis, large diffs to files, every commit
        save_plan(plan, self.run.plan_path)
        self.run.plan = load_plan(self.run.plan_path)
        self.ledger.event("plan", f"plan written with {len(plan.hypotheses)} hypotheses", path="plan.md",
                          planner=plan.front.get("planner", "extractive"))
        self.notify(f"plan: {len(plan.hypotheses)} hypotheses written to plan.md")

    # --- rounds --------------------------------------------------------------------------

    def run_round(self, round_no: int) -> bool:
        """Run one round; returns True if a next round makes sense (the best commit moved)."""
        hypotheses = self.round_hypotheses(round_no)
        for hyp in hypotheses:
            self.ledger.add_experiment(exp_id(round_no, hyp.id), hyp.id, hyp.title, round_no, origin=origin(hyp))
        todo = [e for e in self.ledger.experiments("hypothesis") if e["round"] == round_no and e["status"] != "done"]
        self.progress.message = f"round {round_no}: {len(todo)} experiment(s)"
        self._run_parallel([(e, self.run.plan.hypothesis(e["hypothesis"])) for e in todo])
        winners = sorted(
            (e for e in self.ledger.experiments("hypothesis") if e["round"] == round_no and e["decision"] == "kept"),
            key=lambda e: e["effect_median"] or 0.0,
            reverse=True,
        )
        return self.combine(round_no, winners)

    def round_hypotheses(self, round_no: int) -> list[Hypothesis]:
        """Round 1 tries every pending hypothesis. Later rounds try the ones research added between rounds
        and, when the best moved, retry on it the discarded ones and those that failed to apply or build."""
        plan = self.run.plan
        if round_no == 1:
            chosen = [h for h in plan.hypotheses if h.status in ("pending", "running")]
        else:
            experiments = self.ledger.experiments("hypothesis")
            previous = {e["hypothesis"]: e for e in experiments if e["round"] == round_no - 1}
            tried = {e["hypothesis"] for e in experiments if e["round"] < round_no}
            best = self.ledger.run()["best_commit"]
            moved = any(e["base_commit"] and e["base_commit"] != best for e in previous.values())

            def retry(h: Hypothesis) -> bool:
                e = previous.get(h.id) or {}
                return e.get("decision") == "discarded" or (
                    e.get("decision") == "failed" and h.has_patch and experiment.retry_on_new_best(e.get("reason")))

            chosen = [h for h in plan.hypotheses
                      if (h.id not in tried and h.status in ("pending", "running")) or (moved and retry(h))]
        if not runtime_kind(self.task.runtime.name).agent:
            # The patch runtime needs a diff; ideas without one wait for a coding-agent runtime.
            waiting = [h.id for h in chosen if not h.has_patch]
            if waiting and round_no == 1:
                line = f"{', '.join(waiting)}: no diff — not tried with the patch runtime (use a coding-agent runtime)"
                self.ledger.event("skipped", line, hypotheses=waiting)
                self.notify(line)
            chosen = [h for h in chosen if h.has_patch]
        return chosen

    def between_rounds(self, round_no: int, moved: bool) -> bool:
        """After round `round_no`: re-mine against a moved best; research again when the round kept nothing
        or nothing is left to try. True when the next round has something to try."""
        from .between import BetweenRounds

        between = BetweenRounds(self.run, self.notify)
        self.progress.message = f"between rounds {round_no} and {round_no + 1}: research"
        with self._plan_lock:
            if moved:
                between.remine(round_no + 1)
            ready = bool(self.round_hypotheses(round_no + 1))
            if (not moved or not ready) and self._within_budget():
                why = "it kept nothing" if not moved else "no hypothesis was left to try"
                between.research_again(round_no + 1, f"after round {round_no}: {why}")
                ready = bool(self.round_hypotheses(round_no + 1))
        self._check_stop()
        return ready

    def combine(self, round_no: int, winners: list[dict]) -> bool:
        """Stack the round's winners onto the base, biggest first; each addition is re-gated."""
        if not winners:
            return False
        best = winners[0]["cand_commit"]
        for winner in winners[1:]:
            combo_id = f"r{round_no}-combine-{winner['hypothesis']}"
            self.ledger.add_experiment(combo_id, winner["hypothesis"], f"combine {winner['hypothesis']} onto the best", round_no, kind="combine")
            row = self.ledger.experiment(combo_id)
            if row["status"] != "done" and not self._within_budget():
                break
            if row["status"] != "done":
                patch = (self.run.exp_dir(winner["id"]) / "patch.diff").read_text(encoding="utf-8")
                self._run_one(row, None, base_commit=best, diff=patch)
                row = self.ledger.experiment(combo_id)
            if row["decision"] == "kept":
                best = row["cand_commit"]
            else:
                note = f"not in the best: {row['reason']}"
                self.ledger.update_experiment(winner["id"], reason=f"{winner['reason']}; {note}")
        self.ledger.update_run(best_commit=best)
        git(["branch", "--force", f"ra/{self.run.run_id}/best", best], cwd=self.run.repo_dir)
        self.ledger.event("best", f"round {round_no}: best is now {best[:12]}", commit=best)
        return True

    # --- experiments ---------------------------------------------------------------------

    def _run_parallel(self, items: list[tuple[dict, Hypothesis | None]]) -> None:
        workers = self.backend.provision(self.task.experiments.parallel)
        free = list(workers)
        pending = list(items)
        running: dict[Future, tuple[str, dict]] = {}  # worker, experiment row
        with ThreadPoolExecutor(max_workers=len(workers)) as pool:
            while pending or running:
                while pending and free and not proc.stopping():
                    index = self._next_launch(pending, list(running.values()))
                    if index is None:
                        break
                    row, hyp = pending.pop(index)
                    worker = free.pop(0)
                    future = pool.submit(self._run_one, row, hyp, worker=worker)
                    running[future] = (worker, row)
                if not running:  # nothing runs and nothing may start: stopping, or out of budget
                    break
                done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    free.append(running.pop(future)[0])
                    future.result()  # surface orchestrator bugs; experiment failures are recorded, not raised
                if running and not proc.stopping() and self._crossing_budget():
                    proc.stop_all()  # the running experiments stop undecided; resume repeats them
        if self._budget_stop and proc.stopping() and self._signal is None:
            proc.reset()  # stopped for the budget, not a signal: teardown and the report still run
            restarted = self.ledger.reset_unfinished()
            self.ledger.event("budget", f"stopped before deciding: {', '.join(restarted)}" if restarted else self._budget_stop)
        self._check_stop()

    def _next_launch(self, pending: list[tuple[dict, Hypothesis | None]], running: list[tuple[str, dict]]) -> int | None:
        """Which pending experiment starts next (an index), or None to start none now."""
        return 0 if self._within_budget() else None

    def _context(self, row: dict | None):
        """Task, plan and ledger an experiment's brief is written from (ablate: its arm's plan)."""
        return self.run

    def _run_one(self, row: dict, hyp: Hypothesis | None, worker: str = "local-1", base_commit: str | None = None, diff: str | None = None) -> None:
        exp = row["id"]
        base = base_commit or self.ledger.run()["best_commit"]
        branch = self.branch_name(row)
        attempt = self.ledger.start_experiment(exp, base, branch, worker)
        self.progress.phase[exp] = "starting"
        self.progress.started[exp] = time.monotonic()
        if hyp is not None:
            self._set_plan_status(hyp.id, "running", row)
        exp_dir = self.run.exp_dir(exp)
        try:
            job, runtime = self._job(row, hyp, exp_dir, attempt, diff, worker)
            result = self.backend.run(worker, job, runtime, base, branch)
        except WorkersUnavailable:
            raise  # the backend cannot run experiments at all (e.g. no cloud capacity): stop, resumable
        except Exception as error:  # a bug or an environment fault: record it, keep the loop going
            with open(exp_dir / "experiment.log", "a") as log:  # closed at once: the worker may append after us
                log.write(traceback.format_exc())
            result = JobResult("failed", f"error: {error}")
        if proc.stopping():
            return  # interrupted: stays unfinished, resume repeats it
        if self.noise.rerun(worker, exp, result):
            self._run_one(row, hyp, worker, base_commit, diff)  # on the replacement, as a new attempt
            return
        self._record(row, hyp, result)

    def _job(self, row: dict, hyp: Hypothesis | None, exp_dir: Path, attempt: int, diff: str | None, worker: str):
        exp = row["id"]
        if hyp is not None:
            brief = write_brief(self._context(row), hyp, exp_dir)
            runtime = self._make_runtime()
            self._show_notices(runtime.notices)
        else:  # a combination step re-applies a winner's recorded patch
            context = self._context(row)
            brief = write_brief(context, context.plan.hypothesis(row["hypothesis"]), exp_dir, diff=diff)
            runtime = PatchRuntime(fence=self.fence)
        gate = self.new_gate()

        def on_sample(arm: str, index: int, value: float, seconds: float) -> None:
            self.ledger.add_sample(exp, attempt, arm, index, value, seconds)

        def on_phase(name: str) -> None:
            self.progress.phase[exp] = name

        def on_metrics(bench: str, arm: str, index: int, metrics: dict) -> None:
            self.ledger.add_metrics(exp, attempt, bench, arm, index, metrics)

        seed = int(hashlib.sha256(f"{self.run.run_id}/{exp}/{attempt}".encode()).hexdigest()[:8], 16)
        job = Job(exp, row["title"], brief, self.commands(), self.task.protected_paths(), gate, exp_dir, seed, on_sample, on_phase,
                  holdout=self.holdout(), noise=self.noise.check_for(worker), on_metrics=on_metrics)
        return job, runtime

    def holdout(self) -> Holdout | None:
        """The task's holdout benchmarks, their files in RUN_DIR/holdout (outside every worktree)."""
        spec = self.task.holdout
        if spec is None:
            return None
        folder = holdout_dir(self.run.path)
        if not folder.exists():
            copy_holdout(self.task, self.run.path)
        metric = self.task.metric
        bound = Bound(spec.metric or metric.name, spec.direction or metric.direction, spec.max_regression)
        regex = spec.regex if spec.metric else (spec.regex or metric.regex)
        return Holdout([HoldoutBench(command, bound, regex) for command in spec.commands], str(folder))

    def _record(self, row: dict, hyp: Hypothesis | None, result: JobResult) -> None:
        exp = row["id"]
        outcome = result.runtime
        if outcome and outcome.cost_usd:
            self.ledger.add_cost("agent", outcome.cost_usd, exp, detail=self.task.runtime.name)
        decision = result.decision if result.decision not in ("stopped", "noisy") else "failed"
        checks = dict(result.checks or {})
        if checks.get("build", {}).get("identical"):
            checks["build"]["saved_s"] = self._bench_seconds_saved()
        self.ledger.decide(
            exp,
            decision,
            result.reason,
            result.effect,
            cand_commit=result.cand_commit,
            tokens=outcome.tokens if outcome else None,
            turns=outcome.turns if outcome else None,
            checks=json.dumps(checks) if checks else None,
        )
        self.progress.phase.pop(exp, None)
        if hyp is not None:
            self._set_plan_status(hyp.id, decision, row)
        effect = f" ({result.effect['median']:+.1%})" if result.effect else ""
        self.notify(f"{exp} {row['title']}: {decision}{effect} — {result.reason}")

    # --- helpers -------------------------------------------------------------------------

    def commands(self) -> Commands:
        task = self.task
        return Commands(
            build=task.build,
            check=task.check,
            bench=task.bench,
            metric=task.metric.name,
            regex=task.metric.regex,
            format=task.metric.format,
            direction=task.metric.direction,
            build_timeout=task.timeouts.build,
            check_timeout=task.timeouts.check,
            bench_timeout=task.timeouts.bench,
            fence=self.fence.to_spec() if self.fence else None,
        )

    def new_gate(self) -> SequentialGate:
        settings = self.task.experiments
        guards = [Bound(name, guard.direction, guard.max_regression) for name, guard in self.task.guards.items()]
        try:
            return SequentialGate(settings.min_effect, settings.repeats, settings.max_repeats, self.task.metric.direction,
                                  guards=guards)
        except ValueError as error:
            raise TaskError(f"experiments: {error}") from None

    def _bench_seconds_saved(self) -> float | None:
        """What the identical-build short cut saved at the least: the gate's first look, 2 x repeats
        benchmark runs, at the baseline's mean run time (an A/A change often takes more looks)."""
        seconds = [s for s in self.ledger.sample_seconds(BASELINE, BASELINE) if s]
        if not seconds:
            return None
        return round(2 * self.task.experiments.repeats * sum(seconds) / len(seconds), 3)

    def branch_name(self, row: dict) -> str:
        suffix = "" if row["round"] == 1 else f"-r{row['round']}"
        if row["kind"] == "combine":
            suffix += "-combined"
        return f"ra/{self.run.run_id}/{row['hypothesis']}{suffix}"

    def _setup_fence(self) -> None:
        """Choose the write fence and prove it works (a probe write outside must fail), or warn that
        the task turned it off. Workers elsewhere (cloud VMs) choose and probe their own ("auto")."""
        if self.task.sandbox == "off":
            warning = ("warning: sandbox: off — agents and the build/check/bench commands run unconfined "
                       "and can write anywhere this user can")
            self.notify(warning)
            self.ledger.event("sandbox", warning)
            self.fence = None
            return
        if self.backend.remote:
            self.fence = Fence("auto", tuple(self.task.workers.writable))
            return
        try:
            wanted = None if self.task.sandbox == "on" else self.task.sandbox
            self.fence = choose_fence(self.task.workers.writable, wanted)
        except FenceUnavailable as missing:
            if runtime_kind(self.task.runtime.name).agent or self.task.sandbox != "on":
                raise  # an agent (or a named mechanism) never runs unconfined unless the task says so
            # No agent: the plan's own diffs are applied; the commands run unconfined, said loudly.
            warning = f"warning: {missing}; the patch runtime goes on, its build/check/bench unconfined"
            self.notify(warning)
            self.ledger.event("sandbox", warning)
            return
        probe_fence(self.fence, self.run.path)

    def _check_runtime(self) -> None:
        runtime = self._make_runtime()
        self._show_notices(runtime.notices)
        runtime.preflight()  # a missing key or login stops here, before the baseline is spent

    def _make_runtime(self):
        """The task's runtime; a backend whose workers run it elsewhere (cloud VMs) supplies its own stand-in."""
        return self.backend.make_runtime(self.task.runtime.name, self.task.runtime.options, self.task.timeouts.runtime, fence=self.fence)

    def budget(self) -> float | None:
        return self.ledger.options().get("budget_usd") or self.task.budget_usd

    def _within_budget(self) -> bool:
        """False (and launching stops for good) when one more experiment's projected cost would cross the budget."""
        budget = self.budget()
        if not budget or self._budget_stop:
            return not self._budget_stop
        spent = self.ledger.cost()
        projected = self.backend.projected_cost()
        if spent + projected <= budget:
            return True
        self._budget_stop = (f"budget: ${spent:.2f} spent, the next experiment would bring it to ${spent + projected:.2f} "
                             f"(budget ${budget:.2f}); no more launches")
        self.notify(self._budget_stop)
        return False

    def _crossing_budget(self) -> bool:
        """True when what the live workers already hold, and removing them, would cross the budget:
        the launch-time projection is an estimate a slow machine can beat; this is the hard stop."""
        budget = self.budget()
        if not budget:
            return False
        held = self.backend.committed_cost(ahead_seconds=STOP_REACTION_SECONDS)
        if held is None:  # its workers cost nothing while they run
            return False
        spent = self.ledger.cost()
        if spent + held < budget:
            return False
        self._budget_stop = (f"budget: ${spent:.2f} spent and ${held:.2f} held by running workers "
                             f"(budget ${budget:.2f}); stopping them before it is crossed")
        self.notify(self._budget_stop)
        return True

    def _show_notices(self, notices: list[str]) -> None:
        """Runtime warnings (version outside the tested range, unsafe mode...), each said once."""
        with self._plan_lock:
            fresh = [line for line in notices if line not in self._said]
            self._said.update(fresh)
        for line in fresh:
            self.ledger.event("notice", line)
            self.notify(f"note: {line}")

    def _set_plan_status(self, hid: str, status: str, row: dict | None = None) -> None:
        with self._plan_lock:
            context = self._context(row)
            context.plan.set_status(hid, status)
            context.save_plan()

    def _check_stop(self) -> None:
        if self._signal is not None:
            raise Interrupted(self._signal)

    def _wind_down(self, status: RunStatus) -> None:
        """Stop what runs, remove every worktree, leave the ledger resumable."""
        proc.stop_all()
        self.ledger.reset_unfinished()
        with self._plan_lock:
            if self.run.plan is not None:
                for hyp in self.run.plan.hypotheses:
                    if hyp.status == "running":
                        self.run.plan.set_status(hyp.id, "pending")
                self.run.save_plan()
        self.backend.teardown()
        self.ledger.update_run(status=status)
        self.ledger.event(status, f"run {status}")

    def _install_signal_handlers(self) -> None:
        self._previous = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame) -> None:
        if self._signal is None:
            self._signal = signum
            # Kill from another thread: the handler may have interrupted code holding proc's lock.
            threading.Thread(target=proc.stop_all, daemon=True).start()


def exp_id(round_no: int, hypothesis: str) -> str:
    return f"r{round_no}-{hypothesis}"
