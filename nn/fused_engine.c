/* The fused recurrent engine: the time loops of forward and backward, the
 * moves in and out of the workspace, and the products over all steps
 * (the workspace layout is in fused_internal.h).
 *
 * Forward: x enters the AX rows of every step; one product projects the
 * inputs of all steps, Z = X @ Wx^T; then step by step, the recurrent
 * product Z_t += A_t @ Wa^T (the GRU keeps it apart in Rg) and the gate
 * pass. Backward runs the steps the other way: the gate pass of step t
 * turns d loss / d a_t into dZ_t, and the product dH += dZ_t @ Wa sends
 * it to a_{t-1}; at the end one product each gives every weight gradient
 * (dWs = dZ^T @ AX) and every input gradient (dX = dZ @ Wx).
 *
 * A step's recurrent product and gate pass run in slices of the hidden
 * units: slice s owns units u0..u1 of every gate block, so it computes its
 * part of the product (from weights packed once per pass, ops/gemm_packed.h)
 * and then its gate pass with no other slice's data. A team of threads
 * (core/team.h) takes the slices step after step; what a slice computes
 * does not depend on the slicing or on the thread that runs it, so results
 * are bit-identical for any thread count. */
#include <stdatomic.h>
#include <string.h>

#include "../core/error.h"
#include "../core/iter.h"
#include "../core/platform.h"
#include "../core/team.h"
#include "../core/threadpool.h"
#include "../ops/each.h"
#include "../ops/gemm.h"
#include "../ops/gemm_kernels.h"
#include "fused.h"
#include "fused_internal.h"

#define at tg_fused_at

/* ---- profiling -------------------------------------------------------------------- */

static atomic_bool profiling;
static atomic_uint_fast64_t prof_ns[PROF_KINDS];
static atomic_int_fast64_t prof_big_macs, prof_step_macs;
static atomic_uint_fast64_t prof_waited_at_reset;

void tg_fused_profile_enable(bool on) { atomic_store(&profiling, on); }

void tg_fused_profile_read(tg_fused_profile *out, bool reset)
{
    uint64_t waited = tg_team_waited_ns();
    *out = (tg_fused_profile){
        .moves_ns = atomic_load(&prof_ns[PROF_MOVES]),
        .packing_ns = atomic_load(&prof_ns[PROF_PACKING]),
        .big_gemm_ns = atomic_load(&prof_ns[PROF_BIG_GEMM]),
        .step_gemm_ns = atomic_load(&prof_ns[PROF_STEP_GEMM]),
        .gates_ns = atomic_load(&prof_ns[PROF_GATES]),
        .wait_ns = waited - atomic_load(&prof_waited_at_reset),
        .loop_ns = atomic_load(&prof_ns[PROF_LOOP]),
        .total_ns = atomic_load(&prof_ns[PROF_TOTAL]),
        .big_gemm_macs = atomic_load(&prof_big_macs),
        .step_gemm_macs = atomic_load(&prof_step_macs),
    };
    if (reset) {
        for (int k = 0; k < PROF_KINDS; k++)
            atomic_store(&prof_ns[k], 0);
        atomic_store(&prof_big_macs, 0);
        atomic_store(&prof_step_macs, 0);
        atomic_store(&prof_waited_at_reset, waited);
    }
}

uint64_t tg_fused_prof_start(void)
{
    return atomic_load_explicit(&profiling, memory_order_relaxed) ? tg_clock_ns() : 0;
}

void tg_fused_prof_add(prof_kind kind, uint64_t start)
{
    if (start)
        atomic_fetch_add_explicit(&prof_ns[kind], tg_clock_ns() - start, memory_order_relaxed);
}

static void prof_macs(atomic_int_fast64_t *counter, int64_t M, int64_t N, int64_t K)
{
    if (atomic_load_explicit(&profiling, memory_order_relaxed))
        atomic_fetch_add_explicit(counter, M * N * K, memory_order_relaxed);
}

/* ---- products --------------------------------------------------------------------- */

/* C = beta C + A @ B in the layout's dtype (operands as in ops/gemm.h). */
static void gemm(const layout *L, int64_t M, int64_t N, int64_t K, const void *A, int64_t rsa,
                 int64_t csa, const void *B, int64_t rsb, int64_t csb, double beta, void *C,
                 int64_t rsc, int64_t csc)
{
    uint64_t start = tg_fused_prof_start();
    prof_macs(&prof_big_macs, M, N, K);
    if (L->dtype == TG_F32)
        tg_sgemm(M, N, K, 1.0f, A, rsa, csa, B, rsb, csb, (float)beta, C, rsc, csc);
    else
        tg_dgemm(M, N, K, 1.0, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
    tg_fused_prof_add(PROF_BIG_GEMM, start);
}

/* y[i * rsy] = beta y + A[i, :] . x for i < M (A row-major): one
 * example's recurrent product, on the calling thread. */
static void gemv(const layout *L, int64_t M, int64_t K, const void *A, int64_t rsa,
                 const void *x, double beta, void *y)
{
    const tg_gemm_table *table = tg_gemm_active();
    (L->dtype == TG_F32 ? table->f32.gemv : table->f64.gemv)(M, K, 1.0, A, rsa, x, beta, y, 1);
}

/* ---- one step, for a part of its rows and units ---------------------------------------
 *
 * Two ways to share a time loop between threads, both computing every row
 * and unit the same way as one thread does:
 *   by rows   thread w of n takes the slots w, w + n, w + 2n, ... (every
 *             n-th row of each step) through the whole loop. Sequences are
 *             independent, so the threads never wait for each other; each
 *             reads only its own states. The default whenever the batch
 *             gives every thread a few rows.
 *   by units  each step's units are cut into slices taken by a team
 *             (core/team.h), which waits at every step for the state the
 *             next step multiplies: for a batch too small to share. */

typedef struct {
    const layout *L;
    void *ws;
    schedule S;
    const tg_gates_table *gates;
    int threads;           /* that share the loop */
    bool by_rows;          /* else by units */
    int64_t slices, width; /* by units: slices of `width` units (a multiple of the
                            * packed sliver width, so each starts at a sliver) */
    tg_packed_b packed[4]; /* forward: Wa_k^T per gate; backward: [0] Wa, [1] Un */
    bool from_zero;        /* forward: no a0, so step 0 has no recurrent product */
    bool to_a0;            /* backward: the last product reaches dH block 0 (da0) */
} step_job;

/* A part of one step: units u0..u1 of the rows set, set + sets, ... */
typedef struct {
    int64_t t, u0, u1, set, sets;
} part;

/* How many of the step's first m slots are in the part's set. */
static int64_t rows_in(const part *q, int64_t m)
{
    return m > q->set ? (m - q->set + q->sets - 1) / q->sets : 0;
}

/* The pointers of a part of a step. */
static step_ptrs step_at(const step_job *job, const part *q)
{
    const layout *L = job->L;
    void *ws = job->ws;
    const schedule *S = &job->S;
    int64_t n_a = L->n_a, G = L->G, K = L->K, u0 = q->u0, t = q->t;
    int64_t row = S->off[t] + q->set, next = S->off[t + 1] + q->set, fin = L->R + q->set;
    step_ptrs p = {.m = rows_in(q, S->m_t[t]), .m_next = rows_in(q, S->m_t[t + 1]), .n_a = n_a,
                   .zs = G * q->sets, .hs = K * q->sets, .cs = n_a * q->sets, .w = q->u1 - u0};
    p.z = at(L, ws, L->Z, row * G + u0);
    p.b = at(L, ws, L->bs, u0);
    p.h_prev = at(L, ws, L->AX, row * K + u0);
    p.h_next = at(L, ws, L->AX, next * K + u0);
    p.h_fin = at(L, ws, L->AX, fin * K + u0);
    if (L->cell == CELL_LSTM) {
        p.c_prev = at(L, ws, L->C, row * n_a + u0);
        p.c_next = at(L, ws, L->C, next * n_a + u0);
        p.c_fin = at(L, ws, L->C, fin * n_a + u0);
    }
    if (L->gates == GRU_GATES)
        p.r = at(L, ws, L->Rg, row * G + u0);
    if (L->cell == CELL_GRU_RESET_FIRST)
        p.ra = at(L, ws, L->RA, row * n_a + u0);
    if (L->with_backward) {
        p.dz = at(L, ws, L->dZ, row * G + u0);
        p.dgh = L->gates == GRU_GATES ? at(L, ws, L->dGh, row * G + u0) : p.dz;
        p.dh_next = at(L, ws, L->dH, next * n_a + u0);
        p.dh_fin = at(L, ws, L->dH, fin * n_a + u0);
        p.dh_prev = at(L, ws, L->dH, row * n_a + u0);
        if (L->cell == CELL_LSTM) {
            p.dc_next = at(L, ws, L->dC, next * n_a + u0);
            p.dc_fin = at(L, ws, L->dC, fin * n_a + u0);
            p.dc_prev = at(L, ws, L->dC, row * n_a + u0);
        }
    }
    return p;
}

static void gate_pass(const step_job *job, const part *q, bool backward)
{
    uint64_t start = tg_fused_prof_start();
    step_ptrs p = step_at(job, q);
    if (p.m > 0)
        job->gates->pass[job->L->cell][backward][job->L->dtype == TG_F64](&p);
    tg_fused_prof_add(PROF_GATES, start);
}

static void reset_first_stage(const step_job *job, const part *q, bool backward)
{
    uint64_t start = tg_fused_prof_start();
    step_ptrs p = step_at(job, q);
    if (p.m > 0)
        job->gates->reset_first_stage[backward][job->L->dtype == TG_F64](&p);
    tg_fused_prof_add(PROF_GATES, start);
}

/* C[the part's rows, its units] = beta C + A @ B[:, units], with A the
 * part's rows of a region (rows lda apart, from column a_col) and C the
 * same rows of a region (ldc apart, from column c_col): the packed
 * product, or for a step of one row a matrix-vector product with `mat` (row-major,
 * row stride ldm: the same matrix as the packed B, transposed). */
static void step_product(const step_job *job, const part *q, const tg_packed_b *B,
                         const void *mat, int64_t ldm, size_t a_region, int64_t a_col,
                         int64_t lda, size_t c_region, int64_t c_col, int64_t ldc, double beta)
{
    const layout *L = job->L;
    int64_t m = rows_in(q, job->S.m_t[q->t]), row = job->S.off[q->t] + q->set;
    if (m == 0)
        return;
    const void *A = at(L, job->ws, a_region, row * lda + a_col);
    char *C = at(L, job->ws, c_region, row * ldc + c_col);
    uint64_t start = tg_fused_prof_start();
    prof_macs(&prof_step_macs, m, q->u1 - q->u0, B->K);
    /* gemv only for a step of one row: a row must be computed the same
     * way however the rows are shared, and gemv sums in another order */
    if (job->S.m_t[q->t] == 1)
        gemv(L, q->u1 - q->u0, B->K, (const char *)mat + q->u0 * ldm * (int64_t)L->es, ldm, A,
             beta, C + q->u0 * (int64_t)L->es);
    else
        tg_packed_gemm(B, m, q->u0, q->u1, 1.0, A, lda * q->sets, beta, C, ldc * q->sets);
    tg_fused_prof_add(PROF_STEP_GEMM, start);
}

/* Forward: the recurrent products of gates k0..k1 into Z (beta 1) or, for
 * the GRU, Rg (beta 0; zeros when there is no state to multiply). Gate
 * k's products read its rows of Ws. */
static void forward_products(const step_job *job, const part *q, int k0, int k1,
                             size_t a_region, int64_t lda)
{
    const layout *L = job->L;
    bool gru = L->gates == GRU_GATES;
    size_t target = gru ? L->Rg : L->Z;
    for (int k = k0; k < k1; k++) {
        int64_t col = k * L->n_a;
        if (q->t == 0 && job->from_zero) { /* a zero a0 projects to zero */
            if (gru)
                tg_fused_zero_rows(L, job->ws, target, (job->S.off[0] + q->set) * L->G + col + q->u0,
                          rows_in(q, job->S.m_t[0]), q->u1 - q->u0, L->G * q->sets);
            continue;
        }
        step_product(job, q, &job->packed[k], at(L, job->ws, L->Ws, col * L->K), L->K, a_region,
                     0, lda, target, col, L->G, gru ? 0.0 : 1.0);
    }
}

/* Forward phase `phase` (a step; the reset-first GRU: half a step) of a part. */
static void forward_part(const step_job *job, int64_t phase, part *q)
{
    const layout *L = job->L;
    if (L->cell != CELL_GRU_RESET_FIRST) {
        q->t = phase;
        forward_products(job, q, 0, L->gates, L->AX, L->K);
        gate_pass(job, q, false);
        return;
    }
    /* reset first: r and z (and r a_prev), then Un (r a_prev) and the rest */
    q->t = phase / 2;
    if (phase % 2 == 0) {
        forward_products(job, q, 0, 2, L->AX, L->K);
        reset_first_stage(job, q, false);
    } else {
        forward_products(job, q, 2, 3, L->RA, L->n_a);
        gate_pass(job, q, false);
    }
}

/* Backward product of step t: dH rows of the step (what reaches a_prev),
 * += dGh_t @ Wa (the reset-first GRU: only r and z). */
static void backward_product(const step_job *job, part *q, int64_t t)
{
    const layout *L = job->L;
    size_t dgh = L->gates == GRU_GATES ? L->dGh : L->dZ;
    q->t = t;
    step_product(job, q, &job->packed[0], at(L, job->ws, L->WaT, 0), L->G, dgh, 0, L->G, L->dH,
                 0, L->n_a, 1.0);
}

/* Phase 0: the gates of the last step; phase p: the product of step
 * T - p (which needs every unit of dGh from phase p - 1, and yields the
 * part's units of d loss / d a_{T-p-1}) and then the gates of step
 * T - p - 1, which need exactly those units. The reset-first GRU takes two
 * phases a step: [product of t+1,] stage one of t; d ra and stage two. */
static void backward_part(const step_job *job, int64_t phase, part *q)
{
    const layout *L = job->L;
    int64_t T = L->T_x;
    if (L->cell == CELL_GRU_RESET_FIRST) {
        int64_t t = T - 1 - phase / 2;
        if (phase == 2 * T) {
            if (job->to_a0)
                backward_product(job, q, 0);
            return;
        }
        if (phase % 2 == 0) {
            if (t + 1 < T)
                backward_product(job, q, t + 1);
            q->t = t;
            gate_pass(job, q, true);
        } else {
            q->t = t;
            step_product(job, q, &job->packed[1], at(L, job->ws, L->WaT, 2 * L->n_a), L->G,
                         L->dGh, 2 * L->n_a, L->G, L->dGh, 0, L->G, 0.0);
            reset_first_stage(job, q, true);
        }
        return;
    }
    int64_t product_t = T - phase, gates_t = T - 1 - phase;
    if (phase > 0 && (product_t > 0 || job->to_a0))
        backward_product(job, q, product_t);
    if (gates_t >= 0) {
        q->t = gates_t;
        gate_pass(job, q, true);
    }
}

/* ---- sharing the time loop ---- */

typedef struct {
    const step_job *job;
    int64_t phases;
    bool backward;
} loop_ctx;

/* By units: one slice of one phase, for the team. */
static void unit_slice(void *ctx, int64_t phase, int64_t slice, int worker)
{
    (void)worker;
    const loop_ctx *c = ctx;
    const step_job *job = c->job;
    int64_t n_a = job->L->n_a;
    part q = {.set = 0, .sets = 1};
    q.u0 = slice * job->width < n_a ? slice * job->width : n_a;
    q.u1 = q.u0 + job->width < n_a ? q.u0 + job->width : n_a;
    if (q.u0 < q.u1)
        (c->backward ? backward_part : forward_part)(job, phase, &q);
}

/* By rows: every phase, all units, of one set of rows. */
static void row_set(void *ctx, int64_t set, int worker)
{
    (void)worker;
    const loop_ctx *c = ctx;
    part q = {.u0 = 0, .u1 = c->job->L->n_a, .set = set, .sets = c->job->threads};
    for (int64_t phase = 0; phase < c->phases; phase++)
        (c->backward ? backward_part : forward_part)(c->job, phase, &q);
}

static void run_loop(const step_job *job, int64_t phases, bool backward)
{
    loop_ctx c = {job, phases, backward};
    uint64_t loop = tg_fused_prof_start();
    if (job->by_rows)
        tg_parallel_for(job->threads, row_set, &c);
    else
        tg_team_run(phases, job->slices, job->threads, unit_slice, &c);
    tg_fused_prof_add(PROF_LOOP, loop);
}

/* How the loop is shared. The time one thread would take is estimated at
 * the kernels' peak (NR multiply-adds per cycle at 3 GHz, as in
 * ops/gemm.c), which never overstates what a split saves. By rows when
 * every thread gets at least MIN_ROWS rows of the largest step, and the
 * time saved pays several times over for starting the threads once; by
 * units when the steps are large enough to pay for a start at each step as
 * well; else one thread. */
enum { MIN_ROWS = 4 };

static _Atomic int forced_sharing;

void tg_fused_force_sharing(tg_fused_sharing mode) { atomic_store(&forced_sharing, (int)mode); }

static void share_by_units(step_job *job, int threads)
{
    int64_t align = tg_packed_b_align(job->L->dtype), n_a = job->L->n_a;
    int64_t max_slices = (n_a + align - 1) / align;
    int64_t slices = threads < max_slices ? threads : max_slices;
    int64_t width = (n_a + slices - 1) / slices;
    job->threads = threads;
    job->by_rows = false;
    job->width = (width + align - 1) / align * align;
    job->slices = (n_a + job->width - 1) / job->width;
}

static void plan_loop(step_job *job)
{
    const layout *L = job->L;
    int64_t align = tg_packed_b_align(L->dtype), n_a = L->n_a;
    int64_t max_slices = (n_a + align - 1) / align;
    int threads = tg_get_num_threads(), forced = atomic_load(&forced_sharing);
    double start_ns = (double)tg_threadpool_start_cost_ns();
    double step_ns = (double)L->m * (double)L->G * (double)n_a / (3.0 * (double)align);
    double saved_ns = (double)L->T_x * step_ns * (1.0 - 1.0 / threads);
    job->threads = 1;
    job->by_rows = true;
    job->slices = 1;
    job->width = n_a;
    if (threads <= 1)
        return;
    if (forced == TG_SHARE_ROWS || (forced == TG_SHARE_AUTO && L->m >= MIN_ROWS * threads &&
                                     saved_ns > 4.0 * start_ns)) {
        job->threads = threads;
        return;
    }
    if (max_slices >= 2 && (forced == TG_SHARE_UNITS ||
                            (forced == TG_SHARE_AUTO && saved_ns > 4.0 * start_ns * (double)L->T_x)))
        share_by_units(job, threads);
}

static step_job make_job(const layout *L, void *ws)
{
    step_job job = {.L = L, .ws = ws, .S = tg_fused_schedule(L, ws), .gates = tg_gates_active()};
    plan_loop(&job);
    return job;
}

/* ---- forward and backward over the sequence ------------------------------------------- */

/* The packed weights of the forward: per gate k, Wa_k^T (n_a x n_a). */
/* Weights packed for the step products, in column parts shared between
 * threads when there is enough to pack. */
typedef struct {
    int n;
    struct {
        tg_packed_b *p;
        const void *B;
        int64_t rsb, csb;
    } m[4];
    int64_t part_cols; /* a multiple of the sliver width */
    int64_t parts[4];  /* per matrix */
} pack_plan;

static void pack_part(void *ctx, int64_t task, int worker)
{
    (void)worker;
    const pack_plan *plan = ctx;
    int k = 0;
    while (task >= plan->parts[k])
        task -= plan->parts[k++];
    int64_t j0 = task * plan->part_cols;
    tg_pack_b_columns(plan->m[k].p, j0, j0 + plan->part_cols, plan->m[k].B, plan->m[k].rsb,
                      plan->m[k].csb);
}

static void pack_all(const layout *L, pack_plan *plan)
{
    if (L->m == 1) /* every step is one row: gemv on Ws and WaT, nothing packed */
        return;
    uint64_t start = tg_fused_prof_start();
    int64_t bytes = 0, align = tg_packed_b_align(L->dtype), tasks = 0;
    for (int k = 0; k < plan->n; k++)
        bytes += plan->m[k].p->K * plan->m[k].p->N * (int64_t)L->es * 2;
    int threads = tg_fused_move_threads(bytes);
    /* about four parts per thread over all the matrices */
    int64_t cols = 0;
    for (int k = 0; k < plan->n; k++)
        cols += plan->m[k].p->N;
    int64_t part = (cols + 4 * threads - 1) / (4 * threads);
    plan->part_cols = threads > 1 ? (part + align - 1) / align * align : INT64_MAX / 2;
    for (int k = 0; k < plan->n; k++) {
        plan->parts[k] = (plan->m[k].p->N + plan->part_cols - 1) / plan->part_cols;
        tasks += plan->parts[k];
    }
    if (threads > 1) {
        tg_parallel_for(tasks, pack_part, plan);
    } else { /* not worth a start of the pool's threads */
        for (int64_t t = 0; t < tasks; t++)
            pack_part(plan, t, 0);
    }
    tg_fused_prof_add(PROF_PACKING, start);
}

/* The packed weights of the forward: per gate k, Wa_k^T (n_a x n_a). */
static void pack_forward(const layout *L, void *ws, step_job *job)
{
    pack_plan plan = {.n = L->gates};
    for (int k = 0; k < L->gates; k++) {
        tg_packed_b_init(&job->packed[k], L->dtype, L->n_a, L->n_a,
                         (char *)ws + L->Pf + (size_t)k * L->pack_f);
        plan.m[k].p = &job->packed[k];
        plan.m[k].B = at(L, ws, L->Ws, k * L->n_a * L->K);
        plan.m[k].rsb = 1;
        plan.m[k].csb = L->K;
    }
    pack_all(L, &plan);
}

void tg_fused_engine_forward(const layout *L, void *ws, const fused_io *io)
{
    int64_t n_x = L->n_x, n_a = L->n_a, m = L->m, K = L->K, G = L->G, R = L->R;
    step_job job = make_job(L, ws);
    pack_forward(L, ws, &job);
    /* x into the x part of AX's step rows; a0 and c0 into rows 0 .. m-1. */
    tg_fused_move_seq(L, ws, L->AX, n_a, K, STEP_ROWS, io->x, TO_WS);
    job.from_zero = io->a0 == NULL;
    if (io->a0)
        tg_fused_move_state(L, ws, L->AX, 0, K, io->a0, TO_WS);
    else
        tg_fused_zero_rows(L, ws, L->AX, 0, m, n_a, K);
    if (L->cell == CELL_LSTM) {
        if (io->c0)
            tg_fused_move_state(L, ws, L->C, 0, n_a, io->c0, TO_WS);
        else
            tg_fused_zero_rows(L, ws, L->C, 0, 1, m * n_a, 0);
    }
    /* The input projections of all steps: Z = X @ Wx^T, one product. */
    gemm(L, R, G, n_x, at(L, ws, L->AX, n_a), K, 1, at(L, ws, L->Ws, n_a), 1, K, 0.0,
         at(L, ws, L->Z, 0), G, 1);
    run_loop(&job, L->cell == CELL_GRU_RESET_FIRST ? 2 * L->T_x : L->T_x, false);
    if (io->a)
        tg_fused_move_seq(L, ws, L->AX, 0, K, STATE_ROWS, io->a, FROM_WS);
    if (io->c)
        tg_fused_move_seq(L, ws, L->C, 0, n_a, STATE_ROWS, io->c, FROM_WS);
    if (io->a_n)
        tg_fused_move_state(L, ws, L->AX, R, K, io->a_n, FROM_WS);
    if (io->c_n)
        tg_fused_move_state(L, ws, L->C, R, n_a, io->c_n, FROM_WS);
    tg_fused_mark_forward_done(ws);
}

/* dH and dC before the loop: what arrived for each step's state, plus
 * what arrived for the final states; rows 0 .. m-1 (reaching a0 and c0)
 * start at zero, and so do rows that no time fills (padded steps). */
static bool load_state_grads(const layout *L, void *ws, size_t region, const tg_tensor *seq,
                             const tg_tensor *fin)
{
    int64_t n_a = L->n_a, m = L->m;
    tg_fused_zero_rows(L, ws, region, 0, 1, m * n_a, 0);
    if (!seq || L->lengths)
        tg_fused_zero_rows(L, ws, region, m * n_a, 1, L->R * n_a, 0);
    if (seq)
        tg_fused_move_seq(L, ws, region, 0, n_a, STATE_ROWS, seq, TO_WS);
    if (fin)
        tg_fused_move_state(L, ws, region, L->R, n_a, fin, ADD_TO_WS);
    return seq || fin;
}

/* The packed weights of backward: Ws[:, :n_a] (rows r and z only for the
 * reset-first GRU), and that GRU's Un for d ra. */
static void pack_backward(const layout *L, void *ws, step_job *job)
{
    int64_t rows = L->cell == CELL_GRU_RESET_FIRST ? 2 * L->n_a : L->G;
    pack_plan plan = {.n = 1};
    tg_packed_b_init(&job->packed[0], L->dtype, rows, L->n_a, (char *)ws + L->Pb);
    plan.m[0].p = &job->packed[0];
    plan.m[0].B = at(L, ws, L->Ws, 0);
    plan.m[0].rsb = L->K;
    plan.m[0].csb = 1;
    if (L->cell == CELL_GRU_RESET_FIRST) {
        tg_packed_b_init(&job->packed[1], L->dtype, L->n_a, L->n_a,
                         (char *)ws + L->Pb + L->pack_b - L->pack_f);
        plan.m[1].p = &job->packed[1];
        plan.m[1].B = at(L, ws, L->Ws, 2 * L->n_a * L->K);
        plan.m[1].rsb = L->K;
        plan.m[1].csb = 1;
        plan.n = 2;
    }
    pack_all(L, &plan);
}

static void weight_products(const layout *L, void *ws);

bool tg_fused_engine_backward(const layout *L, void *ws, const fused_grads *g, bool weights)
{
    int64_t n_x = L->n_x, n_a = L->n_a, K = L->K, G = L->G, R = L->R;
    bool lstm = L->cell == CELL_LSTM;
    bool any = load_state_grads(L, ws, L->dH, g->da, g->da_n);
    if (lstm)
        any = load_state_grads(L, ws, L->dC, g->dc, g->dc_n) || any;
    if (!any)
        return false;
    step_job job = make_job(L, ws);
    pack_backward(L, ws, &job);
    job.to_a0 = g->da0 != NULL || (lstm && g->dc0 != NULL);
    run_loop(&job, L->cell == CELL_GRU_RESET_FIRST ? 2 * L->T_x + 1 : L->T_x + 1, true);
    if (g->da0)
        tg_fused_move_state(L, ws, L->dH, 0, n_a, g->da0, ADD_FROM_WS);
    if (g->dc0 && lstm)
        tg_fused_move_state(L, ws, L->dC, 0, n_a, g->dc0, ADD_FROM_WS);
    if (weights)
        weight_products(L, ws);
    if (g->dx) { /* dX = dZ @ Wx for every step at once */
        gemm(L, R, n_x, G, at(L, ws, L->dZ, 0), G, 1, at(L, ws, L->Ws, n_a), K, 1, 0.0,
             at(L, ws, L->dX, 0), n_x, 1);
        tg_fused_move_seq(L, ws, L->dX, 0, n_x, STEP_ROWS, g->dx, ADD_FROM_WS);
    }
    return true;
}

/* Every step's weight gradient at once, dWs = dZ^T @ AX, and the bias
 * gradients as column sums of dZ. The GRU's a side is apart: dGh^T @ A
 * (for the reset-first GRU's n rows, dGh_n^T @ RA), then dZ^T @ X. */
static void weight_products(const layout *L, void *ws)
{
    int64_t n_x = L->n_x, n_a = L->n_a, K = L->K, G = L->G, R = L->R;
    void *dWs = at(L, ws, L->dWs, 0);
    if (L->gates != GRU_GATES) {
        gemm(L, G, K, R, at(L, ws, L->dZ, 0), 1, G, at(L, ws, L->AX, 0), K, 1, 0.0, dWs, K, 1);
    } else {
        int64_t a_rows = L->cell == CELL_GRU_RESET_FIRST ? 2 * n_a : G;
        gemm(L, a_rows, n_a, R, at(L, ws, L->dGh, 0), 1, G, at(L, ws, L->AX, 0), K, 1, 0.0, dWs,
             K, 1);
        if (L->cell == CELL_GRU_RESET_FIRST)
            gemm(L, n_a, n_a, R, at(L, ws, L->dGh, 2 * n_a), 1, G, at(L, ws, L->RA, 0), n_a, 1,
                 0.0, at(L, ws, L->dWs, 2 * n_a * K), K, 1);
        gemm(L, G, n_x, R, at(L, ws, L->dZ, 0), 1, G, at(L, ws, L->AX, n_a), K, 1, 0.0,
             at(L, ws, L->dWs, n_a), K, 1);
    }
    tg_fused_column_sums(L, ws, L->dZ, 0, G, G, at(L, ws, L->dbs, 0));
    if (L->gates == GRU_GATES) /* bhn: the a side's n column */
        tg_fused_column_sums(L, ws, L->dGh, 2 * n_a, n_a, G, at(L, ws, L->dbs, G));
}
