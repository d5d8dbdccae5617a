/* Persistent tensors, element access and views (see tensor.h). */
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iter.h"
#include "platform.h"

size_t tg_dtype_size(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return sizeof(float);
    case TG_F64: return sizeof(double);
    }
    return 0;
}

const char *tg_dtype_name(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return "f32";
    case TG_F64: return "f64";
    }
    return "unknown";
}

int64_t tg_tensor_numel(const tg_tensor *t)
{
    if (!t) {
        tg_fail(TG_ERR_ARG, "tg_tensor_numel: tensor is NULL");
        return 0;
    }
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

bool tg_tensor_is_contiguous(const tg_tensor *t)
{
    if (!t)
        return false;
    if (tg_tensor_numel(t) == 0) /* no elements: every layout is contiguous */
        return true;
    int64_t expected = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expected)
            return false;
        expected *= t->shape[d];
    }
    return true;
}

bool tg_tensor_same_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b || a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

char *tg_shape_str(const tg_tensor *t, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    if (!t) {
        snprintf(buf, size, "NULL");
        return buf;
    }
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ",%lld" : "%lld",
                                 (long long)t->shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, t->ndim == 1 ? ",)" : ")");
    return buf;
}

tg_status tg_check_shape(const char *who, int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > TG_MAX_DIMS)
        return tg_fail(TG_ERR_SHAPE, "%s: %d dimensions (0 to %d are supported)", who, ndim,
                       TG_MAX_DIMS);
    if (ndim > 0 && !shape)
        return tg_fail(TG_ERR_ARG, "%s: shape is NULL", who);
    /* The product of the non-zero dimensions (the span) bounds the strides
     * and the offsets that views reach, so it must fit in byte arithmetic
     * even when a zero dimension makes the tensor empty: a non-empty tensor
     * addresses span elements, an empty one's views at most span - 1. */
    size_t span = 1;
    bool empty = false;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return tg_fail(TG_ERR_SHAPE, "%s: dimension %d is negative (%lld)", who, d,
                           (long long)shape[d]);
        else if (shape[d] == 0)
            empty = true;
    const size_t limit = (size_t)INT64_MAX / 8 + (empty ? 1 : 0);
    for (int d = 0; d < ndim; d++)
        if (shape[d] > 0 && (tg_mul_overflows(span, (size_t)shape[d], &span) || span > limit))
            return tg_fail(TG_ERR_OVERFLOW, "%s: the shape's element count overflows", who);
    if (numel)
        *numel = empty ? 0 : (int64_t)span;
    return TG_OK;
}

/* Whether the farthest element a tensor addresses, counted from data in
 * either direction, stays addressable in bytes. */
static bool reach_fits(const tg_tensor *t, int64_t numel)
{
    const int64_t limit = INT64_MAX / 8;
    if (t->offset <= -limit || t->offset >= limit)
        return false;
    int64_t reach = t->offset < 0 ? -t->offset : t->offset;
    for (int d = 0; numel > 0 && d < t->ndim; d++) {
        int64_t stride = t->strides[d], n = t->shape[d] - 1;
        if (stride <= -limit || stride >= limit)
            return false;
        int64_t step = stride < 0 ? -stride : stride;
        if (n > 0 && step > (limit - reach) / n)
            return false;
        reach += step * n;
    }
    return true;
}

tg_status tg_tensor_check(const char *who, const tg_tensor *t)
{
    if (!t)
        return tg_fail(TG_ERR_ARG, "%s: tensor is NULL", who);
    if (tg_dtype_size(t->dtype) == 0)
        return tg_fail(TG_ERR_DTYPE, "%s: unknown dtype %d", who, (int)t->dtype);
    int64_t numel;
    if (tg_check_shape(who, t->ndim, t->shape, &numel) != TG_OK)
        return tg_last_status();
    if (!t->data)
        return tg_fail(TG_ERR_ARG, "%s: tensor has no storage (data is NULL)", who);
    if (!reach_fits(t, numel)) {
        char s[64];
        return tg_fail(TG_ERR_OVERFLOW, "%s: the strides and offset of %s reach beyond memory "
                       "arithmetic", who, tg_shape_str(t, s, sizeof s));
    }
    return TG_OK;
}

static void set_contiguous_strides(tg_tensor *t)
{
    int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->strides[d] = stride;
        stride *= t->shape[d];
    }
}

/* A heap tensor with zeroed storage, or NULL with the error recorded. */
static tg_tensor *new_tensor(const char *who, tg_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel;
    size_t elsize = tg_dtype_size(dtype);
    if (elsize == 0) {
        tg_fail(TG_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
        return NULL;
    }
    if (tg_check_shape(who, ndim, shape, &numel) != TG_OK)
        return NULL;
    size_t bytes = (size_t)numel * elsize; /* cannot overflow: numel <= INT64_MAX / 8 */
    const char *what;
    size_t limit = tg_memory_limit(&what);
    if (bytes > limit) {
        tg_fail(TG_ERR_NOMEM, "%s: cannot allocate %lld elements (%.3g GB, more than the %.3g "
                "GB this process may use: %s)", who, (long long)numel, (double)bytes / 1e9,
                (double)limit / 1e9, what);
        return NULL;
    }
    tg_tensor *t = calloc(1, sizeof *t);
    /* calloc(0) may return NULL; always keep a valid pointer for empty tensors. */
    void *data = calloc(numel > 0 ? (size_t)numel : 1, elsize);
    if (!t || !data) {
        free(t);
        free(data);
        tg_fail(TG_ERR_NOMEM, "%s: cannot allocate %lld elements", who, (long long)numel);
        return NULL;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    set_contiguous_strides(t);
    t->data = data;
    t->flags = TG_TENSOR_HEAP | TG_TENSOR_OWNS_DATA;
    return t;
}

tg_tensor *tg_tensor_zeros(tg_dtype dtype, int ndim, const int64_t *shape)
{
    return new_tensor("tg_tensor_zeros", dtype, ndim, shape);
}

tg_tensor *tg_tensor_full(tg_dtype dtype, int ndim, const int64_t *shape, double value)
{
    tg_tensor *t = new_tensor("tg_tensor_full", dtype, ndim, shape);
    if (t)
        tg_tensor_fill(t, value);
    return t;
}

tg_tensor *tg_tensor_ones(tg_dtype dtype, int ndim, const int64_t *shape)
{
    return tg_tensor_full(dtype, ndim, shape, 1.0);
}

tg_tensor *tg_tensor_from_array(tg_dtype dtype, int ndim, const int64_t *shape,
                                tg_dtype src_dtype, const void *values)
{
    if (!values) {
        tg_fail(TG_ERR_ARG, "tg_tensor_from_array: values is NULL");
        return NULL;
    }
    if (tg_dtype_size(src_dtype) == 0) {
        tg_fail(TG_ERR_DTYPE, "tg_tensor_from_array: unknown source dtype %d", (int)src_dtype);
        return NULL;
    }
    tg_tensor *t = new_tensor("tg_tensor_from_array", dtype, ndim, shape);
    if (!t)
        return NULL;
    tg_tensor src = *t;
    src.dtype = src_dtype;
    src.data = (void *)values;
    src.flags = 0;
    tg_tensor_copy_into(t, &src);
    return t;
}

tg_tensor *tg_tensor_from_doubles(tg_dtype dtype, int ndim, const int64_t *shape,
                                  const double *values)
{
    return tg_tensor_from_array(dtype, ndim, shape, TG_F64, values);
}

tg_tensor *tg_tensor_arange(tg_dtype dtype, double start, double stop, double step)
{
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step)) {
        tg_fail(TG_ERR_ARG, "tg_tensor_arange: need finite start/stop and a non-zero step");
        return NULL;
    }
    double count = ceil((stop - start) / step);
    if (count < 0)
        count = 0;
    if (count > (double)INT64_MAX / 8) {
        tg_fail(TG_ERR_OVERFLOW, "tg_tensor_arange: %g elements is too many", count);
        return NULL;
    }
    int64_t n = (int64_t)count;
    tg_tensor *t = new_tensor("tg_tensor_arange", dtype, 1, &n);
    for (int64_t i = 0; t && i < n; i++)
        tg_tensor_set_flat(t, i, start + (double)i * step);
    return t;
}

tg_tensor *tg_tensor_copy(const tg_tensor *src)
{
    if (!src) {
        tg_fail(TG_ERR_ARG, "tg_tensor_copy: tensor is NULL");
        return NULL;
    }
    tg_tensor *t = new_tensor("tg_tensor_copy", src->dtype, src->ndim, src->shape);
    if (t) {
        tg_tensor_copy_into(t, src);
        t->name = src->name;
    }
    return t;
}

tg_tensor *tg_tensor_wrap(tg_dtype dtype, int ndim, const int64_t *shape, void *data)
{
    int64_t numel;
    if (!data) {
        tg_fail(TG_ERR_ARG, "tg_tensor_wrap: data is NULL");
        return NULL;
    }
    if (tg_dtype_size(dtype) == 0) {
        tg_fail(TG_ERR_DTYPE, "tg_tensor_wrap: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (tg_check_shape("tg_tensor_wrap", ndim, shape, &numel) != TG_OK)
        return NULL;
    tg_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        tg_fail(TG_ERR_NOMEM, "tg_tensor_wrap: out of memory");
        return NULL;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    set_contiguous_strides(t);
    t->data = data;
    t->flags = TG_TENSOR_HEAP;
    return t;
}

void tg_tensor_free(tg_tensor *t)
{
    if (!t || !(t->flags & TG_TENSOR_HEAP))
        return;
    if (t->grad && t->grad != t)
        tg_tensor_free(t->grad);
    if (t->flags & TG_TENSOR_OWNS_DATA)
        free(t->data);
    free(t);
}

tg_status tg_tensor_requires_grad(tg_tensor *t, bool requires)
{
    if (!t)
        return tg_fail(TG_ERR_ARG, "tg_tensor_requires_grad: tensor is NULL");
    if (!(t->flags & TG_TENSOR_HEAP) || (t->grad_root && t->grad_root != t))
        return tg_fail(TG_ERR_ARG,
                       "tg_tensor_requires_grad: only persistent tensors made by a "
                       "tg_tensor_* constructor can own a gradient (not views or tape tensors)");
    if (!requires) {
        tg_tensor_free(t->grad);
        t->grad = NULL;
        t->grad_root = NULL;
        return TG_OK;
    }
    if (!t->grad) {
        if (!tg_tensor_is_contiguous(t) || t->offset != 0)
            return tg_fail(TG_ERR_ARG, "tg_tensor_requires_grad: tensor must be contiguous");
        t->grad = new_tensor("tg_tensor_requires_grad", t->dtype, t->ndim, t->shape);
        if (!t->grad)
            return tg_last_status();
    }
    t->grad_root = t;
    return TG_OK;
}

void tg_tensor_zero_grad(tg_tensor *t)
{
    if (t && t->grad)
        tg_tensor_fill(t->grad, 0.0);
}

/* ---- element access ---------------------------------------------------- */

/* The light checks of every accessor: a usable tensor (NULL, dtype, rank,
 * storage; not the full tg_tensor_check, which the constructors ensure). */
static bool accessible(const char *who, const tg_tensor *t)
{
    if (!t)
        tg_fail(TG_ERR_ARG, "%s: tensor is NULL", who);
    else if (tg_dtype_size(t->dtype) == 0 || t->ndim < 0 || t->ndim > TG_MAX_DIMS || !t->data)
        tg_fail(TG_ERR_ARG, "%s: not a valid tensor (dtype %d, %d dimensions, data %s)", who,
                (int)t->dtype, t->ndim, t->data ? "set" : "NULL");
    else
        return true;
    return false;
}

/* Offset of element `index` (one entry per dimension), or false with the
 * error recorded. */
static bool element_offset(const char *who, const tg_tensor *t, const int64_t *index,
                           int64_t *off)
{
    if (!accessible(who, t))
        return false;
    if (!index && t->ndim > 0) {
        tg_fail(TG_ERR_ARG, "%s: index is NULL for a tensor of %d dimensions", who, t->ndim);
        return false;
    }
    *off = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d]) {
            char s[64];
            tg_fail(TG_ERR_ARG, "%s: index %lld is out of range for dimension %d of %s", who,
                    (long long)index[d], d, tg_shape_str(t, s, sizeof s));
            return false;
        }
        *off += index[d] * t->strides[d];
    }
    return true;
}

/* Offset of element number i in C order, or false with the error recorded. */
static bool flat_offset(const char *who, const tg_tensor *t, int64_t i, int64_t *off)
{
    if (!accessible(who, t))
        return false;
    int64_t numel = tg_tensor_numel(t);
    if (i < 0 || i >= numel) {
        char s[64];
        tg_fail(TG_ERR_ARG, "%s: flat index %lld is outside [0, %lld) for %s", who,
                (long long)i, (long long)numel, tg_shape_str(t, s, sizeof s));
        return false;
    }
    *off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        *off += (i % t->shape[d]) * t->strides[d];
        i /= t->shape[d];
    }
    return true;
}

static double load(const tg_tensor *t, int64_t off)
{
    return t->dtype == TG_F32 ? (double)((const float *)t->data)[off]
                              : ((const double *)t->data)[off];
}

static void store(tg_tensor *t, int64_t off, double v)
{
    if (t->dtype == TG_F32)
        ((float *)t->data)[off] = (float)v;
    else
        ((double *)t->data)[off] = v;
}

double tg_tensor_get(const tg_tensor *t, const int64_t *index)
{
    int64_t off;
    return element_offset("tg_tensor_get", t, index, &off) ? load(t, off) : NAN;
}

tg_status tg_tensor_set(tg_tensor *t, const int64_t *index, double value)
{
    int64_t off;
    if (!element_offset("tg_tensor_set", t, index, &off))
        return tg_last_status();
    store(t, off, value);
    return TG_OK;
}

double tg_tensor_get_flat(const tg_tensor *t, int64_t i)
{
    int64_t off;
    return flat_offset("tg_tensor_get_flat", t, i, &off) ? load(t, off) : NAN;
}

tg_status tg_tensor_set_flat(tg_tensor *t, int64_t i, double value)
{
    int64_t off;
    if (!flat_offset("tg_tensor_set_flat", t, i, &off))
        return tg_last_status();
    store(t, off, value);
    return TG_OK;
}

double tg_tensor_item(const tg_tensor *t)
{
    if (!accessible("tg_tensor_item", t))
        return NAN;
    int64_t numel = tg_tensor_numel(t);
    if (numel != 1) {
        char s[64];
        tg_fail(TG_ERR_SHAPE, "tg_tensor_item: %s has %lld elements, not one",
                tg_shape_str(t, s, sizeof s), (long long)numel);
        return NAN;
    }
    return load(t, t->offset);
}

typedef struct {
    double value;
    tg_dtype dtype;
} fill_args;

static void fill_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const fill_args *a = ctx;
    if (a->dtype == TG_F32) {
        float *p = ptr[0];
        for (int64_t i = 0; i < n; i++)
            p[i * stride[0]] = (float)a->value;
    } else {
        double *p = ptr[0];
        for (int64_t i = 0; i < n; i++)
            p[i * stride[0]] = a->value;
    }
}

void tg_tensor_fill(tg_tensor *t, double value)
{
    if (!t)
        return;
    fill_args args = {value, t->dtype};
    const tg_tensor *operands[1] = {t};
    tg_iter_tensors(1, operands, fill_row, &args);
}

typedef struct {
    tg_dtype dst, src;
} copy_kinds;

static void copy_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const copy_kinds *k = ctx;
    int64_t sd = stride[0], ss = stride[1];
    if (k->dst == TG_F32 && k->src == TG_F32) {
        float *d = ptr[0];
        const float *s = ptr[1];
        if (sd == 1 && ss == 1)
            memcpy(d, s, (size_t)n * sizeof *d);
        else
            for (int64_t i = 0; i < n; i++)
                d[i * sd] = s[i * ss];
    } else if (k->dst == TG_F64 && k->src == TG_F64) {
        double *d = ptr[0];
        const double *s = ptr[1];
        if (sd == 1 && ss == 1)
            memcpy(d, s, (size_t)n * sizeof *d);
        else
            for (int64_t i = 0; i < n; i++)
                d[i * sd] = s[i * ss];
    } else if (k->dst == TG_F32) {
        float *d = ptr[0];
        const double *s = ptr[1];
        for (int64_t i = 0; i < n; i++)
            d[i * sd] = (float)s[i * ss];
    } else {
        double *d = ptr[0];
        const float *s = ptr[1];
        for (int64_t i = 0; i < n; i++)
            d[i * sd] = (double)s[i * ss];
    }
}

tg_status tg_tensor_copy_into(tg_tensor *dst, const tg_tensor *src)
{
    if (!dst || !src)
        return tg_fail(TG_ERR_ARG, "tg_tensor_copy_into: tensor is NULL");
    if (!tg_tensor_same_shape(dst, src)) {
        char a[64], b[64];
        return tg_fail(TG_ERR_SHAPE, "tg_tensor_copy_into: shapes differ: %s <- %s",
                       tg_shape_str(dst, a, sizeof a), tg_shape_str(src, b, sizeof b));
    }
    copy_kinds kinds = {dst->dtype, src->dtype};
    const tg_tensor *operands[2] = {dst, src};
    tg_iter_tensors(2, operands, copy_row, &kinds);
    return TG_OK;
}

/* ---- views -------------------------------------------------------------- */

static tg_status check_view_args(const char *who, const tg_tensor *out, const tg_tensor *x)
{
    if (!out || !x)
        return tg_fail(TG_ERR_ARG, "%s: tensor is NULL", who);
    return TG_OK;
}

static tg_status check_dim(const char *who, const tg_tensor *x, int *dim)
{
    int d = *dim < 0 ? *dim + x->ndim : *dim;
    if (d < 0 || d >= x->ndim) {
        char s[64];
        return tg_fail(TG_ERR_ARG, "%s: dimension %d is out of range for shape %s", who, *dim,
                       tg_shape_str(x, s, sizeof s));
    }
    *dim = d;
    return TG_OK;
}

/* A view starts as a copy of the description of x, minus ownership. */
static void begin_view(tg_tensor *out, const tg_tensor *x)
{
    tg_tensor view = *x;
    view.grad = NULL;
    view.flags = 0;
    *out = view;
}

tg_status tg_view_transpose(tg_tensor *out, const tg_tensor *x, int dim0, int dim1)
{
    const char *who = "tg_view_transpose";
    if (check_view_args(who, out, x) || check_dim(who, x, &dim0) || check_dim(who, x, &dim1))
        return tg_last_status();
    tg_tensor src = *x; /* out may be x itself */
    begin_view(out, x);
    out->shape[dim0] = src.shape[dim1];
    out->shape[dim1] = src.shape[dim0];
    out->strides[dim0] = src.strides[dim1];
    out->strides[dim1] = src.strides[dim0];
    return TG_OK;
}

tg_status tg_view_permute(tg_tensor *out, const tg_tensor *x, const int *perm)
{
    const char *who = "tg_view_permute";
    if (check_view_args(who, out, x))
        return tg_last_status();
    if (!perm)
        return tg_fail(TG_ERR_ARG, "%s: perm is NULL", who);
    bool seen[TG_MAX_DIMS] = {false};
    for (int d = 0; d < x->ndim; d++) {
        if (perm[d] < 0 || perm[d] >= x->ndim || seen[perm[d]])
            return tg_fail(TG_ERR_ARG, "%s: perm is not a permutation of 0..%d", who,
                           x->ndim - 1);
        seen[perm[d]] = true;
    }
    tg_tensor src = *x;
    begin_view(out, x);
    for (int d = 0; d < x->ndim; d++) {
        out->shape[d] = src.shape[perm[d]];
        out->strides[d] = src.strides[perm[d]];
    }
    return TG_OK;
}

tg_status tg_view_slice(tg_tensor *out, const tg_tensor *x, int dim, int64_t start, int64_t stop,
                        int64_t step)
{
    const char *who = "tg_view_slice";
    if (check_view_args(who, out, x) || check_dim(who, x, &dim))
        return tg_last_status();
    if (step < 1)
        return tg_fail(TG_ERR_ARG, "%s: step must be >= 1 (got %lld)", who, (long long)step);
    int64_t n = x->shape[dim];
    int64_t stride = x->strides[dim];
    if (start < 0)
        start += n;
    if (stop < 0)
        stop += n;
    if (start < 0)
        start = 0;
    if (stop > n)
        stop = n;
    if (start > n)
        start = n;
    int64_t len = stop > start ? (stop - start - 1) / step + 1 : 0; /* no overflow for huge steps */
    begin_view(out, x);
    if (len > 0)
        out->offset += start * stride;
    out->shape[dim] = len;
    out->strides[dim] = len > 1 ? stride * step : stride; /* len > 1: step < n, no overflow */
    return TG_OK;
}

tg_status tg_view_select(tg_tensor *out, const tg_tensor *x, int dim, int64_t index)
{
    const char *who = "tg_view_select";
    if (check_view_args(who, out, x) || check_dim(who, x, &dim))
        return tg_last_status();
    int64_t n = x->shape[dim];
    if (index < -n || index >= n) {
        char s[64];
        return tg_fail(TG_ERR_ARG, "%s: index %lld is out of range for dimension %d of %s", who,
                       (long long)index, dim, tg_shape_str(x, s, sizeof s));
    }
    if (index < 0)
        index += n;
    tg_tensor src = *x;
    begin_view(out, x);
    out->offset += index * src.strides[dim];
    for (int d = dim; d + 1 < src.ndim; d++) {
        out->shape[d] = src.shape[d + 1];
        out->strides[d] = src.strides[d + 1];
    }
    out->ndim = src.ndim - 1;
    return TG_OK;
}

tg_status tg_view_reshape(tg_tensor *out, const tg_tensor *x, int ndim, const int64_t *shape)
{
    const char *who = "tg_view_reshape";
    if (check_view_args(who, out, x))
        return tg_last_status();
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim > 0 && !shape))
        return tg_fail(TG_ERR_ARG, "%s: bad new shape (ndim %d)", who, ndim);
    if (!tg_tensor_is_contiguous(x)) {
        char s[64];
        return tg_fail(TG_ERR_ARG,
                       "%s: tensor %s is not contiguous; make a contiguous copy first", who,
                       tg_shape_str(x, s, sizeof s));
    }
    int64_t resolved[TG_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        resolved[d] = shape[d];
        if (shape[d] == -1) {
            if (infer >= 0)
                return tg_fail(TG_ERR_ARG, "%s: more than one -1 in the new shape", who);
            infer = d;
        } else if (shape[d] < 0) {
            return tg_fail(TG_ERR_SHAPE, "%s: dimension %d is negative", who, d);
        } else if (shape[d] != 0 && known > INT64_MAX / shape[d]) {
            return tg_fail(TG_ERR_OVERFLOW, "%s: the new shape's element count overflows", who);
        } else {
            known *= shape[d];
        }
    }
    int64_t numel = tg_tensor_numel(x);
    if (infer >= 0) {
        if (known == 0 || numel % known != 0) {
            char s[64];
            return tg_fail(TG_ERR_SHAPE, "%s: cannot infer -1: %s has %lld elements, not a "
                           "multiple of %lld", who, tg_shape_str(x, s, sizeof s),
                           (long long)numel, (long long)known);
        }
        resolved[infer] = numel / known;
        known = numel;
    }
    if (known != numel) {
        char s[64];
        return tg_fail(TG_ERR_SHAPE, "%s: %s has %lld elements, the new shape %lld", who,
                       tg_shape_str(x, s, sizeof s), (long long)numel, (long long)known);
    }
    /* An empty tensor fits any shape with a zero in it: the strides of the
     * new shape must still fit. */
    if (tg_check_shape(who, ndim, resolved, NULL) != TG_OK)
        return tg_last_status();
    begin_view(out, x);
    out->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        out->shape[d] = resolved[d];
    set_contiguous_strides(out);
    return TG_OK;
}

tg_status tg_view_expand(tg_tensor *out, const tg_tensor *x, int ndim, const int64_t *shape)
{
    const char *who = "tg_view_expand";
    if (check_view_args(who, out, x))
        return tg_last_status();
    if (ndim < x->ndim || ndim > TG_MAX_DIMS || (ndim > 0 && !shape)) {
        char s[64];
        return tg_fail(TG_ERR_SHAPE, "%s: cannot expand %s to %d dimensions", who,
                       tg_shape_str(x, s, sizeof s), ndim);
    }
    if (tg_check_shape(who, ndim, shape, NULL) != TG_OK) /* before out (maybe x) changes */
        return tg_last_status();
    tg_tensor src = *x;
    int lead = ndim - src.ndim;
    begin_view(out, x);
    out->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t want = shape[d];
        if (d < lead) {
            out->shape[d] = want;
            out->strides[d] = 0;
            continue;
        }
        int64_t have = src.shape[d - lead];
        if (have == want) {
            out->shape[d] = have;
            out->strides[d] = src.strides[d - lead];
        } else if (have == 1) {
            out->shape[d] = want;
            out->strides[d] = 0;
        } else {
            char s[64];
            *out = src;
            return tg_fail(TG_ERR_SHAPE, "%s: cannot broadcast %s: dimension %d is %lld, not %lld",
                           who, tg_shape_str(&src, s, sizeof s), d - lead, (long long)have,
                           (long long)want);
        }
    }
    return TG_OK;
}

void tg_view_detach(tg_tensor *out, const tg_tensor *x)
{
    if (!out || !x)
        return;
    begin_view(out, x);
    out->grad_root = NULL;
}
