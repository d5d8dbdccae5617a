/* A C program built against the installed library (tests/test_install.c
 * compiles it with `pkg-config --cflags --libs tapegrad`, shared and
 * static): a GRU learns the running mean of its inputs with Adam. It exits
 * 0 only when every step succeeded and the loss fell below a tenth of the
 * first one. */
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

int main(void)
{
    printf("tapegrad %s (headers %s)\n", tg_version(), TG_VERSION_STRING);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_recurrent *gru = tg_recurrent_new(TG_CELL_GRU, 1, N_A, TG_F64, NULL, &rng);
    tg_linear *head = tg_linear_new(N_A, 1, TG_F64, NULL, NULL, TG_INIT_XAVIER, &rng);
    check(gru && head, "building the model");
    tg_params params = {0};
    check(tg_params_extend(&params, "gru.", &gru->params) == TG_OK &&
              tg_params_extend(&params, "head.", &head->params) == TG_OK,
          "collecting the parameters");
    tg_adam_options options = tg_adam_defaults(0.02);
    tg_adam *adam = tg_adam_new(&params, &options);
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(1, M, T_X));
    tg_tensor *y = tg_tensor_zeros(TG_F64, TG_DIMS(1, M, T_X));
    tg_tape *tape = tg_tape_new();
    check(adam && x && y && tape, "allocating");

    double first = 0, last = 0;
    for (int step = 0; step < STEPS; step++) {
        draw_batch(&rng, x, y);
        tg_tape_reset(tape);
        tg_params_zero_grad(&params);
        tg_tensor *a = tg_recurrent_forward(tape, gru, x, NULL, TG_PATH_TAPE, NULL);
        tg_tensor *loss = tg_mse(tape, tg_linear_forward(tape, head, a), y, TG_REDUCE_MEAN);
        check(tg_backward(tape, loss) == TG_OK && tg_adam_step(adam, tape) == TG_OK,
              "a training step");
        last = tg_tensor_item(loss);
        if (step == 0)
            first = last;
    }
    printf("loss %.5f -> %.5f\n", first, last);

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_adam_free(adam);
    tg_params_clear(&params);
    tg_linear_free(head);
    tg_recurrent_free(gru);
    return last < 0.1 * first ? 0 : 1;
}
