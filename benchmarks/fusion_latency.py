"""Fusion latency: a concurrent panel costs the slowest member plus the judge, not the sum.

Targets:
1. A 3-member panel with 0.3 / 0.6 / 1.0 s simulated latency and a 0.3 s judge (best-of, both
   orders, the two judge passes concurrent): fused wall <= 1.05 x (slowest member + judge) = 1.365 s.
   Printed side by side with the same calls made one after another, and as overhead relative to
   the slowest single member called alone.
2. Partial failure: a member that errors, or that hangs until its timeout, adds no more than its
   timeout to the fused wall time (compared with the panel of the survivors alone).

Everything runs through the real `openai` SDK against the local OpenAI-compatible test server
(`tests/openai_server.py`), with the client warmed up first (the one-time `import openai` is not a
fusion cost). Each figure is the median of `--runs` runs.

Usage: python benchmarks/fusion_latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research_agent.llm import LLMClient, fuse_sync  # noqa: E402
from tests.openai_server import Answer, OpenAIServer  # noqa: E402

DELAYS = {"fast": 0.3, "medium": 0.6, "slow": 1.0}
JUDGE_DELAY = 0.3
TOLERANCE = 1.05
MEMBER_TIMEOUT = 1.5
KEY = "benchmark-key"


def judge(request):
    labels = re.findall(r"Answer ([A-H]):\n<<<\n(.*?)\n>>>", request.text, re.S)
    scores = {label: 9 if "medium" in text else 4 for label, text in labels}
    best = max(scores, key=scores.get)
    return Answer(json.dumps({"scores": scores, "best": best, "rationale": "medium is right"}), delay=JUDGE_DELAY, cost=0.0005)


def script() -> dict:
    models = {name: Answer(f"the {name} member's answer", delay=delay, cost=0.001) for name, delay in DELAYS.items()}
    models["judge"] = judge
    models["broken"] = Answer(status=500, error="upstream error", delay=0.05)
    models["hung"] = Answer("never in time", delay=30)
    return models


def median_wall(fn, runs: int) -> float:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ok = True
    with OpenAIServer(script()) as server:
        client = LLMClient(base_url=server.url, api_key=KEY, max_retries=1, retry_base_delay=0.1)
        client.complete("fast", [{"role": "user", "content": "warm up"}])  # import openai, open a connection

        def fused(models: list[str]) -> None:
            result = fuse_sync(client, "Which answer is right?", models, "judge", mode="best-of",
                               member_timeout=MEMBER_TIMEOUT, seed=1)
            assert result.chosen == "medium", result

        def one_after_another() -> None:
            answers = [client.complete(m, [{"role": "user", "content": "Which answer is right?"}]) for m in DELAYS]
            for _ in range(2):  # the same two judge passes, in turn
                client.complete("judge", [{"role": "user", "content": "\n\n".join(
                    f"Answer {label}:\n<<<\n{a.text}\n>>>" for label, a in zip("ABC", answers))}])

        panel = list(DELAYS)
        ideal = max(DELAYS.values()) + JUDGE_DELAY
        fused_wall = median_wall(lambda: fused(panel), args.runs)
        serial_wall = median_wall(one_after_another, args.runs)
        single_wall = median_wall(lambda: client.complete("slow", [{"role": "user", "content": "Which answer is right?"}]), args.runs)
        latency_ok = fused_wall <= TOLERANCE * ideal
        ok &= latency_ok

        survivors = ["fast", "medium"]
        survivors_wall = median_wall(lambda: fused(survivors), args.runs)
        broken_wall = median_wall(lambda: fused(survivors + ["broken"]), args.runs)
        hung_wall = median_wall(lambda: fused(survivors + ["hung"]), args.runs)

    today = datetime.date.today().isoformat()
    print(f"# Fusion latency ({today}, median of {args.runs} runs)\n")
    print("| panel (member latency) + judge | fused (concurrent) | one after another | slowest member + judge | target | result |")
    print("|---|---|---|---|---|---|")
    print(f"| fast 0.3 s, medium 0.6 s, slow 1.0 s + judge 0.3 s (x2 orders) | {fused_wall:.3f} s | {serial_wall:.3f} s "
          f"| {ideal:.3f} s | <= {TOLERANCE * ideal:.3f} s | {'PASS' if latency_ok else 'FAIL'} |")
    print()
    print(f"Overhead relative to the slowest single member called alone ({single_wall:.3f} s): "
          f"+{fused_wall - single_wall:.3f} s ({fused_wall / single_wall:.2f}x) — of which the judge is {JUDGE_DELAY:.1f} s; "
          f"fusion machinery beyond slowest + judge: {fused_wall - ideal:+.3f} s. "
          f"One after another would take {serial_wall / fused_wall:.2f}x as long.\n")

    print("| partial failure | fused wall | survivors alone | added | member timeout | target | result |")
    print("|---|---|---|---|---|---|---|")
    for label, wall in (("a member errors (500, one retry)", broken_wall), ("a member hangs until its timeout", hung_wall)):
        added = wall - survivors_wall
        passed = added <= MEMBER_TIMEOUT
        ok &= passed
        print(f"| {label} | {wall:.3f} s | {survivors_wall:.3f} s | {added:+.3f} s | {MEMBER_TIMEOUT:.1f} s "
              f"| added <= {MEMBER_TIMEOUT:.1f} s | {'PASS' if passed else 'FAIL'} |")
    print()
    print(f"{'PASS' if ok else 'FAIL'} — {today}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
