/* dist.c - MPI collectives over tensor buffers, for lua/agop/dist.lua (`agop.dist`).
 *
 * OpenMPI's libmpi is opened with dlopen by agop._mpi.init(), which lua/agop/dist.lua
 * calls only when the process was launched by mpirun or srun (OMPI_COMM_WORLD_SIZE or
 * PMIX_RANK in the environment). A plain `agoplua` never loads libmpi: linking it costs
 * every start-up ~5 ms of CPU (twice with the host's re-exec; see README "Running on a
 * cluster"), and a binary built here also runs where OpenMPI is not installed. Only
 * mpi.h's types and constants are used at build time; the library's handles
 * (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are OpenMPI's exported objects, found by
 * dlsym, so this file follows OpenMPI's ABI (libmpi.so.40: OpenMPI 3.x to 5.x).
 *
 *   agop._mpi.init()                  -> rank, size (MPI_Init_thread once, FUNNELED)
 *   agop._mpi.barrier()
 *   agop._mpi.allreduce(x, op)        x: contiguous tensor or DMatrix, in place
 *   agop._mpi.allreduce_numbers(op, a, b, ...) -> the reduced numbers (in double)
 *   agop._mpi.reduce(x, op, root)     in place on root; x unchanged elsewhere
 *   agop._mpi.broadcast(x, root)      in place
 *   agop._mpi.broadcast_string(s, root) -> root's string (s ignored elsewhere)
 *   agop._mpi.gather_strings(s, root) -> {s_0, ..., s_{p-1}} on root, nil elsewhere
 *   agop._mpi.abort(code)             ends every rank (MPI_Abort)
 * op is 'sum', 'max', 'min' or 'prod'; root a 0-based rank. Every call is collective: all
 * ranks must make it, in the same order, with buffers of the same size. At exit the
 * process finalizes MPI when it exits with status 0, and calls MPI_Abort otherwise, so a
 * failing rank ends the whole job instead of leaving the others waiting in a collective. */
#include "agl.h"

#include <dlfcn.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the part of libmpi we call, resolved by dlsym */
typedef struct Mpi {
    void *lib;
    int rank, size, finalized;
    void *comm_world, *t_float, *t_double, *t_byte, *t_int;
    void *op_sum, *op_max, *op_min, *op_prod, *errors_return;
    int (*Init_thread)(int *, char ***, int, int *);
    int (*Initialized)(int *);
    int (*Finalize)(void);
    int (*Abort)(MPI_Comm, int);
    int (*Comm_rank)(MPI_Comm, int *);
    int (*Comm_size)(MPI_Comm, int *);
    int (*Comm_set_errhandler)(MPI_Comm, MPI_Errhandler);
    int (*Error_string)(int, char *, int *);
    int (*Barrier)(MPI_Comm);
    int (*Allreduce)(const void *, void *, int, MPI_Datatype, MPI_Op, MPI_Comm);
    int (*Reduce)(const void *, void *, int, MPI_Datatype, MPI_Op, int, MPI_Comm);
    int (*Bcast)(void *, int, MPI_Datatype, int, MPI_Comm);
    int (*Gather)(const void *, int, MPI_Datatype, void *, int, MPI_Datatype, int, MPI_Comm);
    int (*Gatherv)(const void *, int, MPI_Datatype, void *, const int *, const int *,
                   MPI_Datatype, int, MPI_Comm);
} Mpi;

/* MPI is process-wide state, so this binding's is too: set once by init */
static Mpi mpi;

#define WORLD ((MPI_Comm)mpi.comm_world)
#define CHUNK (1 << 30) /* elements per MPI call: counts are int */

/* raises "fname: MPI error on rank r: <MPI's message>" when rc is not MPI_SUCCESS */
static void check_rc(lua_State *L, int rc, const char *fname) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING + 1] = "";
    int len = 0;
    if (mpi.Error_string && mpi.Error_string(rc, msg, &len) == MPI_SUCCESS && len >= 0)
        msg[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = 0;
    luaL_error(L,
               "%s: MPI error on rank %d: %s (do all ranks make the same calls with "
               "buffers of the same size?)",
               fname, mpi.rank, msg[0] ? msg : "unknown error");
}

static void require_init(lua_State *L, const char *fname) {
    if (!mpi.lib || mpi.finalized)
        luaL_error(L, "%s: MPI is not initialised (agop.dist calls it only under mpirun)",
                   fname);
}

static void at_exit(int status, void *arg) {
    (void)arg;
    if (!mpi.lib || mpi.finalized) return;
    mpi.finalized = 1;
    fflush(stdout);
    fflush(stderr);
    if (status != 0 && mpi.size > 1)
        mpi.Abort(WORLD, status);
    else
        mpi.Finalize();
}

static void *sym(lua_State *L, const char *name) {
    void *p = dlsym(mpi.lib, name);
    if (!p) luaL_error(L, "dist: libmpi has no symbol %s (agoplua needs OpenMPI 3 to 5)", name);
    return p;
}

static int l_init(lua_State *L) {
    if (mpi.finalized) return luaL_error(L, "dist: MPI was already finalized");
    if (!mpi.lib) {
        const char *user = getenv("AGOP_LIBMPI");
        const char *names[] = {user, "libmpi.so.40", "libmpi.so"};
        void *lib = NULL;
        const char *tried = "";
        for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++) {
            if (!names[i] || !*names[i]) continue;
            /* RTLD_GLOBAL: OpenMPI's plugins (mca_*.so) resolve libmpi's symbols */
            lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
            tried = names[i];
        }
        if (!lib)
            return luaL_error(L,
                              "dist: launched by mpirun, but cannot load OpenMPI's libmpi "
                              "(%s: %s); install openmpi-bin and libopenmpi3 (make deps), or "
                              "set AGOP_LIBMPI=/path/to/libmpi.so",
                              tried, dlerror());
        Mpi m = {.lib = lib};
        mpi = m;
        mpi.comm_world = sym(L, "ompi_mpi_comm_world");
        mpi.t_float = sym(L, "ompi_mpi_float");
        mpi.t_double = sym(L, "ompi_mpi_double");
        mpi.t_byte = sym(L, "ompi_mpi_byte");
        mpi.t_int = sym(L, "ompi_mpi_int");
        mpi.op_sum = sym(L, "ompi_mpi_op_sum");
        mpi.op_max = sym(L, "ompi_mpi_op_max");
        mpi.op_min = sym(L, "ompi_mpi_op_min");
        mpi.op_prod = sym(L, "ompi_mpi_op_prod");
        mpi.errors_return = sym(L, "ompi_mpi_errors_return");
#define LOAD(f) *(void **)&mpi.f = sym(L, "MPI_" #f)
        LOAD(Init_thread);
        LOAD(Initialized);
        LOAD(Finalize);
        LOAD(Abort);
        LOAD(Comm_rank);
        LOAD(Comm_size);
        LOAD(Comm_set_errhandler);
        LOAD(Error_string);
        LOAD(Barrier);
        LOAD(Allreduce);
        LOAD(Reduce);
        LOAD(Bcast);
        LOAD(Gather);
        LOAD(Gatherv);
#undef LOAD
        int provided = 0, done = 0;
        mpi.Initialized(&done);
        if (!done && mpi.Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return luaL_error(L, "dist: MPI_Init_thread failed");
        on_exit(at_exit, NULL);
        mpi.Comm_set_errhandler(WORLD, (MPI_Errhandler)mpi.errors_return);
        check_rc(L, mpi.Comm_rank(WORLD, &mpi.rank), "dist.init");
        check_rc(L, mpi.Comm_size(WORLD, &mpi.size), "dist.init");
    }
    lua_pushinteger(L, mpi.rank);
    lua_pushinteger(L, mpi.size);
    return 2;
}

static MPI_Op check_op(lua_State *L, int arg, const char *fname) {
    static const char *const names[] = {"sum", "max", "min", "prod", NULL};
    const char *s = luaL_optstring(L, arg, "sum");
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i]))
            return (MPI_Op)(i == 0   ? mpi.op_sum
                            : i == 1 ? mpi.op_max
                            : i == 2 ? mpi.op_min
                                     : mpi.op_prod);
    luaL_error(L, "%s: op must be 'sum', 'max', 'min' or 'prod', got '%s'", fname, s);
    return NULL;
}

static int check_root(lua_State *L, int arg, const char *fname) {
    return (int)agl_check_int(L, arg, fname, "root", 0, mpi.size - 1);
}

/* The buffer of a contiguous tensor (float) or a DMatrix (double) at arg. */
typedef struct Buf {
    void *data;
    int64_t n;
    MPI_Datatype type;
    size_t esize;
} Buf;

static Buf check_buf(lua_State *L, int arg, const char *fname) {
    Buf b;
    AglDMatrix *d = luaL_testudata(L, arg, AGL_DMATRIX);
    if (d) {
        b.data = d->data, b.n = d->n * d->n, b.type = (MPI_Datatype)mpi.t_double;
        b.esize = sizeof(double);
        return b;
    }
    AgTensor *t = agl_test_tensor(L, arg);
    if (!t)
        luaL_error(L, "%s: expected a tensor or an agop.DMatrix, got %s", fname,
                   agl_typename(L, arg));
    if (!ag_is_contiguous(t))
        luaL_error(L, "%s: the tensor (%s) must be contiguous: it is updated in place", fname,
                   agl_shape(t, 0));
    b.data = t->data, b.n = ag_numel(t), b.type = (MPI_Datatype)mpi.t_float;
    b.esize = sizeof(float);
    return b;
}

static int l_barrier(lua_State *L) {
    require_init(L, "dist.barrier");
    check_rc(L, mpi.Barrier(WORLD), "dist.barrier");
    return 0;
}

enum { ALLREDUCE, REDUCE, BROADCAST };

/* The in-place collective `kind` on the buffer at argument 1 (then op and root for a
 * reduce, root for a broadcast), in chunks of CHUNK elements: MPI counts are int. */
static int buffer_collective(lua_State *L, int kind, const char *fname) {
    require_init(L, fname);
    Buf b = check_buf(L, 1, fname);
    MPI_Op op = kind == BROADCAST ? NULL : check_op(L, 2, fname);
    int root = kind == ALLREDUCE ? 0 : check_root(L, kind == REDUCE ? 3 : 2, fname);
    for (int64_t i = 0; i < b.n; i += CHUNK) {
        int n = (int)(b.n - i < CHUNK ? b.n - i : CHUNK);
        char *p = (char *)b.data + i * b.esize;
        int rc = kind == ALLREDUCE   ? mpi.Allreduce(MPI_IN_PLACE, p, n, b.type, op, WORLD)
                 : kind == BROADCAST ? mpi.Bcast(p, n, b.type, root, WORLD)
                 : mpi.rank == root  ? mpi.Reduce(MPI_IN_PLACE, p, n, b.type, op, root, WORLD)
                                     : mpi.Reduce(p, NULL, n, b.type, op, root, WORLD);
        check_rc(L, rc, fname);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_allreduce(lua_State *L) {
    return buffer_collective(L, ALLREDUCE, "dist.allreduce");
}
static int l_reduce(lua_State *L) {
    return buffer_collective(L, REDUCE, "dist.reduce");
}
static int l_broadcast(lua_State *L) {
    return buffer_collective(L, BROADCAST, "dist.broadcast");
}

static int l_allreduce_numbers(lua_State *L) {
    require_init(L, "dist.allreduce");
    MPI_Op op = check_op(L, 1, "dist.allreduce");
    int n = lua_gettop(L) - 1;
    if (n > 4096) return luaL_error(L, "dist.allreduce: at most 4096 numbers, got %d", n);
    double v[4096];
    for (int i = 0; i < n; i++) v[i] = luaL_checknumber(L, i + 2);
    check_rc(L, mpi.Allreduce(MPI_IN_PLACE, v, n, (MPI_Datatype)mpi.t_double, op, WORLD),
             "dist.allreduce");
    for (int i = 0; i < n; i++) lua_pushnumber(L, v[i]);
    return n;
}

static int l_broadcast_string(lua_State *L) {
    require_init(L, "dist.broadcast");
    int root = check_root(L, 2, "dist.broadcast");
    size_t len = 0;
    const char *s = mpi.rank == root ? luaL_checklstring(L, 1, &len) : NULL;
    if (len > INT_MAX) return luaL_error(L, "dist.broadcast: value too large (%d bytes)", len);
    int n = (int)len;
    check_rc(L, mpi.Bcast(&n, 1, (MPI_Datatype)mpi.t_int, root, WORLD), "dist.broadcast");
    luaL_Buffer buf;
    char *p = luaL_buffinitsize(L, &buf, (size_t)n);
    if (mpi.rank == root) memcpy(p, s, (size_t)n);
    check_rc(L, mpi.Bcast(p, n, (MPI_Datatype)mpi.t_byte, root, WORLD), "dist.broadcast");
    luaL_pushresultsize(&buf, (size_t)n);
    return 1;
}

static int l_gather_strings(lua_State *L) {
    require_init(L, "dist.gather_table");
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int root = check_root(L, 2, "dist.gather_table");
    if (len > INT_MAX) return luaL_error(L, "dist.gather_table: value too large");
    int n = (int)len, is_root = mpi.rank == root;
    int *counts = is_root ? lua_newuserdatauv(L, 2 * sizeof(int) * (size_t)mpi.size, 0) : NULL;
    check_rc(L,
             mpi.Gather(&n, 1, (MPI_Datatype)mpi.t_int, counts, 1, (MPI_Datatype)mpi.t_int,
                        root, WORLD),
             "dist.gather_table");
    char *all = NULL;
    int *displs = counts ? counts + mpi.size : NULL;
    if (is_root) {
        int64_t total = 0;
        for (int r = 0; r < mpi.size; r++) {
            if (total > INT_MAX - counts[r])
                return luaL_error(L, "dist.gather_table: values too large in all (2 GiB)");
            displs[r] = (int)total;
            total += counts[r];
        }
        all = lua_newuserdatauv(L, total > 0 ? (size_t)total : 1, 0);
    }
    check_rc(L,
             mpi.Gatherv(s, n, (MPI_Datatype)mpi.t_byte, all, counts, displs,
                         (MPI_Datatype)mpi.t_byte, root, WORLD),
             "dist.gather_table");
    if (!is_root) return 0;
    lua_createtable(L, mpi.size, 0);
    for (int r = 0; r < mpi.size; r++) {
        lua_pushlstring(L, all + displs[r], (size_t)counts[r]);
        lua_rawseti(L, -2, r + 1);
    }
    return 1;
}

static int l_abort(lua_State *L) {
    int code = (int)agl_opt_int(L, 1, "dist.abort", "code", INT_MIN, INT_MAX, 1);
    require_init(L, "dist.abort");
    fflush(stdout);
    fflush(stderr);
    mpi.finalized = 1;
    mpi.Abort(WORLD, code);
    return 0;
}

static const luaL_Reg funcs[] = {{"init", l_init},
                                 {"barrier", l_barrier},
                                 {"allreduce", l_allreduce},
                                 {"allreduce_numbers", l_allreduce_numbers},
                                 {"reduce", l_reduce},
                                 {"broadcast", l_broadcast},
                                 {"broadcast_string", l_broadcast_string},
                                 {"gather_strings", l_gather_strings},
                                 {"abort", l_abort},
                                 {NULL, NULL}};

void agl_open_dist(lua_State *L) {
    luaL_newlib(L, funcs);
    lua_setfield(L, -2, "_mpi");
}
