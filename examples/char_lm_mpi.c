/* char_lm's data parallelism over MPI: the hooks of char_lm_mpi.h (read it
 * first), built only by `make mpi`. Every function is collective (all ranks
 * call it at the same point) unless it says otherwise, and falls back to the
 * one-process behaviour when the job has a single rank. */
#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <unistd.h>

#include "char_lm_mpi.h"

enum { TAG_MESSAGE = 1, MESSAGE_MAX = 2048 };

static int hold_stderr(lm_dist *d);
static void forget_held(lm_dist *d);
static void report_failure(lm_dist *d, int first);
static int reserve(lm_dist *d, size_t bytes);
static tg_tensor contiguous(tg_dtype dtype, int64_t rows, int64_t cols, void *data);
static size_t states_bytes(const lm_dist *d, const tg_recurrent *rnn);
static uint64_t values_hash(const tg_params *set);

int lm_dist_start(lm_dist *d, bool mpi, int *argc, char ***argv)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    if (!mpi)
        return lm_dist_check_launcher(false);
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "char_lm: MPI_Init failed\n");
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    /* Only rank 0 speaks; a rank whose output cannot be held back keeps it. */
    if (d->rank != 0 && (!freopen("/dev/null", "w", stdout) || hold_stderr(d) != 0))
        fprintf(stderr, "char_lm: rank %d: cannot hold back its output\n", d->rank);
    return 0;
}

int lm_dist_end(lm_dist *d, int status)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized)
        MPI_Finalize();
    free(d->inputs);
    free(d->targets);
    free(d->scratch);
    if (d->held)
        fclose(d->held);
    return status;
}

int lm_dist_agree(lm_dist *d, bool failed)
{
    if (d->size == 1)
        return failed ? -1 : 0;
    int mine = failed ? d->rank : d->size, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first < d->size)
        report_failure(d, first);
    forget_held(d);
    return first < d->size ? -1 : 0;
}

int lm_dist_setup(lm_dist *d, int batch, int seq, const tg_recurrent *rnn)
{
    d->local_batch = batch;
    d->seq = seq;
    if (d->size == 1)
        return 0;
    if (batch % d->size != 0) {
        fprintf(stderr, "char_lm: --batch %d does not split over %d ranks: give a multiple of "
                "%d (rank r takes streams r, r+%d, ...)\n", batch, d->size, d->size, d->size);
        return -1;
    }
    d->local_batch = batch / d->size;
    size_t ids = (size_t)d->local_batch * (size_t)seq;
    d->inputs = malloc(ids * sizeof *d->inputs);
    d->targets = malloc(ids * sizeof *d->targets);
    if (!d->inputs || !d->targets) {
        fprintf(stderr, "char_lm: rank %d: out of memory for its part of a batch\n", d->rank);
        return -1;
    }
    return reserve(d, states_bytes(d, rnn) * (size_t)(d->size + 1)); /* for keep_states */
}

/* Not collective. */
int64_t lm_dist_rows(lm_dist *d, const int32_t *inputs, const int32_t *targets,
                     const int32_t **my_inputs, const int32_t **my_targets)
{
    *my_inputs = inputs;
    *my_targets = targets;
    if (d->size == 1)
        return d->local_batch;
    size_t row = (size_t)d->seq * sizeof *inputs;
    for (int j = 0; j < d->local_batch; j++) {
        size_t stream = (size_t)(d->rank + j * d->size);
        memcpy(d->inputs + (size_t)j * d->seq, inputs + stream * d->seq, row);
        memcpy(d->targets + (size_t)j * d->seq, targets + stream * d->seq, row);
    }
    *my_inputs = d->inputs;
    *my_targets = d->targets;
    return d->local_batch;
}

/* Not collective. Column j of a view is stream rank + j*size. */
const tg_state *lm_dist_states(lm_dist *d, const tg_recurrent *rnn, const tg_state *carried)
{
    if (d->size == 1)
        return carried;
    for (int k = 0; k < rnn->num_layers; k++) {
        tg_tensor *both[2] = {carried[k].a, carried[k].c};
        tg_tensor *views[2] = {NULL, NULL};
        for (int w = 0; w < 2; w++)
            if (both[w] && tg_view_slice(&d->columns[k][w], both[w], 1, d->rank,
                                         both[w]->shape[1], d->size) == TG_OK)
                views[w] = &d->columns[k][w];
        d->init[k] = (tg_state){views[0], views[1]};
    }
    return d->init;
}

int lm_dist_reduce(lm_dist *d, const tg_params *params, bool failed, tg_status *tape,
                   double *loss)
{
    if (d->size == 1)
        return failed ? -1 : 0;
    /* One small sum first, so that no rank sends gradients the others
     * would not use: failures, NaN/Inf found by a tape, the losses. */
    double mine[3] = {failed, *tape == TG_ERR_NONFINITE, failed ? 0 : *loss}, sum[3];
    MPI_Allreduce(mine, sum, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (sum[0] > 0)
        return lm_dist_agree(d, failed);
    *loss = sum[2] / d->size;
    if (sum[1] > 0)
        *tape = TG_ERR_NONFINITE;
    tg_dtype dtype;
    int64_t count;
    void *grads = tg_params_grad_buffer(params, &dtype, &count);
    if (!grads) { /* char_lm packs the set before the first step: a bug */
        fprintf(stderr, "char_lm: %s\n", tg_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    bool f32 = dtype == TG_F32;
    MPI_Allreduce(MPI_IN_PLACE, grads, (int)count, f32 ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
    double scale = 1.0 / d->size; /* the sum of R means -> the mean over the batch */
    for (int64_t i = 0; i < count; i++) {
        if (f32)
            ((float *)grads)[i] *= (float)scale;
        else
            ((double *)grads)[i] *= scale;
    }
    forget_held(d); /* what this step said is not needed any more */
    return 0;
}

int lm_dist_keep_states(lm_dist *d, const tg_recurrent *rnn, tg_state *carried,
                        const tg_state *final)
{
    if (d->size == 1)
        return tg_states_keep(rnn, carried, final) == TG_OK ? 0 : -1;
    /* This rank's states, one after another, then every rank's. */
    size_t per_rank = states_bytes(d, rnn), es = tg_dtype_size(rnn->dtype), off = 0;
    int64_t n_a = rnn->n_a, m = d->local_batch;
    unsigned char *mine = d->scratch, *all = d->scratch + per_rank;
    for (int k = 0; k < rnn->num_layers; k++)
        for (int w = 0; w < (final[k].c ? 2 : 1); w++, off += (size_t)(n_a * m) * es) {
            tg_tensor to = contiguous(rnn->dtype, n_a, m, mine + off);
            tg_tensor_copy_into(&to, w ? final[k].c : final[k].a);
        }
    MPI_Allgather(mine, (int)per_rank, MPI_BYTE, all, (int)per_rank, MPI_BYTE, MPI_COMM_WORLD);
    for (int q = 0; q < d->size; q++) {
        off = (size_t)q * per_rank;
        for (int k = 0; k < rnn->num_layers; k++)
            for (int w = 0; w < (final[k].c ? 2 : 1); w++, off += (size_t)(n_a * m) * es) {
                tg_tensor from = contiguous(rnn->dtype, n_a, m, all + off), to;
                tg_tensor *dst = w ? carried[k].c : carried[k].a;
                tg_view_slice(&to, dst, 1, q, dst->shape[1], d->size);
                tg_tensor_copy_into(&to, &from);
            }
    }
    return 0;
}

int lm_dist_broadcast(lm_dist *d, const tg_params *state, tg_rng *rng,
                      const lm_dist_fact *facts, int n_facts)
{
    if (d->size == 1)
        return 0;
    enum { MAX_FACTS = 15 };
    size_t bytes = 0;
    bool bad = tg_params_flat_size(state, &bytes) != TG_OK || n_facts > MAX_FACTS;
    int n = bad ? 1 : n_facts + 1;
    double v[MAX_FACTS + 1] = {(double)bytes}, lo[MAX_FACTS + 1], hi[MAX_FACTS + 1];
    for (int i = 1; i < n; i++)
        v[i] = facts[i - 1].value;
    MPI_Allreduce(MPI_IN_PLACE, &n, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(v, lo, n, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(v, hi, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++)
        if (lo[i] != hi[i]) {
            if (d->rank == 0)
                fprintf(stderr, "char_lm: the %d ranks did not start alike: %s is %.12g on one "
                        "and %.12g on another (start every rank with the same options, text "
                        "and checkpoint)\n", d->size,
                        i ? facts[i - 1].name : "the size of the state in bytes", lo[i], hi[i]);
            return -1;
        }
    if (!bad && bytes > INT_MAX)
        fprintf(stderr, "char_lm: the state (%zu bytes) is too large for one MPI_Bcast\n", bytes);
    if (lm_dist_agree(d, bad || bytes > INT_MAX || reserve(d, bytes) != 0) != 0)
        return -1;
    if (d->rank == 0)
        tg_params_flatten(state, d->scratch, bytes);
    MPI_Bcast(d->scratch, (int)bytes, MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(rng, (int)sizeof *rng, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (d->rank != 0)
        tg_params_unflatten(state, d->scratch, bytes);
    return 0;
}

int lm_dist_check_same(lm_dist *d, const tg_params *set)
{
    if (d->size == 1)
        return 0;
    uint64_t mine = values_hash(set), lo, hi;
    MPI_Allreduce(&mine, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi && d->rank == 0)
        fprintf(stderr, "char_lm: the ranks' models differ after training (their sums of the "
                "gradients were not bit-identical); nothing saved\n");
    return lo == hi ? 0 : -1;
}

/* ---- helpers ------------------------------------------------------------------------- */

/* Ranks other than 0 write their error output into an unlinked temporary
 * file: nothing of it is shown unless the rank fails, and then rank 0
 * shows it (report_failure). */
static int hold_stderr(lm_dist *d)
{
    d->held = tmpfile();
    if (!d->held)
        return -1;
    fflush(stderr);
    return dup2(fileno(d->held), STDERR_FILENO) < 0 ? -1 : 0;
}

static void forget_held(lm_dist *d)
{
    fflush(stderr);
    if (d->held && lseek(STDERR_FILENO, 0, SEEK_CUR) > 0 && ftruncate(STDERR_FILENO, 0) == 0)
        lseek(STDERR_FILENO, 0, SEEK_SET);
}

/* The first failing rank sends what it wrote to rank 0, which prints it
 * once, naming the rank (rank 0's own message is already on its stderr). */
static void report_failure(lm_dist *d, int first)
{
    char text[MESSAGE_MAX + 1] = "";
    if (first == 0)
        return;
    if (d->rank == first) {
        fflush(stderr);
        ssize_t n = d->held ? pread(STDERR_FILENO, text, MESSAGE_MAX, 0) : 0;
        MPI_Send(text, n > 0 ? (int)n : 0, MPI_CHAR, 0, TAG_MESSAGE, MPI_COMM_WORLD);
    } else if (d->rank == 0) {
        MPI_Status st;
        int n = 0;
        MPI_Recv(text, MESSAGE_MAX, MPI_CHAR, first, TAG_MESSAGE, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, MPI_CHAR, &n);
        text[n > 0 ? n : 0] = '\0';
        if (!text[0])
            fprintf(stderr, "char_lm: rank %d failed\n", first);
        for (char *line = text, *end; *line; line = end + (*end != '\0')) {
            end = line + strcspn(line, "\n");
            const char *say = strncmp(line, "char_lm: ", 9) == 0 ? line + 9 : line;
            fprintf(stderr, "char_lm: rank %d: %.*s\n", first, (int)(end - say), say);
        }
        fprintf(stderr, "char_lm: all %d ranks stop\n", d->size);
    }
}

static int reserve(lm_dist *d, size_t bytes)
{
    if (bytes <= d->scratch_size)
        return 0;
    unsigned char *p = realloc(d->scratch, bytes);
    if (!p) {
        fprintf(stderr, "char_lm: rank %d: out of memory (%zu bytes)\n", d->rank, bytes);
        return -1;
    }
    d->scratch = p;
    d->scratch_size = bytes;
    return 0;
}

/* A (rows, cols) C-order description of data (no allocation). */
static tg_tensor contiguous(tg_dtype dtype, int64_t rows, int64_t cols, void *data)
{
    return (tg_tensor){.dtype = dtype, .ndim = 2, .shape = {rows, cols}, .strides = {cols, 1},
                       .data = data};
}

/* One rank's carried states: a (and c for the LSTM) of every layer. */
static size_t states_bytes(const lm_dist *d, const tg_recurrent *rnn)
{
    int per_layer = rnn->cell == TG_CELL_LSTM ? 2 : 1;
    return (size_t)rnn->num_layers * per_layer * (size_t)rnn->n_a * (size_t)d->local_batch *
           tg_dtype_size(rnn->dtype);
}

/* FNV-1a over every value's bytes, in set order. */
static uint64_t values_hash(const tg_params *set)
{
    uint64_t h = 1469598103934665603u;
    for (int i = 0; i < set->count; i++) {
        const tg_tensor *t = set->items[i].tensor;
        const unsigned char *p = (const unsigned char *)t->data + t->offset *
                                 (int64_t)tg_dtype_size(t->dtype);
        size_t n = (size_t)tg_tensor_numel(t) * tg_dtype_size(t->dtype);
        for (size_t k = 0; k < n; k++)
            h = (h ^ p[k]) * 1099511628211u;
    }
    return h;
}
