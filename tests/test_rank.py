"""Ranking: BM25 relevance blended with popularity and recency; duplicates merged; per-kind selection."""

from datetime import date

import pytest

from research_agent.errors import UserError
from research_agent.research.base import SourceItem
from research_agent.research.rank import (
    DEFAULT_WEIGHTS,
    merge_duplicates,
    query_text,
    rank,
    select,
    select_for_task,
    tokenize,
)
from research_agent.task import Task

TODAY = date(2025, 1, 1)
QUERY = "speed up the matrix multiply kernel: cache blocking, loop tiling, vectorization"


def paper(pid, title, text="", citations=0, updated="2024-06-01", **signals):
    return SourceItem(id=pid, kind="paper", title=title, text=text, source="arxiv",
                      signals={"citations": citations, "updated": updated, **signals})


def repo(rid, title, text="", stars=0, updated="2024-06-01", kind="repo", **signals):
    return SourceItem(id=rid, kind=kind, title=title, text=text, source="github",
                      signals={"stars": stars, "updated": updated, **signals})


RELEVANT = "Cache blocking and loop tiling for dense matrix multiply kernels on CPUs."
OFF_TOPIC = "A survey of protein folding with graph neural networks."


def ids(items):
    return [it.id for it in items]


def test_bm25_puts_the_relevant_paper_first():
    items = [paper("arXiv:1", "Protein folding", OFF_TOPIC), paper("arXiv:2", "Fast GEMM", RELEVANT)]
    ranked = rank(items, QUERY, today=TODAY)
    assert ids(ranked) == ["arXiv:2", "arXiv:1"]
    assert ranked[0].meta["score"]["relevance"] == 1.0
    assert ranked[1].meta["score"]["relevance"] == 0.0
    assert set(ranked[0].meta["score"]) == {"relevance", "popularity", "recency", "total"}


def test_tokenizer_drops_stopwords_and_folds_plurals():
    assert tokenize("Speed up THE kernels, and the caches!") == ["speed", "kernel", "cache"]
    assert tokenize("") == []


def test_popularity_and_recency_change_the_order_as_weighted():
    # Same text: only citations and age differ.
    old_famous = paper("arXiv:old", "GEMM", RELEVANT, citations=5000, updated="2012-01-01")
    new_unknown = paper("arXiv:new", "GEMM", RELEVANT, citations=0, updated="2024-12-01")
    by_popularity = rank([new_unknown, old_famous], QUERY, {"popularity": 1, "recency": 0}, TODAY)
    assert ids(by_popularity) == ["arXiv:old", "arXiv:new"]
    by_recency = rank([old_famous, new_unknown], QUERY, {"popularity": 0, "recency": 1}, TODAY)
    assert ids(by_recency) == ["arXiv:new", "arXiv:old"]
    assert by_recency[0].meta["score"]["recency"] > 0.95
    # Relevance outweighs popularity with the defaults.
    famous_off_topic = paper("arXiv:bio", "Protein folding", OFF_TOPIC, citations=10000)
    modest = paper("arXiv:gemm", "GEMM", RELEVANT, citations=3)
    assert ids(rank([famous_off_topic, modest], QUERY, today=TODAY))[0] == "arXiv:gemm"


def test_popularity_is_per_kind_and_forks_with_commits_win():
    items = [
        repo("github:a/fork1", "fork", RELEVANT, stars=3, kind="fork", ahead_by=0),
        repo("github:b/fork2", "fork", RELEVANT, stars=3, kind="fork", ahead_by=4),
        repo("github:big/repo", "repo", RELEVANT, stars=10000),
        SourceItem(id="local:notes/a.md", kind="note", title="note", text=RELEVANT),
    ]
    scores = {it.id: it.meta["score"] for it in rank(items, QUERY, today=TODAY)}
    assert scores["github:b/fork2"]["popularity"] == 1.0  # best fork, though far fewer stars than the repo
    assert scores["github:a/fork1"]["popularity"] < 1.0
    assert scores["github:big/repo"]["popularity"] == 1.0
    assert scores["local:notes/a.md"]["popularity"] == 1.0  # chosen by the user


def test_ties_keep_input_order():
    items = [paper(f"arXiv:{i}", "Same", RELEVANT) for i in range(5)]
    assert ids(rank(items, QUERY, today=TODAY)) == [f"arXiv:{i}" for i in range(5)]


def test_empty_and_no_overlap_edge_cases():
    assert rank([], QUERY) == []
    items = [paper("arXiv:1", "Protein folding", OFF_TOPIC), paper("arXiv:2", "", "")]
    ranked = rank(items, QUERY, today=TODAY)
    assert [it.meta["score"]["relevance"] for it in ranked] == [0.0, 0.0]
    # Empty texts everywhere, or an empty query: no division by zero.
    empty = [paper("arXiv:3", "", ""), repo("github:x/y", "", "")]
    assert all(it.meta["score"]["relevance"] == 0.0 for it in rank(empty, QUERY, today=TODAY))
    assert all(it.meta["score"]["relevance"] == 0.0 for it in rank([paper("arXiv:4", "GEMM", RELEVANT)], "the"))
    # Missing signals: neutral, not a crash.
    bare = SourceItem(id="github:pr#1", kind="pr", title="Speed up the kernel")
    (scored,) = rank([bare], QUERY, today=TODAY)
    assert 0 < scored.meta["score"]["total"] <= 1


def test_weights_are_validated():
    with pytest.raises(UserError, match="research.weights.relevence"):
        rank([paper("arXiv:1", "x")], QUERY, {"relevence": 1})
    with pytest.raises(UserError, match="must be a number"):
        rank([paper("arXiv:1", "x")], QUERY, {"recency": "high"})
    assert sum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)


def test_merge_duplicates_merges_a_paper_found_by_two_sources():
    from_arxiv = SourceItem(id="arXiv:2205.14135v2", kind="paper", title="FlashAttention",
                            text="Short abstract.", source="arxiv",
                            signals={"updated": "2022-06-23", "published": "2022-05-27"},
                            meta={"authors": ["Dao"], "pdf_url": "https://arxiv.org/pdf/2205.14135"})
    from_s2 = SourceItem(id="arXiv:2205.14135", kind="paper", title="FlashAttention: Fast and Memory-Efficient",
                         text="A much longer abstract from Semantic Scholar.", source="semantic-scholar",
                         signals={"citations": 1500, "influential_citations": 200, "published": "2022-05-20"},
                         meta={"authors": ["Dao", "Fu"], "venue": "NeurIPS"})
    other = repo("github:Owner/Repo", "repo", stars=5)
    same_repo = repo("github:owner/repo", "repo", "readme text", stars=7, updated="2024-09-01")
    merged = merge_duplicates([from_arxiv, other, from_s2, same_repo])
    assert len(merged) == 2
    p, r = merged
    assert p.id == "arXiv:2205.14135"
    assert p.source == "arxiv+semantic-scholar"
    assert p.text == "A much longer abstract from Semantic Scholar."
    assert p.signals["citations"] == 1500 and p.signals["influential_citations"] == 200
    assert p.signals["updated"] == "2022-06-23" and p.signals["published"] == "2022-05-20"
    assert p.meta["authors"] == ["Dao", "Fu"] and p.meta["venue"] == "NeurIPS" and "pdf_url" in p.meta
    assert r.signals["stars"] == 7 and r.signals["updated"] == "2024-09-01" and r.text == "readme text"
    assert from_arxiv.id == "arXiv:2205.14135v2" and "citations" not in from_arxiv.signals  # inputs untouched


def test_select_honours_per_kind_limits_and_keeps_order():
    items = (
        [paper(f"arXiv:{i}", f"GEMM {i}", RELEVANT, citations=100 - i) for i in range(5)]
        + [repo(f"github:o/r{i}", f"repo {i}", RELEVANT, stars=50 - i) for i in range(3)]
        + [repo(f"github:f/r{i}", f"fork {i}", RELEVANT, kind="fork", ahead_by=2) for i in range(2)]
        + [SourceItem(id="local:competitors/c", kind="competitor", title="competitor", text=RELEVANT)]
        + [SourceItem(id=f"github:t/t#{i}", kind="pr", title=f"Speed up {i}", text=RELEVANT) for i in range(4)]
        + [SourceItem(id=f"local:notes/{i}.md", kind="note", title="note", text=RELEVANT) for i in range(3)]
    )
    ranked = rank(items, QUERY, today=TODAY)
    chosen = select(ranked, papers=2, repos=3, prs=1, notes=2)
    kinds = [it.kind for it in chosen]
    assert kinds.count("paper") == 2 and kinds.count("pr") == 1 and kinds.count("note") == 2
    assert sum(k in ("repo", "fork", "competitor") for k in kinds) == 3
    positions = [ranked.index(it) for it in chosen]
    assert positions == sorted(positions)  # ranked order kept
    # The top papers by score are the ones kept.
    papers = [it for it in ranked if it.kind == "paper"]
    assert [it for it in chosen if it.kind == "paper"] == papers[:2]
    because = papers[0].meta["selected_because"]
    assert because.startswith("top 1 of 5 papers: relevance") and "citations" in because
    assert "\n" not in because
    assert select([]) == []
    assert select(ranked, papers=0, repos=0, prs=0, notes=0) == []


def test_query_text_and_select_for_task(tmp_path):
    task = Task(repo=".", bench="./bench.sh", metric={"name": "gflops"}, goal="Speed up matmul",
                research={"queries": ["cache blocking"], "papers": 1, "weights": {"recency": 0}},
                base_dir=tmp_path)
    assert query_text(task) == "Speed up matmul\ncache blocking\ngflops"
    items = [paper("arXiv:1", "Protein folding", OFF_TOPIC), paper("arXiv:2v1", "Cache blocking for matmul"),
             paper("arXiv:2v3", "Cache blocking for matmul", "longer text")]
    ranked, chosen = select_for_task(items, task, today=TODAY)
    assert len(ranked) == 2
    assert ids(chosen) == ["arXiv:2"]
    assert chosen[0].meta["score"]["recency"] > 0 and chosen[0].text == "longer text"
