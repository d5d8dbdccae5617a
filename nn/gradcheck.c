/* Finite-difference gradient checking (see gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

tg_gradcheck_options tg_gradcheck_defaults(void)
{
    tg_gradcheck_options o = {.eps = 1e-5, .tolerance = 1e-6, .floor = 1e-3, .max_per_param = 0};
    return o;
}

/* The loss at the current parameter values, without recording. */
static tg_status evaluate(tg_tape *tape, tg_loss_fn loss, void *ctx, tg_tensor *const *params,
                          double *value)
{
    tg_tape_reset(tape);
    bool old = tg_tape_no_grad(tape, true);
    tg_tensor *out = loss(tape, params, ctx);
    tg_tape_no_grad(tape, old);
    if (!out || tg_tensor_numel(out) != 1)
        return tg_fail(tg_tape_status(tape) ? tg_tape_status(tape) : TG_ERR_ARG,
                       "tg_gradcheck: the loss function failed: %s",
                       out ? "it did not return a scalar" : tg_tape_error(tape));
    *value = tg_tensor_item(out);
    return TG_OK;
}

static tg_status check_params(int n, tg_tensor *const *params)
{
    if (n <= 0 || !params)
        return tg_fail(TG_ERR_ARG, "tg_gradcheck: no parameters given");
    for (int i = 0; i < n; i++) {
        if (!params[i] || !params[i]->grad)
            return tg_fail(TG_ERR_ARG,
                           "tg_gradcheck: parameter %d is NULL or does not require a gradient", i);
        if (params[i]->dtype != TG_F64)
            return tg_fail(TG_ERR_DTYPE,
                           "tg_gradcheck: parameter %d is %s; finite differences need f64", i,
                           tg_dtype_name(params[i]->dtype));
    }
    return TG_OK;
}

/* Analytic gradients into fresh copies, leaving the parameters' own
 * gradients as they were. */
static tg_status analytic_gradients(tg_tape *tape, tg_loss_fn loss, void *ctx, int n,
                                    tg_tensor *const *params, tg_tensor **analytic)
{
    tg_tensor **saved = calloc((size_t)n, sizeof *saved);
    tg_status status = saved ? TG_OK : tg_fail(TG_ERR_NOMEM, "tg_gradcheck: out of memory");
    if (!saved)
        return status;
    for (int i = 0; i < n; i++) {
        saved[i] = tg_tensor_copy(params[i]->grad);
        if (!saved[i])
            status = TG_ERR_NOMEM;
        tg_tensor_zero_grad(params[i]);
    }
    if (status == TG_OK) {
        tg_tape_reset(tape);
        tg_tensor *out = loss(tape, params, ctx);
        if (!out)
            status = tg_fail(tg_tape_status(tape), "tg_gradcheck: the loss function failed: %s",
                             tg_tape_error(tape));
        else if (tg_backward(tape, out) != TG_OK)
            status = tg_fail(tg_tape_status(tape), "tg_gradcheck: backward failed: %s",
                             tg_tape_error(tape));
    }
    for (int i = 0; i < n; i++) {
        analytic[i] = status == TG_OK ? tg_tensor_copy(params[i]->grad) : NULL;
        if (status == TG_OK && !analytic[i])
            status = TG_ERR_NOMEM;
        if (saved[i])
            tg_tensor_copy_into(params[i]->grad, saved[i]);
        tg_tensor_free(saved[i]);
    }
    free(saved);
    return status;
}

tg_status tg_gradcheck(tg_loss_fn loss, void *ctx, int n, tg_tensor *const *params,
                       const tg_gradcheck_options *options, tg_gradcheck_result *result)
{
    if (!loss || !result)
        return tg_fail(TG_ERR_ARG, "tg_gradcheck: loss function or result is NULL");
    memset(result, 0, sizeof *result);
    result->worst_param = -1;
    tg_status status = check_params(n, params);
    if (status != TG_OK)
        return status;
    tg_gradcheck_options o = options ? *options : tg_gradcheck_defaults();
    tg_tape *tape = tg_tape_new();
    tg_tensor **analytic = calloc((size_t)n, sizeof *analytic);
    if (!tape || !analytic) {
        tg_tape_free(tape);
        free(analytic);
        return tg_fail(TG_ERR_NOMEM, "tg_gradcheck: out of memory");
    }
    status = analytic_gradients(tape, loss, ctx, n, params, analytic);

    for (int p = 0; p < n && status == TG_OK; p++) {
        int64_t numel = tg_tensor_numel(params[p]);
        int64_t count = o.max_per_param > 0 && o.max_per_param < numel ? o.max_per_param : numel;
        for (int64_t c = 0; c < count && status == TG_OK; c++) {
            int64_t i = count == numel ? c : c * numel / count;
            double x = tg_tensor_get_flat(params[p], i), plus, minus;
            tg_tensor_set_flat(params[p], i, x + o.eps);
            status = evaluate(tape, loss, ctx, params, &plus);
            tg_tensor_set_flat(params[p], i, x - o.eps);
            if (status == TG_OK)
                status = evaluate(tape, loss, ctx, params, &minus);
            tg_tensor_set_flat(params[p], i, x);
            if (status != TG_OK)
                break;
            double numeric = (plus - minus) / (2 * o.eps);
            double a = tg_tensor_get_flat(analytic[p], i);
            double scale = fmax(fmax(fabs(a), fabs(numeric)), o.floor);
            double err = fabs(a - numeric) / scale;
            if (isnan(err))
                err = INFINITY;
            result->checked++;
            if (result->worst_param < 0 || err > result->max_error) {
                result->max_error = err;
                result->worst_param = p;
                result->worst_name = params[p]->name;
                result->worst_index = i;
                result->analytic = a;
                result->numeric = numeric;
            }
        }
    }
    for (int p = 0; p < n; p++)
        tg_tensor_free(analytic[p]);
    free(analytic);
    tg_tape_free(tape);
    result->passed = status == TG_OK && result->max_error < o.tolerance;
    return status;
}

void tg_gradcheck_print(FILE *f, const tg_gradcheck_result *r)
{
    if (r->worst_param < 0) {
        fprintf(f, "gradcheck: nothing was checked\n");
        return;
    }
    char name[32];
    if (r->worst_name)
        snprintf(name, sizeof name, "%s", r->worst_name);
    else
        snprintf(name, sizeof name, "param %d", r->worst_param);
    fprintf(f,
            "gradcheck %s: max error %.3g at %s[%lld] (analytic %.10g, numeric %.10g), %lld "
            "elements checked\n",
            r->passed ? "passed" : "FAILED", r->max_error, name, (long long)r->worst_index,
            r->analytic, r->numeric, (long long)r->checked);
}
