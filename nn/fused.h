/* Fused recurrent kernels: hand-written forward and backward of whole RNN and
 * LSTM layers over a sequence, each recorded on the tape as ONE node.
 *
 * They compute exactly what the composed cells of nn/recurrent.h compute
 * (the tests hold them to the tape within 1e-10 in f64), but faster: the
 * input projections of all T_x steps in one matmul, one recurrent matmul per
 * step, the gate math fused into one pass, and in backward the weight
 * gradients of all steps as one matmul at the end.
 *
 * Shapes as in the course: x (n_x, m, T_x), a0/c0 (n_a, m), outputs
 * (n_a, m, T_x). a0 or c0 NULL means zeros. Any strides are accepted. */
#ifndef TG_FUSED_H
#define TG_FUSED_H

#include "../core/tape.h"

/* a_t = tanh(Waa a_{t-1} + Wax x_t + ba) for t = 1..T_x -> a (n_a, m, T_x). */
tg_tensor *tg_rnn_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *Wax,
                        tg_tensor *Waa, tg_tensor *ba);

/* LSTM with W = {Wf, Wi, Wc, Wo} (n_a, n_a+n_x) on [a; x] and b = {bf, bi, bc, bo}
 * (n_a, 1) -> *a and *c, both (n_a, m, T_x) (all hidden and cell states). */
tg_status tg_lstm_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                        tg_tensor *const W[4], tg_tensor *const b[4], tg_tensor **a,
                        tg_tensor **c);

#endif
