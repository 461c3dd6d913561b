/* linear.h - fully connected layer y = x w^T + b (PyTorch's nn.Linear layout). */
#ifndef AG_LINEAR_H
#define AG_LINEAR_H

#include "ag.h"

/* Checks the sizes (positive, small enough for cblas' int arguments). */
int ag_linear_check(int b, int in, int out, AgError *err);

/* y = x w^T + b
 *   y: (B, Out)  out
 *   x: (B, In)
 *   w: (Out, In)
 *   b: (Out) or NULL */
int ag_linear_forward(float *y, const float *x, const float *w, const float *b, int nb, int in,
                      int out, AgError *err);

/* dx = dy w (overwritten), dw += dy^T x, db += sum over the batch of dy (in double); any
 * of dx, dw, db may be NULL to skip it.
 *   dx: (B, In)   out, or NULL
 *   dw: (Out, In) acc, or NULL
 *   db: (Out)     acc, or NULL
 *   dy: (B, Out)
 *   x:  (B, In)   (read when dw != NULL)
 *   w:  (Out, In) (read when dx != NULL) */
int ag_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                       const float *w, int nb, int in, int out, AgError *err);

#endif
