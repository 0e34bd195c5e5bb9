"""Landlock (Linux ≥ 5.13, unprivileged): a tiny launcher that takes write access away, then execs.

    python3 -I -S landlock.py --rw DIR [--rw DIR ...] -- COMMAND ARGS...

Run as a script on purpose (no package import, no site): it costs one small interpreter start per
command. The ruleset handles only the write-type rights (write, truncate, create, remove, rename),
so reads, execution and the network stay open; every `--rw` directory gets them all back, and a few
device files get plain writes. The restriction is inherited by everything the command starts and
cannot be lifted by it (no_new_privs + landlock_restrict_self).

Limits worth knowing (the README says them too): Landlock does not cover chmod/chown/utime on
existing files, and before ABI 3 (Linux 6.2) not truncate(2) by path.
"""

from __future__ import annotations

import ctypes
import os
import sys

# The syscall numbers are the same on every architecture (the generic table).
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
O_PATH = getattr(os, "O_PATH", 0o10000000)

WRITE_FILE = 1 << 1
REMOVE_DIR, REMOVE_FILE = 1 << 4, 1 << 5
MAKE = sum(1 << bit for bit in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
REFER = 1 << 13     # ABI 2: rename/link across directories
TRUNCATE = 1 << 14  # ABI 3
# Device files a confined command may write (not create): output sinks and terminals.
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/random", "/dev/urandom", "/dev/pts", "/dev/ptmx")


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI (≥ 1), or 0 when Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        version = _libc().syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return int(version) if version > 0 else 0


def handled_rights(abi: int) -> int:
    rights = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    return rights


def restrict(writable: list[str]) -> None:
    """Confine this process (and what it will exec) to writing under `writable` only."""
    libc = _libc()
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available on this kernel")
    handled = handled_rights(abi)
    attr = RulesetAttr(handled)
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    file_rights = WRITE_FILE | (TRUNCATE if abi >= 3 else 0)
    rules = [(path, handled) for path in writable] + [(path, file_rights) for path in DEVICES]
    for path, rights in rules:
        try:
            fd = os.open(path, O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # a root that does not exist (yet) grants nothing
        try:
            if not os.path.isdir(path):
                rights &= WRITE_FILE | TRUNCATE  # only file rights are valid on a file
            rule = PathBeneathAttr(rights, fd)
            if libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
        finally:
            os.close(fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)


def argv(writable: list[str], command: list[str]) -> list[str]:
    """The launcher command line that runs `command` confined."""
    wrapped = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
    for path in writable:
        wrapped += ["--rw", path]
    return wrapped + ["--", *command]


def main(args: list[str]) -> int:
    writable: list[str] = []
    while args and args[0] == "--rw":
        writable.append(args[1])
        args = args[2:]
    if not args or args[0] != "--" or len(args) < 2:
        sys.stderr.write("usage: landlock.py --rw DIR ... -- COMMAND ARGS...\n")
        return 2
    command = args[1:]
    try:
        restrict(writable)
    except OSError as error:
        sys.stderr.write(f"research-agent fence: {error}\n")
        return 126
    try:
        os.execvp(command[0], command)
    except OSError as error:
        sys.stderr.write(f"research-agent fence: cannot run {command[0]}: {error.strerror}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
