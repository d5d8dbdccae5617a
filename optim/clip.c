/* Gradient clipping: by value (the course's clip, clip_grad_value_) and by
 * global L2 norm (clip_grad_norm_), see optim.h. */
#include <math.h>

#include "../core/iter.h"
#include "internal.h"

typedef struct {
    tg_dtype dtype;
    double lo, hi;   /* clip to [lo, hi] */
    double scale;    /* or multiply by scale */
    double sum, max; /* or accumulate squares / the largest |x| */
} clip_args;

static void for_tensor(tg_tensor *t, tg_row_fn row, clip_args *a);
static void for_each_grad(const tg_params *params, tg_row_fn row, clip_args *a);
static void clip_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride);
static void scale_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride);
static void sum_squares_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride);
static void max_abs_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride);
static void scaled_squares_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride);
static tg_status report_first_nonfinite(const tg_params *params);

tg_status tg_course_clip(const tg_params *gradients, double max_value)
{
    if (!gradients)
        return tg_fail(TG_ERR_ARG, "tg_course_clip: gradient set is NULL");
    if (!(max_value >= 0))
        return tg_fail(TG_ERR_ARG, "tg_course_clip: max_value %g must be >= 0", max_value);
    for (int i = 0; i < gradients->count; i++)
        if (!gradients->items[i].tensor)
            return tg_fail(TG_ERR_ARG, "tg_course_clip: '%s' is NULL", gradients->items[i].name);
    clip_args a = {.lo = -max_value, .hi = max_value};
    for (int i = 0; i < gradients->count; i++)
        for_tensor(gradients->items[i].tensor, clip_row, &a);
    return TG_OK;
}

tg_status tg_clip_grad_value(const tg_params *params, double clip_value)
{
    if (!params)
        return tg_fail(TG_ERR_ARG, "tg_clip_grad_value: parameter set is NULL");
    if (!(clip_value >= 0))
        return tg_fail(TG_ERR_ARG, "tg_clip_grad_value: clip_value %g must be >= 0", clip_value);
    clip_args a = {.lo = -clip_value, .hi = clip_value};
    for_each_grad(params, clip_row, &a);
    return TG_OK;
}

tg_status tg_clip_grad_norm(const tg_params *params, double max_norm, double *total_norm)
{
    if (total_norm)
        *total_norm = NAN;
    if (!params)
        return tg_fail(TG_ERR_ARG, "tg_clip_grad_norm: parameter set is NULL");
    if (!(max_norm >= 0 && isfinite(max_norm)))
        return tg_fail(TG_ERR_ARG, "tg_clip_grad_norm: max_norm %g must be finite and >= 0",
                       max_norm);
    /* Sum of squares in double; only if that overflows (elements near
     * 1e154 and above) is it redone relative to the largest element. */
    clip_args a = {0};
    for_each_grad(params, sum_squares_row, &a);
    double norm = sqrt(a.sum);
    if (isinf(a.sum)) {
        for_each_grad(params, max_abs_row, &a);
        if (isfinite(a.max)) {
            a.sum = 0;
            for_each_grad(params, scaled_squares_row, &a);
            norm = a.max * sqrt(a.sum);
        }
    }
    if (total_norm)
        *total_norm = norm;
    if (!isfinite(norm))
        return report_first_nonfinite(params);
    double clip_coef = max_norm / (norm + 1e-6);
    if (clip_coef < 1) {
        a.scale = clip_coef;
        for_each_grad(params, scale_row, &a);
    }
    return TG_OK;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Run row over every element of t, in t's dtype. */
static void for_tensor(tg_tensor *t, tg_row_fn row, clip_args *a)
{
    a->dtype = t->dtype;
    const tg_tensor *ops[1] = {t};
    tg_iter_tensors(1, ops, row, a);
}

/* The same for every gradient of the set; parameters without one are skipped. */
static void for_each_grad(const tg_params *params, tg_row_fn row, clip_args *a)
{
    for (int i = 0; i < params->count; i++) {
        tg_tensor *p = params->items[i].tensor;
        if (p && p->grad)
            for_tensor(p->grad, row, a);
    }
}

/* Comparisons are false for NaN, so NaN passes through as in np.clip. */
#define ROW_LOOP(BODY)                                                       \
    do {                                                                     \
        if (a->dtype == TG_F32) {                                            \
            float *x = ptr[0];                                               \
            for (int64_t i = 0; i < n; i++) {                                \
                float *e = &x[i * stride[0]];                                \
                BODY;                                                        \
            }                                                                \
        } else {                                                             \
            double *x = ptr[0];                                              \
            for (int64_t i = 0; i < n; i++) {                                \
                double *e = &x[i * stride[0]];                               \
                BODY;                                                        \
            }                                                                \
        }                                                                    \
    } while (0)

static void clip_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    clip_args *a = ctx;
    ROW_LOOP(if (*e < a->lo) *e = a->lo; else if (*e > a->hi) *e = a->hi);
}

static void scale_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    clip_args *a = ctx;
    ROW_LOOP(*e = *e * a->scale);
}

static void sum_squares_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    clip_args *a = ctx;
    ROW_LOOP(a->sum += (double)*e * (double)*e);
}

static void max_abs_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    clip_args *a = ctx;
    ROW_LOOP(if (!(fabs((double)*e) <= a->max)) a->max = fabs((double)*e));
}

static void scaled_squares_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    clip_args *a = ctx;
    ROW_LOOP(double r = (double)*e / a->max; a->sum += r * r);
}

static tg_status report_first_nonfinite(const tg_params *params)
{
    for (int i = 0; i < params->count; i++) {
        const tg_tensor *g = params->items[i].tensor ? params->items[i].tensor->grad : NULL;
        int64_t n = g ? tg_tensor_numel(g) : 0;
        for (int64_t k = 0; k < n; k++)
            if (!isfinite(tg_tensor_get_flat(g, k)))
                return tg_optim_report_nonfinite("tg_clip_grad_norm", params->items[i].name,
                                                 params->items[i].tensor, g, k);
    }
    return tg_fail(TG_ERR_NONFINITE, "tg_clip_grad_norm: the gradient norm is not finite");
}
