"""Local sources: folders of notes (Markdown, text, PDF) and local git repos named as competitors.

They need no network, so private material and air-gapped runs work. Everything read here is
untrusted data like any fetched text: it is quoted to the planner, never obeyed or executed.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from datetime import date
from pathlib import Path

from .. import git
from ..text import first_line
from .base import SourceItem

NOTE_SUFFIXES = (".md", ".markdown", ".txt", ".pdf")
MAX_NOTES = 200  # a generous cap: ranking picks the few that matter
MAX_TEXT = 400_000  # characters kept per note
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__"}
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")

# Never read the user's git hooks, fsmonitor or pagers into play while inspecting a local repo.
GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1"}


def _rel_id(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(os.path.relpath(path.resolve(), root.resolve()))
    return "local:" + rel.as_posix()


def _mtime_date(path: Path) -> str:
    return date.fromtimestamp(path.stat().st_mtime).isoformat()


def _markdown_title(text: str) -> str:
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = HEADING.match(line)
        if match:
            return match.group(1).strip()
    return ""


class LocalNotes:
    """Every .md/.markdown/.txt/.pdf under the folders, as kind="note" items with ids relative to root."""

    name = "local"

    def __init__(self, folders: list[Path], root: Path):
        self.folders = [Path(folder) for folder in folders]
        self.root = Path(root)
        self.notices: list[str] = []

    def _notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    def files(self) -> list[Path]:
        found: dict[str, Path] = {}
        for folder in self.folders:
            if not folder.is_absolute() and (self.root / folder).exists():
                folder = self.root / folder
            if not folder.exists():
                self._notice(f"local notes: {_rel_id(folder, self.root)[6:]} not found, skipped")
                continue
            if folder.is_file():
                candidates = [folder] if folder.suffix.lower() in NOTE_SUFFIXES else []
            else:
                candidates = []
                for dirpath, dirnames, filenames in os.walk(folder):  # does not follow symlinked folders
                    dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
                    for filename in sorted(filenames):
                        if Path(filename).suffix.lower() in NOTE_SUFFIXES and not filename.startswith("."):
                            candidates.append(Path(dirpath) / filename)
            for path in candidates:
                if path.is_file():
                    found.setdefault(str(path.resolve()), path)
        return sorted(found.values(), key=lambda p: _rel_id(p, self.root))

    def search(self, query: str, limit: int) -> list[SourceItem]:
        """All notes (query and limit do not select: ranking happens later), at most MAX_NOTES."""
        items: list[SourceItem] = []
        files = self.files()
        if len(files) > MAX_NOTES:
            self._notice(f"local notes: {len(files)} files, only the first {MAX_NOTES} read")
            files = files[:MAX_NOTES]
        for path in files:
            item = self.read(path)
            if item is not None:
                items.append(item)
        return items

    def read(self, path: Path) -> SourceItem | None:
        item_id = _rel_id(path, self.root)
        meta: dict = {"path": item_id[len("local:"):]}
        if path.suffix.lower() == ".pdf":
            try:
                text, title = _pdf_text(path)
            except Exception as error:  # pypdf raises many kinds on a damaged file
                self._notice(f"local notes: {meta['path']} is not a readable PDF ({type(error).__name__}), skipped")
                return None
            title = title or first_line(text)
            meta["format"] = "pdf"
        else:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as error:
                self._notice(f"local notes: cannot read {meta['path']} ({error.strerror or type(error).__name__}), skipped")
                return None
            is_markdown = path.suffix.lower() in (".md", ".markdown")
            title = (_markdown_title(text) if is_markdown else "") or first_line(text).lstrip("#").strip()
            meta["format"] = "markdown" if is_markdown else "text"
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT]
            meta["truncated"] = True
        return SourceItem(
            id=item_id, kind="note", title=(title or path.name)[:300], url="", text=text, source=self.name,
            signals={"updated": _mtime_date(path)}, meta=meta,
        )


def _pdf_text(path: Path) -> tuple[str, str]:
    """(text of every page joined, metadata title or "")."""
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are reported as notices instead
    reader = PdfReader(str(path), strict=False)
    pages = []
    for page in reader.pages:
        pages.append(page.extract_text() or "")
    title = ""
    try:
        metadata = reader.metadata
        if metadata is not None and metadata.title:
            title = str(metadata.title).strip()
    except Exception:
        title = ""
    return "\n\n".join(pages), title


def _git(args: list[str]):  # the layer, with this source's env and timeout
    return git.call(None, *args, env=GIT_ENV, timeout=120, user=True)


def _readme_first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line and not line.startswith(("<", "![", "[![", "---", "===")):
            return line[:200]
    return ""


README_NAMES = ("README.md", "README.markdown", "README.rst", "README.txt", "README", "readme.md", "Readme.md")


class LocalCompetitors:
    """Local git repositories (a folder, bare or not, or a git bundle file) named as competitors."""

    name = "local-competitors"

    def __init__(self, repos: list[str], root: Path):
        self.repos = list(repos)
        self.root = Path(root)
        self.notices: list[str] = []

    def search(self, query: str, limit: int) -> list[SourceItem]:
        items = []
        for entry in self.repos:
            item = self.read(entry)
            if item is not None:
                items.append(item)
        return items

    def read(self, entry: str) -> SourceItem | None:
        written = Path(entry).expanduser()
        path = written if written.is_absolute() else self.root / written
        shown = Path(entry).as_posix()
        if not path.exists():
            self.notices.append(f"local competitor {shown}: not found, skipped")
            return None
        path = path.resolve()
        if path.is_file():
            readme, updated = self._from_bundle(path)
            if readme is None:
                self.notices.append(f"local competitor {shown}: not a git bundle, skipped")
                return None
            name = path.name.removesuffix(".bundle")
        else:
            readme, updated = self._from_folder(path)
            if readme is None:
                self.notices.append(f"local competitor {shown}: not a git repository, skipped")
                return None
            name = path.name.removesuffix(".git")
        first = _readme_first_line(readme)
        if first.lower().startswith(name.lower() + ":"):
            first = first[len(name) + 1:].strip()
        return SourceItem(
            id="local:" + shown.removeprefix("./"), kind="competitor",
            title=f"{name}: {first or 'local competitor'}", url="", text=readme, source="local",
            signals={"updated": updated} if updated else {},
            meta={"clone_url": str(path), "local": True},
        )

    @staticmethod
    def _head_readme(git_dir_args: list[str]) -> tuple[str, str]:
        readme = ""
        for name in README_NAMES:
            shown = _git([*git_dir_args, "show", f"HEAD:{name}"])
            if shown.returncode == 0:
                readme = shown.text
                break
        updated = _git([*git_dir_args, "log", "-1", "--format=%cs", "HEAD"])
        return readme[:MAX_TEXT], updated.text.strip() if updated.returncode == 0 else ""

    def _from_folder(self, path: Path) -> tuple[str | None, str]:
        """(README text at HEAD or "", last commit date); README None when not a git repository."""
        probe = _git(["-C", str(path), "rev-parse", "--git-dir"])
        if probe.returncode != 0:
            return None, ""
        toplevel = _git(["-C", str(path), "rev-parse", "--is-bare-repository", "--show-toplevel"])
        lines = toplevel.text.splitlines()
        if lines and lines[0] == "false" and len(lines) > 1 and Path(lines[1]).resolve() != path:
            return None, ""  # a plain folder inside some other repository
        return self._head_readme(["-C", str(path)])

    def _from_bundle(self, path: Path) -> tuple[str | None, str]:
        heads = _git(["bundle", "list-heads", str(path)])
        if heads.returncode != 0 or not heads.text.strip():
            return None, ""
        with tempfile.TemporaryDirectory(prefix="research-agent-bundle-") as scratch:
            clone = Path(scratch) / "repo.git"
            cloned = _git(["clone", "--quiet", "--bare", "--", str(path), str(clone)])
            if cloned.returncode != 0:
                return None, ""
            return self._head_readme(["--git-dir", str(clone)])
