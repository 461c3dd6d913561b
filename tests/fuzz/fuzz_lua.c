/* fuzz_lua.c - the libFuzzer driver of every harness: the agoplua host's Lua state with
 * the agop module, and a target written in Lua (tests/fuzz/<target>.lua, chosen at build
 * time with -DFUZZ_TARGET='"name"'), so each harness runs the reader users call.
 *
 * The target file returns function(data): it gets each input as a string, calls the
 * reader, and may check properties with fuzz.fail(msg). A Lua error is a normal outcome
 * (a clean refusal of a bad file); only a crash, a sanitizer report, fuzz.fail, a leak
 * of time (-timeout) or memory (-rss_limit_mb, -malloc_limit_mb) is a finding.
 *
 * One state serves every input (a fresh one costs the whole agop module); the target
 * keeps nothing between calls, and a full collection after each input frees what it
 * made, so libFuzzer's leak check (mallocs against frees of one input) sees only the
 * C code's leaks, and stays cheap.
 *
 * Coverage: the Lua interpreter is not instrumented, so a line hook feeds libFuzzer
 * (through its extra-counters section) one counter per pair (previous line, line) of
 * Lua code run: the fuzzer sees branches taken inside json.lua or io.lua as it sees
 * edges of the C code.
 *
 * What targets get, in the global table `fuzz`:
 *   fuzz.dir                  a private temporary folder (readers take paths):
 *                             $AGOP_FUZZ_TMP, or a fresh one under /dev/shm
 *   fuzz.here                 this folder (<repo>/tests/fuzz), for shared Lua files
 *   fuzz.fail(msg)            a finding: prints msg and aborts
 *   fuzz.gzip(s [, level])    s as one gzip member (zlib)
 *   fuzz.png_fix_crc(s)       s with every PNG chunk's CRC recomputed, so that mutated
 *                             chunks reach libpng's parsers instead of its CRC check */
#include "../../bindings/agl.h"

#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET='\"name\"' (tests/fuzz/<name>.lua)"
#endif

#define LUA_COUNTERS (1 << 16)

/* read by libFuzzer as coverage features (its __libfuzzer_extra_counters section) */
__attribute__((
    used, section("__libfuzzer_extra_counters"))) static uint8_t lua_counters[LUA_COUNTERS];
static uint64_t prev_line;

static lua_State *state;
static int target_ref = LUA_NOREF;
static char tmpdir[256];

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static void line_hook(lua_State *L, lua_Debug *ar) {
    if (!lua_getinfo(L, "S", ar)) return;
    /* a chunk's source string lives as long as the chunk: its address names the file */
    uint64_t here = mix((uint64_t)(uintptr_t)ar->source * 1000003u + (uint64_t)ar->currentline);
    uint8_t *c = &lua_counters[(here ^ prev_line) % LUA_COUNTERS];
    if (*c < 255) (*c)++;
    prev_line = here >> 1;
}

static int l_fail(lua_State *L) {
    fprintf(stderr, "fuzz_%s: property failed: %s\n", FUZZ_TARGET, luaL_checkstring(L, 1));
    abort();
}

static int l_gzip(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int level = (int)luaL_optinteger(L, 2, 6);
    if (level < 0 || level > 9) level = 6;
    z_stream z = {0};
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return luaL_error(L, "fuzz.gzip: deflateInit2 failed");
    uLong cap = deflateBound(&z, (uLong)n);
    Bytef *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return luaL_error(L, "fuzz.gzip: out of memory");
    }
    z.next_in = (Bytef *)s, z.avail_in = (uInt)n;
    z.next_out = out, z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return luaL_error(L, "fuzz.gzip: deflate failed");
    }
    lua_pushlstring(L, (const char *)out, len);
    free(out);
    return 1;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int l_png_fix_crc(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, n);
    memcpy(p, s, n);
    size_t i = 8; /* after the signature: length, type, data, crc */
    while (i + 12 <= n) {
        uint32_t len = be32(p + i);
        if (len > n - i - 12) break;
        uLong crc = crc32(0, p + i + 4, len + 4);
        unsigned char *q = p + i + 8 + len;
        q[0] = (unsigned char)(crc >> 24), q[1] = (unsigned char)(crc >> 16);
        q[2] = (unsigned char)(crc >> 8), q[3] = (unsigned char)crc;
        i += 12 + (size_t)len;
    }
    luaL_pushresultsize(&b, n);
    return 1;
}

static void remove_tmpdir(void) {
    if (!tmpdir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_%s: could not remove %s\n", FUZZ_TARGET, tmpdir);
}

static void die(const char *what) {
    fprintf(stderr, "fuzz_%s: %s: %s\n", FUZZ_TARGET, what,
            state && lua_isstring(state, -1) ? lua_tostring(state, -1) : "");
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    agl_set_threads(1); /* one core per fuzzer: the machine is shared */
    /* AGOP_FUZZ_TMP: a folder the caller made and removes (tests/fuzz/run.sh does, since
     * libFuzzer often ends without running atexit handlers) */
    const char *given = getenv("AGOP_FUZZ_TMP");
    if (given && *given) {
        snprintf(tmpdir, sizeof tmpdir, "%s", given);
    } else {
        snprintf(tmpdir, sizeof tmpdir, "/dev/shm/agop-fuzz-%s-XXXXXX", FUZZ_TARGET);
        if (!mkdtemp(tmpdir)) die("cannot create a temporary folder");
        atexit(remove_tmpdir);
    }
    lua_State *L = state = luaL_newstate();
    if (!L) die("cannot create the Lua state");
    luaL_openlibs(L);
    agl_open_host(L);
    static const luaL_Reg funcs[] = {
        {"fail", l_fail}, {"gzip", l_gzip}, {"png_fix_crc", l_png_fix_crc}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    lua_pushstring(L, tmpdir);
    lua_setfield(L, -2, "dir");
    /* this folder, under the repository agl_open_host found: <repo>/lua/?.lua is the
     * first template of package.path */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    const char *end = path ? strstr(path, "/lua/?.lua") : NULL;
    if (!end) die("agl_open_host found no repository");
    lua_pushlstring(L, path, (size_t)(end - path));
    lua_pushliteral(L, "/tests/fuzz");
    lua_concat(L, 2);
    lua_setfield(L, -4, "here");
    lua_pop(L, 2);
    lua_setglobal(L, "fuzz");
    lua_getglobal(L, "fuzz");
    lua_getfield(L, -1, "here");
    lua_pushfstring(L, "%s/%s.lua", lua_tostring(L, -1), FUZZ_TARGET);
    if (luaL_loadfile(L, lua_tostring(L, -1)) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        die("cannot load the target");
    /* a function, or a table with __call (a target that also serves make_corpus.lua) */
    int callable = lua_isfunction(L, -1);
    if (!callable && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
        lua_pop(L, 1);
        callable = 1;
    }
    if (!callable) die("the target file must return a function");
    target_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    lua_sethook(L, line_hook, LUA_MASKLINE, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = state;
    prev_line = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, target_ref);
    lua_pushlstring(L, (const char *)data, size);
    lua_pcall(L, 1, 0, 0); /* an error is a clean refusal: not a finding */
    lua_settop(L, 0);
    /* twice: objects with a __gc (files, tensors) are finalized in one cycle and freed
     * in the next */
    lua_gc(L, LUA_GCCOLLECT);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
