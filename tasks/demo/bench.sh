#!/bin/sh
# Run the benchmark binary once and print its METRIC lines.
# Build first with `make`.
cd "$(dirname "$0")" || exit 1
if [ ! -x ./matmul ]; then
    echo "bench.sh: ./matmul not found; run make first" >&2
    exit 1
fi
exec ./matmul
