"""Plan file: exact round trips, surgical edits, validation errors that name the line."""

import difflib

import pytest
from rich.console import Console

from research_agent.errors import PlanError
from research_agent.plan import (
    STATUSES,
    Hypothesis,
    Plan,
    load_plan,
    new_plan,
    parse_plan,
    plan_table,
    render_plan,
    save_plan,
)

# The example from the design doc.
EXAMPLE = """\
---
objective: Speed up the matrix multiply kernel
metric: gflops
direction: max
status: draft                # draft | approved
baseline: {median: 1.92, cv: 0.012}
---
# Plan

## Bottleneck analysis
Free text.

## Hypotheses

### H1: Loop interchange for unit-stride access
- expected: +200%
- risk: low
- files: matmul.c
- sources: local:notes/loop-order.md, github:someone/fast-matmul@1a2b3c4
- status: pending

Free text rationale.

```diff
--- a/matmul.c
+++ b/matmul.c
@@ ... @@
```

## Sources
- local:notes/loop-order.md — Loop order and cache locality
- github:someone/fast-matmul@1a2b3c4 — "reorder loops" commit in a fork
"""

# A messier, hand-edited plan: comments, extra keys and fields, odd spacing, an unknown section,
# code blocks with headings inside, all three source separators.
REALISTIC = """\
---
# written by the distiller, edited by hand
objective: "Speed up the matrix multiply kernel: 2x or bust"
metric: gflops   # higher is better
direction: max
status: draft                # draft | approved
baseline: {median: 1.92, cv: 0.012}
target: ./matmul
notes:
  - measured on the laptop
  - turbo off
---
# Plan

Some preamble the author wrote.

## Bottleneck analysis

The inner loop walks B column-wise.

Cache misses dominate (perf stat: 38% L1 misses).

## Hypotheses

Ordered by expected gain.

### H1: Loop interchange for unit-stride access
- expected: +200%
- risk: low
- files: matmul.c
- sources: local:notes/loop-order.md, github:someone/fast-matmul@1a2b3c4
- x-source-commit: 1a2b3c4
- status: pending

Free text rationale.

A second paragraph, with a list:

- point one
- point two

```diff
--- a/matmul.c
+++ b/matmul.c
@@ -10,7 +10,7 @@
-    for (j = 0; j < n; j++)
-        for (k = 0; k < n; k++)
+    for (k = 0; k < n; k++)
+        for (j = 0; j < n; j++)
```

Trailing note after the patch.

### H2.b: Block for L1   
-   expected:   +30%  
- risk: medium
- files: matmul.c,  tile.h
- sources: arXiv:2205.14135
- status: running

```c
## not a heading, this is inside a code block
### nor this
```

###   H3 :  Vectorize with AVX2
- status: discarded
- sources:

## Notes
### Not a hypothesis
Anything goes here.

## Sources
Only what the hypotheses cite.

- local:notes/loop-order.md — Loop order and cache locality
- github:someone/fast-matmul@1a2b3c4 - "reorder loops" commit in a fork
- arXiv:2205.14135 -- FlashAttention
- github:owner/unused
"""

H1_DIFF = """\
--- a/matmul.c
+++ b/matmul.c
@@ -10,7 +10,7 @@
-    for (j = 0; j < n; j++)
-        for (k = 0; k < n; k++)
+    for (k = 0; k < n; k++)
+        for (j = 0; j < n; j++)
"""


def changed_lines(a: str, b: str) -> list[str]:
    return [d for d in difflib.ndiff(a.splitlines(True), b.splitlines(True)) if d[:1] in "+-"]


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [EXAMPLE, REALISTIC, REALISTIC.rstrip("\n"), EXAMPLE.replace("\n", "\n\n")[:-1]])
def test_round_trip_is_exact(text):
    assert render_plan(parse_plan(text)) == text


def test_parsed_values():
    plan = parse_plan(REALISTIC, "plan.md")
    assert plan.objective == "Speed up the matrix multiply kernel: 2x or bust"
    assert (plan.metric, plan.direction, plan.status) == ("gflops", "max", "draft")
    assert plan.baseline == {"median": 1.92, "cv": 0.012}
    assert plan.front["target"] == "./matmul" and plan.front["notes"] == ["measured on the laptop", "turbo off"]
    assert plan.bottleneck.startswith("The inner loop") and plan.bottleneck.endswith("misses).")
    assert [h.id for h in plan.hypotheses] == ["H1", "H2.b", "H3"]
    assert list(plan.sources)[-1] == "github:owner/unused"
    assert plan.sources["github:someone/fast-matmul@1a2b3c4"] == '"reorder loops" commit in a fork'
    assert plan.sources["arXiv:2205.14135"] == "FlashAttention"

    h1 = plan.hypothesis("H1")
    assert h1.line == 27 and h1.title == "Loop interchange for unit-stride access"
    assert (h1.expected, h1.risk, h1.files, h1.status) == ("+200%", "low", ["matmul.c"], "pending")
    assert h1.sources == ["local:notes/loop-order.md", "github:someone/fast-matmul@1a2b3c4"]
    assert list(h1.fields) == ["expected", "risk", "files", "sources", "x-source-commit", "status"]
    assert h1.fields["x-source-commit"] == "1a2b3c4"
    assert h1.diff == H1_DIFF
    assert h1.rationale.startswith("Free text rationale.") and h1.rationale.endswith("Trailing note after the patch.")
    assert "```diff" not in h1.rationale

    h2 = plan.hypothesis("H2.b")
    assert (h2.title, h2.expected, h2.files, h2.status) == ("Block for L1", "+30%", ["matmul.c", "tile.h"], "running")
    assert h2.diff is None and "## not a heading" in h2.rationale

    h3 = plan.hypothesis("H3")
    assert (h3.title, h3.sources, h3.status, h3.rationale) == ("Vectorize with AVX2", [], "discarded", "")
    with pytest.raises(KeyError):
        plan.hypothesis("H9")


def test_reparse_of_parsed_plan_is_equal():
    plan = parse_plan(REALISTIC)
    assert parse_plan(render_plan(plan)) == plan


def make_example() -> Plan:
    return new_plan(
        "Speed up the matrix multiply kernel",
        "gflops",
        "max",
        [
            {
                "id": "H1",
                "title": "Loop interchange for unit-stride access",
                "expected": "+200%",
                "risk": "low",
                "files": ["matmul.c"],
                "sources": ["local:notes/loop-order.md", "github:someone/fast-matmul@1a2b3c4"],
                "rationale": "Free text rationale.",
                "diff": "--- a/matmul.c\n+++ b/matmul.c\n@@ ... @@",
            }
        ],
        {
            "local:notes/loop-order.md": "Loop order and cache locality",
            "github:someone/fast-matmul@1a2b3c4": '"reorder loops" commit in a fork',
        },
        bottleneck="Free text.\n",
        baseline={"median": 1.92, "cv": 0.012},
    )


def test_programmatic_plan_renders_the_documented_format():
    expected = EXAMPLE.replace("status: draft                # draft | approved", "status: draft")
    assert render_plan(make_example()) == expected


def test_programmatic_round_trip():
    plan = new_plan(
        "Cut latency",
        "ms",
        "min",
        [
            Hypothesis(id="H1", title="Cache the parse", files="a.py, b.py", sources=["arXiv:1234.5678"]),
            {"id": "H-2", "title": "Batch writes", "rationale": "Para one.\n\nPara two.", "x-source-commit": "abc"},
            {"id": "H3", "title": "Nothing much", "status": "rejected", "risk": "high"},
        ],
        {"arXiv:1234.5678": "A paper", "local:notes.md": ""},
    )
    text = render_plan(plan)
    again = parse_plan(text)
    assert again == plan
    assert render_plan(again) == text
    assert again.metric == "ms" and again.direction == "min" and again.baseline is None
    assert again.hypothesis("H-2").fields == {"status": "pending", "x-source-commit": "abc"}
    assert again.hypothesis("H1").files == ["a.py", "b.py"]
    assert again.sources == {"arXiv:1234.5678": "A paper", "local:notes.md": ""}


def test_new_plan_validates():
    with pytest.raises(PlanError, match="not listed under ## Sources"):
        new_plan("x", "m", "max", [{"id": "H1", "title": "t", "sources": ["arXiv:1"]}], {})
    with pytest.raises(PlanError, match="direction"):
        new_plan("x", "m", "up", [{"id": "H1", "title": "t"}], {})
    with pytest.raises(PlanError, match="duplicate"):
        new_plan("x", "m", "max", [{"id": "H1", "title": "t"}, {"id": "H1", "title": "u"}], {})
    with pytest.raises(PlanError, match="unified diff"):
        new_plan("x", "m", "max", [{"id": "H1", "title": "t", "diff": "just text"}], {})


# --- surgical edits -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", STATUSES)
def test_set_status_changes_only_that_line(status):
    plan = parse_plan(REALISTIC)
    plan.set_status("H1", status)
    out = render_plan(plan)
    old = "- x-source-commit: 1a2b3c4\n- status: pending"
    expected = REALISTIC.replace(old, old.replace("pending", status))
    assert out == expected
    assert parse_plan(out).hypothesis("H1").diff == H1_DIFF


def test_set_status_keeps_odd_spacing_and_adds_missing_line():
    text = REALISTIC.replace("- status: running", "-   status:   running  ")
    plan = parse_plan(text)
    plan.set_status("H2.b", "kept")
    assert changed_lines(text, render_plan(plan)) == ["- -   status:   running  \n", "+ -   status:   kept\n"]

    # A hypothesis without a status line is pending; setting it adds the line after the others.
    text = REALISTIC.replace("- status: discarded\n", "")
    plan = parse_plan(text)
    assert plan.hypothesis("H3").status == "pending"
    assert render_plan(plan) == text
    plan.set_status("H3", "failed")
    assert changed_lines(text, render_plan(plan)) == ["+ - status: failed\n"]


def test_set_plan_status_and_baseline_keep_front_matter_comments():
    plan = parse_plan(REALISTIC)
    plan.set_plan_status("approved")
    plan.set_baseline(2.5, 0.02)
    assert changed_lines(REALISTIC, render_plan(plan)) == [
        "- status: draft                # draft | approved\n",
        "+ status: approved             # draft | approved\n",
        "- baseline: {median: 1.92, cv: 0.012}\n",
        "+ baseline: {median: 2.5, cv: 0.02}\n",
    ]
    again = parse_plan(render_plan(plan))
    assert again.status == "approved" and again.baseline == {"median": 2.5, "cv": 0.02}
    with pytest.raises(PlanError):
        plan.set_plan_status("done")
    with pytest.raises(PlanError):
        plan.set_status("H1", "great")
    with pytest.raises(KeyError):
        plan.set_status("H9", "kept")


def test_block_style_baseline_is_replaced_whole():
    text = EXAMPLE.replace("baseline: {median: 1.92, cv: 0.012}\n", "baseline:\n  median: 1.92\n  cv: 0.012\n")
    plan = parse_plan(text)
    plan.set_baseline(3.0, 0.01)
    out = render_plan(plan)
    assert "baseline: {median: 3.0, cv: 0.01}\n---\n" in out and "  median" not in out


def test_other_edits_rerender_cleanly():
    plan = parse_plan(REALISTIC)
    plan.hypothesis("H2.b").diff = "--- a/tile.h\n+++ b/tile.h\n@@ -1 +1 @@\n-a\n+b\n"
    plan.hypothesis("H1").diff = "--- a/matmul.c\n+++ b/matmul.c\n"
    plan.hypothesis("H3").title = "Vectorize with AVX-512"
    plan.sources["arXiv:9999.00001"] = "New paper"
    plan.hypothesis("H3").sources = ["arXiv:9999.00001"]
    plan.hypotheses.append(Hypothesis(id="H4", title="Prefetch", expected="+5%", rationale="Maybe."))
    del plan.sources["github:owner/unused"]
    out = render_plan(plan)
    again = parse_plan(out)
    assert again == plan
    assert "Trailing note after the patch." in out and "## Notes\n### Not a hypothesis" in out
    assert again.hypothesis("H1").diff == "--- a/matmul.c\n+++ b/matmul.c\n"
    assert again.hypothesis("H4").line > again.hypothesis("H3").line
    assert "github:owner/unused" not in out
    assert "- arXiv:2205.14135 -- FlashAttention\n- arXiv:9999.00001 — New paper\n" in out


# --- validation -----------------------------------------------------------------------------------


def _error(text: str) -> PlanError:
    with pytest.raises(PlanError) as info:
        parse_plan(text, "plan.md")
    return info.value


def sub(old: str, new: str, text: str = EXAMPLE) -> str:
    assert old in text
    return text.replace(old, new, 1)


BAD_PLANS = [
    ("no front matter", EXAMPLE.split("---\n", 2)[2], 1, "missing front matter"),
    ("unterminated front matter", "---\nobjective: x\n# Plan\n", 1, "unterminated front matter"),
    ("yaml error", sub("metric: gflops", "metric: gflops: fast"), 3, "invalid front matter"),
    ("yaml not a mapping", "---\n- a list\n---\n", 2, "mapping"),
    ("no objective", sub("objective: Speed up the matrix multiply kernel\n", ""), 1, "objective"),
    ("plan status", sub("status: draft ", "status: done "), 5, "unknown plan status 'done'"),
    ("direction", sub("direction: max", "direction: up"), 4, "unknown direction 'up'"),
    ("baseline", sub("{median: 1.92, cv: 0.012}", "fast"), 6, "baseline"),
    ("bad heading", sub("### H1: Loop", "### H1 Loop"), 15, "### H1: title"),
    ("bad id", sub("### H1: Loop", "### 1: Loop"), 15, "### H1: title"),
    ("no title", sub("### H1: Loop interchange for unit-stride access", "### H1:"), 15, "### H1: title"),
    ("malformed field", sub("- risk: low", "- risk low"), 17, "malformed field"),
    ("field twice", sub("- risk: low", "- risk: low\n- risk: high"), 18, "given twice"),
    ("hypothesis status", sub("- status: pending", "- status: done"), 20, "unknown status 'done'"),
    ("uncited source", sub("- local:notes/loop-order.md — Loop order and cache locality\n", ""), 19, "'local:notes/"),
    ("unterminated fence", EXAMPLE.replace("@@ ... @@\n```\n", "@@ ... @@\n"), 24, "unterminated"),
    ("not a diff", sub("--- a/matmul.c\n+++ b/matmul.c\n", "x = 1\n"), 24, "not a unified diff"),
    ("no hypotheses", EXAMPLE.split("### H1")[0] + "## Sources\n", 13, "no hypotheses"),
    ("no hypotheses section", "---\nobjective: x\n---\n# Plan\n", 4, "no '## Hypotheses' section"),
    ("malformed source", sub("loop-order.md — Loop", "loop-order.md Loop"), 31, "malformed source"),
]


@pytest.mark.parametrize("text,line,message", [b[1:] for b in BAD_PLANS], ids=[b[0] for b in BAD_PLANS])
def test_validation_names_the_line(text, line, message):
    err = _error(text)
    assert err.line == line, str(err)
    assert message in str(err)
    assert str(err).startswith(f"plan.md:{line}: ")
    assert "\n" not in str(err)


def test_duplicate_hypothesis_id_names_the_second_heading():
    block = EXAMPLE.split("### H1")[1].split("## Sources")[0]
    text = EXAMPLE.replace("## Sources", "### H1" + block + "## Sources")
    err = _error(text)
    assert err.line == 30 and "duplicate hypothesis id H1 (first on line 15)" in str(err)


def test_cited_source_error_in_later_hypothesis():
    text = REALISTIC.replace("- sources: arXiv:2205.14135", "- sources: arXiv:2205.14135, arXiv:0000.1")
    err = _error(text)
    assert err.line == 58 and "H2.b" in str(err) and "arXiv:0000.1" in str(err)


def test_yaml_error_line_is_mapped_to_the_file():
    text = sub("baseline: {median: 1.92, cv: 0.012}", "baseline: {median: 1.92, cv: [0.012}")
    err = _error(text)
    assert err.line == 6 and "\n" not in str(err)


# --- files and table ------------------------------------------------------------------------------


def test_load_and_save(tmp_path):
    path = tmp_path / "plan.md"
    with pytest.raises(PlanError, match="plan file not found"):
        load_plan(path)
    path.write_bytes(b"---\nobjective: \xff\n---\n")
    with pytest.raises(PlanError, match="UTF-8"):
        load_plan(path)

    path.write_text(REALISTIC, encoding="utf-8")
    plan = load_plan(path)
    assert plan.path == str(path)
    plan.set_status("H1", "kept")
    save_plan(plan, path)
    assert changed_lines(REALISTIC, path.read_text(encoding="utf-8")) == ["- - status: pending\n", "+ - status: kept\n"]
    assert [p.name for p in tmp_path.iterdir()] == ["plan.md"]  # no temp file left behind
    assert load_plan(path).hypothesis("H1").status == "kept"


def test_plan_table():
    plan = parse_plan(REALISTIC)
    table = plan_table(plan)
    assert [c.header for c in table.columns] == ["id", "title", "status", "expected", "risk", "diff?", "sources"]
    assert table.row_count == 3
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    out = console.export_text()
    assert "H2.b" in out and "running" in out and "yes" in out and "no" in out


# --- patch files and the research log (extensions; old plans are unchanged) -------------------

PATCH_FILE_PLAN = EXAMPLE.replace(
    "- status: pending\n\nFree text rationale.\n\n```diff\n--- a/matmul.c\n+++ b/matmul.c\n@@ ... @@\n```\n",
    "- status: pending\n- patch: research/patches/H1.diff\n\nFree text rationale.\n",
).replace("## Sources\n", "## Research log\n\n**Mined commits.** 2 read: 1 tried, 1 skipped.\n\n## Sources\n")


def test_a_hypothesis_can_reference_a_patch_file(tmp_path):
    assert parse_plan(PATCH_FILE_PLAN) is not None and render_plan(parse_plan(PATCH_FILE_PLAN)) == PATCH_FILE_PLAN
    path = tmp_path / "plan.md"
    path.write_text(PATCH_FILE_PLAN)
    with pytest.raises(PlanError) as missing:
        load_plan(path)
    assert missing.value.line == PATCH_FILE_PLAN.splitlines().index("- patch: research/patches/H1.diff") + 1
    assert "research/patches/H1.diff not found" in str(missing.value)

    (tmp_path / "research" / "patches").mkdir(parents=True)
    (tmp_path / "research" / "patches" / "H1.diff").write_text("--- a/matmul.c\n+++ b/matmul.c\n@@ -1 +1 @@\n-a\n+b\n")
    plan = load_plan(path)
    h1 = plan.hypotheses[0]
    assert h1.diff is None and h1.patch_file == "research/patches/H1.diff" and h1.has_patch
    assert plan.patch_text(h1).startswith("--- a/matmul.c\n") and plan.research_log.startswith("**Mined commits.**")
    assert render_plan(plan) == PATCH_FILE_PLAN


@pytest.mark.parametrize("value, message", [
    ("/etc/passwd.diff", "relative to the plan's folder"),
    ("../outside/H1.diff", "relative to the plan's folder"),
    ("research/patches/H1.txt", "must end in .diff or .patch"),
])
def test_a_bad_patch_file_reference_names_the_line(value, message):
    text = PATCH_FILE_PLAN.replace("research/patches/H1.diff", value)
    with pytest.raises(PlanError) as error:
        parse_plan(text)
    assert error.value.line == text.splitlines().index(f"- patch: {value}") + 1 and message in str(error.value)


def test_a_patch_file_and_an_inline_diff_is_an_error():
    text = EXAMPLE.replace("- status: pending\n", "- status: pending\n- patch: H1.diff\n")
    with pytest.raises(PlanError, match="not both"):
        parse_plan(text)


def test_the_research_log_is_added_before_the_sources_and_edited_in_place():
    plan = parse_plan(EXAMPLE)
    plan.research_log = "**Research round 1.** 3 queries."
    text = render_plan(plan)
    assert text == EXAMPLE.replace("## Sources\n", "## Research log\n\n**Research round 1.** 3 queries.\n\n## Sources\n")
    again = parse_plan(text)
    assert again == plan and again.research_log == "**Research round 1.** 3 queries."
    again.research_log = "**Research round 1.** 3 queries.\n\n**Research round 2.** 1 query."
    edited = render_plan(again)
    assert edited.count("## Research log") == 1 and "**Research round 2.** 1 query.\n\n## Sources" in edited
    assert render_plan(parse_plan(edited)) == edited

    built = new_plan("Go", "m", "max", [Hypothesis(id="H1", title="t")], {}, research_log="**Mined commits.** none.")
    assert "## Hypotheses" in render_plan(built) and parse_plan(render_plan(built)) == built
    assert render_plan(built).index("## Research log") < render_plan(built).index("## Sources")


def test_validate_rejects_an_unknown_hypothesis_field_with_a_did_you_mean(tmp_path):
    import subprocess
    import sys

    from research_agent.errors import PlanError
    from research_agent.plan import load_plan

    text = ("---\nobjective: x\nmetric: m\nstatus: draft\n---\n# Plan\n\n## Hypotheses\n\n"
            "### H1: Try it\n- riskk: low\n- x-owner: me\n- status: pending\n\nBecause.\n\n## Sources\n")
    plan = tmp_path / "plan.md"
    plan.write_text(text)
    with pytest.raises(PlanError, match=r"plan.md:11: hypothesis H1: unknown field 'riskk' \(did you mean 'risk'\?\)"):
        load_plan(plan)
    done = subprocess.run([sys.executable, "-m", "research_agent.cli", "plan", "validate", str(plan)], capture_output=True, text=True)
    assert done.returncode == 4 and done.stderr.count("\n") == 1 and "did you mean 'risk'" in done.stderr
    plan.write_text(text.replace("- riskk: low\n", "- risk: low\n"))
    parsed = load_plan(plan)  # an x- field of the user's is kept as written
    assert parsed.hypotheses[0].fields["x-owner"] == "me" and plan.read_text() == text.replace("- riskk: low\n", "- risk: low\n")
