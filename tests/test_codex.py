"""The codex runtime, driven through the REAL `codex` CLI (pinned in tests/agent_clis.py) against a local
stand-in of the OpenAI Responses API (tests/openai_responses_server.py) that scripts the model's turns.

Codex gets an isolated HOME and a dummy key in a custom variable; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from research_agent.errors import UserError
from research_agent.runtimes.base import Brief
from research_agent.prices import BUILTIN, Price
from research_agent.runtimes.codex import (INSTALL, TESTED, UNKNOWN_PRICE, CodexRuntime, Usage, doctor_info, parse_transcript,
                                           patch_paths, unwrap_shell)
from research_agent.runtimes.writes import WriteCheck

from .agent_clis import agent_binary
from .conftest import git, make_repo, make_target
from .openai_responses_server import Failed, Hang, HttpError, Message, ResponsesServer, ToolCall

FIXTURE = Path(__file__).parent / "fixtures" / "codex" / "exec_json_command.jsonl"
KEY_VAR = "RA_TEST_CODEX_KEY"
KEY = "sk-test-dummy-key-0123456789"
MODEL = "gpt-5.5"  # in 0.171's model catalog: Codex offers it the apply_patch tool (a mock name gets only exec_command)
TEST_PRICE = {"input": 1.0, "cached_input": 0.1, "output": 4.0}
EDIT = "*** Begin Patch\n*** Update File: value.txt\n@@\n-100\n+150\n*** End Patch\n"


@pytest.fixture(scope="module")
def codex_bin() -> Path:
    return agent_binary("codex")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A clean HOME, no user Codex home or OpenAI key, and the dummy key in its own variable."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("CODEX_HOME", "OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(KEY_VAR, KEY)
    return home


def worktree(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "wt", {"value.txt": "100\n", "notes.txt": "notes\n"})


def brief(tmp_path: Path) -> Brief:
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir(exist_ok=True)
    path = exp_dir / "brief.md"
    text = "# Hypothesis H1: Raise the value\nChange value.txt from 100 to 150.\n"
    path.write_text(text)
    return Brief(text=text, path=path, hypothesis_id="H1", exp_dir=exp_dir)


def runtime(codex_bin: Path, server: ResponsesServer, timeout: float = 60, **options) -> CodexRuntime:
    base = {"binary": str(codex_bin), "model": MODEL, "base_url": server.base_url, "provider": "mock",
            "env_key": KEY_VAR, "prices": TEST_PRICE}
    return CodexRuntime({**base, **options}, timeout=timeout)


def survivors(*markers: str) -> list[str]:
    """Processes (other than this one) whose command line or working directory mentions a marker."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if process.info["pid"] == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(process.info["cmdline"] or []) + " " + (process.info["cwd"] or "")
        if any(marker in text for marker in markers):
            found.append(f"{process.info['pid']}: {text.strip()}")
    return found


def wait_gone(*markers: str, seconds: float = 5.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        left = survivors(*markers)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


# --- through the real CLI ------------------------------------------------------------------------


def test_scripted_edit_lands_and_usage_is_parsed(codex_bin, isolated, tmp_path):
    wt, b = worktree(tmp_path), brief(tmp_path)
    script = [ToolCall("exec_command", {"cmd": "cat value.txt; env"}), ToolCall("apply_patch", EDIT), Message("Changed value.txt to 150.")]
    with ResponsesServer(script) as server:
        # --strict-config: Codex refuses any -c override it does not know, so every key we pass is checked.
        rt = runtime(codex_bin, server, extra_args=["--strict-config"])
        result = rt.apply(wt, b)
    assert result.ok, (result.reason, (b.exp_dir / "runtime.log").read_text())
    assert (wt / "value.txt").read_text() == "150\n"

    # What the CLI asked for: three streamed POST /v1/responses, our dummy key from the env var, nothing else.
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/v1/responses")] * 3 and not server.unknown
    first = server.responses[0]
    assert first.body["stream"] is True and first.body["model"] == MODEL
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert {"exec_command", "apply_patch"} <= set(first.tool_names)
    assert "Raise the value" in json.dumps(first.body["input"])  # the brief, sent as the prompt
    # The key stays out of the agent's commands (`env` output went back to the model in turn 2).
    assert "cat value.txt" in json.dumps(server.responses[1].body["input"]) and KEY not in json.dumps(server.responses[1].body)

    # The transcript is the CLI's own stdout, parsed.
    lines = result.transcript.read_text().splitlines()
    assert result.transcript == b.exp_dir / "transcript.jsonl" and json.loads(lines[0])["type"] == "thread.started"
    assert json.loads(lines[-1])["type"] == "turn.completed"
    usage = Usage(3 * 1200, 3 * 200, 3 * 80)
    assert result.turns == 1 and result.tokens == usage.total == 3840
    assert result.cost_usd == pytest.approx(usage.cost(Price(**TEST_PRICE))) and result.cost_usd > 0
    assert result.details["usage"] == {"input": 3600, "cached_input": 600, "output": 240}
    assert result.details["cost_known"] is True and result.details["unparsed_lines"] == 0
    assert [c["path"] for c in result.details["file_changes"]] == [str(wt / "value.txt")]
    assert "cat value.txt" in result.details["commands"][0]["command"]
    assert result.details["messages"] == ["Changed value.txt to 150."]
    # Codex's own session file lives in the per-experiment CODEX_HOME, and no file holds the key.
    assert Path(result.details["session_file"]).is_relative_to(b.exp_dir / "codex-home")
    assert not rt.notices, rt.notices
    for path in list(b.exp_dir.rglob("*")) + list(isolated.rglob("*")):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert KEY.encode() not in path.read_bytes(), path


def test_unknown_model_price_is_an_estimate_with_a_notice(codex_bin, isolated, tmp_path):
    wt, b = worktree(tmp_path), brief(tmp_path)
    with ResponsesServer([Message("nothing to do")]) as server:
        rt = runtime(codex_bin, server, prices=None)  # no price for gpt-5.5 in the table
        result = rt.apply(wt, b)
    assert result.ok, result.reason
    assert result.details["cost_known"] is False and result.details["model"] == MODEL
    assert result.cost_usd == pytest.approx(Usage(1200, 200, 80).cost(UNKNOWN_PRICE))
    assert any(f"no price known for model '{MODEL}'" in notice for notice in rt.notices)


def test_timeout_kills_the_cli_and_its_children(codex_bin, isolated, tmp_path):
    wt, b = worktree(tmp_path), brief(tmp_path)
    # Turn 1 leaves a long command running (Codex yields after 300 ms); turn 2 never gets an answer.
    script = [ToolCall("exec_command", {"cmd": "sleep 1234.5", "yield_time_ms": 300}), Hang()]
    with ResponsesServer(script) as server:
        started = time.monotonic()
        result = runtime(codex_bin, server, timeout=4).apply(wt, b)
        elapsed = time.monotonic() - started
        assert len(server.responses) == 2  # the sleep was running while Codex waited on the hung server
    assert not result.ok and result.reason == "agent timed out after 4s", result.reason
    assert elapsed < 15
    assert not result.details.get("rejected")
    assert wait_gone("sleep 1234.5", str(wt), str(b.exp_dir)) == []


def test_auth_failure_is_a_clean_quick_failure(codex_bin, isolated, tmp_path):
    wt, b = worktree(tmp_path), brief(tmp_path)
    body = {"error": {"message": "Incorrect API key provided: sk-test***6789.", "type": "invalid_request_error", "code": "invalid_api_key"}}
    with ResponsesServer([HttpError(401, body)]) as server:
        started = time.monotonic()
        result = runtime(codex_bin, server).apply(wt, b)
    assert time.monotonic() - started < 20
    assert not result.ok and result.reason.startswith("authentication failed (401)"), result.reason
    assert KEY_VAR in result.reason and not result.details.get("rejected")
    assert 1 <= len(server.responses) <= 3  # Codex's own retries are capped (max_retries, default 2)
    assert wait_gone(str(wt)) == []


def test_missing_key_fails_before_starting(codex_bin, isolated, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_VAR)
    with ResponsesServer([Message("done")]) as server:
        result = runtime(codex_bin, server).apply(worktree(tmp_path), brief(tmp_path))
        assert not server.requests
    assert not result.ok and result.reason == f"no API key: set {KEY_VAR} in the environment"


@pytest.mark.parametrize("where", ["mid-turn", "turn.completed"])
def test_usd_cap_stops_the_agent(codex_bin, isolated, tmp_path, where):
    wt, b = worktree(tmp_path), brief(tmp_path)
    big = {"input_tokens": 1_000_000, "cached_tokens": 0, "output_tokens": 10_000}  # $1.04 at the test prices
    if where == "mid-turn":
        # One expensive response, then a hung server: only the session file can show the spend in time
        # (`--json` reports usage once, at turn.completed).
        script = [ToolCall("exec_command", {"cmd": "echo working"}, usage=big), Hang()]
    else:
        script = [Message("done", usage=big)]
    with ResponsesServer(script) as server:
        started = time.monotonic()
        result = runtime(codex_bin, server, timeout=60, max_usd=0.5).apply(wt, b)
        elapsed = time.monotonic() - started
    assert not result.ok and result.reason == "agent exceeded the $0.50 cap ($1.04 spent)", result.reason
    assert result.details["capped"] is True and result.cost_usd == pytest.approx(1.04)
    assert elapsed < 15  # killed, not timed out
    assert wait_gone(str(wt), str(b.exp_dir)) == []


def test_turn_failed_is_reported(codex_bin, isolated, tmp_path):
    wt, b = worktree(tmp_path), brief(tmp_path)
    with ResponsesServer([Failed("The model is overloaded.")]) as server:
        result = runtime(codex_bin, server).apply(wt, b)
    assert not result.ok and result.reason.startswith("agent failed: ") and "The model is overloaded." in result.reason
    assert (wt / "value.txt").read_text() == "100\n"


@pytest.mark.parametrize("tool", ["exec_command", "apply_patch"])
def test_writing_outside_the_worktree_is_rejected(codex_bin, isolated, tmp_path, tool):
    wt, b = worktree(tmp_path), brief(tmp_path)
    outside = tmp_path / "outside.txt"
    if tool == "exec_command":
        call = ToolCall("exec_command", {"cmd": f"echo x > {outside}"})
    else:
        call = ToolCall("apply_patch", f"*** Begin Patch\n*** Add File: {outside}\n+x\n*** End Patch\n")
    with ResponsesServer([call, Message("done")]) as server:
        result = runtime(codex_bin, server).apply(wt, b)
    assert not result.ok and result.details["rejected"] is True
    assert result.reason == f"edited outside the worktree: {outside}"
    # The sandbox blocked the write itself (`--json` does not even report a refused call: the session file does).
    assert not outside.exists()
    assert not result.details["file_changes"] and not result.details["commands"]


def test_scratch_files_in_tmpdir_are_allowed(codex_bin, isolated, tmp_path):
    wt, b = worktree(tmp_path), brief(tmp_path)
    script = [ToolCall("exec_command", {"cmd": 'echo scratch > "$TMPDIR/s.txt" && echo 150 > value.txt 2>/dev/null'}), Message("done")]
    with ResponsesServer(script) as server:
        result = runtime(codex_bin, server).apply(wt, b)
    assert result.ok, result.reason
    assert (wt / "value.txt").read_text() == "150\n" and (b.exp_dir / "codex-tmp" / "s.txt").read_text() == "scratch\n"


# --- the parser and the helpers, without the CLI ------------------------------------------------------


def test_parser_on_the_recorded_transcript_counts_garbage():
    lines = FIXTURE.read_text().splitlines()
    parsed = parse_transcript(lines[:3] + ["this is not json", '["json", "but not an event"]'] + lines[3:])
    assert parsed.thread_id == "01a2266c-3258-75c1-b5fb-033ff5d03252"
    assert parsed.turns == 1 and parsed.usage == Usage(200, 0, 40)
    assert parsed.commands == [{"command": "/bin/bash -lc 'echo hello > codex_note.txt'", "exit_code": 0, "status": "completed"}]
    assert parsed.messages == ["done"] and parsed.failure is None and parsed.unparsed == 2
    assert parsed.errors and "mock-model" in parsed.errors[0]  # the CLI's warning item, not a failure
    assert unwrap_shell(parsed.commands[0]["command"]) == "echo hello > codex_note.txt"


def test_fence_sees_absolute_relative_and_escaping_writes(tmp_path):
    wt = tmp_path / "wt"
    wt.mkdir()
    fence = WriteCheck(wt, [tmp_path / "scratch"])
    assert fence.command("echo 150 > value.txt 2>/dev/null") is None
    assert fence.command(f"echo x > {wt}/a.txt; cp a b") is None
    assert fence.command(f"echo x > {tmp_path}/scratch/t.txt") is None
    assert fence.command('echo "$TMPDIR" > "$TMPDIR/t.txt"; ldd x | grep "=> /lib" 2>&1') is None  # quotes respected
    assert fence.command("echo x > ../escape.txt") == f"{tmp_path}/escape.txt"
    assert fence.command("echo x > sub/../ok.txt") is None
    assert fence.command(f"cp value.txt {tmp_path}/copy.txt") == f"{tmp_path}/copy.txt"
    assert fence.command("echo x >> ~/.bashrc") == os.path.expanduser("~/.bashrc")
    assert fence.command("tee -a /etc/motd < x") == "/etc/motd"
    assert fence.command("sed -i s/a/b/ /etc/hosts") == "/etc/hosts"
    assert fence.command("cd /srv && echo x > y") == "/srv/y"
    assert fence.command("echo x > y", cwd="/elsewhere") == "/elsewhere/y"
    assert fence.paths(["value.txt", str(wt / "b.txt")]) is None and fence.paths(["/root/x"]) == "/root/x"
    assert patch_paths("*** Begin Patch\n*** Add File: /tmp/a\n+x\n*** Update File: b.txt\n*** Move to: /c\n*** End Patch\n") == ["/tmp/a", "b.txt", "/c"]


def test_command_line_and_options(codex_bin, isolated, tmp_path):
    rt = CodexRuntime({"binary": str(codex_bin), "model": "gpt-5", "base_url": "http://127.0.0.1:9/v1", "env_key": "MY_KEY",
                       "max_retries": 0, "extra_args": "--ephemeral"}, timeout=5)
    cmd = rt.command(tmp_path)
    assert cmd[:8] == [str(codex_bin), "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", "-C", str(tmp_path)]
    assert cmd[8:10] == ["-m", "gpt-5"] and cmd[-2:] == ["--ephemeral", "-"]
    assert 'model_provider="research-agent"' in cmd
    provider = next(arg for arg in cmd if arg.startswith("model_providers."))
    assert 'base_url="http://127.0.0.1:9/v1"' in provider and 'env_key="MY_KEY"' in provider and "request_max_retries=0" in provider
    assert "--dangerously-bypass-approvals-and-sandbox" not in cmd
    assert rt.price_for("gpt-5") == (BUILTIN["gpt-5"], True) and not rt.notices

    unsafe = CodexRuntime({"binary": str(codex_bin), "unsafe": True}, timeout=5)
    cmd = unsafe.command(tmp_path)
    assert "--dangerously-bypass-approvals-and-sandbox" in cmd and "--sandbox" not in cmd
    assert not any(arg.startswith("model_provider") for arg in cmd)  # the built-in OpenAI provider
    assert any("unsafe" in notice for notice in unsafe.notices)

    unknown = CodexRuntime({"binary": str(codex_bin), "model": "some-new-model"}, timeout=5)
    assert unknown.price_for("some-new-model") == (UNKNOWN_PRICE, False)
    assert any("no price known for model 'some-new-model'" in notice for notice in unknown.notices)
    per_model = CodexRuntime({"binary": str(codex_bin), "model": "m", "prices": {"m": [1, 0.5, 2]}}, timeout=5)
    assert per_model.price_for("m") == (Price(input=1, output=2, cached_input=0.5), True)
    with pytest.raises(UserError):
        CodexRuntime({"binary": str(codex_bin), "prices": {"input": "cheap", "output": 1}}, timeout=5)


def test_missing_binary_and_wrong_version(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError) as error:
        CodexRuntime({}, timeout=5)
    assert INSTALL in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UserError) as error:
        CodexRuntime({"binary": str(tmp_path / "no-codex")}, timeout=5)
    assert INSTALL in str(error.value)

    old = tmp_path / "bin" / "codex"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho codex-cli 0.100.0\n")
    old.chmod(0o755)
    rt = CodexRuntime({"binary": str(old)}, timeout=5)
    assert rt.version == "0.100.0"
    assert any(f"{TESTED[0]}–{TESTED[1]}" in notice for notice in rt.notices)


def test_doctor_info_never_shows_the_key(codex_bin, isolated, monkeypatch):
    monkeypatch.setenv("PATH", f"{codex_bin.parent}{os.pathsep}{os.environ['PATH']}")
    info = doctor_info()
    assert info["runtime"] == "codex" and info["binary"] == str(codex_bin) and info["version"] == "0.171.0"
    assert info["usable"] is True and info["key_present"] is False and "OPENAI_API_KEY" in info["note"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-doctor-secret-value")
    info = doctor_info()
    assert info["key_present"] is True and "sk-doctor-secret-value" not in json.dumps(info)
    monkeypatch.setenv("PATH", "/nonexistent")
    info = doctor_info()
    assert info["binary"] is None and info["usable"] is False and INSTALL in info["note"]


# --- end to end ---------------------------------------------------------------------------------------


def test_optimize_with_codex_keeps_the_scripted_edit(codex_bin, isolated, tmp_path):
    script = [ToolCall("exec_command", {"cmd": "cat value.txt"}), ToolCall("apply_patch", EDIT), Message("value.txt is now 150.")]
    with ResponsesServer(script) as server:
        block = (
            "runtime:\n  name: codex\n"
            f"  binary: {json.dumps(str(codex_bin))}\n  model: {MODEL}\n"
            f"  base_url: {server.base_url}\n  provider: mock\n  env_key: {KEY_VAR}\n"
            f"  prices: {json.dumps(TEST_PRICE)}\n  max_usd: 1.0\n"
            "experiments: {parallel: 1, repeats: 3, max_repeats: 8}\n"
        )
        repo, task, plan = make_target(tmp_path, {"H1": {"value.txt": "150\n"}}, task_extra=block)
        run = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--plan", str(plan),
                              "--runtime", "codex", "--run-dir", "run"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120, env=os.environ.copy())
        assert run.returncode == 0, run.stderr + run.stdout
        assert len(server.responses) == 3 and not server.unknown
    status = json.loads(subprocess.run([sys.executable, "-m", "research_agent.cli", "status", "run", "--json"], cwd=tmp_path,
                                       capture_output=True, text=True, timeout=60).stdout)
    found = {e["hypothesis"]: e for e in status["experiments"]}
    assert found["H1"]["decision"] == "kept", found["H1"]
    assert found["H1"]["effect"]["median"] > 0.3
    exp_dir = tmp_path / "run" / "experiments" / "r1-H1"
    assert "+150" in (exp_dir / "patch.diff").read_text()
    assert json.loads((exp_dir / "transcript.jsonl").read_text().splitlines()[-1])["type"] == "turn.completed"
    assert status["total_cost_usd"] == pytest.approx(Usage(3600, 600, 240).cost(Price(**TEST_PRICE)))
    assert git(repo, "status", "--porcelain") == ""  # the user's repository is untouched


# --- inside the write fence (research_agent/fence) -------------------------------------------------


def test_inside_the_fence_codex_runs_unsandboxed_itself_and_our_fence_blocks_and_rejects(codex_bin, isolated, tmp_path):
    from research_agent.fence import Fence, available

    mechanism = available()
    if mechanism is None:
        pytest.skip("no write fence on this machine")
    wt, b = worktree(tmp_path), brief(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "repo.git" / "hooks").mkdir(parents=True)
    # Escapes Codex's static look cannot see: through a program, a variable in bash -c, a hook
    # (a symlink or `cd` it resolves itself, and stops the agent: the command runtime's tests cover those).
    script = [ToolCall("exec_command", {"cmd": f"python3 -c \"open('{out}/py', 'w').write('x')\""}),
              ToolCall("exec_command", {"cmd": f"D={out}; bash -c \"echo x > $D/bash\""}),
              ToolCall("exec_command", {"cmd": "cp value.txt ../repo.git/hooks/post-commit"}),
              ToolCall("apply_patch", EDIT), Message("done")]
    with ResponsesServer(script) as server:
        rt = CodexRuntime(runtime(codex_bin, server).options, timeout=60, fence=Fence(mechanism))
        assert rt.command(wt)[3:5] == ["--sandbox", "danger-full-access"]
        result = rt.apply(wt, b)
    assert list(out.iterdir()) == [] and list((tmp_path / "repo.git" / "hooks").iterdir()) == []
    assert not result.ok and result.details["rejected"] is True, result.reason
    hook = os.path.realpath(tmp_path / "repo.git" / "hooks" / "post-commit")
    # The `../` copy is the one Codex's own static look sees (and stops the agent on); the two before it only the fence saw.
    assert result.reason in (f"write outside the worktree blocked: {os.path.realpath(out)}/py", f"edited outside the worktree: {hook}")
    assert {f"{os.path.realpath(out)}/py", f"{os.path.realpath(out)}/bash"} <= set(result.details["blocked"])


def test_no_key_stops_before_the_baseline_with_exit_10(codex_bin, isolated, tmp_path, monkeypatch):
    repo, task, plan = make_target(tmp_path, {"H1": {"notes.txt": "n\n"}})
    monkeypatch.delenv(KEY_VAR)
    result = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--plan", str(plan),
                             "--run-dir", "run", "--runtime", "codex"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PATH": f"{codex_bin.parent}:{os.environ['PATH']}"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("research-agent: codex: no API key: set OPENAI_API_KEY")
    assert not (tmp_path / "run" / "experiments" / "baseline" / "baseline.log").exists()


def test_a_failing_watcher_stops_the_run_visibly_instead_of_dropping_the_cap(codex_bin, isolated, tmp_path):
    """A command the checks cannot read (a NUL byte: `realpath` raises) used to make the session-file
    watcher swallow the error and go on without its cost cap and write check. Now the run stops,
    its reason and a notice say why, and the experiment is never kept."""
    wt, b = worktree(tmp_path), brief(tmp_path)
    script = [ToolCall("exec_command", {"cmd": "echo x > a\u0000b"}), Message("done")]
    with ResponsesServer(script) as server:
        rt = runtime(codex_bin, server)
        result = rt.apply(wt, b)
    assert not result.ok and result.reason.startswith("codex: the cost and write watcher failed"), result.reason
    assert "embedded null byte" in result.reason and "\n" not in result.reason
    assert result.details["watcher_failed"] is True
    assert any("watcher failed" in notice for notice in rt.notices)
    assert wait_gone(str(wt), str(b.exp_dir)) == []
