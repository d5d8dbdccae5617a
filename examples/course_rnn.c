/* course_rnn: the notebook "Building a Recurrent Neural Network - Step by
 * Step", cell by cell, in C.
 *
 * Each section below is one cell of the notebook (shared/seeds/003_...,
 * with the unit tests of its public_tests.py as 001_... shows them). It
 * seeds the generator as the cell does, draws the same arrays in the same
 * order, calls the C counterpart of the same function (nn/course.h) and
 * prints what the cell prints, in numpy's format, so the two outputs can be
 * compared line by line:
 *
 *     np.random.seed(1)                       tg_rng_seed(&rng, 1);
 *     xt_tmp = np.random.randn(3, 10)         xt_tmp = randn(&rng, 3, 10, 0);
 *     a_next_tmp, yt_pred_tmp, cache_tmp =    tg_course_rnn_cell_forward(xt_tmp, a_prev_tmp,
 *         rnn_cell_forward(xt_tmp, ...)           &parameters_tmp, &a_next_tmp, ...);
 *     print("a_next[4] = \n", a_next_tmp[4])  print_row("a_next[4] = \n", a_next_tmp, 1, 4);
 *
 * (print_row's 1, 4: one index, 4, selects the row a_next_tmp[4].)
 *
 * tg_rng reproduces np.random.randn bit for bit, and the computations run
 * in f64, so the digits agree; only the last digit or two of a float
 * printed in full can differ, because a sum taken in another order (numpy
 * calls BLAS) rounds differently. The notebook's cells stop after exercise 5;
 * exercises 6 to 8 follow the same recipe, and check the fused backward
 * functions against the notebook's own algorithm (the cell backward chained
 * from the last step). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

/* ---- what numpy and Python would print (helpers at the end of the file) ------------- */

/* print(prefix, t[i][j]...): the indices select a row of the last axis. */
static void print_row(const char *prefix, const tg_tensor *t, int n_index, ...);
/* print(prefix, t[i][j][k]): one element, as Python prints a float. */
static void print_value(const char *prefix, const tg_tensor *t, int n_index, ...);
/* print(prefix, t.shape) */
static void print_shape(const char *prefix, const tg_tensor *t);

/* ---- bookkeeping: numpy frees arrays for you; here every one is kept and freed at
 *      the end ------------------------------------------------------------------------------ */

static tg_tensor *keep(tg_tensor *t);
static tg_tensor *randn(tg_rng *rng, int64_t d0, int64_t d1, int64_t d2); /* d2 = 0: 2-D */
static void set_param(tg_params *parameters, const char *name, tg_tensor *t);
static void free_params(tg_params *parameters);
static void free_kept(void);
static void check(tg_status status);

/* The notebook's unit tests (public_tests.py), run after the cells that call them. */
static void rnn_cell_forward_tests(tg_rng *rng);
static void rnn_forward_test(void);
static void lstm_cell_forward_test(void);
static void lstm_forward_test(void);

/* Most cells draw Waa, then Wax; exercise 5's draws Wax first. */
typedef enum { WAA_FIRST, WAX_FIRST } rnn_draw_order;
static void draw_rnn_params(tg_rng *rng, tg_params *parameters, int64_t n_x, int64_t n_a,
                            int64_t n_y, rnn_draw_order order);
static void draw_lstm_params(tg_rng *rng, tg_params *parameters, int64_t n_x, int64_t n_a,
                             int64_t n_y);
static double max_abs_diff(const tg_tensor *a, const tg_tensor *b);
static void step_gradient(tg_tensor *out, const tg_tensor *da, int64_t t,
                          const tg_tensor *da_prevt);
static void add_into(tg_tensor *dst, const tg_tensor *src);

/* ---- 1.1 RNN cell. Exercise 1 - rnn_cell_forward (In [3]) ------------------------ */
static void exercise_1_rnn_cell_forward(tg_rng *rng)
{
    printf("---- In [3]: Exercise 1 - rnn_cell_forward\n");
    tg_rng_seed(rng, 1);
    tg_tensor *xt_tmp = randn(rng, 3, 10, 0);
    tg_tensor *a_prev_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_rnn_params(rng, &parameters_tmp, 3, 5, 2, WAA_FIRST);

    tg_tensor *a_next_tmp, *yt_pred_tmp;
    tg_course_rnn_cell_cache cache_tmp;
    check(tg_course_rnn_cell_forward(xt_tmp, a_prev_tmp, &parameters_tmp, &a_next_tmp,
                              &yt_pred_tmp, &cache_tmp));
    print_row("a_next[4] = \n", keep(a_next_tmp), 1, 4);
    print_shape("a_next.shape = \n", a_next_tmp);
    print_row("yt_pred[1] =\n", keep(yt_pred_tmp), 1, 1);
    print_shape("yt_pred.shape = \n", yt_pred_tmp);
    rnn_cell_forward_tests(rng); /* draws on from the same generator, unseeded */
    tg_course_rnn_cell_cache_free(&cache_tmp);
    free_params(&parameters_tmp);
}

/* ---- 1.2 RNN forward pass. Exercise 2 - rnn_forward (In [5]) ----------------------- */
static void exercise_2_rnn_forward(tg_rng *rng)
{
    printf("\n---- In [5]: Exercise 2 - rnn_forward\n");
    tg_rng_seed(rng, 1);
    tg_tensor *x_tmp = randn(rng, 3, 10, 4);
    tg_tensor *a0_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_rnn_params(rng, &parameters_tmp, 3, 5, 2, WAA_FIRST);

    tg_tensor *a_tmp, *y_pred_tmp;
    tg_course_rnn_caches caches_tmp;
    check(tg_course_rnn_forward(x_tmp, a0_tmp, &parameters_tmp, &a_tmp, &y_pred_tmp, &caches_tmp));
    print_row("a[4][1] = \n", keep(a_tmp), 2, 4, 1);
    print_shape("a.shape = \n", a_tmp);
    print_row("y_pred[1][3] =\n", keep(y_pred_tmp), 2, 1, 3);
    print_shape("y_pred.shape = \n", y_pred_tmp);
    /* caches = (list of caches, x): caches[1] is the input x */
    print_row("caches[1][1][3] =\n", caches_tmp.x, 2, 1, 3);
    const void *caches_tuple[] = {caches_tmp.workspace, caches_tmp.x};
    printf("len(caches) = \n %d\n", (int)(sizeof caches_tuple / sizeof *caches_tuple));
    rnn_forward_test();
    tg_course_rnn_caches_free(&caches_tmp);
    free_params(&parameters_tmp);
}

/* ---- 2.1 LSTM cell. Exercise 3 - lstm_cell_forward (In [11]) ---------------------- */
static void exercise_3_lstm_cell_forward(tg_rng *rng)
{
    printf("\n---- In [11]: Exercise 3 - lstm_cell_forward\n");
    tg_rng_seed(rng, 1);
    tg_tensor *xt_tmp = randn(rng, 3, 10, 0);
    tg_tensor *a_prev_tmp = randn(rng, 5, 10, 0);
    tg_tensor *c_prev_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_lstm_params(rng, &parameters_tmp, 3, 5, 2); /* Wf bf Wi bi Wo bo Wc bc Wy by */

    tg_tensor *a_next_tmp, *c_next_tmp, *yt_tmp;
    tg_course_lstm_cell_cache cache_tmp;
    check(tg_course_lstm_cell_forward(xt_tmp, a_prev_tmp, c_prev_tmp, &parameters_tmp,
                               &a_next_tmp, &c_next_tmp, &yt_tmp, &cache_tmp));
    print_row("a_next[4] = \n", keep(a_next_tmp), 1, 4);
    print_shape("a_next.shape = ", a_next_tmp);
    print_row("c_next[2] = \n", keep(c_next_tmp), 1, 2);
    print_shape("c_next.shape = ", c_next_tmp);
    print_row("yt[1] =", keep(yt_tmp), 1, 1);
    print_shape("yt.shape = ", yt_tmp);
    /* cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) */
    print_row("cache[1][3] =\n", cache_tmp.c_next, 1, 3);
    const void *cache_tuple[] = {cache_tmp.a_next, cache_tmp.c_next, cache_tmp.a_prev,
                                 cache_tmp.c_prev, cache_tmp.ft,     cache_tmp.it,
                                 cache_tmp.cct,    cache_tmp.ot,     cache_tmp.xt,
                                 cache_tmp.parameters};
    printf("len(cache) =  %d\n", (int)(sizeof cache_tuple / sizeof *cache_tuple));
    lstm_cell_forward_test();
    tg_course_lstm_cell_cache_free(&cache_tmp);
    free_params(&parameters_tmp);
}

/* ---- 2.2 Forward pass for LSTM. Exercise 4 - lstm_forward (In [30]) ---------------- */
static void exercise_4_lstm_forward(tg_rng *rng)
{
    printf("\n---- In [30]: Exercise 4 - lstm_forward\n");
    tg_rng_seed(rng, 1);
    tg_tensor *x_tmp = randn(rng, 3, 10, 7);
    tg_tensor *a0_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_lstm_params(rng, &parameters_tmp, 3, 5, 2);

    tg_tensor *a_tmp, *y_tmp, *c_tmp;
    tg_course_lstm_caches caches_tmp;
    check(tg_course_lstm_forward(x_tmp, a0_tmp, &parameters_tmp, &a_tmp, &y_tmp, &c_tmp,
                          &caches_tmp));
    print_value("a[4][3][6] = ", keep(a_tmp), 3, 4, 3, 6);
    print_shape("a.shape = ", a_tmp);
    print_value("y[1][4][3] =", keep(y_tmp), 3, 1, 4, 3);
    print_shape("y.shape = ", y_tmp);
    print_row("caches[1][1][1] =\n", caches_tmp.x, 2, 1, 1);
    print_value("c[1][2][1]", keep(c_tmp), 3, 1, 2, 1);
    const void *caches_tuple[] = {caches_tmp.workspace, caches_tmp.x}; /* (list, x) */
    printf("len(caches) =  %d\n", (int)(sizeof caches_tuple / sizeof *caches_tuple));
    lstm_forward_test();
    tg_course_lstm_caches_free(&caches_tmp);
    free_params(&parameters_tmp);
}

/* ---- 3.1 Basic RNN backward pass. Exercise 5 - rnn_cell_backward (In [42]) ---------
 * This cell draws Wax before Waa. */
static void exercise_5_rnn_cell_backward(tg_rng *rng)
{
    printf("\n---- In [42]: Exercise 5 - rnn_cell_backward\n");
    tg_rng_seed(rng, 1);
    tg_tensor *xt_tmp = randn(rng, 3, 10, 0);
    tg_tensor *a_prev_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_rnn_params(rng, &parameters_tmp, 3, 5, 2, WAX_FIRST);

    tg_tensor *a_next_tmp, *yt_tmp;
    tg_course_rnn_cell_cache cache_tmp;
    check(tg_course_rnn_cell_forward(xt_tmp, a_prev_tmp, &parameters_tmp, &a_next_tmp, &yt_tmp,
                              &cache_tmp));
    keep(a_next_tmp), keep(yt_tmp);
    tg_tensor *da_next_tmp = randn(rng, 5, 10, 0);
    tg_course_rnn_cell_gradients gradients_tmp;
    check(tg_course_rnn_cell_backward(da_next_tmp, &cache_tmp, &gradients_tmp));
    print_value("gradients[\"dxt\"][1][2] =", gradients_tmp.dxt, 2, 1, 2);
    print_shape("gradients[\"dxt\"].shape =", gradients_tmp.dxt);
    print_value("gradients[\"da_prev\"][2][3] =", gradients_tmp.da_prev, 2, 2, 3);
    print_shape("gradients[\"da_prev\"].shape =", gradients_tmp.da_prev);
    print_value("gradients[\"dWax\"][3][1] =", gradients_tmp.dWax, 2, 3, 1);
    print_shape("gradients[\"dWax\"].shape =", gradients_tmp.dWax);
    print_value("gradients[\"dWaa\"][1][2] =", gradients_tmp.dWaa, 2, 1, 2);
    print_shape("gradients[\"dWaa\"].shape =", gradients_tmp.dWaa);
    print_row("gradients[\"dba\"][4] =", gradients_tmp.dba, 1, 4);
    print_shape("gradients[\"dba\"].shape =", gradients_tmp.dba);
    tg_course_rnn_cell_gradients_free(&gradients_tmp);
    tg_course_rnn_cell_cache_free(&cache_tmp);
    free_params(&parameters_tmp);
}

/* ---- Exercise 6 - rnn_backward ------------------------------------------------------
 * Not in the notebook's cells: exercise 2's inputs (drawn in exercise 5's
 * order), then da. The notebook's algorithm walks t from T_x - 1 down
 * to 0, feeding rnn_cell_backward the gradient da[:, :, t] + da_prevt;
 * tg_course_rnn_backward (the fused kernel) must give the same dWaa. */
static void exercise_6_rnn_backward(tg_rng *rng)
{
    printf("\n---- Exercise 6 - rnn_backward (the recipe continued)\n");
    tg_rng_seed(rng, 1);
    tg_tensor *x_tmp = randn(rng, 3, 10, 4);
    tg_tensor *a0_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_rnn_params(rng, &parameters_tmp, 3, 5, 2, WAX_FIRST);

    tg_tensor *a_tmp, *y_tmp;
    tg_course_rnn_caches caches_tmp;
    check(tg_course_rnn_forward(x_tmp, a0_tmp, &parameters_tmp, &a_tmp, &y_tmp, &caches_tmp));
    keep(a_tmp), keep(y_tmp);
    tg_tensor *da_tmp = randn(rng, 5, 10, 4);
    tg_course_rnn_gradients gradients_tmp;
    check(tg_course_rnn_backward(da_tmp, &caches_tmp, &gradients_tmp));
    print_row("gradients[\"dx\"][1][2] =", gradients_tmp.dx, 2, 1, 2);
    print_shape("gradients[\"dx\"].shape =", gradients_tmp.dx);
    print_value("gradients[\"da0\"][2][3] =", gradients_tmp.da0, 2, 2, 3);
    print_shape("gradients[\"da0\"].shape =", gradients_tmp.da0);
    print_value("gradients[\"dWax\"][3][1] =", gradients_tmp.dWax, 2, 3, 1);
    print_shape("gradients[\"dWax\"].shape =", gradients_tmp.dWax);
    print_value("gradients[\"dWaa\"][1][2] =", gradients_tmp.dWaa, 2, 1, 2);
    print_shape("gradients[\"dWaa\"].shape =", gradients_tmp.dWaa);
    print_row("gradients[\"dba\"][4] =", gradients_tmp.dba, 1, 4);
    print_shape("gradients[\"dba\"].shape =", gradients_tmp.dba);

    /* the notebook's loop: for t in reversed(range(T_x)) */
    tg_tensor *dWaa = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 5)));
    tg_tensor *da_prevt = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 10)));
    tg_tensor *da_next = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 10)));
    for (int64_t t = caches_tmp.T_x - 1; t >= 0; t--) {
        tg_course_rnn_cell_cache cache_t; /* caches[0][t] */
        tg_course_rnn_cell_gradients g;
        check(tg_course_rnn_caches_step(&caches_tmp, t, &cache_t));
        step_gradient(da_next, da_tmp, t, da_prevt); /* da[:, :, t] + da_prevt */
        check(tg_course_rnn_cell_backward(da_next, &cache_t, &g));
        add_into(dWaa, g.dWaa);                       /* dWaa += dWaat */
        check(tg_tensor_copy_into(da_prevt, g.da_prev));
        tg_course_rnn_cell_gradients_free(&g);
        tg_course_rnn_cell_cache_free(&cache_t);
    }
    printf("chained rnn_cell_backward: dWaa[1][2] = %.17g, max |difference| %.1e (dWaa), "
           "%.1e (da0)\n",
           tg_tensor_get(dWaa, (int64_t[]){1, 2}), max_abs_diff(dWaa, gradients_tmp.dWaa),
           max_abs_diff(da_prevt, gradients_tmp.da0));
    tg_course_rnn_gradients_free(&gradients_tmp);
    tg_course_rnn_caches_free(&caches_tmp);
    free_params(&parameters_tmp);
}

/* ---- 3.2 LSTM backward pass. Exercise 7 - lstm_cell_backward -------------------------
 * Exercise 3's inputs, then da_next and dc_next. */
static void exercise_7_lstm_cell_backward(tg_rng *rng)
{
    printf("\n---- Exercise 7 - lstm_cell_backward (the recipe continued)\n");
    tg_rng_seed(rng, 1);
    tg_tensor *xt_tmp = randn(rng, 3, 10, 0);
    tg_tensor *a_prev_tmp = randn(rng, 5, 10, 0);
    tg_tensor *c_prev_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_lstm_params(rng, &parameters_tmp, 3, 5, 2);

    tg_tensor *a_next_tmp, *c_next_tmp, *yt_tmp;
    tg_course_lstm_cell_cache cache_tmp;
    check(tg_course_lstm_cell_forward(xt_tmp, a_prev_tmp, c_prev_tmp, &parameters_tmp,
                               &a_next_tmp, &c_next_tmp, &yt_tmp, &cache_tmp));
    keep(a_next_tmp), keep(c_next_tmp), keep(yt_tmp);
    tg_tensor *da_next_tmp = randn(rng, 5, 10, 0);
    tg_tensor *dc_next_tmp = randn(rng, 5, 10, 0);
    tg_course_lstm_cell_gradients gradients_tmp;
    check(tg_course_lstm_cell_backward(da_next_tmp, dc_next_tmp, &cache_tmp, &gradients_tmp));
    print_value("gradients[\"dxt\"][1][2] =", gradients_tmp.dxt, 2, 1, 2);
    print_shape("gradients[\"dxt\"].shape =", gradients_tmp.dxt);
    print_value("gradients[\"da_prev\"][2][3] =", gradients_tmp.da_prev, 2, 2, 3);
    print_shape("gradients[\"da_prev\"].shape =", gradients_tmp.da_prev);
    print_value("gradients[\"dc_prev\"][2][3] =", gradients_tmp.dc_prev, 2, 2, 3);
    print_shape("gradients[\"dc_prev\"].shape =", gradients_tmp.dc_prev);
    print_value("gradients[\"dWf\"][3][1] =", gradients_tmp.dWf, 2, 3, 1);
    print_shape("gradients[\"dWf\"].shape =", gradients_tmp.dWf);
    print_value("gradients[\"dWi\"][1][2] =", gradients_tmp.dWi, 2, 1, 2);
    print_shape("gradients[\"dWi\"].shape =", gradients_tmp.dWi);
    print_value("gradients[\"dWc\"][3][1] =", gradients_tmp.dWc, 2, 3, 1);
    print_shape("gradients[\"dWc\"].shape =", gradients_tmp.dWc);
    print_value("gradients[\"dWo\"][1][2] =", gradients_tmp.dWo, 2, 1, 2);
    print_shape("gradients[\"dWo\"].shape =", gradients_tmp.dWo);
    print_row("gradients[\"dbf\"][4] =", gradients_tmp.dbf, 1, 4);
    print_shape("gradients[\"dbf\"].shape =", gradients_tmp.dbf);
    print_row("gradients[\"dbi\"][4] =", gradients_tmp.dbi, 1, 4);
    print_shape("gradients[\"dbi\"].shape =", gradients_tmp.dbi);
    print_row("gradients[\"dbc\"][4] =", gradients_tmp.dbc, 1, 4);
    print_shape("gradients[\"dbc\"].shape =", gradients_tmp.dbc);
    print_row("gradients[\"dbo\"][4] =", gradients_tmp.dbo, 1, 4);
    print_shape("gradients[\"dbo\"].shape =", gradients_tmp.dbo);
    tg_course_lstm_cell_gradients_free(&gradients_tmp);
    tg_course_lstm_cell_cache_free(&cache_tmp);
    free_params(&parameters_tmp);
}

/* ---- 3.3 Backward pass through the LSTM RNN. Exercise 8 - lstm_backward --------------
 * Exercise 4's inputs, then da for every step; checked against the cells
 * chained from the last step, with dc flowing back through dc_prev. */
static void exercise_8_lstm_backward(tg_rng *rng)
{
    printf("\n---- Exercise 8 - lstm_backward (the recipe continued)\n");
    tg_rng_seed(rng, 1);
    tg_tensor *x_tmp = randn(rng, 3, 10, 7);
    tg_tensor *a0_tmp = randn(rng, 5, 10, 0);
    tg_params parameters_tmp = {0};
    draw_lstm_params(rng, &parameters_tmp, 3, 5, 2);

    tg_tensor *a_tmp, *y_tmp, *c_tmp;
    tg_course_lstm_caches caches_tmp;
    check(tg_course_lstm_forward(x_tmp, a0_tmp, &parameters_tmp, &a_tmp, &y_tmp, &c_tmp,
                          &caches_tmp));
    keep(a_tmp), keep(y_tmp), keep(c_tmp);
    tg_tensor *da_tmp = randn(rng, 5, 10, 7);
    tg_course_lstm_gradients gradients_tmp;
    check(tg_course_lstm_backward(da_tmp, &caches_tmp, &gradients_tmp));
    print_row("gradients[\"dx\"][1][2] =", gradients_tmp.dx, 2, 1, 2);
    print_shape("gradients[\"dx\"].shape =", gradients_tmp.dx);
    print_value("gradients[\"da0\"][2][3] =", gradients_tmp.da0, 2, 2, 3);
    print_shape("gradients[\"da0\"].shape =", gradients_tmp.da0);
    print_value("gradients[\"dWf\"][3][1] =", gradients_tmp.dWf, 2, 3, 1);
    print_value("gradients[\"dWi\"][1][2] =", gradients_tmp.dWi, 2, 1, 2);
    print_value("gradients[\"dWc\"][3][1] =", gradients_tmp.dWc, 2, 3, 1);
    print_value("gradients[\"dWo\"][1][2] =", gradients_tmp.dWo, 2, 1, 2);
    print_row("gradients[\"dbf\"][4] =", gradients_tmp.dbf, 1, 4);
    print_row("gradients[\"dbo\"][4] =", gradients_tmp.dbo, 1, 4);

    tg_tensor *dWf = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 8)));
    tg_tensor *da_prevt = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 10)));
    tg_tensor *dc_prevt = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 10)));
    tg_tensor *da_next = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 10)));
    for (int64_t t = caches_tmp.T_x - 1; t >= 0; t--) {
        tg_course_lstm_cell_cache cache_t;
        tg_course_lstm_cell_gradients g;
        check(tg_course_lstm_caches_step(&caches_tmp, t, &cache_t));
        step_gradient(da_next, da_tmp, t, da_prevt);
        check(tg_course_lstm_cell_backward(da_next, dc_prevt, &cache_t, &g));
        add_into(dWf, g.dWf);
        check(tg_tensor_copy_into(da_prevt, g.da_prev));
        check(tg_tensor_copy_into(dc_prevt, g.dc_prev));
        tg_course_lstm_cell_gradients_free(&g);
        tg_course_lstm_cell_cache_free(&cache_t);
    }
    printf("chained lstm_cell_backward: dWf[3][1] = %.17g, max |difference| %.1e (dWf), "
           "%.1e (da0)\n",
           tg_tensor_get(dWf, (int64_t[]){3, 1}), max_abs_diff(dWf, gradients_tmp.dWf),
           max_abs_diff(da_prevt, gradients_tmp.da0));
    tg_course_lstm_gradients_free(&gradients_tmp);
    tg_course_lstm_caches_free(&caches_tmp);
    free_params(&parameters_tmp);
}

int main(void)
{
    tg_rng rng;
    setvbuf(stdout, NULL, _IOLBF, 0);
    exercise_1_rnn_cell_forward(&rng);
    exercise_2_rnn_forward(&rng);
    exercise_3_lstm_cell_forward(&rng);
    exercise_4_lstm_forward(&rng);
    exercise_5_rnn_cell_backward(&rng);
    exercise_6_rnn_backward(&rng);
    exercise_7_lstm_cell_backward(&rng);
    exercise_8_lstm_backward(&rng);
    free_kept();
    return 0;
}

/* ---- the notebook's unit tests -------------------------------------------------------- */

/* np.allclose(a, b, rtol=1e-5, atol): b may broadcast (size-1 axes). */
static bool allclose(const tg_tensor *a, const tg_tensor *b, double atol)
{
    for (int64_t i = 0; i < tg_tensor_numel(a); i++) {
        int64_t at[2] = {i / a->shape[1], i % a->shape[1]};
        int64_t bt[2] = {b->shape[0] == 1 ? 0 : at[0], b->shape[1] == 1 ? 0 : at[1]};
        double x = tg_tensor_get(a, at), y = tg_tensor_get(b, bt);
        if (!(fabs(x - y) <= atol + 1e-5 * fabs(y)))
            return false;
    }
    return true;
}

/* np.allclose on n values of t from `at` along the last axis. */
static bool allclose_row(const tg_tensor *t, const int64_t *at, const double *expected, int n,
                         double atol)
{
    int64_t idx[TG_MAX_DIMS];
    memcpy(idx, at, sizeof(int64_t) * (size_t)t->ndim);
    for (int k = 0; k < n; k++, idx[t->ndim - 1]++)
        if (!(fabs(tg_tensor_get(t, idx) - expected[k]) <= atol + 1e-5 * fabs(expected[k])))
            return false;
    return true;
}

static void passed(bool ok, const char *what)
{
    if (!ok) {
        printf("%s: a unit test of the notebook failed\n", what);
        exit(1);
    }
    printf("All tests passed\n");
}

/* Three special cases in which one term alone drives the cell, each checked
 * against the same expression computed with the library's ops. */
static void rnn_cell_forward_tests(tg_rng *rng)
{
    tg_tape *tape = tg_tape_new();
    tg_params p = {0};
    tg_tensor *a_prev = keep(tg_tensor_zeros(TG_F64, TG_DIMS(5, 10)));
    tg_tensor *xt = keep(tg_tensor_zeros(TG_F64, TG_DIMS(3, 10)));
    draw_rnn_params(rng, &p, 3, 5, 2, WAA_FIRST);
    tg_tensor_fill(tg_params_find(&p, "Wya"), 0.0);
    bool ok = true;
    for (int term = 0; term < 3; term++) {
        if (term == 1) { /* only xt */
            tg_rng_fill_randn(rng, xt);
            tg_rng_fill_randn(rng, tg_params_find(&p, "Wax"));
        } else if (term == 2) { /* only a_prev */
            tg_rng_fill_randn(rng, a_prev);
            tg_tensor_fill(xt, 0.0);
            tg_rng_fill_randn(rng, tg_params_find(&p, "Waa"));
        }
        if (term > 0) {
            tg_tensor_fill(tg_params_find(&p, "ba"), 0.0);
            tg_tensor_fill(tg_params_find(&p, "by"), 0.0);
        }
        tg_tensor *a_next, *yt_pred;
        tg_course_rnn_cell_cache cache;
        check(tg_course_rnn_cell_forward(xt, a_prev, &p, &a_next, &yt_pred, &cache));
        ok = ok && a_next->shape[0] == 5 && a_next->shape[1] == 10 && yt_pred->shape[0] == 2 &&
             cache.xt->shape[0] == 3 && cache.parameters->count == 5;
        tg_tensor *expected_a =
            term == 0 ? tg_tanh(tape, tg_params_find(&p, "ba"))
            : term == 1 ? tg_tanh(tape, tg_matmul(tape, tg_params_find(&p, "Wax"), xt))
                        : tg_tanh(tape, tg_matmul(tape, tg_params_find(&p, "Waa"), a_prev));
        tg_tensor *expected_y =
            term == 0 ? tg_softmax(tape, tg_params_find(&p, "by"), 0)
                      : tg_softmax(tape, tg_matmul(tape, tg_params_find(&p, "Wya"), a_next), 0);
        ok = ok && expected_a && expected_y && allclose(a_next, expected_a, 1e-8) &&
             allclose(yt_pred, expected_y, 1e-8);
        tg_course_rnn_cell_cache_free(&cache);
        tg_tensor_free(a_next);
        tg_tensor_free(yt_pred);
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    free_params(&p);
    passed(ok, "rnn_cell_forward_tests");
}

static void rnn_forward_test(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 17);
    tg_tensor *x = randn(&rng, 4, 8, 13), *a0 = randn(&rng, 7, 8, 0);
    tg_params p = {0};
    draw_rnn_params(&rng, &p, 4, 7, 3, WAA_FIRST);
    tg_tensor *a, *y_pred;
    tg_course_rnn_caches caches;
    check(tg_course_rnn_forward(x, a0, &p, &a, &y_pred, &caches));
    keep(a), keep(y_pred);
    bool ok = caches.T_x == 13 && max_abs_diff(caches.x, x) == 0 &&
              allclose_row(a, (int64_t[]){5, 2, 2},
                           (double[]){0.99999291, 0.99332189, 0.9921928, 0.99503445}, 4, 1e-8) &&
              allclose_row(y_pred, (int64_t[]){2, 1, 1},
                           (double[]){0.19428, 0.14292, 0.24993, 0.00119}, 4, 1e-4);
    tg_course_rnn_caches_free(&caches);
    free_params(&p);
    passed(ok, "rnn_forward_test");
}

static void lstm_cell_forward_test(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 212);
    tg_tensor *x = randn(&rng, 4, 8, 0), *a0 = randn(&rng, 7, 8, 0), *c0 = randn(&rng, 7, 8, 0);
    tg_params p = {0};
    draw_lstm_params(&rng, &p, 4, 7, 3);
    tg_tensor *a_next, *c_next, *y_pred;
    tg_course_lstm_cell_cache cache;
    check(tg_course_lstm_cell_forward(x, a0, c0, &p, &a_next, &c_next, &y_pred, &cache));
    keep(a_next), keep(c_next), keep(y_pred);
    const int64_t first[] = {0, 0};
    bool ok = allclose_row(cache.ft, first, (double[]){0.32969833, 0.0574555}, 2, 1e-8) &&
              allclose_row(cache.it, first, (double[]){0.0036446, 0.9806943}, 2, 1e-8) &&
              allclose_row(cache.cct, first, (double[]){0.99903873, 0.57509956}, 2, 1e-8) &&
              allclose_row(cache.c_next, first, (double[]){0.1352798, 0.39884899}, 2, 1e-8) &&
              allclose_row(cache.ot, first, (double[]){0.7477249, 0.71588751}, 2, 1e-8) &&
              allclose_row(cache.a_next, first, (double[]){0.10053951, 0.27129536}, 2, 1e-8) &&
              allclose_row(y_pred, (int64_t[]){1, 0},
                           (double[]){0.417098, 0.449528, 0.223159, 0.278376, 0.68453, 0.419221,
                                      0.564025, 0.538475},
                           8, 1e-8);
    tg_course_lstm_cell_cache_free(&cache);
    free_params(&p);
    passed(ok, "lstm_cell_forward_test");
}

static void lstm_forward_test(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 45);
    tg_tensor *x = randn(&rng, 4, 13, 16), *a0 = randn(&rng, 3, 13, 0);
    tg_params p = {0};
    draw_lstm_params(&rng, &p, 4, 3, 2);
    tg_tensor *a, *y, *c;
    tg_course_lstm_caches caches;
    check(tg_course_lstm_forward(x, a0, &p, &a, &y, &c, &caches));
    keep(a), keep(y), keep(c);
    bool ok = caches.T_x == 16 &&
              allclose_row(a, (int64_t[]){2, 1, 4}, (double[]){-0.01606022, 0.0243569}, 2, 1e-8) &&
              allclose_row(c, (int64_t[]){2, 1, 4}, (double[]){-0.02753855, 0.05668358}, 2, 1e-8) &&
              allclose_row(y, (int64_t[]){1, 1, 4}, (double[]){0.70444592, 0.70648935}, 2, 1e-8);
    tg_course_lstm_caches_free(&caches);
    free_params(&p);
    passed(ok, "lstm_forward_test");
}

/* ---- drawing and keeping tensors ---------------------------------------------------------- */

static tg_tensor *kept[512];
static int n_kept;

static void check(tg_status status)
{
    if (status != TG_OK) {
        fprintf(stderr, "course_rnn: %s\n", tg_last_error());
        exit(1);
    }
}

static tg_tensor *keep(tg_tensor *t)
{
    if (!t || n_kept == (int)(sizeof kept / sizeof *kept))
        check(TG_ERR_NOMEM);
    kept[n_kept++] = t;
    return t;
}

static void free_kept(void)
{
    while (n_kept > 0)
        tg_tensor_free(kept[--n_kept]);
}

/* np.random.randn(d0, d1) or (d0, d1, d2): numpy's draws, in C order. */
static tg_tensor *randn(tg_rng *rng, int64_t d0, int64_t d1, int64_t d2)
{
    return keep(d2 ? tg_tensor_randn(rng, TG_F64, TG_DIMS(d0, d1, d2))
                   : tg_tensor_randn(rng, TG_F64, TG_DIMS(d0, d1)));
}

/* parameters[name] = t (the tensor stays on the kept list). */
static void set_param(tg_params *parameters, const char *name, tg_tensor *t)
{
    check(tg_params_add(parameters, name, t));
}

static void free_params(tg_params *parameters) { tg_params_clear(parameters); }

/* Waa Wax (or Wax Waa) Wya ba by, as the cell draws them. */
static void draw_rnn_params(tg_rng *rng, tg_params *parameters, int64_t n_x, int64_t n_a,
                            int64_t n_y, rnn_draw_order order)
{
    if (order == WAX_FIRST)
        set_param(parameters, "Wax", randn(rng, n_a, n_x, 0));
    set_param(parameters, "Waa", randn(rng, n_a, n_a, 0));
    if (order == WAA_FIRST)
        set_param(parameters, "Wax", randn(rng, n_a, n_x, 0));
    set_param(parameters, "Wya", randn(rng, n_y, n_a, 0));
    set_param(parameters, "ba", randn(rng, n_a, 1, 0));
    set_param(parameters, "by", randn(rng, n_y, 1, 0));
}

/* The notebook's order: Wf bf Wi bi Wo bo Wc bc Wy by. */
static void draw_lstm_params(tg_rng *rng, tg_params *parameters, int64_t n_x, int64_t n_a,
                             int64_t n_y)
{
    static const char *const names[] = {"Wf", "bf", "Wi", "bi", "Wo", "bo", "Wc", "bc"};
    for (int k = 0; k < 8; k += 2) {
        set_param(parameters, names[k], randn(rng, n_a, n_a + n_x, 0));
        set_param(parameters, names[k + 1], randn(rng, n_a, 1, 0));
    }
    set_param(parameters, "Wy", randn(rng, n_y, n_a, 0));
    set_param(parameters, "by", randn(rng, n_y, 1, 0));
}

/* out = da[:, :, t] + da_prevt: the gradient reaching step t. */
static void step_gradient(tg_tensor *out, const tg_tensor *da, int64_t t,
                          const tg_tensor *da_prevt)
{
    for (int64_t i = 0; i < out->shape[0]; i++)
        for (int64_t j = 0; j < out->shape[1]; j++) {
            int64_t at[2] = {i, j};
            double reaching = tg_tensor_get(da, (int64_t[]){i, j, t}) + tg_tensor_get(da_prevt, at);
            tg_tensor_set(out, at, reaching);
        }
}

/* dst += src (same shapes) */
static void add_into(tg_tensor *dst, const tg_tensor *src)
{
    for (int64_t i = 0; i < tg_tensor_numel(dst); i++)
        tg_tensor_set_flat(dst, i, tg_tensor_get_flat(dst, i) + tg_tensor_get_flat(src, i));
}

static double max_abs_diff(const tg_tensor *a, const tg_tensor *b)
{
    double worst = 0;
    for (int64_t i = 0; i < tg_tensor_numel(a); i++)
        worst = fmax(worst, fabs(tg_tensor_get_flat(a, i) - tg_tensor_get_flat(b, i)));
    return worst;
}

/* ---- numpy's and Python's text -------------------------------------------------------------
 * A 1-D float64 array prints as numpy's str() does with its defaults
 * (precision 8, floatmode 'maxprec', linewidth 75): every element gets the
 * same width - integer parts right-aligned (room for a minus sign if any
 * element has one), fractions cut to 8 digits, trailing zeros dropped, and
 * padded with spaces to the longest - and a line wraps before an element
 * would reach column 75. Scientific notation takes over when the nonzero
 * magnitudes reach 1e8, fall below 1e-4 or span more than a factor 1000.
 * A single float prints as Python's repr: the shortest digits that read back
 * as the same double. */

enum { ROW_MAX = 64, LINE_WIDTH = 75 };

/* Shortest "%.*e" digits of v that read back exactly: fills digits (no point)
 * and returns the decimal exponent. */
static int shortest_digits(double v, char *digits)
{
    char buf[40];
    for (int p = 0; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p, fabs(v));
        if (strtod(buf, NULL) == fabs(v))
            break;
    }
    int n = 0;
    for (const char *c = buf; *c && *c != 'e'; c++)
        if (*c != '.')
            digits[n++] = *c;
    digits[n] = '\0';
    return atoi(strchr(buf, 'e') + 1);
}

/* Python's repr of a float. */
static void python_float(char *out, size_t size, double v)
{
    char digits[40];
    int e = shortest_digits(v, digits), n = (int)strlen(digits);
    const char *sign = signbit(v) ? "-" : "";
    if (v == 0 || (e >= -4 && e < 16)) { /* positional, at least one digit after the point */
        char text[48];
        int k = 0;
        if (e < 0) {
            k += snprintf(text + k, sizeof text - (size_t)k, "0.");
            for (int i = -1; i > e; i--)
                text[k++] = '0';
            k += snprintf(text + k, sizeof text - (size_t)k, "%s", digits);
        } else {
            for (int i = 0; i <= e; i++)
                text[k++] = i < n ? digits[i] : '0';
            text[k++] = '.';
            const char *rest = n > e + 1 ? digits + e + 1 : "0";
            k += snprintf(text + k, sizeof text - (size_t)k, "%s", rest);
        }
        text[k] = '\0';
        snprintf(out, size, "%s%s", sign, text);
    } else {
        snprintf(out, size, "%s%c%s%s%se%c%02d", sign, digits[0], n > 1 ? "." : "",
                 digits + 1, "", e < 0 ? '-' : '+', abs(e));
    }
}

/* numpy's str() of n doubles. */
static void numpy_str(char *out, size_t size, const double *v, int n)
{
    double big = 0, small = INFINITY;
    for (int i = 0; i < n; i++)
        if (v[i] != 0) {
            big = fmax(big, fabs(v[i]));
            small = fmin(small, fabs(v[i]));
        }
    bool scientific = big > 0 && (big >= 1e8 || small < 1e-4 || big / small > 1000);
    char whole[ROW_MAX][64], frac[ROW_MAX][64];
    int pad_left = 0, pad_right = 0;
    for (int pass = 0; pass < 2; pass++) /* 1: measure the widths; 2: format with them */
        for (int i = 0; i < n; i++) {
            char text[64];
            if (!scientific) {
                snprintf(text, sizeof text, "%.8f", v[i]);
                size_t len = strlen(text);
                while (text[len - 1] == '0')
                    text[--len] = '\0'; /* "0.65311510" -> "0.6531151", "1.00" -> "1." */
            } else {
                /* mantissas padded with zeros to the longest one */
                /* '#' keeps the point of a bare mantissa: "2.e+00" */
                snprintf(text, sizeof text, "%#.*e", pass ? pad_right : 8, v[i]);
                if (!pass) {
                    char *e = strchr(text, 'e'), *end = e;
                    while (end[-1] == '0')
                        end--;
                    memmove(end, e, strlen(e) + 1);
                }
            }
            char *point = strchr(text, '.');
            *point = '\0';
            snprintf(whole[i], sizeof whole[i], "%s", text);
            snprintf(frac[i], sizeof frac[i], "%s", point + 1);
            int w = (int)strlen(whole[i]);
            int f = (int)(scientific ? strchr(frac[i], 'e') - frac[i] : (long)strlen(frac[i]));
            pad_left = w > pad_left ? w : pad_left;
            pad_right = f > pad_right ? f : pad_right;
        }
    /* "[" then the elements, one space apart, wrapping before column 75 */
    size_t k = 0;
    int line = 1;
    k += (size_t)snprintf(out + k, size - k, "[");
    for (int i = 0; i < n && k < size; i++) {
        char word[160];
        snprintf(word, sizeof word, "%*s.%-*s", pad_left, whole[i], scientific ? 0 : pad_right,
                 frac[i]);
        int len = (int)strlen(word);
        if (i > 0 && line + 1 + len > LINE_WIDTH - 1) {
            k += (size_t)snprintf(out + k, size - k, "\n ");
            line = 1;
        } else if (i > 0) {
            k += (size_t)snprintf(out + k, size - k, " ");
            line++;
        }
        k += (size_t)snprintf(out + k, size - k, "%s", word);
        line += len;
    }
    if (k < size)
        snprintf(out + k, size - k, "]");
}

/* Element index of t from n_index varargs, the rest zero. */
static void read_index(int64_t *idx, int n_index, va_list ap)
{
    for (int d = 0; d < TG_MAX_DIMS; d++)
        idx[d] = d < n_index ? va_arg(ap, int) : 0;
}

static void print_row(const char *prefix, const tg_tensor *t, int n_index, ...)
{
    int64_t idx[TG_MAX_DIMS];
    va_list ap;
    va_start(ap, n_index);
    read_index(idx, n_index, ap);
    va_end(ap);
    int n = (int)t->shape[t->ndim - 1];
    double v[ROW_MAX];
    for (int i = 0; i < n && i < ROW_MAX; i++) {
        idx[t->ndim - 1] = i;
        v[i] = tg_tensor_get(t, idx);
    }
    char text[4096];
    numpy_str(text, sizeof text, v, n < ROW_MAX ? n : ROW_MAX);
    /* print() puts one space between its arguments, even after a newline */
    printf("%s %s\n", prefix, text);
}

static void print_value(const char *prefix, const tg_tensor *t, int n_index, ...)
{
    int64_t idx[TG_MAX_DIMS];
    va_list ap;
    va_start(ap, n_index);
    read_index(idx, n_index, ap);
    va_end(ap);
    char text[80];
    python_float(text, sizeof text, tg_tensor_get(t, idx));
    printf("%s %s\n", prefix, text);
}

static void print_shape(const char *prefix, const tg_tensor *t)
{
    printf("%s (", prefix);
    for (int d = 0; d < t->ndim; d++)
        printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
    printf(t->ndim == 1 ? ",)\n" : ")\n");
}
