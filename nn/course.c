/* The course's API in C (see course.h). rnn_forward/rnn_backward and
 * lstm_forward/lstm_backward wrap the fused kernels of fused.c; the cell
 * functions spell out the notebook's formulas with gemms and loops. */
#include "course.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/gemm.h"
#include "fused.h"

enum { MAX_OWNED = 16 };

/* Tensors made by one call: all released if the call fails, so that a
 * failed call writes none of its outputs. */
typedef struct {
    tg_tensor *t[MAX_OWNED];
    int n;
    bool failed;
} owned;

static tg_tensor *own(owned *o, tg_tensor *t);
static void release(owned *o);
static tg_tensor *zeros(owned *o, tg_dtype dtype, int64_t rows, int64_t cols);
static tg_tensor *copy_of(owned *o, const tg_tensor *t);
static tg_status lookup(const char *who, const tg_params *parameters, const char *name,
                        tg_dtype dtype, int64_t rows, int64_t cols, const char *dims,
                        const tg_tensor **out);
static tg_status check_input(const char *who, const char *name, const tg_tensor *t,
                             tg_dtype dtype, int ndim, int64_t d0, int64_t d1, int64_t d2,
                             const char *dims);
static tg_status check_inputs(const char *who, const char *x_name, const tg_tensor *x,
                              int ndim, const char *a_name, const tg_tensor *a);
static tg_status lookup_rnn(const char *who, const tg_params *parameters, tg_dtype dtype,
                            int64_t n_a, int64_t n_x, const tg_tensor **Wax,
                            const tg_tensor **Waa, const tg_tensor **Wya, const tg_tensor **ba,
                            const tg_tensor **by);
static tg_tensor *predict(owned *o, const tg_tensor *Wy, const tg_tensor *by,
                          const tg_tensor *a);
static double get(const tg_tensor *t, int64_t i) { return tg_tensor_get_flat(t, i); }
static void set(tg_tensor *t, int64_t i, double v) { tg_tensor_set_flat(t, i, v); }
static void sum_columns(tg_tensor *db, const tg_tensor *dz);
static tg_status gemm_t(const tg_tensor *A, bool transpose_a, const tg_tensor *B,
                        bool transpose_b, double beta, tg_tensor *C);

static const char *const LSTM_W[4] = {"Wf", "Wi", "Wc", "Wo"};
static const char *const LSTM_B[4] = {"bf", "bi", "bc", "bo"};

/* ---- RNN ------------------------------------------------------------------------------ */

/* xt (n_x,m), a_prev (n_a,m) -> a_next (n_a,m), yt_pred (n_y,m), cache */
tg_status tg_course_rnn_cell_forward(const tg_tensor *xt, const tg_tensor *a_prev,
                              const tg_params *parameters, tg_tensor **a_next,
                              tg_tensor **yt_pred, tg_course_rnn_cell_cache *cache)
{
    const char *who = "tg_course_rnn_cell_forward";
    if (!a_next || !yt_pred || !cache)
        return tg_fail(TG_ERR_ARG, "%s: an output pointer is NULL", who);
    tg_status s = check_inputs(who, "xt", xt, 2, "a_prev", a_prev);
    if (s != TG_OK)
        return s;
    int64_t n_x = xt->shape[0], m = xt->shape[1], n_a = a_prev->shape[0];
    const tg_tensor *Wax, *Waa, *Wya, *ba, *by;
    s = lookup_rnn(who, parameters, xt->dtype, n_a, n_x, &Wax, &Waa, &Wya, &ba, &by);
    if (s != TG_OK)
        return s;
    owned o = {0};
    tg_tensor *a = zeros(&o, xt->dtype, n_a, m);
    if (a) { /* a_next = tanh(Waa a_prev + Wax xt + ba) */
        tg_gemm(1.0, Waa, a_prev, 0.0, a);
        tg_gemm(1.0, Wax, xt, 1.0, a);
        for (int64_t i = 0; i < n_a; i++)
            for (int64_t j = 0; j < m; j++)
                set(a, i * m + j, tanh(get(a, i * m + j) + get(ba, i)));
    }
    tg_tensor *y = a ? predict(&o, Wya, by, a) : NULL;
    tg_course_rnn_cell_cache c = {copy_of(&o, a), copy_of(&o, a_prev), copy_of(&o, xt), parameters};
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *a_next = a;
    *yt_pred = y;
    *cache = c;
    return TG_OK;
}

/* da_next (n_a,m), cache -> dxt (n_x,m), da_prev (n_a,m), dWax, dWaa, dba */
tg_status tg_course_rnn_cell_backward(const tg_tensor *da_next, const tg_course_rnn_cell_cache *cache,
                               tg_course_rnn_cell_gradients *gradients)
{
    const char *who = "tg_course_rnn_cell_backward";
    if (!cache || !cache->a_next || !cache->a_prev || !cache->xt || !gradients)
        return tg_fail(TG_ERR_ARG, "%s: the cache (or gradients) is NULL or empty", who);
    const tg_tensor *a_next = cache->a_next, *a_prev = cache->a_prev, *xt = cache->xt;
    tg_dtype dtype = xt->dtype;
    int64_t n_a = a_next->shape[0], m = a_next->shape[1], n_x = xt->shape[0];
    tg_status s = check_input(who, "da_next", da_next, dtype, 2, n_a, m, 0, "(n_a, m)");
    const tg_tensor *Wax, *Waa;
    if (s == TG_OK)
        s = lookup(who, cache->parameters, "Wax", dtype, n_a, n_x, "(n_a, n_x)", &Wax);
    if (s == TG_OK)
        s = lookup(who, cache->parameters, "Waa", dtype, n_a, n_a, "(n_a, n_a)", &Waa);
    if (s != TG_OK)
        return s;
    owned o = {0}, tmp = {0};
    tg_tensor *dtanh = zeros(&tmp, dtype, n_a, m);
    tg_course_rnn_cell_gradients g = {zeros(&o, dtype, n_x, m), zeros(&o, dtype, n_a, m),
                               zeros(&o, dtype, n_a, n_x), zeros(&o, dtype, n_a, n_a),
                               zeros(&o, dtype, n_a, 1)};
    if (!o.failed && !tmp.failed) {
        /* dtanh = da_next * (1 - a_next^2), as tanh' = 1 - tanh^2 */
        for (int64_t k = 0; k < n_a * m; k++) {
            double an = get(a_next, k);
            set(dtanh, k, tg_tensor_get(da_next, (int64_t[]){k / m, k % m}) * (1 - an * an));
        }
        gemm_t(Wax, true, dtanh, false, 0.0, g.dxt);    /* dxt = Wax^T dtanh */
        gemm_t(dtanh, false, xt, true, 0.0, g.dWax);    /* dWax = dtanh xt^T */
        gemm_t(Waa, true, dtanh, false, 0.0, g.da_prev); /* da_prev = Waa^T dtanh */
        gemm_t(dtanh, false, a_prev, true, 0.0, g.dWaa); /* dWaa = dtanh a_prev^T */
        sum_columns(g.dba, dtanh);                       /* dba = sum(dtanh, axis=1) */
    }
    release(&tmp);
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *gradients = g;
    return TG_OK;
}

/* x (n_x,m,T_x), a0 (n_a,m) -> a (n_a,m,T_x), y_pred (n_y,m,T_x), caches */
tg_status tg_course_rnn_forward(const tg_tensor *x, const tg_tensor *a0, const tg_params *parameters,
                         tg_tensor **a, tg_tensor **y_pred, tg_course_rnn_caches *caches)
{
    const char *who = "tg_course_rnn_forward";
    if (!a || !y_pred || !caches)
        return tg_fail(TG_ERR_ARG, "%s: an output pointer is NULL", who);
    tg_status s = check_inputs(who, "x", x, 3, "a0", a0);
    if (s != TG_OK)
        return s;
    int64_t n_x = x->shape[0], m = x->shape[1], T = x->shape[2], n_a = a0->shape[0];
    const tg_tensor *Wax, *Waa, *Wya, *ba, *by;
    s = lookup_rnn(who, parameters, x->dtype, n_a, n_x, &Wax, &Waa, &Wya, &ba, &by);
    size_t bytes = 0;
    if (s == TG_OK)
        s = tg_rnn_fused_workspace(x->dtype, n_x, n_a, m, T, true, &bytes);
    if (s != TG_OK)
        return s;
    void *ws = malloc(bytes);
    if (!ws)
        return tg_fail(TG_ERR_NOMEM, "%s: no memory for a workspace of %zu bytes", who, bytes);
    owned o = {0};
    tg_tensor *a_all = own(&o, tg_tensor_zeros(x->dtype, TG_DIMS(n_a, m, T)));
    if (a_all && tg_rnn_fused_forward(x, a0, Wax, Waa, ba, a_all, ws, bytes) != TG_OK)
        o.failed = true;
    tg_tensor *y = o.failed ? NULL : predict(&o, Wya, by, a_all);
    tg_tensor *x_copy = copy_of(&o, x);
    if (o.failed) {
        release(&o);
        free(ws);
        return tg_last_status();
    }
    *a = a_all;
    *y_pred = y;
    *caches = (tg_course_rnn_caches){x_copy, parameters, n_x, n_a, m, T, ws, bytes};
    return TG_OK;
}

/* da (n_a,m,T_x), caches -> dx (n_x,m,T_x), da0 (n_a,m), dWax, dWaa, dba */
tg_status tg_course_rnn_backward(const tg_tensor *da, const tg_course_rnn_caches *caches,
                          tg_course_rnn_gradients *gradients)
{
    const char *who = "tg_course_rnn_backward";
    if (!caches || !caches->workspace || !gradients)
        return tg_fail(TG_ERR_ARG, "%s: the caches (or gradients) are NULL or empty", who);
    int64_t n_x = caches->n_x, n_a = caches->n_a, m = caches->m, T = caches->T_x;
    tg_dtype dtype = caches->x->dtype;
    tg_status s = check_input(who, "da", da, dtype, 3, n_a, m, T, "(n_a, m, T_x)");
    if (s != TG_OK)
        return s;
    owned o = {0};
    tg_course_rnn_gradients g = {own(&o, tg_tensor_zeros(dtype, TG_DIMS(n_x, m, T))),
                          zeros(&o, dtype, n_a, m), zeros(&o, dtype, n_a, n_x),
                          zeros(&o, dtype, n_a, n_a), zeros(&o, dtype, n_a, 1)};
    if (!o.failed && tg_rnn_fused_backward(caches->workspace, caches->workspace_bytes, da, g.dx,
                                           g.da0, g.dWax, g.dWaa, g.dba) != TG_OK)
        o.failed = true;
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *gradients = g;
    return TG_OK;
}

tg_status tg_course_rnn_caches_step(const tg_course_rnn_caches *caches, int64_t t, tg_course_rnn_cell_cache *cache)
{
    tg_fused_step st;
    if (!caches || !cache)
        return tg_fail(TG_ERR_ARG, "tg_course_rnn_caches_step: caches or cache is NULL");
    if (tg_fused_step_views(caches->workspace, caches->workspace_bytes, t, &st) != TG_OK)
        return tg_fail(tg_last_status(), "tg_course_rnn_caches_step: %s", tg_last_error());
    owned o = {0};
    tg_course_rnn_cell_cache c = {copy_of(&o, &st.a_next), copy_of(&o, &st.a_prev),
                           copy_of(&o, &st.xt), caches->parameters};
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *cache = c;
    return TG_OK;
}

/* Free every tensor listed (NULL ones too: tg_tensor_free ignores them). */
#define FREE_TENSORS(...)                                                     \
    do {                                                                      \
        tg_tensor *all_[] = {__VA_ARGS__};                                    \
        for (size_t k_ = 0; k_ < sizeof all_ / sizeof all_[0]; k_++)          \
            tg_tensor_free(all_[k_]);                                         \
    } while (0)

void tg_course_rnn_cell_cache_free(tg_course_rnn_cell_cache *cache)
{
    if (!cache)
        return;
    FREE_TENSORS(cache->a_next, cache->a_prev, cache->xt);
    memset(cache, 0, sizeof *cache);
}

void tg_course_rnn_cell_gradients_free(tg_course_rnn_cell_gradients *g)
{
    if (!g)
        return;
    FREE_TENSORS(g->dxt, g->da_prev, g->dWax, g->dWaa, g->dba);
    memset(g, 0, sizeof *g);
}

void tg_course_rnn_caches_free(tg_course_rnn_caches *caches)
{
    if (!caches)
        return;
    tg_tensor_free(caches->x);
    free(caches->workspace);
    memset(caches, 0, sizeof *caches);
}

void tg_course_rnn_gradients_free(tg_course_rnn_gradients *g)
{
    if (!g)
        return;
    FREE_TENSORS(g->dx, g->da0, g->dWax, g->dWaa, g->dba);
    memset(g, 0, sizeof *g);
}

/* ---- LSTM ----------------------------------------------------------------------------- */

/* The four gate weights and biases, in the order f, i, c, o; with Wy
 * non-NULL, then the output layer Wy, by. */
static tg_status lookup_lstm(const char *who, const tg_params *parameters, tg_dtype dtype,
                             int64_t n_a, int64_t n_x, const tg_tensor *W[4],
                             const tg_tensor *b[4], const tg_tensor **Wy, const tg_tensor **by)
{
    tg_status s = TG_OK;
    for (int k = 0; k < 4 && s == TG_OK; k++) {
        s = lookup(who, parameters, LSTM_W[k], dtype, n_a, n_a + n_x, "(n_a, n_a + n_x)", &W[k]);
        if (s == TG_OK)
            s = lookup(who, parameters, LSTM_B[k], dtype, n_a, 1, "(n_a, 1)", &b[k]);
    }
    if (s == TG_OK && Wy)
        s = lookup(who, parameters, "Wy", dtype, -1, n_a, "(n_y, n_a)", Wy);
    if (s == TG_OK && Wy)
        s = lookup(who, parameters, "by", dtype, (*Wy)->shape[0], 1, "(n_y, 1)", by);
    return s;
}

/* concat = [a_prev; xt] (n_a + n_x, m) */
static tg_tensor *concat_of(owned *o, const tg_tensor *a_prev, const tg_tensor *xt)
{
    int64_t n_a = a_prev->shape[0], n_x = xt->shape[0];
    tg_tensor *concat = zeros(o, xt->dtype, n_a + n_x, xt->shape[1]);
    tg_tensor top, bottom;
    if (!concat)
        return NULL;
    tg_view_slice(&top, concat, 0, 0, n_a, 1);
    tg_view_slice(&bottom, concat, 0, n_a, n_a + n_x, 1);
    tg_tensor_copy_into(&top, a_prev);
    tg_tensor_copy_into(&bottom, xt);
    return concat;
}

static double sigmoid(double v) { return v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v)); }

/* xt (n_x,m), a_prev c_prev (n_a,m) -> a_next, c_next (n_a,m), yt_pred (n_y,m), cache */
tg_status tg_course_lstm_cell_forward(const tg_tensor *xt, const tg_tensor *a_prev,
                               const tg_tensor *c_prev, const tg_params *parameters,
                               tg_tensor **a_next, tg_tensor **c_next, tg_tensor **yt_pred,
                               tg_course_lstm_cell_cache *cache)
{
    const char *who = "tg_course_lstm_cell_forward";
    if (!a_next || !c_next || !yt_pred || !cache)
        return tg_fail(TG_ERR_ARG, "%s: an output pointer is NULL", who);
    tg_status s = check_inputs(who, "xt", xt, 2, "a_prev", a_prev);
    if (s != TG_OK)
        return s;
    tg_dtype dtype = xt->dtype;
    int64_t n_x = xt->shape[0], m = xt->shape[1], n_a = a_prev->shape[0];
    const tg_tensor *W[4], *b[4], *Wy, *by;
    s = check_input(who, "c_prev", c_prev, dtype, 2, n_a, m, 0, "(n_a, m)");
    if (s == TG_OK)
        s = lookup_lstm(who, parameters, dtype, n_a, n_x, W, b, &Wy, &by);
    if (s != TG_OK)
        return s;
    owned o = {0}, tmp = {0};
    tg_tensor *concat = concat_of(&tmp, a_prev, xt);
    tg_tensor *gate[4]; /* ft, it, cct, ot */
    for (int k = 0; k < 4; k++)
        gate[k] = zeros(&o, dtype, n_a, m);
    tg_tensor *c = zeros(&o, dtype, n_a, m), *a = zeros(&o, dtype, n_a, m), *y = NULL;
    if (!o.failed && !tmp.failed) {
        for (int k = 0; k < 4; k++) { /* gate = act(W concat + b) */
            tg_gemm(1.0, W[k], concat, 0.0, gate[k]);
            for (int64_t q = 0; q < n_a * m; q++) {
                double z = get(gate[k], q) + get(b[k], q / m);
                set(gate[k], q, k == 2 ? tanh(z) : sigmoid(z));
            }
        }
        for (int64_t q = 0; q < n_a * m; q++) { /* c = c_prev*ft + cct*it; a = ot*tanh(c) */
            double cp = tg_tensor_get(c_prev, (int64_t[]){q / m, q % m});
            double cn = get(gate[0], q) * cp + get(gate[1], q) * get(gate[2], q);
            set(c, q, cn);
            set(a, q, get(gate[3], q) * tanh(cn));
        }
        y = predict(&o, Wy, by, a);
    }
    tg_course_lstm_cell_cache cc = {copy_of(&o, a),       copy_of(&o, c),       copy_of(&o, a_prev),
                             copy_of(&o, c_prev),  gate[0],              gate[1],
                             gate[2],              gate[3],              copy_of(&o, xt),
                             parameters};
    release(&tmp);
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *a_next = a;
    *c_next = c;
    *yt_pred = y;
    *cache = cc;
    return TG_OK;
}

/* da_next dc_next (n_a,m), cache -> dxt, da_prev, dc_prev, dWf..dWo, dbf..dbo */
tg_status tg_course_lstm_cell_backward(const tg_tensor *da_next, const tg_tensor *dc_next,
                                const tg_course_lstm_cell_cache *cache,
                                tg_course_lstm_cell_gradients *gradients)
{
    const char *who = "tg_course_lstm_cell_backward";
    if (!cache || !cache->a_next || !cache->c_next || !cache->a_prev || !cache->c_prev ||
        !cache->ft || !cache->it || !cache->cct || !cache->ot || !cache->xt || !gradients)
        return tg_fail(TG_ERR_ARG, "%s: the cache (or gradients) is NULL or empty", who);
    tg_dtype dtype = cache->xt->dtype;
    int64_t n_a = cache->a_next->shape[0], m = cache->a_next->shape[1], n_x = cache->xt->shape[0];
    tg_status s = check_input(who, "da_next", da_next, dtype, 2, n_a, m, 0, "(n_a, m)");
    if (s == TG_OK)
        s = check_input(who, "dc_next", dc_next, dtype, 2, n_a, m, 0, "(n_a, m)");
    const tg_tensor *W[4], *b[4];
    if (s == TG_OK)
        s = lookup_lstm(who, cache->parameters, dtype, n_a, n_x, W, b, NULL, NULL);
    if (s != TG_OK)
        return s;
    owned o = {0}, tmp = {0};
    tg_tensor *concat = concat_of(&tmp, cache->a_prev, cache->xt);
    tg_tensor *dgate[4]; /* dft, dit, dcct, dot: d loss / d pre-activations */
    for (int k = 0; k < 4; k++)
        dgate[k] = zeros(&tmp, dtype, n_a, m);
    tg_course_lstm_cell_gradients g = {zeros(&o, dtype, n_x, m),     zeros(&o, dtype, n_a, m),
                                zeros(&o, dtype, n_a, m),     zeros(&o, dtype, n_a, n_a + n_x),
                                zeros(&o, dtype, n_a, 1),     zeros(&o, dtype, n_a, n_a + n_x),
                                zeros(&o, dtype, n_a, 1),     zeros(&o, dtype, n_a, n_a + n_x),
                                zeros(&o, dtype, n_a, 1),     zeros(&o, dtype, n_a, n_a + n_x),
                                zeros(&o, dtype, n_a, 1)};
    if (!o.failed && !tmp.failed) {
        for (int64_t q = 0; q < n_a * m; q++) {
            int64_t ij[2] = {q / m, q % m};
            double da = tg_tensor_get(da_next, ij), dc = tg_tensor_get(dc_next, ij);
            double ft = get(cache->ft, q), it = get(cache->it, q), cct = get(cache->cct, q);
            double ot = get(cache->ot, q), tc = tanh(get(cache->c_next, q)), cp = get(cache->c_prev, q);
            double dc_total = dc + ot * (1 - tc * tc) * da; /* the course's dc_next + ... */
            set(dgate[3], q, da * tc * ot * (1 - ot));
            set(dgate[2], q, dc_total * it * (1 - cct * cct));
            set(dgate[1], q, dc_total * cct * it * (1 - it));
            set(dgate[0], q, dc_total * cp * ft * (1 - ft));
            set(g.dc_prev, q, dc_total * ft);
        }
        tg_tensor *dW[4] = {g.dWf, g.dWi, g.dWc, g.dWo}, *db[4] = {g.dbf, g.dbi, g.dbc, g.dbo};
        for (int k = 0; k < 4; k++) {
            tg_tensor Wa, Wx;
            tg_view_slice(&Wa, W[k], 1, 0, n_a, 1);       /* W[:, :n_a] */
            tg_view_slice(&Wx, W[k], 1, n_a, n_a + n_x, 1); /* W[:, n_a:] */
            gemm_t(dgate[k], false, concat, true, 0.0, dW[k]); /* dW = dgate concat^T */
            sum_columns(db[k], dgate[k]);
            gemm_t(&Wa, true, dgate[k], false, 1.0, g.da_prev); /* da_prev += Wa^T dgate */
            gemm_t(&Wx, true, dgate[k], false, 1.0, g.dxt);     /* dxt += Wx^T dgate */
        }
    }
    release(&tmp);
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *gradients = g;
    return TG_OK;
}

/* x (n_x,m,T_x), a0 (n_a,m), c0 = 0 -> a (n_a,m,T_x), y (n_y,m,T_x), c (n_a,m,T_x), caches */
tg_status tg_course_lstm_forward(const tg_tensor *x, const tg_tensor *a0, const tg_params *parameters,
                          tg_tensor **a, tg_tensor **y, tg_tensor **c, tg_course_lstm_caches *caches)
{
    const char *who = "tg_course_lstm_forward";
    if (!a || !y || !c || !caches)
        return tg_fail(TG_ERR_ARG, "%s: an output pointer is NULL", who);
    tg_status s = check_inputs(who, "x", x, 3, "a0", a0);
    if (s != TG_OK)
        return s;
    tg_dtype dtype = x->dtype;
    int64_t n_x = x->shape[0], m = x->shape[1], T = x->shape[2], n_a = a0->shape[0];
    const tg_tensor *W[4], *b[4], *Wy, *by;
    s = lookup_lstm(who, parameters, dtype, n_a, n_x, W, b, &Wy, &by);
    size_t bytes = 0;
    if (s == TG_OK)
        s = tg_lstm_fused_workspace(dtype, n_x, n_a, m, T, true, &bytes);
    if (s != TG_OK)
        return s;
    void *ws = malloc(bytes);
    if (!ws)
        return tg_fail(TG_ERR_NOMEM, "%s: no memory for a workspace of %zu bytes", who, bytes);
    owned o = {0};
    tg_tensor *a_all = own(&o, tg_tensor_zeros(dtype, TG_DIMS(n_a, m, T)));
    tg_tensor *c_all = own(&o, tg_tensor_zeros(dtype, TG_DIMS(n_a, m, T)));
    if (!o.failed && tg_lstm_fused_forward(x, a0, NULL, W, b, a_all, c_all, ws, bytes) != TG_OK)
        o.failed = true;
    tg_tensor *y_all = o.failed ? NULL : predict(&o, Wy, by, a_all);
    tg_tensor *x_copy = copy_of(&o, x);
    if (o.failed) {
        release(&o);
        free(ws);
        return tg_last_status();
    }
    *a = a_all;
    *y = y_all;
    *c = c_all;
    *caches = (tg_course_lstm_caches){x_copy, parameters, n_x, n_a, m, T, ws, bytes};
    return TG_OK;
}

/* da (n_a,m,T_x), caches -> dx (n_x,m,T_x), da0 (n_a,m), dWf..dWo, dbf..dbo */
tg_status tg_course_lstm_backward(const tg_tensor *da, const tg_course_lstm_caches *caches,
                           tg_course_lstm_gradients *gradients)
{
    const char *who = "tg_course_lstm_backward";
    if (!caches || !caches->workspace || !gradients)
        return tg_fail(TG_ERR_ARG, "%s: the caches (or gradients) are NULL or empty", who);
    int64_t n_x = caches->n_x, n_a = caches->n_a, m = caches->m, T = caches->T_x;
    tg_dtype dtype = caches->x->dtype;
    tg_status s = check_input(who, "da", da, dtype, 3, n_a, m, T, "(n_a, m, T_x)");
    if (s != TG_OK)
        return s;
    owned o = {0};
    int64_t K = n_a + n_x;
    tg_course_lstm_gradients g = {own(&o, tg_tensor_zeros(dtype, TG_DIMS(n_x, m, T))),
                           zeros(&o, dtype, n_a, m),
                           zeros(&o, dtype, n_a, K), zeros(&o, dtype, n_a, 1),
                           zeros(&o, dtype, n_a, K), zeros(&o, dtype, n_a, 1),
                           zeros(&o, dtype, n_a, K), zeros(&o, dtype, n_a, 1),
                           zeros(&o, dtype, n_a, K), zeros(&o, dtype, n_a, 1)};
    tg_tensor *dW[4] = {g.dWf, g.dWi, g.dWc, g.dWo}, *db[4] = {g.dbf, g.dbi, g.dbc, g.dbo};
    /* The course's lstm_backward takes no gradient for c: dc = NULL. */
    if (!o.failed && tg_lstm_fused_backward(caches->workspace, caches->workspace_bytes, da, NULL,
                                            g.dx, g.da0, NULL, dW, db) != TG_OK)
        o.failed = true;
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *gradients = g;
    return TG_OK;
}

tg_status tg_course_lstm_caches_step(const tg_course_lstm_caches *caches, int64_t t,
                              tg_course_lstm_cell_cache *cache)
{
    tg_fused_step st;
    if (!caches || !cache)
        return tg_fail(TG_ERR_ARG, "tg_course_lstm_caches_step: caches or cache is NULL");
    if (tg_fused_step_views(caches->workspace, caches->workspace_bytes, t, &st) != TG_OK)
        return tg_fail(tg_last_status(), "tg_course_lstm_caches_step: %s", tg_last_error());
    owned o = {0};
    tg_course_lstm_cell_cache c = {copy_of(&o, &st.a_next), copy_of(&o, &st.c_next),
                            copy_of(&o, &st.a_prev), copy_of(&o, &st.c_prev),
                            copy_of(&o, &st.ft),     copy_of(&o, &st.it),
                            copy_of(&o, &st.cct),    copy_of(&o, &st.ot),
                            copy_of(&o, &st.xt),     caches->parameters};
    if (o.failed) {
        release(&o);
        return tg_last_status();
    }
    *cache = c;
    return TG_OK;
}

void tg_course_lstm_cell_cache_free(tg_course_lstm_cell_cache *cache)
{
    if (!cache)
        return;
    FREE_TENSORS(cache->a_next, cache->c_next, cache->a_prev, cache->c_prev, cache->ft, cache->it,
                 cache->cct, cache->ot, cache->xt);
    memset(cache, 0, sizeof *cache);
}

void tg_course_lstm_cell_gradients_free(tg_course_lstm_cell_gradients *g)
{
    if (!g)
        return;
    FREE_TENSORS(g->dxt, g->da_prev, g->dc_prev, g->dWf, g->dbf, g->dWi, g->dbi, g->dWc, g->dbc,
                 g->dWo, g->dbo);
    memset(g, 0, sizeof *g);
}

void tg_course_lstm_caches_free(tg_course_lstm_caches *caches)
{
    if (!caches)
        return;
    tg_tensor_free(caches->x);
    free(caches->workspace);
    memset(caches, 0, sizeof *caches);
}

void tg_course_lstm_gradients_free(tg_course_lstm_gradients *g)
{
    if (!g)
        return;
    FREE_TENSORS(g->dx, g->da0, g->dWf, g->dbf, g->dWi, g->dbi, g->dWc, g->dbc, g->dWo, g->dbo);
    memset(g, 0, sizeof *g);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static tg_tensor *own(owned *o, tg_tensor *t)
{
    if (!t || o->n == MAX_OWNED) {
        o->failed = true;
        tg_tensor_free(t);
        return NULL;
    }
    o->t[o->n++] = t;
    return t;
}

static void release(owned *o)
{
    for (int k = 0; k < o->n; k++)
        tg_tensor_free(o->t[k]);
    o->n = 0;
}

static tg_tensor *zeros(owned *o, tg_dtype dtype, int64_t rows, int64_t cols)
{
    return own(o, tg_tensor_zeros(dtype, TG_DIMS(rows, cols)));
}

static tg_tensor *copy_of(owned *o, const tg_tensor *t)
{
    return t ? own(o, tg_tensor_copy(t)) : own(o, NULL);
}

/* "(n_a, m) with m = 10" or "(n_a, n_x) = (5,3)": the symbolic shape `dims`
 * with the sizes already known (want[d] >= 0) filled in. */
static void describe(char *buf, size_t size, const char *dims, int ndim, const int64_t *want)
{
    char names[3][16] = {"", "", ""};
    int known = 0;
    const char *p = dims + (*dims == '(');
    for (int d = 0; d < ndim && d < 3; d++) {
        size_t len = strcspn(p, ",)");
        snprintf(names[d], sizeof names[d], "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        while (*p == ' ')
            p++;
        known += want[d] >= 0;
    }
    int n = snprintf(buf, size, "%s", dims);
    if (known == ndim) {
        n += snprintf(buf + n, size - (size_t)n, " = (");
        for (int d = 0; d < ndim; d++)
            n += snprintf(buf + n, size - (size_t)n, d ? ",%lld" : "%lld", (long long)want[d]);
        snprintf(buf + n, size - (size_t)n, ")");
        return;
    }
    const char *sep = " with ";
    for (int d = 0; d < ndim; d++) {
        if (want[d] < 0)
            continue;
        n += snprintf(buf + n, size - (size_t)n, "%s%s = %lld", sep, names[d], (long long)want[d]);
        sep = ", ";
    }
}

/* parameters[name], which must be (rows, cols) of dtype; rows < 0: any. */
static tg_status lookup(const char *who, const tg_params *parameters, const char *name,
                        tg_dtype dtype, int64_t rows, int64_t cols, const char *dims,
                        const tg_tensor **out)
{
    char got[64], want[128];
    if (!parameters)
        return tg_fail(TG_ERR_ARG, "%s: parameters is NULL", who);
    const tg_tensor *t = tg_params_find(parameters, name);
    if (!t)
        return tg_fail(TG_ERR_ARG, "%s: parameters has no \"%s\" %s", who, name, dims);
    if (t->dtype != dtype)
        return tg_fail(TG_ERR_DTYPE, "%s: parameters[\"%s\"] is %s but the input is %s", who,
                       name, tg_dtype_name(t->dtype), tg_dtype_name(dtype));
    if (t->ndim != 2 || t->shape[1] != cols || (rows >= 0 && t->shape[0] != rows) ||
        t->shape[0] < 1) {
        describe(want, sizeof want, dims, 2, (const int64_t[]){rows, cols});
        return tg_fail(TG_ERR_SHAPE, "%s: parameters[\"%s\"] is %s but must be %s", who, name,
                       tg_shape_str(t, got, sizeof got), want);
    }
    *out = t;
    return TG_OK;
}

/* The RNN's parameters Wax, Waa, Wya, ba, by, in the notebook's order. */
static tg_status lookup_rnn(const char *who, const tg_params *parameters, tg_dtype dtype,
                            int64_t n_a, int64_t n_x, const tg_tensor **Wax,
                            const tg_tensor **Waa, const tg_tensor **Wya, const tg_tensor **ba,
                            const tg_tensor **by)
{
    tg_status s = lookup(who, parameters, "Wax", dtype, n_a, n_x, "(n_a, n_x)", Wax);
    if (s == TG_OK)
        s = lookup(who, parameters, "Waa", dtype, n_a, n_a, "(n_a, n_a)", Waa);
    if (s == TG_OK)
        s = lookup(who, parameters, "Wya", dtype, -1, n_a, "(n_y, n_a)", Wya);
    if (s == TG_OK)
        s = lookup(who, parameters, "ba", dtype, n_a, 1, "(n_a, 1)", ba);
    if (s == TG_OK)
        s = lookup(who, parameters, "by", dtype, (*Wya)->shape[0], 1, "(n_y, 1)", by);
    return s;
}

/* The input of a forward, a step xt (n_x, m) (ndim 2) or a sequence x
 * (n_x, m, T_x) (ndim 3), and the state a (n_a, m) it starts from; x sets
 * the dtype. */
static tg_status check_inputs(const char *who, const char *x_name, const tg_tensor *x,
                              int ndim, const char *a_name, const tg_tensor *a)
{
    bool sequence = ndim == 3;
    tg_status s = check_input(who, x_name, x, x ? x->dtype : TG_F64, ndim, -1, -1,
                              sequence ? -1 : 0, sequence ? "(n_x, m, T_x)" : "(n_x, m)");
    if (s == TG_OK)
        s = check_input(who, a_name, a, x->dtype, 2, -1, x->shape[1], 0, "(n_a, m)");
    return s;
}

/* An input of ndim dimensions, each at least 1; a size < 0 is free. */
static tg_status check_input(const char *who, const char *name, const tg_tensor *t,
                             tg_dtype dtype, int ndim, int64_t d0, int64_t d1, int64_t d2,
                             const char *dims)
{
    char got[64], want[128];
    if (!t)
        return tg_fail(TG_ERR_ARG, "%s: %s is NULL", who, name);
    if (t->dtype != dtype)
        return tg_fail(TG_ERR_DTYPE, "%s: %s is %s but the input is %s", who, name,
                       tg_dtype_name(t->dtype), tg_dtype_name(dtype));
    const int64_t sizes[3] = {d0, d1, d2};
    bool ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->shape[d] >= 1 && (sizes[d] < 0 || t->shape[d] == sizes[d]);
    if (ok)
        return TG_OK;
    describe(want, sizeof want, dims, ndim, sizes);
    return tg_fail(TG_ERR_SHAPE, "%s: %s is %s but must be %s", who, name,
                   tg_shape_str(t, got, sizeof got), want);
}

/* y = softmax(Wy a + by) over each column: a (n_a, ...) contiguous -> y (n_y, ...). */
static tg_tensor *predict(owned *o, const tg_tensor *Wy, const tg_tensor *by,
                          const tg_tensor *a)
{
    int64_t n_y = Wy->shape[0], n_a = a->shape[0], cols = tg_tensor_numel(a) / n_a;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = n_y;
    tg_tensor *y = own(o, tg_tensor_zeros(a->dtype, a->ndim, shape));
    tg_tensor a2, y2;
    if (!y)
        return NULL;
    tg_view_reshape(&a2, a, TG_DIMS(n_a, cols));
    tg_view_reshape(&y2, y, TG_DIMS(n_y, cols));
    tg_gemm(1.0, Wy, &a2, 0.0, &y2);
    for (int64_t j = 0; j < cols; j++) {
        double max = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n_y; i++) {
            double z = get(y, i * cols + j) + get(by, i);
            set(y, i * cols + j, z);
            max = fmax(max, z);
        }
        for (int64_t i = 0; i < n_y; i++) {
            double e = exp(get(y, i * cols + j) - max);
            set(y, i * cols + j, e);
            sum += e;
        }
        for (int64_t i = 0; i < n_y; i++)
            set(y, i * cols + j, get(y, i * cols + j) / sum);
    }
    return y;
}

/* db (n, 1) = sum(dz, axis=1, keepdims=True) for dz (n, m) contiguous. */
static void sum_columns(tg_tensor *db, const tg_tensor *dz)
{
    int64_t n = dz->shape[0], m = dz->shape[1];
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < m; j++)
            s += get(dz, i * m + j);
        set(db, i, s);
    }
}

/* C = beta C + op(A) @ op(B), op = transpose or not (a view, no copy). */
static tg_status gemm_t(const tg_tensor *A, bool transpose_a, const tg_tensor *B,
                        bool transpose_b, double beta, tg_tensor *C)
{
    tg_tensor at, bt;
    if (transpose_a)
        tg_view_transpose(&at, A, 0, 1);
    if (transpose_b)
        tg_view_transpose(&bt, B, 0, 1);
    return tg_gemm(1.0, transpose_a ? &at : A, transpose_b ? &bt : B, beta, C);
}
