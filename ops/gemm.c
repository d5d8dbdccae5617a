/* General matrix multiply, C = beta*C + alpha*A@B, on strided operands.
 *
 * The blocking follows GotoBLAS/BLIS. For each task's block of C:
 *
 *   for jc in steps of NC:            B panel  kc x NC   (L3), packed in NR-column slivers
 *     for pc in steps of kc:          one pass over k
 *       for ic in steps of MC:        A block  MC x kc   (L2), MR-row slivers
 *         for jr in steps of NR:      B sliver kc x NR, reused by every A sliver
 *           for ir in steps of MR:    micro-kernel: an MR x NR tile of C in registers
 *
 * Packing copies an operand into the sliver layout the kernel reads
 * (absorbing any strides: transposes, time slices x[:, :, t], stride 0) and
 * zero-pads the edges. It is skipped where it does not pay: a row-major A
 * is read in place (the kernel's MR row streams are as fast as a packed
 * sliver, and the transposing copy is not free), as is an A used for only a
 * few B slivers (small N: the recurrent W @ [a; x] with the batch as N) and
 * a unit-stride B used by only a few A slivers (small M). When all of B
 * fits in SHARED_B_BYTES it is packed once, before the tasks start, and
 * shared by them.
 *
 * Determinism: K is cut into equal passes of at most KC that depend on K
 * alone, and a task owns whole tiles of C with all of K. Every element of C
 * is therefore the same chain of fused multiply-adds whatever the thread
 * count or the tile it lands in (partial tiles use masked loads and stores,
 * not a different code path), so results are bit-identical for any number
 * of threads. Threads split C, never K.
 *
 * Special shapes: up to SMALL_WORK multiply-adds and for matrix-vector
 * products, plain loops without packing or threads; C stored by columns is
 * computed as C^T = B^T A^T so that C's unit stride runs along the kernel's
 * vectors. */
#include "gemm.h"

#include <math.h>

#include "../core/iter.h"
#include "../core/threadpool.h"
#include "gemm_kernels.h"
#include "internal.h"

/* Cache blocks. kc = 512 (the k length of one pass) keeps passes over C
 * few; an MR x kc sliver of A and an NR x kc sliver of B (64 KB for f32)
 * stream from L2, which on current cores feeds the kernel faster than it
 * computes. An MC x kc block of A takes 384 KB of L2; the packed kc x NC
 * panel of B 4 MB (L3). Measured on AMD Zen 5: kc 256 -> 512 gave +5% at
 * n = 2048; MC and NC matter within the noise. */
enum {
    KC = 512,
    S_MC = 384 * 1024 / (KC * 4) / TG_GEMM_SMR * TG_GEMM_SMR,
    D_MC = 384 * 1024 / (KC * 8) / TG_GEMM_DMR * TG_GEMM_DMR,
    S_NC = 4096 * 1024 / (KC * 4) / TG_GEMM_SNR * TG_GEMM_SNR,
    D_NC = 4096 * 1024 / (KC * 8) / TG_GEMM_DNR * TG_GEMM_DNR,
};

/* Up to this many multiply-adds (6x6x6), plain loops beat the kernels'
 * set-up. */
#define SMALL_WORK 320.0
/* B packed once for all tasks up to this size; larger B is packed panel by
 * panel in each task (then the tasks are long enough for that not to
 * matter). Packing is itself split across threads above PARALLEL_PACK_BYTES. */
#define SHARED_B_BYTES (8.0 * 1024 * 1024)
#define PARALLEL_PACK_BYTES (512.0 * 1024)

typedef void (*scalar_loop_fn)(int64_t M, int64_t N, int64_t K, double alpha, const void *A,
                               int64_t rsa, int64_t csa, const void *B, int64_t rsb, int64_t csb,
                               double beta, void *C, int64_t rsc, int64_t csc);
typedef void (*scale_fn)(int64_t M, int64_t N, double beta, void *C, int64_t rsc, int64_t csc);
typedef void (*update_fn)(int mr, int nr, const void *tile, int64_t tile_rs, double alpha,
                          double beta, int mode, void *C, int64_t rsc, int64_t csc);

typedef struct {
    size_t size;
    int mr, nr;
    int64_t mc, kc, nc;
    double parallel_work; /* multiply-adds below which one thread is faster. Measured
                           * inside training steps, not in a loop over the same
                           * operands: there the inputs were just written by the
                           * caller's core and the second core starts cold, so a
                           * split pays only from ~300^3 (f32) / ~250^3 (f64) */
    const tg_gemm_kernel_fn (*kernels)[2];
    tg_gemm_pack_fn pack_a, pack_b;
    scalar_loop_fn loops;
    tg_gemv_fn gemv;
    scale_fn scale;
    update_fn update;
} gemm_type;

typedef struct {
    const gemm_type *type;
    int64_t M, N, K;
    double alpha, beta;
    const char *A, *B;
    char *C;
    int64_t rsa, csa, rsb, csb, rsc, csc;
    int pack_a, pack_b;
    const char *packed_b;      /* all of B packed once (slivers of K x NR), or NULL */
    int64_t kc;                /* k block length (last block may be shorter) */
    int64_t grid_n;            /* tasks per row of the task grid */
    int64_t task_rows, task_cols; /* block of C per task (multiples of MR, NR) */
} gemm_job;

static void gemm_run(const gemm_type *type, int64_t M, int64_t N, int64_t K, double alpha,
                     const void *A, int64_t rsa, int64_t csa, const void *B, int64_t rsb,
                     int64_t csb, double beta, void *C, int64_t rsc, int64_t csc);
static const gemm_type sgemm_type, dgemm_type;

void tg_sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa,
              int64_t csa, const float *B, int64_t rsb, int64_t csb, float beta, float *C,
              int64_t rsc, int64_t csc)
{
    gemm_run(&sgemm_type, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

void tg_dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t rsa,
              int64_t csa, const double *B, int64_t rsb, int64_t csb, double beta, double *C,
              int64_t rsc, int64_t csc)
{
    gemm_run(&dgemm_type, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

tg_status tg_gemm(double alpha, const tg_tensor *A, const tg_tensor *B, double beta, tg_tensor *C)
{
    if (!A || !B || !C)
        return tg_fail(TG_ERR_ARG, "tg_gemm: tensor is NULL");
    if (A->ndim != 2 || B->ndim != 2 || C->ndim != 2 || A->shape[1] != B->shape[0] ||
        C->shape[0] != A->shape[0] || C->shape[1] != B->shape[1]) {
        char a[64], b[64], c[64];
        return tg_fail(TG_ERR_SHAPE, "tg_gemm: shapes do not fit: %s @ %s -> %s",
                       tg_shape_str(A, a, sizeof a), tg_shape_str(B, b, sizeof b),
                       tg_shape_str(C, c, sizeof c));
    }
    if (A->dtype != B->dtype || A->dtype != C->dtype)
        return tg_fail(TG_ERR_DTYPE, "tg_gemm: dtypes differ: %s @ %s -> %s",
                       tg_dtype_name(A->dtype), tg_dtype_name(B->dtype), tg_dtype_name(C->dtype));
    if (tg_tensor_self_overlaps(C)) {
        char c[64];
        return tg_fail(TG_ERR_ARG, "tg_gemm: output %s has elements that share memory (stride 0)",
                       tg_shape_str(C, c, sizeof c));
    }
    int64_t M = C->shape[0], N = C->shape[1], K = A->shape[1];
    if (A->dtype == TG_F32)
        tg_sgemm(M, N, K, (float)alpha, tg_tensor_base(A), A->strides[0], A->strides[1],
                 tg_tensor_base(B), B->strides[0], B->strides[1], (float)beta, tg_tensor_base(C),
                 C->strides[0], C->strides[1]);
    else
        tg_dgemm(M, N, K, alpha, tg_tensor_base(A), A->strides[0], A->strides[1],
                 tg_tensor_base(B), B->strides[0], B->strides[1], beta, tg_tensor_base(C),
                 C->strides[0], C->strides[1]);
    return TG_OK;
}

/* ---- the driver ----------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static void prepack_b(gemm_job *job, int worker, int threads);
static void plan_tasks(gemm_job *job, int threads);
static void run_task(void *ctx, int64_t task, int worker);

static void gemm_run(const gemm_type *type, int64_t M, int64_t N, int64_t K, double alpha,
                     const void *A, int64_t rsa, int64_t csa, const void *B, int64_t rsb,
                     int64_t csb, double beta, void *C, int64_t rsc, int64_t csc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0) { /* A and B are not read (as in BLAS) */
        type->scale(M, N, beta, C, rsc, csc);
        return;
    }
    double work = (double)M * (double)N * (double)K;
    if (N == 1 && csa == 1 && rsb == 1) {
        type->gemv(M, K, alpha, A, rsa, B, beta, C, rsc);
        return;
    }
    if (work <= SMALL_WORK || N == 1) {
        type->loops(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
        return;
    }
    /* The kernel's vectors run along N; make that C's unit stride if only
     * the other one is: C^T = B^T A^T. */
    int rows_unit = rsc == 1 || M == 1, cols_unit = csc == 1 || N == 1;
    if ((rows_unit && !cols_unit) || (!rows_unit && !cols_unit && N < M)) {
        const void *swap = A;
        A = B;
        B = swap;
        int64_t t = M, r = rsa, c = csa;
        M = N, N = t;
        rsa = csb, csa = rsb;
        rsb = c, csb = r;
        t = rsc, rsc = csc, csc = t;
    }
    if (N == 1)
        csc = 1; /* any stride will do for a single column */

    gemm_job job = {
        .type = type, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
        .A = A, .B = B, .C = C, .rsa = rsa, .csa = csa, .rsb = rsb, .csb = csb,
        .rsc = rsc, .csc = csc,
    };
    /* Read A in place when it is row-major (the kernel's MR row streams
     * run as fast as a packed sliver, and a transposing copy costs more
     * than it saves), or when it is used for at most a few B slivers. */
    job.pack_a = csa == 1 ? 0 : rsa == 1 ? N > 8 * type->nr : N > 2 * type->nr;
    /* B is read in place when its rows are contiguous and short (such as
     * the batch-wide dZ, 32 or 64 columns: a sliver is then contiguous
     * memory already) or when few A slivers use it. */
    job.pack_b = csb != 1 || (M > 2 * type->mr && rsb > 2 * type->nr);
    job.kc = ceil_div(K, ceil_div(K, type->kc));

    int threads = work < type->parallel_work ? 1 : tg_get_num_threads();
    int worker = tg_threadpool_enter(); /* the shared buffer is ours until leave */
    if (job.pack_b)
        prepack_b(&job, worker, threads);
    plan_tasks(&job, threads);
    tg_parallel_for(ceil_div(M, job.task_rows) * job.grid_n, run_task, &job);
    tg_threadpool_leave();
}

/* ---- packing B once for all tasks ---- */

typedef struct {
    gemm_job *job;
    char *dst;
    int64_t slivers_per_task;
} prepack_ctx;

static void prepack_task(void *ctx, int64_t task, int worker)
{
    (void)worker;
    const prepack_ctx *p = ctx;
    const gemm_job *job = p->job;
    const int64_t s = (int64_t)job->type->size, NR = job->type->nr;
    int64_t j0 = task * p->slivers_per_task * NR, j1 = min64(job->N, j0 + p->slivers_per_task * NR);
    if (j0 < j1)
        job->type->pack_b(job->K, j1 - j0, job->B + j0 * job->csb * s, job->rsb, job->csb,
                          p->dst + j0 * job->K * s);
}

/* When all of B, packed, fits in SHARED_B_BYTES, pack it once (slivers of
 * K x NR, in parallel when large) so that tasks only pack A; otherwise each
 * task packs the panels it needs. */
static void prepack_b(gemm_job *job, int worker, int threads)
{
    const gemm_type *type = job->type;
    const int64_t slivers = ceil_div(job->N, type->nr);
    const double bytes = (double)job->K * (double)(slivers * type->nr) * (double)type->size;
    if (bytes > SHARED_B_BYTES)
        return;
    char *dst = tg_worker_scratch(worker, TG_SCRATCH_GEMM_SHARED, (size_t)bytes);
    if (!dst)
        return;
    int64_t tasks = bytes < PARALLEL_PACK_BYTES ? 1 : min64(threads, slivers);
    prepack_ctx p = {job, dst, ceil_div(slivers, tasks)};
    tg_parallel_for(ceil_div(slivers, p.slivers_per_task), prepack_task, &p);
    job->packed_b = dst;
}

/* ---- splitting C into tasks ---- */

/* Tasks are blocks of whole tiles handed out one at a time, so a thread
 * that starts late (waking takes a while) or is slowed by other load just
 * takes fewer: eight per thread (better than four on the recurrent shapes,
 * as the last task anyone waits for is shorter), or one per thread when
 * each task must pack both A and B. The grid is the one that reads least:
 * a task reads its rows of A and its columns of B, so a gm x gn grid
 * reads K*(gn*M + gm*N) elements, and a copy made per task counts twice.
 * (Cutting only along M made small-K products such as 1024x2048x64 stream
 * all of B once per task, and lose their second thread.) */
static void plan_tasks(gemm_job *job, int threads)
{
    const gemm_type *type = job->type;
    const int64_t slivers_m = ceil_div(job->M, type->mr), slivers_n = ceil_div(job->N, type->nr);
    const int b_per_task = job->pack_b && !job->packed_b;
    const int64_t tasks = threads <= 1 ? 1 : b_per_task && job->pack_a ? threads : 8 * threads;
    const double a_cost = job->pack_a ? 2.0 : 1.0, b_cost = b_per_task ? 2.0 : 1.0;
    int64_t grid_m = 1, grid_n = 1;
    double best = -1;
    for (int64_t gn = 1; gn <= min64(tasks, slivers_n); gn++) {
        int64_t gm = min64(ceil_div(tasks, gn), slivers_m);
        double cost = (double)gn * (double)job->M * a_cost + (double)gm * (double)job->N * b_cost;
        if (best < 0 || cost < best) {
            best = cost;
            grid_m = gm;
            grid_n = gn;
        }
    }
    job->task_rows = ceil_div(slivers_m, grid_m) * type->mr;
    job->task_cols = ceil_div(slivers_n, grid_n) * type->nr;
    job->grid_n = ceil_div(job->N, job->task_cols);
}

static void compute_block(const gemm_job *job, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                          char *abuf, char *bbuf);

static void run_task(void *ctx, int64_t task, int worker)
{
    const gemm_job *job = ctx;
    const gemm_type *type = job->type;
    int64_t i0 = task / job->grid_n * job->task_rows, j0 = task % job->grid_n * job->task_cols;
    int64_t i1 = min64(job->M, i0 + job->task_rows), j1 = min64(job->N, j0 + job->task_cols);
    if (i0 >= i1 || j0 >= j1)
        return;
    /* A needs a full block when packed, else one sliver for the ragged last
     * rows; B a panel when this task packs it. */
    size_t a_elems = (size_t)(job->pack_a ? type->mc : type->mr) * (size_t)job->kc;
    size_t b_elems = job->pack_b && !job->packed_b
                         ? (size_t)job->kc * (size_t)min64(type->nc, ceil_div(j1 - j0, type->nr) * type->nr)
                         : 0;
    size_t a_bytes = (a_elems * type->size + 63) & ~(size_t)63;
    char *scratch = tg_worker_scratch(worker, TG_SCRATCH_GEMM, a_bytes + b_elems * type->size);
    if (!scratch) { /* out of memory: plain loops still give the right answer */
        int64_t s = (int64_t)type->size;
        type->loops(i1 - i0, j1 - j0, job->K, job->alpha, job->A + i0 * job->rsa * s, job->rsa,
                    job->csa, job->B + j0 * job->csb * s, job->rsb, job->csb, job->beta,
                    job->C + (i0 * job->rsc + j0 * job->csc) * s, job->rsc, job->csc);
        return;
    }
    compute_block(job, i0, i1, j0, j1, scratch, scratch + a_bytes);
}

/* C[i0:i1, j0:j1] with all of K: the loop nest of the header comment. */
static void compute_block(const gemm_job *job, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                          char *abuf, char *bbuf)
{
    const gemm_type *type = job->type;
    const int64_t s = (int64_t)type->size, MR = type->mr, NR = type->nr;
    const int c_unit = job->csc == 1;
    _Alignas(64) char tile_buf[TG_GEMM_SMR * TG_GEMM_SNR * sizeof(float) +
                               TG_GEMM_DMR * TG_GEMM_DNR * sizeof(double)];
    tg_gemm_tile t = {.alpha = job->alpha, .beta = job->beta};

    for (int64_t jc = j0; jc < j1; jc += type->nc) {
        const int64_t nc = min64(type->nc, j1 - jc);
        for (int64_t pc = 0; pc < job->K; pc += job->kc) {
            const int64_t kc = min64(job->kc, job->K - pc);
            t.kc = kc;
            t.first = pc == 0;
            /* B panel [pc:pc+kc, jc:jc+nc]: slivers `b_step` elements apart */
            const char *bpanel = bbuf;
            int64_t b_step = kc * NR;
            if (job->packed_b) {
                bpanel = job->packed_b + (jc * job->K + pc * NR) * s;
                b_step = job->K * NR;
            } else if (job->pack_b) {
                type->pack_b(kc, nc, job->B + (pc * job->rsb + jc * job->csb) * s, job->rsb,
                             job->csb, bbuf);
            }
            for (int64_t ic = i0; ic < i1; ic += type->mc) {
                const int64_t mc = min64(type->mc, i1 - ic);
                const int64_t ragged = mc % MR; /* rows in a last, partial sliver */
                if (job->pack_a)
                    type->pack_a(mc, kc, job->A + (ic * job->rsa + pc * job->csa) * s, job->rsa,
                                 job->csa, abuf);
                else if (ragged)
                    type->pack_a(ragged, kc,
                                 job->A + ((ic + mc - ragged) * job->rsa + pc * job->csa) * s,
                                 job->rsa, job->csa, abuf);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    t.nr = (int)min64(NR, nc - jr);
                    if (job->pack_b) {
                        t.b = bpanel + jr / NR * b_step * s;
                    } else {
                        t.b = job->B + (pc * job->rsb + (jc + jr)) * s;
                        t.bks = job->rsb;
                    }
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        t.mr = (int)min64(MR, mc - ir);
                        int a_in_place = !job->pack_a && t.mr == MR;
                        if (job->pack_a) {
                            t.a = abuf + ir * kc * s;
                        } else if (a_in_place) {
                            t.a = job->A + ((ic + ir) * job->rsa + pc * job->csa) * s;
                            t.ars = job->rsa;
                            t.aks = job->csa;
                        } else {
                            t.a = abuf;
                        }
                        tg_gemm_kernel_fn kernel = type->kernels[a_in_place][!job->pack_b];
                        char *c = job->C + ((ic + ir) * job->rsc + (jc + jr) * job->csc) * s;
                        if (c_unit) {
                            t.c = c;
                            t.rsc = job->rsc;
                            kernel(&t);
                        } else { /* strided C: the kernel fills a tile, then scalar stores */
                            tg_gemm_tile u = t;
                            u.c = tile_buf;
                            u.rsc = NR;
                            u.first = 1;
                            u.alpha = 1;
                            u.beta = 0;
                            kernel(&u);
                            type->update(t.mr, t.nr, tile_buf, NR, job->alpha, job->beta,
                                         !t.first ? 2 : job->beta == 0 ? 0 : 1, c, job->rsc,
                                         job->csc);
                        }
                    }
                }
            }
        }
    }
}

/* ---- per-dtype helpers --------------------------------------------------------------
 * The scalar store of a tile must round exactly like the kernels' vector
 * store (one fused rounding when the kernels use FMA). */

#if TG_GEMM_FUSED
#define FUSED_F32(a, b, c) fmaf(a, b, c)
#define FUSED_F64(a, b, c) fma(a, b, c)
#else
#define FUSED_F32(a, b, c) ((a) * (b) + (c))
#define FUSED_F64(a, b, c) ((a) * (b) + (c))
#endif

#define TG_GEMM_HELPERS(P, T, FUSED)                                                          \
    /* Small products: each C element is a dot product kept in registers;  \
     * four rows at a time give four independent chains (no waiting on one  \
     * adder), the last rows split k into four partial sums instead. */      \
    static inline void P##_put(T *c, T dot, T alpha, T beta)                                  \
    {                                                                                        \
        *c = beta == 0 ? alpha * dot : alpha * dot + beta * *c;                              \
    }                                                                                        \
    static void P##_loops(int64_t M, int64_t N, int64_t K, double alpha_, const void *A_,    \
                          int64_t rsa, int64_t csa, const void *B_, int64_t rsb, int64_t csb, \
                          double beta_, void *C_, int64_t rsc, int64_t csc)                  \
    {                                                                                        \
        const T *A = A_, *B = B_, alpha = (T)alpha_, beta = (T)beta_;                        \
        T *C = C_;                                                                           \
        int64_t i = 0;                                                                       \
        for (; i + 4 <= M; i += 4) {                                                         \
            const T *a0 = A + i * rsa, *a1 = a0 + rsa, *a2 = a1 + rsa, *a3 = a2 + rsa;       \
            for (int64_t j = 0; j < N; j++) {                                                \
                const T *b = B + j * csb;                                                    \
                T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                            \
                for (int64_t k = 0; k < K; k++) {                                            \
                    const T bk = b[k * rsb];                                                 \
                    s0 += a0[k * csa] * bk;                                                  \
                    s1 += a1[k * csa] * bk;                                                  \
                    s2 += a2[k * csa] * bk;                                                  \
                    s3 += a3[k * csa] * bk;                                                  \
                }                                                                            \
                T *c = C + i * rsc + j * csc;                                                \
                P##_put(c, s0, alpha, beta);                                                 \
                P##_put(c + rsc, s1, alpha, beta);                                           \
                P##_put(c + 2 * rsc, s2, alpha, beta);                                       \
                P##_put(c + 3 * rsc, s3, alpha, beta);                                       \
            }                                                                                \
        }                                                                                    \
        for (; i < M; i++) {                                                                 \
            const T *a = A + i * rsa;                                                        \
            for (int64_t j = 0; j < N; j++) {                                                \
                const T *b = B + j * csb;                                                    \
                T s[4] = {0, 0, 0, 0};                                                       \
                for (int64_t k = 0; k < K; k++)                                              \
                    s[k % 4] += a[k * csa] * b[k * rsb];                                     \
                P##_put(C + i * rsc + j * csc, (s[0] + s[1]) + (s[2] + s[3]), alpha, beta);  \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    static void P##_scale(int64_t M, int64_t N, double beta_, void *C_, int64_t rsc,        \
                          int64_t csc)                                                       \
    {                                                                                        \
        const T beta = (T)beta_;                                                             \
        T *C = C_;                                                                           \
        for (int64_t i = 0; i < M; i++)                                                      \
            for (int64_t j = 0; j < N; j++) {                                                \
                T *p = C + i * rsc + j * csc;                                                \
                *p = beta == 0 ? 0 : beta * *p;                                              \
            }                                                                                \
    }                                                                                        \
    /* mode 0: C = alpha*t; 1: C = alpha*t + beta*C; 2: C = alpha*t + C. */                  \
    static void P##_update(int mr, int nr, const void *tile_, int64_t tile_rs, double alpha_, \
                           double beta_, int mode, void *C_, int64_t rsc, int64_t csc)       \
    {                                                                                        \
        const T *tile = tile_, alpha = (T)alpha_, beta = (T)beta_;                           \
        T *C = C_;                                                                           \
        for (int i = 0; i < mr; i++)                                                         \
            for (int j = 0; j < nr; j++) {                                                   \
                T *p = C + i * rsc + j * csc, v = tile[i * tile_rs + j];                     \
                *p = mode == 0 ? alpha * v : FUSED(alpha, v, mode == 1 ? beta * *p : *p);    \
            }                                                                                \
    }

TG_GEMM_HELPERS(sgemm, float, FUSED_F32)
TG_GEMM_HELPERS(dgemm, double, FUSED_F64)

static const gemm_type sgemm_type = {
    .size = sizeof(float), .mr = TG_GEMM_SMR, .nr = TG_GEMM_SNR,
    .mc = S_MC, .kc = KC, .nc = S_NC, .parallel_work = 3e7,
    .kernels = tg_sgemm_kernels, .pack_a = tg_sgemm_pack_a, .pack_b = tg_sgemm_pack_b,
    .loops = sgemm_loops, .gemv = tg_sgemv, .scale = sgemm_scale, .update = sgemm_update,
};
static const gemm_type dgemm_type = {
    .size = sizeof(double), .mr = TG_GEMM_DMR, .nr = TG_GEMM_DNR,
    .mc = D_MC, .kc = KC, .nc = D_NC, .parallel_work = 1.5e7,
    .kernels = tg_dgemm_kernels, .pack_a = tg_dgemm_pack_a, .pack_b = tg_dgemm_pack_b,
    .loops = dgemm_loops, .gemv = tg_dgemv, .scale = dgemm_scale, .update = dgemm_update,
};
