import itertools
import math
import random
import re

import pytest

from research_agent.gate import (
    DEFAULT_ALPHA,
    GUARD_ALPHA,
    PRACTICAL_CONFIDENCE,
    Bound,
    Effect,
    NonInferiority,
    SequentialGate,
    _critical_values,
    _joint_null,
    _signed_rank_cdf,
    _walsh_trim,
    pair_orders,
    metric_change,
    paired_effect,
    parse_metric,
    parse_metrics,
    summarize,
)


# --- parse_metric -------------------------------------------------------------------------------

def test_parse_single_metric_line():
    assert parse_metric("warming up\nMETRIC gflops=12.5\n", "gflops") == 12.5


def test_parse_several_metrics_on_one_line_and_spaces():
    out = "METRIC gflops=1.2 ms=30\n  METRIC  bytes = 4e3\n"
    assert parse_metric(out, "ms") == 30.0
    assert parse_metric(out, "gflops") == 1.2
    assert parse_metric(out, "bytes") == 4000.0


def test_parse_repeated_metric_gives_median():
    out = "METRIC ms=10\nMETRIC ms=50\nMETRIC ms=12\n"
    assert parse_metric(out, "ms") == 12.0


def test_parse_requires_exact_name_and_line_start():
    out = "METRIC msx=3\n# METRIC ms=4\nprefix METRIC ms=5\n"
    assert parse_metric(out, "ms") is None
    assert parse_metric(out, "msx") == 3.0


def test_parse_missing_metric_is_none_not_zero():
    assert parse_metric("", "ms") is None
    assert parse_metric("Segmentation fault\n", "ms") is None
    assert parse_metric("METRIC other=1\n", "ms") is None


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "abc", "1.2.3", "12ms"])
def test_parse_non_finite_or_garbage_is_none(value):
    assert parse_metric(f"METRIC ms={value}\n", "ms") is None


def test_parse_any_bad_repeat_fails_the_run():
    assert parse_metric("METRIC ms=10\nMETRIC ms=nan\n", "ms") is None


def test_parse_with_regex_takes_group_one_median():
    out = "time: 10.0 ms\ntime: 30.5 ms\ntime: 20 ms\nMETRIC ms=1\n"
    assert parse_metric(out, "ms", regex=r"time: ([\d.]+) ms") == 20.0
    assert parse_metric(out, "ms", regex=r"speed: ([\d.]+)") is None
    assert parse_metric("score nan\n", "s", regex=r"score (\S+)") is None


# --- pair_orders --------------------------------------------------------------------------------

def test_pair_orders_are_randomized_per_pair_and_seeded():
    orders = pair_orders(200, random.Random(1))
    assert len(orders) == 200
    assert set(orders) == {("base", "cand"), ("cand", "base")}
    assert 60 < orders.count(("base", "cand")) < 140
    assert orders == pair_orders(200, random.Random(1))


# --- exact signed-rank machinery ----------------------------------------------------------------

def test_signed_rank_distribution_matches_brute_force():
    n = 7
    sums = [sum(r for r, s in zip(range(1, n + 1), signs) if s)
            for signs in itertools.product([0, 1], repeat=n)]
    brute = [sum(1 for x in sums if x <= t) / 2 ** n for t in range(n * (n + 1) // 2 + 1)]
    assert _signed_rank_cdf(n) == pytest.approx(brute)


def test_critical_value_matches_published_table():
    # Classic two-sided 5% table: n=10 -> T = 8, n=20 -> T = 52 (P(T <= crit) <= 0.025).
    assert _walsh_trim(10, 0.025) == 9
    assert _walsh_trim(20, 0.025) == 53
    assert _walsh_trim(5, 0.03) == 0  # 5 pairs cannot reach 97% one-sided: 2**-5 > 0.03


def test_normal_approximation_is_close_to_exact_beyond_dp_limit():
    n, alpha = 61, 0.01
    exact = sum(1 for p in _signed_rank_cdf(n) if p <= alpha)
    assert abs(_walsh_trim(n, alpha) - exact) <= 2


# --- paired_effect ------------------------------------------------------------------------------

def test_constant_shift_is_recovered_exactly():
    base = [100.0, 102.0, 98.0, 101.0, 99.0, 100.5]
    effect = paired_effect(base, [b * 1.05 for b in base], "max", 0.9)
    assert effect.median == pytest.approx(0.05)
    assert effect.ci[0] == pytest.approx(0.05) and effect.ci[1] == pytest.approx(0.05)
    assert effect.n == 6 and effect.confidence == 0.9


def test_direction_sets_the_sign():
    base = [100.0, 101.0, 99.0, 100.0, 100.0]
    slower = [b * 1.1 for b in base]
    assert paired_effect(base, slower, "max", 0.9).median == pytest.approx(0.1)
    # For a time metric 10% higher is worse; the speedup A/B - 1 is reported.
    assert paired_effect(base, slower, "min", 0.9).median == pytest.approx(1 / 1.1 - 1)
    faster = [b / 1.1 for b in base]
    assert paired_effect(base, faster, "min", 0.9).median == pytest.approx(0.1)


def test_bounds_are_the_right_walsh_order_statistics():
    # 6 pairs, alpha = 2/64: P(T+ <= 1) = 2/64, so the bounds are the 2nd smallest / largest
    # of the 21 Walsh averages.
    d = [-0.02, 0.01, 0.03, 0.04, 0.06, 0.10]
    walsh = sorted((d[i] + d[j]) / 2 for i in range(6) for j in range(i, 6))
    effect = paired_effect([1.0] * 6, [math.exp(x) for x in d], "max", 1 - 2 / 64)
    assert effect.ci[0] == pytest.approx(math.expm1(walsh[1]))
    assert effect.ci[1] == pytest.approx(math.expm1(walsh[-2]))
    assert effect.median == pytest.approx(math.expm1(walsh[10]))


def test_too_few_pairs_give_an_unbounded_side_written_as_null():
    effect = paired_effect([1.0, 1.0], [1.1, 1.2], "max", 0.99)
    assert effect.ci == (-1.0, math.inf)
    d = effect.to_dict()
    assert set(d) == {"median", "ci", "n", "confidence"}
    assert d["ci"] == [-1.0, None] and d["n"] == 2


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        paired_effect([1.0, 2.0], [1.0], "max", 0.9)
    with pytest.raises(ValueError):
        paired_effect([1.0], [0.0], "max", 0.9)
    with pytest.raises(ValueError):
        paired_effect([1.0], [1.0], "up", 0.9)


COVERAGE_REPS = 4000


def _coverage(rng, n, confidence, run):
    """Share of simulated experiments whose lower / upper bound sits on the right side of truth."""
    truth, lower_ok, upper_ok, reps = 0.03, 0, 0, COVERAGE_REPS
    for _ in range(reps):
        base, cand, k = [], [], 0
        for order in pair_orders(n, rng):
            for arm in order:
                value = run(k, rng) * (math.exp(truth) if arm == "cand" else 1.0)
                (base if arm == "base" else cand).append(value)
                k += 1
        lo, hi = paired_effect(base, cand, "max", confidence).ci
        lower_ok += math.log1p(lo) <= truth
        upper_ok += math.log1p(hi) >= truth
    return lower_ok / reps, upper_ok / reps


def test_interval_coverage_is_the_exact_nominal_level():
    n, confidence = 8, 0.9
    exact = 1 - _signed_rank_cdf(n)[_walsh_trim(n, 1 - confidence) - 1]  # achieved level
    assert 0.9 <= exact < 0.92
    white = lambda k, rng: math.exp(rng.gauss(0, 0.02))  # noqa: E731
    for covered in _coverage(random.Random(7), n, confidence, white):
        assert abs(covered - exact) < 3 * math.sqrt(exact * (1 - exact) / COVERAGE_REPS)


def test_randomized_order_keeps_coverage_under_strong_drift_and_skew():
    # 1% drift per run and skewed (exponential) slowdowns: only the order coin keeps it exact.
    n, confidence = 8, 0.9
    exact = 1 - _signed_rank_cdf(n)[_walsh_trim(n, 1 - confidence) - 1]
    drifting = lambda k, rng: math.exp(0.01 * k - rng.expovariate(1 / 0.02))  # noqa: E731
    for covered in _coverage(random.Random(11), n, confidence, drifting):
        assert abs(covered - exact) < 3 * math.sqrt(exact * (1 - exact) / COVERAGE_REPS)


# --- SequentialGate -----------------------------------------------------------------------------

def _arms(rng, n, gain, cv=0.01):
    base = [100 * math.exp(rng.gauss(0, cv)) for _ in range(n)]
    cand = [100 * (1 + gain) * math.exp(rng.gauss(0, cv)) for _ in range(n)]
    return base, cand


def test_next_batch_follows_the_looks():
    gate = SequentialGate()
    assert gate.looks == [5, 10, 15]
    assert [gate.next_batch(n) for n in (0, 3, 5, 10, 14, 15, 20)] == [5, 2, 5, 5, 1, 0, 0]
    assert SequentialGate(max_repeats=10).looks == [5, 10]
    assert SequentialGate(repeats=4, max_repeats=10).looks == [4, 8, 10]


def test_significance_budget_is_all_available_at_ten_pairs_by_default():
    gate = SequentialGate()
    assert gate.alpha == DEFAULT_ALPHA == 0.01
    assert gate.spending[5] < gate.spending[10] == gate.spending[15] == gate.alpha
    # 5 pairs cannot claim 99% (2**-5 > 1%); 10 pairs test exactly like a fixed 10-pair test:
    # at most 5 of the 55 Walsh averages <= 0, null probability 10/1024.
    looks = _critical_values([0.01 * (i + 1) for i in range(15)], gate.looks, gate._spend)
    assert [(n, c) for n, c, _ in looks[:2]] == [(5, -1), (10, 5)]
    assert looks[1][2] == 10 / 1024
    # A larger max_repeats keeps budget for its later looks; a first look of 7 pairs can keep.
    wide = SequentialGate(max_repeats=30).spending
    assert wide[10] < wide[20] == 0.01
    assert SequentialGate(repeats=7, max_repeats=14).spending[7] >= 2 ** -7


def test_gate_that_could_never_keep_is_refused():
    with pytest.raises(ValueError, match="max_repeats=5"):
        SequentialGate(repeats=5, max_repeats=5)
    with pytest.raises(ValueError, match="max_repeats=6"):
        SequentialGate(repeats=3, max_repeats=6)  # 2**-6 > 1%
    SequentialGate(repeats=7, max_repeats=7)
    with pytest.raises(ValueError):
        SequentialGate(repeats=6, max_repeats=5)
    with pytest.raises(ValueError):
        SequentialGate(direction="up")


def test_joint_null_matches_brute_force_with_ties_and_zeros():
    z = [0.3, -0.1, 0.0, 0.2, -0.3, 0.1, 0.5, -0.2, 0.1]  # ties and a zero
    n_prev, c_prev, c_max = 6, 2, 12
    joint = _joint_null(z, n_prev, c_prev, c_max)

    def ranks(v):  # ties broken by position, as the gate does
        order = sorted(range(len(v)), key=lambda i: (abs(v[i]), i))
        return [order.index(i) + 1 for i in range(len(v))]

    r_prev, r_now = ranks(z[:n_prev]), ranks(z)
    counts = [0] * (c_max + 1)
    for negative in itertools.product([0, 1], repeat=len(z)):
        t_prev = sum(r for r, s in zip(r_prev, negative) if s)
        t_now = sum(r for r, s in zip(r_now, negative) if s)
        if t_prev > c_prev and t_now <= c_max:
            counts[t_now] += 1
    assert list(joint) == [c / 2 ** len(z) for c in counts]


def test_conditional_calibration_beats_bonferroni_at_the_last_look():
    # Default gate: 10 pairs spend 10/1024 of the 1%. Bonferroni would leave 15 pairs a 0.023%
    # test (at most 4 Walsh averages <= 0); the exact conditional computation allows more.
    gate, rng = SequentialGate(), random.Random(3)
    z = [rng.gauss(0, 0.02) for _ in range(15)]
    (_, _, b10), (_, c15, b15) = _critical_values(z, gate.looks, gate._spend)[1:]
    assert _walsh_trim(15, 0.01 - b10) - 1 == 4
    assert c15 >= 7 and b15 <= 0.01


@pytest.mark.parametrize("kind", ["white", "drift, ties and zeros"])
def test_no_change_is_kept_at_most_alpha_exactly(kind):
    # Under no change the order coin makes every sign pattern of the pairs equally likely, given
    # their magnitudes. Enumerate all of them through the real next_batch / decide loop: the
    # share of patterns that end in a keep is P(keep | no change), exactly.
    rng, n_max, alpha = random.Random(9), 11, 0.05
    if kind == "white":
        mags = [abs(rng.gauss(0, 0.03)) for _ in range(n_max)]
    else:
        mags = [round(0.004 * k + abs(rng.gauss(0, 0.02)), 2) for k in range(n_max)]
        mags[3] = 0.0
    keeps = rejects = 0
    for signs in itertools.product([1, -1], repeat=n_max):
        gate = SequentialGate(min_effect=0.0, repeats=4, max_repeats=n_max, alpha=alpha)
        cand = [math.exp(s * m) for s, m in zip(signs, mags)]
        base, n = [1.0] * n_max, 0
        rejected = False
        while (batch := gate.next_batch(n)) > 0:
            n += batch
            strict, _ = gate.significance(base[:n], cand[:n])
            rejected |= strict is not None and strict > 0
            verdict = gate.decide(base[:n], cand[:n])
            if verdict.action != "more":
                break
        keeps += verdict.action == "keep"
        rejects += rejected
    assert keeps <= rejects <= alpha * 2 ** n_max
    if kind == "white":
        assert rejects >= 0.8 * alpha * 2 ** n_max  # and the budget is actually used


def test_clear_win_keeps_at_second_look_not_first():
    gate = SequentialGate()
    base, cand = _arms(random.Random(1), 10, 0.10)
    first = gate.decide(base[:5], cand[:5])
    assert first.action == "more"  # 5 pairs cannot show better than no change at 99%
    assert "5 pairs cannot show better than no change" in first.reason
    verdict = gate.decide(base, cand)
    assert verdict.action == "keep"
    assert verdict.effect.ci[0] > 0.01 and verdict.effect.n == 10
    assert "clears min_effect +1.0% (80% one-sided)" in verdict.reason
    assert "better than no change at 99.0%" in verdict.reason


def test_reported_interval_is_the_practical_one_and_its_lower_bound_clears():
    base, cand = _arms(random.Random(6), 10, 0.04, cv=0.015)
    verdict = SequentialGate().decide(base, cand)
    assert verdict.action == "keep"
    assert verdict.effect == paired_effect(base, cand, "max", PRACTICAL_CONFIDENCE)
    assert verdict.effect.confidence == PRACTICAL_CONFIDENCE == 0.8
    assert verdict.effect.ci[0] > 0.01


def test_keep_needs_the_strict_claim_too():
    # A +3% gain measured at 10 pairs; the keep needs the 99% claim as well as the 80% bound.
    d = [0.031, 0.012, 0.045, 0.027, 0.008, 0.036, 0.019, 0.041, 0.024, 0.030]
    base, cand = [1.0] * 10, [math.exp(x) for x in d]
    assert SequentialGate().decide(base, cand).action == "keep"
    d[4] = d[6] = -0.004  # two small losses: 3 Walsh averages <= 0, still better at 99.0%
    assert SequentialGate().decide(base, [math.exp(x) for x in d]).action == "keep"
    d[1] = d[8] = -0.02   # four losses, two sizeable: 10 Walsh averages <= 0
    verdict = SequentialGate().decide(base, [math.exp(x) for x in d])
    assert verdict.effect.ci[0] > 0.01  # the 80% bound still clears min_effect, 99% fails
    assert verdict.action == "more" and "not better than no change at 99.0%" in verdict.reason


def test_significant_but_too_small_is_not_kept():
    # A certain +0.5% gain: better than no change, but not by min_effect.
    base, cand = _arms(random.Random(8), 15, 0.005, cv=0.0005)
    gate = SequentialGate()
    assert gate.significance(base, cand)[0] > 0
    verdict = gate.decide(base, cand)
    assert verdict.action == "discard"
    assert "does not clear min_effect" in verdict.reason
    assert "; better than no change" in verdict.reason


def test_negative_min_effect_asks_for_better_than_it():
    base, cand = _arms(random.Random(12), 10, 0.0, cv=0.002)  # no change, precisely measured
    verdict = SequentialGate(min_effect=-0.02).decide(base, cand)
    assert verdict.action == "keep" and "better than -2.0%" in verdict.reason


def test_clear_win_on_time_metric_keeps():
    base, cand = _arms(random.Random(2), 10, -0.10)  # 10% less time
    verdict = SequentialGate(direction="min").decide(base, cand)
    assert verdict.action == "keep" and verdict.effect.median > 0.09


def test_identical_runs_are_discarded_early_for_futility():
    base = [100.0, 101.0, 99.0, 100.5, 99.5]
    verdict = SequentialGate().decide(base, list(base))
    assert verdict.action == "discard"
    assert "futile" in verdict.reason and verdict.effect.median == 0.0


def test_identical_runs_are_never_kept_even_at_the_last_look():
    base = [100.0 + i % 3 for i in range(15)]
    verdict = SequentialGate().decide(base, list(base))
    assert verdict.action == "discard" and SequentialGate().significance(base, base)[0] <= 0


def test_clear_loss_is_discarded_early():
    base, cand = _arms(random.Random(3), 5, -0.05)
    assert SequentialGate().decide(base, cand).action == "discard"


def test_straddling_interval_asks_for_more():
    base, cand = _arms(random.Random(4), 10, 0.015, cv=0.02)
    verdict = SequentialGate().decide(base, cand)
    assert verdict.action == "more"
    lo, hi = verdict.effect.ci
    assert lo < 0.01 < hi
    assert "straddles" in verdict.reason


def test_undecided_at_max_repeats_is_discarded():
    base, cand = _arms(random.Random(4), 15, 0.015, cv=0.03)
    verdict = SequentialGate().decide(base, cand)
    assert verdict.action == "discard" and "undecided at max 15" in verdict.reason
    assert verdict.effect.ci[0] < 0.01 < verdict.effect.ci[1]


def test_no_pairs_yet_asks_for_more():
    assert SequentialGate().decide([], []).action == "more"


def test_sequential_false_keep_rate_under_drift_respects_alpha():
    # No change, 5% noise on a drifting machine, through the real loop (Monte Carlo).
    rng, alpha, trials, keeps = random.Random(5), 0.1, 1000, 0
    for _ in range(trials):
        gate, base, cand, level = SequentialGate(alpha=alpha), [], [], 0.0
        while (batch := gate.next_batch(len(base))) > 0:
            for order in pair_orders(batch, rng):
                for arm in order:
                    level += rng.gauss(0, 0.01)
                    value = 100 * math.exp(level + rng.gauss(0, 0.05))
                    (base if arm == "base" else cand).append(value)
            verdict = gate.decide(base, cand)
            if verdict.action != "more":
                break
        keeps += verdict.action == "keep"
    assert keeps / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


# --- summarize ----------------------------------------------------------------------------------

def test_summarize():
    s = summarize([10.0, 12.0, 11.0])
    assert s["median"] == 11.0 and s["samples"] == 3
    assert s["cv"] == pytest.approx(1.0 / 11.0)
    assert summarize([5.0]) == {"median": 5.0, "cv": 0.0, "samples": 1}
    assert summarize([]) == {"median": None, "cv": None, "samples": 0}


def test_effect_is_frozen():
    effect = Effect(0.01, (0.0, 0.02), 5, 0.9)
    with pytest.raises(Exception):
        effect.median = 1.0  # type: ignore[misc]


# --- every metric -------------------------------------------------------------------------------

def test_parse_metrics_reads_every_name_with_medians_and_marks_bad_ones():
    out = "METRIC gflops=1.5 ms=30\nnoise\nMETRIC ms=10\nMETRIC ms=20\nMETRIC bad=nan\n# METRIC no=1\n"
    assert parse_metrics(out) == {"gflops": 1.5, "ms": 20.0, "bad": None}
    assert parse_metrics("no metrics here\n") == {}


# --- guards: non-inferiority on the same pairs --------------------------------------------------

def test_bound_is_the_metrics_own_relative_change():
    assert Bound("mbps", "max", 0.02).limit == -0.02
    assert Bound("rss_mb", "min", 0.05).limit == 0.05
    assert math.isclose(Bound("mbps", "max", 0.02).log_shift, math.log(0.98))
    assert math.isclose(Bound("rss_mb", "min", 0.05).log_shift, -math.log(1.05))
    assert math.isclose(metric_change(-0.5, "min"), 1.0)  # half as good at `min` = twice the value
    assert math.isclose(metric_change(0.25, "max"), 0.25)
    for bad in (("x", "max", 1.0), ("x", "min", -0.1), ("x", "up", 0.1)):
        with pytest.raises(ValueError):
            Bound(*bad)


@pytest.mark.parametrize("direction", ["max", "min"])
def test_guard_at_exactly_its_bound_passes_at_most_alpha_over_all_looks(direction):
    # With the regression exactly at the bound, z = d - log_shift is symmetric about 0: every sign
    # pattern of z is equally likely given the magnitudes. Enumerate them through the looks.
    rng, n_max, alpha = random.Random(4), 11, 0.2
    mags = [abs(rng.gauss(0, 0.02)) for _ in range(n_max)]
    bound = Bound("g", direction, 0.05)
    test = SequentialGate(min_effect=0.0, repeats=4, max_repeats=n_max).non_inferiority(bound, alpha)
    passes = 0
    sign = 1 if direction == "max" else -1
    for signs in itertools.product([1, -1], repeat=n_max):
        cand = [math.exp(sign * (s * m + bound.log_shift)) for s, m in zip(signs, mags)]
        base = [1.0] * n_max
        passed = False
        for look in (4, 8, 11):
            check = test.assess(base[:look], cand[:look])
            if check.status == "pass":
                passed = True
                break
            if check.status == "fail":
                break
        passes += passed
    assert passes <= alpha * 2 ** n_max
    assert passes >= 0.6 * alpha * 2 ** n_max  # and the budget is used


def _guarded(rng, n, gain, guard_ratio, guard_cv=0.005):
    base, cand = _arms(rng, n, gain)
    g_base = [100 * rng.gauss(1, guard_cv) for _ in range(n)]
    g_cand = [v * guard_ratio * rng.gauss(1, guard_cv) for v in g_base]
    return base, cand, {"rss_mb": (g_base, g_cand)}


def test_guard_beyond_its_bound_discards_naming_it_and_its_interval():
    gate = SequentialGate(guards=[Bound("rss_mb", "min", 0.05)])
    base, cand, guards = _guarded(random.Random(3), 10, 1.0, 3.0)  # twice as fast, three times the memory
    assert SequentialGate().decide(base, cand).action == "keep"
    verdict = gate.decide(base, cand, guards)
    assert verdict.action == "discard"
    assert re.match(r"guard rss_mb \+(199\.\d|200\.\d)% \[\+", verdict.reason), verdict.reason
    assert "beyond its bound +5.0%" in verdict.reason
    (check,) = verdict.checks
    assert check.status == "fail" and check.interval[0] > 1.9 and check.limit == 0.05
    early = gate.decide(base[:5], cand[:5], {"rss_mb": tuple(v[:5] for v in guards["rss_mb"])})
    assert early.action == "discard"  # shown beyond the bound at the first look already


def test_guard_within_its_bound_keeps_and_says_so():
    gate = SequentialGate(guards=[Bound("rss_mb", "min", 0.05)])
    base, cand, guards = _guarded(random.Random(3), 10, 0.10, 1.0)
    verdict = gate.decide(base, cand, guards)
    assert verdict.action == "keep"
    assert "guards within bounds: rss_mb" in verdict.reason
    assert verdict.checks[0].status == "pass" and verdict.checks[0].confidence >= 1 - GUARD_ALPHA


def test_guard_not_yet_shown_within_asks_for_more_then_discards_at_max():
    gate = SequentialGate(guards=[Bound("mbps", "max", 0.01)])
    rng = random.Random(5)
    base, cand = _arms(rng, 15, 0.2)
    g_base = [rng.gauss(1, 0.1) for _ in range(15)]
    g_cand = [rng.gauss(1, 0.1) for _ in range(15)]  # too noisy to show a 1% bound
    verdict = gate.decide(base[:10], cand[:10], {"mbps": (g_base[:10], g_cand[:10])})
    assert verdict.action == "more" and "main metric would be kept, but guard mbps" in verdict.reason
    last = gate.decide(base, cand, {"mbps": (g_base, g_cand)})
    assert last.action == "discard" and "not shown within its bound -1.0%" in last.reason
    with pytest.raises(ValueError, match="no values for guard"):
        gate.decide(base, cand)


def test_gate_spec_round_trips_with_guards():
    gate = SequentialGate(0.02, 4, 12, "min", 0.02, [Bound("rss_mb", "min", 0.1)], 0.1)
    again = SequentialGate.from_spec(gate.to_spec())
    assert again.to_spec() == gate.to_spec() and again.looks == gate.looks
    assert again.guards[0].bound == Bound("rss_mb", "min", 0.1) and again.guards[0].alpha == 0.1
