"""Agent-proposed ("explore") hypotheses: research that finds nothing hands a coding agent the goal, baseline,
noise, profile and code; the patch runtime says in one line what to do instead."""

import json
import subprocess
import sys

import pytest

from .conftest import make_repo

pytestmark = pytest.mark.slow

BENCH = "#!/bin/sh\npython3 -c \"import random; print('METRIC score=%f' % ($(cat value.txt) * random.gauss(1, 0.005)))\"\n"
# The scripted agent: on an explore brief (no sources, no diff) it finds its own change — a higher value.
AGENT = """\
import sys
brief, workdir = open(sys.argv[1]).read(), sys.argv[2]
assert "# Sources" not in brief and "```diff" not in brief, brief
open(workdir + "/value.txt", "w").write("130\\n")
"""


def bare(tmp_path, extra=""):
    make_repo(tmp_path / "target", {"value.txt": "100\n", "bench.sh": BENCH, "engine.c": "int engine(void);\n"})
    (tmp_path / "agent.py").write_text(AGENT)
    task = tmp_path / "task.yaml"
    task.write_text("name: bare\nrepo: target\ngoal: Raise the score\nbench: ./bench.sh\nmetric: score\n"
                    "timeouts: {build: 30, bench: 10, check: 30, runtime: 30}\n"
                    "experiments: {parallel: 1, repeats: 3, max_repeats: 8, min_effect: 0.01}\n"
                    "research: {papers: 0, repos: 0, prs: 0}\n" + extra)
    return task


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "RESEARCH_AGENT_CACHE": str(tmp_path / "cache")})


def test_research_finds_nothing_the_agent_explores_and_it_is_recorded_as_explored(tmp_path):
    task = bare(tmp_path)
    done = cli(tmp_path, "optimize", str(task), "--offline", "--runtime", "command",
               "--runtime-cmd", f"{sys.executable} {tmp_path / 'agent.py'} {{brief}} {{workdir}}", "--run-dir", "run")
    assert done.returncode == 0, done.stderr
    assert "agent explores 1 idea(s) of its own" in done.stderr
    plan = (tmp_path / "run" / "plan.md").read_text()
    assert "### X1: Explore:" in plan and "- origin: explore" in plan and "- status: kept" in plan
    brief = (tmp_path / "run" / "experiments" / "r1-X1" / "brief.md").read_text()
    assert "# Explore" in brief and "engine.c" in brief and "Baseline median" in brief
    status = json.loads(cli(tmp_path, "status", "run", "--json").stdout)
    assert [e["decision"] for e in status["experiments"]] == ["kept"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Where ideas came from: research-grounded 0 tried, 0 kept; explored 1 tried, 1 kept" in report


def test_patch_runtime_nothing_found_is_one_line_saying_what_to_do(tmp_path):
    task = bare(tmp_path)
    done = cli(tmp_path, "optimize", str(task), "--offline", "--run-dir", "run")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("research-agent: research found nothing")
    assert "research-agent plan new" in line and "--runtime command|claude-code|codex" in line
    assert [l for l in done.stderr.splitlines() if l.startswith("research-agent:")] == [line]
    assert "Traceback" not in done.stderr
