"""Gate accuracy on simulated benchmarks with known truth.

For each noise scenario and each true effect (none = A/A, exactly min_effect = +1%, +2% and a +3%
gain) this runs many simulated optimization attempts through the real SequentialGate loop
(next_batch / decide, exactly as the orchestrator drives it) and through the two rules used in the
field: "single run, keep if better" and "median of 5, keep if better". Every rule gets the same
per-trial seeds, the same simulated worker and interleaved pairs in randomized order (the field
rules get this for free here; run blocked, A A A then B B B, drift would bias them further).
Metric direction is `max`.

Noise is multiplicative (log-normal): run k of the whole A/B sequence measures
    true_value * exp(drift(k) + slow(k) + white_k)
so drift and slow components hit A and B alike except for the part that changes between runs.

The product requirement: A/A false keeps <= 1% (CV 2%, and CV 5% with drift); power >= 90% for a
true +3% at CV 2% within <= 10 pairs per arm.

Usage: python benchmarks/gate_accuracy.py [--trials N] [--aa-trials N] [--seed S] [--alpha A]
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

from research_agent.gate import DEFAULT_ALPHA, GUARD_ALPHA, HOLDOUT_ALPHA, Bound, SequentialGate, pair_orders  # noqa: E402

GAIN = 0.03
SMALL_GAIN = 0.02
MIN_EFFECT = 0.01
WITHIN = 10  # the requirement's pair budget per arm


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

    def state(self) -> float:
        """The machine's drift and slow state at the last run (what a metric of the same run shares)."""
        return self.walk + self.slow

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


def gate_rule(max_repeats: int, alpha: float | None, futility: bool = True):
    """The real gate loop. futility=False ignores interim discards (futility is the only
    reason for one), to show what futility stopping costs."""
    def decide(worker, cand_value, rng):
        gate = SequentialGate(min_effect=MIN_EFFECT, repeats=5, max_repeats=max_repeats,
                              direction="max", alpha=alpha)
        base, cand = [], []
        while (batch := gate.next_batch(len(base))) > 0:
            run_pairs(worker, batch, cand_value, rng, base, cand)
            verdict = gate.decide(base, cand)
            if verdict.action == "discard" and not futility and len(base) < max_repeats:
                continue
            if verdict.action != "more":
                break
        return verdict.action == "keep", len(base)
    return decide


@dataclass(frozen=True)
class GuardModel:
    """A guard metric measured in the same runs: its bound, and how the run's noise reaches it."""
    bound: Bound
    white_sd: float   # its own per-run noise (log scale)
    shared: float     # how much of the worker's drift / slow state it shares (1: all of it)
    label: str


GUARDS = [
    GuardModel(Bound("rss_mb", "min", 0.05), 0.005, 0.0, "rss_mb, bound 5%: memory, sd 0.5% per run"),
    GuardModel(Bound("mbps", "max", 0.02), 0.02 / math.sqrt(2), 1.0,
               "throughput of another kernel in the same runs, bound 2%: the worker's slow state and "
               "white sd 1.41%, like the main metric in (c)"),
]


def guarded_rule(guards: list[GuardModel], guard_truth: float = 1.0, holdout: float | None = None,
                 holdout_bound: float = 0.0):
    """The real gate loop with guards in decide() (each guard's true ratio cand / base is
    guard_truth), then, when `holdout` is a true ratio, a holdout benchmark on the same worker
    through the gate's non-inferiority test at HOLDOUT_ALPHA. Guard noise comes from its own random
    stream, so with and without guards the main metric sees exactly the same runs."""
    def decide(worker, cand_value, rng):
        gate = SequentialGate(min_effect=MIN_EFFECT, repeats=5, max_repeats=15, direction="max",
                              guards=[g.bound for g in guards])
        grng = random.Random(hash(rng.getstate()))  # seeded from the trial, without drawing from its stream
        base, cand = [], []
        values = {g.bound.name: ([], []) for g in guards}
        while (batch := gate.next_batch(len(base))) > 0:
            for order in pair_orders(batch, rng):
                for arm in order:
                    is_cand = arm == "cand"
                    (cand if is_cand else base).append(worker.run(cand_value if is_cand else 1.0))
                    for g in guards:
                        log = g.shared * worker.state() + grng.gauss(0.0, g.white_sd)
                        values[g.bound.name][is_cand].append(math.exp(log) * (guard_truth if is_cand else 1.0))
            verdict = gate.decide(base, cand, values)
            if verdict.action != "more":
                break
        kept = verdict.action == "keep"
        if kept and holdout is not None:
            test = gate.non_inferiority(Bound("holdout", "max", holdout_bound), HOLDOUT_ALPHA)
            h_base, h_cand = [], []
            while (batch := gate.next_batch(len(h_base))) > 0:
                run_pairs(worker, batch, holdout, rng, h_base, h_cand)
                check = test.assess(h_base, h_cand)
                if check.status != "open":
                    break
            kept = check.status == "pass"
        return kept, len(base)
    return decide


def guard_section(n: int, n_aa: int, seed: int) -> None:
    scenarios = [SCENARIOS[0], SCENARIOS[2]]
    print(f"\n## Guards and holdout\n\nGuards: non-inferiority on the same pairs at {GUARD_ALPHA:.0%} per guard "
          f"(spent over the looks like the main gate); holdout at {HOLDOUT_ALPHA:.0%}, bound 0. "
          f"{n} attempts per cell ({n_aa} per A/A cell). Power loss = keeps at +3% without guards minus "
          f"keeps with them, on the very same main-metric runs.\n")
    print("| scenario | guards | A/A false keep (95% upper) | +3% power, no guards | with guards | power loss "
          "| kept, guard at its bound | kept, guard at 2x bound |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for scenario in scenarios:
        plain, _, _ = simulate(gate_rule(15, None), scenario, 1.0 + GAIN, n, seed)
        for chosen in ([GUARDS[0]], [GUARDS[1]], GUARDS):
            names = " + ".join(g.bound.name for g in chosen)
            fk, _, _ = simulate(guarded_rule(chosen), scenario, 1.0, n_aa, seed)
            power, _, _ = simulate(guarded_rule(chosen), scenario, 1.0 + GAIN, n, seed)
            edge = []
            for times in (1, 2):  # every chosen guard regressed by `times` x its bound
                truth = 1.0 - times * chosen[0].bound.max_regression if chosen[0].bound.direction == "max" \
                    else 1.0 + times * chosen[0].bound.max_regression
                kept, _, _ = simulate(guarded_rule(chosen[:1], truth), scenario, 1.0 + GAIN, n, seed)
                edge.append(kept / n)
            print(f"| {scenario.name} | {names} | {fk / n_aa:.2%} ({upper95(fk, n_aa):.2%}) | {plain / n:.1%} | "
                  f"{power / n:.1%} | {100 * (plain - power) / n:.1f} points | {edge[0]:.1%} ({chosen[0].bound.name}) | "
                  f"{edge[1]:.1%} |", flush=True)
    print("\n| scenario | holdout true effect (main +3%) | kept |\n|---|---|---:|")
    for scenario in scenarios:
        for truth, label in ((1.0, "none: the change only helps the visible input (A/A on the holdout)"),
                             (0.8, "-20%: special-cased, slower elsewhere"), (1.0 + GAIN, "+3%: generalizes")):
            kept, _, _ = simulate(guarded_rule([], holdout=truth), scenario, 1.0 + GAIN, n, seed)
            print(f"| {scenario.name} | {label} | {kept / n:.1%} |", flush=True)
    for g in GUARDS:
        print(f"- {g.bound.name}: {g.label}.")
    print(f"- A/A false keep with guards: guards and the holdout only remove keeps, so the main gate's "
          f"<= {DEFAULT_ALPHA:.0%} bound holds as it is (intersection-union: every test must pass).")


def median_rule(pairs: int):
    def decide(worker, cand_value, rng):
        base, cand = [], []
        run_pairs(worker, pairs, cand_value, rng, base, cand)
        return statistics.median(cand) > statistics.median(base), pairs
    return decide


def simulate(rule, scenario: Scenario, cand_value: float, trials: int, seed: int):
    """(keeps, keeps within WITHIN pairs, mean pairs per arm) over the trials."""
    keeps, early, pairs = 0, 0, 0
    for trial in range(trials):
        # Seeded per cell and trial: reproducible, and independent of which cells run.
        rng = random.Random(f"{seed}/{scenario.name}/{cand_value}/{trial}")
        kept, used = rule(SimulatedWorker(scenario, rng), cand_value, rng)
        keeps += kept
        early += kept and used <= WITHIN
        pairs += used
    return keeps, early, pairs / trials


def upper95(hits: int, n: int) -> float:
    """One-sided 95% Wilson upper bound of a rate: how high the true rate could plausibly be."""
    z, p = 1.645, hits / n
    center = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (center + spread) / (1 + z * z / n)


def _integrate(f, lo: float, hi: float, steps: int = 4000) -> float:
    """Simpson's rule."""
    h = (hi - lo) / steps
    return h / 3 * sum((1 if i in (0, steps) else 4 if i % 2 else 2) * f(lo + i * h)
                       for i in range(steps + 1))


def optimum_power(n: int, white_sd: float, gain: float, alpha: float) -> tuple[float, float]:
    """Power of the best fixed-n tests of "no change" at level alpha, Gaussian white noise:
    the mean of the d_i with the noise known (z-test: the Neyman-Pearson optimum, which no rule
    on n pairs can beat), and with the noise estimated from the same pairs (one-sided t-test)."""
    normal, df = statistics.NormalDist(), n - 1
    shift = math.log1p(gain) / (white_sd * math.sqrt(2) / math.sqrt(n))  # mean / standard error
    z_power = normal.cdf(shift - normal.inv_cdf(1 - alpha))
    log_norm = (df / 2) * math.log(2) + math.lgamma(df / 2)

    def over_chi2(g):  # E over V ~ chi2(df) of g(V)
        def density(v):
            return math.exp((df / 2 - 1) * math.log(v) - v / 2 - log_norm) if v > 0 else 0.0
        return _integrate(lambda v: g(v) * density(v), 0.0, df + 60 * math.sqrt(2 * df))

    lo, hi = 0.0, 20.0  # t quantile by bisection: P(Z / sqrt(V / df) > t) = alpha
    for _ in range(50):
        t = (lo + hi) / 2
        tail = over_chi2(lambda v: 1 - normal.cdf(t * math.sqrt(v / df)))
        lo, hi = (t, hi) if tail > alpha else (lo, t)
    t_power = over_chi2(lambda v: normal.cdf(shift - lo * math.sqrt(v / df)))
    return z_power, t_power


def spending(gate: SequentialGate) -> str:
    return ", ".join(f"{look}: {a:.3%}" for look, a in gate.spending.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10000, help="simulated attempts per cell")
    parser.add_argument("--aa-trials", type=int, default=None,
                        help="attempts per A/A cell (default 4 x trials: a tighter bound)")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--alpha", type=float, default=None, help="gate alpha (default: gate's)")
    parser.add_argument("--guards-only", action="store_true", help="only the guards and holdout tables")
    args = parser.parse_args(argv)
    n, n_aa = args.trials, args.aa_trials or 4 * args.trials
    if args.guards_only:
        started = time.perf_counter()
        guard_section(n, n_aa, args.seed)
        print(f"\n({time.perf_counter() - started:.0f} s)")
        return

    rules = [
        ("single run, keep if better", median_rule(1)),
        ("median of 5, keep if better", median_rule(5)),
        ("gate, max_repeats=10", gate_rule(10, args.alpha)),
        ("gate, max_repeats=15 (default)", gate_rule(15, args.alpha)),
        ("gate, max_repeats=15, no futility", gate_rule(15, args.alpha, futility=False)),
    ]
    g15, g10 = SequentialGate(alpha=args.alpha), SequentialGate(max_repeats=10, alpha=args.alpha)
    started = time.perf_counter()
    print(f"## Gate accuracy — {datetime.date.today().isoformat()}\n")
    print(f"{n} simulated attempts per cell ({n_aa} per A/A cell), seed {args.seed}, metric "
          f"direction max, min_effect {MIN_EFFECT:.0%}. Gate: keep = better than no change "
          f"(significance, alpha {g15.alpha:.1%} over all looks) and the lower bound of the "
          f"{g15.confidence:.0%} one-sided interval clears min_effect. Cumulative significance "
          f"budget per look {{{spending(g15)}}} (max_repeats=10: {{{spending(g10)}}}); later "
          f"looks calibrated exactly given the magnitudes. Futility per interim look "
          f"{g15.futility_beta:.2f} ({g10.futility_beta:.2f}).\n")
    print(f"| scenario | rule | A/A false keep | (95% upper) | keep at +1% | +2% power | +3% power "
          f"| +3% kept within {WITHIN} pairs | pairs A/A | pairs +3% |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        for label, rule in rules:
            fk, _, pairs_null = simulate(rule, scenario, 1.0, n_aa, args.seed)
            edge, _, _ = simulate(rule, scenario, 1.0 + MIN_EFFECT, n, args.seed)
            small, _, _ = simulate(rule, scenario, 1.0 + SMALL_GAIN, n, args.seed)
            pw, pw_early, pairs_gain = simulate(rule, scenario, 1.0 + GAIN, n, args.seed)
            print(f"| {scenario.name} | {label} | {fk / n_aa:.2%} | {upper95(fk, n_aa):.2%} | "
                  f"{edge / n:.1%} | {small / n:.1%} | {pw / n:.1%} | {pw_early / n:.1%} | "
                  f"{pairs_null:.1f} | {pairs_gain:.1f} |", flush=True)
    print()
    for scenario in SCENARIOS:
        print(f"- {scenario.name}: {scenario.detail}.")
    print("- pairs = pairs per arm (each pair is one base run and one candidate run); all rules "
          "run interleaved pairs in randomized order on the same simulated worker.")
    print(f"- A/A false keep: the gate guarantees <= alpha ({g15.alpha:.1%}) exactly, for any "
          f"noise, drift or outliers (the order coin is all it assumes). It spends nearly all of "
          f"it (10/1024 at 10 pairs, the rest at 15), so where the {g15.confidence:.0%} size "
          f"criterion rarely binds (noisy (b), outliers (d)) the true rate is just under 1%: the "
          f"estimate scatters around it (+-{100 * math.sqrt(0.01 / n_aa):.2f} points at {n_aa} "
          f"attempts) and its 95% upper bound lands above 1%. Holding that bound under 1% would "
          f"need alpha ~0.8% (7/1024 at 10 pairs): 4-8 points less +3% power within 10 pairs, "
          f"(c) then misses 90% (87%).")
    print(f"- keep at +1%: true effect exactly min_effect, a practical threshold now, not an "
          f"error rate: once the noise allows, the gate keeps it ~{1 - g15.confidence:.0%} of the "
          f"time per look.")
    z_power, t_power = optimum_power(WITHIN, SCENARIOS[0].white_sd, GAIN, g15.alpha)
    print(f"- Requirement \"power >= 90% for +3% at CV 2% within {WITHIN} pairs\": with purely "
          f"white CV 2% noise (a) no valid rule can reach it with A/A false keeps <= "
          f"{g15.alpha:.1%}. The Gaussian optimum at n={WITHIN} (mean of d, noise known, keep "
          f"above {statistics.NormalDist().inv_cdf(1 - g15.alpha):.2f} standard errors) has "
          f"power {z_power:.1%}; estimating the noise from the same {WITHIN} pairs (t-test) "
          f"gives {t_power:.1%}, and the distribution-free signed-rank test, which must also "
          f"hold under drift and outliers, gives the (a) max_repeats=10 row. With part of the "
          f"noise slow (c), pairing removes it and the requirement is met.")
    guard_section(n, n_aa, args.seed)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
