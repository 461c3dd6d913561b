/* linalg.h - dense symmetric linear algebra for feature analysis (LAPACK through
 * OpenBLAS), matrix similarity, and the feature map of an image.
 *
 * Matrices are row-major float arrays; the work is done in double wherever rounding
 * would show (eigendecompositions, powers, correlations). Functions that need scratch
 * memory allocate it themselves and free it before returning. */
#ifndef AG_LINALG_H
#define AG_LINALG_H

#include "ag.h"

#include <stdint.h>

/* Largest n accepted by the eigen routines (LAPACK's 32-bit workspace sizes). */
#define AG_EIG_MAXN 16384

/* Largest |a_ij - a_ji| / max(1e-30, max |a|) over a's entries (0 for a symmetric a).
 *   a: (n, n) */
double ag_asymmetry(const float *a, int64_t n);

/* Symmetric eigendecomposition a = V diag(evals) V^T through LAPACK dsyevd, in double
 * (a is symmetrized as (a + a^T)/2 first).
 *   evals: (n)     out, ascending
 *   evecs: (n, n)  out, or NULL for eigenvalues only; column j is the unit eigenvector
 *                  of evals[j] (evecs[i * n + j] is its i-th component)
 *   a:     (n, n) */
int ag_eigh(float *evals, float *evecs, const float *a, int64_t n, AgError *err);

/* Double-precision core of ag_eigh: a (n, n) is overwritten by the eigenvectors in
 * column-major order (Fortran's: a[j * n + i] is component i of vector j) and
 * evals (n) receives the eigenvalues in ascending order. */
int ag_eigh_d(double *evals, double *a, int64_t n, AgError *err);

/* The first of the eigenvalues that a matrix power keeps: evals (n) in ascending order
 * (as ag_eigh_d gives them); returns the index of the first one above 1e-13 times the
 * largest, n when the largest is not positive (nothing is kept). AGOP^alpha (agop.c) and
 * the ansatz correlation (ansatz.c) drop the same directions through it. */
int64_t ag_eig_first_kept(const double *evals, int64_t n);

/* y = a^alpha = V diag(max(evals, 0)^alpha) V^T for a symmetric a, alpha > 0; negative
 * eigenvalues (rounding noise of a PSD matrix) are clipped to 0. y may alias a.
 *   y: (n, n) out, exactly symmetric
 *   a: (n, n) */
int ag_sym_pow(float *y, const float *a, int64_t n, double alpha, AgError *err);

/* Pearson correlation over the n entries of a and b, in double:
 * <a - mean a, b - mean b> / (|a - mean a| |b - mean b|). Fails when either is constant. */
int ag_pearson(double *out, const float *a, const float *b, int64_t n, AgError *err);

/* Cosine similarity <a, b> / (|a| |b|) over n entries, in double. Fails on a zero vector. */
int ag_cosine(double *out, const float *a, const float *b, int64_t n, AgError *err);

/* Feature map of one image under a d x d matrix m (d = c * k * k, patch order c, kh, kw):
 * for every stride-1 k x k patch p of x (zero padding pad), out = |m p|_2, then min-max
 * normalized to [0, 1] (all zeros when the map is constant).
 *   out: (ho, wo) with ho = h + 2 pad - k + 1, wo = w + 2 pad - k + 1
 *   m:   (d, d)
 *   x:   (c, h, w) */
int ag_feature_map(float *out, const float *m, const float *x, int64_t c, int64_t h, int64_t w,
                   int64_t k, int64_t pad, AgError *err);
/* The check of ag_feature_map's sizes, and its output size (*ho, *wo); a bare message
 * ("input 1x1 with padding 0 is smaller than kernel 3"): the caller names itself. */
int ag_feature_map_size(int64_t c, int64_t h, int64_t w, int64_t k, int64_t pad, int64_t *ho,
                        int64_t *wo, AgError *err);

#endif
