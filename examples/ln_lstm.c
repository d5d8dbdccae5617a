/* ln_lstm: a LayerNorm-LSTM cell (examples/ln_lstm_cell.h) from ops, run over
 * sequences with tg_unroll, checked against finite differences, and trained
 * beside the library's plain LSTM on the same task with the same Adam.
 *
 * The task: read a stream of symbols and output, at every step, the symbol
 * seen three steps earlier (symbol 0 before the stream starts). Guessing
 * scores ln(4) = 1.386; a cell that holds three symbols gets near 0. */
#include <math.h>
#include <stdio.h>

#include "delay_task.h"
#include "ln_lstm_cell.h"
#include "tapegrad.h"

enum { N_SYM = 4, N_A = 24, DELAY = 3, M = 32, T_X = 16, STEPS = 400 };

/* Either model: the LN-LSTM cell through tg_unroll, or tg_recurrent's LSTM. */
typedef struct {
    ln_lstm *cell;      /* or NULL */
    tg_recurrent *lstm; /* or NULL */
    tg_linear *head;
    tg_params params;
    const tg_tensor *x;
    const int32_t *targets;
} model;

/* mean cross-entropy of the predictions over every (sequence, step) */
static tg_tensor *model_loss(tg_tape *tape, tg_tensor *const *params, void *ctx)
{
    (void)params; /* the model holds the same tensors */
    model *mo = ctx;
    int64_t m = mo->x->shape[1], T = mo->x->shape[2];
    tg_tensor *h;
    if (mo->cell) {
        tg_dtype dtype = mo->x->dtype;
        tg_state init = {tg_tape_zeros(tape, dtype, TG_DIMS(N_A, m)),
                         tg_tape_zeros(tape, dtype, TG_DIMS(N_A, m))};
        h = tg_unroll(tape, ln_lstm_step, mo->cell, (tg_tensor *)mo->x, &init, NULL);
    } else {
        h = tg_recurrent_forward(tape, mo->lstm, (tg_tensor *)mo->x, NULL, TG_PATH_FUSED, NULL);
    }
    tg_tensor *logits = tg_linear_forward(tape, mo->head, h);
    return tg_cross_entropy(tape, logits, 0, mo->targets, m * T, TG_REDUCE_MEAN);
}

/* 1. The LN-LSTM's gradients against finite differences, in f64. */
static int gradcheck_cell(tg_rng *rng)
{
    ln_lstm cell;
    model mo = {.cell = &cell};
    if (ln_lstm_init(&cell, N_SYM, N_A, TG_F64, rng) != TG_OK ||
        !(mo.head = tg_linear_new(N_A, N_SYM, TG_F64, "Wy", "by", TG_INIT_XAVIER, rng)) ||
        tg_params_extend(&mo.params, NULL, &cell.params) != TG_OK ||
        tg_params_extend(&mo.params, NULL, &mo.head->params) != TG_OK) {
        fprintf(stderr, "ln_lstm: %s\n", tg_last_error());
        return 1;
    }
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(N_SYM, 2, 5)), *list[16];
    int32_t targets[2 * 5];
    delay_batch(rng, x, targets, DELAY);
    mo.x = x;
    mo.targets = targets;
    for (int j = 0; j < mo.params.count; j++)
        list[j] = mo.params.items[j].tensor;
    tg_gradcheck_options o = tg_gradcheck_defaults();
    o.max_per_param = 40; /* evenly spread: enough to catch a wrong rule */
    tg_gradcheck_result r;
    tg_status s = tg_gradcheck(model_loss, &mo, mo.params.count, list, &o, &r);
    if (s == TG_OK)
        tg_gradcheck_print(stdout, &r);
    else
        fprintf(stderr, "ln_lstm: %s\n", tg_last_error());
    tg_tensor_free(x);
    tg_params_clear(&mo.params);
    tg_linear_free(mo.head);
    ln_lstm_free(&cell);
    return s == TG_OK && r.passed ? 0 : 1;
}

/* 2. Train one model with Adam on fresh f32 batches; the last loss. */
static double train(model *mo, tg_rng *rng, const char *label)
{
    tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(N_SYM, M, T_X));
    int32_t targets[M * T_X];
    mo->x = x;
    mo->targets = targets;
    tg_adam_options o = tg_adam_defaults(1e-2);
    tg_adam *opt = tg_adam_new(&mo->params, &o);
    tg_tape *tape = tg_tape_new();
    double loss_value = NAN;
    for (int step = 1; opt && step <= STEPS; step++) {
        delay_batch(rng, x, targets, DELAY);
        tg_tape_reset(tape);
        tg_params_zero_grad(&mo->params);
        tg_tensor *loss = model_loss(tape, NULL, mo);
        if (!loss || tg_backward(tape, loss) != TG_OK || tg_adam_step(opt, tape) != TG_OK) {
            fprintf(stderr, "ln_lstm: %s\n", tg_last_error());
            break;
        }
        loss_value = tg_tensor_item(loss);
        if (step % 100 == 0)
            printf("%-9s step %4d  loss %.4f\n", label, step, loss_value);
    }
    tg_tape_free(tape);
    tg_adam_free(opt);
    tg_tensor_free(x);
    return loss_value;
}

int main(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    if (gradcheck_cell(&rng) != 0)
        return 1;
    printf("output the symbol seen %d steps ago, n_a = %d, Adam 1e-2 (guessing: loss %.3f)\n",
           DELAY, N_A, log(N_SYM));
    ln_lstm cell;
    model ln = {.cell = &cell}, plain = {0};
    tg_recurrent_options ro = tg_recurrent_defaults();
    plain.lstm = tg_recurrent_new(TG_CELL_LSTM, N_SYM, N_A, TG_F32, &ro, &rng);
    plain.head = tg_linear_new(N_A, N_SYM, TG_F32, "Wy", "by", TG_INIT_XAVIER, &rng);
    ln.head = tg_linear_new(N_A, N_SYM, TG_F32, "Wy", "by", TG_INIT_XAVIER, &rng);
    if (ln_lstm_init(&cell, N_SYM, N_A, TG_F32, &rng) != TG_OK || !plain.lstm || !plain.head ||
        !ln.head || tg_params_extend(&ln.params, NULL, &cell.params) != TG_OK ||
        tg_params_extend(&ln.params, NULL, &ln.head->params) != TG_OK ||
        tg_params_extend(&plain.params, NULL, &plain.lstm->params) != TG_OK ||
        tg_params_extend(&plain.params, NULL, &plain.head->params) != TG_OK) {
        fprintf(stderr, "ln_lstm: %s\n", tg_last_error());
        return 1;
    }
    double ln_loss = train(&ln, &rng, "LN-LSTM"), plain_loss = train(&plain, &rng, "LSTM");
    printf("final loss: LN-LSTM %.4f, LSTM %.4f\n", ln_loss, plain_loss);
    tg_params_clear(&ln.params);
    tg_params_clear(&plain.params);
    tg_linear_free(ln.head);
    tg_linear_free(plain.head);
    tg_recurrent_free(plain.lstm);
    ln_lstm_free(&cell);
    return isfinite(ln_loss) && isfinite(plain_loss) ? 0 : 1;
}
