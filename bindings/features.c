/* features.c - Lua bindings of engine/linalg.c and engine/agop.c: the feature-analysis
 * numerics (lua/agop/features.lua builds on them).
 *
 *   M:eig() / agop.eig(M)          -> eigenvalues (n) ascending, eigenvectors (n, n) columns
 *   M:matpow(a) / agop.matpow(M, a)-> M^a (symmetric M, a > 0, negative eigenvalues -> 0)
 *   agop.nfm(w)                    -> W^T W (d, d), w (co, ci, k, k) or (co, d)
 *   agop.dmatrix(n)                -> an n x n double-precision accumulator (agop.DMatrix)
 *   agop.agop_accumulate(S, g)     -> S; S += sum over (b, h, w) of g g^T, g (B, co, H, W)
 *                                     or (B, co)
 *   agop.agop_unpool_relu(idx, p, gy, h, w [, out]) -> gx (k B, C, h, w): the input
 *                                     gradient of ReLU then max-pooling in one pass (idx the
 *                                     pool's arg-max, p its output (B, C, Ho, Wo), gy
 *                                     (k B, C, Ho, Wo): k stacked gradients of the same images)
 *   agop.agop_accumulate_pooled(S, idx, p, gy) -> true, or false (S unchanged) where there
 *                                     is no kernel for it: S += the sum of agop_accumulate
 *                                     over agop_unpool_relu(idx, p, gy, ...) without forming it
 *   agop.agop_relu_mask(y, g)      -> g; ReLU's input gradient in place, g (k B, ...) and
 *                                     y (B, ...) its output
 *   agop.agop_finish(S, w, n)      -> W^T S W / n (d, d)
 *   agop.agop_pow(S, w, n, a)      -> (W^T S W / n)^a through the rank-co factorization
 *                                     (S: a DMatrix, or a finite symmetric float tensor)
 *   agop.corr(A, B), agop.cosine(A, B) -> numbers (Pearson over entries; uncentered)
 *   agop.feature_map(M, x, k, pad) -> (H', W') map in [0, 1], x (C, H, W) or (1, C, H, W)
 * DMatrix methods: S:size() -> n, S:tensor([div]) -> float (n, n) copy of S (or of S / div,
 * rounded once), S:zero(), S:add(T) (T a DMatrix or a finite (n, n) tensor, added exactly),
 * S:get(i, j) (1-based, double). */
#include "../engine/agop.h"
#include "../engine/linalg.h"
#include "agl.h"
#include "kcheck.h"

#include <math.h>
#include <string.h>

#define DMATRIX AGL_DMATRIX
#define SYM_TOL 1e-4 /* relative asymmetry accepted by eig and matpow */

typedef AglDMatrix DMatrix;

static DMatrix *check_dmatrix(lua_State *L, int arg, const char *fname) {
    DMatrix *m = luaL_testudata(L, arg, DMATRIX);
    if (!m) {
        const char *got = luaL_typename(L, arg);
        if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
        luaL_error(L, "%s: argument #%d must be an agop.DMatrix (from agop.dmatrix(n)), got %s",
                   fname, arg, got);
    }
    return m;
}

static DMatrix *push_dmatrix(lua_State *L, int64_t n) {
    DMatrix *m = lua_newuserdatauv(L, sizeof(DMatrix) + (size_t)(n * n) * sizeof(double), 0);
    m->n = n;
    memset(m->data, 0, (size_t)(n * n) * sizeof(double));
    luaL_setmetatable(L, DMATRIX);
    return m;
}

/* a contiguous tensor whose entries are all finite, or an error naming fname/what */
static AgTensor *check_finite_tensor(lua_State *L, int arg, const char *fname,
                                     const char *what) {
    AgTensor *t = agl_check_contiguous(L, arg);
    int64_t n = ag_numel(t);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(t->data[i]))
            luaL_error(L, "%s: %s (%s) has a non-finite entry at offset %I", fname, what,
                       agl_shape(t, 0), (lua_Integer)i);
    return t;
}

/* a finite square symmetric (within SYM_TOL) matrix of at most maxn rows, named `what` in
 * the errors: the one check of symmetry and finiteness (eig, matpow, and the factor S of
 * agop_finish / agop_pow, which features.agop_expand passes on) */
static AgTensor *check_symmetric(lua_State *L, int arg, const char *fname, const char *what,
                                 int64_t maxn) {
    AgTensor *t = agl_check_tensor(L, arg);
    if (t->dim != 2 || t->size[0] != t->size[1] || t->size[0] < 1)
        luaL_error(L, "%s: %s must be a non-empty square matrix, got %s", fname, what,
                   agl_shape(t, 0));
    if (t->size[0] > maxn)
        luaL_error(L, "%s: %s %s is larger than %I x %I", fname, what, agl_shape(t, 0),
                   (lua_Integer)maxn, (lua_Integer)maxn);
    t = check_finite_tensor(L, arg, fname, what);
    double asym = ag_asymmetry(t->data, t->size[0]);
    if (asym > SYM_TOL)
        luaL_error(L, "%s: %s %s is not symmetric (max |a_ij - a_ji| / max |a| = %f > %f)",
                   fname, what, agl_shape(t, 0), asym, SYM_TOL);
    return t;
}

/* a conv weight (co, ci, k, k) or a matrix (co, d), finite; sets *co and *d */
static AgTensor *check_weight(lua_State *L, int arg, const char *fname, int64_t *co,
                              int64_t *d) {
    AgTensor *t = agl_check_tensor(L, arg);
    if ((t->dim != 4 && t->dim != 2) || ag_numel(t) == 0)
        luaL_error(L, "%s: weight must be (c_out, c_in, k, k) or (c_out, d), got %s", fname,
                   agl_shape(t, 0));
    t = check_finite_tensor(L, arg, fname, "weight");
    *co = t->size[0];
    *d = ag_numel(t) / t->size[0];
    return t;
}

static int l_eig(lua_State *L) {
    AgTensor *a = check_symmetric(L, 1, "eig", "matrix", AG_EIG_MAXN);
    int64_t n = a->size[0];
    AgTensor *ev = agl_push_tensor(L, "eig", 1, (int64_t[]){n});
    AgTensor *v = agl_push_tensor(L, "eig", 2, (int64_t[]){n, n});
    AgError err = agl_error_value();
    if (ag_eigh(ev->data, v->data, a->data, n, &err)) return agl_error(L, &err);
    return 2;
}

static int l_matpow(lua_State *L) {
    AgTensor *a = check_symmetric(L, 1, "matpow", "matrix", AG_EIG_MAXN);
    double alpha = agl_check_finite(L, 2, "matpow", "exponent");
    if (!(alpha > 0.0)) return luaL_error(L, "matpow: exponent must be > 0, got %f", alpha);
    int64_t n = a->size[0];
    AgTensor *y = agl_push_tensor(L, "matpow", 2, (int64_t[]){n, n});
    AgError err = agl_error_value();
    if (ag_sym_pow(y->data, a->data, n, alpha, &err)) return agl_error(L, &err);
    return 1;
}

static int l_nfm(lua_State *L) {
    int64_t co, d;
    AgTensor *w = check_weight(L, 1, "nfm", &co, &d);
    if (d > 65536) return luaL_error(L, "nfm: d = %I is too large", (lua_Integer)d);
    AgTensor *n = agl_push_tensor(L, "nfm", 2, (int64_t[]){d, d});
    AgError err = agl_error_value();
    if (ag_nfm(n->data, w->data, co, d, &err)) return agl_error(L, &err);
    return 1;
}

static int l_dmatrix(lua_State *L) {
    int64_t n = agl_check_int(L, 1, "dmatrix", "n", 1, 65536);
    push_dmatrix(L, n);
    return 1;
}

static int l_agop_accumulate(lua_State *L) {
    DMatrix *s = check_dmatrix(L, 1, "agop_accumulate");
    AgTensor *g = agl_check_tensor(L, 2);
    if (g->dim != 4 && g->dim != 2)
        return luaL_error(L, "agop_accumulate: gradient must be (B, C, H, W) or (B, C), got %s",
                          agl_shape(g, 0));
    if (g->size[1] != s->n)
        return luaL_error(L,
                          "agop_accumulate: gradient %s has %I channels, the accumulator "
                          "is %Ix%I",
                          agl_shape(g, 0), (lua_Integer)g->size[1], (lua_Integer)s->n,
                          (lua_Integer)s->n);
    g = agl_check_contiguous(L, 2); /* finiteness: checked by the engine (the diagonal) */
    int64_t hw = g->dim == 4 ? g->size[2] * g->size[3] : 1;
    AgError err = agl_error_value();
    if (ag_agop_accumulate(s->data, g->data, g->size[0], s->n, hw, &err))
        return agl_error(L, &err);
    lua_settop(L, 1);
    return 1;
}

/* agop_accumulate_pooled(S, idx, pooled, gy) -> true, or false when not done */
static int l_agop_accumulate_pooled(lua_State *L) {
    const char *fname = "agop_accumulate_pooled";
    DMatrix *s = check_dmatrix(L, 1, fname);
    AgTensor *idx = kc_tensor_dim(L, 2, fname, "indices", 4, "(B, C, Ho, Wo)");
    AgTensor *pooled = kc_tensor_dim(L, 3, fname, "pooled output", 4, "(B, C, Ho, Wo)");
    AgTensor *gy = kc_tensor_dim(L, 4, fname, "output gradient", 4, "(B, C, Ho, Wo)");
    if (!ag_same_shape(idx, pooled) || !ag_same_shape(idx, gy))
        return luaL_error(L, "%s: indices %s, pooled output %s and gradient %s differ", fname,
                          agl_shape(idx, 0), agl_shape(pooled, 1), agl_shape(gy, 2));
    if (idx->size[1] != s->n)
        return luaL_error(L, "%s: gradient %s has %I channels, the accumulator is %Ix%I", fname,
                          agl_shape(gy, 0), (lua_Integer)gy->size[1], (lua_Integer)s->n,
                          (lua_Integer)s->n);
    const AgTensor *ic = agl_check_contiguous(L, 2), *pc = agl_check_contiguous(L, 3),
                   *gc = agl_check_contiguous(L, 4);
    AgError err = agl_error_value();
    int done;
    if (ag_agop_accumulate_pooled(s->data, ic->data, pc->data, gc->data, gy->size[0], s->n,
                                  gy->size[2] * gy->size[3], &done, &err))
        return agl_error(L, &err);
    lua_pushboolean(L, done);
    return 1;
}

/* agop_unpool_relu(idx, pooled, gy, h, w [, out]) */
static int l_agop_unpool_relu(lua_State *L) {
    const char *fname = "agop_unpool_relu";
    AgTensor *idx = kc_tensor_dim(L, 1, fname, "indices", 4, "(B, C, Ho, Wo)");
    AgTensor *pooled = kc_tensor_dim(L, 2, fname, "pooled output", 4, "(B, C, Ho, Wo)");
    AgTensor *gy = kc_tensor_dim(L, 3, fname, "output gradient", 4, "(k B, C, Ho, Wo)");
    int64_t h = agl_check_int(L, 4, fname, "input height", 1, 1 << 24);
    int64_t w = agl_check_int(L, 5, fname, "input width", 1, 1 << 24);
    if (!ag_same_shape(idx, pooled) || gy->size[1] != idx->size[1] ||
        gy->size[2] != idx->size[2] || gy->size[3] != idx->size[3] || idx->size[0] < 1 ||
        gy->size[0] % idx->size[0] != 0)
        return luaL_error(L,
                          "%s: indices %s and pooled output %s must be (B, C, Ho, Wo) and the "
                          "gradient %s (k B, C, Ho, Wo)",
                          fname, agl_shape(idx, 0), agl_shape(pooled, 1), agl_shape(gy, 2));
    if (h * w > ((int64_t)1 << 24) || idx->size[2] > h || idx->size[3] > w || ag_numel(gy) == 0)
        return luaL_error(L, "%s: unsupported sizes (input %Ix%I, gradient %s)", fname,
                          (lua_Integer)h, (lua_Integer)w, agl_shape(gy, 0));
    lua_settop(L, 6);
    const AgTensor *ic = agl_check_contiguous(L, 1), *pc = agl_check_contiguous(L, 2),
                   *gc = agl_check_contiguous(L, 3);
    AgTensor *gx = kc_out(L, 6, fname, 4, (int64_t[]){gy->size[0], gy->size[1], h, w});
    if (gx == ic || gx == gc || gx == pc)
        return luaL_error(L, "%s: the output buffer is one of the inputs", fname);
    AgError err = agl_error_value();
    if (ag_agop_unpool_relu(gx->data, ic->data, gc->data, pc->data, gy->size[0] * gy->size[1],
                            idx->size[0] * idx->size[1], (int)h, (int)w, (int)gy->size[2],
                            (int)gy->size[3], &err))
        return agl_error(L, &err);
    return 1;
}

/* agop_relu_mask(y, g) -> g, g (k B, ...) masked in place by y (B, ...) > 0 */
static int l_agop_relu_mask(lua_State *L) {
    const char *fname = "agop_relu_mask";
    AgTensor *y = agl_check_tensor(L, 1), *g = agl_check_tensor(L, 2);
    int same =
        y->dim == g->dim && y->dim >= 1 && y->size[0] >= 1 && g->size[0] % y->size[0] == 0;
    for (int d = 1; same && d < y->dim; d++) same = y->size[d] == g->size[d];
    if (!same)
        return luaL_error(L,
                          "%s: ReLU output %s and gradient %s must be (B, ...) and (k B, ...)",
                          fname, agl_shape(y, 0), agl_shape(g, 1));
    if (!ag_is_contiguous(g))
        return luaL_error(L, "%s: the gradient is masked in place and must be contiguous",
                          fname);
    const AgTensor *yc = agl_check_contiguous(L, 1);
    if (yc == g) return luaL_error(L, "%s: the gradient is the ReLU output", fname);
    int64_t plane = y->size[0] > 0 ? ag_numel(y) / y->size[0] : 0;
    if (plane > 0) ag_agop_relu_mask(g->data, yc->data, g->size[0], y->size[0], plane);
    lua_settop(L, 2);
    return 1;
}

/* S += the float tensor a (n, n): each entry is exact in double */
static void add_tensor(DMatrix *s, const AgTensor *a) {
    for (int64_t i = 0; i < s->n * s->n; i++) s->data[i] += a->data[i];
}

/* S at arg 1 of agop_finish / agop_pow: an agop.DMatrix, or a float (co, co) tensor (as
 * features.agop's S_l / n), checked finite and symmetric and put in its place as a DMatrix */
static DMatrix *check_factor(lua_State *L, const char *fname) {
    if (!agl_test_tensor(L, 1)) return check_dmatrix(L, 1, fname);
    const AgTensor *a = check_symmetric(L, 1, fname, "S", 65536);
    DMatrix *s = push_dmatrix(L, a->size[0]);
    add_tensor(s, a);
    lua_replace(L, 1);
    return s;
}

/* common checks of agop_finish / agop_pow: S, w matching, n > 0 */
static AgTensor *finish_args(lua_State *L, const char *fname, DMatrix **s, int64_t *co,
                             int64_t *d, double *n) {
    *s = check_factor(L, fname);
    AgTensor *w = check_weight(L, 2, fname, co, d);
    if (*co != (*s)->n)
        luaL_error(L, "%s: weight %s has %I output channels, the accumulator is %Ix%I", fname,
                   agl_shape(w, 0), (lua_Integer)*co, (lua_Integer)(*s)->n,
                   (lua_Integer)(*s)->n);
    if (*d > 65536) luaL_error(L, "%s: d = %I is too large", fname, (lua_Integer)*d);
    *n = agl_check_finite(L, 3, fname, "number of images");
    if (!(*n > 0)) luaL_error(L, "%s: number of images must be > 0, got %f", fname, *n);
    return w;
}

static int l_agop_finish(lua_State *L) {
    DMatrix *s;
    int64_t co, d;
    double n;
    AgTensor *w = finish_args(L, "agop_finish", &s, &co, &d, &n);
    AgTensor *g = agl_push_tensor(L, "agop_finish", 2, (int64_t[]){d, d});
    AgError err = agl_error_value();
    if (ag_agop_finish(g->data, s->data, w->data, co, d, n, &err)) return agl_error(L, &err);
    return 1;
}

static int l_agop_pow(lua_State *L) {
    DMatrix *s;
    int64_t co, d;
    double n;
    AgTensor *w = finish_args(L, "agop_pow", &s, &co, &d, &n);
    double alpha = agl_check_finite(L, 4, "agop_pow", "exponent");
    if (!(alpha > 0.0)) return luaL_error(L, "agop_pow: exponent must be > 0, got %f", alpha);
    AgTensor *g = agl_push_tensor(L, "agop_pow", 2, (int64_t[]){d, d});
    AgError err = agl_error_value();
    if (ag_agop_pow(g->data, s->data, w->data, co, d, n, alpha, &err))
        return agl_error(L, &err);
    return 1;
}

static int similarity(lua_State *L, const char *fname,
                      int (*f)(double *, const float *, const float *, int64_t, AgError *)) {
    AgTensor *a = agl_check_tensor(L, 1), *b = agl_check_tensor(L, 2);
    if (!ag_same_shape(a, b))
        return luaL_error(L, "%s: shapes differ: %s vs %s", fname, agl_shape(a, 0),
                          agl_shape(b, 1));
    a = check_finite_tensor(L, 1, fname, "first argument");
    b = check_finite_tensor(L, 2, fname, "second argument");
    double v;
    AgError err = agl_error_value();
    if (f(&v, a->data, b->data, ag_numel(a), &err)) return agl_error(L, &err);
    lua_pushnumber(L, v);
    return 1;
}

static int l_corr(lua_State *L) {
    return similarity(L, "corr", ag_pearson);
}

static int l_cosine(lua_State *L) {
    return similarity(L, "cosine", ag_cosine);
}

static int l_feature_map(lua_State *L) {
    AgTensor *m = agl_check_tensor(L, 1), *x = agl_check_tensor(L, 2);
    int64_t k = agl_check_int(L, 3, "feature_map", "kernel size", 1, 64);
    int64_t pad = agl_check_int(L, 4, "feature_map", "padding", 0, 64);
    if (!(x->dim == 3 || (x->dim == 4 && x->size[0] == 1)))
        return luaL_error(L, "feature_map: image must be (C, H, W) or (1, C, H, W), got %s",
                          agl_shape(x, 0));
    int o = x->dim - 3;
    int64_t c = x->size[o], h = x->size[o + 1], w = x->size[o + 2], d = c * k * k;
    if (m->dim != 2 || m->size[0] != d || m->size[1] != d)
        return luaL_error(L,
                          "feature_map: matrix %s does not match image %s with kernel %I "
                          "(expected %Ix%I)",
                          agl_shape(m, 0), agl_shape(x, 1), (lua_Integer)k, (lua_Integer)d,
                          (lua_Integer)d);
    int64_t ho, wo;
    AgError err = agl_error_value();
    if (ag_feature_map_size(c, h, w, k, pad, &ho, &wo, &err))
        return luaL_error(L, "feature_map: %s (image %s)", err.msg, agl_shape(x, 0));
    m = check_finite_tensor(L, 1, "feature_map", "matrix");
    x = check_finite_tensor(L, 2, "feature_map", "image");
    AgTensor *out = agl_push_tensor(L, "feature_map", 2, (int64_t[]){ho, wo});
    if (ag_feature_map(out->data, m->data, x->data, c, h, w, k, pad, &err))
        return agl_error(L, &err);
    return 1;
}

/* ---------- DMatrix methods ---------- */

static int d_size(lua_State *L) {
    DMatrix *s = check_dmatrix(L, 1, "DMatrix:size");
    lua_pushinteger(L, (lua_Integer)s->n);
    return 1;
}

static int d_tensor(lua_State *L) {
    DMatrix *s = check_dmatrix(L, 1, "DMatrix:tensor");
    double div = 1.0;
    if (!lua_isnoneornil(L, 2)) {
        div = agl_check_finite(L, 2, "DMatrix:tensor", "divisor");
        if (!(div > 0.0))
            return luaL_error(L, "DMatrix:tensor: divisor must be > 0, got %f", div);
    }
    AgTensor *t = agl_push_tensor(L, "DMatrix:tensor", 2, (int64_t[]){s->n, s->n});
    for (int64_t i = 0; i < s->n * s->n; i++) t->data[i] = (float)(s->data[i] / div);
    return 1;
}

static int d_zero(lua_State *L) {
    DMatrix *s = check_dmatrix(L, 1, "DMatrix:zero");
    memset(s->data, 0, (size_t)(s->n * s->n) * sizeof(double));
    lua_settop(L, 1);
    return 1;
}

static int d_add(lua_State *L) {
    DMatrix *s = check_dmatrix(L, 1, "DMatrix:add");
    if (agl_test_tensor(L, 2)) { /* a float (n, n) tensor: each entry is exact in double */
        AgTensor *a = agl_check_tensor(L, 2);
        if (a->dim != 2 || a->size[0] != s->n || a->size[1] != s->n)
            return luaL_error(L, "DMatrix:add: tensor %s does not match the %Ix%I accumulator",
                              agl_shape(a, 0), (lua_Integer)s->n, (lua_Integer)s->n);
        add_tensor(s, check_finite_tensor(L, 2, "DMatrix:add", "tensor"));
        lua_settop(L, 1);
        return 1;
    }
    DMatrix *t = check_dmatrix(L, 2, "DMatrix:add");
    if (s->n != t->n)
        return luaL_error(L, "DMatrix:add: sizes differ: %Ix%I vs %Ix%I", (lua_Integer)s->n,
                          (lua_Integer)s->n, (lua_Integer)t->n, (lua_Integer)t->n);
    for (int64_t i = 0; i < s->n * s->n; i++) s->data[i] += t->data[i];
    lua_settop(L, 1);
    return 1;
}

static int d_get(lua_State *L) {
    DMatrix *s = check_dmatrix(L, 1, "DMatrix:get");
    int64_t i = agl_check_int(L, 2, "DMatrix:get", "row", 1, s->n);
    int64_t j = agl_check_int(L, 3, "DMatrix:get", "column", 1, s->n);
    lua_pushnumber(L, s->data[(i - 1) * s->n + (j - 1)]);
    return 1;
}

static int d_tostring(lua_State *L) {
    DMatrix *s = check_dmatrix(L, 1, "DMatrix:__tostring");
    lua_pushfstring(L, "agop.DMatrix(%Ix%I, double)", (lua_Integer)s->n, (lua_Integer)s->n);
    return 1;
}

static const luaL_Reg dmatrix_methods[] = {{"size", d_size}, {"tensor", d_tensor},
                                           {"zero", d_zero}, {"add", d_add},
                                           {"get", d_get},   {NULL, NULL}};

static const luaL_Reg tensor_methods[] = {{"eig", l_eig}, {"matpow", l_matpow}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"eig", l_eig},
                                 {"matpow", l_matpow},
                                 {"nfm", l_nfm},
                                 {"dmatrix", l_dmatrix},
                                 {"agop_accumulate", l_agop_accumulate},
                                 {"agop_accumulate_pooled", l_agop_accumulate_pooled},
                                 {"agop_unpool_relu", l_agop_unpool_relu},
                                 {"agop_relu_mask", l_agop_relu_mask},
                                 {"agop_finish", l_agop_finish},
                                 {"agop_pow", l_agop_pow},
                                 {"corr", l_corr},
                                 {"cosine", l_cosine},
                                 {"feature_map", l_feature_map},
                                 {NULL, NULL}};

void agl_open_features(lua_State *L) {
    int mod = lua_gettop(L);
    static const luaL_Reg dmatrix_meta[] = {{"__tostring", d_tostring}, {NULL, NULL}};
    agl_new_type(L, DMATRIX, dmatrix_methods, dmatrix_meta);
    agl_tensor_methods(L);
    luaL_setfuncs(L, tensor_methods, 0);
    lua_settop(L, mod);
    luaL_setfuncs(L, funcs, 0);
}
