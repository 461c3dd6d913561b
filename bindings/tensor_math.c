/* tensor_math.c - the Tensor's arithmetic (methods and metamethods), reductions and
 * products: argument checks and results here, the loops in engine/tensor.c. */
#include "agl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    double v = agl_opt_finite(L, 4, fname, "value", 1);
    if (!ag_same_shape(t, a) || !ag_same_shape(t, b))
        return luaL_error(L, "%s: shapes %s, %s and %s differ", fname, agl_shape(t, 0),
                          agl_shape(a, 1), agl_shape(b, 2));
    if (!ag_is_contiguous(t) || !ag_is_contiguous(a) || !ag_is_contiguous(b))
        return luaL_error(L, "%s: tensors must be contiguous", fname);
    ag_addcmul(t, (float)v, a, b, div);
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
    int d = agl_check_dim(L, 2, t, fname);
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
    lua_pushnumber(L, ag_dot(a, b));
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
    lua_pushboolean(L, ag_allclose(a, b, rtol, atol));
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
    lua_pushboolean(L, ag_all_finite(agl_check_contiguous(L, 1)));
    return 1;
}

static const luaL_Reg methods[] = {
    {"add", m_add},           {"add_", m_add_},         {"sub", m_sub},
    {"sub_", m_sub_},         {"mul", m_mul},           {"mul_", m_mul_},
    {"div", m_div},           {"div_", m_div_},         {"maximum", m_maximum},
    {"maximum_", m_maximum_}, {"minimum", m_minimum},   {"minimum_", m_minimum_},
    {"neg", m_neg},           {"neg_", m_neg_},         {"abs", m_abs},
    {"abs_", m_abs_},         {"exp", m_exp},           {"exp_", m_exp_},
    {"log", m_log},           {"log_", m_log_},         {"sqrt", m_sqrt},
    {"sqrt_", m_sqrt_},       {"sign", m_sign},         {"sign_", m_sign_},
    {"tanh", m_tanh},         {"tanh_", m_tanh_},       {"sigmoid", m_sigmoid},
    {"sigmoid_", m_sigmoid_}, {"pow", m_pow},           {"pow_", m_pow_},
    {"clamp", m_clamp},       {"clamp_", m_clamp_},     {"addcmul_", m_addcmul_},
    {"addcdiv_", m_addcdiv_}, {"sum", m_sum},           {"mean", m_mean},
    {"max", m_max},           {"min", m_min},           {"argmax", m_argmax},
    {"norm", m_norm},         {"dot", l_dot},           {"mm", l_mm},
    {"equal", m_equal},       {"isfinite", m_isfinite}, {NULL, NULL}};

static const luaL_Reg metamethods[] = {{"__add", mt_add}, {"__sub", mt_sub}, {"__mul", mt_mul},
                                       {"__div", mt_div}, {"__pow", mt_pow}, {"__unm", mt_unm},
                                       {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"dot", l_dot}, {"mm", l_mm}, {"allclose", l_allclose}, {NULL, NULL}};

void agl_open_tensor_math(lua_State *L) {
    int mod = lua_gettop(L);
    luaL_getmetatable(L, AGL_TENSOR);
    luaL_setfuncs(L, metamethods, 0);
    agl_tensor_methods(L);
    luaL_setfuncs(L, methods, 0);
    lua_settop(L, mod);
    luaL_setfuncs(L, funcs, 0);
}
