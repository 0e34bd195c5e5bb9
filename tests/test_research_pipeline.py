"""`research-agent research` end to end against local servers replaying real arXiv, Semantic Scholar
and GitHub recordings: a valid plan whose citations resolve, a warm re-run with zero requests,
and offline runs that use only the cache and local material."""

import json
import os
import subprocess
import sys

import pytest

from research_agent.plan import load_plan

from .conftest import make_target
from .replay_github import load as load_github
from .replay_github import serve as serve_github
from .replay_papers import ARXIV_PATH, ARXIV_TESTING, S2_PREFIX, arxiv_route, s2_route
from .servers import ReplayServer, Route

RESEARCH = """research:
  queries: [testing]
  papers: 5
  repos: 3
  prs: 5
  forks_of: PyGithub/PyGithub
  arxiv_delay: 0
"""


@pytest.fixture
def servers():
    with ReplayServer() as arxiv, ReplayServer() as s2, ReplayServer() as github:
        arxiv.routes.append(arxiv_route(ARXIV_TESTING, match=False))
        s2.routes.append(s2_route("s2_test_get_papers_not_found_warning", method="POST", path="/paper/batch"))
        serve_github(github, "pygithub_Repository.testGetPullsWithArguments.txt")
        search = load_github("pygithub_Search.testSearchRepos.txt")[0]
        github.routes.append(Route("GET", "/search/repositories", [search.reply(github.url)]))
        yield {"arxiv": arxiv, "s2": s2, "github": github}


def research(tmp_path, servers, *args, cache="cache"):
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "S2_API_KEY")}
    env.update(
        RESEARCH_AGENT_CACHE=str(tmp_path / cache),
        RESEARCH_AGENT_ARXIV_URL=servers["arxiv"].url + ARXIV_PATH,
        RESEARCH_AGENT_S2_URL=servers["s2"].url + S2_PREFIX,
        RESEARCH_AGENT_GITHUB_URL=servers["github"].url,
    )
    return subprocess.run([sys.executable, "-m", "research_agent.cli", "research", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def target_with_notes(tmp_path, research_block=RESEARCH):
    repo, task, plan = make_target(tmp_path, {}, task_extra=research_block + "  local: [notes/]\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "cache.md").write_text("# Blocking for cache reuse\n\nTiling the testing loop keeps the working set in cache.\n")
    return task


def test_research_writes_a_grounded_plan_then_a_warm_rerun_makes_no_request(tmp_path, servers):
    task = target_with_notes(tmp_path)
    first = research(tmp_path, servers, str(task), "--run-dir", "run1")
    assert first.returncode == 0, first.stderr
    assert servers["arxiv"].count >= 1 and servers["s2"].count == 1 and servers["github"].count >= 2

    plan = load_plan(tmp_path / "run1" / "plan.md")  # validates: every cited id is under ## Sources
    assert plan.hypotheses and plan.status == "draft"
    for hyp in plan.hypotheses:
        assert hyp.sources and all(source in plan.sources for source in hyp.sources)
    cited = {source for hyp in plan.hypotheses for source in hyp.sources}
    assert any(source.startswith("arXiv:") for source in plan.sources)
    assert "local:notes/cache.md" in cited

    record = json.loads((tmp_path / "run1" / "research" / "sources.json").read_text())
    kinds = {item["kind"] for item in record["items"]}
    assert {"paper", "repo", "note"} <= kinds
    papers = [item for item in record["items"] if item["kind"] == "paper"]
    asked = json.loads(servers["s2"].bodies[0])["ids"]  # one batch lookup of citations for the papers found
    assert sorted(asked) == sorted("ARXIV:" + item["id"].removeprefix("arXiv:") for item in papers)
    assert all("score" in item["meta"] for item in record["items"])
    assert any("forks of PyGithub/PyGithub" in line or "404" in line for line in record["skipped"])
    assert list((tmp_path / "run1" / "research" / "notes").glob("*.md"))

    before = {name: server.count for name, server in servers.items()}
    second = research(tmp_path, servers, str(task), "--run-dir", "run2")
    assert second.returncode == 0, second.stderr
    assert {name: server.count for name, server in servers.items()} == before  # zero network requests
    assert (tmp_path / "run2" / "plan.md").read_text() == (tmp_path / "run1" / "plan.md").read_text().replace("run1", "run2") \
        or load_plan(tmp_path / "run2" / "plan.md").hypotheses


def test_offline_uses_only_the_cache_and_local_material(tmp_path, servers):
    task = target_with_notes(tmp_path)
    result = research(tmp_path, servers, str(task), "--run-dir", "run", "--offline")
    assert result.returncode == 0, result.stderr
    assert all(server.count == 0 for server in servers.values())
    plan_text = (tmp_path / "run" / "plan.md").read_text()
    assert "not in the cache (offline)" in plan_text  # the plan says what was skipped
    assert "local:notes/cache.md" in plan_text


def test_offline_with_nothing_cached_and_no_local_material_is_one_clear_error(tmp_path, servers):
    repo, task, plan = make_target(tmp_path, {}, task_extra=RESEARCH)
    result = research(tmp_path, servers, str(task), "--run-dir", "run", "--offline")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("research-agent: ")]
    assert len(errors) == 1 and "not in the cache (offline)" in errors[0] and "Traceback" not in result.stderr
