"""The noisy-worker check: once per worker, before its first experiment, and what follows from it.

The experiment procedure measures (experiment.check_noise: base-vs-base pairs of one build); this
decides which jobs carry a check, records every figure in the ledger, and turns a noisy worker
into a replacement (a backend with `replaces_noisy_workers`: the job stopped before its runtime
ran, and runs again on the fresh worker) or a warning with the figure and what to do.
"""

from __future__ import annotations

import threading
from typing import Callable

from .experiment import JobResult, NoiseCheck

MAX_REPLACEMENTS = 2  # noisy workers replaced per worker slot before running on one anyway


class WorkerNoise:
    def __init__(self, ledger, backend, settings, notify: Callable[[str], None]):
        self.ledger, self.backend, self.settings, self.notify = ledger, backend, settings, notify
        self._lock = threading.Lock()
        # Workers measured already (a resumed run keeps them), and replacements made per worker.
        self._checked = {row["worker"] for row in ledger.noise() if row["action"] != "replaced"}
        self._replacements: dict[str, int] = {}

    def check_for(self, worker: str) -> NoiseCheck | None:
        """A noise check when this worker has not had one yet (it is in the job it is given)."""
        if not self.settings.noise_pairs:
            return None
        with self._lock:
            if worker in self._checked:
                return None
            self._checked.add(worker)
        return NoiseCheck(self.settings.noise_pairs, self.settings.max_noise,
                          self.backend.replaces_noisy_workers)

    def rerun(self, worker: str, exp: str, result: JobResult) -> bool:
        """Record the job's noise check; True when the job stopped at it and must run again."""
        noise = result.noise
        if noise is None:
            return False
        if not noise["noisy"]:
            self._add(worker, exp, noise, "ok")
            return False
        figure = (f"worker {worker}: paired noise {noise['noise']:.1%} over {noise['pairs']} base-vs-base pairs is above "
                  f"experiments.max_noise {noise['bound']:.1%}")
        stopped = result.decision == "noisy"
        if stopped and self._replacements.get(worker, 0) < MAX_REPLACEMENTS and self.backend.replace_worker(worker, figure):
            with self._lock:
                self._replacements[worker] = self._replacements.get(worker, 0) + 1
                self._checked.discard(worker)  # the replacement is checked in its turn
            self._add(worker, exp, noise, "replaced")
            self.ledger.event("noise", f"{figure}: replaced", worker=worker, noise=noise["noise"])
            self.notify(f"{figure}: replaced")
            return True
        self._add(worker, exp, noise, "warned")
        line = (f"warning: {figure}: the gate will need more pairs and miss small gains; measure CPU time instead "
                "of wall time (metric cpu_s), pin the benchmark to a core (e.g. taskset -c 1), or use a quieter machine")
        self.ledger.event("noise", line, worker=worker, noise=noise["noise"])
        self.notify(line)
        return stopped  # stopped but not replaced: it runs here after all (checked now)

    def _add(self, worker: str, exp: str, noise: dict, action: str) -> None:
        self.ledger.add_noise(worker, exp, noise["pairs"], noise["noise"], noise["bound"], action)
