/* Moving tensors into and out of the fused engine's workspace (see
 * fused_internal.h for the layout): sequences and states by slot, the
 * weights stacked and the weight gradients scattered, and the small
 * passes over regions (zeroing, column sums). The sequences (n, m, T_x)
 * keep time fastest and the workspace features fastest, so their moves are
 * transposes, done by the instruction set's register-block kernel. */
#include <stdatomic.h>
#include <string.h>

#include "../core/iter.h"
#include "../core/threadpool.h"
#include "../ops/each.h"
#include "../ops/gemm_kernels.h"
#include "fused_internal.h"

#define at tg_fused_at

/* ---- moving data in and out of the workspace -------------------------------------------- */

enum { MOVE_TILE = 16 };

#define MOVE_TILES(T, STORE)                                                                  \
    do {                                                                                      \
        const T *s_ = src;                                                                    \
        T *d_ = dst;                                                                          \
        for (int64_t i0 = 0; i0 < rows; i0 += MOVE_TILE)                                      \
            for (int64_t j0 = 0; j0 < cols; j0 += MOVE_TILE) {                                \
                int64_t i1 = i0 + MOVE_TILE < rows ? i0 + MOVE_TILE : rows;                   \
                int64_t j1 = j0 + MOVE_TILE < cols ? j0 + MOVE_TILE : cols;                   \
                for (int64_t i = i0; i < i1; i++)                                             \
                    for (int64_t j = j0; j < j1; j++)                                         \
                        d_[i * dr + j * dc] STORE s_[i * sr + j * sc];                        \
            }                                                                                 \
    } while (0)

static void add_row_f32(int64_t n, const float *restrict x, float *restrict y)
{
    EACH(n, y[i] = y[i] + x[i];);
}
static void add_row_f64(int64_t n, const double *restrict x, double *restrict y)
{
    EACH(n, y[i] = y[i] + x[i];);
}

/* dst[i dr + j dc] = src[i sr + j sc] (with `add`: +=) for i < rows, j < cols.
 * Rows contiguous on both sides move as rows (memcpy, or a vectorised add),
 * transposes through the ISA's register-block transpose (ops/gemm_kernels.h),
 * and any other layout in plain tiles.
 * Correct for any strides, even 0. */
static void move_2d(tg_dtype dtype, bool add, int64_t rows, int64_t cols, const void *src,
                    int64_t sr, int64_t sc, void *dst, int64_t dr, int64_t dc)
{
    if (cols == 1 || (sc != 1 && sr == 1)) { /* src's contiguous (or only) direction last */
        int64_t n = rows, s = sr, d = dr;
        rows = cols, sr = sc, dr = dc;
        cols = n, sc = s, dc = d;
    }
    size_t es = tg_dtype_size(dtype);
    if (sc == 1 && dr == 1 && dc != 1) {
        const tg_gemm_table *table = tg_gemm_active();
        (dtype == TG_F32 ? table->f32 : table->f64).transpose(rows, cols, src, sr, dst, dc, add);
    } else if (sc == 1 && dc == 1) {
        for (int64_t i = 0; i < rows; i++) {
            const char *s = (const char *)src + i * sr * (int64_t)es;
            char *d = (char *)dst + i * dr * (int64_t)es;
            if (!add)
                memcpy(d, s, (size_t)cols * es);
            else if (dtype == TG_F32)
                add_row_f32(cols, (const float *)s, (float *)d);
            else
                add_row_f64(cols, (const double *)s, (double *)d);
        }
    } else if (dtype == TG_F32) {
        if (add)
            MOVE_TILES(float, +=);
        else
            MOVE_TILES(float, =);
    } else {
        if (add)
            MOVE_TILES(double, +=);
        else
            MOVE_TILES(double, =);
    }
}

/* Move between the 2-D or 3-D tensor t and the workspace elements at
 * `offset` + sum(i_d * strides[d]) of a region, for every index (i0, i1, ...)
 * of t's shape: TO_WS copies t in (ADD_TO_WS: adds it), FROM_WS copies
 * them out into t, ADD_FROM_WS adds them into t. A 3-D move is a 2-D move of dimensions 0
 * and 2 per index of dimension 1: for the sequences (n, m, T_x), one
 * example's (n, T_x) block, contiguous along time in t and along features
 * in the workspace. */
static void move_range(const layout *L, const void *ws, size_t region, int64_t offset,
                       const int64_t *strides, const tg_tensor *t, int how, int64_t j0,
                       int64_t j1)
{
    char *w = at(L, ws, region, offset), *base = tg_tensor_base(t);
    int last = t->ndim - 1;
    int64_t es = (int64_t)L->es;
    int64_t t_step = t->ndim == 3 ? t->strides[1] * es : 0;
    int64_t w_step = t->ndim == 3 ? strides[1] * es : 0;
    for (int64_t j = j0; j < j1; j++) {
        char *tj = base + j * t_step, *wj = w + j * w_step;
        if (how == TO_WS || how == ADD_TO_WS)
            move_2d(L->dtype, how == ADD_TO_WS, t->shape[0], t->shape[last], tj, t->strides[0],
                    t->strides[last], wj, strides[0], strides[last]);
        else
            move_2d(L->dtype, how == ADD_FROM_WS, t->shape[0], t->shape[last], wj, strides[0],
                    strides[last], tj, t->strides[0], t->strides[last]);
    }
}

static void move(const layout *L, const void *ws, size_t region, int64_t offset,
                 const int64_t *strides, const tg_tensor *t, int how)
{
    move_range(L, ws, region, offset, strides, t, how, 0, t->ndim == 3 ? t->shape[1] : 1);
}


static int64_t row_of(const layout *L, const schedule *S, row_kind kind, int64_t t, int64_t s)
{
    if (kind == STEP_ROWS)
        return S->off[t] + s;
    return s < S->m_t[t + 1] ? S->off[t + 1] + s : L->R + s;
}

/* A move of a sequence tensor t (n, m, T_x) and a region's columns col0 ..
 * col0+n (rows ld elements apart) in packed rows: example j's step t is its
 * time L_j - 1 - t in a reverse layer. FROM_WS writes zeros at the padded
 * times t >= L_j; TO_WS and ADD_FROM_WS leave them alone. Without lengths
 * and forward in time, the rows are evenly spaced: strided moves. The
 * examples are shared between threads when the move is large. */
typedef struct {
    const layout *L;
    const void *ws;
    size_t region;
    int64_t col0, ld;
    row_kind kind;
    const tg_tensor *t;
    int how;
    int64_t per_task; /* examples */
} seq_move;

/* One example with lengths or in reverse, when t is contiguous along time:
 * CHUNK steps at a time through a buffer, transposed there by the ISA's
 * kernel and copied row by row to or from their (unevenly spaced) rows. */
enum { CHUNK = 16 };

static void seq_move_chunked(const seq_move *mv, const schedule *S, int64_t j, void *buf)
{
    const layout *L = mv->L;
    const tg_tensor *t = mv->t;
    const tg_gemm_table *table = tg_gemm_active();
    tg_transpose_fn transpose = L->dtype == TG_F32 ? table->f32.transpose : table->f64.transpose;
    const int64_t n = t->shape[0], es = (int64_t)L->es, s = S->slot[j], len = S->len[s];
    char *tj = (char *)tg_tensor_base(t) + j * t->strides[1] * es, *b = buf;
    for (int64_t t0 = 0; t0 < len; t0 += CHUNK) {
        int64_t nt = len - t0 < CHUNK ? len - t0 : CHUNK;
        if (mv->how == TO_WS)
            transpose(n, nt, tj + t0 * es, t->strides[0], b, n, 0);
        for (int64_t i = 0; i < nt; i++) {
            int64_t step = L->reverse ? len - 1 - (t0 + i) : t0 + i;
            char *w = at(L, mv->ws, mv->region, row_of(L, S, mv->kind, step, s) * mv->ld + mv->col0);
            if (mv->how == TO_WS)
                memcpy(w, b + i * n * es, (size_t)(n * es));
            else
                memcpy(b + i * n * es, w, (size_t)(n * es));
        }
        if (mv->how != TO_WS)
            transpose(nt, n, b, n, tj + t0 * es, t->strides[0], mv->how == ADD_FROM_WS);
    }
    if (mv->how == FROM_WS && len < L->T_x)
        for (int64_t f = 0; f < n; f++)
            memset(tj + (f * t->strides[0] + len) * es, 0, (size_t)((L->T_x - len) * es));
}

static void seq_move_examples(const seq_move *mv, int64_t j0, int64_t j1, int worker)
{
    const layout *L = mv->L;
    const tg_tensor *t = mv->t;
    const int64_t m = L->m, T = L->T_x, n = t->shape[0], ld = mv->ld;
    if (!L->lengths && !L->reverse) {
        int64_t first = mv->kind == STEP_ROWS ? 0 : m;
        move_range(L, mv->ws, mv->region, first * ld + mv->col0,
                   (const int64_t[]){1, ld, m * ld}, t, mv->how, j0, j1);
        return;
    }
    schedule S = tg_fused_schedule(L, mv->ws);
    void *buf = t->strides[2] == 1 && mv->how != ADD_TO_WS
                    ? tg_worker_scratch(worker, TG_SCRATCH_KERNEL, (size_t)(CHUNK * n) * L->es)
                    : NULL;
    const int64_t es = (int64_t)L->es, ts = t->strides[2] * es, fs = t->strides[0] * es;
    char *base = tg_tensor_base(t);
    for (int64_t j = j0; j < j1; j++) {
        if (buf) {
            seq_move_chunked(mv, &S, j, buf);
            continue;
        }
        /* any strides: one (n, 1) column of t against one workspace row at a time */
        int64_t s = S.slot[j], len = S.len[s];
        char *tj = base + j * t->strides[1] * es;
        for (int64_t step = 0; step < len; step++) {
            int64_t time = L->reverse ? len - 1 - step : step;
            char *w = at(L, mv->ws, mv->region, row_of(L, &S, mv->kind, step, s) * ld + mv->col0);
            if (mv->how == TO_WS)
                move_2d(L->dtype, false, n, 1, tj + time * ts, t->strides[0], 1, w, 1, 1);
            else
                move_2d(L->dtype, mv->how == ADD_FROM_WS, n, 1, w, 1, 1, tj + time * ts,
                        t->strides[0], 1);
        }
        if (mv->how == FROM_WS)
            for (int64_t time = len; time < T; time++)
                for (int64_t f = 0; f < n; f++)
                    memset(tj + time * ts + f * fs, 0, L->es);
    }
}

static void seq_move_task(void *ctx, int64_t task, int worker)
{
    const seq_move *mv = ctx;
    int64_t j0 = task * mv->per_task, j1 = j0 + mv->per_task;
    seq_move_examples(mv, j0, j1 < mv->L->m ? j1 : mv->L->m, worker);
}

/* Threads for a move of `bytes`: more than one when the time it saves,
 * estimated at a core's copy rate (20 GB/s, optimistic), pays several
 * times over for starting them. */
int tg_fused_move_threads(int64_t bytes)
{
    int threads = tg_get_num_threads();
    double saved_ns = (double)bytes / 20.0 * (1.0 - 1.0 / threads);
    return threads > 1 && saved_ns > 4.0 * (double)tg_threadpool_start_cost_ns() ? threads : 1;
}

static void move_seq_rows(const layout *L, const void *ws, size_t region, int64_t col0,
                          int64_t ld, row_kind kind, const tg_tensor *t, int how)
{
    seq_move mv = {L, ws, region, col0, ld, kind, t, how, L->m};
    int threads = tg_fused_move_threads(t->shape[0] * L->m * L->T_x * (int64_t)L->es * 2);
    if (threads <= 1 || L->m < 2) {
        seq_move_examples(&mv, 0, L->m, tg_threadpool_enter());
        tg_threadpool_leave();
        return;
    }
    int64_t tasks = L->m < 4 * threads ? L->m : 4 * threads;
    mv.per_task = (L->m + tasks - 1) / tasks;
    tg_parallel_for((L->m + mv.per_task - 1) / mv.per_task, seq_move_task, &mv);
}

/* The state tensor t (n_a, m) and the region's rows row0 + s (s = slot of
 * each example), columns 0 .. n_a. */
static void move_state_rows(const layout *L, const void *ws, size_t region, int64_t row0,
                       int64_t ld, const tg_tensor *t, int how)
{
    if (!L->lengths) {
        move(L, ws, region, row0 * ld, (const int64_t[]){1, ld}, t, how);
        return;
    }
    schedule S = tg_fused_schedule(L, ws);
    const int64_t es = (int64_t)L->es;
    char *base = tg_tensor_base(t);
    for (int64_t j = 0; j < L->m; j++) {
        char *w = at(L, ws, region, (row0 + S.slot[j]) * ld);
        char *tj = base + j * t->strides[1] * es;
        if (how == TO_WS || how == ADD_TO_WS)
            move_2d(L->dtype, how == ADD_TO_WS, t->shape[0], 1, tj, t->strides[0], 1, w, 1, 1);
        else
            move_2d(L->dtype, how == ADD_FROM_WS, t->shape[0], 1, w, 1, 1, tj, t->strides[0], 1);
    }
}

/* The two moves above, timed as moves when profiling. */
void tg_fused_move_seq(const layout *L, const void *ws, size_t region, int64_t col0, int64_t ld,
                     row_kind kind, const tg_tensor *t, int how)
{
    uint64_t start = tg_fused_prof_start();
    move_seq_rows(L, ws, region, col0, ld, kind, t, how);
    tg_fused_prof_add(PROF_MOVES, start);
}

void tg_fused_move_state(const layout *L, const void *ws, size_t region, int64_t row0,
                       int64_t ld, const tg_tensor *t, int how)
{
    uint64_t start = tg_fused_prof_start();
    move_state_rows(L, ws, region, row0, ld, t, how);
    tg_fused_prof_add(PROF_MOVES, start);
}

/* sums[c] = the sum over all R rows of the region's columns col0 .. col0+n-1
 * (rows ld apart), added row after row. */
void tg_fused_column_sums(const layout *L, void *ws, size_t region, int64_t col0, int64_t n,
                        int64_t ld, void *sums)
{
    memset(sums, 0, (size_t)n * L->es);
    for (int64_t r = 0; r < L->R; r++) {
        const void *row = at(L, ws, region, r * ld + col0);
        if (L->dtype == TG_F32)
            add_row_f32(n, row, sums);
        else
            add_row_f64(n, row, sums);
    }
}

/* Zero n_rows rows of `cols` elements, `ld` apart, from element `first`. */
void tg_fused_zero_rows(const layout *L, void *ws, size_t region, int64_t first, int64_t n_rows,
                      int64_t cols, int64_t ld)
{
    for (int64_t r = 0; r < n_rows; r++)
        memset(at(L, ws, region, first + r * ld), 0, (size_t)cols * L->es);
}

void tg_fused_stack_matrix(const layout *L, void *ws, const tg_tensor *src, int64_t row0,
                           int64_t col0)
{
    move(L, ws, L->Ws, row0 * L->K + col0, (const int64_t[]){L->K, 1}, src, TO_WS);
    if (col0 == 0) { /* the a side (the first n_a columns), also transposed (WaT) */
        tg_tensor a_side = *src;
        a_side.shape[1] = L->n_a;
        move(L, ws, L->WaT, row0, (const int64_t[]){1, L->G}, &a_side, TO_WS);
    }
}

void tg_fused_stack_bias(const layout *L, void *ws, const tg_tensor *src, int64_t index0)
{
    move(L, ws, L->bs, index0, (const int64_t[]){1, 1}, src, TO_WS);
}

void tg_fused_scatter_weight(const layout *L, const void *ws, tg_tensor *dW, int64_t row0,
                             int64_t col0)
{
    move(L, ws, L->dWs, row0 * L->K + col0, (const int64_t[]){L->K, 1}, dW, ADD_FROM_WS);
}

void tg_fused_scatter_bias(const layout *L, const void *ws, tg_tensor *db, int64_t index0)
{
    move(L, ws, L->dbs, index0, (const int64_t[]){1, 1}, db, ADD_FROM_WS);
}

