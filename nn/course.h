/* The course's API in C: every function of the numpy notebooks "Building a
 * Recurrent Neural Network - Step by Step" with the same shapes, parameter
 * names, caches and gradients, so that each notebook line maps to one C line.
 *
 *     a_next, yt_pred, cache = rnn_cell_forward(xt, a_prev, parameters)
 * is
 *     tg_tensor *a_next, *yt_pred;
 *     tg_course_rnn_cell_cache cache;
 *     tg_course_rnn_cell_forward(xt, a_prev, parameters, &a_next, &yt_pred, &cache);
 *
 * Layout as in the course: x (n_x, m, T_x), xt (n_x, m), states (n_a, m),
 * column vectors, W @ x. `parameters` is a tg_params looked up by the
 * notebook's names: Wax Waa Wya ba by for the RNN, Wf bf Wi bi Wc bc Wo bo
 * Wy by for the LSTM; a missing name or a wrong shape is an error that
 * names the function, the parameter and the shapes. All tensors share one
 * dtype (f64 reproduces the notebooks' printed numbers).
 *
 * Every returned tensor is persistent and owned by the caller: tensors with
 * tg_tensor_free, caches and gradient structs with their *_free function
 * (which also accept a zeroed struct). On failure a function returns the
 * error status (message in tg_last_error()) and writes none of its outputs.
 * A cache borrows `parameters` as the notebook's cache does: keep them
 * alive, and unchanged, until the backward pass.
 *
 * rnn_forward / rnn_backward and lstm_forward / lstm_backward run on the
 * fused kernels of nn/fused.h, the same code as the tape nodes; the cell
 * functions are written out directly, as in the notebooks.
 *
 * yt_pred = softmax(Wya a_next + by) over each column. (The notebooks'
 * softmax subtracts the maximum of the whole matrix rather than of each
 * column: the same values up to rounding.) */
#ifndef TG_COURSE_H
#define TG_COURSE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/api.h"
#include "../core/params.h"
#include "../core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- RNN ----------------------------------------------------------------------------- */

/* cache = (a_next, a_prev, xt, parameters) */
typedef struct {
    tg_tensor *a_next, *a_prev, *xt; /* (n_a,m), (n_a,m), (n_x,m): owned copies */
    const tg_params *parameters;     /* borrowed */
} tg_course_rnn_cell_cache;

/* gradients = {"dxt", "da_prev", "dWax", "dWaa", "dba"} */
typedef struct {
    tg_tensor *dxt, *da_prev, *dWax, *dWaa, *dba;
} tg_course_rnn_cell_gradients;

/* caches = (list of caches, x): the list lives in the fused kernel's
 * workspace; tg_course_rnn_caches_step gives caches[0][t]. */
typedef struct {
    tg_tensor *x;                /* caches[1]: a copy of the input (n_x, m, T_x) */
    const tg_params *parameters; /* borrowed */
    int64_t n_x, n_a, m, T_x;
    void *workspace;             /* the fused forward's cache */
    size_t workspace_bytes;
} tg_course_rnn_caches;

/* gradients = {"dx", "da0", "dWax", "dWaa", "dba"} */
typedef struct {
    tg_tensor *dx, *da0, *dWax, *dWaa, *dba;
} tg_course_rnn_gradients;

/* xt (n_x,m), a_prev (n_a,m) -> a_next (n_a,m), yt_pred (n_y,m), cache */
TG_API tg_status tg_course_rnn_cell_forward(const tg_tensor *xt, const tg_tensor *a_prev,
                                     const tg_params *parameters, tg_tensor **a_next,
                                     tg_tensor **yt_pred, tg_course_rnn_cell_cache *cache);

/* da_next (n_a,m), cache -> gradients (dxt (n_x,m), da_prev (n_a,m), dWax, dWaa, dba) */
TG_API tg_status tg_course_rnn_cell_backward(const tg_tensor *da_next, const tg_course_rnn_cell_cache *cache,
                                      tg_course_rnn_cell_gradients *gradients);

/* x (n_x,m,T_x), a0 (n_a,m) -> a (n_a,m,T_x), y_pred (n_y,m,T_x), caches */
TG_API tg_status tg_course_rnn_forward(const tg_tensor *x, const tg_tensor *a0,
                                const tg_params *parameters, tg_tensor **a, tg_tensor **y_pred,
                                tg_course_rnn_caches *caches);

/* da (n_a,m,T_x), caches -> gradients (dx (n_x,m,T_x), da0 (n_a,m), dWax, dWaa, dba) */
TG_API tg_status tg_course_rnn_backward(const tg_tensor *da, const tg_course_rnn_caches *caches,
                                 tg_course_rnn_gradients *gradients);

/* caches[0][t] (t from 0, like x[:, :, t]) as a cell cache of copies. */
TG_API tg_status tg_course_rnn_caches_step(const tg_course_rnn_caches *caches, int64_t t,
                                    tg_course_rnn_cell_cache *cache);

TG_API void tg_course_rnn_cell_cache_free(tg_course_rnn_cell_cache *cache);
TG_API void tg_course_rnn_cell_gradients_free(tg_course_rnn_cell_gradients *gradients);
TG_API void tg_course_rnn_caches_free(tg_course_rnn_caches *caches);
TG_API void tg_course_rnn_gradients_free(tg_course_rnn_gradients *gradients);

/* ---- LSTM ---------------------------------------------------------------------------- */

/* cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) */
typedef struct {
    tg_tensor *a_next, *c_next, *a_prev, *c_prev; /* (n_a,m), owned copies */
    tg_tensor *ft, *it, *cct, *ot;                /* the gates (n_a,m) */
    tg_tensor *xt;                                /* (n_x,m) */
    const tg_params *parameters;                  /* borrowed */
} tg_course_lstm_cell_cache;

/* gradients = {"dxt", "da_prev", "dc_prev", "dWf", "dbf", "dWi", "dbi",
 *              "dWc", "dbc", "dWo", "dbo"} */
typedef struct {
    tg_tensor *dxt, *da_prev, *dc_prev;
    tg_tensor *dWf, *dbf, *dWi, *dbi, *dWc, *dbc, *dWo, *dbo;
} tg_course_lstm_cell_gradients;

/* caches = (list of caches, x); tg_course_lstm_caches_step gives caches[0][t]. */
typedef struct {
    tg_tensor *x;                /* caches[1]: a copy of the input */
    const tg_params *parameters; /* borrowed */
    int64_t n_x, n_a, m, T_x;
    void *workspace; /* the fused forward's cache */
    size_t workspace_bytes;
} tg_course_lstm_caches;

/* gradients = {"dx", "da0", "dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo"} */
typedef struct {
    tg_tensor *dx, *da0;
    tg_tensor *dWf, *dbf, *dWi, *dbi, *dWc, *dbc, *dWo, *dbo;
} tg_course_lstm_gradients;

/* xt (n_x,m), a_prev c_prev (n_a,m) -> a_next, c_next (n_a,m), yt_pred (n_y,m), cache */
TG_API tg_status tg_course_lstm_cell_forward(const tg_tensor *xt, const tg_tensor *a_prev,
                                      const tg_tensor *c_prev, const tg_params *parameters,
                                      tg_tensor **a_next, tg_tensor **c_next, tg_tensor **yt_pred,
                                      tg_course_lstm_cell_cache *cache);

/* da_next dc_next (n_a,m), cache -> gradients (dxt, da_prev, dc_prev, dW*, db*) */
TG_API tg_status tg_course_lstm_cell_backward(const tg_tensor *da_next, const tg_tensor *dc_next,
                                       const tg_course_lstm_cell_cache *cache,
                                       tg_course_lstm_cell_gradients *gradients);

/* x (n_x,m,T_x), a0 (n_a,m); c0 = 0 as in the course -> a (n_a,m,T_x),
 * y (n_y,m,T_x), c (n_a,m,T_x), caches (the notebook's order: a, y, c) */
TG_API tg_status tg_course_lstm_forward(const tg_tensor *x, const tg_tensor *a0,
                                 const tg_params *parameters, tg_tensor **a, tg_tensor **y,
                                 tg_tensor **c, tg_course_lstm_caches *caches);

/* da (n_a,m,T_x), caches -> gradients (dx (n_x,m,T_x), da0 (n_a,m), dW*, db*) */
TG_API tg_status tg_course_lstm_backward(const tg_tensor *da, const tg_course_lstm_caches *caches,
                                  tg_course_lstm_gradients *gradients);

/* caches[0][t] as a cell cache of copies. */
TG_API tg_status tg_course_lstm_caches_step(const tg_course_lstm_caches *caches, int64_t t,
                                     tg_course_lstm_cell_cache *cache);

TG_API void tg_course_lstm_cell_cache_free(tg_course_lstm_cell_cache *cache);
TG_API void tg_course_lstm_cell_gradients_free(tg_course_lstm_cell_gradients *gradients);
TG_API void tg_course_lstm_caches_free(tg_course_lstm_caches *caches);
TG_API void tg_course_lstm_gradients_free(tg_course_lstm_gradients *gradients);

#ifdef __cplusplus
}
#endif

#endif
