/* .npy read and write (see npy.h).
 *
 * Reading checks the whole description (magic, version, header, dtype,
 * shape, exact data length against the file size) before it allocates the
 * tensor, so a hostile header cannot make it allocate or read past what the
 * file holds. */
#include "npy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "files.h"
#include "npy_stream.h"

enum {
    NPY_MAGIC_LEN = 6,
    NPY_ALIGN = 64,             /* numpy pads header + preamble to this */
    NPY_HEADER_MAX = 1 << 20,   /* numpy's own headers are < 1 KiB */
    NPY_STRING_MAX = 64,
};

static const char npy_magic[NPY_MAGIC_LEN] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

typedef struct {
    const char *path;
    tg_dtype dtype;
    bool fortran_order;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
} npy_header;

static tg_status read_header(FILE *f, const char *path, uint64_t file_size, npy_header *h);
static tg_status parse_header(const char *text, size_t len, npy_header *h);
static void shape_text(int ndim, const int64_t *shape, char *buf, size_t size);

tg_status tg_npy_save(const char *path, const tg_tensor *t)
{
    if (!path || !t)
        return tg_fail(TG_ERR_ARG, "tg_npy_save: NULL argument");
    if (tg_tensor_check("tg_npy_save", t) != TG_OK)
        return tg_last_status();
    /* A new temporary file beside path, then rename: a failed save leaves
     * the old file whole (core/files.h). */
    char who[4200];
    snprintf(who, sizeof who, "tg_npy_save: '%s'", path);
    tg_file_writer file;
    tg_status s = tg_file_begin(&file, who, path);
    if (s == TG_OK && (s = tg_npy_write_stream(file.f, t, path)) == TG_OK &&
        (s = tg_file_finish(&file, 0)) == TG_OK)
        s = tg_file_commit(&file);
    tg_file_end(&file, true);
    return s;
}

tg_status tg_npy_write_stream(FILE *f, const tg_tensor *t, const char *path)
{
    size_t elsize = tg_dtype_size(t->dtype);

    char shape[TG_MAX_DIMS * 24 + 4];
    shape_text(t->ndim, t->shape, shape, sizeof shape);
    char header[512];
    int len = snprintf(header, sizeof header,
                       "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       t->dtype == TG_F32 ? "<f4" : "<f8", shape);
    /* Pad with spaces so that preamble (10 bytes) + header ends on a 64-byte
     * boundary, the last byte being the newline numpy expects. */
    size_t total = 10 + (size_t)len + 1;
    size_t padded = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    size_t header_len = padded - 10;
    memset(header + len, ' ', header_len - (size_t)len - 1);
    header[header_len - 1] = '\n';

    /* The data goes out in C order from a contiguous buffer. */
    const tg_tensor *src = t;
    tg_tensor *copy = NULL;
    if (!tg_tensor_is_contiguous(t)) {
        copy = tg_tensor_copy(t);
        if (!copy)
            return tg_last_status();
        src = copy;
    }
    const char *data = (const char *)src->data + src->offset * (int64_t)elsize;
    size_t count = (size_t)tg_tensor_numel(src);

    unsigned char preamble[10];
    memcpy(preamble, npy_magic, NPY_MAGIC_LEN);
    preamble[6] = 1; /* version 1.0 */
    preamble[7] = 0;
    preamble[8] = (unsigned char)(header_len & 0xFF);
    preamble[9] = (unsigned char)(header_len >> 8);
    bool ok = fwrite(preamble, 1, sizeof preamble, f) == sizeof preamble &&
              fwrite(header, 1, header_len, f) == header_len;
    if (tg_host_is_little_endian()) {
        ok = ok && fwrite(data, elsize, count, f) == count;
    } else {
        unsigned char chunk[4096];
        size_t per = sizeof chunk / elsize;
        for (size_t i = 0; ok && i < count; i += per) {
            size_t n = count - i < per ? count - i : per;
            memcpy(chunk, data + i * elsize, n * elsize);
            tg_swap_elements(chunk, n, elsize);
            ok = fwrite(chunk, elsize, n, f) == n;
        }
    }
    int saved_errno = errno;
    tg_tensor_free(copy);
    if (!ok)
        return tg_fail(TG_ERR_IO, "tg_npy_save: cannot write '%s': %s", path,
                       strerror(saved_errno));
    return TG_OK;
}

tg_tensor *tg_npy_load(const char *path)
{
    if (!path) {
        tg_fail(TG_ERR_ARG, "tg_npy_load: path is NULL");
        return NULL;
    }
    uint64_t size;
    FILE *f = tg_file_open_regular("tg_npy_load", path, &size);
    if (!f)
        return NULL;
    tg_tensor *t = tg_npy_read_stream(f, path, size);
    fclose(f);
    return t;
}

tg_tensor *tg_npy_read_stream(FILE *f, const char *path, uint64_t size)
{
    npy_header h;
    if (read_header(f, path, size, &h) != TG_OK)
        return NULL;

    /* A Fortran-order array of shape (a, b, c) is laid out as the C-order
     * array of shape (c, b, a); read it so, then copy through the reversing
     * permutation. */
    int64_t file_shape[TG_MAX_DIMS];
    for (int d = 0; d < h.ndim; d++)
        file_shape[d] = h.fortran_order ? h.shape[h.ndim - 1 - d] : h.shape[d];
    tg_tensor *t = tg_tensor_zeros(h.dtype, h.ndim, file_shape);
    if (!t)
        return NULL;
    size_t elsize = tg_dtype_size(h.dtype), count = (size_t)tg_tensor_numel(t);
    if (fread(t->data, elsize, count, f) != count) {
        tg_fail(TG_ERR_IO, "tg_npy_load: '%s': read error: %s", path,
                ferror(f) ? strerror(errno) : "unexpected end of file");
        tg_tensor_free(t);
        return NULL;
    }
    if (!tg_host_is_little_endian())
        tg_swap_elements(t->data, count, elsize);
    if (h.fortran_order && h.ndim > 1) {
        int perm[TG_MAX_DIMS];
        for (int d = 0; d < h.ndim; d++)
            perm[d] = h.ndim - 1 - d;
        tg_tensor view;
        tg_view_permute(&view, t, perm);
        tg_tensor *c_order = tg_tensor_copy(&view);
        tg_tensor_free(t);
        t = c_order;
    }
    return t;
}

tg_status tg_npy_load_into(const char *path, tg_tensor *dst)
{
    if (!dst)
        return tg_fail(TG_ERR_ARG, "tg_npy_load_into: destination tensor is NULL");
    tg_tensor *t = tg_npy_load(path);
    if (!t)
        return tg_last_status();
    tg_status s = TG_OK;
    if (!tg_tensor_same_shape(t, dst)) {
        char a[128], b[128];
        s = tg_fail(TG_ERR_SHAPE, "tg_npy_load_into: '%s' holds shape %s, the tensor has %s",
                    path, tg_shape_str(t, a, sizeof a), tg_shape_str(dst, b, sizeof b));
    } else {
        tg_tensor_copy_into(dst, t);
    }
    tg_tensor_free(t);
    return s;
}

/* ---- reading the header ------------------------------------------------ */

#define FORMAT_ERROR(...) tg_fail(TG_ERR_FORMAT, __VA_ARGS__)

/* Read and check everything before the data; on success the file position
 * is at the first data byte and the data length equals what is left. */
static tg_status read_header(FILE *f, const char *path, uint64_t file_size, npy_header *h)
{
    unsigned char pre[12];
    if (file_size < 10)
        return FORMAT_ERROR("tg_npy_load: '%s' is %llu bytes, too short for a .npy file", path,
                            (unsigned long long)file_size);
    if (fread(pre, 1, 10, f) != 10)
        return tg_fail(TG_ERR_IO, "tg_npy_load: '%s': read error", path);
    if (memcmp(pre, npy_magic, NPY_MAGIC_LEN) != 0)
        return FORMAT_ERROR("tg_npy_load: '%s' is not a .npy file (bad magic bytes)", path);
    int major = pre[6], minor = pre[7];
    uint64_t header_len, preamble;
    if (major == 1 && minor == 0) {
        header_len = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
        preamble = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (file_size < 12)
            return FORMAT_ERROR("tg_npy_load: '%s' is truncated inside its preamble", path);
        if (fread(pre + 10, 1, 2, f) != 2)
            return tg_fail(TG_ERR_IO, "tg_npy_load: '%s': read error", path);
        header_len = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
                     (uint64_t)pre[11] << 24;
        preamble = 12;
    } else {
        return FORMAT_ERROR("tg_npy_load: '%s' has .npy format version %d.%d "
                            "(1.0, 2.0 and 3.0 are supported)",
                            path, major, minor);
    }
    if (header_len > NPY_HEADER_MAX)
        return FORMAT_ERROR("tg_npy_load: '%s' declares a header of %llu bytes (corrupt?)", path,
                            (unsigned long long)header_len);
    if (preamble + header_len > file_size)
        return FORMAT_ERROR("tg_npy_load: '%s' is truncated: its header of %llu bytes runs "
                            "past the end of the file (%llu bytes)",
                            path, (unsigned long long)header_len,
                            (unsigned long long)file_size);
    char *text = malloc(header_len + 1);
    if (!text)
        return tg_fail(TG_ERR_NOMEM, "tg_npy_load: out of memory");
    if (fread(text, 1, header_len, f) != header_len) {
        free(text);
        return tg_fail(TG_ERR_IO, "tg_npy_load: '%s': read error", path);
    }
    text[header_len] = '\0';
    h->path = path;
    tg_status s = parse_header(text, header_len, h);
    free(text);
    if (s != TG_OK)
        return s;

    int64_t numel;
    size_t data_len;
    char shape[TG_MAX_DIMS * 24 + 4];
    shape_text(h->ndim, h->shape, shape, sizeof shape);
    const char *descr = h->dtype == TG_F32 ? "<f4" : "<f8";
    if (tg_check_shape("tg_npy_load", h->ndim, h->shape, &numel) != TG_OK ||
        tg_mul_overflows((size_t)numel, tg_dtype_size(h->dtype), &data_len))
        return FORMAT_ERROR("tg_npy_load: '%s': shape %s of '%s' overflows", path, shape, descr);
    uint64_t have = file_size - preamble - header_len;
    if (have < data_len)
        return FORMAT_ERROR("tg_npy_load: '%s' is truncated: shape %s of '%s' needs %zu data "
                            "bytes, the file has %llu",
                            path, shape, descr, data_len, (unsigned long long)have);
    if (have > data_len)
        return FORMAT_ERROR("tg_npy_load: '%s' has %llu bytes after its data: shape %s of '%s' "
                            "needs %zu (the header does not describe the data)",
                            path, (unsigned long long)(have - data_len), shape, descr, data_len);
    return TG_OK;
}

/* A cursor over the header text, for the small Python-literal grammar:
 *   dict   = '{' [ key ':' value { ',' key ':' value } [','] ] '}'
 *   value  = string | 'True' | 'False' | tuple
 *   tuple  = '(' [ int { ',' int } [','] ] ')'      ints may end in 'L' (Python 2) */
typedef struct {
    const char *p, *end;
    const char *path;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool accept(cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static tg_status syntax_error(const cursor *c, const char *expected)
{
    return FORMAT_ERROR("tg_npy_load: '%s': header does not parse: expected %s at '%.20s'",
                        c->path, expected, c->p < c->end ? c->p : "<end>");
}

static tg_status parse_string(cursor *c, char *out, size_t size)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return syntax_error(c, "a quoted string");
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || n + 1 >= size)
            return syntax_error(c, "a short string without escapes");
        if ((unsigned char)*c->p < 0x20 || *c->p == 0x7f)
            return FORMAT_ERROR("tg_npy_load: '%s': header does not parse: control byte 0x%02x "
                                "inside a string",
                                c->path, (unsigned)(unsigned char)*c->p);
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return syntax_error(c, "a closing quote");
    c->p++;
    out[n] = '\0';
    return TG_OK;
}

static bool accept_word(cursor *c, const char *word)
{
    skip_space(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        c->p += n;
        return true;
    }
    return false;
}

static tg_status parse_shape(cursor *c, npy_header *h)
{
    if (!accept(c, '('))
        return syntax_error(c, "a shape tuple");
    h->ndim = 0;
    if (accept(c, ')'))
        return TG_OK;
    for (;;) {
        skip_space(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return syntax_error(c, "a non-negative integer");
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            int digit = *c->p++ - '0';
            if (v > (INT64_MAX - digit) / 10)
                return FORMAT_ERROR("tg_npy_load: '%s': a dimension in the header overflows",
                                    c->path);
            v = v * 10 + digit;
        }
        if (c->p < c->end && *c->p == 'L')
            c->p++;
        if (h->ndim == TG_MAX_DIMS)
            return FORMAT_ERROR("tg_npy_load: '%s' has more than %d dimensions", c->path,
                                TG_MAX_DIMS);
        h->shape[h->ndim++] = v;
        if (accept(c, ')'))
            return TG_OK;
        if (!accept(c, ','))
            return syntax_error(c, "',' or ')' in the shape");
        if (accept(c, ')'))
            return TG_OK;
    }
}

static tg_status parse_descr(cursor *c, npy_header *h)
{
    char descr[NPY_STRING_MAX];
    skip_space(c);
    if (c->p < c->end && (*c->p == '[' || *c->p == '{'))
        return FORMAT_ERROR("tg_npy_load: '%s' holds a structured dtype; only '<f4' and '<f8' "
                            "are supported",
                            c->path);
    tg_status s = parse_string(c, descr, sizeof descr);
    if (s != TG_OK)
        return s;
    if (strcmp(descr, "<f4") == 0) {
        h->dtype = TG_F32;
    } else if (strcmp(descr, "<f8") == 0) {
        h->dtype = TG_F64;
    } else if (descr[0] == '>') {
        return FORMAT_ERROR("tg_npy_load: '%s' is big-endian ('%s'); only little-endian '<f4' "
                            "and '<f8' are supported",
                            c->path, descr);
    } else {
        return FORMAT_ERROR("tg_npy_load: '%s' has dtype '%s'; only '<f4' (f32) and '<f8' "
                            "(f64) are supported",
                            c->path, descr);
    }
    return TG_OK;
}

static tg_status parse_header(const char *text, size_t len, npy_header *h)
{
    cursor c = {text, text + len, h->path};
    bool seen_descr = false, seen_order = false, seen_shape = false;
    if (!accept(&c, '{'))
        return syntax_error(&c, "'{'");
    while (!accept(&c, '}')) {
        char key[NPY_STRING_MAX];
        tg_status s = parse_string(&c, key, sizeof key);
        if (s != TG_OK)
            return s;
        if (!accept(&c, ':'))
            return syntax_error(&c, "':'");
        bool *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            s = parse_descr(&c, h);
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_order;
            if (accept_word(&c, "True"))
                h->fortran_order = true;
            else if (accept_word(&c, "False"))
                h->fortran_order = false;
            else
                s = syntax_error(&c, "True or False");
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            s = parse_shape(&c, h);
        } else {
            return FORMAT_ERROR("tg_npy_load: '%s': unexpected key '%s' in the header", h->path,
                                key);
        }
        if (s != TG_OK)
            return s;
        if (*seen)
            return FORMAT_ERROR("tg_npy_load: '%s': key '%s' appears twice in the header",
                                h->path, key);
        *seen = true;
        if (!accept(&c, ',')) {
            if (!accept(&c, '}'))
                return syntax_error(&c, "',' or '}'");
            break;
        }
    }
    skip_space(&c);
    if (c.p != c.end)
        return syntax_error(&c, "only padding after the header's '}'");
    if (!seen_descr || !seen_order || !seen_shape)
        return FORMAT_ERROR("tg_npy_load: '%s': the header lacks '%s'", h->path,
                            !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
    return TG_OK;
}

/* ---- helpers -------------------------------------------------------------- */

/* Python's tuple syntax: "()", "(3,)", "(3, 4)". */
static void shape_text(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld",
                                 (long long)shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
}
