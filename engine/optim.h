/* optim.h - optimizer updates over flat parameter buffers, one pass over memory. */
#ifndef AG_OPTIM_H
#define AG_OPTIM_H

#include <stdint.h>

/* Hyperparameters of one SGD step, PyTorch's torch.optim.SGD. */
typedef struct AgSgd {
    float lr, momentum, weight_decay;
    float damp; /* 1 - dampening (rounded once from double, as optim.lua's add_ did) */
    int nesterov;
    int first; /* 1 at the first step with momentum: buf = g, not momentum * buf + ... */
} AgSgd;

/* One SGD step, fused: g = grad + wd * p; buf = momentum * buf + damp * g
 * (buf = g when o->first); g = nesterov ? g + momentum * buf : buf; p = p - lr * g.
 * Each line rounds to float as the tensor ops it replaces did (mul, then add), so a run is
 * the same bit for bit as with those ops. Terms with a zero factor are not evaluated
 * (weight decay 0 keeps an infinite p out of g).
 *   p:    (n) acc (updated in place)
 *   buf:  (n) acc, the momentum buffer (unused, may be NULL, when o->momentum == 0)
 *   grad: (n) */
void ag_sgd_step(float *p, float *buf, const float *grad, int64_t n, const AgSgd *o);

#endif
