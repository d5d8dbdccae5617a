/* toy_rnn: a vanilla RNN built from tape ops learns to continue a phrase.
 *
 * Every step of the unrolled network is ordinary ops (matmul, add, tanh,
 * cross_entropy) recorded on the tape, so backprop-through-time is just
 * tg_backward. The task: read the phrase one character at a time (one-hot
 * columns, one sequence per starting offset) and predict the next character.
 * The loss falls from ln(vocab) towards 0 as the network learns the phrase. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

static const char PHRASE[] = "hello, tapegrad! ";
enum { N_A = 32, STEPS = 400, T_X = sizeof PHRASE - 1 };

/* Index of c in the vocabulary (the phrase's distinct characters). */
static int char_id(const char *vocab, char c) { return (int)(strchr(vocab, c) - vocab); }

/* p -= lr * dp for every parameter: plain gradient descent. */
static void sgd_step(tg_tensor **params, int n, double lr)
{
    for (int k = 0; k < n; k++) {
        int64_t numel = tg_tensor_numel(params[k]);
        for (int64_t i = 0; i < numel; i++)
            tg_tensor_set_flat(params[k], i,
                               tg_tensor_get_flat(params[k], i) -
                                   lr * tg_tensor_get_flat(params[k]->grad, i));
    }
}

int main(void)
{
    char vocab[sizeof PHRASE] = "";
    int n_x = 0;
    for (const char *p = PHRASE; *p; p++)
        if (!strchr(vocab, *p))
            vocab[n_x++] = *p;
    const int T = T_X, m = T_X;

    /* x[:, s, t] is the one-hot of the character at offset s + t. */
    tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(n_x, m, T));
    int32_t targets[T_X][T_X]; /* targets[t][s]: the character after it */
    for (int s = 0; s < m; s++)
        for (int t = 0; t < T; t++) {
            tg_tensor_set(x, (int64_t[]){char_id(vocab, PHRASE[(s + t) % T]), s, t}, 1.0);
            targets[t][s] = char_id(vocab, PHRASE[(s + t + 1) % T]);
        }

    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *Wax = tg_tensor_randn(&rng, TG_F32, TG_DIMS(N_A, n_x));
    tg_tensor *Waa = tg_tensor_randn(&rng, TG_F32, TG_DIMS(N_A, N_A));
    tg_tensor *Wya = tg_tensor_randn(&rng, TG_F32, TG_DIMS(n_x, N_A));
    tg_tensor *ba = tg_tensor_zeros(TG_F32, TG_DIMS(N_A, 1));
    tg_tensor *by = tg_tensor_zeros(TG_F32, TG_DIMS(n_x, 1));
    tg_tensor *params[] = {Wax, Waa, Wya, ba, by};
    for (int k = 0; k < 5; k++) {
        tg_tensor_requires_grad(params[k], true);
        if (k < 3) /* small weights keep tanh out of saturation at the start */
            for (int64_t i = 0; i < tg_tensor_numel(params[k]); i++)
                tg_tensor_set_flat(params[k], i, 0.1 * tg_tensor_get_flat(params[k], i));
    }

    printf("toy_rnn: vocabulary of %d characters, %d sequences of %d steps, n_a = %d\n", n_x, m,
           T, N_A);
    printf("a loss of ln(%d) = %.3f means guessing; 0 means the phrase is learned\n", n_x,
           log(n_x));
    tg_tape *tape = tg_tape_new();
    double loss_value = 0;
    for (int step = 1; step <= STEPS; step++) {
        tg_tape_reset(tape);
        tg_tensor *a = tg_tape_zeros(tape, TG_F32, TG_DIMS(N_A, m));
        tg_tensor *loss = NULL;
        for (int t = 0; t < T; t++) {
            tg_tensor *xt = tg_select(tape, x, 2, t);
            a = tg_tanh(tape, tg_add(tape, tg_add(tape, tg_matmul(tape, Waa, a),
                                                  tg_matmul(tape, Wax, xt)), ba));
            tg_tensor *logits = tg_add(tape, tg_matmul(tape, Wya, a), by);
            tg_tensor *loss_t = tg_cross_entropy(tape, logits, 0, targets[t], m, TG_REDUCE_MEAN);
            loss = loss ? tg_add(tape, loss, loss_t) : loss_t;
        }
        loss = tg_scale(tape, loss, 1.0 / T);
        for (int k = 0; k < 5; k++)
            tg_tensor_zero_grad(params[k]);
        if (tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "toy_rnn: %s\n", tg_tape_error(tape));
            return 1;
        }
        loss_value = tg_tensor_item(loss);
        sgd_step(params, 5, 0.5);
        if (step == 1 || step % 50 == 0)
            printf("step %4d  loss %.4f\n", step, loss_value);
    }
    printf("final loss %.4f (%s)\n", loss_value,
           loss_value < 0.1 ? "the phrase is learned" : "still learning");

    tg_tape_free(tape);
    for (int k = 0; k < 5; k++)
        tg_tensor_free(params[k]);
    tg_tensor_free(x);
    return 0;
}
