/* agl.h - what binding files share: the Tensor userdata and the error bridge.
 *
 * Only bindings/ includes lua.h. A Tensor userdata ("agop.Tensor") holds an AgTensor
 * header; when it owns its memory the floats follow the header inside the same
 * userdata (so Lua's collector sees every byte), and when it is a view its first user
 * value holds the base userdata, which keeps the storage alive.
 *
 * Naming: a binding file is named after the engine file it binds (conv.c binds
 * engine/conv.c); one that binds several is named after the Lua concept they serve
 * (features.c: engine/agop.c and engine/linalg.c; canvas.c: engine/canvas.c and font.c;
 * generator.c: engine/rng.c; tensor*.c: engine/tensor.c, split by concept).
 * module.c is the `agop` module root, main.c the host, agl.c this header's implementation.
 *
 * Each bindings/<name>.c except main.c, module.c and agl.c defines
 *     void agl_open_<name>(lua_State *L);
 * called with the agop module table on top of the stack; it adds its functions to it
 * (and methods to the Tensor type through agl_tensor_methods). The Makefile finds these
 * files by name, so a new binding file needs no registration elsewhere. */
#ifndef AGL_H
#define AGL_H

#include "../engine/ag.h"
#include "../engine/rng.h"
#include "../engine/tensor.h"

#include <lauxlib.h>
#include <lua.h>

#define AGL_TENSOR "agop.Tensor"

/* The tensor at arg, or a Lua error "bad argument #arg (agop.Tensor expected, got ...)". */
AgTensor *agl_check_tensor(lua_State *L, int arg);
AgTensor *agl_test_tensor(lua_State *L, int arg); /* NULL when not a tensor */

/* The __name of the value's metatable, else its type name ("number", "table"). */
const char *agl_typename(lua_State *L, int arg);

/* The userdata of type tname at arg, or a Lua error "bad argument #arg (tname expected,
 * got <type>)" (luaL_checkudata, with the type named by its __name). */
void *agl_check_type(lua_State *L, int arg, const char *tname);
/* Creates the metatable tname: the methods table as __index, then metamethods (either
 * may be NULL). The stack is left as it was. */
void agl_new_type(lua_State *L, const char *tname, const luaL_Reg *methods,
                  const luaL_Reg *metamethods);

/* Like agl_check_tensor, but guarantees contiguous data: a non-contiguous tensor is
 * copied, and the copy replaces stack slot arg (so it stays alive for the call). */
AgTensor *agl_check_contiguous(lua_State *L, int arg);

/* Pushes a new contiguous tensor of the given sizes, zero-filled, owned by Lua's GC.
 * Raises a Lua error for negative or absurd sizes (fname names the caller). */
AgTensor *agl_push_tensor(lua_State *L, const char *fname, int dim, const int64_t *size);
/* Pushes a new contiguous copy of t. */
AgTensor *agl_push_copy(lua_State *L, const AgTensor *t);
/* Pushes the userdata that holds the storage of the tensor at arg (the tensor itself, or
 * a view's base); returns 1 when the tensor owns its storage, 0 for a view. */
int agl_push_storage(lua_State *L, int arg);
/* Pushes a view of the tensor at stack index base_idx with the given header (data,
 * sizes and strides inside base's storage). */
AgTensor *agl_push_view(lua_State *L, int base_idx, const AgTensor *view);

/* "2x3x4"; returns a pointer into a buffer that lives until the next call on that slot
 * (slot 0..3 lets one message name several shapes). */
const char *agl_shape(const AgTensor *t, int slot);

/* Raises the engine error as a Lua error; never returns. */
int agl_error(lua_State *L, const AgError *err);

/* An AgError wired to the host's interrupt flag (Ctrl-C). */
AgError agl_error_value(void);
/* The interrupt flag itself (set by the host's SIGINT handler, cleared when raised). */
extern volatile sig_atomic_t agl_interrupt;
/* How many Ctrl-C the host has received while code ran (never cleared): Lua tells an
 * interrupt from other errors by this count (agop.interrupts()), not by the error text. */
extern volatile sig_atomic_t agl_interrupts;

/* Pushes the Tensor methods table (the metatable's __index), to add methods to it. */
void agl_tensor_methods(lua_State *L);

/* Integer argument checks that reject NaN, fractions and out-of-range values with a
 * message naming fname: "conv2d: stride must be an integer in [1, 1024], got 0". */
int64_t agl_check_int(lua_State *L, int arg, const char *fname, const char *what, int64_t lo,
                      int64_t hi);
/* agl_check_int and agl_check_finite, or def when arg is none or nil (as luaL_opt*). */
int64_t agl_opt_int(lua_State *L, int arg, const char *fname, const char *what, int64_t lo,
                    int64_t hi, int64_t def);
double agl_opt_finite(lua_State *L, int arg, const char *fname, const char *what, double def);
/* A dimension argument (1-based, negative counts from the end) as a 0-based index into
 * t's dimensions, or an error naming fname. */
int agl_check_dim(lua_State *L, int arg, const AgTensor *t, const char *fname);
/* A finite number, or an error naming fname and what. */
double agl_check_finite(lua_State *L, int arg, const char *fname, const char *what);

/* The agop module (bindings/module.c) and the host's set-up of a fresh state whose standard
 * libraries are open: <repo>/lua first on package.path (the repository is found from the
 * executable, <repo>/agoplua or <repo>/build-*\/...), package.preload.agop and the global
 * agop. bindings/main.c and the fuzz harnesses (tests/fuzz/) share it. */
int luaopen_agop(lua_State *L);
void agl_open_host(lua_State *L);
/* Threads of OpenBLAS and OpenMP. */
void agl_set_threads(int n);

/* Generators ("agop.Generator" userdata, bindings/generator.c). agl_opt_generator: the
 * generator at arg, the default one (seeded by agop.manual_seed) when arg is none or nil,
 * else an error naming fname and the argument. */
#define AGL_GENERATOR "agop.Generator"
AgRng *agl_check_generator(lua_State *L, int arg);
AgRng *agl_test_generator(lua_State *L, int arg);
AgRng *agl_default_generator(lua_State *L);
AgRng *agl_opt_generator(lua_State *L, int arg, const char *fname);

/* The double-precision (n, n) accumulator of agop.dmatrix (bindings/features.c); other
 * bindings (dist.c) read its buffer. */
#define AGL_DMATRIX "agop.DMatrix"
typedef struct AglDMatrix {
    int64_t n;
    double data[]; /* (n, n) */
} AglDMatrix;

#endif
