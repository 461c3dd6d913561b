/* test_batchnorm.c - BatchNorm2d in training and evaluation mode against a double
 * reference; gradients against central finite differences of that reference. */
#include "../../engine/batchnorm.h"
#include "../../engine/rng.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int b, c, hw;
} Cfg;

static const double EPS = 1e-5;

/* sum(bn(x) * r) in double; training uses the batch statistics (two passes), evaluation
 * the running ones. y (may be NULL) gets the output, mean/var (may be NULL) the
 * statistics used. */
static double naive_loss(const Cfg *c, int training, const double *x, const double *gamma,
                         const double *beta, const double *rm, const double *rv,
                         const double *r, double *y, double *mean, double *var) {
    double loss = 0;
    const int n = c->b * c->hw;
    for (int ch = 0; ch < c->c; ch++) {
        double m = 0, v = 0;
        if (training) {
            for (int b = 0; b < c->b; b++)
                for (int j = 0; j < c->hw; j++) m += x[(b * c->c + ch) * c->hw + j];
            m /= n;
            for (int b = 0; b < c->b; b++)
                for (int j = 0; j < c->hw; j++) {
                    double d = x[(b * c->c + ch) * c->hw + j] - m;
                    v += d * d;
                }
            v /= n;
        } else {
            m = rm[ch], v = rv[ch];
        }
        if (mean) mean[ch] = m;
        if (var) var[ch] = v;
        for (int b = 0; b < c->b; b++)
            for (int j = 0; j < c->hw; j++) {
                int at = (b * c->c + ch) * c->hw + j;
                double yv = (x[at] - m) / sqrt(v + EPS) * gamma[ch] + beta[ch];
                if (y) y[at] = yv;
                if (r) loss += yv * r[at];
            }
    }
    return loss;
}

static void check_case(const Cfg *c, int training, double offset, unsigned seed) {
    AgRng g;
    ag_rng_seed(&g, seed);
    size_t n = (size_t)c->b * c->c * c->hw;
    float *x = malloc(n * 4), *y = malloc(n * 4), *dy = malloc(n * 4), *dx = malloc(n * 4);
    double *xd = malloc(n * 8), *yd = malloc(n * 8), *rd = malloc(n * 8);
    float gm[8], bt[8], rm[8], rv[8], sm[8], si[8], dg[8], dbt[8];
    double gmd[8], btd[8], rmd[8], rvd[8], mean[8], var[8];
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(offset + 2 * ag_rng_uniform(&g) - 1 + (i % 3));
        xd[i] = x[i];
        dy[i] = (float)(2 * ag_rng_uniform(&g) - 1);
        rd[i] = dy[i];
    }
    for (int i = 0; i < c->c; i++) {
        gm[i] = (float)(0.5 + ag_rng_uniform(&g)), gmd[i] = gm[i];
        bt[i] = (float)(ag_rng_uniform(&g) - 0.5), btd[i] = bt[i];
        rm[i] = (float)(offset + ag_rng_uniform(&g)), rmd[i] = rm[i];
        rv[i] = (float)(0.5 + ag_rng_uniform(&g)), rvd[i] = rv[i];
        dg[i] = dbt[i] = 0.5f;
    }
    AgError err = AG_ERROR_INIT;
    int rc = ag_batchnorm2d_forward(y, sm, si, rm, rv, x, gm, bt, c->b, c->c, c->hw, training,
                                    0.1, EPS, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    naive_loss(c, training, xd, gmd, btd, rmd, rvd, NULL, yd, mean, var);
    for (size_t i = 0; i < n; i++) CHECK_CLOSE(y[i], yd[i], 2e-5);
    const int cnt = c->b * c->hw;
    for (int i = 0; i < c->c; i++) {
        CHECK_CLOSE(sm[i], mean[i], 1e-6);
        CHECK_CLOSE(si[i], 1 / sqrt(var[i] + EPS), 1e-5);
        if (training) {
            CHECK_CLOSE(rm[i], 0.9 * rmd[i] + 0.1 * mean[i], 1e-6);
            CHECK_CLOSE(rv[i], 0.9 * rvd[i] + 0.1 * var[i] * cnt / (cnt - 1), 1e-6);
        } else {
            CHECK(rm[i] == (float)rmd[i] && rv[i] == (float)rvd[i],
                  "eval changed running stats");
        }
    }

    rc = ag_batchnorm2d_backward(dx, dg, dbt, dy, x, gm, sm, si, c->b, c->c, c->hw, training,
                                 &err);
    CHECK(rc == 0, "backward: %s", err.msg);
    struct {
        double *v;
        size_t n;
        const float *got;
        double add;
    } parts[3] = {{xd, n, dx, 0}, {gmd, (size_t)c->c, dg, 0.5}, {btd, (size_t)c->c, dbt, 0.5}};
    int bad = 0;
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < parts[p].n && bad < 3; i++) {
            double h = 1e-4, keep = parts[p].v[i];
            parts[p].v[i] = keep + h;
            double lp = naive_loss(c, training, xd, gmd, btd, rmd, rvd, rd, NULL, NULL, NULL);
            parts[p].v[i] = keep - h;
            double lm = naive_loss(c, training, xd, gmd, btd, rmd, rvd, rd, NULL, NULL, NULL);
            parts[p].v[i] = keep;
            double ref = (lp - lm) / (2 * h) + parts[p].add;
            if (fabs(parts[p].got[i] - ref) > 2e-4 * fmax(1, fabs(ref))) {
                bad++;
                CHECK(0, "part %d [%zu] = %.7g, finite difference %.7g (B=%d C=%d HW=%d %s)", p,
                      i, parts[p].got[i], ref, c->b, c->c, c->hw, training ? "train" : "eval");
            }
        }
    /* dx alone */
    float *dx2 = malloc(n * 4);
    rc = ag_batchnorm2d_backward(dx2, NULL, NULL, dy, x, gm, sm, si, c->b, c->c, c->hw,
                                 training, &err);
    CHECK(rc == 0 && memcmp(dx, dx2, n * 4) == 0, "dx-only differs: %s", err.msg);
    free(dx2);
    free(x), free(y), free(dy), free(dx), free(xd), free(yd), free(rd);
}

static const Cfg cfgs[] = {{2, 3, 16}, {1, 2, 15}, {5, 1, 1}, {4, 8, 9}, {3, 2, 49}};

TEST(batchnorm2d_training_matches_double_and_finite_differences) {
    for (int i = 0; i < 5; i++) check_case(&cfgs[i], 1, 0.0, 10 + i);
}

TEST(batchnorm2d_evaluation_matches_double_and_finite_differences) {
    for (int i = 0; i < 5; i++) check_case(&cfgs[i], 0, 0.0, 20 + i);
}

/* A mean far from zero must not destroy the variance (single-pass sums would). */
TEST(batchnorm2d_statistics_survive_a_large_offset) {
    const Cfg c = {4, 2, 25};
    check_case(&c, 1, 300.0, 30);
    check_case(&c, 0, 300.0, 31);
}

TEST(batchnorm2d_rejects_bad_arguments) {
    AgError err = AG_ERROR_INIT;
    float buf[4] = {1, 2, 3, 4}, s[2], t[2], rm[1] = {0}, rv[1] = {1};
    CHECK(ag_batchnorm2d_forward(buf, s, t, rm, rv, buf, NULL, NULL, 1, 1, 1, 1, 0.1, EPS,
                                 &err) != 0 &&
              strstr(err.msg, "batchnorm2d: training needs more than 1 value per channel"),
          "%s", err.msg);
    CHECK(ag_batchnorm2d_forward(buf, s, t, rm, rv, buf, NULL, NULL, 1, 1, 1, 0, 0.1, EPS,
                                 &err) == 0,
          "evaluation with one value: %s", err.msg);
    CHECK(ag_batchnorm2d_forward(buf, s, t, rm, rv, buf, NULL, NULL, 2, 1, 2, 1, 1.5, EPS,
                                 &err) != 0 &&
              strstr(err.msg, "momentum must be in [0, 1], got 1.5"),
          "%s", err.msg);
    CHECK(ag_batchnorm2d_forward(buf, s, t, rm, rv, buf, NULL, NULL, 2, 1, 2, 1, 0.1, 0.0,
                                 &err) != 0 &&
              strstr(err.msg, "eps must be positive"),
          "%s", err.msg);
    CHECK(ag_batchnorm2d_forward(buf, s, t, NULL, NULL, buf, NULL, NULL, 2, 1, 2, 0, 0.1, EPS,
                                 &err) != 0,
          "evaluation without running stats");
}

int main(void) {
    RUN(batchnorm2d_training_matches_double_and_finite_differences);
    RUN(batchnorm2d_evaluation_matches_double_and_finite_differences);
    RUN(batchnorm2d_statistics_survive_a_large_offset);
    RUN(batchnorm2d_rejects_bad_arguments);
    return check_report("batchnorm");
}
