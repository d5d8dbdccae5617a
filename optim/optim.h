/* Optimizers (SGD, Adam, AdamW, and the course's Adam), gradient clipping
 * and learning-rate schedules.
 *
 *     tg_adam_options o = tg_adam_defaults(1e-3);      // torch.optim.Adam(params, lr=1e-3)
 *     tg_adam *opt = tg_adam_new(params, &o);
 *     for (int64_t step = 0; ...; step++) {
 *         ... forward, tg_backward(tape, loss) ...
 *         tg_clip_grad_norm(params, 5.0, NULL);
 *         tg_adam_set_lr(opt, tg_lr_at(&schedule, step));
 *         if (tg_adam_step(opt, tape) != TG_OK) ...     // refuses errored tapes, NaN gradients
 *         tg_params_zero_grad(params);
 *         tg_tape_reset(tape);
 *     }
 *     tg_adam_free(opt);
 *
 * Semantics are PyTorch's (torch.optim.SGD with dampening 0, torch.optim.Adam,
 * torch.optim.AdamW, clip_grad_norm_, StepLR, CosineAnnealingLR, LinearLR),
 * with the same order of floating-point operations, computed in the
 * parameter's own dtype (f32 or f64) as PyTorch does.
 *
 * An optimizer takes a snapshot of the parameter set when it is made (the
 * tensors, not their values); each step reads tensor->grad. A parameter whose
 * grad is NULL (frozen) is skipped; the step count still advances (PyTorch
 * counts per parameter, which only differs for parameters that sometimes
 * have no gradient at all).
 *
 * Safety. A step changes nothing - parameters, moments, step count - unless
 * all of these hold, and otherwise returns an error that says why:
 *   - the tape passed in (NULL = no check) holds no error (TG_ERR_STATE);
 *   - every gradient is finite (TG_ERR_NONFINITE, naming the parameter, the
 *     flat index and the element, e.g. "gradient of 'Waa' is nan at index 7
 *     (element (1,2))");
 *   - every new parameter and state value would be finite (an overflowing
 *     update, or a parameter that is already NaN, is refused the same way).
 * The check runs the same arithmetic as the update without storing, then the
 * update runs; both are allocation-free (an optimizer allocates only when
 * made).
 *
 * State as named tensors. tg_sgd_state and tg_adam_state add the optimizer's
 * own tensors to a parameter set, so a checkpoint saves and restores them
 * bit-exactly:
 *   "adam.m.<name>", "adam.v.<name>"   first and second moments (dtype of the parameter)
 *   "adam.step"                         number of steps taken, one-element f64
 *   "sgd.momentum.<name>", "sgd.step"   (momentum buffers only when momentum > 0)
 * They add all of these or nothing (a name already in the set is an error),
 * and their status must be used, as tg_params_extend's.
 *
 * Adam's epsilon. PyTorch (and tg_adam_step) divide by sqrt(v_hat) + eps.
 * The course's update_parameters_with_adam divides by sqrt(s_corrected +
 * epsilon): epsilon inside the square root. tg_course_update_parameters_with_adam
 * keeps the course's formula so that its numbers match the notebook. The two
 * agree while v_hat is much larger than epsilon (relative difference about
 * epsilon / (2 v_hat): 5e-9 for gradients of size 1) and part for small
 * gradients: with epsilon = 1e-8 the course's denominator never drops below
 * sqrt(1e-8) = 1e-4 while PyTorch's can reach 1e-8, so for gradients near
 * 1e-6 the course's step is about 100 times smaller. */
#ifndef TG_OPTIM_H
#define TG_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/api.h"
#include "../core/error.h"
#include "../core/params.h"
#include "../core/tape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SGD ------------------------------------------------------------------- */

/* torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov):
 *   g = grad + weight_decay * p
 *   b = g (first step) or momentum * b + g
 *   d = nesterov ? g + momentum * b : b          (d = g without momentum)
 *   p = p - lr * d                                                          */
typedef struct {
    double lr;
    double momentum;     /* 0 = plain SGD */
    double weight_decay; /* L2 penalty added to the gradient */
    bool nesterov;       /* needs momentum > 0 */
} tg_sgd_options;

typedef struct tg_sgd tg_sgd;

/* lr as given, no momentum, no weight decay. */
TG_API tg_sgd_options tg_sgd_defaults(double lr);
/* NULL on error (bad options, non-contiguous parameter, out of memory). */
TG_API tg_sgd *tg_sgd_new(const tg_params *params, const tg_sgd_options *options);
TG_API void tg_sgd_free(tg_sgd *opt);
/* One update from every parameter's grad; tape may be NULL. */
TG_API tg_status tg_sgd_step(tg_sgd *opt, const tg_tape *tape);
TG_API tg_status tg_sgd_set_lr(tg_sgd *opt, double lr);
TG_API double tg_sgd_lr(const tg_sgd *opt);
TG_API int64_t tg_sgd_steps(const tg_sgd *opt);
/* Add the optimizer's tensors ("sgd.momentum.<name>", "sgd.step") to out.
 * They belong to the optimizer and live as long as it does. */
TG_API TG_NODISCARD tg_status tg_sgd_state(const tg_sgd *opt, tg_params *out);

/* ---- Adam and AdamW -------------------------------------------------------------- */

/* torch.optim.Adam / torch.optim.AdamW, t = number of this step (1, 2, ...):
 *   Adam:  g = grad + weight_decay * p          (L2, when weight_decay > 0)
 *   AdamW: p = p * (1 - lr * weight_decay)      (decoupled decay)
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g * g
 *   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   */
typedef struct {
    double lr;
    double beta1, beta2;
    double eps;
    double weight_decay;
    bool decoupled_weight_decay; /* true: AdamW; false: Adam's L2 */
} tg_adam_options;

typedef struct tg_adam tg_adam;

/* torch.optim.Adam defaults: betas (0.9, 0.999), eps 1e-8, no weight decay. */
TG_API tg_adam_options tg_adam_defaults(double lr);
/* torch.optim.AdamW defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
TG_API tg_adam_options tg_adamw_defaults(double lr);
TG_API tg_adam *tg_adam_new(const tg_params *params, const tg_adam_options *options);
TG_API void tg_adam_free(tg_adam *opt);
TG_API tg_status tg_adam_step(tg_adam *opt, const tg_tape *tape);
TG_API tg_status tg_adam_set_lr(tg_adam *opt, double lr);
TG_API double tg_adam_lr(const tg_adam *opt);
TG_API int64_t tg_adam_steps(const tg_adam *opt);
/* Add "adam.m.<name>", "adam.v.<name>" and "adam.step" to out. */
TG_API TG_NODISCARD tg_status tg_adam_state(const tg_adam *opt, tg_params *out);

/* ---- the course's Adam ----------------------------------------------------------- */

/* v, s = initialize_adam(parameters): for every parameter "W" add a zero
 * tensor "dW" of its shape and dtype to v and to s (both start empty).
 * Release them with tg_course_free_adam. */
TG_API tg_status tg_course_initialize_adam(const tg_params *parameters, tg_params *v, tg_params *s);

/* parameters, v, s = update_parameters_with_adam(parameters, grads, v, s, t,
 *                                                learning_rate, beta1, beta2, epsilon)
 *   v = beta1 * v + (1 - beta1) * g
 *   s = beta2 * s + (1 - beta2) * g^2
 *   p = p - learning_rate * (v / (1 - beta1^t)) / sqrt(s / (1 - beta2^t) + epsilon)
 * Epsilon is inside the square root, as in the course (see the header comment).
 * grads holds "dW" for each parameter "W", like the course's dictionary; NULL
 * takes each parameter's own grad. t counts from 1. The course's defaults are
 * learning_rate 0.01, beta1 0.9, beta2 0.999, epsilon 1e-8. Same safety as the
 * other steps: nothing changes unless every value involved is finite. */
TG_API tg_status tg_course_update_parameters_with_adam(const tg_params *parameters, const tg_params *grads,
                                                const tg_params *v, const tg_params *s, int64_t t,
                                                double learning_rate, double beta1, double beta2,
                                                double epsilon);

/* Free the tensors made by tg_course_initialize_adam and empty v and s. */
TG_API void tg_course_free_adam(tg_params *v, tg_params *s);

/* ---- clipping ----------------------------------------------------------------------- */

/* The course's clip(gradients, max_value): np.clip(g, -max_value, max_value,
 * out=g) on every tensor of the set (the set holds the gradients themselves,
 * e.g. "dWaa", "dWax", ...). NaN stays NaN, as with np.clip. */
TG_API tg_status tg_course_clip(const tg_params *gradients, double max_value);

/* torch.nn.utils.clip_grad_value_: the same on every parameter's grad. */
TG_API tg_status tg_clip_grad_value(const tg_params *params, double clip_value);

/* torch.nn.utils.clip_grad_norm_ (L2): the norm of all gradients taken as
 * one vector; when max_norm / (norm + 1e-6) < 1 every gradient is scaled by
 * that factor, so the new norm is max_norm (a hair under). The norm before
 * clipping goes to *total_norm (may be NULL). If it is not finite, nothing is
 * scaled and TG_ERR_NONFINITE names the first bad gradient element (PyTorch
 * would scale every gradient to NaN). */
TG_API tg_status tg_clip_grad_norm(const tg_params *params, double max_norm, double *total_norm);

/* ---- learning-rate schedules ---------------------------------------------------------- */

/* Pure functions of the step: `step` is the number of optimizer steps taken
 * so far (PyTorch's last_epoch after as many scheduler.step() calls), so
 * step 0 gives the rate for the first update. Invalid arguments give NaN,
 * with a message in tg_last_error (and set_lr refuses NaN). */

/* StepLR: base_lr * gamma^floor(step / step_size). */
TG_API double tg_lr_step_decay(double base_lr, int64_t step, int64_t step_size, double gamma);
/* CosineAnnealingLR: eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2
 * (periodic past t_max, as PyTorch's is). */
TG_API double tg_lr_cosine(double base_lr, int64_t step, int64_t t_max, double eta_min);
/* LinearLR(start_factor, end_factor=1, total_iters=warmup_steps) as a factor:
 * start_factor + (1 - start_factor) * min(step, warmup_steps) / warmup_steps;
 * 1 when warmup_steps is 0. */
TG_API double tg_lr_warmup_factor(int64_t step, int64_t warmup_steps, double start_factor);

typedef enum { TG_LR_CONSTANT, TG_LR_STEP, TG_LR_COSINE } tg_lr_decay;

/* A decay with an optional linear warm-up. The warm-up multiplies the decay
 * from step 0 on, like PyTorch's ChainedScheduler([LinearLR, StepLR or
 * CosineAnnealingLR]) (for cosine with eta_min = 0; with eta_min > 0
 * PyTorch's recursive update is not exactly a product). */
typedef struct {
    double base_lr;
    tg_lr_decay decay;
    int64_t step_size; /* TG_LR_STEP */
    double gamma;      /* TG_LR_STEP */
    int64_t t_max;     /* TG_LR_COSINE */
    double eta_min;    /* TG_LR_COSINE */
    int64_t warmup_steps;       /* 0 = no warm-up */
    double warmup_start_factor; /* e.g. 0.1: the first step uses 10% */
} tg_lr_schedule;

TG_API double tg_lr_at(const tg_lr_schedule *schedule, int64_t step);

#ifdef __cplusplus
}
#endif

#endif
