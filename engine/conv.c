/* conv.c - conv2d forward and backward: im2col/col2im (memory-bound, OpenMP over
 * (batch, channel) planes) around cblas_sgemm (all the arithmetic).
 *
 * Layout of the scratch: cols (D, N) then tmp (Co, N), with D = Ci*K*K, N = B*Ho*Wo,
 * P = Ho*Wo. cols holds image b's columns at cols[:, b*P .. b*P+P), so the same buffer
 * feeds either one GEMM over the whole batch (output (Co, N), then permuted into
 * (B, Co, P)) or one GEMM per image (columns read in place with leading dimension N,
 * output written straight into y). Small images take the first road: a per-image GEMM
 * with P = 4 columns runs several times slower than one with B*P. Very large batches go
 * in chunks of images (see chunk_images). */
#include "conv.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Images with at least this many output pixels get one GEMM each (no permute). */
#ifndef CONV_PER_IMAGE_MIN
#define CONV_PER_IMAGE_MIN 1024
#endif

int ag_conv2d_shape(AgConvShape *s, const int64_t xsize[4], const int64_t wsize[4], int stride,
                    int pad, AgError *err) {
    for (int i = 0; i < 4; i++) {
        if (xsize[i] <= 0 || xsize[i] > INT_MAX)
            return ag_fail(err, "conv2d: input %lldx%lldx%lldx%lld has an empty or huge size",
                           (long long)xsize[0], (long long)xsize[1], (long long)xsize[2],
                           (long long)xsize[3]);
        if (wsize[i] <= 0 || wsize[i] > INT_MAX)
            return ag_fail(err, "conv2d: weight %lldx%lldx%lldx%lld has an empty or huge size",
                           (long long)wsize[0], (long long)wsize[1], (long long)wsize[2],
                           (long long)wsize[3]);
    }
    if (xsize[1] != wsize[1])
        return ag_fail(err, "conv2d: input has %lld channels, weight expects %lld",
                       (long long)xsize[1], (long long)wsize[1]);
    if (wsize[2] != wsize[3])
        return ag_fail(err, "conv2d: kernel %lldx%lld is not square", (long long)wsize[2],
                       (long long)wsize[3]);
    s->b = (int)xsize[0];
    s->ci = (int)xsize[1];
    s->h = (int)xsize[2];
    s->w = (int)xsize[3];
    s->co = (int)wsize[0];
    s->k = (int)wsize[2];
    s->stride = stride;
    s->pad = pad;
    s->ho = s->wo = 0;
    s->chunk = 0;
    if (stride < 1) return ag_fail(err, "conv2d: stride must be >= 1, got %d", stride);
    if (pad < 0) return ag_fail(err, "conv2d: padding must be >= 0, got %d", pad);
    if ((int64_t)s->h + 2 * (int64_t)pad < s->k || (int64_t)s->w + 2 * (int64_t)pad < s->k)
        return ag_fail(err, "conv2d: input %dx%d with padding %d is smaller than kernel %d",
                       s->h, s->w, pad, s->k);
    s->ho = (int)(((int64_t)s->h + 2 * (int64_t)pad - s->k) / stride + 1);
    s->wo = (int)(((int64_t)s->w + 2 * (int64_t)pad - s->k) / stride + 1);
    return ag_conv2d_check(s, err);
}

int ag_conv2d_check(const AgConvShape *s, AgError *err) {
    if (s->b < 1 || s->ci < 1 || s->h < 1 || s->w < 1 || s->co < 1 || s->k < 1)
        return ag_fail(err,
                       "conv2d: sizes must be positive (input %dx%dx%dx%d, weight "
                       "%dx%dx%dx%d)",
                       s->b, s->ci, s->h, s->w, s->co, s->ci, s->k, s->k);
    if (s->stride < 1) return ag_fail(err, "conv2d: stride must be >= 1, got %d", s->stride);
    if (s->chunk < 0) return ag_fail(err, "conv2d: chunk must be >= 0, got %d", s->chunk);
    if (s->pad < 0) return ag_fail(err, "conv2d: padding must be >= 0, got %d", s->pad);
    if ((int64_t)s->h + 2 * (int64_t)s->pad < s->k ||
        (int64_t)s->w + 2 * (int64_t)s->pad < s->k)
        return ag_fail(err, "conv2d: input %dx%d with padding %d is smaller than kernel %d",
                       s->h, s->w, s->pad, s->k);
    if (s->ho != ((int64_t)s->h + 2 * (int64_t)s->pad - s->k) / s->stride + 1 ||
        s->wo != ((int64_t)s->w + 2 * (int64_t)s->pad - s->k) / s->stride + 1)
        return ag_fail(err, "conv2d: output size %dx%d does not follow from the input", s->ho,
                       s->wo);
    int64_t d, n, t;
    if (ag_mul_size((int64_t)s->ci * s->k, s->k, &d) || d > INT_MAX ||
        ag_mul_size((int64_t)s->ho * s->wo, s->b, &n) || n > INT_MAX ||
        ag_mul_size(d + s->co, n, &t) || t > ((int64_t)1 << 40) ||
        (int64_t)s->b * s->ci * s->h * s->w > ((int64_t)1 << 40) ||
        (int64_t)s->b * s->co * s->ho * s->wo > ((int64_t)1 << 40))
        return ag_fail(err,
                       "conv2d: input %dx%dx%dx%d with kernel %d is too large for the engine",
                       s->b, s->ci, s->h, s->w, s->k);
    return 0;
}

/* A batch whose columns would pass CONV_CHUNK_BYTES goes through in chunks of images,
 * which bounds the scratch (a batch of 256 224x224 RGB images would need 1.4 GB of
 * columns in its first layer alone). Below that the whole batch is one GEMM: measured on
 * the VGG11 stack (batch 64, columns up to 38 MB), cache-sized chunks were no faster. A
 * chunk keeps at least CONV_CHUNK_MIN_N columns so that its GEMM stays efficient; chunks
 * are balanced. */
#ifndef CONV_CHUNK_BYTES
#define CONV_CHUNK_BYTES ((int64_t)64 << 20)
#endif
#define CONV_CHUNK_MIN_N 1024

static int chunk_images(const AgConvShape *s) {
    if (s->chunk > 0) return s->chunk < s->b ? s->chunk : s->b;
    const int64_t p = (int64_t)s->ho * s->wo, d = (int64_t)s->ci * s->k * s->k;
    int64_t ipc = CONV_CHUNK_BYTES / (d * p * (int64_t)sizeof(float));
    if (ipc * p < CONV_CHUNK_MIN_N) ipc = (CONV_CHUNK_MIN_N + p - 1) / p;
    if (ipc < 1) ipc = 1;
    if (ipc >= s->b) return s->b;
    int64_t chunks = (s->b + ipc - 1) / ipc;
    return (int)((s->b + chunks - 1) / chunks);
}

int64_t ag_conv2d_scratch_size(const AgConvShape *s) {
    int64_t n = (int64_t)chunk_images(s) * s->ho * s->wo;
    return ((int64_t)s->ci * s->k * s->k + s->co) * n;
}

/* The range [*lo, *hi) of output columns ow whose input column ow*S - P + kw is inside
 * [0, W). */
static void valid_range(int kw, const AgConvShape *s, int *lo, int *hi) {
    int first = s->pad - kw; /* ow*S >= first */
    int l = first <= 0 ? 0 : (first + s->stride - 1) / s->stride;
    int last = s->w - 1 + s->pad - kw; /* ow*S <= last */
    int h = last < 0 ? 0 : last / s->stride + 1;
    if (h > s->wo) h = s->wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* cols rows (c*K .. c*K+K-1)*K, columns b*P .. b*P+P-1, from plane x[b][c]. */
static void im2col_plane(float *base, int64_t n, const float *xp, const AgConvShape *s) {
    const int k = s->k, st = s->stride, pad = s->pad, wo = s->wo, ho = s->ho;
    for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++) {
            float *dst = base + (int64_t)(kh * k + kw) * n;
            int lo, hi;
            valid_range(kw, s, &lo, &hi);
            for (int oh = 0; oh < ho; oh++) {
                float *d = dst + (int64_t)oh * wo;
                int ih = oh * st - pad + kh;
                if (ih < 0 || ih >= s->h) {
                    memset(d, 0, sizeof(float) * (size_t)wo);
                    continue;
                }
                const float *src = xp + (int64_t)ih * s->w - pad + kw;
                for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                if (st == 1)
                    memcpy(d + lo, src + lo, sizeof(float) * (size_t)(hi - lo));
                else
                    for (int ow = lo; ow < hi; ow++) d[ow] = src[(int64_t)ow * st];
                for (int ow = hi; ow < wo; ow++) d[ow] = 0.0f;
            }
        }
}

/* plane dx[b][c] = sum over its cols entries (the adjoint of im2col_plane). */
static void col2im_plane(float *dxp, const float *base, int64_t n, const AgConvShape *s) {
    const int k = s->k, st = s->stride, pad = s->pad, wo = s->wo, ho = s->ho;
    memset(dxp, 0, sizeof(float) * (size_t)s->h * (size_t)s->w);
    for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++) {
            const float *src = base + (int64_t)(kh * k + kw) * n;
            int lo, hi;
            valid_range(kw, s, &lo, &hi);
            for (int oh = 0; oh < ho; oh++) {
                int ih = oh * st - pad + kh;
                if (ih < 0 || ih >= s->h) continue;
                float *d = dxp + (int64_t)ih * s->w - pad + kw;
                const float *r = src + (int64_t)oh * wo;
                if (st == 1)
                    for (int ow = lo; ow < hi; ow++) d[ow] += r[ow];
                else
                    for (int ow = lo; ow < hi; ow++) d[(int64_t)ow * st] += r[ow];
            }
        }
}

/* Small images (up to a few hundred output pixels, as in the late layers of a CNN) go a
 * block of images of one channel at a time: the planes are copied side by side into a
 * zero-padded buffer, then each (kh, kw) row of cols, for the whole block, is one
 * contiguous run gathered through a single map of offsets into that buffer. Row-by-row
 * copies of 2..16 floats would be all loop overhead, and walking the batch row by row
 * would hop between planes Ci*H*W floats apart (a power of two: the same cache sets). */
#define SMALL_PLANE 4096 /* floats of padded planes per block, and ints per map */

/* cols is written once and read once by the GEMM, long after: non-temporal stores skip
 * reading each line in before writing it (half the memory traffic of im2col). */
static inline void store_nt(float *d, float v) {
#ifdef __SSE2__
    int i;
    memcpy(&i, &v, sizeof i);
    _mm_stream_si32((int *)d, i);
#else
    *d = v;
#endif
}

static inline void store_fence(void) {
#ifdef __SSE2__
    _mm_sfence(); /* make the non-temporal stores visible before the region ends */
#endif
}

/* Stride 1: the run of one (kh, kw) row of cols over a block of images is, image by
 * image and row by row, `w` contiguous floats of the padded planes. Written for a
 * constant w the copies become a few vector moves; written as non-temporal 8-byte
 * stores when dst allows. */
static inline __attribute__((always_inline)) void
gather_rows_w(float *dst, const float *src, int nimg, int ho, int pp, int wp, int w, int nt) {
    for (int b = 0; b < nimg; b++, src += pp)
        for (int oh = 0; oh < ho; oh++, dst += w) {
            const float *r = src + oh * wp;
#if defined(__SSE2__) && defined(__x86_64__)
            if (nt) {
                for (int i = 0; i < w; i += 2) {
                    long long v;
                    memcpy(&v, r + i, sizeof v);
                    _mm_stream_si64((long long *)(dst + i), v);
                }
                continue;
            }
#endif
            for (int i = 0; i < w; i++) dst[i] = r[i];
        }
}

static void gather_rows(float *dst, const float *src, int nimg, int ho, int pp, int wp, int w) {
    /* 8-byte non-temporal stores need even offsets from an 8-byte aligned base */
    const int nt = w % 2 == 0 && (uintptr_t)dst % 8 == 0;
    switch (w) {
    case 2:
        gather_rows_w(dst, src, nimg, ho, pp, wp, 2, nt);
        break;
    case 4:
        gather_rows_w(dst, src, nimg, ho, pp, wp, 4, nt);
        break;
    case 8:
        gather_rows_w(dst, src, nimg, ho, pp, wp, 8, nt);
        break;
    case 16:
        gather_rows_w(dst, src, nimg, ho, pp, wp, 16, nt);
        break;
    default:
        gather_rows_w(dst, src, nimg, ho, pp, wp, w, nt);
    }
}

/* The adjoint: the padded planes += the run, row by row. */
static inline __attribute__((always_inline)) void
scatter_rows_w(float *dst, const float *src, int nimg, int ho, int pp, int wp, int w) {
    for (int b = 0; b < nimg; b++, dst += pp)
        for (int oh = 0; oh < ho; oh++, src += w) {
            float *r = dst + oh * wp;
            for (int i = 0; i < w; i++) r[i] += src[i];
        }
}

static void scatter_rows(float *dst, const float *src, int nimg, int ho, int pp, int wp,
                         int w) {
    switch (w) {
    case 2:
        scatter_rows_w(dst, src, nimg, ho, pp, wp, 2);
        break;
    case 4:
        scatter_rows_w(dst, src, nimg, ho, pp, wp, 4);
        break;
    case 8:
        scatter_rows_w(dst, src, nimg, ho, pp, wp, 8);
        break;
    case 16:
        scatter_rows_w(dst, src, nimg, ho, pp, wp, 16);
        break;
    default:
        scatter_rows_w(dst, src, nimg, ho, pp, wp, w);
    }
}

static int small_images(const AgConvShape *s) {
    int64_t p = (int64_t)s->ho * s->wo;
    return p <= 256 &&
           ((int64_t)s->h + 2 * s->pad) * ((int64_t)s->w + 2 * s->pad) <= SMALL_PLANE;
}

typedef struct SmallPlan {
    int wp, pp;             /* padded row length and plane size */
    int blk;                /* images per block */
    int base[SMALL_PLANE];  /* (b, oh, ow) in a block -> its (kh, kw) = (0, 0) input cell */
    int inner[SMALL_PLANE]; /* (ih, iw) -> its cell in a padded plane */
} SmallPlan;

static void small_plan(SmallPlan *sp, const AgConvShape *s) {
    const int wp = s->w + 2 * s->pad, pp = (s->h + 2 * s->pad) * wp;
    sp->wp = wp;
    sp->pp = pp;
    sp->blk = SMALL_PLANE / pp < s->b ? SMALL_PLANE / pp : s->b;
    for (int b = 0, t = 0; b < sp->blk; b++)
        for (int oh = 0; oh < s->ho; oh++)
            for (int ow = 0; ow < s->wo; ow++, t++)
                sp->base[t] = b * pp + oh * s->stride * wp + ow * s->stride;
    for (int ih = 0, t = 0; ih < s->h; ih++)
        for (int iw = 0; iw < s->w; iw++, t++) sp->inner[t] = (ih + s->pad) * wp + s->pad + iw;
}

/* The work-sharing halves of im2col and col2im: orphaned `omp for` loops that split
 * their work among the threads of an enclosing parallel region (or run serially outside
 * one), so that a caller can put several of them in one region. */
static void im2col_for(float *cols, const float *x, const AgConvShape *s) {
    const int64_t p = (int64_t)s->ho * s->wo, n = p * s->b, kk = (int64_t)s->k * s->k;
    const int64_t hw = (int64_t)s->h * s->w;
    const int nb = s->b, nc = s->ci;
    if (small_images(s)) {
        SmallPlan sp;
        float pad[SMALL_PLANE];
        small_plan(&sp, s);
        const int blk = sp.blk, nblk = (nb + blk - 1) / blk;
        memset(pad, 0, sizeof(float) * (size_t)(blk * sp.pp)); /* borders stay 0 */
#pragma omp for collapse(2) schedule(static)
        for (int c = 0; c < nc; c++)
            for (int q = 0; q < nblk; q++) {
                const int b0 = q * blk, b1 = b0 + blk < nb ? b0 + blk : nb;
                const int run = (b1 - b0) * (int)p;
                for (int b = b0; b < b1; b++) {
                    const float *xp = x + ((int64_t)b * nc + c) * hw;
                    float *pb = pad + (b - b0) * sp.pp;
                    for (int t = 0; t < hw; t++) pb[sp.inner[t]] = xp[t];
                }
                for (int r = 0; r < kk; r++) {
                    float *dst = cols + (c * kk + r) * n + (int64_t)b0 * p;
                    const float *src = pad + (r / s->k) * sp.wp + r % s->k;
                    if (s->stride == 1)
                        gather_rows(dst, src, b1 - b0, s->ho, sp.pp, sp.wp, s->wo);
                    else
                        for (int t = 0; t < run; t++) store_nt(dst + t, src[sp.base[t]]);
                }
            }
        store_fence();
        return;
    }
#pragma omp for collapse(2) schedule(static)
    for (int c = 0; c < nc; c++)
        for (int b = 0; b < nb; b++)
            im2col_plane(cols + c * kk * n + b * p, n, x + ((int64_t)b * nc + c) * hw, s);
}

static void col2im_for(float *dx, const float *cols, const AgConvShape *s) {
    const int64_t p = (int64_t)s->ho * s->wo, n = p * s->b, kk = (int64_t)s->k * s->k;
    const int64_t hw = (int64_t)s->h * s->w;
    const int nb = s->b, nc = s->ci;
    if (small_images(s)) {
        SmallPlan sp;
        float pad[SMALL_PLANE];
        small_plan(&sp, s);
        const int blk = sp.blk, nblk = (nb + blk - 1) / blk;
#pragma omp for collapse(2) schedule(static)
        for (int c = 0; c < nc; c++)
            for (int q = 0; q < nblk; q++) {
                const int b0 = q * blk, b1 = b0 + blk < nb ? b0 + blk : nb;
                const int run = (b1 - b0) * (int)p;
                memset(pad, 0, sizeof(float) * (size_t)((b1 - b0) * sp.pp));
                /* for a fixed (kh, kw) the cells of a run are distinct: no conflicts */
                for (int r = 0; r < kk; r++) {
                    const float *src = cols + (c * kk + r) * n + (int64_t)b0 * p;
                    float *dst = pad + (r / s->k) * sp.wp + r % s->k;
                    if (s->stride == 1)
                        scatter_rows(dst, src, b1 - b0, s->ho, sp.pp, sp.wp, s->wo);
                    else
                        for (int t = 0; t < run; t++) dst[sp.base[t]] += src[t];
                }
                for (int b = b0; b < b1; b++) {
                    float *dp = dx + ((int64_t)b * nc + c) * hw;
                    const float *pb = pad + (b - b0) * sp.pp;
                    for (int t = 0; t < hw; t++) dp[t] = pb[sp.inner[t]];
                }
            }
        return;
    }
#pragma omp for collapse(2) schedule(static)
    for (int c = 0; c < nc; c++)
        for (int b = 0; b < nb; b++)
            col2im_plane(dx + ((int64_t)b * nc + c) * hw, cols + c * kk * n + b * p, n, s);
}

void ag_conv2d_im2col(float *cols, const float *x, const AgConvShape *s) {
#pragma omp parallel
    im2col_for(cols, x, s);
}

void ag_conv2d_col2im(float *dx, const float *cols, const AgConvShape *s) {
#pragma omp parallel
    col2im_for(dx, cols, s);
}

/* A 1x1, stride-1, unpadded conv reads its columns straight from x (image b's columns
 * are x[b], (Ci, P) with leading dimension P), when it runs per image. */
static int is_pointwise(const AgConvShape *s) {
    return s->k == 1 && s->stride == 1 && s->pad == 0;
}

static int per_image(const AgConvShape *s) {
    return s->b == 1 || (int64_t)s->ho * s->wo >= CONV_PER_IMAGE_MIN;
}

/* ag_conv2d_forward on the images of one chunk (s->b of them) */
static int forward_chunk(float *y, float *scratch, const float *x, const float *w,
                         const float *b, const AgConvShape *s, AgError *err) {
    const int nb = s->b, co = s->co, d = s->ci * s->k * s->k;
    const int p = s->ho * s->wo, n = p * nb;
    float *cols = scratch, *tmp = scratch + (int64_t)d * n;
    if (per_image(s)) {
        int direct = is_pointwise(s);
        if (!direct) ag_conv2d_im2col(cols, x, s);
        for (int i = 0; i < nb; i++) {
            if (ag_cancelled(err)) return -1;
            const float *ci = direct ? x + (int64_t)i * d * p : cols + (int64_t)i * p;
            float *yi = y + (int64_t)i * co * p;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, p, d, 1.0f, w, d, ci,
                        direct ? p : n, 0.0f, yi, p);
            if (b) /* while yi is still in cache */
                for (int o = 0; o < co; o++)
                    for (int j = 0; j < p; j++) yi[(int64_t)o * p + j] += b[o];
        }
        return 0;
    }
    ag_conv2d_im2col(cols, x, s);
    if (ag_cancelled(err)) return -1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, n, d, 1.0f, w, d, cols, n, 0.0f,
                tmp, n);
    /* (Co, B, P) -> (B, Co, P), adding the bias on the way */
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < nb; i++)
        for (int o = 0; o < co; o++) {
            float *yp = y + ((int64_t)i * co + o) * p, bo = b ? b[o] : 0.0f;
            const float *tp = tmp + (int64_t)o * n + (int64_t)i * p;
            for (int j = 0; j < p; j++) yp[j] = tp[j] + bo;
        }
    return 0;
}

/* db[o] += sum of dy[:, o] (double), and, when dyp != NULL, the permuted copy
 * dyp (Co, B*P) of dy (B, Co, P) made in the same pass. Work-sharing (see im2col_for). */
static void bias_grad_permute_for(float *db, float *dyp, const float *dy,
                                  const AgConvShape *s) {
    const int nb = s->b, co = s->co;
    const int64_t p = (int64_t)s->ho * s->wo, n = p * nb;
#pragma omp for schedule(static)
    for (int o = 0; o < co; o++) {
        double acc = 0.0;
        for (int i = 0; i < nb; i++) {
            const float *g = dy + ((int64_t)i * co + o) * p;
            if (db)
                for (int64_t j = 0; j < p; j++) acc += g[j];
            if (dyp) memcpy(dyp + o * n + i * p, g, sizeof(float) * (size_t)p);
        }
        if (db) db[o] += (float)acc;
    }
}

/* ag_conv2d_backward on the images of one chunk (s->b of them) */
static int backward_chunk(float *dx, float *dw, float *db, float *scratch, const float *dy,
                          const float *x, const float *w, const AgConvShape *s, AgError *err) {
    const int nb = s->b, co = s->co, d = s->ci * s->k * s->k;
    const int p = s->ho * s->wo, n = p * nb;
    float *cols = scratch, *dyp = scratch + (int64_t)d * n;
    if (!dx && !dw) {
        if (db) {
#pragma omp parallel
            bias_grad_permute_for(db, NULL, dy, s);
        }
        return 0;
    }
    if (per_image(s)) {
        int direct = is_pointwise(s);
#pragma omp parallel if (db || (dw && !direct))
        {
            if (db) bias_grad_permute_for(db, NULL, dy, s);
            if (dw && !direct) im2col_for(cols, x, s);
        }
        if (dw)
            for (int i = 0; i < nb; i++) {
                if (ag_cancelled(err)) return -1;
                const float *ci = direct ? x + (int64_t)i * d * p : cols + (int64_t)i * p;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, co, d, p, 1.0f,
                            dy + (int64_t)i * co * p, p, ci, direct ? p : n, 1.0f, dw, d);
            }
        if (dx) {
            for (int i = 0; i < nb; i++) {
                if (ag_cancelled(err)) return -1;
                float *ci = direct ? dx + (int64_t)i * d * p : cols + (int64_t)i * p;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, p, co, 1.0f, w, d,
                            dy + (int64_t)i * co * p, p, 0.0f, ci, direct ? p : n);
            }
            if (!direct) ag_conv2d_col2im(dx, cols, s);
        }
        return 0;
    }
    /* one parallel region for the memory-bound prologue: db, dy permuted to (Co, B*P),
     * and the columns of x when the weight gradient needs them */
#pragma omp parallel
    {
        bias_grad_permute_for(db, dyp, dy, s);
        if (dw) im2col_for(cols, x, s);
    }
    if (ag_cancelled(err)) return -1;
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, co, d, n, 1.0f, dyp, n, cols, n,
                    1.0f, dw, d);
    if (dx) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, n, co, 1.0f, w, d, dyp, n, 0.0f,
                    cols, n);
        ag_conv2d_col2im(dx, cols, s);
    }
    return 0;
}

int ag_conv2d_forward(float *y, float *scratch, const float *x, const float *w, const float *b,
                      const AgConvShape *s, AgError *err) {
    if (ag_conv2d_check(s, err)) return -1;
    const int ipc = chunk_images(s);
    const int64_t xs = (int64_t)s->ci * s->h * s->w, ys = (int64_t)s->co * s->ho * s->wo;
    for (int b0 = 0; b0 < s->b; b0 += ipc) {
        if (ag_cancelled(err)) return -1;
        AgConvShape c = *s;
        c.b = s->b - b0 < ipc ? s->b - b0 : ipc;
        if (forward_chunk(y + b0 * ys, scratch, x + b0 * xs, w, b, &c, err)) return -1;
    }
    return 0;
}

int ag_conv2d_backward(float *dx, float *dw, float *db, float *scratch, const float *dy,
                       const float *x, const float *w, const AgConvShape *s, AgError *err) {
    if (ag_conv2d_check(s, err)) return -1;
    const int ipc = chunk_images(s);
    const int64_t xs = (int64_t)s->ci * s->h * s->w, ys = (int64_t)s->co * s->ho * s->wo;
    for (int b0 = 0; b0 < s->b; b0 += ipc) {
        if (ag_cancelled(err)) return -1;
        AgConvShape c = *s;
        c.b = s->b - b0 < ipc ? s->b - b0 : ipc;
        if (backward_chunk(dx ? dx + b0 * xs : NULL, dw, db, scratch, dy + b0 * ys,
                           x ? x + b0 * xs : NULL, w, &c, err))
            return -1;
    }
    return 0;
}
