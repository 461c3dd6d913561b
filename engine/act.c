/* act.c - relu, softmax, log-softmax, cross-entropy, dropout. */
#include "act.h"

#include <math.h>

/* Branch-free selects (vectorized): on random signs a branch mispredicts half the time,
 * which made these loops 5x slower than the memory traffic they need. !(v <= 0) keeps
 * NaN (every comparison with NaN is false). */
void ag_relu_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = !(v <= 0.0f) ? v : 0.0f;
    }
}

void ag_relu_backward(float *dx, const float *dy, const float *y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float g = dy[i], v = y[i];
        dx[i] = v > 0.0f ? g : 0.0f;
    }
}

static int check_rows(const char *fname, int64_t nb, int64_t nc, AgError *err) {
    if (nb < 0 || nc < 1)
        return ag_fail(err, "%s: needs a (B, C) input with C >= 1, got %lldx%lld", fname,
                       (long long)nb, (long long)nc);
    return 0;
}

/* max of a row and log(sum(exp(x - max))) in double */
static void row_stats(const float *x, int64_t nc, float *mx, double *lse) {
    float m = x[0];
    for (int64_t j = 1; j < nc; j++)
        if (x[j] > m || x[j] != x[j]) m = x[j];
    double s = 0.0;
    for (int64_t j = 0; j < nc; j++) s += exp((double)x[j] - m);
    *mx = m;
    *lse = log(s);
}

int ag_softmax_forward(float *y, const float *x, int64_t nb, int64_t nc, AgError *err) {
    if (check_rows("softmax", nb, nc, err)) return -1;
#pragma omp parallel for schedule(static) if (nb * nc > 65536)
    for (int64_t i = 0; i < nb; i++) {
        const float *xi = x + i * nc;
        float *yi = y + i * nc;
        float m;
        double lse;
        row_stats(xi, nc, &m, &lse);
        for (int64_t j = 0; j < nc; j++) yi[j] = (float)exp((double)xi[j] - m - lse);
    }
    return 0;
}

int ag_log_softmax_forward(float *y, const float *x, int64_t nb, int64_t nc, AgError *err) {
    if (check_rows("log_softmax", nb, nc, err)) return -1;
#pragma omp parallel for schedule(static) if (nb * nc > 65536)
    for (int64_t i = 0; i < nb; i++) {
        const float *xi = x + i * nc;
        float *yi = y + i * nc;
        float m;
        double lse;
        row_stats(xi, nc, &m, &lse);
        for (int64_t j = 0; j < nc; j++) yi[j] = (float)((double)xi[j] - m - lse);
    }
    return 0;
}

int ag_cross_entropy_forward(double *loss, float *dlogits, const float *logits,
                             const float *labels, int64_t nb, int64_t nc, AgError *err) {
    if (check_rows("cross_entropy", nb, nc, err)) return -1;
    if (nb < 1) return ag_fail(err, "cross_entropy: the batch is empty");
    for (int64_t i = 0; i < nb; i++) {
        float l = labels[i];
        if (!(l >= 0.0f && l < (float)nc) || l != floorf(l))
            return ag_fail(err,
                           "cross_entropy: label %g of sample %lld (of %lld) is not a class "
                           "id in 0..%lld",
                           (double)l, (long long)i + 1, (long long)nb, (long long)nc - 1);
    }
    double total = 0.0;
    const double inv_b = 1.0 / (double)nb;
    for (int64_t i = 0; i < nb; i++) {
        const float *xi = logits + i * nc;
        int64_t t = (int64_t)labels[i];
        float m;
        double lse;
        row_stats(xi, nc, &m, &lse);
        total += lse - ((double)xi[t] - m);
        if (dlogits) {
            float *gi = dlogits + i * nc;
            for (int64_t j = 0; j < nc; j++)
                gi[j] = (float)((exp((double)xi[j] - m - lse) - (j == t)) * inv_b);
        }
    }
    *loss = total * inv_b;
    return 0;
}

int ag_dropout_forward(float *y, float *mask, const float *x, int64_t n, double p, AgRng *rng,
                       AgError *err) {
    if (!(p >= 0.0 && p <= 1.0)) return ag_fail(err, "dropout: p must be in [0, 1], got %g", p);
    const float keep = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float m = ag_rng_uniform(rng) >= p ? keep : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
    return 0;
}
