/* Joining: concat along an existing axis, stack along a new one.
 *
 * Stack is concat of its inputs seen with a size-1 axis inserted (a view, no
 * copy), so one forward and one backward serve both: each input is copied
 * into its slice of the output, and receives that slice of the output's
 * gradient. */
#include <string.h>

#include "internal.h"
#include "ops.h"

static void join_backward(tg_tape *tape, const tg_entry *e)
{
    int axis = (int)e->ints[0];
    const tg_tensor *g = tg_grad_out(e->out[0]);
    int64_t start = 0;
    for (int i = 0; i < e->n_in; i++) {
        int64_t len = e->in[i]->shape[axis];
        tg_tensor *gx = tg_grad_in(tape, e->in[i]);
        if (gx) {
            tg_tensor part;
            tg_view_slice(&part, g, axis, start, start + len, 1);
            tg_accumulate(gx, &part, 1.0);
        }
        start += len;
    }
}

/* op->in[0..n) laid side by side along axis (already checked for in[0]). */
static tg_tensor *join(tg_op *op, int axis)
{
    const tg_tensor *first = op->in[0];
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[axis] = 0;
    for (int i = 0; i < op->n_in; i++) {
        const tg_tensor *x = op->in[i];
        bool fits = x->ndim == first->ndim;
        for (int d = 0; fits && d < x->ndim; d++)
            fits = d == axis || x->shape[d] == first->shape[d];
        if (!fits) {
            char sx[64], sf[64];
            return tg_op_fail(op, TG_ERR_SHAPE,
                              "input %d has shape %s, input 1 has %s: they must match outside "
                              "axis %d",
                              i + 1, tg_shape_str(x, sx, sizeof sx),
                              tg_shape_str(first, sf, sizeof sf), axis);
        }
        if (shape[axis] > INT64_MAX - x->shape[axis])
            return tg_op_fail(op, TG_ERR_OVERFLOW, "the joined size along axis %d overflows",
                              axis);
        shape[axis] += x->shape[axis];
    }
    tg_tensor *out = tg_op_output(op, first->dtype, first->ndim, shape);
    if (!out)
        return NULL;
    int64_t start = 0;
    for (int i = 0; i < op->n_in; i++) {
        tg_tensor part;
        int64_t len = op->in[i]->shape[axis];
        tg_view_slice(&part, out, axis, start, start + len, 1);
        tg_tensor_copy_into(&part, op->in[i]);
        start += len;
    }
    tg_entry *e = tg_op_record(op, join_backward, out);
    if (e)
        e->ints[0] = axis;
    return tg_op_finish(op, out);
}

/* xs[i] (..., n_i, ...) along axis -> (..., sum n_i, ...) */
tg_tensor *tg_concat(tg_tape *tape, int n, tg_tensor *const *xs, int axis)
{
    tg_op op;
    if (!tg_op_begin_array(&op, tape, "tg_concat", xs ? n : 0, xs))
        return NULL;
    if (n < 1 || !xs)
        return tg_op_fail(&op, TG_ERR_ARG, "needs at least one tensor (n = %d)", n);
    if (!tg_op_axis(&op, xs[0], &axis))
        return NULL;
    return join(&op, axis);
}

/* n tensors of shape S -> S with n inserted at axis */
tg_tensor *tg_stack(tg_tape *tape, int n, tg_tensor *const *xs, int axis)
{
    tg_op op;
    if (!tg_op_begin_array(&op, tape, "tg_stack", xs ? n : 0, xs))
        return NULL;
    if (n < 1 || !xs)
        return tg_op_fail(&op, TG_ERR_ARG, "needs at least one tensor (n = %d)", n);
    char s0[64], si[64];
    int ndim = xs[0]->ndim + 1, new_axis = axis < 0 ? axis + ndim : axis;
    if (ndim > TG_MAX_DIMS)
        return tg_op_fail(&op, TG_ERR_SHAPE, "stacking %s would need %d dimensions (at most %d)",
                          tg_shape_str(xs[0], s0, sizeof s0), ndim, TG_MAX_DIMS);
    if (new_axis < 0 || new_axis >= ndim)
        return tg_op_fail(&op, TG_ERR_ARG, "axis %d is out of range for stacking %s", axis,
                          tg_shape_str(xs[0], s0, sizeof s0));
    tg_tensor *views = tg_tape_alloc(tape, sizeof *views * (size_t)n);
    if (!views)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (!tg_tensor_same_shape(xs[i], xs[0]))
            return tg_op_fail(&op, TG_ERR_SHAPE, "input %d has shape %s, input 1 has %s: they "
                              "must match",
                              i + 1, tg_shape_str(xs[i], si, sizeof si),
                              tg_shape_str(xs[0], s0, sizeof s0));
        /* xs[i] with a size-1 axis inserted at new_axis */
        tg_tensor *v = &views[i];
        *v = *xs[i];
        v->grad = NULL;
        tg_tape_tag(tape, v);
        v->ndim = ndim;
        for (int d = ndim - 1; d > new_axis; d--) {
            v->shape[d] = v->shape[d - 1];
            v->strides[d] = v->strides[d - 1];
        }
        v->shape[new_axis] = 1;
        v->strides[new_axis] = 0;
        op.in[i] = v;
    }
    return join(&op, new_axis);
}
