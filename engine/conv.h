/* conv.h - 2-D convolution (cross-correlation, as PyTorch) on contiguous NCHW floats.
 *
 * Forward: im2col into cols (Ci*K*K, B*Ho*Wo), then cblas_sgemm with the weight
 * (Co, Ci*K*K) - one GEMM over the whole batch when the images are small (the late
 * layers), one per image when an image alone fills a GEMM. Backward: the weight
 * gradient is the same GEMM transposed, the input gradient is W^T dy followed by col2im.
 * The caller owns every buffer, including the scratch (ag_conv2d_scratch_size() floats);
 * the engine allocates nothing. */
#ifndef AG_CONV_H
#define AG_CONV_H

#include "ag.h"

#include <stdint.h>

typedef struct AgConvShape {
    int b, ci, h, w; /* input  (B, Ci, H, W) */
    int co, k;       /* weight (Co, Ci, K, K) */
    int stride, pad; /* stride >= 1, pad >= 0 (zeros on every side) */
    int ho, wo;      /* output (B, Co, Ho, Wo), filled by ag_conv2d_shape() */
    int chunk;       /* images per pass through the scratch; 0 (ag_conv2d_shape's choice):
                        as many as keep the columns in cache, see conv.c */
} AgConvShape;

/* Fills s from the sizes of x (B, Ci, H, W) and w (Co, Ci, K, K) and checks them all:
 * positive sizes, matching channels, a square kernel, stride >= 1, pad >= 0, an input
 * (with its padding) at least as large as the kernel, sizes that fit in int. */
int ag_conv2d_shape(AgConvShape *s, const int64_t xsize[4], const int64_t wsize[4], int stride,
                    int pad, AgError *err);

/* Re-checks a filled shape (ag_conv2d_forward/backward call it). */
int ag_conv2d_check(const AgConvShape *s, AgError *err);

/* Floats of scratch that ag_conv2d_forward and ag_conv2d_backward need (the same for both). */
int64_t ag_conv2d_scratch_size(const AgConvShape *s);

/* y = conv2d(x, w) + b
 *   y:       (B, Co, Ho, Wo)   out
 *   scratch: (ag_conv2d_scratch_size(s))
 *   x:       (B, Ci, H, W)
 *   w:       (Co, Ci, K, K)
 *   b:       (Co) or NULL */
int ag_conv2d_forward(float *y, float *scratch, const float *x, const float *w, const float *b,
                      const AgConvShape *s, AgError *err);

/* dx = dL/dx (overwritten), dw += dL/dw, db += dL/db (sums in double); any of dx, dw, db
 * may be NULL to skip it (dx alone: the input gradient only, x is then not read and may
 * be NULL).
 *   dx:      (B, Ci, H, W)     out, or NULL
 *   dw:      (Co, Ci, K, K)    acc, or NULL
 *   db:      (Co)              acc, or NULL
 *   scratch: (ag_conv2d_scratch_size(s))
 *   dy:      (B, Co, Ho, Wo)
 *   x:       (B, Ci, H, W)     (needed when dw != NULL)
 *   w:       (Co, Ci, K, K)    (needed when dx != NULL) */
int ag_conv2d_backward(float *dx, float *dw, float *db, float *scratch, const float *dy,
                       const float *x, const float *w, const AgConvShape *s, AgError *err);

/* The two memory-bound halves, exposed for tests and for the patch-AGOP code.
 * im2col: cols[(c*K + kh)*K + kw][b*Ho*Wo + oh*Wo + ow] = x[b][c][oh*S-P+kh][ow*S-P+kw]
 * (0 outside the image).
 *   cols: (Ci*K*K, B*Ho*Wo)  out
 *   x:    (B, Ci, H, W) */
void ag_conv2d_im2col(float *cols, const float *x, const AgConvShape *s);
/* col2im: the adjoint of im2col, dx = sum of the cols entries that read each pixel.
 *   dx:   (B, Ci, H, W)       out (overwritten)
 *   cols: (Ci*K*K, B*Ho*Wo) */
void ag_conv2d_col2im(float *dx, const float *cols, const AgConvShape *s);

#endif
