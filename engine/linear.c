/* linear.c - y = x w^T + b and its backward, each one cblas_sgemm. */
#include "linear.h"

#include <cblas.h>
#include <limits.h>
#include <stdint.h>

int ag_linear_check(int b, int in, int out, AgError *err) {
    if (b < 1 || in < 1 || out < 1)
        return ag_fail(err, "linear: sizes must be positive (batch %d, in %d, out %d)", b, in,
                       out);
    if ((int64_t)b * in > ((int64_t)1 << 40) || (int64_t)b * out > ((int64_t)1 << 40) ||
        (int64_t)in * out > ((int64_t)1 << 40))
        return ag_fail(err, "linear: batch %d, in %d, out %d is too large", b, in, out);
    return 0;
}

int ag_linear_forward(float *y, const float *x, const float *w, const float *b, int nb, int in,
                      int out, AgError *err) {
    if (ag_linear_check(nb, in, out, err)) return -1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, out, in, 1.0f, x, in, w, in, 0.0f,
                y, out);
    if (b) {
#pragma omp parallel for schedule(static) if ((int64_t)nb * out > 65536)
        for (int i = 0; i < nb; i++)
            for (int o = 0; o < out; o++) y[(int64_t)i * out + o] += b[o];
    }
    return 0;
}

int ag_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int nb, int in, int out, AgError *err) {
    if (ag_linear_check(nb, in, out, err)) return -1;
    if (db) {
#pragma omp parallel for schedule(static) if ((int64_t)nb * out > 65536)
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int i = 0; i < nb; i++) acc += dy[(int64_t)i * out + o];
            db[o] += (float)acc;
        }
    }
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, nb, 1.0f, dy, out, x, in,
                    1.0f, dw, in);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, in, out, 1.0f, dy, out, w,
                    in, 0.0f, dx, in);
    return 0;
}
