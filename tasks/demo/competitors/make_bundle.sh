#!/bin/sh
# Rebuild fast-matmul.bundle: a small fork-like history of the demo, used as a local competitor.
#
#   commit 1  the demo's own sources, exactly as they are in tasks/demo, plus a README
#   commit 2  a real speed-up of kernel.c (i-k-j order, four rows of B per pass)
#   commit 3  a regression in matmul.h (float-store on the kernel: every store of a double
#             goes through memory), still correct
#
# Commits 2 and 3 touch different files, so each one's diff applies to the demo on its own.
# Names, emails and dates are fixed so the same sources give the same commits.
# Usage: sh tasks/demo/competitors/make_bundle.sh   (from anywhere)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
demo=$(dirname "$here")
out="$here/fast-matmul.bundle"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# Isolate from the user's git configuration (signing, hooks, templates, default branch).
export HOME="$work/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="Mira Okafor" GIT_AUTHOR_EMAIL="mira.okafor@example.org"
export GIT_COMMITTER_NAME="Mira Okafor" GIT_COMMITTER_EMAIL="mira.okafor@example.org"
mkdir -p "$HOME" "$work/repo"
cd "$work/repo"
git init -q -b main --template=
git config core.hooksPath /dev/null
git config pack.threads 1

commit() {  # commit <date> <message file>
    GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1" git commit -q --no-verify -F "$2"
}

# --- commit 1: the demo as it is -------------------------------------------------------
for f in .gitignore Makefile bench.sh check.c kernel.c main.c matmul.h; do
    cp "$demo/$f" "$f"
done
chmod 755 bench.sh
chmod 644 .gitignore Makefile check.c kernel.c main.c matmul.h
cat > README.md <<'EOF'
# fast-matmul: cache-friendly double-precision matrix multiply

A fork of the small matmul demo (same interface, same benchmark and check),
used to try loop orders and blocking for the row-major kernel.

Build with `make`, run `./bench.sh` for `METRIC gflops=...`, and `make check`
to compare against the reference triple loop.
EOF
git add -A
cat > "$work/msg" <<'EOF'
Import the matmul demo: naive kernel, benchmark and check
EOF
commit "2024-03-04T10:12:00+01:00" "$work/msg"

# --- commit 2: the speed-up ------------------------------------------------------------
cat > kernel.c <<'EOF'
#include "matmul.h"

/*
 * i-k-j matrix multiply, four rows of B per pass.
 *
 * For each row i of C, add a0*B[k] + a1*B[k+1] + a2*B[k+2] + a3*B[k+3] to it,
 * where a0..a3 are A[i][k..k+3]. Every stream is unit stride, row i of C is
 * loaded and stored once per four rows of B instead of once per row, and
 * there is no loop-carried scalar, so the j loop pipelines well.
 */
void matmul(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++) {
        double *restrict c = C + (long)i * n;
        const double *a = A + (long)i * n;
        for (int j = 0; j < n; j++)
            c[j] = 0.0;
        int k = 0;
        for (; k + 4 <= n; k += 4) {
            const double a0 = a[k], a1 = a[k + 1], a2 = a[k + 2], a3 = a[k + 3];
            const double *restrict b0 = B + (long)k * n;
            const double *restrict b1 = b0 + n;
            const double *restrict b2 = b1 + n;
            const double *restrict b3 = b2 + n;
            for (int j = 0; j < n; j++)
                c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
        for (; k < n; k++) { /* the last n % 4 rows of B */
            const double ak = a[k];
            const double *restrict b = B + (long)k * n;
            for (int j = 0; j < n; j++)
                c[j] += ak * b[j];
        }
    }
}
EOF
git add kernel.c
cat > "$work/msg" <<'EOF'
kernel: i-k-j loop order, four rows of B per pass

The i-j-k loop walks B down a column, 3 KB apart at n = 384, so every
load misses and the multiply runs at memory latency. Swap to i-k-j with
A[i][k] hoisted: the inner loop now streams a row of B into a row of C.

Taking four rows of B per pass cuts the loads and stores of the C row by
four. The tail loop handles n % 4 rows, so odd sizes stay correct
(make check passes for n = 1, 3, 5, 31, 129).

384x384 on my laptop: 2.6 -> 13 GFLOP/s.
EOF
commit "2024-03-06T18:40:00+01:00" "$work/msg"

# --- commit 3: the regression ----------------------------------------------------------
cat > matmul.h <<'EOF'
#ifndef MATMUL_H
#define MATMUL_H

/*
 * C = A * B for square n x n matrices of doubles, stored row-major in
 * contiguous arrays (element (i, j) lives at index i * n + j).
 * C is fully overwritten; its previous contents are ignored.
 *
 * float-store rounds every assignment to a double to 64 bits in memory, so
 * results are the same with x87 (32-bit) and SSE builds.
 */
void matmul(int n, const double *A, const double *B, double *C)
    __attribute__((optimize("float-store")));

#endif
EOF
git add matmul.h
cat > "$work/msg" <<'EOF'
matmul.h: build the kernel with float-store for reproducible results

A user comparing results from a 32-bit build saw the last bits differ:
x87 keeps intermediates in 80-bit registers. Ask GCC to store every
double variable to memory on assignment in matmul, so each partial sum
is rounded to 64 bits the same way on every target.

make check still passes.
EOF
commit "2024-03-09T09:05:00+01:00" "$work/msg"

git bundle create -q "$out.tmp" HEAD main
mv "$out.tmp" "$out"
git log --format='%h %s' main
