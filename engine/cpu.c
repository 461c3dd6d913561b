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
