"""Bringing the target into the run directory never changes anything of the user's."""

import pytest

from research_agent import target
from research_agent.errors import TargetError

from .conftest import git, make_repo, snapshot_of_user_repo


def test_clean_repo_is_cloned_and_untouched(user_repo, tmp_path):
    before = snapshot_of_user_repo(user_repo)
    prepared = target.prepare(str(user_repo), False, tmp_path / "run", allow_dirty=False)
    assert prepared.base_commit == git(user_repo, "rev-parse", "HEAD")
    assert prepared.notice is None
    assert git(prepared.repo_dir, "cat-file", "-p", f"{prepared.base_commit}:a.txt") == "one"
    assert snapshot_of_user_repo(user_repo) == before


def test_dirty_repo_is_refused_without_allow_dirty(user_repo, tmp_path):
    (user_repo / "a.txt").write_text("changed\n")
    before = snapshot_of_user_repo(user_repo)
    with pytest.raises(TargetError, match="uncommitted change.*--allow-dirty"):
        target.prepare(str(user_repo), False, tmp_path / "run", allow_dirty=False)
    assert snapshot_of_user_repo(user_repo) == before


def test_dirty_repo_snapshot_with_allow_dirty_keeps_user_index(user_repo, tmp_path):
    (user_repo / "a.txt").write_text("changed\n")
    (user_repo / "new.txt").write_text("untracked\n")
    before = snapshot_of_user_repo(user_repo)
    prepared = target.prepare(str(user_repo), False, tmp_path / "run", allow_dirty=True)
    assert "uncommitted" in prepared.notice
    assert git(prepared.repo_dir, "cat-file", "-p", f"{prepared.base_commit}:a.txt") == "changed"
    assert git(prepared.repo_dir, "rev-parse", f"{prepared.base_commit}~1") == git(user_repo, "rev-parse", "HEAD")
    assert snapshot_of_user_repo(user_repo) == before
    assert git(user_repo, "status", "--porcelain").splitlines() == ["M a.txt", "?? new.txt"]


def test_folder_inside_another_repo_is_snapshotted(tmp_path):
    outer = make_repo(tmp_path / "outer", {"sub/code.c": "int x;\n", "sub/.gitignore": "*.o\n", "top.txt": "t\n"})
    (outer / "sub" / "junk.o").write_text("binary")
    before = snapshot_of_user_repo(outer)
    prepared = target.prepare(str(outer / "sub"), False, tmp_path / "run", allow_dirty=False)
    files = git(prepared.repo_dir, "ls-tree", "-r", "--name-only", prepared.base_commit).split()
    assert files == [".gitignore", "code.c"]  # ignored build output left out, parent files not included
    assert "snapshot" in prepared.notice
    assert snapshot_of_user_repo(outer) == before


def test_plain_folder_is_snapshotted(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "f.txt").write_text("x\n")
    prepared = target.prepare(str(folder), False, tmp_path / "run", allow_dirty=False)
    assert git(prepared.repo_dir, "ls-tree", "-r", "--name-only", prepared.base_commit) == "f.txt"
    assert not (folder / ".git").exists()


def test_missing_path_is_a_target_error(tmp_path):
    with pytest.raises(TargetError, match="not found"):
        target.prepare(str(tmp_path / "nope"), False, tmp_path / "run", allow_dirty=False)
