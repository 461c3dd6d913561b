/* conv_plan.c - planned convolutions on oneDNN (see conv_plan.h).
 *
 * A plan owns one oneDNN engine and stream and up to three primitives (forward, backward
 * data, backward weights). Everything a call needs beyond the caller's tensors lives in
 * the caller's workspace, as role buffers one after another: X (the input, or its
 * gradient), Y (the output, or its gradient) and W (the weight) in oneDNN's chosen
 * layouts, oneDNN's scratchpad (user mode), and GRAD (the weight and bias gradients
 * before they are added into the caller's). Passes run one after another, so a role
 * buffer serves every pass, sized for the largest layout any pass asked for; and since
 * nothing survives a call, one workspace serves every plan of a network. The boundary
 * layouts are the engine's: NCHW activations, OIHW weights; a port reorders between the
 * two when oneDNN chose another layout, and hands the caller's memory straight through
 * when not. A call maps no fresh memory. */
#include "conv_plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef AG_HAVE_DNNL
#include <dnnl.h>

enum { ROLE_X, ROLE_Y, ROLE_W, ROLE_SCRATCH, ROLE_GRAD, NROLES }; /* GRAD: dw, db (OIHW) */
enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_WEIGHTS, NPASSES };

/* One argument of one primitive: the caller's memory (user, NCHW/OIHW, its handle set at
 * each call) and, when oneDNN chose another layout, the inner memory in a role buffer
 * and the reorder between them. */
typedef struct Port {
    dnnl_memory_t user, inner;
    dnnl_primitive_t reorder;
    const dnnl_memory_desc_t *md; /* the primitive's layout (owned by its pd) */
    int role;
} Port;

typedef struct Pass {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    Port src, wei, dst; /* fwd: x, w, y; bwd data: dx, w, dy; bwd weights: x, dw, dy */
    dnnl_memory_t bias; /* b or db (plain, the plan's own buffer or the caller's) */
    dnnl_memory_t scratch;
} Pass;

struct AgConvPlan {
    AgConvShape s;
    dnnl_alg_kind_t alg;
    int pick; /* AG_CONV_AUTO(_DIRECT_FORWARD): may pick another algorithm per pass */
    int direct_fwd;
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    Pass pass[NPASSES];
    int made[NPASSES];
    size_t cap[NROLES]; /* bytes of each role in the workspace, multiples of 64 */
    char *work;         /* the caller's workspace during a call */
    float *zeros;       /* (Co): the bias when the caller has none */
    int64_t bytes;
};

int ag_conv_have_dnnl(void) {
    return 1;
}

static int dnnl_fail(AgError *err, const char *what, dnnl_status_t st) {
    static const char *names[] = {"success",       "out of memory", "invalid arguments",
                                  "unimplemented", "iterator ends", "runtime error",
                                  "not required"};
    const char *n = (unsigned)st < sizeof names / sizeof *names ? names[st] : "error";
    return ag_fail(err, "conv plan: oneDNN %s failed (%s)", what, n);
}

#define DN(call, what)                                                                         \
    do {                                                                                       \
        dnnl_status_t st_ = (call);                                                            \
        if (st_ != dnnl_success) return dnnl_fail(err, what, st_);                             \
    } while (0)

/* Role buffers sit one after another in the caller's workspace (its layout can change
 * when a pass is added; ports set their handles at every call). */
static void *role_data(AgConvPlan *p, int role) {
    size_t off = 0;
    for (int r = 0; r < role; r++) off += p->cap[r];
    return p->work + off;
}

static void role_reserve(AgConvPlan *p, int role, size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (bytes > p->cap[role]) p->cap[role] = bytes;
}

/* Makes port pt for a primitive argument of layout md, the caller's side in layout
 * `tag`; into != 0 reorders caller -> inner (an input), else inner -> caller. */
static int port_make(AgConvPlan *p, Port *pt, const dnnl_memory_desc_t *md, int ndims,
                     const dnnl_dims_t dims, dnnl_format_tag_t tag, int role, int into,
                     AgError *err) {
    dnnl_memory_desc_t umd;
    DN(dnnl_memory_desc_init_by_tag(&umd, ndims, dims, dnnl_f32, tag), "memory desc");
    DN(dnnl_memory_create(&pt->user, &umd, p->eng, DNNL_MEMORY_NONE), "memory");
    pt->md = md;
    pt->role = role;
    if (dnnl_memory_desc_equal(&umd, md)) return 0;
    role_reserve(p, role, dnnl_memory_desc_get_size(md));
    DN(dnnl_memory_create(&pt->inner, md, p->eng, DNNL_MEMORY_NONE), "memory");
    dnnl_primitive_desc_t rpd;
    DN(into ? dnnl_reorder_primitive_desc_create(&rpd, &umd, p->eng, md, p->eng, NULL)
            : dnnl_reorder_primitive_desc_create(&rpd, md, p->eng, &umd, p->eng, NULL),
       "reorder");
    dnnl_status_t st = dnnl_primitive_create(&pt->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success) return dnnl_fail(err, "reorder", st);
    return 0;
}

static void port_free(Port *pt) {
    if (pt->reorder) dnnl_primitive_destroy(pt->reorder);
    if (pt->inner) dnnl_memory_destroy(pt->inner);
    if (pt->user) dnnl_memory_destroy(pt->user);
}

/* The memory a primitive reads or writes for this port, pointed at `data`. */
static dnnl_memory_t port_bind(AgConvPlan *p, Port *pt, const void *data) {
    dnnl_memory_set_data_handle(pt->user, (void *)data);
    if (!pt->inner) return pt->user;
    dnnl_memory_set_data_handle(pt->inner, role_data(p, pt->role));
    return pt->inner;
}

static int port_reorder(AgConvPlan *p, Port *pt, int into, AgError *err) {
    if (!pt->reorder) return 0;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, into ? pt->user : pt->inner},
                            {DNNL_ARG_TO, into ? pt->inner : pt->user}};
    DN(dnnl_primitive_execute(pt->reorder, p->strm, 2, a), "reorder");
    return 0;
}

/* An input port: bound to data, reordered into the inner layout. */
static int port_in(AgConvPlan *p, Port *pt, const void *data, dnnl_memory_t *m, AgError *err) {
    *m = port_bind(p, pt, data);
    return port_reorder(p, pt, 1, err);
}

static void dims4(dnnl_dims_t d, int a, int b, int c, int e) {
    d[0] = a;
    d[1] = b;
    d[2] = c;
    d[3] = e;
}

/* The three 4-D descriptors of the conv, all in layout `any`, and its geometry. */
typedef struct Geo {
    dnnl_memory_desc_t x, w, y, b;
    dnnl_dims_t xd, wd, yd, bd, strides, pl, pr;
} Geo;

static int geo_init(Geo *g, const AgConvShape *s, AgError *err) {
    dims4(g->xd, s->b, s->ci, s->h, s->w);
    dims4(g->wd, s->co, s->ci, s->k, s->k);
    dims4(g->yd, s->b, s->co, s->ho, s->wo);
    g->bd[0] = s->co;
    g->strides[0] = g->strides[1] = s->stride;
    g->pl[0] = g->pl[1] = s->pad;
    g->pr[0] = (int64_t)(s->ho - 1) * s->stride + s->k - s->h - s->pad;
    g->pr[1] = (int64_t)(s->wo - 1) * s->stride + s->k - s->w - s->pad;
    DN(dnnl_memory_desc_init_by_tag(&g->x, 4, g->xd, dnnl_f32, dnnl_format_tag_any), "desc");
    DN(dnnl_memory_desc_init_by_tag(&g->w, 4, g->wd, dnnl_f32, dnnl_format_tag_any), "desc");
    DN(dnnl_memory_desc_init_by_tag(&g->y, 4, g->yd, dnnl_f32, dnnl_format_tag_any), "desc");
    DN(dnnl_memory_desc_init_by_tag(&g->b, 1, g->bd, dnnl_f32, dnnl_x), "desc");
    return 0;
}

/* pd of pass `which` (the forward pd is the hint of the backward ones) */
/* Winograd's weight gradient keeps (threads + 1) copies of the transformed weight
 * gradient, 36 Ci Co floats each: 113 MiB for a 512 -> 512 layer on 2 threads, more than
 * the rest of a VGG11 step. AG_CONV_AUTO takes the direct weight gradient above this
 * size (it costs ~12 ms of a ~100 ms VGG11 step at B=64 on layers 5-6). */
#define WINO_WEIGHT_GRAD_MAX (256 * 256)

static dnnl_alg_kind_t pass_alg(const AgConvPlan *p, int which) {
    if (which == PASS_FWD && p->direct_fwd) return dnnl_convolution_direct;
    if (which == PASS_BWD_WEIGHTS && p->pick && p->alg == dnnl_convolution_winograd &&
        (int64_t)p->s.ci * p->s.co > WINO_WEIGHT_GRAD_MAX)
        return dnnl_convolution_direct;
    return p->alg;
}

static int make_pd(AgConvPlan *p, int which, dnnl_primitive_desc_t *pd, AgError *err) {
    Geo g;
    if (geo_init(&g, &p->s, err)) return -1;
    dnnl_convolution_desc_t cd;
    const dnnl_alg_kind_t alg = pass_alg(p, which);
    if (which == PASS_FWD)
        DN(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &g.x, &g.w, &g.b,
                                              &g.y, g.strides, g.pl, g.pr),
           "convolution desc");
    else if (which == PASS_BWD_DATA)
        DN(dnnl_convolution_backward_data_desc_init(&cd, alg, &g.x, &g.w, &g.y, g.strides, g.pl,
                                                    g.pr),
           "convolution desc");
    else
        DN(dnnl_convolution_backward_weights_desc_init(&cd, alg, &g.x, &g.w, &g.b, &g.y,
                                                       g.strides, g.pl, g.pr),
           "convolution desc");
    dnnl_primitive_attr_t attr;
    DN(dnnl_primitive_attr_create(&attr), "attr");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &cd, attr, p->eng,
                                        which == PASS_FWD ? NULL : p->pass[PASS_FWD].pd);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_unimplemented)
        return ag_fail(err,
                       "conv plan: oneDNN has no %s %s for input %dx%dx%dx%d, kernel %d, "
                       "stride %d, pad %d",
                       alg == dnnl_convolution_winograd ? "Winograd" : "direct",
                       which == PASS_FWD        ? "forward"
                       : which == PASS_BWD_DATA ? "input gradient"
                                                : "weight gradient",
                       p->s.b, p->s.ci, p->s.h, p->s.w, p->s.k, p->s.stride, p->s.pad);
    if (st != dnnl_success) return dnnl_fail(err, "primitive desc", st);
    return 0;
}

/* Makes pass `which`: its pd, primitive, ports and scratchpad. */
static int make_pass(AgConvPlan *p, int which, AgError *err) {
    if (p->made[which]) return 0;
    Pass *ps = &p->pass[which];
    if (make_pd(p, which, &ps->pd, err)) return -1;
    Geo g;
    if (geo_init(&g, &p->s, err)) return -1;
    dnnl_query_t qs, qw, qd;
    int s_in, w_in, d_in;
    if (which == PASS_FWD)
        qs = dnnl_query_src_md, qw = dnnl_query_weights_md, qd = dnnl_query_dst_md, s_in = 1,
        w_in = 1, d_in = 0;
    else if (which == PASS_BWD_DATA)
        qs = dnnl_query_diff_src_md, qw = dnnl_query_weights_md, qd = dnnl_query_diff_dst_md,
        s_in = 0, w_in = 1, d_in = 1;
    else
        qs = dnnl_query_src_md, qw = dnnl_query_diff_weights_md, qd = dnnl_query_diff_dst_md,
        s_in = 1, w_in = 0, d_in = 1;
    if (port_make(p, &ps->src, dnnl_primitive_desc_query_md(ps->pd, qs, 0), 4, g.xd, dnnl_nchw,
                  ROLE_X, s_in, err) ||
        port_make(p, &ps->wei, dnnl_primitive_desc_query_md(ps->pd, qw, 0), 4, g.wd, dnnl_oihw,
                  ROLE_W, w_in, err) ||
        port_make(p, &ps->dst, dnnl_primitive_desc_query_md(ps->pd, qd, 0), 4, g.yd, dnnl_nchw,
                  ROLE_Y, d_in, err))
        return -1;
    if (which != PASS_BWD_DATA)
        DN(dnnl_memory_create(&ps->bias, &g.b, p->eng, DNNL_MEMORY_NONE), "memory");
    const dnnl_memory_desc_t *smd =
        dnnl_primitive_desc_query_md(ps->pd, dnnl_query_scratchpad_md, 0);
    if (smd && dnnl_memory_desc_get_size(smd) > 0) {
        role_reserve(p, ROLE_SCRATCH, dnnl_memory_desc_get_size(smd));
        DN(dnnl_memory_create(&ps->scratch, smd, p->eng, DNNL_MEMORY_NONE), "memory");
    }
    if (which == PASS_BWD_WEIGHTS)
        role_reserve(p, ROLE_GRAD,
                     sizeof(float) * ((size_t)p->s.co * p->s.ci * p->s.k * p->s.k + p->s.co));
    DN(dnnl_primitive_create(&ps->prim, ps->pd), "primitive");
    p->made[which] = 1;
    return 0;
}

static int run_pass(AgConvPlan *p, Pass *ps, dnnl_exec_arg_t *a, int n, AgError *err) {
    if (ps->scratch) {
        dnnl_memory_set_data_handle(ps->scratch, role_data(p, ROLE_SCRATCH));
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, ps->scratch};
    }
    DN(dnnl_primitive_execute(ps->prim, p->strm, n, a), "convolution");
    return 0;
}

int ag_conv_winograd_wins(const AgConvShape *s) {
    /* measured (README "Performance"): Winograd wins from a 4x4 output up, with enough
     * input channels to amortize its transforms; oneDNN's needs multiples of 16 */
    return s->k == 3 && s->stride == 1 && s->ci >= 16 && s->ci % 16 == 0 && s->co % 16 == 0 &&
           s->ho >= 4 && s->wo >= 4;
}

static int plan_try(AgConvPlan *p, dnnl_alg_kind_t alg, AgError *err) {
    p->alg = alg;
    return make_pass(p, PASS_FWD, err);
}

int ag_conv_plan_new(AgConvPlan **out, const AgConvShape *s, AgConvAlgo algo, AgError *err) {
    *out = NULL;
    if (ag_conv2d_check(s, err)) return -1;
    AgConvPlan *p = calloc(1, sizeof *p);
    if (!p) return ag_fail(err, "conv plan: out of memory");
    p->s = *s;
    p->pick = algo == AG_CONV_AUTO || algo == AG_CONV_AUTO_DIRECT_FORWARD;
    p->direct_fwd = algo == AG_CONV_AUTO_DIRECT_FORWARD;
    p->zeros = calloc((size_t)s->co, sizeof(float));
    if (!p->zeros) {
        ag_conv_plan_free(p);
        return ag_fail(err, "conv plan: out of memory");
    }
    p->bytes = (int64_t)sizeof(float) * s->co;
    dnnl_status_t st = dnnl_engine_create(&p->eng, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&p->strm, p->eng, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        ag_conv_plan_free(p);
        return dnnl_fail(err, "engine", st);
    }
    int wino = algo == AG_CONV_WINOGRAD || (p->pick && ag_conv_winograd_wins(s));
    int rc = plan_try(p, wino ? dnnl_convolution_winograd : dnnl_convolution_direct, err);
    if (!rc && wino && p->pick) { /* the backward passes too, or none */
        rc = make_pass(p, PASS_BWD_DATA, err);
    }
    if (rc && wino && p->pick) { /* no Winograd here after all: direct */
        ag_conv_plan_free(p);
        return ag_conv_plan_new(out, s, AG_CONV_DIRECT, err);
    }
    if (rc) {
        ag_conv_plan_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void ag_conv_plan_free(AgConvPlan *p) {
    if (!p) return;
    for (int i = 0; i < NPASSES; i++) {
        Pass *ps = &p->pass[i];
        port_free(&ps->src);
        port_free(&ps->wei);
        port_free(&ps->dst);
        if (ps->bias) dnnl_memory_destroy(ps->bias);
        if (ps->scratch) dnnl_memory_destroy(ps->scratch);
        if (ps->prim) dnnl_primitive_destroy(ps->prim);
        if (ps->pd) dnnl_primitive_desc_destroy(ps->pd);
    }
    if (p->strm) dnnl_stream_destroy(p->strm);
    if (p->eng) dnnl_engine_destroy(p->eng);
    free(p->zeros);
    free(p);
}

const char *ag_conv_plan_impl(const AgConvPlan *p, int pass) {
    const char *name = "";
    if (pass < 0 || pass >= NPASSES || !p->made[pass]) return name;
    if (dnnl_primitive_desc_query(p->pass[pass].pd, dnnl_query_impl_info_str, 0, &name) !=
        dnnl_success)
        return "";
    return name;
}

int ag_conv_plan_prepare(AgConvPlan *p, int dx, int dw, int64_t *bytes, AgError *err) {
    if ((dw && make_pass(p, PASS_BWD_WEIGHTS, err)) || (dx && make_pass(p, PASS_BWD_DATA, err)))
        return -1;
    int64_t n = 64; /* room to align the workspace */
    for (int r = 0; r < NROLES; r++) n += (int64_t)p->cap[r];
    *bytes = n;
    return 0;
}

/* Points the plan at the workspace for one call, or fails when it is too small. */
static int use_work(AgConvPlan *p, void *work, int64_t bytes, int dx, int dw, AgError *err) {
    int64_t need;
    if (ag_conv_plan_prepare(p, dx, dw, &need, err)) return -1;
    if (!work || bytes < need)
        return ag_fail(err, "conv plan: workspace of %lld bytes, %lld needed", (long long)bytes,
                       (long long)need);
    p->work = (char *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    return 0;
}

int ag_conv_plan_forward(AgConvPlan *p, float *y, const float *x, const float *w,
                         const float *b, void *work, int64_t work_bytes, AgError *err) {
    if (ag_cancelled(err) || use_work(p, work, work_bytes, 0, 0, err)) return -1;
    Pass *ps = &p->pass[PASS_FWD];
    dnnl_exec_arg_t a[5];
    dnnl_memory_t mx, mw, my = port_bind(p, &ps->dst, y);
    if (port_in(p, &ps->src, x, &mx, err) || port_in(p, &ps->wei, w, &mw, err)) return -1;
    dnnl_memory_set_data_handle(ps->bias, (void *)(b ? b : p->zeros));
    a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mx};
    a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mw};
    a[2] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, ps->bias};
    a[3] = (dnnl_exec_arg_t){DNNL_ARG_DST, my};
    if (run_pass(p, ps, a, 4, err) || port_reorder(p, &ps->dst, 0, err)) return -1;
    DN(dnnl_stream_wait(p->strm), "stream wait");
    return 0;
}

int ag_conv_plan_backward(AgConvPlan *p, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, void *work, int64_t work_bytes,
                          AgError *err) {
    if (ag_cancelled(err) || use_work(p, work, work_bytes, dx != NULL, dw || db, err))
        return -1;
    const AgConvShape *s = &p->s;
    dnnl_exec_arg_t a[5];
    if (dw || db) { /* before the input gradient: both use the X and W role buffers */
        Pass *ps = &p->pass[PASS_BWD_WEIGHTS];
        const int64_t nw = (int64_t)s->co * s->ci * s->k * s->k;
        /* oneDNN overwrites its gradients: they go through the workspace, then += */
        float *tw = role_data(p, ROLE_GRAD), *tb = tw + nw;
        dnnl_memory_t mx, mdy, mdw = port_bind(p, &ps->wei, tw);
        if (!x) return ag_fail(err, "conv plan: the weight gradient needs the input");
        if (port_in(p, &ps->src, x, &mx, err) || port_in(p, &ps->dst, dy, &mdy, err)) return -1;
        dnnl_memory_set_data_handle(ps->bias, tb);
        a[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mx};
        a[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, mdy};
        a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, mdw};
        a[3] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, ps->bias};
        if (run_pass(p, ps, a, 4, err) || port_reorder(p, &ps->wei, 0, err)) return -1;
        if (dw)
#pragma omp parallel for schedule(static) if (nw > 65536)
            for (int64_t i = 0; i < nw; i++) dw[i] += tw[i];
        if (db)
            for (int o = 0; o < s->co; o++) db[o] += tb[o];
    }
    if (dx) {
        Pass *ps = &p->pass[PASS_BWD_DATA];
        dnnl_memory_t mw, mdy, mdx = port_bind(p, &ps->src, dx);
        if (!w) return ag_fail(err, "conv plan: the input gradient needs the weight");
        if (port_in(p, &ps->wei, w, &mw, err) || port_in(p, &ps->dst, dy, &mdy, err)) return -1;
        a[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, mdy};
        a[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mw};
        a[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, mdx};
        if (run_pass(p, ps, a, 3, err) || port_reorder(p, &ps->src, 0, err)) return -1;
    }
    DN(dnnl_stream_wait(p->strm), "stream wait");
    return 0;
}

#else /* no oneDNN in this build */

struct AgConvPlan {
    AgConvShape s;
};

int ag_conv_have_dnnl(void) {
    return 0;
}

int ag_conv_winograd_wins(const AgConvShape *s) {
    (void)s;
    return 0;
}

int ag_conv_plan_new(AgConvPlan **out, const AgConvShape *s, AgConvAlgo algo, AgError *err) {
    (void)s;
    (void)algo;
    *out = NULL;
    return ag_fail(err, "conv plan: agoplua was built without oneDNN (make DNNL=1 with "
                        "libdnnl-dev installed)");
}

void ag_conv_plan_free(AgConvPlan *p) {
    free(p);
}

const char *ag_conv_plan_impl(const AgConvPlan *p, int pass) {
    (void)p;
    (void)pass;
    return "";
}

int ag_conv_plan_prepare(AgConvPlan *p, int dx, int dw, int64_t *bytes, AgError *err) {
    (void)p, (void)dx, (void)dw;
    *bytes = 0;
    return ag_fail(err, "conv plan: agoplua was built without oneDNN");
}

int ag_conv_plan_forward(AgConvPlan *p, float *y, const float *x, const float *w,
                         const float *b, void *work, int64_t work_bytes, AgError *err) {
    (void)p, (void)y, (void)x, (void)w, (void)b, (void)work, (void)work_bytes;
    return ag_fail(err, "conv plan: agoplua was built without oneDNN");
}

int ag_conv_plan_backward(AgConvPlan *p, float *dx, float *dw, float *db, const float *dy,
                          const float *x, const float *w, void *work, int64_t work_bytes,
                          AgError *err) {
    (void)p, (void)dx, (void)dw, (void)db, (void)dy, (void)x, (void)w, (void)work,
        (void)work_bytes;
    return ag_fail(err, "conv plan: agoplua was built without oneDNN");
}

#endif

const AgConvShape *ag_conv_plan_shape(const AgConvPlan *p) {
    return &p->s;
}

int64_t ag_conv_plan_bytes(const AgConvPlan *p) {
#ifdef AG_HAVE_DNNL
    return p->bytes;
#else
    (void)p;
    return 0;
#endif
}
