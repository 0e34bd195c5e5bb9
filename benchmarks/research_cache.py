"""Research phase timing: a cold run against slow local servers, then a warm run from the cache.

Targets (issue 3): warm-cache research makes 0 network requests (counted at the servers) in ≤ 2 s;
cold research against servers adding 200 ms to every response runs GitHub alongside arXiv, so
its wall is ≤ (arXiv requests × configured delay) + 2 s. The servers replay the real recorded
arXiv, Semantic Scholar and GitHub responses from tests/fixtures.

    python benchmarks/research_cache.py [--delay 1.0] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from research_agent import target  # noqa: E402
from research_agent.research.pipeline import run_research  # noqa: E402
from research_agent.task import load_task  # noqa: E402
from tests.replay_github import load as load_github  # noqa: E402
from tests.replay_github import serve as serve_github  # noqa: E402
from tests.replay_papers import ARXIV_PATH, ARXIV_TESTING, S2_PREFIX, arxiv_route, s2_route  # noqa: E402
from tests.servers import ReplayServer, Route  # noqa: E402

QUERIES = ["matrix multiply cache blocking", "loop tiling locality", "SIMD vectorization kernels"]


def make_task(folder: Path, delay: float) -> Path:
    repo = folder / "target"
    repo.mkdir()
    (repo / "kernel.c").write_text("void matmul(void) {}\n")
    (repo / "bench.sh").write_text("#!/bin/sh\necho METRIC score=1\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    task = folder / "task.yaml"
    task.write_text(
        "name: bench\nrepo: target\nbench: ./bench.sh\nmetric: score\ngoal: Speed up the matrix multiply kernel\n"
        f"research:\n  queries: {QUERIES}\n  papers: 5\n  repos: 3\n  prs: 5\n  forks_of: PyGithub/PyGithub\n"
        f"  arxiv_delay: {delay}\n"
    )
    return task


def start_servers(latency: float) -> dict[str, ReplayServer]:
    arxiv, s2, github = ReplayServer(latency=latency), ReplayServer(latency=latency), ReplayServer(latency=latency)
    for server in (arxiv, s2, github):
        server.__enter__()
    arxiv.routes.append(arxiv_route(ARXIV_TESTING, match=False))
    s2.routes.append(s2_route("s2_test_get_papers_not_found_warning", method="POST", path="/paper/batch"))
    serve_github(github, "pygithub_Repository.testGetPullsWithArguments.txt")
    search = load_github("pygithub_Search.testSearchRepos.txt")[0]
    github.routes.append(Route("GET", "/search/repositories", [search.reply(github.url)]))
    os.environ["RESEARCH_AGENT_ARXIV_URL"] = arxiv.url + ARXIV_PATH
    os.environ["RESEARCH_AGENT_S2_URL"] = s2.url + S2_PREFIX
    os.environ["RESEARCH_AGENT_GITHUB_URL"] = github.url
    os.environ.pop("GITHUB_TOKEN", None)
    return {"arxiv": arxiv, "semantic scholar": s2, "github": github}


def timed_research(task, prepared, out: Path) -> float:
    started = time.perf_counter()
    run_research(task, prepared.repo_dir, prepared.base_commit, out)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=3.0, help="arXiv delay between requests (s)")
    parser.add_argument("--latency", type=float, default=0.2, help="added to every server response (s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ["RESEARCH_AGENT_CACHE"] = str(folder / "cache")
        servers = start_servers(args.latency)
        task = load_task(make_task(folder, args.delay))
        prepared = target.prepare(str(task.repo_path()), False, folder / "run", allow_dirty=False)

        cold = timed_research(task, prepared, folder / "cold")
        cold_counts = {name: server.count for name, server in servers.items()}
        warm = timed_research(task, prepared, folder / "warm")
        warm_counts = {name: server.count - cold_counts[name] for name, server in servers.items()}
        for server in servers.values():
            server.__exit__(None, None, None)

    arxiv_requests = cold_counts["arxiv"]
    cold_bound = arxiv_requests * args.delay + 2.0
    sequential = arxiv_requests * args.delay + sum(cold_counts.values()) * args.latency
    print(f"## Research phase — {date.today().isoformat()}\n")
    print(f"{len(QUERIES)} queries; servers replay recorded arXiv / Semantic Scholar / GitHub responses, "
          f"+{args.latency * 1000:.0f} ms each; arXiv delay {args.delay:g} s.\n")
    print("| run | wall | arXiv req | Semantic Scholar req | GitHub req | bound |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| cold | {cold:.2f} s | {cold_counts['arxiv']} | {cold_counts['semantic scholar']} | {cold_counts['github']} | "
          f"≤ {cold_bound:.2f} s |")
    print(f"| warm (cache) | {warm:.2f} s | {warm_counts['arxiv']} | {warm_counts['semantic scholar']} | "
          f"{warm_counts['github']} | ≤ 2.00 s, 0 req |")
    print(f"\nThe same requests one after another would take ≥ {sequential:.2f} s "
          f"({arxiv_requests} arXiv × {args.delay:g} s + {sum(cold_counts.values())} responses × {args.latency:g} s); "
          f"the {cold_counts['github']} GitHub requests ran alongside the throttled arXiv ones "
          f"(Semantic Scholar follows arXiv: it needs the paper ids).")
    ok = cold <= cold_bound and warm <= 2.0 and sum(warm_counts.values()) == 0
    print(f"\n{'PASS' if ok else 'FAIL'}: cold {cold:.2f} s (≤ {cold_bound:.2f} s), warm {warm:.2f} s with "
          f"{sum(warm_counts.values())} requests (≤ 2 s, 0 requests)")


if __name__ == "__main__":
    main()
