/* Reductions: sum and mean, of everything or along one axis.
 *
 * Both directions are one accumulate over a broadcast view: forward adds x
 * into the output seen with stride 0 along the reduced axes, backward adds the
 * output's gradient, seen the same way, into x's gradient. */
#include "internal.h"
#include "ops.h"

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
    tg_tensor_fill(out, 0.0);
    tg_tensor view;
    broadcast_like(&view, out, x, axis);
    tg_accumulate(&view, x, scale);
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
