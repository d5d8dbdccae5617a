/* Elementwise ops: unary maps (tanh, sigmoid, exp, log, relu, affine, sqrt,
 * rsqrt, abs, pow, clamp) and binary ops with broadcasting (add, sub, mul,
 * div, maximum, minimum).
 *
 * Broadcasting costs no code in backward: an input is replaced by its
 * broadcast view (stride 0 along repeated axes) before the entry is
 * recorded, and the gradient view of that input has the same zero strides,
 * so `g_in += ...` sums the repeated elements by itself.
 *
 * Speed. tanh, sigmoid and exp come from vmath.h: its vector kernels on
 * contiguous rows, its scalar functions (the same bits) on strided ones.
 * Every other loop is written once and compiled twice by EACH_STRIDED, once
 * with the row's strides and once with the constant stride 1 for contiguous
 * rows, which the compiler vectorises. Either way an element is computed by
 * the same expression, so the layout of a tensor never changes a result.
 * Two layouts of broadcasting get loops of their own: a binary op whose
 * second (or first) operand repeats along the row, as a bias does, and a
 * gradient that collects a whole row into one element (the bias's
 * gradient), which sums the row in EACH_BLOCK partial sums instead of one
 * chain of dependent additions. */
#include <math.h>
#include <stdbool.h>

#include "../core/iter.h"
#include "each.h"
#include "internal.h"
#include "ops.h"
#include "vmath.h"

typedef enum {
    U_TANH, U_SIGMOID, U_EXP, U_LOG, U_RELU, U_AFFINE, U_SQRT, U_RSQRT, U_ABS, U_POW, U_CLAMP
} unary_kind;
typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN } binary_kind;

typedef struct {
    tg_dtype dtype;
    int kind;
    double scale, shift; /* U_AFFINE: scale, shift; U_POW: p; U_CLAMP: lo, hi */
    bool for_b;          /* binary backward: gradient of the second operand */
} ew_args;

/* ---- row loops ------------------------------------------------------------------ */

/* EACH_STRIDED(n_operands, body) runs body for element i = 0..n-1 of a row,
 * where element i of operand k is at index AT(k), in the blocks of EACH
 * (each.h). Contiguous rows (the iterator merges a contiguous tensor into
 * one) run with stride 1 known to the compiler: the loop shape that GCC
 * vectorises even at -O2. It also needs the operands to be restrict
 * parameters of the row function, which is true of every op here: an output
 * or a gradient being written never shares memory with the other operands
 * of its loop. */
#define EACH_STRIDED(N_OPERANDS, ...)                                         \
    do {                                                                      \
        if (unit_strides(N_OPERANDS, stride))                                 \
            EACH_WITH(unit, __VA_ARGS__);                                     \
        else                                                                  \
            EACH_WITH(stride, __VA_ARGS__);                                   \
    } while (0)
#define EACH_WITH(STEPS, ...)                                                 \
    do {                                                                      \
        const int64_t *step_ = STEPS;                                         \
        EACH(n, __VA_ARGS__);                                                 \
    } while (0)
#define AT(k) (i * step_[k])

/* SUM_EACH(n_operands, result, body): result = the sum over the row of what
 * body adds into sum_[lane_], for a gradient row whose operand 0 is one
 * element repeated (stride 0); the other operands are read with AT as in
 * EACH_STRIDED. One partial sum in double per position of a block of EACH,
 * added in order at the end: the same for any thread count, as every loop
 * here. */
#define SUM_EACH(N_OPERANDS, RESULT, ...)                                     \
    do {                                                                      \
        double sum_[EACH_BLOCK] = {0};                                        \
        if (unit_strides_from(1, N_OPERANDS, stride))                         \
            SUM_WITH(unit, __VA_ARGS__);                                      \
        else                                                                  \
            SUM_WITH(stride, __VA_ARGS__);                                    \
        RESULT = 0;                                                           \
        for (int k_ = 0; k_ < EACH_BLOCK; k_++)                               \
            RESULT += sum_[k_];                                               \
    } while (0)
#define SUM_WITH(STEPS, ...)                                                  \
    do {                                                                      \
        const int64_t *step_ = STEPS;                                         \
        int64_t blocked_ = n - n % EACH_BLOCK;                                \
        for (int64_t block_ = 0; block_ < blocked_; block_ += EACH_BLOCK)     \
            for (int64_t lane_ = 0; lane_ < EACH_BLOCK; lane_++) {            \
                int64_t i = block_ + lane_;                                   \
                __VA_ARGS__                                                   \
            }                                                                 \
        for (int64_t i = blocked_, lane_ = 0; i < n; i++, lane_++) {          \
            __VA_ARGS__                                                       \
        }                                                                     \
    } while (0)

static const int64_t unit[TG_ITER_MAX_OPERANDS] = {1, 1, 1, 1};
/* A binary op's row with one operand repeated: out, a contiguous, b broadcast
 * (or the other way round). */
static const int64_t unit_b0[TG_ITER_MAX_OPERANDS] = {1, 1, 0, 0};
static const int64_t unit_a0[TG_ITER_MAX_OPERANDS] = {1, 0, 1, 0};

static bool unit_strides_from(int first, int n_operands, const int64_t *stride)
{
    for (int k = first; k < n_operands; k++)
        if (stride[k] != 1)
            return false;
    return true;
}

static bool unit_strides(int n_operands, const int64_t *stride)
{
    return unit_strides_from(0, n_operands, stride);
}

/* ---- unary ---------------------------------------------------------------------- */

/* One row of y = f(x); operands: y, x. */
#define MAP(T, EXPR)                                                          \
    do {                                                                      \
        T *yp = out;                                                          \
        const T *xp = in;                                                     \
        EACH_STRIDED(2, {                                                     \
            double x = xp[AT(1)];                                             \
            yp[AT(0)] = (T)(EXPR);                                            \
        });                                                                   \
    } while (0)
#define MAP_ANY(EXPR)           \
    if (a->dtype == TG_F32)     \
        MAP(float, EXPR);       \
    else                        \
        MAP(double, EXPR)

/* tanh, sigmoid or exp (F) of a row through vmath.h. */
#define MATH(F)                                                               \
    do {                                                                      \
        bool contiguous = unit_strides(2, stride);                            \
        if (a->dtype == TG_F32 && contiguous)                                 \
            tg_v##F##_f32(n, in, out);                                        \
        else if (contiguous)                                                  \
            tg_v##F##_f64(n, in, out);                                        \
        else if (a->dtype == TG_F32)                                          \
            MAP(float, tg_math_##F##_f32((float)x));                          \
        else                                                                  \
            MAP(double, tg_math_##F##_f64(x));                                \
    } while (0)

static void unary_rows(const ew_args *a, int64_t n, void *restrict out,
                       const void *restrict in, const int64_t *stride)
{
    switch ((unary_kind)a->kind) {
    case U_TANH: MATH(tanh); break;
    case U_SIGMOID: MATH(sigmoid); break;
    case U_EXP: MATH(exp); break;
    case U_LOG: MAP_ANY(log(x)); break;
    case U_RELU: MAP_ANY(x <= 0 ? 0.0 : x); break; /* NaN <= 0 is false: NaN stays */
    case U_AFFINE: MAP_ANY(a->scale * x + a->shift); break;
    case U_SQRT: MAP_ANY(sqrt(x)); break;
    case U_RSQRT: MAP_ANY(1.0 / sqrt(x)); break;
    case U_ABS: MAP_ANY(fabs(x)); break;
    case U_POW: MAP_ANY(pow(x, a->scale)); break;
    case U_CLAMP: MAP_ANY(x < a->scale ? a->scale : x > a->shift ? a->shift : x); break;
    }
}

static void unary_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    unary_rows(ctx, n, ptr[0], ptr[1], stride);
}

/* One row of gx += g * f'(x, y); operands: gx, g, x, y. */
#define GRAD(T, EXPR)                                                         \
    do {                                                                      \
        T *gx = g_in;                                                         \
        const T *gp = g, *xp = x_in, *yp = y_in;                              \
        if (stride[0] == 0 && n > 1) {                                        \
            double row_sum;                                                   \
            SUM_EACH(4, row_sum, {                                            \
                double x = xp[AT(2)], y = yp[AT(3)];                          \
                (void)x;                                                      \
                (void)y;                                                      \
                sum_[lane_] += gp[AT(1)] * (EXPR);                            \
            });                                                               \
            gx[0] += (T)row_sum;                                              \
            break;                                                            \
        }                                                                     \
        EACH_STRIDED(4, {                                                     \
            double x = xp[AT(2)], y = yp[AT(3)];                              \
            (void)x;                                                          \
            (void)y;                                                          \
            gx[AT(0)] += (T)(gp[AT(1)] * (EXPR));                             \
        });                                                                   \
    } while (0)
#define GRAD_ANY(EXPR)          \
    if (a->dtype == TG_F32)     \
        GRAD(float, EXPR);      \
    else                        \
        GRAD(double, EXPR)

/* The same for gx += sign * g, which reads neither x nor y: two operands,
 * so that a broadcast x or y does not take the strided loop. */
#define PASS(T, SIGN)                                                         \
    do {                                                                      \
        T *gx = g_in;                                                         \
        const T *gp = g;                                                      \
        double sign_ = (SIGN);                                                \
        if (stride[0] == 0 && n > 1) {                                        \
            double row_sum;                                                   \
            SUM_EACH(2, row_sum, sum_[lane_] += gp[AT(1)];);                  \
            gx[0] += (T)(sign_ * row_sum);                                    \
            break;                                                            \
        }                                                                     \
        EACH_STRIDED(2, gx[AT(0)] += (T)(gp[AT(1)] * sign_););                \
    } while (0)
#define PASS_ANY(SIGN)          \
    if (a->dtype == TG_F32)     \
        PASS(float, SIGN);      \
    else                        \
        PASS(double, SIGN)

static void unary_grad_rows(const ew_args *a, int64_t n, void *restrict g_in,
                            const void *restrict g, const void *restrict x_in,
                            const void *restrict y_in, const int64_t *stride)
{
    switch ((unary_kind)a->kind) {
    case U_TANH: GRAD_ANY(1.0 - y * y); break;
    case U_SIGMOID: GRAD_ANY(y * (1.0 - y)); break;
    case U_EXP: GRAD_ANY(y); break;
    case U_LOG: GRAD_ANY(1.0 / x); break;
    case U_RELU: GRAD_ANY(x <= 0 ? 0.0 : 1.0); break; /* 1 at NaN: PyTorch passes it on */
    case U_AFFINE: GRAD_ANY(a->scale); break;
    case U_SQRT: GRAD_ANY(0.5 / y); break;
    case U_RSQRT: GRAD_ANY(-0.5 * y * y * y); break;
    case U_ABS: GRAD_ANY(x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0); break;
    case U_POW: GRAD_ANY(a->scale == 0 ? 0.0 : a->scale * pow(x, a->scale - 1)); break;
    /* x kept (bounds included) iff y == x; a clamped or NaN x passes nothing */
    case U_CLAMP: GRAD_ANY(x == y ? 1.0 : 0.0); break;
    }
}

static void unary_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    unary_grad_rows(ctx, n, ptr[0], ptr[1], ptr[2], ptr[3], stride);
}

static void unary_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (!gx)
        return;
    ew_args args = {e->out[0]->dtype, (int)e->ints[0], e->scalar, 0, false};
    const tg_tensor *operands[4] = {gx, tg_grad_out(e->out[0]), e->in[0], e->out[0]};
    tg_iter_tensors(4, operands, unary_grad_row, &args);
}

static tg_tensor *unary(tg_tape *tape, const char *name, tg_tensor *x, unary_kind kind,
                        double scale, double shift)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, name, 1, x))
        return NULL;
    if (kind == U_POW && !isfinite(scale))
        return tg_op_fail(&op, TG_ERR_ARG, "the exponent %g is not finite", scale);
    if (kind == U_CLAMP && !(scale <= shift))
        return tg_op_fail(&op, TG_ERR_ARG, "lo = %g, hi = %g (needs lo <= hi)", scale, shift);
    tg_tensor *out = tg_op_output(&op, x->dtype, x->ndim, x->shape);
    if (!out)
        return NULL;
    ew_args args = {x->dtype, (int)kind, scale, shift, false};
    const tg_tensor *operands[2] = {out, x};
    tg_iter_tensors(2, operands, unary_row, &args);
    tg_entry *e = tg_op_record(&op, unary_backward, out);
    if (e) {
        e->ints[0] = kind;
        e->scalar = scale;
    }
    return tg_op_finish(&op, out);
}

tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *x) { return unary(tape, "tg_tanh", x, U_TANH, 0, 0); }
tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *x)
{
    return unary(tape, "tg_sigmoid", x, U_SIGMOID, 0, 0);
}
tg_tensor *tg_exp(tg_tape *tape, tg_tensor *x) { return unary(tape, "tg_exp", x, U_EXP, 0, 0); }
tg_tensor *tg_log(tg_tape *tape, tg_tensor *x) { return unary(tape, "tg_log", x, U_LOG, 0, 0); }
tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x) { return unary(tape, "tg_relu", x, U_RELU, 0, 0); }
tg_tensor *tg_scale(tg_tape *tape, tg_tensor *x, double s)
{
    return unary(tape, "tg_scale", x, U_AFFINE, s, 0);
}
tg_tensor *tg_affine(tg_tape *tape, tg_tensor *x, double scale, double shift)
{
    return unary(tape, "tg_affine", x, U_AFFINE, scale, shift);
}
tg_tensor *tg_sqrt(tg_tape *tape, tg_tensor *x) { return unary(tape, "tg_sqrt", x, U_SQRT, 0, 0); }
tg_tensor *tg_rsqrt(tg_tape *tape, tg_tensor *x)
{
    return unary(tape, "tg_rsqrt", x, U_RSQRT, 0, 0);
}
tg_tensor *tg_abs(tg_tape *tape, tg_tensor *x) { return unary(tape, "tg_abs", x, U_ABS, 0, 0); }
tg_tensor *tg_pow(tg_tape *tape, tg_tensor *x, double p)
{
    return unary(tape, "tg_pow", x, U_POW, p, 0);
}
tg_tensor *tg_clamp(tg_tape *tape, tg_tensor *x, double lo, double hi)
{
    return unary(tape, "tg_clamp", x, U_CLAMP, lo, hi);
}

/* ---- binary ------------------------------------------------------------------- */

/* One row of out = a op b; operands: out, a, b. */
#define COMBINE(T, EXPR)                                                      \
    do {                                                                      \
        T *op_ = out;                                                         \
        const T *ap = a_in, *bp = b_in;                                       \
        if (unit_strides(3, stride))                                          \
            COMBINE_WITH(unit, T, EXPR);                                      \
        else if (stride[0] == 1 && stride[1] == 1 && stride[2] == 0)          \
            COMBINE_WITH(unit_b0, T, EXPR);                                   \
        else if (stride[0] == 1 && stride[1] == 0 && stride[2] == 1)          \
            COMBINE_WITH(unit_a0, T, EXPR);                                   \
        else                                                                  \
            COMBINE_WITH(stride, T, EXPR);                                    \
    } while (0)
#define COMBINE_WITH(STEPS, T, EXPR)                                          \
    EACH_WITH(STEPS, {                                                        \
        double x = ap[AT(1)], y = bp[AT(2)];                                  \
        op_[AT(0)] = (T)(EXPR);                                               \
    })
#define COMBINE_ANY(EXPR)       \
    if (a->dtype == TG_F32)     \
        COMBINE(float, EXPR);   \
    else                        \
        COMBINE(double, EXPR)

static void binary_rows(const ew_args *a, int64_t n, void *restrict out,
                        const void *restrict a_in, const void *restrict b_in,
                        const int64_t *stride)
{
    switch ((binary_kind)a->kind) {
    case B_ADD: COMBINE_ANY(x + y); break;
    case B_SUB: COMBINE_ANY(x - y); break;
    case B_MUL: COMBINE_ANY(x * y); break;
    case B_DIV: COMBINE_ANY(x / y); break;
    /* x + y: NaN when either is NaN */
    case B_MAX: COMBINE_ANY(x != x || y != y ? x + y : x > y ? x : y); break;
    case B_MIN: COMBINE_ANY(x != x || y != y ? x + y : x < y ? x : y); break;
    }
}

static void binary_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    binary_rows(ctx, n, ptr[0], ptr[1], ptr[2], stride);
}

/* Rows of the gradient of either operand: operands g_in, g, a, b, so x and y
 * in GRAD's expression are the values of a and b. */
static void binary_grad_rows(const ew_args *a, int64_t n, void *restrict g_in,
                             const void *restrict g, const void *restrict x_in,
                             const void *restrict y_in, const int64_t *stride)
{
    bool for_b = a->for_b;
    switch ((binary_kind)a->kind) {
    case B_ADD: PASS_ANY(1.0); break;
    case B_SUB: PASS_ANY(for_b ? -1.0 : 1.0); break;
    /* the operand is chosen outside the loops, which then vectorise */
    case B_MUL:
        if (for_b)
            GRAD_ANY(x);
        else
            GRAD_ANY(y);
        break;
    case B_DIV:
        if (for_b)
            GRAD_ANY(-x / (y * y));
        else
            GRAD_ANY(1.0 / y);
        break;
    /* the chosen operand takes g, a tie halves it; a NaN passes g to both */
    case B_MAX:
        if (for_b)
            GRAD_ANY(y < x ? 0.0 : x == y ? 0.5 : 1.0);
        else
            GRAD_ANY(x < y ? 0.0 : x == y ? 0.5 : 1.0);
        break;
    case B_MIN:
        if (for_b)
            GRAD_ANY(y > x ? 0.0 : x == y ? 0.5 : 1.0);
        else
            GRAD_ANY(x > y ? 0.0 : x == y ? 0.5 : 1.0);
        break;
    }
}

static void binary_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    binary_grad_rows(ctx, n, ptr[0], ptr[1], ptr[2], ptr[3], stride);
}

static void binary_backward(tg_tape *tape, const tg_entry *e)
{
    const tg_tensor *g = tg_grad_out(e->out[0]);
    for (int which = 0; which < 2; which++) {
        tg_tensor *gin = tg_grad_in(tape, e->in[which]);
        if (!gin)
            continue;
        ew_args args = {g->dtype, (int)e->ints[0], 0, 0, which == 1};
        const tg_tensor *operands[4] = {gin, g, e->in[0], e->in[1]};
        tg_iter_tensors(4, operands, binary_grad_row, &args);
    }
}

static tg_tensor *binary(tg_tape *tape, const char *name, tg_tensor *a, tg_tensor *b,
                         binary_kind kind)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, name, 2, a, b))
        return NULL;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    if (!tg_broadcast_shape(a, b, &ndim, shape)) {
        char sa[64], sb[64];
        return tg_op_fail(&op, TG_ERR_SHAPE, "shapes do not broadcast: %s and %s",
                          tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb));
    }
    tg_tensor *out = tg_op_output(&op, a->dtype, ndim, shape);
    if (!out)
        return NULL;
    tg_tensor ax, bx; /* the broadcast views; the entry keeps copies of them */
    tg_view_expand(&ax, a, ndim, shape);
    tg_view_expand(&bx, b, ndim, shape);
    op.in[0] = &ax;
    op.in[1] = &bx;
    ew_args args = {a->dtype, (int)kind, 0, 0, false};
    const tg_tensor *operands[3] = {out, &ax, &bx};
    tg_iter_tensors(3, operands, binary_row, &args);
    tg_entry *e = tg_op_record(&op, binary_backward, out);
    if (e)
        e->ints[0] = kind;
    return tg_op_finish(&op, out);
}

tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return binary(tape, "tg_add", a, b, B_ADD);
}
tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return binary(tape, "tg_sub", a, b, B_SUB);
}
tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return binary(tape, "tg_mul", a, b, B_MUL);
}
tg_tensor *tg_div(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return binary(tape, "tg_div", a, b, B_DIV);
}
tg_tensor *tg_maximum(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return binary(tape, "tg_maximum", a, b, B_MAX);
}
tg_tensor *tg_minimum(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return binary(tape, "tg_minimum", a, b, B_MIN);
}
