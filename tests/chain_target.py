"""A small C target with a fork whose history has every shape the miner must handle.

The target builds `prog` from main.c and lib/*.c; `prog` prints a "speed" the bench turns into
`METRIC score=…` with 1% noise. The fork (a clone of the target, then these commits, in order):

  A  lib/codec.c: block decoder ×1.2, and adds codec_fast_init()     applies alone
  B  lib/codec.c: the same line ×1.44                                applies only on top of A
  S  docs/tuning.md (on a side branch)                               no file the target has
  E  merges the side branch                                          a merge commit
  C  git mv lib/codec.c third_party/codec.c                          renames only
  D  third_party/codec.c: frame decoder ×1.1                         applies through the rename
  F  bench.sh: a "faster" benchmark                                  only a protected file
  G  lib/util.c: ×1.1 when codec_fast_init() is there                applies, links only with A

Like tasks/demo/competitors/make_bundle.sh, names and dates are fixed so the commits are stable.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

FILLER = "".join(f"    /* stage {i}: copy literals, then matches */\n" for i in range(1, 31))

CODEC = """/* codec: a pretend decoder whose speed the fork's commits change */
#include "codec.h"

double codec_speed(void)
{
    double speed = 100.0;
    speed *= 1.0; /* block decoder */
""" + FILLER + """    speed *= 1.0; /* frame decoder */
    return speed;
}

int codec_check(void)
{
    return codec_speed() > 0.0;
}
"""

HEADER = "double codec_speed(void);\nint codec_check(void);\n"
UTIL = "double util_speed(void)\n{\n    return 1.0;\n}\n"
MAIN = """#include <stdio.h>
#include <string.h>
#include "codec.h"

double util_speed(void);

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return codec_check() ? 0 : 1;
    printf("%f\\n", codec_speed() * util_speed());
    return 0;
}
"""
BUILD = "#!/bin/sh\nset -e\ncc -O1 -Ilib -o prog main.c $(find lib third_party -name '*.c' 2>/dev/null | sort)\n"
BENCH = """#!/bin/sh
# The program's speed with 1% noise.
python3 -c "import random, subprocess; v = float(subprocess.check_output(['./prog'])); print('METRIC score=%f' % (v * random.gauss(1, 0.01)))"
"""
CHECK = "#!/bin/sh\n./prog check\n"

ENV = {
    "GIT_AUTHOR_NAME": "Ana Lindqvist", "GIT_AUTHOR_EMAIL": "ana@example.org",
    "GIT_COMMITTER_NAME": "Ana Lindqvist", "GIT_COMMITTER_EMAIL": "ana@example.org",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


def _git(cwd: Path, *args: str, date: str = "2025-01-01T10:00:00+00:00") -> str:
    env = {**os.environ, **ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if name.endswith(".sh"):
            path.chmod(0o755)


def _commit(repo: Path, message: str, day: int) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--no-verify", "-m", message, date=f"2025-02-{day:02d}T10:00:00+00:00")
    return _git(repo, "rev-parse", "HEAD")


def build(root: Path, rounds: int = 2, extra: str = "") -> dict:
    """root/target (a git repo), root/fork (its fork), root/task.yaml; returns paths and the commit shas by letter."""
    target = root / "target"
    target.mkdir(parents=True)
    _write(target, {"main.c": MAIN, "lib/codec.c": CODEC, "lib/codec.h": HEADER, "lib/util.c": UTIL,
                    "build.sh": BUILD, "bench.sh": BENCH, "check.sh": CHECK, ".gitignore": "prog\n"})
    _git(target, "init", "-q", "-b", "main")
    _commit(target, "codec 1.0", 1)
    fork = root / "fork"
    subprocess.run(["git", "clone", "-q", str(target), str(fork)], check=True, capture_output=True)
    codec = fork / "lib" / "codec.c"
    shas = {}

    text = codec.read_text().replace("    speed *= 1.0; /* block decoder */\n",
                                     "    speed *= 1.2; /* block decoder: fast path */\n")
    text = text.replace("int codec_check(void)", "int codec_fast_init(void)\n{\n    return 1;\n}\n\nint codec_check(void)")
    codec.write_text(text)
    shas["A"] = _commit(fork, "codec: fast path for the block decoder\n\nSkip the bounds check per byte.", 2)
    codec.write_text(codec.read_text().replace("speed *= 1.2; /* block decoder: fast path */",
                                               "speed *= 1.44; /* block decoder: fast path, wide copies */"))
    shas["B"] = _commit(fork, "codec: wide copies in the block decoder fast path", 3)
    _git(fork, "checkout", "-q", "-b", "docs")
    _write(fork, {"docs/tuning.md": "# Tuning\n\nThe block decoder likes wide copies.\n"})
    shas["S"] = _commit(fork, "docs: tuning notes", 4)
    _git(fork, "checkout", "-q", "main")
    _git(fork, "merge", "-q", "--no-ff", "--no-edit", "-m", "Merge branch 'docs'", "docs", date="2025-02-05T10:00:00+00:00")
    shas["E"] = _git(fork, "rev-parse", "HEAD")
    (fork / "third_party").mkdir()
    _git(fork, "mv", "lib/codec.c", "third_party/codec.c")
    shas["C"] = _commit(fork, "Move the codec into third_party/", 6)
    moved = fork / "third_party" / "codec.c"
    moved.write_text(moved.read_text().replace("    speed *= 1.0; /* frame decoder */\n",
                                               "    speed *= 1.1; /* frame decoder: no checksum copy */\n"))
    shas["D"] = _commit(fork, "codec: skip the checksum copy in the frame decoder", 7)
    _write(fork, {"bench.sh": BENCH.replace("v * random", "2 * v * random")})
    shas["F"] = _commit(fork, "bench: report the speed of both cores", 8)
    _write(fork, {"lib/util.c": "int codec_fast_init(void);\n\ndouble util_speed(void)\n{\n"
                                "    return codec_fast_init() ? 1.1 : 1.0;\n}\n"})
    shas["G"] = _commit(fork, "util: use the codec's fast init", 9)

    task = root / "task.yaml"
    task.write_text(
        "name: chain\nrepo: target\ngoal: Speed up the codec decoder\nbuild: sh build.sh\nbench: ./bench.sh\n"
        "check: ./check.sh\nmetric: score\nprotected: [bench.sh, check.sh, build.sh]\n"
        "timeouts: {build: 60, bench: 20, check: 20, runtime: 60}\n"
        f"experiments: {{parallel: 2, rounds: {rounds}, repeats: 5, max_repeats: 10, min_effect: 0.02}}\n"
        "research: {papers: 0, repos: 5, prs: 0, competitors: [fork]}\n" + extra)
    return {"target": target, "fork": fork, "task": task, "shas": shas}
