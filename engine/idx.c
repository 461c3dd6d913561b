/* idx.c - a strict IDX reader (raw or gzip through zlib). See idx.h. */
#include "idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_CHUNK (1 << 20)
#define IDX_GZ_RATIO 1032 /* deflate's largest expansion: 258 bytes from 2 bits */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static const char *type_name(int t) {
    switch (t) {
    case 0x08:
        return "unsigned byte";
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "int16";
    case 0x0C:
        return "int32";
    case 0x0D:
        return "float32";
    case 0x0E:
        return "float64";
    default:
        return "unknown";
    }
}

/* Checks the 4-byte magic; fills *rank. */
static int check_magic(const uint8_t m[4], size_t have, const char *name, int *rank,
                       AgError *err) {
    if (have < 4)
        return ag_fail(err, "%s: file holds %zu bytes, too short for an IDX header", name,
                       have);
    if (m[0] != 0 || m[1] != 0)
        return ag_fail(err,
                       "%s: not an IDX file (starts with %02x %02x %02x %02x, expected "
                       "00 00 08 <rank>)",
                       name, m[0], m[1], m[2], m[3]);
    if (m[2] != 0x08)
        return ag_fail(err,
                       "%s: IDX element type 0x%02x (%s) is not supported; only unsigned "
                       "bytes (0x08)",
                       name, m[2], type_name(m[2]));
    if (m[3] < 1 || m[3] > AG_IDX_MAXDIM)
        return ag_fail(err, "%s: IDX rank %d is out of range 1..%d", name, m[3], AG_IDX_MAXDIM);
    *rank = m[3];
    return 0;
}

/* Reads the sizes (big-endian uint32) and fills out->dim, items, size[], *item_bytes.
 * Their product is bounded with any 0 counted as 1, so no size is ever unchecked. */
static int parse_sizes(AgIdx *out, const uint8_t *p, int rank, const char *name,
                       int64_t *item_bytes, AgError *err) {
    int64_t item = 1, bound = 1;
    out->dim = rank;
    for (int d = 0; d < rank; d++) {
        const uint8_t *q = p + 4 * d;
        out->size[d] = ((int64_t)q[0] << 24) | ((int64_t)q[1] << 16) | ((int64_t)q[2] << 8) |
                       (int64_t)q[3];
        if (ag_mul_size(bound, out->size[d] ? out->size[d] : 1, &bound) ||
            bound > AG_IDX_MAXBYTES)
            return ag_fail(err,
                           "%s: header sizes multiply to more than the limit of %lld bytes "
                           "(a 0 counted as 1)",
                           name, (long long)AG_IDX_MAXBYTES);
        if (d > 0) item *= out->size[d];
    }
    out->items = out->size[0];
    *item_bytes = item;
    return 0;
}

static int size_mismatch(const AgIdx *h, int64_t item_bytes, int64_t payload, const char *name,
                         AgError *err) {
    if (item_bytes > 0 && payload % item_bytes == 0)
        return ag_fail(err, "%s: header says %lld items, file holds %lld", name,
                       (long long)h->items, (long long)(payload / item_bytes));
    return ag_fail(err,
                   "%s: header says %lld items of %lld bytes (%lld bytes of data), file "
                   "holds %lld bytes of data",
                   name, (long long)h->items, (long long)item_bytes,
                   (long long)(h->items * item_bytes), (long long)payload);
}

/* Label range over bytes [0, n) that start at item index first_item. */
static int check_labels(const uint8_t *p, int64_t n, int64_t first_item, int64_t item_bytes,
                        int max_label, const char *name, AgError *err) {
    if (max_label < 0) return 0;
    for (int64_t i = 0; i < n; i++)
        if (p[i] > max_label)
            return ag_fail(err, "%s: label %d at item %lld is out of range 0..%d", name, p[i],
                           (long long)(first_item + i / (item_bytes ? item_bytes : 1)),
                           max_label);
    return 0;
}

static void finish(AgIdx *out, int64_t limit) {
    if (limit >= 0 && limit < out->size[0]) out->size[0] = limit;
    out->numel = 1;
    for (int d = 0; d < out->dim; d++) out->numel *= out->size[d];
}

int ag_idx_parse(AgIdx *out, const uint8_t *buf, size_t len, const char *name, int64_t limit,
                 int max_label, AgError *err) {
    memset(out, 0, sizeof *out);
    int rank;
    int64_t item_bytes;
    AgIdx h = {0};
    if (check_magic(buf, len, name, &rank, err)) return -1;
    size_t hdr = 4 + 4 * (size_t)rank;
    if (len < hdr)
        return ag_fail(err, "%s: file holds %zu bytes, shorter than its %zu-byte header", name,
                       len, hdr);
    if (parse_sizes(&h, buf + 4, rank, name, &item_bytes, err)) return -1;
    int64_t payload = (int64_t)(len - hdr);
    if (payload != h.items * item_bytes)
        return size_mismatch(&h, item_bytes, payload, name, err);
    if (check_labels(buf + hdr, payload, 0, item_bytes, max_label, name, err)) return -1;
    finish(&h, limit);
    h.data = malloc(h.numel > 0 ? (size_t)h.numel : 1);
    if (!h.data)
        return ag_fail(err, "%s: out of memory (%lld bytes)", name, (long long)h.numel);
    if (h.numel > 0) memcpy(h.data, buf + hdr, (size_t)h.numel);
    *out = h;
    return 0;
}

/* The bytes of a file, raw or inflated from gzip (detected by its magic 1f 8b, not by
 * its name). A gzip file may hold several members (as gzip allows); anything else after
 * the last one is an error, not silently ignored. */
typedef struct Src {
    FILE *f;
    int gz, end; /* end: the last gzip member is complete and nothing follows */
    int64_t fsize;
    uint8_t *in; /* IDX_IN bytes of compressed input */
    z_stream z;
} Src;

#define IDX_IN (1 << 16)

static int src_open(Src *s, const char *path, int64_t fsize, AgError *err) {
    memset(s, 0, sizeof *s);
    s->fsize = fsize;
    s->f = fopen(path, "rb");
    if (!s->f) return ag_fail(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t m[2];
    size_t k = fread(m, 1, 2, s->f);
    s->gz = k == 2 && m[0] == 0x1f && m[1] == 0x8b;
    rewind(s->f);
    if (!s->gz) return 0;
    s->in = malloc(IDX_IN);
    if (!s->in || inflateInit2(&s->z, 15 + 16) != Z_OK) {
        free(s->in);
        fclose(s->f);
        s->f = NULL, s->in = NULL, s->gz = 0;
        return ag_fail(err, "%s: out of memory", path);
    }
    return 0;
}

static void src_close(Src *s) {
    if (s->gz) inflateEnd(&s->z);
    free(s->in);
    if (s->f) fclose(s->f);
    memset(s, 0, sizeof *s);
}

/* Moves the unread input to the front of s->in and reads more after it; -1 on a read
 * error. */
static int src_refill(Src *s, const char *name, AgError *err) {
    if (s->z.avail_in > 0) memmove(s->in, s->z.next_in, s->z.avail_in);
    size_t r = fread(s->in + s->z.avail_in, 1, IDX_IN - s->z.avail_in, s->f);
    if (ferror(s->f)) return ag_fail(err, "%s: read error: %s", name, strerror(errno));
    s->z.next_in = s->in;
    s->z.avail_in += (uInt)r;
    return 0;
}

/* Reads up to n bytes into p; returns the count (less than n only at the end of the
 * data), or -1 with err filled (corrupt, truncated or trailing gzip data). */
static int64_t src_read(Src *s, uint8_t *p, int64_t n, const char *name, AgError *err) {
    if (!s->gz) {
        size_t r = fread(p, 1, (size_t)n, s->f);
        if (ferror(s->f)) return ag_fail(err, "%s: read error: %s", name, strerror(errno));
        return (int64_t)r;
    }
    int64_t got = 0;
    while (got < n && !s->end) {
        if (s->z.avail_in == 0) {
            if (src_refill(s, name, err)) return -1;
            if (s->z.avail_in == 0)
                return ag_fail(
                    err, "%s: corrupt or truncated gzip data (the stream ends early)", name);
        }
        uInt want = (uInt)(n - got > IDX_CHUNK ? IDX_CHUNK : n - got);
        s->z.next_out = p + got;
        s->z.avail_out = want;
        int rc = inflate(&s->z, Z_NO_FLUSH);
        got += want - s->z.avail_out;
        if (rc == Z_STREAM_END) {
            if (s->z.avail_in < 2 && src_refill(s, name, err)) return -1;
            if (s->z.avail_in == 0) {
                s->end = 1;
            } else if (s->z.avail_in >= 2 && s->z.next_in[0] == 0x1f &&
                       s->z.next_in[1] == 0x8b) {
                inflateReset(&s->z); /* another member follows */
            } else {
                long pos = ftell(s->f);
                int64_t rest = (int64_t)s->z.avail_in + (pos >= 0 ? s->fsize - pos : 0);
                return ag_fail(err,
                               "%s: %lld bytes of trailing data after the gzip stream (a "
                               "damaged download?)",
                               name, (long long)rest);
            }
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return ag_fail(err, "%s: corrupt or truncated gzip data (zlib: %s)", name,
                           s->z.msg ? s->z.msg : "data error");
        }
    }
    return got;
}

int ag_idx_read(AgIdx *out, const char *path, int64_t limit, int max_label, AgError *err) {
    memset(out, 0, sizeof *out);
    const char *name = base_name(path);
    struct stat st;
    if (stat(path, &st) != 0) return ag_fail(err, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ag_fail(err, "%s: not a regular file", path);
    Src g;
    if (src_open(&g, path, (int64_t)st.st_size, err)) return -1;

    AgIdx h = {0};
    uint8_t hdr[4 + 4 * AG_IDX_MAXDIM], *scratch = NULL;
    int rank;
    int64_t item_bytes, got, keep;
    got = src_read(&g, hdr, 4, name, err);
    if (got < 0) goto fail;
    if (check_magic(hdr, (size_t)got, name, &rank, err)) goto fail;
    int64_t hlen = 4 + 4 * (int64_t)rank;
    got = src_read(&g, hdr + 4, hlen - 4, name, err);
    if (got < 0) goto fail;
    if (got < hlen - 4) {
        ag_fail(err, "%s: file holds %lld bytes, shorter than its %lld-byte header", name,
                (long long)(4 + got), (long long)hlen);
        goto fail;
    }
    if (parse_sizes(&h, hdr + 4, rank, name, &item_bytes, err)) goto fail;
    int64_t total = h.items * item_bytes;
    /* an uncompressed file: its length is known, so a lying header costs nothing */
    if (!g.gz && (int64_t)st.st_size - hlen != total) {
        size_mismatch(&h, item_bytes, (int64_t)st.st_size - hlen, name, err);
        goto fail;
    }
    /* a gzip file: deflate expands at most IDX_GZ_RATIO times, so the file's size bounds
     * what its header may claim */
    if (g.gz && total / IDX_GZ_RATIO > (int64_t)st.st_size) {
        ag_fail(err,
                "%s: header says %lld bytes of data, more than a gzip file of %lld bytes can "
                "hold (deflate expands at most %d times)",
                name, (long long)total, (long long)st.st_size, IDX_GZ_RATIO);
        goto fail;
    }
    finish(&h, limit);
    keep = h.numel;
    /* the kept items, in a buffer grown as data arrives (never trusting the header with
     * a large allocation before the bytes exist) */
    int64_t cap = keep < IDX_CHUNK ? keep : IDX_CHUNK, have = 0;
    h.data = malloc(cap > 0 ? (size_t)cap : 1);
    if (!h.data) {
        ag_fail(err, "%s: out of memory", name);
        goto fail;
    }
    while (have < keep) {
        if (have == cap) {
            int64_t ncap = cap * 2 < keep ? cap * 2 : keep;
            uint8_t *p = realloc(h.data, (size_t)ncap);
            if (!p) {
                ag_fail(err, "%s: out of memory (%lld bytes)", name, (long long)ncap);
                goto fail;
            }
            h.data = p, cap = ncap;
        }
        got = src_read(&g, h.data + have, cap - have, name, err);
        if (got < 0) goto fail;
        if (got == 0) break;
        have += got;
    }
    if (check_labels(h.data, have, 0, item_bytes, max_label, name, err)) goto fail;
    /* the rest of the file: counted (and label-checked), not kept; a gzip file is
     * inflated only as far as the kept items need */
    int64_t rest = 0;
    if (have == keep && keep < total && g.gz) {
        rest = total - keep; /* not inflated: the work follows the limit, not the file */
    } else if (have == keep && !g.gz && max_label < 0) {
        rest = total - keep; /* the length was checked against the header above */
    } else if (have == keep) {
        scratch = malloc(IDX_CHUNK);
        if (!scratch) {
            ag_fail(err, "%s: out of memory", name);
            goto fail;
        }
        for (;;) {
            got = src_read(&g, scratch, IDX_CHUNK, name, err);
            if (got < 0) goto fail;
            if (got == 0) break;
            int64_t in_range = total - keep - rest; /* bytes still inside the data */
            if (in_range > 0 &&
                check_labels(scratch, got < in_range ? got : in_range,
                             (keep + rest) / item_bytes, item_bytes, max_label, name, err))
                goto fail;
            rest += got;
            if (rest > total - keep) { /* too long: no need to inflate on */
                ag_fail(err,
                        "%s: header says %lld items of %lld bytes, the data goes on past them",
                        name, (long long)h.items, (long long)item_bytes);
                goto fail;
            }
        }
    }
    if (have + rest != total) {
        size_mismatch(&h, item_bytes, have + rest, name, err);
        goto fail;
    }
    free(scratch);
    src_close(&g);
    *out = h;
    return 0;
fail:
    free(scratch);
    free(h.data);
    src_close(&g);
    return -1;
}

void ag_idx_free(AgIdx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

void ag_idx_to_float(float *y, const AgIdx *idx, int64_t first, int64_t n, int pad, float div,
                     float mean, float std) {
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / div - mean) / std;
    int64_t item = 1;
    for (int d = 1; d < idx->dim; d++) item *= idx->size[d];
    const uint8_t *x = idx->data + first * item;
    if (pad <= 0) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n * item; i++) y[i] = lut[x[i]];
        return;
    }
    int64_t h = idx->size[idx->dim - 2], w = idx->size[idx->dim - 1], planes = n;
    int64_t ho = h + 2 * pad, wo = w + 2 * pad;
    for (int d = 1; d < idx->dim - 2; d++) planes *= idx->size[d];
    float border = lut[0];
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float *yp = y + p * ho * wo;
        const uint8_t *xp = x + p * h * w;
        for (int64_t i = 0; i < ho * wo; i++) yp[i] = border;
        for (int64_t r = 0; r < h; r++) {
            float *row = yp + (r + pad) * wo + pad;
            for (int64_t c = 0; c < w; c++) row[c] = lut[xp[r * w + c]];
        }
    }
}
