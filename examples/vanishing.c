/* vanishing: why LSTM. A task that needs a long memory, an RNN and an LSTM.
 *
 *     vanishing                      T = 5, 20 and 50; writes build/vanishing.svg
 *     vanishing --lengths 50 --steps 300 --svg /tmp/v.svg
 *
 * The network reads T random symbols (one of 4, one-hot) and must report
 * the FIRST one after reading the last: everything in between is noise to
 * be ignored. Guessing scores 25 %. The loss looks only at the last step,
 * so the only way for the error to teach step 1 anything is the gradient
 * d loss / d a_t flowing back through all T steps.
 *
 * In an RNN that gradient is multiplied at every step by Waa^T and by
 * tanh' <= 1; with the usual small weights it shrinks geometrically, and
 * after 50 steps nothing is left to learn from. The LSTM's cell state is
 * updated additively, c_t = f * c_{t-1} + i * cc, so where the forget gate f
 * stays near 1 the gradient passes back almost unchanged.
 *
 * Both cells have the same hidden size and train with the same Adam; the
 * program prints the accuracy per T and cell, the norm of d loss / d a_t for
 * every step t (before and after training, at the longest T), and plots
 * those norms on a log axis. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "svg.h"
#include "tapegrad.h"

enum { N_SYM = 4, MAX_LENGTHS = 8, MAX_T = 200, EVAL_M = 512 };

typedef struct {
    int lengths[MAX_LENGTHS], n_lengths;
    int hidden, batch, steps;
    double lr, forget_bias;
    uint32_t seed;
    const char *svg;
} options;

typedef struct {
    tg_recurrent *rnn;
    tg_linear *head; /* logits (N_SYM, m) from the last hidden state */
    tg_params params;
} model;

static options parse_options(int argc, char **argv);
static model *model_new(tg_cell cell, const options *o, tg_rng *rng);
static void model_free(model *mo);
static void make_batch(tg_rng *rng, tg_tensor *x, int32_t *first);
static tg_tensor *loss_fused(tg_tape *tape, const model *mo, tg_tensor *x, const int32_t *first);
static double accuracy(tg_tape *tape, const model *mo, tg_rng *rng, int T);
static void gradient_norms(tg_tape *tape, const model *mo, tg_rng *rng, int T, double *norms);
static void fail(const char *what);

int main(int argc, char **argv)
{
    options o = parse_options(argc, argv);
    const tg_cell cells[2] = {TG_CELL_RNN, TG_CELL_LSTM};
    int T_long = o.lengths[o.n_lengths - 1];
    double norms[2][2][MAX_T]; /* [cell][before, after training][t] */
    double acc[2][MAX_LENGTHS];
    tg_tape *tape = tg_tape_new();

    printf("vanishing: report the first of T random symbols (%d kinds) after the last; "
           "guessing scores %.0f%%\n",
           N_SYM, 100.0 / N_SYM);
    printf("hidden %d, batch %d, %d Adam steps (lr %g), LSTM forget bias %g; accuracy on %d "
           "fresh sequences\n\n",
           o.hidden, o.batch, o.steps, o.lr, o.forget_bias, EVAL_M);
    printf("%4s  %-5s %9s %11s %8s\n", "T", "cell", "accuracy", "final loss", "time");
    for (int k = 0; k < o.n_lengths; k++) {
        int T = o.lengths[k];
        for (int c = 0; c < 2; c++) {
            uint64_t start = tg_clock_ns();
            /* two generators, so that both cells see the same batches and the
             * same test although their weights take different numbers of draws */
            tg_rng init, rng;
            tg_rng_seed(&init, o.seed);
            tg_rng_seed(&rng, o.seed + 1);
            model *mo = model_new(cells[c], &o, &init);
            tg_adam_options adam = tg_adam_defaults(o.lr);
            tg_adam *opt = tg_adam_new(&mo->params, &adam);
            tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(N_SYM, o.batch, T));
            int32_t *first = malloc(sizeof *first * (size_t)o.batch);
            if (!opt || !x || !first)
                fail(tg_last_error());
            if (T == T_long)
                gradient_norms(tape, mo, &rng, T, norms[c][0]);
            double loss_value = 0;
            for (int step = 0; step < o.steps; step++) {
                make_batch(&rng, x, first);
                tg_tape_reset(tape);
                tg_params_zero_grad(&mo->params);
                tg_tensor *loss = loss_fused(tape, mo, x, first);
                if (!loss || tg_backward(tape, loss) != TG_OK)
                    fail(tg_tape_error(tape));
                /* an occasional huge RNN gradient (the other face of the same
                 * product of Jacobians) must not throw the weights away */
                tg_clip_grad_norm(&mo->params, 1.0, NULL);
                if (tg_adam_step(opt, tape) != TG_OK)
                    fail(tg_last_error());
                loss_value = tg_tensor_item(loss);
            }
            acc[c][k] = accuracy(tape, mo, &rng, T);
            if (T == T_long)
                gradient_norms(tape, mo, &rng, T, norms[c][1]);
            printf("%4d  %-5s %8.1f%% %11.3f %7.1fs\n", T, tg_cell_name(cells[c]),
                   100 * acc[c][k], loss_value, (double)(tg_clock_ns() - start) / 1e9);
            fflush(stdout);
            free(first);
            tg_tensor_free(x);
            tg_adam_free(opt);
            model_free(mo);
        }
    }

    /* How much of the gradient reaches step t, at the longest T. */
    printf("\n|d loss / d a_t| at T = %d (the loss reads only a_%d), on a fresh batch:\n", T_long,
           T_long);
    printf("%5s %13s %13s %13s %13s\n", "t", "rnn, init", "rnn, trained", "lstm, init",
           "lstm, trained");
    for (int t = T_long; t >= 1; t--)
        if (t == T_long || t == 1 || t % (T_long >= 20 ? 10 : 1) == 0)
            printf("%5d %13.3g %13.3g %13.3g %13.3g\n", t, norms[0][0][t - 1],
                   norms[0][1][t - 1], norms[1][0][t - 1], norms[1][1][t - 1]);
    printf("after training, |d loss / d a_1| / |d loss / d a_%d| = %.2g (rnn), %.2g (lstm)\n",
           T_long, norms[0][1][0] / norms[0][1][T_long - 1],
           norms[1][1][0] / norms[1][1][T_long - 1]);

    double steps[MAX_T];
    for (int t = 0; t < T_long; t++)
        steps[t] = t + 1;
    char title[128];
    snprintf(title, sizeof title, "|d loss / d a_t|, T = %d: how much gradient reaches step t",
             T_long);
    svg_chart chart = {title, "time step t", "gradient norm (log scale)", 1};
    svg_series series[4] = {
        {"RNN, untrained", "#f4a582", steps, norms[0][0], T_long, 0},
        {"RNN, trained", "#ca0020", steps, norms[0][1], T_long, 0},
        {"LSTM, untrained", "#92c5de", steps, norms[1][0], T_long, 0},
        {"LSTM, trained", "#0571b0", steps, norms[1][1], T_long, 0},
    };
    if (svg_write(o.svg, &chart, series, 4) != 0)
        fprintf(stderr, "vanishing: cannot write '%s'\n", o.svg);
    else
        printf("wrote %s\n", o.svg);

    int last = o.n_lengths - 1;
    printf("\nat T = %d: lstm %.1f%%, rnn %.1f%%: %s\n", T_long, 100 * acc[1][last],
           100 * acc[0][last],
           acc[1][last] > acc[0][last] ? "the LSTM remembers, the RNN does not"
                                       : "no difference this time (more steps?)");
    tg_tape_free(tape);
    return 0;
}

/* ---- the task ------------------------------------------------------------------------------ */

/* x (N_SYM, m, T) one-hot random symbols; first[s] = the symbol at t = 0. */
static void make_batch(tg_rng *rng, tg_tensor *x, int32_t *first)
{
    int64_t m = x->shape[1], T = x->shape[2];
    tg_tensor_fill(x, 0.0);
    for (int64_t s = 0; s < m; s++)
        for (int64_t t = 0; t < T; t++) {
            int32_t symbol = (int32_t)tg_rng_below(rng, N_SYM);
            tg_tensor_set(x, (int64_t[]){symbol, s, t}, 1.0);
            if (t == 0)
                first[s] = symbol;
        }
}

/* x (N_SYM, m, T) -> logits (N_SYM, m) of the last step, through the fused layer */
static tg_tensor *logits_fused(tg_tape *tape, const model *mo, tg_tensor *x)
{
    tg_state final;
    if (!tg_recurrent_forward(tape, mo->rnn, x, NULL, TG_PATH_FUSED, &final))
        return NULL;
    return tg_linear_forward(tape, mo->head, final.a);
}

static tg_tensor *loss_fused(tg_tape *tape, const model *mo, tg_tensor *x, const int32_t *first)
{
    return tg_cross_entropy(tape, logits_fused(tape, mo, x), 0, first, x->shape[1],
                            TG_REDUCE_MEAN);
}

/* Share of EVAL_M fresh sequences whose first symbol the model reports. */
static double accuracy(tg_tape *tape, const model *mo, tg_rng *rng, int T)
{
    tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(N_SYM, EVAL_M, T));
    int32_t first[EVAL_M];
    if (!x)
        fail(tg_last_error());
    make_batch(rng, x, first);
    tg_tape_reset(tape);
    bool was = tg_tape_no_grad(tape, true); /* evaluation: record nothing */
    tg_tensor *logits = logits_fused(tape, mo, x);
    tg_tape_no_grad(tape, was);
    if (!logits)
        fail(tg_tape_error(tape));
    int right = 0;
    for (int64_t s = 0; s < EVAL_M; s++) {
        int best = 0;
        for (int v = 1; v < N_SYM; v++)
            if (tg_tensor_get(logits, (int64_t[]){v, s}) >
                tg_tensor_get(logits, (int64_t[]){best, s}))
                best = v;
        right += best == first[s];
    }
    tg_tensor_free(x);
    return (double)right / EVAL_M;
}

/* ---- measuring d loss / d a_t ---------------------------------------------------------------
 * The fused layer hides the states between its first and last step, so the
 * measurement unrolls the same layer one step at a time on the tape and adds
 * a zero "probe" tensor to every state: a_t + 0 changes nothing, and the
 * gradient that backward leaves in the probe is exactly d loss / d a_t. */

typedef struct {
    const tg_recurrent *rnn;
    tg_tensor **probe;
    int t;
} probed;

static tg_status probed_step(tg_tape *tape, void *ctx, tg_tensor *xt, const tg_state *prev,
                             tg_state *next)
{
    probed *p = ctx;
    tg_status status = tg_recurrent_step(tape, p->rnn, 0, xt, prev, next);
    if (status != TG_OK)
        return status;
    next->a = tg_add(tape, next->a, p->probe[p->t++]);
    return next->a ? TG_OK : tg_tape_status(tape);
}

/* norms[t] = |d loss / d a_{t+1}| (Frobenius, over the batch) */
static void gradient_norms(tg_tape *tape, const model *mo, tg_rng *rng, int T, double *norms)
{
    int64_t m = EVAL_M, n_a = mo->rnn->n_a;
    tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(N_SYM, m, T));
    tg_tensor *probe[MAX_T];
    int32_t first[EVAL_M];
    if (!x)
        fail(tg_last_error());
    for (int t = 0; t < T; t++) {
        probe[t] = tg_tensor_zeros(TG_F32, TG_DIMS(n_a, m));
        if (!probe[t] || tg_tensor_requires_grad(probe[t], true) != TG_OK)
            fail(tg_last_error());
    }
    make_batch(rng, x, first);
    tg_tape_reset(tape);
    probed ctx = {mo->rnn, probe, 0};
    tg_state init = {tg_tape_zeros(tape, TG_F32, TG_DIMS(n_a, m)), NULL}, final;
    tg_tensor *a = tg_unroll(tape, probed_step, &ctx, x, &init, &final);
    tg_tensor *logits = a ? tg_linear_forward(tape, mo->head, final.a) : NULL;
    tg_tensor *loss = tg_cross_entropy(tape, logits, 0, first, m, TG_REDUCE_MEAN);
    if (!loss || tg_backward(tape, loss) != TG_OK)
        fail(tg_tape_error(tape));
    for (int t = 0; t < T; t++) {
        double sum = 0;
        for (int64_t i = 0; i < n_a * m; i++) {
            double g = tg_tensor_get_flat(probe[t]->grad, i);
            sum += g * g;
        }
        norms[t] = sqrt(sum);
        tg_tensor_free(probe[t]);
    }
    /* the model's parameters received gradients too: leave them clean */
    tg_params_zero_grad(&mo->params);
    tg_tensor_free(x);
}

/* ---- the model ----------------------------------------------------------------------------- */

static model *model_new(tg_cell cell, const options *o, tg_rng *rng)
{
    model *mo = calloc(1, sizeof *mo);
    if (!mo)
        fail("out of memory");
    mo->rnn = tg_recurrent_new(cell, N_SYM, o->hidden, TG_F32, NULL, rng); /* PyTorch's init */
    mo->head = tg_linear_new(o->hidden, N_SYM, TG_F32, "Wy", "by", TG_INIT_XAVIER, rng);
    if (!mo->rnn || !mo->head)
        fail(tg_last_error());
    /* The LSTM starts out remembering: with bf = 3 every forget gate is near
     * sigmoid(3) = 0.95, so 0.95^50 = 8% of the gradient at step 50 reaches
     * step 1 through the cell state. The common bf = 1 (f = 0.73) lets only
     * 0.73^50 = 1e-7 through, and 400 steps are then not enough even for the
     * LSTM: try --forget-bias 1. */
    if (cell == TG_CELL_LSTM)
        tg_tensor_fill(tg_params_find(&mo->rnn->params, "l0.bf"), o->forget_bias);
    if (tg_params_extend(&mo->params, NULL, &mo->rnn->params) != TG_OK ||
        tg_params_extend(&mo->params, NULL, &mo->head->params) != TG_OK)
        fail(tg_last_error());
    return mo;
}

static void model_free(model *mo)
{
    tg_params_clear(&mo->params);
    tg_recurrent_free(mo->rnn);
    tg_linear_free(mo->head);
    free(mo);
}

static void fail(const char *what)
{
    fprintf(stderr, "vanishing: %s\n", what);
    exit(1);
}

/* ---- options --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: vanishing [--lengths 5,20,50] [--hidden N] [--batch N] [--steps N]\n"
               "                 [--lr X] [--forget-bias X] [--seed N] [--svg PATH]\n"
               "  defaults: hidden 32, batch 32, 400 steps, lr 0.003, forget bias 3, seed 1,\n"
               "  build/vanishing.svg\n");
}

/* "5,20,50" -> lengths; false (message says why) unless every item is an
 * integer in [1, MAX_T]. Items past MAX_LENGTHS are ignored. */
static bool parse_lengths(const char *list, options *o, char *message, size_t size)
{
    o->n_lengths = 0;
    for (const char *p = list; p && o->n_lengths < MAX_LENGTHS; p = strchr(p, ',')) {
        p += *p == ',';
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < 1 || v > MAX_T) {
            snprintf(message, size, "--lengths needs integers in [1, %d] (got '%s')", MAX_T, p);
            return false;
        }
        o->lengths[o->n_lengths++] = (int)v;
    }
    return true;
}

/* A bad option prints why (and the usage when the option is unknown) and
 * exits with status 2; --help prints the usage and exits with 0. */
static options parse_options(int argc, char **argv)
{
    options o = {.lengths = {5, 20, 50}, .n_lengths = 3, .hidden = 32, .batch = 32,
                 .steps = 400, .lr = 3e-3, .forget_bias = 3.0, .seed = 1, .svg = "build/vanishing.svg"};
    int seed = (int)o.seed;
    const char *lengths = NULL, *extra = NULL;
    const cli_option table[] = {
        CLI_TEXT("--lengths", &lengths), /* e.g. 5,20,50; the last one is plotted */
        CLI_INTEGER("--hidden", &o.hidden, 1, 1024),
        CLI_INTEGER("--batch", &o.batch, 1, 4096),
        CLI_INTEGER("--steps", &o.steps, 0, 100000),
        CLI_INTEGER("--seed", &seed, 0, 1 << 30),
        CLI_NUMBER("--forget-bias", &o.forget_bias, -20, 20),
        CLI_NUMBER("--lr", &o.lr, 1e-6, 1),
        CLI_TEXT("--svg", &o.svg),
    };
    char message[256];
    cli_status s = cli_parse(table, (int)(sizeof table / sizeof table[0]), argc, argv, &extra,
                             message, sizeof message);
    if (s == CLI_OK && extra) {
        snprintf(message, sizeof message, "unknown option '%s'", extra);
        s = CLI_UNKNOWN;
    }
    if (s == CLI_OK && lengths && !parse_lengths(lengths, &o, message, sizeof message))
        s = CLI_ERROR;
    int status = cli_exit_status(s, "vanishing", message, usage);
    if (status >= 0)
        exit(status);
    o.seed = (uint32_t)seed;
    return o;
}
