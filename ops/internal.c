/* Helpers shared by the ops (see internal.h). */
#include "internal.h"

#include <math.h>
#include <string.h>

#include "../core/iter.h"
#include "gemm.h"
#include "vmath.h"

bool tg_tensor_self_overlaps(const tg_tensor *t)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->strides[d] == 0 && t->shape[d] > 1)
            return true;
    return false;
}

void tg_gemm_accumulate(tg_tape *tape, tg_tensor *dst, const tg_tensor *a, const tg_tensor *b)
{
    if (!tg_tensor_self_overlaps(dst)) {
        tg_gemm(1.0, a, b, 1.0, dst);
        return;
    }
    tg_tensor *tmp = tg_tape_tensor(tape, dst->dtype, dst->ndim, dst->shape);
    if (!tmp)
        return;
    tg_gemm(1.0, a, b, 0.0, tmp);
    tg_accumulate(dst, tmp, 1.0);
}

bool tg_broadcast_shape(const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int da = d - (n - a->ndim), db = d - (n - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1;
        int64_t sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return false;
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return true;
}

bool tg_normalize_axis(const tg_tensor *x, int *axis)
{
    int a = *axis < 0 ? *axis + x->ndim : *axis;
    if (a < 0 || a >= x->ndim)
        return false;
    *axis = a;
    return true;
}

bool tg_op_axis(tg_op *op, const tg_tensor *x, int *axis)
{
    if (tg_normalize_axis(x, axis))
        return true;
    char s[64];
    tg_op_fail(op, TG_ERR_ARG, "axis %d is out of range for %s", *axis,
               tg_shape_str(x, s, sizeof s));
    return false;
}

typedef struct {
    tg_lane_fn lane;
    void *ctx;
    int n_operands;
    int64_t len, pos;
    int64_t stride[TG_ITER_MAX_OPERANDS]; /* along the lane */
    int64_t elsize[TG_ITER_MAX_OPERANDS];
} lanes_args;

/* tg_iter_rows walks the other axes as an odometer, last axis fastest, so
 * counting lanes as they come numbers them in C order. */
static void lanes_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    lanes_args *a = ctx;
    void *p[TG_ITER_MAX_OPERANDS];
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < a->n_operands; k++)
            p[k] = (char *)ptr[k] + i * stride[k] * a->elsize[k];
        a->lane(a->ctx, a->pos++, a->len, p, a->stride);
    }
}

void tg_iter_lanes(int n, const tg_tensor *const *t, int axis, tg_lane_fn lane, void *ctx)
{
    lanes_args args = {.lane = lane, .ctx = ctx, .n_operands = n, .len = t[0]->shape[axis]};
    int64_t outer[TG_MAX_DIMS], strides[TG_ITER_MAX_OPERANDS][TG_MAX_DIMS];
    tg_iter_operands ops = {.n_operands = n};
    int nd = 0;
    for (int d = 0; d < t[0]->ndim; d++)
        if (d != axis)
            outer[nd++] = t[0]->shape[d];
    for (int k = 0; k < n; k++) {
        for (int d = 0, j = 0; d < t[k]->ndim; d++)
            if (d != axis)
                strides[k][j++] = t[k]->strides[d];
        args.stride[k] = t[k]->strides[axis];
        args.elsize[k] = (int64_t)tg_dtype_size(t[k]->dtype);
        ops.base[k] = tg_tensor_base(t[k]);
        ops.elsize[k] = tg_dtype_size(t[k]->dtype);
        ops.strides[k] = strides[k];
    }
    tg_iter_rows(nd, outer, &ops, lanes_row, &args);
}

tg_lse tg_lane_lse(const void *x, tg_dtype dtype, int64_t n, int64_t stride)
{
    tg_lse r = {-INFINITY, 0};
    for (int64_t i = 0; i < n; i++)
        r.max = fmax(r.max, tg_row_get(x, dtype, i * stride));
    if (isinf(r.max)) /* empty, or an infinite logit: nothing finite to subtract */
        return r;
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += tg_math_exp_f64(tg_row_get(x, dtype, i * stride) - r.max);
    r.logsum = log(sum);
    return r;
}

int32_t *tg_tape_copy_ids(tg_tape *tape, const int32_t *ids, int64_t n)
{
    size_t bytes;
    if (n < 0 || tg_mul_overflows((size_t)n, sizeof *ids, &bytes)) {
        tg_tape_fail(tape, TG_ERR_OVERFLOW, "tg_tape_copy_ids: %lld ids do not fit in memory",
                     (long long)n);
        return NULL;
    }
    int32_t *copy = tg_tape_alloc(tape, bytes);
    if (copy && n > 0)
        memcpy(copy, ids, bytes);
    return copy;
}
