/* gram.h - the Gram accumulation of the patch-AGOP sweep: S += sum over positions of
 * g g^T, g the co channels of one position of a conv output gradient (B, co, hw).
 *
 * OpenBLAS ssyrk is slow at these shapes inside the sweep: co = 64 with long rows, a
 * packed copy of every position, and its own threads fighting oneDNN's OpenMP team on
 * few cores. Here positions are packed in tiles transposed to (np, co), zero-padded,
 * then an OpenMP team multiplies register blocks (rows x 2 vectors) with AVX-512 or
 * AVX2 + FMA (the outer form); rows of >= 512 positions (VGG11 conv1) are read in place,
 * 4 x 4 channel pairs of dot products with AVX-512 (the dot form). Each tile's float sums
 * (<= AG_GRAM_TILE terms) are added in double. */
#ifndef AG_GRAM_H
#define AG_GRAM_H

#include <stdint.h>

/* Positions per tile at most: the float sums inside a tile stay short. */
#define AG_GRAM_TILE 4096

/* The kernel this CPU runs: 512 (AVX-512), 256 (AVX2 + FMA) or 0 (none: callers use
 * BLAS). */
int ag_gram_isa(void);

/* acc[i * co + j] += sum_{b, p} g[b, i, p] g[b, j, p] for j >= i (the upper triangle;
 * the lower one is left alone). Returns 0, or -1 when out of memory (acc unchanged).
 * Does not look for non-finite entries: a caller that starts from acc = 0 finds them on
 * the diagonal. Call only when ag_gram_isa() != 0.
 *   acc: (co, co) double, in/out
 *   g:   (batch, co, hw) */
int ag_gram_accumulate(double *acc, const float *g, int64_t batch, int64_t co, int64_t hw);

/* The same with the kernel named (512 or 256; the CPU must run it): for tests of the
 * AVX2 kernel on an AVX-512 machine. Another isa does nothing. */
int ag_gram_accumulate_isa(double *acc, const float *g, int64_t batch, int64_t co, int64_t hw,
                           int isa);

/* The same sum for a gradient that max-pooling spread out: g[b, c, idx[b, c, p]] =
 * v[b, c, p] for every pooling window p, 0 elsewhere. Two channels' terms meet only where
 * their maxima sit on the same pixel, so acc[i * co + j] += sum_{b, p} v[b, i, p] v[b, j, p]
 * [ix[b, i, p] == ix[b, j, p]] for j >= i: 4x fewer products than over g for 2 x 2
 * windows, and g is never formed. Returns 0, or 1 when this CPU or shape has no kernel
 * for it (AVX-512 and nw a multiple of 16 only; acc unchanged): the caller then forms g.
 *   acc: (co, co) double, in/out
 *   v:   (batch, co, nw) the gradient at the pool's output (ReLU mask applied)
 *   ix:  (batch, co, nw) the flat position of each window's maximum in its plane */
int ag_gram_accumulate_pooled(double *acc, const float *v, const float *ix, int64_t batch,
                              int64_t co, int64_t nw);

#endif
