#!/bin/sh
# The demo's holdout benchmark: the same kernel on a size the runtime never sees (bench.sh runs
# 384). research-agent keeps this file out of the run's repository and runs it from the worktree
# root after the build, paired against the base, on every candidate the main gate would keep.
if [ ! -x ./matmul ]; then
    echo "bench-holdout.sh: ./matmul not found; run make first" >&2
    exit 1
fi
exec ./matmul 256
