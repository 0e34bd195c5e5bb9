"""Bring the user's target into the run directory as a git repository of the run's own.

The user's checkout is only ever read: every git command against it runs with optional locks off
(so not even `git status` refreshes their index), and all writes go to RUN_DIR/repo.git.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import git as layer
from .errors import TargetError
from .git import GIT_IDENTITY  # noqa: F401  (re-exported: callers import it from here)


@dataclass
class Target:
    repo_dir: Path  # RUN_DIR/repo.git (bare)
    base_commit: str | None  # None: a remote target not resolved yet (dry run)
    notice: str | None  # one line to show the user, e.g. that a folder was snapshotted


def git(args: list[str], cwd: Path | None = None, env: dict | None = None, check: bool = True) -> str:
    """git on the user's repository (or the run's, made from it) through research_agent.git, with the
    user's config read (research_agent.git.user_environment); a failure as a TargetError."""
    result = layer.call(cwd, *args, env=env, user=True)
    if check and result.returncode != 0:
        said = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
        raise TargetError(f"git {args[0]} failed: {said}")
    return result.stdout.decode("utf-8", "replace").strip() if result.returncode == 0 else ""


def _last_line(stderr: bytes) -> str:
    return stderr.decode("utf-8", "replace").strip().splitlines()[-1] if stderr.strip() else ""


def prepare(source: str, is_url: bool, run_dir: Path, allow_dirty: bool, hidden: list[str] = ()) -> Target:
    """Clone, or snapshot, the target into RUN_DIR/repo.git and return the commit to start from.

    `hidden`: repo-relative files the run's repository must not contain (the holdout's): left out
    of a snapshot, and refused when the checkout's history has them."""
    repo_dir = (run_dir / "repo.git").resolve()  # git runs in other folders: no relative paths
    if is_url:
        return _clone_url(source, repo_dir)
    path = Path(source)
    if not path.exists():
        raise TargetError(f"target not found: {source}")
    if not path.is_dir():
        raise TargetError(f"target is not a directory: {source}")
    toplevel = git(["rev-parse", "--show-toplevel"], cwd=path, check=False)
    if toplevel and Path(toplevel).resolve() == path.resolve():
        tracked = [name for name in hidden if git(["ls-files", "--", name], cwd=path)]
        if tracked:
            raise TargetError(f"holdout file {tracked[0]} is tracked in {path.name}/, where the runtime would read it: "
                              "keep holdout files outside the repository (or untrack them)")
        return _clone_checkout(path, repo_dir, allow_dirty, hidden)
    inside = "a folder inside another git repository" if toplevel else "not a git repository"
    commit = _snapshot_folder(path, repo_dir, hidden)
    return Target(repo_dir, commit, f"{path.name}/ is {inside}: the run works on a snapshot of it (the original is not touched)")


def remote(url: str, run_dir: Path, resolve: bool = True) -> Target:
    """A URL target that cloud workers clone themselves: RUN_DIR/repo.git starts empty, with `origin`
    set, and receives only the candidate commits the workers send back. The base is the remote's HEAD
    (`git ls-remote`, no clone), or None when not resolved yet (a dry run): the baseline's worker
    resolves it then."""
    repo_dir = (run_dir / "repo.git").resolve()
    git(["init", "--quiet", "--bare", str(repo_dir)])
    git(["remote", "add", "origin", url], cwd=repo_dir)
    commit = None
    if resolve:
        result = layer.call(None, "ls-remote", url, "HEAD", user=True)
        if result.returncode != 0 or not result.stdout.split():
            raise TargetError(f"cannot reach {url}: {_last_line(result.stderr) or 'no HEAD'}")
        commit = result.stdout.split()[0].decode()
    return Target(repo_dir, commit, f"{url} is cloned on the workers, not here")


def _clone_url(url: str, repo_dir: Path) -> Target:
    result = layer.call(None, "clone", "--quiet", "--bare", url, str(repo_dir), user=True)
    if result.returncode != 0:
        raise TargetError(f"cannot clone {url}: {_last_line(result.stderr) or 'git clone failed'}")
    return Target(repo_dir, git(["rev-parse", "HEAD"], cwd=repo_dir), None)


def _clone_checkout(path: Path, repo_dir: Path, allow_dirty: bool, hidden: list[str] = ()) -> Target:
    head = git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=path, check=False)
    if not head:
        # No commit yet: treat it like a plain folder.
        return Target(repo_dir, _snapshot_folder(path, repo_dir, hidden), f"{path.name}/ has no commits yet: the run works on a snapshot of its files")
    dirty = git(["status", "--porcelain", "--untracked-files=no", "--ignore-submodules"], cwd=path)
    if dirty and not allow_dirty:
        count = len(dirty.splitlines())
        raise TargetError(f"{path.name}/ has {count} uncommitted change(s); commit or stash them, or pass --allow-dirty")
    git(["clone", "--quiet", "--bare", "--no-hardlinks", str(path.resolve()), str(repo_dir)])
    if not dirty:
        return Target(repo_dir, head, None)
    commit = _commit_tree_of(path, repo_dir, parent=head, hidden=hidden)
    return Target(repo_dir, commit, f"{path.name}/ has uncommitted changes: experiments start from a snapshot of them (--allow-dirty)")


def _snapshot_folder(path: Path, repo_dir: Path, hidden: list[str] = ()) -> str:
    git(["init", "--quiet", "--bare", str(repo_dir)])
    commit = _commit_tree_of(path, repo_dir, parent=None, hidden=hidden)
    git(["update-ref", "refs/heads/main", commit], cwd=repo_dir)
    git(["symbolic-ref", "HEAD", "refs/heads/main"], cwd=repo_dir)
    return commit


def _commit_tree_of(path: Path, repo_dir: Path, parent: str | None, hidden: list[str] = ()) -> str:
    """Commit the folder's files (honouring its .gitignore, leaving out `hidden`) into repo_dir, using a private index."""
    index = repo_dir / "snapshot.index"
    env = {"GIT_DIR": str(repo_dir), "GIT_WORK_TREE": str(path.resolve()), "GIT_INDEX_FILE": str(index), **GIT_IDENTITY}
    if parent:
        git(["read-tree", parent], env=env)
    git(["add", "--all", "--", ".", *(f":(exclude,literal){name}" for name in hidden)], cwd=path, env=env)
    tree = git(["write-tree"], env=env)
    index.unlink(missing_ok=True)
    args = ["commit-tree", tree, "-m", f"research-agent snapshot of {path.name}"]
    if parent:
        args += ["-p", parent]
    return git(args, env=env)
