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
  or a mapping of model id to such prices; merged over `PRICES` below.
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
from ..errors import AgentCredentialsError, UserError
from .agent_common import binary_version, redact, constraints_text, find_binary, outside_worktree, shell_write_targets, version_notice
from .base import Brief, Runtime, RuntimeResult

NAME = "codex"
INSTALL = "npm install -g @openai/codex"
TESTED = ("0.169.0", "0.171.0")  # 0.171.0 driven in the tests; 0.169.0 recorded in tests/fixtures/codex
DEFAULT_MAX_USD = 2.0
DEFAULT_PROVIDER = "research-agent"
DEFAULT_ENV_KEY = "OPENAI_API_KEY"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MAX_RETRIES = 2
POLL_S = 0.2  # how often the session file is read while Codex runs


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. `cached_input` applies to the cached part of the input tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, usage: "Usage") -> float:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        fresh = usage.input_tokens - cached
        return (fresh * self.input + cached * self.cached_input + usage.output_tokens * self.output) / 1_000_000


# OpenAI list prices (USD per 1M tokens: input, cached input, output) as published when this table was
# written; override or extend them with the `prices` option. A model not listed is priced at
# UNKNOWN_PRICE — deliberately high, so the cap trips early rather than late — and its cost is
# reported as an estimate (details["cost_known"] = False, plus a notice).
PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 0.125, 10.0),
    "gpt-5-codex": Price(1.25, 0.125, 10.0),
    "gpt-5.1": Price(1.25, 0.125, 10.0),
    "gpt-5.1-codex": Price(1.25, 0.125, 10.0),
    "gpt-5.1-codex-max": Price(1.25, 0.125, 10.0),
    "gpt-5-mini": Price(0.25, 0.025, 2.0),
    "gpt-5.1-codex-mini": Price(0.25, 0.025, 2.0),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-4.1": Price(2.0, 0.50, 8.0),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "o3": Price(2.0, 0.50, 8.0),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "codex-mini-latest": Price(1.50, 0.375, 6.0),
}
UNKNOWN_PRICE = Price(10.0, 2.5, 40.0)


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
_DEVICES = re.compile(r"^/dev/(null|zero|stdout|stderr|stdin|tty|fd/\d+)$")
_PATCH_PATHS = re.compile(r"^\*\*\* (?:Add File|Update File|Delete File|Move to): (.+?)\s*$", re.MULTILINE)
_WRAPPERS = {"sudo", "env", "command", "nohup", "time", "nice", "timeout", "exec"}
_ALL_ARGS = {"tee", "touch", "rm", "rmdir", "mkdir", "truncate", "chmod", "chown", "mv", "shred", "unlink"}
_LAST_ARG = {"cp", "ln", "install", "rsync"}


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


def write_targets(script: str) -> list[str]:
    """Paths a shell script writes to, as far as a static look can tell (not a sandbox: the sandbox is).

    Tokenized like a shell, so quoted text (`grep "=> /lib"`) is not mistaken for a redirection.
    Covers redirections (`>`, `>>`, `&>`, `>|`), `tee`, `touch`/`rm`/`mkdir`/`mv`/… arguments, the
    destination of `cp`/`ln`/`install`/`rsync`, `dd of=` and `sed -i`. Relative paths are kept
    (`../x` escapes the worktree); after `cd DIR` they are joined to DIR.
    """
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: fall back to the shared, regex-based look
        return shell_write_targets(script)
    targets: list[str] = []
    segment: list[str] = []
    cwd: str | None = None
    index = 0

    def flush() -> None:
        nonlocal cwd
        words = list(segment)
        segment.clear()
        while words and (words[0] in _WRAPPERS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
            words = words[1:]
        if not words:
            return
        name, args = os.path.basename(words[0]), [word for word in words[1:] if not word.startswith("-")]
        found: list[str] = []
        if name == "cd":
            cwd = os.path.join(cwd or "", args[0]) if args else None
        elif name in _LAST_ARG and len(args) >= 2:
            found = [args[-1]]
        elif name in _ALL_ARGS:
            found = args
        elif name == "dd":
            found = [word[3:] for word in words[1:] if word.startswith("of=")]
        elif name in ("sed", "perl") and any(word.startswith("-i") or word == "--in-place" for word in words[1:]):
            found = args[1:]
        targets.extend(_join(cwd, target) for target in found)

    while index < len(tokens):
        token = tokens[index]
        if token and all(char in "();<>|&" for char in token):
            if ">" in token:  # a redirection: the next word is the target, unless it duplicates a descriptor
                target = tokens[index + 1] if index + 1 < len(tokens) else ""
                index += 2
                if target and not re.fullmatch(r"\d+|-", target) and not all(char in "();<>|&" for char in target):
                    targets.append(_join(cwd, target))
                if segment and re.fullmatch(r"\d+", segment[-1]):
                    segment.pop()  # the `2` of `2>`
                continue
            if "<" not in token:
                flush()
            else:
                index += 1  # `< file` / `<< EOF`: the next word is read, not written
        else:
            segment.append(token)
        index += 1
    flush()
    return list(dict.fromkeys(target for target in targets if target))


def _join(cwd: str | None, path: str) -> str:
    if cwd is None or path.startswith(("/", "~", "$")):
        return path
    return os.path.join(cwd, path)


def patch_paths(patch: str) -> list[str]:
    """The files an `apply_patch` body adds, updates, deletes or moves to."""
    return [match.group(1) for match in _PATCH_PATHS.finditer(patch or "")]


class Fence:
    """Decides whether a path (or a command's write targets) leaves the worktree."""

    def __init__(self, workdir: Path, allowed: list[Path]):
        self.workdir = Path(workdir)
        self.allowed = [Path(os.path.realpath(path)) for path in allowed]
        self.variables = {"HOME": os.path.expanduser("~"), "TMPDIR": str(allowed[0]) if allowed else "/tmp"}

    def absolute(self, path: str, cwd: str | None = None) -> str:
        """`path` made absolute: `~`, $HOME and $TMPDIR expanded, relative ones joined to `cwd` or the worktree."""
        candidate = os.path.expanduser(self._expand(path))
        if not os.path.isabs(candidate):
            base = os.path.expanduser(cwd) if cwd else str(self.workdir)
            candidate = os.path.join(str(self.workdir), base, candidate)
        return os.path.normpath(candidate)

    def outside(self, path: str, cwd: str | None = None) -> bool:
        if not path or _DEVICES.match(path):
            return False
        resolved = Path(os.path.realpath(self.absolute(path, cwd)))
        if any(resolved == root or root in resolved.parents for root in self.allowed):
            return False
        return outside_worktree(str(resolved), self.workdir)

    def _expand(self, path: str) -> str:
        for name, value in self.variables.items():
            path = re.sub(r"^\$(?:\{%s\}|%s\b)" % (name, name), lambda _m, v=value: v, path)
        return path

    def command(self, script: str, cwd: str | None = None) -> str | None:
        """The first path outside the worktree a shell script writes to (a static look), else None."""
        return self.paths(write_targets(script), cwd)

    def paths(self, paths: list[str], cwd: str | None = None) -> str | None:
        """The first of `paths` outside the worktree (absolute, as it was meant), else None."""
        return next((self.absolute(path, cwd) for path in paths if self.outside(path, cwd)), None)


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
    stop: tuple[str, str] | None = None  # (kind, reason): kind is "cap" or "outside"
    outside: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class CodexRuntime(Runtime):
    name = NAME

    def __init__(self, options: dict | None = None, timeout: float = 1800, fence=None):
        self.options = dict(options or {})
        self.timeout = float(timeout)
        self.fence = fence  # research_agent.fence.Fence, or None (sandbox: off)
        self.user_config = bool(self.options.get("user_config", False))
        self.notices: list[str] = []
        self.binary = find_binary(self.options.get("binary"), "codex", INSTALL)
        self.version = binary_version(self.binary)
        notice = version_notice("codex", self.version, TESTED)
        if notice:
            self.notices.append(notice)
        self.model: str | None = self.options.get("model") or None
        try:
            self.max_usd = float(self.options.get("max_usd", DEFAULT_MAX_USD))
        except (TypeError, ValueError):
            raise UserError(f"runtime max_usd must be a number, not {self.options.get('max_usd')!r}") from None
        self.prices = dict(PRICES)
        self.price_override = _parse_prices(self.options.get("prices"), self.prices)
        self.custom = any(self.options.get(key) for key in ("base_url", "provider", "env_key"))
        self.provider = str(self.options.get("provider") or DEFAULT_PROVIDER)
        self.env_key = str(self.options.get("env_key") or DEFAULT_ENV_KEY)
        self.base_url = str(self.options.get("base_url") or DEFAULT_BASE_URL)
        self.unsafe = bool(self.options.get("unsafe", False))
        if self.unsafe:
            self.notices.append("warning: codex runs without its sandbox (unsafe: true): use only on an externally sandboxed host")
        extra = self.options.get("extra_args") or []
        self.extra_args = shlex.split(extra) if isinstance(extra, str) else [str(arg) for arg in extra]
        try:
            self.max_retries = int(self.options.get("max_retries", DEFAULT_MAX_RETRIES))
        except (TypeError, ValueError):
            raise UserError(f"runtime max_retries must be an integer, not {self.options.get('max_retries')!r}") from None
        if self.model and self.price_for(self.model)[1] is False:
            self.notices.append(self._unknown_price_notice(self.model))

    # --- prices -------------------------------------------------------------------------------

    def price_for(self, model: str | None) -> tuple[Price, bool]:
        """(price, known) for `model`: the `prices` option, the table, or the conservative default."""
        if self.price_override is not None:
            return self.price_override, True
        if model and model in self.prices:
            return self.prices[model], True
        return UNKNOWN_PRICE, False

    def _unknown_price_notice(self, model: str | None) -> str:
        what = f"model '{model}'" if model else "Codex's default model"
        p = UNKNOWN_PRICE
        return (f"codex: no price known for {what}: its cost is an estimate at ${p.input:g}/${p.cached_input:g}/${p.output:g} "
                "per 1M input/cached/output tokens, and the cap is enforced on that (set runtime prices to fix)")

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
        fence = Fence(workdir, [scratch])
        command = self.command(workdir)
        prompt = self.prompt(brief, workdir)
        secrets = [value for value in (os.environ.get(self.env_key), os.environ.get("OPENAI_API_KEY"), os.environ.get("CODEX_API_KEY")) if value]
        state = _State(Transcript())

        out = open(transcript_path, "w", encoding="utf-8")

        def on_line(line: str) -> str | None:
            out.write(_redact(line, secrets) + "\n")
            out.flush()
            event = state.transcript.feed(line)
            if event is None:
                return None
            if event.get("type") == "item.completed":
                verdict = self._check_item(event.get("item") or {}, fence)
                if verdict:
                    return self._stop(state, "outside", verdict)
            if event.get("type") == "turn.completed":
                return self._check_cap(state)
            return None

        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(state, codex_home, fence, command, done), daemon=True)
        watcher.start()
        try:
            confined = self.fence.confine([workdir, scratch, codex_home]) if self.fence else None
            result = proc.stream(command, cwd=workdir, on_line=on_line, timeout=self.timeout, env=env, stdin_text=prompt,
                                 fence=confined)
        finally:
            done.set()
            watcher.join(5)
            out.close()
        self._read_session(state, fence, codex_home)  # the whole session file, after the exit
        self._write_log(exp_dir, command, result, secrets)
        return self._result(state, result, transcript_path, fence)

    def prompt(self, brief: Brief, workdir: Path) -> str:
        return (brief.text.rstrip("\n") + "\n\n" + constraints_text(workdir)
                + "- For scratch files use $TMPDIR; writing anywhere outside the working directory rejects the experiment.\n")

    def _stop(self, state: _State, kind: str, reason: str) -> str:
        """Record why the run must stop (the first reason wins) and return the reason to stop it with."""
        with state.lock:
            if state.stop is None:
                state.stop = (kind, reason)
            if kind == "outside" and state.outside is None:
                state.outside = reason
        return reason

    def _check_item(self, item: dict, fence: Fence) -> str | None:
        if item.get("type") == "file_change":
            path = fence.paths([str(change.get("path")) for change in item.get("changes") or [] if isinstance(change, dict)])
            return f"edited outside the worktree: {path}" if path else None
        if item.get("type") == "command_execution":
            path = fence.command(unwrap_shell(item.get("command")))
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
        return price.cost(usage), usage, known

    def _check_cap(self, state: _State) -> str | None:
        spent, _usage, _known = self._spent(state)
        if spent > self.max_usd:
            return self._stop(state, "cap", f"agent exceeded the ${self.max_usd:.2f} cap (${spent:.2f} spent)")
        return None

    # --- the session file -----------------------------------------------------------------------

    def _watch(self, state: _State, codex_home: Path, fence: Fence, command: list[str], done: threading.Event) -> None:
        """Follow Codex's session file while it runs; kill the run on a cap or an outside write."""
        reader = _SessionReader()
        while not done.wait(POLL_S):
            try:
                stopped = self._poll_session(state, codex_home, fence, reader)
            except Exception:  # never let the watcher take the run down
                stopped = None
            if stopped:
                _kill(command)
                return
        state.session_file = reader.path

    def _poll_session(self, state: _State, codex_home: Path, fence: Fence, reader: "_SessionReader") -> str | None:
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
                verdict = self._check_call(call, fence)
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

    def _check_call(self, call: dict, fence: Fence) -> str | None:
        if call["tool"] == "apply_patch":
            path = fence.paths(call["paths"], call.get("workdir"))
        else:
            path = fence.command(call["command"], call.get("workdir"))
        return f"edited outside the worktree: {path}" if path else None

    def _read_session(self, state: _State, fence: Fence, codex_home: Path) -> None:
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
                verdict = self._check_call(call, fence)
                if verdict and state.outside is None:
                    state.outside = verdict
        state.session_calls = calls

    # --- the result -----------------------------------------------------------------------------

    def _result(self, state: _State, result: proc.Result, transcript_path: Path, fence: Fence) -> RuntimeResult:
        transcript = state.transcript
        spent, usage, known = self._spent(state)
        if not known and not any("no price known" in notice for notice in self.notices):
            self.notices.append(self._unknown_price_notice(self.model or state.session_model))
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
        if outside is None:
            for change in transcript.file_changes:  # belt and braces: every reported change
                if fence.outside(change["path"]):
                    outside = f"edited outside the worktree: {change['path']}"
                    break
        if outside:
            details["rejected"] = True
            return RuntimeResult(False, outside, **common)
        if result.blocked:  # our fence stopped a write (its message is in a command's output)
            details["rejected"] = True
            return RuntimeResult(False, f"write outside the worktree blocked: {result.blocked[0]}", **common)
        if state.stop and state.stop[0] == "cap":
            details["capped"] = True
            return RuntimeResult(False, f"agent exceeded the ${self.max_usd:.2f} cap (${spent:.2f} spent)", **common)
        if spent > self.max_usd:  # the last usage arrived with the exit
            details["capped"] = True
            return RuntimeResult(False, f"agent exceeded the ${self.max_usd:.2f} cap (${spent:.2f} spent)", **common)
        if result.timed_out:
            return RuntimeResult(False, f"agent timed out after {self.timeout:.0f}s", **common)
        if result.stopped:
            return RuntimeResult(False, "stopped", **common)
        message = transcript.failure or (transcript.errors[-1] if transcript.errors and result.returncode else None)
        if message and _is_auth_failure(message):
            key = self.env_key if self.custom else "OPENAI_API_KEY"
            return RuntimeResult(False, f"authentication failed (401): check {key} — {_one_line(_redact_keys(message))}", **common)
        if transcript.failure:
            return RuntimeResult(False, f"agent failed: {_one_line(_redact_keys(transcript.failure))}", **common)
        if result.returncode != 0:
            last = message or _last_line(result.output)
            if last and _is_auth_failure(last):
                return RuntimeResult(False, f"authentication failed (401): {_one_line(_redact_keys(last))}", **common)
            return RuntimeResult(False, f"agent exited {result.returncode}" + (f": {_one_line(_redact_keys(last))}" if last else ""), **common)
        return RuntimeResult(True, **common)

    def _write_log(self, exp_dir: Path, command: list[str], result: proc.Result, secrets: list[str]) -> None:
        """runtime.log: the command line, the exit and Codex's stderr (its stdout is transcript.jsonl)."""
        lines = [line for line in result.output.splitlines() if not line.startswith("{")]
        with open(exp_dir / "runtime.log", "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(shlex.quote(part) for part in command) + "\n")
            log.writelines(_redact(line, secrets) + "\n" for line in lines if line.strip())
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


def _parse_prices(value, table: dict[str, Price]) -> Price | None:
    """`prices` option: one price for the run's model (returned), or per-model prices (merged into `table`)."""
    if value is None:
        return None
    single = _price(value)
    if single is not None:
        return single
    if isinstance(value, dict):
        for model, spec in value.items():
            price = _price(spec)
            if price is None:
                raise UserError(f"runtime prices for {model}: give input, cached_input and output (USD per 1M tokens)")
            table[str(model)] = price
        return None
    raise UserError("runtime prices: give {input, cached_input, output} in USD per 1M tokens, or a mapping of model to those")


def _price(spec) -> Price | None:
    try:
        if isinstance(spec, (list, tuple)) and len(spec) == 3:
            return Price(float(spec[0]), float(spec[1]), float(spec[2]))
        if isinstance(spec, dict) and "input" in spec and "output" in spec:
            return Price(float(spec["input"]), float(spec.get("cached_input", spec["input"])), float(spec["output"]))
    except (TypeError, ValueError):
        raise UserError(f"runtime prices: not numbers: {spec!r}") from None
    return None


def _toml(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _toml_key(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else f'"{_toml(text)}"'


def _is_auth_failure(message: str) -> bool:
    return bool(re.search(r"\b401\b|unauthori[sz]ed", message, re.IGNORECASE))


_redact = redact  # one redaction for every agent CLI (agent_common)


def _redact_keys(text: str) -> str:
    return re.sub(r"\bsk-[A-Za-z0-9_*.\-]{3,}", "sk-…", text)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip() and not line.startswith("{")]
    return lines[-1].strip() if lines else ""


def doctor_info() -> dict:
    """What `research-agent doctor` shows for Codex: never the key itself, only whether it is set."""
    info = {"runtime": NAME, "binary": None, "version": None, "key_present": bool(os.environ.get("OPENAI_API_KEY")),
            "usable": False, "note": ""}
    try:
        binary = find_binary(None, "codex", INSTALL)
    except UserError:
        info["note"] = f"not installed: {INSTALL}"
        return info
    info["binary"] = str(binary)
    info["version"] = binary_version(binary)
    notes = []
    notice = version_notice("codex", info["version"], TESTED)
    if notice:
        notes.append(notice)
    if not info["key_present"] and not os.environ.get("CODEX_API_KEY"):
        notes.append("set OPENAI_API_KEY (or a custom provider's env_key) to run it")
    info["usable"] = info["version"] is not None
    info["note"] = "; ".join(notes) or f"tested with {TESTED[0]}–{TESTED[1]}"
    return info
