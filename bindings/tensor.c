/* tensor.c - the agop.Tensor userdata: creation, shape, views, access, math, printing.
 *
 * Memory: an owning tensor keeps its floats inside its own userdata (Lua's collector
 * sees every byte); a view keeps the owning userdata in its first user value. */
#include "agl.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct LTensor {
    AgTensor t;
    int owner; /* 1: data follows this header; 0: a view (user value 1 = owner) */
    int pad_;
    float data[];
} LTensor;

static const char *type_of(lua_State *L, int arg) {
    if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1);
        return s;
    }
    return luaL_typename(L, arg);
}

AgTensor *agl_test_tensor(lua_State *L, int arg) {
    LTensor *t = luaL_testudata(L, arg, AGL_TENSOR);
    return t ? &t->t : NULL;
}

AgTensor *agl_check_tensor(lua_State *L, int arg) {
    AgTensor *t = agl_test_tensor(L, arg);
    if (!t) {
        const char *msg = lua_pushfstring(L, "agop.Tensor expected, got %s", type_of(L, arg));
        luaL_argerror(L, arg, msg);
    }
    return t;
}

const char *agl_shape(const AgTensor *t, int slot) {
    /* Per-slot buffers: bindings are not re-entrant across threads (one lua_State). */
    static _Thread_local char bufs[4][96];
    slot &= 3;
    return ag_shape_str(t, bufs[slot], sizeof bufs[slot]);
}

int agl_error(lua_State *L, const AgError *err) {
    if (err->cancel && *err->cancel) agl_interrupt = 0; /* raised now: do not raise twice */
    return luaL_error(L, "%s", err->msg[0] ? err->msg : "engine error");
}

AgTensor *agl_push_tensor(lua_State *L, const char *fname, int dim, const int64_t *size) {
    AgError err = AG_ERROR_INIT;
    int64_t n;
    if (ag_check_sizes(dim, size, &n, &err) != 0) luaL_error(L, "%s: %s", fname, err.msg);
    if ((uint64_t)n > (SIZE_MAX - sizeof(LTensor)) / sizeof(float))
        luaL_error(L, "%s: tensor too large", fname);
    LTensor *u = lua_newuserdatauv(L, sizeof(LTensor) + (size_t)n * sizeof(float), 1);
    memset(u, 0, sizeof(LTensor) + (size_t)n * sizeof(float));
    u->owner = 1;
    u->t.data = u->data;
    u->t.dim = dim;
    for (int d = 0; d < dim; d++) u->t.size[d] = size[d];
    ag_set_contiguous_strides(&u->t);
    luaL_setmetatable(L, AGL_TENSOR);
    return &u->t;
}

AgTensor *agl_push_view(lua_State *L, int base_idx, const AgTensor *view) {
    base_idx = lua_absindex(L, base_idx);
    LTensor *base = luaL_checkudata(L, base_idx, AGL_TENSOR);
    LTensor *u = lua_newuserdatauv(L, sizeof(LTensor), 1);
    u->t = *view;
    u->owner = 0;
    u->pad_ = 0;
    if (base->owner)
        lua_pushvalue(L, base_idx);
    else
        lua_getiuservalue(L, base_idx, 1);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, AGL_TENSOR);
    return &u->t;
}

/* A contiguous copy of t, pushed. */
static AgTensor *push_contiguous_copy(lua_State *L, const AgTensor *t) {
    AgTensor *c = agl_push_tensor(L, "contiguous", t->dim, t->size);
    ag_copy(c, t);
    return c;
}

AgTensor *agl_check_contiguous(lua_State *L, int arg) {
    AgTensor *t = agl_check_tensor(L, arg);
    if (ag_is_contiguous(t)) return t;
    arg = lua_absindex(L, arg);
    AgTensor *c = push_contiguous_copy(L, t);
    lua_replace(L, arg);
    return c;
}

AgError agl_error_value(void) {
    AgError e = AG_ERROR_INIT;
    e.cancel = &agl_interrupt;
    return e;
}

int64_t agl_check_int(lua_State *L, int arg, const char *fname, const char *what, int64_t lo,
                      int64_t hi) {
    int isnum = 0;
    lua_Number x = lua_tonumberx(L, arg, &isnum);
    if (!isnum)
        return luaL_error(L, "%s: %s must be an integer, got %s", fname, what, type_of(L, arg));
    if (x != x || x != floor(x) || x < (lua_Number)lo || x > (lua_Number)hi)
        return luaL_error(L, "%s: %s must be an integer in [%I, %I], got %s", fname, what,
                          (lua_Integer)lo, (lua_Integer)hi, lua_tostring(L, arg));
    return (int64_t)x;
}

double agl_check_finite(lua_State *L, int arg, const char *fname, const char *what) {
    int isnum = 0;
    lua_Number x = lua_tonumberx(L, arg, &isnum);
    if (!isnum)
        return luaL_error(L, "%s: %s must be a number, got %s", fname, what, type_of(L, arg));
    if (!isfinite(x)) return luaL_error(L, "%s: %s must be finite, got %f", fname, what, x);
    return x;
}

/* ---------- generators ---------- */

AgRng *agl_test_generator(lua_State *L, int arg) {
    return luaL_testudata(L, arg, AGL_GENERATOR);
}

AgRng *agl_check_generator(lua_State *L, int arg) {
    AgRng *g = agl_test_generator(L, arg);
    if (!g) {
        const char *msg =
            lua_pushfstring(L, "agop.Generator expected, got %s", type_of(L, arg));
        luaL_argerror(L, arg, msg);
    }
    return g;
}

static AgRng *push_generator(lua_State *L, uint64_t seed) {
    AgRng *g = lua_newuserdatauv(L, sizeof(AgRng), 0);
    ag_rng_seed(g, seed);
    luaL_setmetatable(L, AGL_GENERATOR);
    return g;
}

AgRng *agl_default_generator(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, "agop.default_generator") != LUA_TUSERDATA) {
        lua_pop(L, 1);
        push_generator(L, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "agop.default_generator");
    }
    AgRng *g = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return g;
}

static uint64_t check_seed(lua_State *L, int arg, const char *fname) {
    return (uint64_t)agl_check_int(L, arg, fname, "seed", 0, (int64_t)1 << 53);
}

static int l_generator(lua_State *L) {
    uint64_t seed = lua_isnoneornil(L, 1) ? 0 : check_seed(L, 1, "Generator");
    push_generator(L, seed);
    return 1;
}

/* the generator that draws when none is named (seeded by manual_seed) */
static int l_default_generator(lua_State *L) {
    agl_default_generator(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "agop.default_generator");
    return 1;
}

static int l_manual_seed(lua_State *L) {
    ag_rng_seed(agl_default_generator(L), check_seed(L, 1, "manual_seed"));
    return 0;
}

static int g_seed(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, (lua_Integer)g->seed);
        return 1;
    }
    ag_rng_seed(g, check_seed(L, 2, "Generator:seed"));
    return 0;
}

/* state as a string of 40 bytes, for checkpoints */
static int g_get_state(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    lua_pushlstring(L, (const char *)g, sizeof *g);
    return 1;
}

static int g_set_state(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (n != sizeof *g)
        return luaL_error(L, "Generator:set_state: expected %d bytes, got %d", (int)sizeof *g,
                          (int)n);
    AgRng st;
    memcpy(&st, s, sizeof st);
    if ((st.s[0] | st.s[1] | st.s[2] | st.s[3]) == 0)
        return luaL_error(L, "Generator:set_state: the state is all zeros (not one that "
                             "get_state gives: the generator would draw 0 forever)");
    *g = st;
    return 0;
}

static int g_uniform(lua_State *L) {
    lua_pushnumber(L, ag_rng_uniform(agl_check_generator(L, 1)));
    return 1;
}

static int g_normal(lua_State *L) {
    lua_pushnumber(L, ag_rng_normal(agl_check_generator(L, 1)));
    return 1;
}

/* g:random(n) -> integer in [1, n] */
static int g_random(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    int64_t n = agl_check_int(L, 2, "Generator:random", "n", 1, INT64_MAX / 2);
    lua_pushinteger(L, (lua_Integer)ag_rng_below(g, (uint64_t)n) + 1);
    return 1;
}

/* g:permutation(n) -> Lua table, a uniform random permutation of 1..n (Fisher-Yates) */
static int g_permutation(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    int64_t n = agl_check_int(L, 2, "Generator:permutation", "n", 0, 1 << 28);
    int64_t *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) return luaL_error(L, "Generator:permutation: out of memory");
    for (int64_t i = 0; i < n; i++) p[i] = i + 1;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ag_rng_below(g, (uint64_t)(i + 1));
        int64_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, p[i]);
        lua_rawseti(L, -2, i + 1);
    }
    free(p);
    return 1;
}

static int g_tostring(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    lua_pushfstring(L, "agop.Generator(seed %I)", (lua_Integer)g->seed);
    return 1;
}

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
    AgRng *g = lua_isnoneornil(L, 4) ? agl_default_generator(L) : agl_check_generator(L, 4);
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
        if (!isnum) luaL_error(L, "tensor: expected a number, got %s", type_of(L, idx));
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
        push_contiguous_copy(L, src);
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

static int check_dim(lua_State *L, int arg, const AgTensor *t, const char *fname) {
    if (t->dim == 0) return luaL_error(L, "%s: tensor has no dimensions", fname);
    int64_t d = agl_check_int(L, arg, fname, "dimension", -t->dim, t->dim);
    if (d == 0) return luaL_error(L, "%s: dimension 0 does not exist (1-based)", fname);
    return (int)(d < 0 ? t->dim + d : d - 1);
}

static int m_size(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, (lua_Integer)t->size[check_dim(L, 2, t, "size")]);
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
        lua_pushinteger(L, (lua_Integer)t->stride[check_dim(L, 2, t, "stride")]);
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
        push_contiguous_copy(L, t);
    return 1;
}

static int m_clone(lua_State *L) {
    push_contiguous_copy(L, agl_check_tensor(L, 1));
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
        push_contiguous_copy(L, t);
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
    int a = check_dim(L, 2, t, "transpose"), b = check_dim(L, 3, t, "transpose");
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
    int d = check_dim(L, 2, t, "narrow");
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
    int d = check_dim(L, 2, t, "select");
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
    AgTensor *y = agl_push_tensor(L, "index_select", t->dim, size);
    /* t is contiguous, so a row holds the product of the other sizes; stride[0] is not
     * that when size[0] == 1 (ag_is_contiguous ignores the strides of size-1 dims) */
    int64_t row = 1;
    for (int d = 1; d < t->dim; d++) row *= t->size[d];
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
        memcpy(y->data + i * row, t->data + ((int64_t)v - 1) * row,
               (size_t)row * sizeof(float));
    }
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
        AgTensor *cc = push_contiguous_copy(L, t);
        c = *cc;
        lua_insert(L, -2);
    }
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, c.data[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---------- math ---------- */

static AgTensor *result_like(lua_State *L, const AgTensor *a, const char *fname) {
    return agl_push_tensor(L, fname, a->dim, a->size);
}

/* Binary op for arithmetic metamethods and methods; handles number operands. */
static int binary(lua_State *L, AgBinOp op, const char *fname, int inplace) {
    AgTensor *a = agl_test_tensor(L, 1), *b = agl_test_tensor(L, 2);
    AgError err = AG_ERROR_INIT;
    if (inplace && !a) return luaL_error(L, "%s: tensor expected as self", fname);
    int has_alpha = !lua_isnoneornil(L, 3);
    double alpha = has_alpha ? agl_check_finite(L, 3, fname, "alpha") : 1;
    if (a && b) {
        if (has_alpha && alpha != 1 && op != AG_ADD && op != AG_SUB)
            return luaL_error(L, "%s: alpha only applies to add and sub", fname);
        AgTensor *y = inplace ? a : result_like(L, a, fname);
        if (ag_binary(y, a, b, op, (float)alpha, &err) != 0)
            return luaL_error(L, "%s: %s", fname, err.msg);
        if (inplace) lua_settop(L, 1);
        return 1;
    }
    if (a) {
        double s = agl_check_finite(L, 2, fname, "operand");
        if (has_alpha) s *= alpha;
        AgTensor *y = inplace ? a : result_like(L, a, fname);
        ag_binary_scalar(y, a, s, op, 0);
        if (inplace) lua_settop(L, 1);
        return 1;
    }
    if (b) { /* number op tensor */
        double s = agl_check_finite(L, 1, fname, "operand");
        AgTensor *y = result_like(L, b, fname);
        ag_binary_scalar(y, b, s, op, 1);
        return 1;
    }
    return luaL_error(L, "%s: tensor expected", fname);
}

#define BIN(name, op)                                                                          \
    static int m_##name(lua_State *L) {                                                        \
        return binary(L, op, #name, 0);                                                        \
    }                                                                                          \
    static int m_##name##_(lua_State *L) {                                                     \
        return binary(L, op, #name "_", 1);                                                    \
    }
BIN(add, AG_ADD)
BIN(sub, AG_SUB)
BIN(mul, AG_MUL)
BIN(div, AG_DIV)
BIN(maximum, AG_MAXIMUM)
BIN(minimum, AG_MINIMUM)

static int mt_add(lua_State *L) {
    lua_settop(L, 2);
    return binary(L, AG_ADD, "+", 0);
}
static int mt_sub(lua_State *L) {
    lua_settop(L, 2);
    return binary(L, AG_SUB, "-", 0);
}
static int mt_mul(lua_State *L) {
    lua_settop(L, 2);
    return binary(L, AG_MUL, "*", 0);
}
static int mt_div(lua_State *L) {
    lua_settop(L, 2);
    return binary(L, AG_DIV, "/", 0);
}
static int mt_pow(lua_State *L) {
    lua_settop(L, 2);
    return binary(L, AG_POW, "^", 0);
}

static int unary(lua_State *L, AgUnOp op, const char *fname, int inplace) {
    AgTensor *a = agl_check_tensor(L, 1);
    AgTensor *y = inplace ? a : result_like(L, a, fname);
    ag_unary(y, a, op);
    if (inplace) lua_settop(L, 1);
    return 1;
}

#define UN(name, op)                                                                           \
    static int m_##name(lua_State *L) {                                                        \
        return unary(L, op, #name, 0);                                                         \
    }                                                                                          \
    static int m_##name##_(lua_State *L) {                                                     \
        return unary(L, op, #name "_", 1);                                                     \
    }
UN(neg, AG_NEG)
UN(abs, AG_ABS)
UN(exp, AG_EXP)
UN(log, AG_LOG)
UN(sqrt, AG_SQRT)
UN(sign, AG_SIGN)
UN(tanh, AG_TANH)
UN(sigmoid, AG_SIGMOID)

static int mt_unm(lua_State *L) {
    lua_settop(L, 1);
    return unary(L, AG_NEG, "unary minus", 0);
}

static int pow_impl(lua_State *L, int inplace) {
    lua_settop(L, 2);
    return binary(L, AG_POW, inplace ? "pow_" : "pow", inplace);
}
static int m_pow(lua_State *L) {
    return pow_impl(L, 0);
}
static int m_pow_(lua_State *L) {
    return pow_impl(L, 1);
}

static int clamp_impl(lua_State *L, int inplace) {
    AgTensor *a = agl_check_tensor(L, 1);
    double lo = lua_isnoneornil(L, 2) ? -INFINITY : luaL_checknumber(L, 2);
    double hi = lua_isnoneornil(L, 3) ? INFINITY : luaL_checknumber(L, 3);
    if (lo != lo || hi != hi || lo > hi)
        return luaL_error(L, "clamp: bad range [%f, %f]", lo, hi);
    AgTensor *y = inplace ? a : result_like(L, a, "clamp");
    ag_clamp(y, a, lo, hi);
    if (inplace) lua_settop(L, 1);
    return 1;
}
static int m_clamp(lua_State *L) {
    return clamp_impl(L, 0);
}
static int m_clamp_(lua_State *L) {
    return clamp_impl(L, 1);
}

/* self += value * a * b  and  self += value * a / b (same shapes) */
static int addc(lua_State *L, int div) {
    const char *fname = div ? "addcdiv_" : "addcmul_";
    AgTensor *t = agl_check_tensor(L, 1), *a = agl_check_tensor(L, 2),
             *b = agl_check_tensor(L, 3);
    double v = lua_isnoneornil(L, 4) ? 1 : agl_check_finite(L, 4, fname, "value");
    if (!ag_same_shape(t, a) || !ag_same_shape(t, b))
        return luaL_error(L, "%s: shapes %s, %s and %s differ", fname, agl_shape(t, 0),
                          agl_shape(a, 1), agl_shape(b, 2));
    if (!ag_is_contiguous(t) || !ag_is_contiguous(a) || !ag_is_contiguous(b))
        return luaL_error(L, "%s: tensors must be contiguous", fname);
    int64_t n = ag_numel(t);
    float fv = (float)v;
    float *td = t->data;
    const float *ad = a->data, *bd = b->data;
    if (div) {
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) td[i] += fv * ad[i] / bd[i];
    } else {
#pragma omp parallel for if (n > 65536)
        for (int64_t i = 0; i < n; i++) td[i] += fv * ad[i] * bd[i];
    }
    lua_settop(L, 1);
    return 1;
}
static int m_addcmul_(lua_State *L) {
    return addc(L, 0);
}
static int m_addcdiv_(lua_State *L) {
    return addc(L, 1);
}

/* reductions: no dim -> number; dim -> tensor (keeping other dims) */
static int reduce(lua_State *L, AgReduce op, const char *fname) {
    AgTensor *t = agl_check_tensor(L, 1);
    int64_t n = ag_numel(t);
    if (lua_isnoneornil(L, 2)) {
        if (op == AG_RSUM || op == AG_RMEAN) {
            double s = ag_sum_all(t);
            lua_pushnumber(L, op == AG_RMEAN ? (n ? s / (double)n : NAN) : s);
            return 1;
        }
        if (n == 0) return luaL_error(L, "%s: empty tensor", fname);
        int64_t i = ag_argext_all(t, op == AG_RMAX);
        AgTensor c = *t;
        int64_t off = 0, lin = i;
        for (int d = c.dim - 1; d >= 0; d--) {
            off += (lin % c.size[d]) * c.stride[d];
            lin /= c.size[d];
        }
        lua_pushnumber(L, t->data[off]);
        lua_pushinteger(L, (lua_Integer)i + 1);
        return 2;
    }
    int d = check_dim(L, 2, t, fname);
    if ((op == AG_RMAX || op == AG_RMIN) && t->size[d] == 0)
        return luaL_error(L, "%s: dimension %d is empty", fname, d + 1);
    int64_t size[AG_MAXDIM];
    int dim = 0;
    for (int k = 0; k < t->dim; k++)
        if (k != d) size[dim++] = t->size[k];
    if (dim == 0) size[dim++] = 1;
    AgTensor *out = agl_push_tensor(L, fname, dim, size);
    if (op == AG_RMAX || op == AG_RMIN) {
        AgTensor *ix = agl_push_tensor(L, fname, dim, size);
        int64_t m = ag_numel(out);
        int64_t *tmp = malloc((size_t)(m ? m : 1) * sizeof *tmp);
        if (!tmp) return luaL_error(L, "%s: out of memory", fname);
        ag_reduce_dim(out->data, tmp, t, d, op);
        for (int64_t i = 0; i < m; i++) ix->data[i] = (float)(tmp[i] + 1);
        free(tmp);
        return 2;
    }
    ag_reduce_dim(out->data, NULL, t, d, op);
    return 1;
}
static int m_sum(lua_State *L) {
    return reduce(L, AG_RSUM, "sum");
}
static int m_mean(lua_State *L) {
    return reduce(L, AG_RMEAN, "mean");
}
static int m_max(lua_State *L) {
    return reduce(L, AG_RMAX, "max");
}
static int m_min(lua_State *L) {
    return reduce(L, AG_RMIN, "min");
}

static int m_argmax(lua_State *L) {
    AgTensor *t = agl_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        if (ag_numel(t) == 0) return luaL_error(L, "argmax: empty tensor");
        lua_pushinteger(L, (lua_Integer)ag_argext_all(t, 1) + 1);
        return 1;
    }
    lua_settop(L, 2);
    reduce(L, AG_RMAX, "argmax");
    return 1; /* the indices, on top */
}

static int m_norm(lua_State *L) {
    lua_pushnumber(L, sqrt(ag_sumsq_all(agl_check_tensor(L, 1))));
    return 1;
}

static int l_dot(lua_State *L) {
    AgTensor *a = agl_check_tensor(L, 1), *b = agl_check_tensor(L, 2);
    int64_t n = ag_numel(a);
    if (n != ag_numel(b))
        return luaL_error(L, "dot: %s and %s have different numbers of elements",
                          agl_shape(a, 0), agl_shape(b, 1));
    a = agl_check_contiguous(L, 1);
    b = agl_check_contiguous(L, 2);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a->data[i] * b->data[i];
    lua_pushnumber(L, s);
    return 1;
}

static int l_mm(lua_State *L) {
    AgTensor *a = agl_check_tensor(L, 1), *b = agl_check_tensor(L, 2);
    if (a->dim != 2 || b->dim != 2 || a->size[1] != b->size[0])
        return luaL_error(L, "mm: cannot multiply %s by %s", agl_shape(a, 0), agl_shape(b, 1));
    AgError err = AG_ERROR_INIT;
    int64_t size[2] = {a->size[0], b->size[1]};
    AgTensor *c = agl_push_tensor(L, "mm", 2, size);
    if (ag_mm(c, a, b, 1, 0, &err) != 0) { /* odd strides: copy, then retry */
        lua_pop(L, 1);
        a = agl_check_contiguous(L, 1);
        b = agl_check_contiguous(L, 2);
        c = agl_push_tensor(L, "mm", 2, size);
        if (ag_mm(c, a, b, 1, 0, &err) != 0) return agl_error(L, &err);
    }
    return 1;
}

static int l_allclose(lua_State *L) {
    AgTensor *a = agl_check_tensor(L, 1), *b = agl_check_tensor(L, 2);
    double rtol = luaL_optnumber(L, 3, 1e-5), atol = luaL_optnumber(L, 4, 1e-8);
    if (!ag_same_shape(a, b)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    a = agl_check_contiguous(L, 1);
    b = agl_check_contiguous(L, 2);
    int64_t n = ag_numel(a);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        double x = a->data[i], y = b->data[i];
        ok = fabs(x - y) <= atol + rtol * fabs(y);
    }
    lua_pushboolean(L, ok);
    return 1;
}

static int m_equal(lua_State *L) {
    AgTensor *a = agl_check_tensor(L, 1), *b = agl_check_tensor(L, 2);
    if (!ag_same_shape(a, b)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    a = agl_check_contiguous(L, 1);
    b = agl_check_contiguous(L, 2);
    lua_pushboolean(L, memcmp(a->data, b->data, (size_t)ag_numel(a) * sizeof(float)) == 0);
    return 1;
}

/* t:isfinite() -> true when no NaN or Inf */
static int m_isfinite(lua_State *L) {
    AgTensor *t = agl_check_contiguous(L, 1);
    int64_t n = ag_numel(t);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) ok = isfinite(t->data[i]);
    lua_pushboolean(L, ok);
    return 1;
}

/* ---------- printing ---------- */

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

static int mt_tostring(lua_State *L) {
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
    LTensor *u = luaL_checkudata(L, 1, AGL_TENSOR);
    lua_pushinteger(L, u->owner ? (lua_Integer)(ag_numel(&u->t) * (int64_t)sizeof(float)) : 0);
    return 1;
}

/* t:data_ptr() -> light userdata, for identity checks in tests (views share storage) */
static int m_storage_id(lua_State *L) {
    LTensor *u = luaL_checkudata(L, 1, AGL_TENSOR);
    if (u->owner)
        lua_pushvalue(L, 1);
    else
        lua_getiuservalue(L, 1, 1);
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
                                   {"add", m_add},
                                   {"add_", m_add_},
                                   {"sub", m_sub},
                                   {"sub_", m_sub_},
                                   {"mul", m_mul},
                                   {"mul_", m_mul_},
                                   {"div", m_div},
                                   {"div_", m_div_},
                                   {"maximum", m_maximum},
                                   {"maximum_", m_maximum_},
                                   {"minimum", m_minimum},
                                   {"minimum_", m_minimum_},
                                   {"neg", m_neg},
                                   {"neg_", m_neg_},
                                   {"abs", m_abs},
                                   {"abs_", m_abs_},
                                   {"exp", m_exp},
                                   {"exp_", m_exp_},
                                   {"log", m_log},
                                   {"log_", m_log_},
                                   {"sqrt", m_sqrt},
                                   {"sqrt_", m_sqrt_},
                                   {"sign", m_sign},
                                   {"sign_", m_sign_},
                                   {"tanh", m_tanh},
                                   {"tanh_", m_tanh_},
                                   {"sigmoid", m_sigmoid},
                                   {"sigmoid_", m_sigmoid_},
                                   {"pow", m_pow},
                                   {"pow_", m_pow_},
                                   {"clamp", m_clamp},
                                   {"clamp_", m_clamp_},
                                   {"addcmul_", m_addcmul_},
                                   {"addcdiv_", m_addcdiv_},
                                   {"sum", m_sum},
                                   {"mean", m_mean},
                                   {"max", m_max},
                                   {"min", m_min},
                                   {"argmax", m_argmax},
                                   {"norm", m_norm},
                                   {"dot", l_dot},
                                   {"mm", l_mm},
                                   {"equal", m_equal},
                                   {"isfinite", m_isfinite},
                                   {"normal_", m_normal_},
                                   {"uniform_", m_uniform_},
                                   {"index_select", m_index_select},
                                   {"storage_id", m_storage_id},
                                   {"storage_bytes", l_storage_bytes},
                                   {NULL, NULL}};

static const luaL_Reg metamethods[] = {
    {"__add", mt_add}, {"__sub", mt_sub},     {"__mul", mt_mul},           {"__div", mt_div},
    {"__pow", mt_pow}, {"__unm", mt_unm},     {"__tostring", mt_tostring}, {"__len", mt_len},
    {"__eq", mt_eq},   {"__close", mt_close}, {"__newindex", mt_newindex}, {NULL, NULL}};

static const luaL_Reg gen_methods[] = {{"seed", g_seed},
                                       {"get_state", g_get_state},
                                       {"set_state", g_set_state},
                                       {"uniform", g_uniform},
                                       {"normal", g_normal},
                                       {"random", g_random},
                                       {"permutation", g_permutation},
                                       {NULL, NULL}};

static const luaL_Reg funcs[] = {{"tensor", l_tensor},
                                 {"from_table", l_from_table},
                                 {"zeros", l_zeros},
                                 {"ones", l_ones},
                                 {"full", l_full},
                                 {"zeros_like", l_empty_like},
                                 {"arange", l_arange},
                                 {"rand", l_rand},
                                 {"randn", l_randn},
                                 {"Generator", l_generator},
                                 {"default_generator", l_default_generator},
                                 {"manual_seed", l_manual_seed},
                                 {"is_tensor", l_is_tensor},
                                 {"dot", l_dot},
                                 {"mm", l_mm},
                                 {"allclose", l_allclose},
                                 {NULL, NULL}};

void agl_tensor_methods(lua_State *L) {
    luaL_getmetatable(L, AGL_TENSOR);
    lua_getfield(L, -1, "__methods");
    lua_remove(L, -2);
}

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

    luaL_newmetatable(L, AGL_GENERATOR);
    luaL_newlib(L, gen_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, g_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    lua_settop(L, mod);
    luaL_setfuncs(L, funcs, 0);
}
