/* cpu.h - what the CPU can do, and which OpenBLAS kernels fit it.
 *
 * Debian's OpenBLAS 0.3.21 does not know recent CPUs (Intel family 6 model 207, AMD
 * family 0x1a, ...) and falls back to Prescott kernels, about 10x slower than the ones
 * the CPU can run. OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so the host
 * asks ag_blas_coretype_for() at start-up and, when it names a core, sets the variable
 * and re-executes itself (bindings/main.c). The decision is a pure function of the
 * detected features so that it can be tested on any machine. */
#ifndef AG_CPU_H
#define AG_CPU_H

typedef enum AgCpuVendor { AG_CPU_OTHER = 0, AG_CPU_INTEL, AG_CPU_AMD } AgCpuVendor;

/* Feature flags are 1 only when the CPU has the instructions AND the operating system
 * saves their registers (XGETBV), i.e. when they can actually be used. */
typedef struct AgCpu {
    AgCpuVendor vendor;
    int family, model; /* display family and model (extended fields folded in) */
    int has_avx2, has_fma;
    int has_avx512f, has_avx512bw, has_avx512dq,
        has_avx512vl; /* SkylakeX kernels need all four */
    int has_avx512bf16;
} AgCpu;

/* Fills cpu from the cpuid instruction; all zero on non-x86 machines. */
void ag_cpu_detect(AgCpu *cpu);

/* The OpenBLAS core type (a value for OPENBLAS_CORETYPE) to switch to when OpenBLAS
 * chose current_core (openblas_get_corename()), a generic or old core, while the CPU
 * can run much faster kernels: "Cooperlake" or "SkylakeX" for AVX-512, "Haswell" (Intel
 * and others) or "Zen" (AMD) for AVX2 + FMA. NULL when the choice is fine as it is. */
const char *ag_blas_coretype_for(const AgCpu *cpu, const char *current_core);

/* 1 when current_core is one of the generic or pre-AVX2 cores that OpenBLAS falls back
 * to (Prescott, Core2, Nehalem, Sandybridge, Barcelona, ...), compared case-blind. */
int ag_blas_core_is_old(const char *current_core);

/* The measured peak of float fused multiply-adds, in GFLOP/s (2 flops per lane), over
 * `threads` OpenMP threads running independent FMA chains from registers for about
 * `seconds`: with AVX-512 when the CPU has it (*isa = "AVX-512"), else AVX2 + FMA
 * ("AVX2"), else 0 ("none"). Compiled for those ISAs through target attributes, so the
 * build stays portable; the CPU decides at run time. */
double ag_cpu_fma_peak(int threads, double seconds, const char **isa);

#endif
