"""What the run learns between rounds: queries from the changes that failed and the profile; paired noise."""

import math
import random

from research_agent.noise import pairs_note, paired_noise, unpaired
from research_agent.research.queries import learned_queries, touched_names
from research_agent.task import Task

DIFF = """diff --git a/src/engine.c b/src/engine.c
--- a/src/engine.c
+++ b/src/engine.c
@@ -3,6 +3,7 @@ static double crunch_rows(const double *v, int n)
 {
-    for (int i = 0; i < n; i++) s += v[i];
+    for (int i = 0; i < n; i++) s += fast_add(v[i]);
"""
PROFILE = """# Samples: 12K of event 'cycles'
    61.20%  bench  bench   [.] decode_block
    20.02%  bench  libc    [.] memcpy_avx_unaligned
     9.10%  bench  bench   [.] crunch_rows
"""


def task(tmp_path):
    return Task(repo=".", bench="./bench.sh", metric="score", goal="Raise the score", base_dir=tmp_path)


def test_queries_name_the_functions_and_files_the_failed_changes_touched(tmp_path):
    assert touched_names(DIFF) == (["crunch_rows", "fast_add"], ["engine"])
    queries = learned_queries(task(tmp_path), [DIFF], PROFILE, {"decode_block", "crunch_rows", "main"})
    assert queries[0] == "Raise the score crunch_rows fast_add"
    assert queries[1] == "crunch_rows fast_add engine optimization"
    assert queries[2] == "decode_block crunch_rows performance"  # the profile's hot functions the target has, not libc's
    assert learned_queries(task(tmp_path), [], "", set()) == []


def test_paired_noise_is_the_spread_of_each_experiments_pairs():
    rng = random.Random(7)
    samples = {}
    for k, effect in enumerate((0.0, 0.2, -0.1)):  # the effect itself is not noise
        drift = [100 * (1 + 0.05 * math.sin(i)) for i in range(20)]  # slow drift: pairing cancels it
        base = [d * rng.gauss(1, 0.005) for d in drift]
        cand = [d * (1 + effect) * rng.gauss(1, 0.005) for d in drift]
        samples[f"r1-H{k}"] = (base, cand)
    samples["r1-H9"] = ([1.0], [2.0])  # too few pairs: left out
    noise = paired_noise(samples)
    assert noise.paired and noise.pairs == 60 and noise.experiments == 3
    assert 0.004 < noise.sigma < 0.011  # √2 × 0.5%, not the 5% drift nor the 20% effect
    assert "paired, from 60 pairs in 3 experiments" in pairs_note(noise, 0.01, 5, 15)
    assert "unpaired runs" in pairs_note(unpaired(0.05), 0.01, 5, 15)
    assert paired_noise({}) is None


def test_base_vs_base_noise_is_the_rms_log_ratio_around_zero():
    import math
    import random

    import pytest

    from research_agent.noise import base_vs_base

    assert base_vs_base([1.0, 2.0], [1.0, 2.0]).sigma == 0.0
    assert math.isclose(base_vs_base([1.0, 1.0], [math.e ** 0.1, math.e ** -0.1]).sigma, 0.1)
    rng = random.Random(2)
    first = [rng.gauss(1, 0.02) for _ in range(4000)]
    second = [rng.gauss(1, 0.02) for _ in range(4000)]
    noise = base_vs_base(first, second)
    assert 0.025 < noise.sigma < 0.032 and noise.paired and noise.pairs == 4000  # ~ CV * sqrt(2)
    with pytest.raises(ValueError):
        base_vs_base([1.0], [0.0])
