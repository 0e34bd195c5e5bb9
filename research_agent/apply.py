"""`research-agent apply`: the best result as a new branch of the user's repository, one commit per kept change.

Each kept change is replayed as a patch — `git apply --cached` on a private index, then
`git commit-tree` — onto the run's base commit when the user's repository has it (a clone
target), else onto its HEAD (a snapshot target, such as a folder inside a bigger repository: the
patch goes under that folder's path). So it works whatever history the run's repository has, and
the user's working tree, index and current branch are never touched: the only writes are new
objects and the new branch ref, created atomically (an existing branch is never moved).
"""

from __future__ import annotations

import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TargetError, UserError
from .target import GIT_IDENTITY, git
from .text import cut_at_word

WIDTH = 72  # commit message body width (git's convention)
NULL_SHA = "0" * 40


@dataclass
class Change:
    """One kept change of the best, as the run's repository holds it."""

    exp: dict  # the report's kept-change context (heading, effect_text, sources, ...)
    parent: str  # its base commit in the run's repository
    commit: str  # its candidate commit there
    alone: dict | None = None  # for a combine step: the hypothesis measured alone


@dataclass
class Applied:
    repo: Path  # the user's repository (toplevel)
    branch: str
    base: str  # the commit the branch starts from
    tip: str
    commits: list[tuple[str, str]] = field(default_factory=list)  # (sha, subject) oldest first
    onto: str = "base"  # "base": the run's base commit; "HEAD": the user's HEAD (snapshot target)


@dataclass
class Target:
    """Where in the user's repository the run's files live."""

    toplevel: Path
    prefix: str  # "" or "tasks/demo" — the run's repository root inside the user's


def default_branch(run_id: str) -> str:
    return f"research-agent/{run_id}"


def changes(run_dir: Path) -> tuple[list[Change], dict]:
    """The kept changes in the best, oldest first, and the report context they came from."""
    from .report import build_context
    from .result import kept
    from .status import read_ledger

    view = read_ledger(run_dir)
    context = build_context(run_dir, view)
    rows = {e["id"]: e for e in context["experiments"]}
    contexts = {k["id"]: k for k in context["kept"]}
    result = kept(context["experiments"], context["base_commit"], context["best_commit"])
    out = []
    for exp in result.in_best:
        alone = None
        if exp.get("kind") == "combine":
            alone = next((e for e in context["experiments"] if e.get("kind") == "hypothesis" and e["hypothesis"] == exp["hypothesis"]
                          and e.get("round") == exp.get("round") and e["decision"] == "kept"), None)
            alone = contexts.get(alone["id"]) if alone else None
        out.append(Change(contexts.get(exp["id"]) or rows[exp["id"]], exp["base_commit"], exp["cand_commit"], alone))
    return out, context


def locate(repo: Path) -> Target:
    """The user's repository holding `repo` (a checkout, or a folder inside one)."""
    if not repo.is_dir():
        raise TargetError(f"repository not found: {repo}")
    toplevel = git(["rev-parse", "--show-toplevel"], cwd=repo, check=False)
    if not toplevel:
        raise TargetError(f"{repo} is not in a git repository: pass --repo PATH, a checkout to put the branch in")
    top = Path(toplevel).resolve()
    prefix = repo.resolve().relative_to(top).as_posix()
    return Target(top, "" if prefix == "." else prefix)


def user_repo_of(run, repo: Path | None) -> Path:
    if repo is not None:
        return repo
    if run.task.repo_is_url():
        raise UserError(f"the run's target is {run.task.repo}: pass --repo PATH, your checkout of it")
    return run.task.repo_path()


def commit_message(change: Change, context: dict, run_id: str) -> str:
    """Subject `H1: title`; body: the problem, the measured effect with its interval, the sources."""
    k = change.alone or change.exp
    subject = cut_at_word(k.get("heading") or f"{k['hypothesis']}: {k.get('title') or ''}", WIDTH)
    paragraphs = []
    if k.get("problem") and k["problem"] != k.get("plan_title"):
        paragraphs.append(k["problem"])
    effect = f"Measured effect on {context['metric']} ({context['better']}): {k.get('effect_text') or '–'}"
    if k.get("pairs"):
        effect += f" over {k['pairs']} interleaved pairs"
    if k.get("cand_median") is not None and k.get("base_median") is not None:
        from .status import fmt_value

        effect += f" (candidate median {fmt_value(k['cand_median'])} vs base {fmt_value(k['base_median'])})"
    paragraphs.append(effect + ".")
    if k.get("holdout_text") and k["holdout_text"] != "–":
        paragraphs.append(f"Holdout benchmark (inputs the agent never saw): {k['holdout_text']}.")
    if change.alone is not None:
        paragraphs.append(f"Stacked onto the previous kept changes ({change.exp['id']}): "
                          f"{change.exp.get('effect_text') or '–'} over {change.exp.get('pairs') or '?'} pairs.")
    body = [textwrap.fill(p, WIDTH, break_long_words=False, break_on_hyphens=False) for p in paragraphs]
    sources = k.get("sources") or []
    if sources:
        lines = ["Sources:"]
        for s in sources:
            text = f"- {s['id']}" + (f" — {s['title']}" if s.get("title") else "")
            lines.append(textwrap.fill(text, WIDTH, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False))
        body.append("\n".join(lines))
    body.append(f"research-agent run {run_id}, experiment {change.exp['id']}.")
    return subject + "\n\n" + "\n\n".join(body) + "\n"


class Replayer:
    """Replays kept changes as commits in the user's repository, on a private index in a scratch folder."""

    def __init__(self, run, where: Target, context: dict):
        self.run, self.where, self.context = run, where, context
        self._scratch = tempfile.TemporaryDirectory(prefix="research-agent-apply-")
        self.env = {"GIT_INDEX_FILE": str(Path(self._scratch.name) / "index"), **GIT_IDENTITY}  # theirs is never read or written

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._scratch.cleanup()

    def commit(self, parent: str, change: Change) -> tuple[str, str]:
        """`change` as one commit on `parent`: (sha, subject). TargetError with git's reason if it does not apply."""
        message = commit_message(change, self.context, self.run.run_id)
        return _commit_patch(self.where, parent, _patch(self.run.repo_dir, change), message, self.env, change,
                             self._scratch.name), message.splitlines()[0]

    def builds(self, commit: str) -> str | None:
        """None if the task's build passes on `commit`'s files (exported to a scratch folder), else why not."""
        from . import git as layer
        from . import proc

        if not self.run.task.build:
            return None
        folder = Path(self._scratch.name) / f"build-{commit[:12]}"
        folder.mkdir()
        tree = f"{commit}:{self.where.prefix}" if self.where.prefix else commit
        archive = layer.call(self.where.toplevel, "archive", "--format=tar", tree, user=True)
        untar = proc.capture(["tar", "-x", "-C", str(folder)], input=archive.stdout)
        if untar.returncode != 0:
            raise TargetError(f"cannot export {commit[:12]}: {untar.stderr.decode('utf-8', 'replace').strip()}")
        result = proc.run(self.run.task.build, cwd=folder, timeout=self.run.task.timeouts.build)
        if result.ok:
            return None
        last = result.tail(1) or "no output"
        return "build timed out" if result.timed_out else f"build failed ({result.returncode}): {last}"


def start_commit(where: Target, context: dict) -> tuple[str, str]:
    """Where the branch starts: the run's base commit when the user's repository has it (a clone target;
    the branch then lies on their history), else their HEAD (a snapshot target). Returns (commit, "base"|"HEAD")."""
    base_commit = context["base_commit"]
    if base_commit and not where.prefix and _has_commit(where.toplevel, base_commit):
        return base_commit, "base"
    head = git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd=where.toplevel, check=False)
    if not head:
        raise TargetError(f"{where.toplevel.name}/ has no commit to put the branch on")
    return head, "HEAD"


def prepare(run_dir: Path, repo: Path | None):
    """The run, its kept changes and report context, and where they go in the user's repository."""
    from .rundir import open_run

    run = open_run(run_dir)
    kept_changes, context = changes(run.path)
    if not kept_changes:
        raise UserError(f"run {run.run_id} kept no change: nothing to apply")
    return run, kept_changes, context, locate(user_repo_of(run, repo))


def apply_run(run_dir: Path, repo: Path | None = None, branch: str | None = None) -> Applied:
    run, kept_changes, context, where = prepare(run_dir, repo)
    name = branch or default_branch(run.run_id)
    check_new_branch(where.toplevel, name)
    base, onto = start_commit(where, context)
    applied = Applied(where.toplevel, name, base, base, onto=onto)
    with Replayer(run, where, context) as replayer:
        for change in kept_changes:
            applied.tip, subject = replayer.commit(applied.tip, change)
            applied.commits.append((applied.tip, subject))
    create_branch(where.toplevel, name, applied.tip)
    run.ledger.event("applied", f"branch {name} in {where.toplevel}: {len(applied.commits)} commit(s)",
                     branch=name, repo=str(where.toplevel), base=base, tip=applied.tip)
    return applied


def check_new_branch(repo: Path, name: str) -> None:
    if git(["check-ref-format", "--branch", name], cwd=repo, check=False) != name:
        raise UserError(f"not a valid branch name: {name}")
    if git(["rev-parse", "--verify", "--quiet", f"refs/heads/{name}"], cwd=repo, check=False):
        raise UserError(f"branch {name} already exists in {repo.name}/; choose another with --branch")


def _has_commit(repo: Path, sha: str) -> bool:
    return bool(git(["rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"], cwd=repo, check=False))


def _patch(run_repo: Path, change: Change) -> str:
    return git(["diff", "--binary", "--full-index", "--no-renames", change.parent, change.commit], cwd=run_repo) + "\n"


def _commit_patch(where: Target, parent: str, patch: str, message: str, env: dict, change: Change, scratch: str) -> str:
    """`patch` applied to `parent`'s tree on the private index, committed on `parent`; returns the commit."""
    from . import git as layer

    git(["read-tree", parent], cwd=where.toplevel, env=env)
    args = ["apply", "--cached", "--binary", "--3way"]
    if where.prefix:
        args.append(f"--directory={where.prefix}")
    result = layer.call(where.toplevel, *args, input=patch, env=env, user=True)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
        raise TargetError(f"{change.exp['id']} does not apply to {parent[:12]} in {where.toplevel.name}/: "
                          f"{reason[-1] if reason else 'git apply failed'}")
    tree = git(["write-tree"], cwd=where.toplevel, env=env)
    message_file = Path(scratch) / "message"
    message_file.write_text(message, encoding="utf-8")
    return git(["commit-tree", tree, "-p", parent, "-F", str(message_file)], cwd=where.toplevel, env=env)


def create_branch(repo: Path, name: str, tip: str) -> None:
    """Create refs/heads/NAME at `tip`; fails, rather than moves it, if it appeared meanwhile."""
    try:
        git(["update-ref", "-m", "research-agent apply", f"refs/heads/{name}", tip, NULL_SHA], cwd=repo)
    except TargetError:
        raise UserError(f"branch {name} already exists in {repo.name}/; choose another with --branch") from None
