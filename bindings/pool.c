/* pool.c - pooling (engine/pool.c).
 *
 *   agop.maxpool2d(x, k, stride, pad) -> y, idx    x (B, C, H, W); idx shaped like y holds
 *        the 0-based offset ih*W + iw of the (first) maximum in its input plane
 *   agop.ag_maxpool2d_backward(x, idx, gy) -> gx
 *   maxpool2d also takes (..., out_y, out_idx) and ag_maxpool2d_backward (..., out_gx):
 *   buffers to refill when they fit (kcheck.h's kc_out)
 *   agop.avgpool2d(x, k, stride, pad) -> y          (count_include_pad, PyTorch's default)
 *   agop.ag_avgpool2d_backward(x, gy, k, stride, pad) -> gx
 *   agop.adaptive_avgpool2d(x, oh, ow) -> y ; agop.ag_adaptive_avgpool2d_backward(x, gy) -> gx
 * stride defaults to k and pad to 0, as in PyTorch; x in the backward calls gives the
 * input's shape only. */
#include "../engine/pool.h"
#include "agl.h"
#include "kcheck.h"

#include <string.h>

#define MAX_K 4096

/* x at arg 1, k, stride, pad at args karg, karg + 1, karg + 2; fills s. */
static void check_pool(lua_State *L, const char *fname, int karg, AgPoolShape *s) {
    AgTensor *x = kc_tensor_dim(L, 1, fname, "input", 4, "(B, C, H, W)");
    int k = (int)agl_check_int(L, karg, fname, "kernel size", 1, MAX_K);
    int stride = lua_isnoneornil(L, karg + 1)
                     ? k
                     : (int)agl_check_int(L, karg + 1, fname, "stride", 1, MAX_K);
    int pad = lua_isnoneornil(L, karg + 2)
                  ? 0
                  : (int)agl_check_int(L, karg + 2, fname, "padding", 0, MAX_K);
    AgError err = AG_ERROR_INIT;
    if (ag_pool2d_shape(s, x->size, k, stride, pad, fname, &err))
        luaL_error(L, "%s (input %s)", err.msg, agl_shape(x, 0));
}

static int l_maxpool2d(lua_State *L) {
    AgPoolShape s;
    check_pool(L, "maxpool2d", 2, &s);
    lua_settop(L, 6);
    const AgTensor *x = agl_check_contiguous(L, 1);
    int64_t ys[4] = {s.b, s.c, s.ho, s.wo};
    AgTensor *y = kc_out(L, 5, "maxpool2d", 4, ys);
    AgTensor *idx = kc_out(L, 6, "maxpool2d", 4, ys);
    if (idx == y) return luaL_error(L, "maxpool2d: output and indices share a buffer");
    AgError err = agl_error_value();
    if (ag_maxpool2d_forward(y->data, idx->data, x->data, &s, &err)) return agl_error(L, &err);
    return 2;
}

static int l_maxpool2d_backward(lua_State *L) {
    const char *fname = "maxpool2d_backward";
    AgTensor *x = kc_tensor_dim(L, 1, fname, "input", 4, "(B, C, H, W)");
    AgTensor *idx = kc_tensor_dim(L, 2, fname, "indices", 4, "(B, C, Ho, Wo)");
    AgTensor *gy = kc_tensor_dim(L, 3, fname, "output gradient", 4, "(B, C, Ho, Wo)");
    if (!ag_same_shape(idx, gy) || idx->size[0] != x->size[0] || idx->size[1] != x->size[1])
        return luaL_error(L,
                          "%s: indices %s and gradient %s must both be (B, C, Ho, Wo) for "
                          "input %s",
                          fname, agl_shape(idx, 0), agl_shape(gy, 1), agl_shape(x, 2));
    if (x->size[2] * x->size[3] > ((int64_t)1 << 24) || idx->size[2] > INT32_MAX ||
        idx->size[3] > INT32_MAX || ag_numel(x) == 0 || ag_numel(gy) == 0)
        return luaL_error(L, "%s: unsupported sizes (input %s, gradient %s)", fname,
                          agl_shape(x, 0), agl_shape(gy, 1));
    lua_settop(L, 4);
    const AgTensor *ic = agl_check_contiguous(L, 2), *gc = agl_check_contiguous(L, 3);
    AgTensor *gx = kc_out(L, 4, fname, 4, x->size);
    if (gx == ic || gx == gc)
        return luaL_error(L, "%s: the output buffer is one of the inputs", fname);
    AgError err = agl_error_value();
    if (ag_maxpool2d_backward(gx->data, ic->data, gc->data, x->size[0] * x->size[1],
                              (int)x->size[2], (int)x->size[3], (int)gy->size[2],
                              (int)gy->size[3], &err))
        return agl_error(L, &err);
    return 1;
}

static int l_avgpool2d(lua_State *L) {
    AgPoolShape s;
    check_pool(L, "avgpool2d", 2, &s);
    lua_settop(L, 4);
    const AgTensor *x = agl_check_contiguous(L, 1);
    AgTensor *y = agl_push_tensor(L, "avgpool2d", 4, (int64_t[]){s.b, s.c, s.ho, s.wo});
    AgError err = agl_error_value();
    if (ag_avgpool2d_forward(y->data, x->data, &s, &err)) return agl_error(L, &err);
    return 1;
}

static int l_avgpool2d_backward(lua_State *L) {
    const char *fname = "avgpool2d_backward";
    AgPoolShape s;
    check_pool(L, fname, 3, &s);
    kc_tensor_sized(L, 2, fname, "output gradient", 4, (int64_t[]){s.b, s.c, s.ho, s.wo});
    lua_settop(L, 5);
    const AgTensor *gy = agl_check_contiguous(L, 2);
    AgTensor *gx = agl_push_tensor(L, fname, 4, (int64_t[]){s.b, s.c, s.h, s.w});
    AgError err = agl_error_value();
    if (ag_avgpool2d_backward(gx->data, gy->data, &s, &err)) return agl_error(L, &err);
    return 1;
}

static void check_adaptive_x(lua_State *L, const char *fname, AgTensor *x) {
    if (x->size[0] * x->size[1] < 1 || x->size[2] < 1 || x->size[3] < 1 ||
        x->size[2] > INT32_MAX || x->size[3] > INT32_MAX)
        luaL_error(L, "%s: input %s must be non-empty", fname, agl_shape(x, 0));
}

static int l_adaptive_avgpool2d(lua_State *L) {
    const char *fname = "adaptive_avgpool2d";
    AgTensor *x0 = kc_tensor_dim(L, 1, fname, "input", 4, "(B, C, H, W)");
    check_adaptive_x(L, fname, x0);
    int oh = (int)agl_check_int(L, 2, fname, "output height", 1, 1 << 24);
    int ow = lua_isnoneornil(L, 3)
                 ? oh
                 : (int)agl_check_int(L, 3, fname, "output width", 1, 1 << 24);
    lua_settop(L, 3);
    const AgTensor *x = agl_check_contiguous(L, 1);
    AgTensor *y = agl_push_tensor(L, fname, 4, (int64_t[]){x->size[0], x->size[1], oh, ow});
    AgError err = agl_error_value();
    if (ag_adaptive_avgpool2d_forward(y->data, x->data, x->size[0] * x->size[1],
                                      (int)x->size[2], (int)x->size[3], oh, ow, &err))
        return agl_error(L, &err);
    return 1;
}

static int l_adaptive_avgpool2d_backward(lua_State *L) {
    const char *fname = "adaptive_avgpool2d_backward";
    AgTensor *x = kc_tensor_dim(L, 1, fname, "input", 4, "(B, C, H, W)");
    check_adaptive_x(L, fname, x);
    AgTensor *gy0 = kc_tensor_dim(L, 2, fname, "output gradient", 4, "(B, C, oh, ow)");
    if (gy0->size[0] != x->size[0] || gy0->size[1] != x->size[1] || gy0->size[2] < 1 ||
        gy0->size[3] < 1 || gy0->size[2] > (1 << 24) || gy0->size[3] > (1 << 24))
        return luaL_error(L, "%s: gradient %s does not fit input %s", fname, agl_shape(gy0, 0),
                          agl_shape(x, 1));
    lua_settop(L, 2);
    const AgTensor *gy = agl_check_contiguous(L, 2);
    AgTensor *gx = agl_push_tensor(L, fname, 4, x->size);
    AgError err = agl_error_value();
    if (ag_adaptive_avgpool2d_backward(gx->data, gy->data, x->size[0] * x->size[1],
                                       (int)x->size[2], (int)x->size[3], (int)gy->size[2],
                                       (int)gy->size[3], &err))
        return agl_error(L, &err);
    return 1;
}

static const luaL_Reg funcs[] = {{"maxpool2d", l_maxpool2d},
                                 {"maxpool2d_backward", l_maxpool2d_backward},
                                 {"avgpool2d", l_avgpool2d},
                                 {"avgpool2d_backward", l_avgpool2d_backward},
                                 {"adaptive_avgpool2d", l_adaptive_avgpool2d},
                                 {"adaptive_avgpool2d_backward", l_adaptive_avgpool2d_backward},
                                 {NULL, NULL}};

void agl_open_pool(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
