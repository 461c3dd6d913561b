/* agl.c - agl.h's implementation: the Tensor userdata's memory, argument checks and the
 * bridge from engine errors to Lua errors, shared by every binding file.
 *
 * Memory: an owning tensor keeps its floats inside its own userdata (Lua's collector
 * sees every byte); a view keeps the owning userdata in its first user value. */
#include "agl.h"

#include "agl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

const char *agl_typename(lua_State *L, int arg) {
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

void *agl_check_type(lua_State *L, int arg, const char *tname) {
    void *p = luaL_testudata(L, arg, tname);
    if (!p)
        luaL_argerror(L, arg,
                      lua_pushfstring(L, "%s expected, got %s", tname, agl_typename(L, arg)));
    return p;
}

void agl_new_type(lua_State *L, const char *tname, const luaL_Reg *methods,
                  const luaL_Reg *metamethods) {
    luaL_newmetatable(L, tname);
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    if (metamethods) luaL_setfuncs(L, metamethods, 0);
    lua_pop(L, 1);
}

AgTensor *agl_check_tensor(lua_State *L, int arg) {
    return &((LTensor *)agl_check_type(L, arg, AGL_TENSOR))->t;
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

AgTensor *agl_push_copy(lua_State *L, const AgTensor *t) {
    AgTensor *c = agl_push_tensor(L, "contiguous", t->dim, t->size);
    ag_copy(c, t);
    return c;
}

AgTensor *agl_check_contiguous(lua_State *L, int arg) {
    AgTensor *t = agl_check_tensor(L, arg);
    if (ag_is_contiguous(t)) return t;
    arg = lua_absindex(L, arg);
    AgTensor *c = agl_push_copy(L, t);
    lua_replace(L, arg);
    return c;
}

int agl_push_storage(lua_State *L, int arg) {
    LTensor *u = luaL_checkudata(L, arg, AGL_TENSOR);
    if (u->owner)
        lua_pushvalue(L, arg);
    else
        lua_getiuservalue(L, arg, 1);
    return u->owner;
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
        return luaL_error(L, "%s: %s must be an integer, got %s", fname, what,
                          agl_typename(L, arg));
    if (x != x || x != floor(x) || x < (lua_Number)lo || x > (lua_Number)hi)
        return luaL_error(L, "%s: %s must be an integer in [%I, %I], got %s", fname, what,
                          (lua_Integer)lo, (lua_Integer)hi, lua_tostring(L, arg));
    return (int64_t)x;
}

int64_t agl_opt_int(lua_State *L, int arg, const char *fname, const char *what, int64_t lo,
                    int64_t hi, int64_t def) {
    return lua_isnoneornil(L, arg) ? def : agl_check_int(L, arg, fname, what, lo, hi);
}

double agl_opt_finite(lua_State *L, int arg, const char *fname, const char *what, double def) {
    return lua_isnoneornil(L, arg) ? def : agl_check_finite(L, arg, fname, what);
}

int agl_check_dim(lua_State *L, int arg, const AgTensor *t, const char *fname) {
    if (t->dim == 0) return luaL_error(L, "%s: tensor has no dimensions", fname);
    int64_t d = agl_check_int(L, arg, fname, "dimension", -t->dim, t->dim);
    if (d == 0) return luaL_error(L, "%s: dimension 0 does not exist (1-based)", fname);
    return (int)(d < 0 ? t->dim + d : d - 1);
}

double agl_check_finite(lua_State *L, int arg, const char *fname, const char *what) {
    int isnum = 0;
    lua_Number x = lua_tonumberx(L, arg, &isnum);
    if (!isnum)
        return luaL_error(L, "%s: %s must be a number, got %s", fname, what,
                          agl_typename(L, arg));
    if (!isfinite(x)) return luaL_error(L, "%s: %s must be finite, got %f", fname, what, x);
    return x;
}

void agl_tensor_methods(lua_State *L) {
    luaL_getmetatable(L, AGL_TENSOR);
    lua_getfield(L, -1, "__methods");
    lua_remove(L, -2);
}
