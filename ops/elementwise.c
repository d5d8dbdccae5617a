/* Elementwise ops: unary maps (tanh, sigmoid, exp, log, relu, affine) and
 * binary ops with broadcasting (add, sub, mul, div).
 *
 * Broadcasting costs no code in backward: an input is replaced by its
 * broadcast view (stride 0 along repeated axes) before the entry is
 * recorded, and the gradient view of that input has the same zero strides,
 * so `g_in += ...` sums the repeated elements by itself. */
#include <math.h>

#include "../core/iter.h"
#include "internal.h"
#include "ops.h"

typedef enum { U_TANH, U_SIGMOID, U_EXP, U_LOG, U_RELU, U_AFFINE } unary_kind;
typedef enum { B_ADD, B_SUB, B_MUL, B_DIV } binary_kind;

typedef struct {
    tg_dtype dtype;
    int kind;
    double scale, shift; /* for U_AFFINE */
    bool for_b;          /* binary backward: gradient of the second operand */
} ew_args;

/* 1/(1+e^-x) without overflow: for x < 0 use e^x/(1+e^x). */
static double stable_sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* One row of y = f(x); operands: y, x. */
#define MAP(T, EXPR)                                                          \
    do {                                                                      \
        T *yp = ptr[0];                                                       \
        const T *xp = ptr[1];                                                 \
        for (int64_t i = 0; i < n; i++) {                                     \
            double x = xp[i * stride[1]];                                     \
            yp[i * stride[0]] = (T)(EXPR);                                    \
        }                                                                     \
    } while (0)
#define MAP_ANY(EXPR)           \
    if (a->dtype == TG_F32)     \
        MAP(float, EXPR);       \
    else                        \
        MAP(double, EXPR)

static void unary_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const ew_args *a = ctx;
    switch ((unary_kind)a->kind) {
    case U_TANH: MAP_ANY(tanh(x)); break;
    case U_SIGMOID: MAP_ANY(stable_sigmoid(x)); break;
    case U_EXP: MAP_ANY(exp(x)); break;
    case U_LOG: MAP_ANY(log(x)); break;
    case U_RELU: MAP_ANY(x > 0 ? x : 0.0); break;
    case U_AFFINE: MAP_ANY(a->scale * x + a->shift); break;
    }
}

/* One row of gx += g * f'(x, y); operands: gx, g, x, y. */
#define GRAD(T, EXPR)                                                         \
    do {                                                                      \
        T *gx = ptr[0];                                                       \
        const T *gp = ptr[1], *xp = ptr[2], *yp = ptr[3];                     \
        for (int64_t i = 0; i < n; i++) {                                     \
            double x = xp[i * stride[2]], y = yp[i * stride[3]];              \
            (void)x;                                                          \
            (void)y;                                                          \
            gx[i * stride[0]] += (T)(gp[i * stride[1]] * (EXPR));             \
        }                                                                     \
    } while (0)
#define GRAD_ANY(EXPR)          \
    if (a->dtype == TG_F32)     \
        GRAD(float, EXPR);      \
    else                        \
        GRAD(double, EXPR)

static void unary_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const ew_args *a = ctx;
    switch ((unary_kind)a->kind) {
    case U_TANH: GRAD_ANY(1.0 - y * y); break;
    case U_SIGMOID: GRAD_ANY(y * (1.0 - y)); break;
    case U_EXP: GRAD_ANY(y); break;
    case U_LOG: GRAD_ANY(1.0 / x); break;
    case U_RELU: GRAD_ANY(x > 0 ? 1.0 : 0.0); break;
    case U_AFFINE: GRAD_ANY(a->scale); break;
    }
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

/* ---- binary ------------------------------------------------------------------- */

/* One row of out = a op b; operands: out, a, b. */
#define COMBINE(T, EXPR)                                                      \
    do {                                                                      \
        T *op_ = ptr[0];                                                      \
        const T *ap = ptr[1], *bp = ptr[2];                                   \
        for (int64_t i = 0; i < n; i++) {                                     \
            double x = ap[i * stride[1]], y = bp[i * stride[2]];              \
            op_[i * stride[0]] = (T)(EXPR);                                   \
        }                                                                     \
    } while (0)
#define COMBINE_ANY(EXPR)       \
    if (a->dtype == TG_F32)     \
        COMBINE(float, EXPR);   \
    else                        \
        COMBINE(double, EXPR)

static void binary_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const ew_args *a = ctx;
    switch ((binary_kind)a->kind) {
    case B_ADD: COMBINE_ANY(x + y); break;
    case B_SUB: COMBINE_ANY(x - y); break;
    case B_MUL: COMBINE_ANY(x * y); break;
    case B_DIV: COMBINE_ANY(x / y); break;
    }
}

/* Rows of the gradient of either operand: operands g_in, g, a, b, so x and y
 * in GRAD's expression are the values of a and b. */
static void binary_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const ew_args *a = ctx;
    bool for_b = a->for_b;
    switch ((binary_kind)a->kind) {
    case B_ADD: GRAD_ANY(1.0); break;
    case B_SUB: GRAD_ANY(for_b ? -1.0 : 1.0); break;
    case B_MUL: GRAD_ANY(for_b ? x : y); break;
    case B_DIV: GRAD_ANY(for_b ? -x / (y * y) : 1.0 / y); break;
    }
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
