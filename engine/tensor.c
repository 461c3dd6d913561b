/* tensor.c - generic element-wise, reduction and GEMM work on strided float tensors. */
#include "tensor.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Work below this many elements stays on one thread: spawning costs more. */
#define PAR_MIN 32768

int64_t ag_numel(const AgTensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->dim; d++) n *= t->size[d];
    return n;
}

int ag_is_contiguous(const AgTensor *t) {
    int64_t expect = 1;
    for (int d = t->dim - 1; d >= 0; d--) {
        if (t->size[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->size[d];
    }
    return 1;
}

void ag_set_contiguous_strides(AgTensor *t) {
    int64_t s = 1;
    for (int d = t->dim - 1; d >= 0; d--) {
        t->stride[d] = s;
        s *= t->size[d];
    }
}

int ag_check_sizes(int dim, const int64_t *size, int64_t *numel, AgError *err) {
    if (dim < 0 || dim > AG_MAXDIM)
        return ag_fail(err, "%d dimensions requested, at most %d supported", dim, AG_MAXDIM);
    /* the product of the non-zero sizes is bounded too: once a size is 0 the others
     * still make strides (and a later view's numel), which must not overflow */
    int64_t n = 1, nonzero = 1;
    for (int d = 0; d < dim; d++) {
        if (size[d] < 0)
            return ag_fail(err, "size %lld of dimension %d is negative", (long long)size[d],
                           d + 1);
        if (ag_mul_size(nonzero, size[d] ? size[d] : 1, &nonzero) != 0 || nonzero > AG_MAXNUMEL)
            return ag_fail(err, "sizes multiply to more than %lld elements",
                           (long long)AG_MAXNUMEL);
        n *= size[d];
    }
    *numel = n;
    return 0;
}

char *ag_shape_str(const AgTensor *t, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    if (t->dim == 0) {
        snprintf(buf, n, "scalar");
        return buf;
    }
    for (int d = 0; d < t->dim && used < n; d++) {
        int w = snprintf(buf + used, n - used, d ? "x%lld" : "%lld", (long long)t->size[d]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

int ag_same_shape(const AgTensor *a, const AgTensor *b) {
    if (a->dim != b->dim) return 0;
    for (int d = 0; d < a->dim; d++)
        if (a->size[d] != b->size[d]) return 0;
    return 1;
}

/* Offset (in elements) of the lin-th element, in row-major order of t's sizes. */
static int64_t offset_of(const AgTensor *t, int64_t lin) {
    int64_t off = 0;
    for (int d = t->dim - 1; d >= 0; d--) {
        int64_t s = t->size[d];
        off += (lin % s) * t->stride[d];
        lin /= s;
    }
    return off;
}

void ag_copy(AgTensor *dst, const AgTensor *src) {
    int64_t n = ag_numel(dst);
    if (ag_is_contiguous(dst) && ag_is_contiguous(src)) {
        memmove(dst->data, src->data, (size_t)n * sizeof(float));
        return;
    }
#pragma omp parallel for if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) dst->data[offset_of(dst, i)] = src->data[offset_of(src, i)];
}

void ag_fill(AgTensor *t, float v) {
    int64_t n = ag_numel(t);
    if (ag_is_contiguous(t)) {
        for (int64_t i = 0; i < n; i++) t->data[i] = v;
        return;
    }
    for (int64_t i = 0; i < n; i++) t->data[offset_of(t, i)] = v;
}

static inline float binop(AgBinOp op, float x, float y) {
    switch (op) {
    case AG_ADD:
        return x + y;
    case AG_SUB:
        return x - y;
    case AG_MUL:
        return x * y;
    case AG_DIV:
        return x / y;
    case AG_POW:
        return powf(x, y);
    case AG_MAXIMUM:
        return (x != x || x > y) ? x : y;
    case AG_MINIMUM:
        return (x != x || x < y) ? x : y;
    }
    return 0;
}

int ag_binary(AgTensor *y, const AgTensor *a, const AgTensor *b, AgBinOp op, float alpha,
              AgError *err) {
    int64_t n = ag_numel(a), inner = ag_numel(b);
    int trailing = b->dim <= a->dim;
    for (int d = 0; trailing && d < b->dim; d++)
        trailing = b->size[b->dim - 1 - d] == a->size[a->dim - 1 - d];
    if (!trailing && inner != 1) {
        char sa[96], sb[96];
        return ag_fail(err,
                       "shapes %s and %s do not broadcast (the second must match the "
                       "first's trailing dimensions)",
                       ag_shape_str(a, sa, sizeof sa), ag_shape_str(b, sb, sizeof sb));
    }
    if (n == 0) return 0;
    if (inner == 0) return 0;
    if (alpha != 1.0f && op != AG_ADD && op != AG_SUB)
        return ag_fail(err, "a scale factor applies only to add and sub");
    if (op == AG_SUB) op = AG_ADD, alpha = -alpha;
    if (op == AG_ADD && inner == n && ag_is_contiguous(y) && ag_is_contiguous(a) &&
        ag_is_contiguous(b)) {
        float *yd = y->data;
        const float *ad = a->data, *bd = b->data;
#pragma omp parallel for if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) yd[i] = ad[i] + alpha * bd[i];
        return 0;
    }
    if (alpha != 1.0f) {
#pragma omp parallel for if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            y->data[offset_of(y, i)] =
                a->data[offset_of(a, i)] + alpha * b->data[offset_of(b, i % inner)];
        return 0;
    }
    if (ag_is_contiguous(y) && ag_is_contiguous(a) && ag_is_contiguous(b)) {
        float *yd = y->data;
        const float *ad = a->data, *bd = b->data;
        if (inner == n) {
#pragma omp parallel for if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++) yd[i] = binop(op, ad[i], bd[i]);
        } else if (inner == 1) {
            float s = bd[0];
#pragma omp parallel for if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++) yd[i] = binop(op, ad[i], s);
        } else {
            int64_t outer = n / inner;
#pragma omp parallel for if (n > PAR_MIN)
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++)
                    yd[o * inner + i] = binop(op, ad[o * inner + i], bd[i]);
        }
        return 0;
    }
#pragma omp parallel for if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        y->data[offset_of(y, i)] =
            binop(op, a->data[offset_of(a, i)], b->data[offset_of(b, i % inner)]);
    return 0;
}

void ag_binary_scalar(AgTensor *y, const AgTensor *a, double s, AgBinOp op, int reversed) {
    int64_t n = ag_numel(a);
    float f = (float)s;
    if (ag_is_contiguous(y) && ag_is_contiguous(a) && !reversed &&
        (op == AG_ADD || op == AG_SUB || op == AG_MUL)) {
        float *yd = y->data;
        const float *ad = a->data;
        float add = op == AG_ADD ? f : (op == AG_SUB ? -f : 0), mul = op == AG_MUL ? f : 1;
#pragma omp parallel for if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) yd[i] = ad[i] * mul + add;
        return;
    }
    int contig = ag_is_contiguous(y) && ag_is_contiguous(a);
#pragma omp parallel for if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t oy = contig ? i : offset_of(y, i), oa = contig ? i : offset_of(a, i);
        float x = a->data[oa];
        y->data[oy] = reversed ? binop(op, f, x) : binop(op, x, f);
    }
}

static inline float unop(AgUnOp op, float x) {
    switch (op) {
    case AG_NEG:
        return -x;
    case AG_ABS:
        return fabsf(x);
    case AG_EXP:
        return expf(x);
    case AG_LOG:
        return logf(x);
    case AG_SQRT:
        return sqrtf(x);
    case AG_RELU:
        return x > 0 ? x : 0;
    case AG_SIGN:
        return (float)((x > 0) - (x < 0));
    case AG_TANH:
        return tanhf(x);
    case AG_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    }
    return 0;
}

void ag_unary(AgTensor *y, const AgTensor *a, AgUnOp op) {
    int64_t n = ag_numel(a);
    int contig = ag_is_contiguous(y) && ag_is_contiguous(a);
#pragma omp parallel for if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t oy = contig ? i : offset_of(y, i), oa = contig ? i : offset_of(a, i);
        y->data[oy] = unop(op, a->data[oa]);
    }
}

void ag_clamp(AgTensor *y, const AgTensor *a, double lo, double hi) {
    int64_t n = ag_numel(a);
    int contig = ag_is_contiguous(y) && ag_is_contiguous(a);
    float l = (float)lo, h = (float)hi;
#pragma omp parallel for if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        int64_t oy = contig ? i : offset_of(y, i), oa = contig ? i : offset_of(a, i);
        float x = a->data[oa];
        y->data[oy] = x < l ? l : (x > h ? h : x);
    }
}

double ag_sum_all(const AgTensor *t) {
    int64_t n = ag_numel(t);
    int contig = ag_is_contiguous(t);
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) s += t->data[contig ? i : offset_of(t, i)];
    return s;
}

double ag_sumsq_all(const AgTensor *t) {
    int64_t n = ag_numel(t);
    int contig = ag_is_contiguous(t);
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double x = t->data[contig ? i : offset_of(t, i)];
        s += x * x;
    }
    return s;
}

int64_t ag_argext_all(const AgTensor *t, int want_max) {
    int64_t n = ag_numel(t), best = -1;
    float bv = 0;
    int contig = ag_is_contiguous(t);
    for (int64_t i = 0; i < n; i++) {
        float x = t->data[contig ? i : offset_of(t, i)];
        if (best < 0) {
            best = i, bv = x;
            if (x != x) return i;
            continue;
        }
        if (x != x) return i; /* NaN wins */
        if (want_max ? x > bv : x < bv) best = i, bv = x;
    }
    return best;
}

void ag_reduce_dim(float *out, int64_t *idx, const AgTensor *t, int d, AgReduce op) {
    AgTensor r = *t; /* t without dimension d */
    for (int k = d; k < t->dim - 1; k++) {
        r.size[k] = t->size[k + 1];
        r.stride[k] = t->stride[k + 1];
    }
    r.dim = t->dim - 1;
    int64_t m = ag_numel(&r), len = t->size[d], st = t->stride[d];
#pragma omp parallel for if (m * len > PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        const float *p = t->data + offset_of(&r, i);
        if (op == AG_RSUM || op == AG_RMEAN) {
            double s = 0;
            for (int64_t k = 0; k < len; k++) s += p[k * st];
            out[i] = (float)(op == AG_RMEAN ? (len ? s / (double)len : NAN) : s);
        } else {
            int64_t bi = 0;
            float bv = len ? p[0] : NAN;
            for (int64_t k = 1; k < len && bv == bv; k++) {
                float x = p[k * st];
                if (x != x || (op == AG_RMAX ? x > bv : x < bv)) bv = x, bi = k;
            }
            out[i] = bv;
            if (idx) idx[i] = bi;
        }
    }
}

void ag_addcmul(AgTensor *t, float value, const AgTensor *a, const AgTensor *b, int divide) {
    int64_t n = ag_numel(t);
    float *td = t->data;
    const float *ad = a->data, *bd = b->data;
    if (divide) {
#pragma omp parallel for if (n > 2 * PAR_MIN)
        for (int64_t i = 0; i < n; i++) td[i] += value * ad[i] / bd[i];
    } else {
#pragma omp parallel for if (n > 2 * PAR_MIN)
        for (int64_t i = 0; i < n; i++) td[i] += value * ad[i] * bd[i];
    }
}

double ag_dot(const AgTensor *a, const AgTensor *b) {
    int64_t n = ag_numel(a);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a->data[i] * b->data[i];
    return s;
}

int ag_allclose(const AgTensor *a, const AgTensor *b, double rtol, double atol) {
    int64_t n = ag_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double x = a->data[i], y = b->data[i];
        if (!(fabs(x - y) <= atol + rtol * fabs(y))) return 0;
    }
    return 1;
}

int ag_all_finite(const AgTensor *t) {
    int64_t n = ag_numel(t);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(t->data[i])) return 0;
    return 1;
}

void ag_index_select(AgTensor *y, const AgTensor *t, const int64_t *idx, int64_t n) {
    /* t is contiguous, so a row holds the product of the other sizes; stride[0] is not
     * that when size[0] == 1 (ag_is_contiguous ignores the strides of size-1 dims) */
    int64_t row = 1;
    for (int d = 1; d < t->dim; d++) row *= t->size[d];
    for (int64_t i = 0; i < n; i++)
        memcpy(y->data + i * row, t->data + idx[i] * row, (size_t)row * sizeof(float));
}

/* How a 2-D operand is handed to sgemm: 0 row-major as is, 1 transposed, -1 neither. */
static int gemm_layout(const AgTensor *t, int *ld) {
    int64_t r = t->size[0], c = t->size[1];
    if (t->stride[1] == 1 || c == 1) {
        int64_t l = r == 1 ? (c > 1 ? c : 1) : t->stride[0];
        if (l >= (c > 1 ? c : 1) && l <= INT32_MAX) {
            *ld = (int)l;
            return 0;
        }
    }
    if (t->stride[0] == 1 || r == 1) {
        int64_t l = c == 1 ? (r > 1 ? r : 1) : t->stride[1];
        if (l >= (r > 1 ? r : 1) && l <= INT32_MAX) {
            *ld = (int)l;
            return 1;
        }
    }
    return -1;
}

int ag_mm(AgTensor *c, const AgTensor *a, const AgTensor *b, float alpha, float beta,
          AgError *err) {
    char sa[64], sb[64], sc[64];
    if (a->dim != 2 || b->dim != 2 || c->dim != 2 || a->size[1] != b->size[0] ||
        c->size[0] != a->size[0] || c->size[1] != b->size[1])
        return ag_fail(err, "mm: cannot multiply %s by %s into %s",
                       ag_shape_str(a, sa, sizeof sa), ag_shape_str(b, sb, sizeof sb),
                       ag_shape_str(c, sc, sizeof sc));
    int64_t m = a->size[0], k = a->size[1], n = b->size[1];
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
        return ag_fail(err, "mm: dimensions too large for BLAS");
    if (m == 0 || n == 0) return 0;
    if (k == 0) { /* an empty sum: C = beta * C, whatever the (meaningless) strides */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                float *p = c->data + i * c->stride[0] + j * c->stride[1];
                *p = beta == 0 ? 0 : beta * *p;
            }
        return 0;
    }
    int lda, ldb, ldc;
    int ta = gemm_layout(a, &lda), tb = gemm_layout(b, &ldb), tc = gemm_layout(c, &ldc);
    if (ta < 0 || tb < 0 || tc != 0)
        return ag_fail(err, "mm: operands must be contiguous or transposed views");
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, alpha, a->data, lda, b->data, ldb, beta, c->data, ldc);
    return 0;
}
