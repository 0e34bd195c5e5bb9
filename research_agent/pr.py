"""`research-agent pr`: push the result's branch to the repository's GitHub remote and open a pull request.

The branch is the one `apply` makes (made here if it is not there yet; reused if `apply` made it
for this run). The pull request's body is IMPROVEMENTS.md. With `split`, each kept change gets its
own branch and pull request based on the original base — after checking that it applies, and
builds, alone; a change that does not is stacked on the branch of an earlier change it applies to,
and its pull request says so. PyGithub is imported only here (never by `--help`); the token comes
from GITHUB_TOKEN and is handed to PyGithub only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .apply import Replayer, check_new_branch, create_branch, default_branch, prepare, start_commit
from .errors import TargetError, UserError
from .target import git

URL_ENV = "RESEARCH_AGENT_GITHUB_URL"  # the API base URL (GitHub Enterprise), as for research
GITHUB_REMOTE = re.compile(r"github\.com[:/](?P<slug>[^/\s]+/[^/\s]+?)(?:\.git)?/?$")


@dataclass
class Opened:
    branch: str
    base: str  # the branch it is based on
    url: str
    number: int
    commits: list[str] = field(default_factory=list)  # subjects
    stacked: str | None = None  # why it is stacked instead of based on the original base


def github_slug(url: str) -> str | None:
    """owner/name from a GitHub remote URL (https, ssh or scp-like), else None."""
    match = GITHUB_REMOTE.search(url.strip())
    return match.group("slug") if match else None


def open_pull_requests(run_dir: Path, repo: Path | None = None, remote: str = "origin", github_repo: str | None = None,
                       base: str | None = None, split: bool = False, branch: str | None = None) -> list[Opened]:
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        raise UserError("pr needs a GitHub token that may push and open pull requests: set GITHUB_TOKEN")
    run, kept_changes, context, where = prepare(run_dir, repo)
    url = git(["remote", "get-url", remote], cwd=where.toplevel, check=False)
    if not url:
        raise UserError(f"{where.toplevel.name}/ has no remote {remote!r}: add the GitHub remote, or pass --remote NAME")
    slug = github_repo or github_slug(url)
    if not slug:
        raise UserError(f"remote {remote} ({url}) is not on github.com: pass --github-repo OWNER/NAME")
    github_repo_obj = _github(token).get_repo(slug)
    base_branch = base or _call(lambda: github_repo_obj.default_branch, slug)
    name = branch or default_branch(run.run_id)
    start, _ = start_commit(where, context)
    body = _improvements(run.path)

    if not split:
        tip = _branch_for_run(run, where.toplevel, name)
        if tip is None:
            with Replayer(run, where, context) as replayer:
                tip = start
                for change in kept_changes:
                    tip, _ = replayer.commit(tip, change)
            create_branch(where.toplevel, name, tip)
            run.ledger.event("applied", f"branch {name} in {where.toplevel}", branch=name, repo=str(where.toplevel), base=start, tip=tip)
        _push(where.toplevel, remote, name)
        title = _title(context, len(kept_changes))
        pull = _call(lambda: github_repo_obj.create_pull(base=base_branch, head=name, title=title, body=body), slug)
        opened = [Opened(name, base_branch, pull.html_url, pull.number, [title])]
    else:
        opened = _split(run, where, context, kept_changes, start, name, remote, base_branch, github_repo_obj, slug)
    for pr in opened:
        run.ledger.event("pull-request", f"{pr.url} from {pr.branch} onto {pr.base}", url=pr.url, branch=pr.branch, base=pr.base)
    return opened


def _split(run, where, context, kept_changes, start, name, remote, base_branch, gh_repo, slug) -> list[Opened]:
    """One branch and pull request per kept change, on the original base when it applies and builds alone."""
    from .report import render_improvements

    made: list[tuple[str, str, object]] = []  # (branch, tip, change) of the branches made so far
    plans = []
    with Replayer(run, where, context) as replayer:
        for change in kept_changes:
            branch_name = f"{name}-{change.exp['hypothesis']}"
            check_new_branch(where.toplevel, branch_name)
            why = None
            try:
                tip, subject = replayer.commit(start, change)
                why = replayer.builds(tip)
            except TargetError as error:
                why = f"does not apply alone: {str(error).split(': ', 1)[-1]}"
            on, on_branch = start, base_branch
            if why is not None:  # stacked: on the newest earlier branch it applies (and builds) on
                tip = None
                for earlier_branch, earlier_tip, _ in reversed(made):
                    try:
                        candidate, subject = replayer.commit(earlier_tip, change)
                    except TargetError:
                        continue
                    if replayer.builds(candidate) is None:
                        tip, on, on_branch = candidate, earlier_tip, earlier_branch
                        break
                if tip is None:
                    raise UserError(f"{change.exp['id']} {why}, nor on any earlier change's branch: open one pull request "
                                    "without --split")
                why = f"{why}; stacked on {on_branch}"
            made.append((branch_name, tip, change))
            plans.append((branch_name, tip, on_branch, subject, why, change))
    opened = []
    for branch_name, tip, on_branch, subject, why, change in plans:
        create_branch(where.toplevel, branch_name, tip)
        _push(where.toplevel, remote, branch_name)
        ids = {change.exp["id"]} | ({change.alone["id"]} if change.alone else set())
        body = render_improvements({**context, "kept": [k for k in context["kept"] if k["id"] in ids]})
        if why:
            body = f"> **Stacked:** {change.exp['hypothesis']} {why} — merge that one first.\n\n" + body
        base_name = on_branch
        pull = _call(lambda: gh_repo.create_pull(base=base_name, head=branch_name, title=subject, body=body), slug)
        opened.append(Opened(branch_name, on_branch, pull.html_url, pull.number, [subject], why))
    return opened


def _branch_for_run(run, repo: Path, name: str) -> str | None:
    """The branch's tip if `apply` made it for this run and it has not moved; None if there is no such branch."""
    tip = git(["rev-parse", "--verify", "--quiet", f"refs/heads/{name}"], cwd=repo, check=False)
    if not tip:
        return None
    for event in run.ledger.events():
        if event["kind"] == "applied" and f'"tip": "{tip}"' in (event.get("data") or ""):
            return tip
    raise UserError(f"branch {name} already exists in {repo.name}/ and is not this run's result; choose another with --branch")


def _push(repo: Path, remote: str, branch: str) -> None:
    """Push one new branch (never forced): the user's checkout is not involved."""
    from . import git as layer

    result = layer.call(repo, "push", "--quiet", "--porcelain", remote, f"refs/heads/{branch}:refs/heads/{branch}", user=True)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).decode("utf-8", "replace")
        lines = [line for line in said.strip().splitlines() if line.strip()]
        raise UserError(f"git push {remote} {branch} failed: {lines[-1] if lines else 'no reason given'}")


def _github(token: str):
    import github

    return github.Github(auth=github.Auth.Token(token), base_url=os.environ.get(URL_ENV) or "https://api.github.com",
                         timeout=30, lazy=True)


def _call(action, slug: str):
    """A PyGithub call; its errors as one line (the API's message: bad credentials, not found, a PR that exists)."""
    import github

    try:
        return action()
    except github.GithubException as error:
        data = error.data if isinstance(error.data, dict) else {}
        details = "; ".join(str(e.get("message") or e) for e in data.get("errors") or [] if e)
        message = data.get("message") or str(error)
        raise UserError(f"GitHub {slug}: {error.status} {message}" + (f" ({details})" if details else "")) from None


def _improvements(run_path: Path) -> str:
    path = run_path / "IMPROVEMENTS.md"
    if not path.is_file():
        from .report import write_report

        write_report(run_path)
    return path.read_text(encoding="utf-8")


def _title(context: dict, n: int) -> str:
    best = context.get("best") or {}
    effect = (best.get("effect") or {}).get("median")
    goal = context.get("goal") or f"Improve {context['metric']}"
    figure = ""
    if effect is not None:
        from .status import fmt_pct

        figure = f": {context['metric']} {fmt_pct(effect)}"
    return f"{goal}{figure} ({n} change{'s' if n != 1 else ''}, research-agent)"
