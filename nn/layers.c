/* The linear layer (an output head over a whole sequence in one matmul) and
 * the embedding table (token ids to columns). */
#include <stdlib.h>

#include "../ops/ops.h"
#include "recurrent.h"

static bool valid_init(tg_init init);
static tg_tensor *new_param(tg_params *params, const char *name, tg_dtype dtype, int64_t rows,
                            int64_t cols);

/* ---- linear ------------------------------------------------------------------------- */

/* W (n_out, n_in), b (n_out, 1) */
tg_linear *tg_linear_new(int n_in, int n_out, tg_dtype dtype, const char *w_name,
                         const char *b_name, tg_init init, tg_rng *rng)
{
    const char *who = "tg_linear_new";
    if (n_in < 1 || n_out < 1 || !valid_init(init) || tg_dtype_size(dtype) == 0) {
        tg_fail(tg_dtype_size(dtype) == 0 ? TG_ERR_DTYPE : TG_ERR_ARG,
                "%s: n_in = %d, n_out = %d (each must be >= 1), init %d, dtype %d, rng %s", who,
                n_in, n_out, (int)init, (int)dtype, rng ? "given" : "NULL");
        return NULL;
    }
    tg_linear *lin = calloc(1, sizeof *lin);
    if (!lin) {
        tg_fail(TG_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    lin->n_in = n_in;
    lin->n_out = n_out;
    lin->W = new_param(&lin->params, w_name ? w_name : "W", dtype, n_out, n_in);
    lin->b = lin->W ? new_param(&lin->params, b_name ? b_name : "b", dtype, n_out, 1) : NULL;
    if (!lin->b || (rng && (tg_init_param(lin->W, init, false, n_in, rng) != TG_OK ||
                            tg_init_param(lin->b, init, true, n_in, rng) != TG_OK))) {
        tg_linear_free(lin);
        return NULL;
    }
    return lin;
}

void tg_linear_free(tg_linear *lin)
{
    if (!lin)
        return;
    tg_tensor_free(lin->W);
    tg_tensor_free(lin->b);
    tg_params_clear(&lin->params);
    free(lin);
}

/* x (n_in, ...) -> (n_out, ...) */
tg_tensor *tg_linear_forward(tg_tape *tape, const tg_linear *lin, tg_tensor *x)
{
    tg_op op; /* for its check of the tape and its error messages */
    if (!tg_op_begin(&op, tape, "tg_linear_forward", 0))
        return NULL;
    char s[64], sw[64];
    if (!lin || !lin->W || !lin->b || !x)
        return tg_op_fail(&op, TG_ERR_ARG, "%s is NULL",
                          !lin ? "the layer" : !x ? "x" : "a parameter of the layer");
    if (x->ndim < 0 || x->ndim > TG_MAX_DIMS || tg_dtype_size(x->dtype) == 0)
        return tg_op_fail(&op, TG_ERR_ARG, "x is not a valid tensor");
    if (x->ndim < 1 || x->shape[0] != lin->n_in || lin->W->ndim != 2 ||
        lin->W->shape[1] != lin->n_in)
        return tg_op_fail(&op, TG_ERR_SHAPE, "x is %s but W is %s: x needs n_in = %d rows",
                          tg_shape_str(x, s, sizeof s), tg_shape_str(lin->W, sw, sizeof sw),
                          lin->n_in);
    if (x->dtype != lin->W->dtype)
        return tg_op_fail(&op, TG_ERR_DTYPE, "x is %s, the layer is %s", tg_dtype_name(x->dtype),
                          tg_dtype_name(lin->W->dtype));
    if (x->ndim == 2) /* matmul takes any strides as they are */
        return tg_matmul_bias(tape, lin->W, x, lin->b);
    /* (n_in, d1, d2, ...) -> (n_in, d1*d2*...) -> one matmul -> (n_out, d1, d2, ...) */
    int64_t cols = 1, shape[TG_MAX_DIMS];
    for (int d = 1; d < x->ndim; d++) {
        cols *= x->shape[d]; /* no overflow: x exists */
        shape[d] = x->shape[d];
    }
    shape[0] = lin->n_out;
    tg_tensor *flat = tg_tensor_is_contiguous(x) ? x : tg_contiguous(tape, x);
    flat = tg_reshape(tape, flat, TG_DIMS(lin->n_in, cols));
    tg_tensor *y = tg_matmul_bias(tape, lin->W, flat, lin->b);
    return tg_reshape(tape, y, x->ndim, shape);
}

/* ---- embedding ------------------------------------------------------------------------ */

/* E (dim, vocab) */
tg_embedding *tg_embedding_new(int vocab, int dim, tg_dtype dtype, tg_init init, tg_rng *rng)
{
    const char *who = "tg_embedding_new";
    if (vocab < 1 || dim < 1 || !valid_init(init) || tg_dtype_size(dtype) == 0) {
        tg_fail(tg_dtype_size(dtype) == 0 ? TG_ERR_DTYPE : TG_ERR_ARG,
                "%s: vocab = %d, dim = %d (each must be >= 1), init %d, dtype %d, rng %s", who,
                vocab, dim, (int)init, (int)dtype, rng ? "given" : "NULL");
        return NULL;
    }
    tg_embedding *emb = calloc(1, sizeof *emb);
    if (!emb) {
        tg_fail(TG_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    emb->vocab = vocab;
    emb->dim = dim;
    emb->E = new_param(&emb->params, "E", dtype, dim, vocab);
    if (!emb->E) {
        tg_embedding_free(emb);
        return NULL;
    }
    if (!rng)
        return emb; /* zeros, to be loaded */
    if (init == TG_INIT_PYTORCH) /* nn.Embedding draws N(0, 1) */
        tg_rng_fill_randn(rng, emb->E);
    else if (tg_init_param(emb->E, init, false, dim, rng) != TG_OK) {
        tg_embedding_free(emb);
        return NULL;
    }
    return emb;
}

void tg_embedding_free(tg_embedding *emb)
{
    if (!emb)
        return;
    tg_tensor_free(emb->E);
    tg_params_clear(&emb->params);
    free(emb);
}

/* ids (m, T_x) -> (dim, m, T_x) */
tg_tensor *tg_embedding_forward(tg_tape *tape, const tg_embedding *emb, const int32_t *ids,
                                int64_t m, int64_t T_x)
{
    tg_op op; /* for its check of the tape and its error messages */
    if (!tg_op_begin(&op, tape, "tg_embedding_forward", 0))
        return NULL;
    if (!emb || !emb->E)
        return tg_op_fail(&op, TG_ERR_ARG, "the embedding %s", emb ? "has no table" : "is NULL");
    if (!ids || m < 1 || T_x < 1 || m > INT64_MAX / T_x)
        return tg_op_fail(&op, TG_ERR_ARG, "needs ids for m >= 1 rows of T_x >= 1 steps (ids %s, "
                          "m = %lld, T_x = %lld)",
                          ids ? "given" : "NULL", (long long)m, (long long)T_x);
    tg_tensor *cols = tg_gather_columns(tape, emb->E, ids, m * T_x);
    return tg_reshape(tape, cols, TG_DIMS(emb->dim, m, T_x));
}

/* ---- helpers ------------------------------------------------------------------------------ */

static bool valid_init(tg_init init)
{
    return init == TG_INIT_COURSE || init == TG_INIT_XAVIER || init == TG_INIT_PYTORCH;
}

/* A zeroed (rows, cols) tensor that requires a gradient, added to params
 * under name (which also labels the tensor); NULL on failure. */
static tg_tensor *new_param(tg_params *params, const char *name, tg_dtype dtype, int64_t rows,
                            int64_t cols)
{
    tg_tensor *t = tg_tensor_zeros(dtype, TG_DIMS(rows, cols));
    if (!t || tg_tensor_requires_grad(t, true) != TG_OK ||
        tg_params_add(params, name, t) != TG_OK) {
        tg_tensor_free(t);
        return NULL;
    }
    t->name = params->items[params->count - 1].name;
    return t;
}
