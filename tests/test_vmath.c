/* ops/vmath.h: exp, tanh and sigmoid against libm in higher precision
 * (dense sweeps, random bit patterns, special values), array edge cases
 * (every length up to 67, unaligned, in place, with a bias), and the
 * promise the elementwise ops build on: a contiguous and a strided tensor
 * give bit-identical results, forward and backward. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/vmath.h"
#include "util.h"

enum { F_EXP, F_TANH, F_SIGMOID, N_FUNCS };
static const char *const func_name[N_FUNCS] = {"exp", "tanh", "sigmoid"};

typedef void (*array_f32)(int64_t, const float *, float *);
typedef void (*array_f64)(int64_t, const double *, double *);
static const array_f32 array32[N_FUNCS] = {tg_vexp_f32, tg_vtanh_f32, tg_vsigmoid_f32};
static const array_f64 array64[N_FUNCS] = {tg_vexp_f64, tg_vtanh_f64, tg_vsigmoid_f64};
static float (*const scalar32[N_FUNCS])(float) = {tg_math_exp_f32, tg_math_tanh_f32,
                                                  tg_math_sigmoid_f32};
static double (*const scalar64[N_FUNCS])(double) = {tg_math_exp_f64, tg_math_tanh_f64,
                                                    tg_math_sigmoid_f64};

/* ---- references ------------------------------------------------------------------ */

/* f32 results are judged against double libm (far more accurate than a
 * float ulp), f64 results against long double libm. */
static double reference32(int f, double x)
{
    switch (f) {
    case F_EXP: return exp(x);
    case F_TANH: return tanh(x);
    default: return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
    }
}

static long double reference64(int f, long double x)
{
    switch (f) {
    case F_EXP: return expl(x);
    case F_TANH: return tanhl(x);
    default: return x >= 0 ? 1 / (1 + expl(-x)) : expl(x) / (1 + expl(x));
    }
}

/* Error of y in units of the last place of a float next to ref (a fixed
 * 2^-149 among the subnormals); infinite results must match exactly. */
static double ulp_error32(float y, double ref)
{
    if (isinf((float)ref) || isinf(y))
        return (float)ref == y ? 0 : INFINITY;
    double a = fabs(ref);
    double ulp = a < FLT_MIN ? 0x1p-149 : ldexp(1.0, ilogb(a) - 23);
    return fabs((double)y - ref) / ulp;
}

/* Relative error of y, measured against DBL_MIN among the subnormals. */
static double rel_error64(double y, long double ref)
{
    if (isinf((double)ref) || isinf(y))
        return (double)ref == y ? 0 : INFINITY;
    return (double)(fabsl(y - ref) / fmaxl(fabsl(ref), DBL_MIN));
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- accuracy --------------------------------------------------------------------- */

typedef struct {
    int f;
    double worst;
    double worst_x;
    int64_t mismatches; /* array result differs from the scalar function */
} accuracy;

static void check_block32(accuracy *acc, const float *x, int64_t n)
{
    float y[1024];
    array32[acc->f](n, x, y);
    for (int64_t i = 0; i < n; i++) {
        float s = scalar32[acc->f](x[i]);
        if (memcmp(&s, &y[i], sizeof s) != 0)
            acc->mismatches++;
        double e = isnan(x[i]) ? (isnan(y[i]) ? 0 : INFINITY)
                               : ulp_error32(y[i], reference32(acc->f, x[i]));
        if (!(e <= acc->worst)) {
            acc->worst = e;
            acc->worst_x = x[i];
        }
    }
}

static void check_block64(accuracy *acc, const double *x, int64_t n)
{
    double y[1024];
    array64[acc->f](n, x, y);
    for (int64_t i = 0; i < n; i++) {
        double s = scalar64[acc->f](x[i]);
        if (memcmp(&s, &y[i], sizeof s) != 0)
            acc->mismatches++;
        double e = isnan(x[i]) ? (isnan(y[i]) ? 0 : INFINITY)
                               : rel_error64(y[i], reference64(acc->f, x[i]));
        if (!(e <= acc->worst)) {
            acc->worst = e;
            acc->worst_x = x[i];
        }
    }
}

/* Every multiple of 2^-10 in [-110, 110] (past the overflow of exp, into
 * its subnormals and past the saturation of tanh and sigmoid), then 2^20
 * random bit patterns: all finite floats, infinities and NaNs. */
START_TEST(f32_is_within_4_ulp_everywhere)
{
    int f = _i;
    accuracy acc = {f, 0, 0, 0};
    float x[1024];
    int64_t n = 0;
    for (int64_t k = -110 * 1024; k <= 110 * 1024; k++) {
        x[n++] = (float)k / 1024;
        if (n == 1024 || k == 110 * 1024) {
            check_block32(&acc, x, n);
            n = 0;
        }
    }
    uint64_t state = 0x9E3779B97F4A7C15u + (uint64_t)f;
    for (int block = 0; block < 1024; block++) {
        for (int i = 0; i < 1024; i++) {
            uint32_t bits = (uint32_t)(xorshift(&state) >> 32);
            memcpy(&x[i], &bits, sizeof bits);
        }
        check_block32(&acc, x, 1024);
    }
    ck_assert_msg(acc.worst <= 4, "f32 %s: %.3f ulp at x = %a", func_name[f], acc.worst,
                  acc.worst_x);
    ck_assert_msg(acc.mismatches == 0, "f32 %s: %lld array results differ from the scalar",
                  func_name[f], (long long)acc.mismatches);
}
END_TEST

/* Dense steps over the interesting ranges (for exp from underflow through
 * the subnormals to overflow), random values inside them, and random bit
 * patterns over the whole double range. */
START_TEST(f64_relative_error_is_below_2e_15_everywhere)
{
    int f = _i;
    accuracy acc = {f, 0, 0, 0};
    double x[1024];
    const double lo[N_FUNCS] = {-760, -40, -760}, hi[N_FUNCS] = {720, 40, 40};
    const double step[N_FUNCS] = {0x1p-6, 0x1p-12, 0x1p-6};
    int64_t n = 0;
    for (double v = lo[f]; v <= hi[f]; v += step[f]) {
        x[n++] = v;
        if (n == 1024) {
            check_block64(&acc, x, n);
            n = 0;
        }
    }
    check_block64(&acc, x, n);
    uint64_t state = 0x2545F4914F6CDD1Du + (uint64_t)f;
    for (int block = 0; block < 256; block++) {
        for (int i = 0; i < 1024; i++) {
            uint64_t bits = xorshift(&state);
            if (block % 2)
                memcpy(&x[i], &bits, sizeof bits);
            else
                x[i] = lo[f] + (hi[f] - lo[f]) * (double)(bits >> 11) * 0x1p-53;
        }
        check_block64(&acc, x, 1024);
    }
    ck_assert_msg(acc.worst <= 2e-15, "f64 %s: relative error %.3g at x = %a", func_name[f],
                  acc.worst, acc.worst_x);
    ck_assert_msg(acc.mismatches == 0, "f64 %s: %lld array results differ from the scalar",
                  func_name[f], (long long)acc.mismatches);
}
END_TEST

/* ---- special values ------------------------------------------------------------------ */

/* Each row: x, exp(x), tanh(x), sigmoid(x), as exact doubles. */
static const double specials[][4] = {
    {0.0, 1, 0.0, 0.5},
    {-0.0, 1, -0.0, 0.5},
    {INFINITY, INFINITY, 1, 1},
    {-INFINITY, 0, -1, 0},
    {1000, INFINITY, 1, 1},
    {-1000, 0, -1, 0},
    {1e30, INFINITY, 1, 1},
    {-1e30, 0, -1, 0},
};

static void assert_same(const char *what, double x, double got, double want)
{
    ck_assert_msg(got == want && signbit(got) == signbit(want), "%s(%g) = %a, expected %a", what,
                  x, got, want);
}

START_TEST(special_values_are_exact_and_nan_propagates)
{
    for (size_t r = 0; r < sizeof specials / sizeof specials[0]; r++) {
        double x = specials[r][0];
        for (int f = 0; f < N_FUNCS; f++) {
            float x32 = (float)x, y32;
            double y64;
            array32[f](1, &x32, &y32);
            array64[f](1, &x, &y64);
            assert_same(func_name[f], x, y32, specials[r][1 + f]);
            assert_same(func_name[f], x, y64, specials[r][1 + f]);
            assert_same(func_name[f], x, scalar32[f](x32), specials[r][1 + f]);
            assert_same(func_name[f], x, scalar64[f](x), specials[r][1 + f]);
        }
    }
    /* NaN in, NaN out, in every lane position of a vector. */
    for (int f = 0; f < N_FUNCS; f++) {
        float x32[19], y32[19];
        double x64[19], y64[19];
        for (int i = 0; i < 19; i++) {
            x32[i] = i % 3 ? (float)i : NAN;
            x64[i] = i % 3 ? (double)i : -NAN;
        }
        array32[f](19, x32, y32);
        array64[f](19, x64, y64);
        for (int i = 0; i < 19; i++) {
            ck_assert_msg(isnan(y32[i]) == (i % 3 == 0), "f32 %s lane %d", func_name[f], i);
            ck_assert_msg(isnan(y64[i]) == (i % 3 == 0), "f64 %s lane %d", func_name[f], i);
        }
        ck_assert(isnan(scalar32[f](NAN)) && isnan(scalar64[f](NAN)));
    }
    /* Tiny arguments: tanh x = x, sigmoid = 1/2, exp = 1; subnormal exp. */
    ck_assert(tg_math_tanh_f32(0x1p-140f) == 0x1p-140f);
    ck_assert(tg_math_tanh_f64(-0x1p-1070) == -0x1p-1070);
    ck_assert(tg_math_sigmoid_f64(1e-300) == 0.5 && tg_math_exp_f32(-0x1p-149f) == 1.0f);
    ck_assert(tg_math_exp_f32(-100.0f) > 0 && tg_math_exp_f32(-100.0f) < FLT_MIN);
    ck_assert(tg_math_exp_f64(-740.0) > 0 && tg_math_exp_f64(-740.0) < DBL_MIN);
    ck_assert(tg_math_sigmoid_f32(-100.0f) > 0 && tg_math_sigmoid_f32(-100.0f) < FLT_MIN);
    /* The largest finite results. */
    ck_assert(isfinite(tg_math_exp_f32(88.72f)) && isinf(tg_math_exp_f32(88.73f)));
    ck_assert(isfinite(tg_math_exp_f64(709.78)) && isinf(tg_math_exp_f64(709.79)));
}
END_TEST

/* ---- arrays ---------------------------------------------------------------------------- */

/* Lengths 0..67 at offsets 0..3 (unaligned), out of place and in place:
 * every element equals the scalar function, nothing outside [0, n) is
 * touched. */
START_TEST(every_length_and_offset_matches_the_scalar_in_place_or_not)
{
    enum { MAX = 67, PAD = 8 };
    const float guard32 = -12345.0f;
    const double guard64 = -12345.0;
    for (int f = 0; f < N_FUNCS; f++)
        for (int n = 0; n <= MAX; n++)
            for (int off = 0; off < 4; off++)
                for (int in_place = 0; in_place < 2; in_place++) {
                    float x32[MAX + PAD], y32[MAX + PAD + 4];
                    double x64[MAX + PAD], y64[MAX + PAD + 4];
                    for (int i = 0; i < MAX + PAD + 4; i++) {
                        y32[i] = guard32;
                        y64[i] = guard64;
                    }
                    for (int i = 0; i < n; i++) {
                        x32[i] = (float)(0.37 * (i - 30) + 0.01 * off);
                        x64[i] = 0.37 * (i - 30) + 0.01 * off;
                    }
                    float *out32 = y32 + off;
                    double *out64 = y64 + off;
                    if (in_place) {
                        memcpy(out32, x32, (size_t)n * sizeof *x32);
                        memcpy(out64, x64, (size_t)n * sizeof *x64);
                    }
                    array32[f](n, in_place ? out32 : x32, out32);
                    array64[f](n, in_place ? out64 : x64, out64);
                    for (int i = 0; i < MAX + PAD + 4; i++) {
                        int inside = i >= off && i < off + n;
                        float want32 = inside ? scalar32[f](x32[i - off]) : guard32;
                        double want64 = inside ? scalar64[f](x64[i - off]) : guard64;
                        ck_assert_msg(memcmp(&y32[i], &want32, sizeof want32) == 0 &&
                                          memcmp(&y64[i], &want64, sizeof want64) == 0,
                                      "%s n=%d offset=%d in_place=%d: element %d", func_name[f],
                                      n, off, in_place, i - off);
                    }
                }
}
END_TEST

/* f(x + b) equals the add rounded to the type, then f; y may be x or b. */
START_TEST(bias_variants_equal_add_then_activation)
{
    enum { N = 45 };
    float x32[N], b32[N], y32[N], alias32[N];
    double x64[N], b64[N], y64[N], alias64[N];
    for (int i = 0; i < N; i++) {
        x64[i] = sin(1.7 * i) * 6;
        b64[i] = cos(0.9 * i) * 3 + 1e-9;
        x32[i] = (float)x64[i];
        b32[i] = (float)b64[i];
    }
    for (int which = 0; which < 2; which++) {
        int tanh_ = which == 0;
        (tanh_ ? tg_vtanh_bias_f32 : tg_vsigmoid_bias_f32)(N, x32, b32, y32);
        (tanh_ ? tg_vtanh_bias_f64 : tg_vsigmoid_bias_f64)(N, x64, b64, y64);
        for (int i = 0; i < N; i++) {
            float z32 = x32[i] + b32[i];
            double z64 = x64[i] + b64[i];
            float w32 = tanh_ ? tg_math_tanh_f32(z32) : tg_math_sigmoid_f32(z32);
            double w64 = tanh_ ? tg_math_tanh_f64(z64) : tg_math_sigmoid_f64(z64);
            ck_assert(memcmp(&y32[i], &w32, sizeof w32) == 0);
            ck_assert(memcmp(&y64[i], &w64, sizeof w64) == 0);
        }
        /* In place over the bias, then over x. */
        memcpy(alias32, b32, sizeof b32);
        memcpy(alias64, b64, sizeof b64);
        (tanh_ ? tg_vtanh_bias_f32 : tg_vsigmoid_bias_f32)(N, x32, alias32, alias32);
        (tanh_ ? tg_vtanh_bias_f64 : tg_vsigmoid_bias_f64)(N, x64, alias64, alias64);
        ck_assert(memcmp(alias32, y32, sizeof y32) == 0 && memcmp(alias64, y64, sizeof y64) == 0);
        memcpy(alias32, x32, sizeof x32);
        memcpy(alias64, x64, sizeof x64);
        (tanh_ ? tg_vtanh_bias_f32 : tg_vsigmoid_bias_f32)(N, alias32, b32, alias32);
        (tanh_ ? tg_vtanh_bias_f64 : tg_vsigmoid_bias_f64)(N, alias64, b64, alias64);
        ck_assert(memcmp(alias32, y32, sizeof y32) == 0 && memcmp(alias64, y64, sizeof y64) == 0);
    }
}
END_TEST

/* ---- the elementwise ops: layout never changes a result ------------------------------------ */

typedef tg_tensor *(*op_fn)(tg_tape *tape, tg_tensor *a, tg_tensor *b);

static tg_tensor *op_tanh(tg_tape *t, tg_tensor *a, tg_tensor *b) { (void)b; return tg_tanh(t, a); }
static tg_tensor *op_sigmoid(tg_tape *t, tg_tensor *a, tg_tensor *b)
{
    (void)b;
    return tg_sigmoid(t, a);
}
static tg_tensor *op_exp(tg_tape *t, tg_tensor *a, tg_tensor *b) { (void)b; return tg_exp(t, a); }
static tg_tensor *op_relu(tg_tape *t, tg_tensor *a, tg_tensor *b) { (void)b; return tg_relu(t, a); }
static tg_tensor *op_affine(tg_tape *t, tg_tensor *a, tg_tensor *b)
{
    (void)b;
    return tg_affine(t, a, -0.3, 0.7);
}
static tg_tensor *op_add(tg_tape *t, tg_tensor *a, tg_tensor *b) { return tg_add(t, a, b); }
static tg_tensor *op_sub(tg_tape *t, tg_tensor *a, tg_tensor *b) { return tg_sub(t, a, b); }
static tg_tensor *op_mul(tg_tape *t, tg_tensor *a, tg_tensor *b) { return tg_mul(t, a, b); }
static tg_tensor *op_div(tg_tape *t, tg_tensor *a, tg_tensor *b) { return tg_div(t, a, b); }

static const struct {
    const char *name;
    op_fn apply;
} layout_ops[] = {{"tanh", op_tanh}, {"sigmoid", op_sigmoid}, {"exp", op_exp},
                  {"relu", op_relu}, {"affine", op_affine}, {"add", op_add},
                  {"sub", op_sub},   {"mul", op_mul},         {"div", op_div}};

/* A (R, C) tensor holding `values` (C order) in memory laid out as (C, R),
 * seen through a transposed view: same values, strides (1, R). It requires
 * a gradient; *storage receives the tensor to free and read the gradient of. */
static tg_tensor *transposed_copy(const tg_tensor *values, tg_tensor **storage, tg_tensor *view)
{
    int64_t R = values->shape[0], C = values->shape[1];
    *storage = tg_tensor_zeros(values->dtype, TG_DIMS(C, R));
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            tg_tensor_set(*storage, (int64_t[]){c, r}, tg_tensor_get(values, (int64_t[]){r, c}));
    tg_tensor_requires_grad(*storage, true);
    ck_assert_int_eq(tg_view_transpose(view, *storage, 0, 1), TG_OK);
    return view;
}

/* out and the gradients of both inputs, for contiguous inputs and for the
 * same values through transposed views: bit for bit the same. Values
 * include +-1000 and tiny ones. */
START_TEST(contiguous_and_strided_inputs_give_identical_bits)
{
    tg_dtype dtype = _i ? TG_F64 : TG_F32;
    enum { R = 5, C = 37 };
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *a = tu_param(&rng, dtype, "a", TG_DIMS(R, C));
    tg_tensor *b = tu_param_uniform(&rng, dtype, "b", 0.5, 2, TG_DIMS(R, C));
    tg_tensor_set(a, (int64_t[]){0, 0}, 1000);
    tg_tensor_set(a, (int64_t[]){1, 3}, -1000);
    tg_tensor_set(a, (int64_t[]){2, 5}, 1e-30);
    tg_tensor_set(a, (int64_t[]){3, 36}, 30);
    for (int64_t i = 0; i < R * C; i++) /* spread a over [-12, 12] */
        if (fabs(tg_tensor_get_flat(a, i)) < 10)
            tg_tensor_set_flat(a, i, 4 * tg_tensor_get_flat(a, i));
    for (size_t k = 0; k < sizeof layout_ops / sizeof layout_ops[0]; k++) {
        tg_tensor *at_store, *bt_store, at_view, bt_view;
        tg_tensor *at = transposed_copy(a, &at_store, &at_view);
        tg_tensor *bt = transposed_copy(b, &bt_store, &bt_view);
        tg_tensor_zero_grad(a);
        tg_tensor_zero_grad(b);

        tg_tape *tape = tg_tape_new();
        tg_tensor *out = layout_ops[k].apply(tape, a, b);
        tg_tensor *out_t = layout_ops[k].apply(tape, at, bt);
        ck_assert_msg(out && out_t, "%s: %s", layout_ops[k].name, tg_tape_error(tape));
        ck_assert_msg(tu_bitwise_equal(out, out_t), "%s %s: forward differs by layout",
                      layout_ops[k].name, tg_dtype_name(dtype));
        tg_tensor *loss = tg_add(tape, tu_weighted_sum(tape, out), tu_weighted_sum(tape, out_t));
        ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
        tg_tensor ga, gb;
        tg_view_transpose(&ga, at_store->grad, 0, 1);
        tg_view_transpose(&gb, bt_store->grad, 0, 1);
        ck_assert_msg(tu_bitwise_equal(a->grad, &ga), "%s %s: gradient of a differs by layout",
                      layout_ops[k].name, tg_dtype_name(dtype));
        ck_assert_msg(tu_bitwise_equal(b->grad, &gb), "%s %s: gradient of b differs by layout",
                      layout_ops[k].name, tg_dtype_name(dtype));
        tg_tape_free(tape);
        tg_tensor_free(at_store);
        tg_tensor_free(bt_store);
    }
    tg_tensor_free(a);
    tg_tensor_free(b);
}
END_TEST

/* The ops compute what vmath computes, and stay finite at +-1000. */
START_TEST(ops_use_the_vmath_results)
{
    tg_dtype dtype = _i ? TG_F64 : TG_F32;
    const double xs[6] = {-1000, -3.5, -1e-3, 0.25, 7, 1000};
    tg_tensor *x = tg_tensor_from_doubles(dtype, TG_DIMS(6), xs);
    tg_tape *tape = tg_tape_new();
    tg_tensor *t = tg_tanh(tape, x), *s = tg_sigmoid(tape, x), *e = tg_exp(tape, x);
    for (int i = 0; i < 6; i++) {
        double want_t = dtype == TG_F32 ? tg_math_tanh_f32((float)xs[i]) : tg_math_tanh_f64(xs[i]);
        double want_s =
            dtype == TG_F32 ? tg_math_sigmoid_f32((float)xs[i]) : tg_math_sigmoid_f64(xs[i]);
        double want_e = dtype == TG_F32 ? tg_math_exp_f32((float)xs[i]) : tg_math_exp_f64(xs[i]);
        ck_assert(tg_tensor_get_flat(t, i) == want_t);
        ck_assert(tg_tensor_get_flat(s, i) == want_s);
        ck_assert(tg_tensor_get_flat(e, i) == want_e);
        ck_assert(isfinite(tg_tensor_get_flat(t, i)) && isfinite(tg_tensor_get_flat(s, i)));
    }
    ck_assert(tg_tensor_get_flat(s, 0) == 0 && tg_tensor_get_flat(s, 5) == 1);
    ck_assert(tg_tensor_get_flat(t, 0) == -1 && tg_tensor_get_flat(t, 5) == 1);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

Suite *suite_vmath(void)
{
    Suite *s = suite_create("vmath");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, f32_is_within_4_ulp_everywhere, 0, N_FUNCS);
    tcase_add_loop_test(tc, f64_relative_error_is_below_2e_15_everywhere, 0, N_FUNCS);
    tcase_add_test(tc, special_values_are_exact_and_nan_propagates);
    tcase_add_test(tc, every_length_and_offset_matches_the_scalar_in_place_or_not);
    tcase_add_test(tc, bias_variants_equal_add_then_activation);
    tcase_add_loop_test(tc, contiguous_and_strided_inputs_give_identical_bits, 0, 2);
    tcase_add_loop_test(tc, ops_use_the_vmath_results, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
