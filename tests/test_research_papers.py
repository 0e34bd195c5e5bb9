"""arXiv and Semantic Scholar sources, through the real `arxiv` package and real requests against a
local ReplayServer that serves recorded responses (tests/fixtures/arxiv, tests/fixtures/semanticscholar)."""

from __future__ import annotations

import json
import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from research_agent.research.arxiv_source import ArxivSource, reset_throttles
from research_agent.research.base import SourceItem, SourceUnavailable
from research_agent.research.http import Http
from research_agent.research.semantic_scholar import SemanticScholar

from .replay_papers import (ARXIV_EMPTY, ARXIV_ERROR, ARXIV_OLD_ID, ARXIV_PATH, ARXIV_TESTING, ARXIV_TESTING_PAGE2,
                            S2_PREFIX, TimedReplayServer, arxiv_body, arxiv_reply, arxiv_route, arxiv_routes,
                            s2_interactions, s2_route)
from .servers import Reply, Route

TESTING_IDS = ["2202.12139", "2405.13786", "2005.14124", "2204.08348", "2302.03287",
               "1202.4527", "2503.05378", "1205.1866", "2502.07719", "1812.11470"]


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in ("RESEARCH_AGENT_ARXIV_URL", "RESEARCH_AGENT_S2_URL", "S2_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    reset_throttles()
    yield
    reset_throttles()


def make_http(tmp_path, **kwargs) -> Http:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("timeout", 5.0)
    return Http(tmp_path / "cache", **kwargs)


def arxiv_at(server, http, delay=0.0, **kwargs) -> ArxivSource:
    return ArxivSource(http, server.url + ARXIV_PATH, delay=delay, **kwargs)


def params(raw_path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(raw_path).query, keep_blank_values=True).items()}


# --- arXiv -------------------------------------------------------------------------------------------

def test_query_returns_the_recorded_entries(tmp_path):
    with TimedReplayServer(arxiv_routes()) as server:
        items = arxiv_at(server, make_http(tmp_path)).search("testing", 10)
        sent = params(server.requests[0][1])
        assert server.headers[0]["user-agent"].startswith("arxiv.py/")
    assert sent["search_query"] == "testing" and sent["sortBy"] == "relevance"
    assert (sent["start"], sent["max_results"]) == ("0", "10")
    assert [item.id for item in items] == [f"arXiv:{i}" for i in TESTING_IDS]
    first = items[0]
    assert first.kind == "paper" and first.source == "arxiv"
    assert first.title == "Testing Deep Learning Models: A First Comparative Study of Multiple Testing Techniques"
    assert first.url == "https://arxiv.org/abs/2202.12139v1"
    assert first.text.startswith("Deep Learning (DL) has revolutionized the capabilities of vision-based systems")
    assert first.signals == {"updated": "2022-02-24", "published": "2022-02-24"}
    assert first.meta["authors"] == ["Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker"]
    assert first.meta["categories"] == ["cs.SE", "cs.LG"] and first.meta["primary_category"] == "cs.SE"
    assert first.meta["pdf_url"] == "https://arxiv.org/pdf/2202.12139v1"
    assert first.meta["version"] == "v1" and first.meta["query"] == "testing"
    assert first.meta["doi"] == "10.1109/ICSTW55395.2022.00035"
    third = items[2]
    assert third.meta["version"] == "v2" and third.meta["pdf_url"] == "https://arxiv.org/pdf/2005.14124v2"
    assert all(item.title and item.text and item.meta["authors"] and item.meta["categories"] for item in items)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", item.signals["updated"]) for item in items)
    json.dumps([item.to_dict() for item in items])  # plain data


def test_old_style_id(tmp_path):
    with TimedReplayServer([arxiv_route(ARXIV_OLD_ID, match=False)]) as server:
        (item,) = arxiv_at(server, make_http(tmp_path)).search("hot jupiters", 5)
    assert item.id == "arXiv:astro-ph/0601001" and item.meta["version"] == "v1"
    assert item.meta["pdf_url"] == "https://arxiv.org/pdf/astro-ph/0601001v1"
    assert item.meta["categories"] == ["astro-ph"] and item.signals["published"] == "2006-01-02"
    assert item.meta["authors"][0] == "Andrew Gould"


def test_zero_results_is_an_empty_list(tmp_path):
    with TimedReplayServer([arxiv_route(ARXIV_EMPTY, match=False)]) as server:
        assert arxiv_at(server, make_http(tmp_path)).search("nothing matches this", 10) == []
        assert server.count == 1


def test_http_400_error_feed_is_unavailable_with_arxivs_message(tmp_path):
    with TimedReplayServer([arxiv_route(ARXIV_ERROR, match=False)]) as server:
        with pytest.raises(SourceUnavailable) as caught:
            arxiv_at(server, make_http(tmp_path)).search("id:abc", 10)
        assert server.count == 1  # a 400 is not retried
    assert "arXiv query 'id:abc'" in str(caught.value)
    assert "HTTP 400" in str(caught.value) and "incorrect id format for abc" in str(caught.value)


def test_503_then_200_is_retried(tmp_path):
    route = arxiv_route(ARXIV_TESTING, Reply(503, "busy", {"Retry-After": "0"}), arxiv_reply(ARXIV_TESTING))
    with TimedReplayServer([route]) as server:
        items = arxiv_at(server, make_http(tmp_path)).search("testing", 10)
        assert server.count == 2
    assert len(items) == 10


def test_5xx_forever_gives_up(tmp_path):
    with TimedReplayServer([Route("GET", ARXIV_PATH, [Reply(503, "down")])]) as server:
        with pytest.raises(SourceUnavailable, match=r"arXiv query 'testing': HTTP 503 after 4 tries"):
            arxiv_at(server, make_http(tmp_path, retries=3)).search("testing", 10)
        assert server.count == 4


def test_timeout_is_retried_then_skipped(tmp_path):
    slow = arxiv_reply(ARXIV_TESTING)
    slow.delay = 1.0
    with TimedReplayServer([Route("GET", ARXIV_PATH, [slow])]) as server:
        with pytest.raises(SourceUnavailable, match=r"arXiv query 'testing': .*Timeout"):
            arxiv_at(server, make_http(tmp_path, retries=1, timeout=0.2)).search("testing", 10)
        assert server.count == 2


def test_malformed_entries_are_skipped(tmp_path):
    body = arxiv_body(ARXIV_TESTING)
    entries = re.findall(r"<entry>.*?</entry>", body, flags=re.S)
    assert len(entries) == 10
    broken = {
        0: re.sub(r"<id>[^<]*</id>", "", entries[0], count=1),  # no id
        3: re.sub(r"<title>[^<]*</title>", "", entries[3], count=1),  # no title
        5: re.sub(r"<published>[^<]*</published>", "<published>yesterday</published>", entries[5]),  # bad date
    }
    for index, entry in broken.items():
        body = body.replace(entries[index], entry)
    with TimedReplayServer([arxiv_route(ARXIV_TESTING, arxiv_reply(ARXIV_TESTING, body=body))]) as server:
        source = arxiv_at(server, make_http(tmp_path))
        items = source.search("testing", 10)
    assert [item.id for item in items] == [f"arXiv:{i}" for n, i in enumerate(TESTING_IDS) if n not in broken]
    assert source.skipped == 3


def test_not_an_atom_feed_is_unavailable_and_not_kept(tmp_path):
    html = Reply(200, "<html><body>Service temporarily unavailable</body></html>", {"Content-Type": "text/html"})
    with TimedReplayServer([Route("GET", ARXIV_PATH, [html, arxiv_reply(ARXIV_TESTING)])]) as server:
        source = arxiv_at(server, make_http(tmp_path))
        with pytest.raises(SourceUnavailable, match="not an Atom feed"):
            source.search("testing", 10)
        assert len(source.search("testing", 10)) == 10  # asked again: the bad page was not cached
        assert server.count == 2


def test_warm_cache_makes_no_requests_and_does_not_wait(tmp_path):
    http = make_http(tmp_path)
    with TimedReplayServer(arxiv_routes()) as server:
        source = arxiv_at(server, http, delay=3.0)
        first = source.search("testing", 10)
        assert server.count == 1 and http.network_requests == 1
        started = time.monotonic()
        second = source.search("testing", 10)
        elapsed = time.monotonic() - started
        assert server.count == 1 and http.network_requests == 1
    assert elapsed < 0.5
    assert [i.to_dict() for i in second] == [i.to_dict() for i in first]


def test_offline_and_not_cached(tmp_path):
    with TimedReplayServer(arxiv_routes()) as server:
        with pytest.raises(SourceUnavailable) as caught:
            arxiv_at(server, make_http(tmp_path, offline=True)).search("testing", 10)
        assert server.count == 0
    assert str(caught.value) == "arXiv query 'testing': not in the cache (offline)"


def test_offline_after_warm_up(tmp_path):
    with TimedReplayServer(arxiv_routes()) as server:
        warm = arxiv_at(server, make_http(tmp_path), delay=3.0).search("testing", 10)
        offline_http = make_http(tmp_path, offline=True)
        started = time.monotonic()
        items = arxiv_at(server, offline_http, delay=3.0).search("testing", 10)
        assert time.monotonic() - started < 0.5
        assert server.count == 1 and offline_http.network_requests == 0
    assert [i.id for i in items] == [i.id for i in warm]


def test_throttle_spaces_uncached_queries(tmp_path):
    with TimedReplayServer([arxiv_route(ARXIV_TESTING, match=False)]) as server:
        source = arxiv_at(server, make_http(tmp_path), delay=0.5)
        source.search("testing", 10)
        source.search("benchmarking", 10)
        assert server.count == 2
        assert server.times[1] - server.times[0] >= 0.5


def test_throttle_is_shared_by_sources_and_threads(tmp_path):
    with TimedReplayServer([arxiv_route(ARXIV_TESTING, match=False)]) as server:
        http = make_http(tmp_path)
        sources = [arxiv_at(server, http, delay=0.3), arxiv_at(server, make_http(tmp_path / "other"), delay=0.3)]
        threads = [threading.Thread(target=sources[n % 2].search, args=(f"query {n}", 10)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        times = sorted(server.times)
    assert len(times) == 3
    assert all(b - a >= 0.3 for a, b in zip(times, times[1:]))


def test_pages_and_an_unexpected_empty_page_is_asked_again(tmp_path):
    empty_page = arxiv_reply(ARXIV_EMPTY)
    routes = [arxiv_route(ARXIV_TESTING), arxiv_route(ARXIV_TESTING_PAGE2, empty_page, arxiv_reply(ARXIV_TESTING_PAGE2))]
    with TimedReplayServer(routes) as server:
        items = arxiv_at(server, make_http(tmp_path), page_size=10).search("testing", 20)
        starts = [params(path)["start"] for _, path in server.requests]
    assert starts == ["0", "10", "10"]
    assert len(items) == 20 and len({i.id for i in items}) == 20
    assert [i.id for i in items[:10]] == [f"arXiv:{i}" for i in TESTING_IDS]


def test_endpoint_from_the_environment(tmp_path, monkeypatch):
    with TimedReplayServer(arxiv_routes()) as server:
        monkeypatch.setenv("RESEARCH_AGENT_ARXIV_URL", server.url + ARXIV_PATH)
        source = ArxivSource(make_http(tmp_path), delay=0)
        assert source.endpoint == server.url + ARXIV_PATH
        assert len(source.search("testing", 10)) == 10
    monkeypatch.delenv("RESEARCH_AGENT_ARXIV_URL")
    assert ArxivSource(make_http(tmp_path), delay=0).endpoint == "https://export.arxiv.org/api/query"


def test_fetched_text_is_kept_as_text(tmp_path):
    payload = "{__import__('os').system('touch pwned')} $(touch pwned) <b>bold</b>"
    body = arxiv_body(ARXIV_OLD_ID).replace(
        "<title>Frequency of Hot Jupiters", "<title>" + payload.replace("<", "&lt;").replace(">", "&gt;") + " Frequency")
    with TimedReplayServer([arxiv_route(ARXIV_OLD_ID, arxiv_reply(ARXIV_OLD_ID, body=body), match=False)]) as server:
        (item,) = arxiv_at(server, make_http(tmp_path)).search("x", 1)
    assert item.title.startswith(payload)  # verbatim: nothing in it was run or rendered


# --- Semantic Scholar ----------------------------------------------------------------------------------

BATCH = "s2_test_get_papers_not_found_warning"  # [null, 10670/578, 2185/245, 0/0]
BATCH_PATH = S2_PREFIX + "/paper/batch"


def paper(arxiv_id: str) -> SourceItem:
    return SourceItem(id=f"arXiv:{arxiv_id}", kind="paper", title=arxiv_id, source="arxiv", signals={"updated": "2024-01-01"})


def s2_at(server, http, **kwargs) -> SemanticScholar:
    return SemanticScholar(http, server.url + S2_PREFIX, **kwargs)


def batch_route(name=BATCH, index=0) -> Route:
    return s2_route(name, index, method="POST", path="/paper/batch")


def test_enrich_fills_citations_from_the_recorded_batch(tmp_path):
    # the batch answer lists one paper (or null) per requested id, in order: 4 ids → [null, p1, p2, p3]
    items = [paper("1111.00001"), paper("2205.14135"), paper("astro-ph/0601001"), paper("2301.00002v3")]
    others = [SourceItem(id="github:a/b", kind="repo", title="b"), SourceItem(id="s2:abc", kind="paper", title="c")]
    with TimedReplayServer([batch_route()]) as server:
        notices = s2_at(server, make_http(tmp_path)).enrich(items + others)
        (method, path), = server.requests
        sent = json.loads(server.bodies[0])
    assert notices == []
    assert method == "POST" and urlsplit(path).path == BATCH_PATH
    assert params(path)["fields"] == "citationCount,influentialCitationCount,externalIds,year"
    assert sent == {"ids": ["ARXIV:1111.00001", "ARXIV:2205.14135", "ARXIV:astro-ph/0601001", "ARXIV:2301.00002"]}
    assert items[0].signals == {"updated": "2024-01-01"}  # null: nothing known, nothing set
    assert (items[1].signals["citations"], items[1].signals["influential_citations"]) == (10670, 578)
    assert (items[2].signals["citations"], items[2].signals["influential_citations"]) == (2185, 245)
    assert (items[3].signals["citations"], items[3].signals["influential_citations"]) == (0, 0)
    assert all("citations" not in item.signals for item in others)


def test_enrich_matches_by_external_arxiv_id_and_leaves_missing_counts_unset(tmp_path):
    recorded = json.loads(s2_interactions(BATCH)[0]["body"])
    papers = [p for p in recorded if p is not None]  # 3 answers for 4 ids: pair by externalIds.ArXiv
    papers[0]["externalIds"]["ArXiv"] = "2205.14135v2"
    papers[1]["externalIds"]["ArXiv"] = "1706.03762"
    papers[1]["citationCount"] = None
    del papers[1]["influentialCitationCount"]
    items = [paper("2205.14135"), paper("1706.03762"), paper("1111.00001"), paper("1111.00002")]
    with TimedReplayServer([Route("POST", BATCH_PATH, [Reply(200, json.dumps(papers), {"Content-Type": "application/json"})])]) as server:
        assert s2_at(server, make_http(tmp_path)).enrich(items) == []
    assert (items[0].signals["citations"], items[0].signals["influential_citations"]) == (10670, 578)
    assert "citations" not in items[1].signals and "influential_citations" not in items[1].signals
    assert all("citations" not in item.signals for item in items[2:])


@pytest.mark.parametrize("route, expected", [
    (lambda: s2_route("s2_test_not_found", 0, method="POST", path="/paper/batch"),
     "Semantic Scholar: HTTP 404 (Paper with id 0 not found) — papers ranked without citations"),
    (lambda: s2_route("s2_test_bad_query_parameters", 0, method="POST", path="/paper/batch"),
     "Semantic Scholar: HTTP 400 (Unrecognized or unsupported fields: [unknown]) — papers ranked without citations"),
    (lambda: Route("POST", BATCH_PATH, [Reply(500, "oops")]),
     "Semantic Scholar: HTTP 500 after 4 tries — papers ranked without citations"),
    (lambda: Route("POST", BATCH_PATH, [Reply(429, "slow down", {"Retry-After": "0"})]),
     "Semantic Scholar: HTTP 429 after 4 tries — papers ranked without citations"),
    (lambda: Route("POST", BATCH_PATH, [Reply(200, "<html>not json</html>")]),
     "Semantic Scholar: the answer is not JSON — papers ranked without citations"),
], ids=["404", "400", "500", "429", "not-json"])
def test_enrich_service_problems_are_notices(tmp_path, route, expected):
    items = [paper("2205.14135")]
    with TimedReplayServer([route()]) as server:
        notices = s2_at(server, make_http(tmp_path)).enrich(items)
    assert notices == [expected]
    assert items[0].signals == {"updated": "2024-01-01"}


def test_enrich_offline_and_not_cached_is_a_notice(tmp_path):
    with TimedReplayServer([batch_route()]) as server:
        notices = s2_at(server, make_http(tmp_path, offline=True)).enrich([paper("2205.14135")])
        assert server.count == 0
    assert notices == ["Semantic Scholar: not in the cache (offline) — papers ranked without citations"]


def test_enrich_unreachable_is_a_notice(tmp_path):
    with TimedReplayServer() as server:
        url = server.url
    notices = SemanticScholar(make_http(tmp_path, retries=1), url + S2_PREFIX).enrich([paper("2205.14135")])
    assert len(notices) == 1 and notices[0].startswith("Semantic Scholar: ConnectionError")


def test_enrich_chunks_of_500_and_nothing_to_ask(tmp_path):
    items = [paper(f"2401.{n:05d}") for n in range(501)]
    with TimedReplayServer([Route("POST", BATCH_PATH, [Reply(200, "[]", {"Content-Type": "application/json"})])]) as server:
        source = s2_at(server, make_http(tmp_path))
        assert source.enrich(items) == []
        assert [len(json.loads(body)["ids"]) for body in server.bodies] == [500, 1]
        assert source.enrich([SourceItem(id="github:a/b", kind="repo", title="b")]) == []
        assert server.count == 2


def test_api_key_is_sent_and_never_cached(tmp_path):
    key = "s2-secret-key-4b1d9e7f"
    http = make_http(tmp_path)
    with TimedReplayServer([batch_route()]) as server:
        first = [paper("1111.00001"), paper("2205.14135"), paper("1111.00003"), paper("1111.00004")]
        s2_at(server, http, api_key=key).enrich(first)
        assert server.headers[0]["x-api-key"] == key
        assert key not in server.requests[0][1]
        again = [paper("1111.00001"), paper("2205.14135"), paper("1111.00003"), paper("1111.00004")]
        s2_at(server, http, api_key=key).enrich(again)  # answered from the cache
        assert server.count == 1 and again[1].signals["citations"] == 10670
    http.session.close()
    stored = b"".join(path.read_bytes() for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert b"ARXIV:2205.14135" in stored  # the request really is in the cache…
    assert key.encode() not in stored  # …but not the key


def test_api_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("S2_API_KEY", "env-key-123")
    with TimedReplayServer([batch_route()]) as server:
        monkeypatch.setenv("RESEARCH_AGENT_S2_URL", server.url + S2_PREFIX)
        SemanticScholar(make_http(tmp_path)).enrich([paper("2205.14135")])
        assert server.headers[0]["x-api-key"] == "env-key-123"
    monkeypatch.delenv("S2_API_KEY")
    monkeypatch.delenv("RESEARCH_AGENT_S2_URL")
    source = SemanticScholar(make_http(tmp_path))
    assert source.headers() == {} and source.endpoint == "https://api.semanticscholar.org/graph/v1"


def test_search_recorded(tmp_path):
    with TimedReplayServer([s2_route("s2_test_search_paper")]) as server:
        items = s2_at(server, make_http(tmp_path)).search("turing", 5)
        sent = params(server.requests[0][1])
    assert sent == {"query": "turing", "limit": "5",
                    "fields": "title,abstract,externalIds,citationCount,influentialCitationCount,year,url"}
    assert len(items) == 5
    assert items[0].id == "s2:7cbc2a7843411a1768ab762930707af0a3c33a19"
    assert items[0].title.startswith("Using DeepSpeed and Megatron to Train Megatron-Turing NLG 530B")
    assert all(i.kind == "paper" and i.source == "semantic-scholar" for i in items)


def test_search_arxiv_ids_counts_and_empty(tmp_path):
    recorded = json.loads(s2_interactions("s2_test_search_paper")[0]["body"])
    data = recorded["data"][:2]
    data[0].update({"externalIds": {"ArXiv": "2201.11990v1", "DBLP": "x"}, "citationCount": 700,
                    "influentialCitationCount": 50, "year": 2022, "abstract": "We train  a\nbig model.",
                    "url": "https://www.semanticscholar.org/paper/7cbc"})
    data[1].update({"citationCount": None})
    routes = [Route("GET", S2_PREFIX + "/paper/search", [Reply(200, json.dumps({**recorded, "data": data}))], {"query": "megatron"}),
              s2_route("s2_test_empty_paginated_results")]
    with TimedReplayServer(routes) as server:
        source = s2_at(server, make_http(tmp_path))
        first, second = source.search("megatron", 10)
        assert source.search("n0 r3sult s3arch t3rm", 10) == []
    assert first.id == "arXiv:2201.11990" and first.text == "We train a big model."
    assert first.signals == {"citations": 700, "influential_citations": 50} and first.meta["year"] == 2022
    assert first.url == "https://www.semanticscholar.org/paper/7cbc"
    assert second.id == "s2:6b0f06617d9f5256a80ed62d9398acb92a55a6bd" and second.signals == {}


def test_search_error_is_unavailable(tmp_path):
    with TimedReplayServer([s2_route("s2_test_bad_query_parameters", path="/paper/search")]) as server:
        with pytest.raises(SourceUnavailable, match=r"Semantic Scholar search 'x': HTTP 400 \(Unrecognized"):
            s2_at(server, make_http(tmp_path)).search("x", 3)
