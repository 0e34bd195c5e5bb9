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
    return _distinct(queries)


# --- between rounds: queries from what the run tried ------------------------------------------

_HUNK_CONTEXT = re.compile(r"^@@ [^@]* @@ ?(.*)$")
_CALLED = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]{2,})\s*\(")
_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")
_NOT_NAMES = {"if", "for", "while", "switch", "return", "sizeof", "else", "case", "static", "inline", "const", "void",
              "int", "double", "float", "char", "long", "unsigned", "struct", "define", "include", "elif", "def", "fn"}
MAX_LEARNED = 6  # functions or files named per query


def touched_names(diff: str) -> tuple[list[str], list[str]]:
    """(functions, file stems) a diff touches: its hunk headers' enclosing functions, the functions on
    its changed lines, and its files — most frequent first."""
    functions: Counter = Counter()
    files: Counter = Counter()
    for line in (diff or "").splitlines():
        if line.startswith("+++ ") or line.startswith("--- "):
            path = line[4:].split("\t")[0].strip()
            if path != "/dev/null":
                files[PurePosixPath(path[2:] if path[:2] in ("a/", "b/") else path).stem] += 1
            continue
        hunk = _HUNK_CONTEXT.match(line)
        text = hunk.group(1) if hunk else (line[1:] if line[:1] in "+-" else "")
        for name in _CALLED.findall(text):
            if name.lower() not in _NOT_NAMES:
                functions[name] += 3 if hunk else 1
    return [n for n, _ in functions.most_common()], [n for n, _ in files.most_common()]


def profile_names(profile: str, known: set[str], lines: int = 30) -> list[str]:
    """Identifiers in the profile's first lines that the target's code also has (its hot functions)."""
    found: list[str] = []
    for line in (profile or "").splitlines()[:lines]:
        for name in _IDENT.findall(line):
            if name in known and name not in found and name.lower() not in _NOT_NAMES:
                found.append(name)
    return found


def learned_queries(task, tried: list[str], profile: str = "", code_words: set[str] | None = None) -> list[str]:
    """Queries for research between rounds, from the diffs the run tried without success (the discarded
    and failed hypotheses' changes) and from the profile: the functions and files they touched."""
    functions: Counter = Counter()
    files: Counter = Counter()
    for diff in tried:
        names, stems = touched_names(diff)
        functions.update({name: len(names) - rank for rank, name in enumerate(names)})
        files.update(stems)
    top = [name for name, _ in functions.most_common(MAX_LEARNED)]
    stems = [stem for stem, _ in files.most_common(3)]
    hot = profile_names(profile, code_words or set())[:MAX_LEARNED]
    queries = []
    if top:
        queries.append(f"{task.goal} {' '.join(top[:3])}".strip())
        queries.append(" ".join(top + [s for s in stems if s not in top]) + " optimization")
    elif stems:
        queries.append(f"{task.goal} {' '.join(stems)}".strip())
    if hot:
        queries.append(f"{' '.join(hot)} performance")
    return _distinct(queries)


def _distinct(queries: list[str]) -> list[str]:
    """The non-empty queries, each once, in order, at most MAX_QUERIES."""
    return list(dict.fromkeys(query for query in queries if query))[:MAX_QUERIES]
