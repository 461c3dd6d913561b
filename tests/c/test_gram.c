/* test_gram.c - the Gram kernels of the AGOP sweep (engine/gram.c) against a naive sum in
 * double, in both forms (dot: long rows; outer: packed tiles), over several tiles, with
 * channel counts that do not fill a register block, and with the AVX2 kernel too. */
#include "../../engine/gram.h"
#include "../../engine/rng.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>

/* relative Frobenius error of acc's upper triangle against the naive sum; 1 when a
 * lower-triangle entry moved from its sentinel */
static double check_shape(int isa, int64_t B, int64_t co, int64_t hw, int *lower_moved) {
    AgRng r;
    ag_rng_seed(&r, (uint64_t)(B * 1000003 + co * 101 + hw));
    float *g = malloc((size_t)(B * co * hw) * sizeof *g);
    double *acc = malloc((size_t)(co * co) * sizeof *acc);
    ag_rng_fill_normal(&r, g, B * co * hw, 0.0f, 1.0f);
    for (int64_t i = 0; i < co; i++)
        for (int64_t j = 0; j < co; j++) acc[i * co + j] = j >= i ? 0.5 : 7.0;
    /* two calls: the kernel adds */
    CHECK(ag_gram_accumulate_isa(acc, g, B, co, hw, isa) == 0, "out of memory");
    CHECK(ag_gram_accumulate_isa(acc, g, B, co, hw, isa) == 0, "out of memory");
    double ef = 0, den = 0;
    *lower_moved = 0;
    for (int64_t i = 0; i < co; i++)
        for (int64_t j = 0; j < co; j++) {
            if (j < i) {
                *lower_moved |= acc[i * co + j] != 7.0;
                continue;
            }
            double want = 0.5;
            for (int64_t b = 0; b < B; b++)
                for (int64_t p = 0; p < hw; p++)
                    want += 2.0 * g[(b * co + i) * hw + p] * (double)g[(b * co + j) * hw + p];
            ef += (acc[i * co + j] - want) * (acc[i * co + j] - want);
            den += want * want;
        }
    free(g);
    free(acc);
    return sqrt(ef / den);
}

/* (batch, co, hw): dot form (hw 1024, 512; 1 or 2 images a tile), outer form (hw not a
 * multiple of 16, one or several tiles), 1 x 1, co not a multiple of 4, 6, 8 or 32 */
static const int64_t shapes[][3] = {{3, 64, 1024}, {2, 37, 512}, {3, 130, 512}, {5, 70, 9},
                                    {100, 67, 4},  {1, 1, 1},    {7, 3, 5},     {9, 256, 16},
                                    {4, 33, 64},   {300, 50, 1}};

TEST(gram_matches_naive_on_this_cpu) {
    int isa = ag_gram_isa();
    if (isa == 0) return; /* no kernel: ag_agop_accumulate uses BLAS (test_linalg.c) */
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int moved;
        double e = check_shape(isa, shapes[t][0], shapes[t][1], shapes[t][2], &moved);
        CHECK(e < 1e-6, "isa %d shape %zu: rel %g", isa, t, e);
        CHECK(!moved, "isa %d shape %zu: the lower triangle changed", isa, t);
    }
}

TEST(gram_avx2_kernel_matches_naive_where_the_cpu_has_avx512) {
    if (ag_gram_isa() != 512) return; /* the AVX2 kernel is the one above */
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int moved;
        double e = check_shape(256, shapes[t][0], shapes[t][1], shapes[t][2], &moved);
        CHECK(e < 1e-6, "isa 256 shape %zu: rel %g", t, e);
        CHECK(!moved, "isa 256 shape %zu: the lower triangle changed", t);
    }
}

int main(void) {
    RUN(gram_matches_naive_on_this_cpu);
    RUN(gram_avx2_kernel_matches_naive_where_the_cpu_has_avx512);
    return check_report("gram");
}
