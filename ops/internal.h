/* Helpers shared by the ops (not part of the public API). */
#ifndef TG_OPS_INTERNAL_H
#define TG_OPS_INTERNAL_H

#include <stdbool.h>

#include "../core/tape.h"
#include "../core/tensor.h"

/* True when two elements of t share memory (a broadcast gradient view). */
bool tg_tensor_self_overlaps(const tg_tensor *t);

/* dst += alpha * src elementwise (same shape and dtype); correct even when
 * dst is a broadcast view whose elements share memory: those collect the
 * sum. This is also how reductions sum: accumulate x into a stride-0 view. */
void tg_accumulate(tg_tensor *dst, const tg_tensor *src, double alpha);

/* dst += a @ b for 2-D views, also when dst is a broadcast gradient view
 * (then through a temporary from the tape's arena). */
void tg_gemm_accumulate(tg_tape *tape, tg_tensor *dst, const tg_tensor *a, const tg_tensor *b);

/* Broadcast shape of a and b (numpy rules) into ndim/shape; false if they
 * do not broadcast. */
bool tg_broadcast_shape(const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape);

/* Normalise a possibly negative axis for x; false if out of range. */
bool tg_normalize_axis(const tg_tensor *x, int *axis);

#endif
