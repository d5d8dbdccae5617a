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

/* The gather's element loops, row by row: along a row the output is
 * written in order and the table read at the ids (often ascending), where
 * a column at a time would stride through memory d times per column.
 * Strides are in elements. Backward adds g[r, j] into g_table[r, ids[j]]
 * in increasing j, so repeated ids add up in the same order as before. */
#define GATHER_LOOPS(T)                                                                        \
    static void gather_##T(const T *tab, int64_t trs, int64_t tcs, T *out, int64_t ors,       \
                           int64_t ocs, int64_t d, const int32_t *ids, int64_t n)              \
    {                                                                                          \
        for (int64_t r = 0; r < d; r++)                                                        \
            for (int64_t j = 0; j < n; j++)                                                    \
                out[r * ors + j * ocs] = tab[r * trs + ids[j] * tcs];                          \
    }                                                                                          \
    static void scatter_add_##T(const T *g, int64_t grs, int64_t gcs, T *gtab, int64_t trs,   \
                                int64_t tcs, int64_t d, const int32_t *ids, int64_t n)         \
    {                                                                                          \
        for (int64_t r = 0; r < d; r++)                                                        \
            for (int64_t j = 0; j < n; j++)                                                    \
                gtab[r * trs + ids[j] * tcs] += g[r * grs + j * gcs];                          \
    }
GATHER_LOOPS(float)
GATHER_LOOPS(double)
#undef GATHER_LOOPS

static void gather_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gt = tg_grad_in(tape, e->in[0]);
    if (!gt)
        return;
    const tg_tensor *g = tg_grad_out(e->out[0]);
    const int32_t *ids = e->saved;
    const int64_t d = g->shape[0], n = e->ints[0];
    if (g->dtype == TG_F32)
        scatter_add_float((const float *)tg_tensor_base(g), g->strides[0], g->strides[1], (float *)tg_tensor_base(gt),
                          gt->strides[0], gt->strides[1], d, ids, n);
    else
        scatter_add_double((const double *)tg_tensor_base(g), g->strides[0], g->strides[1],
                           (double *)tg_tensor_base(gt), gt->strides[0], gt->strides[1], d, ids, n);
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
    const int64_t d = table->shape[0];
    if (table->dtype == TG_F32)
        gather_float((const float *)tg_tensor_base(table), table->strides[0], table->strides[1],
                     (float *)tg_tensor_base(out), out->strides[0], out->strides[1], d, ids, n);
    else
        gather_double((const double *)tg_tensor_base(table), table->strides[0], table->strides[1],
                      (double *)tg_tensor_base(out), out->strides[0], out->strides[1], d, ids, n);
    tg_entry *e = tg_op_record(&op, gather_backward, out);
    if (e) {
        e->ints[0] = n;
        e->saved = tg_tape_copy_ids(tape, ids, n);
    }
    return tg_op_finish(&op, out);
}
