/* Every op of ops/ops.h, checked the same way from one table (in the manner
 * of ggml's test-backend-ops): the backward against central finite
 * differences in f64 on strided views of random inputs, and the f32 forward
 * (and backward) against the f64 one on the same values. Then what a table
 * row cannot express: logits of +-1000, one tensor used several times, and
 * the error paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* How a parameter is seen by the op: every kind but V_NONE is a view that
 * is not contiguous. */
typedef enum {
    V_NONE,
    V_T,       /* dims 0 and 1 swapped */
    V_STEP2,   /* every second element along dim 0: (2a, ...) -> (a, ...) */
    V_T_STEP2, /* odd elements along dim 1, then transposed: (a, 2b) -> (b, a) */
    V_SELECT,  /* index 1 of dim 1: (a, s, ...) -> (a, ...) */
    V_BCAST    /* every size-1 dim repeated 3 times with stride 0 */
} view_kind;

typedef enum {
    VAL_NORMAL,   /* N(0, 1) */
    VAL_POSITIVE, /* uniform in [0.5, 2): for log and divisors */
    VAL_AWAY0     /* N(0, 1) pushed 0.2 away from 0: for relu's kink */
} value_kind;

typedef struct {
    int ndim;
    int64_t shape[4]; /* of the parameter, before the view */
    view_kind view;
    value_kind values;
} input_spec;

typedef struct op_case op_case;
struct op_case {
    const char *name;
    tg_tensor *(*apply)(tg_tape *tape, tg_tensor *const *x, const op_case *c);
    int axis, mode; /* op parameters: axis, keepdim or reduction */
    int n_in;
    input_spec in[3];
    bool view_out;  /* transpose the output before the weighted sum */
    double tol_f32; /* relative f32 vs f64 difference allowed; 0 means 1e-5 */
};

/* ---- what each row applies ---------------------------------------------------- */

#define APPLY(NAME, EXPR)                                                            \
    static tg_tensor *NAME(tg_tape *t, tg_tensor *const *x, const op_case *c)       \
    {                                                                                \
        (void)c;                                                                     \
        return EXPR;                                                                 \
    }

APPLY(ap_matmul, tg_matmul(t, x[0], x[1]))
APPLY(ap_add, tg_add(t, x[0], x[1]))
APPLY(ap_sub, tg_sub(t, x[0], x[1]))
APPLY(ap_mul, tg_mul(t, x[0], x[1]))
APPLY(ap_div, tg_div(t, x[0], x[1]))
APPLY(ap_scale, tg_scale(t, x[0], -1.7))
APPLY(ap_affine, tg_affine(t, x[0], 0.5, 2.0))
APPLY(ap_tanh, tg_tanh(t, x[0]))
APPLY(ap_sigmoid, tg_sigmoid(t, x[0]))
APPLY(ap_exp, tg_exp(t, x[0]))
APPLY(ap_log, tg_log(t, x[0]))
APPLY(ap_relu, tg_relu(t, x[0]))
APPLY(ap_sum, tg_sum(t, x[0]))
APPLY(ap_mean, tg_mean(t, x[0]))
APPLY(ap_sum_axis, tg_sum_axis(t, x[0], c->axis, c->mode))
APPLY(ap_mean_axis, tg_mean_axis(t, x[0], c->axis, c->mode))
APPLY(ap_softmax, tg_softmax(t, x[0], c->axis))
APPLY(ap_log_softmax, tg_log_softmax(t, x[0], c->axis))
APPLY(ap_mse, tg_mse(t, x[0], x[1], (tg_reduction)c->mode))
APPLY(ap_concat, tg_concat(t, c->n_in, x, c->axis))
APPLY(ap_stack, tg_stack(t, c->n_in, x, c->axis))
APPLY(ap_contiguous, tg_contiguous(t, x[0]))
APPLY(ap_gather, tg_gather_columns(t, x[0], (const int32_t[]){3, 0, 3, 5, 1}, 5))
APPLY(ap_transpose, tg_transpose(t, x[0], 0, 2))
APPLY(ap_permute, tg_permute(t, x[0], (const int[]){2, 0, 1}))
APPLY(ap_slice, tg_slice(t, x[0], 1, 1, -1, 2))
APPLY(ap_select, tg_select(t, x[0], 0, 2))
APPLY(ap_reshape, tg_reshape(t, x[0], TG_DIMS(4, -1)))
APPLY(ap_expand, tg_expand(t, x[0], TG_DIMS(2, 3, 4)))

/* Targets cycle through the classes; the array lives on this stack frame
 * only, so backward also checks that the op kept its own copy. */
static tg_tensor *ap_cross_entropy(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    int32_t targets[64];
    int axis = c->axis < 0 ? c->axis + x[0]->ndim : c->axis;
    int64_t n_classes = x[0]->shape[axis], positions = tg_tensor_numel(x[0]) / n_classes;
    ck_assert_int_le(positions, 64);
    for (int64_t p = 0; p < positions; p++)
        targets[p] = (int32_t)((p * 3 + 1) % n_classes);
    return tg_cross_entropy(t, x[0], c->axis, targets, positions, (tg_reduction)c->mode);
}

/* ---- the table ------------------------------------------------------------------ */

#define IN(ND, SHAPE, VIEW) {ND, SHAPE, VIEW, VAL_NORMAL}
#define S(...) {__VA_ARGS__}

static const op_case op_cases[] = {
    {"matmul (3,4)@(4,5), transposed and strided", ap_matmul, 0, 0, 2,
     {IN(2, S(4, 3), V_T), IN(2, S(8, 5), V_STEP2)}, true, 5e-5},
    {"matmul with a broadcast left operand", ap_matmul, 0, 0, 2,
     {IN(2, S(1, 4), V_BCAST), IN(2, S(2, 8), V_T_STEP2)}, false, 5e-5},
    {"add (4,5) + (5,)", ap_add, 0, 0, 2, {IN(2, S(5, 4), V_T), IN(1, S(5), V_NONE)}, true, 0},
    {"add (4,1) + (1,5)", ap_add, 0, 0, 2, {IN(2, S(4, 1), V_NONE), IN(2, S(1, 5), V_NONE)},
     false, 0},
    {"sub (3,4) - (3,1)", ap_sub, 0, 0, 2, {IN(2, S(6, 4), V_STEP2), IN(2, S(3, 1), V_NONE)},
     true, 0},
    {"mul (3,4,2) * (4,1)", ap_mul, 0, 0, 2,
     {IN(4, S(3, 3, 4, 2), V_SELECT), IN(2, S(4, 1), V_NONE)}, true, 0},
    {"div (3,4) / expanded (1,4)", ap_div, 0, 0, 2,
     {IN(2, S(4, 3), V_T), {2, S(1, 4), V_BCAST, VAL_POSITIVE}}, false, 0},
    {"scale", ap_scale, 0, 0, 1, {IN(2, S(6, 8), V_T_STEP2)}, true, 0},
    {"affine", ap_affine, 0, 0, 1, {IN(2, S(3, 5), V_T)}, false, 0},
    {"tanh", ap_tanh, 0, 0, 1, {IN(2, S(8, 3), V_STEP2)}, true, 0},
    {"sigmoid", ap_sigmoid, 0, 0, 1, {IN(3, S(3, 2, 5), V_SELECT)}, false, 0},
    {"exp", ap_exp, 0, 0, 1, {IN(2, S(3, 4), V_T)}, true, 0},
    {"log of positive values", ap_log, 0, 0, 1, {{2, S(4, 8), V_T_STEP2, VAL_POSITIVE}}, true, 0},
    {"relu away from 0", ap_relu, 0, 0, 1, {{2, S(4, 5), V_T, VAL_AWAY0}}, false, 0},
    {"sum", ap_sum, 0, 0, 1, {IN(2, S(3, 8), V_T_STEP2)}, false, 0},
    {"mean", ap_mean, 0, 0, 1, {IN(3, S(4, 2, 3), V_SELECT)}, false, 0},
    {"sum_axis 0", ap_sum_axis, 0, false, 1, {IN(2, S(5, 4), V_T)}, false, 0},
    {"sum_axis -1 keepdim", ap_sum_axis, -1, true, 1, {IN(3, S(6, 3, 4), V_STEP2)}, true, 0},
    {"mean_axis 1", ap_mean_axis, 1, false, 1, {IN(4, S(2, 2, 3, 4), V_SELECT)}, true, 0},
    {"mean_axis of a broadcast", ap_mean_axis, 1, true, 1, {IN(2, S(4, 1), V_BCAST)}, false, 0},
    {"softmax axis 0", ap_softmax, 0, 0, 1, {IN(3, S(4, 3, 5), V_T)}, true, 0},
    {"softmax axis 1", ap_softmax, 1, 0, 1, {IN(3, S(4, 3, 5), V_T)}, true, 0},
    {"softmax axis 2", ap_softmax, 2, 0, 1, {IN(3, S(4, 3, 5), V_T)}, false, 0},
    {"softmax axis -1 of a broadcast", ap_softmax, -1, 0, 1, {IN(2, S(4, 1), V_BCAST)}, false,
     0},
    {"softmax axis 0, strided", ap_softmax, 0, 0, 1, {IN(2, S(5, 8), V_T_STEP2)}, true, 0},
    {"log_softmax axis 0", ap_log_softmax, 0, 0, 1, {IN(3, S(4, 3, 5), V_T)}, true, 0},
    {"log_softmax axis 1", ap_log_softmax, 1, 0, 1, {IN(3, S(4, 3, 5), V_T)}, true, 0},
    {"log_softmax axis 2", ap_log_softmax, 2, 0, 1, {IN(3, S(4, 3, 5), V_T)}, false, 0},
    {"log_softmax axis -1 of a broadcast", ap_log_softmax, -1, 0, 1, {IN(2, S(1, 4), V_BCAST)},
     false, 0},
    {"cross_entropy axis 0 mean", ap_cross_entropy, 0, TG_REDUCE_MEAN, 1,
     {IN(2, S(4, 5), V_T)}, false, 0},
    {"cross_entropy axis 0 sum", ap_cross_entropy, 0, TG_REDUCE_SUM, 1,
     {IN(2, S(10, 4), V_STEP2)}, false, 0},
    {"cross_entropy axis 1 mean, 3-D", ap_cross_entropy, 1, TG_REDUCE_MEAN, 1,
     {IN(3, S(4, 3, 2), V_T)}, false, 0},
    {"cross_entropy axis 1 sum", ap_cross_entropy, 1, TG_REDUCE_SUM, 1,
     {IN(2, S(5, 12), V_T_STEP2)}, false, 0},
    {"cross_entropy axis 0 of broadcast logits", ap_cross_entropy, 0, TG_REDUCE_MEAN, 1,
     {IN(2, S(5, 1), V_BCAST)}, false, 0},
    {"mse mean", ap_mse, 0, TG_REDUCE_MEAN, 2, {IN(2, S(4, 3), V_T), IN(2, S(3, 4), V_NONE)},
     false, 0},
    {"mse sum", ap_mse, 0, TG_REDUCE_SUM, 2, {IN(2, S(6, 3), V_STEP2), IN(2, S(3, 1), V_BCAST)},
     false, 0},
    {"concat axis 0", ap_concat, 0, 0, 3,
     {IN(2, S(2, 4), V_NONE), IN(2, S(4, 3), V_T), IN(2, S(1, 4), V_BCAST)}, true, 0},
    {"concat axis -1", ap_concat, -1, 0, 3,
     {IN(2, S(3, 2), V_NONE), IN(2, S(6, 5), V_STEP2), IN(3, S(3, 2, 4), V_SELECT)}, true, 0},
    {"stack axis 0", ap_stack, 0, 0, 3,
     {IN(2, S(4, 3), V_T), IN(2, S(6, 4), V_STEP2), IN(2, S(3, 4), V_NONE)}, true, 0},
    {"stack axis 1", ap_stack, 1, 0, 3,
     {IN(2, S(4, 3), V_T), IN(2, S(1, 4), V_BCAST), IN(2, S(3, 4), V_NONE)}, false, 0},
    {"stack axis -1", ap_stack, -1, 0, 2, {IN(2, S(4, 3), V_T), IN(2, S(4, 6), V_T_STEP2)}, true,
     0},
    {"contiguous of a strided view", ap_contiguous, 0, 0, 1, {IN(2, S(3, 8), V_T_STEP2)}, true,
     0},
    {"contiguous of a broadcast", ap_contiguous, 0, 0, 1, {IN(2, S(1, 4), V_BCAST)}, false, 0},
    {"gather_columns", ap_gather, 0, 0, 1, {IN(2, S(4, 6), V_NONE)}, true, 0},
    {"gather_columns of a transposed table", ap_gather, 0, 0, 1, {IN(2, S(6, 4), V_T)}, false,
     0},
    {"view transpose", ap_transpose, 0, 0, 1, {IN(3, S(2, 3, 4), V_NONE)}, false, 0},
    {"view permute", ap_permute, 0, 0, 1, {IN(3, S(3, 2, 4), V_T)}, false, 0},
    {"view slice", ap_slice, 0, 0, 1, {IN(2, S(7, 3), V_T)}, true, 0},
    {"view select", ap_select, 0, 0, 1, {IN(2, S(5, 4), V_T)}, false, 0},
    {"view reshape", ap_reshape, 0, 0, 1, {IN(3, S(2, 3, 4), V_NONE)}, true, 0},
    {"view expand", ap_expand, 0, 0, 1, {IN(2, S(3, 1), V_NONE)}, false, 0},
};
enum { N_OP_CASES = sizeof op_cases / sizeof op_cases[0] };

/* ---- how every row is checked ---------------------------------------------------- */

static tg_tensor *view_input(tg_tape *tape, tg_tensor *p, view_kind view)
{
    int64_t shape[TG_MAX_DIMS];
    switch (view) {
    case V_NONE: return p;
    case V_T: return tg_transpose(tape, p, 0, 1);
    case V_STEP2: return tg_slice(tape, p, 0, 0, p->shape[0], 2);
    case V_T_STEP2: return tg_transpose(tape, tg_slice(tape, p, 1, 1, p->shape[1], 2), 0, 1);
    case V_SELECT: return tg_select(tape, p, 1, 1);
    case V_BCAST:
        for (int d = 0; d < p->ndim; d++)
            shape[d] = p->shape[d] == 1 ? 3 : p->shape[d];
        return tg_expand(tape, p, p->ndim, shape);
    }
    return NULL;
}

static tg_tensor *case_output(tg_tape *tape, tg_tensor *const *params, const op_case *c)
{
    tg_tensor *x[3] = {NULL};
    for (int i = 0; i < c->n_in; i++)
        x[i] = view_input(tape, params[i], c->in[i].view);
    tg_tensor *y = c->apply(tape, x, c);
    if (y && c->view_out && y->ndim >= 2)
        y = tg_transpose(tape, y, 0, 1);
    return y;
}

static tg_tensor *case_loss(tg_tape *tape, tg_tensor *const *params, void *ctx)
{
    return tu_weighted_sum(tape, case_output(tape, params, ctx));
}

static tg_tensor *make_input(tg_rng *rng, const input_spec *s, const char *name)
{
    if (s->values == VAL_POSITIVE)
        return tu_param_uniform(rng, TG_F64, name, 0.5, 2.0, s->ndim, s->shape);
    tg_tensor *t = tu_param(rng, TG_F64, name, s->ndim, s->shape);
    for (int64_t i = 0; s->values == VAL_AWAY0 && i < tg_tensor_numel(t); i++) {
        double v = tg_tensor_get_flat(t, i);
        tg_tensor_set_flat(t, i, v + copysign(0.2, v));
    }
    return t;
}

/* A copy of t in dtype that requires a gradient. */
static tg_tensor *converted(const tg_tensor *t, tg_dtype dtype)
{
    tg_tensor *c = tg_tensor_zeros(dtype, t->ndim, t->shape);
    ck_assert_int_eq(tg_tensor_copy_into(c, t), TG_OK);
    ck_assert_int_eq(tg_tensor_requires_grad(c, true), TG_OK);
    c->name = t->name;
    return c;
}

/* Forward and backward of the row's loss; returns a contiguous copy of the
 * output (the caller frees it). */
static tg_tensor *run_case(const op_case *c, tg_tensor *const *params)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = case_output(tape, params, c);
    ck_assert_msg(y != NULL, "%s: %s", c->name, tg_tape_error(tape));
    tg_tensor *loss = tu_weighted_sum(tape, y);
    ck_assert_msg(tg_backward(tape, loss) == TG_OK, "%s: %s", c->name, tg_tape_error(tape));
    tg_tensor *copy = tg_tensor_copy(y);
    tg_tape_free(tape);
    return copy;
}

START_TEST(op_table_row)
{
    const op_case *c = &op_cases[_i];
    static const char *names[3] = {"x0", "x1", "x2"};
    tg_rng rng;
    tg_rng_seed(&rng, 1000 + (uint32_t)_i);
    tg_tensor *p[3], *p32[3], *p64[3];
    for (int i = 0; i < c->n_in; i++)
        p[i] = make_input(&rng, &c->in[i], names[i]);

    /* 1. backward against finite differences, in f64 */
    tu_assert_gradcheck(case_loss, (void *)c, c->n_in, p, 1e-6);

    /* 2. f32 against f64 on the same (f32-rounded) values, forward and backward */
    for (int i = 0; i < c->n_in; i++) {
        p32[i] = converted(p[i], TG_F32);
        p64[i] = converted(p32[i], TG_F64);
    }
    tg_tensor *y32 = run_case(c, p32), *y64 = run_case(c, p64);
    ck_assert_int_eq(y32->dtype, TG_F32);
    double tol = c->tol_f32 > 0 ? c->tol_f32 : 1e-5;
    double fwd = tu_max_rel_diff(y32, y64, 1e-2);
    ck_assert_msg(fwd < tol, "%s: f32 and f64 forward differ by %.3g (tolerance %.3g)", c->name,
                  fwd, tol);
    for (int i = 0; i < c->n_in; i++) {
        double bwd = tu_max_rel_diff(p32[i]->grad, p64[i]->grad, 1e-2);
        ck_assert_msg(bwd < 10 * tol, "%s: f32 and f64 gradients of %s differ by %.3g", c->name,
                      names[i], bwd);
    }
    tg_tensor_free(y32);
    tg_tensor_free(y64);
    tu_free_all(p, c->n_in);
    tu_free_all(p32, c->n_in);
    tu_free_all(p64, c->n_in);
}
END_TEST

/* ---- logits of +-1000 -------------------------------------------------------------- */

/* |actual - expected| <= rel * |expected| + abs */
static void assert_close(const char *what, double actual, double expected, double rel, double abs)
{
    ck_assert_msg(isfinite(actual) && fabs(actual - expected) <= rel * fabs(expected) + abs,
                  "%s: got %.17g, expected %.17g", what, actual, expected);
}

static tg_tensor *extreme_loss(tg_tape *tape, tg_tensor *const *p, void *targets)
{
    tg_tensor *sm = tu_weighted_sum(tape, tg_softmax(tape, p[0], 1));
    tg_tensor *lsm = tu_weighted_sum(tape, tg_log_softmax(tape, tg_transpose(tape, p[0], 0, 1), 0));
    tg_tensor *ce = tg_cross_entropy(tape, p[0], 1, targets, 2, TG_REDUCE_SUM);
    return tg_add(tape, tg_add(tape, sm, lsm), ce);
}

/* Rows [1000, 999, -1000] and [-1000, -999, -1000], classes along axis 1.
 * By hand, with c = e^-1 and e^-2000 = 0 in double:
 *   row 0: softmax = [1, c, 0] / (1 + c)
 *   row 1: softmax = [c, 1, c] / (1 + 2c) */
START_TEST(softmax_family_is_finite_and_correct_at_1000)
{
    tg_dtype dtype = _i ? TG_F64 : TG_F32;
    double rel = dtype == TG_F64 ? 1e-13 : 1e-6, abs = dtype == TG_F64 ? 1e-300 : 1e-30;
    const double logits[6] = {1000, 999, -1000, -1000, -999, -1000};
    double c = exp(-1.0);
    const double p[6] = {1 / (1 + c), c / (1 + c), 0, c / (1 + 2 * c), 1 / (1 + 2 * c),
                         c / (1 + 2 * c)};
    const double logp[6] = {-log1p(c),         -1 - log1p(c),     -2000 - log1p(c),
                            -1 - log1p(2 * c), -log1p(2 * c),     -1 - log1p(2 * c)};
    const int32_t targets[2] = {2, 1};
    tg_tensor *x = tg_tensor_from_doubles(dtype, TG_DIMS(2, 3), logits);
    tg_tensor_requires_grad(x, true);

    tg_tape *tape = tg_tape_new();
    tg_tensor *sm = tg_softmax(tape, x, 1), *lsm = tg_log_softmax(tape, x, -1);
    tg_tensor *ce = tg_cross_entropy(tape, x, 1, targets, 2, TG_REDUCE_MEAN);
    ck_assert_msg(sm && lsm && ce, "%s", tg_tape_error(tape));
    for (int i = 0; i < 6; i++) {
        assert_close("softmax", tg_tensor_get_flat(sm, i), p[i], rel, abs);
        assert_close("log_softmax", tg_tensor_get_flat(lsm, i), logp[i], rel, abs);
    }
    assert_close("cross_entropy", tg_tensor_item(ce), -(logp[2] + logp[4]) / 2, rel, abs);
    /* d ce / d x = (softmax - onehot) / 2 */
    ck_assert_int_eq(tg_backward(tape, ce), TG_OK);
    for (int i = 0; i < 6; i++)
        assert_close("cross_entropy gradient", tg_tensor_get_flat(x->grad, i),
                     (p[i] - (i == 2 || i == 4)) / 2, rel, abs);

    /* The backward rules of softmax and log-softmax agree with finite
     * differences up there too (f64 only). */
    if (dtype == TG_F64) {
        tg_tensor *params[1] = {x};
        tu_assert_gradcheck(extreme_loss, (void *)targets, 1, params, 1e-6);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* sigmoid(x) = 1/(1+e^-x); at x = -700 that is e^-700/(1+e^-700), and
 * 1 + e^-700 rounds to 1, so e^-700 in double (0 in f32). */
START_TEST(sigmoid_and_tanh_are_finite_and_correct_at_1000)
{
    tg_dtype dtype = _i ? TG_F64 : TG_F32;
    double rel = dtype == TG_F64 ? 1e-13 : 1e-6, abs = dtype == TG_F64 ? 1e-300 : 1e-30;
    const double xs[5] = {1000, -1000, 700, -700, 3};
    const double sig[5] = {1, 0, 1, dtype == TG_F64 ? exp(-700) : 0, 1 / (1 + exp(-3.0))};
    const double th[5] = {1, -1, 1, -1, tanh(3.0)};
    tg_tensor *x = tg_tensor_from_doubles(dtype, TG_DIMS(5), xs);
    tg_tensor_requires_grad(x, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *s = tg_sigmoid(tape, x), *t = tg_tanh(tape, x);
    ck_assert_int_eq(tg_backward(tape, tg_sum(tape, tg_add(tape, s, t))), TG_OK);
    for (int i = 0; i < 5; i++) {
        assert_close("sigmoid", tg_tensor_get_flat(s, i), sig[i], rel, abs);
        assert_close("tanh", tg_tensor_get_flat(t, i), th[i], rel, abs);
        /* sigmoid' = s (1 - s), tanh' = 1 - t^2 */
        assert_close("gradient", tg_tensor_get_flat(x->grad, i),
                     sig[i] * (1 - sig[i]) + (1 - th[i] * th[i]), 1e-5, abs);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* ---- one tensor, many uses ------------------------------------------------------------ */

/* loss = sum(x*x + x) + sum(concat(x, x, x)) + sum(gather(x, [1, 1, 0]))
 *      + sum(stack(x, x)) + sum(expand(x, (4, 3, 2))), so by hand
 * d loss / d x = 2x + 1 + 3 + (2 for column 1, 1 for column 0) + 2 + 4. */
START_TEST(a_tensor_used_several_times_collects_the_sum)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(3, 2));
    tg_tape *tape = tg_tape_new();
    tg_tensor *xs[3] = {x, x, x};
    tg_tensor *terms[5] = {
        tg_add(tape, tg_mul(tape, x, x), x),
        tg_concat(tape, 3, xs, 0),
        tg_gather_columns(tape, x, (const int32_t[]){1, 1, 0}, 3),
        tg_stack(tape, 2, xs, 1),
        tg_expand(tape, x, TG_DIMS(4, 3, 2)),
    };
    tg_tensor *loss = tg_sum(tape, terms[0]);
    for (int k = 1; k < 5; k++)
        loss = tg_add(tape, loss, tg_sum(tape, terms[k]));
    ck_assert_msg(tg_backward(tape, loss) == TG_OK, "%s", tg_tape_error(tape));
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 2; j++) {
            int64_t at[2] = {i, j};
            double expected = 2 * tg_tensor_get(x, at) + 1 + 3 + (j == 1 ? 2 : 1) + 2 + 4;
            ck_assert_double_eq_tol(tg_tensor_get(x->grad, at), expected, 1e-12);
        }
    tg_tape_free(tape);
    tg_tensor_free(x);
}
END_TEST

/* Cross-entropy with classes along axis 1 of (2,3,2) logits: the targets
 * follow the C order of axes 0 and 2. The caller's target and id arrays are
 * freed before backward, which must not read them (ASan would tell). */
START_TEST(cross_entropy_and_gather_keep_their_own_ids)
{
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(2, 3, 2));
    tg_tensor *table = tu_param(&rng, TG_F64, "table", TG_DIMS(3, 4));
    const int32_t want[4] = {2, 0, 1, 2}, want_ids[3] = {2, 0, 2};
    int32_t *targets = malloc(sizeof want), *ids = malloc(sizeof want_ids);
    memcpy(targets, want, sizeof want);
    memcpy(ids, want_ids, sizeof want_ids);
    tg_tape *tape = tg_tape_new();
    tg_tensor *ce = tg_cross_entropy(tape, x, 1, targets, 4, TG_REDUCE_SUM);
    tg_tensor *g = tg_gather_columns(tape, table, ids, 3);
    memset(targets, 0x7f, sizeof want);
    memset(ids, 0x7f, sizeof want_ids);
    free(targets);
    free(ids);
    ck_assert_msg(ce && g, "%s", tg_tape_error(tape));
    ck_assert_int_eq(tg_backward(tape, tg_add(tape, ce, tg_sum(tape, g))), TG_OK);

    double loss = 0;
    for (int64_t a = 0; a < 2; a++)
        for (int64_t b = 0; b < 2; b++) {
            double z = 0;
            for (int64_t k = 0; k < 3; k++)
                z += exp(tg_tensor_get(x, (int64_t[]){a, k, b}));
            int64_t t = want[a * 2 + b];
            loss += log(z) - tg_tensor_get(x, (int64_t[]){a, t, b});
            for (int64_t k = 0; k < 3; k++) { /* softmax - onehot */
                int64_t at[3] = {a, k, b};
                ck_assert_double_eq_tol(tg_tensor_get(x->grad, at),
                                        exp(tg_tensor_get(x, at)) / z - (k == t), 1e-12);
            }
        }
    ck_assert_double_eq_tol(tg_tensor_item(ce), loss, 1e-12);
    /* column 2 was gathered twice, column 0 once */
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 4; j++)
            ck_assert_double_eq(tg_tensor_get(table->grad, (int64_t[]){i, j}),
                                j == 2 ? 2.0 : j == 0 ? 1.0 : 0.0);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(table);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

/* Each row makes one op fail on a tape where a valid loss of W (3,4) f64 was
 * already recorded. */
typedef struct {
    tg_tensor *(*run)(tg_tape *tape, tg_tensor *W);
    tg_status status;
    const char *message;
} error_case;

static tg_tensor *zeros(tg_tape *tape, tg_dtype dtype, int64_t rows, int64_t cols)
{
    return tg_tape_zeros(tape, dtype, TG_DIMS(rows, cols));
}

#define FAIL(NAME, EXPR)                                                  \
    static tg_tensor *NAME(tg_tape *tape, tg_tensor *W)                  \
    {                                                                     \
        (void)W;                                                          \
        return EXPR;                                                      \
    }

static const int32_t good_targets[4] = {0, 1, 2, 0};
FAIL(add_no_broadcast, tg_add(tape, W, zeros(tape, TG_F64, 2, 4)))
FAIL(matmul_inner, tg_matmul(tape, W, zeros(tape, TG_F64, 3, 5)))
FAIL(matmul_1d, tg_matmul(tape, W, tg_select(tape, W, 0, 0)))
FAIL(concat_shapes, tg_concat(tape, 2, (tg_tensor *[]){W, zeros(tape, TG_F64, 3, 5)}, 0))
FAIL(stack_shapes, tg_stack(tape, 2, (tg_tensor *[]){W, tg_transpose(tape, W, 0, 1)}, 0))
FAIL(mse_shapes, tg_mse(tape, W, tg_transpose(tape, W, 0, 1), TG_REDUCE_MEAN))
FAIL(ce_null_targets, tg_cross_entropy(tape, W, 0, NULL, 4, TG_REDUCE_MEAN))
FAIL(add_dtypes, tg_add(tape, W, zeros(tape, TG_F32, 3, 4)))
FAIL(concat_dtypes, tg_concat(tape, 2, (tg_tensor *[]){W, zeros(tape, TG_F32, 3, 4)}, 1))
FAIL(mul_null, tg_mul(tape, W, NULL))
FAIL(softmax_null, tg_softmax(tape, NULL, 0))
FAIL(stack_null, tg_stack(tape, 3, (tg_tensor *[]){W, W, NULL}, 0))
FAIL(concat_none, tg_concat(tape, 0, NULL, 0))
FAIL(ce_target_high, tg_cross_entropy(tape, W, 0, (const int32_t[]){0, 1, 3, 2}, 4, TG_REDUCE_SUM))
FAIL(ce_target_negative, tg_cross_entropy(tape, W, 1, (const int32_t[]){0, -1, 3}, 3, TG_REDUCE_SUM))
FAIL(ce_target_count, tg_cross_entropy(tape, W, 0, (const int32_t[]){0, 1, 2}, 3, TG_REDUCE_SUM))
FAIL(gather_id_high, tg_gather_columns(tape, W, (const int32_t[]){0, 3, 4}, 3))
FAIL(gather_id_negative, tg_gather_columns(tape, W, (const int32_t[]){-2}, 1))
FAIL(gather_1d, tg_gather_columns(tape, tg_select(tape, W, 0, 1), (const int32_t[]){0}, 1))
FAIL(softmax_axis, tg_softmax(tape, W, 2))
FAIL(log_softmax_axis, tg_log_softmax(tape, W, -3))
FAIL(ce_axis, tg_cross_entropy(tape, W, 2, good_targets, 4, TG_REDUCE_MEAN))
FAIL(concat_axis, tg_concat(tape, 1, &W, -3))
FAIL(stack_axis, tg_stack(tape, 1, &W, 3))
FAIL(sum_axis_axis, tg_sum_axis(tape, W, 5, false))
FAIL(ce_reduction, tg_cross_entropy(tape, W, 0, good_targets, 4, (tg_reduction)7))
FAIL(mse_empty_mean, tg_mse(tape, tg_slice(tape, W, 0, 1, 1, 1), tg_slice(tape, W, 0, 2, 2, 1),
                            TG_REDUCE_MEAN))

static const error_case error_cases[] = {
    {add_no_broadcast, TG_ERR_SHAPE, "tg_add: shapes do not broadcast: (3,4) and (2,4)"},
    {matmul_inner, TG_ERR_SHAPE, "tg_matmul: inner dimensions differ: (3,4) @ (3,5)"},
    {matmul_1d, TG_ERR_SHAPE, "tg_matmul: needs 2-D operands: (3,4) @ (4,)"},
    {concat_shapes, TG_ERR_SHAPE,
     "tg_concat: input 2 has shape (3,5), input 1 has (3,4): they must match outside axis 0"},
    {stack_shapes, TG_ERR_SHAPE,
     "tg_stack: input 2 has shape (4,3), input 1 has (3,4): they must match"},
    {mse_shapes, TG_ERR_SHAPE, "tg_mse: shapes differ: pred (3,4), target (4,3)"},
    {ce_null_targets, TG_ERR_ARG, "tg_cross_entropy: targets is NULL (logits (3,4))"},
    {add_dtypes, TG_ERR_DTYPE, "tg_add: dtypes differ: input 1 is f64, input 2 is f32"},
    {concat_dtypes, TG_ERR_DTYPE, "tg_concat: dtypes differ: input 1 is f64, input 2 is f32"},
    {mul_null, TG_ERR_ARG, "tg_mul: input 2 is NULL"},
    {softmax_null, TG_ERR_ARG, "tg_softmax: input 1 is NULL"},
    {stack_null, TG_ERR_ARG, "tg_stack: input 3 is NULL"},
    {concat_none, TG_ERR_ARG, "tg_concat: needs at least one tensor (n = 0)"},
    {ce_target_high, TG_ERR_ARG,
     "tg_cross_entropy: target 3 at position 2 is outside [0, 3) (logits (3,4), classes along "
     "axis 0)"},
    {ce_target_negative, TG_ERR_ARG,
     "tg_cross_entropy: target -1 at position 1 is outside [0, 4) (logits (3,4), classes along "
     "axis 1)"},
    {ce_target_count, TG_ERR_SHAPE,
     "tg_cross_entropy: 3 targets for logits (3,4) with classes along axis 0 (4 needed)"},
    {gather_id_high, TG_ERR_ARG,
     "tg_gather_columns: id 4 at position 2 is outside [0, 4) for table (3,4)"},
    {gather_id_negative, TG_ERR_ARG,
     "tg_gather_columns: id -2 at position 0 is outside [0, 4) for table (3,4)"},
    {gather_1d, TG_ERR_SHAPE, "tg_gather_columns: table must be 2-D (d, V), got (4,)"},
    {softmax_axis, TG_ERR_ARG, "tg_softmax: axis 2 is out of range for (3,4)"},
    {log_softmax_axis, TG_ERR_ARG, "tg_log_softmax: axis -3 is out of range for (3,4)"},
    {ce_axis, TG_ERR_ARG, "tg_cross_entropy: axis 2 is out of range for (3,4)"},
    {concat_axis, TG_ERR_ARG, "tg_concat: axis -3 is out of range for (3,4)"},
    {stack_axis, TG_ERR_ARG, "tg_stack: axis 3 is out of range for stacking (3,4)"},
    {sum_axis_axis, TG_ERR_ARG, "tg_sum_axis: axis 5 is out of range for (3,4)"},
    {ce_reduction, TG_ERR_ARG, "tg_cross_entropy: unknown reduction 7"},
    {mse_empty_mean, TG_ERR_SHAPE, "tg_mse: mean over no elements: (0,4) is empty"},
};
enum { N_ERROR_CASES = sizeof error_cases / sizeof error_cases[0] };

/* Every op after the first error returns NULL and leaves the message alone. */
static void assert_later_ops_refused(tg_tape *tape, tg_tensor *W, const char *message)
{
    tg_tensor *later[] = {
        tg_tanh(tape, W),
        tg_matmul(tape, W, tg_transpose(tape, W, 0, 1)),
        tg_softmax(tape, W, 0),
        tg_log_softmax(tape, W, 1),
        tg_cross_entropy(tape, W, 0, good_targets, 4, TG_REDUCE_MEAN),
        tg_mse(tape, W, W, TG_REDUCE_SUM),
        tg_concat(tape, 1, &W, 0),
        tg_stack(tape, 1, &W, 0),
        tg_contiguous(tape, W),
        tg_gather_columns(tape, W, good_targets, 2),
    };
    for (size_t k = 0; k < sizeof later / sizeof later[0]; k++)
        ck_assert_msg(later[k] == NULL, "op %zu ran on an errored tape", k);
    ck_assert_str_eq(tg_tape_error(tape), message);
}

START_TEST(error_table_row)
{
    const error_case *c = &error_cases[_i];
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(3, 4));
    tg_rng_fill_randn(&rng, W->grad); /* a gradient from earlier steps */
    tg_tensor *W_before = tg_tensor_copy(W), *grad_before = tg_tensor_copy(W->grad);

    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, W, W));
    ck_assert_ptr_nonnull(loss);
    ck_assert_ptr_null(c->run(tape, W));
    ck_assert_int_eq(tg_tape_status(tape), c->status);
    ck_assert_str_eq(tg_tape_error(tape), c->message);
    assert_later_ops_refused(tape, W, c->message);
    ck_assert_int_eq(tg_backward(tape, loss), TG_ERR_STATE);
    ck_assert_int_eq(tg_tape_status(tape), c->status);
    ck_assert(tu_bitwise_equal(W, W_before));
    ck_assert(tu_bitwise_equal(W->grad, grad_before));

    tg_tape_free(tape);
    tg_tensor_free(W);
    tg_tensor_free(W_before);
    tg_tensor_free(grad_before);
}
END_TEST

START_TEST(ops_without_a_tape_fail_cleanly)
{
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(2, 3));
    tg_clear_error();
    ck_assert_ptr_null(tg_softmax(NULL, x, 0));
    ck_assert_int_eq(tg_last_status(), TG_ERR_ARG);
    ck_assert_str_eq(tg_last_error(), "tg_softmax: tape is NULL");
    ck_assert_ptr_null(tg_concat(NULL, 1, &x, 0));
    ck_assert_str_eq(tg_last_error(), "tg_concat: tape is NULL");
    ck_assert_ptr_null(tg_cross_entropy(NULL, x, 0, good_targets, 4, TG_REDUCE_SUM));
    ck_assert_str_eq(tg_last_error(), "tg_cross_entropy: tape is NULL");
    tg_tensor_free(x);
}
END_TEST

Suite *suite_ops(void)
{
    Suite *s = suite_create("ops");
    TCase *table = tcase_create("table");
    tcase_add_loop_test(table, op_table_row, 0, N_OP_CASES);
    suite_add_tcase(s, table);
    TCase *numerics = tcase_create("numerics");
    tcase_add_loop_test(numerics, softmax_family_is_finite_and_correct_at_1000, 0, 2);
    tcase_add_loop_test(numerics, sigmoid_and_tanh_are_finite_and_correct_at_1000, 0, 2);
    tcase_add_test(numerics, a_tensor_used_several_times_collects_the_sum);
    tcase_add_test(numerics, cross_entropy_and_gather_keep_their_own_ids);
    suite_add_tcase(s, numerics);
    TCase *errors = tcase_create("errors");
    tcase_add_loop_test(errors, error_table_row, 0, N_ERROR_CASES);
    tcase_add_test(errors, ops_without_a_tape_fail_cleanly);
    suite_add_tcase(s, errors);
    return s;
}
