/* Hostile input: sizes that overflow, negative or zero dimensions, ids out of
 * range, corrupt files, absurd program options. One table lists each bad
 * input and the error it must get (status and a piece of the message); a
 * case is a short function that makes the bad call. Then the committed fuzz
 * inputs (tests/fuzz/<target>/: seeds and every input that once crashed) are
 * replayed through the fuzz harness, so what the fuzzer found stays fixed.
 *
 * The table of tests/README.md (input, status, the piece of the message) is
 * made from `cases` below: `make hostile-table` prints it, `make
 * hostile-table-update` writes it into tests/README.md, and the test
 * the_table_in_tests_readme_is_current fails when the two differ.
 * cd tests && TG_HOSTILE_LIST=1 ../build/tests/run_tests hostile prints each
 * input with the whole message it gets on this machine. */
#include <dirent.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/harness.h"
#include "util.h"

/* ---- the table ------------------------------------------------------------------ */

/* A case makes one bad call and reports its status; the message is
 * tg_last_error() or, for tape ops, copied from the tape into `message`. */
typedef tg_status (*hostile_fn)(char *message, size_t size);

static tg_status from_last(char *message, size_t size, const void *result)
{
    snprintf(message, size, "%s", tg_last_error());
    return result ? TG_OK : tg_last_status();
}

static tg_status from_tape(char *message, size_t size, tg_tape *tape)
{
    snprintf(message, size, "%s", tg_tape_error(tape));
    tg_status s = tg_tape_status(tape);
    tg_tape_free(tape);
    return s;
}

/* Free what a case made, whatever it returned. */
#define RETURN_LAST(result, free_fn)                                \
    do {                                                            \
        tg_status s_ = from_last(message, size, (result));          \
        free_fn(result);                                            \
        return s_;                                                  \
    } while (0)

/* ---- tensors ---- */

static tg_status negative_dimension(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_zeros(TG_F64, TG_DIMS(2, -3)), tg_tensor_free);
}

static tg_status overflowing_shape(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_zeros(TG_F32, TG_DIMS(INT64_C(1) << 62, 4)), tg_tensor_free);
}

static tg_status overflowing_product(char *message, size_t size)
{
    int64_t big = INT64_C(1) << 31;
    RETURN_LAST(tg_tensor_zeros(TG_F64, TG_DIMS(big, big, big)), tg_tensor_free);
}

/* Empty, but its strides would still overflow. */
static tg_status zero_dimension_with_overflowing_rest(char *message, size_t size)
{
    int64_t big = INT64_C(1) << 40;
    RETURN_LAST(tg_tensor_zeros(TG_F64, TG_DIMS(0, big, big)), tg_tensor_free);
}

/* Passes the arithmetic checks, but no machine has 2^61 bytes. */
static tg_status size_beyond_memory(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_zeros(TG_F64, TG_DIMS(INT64_C(1) << 29, INT64_C(1) << 29)),
                tg_tensor_free);
}

static tg_status seven_dimensions(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_zeros(TG_F64, TG_DIMS(1, 1, 1, 1, 1, 1, 1)), tg_tensor_free);
}

static tg_status negative_ndim(char *message, size_t size)
{
    int64_t shape[1] = {1};
    RETURN_LAST(tg_tensor_zeros(TG_F64, -1, shape), tg_tensor_free);
}

static tg_status arange_too_long(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_arange(TG_F64, 0, 1e300, 1), tg_tensor_free);
}

static tg_status arange_zero_step(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_arange(TG_F64, 0, 1, 0), tg_tensor_free);
}

static tg_status wrap_null_data(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_wrap(TG_F64, TG_DIMS(2, 2), NULL), tg_tensor_free);
}

static tg_status from_array_null(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_from_array(TG_F64, TG_DIMS(2, 2), TG_F64, NULL), tg_tensor_free);
}

static tg_status unknown_dtype(char *message, size_t size)
{
    RETURN_LAST(tg_tensor_zeros((tg_dtype)7, TG_DIMS(2)), tg_tensor_free);
}

/* Views of a persistent (3, 4) tensor. */
static tg_status view_case(char *message, size_t size, int which)
{
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(3, 4)), v;
    tg_status s = TG_OK;
    switch (which) {
    case 0: s = tg_view_reshape(&v, x, TG_DIMS(5, -1)); break;
    case 1: s = tg_view_reshape(&v, x, TG_DIMS(-1, -1)); break;
    case 2: s = tg_view_select(&v, x, 1, 4); break;
    case 3: s = tg_view_slice(&v, x, 0, 0, 3, 0); break;
    case 4: s = tg_view_slice(&v, x, 2, 0, 3, 1); break;
    case 5: s = tg_view_expand(&v, x, TG_DIMS(3, 5)); break;
    case 6: s = tg_view_transpose(&v, x, 0, -3); break;
    case 7: s = tg_view_reshape(&v, x, TG_DIMS(INT64_C(1) << 62, 4)); break;
    }
    snprintf(message, size, "%s", tg_last_error());
    tg_tensor_free(x);
    return s;
}
static tg_status reshape_wrong_count(char *m, size_t n) { return view_case(m, n, 0); }
static tg_status reshape_two_unknowns(char *m, size_t n) { return view_case(m, n, 1); }
static tg_status select_out_of_range(char *m, size_t n) { return view_case(m, n, 2); }
static tg_status slice_zero_step(char *m, size_t n) { return view_case(m, n, 3); }
static tg_status slice_bad_dim(char *m, size_t n) { return view_case(m, n, 4); }
static tg_status expand_incompatible(char *m, size_t n) { return view_case(m, n, 5); }
static tg_status transpose_bad_dim(char *m, size_t n) { return view_case(m, n, 6); }
static tg_status reshape_overflowing(char *m, size_t n) { return view_case(m, n, 7); }

/* ---- the tape and ops ---- */

static tg_status tape_tensor_overflow(char *message, size_t size)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_tensor(tape, TG_F32, TG_DIMS(INT64_C(1) << 40, INT64_C(1) << 40));
    return from_tape(message, size, tape);
}

static tg_status tape_memory_limit(char *message, size_t size)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_set_memory_limit(tape, 1 << 20);
    tg_tape_zeros(tape, TG_F64, TG_DIMS(1024, 1024));
    return from_tape(message, size, tape);
}

/* An op on a (4, 5) table / logits with ids or targets. */
static tg_status gather_case(char *message, size_t size, const int32_t *ids, int64_t n)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *table = tg_tensor_zeros(TG_F32, TG_DIMS(4, 5));
    tg_gather_columns(tape, table, ids, n);
    tg_tensor_free(table);
    return from_tape(message, size, tape);
}
static tg_status gather_negative_id(char *m, size_t n)
{
    return gather_case(m, n, (const int32_t[]){0, -1}, 2);
}
static tg_status gather_id_equal_to_vocabulary(char *m, size_t n)
{
    return gather_case(m, n, (const int32_t[]){5}, 1);
}
static tg_status gather_id_int32_max(char *m, size_t n)
{
    return gather_case(m, n, (const int32_t[]){1, 2, INT32_MAX}, 3);
}
static tg_status gather_negative_count(char *m, size_t n) { return gather_case(m, n, NULL, -1); }
static tg_status gather_null_ids(char *m, size_t n) { return gather_case(m, n, NULL, 3); }

static tg_status cross_entropy_case(char *message, size_t size, const int32_t *targets,
                                    int64_t n, int axis)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *logits = tg_tensor_zeros(TG_F64, TG_DIMS(5, 3)); /* 5 classes, 3 positions */
    tg_cross_entropy(tape, logits, axis, targets, n, TG_REDUCE_MEAN);
    tg_tensor_free(logits);
    return from_tape(message, size, tape);
}
static tg_status cross_entropy_negative_target(char *m, size_t n)
{
    return cross_entropy_case(m, n, (const int32_t[]){0, -2, 1}, 3, 0);
}
static tg_status cross_entropy_target_equal_to_classes(char *m, size_t n)
{
    return cross_entropy_case(m, n, (const int32_t[]){0, 1, 5}, 3, 0);
}
static tg_status cross_entropy_target_int32_min(char *m, size_t n)
{
    return cross_entropy_case(m, n, (const int32_t[]){INT32_MIN, 0, 0}, 3, 0);
}
static tg_status cross_entropy_wrong_count(char *m, size_t n)
{
    return cross_entropy_case(m, n, (const int32_t[]){0, 1}, 2, 0);
}
static tg_status cross_entropy_null_targets(char *m, size_t n)
{
    return cross_entropy_case(m, n, NULL, 3, 0);
}
static tg_status cross_entropy_bad_axis(char *m, size_t n)
{
    return cross_entropy_case(m, n, (const int32_t[]){0, 1, 2}, 3, 2);
}

static tg_status matmul_inner_mismatch(char *message, size_t size)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_tensor_zeros(TG_F64, TG_DIMS(5, 3)), *b = tg_tensor_zeros(TG_F64, TG_DIMS(4, 10));
    tg_matmul(tape, a, b);
    tg_tensor_free(a);
    tg_tensor_free(b);
    return from_tape(message, size, tape);
}

static tg_status mean_of_empty(char *message, size_t size)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(0, 3));
    tg_mean(tape, x);
    tg_tensor_free(x);
    return from_tape(message, size, tape);
}

static tg_status broadcast_mismatch(char *message, size_t size)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_tensor_zeros(TG_F64, TG_DIMS(2, 3)), *b = tg_tensor_zeros(TG_F64, TG_DIMS(4, 3));
    tg_add(tape, a, b);
    tg_tensor_free(a);
    tg_tensor_free(b);
    return from_tape(message, size, tape);
}

/* ---- tensors of another tape or of an earlier step ---- */

/* Tapes A and B; x requires a gradient; y = tanh(x) is made on A. */
static tg_status two_tapes_case(char *message, size_t size, int which)
{
    tg_tape *a = tg_tape_new(), *b = tg_tape_new();
    tg_tensor *x = tg_tensor_full(TG_F64, TG_DIMS(2, 2), 0.5);
    tg_tensor_requires_grad(x, true);
    tg_tensor *y = tg_tanh(a, x), *loss = tg_sum(a, y);
    if (which == 0)
        tg_backward(b, loss);
    else
        tg_sum(b, tg_mul(b, x, y));
    tg_tape_free(a);
    tg_tensor_free(x);
    return from_tape(message, size, b);
}
static tg_status backward_of_a_loss_of_another_tape(char *m, size_t n)
{
    return two_tapes_case(m, n, 0);
}
static tg_status op_reading_a_tensor_of_another_tape(char *m, size_t n)
{
    return two_tapes_case(m, n, 1);
}

/* y made on the tape, then the tape is reset (after growing the arena past
 * its first chunk when `grow`), then y is used again. */
static tg_status stale_case(char *message, size_t size, bool grow, bool backward)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_full(TG_F64, TG_DIMS(2, 2), 0.5);
    tg_tensor_requires_grad(x, true);
    tg_tensor *y = tg_tanh(tape, x), *loss = tg_sum(tape, y);
    if (grow)
        tg_tape_zeros(tape, TG_F64, TG_DIMS(1024, 1024)); /* 8 MB: new chunks */
    tg_tape_reset(tape);
    if (backward)
        tg_backward(tape, loss);
    else
        tg_sum(tape, tg_tanh(tape, y));
    tg_tensor_free(x);
    return from_tape(message, size, tape);
}
static tg_status op_on_a_tensor_from_before_a_reset(char *m, size_t n)
{
    return stale_case(m, n, false, false);
}
static tg_status op_on_a_stale_tensor_after_the_arena_grew(char *m, size_t n)
{
    return stale_case(m, n, true, false);
}
static tg_status backward_of_a_loss_from_before_a_reset(char *m, size_t n)
{
    return stale_case(m, n, false, true);
}

/* ---- element access ---- */

static tg_status access_case(char *message, size_t size, int which)
{
    tg_tensor *t = tg_tensor_zeros(TG_F64, TG_DIMS(2, 2));
    double got = NAN; /* what a getter returned */
    tg_status s = TG_OK;
    switch (which) {
    case 0: s = tg_tensor_set(t, (int64_t[]){2, 0}, 1.0); break;
    case 1: got = tg_tensor_get(t, (int64_t[]){0, -1}); break;
    case 2: got = tg_tensor_get(t, NULL); break;
    case 3: s = tg_tensor_set_flat(t, 4, 1.0); break;
    case 4: got = tg_tensor_get_flat(t, -1); break;
    case 5: got = tg_tensor_item(t); break;
    case 6: got = tg_tensor_item(NULL); break;
    case 7: got = (double)tg_tensor_numel(NULL); break;
    case 8: s = tg_tensor_set_flat(NULL, 0, 1.0); break;
    }
    snprintf(message, size, "%s", tg_last_error());
    if (which == 7 ? got != 0 : !isnan(got))
        snprintf(message, size, "returned %g", got);
    for (int64_t i = 0; i < 4; i++) /* nothing was written */
        if (tg_tensor_get_flat(t, i) != 0)
            snprintf(message, size, "the tensor changed");
    tg_tensor_free(t);
    return s != TG_OK ? s : tg_last_status();
}
static tg_status set_out_of_bounds(char *m, size_t n) { return access_case(m, n, 0); }
static tg_status get_negative_index(char *m, size_t n) { return access_case(m, n, 1); }
static tg_status get_null_index(char *m, size_t n) { return access_case(m, n, 2); }
static tg_status set_flat_past_the_end(char *m, size_t n) { return access_case(m, n, 3); }
static tg_status get_flat_negative(char *m, size_t n) { return access_case(m, n, 4); }
static tg_status item_of_four_elements(char *m, size_t n) { return access_case(m, n, 5); }
static tg_status item_of_null(char *m, size_t n) { return access_case(m, n, 6); }
static tg_status numel_of_null(char *m, size_t n) { return access_case(m, n, 7); }
static tg_status set_flat_of_null(char *m, size_t n) { return access_case(m, n, 8); }

static tg_status reshape_empty_to_overflowing(char *message, size_t size)
{
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(0, 3)), v;
    tg_status s = tg_view_reshape(&v, x, TG_DIMS(0, INT64_C(1) << 62, INT64_C(1) << 62));
    snprintf(message, size, "%s", tg_last_error());
    tg_tensor_free(x);
    return s;
}

/* ---- limits of the process ---- */

/* In a child process under a limit of 512 MB (RLIMIT_AS or RLIMIT_DATA):
 * allocations beyond it are refused before malloc, as in a 512 MB cgroup
 * (where the kernel grants them and the OOM killer ends the process). */
static tg_status under_a_limit(char *message, size_t size, int resource, bool lstm)
{
    int pipe_fds[2];
    ck_assert_int_eq(pipe(pipe_fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit limit = {INT64_C(512) << 20, INT64_C(512) << 20};
        setrlimit(resource, &limit);
        tg_rng rng;
        tg_rng_seed(&rng, 1);
        void *made = lstm ? (void *)tg_recurrent_new(TG_CELL_LSTM, 1024, 4096, TG_F32, NULL, &rng)
                          : (void *)tg_tensor_zeros(TG_F64, TG_DIMS(1 << 17, 1 << 10));
        char out[600];
        int n = snprintf(out, sizeof out, "%d %s", made ? 0 : (int)tg_last_status(),
                         made ? "allocated" : tg_last_error());
        _exit(write(pipe_fds[1], out, (size_t)n) == n ? 0 : 1);
    }
    close(pipe_fds[1]);
    char got[600] = "";
    ssize_t n = read(pipe_fds[0], got, sizeof got - 1);
    close(pipe_fds[0]);
    waitpid(pid, NULL, 0);
    got[n > 0 ? n : 0] = '\0';
    char *space = strchr(got, ' ');
    snprintf(message, size, "%s", space ? space + 1 : "the child reported nothing");
    return space ? (tg_status)atoi(got) : TG_ERR_STATE;
}
static tg_status tensor_beyond_rlimit_data(char *m, size_t n)
{
    return under_a_limit(m, n, RLIMIT_DATA, false);
}
static tg_status lstm_beyond_rlimit_as(char *m, size_t n)
{
    return under_a_limit(m, n, RLIMIT_AS, true);
}

/* ---- layers ---- */

static tg_status embedding_case(char *message, size_t size, const int32_t *ids, int64_t m,
                                int64_t T)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_embedding *emb = tg_embedding_new(10, 4, TG_F32, TG_INIT_PYTORCH, &rng);
    tg_tape *tape = tg_tape_new();
    tg_embedding_forward(tape, emb, ids, m, T);
    tg_embedding_free(emb);
    return from_tape(message, size, tape);
}
static tg_status embedding_id_out_of_range(char *m, size_t n)
{
    return embedding_case(m, n, (const int32_t[]){1, 2, 3, 1000}, 2, 2);
}
static tg_status embedding_zero_rows(char *m, size_t n)
{
    return embedding_case(m, n, (const int32_t[]){1}, 0, 1);
}
static tg_status embedding_overflowing_count(char *m, size_t n)
{
    return embedding_case(m, n, (const int32_t[]){1}, INT64_C(1) << 62, 8);
}

static tg_status recurrent_case(char *message, size_t size, tg_cell cell, int n_x, int n_a,
                                int layers)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_recurrent_options o = tg_recurrent_defaults();
    o.num_layers = layers;
    RETURN_LAST(tg_recurrent_new(cell, n_x, n_a, TG_F32, &o, &rng), tg_recurrent_free);
}
static tg_status recurrent_zero_hidden(char *m, size_t n)
{
    return recurrent_case(m, n, TG_CELL_LSTM, 8, 0, 1);
}
static tg_status recurrent_negative_hidden(char *m, size_t n)
{
    return recurrent_case(m, n, TG_CELL_LSTM, 8, -5, 1);
}
static tg_status recurrent_int_max_hidden(char *m, size_t n)
{
    return recurrent_case(m, n, TG_CELL_RNN, 8, INT_MAX, 1);
}
/* 32 TB of parameters: no overflow, but more than any machine has. */
static tg_status recurrent_lstm_beyond_memory(char *m, size_t n)
{
    return recurrent_case(m, n, TG_CELL_LSTM, 1 << 20, 1 << 20, 1);
}
static tg_status recurrent_zero_layers(char *m, size_t n)
{
    return recurrent_case(m, n, TG_CELL_GRU, 8, 8, 0);
}
static tg_status recurrent_int_max_layers(char *m, size_t n)
{
    return recurrent_case(m, n, TG_CELL_GRU, 8, 1 << 20, INT_MAX);
}
static tg_status recurrent_unknown_cell(char *m, size_t n)
{
    return recurrent_case(m, n, (tg_cell)9, 8, 8, 1);
}

static tg_status linear_zero_inputs(char *message, size_t size)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    RETURN_LAST(tg_linear_new(0, 3, TG_F32, "W", "b", TG_INIT_PYTORCH, &rng), tg_linear_free);
}

static tg_status embedding_zero_vocabulary(char *message, size_t size)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    RETURN_LAST(tg_embedding_new(0, 3, TG_F32, TG_INIT_PYTORCH, &rng), tg_embedding_free);
}

static tg_status states_case(char *message, size_t size, int64_t m)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_recurrent *rnn = tg_recurrent_new(TG_CELL_LSTM, 3, 4, TG_F32, NULL, &rng);
    tg_state *states = tg_states_new(rnn, m);
    tg_status s = from_last(message, size, states);
    tg_states_free(rnn, states);
    tg_recurrent_free(rnn);
    return s;
}
static tg_status states_zero_batch(char *m, size_t n) { return states_case(m, n, 0); }
static tg_status states_huge_batch(char *m, size_t n) { return states_case(m, n, INT64_C(1) << 61); }

static tg_status recurrent_wrong_input_rows(char *message, size_t size)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_recurrent *rnn = tg_recurrent_new(TG_CELL_LSTM, 3, 4, TG_F32, NULL, &rng);
    tg_tensor *x = tg_tensor_zeros(TG_F32, TG_DIMS(5, 2, 7));
    tg_tape *tape = tg_tape_new();
    tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_FUSED, NULL);
    tg_tensor_free(x);
    tg_recurrent_free(rnn);
    return from_tape(message, size, tape);
}

/* ---- optimizers ---- */

/* Adam on one parameter whose gradient holds `bad` at index 2. */
static tg_status optimizer_case(char *message, size_t size, double bad, int which)
{
    tg_tensor *W = tg_tensor_full(TG_F32, TG_DIMS(2, 2), 1.0);
    tg_tensor_requires_grad(W, true);
    tg_tensor_set_flat(W->grad, 2, bad);
    tg_params params = {0};
    tg_params_add(&params, "W", W);
    tg_status s;
    if (which == 0) {
        tg_adam_options o = tg_adam_defaults(1e-3);
        tg_adam *opt = tg_adam_new(&params, &o);
        s = tg_adam_step(opt, NULL);
        tg_adam_free(opt);
    } else if (which == 1) {
        tg_sgd_options o = tg_sgd_defaults(1e-3);
        tg_sgd *opt = tg_sgd_new(&params, &o);
        s = tg_sgd_step(opt, NULL);
        tg_sgd_free(opt);
    } else if (which == 2) {
        s = tg_clip_grad_norm(&params, 1.0, NULL);
    } else {
        tg_adam_options o = tg_adam_defaults(1e-3);
        tg_adam *opt = tg_adam_new(&params, &o);
        s = tg_adam_set_lr(opt, bad);
        tg_adam_free(opt);
    }
    snprintf(message, size, "%s", tg_last_error());
    /* Whatever was refused, the parameter kept its values. */
    for (int64_t i = 0; i < 4; i++)
        if (tg_tensor_get_flat(W, i) != 1.0)
            snprintf(message, size, "the parameter changed");
    tg_params_clear(&params);
    tg_tensor_free(W);
    return s;
}
static tg_status adam_nan_gradient(char *m, size_t n) { return optimizer_case(m, n, NAN, 0); }
static tg_status sgd_infinite_gradient(char *m, size_t n)
{
    return optimizer_case(m, n, -INFINITY, 1);
}
static tg_status adam_gradient_overflowing_update(char *m, size_t n)
{
    return optimizer_case(m, n, 3e38, 0);
}
static tg_status clip_infinite_gradient(char *m, size_t n)
{
    return optimizer_case(m, n, INFINITY, 2);
}
static tg_status adam_nan_learning_rate(char *m, size_t n) { return optimizer_case(m, n, NAN, 3); }

/* ---- files and text ---- */

static tg_status load_bytes(char *message, size_t size, const char *tag, const void *bytes,
                            size_t n)
{
    const char *path = fuzz_write_file(tag, bytes, n);
    ck_assert_ptr_nonnull(path);
    tg_status s;
    if (strcmp(tag, "npy") == 0) {
        tg_tensor *t = tg_npy_load(path);
        s = from_last(message, size, t);
        tg_tensor_free(t);
    } else {
        int64_t value;
        s = tg_checkpoint_read_int(path, "step", &value);
        snprintf(message, size, "%s", tg_last_error());
    }
    remove(path);
    return s;
}

/* A .npy file of version 1.0 with this header dict (len bytes, NULs
 * allowed) and `data` bytes after it. */
static tg_status npy_case_n(char *message, size_t size, const char *dict, size_t len,
                            size_t data)
{
    unsigned char file[512] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    file[8] = (unsigned char)len;
    memcpy(file + 10, dict, len);
    return load_bytes(message, size, "npy", file, 10 + len + data);
}
static tg_status npy_case(char *message, size_t size, const char *dict, size_t data)
{
    return npy_case_n(message, size, dict, strlen(dict), data);
}
static tg_status npy_nul_in_dtype(char *m, size_t n)
{
    static const char dict[] = "{'descr': '<f8\0x', 'fortran_order': False, 'shape': (1,), }\n";
    return npy_case_n(m, n, dict, sizeof dict - 1, 8);
}
static tg_status npy_nul_in_key(char *m, size_t n)
{
    static const char dict[] = "{'descr\0': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
    return npy_case_n(m, n, dict, sizeof dict - 1, 8);
}
/* Empty, so valid, though the product of its other dimensions is 2^60. */
static tg_status npy_empty_of_huge_shape(char *message, size_t size)
{
    static const char dict[] =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1073741824, 1073741824), }\n";
    unsigned char file[512] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    file[8] = (unsigned char)(sizeof dict - 1);
    memcpy(file + 10, dict, sizeof dict - 1);
    const char *path = fuzz_write_file("npy", file, 10 + sizeof dict - 1);
    ck_assert_ptr_nonnull(path);
    tg_tensor *t = tg_npy_load(path);
    char shape[64];
    snprintf(message, size, t ? "loaded %s" : "%s", t ? tg_shape_str(t, shape, sizeof shape)
                                                      : tg_last_error());
    tg_status s = t ? TG_OK : tg_last_status();
    tg_tensor_free(t);
    remove(path);
    return s;
}

/* A FIFO (no writer) or a device given to a loader: refused unread; the
 * loaders used to wait for a writer forever, or read /dev/zero until memory
 * ran out. */
static tg_status special_file_case(char *message, size_t size, int loader, bool fifo)
{
    char path[128] = "/dev/zero";
    if (fifo) {
        snprintf(path, sizeof path, "/tmp/tg_hostile_fifo_%d", (int)getpid());
        remove(path);
        ck_assert_int_eq(mkfifo(path, 0600), 0);
    }
    tg_status s;
    if (loader == 0) {
        tg_tensor *t = tg_npy_load(path);
        s = from_last(message, size, t);
        tg_tensor_free(t);
    } else if (loader == 1) {
        s = tg_checkpoint_load(path, NULL, NULL, NULL, 0);
        snprintf(message, size, "%s", tg_last_error());
    } else if (loader == 2) {
        tg_text *text = tg_text_load(path);
        s = from_last(message, size, text);
        tg_text_free(text);
    } else {
        tg_params none = {0};
        s = tg_npz_load(path, &none);
        snprintf(message, size, "%s", tg_last_error());
    }
    if (fifo)
        remove(path);
    return s;
}
static tg_status npy_load_of_a_fifo(char *m, size_t n) { return special_file_case(m, n, 0, true); }
static tg_status checkpoint_load_of_a_fifo(char *m, size_t n)
{
    return special_file_case(m, n, 1, true);
}
static tg_status text_load_of_a_fifo(char *m, size_t n) { return special_file_case(m, n, 2, true); }
static tg_status npz_load_of_a_fifo(char *m, size_t n) { return special_file_case(m, n, 3, true); }
static tg_status text_load_of_dev_zero(char *m, size_t n)
{
    return special_file_case(m, n, 2, false);
}

/* Saving a hand-made tensor description: 7 dimensions (it overflowed a
 * stack buffer), -1 (wrote a file that never loads), strides beyond reach. */
static tg_status save_bad_tensor_case(char *message, size_t size, int which, bool npy)
{
    double data[4] = {0};
    tg_tensor t = {.dtype = TG_F64, .ndim = 2, .shape = {2, 2}, .strides = {2, 1}, .data = data};
    if (which == 0) {
        t.ndim = 7;
        for (int d = 0; d < TG_MAX_DIMS; d++)
            t.shape[d] = 1;
    } else if (which == 1) {
        t.ndim = -1;
    } else {
        t.strides[0] = INT64_MAX / 2;
    }
    char path[128];
    snprintf(path, sizeof path, "/tmp/tg_hostile_save_%d", (int)getpid());
    tg_params set = {0};
    tg_params_add(&set, "W", &t);
    tg_status s = npy ? tg_npy_save(path, &t) : tg_checkpoint_save(path, &set, NULL, NULL, 0);
    snprintf(message, size, "%s", tg_last_error());
    if (access(path, F_OK) == 0)
        snprintf(message, size, "a file was written");
    tg_params_clear(&set);
    remove(path);
    return s;
}
static tg_status checkpoint_save_seven_dimensions(char *m, size_t n)
{
    return save_bad_tensor_case(m, n, 0, false);
}
static tg_status checkpoint_save_negative_ndim(char *m, size_t n)
{
    return save_bad_tensor_case(m, n, 1, false);
}
static tg_status checkpoint_save_absurd_strides(char *m, size_t n)
{
    return save_bad_tensor_case(m, n, 2, false);
}
static tg_status npy_save_seven_dimensions(char *m, size_t n)
{
    return save_bad_tensor_case(m, n, 0, true);
}

/* A valid file of `count` integer entries "e0", "e1", ...; the last one
 * renamed to "e0" when `duplicate`. */
static tg_status many_entries_case(char *message, size_t size, uint32_t count, bool duplicate)
{
    size_t cap = 36 + (size_t)count * 40, p = 20;
    uint8_t *file = calloc(cap, 1);
    ck_assert_ptr_nonnull(file);
    memcpy(file, "\x89TGCKPT\n\x01\0\0\0\x04\x03\x02\x01", 16);
    for (int k = 0; k < 4; k++)
        file[16 + k] = (uint8_t)(count >> (8 * k));
    for (uint32_t i = 0; i < count; i++) {
        char name[16];
        int len = snprintf(name, sizeof name, "e%u", duplicate && i + 1 == count ? 0 : i);
        uint8_t head[8] = {(uint8_t)len}, kind[8] = {3}, bytes[8] = {8};
        memcpy(file + p, head, 4);
        memcpy(file + p + 4, name, (size_t)len);
        p += 4 + (size_t)len;
        memcpy(file + p, kind, 8); /* kind 3 (integer), 0 dimensions */
        memcpy(file + p + 8, bytes, 8);
        p += 16 + 4 + 8; /* CRC (fixed below), the value 0 */
    }
    p += 16;
    fuzz_fix_checkpoint(file, p);
    tg_status s = load_bytes(message, size, "ckpt", file, p);
    free(file);
    return s;
}
static tg_status checkpoint_of_a_million_entries_with_a_duplicate(char *m, size_t n)
{
    return many_entries_case(m, n, TG_CHECKPOINT_MAX_ENTRIES, true);
}
static tg_status checkpoint_of_too_many_entries(char *m, size_t n)
{
    return many_entries_case(m, n, TG_CHECKPOINT_MAX_ENTRIES + 1, false);
}
static tg_status npy_overflowing_shape(char *m, size_t n)
{
    return npy_case(m, n, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n", 0);
}
static tg_status npy_dimension_beyond_int64(char *m, size_t n)
{
    return npy_case(m, n, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 0);
}
static tg_status npy_negative_dimension(char *m, size_t n)
{
    return npy_case(m, n, "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }\n", 8);
}
static tg_status npy_data_shorter_than_shape(char *m, size_t n)
{
    return npy_case(m, n, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }\n", 64);
}
static tg_status npy_seven_dimensions(char *m, size_t n)
{
    return npy_case(m, n, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1), }\n", 4);
}

/* A checkpoint with one entry "step" described by the arguments, CRCs right. */
static tg_status checkpoint_case(char *message, size_t size, uint32_t count, uint32_t kind,
                                 uint32_t ndim, uint64_t dim, uint64_t bytes)
{
    unsigned char file[256] = {0x89, 'T', 'G', 'C', 'K', 'P', 'T', '\n', 1, 0, 0, 0, 4, 3, 2, 1};
    size_t p = 16;
#define PUT(v, n)                                     \
    do {                                              \
        for (int k_ = 0; k_ < (n); k_++)              \
            file[p++] = (unsigned char)((uint64_t)(v) >> (8 * k_)); \
    } while (0)
    PUT(count, 4);
    PUT(4, 4);
    memcpy(file + p, "step", 4);
    p += 4;
    PUT(kind, 4);
    PUT(ndim, 4);
    for (uint32_t d = 0; d < ndim && d < 2; d++)
        PUT(dim, 8);
    PUT(bytes, 8);
    PUT(0, 4);    /* CRC, fixed below */
    PUT(42, 8);   /* payload */
    p += 16;      /* trailer, fixed below */
#undef PUT
    fuzz_fix_checkpoint(file, p);
    return load_bytes(message, size, "ckpt", file, p);
}
static tg_status checkpoint_overflowing_shape(char *m, size_t n)
{
    return checkpoint_case(m, n, 1, 1, 2, UINT64_C(1) << 62, 8);
}
static tg_status checkpoint_dimension_beyond_int64(char *m, size_t n)
{
    return checkpoint_case(m, n, 1, 1, 1, UINT64_MAX, 8);
}
static tg_status checkpoint_huge_byte_count(char *m, size_t n)
{
    return checkpoint_case(m, n, 1, 3, 0, 0, UINT64_MAX);
}
static tg_status checkpoint_absurd_entry_count(char *m, size_t n)
{
    return checkpoint_case(m, n, UINT32_MAX, 3, 0, 0, 8);
}
static tg_status checkpoint_too_many_dimensions(char *m, size_t n)
{
    return checkpoint_case(m, n, 1, 1, 1000, 1, 8);
}

static tg_status text_case(char *message, size_t size, const char *text, int m, int T)
{
    tg_text *t = tg_text_from_bytes(text, strlen(text));
    if (!t)
        return from_last(message, size, NULL);
    tg_batcher *b = tg_batcher_new(t->ids, t->n, m, T, TG_BATCH_SHUFFLED, 0);
    tg_status s = from_last(message, size, b);
    tg_batcher_free(b);
    tg_text_free(t);
    return s;
}
/* A seek far into shuffled order replayed one shuffle per epoch, for ever. */
static tg_status batcher_seek_beyond_reach(char *message, size_t size)
{
    tg_text *t = tg_text_from_bytes("abcabcabcabc", 12);
    tg_batcher *b = tg_batcher_new(t->ids, t->n, 1, 2, TG_BATCH_SHUFFLED, 0);
    tg_status s = tg_batcher_seek(b, INT64_C(1) << 62);
    snprintf(message, size, "%s", tg_last_error());
    if (tg_batcher_position(b) != 0)
        snprintf(message, size, "the position changed");
    tg_batcher_free(b);
    tg_text_free(t);
    return s;
}
static tg_status text_empty(char *m, size_t n) { return text_case(m, n, "", 1, 1); }
static tg_status text_one_distinct_byte(char *m, size_t n) { return text_case(m, n, "aaaa", 1, 1); }
static tg_status batcher_zero_sequences(char *m, size_t n) { return text_case(m, n, "abcabc", 0, 2); }
static tg_status batcher_negative_steps(char *m, size_t n) { return text_case(m, n, "abcabc", 1, -4); }
static tg_status batcher_batch_beyond_text(char *m, size_t n)
{
    return text_case(m, n, "abcabc", 2, 3);
}
static tg_status batcher_int_max_sizes(char *m, size_t n)
{
    return text_case(m, n, "abcabc", INT_MAX, INT_MAX);
}

/* ---- NULL where something is required ---- */

static tg_status null_npy_path(char *message, size_t size)
{
    RETURN_LAST(tg_npy_load(NULL), tg_tensor_free);
}
static tg_status null_npy_tensor(char *message, size_t size)
{
    tg_status s = tg_npy_save("/dev/null", NULL);
    snprintf(message, size, "%s", tg_last_error());
    return s;
}
static tg_status null_text_path(char *message, size_t size)
{
    RETURN_LAST(tg_text_load(NULL), tg_text_free);
}
static tg_status null_checkpoint_path(char *message, size_t size)
{
    tg_status s = tg_checkpoint_load(NULL, NULL, NULL, NULL, 0);
    snprintf(message, size, "%s", tg_last_error());
    return s;
}
static tg_status null_parameter(char *message, size_t size)
{
    tg_params params = {0};
    tg_status s = tg_params_add(&params, "W", NULL);
    snprintf(message, size, "%s", tg_last_error());
    tg_params_clear(&params);
    return s;
}
static tg_status null_schedule(char *message, size_t size)
{
    double lr = tg_lr_at(NULL, 3);
    snprintf(message, size, "%s", tg_last_error());
    return isnan(lr) ? tg_last_status() : TG_OK;
}
static tg_status null_sgd_options(char *message, size_t size)
{
    tg_params params = {0};
    RETURN_LAST(tg_sgd_new(&params, NULL), tg_sgd_free);
}

/* ---- char_lm (the program the tests built) ---- */

#define CHAR_LM "../" TG_BUILD_DIR "/examples/char_lm"
#define CORPUS " ../examples/data/dinos.txt"

/* Run char_lm with args; the status is TG_ERR_ARG when it refused them
 * (exit 1 or 2), TG_OK when it ran; the message is what it printed, its
 * lines joined by " / ". (Any other exit, such as LeakSanitizer's 23 under
 * make asan, is TG_ERR_STATE: a failed row.) */
static tg_status char_lm_env_case(char *message, size_t size, const char *env, const char *args)
{
    char command[2048], out[4096];
    snprintf(command, sizeof command, "%s " CHAR_LM " --steps 1 --save '' --svg '' %s", env, args);
    int code = tu_run(command, out, sizeof out);
    size_t n = 0;
    for (const char *c = out; *c && n + 4 < size; c++) {
        if (*c != '\n')
            message[n++] = *c;
        else if (c[1] != '\0')
            n += (size_t)snprintf(message + n, size - n, " / ");
    }
    message[n] = '\0';
    return code == 0 ? TG_OK : code == 1 || code == 2 ? TG_ERR_ARG : TG_ERR_STATE;
}
static tg_status char_lm_case(char *message, size_t size, const char *args)
{
    return char_lm_env_case(message, size, "", args);
}

static tg_status char_lm_hidden_million(char *m, size_t n)
{
    return char_lm_case(m, n, "--hidden 1000000" CORPUS);
}
static tg_status char_lm_hidden_negative(char *m, size_t n)
{
    return char_lm_case(m, n, "--hidden -1" CORPUS);
}
static tg_status char_lm_seq_zero(char *m, size_t n) { return char_lm_case(m, n, "--seq 0" CORPUS); }
static tg_status char_lm_seq_beyond_long(char *m, size_t n)
{
    return char_lm_case(m, n, "--seq 99999999999999999999999" CORPUS);
}
static tg_status char_lm_batch_beyond_text(char *m, size_t n)
{
    return char_lm_case(m, n, "--seq 100000 --batch 100000" CORPUS);
}
/* 69 GB of parameters and gradients: the largest model the options allow.
 * A machine with the memory for it would train it, so it is not tried there. */
static tg_status char_lm_model_beyond_memory(char *m, size_t n)
{
    if ((double)tg_memory_limit(NULL) / 2 > 69e9) {
        snprintf(m, n, "not tried: this machine has the memory for it");
        return TG_ERR_ARG;
    }
    return char_lm_case(m, n, "--hidden 8192 --embed 8192 --layers 16" CORPUS);
}

/* ---- char_lm and the checkpoints it resumes or samples from ---- */

#define SMALL_LM_ARGS                                                                     \
    " --hidden 24 --embed 8 --batch 4 --seq 12 --print-every 1000 --eval-every 1000"      \
    " --sample-every 100000 --length 4"

/* A checkpoint of a small model trained `steps` steps on dinos.txt. */
static void small_checkpoint(char *path, size_t size, const char *tag, int steps)
{
    snprintf(path, size, "/tmp/tg_hostile_%d_%s.ckpt", (int)getpid(), tag);
    char command[1024], out[4096];
    snprintf(command, sizeof command,
             CHAR_LM SMALL_LM_ARGS " --svg '' --steps %d --save %s" CORPUS, steps, path);
    ck_assert_msg(tu_run(command, out, sizeof out) == 0, "%s", out);
}

/* Overwrite n bytes at `offset` of the payload of entry `name`, then fix
 * every CRC of the file, so that only the value is wrong. */
static void poke_entry(const char *path, const char *name, size_t offset, const void *bytes,
                       size_t n)
{
    size_t size, len = strlen(name);
    unsigned char *data = tu_read_file(path, &size);
    unsigned char *at = NULL;
    for (size_t i = 24; !at && i + len + 8 <= size; i++)
        if (memcmp(data + i, name, len) == 0 && fuzz_u64(data + i - 4, 4) == len)
            at = data + i + len;
    ck_assert_msg(at != NULL, "no entry '%s' in %s", name, path);
    size_t ndim = (size_t)fuzz_u64(at + 4, 4);
    memcpy(at + 8 + 8 * ndim + 8 + 4 + offset, bytes, n);
    fuzz_fix_checkpoint(data, size);
    tu_write_file(path, data, size);
    free(data);
}

static tg_status resume_case(char *message, size_t size, const char *args)
{
    char path[128], full[1024];
    small_checkpoint(path, sizeof path, "resume", 20);
    snprintf(full, sizeof full, SMALL_LM_ARGS " --resume %s %s", path, args);
    tg_status s = char_lm_case(message, size, full);
    remove(path);
    return s;
}
static tg_status char_lm_resume_beyond_steps(char *m, size_t n)
{
    return resume_case(m, n, "--steps 10" CORPUS);
}

/* dinos.txt with one byte replaced throughout by another it does not hold:
 * the same number of distinct bytes, another vocabulary; or a text of 3. */
static tg_status char_lm_resume_other_text(char *message, size_t size, bool same_size)
{
    char text[128], args[256];
    snprintf(text, sizeof text, "/tmp/tg_hostile_%d_text.txt", (int)getpid());
    size_t n;
    unsigned char *bytes = tu_read_file("../examples/data/dinos.txt", &n);
    for (size_t i = 0; i < n; i++)
        bytes[i] = same_size ? (bytes[i] == '\n' ? ' ' : bytes[i]) : (unsigned char)("abc\n"[i % 4]);
    tu_write_file(text, bytes, n);
    free(bytes);
    snprintf(args, sizeof args, "--steps 30 %s", text);
    tg_status s = resume_case(message, size, args);
    remove(text);
    return s;
}
static tg_status char_lm_resume_same_size_other_vocabulary(char *m, size_t n)
{
    return char_lm_resume_other_text(m, n, true);
}
static tg_status char_lm_resume_other_vocabulary_size(char *m, size_t n)
{
    return char_lm_resume_other_text(m, n, false);
}

/* A checkpoint with one entry changed (n bytes at offset), then resumed
 * (resume) or sampled from. */
static tg_status poked_case(char *message, size_t size, const char *name, size_t offset,
                            const void *bytes, size_t n, bool resume)
{
    char path[128], args[1024];
    small_checkpoint(path, sizeof path, "poked", 2);
    poke_entry(path, name, offset, bytes, n);
    if (resume)
        snprintf(args, sizeof args, SMALL_LM_ARGS " --steps 5 --resume %s" CORPUS, path);
    else
        snprintf(args, sizeof args, "--sample --load %s --length 20", path);
    tg_status s = char_lm_case(message, size, args);
    remove(path);
    return s;
}
static tg_status char_lm_sample_vocabulary_of_300(char *m, size_t n)
{
    return poked_case(m, n, "vocab", 0, &(float){300}, 4, false);
}
static tg_status char_lm_sample_vocabulary_of_minus_one(char *m, size_t n)
{
    return poked_case(m, n, "vocab", 4, &(float){-1}, 4, false);
}
static tg_status char_lm_sample_vocabulary_nan(char *m, size_t n)
{
    return poked_case(m, n, "vocab", 8, &(float){NAN}, 4, false);
}
static tg_status char_lm_sample_vocabulary_duplicate(char *m, size_t n)
{
    return poked_case(m, n, "vocab", 4, &(float){10}, 4, false); /* entry 0 is '\n' = 10 */
}
/* Every logit NaN: the head's bias poisoned. */
static tg_status char_lm_sample_non_finite_logits(char *m, size_t n)
{
    float nans[53];
    for (int i = 0; i < 53; i++)
        nans[i] = NAN;
    return poked_case(m, n, "head.b", 0, nans, sizeof nans, false);
}
static tg_status char_lm_resume_negative_second_moment(char *m, size_t n)
{
    return poked_case(m, n, "adam.v.embed.E", 0, &(float){-1}, 4, true);
}

static tg_status char_lm_save_into_missing_directory(char *m, size_t n)
{
    return char_lm_case(m, n, SMALL_LM_ARGS " --save /nonexistent/dir/x.ckpt" CORPUS);
}
static tg_status char_lm_svg_into_missing_directory(char *m, size_t n)
{
    return char_lm_case(m, n, SMALL_LM_ARGS " --svg /nonexistent/dir/x.svg" CORPUS);
}
static tg_status char_lm_validation_smaller_than_a_batch(char *m, size_t n)
{
    return char_lm_case(m, n, "--hidden 24 --embed 8 --batch 32 --seq 64 --length 4" CORPUS);
}
static tg_status char_lm_num_threads_not_a_number(char *m, size_t n)
{
    return char_lm_env_case(m, n, "TG_NUM_THREADS=abc", SMALL_LM_ARGS CORPUS);
}

typedef struct {
    const char *input;
    hostile_fn run;
    tg_status status;
    const char *message; /* a piece of the message */
} hostile_case;

static const hostile_case cases[] = {
    /* tensors */
    {"tg_tensor_zeros (2,-3)", negative_dimension, TG_ERR_SHAPE, "dimension 1 is negative (-3)"},
    {"tg_tensor_zeros (2^62,4) f32", overflowing_shape, TG_ERR_OVERFLOW, "element count overflows"},
    {"tg_tensor_zeros (2^31,2^31,2^31)", overflowing_product, TG_ERR_OVERFLOW, "element count overflows"},
    {"tg_tensor_zeros (0,2^40,2^40)", zero_dimension_with_overflowing_rest, TG_ERR_OVERFLOW, "element count overflows"},
    {"tg_tensor_zeros (2^29,2^29) f64 (2^61 bytes)", size_beyond_memory, TG_ERR_NOMEM, "this process may use"},
    {"tg_tensor_zeros with 7 dimensions", seven_dimensions, TG_ERR_SHAPE, "7 dimensions (0 to 6 are supported)"},
    {"tg_tensor_zeros with ndim -1", negative_ndim, TG_ERR_SHAPE, "-1 dimensions"},
    {"tg_tensor_zeros of dtype 7", unknown_dtype, TG_ERR_DTYPE, "tg_tensor_zeros: unknown dtype 7"},
    {"tg_tensor_arange(0, 1e300, 1)", arange_too_long, TG_ERR_OVERFLOW, "is too many"},
    {"tg_tensor_arange(0, 1, 0)", arange_zero_step, TG_ERR_ARG, "non-zero step"},
    {"tg_tensor_wrap of NULL data", wrap_null_data, TG_ERR_ARG, "tg_tensor_wrap: data is NULL"},
    {"tg_tensor_from_array of NULL values", from_array_null, TG_ERR_ARG, "tg_tensor_from_array: values is NULL"},
    {"reshape (3,4) to (5,-1)", reshape_wrong_count, TG_ERR_SHAPE, "(3,4) has 12 elements, not a multiple of 5"},
    {"reshape (3,4) to (-1,-1)", reshape_two_unknowns, TG_ERR_ARG, "more than one -1"},
    {"reshape (3,4) to (2^62,4)", reshape_overflowing, TG_ERR_OVERFLOW, "the new shape's element count overflows"},
    {"select index 4 of dimension 1 of (3,4)", select_out_of_range, TG_ERR_ARG, "index 4 is out of range for dimension 1 of (3,4)"},
    {"slice with step 0", slice_zero_step, TG_ERR_ARG, "step must be >= 1 (got 0)"},
    {"slice dimension 2 of (3,4)", slice_bad_dim, TG_ERR_ARG, "dimension 2 is out of range for shape (3,4)"},
    {"expand (3,4) to (3,5)", expand_incompatible, TG_ERR_SHAPE, "cannot broadcast (3,4): dimension 1 is 4, not 5"},
    {"transpose dimension -3 of (3,4)", transpose_bad_dim, TG_ERR_ARG, "dimension -3 is out of range for shape (3,4)"},
    {"reshape (0,3) to (0,2^62,2^62)", reshape_empty_to_overflowing, TG_ERR_OVERFLOW, "tg_view_reshape: the shape's element count overflows"},
    {"tg_tensor_set (2,0) of a (2,2) tensor", set_out_of_bounds, TG_ERR_ARG, "tg_tensor_set: index 2 is out of range for dimension 0 of (2,2)"},
    {"tg_tensor_get (0,-1) of a (2,2) tensor", get_negative_index, TG_ERR_ARG, "tg_tensor_get: index -1 is out of range for dimension 1"},
    {"tg_tensor_get with a NULL index", get_null_index, TG_ERR_ARG, "tg_tensor_get: index is NULL"},
    {"tg_tensor_set_flat 4 of a (2,2) tensor", set_flat_past_the_end, TG_ERR_ARG, "tg_tensor_set_flat: flat index 4 is outside [0, 4)"},
    {"tg_tensor_get_flat -1", get_flat_negative, TG_ERR_ARG, "tg_tensor_get_flat: flat index -1"},
    {"tg_tensor_item of a (2,2) tensor", item_of_four_elements, TG_ERR_SHAPE, "tg_tensor_item: (2,2) has 4 elements, not one"},
    {"tg_tensor_item(NULL)", item_of_null, TG_ERR_ARG, "tg_tensor_item: tensor is NULL"},
    {"tg_tensor_numel(NULL)", numel_of_null, TG_ERR_ARG, "tg_tensor_numel: tensor is NULL"},
    {"tg_tensor_set_flat(NULL, ...)", set_flat_of_null, TG_ERR_ARG, "tg_tensor_set_flat: tensor is NULL"},
    /* the tape and ops */
    {"tg_tape_tensor (2^40,2^40)", tape_tensor_overflow, TG_ERR_OVERFLOW, "tg_tape_tensor: the shape's element count overflows"},
    {"8 MB tensor on a tape limited to 1 MB", tape_memory_limit, TG_ERR_NOMEM, "memory limit of 1048576 bytes reached"},
    {"tg_matmul (5,3) @ (4,10)", matmul_inner_mismatch, TG_ERR_SHAPE, "inner dimensions differ: (5,3) @ (4,10)"},
    {"tg_add (2,3) + (4,3)", broadcast_mismatch, TG_ERR_SHAPE, "tg_add: shapes do not broadcast: (2,3) and (4,3)"},
    {"tg_mean of a (0,3) tensor", mean_of_empty, TG_ERR_SHAPE, "mean of no elements ((0,3))"},
    {"tg_backward on tape B of a loss made on tape A", backward_of_a_loss_of_another_tape, TG_ERR_ARG, "tg_backward: the output belongs to another tape"},
    {"an op on tape B reading a tensor of tape A", op_reading_a_tensor_of_another_tape, TG_ERR_ARG, "tg_mul: input 2 belongs to another tape"},
    {"an op on a tensor made before tg_tape_reset", op_on_a_tensor_from_before_a_reset, TG_ERR_ARG, "tg_tanh: input 1 is stale"},
    {"the same after the arena grew (old chunks)", op_on_a_stale_tensor_after_the_arena_grew, TG_ERR_ARG, "tg_tanh: input 1 is stale"},
    {"tg_backward of a loss made before tg_tape_reset", backward_of_a_loss_from_before_a_reset, TG_ERR_ARG, "tg_backward: the output is stale"},
    {"tg_gather_columns id -1, table (4,5)", gather_negative_id, TG_ERR_ARG, "id -1 at position 1 is outside [0, 5)"},
    {"tg_gather_columns id 5, table (4,5)", gather_id_equal_to_vocabulary, TG_ERR_ARG, "id 5 at position 0 is outside [0, 5)"},
    {"tg_gather_columns id INT32_MAX", gather_id_int32_max, TG_ERR_ARG, "id 2147483647 at position 2"},
    {"tg_gather_columns n = -1", gather_negative_count, TG_ERR_ARG, "n = -1"},
    {"tg_gather_columns ids NULL, n = 3", gather_null_ids, TG_ERR_ARG, "ids NULL"},
    {"tg_cross_entropy target -2 of 5 classes", cross_entropy_negative_target, TG_ERR_ARG, "target -2 at position 1 is outside [0, 5)"},
    {"tg_cross_entropy target 5 of 5 classes", cross_entropy_target_equal_to_classes, TG_ERR_ARG, "target 5 at position 2 is outside [0, 5)"},
    {"tg_cross_entropy target INT32_MIN", cross_entropy_target_int32_min, TG_ERR_ARG, "target -2147483648 at position 0"},
    {"tg_cross_entropy 2 targets for 3 positions", cross_entropy_wrong_count, TG_ERR_SHAPE, "2 targets for logits (5,3)"},
    {"tg_cross_entropy targets NULL", cross_entropy_null_targets, TG_ERR_ARG, "targets is NULL"},
    {"tg_cross_entropy class axis 2 of (5,3)", cross_entropy_bad_axis, TG_ERR_ARG, "axis 2"},
    /* layers */
    {"tg_embedding_forward id 1000, vocabulary 10", embedding_id_out_of_range, TG_ERR_ARG, "id 1000 at position 3 is outside [0, 10)"},
    {"tg_embedding_forward m = 0", embedding_zero_rows, TG_ERR_ARG, "m = 0"},
    {"tg_embedding_forward m = 2^62, T_x = 8", embedding_overflowing_count, TG_ERR_ARG, "m = 4611686018427387904"},
    {"tg_recurrent_new LSTM n_a = 0", recurrent_zero_hidden, TG_ERR_ARG, "n_a = 0"},
    {"tg_recurrent_new LSTM n_a = -5", recurrent_negative_hidden, TG_ERR_ARG, "n_a = -5"},
    {"tg_recurrent_new RNN n_a = INT_MAX", recurrent_int_max_hidden, TG_ERR_OVERFLOW, "the parameter size overflows"},
    {"tg_recurrent_new LSTM n_x = n_a = 2^20 (32 TB)", recurrent_lstm_beyond_memory, TG_ERR_NOMEM, "this process may use"},
    {"tg_tensor_zeros of 1 GB under a 512 MB RLIMIT_DATA", tensor_beyond_rlimit_data, TG_ERR_NOMEM, "more than the 0.537 GB this process may use: its RLIMIT_DATA"},
    {"tg_recurrent_new LSTM 1024 -> 4096 (char_lm --hidden 4096 --embed 1024) under a 512 MB RLIMIT_AS", lstm_beyond_rlimit_as, TG_ERR_NOMEM, "more than the 0.537 GB this process may use (its RLIMIT_AS)"},
    {"tg_recurrent_new GRU 0 layers", recurrent_zero_layers, TG_ERR_ARG, "num_layers = 0"},
    {"tg_recurrent_new GRU n_a = 2^20, INT_MAX layers", recurrent_int_max_layers, TG_ERR_OVERFLOW, "the parameter size overflows"},
    {"tg_recurrent_new cell 9", recurrent_unknown_cell, TG_ERR_ARG, "unknown cell 9"},
    {"tg_recurrent_forward x (5,2,7) into n_x = 3", recurrent_wrong_input_rows, TG_ERR_SHAPE, "x is (5,2,7), expected 3 dimensions with 3 rows"},
    {"tg_linear_new n_in = 0", linear_zero_inputs, TG_ERR_ARG, "n_in = 0, n_out = 3 (each must be >= 1)"},
    {"tg_embedding_new vocabulary 0", embedding_zero_vocabulary, TG_ERR_ARG, "vocab = 0, dim = 3 (each must be >= 1)"},
    {"tg_states_new m = 0", states_zero_batch, TG_ERR_ARG, "batch size m = 0 (needs m >= 1)"},
    {"tg_states_new m = 2^61", states_huge_batch, TG_ERR_OVERFLOW, "element count overflows"},
    /* optimizers */
    {"tg_adam_step, gradient NaN", adam_nan_gradient, TG_ERR_NONFINITE, "gradient of 'W' is nan at index 2"},
    {"tg_sgd_step, gradient -inf", sgd_infinite_gradient, TG_ERR_NONFINITE, "gradient of 'W' is -inf at index 2"},
    {"tg_adam_step, gradient 3e38 (f32 update overflows)", adam_gradient_overflowing_update, TG_ERR_NONFINITE, "the update of 'W' at index 2 (element (1,0)) would not be finite"},
    {"tg_clip_grad_norm, gradient inf", clip_infinite_gradient, TG_ERR_NONFINITE, "gradient of 'W' is inf at index 2"},
    {"tg_adam_set_lr(NaN)", adam_nan_learning_rate, TG_ERR_ARG, "learning rate nan is not a finite number >= 0"},
    /* files and text */
    {".npy shape (2^62, 4)", npy_overflowing_shape, TG_ERR_FORMAT, "shape (4611686018427387904, 4) of '<f8' overflows"},
    {".npy shape (99999999999999999999,)", npy_dimension_beyond_int64, TG_ERR_FORMAT, "a dimension in the header overflows"},
    {".npy shape (-1,)", npy_negative_dimension, TG_ERR_FORMAT, "expected a non-negative integer"},
    {".npy shape (1000,1000) with 64 data bytes", npy_data_shorter_than_shape, TG_ERR_FORMAT, "needs 4000000 data bytes, the file has 64"},
    {".npy with 7 dimensions", npy_seven_dimensions, TG_ERR_FORMAT, "more than 6 dimensions"},
    {"checkpoint tensor of shape (2^62,2^62)", checkpoint_overflowing_shape, TG_ERR_FORMAT, "size overflows"},
    {"checkpoint dimension 2^64-1", checkpoint_dimension_beyond_int64, TG_ERR_FORMAT, "dimension 0 of 18446744073709551615"},
    {"checkpoint integer of 2^64-1 bytes", checkpoint_huge_byte_count, TG_ERR_FORMAT, "says it holds 18446744073709551615 bytes"},
    {"checkpoint claiming 2^32-1 entries", checkpoint_absurd_entry_count, TG_ERR_FORMAT, "claims 4294967295 entries"},
    {"checkpoint tensor with 1000 dimensions", checkpoint_too_many_dimensions, TG_ERR_FORMAT, "has 1000 dimensions"},
    {"checkpoint of 10^6 entries, the last named as the first", checkpoint_of_a_million_entries_with_a_duplicate, TG_ERR_FORMAT, "holds two entries named 'e0'"},
    {"checkpoint of 10^6 + 1 entries", checkpoint_of_too_many_entries, TG_ERR_FORMAT, "holds 1000001 entries, more than the 1000000 a checkpoint may hold"},
    {"tg_checkpoint_save of a tensor with 7 dimensions", checkpoint_save_seven_dimensions, TG_ERR_SHAPE, "tensor 'W': 7 dimensions (0 to 6 are supported)"},
    {"tg_checkpoint_save of a tensor with ndim -1", checkpoint_save_negative_ndim, TG_ERR_SHAPE, "tensor 'W': -1 dimensions"},
    {"tg_checkpoint_save of strides reaching 2^63", checkpoint_save_absurd_strides, TG_ERR_OVERFLOW, "reach beyond memory arithmetic"},
    {"tg_npy_save of a tensor with 7 dimensions", npy_save_seven_dimensions, TG_ERR_SHAPE, "tg_npy_save: 7 dimensions"},
    {".npy with a NUL byte inside its dtype", npy_nul_in_dtype, TG_ERR_FORMAT, "control byte 0x00 inside a string"},
    {".npy with a NUL byte inside a key", npy_nul_in_key, TG_ERR_FORMAT, "control byte 0x00 inside a string"},
    {".npy of the empty shape (0, 2^30, 2^30)", npy_empty_of_huge_shape, TG_OK, "loaded (0,1073741824,1073741824)"},
    {"tg_npy_load of a FIFO", npy_load_of_a_fifo, TG_ERR_IO, "is not a regular file"},
    {"tg_checkpoint_load of a FIFO", checkpoint_load_of_a_fifo, TG_ERR_IO, "is not a regular file"},
    {"tg_text_load of a FIFO", text_load_of_a_fifo, TG_ERR_IO, "is not a regular file"},
    {"tg_npz_load of a FIFO", npz_load_of_a_fifo, TG_ERR_IO, "is not a regular file"},
    {"tg_text_load of /dev/zero", text_load_of_dev_zero, TG_ERR_IO, "'/dev/zero' is not a regular file"},
    {"text of 0 bytes", text_empty, TG_ERR_FORMAT, "the text is empty"},
    {"text of one distinct byte", text_one_distinct_byte, TG_ERR_FORMAT, "single distinct byte"},
    {"batcher m = 0", batcher_zero_sequences, TG_ERR_ARG, "m=0"},
    {"batcher T = -4", batcher_negative_steps, TG_ERR_ARG, "T=-4"},
    {"batcher 2 x 3 steps over 6 ids", batcher_batch_beyond_text, TG_ERR_ARG, "cannot fill one batch"},
    {"batcher m = T = INT_MAX", batcher_int_max_sizes, TG_ERR_ARG, "cannot fill one batch"},
    {"batcher seek to 2^62 in shuffled order", batcher_seek_beyond_reach, TG_ERR_ARG, "window draws a seek may take"},
    /* NULL */
    {"tg_npy_load(NULL)", null_npy_path, TG_ERR_ARG, "path is NULL"},
    {"tg_npy_save(path, NULL)", null_npy_tensor, TG_ERR_ARG, "tg_npy_save: NULL argument"},
    {"tg_text_load(NULL)", null_text_path, TG_ERR_ARG, "path is NULL"},
    {"tg_checkpoint_load(NULL, ...)", null_checkpoint_path, TG_ERR_ARG, "path is NULL"},
    {"tg_params_add of a NULL tensor", null_parameter, TG_ERR_ARG, "tg_params_add: NULL argument"},
    {"tg_lr_at(NULL, 3)", null_schedule, TG_ERR_ARG, "schedule is NULL"},
    {"tg_sgd_new with NULL options", null_sgd_options, TG_ERR_ARG, "options is NULL"},
    /* char_lm */
    {"char_lm --hidden 1000000", char_lm_hidden_million, TG_ERR_ARG, "--hidden needs an integer in [1, 8192] (got '1000000')"},
    {"char_lm --hidden -1", char_lm_hidden_negative, TG_ERR_ARG, "--hidden needs an integer in [1, 8192] (got '-1')"},
    {"char_lm --seq 0", char_lm_seq_zero, TG_ERR_ARG, "--seq needs an integer in [1, 100000] (got '0')"},
    {"char_lm --seq 99999999999999999999999", char_lm_seq_beyond_long, TG_ERR_ARG, "--seq needs an integer"},
    {"char_lm --seq 100000 --batch 100000", char_lm_batch_beyond_text, TG_ERR_ARG, "cannot fill one batch"},
    {"char_lm --hidden 8192 --embed 8192 --layers 16", char_lm_model_beyond_memory, TG_ERR_ARG, "memory"},
    {"char_lm --resume of a step-20 checkpoint with --steps 10", char_lm_resume_beyond_steps, TG_ERR_ARG, "is at step 20, beyond --steps 10"},
    {"char_lm --resume with a text of as many distinct bytes, others", char_lm_resume_same_size_other_vocabulary, TG_ERR_ARG, "has another vocabulary than the text"},
    {"char_lm --resume with a text of another vocabulary size", char_lm_resume_other_vocabulary_size, TG_ERR_ARG, "has a vocabulary of 53 characters, the text"},
    {"char_lm --resume, checkpoint with adam.v = -1", char_lm_resume_negative_second_moment, TG_ERR_ARG, "invalid optimizer state: 'adam.v.embed.E' is -1 at index 0"},
    {"char_lm --sample, checkpoint vocabulary entry 300", char_lm_sample_vocabulary_of_300, TG_ERR_ARG, "its vocabulary is invalid: entry 0 is 300"},
    {"char_lm --sample, checkpoint vocabulary entry -1", char_lm_sample_vocabulary_of_minus_one, TG_ERR_ARG, "its vocabulary is invalid: entry 1 is -1"},
    {"char_lm --sample, checkpoint vocabulary entry NaN", char_lm_sample_vocabulary_nan, TG_ERR_ARG, "its vocabulary is invalid: entry 2 is nan"},
    {"char_lm --sample, checkpoint vocabulary with a repeated byte", char_lm_sample_vocabulary_duplicate, TG_ERR_ARG, "its vocabulary is invalid: entry 1 is 10"},
    {"char_lm --sample, every logit NaN", char_lm_sample_non_finite_logits, TG_ERR_ARG, "the model produced non-finite logits"},
    {"char_lm --save into a missing directory", char_lm_save_into_missing_directory, TG_ERR_ARG, "cannot save the checkpoint: checkpoint /nonexistent/dir/x.ckpt: cannot create a temporary file"},
    {"char_lm --svg into a missing directory", char_lm_svg_into_missing_directory, TG_ERR_ARG, "cannot write the loss curve /nonexistent/dir/x.svg: No such file or directory"},
    {"char_lm, validation part smaller than one batch", char_lm_validation_smaller_than_a_batch, TG_OK, "no validation loss: the last 5 % of the text (995 characters) cannot fill one batch"},
    {"TG_NUM_THREADS=abc char_lm", char_lm_num_threads_not_a_number, TG_OK, "tapegrad: TG_NUM_THREADS='abc' is not a whole number >= 1"},
};

START_TEST(every_hostile_input_gets_its_error)
{
    const hostile_case *c = &cases[_i];
    char message[1024] = "";
    tg_clear_error();
    tg_status s = c->run(message, sizeof message);
    if (getenv("TG_HOSTILE_LIST"))
        fprintf(stderr, "| %s | %s | %s |\n", c->input, tg_status_name(s), message);
    ck_assert_msg(s == c->status && strstr(message, c->message) != NULL,
                  "%s: got %s '%s', expected %s containing '%s'", c->input, tg_status_name(s),
                  message, tg_status_name(c->status), c->message);
}
END_TEST

/* ---- the table in tests/README.md ------------------------------------------------- */

#define TABLE_BEGIN "<!-- hostile-table: begin (make hostile-table-update) -->\n"
#define TABLE_END "<!-- hostile-table: end -->\n"

/* The markdown table of `cases`, malloc'd. */
static char *hostile_table(void)
{
    size_t size = 256, n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        size += strlen(cases[i].input) + strlen(cases[i].message) + 64;
    char *table = malloc(size);
    ck_assert_ptr_nonnull(table);
    n += (size_t)snprintf(table + n, size - n,
                          "| input | status | the message contains |\n|---|---|---|\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        n += (size_t)snprintf(table + n, size - n, "| %s | %s | `%s` |\n", cases[i].input,
                              tg_status_name(cases[i].status), cases[i].message);
    return table;
}

/* TG_HOSTILE_TABLE=print prints the table (make hostile-table), =update
 * writes it between the markers of tests/README.md; otherwise the README's
 * table must be the one the cases make. */
START_TEST(the_table_in_tests_readme_is_current)
{
    const char *mode = getenv("TG_HOSTILE_TABLE");
    char *table = hostile_table();
    if (mode && strcmp(mode, "print") == 0) {
        fputs(table, stdout);
        fflush(stdout);
        free(table);
        return;
    }
    size_t size;
    unsigned char *readme = tu_read_file("README.md", &size);
    readme[size] = '\0';
    char *begin = strstr((char *)readme, TABLE_BEGIN), *end = begin ? strstr(begin, TABLE_END) : NULL;
    ck_assert_msg(begin && end, "tests/README.md has no markers for the hostile-input table");
    begin += strlen(TABLE_BEGIN);
    if (mode && strcmp(mode, "update") == 0) {
        FILE *f = fopen("README.md", "wb");
        ck_assert_ptr_nonnull(f);
        fwrite(readme, 1, (size_t)(begin - (char *)readme), f);
        fputs(table, f);
        fputs(end, f);
        ck_assert_int_eq(fclose(f), 0);
    } else {
        ck_assert_msg((size_t)(end - begin) == strlen(table) &&
                          memcmp(begin, table, strlen(table)) == 0,
                      "the hostile-input table of tests/README.md is not the one "
                      "tests/test_hostile.c makes: run make hostile-table-update");
    }
    free(readme);
    free(table);
}
END_TEST

/* ---- numerical faults in char_lm ---------------------------------------------------- */

#define SMALL_LM                                                                              \
    CHAR_LM " --hidden 24 --embed 8 --batch 4 --seq 12 --print-every 1000 --eval-every 1000" \
            " --sample-every 100000 --length 4 --svg ''" CORPUS

static void temp_path(char *path, size_t size, const char *tag)
{
    snprintf(path, size, "/tmp/tg_hostile_%d_%s.ckpt", (int)getpid(), tag);
    remove(path);
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

static int count(const char *text, const char *piece)
{
    int n = 0;
    for (const char *p = strstr(text, piece); p; p = strstr(p + 1, piece))
        n++;
    return n;
}

/* Adam's steps are bounded by the rate: --lr 1e6 makes the loss explode (to
 * about 5e5 nats per character) without ever overflowing, so it is caught by
 * --max-loss; stop ends the run at once and saves nothing. */
START_TEST(huge_learning_rate_is_reported_and_stop_saves_nothing)
{
    char save[128], command[1024], out[16384];
    temp_path(save, sizeof save, "stop");
    snprintf(command, sizeof command,
             SMALL_LM " --steps 8 --lr 1e6 --on-nonfinite stop --save %s", save);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "char_lm: step 2 not applied: the loss is ") &&
                      strstr(out, "above --max-loss 100: training diverges") &&
                      strstr(out, "stopping at step 2; nothing saved"),
                  "%s", out);
    ck_assert(!file_exists(save));
}
END_TEST

START_TEST(skip_gives_up_after_max_faults_in_a_row)
{
    char save[128], command[1024], out[16384];
    temp_path(save, sizeof save, "skip");
    snprintf(command, sizeof command,
             SMALL_LM " --steps 50 --lr 1e6 --on-nonfinite skip --max-faults 3 --save %s", save);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 1);
    ck_assert_int_eq(count(out, "skipped the batch of step"), 2);
    ck_assert_msg(strstr(out, "3 steps in a row were not applied (--max-faults)"), "%s", out);
    ck_assert(!file_exists(save));
}
END_TEST

/* restore returns to the snapshot and halves the rate until the loss stays
 * below --max-loss; the halvings are saved, and a run stopped and resumed at
 * a snapshot boundary ends bit for bit where the uninterrupted run does. */
START_TEST(restore_rolls_back_halves_the_rate_and_resumes_exactly)
{
    char full[128], part[128], resumed[128], command[1024], out[32768];
    temp_path(full, sizeof full, "full");
    temp_path(part, sizeof part, "part");
    temp_path(resumed, sizeof resumed, "resumed");
    const char *args = " --steps 40 --lr 1e3 --on-nonfinite restore --snapshot-every 10";
    snprintf(command, sizeof command, SMALL_LM "%s --save %s", args, full);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 0);
    int restores = count(out, "char_lm: restored the state of step ");
    ck_assert_msg(restores >= 1, "%s", out);
    int64_t halvings = -1;
    ck_assert_int_eq(tg_checkpoint_read_int(full, "lr_halvings", &halvings), TG_OK);
    ck_assert_int_eq(halvings, restores);
    /* every restore halves the rate once more */
    char expected[64];
    snprintf(expected, sizeof expected, "learning rate x%g", ldexp(1.0, -restores));
    ck_assert_msg(strstr(out, expected), "no '%s' in:\n%s", expected, out);

    /* Stopped at a snapshot (20), or between two (15: the fault at step 20
     * restores to step 10, whose snapshot the checkpoint of step 15 holds). */
    for (int stop = 20; stop >= 15; stop -= 5) {
        snprintf(command, sizeof command, SMALL_LM "%s --stop-after %d --save %s", args, stop,
                 part);
        ck_assert_int_eq(tu_run(command, out, sizeof out), 0);
        snprintf(command, sizeof command, SMALL_LM "%s --resume %s --save %s", args, part,
                 resumed);
        ck_assert_int_eq(tu_run(command, out, sizeof out), 0);
        size_t na, nb;
        unsigned char *a = tu_read_file(full, &na), *b = tu_read_file(resumed, &nb);
        ck_assert_msg(na == nb && memcmp(a, b, na) == 0, "the run resumed at %d differs", stop);
        free(a), free(b);
    }
    remove(full), remove(part), remove(resumed);
}
END_TEST

/* A NaN in the embedding of a checkpoint: every step's loss is NaN; the
 * replay in anomaly mode names the op that produced the first NaN, the
 * optimizer never runs on it, and --anomaly reports it at once. */
START_TEST(nan_in_a_checkpoint_is_traced_to_its_op)
{
    char good[128], bad[128], command[1024], out[16384];
    temp_path(good, sizeof good, "good");
    temp_path(bad, sizeof bad, "bad");
    snprintf(command, sizeof command, SMALL_LM " --steps 2 --save %s", good);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 0);

    /* Poison the first value of 'embed.E' (f32, 2 dimensions), fix the CRCs. */
    FILE *f = fopen(good, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t data[1 << 20];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    uint8_t *name = NULL;
    for (size_t i = 0; !name && i + 7 <= n; i++)
        if (memcmp(data + i, "embed.E", 7) == 0)
            name = data + i;
    ck_assert_ptr_nonnull(name);
    uint8_t *payload = name + 7 + 4 + 4 + 2 * 8 + 8 + 4;
    memcpy(payload, (const uint8_t[]){0x00, 0x00, 0xc0, 0x7f}, 4); /* quiet NaN */
    fuzz_fix_checkpoint(data, n);
    f = fopen(bad, "wb");
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);

    snprintf(command, sizeof command,
             SMALL_LM " --steps 10 --resume %s --max-faults 2 --save %s", bad, good);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "char_lm: step 3 not applied: the loss is nan") &&
                      strstr(out, "replayed in anomaly mode: anomaly: tg_gather_columns "
                                  "produced a non-finite value") &&
                      strstr(out, "2 steps in a row"),
                  "%s", out);
    /* skipping every step to the end is not a run that ended as asked */
    snprintf(command, sizeof command, SMALL_LM " --steps 4 --resume %s --save %s", bad, good);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "char_lm: none of the 2 steps was applied"), "%s", out);
    snprintf(command, sizeof command,
             SMALL_LM " --steps 10 --resume %s --anomaly --on-nonfinite stop --save %s", bad,
             good);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "char_lm: step 3 not applied: anomaly: tg_gather_columns "
                              "produced a non-finite value"),
                  "%s", out);
    remove(good), remove(bad);
}
END_TEST

/* char_lm rebuilt the model from a checkpoint's sizes without checking them:
 * 17 layers overran its arrays of 16 states, and a hidden size of 2^32 + 1
 * became 1. Both are refused now, for sampling and for resuming. */
START_TEST(checkpoint_sizes_outside_the_options_are_refused)
{
    static const struct {
        const char *name;
        int64_t value;
        const char *message;
    } cases[] = {
        {"layers", 17, "'layers' is 17, outside [1, 16]"},
        {"hidden", (INT64_C(1) << 32) + 1, "'hidden' is 4294967297, outside [1, 8192]"},
        {"seq", -3, "'seq' is -3, outside [1, 100000]"},
        {"cell", 7, "'cell' is 7, outside [0, 2]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128], command[1024], out[4096];
        temp_path(path, sizeof path, "sizes");
        tg_checkpoint_int meta[] = {{"step", 0},      {"cell", 1},       {"layers", 1},
                                    {"hidden", 24},   {"embed", 8},      {"vocab_size", 20},
                                    {"batch", 4},     {"seq", 12},       {"lr_halvings", 0}};
        for (size_t k = 0; k < sizeof meta / sizeof meta[0]; k++)
            if (strcmp(meta[k].name, cases[i].name) == 0)
                meta[k].value = cases[i].value;
        ck_assert_int_eq(tg_checkpoint_save(path, NULL, NULL, meta, 9), TG_OK);
        const char *modes[2] = {" --sample --load %s", " --steps 2 --resume %s" CORPUS};
        for (int mode = 0; mode < 2; mode++) {
            char args[256];
            snprintf(args, sizeof args, modes[mode], path);
            snprintf(command, sizeof command, CHAR_LM " --save '' %s", args);
            int code = tu_run(command, out, sizeof out);
            ck_assert_msg(code == 1 && strstr(out, cases[i].message), "%s exited with %d:\n%s",
                          command, code, out);
        }
        remove(path);
    }
}
END_TEST

/* ---- the fuzz inputs -------------------------------------------------------------- */

typedef const char *(*fuzz_fn)(const uint8_t *data, size_t size);

/* Feed every file of fuzz/<dir>/ to fn; returns how many there were. */
static int replay(const char *dir, fuzz_fn fn)
{
    char path[512];
    snprintf(path, sizeof path, "fuzz/%s", dir);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot open tests/%s", path);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "fuzz/%s/%s", dir, entry->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open tests/%s", path);
        uint8_t data[65536];
        size_t n = fread(data, 1, sizeof data, f);
        fclose(f);
        const char *broken = fn(data, n);
        ck_assert_msg(broken == NULL, "tests/%s: %s", path, broken);
        count++;
    }
    closedir(d);
    return count;
}

START_TEST(committed_fuzz_inputs_pass_the_harness)
{
    ck_assert_int_ge(replay("npy", fuzz_npy_one), 5);
    ck_assert_int_ge(replay("checkpoint", fuzz_checkpoint_one), 4);
    ck_assert_int_ge(replay("text", fuzz_text_one), 2);
    ck_assert_int_ge(replay("cli", fuzz_cli_one), 3);
}
END_TEST

Suite *suite_hostile(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("inputs");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, every_hostile_input_gets_its_error, 0,
                        (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, committed_fuzz_inputs_pass_the_harness);
    suite_add_tcase(s, tc);
    TCase *table = tcase_create("table");
    tcase_add_test(table, the_table_in_tests_readme_is_current);
    suite_add_tcase(s, table);
    TCase *faults = tcase_create("faults");
    tcase_set_timeout(faults, 300);
    tcase_add_test(faults, huge_learning_rate_is_reported_and_stop_saves_nothing);
    tcase_add_test(faults, skip_gives_up_after_max_faults_in_a_row);
    tcase_add_test(faults, restore_rolls_back_halves_the_rate_and_resumes_exactly);
    tcase_add_test(faults, nan_in_a_checkpoint_is_traced_to_its_op);
    tcase_add_test(faults, checkpoint_sizes_outside_the_options_are_refused);
    suite_add_tcase(s, faults);
    return s;
}
