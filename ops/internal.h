/* Helpers shared by the ops (not part of the public API). */
#ifndef TG_OPS_INTERNAL_H
#define TG_OPS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/iter.h" /* tg_accumulate */
#include "../core/tape.h"
#include "../core/tensor.h"

/* True when two elements of t share memory (a broadcast gradient view). */
bool tg_tensor_self_overlaps(const tg_tensor *t);

/* dst += a @ b for 2-D views, also when dst is a broadcast gradient view
 * (then through a temporary from the tape's arena). */
void tg_gemm_accumulate(tg_tape *tape, tg_tensor *dst, const tg_tensor *a, const tg_tensor *b);

/* Broadcast shape of a and b (numpy rules) into ndim/shape; false if they
 * do not broadcast. */
bool tg_broadcast_shape(const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape);

/* Normalise a possibly negative axis for x; false if out of range. */
bool tg_normalize_axis(const tg_tensor *x, int *axis);
/* The same, failing the op with "axis 3 is out of range for (4,5)". */
bool tg_op_axis(tg_op *op, const tg_tensor *x, int *axis);

/* Element i (already multiplied by the stride) of a row of either dtype,
 * read and written as double; kernels that are not hot stay dtype-generic. */
static inline double tg_row_get(const void *row, tg_dtype dtype, int64_t i)
{
    return dtype == TG_F32 ? (double)((const float *)row)[i] : ((const double *)row)[i];
}
static inline void tg_row_set(void *row, tg_dtype dtype, int64_t i, double v)
{
    if (dtype == TG_F32)
        ((float *)row)[i] = (float)v;
    else
        ((double *)row)[i] = v;
}
static inline void tg_row_add(void *row, tg_dtype dtype, int64_t i, double v)
{
    if (dtype == TG_F32)
        ((float *)row)[i] += (float)v;
    else
        ((double *)row)[i] += v;
}

/* A lane: the n elements along one axis at one position of the other axes.
 * `pos` numbers the positions in C order of the other axes; operand k
 * starts at ptr[k] and steps by stride[k] elements. */
typedef void (*tg_lane_fn)(void *ctx, int64_t pos, int64_t n, void *const *ptr,
                           const int64_t *stride);

/* Call lane once per position of the axes other than `axis`, in C order,
 * for tensors t[0..n) (n <= TG_ITER_MAX_OPERANDS) that all have t[0]'s shape. */
void tg_iter_lanes(int n, const tg_tensor *const *t, int axis, tg_lane_fn lane, void *ctx);

/* The log-sum-exp of a lane in two parts, max and logsum = log(sum(exp(x -
 * max))), kept apart: (x - max) - logsum is exact where max + logsum would
 * round log 2 away (tied logits of 1e16). The exponentials are vmath's
 * scalar ones, the bits of its vector exp, so a lane and a contiguous block
 * of positions (the row path of cross-entropy) agree exactly. An empty lane
 * or an infinite maximum gives logsum 0 and max as it is. */
typedef struct {
    double max, logsum;
} tg_lse;
tg_lse tg_lane_lse(const void *x, tg_dtype dtype, int64_t n, int64_t stride);

/* A copy of ids[0..n) in the tape's arena, so that the caller may free its
 * array before backward; NULL with the error recorded when it does not fit. */
int32_t *tg_tape_copy_ids(tg_tape *tape, const int32_t *ids, int64_t n);

#endif
