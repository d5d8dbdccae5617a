/* Ops that copy elements: a contiguous copy of any view, and the gather of
 * table columns behind an embedding lookup. Backward adds each gradient
 * element back where its value came from; a column gathered twice collects
 * both contributions. */
#include "internal.h"
#include "ops.h"

static void contiguous_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (gx)
        tg_accumulate(gx, tg_grad_out(e->out[0]), 1.0);
}

/* x (any strides) -> the same values, C-contiguous */
tg_tensor *tg_contiguous(tg_tape *tape, tg_tensor *x)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_contiguous", 1, x))
        return NULL;
    tg_tensor *out = tg_op_output(&op, x->dtype, x->ndim, x->shape);
    if (!out)
        return NULL;
    tg_tensor_copy_into(out, x);
    tg_op_record(&op, contiguous_backward, out);
    return tg_op_finish(&op, out);
}

/* g_table[:, ids[j]] += g[:, j], one column at a time in order, so repeated
 * ids add up. */
static void gather_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gtable = tg_grad_in(tape, e->in[0]);
    if (!gtable)
        return;
    const tg_tensor *g = tg_grad_out(e->out[0]);
    const int32_t *ids = e->saved;
    for (int64_t j = 0; j < e->ints[0]; j++) {
        tg_tensor from, to;
        tg_view_select(&from, g, 1, j);
        tg_view_select(&to, gtable, 1, ids[j]);
        tg_accumulate(&to, &from, 1.0);
    }
}

/* table (d, V), ids[0..n) in [0, V) -> (d, n) */
tg_tensor *tg_gather_columns(tg_tape *tape, tg_tensor *table, const int32_t *ids, int64_t n)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_gather_columns", 1, table))
        return NULL;
    char s[64];
    if (table->ndim != 2)
        return tg_op_fail(&op, TG_ERR_SHAPE, "table must be 2-D (d, V), got %s",
                          tg_shape_str(table, s, sizeof s));
    if (n < 0 || (n > 0 && !ids))
        return tg_op_fail(&op, TG_ERR_ARG, "needs n >= 0 ids (ids %s, n = %lld)",
                          ids ? "given" : "NULL", (long long)n);
    int64_t V = table->shape[1];
    for (int64_t j = 0; j < n; j++)
        if (ids[j] < 0 || ids[j] >= V)
            return tg_op_fail(&op, TG_ERR_ARG, "id %d at position %lld is outside [0, %lld) for "
                              "table %s",
                              (int)ids[j], (long long)j, (long long)V,
                              tg_shape_str(table, s, sizeof s));
    tg_tensor *out = tg_op_output(&op, table->dtype, TG_DIMS(table->shape[0], n));
    if (!out)
        return NULL;
    for (int64_t j = 0; j < n; j++) {
        tg_tensor from, to;
        tg_view_select(&from, table, 1, ids[j]);
        tg_view_select(&to, out, 1, j);
        tg_tensor_copy_into(&to, &from);
    }
    tg_entry *e = tg_op_record(&op, gather_backward, out);
    if (e) {
        e->ints[0] = n;
        e->saved = tg_tape_copy_ids(tape, ids, n);
    }
    return tg_op_finish(&op, out);
}
