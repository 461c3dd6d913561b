/* tensor.c - the agop.Tensor type: creation, shape, views, element access, math and
 * metamethods; arithmetic, reductions and products are in tensor_math.c. The userdata's memory
 * and the shared checks are in agl.c, printing in tensor_print.c, generators in generator.c;
 * loops over elements live in engine/tensor.c. */
#include "agl.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------- creation ---------- */

/* Reads sizes from args [first, top] (numbers) or a single table of numbers. */
static int read_sizes(lua_State *L, int first, const char *fname, int64_t *size) {
    int top = lua_gettop(L), dim = 0;
    if (first <= top && lua_istable(L, first)) {
        dim = (int)lua_rawlen(L, first);
        if (dim > AG_MAXDIM)
            return luaL_error(L, "%s: at most %d dimensions, got %d", fname, AG_MAXDIM, dim);
        for (int d = 0; d < dim; d++) {
            lua_rawgeti(L, first, d + 1);
            size[d] = agl_check_int(L, -1, fname, "size", 0, AG_MAXNUMEL);
            lua_pop(L, 1);
        }
        if (top > first)
            return luaL_error(L, "%s: sizes given as a table take no more args", fname);
        return dim;
    }
    if (top - first + 1 > AG_MAXDIM)
        return luaL_error(L, "%s: at most %d dimensions, got %d", fname, AG_MAXDIM,
                          top - first + 1);
    for (int i = first; i <= top; i++)
        size[dim++] = agl_check_int(L, i, fname, "size", 0, AG_MAXNUMEL);
    if (dim == 0) return luaL_error(L, "%s: sizes expected (e.g. %s(2, 3))", fname, fname);
    return dim;
}

static int fill_new(lua_State *L, const char *fname, int first, float v) {
    int64_t size[AG_MAXDIM];
    int dim = read_sizes(L, first, fname, size);
    AgTensor *t = agl_push_tensor(L, fname, dim, size);
    if (v != 0) ag_fill(t, v);
    return 1;
}

static int l_zeros(lua_State *L) {
    return fill_new(L, "zeros", 1, 0);
}
static int l_ones(lua_State *L) {
    return fill_new(L, "ones", 1, 1);
}
static int l_full(lua_State *L) {
    float v = (float)luaL_checknumber(L, 1);
    return fill_new(L, "full", 2, v);
}

static int l_empty_like(lua_State *L) {
    AgTensor *a = agl_check_tensor(L, 1);
    agl_push_tensor(L, "zeros_like", a->dim, a->size);
    return 1;
}

/* arange(n) -> 0..n-1; arange(a, b[, step]) -> a, a+step, ... < b */
static int l_arange(lua_State *L) {
    double a = 0, b, step = 1;
    if (lua_gettop(L) <= 1)
        b = agl_check_finite(L, 1, "arange", "end");
    else {
        a = agl_check_finite(L, 1, "arange", "start");
        b = agl_check_finite(L, 2, "arange", "end");
        if (!lua_isnoneornil(L, 3)) step = agl_check_finite(L, 3, "arange", "step");
    }
    if (step == 0) return luaL_error(L, "arange: step must not be 0");
    double cnt = ceil((b - a) / step);
    if (cnt < 0) cnt = 0;
    if (cnt > (double)AG_MAXNUMEL) return luaL_error(L, "arange: too many elements");
    int64_t n = (int64_t)cnt;
    AgTensor *t = agl_push_tensor(L, "arange", 1, &n);
    for (int64_t i = 0; i < n; i++) t->data[i] = (float)(a + step * (double)i);
    return 1;
}

static int random_new(lua_State *L, const char *fname, int normal) {
    AgRng *g = agl_test_generator(L, 1);
    int first = g ? 2 : 1;
    if (!g) g = agl_default_generator(L);
    int64_t size[AG_MAXDIM];
    int dim = read_sizes(L, first, fname, size);
    AgTensor *t = agl_push_tensor(L, fname, dim, size);
    if (normal)
        ag_rng_fill_normal(g, t->data, ag_numel(t), 0, 1);
    else
        ag_rng_fill_uniform(g, t->data, ag_numel(t), 0, 1);
    return 1;
}

static int l_rand(lua_State *L) {
    return random_new(L, "rand", 0);
}
static int l_randn(lua_State *L) {
    return random_new(L, "randn", 1);
}

/* t:normal_(mean, std[, g]) and t:uniform_(lo, hi[, g]) fill in place */
static int fill_random(lua_State *L, const char *fname, int normal) {
    AgTensor *t = agl_check_tensor(L, 1);
    double a = agl_check_finite(L, 2, fname, normal ? "mean" : "lo");
    double b = agl_check_finite(L, 3, fname, normal ? "std" : "hi");
    AgRng *g = agl_opt_generator(L, 4, fname);
    if (!ag_is_contiguous(t)) return luaL_error(L, "%s: tensor must be contiguous", fname);
    if (normal)
        ag_rng_fill_normal(g, t->data, ag_numel(t), (float)a, (float)b);
    else
        ag_rng_fill_uniform(g, t->data, ag_numel(t), (float)a, (float)b);
    lua_settop(L, 1);
    return 1;
}
static int m_normal_(lua_State *L) {
    return fill_random(L, "normal_", 1);
}
static int m_uniform_(lua_State *L) {
    return fill_random(L, "uniform_", 0);
}

/* Nested table -> sizes (walks the first element of each level). */
static int nested_sizes(lua_State *L, int idx, int64_t *size, int dim) {
    if (!lua_istable(L, idx)) return dim;
    if (dim >= AG_MAXDIM) return luaL_error(L, "tensor: nesting deeper than %d", AG_MAXDIM);
    size[dim] = (int64_t)lua_rawlen(L, idx);
    if (size[dim] == 0) return dim + 1;
    lua_rawgeti(L, idx, 1);
    int r = nested_sizes(L, lua_gettop(L), size, dim + 1);
    lua_pop(L, 1);
    return r;
}

static void nested_fill(lua_State *L, int idx, const int64_t *size, int dim, int d,
                        float **out) {
    if (d == dim) {
        int isnum;
        lua_Number x = lua_tonumberx(L, idx, &isnum);
        if (!isnum) luaL_error(L, "tensor: expected a number, got %s", agl_typename(L, idx));
        *(*out)++ = (float)x;
        return;
    }
    if (!lua_istable(L, idx) || (int64_t)lua_rawlen(L, idx) != size[d])
        luaL_error(L, "tensor: ragged table (dimension %d should have %d elements)", d + 1,
                   (int)size[d]);
    for (int64_t i = 1; i <= size[d]; i++) {
        lua_rawgeti(L, idx, i);
        nested_fill(L, lua_gettop(L), size, dim, d + 1, out);
        lua_pop(L, 1);
    }
}

static int l_tensor(lua_State *L) {
    AgTensor *src = agl_test_tensor(L, 1);
    if (src) {
        agl_push_copy(L, src);
        return 1;
    }
    if (lua_isnumber(L, 1)) {
        int64_t one = 1;
        AgTensor *t = agl_push_tensor(L, "tensor", 1, &one);
        t->data[0] = (float)lua_tonumber(L, 1);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t size[AG_MAXDIM];
    int dim = nested_sizes(L, 1, size, 0);
    AgTensor *t = agl_push_tensor(L, "tensor", dim, size);
    float *p = t->data;
    nested_fill(L, 1, size, dim, 0, &p);
    return 1;
}

/* from_table(flat, sizes...) */
static int l_from_table(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t size[AG_MAXDIM];
    int64_t n = (int64_t)lua_rawlen(L, 1);
    int dim = lua_gettop(L) >= 2 ? read_sizes(L, 2, "from_table", size) : (size[0] = n, 1);
    lua_settop(L, 1);
    AgTensor *t = agl_push_tensor(L, "from_table", dim, size);
    if (ag_numel(t) != n)
        return luaL_error(L, "from_table: %d values do not fill a %s tensor", (int)n,
                          agl_shape(t, 0));
    for (int64_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        int isnum;
        lua_Number x = lua_tonumberx(L, -1, &isnum);
        if (!isnum) return luaL_error(L, "from_table: element %d is not a number", (int)i + 1);
        t->data[i] = (float)x;
        lua_pop(L, 1);
    }
    return 1;
}

static int l_is_tensor(lua_State *L) {
    lua_pushboolean(L, agl_test_tensor(L, 1) != NULL);
    return 1;
}

/* ---------- shape and views ---------- */

static int m_size(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, (lua_Integer)t->size[agl_check_dim(L, 2, t, "size")]);
        return 1;
    }
    lua_createtable(L, t->dim, 0);
    for (int d = 0; d < t->dim; d++) {
        lua_pushinteger(L, (lua_Integer)t->size[d]);
        lua_rawseti(L, -2, d + 1);
    }
    return 1;
}

static int m_stride(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, (lua_Integer)t->stride[agl_check_dim(L, 2, t, "stride")]);
        return 1;
    }
    lua_createtable(L, t->dim, 0);
    for (int d = 0; d < t->dim; d++) {
        lua_pushinteger(L, (lua_Integer)t->stride[d]);
        lua_rawseti(L, -2, d + 1);
    }
    return 1;
}

static int m_dim(lua_State *L) {
    lua_pushinteger(L, agl_check_tensor(L, 1)->dim);
    return 1;
}

static int m_numel(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)ag_numel(agl_check_tensor(L, 1)));
    return 1;
}

static int m_is_contiguous(lua_State *L) {
    lua_pushboolean(L, ag_is_contiguous(agl_check_tensor(L, 1)));
    return 1;
}

static int m_contiguous(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (ag_is_contiguous(t))
        lua_settop(L, 1);
    else
        agl_push_copy(L, t);
    return 1;
}

static int m_clone(lua_State *L) {
    agl_push_copy(L, agl_check_tensor(L, 1));
    return 1;
}

/* view/reshape: one size may be -1 (inferred). view needs a contiguous tensor. */
static int reshape_impl(lua_State *L, const char *fname, int must_view) {
    AgTensor *t = agl_check_tensor(L, 1);
    int64_t size[AG_MAXDIM];
    int top = lua_gettop(L), dim = 0, infer = -1;
    int tbl = top == 2 && lua_istable(L, 2);
    int count = tbl ? (int)lua_rawlen(L, 2) : top - 1;
    if (count < 1 || count > AG_MAXDIM)
        return luaL_error(L, "%s: between 1 and %d sizes expected", fname, AG_MAXDIM);
    int64_t prod = 1;
    for (int i = 0; i < count; i++) {
        if (tbl)
            lua_rawgeti(L, 2, i + 1);
        else
            lua_pushvalue(L, i + 2);
        int64_t s = agl_check_int(L, -1, fname, "size", -1, AG_MAXNUMEL);
        lua_pop(L, 1);
        if (s == -1) {
            if (infer >= 0) return luaL_error(L, "%s: only one size may be -1", fname);
            infer = dim;
        } else if (ag_mul_size(prod, s, &prod) != 0 || prod > AG_MAXNUMEL) {
            return luaL_error(L, "%s: sizes too large", fname);
        }
        size[dim++] = s;
    }
    int64_t n = ag_numel(t);
    if (infer >= 0) {
        if (prod == 0 || n % prod != 0)
            return luaL_error(L, "%s: cannot infer -1 for %s into %d elements", fname,
                              agl_shape(t, 0), (int)n);
        size[infer] = n / prod;
        prod = n;
    }
    if (prod != n)
        return luaL_error(L, "%s: cannot reshape %s (%d elements) into %d elements", fname,
                          agl_shape(t, 0), (int)n, (int)prod);
    AgError err = AG_ERROR_INIT; /* with a size 0, the others must still be bounded */
    if (ag_check_sizes(dim, size, &n, &err) != 0)
        return luaL_error(L, "%s: %s", fname, err.msg);
    if (!ag_is_contiguous(t)) {
        if (must_view)
            return luaL_error(L,
                              "%s: tensor %s is not contiguous (use reshape or "
                              ":contiguous())",
                              fname, agl_shape(t, 0));
        agl_push_copy(L, t);
        lua_replace(L, 1);
        t = agl_check_tensor(L, 1);
    }
    AgTensor v = *t;
    v.dim = dim;
    for (int d = 0; d < dim; d++) v.size[d] = size[d];
    ag_set_contiguous_strides(&v);
    agl_push_view(L, 1, &v);
    return 1;
}
static int m_view(lua_State *L) {
    return reshape_impl(L, "view", 1);
}
static int m_reshape(lua_State *L) {
    return reshape_impl(L, "reshape", 0);
}

static int m_transpose(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    int a = agl_check_dim(L, 2, t, "transpose"), b = agl_check_dim(L, 3, t, "transpose");
    AgTensor v = *t;
    v.size[a] = t->size[b], v.size[b] = t->size[a];
    v.stride[a] = t->stride[b], v.stride[b] = t->stride[a];
    agl_push_view(L, 1, &v);
    return 1;
}

static int m_t(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (t->dim != 2) return luaL_error(L, "t: expects a 2-D tensor, got %s", agl_shape(t, 0));
    AgTensor v = *t;
    v.size[0] = t->size[1], v.size[1] = t->size[0];
    v.stride[0] = t->stride[1], v.stride[1] = t->stride[0];
    agl_push_view(L, 1, &v);
    return 1;
}

static int m_narrow(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    int d = agl_check_dim(L, 2, t, "narrow");
    int64_t i = agl_check_int(L, 3, "narrow", "start", 1, t->size[d] + 1);
    int64_t n = agl_check_int(L, 4, "narrow", "length", 0, t->size[d] - i + 1);
    AgTensor v = *t;
    v.data = t->data + (i - 1) * t->stride[d];
    v.size[d] = n;
    agl_push_view(L, 1, &v);
    return 1;
}

static void push_select(lua_State *L, int idx, const AgTensor *t, int d, int64_t i) {
    AgTensor v = *t;
    v.data = t->data + i * t->stride[d];
    for (int k = d; k < t->dim - 1; k++) {
        v.size[k] = t->size[k + 1];
        v.stride[k] = t->stride[k + 1];
    }
    v.dim = t->dim - 1;
    agl_push_view(L, idx, &v);
}

static int m_select(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    int d = agl_check_dim(L, 2, t, "select");
    if (t->size[d] == 0) return luaL_error(L, "select: dimension %d is empty", d + 1);
    int64_t i = agl_check_int(L, 3, "select", "index", 1, t->size[d]);
    if (t->dim == 1) {
        lua_pushnumber(L, t->data[(i - 1) * t->stride[0]]);
        return 1;
    }
    push_select(L, 1, t, d, i - 1);
    return 1;
}

static int m_copy(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1), *s = agl_check_tensor(L, 2);
    if (ag_numel(t) != ag_numel(s))
        return luaL_error(L, "copy: source %s has %d elements, destination %s has %d",
                          agl_shape(s, 0), (int)ag_numel(s), agl_shape(t, 1), (int)ag_numel(t));
    ag_copy(t, s);
    lua_settop(L, 1);
    return 1;
}

static int m_fill(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    ag_fill(t, (float)luaL_checknumber(L, 2));
    lua_settop(L, 1);
    return 1;
}

static int m_zero(lua_State *L) {
    ag_fill(agl_check_tensor(L, 1), 0);
    lua_settop(L, 1);
    return 1;
}

/* t:index_select(1, idx) -> new tensor made of the rows idx[1], idx[2], ... of t along
 * dimension 1; idx is a Lua list of 1-based integers or a 1-D tensor of them. */
static int m_index_select(lua_State *L) {
    AgTensor *t = agl_check_contiguous(L, 1);
    if (agl_check_int(L, 2, "index_select", "dimension", 1, 1) != 1 || t->dim < 1)
        return luaL_error(L, "index_select: only dimension 1 is supported");
    AgTensor *it = agl_test_tensor(L, 3);
    if (!it) luaL_checktype(L, 3, LUA_TTABLE);
    int64_t n = it ? ag_numel(it) : (int64_t)lua_rawlen(L, 3);
    if (it) it = agl_check_contiguous(L, 3);
    int64_t size[AG_MAXDIM];
    memcpy(size, t->size, sizeof size);
    size[0] = n;
    /* the 0-based rows, checked, in a GC-owned scratch userdata below the result */
    int64_t *rows = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *rows, 0);
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (it)
            v = it->data[i];
        else {
            lua_rawgeti(L, 3, i + 1);
            v = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        if (!(v >= 1 && v <= (double)t->size[0]) || v != floor(v))
            return luaL_error(L, "index_select: index %d is %f, outside 1..%d", (int)i + 1, v,
                              (int)t->size[0]);
        rows[i] = (int64_t)v - 1;
    }
    AgTensor *y = agl_push_tensor(L, "index_select", t->dim, size);
    ag_index_select(y, t, rows, n);
    return 1;
}

/* ---------- element access ---------- */

static float *element(lua_State *L, AgTensor *t, int first, int count, const char *fname) {
    if (count != t->dim)
        luaL_error(L, "%s: %s tensor needs %d indices, got %d", fname, agl_shape(t, 0), t->dim,
                   count);
    int64_t off = 0;
    for (int d = 0; d < t->dim; d++) {
        int64_t i = agl_check_int(L, first + d, fname, "index", 1, AG_MAXNUMEL);
        if (i > t->size[d])
            luaL_error(L, "%s: index %d out of range for dimension %d of size %d", fname,
                       (int)i, d + 1, (int)t->size[d]);
        off += (i - 1) * t->stride[d];
    }
    return t->data + off;
}

static int m_get(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    lua_pushnumber(L, *element(L, t, 2, lua_gettop(L) - 1, "get"));
    return 1;
}

static int m_set(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    int top = lua_gettop(L);
    float v = (float)luaL_checknumber(L, top);
    *element(L, t, 2, top - 2, "set") = v;
    lua_settop(L, 1);
    return 1;
}

static void push_totable(lua_State *L, const float *p, const AgTensor *t, int d) {
    lua_createtable(L, (int)t->size[d], 0);
    for (int64_t i = 0; i < t->size[d]; i++) {
        if (d == t->dim - 1)
            lua_pushnumber(L, p[i * t->stride[d]]);
        else
            push_totable(L, p + i * t->stride[d], t, d + 1);
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_totable(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (t->dim == 0) {
        lua_pushnumber(L, t->data[0]);
        return 1;
    }
    luaL_checkstack(L, t->dim + 4, "totable");
    push_totable(L, t->data, t, 0);
    return 1;
}

/* flat Lua table of all elements in row-major order */
static int m_tolist(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    int64_t n = ag_numel(t);
    if (n > INT32_MAX) return luaL_error(L, "tolist: too many elements");
    AgTensor c = *t;
    lua_createtable(L, (int)n, 0);
    if (!ag_is_contiguous(t)) {
        AgTensor *cc = agl_push_copy(L, t);
        c = *cc;
        lua_insert(L, -2);
    }
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, c.data[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---------- metamethods ---------- */

static int mt_len(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    lua_pushinteger(L, t->dim ? (lua_Integer)t->size[0] : 1);
    return 1;
}

static int mt_index(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        if (t->dim == 0) return luaL_error(L, "index: tensor has no dimensions");
        int64_t i = agl_check_int(L, 2, "index", "index", 1, AG_MAXNUMEL);
        if (i > t->size[0])
            return luaL_error(L, "index: %d out of range for dimension 1 of size %d", (int)i,
                              (int)t->size[0]);
        if (t->dim == 1)
            lua_pushnumber(L, t->data[(i - 1) * t->stride[0]]);
        else
            push_select(L, 1, t, 0, i - 1);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int mt_newindex(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "tensor: cannot set field '%s' (tensors have no fields)",
                          luaL_tolstring(L, 2, NULL));
    if (t->dim == 0) return luaL_error(L, "index: tensor has no dimensions");
    int64_t i = agl_check_int(L, 2, "index", "index", 1, AG_MAXNUMEL);
    if (i > t->size[0])
        return luaL_error(L, "index: %d out of range for dimension 1 of size %d", (int)i,
                          (int)t->size[0]);
    if (t->dim == 1) {
        t->data[(i - 1) * t->stride[0]] = (float)luaL_checknumber(L, 3);
        return 0;
    }
    push_select(L, 1, t, 0, i - 1);
    AgTensor *row = agl_check_tensor(L, -1);
    AgTensor *src = agl_test_tensor(L, 3);
    if (src) {
        if (ag_numel(src) != ag_numel(row))
            return luaL_error(L, "index: cannot assign %s to a %s slice", agl_shape(src, 0),
                              agl_shape(row, 1));
        ag_copy(row, src);
    } else {
        ag_fill(row, (float)luaL_checknumber(L, 3));
    }
    return 0;
}

static int mt_eq(lua_State *L) {
    lua_pushboolean(L, lua_rawequal(L, 1, 2));
    return 1;
}

static int mt_close(lua_State *L) {
    (void)agl_check_tensor(L, 1);
    return 0; /* memory belongs to the userdata; <close> only ends the variable's life */
}

static int l_storage_bytes(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    int owner = agl_push_storage(L, 1);
    lua_pushinteger(L, owner ? (lua_Integer)(ag_numel(t) * (int64_t)sizeof(float)) : 0);
    return 1;
}

/* t:data_ptr() -> light userdata, for identity checks in tests (views share storage) */
static int m_storage_id(lua_State *L) {
    agl_push_storage(L, 1);
    lua_pushfstring(L, "%p", lua_touserdata(L, -1));
    return 1;
}

static const luaL_Reg methods[] = {{"size", m_size},
                                   {"stride", m_stride},
                                   {"dim", m_dim},
                                   {"numel", m_numel},
                                   {"nelement", m_numel},
                                   {"is_contiguous", m_is_contiguous},
                                   {"contiguous", m_contiguous},
                                   {"clone", m_clone},
                                   {"view", m_view},
                                   {"reshape", m_reshape},
                                   {"transpose", m_transpose},
                                   {"t", m_t},
                                   {"narrow", m_narrow},
                                   {"select", m_select},
                                   {"copy", m_copy},
                                   {"fill", m_fill},
                                   {"zero", m_zero},
                                   {"get", m_get},
                                   {"set", m_set},
                                   {"totable", m_totable},
                                   {"tolist", m_tolist},
                                   {"normal_", m_normal_},
                                   {"uniform_", m_uniform_},
                                   {"index_select", m_index_select},
                                   {"storage_id", m_storage_id},
                                   {"storage_bytes", l_storage_bytes},
                                   {NULL, NULL}};

static const luaL_Reg metamethods[] = {{"__len", mt_len},
                                       {"__eq", mt_eq},
                                       {"__close", mt_close},
                                       {"__newindex", mt_newindex},
                                       {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"tensor", l_tensor}, {"from_table", l_from_table}, {"zeros", l_zeros},   {"ones", l_ones},
    {"full", l_full},     {"zeros_like", l_empty_like}, {"arange", l_arange}, {"rand", l_rand},
    {"randn", l_randn},   {"is_tensor", l_is_tensor},   {NULL, NULL}};

void agl_open_tensor(lua_State *L) {
    int mod = lua_gettop(L);
    luaL_newmetatable(L, AGL_TENSOR);
    luaL_setfuncs(L, metamethods, 0);
    luaL_newlib(L, methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, mt_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    lua_settop(L, mod);
    luaL_setfuncs(L, funcs, 0);
}
