/* A parameter set: named persistent tensors that an optimizer, a clipper or
 * a checkpoint walks as one list. Each tensor's gradient is tensor->grad.
 *
 * The set references tensors; it does not own them (the layer or the user
 * that made them frees them). Names are copied. */
#ifndef TG_PARAMS_H
#define TG_PARAMS_H

#include "api.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;
    tg_tensor *tensor;
} tg_param;

typedef struct {
    int count, capacity;
    tg_param *items;
    /* Set by tg_params_pack (all zero otherwise): the one allocation that
     * holds every value and then every gradient of the set, which the set
     * owns, and what it held when packed. */
    void *packed;
    int packed_count;
    int64_t packed_numel;
} tg_params;

/* An empty set (also valid: a zero-initialised tg_params). */
TG_API tg_params *tg_params_new(void);
/* Release the set's memory (names and list), not the tensors; after
 * tg_params_pack, also the memory of their values and gradients. */
TG_API void tg_params_free(tg_params *params);
/* Clear the list in place (for a set embedded in a struct). */
TG_API void tg_params_clear(tg_params *params);

/* Append tensor under name; names must be unique within the set. */
TG_API tg_status tg_params_add(tg_params *params, const char *name, tg_tensor *tensor);
/* Append every entry of src, with "prefix" + name (prefix may be NULL), or
 * nothing: a name already in the set (two layers with the same default
 * names, say) is an error that names it and asks for a prefix, and leaves
 * the set as it was. Its status must be used: a set that silently lacks a
 * layer trains without it. */
TG_API TG_NODISCARD tg_status tg_params_extend(tg_params *params, const char *prefix,
                                               const tg_params *src);
/* Keep the first `count` entries and drop the rest (their names are freed,
 * not their tensors): undoes additions made since the set had `count`. */
TG_API void tg_params_truncate(tg_params *params, int count);
/* The tensor with this name, or NULL. */
TG_API tg_tensor *tg_params_find(const tg_params *params, const char *name);

/* Zero every gradient in the set. */
TG_API void tg_params_zero_grad(const tg_params *params);
/* Total number of elements in the set's tensors. */
TG_API int64_t tg_params_numel(const tg_params *params);

/* ---- one buffer for a whole set (data-parallel training) ------------------
 *
 * tg_params_pack moves the values of every tensor of the set, then their
 * gradients, into one allocation: values [0, P), gradients [P, 2P) for P =
 * tg_params_numel. The tensors stay where they are (the layers that hold
 * them keep working) and so do their shapes, strides and names; only their
 * storage moves, so results and checkpoints are bit-identical to the
 * unpacked set's. Then a step's gradients are one buffer that a single
 * MPI_Allreduce sums, and the parameters one buffer that a single
 * MPI_Bcast sends:
 *
 *     tg_params_pack(&model->params);                 // once, after building
 *     ...
 *     tg_dtype dtype; int64_t count;
 *     float *g = tg_params_grad_buffer(&model->params, &dtype, &count);
 *     MPI_Allreduce(MPI_IN_PLACE, g, (int)count, MPI_FLOAT, MPI_SUM, comm);
 *
 * Conditions: every tensor is persistent (made by a tg_tensor_* constructor,
 * not wrapping the caller's memory), contiguous, of one dtype, has a
 * gradient (tg_tensor_requires_grad), and appears once. Pack right after
 * building the model: a view made before packing keeps pointing at the old
 * storage, which packing frees. The set owns the new allocation: its
 * tensors may be freed before or after it, but their values are gone once
 * the set is cleared or freed. Packing again (after adding tensors, or
 * after a gradient was dropped and made again) builds a new allocation. */
TG_API tg_status tg_params_pack(tg_params *params);
/* The packed gradients (P elements, C order of each tensor in set order),
 * its dtype and P; NULL with an error if the set is not packed or no longer
 * matches its pack (a tensor added, a gradient replaced: pack again). */
TG_API void *tg_params_grad_buffer(const tg_params *params, tg_dtype *dtype, int64_t *count);
/* The packed values, in the same order. */
TG_API void *tg_params_value_buffer(const tg_params *params, tg_dtype *dtype, int64_t *count);

/* ---- the values of a set as bytes (broadcast, snapshots) ------------------
 *
 * Any set (f32 and f64 mixed: a model, its optimizer's state from
 * tg_adam_state, carried states), packed or not, as one run of bytes: each
 * tensor's values in C order, in set order, in this host's byte order. To
 * start every process of a data-parallel job from process 0's state:
 *
 *     size_t n; tg_params_flat_size(&state, &n);
 *     if (rank == 0) tg_params_flatten(&state, buf, n);
 *     MPI_Bcast(buf, (int)n, MPI_BYTE, 0, comm);
 *     if (rank != 0) tg_params_unflatten(&state, buf, n);
 *
 * The processes must hold the same set (names, dtypes, shapes: built by the
 * same code) on hosts of the same byte order. A checkpoint is the portable
 * alternative. Tensors must be contiguous. */
TG_API tg_status tg_params_flat_size(const tg_params *params, size_t *bytes);
TG_API tg_status tg_params_flatten(const tg_params *params, void *dst, size_t size);
/* The inverse; `size` must be exactly the set's size, else nothing is
 * written. */
TG_API tg_status tg_params_unflatten(const tg_params *params, const void *src, size_t size);

#ifdef __cplusplus
}
#endif

#endif
