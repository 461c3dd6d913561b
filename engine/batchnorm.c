/* batchnorm.c - BatchNorm2d forward (training and evaluation) and backward.
 * OpenMP over channels; each channel's statistics are sums over B planes in double. */
#include "batchnorm.h"

#include <math.h>

int ag_batchnorm2d_check(int64_t nb, int64_t nc, int64_t hw, int training, double momentum,
                         double eps, AgError *err) {
    if (nb < 1 || nc < 1 || hw < 1)
        return ag_fail(err,
                       "batchnorm2d: sizes must be positive (batch %lld, channels %lld, "
                       "%lld pixels)",
                       (long long)nb, (long long)nc, (long long)hw);
    if (nb > ((int64_t)1 << 40) / nc / hw)
        return ag_fail(err, "batchnorm2d: input is too large");
    if (training && nb * hw < 2)
        return ag_fail(err,
                       "batchnorm2d: training needs more than 1 value per channel, got "
                       "batch %lld of %lld pixel(s)",
                       (long long)nb, (long long)hw);
    if (!(momentum >= 0.0 && momentum <= 1.0))
        return ag_fail(err, "batchnorm2d: momentum must be in [0, 1], got %g", momentum);
    if (!(eps > 0.0) || isinf(eps))
        return ag_fail(err, "batchnorm2d: eps must be positive and finite, got %g", eps);
    return 0;
}

int ag_batchnorm2d_forward(float *y, float *save_mean, float *save_invstd, float *running_mean,
                           float *running_var, const float *x, const float *gamma,
                           const float *beta, int64_t nb, int64_t nc, int64_t hw, int training,
                           double momentum, double eps, AgError *err) {
    if (ag_batchnorm2d_check(nb, nc, hw, training, momentum, eps, err)) return -1;
    if (!training && (!running_mean || !running_var))
        return ag_fail(err, "batchnorm2d: evaluation mode needs running_mean and running_var");
    const int64_t chw = nc * hw, n = nb * hw;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        double mean, invstd;
        if (training) {
            /* shifted sums: exact enough in double even when |mean| >> std */
            const double shift = x[c * hw];
            double s1 = 0.0, s2 = 0.0;
            for (int64_t b = 0; b < nb; b++) {
                const float *xp = x + b * chw + c * hw;
                for (int64_t j = 0; j < hw; j++) {
                    double d = (double)xp[j] - shift;
                    s1 += d;
                    s2 += d * d;
                }
            }
            double dm = s1 / (double)n;
            double var = s2 / (double)n - dm * dm;
            if (var < 0.0) var = 0.0;
            mean = shift + dm;
            invstd = 1.0 / sqrt(var + eps);
            if (running_mean)
                running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            if (running_var)
                running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                                         momentum * var * (double)n / (double)(n - 1));
        } else {
            mean = running_mean[c];
            invstd = 1.0 / sqrt((double)running_var[c] + eps);
        }
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        /* y = ((x - m_hi) - m_lo) * scale + beta: x - m_hi is exact near the mean, so a
         * large mean costs no precision (x * scale + offset would cancel) */
        const double g = gamma ? gamma[c] : 1.0;
        const float scale = (float)(g * invstd), be = beta ? beta[c] : 0.0f;
        const float m_hi = (float)mean, m_lo = (float)(mean - m_hi);
        for (int64_t b = 0; b < nb; b++) {
            const float *xp = x + b * chw + c * hw;
            float *yp = y + b * chw + c * hw;
            for (int64_t j = 0; j < hw; j++) yp[j] = ((xp[j] - m_hi) - m_lo) * scale + be;
        }
    }
    return 0;
}

int ag_batchnorm2d_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                            const float *x, const float *gamma, const float *save_mean,
                            const float *save_invstd, int64_t nb, int64_t nc, int64_t hw,
                            int training, AgError *err) {
    if (ag_batchnorm2d_check(nb, nc, hw, training, 0.0, 1.0, err)) return -1;
    const int64_t chw = nc * hw, n = nb * hw;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        const double g = gamma ? gamma[c] : 1.0;
        double sdy = 0.0, sdyx = 0.0; /* sum(dy), sum(dy * (x - mean)) */
        if (dgamma || dbeta || (dx && training))
            for (int64_t b = 0; b < nb; b++) {
                const float *xp = x + b * chw + c * hw, *gp = dy + b * chw + c * hw;
                for (int64_t j = 0; j < hw; j++) {
                    sdy += gp[j];
                    sdyx += gp[j] * ((double)xp[j] - mean);
                }
            }
        if (dgamma) dgamma[c] += (float)(sdyx * invstd);
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        if (training) {
            /* dx = g*invstd * (dy - sdy/n - (x-mean) * invstd^2 * sdyx/n) */
            const float a = (float)(g * invstd);
            const float k = (float)(invstd * invstd * sdyx / (double)n);
            const float mdy = (float)(sdy / (double)n), mf = (float)mean;
            for (int64_t b = 0; b < nb; b++) {
                const float *xp = x + b * chw + c * hw, *gp = dy + b * chw + c * hw;
                float *dp = dx + b * chw + c * hw;
                for (int64_t j = 0; j < hw; j++) dp[j] = a * (gp[j] - mdy - (xp[j] - mf) * k);
            }
        } else {
            const float a = (float)(g * invstd);
            for (int64_t b = 0; b < nb; b++) {
                const float *gp = dy + b * chw + c * hw;
                float *dp = dx + b * chw + c * hw;
                for (int64_t j = 0; j < hw; j++) dp[j] = gp[j] * a;
            }
        }
    }
    return 0;
}
