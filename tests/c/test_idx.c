/* test_idx.c - the IDX reader on files written here: valid, corrupt, gzip. */
#include "../../engine/idx.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];

static const char *path_of(const char *name) {
    static char buf[4][512];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", dir, name);
    return buf[slot];
}

/* An IDX image file of n items of h x w bytes with pixel value (i*7 + r*3 + c) % 256,
 * into mem (size returned); extra bytes appended at the end (negative: cut). */
static size_t make_images(uint8_t *mem, int n, int h, int w, int extra) {
    uint8_t *p = mem;
    *p++ = 0, *p++ = 0, *p++ = 0x08, *p++ = 3;
    int dims[3] = {n, h, w};
    for (int d = 0; d < 3; d++) {
        *p++ = (uint8_t)(dims[d] >> 24), *p++ = (uint8_t)(dims[d] >> 16);
        *p++ = (uint8_t)(dims[d] >> 8), *p++ = (uint8_t)dims[d];
    }
    for (int i = 0; i < n; i++)
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++) *p++ = (uint8_t)((i * 7 + r * 3 + c) % 256);
    for (int e = 0; e < extra; e++) *p++ = 0;
    return (size_t)(p - mem) + (size_t)(extra < 0 ? extra : 0);
}

static size_t make_labels(uint8_t *mem, int n, int bad_at) {
    uint8_t *p = mem;
    *p++ = 0, *p++ = 0, *p++ = 0x08, *p++ = 1;
    *p++ = (uint8_t)(n >> 24), *p++ = (uint8_t)(n >> 16), *p++ = (uint8_t)(n >> 8),
    *p++ = (uint8_t)n;
    for (int i = 0; i < n; i++) *p++ = (uint8_t)(i == bad_at ? 12 : i % 10);
    return (size_t)(p - mem);
}

static void write_raw(const char *name, const uint8_t *mem, size_t n) {
    FILE *f = fopen(path_of(name), "wb");
    if (!f) return;
    fwrite(mem, 1, n, f);
    fclose(f);
}

static void write_gz(const char *name, const uint8_t *mem, size_t n) {
    gzFile g = gzopen(path_of(name), "wb");
    if (!g) return;
    gzwrite(g, mem, (unsigned)n);
    gzclose(g);
}

static uint8_t mem[1 << 16];

TEST(valid_raw_file_reads_header_and_bytes) {
    size_t n = make_images(mem, 5, 4, 3, 0);
    write_raw("ok-idx3-ubyte", mem, n);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    int rc = ag_idx_read(&x, path_of("ok-idx3-ubyte"), -1, -1, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(x.dim == 3 && x.size[0] == 5 && x.size[1] == 4 && x.size[2] == 3, "dims");
    CHECK(x.items == 5 && x.numel == 60, "numel %lld", (long long)x.numel);
    CHECK(memcmp(x.data, mem + 16, 60) == 0, "bytes differ");
    ag_idx_free(&x);
    CHECK(x.data == NULL, "freed");
}

TEST(limit_keeps_first_items_but_checks_whole_file) {
    size_t n = make_images(mem, 5, 4, 3, 0);
    write_raw("lim-idx3-ubyte", mem, n);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    int rc = ag_idx_read(&x, path_of("lim-idx3-ubyte"), 2, -1, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(x.size[0] == 2 && x.items == 5 && x.numel == 24, "limit");
    CHECK(memcmp(x.data, mem + 16, 24) == 0, "bytes differ");
    ag_idx_free(&x);
    /* a limit larger than the file keeps everything */
    rc = ag_idx_read(&x, path_of("lim-idx3-ubyte"), 100, -1, &err);
    CHECK(rc == 0 && x.size[0] == 5, "limit 100");
    ag_idx_free(&x);
}

TEST(bad_magic_names_file) {
    size_t n = make_images(mem, 2, 2, 2, 0);
    mem[0] = 0x50, mem[1] = 0x4b;
    write_raw("bad-magic", mem, n);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_idx_read(&x, path_of("bad-magic"), -1, -1, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "bad-magic: not an IDX file") != NULL, "%s", err.msg);
    CHECK(x.data == NULL, "partial object");
    make_images(mem, 2, 2, 2, 0);
    mem[2] = 0x0D; /* float32 */
    write_raw("float-idx", mem, n);
    CHECK(ag_idx_read(&x, path_of("float-idx"), -1, -1, &err) != 0, "accepted float");
    CHECK(strstr(err.msg, "0x0d (float32) is not supported") != NULL, "%s", err.msg);
    make_images(mem, 2, 2, 2, 0);
    mem[3] = 0;
    write_raw("rank0", mem, n);
    CHECK(ag_idx_read(&x, path_of("rank0"), -1, -1, &err) != 0, "accepted rank 0");
    CHECK(strstr(err.msg, "rank 0") != NULL, "%s", err.msg);
    write_raw("empty", mem, 0);
    CHECK(ag_idx_read(&x, path_of("empty"), -1, -1, &err) != 0, "accepted empty");
    CHECK(strstr(err.msg, "too short") != NULL, "%s", err.msg);
    make_images(mem, 2, 2, 2, 0);
    write_raw("short-header", mem, 10);
    CHECK(ag_idx_read(&x, path_of("short-header"), -1, -1, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "shorter than its 16-byte header") != NULL, "%s", err.msg);
    CHECK(ag_idx_read(&x, path_of("does-not-exist"), -1, -1, &err) != 0, "missing file");
    CHECK(strstr(err.msg, "No such file") != NULL, "%s", err.msg);
}

TEST(truncated_and_count_mismatch_report_counts) {
    /* 10 label items declared, 9 present */
    size_t n = make_labels(mem, 10, -1);
    write_raw("train-labels-idx1-ubyte", mem, n - 1);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_idx_read(&x, path_of("train-labels-idx1-ubyte"), -1, 9, &err) != 0, "accepted");
    CHECK(strcmp(err.msg, "train-labels-idx1-ubyte: header says 10 items, file holds 9") == 0,
          "%s", err.msg);
    /* one item too many */
    make_labels(mem, 10, -1);
    mem[n] = 3;
    write_raw("long-labels", mem, n + 1);
    CHECK(ag_idx_read(&x, path_of("long-labels"), -1, 9, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "header says 10 items, file holds 11") != NULL, "%s", err.msg);
    /* images cut mid-item: byte counts */
    n = make_images(mem, 3, 4, 4, 0);
    write_raw("cut-idx3", mem, n - 5);
    CHECK(ag_idx_read(&x, path_of("cut-idx3"), 1, -1, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "header says 3 items of 16 bytes (48 bytes of data), file holds 43 "
                          "bytes") != NULL,
          "%s", err.msg);
    CHECK(x.data == NULL, "partial object");
}

TEST(label_range_is_checked) {
    size_t n = make_labels(mem, 20, 13);
    write_raw("labels-bad", mem, n);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_idx_read(&x, path_of("labels-bad"), -1, 9, &err) != 0, "accepted label 12");
    CHECK(strstr(err.msg, "label 12 at item 13 is out of range 0..9") != NULL, "%s", err.msg);
    /* also beyond the limit: the whole file is checked */
    CHECK(ag_idx_read(&x, path_of("labels-bad"), 5, 9, &err) != 0, "accepted past limit");
    CHECK(strstr(err.msg, "item 13") != NULL, "%s", err.msg);
    /* without a range it reads */
    CHECK(ag_idx_read(&x, path_of("labels-bad"), -1, -1, &err) == 0, "%s", err.msg);
    CHECK(x.data && x.data[13] == 12, "value");
    ag_idx_free(&x);
}

TEST(gzip_reads_like_raw_and_corrupt_gzip_fails) {
    size_t n = make_images(mem, 7, 5, 6, 0);
    write_gz("img.gz", mem, n);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    int rc = ag_idx_read(&x, path_of("img.gz"), -1, -1, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(x.size[0] == 7 && x.size[1] == 5 && x.size[2] == 6, "dims");
    CHECK(memcmp(x.data, mem + 16, 7 * 30) == 0, "bytes differ");
    ag_idx_free(&x);
    /* gzip of a short file: the count check still works */
    write_gz("short.gz", mem, n - 30);
    CHECK(ag_idx_read(&x, path_of("short.gz"), -1, -1, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "short.gz: header says 7 items, file holds 6") != NULL, "%s",
          err.msg);
    /* a truncated gzip stream */
    FILE *f = fopen(path_of("img.gz"), "rb");
    uint8_t gz[4096];
    size_t gn = f ? fread(gz, 1, sizeof gz, f) : 0;
    if (f) fclose(f);
    CHECK(gn > 40, "gz size %zu", gn);
    write_raw("trunc.gz", gz, gn / 2);
    CHECK(ag_idx_read(&x, path_of("trunc.gz"), -1, -1, &err) != 0, "accepted truncated gz");
    CHECK(strstr(err.msg, "trunc.gz:") != NULL, "%s", err.msg);
    CHECK(x.data == NULL, "partial object");
    /* a corrupted byte inside the deflate data (CRC or data error) */
    gz[gn / 2] ^= 0xff;
    gz[gn / 2 + 1] ^= 0x55;
    write_raw("flip.gz", gz, gn);
    CHECK(ag_idx_read(&x, path_of("flip.gz"), -1, -1, &err) != 0, "accepted corrupt gz");
    CHECK(strstr(err.msg, "flip.gz:") != NULL, "%s", err.msg);
}

/* bytes of a file, up to cap; returns the count */
static size_t slurp(const char *name, uint8_t *buf, size_t cap) {
    FILE *f = fopen(path_of(name), "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;
    if (f) fclose(f);
    return n;
}

TEST(gzip_limit_inflates_only_the_kept_items) {
    /* 60 items of 4x4; the gzip trailer's CRC is damaged, which only a read to the end
     * of the stream can see */
    size_t n = make_images(mem, 60, 4, 4, 0);
    write_gz("crc.gz", mem, n);
    static uint8_t gz[8192];
    size_t gn = slurp("crc.gz", gz, sizeof gz);
    CHECK(gn > 20, "gz size %zu", gn);
    gz[gn - 7] ^= 0x5a;
    write_raw("crc.gz", gz, gn);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    int rc = ag_idx_read(&x, path_of("crc.gz"), 3, -1, &err);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(x.size[0] == 3 && x.items == 60 && x.numel == 48, "kept %lld", (long long)x.numel);
    if (rc == 0) CHECK(memcmp(x.data, mem + 16, 48) == 0, "bytes differ");
    ag_idx_free(&x);
    CHECK(ag_idx_read(&x, path_of("crc.gz"), -1, -1, &err) != 0, "accepted a bad CRC");
    CHECK(strstr(err.msg, "crc.gz: corrupt or truncated gzip data") != NULL, "%s", err.msg);
    /* a header that claims more than the file can inflate to: refused before inflating */
    n = make_images(mem, 10, 4, 4, 0);
    mem[4] = 1, mem[5] = 0, mem[6] = 0, mem[7] = 0; /* 2^24 items: 256 MiB */
    write_gz("claims-more.gz", mem, n);
    CHECK(ag_idx_read(&x, path_of("claims-more.gz"), 3, -1, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "claims-more.gz: header says 268435456 bytes of data, more than a "
                          "gzip file of") != NULL,
          "%s", err.msg);
}

TEST(gzip_trailing_junk_is_an_error_and_members_concatenate) {
    size_t n = make_images(mem, 6, 3, 3, 0);
    write_gz("a.gz", mem, 40);
    write_gz("b.gz", mem + 40, n - 40);
    static uint8_t gz[8192];
    size_t na = slurp("a.gz", gz, sizeof gz);
    size_t nb = slurp("b.gz", gz + na, sizeof gz - na);
    write_raw("two-members.gz", gz, na + nb);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    int rc = ag_idx_read(&x, path_of("two-members.gz"), -1, -1, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc == 0) CHECK(x.items == 6 && memcmp(x.data, mem + 16, 54) == 0, "bytes differ");
    ag_idx_free(&x);
    write_gz("junk.gz", mem, n);
    na = slurp("junk.gz", gz, sizeof gz);
    memcpy(gz + na, "JUNK!", 5);
    write_raw("junk.gz", gz, na + 5);
    CHECK(ag_idx_read(&x, path_of("junk.gz"), -1, -1, &err) != 0, "accepted trailing junk");
    CHECK(strstr(err.msg, "junk.gz: 5 bytes of trailing data after the gzip stream") != NULL,
          "%s", err.msg);
    write_raw("junk1.gz", gz, na + 1);
    CHECK(ag_idx_read(&x, path_of("junk1.gz"), -1, -1, &err) != 0, "accepted a junk byte");
    CHECK(strstr(err.msg, "1 bytes of trailing data") != NULL, "%s", err.msg);
    /* more items than the header says, inside the gzip stream */
    write_gz("long.gz", mem, n + 9);
    CHECK(ag_idx_read(&x, path_of("long.gz"), -1, -1, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "the data goes on past them") != NULL, "%s", err.msg);
}

TEST(sizes_are_bounded_even_next_to_a_zero) {
    const uint8_t hdr[16] = {0,    0,    8,    3,    0,    0,    0,    0,
                             0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    write_raw("zero-items", hdr, sizeof hdr);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_idx_read(&x, path_of("zero-items"), -1, -1, &err) != 0, "accepted");
    CHECK(strstr(err.msg, "zero-items: header sizes multiply to more than the limit of "
                          "1099511627776 bytes") != NULL,
          "%s", err.msg);
    CHECK(ag_idx_parse(&x, hdr, sizeof hdr, "mem", -1, -1, &err) != 0, "parse accepted");
    /* a 0 with modest sizes is a valid empty file */
    const uint8_t ok[16] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28};
    write_raw("empty-idx3", ok, sizeof ok);
    CHECK(ag_idx_read(&x, path_of("empty-idx3"), -1, -1, &err) == 0, "%s", err.msg);
    CHECK(x.items == 0 && x.numel == 0 && x.size[1] == 28, "empty");
    ag_idx_free(&x);
}

TEST(parse_from_memory_never_reads_past_buffer) {
    size_t n = make_images(mem, 3, 2, 2, 0);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    for (size_t len = 0; len < n; len++) {
        /* copy into an exact-size heap buffer so ASan sees any overrun */
        uint8_t *b = malloc(len ? len : 1);
        memcpy(b, mem, len);
        CHECK(ag_idx_parse(&x, b, len, "mem", -1, -1, &err) != 0, "accepted %zu bytes", len);
        free(b);
    }
    CHECK(ag_idx_parse(&x, mem, n, "mem", 2, -1, &err) == 0, "%s", err.msg);
    CHECK(x.size[0] == 2 && x.numel == 8 && x.data[7] == mem[16 + 7], "parse");
    ag_idx_free(&x);
}

TEST(to_float_pads_before_normalizing) {
    size_t n = make_images(mem, 2, 3, 4, 0);
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_idx_parse(&x, mem, n, "mem", -1, -1, &err) == 0, "%s", err.msg);
    if (!x.data) return;
    float y[2 * 7 * 8];
    const float mean = 0.1307f, std = 0.3081f;
    ag_idx_to_float(y, &x, 0, 2, 2, 255.0f, mean, std);
    for (int i = 0; i < 2; i++)
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 8; c++) {
                int inside = r >= 2 && r < 5 && c >= 2 && c < 6;
                double raw = inside ? (i * 7 + (r - 2) * 3 + (c - 2)) % 256 : 0;
                double want = (raw / 255.0 - mean) / std;
                CHECK_CLOSE(y[(i * 7 + r) * 8 + c], want, 1e-6);
            }
    /* the raw values with no padding, from item 1 */
    float z[12];
    ag_idx_to_float(z, &x, 1, 1, 0, 1.0f, 0.0f, 1.0f);
    for (int k = 0; k < 12; k++) CHECK(z[k] == (float)mem[16 + 12 + k], "raw %d", k);
    ag_idx_free(&x);
}

TEST(real_mnist_labels_when_present) {
    const char *d = getenv("AGOP_DATA");
    char p[600];
    snprintf(p, sizeof p, "%s/mnist/t10k-labels-idx1-ubyte", d ? d : "data");
    if (access(p, R_OK) != 0) {
        fprintf(stderr, "  (skipped: %s missing; run make data)\n", p);
        return;
    }
    AgIdx x;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_idx_read(&x, p, -1, 9, &err) == 0, "%s", err.msg);
    CHECK(x.dim == 1 && x.size[0] == 10000, "t10k labels %lld", (long long)x.size[0]);
    CHECK(x.data && x.data[0] == 7 && x.data[1] == 2 && x.data[2] == 1, "first labels");
    ag_idx_free(&x);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/agop-test-idx-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(valid_raw_file_reads_header_and_bytes);
    RUN(limit_keeps_first_items_but_checks_whole_file);
    RUN(bad_magic_names_file);
    RUN(truncated_and_count_mismatch_report_counts);
    RUN(label_range_is_checked);
    RUN(gzip_reads_like_raw_and_corrupt_gzip_fails);
    RUN(gzip_limit_inflates_only_the_kept_items);
    RUN(gzip_trailing_junk_is_an_error_and_members_concatenate);
    RUN(sizes_are_bounded_even_next_to_a_zero);
    RUN(parse_from_memory_never_reads_past_buffer);
    RUN(to_float_pads_before_normalizing);
    RUN(real_mnist_labels_when_present);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
    return check_report("idx");
}
