/* optim.c - fused optimizer updates (engine/optim.c).
 *
 *   agop.sgd_step(params, grads, buf|nil, lr, momentum, dampening, weight_decay,
 *                 nesterov, first)
 *       one SGD step in place over flat tensors of the same number of elements: params
 *       and buf (the momentum buffer, needed when momentum ~= 0) are updated, grads is
 *       read; first (boolean) makes it the first momentum step (buf = g). The rule and
 *       its rounding are lua/agop/optim.lua's (engine/optim.h). */
#include "../engine/optim.h"
#include "agl.h"

/* A contiguous tensor at arg with n elements, updated in place. */
static AgTensor *check_inplace(lua_State *L, int arg, const char *what, int64_t n) {
    AgTensor *t = agl_check_tensor(L, arg);
    if (ag_numel(t) != n)
        luaL_error(L, "sgd_step: %s has %I elements, params %I", what, (lua_Integer)ag_numel(t),
                   (lua_Integer)n);
    if (!ag_is_contiguous(t))
        luaL_error(L, "sgd_step: %s is updated in place and must be contiguous", what);
    return t;
}

static int l_sgd_step(lua_State *L) {
    const char *fname = "sgd_step";
    AgTensor *p = agl_check_tensor(L, 1);
    const int64_t n = ag_numel(p);
    check_inplace(L, 1, "params", n);
    AgTensor *g0 = agl_check_tensor(L, 2);
    if (ag_numel(g0) != n)
        return luaL_error(L, "sgd_step: grads have %I elements, params %I",
                          (lua_Integer)ag_numel(g0), (lua_Integer)n);
    AgSgd o;
    o.lr = (float)agl_check_finite(L, 4, fname, "lr");
    const double m = agl_check_finite(L, 5, fname, "momentum");
    const double d = agl_check_finite(L, 6, fname, "dampening");
    o.weight_decay = (float)agl_check_finite(L, 7, fname, "weight_decay");
    if (!lua_isboolean(L, 8) || !lua_isboolean(L, 9))
        return luaL_error(L, "sgd_step: nesterov and first must be booleans, got %s and %s",
                          luaL_typename(L, 8), luaL_typename(L, 9));
    o.momentum = (float)m;
    o.damp = (float)(1.0 - d); /* rounded once from double, as add_(g, 1 - dampening) */
    o.nesterov = lua_toboolean(L, 8);
    o.first = lua_toboolean(L, 9);
    AgTensor *buf = NULL;
    if (o.momentum != 0.0f) {
        if (lua_isnoneornil(L, 3))
            return luaL_error(L, "sgd_step: momentum %f needs a momentum buffer", m);
        buf = check_inplace(L, 3, "the momentum buffer", n);
    }
    lua_settop(L, 9);
    const AgTensor *g = agl_check_contiguous(L, 2);
    ag_sgd_step(p->data, buf ? buf->data : NULL, g->data, n, &o);
    return 0;
}

static const luaL_Reg funcs[] = {{"sgd_step", l_sgd_step}, {NULL, NULL}};

void agl_open_optim(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
