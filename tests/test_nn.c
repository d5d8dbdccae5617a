/* Recurrent layers (nn/recurrent.h): gradients against finite differences,
 * outputs and gradients against PyTorch's nn.RNN / nn.LSTM / nn.GRU
 * (tests/fixtures/torch_rnn.txt), the initialisers against numpy's draws,
 * truncated BPTT, custom cells, linear and embedding layers, error paths. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static tg_recurrent *make_model(const tu_cell_case *c, int n_x, int n_a, int layers,
                                tg_dtype dtype, tg_init init, uint32_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_recurrent_options o = tg_recurrent_defaults();
    o.num_layers = layers;
    o.linear_before_reset = c->linear_before_reset;
    o.init = init;
    tg_recurrent *rnn = tg_recurrent_new(c->cell, n_x, n_a, dtype, &o, &rng);
    ck_assert_msg(rnn != NULL, "tg_recurrent_new: %s", tg_last_error());
    return rnn;
}

/* A persistent copy of x (n_x, m, T) stored time-major (T, m, n_x) and
 * requiring a gradient, so that the model reads x through a permuted,
 * non-contiguous view. */
static tg_tensor *time_major_param(const tg_tensor *x)
{
    tg_tensor v;
    ck_assert_int_eq(tg_view_permute(&v, x, (const int[]){2, 1, 0}), TG_OK);
    tg_tensor *store = tg_tensor_copy(&v);
    ck_assert_ptr_nonnull(store);
    ck_assert_int_eq(tg_tensor_requires_grad(store, true), TG_OK);
    store->name = "x";
    return store;
}

/* ---- gradients against finite differences ------------------------------------------- */

enum { GC_NX = 3, GC_NA = 4, GC_M = 2, GC_T = 5, GC_SPLIT = 3, GC_NY = 3 };

typedef struct {
    tg_recurrent *rnn;
    tg_linear *head;
    tg_tensor *x_store;  /* (T, m, n_x) */
    tg_state init[2];    /* persistent, requiring gradients */
    int32_t targets[GC_M * GC_T];
    bool by_steps;       /* tg_recurrent_step in a loop instead of forward */
} gc_ctx;

/* cross-entropy of the head's logits for h (n_a, m, T) against targets
 * (in C order of (m, T)), summed */
static tg_tensor *head_loss(tg_tape *tape, const tg_linear *head, tg_tensor *h,
                            const int32_t *targets)
{
    tg_tensor *logits = tg_linear_forward(tape, head, h);
    if (!logits)
        return NULL;
    int64_t n = logits->ndim == 3 ? logits->shape[1] * logits->shape[2] : logits->shape[1];
    return tg_cross_entropy(tape, logits, 0, targets, n, TG_REDUCE_SUM);
}

/* Two chunks: x[:, :, :SPLIT] from the given init states, then the rest from
 * the first chunk's final states (tape tensors: the gradient flows back). */
static tg_tensor *sequence_loss(tg_tape *tape, tg_tensor *const *p, void *vctx)
{
    (void)p; /* the context holds the same tensors */
    gc_ctx *c = vctx;
    tg_tensor *x = tg_permute(tape, c->x_store, (const int[]){2, 1, 0});
    tg_tensor *x1 = tg_slice(tape, x, 2, 0, GC_SPLIT, 1);
    tg_tensor *x2 = tg_slice(tape, x, 2, GC_SPLIT, GC_T, 1);
    tg_state final[2];
    tg_tensor *h1 = tg_recurrent_forward(tape, c->rnn, x1, c->init, TG_PATH_TAPE, final);
    if (!h1)
        return NULL;
    tg_tensor *h2 = tg_recurrent_forward(tape, c->rnn, x2, final, TG_PATH_TAPE, NULL);
    /* targets of the second chunk: positions (s, t >= SPLIT) in C order */
    int32_t t2[GC_M * (GC_T - GC_SPLIT)], t1[GC_M * GC_SPLIT];
    for (int s = 0; s < GC_M; s++)
        for (int t = 0; t < GC_T; t++) {
            if (t < GC_SPLIT)
                t1[s * GC_SPLIT + t] = c->targets[s * GC_T + t];
            else
                t2[s * (GC_T - GC_SPLIT) + t - GC_SPLIT] = c->targets[s * GC_T + t];
        }
    return tg_add(tape, head_loss(tape, c->head, h1, t1), head_loss(tape, c->head, h2, t2));
}

/* The same network one cell step at a time: layer k reads layer k-1's new
 * state; the loss is the cross-entropy at every step, summed. */
static tg_tensor *steps_loss(tg_tape *tape, tg_tensor *const *p, void *vctx)
{
    (void)p;
    gc_ctx *c = vctx;
    tg_tensor *x = tg_permute(tape, c->x_store, (const int[]){2, 1, 0});
    tg_state state[2] = {c->init[0], c->init[1]};
    tg_tensor *loss = NULL;
    for (int t = 0; t < GC_T; t++) {
        tg_tensor *in = tg_select(tape, x, 2, t);
        for (int k = 0; k < c->rnn->num_layers; k++) {
            if (tg_recurrent_step(tape, c->rnn, k, in, &state[k], &state[k]) != TG_OK)
                return NULL;
            in = state[k].a;
        }
        int32_t targets[GC_M];
        for (int s = 0; s < GC_M; s++)
            targets[s] = c->targets[s * GC_T + t];
        tg_tensor *l = head_loss(tape, c->head, in, targets);
        loss = loss ? tg_add(tape, loss, l) : l;
    }
    return loss;
}

/* _i: cell case * 4 + (layers - 1) * 2 + by_steps */
START_TEST(gradients_match_finite_differences)
{
    const tu_cell_case *cc = &TU_CELLS[_i / 4];
    int layers = 1 + (_i / 2) % 2;
    bool by_steps = _i % 2;
    tg_rng rng;
    tg_rng_seed(&rng, 100 + (uint32_t)_i);
    gc_ctx c = {.by_steps = by_steps};
    /* PyTorch's init is wide enough that the gates are not all near 0.5 */
    c.rnn = make_model(cc, GC_NX, GC_NA, layers, TG_F64, TG_INIT_PYTORCH, 7 + (uint32_t)_i);
    c.head = tg_linear_new(GC_NA, GC_NY, TG_F64, "Wy", "by", TG_INIT_XAVIER, &rng);
    ck_assert_ptr_nonnull(c.head);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(GC_NX, GC_M, GC_T));
    c.x_store = time_major_param(x);
    tg_tensor_free(x);
    tg_tensor *params[64];
    int n = 0;
    for (int j = 0; j < c.rnn->params.count; j++)
        params[n++] = c.rnn->params.items[j].tensor;
    params[n++] = c.head->W;
    params[n++] = c.head->b;
    params[n++] = c.x_store;
    static const char *names[2][2] = {{"l0.a0", "l0.c0"}, {"l1.a0", "l1.c0"}};
    for (int k = 0; k < layers; k++) {
        c.init[k].a = tu_param(&rng, TG_F64, names[k][0], TG_DIMS(GC_NA, GC_M));
        params[n++] = c.init[k].a;
        if (cc->cell == TG_CELL_LSTM) {
            c.init[k].c = tu_param(&rng, TG_F64, names[k][1], TG_DIMS(GC_NA, GC_M));
            params[n++] = c.init[k].c;
        }
    }
    for (int j = 0; j < GC_M * GC_T; j++)
        c.targets[j] = (int32_t)tg_rng_below(&rng, GC_NY);
    tu_assert_gradcheck(by_steps ? steps_loss : sequence_loss, &c, n, params, 1e-6);
    for (int k = 0; k < layers; k++) {
        tg_tensor_free(c.init[k].a);
        tg_tensor_free(c.init[k].c);
    }
    tg_tensor_free(c.x_store);
    tg_linear_free(c.head);
    tg_recurrent_free(c.rnn);
}
END_TEST

/* ---- PyTorch fixtures ------------------------------------------------------------------ */

typedef struct {
    char name[64], cell[16];
    int linear_before_reset, layers, n_x, n_a, m, T;
    tu_tensors tensors;
} fx_case;

/* Read the next case of the fixture file; false at the end. */
static bool fx_read(FILE *f, fx_case *c)
{
    char word[64];
    memset(c, 0, sizeof *c);
    for (;;) {
        if (fscanf(f, " %63s", word) != 1)
            return false;
        if (word[0] != '#')
            break;
        ck_assert_int_ge(fscanf(f, "%*[^\n]"), 0); /* a comment line */
    }
    ck_assert_str_eq(word, "case");
    ck_assert_int_eq(fscanf(f, "%63s %15s %d %d %d %d %d %d", c->name, c->cell,
                            &c->linear_before_reset, &c->layers, &c->n_x, &c->n_a, &c->m, &c->T),
                     8);
    c->tensors.case_name = c->name;
    tu_tensors_read(f, &c->tensors);
    return true;
}

static tg_tensor *fx_get(const fx_case *c, const char *name)
{
    return tu_tensors_get(&c->tensors, name);
}

static void fx_free(fx_case *c) { tu_tensors_free(&c->tensors); }

static void expect_close(const fx_case *c, const char *what, const tg_tensor *got,
                         const char *fixture_name, tg_path path)
{
    ck_assert_msg(got != NULL, "%s: %s missing", c->name, what);
    double d = tu_max_abs_diff(got, fx_get(c, fixture_name));
    ck_assert_msg(d < 1e-10, "%s (%s path): %s differs from PyTorch by %.3g", c->name,
                  path == TG_PATH_TAPE ? "tape" : "fused", what, d);
}

/* One fixture case through one path: outputs, final states, every gradient. */
static void check_against_torch(const fx_case *fx, tg_path path)
{
    tu_cell_case cc = {fx->name, TG_CELL_RNN, fx->linear_before_reset != 0};
    cc.cell = strcmp(fx->cell, "lstm") == 0 ? TG_CELL_LSTM
              : strcmp(fx->cell, "gru") == 0 ? TG_CELL_GRU
                                             : TG_CELL_RNN;
    bool lstm = cc.cell == TG_CELL_LSTM;
    tg_recurrent *rnn = make_model(&cc, fx->n_x, fx->n_a, fx->layers, TG_F64, TG_INIT_COURSE, 1);
    for (int j = 0; j < rnn->params.count; j++)
        ck_assert_int_eq(tg_tensor_copy_into(rnn->params.items[j].tensor,
                                             fx_get(fx, rnn->params.items[j].name)),
                         TG_OK);
    tg_tensor *x_store = time_major_param(fx_get(fx, "x"));
    tg_state init[2] = {{NULL, NULL}, {NULL, NULL}};
    char name[64];
    for (int k = 0; k < fx->layers; k++) {
        snprintf(name, sizeof name, "l%d.a0", k);
        init[k].a = tg_tensor_copy(fx_get(fx, name));
        tg_tensor_requires_grad(init[k].a, true);
        if (lstm) {
            snprintf(name, sizeof name, "l%d.c0", k);
            init[k].c = tg_tensor_copy(fx_get(fx, name));
            tg_tensor_requires_grad(init[k].c, true);
        }
    }
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_permute(tape, x_store, (const int[]){2, 1, 0});
    ck_assert(!tg_tensor_is_contiguous(x));
    tg_state final[2];
    tg_tensor *out = tg_recurrent_forward(tape, rnn, x, init, path, final);
    ck_assert_msg(out != NULL, "%s", tg_tape_error(tape));
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, out, fx_get(fx, "R")));
    ck_assert_msg(tg_backward(tape, loss) == TG_OK, "%s", tg_tape_error(tape));

    expect_close(fx, "the hidden states", out, "out", path);
    for (int k = 0; k < fx->layers; k++) {
        snprintf(name, sizeof name, "l%d.a_final", k);
        expect_close(fx, name, final[k].a, name, path);
        if (lstm) {
            snprintf(name, sizeof name, "l%d.c_final", k);
            expect_close(fx, name, final[k].c, name, path);
        } else {
            ck_assert_ptr_null(final[k].c);
        }
        snprintf(name, sizeof name, "grad.l%d.a0", k);
        expect_close(fx, name, init[k].a->grad, name, path);
        if (lstm) {
            snprintf(name, sizeof name, "grad.l%d.c0", k);
            expect_close(fx, name, init[k].c->grad, name, path);
        }
    }
    for (int j = 0; j < rnn->params.count; j++) {
        snprintf(name, sizeof name, "grad.%s", rnn->params.items[j].name);
        expect_close(fx, name, rnn->params.items[j].tensor->grad, name, path);
    }
    tg_tensor gx;
    tg_view_permute(&gx, x_store->grad, (const int[]){2, 1, 0});
    expect_close(fx, "grad.x", &gx, "grad.x", path);

    tg_tape_free(tape);
    for (int k = 0; k < fx->layers; k++) {
        tg_tensor_free(init[k].a);
        tg_tensor_free(init[k].c);
    }
    tg_tensor_free(x_store);
    tg_recurrent_free(rnn);
}

START_TEST(outputs_and_gradients_match_pytorch)
{
    FILE *f = fopen("fixtures/torch_rnn.txt", "r");
    ck_assert_msg(f != NULL, "cannot open tests/fixtures/torch_rnn.txt (run from tests/)");
    fx_case *fx = malloc(sizeof *fx);
    ck_assert_ptr_nonnull(fx);
    int cases = 0;
    bool seen_gru_reset_after = false;
    while (fx_read(f, fx)) {
        check_against_torch(fx, TG_PATH_TAPE);
        check_against_torch(fx, TG_PATH_FUSED);
        seen_gru_reset_after |= strcmp(fx->cell, "gru") == 0 && !fx->linear_before_reset;
        fx_free(fx);
        cases++;
    }
    fclose(f);
    free(fx);
    ck_assert_int_ge(cases, 5);
    ck_assert(seen_gru_reset_after);
}
END_TEST

/* ---- initialisers ---------------------------------------------------------------------- */

START_TEST(course_init_reproduces_numpy_draws)
{
    /* np.random.seed(1); Wax = randn(5, 3) * 0.01; Waa = randn(5, 5) * 0.01;
     * ba = zeros; then the head Wya = randn(2, 5) * 0.01 */
    tg_rng rng, expect;
    tg_rng_seed(&rng, 1);
    tg_rng_seed(&expect, 1);
    tg_recurrent_options o = tg_recurrent_defaults();
    o.init = TG_INIT_COURSE;
    tg_recurrent *rnn = tg_recurrent_new(TG_CELL_RNN, 3, 5, TG_F64, &o, &rng);
    tg_linear *head = tg_linear_new(5, 2, TG_F64, "Wya", "by", TG_INIT_COURSE, &rng);
    ck_assert(rnn && head);
    const tg_tensor *in_order[] = {tg_params_find(&rnn->params, "l0.Wax"),
                                   tg_params_find(&rnn->params, "l0.Waa"), head->W};
    for (int j = 0; j < 3; j++)
        for (int64_t i = 0; i < tg_tensor_numel(in_order[j]); i++) {
            double want = tg_rng_randn(&expect) * 0.01;
            ck_assert_msg(tg_tensor_get_flat(in_order[j], i) == want, "tensor %d element %lld", j,
                          (long long)i);
        }
    /* the first value of np.random.seed(1); np.random.randn() is 1.6243453636632417 */
    ck_assert_double_eq_tol(tg_tensor_get_flat(in_order[0], 0), 0.016243453636632417, 1e-17);
    const tg_tensor *ba = tg_params_find(&rnn->params, "l0.ba");
    for (int64_t i = 0; i < 5; i++)
        ck_assert_double_eq(tg_tensor_get_flat(ba, i), 0.0);
    ck_assert_str_eq(in_order[0]->name, "l0.Wax");
    tg_linear_free(head);
    tg_recurrent_free(rnn);

    /* LSTM, 2 layers: l0.Wf Wi Wc Wo then l1's, biases drawing nothing */
    tg_rng_seed(&rng, 3);
    tg_rng_seed(&expect, 3);
    o.num_layers = 2;
    rnn = tg_recurrent_new(TG_CELL_LSTM, 2, 3, TG_F64, &o, &rng);
    ck_assert_ptr_nonnull(rnn);
    static const char *order[] = {"l0.Wf", "l0.Wi", "l0.Wc", "l0.Wo",
                                  "l1.Wf", "l1.Wi", "l1.Wc", "l1.Wo"};
    for (int j = 0; j < 8; j++) {
        const tg_tensor *W = tg_params_find(&rnn->params, order[j]);
        ck_assert_ptr_nonnull(W);
        ck_assert_int_eq(W->shape[1], j < 4 ? 3 + 2 : 3 + 3);
        for (int64_t i = 0; i < tg_tensor_numel(W); i++)
            ck_assert(tg_tensor_get_flat(W, i) == tg_rng_randn(&expect) * 0.01);
    }
    ck_assert_int_eq(rnn->params.count, 16);
    tg_recurrent_free(rnn);
}
END_TEST

/* _i indexes CELLS: Xavier and PyTorch draws are U(-s, s) from tg_rng in the
 * order of the names, and the same seed gives the same model. */
START_TEST(xavier_and_pytorch_bounds_and_reproducibility)
{
    const tu_cell_case *cc = &TU_CELLS[_i];
    int n_x = 3, n_a = 6;
    for (int scheme = 0; scheme < 2; scheme++) {
        tg_init init = scheme ? TG_INIT_PYTORCH : TG_INIT_XAVIER;
        tg_recurrent *a = make_model(cc, n_x, n_a, 2, TG_F64, init, 5);
        tg_recurrent *b = make_model(cc, n_x, n_a, 2, TG_F64, init, 5);
        tg_recurrent *other = make_model(cc, n_x, n_a, 2, TG_F64, init, 6);
        tg_rng expect;
        tg_rng_seed(&expect, 5);
        bool any_differs = false;
        for (int j = 0; j < a->params.count; j++) {
            const tg_tensor *t = a->params.items[j].tensor;
            bool bias = t->shape[1] == 1;
            double s = scheme ? 1.0 / sqrt(n_a)
                              : sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
            ck_assert(tu_bitwise_equal(t, b->params.items[j].tensor));
            any_differs |= !tu_bitwise_equal(t, other->params.items[j].tensor);
            double largest = 0;
            for (int64_t i = 0; i < tg_tensor_numel(t); i++) {
                double v = tg_tensor_get_flat(t, i);
                if (bias && !scheme) {
                    ck_assert_double_eq(v, 0.0);
                    continue;
                }
                ck_assert_msg(v >= -s && v < s, "%s = %g outside +-%g", a->params.items[j].name,
                              v, s);
                ck_assert(v == -s + 2 * s * tg_rng_rand(&expect));
                largest = fmax(largest, fabs(v));
            }
            if (!bias || scheme)
                ck_assert_msg(largest > 0.3 * s, "%s: the draws do not fill the range",
                              a->params.items[j].name);
        }
        ck_assert(any_differs);
        tg_recurrent_free(a);
        tg_recurrent_free(b);
        tg_recurrent_free(other);
    }
}
END_TEST

/* ---- truncated BPTT --------------------------------------------------------------------- */

/* _i indexes CELLS */
START_TEST(truncated_bptt_continues_the_sequence_without_gradient)
{
    const tu_cell_case *cc = &TU_CELLS[_i];
    enum { NX = 3, NA = 5, M = 2, T = 8, HALF = 4 };
    tg_recurrent *rnn = make_model(cc, NX, NA, 2, TG_F64, TG_INIT_PYTORCH, 11);
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(NX, M, T));
    tg_tape *tape = tg_tape_new();

    /* the continuous run, and its gradient of a loss on the second half */
    tg_tensor *full = tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_TAPE, NULL);
    ck_assert_msg(full != NULL, "%s", tg_tape_error(tape));
    tg_tensor *full2 = tg_contiguous(tape, tg_slice(tape, full, 2, HALF, T, 1));
    ck_assert_int_eq(tg_backward(tape, tu_weighted_sum(tape, full2)), TG_OK);
    tg_tensor *expected = tg_tensor_copy(full2);
    double reach = 0; /* how much of that loss's gradient reaches the first half */
    for (int64_t i = 0; i < tg_tensor_numel(x); i++)
        if (i % T < HALF)
            reach = fmax(reach, fabs(tg_tensor_get_flat(x->grad, i)));
    ck_assert_msg(reach > 1e-6, "the continuous run should carry gradient back");
    tg_tensor_zero_grad(x);
    tg_params_zero_grad(&rnn->params);

    /* chunk 1, keep its final states, reset the tape, chunk 2 */
    tg_state *states = tg_states_new(rnn, M);
    ck_assert_ptr_nonnull(states);
    tg_tape_reset(tape);
    tg_state final[2];
    tg_tensor *x1 = tg_slice(tape, x, 2, 0, HALF, 1), *x2;
    ck_assert_ptr_nonnull(tg_recurrent_forward(tape, rnn, x1, states, TG_PATH_TAPE, final));
    ck_assert_int_eq(tg_states_keep(rnn, states, final), TG_OK);
    tg_tape_reset(tape); /* the tape states are gone; the kept ones remain */
    x2 = tg_slice(tape, x, 2, HALF, T, 1);
    tg_tensor *out2 = tg_recurrent_forward(tape, rnn, x2, states, TG_PATH_TAPE, NULL);
    ck_assert_ptr_nonnull(out2);
    ck_assert_double_lt(tu_max_abs_diff(out2, expected), 1e-12);
    ck_assert_int_eq(tg_backward(tape, tu_weighted_sum(tape, out2)), TG_OK);
    for (int64_t i = 0; i < tg_tensor_numel(x); i++) {
        double g = tg_tensor_get_flat(x->grad, i);
        if (i % T < HALF)
            ck_assert_msg(g == 0.0, "gradient reached x[%lld] in the first chunk", (long long)i);
    }
    for (int k = 0; k < 2; k++) {
        ck_assert_ptr_null(states[k].a->grad);
        ck_assert_ptr_null(states[k].a->grad_root);
        ck_assert((states[k].c != NULL) == (cc->cell == TG_CELL_LSTM));
    }
    /* zeroing the states starts over: chunk 2 from zeros is the same as from NULL */
    tg_states_zero(rnn, states);
    tg_tape_reset(tape);
    x2 = tg_slice(tape, x, 2, HALF, T, 1);
    tg_tensor *from_zero = tg_recurrent_forward(tape, rnn, x2, states, TG_PATH_TAPE, NULL);
    tg_tensor *from_null = tg_recurrent_forward(tape, rnn, x2, NULL, TG_PATH_TAPE, NULL);
    ck_assert(from_zero && from_null);
    ck_assert_double_eq(tu_max_abs_diff(from_zero, from_null), 0.0);
    ck_assert_double_gt(tu_max_abs_diff(from_zero, expected), 1e-6);

    tg_states_free(rnn, states);
    tg_tensor_free(expected);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_recurrent_free(rnn);
}
END_TEST

/* ---- paths that must agree ---------------------------------------------------------------- */

/* _i indexes CELLS: tg_recurrent_step in a loop, the fused path and f32
 * all give the tape forward's values. */
START_TEST(steps_fused_and_f32_agree_with_the_forward)
{
    const tu_cell_case *cc = &TU_CELLS[_i];
    enum { NX = 4, NA = 6, M = 3, T = 7 };
    tg_recurrent *rnn = make_model(cc, NX, NA, 2, TG_F64, TG_INIT_PYTORCH, 21);
    tg_recurrent *rnn32 = make_model(cc, NX, NA, 2, TG_F32, TG_INIT_PYTORCH, 21);
    tg_rng rng;
    tg_rng_seed(&rng, 22);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(NX, M, T));
    tg_tensor *x32 = tg_tensor_zeros(TG_F32, TG_DIMS(NX, M, T));
    tg_tensor_copy_into(x32, x);
    tg_tape *tape = tg_tape_new();
    tg_state final[2];
    tg_tensor *out = tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_TAPE, final);
    ck_assert_msg(out != NULL, "%s", tg_tape_error(tape));
    ck_assert(tg_tensor_is_contiguous(out));
    ck_assert_int_eq(out->shape[0], NA);
    ck_assert_int_eq(out->shape[1], M);
    ck_assert_int_eq(out->shape[2], T);

    tg_state state[2] = {{NULL, NULL}, {NULL, NULL}};
    for (int t = 0; t < T; t++) {
        tg_tensor *in = tg_select(tape, x, 2, t);
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(tg_recurrent_step(tape, rnn, k, in, &state[k], &state[k]), TG_OK);
            in = state[k].a;
        }
        ck_assert_double_lt(tu_max_abs_diff(in, tg_select(tape, out, 2, t)), 1e-12);
    }
    ck_assert_double_lt(tu_max_abs_diff(state[1].a, final[1].a), 1e-12);
    ck_assert_double_lt(tu_max_abs_diff(state[0].a, final[0].a), 1e-12);

    tg_tensor *fused = tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_FUSED, NULL);
    ck_assert_ptr_nonnull(fused);
    ck_assert_double_lt(tu_max_abs_diff(fused, out), 1e-10);

    tg_tensor *out32 = tg_recurrent_forward(tape, rnn32, x32, NULL, TG_PATH_TAPE, NULL);
    ck_assert_msg(out32 != NULL, "%s", tg_tape_error(tape));
    ck_assert_int_eq(out32->dtype, TG_F32);
    ck_assert_double_lt(tu_max_abs_diff(out32, out), 1e-5);

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(x32);
    tg_recurrent_free(rnn);
    tg_recurrent_free(rnn32);
}
END_TEST

/* ---- custom cells -------------------------------------------------------------------------- */

typedef struct {
    tg_tensor *Wax, *Waa, *ba;
} user_rnn;

static tg_status user_rnn_cell(tg_tape *tape, void *ctx, tg_tensor *xt, const tg_state *prev,
                               tg_state *next)
{
    user_rnn *u = ctx;
    next->a = tg_tanh(tape, tg_add(tape, tg_add(tape, tg_matmul(tape, u->Wax, xt),
                                               tg_matmul(tape, u->Waa, prev->a)),
                                   u->ba));
    return next->a ? TG_OK : tg_tape_status(tape);
}

/* A cell that returns the wrong shape, to test tg_unroll's check. */
static tg_status bad_cell(tg_tape *tape, void *ctx, tg_tensor *xt, const tg_state *prev,
                          tg_state *next)
{
    (void)ctx;
    (void)prev;
    next->a = tg_tanh(tape, xt);
    return TG_OK;
}

static tg_status failing_cell(tg_tape *tape, void *ctx, tg_tensor *xt, const tg_state *prev,
                              tg_state *next)
{
    (void)tape;
    (void)ctx;
    (void)xt;
    (void)prev;
    next->a = NULL;
    return TG_ERR_ARG;
}

START_TEST(unroll_of_a_user_cell_matches_the_builtin_rnn)
{
    enum { NX = 3, NA = 5, M = 2, T = 6 };
    tg_recurrent *rnn = make_model(&TU_CELLS[0], NX, NA, 1, TG_F64, TG_INIT_PYTORCH, 31);
    user_rnn u = {tg_params_find(&rnn->params, "l0.Wax"), tg_params_find(&rnn->params, "l0.Waa"),
                  tg_params_find(&rnn->params, "l0.ba")};
    tg_rng rng;
    tg_rng_seed(&rng, 32);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(NX, M, T));
    tg_tensor *a0 = tg_tensor_randn(&rng, TG_F64, TG_DIMS(NA, M));
    tg_tape *tape = tg_tape_new();
    tg_state init = {a0, NULL}, final, builtin_final;
    tg_tensor *mine = tg_unroll(tape, user_rnn_cell, &u, x, &init, &final);
    tg_tensor *builtin = tg_recurrent_forward(tape, rnn, x, &init, TG_PATH_TAPE, &builtin_final);
    ck_assert_msg(mine && builtin, "%s", tg_tape_error(tape));
    ck_assert(tg_tensor_same_shape(mine, builtin));
    ck_assert_double_lt(tu_max_abs_diff(mine, builtin), 1e-12);
    ck_assert_double_lt(tu_max_abs_diff(final.a, builtin_final.a), 1e-12);

    /* a cell that returns the wrong shape, or fails, is reported with its step */
    ck_assert_ptr_null(tg_unroll(tape, bad_cell, NULL, x, &init, &final));
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "tg_unroll: the cell returned"));
    ck_assert_ptr_null(final.a);
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_unroll(tape, failing_cell, NULL, x, &init, NULL));
    ck_assert_str_eq(tg_tape_error(tape), "tg_unroll: the cell failed at step 0");
    tg_tape_reset(tape);
    ck_assert_ptr_null(tg_unroll(tape, user_rnn_cell, &u, x, NULL, NULL));
    ck_assert_str_eq(tg_tape_error(tape), "tg_unroll: init is NULL");

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(a0);
    tg_recurrent_free(rnn);
}
END_TEST

/* ---- linear and embedding -------------------------------------------------------------------- */

typedef struct {
    tg_linear *lin;
    tg_embedding *emb;
    tg_tensor *x_store;
    int32_t ids[6];
} layers_ctx;

/* head(embedding(ids) + x) over a (dim, m, T) sequence read through a view */
static tg_tensor *layers_loss(tg_tape *tape, tg_tensor *const *p, void *vctx)
{
    (void)p;
    layers_ctx *c = vctx;
    tg_tensor *x = tg_permute(tape, c->x_store, (const int[]){2, 1, 0});
    tg_tensor *e = tg_embedding_forward(tape, c->emb, c->ids, 2, 3);
    return tu_weighted_sum(tape, tg_linear_forward(tape, c->lin, tg_add(tape, e, x)));
}

START_TEST(linear_and_embedding_layers)
{
    tg_rng rng;
    tg_rng_seed(&rng, 41);
    layers_ctx c = {.ids = {3, 0, 3, 4, 1, 1}};
    c.lin = tg_linear_new(4, 3, TG_F64, NULL, NULL, TG_INIT_PYTORCH, &rng);
    c.emb = tg_embedding_new(5, 4, TG_F64, TG_INIT_PYTORCH, &rng);
    ck_assert(c.lin && c.emb);
    ck_assert_ptr_eq(tg_params_find(&c.lin->params, "W"), c.lin->W);
    ck_assert_ptr_eq(tg_params_find(&c.emb->params, "E"), c.emb->E);
    for (int64_t i = 0; i < tg_tensor_numel(c.lin->W); i++)
        ck_assert(fabs(tg_tensor_get_flat(c.lin->W, i)) <= 0.5); /* 1/sqrt(n_in) */
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(4, 2, 3));
    c.x_store = time_major_param(x);

    /* values: y[:, s, t] = W x[:, s, t] + b; e[:, s, t] = E[:, ids[s*T + t]] */
    tg_tape *tape = tg_tape_new();
    tg_tensor *xv = tg_permute(tape, c.x_store, (const int[]){2, 1, 0});
    tg_tensor *y = tg_linear_forward(tape, c.lin, xv);
    tg_tensor *e = tg_embedding_forward(tape, c.emb, c.ids, 2, 3);
    ck_assert_msg(y && e, "%s", tg_tape_error(tape));
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(e->shape[0], 4);
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < 3; t++) {
            tg_tensor *col = tg_slice(tape, tg_select(tape, xv, 2, t), 1, s, s + 1, 1);
            tg_tensor *want = tg_add(tape, tg_matmul(tape, c.lin->W, col), c.lin->b);
            tg_tensor *got = tg_slice(tape, tg_select(tape, y, 2, t), 1, s, s + 1, 1);
            ck_assert_double_lt(tu_max_abs_diff(got, want), 1e-14);
            for (int r = 0; r < 4; r++)
                ck_assert_double_eq(tg_tensor_get(e, (int64_t[]){r, s, t}),
                                    tg_tensor_get(c.emb->E, (int64_t[]){r, c.ids[s * 3 + t]}));
        }
    tg_tape_free(tape);

    tg_tensor *params[] = {c.lin->W, c.lin->b, c.emb->E, c.x_store};
    tu_assert_gradcheck(layers_loss, &c, 4, params, 1e-6);
    tg_tensor_free(x);
    tg_tensor_free(c.x_store);
    tg_linear_free(c.lin);
    tg_embedding_free(c.emb);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------- */

/* Expect a NULL result, the status and a message containing `part`. */
#define EXPECT_NEW_FAILS(call, status, part)                                               \
    do {                                                                                   \
        tg_clear_error();                                                                  \
        ck_assert_ptr_null(call);                                                          \
        ck_assert_int_eq(tg_last_status(), status);                                        \
        ck_assert_msg(strstr(tg_last_error(), part) != NULL, "message '%s' lacks '%s'",   \
                      tg_last_error(), part);                                              \
    } while (0)

/* Largest |value| over a set's tensors. */
static double params_max_abs(const tg_params *set)
{
    double m = 0;
    for (int i = 0; i < set->count; i++)
        for (int64_t k = 0; k < tg_tensor_numel(set->items[i].tensor); k++)
            m = fmax(m, fabs(tg_tensor_get_flat(set->items[i].tensor, k)));
    return m;
}

/* A model whose weights will be loaded needs no generator: without one
 * every parameter is zero (and requires its gradient as usual). */
START_TEST(constructors_without_a_generator_make_zeros)
{
    tg_recurrent_options o = tg_recurrent_defaults();
    o.num_layers = 2;
    for (int cell = TG_CELL_RNN; cell <= TG_CELL_GRU; cell++) {
        tg_recurrent *rnn = tg_recurrent_new((tg_cell)cell, 3, 4, TG_F32, &o, NULL);
        ck_assert_msg(rnn != NULL, "%s", tg_last_error());
        ck_assert_int_eq(rnn->params.count, 2 * rnn->layers[0].count);
        ck_assert_double_eq(params_max_abs(&rnn->params), 0.0);
        for (int i = 0; i < rnn->params.count; i++)
            ck_assert_ptr_nonnull(rnn->params.items[i].tensor->grad);
        tg_recurrent_free(rnn);
    }
    tg_linear *lin = tg_linear_new(3, 2, TG_F64, NULL, NULL, TG_INIT_PYTORCH, NULL);
    tg_embedding *emb = tg_embedding_new(5, 3, TG_F64, TG_INIT_PYTORCH, NULL);
    ck_assert_ptr_nonnull(lin);
    ck_assert_ptr_nonnull(emb);
    ck_assert_double_eq(params_max_abs(&lin->params), 0.0);
    ck_assert_double_eq(params_max_abs(&emb->params), 0.0);
    ck_assert_ptr_nonnull(lin->W->grad);
    ck_assert_ptr_nonnull(emb->E->grad);
    /* the initialiser is still checked */
    EXPECT_NEW_FAILS(tg_linear_new(3, 2, TG_F64, NULL, NULL, (tg_init)9, NULL), TG_ERR_ARG,
                     "init 9");
    tg_linear_free(lin);
    tg_embedding_free(emb);
}
END_TEST

START_TEST(constructors_refuse_bad_arguments)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_recurrent_options o = tg_recurrent_defaults();
    EXPECT_NEW_FAILS(tg_recurrent_new((tg_cell)7, 3, 4, TG_F64, NULL, &rng), TG_ERR_ARG,
                     "tg_recurrent_new: unknown cell 7");
    EXPECT_NEW_FAILS(tg_recurrent_new(TG_CELL_LSTM, 3, 0, TG_F64, NULL, &rng), TG_ERR_ARG,
                     "n_a = 0");
    EXPECT_NEW_FAILS(tg_recurrent_new(TG_CELL_LSTM, -1, 4, TG_F64, NULL, &rng), TG_ERR_ARG,
                     "n_x = -1");
    EXPECT_NEW_FAILS(tg_recurrent_new(TG_CELL_GRU, 3, 4, (tg_dtype)9, NULL, &rng), TG_ERR_DTYPE,
                     "unknown dtype 9");
    o.num_layers = 0;
    EXPECT_NEW_FAILS(tg_recurrent_new(TG_CELL_RNN, 3, 4, TG_F64, &o, &rng), TG_ERR_ARG,
                     "num_layers = 0");
    o.num_layers = 1;
    o.init = (tg_init)5;
    EXPECT_NEW_FAILS(tg_recurrent_new(TG_CELL_RNN, 3, 4, TG_F64, &o, &rng), TG_ERR_ARG,
                     "unknown initialiser 5");
    o.init = TG_INIT_PYTORCH;
    o.num_layers = INT_MAX;
    EXPECT_NEW_FAILS(tg_recurrent_new(TG_CELL_LSTM, INT_MAX, INT_MAX, TG_F64, &o, &rng),
                     TG_ERR_OVERFLOW, "overflows");
    EXPECT_NEW_FAILS(tg_recurrent_new(TG_CELL_RNN, INT_MAX, INT_MAX, TG_F32, NULL, &rng),
                     TG_ERR_OVERFLOW, "overflows");
    EXPECT_NEW_FAILS(tg_linear_new(0, 3, TG_F64, NULL, NULL, TG_INIT_COURSE, &rng), TG_ERR_ARG,
                     "tg_linear_new: n_in = 0");
    EXPECT_NEW_FAILS(tg_linear_new(2, 3, TG_F64, "W", "W", TG_INIT_COURSE, &rng), TG_ERR_ARG,
                     "already in the set");
    EXPECT_NEW_FAILS(tg_linear_new(INT_MAX, INT_MAX, TG_F64, NULL, NULL, TG_INIT_COURSE, &rng),
                     TG_ERR_OVERFLOW, "overflows");
    EXPECT_NEW_FAILS(tg_embedding_new(5, 0, TG_F64, TG_INIT_COURSE, &rng), TG_ERR_ARG,
                     "tg_embedding_new: vocab = 5, dim = 0");
    ck_assert_int_eq(tg_init_param(NULL, TG_INIT_COURSE, false, 1, &rng), TG_ERR_ARG);
    ck_assert_str_eq(tg_cell_name(TG_CELL_GRU), "gru");
    ck_assert_str_eq(tg_cell_name((tg_cell)-1), "unknown");
    tg_recurrent_free(NULL);
    tg_linear_free(NULL);
    tg_embedding_free(NULL);
}
END_TEST

/* Copies of every parameter, to show that failed calls change nothing. */
static void snapshot(const tg_recurrent *rnn, tg_tensor **copies)
{
    for (int j = 0; j < rnn->params.count; j++)
        copies[j] = tg_tensor_copy(rnn->params.items[j].tensor);
}

static void expect_unchanged(const tg_recurrent *rnn, tg_tensor **copies)
{
    for (int j = 0; j < rnn->params.count; j++) {
        ck_assert_msg(tu_bitwise_equal(rnn->params.items[j].tensor, copies[j]), "%s changed",
                      rnn->params.items[j].name);
        for (int64_t i = 0; i < tg_tensor_numel(copies[j]); i++)
            ck_assert_double_eq(tg_tensor_get_flat(rnn->params.items[j].tensor->grad, i), 0.0);
    }
}

/* Run `call` on a fresh tape: it must fail with status and a message
 * containing part; backward then refuses and the parameters are intact. */
#define EXPECT_TAPE_FAILS(call, status, part)                                             \
    do {                                                                                  \
        tg_tape_reset(tape);                                                              \
        ck_assert_msg(!(call), "%s succeeded", #call);                                    \
        ck_assert_int_eq(tg_tape_status(tape), status);                                   \
        ck_assert_msg(strstr(tg_tape_error(tape), part) != NULL, "message '%s' lacks '%s'", \
                      tg_tape_error(tape), part);                                         \
        ck_assert_int_ne(tg_backward(tape, NULL), TG_OK);                                 \
        expect_unchanged(rnn, copies);                                                    \
    } while (0)

START_TEST(forward_and_step_refuse_bad_inputs)
{
    tg_recurrent *rnn = make_model(&TU_CELLS[1], 3, 4, 2, TG_F64, TG_INIT_PYTORCH, 51);
    tg_tensor *copies[32];
    snapshot(rnn, copies);
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(3, 2, 5));
    tg_tensor *x_bad = tg_tensor_zeros(TG_F64, TG_DIMS(4, 2, 5));
    tg_tensor *x32 = tg_tensor_zeros(TG_F32, TG_DIMS(3, 2, 5));
    tg_tensor *x_empty = tg_tensor_zeros(TG_F64, TG_DIMS(3, 2, 0));
    tg_tensor *x2d = tg_tensor_zeros(TG_F64, TG_DIMS(3, 2));
    tg_tensor *a_bad = tg_tensor_zeros(TG_F64, TG_DIMS(4, 3));
    tg_tensor *a_f32 = tg_tensor_zeros(TG_F32, TG_DIMS(4, 2));
    tg_state init_bad[2] = {{NULL, NULL}, {NULL, a_bad}};
    tg_state init_f32[2] = {{a_f32, NULL}, {NULL, NULL}};
    tg_state final[2] = {{x, x}, {x, x}}, next;
    tg_tape *tape = tg_tape_new();

    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, NULL, x, NULL, TG_PATH_TAPE, NULL), TG_ERR_ARG,
                      "tg_recurrent_forward: the model is NULL");
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x_bad, NULL, TG_PATH_TAPE, final),
                      TG_ERR_SHAPE, "tg_recurrent_forward: x is (4,2,5), expected 3 dimensions "
                                    "with 3 rows");
    ck_assert(!final[0].a && !final[1].c); /* cleared on failure */
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x32, NULL, TG_PATH_TAPE, NULL),
                      TG_ERR_DTYPE, "x is f32, the model is f64");
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, NULL, NULL, TG_PATH_TAPE, NULL),
                      TG_ERR_ARG, "x is NULL");
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x2d, NULL, TG_PATH_TAPE, NULL),
                      TG_ERR_SHAPE, "x is (3,2)");
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x_empty, NULL, TG_PATH_TAPE, NULL),
                      TG_ERR_SHAPE, "1 <= T_x");
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x, init_bad, TG_PATH_TAPE, NULL),
                      TG_ERR_SHAPE, "init[1].c is (4,3), expected (4,2)");
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x, init_f32, TG_PATH_FUSED, NULL),
                      TG_ERR_DTYPE, "init[0].a is f32");
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x, NULL, (tg_path)3, NULL), TG_ERR_ARG,
                      "unknown path 3");

    tg_tensor *xt = tg_tensor_zeros(TG_F64, TG_DIMS(3, 2));
    EXPECT_TAPE_FAILS(tg_recurrent_step(tape, rnn, 2, xt, NULL, &next) == TG_OK, TG_ERR_ARG,
                      "tg_recurrent_step: layer 2 does not exist (the model has 2)");
    EXPECT_TAPE_FAILS(tg_recurrent_step(tape, rnn, -1, xt, NULL, &next) == TG_OK, TG_ERR_ARG,
                      "layer -1 does not exist");
    EXPECT_TAPE_FAILS(tg_recurrent_step(tape, rnn, 1, xt, NULL, &next) == TG_OK, TG_ERR_SHAPE,
                      "xt is (3,2), expected 2 dimensions with 4 rows");
    EXPECT_TAPE_FAILS(tg_recurrent_step(tape, rnn, 0, xt, NULL, NULL) == TG_OK, TG_ERR_ARG,
                      "next is NULL");
    tg_state prev_bad = {a_bad, NULL};
    EXPECT_TAPE_FAILS(tg_recurrent_step(tape, rnn, 0, xt, &prev_bad, &next) == TG_OK,
                      TG_ERR_SHAPE, "prev->a is (4,3)");

    /* a model whose parameters were tampered with */
    tg_tensor *saved = rnn->layers[1].p[2];
    rnn->layers[1].p[2] = NULL;
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_TAPE, NULL), TG_ERR_ARG,
                      "layer 1: parameter Wc is missing");
    rnn->layers[1].p[2] = a_bad;
    EXPECT_TAPE_FAILS(tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_TAPE, NULL),
                      TG_ERR_SHAPE, "layer 1: Wc is (4,3), expected (4,8)");
    rnn->layers[1].p[2] = saved;

    /* errors are sticky: the next call on the errored tape does nothing */
    ck_assert_ptr_null(tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_TAPE, NULL));
    ck_assert_int_eq(tg_last_status(), TG_ERR_STATE);
    ck_assert_ptr_null(tg_recurrent_forward(NULL, rnn, x, NULL, TG_PATH_TAPE, NULL));
    ck_assert_str_eq(tg_last_error(), "tg_recurrent_forward: tape is NULL");
    tg_tape_reset(tape);
    ck_assert_ptr_nonnull(tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_TAPE, NULL));

    /* linear and embedding */
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_linear *lin = tg_linear_new(4, 2, TG_F64, NULL, NULL, TG_INIT_COURSE, &rng);
    tg_embedding *emb = tg_embedding_new(3, 4, TG_F64, TG_INIT_COURSE, &rng);
    int32_t ids[4] = {0, 2, 3, 1};
    EXPECT_TAPE_FAILS(tg_linear_forward(tape, lin, x), TG_ERR_SHAPE,
                      "tg_linear_forward: x is (3,2,5) but W is (2,4)");
    EXPECT_TAPE_FAILS(tg_linear_forward(tape, lin, a_f32), TG_ERR_DTYPE, "x is f32");
    EXPECT_TAPE_FAILS(tg_linear_forward(tape, NULL, x), TG_ERR_ARG, "the layer is NULL");
    EXPECT_TAPE_FAILS(tg_embedding_forward(tape, emb, ids, 2, 2), TG_ERR_ARG,
                      "id 3 at position 2 is outside [0, 3)");
    EXPECT_TAPE_FAILS(tg_embedding_forward(tape, emb, NULL, 2, 2), TG_ERR_ARG, "ids NULL");
    EXPECT_TAPE_FAILS(tg_embedding_forward(tape, emb, ids, INT64_MAX, 2), TG_ERR_ARG,
                      "m = 9223372036854775807");

    tg_linear_free(lin);
    tg_embedding_free(emb);
    tg_tape_free(tape);
    tu_free_all(copies, rnn->params.count);
    tg_tensor *all[] = {x, x_bad, x32, x_empty, x2d, a_bad, a_f32, xt};
    tu_free_all(all, 8);
    tg_recurrent_free(rnn);
}
END_TEST

START_TEST(state_helpers_refuse_bad_inputs)
{
    tg_recurrent *rnn = make_model(&TU_CELLS[1], 3, 4, 2, TG_F64, TG_INIT_PYTORCH, 61);
    tg_recurrent *gru = make_model(&TU_CELLS[2], 3, 4, 2, TG_F64, TG_INIT_PYTORCH, 61);
    EXPECT_NEW_FAILS(tg_states_new(rnn, 0), TG_ERR_ARG, "tg_states_new: batch size m = 0");
    EXPECT_NEW_FAILS(tg_states_new(NULL, 2), TG_ERR_ARG, "tg_states_new: the model is NULL");
    EXPECT_NEW_FAILS(tg_states_new(rnn, INT64_MAX), TG_ERR_OVERFLOW, "overflows");
    tg_state *dst = tg_states_new(rnn, 2), *src = tg_states_new(rnn, 3);
    tg_state *gru_states = tg_states_new(gru, 2);
    ck_assert(dst && src && gru_states);
    ck_assert_ptr_null(gru_states[1].c);
    tg_tensor_fill(src[0].a, 1.0);
    tg_tensor_fill(dst[1].c, 2.0);
    ck_assert_int_eq(tg_states_keep(rnn, dst, src), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_states_keep: layer 0: src.a is (4,3), "
                                                  "dst.a is (4,2)"));
    ck_assert_double_eq(tg_tensor_get_flat(dst[0].a, 0), 0.0); /* nothing copied */
    ck_assert_double_eq(tg_tensor_get_flat(dst[1].c, 0), 2.0);
    ck_assert_int_eq(tg_states_keep(rnn, dst, NULL), TG_ERR_ARG);
    ck_assert_int_eq(tg_states_keep(rnn, dst, gru_states), TG_ERR_ARG); /* no c to keep */
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "src[0].c is NULL"));
    tg_states_zero(rnn, dst);
    ck_assert_double_eq(tg_tensor_get_flat(dst[1].c, 0), 0.0);
    tg_states_free(rnn, dst);
    tg_states_free(rnn, src);
    tg_states_free(gru, gru_states);
    tg_states_free(rnn, NULL);
    tg_recurrent_free(rnn);
    tg_recurrent_free(gru);
}
END_TEST

Suite *suite_nn(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("recurrent");
    tcase_add_loop_test(tc, gradients_match_finite_differences, 0, TU_N_CELLS * 4);
    tcase_add_test(tc, outputs_and_gradients_match_pytorch);
    tcase_add_test(tc, course_init_reproduces_numpy_draws);
    tcase_add_loop_test(tc, xavier_and_pytorch_bounds_and_reproducibility, 0, TU_N_CELLS);
    tcase_add_loop_test(tc, truncated_bptt_continues_the_sequence_without_gradient, 0, TU_N_CELLS);
    tcase_add_loop_test(tc, steps_fused_and_f32_agree_with_the_forward, 0, TU_N_CELLS);
    tcase_add_test(tc, unroll_of_a_user_cell_matches_the_builtin_rnn);
    tcase_add_test(tc, linear_and_embedding_layers);
    tcase_add_test(tc, constructors_refuse_bad_arguments);
    tcase_add_test(tc, constructors_without_a_generator_make_zeros);
    tcase_add_test(tc, forward_and_step_refuse_bad_inputs);
    tcase_add_test(tc, state_helpers_refuse_bad_inputs);
    suite_add_tcase(s, tc);
    return s;
}
