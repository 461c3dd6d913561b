/* cpu.c - CPU feature detection and the OpenBLAS core choice (see cpu.h). */
#include "cpu.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0: which register states the OS saves on a context switch */
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void ag_cpu_detect(AgCpu *cpu) {
    memset(cpu, 0, sizeof *cpu);
    unsigned int a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned int max_leaf = a;
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    if (strcmp(vendor, "GenuineIntel") == 0)
        cpu->vendor = AG_CPU_INTEL;
    else if (strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0)
        cpu->vendor = AG_CPU_AMD;

    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int family = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    if (family == 0x6 || family >= 0xf) model += ((a >> 16) & 0xf) << 4;
    cpu->family = family;
    cpu->model = model;

    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int os_avx = avx && (xcr0 & 0x6) == 0x6;         /* SSE and AVX state */
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM0-15 high, ZMM16-31 */
    cpu->has_fma = os_avx && fma;
    if (max_leaf < 7) return;

    __cpuid_count(7, 0, a, b, c, d);
    unsigned int max_sub7 = a;
    cpu->has_avx2 = os_avx && ((b >> 5) & 1);
    cpu->has_avx512f = os_avx512 && ((b >> 16) & 1);
    cpu->has_avx512dq = os_avx512 && ((b >> 17) & 1);
    cpu->has_avx512bw = os_avx512 && ((b >> 30) & 1);
    cpu->has_avx512vl = os_avx512 && ((b >> 31) & 1);
    if (max_sub7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        cpu->has_avx512bf16 = os_avx512 && ((a >> 5) & 1);
    }
}
#else
void ag_cpu_detect(AgCpu *cpu) {
    memset(cpu, 0, sizeof *cpu);
}
#endif

int ag_blas_core_is_old(const char *current_core) {
    /* every core OpenBLAS 0.3.x can fall back to that has no AVX2 kernels */
    static const char *const old[] = {
        "Unknown", "Katmai",      "Coppermine", "Northwood",    "Prescott",
        "Banias",  "Atom",        "Core2",      "Penryn",       "Dunnington",
        "Nehalem", "Athlon",      "Opteron",    "Opteron_SSE3", "Barcelona",
        "Nano",    "Sandybridge", "Bobcat",     "Generic",
    };
    if (!current_core) return 0;
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcasecmp(current_core, old[i]) == 0) return 1;
    return 0;
}

const char *ag_blas_coretype_for(const AgCpu *cpu, const char *current_core) {
    if (!cpu || !current_core || !ag_blas_core_is_old(current_core)) return NULL;
    if (cpu->has_avx512f && cpu->has_avx512bw && cpu->has_avx512dq && cpu->has_avx512vl)
        return cpu->has_avx512bf16 ? "Cooperlake" : "SkylakeX";
    if (cpu->has_avx2 && cpu->has_fma) return cpu->vendor == AG_CPU_AMD ? "Zen" : "Haswell";
    return NULL;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <omp.h>

/* FMA_CHAINS independent chains, >= latency x ports of current cores (4 x 2 on Zen 5 and
 * Skylake-X), written out so that they stay in registers */
#define FMA_CHAINS 12
#define FMA_ROUND(f)                                                                           \
    a0 = f(a0, m, c), a1 = f(a1, m, c), a2 = f(a2, m, c), a3 = f(a3, m, c), a4 = f(a4, m, c),  \
    a5 = f(a5, m, c), a6 = f(a6, m, c), a7 = f(a7, m, c), a8 = f(a8, m, c), a9 = f(a9, m, c),  \
    a10 = f(a10, m, c), a11 = f(a11, m, c)
#define FMA_KERNEL(T, set1, fmadd, add, n)                                                     \
    T m = set1(0.999999f), c = set1(1e-7f);                                                    \
    T a0 = set1(0), a1 = set1(1), a2 = set1(2), a3 = set1(3), a4 = set1(4), a5 = set1(5);      \
    T a6 = set1(6), a7 = set1(7), a8 = set1(8), a9 = set1(9), a10 = set1(10), a11 = set1(11);  \
    for (long r = 0; r < n; r++) FMA_ROUND(fmadd);                                             \
    a0 = add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(a6, a7)));                    \
    a0 = add(a0, add(add(a8, a9), add(a10, a11)))

/* n rounds of FMA_CHAINS independent 16-lane FMAs; returns a sum so none is dropped */
__attribute__((target("avx512f"))) static float fma_avx512(long n) {
    FMA_KERNEL(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, n);
    return _mm512_reduce_add_ps(a0);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long n) {
    FMA_KERNEL(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, n);
    float lanes[8], s = 0;
    _mm256_storeu_ps(lanes, a0);
    for (int j = 0; j < 8; j++) s += lanes[j];
    return s;
}

double ag_cpu_fma_peak(int threads, double seconds, const char **isa) {
    AgCpu cpu;
    ag_cpu_detect(&cpu);
    int lanes = cpu.has_avx512f ? 16 : cpu.has_avx2 && cpu.has_fma ? 8 : 0;
    *isa = lanes == 16 ? "AVX-512" : lanes == 8 ? "AVX2" : "none";
    if (!lanes || threads < 1) return 0;
    /* grow n until one run lasts 5 ms, then run for `seconds` and keep the best run:
     * on a shared machine the fastest short run is the one nobody interrupted */
    long n = 1 << 12;
    double best = 0, spent = 0;
    volatile float sink = 0;
    while (spent < seconds) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += lanes == 16 ? fma_avx512(n) : fma_avx2(n);
        double dt = omp_get_wtime() - t0;
        spent += dt;
        if (dt < 0.005) {
            n *= 2;
            continue;
        }
        double r = 2.0 * lanes * FMA_CHAINS * (double)n * threads / dt / 1e9;
        best = r > best ? r : best;
    }
    return best;
}
#else
double ag_cpu_fma_peak(int threads, double seconds, const char **isa) {
    (void)threads;
    (void)seconds;
    *isa = "none";
    return 0;
}
#endif
