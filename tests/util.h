/* Helpers shared by the test suites. */
#ifndef TG_TEST_UTIL_H
#define TG_TEST_UTIL_H

#include <check.h>

#include "tapegrad.h"

/* A persistent tensor of N(0,1) values (or uniform in [lo, hi)) that requires
 * a gradient; name it for gradcheck messages. */
tg_tensor *tu_param(tg_rng *rng, tg_dtype dtype, const char *name, int ndim,
                    const int64_t *shape);
tg_tensor *tu_param_uniform(tg_rng *rng, tg_dtype dtype, const char *name, double lo, double hi,
                            int ndim, const int64_t *shape);

/* sum(out * weights) where weights is a fixed N(0,1) tensor drawn from a
 * generator seeded by the shape, so every element of out matters to the loss
 * with a different weight. */
tg_tensor *tu_weighted_sum(tg_tape *tape, tg_tensor *out);

/* Run tg_gradcheck and fail the test with the worst element if it does not
 * pass. */
void tu_assert_gradcheck(tg_loss_fn fn, void *ctx, int n, tg_tensor *const *params,
                         double tolerance);

/* Largest |a - b| over all elements (shapes must match). */
double tu_max_abs_diff(const tg_tensor *a, const tg_tensor *b);
/* Largest |a - b| / max(|a|, |b|, floor). */
double tu_max_rel_diff(const tg_tensor *a, const tg_tensor *b, double floor);
/* True when every byte of the two tensors' values is identical. */
int tu_bitwise_equal(const tg_tensor *a, const tg_tensor *b);

/* A whole file in a malloc'd buffer (one spare byte at the end; caller
 * frees), its length in *size; fails the test if it cannot be read. */
unsigned char *tu_read_file(const char *path, size_t *size);
/* Fail the test unless the two files hold the same bytes (checkpoints:
 * bit-identical training). */
void tu_assert_same_file(const char *a, const char *b);
/* Create or replace a file with these bytes; fails the test on error. */
void tu_write_file(const char *path, const void *data, size_t size);

/* Run a shell command with stderr folded into stdout; its exit status (-1 if
 * it did not exit), and the start of its output, NUL-terminated, in out
 * (which may be NULL). The rest of the output is read and dropped, so the
 * program never blocks on a full pipe. */
int tu_run(const char *command, char *out, size_t size);

/* The tensors of one case of a text fixture (tests/fixtures/, *.txt): lines
 * "<name> <ndim> <dims...>" then the values in C order, up to "end". */
#define TU_FIXTURE_MAX 256
typedef struct {
    const char *case_name; /* for messages */
    int n;
    char names[TU_FIXTURE_MAX][64];
    tg_tensor *t[TU_FIXTURE_MAX]; /* f64, persistent */
} tu_tensors;

/* Read tensors until "end" (the case's header line already read). */
void tu_tensors_read(FILE *f, tu_tensors *set);
/* The tensor called name; fails the test if there is none. */
tg_tensor *tu_tensors_get(const tu_tensors *set, const char *name);
void tu_tensors_free(tu_tensors *set);

/* The recurrent cell configurations the suites run through: rnn, lstm, gru,
 * and gru_reset_after (linear_before_reset = false). */
typedef struct {
    const char *name;
    tg_cell cell;
    bool linear_before_reset;
} tu_cell_case;
enum { TU_N_CELLS = 4 };
extern const tu_cell_case TU_CELLS[TU_N_CELLS];

/* Free a NULL-terminated list of persistent tensors. */
void tu_free_all(tg_tensor **tensors, int n);

/* A matrix inside a larger buffer, as the GEMM and ISA suites hand
 * operands to the kernels: element (i, j) at offset + i*rs + j*cs (in
 * elements, negative strides allowed), read and written as doubles
 * whatever the dtype. */
typedef struct {
    tg_dtype dtype;
    int64_t rows, cols, rs, cs, offset, size;
    void *buf;
} tu_matrix;

static inline double tu_flat_get(const tu_matrix *m, int64_t f)
{
    return m->dtype == TG_F32 ? ((float *)m->buf)[f] : ((double *)m->buf)[f];
}
static inline void tu_flat_set(const tu_matrix *m, int64_t f, double v)
{
    if (m->dtype == TG_F32)
        ((float *)m->buf)[f] = (float)v;
    else
        ((double *)m->buf)[f] = v;
}
static inline int64_t tu_pos(const tu_matrix *m, int64_t i, int64_t j)
{
    return m->offset + i * m->rs + j * m->cs;
}
static inline double tu_get(const tu_matrix *m, int64_t i, int64_t j)
{
    return tu_flat_get(m, tu_pos(m, i, j));
}
/* The address of element (i, j). */
static inline void *tu_ptr(const tu_matrix *m, int64_t i, int64_t j)
{
    return (char *)m->buf + tu_pos(m, i, j) * (int64_t)tg_dtype_size(m->dtype);
}

#endif
