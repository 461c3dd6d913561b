/* pool.c - pooling, forward and backward; OpenMP over (batch, channel) planes. */
#include "pool.h"

#include <limits.h>
#include <string.h>

int ag_pool2d_shape(AgPoolShape *s, const int64_t xsize[4], int k, int stride, int pad,
                    const char *fname, AgError *err) {
    for (int i = 0; i < 4; i++)
        if (xsize[i] <= 0 || xsize[i] > INT_MAX)
            return ag_fail(err, "%s: input %lldx%lldx%lldx%lld has an empty or huge size",
                           fname, (long long)xsize[0], (long long)xsize[1], (long long)xsize[2],
                           (long long)xsize[3]);
    if (k < 1) return ag_fail(err, "%s: kernel size must be >= 1, got %d", fname, k);
    if (stride < 1) return ag_fail(err, "%s: stride must be >= 1, got %d", fname, stride);
    if (pad < 0 || pad > k / 2)
        return ag_fail(err, "%s: padding must be in [0, kernel/2] = [0, %d], got %d", fname,
                       k / 2, pad);
    s->b = (int)xsize[0];
    s->c = (int)xsize[1];
    s->h = (int)xsize[2];
    s->w = (int)xsize[3];
    s->k = k;
    s->stride = stride;
    s->pad = pad;
    if ((int64_t)s->h + 2 * pad < k || (int64_t)s->w + 2 * pad < k)
        return ag_fail(err, "%s: input %dx%d with padding %d is smaller than kernel %d", fname,
                       s->h, s->w, pad, k);
    if ((int64_t)s->h * s->w > ((int64_t)1 << 24))
        return ag_fail(err, "%s: input plane %dx%d is larger than 2^24 pixels", fname, s->h,
                       s->w);
    if ((int64_t)s->b * s->c > ((int64_t)1 << 40) / ((int64_t)s->h * s->w))
        return ag_fail(err, "%s: input %dx%dx%dx%d is too large", fname, s->b, s->c, s->h,
                       s->w);
    s->ho = (s->h + 2 * pad - k) / stride + 1;
    s->wo = (s->w + 2 * pad - k) / stride + 1;
    return 0;
}

static int check_shape(const AgPoolShape *s, const char *fname, AgError *err) {
    if (s->b < 1 || s->c < 1 || s->h < 1 || s->w < 1 || s->k < 1 || s->stride < 1 ||
        s->pad < 0 || s->pad > s->k / 2 ||
        s->ho != (s->h + 2 * s->pad - s->k) / s->stride + 1 ||
        s->wo != (s->w + 2 * s->pad - s->k) / s->stride + 1 || s->ho < 1 || s->wo < 1)
        return ag_fail(err, "%s: inconsistent pooling shape (use ag_pool2d_shape)", fname);
    return 0;
}

int ag_maxpool2d_forward(float *y, float *idx, const float *x, const AgPoolShape *s,
                         AgError *err) {
    if (check_shape(s, "maxpool2d", err)) return -1;
    const int64_t planes = (int64_t)s->b * s->c, hw = (int64_t)s->h * s->w;
    const int64_t ohw = (int64_t)s->ho * s->wo;
    if (s->k == 2 && s->stride == 2 && s->pad == 0) { /* VGG's pool: a straight-line body */
        const int W = s->w, WO = s->wo;
#pragma omp parallel for schedule(static)
        for (int64_t pl = 0; pl < planes; pl++) {
            const float *xp = x + pl * hw;
            float *yp = y + pl * ohw, *ip = idx + pl * ohw;
            for (int oh = 0; oh < s->ho; oh++) {
                const float *r0 = xp + 2 * oh * W, *r1 = r0 + W;
                for (int ow = 0; ow < WO; ow++) {
                    int j = 2 * ow;
                    float m = r0[j];
                    int best = 2 * oh * W + j;
                    float v = r0[j + 1];
                    int t = (v > m) | ((v != v) & (m == m));
                    m = t ? v : m, best = t ? best + 1 : best;
                    v = r1[j];
                    t = (v > m) | ((v != v) & (m == m));
                    m = t ? v : m, best = t ? (2 * oh + 1) * W + j : best;
                    v = r1[j + 1];
                    t = (v > m) | ((v != v) & (m == m));
                    m = t ? v : m, best = t ? (2 * oh + 1) * W + j + 1 : best;
                    yp[oh * WO + ow] = m;
                    ip[oh * WO + ow] = (float)best;
                }
            }
        }
        return 0;
    }
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw;
        float *yp = y + pl * ohw, *ip = idx + pl * ohw;
        for (int oh = 0; oh < s->ho; oh++) {
            int h0 = oh * s->stride - s->pad, h1 = h0 + s->k;
            if (h0 < 0) h0 = 0;
            if (h1 > s->h) h1 = s->h;
            for (int ow = 0; ow < s->wo; ow++) {
                int w0 = ow * s->stride - s->pad, w1 = w0 + s->k;
                if (w0 < 0) w0 = 0;
                if (w1 > s->w) w1 = s->w;
                int best = h0 * s->w + w0;
                float m = xp[best];
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        /* selects, not branches: on real activations a branch here
                         * mispredicts often (measured 2x slower) */
                        float v = xp[ih * s->w + iw];
                        int take = (v > m) | ((v != v) & (m == m));
                        m = take ? v : m;
                        best = take ? ih * s->w + iw : best;
                    }
                yp[oh * s->wo + ow] = m;
                ip[oh * s->wo + ow] = (float)best;
            }
        }
    }
    return 0;
}

int ag_maxpool2d_backward(float *dx, const float *idx, const float *dy, int64_t nplanes, int h,
                          int w, int ho, int wo, AgError *err) {
    if (nplanes < 1 || h < 1 || w < 1 || ho < 1 || wo < 1 ||
        (int64_t)h * w > ((int64_t)1 << 24))
        return ag_fail(err, "maxpool2d_backward: bad sizes (%lld planes of %dx%d -> %dx%d)",
                       (long long)nplanes, h, w, ho, wo);
    const int64_t planes = nplanes, hw = (int64_t)h * w, ohw = (int64_t)ho * wo;
    int64_t bad = INT64_MAX; /* the first bad position, whatever the thread count */
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * hw;
        const float *gp = dy + pl * ohw, *ip = idx + pl * ohw;
        memset(dp, 0, sizeof(float) * (size_t)hw);
        for (int64_t j = 0; j < ohw; j++) {
            float f = ip[j];
            if (f >= 0.0f && f < (float)hw && f == (float)(int64_t)f)
                dp[(int64_t)f] += gp[j];
            else if (pl * ohw + j < bad)
                bad = pl * ohw + j;
        }
    }
    if (bad != INT64_MAX)
        return ag_fail(err,
                       "maxpool2d_backward: index %g at position %lld is not a pixel of a "
                       "%dx%d plane",
                       (double)idx[bad], (long long)bad + 1, h, w);
    return 0;
}

int ag_avgpool2d_forward(float *y, const float *x, const AgPoolShape *s, AgError *err) {
    if (check_shape(s, "avgpool2d", err)) return -1;
    const int64_t planes = (int64_t)s->b * s->c, hw = (int64_t)s->h * s->w;
    const int64_t ohw = (int64_t)s->ho * s->wo;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw;
        float *yp = y + pl * ohw;
        for (int oh = 0; oh < s->ho; oh++) {
            int h0 = oh * s->stride - s->pad, h1 = h0 + s->k;
            if (h1 > s->h + s->pad) h1 = s->h + s->pad;
            int dh = h1 - h0;
            if (h0 < 0) h0 = 0;
            if (h1 > s->h) h1 = s->h;
            for (int ow = 0; ow < s->wo; ow++) {
                int w0 = ow * s->stride - s->pad, w1 = w0 + s->k;
                if (w1 > s->w + s->pad) w1 = s->w + s->pad;
                int count = dh * (w1 - w0);
                if (w0 < 0) w0 = 0;
                if (w1 > s->w) w1 = s->w;
                float acc = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) acc += xp[ih * s->w + iw];
                yp[oh * s->wo + ow] = acc / (float)count;
            }
        }
    }
    return 0;
}

int ag_avgpool2d_backward(float *dx, const float *dy, const AgPoolShape *s, AgError *err) {
    if (check_shape(s, "avgpool2d_backward", err)) return -1;
    const int64_t planes = (int64_t)s->b * s->c, hw = (int64_t)s->h * s->w;
    const int64_t ohw = (int64_t)s->ho * s->wo;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * hw;
        const float *gp = dy + pl * ohw;
        memset(dp, 0, sizeof(float) * (size_t)hw);
        for (int oh = 0; oh < s->ho; oh++) {
            int h0 = oh * s->stride - s->pad, h1 = h0 + s->k;
            if (h1 > s->h + s->pad) h1 = s->h + s->pad;
            int dh = h1 - h0;
            if (h0 < 0) h0 = 0;
            if (h1 > s->h) h1 = s->h;
            for (int ow = 0; ow < s->wo; ow++) {
                int w0 = ow * s->stride - s->pad, w1 = w0 + s->k;
                if (w1 > s->w + s->pad) w1 = s->w + s->pad;
                float g = gp[oh * s->wo + ow] / (float)(dh * (w1 - w0));
                if (w0 < 0) w0 = 0;
                if (w1 > s->w) w1 = s->w;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dp[ih * s->w + iw] += g;
            }
        }
    }
    return 0;
}

static int check_adaptive(const char *fname, int64_t nplanes, int h, int w, int oh, int ow,
                          AgError *err) {
    if (nplanes < 1 || h < 1 || w < 1)
        return ag_fail(err, "%s: input planes must be non-empty, got %lld planes of %dx%d",
                       fname, (long long)nplanes, h, w);
    if (oh < 1 || ow < 1)
        return ag_fail(err, "%s: output size must be positive, got %dx%d", fname, oh, ow);
    if ((int64_t)h * w > ((int64_t)1 << 40) / nplanes ||
        (int64_t)oh * ow > ((int64_t)1 << 40) / nplanes)
        return ag_fail(err, "%s: %lld planes of %dx%d -> %dx%d is too large", fname,
                       (long long)nplanes, h, w, oh, ow);
    return 0;
}

/* rows start(i) = floor(i*H/oh) .. end(i) = ceil((i+1)*H/oh) */
static int a_start(int i, int out, int in) {
    return (int)(((int64_t)i * in) / out);
}
static int a_end(int i, int out, int in) {
    return (int)((((int64_t)i + 1) * in + out - 1) / out);
}

int ag_adaptive_avgpool2d_forward(float *y, const float *x, int64_t nplanes, int h, int w,
                                  int oh, int ow, AgError *err) {
    if (check_adaptive("adaptive_avgpool2d", nplanes, h, w, oh, ow, err)) return -1;
    const int64_t hw = (int64_t)h * w, ohw = (int64_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < nplanes; pl++) {
        const float *xp = x + pl * hw;
        float *yp = y + pl * ohw;
        for (int i = 0; i < oh; i++) {
            int h0 = a_start(i, oh, h), h1 = a_end(i, oh, h);
            for (int j = 0; j < ow; j++) {
                int w0 = a_start(j, ow, w), w1 = a_end(j, ow, w);
                double acc = 0.0;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) acc += xp[(int64_t)ih * w + iw];
                yp[(int64_t)i * ow + j] = (float)(acc / ((double)(h1 - h0) * (w1 - w0)));
            }
        }
    }
    return 0;
}

int ag_adaptive_avgpool2d_backward(float *dx, const float *dy, int64_t nplanes, int h, int w,
                                   int oh, int ow, AgError *err) {
    if (check_adaptive("adaptive_avgpool2d_backward", nplanes, h, w, oh, ow, err)) return -1;
    const int64_t hw = (int64_t)h * w, ohw = (int64_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < nplanes; pl++) {
        float *dp = dx + pl * hw;
        const float *gp = dy + pl * ohw;
        memset(dp, 0, sizeof(float) * (size_t)hw);
        for (int i = 0; i < oh; i++) {
            int h0 = a_start(i, oh, h), h1 = a_end(i, oh, h);
            for (int j = 0; j < ow; j++) {
                int w0 = a_start(j, ow, w), w1 = a_end(j, ow, w);
                float g = gp[(int64_t)i * ow + j] / (float)((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dp[(int64_t)ih * w + iw] += g;
            }
        }
    }
    return 0;
}
