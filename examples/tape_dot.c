/* tape_dot: the tape as a list, then as a picture.
 *
 *     tape_dot [PATH]        writes PATH (build/rnn_step.dot)
 *     dot -Tsvg build/rnn_step.dot -o rnn_step.svg
 *
 * One step of the course's RNN cell and its loss, written op by op:
 *     a_next = tanh(Waa a_prev + Wax xt + ba)
 *     loss   = cross_entropy(Wya a_next + by, y)
 * Every op appends one entry to the tape. Printing the entries in order
 * shows what tg_backward will walk, from the last entry to the first;
 * tg_tape_dot draws the same entries as a graph: parameters in blue, data in
 * grey, ops as boxes, and the loss in bold at the bottom. The bias ba is
 * (n_a, 1) but is added to an (n_a, m) matrix: the add broadcasts it through
 * a view (the dashed ellipse), and backward sums the m columns back into
 * ba's gradient. */
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

enum { N_X = 3, N_A = 5, N_Y = 2, M = 4 };

/* A persistent tensor drawn from rng; parameters ask for a gradient. */
static tg_tensor *tensor(tg_rng *rng, const char *name, int64_t rows, int64_t cols,
                         bool parameter)
{
    tg_tensor *t = tg_tensor_randn(rng, TG_F64, TG_DIMS(rows, cols));
    if (t) {
        t->name = name; /* shown in the picture and in gradcheck messages */
        tg_tensor_requires_grad(t, parameter);
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        /* an option-looking argument is a request for help, not a file name */
        fprintf(stderr, "usage: tape_dot [OUTPUT.dot]   (default build/rnn_step.dot)\n");
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    const char *path = argc > 1 ? argv[1] : "build/rnn_step.dot";
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *xt = tensor(&rng, "xt", N_X, M, false);
    tg_tensor *a_prev = tensor(&rng, "a_prev", N_A, M, false);
    tg_tensor *Waa = tensor(&rng, "Waa", N_A, N_A, true);
    tg_tensor *Wax = tensor(&rng, "Wax", N_A, N_X, true);
    tg_tensor *Wya = tensor(&rng, "Wya", N_Y, N_A, true);
    tg_tensor *ba = tensor(&rng, "ba", N_A, 1, true);
    tg_tensor *by = tensor(&rng, "by", N_Y, 1, true);
    const int32_t y[M] = {0, 1, 1, 0}; /* the class of each column */

    /* The forward pass: every op records one entry. (One op per statement
     * fixes the order: C leaves the order of a call's arguments open.) */
    tg_tape *tape = tg_tape_new();
    tg_tensor *from_a = tg_matmul(tape, Waa, a_prev);
    tg_tensor *from_x = tg_matmul(tape, Wax, xt);
    tg_tensor *z = tg_add(tape, from_a, from_x);
    tg_tensor *a_next = tg_tanh(tape, tg_add(tape, z, ba));
    tg_tensor *logits = tg_add(tape, tg_matmul(tape, Wya, a_next), by);
    tg_tensor *loss = tg_cross_entropy(tape, logits, 0, y, M, TG_REDUCE_MEAN);
    if (!loss || tg_backward(tape, loss) != TG_OK) {
        fprintf(stderr, "tape_dot: %s\n", tg_tape_error(tape));
        return 1;
    }

    /* The list: entries are linked from the last to the first, the order
     * in which backward visits them. */
    printf("the tape of one RNN step, %zu entries (backward runs them bottom-up):\n",
           tg_tape_entry_count(tape));
    const tg_entry *order[64];
    int n = 0;
    for (const tg_entry *e = tg_tape_last_entry(tape); e && n < 64; e = e->prev)
        order[n++] = e;
    for (int i = n - 1; i >= 0; i--) {
        const tg_entry *e = order[i];
        char s[64];
        printf("  %2d  %-18s", n - i, e->op);
        for (int k = 0; k < e->n_in; k++) {
            const tg_tensor *in = e->in[k];
            /* tg_add saw ba (n_a,1) through a broadcast view of shape (n_a,m) */
            bool view = in->grad_root && !tg_tensor_same_shape(in, in->grad_root);
            printf("%s%s%s%s%s", k ? ", " : "(", view ? "broadcast " : "",
                   in->name ? in->name : "", in->name ? " " : "", tg_shape_str(in, s, sizeof s));
        }
        printf(") -> %s\n", tg_shape_str(e->out[0], s, sizeof s));
    }
    printf("loss = %.6f, dWaa[1][2] = %.6f\n", tg_tensor_item(loss),
           tg_tensor_get(Waa->grad, (int64_t[]){1, 2}));

    /* The picture. */
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "tape_dot: cannot write '%s' (run from the repository root, "
                        "or pass a path)\n", path);
        return 1;
    }
    tg_status status = tg_tape_dot(tape, f);
    if (fclose(f) != 0 || status != TG_OK) {
        fprintf(stderr, "tape_dot: writing '%s' failed: %s\n", path, tg_last_error());
        return 1;
    }
    printf("wrote %s; render it with: dot -Tsvg %s -o rnn_step.svg\n", path, path);

    tg_tape_free(tape);
    tg_tensor *all[] = {xt, a_prev, Waa, Wax, Wya, ba, by};
    for (int k = 0; k < 7; k++)
        tg_tensor_free(all[k]);
    return 0;
}
