/* optim.c - optimizer updates (see optim.h). */
#include "optim.h"

/* Below this many parameters one thread does it (thread start-up costs more). */
#define PAR_MIN 32768

/* The loop body for one combination of flags; the compiler drops the dead branches of
 * each instantiation, and the loop stays vectorizable. */
static inline void sgd_range(float *p, float *buf, const float *grad, int64_t n, const AgSgd *o,
                             int wd, int mom, int first, int nest) {
    const float lr = -o->lr, m = o->momentum, damp = o->damp;
    const float decay = o->weight_decay;
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd) g = g + decay * p[i];
        if (mom) {
            /* as mul_ then add_: the + 0.0f is mul_'s (x * m + 0), which turns -0 to +0 */
            float b = first ? g : (buf[i] * m + 0.0f) + damp * g;
            buf[i] = b;
            g = nest ? g + m * b : b;
        }
        p[i] = p[i] + lr * g;
    }
}

void ag_sgd_step(float *p, float *buf, const float *grad, int64_t n, const AgSgd *o) {
    const int wd = o->weight_decay != 0.0f, mom = o->momentum != 0.0f;
    const int first = mom && o->first, nest = mom && o->nesterov;
    /* the common cases get their own instantiation; the rest share a general one */
    if (!wd && mom && !first && !nest)
        sgd_range(p, buf, grad, n, o, 0, 1, 0, 0);
    else if (wd && mom && !first && !nest)
        sgd_range(p, buf, grad, n, o, 1, 1, 0, 0);
    else if (!wd && !mom)
        sgd_range(p, buf, grad, n, o, 0, 0, 0, 0);
    else
        sgd_range(p, buf, grad, n, o, wd, mom, first, nest);
}
