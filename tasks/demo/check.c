/*
 * Correctness check for the matmul kernel: multiplies random matrices of
 * several sizes with the kernel and with a simple reference, and compares
 * the results within a floating-point tolerance. Exits non-zero on mismatch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "matmul.h"

static unsigned rng_state = 2024u;

static double rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (double)(rng_state >> 8) / (double)(1u << 24) * 2.0 - 1.0;
}

static int check_size(int n)
{
    size_t count = (size_t)n * (size_t)n;
    double *A = malloc(count * sizeof(double));
    double *B = malloc(count * sizeof(double));
    double *C = malloc(count * sizeof(double));
    double *R = malloc(count * sizeof(double));
    double *S = malloc(count * sizeof(double)); /* sum of |a*b| per element */
    if (!A || !B || !C || !R || !S) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < count; i++) {
        A[i] = rnd();
        B[i] = rnd();
        C[i] = 1e300; /* garbage: the kernel must overwrite C entirely */
    }

    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double sum = 0.0, mag = 0.0;
            for (int k = 0; k < n; k++) {
                double p = A[i * n + k] * B[k * n + j];
                sum += p;
                mag += fabs(p);
            }
            R[i * n + j] = sum;
            S[i * n + j] = mag;
        }
    }

    matmul(n, A, B, C);

    int bad = 0;
    for (int i = 0; i < n && !bad; i++) {
        for (int j = 0; j < n; j++) {
            double got = C[i * n + j], want = R[i * n + j];
            double tol = 1e-12 + 1e-10 * S[i * n + j];
            if (!(fabs(got - want) <= tol)) {
                fprintf(stderr, "FAIL n=%d C[%d][%d]=%.17g expected %.17g\n",
                        n, i, j, got, want);
                bad = 1;
                break;
            }
        }
    }

    free(A);
    free(B);
    free(C);
    free(R);
    free(S);
    return bad;
}

int main(void)
{
    static const int sizes[] = {1, 2, 3, 5, 8, 16, 31, 64, 100, 129};
    int failures = 0;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        failures += check_size(sizes[s]);
    if (failures) {
        fprintf(stderr, "check: %d size(s) failed\n", failures);
        return 1;
    }
    printf("check: OK\n");
    return 0;
}
