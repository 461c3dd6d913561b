/* test_canvas.c - the PNG canvas: primitives land on the pixels they should, colormaps
 * match matplotlib's values, blits interpolate as documented, and PNG files round-trip
 * through libpng (errors are values, never crashes). */
#include "../../engine/canvas.h"
#include "../../engine/font.h"
#include "check.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

static const AgColor WHITE = {255, 255, 255, 255}, BLACK = {0, 0, 0, 255};

/* A w x h white canvas with malloc'd pixels (free c.px when done). */
static AgCanvas make(int w, int h) {
    AgCanvas c;
    ag_canvas_init(&c, w, h, malloc(ag_canvas_nbytes(w, h)), WHITE);
    return c;
}

static int px(const AgCanvas *c, int x, int y, int k) {
    uint8_t rgb[3];
    ag_canvas_get(c, x, y, rgb);
    return rgb[k];
}

static int is_white(const AgCanvas *c, int x, int y) {
    return px(c, x, y, 0) == 255 && px(c, x, y, 1) == 255 && px(c, x, y, 2) == 255;
}

/* number of non-white pixels in [x0, x1) x [y0, y1) */
static int count_ink(const AgCanvas *c, int x0, int y0, int x1, int y1) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (x >= 0 && y >= 0 && x < c->w && y < c->h && !is_white(c, x, y)) n++;
    return n;
}

/* sum over the canvas of the darkness 1 - red/255 (coverage of a black shape) */
static double coverage(const AgCanvas *c) {
    double s = 0;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) s += 1 - px(c, x, y, 0) / 255.0;
    return s;
}

TEST(size_limits_are_errors) {
    AgError err = AG_ERROR_INIT;
    CHECK(ag_canvas_check_size(1, 1, &err) == 0, "1x1");
    CHECK(ag_canvas_check_size(16384, 16384, &err) == 0, "max");
    CHECK(ag_canvas_check_size(0, 10, &err) != 0, "zero width");
    CHECK(strstr(err.msg, "0x10") != NULL, "message names the size: %s", err.msg);
    CHECK(ag_canvas_check_size(10, 16385, &err) != 0, "too tall");
    CHECK(ag_canvas_check_size(-1, 5, &err) != 0, "negative");
}

TEST(rect_integer_corners_cover_whole_pixels_fractions_blend) {
    AgCanvas c = make(20, 20);
    ag_canvas_rect(&c, 2, 3, 5, 4, BLACK);
    CHECK(count_ink(&c, 0, 0, 20, 20) == 20, "5x4 pixels, got %d", count_ink(&c, 0, 0, 20, 20));
    CHECK(px(&c, 2, 3, 0) == 0 && px(&c, 6, 6, 0) == 0, "corners inside");
    CHECK(is_white(&c, 1, 3) && is_white(&c, 7, 3) && is_white(&c, 2, 2) && is_white(&c, 2, 7),
          "edges outside untouched");
    ag_canvas_rect(&c, 10.5, 10, 1, 1, BLACK); /* half of two pixels */
    CHECK(abs(px(&c, 10, 10, 0) - 128) <= 1, "half coverage: %d", px(&c, 10, 10, 0));
    CHECK(abs(px(&c, 11, 10, 0) - 128) <= 1, "half coverage: %d", px(&c, 11, 10, 0));
    ag_canvas_rect(&c, 15, 15, 0, 3, BLACK); /* empty */
    ag_canvas_rect(&c, NAN, 1, 3, 3, BLACK); /* ignored */
    CHECK(count_ink(&c, 0, 0, 20, 20) == 22, "nothing else drawn");
    free(c.px);
}

TEST(translucent_colors_blend_over_the_background) {
    AgCanvas c = make(4, 4);
    ag_canvas_rect(&c, 0, 0, 4, 4, (AgColor){0, 0, 255, 128}); /* half blue over white */
    CHECK(abs(px(&c, 1, 1, 0) - 127) <= 1 && px(&c, 1, 1, 2) == 255, "r %d b %d",
          px(&c, 1, 1, 0), px(&c, 1, 1, 2));
    free(c.px);
}

TEST(horizontal_line_at_half_pixel_lights_exactly_one_row) {
    AgCanvas c = make(30, 20);
    AgError err = AG_ERROR_INIT;
    CHECK(ag_canvas_line(&c, 2, 10.5, 27, 10.5, 1, BLACK, &err) == 0, "%s", err.msg);
    for (int x = 3; x < 27; x++)
        CHECK(px(&c, x, 10, 0) == 0, "row 10 at x=%d: %d", x, px(&c, x, 10, 0));
    CHECK(count_ink(&c, 0, 0, 30, 10) == 0 && count_ink(&c, 0, 11, 30, 20) == 0,
          "rows above and below untouched");
    free(c.px);
}

TEST(thick_diagonal_line_is_antialiased_and_where_expected) {
    AgCanvas c = make(40, 40);
    AgError err = AG_ERROR_INIT;
    CHECK(ag_canvas_line(&c, 5, 5, 35, 35, 3, BLACK, &err) == 0, "%s", err.msg);
    for (int k = 8; k < 32; k++) CHECK(px(&c, k, k, 0) == 0, "on the line (%d,%d)", k, k);
    CHECK(is_white(&c, 30, 10) && is_white(&c, 10, 30), "far from the line");
    int partial = 0;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++) {
            int r = px(&c, x, y, 0);
            if (r > 0 && r < 255) partial++;
            /* no ink beyond the half-width + 1 pixel of the segment */
            double d = fabs((x + 0.5) - (y + 0.5)) / sqrt(2.0);
            if (d > 1.5 + 1.0 && r != 255) CHECK(0, "ink at (%d,%d), distance %g", x, y, d);
        }
    CHECK(partial > 20, "anti-aliased edge pixels: %d", partial);
    /* area: a 3-wide capsule of length 30*sqrt(2) plus round caps */
    double want = 3 * 30 * sqrt(2.0) + M_PI * 1.5 * 1.5;
    CHECK(fabs(coverage(&c) - want) < 0.08 * want, "coverage %g vs %g", coverage(&c), want);
    free(c.px);
}

TEST(polyline_nan_breaks_the_line_and_joints_blend_once) {
    AgCanvas c = make(50, 20);
    AgError err = AG_ERROR_INIT;
    double x[5] = {2, 20, NAN, 30, 48}, y[5] = {5.5, 5.5, NAN, 5.5, 5.5};
    CHECK(ag_canvas_polyline(&c, x, y, 5, 1, BLACK, &err) == 0, "%s", err.msg);
    CHECK(px(&c, 10, 5, 0) == 0 && px(&c, 40, 5, 0) == 0, "both pieces drawn");
    CHECK(count_ink(&c, 22, 0, 28, 20) == 0, "the gap stays empty");
    /* a translucent L: the joint pixel is as light as the rest of the line */
    AgCanvas d = make(30, 30);
    double lx[3] = {5.5, 20.5, 20.5}, ly[3] = {5.5, 5.5, 25.5};
    CHECK(ag_canvas_polyline(&d, lx, ly, 3, 1, (AgColor){0, 0, 0, 128}, &err) == 0, "%s",
          err.msg);
    CHECK(px(&d, 20, 5, 0) == px(&d, 12, 5, 0), "joint %d vs segment %d", px(&d, 20, 5, 0),
          px(&d, 12, 5, 0));
    CHECK(ag_canvas_polyline(&d, lx, ly, 3, 0, BLACK, &err) != 0, "width 0 is an error");
    CHECK(ag_canvas_polyline(&d, lx, ly, 3, NAN, BLACK, &err) != 0, "NaN width is an error");
    CHECK(ag_canvas_polyline(&d, lx, ly, 1, 1, BLACK, &err) == 0,
          "one point: nothing, no error");
    free(c.px);
    free(d.px);
}

TEST(polygon_fill_covers_its_area) {
    AgCanvas c = make(40, 40);
    AgError err = AG_ERROR_INIT;
    double sx[4] = {5, 15, 15, 5}, sy[4] = {5, 5, 25, 25};
    CHECK(ag_canvas_polygon(&c, sx, sy, 4, BLACK, &err) == 0, "%s", err.msg);
    CHECK(count_ink(&c, 0, 0, 40, 40) == 200, "10x20 square: %d", count_ink(&c, 0, 0, 40, 40));
    AgCanvas t = make(40, 40);
    double tx[3] = {2, 38, 2}, ty[3] = {2, 2, 30};
    CHECK(ag_canvas_polygon(&t, tx, ty, 3, BLACK, &err) == 0, "%s", err.msg);
    CHECK(fabs(coverage(&t) - 36 * 28 / 2.0) < 6, "triangle area %g", coverage(&t));
    CHECK(is_white(&t, 35, 25), "outside the hypotenuse");
    double bad[3] = {1, NAN, 3};
    CHECK(ag_canvas_polygon(&t, bad, ty, 3, BLACK, &err) != 0, "NaN vertex is an error");
    CHECK(ag_canvas_polygon(&t, tx, ty, 2, BLACK, &err) != 0, "two points is an error");
    free(c.px);
    free(t.px);
}

TEST(markers_have_their_shape) {
    AgError err = AG_ERROR_INIT;
    AgCanvas c = make(40, 40);
    CHECK(ag_canvas_marker(&c, 20, 20, AG_MARKER_CIRCLE, 20, BLACK, &err) == 0, "%s", err.msg);
    CHECK(fabs(coverage(&c) - M_PI * 100) < 0.03 * M_PI * 100, "disc area %g", coverage(&c));
    CHECK(px(&c, 20, 20, 0) == 0 && is_white(&c, 3, 3), "centre inked, corner not");
    free(c.px);
    c = make(40, 40);
    CHECK(ag_canvas_marker(&c, 20, 20, AG_MARKER_SQUARE, 10, BLACK, &err) == 0, "%s", err.msg);
    CHECK(count_ink(&c, 0, 0, 40, 40) == 100, "10x10 square: %d", count_ink(&c, 0, 0, 40, 40));
    free(c.px);
    c = make(40, 40);
    CHECK(ag_canvas_marker(&c, 20, 20, AG_MARKER_CROSS, 16, BLACK, &err) == 0, "%s", err.msg);
    CHECK(px(&c, 14, 14, 0) < 100 && px(&c, 25, 14, 0) < 100, "both diagonals");
    CHECK(is_white(&c, 20, 13) && is_white(&c, 13, 20), "not a plus");
    free(c.px);
    CHECK(ag_marker_find("x") == AG_MARKER_CROSS &&
              ag_marker_find("circle") == AG_MARKER_CIRCLE,
          "names");
    CHECK(ag_marker_find("star") == -1, "unknown name");
}

TEST(text_is_drawn_inside_its_measured_box) {
    int w, h;
    ag_text_size("ab\ncde", 1, &w, &h);
    CHECK(w == 18 && h == 26, "size %dx%d", w, h);
    ag_text_size("ab\ncde", 2, &w, &h);
    CHECK(w == 36 && h == 52, "scaled size %dx%d", w, h);
    ag_text_size("\xc2\xb1"
                 "1",
                 1, &w, &h); /* "±1": two code points */
    CHECK(w == 12, "UTF-8 counts code points: %d", w);
    AgCanvas c = make(80, 60);
    AgTextStyle st = {1, 0, 0, 1, BLACK};
    ag_canvas_text(&c, 10, 20, "Hg", &st);
    int in = count_ink(&c, 10, 20, 22, 33), all = count_ink(&c, 0, 0, 80, 60);
    CHECK(in > 15 && in == all, "ink %d inside the 12x13 box, %d in all", in, all);
    /* crisp: a 1x glyph has only full-ink pixels */
    for (int y = 20; y < 33; y++)
        for (int x = 10; x < 22; x++)
            CHECK(px(&c, x, y, 0) == 0 || px(&c, x, y, 0) == 255, "grey pixel at %d,%d", x, y);
    free(c.px);
    /* rotated 90: the box is 13 wide and 12 tall, the first letter at the bottom */
    c = make(80, 60);
    st.rotate = 90;
    ag_canvas_text(&c, 30, 10, "Hg", &st);
    all = count_ink(&c, 0, 0, 80, 60);
    CHECK(count_ink(&c, 30, 10, 43, 22) == all && all > 15, "rotated ink in its box");
    CHECK(count_ink(&c, 30, 16, 43, 22) > 0, "the H (first) is in the lower half");
    free(c.px);
    /* scale 2 (smoothed) stays in the doubled box, and carries about 4x the ink */
    c = make(80, 60);
    st.rotate = 0;
    ag_canvas_text(&c, 0, 0, "H", &st);
    int ink1 = count_ink(&c, 0, 0, 80, 60);
    st.scale = 2;
    ag_canvas_text(&c, 20, 0, "H", &st);
    int ink2 = count_ink(&c, 20, 0, 32, 26);
    CHECK(ink2 >= 4 * ink1 && ink2 < 5 * ink1 && count_ink(&c, 0, 0, 80, 60) == ink1 + ink2,
          "ink %d at 1x, %d at 2x", ink1, ink2);
    free(c.px);
    /* unknown code points draw the box glyph, invalid UTF-8 does not crash */
    CHECK(ag_font_glyph(0x4e00, 0)[2] == 0xf8, "missing glyph box");
    CHECK(ag_font_glyph(0xb1, 0)[2] != 0xf8, "± is in the font");
    c = make(80, 20);
    ag_canvas_text(&c, 0, 0, "\xff\xc3", &st);
    ag_canvas_text(&c, -500, -500, "far away", &st);
    free(c.px);
}

TEST(colormaps_match_matplotlib_values) {
    struct {
        const char *name;
        double t;
        int r, g, b;
    } want[] = {
        {"viridis", 0, 68, 1, 84},      {"viridis", 1, 253, 231, 37},
        {"viridis", 0.5, 33, 145, 140}, {"magma", 0, 0, 0, 4},
        {"magma", 1, 252, 253, 191},    {"gray", 0, 0, 0, 0},
        {"gray", 1, 255, 255, 255},     {"grey", 0.5, 128, 128, 128},
        {"RdBu", 0, 103, 0, 31},        {"RdBu", 0.5, 247, 247, 247},
        {"RdBu", 1, 5, 48, 97},         {"RdBu_r", 0, 5, 48, 97},
        {"viridis_r", 0, 253, 231, 37}, {"viridis", -3, 68, 1, 84},
        {"viridis", 7, 253, 231, 37},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        AgColormap cm;
        CHECK(ag_colormap_find(want[i].name, &cm) == 0, "%s", want[i].name);
        uint8_t rgb[3];
        ag_colormap_rgb(cm, want[i].t, rgb);
        CHECK(abs(rgb[0] - want[i].r) <= 1 && abs(rgb[1] - want[i].g) <= 1 &&
                  abs(rgb[2] - want[i].b) <= 1,
              "%s(%g) = %d,%d,%d, want %d,%d,%d", want[i].name, want[i].t, rgb[0], rgb[1],
              rgb[2], want[i].r, want[i].g, want[i].b);
    }
    AgColormap cm;
    uint8_t rgb[3];
    ag_colormap_find("magma", &cm);
    ag_colormap_rgb(cm, NAN, rgb);
    CHECK(rgb[0] == 128 && rgb[1] == 128 && rgb[2] == 128, "NaN is mid gray");
    CHECK(ag_colormap_find("jet", &cm) != 0, "unknown colormap");
    CHECK(ag_colormap_find("_r", &cm) != 0, "bare suffix");
}

/* blit m (rows, cols) with gray over [0, 1] */
static AgBlit gray_blit(AgInterp interp) {
    AgBlit b;
    ag_colormap_find("gray", &b.cmap);
    b.vmin = 0, b.vmax = 1, b.interp = interp, b.nan_color = AG_NAN_COLOR;
    return b;
}

TEST(blit_nearest_maps_cells_to_blocks_and_nan_to_gray) {
    AgCanvas c = make(10, 10);
    AgError err = AG_ERROR_INIT;
    float m[4] = {0, 1, NAN, 0.5f};
    AgBlit b = gray_blit(AG_INTERP_NEAREST);
    CHECK(ag_canvas_blit(&c, m, 1, 2, 2, 1, 1, 8, 8, &b, &err) == 0, "%s", err.msg);
    CHECK(px(&c, 1, 1, 0) == 0 && px(&c, 4, 4, 0) == 0, "top-left cell black");
    CHECK(px(&c, 5, 1, 0) == 255 && px(&c, 8, 4, 0) == 255, "top-right cell white");
    CHECK(px(&c, 2, 6, 0) == 128 && px(&c, 2, 6, 2) == 128, "NaN cell gray");
    CHECK(abs(px(&c, 6, 6, 0) - 128) <= 1, "0.5 is mid gray");
    CHECK(is_white(&c, 0, 0) && is_white(&c, 9, 9), "outside the rectangle untouched");
    /* out-of-range values clamp, inf too; a flat range maps to the middle */
    float n[3] = {-5, INFINITY, 7};
    CHECK(ag_canvas_blit(&c, n, 1, 1, 3, 0, 0, 3, 1, &b, &err) == 0, "%s", err.msg);
    CHECK(px(&c, 0, 0, 0) == 0 && px(&c, 1, 0, 0) == 255 && px(&c, 2, 0, 0) == 255, "clamped");
    b.vmin = b.vmax = 2;
    CHECK(ag_canvas_blit(&c, n, 1, 1, 3, 0, 0, 3, 1, &b, &err) == 0, "%s", err.msg);
    CHECK(abs(px(&c, 0, 0, 0) - 128) <= 1, "flat range: middle colour");
    b.vmin = 3, b.vmax = 1;
    CHECK(ag_canvas_blit(&c, n, 1, 1, 3, 0, 0, 3, 1, &b, &err) != 0, "vmin > vmax is an error");
    b = gray_blit(AG_INTERP_NEAREST);
    CHECK(ag_canvas_blit(&c, n, 1, 0, 3, 0, 0, 3, 1, &b, &err) != 0,
          "empty matrix is an error");
    CHECK(ag_canvas_blit(&c, n, 2, 1, 3, 0, 0, 3, 1, &b, &err) != 0, "2 channels is an error");
    CHECK(ag_canvas_blit(&c, n, 1, 1, 3, -100, -100, 3, 1, &b, &err) == 0,
          "off-canvas is fine");
    free(c.px);
}

TEST(blit_bilinear_interpolates_and_area_averages) {
    AgError err = AG_ERROR_INIT;
    /* 1x2 matrix [0, 1] over 8 pixels: bilinear ramps from black to white monotonically */
    AgCanvas c = make(8, 1);
    float m[2] = {0, 1};
    AgBlit b = gray_blit(AG_INTERP_BILINEAR);
    CHECK(ag_canvas_blit(&c, m, 1, 1, 2, 0, 0, 8, 1, &b, &err) == 0, "%s", err.msg);
    CHECK(px(&c, 0, 0, 0) == 0 && px(&c, 7, 0, 0) == 255, "ends");
    for (int x = 1; x < 8; x++)
        CHECK(px(&c, x, 0, 0) >= px(&c, x - 1, 0, 0), "monotone at %d", x);
    /* pixel 3 is at source position (3.5 / 4) - 0.5 = 0.375 */
    CHECK(abs(px(&c, 3, 0, 0) - (int)lrint(0.375 * 255)) <= 1, "bilinear value %d",
          px(&c, 3, 0, 0));
    free(c.px);
    /* area: a 4x4 checkerboard of 0/1 into 2x2 pixels is uniformly mid gray */
    c = make(2, 2);
    float cb[16];
    for (int i = 0; i < 16; i++) cb[i] = (float)((i / 4 + i % 4) % 2);
    b = gray_blit(AG_INTERP_AREA);
    CHECK(ag_canvas_blit(&c, cb, 1, 4, 4, 0, 0, 2, 2, &b, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 4; k++) CHECK(abs(px(&c, k % 2, k / 2, 0) - 128) <= 1, "pixel %d", k);
    /* ... and NaN cells are left out of the average */
    cb[0] = NAN;
    CHECK(ag_canvas_blit(&c, cb, 1, 4, 4, 0, 0, 2, 2, &b, &err) == 0, "%s", err.msg);
    CHECK(abs(px(&c, 0, 0, 0) - 170) <= 1, "mean of 1, 1, 0 -> %d", px(&c, 0, 0, 0));
    free(c.px);
    /* RGB: three planes mapped directly */
    c = make(1, 1);
    float rgb[3] = {1, 0, 0.5f};
    b = gray_blit(AG_INTERP_NEAREST);
    CHECK(ag_canvas_blit(&c, rgb, 3, 1, 1, 0, 0, 1, 1, &b, &err) == 0, "%s", err.msg);
    CHECK(px(&c, 0, 0, 0) == 255 && px(&c, 0, 0, 1) == 0 && abs(px(&c, 0, 0, 2) - 128) <= 1,
          "rgb");
    free(c.px);
}

TEST(clip_restricts_every_primitive) {
    AgCanvas c = make(30, 30);
    AgError err = AG_ERROR_INIT;
    ag_canvas_clip(&c, 10, 10, 10, 10);
    ag_canvas_rect(&c, 0, 0, 30, 30, BLACK);
    CHECK(count_ink(&c, 0, 0, 30, 30) == 100, "rect clipped to 10x10");
    ag_canvas_init(&c, 30, 30, c.px, WHITE);
    ag_canvas_clip(&c, 10, 10, 10, 10);
    ag_canvas_line(&c, 0, 15, 30, 15, 3, BLACK, &err);
    AgTextStyle st = {1, 0, 0, 1, BLACK};
    ag_canvas_text(&c, 0, 0, "WWWWWW\nWWWWWW", &st);
    float m[1] = {0};
    AgBlit b = gray_blit(AG_INTERP_NEAREST);
    ag_canvas_blit(&c, m, 1, 1, 1, 0, 25, 30, 5, &b, &err);
    CHECK(count_ink(&c, 0, 0, 30, 10) == 0 && count_ink(&c, 0, 20, 30, 30) == 0 &&
              count_ink(&c, 0, 0, 10, 30) == 0 && count_ink(&c, 20, 0, 30, 30) == 0,
          "nothing outside the clip box");
    CHECK(count_ink(&c, 10, 10, 20, 20) > 0, "something inside");
    ag_canvas_unclip(&c);
    ag_canvas_rect(&c, 0, 0, 1, 1, BLACK);
    CHECK(px(&c, 0, 0, 0) == 0, "unclip restores the canvas");
    free(c.px);
}

TEST(finite_range_skips_nan_and_inf) {
    float m[6] = {NAN, 3, -2, INFINITY, -INFINITY, 0.5f};
    double lo, hi;
    int64_t nn, ni;
    CHECK(ag_finite_range(m, 6, &lo, &hi, &nn, &ni) == 3, "three finite");
    CHECK(lo == -2 && hi == 3 && nn == 1 && ni == 2, "lo %g hi %g nan %lld inf %lld", lo, hi,
          (long long)nn, (long long)ni);
    float all_nan[2] = {NAN, NAN};
    CHECK(ag_finite_range(all_nan, 2, &lo, &hi, NULL, NULL) == 0 && lo == 0 && hi == 0, "none");
}

TEST(png_round_trips_through_libpng) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/agop_test_canvas_%d.png", (int)getpid());
    AgCanvas c = make(37, 23);
    AgError err = AG_ERROR_INIT;
    for (int y = 0; y < 23; y++)
        for (int x = 0; x < 37; x++)
            ag_canvas_rect(&c, x, y, 1, 1,
                           (AgColor){(uint8_t)(x * 7), (uint8_t)(y * 11), 99, 255});
    CHECK(ag_png_write(&c, path, &err) == 0, "%s", err.msg);
    int w, h, ch;
    CHECK(ag_png_info(path, &w, &h, &ch, &err) == 0, "%s", err.msg);
    CHECK(w == 37 && h == 23 && ch == 3, "%dx%dx%d", w, h, ch);
    uint8_t *back = malloc((size_t)w * h * ch);
    CHECK(ag_png_read(path, back, (size_t)w * h * ch, &w, &h, &ch, &err) == 0, "%s", err.msg);
    CHECK(memcmp(back, c.px, (size_t)w * h * 3) == 0, "pixels identical");
    CHECK(ag_png_read(path, back, 10, &w, &h, &ch, &err) != 0, "too small a buffer: error");
    free(back);
    /* a truncated file is an error from libpng's error path, not a crash */
    FILE *f = fopen(path, "r+b");
    if (f) {
        CHECK(ftruncate(fileno(f), 60) == 0, "truncate");
        fclose(f);
    }
    back = malloc(37 * 23 * 3);
    int r = ag_png_info(path, &w, &h, &ch, &err);
    if (r == 0) r = ag_png_read(path, back, 37 * 23 * 3, &w, &h, &ch, &err);
    CHECK(r != 0 && strstr(err.msg, path) != NULL, "truncated: %s", err.msg);
    free(back);
    remove(path);
    free(c.px);
}

TEST(png_errors_name_the_path) {
    AgCanvas c = make(4, 4);
    AgError err = AG_ERROR_INIT;
    CHECK(ag_png_write(&c, "/nonexistent-dir/x.png", &err) != 0, "unwritable");
    CHECK(strstr(err.msg, "/nonexistent-dir/x.png") && strstr(err.msg, "No such file"),
          "message: %s", err.msg);
    CHECK(ag_png_write(&c, "/tmp", &err) != 0, "a directory");
    int w, h, ch;
    CHECK(ag_png_info("/nonexistent-dir/x.png", &w, &h, &ch, &err) != 0, "missing file");
    char path[64];
    snprintf(path, sizeof path, "/tmp/agop_test_notpng_%d.png", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("this is not a png file at all", f);
        fclose(f);
    }
    CHECK(ag_png_info(path, &w, &h, &ch, &err) != 0 && strstr(err.msg, "not a PNG"), "%s",
          err.msg);
    remove(path);
    AgCanvas empty = {0, 0, NULL, 0, 0, 0, 0};
    CHECK(ag_png_write(&empty, "/tmp/never.png", &err) != 0, "an empty canvas is an error");
    free(c.px);
}

/* appends a PNG chunk (length, type, data, CRC) at p; returns the end */
static uint8_t *chunk(uint8_t *p, const char *type, const uint8_t *data, uint32_t n) {
    p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8),
    p[3] = (uint8_t)n;
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    uint32_t crc = (uint32_t)crc32(0, p + 4, 4 + n);
    p += 8 + n;
    p[0] = (uint8_t)(crc >> 24), p[1] = (uint8_t)(crc >> 16), p[2] = (uint8_t)(crc >> 8),
    p[3] = (uint8_t)crc;
    return p + 4;
}

TEST(png_header_alone_never_decides_a_large_allocation) {
    /* a valid 80-byte PNG whose header says 65535x65535 RGB (12 GiB decoded) */
    uint8_t file[256], *p = file;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    const uint8_t ihdr[13] = {0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 8, 2, 0, 0, 0};
    p = chunk(p, "IHDR", ihdr, 13);
    uint8_t raw[16] = {0}, z[64];
    uLongf zn = sizeof z;
    CHECK(compress(z, &zn, raw, sizeof raw) == Z_OK, "compress");
    p = chunk(p, "IDAT", z, (uint32_t)zn);
    p = chunk(p, "IEND", NULL, 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/agop_test_bomb_%d.png", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(file, 1, (size_t)(p - file), f);
        fclose(f);
    }
    int w = 0, h = 0, ch = 0;
    AgError err = AG_ERROR_INIT;
    CHECK(ag_png_info(path, &w, &h, &ch, &err) != 0, "accepted %dx%dx%d", w, h, ch);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "65535x65535") &&
              strstr(err.msg, "over the limit"),
          "%s", err.msg);
    uint8_t px[16];
    CHECK(ag_png_read(path, px, sizeof px, &w, &h, &ch, &err) != 0, "read accepted");
    CHECK(strstr(err.msg, "over the limit"), "%s", err.msg);
    remove(path);
}

TEST(png_failed_save_keeps_the_previous_file) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/agop_test_keep_%d.png", (int)getpid());
    AgCanvas small = make(8, 8), big = make(300, 300);
    uint32_t x = 12345; /* noise does not compress: the big image is > 200 KB */
    for (size_t i = 0; i < (size_t)300 * 300 * 3; i++) {
        x = x * 1103515245u + 12345u;
        big.px[i] = (uint8_t)(x >> 16);
    }
    AgError err = AG_ERROR_INIT;
    CHECK(ag_png_write(&small, path, &err) == 0, "%s", err.msg);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 100000; /* files this process writes stop at 100 KB (EFBIG) */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    int rc = ag_png_write(&big, path, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(rc != 0, "the write past the file size limit succeeded");
    CHECK(strstr(err.msg, path) != NULL, "%s", err.msg);
    int w = 0, h = 0, ch = 0;
    CHECK(ag_png_info(path, &w, &h, &ch, &err) == 0, "previous file gone: %s", err.msg);
    CHECK(w == 8 && h == 8, "previous file changed: %dx%d", w, h);
    /* and no temporary file is left next to it */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ls %s.tmp* >/dev/null 2>&1", path);
    CHECK(system(cmd) != 0, "a temporary file was left behind");
    remove(path);
    free(small.px);
    free(big.px);
}

int main(void) {
    RUN(size_limits_are_errors);
    RUN(rect_integer_corners_cover_whole_pixels_fractions_blend);
    RUN(translucent_colors_blend_over_the_background);
    RUN(horizontal_line_at_half_pixel_lights_exactly_one_row);
    RUN(thick_diagonal_line_is_antialiased_and_where_expected);
    RUN(polyline_nan_breaks_the_line_and_joints_blend_once);
    RUN(polygon_fill_covers_its_area);
    RUN(markers_have_their_shape);
    RUN(text_is_drawn_inside_its_measured_box);
    RUN(colormaps_match_matplotlib_values);
    RUN(blit_nearest_maps_cells_to_blocks_and_nan_to_gray);
    RUN(blit_bilinear_interpolates_and_area_averages);
    RUN(clip_restricts_every_primitive);
    RUN(finite_range_skips_nan_and_inf);
    RUN(png_round_trips_through_libpng);
    RUN(png_errors_name_the_path);
    RUN(png_header_alone_never_decides_a_large_allocation);
    RUN(png_failed_save_keeps_the_previous_file);
    return check_report("canvas");
}
