/* Helpers shared by the test suites (see util.h). */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

const tu_cell_case TU_CELLS[TU_N_CELLS] = {
    {"rnn", TG_CELL_RNN, true},
    {"lstm", TG_CELL_LSTM, true},
    {"gru", TG_CELL_GRU, true},
    {"gru_reset_after", TG_CELL_GRU, false},
};

tg_tensor *tu_param(tg_rng *rng, tg_dtype dtype, const char *name, int ndim,
                    const int64_t *shape)
{
    tg_tensor *t = tg_tensor_randn(rng, dtype, ndim, shape);
    ck_assert_msg(t != NULL, "tu_param: %s", tg_last_error());
    ck_assert_int_eq(tg_tensor_requires_grad(t, true), TG_OK);
    t->name = name;
    return t;
}

tg_tensor *tu_param_uniform(tg_rng *rng, tg_dtype dtype, const char *name, double lo, double hi,
                            int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_tensor_zeros(dtype, ndim, shape);
    ck_assert_msg(t != NULL, "tu_param_uniform: %s", tg_last_error());
    tg_rng_fill_uniform(rng, t, lo, hi);
    ck_assert_int_eq(tg_tensor_requires_grad(t, true), TG_OK);
    t->name = name;
    return t;
}

tg_tensor *tu_weighted_sum(tg_tape *tape, tg_tensor *out)
{
    if (!out)
        return NULL;
    uint32_t seed = 12345;
    for (int d = 0; d < out->ndim; d++)
        seed = seed * 31 + (uint32_t)out->shape[d];
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_tensor *w = tg_tape_tensor(tape, out->dtype, out->ndim, out->shape);
    if (!w)
        return NULL;
    tg_rng_fill_randn(&rng, w);
    return tg_sum(tape, tg_mul(tape, out, w));
}

void tu_assert_gradcheck(tg_loss_fn fn, void *ctx, int n, tg_tensor *const *params,
                         double tolerance)
{
    tg_gradcheck_options o = tg_gradcheck_defaults();
    o.tolerance = tolerance;
    tg_gradcheck_result r;
    tg_status s = tg_gradcheck(fn, ctx, n, params, &o, &r);
    ck_assert_msg(s == TG_OK, "gradcheck could not run: %s", tg_last_error());
    ck_assert_msg(r.passed,
                  "gradcheck failed: error %.3g at %s[%lld]: analytic %.12g, numeric %.12g",
                  r.max_error, r.worst_name ? r.worst_name : "?", (long long)r.worst_index,
                  r.analytic, r.numeric);
    ck_assert_int_gt(r.checked, 0);
}

double tu_max_abs_diff(const tg_tensor *a, const tg_tensor *b)
{
    ck_assert_msg(tg_tensor_same_shape(a, b), "tu_max_abs_diff: shapes differ");
    double worst = 0;
    int64_t n = tg_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(tg_tensor_get_flat(a, i) - tg_tensor_get_flat(b, i));
        if (isnan(d))
            return INFINITY;
        worst = fmax(worst, d);
    }
    return worst;
}

double tu_max_rel_diff(const tg_tensor *a, const tg_tensor *b, double floor)
{
    ck_assert_msg(tg_tensor_same_shape(a, b), "tu_max_rel_diff: shapes differ");
    double worst = 0;
    int64_t n = tg_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double x = tg_tensor_get_flat(a, i), y = tg_tensor_get_flat(b, i);
        double d = fabs(x - y) / fmax(fmax(fabs(x), fabs(y)), floor);
        if (isnan(d))
            return INFINITY;
        worst = fmax(worst, d);
    }
    return worst;
}

int tu_bitwise_equal(const tg_tensor *a, const tg_tensor *b)
{
    if (!tg_tensor_same_shape(a, b) || a->dtype != b->dtype)
        return 0;
    int64_t n = tg_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double x = tg_tensor_get_flat(a, i), y = tg_tensor_get_flat(b, i);
        if (memcmp(&x, &y, sizeof x) != 0)
            return 0;
    }
    return 1;
}

unsigned char *tu_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "tu_read_file: cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    ck_assert_msg(n >= 0, "tu_read_file: cannot size %s", path);
    unsigned char *data = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}

void tu_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "tu_write_file: cannot create %s", path);
    ck_assert_int_eq(fwrite(data, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
}

void tu_free_all(tg_tensor **tensors, int n)
{
    for (int i = 0; i < n; i++)
        tg_tensor_free(tensors[i]);
}

int tu_run(const char *command, char *out, size_t size)
{
    char full[4096];
    int len = snprintf(full, sizeof full, "%s 2>&1", command);
    ck_assert_msg(len > 0 && (size_t)len < sizeof full, "tu_run: command too long");
    FILE *p = popen(full, "r");
    ck_assert_ptr_nonnull(p);
    char sink[4096];
    if (!out) {
        out = sink;
        size = sizeof sink;
    }
    size_t n = 0, got;
    while (n + 1 < size && (got = fread(out + n, 1, size - 1 - n, p)) > 0)
        n += got;
    out[n] = '\0';
    while (fread(sink, 1, sizeof sink, p) > 0) /* drain what did not fit */
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void tu_tensors_read(FILE *f, tu_tensors *set)
{
    char word[64];
    set->n = 0;
    while (fscanf(f, " %63s", word) == 1 && strcmp(word, "end") != 0) {
        ck_assert_int_lt(set->n, TU_FIXTURE_MAX);
        int ndim;
        int64_t shape[TG_MAX_DIMS], numel = 1;
        ck_assert_int_eq(fscanf(f, "%d", &ndim), 1);
        ck_assert(ndim >= 0 && ndim <= TG_MAX_DIMS);
        for (int d = 0; d < ndim; d++) {
            long long v;
            ck_assert_int_eq(fscanf(f, "%lld", &v), 1);
            shape[d] = v;
            numel *= v;
        }
        double *values = malloc(sizeof *values * (size_t)(numel + 1));
        ck_assert_ptr_nonnull(values);
        for (int64_t i = 0; i < numel; i++)
            ck_assert_int_eq(fscanf(f, "%lf", &values[i]), 1);
        snprintf(set->names[set->n], sizeof set->names[set->n], "%s", word);
        set->t[set->n++] = tg_tensor_from_doubles(TG_F64, ndim, shape, values);
        free(values);
    }
}

tg_tensor *tu_tensors_get(const tu_tensors *set, const char *name)
{
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->names[i], name) == 0)
            return set->t[i];
    ck_abort_msg("fixture %s has no tensor %s", set->case_name ? set->case_name : "?", name);
    return NULL;
}

void tu_tensors_free(tu_tensors *set)
{
    for (int i = 0; i < set->n; i++)
        tg_tensor_free(set->t[i]);
    set->n = 0;
}
