"""Mining: clone the chosen repos, forks and PRs, find their hot files, and turn their commits into patches.

Clones are shallow (remote URLs also blob-filtered) and live in CACHE/repos/<name>, reused across
runs (fetched again when online) and guarded by a file lock per repo so two runs never clone the
same repo at once. For forks, competitors and PRs, the commits the target does not have are read
oldest first, each with its changes under the target's names (renames in the fork followed back,
see history.py), and applied to the target commit with `git apply --3way --cached` on a private
index — a cherry-pick without a checkout. A commit that does not apply alone is tried stacked on
the earlier mined commits it depends on (those touching its files); protected files are left out.
Each result is a CandidatePatch (a diff against the target, holding one or more commits); every
commit read is a MinedCommit, held by a patch or skipped with the reason. Run again against a new
best commit, the same mining retries what did not apply before.

Everything cloned is untrusted: nothing in a clone is ever executed (hooks off, no filters, no
external diff or textconv, symlinks checked out as plain files), and its text is only quoted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from .. import git, proc
from ..text import clip, first_line, last_line
from .base import SourceItem
from .history import ZERO, Change, Commit, advance, ancestors, compose, dependencies, parse_raw

COMMITS = 10  # newest commits read per fork, competitor or branch (deeper research reads more)
MAX_STACK = 12  # commits in one stacked patch
DEPTH = 50  # enough history for the commits a fork has on top of its fork point
MAX_FILE_BYTES = 512 * 1024
MAX_FILES_SCANNED = 5000
SNIPPET_RADIUS = 2  # lines either side of a hit
CLONE_TIMEOUT = 900
GIT_TIMEOUT = 180
LOCK_TIMEOUT = 1200
REMOTE = re.compile(r"^(https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:")
ALLOWED_SCHEMES = ("https://", "http://", "git://", "ssh://", "file://")
SKIP_DIRS = {".git", "node_modules"}

# Options for every git command that touches a clone: no hooks, no fsmonitor, no external diff tools.
SAFE_CONFIG = [  # on top of research_agent.git's (hooks off, no fsmonitor, no ext protocol)
    "-c", "core.symlinks=false",
    "-c", "advice.detachedHead=false",
    "-c", "diff.noprefix=false",
    "-c", "diff.mnemonicPrefix=false",
    "-c", "color.ui=false",
]
# Persisted in each clone's own config, so every later command inherits them too.
CLONE_CONFIG = ["--config", "core.hooksPath=/dev/null", "--config", "core.symlinks=false",
                "--config", "core.fsmonitor=false"]
BASE_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}


@dataclass
class Snippet:
    item_id: str
    path: str
    line: int  # 1-based line of the hit
    text: str  # a few lines around it (untrusted)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CandidatePatch:
    id: str  # f"{item.id}@{sha[:12]}" of its newest commit, or the PR item's id
    item_id: str
    title: str  # commit subject (untrusted)
    message: str  # full commit message (untrusted)
    diff: str  # unified diff against the target commit, a/ b/ prefixes, only files it has, ends with a newline
    files: list[str] = field(default_factory=list)
    applies: bool = False
    reason: str = ""  # "" or why it does not apply
    commits: list[str] = field(default_factory=list)  # ids of the mined commits it holds, oldest first
    titles: list[str] = field(default_factory=list)  # their subjects (untrusted), same order
    left_out: list[str] = field(default_factory=list)  # protected files whose changes were left out
    on: str = ""  # the commit it was made against

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MinedCommit:
    """One commit read from a source: held by one or more patches, or skipped with the reason."""

    id: str  # f"{item.id}@{sha[:12]}", or the PR item's id
    item_id: str
    sha: str
    title: str  # subject (untrusted)
    reason: str = ""  # why no patch holds it ("" when one does)
    patches: list[str] = field(default_factory=list)  # ids of the CandidatePatches holding it

    def to_dict(self) -> dict:
        return asdict(self)


class GitFailed(Exception):
    pass


def safe_name(url: str) -> str:
    """A folder name for a clone: readable (its last two path parts), unique per normalised URL or path."""
    key = url.strip().rstrip("/")
    if REMOTE.match(key):
        key = re.sub(r"\.git$", "", key)
        key = re.sub(r"^(https?|git|ssh)://(www\.)?", "", key, flags=re.IGNORECASE)
        key = re.sub(r"^[\w.-]+@([\w.-]+):", r"\1/", key)  # scp-like user@host:path
    parts = [part for part in re.split(r"[/\\]+", key) if part]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts[-2:])).strip("._")[-60:]
    digest = hashlib.sha1(key.encode("utf-8", "replace")).hexdigest()[:10]
    return f"{readable or 'repo'}-{digest}"


def is_remote(url: str) -> bool:
    return bool(REMOTE.match(url.strip()))


class Miner:
    """`base_commit` is the commit patches are made for: the run's base, or later its best
    (`target_label` says which in the reasons); `protected` are the task's protected globs;
    `in_target` maps the ids of commits already merged into it to how (e.g. "kept as H2")."""

    def __init__(self, cache: Path, base_repo: Path, base_commit: str, offline: bool = False,
                 protected: list[str] | None = None, refresh: bool = True, target_label: str = "base",
                 in_target: dict[str, str] | None = None):
        self.cache = Path(cache)
        self.repos_dir = self.cache / "repos"
        self.base_repo = Path(base_repo).resolve()
        dot_git = self.base_repo / ".git"
        self.base_git_dir = dot_git if dot_git.is_dir() else self.base_repo  # bare (RUN_DIR/repo.git) or a checkout
        self.base_commit = base_commit
        self.offline = offline
        self.refresh = refresh  # fetch cached clones again (off when re-mining within a run)
        self.protected = list(protected or [])
        self.target_label = target_label
        self.notices: list[str] = []
        self.commits: list[MinedCommit] = []  # every commit read, in the order read
        self._first_seen: dict[str, MinedCommit] = {}  # sha -> its first record (forks share history)
        self._own_patch: dict[str, bytes] = {}  # sha -> its own change under the target's names
        self._held: dict[str, list[str]] = {}  # sha -> the stack of shas that applies it, oldest first
        self._failed: dict[str, str] = {}  # sha -> why it has no patch
        self._present: set[str] = set()  # shas whose change the target already has
        self.in_target = dict(in_target or {})
        self._target_renames: dict[str, dict[str, str]] = {}
        self.clones = 0  # fresh clones made by this miner (a reused cache entry is not one)
        self.fetches = 0
        self._item_of_clone: dict[str, str] = {}
        self._base_files: set[str] | None = None

    # ----- git --------------------------------------------------------------------------------

    def _env(self, extra: dict | None = None) -> dict:
        """Laid over research_agent.git.user_environment (which drops inherited GIT_DIR and the like)."""
        env = {**BASE_ENV, **(extra or {})}
        if self.offline:
            env["GIT_ALLOW_PROTOCOL"] = "file"  # a partial clone's lazy blob fetch must not reach the network
        return env

    def _run(self, args: list[str], cwd: Path | None = None, env: dict | None = None, input: bytes | None = None,
             timeout: float = GIT_TIMEOUT) -> proc.Captured:
        """git through research_agent.git (hooks off, own process group) with the safe options; exit 124 on timeout."""
        return git.call(cwd, *SAFE_CONFIG, *args, env=self._env(env), input=input, timeout=timeout, user=True)

    def _git(self, args: list[str], cwd: Path | None = None, env: dict | None = None, check: bool = True) -> str:
        result = self._run(args, cwd=cwd, env=env)
        if check and result.returncode != 0:
            raise GitFailed(_last_line(result.stderr) or f"git {args[0]} failed")
        return result.stdout.decode("utf-8", "replace").strip() if result.returncode == 0 else ""

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    # ----- cloning ----------------------------------------------------------------------------

    @staticmethod
    def clone_url(item: SourceItem) -> str:
        url = (item.meta or {}).get("clone_url") or ""
        if not url:
            match = re.match(r"^github:([\w.-]+/[\w.-]+?)(?:[#@].*)?$", item.id)
            if match:
                url = f"https://github.com/{match.group(1)}.git"
        return str(url)

    def clone(self, item: SourceItem) -> Path | None:
        """The item's repo, cloned into (or reused from) CACHE/repos/<name>; None (with a notice) if impossible."""
        url = self.clone_url(item)
        if not url:
            self._notice(f"{item.id}: no clone URL, not mined")
            return None
        remote = is_remote(url)
        if remote and not url.startswith(ALLOWED_SCHEMES) and not re.match(r"^[\w.-]+@[\w.-]+:", url):
            self._notice(f"{item.id}: unsupported clone URL, not mined")
            return None
        if not remote and not Path(url).is_absolute():
            self._notice(f"{item.id}: local clone path is not absolute, not mined")
            return None
        from filelock import FileLock, Timeout

        self.repos_dir.mkdir(parents=True, exist_ok=True)
        dest = self.repos_dir / safe_name(url)
        try:
            with FileLock(str(dest) + ".lock", timeout=LOCK_TIMEOUT):
                path = self._clone_locked(item, url, remote, dest)
        except Timeout:
            self._notice(f"{item.id}: another run held the clone lock too long, not mined")
            return None
        if path is not None:
            self._item_of_clone[str(path)] = item.id
        return path

    def _is_clone(self, dest: Path) -> bool:
        return (dest / ".git").is_dir() and self._run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd=dest).returncode == 0

    def _clone_locked(self, item: SourceItem, url: str, remote: bool, dest: Path) -> Path | None:
        if self._is_clone(dest):
            if (remote and self.offline) or not self.refresh:
                return dest  # offline, or re-mining: the cached clone as it is
            self._update(item, dest, remote)
            return dest
        if remote and self.offline:
            self._notice(f"{item.id}: offline and not in the clone cache, not mined")
            return None
        if not remote and not Path(url).exists():
            self._notice(f"{item.id}: {Path(url).name} not found, not mined")
            return None
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)  # a broken leftover
        for leftover in dest.parent.glob(f".{dest.name}.tmp-*"):  # from a run that died mid-clone (we hold the lock)
            shutil.rmtree(leftover, ignore_errors=True)
        scratch = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        how = ["--depth", str(DEPTH), "--filter=blob:none", "--no-tags"] if remote else ["--no-hardlinks"]
        result = self._run(["clone", "--quiet", *CLONE_CONFIG, *how, "--", url, str(scratch)], timeout=CLONE_TIMEOUT)
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            self._notice(f"{item.id}: clone failed: {_last_line(result.stderr) or 'git clone failed'}")
            return None
        scratch.rename(dest)
        self.clones += 1
        return dest

    def _update(self, item: SourceItem, dest: Path, remote: bool) -> None:
        args = ["fetch", "--quiet", "--no-tags", "--force"] + (["--depth", str(DEPTH)] if remote else []) + ["origin"]
        result = self._run(args, cwd=dest, timeout=CLONE_TIMEOUT)
        if result.returncode != 0:
            self._notice(f"{item.id}: fetch failed, using the cached clone: {_last_line(result.stderr)}")
            return
        self.fetches += 1
        tip = self._git(["rev-parse", "--verify", "--quiet", "refs/remotes/origin/HEAD^{commit}"], cwd=dest, check=False)
        if tip and tip != self._git(["rev-parse", "HEAD"], cwd=dest, check=False):
            reset = self._run(["reset", "--quiet", "--hard", tip], cwd=dest)
            if reset.returncode != 0:
                self._notice(f"{item.id}: could not update the cached clone: {_last_line(reset.stderr)}")

    # ----- hot files --------------------------------------------------------------------------

    def hot_files(self, clone: Path, keywords: list[str], target_files: list[str], limit: int = 10,
                  item_id: str | None = None) -> list[Snippet]:
        """Files of the clone that match the target's files (same path or name) or hit the goal's keywords.

        One snippet per file, at its line with the most distinct keywords (line 1 for a name-only
        match), best files first. A file identical to the base's file at the same path is left out:
        it has nothing the target lacks.
        """
        clone = Path(clone)
        item_id = item_id or self._item_of_clone.get(str(clone)) or self._item_of_clone.get(str(clone.resolve())) or f"local:{clone.name}"
        words = sorted({w.lower() for w in keywords if len(w.strip()) >= 3})
        paths = {PurePosixPath(f).as_posix() for f in target_files}
        names = {PurePosixPath(f).name for f in target_files}
        same_as_base = self._same_as_base(clone)
        scored: list[tuple[float, str, int, str]] = []
        scanned = 0
        for dirpath, dirnames, filenames in os.walk(clone):
            if scanned >= MAX_FILES_SCANNED:
                break
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for filename in sorted(filenames):
                if scanned >= MAX_FILES_SCANNED:
                    break
                path = Path(dirpath) / filename
                if path.is_symlink() or not path.is_file():
                    continue
                rel = path.relative_to(clone).as_posix()
                if rel in same_as_base:
                    continue
                exact, same_name = rel in paths, filename in names
                try:
                    if path.stat().st_size > MAX_FILE_BYTES:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                scanned += 1
                if b"\0" in data[:8192]:
                    continue
                lines = data.decode("utf-8", "replace").splitlines()
                best_line, best_hits, total = 0, 0, 0
                found: set[str] = set()
                for number, line in enumerate(lines, 1):
                    low = line.lower()
                    hits = {w for w in words if w in low}
                    if hits:
                        total += len(hits)
                        found |= hits
                        if len(hits) > best_hits:
                            best_line, best_hits = number, len(hits)
                score = 10 * exact + 5 * same_name + 3 * len(found) + min(total, 20)
                if score <= 0:
                    continue
                line = best_line or 1
                start, end = max(1, line - SNIPPET_RADIUS), min(len(lines), line + SNIPPET_RADIUS)
                text = "\n".join(row[:200] for row in lines[start - 1:end])
                scored.append((score, rel, line, text))
        scored.sort(key=lambda entry: (-entry[0], entry[1]))
        return [Snippet(item_id, rel, line, text) for _score, rel, line, text in scored[:limit]]

    def _blobs(self, args: list[str], cwd: Path | None = None, env: dict | None = None) -> dict[str, str]:
        """{path: blob id} from `git ls-tree -r -z ...`."""
        listing = self._run(["ls-tree", "-r", "-z", *args], cwd=cwd, env=env)
        blobs = {}
        for entry in listing.stdout.decode("utf-8", "surrogateescape").split("\0"):
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            if path and len(parts) == 3 and parts[1] == "blob":
                blobs[path] = parts[2]
        return blobs

    def _same_as_base(self, clone: Path) -> set[str]:
        base = self._blobs([self.base_commit], env={"GIT_DIR": str(self.base_git_dir)})
        if not base:
            return set()
        head = self._blobs(["HEAD"], cwd=clone)
        return {path for path, blob in head.items() if base.get(path) == blob}

    # ----- candidate patches --------------------------------------------------------------------

    def base_files(self) -> set[str]:
        if self._base_files is None:
            listing = self._run(["ls-tree", "-r", "-z", "--name-only", self.base_commit], env={"GIT_DIR": str(self.base_git_dir)})
            self._base_files = {name for name in listing.stdout.decode("utf-8", "surrogateescape").split("\0") if name}
        return self._base_files

    def _with_base(self) -> dict:
        """Env for commands in a clone that must also see the base's objects (read-only, nothing copied)."""
        return {"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.base_git_dir / "objects")}

    def candidate_patches(self, item: SourceItem, clone: Path, limit: int = COMMITS) -> list[CandidatePatch]:
        """The item's commits the target lacks (its newest `limit`), as patches for the target commit.

        Every commit read is recorded in `self.commits`: held by a patch, or skipped with the reason.
        A commit that does not apply on its own is tried stacked on the earlier mined commits it
        depends on; renames are followed; protected files are left out of a patch.
        """
        clone = Path(clone)
        try:
            commits = self._pr_history(item, clone) if item.kind == "pr" else self._branch_history(clone, limit)
        except GitFailed as error:
            self._notice(f"{item.id}: commits not read: {error}")
            return []
        if not commits:
            return []
        with tempfile.TemporaryDirectory(prefix="research-agent-apply-") as scratch:
            applier = _Applier(self, clone, Path(scratch))
            if applier.tree is None:
                self._notice(f"{item.id}: {self.target_label} commit not readable, patches not made")
                return []
            patches = self._mine(item, commits, applier)
        if not patches:
            self._notice(f"{item.id}: none of its {len(commits)} commit(s) gives a patch for the {self.target_label}")
        return patches

    def _mine(self, item: SourceItem, commits: list[Commit], applier: "_Applier") -> list[CandidatePatch]:
        by_sha = {commit.sha: commit for commit in commits}
        earlier = ancestors(commits)
        target_files = self.base_files()
        patches: list[CandidatePatch] = []
        for commit in commits:
            record = MinedCommit(id=item.id if item.kind == "pr" else f"{item.id}@{commit.sha[:12]}", item_id=item.id,
                                 sha=commit.sha, title=commit.subject[:300])
            self.commits.append(record)
            first = self._first_seen.get(commit.sha)
            if first is not None:  # the same commit in another fork (forks share history)
                record.reason = f"duplicate of {first.id}"
                continue
            self._first_seen[commit.sha] = record
            if record.id in self.in_target:
                record.reason = f"in the {self.target_label} ({self.in_target[record.id]})"
                self._present.add(commit.sha)
                continue
            reason, changes, left_out = self._usable(commit, target_files)
            if reason:
                record.reason = self._failed[commit.sha] = reason
                continue
            try:
                self._own_patch[commit.sha] = applier.patch_of(commit, changes)
            except GitFailed as error:
                record.reason = self._failed[commit.sha] = f"not turned into a patch: {error}"
                continue
            alone = applier.apply([self._own_patch[commit.sha]])
            if alone.ok and not alone.changed[0]:
                record.reason = f"already in the {self.target_label}"
                self._present.add(commit.sha)
                continue
            stack, applied = [commit.sha], alone
            if not alone.ok:
                eligible = {sha for sha in by_sha if sha in self._own_patch and sha not in self._present and sha != commit.sha}
                deps = dependencies(commit, earlier, by_sha, eligible)
                reason = self._stack_problem(commit, deps, alone.failure)
                if reason:
                    record.reason = self._failed[commit.sha] = reason
                    continue
                stack = list(dict.fromkeys(sha for dep in deps for sha in self._held[dep])) + [commit.sha]
                applied = applier.apply([self._own_patch[sha] for sha in stack])
                if not applied.ok:
                    record.reason = self._failed[commit.sha] = (
                        f"does not apply to the {self.target_label}, even on top of the {len(stack) - 1} earlier "
                        f"commit(s) it depends on: {applied.failure}")
                    continue
                stack = [sha for sha, changed in zip(stack, applied.changed) if changed]
            self._held[commit.sha] = stack
            try:
                diff = applier.diff(applied.tree)
            except GitFailed as error:
                record.reason = self._failed[commit.sha] = f"not turned into a patch: {error}"
                continue
            held = [self._first_seen[sha] for sha in stack]
            patch = CandidatePatch(id=record.id, item_id=item.id, title=commit.subject[:300], message=commit.message[:20000],
                                   diff=diff, files=_diff_paths(diff), applies=True, commits=[m.id for m in held],
                                   titles=[m.title for m in held], left_out=left_out, on=self.base_commit)
            patches.append(patch)
            for mined in held:
                mined.patches.append(patch.id)
        return patches

    def _usable(self, commit: Commit, target_files: set[str]) -> tuple[str, list[Change], list[str]]:
        """(why the commit gives no patch, or "", its changes to the target's files, protected files left out)."""
        if len(commit.parents) > 1:
            return "merge commit (its side branch's commits are mined one by one)", [], []
        if not commit.parents:
            return "root commit (an import of the code, not a change to it)", [], []
        if not commit.changes:
            return "changes nothing", [], []
        content = [change for change in commit.changes if not change.pure_rename]
        if not content:
            moves = ", ".join(f"{c.old_path} → {c.new_path}" for c in commit.changes[:3])
            return f"only renames files ({moves}): nothing to measure", [], []
        in_target = [change for change in content if change.identity in target_files]
        if not in_target:
            names = ", ".join(sorted({c.new_path or c.old_path or "" for c in content})[:4])
            return f"no file the target has ({names})", [], []
        from ..experiment import protected_touched

        protected = protected_touched(sorted({c.identity for c in in_target}), self.protected) if self.protected else []
        rest = [change for change in in_target if change.identity not in protected]
        if not rest:
            return f"only protected files ({', '.join(protected)})", [], []
        return "", rest, protected

    def _stack_problem(self, commit: Commit, deps: list[str], failure: str) -> str:
        if not deps:
            return f"does not apply to the {self.target_label}: {failure}"
        untried = [sha for sha in deps if sha in self._failed]
        if untried:
            sha = untried[-1]
            return f"depends on an untried commit {sha[:12]} ({self._failed[sha]})"
        stack = {sha for dep in deps for sha in self._held.get(dep, [dep])}
        if len(stack) + 1 > MAX_STACK:
            return f"does not apply alone, and depends on {len(stack)} earlier commits (more than {MAX_STACK - 1})"
        return ""

    # ----- reading the history ---------------------------------------------------------------

    def _branch_history(self, clone: Path, limit: int) -> list[Commit]:
        """The newest `limit` commits on HEAD that the base does not have, oldest first, each with its
        changes (renames followed back to the target's paths).

        With shared history that is what came after the fork point; without it (or beyond the
        shallow boundary) the most recent commits.
        """
        exclude = ["--not", self.base_commit] if self._have(clone, self.base_commit) else []
        if not exclude:
            self._notice(f"base commit {self.base_commit[:12]} not readable: the newest commits of {clone.name} are used")
        listing = self._git(["rev-list", "--topo-order", "--parents", f"--max-count={max(1, limit)}", "HEAD", *exclude],
                            cwd=clone, env=self._with_base())
        rows = [line.split() for line in listing.splitlines() if line.strip()]
        commits = [Commit(row[0], row[1:]) for row in reversed(rows)]
        self._describe(clone, commits)
        names: dict[str, dict[str, str]] = {}
        for commit in commits:
            if not commit.parents:
                names[commit.sha] = {}
                continue
            parent = commit.parents[0]
            before = names[parent] if parent in names else self._names_at(clone, parent)
            changes = self._changes(clone, parent, commit.sha)
            names[commit.sha] = advance(before, changes)
            if len(commit.parents) == 1:
                commit.changes = changes
        return commits

    def _describe(self, clone: Path, commits: list[Commit]) -> None:
        if not commits:
            return
        shown = self._run(["log", "--no-walk=unsorted", "-z", "--format=%H%x1f%s%x1f%B", *[c.sha for c in commits]],
                          cwd=clone, env=self._with_base())
        text = {}
        for entry in shown.stdout.decode("utf-8", "replace").split("\0"):
            sha, _, rest = entry.strip("\n").partition("\x1f")
            subject, _, body = rest.partition("\x1f")
            text[sha.strip()] = (subject.strip(), body.strip())
        for commit in commits:
            commit.subject, commit.message = text.get(commit.sha, ("", ""))

    def _changes(self, clone: Path, parent: str, sha: str) -> list[Change]:
        raw = self._run(["diff-tree", "-r", "-z", "-M", "--raw", "--no-abbrev", "--no-commit-id", parent, sha],
                        cwd=clone, env=self._with_base())
        if raw.returncode != 0:
            raise GitFailed(_last_line(raw.stderr) or "git diff-tree failed")
        return parse_raw(raw.stdout)

    def _renames(self, clone: Path, old: str, new: str) -> dict[str, str]:
        changes = parse_raw(self._run(["diff-tree", "-r", "-z", "-M", "--raw", "--no-abbrev", old, new],
                                      cwd=clone, env=self._with_base()).stdout)
        return {c.old_path: c.new_path for c in changes if c.status == "R"}

    def _names_at(self, clone: Path, commit: str) -> dict[str, str]:
        """Paths in `commit`'s tree that the target knows by another name (renames since the fork point)."""
        fork_point = self._git(["merge-base", commit, self.base_commit], cwd=clone, env=self._with_base(), check=False)
        if not fork_point:
            return {}
        if fork_point not in self._target_renames:
            self._target_renames[fork_point] = self._renames(clone, fork_point, self.base_commit)
        return compose(self._renames(clone, fork_point, commit), self._target_renames[fork_point])

    def _have(self, clone: Path, rev: str) -> bool:
        return self._run(["cat-file", "-e", f"{rev}^{{commit}}"], cwd=clone, env=self._with_base()).returncode == 0

    def _pr_history(self, item: SourceItem, clone: Path) -> list[Commit]:
        """The whole PR as one change: its merge commit against its first parent, else its head against
        the merge-base with the base."""
        pair = self._pr_commits(item, clone)
        if not pair:
            return []
        sha, parent = pair[0]
        commit = Commit(sha, [parent], subject=item.title, message=f"{item.title}\n\n{item.text}".strip())
        commit.changes = self._changes(clone, parent, sha)
        advance(self._names_at(clone, parent), commit.changes)
        return [commit]

    def _pr_commits(self, item: SourceItem, clone: Path) -> list[tuple[str, str]]:
        """One (sha, parent) for the whole PR: its merge commit against its first parent, else its head
        against the merge-base with the base."""
        meta = item.meta or {}
        number = meta.get("number")
        for key in ("merge_commit_sha", "head_sha"):
            sha = meta.get(key)
            if not sha or not re.fullmatch(r"[0-9a-fA-F]{7,64}", str(sha)):
                continue
            sha = str(sha)
            if not self._have(clone, sha) and not self.offline:
                depth = "2" if key == "merge_commit_sha" else str(DEPTH)
                fetched = self._run(["fetch", "--quiet", "--no-tags", "--depth", depth, "origin", sha], cwd=clone, timeout=CLONE_TIMEOUT)
                if fetched.returncode != 0 and key == "head_sha" and isinstance(number, int):
                    self._run(["fetch", "--quiet", "--no-tags", "--depth", depth, "origin", f"refs/pull/{number}/head"],
                              cwd=clone, timeout=CLONE_TIMEOUT)
            if not self._have(clone, sha):
                continue
            in_base = self._run(["merge-base", "--is-ancestor", sha, self.base_commit], cwd=clone, env=self._with_base())
            if in_base.returncode == 0:
                self._notice(f"{item.id}: already in the base, no patch")
                return []
            if key == "merge_commit_sha":
                if self._have(clone, f"{sha}^1"):
                    return [(sha, self._git(["rev-parse", f"{sha}^1"], cwd=clone))]
                continue
            fork_point = self._git(["merge-base", sha, self.base_commit], cwd=clone, env=self._with_base(), check=False)
            parent = fork_point or (self._git(["rev-parse", f"{sha}^1"], cwd=clone, check=False) if self._have(clone, f"{sha}^1") else "")
            if parent:
                return [(sha, parent)]
        self._notice(f"{item.id}: its commits could not be fetched, no patch")
        return []


@dataclass
class _Applied:
    ok: bool
    tree: str = ""
    failure: str = ""
    changed: list[bool] = field(default_factory=list)  # per patch: did it change the tree


class _Applier:
    """Applies patches to the target commit on a private index inside a clone (with the target's
    objects as alternates): `git apply --3way --cached`, so context that moved is merged like a
    cherry-pick would, and nothing is checked out or written to the run's repository."""

    def __init__(self, miner: Miner, clone: Path, scratch: Path):
        self.miner, self.clone, self.scratch = miner, clone, scratch
        self.env = miner._with_base()
        tree = miner._run(["rev-parse", "--verify", "--quiet", f"{miner.base_commit}^{{tree}}"], cwd=clone, env=self.env)
        self.tree = tree.stdout.decode().strip() if tree.returncode == 0 else None

    def _with_index(self, name: str) -> dict:
        return {**self.env, "GIT_INDEX_FILE": str(self.scratch / name)}

    def _tree(self, entries: list[tuple[str, str, str]]) -> str:
        index = self.scratch / "side"
        index.unlink(missing_ok=True)
        env = self._with_index("side")
        if entries:
            data = "".join(f"{mode} {blob}\t{path}\0" for mode, blob, path in entries).encode("utf-8", "surrogateescape")
            added = self.miner._run(["update-index", "-z", "--add", "--index-info"], cwd=self.clone, env=env, input=data)
            if added.returncode != 0:
                raise GitFailed(_last_line(added.stderr) or "git update-index failed")
        return self.miner._git(["write-tree"], cwd=self.clone, env=env)

    def patch_of(self, commit: Commit, changes: list[Change]) -> bytes:
        """The commit's own change to `changes`' files, under the target's names: straight from the
        commit when its paths are the target's, else as a diff between two trees holding only those
        files renamed back (so an edit after a rename in the fork applies to the target's file)."""
        if all(c.status != "R" and c.identity == (c.new_path or c.old_path) for c in changes):
            old, new = commit.parents[0], commit.sha
            paths = ["--", *sorted({c.identity for c in changes})]
        else:
            old = self._tree([(c.old_mode, c.old_blob, c.identity) for c in changes if c.old_blob != ZERO])
            new = self._tree([(c.new_mode, c.new_blob, c.identity) for c in changes if c.new_blob != ZERO])
            paths = []
        diff = self.miner._run(["--literal-pathspecs", "diff-tree", "-p", "--binary", "--full-index", "--no-renames",
                                "--no-commit-id", old, new, *paths], cwd=self.clone, env=self.env)
        if diff.returncode != 0:
            raise GitFailed(_last_line(diff.stderr) or "git diff-tree failed")
        return diff.stdout

    def apply(self, patches: list[bytes]) -> _Applied:
        env = self._with_index("index")
        read = self.miner._run(["read-tree", self.tree], cwd=self.clone, env=env)
        if read.returncode != 0:
            return _Applied(False, failure=_last_line(read.stderr) or "git read-tree failed")
        before, changed = self.tree, []
        for patch in patches:
            result = self.miner._run(["apply", "--3way", "--cached", "--whitespace=nowarn", "-"],
                                     cwd=self.clone, env=env, input=patch)
            if result.returncode != 0:
                return _Applied(False, failure=_apply_failure(result.stdout + b"\n" + result.stderr))
            after = self.miner._git(["write-tree"], cwd=self.clone, env=env)
            changed.append(after != before)
            before = after
        return _Applied(True, tree=before, changed=changed)

    def diff(self, tree: str) -> str:
        shown = self.miner._run(["diff-tree", "-p", "--binary", "--full-index", "--no-renames", self.tree, tree],
                                cwd=self.clone, env=self.env)
        if shown.returncode != 0:
            raise GitFailed(_last_line(shown.stderr) or "git diff-tree failed")
        text = shown.stdout.decode("utf-8", "replace")
        return text if text.endswith("\n") else text + "\n"


def _apply_failure(output: bytes) -> str:
    """`git apply --3way`'s complaint as one line: the files left in conflict, else its first error."""
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    conflicts = [line[2:].strip() for line in lines if line.startswith("U ")]
    if conflicts:
        return "conflict in " + ", ".join(conflicts[:4]) + (" …" if len(conflicts) > 4 else "")
    return _first_error(output) or "patch does not apply"


def _diff_paths(diff: str) -> list[str]:
    return list(dict.fromkeys(m.group(2) for m in re.finditer(r"^diff --git a/(.+?) b/(.+)$", diff, re.MULTILINE)))


def _last_line(data: bytes | str) -> str:
    return clip(last_line(data.decode("utf-8", "replace") if isinstance(data, bytes) else data), 300)


def _first_error(data: bytes) -> str:
    """git's first `error:`/`fatal:` line, else its first line."""
    text = data.decode("utf-8", "replace")
    errors = (line.strip() for line in text.splitlines() if line.strip().startswith(("error:", "fatal:")))
    return clip(next(errors, None) or first_line(text), 300)
