/* numpy-compatible MT19937 stream (see rng.h). Constants are MT19937's
 * published parameters; the seeding, double and normal recipes are the ones
 * numpy's legacy RandomState uses. */
#include "rng.h"

#include <math.h>

enum { MT_M = 397 };
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

void tg_rng_seed(tg_rng *rng, uint32_t seed)
{
    uint32_t s = seed;
    for (int i = 0; i < TG_MT_N; i++) {
        rng->key[i] = s;
        s = 1812433253u * (s ^ (s >> 30)) + (uint32_t)i + 1u;
    }
    rng->pos = TG_MT_N;
    rng->has_gauss = false;
    rng->gauss = 0;
}

static void regenerate(tg_rng *rng)
{
    uint32_t *k = rng->key;
    for (int i = 0; i < TG_MT_N; i++) {
        uint32_t y = (k[i] & MT_UPPER) | (k[(i + 1) % TG_MT_N] & MT_LOWER);
        k[i] = k[(i + MT_M) % TG_MT_N] ^ (y >> 1) ^ ((y & 1u) ? MT_MATRIX_A : 0u);
    }
    rng->pos = 0;
}

uint32_t tg_rng_u32(tg_rng *rng)
{
    if (rng->pos >= TG_MT_N)
        regenerate(rng);
    uint32_t y = rng->key[rng->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

double tg_rng_rand(tg_rng *rng)
{
    uint32_t a = tg_rng_u32(rng) >> 5, b = tg_rng_u32(rng) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

double tg_rng_randn(tg_rng *rng)
{
    if (rng->has_gauss) {
        rng->has_gauss = false;
        return rng->gauss;
    }
    double x1, x2, r2;
    do {
        x1 = 2.0 * tg_rng_rand(rng) - 1.0;
        x2 = 2.0 * tg_rng_rand(rng) - 1.0;
        r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    double f = sqrt(-2.0 * log(r2) / r2);
    rng->gauss = f * x1;
    rng->has_gauss = true;
    return f * x2;
}

uint32_t tg_rng_below(tg_rng *rng, uint64_t n)
{
    if (n <= 1)
        return 0;
    uint32_t max = (uint32_t)(n - 1);
    uint32_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    uint32_t v;
    do
        v = tg_rng_u32(rng) & mask;
    while (v > max);
    return v;
}

void tg_rng_shuffle_i32(tg_rng *rng, int32_t *values, int64_t n)
{
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = tg_rng_below(rng, (uint64_t)i + 1);
        int32_t t = values[i];
        values[i] = values[j];
        values[j] = t;
    }
}

int64_t tg_rng_choice(tg_rng *rng, const double *probs, int64_t n)
{
    if (!rng || !probs || n <= 0)
        return -1;
    double total = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(probs[i]) && probs[i] > 0)
            total += probs[i];
    if (!(total > 0))
        return -1;
    /* numpy: cdf = cumsum(p) / cdf[-1]; searchsorted(cdf, u, side='right') */
    double u = tg_rng_rand(rng), cumulative = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        if (!(isfinite(probs[i]) && probs[i] > 0))
            continue;
        cumulative += probs[i];
        last = i;
        if (u < cumulative / total)
            return i;
    }
    return last;
}

typedef enum { FILL_NORMAL, FILL_UNIFORM } fill_kind;

static void fill(tg_rng *rng, tg_tensor *t, fill_kind kind, double low, double high)
{
    int64_t n = tg_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = kind == FILL_NORMAL ? tg_rng_randn(rng) : low + (high - low) * tg_rng_rand(rng);
        tg_tensor_set_flat(t, i, v);
    }
}

void tg_rng_fill_randn(tg_rng *rng, tg_tensor *t) { fill(rng, t, FILL_NORMAL, 0, 0); }
void tg_rng_fill_rand(tg_rng *rng, tg_tensor *t) { fill(rng, t, FILL_UNIFORM, 0, 1); }
void tg_rng_fill_uniform(tg_rng *rng, tg_tensor *t, double low, double high)
{
    fill(rng, t, FILL_UNIFORM, low, high);
}

tg_tensor *tg_tensor_randn(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape)
{
    if (!rng) {
        tg_fail(TG_ERR_ARG, "tg_tensor_randn: generator is NULL");
        return NULL;
    }
    tg_tensor *t = tg_tensor_zeros(dtype, ndim, shape);
    if (t)
        tg_rng_fill_randn(rng, t);
    return t;
}

tg_tensor *tg_tensor_rand(tg_rng *rng, tg_dtype dtype, int ndim, const int64_t *shape)
{
    if (!rng) {
        tg_fail(TG_ERR_ARG, "tg_tensor_rand: generator is NULL");
        return NULL;
    }
    tg_tensor *t = tg_tensor_zeros(dtype, ndim, shape);
    if (t)
        tg_rng_fill_rand(rng, t);
    return t;
}
