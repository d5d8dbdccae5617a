/* Views on the tape (declared in ops.h): each wraps a tg_view_* function of
 * core/tensor.h, but for tg_flip, which is made here (a negative stride).
 * The view lives in the tape's arena and is recorded as an entry without a
 * backward rule, so that tape pictures draw it; its gradient already lies
 * inside x's. tg_detach records nothing: it stops gradients. */
#include "internal.h"
#include "ops.h"

/* Run a tg_view_* function into an arena tensor and record a view entry
 * (no backward rule: the view's gradient already lies inside x's). */
static tg_tensor *finish_view(tg_op *op, tg_tensor *view, tg_status status)
{
    if (status != TG_OK)
        return tg_op_fail(op, status, "%s", tg_last_error());
    view->flags = TG_TENSOR_ARENA;
    if (op->needs_grad) {
        tg_tensor *root = view->grad_root;
        tg_op_record(op, NULL, view);
        view->grad_root = root; /* a view is not a root of its own */
    }
    return tg_op_finish(op, view);
}

#define TAPE_VIEW(NAME, CALL)                                          \
    tg_op op;                                                          \
    if (!tg_op_begin(&op, tape, NAME, 1, x))                           \
        return NULL;                                                   \
    tg_tensor *view = tg_tape_alloc(tape, sizeof *view);               \
    if (!view)                                                         \
        return NULL;                                                   \
    return finish_view(&op, view, CALL)

tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x, int dim0, int dim1)
{
    TAPE_VIEW("tg_transpose", tg_view_transpose(view, x, dim0, dim1));
}

tg_tensor *tg_permute(tg_tape *tape, tg_tensor *x, const int *perm)
{
    TAPE_VIEW("tg_permute", tg_view_permute(view, x, perm));
}

tg_tensor *tg_slice(tg_tape *tape, tg_tensor *x, int dim, int64_t start, int64_t stop,
                    int64_t step)
{
    TAPE_VIEW("tg_slice", tg_view_slice(view, x, dim, start, stop, step));
}

tg_tensor *tg_select(tg_tape *tape, tg_tensor *x, int dim, int64_t index)
{
    TAPE_VIEW("tg_select", tg_view_select(view, x, dim, index));
}

tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape)
{
    TAPE_VIEW("tg_reshape", tg_view_reshape(view, x, ndim, shape));
}

tg_tensor *tg_expand(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape)
{
    TAPE_VIEW("tg_expand", tg_view_expand(view, x, ndim, shape));
}

/* x reversed along axis: element i is x's element n-1-i, read from the other
 * end with the stride negated. */
tg_tensor *tg_flip(tg_tape *tape, tg_tensor *x, int axis)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_flip", 1, x) || !tg_op_axis(&op, x, &axis))
        return NULL;
    tg_tensor *view = tg_tape_alloc(tape, sizeof *view);
    if (!view)
        return NULL;
    *view = *x;
    view->grad = NULL;
    if (x->shape[axis] > 1) {
        view->offset += (x->shape[axis] - 1) * x->strides[axis];
        view->strides[axis] = -x->strides[axis];
    }
    return finish_view(&op, view, TG_OK);
}

tg_tensor *tg_detach(tg_tape *tape, tg_tensor *x)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_detach", 1, x))
        return NULL;
    tg_tensor *view = tg_tape_alloc(tape, sizeof *view);
    if (!view)
        return NULL;
    tg_view_detach(view, x);
    view->flags = TG_TENSOR_ARENA;
    return view;
}
