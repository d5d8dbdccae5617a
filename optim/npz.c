/* .npz export and import (see npz.h): just enough of the zip format for
 * numpy's archives of .npy files - stored members, a central directory,
 * the end record, and the Zip64 extra field that numpy.savez always writes.
 *
 * Every member's .npy image is made and read by core/npy.c through a
 * memory stream, so the .npy format lives in one place. Numbers in a zip
 * are little-endian; offsets below are in bytes (APPNOTE.TXT, 4.3). */
#include "npz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/files.h"
#include "../core/npy_stream.h"
#include "crc32.h"
#include "internal.h"

enum {
    LOCAL_BYTES = 30,   /* local file header, before the name */
    CENTRAL_BYTES = 46, /* central directory header, before the name */
    END_BYTES = 22,     /* end of central directory record, before its comment */
    ZIP_VERSION = 20,   /* 2.0: what stored members need */
    DOS_DATE = 0x21,    /* 1980-01-01 00:00: archives of equal sets are equal bytes */
    ZIP64_EXTRA = 0x0001,
    COMMENT_MAX = 0xFFFF,
};
#define LOCAL_SIG 0x04034b50u
#define CENTRAL_SIG 0x02014b50u
#define END_SIG 0x06054b50u
#define ZIP32_MAX 0xFFFFFFFFu

/* A member of an archive: where its local header is, its data's size and CRC. */
typedef struct {
    char *name; /* as stored: "<tensor name>.npy" */
    uint64_t offset, size;
    uint32_t crc;
} member;

/* An archive open for reading. */
typedef struct {
    const char *who, *path;
    FILE *f;
    uint64_t directory; /* offset of the central directory; member data lies before it */
    member *members;
    uint32_t count;
} archive;

static tg_status npz_fail(tg_status status, const char *who, const char *path, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));
static tg_status check_save_args(const char *path, const tg_params *params);
static tg_status write_member(FILE *f, const char *path, const char *name, const tg_tensor *t,
                              uint64_t *pos, member *m);
static tg_status write_directory(FILE *f, const char *path, const member *m, int n,
                                 uint64_t pos);
static tg_status load(const char *who, const char *path, const tg_params *params,
                      tg_load_report *report);
static tg_status match(const archive *a, const tg_params *params, int *which,
                       tg_load_report *report);
static tg_status archive_open(archive *a, const char *who, const char *path);
static void archive_close(archive *a);
static tg_status read_end_record(archive *a, uint64_t size, uint64_t *dir_size);
static tg_status read_directory(archive *a, const unsigned char *d, uint64_t size);
static tg_status parse_central(archive *a, const unsigned char *d, uint64_t size, uint64_t *pos,
                               member *m);
static tg_tensor *read_member(const archive *a, const member *m);
static bool is_member_of(const char *member_name, const char *tensor_name);
static void put16(unsigned char *p, uint32_t v);
static void put32(unsigned char *p, uint32_t v);
static uint32_t get16(const unsigned char *p);
static uint32_t get32(const unsigned char *p);
static uint64_t get64(const unsigned char *p);

tg_status tg_npz_save(const char *path, const tg_params *params)
{
    tg_status s = check_save_args(path, params);
    if (s != TG_OK)
        return s;
    member *m = calloc((size_t)params->count + 1, sizeof *m);
    if (!m)
        return npz_fail(TG_ERR_NOMEM, "tg_npz_save", path, "out of memory");
    /* A new temporary file beside path, then rename (core/files.h): a
     * failed save leaves the old file whole. */
    char who[4200];
    snprintf(who, sizeof who, "tg_npz_save: '%s'", path);
    tg_file_writer file;
    s = tg_file_begin(&file, who, path);
    uint64_t pos = 0;
    for (int i = 0; i < params->count && s == TG_OK; i++)
        s = write_member(file.f, path, params->items[i].name, params->items[i].tensor, &pos,
                         &m[i]);
    if (s == TG_OK)
        s = write_directory(file.f, path, m, params->count, pos);
    if (s == TG_OK && (s = tg_file_finish(&file, 0)) == TG_OK)
        s = tg_file_commit(&file);
    tg_file_end(&file, true);
    for (int i = 0; i < params->count; i++)
        free(m[i].name);
    free(m);
    return s;
}

tg_status tg_npz_load(const char *path, const tg_params *params)
{
    return load("tg_npz_load", path, params, NULL);
}

tg_status tg_npz_load_nonstrict(const char *path, const tg_params *params,
                                tg_load_report *report)
{
    if (!report)
        return tg_fail(TG_ERR_ARG, "tg_npz_load_nonstrict: report is NULL (it lists what was "
                                   "missing and what was left out)");
    return load("tg_npz_load_nonstrict", path, params, report);
}

/* ---- writing ---------------------------------------------------------------------- */

static tg_status check_save_args(const char *path, const tg_params *params)
{
    if (!path || !params)
        return tg_fail(TG_ERR_ARG, "tg_npz_save: %s is NULL", path ? "params" : "path");
    if (params->count > 0xFFFF - 1)
        return npz_fail(TG_ERR_ARG, "tg_npz_save", path,
                        "%d tensors: a zip without Zip64 holds at most 65534", params->count);
    for (int i = 0; i < params->count; i++) {
        const tg_param *p = &params->items[i];
        if (!p->tensor || tg_dtype_size(p->tensor->dtype) == 0)
            return npz_fail(TG_ERR_ARG, "tg_npz_save", path,
                            "tensor '%s' is NULL or has an unknown dtype", p->name);
        if (p->name[0] == '\0' || strlen(p->name) > 0xFFFF - 4)
            return npz_fail(TG_ERR_ARG, "tg_npz_save", path,
                            "tensor %d has an empty or too long name", i);
    }
    return TG_OK;
}

/* Local header, name, then the .npy image, made in memory first because
 * the header carries its CRC and size. */
static tg_status write_member(FILE *f, const char *path, const char *name, const tg_tensor *t,
                              uint64_t *pos, member *m)
{
    size_t name_len = strlen(name) + 4;
    m->name = malloc(name_len + 1);
    char *image = NULL;
    size_t size = 0;
    FILE *memory = m->name ? open_memstream(&image, &size) : NULL;
    if (!memory) {
        free(image);
        return npz_fail(TG_ERR_NOMEM, "tg_npz_save", path, "out of memory");
    }
    snprintf(m->name, name_len + 1, "%s.npy", name);
    tg_status s = tg_npy_write_stream(memory, t, m->name);
    if (fclose(memory) != 0 && s == TG_OK)
        s = npz_fail(TG_ERR_NOMEM, "tg_npz_save", path, "out of memory for '%s'", m->name);
    if (s == TG_OK && (size > ZIP32_MAX || *pos > ZIP32_MAX))
        s = npz_fail(TG_ERR_ARG, "tg_npz_save", path,
                     "'%s' ends past 4 GiB, which needs Zip64 (not supported)", m->name);
    if (s == TG_OK) {
        m->offset = *pos;
        m->size = size;
        m->crc = tg_crc32(image, size);
        unsigned char h[LOCAL_BYTES] = {0};
        put32(h, LOCAL_SIG);
        put16(h + 4, ZIP_VERSION);
        put16(h + 12, DOS_DATE);
        put32(h + 14, m->crc);
        put32(h + 18, (uint32_t)size); /* compressed: stored, the same */
        put32(h + 22, (uint32_t)size);
        put16(h + 26, (uint32_t)name_len);
        if (fwrite(h, 1, sizeof h, f) != sizeof h || fwrite(m->name, 1, name_len, f) != name_len ||
            fwrite(image, 1, size, f) != size)
            s = npz_fail(TG_ERR_IO, "tg_npz_save", path, "cannot write: %s", strerror(errno));
        *pos += sizeof h + name_len + size;
    }
    free(image);
    return s;
}

/* The central directory (one header per member) and the end record. */
static tg_status write_directory(FILE *f, const char *path, const member *m, int n,
                                 uint64_t pos)
{
    uint64_t start = pos;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        size_t name_len = strlen(m[i].name);
        unsigned char h[CENTRAL_BYTES] = {0};
        put32(h, CENTRAL_SIG);
        put16(h + 4, ZIP_VERSION);
        put16(h + 6, ZIP_VERSION);
        put16(h + 14, DOS_DATE);
        put32(h + 16, m[i].crc);
        put32(h + 20, (uint32_t)m[i].size);
        put32(h + 24, (uint32_t)m[i].size);
        put16(h + 28, (uint32_t)name_len);
        put32(h + 38, 0644u << 16); /* external attributes: a regular file, rw-r--r-- */
        put32(h + 42, (uint32_t)m[i].offset);
        ok = fwrite(h, 1, sizeof h, f) == sizeof h && fwrite(m[i].name, 1, name_len, f) == name_len;
        pos += sizeof h + name_len;
    }
    if (ok && pos > ZIP32_MAX)
        return npz_fail(TG_ERR_ARG, "tg_npz_save", path,
                        "the archive exceeds 4 GiB, which needs Zip64 (not supported)");
    unsigned char e[END_BYTES] = {0};
    put32(e, END_SIG);
    put16(e + 8, (uint32_t)n);
    put16(e + 10, (uint32_t)n);
    put32(e + 12, (uint32_t)(pos - start));
    put32(e + 16, (uint32_t)start);
    if (!ok || fwrite(e, 1, sizeof e, f) != sizeof e)
        return npz_fail(TG_ERR_IO, "tg_npz_save", path, "cannot write: %s", strerror(errno));
    return TG_OK;
}

/* ---- reading ------------------------------------------------------------------------ */

/* Strict when report is NULL. Every member that is loaded is read, checked
 * and converted before the first destination is written. */
static tg_status load(const char *who, const char *path, const tg_params *params,
                      tg_load_report *report)
{
    if (report)
        memset(report, 0, sizeof *report);
    if (!path || !params)
        return tg_fail(TG_ERR_ARG, "%s: %s is NULL", who, path ? "params" : "path");
    archive a;
    tg_status s = archive_open(&a, who, path);
    if (s != TG_OK)
        return s;
    int *which = malloc(((size_t)params->count + 1) * sizeof *which);
    tg_tensor **loaded = calloc((size_t)params->count + 1, sizeof *loaded);
    s = which && loaded ? match(&a, params, which, report)
                        : npz_fail(TG_ERR_NOMEM, who, path, "out of memory");
    for (int i = 0; i < params->count && s == TG_OK; i++) {
        if (which[i] < 0)
            continue;
        const tg_param *p = &params->items[i];
        loaded[i] = read_member(&a, &a.members[which[i]]);
        if (!loaded[i]) {
            s = tg_last_status();
        } else if (!tg_tensor_same_shape(loaded[i], p->tensor)) {
            char got[160], want[160];
            s = npz_fail(TG_ERR_SHAPE, who, path, "'%s' has shape %s, the model's '%s' is %s",
                         a.members[which[i]].name, tg_shape_str(loaded[i], got, sizeof got),
                         p->name, tg_shape_str(p->tensor, want, sizeof want));
        }
    }
    for (int i = 0; i < params->count && s == TG_OK; i++)
        if (loaded[i]) {
            tg_tensor_copy_into(params->items[i].tensor, loaded[i]); /* shapes checked */
            if (report)
                report->n_loaded++;
        }
    for (int i = 0; loaded && i < params->count; i++)
        tg_tensor_free(loaded[i]);
    free(loaded);
    free(which);
    archive_close(&a);
    if (s != TG_OK)
        tg_load_report_free(report);
    return s;
}

/* which[i]: the member that params->items[i] loads from, or -1. A name
 * without a member, or a member without a name, is an error when strict and
 * a line of the report otherwise. */
static tg_status match(const archive *a, const tg_params *params, int *which,
                       tg_load_report *report)
{
    bool *used = calloc((size_t)a->count + 1, sizeof *used);
    if (!used)
        return npz_fail(TG_ERR_NOMEM, a->who, a->path, "out of memory");
    tg_status s = TG_OK;
    for (int i = 0; i < params->count && s == TG_OK; i++) {
        const tg_param *p = &params->items[i];
        if (!p->tensor) {
            s = npz_fail(TG_ERR_ARG, a->who, a->path, "destination '%s' is NULL", p->name);
            break;
        }
        which[i] = -1;
        for (uint32_t k = 0; k < a->count && which[i] < 0; k++)
            if (is_member_of(a->members[k].name, p->name))
                which[i] = (int)k;
        if (which[i] >= 0)
            used[which[i]] = true;
        else if (report)
            s = tg_load_report_note(report, true, p->name, strlen(p->name), a->who);
        else
            s = npz_fail(TG_ERR_FORMAT, a->who, a->path, "has no member '%s.npy' (the model "
                         "expects one)", p->name);
    }
    for (uint32_t k = 0; k < a->count && s == TG_OK; k++) {
        if (used[k])
            continue;
        size_t n = strlen(a->members[k].name) - 4; /* without ".npy" */
        if (report)
            s = tg_load_report_note(report, false, a->members[k].name, n, a->who);
        else
            s = npz_fail(TG_ERR_FORMAT, a->who, a->path,
                         "holds '%s' that was not asked for (tg_npz_load_nonstrict loads a "
                         "part)", a->members[k].name);
    }
    free(used);
    return s;
}

static tg_status archive_open(archive *a, const char *who, const char *path)
{
    *a = (archive){.who = who, .path = path};
    uint64_t size; /* a FIFO or a device is refused before it is read */
    if (!(a->f = tg_file_open_regular(who, path, &size)))
        return tg_last_status();
    uint64_t dir_size;
    tg_status s = read_end_record(a, size, &dir_size);
    unsigned char *d = s == TG_OK ? malloc(dir_size + 1) : NULL;
    if (s == TG_OK && !d)
        s = npz_fail(TG_ERR_NOMEM, who, path, "out of memory for its directory");
    if (s == TG_OK && (fseek(a->f, (long)a->directory, SEEK_SET) != 0 ||
                       fread(d, 1, dir_size, a->f) != dir_size))
        s = npz_fail(TG_ERR_IO, who, path, "cannot read its directory");
    if (s == TG_OK)
        s = read_directory(a, d, dir_size);
    free(d);
    if (s != TG_OK)
        archive_close(a);
    return s;
}

static void archive_close(archive *a)
{
    for (uint32_t k = 0; a->members && k < a->count; k++)
        free(a->members[k].name);
    free(a->members);
    if (a->f)
        fclose(a->f);
    *a = (archive){0};
}

/* Find the end record: the last 22 bytes, or earlier by the length of a
 * comment it ends with; it gives the member count and where the central
 * directory is. */
static tg_status read_end_record(archive *a, uint64_t size, uint64_t *dir_size)
{
    unsigned char tail[END_BYTES + COMMENT_MAX];
    size_t n = size < sizeof tail ? (size_t)size : sizeof tail;
    if (size < END_BYTES)
        return npz_fail(TG_ERR_FORMAT, a->who, a->path,
                        "is %llu bytes, too short to be a zip archive", (unsigned long long)size);
    if (fseek(a->f, (long)(size - n), SEEK_SET) != 0 || fread(tail, 1, n, a->f) != n)
        return npz_fail(TG_ERR_IO, a->who, a->path, "cannot read its end");
    const unsigned char *e = NULL;
    for (size_t i = n - END_BYTES + 1; i-- > 0 && !e;)
        if (get32(tail + i) == END_SIG && i + END_BYTES + get16(tail + i + 20) == n)
            e = tail + i;
    if (!e)
        return npz_fail(TG_ERR_FORMAT, a->who, a->path,
                        "is not a zip archive (no end of central directory record)");
    uint64_t end = size - n + (uint64_t)(e - tail);
    a->count = get16(e + 10);
    *dir_size = get32(e + 12);
    a->directory = get32(e + 16);
    if (get16(e + 4) != 0 || get16(e + 6) != 0 || get16(e + 8) != a->count)
        return npz_fail(TG_ERR_FORMAT, a->who, a->path, "spans several disks (not supported)");
    if (a->count == 0xFFFF || *dir_size == ZIP32_MAX || a->directory == ZIP32_MAX)
        return npz_fail(TG_ERR_FORMAT, a->who, a->path,
                        "needs Zip64 end records (over 4 GiB or 65535 members): not supported");
    if (a->directory > end || *dir_size > end - a->directory)
        return npz_fail(TG_ERR_FORMAT, a->who, a->path,
                        "its directory (%llu bytes at %llu) does not fit before its end record "
                        "at %llu (truncated or corrupt)",
                        (unsigned long long)*dir_size, (unsigned long long)a->directory,
                        (unsigned long long)end);
    return TG_OK;
}

static tg_status read_directory(archive *a, const unsigned char *d, uint64_t size)
{
    a->members = calloc((size_t)a->count + 1, sizeof *a->members);
    if (!a->members)
        return npz_fail(TG_ERR_NOMEM, a->who, a->path, "out of memory");
    uint64_t pos = 0;
    for (uint32_t k = 0; k < a->count; k++) {
        tg_status s = parse_central(a, d, size, &pos, &a->members[k]);
        for (uint32_t j = 0; s == TG_OK && j < k; j++)
            if (strcmp(a->members[j].name, a->members[k].name) == 0)
                s = npz_fail(TG_ERR_FORMAT, a->who, a->path, "holds two members named '%s'",
                             a->members[k].name);
        if (s != TG_OK)
            return s;
    }
    return TG_OK;
}

/* One central directory header at d[*pos]: checks what we support, takes
 * 64-bit sizes and offset from a Zip64 extra field where the 32-bit ones
 * are 0xFFFFFFFF (numpy.savez writes one for every member). */
static tg_status parse_central(archive *a, const unsigned char *d, uint64_t size, uint64_t *pos,
                               member *m)
{
    const char *who = a->who, *path = a->path;
    const unsigned char *h = d + *pos;
    if (size - *pos < CENTRAL_BYTES || get32(h) != CENTRAL_SIG)
        return npz_fail(TG_ERR_FORMAT, who, path, "its directory is corrupt at byte %llu",
                        (unsigned long long)*pos);
    uint32_t name_len = get16(h + 28), extra_len = get16(h + 30), comment_len = get16(h + 32);
    if (size - *pos - CENTRAL_BYTES < (uint64_t)name_len + extra_len + comment_len)
        return npz_fail(TG_ERR_FORMAT, who, path, "its directory is truncated");
    m->name = malloc(name_len + 1);
    if (!m->name)
        return npz_fail(TG_ERR_NOMEM, who, path, "out of memory");
    memcpy(m->name, h + CENTRAL_BYTES, name_len);
    m->name[name_len] = '\0';
    uint32_t flags = get16(h + 8), method = get16(h + 10);
    uint64_t packed = get32(h + 20);
    m->crc = get32(h + 16);
    m->size = get32(h + 24);
    m->offset = get32(h + 42);
    /* The Zip64 field lists, in this order, only the values that overflowed. */
    uint64_t *wide[3] = {&m->size, &packed, &m->offset};
    const unsigned char *x = h + CENTRAL_BYTES + name_len;
    for (uint32_t i = 0; i + 4 <= extra_len;) {
        uint32_t id = get16(x + i), len = get16(x + i + 2), used = 0;
        if (i + 4 + len > extra_len)
            break;
        for (int k = 0; k < 3 && id == ZIP64_EXTRA; k++)
            if (*wide[k] == ZIP32_MAX && used + 8 <= len) {
                *wide[k] = get64(x + i + 4 + used);
                used += 8;
            }
        i += 4 + len;
    }
    *pos += CENTRAL_BYTES + (uint64_t)name_len + extra_len + comment_len;
    if (memchr(m->name, '\0', name_len) || name_len < 5 || !is_member_of(m->name, NULL))
        return npz_fail(TG_ERR_FORMAT, who, path, "member '%s' is not a .npy file", m->name);
    if (flags & 1u)
        return npz_fail(TG_ERR_FORMAT, who, path, "member '%s' is encrypted", m->name);
    if (method != 0)
        return npz_fail(TG_ERR_FORMAT, who, path,
                        "member '%s' is compressed (method %u): write it with numpy.savez, "
                        "not savez_compressed",
                        m->name, method);
    if (packed != m->size || m->offset >= a->directory || m->size > a->directory)
        return npz_fail(TG_ERR_FORMAT, who, path,
                        "member '%s' claims %llu bytes at %llu, outside the data (corrupt)",
                        m->name, (unsigned long long)m->size, (unsigned long long)m->offset);
    return TG_OK;
}

/* The member's data: its local header checked against the directory, its
 * bytes against their CRC-32, then parsed as a .npy image. */
static tg_tensor *read_member(const archive *a, const member *m)
{
    unsigned char h[LOCAL_BYTES];
    char label[512];
    snprintf(label, sizeof label, "%s:%s", a->path, m->name);
    if (fseek(a->f, (long)m->offset, SEEK_SET) != 0 || fread(h, 1, sizeof h, a->f) != sizeof h ||
        get32(h) != LOCAL_SIG || get16(h + 26) != strlen(m->name)) {
        npz_fail(TG_ERR_FORMAT, a->who, a->path,
                 "the local header of '%s' does not match the directory (corrupt)", m->name);
        return NULL;
    }
    uint64_t data = m->offset + LOCAL_BYTES + get16(h + 26) + get16(h + 28);
    unsigned char *bytes = malloc(m->size ? m->size : 1);
    tg_status s = TG_OK;
    if (data > a->directory || m->size > a->directory - data)
        s = npz_fail(TG_ERR_FORMAT, a->who, a->path,
                     "the data of '%s' runs into the directory (corrupt)", m->name);
    else if (!bytes)
        s = npz_fail(TG_ERR_NOMEM, a->who, a->path, "out of memory for '%s'", m->name);
    else if (fseek(a->f, (long)data, SEEK_SET) != 0 || fread(bytes, 1, m->size, a->f) != m->size)
        s = npz_fail(TG_ERR_IO, a->who, a->path, "cannot read '%s'", m->name);
    else if (tg_crc32(bytes, m->size) != m->crc)
        s = npz_fail(TG_ERR_FORMAT, a->who, a->path,
                     "member '%s' fails its CRC-32 check (the data is corrupt)", m->name);
    FILE *memory = s == TG_OK && m->size > 0 ? fmemopen(bytes, m->size, "rb") : NULL;
    if (s == TG_OK && !memory)
        s = npz_fail(TG_ERR_FORMAT, a->who, a->path, "member '%s' is empty", m->name);
    tg_tensor *t = memory ? tg_npy_read_stream(memory, label, m->size) : NULL;
    if (memory)
        fclose(memory);
    free(bytes);
    return t;
}

/* ---- helpers -------------------------------------------------------------------------- */

static tg_status npz_fail(tg_status status, const char *who, const char *path, const char *fmt,
                          ...)
{
    char message[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return tg_fail(status, "%s: '%s' %s", who, path, message);
}

/* True when member_name is tensor_name + ".npy" (any name + ".npy" when
 * tensor_name is NULL). */
static bool is_member_of(const char *member_name, const char *tensor_name)
{
    size_t n = strlen(member_name);
    if (n < 4 || strcmp(member_name + n - 4, ".npy") != 0)
        return false;
    return !tensor_name || (strlen(tensor_name) == n - 4 &&
                            memcmp(member_name, tensor_name, n - 4) == 0);
}

static void put16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xFFFF);
    put16(p + 2, v >> 16);
}

static uint32_t get16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static uint32_t get32(const unsigned char *p) { return get16(p) | get16(p + 2) << 16; }

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}
