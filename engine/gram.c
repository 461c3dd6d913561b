/* gram.c - S += sum over positions of g g^T for the AGOP sweep (see gram.h). */
#include "gram.h"

#include "cpu.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Register blocks: MR rows (i, broadcast) x NR columns (j, vectors) of S per kernel call.
 * AVX-512: 8 x 32 (16 accumulators of 32); AVX2: 6 x 16 (12 of 16). */
#define MR512 8
#define NR512 32
#define MR256 6
#define NR256 16

#define ACC512(k) __m512 c##k##0 = _mm512_setzero_ps(), c##k##1 = _mm512_setzero_ps()
#define FMA512(k)                                                                              \
    do {                                                                                       \
        __m512 a = _mm512_set1_ps(r[k]);                                                       \
        c##k##0 = _mm512_fmadd_ps(a, b0, c##k##0);                                             \
        c##k##1 = _mm512_fmadd_ps(a, b1, c##k##1);                                             \
    } while (0)
#define OUT512(k)                                                                              \
    _mm512_storeu_ps(out + (k)*NR512, c##k##0), _mm512_storeu_ps(out + (k)*NR512 + 16, c##k##1)

/* out (MR512, NR512) = sum_p y[p, i0 + k] y[p, j0 + q]; y (np, ld) */
__attribute__((target("avx512f"))) static void
block_avx512(float *out, const float *y, int64_t ld, int64_t np, int64_t i0, int64_t j0) {
    ACC512(0);
    ACC512(1);
    ACC512(2);
    ACC512(3);
    ACC512(4);
    ACC512(5);
    ACC512(6);
    ACC512(7);
    for (int64_t p = 0; p < np; p++) {
        const float *r = y + p * ld + i0;
        __m512 b0 = _mm512_load_ps(y + p * ld + j0), b1 = _mm512_load_ps(y + p * ld + j0 + 16);
        FMA512(0);
        FMA512(1);
        FMA512(2);
        FMA512(3);
        FMA512(4);
        FMA512(5);
        FMA512(6);
        FMA512(7);
    }
    OUT512(0);
    OUT512(1);
    OUT512(2);
    OUT512(3);
    OUT512(4);
    OUT512(5);
    OUT512(6);
    OUT512(7);
}

/* The dot form, for long rows (hw a multiple of 16, no packing): out (4, 4) =
 * sum over images b < nb and positions p < hw of g[b, i0 + k, p] g[b, j0 + q, p], rows past
 * co clamped to co - 1 (computed, then ignored). */
#define DOT_ROW(k, base) const float *a##k = g + (base + (i0 + k < co ? i0 + k : co - 1)) * hw
#define DOT_COL(k, base) const float *b##k = g + (base + (j0 + k < co ? j0 + k : co - 1)) * hw
#define DOT_FMA(k)                                                                             \
    do {                                                                                       \
        __m512 x = _mm512_loadu_ps(a##k + p);                                                  \
        c##k##0 = _mm512_fmadd_ps(x, y0, c##k##0);                                             \
        c##k##1 = _mm512_fmadd_ps(x, y1, c##k##1);                                             \
        c##k##2 = _mm512_fmadd_ps(x, y2, c##k##2);                                             \
        c##k##3 = _mm512_fmadd_ps(x, y3, c##k##3);                                             \
    } while (0)
#define DOT_ACC(k)                                                                             \
    __m512 c##k##0 = _mm512_setzero_ps(), c##k##1 = _mm512_setzero_ps(),                       \
           c##k##2 = _mm512_setzero_ps(), c##k##3 = _mm512_setzero_ps()
#define DOT_OUT(k)                                                                             \
    out[k * 4 + 0] = _mm512_reduce_add_ps(c##k##0),                                            \
                out[k * 4 + 1] = _mm512_reduce_add_ps(c##k##1),                                \
                out[k * 4 + 2] = _mm512_reduce_add_ps(c##k##2),                                \
                out[k * 4 + 3] = _mm512_reduce_add_ps(c##k##3)

__attribute__((target("avx512f"))) static void dot_avx512(float *out, const float *g,
                                                          int64_t nb, int64_t co, int64_t hw,
                                                          int64_t i0, int64_t j0) {
    DOT_ACC(0);
    DOT_ACC(1);
    DOT_ACC(2);
    DOT_ACC(3);
    for (int64_t b = 0; b < nb; b++) {
        int64_t base = b * co;
        DOT_ROW(0, base);
        DOT_ROW(1, base);
        DOT_ROW(2, base);
        DOT_ROW(3, base);
        DOT_COL(0, base);
        DOT_COL(1, base);
        DOT_COL(2, base);
        DOT_COL(3, base);
        for (int64_t p = 0; p < hw; p += 16) {
            __m512 y0 = _mm512_loadu_ps(b0 + p), y1 = _mm512_loadu_ps(b1 + p);
            __m512 y2 = _mm512_loadu_ps(b2 + p), y3 = _mm512_loadu_ps(b3 + p);
            DOT_FMA(0);
            DOT_FMA(1);
            DOT_FMA(2);
            DOT_FMA(3);
        }
    }
    DOT_OUT(0);
    DOT_OUT(1);
    DOT_OUT(2);
    DOT_OUT(3);
}

/* The pooled dot form: out (4, 4) = sum over images b < nb and windows p < nw of
 * v[b, i0 + k, p] v[b, j0 + q, p] where ix[b, i0 + k, p] == ix[b, j0 + q, p] (the two
 * channels' maxima sit on the same pixel), rows past co clamped to co - 1. */
#define PDOT_FMA(k)                                                                            \
    do {                                                                                       \
        __m512 x = _mm512_loadu_ps(a##k + p), xi = _mm512_loadu_ps(ia##k + p);                 \
        c##k##0 =                                                                              \
            _mm512_mask3_fmadd_ps(x, y0, c##k##0, _mm512_cmp_ps_mask(xi, z0, _CMP_EQ_OQ));     \
        c##k##1 =                                                                              \
            _mm512_mask3_fmadd_ps(x, y1, c##k##1, _mm512_cmp_ps_mask(xi, z1, _CMP_EQ_OQ));     \
        c##k##2 =                                                                              \
            _mm512_mask3_fmadd_ps(x, y2, c##k##2, _mm512_cmp_ps_mask(xi, z2, _CMP_EQ_OQ));     \
        c##k##3 =                                                                              \
            _mm512_mask3_fmadd_ps(x, y3, c##k##3, _mm512_cmp_ps_mask(xi, z3, _CMP_EQ_OQ));     \
    } while (0)
#define PDOT_ROW(k, base)                                                                      \
    const int64_t ra##k = (base + (i0 + k < co ? i0 + k : co - 1)) * hw;                       \
    const float *a##k = g + ra##k, *ia##k = ix + ra##k
#define PDOT_COL(k, base)                                                                      \
    const int64_t rb##k = (base + (j0 + k < co ? j0 + k : co - 1)) * hw;                       \
    const float *b##k = g + rb##k, *ib##k = ix + rb##k

__attribute__((target("avx512f"))) static void pdot_avx512(float *out, const float *g,
                                                           const float *ix, int64_t nb,
                                                           int64_t co, int64_t hw, int64_t i0,
                                                           int64_t j0) {
    DOT_ACC(0);
    DOT_ACC(1);
    DOT_ACC(2);
    DOT_ACC(3);
    for (int64_t b = 0; b < nb; b++) {
        int64_t base = b * co;
        PDOT_ROW(0, base);
        PDOT_ROW(1, base);
        PDOT_ROW(2, base);
        PDOT_ROW(3, base);
        PDOT_COL(0, base);
        PDOT_COL(1, base);
        PDOT_COL(2, base);
        PDOT_COL(3, base);
        for (int64_t p = 0; p < hw; p += 16) {
            __m512 y0 = _mm512_loadu_ps(b0 + p), y1 = _mm512_loadu_ps(b1 + p);
            __m512 y2 = _mm512_loadu_ps(b2 + p), y3 = _mm512_loadu_ps(b3 + p);
            __m512 z0 = _mm512_loadu_ps(ib0 + p), z1 = _mm512_loadu_ps(ib1 + p);
            __m512 z2 = _mm512_loadu_ps(ib2 + p), z3 = _mm512_loadu_ps(ib3 + p);
            PDOT_FMA(0);
            PDOT_FMA(1);
            PDOT_FMA(2);
            PDOT_FMA(3);
        }
    }
    DOT_OUT(0);
    DOT_OUT(1);
    DOT_OUT(2);
    DOT_OUT(3);
}

#define ACC256(k) __m256 c##k##0 = _mm256_setzero_ps(), c##k##1 = _mm256_setzero_ps()
#define FMA256(k)                                                                              \
    do {                                                                                       \
        __m256 a = _mm256_broadcast_ss(r + (k));                                               \
        c##k##0 = _mm256_fmadd_ps(a, b0, c##k##0);                                             \
        c##k##1 = _mm256_fmadd_ps(a, b1, c##k##1);                                             \
    } while (0)
#define OUT256(k)                                                                              \
    _mm256_storeu_ps(out + (k)*NR256, c##k##0), _mm256_storeu_ps(out + (k)*NR256 + 8, c##k##1)

__attribute__((target("avx2,fma"))) static void
block_avx2(float *out, const float *y, int64_t ld, int64_t np, int64_t i0, int64_t j0) {
    ACC256(0);
    ACC256(1);
    ACC256(2);
    ACC256(3);
    ACC256(4);
    ACC256(5);
    for (int64_t p = 0; p < np; p++) {
        const float *r = y + p * ld + i0;
        __m256 b0 = _mm256_load_ps(y + p * ld + j0), b1 = _mm256_load_ps(y + p * ld + j0 + 8);
        FMA256(0);
        FMA256(1);
        FMA256(2);
        FMA256(3);
        FMA256(4);
        FMA256(5);
    }
    OUT256(0);
    OUT256(1);
    OUT256(2);
    OUT256(3);
    OUT256(4);
    OUT256(5);
}

static int isa_of_cpu(void) {
    AgCpu cpu;
    ag_cpu_detect(&cpu);
    return cpu.has_avx512f ? 512 : cpu.has_avx2 && cpu.has_fma ? 256 : 0;
}
#else
static int isa_of_cpu(void) {
    return 0;
}
#endif

int ag_gram_isa(void) {
    return isa_of_cpu();
}

/* Packs positions [j0, j0 + np) of g (batch, co, hw), numbered b * hw + p, into y (np, ld)
 * transposed (columns >= co stay as they are: zero). Positions are split over the team;
 * the closing barrier makes y whole for every thread. */
static void pack_tile(float *y, int64_t ld, const float *g, int64_t co, int64_t hw, int64_t j0,
                      int64_t np) {
#pragma omp for schedule(static)
    for (int64_t q0 = 0; q0 < np; q0 += 16) {
        int64_t nq = np - q0 < 16 ? np - q0 : 16;
        const float *src[16];
        for (int64_t q = 0; q < nq; q++) {
            int64_t j = j0 + q0 + q, b = j / hw, p = j % hw;
            src[q] = g + b * co * hw + p;
        }
        for (int64_t c = 0; c < co; c++)
            for (int64_t q = 0; q < nq; q++) y[(q0 + q) * ld + c] = src[q][c * hw];
    }
}

/* acc += the upper-triangle entries of block out (mr, nr) at (i0, j0) */
static void add_block(double *acc, int64_t co, const float *out, int64_t i0, int64_t j0, int mr,
                      int nr) {
    for (int k = 0; k < mr && i0 + k < co; k++) {
        int64_t i = i0 + k;
        int q = i > j0 ? (int)(i - j0) : 0;
        for (; q < nr && j0 + q < co; q++) acc[i * co + j0 + q] += out[k * nr + q];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The dot form over tiles of whole images (~512 KiB, <= AG_GRAM_TILE positions); the
 * pooled dot form when ix is given. */
static void dot_accumulate(double *acc, const float *g, const float *ix, int64_t batch,
                           int64_t co, int64_t hw) {
    int64_t per = (ix ? 65536 : 131072) / (co * hw);
    if (per > AG_GRAM_TILE / hw) per = AG_GRAM_TILE / hw;
    if (per < 1) per = 1;
    int64_t nbk = (co + 3) / 4;
#pragma omp parallel
    {
        float out[16];
        for (int64_t b0 = 0; b0 < batch; b0 += per) {
            int64_t nb = batch - b0 < per ? batch - b0 : per;
#pragma omp for schedule(dynamic, 1) collapse(2)
            for (int64_t bi = 0; bi < nbk; bi++)
                for (int64_t bj = 0; bj < nbk; bj++) {
                    if (bj < bi) continue;
                    if (ix)
                        pdot_avx512(out, g + b0 * co * hw, ix + b0 * co * hw, nb, co, hw,
                                    bi * 4, bj * 4);
                    else
                        dot_avx512(out, g + b0 * co * hw, nb, co, hw, bi * 4, bj * 4);
                    add_block(acc, co, out, bi * 4, bj * 4, 4, 4);
                }
        }
    }
}
#endif

int ag_gram_accumulate(double *acc, const float *g, int64_t batch, int64_t co, int64_t hw) {
    return ag_gram_accumulate_isa(acc, g, batch, co, hw, isa_of_cpu());
}

int ag_gram_accumulate_isa(double *acc, const float *g, int64_t batch, int64_t co, int64_t hw,
                           int isa) {
    if (isa != 512 && isa != 256) return 0;
    int mr = isa == 512 ? MR512 : MR256, nr = isa == 512 ? NR512 : NR256;
    int64_t total = batch * hw;
    if (total == 0) return 0;
#if defined(__x86_64__) && defined(__GNUC__)
    /* long rows (conv1 of VGG11: 32 x 32): the dot form, no packing; measured single-
     * threaded per 100 images, co = 64, hw = 1024: 7.6 ms against 9.5 (outer form) and
     * 8.6 (per-image OpenBLAS ssyrk); at hw = 256 the outer form wins (5.8 against 6.4) */
    if (isa == 512 && hw % 16 == 0 && hw >= 512) {
        dot_accumulate(acc, g, NULL, batch, co, hw);
        return 0;
    }
#endif
    int64_t unit = isa == 512 ? 32 : 48; /* lcm(mr, nr): every block lies inside ld */
    int64_t ld = (co + unit - 1) / unit * unit;
    /* a tile of ~512 KiB stays in L2 while every block reads it */
    int64_t tile = (131072 / ld) / 16 * 16;
    if (tile < 16) tile = 16;
    if (tile > AG_GRAM_TILE) tile = AG_GRAM_TILE;
    if (tile > total) tile = total;
    size_t bytes = ((size_t)(tile * ld) * sizeof(float) + 63) / 64 * 64;
    float *y = aligned_alloc(64, bytes);
    if (!y) return -1;
    memset(y, 0, bytes);
    int64_t nbi = (co + mr - 1) / mr, nbj = (co + nr - 1) / nr;
#pragma omp parallel
    {
        float out[MR512 * NR512];
        for (int64_t j0 = 0; j0 < total; j0 += tile) {
            int64_t np = total - j0 < tile ? total - j0 : tile;
            pack_tile(y, ld, g, co, hw, j0, np);
#pragma omp for schedule(dynamic, 1) collapse(2)
            for (int64_t bi = 0; bi < nbi; bi++)
                for (int64_t bj = 0; bj < nbj; bj++) {
                    int64_t i0 = bi * mr, c0 = bj * nr;
                    if (c0 + nr <= i0) continue; /* wholly below the diagonal */
#if defined(__x86_64__) && defined(__GNUC__)
                    if (isa == 512)
                        block_avx512(out, y, ld, np, i0, c0);
                    else
                        block_avx2(out, y, ld, np, i0, c0);
#endif
                    add_block(acc, co, out, i0, c0, mr, nr);
                }
        }
    }
    free(y);
    return 0;
}

int ag_gram_accumulate_pooled(double *acc, const float *v, const float *ix, int64_t batch,
                              int64_t co, int64_t nw) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (isa_of_cpu() == 512 && nw % 16 == 0 && nw >= 16) {
        if (batch > 0) dot_accumulate(acc, v, ix, batch, co, nw);
        return 0;
    }
#endif
    (void)acc, (void)v, (void)ix, (void)batch, (void)co, (void)nw;
    return 1;
}
