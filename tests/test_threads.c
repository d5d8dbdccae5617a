/* What may run concurrently (the contract in core/tape.h), each case run by
 * two threads at once and compared with the same work done by one thread:
 * training on two tapes that share parameters, inference on two tapes that
 * read one model, and two threads whose products share the thread pool.
 * `make tsan` runs this suite under ThreadSanitizer, which reports any race. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { N_X = 5, N_A = 16, M = 4, T_X = 6, STEPS = 3 };

/* An LSTM and a linear head that two threads share, and each thread's data. */
typedef struct {
    tg_recurrent *rnn;
    tg_linear *head;
    tg_params params;
} shared_model;

typedef struct {
    const shared_model *model;
    tg_tensor *x; /* (N_X, M, T_X), this thread's own */
    int32_t targets[M * T_X];
    tg_path path;
    bool train;
    tg_tensor *output; /* inference: a persistent copy of the hidden states */
    tg_status status;
    char error[256];
} worker;

static void model_init(shared_model *s, uint32_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    memset(s, 0, sizeof *s);
    s->rnn = tg_recurrent_new(TG_CELL_LSTM, N_X, N_A, TG_F64, NULL, &rng);
    s->head = tg_linear_new(N_A, 3, TG_F64, "W", "b", TG_INIT_XAVIER, &rng);
    ck_assert_ptr_nonnull(s->rnn);
    ck_assert_ptr_nonnull(s->head);
    ck_assert_int_eq(tg_params_extend(&s->params, "rnn.", &s->rnn->params), TG_OK);
    ck_assert_int_eq(tg_params_extend(&s->params, "head.", &s->head->params), TG_OK);
}

static void model_free(shared_model *s)
{
    tg_params_clear(&s->params);
    tg_recurrent_free(s->rnn);
    tg_linear_free(s->head);
}

static void worker_init(worker *w, const shared_model *model, uint32_t seed, tg_path path,
                        bool train)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    memset(w, 0, sizeof *w);
    w->model = model;
    w->x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(N_X, M, T_X));
    for (int i = 0; i < M * T_X; i++)
        w->targets[i] = (int32_t)tg_rng_below(&rng, 3);
    w->path = path;
    w->train = train;
}

/* STEPS forward (and, when training, backward) passes on a tape of its own. */
static void *work(void *arg)
{
    worker *w = arg;
    tg_tape *tape = tg_tape_new();
    tg_tape_no_grad(tape, !w->train);
    w->status = TG_OK;
    for (int step = 0; step < STEPS && w->status == TG_OK; step++) {
        tg_tape_reset(tape);
        tg_tensor *h = tg_recurrent_forward(tape, w->model->rnn, w->x, NULL, w->path, NULL);
        tg_tensor *logits = tg_linear_forward(tape, w->model->head, h);
        tg_tensor *loss =
            tg_cross_entropy(tape, logits, 0, w->targets, M * T_X, TG_REDUCE_MEAN);
        w->status = !loss ? tg_tape_status(tape) : w->train ? tg_backward(tape, loss) : TG_OK;
        if (w->status == TG_OK && !w->train && step == STEPS - 1)
            w->output = tg_tensor_copy(h);
    }
    snprintf(w->error, sizeof w->error, "%s", tg_tape_error(tape));
    tg_tape_free(tape);
    return NULL;
}

/* fn(a) and fn(b) in two threads at once. */
static void in_two_threads(void *(*fn)(void *), void *a, void *b)
{
    pthread_t threads[2];
    ck_assert_int_eq(pthread_create(&threads[0], NULL, fn, a), 0);
    ck_assert_int_eq(pthread_create(&threads[1], NULL, fn, b), 0);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_join(threads[k], NULL), 0);
}

/* Run the two workers at once, or one after the other. */
static void run(worker *w, bool concurrently)
{
    if (concurrently) {
        in_two_threads(work, &w[0], &w[1]);
    } else {
        work(&w[0]);
        work(&w[1]);
    }
    for (int k = 0; k < 2; k++)
        ck_assert_msg(w[k].status == TG_OK, "worker %d: %s", k, w[k].error);
}

/* Two threads train on two tapes whose models share every parameter: each
 * backward collects on its own tape and adds into the shared gradients
 * under a lock, so the gradients are the sum of both threads' (the order of
 * the two additions may differ from the sequential run: equal to rounding). */
static void shared_parameters_collect_both_gradients(tg_path path)
{
    shared_model together, alone;
    model_init(&together, 5);
    model_init(&alone, 5);
    worker a[2], b[2];
    for (int k = 0; k < 2; k++) {
        worker_init(&a[k], &together, 100 + (uint32_t)k, path, true);
        worker_init(&b[k], &alone, 100 + (uint32_t)k, path, true);
    }
    run(a, true);
    run(b, false);
    for (int i = 0; i < together.params.count; i++) {
        const tg_tensor *g = together.params.items[i].tensor->grad;
        const tg_tensor *ref = alone.params.items[i].tensor->grad;
        ck_assert_msg(tu_max_rel_diff(ref, g, 1e-12) < 1e-12, "%s: gradients differ by %g",
                      together.params.items[i].name, tu_max_abs_diff(ref, g));
        bool nonzero = false;
        for (int64_t j = 0; j < tg_tensor_numel(g); j++)
            nonzero = nonzero || tg_tensor_get_flat(g, j) != 0;
        ck_assert_msg(nonzero, "%s received no gradient", together.params.items[i].name);
    }
    for (int k = 0; k < 2; k++) {
        tg_tensor_free(a[k].x);
        tg_tensor_free(b[k].x);
    }
    model_free(&together);
    model_free(&alone);
}

START_TEST(two_tapes_sharing_parameters_train_at_once_on_the_tape_path)
{
    shared_parameters_collect_both_gradients(TG_PATH_TAPE);
}
END_TEST

START_TEST(two_tapes_sharing_parameters_train_at_once_on_the_fused_path)
{
    shared_parameters_collect_both_gradients(TG_PATH_FUSED);
}
END_TEST

/* Inference: two threads read one model (no gradient) and get, bit for
 * bit, what one thread gets. */
START_TEST(two_threads_read_one_model_for_inference)
{
    shared_model model;
    model_init(&model, 9);
    worker w[2], again[2];
    for (int k = 0; k < 2; k++) {
        worker_init(&w[k], &model, 200 + (uint32_t)k, TG_PATH_FUSED, false);
        worker_init(&again[k], &model, 200 + (uint32_t)k, TG_PATH_FUSED, false);
    }
    run(w, true);
    run(again, false);
    for (int k = 0; k < 2; k++) {
        ck_assert(tu_bitwise_equal(w[k].output, again[k].output));
        tu_free_all((tg_tensor *[]){w[k].x, w[k].output, again[k].x, again[k].output}, 4);
    }
    model_free(&model);
}
END_TEST

/* Products large enough for the thread pool, from two threads at once: the
 * pool runs one job at a time (the other caller waits), and every result is
 * the one a single caller gets. */
typedef struct {
    tg_tensor *a, *b, *c;
} product;

static void *multiply(void *arg)
{
    product *p = arg;
    tg_tape *tape = tg_tape_new();
    tg_tape_no_grad(tape, true);
    tg_tensor *c = tg_matmul(tape, p->a, p->b);
    p->c = c ? tg_tensor_copy(c) : NULL;
    tg_tape_free(tape);
    return NULL;
}

START_TEST(two_threads_share_the_thread_pool)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    product p[2], q[2];
    for (int k = 0; k < 2; k++) {
        p[k].a = tg_tensor_randn(&rng, TG_F64, TG_DIMS(384, 384));
        p[k].b = tg_tensor_randn(&rng, TG_F64, TG_DIMS(384, 256));
        q[k] = p[k];
    }
    in_two_threads(multiply, &p[0], &p[1]);
    for (int k = 0; k < 2; k++) {
        multiply(&q[k]);
        ck_assert_ptr_nonnull(p[k].c);
        ck_assert_ptr_nonnull(q[k].c);
        ck_assert(tu_bitwise_equal(p[k].c, q[k].c));
        tu_free_all((tg_tensor *[]){p[k].a, p[k].b, p[k].c, q[k].c}, 4);
    }
}
END_TEST

Suite *suite_threads(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, two_tapes_sharing_parameters_train_at_once_on_the_tape_path);
    tcase_add_test(tc, two_tapes_sharing_parameters_train_at_once_on_the_fused_path);
    tcase_add_test(tc, two_threads_read_one_model_for_inference);
    tcase_add_test(tc, two_threads_share_the_thread_pool);
    suite_add_tcase(s, tc);
    return s;
}
