"""The claude-code runtime, driven through the REAL `claude` CLI (pinned in tests/agent_clis.py) against
a local, scripted Anthropic Messages API (tests/anthropic_server.py); plus the parser on real recorded output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from research_agent.errors import UserError
from research_agent.runtimes import make_runtime
from research_agent.runtimes.agent_cli import version_notice
from research_agent.runtimes.writes import outside_worktree, write_targets
from research_agent.runtimes.base import Brief
from research_agent.runtimes.claude_code import (
    DEFAULT_PRICE,
    ClaudeCodeRuntime,
    StreamState,
    doctor_info,
    parse_transcript,
    price_for,
)

from .agent_clis import agent_binary
from .anthropic_server import AnthropicServer, bash, edit, hang, read, text, unauthorized, write
from .conftest import make_repo, make_target

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
STREAM_FIXTURE = FIXTURES / "stream_json_write_tool.jsonl"
PRINT_JSON_FIXTURE = FIXTURES / "scylla_T0_00_run01_claude_print_json_result.json"
SLOW_TOOL = "python3 -c 'import time; time.sleep(300)'"  # (the Bash tool refuses a bare `sleep 300`)
EDIT_SCRIPT = [read("value.txt"), edit("value.txt", "100", "150"), bash("cat value.txt"), text("value.txt now holds 150.")]


@pytest.fixture
def claude(tmp_path, monkeypatch):
    """The pinned binary, an isolated HOME/config dir, and the environment the runtime passes through."""
    binary = agent_binary("claude")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "IS_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    marker = uuid.uuid4().hex  # inherited by the CLI and its children: finds survivors after a kill
    monkeypatch.setenv("RA_TEST_RUN_MARKER", marker)
    return {"binary": binary, "home": home, "marker": marker}


def serve(script, monkeypatch, **kwargs) -> AnthropicServer:
    server = AnthropicServer(script, **kwargs)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", server.api_key)
    return server


def worktree(tmp_path) -> tuple[Path, Brief]:
    wt = make_repo(tmp_path / "wt", {"value.txt": "100\n", "bench.sh": "#!/bin/sh\necho METRIC score=$(cat value.txt)\n"})
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    brief_text = "# Hypothesis H1: Raise the value\nChange value.txt from 100 to 150.\n"
    (exp_dir / "brief.md").write_text(brief_text)
    return wt, Brief(brief_text, exp_dir / "brief.md", "H1", exp_dir=exp_dir)


def survivors(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("RA_TEST_RUN_MARKER") == marker:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def wait_gone(marker: str, seconds: float = 5.0) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    while (left := survivors(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


# ---------------------------------------------------------------------------
# Through the real CLI
# ---------------------------------------------------------------------------


def test_the_scripted_edit_lands_and_the_cli_reports_turns_tokens_and_cost(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    with serve(EDIT_SCRIPT, monkeypatch) as server:
        runtime = make_runtime("claude-code", {"binary": str(claude["binary"]), "max_turns": 10}, timeout=60)
        assert runtime.notices == [] and runtime.version == "2.1.332"
        outcome = runtime.apply(wt, brief)
    assert outcome.ok, outcome.reason
    assert (wt / "value.txt").read_text() == "150\n"

    # The transcript is the CLI's stdout, line for line; the totals are the CLI's own.
    lines = outcome.transcript.read_text().splitlines()
    assert outcome.transcript == brief.exp_dir / "transcript.jsonl"
    events = [json.loads(line) for line in lines]
    assert events[0]["type"] == "system" and events[0]["subtype"] == "init" and events[0]["claude_code_version"] == "2.1.332"
    assert sorted(events[0]["tools"]) == ["Bash", "Edit", "Glob", "Grep", "Read", "Write"]
    assert events[0]["permissionMode"] == "acceptEdits"
    final = events[-1]
    assert final["type"] == "result" and final["subtype"] == "success"
    assert outcome.turns == final["num_turns"] == 4
    assert outcome.cost_usd == final["total_cost_usd"] > 0
    usage = final["usage"]
    assert outcome.tokens == usage["input_tokens"] + usage["output_tokens"] == 4 * (2000 + 300)
    details = outcome.details
    assert details["unparsed_lines"] == 0 and details["killed"] is None and details["tool_uses"] == 3
    assert details["cost_estimated"] is False and 0 < details["estimated_usd"] <= outcome.cost_usd
    assert details["subtype"] == "success" and details["version"] == "2.1.332"

    # What the CLI sent: our key from the environment, the brief as the prompt, our constraints, 4 turns.
    assert [entry["path"] for entry in server.log] == ["/v1/messages?beta=true"] * 4 and server.unknown == []
    first = server.bodies[0]
    assert first["stream"] is True
    assert "Hypothesis H1" in json.dumps(first["messages"][0])
    assert "Work only inside the current working directory" in json.dumps(first["system"])
    assert {tool["name"] for tool in first["tools"]} >= {"Read", "Edit", "Write", "Bash"}
    assert not {tool["name"] for tool in first["tools"]} & {"WebFetch", "WebSearch", "Agent", "Task"}
    assert server.api_key not in outcome.transcript.read_text()
    # No session files in the (isolated) config dir: --no-session-persistence.
    assert not list((claude["home"] / ".claude").glob("projects/*/*.jsonl"))


@pytest.mark.parametrize("where", ["server", "tool"])
def test_a_timeout_kills_the_cli_and_its_children(tmp_path, claude, monkeypatch, where):
    probe = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the survivor check sees a live child
    try:
        assert [p.pid for p in survivors(claude["marker"])] == [probe.pid]
    finally:
        probe.kill()
        probe.wait()
    wt, brief = worktree(tmp_path)
    script = [hang(120)] if where == "server" else [bash(SLOW_TOOL), text("done")]
    # Long enough for the CLI to start and reach its Bash tool on a loaded machine; the tool then runs far longer.
    timeout = 3 if where == "server" else 15
    with serve(script, monkeypatch):
        runtime = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=timeout)
        started = time.monotonic()
        outcome = runtime.apply(wt, brief)
        elapsed = time.monotonic() - started
        if where == "tool":  # the Bash tool's `sleep` was running as a child of the CLI when it was killed
            assert "time.sleep(300)" in outcome.transcript.read_text()
        left = wait_gone(claude["marker"])
    assert not outcome.ok and outcome.reason == f"agent timed out after {timeout}s"
    assert outcome.details["killed"] == "timeout"
    assert elapsed < timeout + 30  # killed at the timeout, not left to finish the 300 s tool or the 120 s hang
    assert left == [], [(p.pid, p.name()) for p in left]


def test_a_401_fails_cleanly_and_quickly(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    with serve([unauthorized()], monkeypatch) as server:
        started = time.monotonic()
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=60).apply(wt, brief)
        elapsed = time.monotonic() - started
    assert not outcome.ok
    assert outcome.reason.startswith("authentication failed (401)"), outcome.reason
    assert server.api_key not in outcome.reason
    assert not outcome.details.get("rejected")
    assert elapsed < 10  # the CLI's own retry loop would take minutes: stopped at its first api_retry
    assert server.main_requests <= 3
    assert wait_gone(claude["marker"]) == []
    assert (wt / "value.txt").read_text() == "100\n"


def test_no_key_in_the_environment_is_an_auth_failure(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    with serve(EDIT_SCRIPT, monkeypatch) as server:
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=60).apply(wt, brief)
    assert not outcome.ok and outcome.reason.startswith("authentication failed: ANTHROPIC_API_KEY is not set ("), outcome.reason
    assert server.main_requests == 0


def test_allowed_tools_from_the_task_spec_limit_what_the_agent_may_run(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    script = [bash("cat value.txt"), bash("python3 -c 'print(1)'"), edit("value.txt", "100", "150"), text("done")]
    with serve(script, monkeypatch) as server:
        options = {"binary": str(claude["binary"]), "allowed_tools": ["Read", "Edit", "Bash(cat *)"]}
        outcome = ClaudeCodeRuntime(options, timeout=60).apply(wt, brief)
    assert outcome.ok, outcome.reason
    assert outcome.details["permission_denials"] == 1  # python3 was not allowed; cat was
    assert {tool["name"] for tool in server.bodies[0]["tools"]} >= {"Read", "Edit", "Bash"}
    assert not {tool["name"] for tool in server.bodies[0]["tools"]} & {"Write", "Glob", "Grep"}
    assert (wt / "value.txt").read_text() == "150\n"  # Edit is allowed


def test_max_turns_has_its_own_reason(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    with serve([bash("echo working")], monkeypatch) as server:  # never finishes on its own
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"]), "max_turns": 2}, timeout=60).apply(wt, brief)
    assert not outcome.ok and outcome.reason == "agent exceeded max turns (2)"
    assert outcome.details["subtype"] == "error_max_turns" and outcome.cost_usd > 0
    assert server.main_requests == 2


def test_the_usd_cap_kills_the_agent_mid_stream(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    # The answer stalls after its content: the CLI has shown the message (and its input usage) but
    # cannot finish, so only research-agent's running estimate can stop it in time.
    stalled = replace(edit("value.txt", "100", "150"), stall=30)
    with serve([stalled], monkeypatch):
        runtime = ClaudeCodeRuntime({"binary": str(claude["binary"]), "max_usd": 0.001}, timeout=60)
        started = time.monotonic()
        outcome = runtime.apply(wt, brief)
        elapsed = time.monotonic() - started
        left = wait_gone(claude["marker"])
    assert not outcome.ok
    # 2000 input tokens of claude-opus-5-5 (the CLI's default model) at $4 per 1M: $0.008 > $0.001.
    assert re.fullmatch(r"agent exceeded the \$0\.001 cap \(\$0\.0(08|09)\d* spent\)", outcome.reason), outcome.reason
    assert outcome.details["killed"] == "usd" and outcome.details["cost_estimated"] is True
    assert outcome.cost_usd > 0.001 and elapsed < 10 and left == []
    assert (wt / "value.txt").read_text() == "100\n"  # killed before the edit ran


def test_the_clis_own_budget_stop_reads_as_the_same_cap(tmp_path, claude, monkeypatch):
    # Output tokens only show in message_delta, which the stream does not surface: here the CLI's
    # --max-budget-usd (which sees them) trips first, and the reason is the same kind.
    wt, brief = worktree(tmp_path)
    cheap_in = replace(bash("echo working"), input_tokens=10, output_tokens=5000)
    with serve([cheap_in], monkeypatch):
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"]), "max_usd": 0.15}, timeout=60).apply(wt, brief)
    assert not outcome.ok and outcome.reason.startswith("agent exceeded the $0.15 cap ($0."), outcome.reason
    assert outcome.details["subtype"] == "error_max_budget_usd" and outcome.cost_usd > 0.15


@pytest.mark.parametrize("how", ["Write", "Bash"])
def test_an_edit_outside_the_worktree_rejects_the_experiment(tmp_path, claude, monkeypatch, how):
    wt, brief = worktree(tmp_path)
    outside = tmp_path / "outside.txt"
    step = write(str(outside), "escaped\n") if how == "Write" else bash(f"echo escaped > {outside}")
    with serve([read("value.txt"), step, text("done")], monkeypatch):
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=60).apply(wt, brief)
        assert wait_gone(claude["marker"]) == []
    assert not outcome.ok and outcome.details["rejected"] is True
    assert outcome.reason == f"edited outside the worktree: {outside}"
    assert outcome.details["killed"] == "outside"


def test_writes_in_the_agents_scratch_tmpdir_are_allowed(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    with serve([bash('echo scratch > "$TMPDIR/notes.txt" && echo 150 > value.txt'), text("done")], monkeypatch):
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=60).apply(wt, brief)
    assert outcome.ok, outcome.reason
    assert (brief.exp_dir / "agent-tmp" / "notes.txt").read_text() == "scratch\n"
    assert (wt / "value.txt").read_text() == "150\n"


def test_commits_made_by_the_agent_are_undone_but_its_changes_kept(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=wt, capture_output=True, text=True).stdout.strip()
    commit = "git -c user.name=agent -c user.email=agent@example.invalid commit -qam mine"
    with serve([read("value.txt"), edit("value.txt", "100", "150"), bash(commit), text("done")], monkeypatch):
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=60).apply(wt, brief)
    assert outcome.ok and outcome.details["agent_commits_undone"] == 1
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=wt, capture_output=True, text=True).stdout.strip() == head
    assert subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=wt, capture_output=True, text=True).stdout.split() == ["value.txt"]


def test_end_to_end_optimize_keeps_the_agents_edit_and_goes_on_after_a_401(tmp_path, claude, monkeypatch):
    """`research-agent optimize --runtime claude-code`: H1's agent gets a 401 (failed, the loop goes on),
    H2's agent edits value.txt 100 → 150, which is built, checked, benchmarked and kept."""
    repo, task, plan = make_target(tmp_path, {"H1": {"notes.txt": "n\n"}, "H2": {"notes.txt": "m\n"}},
                                   task_extra="experiments: {parallel: 1, repeats: 3, max_repeats: 8}\n"
                                              "runtime: {name: claude-code, max_turns: 10, max_usd: 1.0}\n")

    def script(body: dict, results: int):
        if "Hypothesis H1" in json.dumps(body["messages"][0]):
            return unauthorized()
        return EDIT_SCRIPT[min(results, len(EDIT_SCRIPT) - 1)]

    with serve(script, monkeypatch) as server:
        # The runtime finds `claude` on PATH (npm's bin folder, whose placeholder leads to the native binary).
        env = {**os.environ, "PATH": f"{claude['binary'].parent}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--plan", str(plan),
                                 "--run-dir", "run", "--runtime", "claude-code"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        status = json.loads(subprocess.run([sys.executable, "-m", "research_agent.cli", "status", "run", "--json"],
                                           cwd=tmp_path, env=env, capture_output=True, text=True).stdout)
    found = {e["hypothesis"]: e for e in status["experiments"]}
    assert found["H1"]["decision"] == "failed" and found["H1"]["reason"].startswith("authentication failed (401)")
    assert found["H2"]["decision"] == "kept", found["H2"]
    assert found["H2"]["effect"]["ci"][0] > 0.3
    exp = tmp_path / "run" / "experiments" / "r1-H2"
    assert "+150" in (exp / "patch.diff").read_text()
    transcript = [json.loads(line) for line in (exp / "transcript.jsonl").read_text().splitlines()]
    assert transcript[-1]["type"] == "result" and transcript[-1]["subtype"] == "success"
    assert server.api_key not in (exp / "transcript.jsonl").read_text()
    assert all(entry["path"] == "/v1/messages?beta=true" for entry in server.log)
    assert (repo / "value.txt").read_text() == "100\n"  # the user's repo is untouched


# ---------------------------------------------------------------------------
# Without the CLI: the parser on real recorded output, prices, paths, discovery
# ---------------------------------------------------------------------------


def test_parser_on_the_recorded_stream_json_transcript(tmp_path):
    state = parse_transcript(STREAM_FIXTURE, workdir="/home/dev/target")
    assert state.turns == 2 and state.cost_usd == pytest.approx(0.00028) and state.total_tokens == 30
    assert state.unparsed == 0 and state.outside == [] and state.tool_uses == 1 and state.cost_estimated is False
    assert state.model == "claude-opus-5-5" and state.result["subtype"] == "success"

    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text(STREAM_FIXTURE.read_text() + "this is not json\n[1, 2]\n\n")
    state = parse_transcript(garbled, workdir="/elsewhere")
    assert state.unparsed == 2 and state.turns == 2 and state.cost_usd == pytest.approx(0.00028)
    assert state.outside == ["/home/dev/target/NOTES.md"]  # the same Write, seen from another worktree


def test_parser_on_the_recorded_print_json_result():
    state = parse_transcript(PRINT_JSON_FIXTURE)
    assert state.turns == 6 and state.cost_usd == pytest.approx(0.1351093) and state.unparsed == 0
    # input + output + cache tokens of both models the CLI used (a haiku side call and sonnet).
    assert state.total_tokens == (3774 + 191) + (29 + 656 + 112686 + 23106)


def test_the_running_estimate_counts_each_api_response_once():
    state = StreamState(workdir=Path("/w"))
    message = {"id": "msg_a", "model": "claude-sonnet-4-5-20250929", "usage": {"input_tokens": 1_000_000, "output_tokens": 1}}
    for block in ({"type": "text", "text": "x"}, {"type": "tool_use", "id": "t", "name": "Read", "input": {"file_path": "a"}}):
        state.feed(json.dumps({"type": "assistant", "message": {**message, "content": [block]}}))
    assert state.messages == 1 and state.estimated_usd == pytest.approx(3.0, rel=0.01)
    state.feed(json.dumps({"type": "user", "message": {"content": []}}))
    state.feed(json.dumps({"type": "assistant", "message": {**message, "content": [{"type": "text", "text": "y"}]}}))
    assert state.messages == 2  # the same id after a tool result: a stand-in reusing ids is still counted
    state.feed(json.dumps({"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": 401, "error": "authentication_failed"}))
    assert state.auth_status == 401 and state.retries == 1


def test_prices_known_models_and_a_conservative_default():
    assert price_for("claude-sonnet-4-5-20250929") == (price_for("claude-sonnet-4-5")[0], True)
    assert price_for("claude-sonnet-4-5")[0].input == 3 and price_for("claude-opus-4-1")[0].output == 75
    assert price_for("claude-opus-5-5[1m]")[0].input == 4
    unknown, known = price_for("claude-something-new")
    assert not known and unknown == DEFAULT_PRICE
    assert all(p.input <= DEFAULT_PRICE.input and p.output <= DEFAULT_PRICE.output for p in
               [price_for(m)[0] for m in ("claude-opus-4", "claude-fable-5", "claude-haiku-4-5")])


def test_shell_write_targets_and_outside_paths(tmp_path):
    # Claude Code's look: only the targets written as absolute or ~ paths (Bash runs in the worktree).
    assert write_targets("make 2>&1 | tee /tmp/build.log", relative=False) == ["/tmp/build.log"]
    assert write_targets("echo hi > /etc/motd; cat value.txt", relative=False) == ["/etc/motd"]
    assert write_targets("cp a.txt ~/b.txt && sed -i s/a/b/ /opt/x.conf", relative=False) == ["~/b.txt", "/opt/x.conf"]
    assert write_targets("python3 bench.py > out.txt 2>/dev/null", relative=False) == ["/dev/null"]
    assert write_targets("python3 bench.py > out.txt 2>/dev/null") == ["out.txt", "/dev/null"]
    assert write_targets("cat /etc/hosts") == []
    assert write_targets("echo 'unbalanced > /etc/motd") == ["/etc/motd"]  # no shell quoting to trust: still seen
    wt = tmp_path / "wt"
    wt.mkdir()
    assert not outside_worktree("src/a.c", wt) and not outside_worktree(str(wt / "a"), wt)
    assert outside_worktree("../a", wt) and outside_worktree("/etc/motd", wt) and not outside_worktree("/dev/null", wt)
    (wt / "link").symlink_to(tmp_path)
    assert outside_worktree("link/escaped.txt", wt)


def test_a_missing_binary_is_a_one_line_user_error_naming_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError) as error:
        ClaudeCodeRuntime({})
    assert "npm install -g @anthropic-ai/claude-code" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UserError, match="npm install -g @anthropic-ai/claude-code"):
        ClaudeCodeRuntime({"binary": str(tmp_path / "nope" / "claude")})
    info = doctor_info()
    assert info["binary"] is None and info["usable"] is False and "npm install" in info["note"]


def test_options_are_checked_and_a_wrong_version_warns(tmp_path, monkeypatch):
    fake = tmp_path / "claude"
    fake.write_text("#!/bin/sh\necho '1.0.7 (Claude Code)'\n")
    fake.chmod(0o755)
    runtime = ClaudeCodeRuntime({"binary": str(fake), "model": "claude-sonnet-4-5", "unsafe": True, "extra_args": "--effort low"})
    assert any("1.0.7" in n and "2.1.328–2.1.332" in n for n in runtime.notices)
    argv = runtime.command(tmp_path)
    assert "--dangerously-skip-permissions" in argv and "--permission-mode" not in argv
    assert argv[-4:] == ["--model", "claude-sonnet-4-5", "--effort", "low"]
    for bad in ({"max_turns": 0}, {"max_usd": "lots"}, {"allowed_tools": []}, {"max_tokens": 5}):
        with pytest.raises(UserError):
            ClaudeCodeRuntime({"binary": str(fake), **bad})
    argv = ClaudeCodeRuntime({"binary": str(fake), "allowed_tools": ["Read", "Edit", "Bash(make *)"]}).command(tmp_path)
    assert argv[argv.index("--tools") + 1] == "Read,Edit,Bash"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Edit,Bash(make *)"
    assert version_notice("claude", "2.1.330", ("2.1.328", "2.1.332")) is None


def test_doctor_info_reports_the_key_without_its_value(claude, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    info = doctor_info({"binary": str(claude["binary"])})
    assert info["runtime"] == "claude-code" and info["version"] == "2.1.332" and info["key_present"] is True
    assert info["usable"] is True and "sk-ant-secret-value" not in json.dumps(info)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert doctor_info({"binary": str(claude["binary"])})["usable"] is False


def test_the_npm_placeholder_leads_to_the_native_binary(claude):
    runtime = ClaudeCodeRuntime({"binary": str(claude["binary"])})
    assert runtime.binary.name == "claude" and "claude-code-" in runtime.binary.parent.name
    assert shutil.which(str(runtime.binary))


NAIVE_LOOP = """        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int k = 0; k < n; k++)
                sum += A[i * n + k] * B[k * n + j];
            C[i * n + j] = sum;
        }"""
INTERCHANGED_LOOP = """        for (int j = 0; j < n; j++)
            C[i * n + j] = 0.0;
        for (int k = 0; k < n; k++) {
            const double a = A[i * n + k];
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }"""


def test_demo_round_with_claude_code_gates_the_agents_edit_like_any_candidate(tmp_path, claude, monkeypatch):
    """`research-agent optimize tasks/demo/task.yaml --runtime claude-code` against the scripted server:
    the agent reads kernel.c, interchanges the loops, runs the check; the edit is built, checked,
    benchmarked and kept by the gate."""
    from .conftest import DEMO, ROOT

    assert NAIVE_LOOP in (DEMO / "kernel.c").read_text()
    plan = tmp_path / "plan.md"
    plan.write_text("---\nobjective: Speed up the matrix multiply kernel\nmetric: gflops\ndirection: max\nstatus: approved\n---\n"
                    "# Plan\n\n## Hypotheses\n\n### H1: Loop interchange for unit-stride access\n- files: kernel.c\n"
                    "- sources: local:notes/loop-order.md\n- status: pending\n\nWalk B along rows, not columns.\n\n"
                    "## Sources\n- local:notes/loop-order.md — Loop order and cache locality\n")
    script = [read("kernel.c"), edit("kernel.c", NAIVE_LOOP, INTERCHANGED_LOOP), bash("make check"),
              text("Interchanged the loops; make check passes.")]
    with serve(script, monkeypatch) as server:
        env = {**os.environ, "PATH": f"{claude['binary'].parent}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", "tasks/demo/task.yaml",
                                 "--plan", str(plan), "--runtime", "claude-code", "--run-dir", str(tmp_path / "run")],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        status = json.loads(subprocess.run([sys.executable, "-m", "research_agent.cli", "status", str(tmp_path / "run"), "--json"],
                                           cwd=ROOT, env=env, capture_output=True, text=True).stdout)
    (experiment,) = status["experiments"]
    assert experiment["decision"] == "kept", experiment
    assert experiment["effect"]["ci"][0] > 0.5  # loop interchange: a large gain, measured like any candidate
    assert experiment["cost_usd"] > 0  # the CLI's own reported cost reached the ledger
    patch = (tmp_path / "run" / "experiments" / "r1-H1" / "patch.diff").read_text()
    assert "const double a = A[i * n + k];" in patch
    assert NAIVE_LOOP in (DEMO / "kernel.c").read_text()  # the demo folder itself is untouched


# ---------------------------------------------------------------------------
# Inside the write fence (research_agent/fence): what the static look cannot see
# ---------------------------------------------------------------------------


def test_inside_the_fence_escapes_through_programs_links_and_dotdot_are_blocked_and_reject(tmp_path, claude, monkeypatch):
    from research_agent.fence import Fence, available

    mechanism = available()
    if mechanism is None:
        pytest.skip("no write fence on this machine")
    wt, brief = worktree(tmp_path)
    out = tmp_path / "out"
    hooks = tmp_path / "repo.git" / "hooks"
    hooks.mkdir(parents=True)
    out.mkdir()
    # A mined patch added a project hook: it must not even be loaded (it would write inside, where it could).
    (wt / ".claude").mkdir()
    (wt / ".claude" / "settings.json").write_text(json.dumps({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
        {"type": "command", "command": "touch hook-ran"}]}]}}))
    script = [bash(f"python3 -c \"open('{out}/py', 'w').write('x')\""),
              bash(f"echo x > ../{tmp_path.name}-up"),
              bash(f"D={out}; echo x > $D/var"),
              bash(f"ln -s {out}/link link && echo x > link"),
              bash(f"cd {out} && touch cd"),
              bash("cp value.txt ../repo.git/hooks/post-commit"),
              edit("value.txt", "100", "150"), text("done")]
    with serve(script, monkeypatch) as server:
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=120, fence=Fence(mechanism)).apply(wt, brief)
    assert server.main_requests == len(script)  # the agent went on after each denied write
    assert list(out.iterdir()) == [] and list(hooks.iterdir()) == [] and not (tmp_path / f"{tmp_path.name}-up").exists()
    assert not (wt / "hook-ran").exists()  # the target's .claude/settings.json was not loaded
    assert not outcome.ok and outcome.details["rejected"] is True
    assert outcome.reason == f"write outside the worktree blocked: {os.path.realpath(out)}/py"
    blocked = outcome.details["blocked"]
    assert {f"{os.path.realpath(out)}/{name}" for name in ("var", "link")} <= set(blocked), blocked
    assert os.path.realpath(hooks / "post-commit") in blocked
    assert (brief.exp_dir / "claude-config").is_dir()  # its own config dir, not the user's


def test_the_cli_is_told_to_load_no_settings_hooks_or_mcp_servers(claude):
    argv = ClaudeCodeRuntime({"binary": str(claude["binary"])}).command(Path("/w"))
    assert argv[argv.index("--setting-sources") + 1] == "" and "--strict-mcp-config" in argv
    assert argv[argv.index("--mcp-config") + 1] == '{"mcpServers":{}}' and "--disable-slash-commands" in argv
    opted = ClaudeCodeRuntime({"binary": str(claude["binary"]), "setting_sources": ["project"], "mcp_config": "mcp.json"}).command(Path("/w"))
    assert opted[opted.index("--setting-sources") + 1] == "project" and "--disable-slash-commands" not in opted
    assert opted[opted.index("--mcp-config") + 1].endswith("/mcp.json")
    with pytest.raises(UserError, match="setting_sources"):
        ClaudeCodeRuntime({"binary": str(claude["binary"]), "setting_sources": ["everything"]})


def test_no_key_stops_before_the_baseline_with_exit_10(tmp_path, claude, monkeypatch):
    repo, task, plan = make_target(tmp_path, {"H1": {"notes.txt": "n\n"}})
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = subprocess.run([sys.executable, "-m", "research_agent.cli", "optimize", str(task), "--plan", str(plan),
                             "--run-dir", "run", "--runtime", "claude-code"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PATH": f"{claude['binary'].parent}:{os.environ['PATH']}"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1:] == [
        "research-agent: claude-code has no key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN / CLAUDE_CODE_OAUTH_TOKEN "
        "from `claude setup-token`) in the environment"]
    assert not (tmp_path / "run" / "experiments" / "baseline" / "baseline.log").exists()  # nothing built or benchmarked


def test_a_key_the_agent_prints_never_lands_in_the_transcript(tmp_path, claude, monkeypatch):
    wt, brief = worktree(tmp_path)
    key = "sk-ant-test-dummy"  # the scripted server's key, in ANTHROPIC_API_KEY
    with serve([bash(f"echo leaked {key}"), text("done")], monkeypatch) as server:
        assert server.api_key == key
        outcome = ClaudeCodeRuntime({"binary": str(claude["binary"])}, timeout=60).apply(wt, brief)
    saved = outcome.transcript.read_text()
    assert "leaked [redacted]" in saved and key not in saved
