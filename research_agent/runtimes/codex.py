"""The `codex` runtime: OpenAI's Codex CLI, run non-interactively in the experiment's worktree.

    codex exec --json --sandbox workspace-write --skip-git-repo-check -C <worktree> [-m MODEL]
        [-c model_provider=NAME -c 'model_providers.NAME={...}'] -c ... -      (the prompt on stdin)

Options (the task spec's `runtime:` block, all optional):

- `binary`: path or name of the `codex` executable (default: `codex` on PATH).
- `model`: the model id (`-m`); default: Codex's own default.
- `base_url` / `provider` / `env_key`: a custom model provider speaking the Responses API
  (OpenRouter, vLLM, a local stand-in…). `provider` names it (default `research-agent`), `env_key`
  is the environment variable holding its key (default `OPENAI_API_KEY`), `base_url` defaults to
  the OpenAI API. Without any of them Codex's built-in OpenAI provider is used.
- `max_retries`: Codex's own HTTP/stream retries for a custom provider (default 2).
- `max_usd`: per-experiment spending cap in USD (default 2.0).
- `prices`: USD per 1M tokens, `{input, cached_input, output}` (or a 3-list) for the run's model,
  or a mapping of model id to such prices; merged over research_agent/prices.py.
- `unsafe`: true → `--dangerously-bypass-approvals-and-sandbox` instead of the workspace-write
  sandbox (only for hosts that are sandboxed some other way).
- `extra_args`: more `codex exec` arguments, inserted before the prompt.
- `user_config`: true → use the user's CODEX_HOME (or ~/.codex) and its config.toml and login;
  default: a per-experiment CODEX_HOME, `--ignore-user-config`, and a key from the environment.

Every run passes `--strict-config` (an unknown config field is an error, not silently ignored).
Inside research-agent's write fence (research_agent/fence) Codex runs with `--sandbox
danger-full-access`: its own bubblewrap sandbox cannot start inside ours (no nested user
namespaces under Landlock's no_new_privs / inside bwrap), and ours already confines every write.

The provider key comes from the environment only (never written anywhere by this module).
CODEX_HOME is a per-experiment folder under the experiment directory unless `user_config` is set; the agent's TMPDIR is a per-experiment scratch folder, and `/tmp` is left out of the
sandbox's writable roots, so every write outside the worktree is either blocked or flagged.
The workspace-write sandbox is Codex's own (bubblewrap + seccomp on Linux, shipped with the CLI;
it needs user namespaces). Where it cannot start, Codex's commands fail inside the agent run: run
research-agent inside an outer sandbox (container/VM) and opt in with `unsafe: true` — never
switched on silently.

Costs: `turn.completed` carries the usage of the turn, but `codex exec` runs a single turn, so that
event only arrives at the end. To enforce the cap while the agent works, the session file Codex
writes under CODEX_HOME (`sessions/**/rollout-*-<thread id>.jsonl`, which records a `token_count`
event after every model response and every tool call, including calls the sandbox refused and
that `--json` does not report) is followed as well; the process group is killed as soon as either
source shows the cap exceeded, or a write outside the worktree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc
from ..errors import AgentCredentialsError
from ..prices import Price
from ..text import last_line, one_line
from .agent_cli import AgentCLIRuntime, AgentOptions, constraints_text, redact
from .base import Brief, RuntimeResult
from .writes import WriteCheck

NAME = "codex"
INSTALL = "npm install -g @openai/codex"
TESTED = ("0.169.0", "0.171.0")  # 0.171.0 driven in the tests; 0.169.0 recorded in tests/fixtures/codex
DEFAULT_PROVIDER = "research-agent"
DEFAULT_ENV_KEY = "OPENAI_API_KEY"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MAX_RETRIES = 2
POLL_S = 0.2  # how often the session file is read while Codex runs


# OpenAI's prices are in research_agent.prices (override or extend them with the `prices` option). A
# model not listed is priced at UNKNOWN_PRICE — deliberately high, so the cap trips early rather than
# late — and its cost is reported as an estimate (details["cost_known"] = False, plus a notice).
UNKNOWN_PRICE = Price(10.0, 40.0, 2.5)


@dataclass
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, data: dict | None) -> "Usage":
        data = data if isinstance(data, dict) else {}
        return cls(_int(data.get("input_tokens")), _int(data.get("cached_input_tokens")), _int(data.get("output_tokens")))

    def add(self, other: "Usage") -> None:
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.output_tokens += other.output_tokens

    def to_dict(self) -> dict:
        return {"input": self.input_tokens, "cached_input": self.cached_input_tokens, "output": self.output_tokens}

    def cost(self, price: Price) -> float:
        return price.cost(self.input_tokens, self.output_tokens, self.cached_input_tokens)


def _int(value) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------------------------------
# The `codex exec --json` transcript
# ---------------------------------------------------------------------------------------------


@dataclass
class Transcript:
    """What a `codex exec --json` stdout says, parsed line by line; unparseable lines are counted."""

    thread_id: str | None = None
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    file_changes: list[dict] = field(default_factory=list)  # {"path", "kind"}
    commands: list[dict] = field(default_factory=list)  # {"command", "exit_code", "status"}
    messages: list[str] = field(default_factory=list)  # the agent's messages
    errors: list[str] = field(default_factory=list)  # `error` events and error items
    failure: str | None = None  # the last turn.failed message
    unparsed: int = 0
    lines: int = 0

    def feed(self, line: str) -> dict | None:
        """Take one stdout line; returns the event when it parsed as one."""
        if not line.strip():
            return None
        self.lines += 1
        try:
            event = json.loads(line)
        except ValueError:
            self.unparsed += 1
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.unparsed += 1
            return None
        kind = event["type"]
        if kind == "thread.started":
            self.thread_id = event.get("thread_id") or self.thread_id
        elif kind == "turn.completed":
            self.turns += 1
            self.usage.add(Usage.of(event.get("usage")))
        elif kind == "turn.failed":
            error = event.get("error")
            self.failure = (error.get("message") if isinstance(error, dict) else None) or str(error or "turn failed")
        elif kind == "error":
            self.errors.append(str(event.get("message") or "error"))
        elif kind == "item.completed" and isinstance(event.get("item"), dict):
            self._item(event["item"])
        return event

    def _item(self, item: dict) -> None:
        kind = item.get("type")
        if kind == "file_change":
            for change in item.get("changes") or []:
                if isinstance(change, dict) and change.get("path"):
                    self.file_changes.append({"path": str(change["path"]), "kind": change.get("kind"), "status": item.get("status")})
        elif kind == "command_execution":
            self.commands.append({"command": item.get("command"), "exit_code": item.get("exit_code"), "status": item.get("status")})
        elif kind == "agent_message" and item.get("text"):
            self.messages.append(str(item["text"]))
        elif kind == "error" and item.get("message"):
            self.errors.append(str(item["message"]))

    def details(self) -> dict:
        return {
            "thread_id": self.thread_id,
            "file_changes": self.file_changes,
            "commands": self.commands,
            "messages": self.messages[-3:],
            "errors": self.errors,
            "unparsed_lines": self.unparsed,
        }


def parse_transcript(lines) -> Transcript:
    transcript = Transcript()
    for line in lines:
        transcript.feed(line.rstrip("\n"))
    return transcript


# ---------------------------------------------------------------------------------------------
# Writes outside the worktree
# ---------------------------------------------------------------------------------------------

_SHELLS = {"bash", "sh", "zsh", "dash", "ksh"}
_PATCH_PATHS = re.compile(r"^\*\*\* (?:Add File|Update File|Delete File|Move to): (.+?)\s*$", re.MULTILINE)


def unwrap_shell(command) -> str:
    """The script of `/bin/bash -lc '<script>'` (how Codex reports commands), else the command as text."""
    if isinstance(command, list):
        words = [str(word) for word in command]
    else:
        try:
            words = shlex.split(str(command or ""))
        except ValueError:
            return str(command or "")
    if len(words) >= 3 and os.path.basename(words[0]) in _SHELLS and words[1].startswith("-") and "c" in words[1]:
        return words[2]
    return " ".join(shlex.quote(word) for word in words) if isinstance(command, list) else str(command or "")


def patch_paths(patch: str) -> list[str]:
    """The files an `apply_patch` body adds, updates, deletes or moves to."""
    return [match.group(1) for match in _PATCH_PATHS.finditer(patch or "")]


# ---------------------------------------------------------------------------------------------
# The runtime
# ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    """Shared between the stdout callback and the session-file watcher of one run."""

    transcript: Transcript
    session_usage: Usage = field(default_factory=Usage)
    session_model: str | None = None
    session_file: Path | None = None
    session_calls: list[dict] = field(default_factory=list)
    stop: tuple[str, str] | None = None  # (kind, reason): kind is "cap", "outside" or "watcher"
    outside: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class CodexOptions(AgentOptions):
    """Codex's own options beside the shared ones (the module docstring says what each does)."""

    base_url: str | None = None
    provider: str | None = None
    env_key: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    user_config: bool = False


class CodexRuntime(AgentCLIRuntime):
    name = NAME
    BINARY = "codex"
    INSTALL = INSTALL
    TESTED = TESTED
    KEY_VARIABLES = ("OPENAI_API_KEY", "CODEX_API_KEY")
    KEY_HINT = "set OPENAI_API_KEY (or a custom provider's env_key) to run it"
    DOCTOR_NEEDS_KEY = False  # a custom provider's env_key, or the user's own Codex login, may stand in
    DEFAULT_PRICE = UNKNOWN_PRICE
    PRICE_ORDER = ("input", "cached_input", "output")  # `prices: [1.25, 0.125, 10]`
    Options = CodexOptions

    def __init__(self, options: dict | None = None, timeout: float = 1800, fence=None):
        super().__init__(options, timeout, fence)
        settings: CodexOptions = self.settings  # type: ignore[assignment]
        self.user_config = settings.user_config
        self.custom = any((settings.base_url, settings.provider, settings.env_key))
        self.provider = settings.provider or DEFAULT_PROVIDER
        self.env_key = settings.env_key or DEFAULT_ENV_KEY
        self.base_url = settings.base_url or DEFAULT_BASE_URL
        self.max_retries = settings.max_retries
        if self.unsafe:
            self.notice("warning: codex runs without its sandbox (unsafe: true): use only on an externally sandboxed host")

    # --- the command --------------------------------------------------------------------------

    def command(self, workdir: Path) -> list[str]:
        cmd = [str(self.binary), "exec", "--json"]
        if self.unsafe:
            cmd.append("--dangerously-bypass-approvals-and-sandbox")
        elif self.fence is not None:
            # Codex's own bwrap sandbox cannot nest inside our fence (it needs new user namespaces,
            # which no_new_privs / an outer bwrap forbid); ours confines every write already.
            cmd += ["--sandbox", "danger-full-access"]
        else:
            cmd += ["--sandbox", "workspace-write"]
        cmd += ["--skip-git-repo-check", "-C", str(workdir)]
        if self.model:
            cmd += ["-m", str(self.model)]
        if self.custom:
            provider = (f'{{name="{_toml(self.provider)}", base_url="{_toml(self.base_url)}", env_key="{_toml(self.env_key)}", '
                        f'wire_api="responses", request_max_retries={self.max_retries}, stream_max_retries={self.max_retries}}}')
            cmd += ["-c", f'model_provider="{_toml(self.provider)}"', "-c", f"model_providers.{_toml_key(self.provider)}={provider}"]
        for flag in ("--strict-config", *(() if self.user_config else ("--ignore-user-config",))):
            if flag not in self.extra_args:  # the CLI refuses a flag given twice
                cmd.append(flag)
        hidden = sorted({self.env_key, "OPENAI_API_KEY", "CODEX_API_KEY", "*API_KEY*"})
        cmd += [
            # /tmp out of the sandbox's writable roots: scratch goes to the per-experiment TMPDIR.
            "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
            # the provider key stays out of the agent's commands
            "-c", "shell_environment_policy.exclude=[" + ", ".join(f'"{_toml(name)}"' for name in hidden) + "]",
            "-c", "analytics.enabled=false",
            "-c", "check_for_update_on_startup=false",
        ]
        cmd += self.extra_args
        cmd.append("-")  # the prompt comes on stdin
        return cmd

    def environment(self, exp_dir: Path) -> tuple[dict[str, str], Path, Path]:
        """(environment additions, CODEX_HOME, scratch TMPDIR)."""
        env: dict[str, str] = {}
        user_home = os.environ.get("CODEX_HOME") or "~/.codex"
        codex_home = Path(user_home).expanduser() if self.user_config else exp_dir / "codex-home"
        codex_home.mkdir(parents=True, exist_ok=True)
        env["CODEX_HOME"] = str(codex_home)
        scratch = exp_dir / "codex-tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(scratch)
        if not self.custom and os.environ.get("OPENAI_API_KEY") and not os.environ.get("CODEX_API_KEY"):
            env["CODEX_API_KEY"] = os.environ["OPENAI_API_KEY"]  # what `codex exec` reads; process env only
        return env, codex_home, scratch

    def _key_problem(self) -> str | None:
        if self.custom:
            if not os.environ.get(self.env_key):
                return f"no API key: set {self.env_key} in the environment"
            return None
        if self.user_config:
            return None  # the user's own Codex home may hold a login
        if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("CODEX_API_KEY")):
            return "no API key: set OPENAI_API_KEY in the environment (or runtime: {user_config: true} to use your Codex login)"
        return None

    # --- a run --------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Before the baseline: no key → one line, nothing spent (exit 10)."""
        problem = self._key_problem()
        if problem:
            raise AgentCredentialsError(f"codex: {problem}")

    def apply(self, workdir: Path, brief: Brief) -> RuntimeResult:
        workdir = Path(workdir).absolute()
        exp_dir = Path(brief.exp_dir or brief.path.parent)
        exp_dir.mkdir(parents=True, exist_ok=True)
        transcript_path = exp_dir / "transcript.jsonl"
        problem = self._key_problem()
        if problem:
            return RuntimeResult(False, problem, details={"runtime": NAME})
        env, codex_home, scratch = self.environment(exp_dir)
        check = WriteCheck(workdir, [scratch])
        command = self.command(workdir)
        prompt = self.prompt(brief, workdir)
        secrets = [value for value in (os.environ.get(self.env_key), os.environ.get("OPENAI_API_KEY"), os.environ.get("CODEX_API_KEY")) if value]
        state = _State(Transcript())

        out = open(transcript_path, "w", encoding="utf-8")

        def on_line(line: str) -> str | None:
            out.write(redact(line, secrets) + "\n")
            out.flush()
            event = state.transcript.feed(line)
            if event is None:
                return None
            return self._guarded(state, self._check_event, state, event, check)

        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(state, codex_home, check, command, done), daemon=True)
        watcher.start()
        try:
            confined = self.fence.confine([workdir, scratch, codex_home]) if self.fence else None
            result = proc.stream(command, cwd=workdir, on_line=on_line, timeout=self.timeout, env=env, stdin_text=prompt,
                                 fence=confined)
        finally:
            done.set()
            watcher.join(5)
            out.close()
        self._guarded(state, self._read_session, state, check, codex_home)  # the whole session file, after the exit
        self._write_log(exp_dir, command, result, secrets)
        return self._result(state, result, transcript_path, check)

    def prompt(self, brief: Brief, workdir: Path) -> str:
        return (brief.text.rstrip("\n") + "\n\n" + constraints_text(workdir)
                + "- For scratch files use $TMPDIR; writing anywhere outside the working directory rejects the experiment.\n")

    def _check_event(self, state: _State, event: dict, check: WriteCheck) -> str | None:
        if event.get("type") == "item.completed":
            verdict = self._check_item(event.get("item") or {}, check)
            if verdict:
                return self._stop(state, "outside", verdict)
        if event.get("type") == "turn.completed":
            return self._check_cap(state)
        return None

    def _guarded(self, state: _State, check, *args) -> str | None:
        """`check(*args)`; if it raises, the run stops with the error as its reason: the cost cap and
        the write check must never be switched off silently (a model's tool call can make them fail)."""
        try:
            return check(*args)
        except Exception as error:  # noqa: BLE001 — whatever broke, stopping is the safe answer
            reason = one_line(f"codex: the cost and write watcher failed ({type(error).__name__}: {error}); "
                              "the agent was stopped rather than run without its cost cap and write check", 400)
            self.notice(reason)
            return self._stop(state, "watcher", reason)

    def _stop(self, state: _State, kind: str, reason: str) -> str:
        """Record why the run must stop (the first reason wins) and return the reason to stop it with."""
        with state.lock:
            if state.stop is None:
                state.stop = (kind, reason)
            if kind == "outside" and state.outside is None:
                state.outside = reason
        return reason

    def _check_item(self, item: dict, check: WriteCheck) -> str | None:
        if item.get("type") == "file_change":
            path = check.paths([str(change.get("path")) for change in item.get("changes") or [] if isinstance(change, dict)])
            return f"edited outside the worktree: {path}" if path else None
        if item.get("type") == "command_execution":
            path = check.command(unwrap_shell(item.get("command")))
            return f"edited outside the worktree: {path}" if path else None
        return None

    def _spent(self, state: _State) -> tuple[float, Usage, bool]:
        """(USD spent, usage, price known): the larger of the stdout and the session-file counts."""
        with state.lock:
            usage = state.transcript.usage
            if state.session_usage.total > usage.total:
                usage = state.session_usage
            model = self.model or state.session_model
        price, known = self.price_for(model)
        return usage.cost(price), usage, known

    def _check_cap(self, state: _State) -> str | None:
        spent, _usage, _known = self._spent(state)
        if spent > self.max_usd:
            return self._stop(state, "cap", self.cap_reason(spent))
        return None

    # --- the session file -----------------------------------------------------------------------

    def _watch(self, state: _State, codex_home: Path, check: WriteCheck, command: list[str], done: threading.Event) -> None:
        """Follow Codex's session file while it runs; kill the run on a cap or an outside write."""
        reader = _SessionReader()
        while not done.wait(POLL_S):
            stopped = self._guarded(state, self._poll_session, state, codex_home, check, reader)
            if stopped:
                _kill(command)
                return
        state.session_file = reader.path

    def _poll_session(self, state: _State, codex_home: Path, check: WriteCheck, reader: "_SessionReader") -> str | None:
        if reader.path is None:
            thread_id = state.transcript.thread_id
            if not thread_id:
                return None
            found = sorted((codex_home / "sessions").glob(f"**/rollout-*{thread_id}.jsonl"))
            if not found:
                return None
            reader.path = found[-1]
            state.session_file = reader.path
        for record in reader.read():
            self._session_record(state, record)
            call = _tool_call(record)
            if call:
                with state.lock:
                    state.session_calls.append(call)
                verdict = self._check_call(call, check)
                if verdict:
                    return self._stop(state, "outside", verdict)
        return self._check_cap(state)

    def _session_record(self, state: _State, record: dict) -> None:
        payload = record.get("payload") if isinstance(record.get("payload"), dict) else {}
        if record.get("type") == "turn_context" and payload.get("model"):
            with state.lock:
                state.session_model = str(payload["model"])
        elif record.get("type") == "event_msg" and payload.get("type") == "token_count":
            info = payload.get("info") if isinstance(payload.get("info"), dict) else {}
            usage = Usage.of(info.get("total_token_usage"))
            with state.lock:
                if usage.total > state.session_usage.total:
                    state.session_usage = usage

    def _check_call(self, call: dict, check: WriteCheck) -> str | None:
        if call["tool"] == "apply_patch":
            path = check.paths(call["paths"], call.get("workdir"))
        else:
            path = check.command(call["command"], call.get("workdir"))
        return f"edited outside the worktree: {path}" if path else None

    def _read_session(self, state: _State, check: WriteCheck, codex_home: Path) -> None:
        """After the exit: read the whole session file once more (the watcher may have missed its end)."""
        path = state.session_file
        if path is None and state.transcript.thread_id:
            found = sorted((codex_home / "sessions").glob(f"**/rollout-*{state.transcript.thread_id}.jsonl"))
            path = state.session_file = found[-1] if found else None
        if path is None or not path.exists():
            return
        reader = _SessionReader(path)
        calls = []
        for record in reader.read():
            self._session_record(state, record)
            call = _tool_call(record)
            if call:
                calls.append(call)
                verdict = self._check_call(call, check)
                if verdict and state.outside is None:
                    state.outside = verdict
        state.session_calls = calls

    # --- the result -----------------------------------------------------------------------------

    def _result(self, state: _State, result: proc.Result, transcript_path: Path, check: WriteCheck) -> RuntimeResult:
        transcript = state.transcript
        spent, usage, known = self._spent(state)
        if not known and not any("no price known" in notice for notice in self.notices):
            self.notice(self.price_notice(self.model or state.session_model))
        details = {
            "runtime": NAME,
            "version": self.version,
            "model": self.model or state.session_model,
            "usage": usage.to_dict(),
            "cost_known": known,
            "exit_code": result.returncode,
            "seconds": round(result.seconds, 2),
            "session_file": str(state.session_file) if state.session_file else None,
            "tool_calls": state.session_calls,
            **transcript.details(),
        }
        if not known:
            details["cost_note"] = "estimated at a conservative default price: the model's price is unknown"
        common = dict(transcript=transcript_path, tokens=usage.total if (usage.total or transcript.turns) else None,
                      cost_usd=round(spent, 6), turns=transcript.turns, details=details)
        if result.blocked:
            details["blocked"] = result.blocked  # writes our fence stopped, as the commands' output shows them
        outside = state.outside or (state.stop[1] if state.stop and state.stop[0] == "outside" else None)
        if outside is None:  # belt and braces: every reported change
            found = self._guarded(state, lambda: next((f"edited outside the worktree: {change['path']}"
                                                       for change in transcript.file_changes if check.outside(change["path"])), None))
            outside = None if state.stop == ("watcher", found) else found
        if outside:
            details["rejected"] = True
            return RuntimeResult(False, outside, **common)
        if result.blocked:  # our fence stopped a write (its message is in a command's output)
            details["rejected"] = True
            return RuntimeResult(False, f"write outside the worktree blocked: {result.blocked[0]}", **common)
        if state.stop and state.stop[0] == "watcher":  # the checks broke: never kept, whatever it did
            details["watcher_failed"] = True
            return RuntimeResult(False, state.stop[1], **common)
        if state.stop and state.stop[0] == "cap":
            details["capped"] = True
            return RuntimeResult(False, self.cap_reason(spent), **common)
        if spent > self.max_usd:  # the last usage arrived with the exit
            details["capped"] = True
            return RuntimeResult(False, self.cap_reason(spent), **common)
        if result.timed_out:
            return RuntimeResult(False, f"agent timed out after {self.timeout:.0f}s", **common)
        if result.stopped:
            return RuntimeResult(False, "stopped", **common)
        message = transcript.failure or (transcript.errors[-1] if transcript.errors and result.returncode else None)
        if message and _is_auth_failure(message):
            key = self.env_key if self.custom else "OPENAI_API_KEY"
            return RuntimeResult(False, f"authentication failed (401): check {key} — {one_line(_redact_keys(message), 300)}", **common)
        if transcript.failure:
            return RuntimeResult(False, f"agent failed: {one_line(_redact_keys(transcript.failure), 300)}", **common)
        if result.returncode != 0:
            last = message or last_line("\n".join(line for line in result.output.splitlines() if not line.startswith("{")))
            if last and _is_auth_failure(last):
                return RuntimeResult(False, f"authentication failed (401): {one_line(_redact_keys(last), 300)}", **common)
            return RuntimeResult(False, f"agent exited {result.returncode}" + (f": {one_line(_redact_keys(last), 300)}" if last else ""), **common)
        return RuntimeResult(True, **common)

    def _write_log(self, exp_dir: Path, command: list[str], result: proc.Result, secrets: list[str]) -> None:
        """runtime.log: the command line, the exit and Codex's stderr (its stdout is transcript.jsonl)."""
        lines = [line for line in result.output.splitlines() if not line.startswith("{")]
        with open(exp_dir / "runtime.log", "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(shlex.quote(part) for part in command) + "\n")
            log.writelines(redact(line, secrets) + "\n" for line in lines if line.strip())
            state = "timed out" if result.timed_out else ("stopped" if result.stopped else f"exit {result.returncode}")
            log.write(f"[{state}, {result.seconds:.2f}s]\n")


class _SessionReader:
    """Reads the complete new lines of a growing JSONL file."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self):
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
                self.offset = handle.tell()
        except OSError:
            return
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        for raw in lines:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def _tool_call(record: dict) -> dict | None:
    """A shell or patch tool call the model made, from a session-file `response_item`."""
    if record.get("type") != "response_item" or not isinstance(record.get("payload"), dict):
        return None
    payload = record["payload"]
    kind, name = payload.get("type"), payload.get("name")
    if kind == "custom_tool_call" and name == "apply_patch":
        return {"tool": "apply_patch", "paths": patch_paths(str(payload.get("input") or ""))}
    if kind != "function_call":
        return None
    try:
        arguments = json.loads(payload.get("arguments") or "{}")
    except ValueError:
        arguments = {}
    if not isinstance(arguments, dict):
        arguments = {}
    workdir = arguments.get("workdir") if isinstance(arguments.get("workdir"), str) else None
    if name == "apply_patch":
        return {"tool": "apply_patch", "paths": patch_paths(str(arguments.get("input") or arguments.get("patch") or "")), "workdir": workdir}
    if name in ("exec_command", "shell", "local_shell", "shell_command"):
        raw = arguments.get("cmd", arguments.get("command"))
        script = unwrap_shell(raw) if isinstance(raw, list) else str(raw or "")
        return {"tool": name, "command": script, "workdir": workdir}
    return None


def _kill(command: list[str]) -> None:
    """Kill the process group `proc.stream` started for `command` (identified by its argv object)."""
    with proc._live_lock:
        running = [popen for popen in proc._live.values() if popen.args is command]
    for popen in running:
        proc.kill_tree(popen)


def _toml(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _toml_key(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else f'"{_toml(text)}"'


def _is_auth_failure(message: str) -> bool:
    return bool(re.search(r"\b401\b|unauthori[sz]ed", message, re.IGNORECASE))


def _redact_keys(text: str) -> str:
    return re.sub(r"\bsk-[A-Za-z0-9_*.\-]{3,}", "sk-…", text)


doctor_info = CodexRuntime.doctor_info  # what `research-agent doctor` shows for Codex
