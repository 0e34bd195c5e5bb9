"""Gate accuracy on simulated benchmarks with known truth.

For each noise scenario and each true effect (none = A/A, exactly min_effect = +1%, and a +3% gain)
this runs many simulated optimization attempts through the real SequentialGate loop (next_batch /
decide, exactly as the orchestrator drives it) and through the two rules used in the field:
"single run, keep if better" and "median of 5, keep if better". Every rule gets the same per-trial
seeds, the same simulated worker and interleaved pairs in randomized order (the field rules get
this for free here; run blocked, A A A then B B B, drift would bias them further).
Metric direction is `max`.

Noise is multiplicative (log-normal): run k of the whole A/B sequence measures
    true_value * exp(drift(k) + slow(k) + white_k)
so drift and slow components hit A and B alike except for the part that changes between runs.

Usage: python benchmarks/gate_accuracy.py [--trials N] [--seed S] [--alpha A]
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from research_agent.gate import SequentialGate, pair_orders  # noqa: E402

GAIN = 0.03
MIN_EFFECT = 0.01


@dataclass(frozen=True)
class Scenario:
    name: str
    detail: str
    white_sd: float            # independent per-run noise (log scale, ~CV)
    walk_step_sd: float = 0.0  # random-walk drift step per run
    slow_sd: float = 0.0       # stationary sd of a shared AR(1) component
    slow_rho: float = 0.0      # AR(1) correlation between consecutive runs
    outlier_rate: float = 0.0  # fraction of runs hit by interference
    outlier_size: float = 0.0  # log-scale change of such a run


SCENARIOS = [
    Scenario("(a) CV 2% white", "independent log-normal noise, sd 2% per run", 0.02),
    Scenario("(b) CV 5% + drift", "white sd 5% plus a random walk, step sd 0.5% per run",
             0.05, walk_step_sd=0.005),
    Scenario("(c) CV 2% slow+white", "shared AR(1) sd 1.41% (rho 0.95 per run) plus white "
             "sd 1.41%: total CV 2%, half of the variance slow", 0.02 / math.sqrt(2),
             slow_sd=0.02 / math.sqrt(2), slow_rho=0.95),
    Scenario("(d) CV 2% + outliers", "white sd 2%, and 5% of runs are 15% slower (interference)",
             0.02, outlier_rate=0.05, outlier_size=math.log(0.85)),
]


class SimulatedWorker:
    """One machine measuring runs in sequence; its drift state persists across batches."""

    def __init__(self, scenario: Scenario, rng: random.Random):
        self.s, self.rng = scenario, rng
        self.walk = 0.0
        self.slow = rng.gauss(0.0, scenario.slow_sd)

    def run(self, true_value: float) -> float:
        s, rng = self.s, self.rng
        self.walk += rng.gauss(0.0, s.walk_step_sd)
        innovation_sd = s.slow_sd * math.sqrt(1 - s.slow_rho ** 2)
        self.slow = s.slow_rho * self.slow + rng.gauss(0.0, innovation_sd)
        log_noise = self.walk + self.slow + rng.gauss(0.0, s.white_sd)
        if rng.random() < s.outlier_rate:
            log_noise += s.outlier_size
        return true_value * math.exp(log_noise)


def run_pairs(worker: SimulatedWorker, n: int, cand_value: float, rng: random.Random,
              base: list[float], cand: list[float]) -> None:
    """Append n interleaved pairs, order randomized per pair, as the orchestrator runs them."""
    for order in pair_orders(n, rng):
        values = {arm: worker.run(1.0 if arm == "base" else cand_value) for arm in order}
        base.append(values["base"])
        cand.append(values["cand"])


def gate_rule(max_repeats: int, alpha: float | None):
    def decide(worker, cand_value, rng):
        gate = SequentialGate(min_effect=MIN_EFFECT, repeats=5, max_repeats=max_repeats,
                              direction="max", alpha=alpha)
        base, cand = [], []
        while (batch := gate.next_batch(len(base))) > 0:
            run_pairs(worker, batch, cand_value, rng, base, cand)
            verdict = gate.decide(base, cand)
            if verdict.action != "more":
                break
        return verdict.action == "keep", len(base)
    return decide


def median_rule(pairs: int):
    def decide(worker, cand_value, rng):
        base, cand = [], []
        run_pairs(worker, pairs, cand_value, rng, base, cand)
        return statistics.median(cand) > statistics.median(base), pairs
    return decide


def simulate(rule, scenario: Scenario, cand_value: float, trials: int, seed: int):
    keeps, pairs = 0, 0
    for trial in range(trials):
        # Seeded per cell and trial: reproducible, and independent of which cells run.
        rng = random.Random(f"{seed}/{scenario.name}/{cand_value}/{trial}")
        kept, used = rule(SimulatedWorker(scenario, rng), cand_value, rng)
        keeps += kept
        pairs += used
    return keeps, pairs / trials


def upper95(hits: int, n: int) -> float:
    """One-sided 95% Wilson upper bound of a rate: how high the true rate could plausibly be."""
    z, p = 1.645, hits / n
    center = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (center + spread) / (1 + z * z / n)


def shares(gate: SequentialGate) -> str:
    return ", ".join(f"{look}: {a:.4f}" for look, a in gate.keep_alpha.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10000, help="simulated attempts per cell")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--alpha", type=float, default=None, help="gate alpha (default: gate's)")
    args = parser.parse_args(argv)
    n = args.trials

    rules = [
        ("single run, keep if better", median_rule(1)),
        ("median of 5, keep if better", median_rule(5)),
        ("gate, max_repeats=10", gate_rule(10, args.alpha)),
        ("gate, max_repeats=15 (default)", gate_rule(15, args.alpha)),
    ]
    g15, g10 = SequentialGate(alpha=args.alpha), SequentialGate(max_repeats=10, alpha=args.alpha)
    started = time.perf_counter()
    print(f"## Gate accuracy — {datetime.date.today().isoformat()}\n")
    print(f"{n} simulated attempts per cell, seed {args.seed}, metric direction max, "
          f"min_effect {MIN_EFFECT:.0%}. Gate alpha {g15.alpha}: keep-alpha per look "
          f"{{{shares(g15)}}} (max_repeats=10: {{{shares(g10)}}}); futility per interim look "
          f"{g15.futility_beta:.2f} ({g10.futility_beta:.2f}).\n")
    print("| scenario | rule | A/A false keep | (95% upper) | keep at +1% | +3% power "
          "| pairs A/A | pairs +3% |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        for label, rule in rules:
            fk, pairs_null = simulate(rule, scenario, 1.0, n, args.seed)
            edge, _ = simulate(rule, scenario, 1.0 + MIN_EFFECT, n, args.seed)
            pw, pairs_gain = simulate(rule, scenario, 1.0 + GAIN, n, args.seed)
            print(f"| {scenario.name} | {label} | {fk / n:.2%} | {upper95(fk, n):.2%} | "
                  f"{edge / n:.1%} | {pw / n:.1%} | {pairs_null:.1f} | {pairs_gain:.1f} |",
                  flush=True)
    print()
    for scenario in SCENARIOS:
        print(f"- {scenario.name}: {scenario.detail}.")
    print("- pairs = pairs per arm (each pair is one base run and one candidate run); all rules "
          "run interleaved pairs in randomized order on the same simulated worker.")
    print(f"- keep at +1%: true effect exactly min_effect; the gate guarantees <= alpha "
          f"({g15.alpha:.1%}) there.")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
