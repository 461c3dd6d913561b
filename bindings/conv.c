/* conv.c - agop.conv2d and agop.conv2d_backward (engine/conv.c).
 *
 *   agop.conv2d(x, w, b|nil, stride, pad) -> y
 *   agop.conv2d_backward(x, w, gy, stride, pad, gw|nil, gb|nil, need_gx) -> gx|nil
 *       x (B, Ci, H, W), w (Co, Ci, K, K), b (Co), y and gy (B, Co, Ho, Wo);
 *       gw and gb are accumulated into (+=); stride defaults to 1, pad to 0. */
#include "../engine/conv.h"
#include "agl.h"
#include "kcheck.h"

#include <string.h>

#define MAX_STRIDE 4096
#define MAX_PAD 4096

/* Checks x, w, stride and pad (args 1, 2, sarg, sarg + 1) and fills s. */
static void check_conv(lua_State *L, const char *fname, int sarg, ConvShape *s) {
    AgTensor *x = kc_tensor_dim(L, 1, fname, "input", 4, "(B, Ci, H, W)");
    AgTensor *w = kc_tensor_dim(L, 2, fname, "weight", 4, "(Co, Ci, K, K)");
    int stride = lua_isnoneornil(L, sarg)
                     ? 1
                     : (int)agl_check_int(L, sarg, fname, "stride", 1, MAX_STRIDE);
    int pad = lua_isnoneornil(L, sarg + 1)
                  ? 0
                  : (int)agl_check_int(L, sarg + 1, fname, "padding", 0, MAX_PAD);
    AgError err = AG_ERROR_INIT;
    if (conv2d_shape(s, x->size, w->size, stride, pad, &err))
        luaL_error(L, "%s: %s (input %s, weight %s)", fname,
                   err.msg + (strncmp(err.msg, "conv2d: ", 8) ? 0 : 8), agl_shape(x, 0),
                   agl_shape(w, 1));
}

static int l_conv2d(lua_State *L) {
    ConvShape s;
    check_conv(L, "conv2d", 4, &s);
    int has_b = !lua_isnoneornil(L, 3);
    if (has_b) kc_tensor_sized(L, 3, "conv2d", "bias", 1, (int64_t[]){s.co});
    const AgTensor *x = agl_check_contiguous(L, 1), *w = agl_check_contiguous(L, 2);
    const AgTensor *b = has_b ? agl_check_contiguous(L, 3) : NULL;
    AgTensor *y = agl_push_tensor(L, "conv2d", 4, (int64_t[]){s.b, s.co, s.ho, s.wo});
    float *scratch = kc_scratch(L, conv2d_scratch_size(&s));
    AgError err = agl_error_value();
    if (conv2d_forward(y->data, scratch, x->data, w->data, b ? b->data : NULL, &s, &err))
        return agl_error(L, &err);
    return 1;
}

static int l_conv2d_backward(lua_State *L) {
    const char *fname = "conv2d_backward";
    ConvShape s;
    check_conv(L, fname, 4, &s);
    kc_tensor_sized(L, 3, fname, "output gradient", 4, (int64_t[]){s.b, s.co, s.ho, s.wo});
    const AgTensor *w0 = agl_check_tensor(L, 2);
    AgTensor *gw = kc_opt_inplace(L, 6, fname, "weight gradient", 4, w0->size);
    AgTensor *gb = kc_opt_inplace(L, 7, fname, "bias gradient", 1, (int64_t[]){s.co});
    int need_gx = kc_opt_bool(L, 8, fname, "need_gx");
    if (lua_gettop(L) > 8) lua_settop(L, 8);
    const AgTensor *x = agl_check_contiguous(L, 1), *w = agl_check_contiguous(L, 2);
    const AgTensor *gy = agl_check_contiguous(L, 3);
    AgTensor *gx = NULL;
    if (need_gx)
        gx = agl_push_tensor(L, fname, 4, (int64_t[]){s.b, s.ci, s.h, s.w});
    else
        lua_pushnil(L);
    float *scratch = (gx || gw) ? kc_scratch(L, conv2d_scratch_size(&s)) : NULL;
    AgError err = agl_error_value();
    if (conv2d_backward(gx ? gx->data : NULL, gw ? gw->data : NULL, gb ? gb->data : NULL,
                        scratch, gy->data, x->data, w->data, &s, &err))
        return agl_error(L, &err);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"conv2d", l_conv2d}, {"conv2d_backward", l_conv2d_backward}, {NULL, NULL}};

void agl_open_conv(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
