#ifndef MATMUL_H
#define MATMUL_H

/*
 * C = A * B for square n x n matrices of doubles, stored row-major in
 * contiguous arrays (element (i, j) lives at index i * n + j).
 * C is fully overwritten; its previous contents are ignored.
 */
void matmul(int n, const double *A, const double *B, double *C);

#endif
