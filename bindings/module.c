/* module.c - the `agop` module root (luaopen_agop): registers every binding file;
 * threads, clocks, versions.
 * Lua-level additions (lazy submodules agop.nn, agop.plot, ..., agop.show, agop.save and
 * agop.load) come from lua/agop/base.lua, required at the end. */
#include "agl.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t agl_interrupt = 0;
volatile sig_atomic_t agl_interrupts = 0;

/* declared by OpenBLAS, not in every cblas.h */
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);

#define AGL_OPEN(name) void agl_open_##name(lua_State *L);
#include "bindings_list.h"
#undef AGL_OPEN

void agl_set_threads(int n) {
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

static int l_set_threads(lua_State *L) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t n = agl_check_int(L, 1, "set_threads", "n", 1, cores > 0 ? 4 * cores : 256);
    agl_set_threads((int)n);
    return 0;
}

static int l_get_threads(lua_State *L) {
    lua_pushinteger(L, omp_get_max_threads());
    return 1;
}

/* seconds on a monotonic clock, for timing */
static int l_time(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    return 1;
}

/* peak and current resident memory in bytes (VmHWM, VmRSS), 0 when unknown */
static int l_memory(lua_State *L) {
    FILE *f = fopen("/proc/self/status", "r");
    long long hwm = 0, rss = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmHWM:", 6)) sscanf(line + 6, "%lld", &hwm);
        if (!strncmp(line, "VmRSS:", 6)) sscanf(line + 6, "%lld", &rss);
    }
    if (f) fclose(f);
    lua_pushinteger(L, hwm * 1024);
    lua_pushinteger(L, rss * 1024);
    return 2;
}

/* {core=, config=, threads=} of the OpenBLAS in use */
static int l_blas_info(lua_State *L) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, openblas_get_corename());
    lua_setfield(L, -2, "core");
    lua_pushstring(L, openblas_get_config());
    lua_setfield(L, -2, "config");
    lua_pushinteger(L, openblas_get_num_threads());
    lua_setfield(L, -2, "threads");
    return 1;
}

/* Checks and clears the interrupt flag: raises "interrupted" when it was set. Long Lua
 * loops may call it; engine loops poll the flag themselves. */
static int l_check_interrupt(lua_State *L) {
    if (agl_interrupt) {
        agl_interrupt = 0;
        return luaL_error(L, "interrupted");
    }
    return 0;
}

/* agop.interrupts() -> how many Ctrl-C stopped running code since the start: an error
 * is an interrupt when this count moved while the code ran (the message may be any). */
static int l_interrupts(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)agl_interrupts);
    return 1;
}

/* true when standard output (fd 1) or the given fd is a terminal */
static int l_isatty(lua_State *L) {
    int fd = (int)agl_opt_int(L, 1, "isatty", "fd", 0, INT_MAX, 1);
    lua_pushboolean(L, isatty(fd));
    return 1;
}

static const luaL_Reg funcs[] = {{"set_threads", l_set_threads},
                                 {"isatty", l_isatty},
                                 {"get_threads", l_get_threads},
                                 {"time", l_time},
                                 {"memory", l_memory},
                                 {"blas_info", l_blas_info},
                                 {"check_interrupt", l_check_interrupt},
                                 {"interrupts", l_interrupts},
                                 {NULL, NULL}};

int luaopen_agop(lua_State *L) {
    luaL_newlib(L, funcs);
    int mod = lua_gettop(L);
#define AGL_OPEN(name)                                                                         \
    agl_open_##name(L);                                                                        \
    lua_settop(L, mod);
#include "bindings_list.h"
#undef AGL_OPEN
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, mod, "version");
    lua_pushstring(L, png_get_libpng_ver(NULL));
    lua_setfield(L, mod, "libpng_version");
    /* the Lua half: require('agop.base')(agop) */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "agop.base");
    lua_call(L, 1, 1);
    lua_pushvalue(L, mod);
    lua_call(L, 1, 0);
    lua_settop(L, mod);
    return 1;
}

/* ---- the host's set-up, shared by bindings/main.c and the fuzz harnesses ---------- */

/* The repository: the nearest folder above the executable that holds lua/agop/ (the
 * binary is <repo>/agoplua, <repo>/build-*\/agoplua or a fuzz harness under
 * <repo>/build-fuzz/fuzz/). 0 on success. */
static int find_root(char *root, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash || slash == exe) return -1;
        *slash = '\0';
        char probe[PATH_MAX + 16];
        struct stat st;
        snprintf(probe, sizeof probe, "%s/lua/agop", exe);
        if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (strlen(exe) >= cap) return -1;
            memcpy(root, exe, strlen(exe) + 1);
            return 0;
        }
    }
    return -1;
}

/* package[field] = before .. package[field] .. after */
static void wrap_path(lua_State *L, const char *field, const char *before, const char *after) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, field);
    const char *old = lua_tostring(L, -1);
    lua_pushfstring(L, "%s%s%s", before, old ? old : "", after);
    lua_setfield(L, -3, field);
    lua_pop(L, 2);
}

/* <repo>/lua first, so scripts run from any folder find agop.*; /usr/share/lua/5.4 kept
 * (luaunit lives there) even when LUA_PATH leaves it out. */
static void set_paths(lua_State *L) {
    char root[PATH_MAX];
    const char *sys = "/usr/share/lua/5.4/?.lua";
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    int has_sys = lua_tostring(L, -1) && strstr(lua_tostring(L, -1), sys);
    lua_pop(L, 2);
    const char *after =
        has_sys ? "" : ";/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua";
    if (find_root(root, sizeof root) == 0) {
        lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", root, root);
        wrap_path(L, "path", lua_tostring(L, -1), after);
        lua_pushfstring(L, "%s/lua/?.so;", root);
        wrap_path(L, "cpath", lua_tostring(L, -1), "");
        lua_pop(L, 2);
    } else {
        wrap_path(L, "path", "", after);
    }
}

/* See agl.h: <repo>/lua on package.path, package.preload.agop and the global agop. */
void agl_open_host(lua_State *L) {
    set_paths(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_agop);
    lua_setfield(L, -2, "agop");
    lua_pop(L, 2);
    luaL_requiref(L, "agop", luaopen_agop, 1);
    lua_pop(L, 1);
}
