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
  mapping of model id to such prices; merged over `PRICES`.
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
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import git, proc
from ..errors import AgentCredentialsError, UserError
from .agent_common import binary_version, redact, constraints_text, find_binary, outside_worktree, shell_write_targets, version_notice
from .base import Brief, Runtime, RuntimeResult

NAME = "claude-code"
INSTALL = "npm install -g @anthropic-ai/claude-code"
TESTED = ("2.1.328", "2.1.332")  # 2.1.332 driven by the tests; 2.1.328 recorded in tests/fixtures/claude_code
DEFAULT_MAX_TURNS = 30
DEFAULT_MAX_USD = 2.0
DEFAULT_TOOLS = ("Read", "Edit", "Write", "Glob", "Grep", "Bash")
DEFAULT_BASH_TIMEOUT_S = 600
OPTIONS = {"binary", "model", "max_turns", "max_usd", "allowed_tools", "bash_timeout", "prices", "unsafe", "extra_args",
           "setting_sources", "mcp_config"}
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


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens: fresh input, output, cache writes (5-minute) and cache reads."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(self, usage: dict, extra_output: int = 0) -> float:
        tokens = {key: _int(usage.get(key)) for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
        return (tokens["input_tokens"] * self.input + (tokens["output_tokens"] + extra_output) * self.output
                + tokens["cache_creation_input_tokens"] * self.cache_write + tokens["cache_read_input_tokens"] * self.cache_read) / 1_000_000


def _tier(input: float, output: float, cache_read: float | None = None) -> Price:
    return Price(input, output, input * 1.25, input / 10 if cache_read is None else cache_read)


# The list prices in Claude Code 2.1.332's own model catalog (so the running estimate matches the
# `total_cost_usd` the CLI reports). Model ids are matched after dropping a date suffix
# (`-20250929`) and a context tag (`[1m]`). For haiku-5-5 the long-prompt price is used (an upper
# bound). A model not listed is priced at DEFAULT_PRICE, the most expensive standard tier, so an
# unknown model can only make the cap trip early, never late.
PRICES: dict[str, Price] = {
    "claude-3-haiku": _tier(0.25, 1.25, 0.03),
    "claude-3-5-haiku": _tier(0.8, 4),
    "claude-haiku-4-5": _tier(1, 5),
    "claude-haiku-5-5": _tier(0.5, 2.5, 0.05),
    "claude-3-5-sonnet": _tier(3, 15),
    "claude-3-7-sonnet": _tier(3, 15),
    "claude-sonnet-4": _tier(3, 15),
    "claude-sonnet-4-0": _tier(3, 15),
    "claude-sonnet-4-5": _tier(3, 15),
    "claude-sonnet-4-6": _tier(3, 15),
    "claude-sonnet-5": _tier(2, 10),
    "claude-sonnet-5-5": _tier(2, 10, 0.1),
    "claude-3-opus": _tier(15, 75),
    "claude-opus-4": _tier(15, 75),
    "claude-opus-4-0": _tier(15, 75),
    "claude-opus-4-1": _tier(15, 75),
    "claude-opus-4-5": _tier(5, 25),
    "claude-opus-4-6": _tier(5, 25),
    "claude-opus-4-7": _tier(5, 25),
    "claude-opus-4-8": _tier(5, 25),
    "claude-opus-5": _tier(5, 25),
    "claude-opus-5-5": _tier(4, 20, 0.2),
    "claude-fable-5": _tier(10, 50, 1),
    "claude-fable-5-1": _tier(10, 50, 0.25),
    "claude-fable-5-2": _tier(8, 40, 0.2),
    "claude-mythos-5": _tier(10, 50, 1),
    "claude-mythos-5-1": _tier(10, 50, 0.25),
    "claude-mythos-5-2": _tier(8, 40, 0.2),
}
DEFAULT_PRICE = _tier(15, 75)


def price_for(model: str | None, overrides: dict[str, Price] | None = None) -> tuple[Price, bool]:
    """(price, known) for a model id as the API reports it."""
    table = {**PRICES, **(overrides or {})}
    if not model:
        return DEFAULT_PRICE, False
    key = re.sub(r"\[.*?\]$", "", model.strip().lower())
    for candidate in (key, re.sub(r"-\d{8}$", "", key), re.sub(r"-(v\d+(:\d+)?|latest)$", "", re.sub(r"-\d{8}$", "", key))):
        if candidate in table:
            return table[candidate], True
    return DEFAULT_PRICE, False


# ---------------------------------------------------------------------------
# Reading the stream
# ---------------------------------------------------------------------------


@dataclass
class StreamState:
    """What the stream-json lines said so far. Fed line by line (`feed`), also usable on a saved file."""

    workdir: Path | None = None
    allowed_outside: tuple[Path, ...] = ()  # e.g. the agent's scratch TMPDIR
    prices: dict[str, Price] = field(default_factory=dict)
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
        price, known = price_for(model, self.prices)
        if model and not known and not str(model).startswith("<"):
            self.unknown_models.add(str(model))
        # The streamed usage is the one of `message_start`: its output count is not final yet, so
        # estimate the output from the content's size (about 3 characters a token, on the high side).
        written = math.ceil(len(json.dumps(content)) / 3) if content else 0
        extra = max(0, written - _int(usage.get("output_tokens")))
        self.estimated_usd += price.cost(usage, extra)
        self.tokens += sum(_int(usage.get(k)) for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")) + extra

    def _check_tool(self, name, tool_input) -> None:
        if self.workdir is None or not isinstance(tool_input, dict):
            return
        paths: list[str] = []
        if name in FILE_TOOLS and isinstance(tool_input.get(FILE_TOOLS[name]), str):
            paths.append(tool_input[FILE_TOOLS[name]])
        elif name == "Bash" and isinstance(tool_input.get("command"), str):
            paths += shell_write_targets(tool_input["command"])
        for path in paths:
            if outside_worktree(path, self.workdir) and not any(not outside_worktree(path, ok) for ok in self.allowed_outside):
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


class ClaudeCodeRuntime(Runtime):
    name = NAME

    def __init__(self, options: dict | None = None, timeout: float = 1800, fence=None):
        self.options = dict(options or {})
        self.timeout = timeout
        self.fence = fence  # research_agent.fence.Fence, or None (sandbox: off)
        self.notices: list[str] = []  # one-line warnings for the orchestrator to print
        unknown = sorted(set(self.options) - OPTIONS)
        if unknown:
            raise UserError(f"unknown claude-code runtime option(s): {', '.join(unknown)} (known: {', '.join(sorted(OPTIONS))})")
        self.binary = resolve_binary(self.options.get("binary"))
        self.version = binary_version(self.binary)
        notice = version_notice("claude", self.version, TESTED)
        if notice:
            self.notices.append(notice)
        self.model = _opt_str(self.options, "model")
        self.max_turns = _opt_number(self.options, "max_turns", DEFAULT_MAX_TURNS, integer=True)
        self.max_usd = _opt_number(self.options, "max_usd", DEFAULT_MAX_USD)
        self.bash_timeout = min(_opt_number(self.options, "bash_timeout", DEFAULT_BASH_TIMEOUT_S), max(1.0, float(timeout)))
        tools = self.options.get("allowed_tools", list(DEFAULT_TOOLS))
        if isinstance(tools, str):
            tools = [part.strip() for part in tools.split(",")]
        if not isinstance(tools, list) or not tools or not all(isinstance(t, str) and t.strip() for t in tools):
            raise UserError("claude-code option allowed_tools must be a non-empty list of tool names")
        self.allowed_tools = [t.strip() for t in tools]
        self.prices = _opt_prices(self.options.get("prices"), self.model)
        self.unsafe = bool(self.options.get("unsafe", False))
        if self.unsafe:
            self.notices.append("warning: claude runs with --dangerously-skip-permissions (unsafe: true): use only on a disposable VM")
        extra = self.options.get("extra_args") or []
        if isinstance(extra, str):
            extra = shlex.split(extra)
        if not isinstance(extra, list):
            raise UserError("claude-code option extra_args must be a list of arguments")
        self.extra_args = [str(arg) for arg in extra]
        if self.model and not price_for(self.model, self.prices)[1]:
            self.notices.append(_price_note(self.model))
        sources = self.options.get("setting_sources") or []
        if isinstance(sources, str):
            sources = [part.strip() for part in sources.split(",") if part.strip()]
        if not isinstance(sources, list) or set(sources) - set(SETTING_SOURCES):
            raise UserError(f"claude-code option setting_sources must list some of: {', '.join(SETTING_SOURCES)}")
        self.setting_sources = list(sources)
        mcp = self.options.get("mcp_config")
        self.mcp_config = str(Path(os.path.expanduser(str(mcp))).absolute()) if mcp else None

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
        state = StreamState(workdir=workdir, allowed_outside=(scratch,), prices=self.prices)
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
                    stop.update(kind="usd", reason=_usd_reason(self.max_usd, state.estimated_usd))
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
            self.notices += [note for note in map(_price_note, sorted(state.unknown_models)) if note not in self.notices]
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
            return fail(_usd_reason(self.max_usd, state.cost_usd))
        if result.timed_out:
            return fail(f"agent timed out after {self.timeout:.0f}s")
        if result.stopped or proc.stopping():
            return fail("stopped")
        final = state.result
        if final is None:
            tail = _last_line(stderr) or _last_line("\n".join(received))
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
            return fail(_usd_reason(self.max_usd, state.cost_usd))
        if state.auth_status is not None:
            return fail(_auth_reason(state))
        if final.get("is_error") or subtype != "success":
            status = final.get("api_error_status")
            said = _one_line(final.get("result") or "; ".join(str(e) for e in final.get("errors") or []))
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


def doctor_info(options: dict | None = None) -> dict:
    """What `research-agent doctor` shows for Claude Code: never the key itself, only whether it is set."""
    info = {"runtime": NAME, "binary": None, "version": None, "key_present": bool(os.environ.get("ANTHROPIC_API_KEY")),
            "usable": False, "note": ""}
    try:
        binary = resolve_binary((options or {}).get("binary"))
    except UserError:
        info["note"] = f"not installed: {INSTALL}"
        return info
    info["binary"] = str(binary)
    info["version"] = binary_version(binary)
    notes = []
    if info["version"] is None:
        notes.append(f"{binary} --version failed")
    notice = version_notice("claude", info["version"], TESTED)
    if notice and info["version"] is not None:
        notes.append(notice)
    if not info["key_present"]:
        notes.append("ANTHROPIC_API_KEY is not set")
    info["usable"] = info["version"] is not None and info["key_present"]
    info["note"] = "; ".join(notes) or f"ok (tested with {TESTED[0]}–{TESTED[1]})"
    return info


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _price_note(model: str) -> str:
    return (f"note: no price known for model '{model}': the running cost estimate uses "
            f"${DEFAULT_PRICE.input:g}/${DEFAULT_PRICE.output:g} per 1M tokens (set runtime: {{prices: ...}})")


def _usd(value: float) -> str:
    return f"${value:.2f}" if value >= 0.1 else f"${value:.3g}"


def _usd_reason(cap: float, spent: float) -> str:
    return f"agent exceeded the {_usd(cap)} cap ({_usd(spent)} spent)"


def _auth_reason(state: StreamState) -> str:
    said = _one_line(state.auth_message)
    return f"{AUTH_STATUSES[state.auth_status]}: the API rejected the key in ANTHROPIC_API_KEY" + (f" ({said})" if said else "")


def _int(value) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else ""


def _stderr_of(output: str, received: list[str], stop_reason: str | None) -> str:
    """proc.stream's output is stdout, then stderr, then the stop reason: keep the stderr part."""
    if stop_reason and output.endswith(f"\n{stop_reason}\n"):
        output = output[: -len(stop_reason) - 2]
    stdout = "".join(line + "\n" for line in received)
    for known in (stdout, stdout[:-1]):
        if output.startswith(known):
            return output[len(known):]
    return ""


def _opt_str(options: dict, key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UserError(f"claude-code option {key} must be a string")
    return value


def _opt_number(options: dict, key: str, default: float, integer: bool = False):
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (integer and int(value) != value):
        kind = "a positive integer" if integer else "a positive number"
        raise UserError(f"claude-code option {key} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def _opt_prices(value, model: str | None) -> dict[str, Price]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError("claude-code option prices must be a mapping")
    fields = {"input", "output", "cache_write", "cache_read"}
    entries = {model or "": value} if fields & set(value) else value
    prices = {}
    for name, spec in entries.items():
        if not isinstance(spec, dict) or not {"input", "output"} <= set(spec) or set(spec) - fields:
            raise UserError("claude-code prices: give {input, output[, cache_write, cache_read]} in USD per 1M tokens")
        try:
            base = _tier(float(spec["input"]), float(spec["output"]), float(spec["cache_read"]) if "cache_read" in spec else None)
            prices[str(name).lower()] = Price(base.input, base.output, float(spec.get("cache_write", base.cache_write)), base.cache_read)
        except (TypeError, ValueError):
            raise UserError(f"claude-code prices for {name or 'the model'} must be numbers") from None
    return prices


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
