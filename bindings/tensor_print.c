/* tensor_print.c - tostring(t): the Tensor's __tostring, Torch7's layout (one shared
 * scale factor, integers without decimals, large tensors elided to their edges). */
#include "agl.h"

#include <math.h>
#include <stdio.h>

static void fmt_value(char *buf, size_t n, double v, double scale, int integral, int width) {
    if (integral)
        snprintf(buf, n, "%*.0f", width, v);
    else
        snprintf(buf, n, "%*.4f", width, v / scale);
}

typedef struct {
    double scale;
    int integral, width;
} PrintFmt;

static void print_fmt(const AgTensor *t, PrintFmt *f) {
    int64_t n = ag_numel(t);
    double mx = 0;
    int integral = 1;
    AgTensor c = *t;
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0, lin = i;
        for (int d = c.dim - 1; d >= 0; d--) {
            off += (lin % c.size[d]) * c.stride[d];
            lin /= c.size[d];
        }
        double v = t->data[off];
        if (!isfinite(v)) continue;
        if (fabs(v) > mx) mx = fabs(v);
        if (v != floor(v)) integral = 0;
    }
    f->integral = integral && mx < 1e9;
    f->scale = 1;
    if (!f->integral && mx > 0 && (mx >= 1e3 || mx < 1e-2))
        f->scale = pow(10, floor(log10(mx)));
    if (f->integral)
        f->width = (int)(mx > 0 ? floor(log10(mx)) + 2 : 2);
    else
        f->width = 8;
    if (f->integral && f->width < 2) f->width = 2;
}

#define EDGE 3
static int elide(const AgTensor *t) {
    return ag_numel(t) > 1000;
}

static void add_row(luaL_Buffer *b, const float *p, int64_t len, int64_t st, const PrintFmt *f,
                    int el) {
    char buf[64];
    for (int64_t j = 0; j < len; j++) {
        if (el && len > 2 * EDGE && j == EDGE) {
            luaL_addstring(b, "  ...");
            j = len - EDGE - 1;
            continue;
        }
        fmt_value(buf, sizeof buf, p[j * st], f->scale, f->integral, f->width);
        luaL_addstring(b, j ? " " : "");
        luaL_addstring(b, buf);
    }
    luaL_addchar(b, '\n');
}

static void add_matrix(luaL_Buffer *b, const float *p, const AgTensor *t, int d,
                       const PrintFmt *f, int el) {
    int64_t rows = t->size[d], cols = t->size[d + 1];
    for (int64_t i = 0; i < rows; i++) {
        if (el && rows > 2 * EDGE && i == EDGE) {
            luaL_addstring(b, " ...\n");
            i = rows - EDGE - 1;
            continue;
        }
        add_row(b, p + i * t->stride[d], cols, t->stride[d + 1], f, el);
    }
}

static void add_slices(luaL_Buffer *b, const float *p, const AgTensor *t, int d, int64_t *idx,
                       const PrintFmt *f, int el) {
    if (d == t->dim - 2) {
        char head[160];
        size_t used = 0;
        used += (size_t)snprintf(head, sizeof head, "(");
        for (int k = 0; k < d; k++)
            used += (size_t)snprintf(head + used, sizeof head - used, "%lld,",
                                     (long long)idx[k] + 1);
        snprintf(head + used, sizeof head - used, ".,.) = \n");
        luaL_addstring(b, head);
        add_matrix(b, p, t, d, f, el);
        luaL_addchar(b, '\n');
        return;
    }
    for (int64_t i = 0; i < t->size[d]; i++) {
        if (el && t->size[d] > 2 * EDGE && i == EDGE) {
            luaL_addstring(b, "...\n\n");
            i = t->size[d] - EDGE - 1;
            continue;
        }
        idx[d] = i;
        add_slices(b, p + i * t->stride[d], t, d + 1, idx, f, el);
    }
}

static int l_tostring(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int64_t n = ag_numel(t);
    if (n > 0) {
        PrintFmt f;
        print_fmt(t, &f);
        int el = elide(t);
        if (f.scale != 1) {
            char s[48];
            snprintf(s, sizeof s, "%g *\n", f.scale);
            luaL_addstring(&b, s);
        }
        if (t->dim == 1) {
            char buf[64];
            for (int64_t i = 0; i < t->size[0]; i++) {
                if (el && t->size[0] > 2 * EDGE && i == EDGE) {
                    luaL_addstring(&b, " ...\n");
                    i = t->size[0] - EDGE - 1;
                    continue;
                }
                fmt_value(buf, sizeof buf, t->data[i * t->stride[0]], f.scale, f.integral,
                          f.width);
                luaL_addstring(&b, buf);
                luaL_addchar(&b, '\n');
            }
        } else if (t->dim == 2) {
            add_matrix(&b, t->data, t, 0, &f, el);
        } else if (t->dim > 2) {
            int64_t idx[AG_MAXDIM] = {0};
            add_slices(&b, t->data, t, 0, idx, &f, el);
        }
    }
    luaL_addstring(&b, "[agop.Tensor of size ");
    luaL_addstring(&b, n == 0 && t->dim == 0 ? "scalar" : agl_shape(t, 0));
    luaL_addstring(&b, "]");
    luaL_pushresult(&b);
    return 1;
}

/* Sets __tostring on the Tensor metatable (bindings/tensor.c creates it, and opens
 * first). */
void agl_open_tensor_print(lua_State *L) {
    luaL_getmetatable(L, AGL_TENSOR);
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}
