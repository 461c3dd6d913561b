/* ansatz.c - the CNFM / AGOP-power correlation without d x d matrices (engine/ansatz.c).
 *
 *   agop.ansatz_corr(S, w [, alpha = 0.5]) -> rho, rho_offdiag
 *        rho(W^T W, (W^T S W)^alpha) over all entries and over the entries i != j;
 *        S (c_out, c_out) symmetric, w (c_out, c_in, k, k) or (c_out, d) */
#include "../engine/ansatz.h"
#include "../engine/linalg.h"
#include "agl.h"

#include <math.h>

static int l_ansatz_corr(lua_State *L) {
    const char *fname = "ansatz_corr";
    AgTensor *s = agl_check_tensor(L, 1), *w = agl_check_tensor(L, 2);
    if ((w->dim != 4 && w->dim != 2) || ag_numel(w) == 0)
        return luaL_error(L, "%s: weight must be (c_out, c_in, k, k) or (c_out, d), got %s",
                          fname, agl_shape(w, 0));
    int64_t co = w->size[0], d = ag_numel(w) / co;
    if (s->dim != 2 || s->size[0] != co || s->size[1] != co)
        return luaL_error(L,
                          "%s: S is %s, expected %Ix%I (the weight %s has %I output channels)",
                          fname, agl_shape(s, 0), (lua_Integer)co, (lua_Integer)co,
                          agl_shape(w, 1), (lua_Integer)co);
    if (d < 2)
        return luaL_error(L, "%s: filters of %I entry: no correlation", fname, (lua_Integer)d);
    if (co > AG_EIG_MAXN)
        return luaL_error(L, "%s: c_out = %I is too large", fname, (lua_Integer)co);
    double alpha = agl_opt_finite(L, 3, fname, "exponent", 0.5);
    if (!(alpha > 0.0)) return luaL_error(L, "%s: exponent must be > 0, got %f", fname, alpha);
    s = agl_check_contiguous(L, 1);
    w = agl_check_contiguous(L, 2);
    for (int64_t i = 0; i < co * co; i++)
        if (!isfinite(s->data[i])) return luaL_error(L, "%s: S has a non-finite entry", fname);
    for (int64_t i = 0; i < co * d; i++)
        if (!isfinite(w->data[i]))
            return luaL_error(L, "%s: weight has a non-finite entry", fname);
    if (ag_asymmetry(s->data, co) > 1e-4)
        return luaL_error(L, "%s: S (%s) is not symmetric", fname, agl_shape(s, 0));
    double rho[2];
    AgError err = agl_error_value();
    if (ag_ansatz_corr(rho, s->data, w->data, co, d, alpha, &err)) return agl_error(L, &err);
    lua_pushnumber(L, rho[0]);
    lua_pushnumber(L, rho[1]);
    return 2;
}

static const luaL_Reg funcs[] = {{"ansatz_corr", l_ansatz_corr}, {NULL, NULL}};

void agl_open_ansatz(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
