/* Recurrent layers (RNN, LSTM, GRU) composed from tape ops, so that
 * backprop-through-time is the tape's ordinary backward.
 *
 * The composed path is written for speed without leaving the ops:
 *   - a layer's gate weights are joined once per call into Wx (G*n_a, n_in)
 *     acting on the input and Wh (G*n_a, n_a) acting on the state (for the
 *     LSTM from the slice views W[:, n_a:] and W[:, :n_a] of each gate);
 *   - the input side of every time step is ONE matmul Wx @ X + b before the
 *     time loop, with X the layer's input laid out time-major (n_in, T_x, m),
 *     so that step t's projections are the contiguous columns [t*m, (t+1)*m);
 *   - each step is one recurrent matmul Wh @ a_prev, one add, and the gate
 *     nonlinearities applied to row blocks (sigmoid once over all sigmoid
 *     gates);
 *   - the hidden states are stacked time-major for the next layer (which is
 *     then its input as is) and batch-major (n_a, m, T_x) for the last.
 * The LSTM's gates are stacked f, i, o, c so that one sigmoid covers the
 * first 3*n_a rows.
 *
 * Sequences of several lengths, on the tape path, are masked: at a step
 * where some sequence j has ended (t >= L_j), its state is held with
 * tg_where(valid, new, old) and its output is tg_where(valid, new, 0).
 * where copies, so a held state keeps its bits and nothing flows back from
 * a padded position. A reverse direction runs t = T_x-1 .. 0 under the same
 * masks, so sequence j starts from its initial state at its own last step
 * L_j - 1. Steps where every sequence is valid take no mask. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/platform.h"
#include "../ops/ops.h"
#include "recurrent.h"

#include "fused.h"

/* ---- the parameter table -------------------------------------------------------- */

/* Columns of a parameter: the layer's input n_in, the state n_a, both, or 1. */
typedef enum { COLS_IN, COLS_STATE, COLS_BOTH, COLS_BIAS } cols_kind;

typedef struct {
    const char *name;
    int count, gates; /* parameters per layer; gate blocks in Wx */
    const char *names[TG_CELL_MAX_PARAMS];
    cols_kind cols[TG_CELL_MAX_PARAMS];
} cell_info;

static const cell_info CELLS[] = {
    [TG_CELL_RNN] = {"rnn", 3, 1, {"Wax", "Waa", "ba"}, {COLS_IN, COLS_STATE, COLS_BIAS}},
    [TG_CELL_LSTM] = {"lstm", 8, 4,
                      {"Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo"},
                      {COLS_BOTH, COLS_BOTH, COLS_BOTH, COLS_BOTH, COLS_BIAS, COLS_BIAS, COLS_BIAS,
                       COLS_BIAS}},
    [TG_CELL_GRU] = {"gru", 10, 3,
                     {"Wr", "Wz", "Wn", "Ur", "Uz", "Un", "br", "bz", "bn", "bhn"},
                     {COLS_IN, COLS_IN, COLS_IN, COLS_STATE, COLS_STATE, COLS_STATE, COLS_BIAS,
                      COLS_BIAS, COLS_BIAS, COLS_BIAS}},
};

/* A layer's weights joined for one call (tape tensors). */
typedef struct {
    tg_cell cell;
    bool linear_before_reset;
    int64_t n_a;
    tg_tensor *Wx; /* (G*n_a, n_in) on the input */
    tg_tensor *b;  /* (G*n_a, 1) added to the input side */
    tg_tensor *Wh; /* (G*n_a, n_a) on the state; GRU without linear_before_reset: (2*n_a, n_a) */
    tg_tensor *Un, *bhn; /* GRU: the candidate's recurrent weight and bias */
} joined_weights;

static bool valid_cell(tg_cell cell);
static int directions(const tg_recurrent *rnn);
static int64_t layer_inputs(const tg_recurrent *rnn, int u);
static int64_t param_cols(cols_kind kind, int64_t n_in, int64_t n_a);
static tg_status check_model(const tg_recurrent *rnn, const char *who);
static tg_status check_size(tg_cell cell, int n_x, int n_a, const tg_recurrent_options *o,
                            tg_dtype dtype);
static tg_status add_layer(tg_recurrent *rnn, int u);
static bool tape_ready(tg_tape *tape, const char *who);
static bool model_on_tape(tg_tape *tape, tg_status model);
static bool check_input(tg_tape *tape, const char *who, const char *what, const tg_tensor *x,
                        int ndim, int64_t rows, tg_dtype dtype);
static bool check_state(tg_tape *tape, const char *who, const tg_recurrent *rnn,
                        const tg_state *state, const char *what, int k, int64_t m);
static bool check_call(tg_tape *tape, const char *who, const tg_recurrent *rnn, tg_tensor *x,
                       const tg_recurrent_call *call);
static tg_tensor *forward(tg_tape *tape, const char *who, const tg_recurrent *rnn, tg_tensor *x,
                          const tg_recurrent_call *call);
static tg_tensor *forward_tape(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                               const tg_recurrent_call *call);
static tg_tensor *forward_fused(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                                const tg_recurrent_call *call);
static tg_tensor *between_layers(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *h,
                                 tg_rng *rng);
static bool join_weights(tg_tape *tape, const tg_recurrent *rnn, int u, joined_weights *w);
static tg_state start_state(tg_tape *tape, const tg_recurrent *rnn, const tg_state *init,
                            int64_t m);
static tg_status cell_step(tg_tape *tape, const joined_weights *w, tg_tensor *xp,
                           const tg_state *prev, tg_state *next);

/* ---- life cycle ------------------------------------------------------------------- */

tg_recurrent_options tg_recurrent_defaults(void)
{
    tg_recurrent_options o = {.num_layers = 1, .linear_before_reset = true,
                              .init = TG_INIT_PYTORCH, .bidirectional = false, .dropout = 0};
    return o;
}

int tg_recurrent_num_states(const tg_recurrent *rnn)
{
    return rnn ? rnn->num_layers * directions(rnn) : 0;
}

const char *tg_cell_name(tg_cell cell) { return valid_cell(cell) ? CELLS[cell].name : "unknown"; }

tg_recurrent *tg_recurrent_new(tg_cell cell, int n_x, int n_a, tg_dtype dtype,
                               const tg_recurrent_options *options, tg_rng *rng)
{
    tg_recurrent_options o = options ? *options : tg_recurrent_defaults();
    if (o.init != TG_INIT_COURSE && o.init != TG_INIT_XAVIER && o.init != TG_INIT_PYTORCH) {
        tg_fail(TG_ERR_ARG, "tg_recurrent_new: unknown initialiser %d", (int)o.init);
        return NULL;
    }
    if (check_size(cell, n_x, n_a, &o, dtype) != TG_OK)
        return NULL;
    int units = o.num_layers * (o.bidirectional ? 2 : 1);
    tg_recurrent *rnn = calloc(1, sizeof *rnn);
    tg_recurrent_layer *layers = calloc((size_t)units, sizeof *layers);
    if (!rnn || !layers) {
        free(rnn);
        free(layers);
        tg_fail(TG_ERR_NOMEM, "tg_recurrent_new: out of memory for %d layers", o.num_layers);
        return NULL;
    }
    *rnn = (tg_recurrent){.cell = cell, .n_x = n_x, .n_a = n_a, .num_layers = o.num_layers,
                          .dtype = dtype, .linear_before_reset = o.linear_before_reset,
                          .bidirectional = o.bidirectional, .dropout = o.dropout,
                          .layers = layers};
    for (int u = 0; u < units; u++)
        if (add_layer(rnn, u) != TG_OK)
            goto fail;
    /* Without a generator the weights stay zero: a model about to be loaded. */
    if (rng && tg_recurrent_init(rnn, o.init, rng) != TG_OK)
        goto fail;
    return rnn;
fail:
    tg_recurrent_free(rnn); /* keeps the message of the failure */
    return NULL;
}

/* Layer u's zeroed parameters (direction u % directions of layer u /
 * directions), named in the layer's set and, prefixed, in the model's. */
static tg_status add_layer(tg_recurrent *rnn, int u)
{
    const cell_info *info = &CELLS[rnn->cell];
    tg_recurrent_layer *layer = &rnn->layers[u];
    int64_t n_in = layer_inputs(rnn, u);
    for (int j = 0; j < info->count; j++) {
        int64_t cols = param_cols(info->cols[j], n_in, rnn->n_a);
        tg_tensor *t = tg_tensor_zeros(rnn->dtype, TG_DIMS(rnn->n_a, cols));
        if (!t || tg_tensor_requires_grad(t, true) != TG_OK) {
            tg_tensor_free(t);
            return tg_last_status();
        }
        layer->p[layer->count++] = t;
        if (tg_params_add(&layer->params, info->names[j], t) != TG_OK)
            return tg_last_status();
    }
    char prefix[32];
    snprintf(prefix, sizeof prefix, "l%d%s.", u / directions(rnn),
             u % directions(rnn) ? "_reverse" : "");
    int first = rnn->params.count;
    if (tg_params_extend(&rnn->params, prefix, &layer->params) != TG_OK)
        return tg_last_status();
    /* names for messages (gradcheck's "worst at l0.Wax[3]"); the set owns them */
    for (int j = 0; j < info->count; j++)
        layer->p[j]->name = rnn->params.items[first + j].name;
    return TG_OK;
}

void tg_recurrent_free(tg_recurrent *rnn)
{
    if (!rnn)
        return;
    for (int u = 0; rnn->layers && u < tg_recurrent_num_states(rnn); u++) {
        tg_recurrent_layer *layer = &rnn->layers[u];
        for (int j = 0; j < layer->count; j++)
            tg_tensor_free(layer->p[j]);
        tg_params_clear(&layer->params);
    }
    free(rnn->layers);
    tg_params_clear(&rnn->params);
    free(rnn);
}

tg_status tg_recurrent_init(tg_recurrent *rnn, tg_init init, tg_rng *rng)
{
    tg_status s = check_model(rnn, "tg_recurrent_init");
    if (s != TG_OK)
        return s;
    if (!rng)
        return tg_fail(TG_ERR_ARG, "tg_recurrent_init: rng is NULL");
    if (init != TG_INIT_COURSE && init != TG_INIT_XAVIER && init != TG_INIT_PYTORCH)
        return tg_fail(TG_ERR_ARG, "tg_recurrent_init: unknown initialiser %d", (int)init);
    const cell_info *info = &CELLS[rnn->cell];
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++)
        for (int j = 0; j < info->count; j++) {
            s = tg_init_param(rnn->layers[u].p[j], init, info->cols[j] == COLS_BIAS, rnn->n_a,
                              rng);
            if (s != TG_OK)
                return s;
        }
    return TG_OK;
}

/* ---- one step, a whole sequence ---------------------------------------------------- */

/* xt (n_in, m), prev (n_a, m) -> next (n_a, m) */
tg_status tg_recurrent_step(tg_tape *tape, const tg_recurrent *rnn, int k, tg_tensor *xt,
                            const tg_state *prev, tg_state *next)
{
    const char *who = "tg_recurrent_step";
    tg_status model = check_model(rnn, who);
    if (!tape_ready(tape, who))
        return tape ? TG_ERR_STATE : TG_ERR_ARG;
    if (!model_on_tape(tape, model))
        return tg_tape_status(tape);
    if (!next)
        return tg_tape_fail(tape, TG_ERR_ARG, "%s: next is NULL", who);
    tg_state given = prev ? *prev : (tg_state){NULL, NULL}; /* next may be prev */
    prev = &given;
    next->a = next->c = NULL;
    if (k < 0 || k >= tg_recurrent_num_states(rnn))
        return tg_tape_fail(tape, TG_ERR_ARG, "%s: layer %d does not exist (the model has %d)",
                            who, k, tg_recurrent_num_states(rnn));
    if (!check_input(tape, who, "xt", xt, 2, layer_inputs(rnn, k), rnn->dtype))
        return tg_tape_status(tape);
    int64_t m = xt->shape[1];
    if (!check_state(tape, who, rnn, prev, "prev", -1, m))
        return tg_tape_status(tape);
    joined_weights w;
    if (!join_weights(tape, rnn, k, &w))
        return tg_tape_status(tape);
    tg_state start = start_state(tape, rnn, prev, m);
    tg_tensor *xp = tg_add(tape, tg_matmul(tape, w.Wx, xt), w.b);
    if (!xp || !start.a)
        return tg_tape_status(tape);
    return cell_step(tape, &w, xp, &start, next);
}

/* x (n_x, m, T_x) -> a (n_a, m, T_x) */
tg_tensor *tg_recurrent_forward(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                                const tg_state *init, tg_path path, tg_state *final)
{
    tg_recurrent_call call = {.init = init, .final = final, .path = path};
    return forward(tape, "tg_recurrent_forward", rnn, x, &call);
}

/* x (n_x, m, T_x) -> (directions * n_a, m, T_x) */
tg_tensor *tg_recurrent_forward_with(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                                     const tg_recurrent_call *call)
{
    tg_recurrent_call zeroed = {0};
    return forward(tape, "tg_recurrent_forward_with", rnn, x, call ? call : &zeroed);
}

/* Both entry points: validate, then one path; final is all NULL on error. */
static tg_tensor *forward(tg_tape *tape, const char *who, const tg_recurrent *rnn, tg_tensor *x,
                          const tg_recurrent_call *call)
{
    tg_status model = check_model(rnn, who);
    int n_states = model == TG_OK ? tg_recurrent_num_states(rnn) : 0;
    for (int u = 0; call->final && u < n_states; u++)
        call->final[u] = (tg_state){NULL, NULL};
    if (!tape_ready(tape, who) || !model_on_tape(tape, model) ||
        !check_call(tape, who, rnn, x, call))
        return NULL;
    tg_tensor *out = call->path == TG_PATH_FUSED ? forward_fused(tape, rnn, x, call)
                                                 : forward_tape(tape, rnn, x, call);
    for (int u = 0; !out && call->final && u < n_states; u++)
        call->final[u] = (tg_state){NULL, NULL};
    return out;
}

/* ---- carrying state across calls ---------------------------------------------------- */

tg_state *tg_states_new(const tg_recurrent *rnn, int64_t m)
{
    if (check_model(rnn, "tg_states_new") != TG_OK)
        return NULL;
    if (m < 1) {
        tg_fail(TG_ERR_ARG, "tg_states_new: batch size m = %lld (needs m >= 1)", (long long)m);
        return NULL;
    }
    tg_state *states = calloc((size_t)tg_recurrent_num_states(rnn), sizeof *states);
    if (!states) {
        tg_fail(TG_ERR_NOMEM, "tg_states_new: out of memory");
        return NULL;
    }
    for (int k = 0; k < tg_recurrent_num_states(rnn); k++) {
        states[k].a = tg_tensor_zeros(rnn->dtype, TG_DIMS(rnn->n_a, m));
        if (rnn->cell == TG_CELL_LSTM)
            states[k].c = tg_tensor_zeros(rnn->dtype, TG_DIMS(rnn->n_a, m));
        if (!states[k].a || (rnn->cell == TG_CELL_LSTM && !states[k].c)) {
            tg_states_free(rnn, states); /* keeps the allocation's message */
            return NULL;
        }
    }
    return states;
}

void tg_states_free(const tg_recurrent *rnn, tg_state *states)
{
    if (!states || !rnn)
        return;
    for (int k = 0; k < tg_recurrent_num_states(rnn); k++) {
        tg_tensor_free(states[k].a);
        tg_tensor_free(states[k].c);
    }
    free(states);
}

tg_status tg_states_keep(const tg_recurrent *rnn, tg_state *dst, const tg_state *src)
{
    const char *who = "tg_states_keep";
    tg_status s = check_model(rnn, who);
    if (s != TG_OK)
        return s;
    if (!dst || !src)
        return tg_fail(TG_ERR_ARG, "%s: %s is NULL", who, dst ? "src" : "dst");
    bool lstm = rnn->cell == TG_CELL_LSTM;
    /* check every state before copying anything, so a failure changes nothing */
    for (int k = 0; k < tg_recurrent_num_states(rnn); k++)
        for (int which = 0; which < (lstm ? 2 : 1); which++) {
            const tg_tensor *d = which ? dst[k].c : dst[k].a, *from = which ? src[k].c : src[k].a;
            const char *name = which ? "c" : "a";
            char sd[64], sf[64];
            if (!d || !from)
                return tg_fail(TG_ERR_ARG, "%s: %s[%d].%s is NULL", who, d ? "src" : "dst", k,
                               name);
            if (!tg_tensor_same_shape(d, from) || d->ndim != 2 || d->shape[0] != rnn->n_a)
                return tg_fail(TG_ERR_SHAPE, "%s: layer %d: src.%s is %s, dst.%s is %s (both must "
                               "be (n_a, m) with n_a = %d)",
                               who, k, name, tg_shape_str(from, sf, sizeof sf), name,
                               tg_shape_str(d, sd, sizeof sd), rnn->n_a);
            if (d->dtype != rnn->dtype || from->dtype != rnn->dtype)
                return tg_fail(TG_ERR_DTYPE, "%s: layer %d: src.%s is %s and dst.%s is %s; the "
                               "model is %s",
                               who, k, name, tg_dtype_name(from->dtype), name,
                               tg_dtype_name(d->dtype), tg_dtype_name(rnn->dtype));
        }
    for (int k = 0; k < tg_recurrent_num_states(rnn); k++) {
        tg_tensor_copy_into(dst[k].a, src[k].a);
        if (lstm)
            tg_tensor_copy_into(dst[k].c, src[k].c);
    }
    return TG_OK;
}

void tg_states_zero(const tg_recurrent *rnn, tg_state *states)
{
    if (!states || !rnn)
        return;
    for (int k = 0; k < tg_recurrent_num_states(rnn); k++) {
        if (states[k].a)
            tg_tensor_fill(states[k].a, 0.0);
        if (states[k].c)
            tg_tensor_fill(states[k].c, 0.0);
    }
}

/* ---- custom cells ------------------------------------------------------------------ */

static bool check_unroll(tg_tape *tape, tg_cell_fn cell, const tg_tensor *x,
                         const tg_state *init);
static bool check_cell_state(tg_tape *tape, tg_status status, const tg_state *next,
                             const tg_tensor *a0, int64_t t);

/* x (n_x, m, T_x), init->a (n_a, m) -> (n_a, m, T_x) */
tg_tensor *tg_unroll(tg_tape *tape, tg_cell_fn cell, void *ctx, tg_tensor *x,
                     const tg_state *init, tg_state *final)
{
    if (final)
        *final = (tg_state){NULL, NULL};
    if (!tape_ready(tape, "tg_unroll") || !check_unroll(tape, cell, x, init))
        return NULL;
    int64_t T_x = x->shape[2];
    tg_tensor **steps = tg_tape_alloc(tape, sizeof *steps * (size_t)T_x);
    if (!steps)
        return NULL;
    tg_state state = *init;
    for (int64_t t = 0; t < T_x; t++) {
        tg_tensor *xt = tg_select(tape, x, 2, t);
        tg_state next = {NULL, NULL};
        tg_status status = xt ? cell(tape, ctx, xt, &state, &next) : tg_tape_status(tape);
        if (!check_cell_state(tape, status, &next, init->a, t))
            return NULL;
        state = next;
        steps[t] = state.a;
    }
    tg_tensor *out = tg_stack(tape, (int)T_x, steps, 2);
    if (out && final)
        *final = state;
    return out;
}

/* tg_unroll's arguments: a cell, x (n_x, m, T_x) and init->a (n_a, m) of x's dtype. */
static bool check_unroll(tg_tape *tape, tg_cell_fn cell, const tg_tensor *x,
                         const tg_state *init)
{
    const char *who = "tg_unroll";
    char s[64], s2[64];
    if (!cell || !x || !init || !init->a) {
        tg_tape_fail(tape, TG_ERR_ARG, "%s: %s is NULL", who,
                     !cell ? "cell" : !x ? "x" : !init ? "init" : "init->a (it fixes n_a)");
        return false;
    }
    int64_t m = x->ndim == 3 ? x->shape[1] : 0, T_x = x->ndim == 3 ? x->shape[2] : 0;
    if (x->ndim != 3 || x->shape[0] < 1 || m < 1 || T_x < 1 || T_x > INT_MAX) {
        tg_tape_fail(tape, TG_ERR_SHAPE, "%s: x is %s; needs (n_x, m, T_x), every size >= 1 and "
                     "T_x <= %d",
                     who, x->ndim >= 0 && x->ndim <= TG_MAX_DIMS ? tg_shape_str(x, s, sizeof s)
                                                                 : "not a tensor",
                     INT_MAX);
        return false;
    }
    const tg_tensor *a0 = init->a;
    if (a0->ndim != 2 || a0->shape[1] != m || a0->shape[0] < 1) {
        tg_tape_fail(tape, TG_ERR_SHAPE,
                     "%s: init->a is %s; needs (n_a, m) with m = %lld from x %s", who,
                     tg_shape_str(a0, s, sizeof s), (long long)m, tg_shape_str(x, s2, sizeof s2));
        return false;
    }
    if (a0->dtype != x->dtype) {
        tg_tape_fail(tape, TG_ERR_DTYPE, "%s: init->a is %s but x is %s", who,
                     tg_dtype_name(a0->dtype), tg_dtype_name(x->dtype));
        return false;
    }
    return true;
}

/* What a user's cell returned at step t: TG_OK and a state like init's. */
static bool check_cell_state(tg_tape *tape, tg_status status, const tg_state *next,
                             const tg_tensor *a0, int64_t t)
{
    const char *who = "tg_unroll";
    char s[64], s2[64];
    if (tg_tape_status(tape) != TG_OK)
        return false;
    if (status != TG_OK || !next->a) {
        tg_tape_fail(tape, status != TG_OK ? status : TG_ERR_ARG, "%s: the cell %s at step %lld",
                     who, status != TG_OK ? "failed" : "returned no state (next->a is NULL)",
                     (long long)t);
        return false;
    }
    if (!tg_tensor_same_shape(next->a, a0) || next->a->dtype != a0->dtype) {
        tg_tape_fail(tape, TG_ERR_SHAPE, "%s: the cell returned a %s %s at step %lld, but "
                     "init->a is %s %s",
                     who, tg_dtype_name(next->a->dtype), tg_shape_str(next->a, s, sizeof s),
                     (long long)t, tg_dtype_name(a0->dtype), tg_shape_str(a0, s2, sizeof s2));
        return false;
    }
    return true;
}

/* ---- the composed layers ------------------------------------------------------------- */

/* For each step t, a (1, m) mask of the sequences still running (t < L_j),
 * or NULL where all are: those steps need no masking. NULL array: no
 * lengths (or all T_x). */
static tg_tensor **step_masks(tg_tape *tape, const tg_recurrent *rnn, const int32_t *lengths,
                              int64_t m, int64_t T_x)
{
    int64_t shortest = T_x;
    for (int64_t j = 0; lengths && j < m; j++)
        shortest = lengths[j] < shortest ? lengths[j] : shortest;
    if (shortest == T_x)
        return NULL;
    tg_tensor **masks = tg_tape_alloc(tape, sizeof *masks * (size_t)T_x);
    for (int64_t t = 0; masks && t < T_x; t++) {
        masks[t] = NULL;
        if (t < shortest)
            continue;
        if (!(masks[t] = tg_tape_tensor(tape, rnn->dtype, TG_DIMS(1, m))))
            return NULL;
        for (int64_t j = 0; j < m; j++)
            tg_tensor_set_flat(masks[t], j, t < lengths[j]);
    }
    return masks;
}

/* One direction of layer u over in (n_in, T_x, m), time-major: the outputs
 * of every step go to steps[t] (at the step they read, in both directions),
 * the state after the last step read to *final. */
static bool run_direction(tg_tape *tape, const tg_recurrent *rnn, int u, tg_tensor *in,
                          tg_tensor *const *masks, const tg_state *init, tg_tensor **steps,
                          tg_state *final)
{
    int64_t T_x = in->shape[1], m = in->shape[2];
    bool reverse = u % directions(rnn) == 1;
    joined_weights w;
    if (!join_weights(tape, rnn, u, &w))
        return false;
    /* the input side of all T_x steps at once: (G*n_a, T_x*m) */
    tg_tensor *flat = tg_reshape(tape, in, TG_DIMS(in->shape[0], T_x * m));
    tg_tensor *xp = tg_add(tape, tg_matmul(tape, w.Wx, flat), w.b);
    xp = tg_reshape(tape, xp, TG_DIMS(w.Wx->shape[0], T_x, m));
    tg_tensor *zero = masks ? tg_tape_zeros(tape, rnn->dtype, 0, NULL) : NULL;
    tg_state state = start_state(tape, rnn, init, m), next;
    if (!xp || !state.a || (masks && !zero))
        return false;
    for (int64_t s = 0; s < T_x; s++) {
        int64_t t = reverse ? T_x - 1 - s : s;
        tg_tensor *xp_t = tg_select(tape, xp, 1, t);
        if (!xp_t || cell_step(tape, &w, xp_t, &state, &next) != TG_OK)
            return false;
        steps[t] = next.a;
        if (masks && masks[t]) { /* ended sequences hold their state and output 0 */
            steps[t] = tg_where(tape, masks[t], next.a, zero);
            next.a = tg_where(tape, masks[t], next.a, state.a);
            if (next.c)
                next.c = tg_where(tape, masks[t], next.c, state.c);
            if (!steps[t] || !next.a || (state.c && !next.c))
                return false;
        }
        state = next;
    }
    *final = state;
    return true;
}

/* Unroll every layer and direction; layer k > 0 reads layer k-1's outputs,
 * [forward; reverse] along features, through the model's dropout. */
static tg_tensor *forward_tape(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                               const tg_recurrent_call *call)
{
    int64_t m = x->shape[1], T_x = x->shape[2];
    int dirs = directions(rnn);
    /* time-major (n_x, T_x, m): step t is a contiguous block of m columns */
    tg_tensor *in = tg_permute(tape, x, (const int[]){0, 2, 1});
    if (in && !tg_tensor_is_contiguous(in))
        in = tg_contiguous(tape, in);
    tg_tensor **masks = step_masks(tape, rnn, call->lengths, m, T_x);
    tg_tensor **steps = tg_tape_alloc(tape, sizeof *steps * (size_t)T_x);
    if (!in || !steps || tg_tape_status(tape) != TG_OK)
        return NULL;
    for (int k = 0; k < rnn->num_layers; k++) {
        bool last = k == rnn->num_layers - 1;
        tg_tensor *outs[2];
        for (int d = 0; d < dirs; d++) {
            int u = k * dirs + d;
            tg_state final;
            if (!run_direction(tape, rnn, u, in, masks, call->init ? &call->init[u] : NULL,
                               steps, &final))
                return NULL;
            /* time-major for the next layer, (n_a, m, T_x) for the caller */
            if (!(outs[d] = tg_stack(tape, (int)T_x, steps, last ? 2 : 1)))
                return NULL;
            if (call->final)
                call->final[u] = final;
        }
        in = dirs == 1 ? outs[0] : tg_concat(tape, 2, outs, 0);
        if (!last && in && rnn->dropout > 0) { /* masks drawn in (n, m, T_x) order, as fused */
            tg_tensor *h = between_layers(tape, rnn, tg_permute(tape, in, (const int[]){0, 2, 1}),
                                          call->rng);
            in = tg_contiguous(tape, tg_permute(tape, h, (const int[]){0, 2, 1}));
        }
        if (!in)
            return NULL;
    }
    return in;
}

/* The model's dropout on a layer's outputs h (n, m, T_x), but the last's. */
static tg_tensor *between_layers(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *h,
                                 tg_rng *rng)
{
    return rnn->dropout > 0 ? tg_dropout(tape, h, rnn->dropout, rng) : h;
}

/* TG_PATH_FUSED: one tape node per layer and direction (fused_layer). */
static tg_tensor *fused_layer(tg_tape *tape, const tg_recurrent *rnn, int k, int direction,
                              tg_tensor *x, const int32_t *lengths, const tg_state *init,
                              tg_state *final);

static tg_tensor *forward_fused(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                                const tg_recurrent_call *call)
{
    int dirs = directions(rnn);
    tg_tensor *in = x;
    for (int k = 0; k < rnn->num_layers; k++) {
        tg_tensor *outs[2];
        for (int d = 0; d < dirs; d++) {
            int u = k * dirs + d;
            outs[d] = fused_layer(tape, rnn, k, d, in, call->lengths,
                                  call->init ? &call->init[u] : NULL,
                                  call->final ? &call->final[u] : NULL);
            if (!outs[d])
                return NULL;
        }
        in = dirs == 1 ? outs[0] : tg_concat(tape, 2, outs, 0);
        if (in && k < rnn->num_layers - 1)
            in = between_layers(tape, rnn, in, call->rng);
        if (!in)
            return NULL;
    }
    return tg_tape_status(tape) == TG_OK ? in : NULL;
}

/* Layer k, one direction, as one fused node (nn/fused.h: tg_fused_layer):
 * x (n_in, m, T_x) -> (n_a, m, T_x); *final (when not NULL) gets the state
 * after each sequence's own last step. Every fused call of a recurrent
 * stack comes here. */
static tg_tensor *fused_layer(tg_tape *tape, const tg_recurrent *rnn, int k, int direction,
                              tg_tensor *x, const int32_t *lengths, const tg_state *init,
                              tg_state *final)
{
    tg_fused_layer_options o = tg_fused_layer_defaults();
    o.lengths = lengths;
    o.reverse = direction != 0;
    o.linear_before_reset = rnn->linear_before_reset;
    o.final_states = final != NULL;
    tg_fused_layer_out out;
    tg_tensor *a0 = init ? init->a : NULL, *c0 = init ? init->c : NULL;
    if (tg_fused_layer(tape, rnn->cell, x, a0, c0, rnn->layers[k * directions(rnn) + direction].p,
                       &o, &out) != TG_OK)
        return NULL;
    if (final) {
        final->a = out.a_n;
        final->c = out.c_n;
    }
    return out.a;
}

/* Join layer u's gate weights (see the top of the file); false on error. */
static bool join_weights(tg_tape *tape, const tg_recurrent *rnn, int u, joined_weights *w)
{
    tg_tensor *const *p = rnn->layers[u].p;
    int64_t n_a = rnn->n_a, n_in = layer_inputs(rnn, u);
    *w = (joined_weights){.cell = rnn->cell, .linear_before_reset = rnn->linear_before_reset,
                          .n_a = n_a};
    switch (rnn->cell) {
    case TG_CELL_RNN:
        w->Wx = p[0];
        w->Wh = p[1];
        w->b = p[2];
        break;
    case TG_CELL_LSTM: {
        static const int order[4] = {0, 1, 3, 2}; /* f, i, o, c: the sigmoids first */
        tg_tensor *on_x[4], *on_a[4], *b[4];
        for (int g = 0; g < 4; g++) {
            on_a[g] = tg_slice(tape, p[order[g]], 1, 0, n_a, 1);
            on_x[g] = tg_slice(tape, p[order[g]], 1, n_a, n_a + n_in, 1);
            b[g] = p[4 + order[g]];
        }
        if (tg_tape_status(tape) != TG_OK)
            return false;
        w->Wx = tg_concat(tape, 4, on_x, 0);
        w->Wh = tg_concat(tape, 4, on_a, 0);
        w->b = tg_concat(tape, 4, b, 0);
        break;
    }
    case TG_CELL_GRU: {
        /* without linear_before_reset, bhn sits outside the reset gate next
         * to bn, so both join the input side's bias */
        tg_tensor *bn = rnn->linear_before_reset ? p[8] : tg_add(tape, p[8], p[9]);
        if (!bn)
            return false;
        w->Wx = tg_concat(tape, 3, (tg_tensor *[]){p[0], p[1], p[2]}, 0);
        w->b = tg_concat(tape, 3, (tg_tensor *[]){p[6], p[7], bn}, 0);
        w->Wh = tg_concat(tape, rnn->linear_before_reset ? 3 : 2,
                          (tg_tensor *[]){p[3], p[4], p[5]}, 0);
        w->Un = p[5];
        w->bhn = p[9];
        break;
    }
    }
    return w->Wx && w->Wh && w->b;
}

/* init's members where given, tape zeros elsewhere (c for the LSTM only). */
static tg_state start_state(tg_tape *tape, const tg_recurrent *rnn, const tg_state *init,
                            int64_t m)
{
    tg_state s = {init ? init->a : NULL, init ? init->c : NULL};
    if (!s.a)
        s.a = tg_tape_zeros(tape, rnn->dtype, TG_DIMS(rnn->n_a, m));
    if (rnn->cell != TG_CELL_LSTM)
        s.c = NULL;
    else if (!s.c)
        s.c = tg_tape_zeros(tape, rnn->dtype, TG_DIMS(rnn->n_a, m));
    if (!s.a || (rnn->cell == TG_CELL_LSTM && !s.c))
        s.a = s.c = NULL;
    return s;
}

/* One step given the input side xp = Wx x_t + b (G*n_a, m). next may be prev. */
static tg_status cell_step(tg_tape *tape, const joined_weights *w, tg_tensor *xp,
                           const tg_state *prev, tg_state *next)
{
    int64_t n = w->n_a;
    tg_tensor *a = prev->a, *c = NULL;
    switch (w->cell) {
    case TG_CELL_RNN:
        a = tg_tanh(tape, tg_add(tape, tg_matmul(tape, w->Wh, a), xp));
        break;
    case TG_CELL_LSTM: {
        tg_tensor *z = tg_add(tape, tg_matmul(tape, w->Wh, a), xp);
        tg_tensor *gates = tg_sigmoid(tape, tg_slice(tape, z, 0, 0, 3 * n, 1));
        tg_tensor *cc = tg_tanh(tape, tg_slice(tape, z, 0, 3 * n, 4 * n, 1));
        tg_tensor *f = tg_slice(tape, gates, 0, 0, n, 1);
        tg_tensor *i = tg_slice(tape, gates, 0, n, 2 * n, 1);
        tg_tensor *o = tg_slice(tape, gates, 0, 2 * n, 3 * n, 1);
        c = tg_add(tape, tg_mul(tape, f, prev->c), tg_mul(tape, i, cc));
        a = tg_mul(tape, o, tg_tanh(tape, c));
        break;
    }
    case TG_CELL_GRU: {
        tg_tensor *h = tg_matmul(tape, w->Wh, a); /* (3n or 2n, m) */
        tg_tensor *rz = tg_sigmoid(tape, tg_add(tape, tg_slice(tape, xp, 0, 0, 2 * n, 1),
                                                tg_slice(tape, h, 0, 0, 2 * n, 1)));
        tg_tensor *r = tg_slice(tape, rz, 0, 0, n, 1);
        tg_tensor *z = tg_slice(tape, rz, 0, n, 2 * n, 1);
        tg_tensor *hn = w->linear_before_reset
                            ? tg_mul(tape, r, tg_add(tape, tg_slice(tape, h, 0, 2 * n, 3 * n, 1),
                                                     w->bhn))
                            : tg_matmul(tape, w->Un, tg_mul(tape, r, a));
        tg_tensor *cand = tg_tanh(tape, tg_add(tape, tg_slice(tape, xp, 0, 2 * n, 3 * n, 1), hn));
        /* (1 - z) * n + z * a, written as n + z * (a - n): two ops fewer */
        a = tg_add(tape, cand, tg_mul(tape, z, tg_sub(tape, a, cand)));
        break;
    }
    }
    if (!a)
        return tg_tape_status(tape) != TG_OK ? tg_tape_status(tape) : TG_ERR_STATE;
    next->a = a;
    next->c = c;
    return TG_OK;
}

/* ---- checks ------------------------------------------------------------------------------ */

static bool valid_cell(tg_cell cell)
{
    return cell == TG_CELL_RNN || cell == TG_CELL_LSTM || cell == TG_CELL_GRU;
}

static int directions(const tg_recurrent *rnn) { return rnn->bidirectional ? 2 : 1; }

/* Inputs of layer u (a direction of layer u / directions): x, or the layer
 * below's outputs of every direction. */
static int64_t layer_inputs(const tg_recurrent *rnn, int u)
{
    return u < directions(rnn) ? rnn->n_x : (int64_t)directions(rnn) * rnn->n_a;
}

static int64_t param_cols(cols_kind kind, int64_t n_in, int64_t n_a)
{
    switch (kind) {
    case COLS_IN: return n_in;
    case COLS_STATE: return n_a;
    case COLS_BOTH: return n_a + n_in;
    case COLS_BIAS: break;
    }
    return 1;
}

/* The arguments of tg_recurrent_new, before anything is allocated: an
 * absurd size is refused by arithmetic, not by a failing malloc. */
static tg_status check_size(tg_cell cell, int n_x, int n_a, const tg_recurrent_options *o,
                            tg_dtype dtype)
{
    const char *who = "tg_recurrent_new";
    int num_layers = o->num_layers, dirs = o->bidirectional ? 2 : 1;
    if (!valid_cell(cell))
        return tg_fail(TG_ERR_ARG, "%s: unknown cell %d (TG_CELL_RNN, _LSTM or _GRU)", who,
                       (int)cell);
    if (tg_dtype_size(dtype) == 0)
        return tg_fail(TG_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
    if (n_x < 1 || n_a < 1 || num_layers < 1)
        return tg_fail(TG_ERR_ARG, "%s: n_x = %d, n_a = %d, num_layers = %d (each must be >= 1)",
                       who, n_x, n_a, num_layers);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return tg_fail(TG_ERR_ARG, "%s: dropout = %g is outside [0, 1)", who, o->dropout);
    /* elements of the largest layer times the layers, in bytes */
    size_t n_in = (size_t)(n_x > n_a ? n_x : n_a) * (size_t)dirs, per_layer, total, bytes;
    bool overflow = tg_mul_overflows((size_t)n_a, n_in + (size_t)n_a + 1, &per_layer) ||
                    tg_mul_overflows(per_layer, (size_t)CELLS[cell].gates * (size_t)dirs,
                                     &per_layer) ||
                    tg_mul_overflows(per_layer, (size_t)num_layers, &total) ||
                    tg_mul_overflows(total, tg_dtype_size(dtype), &bytes) ||
                    bytes > (size_t)INT64_MAX / 2 || num_layers > INT_MAX / dirs;
    if (overflow)
        return tg_fail(TG_ERR_OVERFLOW, "%s: n_x = %d, n_a = %d, num_layers = %d: the parameter "
                       "size overflows",
                       who, n_x, n_a, num_layers);
    /* Each tensor may fit while all of them do not: the kernel would grant
     * them and kill the process while the initialiser writes. */
    const char *what;
    size_t limit = tg_memory_limit(&what);
    if (bytes > limit / 2)
        return tg_fail(TG_ERR_NOMEM, "%s: n_x = %d, n_a = %d, num_layers = %d: the parameters "
                       "and their gradients need %.3g GB, more than the %.3g GB this process "
                       "may use (%s)", who, n_x, n_a, num_layers, 2.0 * (double)bytes / 1e9,
                       (double)limit / 1e9, what);
    return TG_OK;
}

/* The model's own consistency: a hand-edited or half-built model is an error,
 * not a crash. */
static tg_status check_model(const tg_recurrent *rnn, const char *who)
{
    if (!rnn)
        return tg_fail(TG_ERR_ARG, "%s: the model is NULL", who);
    if (!valid_cell(rnn->cell) || rnn->n_x < 1 || rnn->n_a < 1 || rnn->num_layers < 1 ||
        rnn->num_layers > INT_MAX / 2 || !rnn->layers || tg_dtype_size(rnn->dtype) == 0 ||
        !(rnn->dropout >= 0 && rnn->dropout < 1))
        return tg_fail(TG_ERR_ARG, "%s: not a valid model (cell %d, n_x %d, n_a %d, %d layers%s)",
                       who, (int)rnn->cell, rnn->n_x, rnn->n_a, rnn->num_layers,
                       rnn->layers ? "" : ", no layer array");
    const cell_info *info = &CELLS[rnn->cell];
    for (int k = 0; k < tg_recurrent_num_states(rnn); k++) {
        const tg_recurrent_layer *layer = &rnn->layers[k];
        if (layer->count != info->count)
            return tg_fail(TG_ERR_ARG, "%s: layer %d has %d parameters, a %s layer has %d", who,
                           k, layer->count, info->name, info->count);
        int64_t n_in = layer_inputs(rnn, k);
        for (int j = 0; j < info->count; j++) {
            const tg_tensor *t = layer->p[j];
            int64_t cols = param_cols(info->cols[j], n_in, rnn->n_a);
            char s[64];
            if (!t)
                return tg_fail(TG_ERR_ARG, "%s: layer %d: parameter %s is missing", who, k,
                               info->names[j]);
            if (t->ndim != 2 || t->shape[0] != rnn->n_a || t->shape[1] != cols)
                return tg_fail(TG_ERR_SHAPE, "%s: layer %d: %s is %s, expected (%d,%lld)", who,
                               k, info->names[j], tg_shape_str(t, s, sizeof s), rnn->n_a,
                               (long long)cols);
            if (t->dtype != rnn->dtype)
                return tg_fail(TG_ERR_DTYPE, "%s: layer %d: %s is %s, the model is %s", who, k,
                               info->names[j], tg_dtype_name(t->dtype),
                               tg_dtype_name(rnn->dtype));
        }
    }
    return TG_OK;
}

/* Like an op: a NULL or errored tape refuses the call. */
static bool tape_ready(tg_tape *tape, const char *who)
{
    if (!tape) {
        tg_fail(TG_ERR_ARG, "%s: tape is NULL", who);
        return false;
    }
    if (tg_tape_status(tape) != TG_OK) {
        tg_fail(TG_ERR_STATE, "%s: not run, the tape holds an earlier error: %s", who,
                tg_tape_error(tape));
        return false;
    }
    return true;
}

/* Move check_model's verdict (still this thread's last error) onto the tape. */
static bool model_on_tape(tg_tape *tape, tg_status model)
{
    if (model == TG_OK)
        return true;
    tg_tape_fail(tape, model, "%s", tg_last_error());
    return false;
}

/* A forward's arguments: x (n_x, m, T_x), init, path, lengths in [1, T_x],
 * and a generator when the model's dropout will draw masks. */
static bool check_call(tg_tape *tape, const char *who, const tg_recurrent *rnn, tg_tensor *x,
                       const tg_recurrent_call *call)
{
    if (!check_input(tape, who, "x", x, 3, rnn->n_x, rnn->dtype))
        return false;
    int64_t m = x->shape[1], T_x = x->shape[2];
    char s[64];
    if (m < 1 || T_x < 1 || T_x > INT_MAX) {
        tg_tape_fail(tape, TG_ERR_SHAPE, "%s: x is %s; needs m >= 1 and 1 <= T_x <= %d", who,
                     tg_shape_str(x, s, sizeof s), INT_MAX);
        return false;
    }
    for (int u = 0; call->init && u < tg_recurrent_num_states(rnn); u++)
        if (!check_state(tape, who, rnn, &call->init[u], "init", u, m))
            return false;
    if (call->path != TG_PATH_TAPE && call->path != TG_PATH_FUSED) {
        tg_tape_fail(tape, TG_ERR_ARG, "%s: unknown path %d", who, (int)call->path);
        return false;
    }
    for (int64_t j = 0; call->lengths && j < m; j++)
        if (call->lengths[j] < 1 || call->lengths[j] > T_x) {
            tg_tape_fail(tape, TG_ERR_ARG, "%s: lengths[%lld] = %d is outside [1, T_x = %lld]",
                         who, (long long)j, (int)call->lengths[j], (long long)T_x);
            return false;
        }
    if (rnn->dropout > 0 && rnn->num_layers > 1 && tg_tape_is_training(tape) && !call->rng) {
        tg_tape_fail(tape, TG_ERR_ARG, "%s: the model's dropout of %g needs a generator "
                     "(tg_recurrent_forward_with's call.rng), or a tape in evaluation mode",
                     who, rnn->dropout);
        return false;
    }
    return true;
}

/* x must be ndim-D with `rows` rows and the model's dtype. */
static bool check_input(tg_tape *tape, const char *who, const char *what, const tg_tensor *x,
                        int ndim, int64_t rows, tg_dtype dtype)
{
    char s[64];
    if (!x) {
        tg_tape_fail(tape, TG_ERR_ARG, "%s: %s is NULL", who, what);
        return false;
    }
    if (x->ndim != ndim || x->shape[0] != rows) {
        tg_tape_fail(tape, TG_ERR_SHAPE, "%s: %s is %s, expected %d dimensions with %lld rows%s",
                     who, what, x->ndim >= 0 && x->ndim <= TG_MAX_DIMS
                                    ? tg_shape_str(x, s, sizeof s) : "not a tensor",
                     ndim, (long long)rows, ndim == 3 ? " (n_x, m, T_x)" : " (n_in, m)");
        return false;
    }
    if (x->dtype != dtype) {
        tg_tape_fail(tape, TG_ERR_DTYPE, "%s: %s is %s, the model is %s", who, what,
                     tg_dtype_name(x->dtype), tg_dtype_name(dtype));
        return false;
    }
    return true;
}

/* A given state (`what`[k], or *`what` for k < 0) has NULL members or
 * (n_a, m) ones in the model's dtype; c is looked at for the LSTM only. */
static bool check_state(tg_tape *tape, const char *who, const tg_recurrent *rnn,
                        const tg_state *state, const char *what, int k, int64_t m)
{
    for (int which = 0; which < (rnn->cell == TG_CELL_LSTM ? 2 : 1); which++) {
        const tg_tensor *s = which ? state->c : state->a;
        if (!s)
            continue;
        char name[48], sh[64];
        if (k >= 0)
            snprintf(name, sizeof name, "%s[%d].%c", what, k, which ? 'c' : 'a');
        else
            snprintf(name, sizeof name, "%s->%c", what, which ? 'c' : 'a');
        if (s->ndim != 2 || s->shape[0] != rnn->n_a || s->shape[1] != m) {
            tg_tape_fail(tape, TG_ERR_SHAPE, "%s: %s is %s, expected (%d,%lld) (n_a, m)", who,
                         name,
                         s->ndim >= 0 && s->ndim <= TG_MAX_DIMS ? tg_shape_str(s, sh, sizeof sh)
                                                                : "not a tensor",
                         rnn->n_a, (long long)m);
            return false;
        }
        if (s->dtype != rnn->dtype) {
            tg_tape_fail(tape, TG_ERR_DTYPE, "%s: %s is %s, the model is %s", who, name,
                         tg_dtype_name(s->dtype), tg_dtype_name(rnn->dtype));
            return false;
        }
    }
    return true;
}
