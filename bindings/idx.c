/* idx.c - agop.read_idx: IDX files (MNIST) straight into a float tensor.
 *
 *   agop.read_idx(path [, opts]) -> tensor, dims
 *     tensor: float32, the file's sizes (first size cut to opts.limit), values as opts say
 *     dims:   the header's sizes as a Lua list ({60000, 28, 28}), all items
 *   opts (all optional):
 *     limit = N        keep the first N items (a raw file is still validated whole; a
 *                      gzip file is inflated only as far as they need)
 *     max_label = K    every byte must lie in 0..K (label files)
 *     pad = P          pad the last two sizes by P zero pixels on each side (rank >= 3)
 *     mean =, std =    normalize: y = (x / 255 - mean) / std, after padding, as
 *                      torchvision's ToTensor, Pad(P), Normalize(mean, std) do; without
 *                      them the values are the raw bytes 0..255
 *     channel = true   insert a size-1 channel dimension after the first: (N, 1, H, W)
 * The conversion (pad + normalize) is fused here so a 60000-image file costs one pass
 * over memory. Errors name the file and the fault. */
#include "../engine/idx.h"
#include "agl.h"

#include <math.h>
#include <string.h>

#define IDX_BOX "agop.IdxBuffer"

/* The decoded bytes live in a userdata with a __gc, so a Lua error anywhere below
 * (a bad option, out of memory) cannot leak them. */
static int box_gc(lua_State *L) {
    ag_idx_free(luaL_checkudata(L, 1, IDX_BOX));
    return 0;
}

static int opt_field(lua_State *L, int opts, const char *key) {
    if (opts == 0) return 0;
    return lua_getfield(L, opts, key) != LUA_TNIL ? 1 : (lua_pop(L, 1), 0);
}

static int l_read_idx(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int opts = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
        /* unknown keys are typos: say so */
        static const char *known[] = {"limit", "max_label", "pad", "mean",
                                      "std",   "channel",   NULL};
        lua_pushnil(L);
        while (lua_next(L, opts)) {
            int ok = 0;
            if (lua_type(L, -2) == LUA_TSTRING)
                for (int i = 0; known[i]; i++) ok |= strcmp(lua_tostring(L, -2), known[i]) == 0;
            if (!ok) {
                lua_pop(L, 1);
                return luaL_error(L, "read_idx: unknown option '%s'",
                                  luaL_tolstring(L, -1, NULL));
            }
            lua_pop(L, 1);
        }
    }
    int64_t limit = -1, max_label = -1, pad = 0;
    int norm = 0, channel = 0;
    double mean = 0, std = 1;
    if (opt_field(L, opts, "limit"))
        limit = agl_check_int(L, -1, "read_idx", "limit", 0, INT64_MAX / 2);
    if (opt_field(L, opts, "max_label"))
        max_label = agl_check_int(L, -1, "read_idx", "max_label", 0, 255);
    if (opt_field(L, opts, "pad")) pad = agl_check_int(L, -1, "read_idx", "pad", 0, 4096);
    if (opt_field(L, opts, "mean"))
        mean = agl_check_finite(L, -1, "read_idx", "mean"), norm |= 1;
    if (opt_field(L, opts, "std")) std = agl_check_finite(L, -1, "read_idx", "std"), norm |= 2;
    if (opt_field(L, opts, "channel")) channel = lua_toboolean(L, -1);
    if (norm == 1 || norm == 2)
        return luaL_error(L, "read_idx: give both mean and std, or neither");
    if (norm && !(std > 0)) return luaL_error(L, "read_idx: std must be > 0, got %f", std);

    AgIdx *box = lua_newuserdatauv(L, sizeof(AgIdx), 0);
    memset(box, 0, sizeof *box);
    if (luaL_newmetatable(L, IDX_BOX)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    AgError err = agl_error_value();
    if (ag_idx_read(box, path, limit, (int)max_label, &err)) return agl_error(L, &err);

    if (pad > 0 && box->dim < 3)
        return luaL_error(
            L, "read_idx: %s: pad needs items of at least 2 dimensions, the file has rank %d",
            path, box->dim);
    /* an empty image padded is all border: its size would come from the header alone */
    if (pad > 0 && (box->size[box->dim - 2] == 0 || box->size[box->dim - 1] == 0))
        return luaL_error(L,
                          "read_idx: %s: pad needs images of at least 1x1 pixels, the file "
                          "holds %Ix%I",
                          path, (lua_Integer)box->size[box->dim - 2],
                          (lua_Integer)box->size[box->dim - 1]);
    if (channel && box->dim + 1 > AG_MAXDIM)
        return luaL_error(L, "read_idx: %s: rank %d is too large for channel=true", path,
                          box->dim);
    int64_t size[AG_MAXDIM + 1];
    int dim = 0;
    for (int d = 0; d < box->dim; d++) {
        if (d == 1 && channel) size[dim++] = 1;
        int64_t s = box->size[d];
        if (pad > 0 && d >= box->dim - 2) s += 2 * pad;
        size[dim++] = s;
    }
    if (channel && box->dim == 1) size[dim++] = 1;
    AgTensor *t = agl_push_tensor(L, "read_idx", dim, size);
    ag_idx_to_float(t->data, box, 0, box->size[0], (int)pad, norm ? 255.0f : 1.0f, (float)mean,
                    (float)std);
    lua_createtable(L, box->dim, 0);
    for (int d = 0; d < box->dim; d++) {
        lua_pushinteger(L, d == 0 ? box->items : box->size[d]);
        lua_rawseti(L, -2, d + 1);
    }
    ag_idx_free(box);
    return 2;
}

static const luaL_Reg funcs[] = {{"read_idx", l_read_idx}, {NULL, NULL}};

void agl_open_idx(lua_State *L) {
    luaL_setfuncs(L, funcs, 0);
}
