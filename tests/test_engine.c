/* The fused recurrent engine (nn/fused_engine.c, nn/fused_layout.c) held to
 * what it must equal, and the team of threads that runs its time loop.
 *
 *   - A batch with lengths (tg_fused_layer's packed sequences) equals each
 *     sequence run alone (m = 1, no lengths), both through the fused layer
 *     and through the tape's cells (tg_recurrent_step): outputs, exact zeros
 *     at padded steps, final states and every gradient, to 1e-12 in f64
 *     (1e-5 in f32); RNN, LSTM and both GRUs, one and two layers, plain
 *     tensors and strided views.
 *   - A reverse layer equals a forward layer run on each sequence's valid
 *     part reversed in time, its outputs reversed back.
 *   - The GRU without linear_before_reset equals the tape path to 1e-10, and
 *     the fused nodes (lengths, reverse, final states) pass finite
 *     differences.
 *   - Outputs and gradients are bit-identical for 1, 2 and 3 threads, on
 *     batches the engine shares by rows and by units, and for layers run
 *     from concurrent threads or inside pool tasks; a layer too small to
 *     share starts no helper thread.
 *   - Lengths of 0, of T_x + 1 or negative are refused by index, nothing
 *     recorded; the lengths are copied at forward; workspace sizes past 64
 *     bits are refused.
 *   - tg_team_run (core/team.h) runs every (phase, slice) once, phase
 *     after phase. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/team.h"
#include "../core/threadpool.h"
#include "../nn/fused_internal.h"
#include "util.h"

enum { MAX_LAYERS = 2 };

/* What the loss reads: every output (all times, padded ones too, and the
 * final states), or the final states only. */
typedef enum { READ_ALL, READ_FINAL } read_kind;

typedef struct {
    tg_cell cell;
    bool linear_before_reset; /* GRU */
    int layers;               /* each layer runs with the same lengths and direction */
    int64_t n_x, n_a, m, T;
    const int32_t *lengths; /* m of them, or NULL */
    bool reverse;
    bool with_state; /* a0 (and c0) given for every layer, else zeros */
    read_kind read;
    int threads; /* tg_set_num_threads for the case; 0: as configured */
    bool f32;    /* else f64 */
    bool strided; /* x stored (T, n_x, m) and the initial states (m, n_a): views go in */
} layer_case;

/* The parameters of a case, its inputs and the loss's fixed weights. */
typedef struct {
    layer_case c;
    char name[384];
    tg_recurrent *rnn;
    tg_tensor *x; /* (n_x, m, T), or stored (T, n_x, m) when strided */
    tg_tensor *a0[MAX_LAYERS], *c0[MAX_LAYERS]; /* (n_a, m), or stored (m, n_a) */
    tg_tensor *wa[MAX_LAYERS], *wc[MAX_LAYERS], *wa_n[MAX_LAYERS], *wc_n[MAX_LAYERS];
} model;

/* One layer's outputs on a tape. */
typedef struct {
    tg_tensor *a, *c, *a_n, *c_n;
} layer_out;

/* What a run yields, as persistent copies. NULL: not produced (c for the
 * RNN and GRU, initial-state gradients without initial states). */
typedef struct {
    tg_tensor *a[MAX_LAYERS], *c[MAX_LAYERS], *a_n[MAX_LAYERS], *c_n[MAX_LAYERS];
    tg_tensor *dx, *da0[MAX_LAYERS], *dc0[MAX_LAYERS];
    tg_tensor *dp[MAX_LAYERS][TG_CELL_MAX_PARAMS];
} outcome;

static tg_dtype dtype_of(const layer_case *c) { return c->f32 ? TG_F32 : TG_F64; }

static bool is_lstm(const model *md) { return md->c.cell == TG_CELL_LSTM; }

/* The LSTM outputs every cell state when the loss reads them (else only
 * the final one: another set of outputs). */
static bool cell_states(const model *md) { return is_lstm(md) && md->c.read == READ_ALL; }

static int64_t length_of(const model *md, int64_t j)
{
    return md->c.lengths ? md->c.lengths[j] : md->c.T;
}

static const char *cell_title(const layer_case *c)
{
    if (c->cell != TG_CELL_GRU)
        return c->cell == TG_CELL_RNN ? "RNN" : "LSTM";
    return c->linear_before_reset ? "GRU" : "GRU (reset first)";
}

static void model_new(const layer_case *c, uint32_t seed, model *md)
{
    memset(md, 0, sizeof *md);
    md->c = *c;
    tg_dtype dtype = dtype_of(c);
    char lengths[96] = "";
    for (int64_t j = 0, n = 0; c->lengths && j < c->m && n < 80; j++)
        n += snprintf(lengths + n, sizeof lengths - (size_t)n, "%s%d", j ? "," : " lengths ",
                      (int)c->lengths[j]);
    snprintf(md->name, sizeof md->name,
             "%s %s, %d layer(s), n_x=%lld n_a=%lld m=%lld T=%lld%s%s%s%s%s",
             tg_dtype_name(dtype), cell_title(c), c->layers, (long long)c->n_x,
             (long long)c->n_a, (long long)c->m, (long long)c->T, lengths,
             c->reverse ? ", reverse" : "", c->with_state ? ", a0 given" : "",
             c->read == READ_FINAL ? ", loss on final states" : "",
             c->strided ? ", strided views" : "");
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_recurrent_options o = tg_recurrent_defaults();
    o.num_layers = c->layers;
    o.linear_before_reset = c->linear_before_reset;
    md->rnn = tg_recurrent_new(c->cell, (int)c->n_x, (int)c->n_a, dtype, &o, &rng);
    ck_assert_msg(md->rnn != NULL, "%s: %s", md->name, tg_last_error());
    md->x = c->strided ? tu_param(&rng, dtype, "x", TG_DIMS(c->T, c->n_x, c->m))
                       : tu_param(&rng, dtype, "x", TG_DIMS(c->n_x, c->m, c->T));
    int64_t rows = c->strided ? c->m : c->n_a, cols = c->strided ? c->n_a : c->m;
    for (int k = 0; k < c->layers; k++) {
        md->a0[k] = tu_param(&rng, dtype, "a0", TG_DIMS(rows, cols));
        md->c0[k] = tu_param(&rng, dtype, "c0", TG_DIMS(rows, cols));
        md->wa[k] = tg_tensor_randn(&rng, dtype, TG_DIMS(c->n_a, c->m, c->T));
        md->wc[k] = tg_tensor_randn(&rng, dtype, TG_DIMS(c->n_a, c->m, c->T));
        md->wa_n[k] = tg_tensor_randn(&rng, dtype, TG_DIMS(c->n_a, c->m));
        md->wc_n[k] = tg_tensor_randn(&rng, dtype, TG_DIMS(c->n_a, c->m));
    }
}

static void model_free(model *md)
{
    tg_recurrent_free(md->rnn);
    tg_tensor_free(md->x);
    for (int k = 0; k < MAX_LAYERS; k++) {
        tg_tensor *all[] = {md->a0[k], md->c0[k], md->wa[k], md->wc[k], md->wa_n[k], md->wc_n[k]};
        tu_free_all(all, 6);
    }
}

static void outcome_free(outcome *o)
{
    tg_tensor_free(o->dx);
    for (int k = 0; k < MAX_LAYERS; k++) {
        tg_tensor *all[] = {o->a[k], o->c[k], o->a_n[k], o->c_n[k], o->da0[k], o->dc0[k]};
        tu_free_all(all, 6);
        tu_free_all(o->dp[k], TG_CELL_MAX_PARAMS);
    }
    memset(o, 0, sizeof *o);
}

static void zero_grads(const model *md)
{
    tg_tensor_zero_grad(md->x);
    for (int k = 0; k < md->c.layers; k++) {
        tg_tensor_zero_grad(md->a0[k]);
        tg_tensor_zero_grad(md->c0[k]);
        for (int i = 0; i < md->rnn->layers[k].count; i++)
            tg_tensor_zero_grad(md->rnn->layers[k].p[i]);
    }
}

static tg_tensor *copy_of(const tg_tensor *t)
{
    tg_tensor *c = tg_tensor_copy(t);
    ck_assert_msg(c != NULL, "copy: %s", tg_last_error());
    return c;
}

/* Backward from the loss, then every gradient the case has into o. */
static void backward_and_keep(const model *md, tg_tape *tape, tg_tensor *loss, outcome *o)
{
    ck_assert_msg(loss && tg_backward(tape, loss) == TG_OK, "%s: backward: %s", md->name,
                  tg_tape_error(tape));
    o->dx = copy_of(md->x->grad);
    for (int k = 0; k < md->c.layers; k++) {
        if (md->c.with_state) {
            o->da0[k] = copy_of(md->a0[k]->grad);
            if (is_lstm(md))
                o->dc0[k] = copy_of(md->c0[k]->grad);
        }
        for (int i = 0; i < md->rnn->layers[k].count; i++)
            o->dp[k][i] = copy_of(md->rnn->layers[k].p[i]->grad);
    }
}

/* ---- the loss ------------------------------------------------------------------ */

/* w itself (j < 0), or its column j: (n, 1) for a state, (n, 1, len) for a
 * sequence (len >= 0). */
static tg_tensor *part(tg_tape *tape, tg_tensor *w, int64_t j, int64_t len)
{
    if (j < 0)
        return w;
    tg_tensor *col = tg_slice(tape, w, 1, j, j + 1, 1);
    return len < 0 ? col : tg_slice(tape, col, 2, 0, len, 1);
}

static tg_tensor *plus(tg_tape *tape, tg_tensor *sum, tg_tensor *term)
{
    return sum ? tg_add(tape, sum, term) : term;
}

static tg_tensor *dot(tg_tape *tape, tg_tensor *out, tg_tensor *w)
{
    return tg_sum(tape, tg_mul(tape, out, w));
}

/* Layer k's part of the loss: the whole batch (j < 0) or sequence j of
 * length len alone. */
static tg_tensor *layer_loss(tg_tape *tape, const model *md, int k, const layer_out *y,
                             int64_t j, int64_t len)
{
    tg_tensor *loss = NULL;
    if (md->c.read == READ_ALL) {
        loss = dot(tape, y->a, part(tape, md->wa[k], j, len));
        if (y->c)
            loss = plus(tape, loss, dot(tape, y->c, part(tape, md->wc[k], j, len)));
    }
    loss = plus(tape, loss, dot(tape, y->a_n, part(tape, md->wa_n[k], j, -1)));
    if (y->c_n)
        loss = plus(tape, loss, dot(tape, y->c_n, part(tape, md->wc_n[k], j, -1)));
    return loss;
}

/* ---- the runs -------------------------------------------------------------------- */

static layer_out fused_layer(tg_tape *tape, const model *md, int k, tg_tensor *x, tg_state init,
                             const int32_t *lengths, bool reverse)
{
    tg_fused_layer_options o = tg_fused_layer_defaults();
    o.lengths = lengths;
    o.reverse = reverse;
    o.linear_before_reset = md->c.linear_before_reset;
    o.cell_states = cell_states(md);
    o.final_states = true;
    tg_fused_layer_out out;
    tg_status s = tg_fused_layer(tape, md->c.cell, x, init.a, init.c, md->rnn->layers[k].p, &o,
                                 &out);
    ck_assert_msg(s == TG_OK, "%s: tg_fused_layer: %s", md->name, tg_tape_error(tape));
    return (layer_out){out.a, out.c, out.a_n, out.c_n};
}

/* One layer over x (n_in, 1, T) through the tape's cells, step by step. */
static layer_out tape_layer(tg_tape *tape, const model *md, int k, tg_tensor *x, tg_state init)
{
    int64_t T = x->shape[2];
    tg_tensor **as = tg_tape_alloc(tape, 2 * (size_t)T * sizeof *as);
    ck_assert_ptr_nonnull(as);
    tg_tensor **cs = as + T;
    ck_assert_ptr_nonnull(as);
    tg_state s = init;
    for (int64_t t = 0; t < T; t++) {
        tg_status st = tg_recurrent_step(tape, md->rnn, k, tg_select(tape, x, 2, t), &s, &s);
        ck_assert_msg(st == TG_OK, "%s: tg_recurrent_step: %s", md->name, tg_tape_error(tape));
        as[t] = s.a;
        cs[t] = s.c;
    }
    layer_out y = {tg_stack(tape, (int)T, as, 2), NULL, s.a, s.c};
    if (cell_states(md))
        y.c = tg_stack(tape, (int)T, cs, 2);
    return y;
}

/* x (n, m, T) with time running backwards. */
static tg_tensor *time_reversed(tg_tape *tape, tg_tensor *x)
{
    int64_t T = x->shape[2];
    tg_tensor **steps = tg_tape_alloc(tape, (size_t)T * sizeof *steps);
    ck_assert_ptr_nonnull(steps);
    for (int64_t t = 0; t < T; t++)
        steps[t] = tg_select(tape, x, 2, T - 1 - t);
    return tg_stack(tape, (int)T, steps, 2);
}

/* x as the layers take it, (n_x, m, T): a permuted view when strided. */
static tg_tensor *input_x(tg_tape *tape, const model *md)
{
    return md->c.strided ? tg_permute(tape, md->x, (const int[]){1, 2, 0}) : md->x;
}

/* a stored state as (n_a, m) */
static tg_tensor *state_view(tg_tape *tape, const model *md, tg_tensor *t)
{
    return md->c.strided ? tg_transpose(tape, t, 0, 1) : t;
}

static tg_state initial_state(tg_tape *tape, const model *md, int k, int64_t j)
{
    tg_state s = {NULL, NULL};
    if (md->c.with_state) {
        s.a = part(tape, state_view(tape, md, md->a0[k]), j, -1);
        s.c = is_lstm(md) ? part(tape, state_view(tape, md, md->c0[k]), j, -1) : NULL;
    }
    return s;
}

/* The whole batch through tg_fused_layer with the case's lengths: the
 * outputs into o, the loss returned. */
static tg_tensor *batch_forward(tg_tape *tape, const model *md, outcome *o)
{
    zero_grads(md);
    tg_tensor *in = input_x(tape, md), *loss = NULL;
    for (int k = 0; k < md->c.layers; k++) {
        layer_out y = fused_layer(tape, md, k, in, initial_state(tape, md, k, -1), md->c.lengths,
                                  md->c.reverse);
        loss = plus(tape, loss, layer_loss(tape, md, k, &y, -1, -1));
        o->a[k] = copy_of(y.a);
        o->a_n[k] = copy_of(y.a_n);
        o->c[k] = y.c ? copy_of(y.c) : NULL;
        o->c_n[k] = y.c_n ? copy_of(y.c_n) : NULL;
        in = y.a;
    }
    return loss;
}

static void run_batch(const model *md, outcome *o)
{
    tg_tape *tape = tg_tape_new();
    backward_and_keep(md, tape, batch_forward(tape, md, o), o);
    tg_tape_free(tape);
}

/* dst[:, j, 0:len] = src (n, 1, len); dst[:, j] = src (n, 1) for a state. */
static void put_column(tg_tensor *dst, const tg_tensor *src, int64_t j)
{
    if (!src || !dst)
        return;
    int64_t n = src->shape[0], len = dst->ndim == 3 ? src->shape[2] : 1;
    for (int64_t u = 0; u < n; u++)
        for (int64_t t = 0; t < len; t++) {
            double v = dst->ndim == 3 ? tg_tensor_get(src, (int64_t[]){u, 0, t})
                                      : tg_tensor_get(src, (int64_t[]){u, 0});
            if (dst->ndim == 3)
                tg_tensor_set(dst, (int64_t[]){u, j, t}, v);
            else
                tg_tensor_set(dst, (int64_t[]){u, j}, v);
        }
}

static tg_tensor *zeros_like(const tg_tensor *t)
{
    tg_tensor *z = tg_tensor_zeros(t->dtype, t->ndim, t->shape);
    ck_assert_ptr_nonnull(z);
    return z;
}

/* Every sequence alone (m = 1, T = its length, no lengths), through the
 * fused layer or the tape's cells; a reverse case runs forward layers on
 * time-reversed sequences. One loss, the sum over sequences, so the
 * gradients are the sums of the sequences' own. Outputs at padded steps
 * stay zero. */
static void run_alone(const model *md, bool on_tape, outcome *o)
{
    for (int k = 0; k < md->c.layers; k++) {
        o->a[k] = zeros_like(md->wa[k]);
        o->a_n[k] = zeros_like(md->wa_n[k]);
        o->c[k] = cell_states(md) ? zeros_like(md->wc[k]) : NULL;
        o->c_n[k] = is_lstm(md) ? zeros_like(md->wc_n[k]) : NULL;
    }
    zero_grads(md);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = NULL;
    for (int64_t j = 0; j < md->c.m; j++) {
        int64_t len = length_of(md, j);
        tg_tensor *in = part(tape, input_x(tape, md), j, len);
        for (int k = 0; k < md->c.layers; k++) {
            tg_state init = initial_state(tape, md, k, j);
            tg_tensor *seq = md->c.reverse ? time_reversed(tape, in) : in;
            layer_out y = on_tape ? tape_layer(tape, md, k, seq, init)
                                  : fused_layer(tape, md, k, seq, init, NULL, false);
            if (md->c.reverse) {
                y.a = time_reversed(tape, y.a);
                y.c = y.c ? time_reversed(tape, y.c) : NULL;
            }
            loss = plus(tape, loss, layer_loss(tape, md, k, &y, j, len));
            ck_assert_msg(tg_tape_status(tape) == TG_OK, "%s: sequence %lld alone: %s", md->name,
                          (long long)j, tg_tape_error(tape));
            put_column(o->a[k], y.a, j);
            put_column(o->c[k], y.c, j);
            put_column(o->a_n[k], y.a_n, j);
            put_column(o->c_n[k], y.c_n, j);
            in = y.a;
        }
    }
    backward_and_keep(md, tape, loss, o);
    tg_tape_free(tape);
}

/* ---- comparing runs ------------------------------------------------------------------ */

static void index_str(const tg_tensor *t, int64_t flat, char *buf, size_t size)
{
    int64_t idx[4] = {0};
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = flat % t->shape[d];
        flat /= t->shape[d];
    }
    int n = snprintf(buf, size, "[");
    for (int d = 0; d < t->ndim && n < (int)size; d++)
        n += snprintf(buf + n, size - (size_t)n, "%s%lld", d ? "," : "", (long long)idx[d]);
    snprintf(buf + n, size - (size_t)n, "]");
}

/* |got - want| / max(|got|, |want|, 1) everywhere, or (exact) every bit. */
static void expect_match(const model *md, const char *what, const char *name, int k,
                         const tg_tensor *got, const tg_tensor *want, double tol, bool exact)
{
    ck_assert_msg((got == NULL) == (want == NULL), "%s: %s: l%d.%s is missing on one side",
                  md->name, what, k, name);
    if (!want)
        return;
    int64_t n = tg_tensor_numel(want), worst = -1;
    double worst_err = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = tg_tensor_get_flat(got, i), w = tg_tensor_get_flat(want, i);
        double err = exact ? (memcmp(&g, &w, sizeof g) != 0)
                           : fabs(g - w) / fmax(fmax(fabs(g), fabs(w)), 1.0);
        if (isnan(err))
            err = INFINITY;
        if (err > worst_err) {
            worst_err = err;
            worst = i;
        }
    }
    char at[64] = "";
    if (worst >= 0)
        index_str(want, worst, at, sizeof at);
    ck_assert_msg(exact ? worst < 0 : worst_err <= tol,
                  "%s: %s: l%d.%s%s = %.17g, expected %.17g (%s)", md->name, what, k, name, at,
                  worst >= 0 ? tg_tensor_get_flat(got, worst) : 0.0,
                  worst >= 0 ? tg_tensor_get_flat(want, worst) : 0.0,
                  exact ? "must be bit-identical" : "beyond the tolerance");
}

/* Outputs first (the first wrong one says most), then gradients. */
static void expect_outcomes(const model *md, const char *what, const outcome *got,
                            const outcome *want, double tol, bool exact)
{
    for (int k = 0; k < md->c.layers; k++) {
        expect_match(md, what, "a", k, got->a[k], want->a[k], tol, exact);
        expect_match(md, what, "c", k, got->c[k], want->c[k], tol, exact);
        expect_match(md, what, "a_n", k, got->a_n[k], want->a_n[k], tol, exact);
        expect_match(md, what, "c_n", k, got->c_n[k], want->c_n[k], tol, exact);
    }
    expect_match(md, what, "dx", 0, got->dx, want->dx, tol, exact);
    for (int k = 0; k < md->c.layers; k++) {
        expect_match(md, what, "da0", k, got->da0[k], want->da0[k], tol, exact);
        expect_match(md, what, "dc0", k, got->dc0[k], want->dc0[k], tol, exact);
        for (int i = 0; i < md->rnn->layers[k].count; i++) {
            char name[32];
            snprintf(name, sizeof name, "d%s", md->rnn->layers[k].p[i]->name + 3); /* "l0." */
            expect_match(md, what, name, k, got->dp[k][i], want->dp[k][i], tol, exact);
        }
    }
}

/* Outputs at padded steps, and the gradient reaching x there, are exactly 0. */
static void expect_zero_padding(const model *md, const outcome *o)
{
    tg_tensor dx = *o->dx; /* (n_x, m, T) */
    if (md->c.strided)
        ck_assert_int_eq(tg_view_permute(&dx, o->dx, (const int[]){1, 2, 0}), TG_OK);
    for (int64_t j = 0; j < md->c.m; j++)
        for (int64_t t = length_of(md, j); t < md->c.T; t++) {
            for (int64_t f = 0; f < md->c.n_x; f++) {
                double g = tg_tensor_get(&dx, (int64_t[]){f, j, t});
                ck_assert_msg(g == 0.0, "%s: dx[%lld,%lld,%lld] = %.17g at a padded step "
                              "(length %lld): must be 0", md->name, (long long)f, (long long)j,
                              (long long)t, g, (long long)length_of(md, j));
            }
            for (int k = 0; k < md->c.layers; k++)
                for (int64_t u = 0; u < md->c.n_a; u++) {
                    double a = tg_tensor_get(o->a[k], (int64_t[]){u, j, t});
                    double c = o->c[k] ? tg_tensor_get(o->c[k], (int64_t[]){u, j, t}) : 0.0;
                    ck_assert_msg(a == 0.0 && c == 0.0, "%s: l%d a[%lld,%lld,%lld] = %.17g, "
                                  "c = %.17g at a padded step (length %lld): must be 0", md->name,
                                  k, (long long)u, (long long)j, (long long)t, a, c,
                                  (long long)length_of(md, j));
                }
        }
}

/* ---- 1, 2: lengths and reverse against each sequence alone ----------------------------- */

/* Unsorted lengths with ties, including T and 1. */
static const int32_t LEN_7x9[] = {9, 1, 4, 9, 4, 2, 7};
static const int32_t LEN_5x7[] = {1, 7, 3, 3, 6};
static const int32_t LEN_11x5[] = {5, 2, 5, 1, 3, 3, 4, 5, 1, 2, 5};
static const int32_t LEN_6x5[] = {2, 5, 1, 5, 3, 2};
static const int32_t LEN_ALL_T[] = {4, 4, 4};
static const int32_t LEN_ONE_OF_4[] = {2};
static const int32_t LEN_ONES[] = {1, 1, 1, 1};

#define CELL_CASES(CELL, LBR)                                                                  \
    {CELL, LBR, 1, 3, 5, 7, 9, LEN_7x9, .with_state = true},                                   \
    {CELL, LBR, 2, 3, 5, 5, 7, LEN_5x7, .with_state = false},                                  \
    {CELL, LBR, 2, 5, 5, 5, 7, LEN_5x7, .with_state = true, .read = READ_FINAL},               \
    {CELL, LBR, 1, 3, 7, 11, 5, LEN_11x5, .with_state = true, .threads = 2},                   \
    {CELL, LBR, 1, 3, 7, 11, 5, LEN_11x5, .with_state = false, .threads = 3},                  \
    {CELL, LBR, 1, 3, 5, 7, 9, LEN_7x9, .reverse = true, .with_state = true},                  \
    {CELL, LBR, 2, 3, 5, 5, 7, LEN_5x7, .reverse = true, .threads = 2},                        \
    {CELL, LBR, 2, 3, 5, 5, 7, NULL, .reverse = true, .with_state = true},                     \
    {CELL, LBR, 1, 4, 3, 1, 6, NULL, .reverse = true},                                         \
    {CELL, LBR, 1, 3, 5, 6, 5, LEN_6x5, .reverse = true, .with_state = true, .strided = true}, \
    {CELL, LBR, 2, 3, 5, 6, 5, LEN_6x5, .with_state = true, .read = READ_FINAL,                \
     .strided = true},                                                                         \
    {CELL, LBR, 1, 2, 4, 3, 4, LEN_ALL_T, .with_state = true},                                 \
    {CELL, LBR, 1, 2, 4, 1, 4, LEN_ONE_OF_4, .reverse = true, .with_state = true},             \
    {CELL, LBR, 2, 3, 5, 4, 3, LEN_ONES, .reverse = true, .with_state = true,                  \
     .read = READ_FINAL},                                                                      \
    {CELL, LBR, 1, 3, 5, 7, 9, LEN_7x9, .reverse = true, .with_state = true, .f32 = true},    \
    {CELL, LBR, 2, 3, 5, 4, 6, NULL, .with_state = true, .strided = true},                     \
    {CELL, LBR, 1, 3, 4, 1, 5, NULL, .reverse = true, .with_state = true, .strided = true}

static const layer_case SEQ_CASES[] = {
    CELL_CASES(TG_CELL_RNN, true), CELL_CASES(TG_CELL_LSTM, true),
    CELL_CASES(TG_CELL_GRU, true), CELL_CASES(TG_CELL_GRU, false),
};

static void set_threads(int threads)
{
    if (threads > 0)
        ck_assert_int_eq(tg_set_num_threads(threads), TG_OK);
}

START_TEST(batch_with_lengths_equals_each_sequence_alone)
{
    model md;
    model_new(&SEQ_CASES[_i], 100 + (uint32_t)_i, &md);
    set_threads(md.c.threads);
    outcome batch = {0}, fused = {0}, taped = {0};
    run_batch(&md, &batch);
    run_alone(&md, false, &fused);
    run_alone(&md, true, &taped);
    expect_zero_padding(&md, &batch);
    double tol = md.c.f32 ? 1e-5 : 1e-12;
    expect_outcomes(&md, "batch vs each sequence alone (fused)", &batch, &fused, tol, false);
    expect_outcomes(&md, "batch vs each sequence alone (tape)", &batch, &taped, tol, false);
    outcome_free(&batch);
    outcome_free(&fused);
    outcome_free(&taped);
    model_free(&md);
}
END_TEST

/* ---- 1e: lengths the layer refuses ---------------------------------------------------- */

START_TEST(bad_lengths_are_refused_by_index_and_nothing_is_recorded)
{
    const int64_t T = 3;
    static const struct {
        int at;
        int32_t value;
        const char *says;
    } bad[] = {{2, 0, "lengths[2] is 0"}, {2, 4, "lengths[2] is 4"}, {0, -1, "lengths[0] is -1"},
               {3, 4, "lengths[3] is 4"}, {1, INT32_MIN, "lengths[1] is -2147483648"}};
    for (int ci = 0; ci < TU_N_CELLS; ci++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
            for (int reverse = 0; reverse < 2; reverse++) {
                layer_case c = {TU_CELLS[ci].cell, TU_CELLS[ci].linear_before_reset, 1, 2, 3, 4, T,
                                NULL, .with_state = true};
                model md;
                model_new(&c, 7, &md);
                int32_t lengths[4] = {3, 2, 1, 3};
                lengths[bad[b].at] = bad[b].value;
                tg_fused_layer_options o = tg_fused_layer_defaults();
                o.lengths = lengths;
                o.reverse = reverse;
                o.final_states = true;
                o.cell_states = true;
                tg_tape *tape = tg_tape_new();
                tg_fused_layer_out out = {md.x, md.x, md.x, md.x}; /* must be cleared */
                tg_status s = tg_fused_layer(tape, c.cell, md.x, md.a0[0], md.c0[0],
                                             md.rnn->layers[0].p, &o, &out);
                ck_assert_msg(s == TG_ERR_ARG, "%s with %s: status %d, expected TG_ERR_ARG",
                              md.name, bad[b].says, (int)s);
                ck_assert_msg(strstr(tg_last_error(), "tg_fused_layer") &&
                                  strstr(tg_last_error(), bad[b].says),
                              "%s: tg_last_error() is \"%s\", should name %s", md.name,
                              tg_last_error(), bad[b].says);
                ck_assert_msg(strstr(tg_tape_error(tape), bad[b].says),
                              "%s: the tape's error is \"%s\", should name %s", md.name,
                              tg_tape_error(tape), bad[b].says);
                ck_assert_int_eq(tg_tape_status(tape), TG_ERR_ARG);
                ck_assert_uint_eq(tg_tape_entry_count(tape), 0);
                ck_assert(!out.a && !out.c && !out.a_n && !out.c_n);
                tg_tape_free(tape);
                model_free(&md);
            }
}
END_TEST

/* Sizes whose workspace does not fit in 64 bits are refused with
 * TG_ERR_OVERFLOW, computed without overflowing on the way (under UBSan a
 * signed overflow anywhere in the size computation stops the test). n_a =
 * 2^32 is within the layout's per-size limit, but n_a^2 elements are not. */
START_TEST(workspace_sizes_too_large_are_refused_without_overflow)
{
    typedef tg_status (*size_fn)(tg_dtype, int64_t, int64_t, int64_t, int64_t, bool, size_t *);
    static const struct {
        size_fn fn;
        const char *who;
    } fns[] = {{tg_rnn_fused_workspace, "tg_rnn_fused_workspace"},
               {tg_lstm_fused_workspace, "tg_lstm_fused_workspace"},
               {tg_gru_fused_workspace, "tg_gru_fused_workspace"}};
    static const int64_t n_as[] = {(int64_t)1 << 32, (int64_t)3 << 31, ((int64_t)1 << 40) + 1};
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < 3; k++)
            for (int d = 0; d < 2; d++) {
                size_t bytes = 12345;
                tg_status s = fns[f].fn(d ? TG_F64 : TG_F32, 3, n_as[k], 2, 2, d == 1, &bytes);
                ck_assert_msg(s == TG_ERR_OVERFLOW && strstr(tg_last_error(), fns[f].who),
                              "%s(n_a = %lld): status %d, \"%s\"", fns[f].who,
                              (long long)n_as[k], (int)s, tg_last_error());
                ck_assert_uint_eq(bytes, 12345);
            }
}
END_TEST

/* The layer keeps its own copy of the lengths: the caller's array may
 * change between forward and backward. */
START_TEST(lengths_are_read_once_at_forward)
{
    for (int ci = 0; ci < TU_N_CELLS; ci++) {
        int32_t lengths[7];
        memcpy(lengths, LEN_7x9, sizeof lengths);
        layer_case c = {TU_CELLS[ci].cell, TU_CELLS[ci].linear_before_reset, 2, 3, 5, 7, 9,
                        lengths, .with_state = true};
        model md;
        model_new(&c, 30 + (uint32_t)ci, &md);
        outcome plain = {0}, scribbled = {0};
        run_batch(&md, &plain);
        tg_tape *tape = tg_tape_new();
        tg_tensor *loss = batch_forward(tape, &md, &scribbled);
        for (int j = 0; j < 7; j++)
            lengths[j] = j % 2 ? 0 : 1000;
        backward_and_keep(&md, tape, loss, &scribbled);
        expect_outcomes(&md, "lengths changed after forward", &scribbled, &plain, 0, true);
        tg_tape_free(tape);
        outcome_free(&plain);
        outcome_free(&scribbled);
        model_free(&md);
    }
}
END_TEST

/* ---- 3: the GRU without linear_before_reset against the tape ----------------------------- */

/* tg_recurrent_forward on one path: x, every layer's initial state (when
 * given) and final state read by the loss. */
static void run_path(const model *md, tg_path path, outcome *o)
{
    zero_grads(md);
    tg_tape *tape = tg_tape_new();
    tg_state init[MAX_LAYERS], final[MAX_LAYERS];
    for (int k = 0; k < md->c.layers; k++)
        init[k] = initial_state(tape, md, k, -1);
    tg_tensor *a = tg_recurrent_forward(tape, md->rnn, input_x(tape, md), init, path, final);
    ck_assert_msg(a != NULL, "%s: tg_recurrent_forward: %s", md->name, tg_tape_error(tape));
    int last = md->c.layers - 1;
    tg_tensor *loss = dot(tape, a, md->wa[last]);
    for (int k = 0; k < md->c.layers; k++) {
        layer_out y = {NULL, NULL, final[k].a, final[k].c};
        loss = plus(tape, loss, layer_loss(tape, md, k, &y, -1, -1));
        o->a_n[k] = copy_of(final[k].a);
    }
    o->a[last] = copy_of(a);
    backward_and_keep(md, tape, loss, o);
    tg_tape_free(tape);
}

START_TEST(gru_reset_first_fused_equals_tape)
{
    static const int64_t shapes[][4] = {{3, 5, 4, 6}, {1, 1, 1, 1}, {4, 8, 3, 9}, {2, 17, 9, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int layers = 1; layers <= 2; layers++)
            for (int with_state = 0; with_state < 2; with_state++) {
                layer_case c = {TG_CELL_GRU, false, layers, shapes[s][0], shapes[s][1],
                                shapes[s][2], shapes[s][3], NULL, .with_state = with_state,
                                .read = READ_FINAL};
                model md;
                model_new(&c, 40 + (uint32_t)s, &md);
                outcome fused = {0}, taped = {0};
                run_path(&md, TG_PATH_FUSED, &fused);
                run_path(&md, TG_PATH_TAPE, &taped);
                expect_outcomes(&md, "TG_PATH_FUSED vs TG_PATH_TAPE", &fused, &taped, 1e-10,
                                false);
                outcome_free(&fused);
                outcome_free(&taped);
                model_free(&md);
            }
}
END_TEST

/* Finite differences on one fused node: x, the parameters and the initial
 * states, every output in the loss. */
typedef struct {
    const model *md;
} gradcheck_ctx;

static tg_tensor *node_loss(tg_tape *tape, tg_tensor *const *params, void *ctx_)
{
    const model *md = ((gradcheck_ctx *)ctx_)->md;
    int n = md->rnn->layers[0].count;
    tg_fused_layer_options o = tg_fused_layer_defaults();
    o.lengths = md->c.lengths;
    o.reverse = md->c.reverse;
    o.linear_before_reset = md->c.linear_before_reset;
    o.cell_states = o.final_states = true;
    tg_fused_layer_out out;
    if (tg_fused_layer(tape, md->c.cell, params[0], params[1 + n], params[2 + n], params + 1, &o,
                       &out) != TG_OK)
        return NULL;
    return layer_loss(tape, md, 0, &(layer_out){out.a, out.c, out.a_n, out.c_n}, -1, -1);
}

START_TEST(fused_nodes_with_lengths_and_reverse_pass_gradcheck)
{
    static const int32_t lengths[] = {3, 1, 4, 3};
    for (int ci = 0; ci < TU_N_CELLS; ci++)
        for (int variant = 0; variant < 3; variant++) {
            layer_case c = {TU_CELLS[ci].cell, TU_CELLS[ci].linear_before_reset, 1, 3, 4, 4, 4,
                            variant == 2 ? NULL : lengths, .reverse = variant > 0,
                            .with_state = true};
            model md;
            model_new(&c, 60 + (uint32_t)ci, &md);
            tg_tensor *params[TG_CELL_MAX_PARAMS + 3];
            int n = md.rnn->layers[0].count;
            params[0] = md.x;
            memcpy(params + 1, md.rnn->layers[0].p, (size_t)n * sizeof *params);
            params[1 + n] = md.a0[0];
            params[2 + n] = md.c0[0];
            gradcheck_ctx ctx = {&md};
            tu_assert_gradcheck(node_loss, &ctx, n + (is_lstm(&md) ? 3 : 2), params, 1e-6);
            model_free(&md);
        }
}
END_TEST

/* ---- 4: any thread count, the same bits -------------------------------------------------- */

/* Lengths 1 .. T (T and 1 included), shuffled by a fixed generator. */
static int32_t *random_lengths(int64_t m, int64_t T, uint32_t seed)
{
    int32_t *l = malloc((size_t)m * sizeof *l);
    ck_assert_ptr_nonnull(l);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int64_t j = 0; j < m; j++)
        l[j] = j == 0 ? (int32_t)T : j == 1 ? 1 : 1 + (int32_t)tg_rng_below(&rng, (uint64_t)T);
    tg_rng_shuffle_i32(&rng, l, m);
    return l;
}

/* Shapes for each way the engine shares its time loop (nn/fused_engine.c,
 * plan_loop): a batch of 32 gives every thread rows ("by rows"); a batch
 * of 1 to 3 with hundreds of units is cut into slices of units ("by
 * units"). Which one a run takes also depends on what the pool measures a
 * thread start to cost, so every case also runs with each mode forced
 * (tg_fused_force_sharing). The lengths cases also hold the batch to each
 * sequence alone. */
typedef struct {
    layer_case c;
    bool random_lengths;
    bool against_alone;
} thread_case;

static const thread_case THREAD_CASES[] = {
    /* by rows */
    {{TG_CELL_LSTM, true, 1, 8, 32, 32, 48, NULL, .with_state = true}, false, false},
    {{TG_CELL_LSTM, true, 1, 8, 32, 32, 48, NULL, .with_state = true}, true, true},
    {{TG_CELL_GRU, false, 1, 8, 33, 32, 40, NULL, .reverse = true, .with_state = true}, true,
     true},
    {{TG_CELL_RNN, true, 2, 8, 48, 32, 40, NULL, .with_state = false}, true, false},
    {{TG_CELL_LSTM, true, 1, 8, 40, 32, 48, NULL, .reverse = true, .with_state = true,
      .f32 = true}, true, false},
    /* by units */
    {{TG_CELL_LSTM, true, 1, 8, 560, 2, 3, NULL, .with_state = true}, false, false},
    {{TG_CELL_GRU, false, 1, 8, 400, 3, 3, NULL, .with_state = true}, true, false},
    {{TG_CELL_GRU, true, 1, 8, 400, 3, 4, NULL, .reverse = true, .with_state = true,
      .f32 = true}, true, false},
    {{TG_CELL_LSTM, true, 1, 8, 520, 1, 3, NULL, .with_state = true}, false, false},
};

START_TEST(results_are_bit_identical_for_1_2_and_3_threads)
{
    thread_case tc = THREAD_CASES[_i];
    int32_t *lengths = tc.random_lengths ? random_lengths(tc.c.m, tc.c.T, 17 + (uint32_t)_i)
                                         : NULL;
    tc.c.lengths = lengths;
    model md;
    model_new(&tc.c, 200 + (uint32_t)_i, &md);
    outcome one = {0};
    set_threads(1);
    run_batch(&md, &one);
    if (lengths)
        expect_zero_padding(&md, &one);
    /* each way of sharing, forced (the plan alone would depend on what the
     * pool measures on this machine), and as planned */
    static const char *const MODE[] = {"as planned", "by rows", "by units"};
    for (int mode = 0; mode < 3; mode++) {
        for (int threads = 2; threads <= 3; threads++) {
            outcome many = {0};
            char what[64];
            snprintf(what, sizeof what, "%d threads (%s) vs 1 thread", threads, MODE[mode]);
            set_threads(threads);
            tg_fused_force_sharing((tg_fused_sharing)mode);
            run_batch(&md, &many);
            tg_fused_force_sharing(TG_SHARE_AUTO);
            expect_outcomes(&md, what, &many, &one, 0, true);
            if (tc.against_alone) {
                outcome alone = {0};
                run_alone(&md, false, &alone);
                expect_outcomes(&md, "batch vs each sequence alone (fused)", &many, &alone, 1e-12,
                                false);
                outcome_free(&alone);
            }
            outcome_free(&many);
        }
    }
    outcome_free(&one);
    model_free(&md);
    free(lengths);
}
END_TEST

/* Layers run at the same time from the caller's own threads (the pool
 * serves them in turns) or from inside pool tasks (where the engine's
 * parallel loops run inline) give the same bits as one after the other. */
typedef struct {
    model md;
    outcome out;
} concurrent_run;

static void *run_in_thread(void *arg)
{
    concurrent_run *r = arg;
    run_batch(&r->md, &r->out);
    return NULL;
}

static void run_in_task(void *ctx, int64_t task, int worker)
{
    (void)worker;
    concurrent_run *r = ctx;
    run_batch(&r[task].md, &r[task].out);
}

START_TEST(layers_run_concurrently_give_the_same_bits)
{
    enum { N = 3 };
    concurrent_run runs[N];
    outcome alone[N];
    int32_t *lengths[N];
    set_threads(2);
    for (int i = 0; i < N; i++) {
        thread_case tc = THREAD_CASES[i];
        lengths[i] = tc.random_lengths ? random_lengths(tc.c.m, tc.c.T, 50 + (uint32_t)i) : NULL;
        tc.c.lengths = lengths[i];
        model_new(&tc.c, 300 + (uint32_t)i, &runs[i].md);
        memset(&alone[i], 0, sizeof alone[i]);
        run_batch(&runs[i].md, &alone[i]);
    }
    for (int way = 0; way < 2; way++) {
        for (int i = 0; i < N; i++)
            memset(&runs[i].out, 0, sizeof runs[i].out);
        if (way == 0) {
            pthread_t threads[N];
            for (int i = 0; i < N; i++)
                ck_assert_int_eq(pthread_create(&threads[i], NULL, run_in_thread, &runs[i]), 0);
            for (int i = 0; i < N; i++)
                ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
        } else {
            tg_parallel_for(N, run_in_task, runs);
        }
        for (int i = 0; i < N; i++) {
            expect_outcomes(&runs[i].md, way ? "inside pool tasks vs alone" :
                            "from concurrent threads vs alone", &runs[i].out, &alone[i], 0, true);
            outcome_free(&runs[i].out);
        }
    }
    for (int i = 0; i < N; i++) {
        outcome_free(&alone[i]);
        model_free(&runs[i].md);
        free(lengths[i]);
    }
}
END_TEST

#ifdef __linux__
/* Threads of this process: the entries of /proc/self/task. */
static int process_threads(void)
{
    DIR *dir = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* A layer far too small to pay for a thread start (core/threadpool.h: "callers
 * should only go parallel for larger jobs") runs on the calling thread: the
 * pool starts no helper for it, whatever the thread count. */
START_TEST(small_layers_start_no_helper_thread)
{
    set_threads(2);
    for (int ci = 0; ci < TU_N_CELLS; ci++)
        for (int with_lengths = 0; with_lengths < 2; with_lengths++) {
            layer_case c = {TU_CELLS[ci].cell, TU_CELLS[ci].linear_before_reset, 1, 3, 5, 7, 9,
                            with_lengths ? LEN_7x9 : NULL, .with_state = true};
            model md;
            model_new(&c, 70, &md);
            tg_threadpool_shutdown(); /* no helper yet (a sanitizer may run its own thread) */
            int before = process_threads();
            outcome o = {0};
            run_batch(&md, &o);
            int started = process_threads() - before;
            ck_assert_msg(started == 0, "%s, 2 threads configured: a forward and backward this "
                          "small started %d thread(s): the pool's helpers (and, under a "
                          "sanitizer, its own thread, started with the first)", md.name, started);
            outcome_free(&o);
            model_free(&md);
        }
}
END_TEST
#endif

/* ---- 8: the team ----------------------------------------------------------------------- */

typedef struct {
    int64_t phases, slices;
    int threads;
    bool caller_only; /* more slices than run in parallel: all on the caller */
    pthread_t caller;
    atomic_int *runs;     /* per (phase, slice) */
    atomic_long *finished; /* per phase: slices that have returned */
    atomic_long early, bad_worker, off_caller;
    atomic_long spin_sink;
} team_probe;

static void probe_slice(void *ctx, int64_t phase, int64_t slice, int worker)
{
    team_probe *p = ctx;
    if (phase > 0 && atomic_load(&p->finished[phase - 1]) != p->slices)
        atomic_fetch_add(&p->early, 1);
    if (phase + 1 < p->phases && atomic_load(&p->finished[phase + 1]) != 0)
        atomic_fetch_add(&p->early, 1);
    if (worker < 0 || worker >= p->threads)
        atomic_fetch_add(&p->bad_worker, 1);
    if (p->caller_only && (worker != 0 || !pthread_equal(pthread_self(), p->caller)))
        atomic_fetch_add(&p->off_caller, 1);
    atomic_fetch_add(&p->runs[phase * p->slices + slice], 1);
    long work = 0; /* uneven slices, so that members overtake each other */
    for (int64_t i = 0; i < (slice % 5) * 200; i++)
        work += i ^ slice;
    atomic_fetch_add_explicit(&p->spin_sink, work, memory_order_relaxed);
    atomic_fetch_add(&p->finished[phase], 1);
}

static void run_team_probe(int threads, int64_t phases, int64_t slices)
{
    team_probe p = {.phases = phases, .slices = slices, .threads = threads,
                    .caller_only = slices > 64, .caller = pthread_self()};
    p.runs = calloc((size_t)(phases * slices), sizeof *p.runs);
    p.finished = calloc((size_t)phases, sizeof *p.finished);
    ck_assert(p.runs && p.finished);
    for (int64_t i = 0; i < phases * slices; i++)
        atomic_init(&p.runs[i], 0);
    for (int64_t i = 0; i < phases; i++)
        atomic_init(&p.finished[i], 0);
    atomic_init(&p.early, 0);
    atomic_init(&p.bad_worker, 0);
    atomic_init(&p.off_caller, 0);
    atomic_init(&p.spin_sink, 0);
    tg_team_run(phases, slices, threads, probe_slice, &p);
    for (int64_t i = 0; i < phases * slices; i++) {
        int runs = atomic_load(&p.runs[i]);
        ck_assert_msg(runs == 1, "team of %d, %lld phases x %lld slices: phase %lld slice %lld "
                      "ran %d times", threads, (long long)phases, (long long)slices,
                      (long long)(i / slices), (long long)(i % slices), runs);
    }
    long early = atomic_load(&p.early), bad_worker = atomic_load(&p.bad_worker);
    long off_caller = atomic_load(&p.off_caller);
    ck_assert_msg(early == 0, "team of %d, %lld x %lld: %ld slices overlapped another phase",
                  threads, (long long)phases, (long long)slices, early);
    ck_assert_msg(bad_worker == 0, "team of %d: %ld slices got a worker outside 0..%d", threads,
                  bad_worker, threads - 1);
    ck_assert_msg(off_caller == 0, "team of %d, %lld slices (over 64): %ld ran off the calling "
                  "thread", threads, (long long)slices, off_caller);
    free(p.runs);
    free(p.finished);
}

START_TEST(team_runs_every_slice_once_phase_after_phase)
{
    static const int thread_counts[] = {1, 2, 4};
    static const int64_t phase_counts[] = {1, 2, 9};
    for (size_t t = 0; t < 3; t++) {
        ck_assert_int_eq(tg_set_num_threads(thread_counts[t]), TG_OK);
        for (size_t p = 0; p < 3; p++)
            for (int64_t slices = 1; slices <= 70; slices++)
                run_team_probe(thread_counts[t], phase_counts[p], slices);
    }
}
END_TEST

static void never_called(void *ctx, int64_t phase, int64_t slice, int worker)
{
    (void)phase, (void)slice, (void)worker;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

START_TEST(team_with_nothing_to_do_calls_nothing)
{
    atomic_int calls;
    atomic_init(&calls, 0);
    ck_assert_int_eq(tg_set_num_threads(2), TG_OK);
    tg_team_run(0, 5, 2, never_called, &calls);
    tg_team_run(5, 0, 2, never_called, &calls);
    tg_team_run(-1, 3, 2, never_called, &calls);
    int n = atomic_load(&calls);
    ck_assert_int_eq(n, 0);
}
END_TEST

Suite *suite_engine(void)
{
    Suite *s = suite_create("engine");
    TCase *seq = tcase_create("lengths");
    tcase_add_loop_test(seq, batch_with_lengths_equals_each_sequence_alone, 0,
                        (int)(sizeof SEQ_CASES / sizeof SEQ_CASES[0]));
    tcase_add_test(seq, bad_lengths_are_refused_by_index_and_nothing_is_recorded);
    tcase_add_test(seq, lengths_are_read_once_at_forward);
    tcase_add_test(seq, workspace_sizes_too_large_are_refused_without_overflow);
    tcase_add_test(seq, gru_reset_first_fused_equals_tape);
    tcase_add_test(seq, fused_nodes_with_lengths_and_reverse_pass_gradcheck);
    suite_add_tcase(s, seq);
    TCase *threads = tcase_create("threads");
    tcase_add_loop_test(threads, results_are_bit_identical_for_1_2_and_3_threads, 0,
                        (int)(sizeof THREAD_CASES / sizeof THREAD_CASES[0]));
    tcase_add_test(threads, layers_run_concurrently_give_the_same_bits);
#ifdef __linux__
    tcase_add_test(threads, small_layers_start_no_helper_thread);
#endif
    suite_add_tcase(s, threads);
    TCase *team = tcase_create("team");
    tcase_add_test(team, team_runs_every_slice_once_phase_after_phase);
    tcase_add_test(team, team_with_nothing_to_do_calls_nothing);
    suite_add_tcase(s, team);
    return s;
}
