/* Softmax and log-softmax along one axis.
 *
 * Both come from the lane's log-sum-exp in two parts, max and logsum =
 * log(sum(exp(x - max))): log-softmax is (x - max) - logsum and softmax its
 * exponential. No exponent is ever above 0, so logits of +-1000 give finite,
 * correct values; and x - max is exact for the largest logits, so tied
 * logits of 1e300 still give log 2 (x - (max + logsum) would round it away
 * from about 1e15 up). */
#include <math.h>

#include "internal.h"
#include "ops.h"
#include "vmath.h"

typedef struct {
    tg_dtype dtype;
    bool log; /* log-softmax */
} softmax_args;

/* Operands: y, x. */
static void softmax_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr,
                         const int64_t *stride)
{
    const softmax_args *a = ctx;
    (void)pos;
    tg_lse lse = tg_lane_lse(ptr[1], a->dtype, n, stride[1]);
    for (int64_t i = 0; i < n; i++) {
        double z = (tg_row_get(ptr[1], a->dtype, i * stride[1]) - lse.max) - lse.logsum;
        tg_row_set(ptr[0], a->dtype, i * stride[0], a->log ? z : tg_math_exp_f64(z));
    }
}

/* Operands: gx, g, y.
 *   softmax:     gx += y * (g - sum(g * y))
 *   log-softmax: gx += g - exp(y) * sum(g)
 * The sum is complete before gx is touched, and gx is only ever added to
 * element by element, so a broadcast gx (stride 0) collects every term. */
static void softmax_grad_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr,
                              const int64_t *stride)
{
    const softmax_args *a = ctx;
    (void)pos;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = tg_row_get(ptr[1], a->dtype, i * stride[1]);
        s += a->log ? g : g * tg_row_get(ptr[2], a->dtype, i * stride[2]);
    }
    for (int64_t i = 0; i < n; i++) {
        double g = tg_row_get(ptr[1], a->dtype, i * stride[1]);
        double y = tg_row_get(ptr[2], a->dtype, i * stride[2]);
        double gx = a->log ? g - tg_math_exp_f64(y) * s : y * (g - s);
        tg_row_add(ptr[0], a->dtype, i * stride[0], gx);
    }
}

static void softmax_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (!gx)
        return;
    softmax_args args = {gx->dtype, e->ints[1] != 0};
    const tg_tensor *operands[3] = {gx, tg_grad_out(e->out[0]), e->out[0]};
    tg_iter_lanes(3, operands, (int)e->ints[0], softmax_grad_lane, &args);
}

/* x (..., n, ...) -> same shape, normalised along axis. */
static tg_tensor *softmax(tg_tape *tape, const char *name, tg_tensor *x, int axis, bool log)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, name, 1, x) || !tg_op_axis(&op, x, &axis))
        return NULL;
    tg_tensor *out = tg_op_output(&op, x->dtype, x->ndim, x->shape);
    if (!out)
        return NULL;
    softmax_args args = {x->dtype, log};
    const tg_tensor *operands[2] = {out, x};
    tg_iter_lanes(2, operands, axis, softmax_lane, &args);
    tg_entry *e = tg_op_record(&op, softmax_backward, out);
    if (e) {
        e->ints[0] = axis;
        e->ints[1] = log;
    }
    return tg_op_finish(&op, out);
}

tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    return softmax(tape, "tg_softmax", x, axis, false);
}

tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    return softmax(tape, "tg_log_softmax", x, axis, true);
}
