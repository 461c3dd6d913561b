/* ag.h - what every engine file shares: the error value and cancellation.
 *
 * Engine functions never exit, abort or print. A function that can fail returns
 * non-zero and fills err with a sentence a user can act on (ag_fail). Long loops poll
 * ag_cancelled(err) so that the host can interrupt them (Ctrl-C in the REPL); the flag
 * lives with the caller, never in the engine. */
#ifndef AG_H
#define AG_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct AgError {
    char msg[512];
    const volatile sig_atomic_t *cancel; /* may be NULL: nothing can interrupt */
} AgError;

/* Fills err->msg (printf style) and returns -1, so callers write `return ag_fail(...)`. */
int ag_fail(AgError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Non-zero when the caller asked to stop; then it also fills err with "interrupted". */
int ag_cancelled(AgError *err);

/* An error value with no cancellation flag, for tests and internal use. */
#define AG_ERROR_INIT                                                                          \
    { .msg = {0}, .cancel = NULL }

/* The largest element count of any tensor or kernel operand (4 TiB of floats): anything
 * larger is a mistake, and every size check in the engine bounds against it. */
#define AG_MAXNUMEL ((int64_t)1 << 40)

/* Overflow-checked size arithmetic: 0 on success, -1 when the product would not fit. */
int ag_mul_size(int64_t a, int64_t b, int64_t *out);

#endif
