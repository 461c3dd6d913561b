/* act.c - activations, softmax, cross-entropy and dropout (engine/act.c).
 *
 *   agop.relu(x [, out]) -> y ;  agop.ag_relu_backward(y, gy [, out]) -> gx  (gx = gy where
 *        y > 0); out: a buffer to refill when it fits (kcheck.h's kc_out)
 *   agop.softmax(x) -> y ; agop.log_softmax(x) -> y        (rows of (B, C), or one (C) row)
 *   agop.cross_entropy(logits, labels) -> loss, glogits    logits (B, C), labels (B) holding
 *        class ids 0..C-1; loss is the mean over the batch (a number, summed in double),
 *        glogits the gradient of that mean
 *   agop.dropout(x, p, gen|nil) -> y, mask                 mask is 0 or 1/(1-p), y = x*mask */
#include "../engine/act.h"
#include "agl.h"
#include "kcheck.h"

static int l_relu(lua_State *L) {
    agl_check_tensor(L, 1);
    lua_settop(L, 2);
    const AgTensor *x = agl_check_contiguous(L, 1);
    AgTensor *y = kc_out(L, 2, "relu", x->dim, x->size);
    ag_relu_forward(y->data, x->data, ag_numel(x));
    return 1;
}

static int l_relu_backward(lua_State *L) {
    AgTensor *y0 = agl_check_tensor(L, 1), *gy0 = agl_check_tensor(L, 2);
    if (!ag_same_shape(y0, gy0))
        return luaL_error(L, "relu_backward: output %s and gradient %s differ in shape",
                          agl_shape(y0, 0), agl_shape(gy0, 1));
    lua_settop(L, 3);
    const AgTensor *y = agl_check_contiguous(L, 1), *gy = agl_check_contiguous(L, 2);
    AgTensor *gx = kc_out(L, 3, "relu_backward", gy->dim, gy->size);
    ag_relu_backward(gx->data, gy->data, y->data, ag_numel(y));
    return 1;
}

/* (B, C) or a single (C) row; returns B and C. */
static void check_rows(lua_State *L, int arg, const char *fname, const char *what, int64_t *nb,
                       int64_t *nc) {
    AgTensor *x = agl_check_tensor(L, arg);
    if ((x->dim != 1 && x->dim != 2) || x->size[x->dim - 1] < 1)
        luaL_error(L, "%s: %s must be (B, C) or (C) with C >= 1, got %s", fname, what,
                   agl_shape(x, 0));
    *nb = x->dim == 2 ? x->size[0] : 1;
    *nc = x->size[x->dim - 1];
}

static int softmax_like(lua_State *L, const char *fname,
                        int (*f)(float *, const float *, int64_t, int64_t, AgError *)) {
    int64_t nb, nc;
    check_rows(L, 1, fname, "input", &nb, &nc);
    lua_settop(L, 1);
    const AgTensor *x = agl_check_contiguous(L, 1);
    AgTensor *y = agl_push_tensor(L, fname, x->dim, x->size);
    AgError err = agl_error_value();
    if (f(y->data, x->data, nb, nc, &err)) return agl_error(L, &err);
    return 1;
}

static int l_softmax(lua_State *L) {
    return softmax_like(L, "softmax", ag_softmax_forward);
}
static int l_log_softmax(lua_State *L) {
    return softmax_like(L, "log_softmax", ag_log_softmax_forward);
}

static int l_cross_entropy(lua_State *L) {
    int64_t nb, nc;
    AgTensor *lg = kc_tensor_dim(L, 1, "cross_entropy", "logits", 2, "(B, C)");
    check_rows(L, 1, "cross_entropy", "logits", &nb, &nc);
    AgTensor *lb = agl_check_tensor(L, 2);
    if (lb->dim != 1 || lb->size[0] != nb)
        return luaL_error(L, "cross_entropy: labels must be (%I) for logits %s, got %s",
                          (lua_Integer)nb, agl_shape(lg, 0), agl_shape(lb, 1));
    if (nb < 1)
        return luaL_error(L, "cross_entropy: the batch is empty (logits %s)", agl_shape(lg, 0));
    lua_settop(L, 2);
    const AgTensor *logits = agl_check_contiguous(L, 1), *labels = agl_check_contiguous(L, 2);
    double loss = 0.0;
    AgError err = agl_error_value();
    /* labels are checked before the gradient is allocated */
    if (ag_cross_entropy_forward(&loss, NULL, logits->data, labels->data, nb, nc, &err))
        return agl_error(L, &err);
    AgTensor *g = agl_push_tensor(L, "cross_entropy", 2, logits->size);
    if (ag_cross_entropy_forward(&loss, g->data, logits->data, labels->data, nb, nc, &err))
        return agl_error(L, &err);
    lua_pushnumber(L, loss);
    lua_insert(L, -2);
    return 2;
}

static int l_dropout(lua_State *L) {
    agl_check_tensor(L, 1);
    double p = agl_check_finite(L, 2, "dropout", "p");
    if (p < 0.0 || p > 1.0) return luaL_error(L, "dropout: p must be in [0, 1], got %f", p);
    AgRng *g;
    if (lua_isnoneornil(L, 3))
        g = agl_default_generator(L);
    else if (!(g = agl_test_generator(L, 3)))
        return luaL_error(L, "dropout: argument 3 must be an agop.Generator or nil, got %s",
                          luaL_typename(L, 3));
    lua_settop(L, 3);
    const AgTensor *x = agl_check_contiguous(L, 1);
    AgTensor *y = agl_push_tensor(L, "dropout", x->dim, x->size);
    AgTensor *mask = agl_push_tensor(L, "dropout", x->dim, x->size);
    AgError err = agl_error_value();
    if (ag_dropout_forward(y->data, mask->data, x->data, ag_numel(x), p, g, &err))
        return agl_error(L, &err);
    return 2;
}

static const luaL_Reg funcs[] = {{"relu", l_relu},
                                 {"relu_backward", l_relu_backward},
                                 {"softmax", l_softmax},
                                 {"log_softmax", l_log_softmax},
                                 {"cross_entropy", l_cross_entropy},
                                 {"dropout", l_dropout},
                                 {NULL, NULL}};

void agl_open_act(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
