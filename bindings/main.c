/* main.c - the agoplua host: the `lua` 5.4 command line with the agop module built in.
 *
 *   agoplua [options] [script [args]]
 *
 * Options are lua's (-e stat, -l mod, -l g=mod, -i, -v, -E, -W, --, -); the script gets
 * its arguments as `...` and in the global table `arg` (arg[0] the script, negative
 * indices the interpreter and its options). With no script and a terminal, a REPL:
 * readline editing, history in ~/.agoplua_history, Tab completion, values of
 * expressions printed (lua/agop/repl.lua holds the logic, this file the terminal).
 *
 * Before anything else, main() checks the kernels OpenBLAS chose for this CPU and, when
 * they are a generic fallback far below what the CPU can run (engine/cpu.h), sets
 * OPENBLAS_CORETYPE and re-executes itself once. Ctrl-C stops a running chunk: engine
 * loops see agl_interrupt, Lua code gets an "interrupted!" error from a hook, as lua.c
 * does; a second Ctrl-C ends the program. */
#include "../engine/cpu.h"
#include "agl.h"

#include <stdio.h>

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <lualib.h>
#include <omp.h>
#include <png.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AGOPLUA_VERSION "0.1.0"
#define HISTORY_FILE ".agoplua_history"
#define HISTORY_MAX 1000

/* OpenBLAS, not declared by every cblas.h */
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);
int openblas_thread_timeout(void); /* OPENBLAS_THREAD_TIMEOUT as read at load, 0 unset */

/* "agoplua: " before error messages; NULL in the REPL (as lua.c) */
static const char *progname = "agoplua";
/* the core OpenBLAS had chosen before the re-exec switched it, "" when not switched */
static char blas_switched_from[64];
/* 1 when the host chose OMP_WAIT_POLICY=passive (see startup_env) */
static int omp_passive_set;
/* 1 when the host chose OPENBLAS_THREAD_TIMEOUT (see startup_env) */
static int blas_timeout_set;
/* the thread count set at start-up, and where it came from */
static int start_threads;
static const char *start_threads_from = "cores";

/* ---------------------------------------------------------------- OpenBLAS core --- */

/* Runs first, and settles what the libraries read only when they load:
 * - OpenBLAS: when it chose old kernels for a CPU it does not recognise, set
 *   OPENBLAS_CORETYPE (never overriding a user's value). AGOP_PRETEND_CORE=<name> makes
 *   the host act as if OpenBLAS had chosen <name>: it exists to test this path on
 *   machines OpenBLAS knows.
 * - OpenMP: libgomp's idle threads spin by default and then fight OpenBLAS's own
 *   threads for the cores (measured on 2 cores: AGOP of VGG11 over 1000 images took
 *   116 s spinning, 63 s passive). Unless the user set OMP_WAIT_POLICY, use passive.
 * - OpenBLAS's idle threads spin ~0.1 s after each BLAS call (OPENBLAS_THREAD_TIMEOUT
 *   28, 2^28 cycles) and take a core from oneDNN's OpenMP team that runs next: a conv6
 *   forward right after a 256x256 mm took 17.5 ms, 10.3 ms with the timeout 4 (2^4
 *   cycles: they sleep at once), and most per-layer conv times of `make bench` were
 *   1.3-1.8x shorter. Unless the user set OPENBLAS_THREAD_TIMEOUT, use 4.
 * Any change re-executes once. AGOP_REEXEC="<old core or ->|<1 if we set the OpenMP
 * policy><1 if we set the thread timeout>" marks the second run, so it cannot loop; the
 * marks are then removed, so the programs we start see the user's environment (plus a
 * chosen OPENBLAS_CORETYPE). */
static void startup_env(char **argv) {
    const char *mark = getenv("AGOP_REEXEC");
    if (mark) {
        char from[64];
        snprintf(from, sizeof from, "%s", mark);
        char *bar = strchr(from, '|');
        if (bar) {
            *bar = 0;
            if (bar[1] == '1') {
                omp_passive_set = 1;
                unsetenv("OMP_WAIT_POLICY");
            }
            if (bar[1] && bar[2] == '1') {
                blas_timeout_set = 1;
                unsetenv("OPENBLAS_THREAD_TIMEOUT");
            }
        }
        const char *user = getenv("OPENBLAS_CORETYPE");
        if (user && *user && strcmp(from, "-") != 0)
            snprintf(blas_switched_from, sizeof blas_switched_from, "%s", from);
        unsetenv("AGOP_REEXEC");
        return;
    }
    int again = 0, omp = 0, timeout = 0;
    const char *old = "-";
    const char *wp = getenv("OMP_WAIT_POLICY");
    if ((!wp || !*wp) && setenv("OMP_WAIT_POLICY", "passive", 1) == 0) again = omp = 1;
    const char *bt = getenv("OPENBLAS_THREAD_TIMEOUT");
    if ((!bt || !*bt) && setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1) == 0) again = timeout = 1;
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *core = NULL;
    if (!(user && *user)) {
        const char *current = getenv("AGOP_PRETEND_CORE");
        if (!current || !*current) current = openblas_get_corename();
        AgCpu cpu;
        ag_cpu_detect(&cpu);
        core = ag_blas_coretype_for(&cpu, current);
        if (core && setenv("OPENBLAS_CORETYPE", core, 1) == 0) again = 1, old = current;
    }
    if (!again) return;
    char value[80];
    snprintf(value, sizeof value, "%s|%d%d", old, omp, timeout);
    if (setenv("AGOP_REEXEC", value, 1) == 0) execv("/proc/self/exe", argv);
    if (core)
        fprintf(stderr,
                "agoplua: warning: OpenBLAS uses %s kernels; could not restart with %s ones "
                "(%s). Set OPENBLAS_CORETYPE=%s to get them.\n",
                old, core, strerror(errno), core);
    if (core) unsetenv("OPENBLAS_CORETYPE");
    if (omp) unsetenv("OMP_WAIT_POLICY");
    if (timeout) unsetenv("OPENBLAS_THREAD_TIMEOUT");
    unsetenv("AGOP_REEXEC");
}

/* AGOP_THREADS (a positive integer) or the number of cores, shared among the ranks that
 * mpirun started on this node (OMPI_COMM_WORLD_LOCAL_SIZE); -1 after an error message */
static int threads_at_start(void) {
    const char *s = getenv("AGOP_THREADS");
    if (!s) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        long ranks = local ? strtol(local, NULL, 10) : 1;
        if (ranks > 1) {
            start_threads_from = "cores / ranks on this node";
            cores /= ranks;
        }
        return cores > 0 ? (int)cores : 1;
    }
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || n < 1 || n > 1024) {
        fprintf(stderr,
                "agoplua: AGOP_THREADS must be a positive integer (1 to 1024), got '%s'\n", s);
        return -1;
    }
    start_threads_from = "AGOP_THREADS";
    return (int)n;
}

/* ------------------------------------------------------------------ messages --- */

static void print_usage(const char *badoption) {
    if (badoption[1] == 'e' || badoption[1] == 'l')
        fprintf(stderr, "agoplua: '%s' needs argument\n", badoption);
    else
        fprintf(stderr, "agoplua: unrecognized option '%s'\n", badoption);
    fprintf(stderr, "usage: agoplua [options] [script [args]]\n"
                    "Available options are:\n"
                    "  -e stat   execute string 'stat'\n"
                    "  -i        enter interactive mode after executing 'script'\n"
                    "  -l mod    require library 'mod' into global 'mod'\n"
                    "  -l g=mod  require library 'mod' into global 'g'\n"
                    "  -v        show version information\n"
                    "  -E        ignore environment variables\n"
                    "  -W        turn warnings on\n"
                    "  --        stop handling options\n"
                    "  -         stop handling options and execute stdin\n"
                    "Environment: AGOP_THREADS=n (threads, default: cores), "
                    "OPENBLAS_CORETYPE=name (BLAS kernels)\n");
}

static void print_version(void) {
    AgCpu cpu;
    ag_cpu_detect(&cpu);
    const char *vendor = cpu.vendor == AG_CPU_INTEL ? "Intel"
                         : cpu.vendor == AG_CPU_AMD ? "AMD"
                                                    : "unknown vendor";
    printf("agoplua %s\n%s\n", AGOPLUA_VERSION, LUA_COPYRIGHT);
    printf("%s\n", openblas_get_config());
    const char *core = openblas_get_corename();
    if (blas_switched_from[0])
        printf("BLAS core: %s (switched by agoplua from %s, which this OpenBLAS chose for a "
               "CPU it does not know)\n",
               core, blas_switched_from);
    else if (getenv("OPENBLAS_CORETYPE") && *getenv("OPENBLAS_CORETYPE"))
        printf("BLAS core: %s (OPENBLAS_CORETYPE=%s)\n", core, getenv("OPENBLAS_CORETYPE"));
    else
        printf("BLAS core: %s (chosen by OpenBLAS)\n", core);
    printf("CPU: %s family %d model %d,%s%s%s%s\n", vendor, cpu.family, cpu.model,
           cpu.has_avx2 ? " AVX2" : "", cpu.has_fma ? " FMA" : "",
           cpu.has_avx512f ? " AVX-512" : "", cpu.has_avx512bf16 ? " AVX512-BF16" : "");
    printf("libpng %s (built with %s)\n", png_get_libpng_ver(NULL), PNG_LIBPNG_VER_STRING);
    printf("threads: %d (from %s; OpenBLAS %d, OpenMP %d)\n", start_threads, start_threads_from,
           openblas_get_num_threads(), omp_get_max_threads());
    printf("OpenMP wait policy: %s\n",
           omp_passive_set
               ? "passive (set by agoplua)"
               : (getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "libgomp default"));
    if (openblas_thread_timeout() > 0)
        printf("OpenBLAS thread timeout: %d (%s)\n", openblas_thread_timeout(),
               blas_timeout_set ? "set by agoplua" : "from OPENBLAS_THREAD_TIMEOUT");
    else
        printf("OpenBLAS thread timeout: OpenBLAS default\n");
    fflush(stdout);
}

static void print_banner(void) {
    char switched[96] = "";
    if (blas_switched_from[0])
        snprintf(switched, sizeof switched, " (not %s: see -v)", blas_switched_from);
    printf("agoplua %s (%s, OpenBLAS %s%s, %d threads)  Tab completes, Ctrl-D quits\n",
           AGOPLUA_VERSION, LUA_RELEASE, openblas_get_corename(), switched,
           openblas_get_num_threads());
    fflush(stdout);
}

/* Prints the error on top of the stack (when status is not LUA_OK) and pops it. */
static int report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        if (progname) fprintf(stderr, "%s: ", progname);
        fprintf(stderr, "%s\n", msg);
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

/* ------------------------------------------------------------------- Ctrl-C --- */

/* the state the SIGINT handler stops (the main thread) */
static lua_State *sigint_L;

static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    if (!agl_interrupt) return; /* the engine already raised "interrupted" for this Ctrl-C */
    agl_interrupt = 0;
    luaL_error(L, "interrupted!");
}

/* While a chunk runs: engine loops poll agl_interrupt, Lua code hits stop_hook at its next
 * instruction. The first Ctrl-C restores the default action: a second one ends agoplua. */
static void on_sigint_running(int sig) {
    signal(sig, SIG_DFL);
    agl_interrupt = 1;
    agl_interrupts++;
    lua_sethook(sigint_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* error handler: the message (or a description of a non-string error) + traceback */
static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Calls the function below its narg arguments with a traceback handler and Ctrl-C. */
static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    sigint_L = L;
    agl_interrupt = 0;
    signal(SIGINT, on_sigint_running);
    int status = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
    agl_interrupt = 0;
    lua_remove(L, base);
    return status;
}

/* ------------------------------------------------------------ script runner --- */

static int dochunk(lua_State *L, int status) {
    if (status == LUA_OK) status = docall(L, 0, 0);
    return report(L, status);
}

static int dofile(lua_State *L, const char *name) {
    return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod: mod = require('mod'); -l g=mod: g = require('mod'). Without '=', the global's
 * name stops at a '-' (lua's "ignore mark": -l mod-v2 sets global mod). */
static int dolibrary(lua_State *L, const char *spec) {
    const char *eq = strchr(spec, '=');
    const char *modname = eq ? eq + 1 : spec;
    size_t globlen = eq ? (size_t)(eq - spec) : strcspn(spec, "-");
    lua_getglobal(L, "require");
    lua_pushstring(L, modname);
    int status = docall(L, 1, 1);
    if (status == LUA_OK) {
        lua_pushlstring(L, spec, globlen);
        lua_insert(L, -2);
        lua_setglobal(L, lua_tostring(L, -2));
        lua_pop(L, 1);
    }
    return report(L, status);
}

/* LUA_INIT_5_4 or LUA_INIT: "@file" runs the file, anything else is a chunk */
static int run_lua_init(lua_State *L) {
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv(name + 1);
    if (!init) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (!init) return LUA_OK;
    if (init[0] == '@') return dofile(L, init + 1);
    return dostring(L, init, name);
}

/* the script's arguments, arg[1..#arg], pushed for its `...` */
static int push_script_args(lua_State *L) {
    if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

/* argv[0] is the script's name; "-" (not after "--") is stdin */
static int run_script(lua_State *L, char **argv) {
    const char *fname = argv[0];
    if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL;
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = push_script_args(L);
        status = docall(L, n, LUA_MULTRET);
    }
    return report(L, status);
}

/* arg[0] is the script (argv[script]); the interpreter and options get negative indices.
 * With no script, arg[0] is the interpreter itself, as in lua. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
    lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* ------------------------------------------------------------ command line --- */

typedef struct Args {
    int e, i, v, E; /* options seen (-i implies a REPL after the script) */
    int script;     /* argv index of the script, or 0 when there is none */
    int bad;        /* argv index of a bad option, or 0 */
} Args;

static Args parse_args(int argc, char **argv) {
    Args a = {0};
    int i;
    for (i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] != '-') break;         /* the script */
        if (strcmp(s, "-") == 0) break; /* stdin is the script */
        if (strcmp(s, "--") == 0) {
            i++;
            break;
        }
        char opt = s[1];
        if (opt == 'e' || opt == 'l') {
            if (opt == 'e') a.e = 1;
            if (s[2] == '\0') { /* the argument is the next word */
                if (i + 1 >= argc || argv[i + 1][0] == '-') {
                    a.bad = i;
                    return a;
                }
                i++;
            }
            continue;
        }
        if (s[2] != '\0' || !strchr("ivEW", opt)) {
            a.bad = i;
            return a;
        }
        if (opt == 'i') a.i = 1;
        if (opt == 'v') a.v = 1;
        if (opt == 'E') a.E = 1;
    }
    a.script = i < argc ? i : 0;
    return a;
}

/* -e, -l and -W in the order given, up to the script */
static int run_options(lua_State *L, char **argv, int limit) {
    for (int i = 1; i < limit; i++) {
        const char *s = argv[i];
        if (s[0] != '-') continue;
        if (s[1] == 'W') {
            lua_warning(L, "@on", 0);
        } else if (s[1] == 'e' || s[1] == 'l') {
            const char *extra = s[2] ? s + 2 : argv[++i];
            int status =
                s[1] == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
            if (status != LUA_OK) return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------- REPL --- */

/* registry reference to the agop.repl module while the REPL runs */
static int repl_ref = LUA_NOREF;
static lua_State *repl_L;
/* Ctrl-C at the prompt: set by the handler, seen by repl_getc and read_chunk */
static volatile sig_atomic_t prompt_interrupted;
static int prompt_newline_sent;
static char history_path[PATH_MAX];

static void on_sigint_prompt(int sig) {
    (void)sig;
    prompt_interrupted = 1;
}

/* readline's input: like its own, but a Ctrl-C ends the line (read_chunk drops it) */
static int repl_getc(FILE *in) {
    for (;;) {
        if (prompt_interrupted && !prompt_newline_sent) {
            prompt_newline_sent = 1;
            return '\n';
        }
        unsigned char c;
        ssize_t n = read(fileno(in), &c, 1);
        if (n == 1) return c;
        if (n == 0) return EOF;
        if (errno != EINTR) return EOF;
        rl_check_signals(); /* readline cleans up, then passes SIGINT on to us */
    }
}

/* pushes agop.repl's field name */
static void push_repl_fn(lua_State *L, const char *name) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, repl_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* matches of the text being completed (readline's word, from start), from repl.complete */
static char **complete_matches;
static int complete_count, complete_next;

static char *complete_generator(const char *text, int state) {
    (void)text;
    if (state == 0) complete_next = 0;
    if (complete_next >= complete_count) return NULL;
    char *m = complete_matches[complete_next];
    complete_matches[complete_next++] = NULL;
    return m; /* readline frees it */
}

static void complete_clear(void) {
    for (int i = 0; i < complete_count; i++) free(complete_matches[i]);
    free(complete_matches);
    complete_matches = NULL;
    complete_count = complete_next = 0;
}

static char **complete(const char *text, int start, int end) {
    lua_State *L = repl_L;
    rl_attempted_completion_over = 1; /* no file names for Lua code */
    rl_completion_append_character = '\0';
    if (rl_completion_quote_character) { /* inside a string: file names */
        rl_attempted_completion_over = 0;
        return NULL;
    }
    complete_clear();
    int top = lua_gettop(L);
    push_repl_fn(L, "complete");
    lua_pushlstring(L, rl_line_buffer, (size_t)end);
    lua_pushglobaltable(L);
    if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_istable(L, -1)) {
        int n = (int)luaL_len(L, -1);
        complete_matches = calloc((size_t)n + 1, sizeof *complete_matches);
        for (int i = 1; complete_matches && i <= n; i++) {
            lua_rawgeti(L, -1, i);
            size_t len;
            const char *full = lua_tolstring(L, -1, &len);
            /* a full line: the match is what follows readline's word start */
            if (full && len >= (size_t)start && strncmp(full, rl_line_buffer, start) == 0) {
                char *m = strdup(full + start);
                if (m) complete_matches[complete_count++] = m;
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
    char **matches = rl_completion_matches(text, complete_generator);
    complete_clear();
    return matches;
}

/* the list under the prompt shows names after their last '.' or ':' (`zeros`, not
 * `agop.zeros`), like file names after their folder */
static void display_matches(char **matches, int n, int max_length) {
    (void)max_length;
    char **shown = calloc((size_t)n + 2, sizeof *shown);
    if (!shown) return;
    int longest = 0;
    for (int i = 0; i <= n; i++) {
        const char *m = matches[i];
        const char *dot = strrchr(m, '.'), *colon = strrchr(m, ':');
        const char *cut = dot > colon ? dot : colon;
        shown[i] = (char *)(cut && i > 0 ? cut + 1 : m);
        if (i > 0 && (int)strlen(shown[i]) > longest) longest = (int)strlen(shown[i]);
    }
    rl_display_match_list(shown, n, longest);
    rl_forced_update_display();
    free(shown);
}

static void history_start(void) {
    const char *home = getenv("HOME");
    history_comment_char = '#'; /* timestamps delimit multi-line chunks in the file */
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    if (!home || !*home) return;
    snprintf(history_path, sizeof history_path, "%s/%s", home, HISTORY_FILE);
    read_history(history_path); /* a missing file is fine */
}

/* Adds a chunk to the history and appends it to the file; failures are ignored (a
 * read-only home must not spoil the session). */
static void history_save(const char *chunk) {
    if (!chunk[0]) return;
    HIST_ENTRY *last =
        history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, chunk) == 0) return;
    add_history(chunk);
    if (!history_path[0]) return;
    if (append_history(1, history_path) != 0) { /* no file yet: create it */
        FILE *f = fopen(history_path, "a");
        if (!f) return;
        fclose(f);
        if (append_history(1, history_path) != 0) return;
    }
    history_truncate_file(history_path, HISTORY_MAX);
}

/* _PROMPT / _PROMPT2 when they are strings, as in lua */
static const char *get_prompt(lua_State *L, int first) {
    lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2");
    const char *p = lua_tostring(L, -1);
    if (!p) p = first ? "> " : ">> ";
    lua_pop(L, 1); /* the string stays in _G, so p stays valid until the next line */
    return p;
}

/* readline with Ctrl-C clearing the line; NULL at end of input or after Ctrl-C (then
 * *interrupted is 1) */
static char *read_line(lua_State *L, int first, int *interrupted) {
    const char *prompt = get_prompt(L, first);
    prompt_interrupted = 0;
    prompt_newline_sent = 0;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint_prompt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    char *line = readline(prompt);
    sigaction(SIGINT, &old, NULL);
    *interrupted = prompt_interrupted;
    if (*interrupted) {
        free(line);
        return NULL;
    }
    return line;
}

enum { CHUNK_EOF = -1, CHUNK_DROPPED = -2 };

/* Reads lines until they make a chunk. Pushes the compiled function (LUA_OK) or the
 * syntax error (LUA_ERRSYNTAX); CHUNK_DROPPED after Ctrl-C, CHUNK_EOF at end of input. */
static int read_chunk(lua_State *L) {
    int interrupted;
    char *line = read_line(L, 1, &interrupted);
    if (!line) return interrupted ? CHUNK_DROPPED : CHUNK_EOF;
    lua_pushstring(L, line);
    free(line);
    for (;;) {
        int chunk = lua_gettop(L);
        push_repl_fn(L, "compile");
        lua_pushvalue(L, chunk);
        if (lua_pcall(L, 1, 3, 0) != LUA_OK) { /* agop.repl is broken: say why */
            lua_remove(L, chunk);
            return LUA_ERRSYNTAX;
        }
        int ok = lua_isfunction(L, chunk + 1);
        if (ok || !lua_toboolean(L, chunk + 3)) { /* a function, or an error to show */
            history_save(lua_tostring(L, chunk));
            lua_copy(L, ok ? chunk + 1 : chunk + 2, chunk);
            lua_settop(L, chunk);
            return ok ? LUA_OK : LUA_ERRSYNTAX;
        }
        lua_pop(L, 3); /* incomplete: read another line */
        line = read_line(L, 0, &interrupted);
        if (!line) {
            if (interrupted) {
                lua_pop(L, 1);
                return CHUNK_DROPPED;
            }
            /* end of input inside a statement: the syntax error says what is missing */
            push_repl_fn(L, "compile");
            lua_pushvalue(L, chunk);
            lua_call(L, 1, 2);
            lua_copy(L, -1, chunk);
            lua_settop(L, chunk);
            return LUA_ERRSYNTAX;
        }
        lua_pushfstring(L, "%s\n%s", lua_tostring(L, chunk), line);
        free(line);
        lua_replace(L, chunk);
    }
}

/* prints the values above base, tab-separated (repl.format) */
static void print_results(lua_State *L, int base) {
    int n = lua_gettop(L) - base;
    if (n <= 0) return;
    push_repl_fn(L, "format");
    lua_insert(L, base + 1);
    if (lua_pcall(L, n, 1, 0) != LUA_OK) {
        fprintf(stderr, "error calling tostring: %s\n", lua_tostring(L, -1));
    } else if (lua_isstring(L, -1)) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        fwrite(s, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    lua_settop(L, base);
}

/* The interactive loop, until end of input. LUA_OK, or an error when agop.repl (the
 * REPL's Lua half) cannot be loaded. */
static int repl(lua_State *L) {
    const char *saved = progname;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "agop.repl");
    if (docall(L, 1, 1) != LUA_OK) return report(L, LUA_ERRRUN);
    repl_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    repl_L = L;
    progname = NULL;
    rl_readline_name = "agoplua";
    rl_getc_function = repl_getc;
    rl_attempted_completion_function = complete;
    rl_completion_display_matches_hook = display_matches;
    rl_basic_word_break_characters = " \t\n\"\\'><=;+-*/%^~#&|(){}[],";
    rl_completer_word_break_characters = rl_basic_word_break_characters;
    rl_completer_quote_characters = "\"'";
    history_start();
    int base = lua_gettop(L), status;
    while ((status = read_chunk(L)) != CHUNK_EOF) {
        if (status == CHUNK_DROPPED) continue;
        if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK)
            print_results(L, base);
        else
            report(L, status);
        lua_settop(L, base);
    }
    lua_settop(L, base);
    fputc('\n', stdout);
    fflush(stdout);
    luaL_unref(L, LUA_REGISTRYINDEX, repl_ref);
    repl_ref = LUA_NOREF;
    progname = saved;
    return LUA_OK;
}

/* ---------------------------------------------------------------------- main --- */

/* everything that runs Lua, inside a protected call (argc, argv as arguments) */
static int pmain(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    Args a = parse_args(argc, argv);
    luaL_checkversion(L);
    if (a.bad) {
        print_usage(argv[a.bad]);
        return 0;
    }
    if (a.E) { /* ignore LUA_PATH, LUA_CPATH and LUA_INIT */
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    agl_open_host(L);
    create_arg_table(L, argv, argc, a.script);
    lua_gc(L, LUA_GCRESTART);
    /* lua.c picks generational mode; here most of the heap is large, short-lived tensor
     * buffers (a VGG11 training step makes ~150 MB of them), and waiting for the heap to
     * double before a cycle (or for old objects to age) let make bench peak at 675-723
     * MiB. Incremental cycles that start as soon as the last one ends keep it near the
     * live set (429 MiB) at no measured cost in speed. Scripts may set their own. */
    lua_gc(L, LUA_GCINC, 100, 200, 0);
    if (a.v) print_version();
    if (!a.E && run_lua_init(L) != LUA_OK) return 0;
    if (!run_options(L, argv, a.script ? a.script : argc)) return 0;
    if (a.script && run_script(L, argv + a.script) != LUA_OK) return 0;
    if (a.i) {
        if (!a.v) print_banner();
        if (repl(L) != LUA_OK) return 0;
    } else if (!a.script && !a.e && !a.v) {
        if (isatty(STDIN_FILENO)) {
            print_banner();
            if (repl(L) != LUA_OK) return 0;
        } else if (dofile(L, NULL) != LUA_OK) {
            return 0;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv) {
    startup_env(argv); /* first: may re-execute the program */
    if (argv[0] && argv[0][0]) progname = argv[0];
    start_threads = threads_at_start();
    if (start_threads < 0) return EXIT_FAILURE;
    agl_set_threads(start_threads);
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", progname);
        return EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = status == LUA_OK && lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
