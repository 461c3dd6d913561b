/* test_cpu.c - the OpenBLAS core decision table (engine/cpu.c), and that detection on
 * this machine agrees with the kernel's /proc/cpuinfo. */
#include "../../engine/cpu.h"
#include "check.h"

#include <stdio.h>
#include <string.h>

/* Intel Emerald Rapids: family 6 model 207, AVX-512 with BF16 */
static AgCpu intel_avx512(int bf16) {
    AgCpu c = {.vendor = AG_CPU_INTEL, .family = 6, .model = 207};
    c.has_avx2 = c.has_fma = 1;
    c.has_avx512f = c.has_avx512bw = c.has_avx512dq = c.has_avx512vl = 1;
    c.has_avx512bf16 = bf16;
    return c;
}

static AgCpu avx2_fma(AgCpuVendor v) {
    AgCpu c = {.vendor = v, .family = v == AG_CPU_AMD ? 25 : 6, .model = 1};
    c.has_avx2 = c.has_fma = 1;
    return c;
}

static int same(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

#define EXPECT_CORE(cpu, current, want)                                                        \
    do {                                                                                       \
        AgCpu cpu_ = (cpu);                                                                    \
        const char *got_ = ag_blas_coretype_for(&cpu_, (current));                             \
        CHECK(same(got_, (want)), "core %s: got %s, want %s", (current), got_ ? got_ : "NULL", \
              (want) ? (const char *)(want) : "NULL");                                         \
    } while (0)

TEST(intel_avx512_on_prescott_switches_to_skylakex_or_cooperlake) {
    EXPECT_CORE(intel_avx512(1), "Prescott", "Cooperlake");
    EXPECT_CORE(intel_avx512(0), "Prescott", "SkylakeX");
    EXPECT_CORE(intel_avx512(0), "prescott", "SkylakeX"); /* case-blind */
    EXPECT_CORE(intel_avx512(1), "Nehalem", "Cooperlake");
    EXPECT_CORE(intel_avx512(0), "Core2", "SkylakeX");
    EXPECT_CORE(intel_avx512(0), "Sandybridge", "SkylakeX");
}

TEST(avx2_fma_on_old_core_switches_to_haswell_or_zen) {
    EXPECT_CORE(avx2_fma(AG_CPU_INTEL), "Prescott", "Haswell");
    EXPECT_CORE(avx2_fma(AG_CPU_OTHER), "Atom", "Haswell");
    EXPECT_CORE(avx2_fma(AG_CPU_AMD), "Prescott", "Zen");
    EXPECT_CORE(avx2_fma(AG_CPU_AMD), "Barcelona", "Zen");
    EXPECT_CORE(avx2_fma(AG_CPU_AMD), "Opteron_SSE3", "Zen");
}

TEST(amd_avx512_uses_the_avx512_kernels) {
    AgCpu zen4 = intel_avx512(1);
    zen4.vendor = AG_CPU_AMD;
    zen4.family = 25;
    EXPECT_CORE(zen4, "Prescott", "Cooperlake");
}

TEST(a_core_that_fits_is_kept) {
    EXPECT_CORE(avx2_fma(AG_CPU_AMD), "Zen", NULL); /* this machine: Zen3, OpenBLAS says Zen */
    EXPECT_CORE(avx2_fma(AG_CPU_INTEL), "Haswell", NULL);
    EXPECT_CORE(intel_avx512(0), "SkylakeX", NULL);
    EXPECT_CORE(intel_avx512(1), "Cooperlake", NULL);
    EXPECT_CORE(intel_avx512(1), "SapphireRapids", NULL);
    EXPECT_CORE(intel_avx512(1), "Haswell", NULL); /* not a fallback: leave it */
    EXPECT_CORE(avx2_fma(AG_CPU_AMD), "Excavator", NULL);
}

TEST(a_cpu_without_avx2_and_fma_keeps_the_old_core) {
    AgCpu none = {.vendor = AG_CPU_INTEL, .family = 6, .model = 15};
    EXPECT_CORE(none, "Core2", NULL);
    AgCpu avx2_only = none; /* FMA missing: Haswell kernels would fault */
    avx2_only.has_avx2 = 1;
    EXPECT_CORE(avx2_only, "Prescott", NULL);
    AgCpu knl = avx2_fma(AG_CPU_INTEL); /* AVX512F without BW/DQ/VL (Xeon Phi) */
    knl.has_avx512f = 1;
    EXPECT_CORE(knl, "Prescott", "Haswell");
}

TEST(null_arguments_mean_no_change) {
    AgCpu c = avx2_fma(AG_CPU_INTEL);
    CHECK(ag_blas_coretype_for(NULL, "Prescott") == NULL, "NULL cpu");
    CHECK(ag_blas_coretype_for(&c, NULL) == NULL, "NULL core");
    CHECK(!ag_blas_core_is_old(NULL), "NULL core is not old");
    CHECK(!ag_blas_core_is_old(""), "empty core is not old");
}

/* 1 when /proc/cpuinfo's first "flags" line lists flag as a whole word, 0 when not,
 * -1 when there is no such file (not Linux, or no x86) */
static int cpuinfo_has(const char *flag) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return -1;
    static char line[8192];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0) continue;
        found = 0;
        for (char *tok = strtok(strchr(line, ':') + 1, " \n"); tok; tok = strtok(NULL, " \n"))
            if (strcmp(tok, flag) == 0) found = 1;
        break;
    }
    fclose(f);
    return found;
}

TEST(detection_agrees_with_proc_cpuinfo) {
    AgCpu c;
    ag_cpu_detect(&c);
    int avx2 = cpuinfo_has("avx2"), fma = cpuinfo_has("fma"), f512 = cpuinfo_has("avx512f");
    if (avx2 < 0) return; /* no x86 flags to compare with */
    /* the kernel hides flags the OS does not enable, so the two must agree */
    CHECK(c.has_avx2 == avx2, "avx2: cpuid %d, cpuinfo %d", c.has_avx2, avx2);
    CHECK(c.has_fma == fma, "fma: cpuid %d, cpuinfo %d", c.has_fma, fma);
    CHECK(c.has_avx512f == f512, "avx512f: cpuid %d, cpuinfo %d", c.has_avx512f, f512);
    CHECK(c.has_avx512bf16 == cpuinfo_has("avx512_bf16"), "avx512_bf16");
    CHECK(c.family >= 5, "family %d", c.family);
}

/* The FMA peak uses the widest ISA the CPU has and gives a plausible rate: at least one
 * FMA per cycle per thread at 0.5 GHz (a kernel that fell back to scalar or memory-bound
 * code is far below), and no more than 4 vector FMAs per cycle at 8 GHz. */
TEST(fma_peak_uses_the_widest_isa_and_a_plausible_rate) {
    AgCpu c;
    ag_cpu_detect(&c);
    const char *isa = NULL;
    double r = ag_cpu_fma_peak(1, 0.05, &isa);
    int lanes = c.has_avx512f ? 16 : c.has_avx2 && c.has_fma ? 8 : 0;
    CHECK(strcmp(isa, lanes == 16  ? "AVX-512"
                      : lanes == 8 ? "AVX2"
                                   : "none") == 0,
          "isa %s", isa);
    if (!lanes) {
        CHECK(r == 0, "no FMA unit, rate %g", r);
        return;
    }
    CHECK(r >= 2.0 * lanes * 0.5 && r <= 2.0 * lanes * 4 * 8, "rate %g GFLOP/s, %d lanes", r,
          lanes);
}

int main(void) {
    RUN(intel_avx512_on_prescott_switches_to_skylakex_or_cooperlake);
    RUN(avx2_fma_on_old_core_switches_to_haswell_or_zen);
    RUN(amd_avx512_uses_the_avx512_kernels);
    RUN(a_core_that_fits_is_kept);
    RUN(a_cpu_without_avx2_and_fma_keeps_the_old_core);
    RUN(null_arguments_mean_no_change);
    RUN(detection_agrees_with_proc_cpuinfo);
    RUN(fma_peak_uses_the_widest_isa_and_a_plausible_rate);
    return check_report("cpu");
}
