/* A parameter set in one allocation (tg_params_pack) and a set's values as
 * bytes (tg_params_flatten): what data-parallel training needs to sum a
 * step's gradients in one call and to start every process from the same
 * state. See params.h. */
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "platform.h"

static tg_status check_packable(const tg_params *params, int64_t *numel);
static void move_storage(tg_tensor *t, void *data);
static void *packed_part(const char *who, const tg_params *params, int part, tg_dtype *dtype,
                         int64_t *count);
static tg_status flat_size(const char *who, const tg_params *params, size_t *bytes);
static tg_status copy_flat(const char *who, const tg_params *params, char *flat, size_t size,
                           bool to_flat);

tg_status tg_params_pack(tg_params *params)
{
    int64_t numel = 0;
    tg_status s = check_packable(params, &numel);
    if (s != TG_OK)
        return s;
    size_t es = tg_dtype_size(params->items[0].tensor->dtype), half = (size_t)numel * es;
    size_t bytes; /* values, then gradients, rounded up as aligned_alloc wants */
    if (tg_mul_overflows(half, 2, &bytes) || tg_add_overflows(bytes, 63, &bytes))
        return tg_fail(TG_ERR_OVERFLOW, "tg_params_pack: %lld elements overflow the buffer size",
                       (long long)numel);
    bytes &= ~(size_t)63;
    const char *what;
    size_t limit = tg_memory_limit(&what);
    if (bytes > limit)
        return tg_fail(TG_ERR_NOMEM, "tg_params_pack: %lld elements and their gradients need "
                       "%.3g GB, more than the %.3g GB this process may use: %s",
                       (long long)numel, (double)bytes / 1e9, (double)limit / 1e9, what);
    char *base = aligned_alloc(64, bytes ? bytes : 64);
    if (!base)
        return tg_fail(TG_ERR_NOMEM, "tg_params_pack: cannot allocate %zu bytes for %lld "
                       "elements and their gradients", bytes, (long long)numel);
    /* Copy everything first: until the pointers move below, a failure
     * would have left the set as it was. */
    size_t off = 0;
    for (int i = 0; i < params->count; i++) {
        const tg_tensor *t = params->items[i].tensor;
        size_t n = (size_t)tg_tensor_numel(t) * es;
        memcpy(base + off, t->data, n);
        memcpy(base + half + off, t->grad->data, n);
        off += n;
    }
    off = 0;
    for (int i = 0; i < params->count; i++) {
        tg_tensor *t = params->items[i].tensor;
        size_t n = (size_t)tg_tensor_numel(t) * es;
        move_storage(t, base + off);
        move_storage(t->grad, base + half + off);
        off += n;
    }
    free(params->packed); /* an earlier pack of this set: nothing points into it now */
    params->packed = base;
    params->packed_count = params->count;
    params->packed_numel = numel;
    return TG_OK;
}

void *tg_params_grad_buffer(const tg_params *params, tg_dtype *dtype, int64_t *count)
{
    return packed_part("tg_params_grad_buffer", params, 1, dtype, count);
}

void *tg_params_value_buffer(const tg_params *params, tg_dtype *dtype, int64_t *count)
{
    return packed_part("tg_params_value_buffer", params, 0, dtype, count);
}

tg_status tg_params_flat_size(const tg_params *params, size_t *bytes)
{
    if (!bytes)
        return tg_fail(TG_ERR_ARG, "tg_params_flat_size: bytes is NULL");
    return flat_size("tg_params_flat_size", params, bytes);
}

tg_status tg_params_flatten(const tg_params *params, void *dst, size_t size)
{
    return copy_flat("tg_params_flatten", params, dst, size, true);
}

tg_status tg_params_unflatten(const tg_params *params, const void *src, size_t size)
{
    return copy_flat("tg_params_unflatten", params, (char *)(uintptr_t)src, size, false);
}

/* ---- helpers ----------------------------------------------------------------------- */

/* Why t's storage cannot move into a pack, or NULL if it can: it must be a
 * persistent, contiguous tensor whose memory is its own or another pack's. */
static const char *unmovable(const tg_tensor *t)
{
    if (!(t->flags & TG_TENSOR_HEAP))
        return "is not a persistent tensor (a view or a tape tensor)";
    if (!(t->flags & (TG_TENSOR_OWNS_DATA | TG_TENSOR_PACKED)))
        return "wraps memory its caller owns (tg_tensor_wrap)";
    if (!tg_tensor_is_contiguous(t) || t->offset != 0)
        return "is not contiguous";
    return NULL;
}

/* Every condition of params.h, checked before anything moves; the total
 * element count in *numel. */
static tg_status check_packable(const tg_params *params, int64_t *numel)
{
    const char *who = "tg_params_pack", *why;
    if (!params || params->count == 0)
        return tg_fail(TG_ERR_ARG, "%s: the set is %s", who, params ? "empty" : "NULL");
    const tg_param *first = &params->items[0];
    int64_t total = 0;
    for (int i = 0; i < params->count; i++) {
        const char *name = params->items[i].name;
        const tg_tensor *t = params->items[i].tensor;
        if ((why = unmovable(t)))
            return tg_fail(TG_ERR_ARG, "%s: '%s' %s; nothing was moved", who, name, why);
        if (t->dtype != first->tensor->dtype)
            return tg_fail(TG_ERR_DTYPE, "%s: '%s' is %s, '%s' is %s (a packed set has one "
                           "dtype); nothing was moved", who, name, tg_dtype_name(t->dtype),
                           first->name, tg_dtype_name(first->tensor->dtype));
        if (!t->grad || t->grad == t)
            return tg_fail(TG_ERR_ARG, "%s: '%s' has no gradient (tg_tensor_requires_grad "
                           "first); nothing was moved", who, name);
        if ((why = unmovable(t->grad)) || t->grad->dtype != t->dtype ||
            !tg_tensor_same_shape(t->grad, t))
            return tg_fail(TG_ERR_ARG, "%s: the gradient of '%s' %s; nothing was moved", who,
                           name, why ? why : "differs from it in dtype or shape");
        for (int j = 0; j < i; j++)
            if (params->items[j].tensor == t)
                return tg_fail(TG_ERR_ARG, "%s: '%s' and '%s' are the same tensor; nothing was "
                               "moved", who, params->items[j].name, name);
        if (tg_tensor_numel(t) > INT64_MAX / 2 - total)
            return tg_fail(TG_ERR_OVERFLOW, "%s: the set's element count overflows", who);
        total += tg_tensor_numel(t);
    }
    *numel = total;
    return TG_OK;
}

/* Point t at its place in a pack; free what it owned before. */
static void move_storage(tg_tensor *t, void *data)
{
    if (t->flags & TG_TENSOR_OWNS_DATA)
        free(t->data);
    t->data = data;
    t->flags = (t->flags & ~(uint32_t)TG_TENSOR_OWNS_DATA) | TG_TENSOR_PACKED;
}

/* The values (part 0) or gradients (part 1) of a packed set, after checking
 * that every tensor still lies where tg_params_pack put it. */
static void *packed_part(const char *who, const tg_params *params, int part, tg_dtype *dtype,
                         int64_t *count)
{
    if (!params || !dtype || !count) {
        tg_fail(TG_ERR_ARG, "%s: NULL argument", who);
        return NULL;
    }
    if (!params->packed) {
        tg_fail(TG_ERR_STATE, "%s: the set is not packed (tg_params_pack first)", who);
        return NULL;
    }
    if (params->count != params->packed_count) {
        tg_fail(TG_ERR_STATE, "%s: the set holds %d tensors, %d when it was packed (pack it "
                "again)", who, params->count, params->packed_count);
        return NULL;
    }
    tg_dtype dt = params->items[0].tensor->dtype;
    size_t es = tg_dtype_size(dt), half = (size_t)params->packed_numel * es, off = 0;
    char *base = params->packed;
    for (int i = 0; i < params->count; i++) {
        const tg_tensor *t = params->items[i].tensor;
        if (t->data != base + off || t->dtype != dt || !t->grad ||
            t->grad->data != base + half + off) {
            tg_fail(TG_ERR_STATE, "%s: '%s' no longer lies in the set's pack (its gradient was "
                    "dropped or made again?): pack the set again", who, params->items[i].name);
            return NULL;
        }
        off += (size_t)tg_tensor_numel(t) * es;
    }
    *dtype = dt;
    *count = params->packed_numel;
    return base + (part ? half : 0);
}

static tg_status flat_size(const char *who, const tg_params *params, size_t *bytes)
{
    if (!params)
        return tg_fail(TG_ERR_ARG, "%s: the set is NULL", who);
    size_t total = 0, n;
    for (int i = 0; i < params->count; i++) {
        const tg_tensor *t = params->items[i].tensor;
        if (!tg_tensor_is_contiguous(t) || tg_dtype_size(t->dtype) == 0)
            return tg_fail(TG_ERR_ARG, "%s: '%s' is not a contiguous tensor", who,
                           params->items[i].name);
        if (tg_mul_overflows((size_t)tg_tensor_numel(t), tg_dtype_size(t->dtype), &n) ||
            tg_add_overflows(total, n, &total))
            return tg_fail(TG_ERR_OVERFLOW, "%s: the set's size overflows", who);
    }
    *bytes = total;
    return TG_OK;
}

/* Each tensor's values to (to_flat) or from the run of bytes at flat. */
static tg_status copy_flat(const char *who, const tg_params *params, char *flat, size_t size,
                           bool to_flat)
{
    size_t need, off = 0;
    tg_status s = flat_size(who, params, &need);
    if (s != TG_OK)
        return s;
    if (!flat && need > 0)
        return tg_fail(TG_ERR_ARG, "%s: the buffer is NULL", who);
    if (size != need)
        return tg_fail(TG_ERR_ARG, "%s: the buffer holds %zu bytes, the set's values %zu; "
                       "nothing was copied", who, size, need);
    for (int i = 0; i < params->count; i++) {
        const tg_tensor *t = params->items[i].tensor;
        size_t es = tg_dtype_size(t->dtype), n = (size_t)tg_tensor_numel(t) * es;
        if (n == 0)
            continue;
        char *data = (char *)t->data + t->offset * (int64_t)es;
        if (to_flat)
            memcpy(flat + off, data, n);
        else
            memcpy(data, flat + off, n);
        off += n;
    }
    return TG_OK;
}
