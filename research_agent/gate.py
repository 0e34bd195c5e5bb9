"""Keep/discard gate for interleaved A/B benchmarks.

Method. Base (A) and candidate (B) run in pairs on the same worker, the order inside each pair
randomized. Pair i gives d_i = log(B_i / A_i), negated for `min` metrics so positive always means
better. The estimate is Hodges–Lehmann (median of the Walsh averages (d_i + d_j) / 2, i <= j);
intervals are distribution-free Wilcoxon signed-rank intervals: order statistics of the Walsh
averages, cut at the exact null distribution of the signed-rank statistic (dynamic program up to
60 pairs, normal approximation above). Effects are reported as relative, exp(x) - 1; for `min`
metrics that is the speedup A/B - 1.

Why. Randomizing the order inside a pair makes the sign of each pair's noise a fair coin whatever
noise, drift or outliers do to the magnitudes, which is all the signed-rank procedure assumes: its
error rates hold exactly even at 5 pairs (a percentile bootstrap under-covers there) and one wild
run moves a bound by at most one rank. The price of exactness: n pairs cannot give a bound beyond
confidence 1 - 2**-n, so fewer than 7 pairs can never support a 99% claim.

Decision: two criteria, both required for a keep (and the checks must have passed before).
1. Significance, "better than no change" — this is what controls false keeps of A/A changes.
   The strict one-sided lower bound (confidence 1 - alpha_look) must be > 0. Under no real change
   the signs of the d_i are fair coins given their magnitudes, so P(keep | no change) <= alpha
   (default 1%) over all looks together, for any noise, drift or outliers (exactly up to 60 pairs).
2. Practical size, "by at least min_effect". The lower bound of the one-sided PRACTICAL_CONFIDENCE
   (80%) interval must clear min_effect. That interval (80% each side) is the reported Effect.ci,
   so "the interval's lower bound clears min_effect" is literally true of the reported interval.
   min_effect is a practical threshold, not an error rate: once the data suffice, a true gain of
   exactly min_effect is kept ~20% of the time at a single look (27% over the default looks, 37%
   with max_repeats 30, measured at low noise) and a gain of half of it practically never.
(With a negative min_effect, criterion 1 tests "better than min_effect" instead of "> 0".)

Sequential looks. Pairs come in looks at repeats, 2*repeats, ..., max_repeats pairs; decide() runs
once per look. The significance budget is spent along A(n) = alpha * sqrt(min(1, n / S)), with
S = max(min(max_repeats, SPEND_BY_PAIRS), SPEND_BY_FRACTION * max_repeats) = max(min(N, 10), 2N/3).
With the default looks 5, 10, 15 the whole budget is available at 10 pairs, so that look is exactly
as strong as a fixed 10-pair test: the product wants its power within 10 pairs, and 5 pairs cannot
claim 99% at all (2**-5 > 1%), so the first possible keep is at 10. A larger max_repeats moves S
out so that its later looks still have budget; the square root lets a first look of 7-9 pairs keep.
Each look rejects "no change" when at most c Walsh averages are <= 0 (its strict lower bound is
then > 0). The first look that can reject takes the largest c with exact null probability
<= A(n). Each later look is calibrated exactly, conditionally on the observed magnitudes |d_i|
(under no change they say nothing about the signs): a dynamic program over the sign coins gives
P(this look rejects and the previous rejecting look did not), and c is the largest value that keeps
the running sum of those probabilities <= A(n). Because consecutive looks overlap, even the small
remainder a discrete earlier look leaves (1% - 10/1024 at 10 pairs) buys a useful critical value
at 15 pairs, where a Bonferroni split would give almost nothing. The running sum bounds
P(any look rejects | magnitudes), hence P(keep | no change) <= alpha. Ties and zero differences
only make a rejection rarer: a Walsh average of exactly 0 counts against it, where a tiny jitter
(for which the bound is exact) would make it positive or negative. So the bound holds for discrete
metrics too.

Futility. At interim looks the gate discards when the optimistic upper bound at one-sided
1 - FUTILITY_BETA / (interim looks) is below min_effect: that adds no keeps and, for true effects
>= min_effect, costs at most FUTILITY_BETA of power (none measurable at +2% or +3%), while A/A
changes stop after 11 instead of 15 pairs on average. Undecided at max_repeats means discard.

Guards and the holdout. A guard is another metric of the same runs with a bound: the candidate may
make it at most max_regression worse. In the same pairs, z_i = d_i - log(bound) and the guard is
shown within its bound when the same sequential signed-rank test rejects "center of z <= 0"
(NonInferiority: critical values per look, budget GUARD_ALPHA spent along the same looks, later
looks calibrated given the magnitudes). A keep needs the main criteria and every guard shown
within at that look; a guard whose optimistic bound is already beyond discards; one not yet shown
asks for more pairs, and is a discard at max_repeats. The holdout is the same test on its own pairs
of another benchmark, run after the main gate keeps, at HOLDOUT_ALPHA. How the errors combine:
a keep needs every test to pass (an intersection-union test), so each error is bounded by its own
test's level, with no multiplicity penalty: P(keep | no change) <= alpha still (guards only
remove keeps); P(keep | a guard regressed exactly at its bound) <= GUARD_ALPHA, and less beyond
it; P(keep | the holdout does not gain, bound 0) <= HOLDOUT_ALPHA, exactly, since the holdout is
then an A/A. At a non-zero bound the guard's error rate is exact for paired log-ratios symmetric
about their center (the order coin alone guarantees symmetry only about 0).
Measured rates: benchmarks/gate_accuracy.py.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

# Total one-sided risk of keeping a change that is no change, over all looks together.
DEFAULT_ALPHA = 0.01
# One-sided confidence of the reported interval whose lower bound must clear min_effect.
# Chosen with benchmarks/gate_accuracy.py: at 80% the size criterion costs < 0.5 point of power at
# +3% (CV 2%; 90% would cost 1.5 points and drop scenario (c) below 90% within 10 pairs), while a
# true gain of exactly min_effect is kept ~20% of the time per look.
PRACTICAL_CONFIDENCE = 0.80
# The significance budget is fully available after max(min(max_repeats, SPEND_BY_PAIRS),
# SPEND_BY_FRACTION * max_repeats) pairs: at 10 by default (max_repeats 15), where the product
# wants power, while a larger max_repeats keeps real budget for its later looks (at 30: full by 20).
SPEND_BY_PAIRS = 10
SPEND_BY_FRACTION = 2 / 3
# Power that futility stopping may cost at most, split over the interim looks. 0.3 costs no
# measurable power at +2% / +3% (the benchmark's "no futility" rows) and saves ~4 pairs per A/A.
FUTILITY_BETA = 0.30
EXACT_MAX_PAIRS = 60
# One-sided risk, per guard, of keeping a change whose regression there is exactly at the bound
# (less the further beyond): a bound is a practical tolerance, like min_effect, so it is shown at the
# same 80% as the size criterion, but spent over the looks. benchmarks/gate_accuracy.py: at 5% a
# same-run throughput guard at a 2% bound cost 15 points of +3% power; at 20%, under 2.
GUARD_ALPHA = 0.20
# The holdout's: with its default bound 0 the candidate must be shown better on inputs it never saw,
# and a change that only helps the visible input (no change on the holdout, an exact A/A there)
# passes with probability <= 5%.
HOLDOUT_ALPHA = 0.05

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf(?:inity)?|nan)"
_METRIC_LINE = re.compile(r"^\s*METRIC\s+(.*)$", re.MULTILINE)
_KEY_VALUE = re.compile(r"([^\s=]+)\s*=\s*(\S+)")


def _finite_or_none(text: str) -> float | None:
    if not re.fullmatch(_FLOAT, text.strip(), re.IGNORECASE):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _median_of_values(texts: list[str]) -> float | None:
    """Median of the parsed values; None if there are none or any is not a finite number,
    because a benchmark that printed nan/inf or garbage is a failed run, not a data point."""
    values = [_finite_or_none(t) for t in texts]
    if not values or any(v is None for v in values):
        return None
    return statistics.median(values)


def parse_metric(output: str, name: str, regex: str | None = None) -> float | None:
    """Value of metric `name` in a benchmark's output, or None when the run gave no usable value.

    Default format: lines `METRIC name=value`, several `k=v` pairs allowed on one line. With
    `regex`, group 1 of every match (the whole match if the regex has no group). A value reported
    several times gives the median of those values.
    """
    if regex is not None:
        found = [m.group(1) if m.re.groups else m.group(0)
                 for m in re.finditer(regex, output, re.MULTILINE)]
        return _median_of_values(found)
    found = [value for line in _METRIC_LINE.findall(output)
             for key, value in _KEY_VALUE.findall(line) if key == name]
    return _median_of_values(found)


def parse_metrics(output: str) -> dict[str, float | None]:
    """Every `METRIC k=v` in a benchmark's output: the median per name, None for a name with any
    value that is not a finite number."""
    found: dict[str, list[str]] = {}
    for line in _METRIC_LINE.findall(output):
        for key, value in _KEY_VALUE.findall(line):
            found.setdefault(key, []).append(value)
    return {key: _median_of_values(values) for key, values in found.items()}


def pair_orders(n_pairs: int, rng: random.Random) -> list[tuple[str, str]]:
    """Run order for each pair, a fair coin per pair: drift then hits A and B symmetrically."""
    return [("base", "cand") if rng.random() < 0.5 else ("cand", "base") for _ in range(n_pairs)]


@dataclass(frozen=True)
class Effect:
    median: float            # relative effect, positive = better (Hodges–Lehmann)
    ci: tuple[float, float]  # relative; each bound holds with one-sided `confidence`
    n: int                   # pairs used
    confidence: float        # one-sided confidence of each bound; the interval covers 2c - 1

    def to_dict(self) -> dict:
        # An unbounded side (too few pairs for the confidence) is written as null: valid JSON.
        lo, hi = (x if math.isfinite(x) else None for x in self.ci)
        return {"median": self.median, "ci": [lo, hi], "n": self.n,
                "confidence": self.confidence}


@lru_cache(maxsize=None)
def _signed_rank_cdf(n: int) -> tuple[float, ...]:
    """Exact P(T+ <= t), t = 0..n(n+1)/2, for the signed-rank statistic under fair-coin signs."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):  # counts[t] = subsets of ranks 1..rank summing to t
        for t in range(rank * (rank + 1) // 2, rank - 1, -1):
            counts[t] += counts[t - rank]
    cdf, running, total = [], 0, 2 ** n
    for c in counts:
        running += c
        cdf.append(running / total)
    return tuple(cdf)


@lru_cache(maxsize=None)
def _walsh_trim(n: int, alpha: float) -> int:
    """k such that the k-th smallest Walsh average is a lower bound failing with prob <= alpha.

    P(W_(k) > true effect) = P(T+ <= k - 1), so k counts the t with P(T+ <= t) <= alpha.
    0 means no finite bound exists at this alpha (2**-n > alpha).
    """
    if n <= EXACT_MAX_PAIRS:
        return sum(1 for p in _signed_rank_cdf(n) if p <= alpha)
    mean, sd = n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    return max(0, math.floor(mean + statistics.NormalDist().inv_cdf(alpha) * sd - 0.5) + 1)


def _log_ratios(base: list[float], cand: list[float], direction: str) -> list[float]:
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
    if len(base) != len(cand):
        raise ValueError(f"base and cand must be paired: {len(base)} vs {len(cand)} values")
    if not base:
        raise ValueError("no pairs to compare")
    if not all(math.isfinite(x) and x > 0 for x in [*base, *cand]):
        raise ValueError("relative effects need finite, positive metric values")
    sign = 1.0 if direction == "max" else -1.0
    return [sign * math.log(b / a) for a, b in zip(base, cand)]


def _relative(x: float) -> float:
    return math.expm1(x) if x != math.inf else math.inf


def paired_effect(base: list[float], cand: list[float], direction: str,
                  confidence: float) -> Effect:
    """Effect of cand over base from paired runs; each bound holds with one-sided `confidence`."""
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    d = _log_ratios(base, cand, direction)
    n = len(d)
    walsh = sorted((d[i] + d[j]) / 2 for i in range(n) for j in range(i, n))
    k = _walsh_trim(n, 1 - confidence)
    lower = walsh[k - 1] if k else -math.inf
    upper = walsh[len(walsh) - k] if k else math.inf
    return Effect(median=_relative(statistics.median(walsh)),
                  ci=(_relative(lower), _relative(upper)), n=n, confidence=confidence)


@dataclass(frozen=True)
class Bound:
    """A metric that must not regress by more than max_regression: a guard, or a holdout's metric.

    The regression is the metric's own relative change: for `max` the candidate must keep at least
    (1 - max_regression) of the base value, for `min` at most (1 + max_regression) times it.
    """
    name: str
    direction: str
    max_regression: float

    def __post_init__(self):
        if self.direction not in ("max", "min"):
            raise ValueError(f"{self.name}: direction must be 'max' or 'min', got {self.direction!r}")
        if not self.max_regression >= 0 or (self.direction == "max" and self.max_regression >= 1):
            raise ValueError(f"{self.name}: max_regression must be >= 0 (and < 1 for a max metric), "
                             f"got {self.max_regression}")

    @property
    def log_shift(self) -> float:
        """The bound on the log scale of d (positive = better): log(1 - m) for max, -log(1 + m) for min."""
        return math.log1p(-self.max_regression) if self.direction == "max" else -math.log1p(self.max_regression)

    @property
    def limit(self) -> float:
        """The allowed relative change of the metric itself: -m for max, +m for min."""
        return (-self.max_regression or 0.0) if self.direction == "max" else self.max_regression


def metric_change(effect: float, direction: str) -> float:
    """A gate-convention relative effect (positive = better) as the metric's own change B/A - 1."""
    if direction == "max" or not math.isfinite(effect):
        return effect if direction == "max" else (-1.0 if effect == math.inf else math.inf)
    return 1.0 / (1.0 + effect) - 1.0 if effect > -1 else math.inf


@dataclass(frozen=True)
class Check:
    """One guard's (or holdout's) non-inferiority verdict at one look, in the metric's own terms."""
    name: str
    status: str                    # "pass" (shown within its bound) | "fail" (shown beyond) | "open"
    change: float                  # median relative change of the metric, B/A - 1 (Hodges–Lehmann)
    interval: tuple[float, float]  # that change's interval, PRACTICAL_CONFIDENCE each side
    limit: float                   # the allowed change: -max_regression (max) / +max_regression (min)
    confidence: float | None       # one-sided confidence of the non-inferiority claim (when shown)
    n: int

    def describe(self) -> str:
        lo, hi = self.interval
        where = {"pass": "within", "fail": "beyond", "open": "not shown within"}[self.status]
        return (f"{self.name} {_pct(self.change)} [{_pct(lo)}, {_pct(hi)}] {where} its bound "
                f"{_pct(self.limit)}" + (f" at {self.confidence:.0%}" if self.status == "pass" else ""))

    def to_dict(self) -> dict:
        def finite(x):
            return x if math.isfinite(x) else None
        return {"name": self.name, "status": self.status, "change": finite(self.change),
                "interval": [finite(x) for x in self.interval], "limit": self.limit,
                "confidence": self.confidence, "n": self.n}


class NonInferiority:
    """Sequential one-sided test that a paired metric regressed by no more than its bound.

    z_i = d_i - log_shift (d_i the pair's log-ratio, positive = better): the metric is within its
    bound when the center of z is > 0. Each look rejects "beyond the bound" exactly as the main
    gate rejects "no change" (signed-rank critical values, alpha spent along the same looks,
    later looks calibrated given the magnitudes), so P(pass at some look | regression exactly at
    the bound) <= alpha for paired log-ratios symmetric about their center, and less beyond it.
    A look fails the metric when even the optimistic bound at 1 - futility_beta lies beyond the
    bound; at the last look, not shown within counts as a failure (the caller decides).
    """

    def __init__(self, bound: Bound, looks: list[int], spend_by: float, alpha: float | None = None,
                 futility_beta: float = 0.0):
        self.bound, self.looks, self.spend_by = bound, list(looks), spend_by
        self.alpha = GUARD_ALPHA if alpha is None else alpha
        self.futility_beta = futility_beta

    def _spend(self, n: int) -> float:
        return self.alpha * math.sqrt(min(1.0, n / self.spend_by))

    def assess(self, base: list[float], cand: list[float]) -> Check:
        b = self.bound
        d = _log_ratios(base, cand, b.direction)
        z = [x - b.log_shift for x in d]
        strict, confidence = _sequential_lower_bound(z, self.looks, self._spend)
        effect = paired_effect(base, cand, b.direction, PRACTICAL_CONFIDENCE)
        status = "pass" if strict is not None and strict > 0 else "open"
        if status == "open" and self.futility_beta and len(d) < self.looks[-1]:
            optimistic = paired_effect(base, cand, b.direction, 1 - self.futility_beta).ci[1]
            if math.log1p(optimistic) < b.log_shift:
                status = "fail"
        elif status == "open" and math.log1p(effect.ci[1]) < b.log_shift:
            status = "fail"  # the reported interval lies wholly beyond the bound
        change = [metric_change(x, b.direction) for x in (effect.median, *effect.ci)]
        interval = (min(change[1:]), max(change[1:]))
        return Check(b.name, status, change[0], interval, b.limit, confidence if status == "pass" else None, len(d))


@dataclass(frozen=True)
class Verdict:
    action: str           # "keep" | "discard" | "more"
    effect: Effect | None
    reason: str           # one short human line
    checks: tuple[Check, ...] = ()  # the guards' verdicts at this look


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _null_level(n: int, c: int) -> float:
    """P(T <= c) for the signed-rank statistic of n pairs under fair-coin signs (0 for c < 0)."""
    if c < 0:
        return 0.0
    if n <= EXACT_MAX_PAIRS:
        cdf = _signed_rank_cdf(n)
        return cdf[min(c, len(cdf) - 1)]
    mean, sd = n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    return statistics.NormalDist().cdf((c + 0.5 - mean) / sd)


def _ranks(values: list[float]) -> list[int]:
    """Ranks 1..n of the values; ties broken by position (the limit of a tiny jitter)."""
    ranks = [0] * len(values)
    for rank, i in enumerate(sorted(range(len(values)), key=lambda i: (values[i], i)), start=1):
        ranks[i] = rank
    return ranks


def _shift(dist: np.ndarray, by: int, axis: int) -> np.ndarray:
    """dist moved `by` cells up along axis; mass past the last cell piles up there (a cap)."""
    if by == 0:
        return dist
    moved = np.zeros_like(dist)
    size = dist.shape[axis]
    keep = max(0, size - 1 - by)  # cells that land below the cap
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    src[axis], dst[axis] = slice(0, keep), slice(by, by + keep)
    moved[tuple(dst)] = dist[tuple(src)]
    src[axis], dst[axis] = slice(keep, size), size - 1
    moved[tuple(dst)] += dist[tuple(src)].sum(axis=axis)
    return moved


def _joint_null(z: list[float], n_prev: int, c_prev: int, c_max: int) -> np.ndarray:
    """P(T_n = t and T_prev > c_prev), t = 0..c_max, given the magnitudes |z|, signs fair coins.

    T_m is the signed-rank statistic of the first m values (sum of the ranks, among them, of the
    negative ones); n = len(z). A dynamic program over the pairs, both statistics capped.
    """
    rank_prev, rank_now = _ranks([abs(x) for x in z[:n_prev]]), _ranks([abs(x) for x in z])
    dist = np.zeros((c_prev + 2, c_max + 2))  # T_prev capped at c_prev + 1, T_n at c_max + 1
    dist[0, 0] = 1.0
    for i, rank in enumerate(rank_now):
        negative = _shift(dist, rank, 1)
        if i < n_prev:
            negative = _shift(negative, rank_prev[i], 0)
        dist = 0.5 * (dist + negative)  # exact: dyadic rationals
    return dist[c_prev + 1, :c_max + 1]


def _critical_values(z: list[float], looks: list[int], spend) -> list[tuple[int, int, float]]:
    """(n, c, bound) per look: the look rejects "no change" when at most c Walsh averages of z[:n]
    are <= 0 (c = -1: it cannot), and bound >= P(some look up to this one rejects) under
    fair-coin signs given the magnitudes; bound <= spend(n) at every look."""
    out, prev, bound = [], None, 0.0
    for n in looks:
        budget = spend(n)
        c_max = _walsh_trim(n, budget) - 1  # no look may exceed its marginal critical value
        if prev is None:
            c = c_max
            bound = _null_level(n, c)
        else:
            c = -1
            for t, p in enumerate(_joint_null(z[:n], prev[0], prev[1], c_max)):
                if bound + p > budget:
                    break
                bound, c = bound + float(p), t
        if c >= 0:
            prev = (n, c)
        out.append((n, c, bound))
    return out


def _sequential_lower_bound(z: list[float], planned: list[int], spend) -> tuple[float | None, float]:
    """Strict lower bound of z's center at this look (log scale), calibrated over the looks so far,
    and its one-sided confidence: the (c+1)-th smallest Walsh average, c the look's critical value.
    None when this look cannot reject "center <= 0" (too few pairs, or no budget left)."""
    n = len(z)
    looks = [look for look in planned if look < n] + [n]
    c = _critical_values(z, looks, spend)[-1][1]
    if c < 0:
        return None, 1 - _null_level(n, 0)
    walsh = sorted((z[i] + z[j]) / 2 for i in range(n) for j in range(i, n))
    return walsh[c], 1 - _null_level(n, c)


class SequentialGate:
    """Decides keep / discard / more from paired samples, looking once per planned look."""

    def __init__(self, min_effect: float = 0.01, repeats: int = 5, max_repeats: int = 15,
                 direction: str = "max", alpha: float | None = None, guards: Sequence[Bound] = (),
                 guard_alpha: float | None = None):
        if direction not in ("max", "min"):
            raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
        if not 1 <= repeats <= max_repeats:
            raise ValueError(f"need 1 <= repeats <= max_repeats, got {repeats}, {max_repeats}")
        alpha = DEFAULT_ALPHA if alpha is None else alpha
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
        if min_effect <= -1:
            raise ValueError(f"min_effect must be > -1, got {min_effect}")
        self.min_effect, self.direction, self.alpha = min_effect, direction, alpha
        self.confidence = PRACTICAL_CONFIDENCE
        self.looks = list(range(repeats, max_repeats, repeats)) + [max_repeats]
        if 2.0 ** -max_repeats > alpha:
            raise ValueError(f"max_repeats={max_repeats} pairs cannot show better than no change "
                             f"at {1 - alpha:.1%}; need at least "
                             f"{math.ceil(math.log2(1 / alpha))} pairs")
        self.spend_by = max(min(max_repeats, SPEND_BY_PAIRS), max_repeats * SPEND_BY_FRACTION)
        # Cumulative significance budget available at each look.
        self.spending = {look: self._spend(look) for look in self.looks}
        # Log-scale value "no change" means for criterion 1 (min_effect, if that is negative).
        self.null_shift = min(0.0, math.log1p(min_effect))
        interim = len(self.looks) - 1  # the last look needs no futility rule: undecided = discard
        self.futility_beta = FUTILITY_BETA / interim if interim else 0.0
        self.guard_alpha = GUARD_ALPHA if guard_alpha is None else guard_alpha
        if not 0 < self.guard_alpha < 0.5:
            raise ValueError(f"guard alpha must be in (0, 0.5), got {self.guard_alpha}")
        self.guards = [self.non_inferiority(bound) for bound in guards]

    def non_inferiority(self, bound: Bound, alpha: float | None = None) -> NonInferiority:
        """A test of `bound` on the same looks and spending shape as this gate (guards, holdout)."""
        return NonInferiority(bound, self.looks, self.spend_by, alpha or self.guard_alpha, self.futility_beta)

    def to_spec(self) -> dict:
        """Plain data that from_spec() turns back into an equal gate (for a job file)."""
        return {"min_effect": self.min_effect, "repeats": self.looks[0], "max_repeats": self.looks[-1],
                "direction": self.direction, "alpha": self.alpha, "guard_alpha": self.guard_alpha,
                "guards": [dataclasses.asdict(g.bound) for g in self.guards]}

    @classmethod
    def from_spec(cls, spec: dict) -> SequentialGate:
        return cls(spec["min_effect"], spec["repeats"], spec["max_repeats"], spec["direction"], spec.get("alpha"),
                   [Bound(**g) for g in spec.get("guards") or []], spec.get("guard_alpha"))

    def _spend(self, n: int) -> float:
        return self.alpha * math.sqrt(min(1.0, n / self.spend_by))

    def next_batch(self, n_done: int) -> int:
        """Pairs to run before the next look; 0 once max_repeats pairs are done."""
        return next((look - n_done for look in self.looks if look > n_done), 0)

    def significance(self, base: list[float], cand: list[float]) -> tuple[float | None, float]:
        """Criterion 1 at this look: (strict lower bound, its one-sided confidence), relative.

        The bound is None when this look cannot reject "no change" (too few pairs, or no budget
        left); the confidence is then the most that many pairs could give. A look that came back
        short (fewer pairs than planned) counts as a look at the pairs it has.
        """
        z = [x - self.null_shift for x in _log_ratios(base, cand, self.direction)]
        bound, confidence = _sequential_lower_bound(z, self.looks, self._spend)
        return (None if bound is None else _relative(bound + self.null_shift)), confidence

    def decide(self, base: list[float], cand: list[float],
               guards: Mapping[str, tuple[list[float], list[float]]] | None = None) -> Verdict:
        """Call once per completed batch: the error control counts looks.

        `guards` maps each guard's name to its (base, cand) values in the same pairs. A keep needs
        the main metric's keep and every guard shown within its bound at this look; a guard shown
        beyond its bound discards at once; a guard not yet shown within asks for more pairs.
        """
        verdict = self._decide_main(base, cand)
        if not self.guards or verdict.effect is None:
            return verdict
        missing = [g.bound.name for g in self.guards if g.bound.name not in (guards or {})]
        if missing:
            raise ValueError(f"no values for guard(s) {', '.join(missing)}")
        checks = tuple(g.assess(*guards[g.bound.name]) for g in self.guards)
        n, effect = len(base), verdict.effect
        failed = [c for c in checks if c.status == "fail"]
        if verdict.action == "discard":
            return dataclasses.replace(verdict, checks=checks)
        if failed:
            return Verdict("discard", effect, "; ".join(f"guard {c.describe()}" for c in failed)
                           + f" (n={n} pairs)", checks)
        if verdict.action != "keep":
            return dataclasses.replace(verdict, checks=checks)
        unshown = [c for c in checks if c.status != "pass"]
        if not unshown:
            within = ", ".join(f"{c.name} {_pct(c.change)}" for c in checks)
            return Verdict("keep", effect, f"{verdict.reason}; guards within bounds: {within}", checks)
        open_text = "; ".join(f"guard {c.describe()}" for c in unshown)
        if n >= self.looks[-1]:
            return Verdict("discard", effect, f"{open_text} at max {n} pairs", checks)
        return Verdict("more", effect, f"main metric would be kept, but {open_text} (n={n} pairs)", checks)

    def _decide_main(self, base: list[float], cand: list[float]) -> Verdict:
        n, max_n, target = len(base), self.looks[-1], _pct(self.min_effect)
        if n == 0 and not cand:
            return Verdict("more", None, "no pairs yet")
        effect = paired_effect(base, cand, self.direction, self.confidence)
        lower, upper = effect.ci
        strict, strict_conf = self.significance(base, cand)
        no_change = "no change" if self.null_shift == 0 else _pct(math.expm1(self.null_shift))
        significant = strict is not None and strict > math.expm1(self.null_shift)
        practical = lower > self.min_effect
        size = (f"lower bound {_pct(lower)} {'clears' if practical else 'does not clear'} "
                f"min_effect {target} ({self.confidence:.0%} one-sided)")
        if strict is None:
            claim = f"{n} pairs cannot show better than {no_change} at {1 - self.alpha:.1%}"
        else:
            claim = (f"{'' if significant else 'not '}better than {no_change} at {strict_conf:.1%} "
                     f"(bound {_pct(strict)})")
        if significant and practical:
            return Verdict("keep", effect, f"{size}; {claim} (n={n} pairs)")
        if n >= max_n:
            return Verdict("discard", effect, f"undecided at max {max_n} pairs: {size}; {claim}")
        if self.futility_beta:
            # A riskier upper bound is fine here: stopping early only costs power, never keeps.
            futile = paired_effect(base, cand, self.direction, 1 - self.futility_beta).ci[1]
            if futile < self.min_effect:
                return Verdict("discard", effect,
                               f"futile: {1 - self.futility_beta:.0%} upper bound {_pct(futile)}"
                               f" is below min_effect {target} (n={n} pairs)")
        if not practical:
            where = "straddles" if upper > self.min_effect else "is below"
            return Verdict("more", effect, f"interval [{_pct(lower)}, {_pct(upper)}] "
                                           f"({self.confidence:.0%} each side) {where} "
                                           f"min_effect {target}; {claim} (n={n} pairs)")
        return Verdict("more", effect, f"{size}, but {claim} (n={n} pairs)")


def summarize(samples: list[float]) -> dict:
    """Median, coefficient of variation (sample stdev / mean) and count of one arm's samples."""
    if not samples:
        return {"median": None, "cv": None, "samples": 0}
    if len(samples) == 1:
        return {"median": samples[0], "cv": 0.0, "samples": 1}
    mean = statistics.fmean(samples)
    cv = statistics.stdev(samples) / abs(mean) if mean else None  # undefined around zero
    return {"median": statistics.median(samples), "cv": cv, "samples": len(samples)}
