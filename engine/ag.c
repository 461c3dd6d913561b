/* ag.c - the error value shared by the engine. */
#include "ag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ag_fail(AgError *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ag_cancelled(AgError *err) {
    if (err && err->cancel && *err->cancel) {
        snprintf(err->msg, sizeof err->msg, "interrupted");
        return 1;
    }
    return 0;
}

int ag_mul_size(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return -1;
    if (a != 0 && b > INT64_MAX / a) return -1;
    *out = a * b;
    return 0;
}
