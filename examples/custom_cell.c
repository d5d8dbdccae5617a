/* custom_cell: write your own recurrent cell from ops, check its gradients,
 * and train it.
 *
 * The cell is a minimal gated unit (MGU): one gate f decides, per unit, how
 * much of the state to overwrite with a candidate n.
 *     f  = sigmoid(Wf [a; x] + bf)
 *     n  = tanh(Wn [f * a; x] + bn)
 *     a' = (1 - f) * a + f * n
 * Nothing here writes a backward pass: every line of the cell is an op on
 * the tape, tg_unroll runs it over the sequence, and tg_backward gives
 * backprop-through-time.
 *
 * The task: read a stream of symbols and output, at every step, the symbol
 * seen two steps earlier (symbol 0 before the stream starts). Only a
 * network that remembers can do better than guessing: the loss starts at
 * ln(4) = 1.39 and falls towards 0 as the cell learns to hold two symbols. */
#include <math.h>
#include <stdio.h>

#include "delay_task.h"
#include "tapegrad.h"

enum { N_SYM = 4, N_A = 16, DELAY = 2, M = 32, T_X = 12, STEPS = 300 };

/* ---- the cell: ~20 lines of ops -------------------------------------------------- */

typedef struct {
    tg_tensor *Wf, *bf; /* gate:      (n_a, n_a + n_x), (n_a, 1) */
    tg_tensor *Wn, *bn; /* candidate: (n_a, n_a + n_x), (n_a, 1) */
} mgu;

/* xt (n_x, m), prev->a (n_a, m) -> next->a (n_a, m) */
static tg_status mgu_cell(tg_tape *tape, void *ctx, tg_tensor *xt, const tg_state *prev,
                          tg_state *next)
{
    const mgu *p = ctx;
    tg_tensor *a = prev->a;
    /* [a; x] stacks the state on top of the input: one matmul sees both */
    tg_tensor *a_x = tg_concat(tape, 2, (tg_tensor *[]){a, xt}, 0);
    tg_tensor *f = tg_sigmoid(tape, tg_add(tape, tg_matmul(tape, p->Wf, a_x), p->bf));
    /* the candidate reads only the part of the state the gate opens */
    tg_tensor *fa_x = tg_concat(tape, 2, (tg_tensor *[]){tg_mul(tape, f, a), xt}, 0);
    tg_tensor *n = tg_tanh(tape, tg_add(tape, tg_matmul(tape, p->Wn, fa_x), p->bn));
    /* keep (1 - f) of the old state, write f of the candidate */
    tg_tensor *keep = tg_mul(tape, tg_affine(tape, f, -1.0, 1.0), a);
    next->a = tg_add(tape, keep, tg_mul(tape, f, n));
    next->c = NULL; /* the MGU carries no cell state */
    /* an op that fails returns NULL and leaves its message on the tape */
    return next->a ? TG_OK : tg_tape_status(tape);
}

/* ---- the model: cell, output head, loss ------------------------------------------- */

typedef struct {
    mgu cell;
    tg_linear *head;   /* logits (n_sym, m, T_x) from the hidden states */
    tg_params params;  /* every trainable tensor, for the update loop */
    const tg_tensor *x;      /* the current batch: one-hot (n_sym, m, T_x) */
    const int32_t *targets;  /* one symbol per (sequence, step), C order */
} model;

/* mean cross-entropy of the predictions over every (sequence, step) */
static tg_tensor *model_loss(tg_tape *tape, tg_tensor *const *params, void *ctx)
{
    (void)params; /* the model holds the same tensors */
    model *mo = ctx;
    int64_t m = mo->x->shape[1], T = mo->x->shape[2];
    tg_tensor *a0 = tg_tape_zeros(tape, TG_F64, TG_DIMS(N_A, m));
    tg_state init = {a0, NULL};
    tg_tensor *h = tg_unroll(tape, mgu_cell, &mo->cell, (tg_tensor *)mo->x, &init, NULL);
    tg_tensor *logits = tg_linear_forward(tape, mo->head, h);
    return tg_cross_entropy(tape, logits, 0, mo->targets, m * T, TG_REDUCE_MEAN);
}

static tg_tensor *new_weight(tg_rng *rng, tg_params *set, const char *name, int64_t rows,
                             int64_t cols, bool bias)
{
    tg_tensor *t = tg_tensor_zeros(TG_F64, TG_DIMS(rows, cols));
    tg_tensor_requires_grad(t, true);
    tg_init_param(t, TG_INIT_XAVIER, bias, rows, rng); /* Glorot weights, zero biases */
    tg_params_add(set, name, t);
    t->name = name;
    return t;
}

int main(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    model mo = {0};
    mo.cell.Wf = new_weight(&rng, &mo.params, "Wf", N_A, N_A + N_SYM, false);
    mo.cell.bf = new_weight(&rng, &mo.params, "bf", N_A, 1, true);
    mo.cell.Wn = new_weight(&rng, &mo.params, "Wn", N_A, N_A + N_SYM, false);
    mo.cell.bn = new_weight(&rng, &mo.params, "bn", N_A, 1, true);
    mo.head = tg_linear_new(N_A, N_SYM, TG_F64, "Wy", "by", TG_INIT_XAVIER, &rng);
    if (!mo.head || tg_params_extend(&mo.params, NULL, &mo.head->params) != TG_OK) {
        fprintf(stderr, "custom_cell: %s\n", tg_last_error());
        return 1;
    }

    /* 1. Before training, check the tape's gradients against finite
     *    differences on a small batch: if the cell were wrong, this is where
     *    it would show. */
    tg_tensor *x_small = tg_tensor_zeros(TG_F64, TG_DIMS(N_SYM, 2, 5));
    int32_t t_small[2 * 5];
    delay_batch(&rng, x_small, t_small, DELAY);
    mo.x = x_small;
    mo.targets = t_small;
    tg_tensor *list[8];
    for (int j = 0; j < mo.params.count; j++)
        list[j] = mo.params.items[j].tensor;
    tg_gradcheck_result check;
    if (tg_gradcheck(model_loss, &mo, mo.params.count, list, NULL, &check) != TG_OK) {
        fprintf(stderr, "custom_cell: %s\n", tg_last_error());
        return 1;
    }
    tg_gradcheck_print(stdout, &check);

    /* 2. Train with plain gradient descent on fresh batches. */
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(N_SYM, M, T_X));
    int32_t targets[M * T_X];
    mo.x = x;
    mo.targets = targets;
    tg_tape *tape = tg_tape_new();
    double lr = 1.0, loss_value = 0;
    printf("MGU, n_a = %d: output the symbol seen %d steps ago (guessing: loss %.3f)\n", N_A,
           DELAY, log(N_SYM));
    for (int step = 1; step <= STEPS; step++) {
        delay_batch(&rng, x, targets, DELAY);
        tg_tape_reset(tape);
        tg_params_zero_grad(&mo.params);
        tg_tensor *loss = model_loss(tape, NULL, &mo);
        if (!loss || tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "custom_cell: %s\n", tg_tape_error(tape));
            return 1;
        }
        loss_value = tg_tensor_item(loss);
        for (int j = 0; j < mo.params.count; j++) { /* p -= lr * dp */
            tg_tensor *p = mo.params.items[j].tensor;
            for (int64_t i = 0; i < tg_tensor_numel(p); i++)
                tg_tensor_set_flat(p, i, tg_tensor_get_flat(p, i) -
                                             lr * tg_tensor_get_flat(p->grad, i));
        }
        if (step == 1 || step % 50 == 0)
            printf("step %4d  loss %.4f\n", step, loss_value);
    }
    printf("final loss %.4f (%s)\n", loss_value,
           loss_value < 0.1 ? "the cell remembers" : "still learning");

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(x_small);
    tg_tensor_free(mo.cell.Wf);
    tg_tensor_free(mo.cell.bf);
    tg_tensor_free(mo.cell.Wn);
    tg_tensor_free(mo.cell.bn);
    tg_linear_free(mo.head);
    tg_params_clear(&mo.params);
    return check.passed ? 0 : 1;
}
