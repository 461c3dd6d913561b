/* pool.c - pooling, forward and backward; OpenMP over (batch, channel) planes. */
#include "pool.h"

#include <limits.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The one check of a filled shape (the kernels call it too): a window (k >= 1) or none
 * (k = stride = pad = 0, ag_pool2d_out_shape), sizes in range, an output that follows from
 * the input. */
static int pool2d_check(const AgPoolShape *s, AgError *err) {
    if (s->b < 1 || s->c < 1 || s->h < 1 || s->w < 1)
        return ag_fail(err, "input %dx%dx%dx%d has an empty size", s->b, s->c, s->h, s->w);
    if ((int64_t)s->h * s->w > ((int64_t)1 << 24))
        return ag_fail(err, "input plane %dx%d is larger than 2^24 pixels", s->h, s->w);
    if ((int64_t)s->b * s->c > AG_MAXNUMEL / ((int64_t)s->h * s->w))
        return ag_fail(err, "input %dx%dx%dx%d is too large", s->b, s->c, s->h, s->w);
    if (s->k == 0 && s->stride == 0 && s->pad == 0) { /* no fixed window */
        if (s->ho < 1 || s->wo < 1 || (int64_t)s->ho * s->wo > ((int64_t)1 << 24))
            return ag_fail(err,
                           "output size must be positive and at most 2^24 pixels, got %dx%d",
                           s->ho, s->wo);
        if ((int64_t)s->b * s->c > AG_MAXNUMEL / ((int64_t)s->ho * s->wo))
            return ag_fail(err, "output %dx%dx%dx%d is too large", s->b, s->c, s->ho, s->wo);
        return 0;
    }
    if (s->k < 1) return ag_fail(err, "kernel size must be >= 1, got %d", s->k);
    if (s->stride < 1) return ag_fail(err, "stride must be >= 1, got %d", s->stride);
    if (s->pad < 0 || s->pad > s->k / 2)
        return ag_fail(err, "padding must be in [0, kernel/2] = [0, %d], got %d", s->k / 2,
                       s->pad);
    if ((int64_t)s->h + 2 * s->pad < s->k || (int64_t)s->w + 2 * s->pad < s->k)
        return ag_fail(err, "input %dx%d with padding %d is smaller than kernel %d", s->h, s->w,
                       s->pad, s->k);
    if (s->ho != ((int64_t)s->h + 2 * s->pad - s->k) / s->stride + 1 ||
        s->wo != ((int64_t)s->w + 2 * s->pad - s->k) / s->stride + 1)
        return ag_fail(err,
                       "output size %dx%d does not follow from the input (use "
                       "pool2d_shape)",
                       s->ho, s->wo);
    return 0;
}

/* Fills s's input sizes from xsize, or fails for sizes that do not fit in int. */
static int fill_input(AgPoolShape *s, const int64_t xsize[4], AgError *err) {
    for (int i = 0; i < 4; i++)
        if (xsize[i] <= 0 || xsize[i] > INT_MAX)
            return ag_fail(err, "input %lldx%lldx%lldx%lld has an empty or huge size",
                           (long long)xsize[0], (long long)xsize[1], (long long)xsize[2],
                           (long long)xsize[3]);
    s->b = (int)xsize[0];
    s->c = (int)xsize[1];
    s->h = (int)xsize[2];
    s->w = (int)xsize[3];
    return 0;
}

int ag_pool2d_shape(AgPoolShape *s, const int64_t xsize[4], int k, int stride, int pad,
                    AgError *err) {
    if (fill_input(s, xsize, err)) return -1;
    s->k = k;
    s->stride = stride;
    s->pad = pad;
    s->ho = s->wo = 0;
    if (k >= 1 && stride >= 1 && pad >= 0 && (int64_t)s->h + 2 * (int64_t)pad >= k &&
        (int64_t)s->w + 2 * (int64_t)pad >= k) {
        s->ho = (int)(((int64_t)s->h + 2 * (int64_t)pad - k) / stride + 1);
        s->wo = (int)(((int64_t)s->w + 2 * (int64_t)pad - k) / stride + 1);
    }
    return pool2d_check(s, err);
}

int ag_pool2d_out_shape(AgPoolShape *s, const int64_t xsize[4], int ho, int wo, AgError *err) {
    if (fill_input(s, xsize, err)) return -1;
    s->k = s->stride = s->pad = 0;
    s->ho = ho;
    s->wo = wo;
    return pool2d_check(s, err);
}

#ifdef __SSE2__
/* The 2x2, stride-2 window rule below on 4 outputs at once, selects as bit masks: the
 * scalar loop's float selects compile to branches on baseline x86-64, which mispredict on
 * ReLU outputs (VGG11's first pool at B=64 took 10.8 ms of CPU, 1.4 ms this way, median
 * of 15 on 2 shared cores). Each lane compares in the scalar order, so the maxima, the
 * tie rule and the NaN rule are the same. max2x2_row4 returns the outputs it did. */
static inline void take4(__m128 *m, __m128i *best, __m128 v, __m128i pos) {
    const __m128 nan_v = _mm_cmpunord_ps(v, v), nan_m = _mm_cmpunord_ps(*m, *m);
    const __m128 t = _mm_or_ps(_mm_cmpgt_ps(v, *m), _mm_andnot_ps(nan_m, nan_v));
    const __m128i ti = _mm_castps_si128(t);
    *m = _mm_or_ps(_mm_and_ps(t, v), _mm_andnot_ps(t, *m));
    *best = _mm_or_si128(_mm_and_si128(ti, pos), _mm_andnot_si128(ti, *best));
}

static int max2x2_row4(float *yr, float *ir, const float *r0, const float *r1, int off, int w,
                       int wo) {
    int ow = 0;
    const __m128i step = _mm_setr_epi32(0, 2, 4, 6), one = _mm_set1_epi32(1);
    const __m128i down = _mm_set1_epi32(w);
    for (; ow + 4 <= wo; ow += 4) {
        const int j = 2 * ow;
        const __m128 a0 = _mm_loadu_ps(r0 + j), a1 = _mm_loadu_ps(r0 + j + 4);
        const __m128 b0 = _mm_loadu_ps(r1 + j), b1 = _mm_loadu_ps(r1 + j + 4);
        const __m128i p = _mm_add_epi32(_mm_set1_epi32(off + j), step);
        __m128 m = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128i best = p;
        take4(&m, &best, _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)),
              _mm_add_epi32(p, one));
        take4(&m, &best, _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)),
              _mm_add_epi32(p, down));
        take4(&m, &best, _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)),
              _mm_add_epi32(_mm_add_epi32(p, down), one));
        _mm_storeu_ps(yr + ow, m);
        _mm_storeu_ps(ir + ow, _mm_cvtepi32_ps(best));
    }
    return ow;
}
#endif

int ag_maxpool2d_forward(float *y, float *idx, const float *x, const AgPoolShape *s,
                         AgError *err) {
    if (pool2d_check(s, err)) return -1;
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
                int ow = 0;
#ifdef __SSE2__
                ow = max2x2_row4(yp + oh * WO, ip + oh * WO, r0, r1, 2 * oh * W, W, WO);
#endif
                for (; ow < WO; ow++) {
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

int ag_maxpool2d_backward(float *dx, const float *idx, const float *dy, const AgPoolShape *s,
                          AgError *err) {
    if (pool2d_check(s, err)) return -1;
    const int64_t nplanes = (int64_t)s->b * s->c;
    const int h = s->h, w = s->w, ho = s->ho, wo = s->wo;
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

/* Window o of an average pool along one axis of n pixels: *lo .. *hi clipped to the
 * image; returns the window's length with its padding cells (count_include_pad), the
 * divisor that ag_avgpool2d_forward and ag_avgpool2d_backward share. */
static inline int avg_window(int o, const AgPoolShape *s, int n, int *lo, int *hi) {
    int a = o * s->stride - s->pad, b = a + s->k;
    if (b > n + s->pad) b = n + s->pad;
    int len = b - a;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
    return len;
}

int ag_avgpool2d_forward(float *y, const float *x, const AgPoolShape *s, AgError *err) {
    if (pool2d_check(s, err)) return -1;
    const int64_t planes = (int64_t)s->b * s->c, hw = (int64_t)s->h * s->w;
    const int64_t ohw = (int64_t)s->ho * s->wo;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw;
        float *yp = y + pl * ohw;
        for (int oh = 0; oh < s->ho; oh++) {
            int h0, h1, dh = avg_window(oh, s, s->h, &h0, &h1);
            for (int ow = 0; ow < s->wo; ow++) {
                int w0, w1, count = dh * avg_window(ow, s, s->w, &w0, &w1);
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
    if (pool2d_check(s, err)) return -1;
    const int64_t planes = (int64_t)s->b * s->c, hw = (int64_t)s->h * s->w;
    const int64_t ohw = (int64_t)s->ho * s->wo;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * hw;
        const float *gp = dy + pl * ohw;
        memset(dp, 0, sizeof(float) * (size_t)hw);
        for (int oh = 0; oh < s->ho; oh++) {
            int h0, h1, dh = avg_window(oh, s, s->h, &h0, &h1);
            for (int ow = 0; ow < s->wo; ow++) {
                int w0, w1, count = dh * avg_window(ow, s, s->w, &w0, &w1);
                float g = gp[oh * s->wo + ow] / (float)count;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dp[ih * s->w + iw] += g;
            }
        }
    }
    return 0;
}

/* rows start(i) = floor(i*H/oh) .. end(i) = ceil((i+1)*H/oh) */
static int a_start(int i, int out, int in) {
    return (int)(((int64_t)i * in) / out);
}
static int a_end(int i, int out, int in) {
    return (int)((((int64_t)i + 1) * in + out - 1) / out);
}

int ag_adaptive_avgpool2d_forward(float *y, const float *x, const AgPoolShape *s,
                                  AgError *err) {
    if (pool2d_check(s, err)) return -1;
    const int64_t nplanes = (int64_t)s->b * s->c;
    const int h = s->h, w = s->w, oh = s->ho, ow = s->wo;
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

int ag_adaptive_avgpool2d_backward(float *dx, const float *dy, const AgPoolShape *s,
                                   AgError *err) {
    if (pool2d_check(s, err)) return -1;
    const int64_t nplanes = (int64_t)s->b * s->c;
    const int h = s->h, w = s->w, oh = s->ho, ow = s->wo;
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
