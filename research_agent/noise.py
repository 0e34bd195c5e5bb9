"""How noisy one A/B pair is, and so the smallest effect the gate can keep.

Before any experiment the only estimate is the baseline's CV over unpaired runs: a pair's log
ratio then varies by about √2 × CV. Once experiments ran, their own pairs say it directly — and
usually far less pessimistically, since pairing cancels slow drift. `paired_noise` pools the
spread of every experiment's per-pair log ratios around that experiment's own median; the plan's
advice and the report use it as soon as there are pairs, and say which estimate they used.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .gate import DEFAULT_ALPHA as ALPHA  # the gate's false-keep budget, for the "how many pairs" estimate

MIN_PAIRS = 3  # an experiment with fewer pairs says little about the spread


@dataclass
class Noise:
    sigma: float  # standard deviation of one pair's log ratio
    how: str  # where it comes from, for the reader
    paired: bool
    pairs: int = 0
    experiments: int = 0


def unpaired(cv: float) -> Noise:
    return Noise(math.sqrt(2) * abs(cv), "√2 × the baseline CV, from unpaired runs", paired=False)


def paired_noise(samples: dict[str, tuple[list[float], list[float]]]) -> Noise | None:
    """Pooled spread of the per-pair log ratios, each experiment around its own median; None without pairs."""
    squares, dof, pairs, used = 0.0, 0, 0, 0
    for base, cand in samples.values():
        ratios = [math.log(c / b) for b, c in zip(base, cand) if b > 0 and c > 0]
        if len(ratios) < MIN_PAIRS:
            continue
        center = statistics.median(ratios)
        squares += sum((r - center) ** 2 for r in ratios)
        dof += len(ratios) - 1
        pairs += len(ratios)
        used += 1
    if not used or dof <= 0:
        return None
    return Noise(math.sqrt(squares / dof), f"paired, from {pairs} pairs in {used} experiment{'s' if used != 1 else ''}",
                 paired=True, pairs=pairs, experiments=used)


def base_vs_base(first: list[float], second: list[float]) -> Noise:
    """One worker's noise from runs of one build in pairs: root mean square of log(second / first).

    Nothing changed, so the log ratios' center is 0 by construction and no degree of freedom goes
    to estimating it (the noisy-worker check has only a few pairs). ValueError without positive
    values."""
    if len(first) != len(second) or not first:
        raise ValueError("base-vs-base runs must come in pairs")
    if not all(math.isfinite(x) and x > 0 for x in [*first, *second]):
        raise ValueError("relative noise needs finite, positive metric values")
    ratios = [math.log(b / a) for a, b in zip(first, second)]
    return Noise(math.sqrt(sum(r * r for r in ratios) / len(ratios)), f"base vs base, {len(ratios)} pairs of one build",
                 paired=True, pairs=len(ratios), experiments=0)


def best_estimate(cv: float | None, samples: dict[str, tuple[list[float], list[float]]]) -> Noise | None:
    return paired_noise(samples) or (unpaired(cv) if isinstance(cv, (int, float)) and math.isfinite(cv) else None)


def pairs_note(noise: Noise, min_effect: float, repeats: int, max_repeats: int) -> str:
    """Rough pairs the gate needs to keep an effect of twice min_effect (80% power)."""
    if min_effect <= 0:
        return "min_effect is 0: any significant improvement is kept."
    sigma = noise.sigma
    z = statistics.NormalDist().inv_cdf(1 - ALPHA / 2) + statistics.NormalDist().inv_cdf(0.8)
    target = 2 * min_effect
    needed = max(1, math.ceil((z * sigma / min_effect) ** 2))
    reach = min_effect + z * sigma / math.sqrt(max_repeats)
    head = (f"Noise floor: one A/B pair varies by about {sigma:.2%} ({noise.how}) against "
            f"min_effect {min_effect:.2%}.")
    if needed <= repeats:
        return f"{head} The gate should settle a {target:+.1%} effect at its first look ({repeats} pairs)."
    if needed <= max_repeats:
        return (f"{head} Expect about {needed} pairs per hypothesis to settle a {target:+.1%} effect "
                f"(up to max_repeats = {max_repeats}).")
    return (f"{head} The noise is high for this min_effect: settling a {target:+.1%} effect would take "
            f"about {needed} pairs, more than max_repeats = {max_repeats}, so only effects above about "
            f"{reach:+.1%} are likely to be kept. Consider raising experiments.max_repeats, a longer "
            f"benchmark, or a quieter machine (fixed CPU frequency, pinned cores).")


def smallest_keepable(noise: Noise, min_effect: float, max_repeats: int) -> float:
    """About the smallest effect the gate keeps at max_repeats pairs (80% power)."""
    z = statistics.NormalDist().inv_cdf(1 - ALPHA / 2) + statistics.NormalDist().inv_cdf(0.8)
    return max(min_effect, 0.0) + z * noise.sigma / math.sqrt(max(1, max_repeats))
