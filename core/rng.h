/* A random generator that reproduces numpy's legacy stream exactly.
 *
 *     np.random.seed(1); np.random.randn(5, 3)
 * is
 *     tg_rng rng; tg_rng_seed(&rng, 1);
 *     tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(5, 3));
 *
 * The generator is MT19937 seeded like numpy (a 32-bit integer seed); rand
 * gives numpy's 53-bit doubles in [0, 1); randn is numpy's legacy polar
 * Box-Muller, which makes two normals per accepted pair and keeps the second
 * for the next call. Arrays are filled in C order, as numpy does. */
#ifndef TG_RNG_H
#define TG_RNG_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_MT_N 624

typedef struct {
    uint32_t key[TG_MT_N];
    int pos;
    bool has_gauss; /* a second normal is waiting */
    double gauss;
} tg_rng;

/* np.random.seed(seed) */
TG_API void tg_rng_seed(tg_rng *rng, uint32_t seed);
/* One raw 32-bit output of MT19937. */
TG_API uint32_t tg_rng_u32(tg_rng *rng);
/* np.random.rand(): uniform in [0, 1) with 53 random bits. */
TG_API double tg_rng_rand(tg_rng *rng);
/* np.random.randn(): standard normal. */
TG_API double tg_rng_randn(tg_rng *rng);
/* np.random.randint(0, n) for 1 <= n <= 2^32 (numpy's masked rejection),
 * so shuffles match numpy's legacy np.random.shuffle. */
TG_API uint32_t tg_rng_below(tg_rng *rng, uint64_t n);
/* np.random.shuffle of an int32 array in place. */
TG_API void tg_rng_shuffle_i32(tg_rng *rng, int32_t *values, int64_t n);
/* np.random.choice(n, p=probs): one index drawn with the given weights (the
 * weights need not sum to 1; negative or non-finite ones count as 0).
 * Returns -1 if no weight is positive. */
TG_API int64_t tg_rng_choice(tg_rng *rng, const double *probs, int64_t n);

/* Fill t (any strides) in C order of its shape. */
TG_API void tg_rng_fill_randn(tg_rng *rng, tg_tensor *t);
TG_API void tg_rng_fill_rand(tg_rng *rng, tg_tensor *t);
/* Uniform in [low, high): low + (high - low) * rand(), like np.random.uniform. */
TG_API void tg_rng_fill_uniform(tg_rng *rng, tg_tensor *t, double low, double high);

/* New persistent tensors, as np.random.randn(*shape) / np.random.rand(*shape). */
TG_API tg_tensor *tg_tensor_randn(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape);
TG_API tg_tensor *tg_tensor_rand(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape);

#ifdef __cplusplus
}
#endif

#endif
