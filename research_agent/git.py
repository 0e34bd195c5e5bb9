"""The tool's own git calls on run repositories (RUN_DIR/repo.git and its worktrees): one layer.

Every call runs with hooks off (core.hooksPath at an empty place), no fsmonitor, no system or global
config (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null), no prompts, a timeout, and the tool's
committer identity; a failure is one GitError carrying git's own message. The settings it needs are
passed with -c. The repository's own config (repo.git/config) is still read: agents cannot write it
(the fence keeps repo.git read-only). In a worktree an agent CAN write, so `in_worktree` first checks
that the worktree's `.git` is still the file naming its gitdir outside the worktree — a `.git`
directory or pointer planted by an agent would bring its own config (filters, fsmonitor) into our
`git add`.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import proc

GIT_IDENTITY = {  # author and committer of every commit the tool makes
    "GIT_AUTHOR_NAME": "research-agent",
    "GIT_AUTHOR_EMAIL": "research-agent@localhost",
    "GIT_COMMITTER_NAME": "research-agent",
    "GIT_COMMITTER_EMAIL": "research-agent@localhost",
}

TIMEOUT_S = 600.0
# Settings forced on every call. hooksPath=/dev/null: no hook can exist under it (an empty place no
# one can write); fsmonitor would run a configured program on every status/add.
FORCED = ("core.hooksPath=" + os.devnull, "core.fsmonitor=false", "core.untrackedCache=false",
          "protocol.ext.allow=never", "gc.auto=0", "maintenance.auto=false")
# Inherited variables that would point git somewhere else or run something.
DROPPED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
           "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_EXTERNAL_DIFF", "GIT_SSH", "GIT_SSH_COMMAND",
           "GIT_ASKPASS", "GIT_EDITOR", "GIT_PAGER", "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR")


class GitError(RuntimeError):
    """A git command failed; the message is `git <args>: <git's stderr>`."""

    def __init__(self, args: tuple[str, ...] | list[str], message: str, returncode: int | None = None):
        super().__init__(f"git {' '.join(args)}: {message}")
        self.git_args = tuple(args)
        self.stderr = message
        self.returncode = returncode


def environment() -> dict[str, str]:
    """The whole environment a git call gets (inherited, minus redirections, plus the fixed settings)."""
    env = {key: value for key, value in os.environ.items() if key not in DROPPED and not key.startswith("GIT_CONFIG_KEY_")
           and not key.startswith("GIT_CONFIG_VALUE_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0",
               **GIT_IDENTITY)
    return env


def argv(cwd: Path | str | None, *args: str) -> list[str]:
    """The argv of one hardened git call (for callers that run it through proc, e.g. inside the fence)."""
    forced = [part for setting in FORCED for part in ("-c", setting)]
    return ["git", *forced, *args]


# Redirections dropped even for git on the user's own repository (explicit `env` may still set them).
LOCATION = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")


def user_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """For git on the user's repository or a clone for them: their config and credentials are read
    (global excludes, credential helpers, GIT_SSH_COMMAND), the index is never refreshed, no prompt."""
    base = {key: value for key, value in os.environ.items() if key not in LOCATION}
    return {**base, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", **(env or {})}


def call(cwd: Path | str | None, *args: str, env: dict[str, str] | None = None, input: bytes | str | None = None,
         timeout: float = TIMEOUT_S, user: bool = False) -> proc.Captured:
    """`git args` through proc.capture (own process group, killed on timeout or Ctrl-C); never raises for
    git's exit status. `user`: the user's config is read (user_environment) instead of none; `env` is
    laid over either. A timeout reads as exit 124 with "timed out after N s" on stderr."""
    whole = user_environment(env) if user else {**environment(), **(env or {})}
    data = input.encode() if isinstance(input, str) else input
    try:
        result = proc.capture(argv(cwd, *args), cwd=cwd, env=whole, timeout=timeout, input=data)
    except OSError as error:
        return proc.Captured(127, b"", (error.strerror or str(error)).encode())
    if result.timed_out:
        return proc.Captured(124, result.stdout, f"timed out after {int(timeout)} s".encode(), timed_out=True)
    return result


def run(cwd: Path | str | None, *args: str, strip: bool = True, timeout: float = TIMEOUT_S, input: str | None = None,
        env: dict[str, str] | None = None, user: bool = False) -> str:
    """Run `git args` in `cwd`; its stdout (stripped unless asked not to). GitError on failure or timeout."""
    result = call(cwd, *args, env=env, input=input, timeout=timeout, user=user)
    if result.returncode != 0:
        said = result.stderr.decode("utf-8", "replace").strip() or result.stdout.decode("utf-8", "replace").strip()
        raise GitError(args, said or f"exit {result.returncode}", None if result.timed_out else result.returncode)
    out = result.stdout.decode("utf-8", "replace")
    return out.strip() if strip else out


def ok(cwd: Path | str, *args: str, timeout: float = TIMEOUT_S) -> bool:
    """True when `git args` exits 0 (for questions like `cat-file -e`)."""
    try:
        run(cwd, *args, timeout=timeout)
    except GitError:
        return False
    return True


def worktree_gitdir(workdir: Path | str) -> Path:
    """The gitdir a linked worktree's `.git` file names, refusing one an agent could have planted."""
    workdir = Path(os.path.realpath(workdir))
    dot_git = workdir / ".git"
    if dot_git.is_symlink() or not dot_git.is_file():
        raise GitError(("worktree",), f"{dot_git} is not the worktree's .git file (replaced in the worktree?)")
    text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    if not text.startswith("gitdir:"):
        raise GitError(("worktree",), f"{dot_git} does not name a gitdir")
    named = Path(text[len("gitdir:"):].strip())
    gitdir = Path(os.path.realpath(named if named.is_absolute() else workdir / named))
    if gitdir == workdir or workdir in gitdir.parents or gitdir.parent.name != "worktrees":
        raise GitError(("worktree",), f"{dot_git} points at {gitdir}, not at its repository's worktrees/ folder")
    return gitdir


def in_worktree(workdir: Path | str, *args: str, strip: bool = True, timeout: float = TIMEOUT_S) -> str:
    """`run` in a linked worktree an agent had write access to, with its gitdir checked and passed explicitly."""
    gitdir = worktree_gitdir(workdir)
    return run(workdir, f"--git-dir={gitdir}", f"--work-tree={os.path.realpath(workdir)}", *args, strip=strip, timeout=timeout)


def in_checkout(workdir: Path | str, *args: str, strip: bool = True, timeout: float = TIMEOUT_S) -> str:
    """`in_worktree` for a linked worktree, plain `run` for a repository of its own (tests, a VM's clone)."""
    if (Path(workdir) / ".git").is_file():
        return in_worktree(workdir, *args, strip=strip, timeout=timeout)
    return run(workdir, *args, strip=strip, timeout=timeout)


def head(workdir: Path | str) -> str | None:
    """HEAD's commit in `workdir`, or None when there is none (not a repository, unborn branch)."""
    try:
        return in_checkout(workdir, "rev-parse", "HEAD", timeout=30)
    except GitError:
        return None
