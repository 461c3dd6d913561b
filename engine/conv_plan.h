/* conv_plan.h - a planned 2-D convolution: oneDNN primitives (forward, input gradient,
 * weight gradient) created once for one shape and batch size and reused by every call.
 * The data stays in the engine's NCHW layout at the boundary; inside, oneDNN picks its
 * own (blocked) layouts and the plan reorders in and out through a workspace the caller
 * passes (ag_conv_plan_prepare gives its size; one serves all plans of a network).
 *
 * This is the fast path of nn.Conv2d on x86-64 when agoplua is built with oneDNN
 * (the default when libdnnl-dev is installed; make DNNL=0 builds without it). conv.h's
 * im2col + sgemm stays the reference and the fallback: without oneDNN every
 * ag_conv_plan_new fails with a message and callers use ag_conv2d_forward/ag_conv2d_backward.
 *
 * Algorithms (measured on the VGG11 stack, see README "Performance"): Winograd
 * F(4x4, 3x3) where it is defined and wins (3x3, stride 1, at least 16 input channels,
 * output at least 4x4), direct convolution elsewhere. Winograd is less exact than direct:
 * its results differ from the im2col path by up to 2e-5 of the largest entry (measured
 * ~2e-6; tests/lua/test_conv_plan.lua states and checks the bound; direct: 1e-5). */
#ifndef AG_CONV_PLAN_H
#define AG_CONV_PLAN_H

#include "ag.h"
#include "conv.h"

typedef struct AgConvPlan AgConvPlan;

typedef enum AgConvAlgo {
    AG_CONV_AUTO = 0,     /* Winograd where ag_conv_winograd_wins(), else direct */
    AG_CONV_DIRECT = 1,   /* oneDNN direct convolution */
    AG_CONV_WINOGRAD = 2, /* oneDNN Winograd (fails for shapes it does not support) */
    AG_CONV_AUTO_DIRECT_FORWARD = 3, /* AUTO, but a direct forward: Winograd rounds equal
                                        inputs (a uniform background) to unequal outputs
                                        at different tile positions, so max-pooling picks
                                        other maxima than im2col and PyTorch do, and routes
                                        the gradients elsewhere (the AGOP of VGG11 layer 2
                                        moved by 2.7 %). Evaluation mode uses it. */
} AgConvAlgo;

/* 1 when the engine was built with oneDNN. */
int ag_conv_have_dnnl(void);

/* 1 when AG_CONV_AUTO picks Winograd for shape s. */
int ag_conv_winograd_wins(const AgConvShape *s);

/* *out = a new plan for shape s (filled by ag_conv2d_shape), or NULL and an error (no
 * oneDNN in this build, or no implementation of the algorithm for this shape). The input
 * gradient and weight gradient primitives are made on first use. */
int ag_conv_plan_new(AgConvPlan **out, const AgConvShape *s, AgConvAlgo algo, AgError *err);
void ag_conv_plan_free(AgConvPlan *p);

/* The shape the plan was made for. */
const AgConvShape *ag_conv_plan_shape(const AgConvPlan *p);

/* The oneDNN implementation of pass 0 (forward), 1 (input gradient) or 2 (weight
 * gradient), e.g. "jit_wino_4x3:avx512_core"; "" when that pass has not run yet. */
const char *ag_conv_plan_impl(const AgConvPlan *p, int pass);

/* Bytes the plan holds (its small buffers; oneDNN's own objects are not counted). */
int64_t ag_conv_plan_bytes(const AgConvPlan *p);

/* *bytes = the workspace that forward (and backward with the input gradient when dx,
 * the weight gradient when dw) needs: oneDNN's blocked copies and its scratchpad. It
 * lives only during a call, so one buffer (the largest plan's) serves every plan of a
 * network. Makes the backward primitives it needs. */
int ag_conv_plan_prepare(AgConvPlan *p, int dx, int dw, int64_t *bytes, AgError *err);

/* y = conv2d(x, w) + b
 *   y:    (B, Co, Ho, Wo) out
 *   work: (work_bytes) scratch, at least ag_conv_plan_prepare(p, 0, 0) bytes
 *   x: (B, Ci, H, W)
 *   w: (Co, Ci, K, K)
 *   b: (Co) or NULL */
int ag_conv_plan_forward(AgConvPlan *p, float *y, const float *x, const float *w,
                         const float *b, void *work, int64_t work_bytes, AgError *err);

/* dx = dL/dx (overwritten), dw += dL/dw, db += dL/db; any of dx, dw, db may be NULL.
 *   dx: (B, Ci, H, W)  out, or NULL
 *   dw: (Co, Ci, K, K) acc, or NULL
 *   db: (Co)           acc, or NULL
 *   dy: (B, Co, Ho, Wo)
 *   x:  (B, Ci, H, W)  (read when dw != NULL)
 *   w:  (Co, Ci, K, K) (read when dx != NULL)
 *   work: (work_bytes) scratch, at least ag_conv_plan_prepare(p, dx != NULL,
 *         dw || db) bytes */
int ag_conv_plan_backward(AgConvPlan *p, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, void *work, int64_t work_bytes,
                          AgError *err);

#endif
