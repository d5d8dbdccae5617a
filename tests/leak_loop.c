/* Leak check: N training steps (record, backward, reset) of a small RNN, then
 * free everything. `make valgrind` runs it under valgrind with N = 1000; it
 * must report no leaks and no errors.
 *
 * It also checks that memory is flat: the arena's reserved bytes after the
 * first step stay the same for every later step (printed at the end), so the
 * steady state calls no malloc. Exit status 0 when all steps succeeded and
 * the arena stayed flat.
 *
 *     build/tests/leak_loop 1000 */
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad.h"

enum { N_X = 5, N_A = 8, M = 4, T_X = 6 };

/* a_t = tanh(Wax @ x[:, :, t] + Waa @ a_{t-1} + ba); loss = sum(a_T) */
static tg_tensor *rnn_loss(tg_tape *tape, tg_tensor *Wax, tg_tensor *Waa, tg_tensor *ba,
                           tg_tensor *x)
{
    tg_tensor *a = tg_tape_zeros(tape, TG_F64, TG_DIMS(N_A, M));
    for (int t = 0; t < T_X; t++) {
        tg_tensor *xt = tg_select(tape, x, 2, t);
        tg_tensor *z = tg_add(tape, tg_matmul(tape, Wax, xt), tg_matmul(tape, Waa, a));
        a = tg_tanh(tape, tg_add(tape, z, ba));
    }
    return tg_sum(tape, a);
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    if (steps < 1) {
        fprintf(stderr, "usage: leak_loop STEPS (at least 1)\n");
        return 2;
    }
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *Wax = tg_tensor_randn(&rng, TG_F64, TG_DIMS(N_A, N_X));
    tg_tensor *Waa = tg_tensor_randn(&rng, TG_F64, TG_DIMS(N_A, N_A));
    tg_tensor *ba = tg_tensor_randn(&rng, TG_F64, TG_DIMS(N_A, 1));
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(N_X, M, T_X));
    tg_tensor *params[] = {Wax, Waa, ba};
    tg_tape *tape = tg_tape_new();
    int status = Wax && Waa && ba && x && tape ? 0 : 1;
    for (int i = 0; i < 3 && status == 0; i++)
        if (tg_tensor_requires_grad(params[i], true) != TG_OK)
            status = 1;

    size_t first = 0, last = 0;
    for (long step = 0; step < steps && status == 0; step++) {
        tg_tensor *loss = rnn_loss(tape, Wax, Waa, ba, x);
        if (!loss || tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "leak_loop: step %ld failed: %s\n", step + 1, tg_tape_error(tape));
            status = 1;
        }
        tg_tape_reset(tape);
        for (int i = 0; i < 3; i++)
            tg_tensor_zero_grad(params[i]);
        last = tg_tape_bytes_reserved(tape);
        if (step == 0)
            first = last;
        else if (last != first) {
            fprintf(stderr, "leak_loop: step %ld reserved %zu bytes, step 1 %zu\n", step + 1,
                    last, first);
            status = 1;
        }
    }
    printf("leak_loop: %ld steps, arena reserved %zu bytes after step 1, %zu after the last\n",
           steps, first, last);

    tg_tape_free(tape);
    for (int i = 0; i < 3; i++)
        tg_tensor_free(params[i]);
    tg_tensor_free(x);
    return status;
}
