/* A persistent pool of worker threads for data-parallel kernels.
 *
 *     tg_parallel_for(n_tasks, fn, ctx)    runs fn(ctx, task, worker) for
 *                                          task = 0 .. n_tasks-1, then returns
 *
 * The calling thread takes part as worker 0; workers 1 .. n-1 are pthreads
 * started on first use. Between jobs a worker polls briefly, then sleeps on
 * a condition variable; it polls only when there are no more threads than
 * CPUs, and for a time derived from what a wake-up was measured to cost on
 * this machine (threadpool.c). Tasks are handed out one at a time from a
 * shared counter, so which worker runs which task varies from run to run: a
 * task must compute the same thing whichever worker runs it (that is how
 * tg_sgemm stays bit-identical for every thread count).
 *
 * Threads. The count comes from TG_NUM_THREADS, or else the number of CPUs
 * this process may run on (its affinity mask: taskset, a cpuset); a
 * TG_NUM_THREADS that is not a whole number >= 1, or is above
 * TG_MAX_THREADS, is said once on stderr. tg_set_num_threads changes it.
 * The pool serves one job at a time: calls from several threads are safe
 * but take turns (each waits for the pool), and a tg_parallel_for made from
 * inside a task runs its tasks inline on the current worker. A process that
 * forks gets a fresh pool in the child.
 *
 * Starting a job on sleeping workers costs microseconds to milliseconds
 * depending on the host (more than a 100x100 GEMM); the pool measures it
 * (tg_threadpool_start_cost_ns) so that callers go parallel only for jobs that
 * pay for it.
 *
 * Scratch. Each worker owns a few growable buffers (tg_worker_scratch), one
 * per tg_scratch_id, so kernels such as GEMM packing reuse their memory from
 * call to call instead of calling malloc. A buffer may only be used by the
 * task that asked for it, until that task returns, or by the holder of
 * tg_threadpool_enter, until tg_threadpool_leave.
 *
 * Shutdown. tg_threadpool_shutdown joins the workers and frees all scratch;
 * it also runs at exit (registered with atexit on first use), so leak
 * checkers see nothing. The pool restarts on the next use. */
#ifndef TG_THREADPOOL_H
#define TG_THREADPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound on the thread count (requests above it are clamped). */
#define TG_MAX_THREADS 256

/* One task of a parallel loop: `worker` is in 0 .. tg_get_num_threads()-1
 * and names the scratch buffers this task may use. */
typedef void (*tg_task_fn)(void *ctx, int64_t task, int worker);

/* Scratch buffers per worker; one id per kind of user so that a kernel that
 * calls another (e.g. an RNN step calling GEMM) never shares a buffer. */
typedef enum {
    TG_SCRATCH_GEMM = 0,        /* GEMM's packed blocks, per task */
    TG_SCRATCH_GEMM_SHARED = 1, /* GEMM's operand packed once and read by all tasks */
    TG_SCRATCH_KERNEL = 2,      /* free for other kernels */
    TG_SCRATCH_TEAM = 3,        /* a team's progress counters (core/team.c) */
    TG_SCRATCH_COUNT = 4
} tg_scratch_id;

/* Run fn(ctx, task, worker) for every task in [0, n_tasks) on up to
 * tg_get_num_threads() threads and return when all have finished. */
TG_API void tg_parallel_for(int64_t n_tasks, tg_task_fn fn, void *ctx);

/* Hold the pool across several parallel loops (e.g. to fill a buffer in
 * one loop and read it in the next): other threads' jobs wait until the
 * matching tg_threadpool_leave. Returns this thread's worker id, whose
 * scratch the holder may use between the loops: 0, or inside a task the
 * task's worker. Calls nest. */
TG_API int tg_threadpool_enter(void);
TG_API void tg_threadpool_leave(void);

/* What it costs on this machine to start the helpers of a parallel loop
 * (from publishing a job to the first worker joining it), as measured on
 * recent jobs; before any measurement, a pessimistic 50 us. Kernels weigh
 * it against the time a split would save. */
TG_API uint64_t tg_threadpool_start_cost_ns(void);

/* Whether `threads` threads may busy-wait for each other: only when there
 * are no more of them than online CPUs. */
TG_API bool tg_threadpool_may_spin(int threads);

/* Threads used by tg_parallel_for (>= 1). */
TG_API int tg_get_num_threads(void);

/* Use n threads (1 .. TG_MAX_THREADS; larger values are clamped). Fails with
 * TG_ERR_ARG for n < 1 and TG_ERR_STATE when called from inside a task. */
TG_API tg_status tg_set_num_threads(int n);

/* A 64-byte aligned buffer of at least `bytes` for the task running on
 * `worker`; its contents are whatever the last user left. NULL if memory
 * runs out (the caller must then cope without it). */
TG_API void *tg_worker_scratch(int worker, tg_scratch_id id, size_t bytes);

/* Join the workers and free every scratch buffer (safe to call at any time
 * outside a task; the pool restarts on next use). */
TG_API void tg_threadpool_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif
