"""Process groups: a timeout kills the command and everything it spawned."""

import os
import time

import psutil

from research_agent import proc


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_timeout_kills_the_whole_tree(tmp_path):
    # A shell that starts a grandchild which ignores SIGTERM and another that leaves the group.
    script = tmp_path / "spawn.sh"
    script.write_text(
        "#!/bin/sh\n"
        "sh -c 'trap \"\" TERM; sleep 60' &\n"
        "echo $! > child.pid\n"
        "setsid sleep 60 &\n"
        "echo $! > escaped.pid\n"
        "sleep 60\n"
    )
    script.chmod(0o755)
    started = time.monotonic()
    result = proc.run(str(script), cwd=tmp_path, timeout=1.0)
    assert result.timed_out and result.returncode is None and not result.ok
    assert time.monotonic() - started < 10
    time.sleep(0.3)
    for name in ("child.pid", "escaped.pid"):
        pid = int((tmp_path / name).read_text())
        assert not _alive(pid), f"{name} survived the timeout"


def test_output_and_exit_code(tmp_path):
    result = proc.run("echo out; echo err >&2; exit 3", cwd=tmp_path)
    assert result.returncode == 3 and not result.ok
    assert "out" in result.output and "err" in result.output


def test_log_file_records_command_and_exit(tmp_path):
    log = tmp_path / "logs" / "x.log"
    proc.run(["echo", "hello"], cwd=tmp_path, log_path=log)
    text = log.read_text()
    assert "$ echo hello" in text and "hello" in text and "[exit 0" in text


def test_stop_all_kills_running_commands(tmp_path):
    import threading

    results = []
    thread = threading.Thread(target=lambda: results.append(proc.run("sleep 30", cwd=tmp_path)))
    thread.start()
    time.sleep(0.5)
    proc.stop_all()
    thread.join(10)
    try:
        assert results and results[0].stopped and not results[0].ok
        assert proc.run("echo no", cwd=tmp_path).stopped  # nothing new starts while stopping
    finally:
        proc.reset()
    assert proc.run("echo yes", cwd=tmp_path).ok
