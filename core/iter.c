/* Row iteration over strided tensors, and accumulation built on it (see iter.h). */
#include "iter.h"

#include <string.h>

/* Merge dimension d into d+1 when, for every operand, stepping once in d
 * equals stepping shape[d+1] times in d+1. Size-1 dimensions are dropped. */
static int coalesce(int ndim, int64_t *shape, int n_ops, int64_t strides[][TG_MAX_DIMS])
{
    int out = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1)
            continue;
        if (out > 0) {
            bool mergeable = true;
            for (int k = 0; k < n_ops; k++)
                if (strides[k][out - 1] != strides[k][d] * shape[d])
                    mergeable = false;
            if (mergeable) {
                shape[out - 1] *= shape[d];
                for (int k = 0; k < n_ops; k++)
                    strides[k][out - 1] = strides[k][d];
                continue;
            }
        }
        shape[out] = shape[d];
        for (int k = 0; k < n_ops; k++)
            strides[k][out] = strides[k][d];
        out++;
    }
    return out;
}

void tg_iter_rows(int ndim, const int64_t *shape_in, const tg_iter_operands *ops, tg_row_fn row,
                  void *ctx)
{
    int n_ops = ops->n_operands;
    int64_t shape[TG_MAX_DIMS];
    int64_t strides[TG_ITER_MAX_OPERANDS][TG_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        if (shape_in[d] == 0)
            return;
        shape[d] = shape_in[d];
        for (int k = 0; k < n_ops; k++)
            strides[k][d] = ops->strides[k][d];
    }
    int nd = coalesce(ndim, shape, n_ops, strides);

    void *ptr[TG_ITER_MAX_OPERANDS];
    int64_t row_stride[TG_ITER_MAX_OPERANDS];
    for (int k = 0; k < n_ops; k++) {
        ptr[k] = ops->base[k];
        row_stride[k] = nd > 0 ? strides[k][nd - 1] : 0;
    }
    if (nd <= 1) {
        row(ctx, nd == 0 ? 1 : shape[0], ptr, row_stride);
        return;
    }

    /* Odometer over the outer nd-1 dimensions. */
    int64_t index[TG_MAX_DIMS] = {0};
    int64_t n = shape[nd - 1];
    for (;;) {
        row(ctx, n, ptr, row_stride);
        int d = nd - 2;
        for (; d >= 0; d--) {
            for (int k = 0; k < n_ops; k++)
                ptr[k] = (char *)ptr[k] + strides[k][d] * (int64_t)ops->elsize[k];
            if (++index[d] < shape[d])
                break;
            for (int k = 0; k < n_ops; k++)
                ptr[k] = (char *)ptr[k] - strides[k][d] * shape[d] * (int64_t)ops->elsize[k];
            index[d] = 0;
        }
        if (d < 0)
            return;
    }
}

void tg_iter_tensors(int n, const tg_tensor *const *t, tg_row_fn row, void *ctx)
{
    tg_iter_operands ops;
    ops.n_operands = n;
    for (int k = 0; k < n; k++) {
        ops.base[k] = tg_tensor_base(t[k]);
        ops.elsize[k] = tg_dtype_size(t[k]->dtype);
        ops.strides[k] = t[k]->strides;
    }
    tg_iter_rows(t[0]->ndim, t[0]->shape, &ops, row, ctx);
}

/* ---- accumulation ------------------------------------------------------------ */

typedef struct {
    tg_dtype dtype;
    double alpha;
} accumulate_args;

/* Partial sums per position of a block: a row summed into one element
 * (stride 0) runs as BLOCK independent additions, not one dependent chain. */
enum { SUM_BLOCK = 16 };

/* d[i * sd] += alpha * s[i * ss] for i < n, three ways: contiguous (the
 * compiler vectorises it), the whole row into one element, or strided. */
#define ACCUMULATE_ROW(T)                                                                  \
    do {                                                                                   \
        T *restrict d = ptr[0], alpha = (T)a->alpha;                                       \
        const T *restrict s = ptr[1];                                                      \
        int64_t sd = stride[0], ss = stride[1];                                            \
        if (sd == 1 && ss == 1) {                                                          \
            for (int64_t i = 0; i < n; i++)                                                \
                d[i] += alpha * s[i];                                                      \
        } else if (sd == 0 && n > 1) {                                                     \
            double sum[SUM_BLOCK] = {0};                                                   \
            int64_t blocked = n - n % SUM_BLOCK;                                           \
            for (int64_t b = 0; b < blocked; b += SUM_BLOCK)                               \
                for (int64_t k = 0; k < SUM_BLOCK; k++)                                    \
                    sum[k] += (double)(alpha * s[(b + k) * ss]);                           \
            for (int64_t i = blocked; i < n; i++)                                          \
                sum[i - blocked] += (double)(alpha * s[i * ss]);                           \
            double total = 0;                                                              \
            for (int k = 0; k < SUM_BLOCK; k++)                                            \
                total += sum[k];                                                           \
            d[0] += (T)total;                                                              \
        } else {                                                                           \
            for (int64_t i = 0; i < n; i++)                                                \
                d[i * sd] += alpha * s[i * ss];                                            \
        }                                                                                  \
    } while (0)

static void accumulate_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const accumulate_args *a = ctx;
    if (a->dtype == TG_F32)
        ACCUMULATE_ROW(float);
    else
        ACCUMULATE_ROW(double);
}

void tg_accumulate(tg_tensor *dst, const tg_tensor *src, double alpha)
{
    accumulate_args args = {dst->dtype, alpha};
    const tg_tensor *operands[2] = {dst, src};
    tg_iter_tensors(2, operands, accumulate_row, &args);
}
