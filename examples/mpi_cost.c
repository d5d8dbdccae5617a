/* mpi_cost: the cost model of data-parallel training (char_lm --mpi) on N
 * machines, for make run's model and for bench's lstm-l: the parameters P,
 * what one step's allreduce sends, the step's compute measured here, and
 * the N at which a 10 Gbit/s and a 100 Gbit/s network stop paying.
 *
 *     build/examples/mpi_cost                      measure one step of each model here
 *     build/examples/mpi_cost --threads 2 --steps 5
 *     build/examples/mpi_cost --step-ms 34,302     take the step times instead (make run, lstm-l)
 *
 * The model. The global batch B stays as it is and N machines take B/N
 * streams each (char_lm --mpi), so a machine computes C/N per step, C being
 * one machine's step. Then a ring allreduce sums the S = 4P bytes of f32
 * gradients: each machine sends 2(N-1)/N * S bytes and receives as many,
 * in 2(N-1)/N * S / W seconds at W bytes per second (char_lm sums after the
 * backward, so nothing overlaps). The network stops paying when the sum
 * takes longer than the compute it saves, 2(N-1) S / W > C, that is for
 * N > 1 + C W / (2S): past that point more than half of every machine's
 * step is communication, and however many machines there are the step
 * never drops below 2S / W. Left out: the latency of the 2(N-1) messages
 * (microseconds each, against milliseconds of transfer here) and the
 * lower efficiency of small per-machine batches; both make the real N
 * smaller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "char_lm_options.h"
#include "tapegrad.h"

typedef struct {
    const char *name;
    int cell, layers, n_x, n_a, n_y, m, T;
    bool embedded; /* ids through an embedding (char_lm) or a dense input (bench) */
} config;

typedef struct {
    tg_embedding *embed;
    tg_recurrent *rnn;
    tg_linear *head;
    tg_params params;
    tg_tensor *x; /* dense input, or NULL */
    int32_t *ids, *targets;
} model;

static void model_free(model *md)
{
    tg_embedding_free(md->embed);
    tg_recurrent_free(md->rnn);
    tg_linear_free(md->head);
    tg_params_clear(&md->params);
    tg_tensor_free(md->x);
    free(md->ids);
    free(md->targets);
}

/* The model of c with random inputs and targets; packed, as char_lm's. */
static int model_init(model *md, const config *c)
{
    memset(md, 0, sizeof *md);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_recurrent_options ro = tg_recurrent_defaults();
    ro.num_layers = c->layers;
    size_t n = (size_t)c->m * (size_t)c->T;
    md->embed = c->embedded ? tg_embedding_new(c->n_y, c->n_x, TG_F32, TG_INIT_PYTORCH, &rng)
                            : NULL;
    md->x = c->embedded ? NULL : tg_tensor_randn(&rng, TG_F32, TG_DIMS(c->n_x, c->m, c->T));
    md->rnn = tg_recurrent_new(c->cell, c->n_x, c->n_a, TG_F32, &ro, &rng);
    md->head = tg_linear_new(c->n_a, c->n_y, TG_F32, "W", "b", TG_INIT_PYTORCH, &rng);
    md->ids = malloc(n * sizeof *md->ids);
    md->targets = malloc(n * sizeof *md->targets);
    if ((!md->embed && !md->x) || !md->rnn || !md->head || !md->ids || !md->targets ||
        (md->embed && tg_params_extend(&md->params, "embed.", &md->embed->params)) ||
        tg_params_extend(&md->params, "rnn.", &md->rnn->params) ||
        tg_params_extend(&md->params, "head.", &md->head->params) ||
        tg_params_pack(&md->params))
        return -1;
    for (size_t i = 0; i < n; i++) {
        md->ids[i] = (int32_t)tg_rng_below(&rng, (uint64_t)c->n_y);
        md->targets[i] = (int32_t)tg_rng_below(&rng, (uint64_t)c->n_y);
    }
    return 0;
}

/* Milliseconds per training step (forward, backward, clipping, Adam; fused
 * path), the mean of `steps` after one warm-up step; negative on error. */
static double time_step(model *md, const config *c, int steps)
{
    tg_adam_options ao = tg_adam_defaults(1e-3);
    tg_adam *opt = tg_adam_new(&md->params, &ao);
    tg_tape *tape = tg_tape_new();
    uint64_t t0 = 0;
    bool ok = opt && tape;
    for (int s = -1; ok && s < steps; s++) {
        if (s == 0)
            t0 = tg_clock_ns();
        tg_tape_reset(tape);
        tg_params_zero_grad(&md->params);
        tg_tensor *x = md->x ? md->x : tg_embedding_forward(tape, md->embed, md->ids, c->m, c->T);
        tg_tensor *h = tg_recurrent_forward(tape, md->rnn, x, NULL, TG_PATH_FUSED, NULL);
        tg_tensor *loss = tg_cross_entropy(tape, tg_linear_forward(tape, md->head, h), 0,
                                           md->targets, (int64_t)c->m * c->T, TG_REDUCE_MEAN);
        ok = loss && tg_backward(tape, loss) == TG_OK &&
             tg_clip_grad_norm(&md->params, 1.0, NULL) == TG_OK &&
             tg_adam_step(opt, tape) == TG_OK;
    }
    double ms = ok ? (double)(tg_clock_ns() - t0) / 1e6 / steps : -1;
    if (!ok)
        fprintf(stderr, "mpi_cost: %s: %s\n", c->name, tape ? tg_tape_error(tape) : "no tape");
    tg_tape_free(tape);
    tg_adam_free(opt);
    return ms;
}

/* The largest N at which the allreduce takes no longer than the compute. */
static long paying_n(double C, double S, double W) { return (long)(1 + C * W / (2 * S)); }

/* Step time on n machines over the step time on one. */
static double speedup(double C, double S, double W, double n)
{
    return C / (C / n + 2 * (n - 1) / n * S / W);
}

static void print_networks(const config *c, double P, double C_ms)
{
    static const double gbits[2] = {10, 100};
    double S = 4 * P, C = C_ms / 1e3;
    for (int k = 0; k < 2; k++) {
        double W = gbits[k] * 1e9 / 8;
        long n = paying_n(C, S, W);
        printf("  %3.0f Gbit/s: allreduce %.2f ms at N = 2, %.2f ms as N grows; stops paying "
               "after N = %ld (speedup %.1f there, never above %.1f)", gbits[k], S / W * 1e3,
               2 * S / W * 1e3, n, speedup(C, S, W, (double)n), C / (2 * S / W));
        if (n > c->m) /* each machine needs a stream */
            printf("; the batch of %d streams stops it at N = %d (speedup %.1f)", c->m, c->m,
                   speedup(C, S, W, c->m));
        printf("\n");
    }
}

static int usage(const char *why)
{
    fprintf(stderr, "mpi_cost: %s\nusage: mpi_cost [--threads N] [--steps N] "
            "[--step-ms RUN,LSTM_L] [text-file (char_lm's; its vocabulary sizes make run's "
            "model)]\n", why);
    return 2;
}

int main(int argc, char **argv)
{
    int threads = 0, steps = 3;
    const char *given = NULL, *text_path = "examples/data/tinyshakespeare.txt";
    const cli_option table[] = {CLI_INTEGER("--threads", &threads, 1, TG_MAX_THREADS),
                                CLI_INTEGER("--steps", &steps, 1, 1000),
                                CLI_TEXT("--step-ms", &given)};
    char message[256];
    if (cli_parse(table, 3, argc, argv, &text_path, message, sizeof message) != CLI_OK)
        return usage(message[0] ? message : "options");
    double step_ms[2] = {0, 0};
    if (given && sscanf(given, "%lf,%lf", &step_ms[0], &step_ms[1]) != 2)
        return usage("--step-ms needs two times in milliseconds, e.g. 34,302");
    if (threads > 0)
        tg_set_num_threads(threads);
    /* make run's model: char_lm's defaults on its text; lstm-l as examples/bench.c's */
    char_lm_options o;
    char_lm_parse(1, argv, &o, message, sizeof message);
    tg_text *text = tg_text_load(text_path);
    if (!text) {
        fprintf(stderr, "mpi_cost: %s\n", tg_last_error());
        return 1;
    }
    const config configs[2] = {
        {"make run", o.cell, o.layers, o.embed, o.hidden, text->vocab_size, o.batch, o.seq, true},
        {"lstm-l", TG_CELL_LSTM, 1, 512, 512, 512, 64, 100, false}};
    tg_text_free(text);
    printf("data-parallel cost of one training step (f32, ring allreduce, the global batch "
           "split over N machines)%s\n", given ? "" : "; step times measured here");
    for (int i = 0; i < 2; i++) {
        const config *c = &configs[i];
        model md;
        if (model_init(&md, c) != 0) {
            fprintf(stderr, "mpi_cost: %s: %s\n", c->name, tg_last_error());
            model_free(&md);
            return 1;
        }
        double P = (double)tg_params_numel(&md.params);
        double C = given ? step_ms[i] : time_step(&md, c, steps);
        model_free(&md);
        if (!(C > 0))
            return 1;
        char how[32];
        snprintf(how, sizeof how, given ? "given" : "%d thread%s", tg_get_num_threads(),
                 tg_get_num_threads() == 1 ? "" : "s");
        printf("%s (%s %d -> %d -> %d, batch %d x %d): P = %.0f parameters, S = 4P = %.2f MB; "
               "per step a machine sends and receives 2(N-1)/N S = %.2f MB at N = 2, up to "
               "%.2f MB; one machine's step C = %.1f ms (%s)\n",
               c->name, tg_cell_name(c->cell), c->n_x, c->n_a, c->n_y, c->m, c->T, P,
               4 * P / 1e6, 4 * P / 1e6, 8 * P / 1e6, C, how);
        print_networks(c, P, C);
    }
    return 0;
}
