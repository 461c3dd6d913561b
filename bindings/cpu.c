/* cpu.c - agop.fma_peak (engine/cpu.c).
 *
 *   agop.fma_peak([threads [, seconds]]) -> GFLOP/s, isa
 *       the measured float FMA peak with AVX-512 (or AVX2) on `threads` threads (default:
 *       agop.get_threads()), for the speed figures of `make bench` */
#include "../engine/cpu.h"
#include "agl.h"

#include <omp.h>

static int l_fma_peak(lua_State *L) {
    int threads = (int)agl_opt_int(L, 1, "fma_peak", "threads", 1, 4096, omp_get_max_threads());
    double secs = agl_opt_finite(L, 2, "fma_peak", "seconds", 0.2);
    if (secs <= 0 || secs > 60) return luaL_error(L, "fma_peak: seconds must be in (0, 60]");
    const char *isa;
    lua_pushnumber(L, ag_cpu_fma_peak(threads, secs, &isa));
    lua_pushstring(L, isa);
    return 2;
}

static const luaL_Reg funcs[] = {{"fma_peak", l_fma_peak}, {NULL, NULL}};

void agl_open_cpu(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
