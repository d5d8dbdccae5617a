/* The course's API (nn/course.h) against the numbers the seed notebooks
 * print and assert. Each test draws its inputs with tg_rng in the notebook's
 * order from the notebook's np.random.seed, so the values are the
 * notebook's own. The notebooks are in shared/seeds/:
 *   003  "Building a Recurrent Neural Network - Step by Step" (prints)
 *   001  its public tests (asserts), and a manual RNN
 *   004  a blog version whose backward_rnnCell returns the weight W_aa in
 *        place of the gradient dW_aa (see seed_004_returns_the_weight...)
 * Then the course's backward functions against the fused tape nodes and
 * against the cell functions chained as the notebooks chain them, and the
 * error paths. */
#include <math.h>
#include <string.h>

#include "util.h"

/* ---- helpers --------------------------------------------------------------------------- */

static tg_tensor *draw(tg_rng *rng, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_tensor_randn(rng, TG_F64, ndim, shape);
    ck_assert_ptr_nonnull(t);
    return t;
}

static void add(tg_params *P, const char *name, tg_tensor *t)
{
    ck_assert_int_eq(tg_params_add(P, name, t), TG_OK);
}

/* Free the tensors of a parameter set and clear it. */
static void free_params(tg_params *P)
{
    for (int k = 0; k < P->count; k++)
        tg_tensor_free(P->items[k].tensor);
    tg_params_clear(P);
}

static tg_tensor *param(const tg_params *P, const char *name)
{
    tg_tensor *t = tg_params_find(P, name);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* dst += src, element by element (same element count; src may be a view). */
static void add_into(tg_tensor *dst, const tg_tensor *src)
{
    for (int64_t i = 0; i < tg_tensor_numel(dst); i++)
        tg_tensor_set_flat(dst, i, tg_tensor_get_flat(dst, i) + tg_tensor_get_flat(src, i));
}

/* A value numpy printed with `decimals` digits after the point agrees with
 * ours to half a unit of its last digit (and never looser than 1e-8 when it
 * printed at least 8 decimals). */
static void assert_printed(const char *what, double got, double printed, int decimals)
{
    double tol = 0.5 * pow(10.0, -decimals) + 1e-13;
    ck_assert_msg(fabs(got - printed) <= tol, "%s: got %.17g, the notebook printed %.*f", what,
                  got, decimals, printed);
}

/* n values of t along dimension `dim`, from index `at` (the others fixed). */
static void assert_printed_row(const char *what, const tg_tensor *t, const int64_t *at, int dim,
                               const double *printed, int n, int decimals)
{
    int64_t idx[TG_MAX_DIMS];
    memcpy(idx, at, sizeof(int64_t) * (size_t)t->ndim);
    for (int k = 0; k < n; k++) {
        char label[64];
        snprintf(label, sizeof label, "%s[%d]", what, k);
        assert_printed(label, tg_tensor_get(t, idx), printed[k], decimals);
        idx[dim]++;
    }
}

/* The notebook's own assertion, np.allclose(got, expected, atol=atol): some
 * asserted values are truncated, not rounded, so they hold only this way. */
static void assert_allclose_row(const char *what, const tg_tensor *t, const int64_t *at, int dim,
                                const double *expected, int n, double atol)
{
    int64_t idx[TG_MAX_DIMS];
    memcpy(idx, at, sizeof(int64_t) * (size_t)t->ndim);
    for (int k = 0; k < n; k++) {
        double got = tg_tensor_get(t, idx);
        ck_assert_msg(fabs(got - expected[k]) <= atol + 1e-5 * fabs(expected[k]),
                      "%s[%d]: got %.17g, the notebook asserts %g", what, k, got, expected[k]);
        idx[dim]++;
    }
}

static void assert_shape(const tg_tensor *t, int ndim, const int64_t *shape)
{
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
}

/* The seed notebooks' RNN parameters, drawn in the order Waa, Wax, Wya, ba, by
 * (or Wax first when wax_first, as in the rnn_cell_backward cell). */
static void draw_rnn_params(tg_rng *rng, tg_params *P, int64_t n_x, int64_t n_a, int64_t n_y,
                            bool wax_first)
{
    if (wax_first) {
        add(P, "Wax", draw(rng, TG_DIMS(n_a, n_x)));
        add(P, "Waa", draw(rng, TG_DIMS(n_a, n_a)));
    } else {
        add(P, "Waa", draw(rng, TG_DIMS(n_a, n_a)));
        add(P, "Wax", draw(rng, TG_DIMS(n_a, n_x)));
    }
    add(P, "Wya", draw(rng, TG_DIMS(n_y, n_a)));
    add(P, "ba", draw(rng, TG_DIMS(n_a, 1)));
    add(P, "by", draw(rng, TG_DIMS(n_y, 1)));
}

/* ... and the LSTM's, in the order Wf bf Wi bi Wo bo Wc bc Wy by. */
static void draw_lstm_params(tg_rng *rng, tg_params *P, int64_t n_x, int64_t n_a, int64_t n_y)
{
    static const char *const names[] = {"Wf", "bf", "Wi", "bi", "Wo", "bo", "Wc", "bc"};
    for (int k = 0; k < 8; k += 2) {
        add(P, names[k], draw(rng, TG_DIMS(n_a, n_a + n_x)));
        add(P, names[k + 1], draw(rng, TG_DIMS(n_a, 1)));
    }
    add(P, "Wy", draw(rng, TG_DIMS(n_y, n_a)));
    add(P, "by", draw(rng, TG_DIMS(n_y, 1)));
}

/* ---- forward: the printed and asserted numbers ---------------------------------------- */

/* 003, In [3]: rnn_cell_forward with np.random.seed(1). */
START_TEST(rnn_cell_forward_prints_the_notebooks_numbers)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *xt = draw(&rng, TG_DIMS(3, 10));
    tg_tensor *a_prev = draw(&rng, TG_DIMS(5, 10));
    tg_params P = {0};
    draw_rnn_params(&rng, &P, 3, 5, 2, false);

    tg_tensor *a_next, *yt_pred;
    tg_course_rnn_cell_cache cache;
    ck_assert_int_eq(tg_course_rnn_cell_forward(xt, a_prev, &P, &a_next, &yt_pred, &cache), TG_OK);
    static const double a_next_4[] = {0.59584544,  0.18141802, 0.61311866, 0.99808218,
                                      0.85016201,  0.99980978, -0.18887155, 0.99815551,
                                      0.6531151,   0.82872037};
    static const double yt_pred_1[] = {0.9888161,  0.01682021, 0.21140899, 0.36817467,
                                       0.98988387, 0.88945212, 0.36920224, 0.9966312,
                                       0.9982559,  0.17746526};
    assert_printed_row("a_next[4]", a_next, (int64_t[]){4, 0}, 1, a_next_4, 10, 8);
    assert_shape(a_next, TG_DIMS(5, 10));
    assert_printed_row("yt_pred[1]", yt_pred, (int64_t[]){1, 0}, 1, yt_pred_1, 10, 8);
    assert_shape(yt_pred, TG_DIMS(2, 10));
    /* 001's rnn_cell_forward_tests: the cache is (a_next, a_prev, xt, parameters). */
    assert_shape(cache.a_next, TG_DIMS(5, 10));
    assert_shape(cache.a_prev, TG_DIMS(5, 10));
    assert_shape(cache.xt, TG_DIMS(3, 10));
    ck_assert_int_eq(cache.parameters->count, 5);
    ck_assert(tu_bitwise_equal(cache.a_next, a_next));
    ck_assert(tu_bitwise_equal(cache.xt, xt));

    tg_course_rnn_cell_cache_free(&cache);
    tg_course_rnn_cell_cache_free(&cache); /* a freed (zeroed) cache may be freed again */
    tg_tensor *all[] = {xt, a_prev, a_next, yt_pred};
    tu_free_all(all, 4);
    free_params(&P);
}
END_TEST

/* 001's rnn_cell_forward_tests: with only the bias, only xt or only a_prev
 * in the expression, a_next and yt_pred reduce to simple closed forms. */
START_TEST(rnn_cell_forward_reduces_to_each_term_alone)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2); /* the notebook draws these unseeded */
    tg_params P = {0};
    draw_rnn_params(&rng, &P, 3, 5, 2, false);
    tg_tensor *Wya = param(&P, "Wya"), *ba = param(&P, "ba"), *by = param(&P, "by");
    tg_tensor_fill(Wya, 0.0);
    tg_tensor *x0 = tg_tensor_zeros(TG_F64, TG_DIMS(3, 10));
    tg_tensor *a0 = tg_tensor_zeros(TG_F64, TG_DIMS(5, 10));
    tg_tensor *xr = draw(&rng, TG_DIMS(3, 10)), *ar = draw(&rng, TG_DIMS(5, 10));
    for (int term = 0; term < 3; term++) {
        /* 0: only ba; 1: only Wax xt; 2: only Waa a_prev. by is 0 after the first. */
        if (term == 1) {
            tg_tensor_fill(ba, 0.0);
            tg_tensor_fill(by, 0.0);
        }
        const tg_tensor *xt = term == 1 ? xr : x0, *a_prev = term == 2 ? ar : a0;
        tg_tensor *a_next, *yt_pred;
        tg_course_rnn_cell_cache cache;
        ck_assert_int_eq(tg_course_rnn_cell_forward(xt, a_prev, &P, &a_next, &yt_pred, &cache), TG_OK);
        const tg_tensor *W = term == 2 ? param(&P, "Waa") : param(&P, "Wax");
        for (int64_t i = 0; i < 5; i++)
            for (int64_t j = 0; j < 10; j++) {
                double z = tg_tensor_get(ba, (int64_t[]){i, 0});
                for (int64_t k = 0; term > 0 && k < W->shape[1]; k++)
                    z += tg_tensor_get(W, (int64_t[]){i, k}) *
                         tg_tensor_get(term == 2 ? ar : xr, (int64_t[]){k, j});
                ck_assert_double_eq_tol(tg_tensor_get(a_next, (int64_t[]){i, j}), tanh(z), 1e-12);
            }
        /* Wya = 0: yt_pred = softmax(by), the same for every column. */
        double b0 = tg_tensor_get(by, (int64_t[]){0, 0}), b1 = tg_tensor_get(by, (int64_t[]){1, 0});
        for (int64_t j = 0; j < 10; j++)
            ck_assert_double_eq_tol(tg_tensor_get(yt_pred, (int64_t[]){0, j}),
                                    exp(b0) / (exp(b0) + exp(b1)), 1e-12);
        tg_course_rnn_cell_cache_free(&cache);
        tg_tensor_free(a_next);
        tg_tensor_free(yt_pred);
    }
    tg_tensor *all[] = {x0, a0, xr, ar};
    tu_free_all(all, 4);
    free_params(&P);
}
END_TEST

/* 003, In [5] (seed 1) and 001's rnn_forward_test (seed 17). */
START_TEST(rnn_forward_prints_the_notebooks_numbers)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = draw(&rng, TG_DIMS(3, 10, 4)), *a0 = draw(&rng, TG_DIMS(5, 10));
    tg_params P = {0};
    draw_rnn_params(&rng, &P, 3, 5, 2, false);
    tg_tensor *a, *y_pred;
    tg_course_rnn_caches caches;
    ck_assert_int_eq(tg_course_rnn_forward(x, a0, &P, &a, &y_pred, &caches), TG_OK);
    static const double a_4_1[] = {-0.99999375, 0.77911235, -0.99861469, -0.99833267};
    static const double y_1_3[] = {0.79560373, 0.86224861, 0.11118257, 0.81515947};
    static const double x_1_3[] = {-1.1425182, -0.34934272, -0.20889423, 0.58662319};
    assert_printed_row("a[4][1]", a, (int64_t[]){4, 1, 0}, 2, a_4_1, 4, 8);
    assert_shape(a, TG_DIMS(5, 10, 4));
    assert_printed_row("y_pred[1][3]", y_pred, (int64_t[]){1, 3, 0}, 2, y_1_3, 4, 8);
    assert_shape(y_pred, TG_DIMS(2, 10, 4));
    assert_printed_row("caches[1][1][3]", caches.x, (int64_t[]){1, 3, 0}, 2, x_1_3, 4, 8);
    ck_assert_int_eq(caches.T_x, 4); /* len(caches[0]) */
    tg_course_rnn_caches_free(&caches);
    tg_tensor *all[] = {x, a0, a, y_pred};
    tu_free_all(all, 4);
    free_params(&P);

    tg_rng_seed(&rng, 17);
    x = draw(&rng, TG_DIMS(4, 8, 13));
    a0 = draw(&rng, TG_DIMS(7, 8));
    draw_rnn_params(&rng, &P, 4, 7, 3, false);
    ck_assert_int_eq(tg_course_rnn_forward(x, a0, &P, &a, &y_pred, &caches), TG_OK);
    static const double a_5_2[] = {0.99999291, 0.99332189, 0.9921928, 0.99503445};
    static const double y_2_1[] = {0.19428, 0.14292, 0.24993, 0.00119};
    assert_printed_row("a[5, 2, 2:6]", a, (int64_t[]){5, 2, 2}, 2, a_5_2, 4, 8);
    assert_allclose_row("y_pred[2, 1, 1:5]", y_pred, (int64_t[]){2, 1, 1}, 2, y_2_1, 4, 1e-4);
    ck_assert_int_eq(caches.T_x, 13);
    ck_assert(tu_bitwise_equal(caches.x, x)); /* caches[1] == x_tmp */
    tg_course_rnn_caches_free(&caches);
    tg_tensor *all2[] = {x, a0, a, y_pred};
    tu_free_all(all2, 4);
    free_params(&P);
}
END_TEST

/* 003, In [11] (seed 1) and 001's lstm_cell_forward_test (seed 212). */
START_TEST(lstm_cell_forward_prints_the_notebooks_numbers)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *xt = draw(&rng, TG_DIMS(3, 10)), *a_prev = draw(&rng, TG_DIMS(5, 10));
    tg_tensor *c_prev = draw(&rng, TG_DIMS(5, 10));
    tg_params P = {0};
    draw_lstm_params(&rng, &P, 3, 5, 2);
    tg_tensor *a_next, *c_next, *yt;
    tg_course_lstm_cell_cache cache;
    ck_assert_int_eq(
        tg_course_lstm_cell_forward(xt, a_prev, c_prev, &P, &a_next, &c_next, &yt, &cache), TG_OK);
    static const double a_next_4[] = {-0.66408471, 0.0036921,  0.02088357, 0.22834167,
                                      -0.85575339, 0.00138482, 0.76566531, 0.34631421,
                                      -0.00215674, 0.43827275};
    static const double c_next_2[] = {0.63267805,  1.00570849, 0.35504474, 0.20690913,
                                      -1.64566718, 0.11832942, 0.76449811, -0.0981561,
                                      -0.74348425, -0.26810932};
    static const double yt_1[] = {0.79913913, 0.15986619, 0.22412122, 0.15606108, 0.97057211,
                                  0.31146381, 0.00943007, 0.12666353, 0.39380172, 0.07828381};
    static const double cache_1_3[] = {-0.16263996, 1.03729328, 0.72938082, -0.54101719,
                                       0.02752074,  -0.30821874, 0.07651101, -1.03752894,
                                       1.41219977,  -0.37647422};
    assert_printed_row("a_next[4]", a_next, (int64_t[]){4, 0}, 1, a_next_4, 10, 8);
    assert_printed_row("c_next[2]", c_next, (int64_t[]){2, 0}, 1, c_next_2, 10, 8);
    assert_printed_row("yt[1]", yt, (int64_t[]){1, 0}, 1, yt_1, 10, 8);
    assert_printed_row("cache[1][3]", cache.c_next, (int64_t[]){3, 0}, 1, cache_1_3, 10, 8);
    assert_shape(yt, TG_DIMS(2, 10));
    tg_course_lstm_cell_cache_free(&cache);
    tg_tensor *all[] = {xt, a_prev, c_prev, a_next, c_next, yt};
    tu_free_all(all, 6);
    free_params(&P);

    tg_rng_seed(&rng, 212);
    xt = draw(&rng, TG_DIMS(4, 8));
    a_prev = draw(&rng, TG_DIMS(7, 8));
    c_prev = draw(&rng, TG_DIMS(7, 8));
    draw_lstm_params(&rng, &P, 4, 7, 3);
    ck_assert_int_eq(
        tg_course_lstm_cell_forward(xt, a_prev, c_prev, &P, &a_next, &c_next, &yt, &cache), TG_OK);
    const struct {
        const char *name;
        const tg_tensor *t;
        double v[2];
    } rows[] = {{"ft", cache.ft, {0.32969833, 0.0574555}},
                {"it", cache.it, {0.0036446, 0.9806943}},
                {"cct", cache.cct, {0.99903873, 0.57509956}},
                {"c_next", cache.c_next, {0.1352798, 0.39884899}},
                {"ot", cache.ot, {0.7477249, 0.71588751}},
                {"a_next", cache.a_next, {0.10053951, 0.27129536}}};
    for (int k = 0; k < 6; k++) {
        assert_shape(rows[k].t, TG_DIMS(7, 8));
        assert_printed_row(rows[k].name, rows[k].t, (int64_t[]){0, 0}, 1, rows[k].v, 2, 8);
    }
    assert_shape(cache.xt, TG_DIMS(4, 8));
    static const double y_1[] = {0.417098, 0.449528, 0.223159, 0.278376,
                                 0.68453,  0.419221, 0.564025, 0.538475};
    assert_allclose_row("y_pred[1]", yt, (int64_t[]){1, 0}, 1, y_1, 8, 1e-8);
    tg_course_lstm_cell_cache_free(&cache);
    tg_tensor *all2[] = {xt, a_prev, c_prev, a_next, c_next, yt};
    tu_free_all(all2, 6);
    free_params(&P);
}
END_TEST

/* 003, In [30] (seed 1) and 001's lstm_forward_test (seed 45). */
START_TEST(lstm_forward_prints_the_notebooks_numbers)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = draw(&rng, TG_DIMS(3, 10, 7)), *a0 = draw(&rng, TG_DIMS(5, 10));
    tg_params P = {0};
    draw_lstm_params(&rng, &P, 3, 5, 2);
    tg_tensor *a, *y, *c;
    tg_course_lstm_caches caches;
    ck_assert_int_eq(tg_course_lstm_forward(x, a0, &P, &a, &y, &c, &caches), TG_OK);
    /* printed with all their digits: held to 1e-12 */
    assert_printed("a[4][3][6]", tg_tensor_get(a, (int64_t[]){4, 3, 6}), 0.1721177675329167, 12);
    assert_printed("y[1][4][3]", tg_tensor_get(y, (int64_t[]){1, 4, 3}), 0.9508734618501101, 12);
    assert_printed("c[1][2][1]", tg_tensor_get(c, (int64_t[]){1, 2, 1}), -0.8555449167181983,
                   12);
    static const double x_1_1[] = {0.82797464,  0.23009474, 0.76201118, -0.22232814,
                                   -0.20075807, 0.18656139, 0.41005165};
    assert_printed_row("caches[1][1][1]", caches.x, (int64_t[]){1, 1, 0}, 2, x_1_1, 7, 8);
    assert_shape(a, TG_DIMS(5, 10, 7));
    assert_shape(y, TG_DIMS(2, 10, 7));
    tg_course_lstm_caches_free(&caches);
    tg_tensor *all[] = {x, a0, a, y, c};
    tu_free_all(all, 5);
    free_params(&P);

    tg_rng_seed(&rng, 45);
    x = draw(&rng, TG_DIMS(4, 13, 16));
    a0 = draw(&rng, TG_DIMS(3, 13));
    draw_lstm_params(&rng, &P, 4, 3, 2);
    ck_assert_int_eq(tg_course_lstm_forward(x, a0, &P, &a, &y, &c, &caches), TG_OK);
    static const double a_2_1[] = {-0.01606022, 0.0243569};
    static const double c_2_1[] = {-0.02753855, 0.05668358};
    static const double y_1_1[] = {0.70444592, 0.70648935};
    assert_printed_row("a[2, 1, 4:6]", a, (int64_t[]){2, 1, 4}, 2, a_2_1, 2, 8);
    assert_printed_row("c[2, 1, 4:6]", c, (int64_t[]){2, 1, 4}, 2, c_2_1, 2, 8);
    assert_printed_row("y[1, 1, 4:6]", y, (int64_t[]){1, 1, 4}, 2, y_1_1, 2, 8);
    assert_shape(c, TG_DIMS(3, 13, 16));
    ck_assert_int_eq(caches.T_x, 16);
    tg_course_lstm_caches_free(&caches);
    tg_tensor *all2[] = {x, a0, a, y, c};
    tu_free_all(all2, 5);
    free_params(&P);
}
END_TEST

/* ---- backward ------------------------------------------------------------------------------ */

/* 003, In [42]: rnn_cell_backward, seed 1, Wax drawn before Waa. */
static void rnn_cell_backward_setup(tg_params *P, tg_course_rnn_cell_gradients *g, tg_tensor **keep)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *xt = draw(&rng, TG_DIMS(3, 10)), *a_prev = draw(&rng, TG_DIMS(5, 10));
    draw_rnn_params(&rng, P, 3, 5, 2, true);
    tg_tensor *a_next, *yt;
    tg_course_rnn_cell_cache cache;
    ck_assert_int_eq(tg_course_rnn_cell_forward(xt, a_prev, P, &a_next, &yt, &cache), TG_OK);
    tg_tensor *da_next = draw(&rng, TG_DIMS(5, 10));
    ck_assert_int_eq(tg_course_rnn_cell_backward(da_next, &cache, g), TG_OK);
    tg_course_rnn_cell_cache_free(&cache);
    keep[0] = xt;
    keep[1] = a_prev;
    keep[2] = a_next;
    keep[3] = yt;
    keep[4] = da_next;
}

START_TEST(rnn_cell_backward_prints_the_notebooks_numbers)
{
    tg_params P = {0};
    tg_course_rnn_cell_gradients g;
    tg_tensor *keep[5];
    rnn_cell_backward_setup(&P, &g, keep);
    assert_printed("dxt[1][2]", tg_tensor_get(g.dxt, (int64_t[]){1, 2}), -1.3872130506020928, 12);
    assert_shape(g.dxt, TG_DIMS(3, 10));
    assert_printed("da_prev[2][3]", tg_tensor_get(g.da_prev, (int64_t[]){2, 3}),
                   -0.1523994937739543, 12);
    assert_shape(g.da_prev, TG_DIMS(5, 10));
    assert_printed("dWax[3][1]", tg_tensor_get(g.dWax, (int64_t[]){3, 1}), 0.41077282493545836,
                   12);
    assert_shape(g.dWax, TG_DIMS(5, 3));
    assert_printed("dWaa[1][2]", tg_tensor_get(g.dWaa, (int64_t[]){1, 2}), 1.1503450668497135,
                   12);
    assert_shape(g.dWaa, TG_DIMS(5, 5));
    assert_printed("dba[4]", tg_tensor_get(g.dba, (int64_t[]){4, 0}), 0.20023491, 8);
    assert_shape(g.dba, TG_DIMS(5, 1));
    tg_course_rnn_cell_gradients_free(&g);
    tu_free_all(keep, 5);
    free_params(&P);
}
END_TEST

/* Seed 004's backward_rnnCell stores W_aa itself under the key "dW_aa":
 *     "dW_aa": W_aa,          where it meant   "dW_aa": dW_aa,
 * so its cell reports the weight, and its backward_pass, which adds that
 * entry at every step, reports T_x * W_aa as the gradient of W_aa. The
 * notebook prints no number for it; run on 003's rnn_cell_backward inputs it
 * would show Waa[1][2] = 0.4034916417908 where the gradient is
 * 1.1503450668497135 (003's printed value, which the tape confirms). */
START_TEST(seed_004_returns_the_weight_instead_of_its_gradient)
{
    tg_params P = {0};
    tg_course_rnn_cell_gradients g;
    tg_tensor *keep[5];
    rnn_cell_backward_setup(&P, &g, keep);
    tg_tensor *Waa = param(&P, "Waa");
    double buggy = tg_tensor_get(Waa, (int64_t[]){1, 2}); /* what 004's cell would return */
    ck_assert_double_eq_tol(buggy, 0.4034916417908, 1e-12);
    assert_printed("dWaa[1][2]", tg_tensor_get(g.dWaa, (int64_t[]){1, 2}), 1.1503450668497135, 12);
    ck_assert_double_gt(fabs(buggy - tg_tensor_get(g.dWaa, (int64_t[]){1, 2})), 0.5);

    /* The tape agrees with the gradient, not with the weight: loss =
     * sum(a_next * da_next) has d loss / d Waa = dWaa. */
    tg_tensor_requires_grad(Waa, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *z = tg_add(tape, tg_add(tape, tg_matmul(tape, Waa, keep[1]),
                                       tg_matmul(tape, param(&P, "Wax"), keep[0])),
                          param(&P, "ba"));
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, tg_tanh(tape, z), keep[4]));
    ck_assert_int_eq(tg_backward(tape, loss), TG_OK);
    ck_assert_double_lt(tu_max_rel_diff(Waa->grad, g.dWaa, 1e-6), 1e-12);
    ck_assert_double_gt(tu_max_abs_diff(Waa->grad, Waa), 0.1);
    tg_tape_free(tape);

    /* Over a sequence 004's backward_pass would return T_x * Waa. */
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = draw(&rng, TG_DIMS(3, 10, 4)), *a0 = draw(&rng, TG_DIMS(5, 10));
    tg_tensor *da = draw(&rng, TG_DIMS(5, 10, 4)), *a, *y;
    tg_course_rnn_caches caches;
    tg_course_rnn_gradients G;
    ck_assert_int_eq(tg_course_rnn_forward(x, a0, &P, &a, &y, &caches), TG_OK);
    ck_assert_int_eq(tg_course_rnn_backward(da, &caches, &G), TG_OK);
    double worst = 0;
    for (int64_t i = 0; i < 25; i++)
        worst = fmax(worst, fabs(tg_tensor_get_flat(G.dWaa, i) - 4 * tg_tensor_get_flat(Waa, i)));
    ck_assert_double_gt(worst, 0.5);
    tg_course_rnn_gradients_free(&G);
    tg_course_rnn_caches_free(&caches);
    tg_tensor *all[] = {x, a0, da, a, y};
    tu_free_all(all, 5);
    tg_course_rnn_cell_gradients_free(&g);
    tu_free_all(keep, 5);
    free_params(&P);
}
END_TEST

/* rnn_backward (the fused kernel) against the notebook's own algorithm: the
 * cell backward chained over caches[0][t] from the last step, with
 * da[:, :, t] + da_prevt as the gradient reaching step t; and against the
 * fused tape node given the seed gradient da. */
START_TEST(rnn_backward_matches_chained_cells_and_the_fused_node)
{
    int64_t n_x = 4, n_a = 6, m = 3, T = 5;
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tensor *x = draw(&rng, TG_DIMS(n_x, m, T)), *a0 = draw(&rng, TG_DIMS(n_a, m));
    tg_params P = {0};
    draw_rnn_params(&rng, &P, n_x, n_a, 2, false);
    tg_tensor *da = draw(&rng, TG_DIMS(n_a, m, T)), *a, *y_pred;
    tg_course_rnn_caches caches;
    tg_course_rnn_gradients G;
    ck_assert_int_eq(tg_course_rnn_forward(x, a0, &P, &a, &y_pred, &caches), TG_OK);
    ck_assert_int_eq(tg_course_rnn_backward(da, &caches, &G), TG_OK);

    /* The notebook's loop, with the C cell functions. */
    tg_tensor *dx = tg_tensor_zeros(TG_F64, TG_DIMS(n_x, m, T));
    tg_tensor *dWax = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, n_x));
    tg_tensor *dWaa = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, n_a));
    tg_tensor *dba = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, 1));
    tg_tensor *da_prevt = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, m));
    for (int64_t t = T - 1; t >= 0; t--) {
        tg_course_rnn_cell_cache cache;
        tg_course_rnn_cell_gradients g;
        ck_assert_int_eq(tg_course_rnn_caches_step(&caches, t, &cache), TG_OK);
        tg_tensor da_t, dx_t;
        tg_view_select(&da_t, da, 2, t);
        tg_tensor *da_next = tg_tensor_copy(da_prevt);
        add_into(da_next, &da_t);
        ck_assert_int_eq(tg_course_rnn_cell_backward(da_next, &cache, &g), TG_OK);
        tg_view_select(&dx_t, dx, 2, t);
        tg_tensor_copy_into(&dx_t, g.dxt);
        tg_tensor_copy_into(da_prevt, g.da_prev);
        tg_tensor *sums[] = {dWax, dWaa, dba}, *terms[] = {g.dWax, g.dWaa, g.dba};
        for (int k = 0; k < 3; k++)
            add_into(sums[k], terms[k]);
        tg_tensor_free(da_next);
        tg_course_rnn_cell_gradients_free(&g);
        tg_course_rnn_cell_cache_free(&cache);
    }
    ck_assert_double_lt(tu_max_rel_diff(G.dx, dx, 1e-6), 1e-12);
    ck_assert_double_lt(tu_max_rel_diff(G.da0, da_prevt, 1e-6), 1e-12);
    ck_assert_double_lt(tu_max_rel_diff(G.dWax, dWax, 1e-6), 1e-12);
    ck_assert_double_lt(tu_max_rel_diff(G.dWaa, dWaa, 1e-6), 1e-12);
    ck_assert_double_lt(tu_max_rel_diff(G.dba, dba, 1e-6), 1e-12);

    /* The fused node on a tape, seeded with da. */
    tg_tensor *Wax = param(&P, "Wax"), *Waa = param(&P, "Waa"), *ba = param(&P, "ba");
    tg_tensor *leaves[] = {x, a0, Wax, Waa, ba};
    for (int k = 0; k < 5; k++)
        tg_tensor_requires_grad(leaves[k], true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *a_node = tg_rnn_fused(tape, x, a0, Wax, Waa, ba);
    ck_assert_ptr_nonnull(a_node);
    ck_assert(tu_bitwise_equal(a_node, a));
    ck_assert_int_eq(tg_backward_with(tape, a_node, da), TG_OK);
    const tg_tensor *course[] = {G.dx, G.da0, G.dWax, G.dWaa, G.dba};
    for (int k = 0; k < 5; k++)
        ck_assert_double_lt(tu_max_rel_diff(leaves[k]->grad, course[k], 1e-6), 1e-12);
    tg_tape_free(tape);

    tg_course_rnn_gradients_free(&G);
    tg_course_rnn_caches_free(&caches);
    tg_tensor *all[] = {x, a0, da, a, y_pred, dx, dWax, dWaa, dba, da_prevt};
    tu_free_all(all, 10);
    free_params(&P);
}
END_TEST

/* The same for the LSTM: lstm_backward against lstm_cell_backward chained
 * with da[:, :, t] + da_prevt and dc_prevt, and against the fused node (c0 = 0). */
START_TEST(lstm_backward_matches_chained_cells_and_the_fused_node)
{
    int64_t n_x = 3, n_a = 4, m = 5, T = 6;
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_tensor *x = draw(&rng, TG_DIMS(n_x, m, T)), *a0 = draw(&rng, TG_DIMS(n_a, m));
    tg_params P = {0};
    draw_lstm_params(&rng, &P, n_x, n_a, 2);
    tg_tensor *da = draw(&rng, TG_DIMS(n_a, m, T)), *a, *y, *c;
    tg_course_lstm_caches caches;
    tg_course_lstm_gradients G;
    ck_assert_int_eq(tg_course_lstm_forward(x, a0, &P, &a, &y, &c, &caches), TG_OK);
    ck_assert_int_eq(tg_course_lstm_backward(da, &caches, &G), TG_OK);

    tg_tensor *dx = tg_tensor_zeros(TG_F64, TG_DIMS(n_x, m, T));
    tg_tensor *da_prevt = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, m));
    tg_tensor *dc_prevt = tg_tensor_zeros(TG_F64, TG_DIMS(n_a, m));
    tg_tensor *sums[8];
    for (int k = 0; k < 8; k++)
        sums[k] = k % 2 ? tg_tensor_zeros(TG_F64, TG_DIMS(n_a, 1))
                        : tg_tensor_zeros(TG_F64, TG_DIMS(n_a, n_a + n_x));
    for (int64_t t = T - 1; t >= 0; t--) {
        tg_course_lstm_cell_cache cache;
        tg_course_lstm_cell_gradients g;
        ck_assert_int_eq(tg_course_lstm_caches_step(&caches, t, &cache), TG_OK);
        tg_tensor da_t, dx_t;
        tg_view_select(&da_t, da, 2, t);
        tg_tensor *da_next = tg_tensor_copy(da_prevt);
        add_into(da_next, &da_t);
        ck_assert_int_eq(tg_course_lstm_cell_backward(da_next, dc_prevt, &cache, &g), TG_OK);
        tg_view_select(&dx_t, dx, 2, t);
        tg_tensor_copy_into(&dx_t, g.dxt);
        tg_tensor_copy_into(da_prevt, g.da_prev);
        tg_tensor_copy_into(dc_prevt, g.dc_prev);
        tg_tensor *terms[8] = {g.dWf, g.dbf, g.dWi, g.dbi, g.dWc, g.dbc, g.dWo, g.dbo};
        for (int k = 0; k < 8; k++)
            add_into(sums[k], terms[k]);
        tg_tensor_free(da_next);
        tg_course_lstm_cell_gradients_free(&g);
        tg_course_lstm_cell_cache_free(&cache);
    }
    const tg_tensor *course[8] = {G.dWf, G.dbf, G.dWi, G.dbi, G.dWc, G.dbc, G.dWo, G.dbo};
    ck_assert_double_lt(tu_max_rel_diff(G.dx, dx, 1e-6), 1e-12);
    ck_assert_double_lt(tu_max_rel_diff(G.da0, da_prevt, 1e-6), 1e-12);
    for (int k = 0; k < 8; k++)
        ck_assert_double_lt(tu_max_rel_diff(course[k], sums[k], 1e-6), 1e-12);

    /* The fused node: inputs x, a0, W (f, i, c, o), b; no c0. */
    tg_tensor *W[4] = {param(&P, "Wf"), param(&P, "Wi"), param(&P, "Wc"), param(&P, "Wo")};
    tg_tensor *b[4] = {param(&P, "bf"), param(&P, "bi"), param(&P, "bc"), param(&P, "bo")};
    tg_tensor *leaves[10] = {x, a0, W[0], b[0], W[1], b[1], W[2], b[2], W[3], b[3]};
    for (int k = 0; k < 10; k++)
        tg_tensor_requires_grad(leaves[k], true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *a_node, *c_node;
    a_node = tg_lstm_fused(tape, x, a0, NULL, W, b, &c_node);
    ck_assert_ptr_nonnull(a_node);
    ck_assert(tu_bitwise_equal(a_node, a));
    ck_assert(tu_bitwise_equal(c_node, c));
    ck_assert_int_eq(tg_backward_with(tape, a_node, da), TG_OK);
    ck_assert_double_lt(tu_max_rel_diff(x->grad, G.dx, 1e-6), 1e-12);
    ck_assert_double_lt(tu_max_rel_diff(a0->grad, G.da0, 1e-6), 1e-12);
    for (int k = 0; k < 8; k++)
        ck_assert_double_lt(tu_max_rel_diff(leaves[2 + k]->grad, course[k], 1e-6), 1e-12);
    tg_tape_free(tape);

    tg_course_lstm_gradients_free(&G);
    tg_course_lstm_caches_free(&caches);
    tu_free_all(sums, 8);
    tg_tensor *all[] = {x, a0, da, a, y, c, dx, da_prevt, dc_prevt};
    tu_free_all(all, 9);
    free_params(&P);
}
END_TEST

/* lstm_cell_backward against finite differences of its own forward:
 * loss = sum(a_next * Ra) + sum(c_next * Rc), so d loss / d a_next = Ra. */
typedef struct {
    tg_tensor *xt, *a_prev, *c_prev, *Ra, *Rc;
    tg_params *P;
} cell_ctx;

static double cell_loss(cell_ctx *k)
{
    tg_tensor *a_next, *c_next, *yt;
    tg_course_lstm_cell_cache cache;
    ck_assert_int_eq(
        tg_course_lstm_cell_forward(k->xt, k->a_prev, k->c_prev, k->P, &a_next, &c_next, &yt, &cache),
        TG_OK);
    double s = 0;
    for (int64_t i = 0; i < tg_tensor_numel(a_next); i++)
        s += tg_tensor_get_flat(a_next, i) * tg_tensor_get_flat(k->Ra, i) +
             tg_tensor_get_flat(c_next, i) * tg_tensor_get_flat(k->Rc, i);
    tg_course_lstm_cell_cache_free(&cache);
    tg_tensor *all[] = {a_next, c_next, yt};
    tu_free_all(all, 3);
    return s;
}

START_TEST(lstm_cell_backward_matches_finite_differences)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_params P = {0};
    cell_ctx k = {draw(&rng, TG_DIMS(3, 4)), draw(&rng, TG_DIMS(5, 4)), draw(&rng, TG_DIMS(5, 4)),
                  draw(&rng, TG_DIMS(5, 4)), draw(&rng, TG_DIMS(5, 4)), &P};
    draw_lstm_params(&rng, &P, 3, 5, 2);
    tg_tensor *a_next, *c_next, *yt;
    tg_course_lstm_cell_cache cache;
    tg_course_lstm_cell_gradients g;
    ck_assert_int_eq(
        tg_course_lstm_cell_forward(k.xt, k.a_prev, k.c_prev, &P, &a_next, &c_next, &yt, &cache), TG_OK);
    ck_assert_int_eq(tg_course_lstm_cell_backward(k.Ra, k.Rc, &cache, &g), TG_OK);
    struct {
        tg_tensor *value;
        const tg_tensor *grad;
    } checks[] = {{k.xt, g.dxt},           {k.a_prev, g.da_prev},  {k.c_prev, g.dc_prev},
                  {param(&P, "Wf"), g.dWf}, {param(&P, "bi"), g.dbi}, {param(&P, "Wc"), g.dWc},
                  {param(&P, "bo"), g.dbo}};
    const double eps = 1e-6;
    for (int q = 0; q < 7; q++) {
        for (int64_t i = 0; i < tg_tensor_numel(checks[q].value); i++) {
            double v = tg_tensor_get_flat(checks[q].value, i);
            tg_tensor_set_flat(checks[q].value, i, v + eps);
            double up = cell_loss(&k);
            tg_tensor_set_flat(checks[q].value, i, v - eps);
            double down = cell_loss(&k);
            tg_tensor_set_flat(checks[q].value, i, v);
            double numeric = (up - down) / (2 * eps), analytic = tg_tensor_get_flat(checks[q].grad, i);
            ck_assert_msg(fabs(numeric - analytic) <= 1e-7 * fmax(1.0, fabs(numeric)),
                          "check %d element %lld: analytic %.12g numeric %.12g", q, (long long)i,
                          analytic, numeric);
        }
    }
    tg_course_lstm_cell_gradients_free(&g);
    tg_course_lstm_cell_cache_free(&cache);
    tg_tensor *all[] = {k.xt, k.a_prev, k.c_prev, k.Ra, k.Rc, a_next, c_next, yt};
    tu_free_all(all, 8);
    free_params(&P);
}
END_TEST

/* ---- error paths ------------------------------------------------------------------------------ */

static void assert_error(tg_status got, tg_status want, const char *needle)
{
    ck_assert_int_eq(got, want);
    ck_assert_msg(strstr(tg_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"",
                  tg_last_error(), needle);
}

START_TEST(course_functions_reject_bad_input_and_write_nothing)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = draw(&rng, TG_DIMS(3, 10, 4)), *a0 = draw(&rng, TG_DIMS(5, 10));
    tg_params P = {0}, missing = {0}, wrong = {0};
    draw_rnn_params(&rng, &P, 3, 5, 2, false);
    static const char *const names[] = {"Waa", "Wax", "Wya", "ba", "by"};
    for (int k = 0; k < 5; k++) {
        if (k != 0)
            add(&missing, names[k], param(&P, names[k]));
        add(&wrong, names[k], k == 1 ? tg_tensor_zeros(TG_F64, TG_DIMS(5, 4)) : param(&P, names[k]));
    }
    tg_tensor *sentinel = (tg_tensor *)&rng, *a = sentinel, *y = sentinel;
    tg_course_rnn_caches caches;
    memset(&caches, 0xab, sizeof caches);
    unsigned char before[sizeof caches];
    memcpy(before, &caches, sizeof caches);

    assert_error(tg_course_rnn_forward(x, a0, &missing, &a, &y, &caches), TG_ERR_ARG,
                 "tg_course_rnn_forward: parameters has no \"Waa\" (n_a, n_a)");
    assert_error(tg_course_rnn_forward(x, a0, &wrong, &a, &y, &caches), TG_ERR_SHAPE,
                 "tg_course_rnn_forward: parameters[\"Wax\"] is (5,4) but must be (n_a, n_x) = (5,3)");
    tg_tensor *x2 = tg_tensor_zeros(TG_F64, TG_DIMS(3, 10));
    assert_error(tg_course_rnn_forward(x2, a0, &P, &a, &y, &caches), TG_ERR_SHAPE,
                 "x is (3,10) but must be (n_x, m, T_x)");
    tg_tensor *a0_bad = tg_tensor_zeros(TG_F64, TG_DIMS(5, 9));
    assert_error(tg_course_rnn_forward(x, a0_bad, &P, &a, &y, &caches), TG_ERR_SHAPE,
                 "a0 is (5,9) but must be (n_a, m) with m = 10");
    tg_tensor *x32 = tg_tensor_zeros(TG_F32, TG_DIMS(3, 10, 4));
    tg_tensor *a032 = tg_tensor_zeros(TG_F32, TG_DIMS(5, 10));
    assert_error(tg_course_rnn_forward(x32, a032, &P, &a, &y, &caches), TG_ERR_DTYPE,
                 "parameters[\"Wax\"] is f64 but the input is f32");
    assert_error(tg_course_rnn_forward(NULL, a0, &P, &a, &y, &caches), TG_ERR_ARG, "x is NULL");
    assert_error(tg_course_rnn_forward(x, a0, NULL, &a, &y, &caches), TG_ERR_ARG, "parameters is NULL");
    ck_assert_ptr_eq(a, sentinel);
    ck_assert_ptr_eq(y, sentinel);
    ck_assert_int_eq(memcmp(before, &caches, sizeof caches), 0);

    /* Backward: da must be (n_a, m, T_x); nothing written on failure. */
    ck_assert_int_eq(tg_course_rnn_forward(x, a0, &P, &a, &y, &caches), TG_OK);
    tg_course_rnn_gradients G;
    memset(&G, 0, sizeof G);
    tg_tensor *da_bad = tg_tensor_zeros(TG_F64, TG_DIMS(5, 10, 3));
    assert_error(tg_course_rnn_backward(da_bad, &caches, &G), TG_ERR_SHAPE,
                 "tg_course_rnn_backward: da is (5,10,3) but must be (n_a, m, T_x) = (5,10,4)");
    ck_assert_ptr_null(G.dx);
    tg_course_rnn_cell_cache cell;
    assert_error(tg_course_rnn_caches_step(&caches, 4, &cell), TG_ERR_ARG, "outside 0..3");

    /* LSTM: a missing gate and a Wy of the wrong width. */
    tg_params L = {0};
    draw_lstm_params(&rng, &L, 3, 5, 2);
    tg_params L_missing = {0};
    for (int k = 0; k < L.count; k++)
        if (strcmp(L.items[k].name, "bo") != 0)
            add(&L_missing, L.items[k].name, L.items[k].tensor);
    tg_tensor *c = sentinel;
    tg_course_lstm_caches lc;
    memset(&lc, 0, sizeof lc);
    assert_error(tg_course_lstm_forward(x, a0, &L_missing, &a, &y, &c, &lc), TG_ERR_ARG,
                 "tg_course_lstm_forward: parameters has no \"bo\" (n_a, 1)");
    ck_assert_ptr_eq(c, sentinel);
    ck_assert_ptr_null(lc.workspace);
    tg_tensor *Wy = param(&L, "Wy");
    tg_tensor *Wy_bad = tg_tensor_zeros(TG_F64, TG_DIMS(2, 4));
    L.items[8].tensor = Wy_bad; /* "Wy" */
    ck_assert_str_eq(L.items[8].name, "Wy");
    tg_tensor *an = sentinel, *cn = sentinel, *yt = sentinel;
    tg_course_lstm_cell_cache lcell;
    tg_tensor *xt = tg_tensor_zeros(TG_F64, TG_DIMS(3, 10));
    assert_error(tg_course_lstm_cell_forward(xt, a0, a0, &L, &an, &cn, &yt, &lcell), TG_ERR_SHAPE,
                 "parameters[\"Wy\"] is (2,4) but must be (n_y, n_a) with n_a = 5");
    ck_assert_ptr_eq(an, sentinel);
    L.items[8].tensor = Wy;

    tg_course_rnn_caches_free(&caches);
    tg_tensor *all[] = {x, a0, x2, a0_bad, x32, a032, a, y, da_bad, Wy_bad, xt,
                        tg_params_find(&wrong, "Wax")};
    tu_free_all(all, 12);
    tg_params_clear(&missing);
    tg_params_clear(&wrong);
    tg_params_clear(&L_missing);
    free_params(&L);
    free_params(&P);
}
END_TEST

/* The snippet of nn/README.md's "The course in C", line for line (printf
 * replaced by checks of the same values). */
START_TEST(readme_snippet_runs)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1); /* np.random.seed(1) */
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 10, 4));
    tg_tensor *a0 = tg_tensor_randn(&rng, TG_F64, TG_DIMS(5, 10));
    tg_params parameters = {0};
    tg_params_add(&parameters, "Waa", tg_tensor_randn(&rng, TG_F64, TG_DIMS(5, 5)));
    tg_params_add(&parameters, "Wax", tg_tensor_randn(&rng, TG_F64, TG_DIMS(5, 3)));
    tg_params_add(&parameters, "Wya", tg_tensor_randn(&rng, TG_F64, TG_DIMS(2, 5)));
    tg_params_add(&parameters, "ba", tg_tensor_randn(&rng, TG_F64, TG_DIMS(5, 1)));
    tg_params_add(&parameters, "by", tg_tensor_randn(&rng, TG_F64, TG_DIMS(2, 1)));

    tg_tensor *a, *y_pred;
    tg_course_rnn_caches caches; /* a, y_pred, caches = rnn_forward(x, a0, parameters) */
    if (tg_course_rnn_forward(x, a0, &parameters, &a, &y_pred, &caches) != TG_OK)
        ck_abort_msg("%s", tg_last_error());
    assert_printed("a[4][1][0]", tg_tensor_get(a, (int64_t[]){4, 1, 0}), -0.99999375, 8);

    tg_tensor *da = tg_tensor_randn(&rng, TG_F64, TG_DIMS(5, 10, 4));
    tg_course_rnn_gradients gradients; /* gradients = rnn_backward(da, caches) */
    ck_assert_int_eq(tg_course_rnn_backward(da, &caches, &gradients), TG_OK);
    ck_assert(isfinite(tg_tensor_get(gradients.dWaa, (int64_t[]){1, 2})));
    assert_shape(gradients.dWaa, TG_DIMS(5, 5));

    tg_course_rnn_gradients_free(&gradients);
    tg_course_rnn_caches_free(&caches);
    tg_tensor *all[] = {x, a0, a, y_pred, da};
    for (int k = 0; k < 5; k++)
        tg_tensor_free(all[k]);
    for (int k = 0; k < parameters.count; k++)
        tg_tensor_free(parameters.items[k].tensor);
    tg_params_clear(&parameters);
}
END_TEST

Suite *suite_course(void)
{
    Suite *s = suite_create("course");
    TCase *tc = tcase_create("seeds");
    tcase_add_test(tc, rnn_cell_forward_prints_the_notebooks_numbers);
    tcase_add_test(tc, rnn_cell_forward_reduces_to_each_term_alone);
    tcase_add_test(tc, rnn_forward_prints_the_notebooks_numbers);
    tcase_add_test(tc, lstm_cell_forward_prints_the_notebooks_numbers);
    tcase_add_test(tc, lstm_forward_prints_the_notebooks_numbers);
    tcase_add_test(tc, rnn_cell_backward_prints_the_notebooks_numbers);
    tcase_add_test(tc, seed_004_returns_the_weight_instead_of_its_gradient);
    tcase_add_test(tc, readme_snippet_runs);
    suite_add_tcase(s, tc);
    TCase *bw = tcase_create("backward");
    tcase_add_test(bw, rnn_backward_matches_chained_cells_and_the_fused_node);
    tcase_add_test(bw, lstm_backward_matches_chained_cells_and_the_fused_node);
    tcase_add_test(bw, lstm_cell_backward_matches_finite_differences);
    tcase_add_test(bw, course_functions_reject_bad_input_and_write_nothing);
    suite_add_tcase(s, bw);
    return s;
}
