/* io.c - bounds-checked little-endian reads and atomic writes. See io.h. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK ((int64_t)1 << 20) /* bytes per read or write call */

static const struct {
    const char *name;
    int size;
} dtypes[AG_DT_COUNT] = {
    [AG_DT_F32] = {"F32", 4},   [AG_DT_F64] = {"F64", 8}, [AG_DT_F16] = {"F16", 2},
    [AG_DT_BF16] = {"BF16", 2}, [AG_DT_I64] = {"I64", 8}, [AG_DT_I32] = {"I32", 4},
    [AG_DT_I16] = {"I16", 2},   [AG_DT_I8] = {"I8", 1},   [AG_DT_U8] = {"U8", 1},
    [AG_DT_BOOL] = {"BOOL", 1},
};

int ag_dtype_size(AgDtype dt) {
    return dt >= 0 && dt < AG_DT_COUNT ? dtypes[dt].size : 0;
}

const char *ag_dtype_name(AgDtype dt) {
    return dt >= 0 && dt < AG_DT_COUNT ? dtypes[dt].name : "?";
}

int ag_dtype_from_name(const char *name, AgDtype *dt) {
    for (int i = 0; i < AG_DT_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *dt = (AgDtype)i;
            return 0;
        }
    return -1;
}

static int host_is_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static uint64_t load_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void store_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static float half_to_float(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24); /* zero or subnormal */
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(m | 1024), e - 25);
    return sign ? -v : v;
}

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* out[0..n) from n packed little-endian elements at p */
static void convert_in(float *out, const uint8_t *p, int64_t n, AgDtype dt, int le) {
    int sz = dtypes[dt].size;
    if (dt == AG_DT_F32 && le) {
        memcpy(out, p, (size_t)n * 4);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *q = p + i * sz;
        uint64_t u = load_le(q, sz);
        double d;
        switch (dt) {
        case AG_DT_F32:
            out[i] = bits_to_float((uint32_t)u);
            break;
        case AG_DT_F64:
            memcpy(&d, &u, 8), out[i] = (float)d;
            break;
        case AG_DT_F16:
            out[i] = half_to_float((uint16_t)u);
            break;
        case AG_DT_BF16:
            out[i] = bits_to_float((uint32_t)u << 16);
            break;
        case AG_DT_I64:
            out[i] = (float)(int64_t)u;
            break;
        case AG_DT_I32:
            out[i] = (float)(int32_t)(uint32_t)u;
            break;
        case AG_DT_I16:
            out[i] = (float)(int16_t)(uint16_t)u;
            break;
        case AG_DT_I8:
            out[i] = (float)(int8_t)(uint8_t)u;
            break;
        case AG_DT_U8:
            out[i] = (float)(uint8_t)u;
            break;
        case AG_DT_BOOL:
            out[i] = u ? 1.0f : 0.0f;
            break;
        default:
            out[i] = NAN;
            break;
        }
    }
}

int ag_file_size(const char *path, int64_t *size, AgError *err) {
    struct stat st;
    if (stat(path, &st) != 0) return ag_fail(err, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ag_fail(err, "%s: not a regular file", path);
    *size = (int64_t)st.st_size;
    return 0;
}

int ag_read_elems(float *out, const char *path, int64_t offset, int64_t n, AgDtype dt,
                  AgError *err) {
    if (dt < 0 || dt >= AG_DT_COUNT) return ag_fail(err, "%s: unknown element type", path);
    int sz = dtypes[dt].size;
    int64_t nbytes, end;
    if (offset < 0 || n < 0 || ag_mul_size(n, sz, &nbytes) || offset > INT64_MAX - nbytes)
        return ag_fail(err, "%s: bad data range (offset %lld, %lld elements of %s)", path,
                       (long long)offset, (long long)n, dtypes[dt].name);
    end = offset + nbytes;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ag_fail(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ag_fail(err, "%s: not a regular file", path);
    }
    if (end > (int64_t)st.st_size) {
        close(fd);
        return ag_fail(err, "%s: data bytes [%lld, %lld) lie outside the file (%lld bytes)",
                       path, (long long)offset, (long long)end, (long long)st.st_size);
    }
    int le = host_is_le();
    uint8_t *buf = NULL;
    int64_t per = IO_CHUNK / sz; /* elements per chunk */
    if (!(dt == AG_DT_F32 && le)) {
        buf = malloc((size_t)(per * sz));
        if (!buf) {
            close(fd);
            return ag_fail(err, "%s: out of memory", path);
        }
    }
    int64_t done = 0;
    while (done < n) {
        int64_t k = n - done < per ? n - done : per;
        uint8_t *dst = buf ? buf : (uint8_t *)(out + done);
        int64_t want = k * sz, got = 0;
        while (got < want) {
            ssize_t r =
                pread(fd, dst + got, (size_t)(want - got), (off_t)(offset + done * sz + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                int e = errno;
                free(buf);
                close(fd);
                return ag_fail(err, "%s: read failed at byte %lld: %s", path,
                               (long long)(offset + done * sz + got),
                               r < 0 ? strerror(e) : "file shrank while reading");
            }
            got += r;
        }
        if (buf) convert_in(out + done, buf, k, dt, le);
        done += k;
    }
    free(buf);
    close(fd);
    return 0;
}

/* ---- atomic write ------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, int64_t n) {
    while (n > 0) {
        ssize_t r = write(fd, p, (size_t)(n < IO_CHUNK ? n : IO_CHUNK));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r, n -= r;
    }
    return 0;
}

/* Writes n floats as dt through buf (IO_CHUNK bytes). */
static int write_floats(int fd, uint8_t *buf, const float *x, int64_t n, AgDtype dt,
                        const char *path, AgError *err) {
    int sz = dtypes[dt].size, le = host_is_le();
    if (dt == AG_DT_F32 && le)
        return write_all(fd, (const uint8_t *)x, n * 4)
                   ? ag_fail(err, "%s: write failed: %s", path, strerror(errno))
                   : 0;
    int64_t per = IO_CHUNK / sz;
    for (int64_t i0 = 0; i0 < n; i0 += per) {
        int64_t k = n - i0 < per ? n - i0 : per;
        for (int64_t i = 0; i < k; i++) {
            float f = x[i0 + i];
            uint64_t u;
            if (dt == AG_DT_F32) {
                uint32_t w;
                memcpy(&w, &f, 4);
                u = w;
            } else if (dt == AG_DT_F64) {
                double d = f;
                memcpy(&u, &d, 8);
            } else { /* I64 */
                if (!(f == floorf(f)) || fabsf(f) > 9.2e18f)
                    return ag_fail(err, "%s: value %g at element %lld is not an integer (I64)",
                                   path, (double)f, (long long)(i0 + i));
                u = (uint64_t)(int64_t)f;
            }
            store_le(buf + i * sz, u, sz);
        }
        if (write_all(fd, buf, k * sz))
            return ag_fail(err, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

int ag_write_atomic(const char *path, const AgWritePart *parts, int nparts, AgError *err) {
    for (int i = 0; i < nparts; i++) {
        const AgWritePart *p = &parts[i];
        if (p->data && p->dt != AG_DT_F32 && p->dt != AG_DT_F64 && p->dt != AG_DT_I64)
            return ag_fail(err, "%s: cannot write element type %s (F32, F64 or I64)", path,
                           ag_dtype_name(p->dt));
        if ((p->data && p->n < 0) || (!p->data && p->nbytes < 0) ||
            (!p->data && p->nbytes && !p->bytes))
            return ag_fail(err, "%s: bad part %d", path, i);
    }
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) return ag_fail(err, "%s: out of memory", path);
    /* a fresh name next to path: pid, clock and attempt make collisions unlikely, and
     * O_EXCL makes them harmless */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, len + 32, "%s.tmp%ld.%x", path, (long)getpid(),
                 (unsigned)(ts.tv_nsec + attempt * 7919) & 0xffffff);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return ag_fail(err, "%s: cannot create a file there: %s", path, strerror(e));
    }
    uint8_t *buf = malloc((size_t)IO_CHUNK);
    int rc = buf ? 0 : ag_fail(err, "%s: out of memory", path);
    for (int i = 0; i < nparts && rc == 0; i++) {
        const AgWritePart *p = &parts[i];
        if (p->data)
            rc = write_floats(fd, buf, p->data, p->n, p->dt, path, err);
        else if (write_all(fd, p->bytes, p->nbytes))
            rc = ag_fail(err, "%s: write failed: %s", path, strerror(errno));
    }
    free(buf);
    if (rc == 0 && fsync(fd) != 0)
        rc = ag_fail(err, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = ag_fail(err, "%s: close failed: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ag_fail(err, "%s: cannot rename the temporary file over it: %s", path,
                     strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    /* make the rename itself durable */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = 0;
        else if (slash)
            *slash = 0;
        else
            strcpy(dir, ".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return 0;
}
