/* Losses: cross-entropy of logits against class ids (fused with
 * log-softmax), and mean squared error. Both return a scalar.
 *
 * Cross-entropy saves a copy of the targets and one log-sum-exp per
 * position: backward recomputes the softmax from the logits instead of
 * keeping a tensor of probabilities as large as the logits on the tape. */
#include <math.h>

#include "../core/iter.h"
#include "internal.h"
#include "ops.h"
#include "vmath.h"

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

/* What the entry keeps: its own copy of the targets, and the log-sum-exp of
 * every position, so that backward needs one exponential per logit. */
typedef struct {
    const int32_t *targets; /* one per position, in C order */
    double *lse;            /* one per position */
} ce_saved;

typedef struct {
    tg_dtype dtype;
    const int32_t *targets; /* one per lane, in C order */
    double *lse;            /* forward: written when not NULL; backward: read */
    double loss;            /* forward: summed over lanes */
    double coef;            /* backward: d loss / d (one lane's loss) */
} ce_args;

/* Operands: x. One position's loss: lse(x) - x[target]. */
static void ce_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr, const int64_t *stride)
{
    ce_args *a = ctx;
    double lse = tg_lane_logsumexp(ptr[0], a->dtype, n, stride[0]);
    if (a->lse)
        a->lse[pos] = lse;
    a->loss += lse - tg_row_get(ptr[0], a->dtype, a->targets[pos] * stride[0]);
}

/* Operands: gx, x. gx += (softmax(x) - onehot(target)) * coef. */
static void ce_grad_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr,
                         const int64_t *stride)
{
    const ce_args *a = ctx;
    double lse = a->lse[pos];
    for (int64_t i = 0; i < n; i++) {
        double p = exp(tg_row_get(ptr[1], a->dtype, i * stride[1]) - lse);
        tg_row_add(ptr[0], a->dtype, i * stride[0], (p - (i == a->targets[pos])) * a->coef);
    }
}

/* The common layout, logits (classes, positions...) with the positions
 * contiguous (a linear layer's output (n_y, m, T_x), or its transpose's
 * (positions, classes) rows), runs across positions instead of along
 * lanes: a chunk of positions at a time, one class row after the other, so
 * every loop is over contiguous memory and the exponentials go through
 * vmath's vector exp. Each position computes the same formula, with its
 * classes summed in the same order, as ce_lane. */
enum { CE_CHUNK = 256 };

/* True when the positions of t (all axes but `axis`) are one run of stride
 * 1 in C order; *class_stride is then the stride along `axis`. */
static bool positions_contiguous(const tg_tensor *t, int axis, int64_t *class_stride)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (d == axis || t->shape[d] == 1)
            continue;
        if (t->strides[d] != expect)
            return false;
        expect *= t->shape[d];
    }
    *class_stride = t->strides[axis];
    return true;
}

/* lse[k] of positions p0 .. p0+np-1 (x points at position 0, class 0). */
#define CE_LSE(T)                                                                      \
    do {                                                                               \
        const T *x_ = x;                                                               \
        for (int64_t k = 0; k < np; k++)                                               \
            mx[k] = -INFINITY;                                                         \
        for (int64_t c = 0; c < n_classes; c++) {                                      \
            const T *row = x_ + c * class_stride + p0;                                 \
            for (int64_t k = 0; k < np; k++) /* as fmax: a NaN logit is skipped */     \
                mx[k] = row[k] > mx[k] ? row[k] : mx[k];                               \
        }                                                                              \
        for (int64_t k = 0; k < np; k++)                                               \
            sum[k] = 0;                                                                \
        for (int64_t c = 0; c < n_classes; c++) {                                      \
            const T *row = x_ + c * class_stride + p0;                                 \
            for (int64_t k = 0; k < np; k++)                                           \
                tmp[k] = row[k] - mx[k];                                               \
            tg_vexp_f64(np, tmp, tmp);                                                 \
            for (int64_t k = 0; k < np; k++)                                           \
                sum[k] += tmp[k];                                                      \
        }                                                                              \
    } while (0)

/* Forward over contiguous positions: the summed loss; lse (P values) kept when not NULL. */
static double ce_forward_rows(tg_dtype dtype, const void *x, int64_t n_classes,
                              int64_t class_stride, int64_t P, const int32_t *targets,
                              double *lse)
{
    double loss = 0, mx[CE_CHUNK], sum[CE_CHUNK], tmp[CE_CHUNK];
    for (int64_t p0 = 0; p0 < P; p0 += CE_CHUNK) {
        int64_t np = P - p0 < CE_CHUNK ? P - p0 : CE_CHUNK;
        if (dtype == TG_F32)
            CE_LSE(float);
        else
            CE_LSE(double);
        for (int64_t k = 0; k < np; k++) {
            /* an infinite maximum (or none): nothing finite to subtract */
            double l = isinf(mx[k]) ? mx[k] : mx[k] + log(sum[k]);
            if (lse)
                lse[p0 + k] = l;
            loss += l - tg_row_get(x, dtype, targets[p0 + k] * class_stride + p0 + k);
        }
    }
    return loss;
}

/* gx += (exp(x - lse) - onehot(target)) * coef over contiguous positions. */
#define CE_GRAD(T)                                                                     \
    do {                                                                               \
        const T *x_ = x;                                                               \
        T *g_ = gx;                                                                    \
        for (int64_t c = 0; c < n_classes; c++) {                                      \
            const T *row = x_ + c * class_stride + p0;                                 \
            T *grow = g_ + c * class_stride + p0;                                      \
            for (int64_t k = 0; k < np; k++)                                           \
                tmp[k] = row[k] - lse[p0 + k];                                         \
            tg_vexp_f64(np, tmp, tmp);                                                 \
            for (int64_t k = 0; k < np; k++)                                           \
                grow[k] += (T)((tmp[k] - (targets[p0 + k] == c)) * coef);               \
        }                                                                              \
    } while (0)

static void ce_backward_rows(tg_dtype dtype, void *gx, const void *x, int64_t n_classes,
                             int64_t class_stride, int64_t P, const int32_t *targets,
                             const double *lse, double coef)
{
    double tmp[CE_CHUNK];
    for (int64_t p0 = 0; p0 < P; p0 += CE_CHUNK) {
        int64_t np = P - p0 < CE_CHUNK ? P - p0 : CE_CHUNK;
        if (dtype == TG_F32)
            CE_GRAD(float);
        else
            CE_GRAD(double);
    }
}

static void ce_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (!gx)
        return;
    const ce_saved *saved = e->saved;
    const tg_tensor *x = e->in[0];
    int axis = (int)e->ints[0];
    double coef = tg_tensor_item(tg_grad_out(e->out[0])) * e->scalar;
    int64_t sx, sg, P = tg_tensor_numel(x) / (x->shape[axis] ? x->shape[axis] : 1);
    if (positions_contiguous(x, axis, &sx) && positions_contiguous(gx, axis, &sg) &&
        sx == sg && !tg_tensor_self_overlaps(gx)) {
        ce_backward_rows(x->dtype, tg_tensor_base(gx), tg_tensor_base(x), x->shape[axis], sx,
                         P, saved->targets, saved->lse, coef);
        return;
    }
    ce_args args = {gx->dtype, saved->targets, saved->lse, 0, coef};
    const tg_tensor *operands[2] = {gx, x};
    tg_iter_lanes(2, operands, axis, ce_grad_lane, &args);
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
    ce_saved *saved = NULL;
    if (op.needs_grad) { /* what backward will need, before the forward fills lse */
        size_t bytes;
        if (tg_mul_overflows((size_t)positions, sizeof(double), &bytes))
            return tg_op_fail(&op, TG_ERR_OVERFLOW, "%lld positions do not fit in memory",
                              (long long)positions);
        saved = tg_tape_alloc(tape, sizeof *saved);
        double *lse = saved ? tg_tape_alloc(tape, bytes) : NULL;
        const int32_t *ids = lse ? tg_tape_copy_ids(tape, targets, positions) : NULL;
        if (!ids)
            return NULL;
        *saved = (ce_saved){ids, lse};
    }
    int64_t class_stride;
    double loss;
    if (n_classes > 0 && positions_contiguous(logits, class_axis, &class_stride)) {
        loss = ce_forward_rows(logits->dtype, tg_tensor_base(logits), n_classes, class_stride,
                               positions, targets, saved ? saved->lse : NULL);
    } else {
        ce_args args = {logits->dtype, targets, saved ? saved->lse : NULL, 0, 0};
        const tg_tensor *operands[1] = {logits};
        tg_iter_lanes(1, operands, class_axis, ce_lane, &args);
        loss = args.loss;
    }
    tg_row_set(out->data, out->dtype, 0, loss * scale);
    tg_entry *e = tg_op_record(&op, ce_backward, out);
    if (e) {
        e->ints[0] = class_axis;
        e->scalar = scale;
        e->saved = saved;
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
