/* Fused RNN, LSTM and GRU layers: the raw kernels on a caller-owned
 * workspace, and the tape nodes built on them (see fused.h). The engine
 * that computes them is fused_engine.c; the workspace layout and the
 * argument checks are in fused_layout.c. */
#include "fused.h"

#include <stdio.h>
#include <string.h>

#include "fused_internal.h"

/* ---- raw kernels: RNN ------------------------------------------------------------ */

static tg_status workspace_size(const char *who, tg_dtype dtype, fused_cell cell, int64_t n_x,
                                int64_t n_a, int64_t m, int64_t T_x, bool with_backward,
                                size_t *bytes)
{
    layout L;
    if (!bytes)
        return tg_fail(TG_ERR_ARG, "%s: bytes is NULL", who);
    tg_status s = tg_fused_make_layout(who, dtype, cell, n_x, n_a, m, T_x, m * T_x, false, false,
                                       with_backward, &L);
    if (s == TG_OK)
        *bytes = with_backward ? L.total_bytes : L.forward_bytes;
    return s;
}

tg_status tg_rnn_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                 int64_t T_x, bool with_backward, size_t *bytes)
{
    return workspace_size("tg_rnn_fused_workspace", dtype, CELL_RNN, n_x, n_a, m, T_x,
                          with_backward, bytes);
}

/* Stack the weights of a cell (params in the order of nn/recurrent.h) into
 * Ws and bs. */
static void stack_params(const layout *L, void *ws, const tg_tensor *const *p)
{
    uint64_t start = tg_fused_prof_start();
    int64_t n_a = L->n_a;
    switch (L->cell) {
    case CELL_RNN: /* Wax Waa ba */
        tg_fused_stack_matrix(L, ws, p[1], 0, 0);
        tg_fused_stack_matrix(L, ws, p[0], 0, n_a);
        tg_fused_stack_bias(L, ws, p[2], 0);
        break;
    case CELL_LSTM: /* Wf Wi Wc Wo bf bi bc bo */
        for (int k = 0; k < 4; k++) {
            tg_fused_stack_matrix(L, ws, p[k], k * n_a, 0);
            tg_fused_stack_bias(L, ws, p[4 + k], k * n_a);
        }
        break;
    default: /* GRU: Wr Wz Wn Ur Uz Un br bz bn bhn */
        for (int k = 0; k < 3; k++) {
            tg_fused_stack_matrix(L, ws, p[3 + k], k * n_a, 0);
            tg_fused_stack_matrix(L, ws, p[k], k * n_a, n_a);
        }
        for (int k = 0; k < 4; k++)
            tg_fused_stack_bias(L, ws, p[6 + k], k * n_a);
        break;
    }
    tg_fused_prof_add(PROF_PACKING, start);
}

/* Add the weight gradients of the engine's backward into dp (the cell's
 * parameter order; NULL members: not wanted). */
static void scatter_params(const layout *L, const void *ws, tg_tensor *const *dp)
{
    uint64_t start = tg_fused_prof_start();
    int64_t n_a = L->n_a;
    switch (L->cell) {
    case CELL_RNN:
        if (dp[1])
            tg_fused_scatter_weight(L, ws, dp[1], 0, 0);
        if (dp[0])
            tg_fused_scatter_weight(L, ws, dp[0], 0, n_a);
        if (dp[2])
            tg_fused_scatter_bias(L, ws, dp[2], 0);
        break;
    case CELL_LSTM:
        for (int k = 0; k < 4; k++) {
            if (dp[k])
                tg_fused_scatter_weight(L, ws, dp[k], k * n_a, 0);
            if (dp[4 + k])
                tg_fused_scatter_bias(L, ws, dp[4 + k], k * n_a);
        }
        break;
    default:
        for (int k = 0; k < 3; k++) {
            if (dp[3 + k])
                tg_fused_scatter_weight(L, ws, dp[3 + k], k * n_a, 0);
            if (dp[k])
                tg_fused_scatter_weight(L, ws, dp[k], k * n_a, n_a);
        }
        for (int k = 0; k < 4; k++) /* bhn (k = 3) is the a side's: dbs[G ...] */
            if (dp[6 + k])
                tg_fused_scatter_bias(L, ws, dp[6 + k], k * n_a);
        break;
    }
    tg_fused_prof_add(PROF_MOVES, start);
}

static int param_count(fused_cell cell)
{
    return cell == CELL_RNN ? 3 : cell == CELL_LSTM ? 8 : 10;
}

/* x (n_x,m,T_x), a0 (n_a,m) or NULL, Wax (n_a,n_x), Waa (n_a,n_a), ba (n_a,1) -> a (n_a,m,T_x) */
tg_status tg_rnn_fused_forward(const tg_tensor *x, const tg_tensor *a0, const tg_tensor *Wax,
                               const tg_tensor *Waa, const tg_tensor *ba, tg_tensor *a,
                               void *workspace, size_t workspace_bytes)
{
    const char *who = "tg_rnn_fused_forward";
    int64_t n_a;
    layout L;
    tg_status s = tg_fused_check_rnn(who, x, a0, Wax, Waa, ba, a, &n_a);
    if (s == TG_OK)
        s = tg_fused_begin_forward(who, CELL_RNN, x, n_a, NULL, false, workspace,
                                   workspace_bytes, &L);
    if (s != TG_OK)
        return s;
    stack_params(&L, workspace, (const tg_tensor *const[]){Wax, Waa, ba});
    tg_fused_engine_forward(&L, workspace, &(fused_io){.x = x, .a0 = a0, .a = a});
    return TG_OK;
}

/* da (n_a,m,T_x) or NULL -> dx (n_x,m,T_x), da0 (n_a,m), dWax, dWaa, dba += */
tg_status tg_rnn_fused_backward(void *workspace, size_t workspace_bytes,
                                const tg_tensor *da, tg_tensor *dx, tg_tensor *da0,
                                tg_tensor *dWax, tg_tensor *dWaa, tg_tensor *dba)
{
    const char *who = "tg_rnn_fused_backward";
    layout L;
    tg_status s = tg_fused_begin_backward(who, workspace, workspace_bytes, CELL_RNN, da, NULL, dx,
                                          da0, NULL, &L);
    int64_t n_a = L.n_a, n_x = L.n_x;
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "dWax", dWax, &L, "(n_a, n_x)", n_a, n_x, 0);
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "dWaa", dWaa, &L, "(n_a, n_a)", n_a, n_a, 0);
    if (s == TG_OK)
        s = tg_fused_check_grad(who, "dba", dba, &L, "(n_a, 1)", n_a, 1, 0);
    if (s != TG_OK)
        return s;
    fused_grads g = {.da = da, .dx = dx, .da0 = da0};
    if (tg_fused_engine_backward(&L, workspace, &g, dWax || dWaa || dba))
        scatter_params(&L, workspace, (tg_tensor *const[]){dWax, dWaa, dba});
    return TG_OK;
}

/* ---- raw kernels: LSTM ------------------------------------------------------------ */

tg_status tg_lstm_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                  int64_t T_x, bool with_backward, size_t *bytes)
{
    return workspace_size("tg_lstm_fused_workspace", dtype, CELL_LSTM, n_x, n_a, m, T_x,
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
    tg_status s = tg_fused_check_lstm(who, x, a0, c0, W, b, a, c, &n_a);
    if (s == TG_OK)
        s = tg_fused_begin_forward(who, CELL_LSTM, x, n_a, NULL, false, workspace,
                                   workspace_bytes, &L);
    if (s != TG_OK)
        return s;
    stack_params(&L, workspace,
                 (const tg_tensor *const[]){W[0], W[1], W[2], W[3], b[0], b[1], b[2], b[3]});
    tg_fused_engine_forward(&L, workspace, &(fused_io){.x = x, .a0 = a0, .c0 = c0, .a = a, .c = c});
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
    tg_status s = tg_fused_begin_backward(who, workspace, workspace_bytes, CELL_LSTM, da, dc, dx,
                                          da0, dc0, &L);
    tg_tensor *dp[8] = {NULL};
    bool weights = false;
    for (int k = 0; k < 4 && s == TG_OK; k++) {
        char name[8];
        dp[k] = dW ? dW[k] : NULL;
        dp[4 + k] = db ? db[k] : NULL;
        snprintf(name, sizeof name, "d%s", tg_fused_lstm_w_names[k]);
        s = tg_fused_check_grad(who, name, dp[k], &L, "(n_a, n_a + n_x)", L.n_a, L.K, 0);
        snprintf(name, sizeof name, "d%s", tg_fused_lstm_b_names[k]);
        if (s == TG_OK)
            s = tg_fused_check_grad(who, name, dp[4 + k], &L, "(n_a, 1)", L.n_a, 1, 0);
        weights = weights || dp[k] || dp[4 + k];
    }
    if (s != TG_OK)
        return s;
    fused_grads g = {.da = da, .dc = dc, .dx = dx, .da0 = da0, .dc0 = dc0};
    if (tg_fused_engine_backward(&L, workspace, &g, weights))
        scatter_params(&L, workspace, dp);
    return TG_OK;
}

/* ---- raw kernels: GRU ------------------------------------------------------------- */

tg_status tg_gru_fused_workspace(tg_dtype dtype, int64_t n_x, int64_t n_a, int64_t m,
                                 int64_t T_x, bool with_backward, size_t *bytes)
{
    return workspace_size("tg_gru_fused_workspace", dtype, CELL_GRU, n_x, n_a, m, T_x,
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
    tg_status s = tg_fused_check_gru(who, x, a0, W, U, b, a, &n_a);
    if (s == TG_OK)
        s = tg_fused_begin_forward(who, CELL_GRU, x, n_a, NULL, false, workspace,
                                   workspace_bytes, &L);
    if (s != TG_OK)
        return s;
    stack_params(&L, workspace,
                 (const tg_tensor *const[]){W[0], W[1], W[2], U[0], U[1], U[2], b[0], b[1], b[2],
                                            b[3]});
    tg_fused_engine_forward(&L, workspace, &(fused_io){.x = x, .a0 = a0, .a = a});
    return TG_OK;
}

/* da (n_a,m,T_x) or NULL -> dx (n_x,m,T_x), da0 (n_a,m), dW[k], dU[k], db[k] += */
tg_status tg_gru_fused_backward(void *workspace, size_t workspace_bytes, const tg_tensor *da,
                                tg_tensor *dx, tg_tensor *da0, tg_tensor *const dW[3],
                                tg_tensor *const dU[3], tg_tensor *const db[4])
{
    const char *who = "tg_gru_fused_backward";
    layout L;
    tg_status s = tg_fused_begin_backward(who, workspace, workspace_bytes, CELL_GRU, da, NULL, dx,
                                          da0, NULL, &L);
    tg_tensor *dp[10] = {NULL};
    bool weights = false;
    char name[8];
    for (int k = 0; k < 3 && s == TG_OK; k++) {
        dp[k] = dW ? dW[k] : NULL;
        dp[3 + k] = dU ? dU[k] : NULL;
        snprintf(name, sizeof name, "d%s", tg_fused_gru_w_names[k]);
        s = tg_fused_check_grad(who, name, dp[k], &L, "(n_a, n_x)", L.n_a, L.n_x, 0);
        snprintf(name, sizeof name, "d%s", tg_fused_gru_u_names[k]);
        if (s == TG_OK)
            s = tg_fused_check_grad(who, name, dp[3 + k], &L, "(n_a, n_a)", L.n_a, L.n_a, 0);
        weights = weights || dp[k] || dp[3 + k];
    }
    for (int k = 0; k < 4 && s == TG_OK; k++) {
        dp[6 + k] = db ? db[k] : NULL;
        snprintf(name, sizeof name, "d%s", tg_fused_gru_b_names[k]);
        s = tg_fused_check_grad(who, name, dp[6 + k], &L, "(n_a, 1)", L.n_a, 1, 0);
        weights = weights || dp[6 + k];
    }
    if (s != TG_OK)
        return s;
    fused_grads g = {.da = da, .dx = dx, .da0 = da0};
    if (tg_fused_engine_backward(&L, workspace, &g, weights))
        scatter_params(&L, workspace, dp);
    return TG_OK;
}

tg_status tg_fused_step_views(const void *workspace, size_t workspace_bytes, int64_t t,
                              tg_fused_step *step)
{
    const char *who = "tg_fused_step_views";
    layout L;
    if (!step)
        return tg_fail(TG_ERR_ARG, "%s: step is NULL", who);
    tg_status s = tg_fused_read_header(who, workspace, workspace_bytes, -1, false, &L);
    if (s != TG_OK)
        return s;
    if (L.lengths || L.reverse)
        return tg_fail(TG_ERR_ARG, "%s: the workspace holds a layer with lengths or a reverse "
                                   "direction, whose steps are not views", who);
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
    int n = L.cell == CELL_LSTM ? 9 : 3;
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

/* What a node's backward reads: its workspace, and where a0 and c0 sit
 * among its inputs (0: not given). Inputs: x, the parameters in the
 * cell's order, then a0 and c0 when given. Outputs: a, then c (LSTM with
 * cell_states), then a_n and c_n (LSTM) with final_states. */
typedef struct {
    void *ws;
    size_t bytes;
    fused_cell cell;
    int a0_at, c0_at;
    int c_at, a_n_at, c_n_at; /* output index, or 0: not an output */
} node_saved;

/* A failed check or kernel call of a node: its message goes onto the tape. */
static void node_report(tg_tape *tape, tg_status s)
{
    if (s != TG_OK)
        tg_tape_fail(tape, s, "%s", tg_last_error());
}

static void layer_backward(tg_tape *tape, const tg_entry *e)
{
    const node_saved *sv = e->saved;
    int n_params = param_count(sv->cell);
    fused_grads g = {.da = tg_grad_out(e->out[0]), .dx = tg_grad_in(tape, e->in[0])};
    g.dc = sv->c_at ? tg_grad_out(e->out[sv->c_at]) : NULL;
    g.da_n = sv->a_n_at ? tg_grad_out(e->out[sv->a_n_at]) : NULL;
    g.dc_n = sv->c_n_at ? tg_grad_out(e->out[sv->c_n_at]) : NULL;
    tg_tensor *dp[10] = {NULL};
    bool weights = false;
    for (int k = 0; k < n_params; k++) {
        dp[k] = tg_grad_in(tape, e->in[1 + k]);
        weights = weights || dp[k];
    }
    g.da0 = sv->a0_at ? tg_grad_in(tape, e->in[sv->a0_at]) : NULL;
    g.dc0 = sv->c0_at ? tg_grad_in(tape, e->in[sv->c0_at]) : NULL;
    if (tg_tape_status(tape) != TG_OK) /* a gradient buffer did not fit */
        return;
    layout L;
    uint64_t total = tg_fused_prof_start();
    tg_status s = tg_fused_read_header("tg_fused_layer backward", sv->ws, sv->bytes, sv->cell,
                                       true, &L);
    if (s == TG_OK && tg_fused_engine_backward(&L, sv->ws, &g, weights))
        scatter_params(&L, sv->ws, dp);
    tg_fused_prof_add(PROF_TOTAL, total);
    node_report(tape, s);
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

static tg_status check_layer(const char *who, fused_cell cell, const tg_tensor *x,
                             const tg_tensor *a0, const tg_tensor *c0,
                             const tg_tensor *const *p, int64_t *n_a)
{
    if (!p)
        return tg_fail(TG_ERR_ARG, "%s: the parameter array is NULL", who);
    if (cell == CELL_RNN)
        return tg_fused_check_rnn(who, x, a0, p[0], p[1], p[2], NULL, n_a);
    if (cell == CELL_LSTM)
        return tg_fused_check_lstm(who, x, a0, c0, p, p + 4, NULL, NULL, n_a);
    return tg_fused_check_gru(who, x, a0, p, p + 3, p + 6, NULL, n_a);
}

static tg_status op_failed(tg_op *op, tg_status s)
{
    tg_op_fail(op, s, "%s", tg_last_error());
    return tg_tape_status(op->tape);
}

/* The inputs of a node (x, params, a0, c0), counted; sets sv's a0_at and
 * c0_at. */
static int node_inputs(fused_cell cell, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                       tg_tensor *const *params, tg_tensor **in, node_saved *sv)
{
    int n_params = param_count(cell), n_in = 1 + n_params;
    in[0] = x;
    memcpy(in + 1, params, (size_t)n_params * sizeof *in);
    if (a0)
        in[sv->a0_at = n_in++] = a0;
    if (c0 && cell == CELL_LSTM)
        in[sv->c0_at = n_in++] = c0;
    return n_in;
}

/* The outputs a node makes (sets sv's output indices), counted. */
static int node_outputs(fused_cell cell, const tg_fused_layer_options *o, node_saved *sv)
{
    bool lstm = cell == CELL_LSTM;
    int n = 1;
    if (lstm && o->cell_states)
        sv->c_at = n++;
    if (o->final_states) {
        sv->a_n_at = n++;
        if (lstm)
            sv->c_n_at = n++;
    }
    return n;
}

/* The general node: every layer kind, with lengths and a direction. */
static tg_status layer_node(tg_tape *tape, const char *who, fused_cell cell, tg_tensor *x,
                            tg_tensor *a0, tg_tensor *c0, tg_tensor *const *params,
                            const tg_fused_layer_options *o, tg_fused_layer_out *result)
{
    int64_t n_a = 0, R = 0;
    tg_status checked = TG_OK;
    if (tape && tg_tape_status(tape) == TG_OK) {
        checked = check_layer(who, cell, x, a0, cell == CELL_LSTM ? c0 : NULL,
                              (const tg_tensor *const *)params, &n_a);
        if (checked == TG_OK)
            checked = tg_fused_rows(who, o->lengths, x->shape[1], x->shape[2], &R);
    }
    tg_status s = node_check(tape, who, checked);
    if (s != TG_OK)
        return s;
    node_saved sv = {.cell = cell};
    tg_tensor *in[13], *out[4] = {NULL};
    int n_in = node_inputs(cell, x, a0, c0, params, in, &sv), n_out = node_outputs(cell, o, &sv);
    tg_op op;
    if (!tg_op_begin_array(&op, tape, who, n_in, in))
        return tg_last_status();
    layout L;
    s = tg_fused_make_layout(who, x->dtype, cell, x->shape[0], n_a, x->shape[1], x->shape[2], R,
                             o->lengths != NULL, o->reverse, op.needs_grad, &L);
    if (s != TG_OK)
        return op_failed(&op, s);
    sv.bytes = op.needs_grad ? L.total_bytes : L.forward_bytes;
    sv.ws = tg_tape_alloc(tape, sv.bytes);
    const int64_t dims[3] = {n_a, x->shape[1], x->shape[2]};
    for (int k = 0; k < n_out && sv.ws; k++) {
        bool sequence = k == 0 || k == sv.c_at;
        if (!(out[k] = tg_op_output(&op, x->dtype, sequence ? 3 : 2, dims)))
            sv.ws = NULL;
    }
    if (!sv.ws)
        return tg_tape_status(tape);
    s = tg_fused_begin_forward(who, cell, x, n_a, o->lengths, o->reverse, sv.ws, sv.bytes, &L);
    if (s != TG_OK)
        return op_failed(&op, s);
    uint64_t total = tg_fused_prof_start();
    stack_params(&L, sv.ws, (const tg_tensor *const *)params);
    fused_io io = {.x = x, .a0 = a0, .c0 = cell == CELL_LSTM ? c0 : NULL, .a = out[0],
                   .c = sv.c_at ? out[sv.c_at] : NULL, .a_n = sv.a_n_at ? out[sv.a_n_at] : NULL,
                   .c_n = sv.c_n_at ? out[sv.c_n_at] : NULL};
    tg_fused_engine_forward(&L, sv.ws, &io);
    tg_fused_prof_add(PROF_TOTAL, total);
    tg_entry *e = tg_op_record_n(&op, layer_backward, n_out, out);
    if (e) {
        node_saved *saved = tg_tape_alloc(tape, sizeof *saved);
        if (saved)
            *saved = sv;
        e->saved = saved;
    }
    s = tg_op_finish_n(&op, n_out, out);
    if (s == TG_OK)
        *result = (tg_fused_layer_out){.a = out[0], .c = io.c, .a_n = io.a_n, .c_n = io.c_n};
    return s;
}

tg_fused_layer_options tg_fused_layer_defaults(void)
{
    return (tg_fused_layer_options){.linear_before_reset = true};
}

tg_status tg_fused_layer(tg_tape *tape, tg_cell cell, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                         tg_tensor *const *params, const tg_fused_layer_options *options,
                         tg_fused_layer_out *out)
{
    const char *who = "tg_fused_layer";
    tg_fused_layer_options o = options ? *options : tg_fused_layer_defaults();
    if (tape && tg_tape_status(tape) == TG_OK) {
        if (!out)
            return node_check(tape, who, tg_fail(TG_ERR_ARG, "%s: out is NULL", who));
        if (cell != TG_CELL_RNN && cell != TG_CELL_LSTM && cell != TG_CELL_GRU)
            return node_check(tape, who, tg_fail(TG_ERR_ARG, "%s: unknown cell %d", who,
                                                 (int)cell));
    }
    if (out)
        *out = (tg_fused_layer_out){NULL, NULL, NULL, NULL};
    fused_cell fc = cell == TG_CELL_RNN    ? CELL_RNN
                    : cell == TG_CELL_LSTM ? CELL_LSTM
                    : o.linear_before_reset ? CELL_GRU
                                           : CELL_GRU_RESET_FIRST;
    return layer_node(tape, who, fc, x, a0, c0, params, &o, out);
}

tg_tensor *tg_rnn_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *Wax,
                        tg_tensor *Waa, tg_tensor *ba)
{
    tg_fused_layer_options o = tg_fused_layer_defaults();
    tg_fused_layer_out out = {NULL, NULL, NULL, NULL};
    tg_tensor *p[3] = {Wax, Waa, ba};
    return layer_node(tape, "tg_rnn_fused", CELL_RNN, x, a0, NULL, p, &o, &out) == TG_OK ? out.a
                                                                                       : NULL;
}

tg_tensor *tg_lstm_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *c0,
                         tg_tensor *const W[4], tg_tensor *const b[4], tg_tensor **c)
{
    const char *who = "tg_lstm_fused";
    if (c)
        *c = NULL;
    if (tape && tg_tape_status(tape) == TG_OK && (!W || !b)) {
        node_check(tape, who, tg_fail(TG_ERR_ARG, "%s: the weight array W or the bias array b "
                                                  "is NULL", who));
        return NULL;
    }
    tg_fused_layer_options o = tg_fused_layer_defaults();
    o.cell_states = c != NULL;
    tg_fused_layer_out out = {NULL, NULL, NULL, NULL};
    tg_tensor *p[8] = {NULL};
    if (W && b)
        for (int k = 0; k < 4; k++) {
            p[k] = W[k];
            p[4 + k] = b[k];
        }
    if (layer_node(tape, who, CELL_LSTM, x, a0, c0, p, &o, &out) != TG_OK)
        return NULL;
    if (c)
        *c = out.c;
    return out.a;
}

tg_tensor *tg_gru_fused(tg_tape *tape, tg_tensor *x, tg_tensor *a0, tg_tensor *const W[3],
                        tg_tensor *const U[3], tg_tensor *const b[4])
{
    const char *who = "tg_gru_fused";
    if (tape && tg_tape_status(tape) == TG_OK && (!W || !U || !b)) {
        node_check(tape, who, tg_fail(TG_ERR_ARG, "%s: the array W, U or b is NULL", who));
        return NULL;
    }
    tg_fused_layer_options o = tg_fused_layer_defaults();
    tg_fused_layer_out out = {NULL, NULL, NULL, NULL};
    tg_tensor *p[10] = {NULL};
    if (W && U && b)
        for (int k = 0; k < 4; k++) {
            if (k < 3) {
                p[k] = W[k];
                p[3 + k] = U[k];
            }
            p[6 + k] = b[k];
        }
    return layer_node(tape, who, CELL_GRU, x, a0, NULL, p, &o, &out) == TG_OK ? out.a : NULL;
}
