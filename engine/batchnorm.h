/* batchnorm.h - 2-D batch normalization (PyTorch's BatchNorm2d) on contiguous NCHW. */
#ifndef AG_BATCHNORM_H
#define AG_BATCHNORM_H

#include "ag.h"

#include <stdint.h>

/* Checks sizes, momentum in [0, 1] and eps > 0; training needs more than one value per
 * channel (B*H*W > 1), as PyTorch. */
int ag_batchnorm2d_check(int64_t nb, int64_t nc, int64_t hw, int training, double momentum,
                         double eps, AgError *err);

/* Training: per-channel mean and biased variance of x over (B, H, W), in double;
 * y = (x - mean) * invstd * gamma + beta with invstd = 1/sqrt(var + eps);
 * running_mean = (1 - momentum) * running_mean + momentum * mean, and running_var the
 * same with the unbiased variance (var * n/(n-1)). save_mean/save_invstd get mean and
 * invstd.
 * Evaluation: mean = running_mean, invstd = 1/sqrt(running_var + eps); the running
 * averages are read only; save_mean/save_invstd get those.
 *   y:                      (B, C, H, W) out (may alias x)
 *   save_mean, save_invstd: (C) out
 *   running_mean, running_var: (C) in/out (may be NULL in training: not updated)
 *   x:                      (B, C, H, W)
 *   gamma, beta:            (C) or NULL (1 and 0) */
int ag_batchnorm2d_forward(float *y, float *save_mean, float *save_invstd, float *running_mean,
                           float *running_var, const float *x, const float *gamma,
                           const float *beta, int64_t nb, int64_t nc, int64_t hw, int training,
                           double momentum, double eps, AgError *err);

/* dx (overwritten), dgamma += sum(dy * xhat), dbeta += sum(dy) (sums in double), with
 * xhat = (x - save_mean) * save_invstd. Training differentiates through the batch
 * statistics: dx = gamma*invstd/n * (n*dy - sum(dy) - xhat*sum(dy*xhat)); evaluation
 * treats them as constants: dx = dy * gamma * invstd. dx, dgamma, dbeta may be NULL.
 *   dx:                     (B, C, H, W) out (may alias dy)
 *   dgamma, dbeta:          (C) acc
 *   dy, x:                  (B, C, H, W)
 *   gamma:                  (C) or NULL (1)
 *   save_mean, save_invstd: (C), from ag_batchnorm2d_forward */
int ag_batchnorm2d_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                            const float *x, const float *gamma, const float *save_mean,
                            const float *save_invstd, int64_t nb, int64_t nc, int64_t hw,
                            int training, AgError *err);

#endif
