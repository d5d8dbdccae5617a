/* Reductions: sum and mean, of everything or along one axis; the maximum
 * along an axis and its position.
 *
 * A sum adds its elements in an order fixed by their logical indices, never
 * by the layout: element i (in C order of the whole tensor, or along the
 * lane) goes to partial sum i % SUM_BLOCK, in double, and the partial sums
 * are added in order at the end. So a transposed, strided or contiguous
 * tensor with the same values gives the same bits, and the partial sums
 * keep the adds independent. Backward adds the output's gradient, seen with
 * stride 0 along the reduced axes, into x's gradient. The maximum walks
 * lanes and keeps, per lane, the index that backward sends the gradient to. */
#include <math.h>

#include "internal.h"
#include "ops.h"

enum { SUM_BLOCK = 16 };

/* Partial sums of elements numbered from `next` on (their logical index). */
typedef struct {
    tg_dtype dtype;
    double part[SUM_BLOCK];
    int64_t next;
    double scale;     /* lanes: out[pos] = scale * sum */
    void *out;        /* lanes: one value per lane, contiguous */
} sum_args;

static void add_run(sum_args *a, int64_t n, const void *p, int64_t stride)
{
    for (int64_t i = 0; i < n; i++, a->next++)
        a->part[a->next % SUM_BLOCK] += tg_row_get(p, a->dtype, i * stride);
}

static double total(sum_args *a)
{
    double sum = 0;
    for (int k = 0; k < SUM_BLOCK; k++) {
        sum += a->part[k];
        a->part[k] = 0;
    }
    a->next = 0;
    return sum;
}

/* Every element: rows come in C order, so `next` counts in C order. */
static void sum_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    add_run(ctx, n, ptr[0], stride[0]);
}

/* One lane along the reduced axis per output element. */
static void sum_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr, const int64_t *stride)
{
    sum_args *a = ctx;
    add_run(a, n, ptr[0], stride[0]);
    tg_row_set(a->out, a->dtype, pos, a->scale * total(a));
}

/* out (keepdim shape, or scalar) as a view with x's shape. */
static void broadcast_like(tg_tensor *view, const tg_tensor *reduced, const tg_tensor *x, int axis)
{
    tg_tensor keep = *reduced;
    if (axis >= 0) { /* reinsert the reduced axis with size 1 */
        keep.ndim = x->ndim;
        for (int d = 0; d < x->ndim; d++) {
            keep.shape[d] = d == axis ? 1 : x->shape[d];
        }
        int64_t stride = 1;
        for (int d = x->ndim - 1; d >= 0; d--) {
            keep.strides[d] = stride;
            stride *= keep.shape[d];
        }
    }
    tg_view_expand(view, &keep, x->ndim, x->shape);
}

static void reduce_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (!gx)
        return;
    tg_tensor g;
    broadcast_like(&g, tg_grad_out(e->out[0]), e->in[0], (int)e->ints[0]);
    tg_accumulate(gx, &g, e->scalar);
}

/* axis < 0 with all == true: reduce everything. */
static tg_tensor *reduce(tg_tape *tape, const char *name, tg_tensor *x, bool all, int axis,
                         bool keepdim, bool mean)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, name, 1, x))
        return NULL;
    int ndim = 0;
    int64_t shape[TG_MAX_DIMS];
    int64_t count = tg_tensor_numel(x);
    if (!all) {
        if (!tg_op_axis(&op, x, &axis))
            return NULL;
        count = x->shape[axis];
        for (int d = 0; d < x->ndim; d++)
            if (d != axis || keepdim)
                shape[ndim++] = d == axis ? 1 : x->shape[d];
    } else {
        axis = -1;
    }
    if (mean && count == 0) {
        char s[64];
        return tg_op_fail(&op, TG_ERR_SHAPE, "mean of no elements (%s)",
                          tg_shape_str(x, s, sizeof s));
    }
    tg_tensor *out = tg_op_output(&op, x->dtype, ndim, shape);
    if (!out)
        return NULL;
    double scale = mean ? 1.0 / (double)count : 1.0;
    sum_args args = {.dtype = x->dtype, .scale = scale, .out = out->data};
    const tg_tensor *operands[1] = {x};
    if (all) {
        tg_iter_tensors(1, operands, sum_row, &args);
        tg_row_set(out->data, out->dtype, 0, scale * total(&args));
    } else if (tg_tensor_numel(out) > 0) {
        tg_tensor_fill(out, 0.0); /* lanes of no elements leave their zeros */
        tg_iter_lanes(1, operands, axis, sum_lane, &args);
    }
    tg_entry *e = tg_op_record(&op, reduce_backward, out);
    if (e) {
        e->ints[0] = axis;
        e->scalar = scale;
    }
    return tg_op_finish(&op, out);
}

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x) { return reduce(tape, "tg_sum", x, true, 0, false, false); }
tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x) { return reduce(tape, "tg_mean", x, true, 0, false, true); }
tg_tensor *tg_sum_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return reduce(tape, "tg_sum_axis", x, false, axis, keepdim, false);
}
tg_tensor *tg_mean_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return reduce(tape, "tg_mean_axis", x, false, axis, keepdim, true);
}

/* ---- maximum and its position ------------------------------------------------------ */

typedef struct {
    tg_dtype dtype;
    void *out;       /* forward: one value per lane, contiguous */
    bool index;      /* forward: write the index instead of the value */
    int64_t *at;     /* the chosen index of every lane (forward writes, backward reads) */
    const void *g;   /* backward: the output's gradient, one per lane */
} max_args;

/* Operands: x (forward) or gx (backward). The first largest element, a NaN
 * before anything (as torch.max: a NaN is the maximum). */
static void max_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr, const int64_t *stride)
{
    max_args *a = ctx;
    if (a->g) {
        tg_row_add(ptr[0], a->dtype, a->at[pos] * stride[0], tg_row_get(a->g, a->dtype, pos));
        return;
    }
    int64_t best = 0;
    double v = tg_row_get(ptr[0], a->dtype, 0);
    for (int64_t i = 1; i < n && !isnan(v); i++) {
        double x = tg_row_get(ptr[0], a->dtype, i * stride[0]);
        if (x > v || isnan(x)) {
            v = x;
            best = i;
        }
    }
    if (a->at)
        a->at[pos] = best;
    tg_row_set(a->out, a->dtype, pos, a->index ? (double)best : v);
}

static void max_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (!gx)
        return;
    max_args args = {gx->dtype, NULL, false, e->saved, tg_grad_out(e->out[0])->data};
    const tg_tensor *operands[1] = {gx};
    tg_iter_lanes(1, operands, (int)e->ints[0], max_lane, &args);
}

/* x (..., n, ...) -> the largest value (or its index) of every lane along axis */
static tg_tensor *maximum(tg_tape *tape, const char *name, tg_tensor *x, int axis, bool keepdim,
                          bool index)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, name, 1, x) || !tg_op_axis(&op, x, &axis))
        return NULL;
    char s[64];
    if (x->shape[axis] == 0)
        return tg_op_fail(&op, TG_ERR_SHAPE, "no elements along axis %d of %s", axis,
                          tg_shape_str(x, s, sizeof s));
    int ndim = 0;
    int64_t shape[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        if (d != axis || keepdim)
            shape[ndim++] = d == axis ? 1 : x->shape[d];
    tg_tensor *out = tg_op_output(&op, x->dtype, ndim, shape);
    if (!out)
        return NULL;
    bool record = op.needs_grad && !index; /* an index has no gradient */
    int64_t lanes = tg_tensor_numel(out);
    max_args args = {x->dtype, out->data, index, NULL, NULL};
    if (record && !(args.at = tg_tape_alloc(tape, sizeof *args.at * (size_t)lanes)))
        return NULL;
    const tg_tensor *operands[1] = {x};
    tg_iter_lanes(1, operands, axis, max_lane, &args);
    tg_entry *e = record ? tg_op_record(&op, max_backward, out) : NULL;
    if (e) {
        e->ints[0] = axis;
        e->saved = args.at;
    }
    return tg_op_finish(&op, out);
}

tg_tensor *tg_max_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return maximum(tape, "tg_max_axis", x, axis, keepdim, false);
}

tg_tensor *tg_argmax(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return maximum(tape, "tg_argmax", x, axis, keepdim, true);
}
