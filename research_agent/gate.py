"""Keep/discard gate for interleaved A/B benchmarks.

Method. Base (A) and candidate (B) run in pairs on the same worker, the order inside each pair
randomized. Pair i gives d_i = log(B_i / A_i), negated for `min` metrics so positive always means
better. The estimate is Hodges–Lehmann (median of the Walsh averages (d_i + d_j) / 2, i <= j);
the interval is the distribution-free Wilcoxon signed-rank interval: order statistics of the Walsh
averages, cut at the exact null distribution of the signed-rank statistic (dynamic program up to
60 pairs, normal approximation above). Effects are reported as relative, exp(x) - 1; for `min`
metrics that is the speedup A/B - 1.

Why. Randomizing the order inside a pair makes the sign of each pair's noise a fair coin whatever
noise, drift or outliers do to the magnitudes, which is all the signed-rank interval assumes: its
coverage holds exactly even at 5 pairs (a percentile bootstrap under-covers there) and one wild run
moves it by at most one rank. The price of exactness: n pairs cannot give a bound beyond confidence
1 - 2**-n, so 5 pairs can never support a 99% claim.

Error control. Pairs come in looks at repeats, 2*repeats, ..., max_repeats pairs; decide() runs
once per look. Keep when the lower bound clears min_effect. The false-keep budget `alpha` is split
over the looks in proportion to their pairs (Bonferroni; a look too small to use its share gets
none), so P(keep | true effect <= min_effect) <= alpha over all looks together, whatever the noise
or drift, assuming only the sign symmetry above. At interim looks the gate also discards for
futility when an upper bound at 1 - FUTILITY_BETA / (interim looks) is below min_effect: that adds
no keeps and, for true effects >= min_effect, costs at most FUTILITY_BETA of power (none measured
at +2% or +3%). Undecided at max_repeats means discard. Measured rates: benchmarks/gate_accuracy.py.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from dataclasses import dataclass
from functools import lru_cache

# Total one-sided false-keep risk across all looks, and the futility budget (power it may cost).
# Chosen with benchmarks/gate_accuracy.py: A/A false keeps stay <= 0.6% in every scenario
# there (worst: CV 5% + drift), then power is as high as that allows.
DEFAULT_ALPHA = 0.015
FUTILITY_BETA = 0.20
EXACT_MAX_PAIRS = 60

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
class Verdict:
    action: str           # "keep" | "discard" | "more"
    effect: Effect | None
    reason: str           # one short human line


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _split_alpha(alpha: float, looks: list[int]) -> dict[int, float]:
    """Bonferroni split of alpha over the looks, each share proportional to the look's pairs.

    n pairs cannot support a bound beyond confidence 1 - 2**-n, so looks too small for their
    share get none and the rest split the whole budget. (If the smallest look can use its share,
    every larger look can too.)
    """
    usable = sorted(looks)
    while usable and 2.0 ** -usable[0] > alpha * usable[0] / sum(usable):
        usable.pop(0)
    return {n: alpha * n / sum(usable) if n in usable else 0.0 for n in looks}


class SequentialGate:
    """Decides keep / discard / more from paired samples, looking once per planned look."""

    def __init__(self, min_effect: float = 0.01, repeats: int = 5, max_repeats: int = 15,
                 direction: str = "max", alpha: float | None = None):
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
        self.looks = list(range(repeats, max_repeats, repeats)) + [max_repeats]
        self.keep_alpha = _split_alpha(alpha, self.looks)  # look (pairs) -> its share of alpha
        if not any(self.keep_alpha.values()):
            raise ValueError(f"max_repeats={max_repeats} pairs cannot give a {1 - alpha:.1%} "
                             f"bound; need at least {math.ceil(math.log2(1 / alpha))} pairs")
        interim = len(self.looks) - 1  # the last look needs no futility rule: undecided = discard
        self.futility_beta = FUTILITY_BETA / interim if interim else 0.0

    def next_batch(self, n_done: int) -> int:
        """Pairs to run before the next look; 0 once max_repeats pairs are done."""
        return next((look - n_done for look in self.looks if look > n_done), 0)

    def _look_alpha(self, n: int) -> float:
        # A look that came back short (failed pairs) still spends only its own share.
        look = next((look for look in self.looks if look >= n), self.looks[-1])
        return self.keep_alpha[look]

    def decide(self, base: list[float], cand: list[float]) -> Verdict:
        """Call once per completed batch: the error control counts looks."""
        n, max_n, target = len(base), self.looks[-1], _pct(self.min_effect)
        if n == 0 and not cand:
            return Verdict("more", None, "no pairs yet")
        alpha = self._look_alpha(n)
        # A look that cannot keep reports the futility interval it decides with.
        report_alpha = alpha or self.futility_beta or max(self.keep_alpha.values())
        effect = paired_effect(base, cand, self.direction, 1 - report_alpha)
        lower, upper = effect.ci
        if alpha and lower > self.min_effect:
            return Verdict("keep", effect, f"lower bound {_pct(lower)} clears min_effect {target} "
                                           f"(n={n} pairs, {effect.confidence:.1%} one-sided)")
        if n >= max_n:
            return Verdict("discard", effect, f"undecided at max {max_n} pairs: lower bound "
                                              f"{_pct(lower)} does not clear min_effect {target}")
        if self.futility_beta:
            # A riskier upper bound is fine here: stopping early only costs power, never keeps.
            futile = paired_effect(base, cand, self.direction, 1 - self.futility_beta).ci[1]
            if futile < self.min_effect:
                return Verdict("discard", effect,
                               f"futile: {1 - self.futility_beta:.0%} upper bound {_pct(futile)}"
                               f" is below min_effect {target} (n={n} pairs)")
        return Verdict("more", effect, f"interval [{_pct(lower)}, {_pct(upper)}] "
                                       f"({effect.confidence:.1%} each side) straddles min_effect "
                                       f"{target} (n={n} pairs)")


def summarize(samples: list[float]) -> dict:
    """Median, coefficient of variation (sample stdev / mean) and count of one arm's samples."""
    if not samples:
        return {"median": None, "cv": None, "samples": 0}
    if len(samples) == 1:
        return {"median": samples[0], "cv": 0.0, "samples": 1}
    mean = statistics.fmean(samples)
    cv = statistics.stdev(samples) / abs(mean) if mean else None  # undefined around zero
    return {"median": statistics.median(samples), "cv": cv, "samples": len(samples)}
