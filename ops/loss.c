/* Losses: cross-entropy of logits against class ids (fused with
 * log-softmax), and mean squared error. Both return a scalar.
 *
 * Cross-entropy saves only a copy of the targets: backward recomputes the
 * softmax from the logits, one lane at a time, instead of keeping a tensor of
 * probabilities as large as the logits on the tape. */
#include <math.h>

#include "../core/iter.h"
#include "internal.h"
#include "ops.h"

/* 1/count for a mean, 1 for a sum; fails the op for an unknown reduction or
 * a mean over nothing. */
static bool reduction_scale(tg_op *op, tg_reduction reduction, int64_t count,
                            const tg_tensor *x, double *scale)
{
    char s[64];
    if (reduction != TG_REDUCE_MEAN && reduction != TG_REDUCE_SUM) {
        tg_op_fail(op, TG_ERR_ARG, "unknown reduction %d", (int)reduction);
        return false;
    }
    if (reduction == TG_REDUCE_MEAN && count == 0) {
        tg_op_fail(op, TG_ERR_SHAPE, "mean over no elements: %s is empty",
                   tg_shape_str(x, s, sizeof s));
        return false;
    }
    *scale = reduction == TG_REDUCE_MEAN ? 1.0 / (double)count : 1.0;
    return true;
}

/* ---- cross-entropy ----------------------------------------------------------- */

typedef struct {
    tg_dtype dtype;
    const int32_t *targets; /* one per lane, in C order */
    double loss;            /* forward: summed over lanes */
    double coef;            /* backward: d loss / d (one lane's loss) */
} ce_args;

/* Operands: x. One position's loss: lse(x) - x[target]. */
static void ce_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr, const int64_t *stride)
{
    ce_args *a = ctx;
    double lse = tg_lane_logsumexp(ptr[0], a->dtype, n, stride[0]);
    a->loss += lse - tg_row_get(ptr[0], a->dtype, a->targets[pos] * stride[0]);
}

/* Operands: gx, x. gx += (softmax(x) - onehot(target)) * coef. */
static void ce_grad_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr,
                         const int64_t *stride)
{
    const ce_args *a = ctx;
    double lse = tg_lane_logsumexp(ptr[1], a->dtype, n, stride[1]);
    for (int64_t i = 0; i < n; i++) {
        double p = exp(tg_row_get(ptr[1], a->dtype, i * stride[1]) - lse);
        tg_row_add(ptr[0], a->dtype, i * stride[0], (p - (i == a->targets[pos])) * a->coef);
    }
}

static void ce_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (!gx)
        return;
    double g = tg_tensor_item(tg_grad_out(e->out[0]));
    ce_args args = {gx->dtype, e->saved, 0, g * e->scalar};
    const tg_tensor *operands[2] = {gx, e->in[0]};
    tg_iter_lanes(2, operands, (int)e->ints[0], ce_grad_lane, &args);
}

/* logits (..., n_classes, ...), targets (one per other position) -> scalar */
tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, int class_axis,
                            const int32_t *targets, int64_t n_targets, tg_reduction reduction)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_cross_entropy", 1, logits) ||
        !tg_op_axis(&op, logits, &class_axis))
        return NULL;
    char s[64];
    int64_t n_classes = logits->shape[class_axis], positions = 1;
    for (int d = 0; d < logits->ndim; d++)
        positions *= d == class_axis ? 1 : logits->shape[d];
    if (positions > 0 && !targets)
        return tg_op_fail(&op, TG_ERR_ARG, "targets is NULL (logits %s)",
                          tg_shape_str(logits, s, sizeof s));
    if (n_targets != positions)
        return tg_op_fail(&op, TG_ERR_SHAPE,
                          "%lld targets for logits %s with classes along axis %d (%lld needed)",
                          (long long)n_targets, tg_shape_str(logits, s, sizeof s), class_axis,
                          (long long)positions);
    for (int64_t p = 0; p < positions; p++)
        if (targets[p] < 0 || targets[p] >= n_classes)
            return tg_op_fail(&op, TG_ERR_ARG,
                              "target %d at position %lld is outside [0, %lld) (logits %s, "
                              "classes along axis %d)",
                              (int)targets[p], (long long)p, (long long)n_classes,
                              tg_shape_str(logits, s, sizeof s), class_axis);
    double scale;
    if (!reduction_scale(&op, reduction, positions, logits, &scale))
        return NULL;
    tg_tensor *out = tg_op_output(&op, logits->dtype, 0, NULL);
    if (!out)
        return NULL;
    ce_args args = {logits->dtype, targets, 0, 0};
    const tg_tensor *operands[1] = {logits};
    tg_iter_lanes(1, operands, class_axis, ce_lane, &args);
    tg_row_set(out->data, out->dtype, 0, args.loss * scale);
    tg_entry *e = tg_op_record(&op, ce_backward, out);
    if (e) {
        e->ints[0] = class_axis;
        e->scalar = scale;
        e->saved = tg_tape_copy_ids(tape, targets, positions);
    }
    return tg_op_finish(&op, out);
}

/* ---- mean squared error ---------------------------------------------------------- */

typedef struct {
    tg_dtype dtype;
    double sum;  /* forward: sum of squared differences */
    double coef; /* backward: d loss / d (pred - target), signed for the operand */
} mse_args;

/* Operands: pred, target. */
static void mse_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    mse_args *a = ctx;
    for (int64_t i = 0; i < n; i++) {
        double d = tg_row_get(ptr[0], a->dtype, i * stride[0]) -
                   tg_row_get(ptr[1], a->dtype, i * stride[1]);
        a->sum += d * d;
    }
}

/* Operands: g_in, pred, target. g_in += coef * (pred - target). */
static void mse_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const mse_args *a = ctx;
    for (int64_t i = 0; i < n; i++) {
        double d = tg_row_get(ptr[1], a->dtype, i * stride[1]) -
                   tg_row_get(ptr[2], a->dtype, i * stride[2]);
        tg_row_add(ptr[0], a->dtype, i * stride[0], a->coef * d);
    }
}

static void mse_backward(tg_tape *tape, const tg_entry *e)
{
    double coef = 2.0 * tg_tensor_item(tg_grad_out(e->out[0])) * e->scalar;
    for (int which = 0; which < 2; which++) {
        tg_tensor *gin = tg_grad_in(tape, e->in[which]);
        if (!gin)
            continue;
        mse_args args = {gin->dtype, 0, which == 0 ? coef : -coef};
        const tg_tensor *operands[3] = {gin, e->in[0], e->in[1]};
        tg_iter_tensors(3, operands, mse_grad_row, &args);
    }
}

/* pred, target (same shape) -> scalar */
tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target, tg_reduction reduction)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_mse", 2, pred, target))
        return NULL;
    if (!tg_tensor_same_shape(pred, target)) {
        char sp[64], st[64];
        return tg_op_fail(&op, TG_ERR_SHAPE, "shapes differ: pred %s, target %s",
                          tg_shape_str(pred, sp, sizeof sp), tg_shape_str(target, st, sizeof st));
    }
    double scale;
    if (!reduction_scale(&op, reduction, tg_tensor_numel(pred), pred, &scale))
        return NULL;
    tg_tensor *out = tg_op_output(&op, pred->dtype, 0, NULL);
    if (!out)
        return NULL;
    mse_args args = {pred->dtype, 0, 0};
    const tg_tensor *operands[2] = {pred, target};
    tg_iter_tensors(2, operands, mse_row, &args);
    tg_row_set(out->data, out->dtype, 0, args.sum * scale);
    tg_entry *e = tg_op_record(&op, mse_backward, out);
    if (e)
        e->scalar = scale;
    return tg_op_finish(&op, out);
}
