/* The fused RNN, LSTM and GRU kernels (nn/fused.h) against their reference: the
 * same cells composed from ops on the tape, a few lines per step. Outputs,
 * final states and every gradient must agree (relative 1e-10 in f64, 1e-4
 * in f32) at several shapes, with and without initial states, on
 * contiguous and strided inputs, whichever outputs the loss reads. Then
 * finite differences on the fused nodes themselves, the raw kernels'
 * workspace contract, and the error paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { MAX_T = 32 };

typedef struct {
    int64_t n_x, n_a, m, T;
    bool strided_x; /* x is a sliced, permuted view of a larger tensor, and the
                       weights and biases are transposed views */
    bool with_state; /* a0 (and c0) given, else NULL = zeros */
} shape_case;

static const shape_case shape_cases[] = {
    {3, 5, 10, 4, false, true},  {1, 1, 1, 1, false, true}, {7, 5, 3, 9, true, true},
    {7, 5, 3, 9, false, false}, {4, 3, 1, 6, true, false}, {2, 6, 5, 1, true, true},
};
enum { N_SHAPES = sizeof shape_cases / sizeof shape_cases[0] };

/* What the loss reads: the hidden states, the cell states, both, or only
 * the final hidden state. */
typedef enum { READ_A = 1, READ_C = 2, READ_BOTH = 3, READ_LAST_A = 4 } read_kind;

typedef enum { CELL_RNN, CELL_LSTM, CELL_GRU } cell_kind;
static const char *const CELL_NAMES[] = {"RNN", "LSTM", "GRU"};

typedef struct {
    shape_case sc;
    cell_kind cell;
    bool fused;
    read_kind read;
    tg_tensor *out_a, *out_c; /* persistent copies of the outputs of the last run */
} run_ctx;

/* Parameters: RNN {x, Wax, Waa, ba, a0}; LSTM {x, Wf, Wi, Wc, Wo, bf, bi, bc, bo, a0, c0};
 * GRU {x, Wr, Wz, Wn, Ur, Uz, Un, br, bz, bn, bhn, a0}. For a strided case "x"
 * is the larger tensor the view looks into, and the weights and biases are
 * stored transposed. */
enum { RNN_PARAMS = 5, LSTM_PARAMS = 11, GRU_PARAMS = 12, MAX_PARAMS = 12 };
static const int N_PARAMS[] = {RNN_PARAMS, LSTM_PARAMS, GRU_PARAMS};
static const int FIRST_STATE[] = {4, 9, 11}; /* index of a0 */

static int make_params(const shape_case *sc, cell_kind cell, tg_dtype dtype, uint32_t seed,
                       tg_tensor **p)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    int64_t n_x = sc->n_x, n_a = sc->n_a, m = sc->m, T = sc->T;
    p[0] = sc->strided_x ? tu_param(&rng, dtype, "x", TG_DIMS(m, T + 2, n_x + 1))
                         : tu_param(&rng, dtype, "x", TG_DIMS(n_x, m, T));
    bool t = sc->strided_x;
    if (cell == CELL_GRU) {
        static const char *const names[] = {"Wr", "Wz", "Wn", "Ur", "Uz", "Un",
                                            "br", "bz", "bn", "bhn"};
        for (int k = 0; k < 3; k++)
            p[1 + k] = tu_param(&rng, dtype, names[k], TG_DIMS(t ? n_x : n_a, t ? n_a : n_x));
        for (int k = 3; k < 6; k++)
            p[1 + k] = tu_param(&rng, dtype, names[k], TG_DIMS(n_a, n_a));
        for (int k = 6; k < 10; k++)
            p[1 + k] = tu_param(&rng, dtype, names[k], TG_DIMS(t ? 1 : n_a, t ? n_a : 1));
        p[11] = tu_param(&rng, dtype, "a0", TG_DIMS(n_a, m));
        return GRU_PARAMS;
    }
    if (cell == CELL_RNN) {
        p[1] = tu_param(&rng, dtype, "Wax", TG_DIMS(t ? n_x : n_a, t ? n_a : n_x));
        p[2] = tu_param(&rng, dtype, "Waa", TG_DIMS(n_a, n_a));
        p[3] = tu_param(&rng, dtype, "ba", TG_DIMS(t ? 1 : n_a, t ? n_a : 1));
        p[4] = tu_param(&rng, dtype, "a0", TG_DIMS(n_a, m));
        return RNN_PARAMS;
    }
    static const char *const names[] = {"Wf", "Wi", "Wc", "Wo", "bf", "bi", "bc", "bo"};
    int64_t K = n_a + n_x;
    for (int k = 0; k < 4; k++)
        p[1 + k] = tu_param(&rng, dtype, names[k], TG_DIMS(t ? K : n_a, t ? n_a : K));
    for (int k = 0; k < 4; k++)
        p[5 + k] = tu_param(&rng, dtype, names[4 + k], TG_DIMS(t ? 1 : n_a, t ? n_a : 1));
    p[9] = tu_param(&rng, dtype, "a0", TG_DIMS(n_a, m));
    p[10] = tu_param(&rng, dtype, "c0", TG_DIMS(n_a, m));
    return LSTM_PARAMS;
}

/* x (n_x, m, T) as the layer sees it. */
static tg_tensor *seq_input(tg_tape *tape, tg_tensor *x, const shape_case *sc)
{
    if (!sc->strided_x)
        return x;
    tg_tensor *v = tg_slice(tape, tg_slice(tape, x, 1, 1, sc->T + 1, 1), 2, 0, sc->n_x, 1);
    return tg_permute(tape, v, (const int[]){2, 0, 1});
}

/* ---- the references: the cells composed from ops ---------------------------------- */

static tg_tensor *rnn_reference(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *Wax,
                                tg_tensor *Waa, tg_tensor *ba)
{
    int64_t T = x->shape[2];
    tg_tensor *steps[MAX_T];
    tg_tensor *a = a0 ? a0 : tg_tape_zeros(tape, x->dtype, TG_DIMS(Waa->shape[0], x->shape[1]));
    for (int64_t t = 0; t < T; t++) {
        tg_tensor *xt = tg_select(tape, x, 2, t);
        a = tg_tanh(tape, tg_add(tape, tg_add(tape, tg_matmul(tape, Waa, a),
                                              tg_matmul(tape, Wax, xt)), ba));
        steps[t] = a;
    }
    return tg_stack(tape, (int)T, steps, 2);
}

static void lstm_reference(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                           tg_tensor *const *W, tg_tensor *const *b, tg_tensor **a_all,
                           tg_tensor **c_all)
{
    int64_t T = x->shape[2], n_a = W[0]->shape[0], m = x->shape[1];
    tg_tensor *as[MAX_T], *cs[MAX_T];
    tg_tensor *a = a0 ? a0 : tg_tape_zeros(tape, x->dtype, TG_DIMS(n_a, m));
    tg_tensor *c = c0 ? c0 : tg_tape_zeros(tape, x->dtype, TG_DIMS(n_a, m));
    for (int64_t t = 0; t < T; t++) {
        tg_tensor *concat = tg_concat(tape, 2, (tg_tensor *[]){a, tg_select(tape, x, 2, t)}, 0);
        tg_tensor *f = tg_sigmoid(tape, tg_add(tape, tg_matmul(tape, W[0], concat), b[0]));
        tg_tensor *i = tg_sigmoid(tape, tg_add(tape, tg_matmul(tape, W[1], concat), b[1]));
        tg_tensor *cc = tg_tanh(tape, tg_add(tape, tg_matmul(tape, W[2], concat), b[2]));
        tg_tensor *o = tg_sigmoid(tape, tg_add(tape, tg_matmul(tape, W[3], concat), b[3]));
        c = tg_add(tape, tg_mul(tape, f, c), tg_mul(tape, i, cc));
        a = tg_mul(tape, o, tg_tanh(tape, c));
        as[t] = a;
        cs[t] = c;
    }
    *a_all = tg_stack(tape, (int)T, as, 2);
    *c_all = tg_stack(tape, (int)T, cs, 2);
}

/* PyTorch's GRU: r, z gates, candidate n with r applied to Un a + bhn. */
static tg_tensor *gru_reference(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *const *W,
                                tg_tensor *const *U, tg_tensor *const *b)
{
    int64_t T = x->shape[2];
    tg_tensor *steps[MAX_T];
    tg_tensor *a = a0 ? a0 : tg_tape_zeros(tape, x->dtype, TG_DIMS(U[0]->shape[0], x->shape[1]));
    for (int64_t t = 0; t < T; t++) {
        tg_tensor *xt = tg_select(tape, x, 2, t), *g[2];
        for (int k = 0; k < 2; k++) /* r, z */
            g[k] = tg_sigmoid(tape, tg_add(tape, tg_add(tape, tg_matmul(tape, W[k], xt), b[k]),
                                           tg_matmul(tape, U[k], a)));
        tg_tensor *hn = tg_add(tape, tg_matmul(tape, U[2], a), b[3]);
        tg_tensor *n = tg_tanh(tape, tg_add(tape, tg_add(tape, tg_matmul(tape, W[2], xt), b[2]),
                                            tg_mul(tape, g[0], hn)));
        /* a = (1 - z) * n + z * a */
        a = tg_add(tape, tg_mul(tape, tg_affine(tape, g[1], -1, 1), n), tg_mul(tape, g[1], a));
        steps[t] = a;
    }
    return tg_stack(tape, (int)T, steps, 2);
}

/* ---- one run of either path, as a loss of the parameters ----------------------------- */

static void keep(tg_tensor **slot, const tg_tensor *t)
{
    tg_tensor_free(*slot);
    *slot = t ? tg_tensor_copy(t) : NULL;
}

static tg_tensor *sequence_loss(tg_tape *tape, tg_tensor *const *params, void *ctx_)
{
    run_ctx *ctx = ctx_;
    const shape_case *sc = &ctx->sc;
    tg_tensor *x = seq_input(tape, params[0], sc), *p[MAX_PARAMS];
    int n = N_PARAMS[ctx->cell], first_state = FIRST_STATE[ctx->cell];
    for (int k = 0; k < n; k++) { /* weights and biases seen through transposes */
        bool square = ctx->cell == CELL_RNN ? k == 2 : ctx->cell == CELL_GRU && k >= 4 && k < 7;
        p[k] = sc->strided_x && k > 0 && k < first_state && !square
                   ? tg_transpose(tape, params[k], 0, 1)
                   : params[k];
    }
    tg_tensor *a = NULL, *c = NULL;
    if (ctx->cell == CELL_RNN) {
        tg_tensor *a0 = sc->with_state ? p[4] : NULL;
        a = ctx->fused ? tg_rnn_fused(tape, x, a0, p[1], p[2], p[3])
                       : rnn_reference(tape, x, a0, p[1], p[2], p[3]);
    } else if (ctx->cell == CELL_GRU) {
        tg_tensor *a0 = sc->with_state ? p[11] : NULL;
        a = ctx->fused ? tg_gru_fused(tape, x, a0, p + 1, p + 4, p + 7)
                       : gru_reference(tape, x, a0, p + 1, p + 4, p + 7);
    } else {
        tg_tensor *a0 = sc->with_state ? p[9] : NULL, *c0 = sc->with_state ? p[10] : NULL;
        if (ctx->fused)
            a = tg_lstm_fused(tape, x, a0, c0, p + 1, p + 5, &c);
        else
            lstm_reference(tape, x, a0, c0, p + 1, p + 5, &a, &c);
    }
    if (!a)
        return NULL;
    keep(&ctx->out_a, a);
    keep(&ctx->out_c, c);
    switch (ctx->read) {
    case READ_A: return tu_weighted_sum(tape, a);
    case READ_C: return tu_weighted_sum(tape, tg_scale(tape, c, -0.7));
    case READ_BOTH:
        return tg_add(tape, tu_weighted_sum(tape, a),
                      tu_weighted_sum(tape, tg_scale(tape, c, -0.7)));
    case READ_LAST_A: return tu_weighted_sum(tape, tg_select(tape, a, 2, sc->T - 1));
    }
    return NULL;
}

/* Run one path: outputs into ctx, gradients (copies) into grads[0..n). */
static void run_path(run_ctx *ctx, bool fused, int n, tg_tensor *const *p, tg_tensor **grads)
{
    for (int k = 0; k < n; k++)
        tg_tensor_zero_grad(p[k]);
    ctx->fused = fused;
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = sequence_loss(tape, p, ctx);
    ck_assert_msg(loss != NULL, "%s path: %s", fused ? "fused" : "tape", tg_tape_error(tape));
    ck_assert_msg(tg_backward(tape, loss) == TG_OK, "%s", tg_tape_error(tape));
    if (fused) /* views, one node for the whole layer and the loss, whatever T_x */
        ck_assert_msg(tg_tape_entry_count(tape) < 24, "fused path recorded %zu entries",
                      tg_tape_entry_count(tape));
    for (int k = 0; k < n; k++)
        grads[k] = tg_tensor_copy(p[k]->grad);
    tg_tape_free(tape);
}

/* f64: elementwise relative difference (|values| below `floor` compared
 * absolutely). f32: normwise, max |difference| / max |ref|, because a
 * gradient element that is a sum of cancelling terms carries the rounding of
 * the terms, not of its own size. */
static void assert_close(const char *what, const char *name, const tg_tensor *ref,
                         const tg_tensor *got, double tol, double floor, const run_ctx *ctx)
{
    double d = tu_max_rel_diff(ref, got, floor);
    if (ref->dtype == TG_F32) {
        double scale = 0;
        for (int64_t i = 0; i < tg_tensor_numel(ref); i++)
            scale = fmax(scale, fabs(tg_tensor_get_flat(ref, i)));
        d = tu_max_abs_diff(ref, got) / fmax(scale, 1e-30);
    }
    ck_assert_msg(d < tol,
                  "%s %s %s: fused vs tape differ by %.3g (n_x=%lld n_a=%lld m=%lld T=%lld, "
                  "strided %d, state %d, read %d)",
                  CELL_NAMES[ctx->cell], what, name, d, (long long)ctx->sc.n_x,
                  (long long)ctx->sc.n_a, (long long)ctx->sc.m, (long long)ctx->sc.T,
                  ctx->sc.strided_x, ctx->sc.with_state, ctx->read);
}

/* Tape and fused paths on the same parameters: outputs and every gradient. */
static void compare_paths(const shape_case *sc, cell_kind cell, read_kind read, tg_dtype dtype,
                          uint32_t seed)
{
    double tol = dtype == TG_F64 ? 1e-10 : 1e-4, floor = 1e-6;
    tg_tensor *p[MAX_PARAMS], *g_ref[MAX_PARAMS], *g_fused[MAX_PARAMS];
    int n = make_params(sc, cell, dtype, seed, p);
    run_ctx ref = {*sc, cell, false, read, NULL, NULL}, fused = ref;
    run_path(&ref, false, n, p, g_ref);
    run_path(&fused, true, n, p, g_fused);
    assert_close("output", "a", ref.out_a, fused.out_a, tol, floor, &ref);
    if (cell == CELL_LSTM)
        assert_close("output", "c", ref.out_c, fused.out_c, tol, floor, &ref);
    int n_checked = 0;
    for (int k = 0; k < n; k++) {
        bool unused_state = !sc->with_state && k >= FIRST_STATE[cell];
        if (unused_state) {
            /* a NULL state means zeros: the parameter took no part */
            ck_assert_double_eq(tu_max_abs_diff(g_fused[k], g_ref[k]), 0.0);
            continue;
        }
        assert_close("gradient", p[k]->name, g_ref[k], g_fused[k], tol, floor, &ref);
        n_checked++;
    }
    ck_assert_int_ge(n_checked, FIRST_STATE[cell]);
    tu_free_all(g_ref, n);
    tu_free_all(g_fused, n);
    tu_free_all(p, n);
    tg_tensor *outs[] = {ref.out_a, ref.out_c, fused.out_a, fused.out_c};
    tu_free_all(outs, 4);
}

START_TEST(rnn_fused_matches_tape_f64)
{
    const shape_case *sc = &shape_cases[_i];
    compare_paths(sc, CELL_RNN, READ_A, TG_F64, 10 + (uint32_t)_i);
    compare_paths(sc, CELL_RNN, READ_LAST_A, TG_F64, 20 + (uint32_t)_i);
}
END_TEST

START_TEST(rnn_fused_matches_tape_f32)
{
    compare_paths(&shape_cases[_i], CELL_RNN, READ_A, TG_F32, 30 + (uint32_t)_i);
}
END_TEST

START_TEST(lstm_fused_matches_tape_f64)
{
    const shape_case *sc = &shape_cases[_i];
    compare_paths(sc, CELL_LSTM, READ_BOTH, TG_F64, 40 + (uint32_t)_i);
    compare_paths(sc, CELL_LSTM, READ_A, TG_F64, 50 + (uint32_t)_i);
    compare_paths(sc, CELL_LSTM, READ_C, TG_F64, 60 + (uint32_t)_i);
    compare_paths(sc, CELL_LSTM, READ_LAST_A, TG_F64, 70 + (uint32_t)_i);
}
END_TEST

START_TEST(lstm_fused_matches_tape_f32)
{
    compare_paths(&shape_cases[_i], CELL_LSTM, READ_BOTH, TG_F32, 80 + (uint32_t)_i);
}
END_TEST

START_TEST(gru_fused_matches_tape_f64)
{
    const shape_case *sc = &shape_cases[_i];
    compare_paths(sc, CELL_GRU, READ_A, TG_F64, 100 + (uint32_t)_i);
    compare_paths(sc, CELL_GRU, READ_LAST_A, TG_F64, 110 + (uint32_t)_i);
}
END_TEST

START_TEST(gru_fused_matches_tape_f32)
{
    compare_paths(&shape_cases[_i], CELL_GRU, READ_A, TG_F32, 120 + (uint32_t)_i);
}
END_TEST

/* ---- finite differences on the fused nodes -------------------------------------------- */

START_TEST(fused_nodes_pass_gradcheck)
{
    static const shape_case cases[] = {{3, 4, 2, 3, true, true}, {2, 3, 1, 1, false, true}};
    for (int cell = CELL_RNN; cell <= CELL_GRU; cell++) {
        for (int k = 0; k < 2; k++) {
            tg_tensor *p[MAX_PARAMS];
            int n = make_params(&cases[k], (cell_kind)cell, TG_F64, 90 + (uint32_t)k, p);
            run_ctx ctx = {cases[k], (cell_kind)cell, true, cell == CELL_LSTM ? READ_BOTH : READ_A,
                           NULL, NULL};
            tu_assert_gradcheck(sequence_loss, &ctx, n, p, 1e-6);
            tg_tensor *outs[] = {ctx.out_a, ctx.out_c};
            tu_free_all(outs, 2);
            tu_free_all(p, n);
        }
    }
}
END_TEST

/* ---- the raw kernels ---------------------------------------------------------------------- */

/* Backward leaves the cache intact and adds: a second call doubles every
 * gradient. A forward-only workspace is smaller and backward refuses it. */
START_TEST(raw_kernels_accumulate_and_keep_their_cache)
{
    int64_t n_x = 3, n_a = 4, m = 2, T = 5;
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(n_x, m, T));
    tg_tensor *W[4], *b[4], *dW[4], *db[4];
    for (int k = 0; k < 4; k++) {
        W[k] = tg_tensor_randn(&rng, TG_F64, TG_DIMS(n_a, n_a + n_x));
        b[k] = tg_tensor_randn(&rng, TG_F64, TG_DIMS(n_a, 1));
        dW[k] = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, n_a + n_x));
        db[k] = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, 1));
    }
    tg_tensor *da = tg_tensor_randn(&rng, TG_F64, TG_DIMS(n_a, m, T));
    tg_tensor *dc = tg_tensor_randn(&rng, TG_F64, TG_DIMS(n_a, m, T));
    tg_tensor *a = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, m, T));
    tg_tensor *c = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, m, T));
    tg_tensor *dx = tg_tensor_zeros(TG_F64, TG_DIMS(n_x, m, T));
    tg_tensor *dc0 = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, m));
    size_t inference, training;
    ck_assert_int_eq(tg_lstm_fused_workspace(TG_F64, n_x, n_a, m, T, false, &inference), TG_OK);
    ck_assert_int_eq(tg_lstm_fused_workspace(TG_F64, n_x, n_a, m, T, true, &training), TG_OK);
    ck_assert_uint_lt(inference, training);
    void *ws = malloc(training);
    ck_assert_int_eq(tg_lstm_fused_forward(x, NULL, NULL, (const tg_tensor *const *)W,
                                           (const tg_tensor *const *)b, a, c, ws, training),
                     TG_OK);
    ck_assert_int_eq(tg_lstm_fused_backward(ws, training, da, dc, dx, NULL, dc0, dW, db), TG_OK);
    tg_tensor *first[] = {tg_tensor_copy(dx), tg_tensor_copy(dc0), tg_tensor_copy(dW[2]),
                          tg_tensor_copy(db[3])};
    ck_assert_int_eq(tg_lstm_fused_backward(ws, training, da, dc, dx, NULL, dc0, dW, db), TG_OK);
    tg_tensor *second[] = {dx, dc0, dW[2], db[3]};
    for (int k = 0; k < 4; k++) {
        int64_t numel = tg_tensor_numel(first[k]);
        double biggest = 0;
        for (int64_t i = 0; i < numel; i++) {
            double v = tg_tensor_get_flat(first[k], i);
            biggest = fmax(biggest, fabs(v));
            ck_assert_double_eq_tol(tg_tensor_get_flat(second[k], i), 2 * v, 1e-12);
        }
        ck_assert_double_gt(biggest, 0.0);
    }
    /* The step views are the course's cache of a step. */
    tg_fused_step st;
    ck_assert_int_eq(tg_fused_step_views(ws, training, 3, &st), TG_OK);
    for (int64_t i = 0; i < n_a; i++)
        for (int64_t j = 0; j < m; j++) {
            int64_t ij[2] = {i, j};
            ck_assert_double_eq(tg_tensor_get(&st.a_next, ij),
                                tg_tensor_get(a, (int64_t[]){i, j, 3}));
            ck_assert_double_eq(tg_tensor_get(&st.a_prev, ij),
                                tg_tensor_get(a, (int64_t[]){i, j, 2}));
            ck_assert_double_eq(tg_tensor_get(&st.c_next, ij),
                                tg_tensor_get(c, (int64_t[]){i, j, 3}));
            double f = tg_tensor_get(&st.ft, ij), in = tg_tensor_get(&st.it, ij);
            double cc = tg_tensor_get(&st.cct, ij), o = tg_tensor_get(&st.ot, ij);
            ck_assert_double_eq_tol(f * tg_tensor_get(&st.c_prev, ij) + in * cc,
                                    tg_tensor_get(&st.c_next, ij), 1e-14);
            ck_assert_double_eq_tol(o * tanh(tg_tensor_get(&st.c_next, ij)),
                                    tg_tensor_get(&st.a_next, ij), 1e-14);
        }
    ck_assert_double_eq(tg_tensor_get(&st.xt, (int64_t[]){2, 1}),
                        tg_tensor_get(x, (int64_t[]){2, 1, 3}));
    ck_assert_int_ne(tg_fused_step_views(ws, training, T, &st), TG_OK);
    /* Forward-only: the same states, and backward says why it cannot run. */
    tg_tensor *a2 = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, m, T));
    ck_assert_int_eq(tg_lstm_fused_forward(x, NULL, NULL, (const tg_tensor *const *)W,
                                           (const tg_tensor *const *)b, a2, NULL, ws, inference),
                     TG_OK);
    ck_assert(tu_bitwise_equal(a, a2));
    ck_assert_int_eq(tg_lstm_fused_backward(ws, inference, da, dc, dx, NULL, dc0, dW, db),
                     TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "forward only"));
    /* An RNN backward refuses an LSTM workspace. */
    ck_assert_int_eq(tg_rnn_fused_backward(ws, training, NULL, NULL, NULL, NULL, NULL, NULL),
                     TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "LSTM"));
    free(ws);
    tu_free_all(first, 4);
    tg_tensor *all[] = {x, da, dc, a, c, dx, dc0, a2};
    tu_free_all(all, 8);
    tu_free_all(W, 4);
    tu_free_all(b, 4);
    tu_free_all(dW, 4);
    tu_free_all(db, 4);
}
END_TEST

/* In no-grad mode the node records nothing and computes the same states. */
START_TEST(no_grad_forward_records_nothing)
{
    shape_case sc = {3, 4, 2, 5, false, true};
    tg_tensor *p[RNN_PARAMS];
    int n = make_params(&sc, CELL_RNN, TG_F64, 7, p);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = seq_input(tape, p[0], &sc);
    tg_tensor *a = tg_rnn_fused(tape, x, p[4], p[1], p[2], p[3]);
    ck_assert_ptr_nonnull(a);
    size_t with_grad = tg_tape_entry_count(tape);
    tg_tape_no_grad(tape, true);
    tg_tensor *b = tg_rnn_fused(tape, x, p[4], p[1], p[2], p[3]);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(tg_tape_entry_count(tape), with_grad);
    ck_assert(tu_bitwise_equal(a, b));
    tg_tape_free(tape);
    tu_free_all(p, n);
}
END_TEST

/* ---- error paths ---------------------------------------------------------------------------- */

static void assert_tape_error(tg_tape *tape, tg_status status, const char *needle)
{
    ck_assert_int_eq(tg_tape_status(tape), status);
    ck_assert_msg(strstr(tg_tape_error(tape), needle) != NULL, "message \"%s\" lacks \"%s\"",
                  tg_tape_error(tape), needle);
    ck_assert_uint_eq(tg_tape_entry_count(tape), 0);
    tg_tape_reset(tape);
}

START_TEST(rnn_node_rejects_bad_arguments_clearly)
{
    tg_tensor *p[RNN_PARAMS];
    shape_case sc = {3, 5, 10, 4, false, true};
    int n = make_params(&sc, CELL_RNN, TG_F64, 3, p);
    tg_tensor *x = p[0], *Wax = p[1], *Waa = p[2], *ba = p[3], *a0 = p[4];
    tg_tensor *x2d = tg_tensor_zeros(TG_F64, TG_DIMS(3, 10));
    tg_tensor *Wax_bad = tg_tensor_zeros(TG_F64, TG_DIMS(5, 4));
    tg_tensor *a0_bad = tg_tensor_zeros(TG_F64, TG_DIMS(5, 9));
    tg_tensor *Waa32 = tg_tensor_zeros(TG_F32, TG_DIMS(5, 5));
    tg_tape *tape = tg_tape_new();

    ck_assert_ptr_null(tg_rnn_fused(tape, x2d, a0, Wax, Waa, ba));
    assert_tape_error(tape, TG_ERR_SHAPE, "tg_rnn_fused: x must be 3-D (n_x, m, T_x), got (3,10)");
    ck_assert_ptr_null(tg_rnn_fused(tape, x, a0, Wax_bad, Waa, ba));
    assert_tape_error(tape, TG_ERR_SHAPE,
                      "tg_rnn_fused: Wax is (5,4) but must be (n_a, n_x) = (5,3)");
    ck_assert_ptr_null(tg_rnn_fused(tape, x, a0_bad, Wax, Waa, ba));
    assert_tape_error(tape, TG_ERR_SHAPE, "a0 is (5,9) but must be (n_a, m) = (5,10)");
    ck_assert_ptr_null(tg_rnn_fused(tape, x, a0, Wax, Waa32, ba));
    assert_tape_error(tape, TG_ERR_DTYPE, "dtypes differ: x is f64 but Waa is f32");
    ck_assert_ptr_null(tg_rnn_fused(tape, x, a0, NULL, Waa, ba));
    assert_tape_error(tape, TG_ERR_ARG, "tg_rnn_fused: Wax is NULL");
    ck_assert_ptr_null(tg_rnn_fused(tape, x, a0, Wax, Waa, NULL));
    assert_tape_error(tape, TG_ERR_ARG, "ba is NULL");
    ck_assert_ptr_null(tg_rnn_fused(tape, NULL, a0, Wax, Waa, ba));
    assert_tape_error(tape, TG_ERR_ARG, "x is NULL");
    /* An errored tape refuses the node and keeps its first message. */
    ck_assert_ptr_null(tg_rnn_fused(tape, x, a0, Wax_bad, Waa, ba));
    ck_assert_ptr_null(tg_rnn_fused(tape, x, a0, Wax, Waa, ba));
    assert_tape_error(tape, TG_ERR_SHAPE, "Wax is (5,4)");
    ck_assert_ptr_null(tg_rnn_fused(NULL, x, a0, Wax, Waa, ba));

    /* The raw kernels: nothing written on a bad call. */
    size_t bytes;
    ck_assert_int_eq(tg_rnn_fused_workspace(TG_F64, 3, 5, 10, 0, true, &bytes), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_rnn_fused_workspace(TG_F64, INT64_MAX / 32, INT64_MAX / 32, 4, 4, true,
                                            &bytes),
                     TG_ERR_OVERFLOW);
    ck_assert_int_eq(tg_rnn_fused_workspace(TG_F64, 3, 5, 10, 4, true, &bytes), TG_OK);
    void *ws = malloc(bytes);
    tg_tensor *a = tg_tensor_full(TG_F64, TG_DIMS(5, 10, 4), 7.0);
    ck_assert_int_eq(tg_rnn_fused_forward(x, a0, Wax, Waa, ba, a, ws, bytes / 2), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "too small"));
    ck_assert_int_eq(tg_rnn_fused_forward(x, a0, Wax_bad, Waa, ba, a, ws, bytes), TG_ERR_SHAPE);
    ck_assert_double_eq(tg_tensor_get_flat(a, 0), 7.0);
    ck_assert_int_eq(tg_rnn_fused_backward(ws, bytes, NULL, NULL, NULL, NULL, NULL, NULL),
                     TG_ERR_ARG); /* no forward has run in this workspace */
    ck_assert_int_eq(tg_rnn_fused_forward(x, a0, Wax, Waa, ba, a, ws, bytes), TG_OK);
    tg_tensor *da = tg_tensor_ones(TG_F64, TG_DIMS(5, 10, 4));
    tg_tensor *dWax = tg_tensor_full(TG_F64, TG_DIMS(5, 3), 2.0);
    tg_tensor *dba_bad = tg_tensor_zeros(TG_F64, TG_DIMS(1, 5));
    ck_assert_int_eq(tg_rnn_fused_backward(ws, bytes, da, NULL, NULL, dWax, NULL, dba_bad),
                     TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "dba is (1,5) but must be (n_a, 1) = (5,1)"));
    ck_assert_double_eq(tg_tensor_get_flat(dWax, 0), 2.0);
    free(ws);
    tg_tensor *all[] = {x2d, Wax_bad, a0_bad, Waa32, a, da, dWax, dba_bad};
    tu_free_all(all, 8);
    tg_tape_free(tape);
    tu_free_all(p, n);
}
END_TEST

START_TEST(lstm_node_rejects_bad_arguments_clearly)
{
    tg_tensor *p[LSTM_PARAMS];
    shape_case sc = {4, 3, 13, 5, false, true};
    int n = make_params(&sc, CELL_LSTM, TG_F64, 4, p);
    tg_tensor *x = p[0], *a0 = p[9], *c0 = p[10], *a = NULL, *c = NULL;
    tg_tensor *W[4] = {p[1], p[2], p[3], p[4]}, *b[4] = {p[5], p[6], p[7], p[8]};
    tg_tensor *Wi_bad = tg_tensor_zeros(TG_F64, TG_DIMS(3, 6));
    tg_tensor *c0_bad = tg_tensor_zeros(TG_F64, TG_DIMS(13, 3));
    tg_tape *tape = tg_tape_new();

    tg_tensor *W_bad[4] = {p[1], Wi_bad, p[3], p[4]};
    ck_assert_ptr_null(tg_lstm_fused(tape, x, a0, c0, W_bad, b, &c));
    assert_tape_error(tape, TG_ERR_SHAPE,
                      "tg_lstm_fused: Wi is (3,6) but must be (n_a, n_a + n_x) = (3,7)");
    ck_assert_ptr_null(c);
    ck_assert_ptr_null(tg_lstm_fused(tape, x, a0, c0_bad, W, b, &c));
    assert_tape_error(tape, TG_ERR_SHAPE, "c0 is (13,3) but must be (n_a, m) = (3,13)");
    tg_tensor *b_null[4] = {p[5], p[6], NULL, p[8]};
    ck_assert_ptr_null(tg_lstm_fused(tape, x, a0, c0, W, b_null, &c));
    assert_tape_error(tape, TG_ERR_ARG, "bc is NULL");
    ck_assert_ptr_null(tg_lstm_fused(tape, x, a0, c0, NULL, b, &c));
    assert_tape_error(tape, TG_ERR_ARG, "W or the bias array b is NULL");
    ck_assert_ptr_null(c);
    /* A good call after the errors works, with the cell states or without. */
    a = tg_lstm_fused(tape, x, a0, c0, W, b, &c);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(tg_lstm_fused(tape, x, a0, c0, W, b, NULL));
    ck_assert_uint_eq(tg_tape_entry_count(tape), 2);
    tg_tensor *all[] = {Wi_bad, c0_bad};
    tu_free_all(all, 2);
    tg_tape_free(tape);
    tu_free_all(p, n);
}
END_TEST

START_TEST(gru_node_rejects_bad_arguments_clearly)
{
    tg_tensor *p[MAX_PARAMS];
    shape_case sc = {4, 3, 2, 5, false, true};
    int n = make_params(&sc, CELL_GRU, TG_F64, 6, p);
    tg_tensor *x = p[0], *a0 = p[11];
    tg_tensor *W[3] = {p[1], p[2], p[3]}, *U[3] = {p[4], p[5], p[6]};
    tg_tensor *b[4] = {p[7], p[8], p[9], p[10]};
    tg_tensor *Un_bad = tg_tensor_zeros(TG_F64, TG_DIMS(3, 4));
    tg_tape *tape = tg_tape_new();
    tg_tensor *U_bad[3] = {p[4], p[5], Un_bad}, *b_null[4] = {p[7], p[8], p[9], NULL};
    ck_assert_ptr_null(tg_gru_fused(tape, x, a0, W, U_bad, b));
    assert_tape_error(tape, TG_ERR_SHAPE, "tg_gru_fused: Un is (3,4) but must be (n_a, n_a) = (3,3)");
    ck_assert_ptr_null(tg_gru_fused(tape, x, a0, W, U, b_null));
    assert_tape_error(tape, TG_ERR_ARG, "tg_gru_fused: bhn is NULL");
    ck_assert_ptr_null(tg_gru_fused(tape, x, a0, NULL, U, b));
    assert_tape_error(tape, TG_ERR_ARG, "the array W, U or b is NULL");
    ck_assert_ptr_nonnull(tg_gru_fused(tape, x, a0, W, U, b));
    ck_assert_uint_eq(tg_tape_entry_count(tape), 1);
    tg_tensor_free(Un_bad);
    tg_tape_free(tape);
    tu_free_all(p, n);
}
END_TEST

Suite *suite_fused(void)
{
    Suite *s = suite_create("fused");
    TCase *tc = tcase_create("tape_vs_fused");
    tcase_add_loop_test(tc, rnn_fused_matches_tape_f64, 0, N_SHAPES);
    tcase_add_loop_test(tc, rnn_fused_matches_tape_f32, 0, N_SHAPES);
    tcase_add_loop_test(tc, lstm_fused_matches_tape_f64, 0, N_SHAPES);
    tcase_add_loop_test(tc, lstm_fused_matches_tape_f32, 0, N_SHAPES);
    tcase_add_loop_test(tc, gru_fused_matches_tape_f64, 0, N_SHAPES);
    tcase_add_loop_test(tc, gru_fused_matches_tape_f32, 0, N_SHAPES);
    tcase_add_test(tc, fused_nodes_pass_gradcheck);
    suite_add_tcase(s, tc);
    TCase *raw = tcase_create("raw_and_errors");
    tcase_add_test(raw, raw_kernels_accumulate_and_keep_their_cache);
    tcase_add_test(raw, no_grad_forward_records_nothing);
    tcase_add_test(raw, rnn_node_rejects_bad_arguments_clearly);
    tcase_add_test(raw, lstm_node_rejects_bad_arguments_clearly);
    tcase_add_test(raw, gru_node_rejects_bad_arguments_clearly);
    suite_add_tcase(s, raw);
    return s;
}
