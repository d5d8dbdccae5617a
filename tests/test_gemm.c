/* GEMM and the thread pool: tg_sgemm / tg_dgemm against a long double
 * reference for many shapes, every stride layout, alpha/beta cases, both
 * dtypes; bit-identical results for any thread count; tg_gemm's errors;
 * tg_parallel_for's contract. */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- operands with a chosen layout --------------------------------------------
 * Every operand lives inside a larger buffer whose other elements are
 * sentinels: NaN for inputs (reading one would poison the result), a fixed
 * value for C (writing one is caught afterwards). */

typedef enum { ROW_MAJOR, COL_MAJOR, STRIDED, REVERSED, N_LAYOUTS } layout;
static const char *const layout_names[] = {"row-major", "col-major", "strided", "reversed"};

typedef tu_matrix operand; /* tests/util.h, shared with test_isa.c */

static const double C_SENTINEL = 12345.0;


/* Values: small integers (every sum exact in f32) or N(0,1). */
typedef enum { INTEGERS, NORMAL } values;

static operand make_operand(tg_dtype dtype, int64_t rows, int64_t cols, layout l, double gap,
                            values v, tg_rng *rng)
{
    operand o = {.dtype = dtype, .rows = rows, .cols = cols};
    switch (l) {
    case ROW_MAJOR: o.rs = cols, o.cs = 1; break;
    case COL_MAJOR: o.rs = 1, o.cs = rows; break;
    case STRIDED: o.rs = 2 * cols + 3, o.cs = 2; break;
    case REVERSED: o.rs = -cols, o.cs = 1, o.offset = (rows - 1) * cols; break;
    default: break;
    }
    o.size = (rows - 1) * llabs(o.rs) + (cols - 1) * o.cs + 1;
    o.buf = malloc((size_t)o.size * tg_dtype_size(dtype));
    ck_assert_ptr_nonnull(o.buf);
    for (int64_t f = 0; f < o.size; f++)
        tu_flat_set(&o, f, gap);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            tu_flat_set(&o, tu_pos(&o, i, j),
                v == INTEGERS ? (double)((int)tg_rng_below(rng, 9) - 4) : tg_rng_randn(rng));
    return o;
}

static void call_gemm(int64_t M, int64_t N, int64_t K, double alpha, const operand *A,
                      const operand *B, double beta, operand *C)
{
    const void *a = tu_ptr(A, 0, 0), *b = tu_ptr(B, 0, 0);
    void *c = tu_ptr(C, 0, 0);
    if (C->dtype == TG_F32)
        tg_sgemm(M, N, K, (float)alpha, a, A->rs, A->cs, b, B->rs, B->cs, (float)beta, c, C->rs,
                 C->cs);
    else
        tg_dgemm(M, N, K, alpha, a, A->rs, A->cs, b, B->rs, B->cs, beta, c, C->rs, C->cs);
}

/* Compare C (after) with beta*C0 + alpha*A@B computed in long double, at
 * every element or, for large C, at `samples` pseudo-random ones. Integer
 * data must match exactly; otherwise within the worst-case rounding bound
 * (K+3) eps * (|beta*c0| + |alpha| sum |a*b|). Returns the failures. */
static int check_result(const char *what, double alpha, const operand *A, const operand *B,
                        double beta, const operand *C0, const operand *C, values v, int samples)
{
    int64_t M = C->rows, N = C->cols, K = A->cols;
    double eps = C->dtype == TG_F32 ? FLT_EPSILON : DBL_EPSILON;
    int64_t total = M * N, count = samples && total > samples ? samples : total;
    int failures = 0;
    uint64_t state = 88172645463325252ull;
    for (int64_t s = 0; s < count; s++) {
        int64_t e = s;
        if (count < total) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            e = (int64_t)(state % (uint64_t)total);
        }
        int64_t i = e / N, j = e % N;
        long double sum = 0, mag = 0;
        for (int64_t k = 0; k < K; k++) {
            long double p = (long double)tu_get(A, i, k) * tu_get(B, k, j);
            sum += p;
            mag += fabsl(p);
        }
        long double c0 = beta == 0 ? 0 : (long double)beta * tu_get(C0, i, j);
        long double ref = c0 + (long double)alpha * sum;
        long double bound = v == INTEGERS ? 0 : (K + 3) * eps * (fabsl(c0) + fabs(alpha) * mag);
        double got = tu_get(C, i, j);
        if (!(fabsl(got - ref) <= bound)) {
            if (failures++ < 3)
                fprintf(stderr, "%s: C[%lld,%lld] = %.17g, expected %.17Lg (bound %.3Lg)\n",
                        what, (long long)i, (long long)j, got, ref, bound);
        }
    }
    /* Nothing outside C's view may change. */
    char *inside = calloc((size_t)C->size, 1);
    ck_assert_ptr_nonnull(inside);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            inside[tu_pos(C, i, j)] = 1;
    for (int64_t f = 0; f < C->size; f++)
        if (!inside[f] && tu_flat_get(C, f) != C_SENTINEL) {
            if (failures++ < 3)
                fprintf(stderr, "%s: wrote outside C at %lld\n", what, (long long)f);
        }
    free(inside);
    return failures;
}

typedef struct {
    tg_dtype dtype;
    int64_t M, N, K;
    layout la, lb, lc;
    double alpha, beta;
    values v;
    int samples; /* 0: check every element */
} gemm_case;

/* Run one case (fresh operands; C starts as NaN when beta == 0) and check
 * it; returns the number of failures. */
static int run_case(const gemm_case *c)
{
    tg_rng rng;
    tg_rng_seed(&rng, (uint32_t)(c->M * 7919 + c->N * 104729 + c->K * 31 + c->la * 3 + c->lb));
    operand A = make_operand(c->dtype, c->M, c->K, c->la, NAN, c->v, &rng);
    operand B = make_operand(c->dtype, c->K, c->N, c->lb, NAN, c->v, &rng);
    operand C = make_operand(c->dtype, c->M, c->N, c->lc, C_SENTINEL, c->v, &rng);
    operand C0 = C;
    C0.buf = malloc((size_t)C.size * tg_dtype_size(c->dtype));
    ck_assert_ptr_nonnull(C0.buf);
    if (c->beta == 0) /* must never be read */
        for (int64_t i = 0; i < c->M; i++)
            for (int64_t j = 0; j < c->N; j++)
                tu_flat_set(&C, tu_pos(&C, i, j), NAN);
    memcpy(C0.buf, C.buf, (size_t)C.size * tg_dtype_size(c->dtype));
    call_gemm(c->M, c->N, c->K, c->alpha, &A, &B, c->beta, &C);
    char what[160];
    snprintf(what, sizeof what, "%s %lldx%lldx%lld A %s B %s C %s alpha %g beta %g",
             tg_dtype_name(c->dtype), (long long)c->M, (long long)c->N, (long long)c->K,
             layout_names[c->la], layout_names[c->lb], layout_names[c->lc], c->alpha, c->beta);
    int failures = check_result(what, c->alpha, &A, &B, c->beta, &C0, &C, c->v, c->samples);
    free(A.buf);
    free(B.buf);
    free(C.buf);
    free(C0.buf);
    return failures;
}

static const tg_dtype dtypes[] = {TG_F32, TG_F64};

/* ---- correctness ------------------------------------------------------------- */

/* Every (M, N, K) from a list that crosses the tile sizes of every
 * instruction set (4, 6, 8, 12, 16, 32) and the small-product cut-off. */
START_TEST(all_small_shapes_match_the_reference_exactly)
{
    static const int64_t sizes[] = {1, 2, 7, 16, 17, 33, 64, 100};
    const int n = sizeof sizes / sizeof sizes[0];
    int failures = 0;
    for (int d = 0; d < 2; d++)
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
                for (int k = 0; k < n; k++) {
                    gemm_case c = {dtypes[d], sizes[a], sizes[b], sizes[k], ROW_MAJOR,
                                   ROW_MAJOR, ROW_MAJOR, 1.0, 0.0, INTEGERS, 0};
                    failures += run_case(&c);
                }
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* Every combination of layouts for A, B and C (transposed, non-unit column
 * strides, negative row stride), on shapes that take each path: plain
 * loops, A read in place (small N), B read in place (small M), both packed,
 * several k blocks. */
START_TEST(every_stride_layout_matches_the_reference)
{
    static const int64_t shapes[][3] = {
        {5, 4, 3}, {33, 17, 100}, {100, 33, 257}, {17, 100, 257}, {257, 100, 64}, {70, 90, 600},
        {40, 300, 70}, /* N past 8 slivers: column-major A is packed too */
        {9, 1, 40},    /* matrix times vector */
    };
    int failures = 0;
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int la = 0; la < N_LAYOUTS; la++)
                for (int lb = 0; lb < N_LAYOUTS; lb++)
                    for (int lc = 0; lc < N_LAYOUTS; lc++) {
                        gemm_case c = {dtypes[d], shapes[s][0], shapes[s][1], shapes[s][2],
                                       (layout)la, (layout)lb, (layout)lc, 0.5, -2.0, INTEGERS,
                                       0};
                        failures += run_case(&c);
                    }
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* beta == 0 ignores NaN in C; beta == 1 accumulates; other scalings; and
 * random data (real rounding) within the rounding bound. */
START_TEST(alpha_and_beta_cases_match_the_reference)
{
    static const double ab[][2] = {{1, 0}, {1, 1}, {0.75, 0.5}, {-2, 1}, {3, -0.25}};
    static const int64_t shapes[][3] = {{7, 7, 7}, {64, 64, 64}, {100, 17, 300}, {257, 200, 33}};
    int failures = 0;
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t i = 0; i < sizeof ab / sizeof ab[0]; i++)
                for (int v = 0; v < 2; v++) {
                    gemm_case c = {dtypes[d], shapes[s][0], shapes[s][1], shapes[s][2],
                                   ROW_MAJOR, v ? COL_MAJOR : ROW_MAJOR, ROW_MAJOR, ab[i][0],
                                   ab[i][1], (values)v, 0};
                    failures += run_case(&c);
                }
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* The shapes of the recurrent layers (forward step W @ [a; x] with the
 * batch as N, weight and input gradients with transposed operands, LSTM),
 * tall and skinny ones, and a course shape; large outputs are sampled. */
START_TEST(recurrent_and_skinny_shapes_match_the_reference)
{
    static const struct {
        int64_t M, N, K;
        layout la, lb;
    } shapes[] = {
        {1024, 32, 384, ROW_MAJOR, STRIDED},    /* W @ x[:, :, t] (column stride T) */
        {1024, 384, 2048, ROW_MAJOR, COL_MAJOR}, /* dW = dZ @ X^T */
        {384, 32, 1024, COL_MAJOR, ROW_MAJOR},   /* dX = W^T @ dZ */
        {2048, 64, 1024, ROW_MAJOR, ROW_MAJOR},  /* lstm forward step */
        {2048, 1024, 640, ROW_MAJOR, COL_MAJOR}, /* lstm weight gradient (K cut from 6400) */
        {50, 1, 27, ROW_MAJOR, ROW_MAJOR},      /* course: W @ x for one example */
        {3000, 2, 5, ROW_MAJOR, ROW_MAJOR},     /* tall, skinny */
        {2, 3000, 5, ROW_MAJOR, ROW_MAJOR},     /* wide, short */
        {3, 5, 4000, COL_MAJOR, ROW_MAJOR},     /* long inner dimension */
        {48, 1100, 2048, ROW_MAJOR, COL_MAJOR}, /* B over 8 MB: packed per task */
    };
    int failures = 0;
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int v = 0; v < 2; v++) {
                gemm_case c = {dtypes[d], shapes[s].M, shapes[s].N, shapes[s].K, shapes[s].la,
                               shapes[s].lb, ROW_MAJOR, 1.0, v ? 1.0 : 0.0, (values)v, 400};
                failures += run_case(&c);
            }
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* alpha == 0 or K == 0: C = beta*C and A, B are never read (they hold NaN
 * here, as BLAS allows). */
START_TEST(alpha_zero_and_empty_k_only_scale_c)
{
    for (int d = 0; d < 2; d++) {
        operand C = {.dtype = dtypes[d], .rows = 3, .cols = 4, .rs = 4, .cs = 1, .size = 12};
        double cbuf[12], nan_buf[12];
        float cbuf_f[12], nan_buf_f[12];
        C.buf = dtypes[d] == TG_F32 ? (void *)cbuf_f : (void *)cbuf;
        void *nans = dtypes[d] == TG_F32 ? (void *)nan_buf_f : (void *)nan_buf;
        for (int i = 0; i < 12; i++) {
            tu_flat_set(&C, i, i + 1);
            if (dtypes[d] == TG_F32)
                nan_buf_f[i] = NAN;
            else
                nan_buf[i] = NAN;
        }
        operand A = {.dtype = dtypes[d], .rs = 4, .cs = 1, .buf = nans};
        call_gemm(3, 4, 4, 0.0, &A, &A, 2.0, &C); /* alpha = 0 */
        for (int i = 0; i < 12; i++)
            ck_assert_double_eq(tu_flat_get(&C, i), 2.0 * (i + 1));
        call_gemm(3, 4, 0, 1.0, &A, &A, 0.5, &C); /* K = 0 */
        for (int i = 0; i < 12; i++)
            ck_assert_double_eq(tu_flat_get(&C, i), i + 1);
        for (int i = 0; i < 12; i++)
            tu_flat_set(&C, i, NAN);
        call_gemm(3, 4, 0, 1.0, &A, &A, 0.0, &C); /* beta = 0 overwrites NaN */
        for (int i = 0; i < 12; i++)
            ck_assert_double_eq(tu_flat_get(&C, i), 0.0);
    }
}
END_TEST

/* ---- determinism across thread counts ------------------------------------------- */

/* C for one case computed with n threads (random data: rounding matters). */
static void *gemm_with_threads(const gemm_case *c, int threads, size_t *bytes)
{
    ck_assert_int_eq(tg_set_num_threads(threads), TG_OK);
    ck_assert_int_eq(tg_get_num_threads(), threads);
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    operand A = make_operand(c->dtype, c->M, c->K, c->la, NAN, NORMAL, &rng);
    operand B = make_operand(c->dtype, c->K, c->N, c->lb, NAN, NORMAL, &rng);
    operand C = make_operand(c->dtype, c->M, c->N, c->lc, C_SENTINEL, NORMAL, &rng);
    call_gemm(c->M, c->N, c->K, c->alpha, &A, &B, c->beta, &C);
    free(A.buf);
    free(B.buf);
    *bytes = (size_t)C.size * tg_dtype_size(c->dtype);
    return C.buf;
}

START_TEST(results_are_bit_identical_for_any_thread_count)
{
    static const struct {
        int64_t M, N, K;
        layout la, lb, lc;
    } shapes[] = {
        {1024, 32, 384, ROW_MAJOR, STRIDED, ROW_MAJOR}, {384, 32, 1024, COL_MAJOR, ROW_MAJOR, ROW_MAJOR},
        {300, 500, 700, ROW_MAJOR, COL_MAJOR, ROW_MAJOR}, {515, 260, 300, STRIDED, ROW_MAJOR, COL_MAJOR},
        {130, 70, 1000, ROW_MAJOR, ROW_MAJOR, STRIDED}, {2048, 64, 300, ROW_MAJOR, ROW_MAJOR, ROW_MAJOR},
        {48, 1100, 2048, ROW_MAJOR, COL_MAJOR, ROW_MAJOR}, /* B packed per task */
        {48, 1100, 2048, STRIDED, ROW_MAJOR, ROW_MAJOR},   /* A and B packed per task */
    };
    int original = tg_get_num_threads();
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            gemm_case c = {dtypes[d], shapes[s].M, shapes[s].N, shapes[s].K, shapes[s].la,
                           shapes[s].lb, shapes[s].lc, 1.5, 0.5, NORMAL, 0};
            size_t bytes, bytes_n;
            void *one = gemm_with_threads(&c, 1, &bytes);
            for (int threads = 2; threads <= 5; threads++) {
                void *many = gemm_with_threads(&c, threads, &bytes_n);
                ck_assert_msg(bytes == bytes_n && memcmp(one, many, bytes) == 0,
                              "%s %lldx%lldx%lld differs between 1 and %d threads",
                              tg_dtype_name(c.dtype), (long long)c.M, (long long)c.N,
                              (long long)c.K, threads);
                free(many);
            }
            free(one);
        }
    tg_set_num_threads(original);
}
END_TEST

/* ---- tg_gemm on tensors ----------------------------------------------------------- */

START_TEST(tg_gemm_works_on_views)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *a = tg_tensor_randn(&rng, TG_F64, TG_DIMS(40, 30));
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(40, 8, 5)); /* (n_x, m, T) */
    tg_tensor *c = tg_tensor_zeros(TG_F64, TG_DIMS(30, 8));
    tg_tensor at, xt;
    ck_assert_int_eq(tg_view_transpose(&at, a, 0, 1), TG_OK);
    ck_assert_int_eq(tg_view_select(&xt, x, 2, 3), TG_OK);
    ck_assert_int_eq(tg_gemm(2.0, &at, &xt, 0.0, c), TG_OK); /* c = 2 a^T x[:, :, 3] */
    double worst = 0;
    for (int64_t i = 0; i < 30; i++)
        for (int64_t j = 0; j < 8; j++) {
            double ref = 0;
            for (int64_t k = 0; k < 40; k++)
                ref += 2.0 * tg_tensor_get(a, (int64_t[]){k, i}) *
                       tg_tensor_get(x, (int64_t[]){k, j, 3});
            worst = fmax(worst, fabs(tg_tensor_get(c, (int64_t[]){i, j}) - ref));
        }
    ck_assert_double_le(worst, 1e-12);
    tg_tensor_free(a);
    tg_tensor_free(x);
    tg_tensor_free(c);
}
END_TEST

START_TEST(tg_gemm_rejects_bad_arguments_with_a_message)
{
    tg_tensor *a = tg_tensor_zeros(TG_F64, TG_DIMS(5, 3));
    tg_tensor *b = tg_tensor_zeros(TG_F64, TG_DIMS(4, 10));
    tg_tensor *b32 = tg_tensor_zeros(TG_F32, TG_DIMS(3, 10));
    tg_tensor *c = tg_tensor_zeros(TG_F64, TG_DIMS(5, 10));
    tg_tensor *v = tg_tensor_zeros(TG_F64, TG_DIMS(3));
    tg_tensor *row = tg_tensor_zeros(TG_F64, TG_DIMS(1, 10));

    ck_assert_int_eq(tg_gemm(1, NULL, b, 0, c), TG_ERR_ARG);
    ck_assert_int_eq(tg_gemm(1, a, NULL, 0, c), TG_ERR_ARG);
    ck_assert_int_eq(tg_gemm(1, a, b, 0, NULL), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_gemm"));

    ck_assert_int_eq(tg_gemm(1, a, b, 0, c), TG_ERR_SHAPE); /* (5,3) @ (4,10) */
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "(5,3)"));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "(4,10)"));
    ck_assert_int_eq(tg_gemm(1, a, v, 0, c), TG_ERR_SHAPE); /* 1-D operand */
    ck_assert_int_eq(tg_gemm(1, a, b32, 0, c), TG_ERR_DTYPE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "f32"));

    tg_tensor wide; /* (5,10) view whose rows all share memory */
    ck_assert_int_eq(tg_view_expand(&wide, row, TG_DIMS(5, 10)), TG_OK);
    tg_tensor *b3 = tg_tensor_zeros(TG_F64, TG_DIMS(3, 10));
    ck_assert_int_eq(tg_gemm(1, a, b3, 0, &wide), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "share memory"));
    ck_assert_int_eq(tg_gemm(1, a, b3, 0, c), TG_OK);

    tg_tensor *all[] = {a, b, b32, c, v, row, b3};
    tu_free_all(all, 7);
}
END_TEST

/* ---- the thread pool ------------------------------------------------------------------- */

typedef struct {
    atomic_int *hits;
    atomic_int bad_worker;
    int threads;
} count_ctx;

static void count_task(void *ctx, int64_t task, int worker)
{
    count_ctx *c = ctx;
    atomic_fetch_add(&c->hits[task], 1);
    if (worker < 0 || worker >= c->threads)
        atomic_store(&c->bad_worker, 1);
}

START_TEST(parallel_for_runs_every_task_exactly_once)
{
    static const int thread_counts[] = {1, 2, 3, 8};
    static const int64_t task_counts[] = {0, 1, 2, 7, 1000};
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        ck_assert_int_eq(tg_set_num_threads(thread_counts[t]), TG_OK);
        for (size_t n = 0; n < sizeof task_counts / sizeof task_counts[0]; n++)
            for (int rep = 0; rep < 20; rep++) {
                int64_t tasks = task_counts[n];
                atomic_int hits[1000];
                for (int64_t i = 0; i < 1000; i++)
                    atomic_init(&hits[i], 0);
                count_ctx c = {.hits = hits, .threads = thread_counts[t]};
                atomic_init(&c.bad_worker, 0);
                tg_parallel_for(tasks, count_task, &c);
                for (int64_t i = 0; i < 1000; i++) {
                    int runs = atomic_load(&hits[i]);
                    ck_assert_msg(runs == (i < tasks), "%d threads, %lld tasks: task %lld ran %d times",
                                  thread_counts[t], (long long)tasks, (long long)i, runs);
                }
                int bad_worker = atomic_load(&c.bad_worker);
                ck_assert_int_eq(bad_worker, 0);
            }
    }
}
END_TEST

typedef struct {
    atomic_int inner_hits;
    atomic_int wrong_worker;
} nested_ctx;

static void inner_task(void *ctx, int64_t task, int worker)
{
    (void)task;
    (void)worker;
    atomic_fetch_add(&((nested_ctx *)ctx)->inner_hits, 1);
}

typedef struct {
    nested_ctx *shared;
    int worker;
} inner_probe;

static void probe_task(void *ctx, int64_t task, int worker)
{
    (void)task;
    inner_probe *p = ctx;
    atomic_fetch_add(&p->shared->inner_hits, 1);
    if (worker != p->worker)
        atomic_store(&p->shared->wrong_worker, 1);
}

/* A parallel loop inside a task runs inline, on the same worker; a GEMM
 * inside a task works too. */
static void outer_task(void *ctx, int64_t task, int worker)
{
    (void)task;
    nested_ctx *c = ctx;
    inner_probe p = {c, worker};
    tg_parallel_for(10, probe_task, &p);
    tg_parallel_for(5, inner_task, c);
    float a[64 * 64], b[64 * 64], out[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        a[i] = 1, b[i] = 2;
    tg_sgemm(64, 64, 64, 1, a, 64, 1, b, 64, 1, 0, out, 64, 1);
    if (out[0] != 128 || out[64 * 64 - 1] != 128)
        atomic_store(&c->wrong_worker, 1);
    if (tg_set_num_threads(3) != TG_ERR_STATE)
        atomic_store(&c->wrong_worker, 1);
}

START_TEST(nested_parallel_for_runs_inline)
{
    ck_assert_int_eq(tg_set_num_threads(2), TG_OK);
    nested_ctx c;
    atomic_init(&c.inner_hits, 0);
    atomic_init(&c.wrong_worker, 0);
    tg_parallel_for(6, outer_task, &c);
    int inner_hits = atomic_load(&c.inner_hits), wrong_worker = atomic_load(&c.wrong_worker);
    ck_assert_int_eq(inner_hits, 6 * 15);
    ck_assert_int_eq(wrong_worker, 0);
}
END_TEST

/* out[0] = worker 0's scratch; out[1] = its byte 99 (as a pointer value)
 * before this task sets it to 42. */
static void scratch_task(void *ctx, int64_t task, int worker)
{
    (void)task;
    char **out = ctx, *s = tg_worker_scratch(worker, TG_SCRATCH_KERNEL, 100 + 50 * (worker + 1));
    out[0] = s;
    if (s) {
        out[1] = (char *)(uintptr_t)s[99];
        s[99] = 42;
    }
}

START_TEST(thread_count_settings_and_shutdown)
{
    ck_assert_int_ge(tg_get_num_threads(), 1);
    ck_assert_int_eq(tg_set_num_threads(0), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_set_num_threads"));
    ck_assert_int_eq(tg_set_num_threads(3), TG_OK);
    ck_assert_int_eq(tg_get_num_threads(), 3);
    ck_assert_int_eq(tg_set_num_threads(100000), TG_OK);
    ck_assert_int_eq(tg_get_num_threads(), TG_MAX_THREADS);
    ck_assert_int_eq(tg_set_num_threads(2), TG_OK);

    /* Scratch is aligned and keeps its contents between tasks of a worker. */
    char *first[2] = {NULL, NULL}, *second[2] = {NULL, NULL};
    tg_parallel_for(1, scratch_task, first);
    tg_parallel_for(1, scratch_task, second);
    ck_assert_ptr_nonnull(first[0]);
    ck_assert_uint_eq((uintptr_t)first[0] % 64, 0);
    ck_assert_ptr_eq(second[0], first[0]);
    ck_assert_ptr_eq(second[1], (char *)42); /* the byte written by the first task */
    ck_assert_ptr_null(tg_worker_scratch(TG_MAX_THREADS, TG_SCRATCH_KERNEL, 8));

    /* The pool restarts after a shutdown. */
    float a[4] = {1, 2, 3, 4}, out[4];
    tg_threadpool_shutdown();
    for (int rep = 0; rep < 3; rep++) {
        float big_a[200 * 200], big_b[200 * 200], big_c[200 * 200];
        for (int i = 0; i < 200 * 200; i++)
            big_a[i] = 1, big_b[i] = 0.5f;
        tg_sgemm(200, 200, 200, 1, big_a, 200, 1, big_b, 200, 1, 0, big_c, 200, 1);
        ck_assert_float_eq(big_c[12345], 100.0f);
        tg_threadpool_shutdown();
    }
    tg_sgemm(2, 2, 2, 1, a, 2, 1, a, 2, 1, 0, out, 2, 1);
    ck_assert_float_eq(out[0], 7.0f);
    ck_assert_float_eq(out[3], 22.0f);
}
END_TEST

Suite *suite_gemm(void)
{
    Suite *s = suite_create("gemm");
    /* Tagged "reference": sweeps against the naive reference product, which
     * make tsan leaves out (CK_EXCLUDE_TAGS): under ThreadSanitizer the
     * reference's instrumented loads took minutes and find no race; the
     * threaded products are in "threads" below. */
    TCase *tc = tcase_create("gemm");
    tcase_set_tags(tc, "reference");
    tcase_add_test(tc, all_small_shapes_match_the_reference_exactly);
    tcase_add_test(tc, every_stride_layout_matches_the_reference);
    tcase_add_test(tc, alpha_and_beta_cases_match_the_reference);
    tcase_add_test(tc, recurrent_and_skinny_shapes_match_the_reference);
    tcase_add_test(tc, alpha_zero_and_empty_k_only_scale_c);
    tcase_add_test(tc, tg_gemm_works_on_views);
    tcase_add_test(tc, tg_gemm_rejects_bad_arguments_with_a_message);
    suite_add_tcase(s, tc);
    TCase *threads = tcase_create("threads");
    tcase_add_test(threads, results_are_bit_identical_for_any_thread_count);
    suite_add_tcase(s, threads);
    TCase *pool = tcase_create("threadpool");
    tcase_add_test(pool, parallel_for_runs_every_task_exactly_once);
    tcase_add_test(pool, nested_parallel_for_runs_inline);
    tcase_add_test(pool, thread_count_settings_and_shutdown);
    suite_add_tcase(s, pool);
    return s;
}
