/* agop.h - the conv-layer feature matrices (README.md, "Feature matrices"): the neural
 * feature matrix (CNFM) W^T W and the fast path of the patch-AGOP, G = W^T S W / n with
 * S = sum over images, classes and positions of g g^T (g = df_c/dz at one output
 * position of the conv). S is accumulated in double.
 *
 * A conv weight (co, ci, k, k) is read as the row-major matrix W (co, d), d = ci*k*k. */
#ifndef AG_AGOP_H
#define AG_AGOP_H

#include "ag.h"

#include <stdint.h>

/* n = W^T W (CNFM), exactly symmetric.
 *   n: (d, d) out
 *   w: (co, d) */
int ag_nfm(float *n, const float *w, int64_t co, int64_t d, AgError *err);

/* s += sum_{b, p} g[b, :, p] g[b, :, p]^T, both triangles (s stays exactly symmetric).
 * Positions are packed in chunks and multiplied with float ssyrk, each chunk's product
 * added into the double accumulator. A non-finite entry in g is an error, and s is
 * then left unchanged.
 *   s: (co, co) double, in/out
 *   g: (batch, co, hw), e.g. dL/dz of a conv output (batch, co, h, w) */
int ag_agop_accumulate(double *s, const float *g, int64_t batch, int64_t co, int64_t hw,
                       AgError *err);

/* g_out = W^T s W / n_images, exactly symmetric; s W is formed in double, the final
 * product with sgemm.
 *   g_out: (d, d) out
 *   s:     (co, co) double, symmetric
 *   w:     (co, d) */
int ag_agop_finish(float *g_out, const double *s, const float *w, int64_t co, int64_t d,
                   double n_images, AgError *err);

/* g_out = (W^T s W / n_images)^alpha, alpha > 0, without forming the d x d AGOP first:
 * G has rank <= co, so with A = (s / n)^(1/2) W (co, d) and A A^T = U diag(sig^2) U^T,
 * G^alpha = B^T B with B = diag(sig^(alpha - 1)) U^T A, all in double (directions with
 * sig^2 <= 1e-13 max sig^2 are rounding noise and dropped). When d <= co this is
 * ag_agop_finish then ag_sym_pow. Much faster (and, for d > co, more accurate: the
 * d - co null directions stay exactly null) than an eigendecomposition of the d x d G.
 *   g_out: (d, d) out, exactly symmetric
 *   s:     (co, co) double, symmetric PSD
 *   w:     (co, d) */
int ag_agop_pow(float *g_out, const double *s, const float *w, int64_t co, int64_t d,
                double n_images, double alpha, AgError *err);

#endif
