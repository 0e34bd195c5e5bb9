/*
 * Benchmark driver: times the matmul kernel on N x N matrices (or the size given
 * as the first argument) and prints
 *   METRIC gflops=<value>
 *   METRIC ms=<value>
 * where ms is the mean wall time of one multiply.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "matmul.h"

#ifndef N
#define N 384
#endif
#ifndef ITERS
#define ITERS 5
#endif

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill(double *m, int n, unsigned *state)
{
    for (int i = 0; i < n * n; i++) {
        *state = *state * 1664525u + 1013904223u;
        m[i] = (double)(*state >> 8) / (double)(1u << 24) - 0.5;
    }
}

int main(int argc, char **argv)
{
    const int n = argc > 1 ? atoi(argv[1]) : N; /* another size: the holdout benchmark */
    if (n < 1) {
        fprintf(stderr, "usage: %s [size >= 1]\n", argv[0]);
        return 2;
    }
    size_t bytes = (size_t)n * (size_t)n * sizeof(double);
    double *A = malloc(bytes);
    double *B = malloc(bytes);
    double *C = malloc(bytes);
    if (!A || !B || !C) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    unsigned state = 12345u;
    fill(A, n, &state);
    fill(B, n, &state);

    matmul(n, A, B, C); /* warm-up: page in C, warm caches */

    double t0 = now_sec();
    for (int it = 0; it < ITERS; it++)
        matmul(n, A, B, C);
    double elapsed = now_sec() - t0;

    /* Consume the result so the work cannot be considered dead. */
    double checksum = 0.0;
    for (int i = 0; i < n * n; i++)
        checksum += C[i];
    if (checksum != checksum) {
        fprintf(stderr, "result is NaN\n");
        return 1;
    }

    double per_iter = elapsed / ITERS;
    double gflops = 2.0 * (double)n * (double)n * (double)n / per_iter / 1e9;
    printf("METRIC gflops=%.4f\n", gflops);
    printf("METRIC ms=%.3f\n", per_iter * 1e3);

    free(A);
    free(B);
    free(C);
    return 0;
}
