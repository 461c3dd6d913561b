/* check.h - a minimal test harness for the engine's C tests (no Lua).
 *
 *   TEST(conv2d_matches_naive) { ... CHECK(x == y, "x=%d", x); CHECK_CLOSE(a, b, 1e-5); }
 *   int main(void) { RUN(conv2d_matches_naive); return check_report("conv"); }
 *
 * A test passes when none of its checks fail. check_report prints one line
 * "c:<suite> N passed, N failed" that tests/run.sh adds up, and returns non-zero on
 * failure. */
#ifndef CHECK_H
#define CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failed_now, check_n_pass, check_n_fail;

#define TEST(name) static void test_##name(void)

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            check_failed_now = 1;                                                              \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
        }                                                                                      \
    } while (0)

/* |a - b| <= tol * max(1, |a|, |b|) */
#define CHECK_CLOSE(a, b, tol)                                                                 \
    do {                                                                                       \
        double check_a_ = (a), check_b_ = (b);                                                 \
        double check_s_ = fmax(1.0, fmax(fabs(check_a_), fabs(check_b_)));                     \
        CHECK(fabs(check_a_ - check_b_) <= (tol)*check_s_, "%.9g vs %.9g (tol %g)", check_a_,  \
              check_b_, (double)(tol));                                                        \
    } while (0)

#define RUN(name)                                                                              \
    do {                                                                                       \
        check_failed_now = 0;                                                                  \
        test_##name();                                                                         \
        if (check_failed_now) {                                                                \
            check_n_fail++;                                                                    \
            fprintf(stderr, "FAIL %s\n", #name);                                               \
        } else {                                                                               \
            check_n_pass++;                                                                    \
        }                                                                                      \
    } while (0)

static inline int check_report(const char *suite) {
    printf("c:%s %d passed, %d failed\n", suite, check_n_pass, check_n_fail);
    return check_n_fail != 0;
}

#endif
