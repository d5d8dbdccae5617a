/* What the optimizers share (not part of the public API): the parameter
 * snapshot with per-parameter state tensors, the step count, and the
 * check-then-commit step that keeps a refused step from changing anything;
 * and the report list that the checkpoint and .npz loaders share. */
#ifndef TG_OPTIM_INTERNAL_H
#define TG_OPTIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "optim.h"

#define TG_OPTIM_MAX_STATE 2

typedef struct {
    char *name;
    tg_tensor *param;
    tg_tensor *state[TG_OPTIM_MAX_STATE]; /* zeroed, shape and dtype of param */
} tg_optim_slot;

typedef struct {
    int count;
    int n_state; /* state tensors per parameter */
    tg_optim_slot *slots;
    tg_tensor *step; /* one-element f64: steps taken */
    double lr;
} tg_optim_base;

/* Update one parameter of n contiguous elements; p, g and state[] point at
 * element 0 and share the parameter's dtype. With commit false nothing is
 * stored: the return value is the first index whose gradient or new value
 * (parameter or state) is not finite, or -1. With commit true the same
 * arithmetic runs and stores. */
typedef int64_t (*tg_optim_kernel)(const void *coeffs, tg_dtype dtype, int64_t n, void *p,
                                   const void *g, void *const *state, bool commit);

/* Snapshot params (every tensor contiguous) with n_state zero tensors each. */
tg_status tg_optim_base_init(tg_optim_base *base, const char *who, const tg_params *params,
                             int n_state);
void tg_optim_base_free(tg_optim_base *base);

/* Everything a step checks before arithmetic: the tape holds no error, the
 * step count is a whole number, every gradient matches its parameter.
 * *steps_taken receives the step count. */
tg_status tg_optim_begin(const tg_optim_base *base, const char *who, const tg_tape *tape,
                         int64_t *steps_taken);

/* One parameter's operands for a kernel; param NULL means "skip it". */
typedef struct {
    const char *name;
    tg_tensor *param;
    const tg_tensor *grad;
    void *state[TG_OPTIM_MAX_STATE];
} tg_optim_target;
typedef tg_optim_target (*tg_optim_target_fn)(const void *ctx, int i);

/* The check-then-commit step: kernel over targets 0..n-1 (from target(ctx,
 * i)), first a checking pass over all of them, then, only if every one
 * passed, the storing pass. A refusal names the first offending element. */
tg_status tg_optim_check_then_commit(const char *who, int n, tg_optim_target_fn target,
                                     const void *ctx, tg_optim_kernel kernel,
                                     const void *coeffs);

/* tg_optim_check_then_commit over the base's parameters that have a
 * gradient; then count the step. */
tg_status tg_optim_apply(tg_optim_base *base, const char *who, tg_optim_kernel kernel,
                         const void *coeffs);

/* The TG_ERR_NONFINITE message for element `index` of a parameter: says
 * whether the gradient, the parameter or the update is at fault. */
tg_status tg_optim_report_nonfinite(const char *who, const char *name, const tg_tensor *param,
                                    const tg_tensor *grad, int64_t index);

/* Check that t is a contiguous tensor with the shape and dtype of param. */
tg_status tg_optim_check_like(const char *who, const char *what, const char *name,
                              const tg_tensor *t, const tg_tensor *param);

/* Add "<prefix>.<state_names[k]>.<name>" for every slot and state, then
 * "<prefix>.step". */
tg_status tg_optim_export(const tg_optim_base *base, const char *prefix,
                          const char *const *state_names, tg_params *out);

tg_status tg_optim_set_lr(tg_optim_base *base, const char *who, double lr);

/* Add a copy of name[0..len) to a non-strict load's list of missing names
 * (missing true) or of unexpected ones; TG_ERR_NOMEM names `who`. */
tg_status tg_load_report_note(tg_load_report *report, bool missing, const char *name,
                              size_t len, const char *who);

#endif
