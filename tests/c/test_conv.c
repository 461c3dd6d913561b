/* test_conv.c - conv2d forward against a naive direct convolution in double, and every
 * gradient against central finite differences of that double reference. */
#include "../../engine/conv.h"
#include "../../engine/rng.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int b, ci, h, w, co, k, stride, pad, bias;
    int chunk; /* images per chunk (0: the engine's choice) */
} Cfg;

/* y = sum(conv(x, w) + b) * r), the scalar loss of the gradient checks; yout (may be
 * NULL) receives the output in double.
 *   x (B,Ci,H,W), w (Co,Ci,K,K), bias (Co) or NULL, r (B,Co,Ho,Wo) */
static double naive_loss(const Cfg *c, const double *x, const double *w, const double *bias,
                         const double *r, double *yout) {
    int ho = (c->h + 2 * c->pad - c->k) / c->stride + 1;
    int wo = (c->w + 2 * c->pad - c->k) / c->stride + 1;
    double loss = 0.0;
    for (int b = 0; b < c->b; b++)
        for (int o = 0; o < c->co; o++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int ch = 0; ch < c->ci; ch++)
                        for (int kh = 0; kh < c->k; kh++)
                            for (int kw = 0; kw < c->k; kw++) {
                                int ih = i * c->stride - c->pad + kh;
                                int iw = j * c->stride - c->pad + kw;
                                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                acc += w[((o * c->ci + ch) * c->k + kh) * c->k + kw] *
                                       x[((b * c->ci + ch) * c->h + ih) * c->w + iw];
                            }
                    size_t at = ((size_t)(b * c->co + o) * ho + i) * wo + j;
                    if (yout) yout[at] = acc;
                    if (r) loss += acc * r[at];
                }
    return loss;
}

static void fill(AgRng *g, float *f, double *d, size_t n) {
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(ag_rng_uniform(g) * 2.0 - 1.0);
        if (d) d[i] = f[i];
    }
}

/* Central difference of naive_loss along element i of v (x, w or bias); exact up to
 * rounding because the loss is linear in each argument. */
static double fd(const Cfg *c, double *x, double *w, double *bias, const double *r, double *v,
                 size_t i) {
    const double h = 1e-3, keep = v[i];
    v[i] = keep + h;
    double lp = naive_loss(c, x, w, bias, r, NULL);
    v[i] = keep - h;
    double lm = naive_loss(c, x, w, bias, r, NULL);
    v[i] = keep;
    return (lp - lm) / (2 * h);
}

/* Elements to check: all of them when few, else an evenly spread subset of about 150. */
static size_t check_step(size_t n) {
    return n <= 400 ? 1 : n / 150;
}

static void check_config(const Cfg *c, unsigned seed) {
    AgRng g;
    ag_rng_seed(&g, seed);
    AgError err = AG_ERROR_INIT;
    AgConvShape s;
    int64_t xs[4] = {c->b, c->ci, c->h, c->w}, ws[4] = {c->co, c->ci, c->k, c->k};
    int rc = ag_conv2d_shape(&s, xs, ws, c->stride, c->pad, &err);
    CHECK(rc == 0, "shape: %s", err.msg);
    if (rc) return;
    s.chunk = c->chunk;
    size_t nx = (size_t)c->b * c->ci * c->h * c->w, nw = (size_t)c->co * c->ci * c->k * c->k;
    size_t ny = (size_t)c->b * c->co * s.ho * s.wo;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(c->co * 4);
    float *y = malloc(ny * sizeof *y), *dy = malloc(ny * sizeof *dy);
    float *dx = malloc(nx * sizeof *dx), *dx2 = malloc(nx * sizeof *dx2);
    float *dw = malloc(nw * sizeof *dw), *db = malloc(c->co * sizeof *db);
    float *scratch = malloc((size_t)ag_conv2d_scratch_size(&s) * sizeof(float));
    double *xd = malloc(nx * 8), *wd = malloc(nw * 8), *bd = malloc(c->co * 8);
    double *rd = malloc(ny * 8), *yd = malloc(ny * 8);
    fill(&g, x, xd, nx);
    fill(&g, w, wd, nw);
    fill(&g, b, bd, c->co);
    fill(&g, dy, rd, ny);

    /* forward */
    rc = ag_conv2d_forward(y, scratch, x, w, c->bias ? b : NULL, &s, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    naive_loss(c, xd, wd, c->bias ? bd : NULL, NULL, yd);
    double maxerr = 0.0;
    for (size_t i = 0; i < ny; i++) maxerr = fmax(maxerr, fabs(y[i] - yd[i]));
    CHECK(maxerr < 1e-5 * (c->ci * c->k * c->k), "forward max error %g", maxerr);

    /* backward: dw and db accumulate onto 0.25 */
    for (size_t i = 0; i < nw; i++) dw[i] = 0.25f;
    for (int i = 0; i < c->co; i++) db[i] = 0.25f;
    rc = ag_conv2d_backward(dx, dw, c->bias ? db : NULL, scratch, dy, x, w, &s, &err);
    CHECK(rc == 0, "backward: %s", err.msg);
    double *bias_d = c->bias ? bd : NULL;
    int bad = 0;
    for (size_t i = 0; i < nx && bad < 3; i += check_step(nx)) {
        double ref = fd(c, xd, wd, bias_d, rd, xd, i);
        if (fabs(dx[i] - ref) > 1e-4 * fmax(1.0, fabs(ref))) {
            bad++;
            CHECK(0, "dx[%zu] = %.7g, finite difference %.7g", i, dx[i], ref);
        }
    }
    for (size_t i = 0; i < nw && bad < 3; i += check_step(nw)) {
        double ref = fd(c, xd, wd, bias_d, rd, wd, i) + 0.25;
        if (fabs(dw[i] - ref) > 1e-4 * fmax(1.0, fabs(ref))) {
            bad++;
            CHECK(0, "dw[%zu] = %.7g, finite difference + 0.25 = %.7g", i, dw[i], ref);
        }
    }
    if (c->bias)
        for (int i = 0; i < c->co; i++) {
            double ref = fd(c, xd, wd, bias_d, rd, bd, (size_t)i) + 0.25;
            CHECK_CLOSE(db[i], ref, 1e-4);
        }

    /* the input gradient alone (x not even passed) equals the full one */
    for (size_t i = 0; i < nx; i++) dx2[i] = 123.0f; /* overwritten, not accumulated */
    rc = ag_conv2d_backward(dx2, NULL, NULL, scratch, dy, NULL, w, &s, &err);
    CHECK(rc == 0, "backward dx only: %s", err.msg);
    CHECK(memcmp(dx, dx2, nx * sizeof *dx) == 0, "dx-only differs from the full backward");

    free(x), free(w), free(b), free(y), free(dy), free(dx), free(dx2), free(dw), free(db);
    free(scratch), free(xd), free(wd), free(bd), free(rd), free(yd);
}

#define CONFIGS(...)                                                                           \
    do {                                                                                       \
        const Cfg cs_[] = {__VA_ARGS__};                                                       \
        for (size_t i_ = 0; i_ < sizeof cs_ / sizeof cs_[0]; i_++) {                           \
            int before_ = check_failed_now;                                                    \
            check_failed_now = 0;                                                              \
            check_config(&cs_[i_], 100 + (unsigned)i_);                                        \
            if (check_failed_now)                                                              \
                fprintf(stderr, "  in config B=%d Ci=%d %dx%d Co=%d K=%d S=%d P=%d bias=%d\n", \
                        cs_[i_].b, cs_[i_].ci, cs_[i_].h, cs_[i_].w, cs_[i_].co, cs_[i_].k,    \
                        cs_[i_].stride, cs_[i_].pad, cs_[i_].bias);                            \
            check_failed_now |= before_;                                                       \
        }                                                                                      \
    } while (0)

/* {b, ci, h, w, co, k, stride, pad, bias} */
TEST(conv2d_kernel3_stride1_pad1_matches_naive_and_finite_differences) {
    CONFIGS({1, 1, 5, 5, 1, 3, 1, 1, 1, 0}, {3, 2, 7, 9, 4, 3, 1, 1, 1, 0},
            {2, 3, 6, 5, 2, 3, 1, 1, 0, 0});
}

TEST(conv2d_kernel3_stride2_pad0_and_pad1) {
    CONFIGS({2, 3, 9, 7, 4, 3, 2, 0, 1, 0}, {3, 2, 7, 7, 3, 3, 2, 1, 1, 0},
            {1, 2, 8, 6, 2, 3, 2, 1, 0, 0});
}

TEST(conv2d_kernel1_pointwise_and_strided) {
    CONFIGS({1, 4, 5, 7, 3, 1, 1, 0, 1, 0}, {3, 4, 5, 7, 3, 1, 1, 0, 1, 0},
            {2, 3, 7, 7, 2, 1, 2, 0, 1, 0}, {2, 3, 5, 5, 2, 1, 1, 1, 1, 0});
}

TEST(conv2d_kernel7_odd_sizes_stride1_and_2) {
    CONFIGS({2, 2, 9, 11, 3, 7, 1, 0, 1, 0}, {1, 1, 7, 7, 2, 7, 1, 0, 1, 0},
            {2, 2, 11, 9, 2, 7, 2, 3, 1, 0}, {1, 2, 5, 5, 2, 7, 1, 1, 0, 0});
}

/* Large images: per-plane im2col rows, one GEMM per image, the 1x1 conv without im2col. */
TEST(conv2d_large_images_match_naive_and_finite_differences) {
    CONFIGS({2, 2, 33, 33, 3, 3, 1, 1, 1, 0}, {2, 3, 32, 32, 2, 1, 1, 0, 1, 0},
            {1, 2, 20, 20, 2, 3, 1, 1, 1, 0}, {2, 2, 45, 43, 2, 3, 2, 1, 1, 0},
            {1, 1, 40, 40, 2, 7, 2, 3, 0, 0});
}

/* <im2col(x), c> == <x, col2im(c)> on both the small-image and the large-image code. */
/* Batches in several chunks (uneven: 5 = 2 + 2 + 1) give the same results and the same
 * accumulated parameter gradients, on both the small-image and the large-image paths. */
TEST(conv2d_in_chunks_matches_naive_and_finite_differences) {
    CONFIGS({5, 2, 6, 5, 3, 3, 1, 1, 1, 2}, {5, 2, 7, 7, 2, 3, 2, 1, 1, 2},
            {3, 1, 33, 33, 2, 3, 1, 1, 1, 1}, {4, 3, 17, 17, 2, 1, 1, 0, 1, 3});
}

TEST(im2col_and_col2im_are_adjoint) {
    const Cfg cs[] = {{3, 2, 5, 6, 1, 3, 2, 1, 0, 0},
                      {2, 2, 35, 34, 1, 5, 1, 2, 0, 0},
                      {2, 2, 41, 40, 1, 3, 2, 1, 0, 0}};
    for (int t = 0; t < 3; t++) {
        const Cfg *c = &cs[t];
        AgConvShape s;
        AgError err = AG_ERROR_INIT;
        int64_t xs[4] = {c->b, c->ci, c->h, c->w}, ws[4] = {c->co, c->ci, c->k, c->k};
        CHECK(ag_conv2d_shape(&s, xs, ws, c->stride, c->pad, &err) == 0, "%s", err.msg);
        size_t nx = (size_t)c->b * c->ci * c->h * c->w;
        size_t nc = (size_t)c->ci * c->k * c->k * c->b * s.ho * s.wo;
        float *x = malloc(nx * 4), *x2 = malloc(nx * 4), *cols = malloc(nc * 4),
              *r = malloc(nc * 4);
        AgRng g;
        ag_rng_seed(&g, 7);
        fill(&g, x, NULL, nx);
        fill(&g, r, NULL, nc);
        ag_conv2d_im2col(cols, x, &s);
        ag_conv2d_col2im(x2, r, &s);
        double a = 0, b = 0;
        for (size_t i = 0; i < nc; i++) a += (double)cols[i] * r[i];
        for (size_t i = 0; i < nx; i++) b += (double)x[i] * x2[i];
        CHECK_CLOSE(a, b, 1e-5);
        free(x), free(x2), free(cols), free(r);
    }
}

static int shape_fails(const int64_t xs[4], const int64_t ws[4], int stride, int pad,
                       const char *want) {
    AgConvShape s;
    AgError err = AG_ERROR_INIT;
    int rc = ag_conv2d_shape(&s, xs, ws, stride, pad, &err);
    if (rc == 0 || !strstr(err.msg, want)) {
        fprintf(stderr, "  got rc=%d msg=\"%s\", want \"%s\"\n", rc, err.msg, want);
        return 0;
    }
    return 1;
}

TEST(conv2d_rejects_bad_sizes_with_a_message) {
    CHECK(shape_fails((int64_t[]){2, 3, 8, 8}, (int64_t[]){4, 1, 3, 3}, 1, 1,
                      "conv2d: input has 3 channels, weight expects 1"),
          "channel mismatch");
    CHECK(shape_fails((int64_t[]){2, 1, 2, 2}, (int64_t[]){4, 1, 3, 3}, 1, 0,
                      "conv2d: input 2x2 with padding 0 is smaller than kernel 3"),
          "too small");
    CHECK(shape_fails((int64_t[]){2, 1, 8, 8}, (int64_t[]){4, 1, 3, 3}, 0, 0,
                      "stride must be >= 1, got 0"),
          "zero stride");
    CHECK(shape_fails((int64_t[]){2, 1, 8, 8}, (int64_t[]){4, 1, 3, 3}, -2, 0,
                      "stride must be >= 1, got -2"),
          "negative stride");
    CHECK(shape_fails((int64_t[]){2, 1, 8, 8}, (int64_t[]){4, 1, 3, 3}, 1, -1,
                      "padding must be >= 0"),
          "negative pad");
    CHECK(shape_fails((int64_t[]){2, 1, 8, 8}, (int64_t[]){4, 1, 3, 2}, 1, 0, "not square"),
          "non-square kernel");
    CHECK(shape_fails((int64_t[]){0, 1, 8, 8}, (int64_t[]){4, 1, 3, 3}, 1, 0, "empty"),
          "empty batch");
    /* a hand-made inconsistent shape is caught by forward too */
    AgConvShape s = {.b = 1,
                     .ci = 1,
                     .h = 4,
                     .w = 4,
                     .co = 1,
                     .k = 3,
                     .stride = 1,
                     .pad = 0,
                     .ho = 3,
                     .wo = 2};
    float buf[64] = {0};
    AgError err = AG_ERROR_INIT;
    CHECK(ag_conv2d_forward(buf, buf, buf, buf, NULL, &s, &err) != 0, "inconsistent shape");
}

TEST(conv2d_polls_cancellation) {
    volatile sig_atomic_t flag = 1;
    AgError err = {.msg = {0}, .cancel = &flag};
    AgConvShape s;
    CHECK(ag_conv2d_shape(&s, (int64_t[]){2, 1, 4, 4}, (int64_t[]){1, 1, 3, 3}, 1, 1, &err) ==
              0,
          "%s", err.msg);
    float x[32] = {0}, w[9] = {0}, y[32], scratch[400];
    CHECK(ag_conv2d_scratch_size(&s) <= 400, "scratch %lld",
          (long long)ag_conv2d_scratch_size(&s));
    int rc = ag_conv2d_forward(y, scratch, x, w, NULL, &s, &err);
    CHECK(rc != 0 && strcmp(err.msg, "interrupted") == 0, "rc=%d msg=%s", rc, err.msg);
}

int main(void) {
    RUN(conv2d_kernel3_stride1_pad1_matches_naive_and_finite_differences);
    RUN(conv2d_kernel3_stride2_pad0_and_pad1);
    RUN(conv2d_kernel1_pointwise_and_strided);
    RUN(conv2d_kernel7_odd_sizes_stride1_and_2);
    RUN(conv2d_large_images_match_naive_and_finite_differences);
    RUN(conv2d_in_chunks_matches_naive_and_finite_differences);
    RUN(im2col_and_col2im_are_adjoint);
    RUN(conv2d_rejects_bad_sizes_with_a_message);
    RUN(conv2d_polls_cancellation);
    return check_report("conv");
}
