/* canvas.c - the agop.Canvas userdata (engine/canvas.h), PNG reading,
 * colormaps.
 *
 *   c = agop.Canvas(w, h, {bg = '#ffffff'})      1..16384 pixels a side
 *   c:rect(x, y, w, h, color | {fill =, stroke =, width =})
 *   c:line(x0, y0, x1, y1 [, color [, width]])
 *   c:polyline(xs, ys [, color [, width]])       xs, ys: Lua arrays or tensors;
 * NaN = gap c:polygon(xs, ys [, color])                  filled (non-zero rule)
 *   c:marker(x, y [, shape [, size [, color]]])  'circle' 'square' 'cross'
 * 'plus' ... c:text(x, y, s [, {color, scale, bold, rotate, align, valign,
 * smooth}]) -> x, y, w, h c:text_size(s [, {scale, rotate}]) -> w, h   (also
 * agop.text_size) c:blit(M, x, y, w, h [, {cmap, vmin, vmax, symmetric, interp,
 * nan}]) -> vmin, vmax c:save(path), c:size() -> w, h, c:get(x, y) -> r, g, b,
 * c:close() agop.read_png(path) -> w, h, channels, px(x, y) -> r, g, b[, a],
 * tensor (h, w, ch) agop.colormap(name, t) -> r, g, b
 *
 * Coordinates are pixels from the top-left corner, 0-based (pixel (i, j) covers
 * [i, i+1) x [j, j+1)); get and px take 0-based pixel indices too. Colours are
 * '#rrggbb',
 * '#rrggbbaa', a name (black, white, gray, red, green, blue, none) or
 * matplotlib's cycle 'C0'..'C9', or an array {r, g, b [, a]} of integers
 * 0..255. */
#include "../engine/canvas.h"
#include "../engine/font.h"
#include "agl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CANVAS_MT "agop.Canvas"

typedef struct LCanvas {
    AgCanvas c; /* c.px points into the pixel userdata in user value 1; NULL once
                   closed */
} LCanvas;

static LCanvas *check_canvas(lua_State *L, int arg, const char *fname) {
    LCanvas *u = luaL_checkudata(L, arg, CANVAS_MT);
    if (!u->c.px) luaL_error(L, "%s: the canvas is closed", fname);
    return u;
}

/* ---- arguments
 * ------------------------------------------------------------------- */

static double check_coord(lua_State *L, int arg, const char *fname, const char *what) {
    double v = agl_check_finite(L, arg, fname, what);
    if (fabs(v) > AG_COORD_MAX)
        luaL_error(L, "%s: %s must be within +-%f, got %f", fname, what, AG_COORD_MAX, v);
    return v;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int parse_color_string(const char *s, AgColor *col) {
    static const struct {
        const char *name;
        AgColor c;
    } names[] = {
        {"black", {0, 0, 0, 255}},
        {"white", {255, 255, 255, 255}},
        {"gray", {128, 128, 128, 255}},
        {"grey", {128, 128, 128, 255}},
        {"red", {255, 0, 0, 255}},
        {"green", {0, 128, 0, 255}},
        {"blue", {0, 0, 255, 255}},
        {"none", {0, 0, 0, 0}},
        /* matplotlib's default colour cycle (tab10) */
        {"C0", {0x1f, 0x77, 0xb4, 255}},
        {"C1", {0xff, 0x7f, 0x0e, 255}},
        {"C2", {0x2c, 0xa0, 0x2c, 255}},
        {"C3", {0xd6, 0x27, 0x28, 255}},
        {"C4", {0x94, 0x67, 0xbd, 255}},
        {"C5", {0x8c, 0x56, 0x4b, 255}},
        {"C6", {0xe3, 0x77, 0xc2, 255}},
        {"C7", {0x7f, 0x7f, 0x7f, 255}},
        {"C8", {0xbc, 0xbd, 0x22, 255}},
        {"C9", {0x17, 0xbe, 0xcf, 255}},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i].name) == 0) {
            *col = names[i].c;
            return 0;
        }
    size_t n = strlen(s);
    if (s[0] != '#' || (n != 7 && n != 9)) return -1;
    uint8_t v[4] = {0, 0, 0, 255};
    for (size_t k = 0; k < (n - 1) / 2; k++) {
        int hi = hexval(s[1 + 2 * k]), lo = hexval(s[2 + 2 * k]);
        if (hi < 0 || lo < 0) return -1;
        v[k] = (uint8_t)(hi * 16 + lo);
    }
    *col = (AgColor){v[0], v[1], v[2], v[3]};
    return 0;
}

/* The colour at arg (see the header comment); def when arg is none or nil. */
static AgColor check_color(lua_State *L, int arg, const char *fname, const char *what,
                           AgColor def) {
    arg = lua_absindex(L, arg);
    if (lua_isnoneornil(L, arg)) return def;
    AgColor col;
    if (lua_type(L, arg) == LUA_TSTRING) {
        const char *s = lua_tostring(L, arg);
        if (parse_color_string(s, &col) != 0)
            luaL_error(L,
                       "%s: %s '%s' is not a colour ('#rrggbb', '#rrggbbaa', a name or "
                       "'C0'..'C9')",
                       fname, what, s);
        return col;
    }
    if (lua_type(L, arg) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
        if (n != 3 && n != 4)
            luaL_error(L, "%s: %s must be {r, g, b [, a]}, got a table of %d values", fname,
                       what, (int)n);
        uint8_t v[4] = {0, 0, 0, 255};
        for (int k = 0; k < n; k++) {
            lua_rawgeti(L, arg, k + 1);
            int isnum = 0;
            lua_Number x = lua_tonumberx(L, -1, &isnum);
            lua_pop(L, 1);
            if (!isnum || x != floor(x) || x < 0 || x > 255)
                luaL_error(L, "%s: %s component %d must be an integer in 0..255", fname, what,
                           k + 1);
            v[k] = (uint8_t)x;
        }
        return (AgColor){v[0], v[1], v[2], v[3]};
    }
    luaL_error(L, "%s: %s must be a colour string or {r, g, b [, a]}, got %s", fname, what,
               luaL_typename(L, arg));
    return def;
}

/* Field `key` of the options table at arg, pushed (nil when absent or no
 * table). */
static int opt_field(lua_State *L, int arg, const char *key) {
    if (lua_type(L, arg) != LUA_TTABLE) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, arg, key);
}

/* Errors on keys of the options table at arg that are not in known
 * (NULL-terminated). */
static void check_keys(lua_State *L, int arg, const char *fname, const char *const *known) {
    if (lua_isnoneornil(L, arg)) return;
    if (lua_type(L, arg) != LUA_TTABLE)
        luaL_error(L, "%s: options must be a table, got %s", fname, luaL_typename(L, arg));
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (const char *const *k = known; *k; k++)
                if (strcmp(*k, lua_tostring(L, -1)) == 0) ok = 1;
        if (!ok) {
            lua_pushvalue(L, -1);
            const char *key = luaL_tolstring(L, -1, NULL);
            luaL_error(L, "%s: unknown option '%s'", fname, key);
        }
    }
}

static double opt_number(lua_State *L, int arg, const char *key, const char *fname, double def,
                         double lo, double hi) {
    opt_field(L, arg, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        v = agl_check_finite(L, -1, fname, key);
        if (v < lo || v > hi)
            luaL_error(L, "%s: %s must be in [%f, %f], got %f", fname, key, lo, hi, v);
    }
    lua_pop(L, 1);
    return v;
}

/* A list of n coordinates from a Lua array or a tensor at arg, into a new
 * userdata (pushed, so it is collected even when a later check fails). NaN is
 * kept (a gap) when allow_nan, anything else non-finite or beyond AG_COORD_MAX
 * is an error. */
static double *check_coords(lua_State *L, int arg, const char *fname, const char *what,
                            int allow_nan, int64_t *n) {
    AgTensor *t = agl_test_tensor(L, arg);
    int64_t len;
    if (t) {
        len = ag_numel(t);
    } else if (lua_type(L, arg) == LUA_TTABLE) {
        len = (int64_t)lua_rawlen(L, arg);
    } else {
        luaL_error(L, "%s: %s must be an array of numbers or a tensor, got %s", fname, what,
                   luaL_typename(L, arg));
        return NULL;
    }
    if (len > ((int64_t)1 << 28)) luaL_error(L, "%s: %s has too many points", fname, what);
    double *v = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof(double), 0);
    if (t) {
        AgTensor flat = *t; /* iterate in logical order over any strides */
        int64_t idx[AG_MAXDIM] = {0};
        for (int64_t k = 0; k < len; k++) {
            int64_t off = 0;
            for (int d = 0; d < flat.dim; d++) off += idx[d] * flat.stride[d];
            v[k] = flat.data[off];
            for (int d = flat.dim - 1; d >= 0; d--) {
                if (++idx[d] < flat.size[d]) break;
                idx[d] = 0;
            }
        }
    } else {
        for (int64_t k = 0; k < len; k++) {
            lua_rawgeti(L, arg, (lua_Integer)k + 1);
            int isnum = 0;
            v[k] = lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                luaL_error(L, "%s: %s[%d] must be a number, got %s", fname, what, (int)k + 1,
                           luaL_typename(L, -1));
            lua_pop(L, 1);
        }
    }
    for (int64_t k = 0; k < len; k++) {
        if (isnan(v[k]) && allow_nan) continue;
        if (!isfinite(v[k]) || fabs(v[k]) > AG_COORD_MAX)
            luaL_error(L, "%s: %s[%d] = %f is not a finite coordinate within +-%f", fname, what,
                       (int)k + 1, v[k], AG_COORD_MAX);
    }
    *n = len;
    return v;
}

/* ---- the canvas
 * ------------------------------------------------------------------ */

static int l_canvas(lua_State *L) {
    int64_t w = agl_check_int(L, 1, "Canvas", "width", 1, AG_CANVAS_MAX);
    int64_t h = agl_check_int(L, 2, "Canvas", "height", 1, AG_CANVAS_MAX);
    static const char *const known[] = {"bg", NULL};
    check_keys(L, 3, "Canvas", known);
    opt_field(L, 3, "bg");
    AgColor bg = check_color(L, -1, "Canvas", "bg", (AgColor){255, 255, 255, 255});
    lua_pop(L, 1);
    LCanvas *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->c.px = NULL;
    u->c.w = u->c.h = 0;
    luaL_setmetatable(L, CANVAS_MT);
    uint8_t *px = lua_newuserdatauv(L, ag_canvas_nbytes((int)w, (int)h), 0);
    lua_setiuservalue(L, -2, 1);
    ag_canvas_init(&u->c, (int)w, (int)h, px, bg);
    return 1;
}

static int m_close(lua_State *L) {
    LCanvas *u = luaL_checkudata(L, 1, CANVAS_MT);
    u->c.px = NULL;
    u->c.w = u->c.h = 0;
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1); /* the pixels become garbage now */
    return 0;
}

static int m_tostring(lua_State *L) {
    LCanvas *u = luaL_checkudata(L, 1, CANVAS_MT);
    if (!u->c.px)
        lua_pushliteral(L, "agop.Canvas(closed)");
    else
        lua_pushfstring(L, "agop.Canvas(%dx%d)", u->c.w, u->c.h);
    return 1;
}

static int m_size(lua_State *L) {
    LCanvas *u = check_canvas(L, 1, "Canvas:size");
    lua_pushinteger(L, u->c.w);
    lua_pushinteger(L, u->c.h);
    return 2;
}

static int m_get(lua_State *L) {
    LCanvas *u = check_canvas(L, 1, "Canvas:get");
    int64_t x = agl_check_int(L, 2, "Canvas:get", "x", 0, u->c.w - 1);
    int64_t y = agl_check_int(L, 3, "Canvas:get", "y", 0, u->c.h - 1);
    uint8_t rgb[3];
    ag_canvas_get(&u->c, (int)x, (int)y, rgb);
    for (int k = 0; k < 3; k++) lua_pushinteger(L, rgb[k]);
    return 3;
}

static int m_rect(lua_State *L) {
    const char *fn = "Canvas:rect";
    LCanvas *u = check_canvas(L, 1, fn);
    double x = check_coord(L, 2, fn, "x"), y = check_coord(L, 3, fn, "y");
    double w = check_coord(L, 4, fn, "w"), h = check_coord(L, 5, fn, "h");
    AgColor black = {0, 0, 0, 255}, none = {0, 0, 0, 0};
    if (lua_type(L, 6) == LUA_TTABLE && lua_rawlen(L, 6) == 0) {
        static const char *const known[] = {"fill", "stroke", "width", NULL};
        check_keys(L, 6, fn, known);
        opt_field(L, 6, "fill");
        AgColor fill = check_color(L, -1, fn, "fill", none);
        opt_field(L, 6, "stroke");
        AgColor stroke = check_color(L, -1, fn, "stroke", none);
        double lw = opt_number(L, 6, "width", fn, 1, 1e-3, 1000);
        if (fill.a) ag_canvas_rect(&u->c, x, y, w, h, fill);
        if (stroke.a) ag_canvas_rect_outline(&u->c, x, y, w, h, lw, stroke);
    } else {
        ag_canvas_rect(&u->c, x, y, w, h, check_color(L, 6, fn, "color", black));
    }
    lua_settop(L, 1);
    return 1;
}

static double check_width(lua_State *L, int arg, const char *fname) {
    if (lua_isnoneornil(L, arg)) return 1;
    double w = agl_check_finite(L, arg, fname, "width");
    if (!(w > 0 && w <= 1000))
        luaL_error(L, "%s: width must be in (0, 1000], got %f", fname, w);
    return w;
}

static int m_line(lua_State *L) {
    const char *fn = "Canvas:line";
    LCanvas *u = check_canvas(L, 1, fn);
    double x0 = check_coord(L, 2, fn, "x0"), y0 = check_coord(L, 3, fn, "y0");
    double x1 = check_coord(L, 4, fn, "x1"), y1 = check_coord(L, 5, fn, "y1");
    AgColor col = check_color(L, 6, fn, "color", (AgColor){0, 0, 0, 255});
    double w = check_width(L, 7, fn);
    AgError err = AG_ERROR_INIT;
    if (ag_canvas_line(&u->c, x0, y0, x1, y1, w, col, &err)) return agl_error(L, &err);
    lua_settop(L, 1);
    return 1;
}

static int m_polyline(lua_State *L) {
    const char *fn = "Canvas:polyline";
    LCanvas *u = check_canvas(L, 1, fn);
    AgColor col = check_color(L, 4, fn, "color", (AgColor){0, 0, 0, 255});
    double w = check_width(L, 5, fn);
    int64_t nx, ny;
    double *xs = check_coords(L, 2, fn, "xs", 1, &nx);
    double *ys = check_coords(L, 3, fn, "ys", 1, &ny);
    if (nx != ny) luaL_error(L, "%s: xs has %d points but ys has %d", fn, (int)nx, (int)ny);
    AgError err = AG_ERROR_INIT;
    if (ag_canvas_polyline(&u->c, xs, ys, nx, w, col, &err)) return agl_error(L, &err);
    lua_settop(L, 1);
    return 1;
}

static int m_polygon(lua_State *L) {
    const char *fn = "Canvas:polygon";
    LCanvas *u = check_canvas(L, 1, fn);
    AgColor col = check_color(L, 4, fn, "color", (AgColor){0, 0, 0, 255});
    int64_t nx, ny;
    double *xs = check_coords(L, 2, fn, "xs", 0, &nx);
    double *ys = check_coords(L, 3, fn, "ys", 0, &ny);
    if (nx != ny) luaL_error(L, "%s: xs has %d points but ys has %d", fn, (int)nx, (int)ny);
    if (nx < 3) luaL_error(L, "%s: a polygon needs at least 3 points, got %d", fn, (int)nx);
    AgError err = AG_ERROR_INIT;
    if (ag_canvas_polygon(&u->c, xs, ys, nx, col, &err)) return agl_error(L, &err);
    lua_settop(L, 1);
    return 1;
}

static int m_marker(lua_State *L) {
    const char *fn = "Canvas:marker";
    LCanvas *u = check_canvas(L, 1, fn);
    double x = check_coord(L, 2, fn, "x"), y = check_coord(L, 3, fn, "y");
    const char *shape = luaL_optstring(L, 4, "circle");
    int m = ag_marker_find(shape);
    if (m < 0)
        luaL_error(L,
                   "%s: unknown marker '%s' (circle, square, cross, plus, diamond, "
                   "triangle)",
                   fn, shape);
    double size = 6;
    if (!lua_isnoneornil(L, 5)) {
        size = agl_check_finite(L, 5, fn, "size");
        if (!(size > 0 && size <= 1000))
            luaL_error(L, "%s: size must be in (0, 1000], got %f", fn, size);
    }
    AgColor col = check_color(L, 6, fn, "color", (AgColor){0x1f, 0x77, 0xb4, 255});
    AgError err = AG_ERROR_INIT;
    if (ag_canvas_marker(&u->c, x, y, (AgMarker)m, size, col, &err)) return agl_error(L, &err);
    lua_settop(L, 1);
    return 1;
}

/* ---- text
 * ------------------------------------------------------------------------ */

static const char *const text_keys[] = {"color", "scale",  "bold",   "rotate",
                                        "align", "valign", "smooth", NULL};

static int opt_bool(lua_State *L, int arg, const char *key, int def) {
    opt_field(L, arg, key);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The text style from the options at arg (absent: black, scale 1, upright). */
static AgTextStyle check_text_style(lua_State *L, int arg, const char *fn) {
    check_keys(L, arg, fn, text_keys);
    AgTextStyle st;
    opt_field(L, arg, "color");
    st.color = check_color(L, -1, fn, "color", (AgColor){0, 0, 0, 255});
    lua_pop(L, 1);
    opt_field(L, arg, "scale");
    st.scale = lua_isnil(L, -1) ? 1 : (int)agl_check_int(L, -1, fn, "scale", 1, 16);
    lua_pop(L, 1);
    opt_field(L, arg, "rotate");
    st.rotate = lua_isnil(L, -1) ? 0 : (int)agl_check_int(L, -1, fn, "rotate", 0, 90);
    lua_pop(L, 1);
    if (st.rotate != 0 && st.rotate != 90)
        luaL_error(L, "%s: rotate must be 0 or 90, got %d", fn, st.rotate);
    st.bold = opt_bool(L, arg, "bold", 0);
    st.smooth = opt_bool(L, arg, "smooth", 1);
    return st;
}

static int text_size_impl(lua_State *L, int sarg, int optarg, const char *fn) {
    const char *s = luaL_checkstring(L, sarg);
    static const char *const known[] = {"scale", "rotate", "bold", NULL};
    check_keys(L, optarg, fn, known);
    opt_field(L, optarg, "scale");
    int scale = lua_isnil(L, -1) ? 1 : (int)agl_check_int(L, -1, fn, "scale", 1, 16);
    lua_pop(L, 1);
    opt_field(L, optarg, "rotate");
    int rot = lua_isnil(L, -1) ? 0 : (int)agl_check_int(L, -1, fn, "rotate", 0, 90);
    lua_pop(L, 1);
    int w, h;
    ag_text_size(s, scale, &w, &h);
    lua_pushinteger(L, rot == 90 ? h : w);
    lua_pushinteger(L, rot == 90 ? w : h);
    return 2;
}

static int m_text_size(lua_State *L) {
    check_canvas(L, 1, "Canvas:text_size");
    return text_size_impl(L, 2, 3, "Canvas:text_size");
}

static int l_text_size(lua_State *L) {
    return text_size_impl(L, 1, 2, "text_size");
}

static int m_text(lua_State *L) {
    const char *fn = "Canvas:text";
    LCanvas *u = check_canvas(L, 1, fn);
    double x = check_coord(L, 2, fn, "x"), y = check_coord(L, 3, fn, "y");
    size_t len;
    const char *s = luaL_checklstring(L, 4, &len);
    if (strlen(s) != len) luaL_error(L, "%s: the text contains a NUL byte", fn);
    AgTextStyle st = check_text_style(L, 5, fn);
    int w, h;
    ag_text_size(s, st.scale, &w, &h);
    if (st.rotate) {
        int t = w;
        w = h, h = t;
    }
    opt_field(L, 5, "align");
    const char *al = lua_isnil(L, -1) ? "left" : luaL_checkstring(L, -1);
    if (strcmp(al, "center") == 0 || strcmp(al, "centre") == 0)
        x -= w / 2.0;
    else if (strcmp(al, "right") == 0)
        x -= w;
    else if (strcmp(al, "left") != 0)
        luaL_error(L, "%s: align must be 'left', 'center' or 'right', got '%s'", fn, al);
    opt_field(L, 5, "valign");
    const char *va = lua_isnil(L, -1) ? "top" : luaL_checkstring(L, -1);
    if (strcmp(va, "middle") == 0 || strcmp(va, "center") == 0)
        y -= h / 2.0;
    else if (strcmp(va, "bottom") == 0)
        y -= h;
    else if (strcmp(va, "top") != 0)
        luaL_error(L, "%s: valign must be 'top', 'middle' or 'bottom', got '%s'", fn, va);
    int ix = (int)floor(x + 0.5), iy = (int)floor(y + 0.5);
    ag_canvas_text(&u->c, ix, iy, s, &st);
    lua_pushinteger(L, ix);
    lua_pushinteger(L, iy);
    lua_pushinteger(L, w);
    lua_pushinteger(L, h);
    return 4;
}

/* ---- matrices
 * -------------------------------------------------------------------- */

static int m_blit(lua_State *L) {
    const char *fn = "Canvas:blit";
    LCanvas *u = check_canvas(L, 1, fn);
    AgTensor *t = agl_check_tensor(L, 2);
    int ch;
    int64_t rows, cols;
    if (t->dim == 2) {
        ch = 1, rows = t->size[0], cols = t->size[1];
    } else if (t->dim == 3 && (t->size[0] == 1 || t->size[0] == 3)) {
        ch = (int)t->size[0], rows = t->size[1], cols = t->size[2];
    } else {
        return luaL_error(L,
                          "%s: expected a matrix (rows x cols) or an image (1 or 3 x rows "
                          "x cols), got %s",
                          fn, agl_shape(t, 0));
    }
    if (rows < 1 || cols < 1)
        return luaL_error(L, "%s: cannot draw the empty %s tensor", fn, agl_shape(t, 0));
    int64_t x = agl_check_int(L, 3, fn, "x", -AG_CANVAS_MAX, 2 * AG_CANVAS_MAX);
    int64_t y = agl_check_int(L, 4, fn, "y", -AG_CANVAS_MAX, 2 * AG_CANVAS_MAX);
    int64_t w = agl_check_int(L, 5, fn, "w", 0, 2 * AG_CANVAS_MAX);
    int64_t h = agl_check_int(L, 6, fn, "h", 0, 2 * AG_CANVAS_MAX);
    static const char *const known[] = {"cmap",   "vmin", "vmax", "symmetric",
                                        "interp", "nan",  NULL};
    check_keys(L, 7, fn, known);
    AgBlit b;
    opt_field(L, 7, "cmap");
    const char *cm = lua_isnil(L, -1) ? "viridis" : luaL_checkstring(L, -1);
    if (ag_colormap_find(cm, &b.cmap) != 0)
        return luaL_error(L,
                          "%s: unknown colormap '%s' (viridis, magma, gray, RdBu, each with "
                          "an optional _r)",
                          fn, cm);
    opt_field(L, 7, "interp");
    const char *ip = lua_isnil(L, -1) ? "nearest" : luaL_checkstring(L, -1);
    if (strcmp(ip, "nearest") == 0)
        b.interp = AG_INTERP_NEAREST;
    else if (strcmp(ip, "bilinear") == 0)
        b.interp = AG_INTERP_BILINEAR;
    else if (strcmp(ip, "area") == 0)
        b.interp = AG_INTERP_AREA;
    else
        return luaL_error(L, "%s: interp must be 'nearest', 'bilinear' or 'area', got '%s'", fn,
                          ip);
    opt_field(L, 7, "nan");
    b.nan_color = check_color(L, -1, fn, "nan", AG_NAN_COLOR);
    int sym = opt_bool(L, 7, "symmetric", 0);
    opt_field(L, 7, "vmin");
    int has_lo = !lua_isnil(L, -1);
    double lo = has_lo ? agl_check_finite(L, -1, fn, "vmin") : 0;
    opt_field(L, 7, "vmax");
    int has_hi = !lua_isnil(L, -1);
    double hi = has_hi ? agl_check_finite(L, -1, fn, "vmax") : 0;
    t = agl_check_contiguous(L, 2);
    if (!has_lo || !has_hi) {
        double dlo, dhi;
        if (ag_finite_range(t->data, ag_numel(t), &dlo, &dhi, NULL, NULL) == 0)
            dlo = 0, dhi = 1;
        if (sym) {
            double m = fmax(fabs(dlo), fabs(dhi));
            if (has_lo) m = fmax(m, fabs(lo));
            if (has_hi) m = fmax(m, fabs(hi));
            dlo = -m, dhi = m;
        }
        if (!has_lo) lo = has_hi ? fmin(dlo, hi) : dlo;
        if (!has_hi) hi = has_lo ? fmax(dhi, lo) : dhi;
    } else if (sym) {
        double m = fmax(fabs(lo), fabs(hi));
        lo = -m, hi = m;
    }
    if (lo > hi) return luaL_error(L, "%s: vmin %f is larger than vmax %f", fn, lo, hi);
    b.vmin = lo, b.vmax = hi;
    AgError err = AG_ERROR_INIT;
    if (ag_canvas_blit(&u->c, t->data, ch, rows, cols, (int)x, (int)y, (int)w, (int)h, &b,
                       &err))
        return agl_error(L, &err);
    lua_pushnumber(L, lo);
    lua_pushnumber(L, hi);
    return 2;
}

static int m_clip(lua_State *L) {
    const char *fn = "Canvas:clip";
    LCanvas *u = check_canvas(L, 1, fn);
    if (lua_isnoneornil(L, 2)) {
        ag_canvas_unclip(&u->c);
    } else {
        int64_t x = agl_check_int(L, 2, fn, "x", -AG_CANVAS_MAX, 2 * AG_CANVAS_MAX);
        int64_t y = agl_check_int(L, 3, fn, "y", -AG_CANVAS_MAX, 2 * AG_CANVAS_MAX);
        int64_t w = agl_check_int(L, 4, fn, "w", 0, 2 * AG_CANVAS_MAX);
        int64_t h = agl_check_int(L, 5, fn, "h", 0, 2 * AG_CANVAS_MAX);
        ag_canvas_clip(&u->c, (int)x, (int)y, (int)w, (int)h);
    }
    lua_settop(L, 1);
    return 1;
}

static int m_save(lua_State *L) {
    LCanvas *u = check_canvas(L, 1, "Canvas:save");
    const char *path = luaL_checkstring(L, 2);
    AgError err = AG_ERROR_INIT;
    if (ag_png_write(&u->c, path, &err)) return luaL_error(L, "Canvas:save: %s", err.msg);
    lua_settop(L, 1);
    return 1;
}

/* ---- module functions
 * ------------------------------------------------------------ */

static int px_get(lua_State *L) {
    const uint8_t *px = lua_touserdata(L, lua_upvalueindex(1));
    int w = (int)lua_tointeger(L, lua_upvalueindex(2));
    int h = (int)lua_tointeger(L, lua_upvalueindex(3));
    int ch = (int)lua_tointeger(L, lua_upvalueindex(4));
    int64_t x = agl_check_int(L, 1, "read_png pixel", "x", 0, w - 1);
    int64_t y = agl_check_int(L, 2, "read_png pixel", "y", 0, h - 1);
    const uint8_t *p = px + ((size_t)y * (size_t)w + (size_t)x) * (size_t)ch;
    for (int k = 0; k < ch; k++) lua_pushinteger(L, p[k]);
    return ch;
}

static int l_read_png(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    AgError err = AG_ERROR_INIT;
    int w, h, ch;
    if (ag_png_info(path, &w, &h, &ch, &err)) return luaL_error(L, "read_png: %s", err.msg);
    size_t n = (size_t)w * (size_t)h * (size_t)ch;
    uint8_t *px = lua_newuserdatauv(L, n ? n : 1, 0);
    int px_idx = lua_gettop(L);
    if (ag_png_read(path, px, n, &w, &h, &ch, &err))
        return luaL_error(L, "read_png: %s", err.msg);
    lua_pushinteger(L, w);
    lua_pushinteger(L, h);
    lua_pushinteger(L, ch);
    lua_pushvalue(L, px_idx);
    lua_pushinteger(L, w);
    lua_pushinteger(L, h);
    lua_pushinteger(L, ch);
    lua_pushcclosure(L, px_get, 4);
    AgTensor *t = agl_push_tensor(L, "read_png", 3, (int64_t[]){h, w, ch});
    for (size_t k = 0; k < n; k++) t->data[k] = px[k];
    return 5;
}

/* lo, hi, nfinite, nnan, ninf of a tensor's values (lo = hi = 0 with no finite value) */
static int l_finite_range(lua_State *L) {
    agl_check_tensor(L, 1);
    AgTensor *t = agl_check_contiguous(L, 1);
    double lo, hi;
    int64_t nnan, ninf, nf = ag_finite_range(t->data, ag_numel(t), &lo, &hi, &nnan, &ninf);
    lua_pushnumber(L, lo);
    lua_pushnumber(L, hi);
    lua_pushinteger(L, nf);
    lua_pushinteger(L, nnan);
    lua_pushinteger(L, ninf);
    return 5;
}

static int l_colormap(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    AgColormap cm;
    if (ag_colormap_find(name, &cm) != 0)
        return luaL_error(L,
                          "colormap: unknown colormap '%s' (viridis, magma, gray, RdBu, "
                          "each with an optional _r)",
                          name);
    int isnum = 0;
    double t = lua_tonumberx(L, 2, &isnum);
    if (!isnum)
        return luaL_error(L, "colormap: t must be a number, got %s", luaL_typename(L, 2));
    uint8_t rgb[3];
    ag_colormap_rgb(cm, t, rgb);
    for (int k = 0; k < 3; k++) lua_pushinteger(L, rgb[k]);
    return 3;
}

void agl_open_canvas(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"size", m_size},           {"get", m_get},
        {"rect", m_rect},           {"line", m_line},
        {"polyline", m_polyline},   {"polygon", m_polygon},
        {"marker", m_marker},       {"text", m_text},
        {"text_size", m_text_size}, {"blit", m_blit},
        {"clip", m_clip},           {"save", m_save},
        {"close", m_close},         {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", m_close},
        {"__close", m_close},
        {"__tostring", m_tostring},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"Canvas", l_canvas},       {"read_png", l_read_png},         {"colormap", l_colormap},
        {"text_size", l_text_size}, {"finite_range", l_finite_range}, {NULL, NULL},
    };
    agl_new_type(L, CANVAS_MT, methods, meta);
    luaL_setfuncs(L, funcs, 0);
}
