/* tg_layer_norm: layer normalisation along one axis (PyTorch's LayerNorm over
 * one dimension), one op with its own backward.
 *
 * Per lane (the n elements along the axis at one position of the others):
 *     mean = sum(x) / n      var = sum((x - mean)^2) / n      (biased, as PyTorch)
 *     rstd = 1 / sqrt(var + eps)      xhat = (x - mean) * rstd
 *     y = xhat * gain + bias
 * Backward, with dxhat = dy * gain (PyTorch's formula):
 *     dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *     dgain += sum over lanes of dy * xhat      dbias += sum over lanes of dy
 * The entry keeps mean and rstd of every lane and recomputes xhat. */
#include <math.h>

#include "internal.h"
#include "ops.h"

typedef struct {
    tg_dtype dtype;
    double eps;
    const void *gain, *bias; /* element 0, or NULL */
    int64_t gain_stride, bias_stride;
    double *mean, *rstd;     /* per lane; the forward writes them when not NULL */
    const double *saved_mean, *saved_rstd; /* backward */
    void *dgain, *dbias;     /* backward: gradient element 0, or NULL */
    int64_t dgain_stride, dbias_stride;
    bool has_gx;             /* backward: operand 2 is x's gradient */
} ln_args;

static double affine_at(const void *v, tg_dtype dtype, int64_t stride, int64_t i, double none)
{
    return v ? tg_row_get(v, dtype, i * stride) : none;
}

/* Operands: y, x. */
static void ln_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr, const int64_t *stride)
{
    ln_args *a = ctx;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++)
        sum += tg_row_get(ptr[1], a->dtype, i * stride[1]);
    double mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = tg_row_get(ptr[1], a->dtype, i * stride[1]) - mean;
        sq += d * d;
    }
    double rstd = 1.0 / sqrt(sq / (double)n + a->eps);
    for (int64_t i = 0; i < n; i++) {
        double xhat = (tg_row_get(ptr[1], a->dtype, i * stride[1]) - mean) * rstd;
        double y = xhat * affine_at(a->gain, a->dtype, a->gain_stride, i, 1.0) +
                   affine_at(a->bias, a->dtype, a->bias_stride, i, 0.0);
        tg_row_set(ptr[0], a->dtype, i * stride[0], y);
    }
    if (a->mean) {
        a->mean[pos] = mean;
        a->rstd[pos] = rstd;
    }
}

/* Operands: g, x, and gx when has_gx. */
static void ln_grad_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr,
                         const int64_t *stride)
{
    const ln_args *a = ctx;
    double mean = a->saved_mean[pos], rstd = a->saved_rstd[pos], sum_d = 0, sum_dx = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = tg_row_get(ptr[0], a->dtype, i * stride[0]);
        double xhat = (tg_row_get(ptr[1], a->dtype, i * stride[1]) - mean) * rstd;
        double dxhat = g * affine_at(a->gain, a->dtype, a->gain_stride, i, 1.0);
        sum_d += dxhat;
        sum_dx += dxhat * xhat;
        if (a->dgain)
            tg_row_add(a->dgain, a->dtype, i * a->dgain_stride, g * xhat);
        if (a->dbias)
            tg_row_add(a->dbias, a->dtype, i * a->dbias_stride, g);
    }
    if (!a->has_gx)
        return;
    double mean_d = sum_d / (double)n, mean_dx = sum_dx / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double g = tg_row_get(ptr[0], a->dtype, i * stride[0]);
        double xhat = (tg_row_get(ptr[1], a->dtype, i * stride[1]) - mean) * rstd;
        double dxhat = g * affine_at(a->gain, a->dtype, a->gain_stride, i, 1.0);
        tg_row_add(ptr[2], a->dtype, i * stride[2], rstd * (dxhat - mean_d - xhat * mean_dx));
    }
}

/* The stride along the one dimension of a gain or bias of n elements (the
 * other dimensions have size 1), or -1 when it is not such a vector. */
static int64_t vector_stride(const tg_tensor *v, int64_t n)
{
    int64_t stride = 0;
    bool found = false;
    for (int d = 0; d < v->ndim; d++) {
        if (v->shape[d] == 1)
            continue;
        if (found || v->shape[d] != n)
            return -1;
        found = true;
        stride = v->strides[d];
    }
    return found || n == 1 ? stride : -1;
}

static void ln_backward(tg_tape *tape, const tg_entry *e)
{
    int k = 1;
    const tg_tensor *gain = e->ints[1] ? e->in[k++] : NULL, *bias = e->ints[2] ? e->in[k] : NULL;
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    tg_tensor *dgain = gain ? tg_grad_in(tape, gain) : NULL;
    tg_tensor *dbias = bias ? tg_grad_in(tape, bias) : NULL;
    if (tg_tape_status(tape) != TG_OK || (!gx && !dgain && !dbias))
        return;
    const double *saved = e->saved;
    int64_t n = e->in[0]->shape[e->ints[0]], lanes = tg_tensor_numel(e->out[0]) / n;
    ln_args args = {.dtype = e->in[0]->dtype,
                    .gain = gain ? tg_tensor_base(gain) : NULL,
                    .gain_stride = gain ? vector_stride(gain, n) : 0,
                    .saved_mean = saved, .saved_rstd = saved + lanes,
                    .dgain = dgain ? tg_tensor_base(dgain) : NULL,
                    .dgain_stride = dgain ? vector_stride(dgain, n) : 0,
                    .dbias = dbias ? tg_tensor_base(dbias) : NULL,
                    .dbias_stride = dbias ? vector_stride(dbias, n) : 0,
                    .has_gx = gx != NULL};
    const tg_tensor *operands[3] = {tg_grad_out(e->out[0]), e->in[0], gx};
    tg_iter_lanes(gx ? 3 : 2, operands, (int)e->ints[0], ln_grad_lane, &args);
}

/* x (..., n, ...), gain and bias (n elements each, or NULL) -> same shape as x */
tg_tensor *tg_layer_norm(tg_tape *tape, tg_tensor *x, int axis, tg_tensor *gain,
                         tg_tensor *bias, double eps)
{
    tg_op op;
    tg_tensor *in[3] = {x, gain, bias};
    int n_in = 1;
    for (int k = 1; k < 3; k++) /* record only the given ones */
        if (in[k])
            in[n_in++] = in[k];
    if (!tg_op_begin_array(&op, tape, "tg_layer_norm", n_in, in) || !tg_op_axis(&op, x, &axis))
        return NULL;
    char s[64], sv[64];
    int64_t n = x->shape[axis];
    if (n == 0)
        return tg_op_fail(&op, TG_ERR_SHAPE, "no elements along axis %d of %s", axis,
                          tg_shape_str(x, s, sizeof s));
    if (!(eps >= 0 && isfinite(eps)))
        return tg_op_fail(&op, TG_ERR_ARG, "eps = %g (needs a finite eps >= 0)", eps);
    static const char *names[2] = {"gain", "bias"};
    const tg_tensor *vectors[2] = {gain, bias};
    for (int k = 0; k < 2; k++)
        if (vectors[k] && vector_stride(vectors[k], n) < 0)
            return tg_op_fail(&op, TG_ERR_SHAPE,
                              "%s is %s; needs the %lld elements of axis %d of x %s along one "
                              "dimension",
                              names[k], tg_shape_str(vectors[k], sv, sizeof sv), (long long)n,
                              axis, tg_shape_str(x, s, sizeof s));
    tg_tensor *out = tg_op_output(&op, x->dtype, x->ndim, x->shape);
    if (!out)
        return NULL;
    int64_t lanes = tg_tensor_numel(x) / n;
    ln_args args = {.dtype = x->dtype, .eps = eps,
                    .gain = gain ? tg_tensor_base(gain) : NULL,
                    .gain_stride = gain ? vector_stride(gain, n) : 0,
                    .bias = bias ? tg_tensor_base(bias) : NULL,
                    .bias_stride = bias ? vector_stride(bias, n) : 0};
    if (op.needs_grad) {
        if (!(args.mean = tg_tape_alloc(tape, 2 * sizeof(double) * (size_t)lanes)))
            return NULL;
        args.rstd = args.mean + lanes;
    }
    const tg_tensor *operands[2] = {out, x};
    tg_iter_lanes(2, operands, axis, ln_lane, &args);
    tg_entry *e = tg_op_record(&op, ln_backward, out);
    if (e) {
        e->saved = args.mean;
        e->ints[0] = axis;
        e->ints[1] = gain != NULL;
        e->ints[2] = bias != NULL;
    }
    return tg_op_finish(&op, out);
}
