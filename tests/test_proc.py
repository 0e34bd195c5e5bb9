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


# --- resource accounting of the finished tree -----------------------------------------------------

ALLOC = "import sys; b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b'x' * len(b[::4096])"
# Burns CPU, then appends its own CPU seconds (as the process itself counts them) to burned.txt.
BURN = ("import os, sys\nn = 0\nfor i in range(int(sys.argv[1])): n += i\n"
        "t = os.times()\nopen('burned.txt', 'a').write(f'{t.user + t.system}\\n')\n")


def _script(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_usage_counts_a_grandchilds_memory_and_every_processs_cpu(tmp_path):
    _script(tmp_path, "alloc.py", ALLOC)
    _script(tmp_path, "burn.py", BURN)
    # The big process is a grandchild (a shell in a shell); two CPU burners run one after another.
    tree = proc.run("sh -c 'python3 -S alloc.py 200; true'; python3 -S burn.py 3000000; python3 -S burn.py 3000000",
                    cwd=tmp_path, usage=True)
    assert tree.ok and tree.usage is not None
    assert 200 <= tree.usage.rss_mb < 400
    burned = sum(float(line) for line in (tmp_path / "burned.txt").read_text().split())
    assert burned > 0.1
    assert 0.99 * burned <= tree.usage.cpu_s < burned + 2.0  # both burners counted (CPU time, however loaded)
    assert proc.run("true", cwd=tmp_path).usage is None  # only when asked for


def test_usage_of_concurrent_commands_is_not_mixed(tmp_path):
    import threading

    _script(tmp_path, "alloc.py", ALLOC)
    results = {}
    gate = threading.Barrier(2)

    def run(name, command):
        gate.wait()
        results[name] = proc.run(command, cwd=tmp_path, usage=True)

    threads = [threading.Thread(target=run, args=("big", "python3 -S alloc.py 300")),
               threading.Thread(target=run, args=("small", "python3 -S alloc.py 1"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results["big"].usage.rss_mb >= 300
    assert results["small"].usage.rss_mb < 100


def test_usage_counts_an_orphan_that_exited_inside_the_tree(tmp_path):
    _script(tmp_path, "alloc.py", ALLOC)
    # The subshell exits at once, orphaning its child; the command waits until that orphan is a
    # zombie (exited, not yet reaped): the launcher, its subreaper, then reaps and counts it.
    command = ("(python3 -S alloc.py 250 & echo $! > orphan.pid); pid=$(cat orphan.pid); "
               "while [ -e /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status; do sleep 0.01; done")
    result = proc.run(command, cwd=tmp_path, usage=True)
    assert result.ok and result.usage.rss_mb >= 250


def test_usage_keeps_exit_codes_and_signals_as_they_were(tmp_path):
    for command in ("exit 3", "kill -TERM $$", "echo out; echo err >&2"):
        plain, measured = proc.run(command, cwd=tmp_path), proc.run(command, cwd=tmp_path, usage=True)
        assert (plain.returncode, plain.output) == (measured.returncode, measured.output)
    missing = proc.run(["no-such-program-here"], cwd=tmp_path, usage=True)
    assert missing.returncode == 127 and "no-such-program-here" in missing.output


def test_usage_after_a_timeout_is_none_and_the_tree_is_killed(tmp_path):
    result = proc.run("sleep 60 & echo $! > child.pid; wait", cwd=tmp_path, timeout=1.0, usage=True)
    assert result.timed_out and result.usage is None
    try:
        child = psutil.Process(int((tmp_path / "child.pid").read_text()))
    except psutil.NoSuchProcess:
        return
    _, alive = psutil.wait_procs([child], timeout=30)  # killed: it goes within the grace period
    assert not alive
