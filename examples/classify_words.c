/* classify_words: which language is this word? A bidirectional GRU over the
 * UTF-8 bytes of words of several lengths, trained on
 * examples/data/words/words.tsv (25,000 lines "word<TAB>language", five
 * languages; see examples/data/README.md).
 *
 * The model: an embedding of the 256 byte values (32), a bidirectional GRU
 * (128 units per direction) run with each word's length, so that padding is
 * never read (tg_recurrent_forward_with, nn/recurrent.h), the final states
 * of both directions (the forward one after the word's last byte, the
 * reverse one after its first) joined, dropout, a linear layer to the five
 * languages and cross-entropy. Adam 3e-3, batches of 64, gradients clipped
 * to norm 1: the PyTorch reference examples/classify_words_pytorch.py.
 *
 *     make words                                          # train (60 s), save build/classify_words.ckpt
 *     build/examples/classify_words --load build/classify_words.ckpt FILE   # or - for stdin
 *
 * Training uses the first 20,000 lines and reports the accuracy on the last
 * 5,000 with a confusion table; the run ends with "validation accuracy
 * NN.N %". With --load, each line of FILE (a word, or word<TAB>language) is
 * classified ("word<TAB>language"), and, when the lines carry labels, the
 * run ends with "accuracy NN.N %". The recurrent layers take the fused
 * path (one node per layer and direction, no padded step computed); --path
 * tape composes them from ops instead. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "tapegrad.h"

enum { N_LANGS = 5, MAX_WORD = 64, VOCAB = 256, EVAL_BATCH = 500 };
static const char *const LANGS[N_LANGS] = {"dutch", "english", "polish", "portuguese", "spanish"};
/* Largest input file and model sizes accepted (a checkpoint's sizes too). */
#define MAX_INPUT ((size_t)256 << 20)
enum { MAX_WIDTH = 4096, MAX_LAYERS = 8 };

typedef struct {
    const char *data, *save, *load;
    int cell, path, layers, hidden, embed, batch, steps, threads, seed, validation;
    int print_every, eval_every;
    double seconds, lr, clip, dropout, weight_decay;
    int schedule; /* 0 constant, 1 cosine */
} options;

/* The words of a file: spans of its bytes, with a language or -1. */
typedef struct {
    char *bytes;
    int64_t n;
    int64_t *start;
    int32_t *len, *label;
} word_list;

/* One batch: byte ids (m, T) in C order, lengths and languages. */
typedef struct {
    int32_t *ids, *lengths, *labels;
    int64_t m, T;
} batch;

typedef struct {
    tg_embedding *emb;
    tg_recurrent *rnn;
    tg_linear *head;
    tg_params params; /* "embed.E", "rnn.l0.Wr", ..., "head.W", "head.b" */
} model;

static int train(const options *o);
static int classify(const options *o);

/* ---- options ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: classify_words [options] [words.tsv]      train, then save --save\n"
               "       classify_words --load CKPT FILE           classify FILE's lines (- = stdin)\n"
               "  --seconds X        train this long, 0 = no limit (60)\n"
               "  --steps N          train this many steps, 0 = no limit (0)\n"
               "  --cell gru|lstm|rnn  recurrent cell (gru), bidirectional\n"
               "  --layers N, --hidden N, --embed N   (1, 128, 32)\n"
               "  --batch N          words per batch (64)\n"
               "  --lr X, --clip X   Adam's learning rate, global norm clip, 0 = off (0.003, 1)\n"
               "  --schedule cosine|constant  the rate falls to 0 over the run's steps or\n"
               "                     seconds on a cosine, or stays (cosine)\n"
               "  --weight-decay X   AdamW's decoupled weight decay (0)\n"
               "  --dropout X        on the embedded bytes, between layers and on the joined\n"
               "                     final states, training only (0.3)\n"
               "  --validation N     the last N lines are held out (5000)\n"
               "  --path fused|tape  (fused: one node per layer and direction)\n"
               "  --threads N, --seed N   (TG_NUM_THREADS or all CPUs, 1)\n"
               "  --print-every N, --eval-every N   steps, 0 = never (100, 0: at the end)\n"
               "  --save PATH        checkpoint written at the end (build/classify_words.ckpt)\n");
}

static cli_status parse(int argc, char **argv, options *o, char *message, size_t size)
{
    static const cli_choice cells[] = {
        {"gru", TG_CELL_GRU}, {"lstm", TG_CELL_LSTM}, {"rnn", TG_CELL_RNN}, {0}};
    static const cli_choice paths[] = {{"tape", TG_PATH_TAPE}, {"fused", TG_PATH_FUSED}, {0}};
    static const cli_choice schedules[] = {{"constant", 0}, {"cosine", 1}, {0}};
    *o = (options){.data = "examples/data/words/words.tsv", .save = "build/classify_words.ckpt",
                   .cell = TG_CELL_GRU, .path = TG_PATH_FUSED, .layers = 1, .hidden = 128,
                   .embed = 32, .batch = 64, .seed = 1, .validation = 5000,
                   .print_every = 100, .seconds = 60, .lr = 3e-3, .clip = 1, .dropout = 0.3,
                   .schedule = 1};
    const cli_option table[] = {
        CLI_NUMBER("--seconds", &o->seconds, 0, 1e7), CLI_INTEGER("--steps", &o->steps, 0, 1 << 30),
        CLI_ONE_OF("--cell", &o->cell, cells), CLI_ONE_OF("--path", &o->path, paths),
        CLI_INTEGER("--layers", &o->layers, 1, MAX_LAYERS),
        CLI_INTEGER("--hidden", &o->hidden, 1, MAX_WIDTH),
        CLI_INTEGER("--embed", &o->embed, 1, MAX_WIDTH),
        CLI_INTEGER("--batch", &o->batch, 1, 100000), CLI_NUMBER("--lr", &o->lr, 1e-9, 10),
        CLI_NUMBER("--clip", &o->clip, 0, 1e9), CLI_NUMBER("--dropout", &o->dropout, 0, 0.99),
        CLI_ONE_OF("--schedule", &o->schedule, schedules),
        CLI_NUMBER("--weight-decay", &o->weight_decay, 0, 10),
        CLI_INTEGER("--validation", &o->validation, 1, 1 << 30),
        CLI_INTEGER("--threads", &o->threads, 1, 1024), CLI_INTEGER("--seed", &o->seed, 0, 1 << 30),
        CLI_INTEGER("--print-every", &o->print_every, 0, 1 << 30),
        CLI_INTEGER("--eval-every", &o->eval_every, 0, 1 << 30), CLI_TEXT("--save", &o->save),
        CLI_TEXT("--load", &o->load),
    };
    cli_status s = cli_parse(table, sizeof table / sizeof table[0], argc, argv, &o->data,
                             message, size);
    if (s == CLI_OK && !o->load && o->seconds == 0 && o->steps == 0)
        s = cli_error(message, size, "--seconds 0 and --steps 0: training would never end");
    return s;
}

int main(int argc, char **argv)
{
    options o;
    char message[512];
    int status = cli_exit_status(parse(argc, argv, &o, message, sizeof message),
                                 "classify_words", message, usage);
    if (status >= 0)
        return status;
    if (o.threads > 0 && tg_set_num_threads(o.threads) != TG_OK) {
        fprintf(stderr, "classify_words: %s\n", tg_last_error());
        return 2;
    }
    return o.load ? classify(&o) : train(&o);
}

/* ---- words --------------------------------------------------------------------------- */

/* The whole of path ("-": standard input), at most MAX_INPUT bytes. A path
 * that is not a regular file is refused before it is read (a FIFO would
 * block). NULL with the reason on stderr. */
static char *read_input(const char *path, int64_t *n)
{
    FILE *f = stdin;
    if (strcmp(path, "-") != 0) {
        int fd = open(path, O_RDONLY | O_NONBLOCK);
        struct stat st;
        const char *problem = fd < 0 || fstat(fd, &st) != 0 ? strerror(errno)
                              : !S_ISREG(st.st_mode)       ? "not a regular file"
                              : !(f = fdopen(fd, "rb"))    ? strerror(errno)
                                                           : NULL;
        if (problem) {
            fprintf(stderr, "classify_words: cannot read %s: %s\n", path, problem);
            if (fd >= 0)
                close(fd);
            return NULL;
        }
    }
    size_t size = 0, cap = 1 << 16;
    char *buf = malloc(cap + 1);
    for (size_t got = 1; buf && got > 0 && size <= MAX_INPUT;) {
        if (size == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger)
                break;
            buf = bigger;
            cap *= 2;
        }
        got = fread(buf + size, 1, cap - size, f);
        size += got;
    }
    bool failed = !buf || ferror(f) || size > MAX_INPUT || !feof(f);
    if (f != stdin)
        fclose(f);
    if (failed) {
        fprintf(stderr, "classify_words: cannot read %s: %s\n", path,
                size > MAX_INPUT ? "larger than 256 MB" : "read error or out of memory");
        free(buf);
        return NULL;
    }
    buf[size] = '\0';
    *n = (int64_t)size;
    return buf;
}

static int language_id(const char *s, size_t n)
{
    for (int k = 0; k < N_LANGS; k++)
        if (strlen(LANGS[k]) == n && memcmp(LANGS[k], s, n) == 0)
            return k;
    return -1;
}

static void words_free(word_list *w)
{
    free(w->bytes);
    free(w->start);
    free(w->len);
    free(w->label);
    *w = (word_list){0};
}

/* Split bytes into lines "word" or "word<TAB>language" (a final '\r' and
 * empty lines are ignored). labels: 1 every line needs one, 0 optional.
 * On error the list is freed and the line named on stderr. */
static int parse_words(word_list *w, const char *path, int labels)
{
    int64_t lines = 1;
    for (int64_t i = 0; i < w->n; i++)
        lines += w->bytes[i] == '\n';
    w->start = malloc(sizeof *w->start * (size_t)lines);
    w->len = malloc(sizeof *w->len * (size_t)lines);
    w->label = malloc(sizeof *w->label * (size_t)lines);
    if (!w->start || !w->len || !w->label) {
        fprintf(stderr, "classify_words: out of memory for %lld lines\n", (long long)lines);
        words_free(w);
        return -1;
    }
    int64_t count = 0, line = 0;
    for (int64_t at = 0; at < w->n; line++) {
        char *s = w->bytes + at, *end = memchr(s, '\n', (size_t)(w->n - at));
        int64_t length = end ? end - s : w->n - at;
        at += length + 1;
        if (length > 0 && s[length - 1] == '\r')
            length--;
        if (length == 0)
            continue;
        char *tab = memchr(s, '\t', (size_t)length);
        int64_t word = tab ? tab - s : length;
        int label = tab ? language_id(tab + 1, (size_t)(length - word - 1)) : -1;
        const char *problem = word == 0               ? "an empty word"
                              : word > MAX_WORD       ? "a word longer than 64 bytes"
                              : tab && label < 0      ? "a language other than dutch, english, "
                                                        "polish, portuguese or spanish"
                              : labels && !tab        ? "no language after a tab"
                                                      : NULL;
        if (problem) {
            fprintf(stderr, "classify_words: %s line %lld: %s\n",
                    strcmp(path, "-") == 0 ? "standard input" : path, (long long)line + 1, problem);
            words_free(w);
            return -1;
        }
        w->start[count] = s - w->bytes;
        w->len[count] = (int32_t)word;
        w->label[count++] = label;
    }
    w->n = count; /* from here on: the number of words */
    return 0;
}

static int load_words(word_list *w, const char *path, int labels)
{
    *w = (word_list){0};
    if (!(w->bytes = read_input(path, &w->n)))
        return -1;
    return parse_words(w, path, labels);
}

/* Room for batches of up to m words; 0, or -1 out of memory. */
static int batch_init(batch *b, int64_t m)
{
    b->ids = malloc(sizeof *b->ids * (size_t)m * MAX_WORD);
    b->lengths = malloc(sizeof *b->lengths * (size_t)m);
    b->labels = malloc(sizeof *b->labels * (size_t)m);
    return b->ids && b->lengths && b->labels ? 0 : -1;
}

static void batch_free(batch *b)
{
    free(b->ids);
    free(b->lengths);
    free(b->labels);
}

/* Words order[0..m): byte ids padded with 0 to the longest, lengths, labels. */
static void make_batch(batch *b, const word_list *w, const int32_t *order, int64_t m)
{
    b->m = m;
    b->T = 1;
    for (int64_t j = 0; j < m; j++)
        b->T = w->len[order[j]] > b->T ? w->len[order[j]] : b->T;
    for (int64_t j = 0; j < m; j++) {
        int32_t k = order[j];
        const unsigned char *s = (const unsigned char *)w->bytes + w->start[k];
        for (int64_t t = 0; t < b->T; t++)
            b->ids[j * b->T + t] = t < w->len[k] ? s[t] : 0;
        b->lengths[j] = w->len[k];
        b->labels[j] = w->label[k];
    }
}

/* ---- the model ------------------------------------------------------------------------ */

static void model_free(model *mo)
{
    tg_embedding_free(mo->emb);
    tg_recurrent_free(mo->rnn);
    tg_linear_free(mo->head);
    tg_params_clear(&mo->params);
}

static int model_init(model *mo, const options *o, tg_rng *rng)
{
    *mo = (model){0};
    tg_recurrent_options ro = tg_recurrent_defaults();
    ro.num_layers = o->layers;
    ro.bidirectional = true;
    ro.dropout = o->dropout; /* between layers */
    mo->emb = tg_embedding_new(VOCAB, o->embed, TG_F32, TG_INIT_PYTORCH, rng);
    mo->rnn = mo->emb ? tg_recurrent_new(o->cell, o->embed, o->hidden, TG_F32, &ro, rng) : NULL;
    mo->head = mo->rnn ? tg_linear_new(2 * o->hidden, N_LANGS, TG_F32, "W", "b",
                                       TG_INIT_PYTORCH, rng)
                       : NULL;
    if (!mo->head || tg_params_extend(&mo->params, "embed.", &mo->emb->params) != TG_OK ||
        tg_params_extend(&mo->params, "rnn.", &mo->rnn->params) != TG_OK ||
        tg_params_extend(&mo->params, "head.", &mo->head->params) != TG_OK) {
        fprintf(stderr, "classify_words: %s\n", tg_last_error());
        model_free(mo);
        return -1;
    }
    return 0;
}

/* Logits (N_LANGS, m) of a batch: the last layer's final states of both
 * directions, joined, through dropout. Dropout also acts on the embedded
 * bytes and between layers; in evaluation mode it is a no-op. */
static tg_tensor *logits_of(tg_tape *tape, const model *mo, const batch *b, const options *o,
                            tg_rng *rng)
{
    tg_state final[2 * MAX_LAYERS];
    tg_recurrent_call call = {.lengths = b->lengths, .final = final, .path = (tg_path)o->path,
                              .rng = rng};
    tg_tensor *x = tg_dropout(tape, tg_embedding_forward(tape, mo->emb, b->ids, b->m, b->T),
                              o->dropout, rng); /* (embed, m, T) */
    if (!tg_recurrent_forward_with(tape, mo->rnn, x, &call))
        return NULL;
    int u = 2 * (mo->rnn->num_layers - 1);
    tg_tensor *joined = tg_concat(tape, 2, (tg_tensor *[]){final[u].a, final[u + 1].a}, 0);
    return tg_linear_forward(tape, mo->head, tg_dropout(tape, joined, o->dropout, rng));
}

/* The predicted language of words order[0..n), in evaluation mode. */
static int predict(const model *mo, const word_list *w, const int32_t *order, int64_t n,
                   const options *o, int32_t *predicted)
{
    batch b;
    tg_tape *tape = tg_tape_new();
    int status = batch_init(&b, EVAL_BATCH) == 0 && tape ? 0 : -1;
    tg_tape_no_grad(tape, true);
    tg_tape_set_training(tape, false);
    for (int64_t from = 0; status == 0 && from < n; from += EVAL_BATCH) {
        make_batch(&b, w, order + from, n - from < EVAL_BATCH ? n - from : EVAL_BATCH);
        tg_tape_reset(tape);
        tg_tensor *best = tg_argmax(tape, logits_of(tape, mo, &b, o, NULL), 0, false);
        if (!best) {
            fprintf(stderr, "classify_words: %s\n", tg_tape_error(tape));
            status = -1;
        }
        for (int64_t j = 0; best && j < b.m; j++)
            predicted[from + j] = (int32_t)tg_tensor_get_flat(best, j);
    }
    tg_tape_free(tape);
    batch_free(&b);
    return status;
}

/* Print the confusion table of words order[0..n) (rows: true language). */
static void report(const word_list *w, const int32_t *order, const int32_t *predicted,
                   int64_t n)
{
    int64_t table[N_LANGS][N_LANGS] = {{0}};
    for (int64_t j = 0; j < n; j++)
        table[w->label[order[j]]][predicted[j]]++;
    printf("confusion (rows: the word's language, columns: the prediction)\n%-11s", "");
    for (int k = 0; k < N_LANGS; k++)
        printf(" %10.10s", LANGS[k]);
    printf("   accuracy\n");
    for (int r = 0; r < N_LANGS; r++) {
        int64_t row = 0;
        printf("%-11s", LANGS[r]);
        for (int k = 0; k < N_LANGS; k++) {
            printf(" %10lld", (long long)table[r][k]);
            row += table[r][k];
        }
        printf("   %6.1f %%\n", row ? 100.0 * (double)table[r][r] / (double)row : 0.0);
    }
}

/* ---- training ----------------------------------------------------------------------------- */

static const char *const META[5] = {"cell", "layers", "hidden", "embed", "languages"};

static double elapsed_s(uint64_t t0) { return (double)(tg_clock_ns() - t0) / 1e9; }

static void format_time(char *buf, size_t n, double seconds)
{
    int s = (int)(seconds + 0.5);
    snprintf(buf, n, "%d:%02d", s / 60, s % 60);
}

static void progress_line(int step, double loss, double smooth, double words_per_s,
                          double elapsed, double left)
{
    char el[16], eta[16];
    format_time(el, sizeof el, elapsed);
    format_time(eta, sizeof eta, left);
    printf("step %5d  loss %.4f  smooth %.4f  %6.2fk words/s  elapsed %s  eta %s\n", step, loss,
           smooth, words_per_s / 1000, el, eta);
    fflush(stdout);
}

/* One step on words order[0..m): forward, backward, clip, Adam. The loss,
 * or NaN with the reason on stderr. */
static double train_step(tg_tape *tape, const model *mo, tg_adam *opt, const batch *b,
                         const options *o, tg_rng *rng)
{
    tg_tape_reset(tape);
    tg_params_zero_grad(&mo->params);
    tg_tensor *loss = tg_cross_entropy(tape, logits_of(tape, mo, b, o, rng), 0, b->labels, b->m,
                                       TG_REDUCE_MEAN);
    if (!loss || tg_backward(tape, loss) != TG_OK ||
        (o->clip > 0 && tg_clip_grad_norm(&mo->params, o->clip, NULL) != TG_OK) ||
        tg_adam_step(opt, tape) != TG_OK) {
        fprintf(stderr, "classify_words: step not applied: %s\n",
                tg_tape_status(tape) != TG_OK ? tg_tape_error(tape) : tg_last_error());
        return NAN;
    }
    return tg_tensor_item(loss);
}

/* Validation accuracy of the held-out words (the last o->validation). */
static double validate(const model *mo, const word_list *w, const options *o, bool table)
{
    int64_t n = o->validation, right = 0;
    int32_t *order = malloc(sizeof *order * (size_t)n);
    int32_t *predicted = malloc(sizeof *predicted * (size_t)n);
    bool ok = order && predicted;
    for (int64_t j = 0; ok && j < n; j++)
        order[j] = (int32_t)(w->n - n + j);
    ok = ok && predict(mo, w, order, n, o, predicted) == 0;
    if (ok && table)
        report(w, order, predicted, n);
    for (int64_t j = 0; ok && j < n; j++)
        right += w->label[order[j]] == predicted[j];
    free(order);
    free(predicted);
    return ok ? 100.0 * (double)right / (double)n : NAN;
}

static int save(const model *mo, const options *o)
{
    tg_checkpoint_int meta[5] = {{META[0], o->cell}, {META[1], o->layers}, {META[2], o->hidden},
                                 {META[3], o->embed}, {META[4], N_LANGS}};
    if (!o->save || !*o->save)
        return 0;
    if (tg_checkpoint_save(o->save, &mo->params, NULL, meta, 5) != TG_OK) {
        fprintf(stderr, "classify_words: the model is not saved: %s\n", tg_last_error());
        return -1;
    }
    printf("checkpoint: %s\n", o->save);
    return 0;
}

/* The training loop: until --steps or --seconds, whichever comes first. */
/* Time left: of --seconds, of --steps at the speed so far, or the sooner. */
static double time_left(const options *o, int step, double elapsed)
{
    double by_steps = o->steps ? elapsed / step * (o->steps - step) : INFINITY;
    double by_clock = o->seconds > 0 ? o->seconds - elapsed : INFINITY;
    return fmax(fmin(by_steps, by_clock), 0);
}

/* The training loop: until --steps or --seconds, whichever comes first;
 * every epoch visits the training words in a new order. */
static int fit(const model *mo, const word_list *w, const options *o, tg_rng *rng)
{
    int64_t n_train = w->n - o->validation, m = o->batch < n_train ? o->batch : n_train;
    int32_t *order = malloc(sizeof *order * (size_t)n_train);
    tg_adam_options ao = tg_adam_defaults(o->lr);
    ao.weight_decay = o->weight_decay;
    ao.decoupled_weight_decay = true;
    tg_adam *opt = tg_adam_new(&mo->params, &ao);
    tg_tape *tape = tg_tape_new();
    batch b;
    int status = batch_init(&b, m) == 0 && order && opt && tape ? 0 : -1, step = 0;
    double smooth = log(N_LANGS);
    uint64_t t0 = tg_clock_ns();
    for (int64_t j = 0; order && j < n_train; j++)
        order[j] = (int32_t)j;
    for (int64_t next = n_train; status == 0 && (o->steps == 0 || step < o->steps) &&
                                 (o->seconds == 0 || elapsed_s(t0) < o->seconds);
         next += m) {
        if (next + m > n_train) { /* a new epoch */
            tg_rng_shuffle_i32(rng, order, n_train);
            next = 0;
        }
        make_batch(&b, w, order + next, m);
        if (o->schedule == 1) /* cosine over the run: by steps, else by the clock */
            tg_adam_set_lr(opt, 0.5 * o->lr *
                                    (1 + cos(3.14159265358979323846 * fmin(1, o->steps ? (double)step / o->steps
                                                                     : elapsed_s(t0) / o->seconds))));
        double loss = train_step(tape, mo, opt, &b, o, rng), elapsed = elapsed_s(t0);
        step++;
        if (!isfinite(loss))
            status = -1;
        smooth = 0.98 * smooth + 0.02 * loss;
        if (status == 0 && o->print_every > 0 && step % o->print_every == 0)
            progress_line(step, loss, smooth, (double)(step * m) / elapsed, elapsed,
                          time_left(o, step, elapsed));
        if (status == 0 && o->eval_every > 0 && step % o->eval_every == 0)
            printf("validation accuracy %.1f %% after %d steps\n", validate(mo, w, o, false),
                   step);
    }
    if (status == 0)
        printf("trained %d steps (%.1f epochs) in %.1f s\n", step,
               (double)step * (double)m / (double)n_train, elapsed_s(t0));
    tg_tape_free(tape);
    tg_adam_free(opt);
    batch_free(&b);
    free(order);
    return status;
}

static int train(const options *o)
{
    word_list w;
    if (load_words(&w, o->data, 1) != 0)
        return 1;
    if (w.n <= o->validation) {
        fprintf(stderr, "classify_words: %s holds %lld words, not more than --validation %d\n",
                o->data, (long long)w.n, o->validation);
        words_free(&w);
        return 1;
    }
    tg_rng rng;
    tg_rng_seed(&rng, (uint32_t)o->seed);
    model mo;
    if (model_init(&mo, o, &rng) != 0) {
        words_free(&w);
        return 1;
    }
    printf("classify_words: %s, %lld words (%lld training, %d validation), %d languages\n",
           o->data, (long long)w.n, (long long)(w.n - o->validation), o->validation, N_LANGS);
    printf("model: bytes -> embed %d -> bidirectional %s x%d, hidden %d -> linear %d; %lld "
           "parameters; %s path, %d threads\n",
           o->embed, tg_cell_name((tg_cell)o->cell), o->layers, o->hidden, N_LANGS,
           (long long)tg_params_numel(&mo.params), o->path == TG_PATH_FUSED ? "fused" : "tape",
           tg_get_num_threads());
    char budget[64];
    if (o->steps && o->seconds > 0)
        snprintf(budget, sizeof budget, "%d steps or %g s", o->steps, o->seconds);
    else if (o->steps)
        snprintf(budget, sizeof budget, "%d steps", o->steps);
    else
        snprintf(budget, sizeof budget, "%g s", o->seconds);
    printf("training: %s of batches of %d, Adam lr %g (%s), clip %g, dropout %g, weight decay "
           "%g\n",
           budget, o->batch, o->lr, o->schedule ? "cosine" : "constant", o->clip, o->dropout,
           o->weight_decay);
    int status = fit(&mo, &w, o, &rng);
    double accuracy = status == 0 ? validate(&mo, &w, o, true) : NAN;
    if (status == 0 && save(&mo, o) != 0)
        status = -1;
    if (status == 0)
        printf("validation accuracy %.1f %%\n", accuracy);
    model_free(&mo);
    words_free(&w);
    return status == 0 && isfinite(accuracy) ? 0 : 1;
}

/* ---- classifying with a saved model -------------------------------------------------------- */

/* The model's sizes as stored (to rebuild it before loading), held to the
 * ranges of the options. */
static int read_sizes(const char *path, options *o)
{
    static const int64_t lo[5] = {TG_CELL_RNN, 1, 1, 1, N_LANGS};
    static const int64_t hi[5] = {TG_CELL_GRU, MAX_LAYERS, MAX_WIDTH, MAX_WIDTH, N_LANGS};
    int *fields[5] = {&o->cell, &o->layers, &o->hidden, &o->embed, NULL};
    for (int i = 0; i < 5; i++) {
        int64_t v;
        if (tg_checkpoint_read_int(path, META[i], &v) != TG_OK) {
            fprintf(stderr, "classify_words: %s\n", tg_last_error());
            return -1;
        }
        if (v < lo[i] || v > hi[i]) {
            fprintf(stderr, "classify_words: checkpoint %s: '%s' is %lld, outside [%lld, %lld]\n",
                    path, META[i], (long long)v, (long long)lo[i], (long long)hi[i]);
            return -1;
        }
        if (fields[i])
            *fields[i] = (int)v;
    }
    return 0;
}

static int classify(const options *given)
{
    options o = *given;
    word_list w;
    model mo;
    tg_rng rng;
    tg_rng_seed(&rng, 1); /* the constructors draw; the checkpoint overwrites */
    if (read_sizes(o.load, &o) != 0 || model_init(&mo, &o, &rng) != 0)
        return 1;
    tg_checkpoint_int meta[5] = {{META[0], 0}, {META[1], 0}, {META[2], 0}, {META[3], 0},
                                 {META[4], 0}};
    if (tg_checkpoint_load(o.load, &mo.params, NULL, meta, 5) != TG_OK) {
        fprintf(stderr, "classify_words: %s\n", tg_last_error());
        model_free(&mo);
        return 1;
    }
    if (load_words(&w, o.data, 0) != 0) {
        model_free(&mo);
        return 1;
    }
    int32_t *order = malloc(sizeof *order * (size_t)(w.n + 1));
    int32_t *predicted = malloc(sizeof *predicted * (size_t)(w.n + 1));
    int status = order && predicted ? 0 : -1;
    for (int64_t j = 0; order && j < w.n; j++)
        order[j] = (int32_t)j;
    if (status == 0)
        status = predict(&mo, &w, order, w.n, &o, predicted);
    int64_t labelled = 0, right = 0;
    for (int64_t j = 0; status == 0 && j < w.n; j++) {
        printf("%.*s\t%s\n", (int)w.len[j], w.bytes + w.start[j], LANGS[predicted[j]]);
        labelled += w.label[j] >= 0;
        right += w.label[j] == predicted[j];
    }
    if (status == 0 && labelled > 0)
        printf("accuracy %.1f %% (%lld of %lld labelled words)\n",
               100.0 * (double)right / (double)labelled, (long long)right, (long long)labelled);
    free(order);
    free(predicted);
    words_free(&w);
    model_free(&mo);
    return status == 0 ? 0 : 1;
}
