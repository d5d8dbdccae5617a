/* tg_dropout: inverted dropout with a mask drawn from the caller's generator.
 *
 * Training keeps each element with probability 1 - p and scales it by
 * 1 / (1 - p), so the expected output is x and evaluation needs no
 * rescaling: in evaluation mode (tg_tape_set_training, core/tape.h) and for
 * p = 0 the op is the identity and returns x itself. The mask is one
 * tg_rng_rand() per element in C order of x's shape, whatever x's strides,
 * so the same seed gives the same mask on any layout and a checkpointed
 * generator resumes it exactly. The entry keeps the mask (0 or 1 / (1 - p)
 * per element) for backward: gx += g * mask. */
#include <math.h>

#include "internal.h"
#include "ops.h"

typedef struct {
    tg_dtype dtype;
} dropout_args;

/* Operands: y, x, mask. A dropped element is 0 even where x is inf or NaN. */
static void dropout_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const dropout_args *a = ctx;
    for (int64_t i = 0; i < n; i++) {
        double m = tg_row_get(ptr[2], a->dtype, i * stride[2]);
        double x = tg_row_get(ptr[1], a->dtype, i * stride[1]);
        tg_row_set(ptr[0], a->dtype, i * stride[0], m == 0 ? 0.0 : x * m);
    }
}

/* Operands: gx, g, mask. */
static void dropout_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const dropout_args *a = ctx;
    for (int64_t i = 0; i < n; i++) {
        double m = tg_row_get(ptr[2], a->dtype, i * stride[2]);
        if (m != 0)
            tg_row_add(ptr[0], a->dtype, i * stride[0],
                       tg_row_get(ptr[1], a->dtype, i * stride[1]) * m);
    }
}

static void dropout_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    if (!gx)
        return;
    dropout_args args = {gx->dtype};
    const tg_tensor *operands[3] = {gx, tg_grad_out(e->out[0]), e->saved};
    tg_iter_tensors(3, operands, dropout_grad_row, &args);
}

/* x (any shape) -> x with elements dropped and the rest scaled by 1/(1-p) */
tg_tensor *tg_dropout(tg_tape *tape, tg_tensor *x, double p, tg_rng *rng)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_dropout", 1, x))
        return NULL;
    if (!(p >= 0 && p < 1))
        return tg_op_fail(&op, TG_ERR_ARG, "p = %g is outside [0, 1)", p);
    if (p == 0 || !tg_tape_is_training(tape))
        return x;
    if (!rng)
        return tg_op_fail(&op, TG_ERR_ARG, "rng is NULL (needed to draw the mask for p = %g)", p);
    tg_tensor *mask = tg_tape_tensor(tape, x->dtype, x->ndim, x->shape);
    tg_tensor *out = mask ? tg_op_output(&op, x->dtype, x->ndim, x->shape) : NULL;
    if (!out)
        return NULL;
    double keep = 1.0 / (1.0 - p);
    for (int64_t i = 0, n = tg_tensor_numel(x); i < n; i++) /* mask is contiguous: C order */
        tg_row_set(mask->data, mask->dtype, i, tg_rng_rand(rng) < p ? 0.0 : keep);
    dropout_args args = {x->dtype};
    const tg_tensor *operands[3] = {out, x, mask};
    tg_iter_tensors(3, operands, dropout_row, &args);
    tg_entry *e = tg_op_record(&op, dropout_backward, out);
    if (e)
        e->saved = mask;
    return tg_op_finish(&op, out);
}
