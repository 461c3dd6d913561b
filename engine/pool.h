/* pool.h - max, average and adaptive average pooling over contiguous NCHW planes. */
#ifndef AG_POOL_H
#define AG_POOL_H

#include "ag.h"

#include <stdint.h>

typedef struct AgPoolShape {
    int b, c, h, w;     /* input  (B, C, H, W) */
    int k, stride, pad; /* square window; pad <= k/2 (every window holds a real pixel) */
    int ho, wo;         /* output (B, C, Ho, Wo), filled by ag_pool2d_shape() */
} AgPoolShape;

/* Fills s from x's sizes (B, C, H, W) and checks everything (fname names the caller in
 * messages: "maxpool2d: input 1x1 with padding 0 is smaller than kernel 2"). */
int ag_pool2d_shape(AgPoolShape *s, const int64_t xsize[4], int k, int stride, int pad,
                    const char *fname, AgError *err);

/* y = the max over each window; idx = its offset inside the input plane (ih*W + iw, as a
 * float), the first maximum in row-major window order (NaN wins, as in PyTorch).
 *   y, idx: (B, C, Ho, Wo)  out
 *   x:      (B, C, H, W) */
int ag_maxpool2d_forward(float *y, float *idx, const float *x, const AgPoolShape *s,
                         AgError *err);
/* dx = the scatter of dy to the positions in idx (overwritten; an idx that is not a pixel
 * of the plane is an error). Needs no window sizes: idx says it all.
 *   dx:      (nplanes, H, W)   out
 *   idx, dy: (nplanes, Ho, Wo) */
int ag_maxpool2d_backward(float *dx, const float *idx, const float *dy, int64_t nplanes, int h,
                          int w, int ho, int wo, AgError *err);

/* Average over each window, padding cells counted (count_include_pad, PyTorch's default).
 *   y: (B, C, Ho, Wo) out ; x: (B, C, H, W) */
int ag_avgpool2d_forward(float *y, const float *x, const AgPoolShape *s, AgError *err);
/*   dx: (B, C, H, W) out (overwritten) ; dy: (B, C, Ho, Wo) */
int ag_avgpool2d_backward(float *dx, const float *dy, const AgPoolShape *s, AgError *err);

/* Adaptive average pooling to oh x ow: output cell (i, j) averages input rows
 * floor(i*H/oh) .. ceil((i+1)*H/oh)-1 and the columns likewise (PyTorch's rule).
 *   y: (B*C, oh, ow) out ; x: (B*C, H, W)   (nplanes = B*C) */
int ag_adaptive_avgpool2d_forward(float *y, const float *x, int64_t nplanes, int h, int w,
                                  int oh, int ow, AgError *err);
/*   dx: (B*C, H, W) out (overwritten) ; dy: (B*C, oh, ow) */
int ag_adaptive_avgpool2d_backward(float *dx, const float *dy, int64_t nplanes, int h, int w,
                                   int oh, int ow, AgError *err);

#endif
