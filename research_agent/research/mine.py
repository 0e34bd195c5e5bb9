"""Mining: clone the chosen repos, forks and PRs, find their hot files, and turn their commits into patches.

Clones are shallow (remote URLs also blob-filtered) and live in CACHE/repos/<name>, reused across
runs (fetched again when online) and guarded by a file lock per repo so two runs never clone the
same repo at once. For forks, competitors and PRs, the commits the target's base does not have
become CandidatePatches restricted to files the base also has, each checked with
`git apply --check` against the base on a throwaway index; the applicable ones become hypotheses
that carry a diff, so the patch runtime can try them without any LLM.

Everything cloned is untrusted: nothing in a clone is ever executed (hooks off, no filters, no
external diff or textconv, symlinks checked out as plain files), and its text is only quoted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from .base import SourceItem

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
SAFE_CONFIG = [
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.symlinks=false",
    "-c", "protocol.ext.allow=never",
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
    id: str  # f"{item.id}@{sha[:12]}", or the PR item's id
    item_id: str
    title: str  # commit subject (untrusted)
    message: str  # full commit message (untrusted)
    diff: str  # unified diff, a/ b/ prefixes, only files the base has, ends with a newline
    files: list[str] = field(default_factory=list)
    applies: bool = False
    reason: str = ""  # "" or why it does not apply

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
    def __init__(self, cache: Path, base_repo: Path, base_commit: str, offline: bool = False):
        self.cache = Path(cache)
        self.repos_dir = self.cache / "repos"
        self.base_repo = Path(base_repo).resolve()
        dot_git = self.base_repo / ".git"
        self.base_git_dir = dot_git if dot_git.is_dir() else self.base_repo  # bare (RUN_DIR/repo.git) or a checkout
        self.base_commit = base_commit
        self.offline = offline
        self.notices: list[str] = []
        self.clones = 0  # fresh clones made by this miner (a reused cache entry is not one)
        self.fetches = 0
        self._item_of_clone: dict[str, str] = {}
        self._base_files: set[str] | None = None

    # ----- git --------------------------------------------------------------------------------

    def _env(self, extra: dict | None = None) -> dict:
        env = {**os.environ, **BASE_ENV, **(extra or {})}
        for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES"):
            if not extra or key not in extra:
                env.pop(key, None)
        if self.offline:
            env["GIT_ALLOW_PROTOCOL"] = "file"  # a partial clone's lazy blob fetch must not reach the network
        return env

    def _run(self, args: list[str], cwd: Path | None = None, env: dict | None = None, input: bytes | None = None,
             timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess:
        """git with the safe options, in its own process group so a timeout ends its helpers too."""
        process = subprocess.Popen(["git", *SAFE_CONFIG, *args], cwd=str(cwd) if cwd else None, env=self._env(env),
                                   stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.communicate()
            return subprocess.CompletedProcess(args, 124, b"", f"timed out after {int(timeout)} s".encode())
        return subprocess.CompletedProcess(args, process.returncode, out, err)

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
            if remote and self.offline:
                return dest  # offline: the cached clone as it is
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

    def candidate_patches(self, item: SourceItem, clone: Path, limit: int = 10) -> list[CandidatePatch]:
        """The item's commits the base lacks (newest first), as patches checked against the base."""
        clone = Path(clone)
        try:
            commits = self._pr_commits(item, clone) if item.kind == "pr" else self._branch_commits(clone, limit)
        except GitFailed as error:
            self._notice(f"{item.id}: commits not read: {error}")
            return []
        base_files = self.base_files()
        patches: list[CandidatePatch] = []
        with tempfile.TemporaryDirectory(prefix="research-agent-apply-") as scratch:
            index = Path(scratch) / "index"
            read = self._run(["read-tree", self.base_commit], env={"GIT_DIR": str(self.base_git_dir), "GIT_INDEX_FILE": str(index)})
            if read.returncode != 0:
                self._notice(f"{item.id}: base commit not readable, patches not checked: {_last_line(read.stderr)}")
                return []
            for sha, parent in commits:
                if len(patches) >= limit:
                    break
                try:
                    patch = self._patch(item, clone, sha, parent, base_files)
                except GitFailed as error:
                    self._notice(f"{item.id}@{sha[:12]}: not turned into a patch: {error}")
                    continue
                if patch is None:
                    continue
                patch.applies, patch.reason = self._check(patch.diff, index)
                patches.append(patch)
        if patches and not any(p.applies for p in patches):
            self._notice(f"{item.id}: none of its {len(patches)} commit(s) apply to the base")
        return patches

    def _branch_commits(self, clone: Path, limit: int) -> list[tuple[str, str]]:
        """(sha, parent) of the non-merge commits on HEAD that the base does not have, newest first.

        With shared history that is everything since the merge-base; without it (or beyond the
        shallow boundary) the most recent commits. Root commits are skipped: an import, not a change.
        """
        scan = max(limit * 5, DEPTH)
        exclude = ["--not", self.base_commit] if self._have(clone, self.base_commit) else []
        if not exclude:
            self._notice(f"base commit {self.base_commit[:12]} not readable: the newest commits of {clone.name} are used")
        listing = self._git(["rev-list", "--no-merges", "--parents", f"--max-count={scan}", "HEAD", *exclude],
                            cwd=clone, env=self._with_base())
        commits = []
        for line in listing.splitlines():
            shas = line.split()
            if len(shas) == 2:  # exactly one parent; none = a root or the shallow boundary
                commits.append((shas[0], shas[1]))
        return commits

    def _have(self, clone: Path, rev: str) -> bool:
        return self._run(["cat-file", "-e", f"{rev}^{{commit}}"], cwd=clone, env=self._with_base()).returncode == 0

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

    def _patch(self, item: SourceItem, clone: Path, sha: str, parent: str, base_files: set[str]) -> CandidatePatch | None:
        env = self._with_base()
        changed = self._run(["diff-tree", "-r", "-z", "--name-only", "--no-renames", "--no-commit-id", parent, sha],
                            cwd=clone, env=env)
        if changed.returncode != 0:
            raise GitFailed(_last_line(changed.stderr) or "git diff-tree failed")
        names = [n for n in changed.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
        files = [n for n in names if n in base_files]
        if not files:
            return None  # only files the target lacks
        diff = self._run(["--literal-pathspecs", "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames",
                          "--binary", "--src-prefix=a/", "--dst-prefix=b/", parent, sha, "--", *files], cwd=clone, env=env)
        if diff.returncode != 0:
            raise GitFailed(_last_line(diff.stderr) or "git diff failed")
        text = diff.stdout.decode("utf-8", "replace")
        if not text.strip():
            return None
        if not text.endswith("\n"):
            text += "\n"
        if item.kind == "pr":
            patch_id, title, message = item.id, item.title, f"{item.title}\n\n{item.text}".strip()
        else:
            shown = self._run(["show", "-s", "--format=%s%x00%B", sha], cwd=clone, env=env)
            subject, _, body = shown.stdout.decode("utf-8", "replace").partition("\0")
            patch_id, title, message = f"{item.id}@{sha[:12]}", subject.strip(), body.strip()
        return CandidatePatch(id=patch_id, item_id=item.id, title=title[:300], message=message[:20000], diff=text,
                              files=files, applies=False, reason="")

    def _check(self, diff: str, index: Path) -> tuple[bool, str]:
        """`git apply --check --cached` against the base, on a private index: nothing is written."""
        env = {"GIT_DIR": str(self.base_git_dir), "GIT_INDEX_FILE": str(index)}
        data = diff.encode("utf-8")
        result = self._run(["apply", "--check", "--cached", "-"], env=env, input=data)
        if result.returncode == 0:
            return True, ""
        reverse = self._run(["apply", "--check", "--cached", "--reverse", "-"], env=env, input=data)
        if reverse.returncode == 0:
            return False, "already in the base (the patch applies in reverse)"
        return False, "git apply --check: " + (_first_error(result.stderr) or "patch does not apply")


def _last_line(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _first_error(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("error:", "fatal:")):
            return line[:300]
    return lines[0][:300] if lines else ""
