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
#include "../core/rng.h"
#include "../core/tape.h"
#include "../core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear algebra ------------------------------------------------------ */

/* (M,K) @ (K,N) -> (M,N). */
TG_API tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* (M,K) @ (K,N) + bias (M,1), the bias added to every column: a linear
 * layer in one op (the sum is one pass less each way than tg_matmul then
 * tg_add, and its gradient is the row sums of the output's). */
TG_API tg_tensor *tg_matmul_bias(tg_tape *tape, tg_tensor *a, tg_tensor *b, tg_tensor *bias);

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
TG_API tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x); /* NaN stays NaN, as in PyTorch */
TG_API tg_tensor *tg_sqrt(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_rsqrt(tg_tape *tape, tg_tensor *x); /* 1 / sqrt(x) */
TG_API tg_tensor *tg_abs(tg_tape *tape, tg_tensor *x);  /* gradient sign(x), 0 at 0 */
/* x^p for a scalar p; gradient p x^(p-1), and 0 for p = 0 (PyTorch's). */
TG_API tg_tensor *tg_pow(tg_tape *tape, tg_tensor *x, double p);
/* min(max(x, lo), hi) with lo <= hi; NaN stays NaN. The gradient passes
 * where lo <= x <= hi (bounds included, as PyTorch's clamp). */
TG_API tg_tensor *tg_clamp(tg_tape *tape, tg_tensor *x, double lo, double hi);

/* Elementwise larger / smaller of a and b (broadcasting). The gradient goes
 * to the operand chosen; on a tie each gets half (PyTorch's rule); a NaN in
 * either gives NaN. */
TG_API tg_tensor *tg_maximum(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_minimum(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* ---- selecting ------------------------------------------------------------------- */

/* cond != 0 ? a : b, elementwise, all three broadcast together (numpy
 * rules). cond shares the dtype of a and b and receives no gradient; a and
 * b receive it where they were chosen. */
TG_API tg_tensor *tg_where(tg_tape *tape, tg_tensor *cond, tg_tensor *a, tg_tensor *b);
/* x with `value` wherever mask != 0; mask broadcasts to x's shape. x keeps
 * the gradient of the elements not filled. */
TG_API tg_tensor *tg_masked_fill(tg_tape *tape, tg_tensor *x, tg_tensor *mask, double value);

/* ---- reductions ----------------------------------------------------------------- */

/* Sum or mean of all elements: a scalar (ndim 0). */
TG_API tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x);
/* Along one axis (negative counts from the end); keepdim leaves a size-1 axis. */
TG_API tg_tensor *tg_sum_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
TG_API tg_tensor *tg_mean_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
/* Largest value along axis; the gradient goes to the first position that
 * holds it (a NaN counts as the largest). */
TG_API tg_tensor *tg_max_axis(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
/* Index of that position along axis, as a value of x's dtype (exact below
 * 2^24 in f32). No gradient: the result is not recorded (like tg_detach). */
TG_API tg_tensor *tg_argmax(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);

/* ---- normalisation and dropout ------------------------------------------------------ */

/* Layer normalisation along `axis`, as PyTorch's LayerNorm over one
 * dimension: y = (x - mean) / sqrt(var + eps) * gain + bias, with the
 * biased variance (divided by n). gain and bias may be NULL (1 and 0); each
 * holds n = x->shape[axis] elements along its one dimension of size n
 * (e.g. (n,) or a bias-like (n, 1)). eps >= 0. */
TG_API tg_tensor *tg_layer_norm(tg_tape *tape, tg_tensor *x, int axis, tg_tensor *gain,
                                tg_tensor *bias, double eps);

/* Inverted dropout: each element is kept with probability 1 - p and scaled
 * by 1 / (1 - p), or set to 0; the mask is drawn from rng, one
 * tg_rng_rand() per element in C order of x's shape (so a seeded run
 * repeats exactly). p in [0, 1). With p = 0, or on a tape in evaluation mode
 * (tg_tape_set_training(tape, false)), it returns x itself and draws
 * nothing. rng may be NULL only then. */
TG_API tg_tensor *tg_dropout(tg_tape *tape, tg_tensor *x, double p, tg_rng *rng);

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

/* PyTorch's F.cross_entropy(logits, targets, weight, ignore_index,
 * reduction, label_smoothing), for tg_cross_entropy_with and
 * tg_sequence_cross_entropy. */
typedef struct {
    tg_reduction reduction;       /* default TG_REDUCE_MEAN */
    int32_t ignore_index;         /* targets equal to it count for nothing; default -100 */
    const double *class_weights;  /* n_classes finite weights >= 0, or NULL (all 1); not copied
                                     past the call */
    double label_smoothing;       /* in [0, 1]; default 0 */
} tg_cross_entropy_options;

TG_API tg_cross_entropy_options tg_cross_entropy_defaults(void);
/* tg_cross_entropy with options (NULL: the defaults). A mean divides by the
 * summed weights of the counted targets; when nothing counts (every target
 * ignored) the loss is 0 and every gradient 0. */
TG_API tg_tensor *tg_cross_entropy_with(tg_tape *tape, tg_tensor *logits, int class_axis,
                                        const int32_t *targets, int64_t n_targets,
                                        const tg_cross_entropy_options *options);
/* The loss of a sequence tagger over padded logits (n_y, m, T_x), classes
 * along axis 0: targets holds m*T_x ids in C order of (m, T_x); position
 * (j, t) counts only when t < lengths[j], each length in [1, T_x] (the
 * targets of padded positions are not read). */
TG_API tg_tensor *tg_sequence_cross_entropy(tg_tape *tape, tg_tensor *logits,
                                            const int32_t *targets, const int32_t *lengths,
                                            const tg_cross_entropy_options *options);
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
/* x reversed along axis (a view with a negative stride). */
TG_API tg_tensor *tg_flip(tg_tape *tape, tg_tensor *x, int axis);
/* Same data, no gradient: stops backprop (truncated BPTT). */
TG_API tg_tensor *tg_detach(tg_tape *tape, tg_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
