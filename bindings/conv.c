/* conv.c - agop.conv2d and agop.ag_conv2d_backward (engine/conv.c).
 *
 *   agop.conv2d(x, w, b|nil, stride, pad) -> y
 *   agop.conv2d_shape(x, w, stride, pad) -> {B, Co, Ho, Wo}: the output's sizes, after the
 *       checks conv2d makes (nn.Conv2d asks it before it picks a backend)
 *   agop.ag_conv2d_backward(x, w, gy, stride, pad, gw|nil, gb|nil, need_gx) -> gx|nil
 *       x (B, Ci, H, W), w (Co, Ci, K, K), b (Co), y and gy (B, Co, Ho, Wo);
 *       gw and gb are accumulated into (+=); stride defaults to 1, pad to 0.
 *
 * Planned convolutions (engine/conv_plan.c, oneDNN), one plan per shape and batch size:
 *   agop.conv2d_plan(x, w, stride, pad, algo) -> plan, or nil and a message when this
 *       build or shape has no oneDNN path; algo 'auto' (default), 'direct', 'winograd',
 *       'auto_direct_forward' (auto with a direct forward: see engine/conv_plan.h)
 *   plan:forward(x, w, b|nil, y|nil) -> y      (y: an output tensor to reuse)
 *   plan:backward(x, w, gy, gw|nil, gb|nil, gx) -> gx|nil
 *       gx: false/nil (skip), true (a new tensor) or a tensor to reuse
 *   plan:info() -> {forward =, input_grad =, weight_grad = (oneDNN implementations),
 *                   bytes = (held), workspace = (bytes needed during a call: the shared
 *                   kernel scratch of kcheck.h, one for all plans)}
 *   agop.have_dnnl() -> boolean */
#include "../engine/conv.h"
#include "../engine/conv_plan.h"
#include "agl.h"
#include "kcheck.h"

#include <string.h>

#define MAX_STRIDE 4096
#define MAX_PAD 4096

/* Checks x, w, stride and pad (args 1, 2, sarg, sarg + 1) and fills s. */
static void check_conv(lua_State *L, const char *fname, int sarg, AgConvShape *s) {
    AgTensor *x = kc_tensor_dim(L, 1, fname, "input", 4, "(B, Ci, H, W)");
    AgTensor *w = kc_tensor_dim(L, 2, fname, "weight", 4, "(Co, Ci, K, K)");
    int stride = (int)agl_opt_int(L, sarg, fname, "stride", 1, MAX_STRIDE, 1);
    int pad = (int)agl_opt_int(L, sarg + 1, fname, "padding", 0, MAX_PAD, 0);
    AgError err = AG_ERROR_INIT;
    if (ag_conv2d_shape(s, x->size, w->size, stride, pad, &err))
        luaL_error(L, "%s: %s (input %s, weight %s)", fname, err.msg, agl_shape(x, 0),
                   agl_shape(w, 1));
}

static int l_conv2d(lua_State *L) {
    AgConvShape s;
    check_conv(L, "conv2d", 4, &s);
    int has_b = !lua_isnoneornil(L, 3);
    if (has_b) kc_tensor_sized(L, 3, "conv2d", "bias", 1, (int64_t[]){s.co});
    const AgTensor *x = agl_check_contiguous(L, 1), *w = agl_check_contiguous(L, 2);
    const AgTensor *b = has_b ? agl_check_contiguous(L, 3) : NULL;
    AgTensor *y = agl_push_tensor(L, "conv2d", 4, (int64_t[]){s.b, s.co, s.ho, s.wo});
    float *scratch = kc_scratch(L, ag_conv2d_scratch_size(&s));
    AgError err = agl_error_value();
    if (ag_conv2d_forward(y->data, scratch, x->data, w->data, b ? b->data : NULL, &s, &err))
        return agl_error(L, &err);
    return 1;
}

static int l_conv2d_shape(lua_State *L) {
    AgConvShape s;
    check_conv(L, "conv2d_shape", 3, &s);
    const int64_t y[4] = {s.b, s.co, s.ho, s.wo};
    lua_createtable(L, 4, 0);
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, (lua_Integer)y[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_conv2d_backward(lua_State *L) {
    const char *fname = "conv2d_backward";
    AgConvShape s;
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
    float *scratch = (gx || gw) ? kc_scratch(L, ag_conv2d_scratch_size(&s)) : NULL;
    AgError err = agl_error_value();
    if (ag_conv2d_backward(gx ? gx->data : NULL, gw ? gw->data : NULL, gb ? gb->data : NULL,
                           scratch, gy->data, x->data, w->data, &s, &err))
        return agl_error(L, &err);
    return 1;
}

#define CONV_PLAN "agop.ConvPlan"

typedef struct PlanBox {
    AgConvPlan *p;
    int algo;
} PlanBox;

static int l_conv2d_plan(lua_State *L) {
    static const char *const algos[] = {"auto", "direct", "winograd", "auto_direct_forward",
                                        NULL};
    AgConvShape s;
    check_conv(L, "conv2d_plan", 3, &s);
    int algo = luaL_checkoption(L, 5, "auto", algos);
    PlanBox *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->p = NULL;
    box->algo = algo;
    luaL_setmetatable(L, CONV_PLAN);
    AgError err = agl_error_value();
    if (ag_conv_plan_new(&box->p, &s, (AgConvAlgo)algo, &err)) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    return 1;
}

static PlanBox *check_plan(lua_State *L) {
    PlanBox *box = luaL_checkudata(L, 1, CONV_PLAN);
    if (!box->p) luaL_error(L, "conv plan: the plan is closed");
    return box;
}

/* x (arg xa) and w (arg xa + 1) must have the plan's sizes. */
static const AgConvShape *check_plan_args(lua_State *L, PlanBox *box, const char *fname,
                                          int xa) {
    const AgConvShape *s = ag_conv_plan_shape(box->p);
    kc_tensor_sized(L, xa, fname, "input", 4, (int64_t[]){s->b, s->ci, s->h, s->w});
    kc_tensor_sized(L, xa + 1, fname, "weight", 4, (int64_t[]){s->co, s->ci, s->k, s->k});
    return s;
}

/* The output tensor at arg (reused: contiguous, of the given sizes) or a new one. */
static AgTensor *opt_output(lua_State *L, int arg, const char *fname, const char *what,
                            const int64_t *size) {
    if (lua_isnoneornil(L, arg) || lua_isboolean(L, arg)) {
        AgTensor *t = agl_push_tensor(L, fname, 4, size);
        lua_replace(L, arg);
        return t;
    }
    return kc_opt_inplace(L, arg, fname, what, 4, size);
}

static int l_plan_forward(lua_State *L) {
    const char *fname = "ConvPlan:forward";
    PlanBox *box = check_plan(L);
    const AgConvShape *s = check_plan_args(L, box, fname, 2);
    if (!lua_isnoneornil(L, 4)) kc_tensor_sized(L, 4, fname, "bias", 1, (int64_t[]){s->co});
    lua_settop(L, 5);
    const AgTensor *x = agl_check_contiguous(L, 2), *w = agl_check_contiguous(L, 3);
    const AgTensor *b = lua_isnil(L, 4) ? NULL : agl_check_contiguous(L, 4);
    AgTensor *y = opt_output(L, 5, fname, "output", (int64_t[]){s->b, s->co, s->ho, s->wo});
    AgError err = agl_error_value();
    int64_t bytes;
    if (ag_conv_plan_prepare(box->p, 0, 0, &bytes, &err)) return agl_error(L, &err);
    void *work = kc_scratch(L, (bytes + 3) / 4);
    if (ag_conv_plan_forward(box->p, y->data, x->data, w->data, b ? b->data : NULL, work, bytes,
                             &err))
        return agl_error(L, &err);
    lua_settop(L, 5);
    return 1;
}

static int l_plan_backward(lua_State *L) {
    const char *fname = "ConvPlan:backward";
    PlanBox *box = check_plan(L);
    const AgConvShape *s = check_plan_args(L, box, fname, 2);
    const int64_t ysz[4] = {s->b, s->co, s->ho, s->wo}, xsz[4] = {s->b, s->ci, s->h, s->w};
    kc_tensor_sized(L, 4, fname, "output gradient", 4, ysz);
    AgTensor *gw = kc_opt_inplace(L, 5, fname, "weight gradient", 4,
                                  (int64_t[]){s->co, s->ci, s->k, s->k});
    AgTensor *gb = kc_opt_inplace(L, 6, fname, "bias gradient", 1, (int64_t[]){s->co});
    lua_settop(L, 7);
    int need_gx = lua_isboolean(L, 7) ? lua_toboolean(L, 7) : !lua_isnil(L, 7);
    const AgTensor *x = agl_check_contiguous(L, 2), *w = agl_check_contiguous(L, 3);
    const AgTensor *gy = agl_check_contiguous(L, 4);
    AgTensor *gx = need_gx ? opt_output(L, 7, fname, "input gradient", xsz) : NULL;
    AgError err = agl_error_value();
    int64_t bytes;
    if (ag_conv_plan_prepare(box->p, gx != NULL, gw || gb, &bytes, &err))
        return agl_error(L, &err);
    void *work = kc_scratch(L, (bytes + 3) / 4);
    if (ag_conv_plan_backward(box->p, gx ? gx->data : NULL, gw ? gw->data : NULL,
                              gb ? gb->data : NULL, gy->data, x->data, w->data, work, bytes,
                              &err))
        return agl_error(L, &err);
    if (!gx) lua_pushnil(L);
    return 1;
}

static int l_plan_info(lua_State *L) {
    PlanBox *box = check_plan(L);
    static const char *const keys[] = {"forward", "input_grad", "weight_grad"};
    lua_createtable(L, 0, 5);
    for (int i = 0; i < 3; i++) {
        lua_pushstring(L, ag_conv_plan_impl(box->p, i));
        lua_setfield(L, -2, keys[i]);
    }
    lua_pushinteger(L, ag_conv_plan_bytes(box->p));
    lua_setfield(L, -2, "bytes");
    int64_t work = 0;
    AgError err = agl_error_value();
    if (!ag_conv_plan_prepare(box->p, 0, 0, &work, &err)) {
        lua_pushinteger(L, work);
        lua_setfield(L, -2, "workspace");
    }
    return 1;
}

static int l_plan_gc(lua_State *L) {
    PlanBox *box = luaL_checkudata(L, 1, CONV_PLAN);
    ag_conv_plan_free(box->p);
    box->p = NULL;
    return 0;
}

static int l_plan_tostring(lua_State *L) {
    PlanBox *box = luaL_checkudata(L, 1, CONV_PLAN);
    if (!box->p) return lua_pushliteral(L, "agop.ConvPlan (closed)"), 1;
    const AgConvShape *s = ag_conv_plan_shape(box->p);
    lua_pushfstring(L, "agop.ConvPlan(%dx%dx%dx%d -> %d, %dx%d, stride %d, pad %d)", s->b,
                    s->ci, s->h, s->w, s->co, s->k, s->k, s->stride, s->pad);
    return 1;
}

static int l_have_dnnl(lua_State *L) {
    lua_pushboolean(L, ag_conv_have_dnnl());
    return 1;
}

static const luaL_Reg funcs[] = {{"conv2d", l_conv2d},
                                 {"conv2d_shape", l_conv2d_shape},
                                 {"conv2d_backward", l_conv2d_backward},
                                 {"conv2d_plan", l_conv2d_plan},
                                 {"have_dnnl", l_have_dnnl},
                                 {NULL, NULL}};

static const luaL_Reg plan_methods[] = {{"forward", l_plan_forward},
                                        {"backward", l_plan_backward},
                                        {"info", l_plan_info},
                                        {"close", l_plan_gc},
                                        {NULL, NULL}};

void agl_open_conv(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
    static const luaL_Reg plan_meta[] = {{"__gc", l_plan_gc},
                                         {"__close", l_plan_gc},
                                         {"__tostring", l_plan_tostring},
                                         {NULL, NULL}};
    agl_new_type(L, CONV_PLAN, plan_methods, plan_meta);
}
