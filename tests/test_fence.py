"""The write fence, for real: each escape an agent (or a candidate's Makefile) could try, under each
mechanism this machine has; the probe; and whole runs whose runtime and build try to get out."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from research_agent import fence, proc
from research_agent.fence import bwrap, landlock

from .conftest import make_target, snapshot_of_user_repo

MECHANISMS = [
    pytest.param("landlock", marks=pytest.mark.skipif(landlock.abi_version() < 1, reason="no Landlock on this kernel")),
    pytest.param("bubblewrap", marks=pytest.mark.skipif(not bwrap.works(), reason="bubblewrap missing or unusable here")),
]

# (name, shell line run in the worktree, visible): {out} is a directory outside the worktree. The
# escapes of issue 10; `visible` says whether the output names the path (then it must be reported).
ESCAPES = [
    ("python-open", "python3 -c \"open('{out}/f', 'w').write('x')\"", True),
    ("redirect-up", "echo x > ../f", True),
    ("variable", "D={out}; echo x > $D/f", True),
    ("symlink", "ln -s {out}/f link && echo x > link", True),
    ("planted-symlink", "echo x > planted", True),
    ("tee", "echo x | tee {out}/f", True),
    ("cp", "cp seed {out}/f", True),
    ("cd-touch", "cd {out} && touch f", False),
    ("bash-c", "bash -c 'echo x > {out}/f'", True),
    ("hook", "printf '#!/bin/sh\\necho pwned\\n' > {out}/hooks/post-commit", True),
]


def confined_run(mechanism: str, workdir: Path, line: str) -> proc.Result:
    return proc.run(line, cwd=workdir, timeout=60, fence=fence.Fence(mechanism).confine([workdir]))


@pytest.fixture
def layout(tmp_path):
    out = tmp_path / "outside"
    (out / "hooks").mkdir(parents=True)
    work = out / "wt"  # ../f is then inside `out`
    work.mkdir()
    (work / "seed").write_text("seed\n")
    os.symlink(out / "f", work / "planted")  # a symlink planted in the worktree before the agent runs
    return out, work


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("name,line,visible", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_a_write_outside_the_worktree_never_lands(layout, mechanism, name, line, visible):
    out, work = layout
    result = confined_run(mechanism, work, line.format(out=out))
    assert not (out / "f").exists() and not (out / "hooks" / "post-commit").exists(), result.output
    if visible:
        assert result.blocked, result.output
        assert all(not p.startswith(str(work) + "/") for p in result.blocked)
        assert Path(result.blocked[0]).parent in (out, out / "hooks")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_inside_the_worktree_tmpdir_and_network_sockets_stay_usable(layout, mechanism):
    out, work = layout
    line = ('echo in > inside.txt && mkdir -p d/e && mv inside.txt d/e/ && echo t > "$TMPDIR/t" && cat "$TMPDIR/t" '
            '&& echo gone > /dev/null && python3 -c "import socket; socket.socket().close(); print(\'net ok\')"')
    result = confined_run(mechanism, work, line)
    assert result.ok, result.output
    assert (work / "d" / "e" / "inside.txt").read_text() == "in\n"
    assert "t\nnet ok" in result.output and not result.blocked


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_probe_passes_on_a_working_fence_and_stops_a_broken_one(tmp_path, mechanism):
    fence.probe(fence.Fence(mechanism), tmp_path)
    # A fence that lets the probe's target through (its folder named writable) is a broken fence.
    with pytest.raises(fence.FenceBroken, match="probe write outside its roots succeeded"):
        fence.probe(fence.Fence(mechanism, extra=(str(tmp_path),)), tmp_path)


def test_the_blocked_write_detector_ignores_reads_and_non_executable_scripts(tmp_path):
    lines = ("sh: 1: ./bench.sh: Permission denied\n"  # exec of a file in the worktree
             "cat: /nonexistent-root-only/secret: Permission denied\n")
    assert fence.blocked.blocked_paths(lines, [tmp_path], tmp_path) == ["/nonexistent-root-only/secret"]
    assert fence.blocked.blocked_paths("make: Nothing to be done for 'all'.\n", [tmp_path], tmp_path) == []


# --- whole runs ----------------------------------------------------------------------------------

FAST = "experiments: {parallel: 2, repeats: 3, max_repeats: 8}\n"

AGENT = """#!/bin/sh
# A hostile "agent": one escape per hypothesis, and an honest change for H2.
brief="$1"; out="$2"; hooks="$3"
grep -q "Hypothesis H1" "$brief" && python3 -c "open('$out/agent-was-here', 'w').write('x')"
grep -q "Hypothesis H2" "$brief" && echo 150 > value.txt
grep -q "Hypothesis H3" "$brief" && printf 'all:\\n\\techo x > %s/post-commit\\n' "$hooks" > Makefile
grep -q "Hypothesis H4" "$brief" && { echo 120 > value.txt; rm .git; git init -q .; git config core.fsmonitor "touch $out/fsmonitor-ran"; }
exit 0
"""


def cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "research_agent.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def decisions(cwd):
    status = json.loads(cli("status", "run", "--json", cwd=cwd).stdout)
    return {e["hypothesis"]: e for e in status["experiments"]}


def hostile_run(tmp_path, extra: str = ""):
    changes = {f"H{i}": {"notes.txt": f"n{i}\n"} for i in range(1, 5)}
    repo, task, plan = make_target(tmp_path, changes, task_extra=FAST + "build: make\n" + extra,
                                   files={"Makefile": "all:\n\ttrue\n"})
    out = tmp_path / "outside"
    out.mkdir()
    agent = tmp_path / "agent.sh"
    agent.write_text(AGENT)
    agent.chmod(0o755)
    hooks = tmp_path / "run" / "repo.git" / "hooks"
    before = snapshot_of_user_repo(repo)
    result = cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run",
                 "--runtime-cmd", f"{agent} {{brief}} {out} {hooks}", cwd=tmp_path)
    return result, repo, before, out, hooks


def test_a_hostile_command_runtime_and_makefile_stay_inside_and_the_loop_goes_on(tmp_path):
    result, repo, before, out, hooks = hostile_run(tmp_path)
    assert result.returncode == 0, result.stderr
    found = decisions(tmp_path)
    assert found["H1"]["decision"] == "rejected"
    assert found["H1"]["reason"] == f"write outside the worktree blocked: {os.path.realpath(out)}/agent-was-here"
    assert found["H2"]["decision"] == "kept"  # the loop went on, and an honest change still wins
    assert found["H3"]["decision"] == "rejected"  # the candidate's own Makefile tried to plant a hook
    assert found["H3"]["reason"] == f"write outside the worktree blocked: {os.path.realpath(hooks)}/post-commit"
    assert found["H4"]["decision"] == "failed" and "not the worktree's .git file" in found["H4"]["reason"]
    assert list(out.iterdir()) == []  # nothing landed outside, no fsmonitor of the agent's ran
    assert not (hooks / "post-commit").exists()
    assert snapshot_of_user_repo(repo) == before


def test_sandbox_off_warns_and_gives_the_fence_up(tmp_path):
    result, repo, before, out, hooks = hostile_run(tmp_path, "sandbox: off\n")
    assert result.returncode == 0, result.stderr
    assert "warning: sandbox: off" in result.stdout + result.stderr
    assert (out / "agent-was-here").exists()  # what `sandbox: off` gives up
    with sqlite3.connect(tmp_path / "run" / "ledger.sqlite") as db:
        said = [row[0] for row in db.execute("SELECT message FROM events WHERE kind = 'sandbox'")]
    assert said and said[0].startswith("warning: sandbox: off")
    assert "**warning: sandbox: off" in (tmp_path / "run" / "report.md").read_text()


def test_a_missing_fence_stops_an_agent_run_with_one_line_naming_the_install(tmp_path):
    repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}}, task_extra=FAST + "sandbox: bubblewrap\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("git", "python3", "sh"):  # a PATH with what a run needs, but no bwrap
        os.symlink(shutil.which(tool), empty / tool)
    result = cli("optimize", str(task), "--plan", str(plan), "--run-dir", "run", "--runtime-cmd", "true", cwd=tmp_path,
                 env={"PATH": str(empty)})
    assert result.returncode == 10, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "research-agent: sandbox: bubblewrap asked for, but bubblewrap is missing or cannot run here: "
        "apt-get install bubblewrap (or set `sandbox: on` for any fence)")
    assert not (tmp_path / "run" / "experiments" / "baseline" / "baseline.log").exists()
