/* Fused RNN, LSTM and GRU layers: raw kernels on a caller-owned workspace,
 * and the tape nodes built on them (see fused.h).
 *
 * The three cells run on one engine. With G = gates * n_a rows of stacked
 * weights (1 gate block for the RNN; 4 for the LSTM, in the order f, i, c, o;
 * 3 for the GRU: r, z, n) and K = n_a + n_x, the workspace holds, every
 * matrix row-major with its rows in time-major order (row t*m + j is example
 * j at step t):
 *
 *   Ws  (G, K)             the weights stacked, acting on [a_prev; x]
 *                          (RNN: [Waa | Wax]; LSTM: rows Wf, Wi, Wc, Wo;
 *                          GRU: rows [Ur | Wr], [Uz | Wz], [Un | Wn])
 *   WsT (K, G)             the same transposed: forward multiplies by Ws^T,
 *                          backward by Ws, and each gemm then reads its
 *                          right operand along rows
 *   bs  (G)                the biases stacked (GRU: then bhn, G + n_a)
 *   AX  ((T_x+1)*m, K)     block t = [a after t steps | x[:, :, t]]: a row is
 *                          exactly the [a_prev; x_t] column the weights see
 *   Z   (T_x*m, G)         gate pre-activations; the LSTM's and GRU's gate
 *                          passes leave their activated gates in place
 *   C   ((T_x+1)*m, n_a)   LSTM cell states, block 0 = c0
 *   R   (T_x*m, G)         GRU: the recurrent projections U a_prev, which
 *                          stay apart because r multiplies Un a_prev + bhn
 * and for backward
 *   dZ  (T_x*m, G)         d loss / d pre-activations, x side
 *   dGh (T_x*m, G)         GRU: the same on the a side (for n: r * dZ_n);
 *                          for the RNN and LSTM the two sides are equal
 *   dH, dC ((T_x+1)*m, n_a)  d loss / d a and d loss / d c after each step,
 *                          completed step by step; block 0 ends as da0, dc0
 *   dWs (G, K), dX (T_x*m, n_x)  targets of the final gemms
 *   dbs (G)                the bias gradients, column sums of dZ (GRU: then
 *                          bhn's, from dGh)
 *
 * One step's rows are contiguous, so the recurrent gemm and the gate pass of
 * a step touch one block; all steps' rows together are a plain matrix, so
 * the input projection of every step is one gemm, and so are the weight
 * gradient dWs = dZ^T @ AX (two for the GRU, one per side) and the input
 * gradient dX = dZ @ Wx. The stacked copies cost O(parameters), nothing next
 * to the O(T_x m parameters) gemms. A step's gemm and gate pass run in
 * slices of the hidden units, in parallel for large steps (forward_slice).
 *
 * Tensors enter and leave the workspace through `move`: the sequences
 * (n, m, T_x) are stored with time fastest and the workspace keeps features
 * fastest, so those moves are transposes, done in cache-sized tiles; any
 * strides are accepted (views, broadcast gradients). Backward never writes
 * a caller's tensor with a gemm: results are added (+=) by `move`. */
#include "fused.h"

#include <math.h>
#include <string.h>

#include "../core/iter.h"
#include "../core/threadpool.h"
#include "../ops/each.h"
#include "../ops/gemm.h"
#include "../ops/vmath.h"

enum { RNN_GATES = 1, GRU_GATES = 3, LSTM_GATES = 4, REGION_ALIGN = 64 };
#define WORKSPACE_MAGIC 0x746731737572ULL

/* The first bytes of a workspace: what forward was run with. */
typedef struct {
    uint64_t magic;
    int32_t gates, dtype;
    int64_t n_x, n_a, m, T_x;
    int32_t with_backward, forward_done;
} ws_header;

/* Dimensions and byte offsets of the regions described above. */
typedef struct {
    tg_dtype dtype;
    size_t es; /* element size */
    int gates;
    int64_t n_x, n_a, m, T_x, K, G;
    size_t Ws, WsT, bs, AX, Z, C, R, dZ, dGh, dH, dC, dWs, dbs, dX;
    size_t forward_bytes, total_bytes;
    bool with_backward; /* the backward regions exist */
} layout;

/* Pointers of one step for the gate passes (rows as described above),
 * for a slice of the hidden units: gate k of unit u of row j is at
 * z[j G + k n_a + u], and the pointers already point at the slice's first
 * unit. */
typedef struct {
    int64_t m, n_a, G, K;
    int64_t w;          /* the hidden units of the slice (every pointer starts at its first) */
    void *z;            /* Z block t */
    const void *b;      /* bs */
    void *h;            /* AX block t+1, a part: a after the step */
    const void *c_prev; /* C block t */
    void *c;            /* C block t+1 */
    void *dz;           /* dZ block t */
    const void *dh;     /* dH block t+1 */
    const void *dc;     /* dC block t+1 */
    void *dc_prev;      /* dC block t */
    void *r;            /* GRU: R block t */
    const void *h_prev; /* GRU: AX block t, a part */
    void *dgh;          /* GRU: dGh block t */
    void *dh_prev;      /* GRU: dH block t */
} step_ptrs;

static const char *const LSTM_W_NAMES[4] = {"Wf", "Wi", "Wc", "Wo"};
static const char *const LSTM_B_NAMES[4] = {"bf", "bi", "bc", "bo"};
static const char *const GRU_W_NAMES[3] = {"Wr", "Wz", "Wn"};
static const char *const GRU_U_NAMES[3] = {"Ur", "Uz", "Un"};
static const char *const GRU_B_NAMES[4] = {"br", "bz", "bn", "bhn"};

static tg_status make_layout(const char *who, tg_dtype dtype, int gates, int64_t n_x,
                             int64_t n_a, int64_t m, int64_t T_x, bool with_backward,
                             layout *L);
static tg_status read_header(const char *who, const void *workspace, size_t bytes, int gates,
                             bool for_backward, layout *L);
static tg_status workspace_size(const char *who, tg_dtype dtype, int gates, int64_t n_x,
                                int64_t n_a, int64_t m, int64_t T_x, bool with_backward,
                                size_t *bytes);
static tg_status layout_of(const char *who, int gates, const tg_tensor *x, int64_t n_a,
                           bool with_backward, layout *L);
static tg_status check_rnn(const char *who, const tg_tensor *x, const tg_tensor *a0,
                           const tg_tensor *Wax, const tg_tensor *Waa, const tg_tensor *ba,
                           const tg_tensor *a, int64_t *n_a);
static tg_status check_lstm(const char *who, const tg_tensor *x, const tg_tensor *a0,
                            const tg_tensor *c0, const tg_tensor *const W[4],
                            const tg_tensor *const b[4], const tg_tensor *a, const tg_tensor *c,
                            int64_t *n_a);
static tg_status check_gru(const char *who, const tg_tensor *x, const tg_tensor *a0,
                           const tg_tensor *const W[3], const tg_tensor *const U[3],
                           const tg_tensor *const b[4], const tg_tensor *a, int64_t *n_a);
static tg_status check_grad(const char *who, const char *name, const tg_tensor *t,
                            const layout *L, const char *dims, int64_t rows, int64_t cols,
                            int64_t depth);
static tg_status begin_backward(const char *who, const void *workspace, size_t bytes, int gates,
                                const tg_tensor *da, const tg_tensor *dc, const tg_tensor *dx,
                                const tg_tensor *da0, const tg_tensor *dc0, layout *L);
static tg_status begin_forward(const char *who, int gates, const tg_tensor *x, int64_t n_a,
                               void *ws, size_t bytes, layout *L);
static void stack_matrix(const layout *L, void *ws, const tg_tensor *src, int64_t row0,
                         int64_t col0);
static void stack_bias(const layout *L, void *ws, const tg_tensor *src, int64_t index0);
static void engine_forward(const layout *L, void *ws, const tg_tensor *x, const tg_tensor *a0,
                           const tg_tensor *c0, tg_tensor *a, tg_tensor *c);
static bool engine_backward(const layout *L, void *ws, const tg_tensor *da,
                            const tg_tensor *dc, tg_tensor *dx, tg_tensor *da0, tg_tensor *dc0,
                            bool weights);
static void scatter_weight(const layout *L, const void *ws, tg_tensor *dW, int64_t row0,
                           int64_t col0);
static void scatter_bias(const layout *L, const void *ws, tg_tensor *db, int64_t index0);

/* ---- raw kernels: RNN ------------------------------------------------------------ */

tg_status tg_rnn_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                 int64_t T_x, bool with_backward, size_t *bytes)
{
    return workspace_size("tg_rnn_fused_workspace", dtype, RNN_GATES, n_x, n_a, m, T_x,
                          with_backward, bytes);
}

/* x (n_x,m,T_x), a0 (n_a,m) or NULL, Wax (n_a,n_x), Waa (n_a,n_a), ba (n_a,1) -> a (n_a,m,T_x) */
tg_status tg_rnn_fused_forward(const tg_tensor *x, const tg_tensor *a0, const tg_tensor *Wax,
                               const tg_tensor *Waa, const tg_tensor *ba, tg_tensor *a,
                               void *workspace, size_t workspace_bytes)
{
    const char *who = "tg_rnn_fused_forward";
    int64_t n_a;
    layout L;
    tg_status s = check_rnn(who, x, a0, Wax, Waa, ba, a, &n_a);
    if (s == TG_OK)
        s = begin_forward(who, RNN_GATES, x, n_a, workspace, workspace_bytes, &L);
    if (s != TG_OK)
        return s;
    stack_matrix(&L, workspace, Waa, 0, 0);
    stack_matrix(&L, workspace, Wax, 0, n_a);
    stack_bias(&L, workspace, ba, 0);
    engine_forward(&L, workspace, x, a0, NULL, a, NULL);
    return TG_OK;
}

/* da (n_a,m,T_x) or NULL -> dx (n_x,m,T_x), da0 (n_a,m), dWax, dWaa, dba += */
tg_status tg_rnn_fused_backward(void *workspace, size_t workspace_bytes,
                                const tg_tensor *da, tg_tensor *dx, tg_tensor *da0,
                                tg_tensor *dWax, tg_tensor *dWaa, tg_tensor *dba)
{
    const char *who = "tg_rnn_fused_backward";
    layout L;
    tg_status s = begin_backward(who, workspace, workspace_bytes, RNN_GATES, da, NULL, dx, da0,
                                 NULL, &L);
    int64_t n_a = L.n_a, n_x = L.n_x;
    if (s == TG_OK)
        s = check_grad(who, "dWax", dWax, &L, "(n_a, n_x)", n_a, n_x, 0);
    if (s == TG_OK)
        s = check_grad(who, "dWaa", dWaa, &L, "(n_a, n_a)", n_a, n_a, 0);
    if (s == TG_OK)
        s = check_grad(who, "dba", dba, &L, "(n_a, 1)", n_a, 1, 0);
    if (s != TG_OK)
        return s;
    if (!engine_backward(&L, workspace, da, NULL, dx, da0, NULL, dWax || dWaa || dba))
        return TG_OK;
    if (dWaa)
        scatter_weight(&L, workspace, dWaa, 0, 0);
    if (dWax)
        scatter_weight(&L, workspace, dWax, 0, n_a);
    if (dba)
        scatter_bias(&L, workspace, dba, 0);
    return TG_OK;
}

/* ---- raw kernels: LSTM ------------------------------------------------------------ */

tg_status tg_lstm_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                  int64_t T_x, bool with_backward, size_t *bytes)
{
    return workspace_size("tg_lstm_fused_workspace", dtype, LSTM_GATES, n_x, n_a, m, T_x,
                          with_backward, bytes);
}

/* x (n_x,m,T_x), a0 c0 (n_a,m) or NULL, W[k] (n_a,n_a+n_x), b[k] (n_a,1) -> a, c (n_a,m,T_x) */
tg_status tg_lstm_fused_forward(const tg_tensor *x, const tg_tensor *a0, const tg_tensor *c0,
                                const tg_tensor *const W[4], const tg_tensor *const b[4],
                                tg_tensor *a, tg_tensor *c, void *workspace,
                                size_t workspace_bytes)
{
    const char *who = "tg_lstm_fused_forward";
    int64_t n_a;
    layout L;
    tg_status s = check_lstm(who, x, a0, c0, W, b, a, c, &n_a);
    if (s == TG_OK)
        s = begin_forward(who, LSTM_GATES, x, n_a, workspace, workspace_bytes, &L);
    if (s != TG_OK)
        return s;
    for (int k = 0; k < 4; k++) {
        stack_matrix(&L, workspace, W[k], k * n_a, 0);
        stack_bias(&L, workspace, b[k], k * n_a);
    }
    engine_forward(&L, workspace, x, a0, c0, a, c);
    return TG_OK;
}

/* da, dc (n_a,m,T_x) or NULL -> dx (n_x,m,T_x), da0, dc0 (n_a,m), dW[k], db[k] += */
tg_status tg_lstm_fused_backward(void *workspace, size_t workspace_bytes,
                                 const tg_tensor *da, const tg_tensor *dc, tg_tensor *dx,
                                 tg_tensor *da0, tg_tensor *dc0, tg_tensor *const dW[4],
                                 tg_tensor *const db[4])
{
    const char *who = "tg_lstm_fused_backward";
    layout L;
    tg_status s = begin_backward(who, workspace, workspace_bytes, LSTM_GATES, da, dc, dx, da0,
                                 dc0, &L);
    int64_t n_a = L.n_a;
    bool weights = false;
    for (int k = 0; k < 4 && s == TG_OK; k++) {
        char name[8];
        snprintf(name, sizeof name, "d%s", LSTM_W_NAMES[k]);
        s = check_grad(who, name, dW ? dW[k] : NULL, &L, "(n_a, n_a + n_x)", n_a, L.K, 0);
        snprintf(name, sizeof name, "d%s", LSTM_B_NAMES[k]);
        if (s == TG_OK)
            s = check_grad(who, name, db ? db[k] : NULL, &L, "(n_a, 1)", n_a, 1, 0);
        weights = weights || (dW && dW[k]) || (db && db[k]);
    }
    if (s != TG_OK)
        return s;
    if (!engine_backward(&L, workspace, da, dc, dx, da0, dc0, weights))
        return TG_OK;
    for (int k = 0; k < 4; k++) {
        if (dW && dW[k])
            scatter_weight(&L, workspace, dW[k], k * n_a, 0);
        if (db && db[k])
            scatter_bias(&L, workspace, db[k], k * n_a);
    }
    return TG_OK;
}

/* ---- raw kernels: GRU ------------------------------------------------------------- */

tg_status tg_gru_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                 int64_t T_x, bool with_backward, size_t *bytes)
{
    return workspace_size("tg_gru_fused_workspace", dtype, GRU_GATES, n_x, n_a, m, T_x,
                          with_backward, bytes);
}

/* x (n_x,m,T_x), a0 (n_a,m) or NULL, W[k] (n_a,n_x), U[k] (n_a,n_a), b[k] (n_a,1) -> a (n_a,m,T_x) */
tg_status tg_gru_fused_forward(const tg_tensor *x, const tg_tensor *a0,
                               const tg_tensor *const W[3], const tg_tensor *const U[3],
                               const tg_tensor *const b[4], tg_tensor *a, void *workspace,
                               size_t workspace_bytes)
{
    const char *who = "tg_gru_fused_forward";
    int64_t n_a;
    layout L;
    tg_status s = check_gru(who, x, a0, W, U, b, a, &n_a);
    if (s == TG_OK)
        s = begin_forward(who, GRU_GATES, x, n_a, workspace, workspace_bytes, &L);
    if (s != TG_OK)
        return s;
    for (int k = 0; k < 3; k++) {
        stack_matrix(&L, workspace, U[k], k * n_a, 0);
        stack_matrix(&L, workspace, W[k], k * n_a, n_a);
    }
    for (int k = 0; k < 4; k++)
        stack_bias(&L, workspace, b[k], k * n_a);
    engine_forward(&L, workspace, x, a0, NULL, a, NULL);
    return TG_OK;
}

/* da (n_a,m,T_x) or NULL -> dx (n_x,m,T_x), da0 (n_a,m), dW[k], dU[k], db[k] += */
tg_status tg_gru_fused_backward(void *workspace, size_t workspace_bytes, const tg_tensor *da,
                                tg_tensor *dx, tg_tensor *da0, tg_tensor *const dW[3],
                                tg_tensor *const dU[3], tg_tensor *const db[4])
{
    const char *who = "tg_gru_fused_backward";
    layout L;
    tg_status s = begin_backward(who, workspace, workspace_bytes, GRU_GATES, da, NULL, dx, da0,
                                 NULL, &L);
    int64_t n_a = L.n_a, n_x = L.n_x;
    bool weights = false;
    char name[8];
    for (int k = 0; k < 3 && s == TG_OK; k++) {
        snprintf(name, sizeof name, "d%s", GRU_W_NAMES[k]);
        s = check_grad(who, name, dW ? dW[k] : NULL, &L, "(n_a, n_x)", n_a, n_x, 0);
        snprintf(name, sizeof name, "d%s", GRU_U_NAMES[k]);
        if (s == TG_OK)
            s = check_grad(who, name, dU ? dU[k] : NULL, &L, "(n_a, n_a)", n_a, n_a, 0);
        weights = weights || (dW && dW[k]) || (dU && dU[k]);
    }
    for (int k = 0; k < 4 && s == TG_OK; k++) {
        snprintf(name, sizeof name, "d%s", GRU_B_NAMES[k]);
        s = check_grad(who, name, db ? db[k] : NULL, &L, "(n_a, 1)", n_a, 1, 0);
        weights = weights || (db && db[k]);
    }
    if (s != TG_OK)
        return s;
    if (!engine_backward(&L, workspace, da, NULL, dx, da0, NULL, weights))
        return TG_OK;
    for (int k = 0; k < 3; k++) {
        if (dU && dU[k])
            scatter_weight(&L, workspace, dU[k], k * n_a, 0);
        if (dW && dW[k])
            scatter_weight(&L, workspace, dW[k], k * n_a, n_a);
        if (db && db[k])
            scatter_bias(&L, workspace, db[k], k * n_a);
    }
    if (db && db[3]) /* bhn sits inside r * (Un a + bhn): the a side's gradient */
        scatter_bias(&L, workspace, db[3], 3 * n_a);
    return TG_OK;
}

tg_status tg_fused_step_views(const void *workspace, size_t workspace_bytes, int64_t t,
                              tg_fused_step *step)
{
    const char *who = "tg_fused_step_views";
    layout L;
    if (!step)
        return tg_fail(TG_ERR_ARG, "%s: step is NULL", who);
    tg_status s = read_header(who, workspace, workspace_bytes, 0, false, &L);
    if (s != TG_OK)
        return s;
    if (t < 0 || t >= L.T_x)
        return tg_fail(TG_ERR_ARG, "%s: step %lld is outside 0..%lld", who, (long long)t,
                       (long long)L.T_x - 1);
    memset(step, 0, sizeof *step);
    /* Views only read through these pointers; the const is dropped once here. */
    void *base = (void *)(uintptr_t)workspace;
    int64_t m = L.m, n_a = L.n_a, K = L.K, G = L.G;
    tg_tensor *views[] = {&step->xt, &step->a_prev, &step->a_next, &step->c_prev,
                          &step->c_next, &step->ft, &step->it, &step->cct, &step->ot};
    size_t region[] = {L.AX, L.AX, L.AX, L.C, L.C, L.Z, L.Z, L.Z, L.Z};
    int64_t offset[] = {t * m * K + n_a, t * m * K, (t + 1) * m * K, t * m * n_a,
                        (t + 1) * m * n_a, t * m * G, t * m * G + n_a, t * m * G + 2 * n_a,
                        t * m * G + 3 * n_a};
    int64_t col_stride[] = {K, K, K, n_a, n_a, G, G, G, G};
    int n = L.gates == LSTM_GATES ? 9 : 3;
    for (int k = 0; k < n; k++) {
        tg_tensor *v = views[k];
        v->dtype = L.dtype;
        v->ndim = 2;
        v->shape[0] = k == 0 ? L.n_x : n_a;
        v->shape[1] = m;
        v->strides[0] = 1;
        v->strides[1] = col_stride[k];
        v->data = (char *)base + region[k];
        v->offset = offset[k];
    }
    return TG_OK;
}

/* ---- tape nodes ------------------------------------------------------------------------- */

/* A failed check or kernel call of a node: its message goes onto the tape. */
static void node_report(tg_tape *tape, tg_status s)
{
    if (s != TG_OK)
        tg_tape_fail(tape, s, "%s", tg_last_error());
}

static void rnn_fused_backward(tg_tape *tape, const tg_entry *e)
{
    const tg_tensor *da = tg_grad_out(e->out[0]);
    tg_tensor *dx = tg_grad_in(tape, e->in[0]), *dWax = tg_grad_in(tape, e->in[1]);
    tg_tensor *dWaa = tg_grad_in(tape, e->in[2]), *dba = tg_grad_in(tape, e->in[3]);
    tg_tensor *da0 = e->n_in > 4 ? tg_grad_in(tape, e->in[4]) : NULL;
    if (tg_tape_status(tape) == TG_OK) /* every gradient buffer fitted */
        node_report(tape, tg_rnn_fused_backward(e->saved, (size_t)e->ints[0], da, dx, da0, dWax,
                                                dWaa, dba));
}

/* The arguments of a node are checked before tg_op_begin, so that a NULL
 * weight is named in the message; an errored tape is reported as usual. */
static tg_status node_check(tg_tape *tape, const char *who, tg_status checked)
{
    if (!tape || tg_tape_status(tape) != TG_OK) {
        tg_op op;
        tg_op_begin_array(&op, tape, who, 0, NULL);
        return tg_last_status();
    }
    node_report(tape, checked);
    return checked;
}

/* The workspace of a node, from the arena (with the backward part only
 * when the node will be recorded), then its n_out outputs (n_a, m, T_x);
 * NULL on error (recorded on the tape). */
static void *node_begin(tg_op *op, int gates, const tg_tensor *x, int64_t n_a, int n_out,
                        tg_tensor **out, size_t *bytes)
{
    layout L;
    tg_status s = layout_of(op->name, gates, x, n_a, op->needs_grad, &L);
    node_report(op->tape, s);
    void *ws = NULL;
    if (s == TG_OK) {
        *bytes = op->needs_grad ? L.total_bytes : L.forward_bytes;
        ws = tg_tape_alloc(op->tape, *bytes);
    }
    for (int k = 0; k < n_out && ws; k++)
        if (!(out[k] = tg_op_output(op, x->dtype, TG_DIMS(n_a, x->shape[1], x->shape[2]))))
            ws = NULL;
    return ws;
}

/* Record a node whose backward reads its workspace; the entry, or NULL
 * when nothing is recorded. */
static tg_entry *node_record(tg_op *op, tg_backward_fn backward, int n_out, tg_tensor **out,
                             void *ws, size_t bytes)
{
    tg_entry *e = tg_op_record_n(op, backward, n_out, out);
    if (e) {
        e->saved = ws;
        e->ints[0] = (int64_t)bytes;
    }
    return e;
}

tg_tensor *tg_rnn_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *Wax,
                        tg_tensor *Waa, tg_tensor *ba)
{
    const char *who = "tg_rnn_fused";
    int64_t n_a = 0;
    bool usable = tape && tg_tape_status(tape) == TG_OK;
    if (node_check(tape, who, usable ? check_rnn(who, x, a0, Wax, Waa, ba, NULL, &n_a) : TG_OK))
        return NULL;
    tg_op op;
    tg_tensor *in[5] = {x, Wax, Waa, ba, a0}, *a = NULL;
    if (!tg_op_begin_array(&op, tape, who, a0 ? 5 : 4, in))
        return NULL;
    size_t bytes = 0;
    void *ws = node_begin(&op, RNN_GATES, x, n_a, 1, &a, &bytes);
    if (!ws)
        return NULL;
    if (tg_rnn_fused_forward(x, a0, Wax, Waa, ba, a, ws, bytes) != TG_OK)
        return tg_op_fail(&op, tg_last_status(), "%s", tg_last_error());
    node_record(&op, rnn_fused_backward, 1, &a, ws, bytes);
    return tg_op_finish(&op, a);
}

static void lstm_fused_backward(tg_tape *tape, const tg_entry *e)
{
    const tg_tensor *da = tg_grad_out(e->out[0]), *dc = tg_grad_out(e->out[1]);
    tg_tensor *dx = tg_grad_in(tape, e->in[0]), *dW[4], *db[4];
    for (int k = 0; k < 4; k++) {
        dW[k] = tg_grad_in(tape, e->in[1 + k]);
        db[k] = tg_grad_in(tape, e->in[5 + k]);
    }
    tg_tensor *da0 = e->ints[1] ? tg_grad_in(tape, e->in[e->ints[1]]) : NULL;
    tg_tensor *dc0 = e->ints[2] ? tg_grad_in(tape, e->in[e->ints[2]]) : NULL;
    if (tg_tape_status(tape) == TG_OK)
        node_report(tape, tg_lstm_fused_backward(e->saved, (size_t)e->ints[0], da, dc, dx, da0,
                                                 dc0, dW, db));
}

tg_status tg_lstm_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                        tg_tensor *const W[4], tg_tensor *const b[4], tg_tensor **a,
                        tg_tensor **c)
{
    const char *who = "tg_lstm_fused";
    int64_t n_a = 0;
    tg_status checked = TG_OK;
    if (tape && tg_tape_status(tape) == TG_OK)
        checked = !a || !c ? tg_fail(TG_ERR_ARG, "%s: the output pointers a and c must not "
                                                 "be NULL", who)
                           : check_lstm(who, x, a0, c0, (const tg_tensor *const *)W,
                                        (const tg_tensor *const *)b, NULL, NULL, &n_a);
    tg_status s = node_check(tape, who, checked);
    if (s != TG_OK)
        return s;
    /* Inputs: x, Wf Wi Wc Wo, bf bi bc bo, then a0 and c0 when given. */
    tg_op op;
    tg_tensor *in[11] = {x, W[0], W[1], W[2], W[3], b[0], b[1], b[2], b[3]};
    int n_in = 9, a0_at = 0, c0_at = 0;
    if (a0) {
        a0_at = n_in;
        in[n_in++] = a0;
    }
    if (c0) {
        c0_at = n_in;
        in[n_in++] = c0;
    }
    if (!tg_op_begin_array(&op, tape, who, n_in, in))
        return tg_last_status();
    size_t bytes = 0;
    tg_tensor *out[2] = {NULL, NULL};
    void *ws = node_begin(&op, LSTM_GATES, x, n_a, 2, out, &bytes);
    if (!ws)
        return tg_tape_status(tape);
    if (tg_lstm_fused_forward(x, a0, c0, (const tg_tensor *const *)W,
                              (const tg_tensor *const *)b, out[0], out[1], ws, bytes) != TG_OK) {
        tg_op_fail(&op, tg_last_status(), "%s", tg_last_error());
        return tg_tape_status(tape);
    }
    tg_entry *e = node_record(&op, lstm_fused_backward, 2, out, ws, bytes);
    if (e) {
        e->ints[1] = a0_at;
        e->ints[2] = c0_at;
    }
    s = tg_op_finish_n(&op, 2, out);
    if (s == TG_OK) {
        *a = out[0];
        *c = out[1];
    }
    return s;
}

static void gru_fused_backward(tg_tape *tape, const tg_entry *e)
{
    const tg_tensor *da = tg_grad_out(e->out[0]);
    tg_tensor *dx = tg_grad_in(tape, e->in[0]), *dW[3], *dU[3], *db[4];
    for (int k = 0; k < 3; k++) {
        dW[k] = tg_grad_in(tape, e->in[1 + k]);
        dU[k] = tg_grad_in(tape, e->in[4 + k]);
    }
    for (int k = 0; k < 4; k++)
        db[k] = tg_grad_in(tape, e->in[7 + k]);
    tg_tensor *da0 = e->n_in > 11 ? tg_grad_in(tape, e->in[11]) : NULL;
    if (tg_tape_status(tape) == TG_OK)
        node_report(tape, tg_gru_fused_backward(e->saved, (size_t)e->ints[0], da, dx, da0, dW, dU,
                                                db));
}

tg_tensor *tg_gru_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *const W[3],
                        tg_tensor *const U[3], tg_tensor *const b[4])
{
    const char *who = "tg_gru_fused";
    int64_t n_a = 0;
    bool usable = tape && tg_tape_status(tape) == TG_OK;
    tg_status checked = usable ? check_gru(who, x, a0, (const tg_tensor *const *)W,
                                           (const tg_tensor *const *)U,
                                           (const tg_tensor *const *)b, NULL, &n_a)
                               : TG_OK;
    if (node_check(tape, who, checked))
        return NULL;
    /* Inputs: x, Wr Wz Wn, Ur Uz Un, br bz bn bhn, then a0 when given. */
    tg_op op;
    tg_tensor *in[12] = {x, W[0], W[1], W[2], U[0], U[1], U[2], b[0], b[1], b[2], b[3], a0};
    tg_tensor *a = NULL;
    if (!tg_op_begin_array(&op, tape, who, a0 ? 12 : 11, in))
        return NULL;
    size_t bytes = 0;
    void *ws = node_begin(&op, GRU_GATES, x, n_a, 1, &a, &bytes);
    if (!ws)
        return NULL;
    if (tg_gru_fused_forward(x, a0, (const tg_tensor *const *)W, (const tg_tensor *const *)U,
                             (const tg_tensor *const *)b, a, ws, bytes) != TG_OK)
        return tg_op_fail(&op, tg_last_status(), "%s", tg_last_error());
    node_record(&op, gru_fused_backward, 1, &a, ws, bytes);
    return tg_op_finish(&op, a);
}

/* ---- the engine ------------------------------------------------------------------------ */

/* C = beta C + A @ B in the layout's dtype (operands as in ops/gemm.h). */
static void gemm(const layout *L, int64_t M, int64_t N, int64_t K, const void *A, int64_t rsa,
                 int64_t csa, const void *B, int64_t rsb, int64_t csb, double beta, void *C,
                 int64_t rsc, int64_t csc)
{
    if (L->dtype == TG_F32)
        tg_sgemm(M, N, K, 1.0f, A, rsa, csa, B, rsb, csb, (float)beta, C, rsc, csc);
    else
        tg_dgemm(M, N, K, 1.0, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

/* Address of element `index` of a region. */
static void *at(const layout *L, const void *ws, size_t region, int64_t index)
{
    return (char *)(uintptr_t)ws + region + (size_t)index * L->es;
}

/* The gate passes, one per cell and direction, for f32 and f64. Each walks
 * one step's m rows once: bias, activations and state update together. The
 * activations are vmath.h's vector functions over a row's gate blocks; the
 * arithmetic runs in row functions whose restrict operands and fixed-length
 * blocks (EACH) let the compiler vectorise them.
 *
 * The backward passes, with da the total d loss / d a_t (what arrived plus
 * what the next step sent back, already summed in dH) and s' = s (1 - s),
 * tanh' = 1 - tanh^2 written on the saved outputs:
 *   RNN   a = tanh(z):            dz = da (1 - a^2)
 *   LSTM  c = f c_prev + i cc, a = o tanh(c):
 *         dc = dc_in + da o (1 - tanh(c)^2)     (dc_in: what reached c_t)
 *         dz_o = da tanh(c) o'   dz_cc = dc i (1 - cc^2)
 *         dz_i = dc cc i'        dz_f = dc c_prev f'      dc_prev += dc f
 *   GRU   a = (1 - z) n + z a_prev, n = tanh(x_n + r hn), hn = Un a_prev + bhn:
 *         dz_n = da (1 - z)(1 - n^2)   dz_r = dz_n hn r'
 *         dz_z = da (a_prev - n) z'    da_prev += da z
 *         on the a side the n gate sees r dz_n (it multiplies hn).
 * Every pre-activation gradient then goes to a_prev through the recurrent
 * gemm (dH_t += dZ_t @ Wa) and to the weights in the final gemms.
 *
 * tanh(c) is not saved: the LSTM's backward recomputes it (the same bits)
 * into the dz_o slot, which then holds it until dz_o overwrites it. */

#define GATE_KERNELS(T, S)                                                                   \
    static void lstm_state_row_##S(int64_t n, const T *restrict f, const T *restrict in,     \
                                   const T *restrict cc, const T *restrict c_prev,           \
                                   T *restrict c)                                            \
    {                                                                                        \
        EACH(n, c[i] = f[i] * c_prev[i] + in[i] * cc[i];);                                   \
    }                                                                                        \
    static void mul_row_##S(int64_t n, const T *restrict o, T *restrict h)                   \
    {                                                                                        \
        EACH(n, h[i] = o[i] * h[i];);                                                        \
    }                                                                                        \
    static void rnn_backward_row_##S(int64_t n, const T *restrict h, const T *restrict dh,   \
                                     T *restrict dz)                                         \
    {                                                                                        \
        EACH(n, dz[i] = dh[i] * ((T)1 - h[i] * h[i]););                                      \
    }                                                                                        \
    /* g: the activated gates f, i, cc, o; dzo holds tanh(c) on entry */                    \
    static void lstm_backward_row_##S(int64_t n, const T *restrict f, const T *restrict in,  \
                                      const T *restrict cc, const T *restrict o,             \
                                      const T *restrict c_prev, const T *restrict dh,        \
                                      const T *restrict dc, T *restrict dzf,                 \
                                      T *restrict dzi, T *restrict dzc, T *restrict dzo,     \
                                      T *restrict dc_prev)                                   \
    {                                                                                        \
        EACH(n, {                                                                            \
            T tc = dzo[i], da = dh[i];                                                       \
            T dct = dc[i] + da * o[i] * ((T)1 - tc * tc);                                    \
            dzf[i] = dct * c_prev[i] * f[i] * ((T)1 - f[i]);                                 \
            dzi[i] = dct * cc[i] * in[i] * ((T)1 - in[i]);                                   \
            dzc[i] = dct * in[i] * ((T)1 - cc[i] * cc[i]);                                   \
            dzo[i] = da * tc * o[i] * ((T)1 - o[i]);                                         \
            dc_prev[i] += dct * f[i];                                                        \
        });                                                                                  \
    }                                                                                        \
    static void add_row_##S(int64_t n, const T *restrict x, T *restrict y)                   \
    {                                                                                        \
        EACH(n, y[i] = y[i] + x[i];);                                                        \
    }                                                                                        \
    /* zn = (zn + bn) + r hn with hn = recn + bhn, kept in recn */                          \
    static void gru_candidate_row_##S(int64_t n, const T *restrict r, const T *restrict bn,  \
                                      const T *restrict bhn, T *restrict recn,               \
                                      T *restrict zn)                                        \
    {                                                                                        \
        EACH(n, {                                                                            \
            T hn = recn[i] + bhn[i];                                                         \
            recn[i] = hn;                                                                    \
            zn[i] = zn[i] + bn[i] + r[i] * hn;                                               \
        });                                                                                  \
    }                                                                                        \
    static void gru_state_row_##S(int64_t n, const T *restrict zz, const T *restrict nn,     \
                                  const T *restrict h_prev, T *restrict h)                   \
    {                                                                                        \
        EACH(n, h[i] = ((T)1 - zz[i]) * nn[i] + zz[i] * h_prev[i];);                         \
    }                                                                                        \
    static void gru_backward_row_##S(int64_t n, const T *restrict r, const T *restrict zz,   \
                                     const T *restrict nn, const T *restrict hn,             \
                                     const T *restrict h_prev, const T *restrict dh,         \
                                     T *restrict dzr, T *restrict dzz, T *restrict dzn,      \
                                     T *restrict dghr, T *restrict dghz, T *restrict dghn,   \
                                     T *restrict dh_prev)                                    \
    {                                                                                        \
        EACH(n, {                                                                            \
            T da = dh[i];                                                                    \
            T dn = da * ((T)1 - zz[i]) * ((T)1 - nn[i] * nn[i]);                             \
            T dr = dn * hn[i] * r[i] * ((T)1 - r[i]);                                        \
            T dzg = da * (h_prev[i] - nn[i]) * zz[i] * ((T)1 - zz[i]);                       \
            dzr[i] = dghr[i] = dr;                                                           \
            dzz[i] = dghz[i] = dzg;                                                          \
            dzn[i] = dn;                                                                     \
            dghn[i] = dn * r[i];                                                             \
            dh_prev[i] += da * zz[i];                                                        \
        });                                                                                  \
    }                                                                                        \
    static void rnn_forward_step_##S(const step_ptrs *p)                                     \
    {                                                                                        \
        for (int64_t j = 0; j < p->m; j++)                                                   \
            tg_vtanh_bias_##S(p->w, (const T *)p->z + j * p->G, p->b, (T *)p->h + j * p->K); \
    }                                                                                        \
    static void rnn_backward_step_##S(const step_ptrs *p)                                    \
    {                                                                                        \
        for (int64_t j = 0; j < p->m; j++)                                                   \
            rnn_backward_row_##S(p->w, (const T *)p->h + j * p->K,                           \
                                 (const T *)p->dh + j * p->n_a, (T *)p->dz + j * p->G);      \
    }                                                                                        \
    static void lstm_forward_step_##S(const step_ptrs *p)                                    \
    {                                                                                        \
        const T *b = p->b;                                                                   \
        int64_t n = p->n_a, w = p->w;                                                        \
        for (int64_t j = 0; j < p->m; j++) {                                                 \
            T *z = (T *)p->z + j * p->G, *c = (T *)p->c + j * n, *h = (T *)p->h + j * p->K;  \
            tg_vsigmoid_bias_##S(w, z, b, z);                                                \
            tg_vsigmoid_bias_##S(w, z + n, b + n, z + n);                                    \
            tg_vtanh_bias_##S(w, z + 2 * n, b + 2 * n, z + 2 * n);                           \
            tg_vsigmoid_bias_##S(w, z + 3 * n, b + 3 * n, z + 3 * n);                        \
            lstm_state_row_##S(w, z, z + n, z + 2 * n, (const T *)p->c_prev + j * n, c);     \
            tg_vtanh_##S(w, c, h);                                                           \
            mul_row_##S(w, z + 3 * n, h);                                                    \
        }                                                                                    \
    }                                                                                        \
    static void lstm_backward_step_##S(const step_ptrs *p)                                   \
    {                                                                                        \
        int64_t n = p->n_a, w = p->w;                                                        \
        for (int64_t j = 0; j < p->m; j++) {                                                 \
            const T *g = (const T *)p->z + j * p->G;                                         \
            T *dz = (T *)p->dz + j * p->G;                                                   \
            tg_vtanh_##S(w, (const T *)p->c + j * n, dz + 3 * n);                            \
            lstm_backward_row_##S(w, g, g + n, g + 2 * n, g + 3 * n,                         \
                                  (const T *)p->c_prev + j * n, (const T *)p->dh + j * n,    \
                                  (const T *)p->dc + j * n, dz, dz + n, dz + 2 * n,          \
                                  dz + 3 * n, (T *)p->dc_prev + j * n);                      \
        }                                                                                    \
    }                                                                                        \
    static void gru_forward_step_##S(const step_ptrs *p)                                     \
    {                                                                                        \
        const T *b = p->b;                                                                   \
        int64_t n = p->n_a, w = p->w;                                                        \
        for (int64_t j = 0; j < p->m; j++) {                                                 \
            T *z = (T *)p->z + j * p->G, *rec = (T *)p->r + j * p->G;                        \
            add_row_##S(w, rec, z);                                                          \
            add_row_##S(w, rec + n, z + n);                                                  \
            tg_vsigmoid_bias_##S(w, z, b, z);                                                \
            tg_vsigmoid_bias_##S(w, z + n, b + n, z + n);                                    \
            gru_candidate_row_##S(w, z, b + 2 * n, b + 3 * n, rec + 2 * n, z + 2 * n);       \
            tg_vtanh_##S(w, z + 2 * n, z + 2 * n);                                           \
            gru_state_row_##S(w, z + n, z + 2 * n, (const T *)p->h_prev + j * p->K,          \
                              (T *)p->h + j * p->K);                                         \
        }                                                                                    \
    }                                                                                        \
    static void gru_backward_step_##S(const step_ptrs *p)                                    \
    {                                                                                        \
        int64_t n = p->n_a;                                                                  \
        for (int64_t j = 0; j < p->m; j++) {                                                 \
            const T *g = (const T *)p->z + j * p->G, *rec = (const T *)p->r + j * p->G;      \
            T *dz = (T *)p->dz + j * p->G, *dgh = (T *)p->dgh + j * p->G;                    \
            gru_backward_row_##S(p->w, g, g + n, g + 2 * n, rec + 2 * n,                     \
                                 (const T *)p->h_prev + j * p->K, (const T *)p->dh + j * n,  \
                                 dz, dz + n, dz + 2 * n, dgh, dgh + n, dgh + 2 * n,          \
                                 (T *)p->dh_prev + j * n);                                   \
        }                                                                                    \
    }

GATE_KERNELS(float, f32)
GATE_KERNELS(double, f64)

/* ---- moving data in and out of the workspace -------------------------------------------- */

enum { TO_WS, FROM_WS, ADD_FROM_WS };
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

/* A transposing move: src rows and dst columns are contiguous (sc = dr = 1).
 * Each tile passes through a small buffer, read a src row and written a dst
 * column at a time, so that every cache line on either side is touched
 * once per tile. (Moved directly, the tile's lines, whose strides here are
 * often multiples of 4 KiB, compete for one cache set and miss again and
 * again.) */
#define MOVE_TRANSPOSED(T, STORE)                                                             \
    do {                                                                                      \
        const T *s_ = src;                                                                    \
        T *d_ = dst, buf[MOVE_TILE][MOVE_TILE];                                               \
        for (int64_t i0 = 0; i0 < rows; i0 += MOVE_TILE)                                      \
            for (int64_t j0 = 0; j0 < cols; j0 += MOVE_TILE) {                                \
                int64_t ni = rows - i0 < MOVE_TILE ? rows - i0 : MOVE_TILE;                   \
                int64_t nj = cols - j0 < MOVE_TILE ? cols - j0 : MOVE_TILE;                   \
                for (int64_t i = 0; i < ni; i++) {                                            \
                    const T *s = s_ + (i0 + i) * sr + j0;                                     \
                    if (nj == MOVE_TILE) /* a constant count: vector moves, not a call */    \
                        for (int64_t j = 0; j < MOVE_TILE; j++)                               \
                            buf[i][j] = s[j];                                                 \
                    else                                                                      \
                        for (int64_t j = 0; j < nj; j++)                                      \
                            buf[i][j] = s[j];                                                 \
                }                                                                             \
                for (int64_t j = 0; j < nj; j++) {                                            \
                    T *d = d_ + (j0 + j) * dc + i0;                                           \
                    for (int64_t i = 0; i < ni; i++)                                          \
                        d[i] STORE buf[i][j];                                                 \
                }                                                                             \
            }                                                                                 \
    } while (0)

/* dst[i dr + j dc] = src[i sr + j sc] (with `add`: +=) for i < rows, j < cols.
 * Rows contiguous on both sides move as rows (memcpy, or a vectorised add),
 * transposes through MOVE_TRANSPOSED, and any other layout in plain tiles.
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
        if (dtype == TG_F32 && add)
            MOVE_TRANSPOSED(float, +=);
        else if (dtype == TG_F32)
            MOVE_TRANSPOSED(float, =);
        else if (add)
            MOVE_TRANSPOSED(double, +=);
        else
            MOVE_TRANSPOSED(double, =);
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
 * of t's shape: TO_WS copies t in, FROM_WS copies them out into t,
 * ADD_FROM_WS adds them into t. A 3-D move is a 2-D move of dimensions 0
 * and 2 per index of dimension 1: for the sequences (n, m, T_x), one
 * example's (n, T_x) block, contiguous along time in t and along features
 * in the workspace. */
static void move(const layout *L, const void *ws, size_t region, int64_t offset,
                 const int64_t *strides, const tg_tensor *t, int how)
{
    char *w = at(L, ws, region, offset), *base = tg_tensor_base(t);
    int last = t->ndim - 1;
    int64_t outer = t->ndim == 3 ? t->shape[1] : 1, es = (int64_t)L->es;
    int64_t t_step = t->ndim == 3 ? t->strides[1] * es : 0;
    int64_t w_step = t->ndim == 3 ? strides[1] * es : 0;
    for (int64_t j = 0; j < outer; j++) {
        char *tj = base + j * t_step, *wj = w + j * w_step;
        if (how == TO_WS)
            move_2d(L->dtype, false, t->shape[0], t->shape[last], tj, t->strides[0],
                    t->strides[last], wj, strides[0], strides[last]);
        else
            move_2d(L->dtype, how == ADD_FROM_WS, t->shape[0], t->shape[last], wj, strides[0],
                    strides[last], tj, t->strides[0], t->strides[last]);
    }
}

/* sums[c] = the sum over all T_x m rows of the region's columns col0 .. col0+n-1
 * (rows ld apart), added row after row. */
static void column_sums(const layout *L, void *ws, size_t region, int64_t col0, int64_t n,
                        int64_t ld, void *sums)
{
    memset(sums, 0, (size_t)n * L->es);
    for (int64_t r = 0; r < L->T_x * L->m; r++) {
        const void *row = at(L, ws, region, r * ld + col0);
        if (L->dtype == TG_F32)
            add_row_f32(n, row, sums);
        else
            add_row_f64(n, row, sums);
    }
}

typedef void (*gate_fn)(const step_ptrs *p);

/* GATE_PASS[cell][backward][f64], cell 0 RNN, 1 LSTM, 2 GRU */
static const gate_fn GATE_PASS[3][2][2] = {
    {{rnn_forward_step_f32, rnn_forward_step_f64}, {rnn_backward_step_f32, rnn_backward_step_f64}},
    {{lstm_forward_step_f32, lstm_forward_step_f64},
     {lstm_backward_step_f32, lstm_backward_step_f64}},
    {{gru_forward_step_f32, gru_forward_step_f64}, {gru_backward_step_f32, gru_backward_step_f64}}};

static void gate_pass(const layout *L, const step_ptrs *p, bool backward)
{
    int cell = L->gates == LSTM_GATES ? 1 : L->gates == GRU_GATES ? 2 : 0;
    GATE_PASS[cell][backward][L->dtype == TG_F64](p);
}

/* The pointers of step t for hidden units [u0, u1). */
static step_ptrs step_at(const layout *L, const void *ws, int64_t t, int64_t u0, int64_t u1)
{
    int64_t m = L->m, n_a = L->n_a, G = L->G, K = L->K;
    step_ptrs p = {.m = m, .n_a = n_a, .G = G, .K = K, .w = u1 - u0};
    p.z = at(L, ws, L->Z, t * m * G + u0);
    p.b = at(L, ws, L->bs, u0);
    p.h = at(L, ws, L->AX, (t + 1) * m * K + u0);
    if (L->gates == LSTM_GATES) {
        p.c_prev = at(L, ws, L->C, t * m * n_a + u0);
        p.c = at(L, ws, L->C, (t + 1) * m * n_a + u0);
    }
    if (L->gates == GRU_GATES) {
        p.r = at(L, ws, L->R, t * m * G + u0);
        p.h_prev = at(L, ws, L->AX, t * m * K + u0);
    }
    if (L->with_backward) {
        p.dz = at(L, ws, L->dZ, t * m * G + u0);
        p.dh = at(L, ws, L->dH, (t + 1) * m * n_a + u0);
        if (L->gates == LSTM_GATES) {
            p.dc = at(L, ws, L->dC, (t + 1) * m * n_a + u0);
            p.dc_prev = at(L, ws, L->dC, t * m * n_a + u0);
        }
        if (L->gates == GRU_GATES) {
            p.dgh = at(L, ws, L->dGh, t * m * G + u0);
            p.dh_prev = at(L, ws, L->dH, t * m * n_a + u0);
        }
    }
    return p;
}

/* Ws[row0 :, col0 :] = src (2-D, any strides), and WsT the same transposed. */
static void stack_matrix(const layout *L, void *ws, const tg_tensor *src, int64_t row0,
                         int64_t col0)
{
    move(L, ws, L->Ws, row0 * L->K + col0, (const int64_t[]){L->K, 1}, src, TO_WS);
    move(L, ws, L->WsT, col0 * L->G + row0, (const int64_t[]){1, L->G}, src, TO_WS);
}

/* bs[index0 :] = src (n_a, 1). */
static void stack_bias(const layout *L, void *ws, const tg_tensor *src, int64_t index0)
{
    move(L, ws, L->bs, index0, (const int64_t[]){1, 1}, src, TO_WS);
}

/* Zero n_rows rows of `cols` elements, `ld` apart, from element `first`. */
static void zero_rows(const layout *L, void *ws, size_t region, int64_t first, int64_t n_rows,
                      int64_t cols, int64_t ld)
{
    for (int64_t r = 0; r < n_rows; r++)
        memset(at(L, ws, region, first + r * ld), 0, (size_t)cols * L->es);
}

/* ---- one step, sliced across threads ------------------------------------------------- */

/* A step's recurrent gemm and gate pass split into slices of the hidden
 * units: slice s owns columns u0..u1 of every gate block, so it computes
 * its part of the gemm and then its gate pass with no other slice's data.
 * The slices depend on the shape only, never on the thread count, so every
 * slice is computed the same way whichever thread runs it: results are
 * bit-identical for any thread count. A step whose gemm is too small to
 * repay a wake-up of the pool (tens of microseconds on a virtual machine)
 * is one slice, run by the caller. The gemms inside a slice run on the
 * slice's thread (tg_parallel_for nests inline). */
enum { SLICE_UNITS = 128, SLICE_ALIGN = 16 };

static int64_t step_slices(const layout *L)
{
    double work = (double)L->m * (double)L->G * (double)L->n_a;
    if (work < (L->dtype == TG_F32 ? 4e6 : 2e6))
        return 1;
    return (L->n_a + SLICE_UNITS - 1) / SLICE_UNITS;
}

/* Units [*u0, *u1) of slice s of S (possibly empty at the end). */
static void slice_units(const layout *L, int64_t S, int64_t s, int64_t *u0, int64_t *u1)
{
    int64_t width = (L->n_a + S - 1) / S;
    width = (width + SLICE_ALIGN - 1) / SLICE_ALIGN * SLICE_ALIGN;
    *u0 = s * width < L->n_a ? s * width : L->n_a;
    *u1 = *u0 + width < L->n_a ? *u0 + width : L->n_a;
}

typedef struct {
    const layout *L;
    void *ws;
    int64_t slices;
    int64_t gemm_t;  /* step whose recurrent gemm runs first, or -1 */
    int64_t gates_t; /* step whose gate pass runs then, or -1 */
    size_t dGh;      /* backward: the a side of dZ */
} step_job;

/* Forward, slice s of step t: Z_t (the GRU: R_t) += A_t @ Wa^T, then the gates. */
static void forward_slice(void *ctx, int64_t s, int worker)
{
    (void)worker;
    const step_job *job = ctx;
    const layout *L = job->L;
    void *ws = job->ws;
    int64_t m = L->m, n_a = L->n_a, K = L->K, G = L->G, t = job->gates_t, u0, u1;
    slice_units(L, job->slices, s, &u0, &u1);
    if (u0 == u1)
        return;
    bool gru = L->gates == GRU_GATES;
    size_t target = gru ? L->R : L->Z;
    for (int64_t g = 0; g < L->gates; g++) {
        int64_t col = g * n_a + u0, w = u1 - u0;
        void *C = at(L, ws, target, t * m * G + col);
        if (job->gemm_t < 0) { /* a zero a0 projects to zero */
            if (gru)
                zero_rows(L, ws, target, t * m * G + col, m, w, G);
        } else if (m > 1) {
            gemm(L, m, w, n_a, at(L, ws, L->AX, t * m * K), K, 1, at(L, ws, L->WsT, col), G, 1,
                 gru ? 0.0 : 1.0, C, G, 1);
        } else { /* one example: Z_t^T += Wa @ a_t, gemm's matrix-vector kernel */
            gemm(L, w, 1, n_a, at(L, ws, L->Ws, col * K), K, 1, at(L, ws, L->AX, t * K), 1, 1,
                 gru ? 0.0 : 1.0, C, 1, 1);
        }
    }
    step_ptrs p = step_at(L, ws, t, u0, u1);
    gate_pass(L, &p, false);
}

/* Backward, slice s: dH_t += dGh_t @ Wa (what reaches a_{t-1}) for t =
 * gemm_t, then the gate pass of step gates_t = t - 1, which needs exactly
 * this slice of dH_t. */
static void backward_slice(void *ctx, int64_t s, int worker)
{
    (void)worker;
    const step_job *job = ctx;
    const layout *L = job->L;
    void *ws = job->ws;
    int64_t m = L->m, n_a = L->n_a, K = L->K, G = L->G, t = job->gemm_t, u0, u1;
    slice_units(L, job->slices, s, &u0, &u1);
    if (u0 == u1)
        return;
    if (t >= 0 && m > 1)
        gemm(L, m, u1 - u0, G, at(L, ws, job->dGh, t * m * G), G, 1, at(L, ws, L->Ws, u0), K, 1,
             1.0, at(L, ws, L->dH, t * m * n_a + u0), n_a, 1);
    else if (t >= 0) /* one example: dH_t^T += Wa^T @ dGh_t^T */
        gemm(L, u1 - u0, 1, G, at(L, ws, L->WsT, u0 * G), G, 1, at(L, ws, job->dGh, t * G), 1, 1,
             1.0, at(L, ws, L->dH, t * n_a + u0), 1, 1);
    if (job->gates_t >= 0) {
        step_ptrs p = step_at(L, ws, job->gates_t, u0, u1);
        gate_pass(L, &p, true);
    }
}

/* x (n_x,m,T_x), a0 c0 (n_a,m) or NULL -> a, c (n_a,m,T_x) or NULL; Ws, bs already stacked */
static void engine_forward(const layout *L, void *ws, const tg_tensor *x, const tg_tensor *a0,
                           const tg_tensor *c0, tg_tensor *a, tg_tensor *c)
{
    int64_t n_x = L->n_x, n_a = L->n_a, m = L->m, T = L->T_x, K = L->K, G = L->G;
    /* x into the x part of AX blocks 0..T-1; a0 and c0 into block 0. */
    move(L, ws, L->AX, n_a, (const int64_t[]){1, K, m * K}, x, TO_WS);
    if (a0)
        move(L, ws, L->AX, 0, (const int64_t[]){1, K}, a0, TO_WS);
    else
        zero_rows(L, ws, L->AX, 0, m, n_a, K);
    if (L->gates == LSTM_GATES) {
        if (c0)
            move(L, ws, L->C, 0, (const int64_t[]){1, n_a}, c0, TO_WS);
        else
            zero_rows(L, ws, L->C, 0, 1, m * n_a, 0);
    }
    /* The input projections of all steps: Z = X @ Wx^T, one gemm. */
    gemm(L, T * m, G, n_x, at(L, ws, L->AX, n_a), K, 1, at(L, ws, L->WsT, n_a * G), G, 1, 0.0,
         at(L, ws, L->Z, 0), G, 1);
    /* Step by step: Z_t += A_t @ Wa^T (the GRU keeps it apart: R_t = A_t @
     * Wa^T), then the gates, in slices (see forward_slice). */
    step_job job = {.L = L, .ws = ws, .slices = step_slices(L)};
    for (int64_t t = 0; t < T; t++) {
        job.gemm_t = t > 0 || a0 ? t : -1;
        job.gates_t = t;
        tg_parallel_for(job.slices, forward_slice, &job);
    }
    if (a)
        move(L, ws, L->AX, m * K, (const int64_t[]){1, K, m * K}, a, FROM_WS);
    if (c)
        move(L, ws, L->C, m * n_a, (const int64_t[]){1, n_a, m * n_a}, c, FROM_WS);
    ((ws_header *)ws)->forward_done = 1;
}

/* d loss / d a (and c) of every step, from the last step back: fills dZ, adds
 * into dx, da0, dc0, and when `weights` computes dWs = dZ^T @ AX for the
 * callers to scatter. Returns false when nothing flowed in (all zero). */
static bool engine_backward(const layout *L, void *ws, const tg_tensor *da,
                            const tg_tensor *dc, tg_tensor *dx, tg_tensor *da0, tg_tensor *dc0,
                            bool weights)
{
    int64_t n_x = L->n_x, n_a = L->n_a, m = L->m, T = L->T_x, K = L->K, G = L->G;
    bool lstm = L->gates == LSTM_GATES;
    if (!da && !dc)
        return false;
    const int64_t seq_strides[3] = {1, n_a, m * n_a};
    zero_rows(L, ws, L->dH, 0, 1, m * n_a, 0);
    if (da)
        move(L, ws, L->dH, m * n_a, seq_strides, da, TO_WS);
    else
        zero_rows(L, ws, L->dH, m * n_a, 1, T * m * n_a, 0);
    if (lstm) {
        zero_rows(L, ws, L->dC, 0, 1, m * n_a, 0);
        if (dc)
            move(L, ws, L->dC, m * n_a, seq_strides, dc, TO_WS);
        else
            zero_rows(L, ws, L->dC, m * n_a, 1, T * m * n_a, 0);
    }
    size_t dGh = L->gates == GRU_GATES ? L->dGh : L->dZ; /* the a side of dZ */
    /* The gates of the last step, then for t = T-1 .. 0 the gemm that takes
     * dH_t to a_{t-1} followed by the gates of step t-1, in slices. */
    step_job job = {.L = L, .ws = ws, .slices = step_slices(L), .gemm_t = -1,
                    .gates_t = T - 1, .dGh = dGh};
    tg_parallel_for(job.slices, backward_slice, &job);
    for (int64_t t = T - 1; t >= 0; t--) {
        job.gemm_t = t > 0 || da0 ? t : -1;
        job.gates_t = t - 1;
        if (job.gemm_t >= 0 || job.gates_t >= 0)
            tg_parallel_for(job.slices, backward_slice, &job);
    }
    const int64_t state_strides[2] = {1, n_a};
    if (da0)
        move(L, ws, L->dH, 0, state_strides, da0, ADD_FROM_WS);
    if (dc0 && lstm)
        move(L, ws, L->dC, 0, state_strides, dc0, ADD_FROM_WS);
    if (weights && dGh == L->dZ) /* every step's weight gradient at once: dWs = dZ^T @ AX */
        gemm(L, G, K, T * m, at(L, ws, L->dZ, 0), 1, G, at(L, ws, L->AX, 0), K, 1, 0.0,
             at(L, ws, L->dWs, 0), K, 1);
    else if (weights) { /* the GRU: dWs[:, :n_a] = dGh^T @ A and dWs[:, n_a:] = dZ^T @ X */
        gemm(L, G, n_a, T * m, at(L, ws, dGh, 0), 1, G, at(L, ws, L->AX, 0), K, 1, 0.0,
             at(L, ws, L->dWs, 0), K, 1);
        gemm(L, G, n_x, T * m, at(L, ws, L->dZ, 0), 1, G, at(L, ws, L->AX, n_a), K, 1, 0.0,
             at(L, ws, L->dWs, n_a), K, 1);
    }
    if (weights) { /* the bias gradients: column sums of dZ (and of the GRU's dGh_n for bhn) */
        column_sums(L, ws, L->dZ, 0, G, G, at(L, ws, L->dbs, 0));
        if (dGh != L->dZ)
            column_sums(L, ws, dGh, 2 * n_a, n_a, G, at(L, ws, L->dbs, G));
    }
    if (dx) { /* dX = dZ @ Wx for every step at once */
        gemm(L, T * m, n_x, G, at(L, ws, L->dZ, 0), G, 1, at(L, ws, L->Ws, n_a), K, 1, 0.0,
             at(L, ws, L->dX, 0), n_x, 1);
        move(L, ws, L->dX, 0, (const int64_t[]){1, n_x, m * n_x}, dx, ADD_FROM_WS);
    }
    return true;
}

/* dW += dWs[row0 : row0 + rows(dW), col0 : col0 + cols(dW)]. */
static void scatter_weight(const layout *L, const void *ws, tg_tensor *dW, int64_t row0,
                           int64_t col0)
{
    move(L, ws, L->dWs, row0 * L->K + col0, (const int64_t[]){L->K, 1}, dW, ADD_FROM_WS);
}

/* db (n_a,1) += dbs[index0 : index0 + n_a], the bias sums of engine_backward. */
static void scatter_bias(const layout *L, const void *ws, tg_tensor *db, int64_t index0)
{
    move(L, ws, L->dbs, index0, (const int64_t[]){1, 1}, db, ADD_FROM_WS);
}

/* ---- layout and header ----------------------------------------------------------------- */

/* Reserve rows*cols elements at *cursor (64-byte aligned); false on overflow. */
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

static tg_status make_layout(const char *who, tg_dtype dtype, int gates, int64_t n_x,
                             int64_t n_a, int64_t m, int64_t T_x, bool with_backward,
                             layout *L)
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
    if (n_x > limit || n_a > limit || m > limit || T_x > limit)
        return tg_fail(TG_ERR_OVERFLOW, "%s: sizes too large", who);
    L->dtype = dtype;
    L->gates = gates;
    L->n_x = n_x;
    L->n_a = n_a;
    L->m = m;
    L->T_x = T_x;
    L->K = n_a + n_x;
    L->G = gates * n_a;
    size_t es = L->es, K = (size_t)L->K, G = (size_t)L->G, sa = (size_t)n_a;
    size_t steps = (size_t)T_x, rows = 0, rows1 = 0, cur = 0;
    bool ok = !tg_mul_overflows(steps, (size_t)m, &rows) &&
              !tg_add_overflows(rows, (size_t)m, &rows1) &&
              place(&cur, &(size_t){0}, 1, sizeof(ws_header), 1) &&
              place(&cur, &L->Ws, G, K, es) && place(&cur, &L->WsT, K, G, es) &&
              place(&cur, &L->bs, G + (gates == GRU_GATES ? sa : 0), 1, es) &&
              place(&cur, &L->AX, rows1, K, es) && place(&cur, &L->Z, rows, G, es) &&
              (gates != LSTM_GATES || place(&cur, &L->C, rows1, sa, es)) &&
              (gates != GRU_GATES || place(&cur, &L->R, rows, G, es));
    L->forward_bytes = cur;
    ok = ok && place(&cur, &L->dZ, rows, G, es) && place(&cur, &L->dH, rows1, sa, es) &&
         (gates != LSTM_GATES || place(&cur, &L->dC, rows1, sa, es)) &&
         (gates != GRU_GATES || place(&cur, &L->dGh, rows, G, es)) &&
         place(&cur, &L->dWs, G, K, es) &&
         place(&cur, &L->dbs, G + (gates == GRU_GATES ? sa : 0), 1, es) &&
         place(&cur, &L->dX, rows, (size_t)n_x, es);
    L->total_bytes = cur;
    if (!ok || cur > (size_t)INT64_MAX)
        return tg_fail(TG_ERR_OVERFLOW, "%s: the workspace for n_x=%lld n_a=%lld m=%lld "
                                        "T_x=%lld does not fit in memory arithmetic",
                       who, (long long)n_x, (long long)n_a, (long long)m, (long long)T_x);
    L->with_backward = with_backward;
    return TG_OK;
}

static tg_status workspace_size(const char *who, tg_dtype dtype, int gates, int64_t n_x,
                                int64_t n_a, int64_t m, int64_t T_x, bool with_backward,
                                size_t *bytes)
{
    layout L;
    if (!bytes)
        return tg_fail(TG_ERR_ARG, "%s: bytes is NULL", who);
    tg_status s = make_layout(who, dtype, gates, n_x, n_a, m, T_x, with_backward, &L);
    if (s == TG_OK)
        *bytes = with_backward ? L.total_bytes : L.forward_bytes;
    return s;
}

/* The layout for x (n_x, m, T_x) and n_a hidden units. */
static tg_status layout_of(const char *who, int gates, const tg_tensor *x, int64_t n_a,
                           bool with_backward, layout *L)
{
    return make_layout(who, x->dtype, gates, x->shape[0], n_a, x->shape[1], x->shape[2],
                       with_backward, L);
}

/* The start of every forward, once its arguments are checked: the layout,
 * and the header of a workspace that holds at least the forward part,
 * aligned for doubles. The backward part is there if the bytes reach it. */
static tg_status begin_forward(const char *who, int gates, const tg_tensor *x, int64_t n_a,
                               void *ws, size_t bytes, layout *L)
{
    tg_status s = layout_of(who, gates, x, n_a, false, L);
    if (s != TG_OK)
        return s;
    if (!ws || ((uintptr_t)ws & 7) || bytes < L->forward_bytes)
        return tg_fail(TG_ERR_ARG,
                       "%s: the workspace is NULL, misaligned or too small (%zu bytes, %zu "
                       "needed; see the *_fused_workspace functions)",
                       who, bytes, L->forward_bytes);
    ws_header *h = ws;
    memset(h, 0, sizeof *h);
    h->magic = WORKSPACE_MAGIC;
    h->gates = L->gates;
    h->dtype = (int32_t)L->dtype;
    h->n_x = L->n_x;
    h->n_a = L->n_a;
    h->m = L->m;
    h->T_x = L->T_x;
    h->with_backward = bytes >= L->total_bytes;
    return TG_OK;
}

/* gates 0: any cell. for_backward: the workspace must hold the backward part. */
static tg_status read_header(const char *who, const void *workspace, size_t bytes, int gates,
                             bool for_backward, layout *L)
{
    memset(L, 0, sizeof *L);
    const ws_header *h = workspace;
    if (!workspace || ((uintptr_t)workspace & 7) || bytes < sizeof *h ||
        h->magic != WORKSPACE_MAGIC || !h->forward_done)
        return tg_fail(TG_ERR_ARG, "%s: the workspace does not hold a finished forward pass",
                       who);
    if (gates && h->gates != gates)
        return tg_fail(TG_ERR_ARG, "%s: the workspace holds the forward pass of a %s layer", who,
                       h->gates == LSTM_GATES ? "LSTM" : h->gates == GRU_GATES ? "GRU" : "RNN");
    if (for_backward && !h->with_backward)
        return tg_fail(TG_ERR_ARG,
                       "%s: the workspace was sized for forward only (with_backward false)",
                       who);
    tg_status s = make_layout(who, (tg_dtype)h->dtype, h->gates, h->n_x, h->n_a, h->m, h->T_x,
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

static tg_status check_rnn(const char *who, const tg_tensor *x, const tg_tensor *a0,
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

static tg_status check_lstm(const char *who, const tg_tensor *x, const tg_tensor *a0,
                            const tg_tensor *c0, const tg_tensor *const W[4],
                            const tg_tensor *const b[4], const tg_tensor *a, const tg_tensor *c,
                            int64_t *n_a)
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
        st = expect(who, LSTM_W_NAMES[k], W[k], x->dtype, "(n_a, n_a + n_x)", 2, *n_a,
                    *n_a + x->shape[0], 0);
        if (st == TG_OK)
            st = expect(who, LSTM_B_NAMES[k], b[k], x->dtype, "(n_a, 1)", 2, *n_a, 1, 0);
    }
    if (st == TG_OK)
        st = check_states(who, x, *n_a, (const char *const[]){"a0", "c0", "a", "c"},
                          (const tg_tensor *const[]){a0, c0, a, c});
    return st;
}

static tg_status check_gru(const char *who, const tg_tensor *x, const tg_tensor *a0,
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
            st = expect(who, GRU_W_NAMES[k], W[k], x->dtype, "(n_a, n_x)", 2, *n_a, x->shape[0],
                        0);
        if (k < 3 && st == TG_OK)
            st = expect(who, GRU_U_NAMES[k], U[k], x->dtype, "(n_a, n_a)", 2, *n_a, *n_a, 0);
        if (st == TG_OK)
            st = expect(who, GRU_B_NAMES[k], b[k], x->dtype, "(n_a, 1)", 2, *n_a, 1, 0);
    }
    if (st == TG_OK)
        st = check_states(who, x, *n_a, (const char *const[]){"a0", "", "a", ""},
                          (const tg_tensor *const[]){a0, NULL, a, NULL});
    return st;
}

/* The start of every backward: the layout of the forward that the
 * workspace holds, and the checks of the state gradients (dc, dc0: LSTM). */
static tg_status begin_backward(const char *who, const void *workspace, size_t bytes, int gates,
                                const tg_tensor *da, const tg_tensor *dc, const tg_tensor *dx,
                                const tg_tensor *da0, const tg_tensor *dc0, layout *L)
{
    tg_status s = read_header(who, workspace, bytes, gates, true, L);
    int64_t n_a = L->n_a, m = L->m, T = L->T_x;
    if (s == TG_OK)
        s = check_grad(who, "da", da, L, "(n_a, m, T_x)", n_a, m, T);
    if (s == TG_OK)
        s = check_grad(who, "dc", dc, L, "(n_a, m, T_x)", n_a, m, T);
    if (s == TG_OK)
        s = check_grad(who, "dx", dx, L, "(n_x, m, T_x)", L->n_x, m, T);
    if (s == TG_OK)
        s = check_grad(who, "da0", da0, L, "(n_a, m)", n_a, m, 0);
    if (s == TG_OK)
        s = check_grad(who, "dc0", dc0, L, "(n_a, m)", n_a, m, 0);
    return s;
}

/* A gradient given to backward: NULL is fine (not wanted / zero). depth 0: 2-D. */
static tg_status check_grad(const char *who, const char *name, const tg_tensor *t,
                            const layout *L, const char *dims, int64_t rows, int64_t cols,
                            int64_t depth)
{
    if (!t)
        return TG_OK;
    return expect(who, name, t, L->dtype, dims, depth ? 3 : 2, rows, cols, depth);
}
