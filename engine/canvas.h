/* canvas.h - an RGB raster to draw figures on, colormaps, and PNG files.
 *
 * Coordinates are continuous pixel coordinates: the origin is the top-left
 * corner of the image, x grows to the right and y downwards, and pixel (i, j)
 * covers [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5). A 1-pixel
 * line along y = j + 0.5 lights exactly row j; a rectangle with integer corners
 * covers whole pixels. Everything is clipped to the canvas; shapes are
 * anti-aliased by coverage and blended over the pixels in sRGB space (as
 * Agg/matplotlib do). Colours carry an opacity (a = 255 is opaque).
 *
 * The canvas does not own its pixels (the Lua binding keeps them in a
 * userdata), and no function here keeps state between calls: a canvas is safe
 * to use from one thread at a time, distinct canvases from any number of
 * threads. */
#ifndef AG_CANVAS_H
#define AG_CANVAS_H

#include "ag.h"

#include <stddef.h>
#include <stdint.h>

#define AG_CANVAS_MAX 16384 /* largest width or height */
#define AG_COORD_MAX 1e9    /* |coordinate| limit, far outside any canvas */

typedef struct AgColor {
    uint8_t r, g, b, a;
} AgColor;

typedef struct AgCanvas {
    int w, h;
    uint8_t *px;            /* (h, w, 3) RGB rows, top row first; owned by the caller */
    int cx0, cy0, cx1, cy1; /* drawing is clipped to [cx0, cx1) x [cy0, cy1) */
} AgCanvas;

/* 1 <= w, h <= AG_CANVAS_MAX, or an error naming the size. */
int ag_canvas_check_size(int64_t w, int64_t h, AgError *err);
/* Bytes of pixel memory for a w x h canvas (w * h * 3). */
size_t ag_canvas_nbytes(int w, int h);
/* Points c at px (ag_canvas_nbytes(w, h) bytes) and fills it with bg (alpha
 * ignored). */
void ag_canvas_init(AgCanvas *c, int w, int h, uint8_t *px, AgColor bg);
/* Restricts drawing to the pixels of [x, x + w) x [y, y + h) that are on the canvas
 * (e.g. a plot's axes box); ag_canvas_unclip restores the whole canvas. */
void ag_canvas_clip(AgCanvas *c, int x, int y, int w, int h);
void ag_canvas_unclip(AgCanvas *c);
/* rgb: (3) out; pixel (x, y) with 0 <= x < w, 0 <= y < h. */
void ag_canvas_get(const AgCanvas *c, int x, int y, uint8_t *rgb);

/* Filled rectangle [x, x + w) x [y, y + h); fractional edges get partial
 * coverage. w or h <= 0 draws nothing. */
void ag_canvas_rect(AgCanvas *c, double x, double y, double w, double h, AgColor col);
/* Outline of that rectangle: a line of width lw centred on each edge, corners
 * drawn once. */
void ag_canvas_rect_outline(AgCanvas *c, double x, double y, double w, double h, double lw,
                            AgColor col);

/* Anti-aliased polyline of the given width (> 0; thinner than 1 is drawn 1
 * pixel wide and proportionally fainter) with round joins and caps; each pixel
 * is blended once, so translucent lines do not darken at joints. A point with a
 * NaN coordinate breaks the line in two (as matplotlib does); lone points
 * between breaks draw nothing. x, y: (n) point coordinates */
int ag_canvas_polyline(AgCanvas *c, const double *x, const double *y, int64_t n, double width,
                       AgColor col, AgError *err);
/* One segment: ag_canvas_polyline of two points. */
int ag_canvas_line(AgCanvas *c, double x0, double y0, double x1, double y1, double width,
                   AgColor col, AgError *err);
/* Filled polygon (non-zero winding rule), anti-aliased; n >= 3 finite points.
 * Used for shaded bands. x, y: (n) vertex coordinates, implicitly closed. */
int ag_canvas_polygon(AgCanvas *c, const double *x, const double *y, int64_t n, AgColor col,
                      AgError *err);

typedef enum {
    AG_MARKER_CIRCLE,   /* filled disc of diameter size */
    AG_MARKER_SQUARE,   /* filled square of side size */
    AG_MARKER_CROSS,    /* 'x': two diagonals of the size x size square */
    AG_MARKER_PLUS,     /* '+' */
    AG_MARKER_DIAMOND,  /* filled square turned 45 degrees, diagonal = size */
    AG_MARKER_TRIANGLE, /* filled, pointing up, in the size x size square */
} AgMarker;
/* A marker centred at (x, y); size > 0 in pixels. Cross and plus are stroked
 * with width max(1, size / 5). Returns -1 (with err) only when memory runs out.
 */
int ag_canvas_marker(AgCanvas *c, double x, double y, AgMarker m, double size, AgColor col,
                     AgError *err);
/* "circle"/"o", "square"/"s", "cross"/"x", "plus"/"+", "diamond"/"d",
 * "triangle"/"^"; -1 when the name is unknown. */
int ag_marker_find(const char *name);

/* Text from the embedded font (font.h), UTF-8, '\n' starts a new line. */
typedef struct AgTextStyle {
    int scale;  /* 1 .. 16: every font pixel becomes scale x scale pixels */
    int bold;   /* 0 or 1 */
    int rotate; /* 0, or 90: counter-clockwise, reading bottom to top (y-axis
                   labels) */
    int smooth; /* at scale 2 and 4, round the diagonals (EPX/Scale2x) instead of
                   blocks */
    AgColor color;
} AgTextStyle;
/* Draws s with the top-left corner of its (rotated) box at the integer pixel
 * (x, y). The box is ag_text_size() wide and tall, or the transpose of it when
 * rotated. */
void ag_canvas_text(AgCanvas *c, int x, int y, const char *s, const AgTextStyle *st);

/* Colormaps: "viridis", "magma", "gray" (or "grey"), "RdBu" (diverging, red at
 * 0, near-white #f7f7f7 at 0.5, blue at 1, as matplotlib's); a "_r" suffix
 * reverses one. */
typedef struct AgColormap {
    int id;
    int reversed;
} AgColormap;
int ag_colormap_find(const char *name, AgColormap *cm);
/* rgb: (3) out, the colour at t in [0, 1] (clamped); NaN gives AG_NAN_COLOR.
 * Tables are interpolated linearly between their 256 (or 11) entries. */
void ag_colormap_rgb(AgColormap cm, double t, uint8_t *rgb);
#define AG_NAN_COLOR ((AgColor){128, 128, 128, 255}) /* mid gray */

typedef enum {
    AG_INTERP_NEAREST,  /* each pixel shows the value at its centre */
    AG_INTERP_BILINEAR, /* linear between the 4 nearest values (centres as
                           samples) */
    AG_INTERP_AREA,     /* the average over the pixel's footprint: downsizing big
                           matrices */
} AgInterp;

typedef struct AgBlit {
    AgColormap cmap;   /* for one-channel sources */
    double vmin, vmax; /* finite, vmin <= vmax; v maps to t = (v - vmin) / (vmax -
                          vmin), and everything to t = 0.5 when vmin == vmax */
    AgInterp interp;
    AgColor nan_color; /* for NaN values (alpha ignored) */
} AgBlit;

/* Draws matrix m into the integer rectangle [x, x + w) x [y, y + h) (clipped).
 *   m: (ch, rows, cols) contiguous floats; ch = 1 goes through b->cmap, ch = 3
 * is RGB with each channel mapped from [vmin, vmax] to [0, 255]. Values beyond
 * the range take the end colours (so do +-inf); NaN takes b->nan_color.
 * Bilinear and area interpolation leave NaN neighbours out (a pixel is NaN only
 * when its nearest value, for bilinear, or its whole footprint, for area, is
 * NaN). */
int ag_canvas_blit(AgCanvas *c, const float *m, int ch, int64_t rows, int64_t cols, int x,
                   int y, int w, int h, const AgBlit *b, AgError *err);

/* The smallest and largest finite values of m (n floats) into *lo, *hi, and the
 * number of NaN and of infinite values (either pointer may be NULL). Returns
 * the number of finite values; when it is 0, *lo = *hi = 0. */
int64_t ag_finite_range(const float *m, int64_t n, double *lo, double *hi, int64_t *nnan,
                        int64_t *ninf);

/* PNG files through libpng. Writes c as 8-bit RGB, atomically (encoded in memory, then
 * ag_write_atomic): an unwritable path is an error that names it and says why, and the
 * previous file, if any, is left as it was. */
int ag_png_write(const AgCanvas *c, const char *path, AgError *err);
/* Width, height and channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) that
 * ag_png_read will produce: palettes become RGB(A), 16-bit and low-bit-depth
 * samples become 8-bit. */
int ag_png_info(const char *path, int *w, int *h, int *channels, AgError *err);
/* Reads the image into px (cap bytes, at least w * h * channels), rows top
 * first, with the sizes ag_png_info gives. Images over 65535 pixels a side, over
 * AG_PNG_MAX_PIXELS pixels, or over 8 * 1032 pixels per byte of the file (more than
 * deflate can encode: a lying header) are refused, by ag_png_info too. */
#define AG_PNG_MAX_PIXELS ((int64_t)1 << 28)
int ag_png_read(const char *path, uint8_t *px, size_t cap, int *w, int *h, int *channels,
                AgError *err);

#endif
