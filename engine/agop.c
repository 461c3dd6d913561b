/* agop.c - CNFM (W^T W) and the patch-AGOP fast path (S accumulation, W^T S W / n). */
#include "agop.h"

#include "gram.h"
#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Positions per packed chunk: enough to keep syrk efficient, few enough that the float
 * sums inside one chunk stay accurate (they are added into double between chunks). */
#define AGOP_CHUNK 4096

/* Rows of G per sgemm in ag_agop_finish */
#define FINISH_BLOCK 256

/* g[j][i] = g[i][j] for j > i, in 64 x 64 tiles so that the column-wise reads stay in cache
 * (a row-by-row copy of a 4608 x 4608 matrix took as long as its sgemm). */
static void mirror_upper_f(float *g, int64_t d) {
    int64_t nt = (d + 63) / 64;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < nt; ti++)
        for (int64_t tj = 0; tj <= ti; tj++) /* the lower tile (ti, tj) from (tj, ti) */
            for (int64_t i = ti * 64; i < ti * 64 + 64 && i < d; i++)
                for (int64_t j = tj * 64; j < tj * 64 + 64 && j < i; j++)
                    g[i * d + j] = g[j * d + i];
}

int ag_nfm(float *n, const float *w, int64_t co, int64_t d, AgError *err) {
    if (co < 1 || d < 1 || co > INT32_MAX || d > INT32_MAX)
        return ag_fail(err, "nfm: bad weight matrix size %lldx%lld", (long long)co,
                       (long long)d);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)co, 1.0f, w, (int)d, 0.0f,
                n, (int)d);
    mirror_upper_f(n, d);
    return 0;
}

/* 1 when any of x[0..n) is Inf or NaN (exponent bits all set); vectorizes. */
static int any_nonfinite(const float *x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
    return bad != 0;
}

/* Copies positions [j0, j0 + np) of g (batch, co, hw), numbered b * hw + p, into x
 * (co, np) as columns; returns 1 when a copied value is not finite.
 *   x: (co, np)
 * Serial on purpose, as is the accumulation below: both are small next to the syrk, and an
 * OpenMP region squeezed between OpenBLAS calls (whose pthreads spin after each call)
 * made the whole accumulation several times slower on 2 cores. */
static int pack_positions(float *x, const float *g, int64_t co, int64_t hw, int64_t j0,
                          int64_t np) {
    int bad = 0;
    for (int64_t c = 0; c < co; c++) {
        int64_t j = j0;
        while (j < j0 + np) {
            int64_t b = j / hw, p = j % hw;
            int64_t len = hw - p < j0 + np - j ? hw - p : j0 + np - j;
            const float *src = g + (b * co + c) * hw + p;
            bad |= any_nonfinite(src, len);
            memcpy(x + c * np + (j - j0), src, (size_t)len * sizeof(float));
            j += len;
        }
    }
    return bad;
}

static int check_acc(int64_t batch, int64_t co, int64_t hw, AgError *err) {
    int64_t n;
    if (batch < 0 || co < 1 || hw < 0 || co > 65536 || ag_mul_size(batch, hw, &n) != 0 ||
        ag_mul_size(n, co, &n) != 0)
        return ag_fail(err, "agop_accumulate: bad gradient sizes batch=%lld co=%lld hw=%lld",
                       (long long)batch, (long long)co, (long long)hw);
    return 0;
}

static void mirror_upper(double *s, int64_t co) {
    for (int64_t i = 0; i < co; i++)
        for (int64_t j = 0; j < i; j++) s[i * co + j] = s[j * co + i];
}

/* With several chunks the sum goes through a zeroed temporary first, so that a non-finite
 * entry found in a later chunk leaves s untouched. */
static double *acc_target(double *s, int64_t co, int64_t total, int64_t chunk) {
    return total > chunk ? calloc((size_t)(co * co), sizeof(double)) : s;
}

static void acc_commit(double *s, double *acc, int64_t co, int ok) {
    if (acc != s) {
        if (ok)
            for (int64_t i = 0; i < co; i++)
                for (int64_t j = i; j < co; j++) s[i * co + j] += acc[i * co + j];
        free(acc);
    }
    if (ok) mirror_upper(s, co);
}

/* s += t and s += t^T from the upper triangle of t, in 32 x 32 tiles (the transposed
 * writes stay in cache); s stays exactly symmetric. */
static void add_sym_blocked(double *s, const double *t, int64_t co) {
    for (int64_t i0 = 0; i0 < co; i0 += 32)
        for (int64_t j0 = i0; j0 < co; j0 += 32)
            for (int64_t i = i0; i < i0 + 32 && i < co; i++)
                for (int64_t j = j0 > i ? j0 : i; j < j0 + 32 && j < co; j++) {
                    double v = t[i * co + j];
                    s[i * co + j] += v;
                    if (j != i) s[j * co + i] += v;
                }
}

/* The fast path: ag_gram_accumulate into a zeroed double temporary, then into s. */
static int accumulate_gram(double *s, const float *g, int64_t batch, int64_t co, int64_t hw,
                           AgError *err) {
    double *t = calloc((size_t)(co * co), sizeof *t);
    if (!t) return ag_fail(err, "agop_accumulate: out of memory (co=%lld)", (long long)co);
    int rc = ag_gram_accumulate(t, g, batch, co, hw);
    /* t_ii = sum of g_i^2: not finite exactly when some g_i is not (or its square
     * overflows), so the diagonal checks the whole gradient */
    int finite = 1;
    for (int64_t i = 0; i < co; i++) finite &= isfinite(t[i * co + i]) != 0;
    if (rc == 0 && finite) add_sym_blocked(s, t, co);
    free(t);
    if (rc < 0) return ag_fail(err, "agop_accumulate: out of memory (co=%lld)", (long long)co);
    if (!finite)
        return ag_fail(err, "agop_accumulate: the gradient has a non-finite entry (or one "
                            "whose square overflows)");
    return 0;
}

int ag_agop_accumulate(double *s, const float *g, int64_t batch, int64_t co, int64_t hw,
                       AgError *err) {
    if (check_acc(batch, co, hw, err)) return -1;
    int64_t total = batch * hw;
    if (total == 0) return 0;
    if (ag_gram_isa() != 0) return accumulate_gram(s, g, batch, co, hw, err);
    int64_t chunk = total < AGOP_CHUNK ? total : AGOP_CHUNK;
    float *x = malloc((size_t)(co * chunk) * sizeof *x);
    float *t = malloc((size_t)(co * co) * sizeof *t);
    double *acc = acc_target(s, co, total, chunk);
    if (!x || !t || !acc) {
        free(x);
        free(t);
        if (acc != s) free(acc);
        return ag_fail(err, "agop_accumulate: out of memory (co=%lld)", (long long)co);
    }
    int rc = 0;
    for (int64_t j0 = 0; j0 < total; j0 += chunk) {
        int64_t np = total - j0 < chunk ? total - j0 : chunk;
        if (pack_positions(x, g, co, hw, j0, np)) {
            rc = ag_fail(err, "agop_accumulate: the gradient has a non-finite entry");
            break;
        }
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)co, (int)np, 1.0f, x, (int)np,
                    0.0f, t, (int)co);
        for (int64_t i = 0; i < co; i++)
            for (int64_t j = i; j < co; j++) acc[i * co + j] += (double)t[i * co + j];
    }
    acc_commit(s, acc, co, rc == 0);
    free(x);
    free(t);
    return rc;
}

int ag_agop_accumulate_pooled(double *s, const float *idx, const float *pooled, const float *dy,
                              int64_t batch, int64_t co, int64_t nw, int *done, AgError *err) {
    *done = 0;
    if (check_acc(batch, co, nw, err)) return -1;
    if (batch * nw == 0) {
        *done = 1;
        return 0;
    }
    int64_t n = batch * co * nw;
    float *v = malloc((size_t)n * sizeof *v);
    double *t = calloc((size_t)(co * co), sizeof *t);
    if (!v || !t) {
        free(v);
        free(t);
        return ag_fail(err, "agop_accumulate_pooled: out of memory (co=%lld)", (long long)co);
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) v[i] = pooled[i] > 0.0f ? dy[i] : 0.0f;
    int rc = ag_gram_accumulate_pooled(t, v, idx, batch, co, nw);
    free(v);
    if (rc != 0) { /* no kernel for this: the caller forms the gradient */
        free(t);
        return 0;
    }
    int finite = 1;
    for (int64_t i = 0; i < co; i++) finite &= isfinite(t[i * co + i]) != 0;
    if (finite) add_sym_blocked(s, t, co);
    free(t);
    if (!finite)
        return ag_fail(err, "agop_accumulate_pooled: the gradient has a non-finite entry (or "
                            "one whose square overflows)");
    *done = 1;
    return 0;
}

int ag_agop_unpool_relu(float *dx, const float *idx, const float *dy, const float *pooled,
                        int64_t nplanes, int64_t nmask, int h, int w, int ho, int wo,
                        AgError *err) {
    if (nplanes < 1 || nmask < 1 || nplanes % nmask != 0 || h < 1 || w < 1 || ho < 1 ||
        wo < 1 || (int64_t)h * w > ((int64_t)1 << 24))
        return ag_fail(err,
                       "agop_unpool_relu: bad sizes (%lld planes of %dx%d -> %dx%d, %lld "
                       "index planes)",
                       (long long)nplanes, h, w, ho, wo, (long long)nmask);
    const int64_t hw = (int64_t)h * w, ohw = (int64_t)ho * wo;
    int64_t bad = INT64_MAX; /* the first bad index, whatever the thread count */
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (int64_t pl = 0; pl < nplanes; pl++) {
        const int64_t mp = pl % nmask;
        float *dp = dx + pl * hw;
        const float *gp = dy + pl * ohw, *ip = idx + mp * ohw, *pp = pooled + mp * ohw;
        memset(dp, 0, sizeof(float) * (size_t)hw);
        for (int64_t j = 0; j < ohw; j++) {
            float f = ip[j];
            if (f >= 0.0f && f < (float)hw && f == (float)(int64_t)f) {
                dp[(int64_t)f] += pp[j] > 0.0f ? gp[j] : 0.0f;
            } else if (mp * ohw + j < bad) {
                bad = mp * ohw + j;
            }
        }
    }
    if (bad != INT64_MAX)
        return ag_fail(err,
                       "agop_unpool_relu: index %g at position %lld is not a pixel of a %dx%d "
                       "plane",
                       (double)idx[bad], (long long)bad + 1, h, w);
    return 0;
}

/* g[pl] *= (y[pl % nmask] > 0), in place. */
void ag_agop_relu_mask(float *g, const float *y, int64_t nplanes, int64_t nmask,
                       int64_t plane) {
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < nplanes; pl++) {
        float *gp = g + pl * plane;
        const float *yp = y + (pl % nmask) * plane;
        for (int64_t i = 0; i < plane; i++) gp[i] = yp[i] > 0.0f ? gp[i] : 0.0f;
    }
}

int ag_agop_finish(float *g_out, const double *s, const float *w, int64_t co, int64_t d,
                   double n_images, AgError *err) {
    if (co < 1 || d < 1 || co > 65536 || d > INT32_MAX / (co > d ? co : d))
        return ag_fail(err, "agop_finish: bad sizes co=%lld d=%lld", (long long)co,
                       (long long)d);
    if (!(n_images > 0.0) || !isfinite(n_images))
        return ag_fail(err, "agop_finish: number of images must be > 0, got %g", n_images);
    double *wd = malloc((size_t)(co * d) * sizeof *wd);
    double *t = malloc((size_t)(co * d) * sizeof *t);
    float *tf = malloc((size_t)(co * d) * sizeof *tf);
    if (!wd || !t || !tf) {
        free(wd);
        free(t);
        free(tf);
        return ag_fail(err, "agop_finish: out of memory (co=%lld, d=%lld)", (long long)co,
                       (long long)d);
    }
#pragma omp parallel for
    for (int64_t i = 0; i < co * d; i++) wd[i] = w[i];
    /* t = S W  (co, d), in double */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)co, (int)d, (int)co, 1.0, s,
                (int)co, wd, (int)d, 0.0, t, (int)d);
#pragma omp parallel for
    for (int64_t i = 0; i < co * d; i++) tf[i] = (float)t[i];
    free(wd);
    free(t);
    /* g = W^T t / n  (d, d): the upper triangle, a block row of FINISH_BLOCK rows from
     * the diagonal on per sgemm (about half the work of the whole product), then mirrored */
    for (int64_t i0 = 0; i0 < d; i0 += FINISH_BLOCK) {
        int64_t m = d - i0 < FINISH_BLOCK ? d - i0 : FINISH_BLOCK;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)(d - i0), (int)co,
                    (float)(1.0 / n_images), w + i0, (int)d, tf + i0, (int)d, 0.0f,
                    g_out + i0 * d + i0, (int)d);
    }
    free(tf);
    mirror_upper_f(g_out, d);
    return 0;
}

int ag_agop_pow(float *g_out, const double *s, const float *w, int64_t co, int64_t d,
                double n_images, double alpha, AgError *err) {
    if (!(alpha > 0.0) || !isfinite(alpha))
        return ag_fail(err, "agop_pow: exponent must be a finite number > 0, got %g", alpha);
    if (d <= co) {
        if (ag_agop_finish(g_out, s, w, co, d, n_images, err)) return -1;
        return ag_sym_pow(g_out, g_out, d, alpha, err);
    }
    if (co > AG_EIG_MAXN || d > INT32_MAX / co)
        return ag_fail(err, "agop_pow: bad sizes co=%lld d=%lld", (long long)co, (long long)d);
    if (!(n_images > 0.0) || !isfinite(n_images))
        return ag_fail(err, "agop_pow: number of images must be > 0, got %g", n_images);
    size_t cc = (size_t)(co * co), cd = (size_t)(co * d);
    double *q = malloc(cc * sizeof *q), *lam = malloc((size_t)co * sizeof *lam);
    double *wd = malloc(cd * sizeof *wd), *a = malloc(cd * sizeof *a);
    double *k = malloc(cc * sizeof *k);
    float *bf = malloc(cd * sizeof *bf);
    int rc = 0;
    if (!q || !lam || !wd || !a || !k || !bf) {
        rc = ag_fail(err, "agop_pow: out of memory (co=%lld, d=%lld)", (long long)co,
                     (long long)d);
        goto done;
    }
    /* s / n = Q diag(lam) Q^T; q holds Q's columns as rows. R = diag(lam+^(1/2)) Q^T. */
    for (size_t i = 0; i < cc; i++) q[i] = s[i] / n_images;
    if ((rc = ag_eigh_d(lam, q, co, err)) != 0) goto done;
    for (int64_t j = 0; j < co; j++) {
        double r = lam[j] > 0.0 ? sqrt(lam[j]) : 0.0;
        for (int64_t i = 0; i < co; i++) q[j * co + i] *= r;
    }
#pragma omp parallel for
    for (int64_t i = 0; i < co * d; i++) wd[i] = w[i];
    /* A = R W (co, d); then A^T A = W^T Q diag(lam) Q^T W = G */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)co, (int)d, (int)co, 1.0, q,
                (int)co, wd, (int)d, 0.0, a, (int)d);
    /* K = A A^T = U diag(sig^2) U^T */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)co, (int)d, 1.0, a, (int)d, 0.0,
                k, (int)co);
    for (int64_t i = 0; i < co; i++)
        for (int64_t j = 0; j < i; j++) k[i * co + j] = k[j * co + i];
    if ((rc = ag_eigh_d(lam, k, co, err)) != 0) goto done;
    /* B = diag(sig^(alpha - 1)) U^T A over the kept directions (the last ones) */
    int64_t first = ag_eig_first_kept(lam, co);
    int64_t keep = co - first;
    if (keep == 0) {
        memset(g_out, 0, (size_t)(d * d) * sizeof *g_out);
        goto done;
    }
    for (int64_t j = first; j < co; j++) {
        double sc = pow(lam[j], 0.5 * (alpha - 1.0));
        for (int64_t i = 0; i < co; i++) k[j * co + i] *= sc;
    }
    /* wd reused as B (keep, d) = (scaled U rows) A */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)keep, (int)d, (int)co, 1.0,
                k + first * co, (int)co, a, (int)d, 0.0, wd, (int)d);
    for (int64_t i = 0; i < keep * d; i++) bf[i] = (float)wd[i];
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)keep, 1.0f, bf, (int)d,
                0.0f, g_out, (int)d);
    mirror_upper_f(g_out, d);
done:
    free(q);
    free(lam);
    free(wd);
    free(a);
    free(k);
    free(bf);
    return rc;
}
