"""The Backend interface: where experiments run. The orchestrator talks only to this."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

from ..errors import NO_CLOUD, UserError
from ..experiment import BaselineJob, BaselineResult, Job, JobResult
from ..runtimes.base import Runtime


class WorkersUnavailable(UserError):
    """No experiment can run at all (no cloud enabled, no capacity or offering anywhere): the run
    stops — resumably — instead of failing every experiment for a reason that is not theirs."""

    exit_code = NO_CLOUD


def quiet(_line: str) -> None:
    """The notifier of a backend nobody watches (tests, `research-agent down`)."""


class Backend(ABC):
    """Where experiments run. Four methods are required; the rest has the defaults of a backend whose
    workers are slots on this machine (the local backend overrides none of them)."""

    name: str
    # True: a worker whose noise check exceeds experiments.max_noise stops before the runtime (JobResult
    # "noisy") and `replace_worker` is asked for a fresh machine; False: the run warns with the figure.
    replaces_noisy_workers = False
    leftovers: Sequence[tuple[str, str]] = ()  # (worker, the command that removes it): what `down` could not remove

    def __init__(self, notify: Callable[[str], None] = quiet):
        self.notify = notify  # one line for the user (the live view's notifier), besides the ledger's event

    @classmethod
    def for_run(cls, run, options: dict, notify: Callable[[str], None] = quiet) -> Backend:
        """The backend for a run directory (the registry makes backends with this)."""
        return cls(run, options, notify=notify)

    @property
    def remote(self) -> bool:
        """The workers are other machines: they choose and probe their own fence and run the runtime
        themselves (`make_runtime` gives the orchestrator a stand-in)."""
        from . import backend_kind

        return backend_kind(self.name).remote

    @abstractmethod
    def provision(self, n: int) -> list[str]:
        """Names of up to n workers; each is recorded in the ledger before it is created."""

    @abstractmethod
    def baseline(self, commit: str, job: BaselineJob) -> BaselineResult:
        """Build, check and benchmark `commit` on a worker."""

    @abstractmethod
    def run(self, worker: str, job: Job, runtime: Runtime, base_commit: str, branch: str) -> JobResult:
        """One experiment on `worker`, from `base_commit`; the candidate is committed on `branch`."""

    @abstractmethod
    def teardown(self) -> list[str]:
        """Remove every worker the ledger knows to be up; returns their names."""

    def down(self, sweep: bool = False) -> list[str]:
        """`research-agent down`: remove every worker this run left up (with `sweep`, also what carries the
        run's name outside the ledger); what could not be removed is in `leftovers`."""
        return self.teardown()

    def projected_cost(self) -> float:
        """USD one more experiment would commit to, beyond the ledger's costs."""
        return 0.0

    def committed_cost(self, ahead_seconds: float = 0.0) -> float | None:
        """USD the live workers hold (and removing them, `ahead_seconds` from now); None: workers cost nothing."""
        return None

    def check_budget(self, budget_usd: float | None) -> None:
        """Raise a UserError when the budget cannot pay for one experiment."""

    def make_runtime(self, name: str, options: dict, timeout: float, fence=None) -> Runtime:
        """The runtime as the orchestrator sees it (a backend whose workers run it elsewhere gives a stand-in)."""
        from ..runtimes import make_runtime

        return make_runtime(name, options, timeout, fence=fence)

    def replace_worker(self, worker: str, reason: str) -> bool:
        """Give `worker`'s name to a fresh machine (True: the orchestrator reruns the experiment there,
        noise-checked again); False: keep it."""
        return False
