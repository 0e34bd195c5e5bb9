"""Bad input: one clear line on stderr, the documented exit code, no traceback, nothing of the user's touched."""

import subprocess
import sys

import pytest

from .conftest import make_target, snapshot_of_user_repo


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("research-agent: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr  # progress lines may come before it
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture
def target(tmp_path):
    return make_target(tmp_path, {"H1": {"value.txt": "150\n"}})


def test_missing_target_path(tmp_path):
    result = cli("optimize", "nowhere", "--plan", "plan.md", "--bench", "./b", "--metric", "x", cwd=tmp_path)
    assert_one_line_error(result, 5, "target not found: nowhere")


def test_dirty_tree_is_refused_and_left_alone(target, tmp_path):
    repo, task, plan = target
    (repo / "value.txt").write_text("999\n")
    before = snapshot_of_user_repo(repo)
    result = cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", cwd=tmp_path)
    assert_one_line_error(result, 5, "uncommitted", "--allow-dirty")
    assert snapshot_of_user_repo(repo) == before
    assert not (tmp_path / "run").exists()


def test_malformed_yaml_names_the_line(target, tmp_path):
    repo, task, plan = target
    task.write_text("name: x\nrepo: target\nbench: [unclosed\nmetric: score\n")
    assert_one_line_error(cli("optimize", str(task), "--plan", str(plan), cwd=tmp_path), 3, "task.yaml:", "invalid YAML")


def test_unknown_key_suggests_the_right_one(target, tmp_path):
    repo, task, plan = target
    task.write_text(task.read_text() + "experiments: {paralel: 2}\n")
    result = cli("optimize", str(task), "--plan", str(plan), cwd=tmp_path)
    assert_one_line_error(result, 3, "experiments.paralel", "did you mean 'parallel'")


def test_malformed_plan_names_the_line(target, tmp_path):
    repo, task, plan = target
    plan.write_text(plan.read_text().replace("### H1: Try H1", "### H1 no colon"))
    line = plan.read_text().splitlines().index("### H1 no colon") + 1
    result = cli("optimize", str(task), "--plan", str(plan), cwd=tmp_path)
    assert_one_line_error(result, 4, f"plan.md:{line}:")
    assert_one_line_error(cli("plan", "validate", str(plan), cwd=tmp_path), 4, f"plan.md:{line}:")


def test_bench_without_metric_stops_at_baseline(target, tmp_path):
    repo, task, plan = target
    result = cli("optimize", str(task), "--plan", str(plan), "--bench", "echo nothing here", "--run-dir", "run", cwd=tmp_path)
    assert_one_line_error(result, 6, "baseline", "no metric 'score'")


def test_build_failure_stops_at_baseline(target, tmp_path):
    repo, task, plan = target
    result = cli("optimize", str(task), "--plan", str(plan), "--build", "exit 7", "--run-dir", "run", cwd=tmp_path)
    assert_one_line_error(result, 6, "baseline build failed (exit 7)")


def test_resume_refuses_a_run_of_another_task(target, tmp_path):
    repo, task, plan = target
    assert cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", "--repeats", "2", cwd=tmp_path).returncode == 0
    other = tmp_path / "other.yaml"
    other.write_text(task.read_text().replace("bench: ./bench.sh", "bench: ./bench.sh --fast"))
    assert_one_line_error(cli("resume", "run", "--task", str(other), cwd=tmp_path), 7, "belongs to another task")
    assert_one_line_error(cli("resume", "nowhere", cwd=tmp_path), 7, "run directory not found")
    assert_one_line_error(cli("status", str(tmp_path), cwd=tmp_path), 7, "not a run directory")


def test_unapplicable_patch_and_hanging_bench_are_failed_experiments(tmp_path):
    repo, task, plan = make_target(tmp_path, {
        "H1": {"notes.txt": "<bad>"},
        "H2": {"hang.txt": "x\n"},
    })
    result = cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", "--repeats", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    status = cli("status", "run", "--json", cwd=tmp_path)
    import json

    experiments = {e["hypothesis"]: e for e in json.loads(status.stdout)["experiments"]}
    assert experiments["H1"]["decision"] == "failed" and "patch does not apply" in experiments["H1"]["reason"]
    assert experiments["H2"]["decision"] == "failed" and "timed out after 5s" in experiments["H2"]["reason"]
    leftover = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, text=True).stdout.split()
    assert leftover == [], "the hanging benchmark survived its timeout"


@pytest.mark.parametrize("args, fragments", [
    (["optimize", "x", "--paralel", "2"], ["optimize: No such option: --paralel", "--parallel", "research-agent optimize --help"]),
    (["optimize", "{task}", "--runtime", "nosuch"], ["--runtime", "nosuch"]),
    (["optimize", "{task}", "--parallel", "0"], ["--parallel", "greater than or equal to 1"]),
    (["run", "plan.md", "--task", "{task}", "--rounds", "0"], ["--rounds"]),
    (["optimize", "{task}", "--parallel", "two"], ["--parallel", "valid integer"]),
    (["nosuch"], ["No such command 'nosuch'"]),
    (["status"], ["status: Missing argument"]),
    (["plan", "validate"], ["plan validate: Missing argument"]),
])
def test_usage_errors_are_one_line_and_exit_2(target, tmp_path, args, fragments):
    repo, task, plan = target
    before = snapshot_of_user_repo(repo)
    result = cli(*[a.replace("{task}", str(task)) for a in args], "--run-dir", "run", cwd=tmp_path) if args[0] in ("optimize", "run") \
        else cli(*args, cwd=tmp_path)
    assert_one_line_error(result, 2, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1  # no usage box, no progress: a usage error comes first
    assert not (tmp_path / "run").exists() and snapshot_of_user_repo(repo) == before


def test_status_and_resume_word_a_missing_run_dir_identically(tmp_path):
    status, resume = cli("status", "gone", cwd=tmp_path), cli("resume", "gone", cwd=tmp_path)
    assert_one_line_error(status, 7, "run directory not found: gone")
    assert status.stderr == resume.stderr and resume.returncode == 7


def test_version_and_shell_completion():
    from research_agent import __version__

    version = cli("--version", cwd=".")
    assert version.returncode == 0 and version.stdout.strip() == f"research-agent {__version__}"
    helped = cli("--help", cwd=".")
    assert "--install-completion" in helped.stdout and "--show-completion" in helped.stdout
    script = cli("--show-completion", "bash", cwd=".")
    assert script.returncode == 0 and "_RESEARCH_AGENT_COMPLETE" in script.stdout


def test_the_readme_exit_code_table_is_the_code_s():
    import re
    from pathlib import Path

    from research_agent.errors import EXIT_CODES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    rows = [re.match(r"\| (.+?) \| (.+) \|$", line).groups() for line in section.splitlines()[2:]]
    assert rows == [(str(code), meaning) for code, meaning in EXIT_CODES.items()]
