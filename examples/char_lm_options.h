/* char_lm's options: defaults, the table for cli_parse (cli.h), the usage
 * text and the checks that tie options together. Apart from char_lm.c so
 * that the fuzz target tests/fuzz/fuzz_cli.c parses exactly what char_lm
 * parses. */
#ifndef TG_EXAMPLES_CHAR_LM_OPTIONS_H
#define TG_EXAMPLES_CHAR_LM_OPTIONS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tapegrad.h"

/* What happens after a step with a non-finite loss or gradient, or a loss
 * above --max-loss (the update is refused in every case, so parameters never
 * hold NaN or Inf). */
typedef enum {
    ON_NONFINITE_STOP,   /* report and stop (exit status 1, nothing saved) */
    ON_NONFINITE_SKIP,   /* report, drop the batch, go on */
    ON_NONFINITE_RESTORE /* report, roll back to the last snapshot, halve the rate, go on */
} on_nonfinite;

typedef struct {
    const char *data, *resume, *save, *load, *svg, *prompt;
    int cell, path, dtype; /* tg_cell, tg_path, tg_dtype */
    int layers, hidden, embed, seq, batch, steps, stop_after, threads, length;
    int print_every, sample_every, eval_every, eval_batches;
    int on_nonfinite, snapshot_every, max_faults, anomaly;
    double lr, clip, temperature, warmup, max_loss;
    int seed;
    int sample_mode, dinos, mpi;
} char_lm_options;

/* Largest accepted sizes: far above anything useful, small enough that the
 * checks of the library (not an overflow) decide what fits in memory. */
enum { CHAR_LM_MAX_LAYERS = 16, CHAR_LM_MAX_WIDTH = 8192, CHAR_LM_MAX_SEQ = 100000 };

static inline void char_lm_usage(FILE *f)
{
    fprintf(f,
            "usage: char_lm [options] [text-file]\n"
            "  --cell rnn|lstm|gru   recurrent cell (lstm)\n"
            "  --layers N            stacked layers (1)\n"
            "  --hidden N            hidden units per layer (256)\n"
            "  --embed N             embedding size (64)\n"
            "  --seq N               characters per sequence, the BPTT length (64)\n"
            "  --batch N             sequences per batch (32)\n"
            "  --steps N             training steps (3500)\n"
            "  --stop-after N        stop (and save) after step N, as if interrupted\n"
            "  --lr X                peak learning rate of Adam (0.003)\n"
            "  --clip X              clip gradients to this global norm, 0 = off (1.0)\n"
            "  --path tape|fused     gradients through the tape or the fused kernels (fused)\n"
            "  --dtype f32|f64       the model's numbers (f32)\n"
            "  --threads N           worker threads (TG_NUM_THREADS or all CPUs)\n"
            "  --seed N              random seed (1)\n"
            "  --save PATH           checkpoint written at the end (build/char_lm.ckpt)\n"
            "  --resume PATH         continue training from a checkpoint\n"
            "  --svg PATH            loss curve (build/char_lm_loss.svg)\n"
            "  --print-every N, --sample-every N, --eval-every N   (50, 500, 500)\n"
            "  --on-nonfinite stop|skip|restore\n"
            "                        a step whose loss or gradient is NaN or Inf, or whose\n"
            "                        loss exceeds --max-loss, is never applied; then stop,\n"
            "                        skip the batch (the default), or restore the last\n"
            "                        snapshot and halve the learning rate\n"
            "  --max-loss X          loss per character that means divergence, 0 = off (100)\n"
            "  --snapshot-every N    steps between in-memory snapshots for restore (100)\n"
            "  --max-faults N        stop after N such steps in a row (10)\n"
            "  --anomaly             check every op for NaN/Inf (slower; faults are always\n"
            "                        diagnosed by replaying the step in anomaly mode)\n"
            "  --sample              generate text from --load PATH instead of training\n"
            "  --prompt TEXT, --length N, --temperature X   for samples (\"\\n\", 400, 0.8)\n"
            "  --dinos               the course's Dinosaurus Island: vanilla RNN, 50 units,\n"
            "                        value clipping at 5, SGD, one name per step\n"
            "  --mpi                 data-parallel training, one replica per MPI rank, each\n"
            "                        on --batch / ranks streams (make mpi; mpirun -np N\n"
            "                        build/mpi/char_lm --mpi ...)\n");
}

/* Fill *o from argv. CLI_OK, CLI_HELP, or CLI_ERROR with the reason in
 * message (without the "char_lm: " prefix). */
static inline cli_status char_lm_parse(int argc, char *const *argv, char_lm_options *o,
                                       char *message, size_t size)
{
    *o = (char_lm_options){
        .data = "examples/data/tinyshakespeare.txt", .save = "build/char_lm.ckpt",
        .svg = "build/char_lm_loss.svg", .prompt = "\n", .cell = TG_CELL_LSTM, .dtype = TG_F32,
        .path = TG_PATH_FUSED, .layers = 1, .hidden = 256, .embed = 64, .seq = 64, .batch = 32,
        .steps = 3500, .length = 400, .print_every = 50, .sample_every = 500, .eval_every = 500,
        .eval_batches = 16, .on_nonfinite = ON_NONFINITE_SKIP, .snapshot_every = 100,
        .max_faults = 10, .max_loss = 100, .lr = 3e-3, .clip = 1.0, .temperature = 0.8, .warmup = 100, .seed = 1};
    static const cli_choice cells[] = {
        {"rnn", TG_CELL_RNN}, {"lstm", TG_CELL_LSTM}, {"gru", TG_CELL_GRU}, {NULL, 0}};
    static const cli_choice paths[] = {{"tape", TG_PATH_TAPE}, {"fused", TG_PATH_FUSED}, {NULL, 0}};
    static const cli_choice dtypes[] = {{"f32", TG_F32}, {"f64", TG_F64}, {NULL, 0}};
    static const cli_choice faults[] = {{"stop", ON_NONFINITE_STOP},
                                        {"skip", ON_NONFINITE_SKIP},
                                        {"restore", ON_NONFINITE_RESTORE},
                                        {NULL, 0}};
    int steps_given = 0;
    const cli_option table[] = {
        CLI_ONE_OF("--cell", &o->cell, cells),
        CLI_ONE_OF("--path", &o->path, paths),
        CLI_ONE_OF("--dtype", &o->dtype, dtypes),
        CLI_INTEGER("--layers", &o->layers, 1, CHAR_LM_MAX_LAYERS),
        CLI_INTEGER("--hidden", &o->hidden, 1, CHAR_LM_MAX_WIDTH),
        CLI_INTEGER("--embed", &o->embed, 1, CHAR_LM_MAX_WIDTH),
        CLI_INTEGER("--seq", &o->seq, 1, CHAR_LM_MAX_SEQ),
        CLI_INTEGER("--batch", &o->batch, 1, 100000),
        {.name = "--steps", .kind = CLI_INT, .dest = &o->steps, .lo = 0, .hi = 1000000000,
         .given = &steps_given},
        CLI_INTEGER("--stop-after", &o->stop_after, 1, 1000000000),
        CLI_INTEGER("--threads", &o->threads, 1, TG_MAX_THREADS),
        CLI_INTEGER("--seed", &o->seed, 0, 2147483647),
        CLI_INTEGER("--length", &o->length, 0, 10000000),
        CLI_INTEGER("--print-every", &o->print_every, 1, 1000000000),
        CLI_INTEGER("--sample-every", &o->sample_every, 1, 1000000000),
        CLI_INTEGER("--eval-every", &o->eval_every, 1, 1000000000),
        CLI_INTEGER("--snapshot-every", &o->snapshot_every, 1, 1000000000),
        CLI_INTEGER("--max-faults", &o->max_faults, 1, 1000000000),
        /* Up to absurd rates on purpose: --lr 1e30 shows the fault handling. */
        CLI_NUMBER("--lr", &o->lr, 1e-9, 1e30),
        CLI_NUMBER("--clip", &o->clip, 0, 1e9),
        CLI_NUMBER("--max-loss", &o->max_loss, 0, 1e30),
        CLI_NUMBER("--temperature", &o->temperature, 1e-3, 100),
        CLI_ONE_OF("--on-nonfinite", &o->on_nonfinite, faults),
        CLI_TEXT("--save", &o->save),
        CLI_TEXT("--resume", &o->resume),
        CLI_TEXT("--load", &o->load),
        CLI_TEXT("--svg", &o->svg),
        CLI_TEXT("--prompt", &o->prompt),
        CLI_SWITCH("--sample", &o->sample_mode),
        CLI_SWITCH("--anomaly", &o->anomaly),
        CLI_SWITCH("--dinos", &o->dinos),
        CLI_SWITCH("--mpi", &o->mpi),
    };
    cli_status s = cli_parse(table, (int)(sizeof table / sizeof table[0]), argc, argv, &o->data,
                             message, size);
    if (s != CLI_OK)
        return s;
    if (o->dinos) { /* the course's setting, unless overridden */
        if (!strcmp(o->data, "examples/data/tinyshakespeare.txt"))
            o->data = "examples/data/dinos.txt";
        if (!steps_given)
            o->steps = 22001;
    }
    if (o->sample_mode && !o->load)
        o->load = o->save;
    return CLI_OK;
}

#endif
