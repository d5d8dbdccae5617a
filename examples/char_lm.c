/* char_lm: a character-level language model, trained on any text.
 *
 *     char_lm                               LSTM on Shakespeare (make run)
 *     char_lm --cell gru --hidden 128 my.txt
 *     char_lm --sample --load build/char_lm.ckpt --prompt "ROMEO:"
 *     char_lm --dinos                       the course's Dinosaurus Island
 *
 * The model reads characters through an embedding, runs them through a
 * recurrent stack (tg_recurrent) and predicts the next character with a
 * linear head and cross-entropy. Training walks the text as m parallel
 * streams of T characters: the final state of one batch starts the next
 * (truncated backprop-through-time), while gradients stop at the batch edge.
 * Adam with warm-up and cosine decay, gradient clipping by global norm, a
 * validation loss on the last 5 % of the text, samples while it trains, a
 * checkpoint and an SVG loss curve at the end. Resuming from a checkpoint
 * continues bit for bit where the run stopped. A step whose loss or
 * gradients are not finite, or whose loss diverges, is never applied
 * (--on-nonfinite stop|skip|restore decides what follows; see "numerical
 * faults" below). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    lm->embed = tg_embedding_new(vocab, o->embed, TG_F32, TG_INIT_PYTORCH, rng);
    lm->rnn = tg_recurrent_new(o->cell, o->embed, o->hidden, TG_F32, &ro, rng);
    lm->head = tg_linear_new(o->hidden, vocab, TG_F32, "W", "b", TG_INIT_PYTORCH, rng);
    lm->carried = lm->rnn ? tg_states_new(lm->rnn, o->batch) : NULL;
    if (!lm->embed || !lm->rnn || !lm->head || !lm->carried ||
        tg_params_extend(&lm->params, "embed.", &lm->embed->params) ||
        tg_params_extend(&lm->params, "rnn.", &lm->rnn->params) ||
        tg_params_extend(&lm->params, "head.", &lm->head->params)) {
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

/* Draw the next id from logits (vocab,) at a temperature. */
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
            id = draw(logits, temperature, &rng);
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

/* Everything a checkpoint holds: parameters, Adam's state, the carried
 * states, the vocabulary, the generator, and the integers below. */
typedef struct {
    tg_params all;
    tg_tensor *vocab;
    char names[16][2][32];
} saved_state;

enum { META_STEP, META_CELL, META_LAYERS, META_HIDDEN, META_EMBED, META_VOCAB, META_BATCH,
       META_SEQ, META_HALVINGS, META_COUNT };

static void meta_fill(tg_checkpoint_int *meta, const options *o, int vocab, int64_t step)
{
    const char *names[META_COUNT] = {"step",  "cell", "layers", "hidden",     "embed",
                                     "vocab_size", "batch", "seq", "lr_halvings"};
    int64_t values[META_COUNT] = {step, o->cell, o->layers, o->hidden, o->embed, vocab,
                                  o->batch, o->seq, 0};
    for (int i = 0; i < META_COUNT; i++)
        meta[i] = (tg_checkpoint_int){names[i], values[i]};
}

static int saved_state_init(saved_state *s, const model *lm, const tg_adam *opt,
                            const tg_text *text)
{
    memset(s, 0, sizeof *s);
    s->vocab = tg_tensor_zeros(TG_F32, TG_DIMS(text->vocab_size));
    for (int i = 0; s->vocab && i < text->vocab_size; i++)
        tg_tensor_set_flat(s->vocab, i, text->itos[i]);
    if (!s->vocab || tg_params_extend(&s->all, NULL, &lm->params) ||
        tg_adam_state(opt, &s->all) || tg_params_add(&s->all, "vocab", s->vocab))
        return -1;
    for (int k = 0; k < lm->rnn->num_layers; k++) {
        snprintf(s->names[k][0], 32, "state.l%d.a", k);
        snprintf(s->names[k][1], 32, "state.l%d.c", k);
        if (tg_params_add(&s->all, s->names[k][0], lm->carried[k].a))
            return -1;
        if (lm->carried[k].c && tg_params_add(&s->all, s->names[k][1], lm->carried[k].c))
            return -1;
    }
    return 0;
}

static void saved_state_free(saved_state *s)
{
    tg_params_clear(&s->all);
    tg_tensor_free(s->vocab);
}

/* The model's sizes as stored in a checkpoint (to rebuild it before loading),
 * held to the ranges of the options: the checkpoint's CRCs catch accidents,
 * not a file written to make char_lm build a model it cannot hold. */
static int read_sizes(const char *path, options *o)
{
    static const struct {
        const char *name;
        int64_t lo, hi;
    } sizes[6] = {{"cell", TG_CELL_RNN, TG_CELL_GRU}, {"layers", 1, CHAR_LM_MAX_LAYERS},
                  {"hidden", 1, CHAR_LM_MAX_WIDTH},   {"embed", 1, CHAR_LM_MAX_WIDTH},
                  {"batch", 1, 100000},                {"seq", 1, CHAR_LM_MAX_SEQ}};
    int *fields[6] = {&o->cell, &o->layers, &o->hidden, &o->embed, &o->batch, &o->seq};
    for (int i = 0; i < 6; i++) {
        int64_t v;
        if (tg_checkpoint_read_int(path, sizes[i].name, &v) != TG_OK) {
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

/* ---- numerical faults ---------------------------------------------------------------------
 *
 * A step whose loss or gradient is NaN or Inf, whose update would not be
 * finite, or whose loss exceeds --max-loss (divergence: Adam's steps are
 * bounded by the learning rate, so a huge rate makes the loss explode long
 * before anything overflows) is never applied: the optimizer refuses
 * non-finite values before it writes, and the state carried to the next
 * batch is kept only after a good step. Then --on-nonfinite decides: stop
 * (exit 1, nothing saved), skip the batch, or restore the last snapshot (an
 * in-memory copy of the parameters, Adam's moments and step count and the
 * carried states, taken every --snapshot-every steps) and halve the learning
 * rate, since the same rate would lead to the same fault. The halvings are
 * saved in the checkpoint, so a resumed run continues at the same rate. */

typedef struct {
    tg_tensor **copies; /* one per tensor of the checkpoint's set */
    int count;
    int step; /* the number of steps done when it was taken */
} snapshot;

static int snapshot_init(snapshot *s, const tg_params *all)
{
    s->count = all->count;
    s->step = 0;
    s->copies = calloc((size_t)all->count, sizeof *s->copies);
    for (int i = 0; s->copies && i < all->count; i++)
        if (!(s->copies[i] = tg_tensor_copy(all->items[i].tensor)))
            return -1;
    return s->copies ? 0 : -1;
}

static void snapshot_take(snapshot *s, const tg_params *all, int step)
{
    for (int i = 0; i < s->count; i++)
        tg_tensor_copy_into(s->copies[i], all->items[i].tensor);
    s->step = step;
}

static void snapshot_restore(const snapshot *s, const tg_params *all)
{
    for (int i = 0; i < s->count; i++)
        tg_tensor_copy_into(all->items[i].tensor, s->copies[i]);
}

static void snapshot_free(snapshot *s)
{
    for (int i = 0; s->copies && i < s->count; i++)
        tg_tensor_free(s->copies[i]);
    free(s->copies);
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

static int train(options *o)
{
    tg_text *text = tg_text_load(o->data);
    if (!text) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return 1;
    }
    int64_t n_train, n_val;
    if (tg_text_split(text->n, 0.05, &n_train, &n_val) != TG_OK) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        tg_text_free(text);
        return 1;
    }
    if (o->resume && read_sizes(o->resume, o) != 0) {
        tg_text_free(text);
        return 1;
    }
    tg_batcher *batches = tg_batcher_new(text->ids, n_train, o->batch, o->seq, TG_BATCH_STREAM, 0);
    if (!batches) {
        fprintf(stderr, "char_lm: %s (text '%s')\n", tg_last_error(), o->data);
        tg_text_free(text);
        return 1;
    }
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    model lm;
    if (model_init(&lm, o, text->vocab_size, &rng) != 0)
        return 1;
    tg_adam_options ao = tg_adam_defaults(o->lr);
    tg_adam *opt = tg_adam_new(&lm.params, &ao);
    tg_lr_schedule schedule = {.base_lr = o->lr, .decay = TG_LR_COSINE, .t_max = o->steps,
                               .eta_min = o->lr / 10, .warmup_steps = (int64_t)o->warmup,
                               .warmup_start_factor = 0.1};
    saved_state saved;
    tg_checkpoint_int meta[META_COUNT];
    meta_fill(meta, o, text->vocab_size, 0);
    if (!opt || saved_state_init(&saved, &lm, opt, text) != 0) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return 1;
    }
    int start = 0;
    if (o->resume) {
        if (tg_checkpoint_load(o->resume, &saved.all, &rng, meta, META_COUNT) != TG_OK) {
            fprintf(stderr, "char_lm: cannot resume: %s\n", tg_last_error());
            return 1;
        }
        start = (int)meta[META_STEP].value;
        if (meta[META_STEP].value < 0 || meta[META_STEP].value > 1000000000 ||
            meta[META_HALVINGS].value < 0 || meta[META_HALVINGS].value > 1000) {
            fprintf(stderr, "char_lm: cannot resume: %s holds step %lld, lr_halvings %lld\n",
                    o->resume, (long long)meta[META_STEP].value,
                    (long long)meta[META_HALVINGS].value);
            return 1;
        }
        tg_batcher_seek(batches, start);
        printf("resumed from %s at step %d\n", o->resume, start);
    }

    printf("char_lm: %s, %lld characters (%lld for validation), vocabulary %d\n", o->data,
           (long long)text->n, (long long)n_val, text->vocab_size);
    printf("model: embed %d -> %s x%d, hidden %d -> linear %d; %lld parameters; %s path, "
           "%d thread%s\n",
           o->embed, tg_cell_name(o->cell), o->layers, o->hidden, text->vocab_size,
           (long long)tg_params_numel(&lm.params), o->path == TG_PATH_FUSED ? "fused" : "tape",
           tg_get_num_threads(), tg_get_num_threads() == 1 ? "" : "s");
    printf("training: %d steps of %d x %d characters, Adam lr %g (warm-up, cosine), clip %g\n",
           o->steps, o->batch, o->seq, o->lr, o->clip);

    size_t ids_per_batch = (size_t)o->batch * (size_t)o->seq;
    int32_t *inputs = malloc(ids_per_batch * sizeof *inputs);
    int32_t *targets = malloc(ids_per_batch * sizeof *targets);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, o->anomaly);
    tg_state final[CHAR_LM_MAX_LAYERS];
    curve train_curve = {0}, val_curve = {0};
    double smooth = log(text->vocab_size), last_val = NAN;
    uint64_t t0 = tg_clock_ns();
    int status = 0, in_a_row = 0, faults = 0;
    int stop = o->stop_after && o->stop_after < o->steps ? o->stop_after : o->steps;
    snapshot snap = {0};
    if (o->on_nonfinite == ON_NONFINITE_RESTORE) {
        if (snapshot_init(&snap, &saved.all) != 0) {
            fprintf(stderr, "char_lm: no memory for a snapshot: %s\n", tg_last_error());
            return 1;
        }
        snap.step = start;
    }
    for (int step = start; step < stop; step++) {
        tg_batcher_next(batches, inputs, targets);
        tg_tape_reset(tape);
        tg_tensor *loss = model_loss(tape, &lm, inputs, targets, o->batch, o->seq, o->path,
                                     lm.carried, final);
        tg_params_zero_grad(&lm.params);
        tg_status s = loss ? tg_backward(tape, loss) : tg_tape_status(tape);
        if (s != TG_OK && s != TG_ERR_NONFINITE) {
            fprintf(stderr, "char_lm: step %d failed: %s\n", step, tg_tape_error(tape));
            status = 1;
            break;
        }
        double value = loss ? tg_tensor_item(loss) : NAN;
        double lr = ldexp(tg_lr_at(&schedule, step), -(int)meta[META_HALVINGS].value);
        char fault[640] = "";
        if (s == TG_ERR_NONFINITE)
            snprintf(fault, sizeof fault, "%s", tg_tape_error(tape));
        else if (!isfinite(value))
            snprintf(fault, sizeof fault, "the loss is %g", value);
        else if (o->max_loss > 0 && value > o->max_loss)
            snprintf(fault, sizeof fault, "the loss is %g, above --max-loss %g: training diverges",
                     value, o->max_loss);
        else if ((o->clip > 0 && tg_clip_grad_norm(&lm.params, o->clip, NULL) != TG_OK) ||
                 tg_adam_set_lr(opt, lr) != TG_OK || tg_adam_step(opt, tape) != TG_OK)
            snprintf(fault, sizeof fault, "%s", tg_last_error());
        if (fault[0]) {
            faults++;
            in_a_row++;
            fprintf(stderr, "char_lm: step %d not applied: %s\n", step + 1, fault);
            char where[640] = "";
            if (!o->anomaly) {
                diagnose(where, sizeof where, tape, &lm, o, inputs, targets, final);
                if (where[0])
                    fprintf(stderr, "char_lm: replayed in anomaly mode: %s\n", where);
            }
            if (o->on_nonfinite == ON_NONFINITE_STOP || in_a_row >= o->max_faults) {
                if (o->on_nonfinite != ON_NONFINITE_STOP)
                    fprintf(stderr, "char_lm: %d steps in a row were not applied (--max-faults)\n",
                            in_a_row);
                fprintf(stderr, "char_lm: stopping at step %d; nothing saved\n", step + 1);
                status = 1;
                break;
            }
            if (o->on_nonfinite == ON_NONFINITE_RESTORE) {
                snapshot_restore(&snap, &saved.all);
                meta[META_HALVINGS].value++;
                fprintf(stderr, "char_lm: restored the state of step %d; learning rate x%g\n",
                        snap.step, ldexp(1.0, -(int)meta[META_HALVINGS].value));
            } else {
                fprintf(stderr, "char_lm: skipped the batch of step %d\n", step + 1);
            }
            continue;
        }
        in_a_row = 0;
        tg_states_keep(lm.rnn, lm.carried, final);
        smooth = step == start && !o->resume ? value : 0.98 * smooth + 0.02 * value;
        curve_add(&train_curve, step + 1, smooth);
        int done = step + 1;
        if (o->on_nonfinite == ON_NONFINITE_RESTORE && done % o->snapshot_every == 0)
            snapshot_take(&snap, &saved.all, done);
        double elapsed = (tg_clock_ns() - t0) / 1e9;
        if (done % o->print_every == 0 || done == stop)
            progress_line(done, o->steps, value, smooth,
                          (double)(done - start) * (double)ids_per_batch / elapsed, elapsed);
        if (done % o->eval_every == 0 || done == stop) {
            last_val = evaluate(&lm, o, text->ids + n_train, n_val, inputs, targets);
            curve_add(&val_curve, done, last_val);
            printf("validation loss %.4f nats/char (%.3f bits) after %d steps\n", last_val,
                   last_val / log(2), done);
        }
        if (done % o->sample_every == 0 && done != stop) {
            printf("---- sample ----\n");
            generate(&lm, text, o->prompt, 200, o->temperature, o->seed + (uint32_t)done, o->path);
            printf("----------------\n");
        }
    }
    double seconds = (tg_clock_ns() - t0) / 1e9;
    if (faults > 0)
        fprintf(stderr, "char_lm: %d step%s not applied (--on-nonfinite %s)\n", faults,
                faults == 1 ? " was" : "s were",
                (const char *[]){"stop", "skip", "restore"}[o->on_nonfinite]);
    if (status == 0 && (val_curve.n == 0 || val_curve.x[val_curve.n - 1] != stop) && stop > start)
        last_val = evaluate(&lm, o, text->ids + n_train, n_val, inputs, targets);
    if (status == 0) {
        meta[META_STEP].value = stop;
        if (o->save && tg_checkpoint_save(o->save, &saved.all, &rng, meta, META_COUNT) == TG_OK)
            printf("checkpoint: %s\n", o->save);
        else if (o->save)
            fprintf(stderr, "char_lm: cannot save: %s\n", tg_last_error());
        svg_series series[2] = {
            {"training loss (smoothed)", "#1f77b4", train_curve.x, train_curve.y, train_curve.n, 0},
            {"validation loss", "#d62728", val_curve.x, val_curve.y, val_curve.n, 1}};
        svg_chart chart = {"char_lm: loss per character", "step", "nats per character", 0};
        if (o->svg && svg_write(o->svg, &chart, series, 2) == 0)
            printf("loss curve: %s\n", o->svg);
        printf("trained %d steps in %.1f s; final validation loss %.4f nats/char\n",
               stop - start, seconds, last_val);
        printf("---- sample (temperature %.2f) ----\n", o->temperature);
        generate(&lm, text, o->prompt, o->length, o->temperature, o->seed, o->path);
    }
    snapshot_free(&snap);
    free(train_curve.x), free(train_curve.y), free(val_curve.x), free(val_curve.y);
    free(inputs), free(targets);
    tg_tape_free(tape);
    saved_state_free(&saved);
    tg_adam_free(opt);
    model_free(&lm);
    tg_batcher_free(batches);
    tg_text_free(text);
    return status;
}

/* ---- sampling from a checkpoint ------------------------------------------------------------ */

static int sample_from_checkpoint(options *o)
{
    int64_t vocab_size;
    if (read_sizes(o->load, o) != 0)
        return 1;
    if (tg_checkpoint_read_int(o->load, "vocab_size", &vocab_size) != TG_OK) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return 1;
    }
    if (vocab_size < 2 || vocab_size > 256) {
        fprintf(stderr, "char_lm: checkpoint %s has a vocabulary of %lld\n", o->load,
                (long long)vocab_size);
        return 1;
    }
    /* A text holding each vocabulary byte once rebuilds the same vocabulary. */
    unsigned char bytes[256];
    tg_tensor *vocab = tg_tensor_zeros(TG_F32, TG_DIMS(vocab_size));
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    model lm;
    tg_adam_options ao = tg_adam_defaults(o->lr);
    if (model_init(&lm, o, (int)vocab_size, &rng) != 0)
        return 1;
    tg_adam *opt = tg_adam_new(&lm.params, &ao);
    saved_state saved;
    memset(&saved, 0, sizeof saved);
    saved.vocab = vocab;
    int status = 1;
    tg_checkpoint_int meta[META_COUNT];
    meta_fill(meta, o, (int)vocab_size, 0);
    if (opt && tg_params_extend(&saved.all, NULL, &lm.params) == TG_OK &&
        tg_adam_state(opt, &saved.all) == TG_OK &&
        tg_params_add(&saved.all, "vocab", vocab) == TG_OK) {
        for (int k = 0; k < lm.rnn->num_layers; k++) {
            snprintf(saved.names[k][0], 32, "state.l%d.a", k);
            snprintf(saved.names[k][1], 32, "state.l%d.c", k);
            tg_params_add(&saved.all, saved.names[k][0], lm.carried[k].a);
            if (lm.carried[k].c)
                tg_params_add(&saved.all, saved.names[k][1], lm.carried[k].c);
        }
        if (tg_checkpoint_load(o->load, &saved.all, &rng, meta, META_COUNT) != TG_OK)
            fprintf(stderr, "char_lm: %s\n", tg_last_error());
        else {
            for (int i = 0; i < vocab_size; i++)
                bytes[i] = (unsigned char)tg_tensor_get_flat(vocab, i);
            tg_text *text = tg_text_from_bytes(bytes, (size_t)vocab_size);
            if (text) {
                status = generate(&lm, text, o->prompt, o->length, o->temperature, o->seed,
                                  o->path);
                tg_text_free(text);
            }
        }
    }
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
        if (id != newline && n + 1 < size)
            out[n++] = (char)text->itos[id];
    }
    out[n] = '\0';
    if (n > 0)
        out[0] = (char)(out[0] >= 'a' && out[0] <= 'z' ? out[0] - 'a' + 'A' : out[0]);
    tg_tape_free(st);
    tg_states_free(rnn, a);
}

/* The course's setting: names one per step, x<0> = 0 then one-hot
 * characters, vanilla RNN with 50 units, loss summed over the name,
 * gradients clipped to [-5, 5], SGD with lr 0.01, the hidden state carried
 * from one name to the next, and the course's loss smoothing. */
static int dinos(const options *o)
{
    tg_text *raw = tg_text_load(o->data);
    if (!raw) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return 1;
    }
    /* Lower-case the text as the course does, then cut it into names. */
    char *lower = malloc((size_t)raw->n + 1);
    for (int64_t i = 0; lower && i < raw->n; i++) {
        unsigned char c = raw->itos[raw->ids[i]];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    tg_text *text = lower ? tg_text_from_bytes(lower, (size_t)raw->n) : NULL;
    int n_names = 0;
    int32_t *starts = malloc(((size_t)raw->n + 1) * sizeof *starts);
    if (!lower || !text || !starts) {
        fprintf(stderr, "char_lm: %s\n", lower && starts ? tg_last_error() : "out of memory");
        free(starts);
        free(lower);
        tg_text_free(text);
        tg_text_free(raw);
        return 1;
    }
    for (int64_t i = 0; i < raw->n; i++)
        if ((i == 0 || lower[i - 1] == '\n') && lower[i] != '\n')
            starts[n_names++] = (int32_t)i;
    tg_rng shuffle_rng; /* np.random.seed(0); np.random.shuffle(examples) */
    tg_rng_seed(&shuffle_rng, 0);
    tg_rng_shuffle_i32(&shuffle_rng, starts, n_names);
    int V = text->vocab_size, newline = tg_text_id(text, '\n');

    tg_rng rng; /* np.random.seed(1) in initialize_parameters */
    tg_rng_seed(&rng, 1);
    tg_recurrent_options ro = tg_recurrent_defaults();
    ro.init = TG_INIT_COURSE;
    tg_recurrent *rnn = tg_recurrent_new(TG_CELL_RNN, V, 50, TG_F64, &ro, &rng);
    tg_linear *head = tg_linear_new(50, V, TG_F64, "Wya", "by", TG_INIT_COURSE, &rng);
    tg_params params = {0};
    if (!rnn || !head || tg_params_extend(&params, NULL, &rnn->params) != TG_OK ||
        tg_params_extend(&params, NULL, &head->params) != TG_OK) {
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        return 1;
    }
    tg_sgd_options so = tg_sgd_defaults(0.01);
    tg_sgd *opt = tg_sgd_new(&params, &so);
    tg_state *carried = tg_states_new(rnn, 1), final[1];
    tg_tape *tape = tg_tape_new();
    printf("Dinosaurus Island: %d names, vocabulary %d, RNN with 50 units, %d iterations\n",
           n_names, V, o->steps);
    double smooth = -log(1.0 / V) * 7; /* the course's get_initial_loss */
    for (int j = 0; j < o->steps; j++) {
        const char *name = lower + starts[j % n_names];
        int len = (int)(strchr(name, '\n') ? strchr(name, '\n') - name : (long)strlen(name));
        int T = len + 1;
        tg_tape_reset(tape);
        int32_t *targets = tg_tape_alloc(tape, (size_t)T * sizeof *targets);
        tg_tensor *x = tg_tape_zeros(tape, TG_F64, TG_DIMS(V, 1, T)); /* x<0> stays 0 */
        for (int t = 0; t < T; t++) {
            int32_t id = t < len ? tg_text_id(text, (unsigned char)name[t]) : newline;
            if (t + 1 < T)
                tg_tensor_set(x, (int64_t[]){id, 0, t + 1}, 1.0);
            targets[t] = id;
        }
        tg_tensor *h = tg_recurrent_forward(tape, rnn, x, carried, o->path, final);
        tg_tensor *loss = tg_cross_entropy(tape, tg_linear_forward(tape, head, h), 0, targets, T,
                                           TG_REDUCE_SUM);
        tg_params_zero_grad(&params);
        if (!loss || tg_backward(tape, loss) != TG_OK) {
            fprintf(stderr, "char_lm: %s\n", tg_tape_error(tape));
            return 1;
        }
        tg_states_keep(rnn, carried, final);
        tg_clip_grad_value(&params, 5.0);
        tg_sgd_step(opt, tape);
        smooth = smooth * 0.999 + tg_tensor_item(loss) * 0.001;
        if (j % 2000 == 0) {
            printf("Iteration: %d, Loss: %f\n", j, smooth);
            /* seven names, seeds 0 to 6, as the course's sample() */
            for (int s = 0; s < 7; s++) {
                char out[64];
                dinos_sample(rnn, head, text, o->path, s, out, sizeof out);
                printf("%s\n", out);
            }
            printf("\n");
        }
    }
    tg_tape_free(tape);
    tg_states_free(rnn, carried);
    tg_sgd_free(opt);
    tg_params_clear(&params);
    tg_recurrent_free(rnn);
    tg_linear_free(head);
    free(starts);
    free(lower);
    tg_text_free(text);
    tg_text_free(raw);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    char message[512];
    int status = cli_exit_status(char_lm_parse(argc, argv, &o, message, sizeof message),
                                 "char_lm", message, char_lm_usage);
    if (status >= 0)
        return status;
    if (o.threads > 0)
        tg_set_num_threads(o.threads);
    if (o.dinos)
        return dinos(&o);
    if (o.sample_mode)
        return sample_from_checkpoint(&o);
    return train(&o);
}
