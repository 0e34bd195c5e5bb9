"""Search queries from the task: the goal, the repo's main language, its name and its hot files."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath

from ..target import git

LANGUAGES = {
    ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".cxx": "C++", ".hpp": "C++", ".cu": "CUDA",
    ".rs": "Rust", ".go": "Go", ".py": "Python", ".java": "Java", ".js": "JavaScript", ".ts": "TypeScript",
    ".zig": "Zig", ".jl": "Julia", ".f90": "Fortran", ".swift": "Swift", ".kt": "Kotlin",
}
MAX_QUERIES = 3  # each arXiv query costs one throttled request


def target_files(base_repo: Path, commit: str) -> list[str]:
    listing = git(["ls-tree", "-r", "--name-only", commit], cwd=base_repo, check=False)
    return [line for line in listing.splitlines() if line]


def main_language(files: list[str]) -> str | None:
    counts = Counter(LANGUAGES[PurePosixPath(f).suffix] for f in files if PurePosixPath(f).suffix in LANGUAGES)
    return counts.most_common(1)[0][0] if counts else None


def hot_files(files: list[str], goal: str, limit: int = 2) -> list[str]:
    """Source files whose names echo the goal's words (e.g. 'matrix multiply' → kernel/matmul)."""
    words = {w for w in re.findall(r"[a-z]{3,}", goal.lower())}
    # Tests, checks and benchmarks are not the hot path.
    sources = [f for f in files if PurePosixPath(f).suffix in LANGUAGES
               and not re.search(r"test|check|bench", PurePosixPath(f).stem.lower())]
    scored = sorted(sources, key=lambda f: -sum(w[:4] in PurePosixPath(f).stem.lower() for w in words))
    return [PurePosixPath(f).stem for f in scored[:limit]]


def build_queries(task, base_repo: Path, commit: str) -> list[str]:
    if task.research.queries:
        return list(task.research.queries)
    files = target_files(base_repo, commit)
    language = main_language(files)
    queries = [task.goal]
    if language:
        queries.append(f"{task.goal} {language}")
    hot = hot_files(files, task.goal)
    if hot:
        queries.append(f"{task.name} {' '.join(hot)} performance optimization")
    seen: list[str] = []
    for query in queries:
        if query and query not in seen:
            seen.append(query)
    return seen[:MAX_QUERIES]
