/* batchnorm.c - agop.batchnorm2d and its backward (engine/batchnorm.c).
 *
 *   agop.batchnorm2d(x, gamma|nil, beta|nil, running_mean|nil, running_var|nil, training,
 *                    momentum, eps) -> y, save_mean, save_invstd
 *        x (B, C, H, W) (or (B, C)); gamma, beta, running_* (C). Training uses the batch
 *        statistics and updates running_* in place (PyTorch's rule, unbiased variance);
 *        evaluation uses running_*. momentum defaults to 0.1, eps to 1e-5.
 *   agop.ag_batchnorm2d_backward(x, gamma|nil, gy, save_mean, save_invstd, ggamma|nil,
 *                             gbeta|nil, training) -> gx           (ggamma, gbeta: +=) */
#include "../engine/batchnorm.h"
#include "agl.h"
#include "kcheck.h"

/* x at arg; fills B, C, H*W. */
static AgTensor *check_x(lua_State *L, int arg, const char *fname, const char *what,
                         int64_t *nb, int64_t *nc, int64_t *hw) {
    AgTensor *x = agl_check_tensor(L, arg);
    if (x->dim != 4 && x->dim != 2)
        luaL_error(L, "%s: %s must be (B, C, H, W) or (B, C), got %s", fname, what,
                   agl_shape(x, 0));
    *nb = x->size[0], *nc = x->size[1];
    *hw = x->dim == 4 ? x->size[2] * x->size[3] : 1;
    return x;
}

/* nil or a (C) tensor, read only */
static int opt_channel(lua_State *L, int arg, const char *fname, const char *what, int64_t nc) {
    if (lua_isnoneornil(L, arg)) return 0;
    kc_tensor_sized(L, arg, fname, what, 1, (int64_t[]){nc});
    return 1;
}

static const float *data_or_null(lua_State *L, int arg, int present) {
    return present ? agl_check_contiguous(L, arg)->data : NULL;
}

static int l_batchnorm2d(lua_State *L) {
    const char *fname = "batchnorm2d";
    int64_t nb, nc, hw;
    AgTensor *x0 = check_x(L, 1, fname, "input", &nb, &nc, &hw);
    int has_g = opt_channel(L, 2, fname, "gamma", nc);
    int has_b = opt_channel(L, 3, fname, "beta", nc);
    AgTensor *rm = kc_opt_inplace(L, 4, fname, "running_mean", 1, (int64_t[]){nc});
    AgTensor *rv = kc_opt_inplace(L, 5, fname, "running_var", 1, (int64_t[]){nc});
    int training = kc_opt_bool(L, 6, fname, "training");
    double momentum = lua_isnoneornil(L, 7) ? 0.1 : agl_check_finite(L, 7, fname, "momentum");
    double eps = lua_isnoneornil(L, 8) ? 1e-5 : agl_check_finite(L, 8, fname, "eps");
    if ((rm == NULL) != (rv == NULL))
        return luaL_error(L, "%s: give both running_mean and running_var, or neither", fname);
    if (!training && !rm)
        return luaL_error(L, "%s: evaluation mode needs running_mean and running_var", fname);
    AgError err = AG_ERROR_INIT;
    if (ag_batchnorm2d_check(nb, nc, hw, training, momentum, eps, &err))
        return luaL_error(L, "%s (input %s)", err.msg, agl_shape(x0, 0));
    lua_settop(L, 8);
    const AgTensor *x = agl_check_contiguous(L, 1);
    const float *g = data_or_null(L, 2, has_g), *b = data_or_null(L, 3, has_b);
    AgTensor *y = agl_push_tensor(L, fname, x->dim, x->size);
    AgTensor *sm = agl_push_tensor(L, fname, 1, (int64_t[]){nc});
    AgTensor *si = agl_push_tensor(L, fname, 1, (int64_t[]){nc});
    err = agl_error_value();
    if (ag_batchnorm2d_forward(y->data, sm->data, si->data, rm ? rm->data : NULL,
                               rv ? rv->data : NULL, x->data, g, b, nb, nc, hw, training,
                               momentum, eps, &err))
        return agl_error(L, &err);
    return 3;
}

static int l_batchnorm2d_backward(lua_State *L) {
    const char *fname = "batchnorm2d_backward";
    int64_t nb, nc, hw;
    AgTensor *x0 = check_x(L, 1, fname, "input", &nb, &nc, &hw);
    int has_g = opt_channel(L, 2, fname, "gamma", nc);
    kc_tensor_sized(L, 3, fname, "output gradient", x0->dim, x0->size);
    kc_tensor_sized(L, 4, fname, "save_mean", 1, (int64_t[]){nc});
    kc_tensor_sized(L, 5, fname, "save_invstd", 1, (int64_t[]){nc});
    AgTensor *gg = kc_opt_inplace(L, 6, fname, "gamma gradient", 1, (int64_t[]){nc});
    AgTensor *gb = kc_opt_inplace(L, 7, fname, "beta gradient", 1, (int64_t[]){nc});
    int training = kc_opt_bool(L, 8, fname, "training");
    AgError err = AG_ERROR_INIT;
    if (ag_batchnorm2d_check(nb, nc, hw, training, 0.0, 1.0, &err))
        return luaL_error(L, "%s (input %s)", err.msg, agl_shape(x0, 0));
    lua_settop(L, 8);
    const AgTensor *x = agl_check_contiguous(L, 1);
    const float *g = data_or_null(L, 2, has_g);
    const AgTensor *gy = agl_check_contiguous(L, 3);
    const AgTensor *sm = agl_check_contiguous(L, 4), *si = agl_check_contiguous(L, 5);
    AgTensor *gx = agl_push_tensor(L, fname, x->dim, x->size);
    err = agl_error_value();
    if (ag_batchnorm2d_backward(gx->data, gg ? gg->data : NULL, gb ? gb->data : NULL, gy->data,
                                x->data, g, sm->data, si->data, nb, nc, hw, training, &err))
        return agl_error(L, &err);
    return 1;
}

static const luaL_Reg funcs[] = {{"batchnorm2d", l_batchnorm2d},
                                 {"batchnorm2d_backward", l_batchnorm2d_backward},
                                 {NULL, NULL}};

void agl_open_batchnorm(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
