/* soak: a long training run that watches its own memory.
 *
 *     soak                      100,000 steps, a reading every 10,000 (make soak)
 *     soak --steps 1000000 --every 100000 --path tape
 *
 * An LSTM (16 inputs, 32 units, batch 8, 16 steps) with a linear head learns
 * to repeat the previous symbol of a random sequence, with cross-entropy,
 * gradient clipping and Adam: every piece of a training step, at a shape
 * small enough that a step takes well under a millisecond. Every --every
 * steps it prints the resident memory of /proc/self/status: VmRSS, and its
 * two parts, RssAnon (heap, stacks, the tape's arena: what a leak grows) and
 * RssFile (pages of the program and of libc and libm, mapped in 64 kB at a
 * time when a code path first runs, such as libm's underflow handling once
 * the loss nears 0). The first reading is the warm-up (the arena, the thread
 * pool and its scratch buffers have grown to their size by then); every
 * later RssAnon reading must stay within 1 % of it, otherwise memory grows
 * with the step count and soak exits with status 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tapegrad.h"

enum { V = 16, N_A = 32, M = 8, T_X = 16 };

static long status_kb(const char *field);

int main(int argc, char **argv)
{
    int steps = 100000, every = 0, path = TG_PATH_FUSED, threads = 0, seed = 1;
    double tolerance = 1.0;
    static const cli_choice paths[] = {{"tape", TG_PATH_TAPE}, {"fused", TG_PATH_FUSED}, {NULL, 0}};
    const cli_option table[] = {
        CLI_INTEGER("--steps", &steps, 1, 1000000000),
        CLI_INTEGER("--every", &every, 1, 1000000000),
        CLI_ONE_OF("--path", &path, paths),
        CLI_INTEGER("--threads", &threads, 1, TG_MAX_THREADS),
        CLI_INTEGER("--seed", &seed, 0, 2147483647),
        CLI_NUMBER("--tolerance", &tolerance, 0, 100),
    };
    char message[256];
    switch (cli_parse(table, (int)(sizeof table / sizeof table[0]), argc, argv, NULL, message,
                      sizeof message)) {
    case CLI_OK:
        break;
    case CLI_HELP:
        printf("usage: soak [--steps N (100000)] [--every N (steps / 10)] [--path tape|fused]\n"
               "            [--threads N] [--seed N] [--tolerance PERCENT (1)]\n");
        return 0;
    case CLI_ERROR:
    case CLI_UNKNOWN:
        fprintf(stderr, "soak: %s\n", message);
        return 2;
    }
    if (threads > 0)
        tg_set_num_threads(threads);
    if (every == 0) /* ten readings */
        every = steps >= 10 ? steps / 10 : 1;

    tg_rng rng;
    tg_rng_seed(&rng, (uint32_t)seed);
    tg_recurrent *rnn = tg_recurrent_new(TG_CELL_LSTM, V, N_A, TG_F32, NULL, &rng);
    tg_linear *head = tg_linear_new(N_A, V, TG_F32, "Wy", "by", TG_INIT_XAVIER, &rng);
    tg_params params = {0};
    if (!rnn || !head || tg_params_extend(&params, NULL, &rnn->params) != TG_OK ||
        tg_params_extend(&params, NULL, &head->params) != TG_OK) {
        fprintf(stderr, "soak: %s\n", tg_last_error());
        return 1;
    }
    tg_adam_options ao = tg_adam_defaults(3e-3);
    tg_adam *opt = tg_adam_new(&params, &ao);
    tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(V, M, T_X)); /* one-hot symbols */
    int32_t targets[M * T_X];
    tg_tape *tape = tg_tape_new();
    if (!opt || !x || !tape) {
        fprintf(stderr, "soak: %s\n", tg_last_error());
        return 1;
    }
    printf("soak: LSTM %d -> %d, batch %d x %d steps, %s path, %d thread%s, %d steps\n", V, N_A,
           M, T_X, path == TG_PATH_FUSED ? "fused" : "tape", tg_get_num_threads(),
           tg_get_num_threads() == 1 ? "" : "s", steps);
    printf("%10s %10s %12s %12s %12s %12s\n", "step", "loss", "VmRSS (kB)", "RssAnon", "RssFile",
           "anon vs warm-up");
    printf("%10d %10s %12ld %12ld %12ld %12s\n", 0, "-", status_kb("VmRSS:"), status_kb("RssAnon:"),
           status_kb("RssFile:"), "-");

    long warm = -1, worst = 0;
    double loss_sum = 0;
    uint64_t t0 = tg_clock_ns();
    for (int step = 1; step <= steps; step++) {
        tg_tensor_fill(x, 0.0);
        for (int s = 0; s < M; s++)
            for (int t = 0, before = 0; t < T_X; t++) {
                int symbol = (int)tg_rng_below(&rng, V);
                tg_tensor_set(x, (int64_t[]){symbol, s, t}, 1.0);
                targets[s * T_X + t] = before;
                before = symbol;
            }
        tg_tape_reset(tape);
        tg_params_zero_grad(&params);
        tg_tensor *a = tg_recurrent_forward(tape, rnn, x, NULL, path, NULL);
        tg_tensor *logits = tg_linear_forward(tape, head, a); /* (V, M, T_X) */
        tg_tensor *loss = tg_cross_entropy(tape, logits, 0, targets, M * T_X, TG_REDUCE_MEAN);
        if (tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "soak: step %d: %s\n", step, tg_tape_error(tape));
            return 1;
        }
        tg_clip_grad_norm(&params, 5.0, NULL);
        if (tg_adam_step(opt, tape) != TG_OK) {
            fprintf(stderr, "soak: step %d: %s\n", step, tg_last_error());
            return 1;
        }
        loss_sum += tg_tensor_item(loss);
        if (step % every == 0) {
            long anon = status_kb("RssAnon:");
            if (warm < 0)
                warm = anon;
            long growth = anon - warm;
            if (labs(growth) > labs(worst))
                worst = growth;
            printf("%10d %10.4f %12ld %12ld %12ld %+14.2f%%\n", step, loss_sum / every,
                   status_kb("VmRSS:"), anon, status_kb("RssFile:"),
                   warm > 0 ? 100.0 * (double)growth / (double)warm : 0.0);
            fflush(stdout);
            loss_sum = 0;
        }
    }
    double seconds = (double)(tg_clock_ns() - t0) / 1e9;
    printf("soak: %d steps in %.1f s (%.1f us per step); arena %zu bytes reserved\n", steps,
           seconds, 1e6 * seconds / steps, tg_tape_bytes_reserved(tape));

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_adam_free(opt);
    tg_params_clear(&params);
    tg_recurrent_free(rnn);
    tg_linear_free(head);
    if (warm <= 0) {
        printf("soak: no reading after warm-up (RssAnon unavailable, or --steps < --every)\n");
        return 0;
    }
    double percent = 100.0 * (double)worst / (double)warm;
    int flat = fabs(percent) <= tolerance;
    printf("soak: largest change of RssAnon after warm-up %+ld kB (%+.2f %%): %s\n", worst, percent,
           flat ? "flat" : "MEMORY GROWS");
    return flat ? 0 : 1;
}

/* A line of /proc/self/status in kB ("VmRSS:", ...), or -1 where missing. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0) {
            kb = strtol(line + strlen(field), NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}
