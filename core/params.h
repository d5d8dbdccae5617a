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
} tg_params;

/* An empty set (also valid: a zero-initialised tg_params). */
TG_API tg_params *tg_params_new(void);
/* Release the set's memory (names and list), not the tensors. */
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

#ifdef __cplusplus
}
#endif

#endif
