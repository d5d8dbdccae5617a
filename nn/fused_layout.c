/* The fused engine's workspace: its layout, its header and schedule, and
 * the argument checks of the fused kernels (see fused_internal.h). */
#include <stdio.h>
#include <string.h>

#include "../core/error.h"
#include "fused_internal.h"

enum { REGION_ALIGN = 64 };
#define WORKSPACE_MAGIC 0x746732737572ULL

const char *const tg_fused_lstm_w_names[4] = {"Wf", "Wi", "Wc", "Wo"};
const char *const tg_fused_lstm_b_names[4] = {"bf", "bi", "bc", "bo"};
const char *const tg_fused_gru_w_names[3] = {"Wr", "Wz", "Wn"};
const char *const tg_fused_gru_u_names[3] = {"Ur", "Uz", "Un"};
const char *const tg_fused_gru_b_names[4] = {"br", "bz", "bn", "bhn"};

/* The first bytes of a workspace: what forward was run with. */
typedef struct {
    uint64_t magic;
    int32_t cell, dtype;
    int64_t n_x, n_a, m, T_x, R;
    int32_t lengths, reverse, with_backward, forward_done;
    int32_t isa; /* the packed weights are this ISA's */
} ws_header;

static const int GATES[N_CELLS] = {RNN_GATES, LSTM_GATES, GRU_GATES, GRU_GATES};

/* ---- layout ---------------------------------------------------------------------------- */

/* Reserve rows*cols elements of es bytes at *cursor (64-byte aligned);
 * false on overflow. */
static bool place(size_t *cursor, size_t *offset, size_t rows, size_t cols, size_t es)
{
    size_t n, bytes, end;
    if (tg_mul_overflows(rows, cols, &n) || tg_mul_overflows(n, es, &bytes) ||
        tg_add_overflows(*cursor, bytes, &end) || tg_add_overflows(end, REGION_ALIGN - 1, &end))
        return false;
    *offset = *cursor;
    *cursor = end & ~(size_t)(REGION_ALIGN - 1);
    return true;
}

static bool place_forward(layout *L, size_t *cur)
{
    size_t es = L->es, K = (size_t)L->K, G = (size_t)L->G, n_a = (size_t)L->n_a;
    size_t R = (size_t)L->R, steps = (size_t)L->T_x + 1, m = (size_t)L->m, rows1;
    bool gru = L->gates == GRU_GATES;
    size_t sched_bytes = steps * 2 * sizeof(int64_t) + m * 3 * sizeof(int32_t);
    return !tg_add_overflows(R, m, &rows1) && place(cur, &(size_t){0}, 1, sizeof(ws_header), 1) &&
           place(cur, &L->sched, 1, sched_bytes, 1) && place(cur, &L->Ws, G, K, es) &&
           place(cur, &L->WaT, n_a, G, es) && place(cur, &L->bs, G + (gru ? n_a : 0), 1, es) &&
           place(cur, &L->Pf, (size_t)L->gates, L->pack_f, 1) && place(cur, &L->AX, rows1, K, es) &&
           place(cur, &L->Z, R, G, es) &&
           (L->cell != CELL_LSTM || place(cur, &L->C, rows1, n_a, es)) &&
           (!gru || place(cur, &L->Rg, R, G, es)) &&
           (L->cell != CELL_GRU_RESET_FIRST || place(cur, &L->RA, R, n_a, es));
}

static bool place_backward(layout *L, size_t *cur)
{
    size_t es = L->es, K = (size_t)L->K, G = (size_t)L->G, n_a = (size_t)L->n_a;
    size_t R = (size_t)L->R, rows1 = R + (size_t)L->m;
    bool gru = L->gates == GRU_GATES;
    return place(cur, &L->Pb, 1, L->pack_b, 1) && place(cur, &L->dZ, R, G, es) &&
           (!gru || place(cur, &L->dGh, R, G, es)) && place(cur, &L->dH, rows1, n_a, es) &&
           (L->cell != CELL_LSTM || place(cur, &L->dC, rows1, n_a, es)) &&
           place(cur, &L->dWs, G, K, es) && place(cur, &L->dbs, G + (gru ? n_a : 0), 1, es) &&
           place(cur, &L->dX, R, (size_t)L->n_x, es);
}

tg_status tg_fused_make_layout(const char *who, tg_dtype dtype, fused_cell cell, int64_t n_x,
                               int64_t n_a, int64_t m, int64_t T_x, int64_t R, bool lengths,
                               bool reverse, bool with_backward, layout *L)
{
    memset(L, 0, sizeof *L);
    L->es = tg_dtype_size(dtype);
    if (L->es == 0)
        return tg_fail(TG_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
    if (n_x < 1 || n_a < 1 || m < 1 || T_x < 1)
        return tg_fail(TG_ERR_SHAPE,
                       "%s: every size must be at least 1: n_x=%lld n_a=%lld m=%lld T_x=%lld",
                       who, (long long)n_x, (long long)n_a, (long long)m, (long long)T_x);
    const int64_t limit = INT64_MAX / 16;
    if (n_x > limit || n_a > limit || m > limit || T_x > limit || m > INT32_MAX ||
        R < m || R / T_x > m)
        return tg_fail(TG_ERR_OVERFLOW, "%s: sizes too large", who);
    *L = (layout){.dtype = dtype, .es = L->es, .cell = cell, .gates = GATES[cell], .n_x = n_x,
                  .n_a = n_a, .m = m, .T_x = T_x, .K = n_a + n_x, .R = R, .lengths = lengths,
                  .reverse = reverse, .with_backward = with_backward};
    L->G = L->gates * n_a;
    int64_t rows_b = cell == CELL_GRU_RESET_FIRST ? 2 * n_a : L->G;
    size_t pf = tg_packed_b_bytes(dtype, n_a, n_a), pb = tg_packed_b_bytes(dtype, rows_b, n_a);
    bool ok = pf != SIZE_MAX && pb != SIZE_MAX;
    L->pack_f = ok ? (pf + REGION_ALIGN - 1) & ~(size_t)(REGION_ALIGN - 1) : 0;
    L->pack_b = ok ? (pb + REGION_ALIGN - 1) & ~(size_t)(REGION_ALIGN - 1) : 0;
    if (cell == CELL_GRU_RESET_FIRST) /* and Un, for d ra */
        L->pack_b += L->pack_f;
    size_t cur = 0;
    ok = ok && place_forward(L, &cur);
    L->forward_bytes = cur;
    ok = ok && place_backward(L, &cur);
    L->total_bytes = cur;
    if (!ok || cur > (size_t)INT64_MAX)
        return tg_fail(TG_ERR_OVERFLOW, "%s: the workspace for n_x=%lld n_a=%lld m=%lld "
                                        "T_x=%lld does not fit in memory arithmetic",
                       who, (long long)n_x, (long long)n_a, (long long)m, (long long)T_x);
    return TG_OK;
}

tg_status tg_fused_rows(const char *who, const int32_t *lengths, int64_t m, int64_t T_x,
                        int64_t *R)
{
    if (!lengths) {
        *R = m * T_x;
        return TG_OK;
    }
    int64_t sum = 0;
    for (int64_t j = 0; j < m; j++) {
        if (lengths[j] < 1)
            return tg_fail(TG_ERR_ARG, "%s: lengths[%lld] is %d: every sequence needs at least "
                                       "one step", who, (long long)j, (int)lengths[j]);
        if (lengths[j] > T_x)
            return tg_fail(TG_ERR_ARG, "%s: lengths[%lld] is %d, longer than T_x = %lld", who,
                           (long long)j, (int)lengths[j], (long long)T_x);
        sum += lengths[j];
    }
    *R = sum;
    return TG_OK;
}

/* ---- header and schedule ------------------------------------------------------------------ */

schedule tg_fused_schedule(const layout *L, const void *ws)
{
    const char *base = (const char *)ws + L->sched;
    const int64_t *m_t = (const int64_t *)base;
    const int32_t *len = (const int32_t *)(m_t + 2 * (L->T_x + 1));
    return (schedule){.m_t = m_t, .off = m_t + L->T_x + 1, .len = len, .example = len + L->m,
                      .slot = len + 2 * L->m};
}

/* Sort the examples by length, longest first and stably (a counting sort),
 * and count the slots still running at each step. */
static void write_schedule(const layout *L, void *ws, const int32_t *lengths)
{
    char *base = (char *)ws + L->sched;
    int64_t T = L->T_x, m = L->m;
    int64_t *m_t = (int64_t *)base, *off = m_t + T + 1;
    int32_t *len = (int32_t *)(off + T + 1), *example = len + m, *slot = example + m;
    memset(m_t, 0, (size_t)(T + 1) * sizeof *m_t);
    for (int64_t j = 0; j < m; j++) /* m_t[l] counts the sequences of length > l ... */
        m_t[(lengths ? lengths[j] : T) - 1]++;
    int64_t next = 0; /* ... first as the count of length exactly l + 1 */
    for (int64_t l = T - 1; l >= 0; l--) {
        int64_t count = m_t[l];
        m_t[l] = next; /* the first slot of length l + 1 */
        next += count;
    }
    for (int64_t j = 0; j < m; j++) {
        int32_t l = lengths ? lengths[j] : (int32_t)T;
        int64_t s = m_t[l - 1]++;
        slot[j] = (int32_t)s;
        example[s] = (int32_t)j;
        len[s] = l;
    }
    for (int64_t t = 0, s = m; t <= T; t++) { /* the slots with len > t: a prefix */
        while (s > 0 && len[s - 1] <= t)
            s--;
        m_t[t] = s;
    }
    off[0] = 0;
    for (int64_t t = 0; t < T; t++)
        off[t + 1] = off[t] + m_t[t];
}

tg_status tg_fused_begin_forward(const char *who, fused_cell cell, const tg_tensor *x,
                                 int64_t n_a, const int32_t *lengths, bool reverse, void *ws,
                                 size_t bytes, layout *L)
{
    int64_t m = x->shape[1], T = x->shape[2], R;
    tg_status s = tg_fused_rows(who, lengths, m, T, &R);
    if (s == TG_OK)
        s = tg_fused_make_layout(who, x->dtype, cell, x->shape[0], n_a, m, T, R,
                                 lengths != NULL, reverse, false, L);
    if (s != TG_OK)
        return s;
    if (!ws || ((uintptr_t)ws & 7) || bytes < L->forward_bytes)
        return tg_fail(TG_ERR_ARG,
                       "%s: the workspace is NULL, misaligned or too small (%zu bytes, %zu "
                       "needed; see the *_fused_workspace functions)",
                       who, bytes, L->forward_bytes);
    L->with_backward = bytes >= L->total_bytes;
    ws_header *h = ws;
    *h = (ws_header){.magic = WORKSPACE_MAGIC, .cell = cell, .dtype = (int32_t)L->dtype,
                     .n_x = L->n_x, .n_a = n_a, .m = m, .T_x = T, .R = R,
                     .lengths = lengths != NULL, .reverse = reverse,
                     .with_backward = L->with_backward, .isa = (int32_t)tg_isa_active()};
    write_schedule(L, ws, lengths);
    return TG_OK;
}

void tg_fused_mark_forward_done(void *ws) { ((ws_header *)ws)->forward_done = 1; }

static const char *cell_title(int cell)
{
    return cell == CELL_LSTM ? "LSTM" : cell == CELL_RNN ? "RNN" : "GRU";
}

tg_status tg_fused_read_header(const char *who, const void *ws, size_t bytes, int cell,
                               bool for_backward, layout *L)
{
    memset(L, 0, sizeof *L);
    const ws_header *h = ws;
    if (!ws || ((uintptr_t)ws & 7) || bytes < sizeof *h || h->magic != WORKSPACE_MAGIC ||
        !h->forward_done || h->cell < 0 || h->cell >= N_CELLS)
        return tg_fail(TG_ERR_ARG, "%s: the workspace does not hold a finished forward pass",
                       who);
    if (cell >= 0 && h->cell != cell)
        return tg_fail(TG_ERR_ARG, "%s: the workspace holds the forward pass of a %s layer", who,
                       cell_title(h->cell));
    if (for_backward && !h->with_backward)
        return tg_fail(TG_ERR_ARG,
                       "%s: the workspace was sized for forward only (with_backward false)",
                       who);
    if (h->isa != (int32_t)tg_isa_active())
        return tg_fail(TG_ERR_STATE, "%s: the instruction set changed (to %s) after the forward "
                                     "pass that filled this workspace", who,
                       tg_isa_name(tg_isa_active()));
    tg_status s = tg_fused_make_layout(who, (tg_dtype)h->dtype, (fused_cell)h->cell, h->n_x,
                                       h->n_a, h->m, h->T_x, h->R, h->lengths, h->reverse,
                                       h->with_backward, L);
    if (s != TG_OK)
        return s;
    size_t need = h->with_backward ? L->total_bytes : L->forward_bytes;
    if (bytes < need)
        return tg_fail(TG_ERR_ARG, "%s: the workspace is %zu bytes, its forward pass needs %zu",
                       who, bytes, need);
    return TG_OK;
}

/* ---- argument checks -------------------------------------------------------------------- */

static bool has_shape(const tg_tensor *t, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    const int64_t want[3] = {d0, d1, d2};
    if (t->ndim != ndim)
        return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != want[d])
            return false;
    return true;
}

/* name must be (d0, d1[, d2]) of the dtype; `dims` names them for the message. */
static tg_status expect(const char *who, const char *name, const tg_tensor *t, tg_dtype dtype,
                        const char *dims, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    char got[64];
    if (!t)
        return tg_fail(TG_ERR_ARG, "%s: %s is NULL", who, name);
    if (t->dtype != dtype)
        return tg_fail(TG_ERR_DTYPE, "%s: dtypes differ: x is %s but %s is %s", who,
                       tg_dtype_name(dtype), name, tg_dtype_name(t->dtype));
    if (has_shape(t, ndim, d0, d1, d2))
        return TG_OK;
    tg_shape_str(t, got, sizeof got);
    if (ndim == 3)
        return tg_fail(TG_ERR_SHAPE, "%s: %s is %s but must be %s = (%lld,%lld,%lld)", who, name,
                       got, dims, (long long)d0, (long long)d1, (long long)d2);
    return tg_fail(TG_ERR_SHAPE, "%s: %s is %s but must be %s = (%lld,%lld)", who, name, got,
                   dims, (long long)d0, (long long)d1);
}

static tg_status check_x(const char *who, const tg_tensor *x)
{
    char s[64];
    if (!x)
        return tg_fail(TG_ERR_ARG, "%s: x is NULL", who);
    if (tg_dtype_size(x->dtype) == 0)
        return tg_fail(TG_ERR_DTYPE, "%s: x has an unknown dtype", who);
    if (x->ndim != 3)
        return tg_fail(TG_ERR_SHAPE, "%s: x must be 3-D (n_x, m, T_x), got %s", who,
                       tg_shape_str(x, s, sizeof s));
    if (x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1)
        return tg_fail(TG_ERR_SHAPE, "%s: x %s has an empty dimension", who,
                       tg_shape_str(x, s, sizeof s));
    return TG_OK;
}

/* The states of a sequence, or an optional initial state. */
static tg_status check_states(const char *who, const tg_tensor *x, int64_t n_a,
                              const char *const names[4], const tg_tensor *const states[4])
{
    int64_t m = x->shape[1], T = x->shape[2];
    tg_status s = TG_OK;
    for (int k = 0; k < 4 && s == TG_OK; k++) {
        if (!states[k])
            continue;
        s = k < 2 ? expect(who, names[k], states[k], x->dtype, "(n_a, m)", 2, n_a, m, 0)
                  : expect(who, names[k], states[k], x->dtype, "(n_a, m, T_x)", 3, n_a, m, T);
    }
    return s;
}

tg_status tg_fused_check_rnn(const char *who, const tg_tensor *x, const tg_tensor *a0,
                             const tg_tensor *Wax, const tg_tensor *Waa, const tg_tensor *ba,
                             const tg_tensor *a, int64_t *n_a)
{
    char s[64];
    tg_status st = check_x(who, x);
    if (st != TG_OK)
        return st;
    if (!Waa)
        return tg_fail(TG_ERR_ARG, "%s: Waa is NULL", who);
    if (Waa->ndim != 2 || Waa->shape[0] != Waa->shape[1] || Waa->shape[0] < 1)
        return tg_fail(TG_ERR_SHAPE, "%s: Waa is %s but must be square (n_a, n_a)", who,
                       tg_shape_str(Waa, s, sizeof s));
    *n_a = Waa->shape[0];
    int64_t n_x = x->shape[0];
    st = expect(who, "Waa", Waa, x->dtype, "(n_a, n_a)", 2, *n_a, *n_a, 0);
    if (st == TG_OK)
        st = expect(who, "Wax", Wax, x->dtype, "(n_a, n_x)", 2, *n_a, n_x, 0);
    if (st == TG_OK)
        st = expect(who, "ba", ba, x->dtype, "(n_a, 1)", 2, *n_a, 1, 0);
    if (st == TG_OK)
        st = check_states(who, x, *n_a, (const char *const[]){"a0", "", "a", ""},
                          (const tg_tensor *const[]){a0, NULL, a, NULL});
    return st;
}

tg_status tg_fused_check_lstm(const char *who, const tg_tensor *x, const tg_tensor *a0,
                              const tg_tensor *c0, const tg_tensor *const W[4],
                              const tg_tensor *const b[4], const tg_tensor *a,
                              const tg_tensor *c, int64_t *n_a)
{
    char s[64];
    tg_status st = check_x(who, x);
    if (st != TG_OK)
        return st;
    if (!W || !b)
        return tg_fail(TG_ERR_ARG, "%s: the weight array W or the bias array b is NULL", who);
    if (!W[0])
        return tg_fail(TG_ERR_ARG, "%s: Wf is NULL", who);
    if (W[0]->ndim != 2 || W[0]->shape[0] < 1)
        return tg_fail(TG_ERR_SHAPE, "%s: Wf is %s but must be (n_a, n_a + n_x)", who,
                       tg_shape_str(W[0], s, sizeof s));
    *n_a = W[0]->shape[0];
    for (int k = 0; k < 4 && st == TG_OK; k++) {
        st = expect(who, tg_fused_lstm_w_names[k], W[k], x->dtype, "(n_a, n_a + n_x)", 2, *n_a,
                    *n_a + x->shape[0], 0);
        if (st == TG_OK)
            st = expect(who, tg_fused_lstm_b_names[k], b[k], x->dtype, "(n_a, 1)", 2, *n_a, 1,
                        0);
    }
    if (st == TG_OK)
        st = check_states(who, x, *n_a, (const char *const[]){"a0", "c0", "a", "c"},
                          (const tg_tensor *const[]){a0, c0, a, c});
    return st;
}

tg_status tg_fused_check_gru(const char *who, const tg_tensor *x, const tg_tensor *a0,
                             const tg_tensor *const W[3], const tg_tensor *const U[3],
                             const tg_tensor *const b[4], const tg_tensor *a, int64_t *n_a)
{
    char s[64];
    tg_status st = check_x(who, x);
    if (st != TG_OK)
        return st;
    if (!W || !U || !b)
        return tg_fail(TG_ERR_ARG, "%s: the array W, U or b is NULL", who);
    if (!U[0])
        return tg_fail(TG_ERR_ARG, "%s: Ur is NULL", who);
    if (U[0]->ndim != 2 || U[0]->shape[0] != U[0]->shape[1] || U[0]->shape[0] < 1)
        return tg_fail(TG_ERR_SHAPE, "%s: Ur is %s but must be square (n_a, n_a)", who,
                       tg_shape_str(U[0], s, sizeof s));
    *n_a = U[0]->shape[0];
    for (int k = 0; k < 4 && st == TG_OK; k++) {
        if (k < 3)
            st = expect(who, tg_fused_gru_w_names[k], W[k], x->dtype, "(n_a, n_x)", 2, *n_a,
                        x->shape[0], 0);
        if (k < 3 && st == TG_OK)
            st = expect(who, tg_fused_gru_u_names[k], U[k], x->dtype, "(n_a, n_a)", 2, *n_a,
                        *n_a, 0);
        if (st == TG_OK)
            st = expect(who, tg_fused_gru_b_names[k], b[k], x->dtype, "(n_a, 1)", 2, *n_a, 1, 0);
    }
    if (st == TG_OK)
        st = check_states(who, x, *n_a, (const char *const[]){"a0", "", "a", ""},
                          (const tg_tensor *const[]){a0, NULL, a, NULL});
    return st;
}

tg_status tg_fused_check_grad(const char *who, const char *name, const tg_tensor *t,
                              const layout *L, const char *dims, int64_t rows, int64_t cols,
                              int64_t depth)
{
    if (!t)
        return TG_OK;
    return expect(who, name, t, L->dtype, dims, depth ? 3 : 2, rows, cols, depth);
}

tg_status tg_fused_begin_backward(const char *who, const void *ws, size_t bytes, int cell,
                                  const tg_tensor *da, const tg_tensor *dc, const tg_tensor *dx,
                                  const tg_tensor *da0, const tg_tensor *dc0, layout *L)
{
    tg_status s = tg_fused_read_header(who, ws, bytes, cell, true, L);
    int64_t n_a = L->n_a, m = L->m, T = L->T_x;
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "da", da, L, "(n_a, m, T_x)", n_a, m, T);
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "dc", dc, L, "(n_a, m, T_x)", n_a, m, T);
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "dx", dx, L, "(n_x, m, T_x)", L->n_x, m, T);
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "da0", da0, L, "(n_a, m)", n_a, m, 0);
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "dc0", dc0, L, "(n_a, m)", n_a, m, 0);
    return s;
}
