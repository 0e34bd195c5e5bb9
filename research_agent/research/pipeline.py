"""The research phase: read every source, rank, mine the chosen repos, and hand the evidence to a distiller.

Sources that fail are skipped with a one-line reason (kept in Evidence.skipped and shown in the
plan); only "nothing at all to try" is an error. arXiv runs in its own thread (it is throttled to
one request per `arxiv_delay` seconds), GitHub alongside it, Semantic Scholar after arXiv (it
needs the paper ids) — so the wall time is about the arXiv requests times the delay.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Callable

from .base import Evidence, NothingFound, SourceItem, SourceUnavailable
from .http import Http, cache_dir
from .mine import COMMITS
from .queries import build_queries, target_files

MINED_KINDS = ("fork", "competitor", "repo", "pr")


def run_research(task, base_repo: Path, base_commit: str, out_dir: Path, offline: bool = False,
                 notify: Callable[[str], None] = lambda _line: None, profile: str = "", *,
                 queries: list[str] | None = None, known: set[str] | frozenset = frozenset(), scale: int = 1,
                 history: list[dict] | None = None, target_label: str = "base",
                 in_target: dict[str, str] | None = None) -> Evidence:
    """Read, rank, mine; write out_dir/sources.json and out_dir/notes/; return the evidence.

    Between rounds the run researches again with `queries` learned from what it tried (ranked
    together with the goal), leaves out the items it already `known`s, and mines `scale` times
    deeper (more commits per fork, more forks) against the best (`target_label`, with `in_target`
    the commits merged into it)."""
    from .rank import select_for_task

    settings = task.research
    http = Http(cache_dir(), offline=offline, max_age=timedelta(days=settings.max_age_days))
    queries = list(queries) if queries else build_queries(task, base_repo, base_commit)
    notify(f"research: {len(queries)} quer{'y' if len(queries) == 1 else 'ies'}: " + "; ".join(queries))
    items, skipped = read_sources(task, http, queries, base_repo, scale)
    fresh = [item for item in items if item.id not in known]
    again = [item for item in items if item.id in known and item.kind in MINED_KINDS]  # mined deeper this time
    if not fresh and not again:
        raise NothingFound("research found nothing" + (" new" if known else "") + ": "
                        + ("; ".join(skipped) or "no source is configured"))
    ranked, selected = select_for_task(fresh, task, query="\n".join(queries) if known else None, scale=scale)
    patches, snippets, mine_skipped, commits = mine(task, [*again, *selected], base_repo, base_commit, offline,
                                                    limit=COMMITS * scale, target_label=target_label, in_target=in_target)
    skipped += mine_skipped
    evidence = Evidence(items=ranked, selected=selected, patches=patches, snippets=snippets, skipped=skipped, profile=profile,
                        commits=commits, history=list(history or []), queries=queries)
    write_artifacts(evidence, out_dir)
    notify(f"research: {len(ranked)} items read, {len(selected)} selected, {len(commits)} commit(s) read, "
           f"{sum(1 for p in patches if p.applies)} patch(es) for the {target_label}, {len(skipped)} skipped")
    return evidence


def read_sources(task, http: Http, queries: list[str], base_repo: Path, scale: int = 1) -> tuple[list[SourceItem], list[str]]:
    settings = task.research
    base = Path(task.base_dir)
    items: list[SourceItem] = []
    skipped: list[str] = []

    from .local_source import LocalCompetitors, LocalNotes

    # Local ids are relative to the target when the material lives inside it, else to the folder's
    # parent — never absolute: stable across machines and matching hand-written plans.
    target = Path(task.repo_path()) if not task.repo_is_url() else None
    notes = [LocalNotes([folder], _id_root(folder, target)) for folder in (base / f for f in settings.local)]
    for source in notes:
        items += source.search(" ".join(queries), settings.notes * 4)
    local_repos = [base / c for c in settings.competitors if _is_local(c, base)]
    remote_repos = [c for c in settings.competitors if not _is_local(c, base)]
    competitors = [LocalCompetitors([os.path.relpath(repo, _id_root(repo, target))], _id_root(repo, target)) for repo in local_repos]
    for source in competitors:
        items += source.search(" ".join(queries), 1)
    for source in (*notes, *competitors):
        skipped += source.notices

    endpoints = settings.endpoints or {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        papers = pool.submit(_papers, http, queries, settings, endpoints) if settings.papers else None
        github = pool.submit(_github, http, queries, settings, endpoints, remote_repos, _origin(task, base_repo), scale) \
            if (settings.repos or settings.prs or remote_repos) else None
        for future in (papers, github):
            if future is not None:
                found, notices = future.result()
                items += found
                skipped += notices
    return items, skipped


def _papers(http: Http, queries: list[str], settings, endpoints: dict) -> tuple[list[SourceItem], list[str]]:
    from .arxiv_source import ArxivSource
    from .semantic_scholar import SemanticScholar

    arxiv = ArxivSource(http, endpoints.get("arxiv"), delay=settings.arxiv_delay)
    found, notices = [], []
    for query in queries:
        try:
            found += arxiv.search(query, max(settings.papers, 1) * 2)
        except SourceUnavailable as error:
            notices.append(f"arXiv: skipped — {error}")
    if found:
        s2 = SemanticScholar(http, endpoints.get("semantic_scholar"), os.environ.get("S2_API_KEY"))
        notices += s2.enrich(found)
    return found, notices


def _github(http: Http, queries: list[str], settings, endpoints: dict, named: list[str], origin: str | None, scale: int = 1):
    from .github_source import GitHubSource

    github = GitHubSource(http, endpoints.get("github"), os.environ.get("GITHUB_TOKEN"))
    found: list[SourceItem] = []
    if settings.repos:
        for query in queries:
            found += github.search(query, settings.repos * 2)
    forks_of = settings.forks_of or origin
    if forks_of and settings.repos:
        found += github.forks(forks_of, settings.repos * 2 * scale)
    if forks_of and settings.prs:
        found += github.pulls(forks_of, settings.prs)
    for full_name in named:
        found += github.repo(full_name)
    return found, list(github.notices)


def mine(task, selected: list[SourceItem], base_repo: Path, base_commit: str, offline: bool, *, limit: int | None = None,
         refresh: bool = True, target_label: str = "base", in_target: dict[str, str] | None = None, snippets: bool = True):
    """(patches, snippets, notices, commits) from the selected forks, competitors, repos and PRs.

    Run again against the best (`target_label="best"`, `refresh=False`: the cached clones as they
    are), it retries what did not apply to the old one; `in_target` are the commits merged into it."""
    from .mine import COMMITS as DEFAULT, Miner

    miner = Miner(cache_dir(), base_repo, base_commit, offline=offline, protected=_protected(task, base_repo),
                  refresh=refresh, target_label=target_label, in_target=in_target)
    keywords = _keywords(task.goal)
    files = target_files(base_repo, base_commit) if snippets else []
    patches, found = [], []
    for item in selected:
        if item.kind not in MINED_KINDS:
            continue  # the miner derives a clone URL from a github: id when meta has none
        clone = miner.clone(item)
        if clone is None:
            continue
        if snippets:
            found += miner.hot_files(clone, keywords, files)
        if item.kind in ("fork", "competitor", "pr"):
            patches += miner.candidate_patches(item, clone, limit or DEFAULT)
    return patches, found, list(miner.notices), list(miner.commits)


def _protected(task, base_repo: Path) -> list[str]:
    try:
        return list(task.protected_paths())
    except (OSError, ValueError):  # a URL repo on a cloud backend: the globs as written
        return list(task.protected)


def write_artifacts(evidence: Evidence, out_dir: Path) -> None:
    """research/sources.json (every item, its scores, why selected) and research/notes/<id>.md."""
    notes_dir = out_dir / "notes"
    notes_dir.mkdir(parents=True, exist_ok=True)
    chosen = {item.id for item in evidence.selected}
    record = {
        "items": [{**item.to_dict(), "selected": item.id in chosen} for item in evidence.items],
        "patches": [{k: getattr(p, k) for k in ("id", "item_id", "title", "files", "applies", "reason", "commits", "left_out")}
                    for p in evidence.patches],
        "commits": [c.to_dict() for c in evidence.commits],
        "skipped": evidence.skipped,
    }
    (out_dir / "sources.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    for item in evidence.selected:
        quoted = "\n".join("> " + line for line in item.text.strip().splitlines()[:80])
        why = item.meta.get("selected_because", "")
        (notes_dir / f"{note_file_stem(item.id)}.md").write_text(
            f"# {item.title}\n\n- id: {item.id}\n- url: {item.url or '(local)'}\n- source: {item.source}\n"
            f"- selected: {why}\n\nQuoted as untrusted data:\n\n{quoted}\n",
            encoding="utf-8",
        )


def note_file_stem(item_id: str) -> str:
    """A source id as a file name (mine.safe_name is the other thing: a clone's folder from its URL)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("_")[:120]


def _keywords(goal: str) -> list[str]:
    stop = {"the", "a", "an", "of", "to", "and", "for", "in", "on", "speed", "up", "make", "improve", "faster"}
    return [w for w in re.findall(r"[A-Za-z][A-Za-z0-9_]{2,}", goal.lower()) if w not in stop]


def _id_root(path: Path, target: Path | None) -> Path:
    resolved = path.resolve()
    if target is not None and resolved.is_relative_to(target.resolve()):
        return target
    return resolved.parent


def _is_local(entry: str, base: Path) -> bool:
    return (base / entry).exists() or entry.startswith((".", "/")) or entry.endswith(".bundle")


def _origin(task, base_repo: Path) -> str | None:
    """owner/repo of the target when it came from GitHub (its URL or its origin remote)."""
    from ..target import git

    candidates = [task.repo] if task.repo_is_url() else []
    if not task.repo_is_url():
        folder = task.repo_path()
        toplevel = git(["rev-parse", "--show-toplevel"], cwd=folder, check=False)
        if toplevel and Path(toplevel).resolve() == folder.resolve():  # a sub-folder is not that repo's project
            candidates.append(git(["config", "--get", "remote.origin.url"], cwd=folder, check=False))
    for url in candidates:
        match = re.search(r"github\.com[:/]([^/\s]+)/([^/\s]+?)(?:\.git)?/?$", url or "")
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    return None
