/* Gradient checking: compare the tape's gradients with central finite
 * differences, element by element, and report the worst one.
 *
 * Usable from any program: write the loss as a function of some persistent
 * f64 tensors that require gradients, and call tg_gradcheck. The tensors'
 * values and existing gradients are left exactly as they were. */
#ifndef TG_GRADCHECK_H
#define TG_GRADCHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "../core/api.h"
#include "../core/tape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Build a scalar loss on `tape` from params[0..n). Called many times; must be
 * deterministic. Return NULL on failure (the tape's error is reported). */
typedef tg_tensor *(*tg_loss_fn)(tg_tape *tape, tg_tensor *const *params, void *ctx);

typedef struct {
    double eps;          /* finite-difference step; default 1e-5 */
    double tolerance;    /* pass when every error is below it; default 1e-6 */
    double floor;        /* |values| below floor are compared absolutely; default 1e-3 */
    int64_t max_per_param; /* 0 = every element; else this many, evenly spread */
} tg_gradcheck_options;

typedef struct {
    bool passed;
    double max_error;    /* max over elements of |a - n| / max(|a|, |n|, floor) */
    int worst_param;     /* index into params, -1 if nothing was checked */
    const char *worst_name; /* params[worst_param]->name, or NULL */
    int64_t worst_index; /* flat C-order index of the worst element */
    double analytic, numeric; /* the two values at the worst element */
    int64_t checked;     /* elements compared */
} tg_gradcheck_result;

/* Defaults described above. */
TG_API tg_gradcheck_options tg_gradcheck_defaults(void);

/* Fill *result. Returns TG_OK when the check ran (look at result->passed), or
 * an error status when it could not (bad params, loss function failed). */
TG_API tg_status tg_gradcheck(tg_loss_fn loss, void *ctx, int n, tg_tensor *const *params,
                              const tg_gradcheck_options *options, tg_gradcheck_result *result);

/* One line: "gradcheck passed: max error 3.1e-09 at Waa[4] (analytic ..., numeric ...)". */
TG_API void tg_gradcheck_print(FILE *f, const tg_gradcheck_result *result);

#ifdef __cplusplus
}
#endif

#endif
