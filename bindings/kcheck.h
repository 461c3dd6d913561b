/* kcheck.h - argument checks shared by the kernel bindings (conv, linear, act, pool,
 * batchnorm). Every check raises a Lua error that names the function and the shapes,
 * and runs before anything is allocated. */
#ifndef KCHECK_H
#define KCHECK_H

#include "agl.h"

/* The tensor at arg, which must have `dim` dimensions; `layout` names them in the
 * message ("(B, C, H, W)"). */
static inline AgTensor *kc_tensor_dim(lua_State *L, int arg, const char *fname,
                                      const char *what, int dim, const char *layout) {
    AgTensor *t = agl_check_tensor(L, arg);
    if (t->dim != dim)
        luaL_error(L, "%s: %s must be %d-D %s, got %s", fname, what, dim, layout,
                   agl_shape(t, 0));
    return t;
}

/* 1 when t has exactly the given sizes. */
static inline int kc_same_sizes(const AgTensor *t, int dim, const int64_t *size) {
    if (t->dim != dim) return 0;
    for (int d = 0; d < dim; d++)
        if (t->size[d] != size[d]) return 0;
    return 1;
}

/* A tensor at arg with exactly the given sizes ("want" is a tensor's shape string to show
 * in the message). */
static inline AgTensor *kc_tensor_sized(lua_State *L, int arg, const char *fname,
                                        const char *what, int dim, const int64_t *size) {
    AgTensor *t = agl_check_tensor(L, arg);
    if (!kc_same_sizes(t, dim, size)) {
        AgTensor want = {.dim = dim};
        for (int d = 0; d < dim; d++) want.size[d] = size[d];
        luaL_error(L, "%s: %s must be %s, got %s", fname, what, agl_shape(&want, 0),
                   agl_shape(t, 1));
    }
    return t;
}

/* nil, or a contiguous tensor of the given sizes that a kernel updates in place (a
 * gradient accumulator, a running average): a copy would silently drop the update. */
static inline AgTensor *kc_opt_inplace(lua_State *L, int arg, const char *fname,
                                       const char *what, int dim, const int64_t *size) {
    if (lua_isnoneornil(L, arg)) return NULL;
    AgTensor *t = kc_tensor_sized(L, arg, fname, what, dim, size);
    if (!ag_is_contiguous(t))
        luaL_error(L, "%s: %s is updated in place and must be contiguous", fname, what);
    return t;
}

/* nil/none -> 0, a boolean -> its value, anything else an error. */
static inline int kc_opt_bool(lua_State *L, int arg, const char *fname, const char *what) {
    if (lua_isnoneornil(L, arg)) return 0;
    if (!lua_isboolean(L, arg))
        luaL_error(L, "%s: %s must be a boolean, got %s", fname, what, luaL_typename(L, arg));
    return lua_toboolean(L, arg);
}

/* The output of a kernel, pushed on the stack: the tensor at arg when it is contiguous
 * and of the given sizes (the module's buffer of the previous call, refilled, so that a
 * training step maps no fresh memory), else a new tensor. Any other value at arg (nil,
 * a tensor of another size) just means "make a new one". */
static inline AgTensor *kc_out(lua_State *L, int arg, const char *fname, int dim,
                               const int64_t *size) {
    AgTensor *t = lua_isnoneornil(L, arg) ? NULL : agl_test_tensor(L, arg);
    if (t && kc_same_sizes(t, dim, size) && ag_is_contiguous(t)) {
        lua_pushvalue(L, arg);
        return t;
    }
    return agl_push_tensor(L, fname, dim, size);
}

/* A scratch buffer of n floats for one kernel call. It is a userdata kept in the
 * registry and reused by the next call (grown when too small), so that the GC sees it
 * and the large im2col buffers are not mapped and faulted in afresh on every call. Valid
 * until the next kc_scratch; nothing to free. */
static inline float *kc_scratch(lua_State *L, int64_t n) {
    static const char key[] = "agop.kernel_scratch";
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    if (lua_getfield(L, LUA_REGISTRYINDEX, key) == LUA_TUSERDATA &&
        lua_rawlen(L, -1) >= bytes) {
        float *p = lua_touserdata(L, -1);
        lua_pop(L, 1);
        return p;
    }
    lua_pop(L, 1);
    lua_pushnil(L); /* drop the old buffer before making the new one */
    lua_setfield(L, LUA_REGISTRYINDEX, key);
    float *p = lua_newuserdatauv(L, bytes, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
    return p;
}

#endif
