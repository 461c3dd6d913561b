/* png.c - PNG files for the canvas, through libpng.
 *
 * libpng reports errors by calling an error function that must not return; ours
 * records the message in a context that lives on the caller's stack and
 * longjmps back to the setjmp in the same function, so there is no global state
 * and nothing is printed. */
#include "canvas.h"
#include "io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PNG_READ_MAX 65535 /* pixels a side */
/* Pixels a file of n bytes can hold: deflate expands at most 1032 times, and a 1-bit
 * image packs 8 pixels in a byte. The header alone never decides a large allocation. */
#define PNG_PIXELS_PER_BYTE (8 * 1032)

typedef struct PngCtx {
    jmp_buf jmp;
    char msg[200];
} PngCtx;

static void png_error_fn(png_structp png, png_const_charp msg) {
    PngCtx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown libpng error");
    longjmp(ctx->jmp, 1);
}

static void png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png, (void)msg; /* warnings (e.g. a harmless bad chunk) are not our business */
}

/* The encoded PNG, grown as libpng writes it. */
typedef struct PngBuf {
    uint8_t *p;
    size_t n, cap;
} PngBuf;

static void buf_write_fn(png_structp png, png_bytep data, png_size_t len) {
    PngBuf *b = png_get_io_ptr(png);
    if (len > SIZE_MAX / 2 - b->n) png_error(png, "image too large");
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + len) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) png_error(png, "out of memory");
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
}

static void buf_flush_fn(png_structp png) {
    (void)png;
}

/* Encodes in memory, then writes the file with ag_write_atomic: a failed save leaves
 * the previous file as it was. */
int ag_png_write(const AgCanvas *c, const char *path, AgError *err) {
    if (!c->px || c->w < 1 || c->h < 1)
        return ag_fail(err, "png: cannot write an empty %dx%d image to '%s'", c->w, c->h, path);
    PngCtx ctx;
    ctx.msg[0] = 0;
    PngBuf buf = {NULL, 0, 0};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_fn, png_warning_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        return ag_fail(err, "png: out of memory writing '%s'", path);
    }
    if (setjmp(ctx.jmp)) {
        /* png, info and &buf are unchanged since setjmp; buf.p is read through memory */
        png_destroy_write_struct(&png, &info);
        free(buf.p);
        return ag_fail(err, "png: cannot write '%s': %s", path, ctx.msg);
    }
    png_set_write_fn(png, &buf, buf_write_fn, buf_flush_fn);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (int j = 0; j < c->h; j++) png_write_row(png, c->px + (size_t)j * (size_t)c->w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    AgWritePart part = {.bytes = buf.p, .nbytes = (int64_t)buf.n};
    AgError werr = AG_ERROR_INIT;
    int rc = ag_write_atomic(path, &part, 1, &werr);
    free(buf.p);
    return rc ? ag_fail(err, "png: %s", werr.msg) : 0;
}

/* Opens path, checks the signature and sets up reading with the transforms that
 * make every image 8-bit gray, gray+alpha, RGB or RGBA. Fills *w, *h,
 * *channels; on error returns -1 with nothing left open. The caller's ctx must
 * be the jump target. */
typedef struct PngReader {
    FILE *f;
    png_structp png;
    png_infop info;
} PngReader;

static void reader_close(PngReader *r) {
    if (r->png) png_destroy_read_struct(&r->png, r->info ? &r->info : NULL, NULL);
    if (r->f) fclose(r->f);
    r->png = NULL, r->info = NULL, r->f = NULL;
}

static int reader_open(PngReader *r, PngCtx *ctx, const char *path, AgError *err) {
    r->f = NULL, r->png = NULL, r->info = NULL;
    r->f = fopen(path, "rb");
    if (!r->f) return ag_fail(err, "png: cannot open '%s': %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, r->f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        reader_close(r);
        return ag_fail(err, "png: '%s' is not a PNG file", path);
    }
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_error_fn, png_warning_fn);
    r->info = r->png ? png_create_info_struct(r->png) : NULL;
    if (!r->png || !r->info) {
        reader_close(r);
        return ag_fail(err, "png: out of memory reading '%s'", path);
    }
    return 0;
}

/* Reads the header and sets the transforms; runs under the caller's setjmp. */
static void reader_header(PngReader *r, int *w, int *h, int *channels) {
    png_init_io(r->png, r->f);
    png_set_sig_bytes(r->png, 8);
    png_set_user_limits(r->png, PNG_READ_MAX, PNG_READ_MAX);
    png_read_info(r->png, r->info);
    {
        struct stat st;
        uint64_t iw = png_get_image_width(r->png, r->info);
        uint64_t ih = png_get_image_height(r->png, r->info);
        uint64_t fsize = fstat(fileno(r->f), &st) == 0 ? (uint64_t)st.st_size : 0;
        uint64_t cap = fsize * PNG_PIXELS_PER_BYTE;
        if (cap > AG_PNG_MAX_PIXELS) cap = AG_PNG_MAX_PIXELS;
        if (iw * ih > cap) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "the header says %llux%llu pixels, over the limit of %llu for a file of "
                     "%llu bytes (at most %d pixels a byte, %lld in all)",
                     (unsigned long long)iw, (unsigned long long)ih, (unsigned long long)cap,
                     (unsigned long long)fsize, PNG_PIXELS_PER_BYTE,
                     (long long)AG_PNG_MAX_PIXELS);
            png_error(r->png, msg);
        }
    }
    int ct = png_get_color_type(r->png, r->info), depth = png_get_bit_depth(r->png, r->info);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(r->png);
    if (png_get_valid(r->png, r->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(r->png);
    if (depth == 16) png_set_strip_16(r->png);
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    *w = (int)png_get_image_width(r->png, r->info);
    *h = (int)png_get_image_height(r->png, r->info);
    *channels = png_get_channels(r->png, r->info);
}

int ag_png_info(const char *path, int *w, int *h, int *channels, AgError *err) {
    PngCtx ctx;
    ctx.msg[0] = 0;
    PngReader r;
    if (reader_open(&r, &ctx, path, err)) return -1;
    if (setjmp(ctx.jmp)) {
        reader_close(&r);
        return ag_fail(err, "png: cannot read '%s': %s", path, ctx.msg);
    }
    reader_header(&r, w, h, channels);
    reader_close(&r);
    return 0;
}

int ag_png_read(const char *path, uint8_t *px, size_t cap, int *w, int *h, int *channels,
                AgError *err) {
    PngCtx ctx;
    ctx.msg[0] = 0;
    PngReader r;
    if (reader_open(&r, &ctx, path, err)) return -1;
    png_bytep *volatile rows = NULL;
    if (setjmp(ctx.jmp)) {
        free(rows);
        reader_close(&r);
        return ag_fail(err, "png: cannot read '%s': %s", path, ctx.msg);
    }
    reader_header(&r, w, h, channels);
    size_t rowbytes = (size_t)*w * (size_t)*channels;
    if (png_get_rowbytes(r.png, r.info) != rowbytes || rowbytes * (size_t)*h > cap) {
        reader_close(&r);
        return ag_fail(err, "png: '%s' is %dx%dx%d, larger than the %zu bytes given", path, *w,
                       *h, *channels, cap);
    }
    rows = malloc((size_t)*h * sizeof *rows);
    if (!rows) {
        reader_close(&r);
        return ag_fail(err, "png: out of memory reading '%s'", path);
    }
    for (int j = 0; j < *h; j++) rows[j] = px + (size_t)j * rowbytes;
    png_read_image(r.png, rows);
    png_read_end(r.png, NULL);
    free(rows);
    reader_close(&r);
    return 0;
}
