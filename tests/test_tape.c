/* The tape: recording, backward, accumulation, views, modes, errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/iter.h"
#include "util.h"

/* loss = sum(tanh(W @ x + b) * R) */
typedef struct {
    tg_tensor *x;
} affine_ctx;

static tg_tensor *affine_tanh_loss(tg_tape *tape, tg_tensor *const *p, void *ctx)
{
    affine_ctx *c = ctx;
    return tu_weighted_sum(tape, tg_tanh(tape, tg_add(tape, tg_matmul(tape, p[0], c->x), p[1])));
}

START_TEST(gradient_of_small_expression_matches_finite_differences)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(4, 3));
    tg_tensor *b = tu_param(&rng, TG_F64, "b", TG_DIMS(4, 1));
    affine_ctx c = {tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 5))};
    tg_tensor *params[] = {W, b};
    tu_assert_gradcheck(affine_tanh_loss, &c, 2, params, 1e-7);
    tg_tensor_free(W);
    tg_tensor_free(b);
    tg_tensor_free(c.x);
}
END_TEST

/* A parameter used at each of 50 unrolled steps collects the sum:
 * h_t = w * h_{t-1} + 1 elementwise, loss = sum(h_50). */
START_TEST(parameter_reused_over_50_steps_accumulates_the_sum)
{
    double w0 = 0.9;
    tg_tensor *w = tg_tensor_full(TG_F64, TG_DIMS(1), w0);
    tg_tensor_requires_grad(w, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *h = tg_tape_zeros(tape, TG_F64, TG_DIMS(1));
    tg_tensor *one = tg_tape_tensor(tape, TG_F64, TG_DIMS(1));
    tg_tensor_fill(one, 1.0);
    for (int t = 0; t < 50; t++)
        h = tg_add(tape, tg_mul(tape, w, h), one);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, h)), TG_OK);
    /* h_T = sum_{k<T} w^k, so dh_T/dw = sum_{k<T} k w^(k-1). */
    double expected = 0;
    for (int k = 1; k < 50; k++)
        expected += k * pow(w0, k - 1);
    ck_assert_double_eq_tol(tg_tensor_item(w->grad), expected, 1e-9 * expected);
    /* Gradients accumulate across backward passes until zeroed. */
    tg_tape_reset(tape);
    h = tg_tape_zeros(tape, TG_F64, TG_DIMS(1));
    one = tg_tape_tensor(tape, TG_F64, TG_DIMS(1));
    tg_tensor_fill(one, 1.0);
    for (int t = 0; t < 50; t++)
        h = tg_add(tape, tg_mul(tape, w, h), one);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, h)), TG_OK);
    ck_assert_double_eq_tol(tg_tensor_item(w->grad), 2 * expected, 2e-9 * expected);
    tg_tensor_zero_grad(w);
    ck_assert_double_eq(tg_tensor_item(w->grad), 0.0);
    tg_tape_free(tape);
    tg_tensor_free(w);
}
END_TEST

/* Reading x[:, :, t] at every step lands in x's one gradient buffer: the
 * tape's memory grows linearly in T, not quadratically. */
START_TEST(select_views_share_one_gradient_buffer)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    size_t bytes[2];
    int64_t Ts[2] = {100, 200};
    for (int k = 0; k < 2; k++) {
        int64_t T = Ts[k];
        tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(8, 4, T));
        tg_tape *tape = tg_tape_new();
        tg_tensor *acc = NULL;
        for (int64_t t = 0; t < T; t++) {
            tg_tensor *xt = tg_select(tape, x, 2, t);
            tg_tensor *y = tg_scale(tape, xt, (double)t);
            acc = acc ? tg_add(tape, acc, y) : y;
        }
        ck_assert_int_eq(tg_backward(tape, tg_sum(tape, acc)), TG_OK);
        for (int64_t t = 0; t < T; t++)
            ck_assert_double_eq(tg_tensor_get(x->grad, (int64_t[]){3, 2, t}), (double)t);
        bytes[k] = tg_tape_bytes_used(tape);
        tg_tape_free(tape);
        tg_tensor_free(x);
    }
    /* Doubling T at most a little more than doubles the memory. */
    ck_assert_msg(bytes[1] < 2.2 * bytes[0], "tape bytes %zu for T=100, %zu for T=200", bytes[0],
                  bytes[1]);
}
END_TEST

START_TEST(shape_errors_name_the_op_and_shapes_and_are_sticky)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_tensor_zeros(TG_F64, TG_DIMS(5, 3));
    tg_tensor *b = tg_tensor_zeros(TG_F64, TG_DIMS(4, 10));
    tg_tensor_requires_grad(a, true);
    ck_assert_ptr_null(tg_matmul(tape, a, b));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_SHAPE);
    ck_assert_str_eq(tg_tape_error(tape), "tg_matmul: inner dimensions differ: (5,3) @ (4,10)");
    /* Later ops return NULL at once, and keep the first message. */
    ck_assert_ptr_null(tg_tanh(tape, a));
    ck_assert_str_eq(tg_tape_error(tape), "tg_matmul: inner dimensions differ: (5,3) @ (4,10)");
    ck_assert_int_ne(tg_backward(tape, NULL), TG_OK);
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_tape_status(tape), TG_OK);
    ck_assert_ptr_nonnull(tg_tanh(tape, a));
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}
END_TEST

START_TEST(memory_limit_is_an_error_not_a_crash)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_set_memory_limit(tape, 1 << 20);
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(512, 512));
    ck_assert_ptr_null(tg_tanh(tape, x)); /* 2 MiB output does not fit */
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NOMEM);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST


/* ---- modes, seeds, truncation ---------------------------------------------- */

/* A copy of a parameter's value and gradient, to prove that a failed call
 * changed neither (bit for bit). */
typedef struct {
    tg_tensor *param, *value, *grad;
} snapshot;

static snapshot take_snapshot(tg_tensor *param)
{
    snapshot s = {param, tg_tensor_copy(param), tg_tensor_copy(param->grad)};
    ck_assert(s.value && s.grad);
    return s;
}

static void assert_unchanged(snapshot *s)
{
    ck_assert_msg(tu_bitwise_equal(s->param, s->value), "the value of %s changed",
                  s->param->name ? s->param->name : "a parameter");
    ck_assert_msg(tu_bitwise_equal(s->param->grad, s->grad), "the gradient of %s changed",
                  s->param->name ? s->param->name : "a parameter");
    tg_tensor_free(s->value);
    tg_tensor_free(s->grad);
}

/* A parameter whose gradient already holds something, so that any stray
 * accumulation shows. */
static tg_tensor *param_with_grad(tg_rng *rng, const char *name, int ndim, const int64_t *shape)
{
    tg_tensor *p = tu_param(rng, TG_F64, name, ndim, shape);
    tg_rng_fill_randn(rng, p->grad);
    return p;
}

START_TEST(no_grad_mode_records_nothing)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *W = param_with_grad(&rng, "W", TG_DIMS(4, 3));
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 2));
    tg_tape *tape = tg_tape_new();
    tg_tensor *with_grad = tg_tanh(tape, tg_matmul(tape, W, x));
    ck_assert_uint_eq(tg_tape_entry_count(tape), 2);
    ck_assert_ptr_nonnull(with_grad->grad_root);
    ck_assert(!tg_tape_no_grad(tape, true));
    snapshot s = take_snapshot(W);
    size_t before = tg_tape_entry_count(tape);
    tg_tensor *y = tg_tanh(tape, tg_matmul(tape, W, x));
    tg_tensor *loss = tg_sum(tape, tg_select(tape, y, 1, 0));
    ck_assert_ptr_nonnull(loss);
    ck_assert_uint_eq(tg_tape_entry_count(tape), before); /* nothing recorded */
    ck_assert_ptr_null(y->grad_root);
    ck_assert_ptr_null(loss->grad_root);
    ck_assert(tu_bitwise_equal(y, with_grad)); /* same values */
    ck_assert_int_eq(tg_backward(tape, loss), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "require a gradient"));
    assert_unchanged(&s);
    ck_assert(tg_tape_no_grad(tape, false));
    tg_tape_free(tape);
    tg_tensor_free(W);
    tg_tensor_free(x);
}
END_TEST

/* h_t = tanh(W @ h_{t-1} + x[:, :, t]) for t in [t0, t1) */
static tg_tensor *run_steps(tg_tape *tape, tg_tensor *W, tg_tensor *x, tg_tensor *h, int t0,
                            int t1)
{
    for (int t = t0; t < t1; t++)
        h = tg_tanh(tape, tg_add(tape, tg_matmul(tape, W, h), tg_select(tape, x, 2, t)));
    return h;
}

/* Truncated BPTT: the state carried out of the first chunk is detached, so
 * the second chunk's loss sends nothing into the first chunk (h0 gets no
 * gradient) and W's gradient equals that of the second chunk run alone from
 * a constant state. */
START_TEST(detach_truncates_backprop_through_time)
{
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(3, 3));
    tg_tensor *h0 = tu_param(&rng, TG_F64, "h0", TG_DIMS(3, 2));
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 2, 6));
    tg_tape *tape = tg_tape_new();

    /* without detach, the first chunk does get a gradient */
    tg_tensor *h = run_steps(tape, W, x, h0, 0, 3);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, run_steps(tape, W, x, h, 3, 6))), TG_OK);
    double h0_norm = 0;
    for (int64_t i = 0; i < 6; i++)
        h0_norm += fabs(tg_tensor_get_flat(h0->grad, i));
    ck_assert(h0_norm > 1e-3);
    tg_tensor_zero_grad(W);
    tg_tensor_zero_grad(h0);

    tg_tape_reset(tape);
    h = run_steps(tape, W, x, h0, 0, 3);
    tg_tensor *carry = tg_detach(tape, h);
    ck_assert_ptr_null(carry->grad_root);
    ck_assert_ptr_eq(carry->data, h->data);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, run_steps(tape, W, x, carry, 3, 6))), TG_OK);
    ck_assert_ptr_null(h->grad); /* nothing flowed into the first chunk */
    for (int64_t i = 0; i < 6; i++)
        ck_assert(tg_tensor_get_flat(h0->grad, i) == 0.0);
    tg_tensor *dW = tg_tensor_copy(W->grad);
    tg_tensor *state = tg_tensor_copy(h); /* persistent, no gradient */

    tg_tensor_zero_grad(W);
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, run_steps(tape, W, x, state, 3, 6))), TG_OK);
    ck_assert(tu_bitwise_equal(W->grad, dW));
    double dW_norm = 0;
    for (int64_t i = 0; i < 9; i++)
        dW_norm += fabs(tg_tensor_get_flat(dW, i));
    ck_assert(dW_norm > 1e-3);
    tg_tape_free(tape);
    tu_free_all((tg_tensor *[]){W, h0, x, dW, state}, 5);
}
END_TEST

/* backward from y with seed R equals backward of sum(y * R). */
START_TEST(backward_with_seed_equals_weighted_sum)
{
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(4, 3));
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 5));
    tg_tensor *R = tg_tensor_randn(&rng, TG_F64, TG_DIMS(4, 5));
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_tanh(tape, tg_matmul(tape, W, x));
    ck_assert_int_eq(tg_backward_with(tape, y, R), TG_OK);
    tg_tensor *seeded = tg_tensor_copy(W->grad);
    tg_tensor_zero_grad(W);
    tg_tape_reset(tape);
    y = tg_tanh(tape, tg_matmul(tape, W, x));
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, y, R))), TG_OK);
    ck_assert(tu_max_abs_diff(W->grad, seeded) <= 1e-15);
    double norm = 0;
    for (int64_t i = 0; i < 12; i++)
        norm += fabs(tg_tensor_get_flat(seeded, i));
    ck_assert(norm > 1e-3); /* not trivially zero */
    tg_tape_free(tape);
    tu_free_all((tg_tensor *[]){W, x, R, seeded}, 4);
}
END_TEST

/* ---- refusals: each leaves parameters and gradients as they were ----------- */

START_TEST(backward_refuses_bad_requests)
{
    tg_rng rng;
    tg_rng_seed(&rng, 6);
    tg_tensor *W = param_with_grad(&rng, "W", TG_DIMS(4, 3));
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 2));
    tg_tensor *bad_seed = tg_tensor_zeros(TG_F64, TG_DIMS(2, 4));
    tg_tape *tape = tg_tape_new();
    snapshot s = take_snapshot(W);

    tg_tensor *y = tg_matmul(tape, W, x);
    ck_assert_int_eq(tg_backward(tape, y), TG_ERR_SHAPE); /* (4,2) without a seed */
    ck_assert_str_eq(tg_tape_error(tape), "tg_backward: the output (4,2) is not a scalar; pass a "
                                          "seed gradient with tg_backward_with");
    assert_unchanged(&s);

    tg_tape_reset(tape);
    s = take_snapshot(W);
    y = tg_matmul(tape, W, x);
    ck_assert_int_eq(tg_backward_with(tape, y, bad_seed), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "seed (2,4) does not match the output (4,2)"));
    tg_tape_reset(tape);
    y = tg_matmul(tape, W, x);
    ck_assert_int_eq(tg_backward_with(tape, y, NULL), TG_ERR_ARG);
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, NULL), TG_ERR_ARG);
    ck_assert_int_eq(tg_backward(NULL, y), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tape is NULL"));
    tg_tape_reset(tape);
    ck_assert_int_eq(tg_backward(tape, W), TG_ERR_ARG); /* not an output of this tape */
    assert_unchanged(&s);

    /* twice on one tape: the second is refused and changes nothing */
    tg_tape_reset(tape);
    tg_tensor *loss = tg_sum(tape, tg_matmul(tape, W, x));
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    s = take_snapshot(W);
    ck_assert_int_eq(tg_backward(tape, loss), TG_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "backward already ran"));
    assert_unchanged(&s);
    tg_tape_free(tape);
    tu_free_all((tg_tensor *[]){W, x, bad_seed}, 3);
}
END_TEST

START_TEST(null_inputs_and_dtype_mismatch_are_errors)
{
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *W = param_with_grad(&rng, "W", TG_DIMS(2, 2));
    tg_tensor *x32 = tg_tensor_ones(TG_F32, TG_DIMS(2, 2));
    tg_tape *tape = tg_tape_new();
    snapshot s = take_snapshot(W);
    ck_assert_ptr_null(tg_tanh(NULL, W));
    ck_assert_int_eq(tg_last_status(), TG_ERR_ARG);
    ck_assert_str_eq(tg_last_error(), "tg_tanh: tape is NULL");
    ck_assert_ptr_null(tg_select(NULL, W, 0, 0));
    ck_assert_ptr_null(tg_add(tape, W, NULL));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
    ck_assert_str_eq(tg_tape_error(tape), "tg_add: input 2 is NULL");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_add(tape, W, x32));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_DTYPE);
    ck_assert_str_eq(tg_tape_error(tape), "tg_add: dtypes differ: input 1 is f64, input 2 is f32");
    ck_assert_int_ne(tg_backward(tape, NULL), TG_OK);
    assert_unchanged(&s);
    tg_tape_free(tape);
    tg_tensor_free(W);
    tg_tensor_free(x32);
}
END_TEST

START_TEST(overflowing_tape_sizes_are_errors)
{
    const int64_t big = (int64_t)1 << 40;
    tg_tape *tape = tg_tape_new();
    ck_assert_ptr_null(tg_tape_tensor(tape, TG_F64, TG_DIMS(big, big)));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_OVERFLOW);
    ck_assert_str_eq(tg_tape_error(tape), "tg_tape_tensor: the shape's element count overflows");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_tape_zeros(tape, TG_F32, TG_DIMS(0, big, big)));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_OVERFLOW);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_tape_alloc(tape, SIZE_MAX - 8));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_OVERFLOW);
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "overflows"));
    /* through an op: broadcasting to an impossible size */
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tensor *p = param_with_grad(&rng, "p", TG_DIMS(1, 1));
    snapshot s = take_snapshot(p);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_expand(tape, p, TG_DIMS(big, big)));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_OVERFLOW);
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "tg_expand"));
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_tanh(tape, tg_expand(tape, p, TG_DIMS(1 << 20, 1 << 20, 1 << 20))));
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_OVERFLOW);
    assert_unchanged(&s);
    tg_tape_free(tape);
    tg_tensor_free(p);
}
END_TEST

/* The forward fits under the limit, the backward does not: the half-done
 * backward leaves the parameter's gradient untouched. */
START_TEST(memory_limit_hit_in_backward_changes_nothing)
{
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_tensor *x = param_with_grad(&rng, "x", TG_DIMS(160, 240)); /* 300 KiB */
    tg_tape *tape = tg_tape_new();
    tg_tape_set_memory_limit(tape, 1 << 20);
    snapshot s = take_snapshot(x);
    tg_tensor *before = tg_tensor_copy(x->grad);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, tg_tanh(tape, x), x));
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tg_backward(tape, loss), TG_ERR_NOMEM);
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "memory limit"));
    assert_unchanged(&s);
    /* without the limit the same step runs and does change the gradient */
    tg_tape_set_memory_limit(tape, 0);
    tg_tape_reset(tape);
    loss = tg_sum(tape, tg_mul(tape, tg_tanh(tape, x), x));
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    ck_assert(!tu_bitwise_equal(x->grad, before));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(before);
}
END_TEST

/* ---- anomaly mode, profiling, arena reuse ------------------------------------ */

START_TEST(anomaly_mode_names_the_first_op_producing_nan)
{
    tg_rng rng;
    tg_rng_seed(&rng, 10);
    tg_tensor *x = param_with_grad(&rng, "x", TG_DIMS(2, 3)); /* has negative entries */
    tg_tape *tape = tg_tape_new();
    /* off: NaN flows silently */
    tg_tensor *y = tg_exp(tape, tg_log(tape, tg_scale(tape, x, 2.0)));
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(tg_tape_status(tape), TG_OK);
    tg_tape_reset(tape);
    tg_tape_set_anomaly(tape, true);
    snapshot s = take_snapshot(x);
    tg_tensor *a = tg_scale(tape, x, 2.0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(tg_log(tape, a));
    ck_assert_ptr_null(tg_exp(tape, a)); /* later ops do not run */
    ck_assert_int_eq(tg_tape_status(tape), TG_ERR_NONFINITE);
    ck_assert_str_eq(tg_tape_error(tape),
                     "anomaly: tg_log produced a non-finite value in its output 1 (2,3)");
    assert_unchanged(&s);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* log of a subnormal is finite (-713), its derivative 1/x is not. */
START_TEST(anomaly_mode_catches_a_nonfinite_gradient)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_tensor *x = param_with_grad(&rng, "x", TG_DIMS(3));
    tg_tensor_set_flat(x, 1, 1e-310);
    tg_tensor_set_flat(x, 0, 2.0);
    tg_tensor_set_flat(x, 2, 0.5);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, true);
    snapshot s = take_snapshot(x);
    tg_tensor *loss = tg_sum(tape, tg_scale(tape, tg_log(tape, x), 3.0));
    ck_assert_ptr_nonnull(loss);
    ck_assert(isfinite(tg_tensor_item(loss)));
    ck_assert_int_eq(tg_backward(tape, loss), TG_ERR_NONFINITE);
    ck_assert_str_eq(tg_tape_error(tape), "anomaly: the backward of tg_log produced a "
                                          "non-finite gradient for input 1 (3,)");
    assert_unchanged(&s);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

START_TEST(profile_counts_ops_by_kind)
{
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(4, 4));
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(4, 2, 3));
    tg_tape *tape = tg_tape_new();
    tg_tape_set_profiling(tape, true);
    tg_tensor *h = tg_tape_zeros(tape, TG_F64, TG_DIMS(4, 2));
    h = run_steps(tape, W, x, h, 0, 3); /* 3 x (select, matmul, add, tanh) */
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, h)), TG_OK);
    tg_op_profile rows[8];
    int n = tg_tape_profile(tape, rows, 8);
    ck_assert_int_eq(n, 4); /* the selects read x, which needs no gradient */
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        int64_t want = strcmp(rows[i].op, "tg_sum") == 0 ? 1 : 3;
        ck_assert_msg(strcmp(rows[i].op, "tg_matmul") == 0 || strcmp(rows[i].op, "tg_add") == 0 ||
                          strcmp(rows[i].op, "tg_tanh") == 0 || strcmp(rows[i].op, "tg_sum") == 0,
                      "unexpected op %s", rows[i].op);
        ck_assert_int_eq(rows[i].count, want);
        total += rows[i].count;
    }
    ck_assert_int_eq(total, (int64_t)tg_tape_entry_count(tape));
    ck_assert_int_eq(tg_tape_profile(tape, rows, 2), 2); /* room for two kinds only */
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    tg_tape_print_profile(tape, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "tg_matmul"));
    ck_assert_ptr_nonnull(strstr(text, "tg_tanh"));
    free(text);
    tg_tape_free(tape);
    tg_tensor_free(W);
    tg_tensor_free(x);
}
END_TEST

/* A step after tg_tape_reset reuses the arena: identical steps use the same
 * bytes and reserve nothing new, also when the first step needed several
 * chunks (reset keeps them all). */
START_TEST(reset_keeps_the_arena_for_the_next_step)
{
    tg_rng rng;
    tg_rng_seed(&rng, 13);
    int64_t sizes[2] = {8, 400}, batch[2] = {2, 64}; /* small: one chunk; large: several */
    for (int k = 0; k < 2; k++) {
        int64_t n = sizes[k], m = batch[k];
        tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(n, n));
        tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(n, m, 4));
        tg_tape *tape = tg_tape_new();
        size_t used = 0, reserved = 0;
        for (int step = 0; step < 4; step++) {
            tg_tensor *h = tg_tape_zeros(tape, TG_F64, TG_DIMS(n, m));
            h = run_steps(tape, W, x, h, 0, 4);
            ck_assert_int_eq(tg_backward(tape, tg_sum(tape, h)), TG_OK);
            if (step == 0) {
                used = tg_tape_bytes_used(tape);
                ck_assert_uint_gt(used, 0);
            } else {
                ck_assert_uint_eq(tg_tape_bytes_used(tape), used);
                ck_assert_uint_eq(tg_tape_bytes_reserved(tape), reserved);
            }
            tg_tape_reset(tape);
            ck_assert_uint_eq(tg_tape_bytes_used(tape), 0);
            ck_assert_uint_eq(tg_tape_entry_count(tape), 0);
            if (step == 0)
                reserved = tg_tape_bytes_reserved(tape);
            ck_assert_uint_ge(tg_tape_bytes_reserved(tape), used);
        }
        if (k == 1)
            ck_assert_uint_gt(used, 1 << 20); /* more than the first chunk */
        tg_tape_free(tape);
        tg_tensor_free(W);
        tg_tensor_free(x);
    }
}
END_TEST

/* A view of W made while W required a gradient, used after
 * tg_tensor_requires_grad(W, false): it sends W nothing (before, backward
 * hung an arena gradient on W, freed with the tape, and W's later
 * zero_grad and free used freed memory). */
START_TEST(a_view_outliving_its_roots_gradient_sends_it_nothing)
{
    tg_rng rng;
    tg_rng_seed(&rng, 21);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(3, 3));
    tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(3, 2));
    tg_tensor Wt;
    ck_assert_int_eq(tg_view_transpose(&Wt, W, 0, 1), TG_OK);
    ck_assert_int_eq(tg_tensor_requires_grad(W, false), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, tg_matmul(tape, &Wt, x));
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    tg_tape_free(tape);
    ck_assert_ptr_null(W->grad);
    /* x's gradient is the column sums of W^T, i.e. W's row sums */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            double row = 0;
            for (int k = 0; k < 3; k++)
                row += tg_tensor_get(W, (int64_t[]){i, k});
            ck_assert_double_eq_tol(tg_tensor_get(x->grad, (int64_t[]){i, j}), row, 1e-12);
        }
    tg_tensor_zero_grad(W);
    tg_tensor_free(W);
    tg_tensor_free(x);
}
END_TEST

/* During backward a parameter keeps its own gradient tensor (what is
 * collected lies on the tape until the pass succeeds), so another tape's
 * backward reading the same parameter never sees a buffer of this one. */
static tg_tensor *watched;
static tg_tensor *grad_seen_in_backward;

static void watch_backward(tg_tape *tape, const tg_entry *e)
{
    grad_seen_in_backward = watched->grad;
    tg_tensor *g = tg_grad_in(tape, e->in[0]);
    if (g)
        tg_accumulate(g, tg_grad_out(e->out[0]), 1.0);
}

static tg_tensor *watch(tg_tape *tape, tg_tensor *x)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "watch", 1, x))
        return NULL;
    tg_tensor *out = tg_op_output(&op, x->dtype, x->ndim, x->shape);
    if (!out)
        return NULL;
    tg_tensor_copy_into(out, x);
    tg_op_record(&op, watch_backward, out);
    return tg_op_finish(&op, out);
}

START_TEST(a_parameter_keeps_its_gradient_tensor_during_backward)
{
    tg_tensor *W = tg_tensor_full(TG_F64, TG_DIMS(2, 2), 0.5);
    ck_assert_int_eq(tg_tensor_requires_grad(W, true), TG_OK);
    tg_tensor *own = W->grad;
    tg_tensor_fill(own, 1.0);
    watched = W;
    tg_tape *tape = tg_tape_new();
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, watch(tape, W), W))), TG_OK);
    ck_assert_ptr_eq(grad_seen_in_backward, own);
    ck_assert_ptr_eq(W->grad, own);
    for (int64_t i = 0; i < 4; i++) /* 1 + d(W*W)/dW = 1 + 2 * 0.5 */
        ck_assert_double_eq(tg_tensor_get_flat(W->grad, i), 2.0);
    tg_tape_free(tape);
    tg_tensor_free(W);
}
END_TEST

Suite *suite_tape(void)
{
    Suite *s = suite_create("tape");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, gradient_of_small_expression_matches_finite_differences);
    tcase_add_test(tc, parameter_reused_over_50_steps_accumulates_the_sum);
    tcase_add_test(tc, select_views_share_one_gradient_buffer);
    tcase_add_test(tc, shape_errors_name_the_op_and_shapes_and_are_sticky);
    tcase_add_test(tc, memory_limit_is_an_error_not_a_crash);
    tcase_add_test(tc, no_grad_mode_records_nothing);
    tcase_add_test(tc, detach_truncates_backprop_through_time);
    tcase_add_test(tc, backward_with_seed_equals_weighted_sum);
    tcase_add_test(tc, backward_refuses_bad_requests);
    tcase_add_test(tc, null_inputs_and_dtype_mismatch_are_errors);
    tcase_add_test(tc, overflowing_tape_sizes_are_errors);
    tcase_add_test(tc, memory_limit_hit_in_backward_changes_nothing);
    tcase_add_test(tc, anomaly_mode_names_the_first_op_producing_nan);
    tcase_add_test(tc, anomaly_mode_catches_a_nonfinite_gradient);
    tcase_add_test(tc, profile_counts_ops_by_kind);
    tcase_add_test(tc, reset_keeps_the_arena_for_the_next_step);
    tcase_add_test(tc, a_view_outliving_its_roots_gradient_sends_it_nothing);
    tcase_add_test(tc, a_parameter_keeps_its_gradient_tensor_during_backward);
    suite_add_tcase(s, tc);
    return s;
}
