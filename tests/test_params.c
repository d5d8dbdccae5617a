/* Parameter sets in one buffer (tg_params_pack) and as bytes
 * (tg_params_flatten): packing moves storage and nothing else (values,
 * training and checkpoints bit-identical), views and gradients keep
 * working, refusals leave the set as it was, and the data-parallel sum of
 * two half-batch replicas' packed gradients is the full batch's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* ---- a small character model, as examples/char_lm builds it --------------------- */

enum { V = 7, EMBED = 5, HIDDEN = 6, T = 5 };

typedef struct {
    tg_embedding *embed;
    tg_recurrent *rnn;
    tg_linear *head;
    tg_params params;
} lm;

static void lm_init(lm *m, tg_dtype dtype, uint32_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    memset(m, 0, sizeof *m);
    m->embed = tg_embedding_new(V, EMBED, dtype, TG_INIT_PYTORCH, &rng);
    m->rnn = tg_recurrent_new(TG_CELL_LSTM, EMBED, HIDDEN, dtype, NULL, &rng);
    m->head = tg_linear_new(HIDDEN, V, dtype, "W", "b", TG_INIT_PYTORCH, &rng);
    ck_assert(m->embed && m->rnn && m->head);
    ck_assert_int_eq(tg_params_extend(&m->params, "embed.", &m->embed->params), TG_OK);
    ck_assert_int_eq(tg_params_extend(&m->params, "rnn.", &m->rnn->params), TG_OK);
    ck_assert_int_eq(tg_params_extend(&m->params, "head.", &m->head->params), TG_OK);
}

static void lm_free(lm *m)
{
    tg_embedding_free(m->embed);
    tg_recurrent_free(m->rnn);
    tg_linear_free(m->head);
    tg_params_clear(&m->params);
}

/* Mean cross-entropy of the next id over rows (streams) of ids (rows, T + 1). */
static tg_tensor *lm_loss(tg_tape *tape, const lm *m, const int32_t *ids, int rows, tg_path path)
{
    int32_t *in = tg_tape_alloc(tape, (size_t)rows * T * sizeof *in);
    int32_t *out = tg_tape_alloc(tape, (size_t)rows * T * sizeof *out);
    ck_assert(in && out);
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < T; t++) {
            in[r * T + t] = ids[r * (T + 1) + t];
            out[r * T + t] = ids[r * (T + 1) + t + 1];
        }
    tg_tensor *x = tg_embedding_forward(tape, m->embed, in, rows, T);
    tg_tensor *h = tg_recurrent_forward(tape, m->rnn, x, NULL, path, NULL);
    tg_tensor *logits = tg_linear_forward(tape, m->head, h);
    return tg_cross_entropy(tape, logits, 0, out, (int64_t)rows * T, TG_REDUCE_MEAN);
}

/* Gradients of the loss over `rows` streams of ids into m's gradients. */
static void lm_backward(tg_tape *tape, lm *m, const int32_t *ids, int rows, tg_path path)
{
    tg_tape_reset(tape);
    tg_params_zero_grad(&m->params);
    tg_tensor *loss = lm_loss(tape, m, ids, rows, path);
    ck_assert_msg(loss && tg_backward(tape, loss) == TG_OK, "%s", tg_tape_error(tape));
}

static void random_ids(tg_rng *rng, int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)tg_rng_below(rng, V);
}

/* Train `steps` Adam steps with clipping on fresh random batches of 4 streams. */
static void lm_train(lm *m, int steps, tg_path path)
{
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    tg_adam_options ao = tg_adam_defaults(0.05);
    tg_adam *opt = tg_adam_new(&m->params, &ao);
    tg_tape *tape = tg_tape_new();
    int32_t ids[4 * (T + 1)];
    for (int s = 0; s < steps; s++) {
        random_ids(&rng, ids, 4 * (T + 1));
        lm_backward(tape, m, ids, 4, path);
        ck_assert_int_eq(tg_clip_grad_norm(&m->params, 0.5, NULL), TG_OK);
        ck_assert_int_eq(tg_adam_step(opt, tape), TG_OK);
    }
    tg_tape_free(tape);
    tg_adam_free(opt);
}

/* ---- packing ---------------------------------------------------------------------- */

START_TEST(pack_moves_values_and_gradients_into_one_buffer)
{
    lm m;
    lm_init(&m, TG_F32, 3);
    int n = m.params.count;
    tg_tensor **before = calloc((size_t)n, sizeof *before);
    for (int i = 0; i < n; i++) {
        tg_tensor *t = m.params.items[i].tensor;
        tg_tensor_fill(t->grad, 1000.0 * i + 0.5);
        before[i] = tg_tensor_copy(t);
    }
    tg_tensor *W = tg_params_find(&m.params, "head.W");
    const tg_tensor *W_struct = W;
    ck_assert_int_eq(tg_params_pack(&m.params), TG_OK);
    ck_assert_ptr_eq(tg_params_find(&m.params, "head.W"), W_struct); /* same tensors */
    tg_dtype dtype;
    int64_t count;
    float *values = tg_params_value_buffer(&m.params, &dtype, &count);
    float *grads = tg_params_grad_buffer(&m.params, &dtype, &count);
    ck_assert_ptr_nonnull(values);
    ck_assert_ptr_nonnull(grads);
    ck_assert_int_eq(dtype, TG_F32);
    ck_assert_int_eq(count, tg_params_numel(&m.params));
    ck_assert_ptr_eq(grads, values + count);
    int64_t k = 0;
    for (int i = 0; i < n; i++) {
        tg_tensor *t = m.params.items[i].tensor;
        ck_assert_msg(tu_bitwise_equal(t, before[i]), "%s changed", m.params.items[i].name);
        ck_assert(t->flags & TG_TENSOR_PACKED);
        ck_assert(!(t->flags & TG_TENSOR_OWNS_DATA) && !(t->grad->flags & TG_TENSOR_OWNS_DATA));
        for (int64_t e = 0; e < tg_tensor_numel(t); e++, k++) {
            ck_assert(values[k] == (float)tg_tensor_get_flat(before[i], e));
            ck_assert(grads[k] == (float)(1000.0 * i + 0.5));
        }
    }
    ck_assert_int_eq(k, count);
    /* The buffer is the gradients: a write shows through the tensors. */
    grads[count - 1] = -7.0f;
    ck_assert(tg_tensor_get_flat(m.params.items[n - 1].tensor->grad,
                                 tg_tensor_numel(m.params.items[n - 1].tensor) - 1) == -7.0);
    for (int i = 0; i < n; i++)
        tg_tensor_free(before[i]);
    free(before);
    lm_free(&m);
}
END_TEST

START_TEST(packed_training_and_checkpoints_are_bit_identical)
{
    for (int path = 0; path < 2; path++) {
        tg_path p = path ? TG_PATH_FUSED : TG_PATH_TAPE;
        lm plain, packed;
        lm_init(&plain, TG_F32, 11);
        lm_init(&packed, TG_F32, 11);
        ck_assert_int_eq(tg_params_pack(&packed.params), TG_OK);
        lm_train(&plain, 6, p);
        lm_train(&packed, 6, p);
        for (int i = 0; i < plain.params.count; i++)
            ck_assert_msg(tu_bitwise_equal(plain.params.items[i].tensor,
                                           packed.params.items[i].tensor),
                          "%s differs after training", plain.params.items[i].name);
        char a[64], b[64];
        snprintf(a, sizeof a, "/tmp/tg_params_%d_a.ckpt", (int)getpid());
        snprintf(b, sizeof b, "/tmp/tg_params_%d_b.ckpt", (int)getpid());
        ck_assert_int_eq(tg_checkpoint_save(a, &plain.params, NULL, NULL, 0), TG_OK);
        ck_assert_int_eq(tg_checkpoint_save(b, &packed.params, NULL, NULL, 0), TG_OK);
        size_t na, nb;
        unsigned char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
        ck_assert_msg(na == nb && memcmp(da, db, na) == 0, "the checkpoints differ");
        /* and a packed set loads a checkpoint */
        tg_tensor_fill(packed.head->W, 0.0);
        ck_assert_int_eq(tg_checkpoint_load(a, &packed.params, NULL, NULL, 0), TG_OK);
        ck_assert(tu_bitwise_equal(packed.head->W, plain.head->W));
        free(da), free(db);
        remove(a), remove(b);
        lm_free(&plain);
        lm_free(&packed);
    }
}
END_TEST

START_TEST(views_of_packed_tensors_read_and_collect_gradients)
{
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(3, 4));
    tg_tensor *b = tu_param(&rng, TG_F64, "b", TG_DIMS(3, 1));
    tg_params set = {0};
    ck_assert_int_eq(tg_params_add(&set, "W", W), TG_OK);
    ck_assert_int_eq(tg_params_add(&set, "b", b), TG_OK);
    double w12 = tg_tensor_get(W, (int64_t[]){1, 2});
    ck_assert_int_eq(tg_params_pack(&set), TG_OK);
    tg_tensor Wt, rows;
    ck_assert_int_eq(tg_view_transpose(&Wt, W, 0, 1), TG_OK);
    ck_assert(tg_tensor_get(&Wt, (int64_t[]){2, 1}) == w12);
    /* loss = sum(2 * W[1:3, :]): gradient 2 on rows 1-2 of W, 0 elsewhere */
    tg_tape *tape = tg_tape_new();
    ck_assert_int_eq(tg_view_slice(&rows, W, 0, 1, 3, 1), TG_OK);
    tg_tensor *loss = tg_sum(tape, tg_scale(tape, &rows, 2.0));
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    tg_dtype dtype;
    int64_t count;
    double *g = tg_params_grad_buffer(&set, &dtype, &count);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(count, 15);
    for (int64_t k = 0; k < count; k++)
        ck_assert_msg(g[k] == (k >= 4 && k < 12 ? 2.0 : 0.0), "gradient %lld is %g",
                      (long long)k, g[k]);
    tg_tape_free(tape);
    tg_tensor_free(W); /* tensors first, then the set that owns their storage */
    tg_tensor_free(b);
    tg_params_clear(&set);
}
END_TEST

/* The sum of two replicas' packed gradients, each over half of the streams
 * (r, r + 2), scaled by 1/2, is the gradient of the whole batch; Adam on
 * it keeps the replicas bit-identical and equal to the one-process model. */
START_TEST(half_batch_replicas_sum_to_the_full_batch)
{
    lm full, rep[2];
    lm_init(&full, TG_F64, 21);
    for (int r = 0; r < 2; r++) {
        lm_init(&rep[r], TG_F64, 21);
        ck_assert_int_eq(tg_params_pack(&rep[r].params), TG_OK);
    }
    tg_adam_options ao = tg_adam_defaults(0.02);
    tg_adam *opt_full = tg_adam_new(&full.params, &ao);
    tg_adam *opt[2] = {tg_adam_new(&rep[0].params, &ao), tg_adam_new(&rep[1].params, &ao)};
    tg_tape *tape = tg_tape_new();
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    int32_t ids[4 * (T + 1)], shard[2][2 * (T + 1)];
    for (int step = 0; step < 5; step++) {
        random_ids(&rng, ids, 4 * (T + 1));
        for (int r = 0; r < 2; r++)
            for (int j = 0; j < 2; j++) /* rank r takes streams r, r + 2 */
                memcpy(&shard[r][j * (T + 1)], &ids[(r + 2 * j) * (T + 1)],
                       (T + 1) * sizeof *ids);
        lm_backward(tape, &full, ids, 4, TG_PATH_FUSED);
        ck_assert_int_eq(tg_adam_step(opt_full, tape), TG_OK);
        double *g[2];
        tg_dtype dtype;
        int64_t count;
        for (int r = 0; r < 2; r++) {
            lm_backward(tape, &rep[r], shard[r], 2, TG_PATH_FUSED);
            g[r] = tg_params_grad_buffer(&rep[r].params, &dtype, &count);
            ck_assert_ptr_nonnull(g[r]);
        }
        for (int64_t k = 0; k < count; k++) /* what MPI_Allreduce and the 1/R scale do */
            g[0][k] = g[1][k] = 0.5 * (g[0][k] + g[1][k]);
        for (int r = 0; r < 2; r++)
            ck_assert_int_eq(tg_adam_step(opt[r], tape), TG_OK);
    }
    tg_dtype dtype;
    int64_t count;
    double *v0 = tg_params_value_buffer(&rep[0].params, &dtype, &count);
    double *v1 = tg_params_value_buffer(&rep[1].params, &dtype, &count);
    ck_assert(memcmp(v0, v1, (size_t)count * sizeof *v0) == 0);
    double worst = 0, scale = 0;
    int64_t k = 0;
    for (int i = 0; i < full.params.count; i++) {
        const tg_tensor *t = full.params.items[i].tensor;
        for (int64_t e = 0; e < tg_tensor_numel(t); e++, k++) {
            worst = fmax(worst, fabs(v0[k] - tg_tensor_get_flat(t, e)));
            scale = fmax(scale, fabs(tg_tensor_get_flat(t, e)));
        }
    }
    ck_assert_msg(worst <= 1e-12 * scale, "replicas differ from the full batch by %g (of %g)",
                  worst, scale);
    ck_assert_msg(k == count && scale > 0, "nothing compared");
    tg_tape_free(tape);
    tg_adam_free(opt_full);
    for (int r = 0; r < 2; r++) {
        tg_adam_free(opt[r]);
        lm_free(&rep[r]);
    }
    lm_free(&full);
}
END_TEST

/* ---- refusals ------------------------------------------------------------------------ */

static void assert_refused(tg_params *set, const char *expected)
{
    void *data[8];
    for (int i = 0; i < set->count && i < 8; i++)
        data[i] = set->items[i].tensor->data;
    ck_assert_int_ne(tg_params_pack(set), TG_OK);
    ck_assert_msg(strstr(tg_last_error(), expected), "said '%s', expected '%s'", tg_last_error(),
                  expected);
    ck_assert_ptr_null(set->packed);
    for (int i = 0; i < set->count && i < 8; i++)
        ck_assert_ptr_eq(set->items[i].tensor->data, data[i]); /* nothing moved */
}

START_TEST(pack_refuses_sets_it_cannot_hold_and_moves_nothing)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *a = tu_param(&rng, TG_F32, "a", TG_DIMS(2, 3));
    tg_tensor *d = tu_param(&rng, TG_F64, "d", TG_DIMS(2));
    tg_tensor *nograd = tg_tensor_zeros(TG_F32, TG_DIMS(4));
    float user[4] = {0};
    tg_tensor *wrapped = tg_tensor_wrap(TG_F32, TG_DIMS(4), user);
    ck_assert_int_eq(tg_tensor_requires_grad(wrapped, true), TG_OK);
    tg_tensor view;
    ck_assert_int_eq(tg_view_transpose(&view, a, 0, 1), TG_OK);

    ck_assert_int_ne(tg_params_pack(NULL), TG_OK);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_params_pack: the set is NULL"));
    tg_params empty = {0};
    assert_refused(&empty, "tg_params_pack: the set is empty");

    static const struct {
        const char *second;
        const char *message;
    } cases[] = {
        {"d", "tg_params_pack: 'd' is f64, 'a' is f32 (a packed set has one dtype)"},
        {"nograd", "tg_params_pack: 'nograd' has no gradient"},
        {"wrapped", "tg_params_pack: 'wrapped' wraps memory its caller owns"},
        {"view", "tg_params_pack: 'view' is not a persistent tensor"},
        {"again", "tg_params_pack: 'a' and 'again' are the same tensor"},
    };
    tg_tensor *second[] = {d, nograd, wrapped, &view, a};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_params set = {0};
        ck_assert_int_eq(tg_params_add(&set, "a", a), TG_OK);
        ck_assert_int_eq(tg_params_add(&set, cases[i].second, second[i]), TG_OK);
        assert_refused(&set, cases[i].message);
        tg_params_clear(&set);
    }
    tu_free_all((tg_tensor *[]){a, d, nograd, wrapped, NULL}, 4);
}
END_TEST

START_TEST(buffers_are_refused_until_the_set_is_packed_as_it_is)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_tensor *a = tu_param(&rng, TG_F32, "a", TG_DIMS(2, 3));
    tg_tensor *b = tu_param(&rng, TG_F32, "b", TG_DIMS(5));
    tg_params set = {0};
    tg_dtype dtype;
    int64_t count;
    ck_assert_int_eq(tg_params_add(&set, "a", a), TG_OK);
    ck_assert_ptr_null(tg_params_grad_buffer(&set, &dtype, &count));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_params_grad_buffer: the set is not packed"));
    ck_assert_ptr_null(tg_params_grad_buffer(NULL, &dtype, &count));
    ck_assert_int_eq(tg_params_pack(&set), TG_OK);
    ck_assert_ptr_nonnull(tg_params_grad_buffer(&set, &dtype, &count));
    ck_assert_int_eq(count, 6);

    /* a tensor added since */
    ck_assert_int_eq(tg_params_add(&set, "b", b), TG_OK);
    ck_assert_ptr_null(tg_params_value_buffer(&set, &dtype, &count));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "holds 2 tensors, 1 when it was packed"));
    ck_assert_int_eq(tg_params_pack(&set), TG_OK); /* packs again: a keeps its values */
    float *v = tg_params_value_buffer(&set, &dtype, &count);
    ck_assert_int_eq(count, 11);
    ck_assert(v[6] == (float)tg_tensor_get_flat(b, 0) && v[0] == (float)tg_tensor_get_flat(a, 0));

    /* a gradient dropped and made again no longer lies in the pack */
    ck_assert_int_eq(tg_tensor_requires_grad(b, false), TG_OK);
    ck_assert_int_eq(tg_tensor_requires_grad(b, true), TG_OK);
    ck_assert_ptr_null(tg_params_grad_buffer(&set, &dtype, &count));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "'b' no longer lies in the set's pack"));
    ck_assert_int_eq(tg_params_pack(&set), TG_OK);
    ck_assert_ptr_nonnull(tg_params_grad_buffer(&set, &dtype, &count));
    tg_params_clear(&set); /* the set first, then the tensors: both orders are fine */
    tg_tensor_free(a);
    tg_tensor_free(b);
}
END_TEST

/* A set packed inside a larger one: the larger pack takes the tensors, the
 * first set's buffers are refused, and everything is freed once. */
START_TEST(a_tensor_moves_to_the_last_pack)
{
    lm m;
    lm_init(&m, TG_F32, 4);
    tg_params head = {0};
    ck_assert_int_eq(tg_params_extend(&head, NULL, &m.head->params), TG_OK);
    ck_assert_int_eq(tg_params_pack(&head), TG_OK);
    double w = tg_tensor_get_flat(m.head->W, 3);
    ck_assert_int_eq(tg_params_pack(&m.params), TG_OK);
    tg_dtype dtype;
    int64_t count;
    ck_assert_ptr_null(tg_params_grad_buffer(&head, &dtype, &count));
    ck_assert_ptr_nonnull(tg_params_grad_buffer(&m.params, &dtype, &count));
    ck_assert(tg_tensor_get_flat(m.head->W, 3) == w);
    tg_params_clear(&head);
    lm_train(&m, 2, TG_PATH_FUSED); /* still usable after the first pack's memory is gone */
    lm_free(&m);
}
END_TEST

/* ---- flatten ------------------------------------------------------------------------- */

START_TEST(flatten_round_trips_a_model_and_its_optimizer_state)
{
    lm m;
    lm_init(&m, TG_F32, 6);
    tg_adam_options ao = tg_adam_defaults(0.01);
    tg_adam *opt = tg_adam_new(&m.params, &ao);
    tg_params state = {0};
    ck_assert_int_eq(tg_params_extend(&state, NULL, &m.params), TG_OK);
    ck_assert_int_eq(tg_adam_state(opt, &state), TG_OK); /* f32 moments, an f64 step */
    tg_tensor *step = tg_params_find(&state, "adam.step");
    tg_tensor_fill(step, 42);
    size_t n;
    ck_assert_int_eq(tg_params_flat_size(&state, &n), TG_OK);
    ck_assert_uint_eq(n, 3 * 4 * (size_t)tg_params_numel(&m.params) + 8);
    unsigned char *bytes = malloc(n), *again = malloc(n);
    ck_assert_int_eq(tg_params_flatten(&state, bytes, n), TG_OK);
    double w = tg_tensor_get_flat(m.head->W, 0);
    tg_tensor_fill(m.head->W, 9);
    tg_tensor_fill(step, 0);
    /* a wrong size is refused and changes nothing */
    ck_assert_int_ne(tg_params_unflatten(&state, bytes, n - 1), TG_OK);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_params_unflatten: the buffer holds"));
    ck_assert(tg_tensor_get_flat(m.head->W, 0) == 9);
    ck_assert_int_eq(tg_params_unflatten(&state, bytes, n), TG_OK);
    ck_assert(tg_tensor_get_flat(m.head->W, 0) == w);
    ck_assert(tg_tensor_item(step) == 42);
    ck_assert_int_eq(tg_params_flatten(&state, again, n), TG_OK);
    ck_assert(memcmp(bytes, again, n) == 0);
    /* refusals */
    ck_assert_int_ne(tg_params_flatten(&state, NULL, n), TG_OK);
    ck_assert_int_ne(tg_params_flat_size(NULL, &n), TG_OK);
    tg_tensor view;
    ck_assert_int_eq(tg_view_transpose(&view, m.head->W, 0, 1), TG_OK);
    tg_params strided = {0};
    ck_assert_int_eq(tg_params_add(&strided, "Wt", &view), TG_OK);
    ck_assert_int_ne(tg_params_flat_size(&strided, &n), TG_OK);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "'Wt' is not a contiguous tensor"));
    tg_params_clear(&strided);
    free(bytes), free(again);
    tg_params_clear(&state);
    tg_adam_free(opt);
    lm_free(&m);
}
END_TEST

Suite *suite_params(void)
{
    Suite *s = suite_create("params");
    TCase *tc = tcase_create("pack");
    tcase_add_test(tc, pack_moves_values_and_gradients_into_one_buffer);
    tcase_add_test(tc, packed_training_and_checkpoints_are_bit_identical);
    tcase_add_test(tc, views_of_packed_tensors_read_and_collect_gradients);
    tcase_add_test(tc, half_batch_replicas_sum_to_the_full_batch);
    tcase_add_test(tc, pack_refuses_sets_it_cannot_hold_and_moves_nothing);
    tcase_add_test(tc, buffers_are_refused_until_the_set_is_packed_as_it_is);
    tcase_add_test(tc, a_tensor_moves_to_the_last_pack);
    tcase_add_test(tc, flatten_round_trips_a_model_and_its_optimizer_state);
    suite_add_tcase(s, tc);
    return s;
}
