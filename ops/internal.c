/* Helpers shared by the ops (see internal.h). */
#include "internal.h"

#include "../core/iter.h"
#include "gemm.h"

bool tg_tensor_self_overlaps(const tg_tensor *t)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->strides[d] == 0 && t->shape[d] > 1)
            return true;
    return false;
}

typedef struct {
    tg_dtype dtype;
    double alpha;
} accumulate_args;

static void accumulate_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const accumulate_args *a = ctx;
    if (a->dtype == TG_F32) {
        float *d = ptr[0], alpha = (float)a->alpha;
        const float *s = ptr[1];
        for (int64_t i = 0; i < n; i++)
            d[i * stride[0]] += alpha * s[i * stride[1]];
    } else {
        double *d = ptr[0], alpha = a->alpha;
        const double *s = ptr[1];
        for (int64_t i = 0; i < n; i++)
            d[i * stride[0]] += alpha * s[i * stride[1]];
    }
}

void tg_accumulate(tg_tensor *dst, const tg_tensor *src, double alpha)
{
    accumulate_args args = {dst->dtype, alpha};
    const tg_tensor *operands[2] = {dst, src};
    tg_iter_tensors(2, operands, accumulate_row, &args);
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
