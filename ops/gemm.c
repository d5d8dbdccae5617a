/* General matrix multiply, C = beta*C + alpha*A@B, on strided operands.
 *
 * The blocking follows GotoBLAS/BLIS. For each task's block of C:
 *
 *   for jc in steps of nc:          B panel  kc x nc  (half of L2)
 *     for pc in steps of kc:        one pass over k
 *       for ic in steps of mc:      A block  mc x kc  (a quarter of L2, when packed)
 *         for ir in steps of MR:    A sliver MR x kc  (half of L1), stays in L1 ...
 *           for jr in steps of NR:  ... while the B slivers of the panel stream from L2
 *             micro-kernel: an MR x NR tile of C in registers
 *
 * The block sizes come from this machine's cache sizes (core/cpu.h), the
 * tile sizes from the instruction set in use (gemm_kernels.h): nothing is
 * tuned to one processor. Keeping the broadcast operand (A) in L1 and
 * streaming the vector operand (B) from L2 measured 6-8 % faster than the
 * other way round on large products, and lets the kc pass be as long as L1
 * allows.
 *
 * Packing copies an operand into the sliver layout the kernel reads
 * (absorbing any strides: transposes, time slices x[:, :, t], stride 0) and
 * zero-pads the edges. It is skipped where it does not pay: a row-major A
 * is read in place (its MR row streams run as fast as a packed sliver), as
 * is an A used for only a few B slivers, and a unit-stride B used by only a
 * few A slivers. When all of B fits in SHARED_B_BYTES it is packed once,
 * before the tasks start, and shared by them. The last rows of a block
 * that do not fill a sliver go to the smallest kernel class that holds
 * them (12 + 12 + 8 rows for 32, not 3 x 12).
 *
 * Determinism: K is cut into equal passes that depend on K (and the cache
 * size) alone, and a task owns whole tiles of C with all of K. Every element
 * of C is therefore the same chain of multiply-adds whatever the thread
 * count, the tile it lands in or the kernel class that computes it (partial
 * tiles use masked loads and stores, not a different order), so results
 * are bit-identical for any number of threads. Threads split C, never K.
 *
 * Special shapes: tiny products and matrix-vector products take plain
 * loops without packing or threads; C stored by columns is computed as
 * C^T = B^T A^T so that C's unit stride runs along the kernel's vectors.
 *
 * tg_gemm_reference, at the end, is the textbook triple loop: the
 * definition every path here is tested against. */
#include "gemm.h"

#include <math.h>
#include <stdatomic.h>

#include "../core/cpu.h"
#include "../core/platform.h"
#include "../core/threadpool.h"
#include "gemm_kernels.h"
#include "gemm_packed.h"
#include "internal.h"

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

/* A dtype's kernels and the blocking for them. */
typedef struct {
    size_t size;
    const tg_gemm_kernels *k;
    int mr, nr;
    int64_t kc_max, nc_bytes, mc_bytes; /* see blocking() */
    scalar_loop_fn loops;
    scale_fn scale;
} gemm_type;

typedef struct {
    const gemm_type *type;
    int64_t M, N, K;
    double alpha, beta;
    const char *A, *B;
    char *C;
    int64_t rsa, csa, rsb, csb, rsc, csc;
    int pack_a, pack_b;
    const char *packed_b;         /* all of B packed once (slivers of K x NR), or NULL */
    int64_t kc, nc, mc;           /* block sizes for this K */
    int64_t grid_n;               /* tasks per row of the task grid */
    int64_t task_rows, task_cols; /* block of C per task (multiples of MR, NR) */
} gemm_job;

static void gemm_run(tg_dtype dtype, int64_t M, int64_t N, int64_t K, double alpha,
                     const void *A, int64_t rsa, int64_t csa, const void *B, int64_t rsb,
                     int64_t csb, double beta, void *C, int64_t rsc, int64_t csc);
static void type_of(tg_dtype dtype, gemm_type *type);

void tg_sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa,
              int64_t csa, const float *B, int64_t rsb, int64_t csb, float beta, float *C,
              int64_t rsc, int64_t csc)
{
    gemm_run(TG_F32, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}

void tg_dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t rsa,
              int64_t csa, const double *B, int64_t rsb, int64_t csb, double beta, double *C,
              int64_t rsc, int64_t csc)
{
    gemm_run(TG_F64, M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
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
    gemm_run(A->dtype, C->shape[0], C->shape[1], A->shape[1], alpha, tg_tensor_base(A),
             A->strides[0], A->strides[1], tg_tensor_base(B), B->strides[0], B->strides[1], beta,
             tg_tensor_base(C), C->strides[0], C->strides[1]);
    return TG_OK;
}

/* ---- the driver ----------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static void prepack_b(gemm_job *job, int worker, int threads);
static void plan_tasks(gemm_job *job, int threads);
static void run_task(void *ctx, int64_t task, int worker);
static int threads_for(const gemm_type *type, double work);

static void gemm_run(tg_dtype dtype, int64_t M, int64_t N, int64_t K, double alpha,
                     const void *A, int64_t rsa, int64_t csa, const void *B, int64_t rsb,
                     int64_t csb, double beta, void *C, int64_t rsc, int64_t csc)
{
    gemm_type type;
    type_of(dtype, &type);
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0) { /* A and B are not read (as in BLAS) */
        type.scale(M, N, beta, C, rsc, csc);
        return;
    }
    double work = (double)M * (double)N * (double)K;
    if (N == 1 && csa == 1 && rsb == 1) {
        type.k->gemv(M, K, alpha, A, rsa, B, beta, C, rsc);
        return;
    }
    if (work <= SMALL_WORK || N == 1) {
        type.loops(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
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
        .type = &type, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
        .A = A, .B = B, .C = C, .rsa = rsa, .csa = csa, .rsb = rsb, .csb = csb,
        .rsc = rsc, .csc = csc,
    };
    /* Read A in place when it is row-major (the kernel's MR row streams
     * run as fast as a packed sliver, and a transposing copy costs more
     * than it saves), or when it is used for at most a few B slivers. */
    job.pack_a = csa == 1 ? 0 : rsa == 1 ? N > 8 * type.nr : N > 2 * type.nr;
    /* B is read in place when its rows are contiguous and short (such as
     * the batch-wide dZ, 32 or 64 columns: a sliver is then contiguous
     * memory already) or when few A slivers use it. */
    job.pack_b = csb != 1 || (M > 2 * type.mr && rsb > 2 * type.nr);
    job.kc = ceil_div(K, ceil_div(K, type.kc_max));
    job.nc = max64(type.nr, type.nc_bytes / (job.kc * (int64_t)type.size) / type.nr * type.nr);
    job.mc = max64(type.mr, type.mc_bytes / (job.kc * (int64_t)type.size) / type.mr * type.mr);

    int threads = threads_for(&type, work);
    int worker = tg_threadpool_enter(); /* the shared buffer is ours until leave */
    if (job.pack_b)
        prepack_b(&job, worker, threads);
    plan_tasks(&job, threads);
    tg_parallel_for(ceil_div(M, job.task_rows) * job.grid_n, run_task, &job);
    tg_threadpool_leave();
}

/* Threads for `work` multiply-adds: more than one only when the time the
 * others save exceeds, several times over, what the pool measures it costs
 * to start them on this machine (tg_threadpool_start_cost_ns). The time
 * alone is estimated at the kernels' peak (two vector FMAs, NR
 * multiply-adds, per cycle at 3 GHz): an optimistic rate, so that a split
 * never happens on the strength of an overestimated benefit. */
static int threads_for(const gemm_type *type, double work)
{
    int threads = tg_get_num_threads();
    if (threads <= 1)
        return 1;
    double alone_ns = work / (3.0 * type->nr);
    double saved_ns = alone_ns * (1.0 - 1.0 / threads);
    return saved_ns > 4.0 * (double)tg_threadpool_start_cost_ns() ? threads : 1;
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
        job->type->k->pack_b(job->K, j1 - j0, job->B + j0 * job->csb * s, job->rsb, job->csb,
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
    size_t a_elems = (size_t)(job->pack_a ? job->mc : type->mr) * (size_t)job->kc;
    size_t b_elems = job->pack_b && !job->packed_b
                         ? (size_t)job->kc * (size_t)min64(job->nc, ceil_div(j1 - j0, type->nr) * type->nr)
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

/* The kernel class for the last `rows` rows of a block (fewer than the
 * full tile): the smallest class that holds them. */
static int tail_class(const tg_gemm_kernels *k, int64_t rows)
{
    int c = 0;
    while (c + 1 < TG_GEMM_CLASSES && k->mr[c + 1] >= rows)
        c++;
    return c;
}

/* One pass (pc, kc) of one B panel (jc, nc) against an A block (ic, mc):
 * where its operands are, for run_slivers. */
typedef struct {
    int64_t jc, nc, pc, kc, ic, mc;
    const char *bpanel; /* packed B panel: slivers b_step elements apart */
    int64_t b_step;
    const char *a_src;  /* A[ic, pc] in place */
    int64_t full;       /* rows in whole MR slivers; the rest is the tail */
    int tail;           /* the tail's kernel class */
    int tail_in_place;  /* the tail fills its class: read in place too */
} block_pass;

/* Pack what the pass reads of A: with pack_a the whole block (full
 * slivers of MR rows, then the tail with its own class's rows), else only
 * a ragged tail that does not fill its class. */
static void pack_a_block(const gemm_job *job, block_pass *bp, char *abuf)
{
    const tg_gemm_kernels *k = job->type->k;
    const int64_t s = (int64_t)job->type->size, MR = job->type->mr;
    const int64_t ragged = bp->mc - bp->full;
    bp->tail = ragged ? tail_class(k, ragged) : 0;
    bp->tail_in_place = !job->pack_a && ragged == k->mr[bp->tail];
    bp->a_src = job->A + (bp->ic * job->rsa + bp->pc * job->csa) * s;
    const char *tail_src = bp->a_src + bp->full * job->rsa * s;
    if (job->pack_a) {
        k->pack_a(bp->full, bp->kc, bp->a_src, job->rsa, job->csa, abuf, (int)MR);
        if (ragged)
            k->pack_a(ragged, bp->kc, tail_src, job->rsa, job->csa, abuf + bp->full * bp->kc * s,
                      k->mr[bp->tail]);
    } else if (ragged && !bp->tail_in_place) {
        k->pack_a(ragged, bp->kc, tail_src, job->rsa, job->csa, abuf, k->mr[bp->tail]);
    }
}

/* The tiles of one pass: each A sliver (in L1) against every B sliver of
 * the panel (streaming from L2). A C with non-unit column stride gets its
 * tiles through a buffer and the ISA's rounding-exact scalar store. */
static void run_slivers(const gemm_job *job, const block_pass *bp, const char *abuf)
{
    const tg_gemm_kernels *k = job->type->k;
    const int64_t s = (int64_t)job->type->size, MR = job->type->mr, NR = job->type->nr;
    _Alignas(64) char tile_buf[TG_GEMM_MAX_TILE * sizeof(double)];
    tg_gemm_tile t = {.alpha = job->alpha, .beta = job->beta, .kc = bp->kc, .first = bp->pc == 0};
    for (int64_t ir = 0; ir < bp->mc; ir += MR) {
        const int is_tail = ir >= bp->full;
        const int a_in_place = !job->pack_a && (!is_tail || bp->tail_in_place);
        t.mr = (int)min64(MR, bp->mc - ir);
        t.a = a_in_place ? bp->a_src + ir * job->rsa * s
              : job->pack_a ? abuf + ir * bp->kc * s : abuf;
        t.ars = job->rsa;
        t.aks = job->csa;
        tg_gemm_kernel_fn kernel = k->kernel[is_tail ? bp->tail : 0][a_in_place][!job->pack_b];
        for (int64_t jr = 0; jr < bp->nc; jr += NR) {
            t.nr = (int)min64(NR, bp->nc - jr);
            t.b = job->pack_b ? bp->bpanel + jr / NR * bp->b_step * s
                              : job->B + (bp->pc * job->rsb + (bp->jc + jr)) * s;
            t.bks = job->rsb;
            char *c = job->C + ((bp->ic + ir) * job->rsc + (bp->jc + jr) * job->csc) * s;
            if (job->csc == 1) {
                t.c = c;
                t.rsc = job->rsc;
                kernel(&t);
                continue;
            }
            tg_gemm_tile u = t;
            u.c = tile_buf;
            u.rsc = NR;
            u.first = 1;
            u.alpha = 1;
            u.beta = 0;
            kernel(&u);
            k->update(t.mr, t.nr, tile_buf, NR, job->alpha, job->beta,
                      !t.first ? 2 : job->beta == 0 ? 0 : 1, c, job->rsc, job->csc);
        }
    }
}

/* C[i0:i1, j0:j1] with all of K: the loop nest of the header comment. */
static void compute_block(const gemm_job *job, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                          char *abuf, char *bbuf)
{
    const gemm_type *type = job->type;
    const int64_t s = (int64_t)type->size, MR = type->mr, NR = type->nr;
    for (int64_t jc = j0; jc < j1; jc += job->nc) {
        block_pass bp = {.jc = jc, .nc = min64(job->nc, j1 - jc)};
        for (bp.pc = 0; bp.pc < job->K; bp.pc += job->kc) {
            bp.kc = min64(job->kc, job->K - bp.pc);
            bp.bpanel = bbuf;
            bp.b_step = bp.kc * NR;
            if (job->packed_b) {
                bp.bpanel = job->packed_b + (jc * job->K + bp.pc * NR) * s;
                bp.b_step = job->K * NR;
            } else if (job->pack_b) {
                type->k->pack_b(bp.kc, bp.nc, job->B + (bp.pc * job->rsb + jc * job->csb) * s,
                                job->rsb, job->csb, bbuf);
            }
            for (bp.ic = i0; bp.ic < i1; bp.ic += job->mc) {
                bp.mc = min64(job->mc, i1 - bp.ic);
                bp.full = bp.mc - bp.mc % MR;
                pack_a_block(job, &bp, abuf);
                run_slivers(job, &bp, abuf);
            }
        }
    }
}

/* ---- B packed once, for products repeated with the same right operand ------------ */

size_t tg_packed_b_bytes(tg_dtype dtype, int64_t K, int64_t N)
{
    gemm_type type;
    type_of(dtype, &type);
    size_t cols = (size_t)ceil_div(N, type.nr) * (size_t)type.nr, elems, bytes;
    if (K < 0 || N < 0 || tg_mul_overflows((size_t)K, cols, &elems) ||
        tg_mul_overflows(elems, type.size, &bytes) || bytes > SIZE_MAX / 2)
        return SIZE_MAX;
    return bytes;
}

int64_t tg_packed_b_align(tg_dtype dtype)
{
    gemm_type type;
    type_of(dtype, &type);
    return type.nr;
}

void tg_packed_b_init(tg_packed_b *p, tg_dtype dtype, int64_t K, int64_t N, void *mem)
{
    gemm_type type;
    type_of(dtype, &type);
    *p = (tg_packed_b){.dtype = dtype, .K = K, .N = N, .nr = type.nr, .kernels = type.k,
                       .data = mem};
}

void tg_pack_b_columns(const tg_packed_b *p, int64_t j0, int64_t j1, const void *B,
                       int64_t rsb, int64_t csb)
{
    int64_t s = (int64_t)tg_dtype_size(p->dtype);
    if (j1 > p->N)
        j1 = p->N;
    if (j0 < j1)
        p->kernels->pack_b(p->K, j1 - j0, (const char *)B + j0 * csb * s, rsb, csb,
                           (char *)p->data + j0 * p->K * s);
}

void tg_pack_b(tg_packed_b *p, tg_dtype dtype, int64_t K, int64_t N, const void *B,
               int64_t rsb, int64_t csb, void *mem)
{
    tg_packed_b_init(p, dtype, K, N, mem);
    tg_pack_b_columns(p, 0, N, B, rsb, csb);
}

void tg_packed_gemm(const tg_packed_b *p, int64_t M, int64_t j0, int64_t j1, double alpha,
                    const void *A, int64_t rsa, double beta, void *C, int64_t rsc)
{
    gemm_type type;
    type_of(p->dtype, &type);
    if (M <= 0 || j1 <= j0)
        return;
    gemm_job job = {
        .type = &type, .M = M, .N = p->N, .K = p->K, .alpha = alpha, .beta = beta,
        .A = A, .B = NULL, .C = C, .rsa = rsa, .csa = 1, .rsc = rsc, .csc = 1,
        .pack_a = 0, .pack_b = 1, .packed_b = p->data,
    };
    job.kc = ceil_div(p->K, ceil_div(p->K, type.kc_max));
    job.nc = max64(type.nr, type.nc_bytes / (job.kc * (int64_t)type.size) / type.nr * type.nr);
    job.mc = M;
    /* The ragged last rows are packed on the stack: at most MR x kc. */
    _Alignas(64) char abuf[12 * 512 * sizeof(double)];
    compute_block(&job, 0, M, j0, j1, abuf, NULL);
}

/* ---- per-dtype helpers and the blocking ---------------------------------------------- */

/* Block sizes from the cache sizes: an A sliver (MR x kc) fills at most
 * half of L1, so that it stays there while the B slivers stream past; kc
 * is also capped at 512, past which longer passes gain nothing measurable
 * while the panels grow. A B panel (kc x nc) takes half of L2 and a packed
 * A block (mc x kc) a quarter. */
static void blocking(gemm_type *type)
{
    static _Atomic size_t l1, l2;
    size_t L1 = atomic_load_explicit(&l1, memory_order_relaxed);
    size_t L2 = atomic_load_explicit(&l2, memory_order_relaxed);
    if (!L1 || !L2) {
        L1 = tg_cache_l1d();
        L2 = tg_cache_l2();
        atomic_store_explicit(&l1, L1, memory_order_relaxed);
        atomic_store_explicit(&l2, L2, memory_order_relaxed);
    }
    int64_t kc = (int64_t)(L1 / 2 / ((size_t)type->mr * type->size));
    type->kc_max = min64(512, max64(64, kc / 8 * 8));
    type->nc_bytes = (int64_t)(L2 / 2);
    type->mc_bytes = (int64_t)(L2 / 4);
}

#define TG_GEMM_HELPERS(P, T)                                                                 \
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
    }

TG_GEMM_HELPERS(sgemm, float)
TG_GEMM_HELPERS(dgemm, double)

static void type_of(tg_dtype dtype, gemm_type *type)
{
    const tg_gemm_table *table = tg_gemm_active();
    const tg_gemm_kernels *k = dtype == TG_F32 ? &table->f32 : &table->f64;
    *type = (gemm_type){.size = tg_dtype_size(dtype), .k = k, .mr = k->mr[0], .nr = k->nr,
                        .loops = dtype == TG_F32 ? sgemm_loops : dgemm_loops,
                        .scale = dtype == TG_F32 ? sgemm_scale : dgemm_scale};
    blocking(type);
}

/* ---- the reference --------------------------------------------------------------- */

void tg_gemm_reference(tg_dtype dtype, int64_t M, int64_t N, int64_t K, double alpha,
                       const void *A, int64_t rsa, int64_t csa, const void *B, int64_t rsb,
                       int64_t csb, double beta, void *C, int64_t rsc, int64_t csc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double sum = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = dtype == TG_F32 ? ((const float *)A)[i * rsa + k * csa]
                                           : ((const double *)A)[i * rsa + k * csa];
                double b = dtype == TG_F32 ? ((const float *)B)[k * rsb + j * csb]
                                           : ((const double *)B)[k * rsb + j * csb];
                sum += a * b;
            }
            if (dtype == TG_F32) {
                float *c = (float *)C + i * rsc + j * csc;
                *c = (float)(alpha * sum + (beta == 0 ? 0 : beta * *c));
            } else {
                double *c = (double *)C + i * rsc + j * csc;
                *c = alpha * sum + (beta == 0 ? 0 : beta * *c);
            }
        }
}
