/* Character-level text datasets (see text.h). */
#include "text.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/files.h"

tg_text *tg_text_from_bytes(const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    if (!b && n > 0) {
        tg_fail(TG_ERR_ARG, "tg_text_from_bytes: bytes is NULL");
        return NULL;
    }
    if (n == 0) {
        tg_fail(TG_ERR_FORMAT, "tg_text: the text is empty");
        return NULL;
    }
    if (n > (size_t)INT64_MAX / sizeof(int32_t)) {
        tg_fail(TG_ERR_OVERFLOW, "tg_text: %zu bytes is too large", n);
        return NULL;
    }
    bool used[256] = {false};
    for (size_t i = 0; i < n; i++)
        used[b[i]] = true;
    tg_text *text = calloc(1, sizeof *text);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!text || !ids) {
        free(text);
        free(ids);
        tg_fail(TG_ERR_NOMEM, "tg_text: cannot allocate %zu ids", n);
        return NULL;
    }
    for (int c = 0; c < 256; c++) {
        text->stoi[c] = -1;
        if (used[c]) {
            text->stoi[c] = (int16_t)text->vocab_size;
            text->itos[text->vocab_size++] = (unsigned char)c;
        }
    }
    if (text->vocab_size < 2) {
        tg_fail(TG_ERR_FORMAT,
                "tg_text: the text uses a single distinct byte (0x%02x); a language model needs "
                "at least two",
                b[0]);
        free(text);
        free(ids);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = text->stoi[b[i]];
    text->ids = ids;
    text->n = (int64_t)n;
    return text;
}

tg_text *tg_text_load(const char *path)
{
    if (!path) {
        tg_fail(TG_ERR_ARG, "tg_text_load: path is NULL");
        return NULL;
    }
    uint64_t size;
    FILE *f = tg_file_open_regular("tg_text_load", path, &size);
    if (!f)
        return NULL;
    /* The file's size bounds what is read: a file that grows meanwhile
     * cannot make the read run on. */
    size_t n = 0;
    unsigned char *bytes = size <= SIZE_MAX - 1 ? malloc((size_t)size + 1) : NULL;
    if (bytes)
        n = fread(bytes, 1, (size_t)size, f);
    bool failed = !bytes || n != size;
    fclose(f);
    if (failed) {
        tg_fail(bytes ? TG_ERR_IO : TG_ERR_NOMEM, "tg_text_load: cannot read '%s' (%s)", path,
                bytes ? "read fewer bytes than its size" : "out of memory");
        free(bytes);
        return NULL;
    }
    tg_text *text = tg_text_from_bytes(bytes, n);
    free(bytes);
    if (!text) {
        char reason[400];
        snprintf(reason, sizeof reason, "%s", tg_last_error());
        tg_fail(tg_last_status(), "%s (file '%s')", reason, path);
    }
    return text;
}

void tg_text_free(tg_text *text)
{
    if (!text)
        return;
    free(text->ids);
    free(text);
}

int32_t tg_text_id(const tg_text *text, unsigned char byte)
{
    return text ? text->stoi[byte] : -1;
}

tg_status tg_text_encode(const tg_text *text, const char *s, size_t n, int32_t *ids)
{
    if (!text || (n > 0 && (!s || !ids)))
        return tg_fail(TG_ERR_ARG, "tg_text_encode: NULL argument");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (text->stoi[c] < 0)
            return tg_fail(TG_ERR_ARG,
                           "tg_text_encode: byte 0x%02x ('%c') at position %zu is not in the "
                           "vocabulary",
                           c, c >= 32 && c < 127 ? c : '?', i);
        ids[i] = text->stoi[c];
    }
    return TG_OK;
}

tg_status tg_text_decode(const tg_text *text, const int32_t *ids, size_t n, char *out)
{
    if (!text || (n > 0 && (!ids || !out)))
        return tg_fail(TG_ERR_ARG, "tg_text_decode: NULL argument");
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= text->vocab_size)
            return tg_fail(TG_ERR_ARG, "tg_text_decode: id %d at position %zu is outside [0, %d)",
                           (int)ids[i], i, text->vocab_size);
        out[i] = (char)text->itos[ids[i]];
    }
    return TG_OK;
}

tg_status tg_text_split(int64_t n, double fraction, int64_t *n_train, int64_t *n_val)
{
    if (!n_train || !n_val || !(fraction >= 0 && fraction < 1))
        return tg_fail(TG_ERR_ARG, "tg_text_split: fraction must be in [0, 1)");
    int64_t val = (int64_t)((double)n * fraction);
    if (fraction > 0 && val < 2)
        val = 2;
    if (n - val < 2)
        return tg_fail(TG_ERR_ARG, "tg_text_split: %lld ids are too few to split", (long long)n);
    *n_train = n - val;
    *n_val = val;
    return TG_OK;
}

/* ---- batches ---------------------------------------------------------------------- */

struct tg_batcher {
    const int32_t *ids;
    int64_t n;
    int m, T;
    tg_batch_order order;
    uint32_t seed;
    tg_rng rng;          /* shuffles the windows, epoch after epoch */
    int32_t *window;     /* shuffled order of window indices (SHUFFLED) */
    int64_t n_windows;   /* SHUFFLED: windows of T+1 ids; STREAM: stream length */
    int64_t per_epoch;   /* batches per epoch */
    int64_t position;    /* batches served */
};

tg_batcher *tg_batcher_new(const int32_t *ids, int64_t n, int m, int T, tg_batch_order order,
                           uint32_t seed)
{
    if (!ids || n < 2 || m < 1 || T < 1 || (order != TG_BATCH_SHUFFLED && order != TG_BATCH_STREAM)) {
        tg_fail(TG_ERR_ARG, "tg_batcher_new: need ids (n >= 2), m >= 1, T >= 1 and a known order "
                            "(got n=%lld, m=%d, T=%d)",
                (long long)n, m, T);
        return NULL;
    }
    int64_t per_epoch, n_windows;
    if (order == TG_BATCH_SHUFFLED) {
        n_windows = (n - 1) / T;
        per_epoch = n_windows / m;
    } else {
        n_windows = (n - 1) / m; /* each stream's length */
        per_epoch = n_windows / T;
    }
    if (per_epoch < 1 || n_windows > INT32_MAX) {
        tg_fail(TG_ERR_ARG,
                "tg_batcher_new: %lld ids cannot fill one batch of %d sequences of %d steps "
                "(+1 for the targets)",
                (long long)n, m, T);
        return NULL;
    }
    tg_batcher *b = calloc(1, sizeof *b);
    int32_t *window = order == TG_BATCH_SHUFFLED ? malloc((size_t)n_windows * sizeof *window) : NULL;
    if (!b || (order == TG_BATCH_SHUFFLED && !window)) {
        free(b);
        free(window);
        tg_fail(TG_ERR_NOMEM, "tg_batcher_new: out of memory");
        return NULL;
    }
    *b = (tg_batcher){.ids = ids, .n = n, .m = m, .T = T, .order = order, .seed = seed,
                      .window = window, .n_windows = n_windows, .per_epoch = per_epoch};
    tg_batcher_seek(b, 0);
    return b;
}

void tg_batcher_free(tg_batcher *b)
{
    if (!b)
        return;
    free(b->window);
    free(b);
}

/* The window order of the next epoch: identity, then shuffled in place. */
static void shuffle_epoch(tg_batcher *b)
{
    for (int64_t i = 0; i < b->n_windows; i++)
        b->window[i] = (int32_t)i;
    tg_rng_shuffle_i32(&b->rng, b->window, b->n_windows);
}

/* The shuffle of epoch e depends on every draw before it, so reaching it
 * replays the shuffles of epochs 0..e: refused beyond TG_BATCHER_SEEK_MAX
 * window draws instead of running for hours. */
tg_status tg_batcher_seek(tg_batcher *b, int64_t position)
{
    if (!b || position < 0)
        return tg_fail(TG_ERR_ARG, "tg_batcher_seek: bad batcher or position");
    if (b->order != TG_BATCH_SHUFFLED) {
        b->position = position;
        return TG_OK;
    }
    int64_t epoch = position / b->per_epoch;
    if (epoch >= TG_BATCHER_SEEK_MAX / b->n_windows)
        return tg_fail(TG_ERR_ARG, "tg_batcher_seek: position %lld is in epoch %lld; reaching "
                       "it replays the shuffles of %lld windows of every epoch before, more "
                       "than the %lld window draws a seek may take",
                       (long long)position, (long long)epoch, (long long)b->n_windows,
                       (long long)TG_BATCHER_SEEK_MAX);
    b->position = position;
    tg_rng_seed(&b->rng, b->seed);
    for (int64_t e = 0; e <= epoch; e++)
        shuffle_epoch(b);
    return TG_OK;
}

tg_status tg_batcher_next(tg_batcher *b, int32_t *inputs, int32_t *targets)
{
    if (!b || !inputs || !targets)
        return tg_fail(TG_ERR_ARG, "tg_batcher_next: NULL argument");
    int64_t in_epoch = b->position % b->per_epoch;
    if (in_epoch == 0 && b->position > 0 && b->order == TG_BATCH_SHUFFLED)
        shuffle_epoch(b);
    for (int i = 0; i < b->m; i++) {
        int64_t start = b->order == TG_BATCH_SHUFFLED
                            ? (int64_t)b->window[in_epoch * b->m + i] * b->T
                            : i * b->n_windows + in_epoch * b->T;
        memcpy(inputs + (int64_t)i * b->T, b->ids + start, (size_t)b->T * sizeof *inputs);
        memcpy(targets + (int64_t)i * b->T, b->ids + start + 1, (size_t)b->T * sizeof *targets);
    }
    b->position++;
    return TG_OK;
}

int64_t tg_batcher_batches_per_epoch(const tg_batcher *b) { return b ? b->per_epoch : 0; }
int64_t tg_batcher_position(const tg_batcher *b) { return b ? b->position : 0; }
