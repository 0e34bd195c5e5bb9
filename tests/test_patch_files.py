"""Large diffs live in patch files beside the plan; the plan shows a diffstat and the path; the patch runtime reads either."""

import json
import subprocess
import sys

from research_agent.plan import Hypothesis, load_plan, new_plan, parse_plan, render_plan, save_plan
from research_agent.plan.patches import externalize_diffs

from .conftest import make_target

BIG = "diff --git a/k.c b/k.c\n--- a/k.c\n+++ b/k.c\n@@ -1,150 +1,150 @@\n" + "".join(f"-a{i}\n+b{i}\n" for i in range(150))
SMALL = "--- a/k.c\n+++ b/k.c\n@@ -1 +1 @@\n-a\n+b\n"


def test_large_diffs_move_to_files_and_small_ones_stay(tmp_path):
    plan = new_plan("Go", "m", "max", [Hypothesis(id="H1", title="big", rationale="Why.", diff=BIG),
                                       Hypothesis(id="H2", title="small", diff=SMALL)], {})
    assert externalize_diffs(plan, tmp_path) == ["H1"]
    save_plan(plan, tmp_path / "plan.md")
    text = (tmp_path / "plan.md").read_text()
    assert "+b149" not in text and "- patch: research/patches/H1.diff" in text and "```diff\n" + SMALL in text
    assert " k.c | 300 " in text and "1 file changed, 150 insertions(+), 150 deletions(-)" in text
    again = load_plan(tmp_path / "plan.md")
    assert again == parse_plan(text) and render_plan(again) == text
    assert again.patch_text(again.hypothesis("H1")) == BIG and again.patch_text(again.hypothesis("H2")) == SMALL
    assert (tmp_path / "research" / "patches" / "H1.diff").read_text() == BIG


def test_a_plan_given_with_patch_files_runs_them(tmp_path):
    repo, task, plan_file = make_target(tmp_path, {"H1": {"value.txt": "150\n"}},
                                        task_extra="experiments: {parallel: 1, repeats: 5, max_repeats: 10}\n")
    text = plan_file.read_text()
    diff = text.split("```diff\n")[1].split("```")[0]
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "H1.diff").write_text(diff)
    plan_file.write_text(text.replace("```diff\n" + diff + "```\n", "").replace("- status: pending\n",
                                                                                "- status: pending\n- patch: patches/H1.diff\n"))
    done = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--plan", str(plan_file),
                           "--run-dir", "run"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "patches" / "H1.diff").read_text() == diff  # the run's copy keeps its file
    status = json.loads(subprocess.run([sys.executable, "-m", "research_agent.cli", "status", "run", "--json"],
                                       cwd=tmp_path, capture_output=True, text=True).stdout)
    assert status["experiments"][0]["decision"] == "kept"
