"""Plan review through the real CLI: `plan approve`, `plan edit` (validated on save, reopened while
invalid), `optimize --review` then `resume` (approval needed), `run` refusing an unapproved plan."""

import json
import os
import shlex
import sqlite3
import subprocess
import sys

from research_agent.plan import load_plan

from .conftest import DEMO, git, make_target


def cli(cwd, *args, env=None):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def one_error(result, code):
    assert result.returncode == code, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("research-agent: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def draft_copy(tmp_path):
    text = (DEMO / "plan.md").read_text().replace("status: approved", "status: draft", 1)
    path = tmp_path / "plan.md"
    path.write_text(text)
    return path, text


def test_approve_changes_only_the_status_line(tmp_path):
    path, before = draft_copy(tmp_path)
    result = cli(tmp_path, "plan", "approve", "plan.md")
    assert result.returncode == 0, result.stderr
    assert "approved" in result.stdout
    after = path.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [("status: draft", "status: approved")] and len(after) == len(before) + 3
    assert load_plan(path).status == "approved"
    assert cli(tmp_path, "plan", "approve", "plan.md").returncode == 0 and path.read_text() == after  # idempotent

    path.write_text(after.replace("- status: pending", "- status: maybe", 1))
    line = one_error(cli(tmp_path, "plan", "approve", "plan.md"), 4)
    number = after.splitlines().index("- status: pending") + 1
    assert f"plan.md:{number}: hypothesis H1: unknown status 'maybe'" in line


EDITOR = """\
import pathlib, sys
plan = pathlib.Path(sys.argv[-1])
count = pathlib.Path(__file__).with_name("calls")
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
mode = {mode!r}
text = plan.read_text()
if mode == "fix" and n == 1:
    plan.write_text(text.replace("- status: pending", "- status: maybe", 1))
elif mode == "fix":
    plan.write_text(text.replace("- status: maybe", "- status: pending", 1).replace("Loop interchange", "Loop swap", 1))
elif mode == "fail":
    plan.write_text(text.replace("- status: pending", "- status: maybe", 1))
    sys.exit(1)
# mode "nothing": leave the file as it is
"""


def editor(tmp_path, mode):
    script = tmp_path / f"editor_{mode}.py"
    script.write_text(EDITOR.format(mode=mode))
    env = {k: v for k, v in os.environ.items() if k != "VISUAL"}
    env["EDITOR"] = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    return env, tmp_path / "calls"


def test_edit_reopens_the_editor_until_the_plan_is_valid(tmp_path):
    path, before = draft_copy(tmp_path)
    env, calls = editor(tmp_path, "fix")
    result = cli(tmp_path, "plan", "edit", "plan.md", env=env)
    assert result.returncode == 0, result.stderr
    assert calls.read_text() == "2"  # invalid after the first save: opened again
    number = before.splitlines().index("- status: pending") + 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("research-agent: ")]
    assert len(errors) == 1 and errors[0].startswith(f"research-agent: plan.md:{number}: hypothesis H1: unknown status 'maybe'")
    assert "reopening the editor" in result.stderr and "ok" in result.stdout
    assert load_plan(path).hypotheses[0].title.startswith("Loop swap")


def test_edit_stops_with_the_error_when_the_editor_gives_up(tmp_path):
    path, before = draft_copy(tmp_path)
    env, calls = editor(tmp_path, "fail")  # saves an invalid plan and exits non-zero
    line = one_error(cli(tmp_path, "plan", "edit", "plan.md", env=env), 4)
    assert "unknown status 'maybe'" in line and "exited with status 1" in line and calls.read_text() == "1"

    env, calls = editor(tmp_path, "nothing")  # the plan is still invalid and comes back unchanged: stop
    calls.unlink()
    line = one_error(cli(tmp_path, "plan", "edit", "plan.md", env=env), 4)
    assert "unknown status 'maybe'" in line and calls.read_text() == "1"

    env.pop("EDITOR")
    line = one_error(cli(tmp_path, "plan", "edit", "plan.md", env=env), 2)
    assert "$EDITOR" in line


def test_run_refuses_an_unapproved_plan_without_yes(tmp_path):
    _repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}})
    plan.write_text(plan.read_text().replace("status: approved", "status: draft"))
    line = one_error(cli(tmp_path, "run", str(plan), "--task", str(task), "--run-dir", "run"), 4)
    assert "not approved" in line and "plan approve" in line and "--yes" in line
    assert not (tmp_path / "run").exists()

    ran = cli(tmp_path, "run", str(plan), "--task", str(task), "--run-dir", "run", "--yes", "--repeats", "2")
    assert ran.returncode == 0, ran.stderr
    status = json.loads(cli(tmp_path, "status", "run", "--json").stdout)
    assert [e["hypothesis"] for e in status["experiments"]] == ["H1"]


def test_optimize_review_stops_then_resume_needs_an_approved_valid_plan(tmp_path):
    repo, task, _plan = make_target(tmp_path, {}, task_extra=(
        "research: {papers: 0, repos: 1, prs: 0, local: [notes/], competitors: [competitor]}\n"
        "experiments: {repeats: 2}\n"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "score.md").write_text("# Raising the score\n\nA larger value raises the score.\n")
    competitor = tmp_path / "competitor"
    subprocess.run(["git", "clone", "-q", str(repo), str(competitor)], check=True)
    (competitor / "value.txt").write_text("150\n")
    git(competitor, "commit", "-qam", "Raise the value")
    env = {**os.environ, "RESEARCH_AGENT_CACHE": str(tmp_path / "cache")}

    stopped = cli(tmp_path, "optimize", str(task), "--review", "--offline", "--run-dir", "run", env=env)
    assert stopped.returncode == 0, stopped.stderr
    for command in ("research-agent plan show run/plan.md", "research-agent plan edit run/plan.md",
                    "research-agent plan approve run/plan.md", "research-agent resume run"):
        assert command in stopped.stdout
    assert "note: planner: --offline" not in stopped.stderr  # no planner configured: that notice instead
    assert "the extractive distiller writes the plan" in stopped.stderr
    ledger = sqlite3.connect(tmp_path / "run" / "ledger.sqlite")
    assert ledger.execute("SELECT status FROM runs").fetchone()[0] == "planned"
    assert ledger.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] == 0
    plan_file = tmp_path / "run" / "plan.md"
    assert load_plan(plan_file).status == "draft" and load_plan(plan_file).hypotheses[0].diff

    line = one_error(cli(tmp_path, "resume", "run", env=env), 4)
    assert "not approved" in line and "research-agent plan approve run/plan.md" in line

    good = plan_file.read_text()
    plan_file.write_text(good.replace("- status: pending", "- status: maybe", 1))  # edited into invalid shape
    number = good.splitlines().index("- status: pending") + 1
    line = one_error(cli(tmp_path, "resume", "run", "--yes", env=env), 4)
    assert f"plan.md:{number}: hypothesis H1: unknown status 'maybe'" in line

    plan_file.write_text(good)
    assert cli(tmp_path, "plan", "approve", "run/plan.md").returncode == 0
    resumed = cli(tmp_path, "resume", "run", env=env)
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads(cli(tmp_path, "status", "run", "--json").stdout)
    assert status["state"] == "done" and status["experiments"][0]["hypothesis"] == "H1"
    assert status["experiments"][0]["decision"] in ("kept", "discarded")
