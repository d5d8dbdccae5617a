/* Checkpoint save and load (the format is described in checkpoint.h).
 *
 * Load reads the whole file into memory once and checks all of it before
 * touching a destination: reading it twice (check, then copy) would let the
 * file change in between. An opened checkpoint (tg_checkpoint_open) keeps
 * it for several questions. Names are found through an index sorted by
 * name, which also finds duplicates: n log n, not n^2, for a file of many
 * entries. Saving goes through core/files.h: a new temporary file, fsync,
 * rename, directory fsync. */
#include "checkpoint.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/bytes.h"
#include "../core/files.h"
#include "../core/iter.h"
#include "crc32.h"
#include "internal.h"

enum {
    HEADER_BYTES = 20,
    TRAILER_BYTES = 16,
    MIN_ENTRY_BYTES = 4 + 1 + 4 + 4 + 8 + 4,
    RNG_BYTES = TG_MT_N * 4 + 4 + 4 + 8,
};

enum { KIND_F32 = 1, KIND_F64 = 2, KIND_I64 = 3, KIND_RNG = 4 };

static const unsigned char magic[8] = {0x89, 'T', 'G', 'C', 'K', 'P', 'T', '\n'};
static const unsigned char end_marker[4] = {'T', 'E', 'N', 'D'};
#define BYTE_ORDER_MARK 0x01020304u

static const char rng_entry_name[] = "rng";

/* One entry as found in a file being loaded. */
typedef struct {
    const char *name; /* points into the file buffer; not terminated */
    uint32_t name_len;
    uint32_t kind;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    const unsigned char *payload;
    uint64_t bytes;
} entry;

/* A file read whole and checked whole. */
struct tg_checkpoint {
    char *path;
    unsigned char *data;
    entry *entries;    /* in file order, pointing into data */
    uint32_t *by_name; /* entry indices sorted by name */
    uint32_t count;
};

/* A sequential writer that keeps the whole-file CRC and the first error. */
typedef struct {
    FILE *f;
    uint32_t crc;
    uint64_t bytes;
    int error; /* errno of the first failure, 0 if none */
} writer;

/* A name to sort (save: the names given; load: the file's). */
typedef struct {
    const char *name;
    size_t len;
    uint32_t index;
} sorted_name;

static tg_status ckpt_fail(tg_status status, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static tg_status check_save_args(const char *path, const tg_params *tensors, const tg_rng *rng,
                                 const tg_checkpoint_int *ints, int n_ints);
static tg_status write_temp(const char *path, tg_file_writer *file, const tg_params *tensors,
                            const tg_rng *rng, const tg_checkpoint_int *ints, int n_ints);
static tg_status read_whole_file(const char *path, unsigned char **data, size_t *size);
static tg_status parse_file(tg_checkpoint *ck, size_t size);
static tg_status restore(const char *who, const tg_checkpoint *ck, const tg_params *tensors,
                         tg_rng *rng, tg_checkpoint_int *ints, int n_ints,
                         tg_load_report *report);
static tg_status match_destinations(const tg_checkpoint *ck, bool *used,
                                    const tg_params *tensors, const tg_rng *rng,
                                    const tg_checkpoint_int *ints, int n_ints,
                                    tg_load_report *report);
static void copy_tensor(tg_tensor *dst, const entry *e);
static void decode_rng(const unsigned char *p, tg_rng *rng);
static const entry *find_entry(const tg_checkpoint *ck, const char *name);
static int compare_names(const void *a, const void *b);
static void put_u32(unsigned char *p, uint32_t v);
static void put_u64(unsigned char *p, uint64_t v);
static uint32_t get_u32(const unsigned char *p);
static uint64_t get_u64(const unsigned char *p);

tg_status tg_checkpoint_save(const char *path, const tg_params *tensors, const tg_rng *rng,
                             const tg_checkpoint_int *ints, int n_ints)
{
    tg_file_writer file;
    tg_status s = write_temp(path, &file, tensors, rng, ints, n_ints);
    if (s == TG_OK)
        s = tg_file_commit(&file);
    tg_file_end(&file, true);
    return s;
}

tg_status tg_checkpoint_write_temp(const char *path, const tg_params *tensors, const tg_rng *rng,
                                   const tg_checkpoint_int *ints, int n_ints)
{
    tg_file_writer file;
    tg_status s = write_temp(path, &file, tensors, rng, ints, n_ints);
    tg_file_end(&file, s != TG_OK);
    return s;
}

tg_checkpoint *tg_checkpoint_open(const char *path)
{
    if (!path) {
        tg_fail(TG_ERR_ARG, "tg_checkpoint_open: path is NULL");
        return NULL;
    }
    tg_checkpoint *ck = calloc(1, sizeof *ck);
    size_t size = 0;
    tg_status s = ck && (ck->path = strdup(path)) ? TG_OK
                                                  : ckpt_fail(TG_ERR_NOMEM, path, "out of memory");
    if (s == TG_OK)
        s = read_whole_file(path, &ck->data, &size);
    if (s == TG_OK)
        s = parse_file(ck, size);
    if (s != TG_OK) {
        tg_checkpoint_close(ck);
        return NULL;
    }
    return ck;
}

void tg_checkpoint_close(tg_checkpoint *ck)
{
    if (!ck)
        return;
    free(ck->by_name);
    free(ck->entries);
    free(ck->data);
    free(ck->path);
    free(ck);
}

bool tg_checkpoint_has(const tg_checkpoint *ck, const char *name)
{
    return ck && name && find_entry(ck, name) != NULL;
}

tg_status tg_checkpoint_get_int(const tg_checkpoint *ck, const char *name, int64_t *value)
{
    if (!ck || !name || !value)
        return tg_fail(TG_ERR_ARG, "tg_checkpoint_get_int: NULL argument");
    const entry *e = find_entry(ck, name);
    if (!e || e->kind != KIND_I64)
        return ckpt_fail(TG_ERR_FORMAT, ck->path, "no integer named '%s'", name);
    *value = (int64_t)get_u64(e->payload);
    return TG_OK;
}

tg_status tg_checkpoint_restore(const tg_checkpoint *ck, const tg_params *tensors, tg_rng *rng,
                                tg_checkpoint_int *ints, int n_ints)
{
    return restore("tg_checkpoint_restore", ck, tensors, rng, ints, n_ints, NULL);
}

tg_status tg_checkpoint_restore_nonstrict(const tg_checkpoint *ck, const tg_params *tensors,
                                          tg_rng *rng, tg_checkpoint_int *ints, int n_ints,
                                          tg_load_report *report)
{
    if (!report)
        return tg_fail(TG_ERR_ARG, "tg_checkpoint_restore_nonstrict: report is NULL (it lists "
                                   "what was missing and what was left out)");
    return restore("tg_checkpoint_restore_nonstrict", ck, tensors, rng, ints, n_ints, report);
}

/* Open, restore (strict when report is NULL), close. */
static tg_status load(const char *who, const char *path, const tg_params *tensors, tg_rng *rng,
                      tg_checkpoint_int *ints, int n_ints, tg_load_report *report)
{
    if (report)
        memset(report, 0, sizeof *report);
    if (!path)
        return tg_fail(TG_ERR_ARG, "%s: path is NULL", who);
    tg_checkpoint *ck = tg_checkpoint_open(path);
    if (!ck)
        return tg_last_status();
    tg_status s = restore(who, ck, tensors, rng, ints, n_ints, report);
    tg_checkpoint_close(ck);
    return s;
}

tg_status tg_checkpoint_load(const char *path, const tg_params *tensors, tg_rng *rng,
                             tg_checkpoint_int *ints, int n_ints)
{
    return load("tg_checkpoint_load", path, tensors, rng, ints, n_ints, NULL);
}

tg_status tg_checkpoint_load_nonstrict(const char *path, const tg_params *tensors, tg_rng *rng,
                                       tg_checkpoint_int *ints, int n_ints,
                                       tg_load_report *report)
{
    if (!report)
        return tg_fail(TG_ERR_ARG, "tg_checkpoint_load_nonstrict: report is NULL (it lists "
                                   "what was missing and what was left out)");
    return load("tg_checkpoint_load_nonstrict", path, tensors, rng, ints, n_ints, report);
}

tg_status tg_checkpoint_save_model(const char *path, const tg_params *params)
{
    if (!params)
        return tg_fail(TG_ERR_ARG, "tg_checkpoint_save_model: params is NULL");
    return tg_checkpoint_save(path, params, NULL, NULL, 0);
}

tg_status tg_checkpoint_read_int(const char *path, const char *name, int64_t *value)
{
    if (!path || !name || !value)
        return tg_fail(TG_ERR_ARG, "tg_checkpoint_read_int: NULL argument");
    tg_checkpoint *ck = tg_checkpoint_open(path);
    if (!ck)
        return tg_last_status();
    tg_status s = tg_checkpoint_get_int(ck, name, value);
    tg_checkpoint_close(ck);
    return s;
}

/* ---- saving ---------------------------------------------------------------- */

/* Every name non-empty, not too long, and unique (sorted, then neighbours
 * compared: n log n). */
static tg_status check_names(const char *path, sorted_name *names, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!names[i].name || names[i].name[0] == '\0')
            return ckpt_fail(TG_ERR_ARG, path, "an entry has an empty name");
        names[i].len = strlen(names[i].name);
        if (names[i].len > TG_CHECKPOINT_NAME_MAX)
            return ckpt_fail(TG_ERR_ARG, path, "the name '%.40s...' is longer than %d bytes",
                             names[i].name, TG_CHECKPOINT_NAME_MAX);
    }
    qsort(names, n, sizeof *names, compare_names);
    for (uint32_t i = 1; i < n; i++)
        if (compare_names(&names[i - 1], &names[i]) == 0)
            return ckpt_fail(TG_ERR_ARG, path, "two entries are named '%s'", names[i].name);
    return TG_OK;
}

/* A linear list of checks: the arguments, every tensor's description (a
 * hand-made tensor of 7 dimensions or absurd strides is refused, not
 * written past a buffer), and the names. */
static tg_status check_save_args(const char *path, const tg_params *tensors, const tg_rng *rng,
                                 const tg_checkpoint_int *ints, int n_ints)
{
    if (!path)
        return tg_fail(TG_ERR_ARG, "tg_checkpoint_save: path is NULL");
    if (n_ints < 0 || (n_ints > 0 && !ints))
        return ckpt_fail(TG_ERR_ARG, path, "%d integers given with ints = %p", n_ints,
                         (void *)ints);
    int n_tensors = tensors ? tensors->count : 0;
    if (n_tensors < 0 || (size_t)n_tensors + (size_t)n_ints + 1 > TG_CHECKPOINT_MAX_ENTRIES)
        return ckpt_fail(TG_ERR_ARG, path, "%d tensors and %d integers: a checkpoint holds at "
                         "most %d entries", n_tensors, n_ints, TG_CHECKPOINT_MAX_ENTRIES);
    for (int i = 0; i < n_tensors; i++) {
        char who[TG_CHECKPOINT_NAME_MAX + 600];
        snprintf(who, sizeof who, "checkpoint %s: tensor '%s'", path,
                 tensors->items[i].name ? tensors->items[i].name : "(NULL)");
        if (tg_tensor_check(who, tensors->items[i].tensor) != TG_OK)
            return tg_last_status();
    }
    uint32_t n = 0;
    sorted_name *names = malloc(((size_t)n_tensors + (size_t)n_ints + 1) * sizeof *names);
    if (!names)
        return ckpt_fail(TG_ERR_NOMEM, path, "out of memory");
    if (rng)
        names[n++].name = rng_entry_name;
    for (int i = 0; i < n_tensors; i++)
        names[n++].name = tensors->items[i].name;
    for (int i = 0; i < n_ints; i++)
        names[n++].name = ints[i].name;
    tg_status s = check_names(path, names, n);
    free(names);
    return s;
}

static tg_status write_contents(const char *path, FILE *f, const tg_params *tensors,
                                const tg_rng *rng, const tg_checkpoint_int *ints, int n_ints,
                                int *write_error);

/* Check the arguments, then write and fsync a new temporary file beside
 * path (file->temp). On failure no temporary file is left behind. */
static tg_status write_temp(const char *path, tg_file_writer *file, const tg_params *tensors,
                            const tg_rng *rng, const tg_checkpoint_int *ints, int n_ints)
{
    *file = (tg_file_writer){0};
    tg_status s = check_save_args(path, tensors, rng, ints, n_ints);
    if (s != TG_OK)
        return s;
    char who[4200];
    snprintf(who, sizeof who, "checkpoint %s", path);
    if ((s = tg_file_begin(file, who, path)) != TG_OK)
        return s;
    int write_error = 0;
    s = write_contents(path, file->f, tensors, rng, ints, n_ints, &write_error);
    if (s != TG_OK) {
        tg_file_end(file, true);
        return s;
    }
    return tg_file_finish(file, write_error);
}

static void write_bytes(writer *w, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (!w->error && fwrite(p, 1, n, w->f) != n)
        w->error = errno ? errno : EIO;
    w->crc = tg_crc32_update(w->crc, p, n);
    w->bytes += n;
}

/* Name, kind, ndim, shape, byte length, CRC, then the payload. */
static void write_entry(writer *w, const char *name, uint32_t kind, int ndim,
                        const int64_t *shape, const void *payload, uint64_t bytes)
{
    unsigned char buf[4 + 4 + 8 * TG_MAX_DIMS + 8 + 4];
    size_t name_len = strlen(name);
    put_u32(buf, (uint32_t)name_len);
    write_bytes(w, buf, 4);
    write_bytes(w, name, name_len);
    size_t n = 0;
    put_u32(buf + n, kind);
    put_u32(buf + n + 4, (uint32_t)ndim);
    n += 8;
    for (int d = 0; d < ndim; d++, n += 8)
        put_u64(buf + n, (uint64_t)shape[d]);
    put_u64(buf + n, bytes);
    put_u32(buf + n + 8, tg_crc32(payload, (size_t)bytes));
    n += 12;
    write_bytes(w, buf, n);
    write_bytes(w, payload, (size_t)bytes);
}

/* A tensor's values as contiguous little-endian bytes: its own memory when
 * it already is that, else a copy in *owned (caller frees). */
static const void *tensor_bytes(const tg_tensor *t, tg_tensor **owned)
{
    *owned = NULL;
    if (tg_tensor_is_contiguous(t) && tg_host_is_little_endian())
        return tg_tensor_base(t);
    *owned = tg_tensor_copy(t);
    if (!*owned)
        return NULL;
    if (!tg_host_is_little_endian())
        tg_swap_elements((*owned)->data, (size_t)tg_tensor_numel(t), tg_dtype_size(t->dtype));
    return (*owned)->data;
}

static void encode_rng(const tg_rng *rng, unsigned char *p)
{
    for (int i = 0; i < TG_MT_N; i++)
        put_u32(p + 4 * i, rng->key[i]);
    p += 4 * TG_MT_N;
    put_u32(p, (uint32_t)rng->pos);
    put_u32(p + 4, rng->has_gauss ? 1u : 0u);
    uint64_t bits;
    memcpy(&bits, &rng->gauss, sizeof bits);
    put_u64(p + 8, bits);
}

/* Header, entries, trailer; *write_error is the errno of the first failed
 * write (the caller reports it after closing the file). */
static tg_status write_contents(const char *path, FILE *f, const tg_params *tensors,
                                const tg_rng *rng, const tg_checkpoint_int *ints, int n_ints,
                                int *write_error)
{
    writer w = {f, 0, 0, 0};
    int n_tensors = tensors ? tensors->count : 0;
    unsigned char buf[RNG_BYTES];
    memcpy(buf, magic, 8);
    put_u32(buf + 8, TG_CHECKPOINT_VERSION);
    put_u32(buf + 12, BYTE_ORDER_MARK);
    put_u32(buf + 16, (uint32_t)(n_tensors + n_ints + (rng ? 1 : 0)));
    write_bytes(&w, buf, HEADER_BYTES);
    for (int i = 0; i < n_tensors; i++) {
        const tg_tensor *t = tensors->items[i].tensor;
        tg_tensor *owned;
        const void *bytes = tensor_bytes(t, &owned);
        if (!bytes)
            return ckpt_fail(TG_ERR_NOMEM, path, "out of memory copying '%s'",
                             tensors->items[i].name);
        write_entry(&w, tensors->items[i].name, t->dtype == TG_F32 ? KIND_F32 : KIND_F64,
                    t->ndim, t->shape, bytes,
                    (uint64_t)tg_tensor_numel(t) * tg_dtype_size(t->dtype));
        tg_tensor_free(owned);
    }
    for (int i = 0; i < n_ints; i++) {
        put_u64(buf, (uint64_t)ints[i].value);
        write_entry(&w, ints[i].name, KIND_I64, 0, NULL, buf, 8);
    }
    if (rng) {
        encode_rng(rng, buf);
        write_entry(&w, rng_entry_name, KIND_RNG, 0, NULL, buf, RNG_BYTES);
    }
    memcpy(buf, end_marker, 4);
    put_u64(buf + 4, w.bytes + TRAILER_BYTES);
    write_bytes(&w, buf, 12);
    put_u32(buf, w.crc);
    write_bytes(&w, buf, 4);
    *write_error = w.error;
    return TG_OK;
}

/* ---- loading ----------------------------------------------------------------- */

static tg_status read_whole_file(const char *path, unsigned char **data, size_t *size)
{
    char who[4200]; /* every message of a load starts "checkpoint <path>:" */
    snprintf(who, sizeof who, "checkpoint %s", path);
    uint64_t length;
    FILE *f = tg_file_open_regular(who, path, &length);
    if (!f)
        return tg_last_status();
    if (length > SIZE_MAX - 1) {
        fclose(f);
        return ckpt_fail(TG_ERR_NOMEM, path, "too large to read");
    }
    *size = (size_t)length;
    *data = malloc(*size ? *size : 1);
    if (!*data) {
        fclose(f);
        return ckpt_fail(TG_ERR_NOMEM, path, "cannot allocate %zu bytes to read it", *size);
    }
    size_t got = fread(*data, 1, *size, f);
    fclose(f);
    if (got != *size)
        return ckpt_fail(TG_ERR_IO, path, "read %zu of %zu bytes", got, *size);
    return TG_OK;
}

static const char *kind_name(uint32_t kind)
{
    switch (kind) {
    case KIND_F32: return "an f32 tensor";
    case KIND_F64: return "an f64 tensor";
    case KIND_I64: return "an integer";
    case KIND_RNG: return "a generator state";
    }
    return "an unknown kind";
}

/* Parse one entry at data[*pos..end); advance *pos. */
/* The bytes an entry's kind and shape call for; false when they overflow. */
static bool payload_bytes(const entry *e, uint64_t *bytes)
{
    if (e->kind == KIND_I64) {
        *bytes = 8;
        return true;
    }
    if (e->kind == KIND_RNG) {
        *bytes = RNG_BYTES;
        return true;
    }
    int64_t numel;
    size_t b;
    if (tg_check_shape("checkpoint", e->ndim, e->shape, &numel) != TG_OK ||
        tg_mul_overflows((size_t)numel, e->kind == KIND_F32 ? 4 : 8, &b))
        return false;
    *bytes = b;
    return true;
}

static tg_status parse_entry(const char *path, const unsigned char *data, size_t *pos,
                             size_t end, uint32_t index, entry *e)
{
    size_t p = *pos;
#define NEED(n)                                                                          \
    do {                                                                                 \
        if ((uint64_t)(end - p) < (uint64_t)(n))                                         \
            return ckpt_fail(TG_ERR_FORMAT, path,                                        \
                             "entry %u runs past the end of the data (truncated or "     \
                             "corrupt)",                                                 \
                             index);                                                     \
    } while (0)
    NEED(4);
    e->name_len = get_u32(data + p);
    p += 4;
    if (e->name_len == 0 || e->name_len > TG_CHECKPOINT_NAME_MAX)
        return ckpt_fail(TG_ERR_FORMAT, path, "entry %u has a name length of %u (corrupt)",
                         index, e->name_len);
    NEED(e->name_len);
    e->name = (const char *)data + p;
    p += e->name_len;
    if (memchr(e->name, '\0', e->name_len))
        return ckpt_fail(TG_ERR_FORMAT, path, "entry %u has a NUL byte in its name (corrupt)",
                         index);
    int nl = (int)e->name_len;
    NEED(8);
    e->kind = get_u32(data + p);
    uint32_t ndim = get_u32(data + p + 4);
    p += 8;
    if (e->kind < KIND_F32 || e->kind > KIND_RNG)
        return ckpt_fail(TG_ERR_FORMAT, path, "entry '%.*s' has unknown kind %u (corrupt)", nl,
                         e->name, e->kind);
    if (ndim > TG_MAX_DIMS || ((e->kind == KIND_I64 || e->kind == KIND_RNG) && ndim != 0))
        return ckpt_fail(TG_ERR_FORMAT, path, "entry '%.*s' (%s) has %u dimensions (corrupt)",
                         nl, e->name, kind_name(e->kind), ndim);
    e->ndim = (int)ndim;
    NEED(8 * (size_t)ndim + 12);
    for (int d = 0; d < e->ndim; d++, p += 8) {
        uint64_t v = get_u64(data + p);
        if (v > INT64_MAX)
            return ckpt_fail(TG_ERR_FORMAT, path, "entry '%.*s' has dimension %d of %llu (corrupt)",
                             nl, e->name, d, (unsigned long long)v);
        e->shape[d] = (int64_t)v;
    }
    e->bytes = get_u64(data + p);
    uint32_t stored_crc = get_u32(data + p + 8);
    p += 12;
    uint64_t expected;
    if (!payload_bytes(e, &expected))
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "entry '%.*s' has a shape whose size overflows (corrupt)", nl, e->name);
    if (e->bytes != expected)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "entry '%.*s' (%s) says it holds %llu bytes, its shape needs %llu "
                         "(corrupt)",
                         nl, e->name, kind_name(e->kind), (unsigned long long)e->bytes,
                         (unsigned long long)expected);
    NEED(e->bytes);
#undef NEED
    e->payload = data + p;
    uint32_t crc = tg_crc32(e->payload, (size_t)e->bytes);
    if (crc != stored_crc)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "entry '%.*s' fails its CRC-32 check (stored 0x%08X, computed 0x%08X): "
                         "the data is corrupt",
                         nl, e->name, stored_crc, crc);
    *pos = p + (size_t)e->bytes;
    return TG_OK;
}

static tg_status check_header(const char *path, const unsigned char *data, size_t size,
                              uint32_t *count);
static tg_status index_names(tg_checkpoint *ck);

/* Header, entries, trailer, the whole-file CRC, then the names' index. */
static tg_status parse_file(tg_checkpoint *ck, size_t size)
{
    uint32_t n = 0;
    tg_status s = check_header(ck->path, ck->data, size, &n);
    if (s != TG_OK)
        return s;
    ck->entries = calloc(n ? n : 1, sizeof *ck->entries);
    if (!ck->entries)
        return ckpt_fail(TG_ERR_NOMEM, ck->path, "out of memory");
    size_t pos = HEADER_BYTES, end = size - TRAILER_BYTES;
    for (uint32_t i = 0; i < n && s == TG_OK; i++)
        s = parse_entry(ck->path, ck->data, &pos, end, i, &ck->entries[i]);
    if (s != TG_OK)
        return s;
    ck->count = n;
    if (pos != end)
        return ckpt_fail(TG_ERR_FORMAT, ck->path,
                         "has %zu unexplained bytes between its last entry and its trailer "
                         "(corrupt)",
                         end - pos);
    uint32_t crc = tg_crc32(ck->data, size - 4), stored = get_u32(ck->data + size - 4);
    if (crc != stored)
        return ckpt_fail(TG_ERR_FORMAT, ck->path,
                         "fails its whole-file CRC-32 check (stored 0x%08X, computed 0x%08X): "
                         "the file is corrupt",
                         stored, crc);
    return index_names(ck);
}

/* Magic, version, byte order, trailer and the entry count, before any
 * entry is trusted. */
static tg_status check_header(const char *path, const unsigned char *data, size_t size,
                              uint32_t *count)
{
    if (size < HEADER_BYTES + TRAILER_BYTES)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "is %zu bytes, too short to be a checkpoint (truncated?)", size);
    if (memcmp(data, magic, sizeof magic) != 0)
        return ckpt_fail(TG_ERR_FORMAT, path, "is not a tapegrad checkpoint (bad magic bytes)");
    uint32_t version = get_u32(data + 8);
    if (version != TG_CHECKPOINT_VERSION)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "has format version %u; this build reads version %d", version,
                         TG_CHECKPOINT_VERSION);
    uint32_t order = get_u32(data + 12);
    if (order != BYTE_ORDER_MARK)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "has byte-order mark 0x%08X, expected 0x%08X (little-endian)", order,
                         BYTE_ORDER_MARK);
    const unsigned char *trailer = data + size - TRAILER_BYTES;
    if (memcmp(trailer, end_marker, 4) != 0)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "has no end marker: the file is truncated or corrupt");
    uint64_t length = get_u64(trailer + 4);
    if (length != size)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "is %zu bytes but its trailer says %llu: truncated or corrupt", size,
                         (unsigned long long)length);
    uint32_t n = get_u32(data + 16);
    size_t room = size - TRAILER_BYTES - HEADER_BYTES;
    if (n > room / MIN_ENTRY_BYTES)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "claims %u entries, more than %zu bytes can hold (corrupt)", n, room);
    if (n > TG_CHECKPOINT_MAX_ENTRIES)
        return ckpt_fail(TG_ERR_FORMAT, path, "holds %u entries, more than the %d a checkpoint "
                         "may hold", n, TG_CHECKPOINT_MAX_ENTRIES);
    *count = n;
    return TG_OK;
}

/* Sort the entries' names; neighbours that are equal are duplicates. */
static tg_status index_names(tg_checkpoint *ck)
{
    sorted_name *names = malloc((ck->count ? ck->count : 1) * sizeof *names);
    ck->by_name = malloc((ck->count ? ck->count : 1) * sizeof *ck->by_name);
    if (!names || !ck->by_name) {
        free(names);
        return ckpt_fail(TG_ERR_NOMEM, ck->path, "out of memory");
    }
    for (uint32_t i = 0; i < ck->count; i++)
        names[i] = (sorted_name){ck->entries[i].name, ck->entries[i].name_len, i};
    qsort(names, ck->count, sizeof *names, compare_names);
    tg_status s = TG_OK;
    for (uint32_t i = 0; i < ck->count; i++) {
        ck->by_name[i] = names[i].index;
        if (i > 0 && s == TG_OK && compare_names(&names[i - 1], &names[i]) == 0)
            s = ckpt_fail(TG_ERR_FORMAT, ck->path, "holds two entries named '%.*s'",
                          (int)names[i].len, names[i].name);
    }
    free(names);
    return s;
}

/* Check the destinations against the file, then copy: nothing is copied
 * unless every entry to load passes. Strict when report is NULL: the file
 * must hold exactly the destinations. Otherwise what is missing is left
 * alone and what is extra is ignored, both listed in the report. */
static tg_status restore(const char *who, const tg_checkpoint *ck, const tg_params *tensors,
                         tg_rng *rng, tg_checkpoint_int *ints, int n_ints,
                         tg_load_report *report)
{
    if (report)
        memset(report, 0, sizeof *report);
    if (!ck)
        return tg_fail(TG_ERR_ARG, "%s: checkpoint is NULL", who);
    if (n_ints < 0 || (n_ints > 0 && !ints))
        return ckpt_fail(TG_ERR_ARG, ck->path, "%d integers asked for with ints = %p", n_ints,
                         (void *)ints);
    bool *used = calloc(ck->count ? ck->count : 1, sizeof *used);
    if (!used)
        return ckpt_fail(TG_ERR_NOMEM, ck->path, "out of memory");
    tg_status s = match_destinations(ck, used, tensors, rng, ints, n_ints, report);
    free(used);
    if (s != TG_OK) {
        tg_load_report_free(report);
        return s;
    }
    int loaded = 0;
    for (int i = 0; tensors && i < tensors->count; i++) {
        const entry *e = find_entry(ck, tensors->items[i].name);
        if (e) {
            copy_tensor(tensors->items[i].tensor, e);
            loaded++;
        }
    }
    const entry *e = rng ? find_entry(ck, rng_entry_name) : NULL;
    if (e) {
        decode_rng(e->payload, rng);
        loaded++;
    }
    for (int i = 0; i < n_ints; i++)
        if ((e = find_entry(ck, ints[i].name)) != NULL) {
            ints[i].value = (int64_t)get_u64(e->payload);
            loaded++;
        }
    if (report)
        report->n_loaded = loaded;
    return TG_OK;
}

/* A destination the file lacks: an error when strict (report NULL), else a
 * name in report->missing. */
static tg_status missing(const tg_checkpoint *ck, tg_load_report *report, const char *name,
                         const char *what)
{
    if (report)
        return tg_load_report_note(report, true, name, strlen(name), "checkpoint");
    return ckpt_fail(TG_ERR_FORMAT, ck->path, "has no %s '%s'%s", what, name,
                     strcmp(what, "tensor") == 0 ? " (the model expects one)" : "");
}

static tg_status match_tensor(const tg_checkpoint *ck, bool *used, const char *name,
                              const tg_tensor *t, tg_load_report *report);
static tg_status match_rng(const tg_checkpoint *ck, bool *used, tg_load_report *report);

/* The file holds what is asked for: each destination's entry, of its kind,
 * dtype and shape; and, when strict, nothing else. */
static tg_status match_destinations(const tg_checkpoint *ck, bool *used,
                                    const tg_params *tensors, const tg_rng *rng,
                                    const tg_checkpoint_int *ints, int n_ints,
                                    tg_load_report *report)
{
    const char *path = ck->path;
    tg_status s = TG_OK;
    for (int i = 0; s == TG_OK && tensors && i < tensors->count; i++)
        s = match_tensor(ck, used, tensors->items[i].name, tensors->items[i].tensor, report);
    if (s == TG_OK && rng)
        s = match_rng(ck, used, report);
    for (int i = 0; s == TG_OK && i < n_ints; i++) {
        if (!ints[i].name)
            return ckpt_fail(TG_ERR_ARG, path, "integer %d has no name", i);
        const entry *e = find_entry(ck, ints[i].name);
        if (!e)
            s = missing(ck, report, ints[i].name, "integer");
        else if (e->kind != KIND_I64)
            s = ckpt_fail(TG_ERR_FORMAT, path, "'%s' is %s, an integer was asked for",
                          ints[i].name, kind_name(e->kind));
        else if (used[e - ck->entries])
            s = ckpt_fail(TG_ERR_ARG, path, "integer '%s' is asked for twice", ints[i].name);
        else
            used[e - ck->entries] = true;
    }
    for (uint32_t i = 0; s == TG_OK && i < ck->count; i++) {
        const entry *e = &ck->entries[i];
        if (used[i])
            continue;
        if (!report)
            return ckpt_fail(TG_ERR_FORMAT, path,
                             "holds %s '%.*s' that was not asked for (saved from a different "
                             "model? tg_checkpoint_load_nonstrict loads a part)",
                             kind_name(e->kind), (int)e->name_len, e->name);
        s = tg_load_report_note(report, false, e->name, e->name_len, "checkpoint");
    }
    return s;
}

static tg_status match_tensor(const tg_checkpoint *ck, bool *used, const char *name,
                              const tg_tensor *t, tg_load_report *report)
{
    const char *path = ck->path;
    if (!name)
        return ckpt_fail(TG_ERR_ARG, path, "a destination tensor has no name");
    if (!t)
        return ckpt_fail(TG_ERR_ARG, path, "destination tensor '%s' is NULL", name);
    const entry *e = find_entry(ck, name);
    if (!e)
        return missing(ck, report, name, "tensor");
    if (e->kind != KIND_F32 && e->kind != KIND_F64)
        return ckpt_fail(TG_ERR_FORMAT, path, "'%s' is %s, the model expects a tensor", name,
                         kind_name(e->kind));
    tg_dtype dtype = e->kind == KIND_F32 ? TG_F32 : TG_F64;
    if (dtype != t->dtype)
        return ckpt_fail(TG_ERR_FORMAT, path, "tensor '%s' is %s, the model's is %s", name,
                         tg_dtype_name(dtype), tg_dtype_name(t->dtype));
    tg_tensor file_shape = {0};
    file_shape.ndim = e->ndim;
    memcpy(file_shape.shape, e->shape, sizeof e->shape);
    if (!tg_tensor_same_shape(&file_shape, t)) {
        char a[160], b[160];
        return ckpt_fail(TG_ERR_FORMAT, path, "tensor '%s' has shape %s, the model expects %s",
                         name, tg_shape_str(&file_shape, a, sizeof a), tg_shape_str(t, b, sizeof b));
    }
    used[e - ck->entries] = true;
    return TG_OK;
}

static tg_status match_rng(const tg_checkpoint *ck, bool *used, tg_load_report *report)
{
    const entry *e = find_entry(ck, rng_entry_name);
    if (!e)
        return report ? tg_load_report_note(report, true, rng_entry_name,
                                            strlen(rng_entry_name), "checkpoint")
                      : ckpt_fail(TG_ERR_FORMAT, ck->path,
                                  "holds no generator state, but one was asked for");
    if (e->kind != KIND_RNG)
        return ckpt_fail(TG_ERR_FORMAT, ck->path, "'%s' is %s, a generator state was asked for",
                         rng_entry_name, kind_name(e->kind));
    uint32_t pos = get_u32(e->payload + 4 * TG_MT_N);
    uint32_t has_gauss = get_u32(e->payload + 4 * TG_MT_N + 4);
    if (pos > TG_MT_N || has_gauss > 1)
        return ckpt_fail(TG_ERR_FORMAT, ck->path,
                         "generator state is invalid (position %u, has_gauss %u)", pos,
                         has_gauss);
    used[e - ck->entries] = true;
    return TG_OK;
}

static void copy_tensor(tg_tensor *dst, const entry *e)
{
    size_t elsize = tg_dtype_size(dst->dtype), n = (size_t)e->bytes / elsize;
    bool little = tg_host_is_little_endian();
    if (little && tg_tensor_is_contiguous(dst)) {
        memcpy(tg_tensor_base(dst), e->payload, (size_t)e->bytes);
        return;
    }
    /* Byte by byte into each element's place, so every bit survives (NaN
     * payloads included) whatever the strides and the host's byte order. */
    unsigned char *base = dst->data;
    for (size_t i = 0; i < n; i++) {
        int64_t offset = dst->offset, rest = (int64_t)i;
        for (int d = dst->ndim - 1; d >= 0; d--) {
            offset += (rest % dst->shape[d]) * dst->strides[d];
            rest /= dst->shape[d];
        }
        unsigned char *out = base + offset * (int64_t)elsize;
        for (size_t k = 0; k < elsize; k++)
            out[k] = e->payload[i * elsize + (little ? k : elsize - 1 - k)];
    }
}

static void decode_rng(const unsigned char *p, tg_rng *rng)
{
    for (int i = 0; i < TG_MT_N; i++)
        rng->key[i] = get_u32(p + 4 * i);
    p += 4 * TG_MT_N;
    rng->pos = (int)get_u32(p);
    rng->has_gauss = get_u32(p + 4) != 0;
    uint64_t bits = get_u64(p + 8);
    memcpy(&rng->gauss, &bits, sizeof bits);
}

/* The entry of this name, by binary search of the sorted index. */
static const entry *find_entry(const tg_checkpoint *ck, const char *name)
{
    sorted_name key = {name, strlen(name), 0};
    size_t lo = 0, hi = ck->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const entry *e = &ck->entries[ck->by_name[mid]];
        sorted_name at = {e->name, e->name_len, 0};
        int c = compare_names(&key, &at);
        if (c == 0)
            return e;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- helpers -------------------------------------------------------------------- */

static tg_status ckpt_fail(tg_status status, const char *path, const char *fmt, ...)
{
    char message[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return tg_fail(status, "checkpoint %s: %s", path, message);
}

/* Byte order of names (not terminated): memcmp, then the shorter first. */
static int compare_names(const void *a, const void *b)
{
    const sorted_name *x = a, *y = b;
    int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}


static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}
