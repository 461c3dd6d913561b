/* test_tensor.c - the element loops of engine/tensor.c that the Tensor binding calls
 * (addcmul/addcdiv, dot, allclose, all_finite, index_select) against plain double loops
 * and hand-made cases. */
#include "../../engine/rng.h"
#include "../../engine/tensor.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static AgTensor make(float *data, int dim, const int64_t *size) {
    AgTensor t = {.data = data, .dim = dim};
    for (int d = 0; d < dim; d++) t.size[d] = size[d];
    ag_set_contiguous_strides(&t);
    return t;
}

static void fill_random(float *p, int64_t n, AgRng *g) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)(ag_rng_uniform(g) * 2 - 1);
}

/* n above the threading threshold too, so the parallel loop is covered */
static void check_addc(int64_t n, int divide) {
    AgRng g;
    ag_rng_seed(&g, 7 + (uint64_t)n);
    float *t = malloc((size_t)n * 4), *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
    double *ref = malloc((size_t)n * 8);
    fill_random(t, n, &g);
    fill_random(a, n, &g);
    fill_random(b, n, &g);
    for (int64_t i = 0; i < n; i++) b[i] += b[i] < 0 ? -0.5f : 0.5f; /* away from 0 */
    float v = -0.75f;
    for (int64_t i = 0; i < n; i++)
        ref[i] = t[i] + (double)v * (divide ? (double)a[i] / b[i] : (double)a[i] * b[i]);
    int64_t size[2] = {n / 4, 4};
    AgTensor tt = make(t, 2, size), ta = make(a, 2, size), tb = make(b, 2, size);
    ag_addcmul(&tt, v, &ta, &tb, divide);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(t[i] - ref[i]));
    CHECK(worst <= 4e-6, "n=%lld divide=%d: max error %g", (long long)n, divide, worst);
    free(t), free(a), free(b), free(ref);
}

TEST(addcmul_matches_double_loop) {
    check_addc(12, 0);
    check_addc(200000, 0);
}

TEST(addcdiv_matches_double_loop) {
    check_addc(12, 1);
    check_addc(200000, 1);
}

TEST(dot_accumulates_in_double) {
    /* 1e8 + 1 + ... in float loses the ones; a double accumulator keeps every one */
    enum { N = 1001 };
    float a[N], b[N];
    a[0] = 1e8f, b[0] = 1;
    for (int i = 1; i < N; i++) a[i] = 1, b[i] = 1;
    int64_t size[1] = {N};
    AgTensor ta = make(a, 1, size), tb = make(b, 1, size);
    CHECK(ag_dot(&ta, &tb) == 1e8 + 1000, "dot %.17g", ag_dot(&ta, &tb));
    AgRng g;
    ag_rng_seed(&g, 3);
    fill_random(a, N, &g);
    fill_random(b, N, &g);
    double ref = 0;
    for (int i = 0; i < N; i++) ref += (double)a[i] * b[i];
    CHECK_CLOSE(ag_dot(&ta, &tb), ref, 1e-12);
}

TEST(allclose_uses_atol_plus_rtol_of_the_second) {
    float a[3] = {1, 2, 3}, b[3] = {1, 2, 3};
    int64_t size[1] = {3};
    AgTensor ta = make(a, 1, size), tb = make(b, 1, size);
    CHECK(ag_allclose(&ta, &tb, 0, 0), "equal tensors");
    a[2] = 3.5f;
    CHECK(ag_allclose(&ta, &tb, 0, 0.5), "|3.5 - 3| <= atol 0.5");
    CHECK(!ag_allclose(&ta, &tb, 0, 0.25), "|3.5 - 3| > atol 0.25");
    CHECK(ag_allclose(&ta, &tb, 0.5 / 3, 0), "|3.5 - 3| <= rtol * |3|");
    CHECK(!ag_allclose(&tb, &ta, 0.5 / 3.5 - 1e-3, 0), "rtol scales the second: |3|");
    a[2] = NAN;
    CHECK(!ag_allclose(&ta, &tb, 1, 1e30), "NaN is never close");
}

TEST(all_finite_finds_nan_and_inf) {
    float a[5] = {0, -1, 1e30f, 2, 3};
    int64_t size[1] = {5};
    AgTensor t = make(a, 1, size);
    CHECK(ag_all_finite(&t), "finite values");
    a[4] = INFINITY;
    CHECK(!ag_all_finite(&t), "+inf at the end");
    a[4] = 3, a[0] = -INFINITY;
    CHECK(!ag_all_finite(&t), "-inf first");
    a[0] = NAN;
    CHECK(!ag_all_finite(&t), "NaN");
    AgTensor empty = make(a, 1, (int64_t[]){0});
    CHECK(ag_all_finite(&empty), "an empty tensor has no non-finite element");
}

TEST(index_select_copies_rows_in_order) {
    /* t: (4, 2, 3) with t[r][i][j] = 100 r + 10 i + j; rows 3, 0, 3, 1 */
    float t[24], y[24];
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) t[r * 6 + i * 3 + j] = (float)(100 * r + 10 * i + j);
    int64_t idx[4] = {3, 0, 3, 1};
    AgTensor tt = make(t, 3, (int64_t[]){4, 2, 3}), ty = make(y, 3, (int64_t[]){4, 2, 3});
    ag_index_select(&ty, &tt, idx, 4);
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 6; k++)
            CHECK(y[r * 6 + k] == (float)(100 * idx[r] + 10 * (k / 3) + k % 3),
                  "row %d element %d: %g", r, k, y[r * 6 + k]);
    /* a single-row tensor (stride[0] need not equal the row length) */
    AgTensor one = make(t, 2, (int64_t[]){1, 5});
    one.stride[0] = 99;
    AgTensor ty2 = make(y, 2, (int64_t[]){2, 5});
    ag_index_select(&ty2, &one, (int64_t[]){0, 0}, 2);
    for (int k = 0; k < 10; k++) CHECK(y[k] == t[k % 5], "element %d: %g", k, y[k]);
}

int main(void) {
    RUN(addcmul_matches_double_loop);
    RUN(addcdiv_matches_double_loop);
    RUN(dot_accumulates_in_double);
    RUN(allclose_uses_atol_plus_rtol_of_the_second);
    RUN(all_finite_finds_nan_and_inf);
    RUN(index_select_copies_rows_in_order);
    return check_report("tensor");
}
