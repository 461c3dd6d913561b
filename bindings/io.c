/* io.c - raw tensor data in files, for lua/agop/io.lua (which parses .npy and
 * safetensors headers) and for anyone who needs an atomic write.
 *
 *   agop.read_raw(path, offset, dtype, sizes) -> tensor
 *       the float32 tensor of the given sizes (a list, {} for a scalar) read from the
 *       numel elements of type dtype ("F32", "F64", "F16", "BF16", "I64", "I32", "I16",
 *       "I8", "U8", "BOOL"; little-endian) at byte offset `offset`; the range must lie
 *       inside the file
 *   agop.write_atomic(path, parts)
 *       writes the parts in order to a temporary file, fsyncs it, renames it over path;
 *       a part is a string (raw bytes), a tensor (stored as F32) or {tensor, dtype}
 *       with dtype "F32", "F64" or "I64". On error nothing is left behind.
 *   agop.file_size(path) -> bytes */
#include "../engine/io.h"
#include "agl.h"

#include <stdlib.h>
#include <string.h>

static AgDtype check_dtype(lua_State *L, int arg, const char *fname) {
    const char *s = luaL_checkstring(L, arg);
    AgDtype dt;
    if (ag_dtype_from_name(s, &dt))
        luaL_error(L,
                   "%s: unknown dtype '%s' (F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL)",
                   fname, s);
    return dt;
}

static int l_read_raw(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int64_t offset = agl_check_int(L, 2, "read_raw", "offset", 0, INT64_MAX / 2);
    AgDtype dt = check_dtype(L, 3, "read_raw");
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_Integer dim = luaL_len(L, 4);
    if (dim > AG_MAXDIM)
        return luaL_error(L, "read_raw: %s: %d dimensions, at most %d are supported", path,
                          (int)dim, AG_MAXDIM);
    int64_t size[AG_MAXDIM];
    for (int d = 0; d < dim; d++) {
        lua_geti(L, 4, d + 1);
        size[d] = agl_check_int(L, -1, "read_raw", "size", 0, AG_MAXNUMEL);
        lua_pop(L, 1);
    }
    /* check the range before allocating: a lying header must not cost memory */
    AgError err = agl_error_value();
    int64_t numel, nbytes, fsize;
    if (ag_check_sizes((int)dim, size, &numel, &err))
        return luaL_error(L, "read_raw: %s: %s", path, err.msg);
    if (ag_file_size(path, &fsize, &err)) return agl_error(L, &err);
    if (ag_mul_size(numel, ag_dtype_size(dt), &nbytes) || offset > fsize ||
        nbytes > fsize - offset)
        return luaL_error(L,
                          "read_raw: %s: %I elements of %s at byte %I need %I bytes, the file "
                          "has %I",
                          path, (lua_Integer)numel, ag_dtype_name(dt), (lua_Integer)offset,
                          (lua_Integer)(offset + numel * (int64_t)ag_dtype_size(dt)),
                          (lua_Integer)fsize);
    AgTensor *t = agl_push_tensor(L, "read_raw", (int)dim, size);
    if (ag_read_elems(t->data, path, offset, numel, dt, &err)) return agl_error(L, &err);
    return 1;
}

static int l_write_atomic(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n < 0 || n > 1 << 20) return luaL_error(L, "write_atomic: too many parts (%I)", n);
    /* parts and any contiguous copies stay on the stack for the call */
    luaL_checkstack(L, (int)n + 8, "write_atomic: too many parts");
    AgWritePart *parts = lua_newuserdatauv(L, sizeof(AgWritePart) * (size_t)(n ? n : 1), 0);
    memset(parts, 0, sizeof(AgWritePart) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        AgWritePart *p = &parts[i];
        int ty = lua_geti(L, 2, i + 1);
        p->dt = AG_DT_F32;
        if (ty == LUA_TSTRING) {
            size_t len;
            p->bytes = lua_tolstring(L, -1, &len);
            p->nbytes = (int64_t)len;
            continue; /* the string stays on the stack, so its bytes stay alive */
        }
        if (ty == LUA_TTABLE && !agl_test_tensor(L, -1)) {
            lua_geti(L, -1, 2);
            const char *s = lua_tostring(L, -1);
            if (!s || ag_dtype_from_name(s, &p->dt) ||
                (p->dt != AG_DT_F32 && p->dt != AG_DT_F64 && p->dt != AG_DT_I64))
                return luaL_error(
                    L, "write_atomic: part %d: dtype must be F32, F64 or I64, got %s", i + 1,
                    s ? s : luaL_typename(L, -1));
            lua_pop(L, 1);
            lua_geti(L, -1, 1);
            lua_remove(L, -2);
        }
        AgTensor *t = agl_test_tensor(L, -1);
        if (!t)
            return luaL_error(
                L,
                "write_atomic: part %d must be a string, a tensor or {tensor, dtype}, got %s",
                i + 1, luaL_typename(L, -1));
        t = agl_check_contiguous(L, -1);
        p->data = t->data;
        p->n = ag_numel(t);
    }
    AgError err = agl_error_value();
    if (ag_write_atomic(path, parts, (int)n, &err)) return agl_error(L, &err);
    return 0;
}

static int l_file_size(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    AgError err = agl_error_value();
    int64_t size;
    if (ag_file_size(path, &size, &err)) return agl_error(L, &err);
    lua_pushinteger(L, (lua_Integer)size);
    return 1;
}

static const luaL_Reg funcs[] = {{"read_raw", l_read_raw},
                                 {"write_atomic", l_write_atomic},
                                 {"file_size", l_file_size},
                                 {NULL, NULL}};

void agl_open_io(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
