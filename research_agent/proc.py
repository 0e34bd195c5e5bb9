"""Run shell commands in their own process group, and kill the whole tree on timeout or exit.

Every command the tool runs (builds, checks, benchmarks, coding agents) goes through `run`,
so an interrupt or a timeout can never leave an orphan behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import usage as accounting
# Live process groups, so an interrupt can kill every running command at once.
_live: dict[int, subprocess.Popen] = {}
_live_lock = threading.Lock()
_stopping = threading.Event()

KILL_GRACE_S = 2.0


@dataclass
class Result:
    returncode: int | None  # None when killed by timeout or stop
    output: str  # stdout and stderr, interleaved
    seconds: float
    timed_out: bool = False
    stopped: bool = False
    usage: accounting.Usage | None = None  # the tree's peak RSS and CPU time, when asked for
    blocked: list[str] = field(default_factory=list)  # writes the fence denied, as the output shows them

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.stopped

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


def run(
    command: str | list[str],
    cwd: str | Path,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    stdin_text: str | None = None,
    usage: bool = False,
    fence=None,
) -> Result:
    """Run `command` (a shell string, or an argv list) and capture its combined output.

    With `usage`, the command runs under research_agent/usage.py's launcher and Result.usage holds
    its process tree's peak RSS and CPU time, from the OS's accounting of that tree alone.
    With `fence` (a research_agent.fence.Confinement) the command runs confined to its writable roots
    with a private TMPDIR, and Result.blocked lists the writes outside them its output shows.
    """
    if _stopping.is_set():
        return Result(None, "not started: stopping", 0.0, stopped=True)
    if fence is not None:
        fence.prepare()
        try:
            result = _run(command, cwd, timeout, {**(env or {}), **fence.env}, log_path, stdin_text, usage, fence)
            result.blocked = fence.blocked(result.output, cwd)
            return result
        finally:
            fence.cleanup()
    return _run(command, cwd, timeout, env, log_path, stdin_text, usage, None)


def _run(command, cwd, timeout, env, log_path, stdin_text, usage, fence) -> Result:
    started = time.monotonic()
    argv, report = command, None
    if usage:
        report, write_end = os.pipe()
        argv = accounting.launcher_argv(write_end, ["/bin/sh", "-c", command] if isinstance(command, str) else list(command))
    if fence is not None:  # outermost, so the usage launcher measures the command's tree alone
        argv = fence.wrap(["/bin/sh", "-c", argv] if isinstance(argv, str) else argv)
    try:
        proc = subprocess.Popen(
            argv,
            shell=isinstance(argv, str),
            cwd=str(cwd),
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: killable as a whole
            text=True,
            errors="replace",
            pass_fds=(write_end,) if usage else (),
        )
    except BaseException:
        if usage:
            os.close(report)
        raise
    finally:
        if usage:
            os.close(write_end)  # the launcher holds the only write end now
    with _live_lock:
        _live[proc.pid] = proc
    timed_out = False
    try:
        output, _ = proc.communicate(stdin_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc)
        output, _ = proc.communicate()
    finally:
        with _live_lock:
            _live.pop(proc.pid, None)
    seconds = time.monotonic() - started
    stopped = _stopping.is_set() and proc.returncode != 0
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log:
            shown = command if isinstance(command, str) else " ".join(command)
            log.write(f"$ {shown}\n{output}")
            if timed_out:
                log.write(f"[killed after {timeout:.0f}s timeout]\n")
            log.write(f"[exit {proc.returncode}, {seconds:.2f}s]\n")
    code = None if (timed_out or stopped) else proc.returncode
    measured = accounting.read_report(report) if usage else None
    return Result(code, output or "", seconds, timed_out=timed_out, stopped=stopped, usage=measured)


@dataclass
class Captured:
    returncode: int | None  # None when killed by the timeout
    stdout: bytes
    stderr: bytes
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def capture(argv: list[str], cwd: str | Path | None = None, env: dict[str, str] | None = None, timeout: float | None = None,
            input: bytes | None = None) -> Captured:
    """Run `argv` (no shell) with stdout and stderr apart, as bytes, for callers that parse them (git, probes).

    Like `run`: its own process group, registered so `stop_all` kills it, killed whole on timeout.
    Unlike `run` it still starts while stopping: cleanup after an interrupt uses it. `env` is the
    whole environment (None: inherited)."""
    proc = subprocess.Popen(argv, cwd=str(cwd) if cwd else None, env=env, start_new_session=True,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with _live_lock:
        _live[proc.pid] = proc
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        out, err = proc.communicate()
        return Captured(None, out, err, timed_out=True)
    finally:
        with _live_lock:
            _live.pop(proc.pid, None)
    return Captured(proc.returncode, out, err)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGTERM the process group and any descendants that left it, then SIGKILL what remains."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    _signal_group(proc.pid, signal.SIGTERM)
    for child in descendants:
        _signal_pid(child.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    for child in descendants:
        _signal_pid(child.pid, signal.SIGKILL)


def stop_all() -> None:
    """Stop launching and kill every running command (used on SIGINT / SIGTERM)."""
    _stopping.set()
    with _live_lock:
        running = list(_live.values())
    for proc in running:
        kill_tree(proc)


def stopping() -> bool:
    return _stopping.is_set()


def reset() -> None:
    """Allow commands again (tests and long-lived processes that handle several runs)."""
    _stopping.clear()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stream(
    command: list[str],
    cwd: str | Path,
    on_line,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    stdin_text: str | None = None,
    replace_env: bool = False,
    fence=None,
) -> Result:
    """Run `command` and hand each stdout line to `on_line(line) -> str | None` as it arrives.

    `on_line` returning a string stops the command (its whole process group) — that string becomes
    `Result.output`'s last line and `stopped` is set (used for budget caps: a running cost over the
    limit). stderr is collected separately and appended to the output at the end.
    """
    if _stopping.is_set():
        return Result(None, "not started: stopping", 0.0, stopped=True)
    if fence is not None:  # confined, with a private TMPDIR unless the caller set one
        fence.prepare()
        env = {**fence.env, **(env or {})}
        try:
            result = _stream(fence.wrap(command), cwd, on_line, timeout, env, stdin_text, replace_env)
            result.blocked = fence.blocked(result.output, cwd)
            return result
        finally:
            fence.cleanup()
    return _stream(command, cwd, on_line, timeout, env, stdin_text, replace_env)


def _stream(command, cwd, on_line, timeout, env, stdin_text, replace_env) -> Result:
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=str(cwd),
        env=dict(env or {}) if replace_env else {**os.environ, **(env or {})},
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
        errors="replace",
        bufsize=1,
    )
    with _live_lock:
        _live[proc.pid] = proc
    stderr_chunks: list[str] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    if stdin_text is not None:
        try:
            proc.stdin.write(stdin_text)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    verdict: dict = {"timed_out": False, "stop": None}

    def watchdog() -> None:
        if timeout is not None and proc.poll() is None:
            verdict["timed_out"] = True
            kill_tree(proc)

    timer = threading.Timer(timeout, watchdog) if timeout is not None else None
    if timer:
        timer.daemon = True
        timer.start()
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if verdict["stop"] is None:
                reason = on_line(line.rstrip("\n"))
                if reason:
                    verdict["stop"] = reason
                    kill_tree(proc)
        proc.wait()
    finally:
        if timer:
            timer.cancel()
        with _live_lock:
            _live.pop(proc.pid, None)
    reader.join(5)
    output = "".join(lines) + "".join(stderr_chunks)
    if verdict["stop"]:
        output += f"\n{verdict['stop']}\n"
    stopped = bool(verdict["stop"]) or (_stopping.is_set() and proc.returncode != 0)
    code = None if (verdict["timed_out"] or stopped) else proc.returncode
    return Result(code, output, time.monotonic() - started, timed_out=verdict["timed_out"], stopped=stopped)
