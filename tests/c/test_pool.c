/* test_pool.c - max, average and adaptive average pooling against naive references in
 * double, gradients against central finite differences of those references. */
#include "../../engine/pool.h"
#include "../../engine/rng.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int b, c, h, w, k, stride, pad;
} Cfg;

enum { MAXP, AVGP, ADAPT };

/* One output cell of pooling kind `kind` over plane xp (H x W), in double. For ADAPT,
 * k and stride are unused and (oh, ow) give the output size. */
static double cell(int kind, const double *xp, int h, int w, const Cfg *c, int i, int j, int oh,
                   int ow, int *argmax) {
    if (kind == ADAPT) {
        int h0 = (int)floor((double)i * h / oh), h1 = (int)ceil((double)(i + 1) * h / oh);
        int w0 = (int)floor((double)j * w / ow), w1 = (int)ceil((double)(j + 1) * w / ow);
        double acc = 0;
        for (int a = h0; a < h1; a++)
            for (int b = w0; b < w1; b++) acc += xp[a * w + b];
        return acc / ((h1 - h0) * (w1 - w0));
    }
    double best = -INFINITY, acc = 0;
    int at = -1;
    for (int a = 0; a < c->k; a++)
        for (int b = 0; b < c->k; b++) {
            int ih = i * c->stride - c->pad + a, iw = j * c->stride - c->pad + b;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue; /* padding: 0 for AVGP */
            double v = xp[ih * w + iw];
            acc += v;
            if (v > best) best = v, at = ih * w + iw;
        }
    if (argmax) *argmax = at;
    return kind == MAXP ? best : acc / (c->k * c->k);
}

static double naive_loss(int kind, const Cfg *c, int oh, int ow, const double *x,
                         const double *r, double *y, int *idx) {
    double loss = 0;
    for (int p = 0; p < c->b * c->c; p++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                size_t at = ((size_t)p * oh + i) * ow + j;
                int am = -1;
                double v =
                    cell(kind, x + (size_t)p * c->h * c->w, c->h, c->w, c, i, j, oh, ow, &am);
                if (y) y[at] = v;
                if (idx) idx[at] = am;
                if (r) loss += v * r[at];
            }
    return loss;
}

static void check_config(int kind, const Cfg *c, int oh, int ow, unsigned seed) {
    AgError err = AG_ERROR_INIT;
    AgPoolShape s;
    if (kind != ADAPT) {
        int64_t xs[4] = {c->b, c->c, c->h, c->w};
        int rc = ag_pool2d_shape(&s, xs, c->k, c->stride, c->pad, "pool", &err);
        CHECK(rc == 0, "%s", err.msg);
        if (rc) return;
        oh = s.ho, ow = s.wo;
        CHECK(oh == (c->h + 2 * c->pad - c->k) / c->stride + 1, "ho %d", oh);
    }
    size_t nx = (size_t)c->b * c->c * c->h * c->w, ny = (size_t)c->b * c->c * oh * ow;
    float *x = malloc(nx * 4), *dx = malloc(nx * 4), *y = malloc(ny * 4), *idx = malloc(ny * 4);
    float *dy = malloc(ny * 4);
    double *xd = malloc(nx * 8), *yd = malloc(ny * 8), *rd = malloc(ny * 8);
    int *id = malloc(ny * sizeof(int));
    AgRng g;
    ag_rng_seed(&g, seed);
    /* distinct values 0.01 apart (a shuffled ramp): the max is unique and a finite
     * difference step of 1e-3 never changes which pixel wins */
    for (size_t i = 0; i < nx; i++) xd[i] = 0.01 * (double)i - 0.005 * (double)nx;
    for (size_t i = nx; i > 1; i--) {
        size_t j = (size_t)ag_rng_below(&g, i);
        double t = xd[i - 1];
        xd[i - 1] = xd[j], xd[j] = t;
    }
    for (size_t i = 0; i < nx; i++) x[i] = (float)xd[i], xd[i] = x[i];
    for (size_t i = 0; i < ny; i++) dy[i] = (float)(ag_rng_uniform(&g) * 2 - 1), rd[i] = dy[i];

    int rc;
    if (kind == MAXP)
        rc = ag_maxpool2d_forward(y, idx, x, &s, &err);
    else if (kind == AVGP)
        rc = ag_avgpool2d_forward(y, x, &s, &err);
    else
        rc =
            ag_adaptive_avgpool2d_forward(y, x, (int64_t)c->b * c->c, c->h, c->w, oh, ow, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    naive_loss(kind, c, oh, ow, xd, NULL, yd, id);
    for (size_t i = 0; i < ny; i++) {
        CHECK_CLOSE(y[i], yd[i], 1e-5);
        if (kind == MAXP)
            CHECK(idx[i] == (float)id[i], "idx[%zu] = %g, want %d", i, idx[i], id[i]);
    }

    for (size_t i = 0; i < nx; i++) dx[i] = 99.0f; /* overwritten, not accumulated */
    if (kind == MAXP)
        rc = ag_maxpool2d_backward(dx, idx, dy, (int64_t)c->b * c->c, c->h, c->w, oh, ow, &err);
    else if (kind == AVGP)
        rc = ag_avgpool2d_backward(dx, dy, &s, &err);
    else
        rc = ag_adaptive_avgpool2d_backward(dx, dy, (int64_t)c->b * c->c, c->h, c->w, oh, ow,
                                            &err);
    CHECK(rc == 0, "backward: %s", err.msg);
    int bad = 0;
    for (size_t i = 0; i < nx && bad < 3; i++) {
        const double hstep = 1e-3, keep = xd[i];
        xd[i] = keep + hstep;
        double lp = naive_loss(kind, c, oh, ow, xd, rd, NULL, NULL);
        xd[i] = keep - hstep;
        double lm = naive_loss(kind, c, oh, ow, xd, rd, NULL, NULL);
        xd[i] = keep;
        double ref = (lp - lm) / (2 * hstep);
        if (fabs(dx[i] - ref) > 1e-5 * fmax(1, fabs(ref))) {
            bad++;
            CHECK(0, "dx[%zu] = %.7g, finite difference %.7g", i, dx[i], ref);
        }
    }
    free(x), free(dx), free(y), free(idx), free(dy), free(xd), free(yd), free(rd), free(id);
}

/* {b, c, h, w, k, stride, pad} */
static const Cfg cfgs[] = {{2, 3, 8, 8, 2, 2, 0}, {1, 2, 7, 9, 2, 2, 0}, {2, 2, 7, 7, 3, 2, 1},
                           {3, 1, 9, 8, 3, 1, 1}, {1, 2, 5, 5, 3, 3, 0}, {2, 1, 11, 7, 5, 2, 2},
                           {1, 1, 2, 2, 2, 2, 0}, {2, 2, 6, 5, 1, 1, 0}};
#define NCFG ((int)(sizeof cfgs / sizeof cfgs[0]))

TEST(maxpool2d_matches_naive_and_finite_differences) {
    for (int i = 0; i < NCFG; i++) check_config(MAXP, &cfgs[i], 0, 0, 10 + i);
}

TEST(avgpool2d_count_include_pad_matches_naive_and_finite_differences) {
    for (int i = 0; i < NCFG; i++) check_config(AVGP, &cfgs[i], 0, 0, 30 + i);
}

TEST(adaptive_avgpool2d_general_sizes) {
    const Cfg c1 = {2, 3, 7, 7, 0, 0, 0}, c2 = {1, 2, 5, 4, 0, 0, 0},
              c3 = {2, 1, 4, 6, 0, 0, 0};
    check_config(ADAPT, &c1, 1, 1, 50);
    check_config(ADAPT, &c1, 3, 3, 51);
    check_config(ADAPT, &c2, 2, 3, 52);
    check_config(ADAPT, &c3, 7, 5, 53); /* larger than the input: windows overlap */
    check_config(ADAPT, &c1, 7, 7, 54); /* identity */
}

TEST(adaptive_avgpool2d_1x1_is_the_plane_mean) {
    float x[6] = {1, 2, 3, 4, 5, 6}, y[1];
    AgError err = AG_ERROR_INIT;
    CHECK(ag_adaptive_avgpool2d_forward(y, x, 1, 2, 3, 1, 1, &err) == 0, "%s", err.msg);
    CHECK_CLOSE(y[0], 3.5, 1e-7);
}

/* Ties: the gradient goes to the first maximum in row-major window order, as PyTorch;
 * padding never wins even when every real value is negative. */
TEST(maxpool2d_ties_go_to_the_first_maximum) {
    float x[16] = {1, 5, 5, 0, /**/ 5, 5, 2, 2, /**/ -3, -3, -3, -3, /**/ -3, -3, -3, -3};
    float y[4], idx[4], dx[16], dy[4] = {1, 2, 3, 4};
    AgPoolShape s;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_pool2d_shape(&s, (int64_t[]){1, 1, 4, 4}, 2, 2, 0, "maxpool2d", &err) == 0, "%s",
          err.msg);
    CHECK(ag_maxpool2d_forward(y, idx, x, &s, &err) == 0, "%s", err.msg);
    float want_y[4] = {5, 5, -3, -3}, want_idx[4] = {1, 2, 8, 10};
    for (int i = 0; i < 4; i++) {
        CHECK(y[i] == want_y[i], "y[%d] = %g", i, y[i]);
        CHECK(idx[i] == want_idx[i], "idx[%d] = %g, want %g", i, idx[i], want_idx[i]);
    }
    CHECK(ag_maxpool2d_backward(dx, idx, dy, 1, 4, 4, 2, 2, &err) == 0, "%s", err.msg);
    float want_dx[16] = {0, 1, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++) CHECK(dx[i] == want_dx[i], "dx[%d] = %g", i, dx[i]);

    /* 3x3 windows, stride 1, padding 1 over an all-negative plane */
    float z[9] = {-1, -1, -1, -1, -1, -1, -1, -1, -1}, zy[9], zi[9];
    CHECK(ag_pool2d_shape(&s, (int64_t[]){1, 1, 3, 3}, 3, 1, 1, "maxpool2d", &err) == 0, "%s",
          err.msg);
    CHECK(ag_maxpool2d_forward(zy, zi, z, &s, &err) == 0, "%s", err.msg);
    float want_zi[9] = {0, 0, 1, 0, 0, 1, 3, 3, 4};
    for (int i = 0; i < 9; i++) {
        CHECK(zy[i] == -1.0f, "zy[%d] = %g", i, zy[i]);
        CHECK(zi[i] == want_zi[i], "zi[%d] = %g, want %g", i, zi[i], want_zi[i]);
    }
}

static int fails_with(int rc, const AgError *err, const char *want) {
    if (rc == 0 || !strstr(err->msg, want)) {
        fprintf(stderr, "  got rc=%d msg=\"%s\", want \"%s\"\n", rc, err->msg, want);
        return 0;
    }
    return 1;
}

TEST(pooling_rejects_bad_sizes_with_a_message) {
    AgPoolShape s;
    AgError err = AG_ERROR_INIT;
    int64_t xs[4] = {1, 1, 1, 1};
    CHECK(fails_with(ag_pool2d_shape(&s, xs, 2, 2, 0, "maxpool2d", &err), &err,
                     "maxpool2d: input 1x1 with padding 0 is smaller than kernel 2"),
          "too small");
    int64_t xs2[4] = {1, 1, 8, 8};
    CHECK(fails_with(ag_pool2d_shape(&s, xs2, 2, 0, 0, "avgpool2d", &err), &err,
                     "avgpool2d: stride must be >= 1, got 0"),
          "zero stride");
    CHECK(fails_with(ag_pool2d_shape(&s, xs2, 3, 1, 2, "maxpool2d", &err), &err,
                     "padding must be in [0, kernel/2] = [0, 1], got 2"),
          "pad too large");
    CHECK(fails_with(ag_pool2d_shape(&s, xs2, 0, 1, 0, "maxpool2d", &err), &err,
                     "kernel size must be >= 1"),
          "zero kernel");
    CHECK(fails_with(ag_adaptive_avgpool2d_forward(NULL, NULL, 1, 4, 4, 0, 2, &err), &err,
                     "output size must be positive"),
          "adaptive zero output");
    /* a corrupt index is an error, not a write outside the plane */
    CHECK(ag_pool2d_shape(&s, (int64_t[]){1, 1, 2, 2}, 2, 2, 0, "maxpool2d", &err) == 0, "%s",
          err.msg);
    float dx[4], dy[1] = {1}, idx[1] = {4};
    CHECK(fails_with(ag_maxpool2d_backward(dx, idx, dy, 1, 2, 2, 1, 1, &err), &err,
                     "index 4 at position 1 is not a pixel of a 2x2 plane"),
          "bad index");
    idx[0] = 1.5f;
    CHECK(
        fails_with(ag_maxpool2d_backward(dx, idx, dy, 1, 2, 2, 1, 1, &err), &err, "index 1.5"),
        "fractional index");
}

int main(void) {
    RUN(maxpool2d_matches_naive_and_finite_differences);
    RUN(avgpool2d_count_include_pad_matches_naive_and_finite_differences);
    RUN(adaptive_avgpool2d_general_sizes);
    RUN(adaptive_avgpool2d_1x1_is_the_plane_mean);
    RUN(maxpool2d_ties_go_to_the_first_maximum);
    RUN(pooling_rejects_bad_sizes_with_a_message);
    return check_report("pool");
}
