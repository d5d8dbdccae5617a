/* Selecting: tg_where(cond, a, b) and tg_masked_fill(x, mask, value).
 *
 * One kernel serves both: out = cond != 0 ? a : b over the broadcast views
 * of the three, and backward sends the gradient to a where cond holds and to
 * b elsewhere. masked_fill is where(mask, value, x) with the value in a 0-d
 * arena tensor, which carries no gradient. The chosen element is copied,
 * never computed with, so a recurrent state held through padded steps (see
 * nn/recurrent.c) keeps its exact bits. */
#include "internal.h"
#include "ops.h"

typedef struct {
    tg_dtype dtype;
    bool to_a; /* backward: the gradient of a (else of b) */
} where_args;

/* Operands: out, cond, a, b. */
static void where_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const where_args *w = ctx;
    for (int64_t i = 0; i < n; i++) {
        bool take_a = tg_row_get(ptr[1], w->dtype, i * stride[1]) != 0;
        double v = take_a ? tg_row_get(ptr[2], w->dtype, i * stride[2])
                          : tg_row_get(ptr[3], w->dtype, i * stride[3]);
        tg_row_set(ptr[0], w->dtype, i * stride[0], v);
    }
}

/* Operands: g_in, g, cond. */
static void where_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const where_args *w = ctx;
    for (int64_t i = 0; i < n; i++) {
        double g = tg_row_get(ptr[1], w->dtype, i * stride[1]);
        if ((tg_row_get(ptr[2], w->dtype, i * stride[2]) != 0) == w->to_a)
            tg_row_add(ptr[0], w->dtype, i * stride[0], g);
    }
}

static void where_backward(tg_tape *tape, const tg_entry *e)
{
    const tg_tensor *g = tg_grad_out(e->out[0]);
    for (int which = 1; which <= 2; which++) {
        tg_tensor *gin = tg_grad_in(tape, e->in[which]);
        if (!gin)
            continue;
        where_args args = {g->dtype, which == 1};
        const tg_tensor *operands[3] = {gin, g, e->in[0]};
        tg_iter_tensors(3, operands, where_grad_row, &args);
    }
}

/* op->in = {cond, a, b}, already begun; the output has their broadcast
 * shape, or the shape `want` when it is not NULL (masked_fill keeps x's). */
static tg_tensor *select_op(tg_op *op, const tg_tensor *want)
{
    tg_tensor joint = {.ndim = 0};
    char s0[64], s1[64], s2[64];
    bool fits = tg_broadcast_shape(op->in[0], op->in[1], &joint.ndim, joint.shape) &&
                tg_broadcast_shape(&joint, op->in[2], &joint.ndim, joint.shape);
    if (want && !(fits && tg_tensor_same_shape(&joint, want)))
        return tg_op_fail(op, TG_ERR_SHAPE, "mask %s does not broadcast to x %s",
                          tg_shape_str(op->in[0], s0, sizeof s0),
                          tg_shape_str(want, s1, sizeof s1));
    if (!fits)
        return tg_op_fail(op, TG_ERR_SHAPE, "shapes do not broadcast: cond %s, a %s, b %s",
                          tg_shape_str(op->in[0], s0, sizeof s0),
                          tg_shape_str(op->in[1], s1, sizeof s1),
                          tg_shape_str(op->in[2], s2, sizeof s2));
    tg_tensor *out = tg_op_output(op, op->in[0]->dtype, joint.ndim, joint.shape);
    tg_tensor *views = out ? tg_tape_alloc(op->tape, 3 * sizeof *views) : NULL;
    if (!views)
        return NULL;
    for (int k = 0; k < 3; k++) { /* the entry keeps the broadcast views */
        tg_view_expand(&views[k], op->in[k], joint.ndim, joint.shape);
        views[k].flags = TG_TENSOR_ARENA;
        op->in[k] = &views[k];
    }
    where_args args = {out->dtype, false};
    const tg_tensor *operands[4] = {out, &views[0], &views[1], &views[2]};
    tg_iter_tensors(4, operands, where_row, &args);
    tg_op_record(op, where_backward, out);
    return tg_op_finish(op, out);
}

/* cond, a, b (broadcasting) -> cond != 0 ? a : b */
tg_tensor *tg_where(tg_tape *tape, tg_tensor *cond, tg_tensor *a, tg_tensor *b)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_where", 3, cond, a, b))
        return NULL;
    return select_op(&op, NULL);
}

/* x, mask (broadcasting to x) -> x with value where mask != 0 */
tg_tensor *tg_masked_fill(tg_tape *tape, tg_tensor *x, tg_tensor *mask, double value)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_masked_fill", 2, x, mask))
        return NULL;
    tg_tensor *fill = tg_tape_tensor(tape, x->dtype, 0, NULL);
    if (!fill)
        return NULL;
    tg_row_set(fill->data, fill->dtype, 0, value);
    op.n_in = 3;
    op.in[2] = x; /* where(mask, value, x) */
    op.in[1] = fill;
    op.in[0] = mask;
    return select_op(&op, x);
}
