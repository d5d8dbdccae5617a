/* Every op of ops/ops.h and every fused node of nn/fused.h, checked the same
 * way from one table (in the manner of ggml's test-backend-ops). A row names
 * the function it tests (.op) and feeds it strided views of random inputs;
 * each row is checked
 *   1. backward against central finite differences, in f64;
 *   2. f32 against f64 on the same values, forward and backward;
 *   3. layout independence: the op on contiguous copies of the same views
 *      gives the same bits, forward and backward, in f64 and in f32;
 * and a row with .no_grad checks that its output carries no gradient
 * instead of 1. Every tape function declared in ops/ops.h and nn/fused.h
 * must have a row (a test reads the headers). Then what a row cannot
 * express: logits of +-1000 and tied logits of 1e300, one tensor used
 * several times, and the error rows, one op each.
 *
 * One op's rows only: TG_OP=tg_tanh make test, or
 *     cd tests && TG_OP=tg_tanh ../build/tests/run_tests ops */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
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
    V_BCAST,   /* every size-1 dim repeated 3 times with stride 0 */
    V_FLIP     /* dim 0 reversed (a negative stride) */
} view_kind;

typedef enum {
    VAL_NORMAL,   /* N(0, 1) */
    VAL_POSITIVE, /* uniform in [0.5, 2): for log, sqrt and divisors */
    VAL_AWAY0     /* N(0, 1) pushed 0.2 away from 0: for kinks at 0 */
} value_kind;

typedef struct {
    int ndim;
    int64_t shape[4]; /* of the parameter, before the view */
    view_kind view;
    value_kind values;
} input_spec;

enum { MAX_IN = 12 }; /* the fused GRU: x, a0, 3 W, 3 U, 4 biases */

typedef struct op_case op_case;
struct op_case {
    const char *op;   /* the function under test: TG_OP selects rows by it */
    const char *what; /* what this row tries */
    tg_tensor *(*apply)(tg_tape *tape, tg_tensor *const *x, const op_case *c);
    int axis, mode;   /* op parameters: axis, keepdim or reduction */
    int n_in;
    input_spec in[MAX_IN];
    bool view_out;    /* transpose the output before the weighted sum */
    bool no_grad;     /* the output carries no gradient (argmax, detach) */
    double tol_f32;   /* relative f32 vs f64 difference allowed; 0 means 1e-5 */
};

/* ---- what each row applies ---------------------------------------------------- */

#define APPLY(NAME, EXPR)                                                            \
    static tg_tensor *NAME(tg_tape *t, tg_tensor *const *x, const op_case *c)       \
    {                                                                                \
        (void)c;                                                                     \
        return EXPR;                                                                 \
    }

APPLY(ap_matmul, tg_matmul(t, x[0], x[1]))
APPLY(ap_matmul_bias, tg_matmul_bias(t, x[0], x[1], x[2]))
APPLY(ap_add, tg_add(t, x[0], x[1]))
APPLY(ap_sub, tg_sub(t, x[0], x[1]))
APPLY(ap_mul, tg_mul(t, x[0], x[1]))
APPLY(ap_div, tg_div(t, x[0], x[1]))
APPLY(ap_maximum, tg_maximum(t, x[0], x[1]))
APPLY(ap_minimum, tg_minimum(t, x[0], x[1]))
APPLY(ap_scale, tg_scale(t, x[0], -1.7))
APPLY(ap_affine, tg_affine(t, x[0], 0.5, 2.0))
APPLY(ap_tanh, tg_tanh(t, x[0]))
APPLY(ap_sigmoid, tg_sigmoid(t, x[0]))
APPLY(ap_exp, tg_exp(t, x[0]))
APPLY(ap_log, tg_log(t, x[0]))
APPLY(ap_relu, tg_relu(t, x[0]))
APPLY(ap_sqrt, tg_sqrt(t, x[0]))
APPLY(ap_rsqrt, tg_rsqrt(t, x[0]))
APPLY(ap_abs, tg_abs(t, x[0]))
APPLY(ap_pow, tg_pow(t, x[0], c->mode == 3 ? 3.0 : 2.5))
APPLY(ap_clamp, tg_clamp(t, x[0], -0.5, 0.8))
APPLY(ap_sum, tg_sum(t, x[0]))
APPLY(ap_mean, tg_mean(t, x[0]))
APPLY(ap_sum_axis, tg_sum_axis(t, x[0], c->axis, c->mode))
APPLY(ap_mean_axis, tg_mean_axis(t, x[0], c->axis, c->mode))
APPLY(ap_max_axis, tg_max_axis(t, x[0], c->axis, c->mode))
APPLY(ap_argmax, tg_argmax(t, x[0], c->axis, c->mode))
APPLY(ap_softmax, tg_softmax(t, x[0], c->axis))
APPLY(ap_log_softmax, tg_log_softmax(t, x[0], c->axis))
APPLY(ap_layer_norm, tg_layer_norm(t, x[0], c->axis, c->n_in > 1 ? x[1] : NULL,
                                   c->n_in > 2 ? x[2] : NULL, 1e-5))
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
APPLY(ap_flip, tg_flip(t, x[0], c->axis))
APPLY(ap_flip_matmul, tg_matmul(t, tg_flip(t, x[0], 1), tg_flip(t, x[1], 0)))
APPLY(ap_detach, tg_detach(t, x[0]))
APPLY(ap_rnn_fused, tg_rnn_fused(t, x[0], x[1], x[2], x[3], x[4]))
APPLY(ap_gru_fused, tg_gru_fused(t, x[0], x[1], x + 2, x + 5, x + 8))

/* A fixed condition or mask, 1 where (i + j) % 3 == 0 of a (rows, cols)
 * pattern: a tape tensor, not a parameter, since a step of the finite
 * difference would flip it. */
static tg_tensor *pattern(tg_tape *t, tg_dtype dtype, int64_t rows, int64_t cols)
{
    tg_tensor *p = tg_tape_tensor(t, dtype, TG_DIMS(rows, cols));
    if (p)
        for (int64_t i = 0; i < rows * cols; i++)
            tg_tensor_set_flat(p, i, (i / cols + i % cols) % 3 == 0);
    return p;
}

/* where(cond (3,1) pattern broadcast over columns, a, b) */
static tg_tensor *ap_where(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    (void)c;
    return tg_where(t, pattern(t, x[0]->dtype, x[0]->shape[0], 1), x[0], x[1]);
}

static tg_tensor *ap_masked_fill(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    (void)c;
    return tg_masked_fill(t, x[0], pattern(t, x[0]->dtype, x[0]->shape[0], x[0]->shape[1]), 0.25);
}

/* The same mask at every call: the generator is seeded here. */
static tg_tensor *ap_dropout(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    (void)c;
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    return tg_dropout(t, x[0], 0.4, &rng);
}

/* Targets cycle through the classes; the array lives on this stack frame
 * only, so backward also checks that the op kept its own copy. */
static void cycle_targets(int32_t *targets, int64_t positions, int64_t n_classes)
{
    ck_assert_int_le(positions, 64);
    for (int64_t p = 0; p < positions; p++)
        targets[p] = (int32_t)((p * 3 + 1) % n_classes);
}

static tg_tensor *ap_cross_entropy(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    int32_t targets[64];
    int axis = c->axis < 0 ? c->axis + x[0]->ndim : c->axis;
    int64_t n_classes = x[0]->shape[axis], positions = tg_tensor_numel(x[0]) / n_classes;
    cycle_targets(targets, positions, n_classes);
    return tg_cross_entropy(t, x[0], c->axis, targets, positions, (tg_reduction)c->mode);
}

/* Weights, label smoothing 0.1 and every fourth target ignored. */
static tg_tensor *ap_cross_entropy_with(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    int32_t targets[64];
    int axis = c->axis < 0 ? c->axis + x[0]->ndim : c->axis;
    int64_t n_classes = x[0]->shape[axis], positions = tg_tensor_numel(x[0]) / n_classes;
    cycle_targets(targets, positions, n_classes);
    for (int64_t p = 0; p < positions; p += 4)
        targets[p] = -100;
    const double weights[6] = {0.5, 2.0, 1.0, 0.25, 3.0, 1.5};
    ck_assert_int_le(n_classes, 6);
    tg_cross_entropy_options o = tg_cross_entropy_defaults();
    o.reduction = (tg_reduction)c->mode;
    o.class_weights = weights;
    o.label_smoothing = 0.1;
    return tg_cross_entropy_with(t, x[0], c->axis, targets, positions, &o);
}

/* logits (n_y, 3, 4) with lengths {4, 1, 2}; padded targets hold garbage */
static tg_tensor *ap_sequence_cross_entropy(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    int32_t targets[12];
    cycle_targets(targets, 12, x[0]->shape[0]);
    targets[5] = -7;
    targets[11] = 99;
    tg_cross_entropy_options o = tg_cross_entropy_defaults();
    o.reduction = (tg_reduction)c->mode;
    return tg_sequence_cross_entropy(t, x[0], targets, (const int32_t[]){4, 1, 2}, &o);
}

/* a and c stacked along features, so both outputs are checked */
static tg_tensor *ap_lstm_fused(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    (void)c;
    tg_tensor *cs = NULL, *a = tg_lstm_fused(t, x[0], x[1], x[2], x + 3, x + 7, &cs);
    if (!a)
        return NULL;
    return tg_concat(t, 2, (tg_tensor *[]){a, cs}, 0);
}

/* One fused layer with lengths (one sequence shorter than T), both
 * directions concatenated and the final states appended along time, so
 * that every output is checked. */
static tg_tensor *ap_fused_layer(tg_tape *t, tg_tensor *const *x, const op_case *c)
{
    (void)c;
    static const int32_t lengths[2] = {3, 2};
    tg_tensor *parts[2];
    for (int reverse = 0; reverse < 2; reverse++) {
        tg_fused_layer_options o = tg_fused_layer_defaults();
        o.lengths = lengths;
        o.reverse = reverse;
        o.final_states = true;
        tg_fused_layer_out out;
        if (tg_fused_layer(t, TG_CELL_LSTM, x[0], x[1], x[2], x + 3, &o, &out) != TG_OK)
            return NULL;
        tg_tensor *seq[3] = {out.a, tg_reshape(t, out.a_n, TG_DIMS(4, 2, 1)),
                             tg_reshape(t, out.c_n, TG_DIMS(4, 2, 1))};
        parts[reverse] = tg_concat(t, 3, seq, 2);
    }
    return tg_concat(t, 2, parts, 0);
}

/* ---- the table ------------------------------------------------------------------ */

#define IN(ND, SHAPE, VIEW) {ND, SHAPE, VIEW, VAL_NORMAL}
#define IN_AS(ND, SHAPE, VIEW, VALUES) {ND, SHAPE, VIEW, VALUES}
#define S(...) {__VA_ARGS__}
/* the weights and biases of a fused layer: n_x 3, n_a 4 */
#define W_X IN(2, S(4, 3), V_NONE)
#define W_A IN(2, S(4, 4), V_NONE)
#define W_AX IN(2, S(4, 7), V_NONE)
#define BIAS IN(2, S(4, 1), V_NONE)

static const op_case op_cases[] = {
    {.op = "tg_matmul", .what = "(3,4)@(4,5), transposed and strided", .apply = ap_matmul,
     .n_in = 2, .in = {IN(2, S(4, 3), V_T), IN(2, S(8, 5), V_STEP2)}, .view_out = true,
     .tol_f32 = 5e-5},
    {.op = "tg_matmul_bias", .what = "(3,4)@(4,5) transposed + bias (3,1)", .apply = ap_matmul_bias,
     .n_in = 3, .in = {IN(2, S(4, 3), V_T), IN(2, S(4, 5), V_NONE), IN(2, S(3, 1), V_NONE)}},
    {.op = "tg_matmul", .what = "a broadcast left operand", .apply = ap_matmul, .n_in = 2,
     .in = {IN(2, S(1, 4), V_BCAST), IN(2, S(2, 8), V_T_STEP2)}, .tol_f32 = 5e-5},
    {.op = "tg_matmul", .what = "flipped operands (negative strides)", .apply = ap_flip_matmul,
     .n_in = 2, .in = {IN(2, S(4, 3), V_T), IN(2, S(4, 5), V_NONE)}, .tol_f32 = 5e-5},
    {.op = "tg_add", .what = "(4,5) + (5,)", .apply = ap_add, .n_in = 2,
     .in = {IN(2, S(5, 4), V_T), IN(1, S(5), V_NONE)}, .view_out = true},
    {.op = "tg_add", .what = "(4,1) + (1,5)", .apply = ap_add, .n_in = 2,
     .in = {IN(2, S(4, 1), V_NONE), IN(2, S(1, 5), V_NONE)}},
    {.op = "tg_sub", .what = "(3,4) - (3,1)", .apply = ap_sub, .n_in = 2,
     .in = {IN(2, S(6, 4), V_STEP2), IN(2, S(3, 1), V_NONE)}, .view_out = true},
    {.op = "tg_mul", .what = "(3,4,2) * (4,1)", .apply = ap_mul, .n_in = 2,
     .in = {IN(4, S(3, 3, 4, 2), V_SELECT), IN(2, S(4, 1), V_NONE)}, .view_out = true},
    {.op = "tg_div", .what = "(3,4) / expanded (1,4)", .apply = ap_div, .n_in = 2,
     .in = {IN(2, S(4, 3), V_T), IN_AS(2, S(1, 4), V_BCAST, VAL_POSITIVE)}},
    {.op = "tg_maximum", .what = "(3,4) and a broadcast (1,4)", .apply = ap_maximum, .n_in = 2,
     .in = {IN(2, S(4, 3), V_T), IN(2, S(1, 4), V_BCAST)}, .view_out = true},
    {.op = "tg_maximum", .what = "strided (4,3) and (4,3)", .apply = ap_maximum, .n_in = 2,
     .in = {IN(2, S(8, 3), V_STEP2), IN(2, S(4, 3), V_FLIP)}},
    {.op = "tg_minimum", .what = "(3,4) and (3,1)", .apply = ap_minimum, .n_in = 2,
     .in = {IN(2, S(4, 3), V_T), IN(2, S(3, 1), V_NONE)}},
    {.op = "tg_scale", .what = "of a strided view", .apply = ap_scale, .n_in = 1,
     .in = {IN(2, S(6, 8), V_T_STEP2)}, .view_out = true},
    {.op = "tg_affine", .what = "of a transpose", .apply = ap_affine, .n_in = 1,
     .in = {IN(2, S(3, 5), V_T)}},
    {.op = "tg_tanh", .what = "of a strided view", .apply = ap_tanh, .n_in = 1,
     .in = {IN(2, S(8, 3), V_STEP2)}, .view_out = true},
    {.op = "tg_sigmoid", .what = "of a selected slice", .apply = ap_sigmoid, .n_in = 1,
     .in = {IN(3, S(3, 2, 5), V_SELECT)}},
    {.op = "tg_exp", .what = "of a transpose", .apply = ap_exp, .n_in = 1,
     .in = {IN(2, S(3, 4), V_T)}, .view_out = true},
    {.op = "tg_log", .what = "of positive values", .apply = ap_log, .n_in = 1,
     .in = {IN_AS(2, S(4, 8), V_T_STEP2, VAL_POSITIVE)}, .view_out = true},
    {.op = "tg_relu", .what = "away from 0", .apply = ap_relu, .n_in = 1,
     .in = {IN_AS(2, S(4, 5), V_T, VAL_AWAY0)}},
    {.op = "tg_sqrt", .what = "of positive values", .apply = ap_sqrt, .n_in = 1,
     .in = {IN_AS(2, S(8, 3), V_STEP2, VAL_POSITIVE)}, .view_out = true},
    {.op = "tg_rsqrt", .what = "of positive values", .apply = ap_rsqrt, .n_in = 1,
     .in = {IN_AS(2, S(3, 4), V_T, VAL_POSITIVE)}},
    {.op = "tg_abs", .what = "away from 0", .apply = ap_abs, .n_in = 1,
     .in = {IN_AS(2, S(4, 6), V_T_STEP2, VAL_AWAY0)}},
    {.op = "tg_pow", .what = "x^2.5 of positive values", .apply = ap_pow, .n_in = 1,
     .in = {IN_AS(2, S(3, 4), V_FLIP, VAL_POSITIVE)}},
    {.op = "tg_pow", .what = "x^3 of any sign", .apply = ap_pow, .mode = 3, .n_in = 1,
     .in = {IN(2, S(4, 3), V_T)}, .view_out = true},
    {.op = "tg_clamp", .what = "to [-0.5, 0.8]", .apply = ap_clamp, .n_in = 1,
     .in = {IN(2, S(5, 4), V_T)}},
    {.op = "tg_where", .what = "a (3,4) or b (4,), cond broadcast", .apply = ap_where,
     .n_in = 2, .in = {IN(2, S(4, 3), V_T), IN(1, S(8), V_STEP2)}},
    {.op = "tg_masked_fill", .what = "of a strided view", .apply = ap_masked_fill, .n_in = 1,
     .in = {IN(2, S(6, 4), V_STEP2)}, .view_out = true},
    {.op = "tg_sum", .what = "of a strided view", .apply = ap_sum, .n_in = 1,
     .in = {IN(2, S(3, 8), V_T_STEP2)}},
    {.op = "tg_mean", .what = "of a selected slice", .apply = ap_mean, .n_in = 1,
     .in = {IN(3, S(4, 2, 3), V_SELECT)}},
    {.op = "tg_sum_axis", .what = "axis 0", .apply = ap_sum_axis, .axis = 0, .mode = false,
     .n_in = 1, .in = {IN(2, S(5, 4), V_T)}},
    {.op = "tg_sum_axis", .what = "axis -1 keepdim", .apply = ap_sum_axis, .axis = -1,
     .mode = true, .n_in = 1, .in = {IN(3, S(6, 3, 4), V_STEP2)}, .view_out = true},
    {.op = "tg_mean_axis", .what = "axis 1", .apply = ap_mean_axis, .axis = 1, .n_in = 1,
     .in = {IN(4, S(2, 2, 3, 4), V_SELECT)}, .view_out = true},
    {.op = "tg_mean_axis", .what = "of a broadcast", .apply = ap_mean_axis, .axis = 1,
     .mode = true, .n_in = 1, .in = {IN(2, S(4, 1), V_BCAST)}},
    {.op = "tg_max_axis", .what = "axis 0", .apply = ap_max_axis, .axis = 0, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}, .view_out = true},
    {.op = "tg_max_axis", .what = "axis -1 keepdim of a flip", .apply = ap_max_axis,
     .axis = -1, .mode = true, .n_in = 1, .in = {IN(2, S(3, 6), V_FLIP)}},
    {.op = "tg_argmax", .what = "axis 1", .apply = ap_argmax, .axis = 1, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}, .no_grad = true},
    {.op = "tg_softmax", .what = "axis 0", .apply = ap_softmax, .axis = 0, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}, .view_out = true},
    {.op = "tg_softmax", .what = "axis 1", .apply = ap_softmax, .axis = 1, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}, .view_out = true},
    {.op = "tg_softmax", .what = "axis 2", .apply = ap_softmax, .axis = 2, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}},
    {.op = "tg_softmax", .what = "axis -1 of a broadcast", .apply = ap_softmax, .axis = -1,
     .n_in = 1, .in = {IN(2, S(4, 1), V_BCAST)}},
    {.op = "tg_softmax", .what = "axis 0, strided", .apply = ap_softmax, .axis = 0, .n_in = 1,
     .in = {IN(2, S(5, 8), V_T_STEP2)}, .view_out = true},
    {.op = "tg_log_softmax", .what = "axis 0", .apply = ap_log_softmax, .axis = 0, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}, .view_out = true},
    {.op = "tg_log_softmax", .what = "axis 1", .apply = ap_log_softmax, .axis = 1, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}, .view_out = true},
    {.op = "tg_log_softmax", .what = "axis 2", .apply = ap_log_softmax, .axis = 2, .n_in = 1,
     .in = {IN(3, S(4, 3, 5), V_T)}},
    {.op = "tg_log_softmax", .what = "axis -1 of a broadcast", .apply = ap_log_softmax,
     .axis = -1, .n_in = 1, .in = {IN(2, S(1, 4), V_BCAST)}},
    {.op = "tg_layer_norm", .what = "axis 0 with a (4,1) gain and a (4,) bias",
     .apply = ap_layer_norm, .axis = 0, .n_in = 3,
     .in = {IN(3, S(3, 4, 5), V_T), IN(2, S(8, 1), V_STEP2), IN(1, S(4), V_NONE)},
     .view_out = true},
    {.op = "tg_layer_norm", .what = "axis -1 without gain and bias", .apply = ap_layer_norm,
     .axis = -1, .n_in = 1, .in = {IN(2, S(6, 5), V_STEP2)}},
    {.op = "tg_dropout", .what = "p 0.4 of a transpose", .apply = ap_dropout, .n_in = 1,
     .in = {IN(2, S(5, 4), V_T)}, .view_out = true},
    {.op = "tg_cross_entropy", .what = "axis 0 mean", .apply = ap_cross_entropy, .axis = 0,
     .mode = TG_REDUCE_MEAN, .n_in = 1, .in = {IN(2, S(4, 5), V_T)}},
    {.op = "tg_cross_entropy", .what = "axis 0 sum", .apply = ap_cross_entropy, .axis = 0,
     .mode = TG_REDUCE_SUM, .n_in = 1, .in = {IN(2, S(10, 4), V_STEP2)}},
    {.op = "tg_cross_entropy", .what = "axis 1 mean, 3-D", .apply = ap_cross_entropy, .axis = 1,
     .mode = TG_REDUCE_MEAN, .n_in = 1, .in = {IN(3, S(4, 3, 2), V_T)}},
    {.op = "tg_cross_entropy", .what = "axis 1 sum", .apply = ap_cross_entropy, .axis = 1,
     .mode = TG_REDUCE_SUM, .n_in = 1, .in = {IN(2, S(5, 12), V_T_STEP2)}},
    {.op = "tg_cross_entropy", .what = "axis 0 of broadcast logits", .apply = ap_cross_entropy,
     .axis = 0, .mode = TG_REDUCE_MEAN, .n_in = 1, .in = {IN(2, S(5, 1), V_BCAST)}},
    {.op = "tg_cross_entropy_with", .what = "weights, smoothing, ignored targets, mean",
     .apply = ap_cross_entropy_with, .axis = 0, .mode = TG_REDUCE_MEAN, .n_in = 1,
     .in = {IN(3, S(3, 5, 4), V_T)}},
    {.op = "tg_cross_entropy_with", .what = "the same, sum, classes along axis 1",
     .apply = ap_cross_entropy_with, .axis = 1, .mode = TG_REDUCE_SUM, .n_in = 1,
     .in = {IN(2, S(6, 8), V_T_STEP2)}},
    {.op = "tg_sequence_cross_entropy", .what = "(5,3,4), lengths {4,1,2}, mean",
     .apply = ap_sequence_cross_entropy, .mode = TG_REDUCE_MEAN, .n_in = 1,
     .in = {IN(3, S(3, 5, 4), V_T)}},
    {.op = "tg_sequence_cross_entropy", .what = "sum, flipped logits",
     .apply = ap_sequence_cross_entropy, .mode = TG_REDUCE_SUM, .n_in = 1,
     .in = {IN(3, S(5, 3, 4), V_FLIP)}},
    {.op = "tg_mse", .what = "mean", .apply = ap_mse, .mode = TG_REDUCE_MEAN, .n_in = 2,
     .in = {IN(2, S(4, 3), V_T), IN(2, S(3, 4), V_NONE)}},
    {.op = "tg_mse", .what = "sum", .apply = ap_mse, .mode = TG_REDUCE_SUM, .n_in = 2,
     .in = {IN(2, S(6, 3), V_STEP2), IN(2, S(3, 1), V_BCAST)}},
    {.op = "tg_concat", .what = "axis 0", .apply = ap_concat, .axis = 0, .n_in = 3,
     .in = {IN(2, S(2, 4), V_NONE), IN(2, S(4, 3), V_T), IN(2, S(1, 4), V_BCAST)},
     .view_out = true},
    {.op = "tg_concat", .what = "axis -1", .apply = ap_concat, .axis = -1, .n_in = 3,
     .in = {IN(2, S(3, 2), V_NONE), IN(2, S(6, 5), V_STEP2), IN(3, S(3, 2, 4), V_SELECT)},
     .view_out = true},
    {.op = "tg_stack", .what = "axis 0", .apply = ap_stack, .axis = 0, .n_in = 3,
     .in = {IN(2, S(4, 3), V_T), IN(2, S(6, 4), V_STEP2), IN(2, S(3, 4), V_NONE)},
     .view_out = true},
    {.op = "tg_stack", .what = "axis 1", .apply = ap_stack, .axis = 1, .n_in = 3,
     .in = {IN(2, S(4, 3), V_T), IN(2, S(1, 4), V_BCAST), IN(2, S(3, 4), V_NONE)}},
    {.op = "tg_stack", .what = "axis -1", .apply = ap_stack, .axis = -1, .n_in = 2,
     .in = {IN(2, S(4, 3), V_T), IN(2, S(4, 6), V_T_STEP2)}, .view_out = true},
    {.op = "tg_contiguous", .what = "of a strided view", .apply = ap_contiguous, .n_in = 1,
     .in = {IN(2, S(3, 8), V_T_STEP2)}, .view_out = true},
    {.op = "tg_contiguous", .what = "of a broadcast", .apply = ap_contiguous, .n_in = 1,
     .in = {IN(2, S(1, 4), V_BCAST)}},
    {.op = "tg_gather_columns", .what = "of a table", .apply = ap_gather, .n_in = 1,
     .in = {IN(2, S(4, 6), V_NONE)}, .view_out = true},
    {.op = "tg_gather_columns", .what = "of a transposed table", .apply = ap_gather, .n_in = 1,
     .in = {IN(2, S(6, 4), V_T)}},
    {.op = "tg_transpose", .what = "view", .apply = ap_transpose, .n_in = 1,
     .in = {IN(3, S(2, 3, 4), V_NONE)}},
    {.op = "tg_permute", .what = "view", .apply = ap_permute, .n_in = 1,
     .in = {IN(3, S(3, 2, 4), V_T)}},
    {.op = "tg_slice", .what = "view", .apply = ap_slice, .n_in = 1, .in = {IN(2, S(7, 3), V_T)},
     .view_out = true},
    {.op = "tg_select", .what = "view", .apply = ap_select, .n_in = 1,
     .in = {IN(2, S(5, 4), V_T)}},
    {.op = "tg_reshape", .what = "view", .apply = ap_reshape, .n_in = 1,
     .in = {IN(3, S(2, 3, 4), V_NONE)}, .view_out = true},
    {.op = "tg_expand", .what = "view", .apply = ap_expand, .n_in = 1,
     .in = {IN(2, S(3, 1), V_NONE)}},
    {.op = "tg_flip", .what = "view along axis 1 of a transpose", .apply = ap_flip, .axis = 1,
     .n_in = 1, .in = {IN(2, S(4, 3), V_T)}, .view_out = true},
    {.op = "tg_flip", .what = "view along axis -1 of a flip", .apply = ap_flip, .axis = -1,
     .n_in = 1, .in = {IN(2, S(3, 5), V_FLIP)}},
    {.op = "tg_detach", .what = "view without a gradient", .apply = ap_detach, .n_in = 1,
     .in = {IN(2, S(4, 3), V_T)}, .no_grad = true},
    {.op = "tg_rnn_fused", .what = "x (3,2,3) transposed, a0", .apply = ap_rnn_fused, .n_in = 5,
     .in = {IN(3, S(2, 3, 3), V_T), IN(2, S(4, 2), V_NONE), W_X, W_A, BIAS}, .tol_f32 = 1e-4},
    {.op = "tg_lstm_fused", .what = "x (3,2,3), a0, c0; a and c", .apply = ap_lstm_fused,
     .n_in = 11, .in = {IN(3, S(3, 2, 3), V_NONE), IN(2, S(2, 4), V_T), IN(2, S(4, 2), V_NONE),
                        W_AX, W_AX, W_AX, W_AX, BIAS, BIAS, BIAS, BIAS},
     .tol_f32 = 1e-4},
    {.op = "tg_fused_layer", .what = "LSTM, lengths (3,2), both directions, final states",
     .apply = ap_fused_layer, .n_in = 11,
     .in = {IN(3, S(3, 2, 3), V_NONE), IN(2, S(4, 2), V_NONE), IN(2, S(4, 2), V_NONE), W_AX, W_AX,
            W_AX, W_AX, BIAS, BIAS, BIAS, BIAS},
     .tol_f32 = 1e-4},
    {.op = "tg_gru_fused", .what = "x (3,2,3) strided, a0", .apply = ap_gru_fused, .n_in = 12,
     .in = {IN(3, S(6, 2, 3), V_STEP2), IN(2, S(4, 2), V_NONE), W_X, W_X, W_X, W_A, W_A, W_A,
            BIAS, BIAS, BIAS, BIAS},
     .tol_f32 = 1e-4},
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
    case V_FLIP: return tg_flip(tape, p, 0);
    case V_BCAST:
        for (int d = 0; d < p->ndim; d++)
            shape[d] = p->shape[d] == 1 ? 3 : p->shape[d];
        return tg_expand(tape, p, p->ndim, shape);
    }
    return NULL;
}

/* The row's output from its parameters; contiguous: feed them as they are
 * (they already hold the viewed values) instead of through the row's views. */
static tg_tensor *row_output(tg_tape *tape, tg_tensor *const *params, const op_case *c,
                             bool contiguous)
{
    tg_tensor *x[MAX_IN] = {NULL};
    for (int i = 0; i < c->n_in; i++)
        x[i] = contiguous ? params[i] : view_input(tape, params[i], c->in[i].view);
    tg_tensor *y = c->apply(tape, x, c);
    if (y && c->view_out && y->ndim >= 2)
        y = tg_transpose(tape, y, 0, 1);
    return y;
}

static tg_tensor *case_loss(tg_tape *tape, tg_tensor *const *params, void *ctx)
{
    return tu_weighted_sum(tape, row_output(tape, params, ctx, false));
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
 * output (the caller frees it). A no_grad row runs the forward only and
 * checks that nothing was recorded for its output. */
static tg_tensor *run_case(const op_case *c, tg_tensor *const *params, bool contiguous)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = row_output(tape, params, c, contiguous);
    ck_assert_msg(y != NULL, "%s %s: %s", c->op, c->what, tg_tape_error(tape));
    if (c->no_grad) {
        ck_assert_msg(y->grad_root == NULL, "%s %s: the output carries a gradient", c->op,
                      c->what);
    } else {
        tg_tensor *loss = tu_weighted_sum(tape, y);
        ck_assert_msg(tg_backward(tape, loss) == TG_OK, "%s %s: %s", c->op, c->what,
                      tg_tape_error(tape));
    }
    tg_tensor *copy = tg_tensor_copy(y);
    tg_tape_free(tape);
    return copy;
}

/* A contiguous persistent copy of t as the view shows it. */
static tg_tensor *viewed_copy(tg_tensor *t, view_kind view)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *copy = tg_tensor_copy(view_input(tape, t, view));
    ck_assert_ptr_nonnull(copy);
    tg_tape_free(tape);
    return copy;
}

/* The gradient of a contiguous copy of a broadcast view, its repeats summed
 * (by the library) back to the parameter's shape. That sum has an order of
 * its own, so it agrees with the broadcast's gradient to rounding only: a
 * broadcast's gradient is a sum by definition, with no layout to compare. */
static tg_tensor *summed_repeats(const tg_tensor *g, const tg_tensor *param)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *sum = (tg_tensor *)g;
    for (int d = 0; d < param->ndim; d++)
        if (param->shape[d] == 1)
            sum = tg_sum_axis(tape, sum, d, true);
    tg_tensor *out = tg_tensor_copy(sum);
    tg_tape_free(tape);
    return out;
}

/* 3. The row's views against contiguous copies of what they show: the
 * output bit for bit, and every gradient bit for bit; a broadcast input's
 * gradient within 8 ulp of its largest term (see summed_repeats). */
static void check_layout_independence(const op_case *c, tg_tensor *const *params)
{
    tg_tensor *copies[MAX_IN];
    for (int i = 0; i < c->n_in; i++) {
        copies[i] = viewed_copy(params[i], c->in[i].view);
        ck_assert_int_eq(tg_tensor_requires_grad(copies[i], true), TG_OK);
        copies[i]->name = params[i]->name;
    }
    tg_tensor *strided = run_case(c, params, false), *packed = run_case(c, copies, true);
    const char *dtype = tg_dtype_name(strided->dtype);
    ck_assert_msg(tu_bitwise_equal(strided, packed),
                  "%s %s (%s): the output depends on the layout (max difference %.3g)", c->op,
                  c->what, dtype, tu_max_abs_diff(strided, packed));
    for (int i = 0; i < c->n_in && !c->no_grad; i++) {
        if (c->in[i].view == V_BCAST) {
            tg_tensor *sum = summed_repeats(copies[i]->grad, params[i]);
            double ulp = params[i]->dtype == TG_F32 ? 1.2e-7 : 2.3e-16, largest = 0;
            for (int64_t k = 0; k < tg_tensor_numel(copies[i]); k++)
                largest = fmax(largest, fabs(tg_tensor_get_flat(copies[i]->grad, k)));
            double d = tu_max_rel_diff(sum, params[i]->grad, largest);
            ck_assert_msg(d <= 8 * ulp, "%s %s (%s): the gradient of x%d depends on the layout "
                          "(%.3g)", c->op, c->what, dtype, i, d);
            tg_tensor_free(sum);
            continue;
        }
        tg_tensor *seen = viewed_copy(params[i]->grad, c->in[i].view);
        ck_assert_msg(tu_bitwise_equal(copies[i]->grad, seen),
                      "%s %s (%s): the gradient of x%d depends on the layout (max difference "
                      "%.3g)",
                      c->op, c->what, dtype, i, tu_max_abs_diff(copies[i]->grad, seen));
        tg_tensor_free(seen);
    }
    tg_tensor_free(strided);
    tg_tensor_free(packed);
    tu_free_all(copies, c->n_in);
}

/* ---- the row test, and TG_OP ------------------------------------------------------- */

/* The rows to run: all, or those of the op named by TG_OP. */
static int selected[N_OP_CASES], n_selected;

START_TEST(op_table_row)
{
    const op_case *c = &op_cases[selected[_i]];
    static const char *names[MAX_IN] = {"x0", "x1", "x2", "x3", "x4", "x5",
                                        "x6", "x7", "x8", "x9", "x10", "x11"};
    tg_rng rng;
    tg_rng_seed(&rng, 1000 + (uint32_t)selected[_i]);
    tg_tensor *p[MAX_IN], *p32[MAX_IN], *p64[MAX_IN];
    for (int i = 0; i < c->n_in; i++)
        p[i] = make_input(&rng, &c->in[i], names[i]);

    /* 1. backward against finite differences, in f64 */
    if (!c->no_grad)
        tu_assert_gradcheck(case_loss, (void *)c, c->n_in, p, 1e-6);

    /* 2. f32 against f64 on the same (f32-rounded) values, forward and backward */
    for (int i = 0; i < c->n_in; i++) {
        p32[i] = converted(p[i], TG_F32);
        p64[i] = converted(p32[i], TG_F64);
    }
    tg_tensor *y32 = run_case(c, p32, false), *y64 = run_case(c, p64, false);
    ck_assert_int_eq(y32->dtype, TG_F32);
    double tol = c->tol_f32 > 0 ? c->tol_f32 : 1e-5;
    double fwd = tu_max_rel_diff(y32, y64, 1e-2);
    ck_assert_msg(fwd < tol, "%s %s: f32 and f64 forward differ by %.3g (tolerance %.3g)", c->op,
                  c->what, fwd, tol);
    for (int i = 0; i < c->n_in && !c->no_grad; i++) {
        double bwd = tu_max_rel_diff(p32[i]->grad, p64[i]->grad, 1e-2);
        ck_assert_msg(bwd < 10 * tol, "%s %s: f32 and f64 gradients of %s differ by %.3g",
                      c->op, c->what, names[i], bwd);
    }

    /* 3. layout independence, in both dtypes (fresh gradients) */
    for (int i = 0; i < c->n_in; i++) {
        tg_tensor_zero_grad(p32[i]);
        tg_tensor_zero_grad(p64[i]);
    }
    check_layout_independence(c, p64);
    check_layout_independence(c, p32);

    tg_tensor_free(y32);
    tg_tensor_free(y64);
    tu_free_all(p, c->n_in);
    tu_free_all(p32, c->n_in);
    tu_free_all(p64, c->n_in);
}
END_TEST

/* TG_OP names an op that has no row: say so instead of running nothing. */
START_TEST(tg_op_names_a_row)
{
    ck_abort_msg("TG_OP=%s: no row of the op table tests it", getenv("TG_OP"));
}
END_TEST

static bool op_wanted(const char *op)
{
    const char *want = getenv("TG_OP");
    return !want || !*want || strcmp(want, op) == 0;
}

/* ---- every tape function of the headers has a row ----------------------------------- */

/* Does some row test `name`? */
static bool has_row(const char *name)
{
    for (int k = 0; k < N_OP_CASES; k++)
        if (strcmp(op_cases[k].op, name) == 0)
            return true;
    return false;
}

/* Every function declared in `header` whose first parameter is a tape must
 * have a row; returns how many such functions it declares. */
static int check_header_ops(const char *header)
{
    FILE *f = fopen(header, "r");
    ck_assert_msg(f != NULL, "cannot open %s (run from tests/)", header);
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        const char *open = strstr(line, "(tg_tape *tape");
        if (!open || line[0] == ' ' || line[0] == '/' || line[0] == '#')
            continue;
        const char *start = open;
        while (start > line && (isalnum((unsigned char)start[-1]) || start[-1] == '_'))
            start--;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(open - start), start);
        ck_assert_msg(strncmp(name, "tg_", 3) == 0, "%s: cannot read '%s'", header, line);
        ck_assert_msg(has_row(name), "%s declares %s, which has no row in the op table", header,
                      name);
        found++;
    }
    fclose(f);
    return found;
}

START_TEST(every_op_of_the_headers_has_a_row)
{
    ck_assert_int_ge(check_header_ops("../ops/ops.h"), 40);
    ck_assert_int_eq(check_header_ops("../nn/fused.h"), 4);
}
END_TEST
/* ---- logits of +-1000, tied logits of 1e300 -------------------------------------- */

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

/* Two logits a >= b with d = a - b exact: log softmax is -log1p(e^-d) and
 * -d - log1p(e^-d), whatever their size. Computing x - (max + log sum)
 * loses log 2 from |x| of about 1e15 up; (x - max) - log sum does not.
 * _i indexes the rows: tied and near-tied at 1e15, 1e30, 1e300 (f64), 1e30 (f32). */
static const struct {
    tg_dtype dtype;
    double a;
    int ulps; /* b is a stepped this many ulps towards -inf, in the dtype */
} tied_rows[] = {
    {TG_F64, 1e15, 0},  {TG_F64, 1e15, 12}, {TG_F64, -1e15, 0},  {TG_F64, 1e30, 0},
    {TG_F64, 1e30, 1},  {TG_F64, 1e300, 0}, {TG_F64, 1e300, 1},  {TG_F64, -1e300, 0},
    {TG_F32, 1e30, 0},  {TG_F32, 1e30, 1},  {TG_F32, -1e30, 0},  {TG_F32, 3e7, 3},
};
enum { N_TIED_ROWS = sizeof tied_rows / sizeof tied_rows[0] };

START_TEST(tied_and_near_tied_huge_logits)
{
    tg_dtype dtype = tied_rows[_i].dtype;
    double a = tied_rows[_i].a, b;
    if (dtype == TG_F32) { /* the values the tensor will hold */
        float bf = (float)a;
        for (int k = 0; k < tied_rows[_i].ulps; k++)
            bf = nextafterf(bf, -INFINITY);
        a = (float)a;
        b = bf;
    } else {
        b = a;
        for (int k = 0; k < tied_rows[_i].ulps; k++)
            b = nextafter(b, -INFINITY);
    }
    double d = a - b, rel = dtype == TG_F64 ? 1e-15 : 1e-7;
    const double logp[2] = {-log1p(exp(-d)), -d - log1p(exp(-d))};
    tg_tensor *x = tg_tensor_from_doubles(dtype, TG_DIMS(1, 2), (const double[]){a, b});
    tg_tensor_requires_grad(x, true);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, true);
    tg_tensor *sm = tg_softmax(tape, x, 1), *lsm = tg_log_softmax(tape, x, 1);
    tg_tensor *ce = tg_cross_entropy(tape, x, 1, (const int32_t[]){0}, 1, TG_REDUCE_SUM);
    ck_assert_msg(sm && lsm && ce, "%s", tg_tape_error(tape));
    for (int i = 0; i < 2; i++) {
        assert_close("softmax", tg_tensor_get_flat(sm, i), exp(logp[i]), rel, 1e-300);
        assert_close("log_softmax", tg_tensor_get_flat(lsm, i), logp[i], rel, 1e-300);
    }
    assert_close("cross_entropy", tg_tensor_item(ce), -logp[0], rel, 1e-300);
    ck_assert_int_eq(tg_backward(tape, ce), TG_OK); /* d ce / d x = softmax - onehot */
    assert_close("gradient 0", tg_tensor_get_flat(x->grad, 0), exp(logp[0]) - 1, rel, 1e-300);
    assert_close("gradient 1", tg_tensor_get_flat(x->grad, 1), exp(logp[1]), rel, 1e-300);
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

/* ---- NaN in, NaN out; anomaly mode names the op that made one ------------------ */

/* relu(NaN) is NaN and its gradient passes on (PyTorch's threshold_backward
 * compares the result, NaN <= 0 being false). */
START_TEST(relu_keeps_nan)
{
    tg_tensor *x = tg_tensor_from_doubles(TG_F64, TG_DIMS(3), (const double[]){NAN, -1, 2});
    tg_tensor_requires_grad(x, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_relu(tape, x);
    ck_assert(isnan(tg_tensor_get_flat(y, 0)));
    ck_assert_double_eq(tg_tensor_get_flat(y, 1), 0.0);
    ck_assert_double_eq(tg_tensor_get_flat(y, 2), 2.0);
    ck_assert_int_eq(tg_backward_with(tape, y, tg_tape_zeros(tape, TG_F64, TG_DIMS(3))), TG_OK);
    tg_tape_free(tape);
    tape = tg_tape_new();
    tg_tensor *seed = tg_tensor_from_doubles(TG_F64, TG_DIMS(3), (const double[]){5, 6, 7});
    tg_tensor_zero_grad(x);
    ck_assert_int_eq(tg_backward_with(tape, tg_relu(tape, x), seed), TG_OK);
    ck_assert_double_eq(tg_tensor_get_flat(x->grad, 0), 5.0);
    ck_assert_double_eq(tg_tensor_get_flat(x->grad, 1), 0.0);
    ck_assert_double_eq(tg_tensor_get_flat(x->grad, 2), 7.0);
    tg_tape_free(tape);
    tg_tensor_free(seed);
    tg_tensor_free(x);
}
END_TEST

/* A NaN made by an op is blamed on that op, never on a view of its output;
 * one already in the data is reported as such, at the first op that
 * computes with it (views pass it on silently). */
START_TEST(anomaly_names_the_op_that_made_the_nan)
{
    tg_tensor *x = tg_tensor_from_doubles(TG_F64, TG_DIMS(2, 2), (const double[]){1, -2, 3, 4});
    tg_tensor_requires_grad(x, true);
    x->name = "x";
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, true);
    tg_tensor *r = tg_rsqrt(tape, tg_permute(tape, x, (const int[]){1, 0}));
    ck_assert_ptr_null(r);
    ck_assert_str_eq(tg_tape_error(tape),
                     "anomaly: tg_rsqrt produced a non-finite value in its output 1 (2,2)");

    tg_tensor_set_flat(x, 1, NAN); /* now the data holds one */
    tg_tape_reset(tape);
    tg_tensor *v = tg_flip(tape, tg_transpose(tape, x, 0, 1), 0);
    ck_assert_msg(v != NULL, "a view is blamed: %s", tg_tape_error(tape));
    ck_assert_ptr_null(tg_relu(tape, v));
    ck_assert_str_eq(tg_tape_error(tape),
                     "anomaly: tg_relu produced a non-finite value in its output 1 (2,2): its "
                     "input 1 x (2,2) already held one (data or a parameter)");
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
    const char *op; /* TG_OP selects rows by it */
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
static tg_rng error_rng; /* for the dropout rows */
static const tg_cross_entropy_options bad_smoothing = {.label_smoothing = 1.5};
static const tg_cross_entropy_options bad_weights = {
    .class_weights = (const double[]){1, -2, 1}};
FAIL(add_no_broadcast, tg_add(tape, W, zeros(tape, TG_F64, 2, 4)))
FAIL(maximum_no_broadcast, tg_maximum(tape, W, zeros(tape, TG_F64, 4, 3)))
FAIL(minimum_dtypes, tg_minimum(tape, W, zeros(tape, TG_F32, 3, 4)))
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
FAIL(ce_ignore_is_not_default, tg_cross_entropy(tape, W, 0, (const int32_t[]){0, -100, 1, 2}, 4,
                                                TG_REDUCE_SUM))
FAIL(ce_with_target_high, tg_cross_entropy_with(tape, W, 1, (const int32_t[]){0, -100, 4}, 3,
                                                NULL))
FAIL(ce_with_smoothing, tg_cross_entropy_with(tape, W, 0, good_targets, 4, &bad_smoothing))
FAIL(ce_with_weights, tg_cross_entropy_with(tape, W, 0, good_targets, 4, &bad_weights))
FAIL(seq_ce_2d, tg_sequence_cross_entropy(tape, W, good_targets, good_targets, NULL))
FAIL(seq_ce_length, tg_sequence_cross_entropy(tape, tg_reshape(tape, W, TG_DIMS(3, 2, 2)),
                                              good_targets, (const int32_t[]){2, 3}, NULL))
FAIL(seq_ce_no_lengths, tg_sequence_cross_entropy(tape, tg_reshape(tape, W, TG_DIMS(3, 2, 2)),
                                                  good_targets, NULL, NULL))
FAIL(gather_id_high, tg_gather_columns(tape, W, (const int32_t[]){0, 3, 4}, 3))
FAIL(gather_id_negative, tg_gather_columns(tape, W, (const int32_t[]){-2}, 1))
FAIL(gather_1d, tg_gather_columns(tape, tg_select(tape, W, 0, 1), (const int32_t[]){0}, 1))
FAIL(softmax_axis, tg_softmax(tape, W, 2))
FAIL(log_softmax_axis, tg_log_softmax(tape, W, -3))
FAIL(ce_axis, tg_cross_entropy(tape, W, 2, good_targets, 4, TG_REDUCE_MEAN))
FAIL(concat_axis, tg_concat(tape, 1, &W, -3))
FAIL(stack_axis, tg_stack(tape, 1, &W, 3))
FAIL(sum_axis_axis, tg_sum_axis(tape, W, 5, false))
FAIL(max_axis_axis, tg_max_axis(tape, W, -3, false))
FAIL(max_axis_empty, tg_max_axis(tape, tg_slice(tape, W, 0, 1, 1, 1), 0, false))
FAIL(argmax_axis, tg_argmax(tape, W, 2, true))
FAIL(flip_axis, tg_flip(tape, W, 2))
FAIL(ce_reduction, tg_cross_entropy(tape, W, 0, good_targets, 4, (tg_reduction)7))
FAIL(mse_empty_mean, tg_mse(tape, tg_slice(tape, W, 0, 1, 1, 1), tg_slice(tape, W, 0, 2, 2, 1),
                            TG_REDUCE_MEAN))
FAIL(pow_nan, tg_pow(tape, W, NAN))
FAIL(clamp_order, tg_clamp(tape, W, 1.0, -1.0))
FAIL(sqrt_null, tg_sqrt(tape, NULL))
FAIL(where_shapes, tg_where(tape, zeros(tape, TG_F64, 2, 1), W, W))
FAIL(where_dtypes, tg_where(tape, zeros(tape, TG_F32, 3, 4), W, W))
FAIL(masked_fill_grows, tg_masked_fill(tape, W, zeros(tape, TG_F64, 2, 1), 0.0))
FAIL(layer_norm_gain, tg_layer_norm(tape, W, 0, zeros(tape, TG_F64, 4, 1), NULL, 1e-5))
FAIL(layer_norm_eps, tg_layer_norm(tape, W, 1, NULL, NULL, -1.0))
FAIL(layer_norm_axis, tg_layer_norm(tape, W, 2, NULL, NULL, 1e-5))
FAIL(dropout_p, tg_dropout(tape, W, 1.0, &error_rng))
FAIL(dropout_negative_p, tg_dropout(tape, W, -0.1, &error_rng))
FAIL(dropout_no_rng, tg_dropout(tape, W, 0.5, NULL))

static const error_case error_cases[] = {
    {"tg_add", add_no_broadcast, TG_ERR_SHAPE, "tg_add: shapes do not broadcast: (3,4) and (2,4)"},
    {"tg_maximum", maximum_no_broadcast, TG_ERR_SHAPE,
     "tg_maximum: shapes do not broadcast: (3,4) and (4,3)"},
    {"tg_minimum", minimum_dtypes, TG_ERR_DTYPE,
     "tg_minimum: dtypes differ: input 1 is f64, input 2 is f32"},
    {"tg_matmul", matmul_inner, TG_ERR_SHAPE, "tg_matmul: inner dimensions differ: (3,4) @ (3,5)"},
    {"tg_matmul", matmul_1d, TG_ERR_SHAPE, "tg_matmul: needs 2-D operands: (3,4) @ (4,)"},
    {"tg_concat", concat_shapes, TG_ERR_SHAPE,
     "tg_concat: input 2 has shape (3,5), input 1 has (3,4): they must match outside axis 0"},
    {"tg_stack", stack_shapes, TG_ERR_SHAPE,
     "tg_stack: input 2 has shape (4,3), input 1 has (3,4): they must match"},
    {"tg_mse", mse_shapes, TG_ERR_SHAPE, "tg_mse: shapes differ: pred (3,4), target (4,3)"},
    {"tg_cross_entropy", ce_null_targets, TG_ERR_ARG,
     "tg_cross_entropy: targets is NULL (logits (3,4))"},
    {"tg_add", add_dtypes, TG_ERR_DTYPE, "tg_add: dtypes differ: input 1 is f64, input 2 is f32"},
    {"tg_concat", concat_dtypes, TG_ERR_DTYPE,
     "tg_concat: dtypes differ: input 1 is f64, input 2 is f32"},
    {"tg_mul", mul_null, TG_ERR_ARG, "tg_mul: input 2 is NULL"},
    {"tg_softmax", softmax_null, TG_ERR_ARG, "tg_softmax: input 1 is NULL"},
    {"tg_stack", stack_null, TG_ERR_ARG, "tg_stack: input 3 is NULL"},
    {"tg_concat", concat_none, TG_ERR_ARG, "tg_concat: needs at least one tensor (n = 0)"},
    {"tg_cross_entropy", ce_target_high, TG_ERR_ARG,
     "tg_cross_entropy: target 3 at position 2 is outside [0, 3) (logits (3,4), classes along "
     "axis 0)"},
    {"tg_cross_entropy", ce_target_negative, TG_ERR_ARG,
     "tg_cross_entropy: target -1 at position 1 is outside [0, 4) (logits (3,4), classes along "
     "axis 1)"},
    {"tg_cross_entropy", ce_target_count, TG_ERR_SHAPE,
     "tg_cross_entropy: 3 targets for logits (3,4) with classes along axis 0 (4 needed)"},
    {"tg_cross_entropy", ce_ignore_is_not_default, TG_ERR_ARG,
     "tg_cross_entropy: target -100 at position 1 is outside [0, 3) (logits (3,4), classes "
     "along axis 0)"},
    {"tg_cross_entropy_with", ce_with_target_high, TG_ERR_ARG,
     "tg_cross_entropy_with: target 4 at position 2 is outside [0, 4) (logits (3,4), classes "
     "along axis 1)"},
    {"tg_cross_entropy_with", ce_with_smoothing, TG_ERR_ARG,
     "tg_cross_entropy_with: label_smoothing 1.5 is outside [0, 1]"},
    {"tg_cross_entropy_with", ce_with_weights, TG_ERR_ARG,
     "tg_cross_entropy_with: class_weights[1] = -2 (needs a finite weight >= 0)"},
    {"tg_sequence_cross_entropy", seq_ce_2d, TG_ERR_SHAPE,
     "tg_sequence_cross_entropy: logits must be (n_y, m, T_x) (logits (3,4))"},
    {"tg_sequence_cross_entropy", seq_ce_length, TG_ERR_ARG,
     "tg_sequence_cross_entropy: lengths[1] = 3 is outside [1, T_x = 2]"},
    {"tg_sequence_cross_entropy", seq_ce_no_lengths, TG_ERR_ARG,
     "tg_sequence_cross_entropy: lengths is NULL (logits (3,2,2))"},
    {"tg_gather_columns", gather_id_high, TG_ERR_ARG,
     "tg_gather_columns: id 4 at position 2 is outside [0, 4) for table (3,4)"},
    {"tg_gather_columns", gather_id_negative, TG_ERR_ARG,
     "tg_gather_columns: id -2 at position 0 is outside [0, 4) for table (3,4)"},
    {"tg_gather_columns", gather_1d, TG_ERR_SHAPE,
     "tg_gather_columns: table must be 2-D (d, V), got (4,)"},
    {"tg_softmax", softmax_axis, TG_ERR_ARG, "tg_softmax: axis 2 is out of range for (3,4)"},
    {"tg_log_softmax", log_softmax_axis, TG_ERR_ARG,
     "tg_log_softmax: axis -3 is out of range for (3,4)"},
    {"tg_cross_entropy", ce_axis, TG_ERR_ARG, "tg_cross_entropy: axis 2 is out of range for (3,4)"},
    {"tg_concat", concat_axis, TG_ERR_ARG, "tg_concat: axis -3 is out of range for (3,4)"},
    {"tg_stack", stack_axis, TG_ERR_ARG, "tg_stack: axis 3 is out of range for stacking (3,4)"},
    {"tg_sum_axis", sum_axis_axis, TG_ERR_ARG, "tg_sum_axis: axis 5 is out of range for (3,4)"},
    {"tg_max_axis", max_axis_axis, TG_ERR_ARG, "tg_max_axis: axis -3 is out of range for (3,4)"},
    {"tg_max_axis", max_axis_empty, TG_ERR_SHAPE,
     "tg_max_axis: no elements along axis 0 of (0,4)"},
    {"tg_argmax", argmax_axis, TG_ERR_ARG, "tg_argmax: axis 2 is out of range for (3,4)"},
    {"tg_flip", flip_axis, TG_ERR_ARG, "tg_flip: axis 2 is out of range for (3,4)"},
    {"tg_cross_entropy", ce_reduction, TG_ERR_ARG, "tg_cross_entropy: unknown reduction 7"},
    {"tg_mse", mse_empty_mean, TG_ERR_SHAPE, "tg_mse: mean over no elements: (0,4) is empty"},
    {"tg_pow", pow_nan, TG_ERR_ARG, "tg_pow: the exponent nan is not finite"},
    {"tg_clamp", clamp_order, TG_ERR_ARG, "tg_clamp: lo = 1, hi = -1 (needs lo <= hi)"},
    {"tg_sqrt", sqrt_null, TG_ERR_ARG, "tg_sqrt: input 1 is NULL"},
    {"tg_where", where_shapes, TG_ERR_SHAPE,
     "tg_where: shapes do not broadcast: cond (2,1), a (3,4), b (3,4)"},
    {"tg_where", where_dtypes, TG_ERR_DTYPE,
     "tg_where: dtypes differ: input 1 is f32, input 2 is f64"},
    {"tg_masked_fill", masked_fill_grows, TG_ERR_SHAPE,
     "tg_masked_fill: mask (2,1) does not broadcast to x (3,4)"},
    {"tg_layer_norm", layer_norm_gain, TG_ERR_SHAPE,
     "tg_layer_norm: gain is (4,1); needs the 3 elements of axis 0 of x (3,4) along one "
     "dimension"},
    {"tg_layer_norm", layer_norm_eps, TG_ERR_ARG,
     "tg_layer_norm: eps = -1 (needs a finite eps >= 0)"},
    {"tg_layer_norm", layer_norm_axis, TG_ERR_ARG,
     "tg_layer_norm: axis 2 is out of range for (3,4)"},
    {"tg_dropout", dropout_p, TG_ERR_ARG, "tg_dropout: p = 1 is outside [0, 1)"},
    {"tg_dropout", dropout_negative_p, TG_ERR_ARG, "tg_dropout: p = -0.1 is outside [0, 1)"},
    {"tg_dropout", dropout_no_rng, TG_ERR_ARG,
     "tg_dropout: rng is NULL (needed to draw the mask for p = 0.5)"},
};
enum { N_ERROR_CASES = sizeof error_cases / sizeof error_cases[0] };
static int selected_errors[N_ERROR_CASES], n_selected_errors;

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
        tg_sqrt(tape, W),
        tg_maximum(tape, W, W),
        tg_where(tape, W, W, W),
        tg_masked_fill(tape, W, W, 0),
        tg_max_axis(tape, W, 0, false),
        tg_argmax(tape, W, 0, false),
        tg_layer_norm(tape, W, 0, NULL, NULL, 1e-5),
        tg_dropout(tape, W, 0.5, &error_rng),
        tg_flip(tape, W, 0),
        tg_cross_entropy_with(tape, W, 0, good_targets, 4, NULL),
    };
    for (size_t k = 0; k < sizeof later / sizeof later[0]; k++)
        ck_assert_msg(later[k] == NULL, "op %zu ran on an errored tape", k);
    ck_assert_str_eq(tg_tape_error(tape), message);
}

START_TEST(error_table_row)
{
    const error_case *c = &error_cases[selected_errors[_i]];
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_rng_seed(&error_rng, 6);
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
    ck_assert_ptr_null(tg_layer_norm(NULL, x, 0, NULL, NULL, 0));
    ck_assert_str_eq(tg_last_error(), "tg_layer_norm: tape is NULL");
    ck_assert_ptr_null(tg_dropout(NULL, x, 0.5, NULL));
    ck_assert_str_eq(tg_last_error(), "tg_dropout: tape is NULL");
    tg_tensor_free(x);
}
END_TEST

Suite *suite_ops(void)
{
    Suite *s = suite_create("ops");
    TCase *table = tcase_create("table");
    n_selected = n_selected_errors = 0;
    for (int k = 0; k < N_OP_CASES; k++)
        if (op_wanted(op_cases[k].op))
            selected[n_selected++] = k;
    for (int k = 0; k < N_ERROR_CASES; k++)
        if (op_wanted(error_cases[k].op))
            selected_errors[n_selected_errors++] = k;
    if (n_selected == 0)
        tcase_add_test(table, tg_op_names_a_row);
    tcase_add_loop_test(table, op_table_row, 0, n_selected);
    tcase_add_loop_test(table, error_table_row, 0, n_selected_errors);
    suite_add_tcase(s, table);
    if (getenv("TG_OP") && *getenv("TG_OP"))
        return s; /* one op's rows only */
    tcase_add_test(table, every_op_of_the_headers_has_a_row);
    TCase *numerics = tcase_create("numerics");
    tcase_add_loop_test(numerics, softmax_family_is_finite_and_correct_at_1000, 0, 2);
    tcase_add_loop_test(numerics, tied_and_near_tied_huge_logits, 0, N_TIED_ROWS);
    tcase_add_loop_test(numerics, sigmoid_and_tanh_are_finite_and_correct_at_1000, 0, 2);
    tcase_add_test(numerics, relu_keeps_nan);
    tcase_add_test(numerics, anomaly_names_the_op_that_made_the_nan);
    tcase_add_test(numerics, a_tensor_used_several_times_collects_the_sum);
    tcase_add_test(numerics, cross_entropy_and_gather_keep_their_own_ids);
    suite_add_tcase(s, numerics);
    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, ops_without_a_tape_fail_cleanly);
    suite_add_tcase(s, errors);
    return s;
}
