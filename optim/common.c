/* The parts every optimizer shares (see internal.h): parameter snapshot,
 * step count, checks, the check-then-commit step, state export. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/iter.h"
#include "internal.h"

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

tg_status tg_optim_base_init(tg_optim_base *base, const char *who, const tg_params *params,
                             int n_state)
{
    memset(base, 0, sizeof *base);
    if (!params)
        return tg_fail(TG_ERR_ARG, "%s: parameter set is NULL", who);
    for (int i = 0; i < params->count; i++) {
        const tg_tensor *t = params->items[i].tensor;
        if (!t || tg_dtype_size(t->dtype) == 0)
            return tg_fail(TG_ERR_ARG, "%s: parameter '%s' is NULL or has an unknown dtype", who,
                           params->items[i].name);
        if (!tg_tensor_is_contiguous(t))
            return tg_fail(TG_ERR_ARG, "%s: parameter '%s' is not contiguous", who,
                           params->items[i].name);
        /* Updated twice per step, a shared tensor would escape the check
         * pass, which sees only the first update. */
        for (int j = 0; j < i; j++)
            if (params->items[j].tensor == t)
                return tg_fail(TG_ERR_ARG, "%s: '%s' and '%s' are the same tensor", who,
                               params->items[j].name, params->items[i].name);
    }
    base->n_state = n_state;
    base->step = tg_tensor_zeros(TG_F64, TG_DIMS(1));
    base->slots = calloc(params->count > 0 ? (size_t)params->count : 1, sizeof *base->slots);
    if (!base->step || !base->slots) {
        tg_optim_base_free(base);
        return tg_fail(TG_ERR_NOMEM, "%s: out of memory", who);
    }
    for (int i = 0; i < params->count; i++) {
        tg_optim_slot *slot = &base->slots[i];
        base->count = i + 1;
        slot->param = params->items[i].tensor;
        slot->name = copy_string(params->items[i].name);
        bool ok = slot->name != NULL;
        for (int k = 0; ok && k < n_state; k++) {
            slot->state[k] = tg_tensor_zeros(slot->param->dtype, slot->param->ndim,
                                             slot->param->shape);
            ok = slot->state[k] != NULL;
        }
        if (!ok) {
            tg_optim_base_free(base);
            return tg_fail(TG_ERR_NOMEM, "%s: out of memory for the state of '%s'", who,
                           params->items[i].name);
        }
    }
    return TG_OK;
}

void tg_optim_base_free(tg_optim_base *base)
{
    for (int i = 0; base->slots && i < base->count; i++) {
        free(base->slots[i].name);
        for (int k = 0; k < TG_OPTIM_MAX_STATE; k++)
            tg_tensor_free(base->slots[i].state[k]);
    }
    free(base->slots);
    tg_tensor_free(base->step);
    memset(base, 0, sizeof *base);
}

tg_status tg_optim_check_like(const char *who, const char *what, const char *name,
                              const tg_tensor *t, const tg_tensor *param)
{
    char a[96], b[96];
    if (!t)
        return tg_fail(TG_ERR_ARG, "%s: %s of '%s' is missing", who, what, name);
    if (t->dtype != param->dtype)
        return tg_fail(TG_ERR_DTYPE, "%s: %s of '%s' is %s, the parameter is %s", who, what, name,
                       tg_dtype_name(t->dtype), tg_dtype_name(param->dtype));
    if (!tg_tensor_same_shape(t, param))
        return tg_fail(TG_ERR_SHAPE, "%s: %s of '%s' has shape %s, the parameter %s", who, what,
                       name, tg_shape_str(t, a, sizeof a), tg_shape_str(param, b, sizeof b));
    if (!tg_tensor_is_contiguous(t))
        return tg_fail(TG_ERR_ARG, "%s: %s of '%s' is not contiguous", who, what, name);
    return TG_OK;
}

tg_status tg_optim_begin(const tg_optim_base *base, const char *who, const tg_tape *tape,
                         int64_t *steps_taken)
{
    if (tape && tg_tape_status(tape) != TG_OK)
        return tg_fail(TG_ERR_STATE, "%s: the tape holds an error, so its gradients are not "
                                     "trustworthy; nothing was changed (tape error: %s)",
                       who, tg_tape_error(tape));
    /* The count may come from a checkpoint: refuse anything but a whole
     * number that the next step can still increase exactly. */
    double steps = ((const double *)base->step->data)[0];
    if (!(steps >= 0 && steps < 9007199254740992.0 && steps == floor(steps)))
        return tg_fail(TG_ERR_STATE, "%s: the step count %g is not a whole number >= 0", who,
                       steps);
    *steps_taken = (int64_t)steps;
    for (int i = 0; i < base->count; i++) {
        const tg_optim_slot *slot = &base->slots[i];
        tg_status s = TG_OK;
        if (slot->param->grad)
            s = tg_optim_check_like(who, "the gradient", slot->name, slot->param->grad,
                                    slot->param);
        for (int k = 0; s == TG_OK && k < base->n_state; k++)
            s = tg_optim_check_like(who, "the optimizer state", slot->name, slot->state[k],
                                    slot->param);
        if (s != TG_OK)
            return s;
    }
    return TG_OK;
}

tg_status tg_optim_check_then_commit(const char *who, int n, tg_optim_target_fn target,
                                     const void *ctx, tg_optim_kernel kernel,
                                     const void *coeffs)
{
    for (int pass = 0; pass < 2; pass++) {
        bool commit = pass == 1;
        for (int i = 0; i < n; i++) {
            tg_optim_target t = target(ctx, i);
            if (!t.param)
                continue;
            int64_t bad = kernel(coeffs, t.param->dtype, tg_tensor_numel(t.param),
                                 tg_tensor_base(t.param), tg_tensor_base(t.grad), t.state, commit);
            if (!commit && bad >= 0)
                return tg_optim_report_nonfinite(who, t.name, t.param, t.grad, bad);
        }
    }
    return TG_OK;
}

/* Slot i of a base, skipped when its parameter has no gradient. */
static tg_optim_target slot_target(const void *ctx, int i)
{
    const tg_optim_base *base = ctx;
    const tg_optim_slot *slot = &base->slots[i];
    tg_optim_target t = {slot->name, NULL, slot->param->grad, {NULL, NULL}};
    if (!t.grad)
        return t;
    t.param = slot->param;
    for (int k = 0; k < base->n_state; k++)
        t.state[k] = tg_tensor_base(slot->state[k]);
    return t;
}

tg_status tg_optim_apply(tg_optim_base *base, const char *who, tg_optim_kernel kernel,
                         const void *coeffs)
{
    tg_status s = tg_optim_check_then_commit(who, base->count, slot_target, base, kernel, coeffs);
    if (s == TG_OK)
        ((double *)base->step->data)[0] += 1.0;
    return s;
}

/* "nan", "inf" or "-inf". */
static const char *nonfinite_name(double x)
{
    return isnan(x) ? "nan" : x > 0 ? "inf" : "-inf";
}

/* "(1,2)" for flat index 7 of shape (3,5). */
static void element_text(const tg_tensor *t, int64_t index, char *buf, size_t size)
{
    int64_t idx[TG_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] > 0 ? index % t->shape[d] : 0;
        index = t->shape[d] > 0 ? index / t->shape[d] : 0;
    }
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ",%lld" : "%lld", (long long)idx[d]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

tg_status tg_optim_report_nonfinite(const char *who, const char *name, const tg_tensor *param,
                                    const tg_tensor *grad, int64_t index)
{
    char where[128];
    element_text(param, index, where, sizeof where);
    double g = grad ? tg_tensor_get_flat(grad, index) : 0.0;
    double p = tg_tensor_get_flat(param, index);
    if (!isfinite(g))
        return tg_fail(TG_ERR_NONFINITE,
                       "%s: gradient of '%s' is %s at index %lld (element %s); nothing was changed",
                       who, name, nonfinite_name(g), (long long)index, where);
    if (!isfinite(p))
        return tg_fail(TG_ERR_NONFINITE,
                       "%s: parameter '%s' is already %s at index %lld (element %s); nothing was "
                       "changed",
                       who, name, nonfinite_name(p), (long long)index, where);
    return tg_fail(TG_ERR_NONFINITE,
                   "%s: the update of '%s' at index %lld (element %s) would not be finite "
                   "(parameter %g, gradient %g: the update overflows or divides by zero, or the "
                   "optimizer state is not finite); nothing was changed",
                   who, name, (long long)index, where, p, g);
}

tg_status tg_optim_export(const tg_optim_base *base, const char *prefix,
                          const char *const *state_names, tg_params *out)
{
    if (!out)
        return tg_fail(TG_ERR_ARG, "%s state: output set is NULL", prefix);
    int before = out->count;
    tg_status s = TG_OK;
    for (int i = 0; i < base->count && s == TG_OK; i++) {
        for (int k = 0; k < base->n_state && s == TG_OK; k++) {
            const char *name = base->slots[i].name;
            size_t len = strlen(prefix) + strlen(state_names[k]) + strlen(name) + 3;
            char *full = malloc(len);
            if (full)
                snprintf(full, len, "%s.%s.%s", prefix, state_names[k], name);
            s = full ? tg_params_add(out, full, base->slots[i].state[k])
                     : tg_fail(TG_ERR_NOMEM, "%s state: out of memory", prefix);
            free(full);
        }
    }
    char step_name[64];
    snprintf(step_name, sizeof step_name, "%s.step", prefix);
    if (s == TG_OK)
        s = tg_params_add(out, step_name, base->step);
    if (s != TG_OK)
        tg_params_truncate(out, before); /* all or nothing */
    return s;
}

tg_status tg_optim_set_lr(tg_optim_base *base, const char *who, double lr)
{
    if (!(lr >= 0 && isfinite(lr)))
        return tg_fail(TG_ERR_ARG, "%s: learning rate %g is not a finite number >= 0", who, lr);
    base->lr = lr;
    return TG_OK;
}
