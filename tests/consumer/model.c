/* A C program built against the installed library (tests/test_install.c
 * compiles it with `pkg-config --cflags --libs tapegrad`, shared and
 * static): a GRU learns the running mean of its inputs with Adam and saves
 * a training checkpoint (model, Adam, generator, step) to argv[1]; then an
 * inference model, built without a generator, loads the model part of that
 * file. It exits 0 only when every call succeeded, the loss fell below a
 * tenth of the first one, and the inference model's outputs are the trained
 * model's, bit for bit. */
#include <stdio.h>
#include <stdlib.h>

#include <tapegrad/tapegrad.h>

enum { STEPS = 150, N_A = 8, M = 8, T_X = 10 };

/* Stop on the first failure, with the library's message. */
static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "model.c: %s failed: %s\n", what, tg_last_error());
        exit(1);
    }
}

typedef struct {
    tg_recurrent *gru;
    tg_linear *head;
    tg_params params; /* "gru.l0.Wr", ..., "head.W", "head.b" */
} model;

/* A model drawn from rng, or all zeros (to be loaded) when rng is NULL. */
static void model_make(model *m, tg_rng *rng)
{
    m->gru = tg_recurrent_new(TG_CELL_GRU, 1, N_A, TG_F64, NULL, rng);
    m->head = tg_linear_new(N_A, 1, TG_F64, NULL, NULL, TG_INIT_XAVIER, rng);
    check(m->gru && m->head, "building the model");
    m->params = (tg_params){0};
    check(tg_params_extend(&m->params, "gru.", &m->gru->params) == TG_OK &&
              tg_params_extend(&m->params, "head.", &m->head->params) == TG_OK,
          "collecting the parameters");
}

static void model_free(model *m)
{
    tg_params_clear(&m->params);
    tg_linear_free(m->head);
    tg_recurrent_free(m->gru);
}

static tg_tensor *predict(tg_tape *tape, const model *m, tg_tensor *x)
{
    tg_tensor *a = tg_recurrent_forward(tape, m->gru, x, NULL, TG_PATH_TAPE, NULL);
    return tg_linear_forward(tape, m->head, a);
}

/* x (1, M, T_X) uniform in [-1, 1); y (1, M, T_X) the mean of x[:, s, :t+1]. */
static void draw_batch(tg_rng *rng, tg_tensor *x, tg_tensor *y)
{
    tg_rng_fill_uniform(rng, x, -1.0, 1.0);
    for (int64_t s = 0; s < M; s++) {
        double sum = 0;
        for (int64_t t = 0; t < T_X; t++) {
            sum += tg_tensor_get(x, (int64_t[]){0, s, t});
            tg_tensor_set(y, (int64_t[]){0, s, t}, sum / (double)(t + 1));
        }
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "model.ckpt";
    printf("tapegrad %s (headers %s)\n", tg_version(), TG_VERSION_STRING);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    model trained;
    model_make(&trained, &rng);
    tg_adam_options options = tg_adam_defaults(0.02);
    tg_adam *adam = tg_adam_new(&trained.params, &options);
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(1, M, T_X));
    tg_tensor *y = tg_tensor_zeros(TG_F64, TG_DIMS(1, M, T_X));
    tg_tape *tape = tg_tape_new();
    check(adam && x && y && tape, "allocating");

    double first = 0, last = 0;
    for (int step = 0; step < STEPS; step++) {
        draw_batch(&rng, x, y);
        tg_tape_reset(tape);
        tg_params_zero_grad(&trained.params);
        tg_tensor *loss = tg_mse(tape, predict(tape, &trained, x), y, TG_REDUCE_MEAN);
        check(tg_backward(tape, loss) == TG_OK && tg_adam_step(adam, tape) == TG_OK,
              "a training step");
        last = tg_tensor_item(loss);
        if (step == 0)
            first = last;
    }
    printf("loss %.5f -> %.5f\n", first, last);

    tg_params all = {0};
    tg_checkpoint_int meta[] = {{"step", STEPS}};
    check(tg_params_extend(&all, NULL, &trained.params) == TG_OK &&
              tg_adam_state(adam, &all) == TG_OK &&
              tg_checkpoint_save(path, &all, &rng, meta, 1) == TG_OK,
          "saving the training checkpoint");

    model served;
    model_make(&served, NULL);
    tg_load_report report;
    check(tg_checkpoint_load_nonstrict(path, &served.params, NULL, NULL, 0, &report) == TG_OK,
          "loading the model part");
    printf("inference model: %d tensors loaded, %d missing, %d entries left out\n",
           report.n_loaded, report.n_missing, report.n_unexpected);
    int complete = report.n_missing == 0 && report.n_loaded == served.params.count;
    tg_load_report_free(&report);

    draw_batch(&rng, x, y);
    tg_tape_reset(tape);
    tg_tape_no_grad(tape, true);
    tg_tensor *a = predict(tape, &trained, x), *b = predict(tape, &served, x);
    check(a && b, "predicting");
    int same = 1;
    for (int64_t i = 0; i < tg_tensor_numel(a); i++)
        same &= tg_tensor_get_flat(a, i) == tg_tensor_get_flat(b, i);
    printf("inference %s training\n", same ? "matches" : "differs from");

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_adam_free(adam);
    tg_params_clear(&all);
    model_free(&trained);
    model_free(&served);
    return last < 0.1 * first && complete && same ? 0 : 1;
}
