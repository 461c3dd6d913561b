/* test_ansatz.c - ag_ansatz_corr against a brute force in double: N = W^T W and
 * H = (W^T S+ W)^alpha formed as d x d matrices (eigendecomposition of the full matrix),
 * Pearson over all entries and over the off-diagonal ones by plain loops. */
#include "../../engine/ansatz.h"
#include "../../engine/linalg.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static double lcg(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (double)(*s >> 8) / (double)(1u << 24) - 0.5;
}

/* y = f(a) for symmetric a (n x n, double), f(l) = max(l, 0)^p */
static void dpow(double *y, const double *a, int n, double p) {
    double *v = malloc(sizeof(double) * n * n), *l = malloc(sizeof(double) * n);
    AgError err = AG_ERROR_INIT;
    memcpy(v, a, sizeof(double) * n * n);
    ag_eigh_d(l, v, n, &err); /* row j of v: eigenvector j */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int q = 0; q < n; q++)
                acc += (l[q] > 1e-12 ? pow(l[q], p) : 0.0) * v[q * n + i] * v[q * n + j];
            y[i * n + j] = acc;
        }
    free(v);
    free(l);
}

static double pearson(const double *a, const double *b, int d, int offdiag) {
    double n = 0, sa = 0, sb = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            if (!offdiag || i != j) n += 1, sa += a[i * d + j], sb += b[i * d + j];
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            if (!offdiag || i != j) {
                double x = a[i * d + j] - sa / n, y = b[i * d + j] - sb / n;
                ab += x * y, aa += x * x, bb += y * y;
            }
    return ab / sqrt(aa * bb);
}

static void check_case(int co, int d, double alpha, int indefinite, unsigned seed) {
    float *w = malloc(sizeof(float) * co * d), *s = malloc(sizeof(float) * co * co);
    double *sp = malloc(sizeof(double) * co * co), *sd = malloc(sizeof(double) * co * co);
    double *nm = calloc((size_t)d * d, sizeof(double)),
           *g = calloc((size_t)d * d, sizeof(double));
    double *h = malloc(sizeof(double) * d * d);
    for (int i = 0; i < co * d; i++) w[i] = (float)lcg(&seed);
    /* S = B B^T (PSD), minus a multiple of the identity when indefinite */
    for (int i = 0; i < co; i++)
        for (int j = 0; j <= i; j++) {
            double acc = 0;
            unsigned a = 7u * (unsigned)i + 1u, b = 7u * (unsigned)j + 1u;
            for (int q = 0; q < 3; q++) acc += lcg(&a) * lcg(&b);
            if (i == j && indefinite) acc -= 0.05;
            s[i * co + j] = s[j * co + i] = (float)acc;
        }
    for (int i = 0; i < co * co; i++) sd[i] = s[i];
    dpow(sp, sd, co, 1.0); /* S+ */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            for (int a = 0; a < co; a++) {
                nm[i * d + j] += (double)w[a * d + i] * w[a * d + j];
                for (int b = 0; b < co; b++)
                    g[i * d + j] += (double)w[a * d + i] * sp[a * co + b] * w[b * d + j];
            }
    dpow(h, g, d, alpha);
    double rho[2];
    AgError err = AG_ERROR_INIT;
    CHECK(ag_ansatz_corr(rho, s, w, co, d, alpha, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(rho[0], pearson(nm, h, d, 0), 1e-9);
    CHECK_CLOSE(rho[1], pearson(nm, h, d, 1), 1e-9);
    free(w), free(s), free(sp), free(sd), free(nm), free(g), free(h);
}

TEST(corr_matches_full_matrices_when_d_exceeds_c_out) {
    check_case(5, 12, 0.5, 0, 1u);
}
TEST(corr_matches_full_matrices_when_d_is_below_c_out) {
    check_case(9, 4, 0.5, 0, 2u);
}
TEST(corr_other_power_and_rank_deficient_s) {
    check_case(6, 10, 1.0, 0, 3u);
} /* S rank 3 */
TEST(corr_clips_negative_eigenvalues_of_s) {
    check_case(6, 10, 0.5, 1, 4u);
}

TEST(corr_identity_s_is_the_null_rho_n_n_half) {
    /* S = I: H = N^(1/2) */
    enum { CO = 4, D = 6 };
    float w[CO * D], s[CO * CO] = {0};
    unsigned seed = 9u;
    for (int i = 0; i < CO * D; i++) w[i] = (float)lcg(&seed);
    for (int i = 0; i < CO; i++) s[i * CO + i] = 1.0f;
    double nm[D * D] = {0}, h[D * D], rho[2];
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++)
            for (int a = 0; a < CO; a++) nm[i * D + j] += (double)w[a * D + i] * w[a * D + j];
    dpow(h, nm, D, 0.5);
    AgError err = AG_ERROR_INIT;
    CHECK(ag_ansatz_corr(rho, s, w, CO, D, 0.5, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(rho[0], pearson(nm, h, D, 0), 1e-9);
    CHECK_CLOSE(rho[1], pearson(nm, h, D, 1), 1e-9);
}

TEST(corr_errors_are_sentences) {
    float w[6] = {1, 2, 3, 4, 5, 6}, s[4] = {0};
    double rho[2];
    AgError err = AG_ERROR_INIT;
    CHECK(ag_ansatz_corr(rho, s, w, 2, 3, 0.5, &err) != 0, "zero S accepted");
    CHECK(strstr(err.msg, "W^T S W is zero") != NULL, "%s", err.msg);
    s[0] = s[3] = 1;
    CHECK(ag_ansatz_corr(rho, s, w, 2, 3, -1.0, &err) != 0, "negative exponent accepted");
    CHECK(strstr(err.msg, "exponent must be") != NULL, "%s", err.msg);
    CHECK(ag_ansatz_corr(rho, s, w, 6, 1, 0.5, &err) != 0, "d = 1 accepted");
}

int main(void) {
    RUN(corr_matches_full_matrices_when_d_exceeds_c_out);
    RUN(corr_matches_full_matrices_when_d_is_below_c_out);
    RUN(corr_other_power_and_rank_deficient_s);
    RUN(corr_clips_negative_eigenvalues_of_s);
    RUN(corr_identity_s_is_the_null_rho_n_n_half);
    RUN(corr_errors_are_sentences);
    return check_report("ansatz");
}
