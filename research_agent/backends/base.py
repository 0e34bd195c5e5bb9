"""The Backend interface: where experiments run. The orchestrator talks only to this."""

from __future__ import annotations

from typing import Protocol

from ..errors import NO_CLOUD, UserError
from ..experiment import BaselineJob, BaselineResult, Job, JobResult
from ..runtimes.base import Runtime


class WorkersUnavailable(UserError):
    """No experiment can run at all (no cloud enabled, no capacity or offering anywhere): the run
    stops — resumably — instead of failing every experiment for a reason that is not theirs."""

    exit_code = NO_CLOUD


class Backend(Protocol):
    name: str

    def provision(self, n: int) -> list[str]:
        """Names of up to n workers; each is recorded in the ledger before it is created."""

    def baseline(self, commit: str, job: BaselineJob) -> BaselineResult:
        """Build, check and benchmark `commit` on a worker."""

    def run(self, worker: str, job: Job, runtime: Runtime, base_commit: str, branch: str) -> JobResult:
        """One experiment on `worker`, from `base_commit`; the candidate is committed on `branch`."""

    def teardown(self) -> list[str]:
        """Remove every worker the ledger knows to be up; returns their names."""


# Optional, used when a backend has them (the local backend needs none):
#   projected_cost() -> float            USD one more experiment would commit to, beyond the ledger's costs
#   check_budget(budget_usd) -> None     raise UserError when the budget cannot pay for one experiment
#   make_runtime(name, options, timeout) the runtime as seen here when the workers run it elsewhere
#   replaces_noisy_workers: bool          True: a worker whose noise check exceeds experiments.max_noise
#                                         stops before the runtime (JobResult "noisy") and is replaced
#   replace_worker(worker, reason) -> bool  give `worker`'s name to a fresh machine (True: the orchestrator
#                                         reruns the experiment there, noise-checked again); False: keep it
