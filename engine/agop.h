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
 * Float sums over tiles of positions (engine/gram.c's kernels on x86-64 with AVX2 or
 * AVX-512, else packed chunks and OpenBLAS ssyrk), each tile's product added into the
 * double accumulator. A non-finite entry in g is an error, and s is then left unchanged.
 *   s: (co, co) double, in/out
 *   g: (batch, co, hw), e.g. dL/dz of a conv output (batch, co, h, w) */
int ag_agop_accumulate(double *s, const float *g, int64_t batch, int64_t co, int64_t hw,
                       AgError *err);

/* ag_agop_accumulate for the gradient at a conv's output when ReLU then max-pooling follow
 * it, from the pool's side, without forming that gradient: g = (ReLU then max-pool
 * backward of dy), i.e. dy[j] at its window's arg-max idx[j] where the pooled value is
 * > 0 (see ag_agop_unpool_relu), and s += sum over positions of g g^T. *done = 1 when
 * it did (engine/gram.h: AVX-512, ho * wo a multiple of 16), 0 when the caller must form
 * g and call ag_agop_accumulate (s unchanged). A non-finite entry: an error, s unchanged.
 *   s:      (co, co) double, in/out
 *   idx:    (batch, co, ho * wo) flat arg-max within its plane
 *   pooled: (batch, co, ho * wo) the pool's output
 *   dy:     (batch, co, ho * wo) the gradient at the pool's output */
int ag_agop_accumulate_pooled(double *s, const float *idx, const float *pooled, const float *dy,
                              int64_t batch, int64_t co, int64_t nw, int *done, AgError *err);

/* The input gradient of ReLU then max-pooling, in one pass (the AGOP sweep's walk through
 * VGG's conv -> ReLU -> pool): dx = relu'(y) * (max-pool backward of dy), y the ReLU
 * output: each dy[j] goes to its window's arg-max idx[j] when the pooled value (y there)
 * is > 0, every other entry is 0. The same values as ag_maxpool2d_backward then
 * ag_relu_backward, without reading y or a second pass over dx. The index
 * and pooled planes repeat along dy's planes: dy plane pl uses plane pl % nmask (the
 * sweep stacks the gradients of several classes of the same images).
 *   dx:     (nplanes, h, w) out
 *   idx:    (nmask, ho, wo) flat arg-max within its plane, as ag_maxpool2d_forward writes it
 *   dy:     (nplanes, ho, wo)
 *   pooled: (nmask, ho, wo) the pool's output */
int ag_agop_unpool_relu(float *dx, const float *idx, const float *dy, const float *pooled,
                        int64_t nplanes, int64_t nmask, int h, int w, int ho, int wo,
                        AgError *err);

/* ReLU's input gradient in place, its output y repeating along g's planes as above:
 * g[pl] = y[pl % nmask] > 0 ? g[pl] : 0.
 *   g: (nplanes, plane) in/out
 *   y: (nmask, plane) */
void ag_agop_relu_mask(float *g, const float *y, int64_t nplanes, int64_t nmask, int64_t plane);

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
