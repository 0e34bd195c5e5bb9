"""The `claude-code` runtime: Anthropic's Claude Code CLI in print mode, run in the experiment's worktree.

    claude -p --output-format stream-json --verbose --max-turns N --max-budget-usd X
        --permission-mode acceptEdits --tools Read,Edit,Write,Glob,Grep,Bash
        --allowedTools Read,Edit,Write,Glob,Grep,Bash --append-system-prompt <constraints>
        --no-session-persistence --setting-sources "" --strict-mcp-config --mcp-config '{"mcpServers":{}}'
        --disable-slash-commands [--model M] [extra_args]                  (the brief on stdin)

with CLAUDE_CONFIG_DIR set to the experiment's own `claude-config/` (the runtime's state dir: no user
settings, hooks, plugins or login of yours are read, and nothing of yours is written). The target
repo's `.claude/` settings, hooks and MCP servers — which a mined patch could add — are not loaded
unless the task opts in with `setting_sources: [project]` / `mcp_config: FILE`.

(flags checked against `claude --help` of 2.1.332; `--max-turns` is accepted but hidden from the help.)

Options (the task spec's `runtime:` block, all optional):

- `binary`: path or name of the `claude` executable (default: `claude` on PATH). An npm install made
  with `--ignore-scripts` leaves a placeholder script in `bin/`; the platform package's native binary
  next to it is used instead.
- `model`: `--model` (an alias or a full id); default: the CLI's own default.
- `max_turns`: `--max-turns` (default 30).
- `max_usd`: per-experiment spending cap in USD (default 2.0), enforced twice: passed to the CLI as
  `--max-budget-usd` (it knows its own prices) and checked here on every streamed assistant message
  with the price table below; over the cap the process group is killed.
- `allowed_tools`: the tools the agent gets (default Read, Edit, Write, Glob, Grep and Bash). Entries
  may carry Claude Code permission patterns (`"Bash(make *)"`); the plain names also limit `--tools`,
  so tools not listed (web fetch/search, sub-agents…) do not exist for the agent at all.
- `bash_timeout`: seconds one Bash command may run (default 600, never more than the runtime
  timeout) — the "bounded" Bash for builds and tests.
- `prices`: USD per 1M tokens `{input, output, cache_write, cache_read}` for the run's model, or a
  mapping of model id to such prices; merged over research_agent/prices.py (missing cache prices follow Anthropic's tiers).
- `unsafe`: true → `--dangerously-skip-permissions` instead of `--permission-mode acceptEdits`
  (only for disposable VMs; the CLI itself refuses it as root unless IS_SANDBOX=1 is set).
- `extra_args`: more CLI arguments (a list, or one shell-quoted string).
- `setting_sources`: settings Claude Code may load (`user`, `project`, `local`; default none).
- `mcp_config`: an MCP config file (JSON) to load; default: no MCP servers at all.

The key comes from the environment only: ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL (and the rest of the
environment) pass through to the CLI and are never written anywhere by this module. Non-essential
traffic, telemetry, error reporting and the auto-updater are switched off.

Every stdout line is kept raw in `exp_dir/transcript.jsonl` as it arrives, and parsed on the fly:
a tool call that writes outside the worktree (Write/Edit/MultiEdit/NotebookEdit paths, Bash
redirections and file commands) stops the agent and rejects the experiment; an API 401/403 stops
it at once (the CLI would otherwise retry for minutes); the running cost is estimated.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import field_validator

from .. import git, proc
from ..errors import AgentCredentialsError
from ..prices import Price, PriceTable, anthropic
from ..text import last_line, one_line
from .agent_cli import AgentCLIRuntime, AgentOptions, constraints_text, find_binary, PositiveNumber, redact
from .base import Brief, RuntimeResult
from .writes import WriteCheck, write_targets

NAME = "claude-code"
INSTALL = "npm install -g @anthropic-ai/claude-code"
TESTED = ("2.1.328", "2.1.332")  # 2.1.332 driven by the tests; 2.1.328 recorded in tests/fixtures/claude_code
DEFAULT_MAX_TURNS = 30
DEFAULT_TOOLS = ("Read", "Edit", "Write", "Glob", "Grep", "Bash")
DEFAULT_BASH_TIMEOUT_S = 600
SETTING_SOURCES = ("user", "project", "local")
# Enough to run: an API key, or a token of a Claude login passed in the environment.
KEY_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
PROVIDER_VARIABLES = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")

# Set for every run: keep the CLI off the network except for the model API itself.
AGENT_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}
# Variables of an enclosing Claude Code session that must not leak into the agent's.
DROPPED_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT")

# Tools whose input names a file they write.
FILE_TOOLS = {"Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path", "NotebookEdit": "notebook_path"}
AUTH_STATUSES = {401: "authentication failed (401)", 403: "API access denied (403)"}


# Claude Code's prices are the Anthropic entries of research_agent.prices (its own catalog's list
# prices, so the running estimate matches the `total_cost_usd` the CLI reports). A model not listed is
# priced at DEFAULT_PRICE, the most expensive standard tier, so an unknown model can only make the cap
# trip early, never late.
DEFAULT_PRICE = anthropic(15, 75)
_TABLE = PriceTable()


def price_for(model: str | None, table: PriceTable | None = None) -> tuple[Price, bool]:
    """(price, known) for a model id as the API reports it."""
    found = (table or _TABLE).lookup(model) if model else None
    return (found, True) if found is not None else (DEFAULT_PRICE, False)


# ---------------------------------------------------------------------------
# Reading the stream
# ---------------------------------------------------------------------------


@dataclass
class StreamState:
    """What the stream-json lines said so far. Fed line by line (`feed`), also usable on a saved file."""

    workdir: Path | None = None
    allowed_outside: tuple[Path, ...] = ()  # e.g. the agent's scratch TMPDIR
    pricing: Callable[[str | None], tuple[Price, bool]] = price_for  # model -> (price, known)
    lines: int = 0
    unparsed: int = 0
    init: dict | None = None
    result: dict | None = None
    model: str | None = None
    messages: int = 0  # assistant messages (API responses) seen
    tool_uses: int = 0
    tokens: int = 0  # running, from per-message usage (the result's totals replace it)
    estimated_usd: float = 0.0
    unknown_models: set[str] = field(default_factory=set)
    outside: list[str] = field(default_factory=list)
    auth_status: int | None = None
    auth_message: str = ""
    retries: int = 0
    _counted: dict[str, int] = field(default_factory=dict)  # message id -> user-event count when counted
    _user_events: int = 0

    def feed(self, line: str) -> None:
        self.lines += 1
        text = line.strip()
        if not text:
            return
        try:
            event = json.loads(text)
        except ValueError:
            self.unparsed += 1
            return
        if not isinstance(event, dict):
            self.unparsed += 1
            return
        kind = event.get("type")
        if kind == "system":
            self._system(event)
        elif kind == "assistant":
            self._assistant(event)
        elif kind == "user":
            self._user_events += 1
        elif kind == "result":
            self.result = event
            if event.get("api_error_status") in AUTH_STATUSES:
                self.auth_status = event["api_error_status"]
                self.auth_message = str(event.get("result") or "")

    def _system(self, event: dict) -> None:
        subtype = event.get("subtype")
        if subtype == "init":
            self.init = event
            self.model = self.model or event.get("model")
        elif subtype == "api_retry":
            self.retries += 1
            status = event.get("error_status")
            if status in AUTH_STATUSES:
                self.auth_status = status
                self.auth_message = str(event.get("error") or "")

    def _assistant(self, event: dict) -> None:
        message = event.get("message")
        if not isinstance(message, dict):
            return
        model = message.get("model")
        if model and not str(model).startswith("<"):  # "<synthetic>": the CLI's own error notes
            self.model = model
        content = message.get("content") if isinstance(message.get("content"), list) else []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                self.tool_uses += 1
                self._check_tool(block.get("name"), block.get("input") or {})
        usage = message.get("usage")
        key = str(message.get("id") or id(message))
        # One API response arrives as one assistant event per content block, all with the same id
        # and usage: count it once (again only if the id comes back after a tool result).
        if not isinstance(usage, dict) or self._counted.get(key) == self._user_events:
            return
        self._counted[key] = self._user_events
        self.messages += 1
        price, known = self.pricing(model)
        if model and not known and not str(model).startswith("<"):
            self.unknown_models.add(str(model))
        # The streamed usage is the one of `message_start`: its output count is not final yet, so
        # estimate the output from the content's size (about 3 characters a token, on the high side).
        written = math.ceil(len(json.dumps(content)) / 3) if content else 0
        extra = max(0, written - _int(usage.get("output_tokens")))
        read, made = _int(usage.get("cache_read_input_tokens")), _int(usage.get("cache_creation_input_tokens"))
        prompt = _int(usage.get("input_tokens")) + read + made  # Anthropic counts cache tokens apart
        self.estimated_usd += price.cost(prompt, _int(usage.get("output_tokens")) + extra, read, made)
        self.tokens += prompt + _int(usage.get("output_tokens")) + extra

    def _check_tool(self, name, tool_input) -> None:
        if self.workdir is None or not isinstance(tool_input, dict):
            return
        # Relative Bash targets are left to the fence and the commit's checks (Bash runs in the worktree).
        check = WriteCheck(self.workdir, list(self.allowed_outside), relative=False)
        if name in FILE_TOOLS and isinstance(tool_input.get(FILE_TOOLS[name]), str):
            found = [check.absolute(path) for path in [tool_input[FILE_TOOLS[name]]] if check.outside(path)]
        elif name == "Bash" and isinstance(tool_input.get("command"), str):
            found = [check.absolute(path) for path in write_targets(tool_input["command"], relative=False) if check.outside(path)]
        else:
            found = []
        for path in found:
            if path not in self.outside:
                self.outside.append(path)

    # -- the totals ------------------------------------------------------------------------

    @property
    def turns(self) -> int | None:
        if self.result and isinstance(self.result.get("num_turns"), int):
            return self.result["num_turns"]
        return self.messages or None

    @property
    def cost_usd(self) -> float:
        if self.result and isinstance(self.result.get("total_cost_usd"), (int, float)):
            return float(self.result["total_cost_usd"])
        return self.estimated_usd

    @property
    def cost_estimated(self) -> bool:
        return not (self.result and isinstance(self.result.get("total_cost_usd"), (int, float)))

    @property
    def total_tokens(self) -> int | None:
        """Input + output + cache tokens over every model the CLI used (`modelUsage`), else `usage`."""
        if self.result:
            per_model = self.result.get("modelUsage")
            if isinstance(per_model, dict) and per_model:
                keys = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheCreationInputTokens")
                return sum(_int(entry.get(k)) for entry in per_model.values() if isinstance(entry, dict) for k in keys)
            usage = self.result.get("usage")
            if isinstance(usage, dict):
                keys = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
                return sum(_int(usage.get(k)) for k in keys)
        return self.tokens or None


def parse_transcript(path: Path | str, workdir: Path | str | None = None) -> StreamState:
    """Read a saved stream-json transcript (or a `--output-format json` result): totals, unparsed lines."""
    state = StreamState(workdir=Path(workdir) if workdir else None)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            state.feed(line.rstrip("\n"))
    return state


# ---------------------------------------------------------------------------
# The runtime
# ---------------------------------------------------------------------------


class ClaudeCodeOptions(AgentOptions):
    """Claude Code's own options beside the shared ones (the module docstring says what each does)."""

    max_turns: int = DEFAULT_MAX_TURNS
    allowed_tools: list[str] = list(DEFAULT_TOOLS)
    bash_timeout: PositiveNumber = DEFAULT_BASH_TIMEOUT_S
    setting_sources: list[str] = []
    mcp_config: str | None = None

    @field_validator("max_turns", mode="before")
    @classmethod
    def _positive_integer(cls, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or int(value) != value:
            raise ValueError("must be a positive integer")
        return int(value)

    @field_validator("allowed_tools", mode="before")
    @classmethod
    def _tools(cls, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
            raise ValueError("must be a non-empty list of tool names")
        return [t.strip() for t in value]

    @field_validator("setting_sources", mode="before")
    @classmethod
    def _sources(cls, value):
        value = value or []
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or set(value) - set(SETTING_SOURCES):
            raise ValueError(f"must list some of: {', '.join(SETTING_SOURCES)}")
        return value


class ClaudeCodeRuntime(AgentCLIRuntime):
    name = NAME
    BINARY = "claude"
    INSTALL = INSTALL
    TESTED = TESTED
    KEY_VARIABLES = KEY_VARIABLES
    KEY_HINT = "ANTHROPIC_API_KEY is not set"
    DEFAULT_PRICE = DEFAULT_PRICE
    Options = ClaudeCodeOptions

    def __init__(self, options: dict | None = None, timeout: float = 1800, fence=None):
        super().__init__(options, timeout, fence)
        settings: ClaudeCodeOptions = self.settings  # type: ignore[assignment]
        self.max_turns = settings.max_turns
        self.bash_timeout = min(float(settings.bash_timeout), max(1.0, float(timeout)))
        self.allowed_tools = list(settings.allowed_tools)
        if self.unsafe:
            self.notice("warning: claude runs with --dangerously-skip-permissions (unsafe: true): use only on a disposable VM")
        self.setting_sources = list(settings.setting_sources)
        self.mcp_config = str(Path(os.path.expanduser(settings.mcp_config)).absolute()) if settings.mcp_config else None

    @classmethod
    def find(cls, configured: str | None) -> Path:
        return resolve_binary(configured)

    @classmethod
    def price_defaults(cls, input: float, output: float, given: dict) -> dict:
        tier = anthropic(input, output)
        return {"cached_input": tier.cached_input, "cache_write": tier.cache_write}

    def preflight(self) -> None:
        """Before the baseline: no key and no login token → one line, nothing spent (exit 10)."""
        if any(os.environ.get(name) for name in KEY_VARIABLES + PROVIDER_VARIABLES):
            return
        raise AgentCredentialsError("claude-code has no key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN / "
                                    "CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`) in the environment")

    def command(self, workdir: Path) -> list[str]:
        """The argv (the brief itself goes to stdin)."""
        names = list(dict.fromkeys(t.split("(")[0].strip() for t in self.allowed_tools))
        builtin = [n for n in names if re.fullmatch(r"[A-Z][A-Za-z]*", n)]
        argv = [str(self.binary), "-p", "--output-format", "stream-json", "--verbose",
                "--max-turns", str(self.max_turns), "--max-budget-usd", f"{self.max_usd:g}"]
        argv += ["--dangerously-skip-permissions"] if self.unsafe else ["--permission-mode", "acceptEdits"]
        if builtin:
            argv += ["--tools", ",".join(builtin)]
        argv += ["--allowedTools", ",".join(self.allowed_tools),
                 "--append-system-prompt", constraints_text(workdir), "--no-session-persistence"]
        # No settings, hooks, skills or MCP servers from the user's or the target repo's .claude/
        # unless the task opts in: a mined patch can add a .claude/settings.json hook.
        argv += ["--setting-sources", ",".join(self.setting_sources), "--strict-mcp-config",
                 "--mcp-config", self.mcp_config or '{"mcpServers":{}}']
        if "project" not in self.setting_sources:
            argv.append("--disable-slash-commands")
        if self.model:
            argv += ["--model", self.model]
        return argv + self.extra_args

    def environment(self, scratch: Path | None, state: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(AGENT_ENV)
        if state is not None:
            env["CLAUDE_CONFIG_DIR"] = str(state)  # the runtime's own state dir, not the user's ~/.claude
        bash_ms = str(int(self.bash_timeout * 1000))
        env["BASH_MAX_TIMEOUT_MS"] = bash_ms
        env["BASH_DEFAULT_TIMEOUT_MS"] = str(min(int(bash_ms), 120_000))
        if scratch is not None:
            env["TMPDIR"] = str(scratch)
        return env

    def apply(self, workdir: Path, brief: Brief) -> RuntimeResult:
        workdir = Path(workdir)
        exp_dir = brief.exp_dir or brief.path.parent
        exp_dir.mkdir(parents=True, exist_ok=True)
        transcript = exp_dir / "transcript.jsonl"
        scratch = exp_dir / "agent-tmp"
        scratch.mkdir(exist_ok=True)
        config_dir = exp_dir / "claude-config"
        config_dir.mkdir(exist_ok=True)
        state = StreamState(workdir=workdir, allowed_outside=(scratch,), pricing=self.price_for)
        confined = self.fence.confine([workdir, scratch, config_dir]) if self.fence else None
        head = _git_head(workdir)
        stop: dict[str, str | None] = {"kind": None, "reason": None}
        received: list[str] = []

        with open(transcript, "w", encoding="utf-8") as out:

            secrets = [os.environ[name] for name in KEY_VARIABLES if len(os.environ.get(name) or "") >= 8]

            def on_line(line: str) -> str | None:
                received.append(line)
                out.write(redact(line, secrets) + "\n")  # a key the agent printed never lands in the transcript
                out.flush()
                state.feed(line)
                if state.outside:
                    stop.update(kind="outside", reason=f"edited outside the worktree: {state.outside[0]}")
                elif state.auth_status is not None and state.result is None:
                    stop.update(kind="auth", reason=_auth_reason(state))
                elif state.result is None and state.estimated_usd > self.max_usd:
                    stop.update(kind="usd", reason=self.cap_reason(state.estimated_usd))
                return stop["reason"]

            result = proc.stream(self.command(workdir), cwd=workdir, on_line=on_line, timeout=self.timeout,
                                 env=self.environment(scratch, config_dir), stdin_text=brief.text, replace_env=True,
                                 fence=confined)

        stderr = _stderr_of(result.output, received, stop["reason"])
        try:
            scratch.rmdir()  # only when the agent left nothing there
        except OSError:
            pass
        if stderr.strip():
            (exp_dir / "claude.stderr.log").write_text(stderr, encoding="utf-8")
        undone = _undo_agent_commits(workdir, head)
        details = {
            "runtime": NAME,
            "binary": str(self.binary),
            "version": self.version,
            "model": state.model,
            "subtype": (state.result or {}).get("subtype"),
            "session_id": (state.result or state.init or {}).get("session_id"),
            "tool_uses": state.tool_uses,
            "api_retries": state.retries,
            "permission_denials": len((state.result or {}).get("permission_denials") or []),
            "unparsed_lines": state.unparsed,
            "cost_estimated": state.cost_estimated,
            "estimated_usd": round(state.estimated_usd, 6),
            "max_usd": self.max_usd,
            "max_turns": self.max_turns,
            "killed": stop["kind"] or ("timeout" if result.timed_out else None),
            "seconds": round(result.seconds, 2),
        }
        if undone:
            details["agent_commits_undone"] = undone
        if state.unknown_models:
            details["unpriced_models"] = sorted(state.unknown_models)
            for model in sorted(state.unknown_models):
                self.notice(self.price_notice(model))
        common = dict(transcript=transcript, tokens=state.total_tokens, cost_usd=state.cost_usd, turns=state.turns)

        def fail(reason: str, **more) -> RuntimeResult:
            return RuntimeResult(False, reason, details={**details, **more}, **common)

        if stop["kind"] == "outside":
            return fail(f"edited outside the worktree: {state.outside[0]}", rejected=True, outside=state.outside)
        if result.blocked:  # the fence stopped a write the static look could not see (python, ../, $D, links)
            return fail(f"write outside the worktree blocked: {result.blocked[0]}", rejected=True, blocked=result.blocked)
        if stop["kind"] == "auth":
            return fail(_auth_reason(state))
        if stop["kind"] == "usd":
            return fail(self.cap_reason(state.cost_usd))
        if result.timed_out:
            return fail(f"agent timed out after {self.timeout:.0f}s")
        if result.stopped or proc.stopping():
            return fail("stopped")
        final = state.result
        if final is None:
            tail = one_line(last_line(stderr) or last_line("\n".join(received)), 200)
            if result.returncode == 0:
                return fail("claude ended without a result" + (f": {tail}" if tail else ""))
            hint = ""
            if self.unsafe and "root" in stderr:
                hint = " (the CLI refuses --dangerously-skip-permissions as root: set IS_SANDBOX=1 on a disposable VM, or drop unsafe)"
            return fail(f"claude exited {result.returncode}" + (f": {tail}" if tail else "") + hint)
        subtype = final.get("subtype")
        if subtype == "error_max_turns":
            return fail(f"agent exceeded max turns ({self.max_turns})")
        if subtype == "error_max_budget_usd":
            return fail(self.cap_reason(state.cost_usd))
        if state.auth_status is not None:
            return fail(_auth_reason(state))
        if final.get("is_error") or subtype != "success":
            status = final.get("api_error_status")
            said = one_line(final.get("result") or "; ".join(str(e) for e in final.get("errors") or []), 200)
            if status:
                return fail(f"agent API error ({status})" + (f": {said}" if said else ""))
            if not os.environ.get("ANTHROPIC_API_KEY") and not final.get("total_cost_usd"):
                return fail("authentication failed: ANTHROPIC_API_KEY is not set" + (f" ({said})" if said else ""))
            what = final.get("terminal_reason") if subtype == "success" else subtype
            return fail(f"agent failed ({what})" + (f": {said}" if said else ""))
        return RuntimeResult(True, None, details=details, **common)


def resolve_binary(configured: str | None) -> Path:
    """`find_binary`, then past npm's placeholder script to the platform package's native binary."""
    binary = find_binary(configured, "claude", INSTALL)
    native = _native_behind_placeholder(binary)
    return native or binary


def _native_behind_placeholder(binary: Path) -> Path | None:
    try:
        real = Path(os.path.realpath(binary))
        if real.stat().st_size > 64 * 1024 or b"native binary not installed" not in real.read_bytes():
            return None
    except OSError:
        return None
    package = real.parent.parent  # …/node_modules/@anthropic-ai/claude-code/bin/claude.exe
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, sys.platform)
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), platform.machine())
    for suffix in ("", "-musl"):
        candidate = package.parent / f"{package.name}-{system}-{arch}{suffix}" / ("claude.exe" if system == "win32" else "claude")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


doctor_info = ClaudeCodeRuntime.doctor_info  # what `research-agent doctor` shows for Claude Code


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _auth_reason(state: StreamState) -> str:
    said = one_line(state.auth_message, 200)
    return f"{AUTH_STATUSES[state.auth_status]}: the API rejected the key in ANTHROPIC_API_KEY" + (f" ({said})" if said else "")


def _int(value) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def _stderr_of(output: str, received: list[str], stop_reason: str | None) -> str:
    """proc.stream's output is stdout, then stderr, then the stop reason: keep the stderr part."""
    if stop_reason and output.endswith(f"\n{stop_reason}\n"):
        output = output[: -len(stop_reason) - 2]
    stdout = "".join(line + "\n" for line in received)
    for known in (stdout, stdout[:-1]):
        if output.startswith(known):
            return output[len(known):]
    return ""


def _git_head(workdir: Path) -> str | None:
    return git.head(workdir)


def _undo_agent_commits(workdir: Path, head: str | None) -> int:
    """The agent was told not to commit; if it did, move HEAD back and keep its changes on disk.

    research-agent commits whatever the runtime left in the worktree: commits made by the agent
    would otherwise hide its changes (an empty diff) — `git reset --soft` keeps them staged.
    """
    if head is None:
        return 0
    now = _git_head(workdir)
    if now is None or now == head:
        return 0
    try:
        count = int(git.in_checkout(workdir, "rev-list", "--count", f"{head}..{now}") or 0)
    except (git.GitError, ValueError):
        count = 1
    try:
        git.in_checkout(workdir, "reset", "--soft", "-q", head)
    except git.GitError:
        pass
    return count
