/* Parameter sets (see params.h). */
#include "params.h"

#include <stdlib.h>
#include <string.h>

tg_params *tg_params_new(void)
{
    tg_params *p = calloc(1, sizeof *p);
    if (!p)
        tg_fail(TG_ERR_NOMEM, "tg_params_new: out of memory");
    return p;
}

void tg_params_clear(tg_params *params)
{
    if (!params)
        return;
    tg_params_truncate(params, 0);
    free(params->items);
    free(params->packed);
    params->items = NULL;
    params->packed = NULL;
    params->capacity = params->packed_count = 0;
    params->packed_numel = 0;
}

void tg_params_truncate(tg_params *params, int count)
{
    if (!params || count < 0)
        return;
    for (int i = count; i < params->count; i++)
        free(params->items[i].name);
    if (count < params->count)
        params->count = count;
}

void tg_params_free(tg_params *params)
{
    tg_params_clear(params);
    free(params);
}

tg_tensor *tg_params_find(const tg_params *params, const char *name)
{
    if (!params || !name)
        return NULL;
    for (int i = 0; i < params->count; i++)
        if (strcmp(params->items[i].name, name) == 0)
            return params->items[i].tensor;
    return NULL;
}

/* Append prefix + name. `who` names the public caller in messages. */
static tg_status add_prefixed(const char *who, tg_params *params, const char *prefix,
                              const char *name, tg_tensor *tensor)
{
    if (!params || !name || !tensor)
        return tg_fail(TG_ERR_ARG, "%s: NULL argument", who);
    size_t lp = prefix ? strlen(prefix) : 0, ln = strlen(name);
    char *full = malloc(lp + ln + 1);
    if (!full)
        return tg_fail(TG_ERR_NOMEM, "%s: out of memory", who);
    if (lp)
        memcpy(full, prefix, lp);
    memcpy(full + lp, name, ln + 1);
    if (tg_params_find(params, full)) {
        tg_status s = tg_fail(TG_ERR_ARG, "%s: the name '%s' is already in the set%s", who, full,
                              strcmp(who, "tg_params_extend") == 0
                                  ? " (two layers with the same names?): give the set being "
                                    "added a prefix, e.g. tg_params_extend(set, \"head.\", "
                                    "&head->params); nothing was added"
                                  : "");
        free(full);
        return s;
    }
    if (params->count == params->capacity) {
        int cap = params->capacity ? 2 * params->capacity : 8;
        tg_param *items = realloc(params->items, (size_t)cap * sizeof *items);
        if (!items) {
            free(full);
            return tg_fail(TG_ERR_NOMEM, "%s: out of memory", who);
        }
        params->items = items;
        params->capacity = cap;
    }
    params->items[params->count].name = full;
    params->items[params->count].tensor = tensor;
    params->count++;
    return TG_OK;
}

tg_status tg_params_add(tg_params *params, const char *name, tg_tensor *tensor)
{
    return add_prefixed("tg_params_add", params, NULL, name, tensor);
}

tg_status tg_params_extend(tg_params *params, const char *prefix, const tg_params *src)
{
    if (!params || !src)
        return tg_fail(TG_ERR_ARG, "tg_params_extend: %s set is NULL",
                       params ? "source" : "destination");
    int before = params->count, n = src->count; /* src may be params itself */
    for (int i = 0; i < n; i++) {
        tg_status s = add_prefixed("tg_params_extend", params, prefix, src->items[i].name,
                                   src->items[i].tensor);
        if (s != TG_OK) {
            tg_params_truncate(params, before); /* all or nothing */
            return s;
        }
    }
    return TG_OK;
}

void tg_params_zero_grad(const tg_params *params)
{
    if (!params)
        return;
    for (int i = 0; i < params->count; i++)
        tg_tensor_zero_grad(params->items[i].tensor);
}

int64_t tg_params_numel(const tg_params *params)
{
    int64_t n = 0;
    for (int i = 0; params && i < params->count; i++)
        n += tg_tensor_numel(params->items[i].tensor);
    return n;
}
