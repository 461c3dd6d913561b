/* canvas.c - drawing on an RGB canvas: rectangles, anti-aliased lines,
 * polygons, markers, bitmap text and matrix blits (see canvas.h for the
 * coordinate convention). */
#include "canvas.h"

#include "font.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ag_canvas_check_size(int64_t w, int64_t h, AgError *err) {
    if (w < 1 || h < 1 || w > AG_CANVAS_MAX || h > AG_CANVAS_MAX)
        return ag_fail(err, "canvas: size %lldx%lld is out of range (each side 1..%d pixels)",
                       (long long)w, (long long)h, AG_CANVAS_MAX);
    return 0;
}

size_t ag_canvas_nbytes(int w, int h) {
    return (size_t)w * (size_t)h * 3;
}

void ag_canvas_init(AgCanvas *c, int w, int h, uint8_t *px, AgColor bg) {
    c->w = w;
    c->h = h;
    c->px = px;
    ag_canvas_unclip(c);
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++) {
        px[3 * i] = bg.r;
        px[3 * i + 1] = bg.g;
        px[3 * i + 2] = bg.b;
    }
}

void ag_canvas_clip(AgCanvas *c, int x, int y, int w, int h) {
    int64_t x1 = (int64_t)x + (w > 0 ? w : 0), y1 = (int64_t)y + (h > 0 ? h : 0);
    c->cx0 = x < 0 ? 0 : x > c->w ? c->w : x;
    c->cy0 = y < 0 ? 0 : y > c->h ? c->h : y;
    c->cx1 = x1 > c->w ? c->w : x1 < c->cx0 ? c->cx0 : (int)x1;
    c->cy1 = y1 > c->h ? c->h : y1 < c->cy0 ? c->cy0 : (int)y1;
}

void ag_canvas_unclip(AgCanvas *c) {
    c->cx0 = c->cy0 = 0;
    c->cx1 = c->w;
    c->cy1 = c->h;
}

void ag_canvas_get(const AgCanvas *c, int x, int y, uint8_t *rgb) {
    const uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    rgb[0] = p[0], rgb[1] = p[1], rgb[2] = p[2];
}

/* ---- blending
 * -------------------------------------------------------------------- */

static inline uint8_t mix(uint8_t d, uint8_t s, double a) {
    return (uint8_t)lrint(d + (s - d) * a);
}

/* Blends col over pixel (x, y), which must be inside, with opacity cov * col.a
 * / 255. */
static inline void blend(AgCanvas *c, int x, int y, AgColor col, double cov) {
    double a = cov * (col.a / 255.0);
    if (a <= 0) return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    if (a >= 1) {
        p[0] = col.r, p[1] = col.g, p[2] = col.b;
        return;
    }
    p[0] = mix(p[0], col.r, a);
    p[1] = mix(p[1], col.g, a);
    p[2] = mix(p[2], col.b, a);
}

static inline double clampd(double v, double lo, double hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Pixel index range [*i0, *i1) of the pixels that [a, b) touches, clipped to [lo, hi). */
static void pixel_span(double a, double b, int lo, int hi, int *i0, int *i1) {
    double fa = floor(clampd(a, lo - 1, hi + 1)), fb = ceil(clampd(b, lo - 1, hi + 1));
    *i0 = fa < lo ? lo : (int)fa;
    *i1 = fb > hi ? hi : (int)fb;
}
#define XSPAN(c, a, b, i0, i1) pixel_span(a, b, (c)->cx0, (c)->cx1, i0, i1)
#define YSPAN(c, a, b, j0, j1) pixel_span(a, b, (c)->cy0, (c)->cy1, j0, j1)

/* Length of [i, i + 1) ∩ [a, b). */
static inline double overlap(int i, double a, double b) {
    double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
    return hi > lo ? hi - lo : 0;
}

/* ---- rectangles
 * ------------------------------------------------------------------ */

void ag_canvas_rect(AgCanvas *c, double x, double y, double w, double h, AgColor col) {
    if (!(w > 0 && h > 0) || !isfinite(x) || !isfinite(y) || !isfinite(w) || !isfinite(h))
        return;
    int i0, i1, j0, j1;
    XSPAN(c, x, x + w, &i0, &i1);
    YSPAN(c, y, y + h, &j0, &j1);
    for (int j = j0; j < j1; j++) {
        double cy = overlap(j, y, y + h);
        for (int i = i0; i < i1; i++) blend(c, i, j, col, cy * overlap(i, x, x + w));
    }
}

void ag_canvas_rect_outline(AgCanvas *c, double x, double y, double w, double h, double lw,
                            AgColor col) {
    if (!(lw > 0) || !(w >= 0 && h >= 0)) return;
    double hl = lw / 2;
    ag_canvas_rect(c, x - hl, y - hl, w + lw, lw, col);     /* top, with the corners */
    ag_canvas_rect(c, x - hl, y + h - hl, w + lw, lw, col); /* bottom, with the corners */
    ag_canvas_rect(c, x - hl, y + hl, lw, h - lw, col);     /* left */
    ag_canvas_rect(c, x + w - hl, y + hl, lw, h - lw, col); /* right */
}

/* ---- lines
 * ----------------------------------------------------------------------- */

/* Distance from (px, py) to the segment (ax, ay)-(bx, by). */
static inline double seg_dist(double ax, double ay, double bx, double by, double px,
                              double py) {
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
    t = clampd(t, 0, 1);
    double ex = ax + t * dx - px, ey = ay + t * dy - py;
    return sqrt(ex * ex + ey * ey);
}

/* Strokes the segments between consecutive finite points of x, y (n) with
 * half-width r
 * (>= 0.5); each pixel's coverage is clamp(r + 0.5 - distance, 0, 1), the
 * maximum over the segments, so every pixel is blended once with opacity
 * coverage * fade. */
static int stroke(AgCanvas *c, const double *x, const double *y, int64_t n, double r,
                  double fade, AgColor col, AgError *err) {
    double minx = INFINITY, maxx = -INFINITY, miny = INFINITY, maxy = -INFINITY;
    int64_t nseg = 0;
    for (int64_t k = 0; k + 1 < n; k++) {
        if (isnan(x[k]) || isnan(y[k]) || isnan(x[k + 1]) || isnan(y[k + 1])) continue;
        nseg++;
        minx = fmin(minx, fmin(x[k], x[k + 1]));
        maxx = fmax(maxx, fmax(x[k], x[k + 1]));
        miny = fmin(miny, fmin(y[k], y[k + 1]));
        maxy = fmax(maxy, fmax(y[k], y[k + 1]));
    }
    if (nseg == 0) return 0;
    double pad = r + 1;
    int bx0, bx1, by0, by1;
    XSPAN(c, minx - pad, maxx + pad, &bx0, &bx1);
    YSPAN(c, miny - pad, maxy + pad, &by0, &by1);
    if (bx0 >= bx1 || by0 >= by1) return 0;
    float *cov = calloc((size_t)(bx1 - bx0), sizeof *cov);
    if (!cov) return ag_fail(err, "canvas: out of memory for a %d pixel wide line", bx1 - bx0);
    for (int j = by0; j < by1; j++) {
        double yc = j + 0.5;
        int lo = bx1, hi = bx0;
        for (int64_t k = 0; k + 1 < n; k++) {
            double ax = x[k], ay = y[k], bx = x[k + 1], by = y[k + 1];
            if (isnan(ax) || isnan(ay) || isnan(bx) || isnan(by)) continue;
            if (yc < fmin(ay, by) - pad || yc > fmax(ay, by) + pad) continue;
            /* the part of the segment within pad rows of yc, widened by pad */
            double ta = 0, tb = 1, dy = by - ay;
            if (dy != 0) {
                double t1 = (yc - pad - ay) / dy, t2 = (yc + pad - ay) / dy;
                if (t1 > t2) {
                    double t = t1;
                    t1 = t2, t2 = t;
                }
                ta = fmax(ta, t1), tb = fmin(tb, t2);
            }
            double xa = ax + ta * (bx - ax), xb = ax + tb * (bx - ax);
            int i0, i1;
            XSPAN(c, fmin(xa, xb) - pad, fmax(xa, xb) + pad, &i0, &i1);
            if (i0 < bx0) i0 = bx0;
            if (i1 > bx1) i1 = bx1;
            for (int i = i0; i < i1; i++) {
                double cv = r + 0.5 - seg_dist(ax, ay, bx, by, i + 0.5, yc);
                if (cv <= 0) continue;
                if (cv > 1) cv = 1;
                if (cv > cov[i - bx0]) cov[i - bx0] = (float)cv;
                if (i < lo) lo = i;
                if (i + 1 > hi) hi = i + 1;
            }
        }
        for (int i = lo; i < hi; i++) {
            if (cov[i - bx0] > 0) blend(c, i, j, col, cov[i - bx0] * fade);
            cov[i - bx0] = 0;
        }
    }
    free(cov);
    return 0;
}

static int check_width(double width, AgError *err) {
    if (!(width > 0) || !isfinite(width))
        return ag_fail(err, "canvas: line width must be a positive finite number, got %g",
                       width);
    return 0;
}

int ag_canvas_polyline(AgCanvas *c, const double *x, const double *y, int64_t n, double width,
                       AgColor col, AgError *err) {
    if (check_width(width, err)) return -1;
    double r = width < 1 ? 0.5 : width / 2, fade = width < 1 ? width : 1;
    return stroke(c, x, y, n, r, fade, col, err);
}

int ag_canvas_line(AgCanvas *c, double x0, double y0, double x1, double y1, double width,
                   AgColor col, AgError *err) {
    double x[2] = {x0, x1}, y[2] = {y0, y1};
    return ag_canvas_polyline(c, x, y, 2, width, col, err);
}

/* ---- polygons
 * -------------------------------------------------------------------- */

typedef struct Crossing {
    double x;
    int dir;
} Crossing;

static int cmp_crossing(const void *a, const void *b) {
    double xa = ((const Crossing *)a)->x, xb = ((const Crossing *)b)->x;
    return xa < xb ? -1 : xa > xb;
}

/* cov[i - bx0] += wgt * |[i, i + 1) ∩ [xa, xb)| for the pixels in [bx0, bx1).
 */
static void add_span(float *cov, int bx0, int bx1, double xa, double xb, double wgt) {
    xa = clampd(xa, bx0, bx1), xb = clampd(xb, bx0, bx1);
    if (xb <= xa) return;
    int ia = (int)floor(xa), ib = (int)floor(xb);
    if (ia == ib) {
        cov[ia - bx0] += (float)((xb - xa) * wgt);
        return;
    }
    cov[ia - bx0] += (float)((ia + 1 - xa) * wgt);
    for (int i = ia + 1; i < ib; i++) cov[i - bx0] += (float)wgt;
    if (ib < bx1) cov[ib - bx0] += (float)((xb - ib) * wgt);
}

#define POLY_SUB 5 /* sub-scanlines per pixel row */

int ag_canvas_polygon(AgCanvas *c, const double *x, const double *y, int64_t n, AgColor col,
                      AgError *err) {
    if (n < 3)
        return ag_fail(err, "canvas: a polygon needs at least 3 points, got %lld",
                       (long long)n);
    double minx = INFINITY, maxx = -INFINITY, miny = INFINITY, maxy = -INFINITY;
    for (int64_t k = 0; k < n; k++) {
        if (!isfinite(x[k]) || !isfinite(y[k]))
            return ag_fail(err, "canvas: polygon point %lld is not finite", (long long)k + 1);
        minx = fmin(minx, x[k]), maxx = fmax(maxx, x[k]);
        miny = fmin(miny, y[k]), maxy = fmax(maxy, y[k]);
    }
    int bx0, bx1, by0, by1;
    XSPAN(c, minx, maxx, &bx0, &bx1);
    YSPAN(c, miny, maxy, &by0, &by1);
    if (bx0 >= bx1 || by0 >= by1) return 0;
    float *cov = calloc((size_t)(bx1 - bx0), sizeof *cov);
    Crossing *xs = malloc((size_t)n * sizeof *xs);
    if (!cov || !xs) {
        free(cov);
        free(xs);
        return ag_fail(err, "canvas: out of memory for a polygon of %lld points", (long long)n);
    }
    for (int j = by0; j < by1; j++) {
        for (int s = 0; s < POLY_SUB; s++) {
            double ys = j + (s + 0.5) / POLY_SUB;
            int64_t m = 0;
            for (int64_t k = 0; k < n; k++) {
                int64_t k1 = k + 1 == n ? 0 : k + 1;
                double y0 = y[k], y1 = y[k1];
                if ((y0 <= ys && ys < y1) || (y1 <= ys && ys < y0)) {
                    xs[m].x = x[k] + (ys - y0) * (x[k1] - x[k]) / (y1 - y0);
                    xs[m].dir = y1 > y0 ? 1 : -1;
                    m++;
                }
            }
            if (m < 2) continue;
            if (m == 2) {
                if (xs[0].x > xs[1].x) {
                    Crossing t = xs[0];
                    xs[0] = xs[1], xs[1] = t;
                }
            } else {
                qsort(xs, (size_t)m, sizeof *xs, cmp_crossing);
            }
            int wind = 0;
            double start = 0;
            for (int64_t q = 0; q < m; q++) {
                int prev = wind;
                wind += xs[q].dir;
                if (prev == 0 && wind != 0) start = xs[q].x;
                if (prev != 0 && wind == 0)
                    add_span(cov, bx0, bx1, start, xs[q].x, 1.0 / POLY_SUB);
            }
        }
        for (int i = bx0; i < bx1; i++) {
            if (cov[i - bx0] > 0) blend(c, i, j, col, fmin(cov[i - bx0], 1.0));
            cov[i - bx0] = 0;
        }
    }
    free(cov);
    free(xs);
    return 0;
}

/* ---- markers
 * --------------------------------------------------------------------- */

int ag_marker_find(const char *name) {
    static const struct {
        const char *name;
        AgMarker m;
    } names[] = {
        {"circle", AG_MARKER_CIRCLE},     {"o", AG_MARKER_CIRCLE},
        {"square", AG_MARKER_SQUARE},     {"s", AG_MARKER_SQUARE},
        {"cross", AG_MARKER_CROSS},       {"x", AG_MARKER_CROSS},
        {"plus", AG_MARKER_PLUS},         {"+", AG_MARKER_PLUS},
        {"diamond", AG_MARKER_DIAMOND},   {"d", AG_MARKER_DIAMOND},
        {"triangle", AG_MARKER_TRIANGLE}, {"^", AG_MARKER_TRIANGLE},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(names[i].name, name) == 0) return (int)names[i].m;
    return -1;
}

int ag_canvas_marker(AgCanvas *c, double x, double y, AgMarker m, double size, AgColor col,
                     AgError *err) {
    if (!(size > 0) || !isfinite(size) || !isfinite(x) || !isfinite(y))
        return ag_fail(err, "canvas: marker needs a finite position and a positive size");
    double h = size / 2, lw = fmax(1, size / 5);
    switch (m) {
    case AG_MARKER_CIRCLE: {
        int i0, i1, j0, j1;
        XSPAN(c, x - h - 1, x + h + 1, &i0, &i1);
        YSPAN(c, y - h - 1, y + h + 1, &j0, &j1);
        for (int j = j0; j < j1; j++)
            for (int i = i0; i < i1; i++) {
                double d = hypot(i + 0.5 - x, j + 0.5 - y);
                blend(c, i, j, col, clampd(h + 0.5 - d, 0, 1));
            }
        return 0;
    }
    case AG_MARKER_SQUARE:
        ag_canvas_rect(c, x - h, y - h, size, size, col);
        return 0;
    case AG_MARKER_CROSS: {
        double px[5] = {x - h, x + h, NAN, x - h, x + h};
        double py[5] = {y - h, y + h, NAN, y + h, y - h};
        return stroke(c, px, py, 5, lw / 2 < 0.5 ? 0.5 : lw / 2, 1, col, err);
    }
    case AG_MARKER_PLUS: {
        double px[5] = {x - h, x + h, NAN, x, x};
        double py[5] = {y, y, NAN, y - h, y + h};
        return stroke(c, px, py, 5, lw / 2 < 0.5 ? 0.5 : lw / 2, 1, col, err);
    }
    case AG_MARKER_DIAMOND: {
        double px[4] = {x, x + h, x, x - h}, py[4] = {y - h, y, y + h, y};
        return ag_canvas_polygon(c, px, py, 4, col, err);
    }
    case AG_MARKER_TRIANGLE: {
        double px[3] = {x, x + h, x - h}, py[3] = {y - h, y + h, y + h};
        return ag_canvas_polygon(c, px, py, 3, col, err);
    }
    }
    return ag_fail(err, "canvas: unknown marker %d", (int)m);
}

/* ---- text
 * ------------------------------------------------------------------------ */

#define TEXT_MAXSCALE 16

/* EPX / Scale2x: dst (2h, 2w) from src (h, w), both 0/1 bytes with row strides.
 */
static void epx2(uint8_t *dst, int dstride, const uint8_t *src, int sstride, int w, int h) {
    for (int v = 0; v < h; v++)
        for (int u = 0; u < w; u++) {
            uint8_t p = src[v * sstride + u];
            uint8_t a = v > 0 ? src[(v - 1) * sstride + u] : 0;     /* above */
            uint8_t b = u + 1 < w ? src[v * sstride + u + 1] : 0;   /* right */
            uint8_t cl = u > 0 ? src[v * sstride + u - 1] : 0;      /* left */
            uint8_t d = v + 1 < h ? src[(v + 1) * sstride + u] : 0; /* below */
            uint8_t *o = dst + 2 * v * dstride + 2 * u;
            o[0] = (cl == a && cl != d && a != b) ? a : p;
            o[1] = (a == b && a != cl && b != d) ? b : p;
            o[dstride] = (d == cl && d != b && cl != a) ? cl : p;
            o[dstride + 1] = (b == d && b != a && d != cl) ? d : p;
        }
}

void ag_canvas_text(AgCanvas *c, int x, int y, const char *s, const AgTextStyle *st) {
    int scale = st->scale < 1 ? 1 : st->scale > TEXT_MAXSCALE ? TEXT_MAXSCALE : st->scale;
    int tw, th;
    ag_text_size(s, scale, &tw, &th);
    int gw = AG_FONT_W * scale, gh = AG_FONT_H * scale;
    int smooth = st->smooth && (scale == 2 || scale == 4);
    static const int stride = AG_FONT_W * TEXT_MAXSCALE;
    uint8_t mask[AG_FONT_H * TEXT_MAXSCALE][AG_FONT_W * TEXT_MAXSCALE];
    uint8_t tmp[AG_FONT_H * 2][AG_FONT_W * 2];
    int64_t line = 0, col = 0;
    while (*s) {
        uint32_t cp = ag_utf8_next(&s);
        if (cp == '\n') {
            line++;
            col = 0;
            continue;
        }
        int64_t u0 = col++ * gw, v0 = line * gh;
        /* the glyph's box on the canvas, to skip glyphs that are off it */
        int64_t gx = st->rotate ? x + v0 : x + u0,
                gy = st->rotate ? y + (tw - u0 - gw) : y + v0;
        int64_t bw = st->rotate ? gh : gw, bh = st->rotate ? gw : gh;
        if (gx >= c->cx1 || gy >= c->cy1 || gx + bw <= c->cx0 || gy + bh <= c->cy0) continue;
        const uint8_t *g = ag_font_glyph(cp, st->bold);
        uint8_t one[AG_FONT_H][AG_FONT_W];
        for (int v = 0; v < AG_FONT_H; v++)
            for (int u = 0; u < AG_FONT_W; u++) one[v][u] = (g[v] >> (7 - u)) & 1;
        if (smooth) {
            if (scale == 2) {
                epx2(&mask[0][0], stride, &one[0][0], AG_FONT_W, AG_FONT_W, AG_FONT_H);
            } else {
                epx2(&tmp[0][0], AG_FONT_W * 2, &one[0][0], AG_FONT_W, AG_FONT_W, AG_FONT_H);
                epx2(&mask[0][0], stride, &tmp[0][0], AG_FONT_W * 2, AG_FONT_W * 2,
                     AG_FONT_H * 2);
            }
        } else {
            for (int v = 0; v < gh; v++)
                for (int u = 0; u < gw; u++) mask[v][u] = one[v / scale][u / scale];
        }
        for (int v = 0; v < gh; v++)
            for (int u = 0; u < gw; u++) {
                if (!mask[v][u]) continue;
                int64_t px = st->rotate ? x + v0 + v : x + u0 + u;
                int64_t py = st->rotate ? y + (tw - 1 - (u0 + u)) : y + v0 + v;
                if (px < c->cx0 || py < c->cy0 || px >= c->cx1 || py >= c->cy1) continue;
                blend(c, (int)px, (int)py, st->color, 1);
            }
    }
}

/* ---- matrices
 * -------------------------------------------------------------------- */

int64_t ag_finite_range(const float *m, int64_t n, double *lo, double *hi, int64_t *nnan,
                        int64_t *ninf) {
    double mn = INFINITY, mx = -INFINITY;
    int64_t nf = 0, nn = 0, ni = 0;
    for (int64_t k = 0; k < n; k++) {
        float v = m[k];
        if (isnan(v)) {
            nn++;
        } else if (isinf(v)) {
            ni++;
        } else {
            nf++;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
    }
    *lo = nf ? mn : 0;
    *hi = nf ? mx : 0;
    if (nnan) *nnan = nn;
    if (ninf) *ninf = ni;
    return nf;
}

/* The value that pixel column/row (pi, pj) shows of plane m (rows, cols), where
 * the pixel grid maps onto the matrix with sx = cols / w source columns per
 * pixel (and sy). */
static double sample(const float *m, int64_t rows, int64_t cols, double fx0, double fx1,
                     double fy0, double fy1, AgInterp interp) {
    if (interp == AG_INTERP_NEAREST) {
        int64_t i = (int64_t)floor((fx0 + fx1) / 2), j = (int64_t)floor((fy0 + fy1) / 2);
        i = i < 0 ? 0 : i >= cols ? cols - 1 : i;
        j = j < 0 ? 0 : j >= rows ? rows - 1 : j;
        return m[j * cols + i];
    }
    if (interp == AG_INTERP_BILINEAR) {
        double fx = clampd((fx0 + fx1) / 2 - 0.5, 0, (double)(cols - 1));
        double fy = clampd((fy0 + fy1) / 2 - 0.5, 0, (double)(rows - 1));
        int64_t i0 = (int64_t)fx, j0 = (int64_t)fy;
        int64_t i1 = i0 + 1 < cols ? i0 + 1 : i0, j1 = j0 + 1 < rows ? j0 + 1 : j0;
        double wx = fx - (double)i0, wy = fy - (double)j0;
        int64_t ni = wx < 0.5 ? i0 : i1, nj = wy < 0.5 ? j0 : j1;
        if (isnan(m[nj * cols + ni])) return NAN;
        double vs[4] = {m[j0 * cols + i0], m[j0 * cols + i1], m[j1 * cols + i0],
                        m[j1 * cols + i1]};
        double ws[4] = {(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy};
        double sum = 0, wsum = 0;
        for (int k = 0; k < 4; k++)
            if (!isnan(vs[k]) && ws[k] > 0) sum += vs[k] * ws[k], wsum += ws[k];
        return wsum > 0 ? sum / wsum : m[nj * cols + ni];
    }
    /* area: the overlap-weighted mean over the footprint [fx0, fx1) x [fy0, fy1)
     */
    int64_t i0 = (int64_t)floor(fx0), i1 = (int64_t)ceil(fx1);
    int64_t j0 = (int64_t)floor(fy0), j1 = (int64_t)ceil(fy1);
    i0 = i0 < 0 ? 0 : i0, j0 = j0 < 0 ? 0 : j0;
    i1 = i1 > cols ? cols : i1, j1 = j1 > rows ? rows : j1;
    if (i1 <= i0) i1 = i0 + 1;
    if (j1 <= j0) j1 = j0 + 1;
    double sum = 0, wsum = 0;
    for (int64_t j = j0; j < j1; j++) {
        double wy = fmin(fy1, (double)j + 1) - fmax(fy0, (double)j);
        if (wy <= 0) wy = 1e-9; /* a footprint thinner than the rounding: still sample */
        for (int64_t i = i0; i < i1; i++) {
            double wx = fmin(fx1, (double)i + 1) - fmax(fx0, (double)i);
            if (wx <= 0) wx = 1e-9;
            float v = m[j * cols + i];
            if (isnan(v)) continue;
            sum += wx * wy * v;
            wsum += wx * wy;
        }
    }
    return wsum > 0 ? sum / wsum : NAN;
}

#define LUT_N 1024

int ag_canvas_blit(AgCanvas *c, const float *m, int ch, int64_t rows, int64_t cols, int x,
                   int y, int w, int h, const AgBlit *b, AgError *err) {
    if (ch != 1 && ch != 3)
        return ag_fail(err, "canvas: blit takes 1 (colormap) or 3 (RGB) channels, got %d", ch);
    if (rows < 1 || cols < 1)
        return ag_fail(err, "canvas: cannot draw an empty %lldx%lld matrix", (long long)rows,
                       (long long)cols);
    if (!isfinite(b->vmin) || !isfinite(b->vmax) || b->vmin > b->vmax)
        return ag_fail(err, "canvas: blit range [%g, %g] must be finite with vmin <= vmax",
                       b->vmin, b->vmax);
    if (w < 1 || h < 1) return 0;
    int i0 = x < c->cx0 ? c->cx0 : x, i1 = (int64_t)x + w > c->cx1 ? c->cx1 : x + w;
    int j0 = y < c->cy0 ? c->cy0 : y, j1 = (int64_t)y + h > c->cy1 ? c->cy1 : y + h;
    if (i0 >= i1 || j0 >= j1) return 0;
    uint8_t lut[LUT_N][3];
    if (ch == 1)
        for (int k = 0; k < LUT_N; k++)
            ag_colormap_rgb(b->cmap, k / (double)(LUT_N - 1), lut[k]);
    double range = b->vmax - b->vmin, sx = (double)cols / w, sy = (double)rows / h;
    int64_t plane = rows * cols;
#pragma omp parallel for schedule(dynamic, 16) if ((int64_t)(j1 - j0) * (i1 - i0) > 65536)
    for (int j = j0; j < j1; j++) {
        double fy0 = (j - y) * sy, fy1 = (j + 1 - y) * sy;
        for (int i = i0; i < i1; i++) {
            double fx0 = (i - x) * sx, fx1 = (i + 1 - x) * sx;
            uint8_t *p = c->px + ((size_t)j * (size_t)c->w + (size_t)i) * 3;
            int bad = 0;
            double t[3];
            for (int k = 0; k < ch; k++) {
                double v = sample(m + k * plane, rows, cols, fx0, fx1, fy0, fy1, b->interp);
                if (isnan(v)) bad = 1;
                t[k] = range > 0 ? (v - b->vmin) / range : 0.5;
                t[k] = isnan(t[k]) ? 0.5 : clampd(t[k], 0, 1);
            }
            if (bad) {
                p[0] = b->nan_color.r, p[1] = b->nan_color.g, p[2] = b->nan_color.b;
            } else if (ch == 1) {
                const uint8_t *q = lut[lrint(t[0] * (LUT_N - 1))];
                p[0] = q[0], p[1] = q[1], p[2] = q[2];
            } else {
                for (int k = 0; k < 3; k++) p[k] = (uint8_t)lrint(t[k] * 255);
            }
        }
    }
    return 0;
}
