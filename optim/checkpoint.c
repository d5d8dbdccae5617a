/* Checkpoint save and load (the format is described in checkpoint.h).
 *
 * Load reads the whole file into memory and checks all of it before
 * touching a destination: reading it twice (check, then copy) would let the
 * file change in between. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/bytes.h"
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
    bool used;
} entry;

/* A sequential writer that keeps the whole-file CRC and the first error. */
typedef struct {
    FILE *f;
    uint32_t crc;
    uint64_t bytes;
    int error; /* errno of the first failure, 0 if none */
} writer;

static tg_status ckpt_fail(tg_status status, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static tg_status check_save_args(const char *path, const tg_params *tensors, const tg_rng *rng,
                                 const tg_checkpoint_int *ints, int n_ints);
static tg_status write_file(const char *path, const char *tmp, const tg_params *tensors,
                            const tg_rng *rng, const tg_checkpoint_int *ints, int n_ints);
static tg_status write_temp(const char *path, const tg_params *tensors, const tg_rng *rng,
                            const tg_checkpoint_int *ints, int n_ints, char **tmp);
static tg_status read_whole_file(const char *path, unsigned char **data, size_t *size);
static tg_status read_checked(const char *path, unsigned char **data, entry **entries,
                              uint32_t *count);
static tg_status parse_file(const char *path, const unsigned char *data, size_t size,
                            entry **entries, uint32_t *count);
static tg_status load(const char *who, const char *path, const tg_params *tensors, tg_rng *rng,
                      tg_checkpoint_int *ints, int n_ints, tg_load_report *report);
static tg_status match_destinations(const char *path, entry *entries, uint32_t count,
                                    const tg_params *tensors, const tg_rng *rng,
                                    const tg_checkpoint_int *ints, int n_ints,
                                    tg_load_report *report);
static void copy_tensor(tg_tensor *dst, const entry *e);
static void decode_rng(const unsigned char *p, tg_rng *rng);
static entry *find_entry(entry *entries, uint32_t count, const char *name);
static char *temp_path(const char *path);
static tg_status fsync_directory(const char *path);
static void put_u32(unsigned char *p, uint32_t v);
static void put_u64(unsigned char *p, uint64_t v);
static uint32_t get_u32(const unsigned char *p);
static uint64_t get_u64(const unsigned char *p);

tg_status tg_checkpoint_save(const char *path, const tg_params *tensors, const tg_rng *rng,
                             const tg_checkpoint_int *ints, int n_ints)
{
    char *tmp;
    tg_status s = write_temp(path, tensors, rng, ints, n_ints, &tmp);
    if (s != TG_OK)
        return s;
    if (rename(tmp, path) != 0) {
        s = ckpt_fail(TG_ERR_IO, path, "cannot rename '%s' over it: %s", tmp, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    /* The rename itself is durable only once the directory is synced. */
    return s == TG_OK ? fsync_directory(path) : s;
}

tg_status tg_checkpoint_write_temp(const char *path, const tg_params *tensors, const tg_rng *rng,
                                   const tg_checkpoint_int *ints, int n_ints)
{
    char *tmp;
    tg_status s = write_temp(path, tensors, rng, ints, n_ints, &tmp);
    free(tmp);
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
    unsigned char *data;
    entry *entries;
    uint32_t count;
    tg_status s = read_checked(path, &data, &entries, &count);
    if (s == TG_OK) {
        entry *e = find_entry(entries, count, name);
        if (!e || e->kind != KIND_I64)
            s = ckpt_fail(TG_ERR_FORMAT, path, "no integer named '%s'", name);
        else
            *value = (int64_t)get_u64(e->payload);
    }
    free(entries);
    free(data);
    return s;
}

/* ---- saving ---------------------------------------------------------------- */

static tg_status check_name(const char *path, const char *name, const char **seen, int n_seen)
{
    if (!name || name[0] == '\0')
        return ckpt_fail(TG_ERR_ARG, path, "an entry has an empty name");
    if (strlen(name) > TG_CHECKPOINT_NAME_MAX)
        return ckpt_fail(TG_ERR_ARG, path, "the name '%.40s...' is longer than %d bytes", name,
                         TG_CHECKPOINT_NAME_MAX);
    for (int i = 0; i < n_seen; i++)
        if (strcmp(seen[i], name) == 0)
            return ckpt_fail(TG_ERR_ARG, path, "two entries are named '%s'", name);
    return TG_OK;
}

static tg_status check_save_args(const char *path, const tg_params *tensors, const tg_rng *rng,
                                 const tg_checkpoint_int *ints, int n_ints)
{
    if (!path)
        return tg_fail(TG_ERR_ARG, "tg_checkpoint_save: path is NULL");
    if (n_ints < 0 || (n_ints > 0 && !ints))
        return ckpt_fail(TG_ERR_ARG, path, "%d integers given with ints = %p", n_ints,
                         (void *)ints);
    int n_tensors = tensors ? tensors->count : 0;
    const char **seen = malloc(((size_t)n_tensors + (size_t)n_ints + 1) * sizeof *seen);
    if (!seen)
        return ckpt_fail(TG_ERR_NOMEM, path, "out of memory");
    int n_seen = 0;
    tg_status s = TG_OK;
    if (rng)
        seen[n_seen++] = rng_entry_name;
    for (int i = 0; s == TG_OK && i < n_tensors; i++) {
        const tg_tensor *t = tensors->items[i].tensor;
        s = check_name(path, tensors->items[i].name, seen, n_seen);
        if (s == TG_OK && (!t || tg_dtype_size(t->dtype) == 0))
            s = ckpt_fail(TG_ERR_ARG, path, "tensor '%s' is NULL or has an unknown dtype",
                          tensors->items[i].name);
        seen[n_seen++] = tensors->items[i].name;
    }
    for (int i = 0; s == TG_OK && i < n_ints; i++) {
        s = check_name(path, ints[i].name, seen, n_seen);
        seen[n_seen++] = ints[i].name;
    }
    free(seen);
    if (s == TG_OK && (size_t)n_tensors + (size_t)n_ints + 1 > UINT32_MAX)
        s = ckpt_fail(TG_ERR_ARG, path, "too many entries");
    return s;
}

/* Check the arguments, then write and fsync "<path>.tmp". On success *tmp is
 * its name (the caller frees it); on failure NULL, and no temporary file is
 * left behind. */
static tg_status write_temp(const char *path, const tg_params *tensors, const tg_rng *rng,
                            const tg_checkpoint_int *ints, int n_ints, char **tmp)
{
    *tmp = NULL;
    tg_status s = check_save_args(path, tensors, rng, ints, n_ints);
    if (s != TG_OK)
        return s;
    char *name = temp_path(path);
    if (!name)
        return ckpt_fail(TG_ERR_NOMEM, path, "out of memory");
    s = write_file(path, name, tensors, rng, ints, n_ints);
    if (s != TG_OK) {
        remove(name);
        free(name);
        return s;
    }
    *tmp = name;
    return TG_OK;
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

static tg_status write_file(const char *path, const char *tmp, const tg_params *tensors,
                            const tg_rng *rng, const tg_checkpoint_int *ints, int n_ints)
{
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return ckpt_fail(TG_ERR_IO, path, "cannot create '%s': %s", tmp, strerror(errno));
    writer w = {f, 0, 0, 0};
    int n_tensors = tensors ? tensors->count : 0;
    unsigned char buf[RNG_BYTES];
    memcpy(buf, magic, 8);
    put_u32(buf + 8, TG_CHECKPOINT_VERSION);
    put_u32(buf + 12, BYTE_ORDER_MARK);
    put_u32(buf + 16, (uint32_t)(n_tensors + n_ints + (rng ? 1 : 0)));
    write_bytes(&w, buf, HEADER_BYTES);

    tg_status s = TG_OK;
    for (int i = 0; i < n_tensors && s == TG_OK; i++) {
        const tg_tensor *t = tensors->items[i].tensor;
        tg_tensor *owned;
        const void *bytes = tensor_bytes(t, &owned);
        if (!bytes) {
            s = ckpt_fail(TG_ERR_NOMEM, path, "out of memory copying '%s'",
                          tensors->items[i].name);
            break;
        }
        write_entry(&w, tensors->items[i].name, t->dtype == TG_F32 ? KIND_F32 : KIND_F64,
                    t->ndim, t->shape, bytes,
                    (uint64_t)tg_tensor_numel(t) * tg_dtype_size(t->dtype));
        tg_tensor_free(owned);
    }
    for (int i = 0; i < n_ints && s == TG_OK; i++) {
        put_u64(buf, (uint64_t)ints[i].value);
        write_entry(&w, ints[i].name, KIND_I64, 0, NULL, buf, 8);
    }
    if (rng && s == TG_OK) {
        encode_rng(rng, buf);
        write_entry(&w, rng_entry_name, KIND_RNG, 0, NULL, buf, RNG_BYTES);
    }
    if (s == TG_OK) {
        memcpy(buf, end_marker, 4);
        put_u64(buf + 4, w.bytes + TRAILER_BYTES);
        write_bytes(&w, buf, 12);
        put_u32(buf, w.crc);
        write_bytes(&w, buf, 4);
        if (!w.error && fflush(f) != 0)
            w.error = errno;
        if (!w.error && fsync(fileno(f)) != 0)
            w.error = errno;
    }
    if (fclose(f) != 0 && !w.error)
        w.error = errno;
    if (s == TG_OK && w.error)
        s = ckpt_fail(TG_ERR_IO, path, "cannot write '%s': %s", tmp, strerror(w.error));
    return s;
}

/* ---- loading ----------------------------------------------------------------- */

/* Strict when report is NULL: the file must hold exactly the destinations.
 * Otherwise what is missing is left alone and what is extra is ignored, both
 * listed in the report. Either way every entry that is loaded is checked
 * first, and nothing is copied unless all of them pass. */
static tg_status load(const char *who, const char *path, const tg_params *tensors, tg_rng *rng,
                      tg_checkpoint_int *ints, int n_ints, tg_load_report *report)
{
    if (report)
        memset(report, 0, sizeof *report);
    if (!path)
        return tg_fail(TG_ERR_ARG, "%s: path is NULL", who);
    if (n_ints < 0 || (n_ints > 0 && !ints))
        return ckpt_fail(TG_ERR_ARG, path, "%d integers asked for with ints = %p", n_ints,
                         (void *)ints);
    unsigned char *data;
    entry *entries;
    uint32_t count;
    tg_status s = read_checked(path, &data, &entries, &count);
    if (s == TG_OK)
        s = match_destinations(path, entries, count, tensors, rng, ints, n_ints, report);
    if (s == TG_OK) {
        /* Everything is valid: only now copy. */
        int loaded = 0;
        for (int i = 0; tensors && i < tensors->count; i++) {
            const tg_param *p = &tensors->items[i];
            const entry *e = find_entry(entries, count, p->name);
            if (e) {
                copy_tensor(p->tensor, e);
                loaded++;
            }
        }
        const entry *e = rng ? find_entry(entries, count, rng_entry_name) : NULL;
        if (e) {
            decode_rng(e->payload, rng);
            loaded++;
        }
        for (int i = 0; i < n_ints; i++)
            if ((e = find_entry(entries, count, ints[i].name)) != NULL) {
                ints[i].value = (int64_t)get_u64(e->payload);
                loaded++;
            }
        if (report)
            report->n_loaded = loaded;
    }
    if (s != TG_OK)
        tg_load_report_free(report);
    free(entries);
    free(data);
    return s;
}

static tg_status read_whole_file(const char *path, unsigned char **data, size_t *size)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ckpt_fail(TG_ERR_IO, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ckpt_fail(TG_ERR_IO, path, "not a regular file");
    }
    if ((uint64_t)st.st_size > SIZE_MAX - 1) {
        fclose(f);
        return ckpt_fail(TG_ERR_NOMEM, path, "too large to read");
    }
    *size = (size_t)st.st_size;
    *data = malloc(*size ? *size : 1);
    if (!*data) {
        fclose(f);
        return ckpt_fail(TG_ERR_NOMEM, path, "cannot allocate %zu bytes to read it", *size);
    }
    size_t got = fread(*data, 1, *size, f);
    fclose(f);
    if (got != *size) {
        free(*data);
        *data = NULL;
        return ckpt_fail(TG_ERR_IO, path, "read %zu of %zu bytes", got, *size);
    }
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
    if (e->kind == KIND_I64) {
        expected = 8;
    } else if (e->kind == KIND_RNG) {
        expected = RNG_BYTES;
    } else {
        int64_t numel;
        size_t b;
        if (tg_check_shape("checkpoint", e->ndim, e->shape, &numel) != TG_OK ||
            tg_mul_overflows((size_t)numel, e->kind == KIND_F32 ? 4 : 8, &b))
            return ckpt_fail(TG_ERR_FORMAT, path, "entry '%.*s' has a shape whose size overflows "
                                                  "(corrupt)",
                             nl, e->name);
        expected = b;
    }
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
    p += (size_t)e->bytes;
    *pos = p;
    return TG_OK;
}

static tg_status parse_file(const char *path, const unsigned char *data, size_t size,
                            entry **entries, uint32_t *count)
{
    *entries = NULL;
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
    size_t end = size - TRAILER_BYTES;
    if (n > (end - HEADER_BYTES) / MIN_ENTRY_BYTES)
        return ckpt_fail(TG_ERR_FORMAT, path,
                         "claims %u entries, more than %zu bytes can hold (corrupt)", n,
                         end - HEADER_BYTES);
    entry *e = calloc(n ? n : 1, sizeof *e);
    if (!e)
        return ckpt_fail(TG_ERR_NOMEM, path, "out of memory");
    size_t pos = HEADER_BYTES;
    tg_status s = TG_OK;
    for (uint32_t i = 0; i < n && s == TG_OK; i++)
        s = parse_entry(path, data, &pos, end, i, &e[i]);
    if (s == TG_OK && pos != end)
        s = ckpt_fail(TG_ERR_FORMAT, path,
                      "has %zu unexplained bytes between its last entry and its trailer "
                      "(corrupt)",
                      end - pos);
    if (s == TG_OK) {
        uint32_t crc = tg_crc32(data, size - 4), stored = get_u32(data + size - 4);
        if (crc != stored)
            s = ckpt_fail(TG_ERR_FORMAT, path,
                          "fails its whole-file CRC-32 check (stored 0x%08X, computed 0x%08X): "
                          "the file is corrupt",
                          stored, crc);
    }
    for (uint32_t i = 0; i < n && s == TG_OK; i++)
        for (uint32_t j = 0; j < i && s == TG_OK; j++)
            if (e[i].name_len == e[j].name_len && memcmp(e[i].name, e[j].name, e[i].name_len) == 0)
                s = ckpt_fail(TG_ERR_FORMAT, path, "holds two entries named '%.*s'",
                              (int)e[i].name_len, e[i].name);
    if (s != TG_OK) {
        free(e);
        return s;
    }
    *entries = e;
    *count = n;
    return TG_OK;
}

/* The file read whole and checked whole: *entries (count of them) point
 * into *data. On failure both are NULL; either way the caller frees both. */
static tg_status read_checked(const char *path, unsigned char **data, entry **entries,
                              uint32_t *count)
{
    size_t size = 0;
    *entries = NULL;
    *count = 0;
    tg_status s = read_whole_file(path, data, &size);
    if (s == TG_OK)
        s = parse_file(path, *data, size, entries, count);
    if (s != TG_OK) {
        free(*data);
        *data = NULL;
    }
    return s;
}

/* A missing destination is an error when strict (report NULL), else a name
 * in report->missing. */
#define MISSING(name, ...)                                                                    \
    do {                                                                                      \
        tg_status missing_status =                                                            \
            report ? tg_load_report_note(report, true, name, strlen(name), "checkpoint")     \
                   : ckpt_fail(TG_ERR_FORMAT, path, __VA_ARGS__);                             \
        if (missing_status != TG_OK)                                                          \
            return missing_status;                                                            \
    } while (0)

static tg_status match_destinations(const char *path, entry *entries, uint32_t count,
                                    const tg_params *tensors, const tg_rng *rng,
                                    const tg_checkpoint_int *ints, int n_ints,
                                    tg_load_report *report)
{
    for (int i = 0; tensors && i < tensors->count; i++) {
        const char *name = tensors->items[i].name;
        const tg_tensor *t = tensors->items[i].tensor;
        if (!t)
            return ckpt_fail(TG_ERR_ARG, path, "destination tensor '%s' is NULL", name);
        entry *e = find_entry(entries, count, name);
        if (!e) {
            MISSING(name, "has no tensor '%s' (the model expects one)", name);
            continue;
        }
        if (e->kind != KIND_F32 && e->kind != KIND_F64)
            return ckpt_fail(TG_ERR_FORMAT, path, "'%s' is %s, the model expects a tensor",
                             name, kind_name(e->kind));
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
                             name, tg_shape_str(&file_shape, a, sizeof a),
                             tg_shape_str(t, b, sizeof b));
        }
        e->used = true;
    }
    entry *e = rng ? find_entry(entries, count, rng_entry_name) : NULL;
    if (rng && !e)
        MISSING(rng_entry_name, "holds no generator state, but one was asked for");
    if (e) {
        if (e->kind != KIND_RNG)
            return ckpt_fail(TG_ERR_FORMAT, path, "'%s' is %s, a generator state was asked for",
                             rng_entry_name, kind_name(e->kind));
        uint32_t pos = get_u32(e->payload + 4 * TG_MT_N);
        uint32_t has_gauss = get_u32(e->payload + 4 * TG_MT_N + 4);
        if (pos > TG_MT_N || has_gauss > 1)
            return ckpt_fail(TG_ERR_FORMAT, path,
                             "generator state is invalid (position %u, has_gauss %u)", pos,
                             has_gauss);
        e->used = true;
    }
    for (int i = 0; i < n_ints; i++) {
        if (!ints[i].name)
            return ckpt_fail(TG_ERR_ARG, path, "integer %d has no name", i);
        e = find_entry(entries, count, ints[i].name);
        if (!e) {
            MISSING(ints[i].name, "has no integer '%s'", ints[i].name);
            continue;
        }
        if (e->kind != KIND_I64)
            return ckpt_fail(TG_ERR_FORMAT, path, "'%s' is %s, an integer was asked for",
                             ints[i].name, kind_name(e->kind));
        if (e->used)
            return ckpt_fail(TG_ERR_ARG, path, "integer '%s' is asked for twice", ints[i].name);
        e->used = true;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (entries[i].used)
            continue;
        if (!report)
            return ckpt_fail(TG_ERR_FORMAT, path,
                             "holds %s '%.*s' that was not asked for (saved from a different "
                             "model? tg_checkpoint_load_nonstrict loads a part)",
                             kind_name(entries[i].kind), (int)entries[i].name_len,
                             entries[i].name);
        tg_status s = tg_load_report_note(report, false, entries[i].name, entries[i].name_len,
                                          "checkpoint");
        if (s != TG_OK)
            return s;
    }
    return TG_OK;
}
#undef MISSING

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

static entry *find_entry(entry *entries, uint32_t count, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = 0; i < count; i++)
        if (entries[i].name_len == len && memcmp(entries[i].name, name, len) == 0)
            return &entries[i];
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

static char *temp_path(const char *path)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (tmp) {
        memcpy(tmp, path, n);
        memcpy(tmp + n, ".tmp", 5);
    }
    return tmp;
}

static tg_status fsync_directory(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    char *dir = malloc(n + 2);
    if (!dir)
        return ckpt_fail(TG_ERR_NOMEM, path, "out of memory");
    if (!slash)
        strcpy(dir, ".");
    else if (n == 0)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    tg_status s = TG_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    /* Some file systems cannot sync a directory (EINVAL); the rename has
     * happened either way. */
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        s = ckpt_fail(TG_ERR_IO, path, "saved, but syncing the directory '%s' failed: %s", dir,
                      strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return s;
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
