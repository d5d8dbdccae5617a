/* The tape: recording, backward, accumulation, views, modes, errors. */
#include <math.h>

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

Suite *suite_tape(void)
{
    Suite *s = suite_create("tape");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, gradient_of_small_expression_matches_finite_differences);
    tcase_add_test(tc, parameter_reused_over_50_steps_accumulates_the_sum);
    tcase_add_test(tc, select_views_share_one_gradient_buffer);
    tcase_add_test(tc, shape_errors_name_the_op_and_shapes_and_are_sticky);
    tcase_add_test(tc, memory_limit_is_an_error_not_a_crash);
    suite_add_tcase(s, tc);
    return s;
}
