/* rng.h - a seeded random generator object (xoshiro256**, seeded by splitmix64).
 * No hidden state: every draw names its generator, so the same seed gives the same
 * numbers on every machine. */
#ifndef AG_RNG_H
#define AG_RNG_H

#include <stdint.h>

typedef struct AgRng {
    uint64_t s[4];
    uint64_t seed;
} AgRng;

void ag_rng_seed(AgRng *r, uint64_t seed);
uint64_t ag_rng_next(AgRng *r);
/* uniform in [0, 1) with 53 random bits */
double ag_rng_uniform(AgRng *r);
/* standard normal (Box-Muller on two uniforms; no cached second value) */
double ag_rng_normal(AgRng *r);
/* uniform integer in [0, n), n > 0, without modulo bias */
uint64_t ag_rng_below(AgRng *r, uint64_t n);
/* fills x[0..n) */
void ag_rng_fill_uniform(AgRng *r, float *x, int64_t n, float lo, float hi);
void ag_rng_fill_normal(AgRng *r, float *x, int64_t n, float mean, float std);

#endif
