/* ansatz.h - how well a conv layer's CNFM N = W^T W agrees with a power of its patch-AGOP
 * G = W^T S W, without forming either d x d matrix. engine/agop.c forms the matrices
 * (N, S and G); this file tests the ansatz N ~ G^alpha on them.
 *
 * Both are quadratic forms in W, and G^alpha = W^T M W for a c_out x c_out matrix M
 * (computed from S through the rank-c_out factorization, as ag_agop_pow does). Every
 * sum that Pearson's correlation needs then lives in c_out x c_out space:
 *   sum N = u^T u, sum H = u^T M u (u = W 1), <N, H> = tr(M K K), |N|^2 = tr(K K),
 *   |H|^2 = tr(M K M K) (K = W W^T), diag N_j = |w_j|^2, diag H_j = w_j^T M w_j
 * (w_j column j of W). The cost is O(c_out^2 d) instead of O(d^2 c_out), and nothing of
 * size d x d is allocated: the bootstrap of Table 1 calls it hundreds of times. */
#ifndef AG_ANSATZ_H
#define AG_ANSATZ_H

#include "ag.h"

#include <stdint.h>

/* rho[0] = Pearson correlation of N = W^T W and H = (W^T S W)^alpha over all d x d
 * entries, rho[1] = the same over the entries i != j (d >= 2). Work in double;
 * eigenvalues of S below 0 and directions of W^T S W below 1e-13 of the largest are
 * dropped, as in ag_agop_pow.
 *   rho: (2)        out
 *   s:   (co, co)   symmetric (e.g. the factor S_l / n of an AGOP)
 *   w:   (co, d) */
int ag_ansatz_corr(double *rho, const float *s, const float *w, int64_t co, int64_t d,
                   double alpha, AgError *err);

#endif
