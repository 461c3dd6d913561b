/* generator.c - the agop.Generator userdata (engine/rng.c's AgRng): seeding, state for
 * checkpoints, draws, and the default generator that agop.manual_seed seeds. */
#include "agl.h"

#include <stdlib.h>
#include <string.h>

AgRng *agl_test_generator(lua_State *L, int arg) {
    return luaL_testudata(L, arg, AGL_GENERATOR);
}

AgRng *agl_check_generator(lua_State *L, int arg) {
    return agl_check_type(L, arg, AGL_GENERATOR);
}

static AgRng *push_generator(lua_State *L, uint64_t seed) {
    AgRng *g = lua_newuserdatauv(L, sizeof(AgRng), 0);
    ag_rng_seed(g, seed);
    luaL_setmetatable(L, AGL_GENERATOR);
    return g;
}

AgRng *agl_default_generator(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, "agop.default_generator") != LUA_TUSERDATA) {
        lua_pop(L, 1);
        push_generator(L, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "agop.default_generator");
    }
    AgRng *g = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return g;
}

AgRng *agl_opt_generator(lua_State *L, int arg, const char *fname) {
    if (lua_isnoneornil(L, arg)) return agl_default_generator(L);
    AgRng *g = agl_test_generator(L, arg);
    if (!g)
        luaL_error(L, "%s: argument %d must be an agop.Generator or nil, got %s", fname, arg,
                   agl_typename(L, arg));
    return g;
}

static uint64_t check_seed(lua_State *L, int arg, const char *fname) {
    return (uint64_t)agl_check_int(L, arg, fname, "seed", 0, (int64_t)1 << 53);
}

static int l_generator(lua_State *L) {
    uint64_t seed = lua_isnoneornil(L, 1) ? 0 : check_seed(L, 1, "Generator");
    push_generator(L, seed);
    return 1;
}

/* the generator that draws when none is named (seeded by manual_seed) */
static int l_default_generator(lua_State *L) {
    agl_default_generator(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "agop.default_generator");
    return 1;
}

static int l_manual_seed(lua_State *L) {
    ag_rng_seed(agl_default_generator(L), check_seed(L, 1, "manual_seed"));
    return 0;
}

static int g_seed(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, (lua_Integer)g->seed);
        return 1;
    }
    ag_rng_seed(g, check_seed(L, 2, "Generator:seed"));
    return 0;
}

/* state as a string of 40 bytes, for checkpoints */
static int g_get_state(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    lua_pushlstring(L, (const char *)g, sizeof *g);
    return 1;
}

static int g_set_state(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (n != sizeof *g)
        return luaL_error(L, "Generator:set_state: expected %d bytes, got %d", (int)sizeof *g,
                          (int)n);
    AgRng st;
    memcpy(&st, s, sizeof st);
    if ((st.s[0] | st.s[1] | st.s[2] | st.s[3]) == 0)
        return luaL_error(L, "Generator:set_state: the state is all zeros (not one that "
                             "get_state gives: the generator would draw 0 forever)");
    *g = st;
    return 0;
}

static int g_uniform(lua_State *L) {
    lua_pushnumber(L, ag_rng_uniform(agl_check_generator(L, 1)));
    return 1;
}

static int g_normal(lua_State *L) {
    lua_pushnumber(L, ag_rng_normal(agl_check_generator(L, 1)));
    return 1;
}

/* g:random(n) -> integer in [1, n] */
static int g_random(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    int64_t n = agl_check_int(L, 2, "Generator:random", "n", 1, INT64_MAX / 2);
    lua_pushinteger(L, (lua_Integer)ag_rng_below(g, (uint64_t)n) + 1);
    return 1;
}

/* g:permutation(n) -> Lua table, a uniform random permutation of 1..n (Fisher-Yates) */
static int g_permutation(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    int64_t n = agl_check_int(L, 2, "Generator:permutation", "n", 0, 1 << 28);
    int64_t *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) return luaL_error(L, "Generator:permutation: out of memory");
    for (int64_t i = 0; i < n; i++) p[i] = i + 1;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ag_rng_below(g, (uint64_t)(i + 1));
        int64_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, p[i]);
        lua_rawseti(L, -2, i + 1);
    }
    free(p);
    return 1;
}

static int g_tostring(lua_State *L) {
    AgRng *g = agl_check_generator(L, 1);
    lua_pushfstring(L, "agop.Generator(seed %I)", (lua_Integer)g->seed);
    return 1;
}

static const luaL_Reg gen_methods[] = {{"seed", g_seed},
                                       {"get_state", g_get_state},
                                       {"set_state", g_set_state},
                                       {"uniform", g_uniform},
                                       {"normal", g_normal},
                                       {"random", g_random},
                                       {"permutation", g_permutation},
                                       {NULL, NULL}};

static const luaL_Reg gen_funcs[] = {{"Generator", l_generator},
                                     {"default_generator", l_default_generator},
                                     {"manual_seed", l_manual_seed},
                                     {NULL, NULL}};

static const luaL_Reg gen_meta[] = {{"__tostring", g_tostring}, {NULL, NULL}};

void agl_open_generator(lua_State *L) {
    agl_new_type(L, AGL_GENERATOR, gen_methods, gen_meta);
    luaL_setfuncs(L, gen_funcs, 0);
}
