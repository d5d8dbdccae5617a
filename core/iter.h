/* Walk several same-shaped strided tensors row by row.
 *
 * Elementwise kernels are written once as a loop over one row
 * (n elements, each operand with its own stride); tg_iter_rows calls that
 * loop for every row of the shape. Dimensions that are laid out back to back
 * in every operand are merged first, so contiguous tensors become one long
 * row and the per-row call costs nothing measurable. */
#ifndef TG_ITER_H
#define TG_ITER_H

#include <stdint.h>

#include "tensor.h"

#define TG_ITER_MAX_OPERANDS 4

/* A row: n elements; operand k starts at ptr[k] (bytes already applied)
 * and advances by stride[k] elements. */
typedef void (*tg_row_fn)(void *ctx, int64_t n, void *const *ptr, const int64_t *stride);

/* Visit every element of `shape` once. Operand k is described by its base
 * pointer (element 0 of the view, i.e. data + offset*elsize), its element size
 * and its strides (which may be 0 for broadcast). */
typedef struct {
    int n_operands;
    void *base[TG_ITER_MAX_OPERANDS];
    size_t elsize[TG_ITER_MAX_OPERANDS];
    const int64_t *strides[TG_ITER_MAX_OPERANDS];
} tg_iter_operands;

void tg_iter_rows(int ndim, const int64_t *shape, const tg_iter_operands *ops, tg_row_fn row,
                  void *ctx);

/* Address of element 0 of a tensor view. */
static inline void *tg_tensor_base(const tg_tensor *t)
{
    return (char *)t->data + t->offset * (int64_t)tg_dtype_size(t->dtype);
}

/* Shorthand: walk tensors t[0..n) that all have the shape of t[0]. */
void tg_iter_tensors(int n, const tg_tensor *const *t, tg_row_fn row, void *ctx);

/* dst += alpha * src elementwise (same shape and dtype); correct even when
 * dst is a broadcast view whose elements share memory: those collect the
 * sum. This is also how reductions sum: accumulate x into a stride-0 view. */
void tg_accumulate(tg_tensor *dst, const tg_tensor *src, double alpha);

#endif
