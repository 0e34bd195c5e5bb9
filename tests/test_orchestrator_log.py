"""An experiment that fails with an exception (a bug or an environment fault) leaves its traceback in
experiment.log — written through a file that is closed at once, not left to the garbage collector."""

import gc
import warnings

from .conftest import make_target


def test_a_failing_backend_leaves_its_traceback_in_a_closed_experiment_log(tmp_path):
    from research_agent import rundir
    from research_agent.backends.local import LocalBackend
    from research_agent.orchestrator import Orchestrator
    from research_agent.plan import load_plan
    from research_agent.task import load_task

    _repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}}, task_extra="experiments: {parallel: 1}\n")

    class Broken(LocalBackend):  # the worker's disk went away mid-run
        def run(self, worker, job, runtime, base_commit, branch):
            raise OSError(28, "No space left on device")

    run, _ = rundir.create(load_task(task), load_plan(plan), tmp_path / "run", False, {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        Orchestrator(run, Broken(run.path, run.repo_dir, run.ledger)).execute()
        gc.collect()
    row = run.ledger.experiment("r1-H1")
    assert row["decision"] == "failed" and "No space left on device" in row["reason"]
    log = (run.exp_dir("r1-H1") / "experiment.log").read_text()
    assert "Traceback" in log and "OSError: [Errno 28] No space left on device" in log
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and "experiment.log" in str(w.message)]
    assert leaked == []
