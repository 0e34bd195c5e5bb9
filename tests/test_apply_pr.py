"""`apply` and `pr` through the real CLI: the best as a new branch of the user's repository, pushed to a
local bare remote, pull requests opened through PyGithub against a local GitHub API server."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import DEMO, git, make_target, snapshot_of_user_repo
from .replay_github import load as load_replay
from .servers import ReplayServer, Reply

FAST = "experiments: {parallel: 2, rounds: 2, repeats: 3, max_repeats: 8}\n"
BENCH = """#!/bin/sh
python3 -c "import random; print('METRIC score=%f' % ($(cat value.txt) * $(cat factor.txt) * random.gauss(1, 0.01)))"
"""


def cli(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory):
    """H1 (value 150) and H2 (factor 1.2) win and stack; H3 (value 130) wins alone and is dropped when
    stacked (it conflicts with H1); H4 (value 150 → 170) only applies on H1, so round 2 keeps it."""
    root = tmp_path_factory.mktemp("stacked")
    repo, task, plan = make_target(root, {"H1": {"value.txt": "150\n"}, "H2": {"factor.txt": "1.2\n"},
                                          "H3": {"value.txt": "130\n"}, "H4": {"value.txt": "170\n"}},
                                   files={"factor.txt": "1\n", "bench.sh": BENCH}, task_extra=FAST)
    head, h4 = plan.read_text().split("### H4:")
    plan.write_text(head + "### H4:" + h4.replace("-100\n", "-150\n"))
    remote = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    done = cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", cwd=root)
    assert done.returncode == 0, done.stderr
    status = json.loads(cli("status", "run", "--json", cwd=root).stdout)
    decided = {e["id"]: e["decision"] for e in status["experiments"]}
    assert decided == {"r1-H1": "kept", "r1-H2": "kept", "r1-H3": "kept", "r1-H4": "failed", "r1-combine-H3": "failed",
                       "r1-combine-H2": "kept", "r2-H4": "kept"}, decided
    return root, repo, remote, status, done.stdout


def run_repo(root, *args):
    return git(root / "run" / "repo.git", *args)


def test_apply_makes_one_commit_per_kept_change_on_the_base_and_touches_nothing_else(stacked_run, tmp_path):
    root, repo, _, status, _ = stacked_run
    clone = tmp_path / "user"  # a checkout of its own, so the other tests' branches do not meet this one
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (clone / "notes.txt").write_text("work in progress\n")  # uncommitted work of the user's: left as it is
    git(clone, "checkout", "-q", "-b", "mine")
    before = snapshot_of_user_repo(clone)
    done = cli("apply", "run", "--repo", str(clone), "--branch", "perf/results", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "3 commit(s) on the run's base commit" in done.stdout
    after = {k: v for k, v in snapshot_of_user_repo(clone).items() if "perf/results" not in k}
    assert after == before  # working tree, index, HEAD, current branch: unchanged; only the new ref was added
    log = git(clone, "log", "--format=%H %P", "perf/results").splitlines()
    assert len(log) == 4 and log[-1].split()[0] == status["base_commit"]  # three commits on the run's base
    assert git(clone, "rev-parse", "perf/results^{tree}") == run_repo(root, "rev-parse", f"{status['best_commit']}^{{tree}}")
    subjects = git(clone, "log", "--reverse", "--format=%s", f"{status['base_commit']}..perf/results").splitlines()
    assert subjects == ["H1: Try H1", "H2: Try H2", "H4: Try H4"]
    message = git(clone, "log", "-1", "--format=%B", "perf/results~1")
    assert "Measured effect on score (higher is better): +" in message and "interleaved pairs" in message
    assert "Stacked onto the previous kept changes (r1-combine-H2)" in message
    assert "Sources:\n- local:notes.txt — Notes" in message and "experiment r1-combine-H2" in message
    assert all(len(line) <= 72 for line in message.splitlines())

    again = cli("apply", "run", "--repo", str(clone), "--branch", "perf/results", cwd=root)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.strip().splitlines() == ["research-agent: branch perf/results already exists in user/; choose another with --branch"]


def test_one_count_of_kept_changes_in_summary_status_and_report(stacked_run):
    root, _, _, _, summary = stacked_run
    assert "3 kept into the best, 1 won alone but dropped when stacking" in summary
    table = cli("status", "run", cwd=root, env={"COLUMNS": "120"}).stdout
    assert "3 kept into the best, 1 won alone but dropped when stacking" in " ".join(table.split())
    report = (root / "run" / "report.md").read_text()
    assert "3 kept into the best, 1 won alone but dropped when stacking" in report
    assert "research-agent apply" in report and "merge --ff-only" not in report


class GitHubAPI(ReplayServer):
    """The recorded GET /repos/PyGithub/PyGithub (default branch main) and a pulls endpoint that answers
    the way GitHub does (201, the pull request object) and records what PyGithub sent."""

    def __init__(self):
        super().__init__(fallback=self._pulls)
        self.pulls = []
        for recorded in load_replay("pygithub_Repository.setUp.txt"):
            if recorded.method == "GET" and recorded.path == "/repos/PyGithub/PyGithub":
                self.add("GET", recorded.path, recorded.reply(self.url))

    def _pulls(self, method, path, query, body):
        if method != "POST" or path != "/repos/PyGithub/PyGithub/pulls":
            return None
        sent = json.loads(body)
        self.pulls.append(sent)
        number = len(self.pulls)
        return Reply(201, json.dumps({"number": number, "title": sent["title"], "body": sent["body"], "state": "open",
                                      "html_url": f"https://github.com/PyGithub/PyGithub/pull/{number}",
                                      "url": f"{self.url}/repos/PyGithub/PyGithub/pulls/{number}",
                                      "head": {"ref": sent["head"]}, "base": {"ref": sent["base"]}}),
                     {"Content-Type": "application/json"})


def test_pr_pushes_the_branch_and_opens_a_pull_request_with_improvements(stacked_run):
    root, repo, remote, status, _ = stacked_run
    missing = cli("pr", "run", "--github-repo", "PyGithub/PyGithub", cwd=root, env={"GITHUB_TOKEN": ""})
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert missing.stderr.startswith("research-agent: pr needs a GitHub token")
    with GitHubAPI() as api:
        env = {"GITHUB_TOKEN": "test-token", "RESEARCH_AGENT_GITHUB_URL": api.url}
        done = cli("pr", "run", "--github-repo", "PyGithub/PyGithub", cwd=root, env=env)
        assert done.returncode == 0, done.stderr
    assert "pull request #1: https://github.com/PyGithub/PyGithub/pull/1 (research-agent/run → main)" in done.stdout
    [sent] = api.pulls
    assert sent["head"] == "research-agent/run" and sent["base"] == "main"
    assert sent["body"] == (root / "run" / "IMPROVEMENTS.md").read_text()
    pushed = git(remote, "rev-parse", "refs/heads/research-agent/run")
    assert git(repo, "rev-parse", "research-agent/run") == pushed
    assert git(remote, "rev-parse", f"{pushed}^{{tree}}") == run_repo(root, "rev-parse", f"{status['best_commit']}^{{tree}}")


def test_pr_split_one_per_independent_change_and_stacks_the_dependent_one(stacked_run):
    root, repo, remote, status, _ = stacked_run
    with GitHubAPI() as api:
        env = {"GITHUB_TOKEN": "test-token", "RESEARCH_AGENT_GITHUB_URL": api.url}
        done = cli("pr", "run", "--split", "--github-repo", "PyGithub/PyGithub", "--branch", "split", cwd=root, env=env)
        assert done.returncode == 0, done.stderr
    heads = {p["head"]: p for p in api.pulls}
    assert set(heads) == {"split-H1", "split-H2", "split-H4"}
    assert heads["split-H1"]["base"] == "main" and heads["split-H2"]["base"] == "main"
    assert heads["split-H4"]["base"] == "split-H1"  # H4 changes the line H1 changed: it needs H1
    assert "stacked on split-H1" in done.stdout and "Stacked:" in heads["split-H4"]["body"]
    for name in ("split-H1", "split-H2"):  # each alone on the original base: one commit on it
        assert git(remote, "rev-parse", f"{name}^") == status["base_commit"]
    assert git(remote, "show", "split-H2:factor.txt") == "1.2" and git(remote, "show", "split-H2:value.txt") == "100"
    assert git(remote, "show", "split-H4:value.txt") == "170" and git(remote, "rev-parse", "split-H4^") == git(remote, "rev-parse", "split-H1")
    assert "H2" in heads["split-H2"]["title"] and "## 1. H2: Try H2" in heads["split-H2"]["body"]


@pytest.mark.slow
def test_apply_on_the_demo_a_snapshot_target_puts_the_change_under_its_folder(tmp_path):
    user = tmp_path / "project"
    shutil.copytree(DEMO, user / "kernels" / "demo")
    git(user.parent, "init", "-q", "-b", "main", str(user))
    git(user, "add", "-A")
    git(user, "commit", "-qm", "the project")
    before = snapshot_of_user_repo(user)
    env = {"RESEARCH_AGENT_CACHE": str(tmp_path / "cache")}
    done = cli("optimize", "kernels/demo/task.yaml", "--offline", "--run-dir", str(tmp_path / "run"), cwd=user, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    applied = cli("apply", str(tmp_path / "run"), cwd=user)
    assert applied.returncode == 0, applied.stderr
    assert "1 commit(s) on HEAD" in applied.stdout
    assert {k: v for k, v in snapshot_of_user_repo(user).items() if "research-agent" not in k} == before
    branch = "research-agent/run"
    assert git(user, "rev-parse", f"{branch}^") == git(user, "rev-parse", "HEAD")  # on their history, not the run's
    assert git(user, "diff", "--name-only", "HEAD", branch) == "kernels/demo/kernel.c"
    best = git(tmp_path / "run" / "repo.git", "show", "ra/run/best:kernel.c")
    assert git(user, "show", f"{branch}:kernels/demo/kernel.c") == best
    assert "fast-matmul" in git(user, "log", "-1", "--format=%B", branch)
