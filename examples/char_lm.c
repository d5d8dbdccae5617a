/* char_lm: a character-level language model, trained on any text.
 *
 *     char_lm                               LSTM on Shakespeare (make run)
 *     char_lm --cell gru --hidden 128 my.txt
 *     char_lm --sample --load build/char_lm.ckpt --prompt "ROMEO:"
 *     char_lm --dinos                       the course's Dinosaurus Island
 *     mpirun -np 4 build/mpi/char_lm --mpi  data-parallel over 4 MPI ranks (make mpi)
 *
 * The model reads characters through an embedding, runs them through a
 * recurrent stack (tg_recurrent) and predicts the next character with a
 * linear head and cross-entropy. Training walks the text as m parallel
 * streams of T characters: the final state of one batch starts the next
 * (truncated backprop-through-time), while gradients stop at the batch edge.
 * Adam with warm-up and cosine decay, gradient clipping by global norm, a
 * validation loss on the last 5 % of the text, samples while it trains, a
 * checkpoint and an SVG loss curve at the end. A step whose loss or
 * gradients are not finite, or whose loss diverges, is never applied
 * (--on-nonfinite stop|skip|restore decides what follows; see "numerical
 * faults" below).
 *
 * Resuming (--resume) continues bit for bit where the run stopped: the
 * checkpoint holds the parameters, Adam's state, the carried states, the
 * generator, the position in the text, the smoothed loss, the learning-rate
 * halvings and, when there is one, restore's snapshot. A checkpoint that
 * does not fit the run is refused before training: another vocabulary (the
 * same size with other characters included), a step beyond --steps, an
 * optimizer state that is not finite. The program exits non-zero whenever
 * the run did not end as asked: a refused start, a stop on faults, no step
 * applied at all, a checkpoint or loss curve that could not be written.
 *
 * With --mpi (built by make mpi) each rank trains on its share of the
 * streams and the ranks sum their gradients every step; the hooks that do
 * it are char_lm_mpi.h's lm_dist_* calls, which are one-process no-ops in
 * the ordinary build. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "char_lm_mpi.h"
#include "char_lm_options.h"
#include "svg.h"
#include "tapegrad.h"

/* Options are parsed by char_lm_options.h (a fuzz target parses them too). */
typedef char_lm_options options;

/* ---- the model ------------------------------------------------------------------ */

/* embedding (embed, vocab) -> recurrent stack -> linear head (vocab, hidden) */
typedef struct {
    tg_embedding *embed;
    tg_recurrent *rnn;
    tg_linear *head;
    tg_params params;  /* everything the optimizer updates */
    tg_state *carried; /* the state one batch hands to the next, per layer */
} model;

static void model_free(model *lm)
{
    tg_states_free(lm->rnn, lm->carried);
    tg_embedding_free(lm->embed);
    tg_recurrent_free(lm->rnn);
    tg_linear_free(lm->head);
    tg_params_clear(&lm->params);
}

static int model_init(model *lm, const options *o, int vocab, tg_rng *rng)
{
    memset(lm, 0, sizeof *lm);
    tg_recurrent_options ro = tg_recurrent_defaults();
    ro.num_layers = o->layers;
    tg_dtype dtype = (tg_dtype)o->dtype;
    lm->embed = tg_embedding_new(vocab, o->embed, dtype, TG_INIT_PYTORCH, rng);
    lm->rnn = tg_recurrent_new(o->cell, o->embed, o->hidden, dtype, &ro, rng);
    lm->head = tg_linear_new(o->hidden, vocab, dtype, "W", "b", TG_INIT_PYTORCH, rng);
    lm->carried = lm->rnn ? tg_states_new(lm->rnn, o->batch) : NULL;
    if (!lm->embed || !lm->rnn || !lm->head || !lm->carried ||
        tg_params_extend(&lm->params, "embed.", &lm->embed->params) ||
        tg_params_extend(&lm->params, "rnn.", &lm->rnn->params) ||
        tg_params_extend(&lm->params, "head.", &lm->head->params) ||
        tg_params_pack(&lm->params)) { /* one gradient buffer: one allreduce with --mpi */
        fprintf(stderr, "char_lm: cannot build the model: %s\n", tg_last_error());
        return -1;
    }
    return 0;
}

/* Mean cross-entropy of predicting targets (m, T) from inputs (m, T), starting
 * from `init` and leaving the final states in `final` (tape tensors). */
static tg_tensor *model_loss(tg_tape *tape, const model *lm, const int32_t *inputs,
                             const int32_t *targets, int64_t m, int64_t T, tg_path path,
                             const tg_state *init, tg_state *final)
{
    tg_tensor *x = tg_embedding_forward(tape, lm->embed, inputs, m, T); /* (embed, m, T) */
    tg_tensor *h = tg_recurrent_forward(tape, lm->rnn, x, init, path, final); /* (hidden, m, T) */
    tg_tensor *logits = tg_linear_forward(tape, lm->head, h);            /* (vocab, m, T) */
    return tg_cross_entropy(tape, logits, 0, targets, m * T, TG_REDUCE_MEAN);
}

/* ---- sampling ---------------------------------------------------------------------- */

/* Draw the next id from logits (vocab,) at a temperature; -1 when no
 * logit is finite (tg_rng_choice has nothing to draw from). */
static int32_t draw(const tg_tensor *logits, double temperature, tg_rng *rng)
{
    int64_t n = tg_tensor_numel(logits);
    double probs[256], top = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        top = fmax(top, tg_tensor_get_flat(logits, i) / temperature);
    for (int64_t i = 0; i < n; i++)
        probs[i] = exp(tg_tensor_get_flat(logits, i) / temperature - top);
    return (int32_t)tg_rng_choice(rng, probs, n);
}

/* Feed the prompt, then draw `length` characters, printing them. */
static int generate(const model *lm, const tg_text *text, const char *prompt, int length,
                    double temperature, uint32_t seed, tg_path path)
{
    size_t n_prompt = strlen(prompt);
    if (n_prompt == 0) {
        fprintf(stderr, "char_lm: the prompt is empty\n");
        return -1;
    }
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_state *state = tg_states_new(lm->rnn, 1);
    tg_state next[CHAR_LM_MAX_LAYERS];
    tg_tape *tape = tg_tape_new();
    tg_tape_no_grad(tape, true);
    int32_t id = 0;
    int status = 0;
    fputs(prompt, stdout);
    for (size_t i = 0; i + 1 < n_prompt + (size_t)length; i++) {
        if (i < n_prompt && (id = tg_text_id(text, (unsigned char)prompt[i])) < 0) {
            fprintf(stderr, "char_lm: the prompt's character '%c' is not in the vocabulary\n",
                    prompt[i]);
            status = -1;
            break;
        }
        tg_tape_reset(tape);
        tg_tensor *x = tg_embedding_forward(tape, lm->embed, &id, 1, 1);
        tg_tensor *h = tg_recurrent_forward(tape, lm->rnn, x, state, path, next);
        tg_tensor *logits = tg_linear_forward(tape, lm->head, h);
        if (!logits || tg_states_keep(lm->rnn, state, next) != TG_OK) {
            fprintf(stderr, "char_lm: sampling failed: %s\n", tg_tape_error(tape));
            status = -1;
            break;
        }
        if (i + 1 >= n_prompt) { /* the prompt is read: draw the next character */
            if ((id = draw(logits, temperature, &rng)) < 0) {
                fprintf(stderr, "\nchar_lm: sampling failed: the model produced non-finite "
                        "logits\n");
                status = -1;
                break;
            }
            putchar(text->itos[id]);
        }
    }
    putchar('\n');
    tg_tape_free(tape);
    tg_states_free(lm->rnn, state);
    return status;
}

/* ---- evaluation --------------------------------------------------------------------- */

/* Mean loss over up to max_batches stream batches of ids[0..n). */
static double evaluate(const model *lm, const options *o, const int32_t *ids, int64_t n,
                       int32_t *inputs, int32_t *targets)
{
    tg_batcher *b = tg_batcher_new(ids, n, o->batch, o->seq, TG_BATCH_STREAM, 0);
    if (!b)
        return NAN;
    tg_state *state = tg_states_new(lm->rnn, o->batch);
    tg_state next[CHAR_LM_MAX_LAYERS];
    tg_tape *tape = tg_tape_new();
    tg_tape_no_grad(tape, true);
    int64_t batches = tg_batcher_batches_per_epoch(b);
    if (batches > o->eval_batches)
        batches = o->eval_batches;
    double total = 0;
    for (int64_t k = 0; k < batches; k++) {
        tg_batcher_next(b, inputs, targets);
        tg_tape_reset(tape);
        tg_tensor *loss =
            model_loss(tape, lm, inputs, targets, o->batch, o->seq, o->path, state, next);
        if (!loss || tg_states_keep(lm->rnn, state, next) != TG_OK) {
            total = NAN;
            break;
        }
        total += tg_tensor_item(loss);
    }
    tg_tape_free(tape);
    tg_states_free(lm->rnn, state);
    tg_batcher_free(b);
    return total / (double)batches;
}

/* ---- checkpoints ---------------------------------------------------------------------- */

/* Everything a checkpoint holds. `base` is the state of the run: the
 * parameters, Adam's state, the vocabulary, the smoothed loss and the carried
 * states. A run that may restore (or resumes from a checkpoint that holds
 * one) also keeps a snapshot of base, saved as "snapshot.<name>" with its
 * step, so that a resumed run restores to the same state as an
 * uninterrupted one. */
typedef struct {
    tg_params base, all; /* all: base, then the snapshot's copies */
    tg_tensor *vocab;    /* (vocab_size,): the byte of each id */
    tg_tensor *smooth;   /* (): the smoothed training loss */
    tg_tensor **copies;  /* the snapshot (one per tensor of base), or NULL */
    int64_t snapshot_step;
} saved_state;

enum { META_STEP, META_CELL, META_LAYERS, META_HIDDEN, META_EMBED, META_VOCAB, META_BATCH,
       META_SEQ, META_DTYPE, META_HALVINGS, META_SNAPSHOT_STEP, META_MAX };

static void meta_fill(tg_checkpoint_int *meta, const options *o, int vocab, int64_t step)
{
    const char *names[META_MAX] = {"step",  "cell", "layers", "hidden", "embed", "vocab_size",
                                   "batch", "seq",  "dtype", "lr_halvings", "snapshot_step"};
    int64_t values[META_MAX] = {step, o->cell, o->layers, o->hidden, o->embed, vocab,
                                o->batch, o->seq, o->dtype, 0, 0};
    for (int i = 0; i < META_MAX; i++)
        meta[i] = (tg_checkpoint_int){names[i], values[i]};
}

/* The integers a checkpoint of this state holds. */
static int meta_count(const saved_state *s) { return s->copies ? META_MAX : META_SNAPSHOT_STEP; }

static int snapshot_init(saved_state *s);

static int saved_state_init(saved_state *s, const model *lm, const tg_adam *opt, int vocab_size,
                            bool with_snapshot)
{
    memset(s, 0, sizeof *s);
    s->vocab = tg_tensor_zeros(TG_F32, TG_DIMS(vocab_size));
    s->smooth = tg_tensor_zeros(TG_F64, 0, NULL);
    if (!s->vocab || !s->smooth || tg_params_extend(&s->base, NULL, &lm->params) ||
        tg_adam_state(opt, &s->base) || tg_params_add(&s->base, "vocab", s->vocab) ||
        tg_params_add(&s->base, "smooth_loss", s->smooth))
        return -1;
    for (int k = 0; k < lm->rnn->num_layers; k++) {
        char name[32];
        snprintf(name, sizeof name, "state.l%d.a", k);
        if (tg_params_add(&s->base, name, lm->carried[k].a))
            return -1;
        snprintf(name, sizeof name, "state.l%d.c", k);
        if (lm->carried[k].c && tg_params_add(&s->base, name, lm->carried[k].c))
            return -1;
    }
    if (tg_params_extend(&s->all, NULL, &s->base))
        return -1;
    return with_snapshot ? snapshot_init(s) : 0;
}

static void saved_state_free(saved_state *s)
{
    for (int i = 0; s->copies && i < s->base.count; i++)
        tg_tensor_free(s->copies[i]);
    free(s->copies);
    tg_params_clear(&s->all);
    tg_params_clear(&s->base);
    tg_tensor_free(s->vocab);
    tg_tensor_free(s->smooth);
}

/* The model's sizes as stored in a checkpoint (to rebuild it before loading),
 * held to the ranges of the options: the checkpoint's CRCs catch accidents,
 * not a file written to make char_lm build a model it cannot hold. */
static int read_sizes(const tg_checkpoint *ck, const char *path, options *o, int *vocab_size)
{
    static const struct {
        const char *name;
        int64_t lo, hi;
    } sizes[8] = {{"cell", TG_CELL_RNN, TG_CELL_GRU}, {"layers", 1, CHAR_LM_MAX_LAYERS},
                  {"hidden", 1, CHAR_LM_MAX_WIDTH},   {"embed", 1, CHAR_LM_MAX_WIDTH},
                  {"batch", 1, 100000},                {"seq", 1, CHAR_LM_MAX_SEQ},
                  {"vocab_size", 2, 256},              {"dtype", TG_F32, TG_F64}};
    int *fields[8] = {&o->cell,  &o->layers, &o->hidden, &o->embed,
                      &o->batch, &o->seq,    vocab_size, &o->dtype};
    for (int i = 0; i < 8; i++) {
        int64_t v;
        if (tg_checkpoint_get_int(ck, sizes[i].name, &v) != TG_OK) {
            fprintf(stderr, "char_lm: %s\n", tg_last_error());
            return -1;
        }
        if (v < sizes[i].lo || v > sizes[i].hi) {
            fprintf(stderr, "char_lm: checkpoint %s: '%s' is %lld, outside [%lld, %lld]\n", path,
                    sizes[i].name, (long long)v, (long long)sizes[i].lo, (long long)sizes[i].hi);
            return -1;
        }
        *fields[i] = (int)v;
    }
    return 0;
}

/* A vocabulary read from a file: distinct whole numbers 0..255 in
 * increasing order (anything else would be cast to a byte, or shrink the
 * vocabulary); its bytes into bytes[]. */
static int check_vocab(const tg_tensor *vocab, const char *path, unsigned char *bytes)
{
    double last = -1;
    for (int64_t i = 0; i < tg_tensor_numel(vocab); i++) {
        double v = tg_tensor_get_flat(vocab, i);
        if (!(v > last && v <= 255 && v == floor(v))) {
            fprintf(stderr, "char_lm: checkpoint %s: its vocabulary is invalid: entry %lld is %g "
                    "(the entries must be distinct whole numbers 0-255 in increasing order)\n",
                    path, (long long)i, v);
            return -1;
        }
        bytes[i] = (unsigned char)v;
        last = v;
    }
    return 0;
}

/* Adam's state as loaded: first moments finite, second moments finite and
 * >= 0, a step count that is a whole number >= 0 (else every update would
 * be refused, and the run would apply nothing). */
static int check_adam_state(const tg_params *base, const char *path)
{
    for (int i = 0; i < base->count; i++) {
        const char *name = base->items[i].name;
        const tg_tensor *t = base->items[i].tensor;
        bool second = strncmp(name, "adam.v.", 7) == 0, step = strcmp(name, "adam.step") == 0;
        if (!second && !step && strncmp(name, "adam.m.", 7) != 0)
            continue;
        for (int64_t k = 0; k < tg_tensor_numel(t); k++) {
            double v = tg_tensor_get_flat(t, k);
            if (!isfinite(v) || ((second || step) && v < 0) || (step && v != floor(v))) {
                fprintf(stderr, "char_lm: cannot resume: checkpoint %s holds an invalid optimizer "
                        "state: '%s' is %g at index %lld\n", path, name, v, (long long)k);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- numerical faults ---------------------------------------------------------------------
 *
 * A step whose loss or gradient is NaN or Inf, whose update would not be
 * finite, or whose loss exceeds --max-loss (divergence: Adam's steps are
 * bounded by the learning rate, so a huge rate makes the loss explode long
 * before anything overflows) is never applied: the optimizer refuses
 * non-finite values before it writes, and the state carried to the next
 * batch is kept only after a good step. Then --on-nonfinite decides: stop
 * (exit 1, nothing saved), skip the batch, or restore the last snapshot (a
 * copy of the parameters, Adam's moments and step count, the smoothed loss
 * and the carried states, taken every --snapshot-every steps) and halve the
 * learning rate, since the same rate would lead to the same fault. The
 * halvings and the snapshot are saved in the checkpoint, so a resumed run
 * continues at the same rate and restores to the same state. */

static int snapshot_init(saved_state *s)
{
    s->copies = calloc((size_t)s->base.count, sizeof *s->copies);
    for (int i = 0; s->copies && i < s->base.count; i++) {
        char name[TG_CHECKPOINT_NAME_MAX + 16];
        snprintf(name, sizeof name, "snapshot.%s", s->base.items[i].name);
        if (!(s->copies[i] = tg_tensor_copy(s->base.items[i].tensor)) ||
            tg_params_add(&s->all, name, s->copies[i]))
            return -1;
    }
    return s->copies ? 0 : -1;
}

static void snapshot_take(saved_state *s, int step)
{
    for (int i = 0; i < s->base.count; i++)
        tg_tensor_copy_into(s->copies[i], s->base.items[i].tensor);
    s->snapshot_step = step;
}

static void snapshot_restore(const saved_state *s)
{
    for (int i = 0; i < s->base.count; i++)
        tg_tensor_copy_into(s->base.items[i].tensor, s->copies[i]);
}

/* Replay a faulty step in anomaly mode, so that the message names the op
 * that made the first NaN or Inf (forward or backward); "" when no op did
 * (then the update itself overflowed). Costs one step, and only on faults. */
static void diagnose(char *out, size_t size, tg_tape *tape, const model *lm, const options *o,
                     const int32_t *inputs, const int32_t *targets, tg_state *final)
{
    tg_tape_reset(tape);
    tg_tape_set_anomaly(tape, true);
    tg_tensor *loss =
        model_loss(tape, lm, inputs, targets, o->batch, o->seq, o->path, lm->carried, final);
    if (loss)
        tg_backward(tape, loss);
    snprintf(out, size, "%s", tg_tape_status(tape) == TG_ERR_NONFINITE ? tg_tape_error(tape) : "");
    tg_tape_set_anomaly(tape, o->anomaly);
}

/* ---- progress ------------------------------------------------------------------------- */

static void format_time(char *buf, size_t n, double seconds)
{
    int s = (int)(seconds + 0.5);
    snprintf(buf, n, "%d:%02d", s / 60, s % 60);
}

static void progress_line(int step, int steps, double loss, double smooth, double chars_per_s,
                          double elapsed)
{
    char el[16], eta[16];
    format_time(el, sizeof el, elapsed);
    format_time(eta, sizeof eta, step > 0 ? elapsed / step * (steps - step) : 0);
    printf("step %5d/%d  loss %.4f  smooth %.4f  %6.1fk chars/s  elapsed %s  eta %s\n", step,
           steps, loss, smooth, chars_per_s / 1000, el, eta);
    fflush(stdout);
}

/* ---- training ---------------------------------------------------------------------------- */

typedef struct {
    double *x, *y;
    int n, cap;
} curve;

static void curve_add(curve *c, double x, double y)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->x = realloc(c->x, (size_t)c->cap * sizeof *c->x);
        c->y = realloc(c->y, (size_t)c->cap * sizeof *c->y);
    }
    c->x[c->n] = x;
    c->y[c->n++] = y;
}

/* Everything a training run holds, freed in one place whatever the path out. */
typedef struct {
    options *o;
    lm_dist *dist; /* the ranks of --mpi (one without) */
    tg_text *text;
    int64_t n_train, n_val;
    bool validate; /* the validation part fills one batch */
    tg_batcher *batches;
    tg_rng rng;
    model lm;
    tg_adam *opt;
    tg_lr_schedule schedule;
    saved_state saved;
    tg_checkpoint_int meta[META_MAX];
    int32_t *inputs, *targets;
    tg_tape *tape;
    tg_state final[CHAR_LM_MAX_LAYERS];
    curve train_curve, val_curve;
    double smooth, last_val;
    int start, stop, faults, in_a_row, applied;
    uint64_t t0;
} run;

static void run_free(run *r)
{
    free(r->train_curve.x), free(r->train_curve.y), free(r->val_curve.x), free(r->val_curve.y);
    free(r->inputs), free(r->targets);
    tg_tape_free(r->tape);
    saved_state_free(&r->saved);
    tg_adam_free(r->opt);
    model_free(&r->lm);
    tg_batcher_free(r->batches);
    tg_text_free(r->text);
}

/* The text, its split, and (resuming) the model's sizes from the checkpoint. */
static int setup_data(run *r, const tg_checkpoint *ck)
{
    options *o = r->o;
    int vocab_size = 0;
    if (!(r->text = tg_text_load(o->data)) ||
        tg_text_split(r->text->n, 0.05, &r->n_train, &r->n_val) != TG_OK) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return -1;
    }
    if (ck && read_sizes(ck, o->resume, o, &vocab_size) != 0)
        return -1;
    if (ck && vocab_size != r->text->vocab_size) {
        fprintf(stderr, "char_lm: cannot resume: checkpoint %s has a vocabulary of %d "
                "characters, the text '%s' uses %d\n", o->resume, vocab_size, o->data,
                r->text->vocab_size);
        return -1;
    }
    r->batches = tg_batcher_new(r->text->ids, r->n_train, o->batch, o->seq, TG_BATCH_STREAM, 0);
    if (!r->batches) {
        fprintf(stderr, "char_lm: %s (text '%s')\n", tg_last_error(), o->data);
        return -1;
    }
    tg_batcher *val = tg_batcher_new(r->text->ids + r->n_train, r->n_val, o->batch, o->seq,
                                     TG_BATCH_STREAM, 0);
    r->validate = val != NULL;
    tg_batcher_free(val);
    if (!r->validate)
        fprintf(stderr, "char_lm: no validation loss: the last 5 %% of the text (%lld "
                "characters) cannot fill one batch of %d sequences of %d characters (+1)\n",
                (long long)r->n_val, o->batch, o->seq);
    return 0;
}

/* The model, Adam, the schedule, what a checkpoint holds, the buffers. */
static int setup_model(run *r, bool with_snapshot)
{
    options *o = r->o;
    tg_rng_seed(&r->rng, o->seed);
    if (model_init(&r->lm, o, r->text->vocab_size, &r->rng) != 0)
        return -1;
    tg_adam_options ao = tg_adam_defaults(o->lr);
    r->opt = tg_adam_new(&r->lm.params, &ao);
    r->schedule = (tg_lr_schedule){.base_lr = o->lr, .decay = TG_LR_COSINE, .t_max = o->steps,
                                   .eta_min = o->lr / 10, .warmup_steps = (int64_t)o->warmup,
                                   .warmup_start_factor = 0.1};
    meta_fill(r->meta, o, r->text->vocab_size, 0);
    size_t ids_per_batch = (size_t)o->batch * (size_t)o->seq;
    r->inputs = malloc(ids_per_batch * sizeof *r->inputs);
    r->targets = malloc(ids_per_batch * sizeof *r->targets);
    r->tape = tg_tape_new();
    if (!r->opt || !r->inputs || !r->targets || !r->tape ||
        saved_state_init(&r->saved, &r->lm, r->opt, r->text->vocab_size, with_snapshot) != 0) {
        fprintf(stderr, "char_lm: cannot set up training: %s\n", tg_last_error());
        return -1;
    }
    tg_tape_set_anomaly(r->tape, o->anomaly);
    for (int i = 0; i < r->text->vocab_size; i++)
        tg_tensor_set_flat(r->saved.vocab, i, r->text->itos[i]);
    r->smooth = log(r->text->vocab_size);
    tg_tensor_set_flat(r->saved.smooth, 0, r->smooth);
    r->last_val = NAN;
    return 0;
}

/* Load the checkpoint into the run and refuse one that does not fit it. */
static int resume(run *r, const tg_checkpoint *ck)
{
    const options *o = r->o;
    bool has_snapshot = tg_checkpoint_has(ck, "snapshot_step");
    tg_params *set = has_snapshot ? &r->saved.all : &r->saved.base;
    if (tg_checkpoint_restore(ck, set, &r->rng, r->meta,
                              has_snapshot ? META_MAX : META_SNAPSHOT_STEP) != TG_OK) {
        fprintf(stderr, "char_lm: cannot resume: %s\n", tg_last_error());
        return -1;
    }
    int64_t step = r->meta[META_STEP].value, halvings = r->meta[META_HALVINGS].value;
    if (step < 0 || step > 1000000000 || halvings < 0 || halvings > 1000) {
        fprintf(stderr, "char_lm: cannot resume: %s holds step %lld, lr_halvings %lld\n",
                o->resume, (long long)step, (long long)halvings);
        return -1;
    }
    if (step > o->steps) {
        fprintf(stderr, "char_lm: cannot resume: %s is at step %lld, beyond --steps %d (give "
                "--steps of at least %lld)\n", o->resume, (long long)step, o->steps,
                (long long)step);
        return -1;
    }
    unsigned char bytes[256];
    if (check_vocab(r->saved.vocab, o->resume, bytes) != 0 ||
        check_adam_state(&r->saved.base, o->resume) != 0)
        return -1;
    for (int i = 0; i < r->text->vocab_size; i++)
        if (bytes[i] != r->text->itos[i]) {
            fprintf(stderr, "char_lm: cannot resume: checkpoint %s has another vocabulary than "
                    "the text '%s': id %d is byte 0x%02x there, 0x%02x here (every id would "
                    "mean another character)\n", o->resume, o->data, i, bytes[i],
                    r->text->itos[i]);
            return -1;
        }
    r->start = (int)step;
    r->smooth = tg_tensor_item(r->saved.smooth);
    r->saved.snapshot_step = has_snapshot ? r->meta[META_SNAPSHOT_STEP].value : step;
    if (r->saved.copies && !has_snapshot) /* restore's first snapshot: where we start */
        snapshot_take(&r->saved, r->start);
    tg_batcher_seek(r->batches, r->start);
    printf("resumed from %s at step %d\n", o->resume, r->start);
    return 0;
}

/* Read the text, build everything, resume: 0, or -1 with the reason said. */
static int setup(run *r, options *o, lm_dist *dist)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->dist = dist;
    tg_checkpoint *ck = NULL;
    if (o->resume && !(ck = tg_checkpoint_open(o->resume))) {
        fprintf(stderr, "char_lm: cannot resume: %s\n", tg_last_error());
        return -1;
    }
    bool resuming = ck != NULL;
    bool with_snapshot = o->on_nonfinite == ON_NONFINITE_RESTORE ||
                         (ck && tg_checkpoint_has(ck, "snapshot_step"));
    int status = -1;
    if (setup_data(r, ck) == 0 && setup_model(r, with_snapshot) == 0 &&
        (!resuming || resume(r, ck) == 0) &&
        lm_dist_setup(dist, o->batch, o->seq, r->lm.rnn) == 0)
        status = 0;
    tg_checkpoint_close(ck);
    if (status == 0 && !resuming && r->saved.copies)
        snapshot_take(&r->saved, 0);
    r->stop = o->stop_after && o->stop_after < o->steps ? o->stop_after : o->steps;
    return status;
}

/* One training step: forward, backward, clip, Adam. The reason it was not
 * applied goes to fault ("" when it was); -1 on an error that ends the run.
 * With --mpi this rank computes its streams of the batch (lm_dist_rows,
 * lm_dist_states), and lm_dist_reduce makes the loss and the gradients the
 * whole batch's on every rank before anything decides on them. */
static int train_step(run *r, int step, double *loss_value, char *fault, size_t size)
{
    const options *o = r->o;
    model *lm = &r->lm;
    tg_batcher_next(r->batches, r->inputs, r->targets);
    tg_tape_reset(r->tape);
    const int32_t *inputs, *targets;
    int64_t m = lm_dist_rows(r->dist, r->inputs, r->targets, &inputs, &targets);
    tg_tensor *loss = model_loss(r->tape, lm, inputs, targets, m, o->seq, o->path,
                                 lm_dist_states(r->dist, lm->rnn, lm->carried), r->final);
    tg_params_zero_grad(&lm->params);
    tg_status s = loss ? tg_backward(r->tape, loss) : tg_tape_status(r->tape);
    bool failed = s != TG_OK && s != TG_ERR_NONFINITE, nonfinite_here = s == TG_ERR_NONFINITE;
    if (failed)
        fprintf(stderr, "char_lm: step %d failed: %s\n", step, tg_tape_error(r->tape));
    double value = loss ? tg_tensor_item(loss) : NAN;
    if (lm_dist_reduce(r->dist, &lm->params, failed, &s, &value) != 0)
        return -1;
    *loss_value = value;
    double lr = ldexp(tg_lr_at(&r->schedule, step), -(int)r->meta[META_HALVINGS].value);
    fault[0] = '\0';
    if (s == TG_ERR_NONFINITE)
        snprintf(fault, size, "%s", nonfinite_here ? tg_tape_error(r->tape)
                                                   : "another rank's tape found a NaN or Inf");
    else if (!isfinite(value))
        snprintf(fault, size, "the loss is %g", value);
    else if (o->max_loss > 0 && value > o->max_loss)
        snprintf(fault, size, "the loss is %g, above --max-loss %g: training diverges", value,
                 o->max_loss);
    else if ((o->clip > 0 && tg_clip_grad_norm(&lm->params, o->clip, NULL) != TG_OK) ||
             tg_adam_set_lr(r->opt, lr) != TG_OK || tg_adam_step(r->opt, r->tape) != TG_OK)
        snprintf(fault, size, "%s", tg_last_error());
    return 0;
}

/* A step that was not applied: report it, name the op, then stop (1), or
 * skip or restore and go on (0). */
static int handle_fault(run *r, int step, const char *fault)
{
    const options *o = r->o;
    r->faults++;
    r->in_a_row++;
    fprintf(stderr, "char_lm: step %d not applied: %s\n", step + 1, fault);
    char where[640] = "";
    if (!o->anomaly && r->dist->rank == 0) { /* the whole batch: every rank's streams */
        diagnose(where, sizeof where, r->tape, &r->lm, o, r->inputs, r->targets, r->final);
        if (where[0])
            fprintf(stderr, "char_lm: replayed in anomaly mode: %s\n", where);
    }
    if (o->on_nonfinite == ON_NONFINITE_STOP || r->in_a_row >= o->max_faults) {
        if (o->on_nonfinite != ON_NONFINITE_STOP)
            fprintf(stderr, "char_lm: %d steps in a row were not applied (--max-faults)\n",
                    r->in_a_row);
        fprintf(stderr, "char_lm: stopping at step %d; nothing saved\n", step + 1);
        return 1;
    }
    if (o->on_nonfinite == ON_NONFINITE_RESTORE) {
        snapshot_restore(&r->saved);
        r->smooth = tg_tensor_item(r->saved.smooth);
        r->meta[META_HALVINGS].value++;
        fprintf(stderr, "char_lm: restored the state of step %lld; learning rate x%g\n",
                (long long)r->saved.snapshot_step,
                ldexp(1.0, -(int)r->meta[META_HALVINGS].value));
    } else {
        fprintf(stderr, "char_lm: skipped the batch of step %d\n", step + 1);
    }
    return 0;
}

static double validation_loss(const run *r)
{
    return evaluate(&r->lm, r->o, r->text->ids + r->n_train, r->n_val, r->inputs, r->targets);
}

/* After an applied step: carry the state, smooth the loss, snapshot, and
 * print progress, validation and samples when due. */
static void after_step(run *r, int step, double value)
{
    const options *o = r->o;
    int done = step + 1;
    bool root = r->dist->rank == 0; /* with --mpi, rank 0 alone evaluates and samples */
    r->in_a_row = 0;
    r->applied++;
    lm_dist_keep_states(r->dist, r->lm.rnn, r->lm.carried, r->final);
    r->smooth = step == 0 ? value : 0.98 * r->smooth + 0.02 * value;
    tg_tensor_set_flat(r->saved.smooth, 0, r->smooth);
    curve_add(&r->train_curve, done, r->smooth);
    if (r->saved.copies && done % o->snapshot_every == 0)
        snapshot_take(&r->saved, done);
    double elapsed = (double)(tg_clock_ns() - r->t0) / 1e9;
    if (done % o->print_every == 0 || done == r->stop)
        progress_line(done, o->steps, value, r->smooth,
                      (double)(done - r->start) * o->batch * o->seq / elapsed, elapsed);
    if (root && r->validate && (done % o->eval_every == 0 || done == r->stop)) {
        r->last_val = validation_loss(r);
        curve_add(&r->val_curve, done, r->last_val);
        printf("validation loss %.4f nats/char (%.3f bits) after %d steps\n", r->last_val,
               r->last_val / log(2), done);
    }
    if (root && done % o->sample_every == 0 && done != r->stop) {
        printf("---- sample ----\n");
        generate(&r->lm, r->text, o->prompt, 200, o->temperature, o->seed + (uint32_t)done,
                 o->path);
        printf("----------------\n");
    }
}

/* The end of a run that was not stopped: save, draw the curve, sample. Any
 * of them failing makes the exit status 1, with the reason. */
static int finish(run *r)
{
    const options *o = r->o;
    int status = 0;
    if (r->stop > r->start && r->applied == 0) {
        fprintf(stderr, "char_lm: none of the %d steps was applied\n", r->stop - r->start);
        status = 1;
    }
    if (r->validate && r->stop > r->start &&
        (r->val_curve.n == 0 || r->val_curve.x[r->val_curve.n - 1] != r->stop))
        r->last_val = validation_loss(r);
    r->meta[META_STEP].value = r->stop;
    r->meta[META_SNAPSHOT_STEP].value = r->saved.snapshot_step;
    if (o->save && o->save[0] &&
        tg_checkpoint_save(o->save, &r->saved.all, &r->rng, r->meta, meta_count(&r->saved)) !=
            TG_OK) {
        fprintf(stderr, "char_lm: cannot save the checkpoint: %s\n", tg_last_error());
        status = 1;
    } else if (o->save && o->save[0]) {
        printf("checkpoint: %s\n", o->save);
    }
    svg_series series[2] = {{"training loss (smoothed)", "#1f77b4", r->train_curve.x,
                             r->train_curve.y, r->train_curve.n, 0},
                            {"validation loss", "#d62728", r->val_curve.x, r->val_curve.y,
                             r->val_curve.n, 1}};
    svg_chart chart = {"char_lm: loss per character", "step", "nats per character", 0};
    if (o->svg && o->svg[0] && svg_write(o->svg, &chart, series, 2) != 0) {
        fprintf(stderr, "char_lm: cannot write the loss curve %s: %s\n", o->svg,
                strerror(errno));
        status = 1;
    } else if (o->svg && o->svg[0]) {
        printf("loss curve: %s\n", o->svg);
    }
    double seconds = (double)(tg_clock_ns() - r->t0) / 1e9;
    if (r->validate)
        printf("trained %d steps in %.1f s; final validation loss %.4f nats/char\n",
               r->stop - r->start, seconds, r->last_val);
    else
        printf("trained %d steps in %.1f s; no validation loss\n", r->stop - r->start, seconds);
    printf("---- sample (temperature %.2f) ----\n", o->temperature);
    if (generate(&r->lm, r->text, o->prompt, o->length, o->temperature, o->seed, o->path) != 0)
        status = 1;
    return status;
}

static void print_plan(const run *r)
{
    const options *o = r->o;
    printf("char_lm: %s, %lld characters (%lld for validation), vocabulary %d\n", o->data,
           (long long)r->text->n, (long long)r->n_val, r->text->vocab_size);
    printf("model: embed %d -> %s x%d, hidden %d -> linear %d; %lld parameters; %s path, "
           "%d thread%s\n",
           o->embed, tg_cell_name(o->cell), o->layers, o->hidden, r->text->vocab_size,
           (long long)tg_params_numel(&r->lm.params), o->path == TG_PATH_FUSED ? "fused" : "tape",
           tg_get_num_threads(), tg_get_num_threads() == 1 ? "" : "s");
    printf("training: %d steps of %d x %d characters, Adam lr %g (warm-up, cosine), clip %g\n",
           o->steps, o->batch, o->seq, o->lr, o->clip);
    if (r->dist->size > 1)
        printf("data parallel: %d ranks of %d streams (rank r takes streams r, r+%d, ...), "
               "%d thread%s each; one allreduce of %lld gradients per step\n", r->dist->size,
               r->dist->local_batch, r->dist->size, tg_get_num_threads(),
               tg_get_num_threads() == 1 ? "" : "s", (long long)tg_params_numel(&r->lm.params));
}

/* With --mpi: every rank must run the same training from the same state.
 * They compare what their options and checkpoint decide, then take rank
 * 0's parameters, optimizer state, carried states, smoothed loss and
 * generator (tg_params_flatten + MPI_Bcast). */
static int start_alike(run *r)
{
    const options *o = r->o;
    const lm_dist_fact same[] = {
        {"the first step", r->start},        {"--steps", o->steps},
        {"the last step", r->stop},          {"the text's length", (double)r->text->n},
        {"--lr", o->lr},                     {"--clip", o->clip},
        {"--max-loss", o->max_loss},         {"--on-nonfinite", o->on_nonfinite},
        {"lr_halvings", (double)r->meta[META_HALVINGS].value},
        {"the snapshot's step", (double)r->saved.snapshot_step}};
    if (lm_dist_broadcast(r->dist, &r->saved.all, &r->rng, same,
                          (int)(sizeof same / sizeof same[0])) != 0)
        return -1;
    r->smooth = tg_tensor_item(r->saved.smooth);
    return 0;
}

static int train(options *o, lm_dist *dist)
{
    run r;
    if (lm_dist_agree(dist, setup(&r, o, dist) != 0) != 0 || start_alike(&r) != 0) {
        run_free(&r);
        return 1;
    }
    print_plan(&r);
    r.t0 = tg_clock_ns();
    int status = 0;
    for (int step = r.start; step < r.stop && status == 0; step++) {
        double value;
        char fault[640];
        if (train_step(&r, step, &value, fault, sizeof fault) != 0)
            status = 1;
        else if (fault[0])
            status = handle_fault(&r, step, fault);
        else
            after_step(&r, step, value);
    }
    if (r.faults > 0)
        fprintf(stderr, "char_lm: %d step%s not applied (--on-nonfinite %s)\n", r.faults,
                r.faults == 1 ? " was" : "s were",
                (const char *[]){"stop", "skip", "restore"}[o->on_nonfinite]);
    if (status == 0 && lm_dist_check_same(dist, &r.saved.all) != 0)
        status = 1;
    if (status == 0 && dist->rank == 0)
        status = finish(&r);
    run_free(&r);
    return status;
}

/* ---- sampling from a checkpoint ------------------------------------------------------------ */

/* Build the model the checkpoint describes and load it (read once); its
 * vocabulary, checked, into bytes[]. */
static int load_for_sampling(const tg_checkpoint *ck, options *o, model *lm, tg_adam **opt,
                             saved_state *saved, tg_rng *rng, unsigned char *bytes,
                             int *vocab_size)
{
    if (read_sizes(ck, o->load, o, vocab_size) != 0 || model_init(lm, o, *vocab_size, rng) != 0)
        return -1;
    bool has_snapshot = tg_checkpoint_has(ck, "snapshot_step");
    tg_adam_options ao = tg_adam_defaults(o->lr);
    tg_checkpoint_int meta[META_MAX];
    meta_fill(meta, o, *vocab_size, 0);
    if (!(*opt = tg_adam_new(&lm->params, &ao)) ||
        saved_state_init(saved, lm, *opt, *vocab_size, has_snapshot) != 0 ||
        tg_checkpoint_restore(ck, has_snapshot ? &saved->all : &saved->base, rng, meta,
                              has_snapshot ? META_MAX : META_SNAPSHOT_STEP) != TG_OK) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return -1;
    }
    return check_vocab(saved->vocab, o->load, bytes);
}

static int sample_from_checkpoint(options *o)
{
    tg_checkpoint *ck = tg_checkpoint_open(o->load);
    if (!ck) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return 1;
    }
    model lm = {0};
    tg_adam *opt = NULL;
    saved_state saved = {0};
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    unsigned char bytes[256];
    int vocab_size = 0, status = 1;
    if (load_for_sampling(ck, o, &lm, &opt, &saved, &rng, bytes, &vocab_size) == 0) {
        /* A text holding each vocabulary byte once rebuilds the same vocabulary. */
        tg_text *text = tg_text_from_bytes(bytes, (size_t)vocab_size);
        if (!text)
            fprintf(stderr, "char_lm: %s\n", tg_last_error());
        else if (generate(&lm, text, o->prompt, o->length, o->temperature, o->seed, o->path) == 0)
            status = 0;
        tg_text_free(text);
    }
    tg_checkpoint_close(ck);
    saved_state_free(&saved);
    tg_adam_free(opt);
    model_free(&lm);
    return status;
}

/* ---- Dinosaurus Island ------------------------------------------------------------------------ */

/* The course's sample(): one name (at most size - 1 characters, the first
 * capitalised) from x = 0 and a = 0, with np.random.seed(counter + seed)
 * before every draw and seed growing with the counter. */
static void dinos_sample(const tg_recurrent *rnn, const tg_linear *head, const tg_text *text,
                         tg_path path, int seed, char *out, size_t size)
{
    int V = text->vocab_size, newline = tg_text_id(text, '\n');
    tg_state *a = tg_states_new(rnn, 1), next[1];
    tg_tape *st = tg_tape_new();
    tg_tape_no_grad(st, true);
    int32_t id = -1;
    size_t n = 0;
    for (int counter = 0; id != newline && counter < 50; counter++, seed++) {
        tg_tape_reset(st);
        tg_tensor *xs = tg_tape_zeros(st, TG_F64, TG_DIMS(V, 1, 1));
        if (id >= 0)
            tg_tensor_set(xs, (int64_t[]){id, 0, 0}, 1.0);
        tg_tensor *z =
            tg_linear_forward(st, head, tg_recurrent_forward(st, rnn, xs, a, path, next));
        tg_states_keep(rnn, a, next);
        tg_tensor *p = tg_softmax(st, z, 0);
        double probs[256];
        for (int i = 0; i < V; i++)
            probs[i] = tg_tensor_get_flat(p, i);
        tg_rng r;
        tg_rng_seed(&r, (uint32_t)(counter + seed));
        id = (int32_t)tg_rng_choice(&r, probs, V);
        if (id < 0) /* no finite probability: end the name */
            break;
        if (id != newline && n + 1 < size)
            out[n++] = (char)text->itos[id];
    }
    out[n] = '\0';
    if (n > 0)
        out[0] = (char)(out[0] >= 'a' && out[0] <= 'z' ? out[0] - 'a' + 'A' : out[0]);
    tg_tape_free(st);
    tg_states_free(rnn, a);
}

/* The course's names and model: the text lower-cased and cut into names
 * (shuffled as np.random.seed(0); np.random.shuffle(examples)), a vanilla
 * RNN with 50 units and its head, SGD. */
typedef struct {
    tg_text *raw, *text;
    char *lower;
    int32_t *starts;
    int n_names, newline;
    tg_recurrent *rnn;
    tg_linear *head;
    tg_params params;
    tg_sgd *opt;
    tg_state *carried;
    tg_tape *tape;
} dinos_run;

static void dinos_free(dinos_run *d)
{
    tg_tape_free(d->tape);
    tg_states_free(d->rnn, d->carried);
    tg_sgd_free(d->opt);
    tg_params_clear(&d->params);
    tg_recurrent_free(d->rnn);
    tg_linear_free(d->head);
    free(d->starts);
    free(d->lower);
    tg_text_free(d->text);
    tg_text_free(d->raw);
}

static int dinos_names(dinos_run *d, const char *path)
{
    if (!(d->raw = tg_text_load(path)))
        return -1;
    int64_t n = d->raw->n;
    d->lower = malloc((size_t)n + 1);
    d->starts = malloc(((size_t)n + 1) * sizeof *d->starts);
    for (int64_t i = 0; d->lower && i < n; i++) {
        unsigned char c = d->raw->itos[d->raw->ids[i]];
        d->lower[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    if (!d->lower || !d->starts || !(d->text = tg_text_from_bytes(d->lower, (size_t)n)))
        return -1;
    d->lower[n] = '\0';
    for (int64_t i = 0; i < n; i++)
        if ((i == 0 || d->lower[i - 1] == '\n') && d->lower[i] != '\n')
            d->starts[d->n_names++] = (int32_t)i;
    d->newline = tg_text_id(d->text, '\n');
    if (d->n_names == 0 || d->newline < 0) {
        tg_fail(TG_ERR_FORMAT, "--dinos: the text '%s' holds no names, one per line", path);
        return -1;
    }
    tg_rng shuffle_rng;
    tg_rng_seed(&shuffle_rng, 0);
    tg_rng_shuffle_i32(&shuffle_rng, d->starts, d->n_names);
    return 0;
}

static int dinos_model(dinos_run *d)
{
    int V = d->text->vocab_size;
    tg_rng rng; /* np.random.seed(1) in initialize_parameters */
    tg_rng_seed(&rng, 1);
    tg_recurrent_options ro = tg_recurrent_defaults();
    ro.init = TG_INIT_COURSE;
    d->rnn = tg_recurrent_new(TG_CELL_RNN, V, 50, TG_F64, &ro, &rng);
    d->head = tg_linear_new(50, V, TG_F64, "Wya", "by", TG_INIT_COURSE, &rng);
    if (!d->rnn || !d->head || tg_params_extend(&d->params, NULL, &d->rnn->params) ||
        tg_params_extend(&d->params, NULL, &d->head->params))
        return -1;
    tg_sgd_options so = tg_sgd_defaults(0.01);
    d->opt = tg_sgd_new(&d->params, &so);
    d->carried = tg_states_new(d->rnn, 1);
    d->tape = tg_tape_new();
    return d->opt && d->carried && d->tape ? 0 : -1;
}

/* One name: x<0> = 0 then its characters one-hot, targets its characters
 * then a newline; the loss summed over the name. NULL with a tape error. */
static tg_tensor *dinos_loss(dinos_run *d, const char *name, tg_path path, tg_state *final)
{
    int V = d->text->vocab_size;
    int len = (int)(strchr(name, '\n') ? strchr(name, '\n') - name : (long)strlen(name));
    int T = len + 1;
    tg_tape_reset(d->tape);
    int32_t *targets = tg_tape_alloc(d->tape, (size_t)T * sizeof *targets);
    tg_tensor *x = tg_tape_zeros(d->tape, TG_F64, TG_DIMS(V, 1, T)); /* x<0> stays 0 */
    for (int t = 0; targets && x && t < T; t++) {
        int32_t id = t < len ? tg_text_id(d->text, (unsigned char)name[t]) : d->newline;
        if (t + 1 < T)
            tg_tensor_set(x, (int64_t[]){id, 0, t + 1}, 1.0);
        targets[t] = id;
    }
    tg_tensor *h = tg_recurrent_forward(d->tape, d->rnn, x, d->carried, path, final);
    return tg_cross_entropy(d->tape, tg_linear_forward(d->tape, d->head, h), 0, targets, T,
                            TG_REDUCE_SUM);
}

/* The course's setting: names one per step, vanilla RNN with 50 units, loss
 * summed over the name, gradients clipped to [-5, 5], SGD with lr 0.01, the
 * hidden state carried from one name to the next, and the course's loss
 * smoothing; seven sampled names every 2000 steps. */
static int dinos(const options *o)
{
    dinos_run d = {0};
    int status = 1;
    if (dinos_names(&d, o->data) != 0 || dinos_model(&d) != 0) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        dinos_free(&d);
        return 1;
    }
    int V = d.text->vocab_size;
    printf("Dinosaurus Island: %d names, vocabulary %d, RNN with 50 units, %d iterations\n",
           d.n_names, V, o->steps);
    double smooth = -log(1.0 / V) * 7; /* the course's get_initial_loss */
    tg_state final[1];
    for (int j = 0; j < o->steps; j++) {
        tg_tensor *loss = dinos_loss(&d, d.lower + d.starts[j % d.n_names], o->path, final);
        tg_params_zero_grad(&d.params);
        if (!loss || tg_backward(d.tape, loss) != TG_OK) {
            fprintf(stderr, "char_lm: %s\n", tg_tape_error(d.tape));
            dinos_free(&d);
            return 1;
        }
        tg_states_keep(d.rnn, d.carried, final);
        tg_clip_grad_value(&d.params, 5.0);
        tg_sgd_step(d.opt, d.tape);
        smooth = smooth * 0.999 + tg_tensor_item(loss) * 0.001;
        if (j % 2000 == 0) {
            printf("Iteration: %d, Loss: %f\n", j, smooth);
            for (int s = 0; s < 7; s++) { /* seeds 0 to 6, as the course's sample() */
                char out[64];
                dinos_sample(d.rnn, d.head, d.text, o->path, s, out, sizeof out);
                printf("%s\n", out);
            }
            printf("\n");
        }
    }
    status = 0;
    dinos_free(&d);
    return status;
}

int main(int argc, char **argv)
{
    /* --mpi starts MPI first, so that only rank 0 reports a bad option. */
    lm_dist dist;
    if (lm_dist_start(&dist, lm_dist_wanted(argc, argv), &argc, &argv) != 0)
        return lm_dist_end(&dist, 1);
    options o;
    char message[512];
    int status = cli_exit_status(char_lm_parse(argc, argv, &o, message, sizeof message),
                                 "char_lm", message, char_lm_usage);
    if (status >= 0)
        return lm_dist_end(&dist, status);
    if (o.threads > 0)
        tg_set_num_threads(o.threads);
    if (dist.size > 1 && (o.dinos || o.sample_mode)) {
        fprintf(stderr, "char_lm: --mpi trains; --%s runs as one process\n",
                o.dinos ? "dinos" : "sample");
        return lm_dist_end(&dist, 2);
    }
    if (o.dinos)
        return lm_dist_end(&dist, dinos(&o));
    if (o.sample_mode)
        return lm_dist_end(&dist, sample_from_checkpoint(&o));
    return lm_dist_end(&dist, train(&o, &dist));
}
