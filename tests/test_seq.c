/* Sequences as users have them (nn/recurrent.h, tg_recurrent_forward_with):
 * variable lengths with PyTorch's packed-sequence meaning, bidirectional
 * layers, dropout between layers; against running each sequence alone,
 * against PyTorch's packed bidirectional modules
 * (tests/fixtures/torch_seq.txt), and tape against fused: every test runs
 * on both paths and holds them to the same numbers. */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../examples/ln_lstm_cell.h"
#include "util.h"

enum { MAX_STATES = 8 };

static tg_recurrent *make_model(const tu_cell_case *c, int n_x, int n_a, int layers,
                                bool bidirectional, double dropout, uint32_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_recurrent_options o = tg_recurrent_defaults();
    o.num_layers = layers;
    o.linear_before_reset = c->linear_before_reset;
    o.bidirectional = bidirectional;
    o.dropout = dropout;
    tg_recurrent *rnn = tg_recurrent_new(c->cell, n_x, n_a, TG_F64, &o, &rng);
    ck_assert_msg(rnn != NULL, "tg_recurrent_new: %s", tg_last_error());
    return rnn;
}

/* Persistent states requiring gradients (c for the LSTM), U(-0.5, 0.5). */
static void make_states(tg_rng *rng, const tg_recurrent *rnn, int64_t m, tg_state *states)
{
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++) {
        states[u].a = tu_param_uniform(rng, TG_F64, "init.a", -0.5, 0.5, TG_DIMS(rnn->n_a, m));
        states[u].c = rnn->cell != TG_CELL_LSTM
                          ? NULL
                          : tu_param_uniform(rng, TG_F64, "init.c", -0.5, 0.5,
                                             TG_DIMS(rnn->n_a, m));
    }
}

static void free_states(const tg_recurrent *rnn, tg_state *states)
{
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++) {
        tg_tensor_free(states[u].a);
        tg_tensor_free(states[u].c);
    }
}

/* sum(out * R) + sum over states of sum(final.a * Qa) (+ c * Qc), where R and
 * Q are columns [j0, j0 + m) of fixed weights: a loss in which every output
 * and final state counts, the same for a batch and for one of its sequences. */
typedef struct {
    tg_tensor *R;           /* (directions * n_a, M, T_x) */
    tg_tensor *Q[MAX_STATES][2]; /* (n_a, M) each */
} weights;

static tg_tensor *weighted_loss(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *out,
                                const tg_state *final, const weights *w, int64_t j0, int64_t m)
{
    tg_tensor *R = tg_slice(tape, tg_slice(tape, w->R, 1, j0, j0 + m, 1), 2, 0, out->shape[2], 1);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, out, R));
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++)
        for (int c = 0; c < (final[u].c ? 2 : 1); c++) {
            tg_tensor *q = tg_slice(tape, w->Q[u][c], 1, j0, j0 + m, 1);
            loss = tg_add(tape, loss, tg_sum(tape, tg_mul(tape, c ? final[u].c : final[u].a, q)));
        }
    return loss;
}

/* ---- lengths: a padded batch is its sequences run alone -------------------------------- */

enum { A_NX = 3, A_NA = 4, A_M = 4, A_T = 6 };
static const int32_t A_LENGTHS[A_M] = {6, 3, 1, 5};

/* Every gradient the test looks at, in one list. */
static int gradient_tensors(const tg_recurrent *rnn, tg_tensor *x, const tg_state *init,
                            tg_tensor **list)
{
    int n = 0;
    for (int j = 0; j < rnn->params.count; j++)
        list[n++] = rnn->params.items[j].tensor;
    list[n++] = x;
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++) {
        list[n++] = init[u].a;
        if (init[u].c)
            list[n++] = init[u].c;
    }
    return n;
}

/* Sequence j of the batch run alone, unpadded, on a tape of its own: its
 * outputs and final states equal the batch's column j (1e-12), the batch's
 * outputs past its length are exactly 0, and its loss's backward adds into
 * the parameters' gradients. */
static void run_alone(const tg_recurrent *rnn, tg_tensor *x, const tg_state *init,
                      tg_tape *tape, tg_tensor *out, const tg_state *final, const weights *w,
                      int64_t j)
{
    int64_t L = A_LENGTHS[j];
    tg_state init_j[MAX_STATES], final_j[MAX_STATES];
    tg_tape *alone = tg_tape_new();
    tg_tensor *xj = tg_slice(alone, tg_slice(alone, x, 1, j, j + 1, 1), 2, 0, L, 1);
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++) {
        init_j[u].a = tg_slice(alone, init[u].a, 1, j, j + 1, 1);
        init_j[u].c = init[u].c ? tg_slice(alone, init[u].c, 1, j, j + 1, 1) : NULL;
    }
    tg_recurrent_call one = {.init = init_j, .final = final_j};
    tg_tensor *out_j = tg_recurrent_forward_with(alone, rnn, xj, &one);
    ck_assert_msg(out_j != NULL, "%s", tg_tape_error(alone));
    tg_tensor *got = tg_slice(tape, tg_slice(tape, out, 1, j, j + 1, 1), 2, 0, L, 1);
    ck_assert_double_le(tu_max_abs_diff(got, out_j), 1e-12);
    for (int64_t t = L; t < A_T; t++)
        for (int64_t i = 0; i < out->shape[0]; i++)
            ck_assert(tg_tensor_get(out, (int64_t[]){i, j, t}) == 0.0);
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++)
        for (int c = 0; c < (final[u].c ? 2 : 1); c++) {
            tg_tensor *batch = tg_slice(tape, c ? final[u].c : final[u].a, 1, j, j + 1, 1);
            ck_assert_double_le(tu_max_abs_diff(batch, c ? final_j[u].c : final_j[u].a), 1e-12);
        }
    ck_assert_int_eq(tg_backward(alone, weighted_loss(alone, rnn, out_j, final_j, w, j, 1)),
                     TG_OK);
    tg_tape_free(alone);
}

/* _i: cell * 4 + bidirectional * 2 + fused. Two layers, unsorted lengths,
 * given initial states: the batch's outputs at t < L_j, its final states
 * and every gradient equal the sums over the sequences run alone (tape
 * path, no lengths) to 1e-12; outputs at t >= L_j are exactly 0 and
 * padded inputs get exactly no gradient. */
START_TEST(lengths_equal_each_sequence_run_alone)
{
    const tu_cell_case *cc = &TU_CELLS[_i / 4];
    bool bidirectional = (_i / 2) % 2, fused = _i % 2;
    tg_recurrent *rnn = make_model(cc, A_NX, A_NA, 2, bidirectional, 0, 20 + (uint32_t)_i);
    int n_states = tg_recurrent_num_states(rnn), dirs = bidirectional ? 2 : 1;
    tg_rng rng;
    tg_rng_seed(&rng, 30 + (uint32_t)_i);
    tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(A_NX, A_M, A_T));
    tg_state init[MAX_STATES], final[MAX_STATES];
    make_states(&rng, rnn, A_M, init);
    weights w = {.R = tg_tensor_randn(&rng, TG_F64, TG_DIMS(dirs * A_NA, A_M, A_T))};
    for (int u = 0; u < n_states; u++)
        for (int c = 0; c < 2; c++)
            w.Q[u][c] = tg_tensor_randn(&rng, TG_F64, TG_DIMS(A_NA, A_M));

    /* the padded batch */
    tg_tape *tape = tg_tape_new();
    tg_recurrent_call call = {.lengths = A_LENGTHS, .init = init, .final = final,
                              .path = fused ? TG_PATH_FUSED : TG_PATH_TAPE};
    tg_tensor *out = tg_recurrent_forward_with(tape, rnn, x, &call);
    ck_assert_msg(out != NULL, "%s", tg_tape_error(tape));
    ck_assert_int_eq(out->shape[0], dirs * A_NA);
    ck_assert_int_eq(tg_backward(tape, weighted_loss(tape, rnn, out, final, &w, 0, A_M)), TG_OK);
    tg_tensor *list[64], *batch_grads[64];
    int n = gradient_tensors(rnn, x, init, list);
    for (int k = 0; k < n; k++) {
        batch_grads[k] = tg_tensor_copy(list[k]->grad);
        tg_tensor_zero_grad(list[k]);
    }
    for (int64_t j = 0; j < A_M; j++)
        for (int64_t t = A_LENGTHS[j]; t < A_T; t++)
            for (int64_t i = 0; i < A_NX; i++)
                ck_assert(tg_tensor_get(batch_grads[rnn->params.count], (int64_t[]){i, j, t}) ==
                          0.0);

    /* each sequence alone, unpadded; gradients add up over the sequences */
    for (int64_t j = 0; j < A_M; j++)
        run_alone(rnn, x, init, tape, out, final, &w, j);
    for (int k = 0; k < n; k++)
        ck_assert_msg(tu_max_abs_diff(batch_grads[k], list[k]->grad) <= 1e-12,
                      "%s: the gradient of tensor %d (%s) differs by %.3g", cc->name, k,
                      list[k]->name ? list[k]->name : "?",
                      tu_max_abs_diff(batch_grads[k], list[k]->grad));
    tu_free_all(batch_grads, n);
    tg_tape_free(tape);
    free_states(rnn, init);
    tg_tensor_free(w.R);
    for (int u = 0; u < n_states; u++)
        tu_free_all(w.Q[u], 2);
    tg_tensor_free(x);
    tg_recurrent_free(rnn);
}
END_TEST

/* ---- PyTorch: bidirectional, 2 layers, packed sequences of unsorted lengths ------------ */

/* One case of torch_seq.txt on one path: outputs, final states, every gradient. */
static void check_packed_against_torch(const tu_tensors *fx, const char *cell, int layers,
                                       int n_x, int n_a, int m, tg_path path)
{
    tu_cell_case cc = {cell, strcmp(cell, "lstm") == 0  ? TG_CELL_LSTM
                          : strcmp(cell, "gru") == 0 ? TG_CELL_GRU
                                                     : TG_CELL_RNN,
                    true};
    tg_recurrent *rnn = make_model(&cc, n_x, n_a, layers, true, 0, 1);
    for (int j = 0; j < rnn->params.count; j++)
        ck_assert_int_eq(tg_tensor_copy_into(rnn->params.items[j].tensor,
                                             tu_tensors_get(fx, rnn->params.items[j].name)),
                         TG_OK);
    int32_t lengths[16];
    const tg_tensor *L = tu_tensors_get(fx, "lengths");
    for (int j = 0; j < m; j++)
        lengths[j] = (int32_t)tg_tensor_get_flat(L, j);
    tg_tensor *x = tg_tensor_copy(tu_tensors_get(fx, "x"));
    tg_tensor_requires_grad(x, true);
    tg_state init[MAX_STATES], final[MAX_STATES];
    weights w = {.R = tu_tensors_get(fx, "R")};
    char name[64];
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++) {
        tg_tensor **slots[2] = {&init[u].a, &init[u].c};
        for (int c = 0; c < 2; c++) {
            *slots[c] = NULL;
            w.Q[u][c] = NULL;
            if (c && cc.cell != TG_CELL_LSTM)
                continue;
            snprintf(name, sizeof name, "init%d.%c", u, c ? 'c' : 'a');
            *slots[c] = tg_tensor_copy(tu_tensors_get(fx, name));
            tg_tensor_requires_grad(*slots[c], true);
            snprintf(name, sizeof name, "Q%d.%c", u, c ? 'c' : 'a');
            w.Q[u][c] = tu_tensors_get(fx, name);
        }
    }
    tg_tape *tape = tg_tape_new();
    tg_recurrent_call call = {.lengths = lengths, .init = init, .final = final, .path = path};
    tg_tensor *out = tg_recurrent_forward_with(tape, rnn, x, &call);
    ck_assert_msg(out != NULL, "%s", tg_tape_error(tape));
    ck_assert_int_eq(tg_backward(tape, weighted_loss(tape, rnn, out, final, &w, 0, m)), TG_OK);

    const char *where = path == TG_PATH_TAPE ? "tape" : "fused";
    ck_assert_msg(tu_max_abs_diff(out, tu_tensors_get(fx, "out")) < 1e-10, "%s (%s): outputs",
                  fx->case_name, where);
    ck_assert_msg(tu_max_abs_diff(x->grad, tu_tensors_get(fx, "grad.x")) < 1e-10,
                  "%s (%s): grad.x", fx->case_name, where);
    for (int u = 0; u < tg_recurrent_num_states(rnn); u++)
        for (int c = 0; c < (cc.cell == TG_CELL_LSTM ? 2 : 1); c++) {
            snprintf(name, sizeof name, "final%d.%c", u, c ? 'c' : 'a');
            double d = tu_max_abs_diff(c ? final[u].c : final[u].a, tu_tensors_get(fx, name));
            ck_assert_msg(d < 1e-10, "%s (%s): %s differs by %.3g", fx->case_name, where, name, d);
            snprintf(name, sizeof name, "grad.init%d.%c", u, c ? 'c' : 'a');
            d = tu_max_abs_diff((c ? init[u].c : init[u].a)->grad, tu_tensors_get(fx, name));
            ck_assert_msg(d < 1e-10, "%s (%s): %s differs by %.3g", fx->case_name, where, name, d);
        }
    for (int j = 0; j < rnn->params.count; j++) {
        snprintf(name, sizeof name, "grad.%s", rnn->params.items[j].name);
        double d = tu_max_abs_diff(rnn->params.items[j].tensor->grad, tu_tensors_get(fx, name));
        ck_assert_msg(d < 1e-10, "%s (%s): %s differs by %.3g", fx->case_name, where, name, d);
    }
    tg_tape_free(tape);
    free_states(rnn, init);
    tg_tensor_free(x);
    tg_recurrent_free(rnn);
}

START_TEST(packed_bidirectional_stacks_match_pytorch)
{
    FILE *f = fopen("fixtures/torch_seq.txt", "r");
    ck_assert_msg(f != NULL, "cannot open tests/fixtures/torch_seq.txt (run from tests/)");
    tu_tensors *fx = malloc(sizeof *fx);
    ck_assert_ptr_nonnull(fx);
    char word[64], name[64], cell[16];
    int cases = 0, layers, bidirectional, n_x, n_a, m, T;
    while (fscanf(f, " %63s", word) == 1) {
        if (word[0] == '#') {
            ck_assert_int_ge(fscanf(f, "%*[^\n]"), 0); /* a comment line */
            continue;
        }
        ck_assert_str_eq(word, "case");
        ck_assert_int_eq(fscanf(f, "%63s %15s %d %d %d %d %d %d", name, cell, &layers,
                                &bidirectional, &n_x, &n_a, &m, &T),
                         8);
        ck_assert(bidirectional == 1 && m <= 16);
        fx->case_name = name;
        tu_tensors_read(f, fx);
        check_packed_against_torch(fx, cell, layers, n_x, n_a, m, TG_PATH_TAPE);
        check_packed_against_torch(fx, cell, layers, n_x, n_a, m, TG_PATH_FUSED);
        tu_tensors_free(fx);
        cases++;
    }
    fclose(f);
    free(fx);
    ck_assert_int_eq(cases, 3);
}
END_TEST

/* ---- bidirectional ------------------------------------------------------------------------ */

/* Names, counts and shapes follow PyTorch; the reverse half of a layer's
 * output is the reverse direction's cell run over the time-flipped input
 * (as a unidirectional model with the reverse weights), flipped back. */
START_TEST(bidirectional_reverse_half_reads_time_backwards)
{
    const tu_cell_case *cc = &TU_CELLS[_i];
    enum { NX = 3, NA = 5, M = 2, T = 4 };
    tg_recurrent *bi = make_model(cc, NX, NA, 2, true, 0, 40);
    tg_recurrent *uni = make_model(cc, NX, NA, 1, false, 0, 41);
    ck_assert_int_eq(tg_recurrent_num_states(bi), 4);
    ck_assert_int_eq(tg_recurrent_num_states(uni), 1);
    int per_layer = uni->params.count;
    ck_assert_int_eq(bi->params.count, 4 * per_layer);
    ck_assert_str_eq(bi->params.items[per_layer].name,
                     cc->cell == TG_CELL_LSTM  ? "l0_reverse.Wf"
                     : cc->cell == TG_CELL_GRU ? "l0_reverse.Wr"
                                               : "l0_reverse.Wax");
    ck_assert(strncmp(bi->params.items[2 * per_layer].name, "l1.", 3) == 0);
    /* layer 1 reads both directions: 2 * n_a inputs */
    const tg_tensor *w1 = bi->params.items[2 * per_layer].tensor;
    ck_assert_int_eq(w1->shape[1], cc->cell == TG_CELL_LSTM ? NA + 2 * NA : 2 * NA);
    for (int j = 0; j < per_layer; j++) /* the unidirectional model gets l0_reverse's weights */
        tg_tensor_copy_into(uni->params.items[j].tensor, bi->params.items[per_layer + j].tensor);

    tg_rng rng;
    tg_rng_seed(&rng, 42);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(NX, M, T));
    tg_tape *tape = tg_tape_new();
    tg_state final[4], final_uni[1];
    tg_recurrent_call call = {.final = final};
    /* layer 0 alone: a one-layer bidirectional model with l0's weights */
    tg_recurrent *bi1 = make_model(cc, NX, NA, 1, true, 0, 43);
    for (int j = 0; j < 2 * per_layer; j++)
        tg_tensor_copy_into(bi1->params.items[j].tensor, bi->params.items[j].tensor);
    tg_tensor *out = tg_recurrent_forward_with(tape, bi1, x, &call);
    tg_tensor *rev = tg_recurrent_forward(tape, uni, tg_flip(tape, x, 2), NULL, TG_PATH_TAPE,
                                          final_uni);
    ck_assert_msg(out && rev, "%s", tg_tape_error(tape));
    ck_assert_int_eq(out->shape[0], 2 * NA);
    tg_tensor *half = tg_slice(tape, out, 0, NA, 2 * NA, 1);
    ck_assert_double_le(tu_max_abs_diff(half, tg_flip(tape, rev, 2)), 1e-14);
    ck_assert_double_le(tu_max_abs_diff(final[1].a, final_uni[0].a), 1e-14);
    /* one step of layer 1's reverse direction (k = 2 * 1 + 1) reads 2 n_a inputs */
    tg_state step;
    tg_tensor *xt = tg_tape_zeros(tape, TG_F64, TG_DIMS(2 * NA, M));
    ck_assert_int_eq(tg_recurrent_step(tape, bi, 3, xt, NULL, &step), TG_OK);
    ck_assert_int_eq(step.a->shape[0], NA);
    ck_assert_int_eq(tg_recurrent_step(tape, bi, 4, xt, NULL, &step), TG_ERR_ARG);
    ck_assert_str_eq(tg_tape_error(tape),
                     "tg_recurrent_step: layer 4 does not exist (the model has 4)");
    tg_tape_reset(tape);
    /* and the whole two-layer model runs, with 4 final states */
    tg_state final2[4];
    call.final = final2;
    ck_assert_ptr_nonnull(tg_recurrent_forward_with(tape, bi, x, &call));
    for (int u = 0; u < 4; u++)
        ck_assert_ptr_nonnull(final2[u].a);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_recurrent_free(bi);
    tg_recurrent_free(bi1);
    tg_recurrent_free(uni);
}
END_TEST

/* ---- dropout between layers ----------------------------------------------------------------- */

/* _i: cell * 2 + bidirectional. With the same generator seed the tape and
 * fused paths draw the same masks and agree to 1e-10, outputs and every
 * gradient; dropout changed the output; the same seed repeats it bit for
 * bit. */
START_TEST(dropout_between_layers_tape_and_fused_agree)
{
    const tu_cell_case *cc = &TU_CELLS[_i / 2];
    bool bidirectional = _i % 2;
    enum { NX = 3, NA = 4, M = 3, T = 5 };
    tg_recurrent *rnn = make_model(cc, NX, NA, 3, bidirectional, 0.4, 50 + (uint32_t)_i);
    tg_rng rng;
    tg_rng_seed(&rng, 51);
    tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(NX, M, T));
    tg_tensor *out[3], *grads[3][64], *list[64];
    int n = 0; /* the parameters and x */
    for (int j = 0; j < rnn->params.count; j++)
        list[n++] = rnn->params.items[j].tensor;
    list[n++] = x;
    for (int run = 0; run < 3; run++) { /* tape, fused, tape again */
        tg_tape *tape = tg_tape_new();
        tg_rng_seed(&rng, 52);
        tg_recurrent_call call = {.path = run == 1 ? TG_PATH_FUSED : TG_PATH_TAPE, .rng = &rng};
        tg_tensor *y = tg_recurrent_forward_with(tape, rnn, x, &call);
        ck_assert_msg(y != NULL, "%s", tg_tape_error(tape));
        ck_assert_int_eq(tg_backward(tape, tu_weighted_sum(tape, y)), TG_OK);
        out[run] = tg_tensor_copy(y);
        for (int k = 0; k < n; k++) {
            grads[run][k] = tg_tensor_copy(list[k]->grad);
            tg_tensor_zero_grad(list[k]);
        }
        tg_tape_free(tape);
    }
    ck_assert(tu_bitwise_equal(out[0], out[2]));
    for (int k = 0; k < n; k++)
        ck_assert(tu_bitwise_equal(grads[0][k], grads[2][k]));
    ck_assert_double_le(tu_max_abs_diff(out[0], out[1]), 1e-10);
    for (int k = 0; k < n; k++)
        ck_assert_msg(tu_max_abs_diff(grads[0][k], grads[1][k]) <= 1e-10,
                      "%s: tape and fused gradients of %s differ by %.3g", cc->name,
                      list[k]->name, tu_max_abs_diff(grads[0][k], grads[1][k]));
    tg_tensor_free(out[1]);
    for (int k = 0; k < n; k++)
        tg_tensor_free(grads[1][k]);
    /* evaluation mode: no masks, no generator needed, and the output differs */
    tg_tape *tape = tg_tape_new();
    tg_tape_set_training(tape, false);
    tg_tensor *eval = tg_recurrent_forward_with(tape, rnn, x, NULL);
    ck_assert_msg(eval != NULL, "%s", tg_tape_error(tape));
    ck_assert_double_gt(tu_max_abs_diff(eval, out[0]), 1e-3);
    tg_tape_free(tape);
    tg_tensor_free(out[0]);
    tg_tensor_free(out[2]);
    for (int k = 0; k < n; k++) {
        tg_tensor_free(grads[0][k]);
        tg_tensor_free(grads[2][k]);
    }
    tg_tensor_free(x);
    tg_recurrent_free(rnn);
}
END_TEST

/* In evaluation mode a model with dropout computes exactly what the same
 * model without dropout computes (both paths), and draws nothing. */
START_TEST(dropout_in_evaluation_mode_is_the_plain_model)
{
    enum { NX = 2, NA = 3, M = 2, T = 4 };
    tg_recurrent *with = make_model(&TU_CELLS[1], NX, NA, 2, false, 0.5, 60);
    tg_recurrent *without = make_model(&TU_CELLS[1], NX, NA, 2, false, 0, 60);
    tg_rng rng, untouched;
    tg_rng_seed(&rng, 61);
    tg_rng_seed(&untouched, 61);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(NX, M, T));
    tg_rng_seed(&rng, 61);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_training(tape, false);
    for (int path = 0; path < 2; path++) {
        tg_recurrent_call call = {.path = (tg_path)path, .rng = &rng};
        tg_tensor *a = tg_recurrent_forward_with(tape, with, x, &call);
        tg_tensor *b = tg_recurrent_forward(tape, without, x, NULL, (tg_path)path, NULL);
        ck_assert_msg(a && b, "%s", tg_tape_error(tape));
        ck_assert(tu_bitwise_equal(a, b));
    }
    ck_assert(tg_rng_u32(&rng) == tg_rng_u32(&untouched));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_recurrent_free(with);
    tg_recurrent_free(without);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------- */

/* Each call fails with the status and a message naming the problem; the
 * parameters and their gradients are untouched. */
START_TEST(sequence_arguments_are_checked)
{
    tg_recurrent *rnn = make_model(&TU_CELLS[1], 3, 4, 2, true, 0.3, 70);
    tg_rng rng;
    tg_rng_seed(&rng, 71);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 3, 5));
    tg_tensor *before[64];
    for (int j = 0; j < rnn->params.count; j++)
        before[j] = tg_tensor_copy(rnn->params.items[j].tensor);
    tg_tensor *a_bad = tg_tensor_zeros(TG_F64, TG_DIMS(4, 2));
    tg_state init[4] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}, {a_bad, NULL}};
    static const struct {
        int32_t lengths[3];
        bool init, rng;
        const char *message;
    } rows[] = {
        {{5, 0, 2}, false, true,
         "tg_recurrent_forward_with: lengths[1] = 0 is outside [1, T_x = 5]"},
        {{5, 2, 6}, false, true,
         "tg_recurrent_forward_with: lengths[2] = 6 is outside [1, T_x = 5]"},
        {{5, 2, 1}, true, true, "tg_recurrent_forward_with: init[3].a is (4,2), expected (4,3)"},
        {{5, 2, 1}, false, false, "tg_recurrent_forward_with: the model's dropout of 0.3 needs a "
                                  "generator"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        tg_tape *tape = tg_tape_new();
        tg_state final[4] = {{x, x}, {x, x}, {x, x}, {x, x}};
        tg_recurrent_call call = {.lengths = rows[r].lengths, .init = rows[r].init ? init : NULL,
                                  .final = final, .rng = rows[r].rng ? &rng : NULL};
        ck_assert_ptr_null(tg_recurrent_forward_with(tape, rnn, x, &call));
        ck_assert_msg(strstr(tg_tape_error(tape), rows[r].message) != NULL, "'%s' lacks '%s'",
                      tg_tape_error(tape), rows[r].message);
        for (int u = 0; u < 4; u++)
            ck_assert(!final[u].a && !final[u].c);
        ck_assert_int_ne(tg_backward(tape, NULL), TG_OK);
        tg_tape_free(tape);
    }
    /* the old entry point cannot pass a generator: it says so */
    tg_tape *tape = tg_tape_new();
    ck_assert_ptr_null(tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_TAPE, NULL));
    ck_assert_ptr_nonnull(strstr(tg_tape_error(tape), "tg_recurrent_forward: the model's dropout"));
    tg_tape_free(tape);
    for (int j = 0; j < rnn->params.count; j++) {
        ck_assert(tu_bitwise_equal(before[j], rnn->params.items[j].tensor));
        for (int64_t i = 0; i < tg_tensor_numel(before[j]); i++)
            ck_assert(tg_tensor_get_flat(rnn->params.items[j].tensor->grad, i) == 0.0);
    }
    tu_free_all(before, rnn->params.count);
    /* options */
    tg_recurrent_options o = tg_recurrent_defaults();
    o.dropout = 1.0;
    tg_clear_error();
    ck_assert_ptr_null(tg_recurrent_new(TG_CELL_GRU, 3, 4, TG_F64, &o, &rng));
    ck_assert_str_eq(tg_last_error(), "tg_recurrent_new: dropout = 1 is outside [0, 1)");
    o.dropout = NAN;
    ck_assert_ptr_null(tg_recurrent_new(TG_CELL_GRU, 3, 4, TG_F64, &o, &rng));
    ck_assert_int_eq(tg_recurrent_num_states(NULL), 0);
    tg_tensor_free(x);
    tg_tensor_free(a_bad);
    tg_recurrent_free(rnn);
}
END_TEST

/* ---- a LayerNorm-LSTM cell through tg_unroll (examples/ln_lstm_cell.h) ------------------- */

typedef struct {
    ln_lstm cell;
    tg_tensor *x;
    int64_t n_a;
} ln_ctx;

static tg_tensor *ln_lstm_loss(tg_tape *tape, tg_tensor *const *p, void *ctx)
{
    (void)p; /* the cell holds the same tensors */
    ln_ctx *c = ctx;
    int64_t m = c->x->shape[1];
    tg_state init = {tg_tape_zeros(tape, TG_F64, TG_DIMS(c->n_a, m)),
                     tg_tape_zeros(tape, TG_F64, TG_DIMS(c->n_a, m))};
    tg_state final;
    tg_tensor *h = tg_unroll(tape, ln_lstm_step, &c->cell, c->x, &init, &final);
    if (!h)
        return NULL;
    return tg_add(tape, tu_weighted_sum(tape, h), tu_weighted_sum(tape, final.c));
}

START_TEST(layer_norm_lstm_cell_passes_gradcheck)
{
    enum { NX = 3, NA = 4, M = 2, T = 4 };
    tg_rng rng;
    tg_rng_seed(&rng, 80);
    ln_ctx c = {.n_a = NA};
    ck_assert_int_eq(ln_lstm_init(&c.cell, NX, NA, TG_F64, &rng), TG_OK);
    for (int j = 0; j < c.cell.params.count; j++) /* gains and biases away from 1 and 0 */
        if (c.cell.params.items[j].name[0] != 'W')
            tg_rng_fill_uniform(&rng, c.cell.params.items[j].tensor, -1.5, 1.5);
    c.x = tu_param(&rng, TG_F64, "x", TG_DIMS(NX, M, T));
    tg_tensor *params[16];
    int n = 0;
    for (int j = 0; j < c.cell.params.count; j++)
        params[n++] = c.cell.params.items[j].tensor;
    params[n++] = c.x;
    tu_assert_gradcheck(ln_lstm_loss, &c, n, params, 1e-6);
    tg_tensor_free(c.x);
    ln_lstm_free(&c.cell);
}
END_TEST

Suite *suite_seq(void)
{
    Suite *s = suite_create("seq");
    TCase *tc = tcase_create("sequences");
    tcase_add_loop_test(tc, lengths_equal_each_sequence_run_alone, 0, TU_N_CELLS * 4);
    tcase_add_test(tc, packed_bidirectional_stacks_match_pytorch);
    tcase_add_loop_test(tc, bidirectional_reverse_half_reads_time_backwards, 0, TU_N_CELLS);
    tcase_add_loop_test(tc, dropout_between_layers_tape_and_fused_agree, 0, TU_N_CELLS * 2);
    tcase_add_test(tc, dropout_in_evaluation_mode_is_the_plain_model);
    tcase_add_test(tc, sequence_arguments_are_checked);
    tcase_add_test(tc, layer_norm_lstm_cell_passes_gradcheck);
    suite_add_tcase(s, tc);
    return s;
}
