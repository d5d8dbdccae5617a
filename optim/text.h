/* Character-level text datasets: any file read as bytes, a vocabulary of the
 * bytes it uses, encoding and decoding, and batches for a language model.
 *
 *     tg_text *text = tg_text_load("examples/data/tinyshakespeare.txt");
 *     tg_batcher *b = tg_batcher_new(text->ids, text->n, m, T, TG_BATCH_SHUFFLED, seed);
 *     tg_batcher_next(b, inputs, targets);   // inputs, targets: m*T ids each
 *
 * A batch is m sequences of T ids in C order (sequence i, step t at i*T + t);
 * targets are the inputs shifted by one character. */
#ifndef TG_TEXT_H
#define TG_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "../core/api.h"
#include "../core/error.h"
#include "../core/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int vocab_size;          /* distinct bytes in the text, >= 2 */
    unsigned char itos[256]; /* id -> byte, ids in increasing byte order */
    int16_t stoi[256];       /* byte -> id, -1 for bytes the text never uses */
    int32_t *ids;            /* the whole text, encoded */
    int64_t n;               /* its length */
} tg_text;

/* Read a file. Unreadable, empty, or single-distinct-byte files are refused
 * with a message naming the path; so is a path that is not a regular file
 * (a FIFO, /dev/zero), before anything is read. */
TG_API tg_text *tg_text_load(const char *path);
/* The same from memory. */
TG_API tg_text *tg_text_from_bytes(const void *bytes, size_t n);
TG_API void tg_text_free(tg_text *text);

/* Byte -> id, or -1 if the byte is not in the vocabulary. */
TG_API int32_t tg_text_id(const tg_text *text, unsigned char byte);
/* Encode n bytes of s; a byte outside the vocabulary is an error naming it. */
TG_API tg_status tg_text_encode(const tg_text *text, const char *s, size_t n, int32_t *ids);
/* Decode n ids into out (n bytes, not terminated); an id outside the
 * vocabulary is an error. */
TG_API tg_status tg_text_decode(const tg_text *text, const int32_t *ids, size_t n, char *out);

/* Split ids[0..n) into a training part and the last `fraction` for
 * validation (0 <= fraction < 1); both parts are at least 2 ids long. */
TG_API tg_status tg_text_split(int64_t n, double fraction, int64_t *n_train, int64_t *n_val);

typedef enum {
    /* Non-overlapping windows of T+1 ids, visited in an order shuffled at the
     * start of every epoch by the batcher's own generator (np.random.seed(seed)
     * once, then np.random.shuffle of the window indices per epoch). */
    TG_BATCH_SHUFFLED = 0,
    /* m parallel streams through the text: row i of successive batches reads
     * consecutive stretches of stream i, so a recurrent state carried from
     * one batch to the next continues the same text (truncated BPTT). */
    TG_BATCH_STREAM = 1
} tg_batch_order;

typedef struct tg_batcher tg_batcher;

/* Batches over ids[0..n) (not copied: keep them alive). The batches are a
 * pure function of (ids, m, T, order, seed, position), so resuming needs only
 * the position. Too little text for one batch is an error. */
TG_API tg_batcher *tg_batcher_new(const int32_t *ids, int64_t n, int m, int T, tg_batch_order order,
                                  uint32_t seed);
TG_API void tg_batcher_free(tg_batcher *b);
/* Fill inputs and targets (m*T ids each). Returns TG_OK; wraps to a new
 * epoch (reshuffled) when the windows run out. */
TG_API tg_status tg_batcher_next(tg_batcher *b, int32_t *inputs, int32_t *targets);
TG_API int64_t tg_batcher_batches_per_epoch(const tg_batcher *b);
/* Batches served so far (epoch = position / batches_per_epoch); save it in a
 * checkpoint and seek to it on resume. */
TG_API int64_t tg_batcher_position(const tg_batcher *b);
/* Shuffled order replays one shuffle per epoch to reach a position (each
 * depends on the draws before it): a seek that would draw more than
 * TG_BATCHER_SEEK_MAX windows in all (about a second) is refused with an
 * error and changes nothing. Stream order seeks at once. */
#define TG_BATCHER_SEEK_MAX (INT64_C(1) << 28)
TG_API tg_status tg_batcher_seek(tg_batcher *b, int64_t position);

#ifdef __cplusplus
}
#endif

#endif
