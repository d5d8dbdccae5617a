/* Fused recurrent kernels: hand-written forward and backward of whole RNN,
 * LSTM and GRU layers over a sequence, each recorded on the tape as ONE node.
 *
 * They compute exactly what the composed cells of nn/recurrent.h compute
 * (the tests hold them to the tape within 1e-10 in f64), but faster: the
 * input projections of all T_x steps in one matmul, one recurrent matmul per
 * step, the gate math fused into one pass, and in backward the weight
 * gradients of all steps as one matmul at the end.
 *
 * Shapes as in the course: x (n_x, m, T_x), a0/c0 (n_a, m), outputs
 * (n_a, m, T_x). a0 or c0 NULL means zeros. Any strides are accepted.
 *
 * Two levels:
 *   - tape nodes (tg_rnn_fused, tg_lstm_fused, tg_gru_fused): one entry on the tape, the
 *     workspace taken from the tape's arena;
 *   - raw kernels (libxsmm style): the caller asks how many bytes of
 *     workspace a shape needs, owns that memory, and passes it to forward and
 *     then to backward. Forward writes into the workspace everything backward
 *     needs (the cache); the kernels allocate nothing. Backward uses the rest
 *     of the workspace as scratch and leaves the cache intact (it may run
 *     again); it adds (+=) into the gradients it is given, and a NULL
 *     gradient is not computed. */
#ifndef TG_FUSED_H
#define TG_FUSED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/tape.h"
#include "recurrent.h"
#include "../core/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- one layer as one tape node: the general form --------------------------------
 * Any cell, variable lengths, either direction. params are the layer's
 * parameters in the order of nn/recurrent.h (a tg_recurrent_layer's p):
 *   RNN Wax Waa ba;  LSTM Wf Wi Wc Wo bf bi bc bo;
 *   GRU Wr Wz Wn Ur Uz Un br bz bn bhn.
 * With lengths (m of them, each in 1 .. T_x), sequence j runs steps
 * 0 .. L_j - 1 only, as PyTorch's packed sequences do: its outputs at
 * t >= L_j are exactly zero, its final state is the state after its own
 * last step, and nothing is computed for the padded steps (the batch is
 * sorted by length, and each step runs only the sequences still going). A
 * reverse layer reads each sequence from its own last valid step back to
 * step 0 (output t belongs to input t in either direction). */
typedef struct {
    const int32_t *lengths;   /* m lengths, or NULL: every sequence has T_x steps */
    bool reverse;             /* run backwards in time */
    bool linear_before_reset; /* GRU: n = tanh(Wn x + bn + r (Un a + bhn)), PyTorch's */
    bool cell_states;         /* LSTM: also output every cell state c */
    bool final_states;        /* also output the final states a_n (and c_n) */
} tg_fused_layer_options;

/* lengths NULL, forward, linear_before_reset, no c, no final states. */
TG_API tg_fused_layer_options tg_fused_layer_defaults(void);

typedef struct {
    tg_tensor *a;   /* (n_a, m, T_x): every state (zero at padded steps) */
    tg_tensor *c;   /* (n_a, m, T_x), LSTM with cell_states; else NULL */
    tg_tensor *a_n; /* (n_a, m), with final_states; else NULL */
    tg_tensor *c_n; /* (n_a, m), LSTM with final_states; else NULL */
} tg_fused_layer_out;

/* x (n_x, m, T_x), a0 and c0 (n_a, m) or NULL (zeros; c0 for the LSTM
 * only) -> *out. NULL options: the defaults. */
TG_API tg_status tg_fused_layer(tg_tape *tape, tg_cell cell, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                         tg_tensor *const *params, const tg_fused_layer_options *options,
                         tg_fused_layer_out *out);

/* ---- tape nodes of the course's shape ----------------------------------------- */

/* a_t = tanh(Waa a_{t-1} + Wax x_t + ba) for t = 1..T_x -> a (n_a, m, T_x). */
TG_API tg_tensor *tg_rnn_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *Wax,
                        tg_tensor *Waa, tg_tensor *ba);

/* LSTM with W = {Wf, Wi, Wc, Wo} (n_a, n_a+n_x) on [a; x] and b = {bf, bi, bc, bo}
 * (n_a, 1) -> a (n_a, m, T_x), every hidden state; with c not NULL, *c also
 * receives every cell state (n_a, m, T_x). NULL on error (*c too). */
TG_API tg_tensor *tg_lstm_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                         tg_tensor *const W[4], tg_tensor *const b[4], tg_tensor **c);

/* GRU with PyTorch's equations (nn.GRU; recurrent.h's linear_before_reset):
 *     r = sigmoid(Wr x + br + Ur a)   z = sigmoid(Wz x + bz + Uz a)
 *     n = tanh(Wn x + bn + r * (Un a + bhn))   a_t = (1 - z) * n + z * a_{t-1}
 * W = {Wr, Wz, Wn} (n_a, n_x), U = {Ur, Uz, Un} (n_a, n_a),
 * b = {br, bz, bn, bhn} (n_a, 1) -> a (n_a, m, T_x). */
TG_API tg_tensor *tg_gru_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *const W[3],
                        tg_tensor *const U[3], tg_tensor *const b[4]);

/* ---- raw kernels with a caller-owned workspace ------------------------------------
 * The workspace must be aligned to 8 bytes (64 is best) and at least as large
 * as the *_workspace functions say. `with_backward` false asks for the
 * forward part only (inference); backward then refuses that workspace. */

/* Bytes of workspace for x (n_x, m, T_x) and n_a hidden units; every size >= 1. */
TG_API tg_status tg_rnn_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                 int64_t T_x, bool with_backward, size_t *bytes);
TG_API tg_status tg_lstm_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                  int64_t T_x, bool with_backward, size_t *bytes);
TG_API tg_status tg_gru_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                 int64_t T_x, bool with_backward, size_t *bytes);

/* x (n_x,m,T_x), a0 (n_a,m) or NULL, Wax (n_a,n_x), Waa (n_a,n_a), ba (n_a,1)
 * -> a (n_a,m,T_x) (NULL: the states stay in the workspace only). */
TG_API tg_status tg_rnn_fused_forward(const tg_tensor *x, const tg_tensor *a0, const tg_tensor *Wax,
                               const tg_tensor *Waa, const tg_tensor *ba, tg_tensor *a,
                               void *workspace, size_t workspace_bytes);

/* da (n_a,m,T_x) = d loss / d a, or NULL (zero) -> dx += , da0 += , dWax += ,
 * dWaa += , dba += (each NULL: not wanted). Shapes as in forward. */
TG_API tg_status tg_rnn_fused_backward(void *workspace, size_t workspace_bytes,
                                const tg_tensor *da, tg_tensor *dx, tg_tensor *da0,
                                tg_tensor *dWax, tg_tensor *dWaa, tg_tensor *dba);

/* x (n_x,m,T_x), a0, c0 (n_a,m) or NULL, W[k] (n_a,n_a+n_x), b[k] (n_a,1) for
 * k = f, i, c, o -> a, c (n_a,m,T_x) (either NULL: not copied out). */
TG_API tg_status tg_lstm_fused_forward(const tg_tensor *x, const tg_tensor *a0, const tg_tensor *c0,
                                const tg_tensor *const W[4], const tg_tensor *const b[4],
                                tg_tensor *a, tg_tensor *c, void *workspace,
                                size_t workspace_bytes);

/* da, dc (n_a,m,T_x) or NULL (zero) -> dx, da0, dc0, dW[k], db[k] += (NULL
 * pointers, or NULL members of dW / db: not wanted). */
TG_API tg_status tg_lstm_fused_backward(void *workspace, size_t workspace_bytes,
                                 const tg_tensor *da, const tg_tensor *dc, tg_tensor *dx,
                                 tg_tensor *da0, tg_tensor *dc0, tg_tensor *const dW[4],
                                 tg_tensor *const db[4]);

/* x (n_x,m,T_x), a0 (n_a,m) or NULL, W[k] (n_a,n_x), U[k] (n_a,n_a), b[k]
 * (n_a,1) in the orders above -> a (n_a,m,T_x) (NULL: not copied out). */
TG_API tg_status tg_gru_fused_forward(const tg_tensor *x, const tg_tensor *a0,
                               const tg_tensor *const W[3], const tg_tensor *const U[3],
                               const tg_tensor *const b[4], tg_tensor *a, void *workspace,
                               size_t workspace_bytes);

/* da (n_a,m,T_x) or NULL (zero) -> dx, da0, dW[k], dU[k], db[k] += (NULL: not wanted). */
TG_API tg_status tg_gru_fused_backward(void *workspace, size_t workspace_bytes, const tg_tensor *da,
                                tg_tensor *dx, tg_tensor *da0, tg_tensor *const dW[3],
                                tg_tensor *const dU[3], tg_tensor *const db[4]);

/* What forward saved for step t (0-based, like x[:, :, t]), as views into the
 * workspace (no copy; valid while the workspace is): the course's cache of
 * that step. Every view is (n_a, m), except xt (n_x, m). For an RNN or a GRU
 * the LSTM fields (c_prev, c_next, ft, it, cct, ot) are left zeroed (data NULL). */
typedef struct {
    tg_tensor xt, a_prev, a_next;
    tg_tensor c_prev, c_next, ft, it, cct, ot;
} tg_fused_step;

TG_API tg_status tg_fused_step_views(const void *workspace, size_t workspace_bytes, int64_t t,
                              tg_fused_step *step);

/* ---- where the time goes (for benchmarks) ---------------------------------------------
 * With profiling on, every fused layer adds its time by kind to process-wide
 * counters. The time loop's parts are summed over the team's threads (two
 * threads each busy 1 ms add 2 ms); loop_ns is the loop's own wall time. */
typedef struct {
    uint64_t moves_ns;   /* tensors into and out of the workspace (transposes) */
    uint64_t packing_ns; /* the weights stacked and packed for the products */
    uint64_t big_gemm_ns; /* products over all steps: inputs, weight and input gradients */
    uint64_t step_gemm_ns; /* the recurrent products, step by step (thread sum) */
    uint64_t gates_ns;     /* the gate passes (thread sum) */
    uint64_t wait_ns;      /* team members waiting for a step to finish (thread sum) */
    uint64_t loop_ns;      /* wall time of the time loops */
    uint64_t total_ns;     /* wall time inside the fused kernels */
    int64_t big_gemm_macs, step_gemm_macs; /* multiply-adds, for rates */
} tg_fused_profile;

TG_API void tg_fused_profile_enable(bool on);
/* The counters so far (and, with reset, zero them). */
TG_API void tg_fused_profile_read(tg_fused_profile *out, bool reset);

#ifdef __cplusplus
}
#endif

#endif
