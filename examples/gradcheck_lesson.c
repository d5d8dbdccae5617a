/* gradcheck_lesson: how a gradient check catches a wrong backward pass.
 *
 * A hand-written backward pass can be wrong and still run: the shapes fit,
 * training even seems to move. The cure is to compare it with finite
 * differences, d loss / d w ~ (loss(w + eps) - loss(w - eps)) / 2 eps, one
 * element at a time: tg_gradcheck does exactly that.
 *
 * The lesson uses the course's RNN cell on the inputs of the notebook's
 * rnn_cell_backward cell (seed 1; shared/seeds/003_...), with the loss
 *     loss = sum(a_next * da_next),  a_next = tanh(Waa a_prev + Wax xt + ba)
 * whose gradient is exactly what rnn_cell_backward returns for da_next.
 *   1. The cell composed from ops: the tape's backward passes the check.
 *   2. The cell as ONE custom op with its own backward rule, written with
 *      the tg_op_* protocol of core/tape.h: it passes too.
 *   3. The same op with the bug of a real notebook (shared/seeds/004_...,
 *      backward_rnnCell): its gradient dictionary holds "dW_aa": W_aa, the
 *      weight itself, instead of its gradient. The check fails and names
 *      the parameter and the element. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad.h"

enum { N_X = 3, N_A = 5, N_Y = 2, M = 10 };

/* Which backward rule the custom op records. */
typedef enum { CORRECT = 0, BUG_004 = 1 } backward_kind;

typedef struct {
    tg_tensor **p;      /* xt, a_prev, Wax, Waa, ba */
    tg_tensor *da_next; /* the fixed upstream gradient (5, 10) */
    int use_op;         /* 0: compose from ops; 1: the custom op */
    backward_kind kind;
} lesson;

static tg_tensor *rnn_cell_op(tg_tape *tape, tg_tensor *xt, tg_tensor *a_prev, tg_tensor *Wax,
                              tg_tensor *Waa, tg_tensor *ba, backward_kind kind);
static void rnn_cell_op_backward(tg_tape *tape, const tg_entry *e);
static tg_tensor *named(tg_rng *rng, const char *name, int64_t rows, int64_t cols,
                        bool checked);

/* Element (r, c) of a 2-D tensor, any strides: the custom op's loops are
 * written for clarity, not speed. */
#define AT(T, r, c) tg_tensor_get(T, (int64_t[]){r, c})

static void add_at(tg_tensor *t, int64_t r, int64_t c, double v)
{
    tg_tensor_set(t, (int64_t[]){r, c}, AT(t, r, c) + v);
}

/* The checked tensors, in this order. */
enum { XT, A_PREV, WAX, WAA, BA, N_CHECKED };

/* loss = sum(a_next * da_next). gradcheck may check only some of the
 * tensors (`checked`); the loss always reads all of them. */
static tg_tensor *cell_loss(tg_tape *tape, tg_tensor *const *checked, void *ctx)
{
    (void)checked;
    const lesson *L = ctx;
    tg_tensor *const *p = L->p;
    tg_tensor *a_next;
    if (L->use_op) {
        a_next = rnn_cell_op(tape, p[XT], p[A_PREV], p[WAX], p[WAA], p[BA], L->kind);
    } else {
        tg_tensor *from_a = tg_matmul(tape, p[WAA], p[A_PREV]);
        tg_tensor *from_x = tg_matmul(tape, p[WAX], p[XT]);
        a_next = tg_tanh(tape, tg_add(tape, tg_add(tape, from_a, from_x), p[BA]));
    }
    return tg_sum(tape, tg_mul(tape, a_next, L->da_next));
}

int main(void)
{
    /* 003's rnn_cell_backward cell: np.random.seed(1), then xt, a_prev, Wax,
     * Waa, Wya, ba, by and da_next, in this order */
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *p[N_CHECKED];
    p[XT] = named(&rng, "xt", N_X, M, true);
    p[A_PREV] = named(&rng, "a_prev", N_A, M, true);
    p[WAX] = named(&rng, "Wax", N_A, N_X, true);
    p[WAA] = named(&rng, "Waa", N_A, N_A, true);
    /* Wya and by are drawn only to keep numpy's order: the loss starts from
     * a_next, as rnn_cell_backward starts from da_next */
    tg_tensor *Wya = named(&rng, "Wya", N_Y, N_A, false);
    p[BA] = named(&rng, "ba", N_A, 1, true);
    tg_tensor *by = named(&rng, "by", N_Y, 1, false);
    lesson L = {.p = p, .da_next = named(&rng, "da_next", N_A, M, false)};
    int status = 0;

    tg_gradcheck_options options = tg_gradcheck_defaults(); /* eps 1e-5, tolerance 1e-6 */
    tg_gradcheck_result r;
    printf("loss = sum(a_next * da_next), every element of xt, a_prev, Wax, Waa, ba checked\n"
           "(error = |analytic - numeric| / max(|analytic|, |numeric|, %g); pass below %g)\n\n",
           options.floor, options.tolerance);

    printf("1. the cell composed from ops (matmul, add, tanh): the tape's backward\n   ");
    if (tg_gradcheck(cell_loss, &L, N_CHECKED, p, &options, &r) != TG_OK)
        goto failed;
    tg_gradcheck_print(stdout, &r);
    status |= !r.passed;

    printf("\n2. the cell as one custom op, with a hand-written backward\n   ");
    L.use_op = 1;
    if (tg_gradcheck(cell_loss, &L, N_CHECKED, p, &options, &r) != TG_OK)
        goto failed;
    tg_gradcheck_print(stdout, &r);
    status |= !r.passed;

    printf("\n3. the same op with seed 004's backward: \"dW_aa\": W_aa\n   ");
    L.kind = BUG_004;
    if (tg_gradcheck(cell_loss, &L, N_CHECKED, p, &options, &r) != TG_OK)
        goto failed;
    tg_gradcheck_print(stdout, &r);
    if (r.passed) {
        printf("   the bug went unnoticed: this should not happen\n");
        status = 1;
    } else {
        const tg_tensor *worst = p[r.worst_param];
        int64_t row = r.worst_index / worst->shape[1], col = r.worst_index % worst->shape[1];
        printf("   caught: the gradient of %s is wrong; worst at flat index %lld = "
               "%s[%lld][%lld]\n",
               r.worst_name, (long long)r.worst_index, r.worst_name, (long long)row,
               (long long)col);
        printf("   its analytic value %.8f is %s[%lld][%lld] itself (%.8f): the weight, "
               "not its gradient\n",
               r.analytic, r.worst_name, (long long)row, (long long)col,
               tg_tensor_get(worst, (int64_t[]){row, col}));
    }

    /* Each tensor on its own: only Waa fails, the rest of the rule is right. */
    printf("\n   per tensor (the buggy op):\n");
    for (int k = 0; k < N_CHECKED; k++) {
        if (tg_gradcheck(cell_loss, &L, 1, &p[k], &options, &r) != TG_OK)
            goto failed;
        printf("   %-7s max error %-9.2g %s\n", p[k]->name, r.max_error,
               r.passed ? "ok" : "WRONG");
    }

    /* The notebook's number: its rnn_cell_backward cell prints dWaa[1][2] =
     * 1.1503450668497135 for these inputs. */
    printf("\n   dWaa[1][2], the notebook prints 1.1503450668497135:\n");
    for (int kind = CORRECT; kind <= BUG_004; kind++) {
        for (int k = 0; k < N_CHECKED; k++) /* backward adds (+=): start from zero */
            tg_tensor_zero_grad(p[k]);
        L.kind = (backward_kind)kind;
        tg_tape *tape = tg_tape_new();
        tg_tensor *loss = cell_loss(tape, p, &L);
        if (!loss || tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "gradcheck_lesson: %s\n", tg_tape_error(tape));
            return 1;
        }
        /* the fewest digits that read back as the same double, as Python prints */
        double v = AT(p[WAA]->grad, 1, 2);
        int digits = 1;
        char text[32];
        while (snprintf(text, sizeof text, "%.*g", digits, v), strtod(text, NULL) != v)
            digits++;
        printf("   %-17s %s%s\n", kind == CORRECT ? "the correct rule" : "seed 004's rule", text,
               kind == CORRECT ? "" : " = Waa[1][2], the weight");
        tg_tape_free(tape);
    }

    for (int k = 0; k < N_CHECKED; k++)
        tg_tensor_free(p[k]);
    tg_tensor_free(Wya);
    tg_tensor_free(by);
    tg_tensor_free(L.da_next);
    return status;

failed:
    fprintf(stderr, "gradcheck_lesson: %s\n", tg_last_error());
    return 1;
}

/* ---- the custom op ------------------------------------------------------------------------ */

/* xt (n_x,m), a_prev (n_a,m), Wax (n_a,n_x), Waa (n_a,n_a), ba (n_a,1) -> a_next (n_a,m)
 * a_next = tanh(Waa a_prev + Wax xt + ba), in f64, as one tape entry. */
static tg_tensor *rnn_cell_op(tg_tape *tape, tg_tensor *xt, tg_tensor *a_prev, tg_tensor *Wax,
                              tg_tensor *Waa, tg_tensor *ba, backward_kind kind)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "rnn_cell", 5, xt, a_prev, Wax, Waa, ba))
        return NULL; /* NULL input, mixed dtypes or an errored tape */
    int64_t n_x = xt->shape[0], m = xt->shape[1], n_a = a_prev->shape[0];
    if (xt->ndim != 2 || a_prev->ndim != 2 || a_prev->shape[1] != m || Wax->ndim != 2 ||
        Wax->shape[0] != n_a || Wax->shape[1] != n_x || Waa->ndim != 2 ||
        Waa->shape[0] != n_a || Waa->shape[1] != n_a || ba->ndim != 2 ||
        ba->shape[0] != n_a || ba->shape[1] != 1)
        return tg_op_fail(&op, TG_ERR_SHAPE, "shapes do not fit a cell");
    if (xt->dtype != TG_F64)
        return tg_op_fail(&op, TG_ERR_DTYPE, "this lesson's op is written for f64");
    tg_tensor *a_next = tg_op_output(&op, TG_F64, TG_DIMS(n_a, m));
    if (!a_next)
        return NULL;
    for (int64_t i = 0; i < n_a; i++)
        for (int64_t j = 0; j < m; j++) {
            double z = AT(ba, i, 0);
            for (int64_t k = 0; k < n_a; k++)
                z += AT(Waa, i, k) * AT(a_prev, k, j);
            for (int64_t k = 0; k < n_x; k++)
                z += AT(Wax, i, k) * AT(xt, k, j);
            tg_tensor_set(a_next, (int64_t[]){i, j}, tanh(z));
        }
    /* Backward needs a_next (the entry's output) and the inputs (the
     * entry's inputs): nothing else to save, but which rule to apply. */
    tg_entry *e = tg_op_record(&op, rnn_cell_op_backward, a_next);
    if (e)
        e->ints[0] = kind;
    return tg_op_finish(&op, a_next);
}

/* The course's rnn_cell_backward, adding (+=) into whichever inputs need a
 * gradient (tg_grad_in is NULL for the others):
 *     dtanh = da_next * (1 - a_next^2)
 *     dxt = Wax^T dtanh   da_prev = Waa^T dtanh
 *     dWax = dtanh xt^T   dWaa = dtanh a_prev^T   dba = sum over the batch of dtanh */
static void rnn_cell_op_backward(tg_tape *tape, const tg_entry *e)
{
    const tg_tensor *da_next = tg_grad_out(e->out[0]), *a_next = e->out[0];
    const tg_tensor *xt = e->in[0], *a_prev = e->in[1], *Wax = e->in[2], *Waa = e->in[3];
    if (!da_next)
        return;
    int64_t n_x = xt->shape[0], m = xt->shape[1], n_a = a_prev->shape[0];
    tg_tensor *dtanh = tg_tape_tensor(tape, TG_F64, TG_DIMS(n_a, m));
    tg_tensor *dxt = tg_grad_in(tape, xt), *da_prev = tg_grad_in(tape, a_prev);
    tg_tensor *dWax = tg_grad_in(tape, Wax), *dWaa = tg_grad_in(tape, Waa);
    tg_tensor *dba = tg_grad_in(tape, e->in[4]);
    if (!dtanh || tg_tape_status(tape) != TG_OK)
        return; /* out of memory: the error is on the tape */
    for (int64_t i = 0; i < n_a; i++)
        for (int64_t j = 0; j < m; j++) {
            int64_t ij[2] = {i, j};
            double a = tg_tensor_get(a_next, ij);
            tg_tensor_set(dtanh, ij, tg_tensor_get(da_next, ij) * (1 - a * a));
        }
    for (int64_t i = 0; i < n_a; i++)
        for (int64_t j = 0; j < m; j++) {
            double d = AT(dtanh, i, j);
            for (int64_t k = 0; dxt && k < n_x; k++)
                add_at(dxt, k, j, AT(Wax, i, k) * d);
            for (int64_t k = 0; da_prev && k < n_a; k++)
                add_at(da_prev, k, j, AT(Waa, i, k) * d);
            for (int64_t k = 0; dWax && k < n_x; k++)
                add_at(dWax, i, k, d * AT(xt, k, j));
            for (int64_t k = 0; dWaa && e->ints[0] == CORRECT && k < n_a; k++)
                add_at(dWaa, i, k, d * AT(a_prev, k, j));
            if (dba)
                add_at(dba, i, 0, d);
        }
    /* Seed 004's bug: "dW_aa": W_aa hands back the weight as its gradient. */
    for (int64_t i = 0; dWaa && e->ints[0] == BUG_004 && i < n_a; i++)
        for (int64_t k = 0; k < n_a; k++)
            add_at(dWaa, i, k, AT(Waa, i, k));
}

/* np.random.randn(rows, cols), named for the messages; checked tensors get a gradient. */
static tg_tensor *named(tg_rng *rng, const char *name, int64_t rows, int64_t cols,
                        bool checked)
{
    tg_tensor *t = tg_tensor_randn(rng, TG_F64, TG_DIMS(rows, cols));
    if (!t) {
        fprintf(stderr, "gradcheck_lesson: %s\n", tg_last_error());
        exit(1);
    }
    t->name = name;
    tg_tensor_requires_grad(t, checked);
    return t;
}
