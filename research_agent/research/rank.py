"""Ranking and selection of research items.

Relevance is BM25 (the `bm25s` package) of title + text against the task's goal and queries,
blended with popularity (citations, stars, commits ahead) and recency, with the weights in
`research.weights` of the task spec. Then `select` keeps the top N of each kind.

Pipeline: `merge_duplicates` -> `rank` -> `select` (or `select_for_task`, which does all three).
"""

from __future__ import annotations

import copy
import math
import re
from datetime import date
from typing import Any, Iterable

import bm25s
import numpy as np

from ..errors import UserError
from .base import SourceItem

DEFAULT_WEIGHTS = {"relevance": 0.6, "popularity": 0.25, "recency": 0.15}
DEFAULT_LIMITS = {"papers": 8, "repos": 5, "prs": 10, "notes": 10}

RECENCY_DAYS = 730.0  # recency = exp(-age / 2 years)
FORK_AHEAD_BONUS = 2.0  # added to log1p(stars) for forks that carry commits (about 6 stars' worth)
NEUTRAL = 0.5  # popularity / recency of an item whose kind has no such signal at all
MAX_TEXT_CHARS = 50_000  # of each item's text fed to BM25 (READMEs and PDFs can be huge)

# Which `select` limit covers each kind.
KIND_GROUP = {
    "paper": "papers",
    "repo": "repos",
    "fork": "repos",
    "competitor": "repos",
    "pr": "prs",
    "note": "notes",
}
GROUP_LABEL = {"papers": "papers", "repos": "repos/forks/competitors", "prs": "PRs", "notes": "notes"}
LOCAL_KINDS = ("note", "competitor")  # chosen by the user: full popularity
# When the same id comes with two kinds, keep the one the user chose over the one a search found.
KIND_PRIORITY = ("note", "competitor", "pr", "fork", "repo", "paper")

# bm25s's English stopwords plus a few more common words that carry no topic.
_EXTRA_STOPWORDS = {
    "about", "after", "all", "also", "am", "any", "been", "before", "being", "both", "can", "could",
    "did", "do", "does", "doing", "each", "from", "had", "has", "have", "having", "he", "her",
    "here", "him", "his", "how", "i", "its", "just", "me", "more", "most", "my", "our", "ours",
    "out", "over", "own", "same", "she", "should", "so", "some", "than", "them", "those", "through",
    "too", "under", "up", "us", "very", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "would", "you", "your",
}
try:
    from bm25s.stopwords import STOPWORDS_EN as _BM25S_STOPWORDS
except ImportError:  # pragma: no cover - older bm25s
    _BM25S_STOPWORDS = ()
STOPWORDS = frozenset(_BM25S_STOPWORDS) | _EXTRA_STOPWORDS

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits; '_' and '-' split words
_ARXIV_ID_RE = re.compile(r"(?i)arxiv:(.+?)(v\d+)?$")
_DATE_KEYS = ("updated", "published")


# --- tokenizing -------------------------------------------------------------------------------


def _stem(word: str) -> str:
    """Harman's S-stemmer: plurals only ('kernels' -> 'kernel', 'caches' -> 'cache'). No dependency."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    return word[:-1]


def tokenize(text: str) -> list[str]:
    """Lowercase words of two or more characters, stopwords dropped, plurals folded."""
    words = _WORD_RE.findall((text or "").lower())
    return [_stem(w) for w in words if len(w) > 1 and w not in STOPWORDS]


def query_text(task: Any) -> str:
    """What items are ranked against: the goal, the research queries and the metric name."""
    parts = [getattr(task, "goal", "") or ""]
    research = getattr(task, "research", None)
    parts += list(getattr(research, "queries", None) or [])
    metric = getattr(task, "metric", None)
    name = getattr(metric, "name", metric if isinstance(metric, str) else None)
    if name:
        parts.append(str(name))
    return "\n".join(p.strip() for p in parts if p and p.strip())


# --- duplicates -------------------------------------------------------------------------------


def _canonical_id(item_id: str) -> str:
    """Ids that name the same thing: `arXiv:2205.14135v2` ~ `arxiv:2205.14135`; GitHub names
    are case-insensitive."""
    item_id = item_id.strip()
    m = _ARXIV_ID_RE.match(item_id)
    if m:
        return "arXiv:" + m.group(1).lower()
    if item_id.lower().startswith("github:"):
        return item_id.lower()
    return item_id


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _merge_signals(into: dict, other: dict) -> None:
    for key, value in other.items():
        old = into.get(key)
        if old is None or old == "":
            into[key] = copy.deepcopy(value)
        elif _is_number(old) and _is_number(value):
            into[key] = max(old, value)
        elif key in _DATE_KEYS and _parse_date(old) and _parse_date(value):
            # first publication, latest update
            pick = min if key == "published" else max
            into[key] = pick((old, value), key=_parse_date)


def _merge_meta(into: dict, other: dict) -> None:
    for key, value in other.items():
        old = into.get(key)
        if old is None or old == "" or old == [] or old == {}:
            into[key] = copy.deepcopy(value)
        elif isinstance(old, list) and isinstance(value, list):
            into[key] = old + [v for v in value if v not in old]
        elif isinstance(old, dict) and isinstance(value, dict):
            into[key] = {**copy.deepcopy(value), **old}


def merge_duplicates(items: list[SourceItem]) -> list[SourceItem]:
    """One item per id (first-seen order): longest text, union of meta, max of numeric signals,
    latest `updated`, sources joined like `arxiv+semantic-scholar`. Inputs are not modified."""
    merged: dict[str, SourceItem] = {}
    for item in items:
        key = _canonical_id(item.id)
        have = merged.get(key)
        if have is None:
            fresh = copy.deepcopy(item)
            if key.startswith("arXiv:"):
                fresh.id = key  # one id for every version of a paper
            merged[key] = fresh
            continue
        if len(item.text or "") > len(have.text or ""):
            have.text = item.text
        if not (have.title or "").strip():
            have.title = item.title
        if not have.url:
            have.url = item.url
        if _kind_rank(item.kind) < _kind_rank(have.kind):
            have.kind = item.kind
        names = [s for s in (have.source or "").split("+") if s]
        for name in (item.source or "").split("+"):
            if name and name not in names:
                names.append(name)
        have.source = "+".join(names)
        _merge_signals(have.signals, item.signals or {})
        _merge_meta(have.meta, item.meta or {})
    return list(merged.values())


def _kind_rank(kind: str) -> int:
    return KIND_PRIORITY.index(kind) if kind in KIND_PRIORITY else len(KIND_PRIORITY)


# --- scoring ----------------------------------------------------------------------------------


def resolve_weights(weights: dict | None) -> dict[str, float]:
    """DEFAULT_WEIGHTS overridden by `weights` (research.weights in the task spec), normalized to
    sum to 1. Unknown keys and negative or non-numeric values are errors, naming the key."""
    out = dict(DEFAULT_WEIGHTS)
    for key, value in (weights or {}).items():
        if key not in DEFAULT_WEIGHTS:
            raise UserError(
                f"research.weights.{key}: unknown key (expected one of: {', '.join(DEFAULT_WEIGHTS)})"
            )
        if not _is_number(value) or value < 0:
            raise UserError(f"research.weights.{key}: must be a number >= 0, got {value!r}")
        out[key] = float(value)
    total = sum(out.values())
    if total <= 0:
        raise UserError("research.weights: at least one weight must be > 0")
    return {k: v / total for k, v in out.items()}


def _parse_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _relevance(items: list[SourceItem], query: str) -> list[float]:
    """BM25 of title + text against the query, divided by the best score (0 when nothing matches)."""
    q = sorted(set(tokenize(query)))
    corpus = [tokenize(f"{it.title or ''}\n{(it.text or '')[:MAX_TEXT_CHARS]}") for it in items]
    if not q or not any(corpus):
        return [0.0] * len(items)
    retriever = bm25s.BM25()
    # Give empty documents a token no query can contain (tokenize() never yields a space), so
    # bm25s indexes them as documents that match nothing.
    retriever.index([doc or ["\x00 empty"] for doc in corpus], show_progress=False)
    with np.errstate(all="ignore"):
        scores = np.nan_to_num(np.asarray(retriever.get_scores(q), dtype=float), nan=0.0)
    scores = np.clip(scores, 0.0, None)
    best = float(scores.max()) if len(scores) else 0.0
    if best <= 0:
        return [0.0] * len(items)
    return [float(s) / best for s in scores]


def _popularity_raw(item: SourceItem) -> float | None:
    """Raw popularity, or None when the item has no popularity signal."""
    s = item.signals or {}

    def num(key: str) -> float | None:
        v = s.get(key)
        return max(0.0, float(v)) if _is_number(v) else None

    if item.kind == "paper":
        cites, infl = num("citations"), num("influential_citations")
        if cites is None and infl is None:
            return None
        return math.log1p((cites or 0.0) + 2 * (infl or 0.0))
    stars = num("stars")
    if item.kind == "fork":
        ahead = num("ahead_by")
        if stars is None and ahead is None:
            return None
        return math.log1p(stars or 0.0) + (FORK_AHEAD_BONUS if (ahead or 0) > 0 else 0.0)
    return None if stars is None else math.log1p(stars)


def _popularity(items: list[SourceItem]) -> list[float]:
    """0..1 within each kind; local material 1.0; a kind with no signal at all gets NEUTRAL."""
    raw = [_popularity_raw(it) for it in items]
    best: dict[str, float] = {}
    for it, r in zip(items, raw):
        if r is not None:
            best[it.kind] = max(best.get(it.kind, 0.0), r)
    out = []
    for it, r in zip(items, raw):
        if it.kind in LOCAL_KINDS:
            out.append(1.0)
        elif it.kind not in best:
            out.append(NEUTRAL)
        elif r is None or best[it.kind] <= 0:
            out.append(0.0)
        else:
            out.append(r / best[it.kind])
    return out


def _item_date(item: SourceItem) -> date | None:
    for key in _DATE_KEYS:
        d = _parse_date((item.signals or {}).get(key))
        if d:
            return d
    return None


def _recency(item: SourceItem, today: date) -> float:
    d = _item_date(item)
    if d is None:
        return NEUTRAL
    age = max(0, (today - d).days)
    return math.exp(-age / RECENCY_DAYS)


def rank(items: list[SourceItem], query_text: str, weights: dict | None = None,
         today: date | None = None) -> list[SourceItem]:
    """Items sorted by blended score, best first (stable). Each item gets
    meta["score"] = {"relevance", "popularity", "recency", "total"} (all 0..1). Items are
    annotated in place; merge duplicates first (merge_duplicates)."""
    if not items:
        return []
    w = resolve_weights(weights)
    today = today or date.today()
    relevance = _relevance(items, query_text)
    popularity = _popularity(items)
    for it, rel, pop in zip(items, relevance, popularity):
        rec = _recency(it, today)
        total = w["relevance"] * rel + w["popularity"] * pop + w["recency"] * rec
        it.meta["score"] = {
            "relevance": round(rel, 4),
            "popularity": round(pop, 4),
            "recency": round(rec, 4),
            "total": round(total, 4),
        }
    return sorted(items, key=lambda it: -it.meta["score"]["total"])


# --- selection --------------------------------------------------------------------------------


def score_of(item: SourceItem) -> float:
    """The item's blended score (0 when it was never ranked)."""
    score = (item.meta or {}).get("score") or {}
    total = score.get("total") if isinstance(score, dict) else None
    return float(total) if _is_number(total) else 0.0


def _why(item: SourceItem, position: int, count: int, group: str) -> str:
    score = item.meta.get("score") or {}
    parts = [f"relevance {score.get('relevance', 0.0):.2f}"]
    s = item.signals or {}
    if item.kind == "paper" and _is_number(s.get("citations")):
        parts.append(f"{int(s['citations'])} citations")
        if _is_number(s.get("influential_citations")) and s["influential_citations"]:
            parts.append(f"{int(s['influential_citations'])} influential")
    if item.kind in ("repo", "fork") and _is_number(s.get("stars")):
        parts.append(f"{int(s['stars'])} stars")
    if item.kind == "fork" and _is_number(s.get("ahead_by")) and s["ahead_by"]:
        parts.append(f"{int(s['ahead_by'])} commits ahead")
    if item.kind in LOCAL_KINDS:
        parts.append("chosen by the user")
    date_ = _item_date(item)
    if date_ and item.kind not in LOCAL_KINDS:
        parts.append(f"updated {date_.isoformat()}")
    return f"top {position} of {count} {GROUP_LABEL[group]}: " + ", ".join(parts)


def select(ranked: list[SourceItem], papers: int = 8, repos: int = 5, prs: int = 10,
           notes: int = 10) -> list[SourceItem]:
    """The first N of each kind, in ranked order. `repos` covers repos, forks and competitors
    together. Sets meta["selected_because"] on each chosen item."""
    limits = {"papers": papers, "repos": repos, "prs": prs, "notes": notes}
    counts: dict[str, int] = {}
    for it in ranked:
        group = KIND_GROUP.get(it.kind)
        if group:
            counts[group] = counts.get(group, 0) + 1
    taken: dict[str, int] = {}
    chosen = []
    for it in ranked:
        group = KIND_GROUP.get(it.kind)
        if group is None or taken.get(group, 0) >= max(0, int(limits[group])):
            continue
        taken[group] = taken.get(group, 0) + 1
        it.meta["selected_because"] = _why(it, taken[group], counts[group], group)
        chosen.append(it)
    return chosen


def select_for_task(items: Iterable[SourceItem], task: Any, today: date | None = None,
                    notes: int | None = None, query: str | None = None,
                    scale: int = 1) -> tuple[list[SourceItem], list[SourceItem]]:
    """merge_duplicates + rank + select with the task's query, weights and limits.
    `query` adds to the task's (between rounds: what the run learned); `scale` widens the repos limit.
    Returns (every item ranked, the selected ones)."""
    research = getattr(task, "research", None)
    weights = getattr(research, "weights", None) or None
    text = query_text(task) + ("\n" + query if query else "")
    ranked = rank(merge_duplicates(list(items)), text, weights, today)
    chosen = select(
        ranked,
        papers=getattr(research, "papers", DEFAULT_LIMITS["papers"]),
        repos=getattr(research, "repos", DEFAULT_LIMITS["repos"]) * max(1, scale),
        prs=getattr(research, "prs", DEFAULT_LIMITS["prs"]),
        notes=notes if notes is not None else getattr(research, "notes", DEFAULT_LIMITS["notes"]),
    )
    return ranked, chosen
