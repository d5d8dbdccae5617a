/* The strided tensor: dtype, shape, strides (in elements), offset, storage.
 *
 * Element (i0, i1, ...) of t lives at
 *     data[offset + i0*strides[0] + i1*strides[1] + ...]
 * where `data` is typed by `dtype`. A stride of 0 repeats an element
 * (broadcast). Views (transpose, slice, select, reshape, expand) share
 * storage with the tensor they look into and copy nothing.
 *
 * Two kinds of tensor exist:
 *   - persistent tensors, made by the tg_tensor_* constructors below and
 *     released by tg_tensor_free: parameters, gradients, optimizer state, data;
 *   - tape tensors, made by ops from the tape's arena and released together by
 *     tg_tape_reset (see tape.h). tg_tensor_free ignores them.
 *
 * Gradients. A persistent tensor asks for one with tg_tensor_requires_grad;
 * `grad` then holds a persistent tensor of the same shape that backward adds
 * into. Every view and every op output records in `grad_root` the tensor
 * whose gradient buffer receives its gradient, so the gradient of x[:, :, t]
 * lands directly inside the gradient of x (no per-view buffer). */
#ifndef TG_TENSOR_H
#define TG_TENSOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "api.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_MAX_DIMS 6

struct tg_tape; /* core/tape.h */

typedef enum { TG_F32 = 0, TG_F64 = 1 } tg_dtype;

/* Flags describing who owns a tensor's memory. */
enum {
    TG_TENSOR_HEAP = 1u << 0,  /* struct made by a tg_tensor_* constructor */
    TG_TENSOR_ARENA = 1u << 1, /* struct lives in a tape's arena */
    TG_TENSOR_OWNS_DATA = 1u << 2, /* tg_tensor_free releases `data` too */
    TG_TENSOR_PACKED = 1u << 3     /* `data` lies in a parameter set's pack (params.h) */
};

typedef struct tg_tensor tg_tensor;
struct tg_tensor {
    tg_dtype dtype;
    int ndim;                       /* 0 for a scalar */
    int64_t shape[TG_MAX_DIMS];
    int64_t strides[TG_MAX_DIMS];   /* in elements; may be 0 or negative */
    int64_t offset;                 /* in elements from `data` */
    void *data;                     /* storage base, typed by dtype */
    tg_tensor *grad;                /* gradient of a root tensor, or NULL */
    tg_tensor *grad_root;           /* where this tensor's gradient goes; NULL = none */
    const char *name;               /* optional label for messages and files */
    uint32_t flags;
    /* Tape tensors and views of them: the tape that made the tensor and that
     * tape's reset count at the time (NULL, 0 for persistent tensors). Ops
     * and backward refuse a tensor of another tape or of an earlier step. */
    struct tg_tape *tape;
    uint64_t tape_generation;
};

/* Expand to `ndim, shape` for the calls below: tg_tensor_zeros(TG_F64, TG_DIMS(3, 4)). */
#ifndef __cplusplus
#define TG_DIMS(...)                                                                 \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) { \
        __VA_ARGS__                                                                \
    }
#else
/* C++ has no compound literals: there the shape is an array inside a
 * temporary, which lives until the end of the full expression (the call),
 * so tg_tensor_zeros(TG_F64, TG_DIMS(3, 4)) reads the same in both
 * languages. Each argument is converted to int64_t and evaluated once (the
 * count is taken by sizeof, which evaluates nothing). A shape kept past the
 * call must be an array of your own: const int64_t shape[] = {3, 4}. */
extern "C++" {
template <int N> struct tg_dims_array {
    int64_t v[N];
};
template <typename... T> inline tg_dims_array<sizeof...(T)> tg_dims_make(T... d)
{
    return tg_dims_array<sizeof...(T)>{{static_cast<int64_t>(d)...}};
}
}
#define TG_DIMS(...)                                                    \
    (int)(sizeof(tg_dims_make(__VA_ARGS__).v) / sizeof(int64_t)), \
        static_cast<const int64_t *>(tg_dims_make(__VA_ARGS__).v)
#endif

/* ---- facts ------------------------------------------------------------ */

TG_API size_t tg_dtype_size(tg_dtype dtype);          /* 4 or 8; 0 if unknown */
TG_API const char *tg_dtype_name(tg_dtype dtype);     /* "f32", "f64" */
       /* Number of elements (0 and an error for NULL). */
TG_API int64_t tg_tensor_numel(const tg_tensor *t);
TG_API bool tg_tensor_is_contiguous(const tg_tensor *t); /* C order, no gaps; false for NULL */
TG_API bool tg_tensor_same_shape(const tg_tensor *a, const tg_tensor *b); /* false for NULL */

/* Write "(3,4)" into buf (always terminated); returns buf. */
TG_API char *tg_shape_str(const tg_tensor *t, char *buf, size_t size);

/* Check that ndim/shape describe a valid tensor and compute its element
 * count with overflow checks. `who` names the caller in the message. An
 * empty shape (some dimension 0) is valid as long as the offsets its views
 * can reach fit in memory arithmetic, as a non-empty one's elements must. */
TG_API tg_status tg_check_shape(const char *who, int ndim, const int64_t *shape, int64_t *numel);
/* Check a whole tensor description before trusting it with memory: not NULL,
 * a known dtype, a valid shape, storage, and strides and offset whose
 * largest reach fits in memory arithmetic. */
TG_API tg_status tg_tensor_check(const char *who, const tg_tensor *t);

/* ---- persistent tensors (caller frees with tg_tensor_free) ------------- */

TG_API tg_tensor *tg_tensor_zeros(tg_dtype dtype, int ndim, const int64_t *shape);
TG_API tg_tensor *tg_tensor_ones(tg_dtype dtype, int ndim, const int64_t *shape);
TG_API tg_tensor *tg_tensor_full(tg_dtype dtype, int ndim, const int64_t *shape, double value);
/* Copy numel values of type `src_dtype` (C order) into a new tensor. */
TG_API tg_tensor *tg_tensor_from_array(tg_dtype dtype, int ndim, const int64_t *shape,
                                       tg_dtype src_dtype, const void *values);
/* Shorthand for the common case of a table of doubles in a test or example. */
TG_API tg_tensor *tg_tensor_from_doubles(tg_dtype dtype, int ndim, const int64_t *shape,
                                         const double *values);
/* 1-D tensor start, start+step, ... (< stop for step > 0, > stop for step < 0). */
TG_API tg_tensor *tg_tensor_arange(tg_dtype dtype, double start, double stop, double step);
/* Contiguous persistent copy of any tensor (views included). */
TG_API tg_tensor *tg_tensor_copy(const tg_tensor *src);
/* Wrap memory the caller owns and keeps alive (not freed by tg_tensor_free). */
TG_API tg_tensor *tg_tensor_wrap(tg_dtype dtype, int ndim, const int64_t *shape, void *data);
TG_API void tg_tensor_free(tg_tensor *t);

/* Give a persistent root tensor a zeroed gradient of its shape (or drop it). */
TG_API tg_status tg_tensor_requires_grad(tg_tensor *t, bool requires);
/* Set a tensor's gradient to zero (no-op without one). */
TG_API void tg_tensor_zero_grad(tg_tensor *t);

/* ---- element access (for tests, examples and small loops) --------------
 * Every access is checked: a NULL tensor or index, or an index outside the
 * shape, is an error (tg_last_error names the function, the index and the
 * shape); getters then return NaN and setters change nothing. index holds
 * one entry per dimension, each in [0, shape[d]). */

TG_API double tg_tensor_get(const tg_tensor *t, const int64_t *index);
TG_API tg_status tg_tensor_set(tg_tensor *t, const int64_t *index, double value);
/* Element number i in [0, numel) in C order of the logical shape (views
 * included). */
TG_API double tg_tensor_get_flat(const tg_tensor *t, int64_t i);
TG_API tg_status tg_tensor_set_flat(tg_tensor *t, int64_t i, double value);
/* The single value of a one-element tensor (NaN and an error otherwise). */
TG_API double tg_tensor_item(const tg_tensor *t);
/* Fill every element with value. */
TG_API void tg_tensor_fill(tg_tensor *t, double value);
/* dst = src, elementwise; shapes must match (dtypes may differ). */
TG_API tg_status tg_tensor_copy_into(tg_tensor *dst, const tg_tensor *src);

/* ---- views: fill *out, share storage, copy nothing ---------------------
 * `out` may be a stack variable. A view keeps x's grad_root, so gradients of
 * ops that read the view reach x's gradient. */

TG_API tg_status tg_view_transpose(tg_tensor *out, const tg_tensor *x, int dim0, int dim1);
TG_API tg_status tg_view_permute(tg_tensor *out, const tg_tensor *x, const int *perm);
/* Elements start, start+step, ... < stop along dim (step >= 1). Negative
 * start/stop count from the end, as in Python. */
TG_API tg_status tg_view_slice(tg_tensor *out, const tg_tensor *x, int dim, int64_t start,
                               int64_t stop, int64_t step);
/* x[..., index, ...] along dim: one dimension fewer. */
TG_API tg_status tg_view_select(tg_tensor *out, const tg_tensor *x, int dim, int64_t index);
/* Same elements, new shape; x must be contiguous. One entry may be -1. */
TG_API tg_status tg_view_reshape(tg_tensor *out, const tg_tensor *x, int ndim,
                                 const int64_t *shape);
/* Broadcast x to shape (numpy rules: size-1 dims repeat with stride 0). */
TG_API tg_status tg_view_expand(tg_tensor *out, const tg_tensor *x, int ndim, const int64_t *shape);
/* Same view, but gradients stop here. */
TG_API void tg_view_detach(tg_tensor *out, const tg_tensor *x);

/* ---- printing ---------------------------------------------------------- */

/* numpy style: "name = array([[1., 2.], [3., 4.]])"-like nested brackets,
 * with dtype and shape; large tensors are summarised with "...". */
TG_API void tg_tensor_print(FILE *f, const char *name, const tg_tensor *t);

#ifdef __cplusplus
}
#endif

#endif
