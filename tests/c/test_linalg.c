/* test_linalg.c - eig / pow / corr / cosine against matrices with known answers, and
 * the AGOP pieces (nfm, S accumulation, W^T S W / n, feature map) against naive loops
 * in double. */
#include "../../engine/agop.h"
#include "../../engine/linalg.h"
#include "../../engine/rng.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* q (n, n) row-major: a random orthogonal matrix (Gram-Schmidt in double, twice) */
static void random_orthogonal(double *q, int n, AgRng *r) {
    for (int i = 0; i < n * n; i++) q[i] = ag_rng_normal(r);
    for (int j = 0; j < n; j++) /* columns */
        for (int pass = 0; pass < 2; pass++) {
            for (int k = 0; k < j; k++) {
                double dot = 0.0;
                for (int i = 0; i < n; i++) dot += q[i * n + j] * q[i * n + k];
                for (int i = 0; i < n; i++) q[i * n + j] -= dot * q[i * n + k];
            }
            double nn = 0.0;
            for (int i = 0; i < n; i++) nn += q[i * n + j] * q[i * n + j];
            for (int i = 0; i < n; i++) q[i * n + j] /= sqrt(nn);
        }
}

/* a = q diag(lam) q^T as float */
static void conjugate(float *a, const double *q, const double *lam, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++) s += q[i * n + k] * lam[k] * q[j * n + k];
            a[i * n + j] = (float)s;
        }
}

static double max_abs_diff(const float *a, const double *b, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double rel_fro(const float *a, const double *b, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / fmax(den, 1e-300));
}

TEST(eig_of_diagonal_is_sorted_unit_basis) {
    AgError err = AG_ERROR_INIT;
    float a[16] = {3, 0, 0, 0, 0, -1, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0.5f};
    float ev[4], v[16];
    CHECK(ag_eigh(ev, v, a, 4, &err) == 0, "%s", err.msg);
    float want[4] = {-1, 0.5f, 3, 7};
    int at[4] = {1, 3, 0, 2}; /* eigenvalue j lives on coordinate at[j] */
    for (int j = 0; j < 4; j++) {
        CHECK_CLOSE(ev[j], want[j], 1e-6);
        for (int i = 0; i < 4; i++)
            CHECK_CLOSE(fabs(v[i * 4 + j]), i == at[j] ? 1.0 : 0.0, 1e-6);
    }
}

TEST(eig_of_rotated_matrix_recovers_spectrum_and_vectors) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 7);
    enum { N = 12 };
    double q[N * N], lam[N];
    for (int i = 0; i < N; i++) lam[i] = (i - 4) * 1.5 + 0.25 * i * i;
    random_orthogonal(q, N, &r);
    float a[N * N], ev[N], v[N * N];
    conjugate(a, q, lam, N);
    CHECK(ag_eigh(ev, v, a, N, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N; i++) CHECK_CLOSE(ev[i], lam[i], 1e-5); /* lam is ascending */
    /* A v_j = lam_j v_j and V^T V = I */
    for (int j = 0; j < N; j++) {
        for (int i = 0; i < N; i++) {
            double s = 0.0;
            for (int k = 0; k < N; k++) s += (double)a[i * N + k] * v[k * N + j];
            CHECK_CLOSE(s, lam[j] * v[i * N + j], 1e-4);
        }
        for (int k = 0; k < N; k++) {
            double s = 0.0;
            for (int i = 0; i < N; i++) s += (double)v[i * N + j] * v[i * N + k];
            CHECK_CLOSE(s, j == k ? 1.0 : 0.0, 1e-5);
        }
        /* v_j is +-q_j (distinct eigenvalues) */
        double dot = 0.0;
        for (int i = 0; i < N; i++) dot += v[i * N + j] * q[i * N + j];
        CHECK_CLOSE(fabs(dot), 1.0, 1e-5);
    }
    float ev2[N];
    CHECK(ag_eigh(ev2, NULL, a, N, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N; i++) CHECK_CLOSE(ev2[i], lam[i], 1e-5);
}

TEST(pow_half_of_rotated_psd_squares_back) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 11);
    enum { N = 9 };
    double q[N * N], lam[N], root[N], want[N * N];
    for (int i = 0; i < N; i++) lam[i] = (i + 1) * (i + 1), root[i] = i + 1;
    random_orthogonal(q, N, &r);
    float a[N * N], y[N * N], want_f[N * N];
    conjugate(a, q, lam, N);
    conjugate(want_f, q, root, N);
    for (int i = 0; i < N * N; i++) want[i] = want_f[i];
    CHECK(ag_sym_pow(y, a, N, 0.5, &err) == 0, "%s", err.msg);
    CHECK(max_abs_diff(y, want, N * N) < 1e-5, "max diff %g", max_abs_diff(y, want, N * N));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) CHECK(y[i * N + j] == y[j * N + i], "not symmetric");
    /* alpha = 1 gives the matrix back; alpha = 2 its square */
    CHECK(ag_sym_pow(y, a, N, 1.0, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N * N; i++) CHECK_CLOSE(y[i], a[i], 1e-4);
    CHECK(ag_sym_pow(y, want_f, N, 2.0, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N * N; i++) CHECK_CLOSE(y[i], a[i], 1e-4);
}

/* q (8, 8): Sylvester's Hadamard matrix / sqrt(8), orthogonal; q diag(lam) q^T with
 * integer lam is exactly representable in float (multiples of 1/8), so the zero
 * eigenvalues stay exactly zero and the expected power is exact. */
static void hadamard8(double *q) {
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            q[i * 8 + j] = (__builtin_popcount((unsigned)(i & j)) & 1 ? -1.0 : 1.0) / sqrt(8.0);
}

TEST(pow_clips_negative_eigenvalues_of_rank_deficient_matrix) {
    AgError err = AG_ERROR_INIT;
    enum { N = 8 };
    double q[N * N], lam[N] = {-2, -1, 0, 0, 0, 1, 4, 9};
    double root[N] = {0, 0, 0, 0, 0, 1, 2, 3}, want[N * N];
    hadamard8(q);
    float a[N * N], y[N * N], want_f[N * N], ev[N];
    conjugate(a, q, lam, N);
    conjugate(want_f, q, root, N);
    for (int i = 0; i < N * N; i++) want[i] = want_f[i];
    CHECK(ag_eigh(ev, NULL, a, N, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N; i++) CHECK_CLOSE(ev[i], lam[i], 1e-6);
    CHECK(ag_sym_pow(y, a, N, 0.5, &err) == 0, "%s", err.msg);
    CHECK(max_abs_diff(y, want, N * N) < 1e-6, "max diff %g", max_abs_diff(y, want, N * N));
    /* all negative: the power is the zero matrix */
    double neg[N] = {-8, -7, -6, -5, -4, -3, -2, -1};
    conjugate(a, q, neg, N);
    CHECK(ag_sym_pow(y, a, N, 0.5, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N * N; i++) CHECK(fabs(y[i]) < 1e-6, "y[%d]=%g", i, y[i]);
    CHECK(ag_sym_pow(y, a, N, 0.0, &err) != 0, "alpha 0 accepted");
    CHECK(strstr(err.msg, "exponent") != NULL, "%s", err.msg);
    CHECK(ag_sym_pow(y, a, N, NAN, &err) != 0, "alpha NaN accepted");
}

TEST(asymmetry_measures_relative_gap) {
    float a[4] = {1, 2, 2.5f, 4};
    CHECK_CLOSE(ag_asymmetry(a, 2), 0.125, 1e-12);
    float s[4] = {1, 2, 2, 4};
    CHECK(ag_asymmetry(s, 2) == 0.0, "symmetric");
}

TEST(corr_and_cosine_known_values) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 5);
    enum { N = 100 };
    float a[N], b[N], c[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)ag_rng_normal(&r);
        b[i] = 2 * a[i] + 3;
        c[i] = -0.5f * a[i] + 1;
    }
    double v;
    CHECK(ag_pearson(&v, a, b, N, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(v, 1.0, 1e-12);
    CHECK(ag_pearson(&v, a, c, N, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(v, -1.0, 1e-12);
    /* a hand-computed case: x = (1,2,3,4), y = (1,3,2,4): cov 4 / sqrt(5 * 5) = 0.8 */
    float x[4] = {1, 2, 3, 4}, y[4] = {1, 3, 2, 4};
    CHECK(ag_pearson(&v, x, y, 4, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(v, 0.8, 1e-12);
    /* cosine((1,0),(1,1)) = 1/sqrt(2); cosine is not shift invariant */
    float e1[2] = {1, 0}, e11[2] = {1, 1};
    CHECK(ag_cosine(&v, e1, e11, 2, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(v, 1.0 / sqrt(2.0), 1e-12);
    CHECK(ag_cosine(&v, x, y, 4, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(v, 29.0 / 30.0, 1e-12);
    float k[3] = {2, 2, 2}, z[3] = {0, 0, 0};
    CHECK(ag_pearson(&v, k, x, 3, &err) != 0, "constant accepted");
    CHECK(strstr(err.msg, "constant") != NULL, "%s", err.msg);
    CHECK(ag_cosine(&v, x, z, 3, &err) != 0, "zero accepted");
}

TEST(nfm_matches_naive) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 9);
    enum { CO = 5, D = 18 };
    float w[CO * D], n[D * D];
    double want[D * D];
    ag_rng_fill_normal(&r, w, CO * D, 0, 1);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = 0.0;
            for (int c = 0; c < CO; c++) s += (double)w[c * D + i] * w[c * D + j];
            want[i * D + j] = s;
        }
    CHECK(ag_nfm(n, w, CO, D, &err) == 0, "%s", err.msg);
    CHECK(rel_fro(n, want, D * D) < 1e-6, "rel %g", rel_fro(n, want, D * D));
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) CHECK(n[i * D + j] == n[j * D + i], "not symmetric");
}

/* naive S += sum_{b,p} g g^T in double */
static void naive_s(double *s, const float *g, int64_t batch, int64_t co, int64_t hw) {
    for (int64_t b = 0; b < batch; b++)
        for (int64_t p = 0; p < hw; p++)
            for (int64_t i = 0; i < co; i++)
                for (int64_t j = 0; j < co; j++)
                    s[i * co + j] +=
                        (double)g[(b * co + i) * hw + p] * g[(b * co + j) * hw + p];
}

TEST(agop_accumulate_matches_naive_across_chunks) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 13);
    /* (batch, co, hw): one chunk; hw not dividing the chunk; several calls */
    int64_t shapes[3][3] = {{3, 4, 5}, {7, 6, 1000}, {2, 17, 2500}};
    for (int t = 0; t < 3; t++) {
        int64_t B = shapes[t][0], co = shapes[t][1], hw = shapes[t][2];
        float *g = malloc((size_t)(B * co * hw) * sizeof *g);
        double *s = calloc((size_t)(co * co), sizeof *s),
               *want = calloc((size_t)(co * co), sizeof *want);
        for (int call = 0; call < 2; call++) {
            ag_rng_fill_normal(&r, g, B * co * hw, 0.1f, 1);
            CHECK(ag_agop_accumulate(s, g, B, co, hw, &err) == 0, "%s", err.msg);
            naive_s(want, g, B, co, hw);
        }
        double ef = 0, den = 0;
        for (int64_t i = 0; i < co * co; i++) {
            ef += (s[i] - want[i]) * (s[i] - want[i]);
            den += want[i] * want[i];
        }
        CHECK(sqrt(ef / den) < 1e-6, "float path rel %g (shape %d)", sqrt(ef / den), t);
        for (int64_t i = 0; i < co; i++)
            for (int64_t j = 0; j < co; j++) CHECK(s[i * co + j] == s[j * co + i], "asym");
        free(g);
        free(s);
        free(want);
    }
    double s1[1] = {0};
    CHECK(ag_agop_accumulate(s1, NULL, -1, 1, 1, &err) != 0, "negative batch accepted");
    /* a NaN in the last chunk: an error, and the accumulator is left as it was */
    enum { B = 3, CO = 2, HW = 3000 };
    float *g = malloc((size_t)B * CO * HW * sizeof *g);
    for (int i = 0; i < B * CO * HW; i++) g[i] = 1.0f;
    g[B * CO * HW - 1] = NAN;
    double s2[4] = {1, 2, 2, 5};
    CHECK(ag_agop_accumulate(s2, g, B, CO, HW, &err) != 0, "NaN accepted");
    CHECK(strstr(err.msg, "non-finite") != NULL, "%s", err.msg);
    CHECK(s2[0] == 1 && s2[1] == 2 && s2[2] == 2 && s2[3] == 5, "accumulator changed");
    g[B * CO * HW - 1] = INFINITY;
    CHECK(ag_agop_accumulate(s2, g, 1, CO, 4, &err) == 0, "first image is finite");
    CHECK(s2[0] == 5 && s2[1] == 6 && s2[3] == 9, "%g %g %g", s2[0], s2[1], s2[3]);
    CHECK(ag_agop_accumulate(s2, g, B, CO, HW, &err) != 0, "Inf accepted");
    free(g);
}

TEST(agop_finish_matches_naive) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 17);
    enum { CO = 7, D = 27, B = 3, HW = 10 };
    float w[CO * D], g[B * CO * HW], out[D * D];
    double s[CO * CO] = {0}, want[D * D];
    ag_rng_fill_normal(&r, w, CO * D, 0, 1);
    ag_rng_fill_normal(&r, g, B * CO * HW, 0, 1);
    naive_s(s, g, B, CO, HW);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double v = 0.0;
            for (int a = 0; a < CO; a++)
                for (int b = 0; b < CO; b++)
                    v += (double)w[a * D + i] * s[a * CO + b] * w[b * D + j];
            want[i * D + j] = v / 4.0;
        }
    CHECK(ag_agop_finish(out, s, w, CO, D, 4.0, &err) == 0, "%s", err.msg);
    CHECK(rel_fro(out, want, D * D) < 1e-6, "rel %g", rel_fro(out, want, D * D));
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) CHECK(out[i * D + j] == out[j * D + i], "asym");
    CHECK(ag_agop_finish(out, s, w, CO, D, 0.0, &err) != 0, "n = 0 accepted");
}

/* reference G^alpha: naive W^T S W / n in double, then ag_eigh_d and the clipped power */
static void naive_agop_pow(double *out, const double *s, const float *w, int co, int d,
                           double n, double alpha) {
    double *g = malloc((size_t)d * d * sizeof *g), *lam = malloc((size_t)d * sizeof *lam);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double v = 0.0;
            for (int a = 0; a < co; a++)
                for (int b = 0; b < co; b++)
                    v += (double)w[a * d + i] * s[a * co + b] * w[b * d + j];
            g[i * d + j] = v / n;
        }
    AgError err = AG_ERROR_INIT;
    ag_eigh_d(lam, g, d, &err); /* g: eigenvectors, column-major */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double v = 0.0;
            for (int k = 0; k < d; k++)
                if (lam[k] > 0) v += g[k * d + i] * pow(lam[k], alpha) * g[k * d + j];
            out[i * d + j] = v;
        }
    free(g);
    free(lam);
}

TEST(agop_pow_low_rank_matches_eig_of_full_matrix) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 23);
    /* d > co (low-rank route, incl. a zero channel: S singular) and d <= co (direct) */
    int sizes[2][2] = {{5, 27}, {12, 9}};
    double alphas[3] = {0.5, 1.0, 1.5};
    for (int t = 0; t < 2; t++) {
        int co = sizes[t][0], d = sizes[t][1], hw = 6, B = 2;
        float *w = malloc((size_t)co * d * 4), *g = malloc((size_t)B * co * hw * 4);
        float *out = malloc((size_t)d * d * 4);
        double *s = calloc((size_t)co * co, 8), *want = malloc((size_t)d * d * 8);
        ag_rng_fill_normal(&r, w, co * d, 0, 1);
        ag_rng_fill_normal(&r, g, B * co * hw, 0, 1);
        for (int b = 0; b < B; b++)
            for (int p = 0; p < hw; p++) g[(b * co + 1) * hw + p] = 0.0f;
        naive_s(s, g, B, co, hw);
        for (int ai = 0; ai < 3; ai++) {
            naive_agop_pow(want, s, w, co, d, 3.0, alphas[ai]);
            CHECK(ag_agop_pow(out, s, w, co, d, 3.0, alphas[ai], &err) == 0, "%s", err.msg);
            CHECK(rel_fro(out, want, d * d) < 1e-5, "co %d d %d alpha %g: rel %g", co, d,
                  alphas[ai], rel_fro(out, want, d * d));
        }
        free(w);
        free(g);
        free(out);
        free(s);
        free(want);
    }
}

TEST(feature_map_matches_naive_with_padding) {
    AgError err = AG_ERROR_INIT;
    AgRng r;
    ag_rng_seed(&r, 19);
    enum { C = 2, H = 5, W = 6, K = 3 };
    int d = C * K * K;
    float m[18 * 18], x[C * H * W];
    ag_rng_fill_normal(&r, m, d * d, 0, 1);
    ag_rng_fill_normal(&r, x, C * H * W, 0, 1);
    for (int pad = 0; pad <= 2; pad++) {
        int ho = H + 2 * pad - K + 1, wo = W + 2 * pad - K + 1;
        float out[64];
        double want[64], lo = 1e300, hi = -1e300;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                double p[18], nn = 0.0;
                for (int c = 0; c < C; c++)
                    for (int a = 0; a < K; a++)
                        for (int b = 0; b < K; b++) {
                            int yi = i + a - pad, xj = j + b - pad;
                            p[(c * K + a) * K + b] = (yi >= 0 && yi < H && xj >= 0 && xj < W)
                                                         ? x[(c * H + yi) * W + xj]
                                                         : 0.0;
                        }
                for (int u = 0; u < d; u++) {
                    double s = 0.0;
                    for (int v = 0; v < d; v++) s += (double)m[u * d + v] * p[v];
                    nn += s * s;
                }
                want[i * wo + j] = sqrt(nn);
                lo = fmin(lo, sqrt(nn));
                hi = fmax(hi, sqrt(nn));
            }
        for (int q = 0; q < ho * wo; q++) want[q] = (want[q] - lo) / (hi - lo);
        CHECK(ag_feature_map(out, m, x, C, H, W, K, pad, &err) == 0, "%s", err.msg);
        CHECK(max_abs_diff(out, want, ho * wo) < 1e-5, "pad %d: diff %g", pad,
              max_abs_diff(out, want, ho * wo));
    }
    float out[4];
    CHECK(ag_feature_map(out, m, x, C, 1, 1, K, 0, &err) != 0, "too small accepted");
    CHECK(strstr(err.msg, "smaller than kernel") != NULL, "%s", err.msg);
    /* a zero matrix gives a constant map: all zeros */
    float z[18 * 18] = {0}, o[64];
    CHECK(ag_feature_map(o, z, x, C, H, W, K, 1, &err) == 0, "%s", err.msg);
    for (int q = 0; q < H * W; q++) CHECK(o[q] == 0.0f, "o[%d]=%g", q, o[q]);
}

int main(void) {
    RUN(eig_of_diagonal_is_sorted_unit_basis);
    RUN(eig_of_rotated_matrix_recovers_spectrum_and_vectors);
    RUN(pow_half_of_rotated_psd_squares_back);
    RUN(pow_clips_negative_eigenvalues_of_rank_deficient_matrix);
    RUN(asymmetry_measures_relative_gap);
    RUN(corr_and_cosine_known_values);
    RUN(nfm_matches_naive);
    RUN(agop_accumulate_matches_naive_across_chunks);
    RUN(agop_finish_matches_naive);
    RUN(agop_pow_low_rank_matches_eig_of_full_matrix);
    RUN(feature_map_matches_naive_with_padding);
    return check_report("linalg");
}
