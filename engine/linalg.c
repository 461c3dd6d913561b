/* linalg.c - symmetric eigendecomposition and powers (LAPACK dsyevd), Pearson and
 * cosine similarity, and the feature map of an image. */
#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK (Fortran, 32-bit integers as in Debian's libopenblas0; trailing hidden
 * lengths of the character arguments, as gfortran passes them). */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info, size_t jobz_len, size_t uplo_len);

double ag_asymmetry(const float *a, int64_t n) {
    double amax = 0.0, dmax = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = fabs((double)a[i * n + j]);
            if (v > amax) amax = v;
            if (j > i) {
                double d = fabs((double)a[i * n + j] - (double)a[j * n + i]);
                if (d > dmax) dmax = d;
            }
        }
    return dmax / fmax(amax, 1e-30);
}

static int eigh_core(double *evals, double *a, int64_t n, int want_vectors, AgError *err) {
    if (n < 1 || n > AG_EIG_MAXN)
        return ag_fail(err, "eig: matrix size %lld outside [1, %d]", (long long)n, AG_EIG_MAXN);
    int ni = (int)n, lwork = -1, liwork = -1, info = 0, iwq = 0;
    double wq = 0.0;
    const char *jobz = want_vectors ? "V" : "N";
    dsyevd_(jobz, "U", &ni, a, &ni, evals, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
    if (info != 0) return ag_fail(err, "eig: LAPACK dsyevd workspace query failed (%d)", info);
    lwork = (int)wq + 1;
    liwork = iwq;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        return ag_fail(err, "eig: out of memory for the %lldx%lld workspace", (long long)n,
                       (long long)n);
    }
    dsyevd_(jobz, "U", &ni, a, &ni, evals, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info < 0) return ag_fail(err, "eig: LAPACK dsyevd argument %d is invalid", -info);
    if (info > 0)
        return ag_fail(err, "eig: LAPACK dsyevd did not converge (%d); is the matrix finite?",
                       info);
    return 0;
}

int64_t ag_eig_first_kept(const double *evals, int64_t n) {
    if (n <= 0) return 0;
    double top = evals[n - 1];
    int64_t first = n;
    while (first > 0 && evals[first - 1] > 1e-13 * top && top > 0.0) first--;
    return first;
}

int ag_eigh_d(double *evals, double *a, int64_t n, AgError *err) {
    return eigh_core(evals, a, n, 1, err);
}

/* (n, n) double copy of (a + a^T) / 2, or NULL */
static double *sym_copy(const float *a, int64_t n) {
    double *d = malloc((size_t)n * (size_t)n * sizeof *d);
    if (!d) return NULL;
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            d[i * n + j] = 0.5 * ((double)a[i * n + j] + (double)a[j * n + i]);
    return d;
}

int ag_eigh(float *evals, float *evecs, const float *a, int64_t n, AgError *err) {
    if (n < 1 || n > AG_EIG_MAXN)
        return ag_fail(err, "eig: matrix size %lld outside [1, %d]", (long long)n, AG_EIG_MAXN);
    double *d = sym_copy(a, n);
    double *ev = malloc((size_t)n * sizeof *ev);
    if (!d || !ev) {
        free(d);
        free(ev);
        return ag_fail(err, "eig: out of memory for a %lldx%lld matrix", (long long)n,
                       (long long)n);
    }
    int rc = eigh_core(ev, d, n, evecs != NULL, err);
    if (rc == 0) {
        for (int64_t i = 0; i < n; i++) evals[i] = (float)ev[i];
        if (evecs) {
#pragma omp parallel for
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) evecs[i * n + j] = (float)d[j * n + i];
        }
    }
    free(d);
    free(ev);
    return rc;
}

int ag_sym_pow(float *y, const float *a, int64_t n, double alpha, AgError *err) {
    if (!(alpha > 0.0) || !isfinite(alpha))
        return ag_fail(err, "pow: exponent must be a finite number > 0, got %g", alpha);
    if (n < 1 || n > AG_EIG_MAXN)
        return ag_fail(err, "pow: matrix size %lld outside [1, %d]", (long long)n, AG_EIG_MAXN);
    double *d = sym_copy(a, n);
    double *ev = malloc((size_t)n * sizeof *ev);
    if (!d || !ev) {
        free(d);
        free(ev);
        return ag_fail(err, "pow: out of memory for a %lldx%lld matrix", (long long)n,
                       (long long)n);
    }
    int rc = eigh_core(ev, d, n, 1, err);
    if (rc != 0) {
        free(d);
        free(ev);
        return rc;
    }
    /* d holds the eigenvectors as rows (column-major V read row-major). Rows with
     * positive eigenvalues (the last k, ascending) are scaled by lambda^(alpha/2); then
     * y = R^T R over those k rows. */
    int64_t first = n;
    while (first > 0 && ev[first - 1] > 0.0) first--;
    int64_t k = n - first;
#pragma omp parallel for
    for (int64_t j = first; j < n; j++) {
        double s = pow(ev[j], 0.5 * alpha);
        for (int64_t i = 0; i < n; i++) d[j * n + i] *= s;
    }
    double *out = calloc((size_t)n * (size_t)n, sizeof *out);
    if (!out) {
        free(d);
        free(ev);
        return ag_fail(err, "pow: out of memory for a %lldx%lld matrix", (long long)n,
                       (long long)n);
    }
    if (k > 0)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)k, 1.0, d + first * n,
                    (int)n, 0.0, out, (int)n);
    free(d);
    free(ev);
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            y[i * n + j] = (float)(j >= i ? out[i * n + j] : out[j * n + i]);
    free(out);
    return 0;
}

int ag_pearson(double *out, const float *a, const float *b, int64_t n, AgError *err) {
    if (n < 2) return ag_fail(err, "corr: need at least 2 entries, got %lld", (long long)n);
    double sa = 0.0, sb = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sa += a[i];
        sb += b[i];
    }
    double ma = sa / (double)n, mb = sb / (double)n;
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i] - ma, y = b[i] - mb;
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if (!(aa > 0.0) || !(bb > 0.0))
        return ag_fail(err, "corr: %s has constant entries (correlation undefined)",
                       aa > 0.0 ? "the second matrix" : "the first matrix");
    *out = ab / (sqrt(aa) * sqrt(bb));
    return 0;
}

int ag_cosine(double *out, const float *a, const float *b, int64_t n, AgError *err) {
    if (n < 1) return ag_fail(err, "cosine: empty input");
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if (!(aa > 0.0) || !(bb > 0.0))
        return ag_fail(err, "cosine: %s is zero (cosine undefined)",
                       aa > 0.0 ? "the second matrix" : "the first matrix");
    *out = ab / (sqrt(aa) * sqrt(bb));
    return 0;
}

/* cols[r, q - q0] = x[c, i + kh - pad, j + kw - pad] (0 outside) for rows r = (c, kh, kw)
 * and stride-1 positions q = i * wo + j in [q0, q0 + np).
 *   cols: (c*k*k, np)
 *   x:    (c, h, w) */
static void im2col_s1(float *cols, const float *x, int64_t c, int64_t h, int64_t w, int64_t k,
                      int64_t pad, int64_t wo, int64_t q0, int64_t np) {
    int64_t d = c * k * k;
#pragma omp parallel for
    for (int64_t r = 0; r < d; r++) {
        int64_t ch = r / (k * k), kh = (r / k) % k, kw = r % k;
        const float *xp = x + ch * h * w;
        float *cp = cols + r * np;
        for (int64_t q = 0; q < np; q++) {
            int64_t i = (q0 + q) / wo, j = (q0 + q) % wo;
            int64_t yi = i + kh - pad, xj = j + kw - pad;
            cp[q] = (yi >= 0 && yi < h && xj >= 0 && xj < w) ? xp[yi * w + xj] : 0.0f;
        }
    }
}

int ag_feature_map_size(int64_t c, int64_t h, int64_t w, int64_t k, int64_t pad, int64_t *ho,
                        int64_t *wo, AgError *err) {
    if (c < 1 || h < 1 || w < 1 || k < 1 || pad < 0)
        return ag_fail(err, "bad sizes c=%lld h=%lld w=%lld k=%lld pad=%lld", (long long)c,
                       (long long)h, (long long)w, (long long)k, (long long)pad);
    *ho = h + 2 * pad - k + 1;
    *wo = w + 2 * pad - k + 1;
    if (*ho < 1 || *wo < 1)
        return ag_fail(err, "input %lldx%lld with padding %lld is smaller than kernel %lld",
                       (long long)h, (long long)w, (long long)pad, (long long)k);
    return 0;
}

int ag_feature_map(float *out, const float *m, const float *x, int64_t c, int64_t h, int64_t w,
                   int64_t k, int64_t pad, AgError *err) {
    int64_t ho, wo;
    if (ag_feature_map_size(c, h, w, k, pad, &ho, &wo, err)) return -1;
    int64_t d = c * k * k, npos = ho * wo;
    int64_t chunk = (int64_t)1 << 22; /* floats per scratch matrix */
    chunk = chunk / d < 1 ? 1 : chunk / d;
    if (chunk > npos) chunk = npos;
    float *cols = malloc((size_t)(d * chunk) * sizeof *cols);
    float *prod = malloc((size_t)(d * chunk) * sizeof *prod);
    double *acc = malloc((size_t)chunk * sizeof *acc);
    if (!cols || !prod || !acc) {
        free(cols);
        free(prod);
        free(acc);
        return ag_fail(err, "feature_map: out of memory (d=%lld)", (long long)d);
    }
    for (int64_t q0 = 0; q0 < npos; q0 += chunk) {
        int64_t np = npos - q0 < chunk ? npos - q0 : chunk;
        im2col_s1(cols, x, c, h, w, k, pad, wo, q0, np);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)np, (int)d, 1.0f, m,
                    (int)d, cols, (int)np, 0.0f, prod, (int)np);
        for (int64_t q = 0; q < np; q++) acc[q] = 0.0;
        for (int64_t r = 0; r < d; r++) {
            const float *pr = prod + r * np;
            for (int64_t q = 0; q < np; q++) acc[q] += (double)pr[q] * pr[q];
        }
        for (int64_t q = 0; q < np; q++) out[q0 + q] = (float)sqrt(acc[q]);
    }
    free(cols);
    free(prod);
    free(acc);
    float lo = out[0], hi = out[0];
    for (int64_t q = 1; q < npos; q++) {
        if (out[q] < lo) lo = out[q];
        if (out[q] > hi) hi = out[q];
    }
    if (!isfinite(lo) || !isfinite(hi))
        return ag_fail(err, "feature_map: the map is not finite (is the matrix finite?)");
    double span = (double)hi - (double)lo;
    for (int64_t q = 0; q < npos; q++)
        out[q] = span > 0.0 ? (float)(((double)out[q] - lo) / span) : 0.0f;
    return 0;
}
