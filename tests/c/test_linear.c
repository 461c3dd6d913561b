/* test_linear.c - y = x w^T + b against naive double loops; gradients against central
 * finite differences of the double reference. */
#include "../../engine/linear.h"
#include "../../engine/rng.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

/* sum((x w^T + b) * r) in double */
static double naive_loss(int nb, int in, int out, const double *x, const double *w,
                         const double *b, const double *r, double *y) {
    double loss = 0;
    for (int i = 0; i < nb; i++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0;
            for (int k = 0; k < in; k++) acc += x[i * in + k] * w[o * in + k];
            if (y) y[i * out + o] = acc;
            if (r) loss += acc * r[i * out + o];
        }
    return loss;
}

static void check_case(int nb, int in, int out, int bias, unsigned seed) {
    AgRng g;
    ag_rng_seed(&g, seed);
    size_t nx = (size_t)nb * in, nw = (size_t)in * out, ny = (size_t)nb * out;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(out * 4), *y = malloc(ny * 4);
    float *dy = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4),
          *db = malloc(out * 4);
    double *xd = malloc(nx * 8), *wd = malloc(nw * 8), *bd = malloc(out * 8);
    double *rd = malloc(ny * 8), *yd = malloc(ny * 8);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(ag_rng_uniform(&g) - 0.5), xd[i] = x[i];
    for (size_t i = 0; i < nw; i++) w[i] = (float)(ag_rng_uniform(&g) - 0.5), wd[i] = w[i];
    for (int i = 0; i < out; i++) b[i] = (float)(ag_rng_uniform(&g) - 0.5), bd[i] = b[i];
    for (size_t i = 0; i < ny; i++) dy[i] = (float)(ag_rng_uniform(&g) - 0.5), rd[i] = dy[i];
    AgError err = AG_ERROR_INIT;
    double *bp = bias ? bd : NULL;
    CHECK(ag_linear_forward(y, x, w, bias ? b : NULL, nb, in, out, &err) == 0, "%s", err.msg);
    naive_loss(nb, in, out, xd, wd, bp, NULL, yd);
    for (size_t i = 0; i < ny; i++) CHECK_CLOSE(y[i], yd[i], 1e-5);

    for (size_t i = 0; i < nw; i++) dw[i] = -1.0f; /* accumulated onto */
    for (int i = 0; i < out; i++) db[i] = -1.0f;
    CHECK(ag_linear_backward(dx, dw, bias ? db : NULL, dy, x, w, nb, in, out, &err) == 0, "%s",
          err.msg);
    struct {
        double *v;
        size_t n;
        const float *got;
        double offset;
    } parts[3] = {{xd, nx, dx, 0}, {wd, nw, dw, -1}, {bd, bias ? (size_t)out : 0, db, -1}};
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < parts[p].n; i++) {
            double h = 1e-3, keep = parts[p].v[i];
            parts[p].v[i] = keep + h;
            double lp = naive_loss(nb, in, out, xd, wd, bp, rd, NULL);
            parts[p].v[i] = keep - h;
            double lm = naive_loss(nb, in, out, xd, wd, bp, rd, NULL);
            parts[p].v[i] = keep;
            CHECK_CLOSE(parts[p].got[i], (lp - lm) / (2 * h) + parts[p].offset, 1e-5);
        }
    /* input gradient alone */
    float *dx2 = malloc(nx * 4);
    CHECK(ag_linear_backward(dx2, NULL, NULL, dy, NULL, w, nb, in, out, &err) == 0, "%s",
          err.msg);
    CHECK(memcmp(dx, dx2, nx * 4) == 0, "dx-only differs");
    free(dx2);
    free(x), free(w), free(b), free(y), free(dy), free(dx), free(dw), free(db);
    free(xd), free(wd), free(bd), free(rd), free(yd);
}

TEST(linear_matches_naive_and_finite_differences) {
    check_case(1, 5, 3, 1, 1);
    check_case(7, 13, 10, 1, 2);
    check_case(4, 9, 1, 0, 3);
    check_case(64, 40, 33, 1, 4);
}

TEST(linear_rejects_empty_sizes) {
    AgError err = AG_ERROR_INIT;
    float buf[4] = {0};
    CHECK(ag_linear_forward(buf, buf, buf, NULL, 0, 2, 2, &err) != 0 &&
              strstr(err.msg, "linear: sizes must be positive (batch 0, in 2, out 2)"),
          "%s", err.msg);
}

int main(void) {
    RUN(linear_matches_naive_and_finite_differences);
    RUN(linear_rejects_empty_sizes);
    return check_report("linear");
}
