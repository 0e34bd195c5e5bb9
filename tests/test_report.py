"""status (JSON contract and table) and report (md, html, png, IMPROVEMENTS.md) from a hand-built run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from research_agent.errors import RunDirError
from research_agent.ledger import Ledger
from research_agent.report import write_report
from research_agent.status import build_status, status_table

TASK_YAML = """\
name: demo-matmul
goal: Speed up the matrix multiply kernel
metric: {name: gflops, direction: max}
"""

PLAN_MD = """\
---
objective: Speed up the matrix multiply kernel
metric: gflops
direction: max
status: approved
---
# Plan

## Hypotheses

### H1: Loop interchange for unit-stride access
- files: kernel.c
- sources: local:notes/a.md
- status: kept

The inner loop walks B with a stride of n doubles, so every load misses the cache.

### H2: Rename the accumulator
- files: kernel.c
- sources: local:notes/b.md
- status: discarded

An A/A control: no change expected.

### H3: Unroll without a remainder
- files: kernel.c
- sources: local:notes/b.md
- status: failed

Drops the last term for odd n.

## Sources
- local:notes/a.md — A note on loop order
- local:notes/b.md — Unrolling notes
"""

PATCH = """\
diff --git a/kernel.c b/kernel.c
--- a/kernel.c
+++ b/kernel.c
@@ -1,3 +1,3 @@
-    for (int k = 0; k < n; k++)
+    for (int j = 0; j < n; j++)
"""

BASELINE = [2.60, 2.62, 2.58, 2.61, 2.59]


def make_run(tmp_path: Path, keep: bool = True) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "task.yaml").write_text(TASK_YAML, encoding="utf-8")
    (run_dir / "plan.md").write_text(PLAN_MD, encoding="utf-8")
    ledger = Ledger(run_dir / "ledger.sqlite")
    ledger.create_run("demo-run", "demo-matmul", "fp")
    for index, value in enumerate(BASELINE):
        ledger.add_sample("baseline", 1, "baseline", index, value, 1.0)
    ledger.update_run(baseline_median=2.60, baseline_cv=0.006, base_commit="a" * 40,
                      best_commit=("c" * 40) if keep else "a" * 40)
    ledger.add_cost("compute", 0.10)  # run-level cost, in the total only

    experiments = [
        ("r1-H1", "H1", "Loop interchange for unit-stride access", "kept" if keep else "discarded",
         {"median": 0.031, "ci": [0.020, 0.042], "n": 10}, [2.60] * 5, [2.68] * 5),
        ("r1-H2", "H2", "Rename the accumulator", "discarded",
         {"median": 0.001, "ci": [-0.004, 0.006], "n": 5}, [2.60] * 5, [2.60] * 5),
        ("r1-H3", "H3", "Unroll without a remainder", "failed", None, [], []),
    ]
    for exp_id, hyp, title, decision, effect, base, cand in experiments:
        assert ledger.add_experiment(exp_id, hyp, title, 1)
        attempt = ledger.start_experiment(exp_id, "a" * 40, f"ra/demo-run/{hyp}", "local-1")
        for index, (b, c) in enumerate(zip(base, cand)):
            ledger.add_sample(exp_id, attempt, "base", index, b, 1.0)
            ledger.add_sample(exp_id, attempt, "cand", index, c, 1.0)
        reason = {"kept": "lower bound +2.0% clears min_effect", "discarded": "no effect",
                  "failed": "check failed (exit 2)"}[decision]
        ledger.decide(exp_id, decision, reason, effect, cand_commit=("c" * 40) if decision == "kept" else None)
        folder = run_dir / "experiments" / exp_id
        folder.mkdir(parents=True)
        (folder / "patch.diff").write_text(PATCH, encoding="utf-8")
    ledger.add_cost("agent", 0.25, "r1-H1")
    ledger.add_cost("compute", 0.05, "r1-H1")
    ledger.add_cost("agent", 0.40, "r1-H2")
    ledger.close()
    return run_dir


def test_build_status_shape_and_values(tmp_path):
    status = build_status(make_run(tmp_path))
    json.dumps(status)  # JSON-serialisable as is
    assert {"run", "task", "baseline", "experiments", "best"} <= set(status)
    assert status["run"] == "demo-run" and status["task"] == "demo-matmul"
    assert status["baseline"] == {"median": 2.60, "cv": 0.006, "samples": BASELINE}
    assert status["metric"] == {"name": "gflops", "direction": "max"}
    assert status["state"] == "running"

    by_id = {e["id"]: e for e in status["experiments"]}
    assert [e["id"] for e in status["experiments"]] == ["r1-H1", "r1-H2", "r1-H3"]
    h1 = by_id["r1-H1"]
    assert {"id", "hypothesis", "title", "status", "decision", "effect", "base_commit", "branch", "cost_usd",
            "reason"} <= set(h1)
    assert h1["hypothesis"] == "H1" and h1["status"] == "done" and h1["decision"] == "kept"
    assert h1["effect"] == {"median": 0.031, "ci": [0.020, 0.042]}
    assert h1["branch"] == "ra/demo-run/H1" and h1["base_commit"] == "a" * 40
    assert h1["cost_usd"] == pytest.approx(0.30)
    assert by_id["r1-H2"]["cost_usd"] == pytest.approx(0.40)
    assert by_id["r1-H3"]["effect"] is None and by_id["r1-H3"]["cost_usd"] == 0
    assert by_id["r1-H3"]["reason"] == "check failed (exit 2)"
    assert status["total_cost_usd"] == pytest.approx(0.80)

    assert status["best"]["id"] == "r1-H1" and status["best"]["commit"] == "c" * 40


def test_status_table_renders(tmp_path):
    console = Console(record=True, width=200)
    console.print(status_table(build_status(make_run(tmp_path))))
    text = console.export_text()
    assert "+3.1% [+2.0%, +4.2%]" in text and "kept" in text and "baseline" in text and "best" in text


def test_empty_directory_is_not_a_run(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        build_status(tmp_path)
    with pytest.raises(RunDirError):
        write_report(tmp_path)


def test_write_report_creates_the_four_files(tmp_path):
    run_dir = make_run(tmp_path)
    paths = write_report(run_dir)
    assert set(paths) == {"report.md", "report.html", "progress.png", "IMPROVEMENTS.md"}
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0 and path.parent == run_dir
    assert paths["progress.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run_dir.glob(".*.tmp"))  # no temp files left behind

    md = paths["report.md"].read_text(encoding="utf-8")
    assert "demo-matmul" in md and "gflops" in md and "higher is better" in md
    assert "](progress.png)" in md
    assert "+3.1% [+2.0%, +4.2%]" in md and "```diff" in md
    assert "local:notes/a.md — A note on loop order" in md
    assert f"`{'c' * 40}`" in md and "research-agent apply " in md and "research-agent pr " in md
    assert str(tmp_path) not in md.replace(str(run_dir), "")  # no stray absolute paths besides the run dir

    html = paths["report.html"].read_text(encoding="utf-8")
    assert 'src="data:image/png;base64,' in html
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # self-contained
    assert 'src="http' not in html and "<script" not in html and "<link" not in html
    assert "<pre" in html and "+3.1% [+2.0%, +4.2%]" in html and "A note on loop order" in html

    improvements = paths["IMPROVEMENTS.md"].read_text(encoding="utf-8")
    assert "Loop interchange for unit-stride access" in improvements
    assert "local:notes/a.md — A note on loop order" in improvements
    assert "+3.1% [+2.0%, +4.2%]" in improvements and "10" in improvements
    assert "kernel.c" in improvements and "every load misses the cache" in improvements
    assert "Rename the accumulator" not in improvements  # discarded: not an improvement

    # Re-running rewrites in place.
    assert write_report(run_dir) == paths


def test_report_with_nothing_kept(tmp_path):
    run_dir = make_run(tmp_path, keep=False)
    assert build_status(run_dir)["best"] is None
    paths = write_report(run_dir)
    improvements = paths["IMPROVEMENTS.md"].read_text(encoding="utf-8")
    assert "Nothing was kept" in improvements and "3 experiments tried" in improvements
    md = paths["report.md"].read_text(encoding="utf-8")
    assert "Nothing was kept" in md and "git fetch" not in md


def test_live_run_without_baseline_or_decisions(tmp_path):
    """While `optimize` still holds the ledger open: nothing measured yet, one experiment running."""
    run_dir = tmp_path / "live"
    run_dir.mkdir()
    (run_dir / "task.yaml").write_text(TASK_YAML.replace("max", "min"), encoding="utf-8")
    (run_dir / "plan.md").write_text(PLAN_MD, encoding="utf-8")
    ledger = Ledger(run_dir / "ledger.sqlite")
    try:
        ledger.create_run("live-run", "demo-matmul", "fp")
        status = build_status(run_dir)
        assert status["baseline"] == {"median": None, "cv": None, "samples": []}
        assert status["experiments"] == [] and status["best"] is None

        ledger.update_run(baseline_median=10.0, baseline_cv=0.01, base_commit="a" * 40, best_commit="a" * 40)
        ledger.add_experiment("r1-H1", "H1", "Loop interchange for unit-stride access", 1)
        attempt = ledger.start_experiment("r1-H1", "a" * 40, "ra/live-run/H1", "local-1")
        ledger.add_sample("r1-H1", attempt, "base", 0, 10.0, 1.0)
        ledger.add_sample("r1-H1", attempt, "cand", 0, 9.0, 1.0)
        status = build_status(run_dir)
        (exp,) = status["experiments"]
        assert exp["status"] == "running" and exp["decision"] is None and exp["effect"] is None
        assert status["metric"]["direction"] == "min"

        paths = write_report(run_dir)
        assert "lower is better" in paths["report.md"].read_text(encoding="utf-8")
        assert "Nothing was kept" in paths["IMPROVEMENTS.md"].read_text(encoding="utf-8")
    finally:
        ledger.close()


MINED_RATIONALE = """Mined from a competitor repository: commit 1a2b3c4d5e6f in fast-matmul (local:fm). It applies cleanly to the current base (6 changed lines in 1 file).
Its commit message, quoted as untrusted data:

> kernel: i-k-j loop order
>
> 2.6 -> 13 GFLOP/s."""


def test_improvements_quote_the_commit_message_and_large_diffs_become_a_diffstat(tmp_path):
    """The old extractive rationale put "quoted as untrusted data:" at the end of its first paragraph:
    IMPROVEMENTS.md printed it followed by nothing. Now the message follows, and a 2,000-line diff is a path."""
    run_dir = make_run(tmp_path)
    plan = (run_dir / "plan.md").read_text().replace(
        "The inner loop walks B with a stride of n doubles, so every load misses the cache.", MINED_RATIONALE)
    (run_dir / "plan.md").write_text(plan.replace("- status: kept\n", "- status: kept\n- research-round: 1\n", 1))
    big = "diff --git a/kernel.c b/kernel.c\n--- a/kernel.c\n+++ b/kernel.c\n@@ -1,1000 +1,1000 @@\n" + \
        "".join(f"-old {i}\n+new {i}\n" for i in range(1000))
    (run_dir / "experiments" / "r1-H1" / "patch.diff").write_text(big)
    paths = write_report(run_dir)

    improvements = paths["IMPROVEMENTS.md"].read_text()
    problem = next(line for line in improvements.splitlines() if line.startswith("**Problem.**"))
    assert problem.endswith("(6 changed lines in 1 file).")  # not the dangling "…quoted as untrusted data:"
    after = improvements.split("Its commit message, quoted as untrusted data:\n\n", 1)[1].splitlines()
    assert after[:3] == ["> kernel: i-k-j loop order", ">", "> 2.6 -> 13 GFLOP/s."]
    assert "**Found by** research round 1." in improvements
    for name in ("IMPROVEMENTS.md", "report.md", "report.html"):
        text = paths[name].read_text()
        assert "+new 999" not in text and "experiments/r1-H1/patch.diff" in text, name
        assert "kernel.c | 2000 " in text and "1 file changed, 1000 insertions(+), 1000 deletions(-)" in text, name
    assert len(paths["report.md"].read_bytes()) < 20_000


def test_diffstat_counts_like_git(tmp_path):
    import subprocess

    from research_agent.diffstat import diffstat, is_large

    from .conftest import git, make_repo

    repo = make_repo(tmp_path / "r", {"a.c": "".join(f"{i}\n" for i in range(50)), "b.txt": "x\n", "c.bin": "\0"})
    (repo / "a.c").write_text("".join(f"{i}{' changed' if i % 5 == 0 else ''}\n" for i in range(50)) + "tail\n")
    (repo / "b.txt").unlink()
    (repo / "c.bin").write_bytes(b"\0\1")
    (repo / "new.h").write_text("#define N 1\n")
    git(repo, "add", "-A")
    diff = subprocess.run(["git", "diff", "--cached"], cwd=repo, capture_output=True, text=True).stdout
    ours = diffstat(diff).splitlines()
    theirs = subprocess.run(["git", "diff", "--cached", "--stat=200"], cwd=repo, capture_output=True, text=True).stdout
    assert ours[-1] == theirs.splitlines()[-1]  # " 4 files changed, 12 insertions(+), 11 deletions(-)"
    assert [line.split("|")[0].strip() for line in ours[:-1]] == ["a.c", "b.txt", "c.bin", "new.h"]
    assert [line.split("|")[1].split()[0] for line in ours[:-1]] == ["21", "1", "Bin", "1"]
    assert is_large(diff) and not is_large("".join(diff.splitlines(keepends=True)[:40]))
