/* test_act.c - relu, softmax, log-softmax, cross-entropy and dropout against hand
 * computations and double-precision references. */
#include "../../engine/act.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

TEST(relu_forward_and_backward) {
    float x[6] = {-2, -0.0f, 0, 0.5f, 3, NAN}, y[6], dy[6] = {1, 2, 3, 4, 5, 6}, dx[6];
    ag_relu_forward(y, x, 6);
    float want[5] = {0, 0, 0, 0.5f, 3};
    for (int i = 0; i < 5; i++) CHECK(y[i] == want[i], "y[%d] = %g", i, y[i]);
    CHECK(isnan(y[5]), "relu(NaN) = %g, want NaN", y[5]);
    ag_relu_backward(dx, dy, y, 6);
    float wdx[6] = {0, 0, 0, 4, 5, 0};
    for (int i = 0; i < 6; i++) CHECK(dx[i] == wdx[i], "dx[%d] = %g", i, dx[i]);
    ag_relu_forward(x, x, 6); /* in place */
    CHECK(x[0] == 0 && x[4] == 3, "in place");
}

TEST(softmax_and_log_softmax_match_double_and_are_stable) {
    /* row 2 would overflow a naive exp in float */
    float x[9] = {1, 2, 3, 1000, 1001, 1002, -50, 0, 50}, y[9], ly[9];
    AgError err = AG_ERROR_INIT;
    CHECK(ag_softmax_forward(y, x, 3, 3, &err) == 0, "%s", err.msg);
    CHECK(ag_log_softmax_forward(ly, x, 3, 3, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        double m = fmax(x[3 * i], fmax(x[3 * i + 1], x[3 * i + 2])), s = 0, rowsum = 0;
        for (int j = 0; j < 3; j++) s += exp((double)x[3 * i + j] - m);
        for (int j = 0; j < 3; j++) {
            double p = exp((double)x[3 * i + j] - m) / s;
            CHECK_CLOSE(y[3 * i + j], p, 1e-6);
            CHECK_CLOSE(ly[3 * i + j], log(p), 1e-6);
            CHECK(isfinite(ly[3 * i + j]) || p == 0, "log_softmax not finite");
            rowsum += y[3 * i + j];
        }
        CHECK_CLOSE(rowsum, 1.0, 1e-6);
    }
    CHECK_CLOSE(ly[6], -100.0, 1e-6); /* log(e^-50 / (e^-50 + 1 + e^50)) */
}

/* logits [[1,2,3],[1,1,1]], labels [2, 0]:
 * loss = (log(e + e^2 + e^3) - 3 + log 3) / 2 = (0.40760596444 + 1.09861228867) / 2 */
TEST(cross_entropy_matches_a_hand_computation) {
    float logits[6] = {1, 2, 3, 1, 1, 1}, labels[2] = {2, 0}, g[6];
    double loss;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_cross_entropy_forward(&loss, g, logits, labels, 2, 3, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(loss, 0.753109126555, 1e-9);
    double e = exp(1.0), z = e + e * e + e * e * e;
    double want[6] = {e / z / 2,         e * e / z / 2, (e * e * e / z - 1) / 2,
                      (1.0 / 3 - 1) / 2, 1.0 / 6,       1.0 / 6};
    for (int i = 0; i < 6; i++) CHECK_CLOSE(g[i], want[i], 1e-7);
    /* the gradient is optional */
    CHECK(ag_cross_entropy_forward(&loss, NULL, logits, labels, 2, 3, &err) == 0, "%s",
          err.msg);
    CHECK_CLOSE(loss, 0.753109126555, 1e-9);
}

static double ce_double(const double *x, const float *labels, int nb, int nc) {
    double total = 0;
    for (int i = 0; i < nb; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < nc; j++) m = fmax(m, x[i * nc + j]);
        for (int j = 0; j < nc; j++) s += exp(x[i * nc + j] - m);
        total += log(s) + m - x[i * nc + (int)labels[i]];
    }
    return total / nb;
}

TEST(cross_entropy_gradient_matches_finite_differences) {
    enum { B = 5, C = 7 };
    float x[B * C], g[B * C], labels[B] = {0, 6, 3, 3, 1};
    double xd[B * C];
    AgRng r;
    ag_rng_seed(&r, 3);
    for (int i = 0; i < B * C; i++) x[i] = (float)(4 * ag_rng_uniform(&r) - 2), xd[i] = x[i];
    double loss;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_cross_entropy_forward(&loss, g, x, labels, B, C, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(loss, ce_double(xd, labels, B, C), 1e-9);
    for (int i = 0; i < B * C; i++) {
        double h = 1e-5, keep = xd[i];
        xd[i] = keep + h;
        double lp = ce_double(xd, labels, B, C);
        xd[i] = keep - h;
        double lm = ce_double(xd, labels, B, C);
        xd[i] = keep;
        CHECK_CLOSE(g[i], (lp - lm) / (2 * h), 1e-6);
    }
}

TEST(cross_entropy_rejects_bad_labels_naming_label_and_sample) {
    float logits[6] = {0}, g[6];
    double loss;
    AgError err = AG_ERROR_INIT;
    float bad[][2] = {{0, 3}, {-1, 0}, {1.5f, 0}, {0, NAN}};
    const char *want[] = {"label 3 of sample 2 (of 2) is not a class id in 0..2",
                          "label -1 of sample 1", "label 1.5 of sample 1",
                          "label nan of sample 2"};
    for (int t = 0; t < 4; t++) {
        int rc = ag_cross_entropy_forward(&loss, g, logits, bad[t], 2, 3, &err);
        CHECK(rc != 0 && strstr(err.msg, want[t]) && strstr(err.msg, "cross_entropy: "),
              "case %d: rc=%d msg=\"%s\"", t, rc, err.msg);
    }
    CHECK(ag_cross_entropy_forward(&loss, g, logits, bad[0], 0, 3, &err) != 0, "empty batch");
}

TEST(dropout_is_inverted_seeded_and_has_the_right_rate) {
    enum { N = 200000 };
    float *x = malloc(N * 4), *y = malloc(N * 4), *m = malloc(N * 4), *m2 = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = (float)(i % 7) - 3.0f;
    AgRng r;
    AgError err = AG_ERROR_INIT;
    ag_rng_seed(&r, 42);
    CHECK(ag_dropout_forward(y, m, x, N, 0.25, &r, &err) == 0, "%s", err.msg);
    int zeros = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        if (m[i] == 0.0f)
            zeros++;
        else if (m[i] != (float)(1 / 0.75))
            bad++;
        if (y[i] != x[i] * m[i]) bad++;
    }
    CHECK(bad == 0, "%d bad mask or output values", bad);
    /* 0.25 +- 5 standard deviations (sd = sqrt(.25*.75/N) ~ 0.001) */
    CHECK(fabs(zeros / (double)N - 0.25) < 0.005, "dropped fraction %g", zeros / (double)N);
    ag_rng_seed(&r, 42);
    CHECK(ag_dropout_forward(y, m2, x, N, 0.25, &r, &err) == 0, "%s", err.msg);
    CHECK(memcmp(m, m2, N * 4) == 0, "same seed, different mask");
    CHECK(ag_dropout_forward(y, m, x, N, 0.0, &r, &err) == 0, "%s", err.msg);
    CHECK(memcmp(y, x, N * 4) == 0, "p = 0 is the identity");
    CHECK(ag_dropout_forward(y, m, x, N, 1.0, &r, &err) == 0, "%s", err.msg);
    int nonzero = 0;
    for (int i = 0; i < N; i++) nonzero += y[i] != 0.0f || m[i] != 0.0f;
    CHECK(nonzero == 0, "p = 1 leaves %d non-zeros", nonzero);
    CHECK(ag_dropout_forward(y, m, x, N, 1.5, &r, &err) != 0 && strstr(err.msg, "dropout: p"),
          "p = 1.5: %s", err.msg);
    CHECK(ag_dropout_forward(y, m, x, N, NAN, &r, &err) != 0, "p = NaN accepted");
    free(x), free(y), free(m), free(m2);
}

int main(void) {
    RUN(relu_forward_and_backward);
    RUN(softmax_and_log_softmax_match_double_and_are_stable);
    RUN(cross_entropy_matches_a_hand_computation);
    RUN(cross_entropy_gradient_matches_finite_differences);
    RUN(cross_entropy_rejects_bad_labels_naming_label_and_sample);
    RUN(dropout_is_inverted_seeded_and_has_the_right_rate);
    return check_report("act");
}
