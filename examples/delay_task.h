/* The delay task of examples/custom_cell.c and examples/ln_lstm.c: read a
 * stream of random symbols and output, at every step, the symbol seen
 * `delay` steps earlier (symbol 0 before the stream starts). Only a cell
 * that remembers can beat guessing, ln(n_sym). Header-only, so that each
 * example stays one program. */
#ifndef TG_EXAMPLES_DELAY_TASK_H
#define TG_EXAMPLES_DELAY_TASK_H

#include "tapegrad.h"

/* A fresh batch: x (n_sym, m, T) one-hot random symbols, drawn sequence by
 * sequence, step by step; targets[s * T + t] the symbol delay steps back. */
static void delay_batch(tg_rng *rng, tg_tensor *x, int32_t *targets, int delay)
{
    int64_t n_sym = x->shape[0], m = x->shape[1], T = x->shape[2];
    tg_tensor_fill(x, 0.0);
    for (int64_t s = 0; s < m; s++) {
        int32_t *row = targets + s * T; /* holds the symbols, then shifts them */
        for (int64_t t = 0; t < T; t++) {
            row[t] = (int32_t)tg_rng_below(rng, (uint64_t)n_sym);
            tg_tensor_set(x, (int64_t[]){row[t], s, t}, 1.0);
        }
        for (int64_t t = T - 1; t >= 0; t--)
            row[t] = t >= delay ? row[t - delay] : 0;
    }
}

#endif
