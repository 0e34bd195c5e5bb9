"""Peak memory and CPU time of one command's whole process tree, from the OS's own accounting.

The tool runs many commands at once from several threads, so its own RUSAGE_CHILDREN mixes them
all. Instead each measured command runs under this file as a tiny launcher:

    python -S -I usage.py FD ARGV...

The launcher's only child is ARGV. When it exits, the kernel has folded into the launcher's
RUSAGE_CHILDREN everything that child's tree was waited for with: CPU time summed over every
process (a shell's children, their children, ...), and ru_maxrss the largest peak resident set
of any one of them. The launcher is also the tree's child subreaper, so processes orphaned inside
the tree (`(cmd &)`) come back to it and are counted once they have exited. It writes the result
to FD (a pipe only it holds: the command never sees it), then exits with the child's status
(re-raising a signal that killed it), so the caller sees what running ARGV directly gives.

What this cannot see: the sum of several processes' memory at one instant (rusage has no such
figure; rss_mb is the largest single process, as GNU time reports), and descendants still running
when the command ends. And a floor: the kernel counts a child's resident pages from before its
exec, a copy of the launcher's private memory, so rss_mb is never below that (about 6 MiB). Hence a plain fork, not vfork/posix_spawn (which would count the launcher's
whole resident set), and only small built-in modules imported here.
"""

import os
import resource
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


class Usage:
    __slots__ = ("rss_mb", "cpu_s")

    def __init__(self, rss_mb: float, cpu_s: float):
        self.rss_mb = rss_mb  # peak resident set of the largest process in the tree, MiB
        self.cpu_s = cpu_s    # user + system CPU seconds of the whole tree

    def metrics(self) -> dict:
        return {"rss_mb": round(self.rss_mb, 3), "cpu_s": round(self.cpu_s, 4)}

    def __repr__(self) -> str:
        return f"Usage(rss_mb={self.rss_mb:.3f}, cpu_s={self.cpu_s:.4f})"


def launcher_argv(fd: int, argv: list) -> list:
    """The argv that runs `argv` under the launcher, reporting to file descriptor `fd`."""
    return [sys.executable, "-S", "-I", os.path.abspath(__file__), str(fd), *argv]


def read_report(fd: int):
    """The launcher's report from the read end of its pipe (closed here): a Usage, or None if it
    wrote none (killed first: a timeout or an interrupt)."""
    os.set_blocking(fd, False)  # the launcher has exited: whatever it wrote is there now
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    try:
        rss_kib, cpu_s = (float(x) for x in b"".join(chunks).split())
    except ValueError:
        return None
    return Usage(rss_kib / 1024, cpu_s)


# --- the launcher ---------------------------------------------------------------------------------


def _become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # without it, orphans go to init and are not counted


def _exec_child(command: list) -> None:
    """In the forked child: the signal dispositions a plain exec would have, then the command."""
    for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores these; programs expect the default
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        os.write(2, f"{command[0]}: {error.strerror or error}\n".encode())
    os._exit(127)


def _main(argv: list) -> int:
    fd, command = int(argv[1]), argv[2:]
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # an interrupt ends the launcher like its child, no traceback
    _become_subreaper()
    pid = os.fork()
    if pid == 0:
        os.close(fd)
        _exec_child(command)
    _, status = os.waitpid(pid, 0)
    while True:  # orphans of the tree that have exited (they are ours, as subreaper)
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_kib = used.ru_maxrss / 1024 if sys.platform == "darwin" else used.ru_maxrss  # bytes on macOS
    os.write(fd, f"{rss_kib} {used.ru_utime + used.ru_stime}".encode())
    os.close(fd)
    if os.WIFSIGNALED(status):  # die of the same signal, without leaving a core file
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
