/* Differentiable ops. Each computes its output on the tape's arena and, when
 * some input needs a gradient, records how to send the gradient back.
 *
 * Every op accepts strided inputs (views, transposes, broadcasts), f32 or f64
 * (all inputs of one op share a dtype), and returns NULL with the tape's
 * error set when its inputs do not fit, e.g.
 *     tg_matmul: inner dimensions differ: (5,3) @ (4,10)
 * Shapes follow numpy. Binary elementwise ops broadcast with numpy's rules. */
#ifndef TG_OPS_H
#define TG_OPS_H

#include <stdint.h>

#include "../core/api.h"
#include "../core/tape.h"
#include "../core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear algebra ------------------------------------------------------ */

/* (M,K) @ (K,N) -> (M,N). */
TG_API tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* ---- elementwise, with broadcasting ----------------------------------------- */

TG_API tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_div(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* s * x */
TG_API tg_tensor *tg_scale(tg_tape *tape, tg_tensor *x, double s);
/* scale * x + shift, e.g. tg_affine(tape, z, -1, 1) for 1 - z */
TG_API tg_tensor *tg_affine(tg_tape *tape, tg_tensor *x, double scale, double shift);

TG_API tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *x); /* finite for |x| of 1000 */
TG_API tg_tensor *tg_exp(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_log(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x);

/* ---- reductions ----------------------------------------------------------------- */

/* Sum or mean of all elements: a scalar (ndim 0). */
TG_API tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x);
/* Along one axis (negative counts from the end); keepdim leaves a size-1 axis. */
TG_API tg_tensor *tg_sum_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
TG_API tg_tensor *tg_mean_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);

/* ---- softmax and losses ------------------------------------------------------------ */

/* Along `axis`, with the maximum subtracted first (finite for logits of 1e3). */
TG_API tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x, int axis);
TG_API tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x, int axis);

typedef enum { TG_REDUCE_MEAN = 0, TG_REDUCE_SUM = 1 } tg_reduction;

/* Cross-entropy of logits against integer class ids, fused with log-softmax.
 * Classes lie along class_axis; `targets` holds one id in [0, n_classes) per
 * position of the remaining axes, in C order (for course-style logits
 * (n_y, m) and class_axis 0: one id per column); n_targets must equal that
 * count. Returns a scalar: the mean
 * over positions or their sum. */
TG_API tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, int class_axis,
                                   const int32_t *targets, int64_t n_targets,
                                   tg_reduction reduction);
/* Mean (or sum) of squared differences; shapes must match. */
TG_API tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target, tg_reduction reduction);

/* ---- joining, copying, lookup --------------------------------------------------------- */

/* Join n tensors along an existing axis; other dimensions must match. */
TG_API tg_tensor *tg_concat(tg_tape *tape, int n, tg_tensor *const *xs, int axis);
/* Stack n same-shaped tensors along a new axis. */
TG_API tg_tensor *tg_stack(tg_tape *tape, int n, tg_tensor *const *xs, int axis);
/* A contiguous copy (gradient flows through). */
TG_API tg_tensor *tg_contiguous(tg_tape *tape, tg_tensor *x);
/* Embedding lookup: columns ids[0..n) of table (d, V) -> (d, n). Ids outside
 * [0, V) are an error. */
TG_API tg_tensor *tg_gather_columns(tg_tape *tape, tg_tensor *table, const int32_t *ids, int64_t n);

/* ---- views ------------------------------------------------------------------------------- */
/* These wrap the tg_view_* functions of core/tensor.h: the view lives in the
 * arena and is drawn in tape pictures; its gradient flows into x's gradient. */

TG_API tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x, int dim0, int dim1);
TG_API tg_tensor *tg_permute(tg_tape *tape, tg_tensor *x, const int *perm);
TG_API tg_tensor *tg_slice(tg_tape *tape, tg_tensor *x, int dim, int64_t start, int64_t stop,
                           int64_t step);
TG_API tg_tensor *tg_select(tg_tape *tape, tg_tensor *x, int dim, int64_t index);
TG_API tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape);
TG_API tg_tensor *tg_expand(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape);
/* Same data, no gradient: stops backprop (truncated BPTT). */
TG_API tg_tensor *tg_detach(tg_tape *tape, tg_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
