/* What sequence models ask of the ops, beyond the op table's generic checks
 * (tests/test_ops.c): cross-entropy's options and layer norm against
 * PyTorch's numbers, dropout's masks and modes, and the exact rules at
 * ties, bounds and NaN of maximum, max_axis, argmax, clamp, abs, pow,
 * where, masked_fill and flip.
 *
 * The PyTorch numbers come from torch 1.13 in f64:
 *     x = [[0.3, -1.2, 2.0, 0.5], [1.5, 0.1, -0.4, 0.9], [-2.0, 0.7, 0.2, 1.1]]
 *     F.cross_entropy(x, [1, -100, 3], weight=[0.5, 2, 1, 0.25], label_smoothing=0.2)
 *     F.cross_entropy(x, [2, 0, 3], reduction='sum', label_smoothing=0.3)
 *     nn.LayerNorm(5, eps=1e-3) with the weight, bias, input and R below, loss sum(y * R)
 * and their .backward() gradients. */
#include <math.h>
#include <string.h>

#include "util.h"

/* Every element of t within tol of want[i] (a NaN where want holds NaN). */
static void assert_values(const char *what, const tg_tensor *t, const double *want, double tol)
{
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        ck_assert_msg(isnan(want[i]) ? isnan(tg_tensor_get_flat(t, i))
                                     : fabs(tg_tensor_get_flat(t, i) - want[i]) <= tol,
                      "%s[%lld] = %.17g, PyTorch %.17g", what, (long long)i,
                      tg_tensor_get_flat(t, i), want[i]);
}

/* ---- cross-entropy's options ------------------------------------------------------- */

static const double ce_logits[12] = {0.3, -1.2, 2.0, 0.5, 1.5, 0.1, -0.4, 0.9, -2.0, 0.7, 0.2, 1.1};

/* _i: 0 weights + ignore_index + smoothing, mean; 1 smoothing, sum. Both
 * with the logits as (N, C) along axis 1, then as a transposed (C, N) view
 * along axis 0, which must give the same bits. */
START_TEST(cross_entropy_options_match_pytorch)
{
    static const double loss_a = 2.9400985483605533, grad_a[12] = {
        0.08921678178489997, -0.7331693767463141, 0.5269673854133835, 0.11698520954803052,
        0, 0, 0, 0, -0.007454797672639418, 0.009960518622061666, 0.010776055918147186,
        -0.013281776867569471};
    static const double loss_c = 2.8892798219436733, grad_c[12] = {
        0.051286858190783186, -0.0468215931072485, -0.08371238199713957, 0.07924711691360484,
        -0.2608551606165559, 0.05178655641820222, 0.0018999337070252054, 0.2071686704913283,
        -0.0537697929379063, 0.2408997855474548, 0.11660290533117719, -0.30373289794072594};
    static const double weights[4] = {0.5, 2.0, 1.0, 0.25};
    tg_cross_entropy_options o = tg_cross_entropy_defaults();
    const int32_t targets[2][3] = {{1, -100, 3}, {2, 0, 3}};
    if (_i == 0) {
        o.class_weights = weights;
        o.label_smoothing = 0.2;
    } else {
        o.reduction = TG_REDUCE_SUM;
        o.label_smoothing = 0.3;
    }
    double first = 0;
    for (int layout = 0; layout < 2; layout++) {
        tg_tensor *x = tg_tensor_from_doubles(TG_F64, TG_DIMS(3, 4), ce_logits);
        tg_tensor_requires_grad(x, true);
        tg_tape *tape = tg_tape_new();
        tg_tensor *loss = layout ? tg_cross_entropy_with(tape, tg_transpose(tape, x, 0, 1), 0,
                                                          targets[_i], 3, &o)
                                 : tg_cross_entropy_with(tape, x, 1, targets[_i], 3, &o);
        ck_assert_msg(loss != NULL, "%s", tg_tape_error(tape));
        ck_assert_double_eq_tol(tg_tensor_item(loss), (_i ? loss_c : loss_a), 1e-14);
        if (layout)
            ck_assert(tg_tensor_item(loss) == first);
        first = tg_tensor_item(loss);
        ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
        assert_values("gradient", x->grad, _i ? grad_c : grad_a, 1e-15);
        tg_tape_free(tape);
        tg_tensor_free(x);
    }
}
END_TEST

/* PyTorch returns 0/0 = NaN when every target is ignored; we return 0 and
 * zero gradients, so a batch of padding cannot poison a run. */
START_TEST(cross_entropy_with_nothing_counted_is_zero)
{
    tg_tensor *x = tg_tensor_from_doubles(TG_F64, TG_DIMS(3, 4), ce_logits);
    tg_tensor_requires_grad(x, true);
    tg_tape *tape = tg_tape_new();
    tg_cross_entropy_options o = tg_cross_entropy_defaults();
    o.ignore_index = 7;
    o.class_weights = (const double[]){1, 0, 1, 1}; /* class 1 weighs nothing */
    tg_tensor *all_ignored = tg_cross_entropy_with(tape, x, 1, (const int32_t[]){7, 7, 7}, 3, &o);
    tg_tensor *zero_weight = tg_cross_entropy_with(tape, x, 1, (const int32_t[]){1, 7, 1}, 3, &o);
    ck_assert_msg(all_ignored && zero_weight, "%s", tg_tape_error(tape));
    ck_assert(tg_tensor_item(all_ignored) == 0.0);
    ck_assert(tg_tensor_item(zero_weight) == 0.0);
    ck_assert_int_eq(tg_backward(tape, tg_add(tape, all_ignored, zero_weight)), TG_OK);
    for (int i = 0; i < 12; i++)
        ck_assert(tg_tensor_get_flat(x->grad, i) == 0.0);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* A tagger's loss over padded (n_y, m, T_x) logits is one call, and equals
 * the plain loss with the padded targets ignored, bit for bit. */
START_TEST(sequence_cross_entropy_is_ignore_index_over_padding)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = tu_param(&rng, TG_F64, "logits", TG_DIMS(4, 3, 5));
    const int32_t lengths[3] = {5, 2, 3};
    int32_t targets[15], ignored[15];
    for (int j = 0; j < 3; j++)
        for (int t = 0; t < 5; t++) {
            targets[j * 5 + t] = t < lengths[j] ? (j + 2 * t) % 4 : 1000 + t; /* garbage */
            ignored[j * 5 + t] = t < lengths[j] ? targets[j * 5 + t] : -100;
        }
    tg_tensor *grads[2], *losses[2];
    for (int k = 0; k < 2; k++) {
        tg_tape *tape = tg_tape_new();
        tg_tensor *loss = k ? tg_cross_entropy_with(tape, x, 0, ignored, 15, NULL)
                            : tg_sequence_cross_entropy(tape, x, targets, lengths, NULL);
        ck_assert_msg(loss != NULL, "%s", tg_tape_error(tape));
        ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
        losses[k] = tg_tensor_copy(loss);
        grads[k] = tg_tensor_copy(x->grad);
        tg_tensor_zero_grad(x);
        tg_tape_free(tape);
    }
    ck_assert(tu_bitwise_equal(losses[0], losses[1]));
    ck_assert(tu_bitwise_equal(grads[0], grads[1]));
    for (int c = 0; c < 4; c++) /* no gradient at padded positions */
        ck_assert(tg_tensor_get(grads[0], (int64_t[]){c, 1, 3}) == 0.0);
    tg_tensor *all[] = {x, grads[0], grads[1], losses[0], losses[1]};
    tu_free_all(all, 5);
}
END_TEST

/* ---- layer norm ------------------------------------------------------------------------ */

/* Our layout: features along axis 0, the 3 positions along axis 1; gain and
 * bias as (5, 1) columns. */
START_TEST(layer_norm_matches_pytorch)
{
    static const double x_rows[15] = {0.3, -1.2, 2.0, 0.5, 0.0, 1.5, 0.1, -0.4,
                                      0.9, 3.0, -2.0, 0.7, 0.2, 1.1, -0.3};
    static const double r_rows[15] = {1.0, -2.0, 0.5, 0.3, 1.1, 0.7, 0.2, -1.0,
                                      2.0, -0.5, 0.4, 0.9, 1.3, -0.6, 0.25};
    static const double y[15] = {
        0.08052461229290307, -0.7400647328696822, -3.571865134792279, 0.46291773404580816,
        0.2507150373491596, 0.5047211783328112, -0.3878577959022773, 2.0946003051357995,
        0.04822955812519592, 1.8355798884982768, -1.6986108138087006, 0.35230521095221967,
        -0.7821018676188269, 1.8131870185706904, 0.32199315657151};
    static const double gx[15] = {
        0.9080948914208903, -1.1448724668289252, -0.9199581467433243, 0.3865788744810755,
        0.7701568476702838, -0.10472177273618133, -1.2396971848637477, 0.13765488203283716,
        1.5649640899702548, -0.3582000144031625, 0.14427960343751828, 1.1382190421972247,
        -1.8649722592472866, 0.026991163592536727, 0.5554824500200066};
    static const double gw[5] = {-0.45561488839760944, 3.439265192831813, 2.328632650218207,
                                 -0.7950518497855199, -1.2331313925277316};
    static const double gb[5] = {2.1, -0.9, 0.8, 1.6999999999999997, 0.8500000000000001};
    tg_tensor *rows = tg_tensor_from_doubles(TG_F64, TG_DIMS(3, 5), x_rows);
    tg_tensor *R = tg_tensor_from_doubles(TG_F64, TG_DIMS(3, 5), r_rows);
    tg_tensor *gain = tg_tensor_from_doubles(TG_F64, TG_DIMS(5, 1),
                                             (const double[]){1.0, 0.5, -2.0, 1.5, 0.8});
    tg_tensor *bias = tg_tensor_from_doubles(TG_F64, TG_DIMS(5, 1),
                                             (const double[]){0.1, 0.0, -0.3, 0.2, 0.5});
    tg_tensor_requires_grad(rows, true);
    tg_tensor_requires_grad(gain, true);
    tg_tensor_requires_grad(bias, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_transpose(tape, rows, 0, 1); /* (5, 3) */
    tg_tensor *out = tg_layer_norm(tape, x, 0, gain, bias, 1e-3);
    ck_assert_msg(out != NULL, "%s", tg_tape_error(tape));
    tg_tensor *out_rows = tg_transpose(tape, out, 0, 1);
    assert_values("y", tg_contiguous(tape, out_rows), y, 1e-14);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, out_rows, R))), TG_OK);
    assert_values("dx", rows->grad, gx, 1e-14);
    assert_values("dgain", gain->grad, gw, 1e-14);
    assert_values("dbias", bias->grad, gb, 1e-14);
    tg_tape_free(tape);
    tg_tensor *all[] = {rows, R, gain, bias};
    tu_free_all(all, 4);
}
END_TEST

/* ---- dropout ------------------------------------------------------------------------------- */

START_TEST(dropout_masks_scale_and_modes)
{
    tg_rng rng, again;
    tg_rng_seed(&rng, 8);
    tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(40, 50));
    tg_tape *tape = tg_tape_new();
    ck_assert(tg_tape_is_training(tape)); /* the default */

    /* p = 0 and evaluation mode: x itself, nothing drawn */
    tg_rng_seed(&rng, 9);
    tg_rng_seed(&again, 9);
    ck_assert_ptr_eq(tg_dropout(tape, x, 0.0, &rng), x);
    ck_assert(tg_tape_set_training(tape, false));
    tg_tape_reset(tape);
    ck_assert(!tg_tape_is_training(tape)); /* reset keeps the mode */
    ck_assert_ptr_eq(tg_dropout(tape, x, 0.7, &rng), x);
    ck_assert_ptr_eq(tg_dropout(tape, x, 0.7, NULL), x);
    ck_assert(tg_rng_rand(&rng) == tg_rng_rand(&again));
    ck_assert(!tg_tape_set_training(tape, true));

    /* training: kept elements scaled by 1/(1-p), the rest exactly 0, a
     * fraction near p dropped, and the same seed gives the same mask */
    tg_rng_seed(&rng, 10);
    tg_tensor *y = tg_dropout(tape, x, 0.3, &rng);
    tg_rng_seed(&rng, 10);
    tg_tensor *y2 = tg_dropout(tape, x, 0.3, &rng);
    ck_assert(y && y2 && y != x);
    ck_assert(tu_bitwise_equal(y, y2));
    int64_t dropped = 0, n = tg_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double v = tg_tensor_get_flat(y, i);
        if (v == 0)
            dropped++;
        else
            ck_assert_double_eq_tol(v, tg_tensor_get_flat(x, i) / 0.7, 1e-15);
    }
    ck_assert_int_ge(dropped, 540); /* 600 expected, sd 14.5 */
    ck_assert_int_le(dropped, 660);
    /* d sum(y * 1) / dx is the mask itself */
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, y)), TG_OK);
    for (int64_t i = 0; i < n; i++)
        ck_assert(tg_tensor_get_flat(x->grad, i) ==
                  (tg_tensor_get_flat(y, i) == 0 ? 0.0 : 1 / 0.7));
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* The expected output of dropout is its input: over 2,000 masks, the mean
 * of every element is within 4.5 standard errors of x, and the mean of all
 * errors is near 0 (the deviations of a fixed seed, so deterministic). */
START_TEST(dropout_mean_over_masks_is_the_input)
{
    enum { N = 64, DRAWS = 2000 };
    double p = 0.4;
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(N));
    double sum[N] = {0};
    tg_tape *tape = tg_tape_new();
    for (int k = 0; k < DRAWS; k++) {
        tg_tape_reset(tape);
        tg_tensor *y = tg_dropout(tape, x, p, &rng);
        for (int i = 0; i < N; i++)
            sum[i] += tg_tensor_get_flat(y, i);
    }
    tg_tape_set_training(tape, false);
    tg_tensor *eval = tg_dropout(tape, x, p, &rng); /* evaluation: x itself */
    double mean_error = 0;
    for (int i = 0; i < N; i++) {
        double xi = tg_tensor_get_flat(eval, i), mean = sum[i] / DRAWS;
        /* one draw: x/(1-p) with probability 1-p, else 0: variance x^2 p/(1-p) */
        double se = fabs(xi) * sqrt(p / (1 - p) / DRAWS);
        ck_assert_msg(fabs(mean - xi) <= 4.5 * se + 1e-12, "element %d: mean %g, x %g", i, mean,
                      xi);
        mean_error += (mean - xi) / (se + 1e-12) / N;
    }
    ck_assert_msg(fabs(mean_error) < 4.5 / sqrt(N), "mean error %g standard errors", mean_error);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* ---- ties, bounds, NaN ---------------------------------------------------------------------- */

/* Gradient of sum(f(x) * seed) with seed 1, 2, 3, ... */
static tg_tensor *seeded_grad(tg_tensor *(*f)(tg_tape *, tg_tensor *), tg_tensor *x)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor_zero_grad(x);
    tg_tensor *y = f(tape, x);
    ck_assert_msg(y != NULL, "%s", tg_tape_error(tape));
    tg_tensor *seed = tg_tape_tensor(tape, y->dtype, y->ndim, y->shape);
    for (int64_t i = 0; i < tg_tensor_numel(seed); i++)
        tg_tensor_set_flat(seed, i, (double)(i + 1));
    ck_assert_msg(tg_backward_with(tape, y, seed) == TG_OK, "%s", tg_tape_error(tape));
    tg_tensor *values = tg_tensor_copy(y);
    tg_tape_free(tape);
    return values;
}

static tg_tensor *max_rows(tg_tape *t, tg_tensor *x) { return tg_max_axis(t, x, 1, false); }
static tg_tensor *clamp01(tg_tape *t, tg_tensor *x) { return tg_clamp(t, x, 0.0, 1.0); }
static tg_tensor *pow0(tg_tape *t, tg_tensor *x) { return tg_pow(t, x, 0.0); }
/* a view is no root of its own: backward starts from a copy */
static tg_tensor *flip0(tg_tape *t, tg_tensor *x) { return tg_contiguous(t, tg_flip(t, x, 0)); }
static tg_tensor *max_with_row(tg_tape *t, tg_tensor *x)
{
    return tg_maximum(t, tg_select(t, x, 0, 0), tg_select(t, x, 0, 1));
}
static tg_tensor *min_with_row(tg_tape *t, tg_tensor *x)
{
    return tg_minimum(t, tg_select(t, x, 0, 0), tg_select(t, x, 0, 1));
}

static tg_tensor *param_of(int ndim, const int64_t *shape, const double *values)
{
    tg_tensor *x = tg_tensor_from_doubles(TG_F64, ndim, shape, values);
    tg_tensor_requires_grad(x, true);
    return x;
}

START_TEST(ties_bounds_and_nan)
{
    /* max_axis: the first of tied maxima takes the gradient; a NaN wins */
    tg_tensor *x = param_of(TG_DIMS(3, 3), (const double[]){1, 3, 3, 2, 2, 1, 0, NAN, 5});
    tg_tensor *v = seeded_grad(max_rows, x);
    assert_values("max_axis", v, (const double[]){3, 2, NAN}, 0);
    assert_values("max_axis gradient", x->grad, (const double[]){0, 1, 0, 2, 0, 0, 0, 3, 0}, 0);
    tg_tape *tape = tg_tape_new();
    assert_values("argmax", tg_argmax(tape, x, 1, false), (const double[]){1, 0, 1}, 0);
    assert_values("argmax axis 0", tg_argmax(tape, x, 0, true), (const double[]){1, 2, 2}, 0);
    tg_tape_free(tape);
    tg_tensor_free(v);
    tg_tensor_free(x);

    /* maximum / minimum: a tie halves the gradient, NaN wins and passes it to both */
    x = param_of(TG_DIMS(2, 3), (const double[]){1, 4, NAN, 1, 2, 0});
    v = seeded_grad(max_with_row, x);
    assert_values("maximum", v, (const double[]){1, 4, NAN}, 0);
    assert_values("maximum gradient", x->grad, (const double[]){0.5, 2, 3, 0.5, 0, 3}, 0);
    tg_tensor_free(v);
    v = seeded_grad(min_with_row, x);
    assert_values("minimum", v, (const double[]){1, 2, NAN}, 0);
    assert_values("minimum gradient", x->grad, (const double[]){0.5, 0, 3, 0.5, 2, 3}, 0);
    tg_tensor_free(v);
    tg_tensor_free(x);

    /* clamp: bounds pass the gradient (as PyTorch), NaN stays NaN and passes none */
    x = param_of(TG_DIMS(5), (const double[]){-1, 0, 0.5, 1, NAN});
    v = seeded_grad(clamp01, x);
    assert_values("clamp", v, (const double[]){0, 0, 0.5, 1, NAN}, 0);
    assert_values("clamp gradient", x->grad, (const double[]){0, 2, 3, 4, 0}, 0);
    tg_tensor_free(v);

    /* pow with p = 0: 1 everywhere, gradient 0 (also at 0, where p x^-1 is NaN) */
    tg_tensor_set_flat(x, 4, 0.0);
    v = seeded_grad(pow0, x);
    assert_values("pow 0", v, (const double[]){1, 1, 1, 1, 1}, 0);
    assert_values("pow 0 gradient", x->grad, (const double[]){0, 0, 0, 0, 0}, 0);
    tg_tensor_free(v);

    /* abs at 0 passes no gradient; flip sends each gradient to its mirror */
    v = seeded_grad(tg_abs, x);
    assert_values("abs gradient", x->grad, (const double[]){-1, 0, 3, 4, 0}, 0);
    tg_tensor_free(v);
    v = seeded_grad(flip0, x);
    assert_values("flip", v, (const double[]){0, 1, 0.5, 0, -1}, 0);
    assert_values("flip gradient", x->grad, (const double[]){5, 4, 3, 2, 1}, 0);
    tg_tensor_free(v);
    tg_tensor_free(x);
}
END_TEST

/* where(cond, a, b) copies, never computes: an inf or NaN not chosen does
 * not leak, and the chosen operand gets the gradient. */
START_TEST(where_and_masked_fill_select)
{
    tg_tensor *a = param_of(TG_DIMS(2, 3), (const double[]){1, 2, INFINITY, 4, NAN, 6});
    tg_tensor *b = param_of(TG_DIMS(3), (const double[]){-1, -2, -3});
    tg_tape *tape = tg_tape_new();
    tg_tensor *cond = tg_tape_tensor(tape, TG_F64, TG_DIMS(2, 3));
    const double c[6] = {1, 0, 0, 2, 0, -0.5};
    for (int i = 0; i < 6; i++)
        tg_tensor_set_flat(cond, i, c[i]);
    tg_tensor *w = tg_where(tape, cond, a, b);
    assert_values("where", w, (const double[]){1, -2, -3, 4, -2, 6}, 0);
    tg_tensor *seed = tg_tape_tensor(tape, TG_F64, TG_DIMS(2, 3));
    for (int i = 0; i < 6; i++)
        tg_tensor_set_flat(seed, i, i + 1.0);
    ck_assert_int_eq(tg_backward_with(tape, w, seed), TG_OK);
    assert_values("where gradient of a", a->grad, (const double[]){1, 0, 0, 4, 0, 6}, 0);
    assert_values("where gradient of b", b->grad, (const double[]){0, 2 + 5, 3}, 0);

    tg_tape_reset(tape);
    tg_tensor_zero_grad(a);
    tg_tensor *mask = tg_tape_tensor(tape, TG_F64, TG_DIMS(1, 3)); /* broadcast over rows */
    for (int i = 0; i < 3; i++)
        tg_tensor_set_flat(mask, i, i != 0);
    tg_tensor *m = tg_masked_fill(tape, a, mask, 0.0);
    assert_values("masked_fill", m, (const double[]){1, 0, 0, 4, 0, 0}, 0);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, m)), TG_OK);
    assert_values("masked_fill gradient", a->grad, (const double[]){1, 0, 0, 1, 0, 0}, 0);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}
END_TEST

Suite *suite_seq_ops(void)
{
    Suite *s = suite_create("seq_ops");
    TCase *tc = tcase_create("semantics");
    tcase_add_loop_test(tc, cross_entropy_options_match_pytorch, 0, 2);
    tcase_add_test(tc, cross_entropy_with_nothing_counted_is_zero);
    tcase_add_test(tc, sequence_cross_entropy_is_ignore_index_over_padding);
    tcase_add_test(tc, layer_norm_matches_pytorch);
    tcase_add_test(tc, dropout_masks_scale_and_modes);
    tcase_add_test(tc, dropout_mean_over_masks_is_the_input);
    tcase_add_test(tc, ties_bounds_and_nan);
    tcase_add_test(tc, where_and_masked_fill_select);
    suite_add_tcase(s, tc);
    return s;
}
