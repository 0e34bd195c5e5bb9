"""The Backend interface: where experiments run. The orchestrator talks only to this."""

from __future__ import annotations

from typing import Protocol

from ..experiment import BaselineJob, BaselineResult, Job, JobResult
from ..runtimes.base import Runtime


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
