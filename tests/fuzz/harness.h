/* What the fuzz targets do with one input, shared by the libFuzzer programs
 * (tests/fuzz/fuzz_<name>.c, built by `make fuzz`) and by the Check suite
 * tests/test_hostile.c, which replays every committed input in
 * tests/fuzz/<name>/ (seeds and the inputs that once crashed) in the plain
 * and sanitizer builds of `make test` / `make asan`.
 *
 * Each fuzz_<name>_one(data, size) feeds the bytes to one parser of outside
 * input and checks what must hold whatever the bytes: the parser either
 * fails with a message or returns something consistent (ids within the
 * vocabulary, a tensor that round-trips, options within their ranges), and
 * a failed load leaves its destinations untouched. It returns NULL, or a
 * description of the property that broke. Crashes, leaks, overflows and
 * undefined behaviour are the sanitizers' to report. */
#ifndef TG_FUZZ_HARNESS_H
#define TG_FUZZ_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples/char_lm_options.h"
#include "optim/crc32.h"
#include "tapegrad.h"

static inline const char *fuzz_write_file(const char *tag, const uint8_t *data, size_t size);
static inline const char *fuzz_failed_clearly(void);
static inline uint64_t fuzz_u64(const uint8_t *p, size_t n);

/* ---- .npy reader ------------------------------------------------------------------ */

/* The bytes as a .npy file: load, load_into a fixed (2,3) f64 tensor, and
 * for a file that loads, save it again and load that: the values must come
 * back bit for bit. */
static inline const char *fuzz_npy_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file("npy", data, size);
    if (!path)
        return "cannot write the temporary file";
    const char *broken = NULL;
    tg_clear_error();
    tg_tensor *t = tg_npy_load(path);
    if (!t) {
        broken = fuzz_failed_clearly();
    } else {
        size_t bytes = (size_t)tg_tensor_numel(t) * tg_dtype_size(t->dtype);
        char again[512];
        snprintf(again, sizeof again, "%s.again.npy", path);
        tg_tensor *u = NULL;
        if (bytes > size)
            broken = "a loaded tensor holds more bytes than its file";
        else if (!tg_tensor_is_contiguous(t))
            broken = "a loaded tensor is not C-contiguous";
        else if (tg_npy_save(again, t) != TG_OK || !(u = tg_npy_load(again)))
            broken = "a loaded tensor does not save and load again";
        else if (u->dtype != t->dtype || !tg_tensor_same_shape(u, t) ||
                 memcmp(u->data, t->data, bytes) != 0)
            broken = "a loaded tensor changes when saved and loaded again";
        remove(again);
        tg_tensor_free(u);
        tg_tensor_free(t);
    }
    tg_tensor *dst = tg_tensor_full(TG_F64, TG_DIMS(2, 3), 7.0);
    tg_clear_error();
    if (!broken && tg_npy_load_into(path, dst) != TG_OK) {
        broken = fuzz_failed_clearly();
        for (int64_t i = 0; !broken && i < 6; i++)
            if (tg_tensor_get_flat(dst, i) != 7.0)
                broken = "a refused tg_npy_load_into changed its destination";
    }
    tg_tensor_free(dst);
    remove(path);
    return broken;
}

/* ---- checkpoint loader ------------------------------------------------------------ */

/* Rewrite every CRC-32 (entries and whole file) and the file length that the
 * bytes claim, as far as the structure can be followed, so that mutations
 * reach the checks behind the CRCs instead of stopping at them. */
static inline void fuzz_fix_checkpoint(uint8_t *d, size_t size)
{
    if (size < 20 + 16)
        return;
    size_t end = size - 16, p = 20;
    uint64_t count = fuzz_u64(d + 16, 4);
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 4)
            break;
        uint64_t name_len = fuzz_u64(d + p, 4);
        if (name_len > end - p - 4 || end - p - 4 - name_len < 8)
            break;
        p += 4 + name_len;
        uint64_t ndim = fuzz_u64(d + p + 4, 4);
        p += 8;
        if (ndim > TG_MAX_DIMS || end - p < 8 * ndim + 12)
            break;
        p += 8 * ndim;
        uint64_t bytes = fuzz_u64(d + p, 8);
        if (bytes > end - p - 12)
            break;
        uint32_t crc = tg_crc32(d + p + 12, (size_t)bytes);
        for (int k = 0; k < 4; k++)
            d[p + 8 + k] = (uint8_t)(crc >> (8 * k));
        p += 12 + bytes;
    }
    memcpy(d + end, "TEND", 4);
    for (int k = 0; k < 8; k++)
        d[end + 4 + k] = (uint8_t)((uint64_t)size >> (8 * k));
    uint32_t crc = tg_crc32(d, size - 4);
    for (int k = 0; k < 4; k++)
        d[size - 4 + k] = (uint8_t)(crc >> (8 * k));
}

/* The first byte chooses: bit 0 fix the CRCs, bit 1 ask for a generator,
 * bit 2 ask for the tensors "W" f32 (2,3) and "b" f64 (3), bit 3 ask for the
 * integer "step". The rest is the file. Read the integer "step", then load;
 * a refused load must leave every destination as it was. */
static inline const char *fuzz_checkpoint_one(const uint8_t *data, size_t size)
{
    if (size == 0)
        return NULL;
    unsigned mode = data[0];
    uint8_t *file = malloc(size);
    if (!file)
        return "out of memory";
    memcpy(file, data + 1, size - 1);
    if (mode & 1)
        fuzz_fix_checkpoint(file, size - 1);
    const char *path = fuzz_write_file("ckpt", file, size - 1);
    free(file);
    if (!path)
        return "cannot write the temporary file";
    const char *broken = NULL;
    int64_t step = -12345;
    tg_clear_error();
    if (tg_checkpoint_read_int(path, "step", &step) != TG_OK) {
        broken = fuzz_failed_clearly();
        if (step != -12345)
            broken = "a refused tg_checkpoint_read_int wrote its result";
    }

    tg_tensor *W = tg_tensor_full(TG_F32, TG_DIMS(2, 3), 0.5);
    tg_tensor *b = tg_tensor_full(TG_F64, TG_DIMS(3), -0.25);
    tg_params params = {0};
    tg_params_add(&params, "W", W);
    tg_params_add(&params, "b", b);
    tg_rng rng, before;
    tg_rng_seed(&rng, 3);
    before = rng;
    tg_checkpoint_int ints[1] = {{"step", -1}};
    tg_clear_error();
    tg_status s = tg_checkpoint_load(path, mode & 4 ? &params : NULL, mode & 2 ? &rng : NULL,
                                     ints, mode & 8 ? 1 : 0);
    if (s != TG_OK && !broken) {
        broken = fuzz_failed_clearly();
        bool same = memcmp(&rng, &before, sizeof rng) == 0 && ints[0].value == -1;
        for (int64_t i = 0; i < 6; i++)
            same = same && tg_tensor_get_flat(W, i) == 0.5f;
        for (int64_t i = 0; i < 3; i++)
            same = same && tg_tensor_get_flat(b, i) == -0.25;
        if (!same)
            broken = "a refused tg_checkpoint_load changed a destination";
    }
    if (s == TG_OK && !broken && (mode & 2) && (rng.pos < 0 || rng.pos > TG_MT_N))
        broken = "a loaded generator has a position outside [0, 624]";
    if (s == TG_OK && !broken && (mode & 2)) /* the loaded generator must be usable */
        for (int i = 0; i < 700; i++)
            tg_rng_randn(&rng);
    tg_params_clear(&params);
    tg_tensor_free(W);
    tg_tensor_free(b);
    remove(path);
    return broken;
}

/* ---- text dataset and batches ----------------------------------------------------- */

/* The first 16 bytes are the batcher's arguments (m, T as raw int32 so that
 * negative and huge values arrive too, order, seed, position, batches), the
 * rest the text. The text is read from memory and from a file; encoding and
 * decoding round-trip; every batch holds ids of the vocabulary and targets
 * that are the inputs shifted by one. */
static inline const char *fuzz_text_one(const uint8_t *data, size_t size)
{
    if (size < 16)
        return NULL;
    int32_t m = (int32_t)(uint32_t)fuzz_u64(data, 4), T = (int32_t)(uint32_t)fuzz_u64(data + 4, 4);
    tg_batch_order order = (tg_batch_order)(data[8] % 3); /* 2 is not an order */
    uint32_t seed = (uint32_t)fuzz_u64(data + 9, 3);
    uint32_t position = (uint32_t)fuzz_u64(data + 12, 3);
    int batches = data[15] % 4;
    const uint8_t *bytes = data + 16;
    size_t n = size - 16;

    const char *broken = NULL;
    tg_clear_error();
    tg_text *text = tg_text_from_bytes(bytes, n);
    const char *path = fuzz_write_file("txt", bytes, n);
    tg_text *from_file = path ? tg_text_load(path) : NULL;
    if (path)
        remove(path);
    if (!text)
        return from_file ? (tg_text_free(from_file), "a text loads from a file, not from memory")
                         : fuzz_failed_clearly();
    if (!from_file || from_file->n != text->n || from_file->vocab_size != text->vocab_size ||
        memcmp(from_file->ids, text->ids, (size_t)text->n * sizeof *text->ids) != 0)
        broken = "a text reads differently from a file and from memory";
    tg_text_free(from_file);

    char *decoded = malloc(n);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!broken && (!decoded || !ids))
        broken = "out of memory";
    if (!broken && (tg_text_encode(text, (const char *)bytes, n, ids) != TG_OK ||
                    tg_text_decode(text, ids, n, decoded) != TG_OK ||
                    memcmp(decoded, bytes, n) != 0))
        broken = "encoding then decoding a text does not give it back";
    free(decoded);
    free(ids);

    tg_clear_error();
    tg_batcher *b = broken ? NULL : tg_batcher_new(text->ids, text->n, m, T, order, seed);
    if (!broken && !b)
        broken = fuzz_failed_clearly();
    if (b) {
        /* Seeking costs an epoch of shuffling per epoch skipped: stay within 64. */
        int64_t per_epoch = tg_batcher_batches_per_epoch(b);
        size_t count = (size_t)m * (size_t)T;
        int32_t *in = malloc(count * sizeof *in), *out = malloc(count * sizeof *out);
        if (per_epoch < 1 || count > (size_t)text->n)
            broken = "a batcher accepts batches larger than its text";
        else if (!in || !out)
            broken = "out of memory";
        else if (tg_batcher_seek(b, (int64_t)position % (64 * per_epoch)) != TG_OK)
            broken = "tg_batcher_seek refuses a valid position";
        for (int k = 0; !broken && k < batches; k++) {
            if (tg_batcher_next(b, in, out) != TG_OK) {
                broken = "tg_batcher_next failed";
                break;
            }
            for (size_t i = 0; !broken && i < count; i++)
                if (in[i] < 0 || in[i] >= text->vocab_size || out[i] < 0 ||
                    out[i] >= text->vocab_size)
                    broken = "a batch holds an id outside the vocabulary";
                else if (i % (size_t)T + 1 < (size_t)T && out[i] != in[i + 1])
                    broken = "a batch's targets are not its inputs shifted by one";
        }
        free(in);
        free(out);
        tg_batcher_free(b);
    }
    tg_text_free(text);
    return broken;
}

/* ---- char_lm's options ------------------------------------------------------------ */

/* The bytes split at NUL bytes into argv[1..]: char_lm_parse either fails
 * with a message or fills every option within its range. */
static inline const char *fuzz_cli_one(const uint8_t *data, size_t size)
{
    enum { MAX_ARGS = 64 };
    char *copy = malloc(size + 1);
    if (!copy)
        return "out of memory";
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[MAX_ARGS + 2] = {"char_lm"};
    int argc = 1;
    for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++)
        if (i == 0 || copy[i - 1] == '\0')
            argv[argc++] = copy + i;
    argv[argc] = NULL;

    char_lm_options o;
    char message[256];
    memset(message, 'x', sizeof message);
    cli_status s = char_lm_parse(argc, argv, &o, message, sizeof message);
    const char *broken = NULL;
    if (s == CLI_ERROR || s == CLI_UNKNOWN) {
        if (!memchr(message, '\0', sizeof message) || message[0] == '\0')
            broken = "a refused command line has no message";
    } else if (s == CLI_OK) {
        if (o.layers < 1 || o.layers > CHAR_LM_MAX_LAYERS || o.hidden < 1 ||
            o.hidden > CHAR_LM_MAX_WIDTH || o.embed < 1 || o.embed > CHAR_LM_MAX_WIDTH ||
            o.seq < 1 || o.seq > CHAR_LM_MAX_SEQ || o.batch < 1 || o.steps < 0 ||
            o.threads < 0 || o.threads > TG_MAX_THREADS || o.seed < 0 || o.length < 0 ||
            o.print_every < 1 || o.eval_every < 1 || o.sample_every < 1 ||
            o.snapshot_every < 1 || o.max_faults < 1)
            broken = "an accepted integer option is outside its range";
        else if (!(o.lr >= 1e-9 && o.lr <= 1e30) || !(o.clip >= 0 && o.clip <= 1e9) ||
                 !(o.temperature >= 1e-3 && o.temperature <= 100) ||
                 !(o.max_loss >= 0 && o.max_loss <= 1e30))
            broken = "an accepted real option is outside its range or not finite";
        else if ((o.cell != TG_CELL_RNN && o.cell != TG_CELL_LSTM && o.cell != TG_CELL_GRU) ||
                 (o.path != TG_PATH_TAPE && o.path != TG_PATH_FUSED) ||
                 o.on_nonfinite < ON_NONFINITE_STOP || o.on_nonfinite > ON_NONFINITE_RESTORE)
            broken = "an accepted choice is not one of the choices";
        else if (!o.data || !o.prompt || !o.save || !o.svg || (o.sample_mode && !o.load))
            broken = "a path or the prompt is NULL after parsing";
    } else if (s != CLI_HELP) {
        broken = "char_lm_parse returned an unknown status";
    }
    free(copy);
    return broken;
}

/* ---- helpers ----------------------------------------------------------------------- */

/* Write the bytes to a per-process temporary file; its path, or NULL. */
static inline const char *fuzz_write_file(const char *tag, const uint8_t *data, size_t size)
{
    static char path[256];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/tg_fuzz_%d.%s", dir, (int)getpid(), tag);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    size_t wrote = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || wrote != size) {
        remove(path);
        return NULL;
    }
    return path;
}

/* A refusal must leave a status and a message. */
static inline const char *fuzz_failed_clearly(void)
{
    if (tg_last_status() == TG_OK || tg_last_error()[0] == '\0')
        return "a refusal left no status or no message";
    return NULL;
}

/* Little-endian unsigned integer of n <= 8 bytes. */
static inline uint64_t fuzz_u64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
