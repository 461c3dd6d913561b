/* tensor.h - the float32 tensor view the whole engine works on.
 *
 * An AgTensor does not own memory: it describes `dim` sizes and strides (in elements)
 * over float data owned by someone else (in agoplua, a Lua userdata). Kernels take
 * plain float pointers of contiguous NCHW data; these helpers serve the generic
 * element-wise and reduction work of the Tensor type. */
#ifndef AG_TENSOR_H
#define AG_TENSOR_H

#include "ag.h"

#include <stdint.h>

#define AG_MAXDIM 8

typedef struct AgTensor {
    float *data; /* first element */
    int dim;     /* 0 .. AG_MAXDIM; 0 is a scalar with one element */
    int64_t size[AG_MAXDIM];
    int64_t stride[AG_MAXDIM]; /* in elements */
} AgTensor;

int64_t ag_numel(const AgTensor *t);
int ag_is_contiguous(const AgTensor *t);
/* Fills contiguous strides for t->size. */
void ag_set_contiguous_strides(AgTensor *t);
/* Checks sizes (non-negative, product below AG_MAXNUMEL); writes the product to *numel. */
int ag_check_sizes(int dim, const int64_t *size, int64_t *numel, AgError *err);
/* "2x3x4" (or "scalar") into buf of n bytes; returns buf. */
char *ag_shape_str(const AgTensor *t, char *buf, size_t n);
int ag_same_shape(const AgTensor *a, const AgTensor *b);

/* dst = src element by element; shapes must have equal numel (any strides). */
void ag_copy(AgTensor *dst, const AgTensor *src);
void ag_fill(AgTensor *t, float v);

typedef enum { AG_ADD, AG_SUB, AG_MUL, AG_DIV, AG_POW, AG_MAXIMUM, AG_MINIMUM } AgBinOp;
typedef enum {
    AG_NEG,
    AG_ABS,
    AG_EXP,
    AG_LOG,
    AG_SQRT,
    AG_RELU,
    AG_SIGN,
    AG_TANH,
    AG_SIGMOID
} AgUnOp;

/* y = a op (alpha * b), where b broadcasts over a's leading dimensions when its sizes
 * equal a's trailing ones (b may also have one element). y has a's shape; y may alias a.
 * alpha != 1 only for AG_ADD and AG_SUB (a fused axpy: no temporary). */
int ag_binary(AgTensor *y, const AgTensor *a, const AgTensor *b, AgBinOp op, float alpha,
              AgError *err);
/* y = a op s (or s op a when reversed != 0). */
void ag_binary_scalar(AgTensor *y, const AgTensor *a, double s, AgBinOp op, int reversed);
void ag_unary(AgTensor *y, const AgTensor *a, AgUnOp op);
void ag_clamp(AgTensor *y, const AgTensor *a, double lo, double hi);

/* Reductions over all elements, accumulated in double. */
double ag_sum_all(const AgTensor *t);
double ag_sumsq_all(const AgTensor *t);
/* Index (0-based, in iteration order) of the max (want_max) or min element; -1 if empty.
 * NaN counts as the maximum (as in PyTorch). */
int64_t ag_argext_all(const AgTensor *t, int want_max);

/* Reductions along dimension d (0-based): out has t's shape without dimension d (as a
 * contiguous buffer of numel(t)/size[d] floats). idx (may be NULL) receives 0-based
 * positions for max/min. */
typedef enum { AG_RSUM, AG_RMEAN, AG_RMAX, AG_RMIN } AgReduce;
void ag_reduce_dim(float *out, int64_t *idx, const AgTensor *t, int d, AgReduce op);

/* Loops over contiguous tensors (the caller checks shapes and makes them contiguous). */
/* t += value * a * b, or t += value * a / b (divide != 0); t, a, b of one numel. */
void ag_addcmul(AgTensor *t, float value, const AgTensor *a, const AgTensor *b, int divide);
/* sum a_i b_i in double; a and b of one numel. */
double ag_dot(const AgTensor *a, const AgTensor *b);
/* 1 when |a_i - b_i| <= atol + rtol |b_i| for every i (NaN never is); one numel. */
int ag_allclose(const AgTensor *a, const AgTensor *b, double rtol, double atol);
/* 1 when no element is NaN or infinite. */
int ag_all_finite(const AgTensor *t);
/* y[i] = t[idx[i]] along dimension 0 (rows), i < n; idx 0-based, each in [0, size[0]);
 * y has t's shape with size[0] = n. */
void ag_index_select(AgTensor *y, const AgTensor *t, const int64_t *idx, int64_t n);

/* C = alpha * op(A) op(B) + beta * C with cblas_sgemm; A, B, C 2-D, each either
 * row-contiguous (stride[1] == 1) or column-contiguous (stride[0] == 1: a transposed
 * view) - no copies. Other layouts: error. */
int ag_mm(AgTensor *c, const AgTensor *a, const AgTensor *b, float alpha, float beta,
          AgError *err);

#endif
