/* ansatz.c - rho(W^T W, (W^T S W)^alpha) in c_out x c_out space (see ansatz.h). */
#include "ansatz.h"

#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Pearson's correlation from the sums over n entries; fails on a constant matrix. */
static int pearson_from_sums(double *out, double n, double sa, double sb, double aa, double bb,
                             double ab, const char *which, AgError *err) {
    double va = aa - sa * sa / n, vb = bb - sb * sb / n, cov = ab - sa * sb / n;
    if (!(va > 0.0) || !(vb > 0.0))
        return ag_fail(err, "ansatz_corr: %s of %s are constant (correlation undefined)", which,
                       va > 0.0 ? "the AGOP power" : "the CNFM");
    *out = cov / (sqrt(va) * sqrt(vb));
    return 0;
}

int ag_ansatz_corr(double *rho, const float *s, const float *w, int64_t co, int64_t d,
                   double alpha, AgError *err) {
    if (!(alpha > 0.0) || !isfinite(alpha))
        return ag_fail(err, "ansatz_corr: exponent must be a finite number > 0, got %g", alpha);
    if (co < 1 || d < 2 || co > AG_EIG_MAXN || d > INT32_MAX / co)
        return ag_fail(err, "ansatz_corr: bad sizes c_out=%lld d=%lld (d >= 2 needed)",
                       (long long)co, (long long)d);
    size_t cc = (size_t)(co * co), cd = (size_t)(co * d);
    double *wd = malloc(cd * sizeof *wd), *z = malloc(cd * sizeof *z);
    double *r = malloc(cc * sizeof *r), *k = malloc(cc * sizeof *k);
    double *t = malloc(cc * sizeof *t), *m = malloc(cc * sizeof *m);
    double *lam = malloc((size_t)co * sizeof *lam), *u = malloc((size_t)co * sizeof *u);
    double *mu = malloc((size_t)co * sizeof *mu);
    int rc = 0;
    if (!wd || !z || !r || !k || !t || !m || !lam || !u || !mu) {
        rc = ag_fail(err, "ansatz_corr: out of memory (c_out=%lld, d=%lld)", (long long)co,
                     (long long)d);
        goto done;
    }
    int ic = (int)co, id = (int)d;
    for (size_t i = 0; i < cd; i++) wd[i] = w[i];
    /* K = W W^T, u = W 1 */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, ic, id, 1.0, wd, id, 0.0, k, ic);
    for (int64_t i = 0; i < co; i++)
        for (int64_t j = 0; j < i; j++) k[i * co + j] = k[j * co + i];
    for (int64_t i = 0; i < co; i++) {
        double acc = 0.0;
        for (int64_t j = 0; j < d; j++) acc += wd[i * d + j];
        u[i] = acc;
    }
    /* S = Q diag(lam) Q^T; R = diag(sqrt(lam+)) Q^T (row j: eigenvector j scaled) */
    for (size_t i = 0; i < cc; i++)
        r[i] = 0.5 * ((double)s[i] + (double)s[(i % co) * co + i / co]);
    if ((rc = ag_eigh_d(lam, r, co, err)) != 0) goto done;
    for (int64_t j = 0; j < co; j++) {
        double sc = lam[j] > 0.0 ? sqrt(lam[j]) : 0.0;
        for (int64_t i = 0; i < co; i++) r[j * co + i] *= sc;
    }
    /* K' = R K R^T = A A^T with A = R W; its eigenvectors U (rows of t) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ic, ic, ic, 1.0, r, ic, k, ic, 0.0,
                m, ic);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ic, ic, ic, 1.0, m, ic, r, ic, 0.0, t,
                ic);
    if ((rc = ag_eigh_d(lam, t, co, err)) != 0) goto done;
    /* V = U^T R over the kept directions, each row scaled by lam^((alpha - 1) / 2), so
     * that M = V^T V gives H = (A^T A)^alpha = W^T M W */
    int64_t first = ag_eig_first_kept(lam, co);
    int64_t keep = co - first;
    if (keep == 0) {
        rc = ag_fail(err, "ansatz_corr: W^T S W is zero (correlation undefined)");
        goto done;
    }
    for (int64_t j = first; j < co; j++) {
        double sc = pow(lam[j], 0.5 * (alpha - 1.0));
        for (int64_t i = 0; i < co; i++) t[j * co + i] *= sc;
    }
    /* z (keep, co) = V, then M = V^T V */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)keep, ic, ic, 1.0,
                t + first * co, ic, r, ic, 0.0, z, ic);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, ic, (int)keep, 1.0, z, ic, 0.0, m, ic);
    for (int64_t i = 0; i < co; i++)
        for (int64_t j = 0; j < i; j++) m[i * co + j] = m[j * co + i];
    /* sums over all entries: t = K K, r = M K */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ic, ic, ic, 1.0, k, ic, k, ic, 0.0,
                t, ic);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ic, ic, ic, 1.0, m, ic, k, ic, 0.0,
                r, ic);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, ic, ic, 1.0, m, ic, u, 1, 0.0, mu, 1);
    double sn = 0.0, sh = 0.0, nn = 0.0, hn = 0.0, hh = 0.0;
    for (int64_t i = 0; i < co; i++) {
        sn += u[i] * u[i];
        sh += u[i] * mu[i];
        for (int64_t j = 0; j < co; j++) {
            nn += k[i * co + j] * k[i * co + j];
            hn += m[i * co + j] * t[i * co + j];
            hh += r[i * co + j] * r[j * co + i];
        }
    }
    /* the diagonals: diag N_j = |w_j|^2, diag H_j = w_j^T M w_j (z = M W) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ic, id, ic, 1.0, m, ic, wd, id, 0.0,
                z, id);
    /* the column sums, walked row by row (contiguous memory) */
    double *dna = calloc((size_t)d, sizeof *dna), *dha = calloc((size_t)d, sizeof *dha);
    if (!dna || !dha) {
        free(dna);
        free(dha);
        rc = ag_fail(err, "ansatz_corr: out of memory (d=%lld)", (long long)d);
        goto done;
    }
    for (int64_t i = 0; i < co; i++) {
        const double *wr = wd + i * d, *zr = z + i * d;
        for (int64_t j = 0; j < d; j++) {
            dna[j] += wr[j] * wr[j];
            dha[j] += wr[j] * zr[j];
        }
    }
    double dn = 0.0, dh = 0.0, dnn = 0.0, dhh = 0.0, dnh = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double a = dna[j], b = dha[j];
        dn += a, dh += b, dnn += a * a, dhh += b * b, dnh += a * b;
    }
    free(dna);
    free(dha);
    double n = (double)d * (double)d;
    if ((rc = pearson_from_sums(&rho[0], n, sn, sh, nn, hh, hn, "the entries", err)) != 0)
        goto done;
    rc = pearson_from_sums(&rho[1], n - (double)d, sn - dn, sh - dh, nn - dnn, hh - dhh,
                           hn - dnh, "the off-diagonal entries", err);
done:
    free(wd);
    free(z);
    free(r);
    free(k);
    free(t);
    free(m);
    free(lam);
    free(u);
    free(mu);
    return rc;
}
