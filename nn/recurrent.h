/* Recurrent layers (RNN, LSTM, GRU), linear and embedding layers.
 *
 * Layout follows the course: features x batch x time. An input sequence x is
 * (n_x, m, T_x), hidden states are (n_a, m, T_x), a state a_t is (n_a, m),
 * and weights act on column vectors (W @ x).
 *
 * Two paths compute the same function and the same gradients:
 *   TG_PATH_TAPE   the cells are composed from ops (matmul, add, tanh, ...),
 *                  so backprop-through-time falls out of the tape;
 *   TG_PATH_FUSED  hand-written kernels for whole layers (nn/fused.h), one
 *                  tape node per layer, much faster.
 * (Variable lengths and bidirectional layers run on the tape path; on the
 * fused path they are refused with a clear error until the fused engine
 * takes them.)
 *
 * Sequences as users have them (tg_recurrent_forward_with): lengths with
 * PyTorch's packed-sequence meaning, bidirectional layers (outputs
 * [forward; reverse] along features) and dropout between layers, in
 * training only (the tape's mode, core/tape.h), as nn.LSTM(dropout=).
 *
 * Parameter names (per layer; a tg_recurrent's `params` prefixes "l<k>.",
 * and "l<k>_reverse." for a reverse direction, as PyTorch's "_reverse"):
 *   RNN   Wax (n_a,n_x)  Waa (n_a,n_a)  ba (n_a,1)
 *         a_t = tanh(Waa a_{t-1} + Wax x_t + ba)
 *   LSTM  Wf Wi Wc Wo (n_a, n_a+n_x) acting on [a_{t-1}; x_t],  bf bi bc bo (n_a,1)
 *         f = sigmoid(Wf [a;x] + bf)   i = sigmoid(Wi [a;x] + bi)
 *         cc = tanh(Wc [a;x] + bc)     o = sigmoid(Wo [a;x] + bo)
 *         c_t = f * c_{t-1} + i * cc   a_t = o * tanh(c_t)
 *   GRU   Wr Wz Wn (n_a,n_x)  Ur Uz Un (n_a,n_a)  br bz bn bhn (n_a,1)
 *         r = sigmoid(Wr x + br + Ur a)   z = sigmoid(Wz x + bz + Uz a)
 *         n = tanh(Wn x + bn + r * (Un a + bhn))          (PyTorch's nn.GRU)
 *         n = tanh(Wn x + bn + Un (r * a) + bhn)          (linear_before_reset = false)
 *         a_t = (1 - z) * n + z * a_{t-1}
 *   In ONNX's terms PyTorch's GRU is linear_before_reset = 1, our default.
 *   PyTorch's two GRU bias vectors map as br = b_ir + b_hr, bz = b_iz + b_hz,
 *   bn = b_in, bhn = b_hn. (With linear_before_reset = false, bn and bhn
 *   only ever appear as a sum.)
 *   From PyTorch's nn.LSTM (gates i, f, g, o stacked in weight_ih/weight_hh):
 *   Wf = [W_hf | W_if], bf = b_if + b_hf, and so on with Wc from g; nn.RNN:
 *   Wax = weight_ih, Waa = weight_hh, ba = b_ih + b_hh.
 *
 * How the tape path computes it: the gates' weights are joined once per call
 * (for the LSTM, the slices W[:, n_a:] acting on x and W[:, :n_a] acting on
 * a), the input side of all T_x steps is one matmul per layer before the time
 * loop, and each step is one recurrent matmul plus the gate math. Layer k > 0
 * reads the hidden states of layer k-1. Every function checks its arguments
 * and reports a clear error on the tape (tg_fail for those without a tape);
 * parameters are never changed by a call that fails. */
#ifndef TG_RECURRENT_H
#define TG_RECURRENT_H

#include <stdbool.h>

#include "../core/api.h"
#include "../core/params.h"
#include "../core/rng.h"
#include "../core/tape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TG_CELL_RNN = 0, TG_CELL_LSTM = 1, TG_CELL_GRU = 2 } tg_cell;
typedef enum { TG_PATH_TAPE = 0, TG_PATH_FUSED = 1 } tg_path;

typedef enum {
    TG_INIT_COURSE = 0,  /* weights randn * 0.01, biases 0 (the course's initialize_parameters) */
    TG_INIT_XAVIER = 1,  /* Glorot uniform U(-s, s), s = sqrt(6 / (fan_in + fan_out)); biases 0 */
    TG_INIT_PYTORCH = 2  /* every weight and bias U(-1/sqrt(n_a), 1/sqrt(n_a)) */
} tg_init;
/* Xavier's fans are a weight's shape (fan_out, fan_in): (n_a, n_a + n_x) for an
 * LSTM gate. Every draw uses tg_rng in C order of each tensor (numpy's order). */

#define TG_CELL_MAX_PARAMS 10

/* The state carried from step to step: a (n_a, m); c (n_a, m) for LSTM only. */
typedef struct {
    tg_tensor *a, *c;
} tg_state;

/* One layer's parameters (one direction of it), in the order of the names above. */
typedef struct {
    int count;
    tg_tensor *p[TG_CELL_MAX_PARAMS];
    tg_params params; /* bare names: "Wax", "Waa", ... */
} tg_recurrent_layer;

typedef struct {
    tg_cell cell;
    int n_x, n_a, num_layers;
    tg_dtype dtype;
    bool linear_before_reset;  /* GRU only; true = PyTorch */
    bool bidirectional;        /* a reverse direction beside every layer */
    double dropout;            /* on every layer's output but the last's, in training */
    /* num_layers * directions, in PyTorch's order: l0, l0_reverse, l1, ...;
     * layer k > 0 takes directions * n_a inputs */
    tg_recurrent_layer *layers;
    tg_params params;          /* "l0.Wax", "l0_reverse.Wax", "l1.Wax", ... */
} tg_recurrent;

typedef struct {
    int num_layers;            /* default 1 */
    bool linear_before_reset;  /* GRU; default true (PyTorch) */
    tg_init init;              /* default TG_INIT_PYTORCH */
    bool bidirectional;        /* default false */
    double dropout;            /* in [0, 1), default 0: as nn.LSTM(dropout=) */
} tg_recurrent_options;

TG_API tg_recurrent_options tg_recurrent_defaults(void);

/* Parameters drawn from rng (in the order of the names, layer by layer); all
 * require gradients. NULL options = defaults. Draw order: l0's tensors in the
 * order of the names (RNN Wax Waa ba; LSTM Wf Wi Wc Wo bf bi bc bo; GRU Wr Wz
 * Wn Ur Uz Un br bz bn bhn), then l0_reverse's (bidirectional), then l1's,
 * ...; zero biases draw nothing, so with
 * TG_INIT_COURSE and seed s, l0.Wax is np.random.seed(s);
 * np.random.randn(n_a, n_x) * 0.01 and l0.Waa the next randn(n_a, n_a) * 0.01.
 * Each tensor's `name` is its name in `params` ("l0.Wax"). rng NULL: every
 * parameter is zero and nothing is drawn, for a model whose weights will be
 * loaded (tg_checkpoint_load, tg_npz_load). NULL on error. */
TG_API tg_recurrent *tg_recurrent_new(tg_cell cell, int n_x, int n_a, tg_dtype dtype,
                                      const tg_recurrent_options *options, tg_rng *rng);
TG_API void tg_recurrent_free(tg_recurrent *rnn);
/* Re-draw every parameter with an initialiser. */
TG_API tg_status tg_recurrent_init(tg_recurrent *rnn, tg_init init, tg_rng *rng);
TG_API const char *tg_cell_name(tg_cell cell); /* "rnn", "lstm", "gru" ("unknown" otherwise) */
/* How many states init and final hold: num_layers * (bidirectional ? 2 : 1),
 * in PyTorch's order (layer 0 forward, layer 0 reverse, layer 1 forward, ...);
 * 0 for a NULL model. */
TG_API int tg_recurrent_num_states(const tg_recurrent *rnn);

/* Fill one persistent parameter from rng in C order, the way the layers here
 * do (custom cells use it too). A weight is (fan_out, fan_in); bias = true
 * marks a bias. COURSE: weights randn * 0.01, biases 0; XAVIER: weights
 * U(-s, s) with s = sqrt(6 / (fan_in + fan_out)), biases 0; PYTORCH: weights
 * and biases U(-k, k), k = 1/sqrt(pytorch_fan) (the hidden size n_a for
 * recurrent layers, n_in for a linear layer). */
TG_API tg_status tg_init_param(tg_tensor *t, tg_init init, bool bias, int64_t pytorch_fan,
                               tg_rng *rng);

/* One step of layer k from ops: xt (n_in, m), prev -> next (tape tensors).
 * n_in is n_x for layer 0 and n_a (2 * n_a when bidirectional) above. With
 * bidirectional, k counts directions too: 2 * layer + (1 for the reverse
 * one). prev NULL (or NULL members) means zeros; next->c is NULL except for
 * the LSTM. next may be prev. The gates'
 * weights are joined at every call: to run a sequence, tg_recurrent_forward
 * is faster. */
TG_API tg_status tg_recurrent_step(tg_tape *tape, const tg_recurrent *rnn, int k, tg_tensor *xt,
                                   const tg_state *prev, tg_state *next);

/* x (n_x, m, T_x) -> hidden states of the last layer (n_a, m, T_x), contiguous
 * ((2 * n_a, m, T_x) when bidirectional: see tg_recurrent_forward_with).
 * x may be any strided view; m, T_x >= 1.
 * init: tg_recurrent_num_states(rnn) states to start from (NULL, or NULL
 * members: zeros); a state's c is read by the LSTM only. Persistent states
 * (tg_states_new) start detached; tape states carry the gradient back.
 * final: if not NULL, receives as many final states (tape tensors; c NULL
 * except for the LSTM). On error: NULL, the tape's error set, final all NULL.
 * A model with dropout needs tg_recurrent_forward_with's rng on a training
 * tape. */
TG_API tg_tensor *tg_recurrent_forward(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                                       const tg_state *init, tg_path path, tg_state *final);

/* Everything one run of a stack over a batch of real sequences may need. A
 * zeroed struct is valid: all sequences T_x long, zero initial states, no
 * final states, the tape path. */
typedef struct {
    /* m lengths in [1, T_x] (any order), or NULL: every sequence is T_x long.
     * PyTorch's packed sequences: sequence j reads steps 0 .. L_j - 1, its
     * outputs at t >= L_j are exactly 0 and send no gradient back, and its
     * final state is the state after its own last step; a reverse direction
     * reads it from step L_j - 1 back to 0. */
    const int32_t *lengths;
    const tg_state *init; /* as tg_recurrent_forward's */
    tg_state *final;      /* as tg_recurrent_forward's */
    tg_path path;
    /* Draws the masks of the model's dropout (one tg_dropout per layer but
     * the last, in the order of the layers); needed when rnn->dropout > 0
     * and the tape is training (core/tape.h); in evaluation mode nothing is
     * drawn. */
    tg_rng *rng;
} tg_recurrent_call;

/* x (n_x, m, T_x) -> the last layer's outputs (directions * n_a, m, T_x):
 * with bidirectional, [forward; reverse] along features, both at the time
 * step they read. call NULL = a zeroed call. */
TG_API tg_tensor *tg_recurrent_forward_with(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                                            const tg_recurrent_call *call);

/* ---- carrying state across calls (truncated BPTT) ------------------------------
 * Final states live on the tape and vanish at tg_tape_reset; keep them in
 * persistent tensors (which carry no gradient: the next chunk starts detached). */

/* tg_recurrent_num_states(rnn) persistent zero states for batch m (a, and c for LSTM). */
TG_API tg_state *tg_states_new(const tg_recurrent *rnn, int64_t m);
/* rnn: the model the states were made for (it gives their number). */
TG_API void tg_states_free(const tg_recurrent *rnn, tg_state *states);
/* dst (persistent) = src (tape) for all states, values only. Every state is
 * checked before anything is copied: on error dst is unchanged. */
TG_API tg_status tg_states_keep(const tg_recurrent *rnn, tg_state *dst, const tg_state *src);
TG_API void tg_states_zero(const tg_recurrent *rnn, tg_state *states);

/* ---- custom cells --------------------------------------------------------------- */

/* A cell written by the user from ops: next = cell(xt, prev). xt is (n_x, m);
 * return TG_OK with next->a (n_a, m) set (next->c is the cell's to use). */
typedef tg_status (*tg_cell_fn)(tg_tape *tape, void *ctx, tg_tensor *xt, const tg_state *prev,
                                tg_state *next);
/* Unroll any cell over x (n_x, m, T_x) from init; returns the stacked
 * hidden states (n_a, m, T_x), as tg_recurrent_forward does; final (if not
 * NULL) receives the last state. init->a is required (it fixes n_a and m);
 * init->c is passed to the first step as given (NULL for cells without one). */
TG_API tg_tensor *tg_unroll(tg_tape *tape, tg_cell_fn cell, void *ctx, tg_tensor *x,
                            const tg_state *init, tg_state *final);

/* ---- linear and embedding layers -------------------------------------------------- */

/* y = W x + b: W (n_out, n_in), b (n_out, 1). */
typedef struct {
    int n_in, n_out;
    tg_tensor *W, *b;
    tg_params params; /* under the names given at creation */
} tg_linear;

/* Names NULL: "W" and "b". The course's output head is ("Wya", "by") for an
 * RNN and ("Wy", "by") for an LSTM. W is drawn before b; TG_INIT_PYTORCH is
 * nn.Linear's U(-1/sqrt(n_in), 1/sqrt(n_in)). rng NULL: zeros (to be loaded). */
TG_API tg_linear *tg_linear_new(int n_in, int n_out, tg_dtype dtype, const char *w_name,
                                const char *b_name, tg_init init, tg_rng *rng);
TG_API void tg_linear_free(tg_linear *lin);
/* x (n_in, ...) -> (n_out, ...): any trailing shape (a (n_a, m, T_x) sequence
 * in one matmul; a non-contiguous x of 3 or more dimensions is copied once). */
TG_API tg_tensor *tg_linear_forward(tg_tape *tape, const tg_linear *lin, tg_tensor *x);

/* Embedding table E (dim, vocab): token id v is column v. */
typedef struct {
    int vocab, dim;
    tg_tensor *E;
    tg_params params; /* "E" */
} tg_embedding;

/* COURSE: randn * 0.01; XAVIER: fans (dim, vocab); PYTORCH: N(0, 1) as nn.Embedding.
 * rng NULL: zeros (to be loaded). */
TG_API tg_embedding *tg_embedding_new(int vocab, int dim, tg_dtype dtype, tg_init init,
                                      tg_rng *rng);
TG_API void tg_embedding_free(tg_embedding *emb);
/* ids (m, T_x) in C order -> (dim, m, T_x); every id in [0, vocab). */
TG_API tg_tensor *tg_embedding_forward(tg_tape *tape, const tg_embedding *emb,
                                       const int32_t *ids, int64_t m, int64_t T_x);

#ifdef __cplusplus
}
#endif

#endif
