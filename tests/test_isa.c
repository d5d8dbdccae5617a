/* The kernels of every instruction set this machine runs (core/cpu.h),
 * each ISA switched in with tg_isa_select:
 *   - tg_sgemm / tg_dgemm on the tails of every kernel class (M 1..13 and
 *     past, N 1..33) and on strided and transposed operands, within the
 *     rounding bound of tests/test_gemm.c of tg_gemm_reference, writing
 *     nothing outside C;
 *   - the packed product (ops/gemm_packed.h) on column ranges: within the
 *     bound, a column's bits whatever the range and however the rows are
 *     shared, and the same bits as tg_sgemm / tg_dgemm of those columns;
 *     packing in column parts gives the bytes of packing whole;
 *   - the register-block transposes (ops/gemm_kernels.h): exact;
 *   - a fused LSTM: the same across ISAs to rounding, and bit-identical
 *     for 1, 2 and 3 threads within each;
 *   - choosing the ISA: TG_ISA in the environment (a child process),
 *     tg_isa_select's refusals, and a backward refused after a switch. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/cpu.h"
#include "../ops/gemm.h"
#include "../ops/gemm_kernels.h"
#include "../ops/gemm_packed.h"
#include "util.h"

/* Run fn under every ISA the machine runs, then restore the active one. */
typedef void (*isa_fn)(tg_isa isa, void *ctx);

static void for_each_isa(isa_fn fn, void *ctx)
{
    tg_isa original = tg_isa_active();
    int ran = 0;
    for (int i = 0; i < TG_ISA_COUNT; i++) {
        if (!tg_isa_supported((tg_isa)i))
            continue;
        ck_assert_int_eq(tg_isa_select((tg_isa)i), TG_OK);
        ck_assert_int_eq(tg_isa_active(), i);
        fn((tg_isa)i, ctx);
        ran++;
    }
    ck_assert_int_eq(tg_isa_select(original), TG_OK);
    ck_assert_int_ge(ran, 1);
}

/* for_each_isa with a failure counter as the context: none allowed. */
static void expect_no_failures(isa_fn fn, const char *what)
{
    int failures = 0;
    for_each_isa(fn, &failures);
    ck_assert_msg(failures == 0, "%d %s (the first ones are on stderr)", failures, what);
}

/* ---- matrices in a larger buffer --------------------------------------------------
 * Elements outside the matrix are sentinels: NaN around an input (a read
 * poisons the result), a fixed value around an output (a write shows). */

typedef enum { ROWS, COLS, GAPS, N_LAYOUTS } layout;
static const char *const LAYOUT_NAMES[] = {"row-major", "column-major", "strided"};
static const double SENTINEL = -777.0;

typedef tu_matrix mat; /* tests/util.h, shared with test_gemm.c */

/* rows x cols with the given strides, the elements N(0,1) and the rest of
 * the buffer `gap`. */
static mat mat_strided(tg_dtype dtype, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                       double gap, tg_rng *rng)
{
    mat a = {.dtype = dtype, .rows = rows, .cols = cols, .rs = rs, .cs = cs};
    a.size = (rows - 1) * rs + (cols - 1) * cs + 1;
    a.buf = malloc((size_t)a.size * tg_dtype_size(dtype));
    ck_assert_ptr_nonnull(a.buf);
    for (int64_t f = 0; f < a.size; f++)
        tu_flat_set(&a, f, gap);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            tu_flat_set(&a, tu_pos(&a, i, j), tg_rng_randn(rng));
    return a;
}

/* Laid out as asked; strided: gaps between rows and between columns. */
static mat mat_new(tg_dtype dtype, int64_t rows, int64_t cols, layout l, double gap,
                   tg_rng *rng)
{
    return mat_strided(dtype, rows, cols, l == ROWS ? cols : l == COLS ? 1 : 2 * cols + 3,
                       l == ROWS ? 1 : l == COLS ? rows : 2, gap, rng);
}

static mat mat_copy(const mat *a)
{
    mat c = *a;
    size_t bytes = (size_t)a->size * tg_dtype_size(a->dtype);
    c.buf = malloc(bytes);
    ck_assert_ptr_nonnull(c.buf);
    memcpy(c.buf, a->buf, bytes);
    return c;
}

/* Columns j0 .. j1 of every row set to v. */
static void fill_columns(mat *a, int64_t j0, int64_t j1, double v)
{
    for (int64_t i = 0; i < a->rows; i++)
        for (int64_t j = j0; j < j1; j++)
            tu_flat_set(a, tu_pos(a, i, j), v);
}

static void mats_free(mat *m, int n)
{
    for (int i = 0; i < n; i++)
        free(m[i].buf);
}

/* sum_k |A[i,k] B[k,j]|: what the rounding of element (i, j) scales with. */
static double magnitude(const mat *A, const mat *B, int64_t i, int64_t j)
{
    double mag = 0;
    for (int64_t k = 0; k < A->cols; k++)
        mag += fabs(tu_get(A, i, k) * tu_get(B, k, j));
    return mag;
}

/* C (columns j0 .. j1) against ref, within (K+3) eps (|beta c0| + |alpha|
 * sum |a b|) (tests/test_gemm.c's bound; mag holds the sums, or NULL);
 * every other element of C's buffer must still equal C0's. Prints the
 * first few failures. */
static int compare_product(const char *what, const mat *A, const mat *B, const mat *mag,
                           double alpha, double beta, const mat *C0, const mat *C,
                           const mat *ref, int64_t j0, int64_t j1)
{
    double eps = C->dtype == TG_F32 ? FLT_EPSILON : DBL_EPSILON;
    int failures = 0;
    char *inside = calloc((size_t)C->size, 1);
    ck_assert_ptr_nonnull(inside);
    for (int64_t i = 0; i < C->rows; i++)
        for (int64_t j = j0; j < j1; j++) {
            inside[tu_pos(C, i, j)] = 1;
            double c0 = beta == 0 ? 0 : beta * tu_get(C0, i, j);
            double sum = mag ? tu_get(mag, i, j) : magnitude(A, B, i, j);
            double bound = (double)(A->cols + 3) * eps * (fabs(c0) + fabs(alpha) * sum);
            double got = tu_get(C, i, j), want = tu_get(ref, i, j);
            if (!(fabs(got - want) <= bound) && failures++ < 3)
                fprintf(stderr, "%s: C[%lld,%lld] = %.17g, reference %.17g (bound %.3g)\n", what,
                        (long long)i, (long long)j, got, want, bound);
        }
    for (int64_t f = 0; f < C->size; f++)
        if (!inside[f] && memcmp((char *)C->buf + f * (int64_t)tg_dtype_size(C->dtype),
                                 (char *)C0->buf + f * (int64_t)tg_dtype_size(C->dtype),
                                 tg_dtype_size(C->dtype)) != 0 &&
            failures++ < 3)
            fprintf(stderr, "%s: element %lld outside the product changed\n", what, (long long)f);
    free(inside);
    return failures;
}

static void call_gemm(tg_dtype dtype, int64_t M, int64_t N, int64_t K, double alpha,
                      const void *A, int64_t rsa, int64_t csa, const void *B, int64_t rsb,
                      int64_t csb, double beta, void *C, int64_t rsc, int64_t csc)
{
    if (dtype == TG_F32)
        tg_sgemm(M, N, K, (float)alpha, A, rsa, csa, B, rsb, csb, (float)beta, C, rsc, csc);
    else
        tg_dgemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

/* One product C = beta C + alpha A @ B, checked; returns the failures. */
static int gemm_case(tg_isa isa, tg_dtype dtype, int64_t M, int64_t N, int64_t K, layout la,
                     layout lb, layout lc, double alpha, double beta)
{
    tg_rng rng;
    tg_rng_seed(&rng, (uint32_t)(M * 1009 + N * 101 + K * 7 + la * 3 + lb * 5 + lc));
    mat m[5];
    m[0] = mat_new(dtype, M, K, la, NAN, &rng);
    m[1] = mat_new(dtype, K, N, lb, NAN, &rng);
    m[2] = mat_new(dtype, M, N, lc, SENTINEL, &rng); /* C0 */
    if (beta == 0) /* C must not be read */
        fill_columns(&m[2], 0, N, NAN);
    m[3] = mat_copy(&m[2]); /* C */
    m[4] = mat_copy(&m[2]); /* the reference */
    call_gemm(dtype, M, N, K, alpha, tu_ptr(&m[0], 0, 0), m[0].rs, m[0].cs, tu_ptr(&m[1], 0, 0),
              m[1].rs, m[1].cs, beta, tu_ptr(&m[3], 0, 0), m[3].rs, m[3].cs);
    tg_gemm_reference(dtype, M, N, K, alpha, tu_ptr(&m[0], 0, 0), m[0].rs, m[0].cs,
                      tu_ptr(&m[1], 0, 0), m[1].rs, m[1].cs, beta, tu_ptr(&m[4], 0, 0), m[4].rs,
                      m[4].cs);
    char what[160];
    snprintf(what, sizeof what, "%s %s %lldx%lldx%lld A %s B %s C %s alpha %g beta %g",
             tg_isa_name(isa), tg_dtype_name(dtype), (long long)M, (long long)N, (long long)K,
             LAYOUT_NAMES[la], LAYOUT_NAMES[lb], LAYOUT_NAMES[lc], alpha, beta);
    int failures =
        compare_product(what, &m[0], &m[1], NULL, alpha, beta, &m[2], &m[3], &m[4], 0, N);
    mats_free(m, 5);
    return failures;
}

static const tg_dtype DTYPES[] = {TG_F32, TG_F64};
/* C = A @ B, and C = C - A @ B / 2 */
static const double ALPHA_BETA[][2] = {{1.0, 0.0}, {-0.5, 1.0}};

/* ---- 5: GEMM on every ISA ------------------------------------------------------------- */

/* Every row count up to 13 (each kernel class and its tails: 12/8/4, 6/4/2
 * and 4 rows) and some past a tile, every column count up to 33 (a vector
 * or two of either width, and one more), depths around the unrolling. */
static void gemm_tails(tg_isa isa, void *ctx)
{
    static const int64_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 20, 24, 28};
    static const int64_t Ks[] = {1, 2, 5, 8, 16, 17, 33, 70};
    int *failures = ctx;
    for (int d = 0; d < 2; d++)
        for (size_t a = 0; a < sizeof Ms / sizeof Ms[0]; a++)
            for (int64_t N = 1; N <= 33; N++)
                for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++)
                    *failures += gemm_case(isa, DTYPES[d], Ms[a], N, Ks[k], ROWS, ROWS, ROWS,
                                           1.0, 0.0);
}

START_TEST(gemm_tails_of_every_kernel_class_match_the_reference_on_every_isa)
{
    expect_no_failures(gemm_tails, "elements beyond the rounding bound or written outside C");
}
END_TEST

/* Transposed and strided A, B and C (the swapped C^T = B^T A^T path, A
 * read in place with a column stride, packed slivers), beta 0 and 1. */
static void gemm_layouts(tg_isa isa, void *ctx)
{
    static const int64_t Ms[] = {1, 5, 12, 13, 25}, Ns[] = {1, 8, 17, 33}, Ks[] = {1, 7, 70};
    int *failures = ctx;
    for (int d = 0; d < 2; d++)
        for (int m = 0; m < 5; m++)
            for (int n = 0; n < 4; n++)
                for (int k = 0; k < 3; k++)
                    for (int la = 0; la < N_LAYOUTS; la++)
                        for (int lb = 0; lb < N_LAYOUTS; lb++)
                            for (int lc = 0; lc < N_LAYOUTS; lc++)
                                for (int s = 0; s < 2; s++)
                                    *failures += gemm_case(isa, DTYPES[d], Ms[m], Ns[n], Ks[k],
                                                           (layout)la, (layout)lb, (layout)lc,
                                                           ALPHA_BETA[s][0], ALPHA_BETA[s][1]);
}

START_TEST(gemm_strided_and_transposed_operands_match_the_reference_on_every_isa)
{
    expect_no_failures(gemm_layouts, "elements beyond the rounding bound or written outside C");
}
END_TEST

/* ---- 6: the packed product ----------------------------------------------------------- */

/* Column ranges of N: j0 at a multiple of the sliver width (0 and the
 * last one), j1 one past j0, ragged, or N. Returns how many. */
static int column_ranges(int64_t N, int64_t align, int64_t (*r)[2])
{
    int64_t last = (N - 1) / align * align;
    int64_t cand[][2] = {{0, N}, {0, 1}, {0, N < align + 3 ? N : align + 3}, {last, N},
                         {last, last + 1}, {align, N}};
    int n = 0;
    for (size_t c = 0; c < sizeof cand / sizeof cand[0]; c++) {
        bool seen = cand[c][0] >= N;
        for (int i = 0; i < n && !seen; i++)
            seen = r[i][0] == cand[c][0] && r[i][1] == cand[c][1];
        if (!seen) {
            r[n][0] = cand[c][0];
            r[n][1] = cand[c][1];
            n++;
        }
    }
    return n;
}

/* What the packed products of one ISA came to. */
typedef struct {
    int failures;      /* beyond the bound, or written outside their columns */
    int not_invariant; /* a column's bits changed with the range or the rows computed */
    int differ;        /* not the same bits as tg_sgemm / tg_dgemm of the same columns */
    double differ_largest; /* multiply-adds of the largest product that differed */
} packed_counts;

/* Rows r, r + sets, ... of A (M x K) times the packed B into the same rows
 * of C, columns j0 .. j1: how the fused engine shares a step's rows. */
static void packed_rows(const tg_packed_b *p, const mat *A, int64_t r, int64_t sets, int64_t j0,
                        int64_t j1, double alpha, double beta, mat *C)
{
    int64_t rows = (A->rows - r + sets - 1) / sets;
    tg_packed_gemm(p, rows, j0, j1, alpha, tu_ptr(A, r, 0), A->rs * sets, beta, tu_ptr(C, r, 0),
                   C->rs * sets);
}

/* The packed product against the whole product: every bit of columns
 * j0 .. j1 the same. */
static bool same_columns(const mat *C, const mat *whole, int64_t j0, int64_t j1)
{
    const size_t bytes = (size_t)(j1 - j0) * tg_dtype_size(C->dtype);
    for (int64_t i = 0; i < C->rows; i++)
        if (memcmp(tu_ptr(C, i, j0), tu_ptr(whole, i, j0), bytes))
            return false;
    return true;
}

/* One column range of one product: C = beta C + alpha A @ B[:, j0:j1] by
 * tg_packed_gemm against the reference (within the bound, nothing outside
 * the columns written), against the whole product (the same bits), and
 * against tg_sgemm / tg_dgemm of the same columns (the same bits). m holds
 * A, C0, the reference, the whole packed product and sum |a b|. */
static void packed_range(const char *what, const tg_packed_b *p, const mat *B, const mat *m,
                         double alpha, double beta, int64_t j0, int64_t j1, packed_counts *c)
{
    tg_dtype dtype = B->dtype;
    int64_t M = m[0].rows, K = B->rows;
    mat C = mat_copy(&m[1]), D = mat_copy(&m[1]);
    tg_packed_gemm(p, M, j0, j1, alpha, tu_ptr(&m[0], 0, 0), m[0].rs, beta, tu_ptr(&C, 0, 0), C.rs);
    call_gemm(dtype, M, j1 - j0, K, alpha, tu_ptr(&m[0], 0, 0), m[0].rs, 1, tu_ptr(B, 0, j0), B->rs,
              B->cs, beta, tu_ptr(&D, 0, j0), D.rs, 1);
    c->failures += compare_product(what, &m[0], B, &m[4], alpha, beta, &m[1], &C, &m[2], j0, j1);
    if (!same_columns(&C, &m[3], j0, j1) && c->not_invariant++ < 3)
        fprintf(stderr, "%s: not the same bits as the product of every column\n", what);
    /* gemm_packed.h: the same bits whenever tg_sgemm / tg_dgemm use their
     * kernels too, that is for more than one column and more than 320
     * multiply-adds */
    bool kernels = j1 - j0 > 1 && (double)M * (double)(j1 - j0) * (double)K > 320;
    if (kernels && memcmp(C.buf, D.buf, (size_t)C.size * tg_dtype_size(dtype)) != 0) {
        if (c->differ++ < 3)
            fprintf(stderr, "%s: not the same bits as %s of those columns\n", what,
                    dtype == TG_F32 ? "tg_sgemm" : "tg_dgemm");
        c->differ_largest = fmax(c->differ_largest, (double)M * (double)(j1 - j0) * (double)K);
    }
    free(C.buf);
    free(D.buf);
}

/* 1, 1 + step, ... and max_M last. */
static int64_t next_rows(int64_t M, int64_t step, int64_t max_M)
{
    return M < max_M && M + step > max_M ? max_M : M + step;
}

/* For M = 1 .. max_M rows of A (every `step`-th, and max_M) and two
 * (alpha, beta): every column range, and the rows shared in 2 and 3 sets,
 * on a B (K x N) packed once. */
static void packed_case(tg_isa isa, tg_dtype dtype, int64_t K, int64_t N, layout lb,
                        int64_t max_M, int64_t step, packed_counts *c)
{
    tg_rng rng;
    tg_rng_seed(&rng, (uint32_t)(K * 31 + N * 7 + lb));
    mat B = mat_new(dtype, K, N, lb, NAN, &rng);
    size_t bytes = (tg_packed_b_bytes(dtype, K, N) + 63) / 64 * 64;
    void *mem = aligned_alloc(64, bytes);
    ck_assert_ptr_nonnull(mem);
    tg_packed_b packed;
    tg_pack_b(&packed, dtype, K, N, tu_ptr(&B, 0, 0), B.rs, B.cs, mem);
    int64_t ranges[6][2];
    int n_ranges = column_ranges(N, tg_packed_b_align(dtype), ranges);
    for (int64_t M = 1; M <= max_M; M = next_rows(M, step, max_M))
        for (int s = 0; s < 2; s++) {
            double alpha = ALPHA_BETA[s][0], beta = ALPHA_BETA[s][1];
            mat m[5]; /* A, C0, the reference, the whole packed product, sum |a b| */
            /* row-major with padded rows, as tg_packed_gemm takes A and C */
            m[0] = mat_strided(dtype, M, K, K + 3, 1, NAN, &rng);
            m[1] = mat_strided(dtype, M, N, N + 5, 1, SENTINEL, &rng);
            if (beta == 0)
                fill_columns(&m[1], 0, N, NAN);
            m[2] = mat_copy(&m[1]);
            tg_gemm_reference(dtype, M, N, K, alpha, tu_ptr(&m[0], 0, 0), m[0].rs, 1,
                              tu_ptr(&B, 0, 0), B.rs, B.cs, beta, tu_ptr(&m[2], 0, 0), m[2].rs, 1);
            m[3] = mat_copy(&m[1]);
            packed_rows(&packed, &m[0], 0, 1, 0, N, alpha, beta, &m[3]);
            m[4] = mat_copy(&m[1]);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                    tu_flat_set(&m[4], tu_pos(&m[4], i, j), magnitude(&m[0], &B, i, j));
            char what[160];
            for (int r = 0; r < n_ranges; r++) {
                snprintf(what, sizeof what, "%s %s packed %lldx[%lld,%lld)x%lld B %s alpha %g "
                         "beta %g", tg_isa_name(isa), tg_dtype_name(dtype), (long long)M,
                         (long long)ranges[r][0], (long long)ranges[r][1], (long long)K,
                         LAYOUT_NAMES[lb], alpha, beta);
                packed_range(what, &packed, &B, m, alpha, beta, ranges[r][0], ranges[r][1], c);
            }
            for (int64_t sets = 2; sets <= 3; sets++) {
                mat C = mat_copy(&m[1]);
                for (int64_t set = 0; set < sets && set < M; set++)
                    packed_rows(&packed, &m[0], set, sets, 0, N, alpha, beta, &C);
                if (memcmp(C.buf, m[3].buf, (size_t)C.size * tg_dtype_size(dtype)) != 0 &&
                    c->not_invariant++ < 3)
                    fprintf(stderr, "%s %s packed %lldx%lldx%lld: rows in %lld sets are not the "
                            "same bits as all rows at once\n", tg_isa_name(isa),
                            tg_dtype_name(dtype), (long long)M, (long long)N, (long long)K,
                            (long long)sets);
                free(C.buf);
            }
            mats_free(m, 5);
        }
    free(mem);
    free(B.buf);
}

static void packed_products(tg_isa isa, void *ctx)
{
    static const int64_t Ks[] = {1, 7, 70}, Ns[] = {1, 33, 70};
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < 3; k++)
            for (int n = 0; n < 3; n++)
                for (int lb = 0; lb < N_LAYOUTS; lb++) /* every M for one layout of B */
                    packed_case(isa, DTYPES[d], Ks[k], Ns[n], (layout)lb, 40, lb == ROWS ? 1 : 6,
                                ctx);
        /* a depth of several passes (kc is at most 512) */
        packed_case(isa, DTYPES[d], 1100, 40, COLS, 13, 4, ctx);
    }
}

START_TEST(packed_product_on_column_ranges_matches_the_reference_and_gemm)
{
    packed_counts c = {0};
    for_each_isa(packed_products, &c);
    ck_assert_msg(c.failures == 0, "tg_packed_gemm: %d elements beyond the rounding bound or "
                  "written outside the columns (the first ones are on stderr)", c.failures);
    ck_assert_msg(c.not_invariant == 0, "tg_packed_gemm: in %d products a column's bits "
                  "depend on the column range or on the rows computed with it (the first ones "
                  "are on stderr)", c.not_invariant);
    ck_assert_msg(c.differ == 0, "tg_packed_gemm: %d products that tg_sgemm / tg_dgemm "
                  "compute with their kernels are not the same bits, as gemm_packed.h says they "
                  "are (the largest of %.0f multiply-adds; the first ones are on stderr)",
                  c.differ, c.differ_largest);
}
END_TEST

/* Packing in column parts (tg_packed_b_init, then tg_pack_b_columns from
 * multiples of the sliver width, the last part past N) writes the same
 * bytes as packing B whole. */
static void packing_in_parts(tg_isa isa, void *ctx)
{
    static const int64_t Ks[] = {1, 7, 70}, Ns[] = {1, 9, 33, 70, 100};
    int *failures = ctx;
    tg_rng rng;
    tg_rng_seed(&rng, 23);
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 3; k++)
            for (int n = 0; n < 5; n++)
                for (int lb = 0; lb < N_LAYOUTS; lb++) {
                    tg_dtype dtype = DTYPES[d];
                    int64_t K = Ks[k], N = Ns[n], align = tg_packed_b_align(dtype);
                    mat B = mat_new(dtype, K, N, (layout)lb, NAN, &rng);
                    size_t bytes = (tg_packed_b_bytes(dtype, K, N) + 63) / 64 * 64;
                    char *whole = aligned_alloc(64, bytes), *parts = aligned_alloc(64, bytes);
                    ck_assert(whole && parts);
                    memset(whole, 0xab, bytes);
                    memset(parts, 0xcd, bytes);
                    tg_packed_b p, q;
                    tg_pack_b(&p, dtype, K, N, tu_ptr(&B, 0, 0), B.rs, B.cs, whole);
                    for (int64_t width = align; width <= 3 * align; width += align) {
                        tg_packed_b_init(&q, dtype, K, N, parts);
                        for (int64_t j0 = 0; j0 < N; j0 += width)
                            tg_pack_b_columns(&q, j0, j0 + width, tu_ptr(&B, 0, 0), B.rs, B.cs);
                        if (memcmp(whole, parts, tg_packed_b_bytes(dtype, K, N)) != 0 &&
                            (*failures)++ < 3)
                            fprintf(stderr, "%s %s pack %lldx%lld B %s in parts of %lld columns: "
                                    "not the bytes of the whole packing\n", tg_isa_name(isa),
                                    tg_dtype_name(dtype), (long long)K, (long long)N,
                                    LAYOUT_NAMES[lb], (long long)width);
                    }
                    free(whole);
                    free(parts);
                    free(B.buf);
                }
}

START_TEST(packing_in_column_parts_equals_packing_whole)
{
    expect_no_failures(packing_in_parts, "packings in parts wrong");
}
END_TEST

/* ---- 7: the transposes ------------------------------------------------------------------ */

static void transposes(tg_isa isa, void *ctx)
{
    int *failures = ctx;
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    for (int d = 0; d < 2; d++) {
        tg_dtype dtype = DTYPES[d];
        tg_transpose_fn transpose =
            dtype == TG_F32 ? tg_gemm_active()->f32.transpose : tg_gemm_active()->f64.transpose;
        for (int64_t rows = 1; rows <= 40; rows++)
            for (int64_t cols = 1; cols <= 40; cols++)
                for (int add = 0; add < 2; add++) {
                    /* odd strides: src rows 2 cols + 1 apart, dst rows 2 rows + 1 */
                    mat src = mat_strided(dtype, rows, cols, 2 * cols + 1, 1, NAN, &rng);
                    mat dst = mat_strided(dtype, cols, rows, 2 * rows + 1, 1, SENTINEL, &rng);
                    mat before = mat_copy(&dst), want = mat_copy(&dst);
                    for (int64_t i = 0; i < rows; i++)
                        for (int64_t j = 0; j < cols; j++) {
                            int64_t f = tu_pos(&want, j, i);
                            double s = tu_get(&src, i, j);
                            if (dtype == TG_F32) /* one rounding, in the dtype */
                                ((float *)want.buf)[f] =
                                    add ? ((float *)before.buf)[f] + (float)s : (float)s;
                            else
                                ((double *)want.buf)[f] = add ? ((double *)before.buf)[f] + s : s;
                        }
                    transpose(rows, cols, src.buf, src.rs, dst.buf, dst.rs, add);
                    size_t bytes = (size_t)dst.size * tg_dtype_size(dtype);
                    if (memcmp(dst.buf, want.buf, bytes) != 0 && (*failures)++ < 3)
                        fprintf(stderr, "%s %s transpose %lldx%lld add %d: wrong result\n",
                                tg_isa_name(isa), tg_dtype_name(dtype), (long long)rows,
                                (long long)cols, add);
                    mat all[] = {src, dst, before, want};
                    mats_free(all, 4);
                }
    }
}

START_TEST(transposes_of_every_isa_are_exact)
{
    expect_no_failures(transposes, "transposes wrong");
}
END_TEST

/* ---- 5: a fused LSTM across ISAs and thread counts ------------------------------------- */

enum { MAX_KEPT = 32 };

/* The outputs and gradients of one run, as persistent copies. */
typedef struct {
    int n;
    tg_tensor *t[MAX_KEPT];
    const char *name[MAX_KEPT];
} kept;

static void keep(kept *k, const char *name, const tg_tensor *t)
{
    ck_assert_int_lt(k->n, MAX_KEPT);
    k->name[k->n] = name;
    k->t[k->n] = tg_tensor_copy(t);
    ck_assert_ptr_nonnull(k->t[k->n]);
    k->n++;
}

typedef struct {
    tg_dtype dtype;
    int64_t n_x, n_a, m, T;
} lstm_shape;

typedef struct {
    lstm_shape s;
    tg_recurrent *rnn;
    tg_tensor *x, *a0[2], *c0[2];
    kept first[TG_ISA_COUNT]; /* per ISA, one thread */
    int n_isas;
    tg_isa isas[TG_ISA_COUNT];
} lstm_probe;

/* Two fused LSTM layers from given states, every output and final state
 * in the loss; the results and every gradient into *out. */
static void lstm_run(lstm_probe *p, kept *out)
{
    tg_tensor *inputs[] = {p->x, p->a0[0], p->c0[0], p->a0[1], p->c0[1]};
    for (int i = 0; i < 5; i++)
        tg_tensor_zero_grad(inputs[i]);
    for (int i = 0; i < p->rnn->params.count; i++)
        tg_tensor_zero_grad(p->rnn->params.items[i].tensor);
    tg_tape *tape = tg_tape_new();
    tg_state init[2] = {{p->a0[0], p->c0[0]}, {p->a0[1], p->c0[1]}}, final[2];
    tg_tensor *a = tg_recurrent_forward(tape, p->rnn, p->x, init, TG_PATH_FUSED, final);
    tg_tensor *loss = tu_weighted_sum(tape, a);
    for (int k = 0; k < 2 && loss; k++)
        loss = tg_add(tape, loss, tg_add(tape, tu_weighted_sum(tape, final[k].a),
                                         tu_weighted_sum(tape, tg_scale(tape, final[k].c, 0.5))));
    ck_assert_msg(loss && tg_backward(tape, loss) == TG_OK, "fused LSTM: %s", tg_tape_error(tape));
    out->n = 0;
    keep(out, "a", a);
    keep(out, "a_n[0]", final[0].a);
    keep(out, "c_n[1]", final[1].c);
    static const char *const input_names[] = {"dx", "da0[0]", "dc0[0]", "da0[1]", "dc0[1]"};
    for (int i = 0; i < 5; i++)
        keep(out, input_names[i], inputs[i]->grad);
    for (int i = 0; i < p->rnn->params.count; i++)
        keep(out, p->rnn->params.items[i].name, p->rnn->params.items[i].tensor->grad);
    tg_tape_free(tape);
}

static void kept_free(kept *k)
{
    tu_free_all(k->t, k->n);
    k->n = 0;
}

/* Every tensor of b against a: bit for bit (tol < 0), or within tol
 * relative to max(|a|, |b|, 1). */
static void expect_kept(const char *what, const kept *a, const kept *b, double tol)
{
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        int64_t n = tg_tensor_numel(a->t[i]);
        for (int64_t e = 0; e < n; e++) {
            double x = tg_tensor_get_flat(a->t[i], e), y = tg_tensor_get_flat(b->t[i], e);
            bool ok = tol < 0 ? memcmp(&x, &y, sizeof x) == 0
                              : fabs(x - y) <= tol * fmax(fmax(fabs(x), fabs(y)), 1.0);
            ck_assert_msg(ok, "%s: %s[%lld] = %.17g vs %.17g (%s)", what, a->name[i],
                          (long long)e, x, y, tol < 0 ? "must be bit-identical" : "beyond tolerance");
        }
    }
}

static void lstm_on_isa(tg_isa isa, void *ctx)
{
    lstm_probe *p = ctx;
    int slot = p->n_isas++;
    p->isas[slot] = isa;
    ck_assert_int_eq(tg_set_num_threads(1), TG_OK);
    lstm_run(p, &p->first[slot]);
    for (int threads = 2; threads <= 3; threads++) {
        kept many = {0};
        ck_assert_int_eq(tg_set_num_threads(threads), TG_OK);
        lstm_run(p, &many);
        char what[160];
        snprintf(what, sizeof what, "%s %s LSTM n_a=%lld m=%lld T=%lld: %d threads vs 1",
                 tg_isa_name(isa), tg_dtype_name(p->s.dtype), (long long)p->s.n_a,
                 (long long)p->s.m, (long long)p->s.T, threads);
        expect_kept(what, &p->first[slot], &many, -1);
        kept_free(&many);
    }
}

START_TEST(fused_lstm_agrees_across_isas_and_thread_counts)
{
    /* n_a past a vector of every width (33, 45), batches for rows, for
     * units, and one example (gemv) */
    static const lstm_shape shapes[] = {
        {TG_F64, 7, 33, 32, 12}, {TG_F64, 5, 45, 3, 5}, {TG_F64, 3, 17, 1, 4},
        {TG_F32, 7, 33, 32, 12}, {TG_F32, 5, 45, 3, 5}, {TG_F32, 3, 17, 1, 4},
    };
    lstm_shape s = shapes[_i];
    lstm_probe p = {.s = s};
    tg_rng rng;
    tg_rng_seed(&rng, 5 + (uint32_t)_i);
    tg_recurrent_options o = tg_recurrent_defaults();
    o.num_layers = 2;
    p.rnn = tg_recurrent_new(TG_CELL_LSTM, (int)s.n_x, (int)s.n_a, s.dtype, &o, &rng);
    ck_assert_ptr_nonnull(p.rnn);
    p.x = tu_param(&rng, s.dtype, "x", TG_DIMS(s.n_x, s.m, s.T));
    for (int k = 0; k < 2; k++) {
        p.a0[k] = tu_param(&rng, s.dtype, "a0", TG_DIMS(s.n_a, s.m));
        p.c0[k] = tu_param(&rng, s.dtype, "c0", TG_DIMS(s.n_a, s.m));
    }
    for_each_isa(lstm_on_isa, &p);
    double tol = s.dtype == TG_F64 ? 1e-12 : 1e-5;
    for (int i = 1; i < p.n_isas; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s LSTM n_a=%lld m=%lld T=%lld: %s vs %s",
                 tg_dtype_name(s.dtype), (long long)s.n_a, (long long)s.m, (long long)s.T,
                 tg_isa_name(p.isas[i]), tg_isa_name(p.isas[0]));
        expect_kept(what, &p.first[0], &p.first[i], tol);
    }
    for (int i = 0; i < p.n_isas; i++)
        kept_free(&p.first[i]);
    tg_tensor *all[] = {p.x, p.a0[0], p.c0[0], p.a0[1], p.c0[1]};
    tu_free_all(all, 5);
    tg_recurrent_free(p.rnn);
}
END_TEST

/* ---- choosing the ISA ------------------------------------------------------------------------ */

static tg_isa best_isa(void)
{
    for (int i = TG_ISA_COUNT - 1; i > 0; i--)
        if (tg_isa_supported((tg_isa)i))
            return (tg_isa)i;
    return TG_ISA_GENERIC;
}

/* In its own test case (isa_env), so that the test below can run it alone
 * in a child process: the ISA in use is the one TG_ISA names when this
 * machine runs it, else the best one. */
START_TEST(active_isa_is_the_one_tg_isa_names_or_the_best)
{
    const char *env = getenv("TG_ISA");
    tg_isa want = best_isa();
    for (int i = 0; i < TG_ISA_COUNT; i++)
        if (env && strcmp(env, tg_isa_name((tg_isa)i)) == 0 && tg_isa_supported((tg_isa)i))
            want = (tg_isa)i;
    ck_assert_msg(tg_isa_active() == want, "TG_ISA=%s: %s in use, expected %s", env ? env : "",
                  tg_isa_name(tg_isa_active()), tg_isa_name(want));
    ck_assert_str_eq(tg_gemm_active()->isa, tg_isa_name(want));
}
END_TEST

START_TEST(tg_isa_in_the_environment_is_honoured)
{
    static const char *const names[] = {"generic", "avx2", "avx512", "sse9", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool runs = false;
        for (int k = 0; k < TG_ISA_COUNT; k++)
            runs = runs || (strcmp(names[i], tg_isa_name((tg_isa)k)) == 0 &&
                            tg_isa_supported((tg_isa)k));
        char command[512], out[4096], warning[64];
        snprintf(command, sizeof command,
                 "CK_RUN_CASE=isa_env TG_ISA=%s ../" TG_BUILD_DIR "/tests/run_tests isa", names[i]);
        int status = tu_run(command, out, sizeof out);
        ck_assert_msg(status == 0 && strstr(out, "100%: Checks: 1,"),
                      "TG_ISA=%s: the child run failed (status %d):\n%s", names[i], status, out);
        snprintf(warning, sizeof warning, "TG_ISA=%s is not", names[i]);
        bool warned = strstr(out, warning) != NULL;
        ck_assert_msg(warned == (!runs && names[i][0]),
                      "TG_ISA=%s: %s on stderr:\n%s", names[i],
                      warned ? "an unexpected warning" : "no warning", out);
    }
}
END_TEST

START_TEST(tg_isa_select_refuses_what_cannot_run)
{
    tg_isa before = tg_isa_active();
    static const int not_isas[] = {-1, TG_ISA_COUNT, 100};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(tg_isa_select((tg_isa)not_isas[i]), TG_ERR_ARG);
        ck_assert_msg(strstr(tg_last_error(), "tg_isa_select") &&
                          strstr(tg_last_error(), "not an instruction set"),
                      "message: %s", tg_last_error());
        ck_assert_int_eq(tg_isa_active(), before);
        ck_assert(!tg_isa_supported((tg_isa)not_isas[i]));
    }
    ck_assert(tg_isa_supported(TG_ISA_GENERIC));
    for (int i = 0; i < TG_ISA_COUNT; i++) {
        tg_isa isa = (tg_isa)i;
        if (tg_isa_supported(isa)) {
            ck_assert_int_eq(tg_isa_select(isa), TG_OK);
            ck_assert_int_eq(tg_isa_active(), isa);
            ck_assert_str_eq(tg_gemm_active()->isa, tg_isa_name(isa));
            continue;
        }
        ck_assert_int_eq(tg_isa_select(before), TG_OK);
        ck_assert_int_eq(tg_isa_select(isa), TG_ERR_ARG);
        ck_assert_msg(strstr(tg_last_error(), tg_isa_name(isa)) &&
                          strstr(tg_last_error(), "not supported"),
                      "message: %s", tg_last_error());
        ck_assert_int_eq(tg_isa_active(), before);
    }
    ck_assert_int_eq(tg_isa_select(before), TG_OK);
}
END_TEST

/* A fused layer's workspace holds weights packed for the ISA of its
 * forward: after a switch its backward fails with a message, and no
 * gradient changes. */
START_TEST(backward_after_an_isa_switch_is_refused)
{
    tg_isa before = tg_isa_active();
    int pairs = 0;
    for (int i = 0; i < TG_ISA_COUNT; i++)
        for (int j = 0; j < TG_ISA_COUNT; j++) {
            if (i == j || !tg_isa_supported((tg_isa)i) || !tg_isa_supported((tg_isa)j))
                continue;
            tg_rng rng;
            tg_rng_seed(&rng, 3);
            tg_recurrent *rnn = tg_recurrent_new(TG_CELL_GRU, 3, 4, TG_F64, NULL, &rng);
            tg_tensor *x = tu_param(&rng, TG_F64, "x", TG_DIMS(3, 2, 5));
            ck_assert_int_eq(tg_isa_select((tg_isa)i), TG_OK);
            tg_tape *tape = tg_tape_new();
            tg_tensor *loss = tu_weighted_sum(
                tape, tg_recurrent_forward(tape, rnn, x, NULL, TG_PATH_FUSED, NULL));
            ck_assert_ptr_nonnull(loss);
            ck_assert_int_eq(tg_isa_select((tg_isa)j), TG_OK);
            ck_assert_int_eq(tg_backward(tape, loss), TG_ERR_STATE);
            ck_assert_msg(strstr(tg_tape_error(tape), "instruction set changed"),
                          "%s -> %s: %s", tg_isa_name((tg_isa)i), tg_isa_name((tg_isa)j),
                          tg_tape_error(tape));
            tg_tensor *zero = tg_tensor_zeros(TG_F64, TG_DIMS(3, 2, 5));
            ck_assert(tu_bitwise_equal(x->grad, zero));
            for (int p = 0; p < rnn->params.count; p++) {
                const tg_tensor *g = rnn->params.items[p].tensor->grad;
                for (int64_t e = 0; e < tg_tensor_numel(g); e++)
                    ck_assert_double_eq(tg_tensor_get_flat(g, e), 0.0);
            }
            tg_tensor_free(zero);
            tg_tape_free(tape);
            tg_tensor_free(x);
            tg_recurrent_free(rnn);
            pairs++;
        }
    ck_assert_int_eq(tg_isa_select(before), TG_OK);
    int supported = 0;
    for (int i = 0; i < TG_ISA_COUNT; i++)
        supported += tg_isa_supported((tg_isa)i);
    ck_assert_int_eq(pairs, supported * (supported - 1));
}
END_TEST

Suite *suite_isa(void)
{
    Suite *s = suite_create("isa");
    TCase *gemm = tcase_create("isa_gemm");
    tcase_add_test(gemm, gemm_tails_of_every_kernel_class_match_the_reference_on_every_isa);
    tcase_add_test(gemm, gemm_strided_and_transposed_operands_match_the_reference_on_every_isa);
    tcase_add_test(gemm, packed_product_on_column_ranges_matches_the_reference_and_gemm);
    tcase_add_test(gemm, packing_in_column_parts_equals_packing_whole);
    tcase_add_test(gemm, transposes_of_every_isa_are_exact);
    suite_add_tcase(s, gemm);
    TCase *lstm = tcase_create("isa_lstm");
    tcase_add_loop_test(lstm, fused_lstm_agrees_across_isas_and_thread_counts, 0, 6);
    suite_add_tcase(s, lstm);
    TCase *choice = tcase_create("isa_choice");
    tcase_add_test(choice, tg_isa_in_the_environment_is_honoured);
    tcase_add_test(choice, tg_isa_select_refuses_what_cannot_run);
    tcase_add_test(choice, backward_after_an_isa_switch_is_refused);
    suite_add_tcase(s, choice);
    TCase *env = tcase_create("isa_env");
    tcase_add_test(env, active_isa_is_the_one_tg_isa_names_or_the_best);
    suite_add_tcase(s, env);
    return s;
}
