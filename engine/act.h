/* act.h - element-wise activations, softmax and the cross-entropy loss, dropout. */
#ifndef AG_ACT_H
#define AG_ACT_H

#include "ag.h"
#include "rng.h"

#include <stdint.h>

/* y = max(x, 0) (NaN stays NaN); y may alias x.
 *   y, x: (n) */
void ag_relu_forward(float *y, const float *x, int64_t n);
/* dx = dy where y > 0, else 0 (overwritten); dx may alias dy.
 *   dx, dy, y: (n) */
void ag_relu_backward(float *dx, const float *dy, const float *y, int64_t n);

/* Row-wise softmax and log-softmax (max-subtracted, sums in double); y may alias x.
 *   y, x: (B, C) */
int ag_softmax_forward(float *y, const float *x, int64_t nb, int64_t nc, AgError *err);
int ag_log_softmax_forward(float *y, const float *x, int64_t nb, int64_t nc, AgError *err);

/* loss = mean over the batch of -log softmax(logits)[label]; dlogits (may be NULL) =
 * the gradient of that mean, (softmax - onehot) / B. Labels are class ids 0..C-1 stored
 * as floats; anything else (fractions, NaN, out of range) is an error naming the sample
 * and the label. The loss is accumulated in double.
 *   loss:    ()      out
 *   dlogits: (B, C)  out, or NULL
 *   logits:  (B, C)
 *   labels:  (B) */
int ag_cross_entropy_forward(double *loss, float *dlogits, const float *logits,
                             const float *labels, int64_t nb, int64_t nc, AgError *err);

/* Inverted dropout: mask[i] = 0 with probability p, else 1/(1-p); y = x * mask (p = 1:
 * all zero). Draws n uniforms from rng in order, so a seed fixes the mask.
 *   y, mask, x: (n)   (y may alias x) */
int ag_dropout_forward(float *y, float *mask, const float *x, int64_t n, double p, AgRng *rng,
                       AgError *err);

#endif
