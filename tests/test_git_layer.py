"""research_agent.git: the tool's own git calls on run repos run no hook and read no config an agent could write."""

import subprocess

import pytest

from research_agent import git
from research_agent.experiment import commit_candidate

from .conftest import make_repo


@pytest.fixture
def run_repo(tmp_path):
    """A bare run repository (as RUN_DIR/repo.git) with one linked worktree, made through the layer itself."""
    user = make_repo(tmp_path / "user", {"a.txt": "one\n"})
    bare = tmp_path / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(user), str(bare)], check=True)
    wt = tmp_path / "wt"
    git.run(bare, "worktree", "add", "--quiet", "--detach", str(wt), "HEAD")
    return bare, wt


def plant_hooks(folder, marker):
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pre-commit", "commit-msg", "post-commit", "post-checkout", "reference-transaction"):
        hook = folder / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)


def test_no_hook_of_the_run_repo_runs_not_even_through_a_configured_hooks_path(run_repo, tmp_path):
    bare, wt = run_repo
    marker = tmp_path / "hooks-ran"
    plant_hooks(bare / "hooks", marker)
    plant_hooks(tmp_path / "elsewhere", marker)
    subprocess.run(["git", "-C", str(bare), "config", "core.hooksPath", str(tmp_path / "elsewhere")], check=True)
    (wt / "a.txt").write_text("two\n")
    commit, changed = commit_candidate(wt, "candidate")
    assert changed == ["a.txt"] and len(commit) == 40
    assert not marker.exists()
    # plain git, for contrast, does run them: the test would catch a layer that stopped switching them off
    subprocess.run(["git", "-C", str(wt), "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-q",
                    "--allow-empty", "-m", "plain"], check=True)
    assert marker.exists()


def test_global_and_system_config_are_not_read(run_repo, tmp_path, monkeypatch):
    bare, wt = run_repo
    marker = tmp_path / "fsmonitor-ran"
    config = tmp_path / "global.gitconfig"
    config.write_text(f'[core]\n\tfsmonitor = "touch {marker}; false"\n[alias]\n\tstatus = "!touch {marker}"\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.fsmonitor'='touch {marker}'")
    git.in_worktree(wt, "status", "--porcelain")
    git.in_worktree(wt, "add", "--all", ".")
    assert not marker.exists()


def test_a_dot_git_replaced_in_the_worktree_is_refused_before_git_reads_it(run_repo, tmp_path):
    bare, wt = run_repo
    marker = tmp_path / "filter-ran"
    (wt / ".git").unlink()
    subprocess.run(["git", "init", "-q", str(wt)], check=True)
    subprocess.run(["git", "-C", str(wt), "config", "filter.evil.clean", f"touch {marker}; cat"], check=True)
    (wt / ".gitattributes").write_text("* filter=evil\n")
    with pytest.raises(git.GitError, match="is not the worktree's .git file"):
        commit_candidate(wt, "candidate")
    assert not marker.exists()


def test_a_dot_git_pointing_into_the_worktree_is_refused(run_repo):
    bare, wt = run_repo
    (wt / "fake").mkdir()
    (wt / ".git").write_text(f"gitdir: {wt / 'fake'}\n")
    with pytest.raises(git.GitError, match="not at its repository's worktrees/ folder"):
        git.in_worktree(wt, "status")


def test_a_failure_is_one_error_carrying_gits_own_message(run_repo):
    bare, wt = run_repo
    with pytest.raises(git.GitError) as error:
        git.run(bare, "rev-parse", "--verify", "no-such-ref^{commit}")
    assert str(error.value).startswith("git rev-parse --verify no-such-ref^{commit}: ")
    assert "fatal" in str(error.value) and error.value.returncode == 128
    assert git.head(wt) == git.run(bare, "rev-parse", "HEAD")


def test_a_timeout_kills_gits_whole_process_group(run_repo, tmp_path):
    """An alias's shell and its child run in git's process group: the timeout must end them all, not just git."""
    import psutil

    bare, _ = run_repo
    pid_file = tmp_path / "child.pid"
    hang = f"alias.hang=!sleep 600 & echo $! > {pid_file}; wait"
    result = git.call(bare, "-c", hang, "hang", timeout=2)
    assert result.returncode == 124 and result.timed_out and b"timed out after 2 s" in result.stderr
    try:
        child = psutil.Process(int(pid_file.read_text()))
        child.wait(timeout=30)  # returns once the sleep is gone; raises TimeoutExpired if it survived
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        assert child.status() == psutil.STATUS_ZOMBIE, "the alias's child outlived git's timeout"
    with pytest.raises(git.GitError, match="timed out after 2 s"):
        git.run(bare, "-c", hang, "hang", timeout=2)


def test_bytes_on_stdin_and_an_env_override_reach_git(run_repo, tmp_path):
    bare, _ = run_repo
    objects = tmp_path / "objects"
    objects.mkdir()
    result = git.call(bare, "hash-object", "-w", "--stdin", input=b"\xffbinary\n", env={"GIT_OBJECT_DIRECTORY": str(objects)})
    sha = result.text.strip()
    assert result.returncode == 0 and (objects / sha[:2] / sha[2:]).is_file()
    assert not git.ok(bare, "cat-file", "-e", sha)  # written where env said, not into the repository
