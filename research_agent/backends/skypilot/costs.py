"""Compute cost: each worker's hourly price (SkyPilot's catalog via sky_api.hourly_price, or
workers.price_per_hour) x the time it is held; the budget's projection and hard stop. The mode
supplies `_accrued()` (what its live workers hold, not yet in the ledger). Not counted: the jobs
controller SkyPilot runs for managed jobs and pools (said in the launch plan and the README)."""

from __future__ import annotations

from ...errors import UserError
from ...ledger import Worker
from .options import PREFIX


class CostsMixin:
    def projected_cost(self) -> float:
        """USD not yet in the ledger that launching one more experiment commits to: what live workers
        have accrued, plus every live worker held for one more experiment's length (at least one)."""
        price = self.price()
        if not price:
            return 0.0
        accrued, live = self._accrued()
        return accrued + max(live, 1) * price * self.estimate_hours()

    def committed_cost(self, ahead_seconds: float = 0.0) -> float:
        """USD not yet in the ledger that the live workers already hold, plus what stopping them
        within `ahead_seconds` and removing them would add: the orchestrator stops running
        experiments when this would cross the budget, because a projection made at launch can be
        beaten by a slow machine."""
        price = self.price()
        if not price:
            return 0.0
        accrued, live = self._accrued()
        return accrued + live * price * (self._down_hours() + ahead_seconds / 3600)

    def _down_hours(self) -> float:
        """How long removing a worker keeps it billed: the slowest removal seen in this run, else the
        slowest launch (removal is rarely slower), else a minute."""
        with self._lock:
            seen = self._down_seconds or self._launch_seconds
            return (max(seen) if seen else 60.0) / 3600

    def estimate_hours(self) -> float:
        durations = [e["finished"] - e["started"] for e in self.ledger.experiments()
                     if e["status"] == "done" and e["started"] and e["finished"] and e["decision"] in ("kept", "discarded")]
        if durations:  # the longest so far: a projection should not be optimistic
            return max(durations) / 3600
        if self._baseline_seconds:
            return 2.5 * self._baseline_seconds / 3600  # two builds and more benchmark runs than the baseline
        return self.opts.est_minutes / 60

    def price(self) -> float | None:
        """USD per worker-hour: workers.price_per_hour, else SkyPilot's catalog (cached)."""
        if self.opts.price_per_hour is not None:
            return self.opts.price_per_hour
        with self._lock:
            if not self._price_known:
                self._price = self.api.hourly_price(self.resources)
                self._price_known = True
            return self._price

    def check_budget(self, budget: float | None) -> None:
        if not budget:
            return
        price = self.price()
        if price is None:
            raise UserError("cannot keep to the budget: no price for these resources in SkyPilot's catalog; "
                            "set workers.price_per_hour (USD per worker-hour)")
        one = price * self.estimate_hours()
        if budget < one:
            raise UserError(f"budget ${budget:.2f} is below one experiment's projected cost ${one:.2f} "
                            f"(${price:.3f}/h × {self.estimate_hours() * 60:.0f} min); raise --budget-usd")

    def _charge_held(self, worker: Worker, now: float) -> None:
        """Idle and provisioning time of a cluster or pool: what experiments did not pay for."""
        price = self.price()
        if not price:
            return
        if worker.kind == "cluster":
            cluster = self._clusters.get(worker.id)
            charged = self.ledger.cost_with_detail(worker.id)  # every process's charges, not just this one's
            since = cluster.requested if cluster else worker.created
            usd = (cluster.price if cluster and cluster.price else price) * (now - since) / 3600 - charged
        elif worker.kind == "pool":
            since = worker.created if self._pool_since is None else self._pool_since
            usd = price * int(worker.meta.get("workers") or self.count) * (now - since) / 3600 - self.ledger_cost_pool()
        else:
            return
        if usd > 0:
            self.ledger.add_cost("compute", usd, None, detail=f"idle/provisioning {worker.id}")

    def ledger_cost_pool(self) -> float:
        """Compute already charged to this run's pool jobs (their details start with the run's name prefix)."""
        return self.ledger.compute_cost_with_detail_prefix(f"{PREFIX}{self.slug}-")
