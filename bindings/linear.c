/* linear.c - agop.linear and agop.ag_linear_backward (engine/linear.c).
 *
 *   agop.linear(x, w, b|nil) -> y                          x (B, In), w (Out, In), b (Out)
 *   agop.ag_linear_backward(x, w, gy, gw|nil, gb|nil, need_gx) -> gx|nil    (gw, gb: +=) */
#include "../engine/linear.h"
#include "agl.h"
#include "kcheck.h"

#include <limits.h>

/* Checks x (B, In) and w (Out, In) at args 1 and 2. */
static void check_linear(lua_State *L, const char *fname, int *nb, int *in, int *out) {
    AgTensor *x = kc_tensor_dim(L, 1, fname, "input", 2, "(B, In)");
    AgTensor *w = kc_tensor_dim(L, 2, fname, "weight", 2, "(Out, In)");
    if (x->size[1] != w->size[1])
        luaL_error(L, "%s: input has %I features, weight expects %I (input %s, weight %s)",
                   fname, (lua_Integer)x->size[1], (lua_Integer)w->size[1], agl_shape(x, 0),
                   agl_shape(w, 1));
    if (x->size[0] > INT_MAX || x->size[1] > INT_MAX || w->size[0] > INT_MAX)
        luaL_error(L, "%s: sizes too large (input %s, weight %s)", fname, agl_shape(x, 0),
                   agl_shape(w, 1));
    *nb = (int)x->size[0], *in = (int)x->size[1], *out = (int)w->size[0];
    AgError err = AG_ERROR_INIT;
    if (ag_linear_check(*nb, *in, *out, &err))
        luaL_error(L, "%s: %s (input %s, weight %s)", fname, err.msg + 8, agl_shape(x, 0),
                   agl_shape(w, 1));
}

static int l_linear(lua_State *L) {
    int nb, in, out;
    check_linear(L, "linear", &nb, &in, &out);
    int has_b = !lua_isnoneornil(L, 3);
    if (has_b) kc_tensor_sized(L, 3, "linear", "bias", 1, (int64_t[]){out});
    const AgTensor *x = agl_check_contiguous(L, 1), *w = agl_check_contiguous(L, 2);
    const AgTensor *b = has_b ? agl_check_contiguous(L, 3) : NULL;
    AgTensor *y = agl_push_tensor(L, "linear", 2, (int64_t[]){nb, out});
    AgError err = agl_error_value();
    if (ag_linear_forward(y->data, x->data, w->data, b ? b->data : NULL, nb, in, out, &err))
        return agl_error(L, &err);
    return 1;
}

static int l_linear_backward(lua_State *L) {
    const char *fname = "linear_backward";
    int nb, in, out;
    check_linear(L, fname, &nb, &in, &out);
    kc_tensor_sized(L, 3, fname, "output gradient", 2, (int64_t[]){nb, out});
    AgTensor *gw = kc_opt_inplace(L, 4, fname, "weight gradient", 2, (int64_t[]){out, in});
    AgTensor *gb = kc_opt_inplace(L, 5, fname, "bias gradient", 1, (int64_t[]){out});
    int need_gx = kc_opt_bool(L, 6, fname, "need_gx");
    if (lua_gettop(L) > 6) lua_settop(L, 6);
    const AgTensor *x = agl_check_contiguous(L, 1), *w = agl_check_contiguous(L, 2);
    const AgTensor *gy = agl_check_contiguous(L, 3);
    AgTensor *gx = NULL;
    if (need_gx)
        gx = agl_push_tensor(L, fname, 2, (int64_t[]){nb, in});
    else
        lua_pushnil(L);
    AgError err = agl_error_value();
    if (ag_linear_backward(gx ? gx->data : NULL, gw ? gw->data : NULL, gb ? gb->data : NULL,
                           gy->data, x->data, w->data, nb, in, out, &err))
        return agl_error(L, &err);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"linear", l_linear}, {"linear_backward", l_linear_backward}, {NULL, NULL}};

void agl_open_linear(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
