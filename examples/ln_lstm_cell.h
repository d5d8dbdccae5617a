/* A LayerNorm-LSTM cell written from ops, for tg_unroll (nn/recurrent.h):
 * the cell of examples/ln_lstm.c, and of the gradient check in
 * tests/test_seq.c. Header-only (static functions) so that the example
 * stays one program.
 *
 * Layer normalisation (Ba, Kiros and Hinton, 2016) normalises the gates'
 * input and recurrent projections apart, and the cell state before its
 * tanh, each with a gain and a bias of its own:
 *     [f; i; o; g] = LN(Wx x; gain_x, bias_x) + LN(Wh a; gain_h, bias_h) + b
 *     c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
 *     a' = sigmoid(o) * tanh(LN(c'; gain_c, bias_c))
 * LN normalises each column (one sequence of the batch) over its features:
 * tg_layer_norm along axis 0, eps 1e-5. Every line is an op, so the
 * backward is the tape's. */
#ifndef TG_EXAMPLES_LN_LSTM_CELL_H
#define TG_EXAMPLES_LN_LSTM_CELL_H

#include "tapegrad.h"

typedef struct {
    int n_x, n_a;
    tg_tensor *Wx, *Wh, *b;         /* (4 n_a, n_x), (4 n_a, n_a), (4 n_a, 1): gates f, i, o, g */
    tg_tensor *gain_x, *bias_x;     /* (4 n_a, 1) */
    tg_tensor *gain_h, *bias_h;     /* (4 n_a, 1) */
    tg_tensor *gain_c, *bias_c;     /* (n_a, 1) */
    tg_params params;               /* all of them, by name */
} ln_lstm;

static void ln_lstm_free(ln_lstm *cell)
{
    for (int j = 0; j < cell->params.count; j++)
        tg_tensor_free(cell->params.items[j].tensor);
    tg_params_clear(&cell->params);
}

/* A persistent parameter requiring a gradient, added to the set. */
static tg_tensor *ln_lstm_param(ln_lstm *cell, const char *name, tg_dtype dtype, int64_t rows,
                                int64_t cols)
{
    tg_tensor *t = tg_tensor_zeros(dtype, TG_DIMS(rows, cols));
    if (t && (tg_tensor_requires_grad(t, true) != TG_OK ||
              tg_params_add(&cell->params, name, t) != TG_OK)) {
        tg_tensor_free(t);
        return NULL;
    }
    if (t)
        t->name = name;
    return t;
}

/* Weights U(-1/sqrt(n_a), 1/sqrt(n_a)) as PyTorch's LSTM; gains 1, biases 0
 * but the forget gate's, 1 (so the cell starts by remembering). */
static tg_status ln_lstm_init(ln_lstm *cell, int n_x, int n_a, tg_dtype dtype, tg_rng *rng)
{
    *cell = (ln_lstm){.n_x = n_x, .n_a = n_a};
    tg_tensor **slots[9] = {&cell->Wx,     &cell->Wh,     &cell->b,
                            &cell->gain_x, &cell->bias_x, &cell->gain_h,
                            &cell->bias_h, &cell->gain_c, &cell->bias_c};
    static const char *names[9] = {"Wx",     "Wh",     "b",      "gain_x", "bias_x",
                                   "gain_h", "bias_h", "gain_c", "bias_c"};
    for (int k = 0; k < 9; k++) {
        int64_t rows = k < 7 ? 4 * (int64_t)n_a : n_a, cols = k == 0 ? n_x : k == 1 ? n_a : 1;
        if (!(*slots[k] = ln_lstm_param(cell, names[k], dtype, rows, cols))) {
            ln_lstm_free(cell);
            return tg_last_status();
        }
    }
    if (tg_init_param(cell->Wx, TG_INIT_PYTORCH, false, n_a, rng) != TG_OK ||
        tg_init_param(cell->Wh, TG_INIT_PYTORCH, false, n_a, rng) != TG_OK) {
        ln_lstm_free(cell);
        return tg_last_status();
    }
    tg_tensor_fill(cell->gain_x, 1.0);
    tg_tensor_fill(cell->gain_h, 1.0);
    tg_tensor_fill(cell->gain_c, 1.0);
    for (int64_t i = 0; i < n_a; i++) /* rows 0 .. n_a-1: the forget gate */
        tg_tensor_set_flat(cell->b, i, 1.0);
    return TG_OK;
}

/* One step, a tg_cell_fn: xt (n_x, m), prev {a, c} (n_a, m) -> next. */
static tg_status ln_lstm_step(tg_tape *tape, void *ctx, tg_tensor *xt, const tg_state *prev,
                              tg_state *next)
{
    const ln_lstm *p = ctx;
    int64_t n = p->n_a;
    double eps = 1e-5;
    tg_tensor *from_x =
        tg_layer_norm(tape, tg_matmul(tape, p->Wx, xt), 0, p->gain_x, p->bias_x, eps);
    tg_tensor *from_a = tg_layer_norm(tape, tg_matmul(tape, p->Wh, prev->a), 0, p->gain_h,
                                      p->bias_h, eps);
    tg_tensor *z = tg_add(tape, tg_add(tape, from_x, from_a), p->b);
    tg_tensor *gates = tg_sigmoid(tape, tg_slice(tape, z, 0, 0, 3 * n, 1)); /* f, i, o */
    tg_tensor *g = tg_tanh(tape, tg_slice(tape, z, 0, 3 * n, 4 * n, 1));
    tg_tensor *f = tg_slice(tape, gates, 0, 0, n, 1);
    tg_tensor *i = tg_slice(tape, gates, 0, n, 2 * n, 1);
    tg_tensor *o = tg_slice(tape, gates, 0, 2 * n, 3 * n, 1);
    next->c = tg_add(tape, tg_mul(tape, f, prev->c), tg_mul(tape, i, g));
    tg_tensor *c_norm = tg_layer_norm(tape, next->c, 0, p->gain_c, p->bias_c, eps);
    next->a = tg_mul(tape, o, tg_tanh(tape, c_norm));
    return next->a ? TG_OK : tg_tape_status(tape);
}

#endif
