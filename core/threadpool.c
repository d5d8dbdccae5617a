/* The persistent thread pool (see threadpool.h).
 *
 * One job at a time. The thread that calls tg_parallel_for holds `owner`
 * for the whole job and runs tasks as worker 0. It publishes the job under
 * `lock`, bumps `generation` and wakes the workers; each worker that joins
 * counts itself in `n_busy`, takes tasks from the atomic `next_task` until
 * none are left, and leaves. When the caller has run out of tasks it waits
 * until n_busy is 0 and then closes the job, so a worker that wakes late
 * finds the job closed and goes back to sleep without touching it: the
 * caller never waits for a worker that has not started.
 *
 * Waking a sleeping thread costs tens of microseconds on a virtual machine,
 * about as long as a whole GEMM of a recurrent step, and a training step
 * runs hundreds of jobs back to back. So a thread about to sleep first
 * polls: a worker for the next job, the caller for its workers to finish.
 * The pool measures on its own jobs what a start costs when the worker
 * was asleep and when it was polling, and polls for POLL_WAKES times the
 * measured wake-up: then the wake-ups it does pay cost at most a
 * POLL_WAKES-th of the time spent between jobs, and within a training
 * step, whose jobs follow each other closely, the workers stay awake.
 * Kernels ask tg_threadpool_start_cost_ns what a start costs to decide
 * whether a split pays. A thread only polls when the pool has no more threads than the
 * machine has online CPUs, so a polling thread never holds a core that
 * another thread of the job is waiting for; the wait is bounded, and after
 * it everything sleeps on condition variables. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity: the CPUs this process may run on */
#endif
#include "threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "spin.h"

#include "platform.h"

/* Polling lasts this many measured wake-ups (see above). Before anything
 * is measured, a start is assumed to cost what a wake-up from sleep costs
 * on a virtual machine, and a start while polling a tenth of that: both
 * pessimistic, so that no split is made on an optimistic guess. */
enum { POLL_WAKES = 16, UNKNOWN_WAKE_NS = 50 * 1000, UNKNOWN_HOT_NS = 5 * 1000 };

typedef struct {
    void *ptr;
    size_t size;
} scratch_buffer;

static struct {
    pthread_mutex_t owner; /* held by the thread running a job, and by reconfiguration */
    pthread_mutex_t lock;  /* guards everything below except next_task and scratch */
    pthread_cond_t wake;   /* workers sleep here between jobs */
    pthread_cond_t idle;   /* the caller waits here for n_busy to reach 0 */
    int n_started;         /* worker threads alive: ids 1 .. n_started */
    bool stopping;
    uint64_t generation; /* bumped for each published job */
    bool closed;         /* the current job takes no more workers */
    int n_wanted;        /* workers 1 .. n_wanted may join the current job */
    atomic_int n_busy;   /* workers inside the current job (changed under lock) */
    atomic_uint_fast64_t wake_seq; /* bumped with every job and by stop_workers, for pollers */
    bool may_spin;       /* threads <= online CPUs (set with each job) */
    tg_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_int_fast64_t next_task;
    uint64_t published_ns; /* when the current job was published (under lock) */
    bool start_measured;   /* the current job's first join has been timed */
    pthread_t threads[TG_MAX_THREADS];
    uint64_t start_generation[TG_MAX_THREADS];
    /* Only the thread running as worker w touches scratch[w] (or the owner
     * while no job runs). */
    scratch_buffer scratch[TG_MAX_THREADS][TG_SCRATCH_COUNT];
} pool = {
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
    .closed = true,
};

/* What starting a job's helpers costs on this machine: the time from
 * publishing a job to the first worker joining it. From sleep: a running
 * average (0 until measured). While polling: the last HOT_SAMPLES
 * measurements (see hot_cost); the pool takes that many right after it
 * starts its workers, on empty jobs. */
enum { HOT_SAMPLES = 15 };
static atomic_uint_fast64_t wake_cost_avg;
static atomic_uint_fast64_t hot_samples[HOT_SAMPLES];
static atomic_uint hot_next;

/* Configured thread count including the caller (read without a lock, so
 * that a task may ask); 0 until TG_NUM_THREADS has been read. */
static atomic_int n_threads;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

/* This thread's worker id while it runs tasks or holds the pool, else -1;
 * whether it is inside a task; how many tg_threadpool_enter it holds. */
static _Thread_local int current_worker = -1;
static _Thread_local bool in_task;
static _Thread_local int held;

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void register_hooks(void);
static void read_env(void);
static int configured_threads(void);
static int start_workers(int wanted);
static void stop_workers(void);
static void free_scratch(int from);
static void run_tasks(tg_task_fn fn, void *ctx, int64_t n_tasks, int worker);
static bool poll_briefly(bool (*ready)(const void *), const void *arg);
static bool no_worker_busy(const void *arg);
static bool wake_seq_moved(const void *seen);
static int online_cpus(void);
static void record_start_cost(bool polled, uint64_t ns);
static void calibrate(int helpers);
static uint64_t poll_ns(void);

/* Publish a job for `helpers` workers, take part as worker 0, and return
 * when every worker that joined has left (the caller holds the pool). */
static void run_job(tg_task_fn fn, void *ctx, int64_t n_tasks, int helpers)
{
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    atomic_store_explicit(&pool.next_task, 0, memory_order_relaxed);
    pool.n_wanted = helpers;
    atomic_store(&pool.n_busy, 0);
    pool.closed = false;
    pool.may_spin = configured_threads() <= online_cpus();
    pool.generation++;
    pool.published_ns = tg_clock_ns();
    pool.start_measured = false;
    atomic_fetch_add(&pool.wake_seq, 1);
    pthread_cond_broadcast(&pool.wake); /* cheap when every worker is polling */
    bool may_spin = pool.may_spin;
    pthread_mutex_unlock(&pool.lock);

    run_tasks(fn, ctx, n_tasks, 0);

    if (may_spin)
        poll_briefly(no_worker_busy, NULL);
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.n_busy) > 0)
        pthread_cond_wait(&pool.idle, &pool.lock);
    pool.closed = true;
    pthread_mutex_unlock(&pool.lock);
}

void tg_parallel_for(int64_t n_tasks, tg_task_fn fn, void *ctx)
{
    if (n_tasks <= 0 || !fn)
        return;
    if (in_task) { /* nested: this thread already is a worker */
        for (int64_t t = 0; t < n_tasks; t++)
            fn(ctx, t, current_worker);
        return;
    }
    tg_threadpool_enter();
    int helpers = configured_threads() - 1;
    if (helpers > n_tasks - 1)
        helpers = (int)(n_tasks - 1);
    if (helpers > 0) {
        int before = pool.n_started;
        helpers = start_workers(helpers); /* fewer if pthread_create fails */
        if (pool.n_started > before && pool.n_started <= online_cpus())
            calibrate(pool.n_started);
    }
    in_task = true;
    if (helpers <= 0)
        for (int64_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
    else
        run_job(fn, ctx, n_tasks, helpers);
    in_task = false;
    tg_threadpool_leave();
}

/* ---- measuring a start -------------------------------------------------------- */

/* A task that returns once all `*target` tasks have begun: every worker
 * of the job must join it. */
static void rendezvous(void *ctx, int64_t task, int worker)
{
    (void)task;
    (void)worker;
    atomic_int *arrived = ctx;
    int target = atomic_load(&arrived[1]);
    atomic_fetch_add(&arrived[0], 1);
    while (atomic_load(&arrived[0]) < target)
        tg_spin_relax();
}

/* Right after workers start: jobs that every worker must join, so that
 * the pool knows from the start what a start costs (the first join from a
 * new thread, the rest from polling workers). */
static void calibrate(int helpers)
{
    in_task = true;
    for (int i = 0; i <= HOT_SAMPLES; i++) {
        atomic_int arrived[2];
        atomic_init(&arrived[0], 0);
        atomic_init(&arrived[1], helpers + 1);
        run_job(rendezvous, arrived, helpers + 1, helpers);
    }
    in_task = false;
}

int tg_threadpool_enter(void)
{
    if (in_task)
        return current_worker;
    if (held++ == 0) {
        pthread_once(&hooks_once, register_hooks);
        pthread_mutex_lock(&pool.owner);
        current_worker = 0;
    }
    return 0;
}

void tg_threadpool_leave(void)
{
    if (in_task || held == 0)
        return;
    if (--held == 0) {
        current_worker = -1;
        pthread_mutex_unlock(&pool.owner);
    }
}

int tg_get_num_threads(void) { return configured_threads(); }

static uint64_t measured(atomic_uint_fast64_t *avg, uint64_t unknown)
{
    uint64_t v = atomic_load_explicit(avg, memory_order_relaxed);
    return v ? v : unknown;
}

/* The fastest of the polling starts measured (UNKNOWN_HOT_NS before any):
 * what a start costs when the host runs both threads, which is what a
 * split is planned for. When it does not, nothing is lost but that time:
 * the tasks and slices of a job go to whichever thread is there to take
 * them, so a late worker just takes fewer. (A median let a few starts
 * whose worker the host had descheduled stop every later split, and with
 * no splits nothing was measured again.) */
static uint64_t hot_cost(void)
{
    uint64_t best = 0;
    for (int i = 0; i < HOT_SAMPLES; i++) {
        uint64_t x = atomic_load_explicit(&hot_samples[i], memory_order_relaxed);
        if (x && (!best || x < best))
            best = x;
    }
    return best ? best : UNKNOWN_HOT_NS;
}

/* While the pool may poll, its workers stay awake through a run of jobs
 * (see the top): a start then costs what it costs a polling worker, and
 * that is what a kernel weighs (the first job after a long pause pays a
 * wake-up once). A pool with more threads than CPUs never polls. */
uint64_t tg_threadpool_start_cost_ns(void)
{
    if (configured_threads() <= online_cpus())
        return hot_cost();
    return measured(&wake_cost_avg, UNKNOWN_WAKE_NS);
}

/* From sleep: an exponential average over the last ~8 wake-ups. */
static void record_start_cost(bool polled, uint64_t ns)
{
    ns = ns ? ns : 1;
    if (polled) {
        unsigned i = atomic_fetch_add_explicit(&hot_next, 1, memory_order_relaxed);
        atomic_store_explicit(&hot_samples[i % HOT_SAMPLES], ns, memory_order_relaxed);
        return;
    }
    uint64_t old = atomic_load_explicit(&wake_cost_avg, memory_order_relaxed);
    atomic_store_explicit(&wake_cost_avg, old ? old - old / 8 + ns / 8 : ns, memory_order_relaxed);
}

/* How long a thread polls before it sleeps (see the top). */
static uint64_t poll_ns(void) { return POLL_WAKES * measured(&wake_cost_avg, UNKNOWN_WAKE_NS); }

bool tg_threadpool_may_spin(int threads) { return threads <= online_cpus(); }

tg_status tg_set_num_threads(int n)
{
    if (n < 1)
        return tg_fail(TG_ERR_ARG, "tg_set_num_threads: need at least 1 thread, got %d", n);
    if (in_task || held)
        return tg_fail(TG_ERR_STATE, "tg_set_num_threads: called inside a parallel task or "
                                     "while holding the pool");
    if (n > TG_MAX_THREADS)
        n = TG_MAX_THREADS;
    pthread_mutex_lock(&pool.owner);
    if (n - 1 < pool.n_started)
        stop_workers(); /* the right number restart on the next job */
    free_scratch(n);
    pthread_once(&env_once, read_env); /* so that a later first use keeps n */
    atomic_store(&n_threads, n);
    pthread_mutex_unlock(&pool.owner);
    return TG_OK;
}

void *tg_worker_scratch(int worker, tg_scratch_id id, size_t bytes)
{
    if (worker < 0 || worker >= TG_MAX_THREADS || (int)id < 0 || id >= TG_SCRATCH_COUNT)
        return NULL;
    scratch_buffer *s = &pool.scratch[worker][id];
    if (s->size >= bytes && s->ptr)
        return s->ptr;
    if (bytes > SIZE_MAX - 4096)
        return NULL;
    size_t size = (bytes + 4095) & ~(size_t)4095; /* aligned_alloc wants a multiple */
    pthread_once(&hooks_once, register_hooks);   /* freed at exit */
    free(s->ptr);
    s->ptr = aligned_alloc(64, size ? size : 4096);
    s->size = s->ptr ? size : 0;
    return s->ptr;
}

void tg_threadpool_shutdown(void)
{
    if (in_task || held)
        return;
    pthread_mutex_lock(&pool.owner);
    stop_workers();
    free_scratch(0);
    pthread_mutex_unlock(&pool.owner);
}

/* ---- helpers -------------------------------------------------------------- */

/* At exit, clean up unless a job is running (exit called from a task or
 * while another thread uses the pool): then joining could deadlock, and the
 * memory goes with the process anyway. */
static void shutdown_at_exit(void)
{
    if (in_task || held || pthread_mutex_trylock(&pool.owner) != 0)
        return;
    stop_workers();
    free_scratch(0);
    pthread_mutex_unlock(&pool.owner);
}

/* The child of fork has only the forking thread: forget the workers (their
 * memory is the child's to reuse) and start over. */
static void reset_in_child(void)
{
    pthread_mutex_t fresh_mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    pool.owner = fresh_mutex;
    pool.lock = fresh_mutex;
    pool.wake = fresh_cond;
    pool.idle = fresh_cond;
    pool.n_started = 0;
    pool.stopping = false;
    pool.closed = true;
    atomic_store(&pool.n_busy, 0);
    current_worker = -1;
    in_task = false;
    held = 0;
}

static void register_hooks(void)
{
    atexit(shutdown_at_exit);
    pthread_atfork(NULL, NULL, reset_in_child);
}

/* An unusable TG_NUM_THREADS is said once on stderr (there is no caller to
 * return an error to), then the CPU count or the maximum is used. */
static void read_env(void)
{
    long n = 0, cpus = online_cpus();
    const char *env = getenv("TG_NUM_THREADS");
    if (env && *env) {
        char *end;
        errno = 0;
        n = strtol(env, &end, 10);
        if (*end != '\0' || errno || n < 1) {
            fprintf(stderr, "tapegrad: TG_NUM_THREADS='%s' is not a whole number >= 1; using "
                    "%ld (the CPUs this process may run on)\n", env, cpus);
            n = 0;
        } else if (n > TG_MAX_THREADS) {
            fprintf(stderr, "tapegrad: TG_NUM_THREADS=%ld is above the maximum of %d; using "
                    "%d\n", n, TG_MAX_THREADS, TG_MAX_THREADS);
        }
    }
    if (n < 1)
        n = cpus;
    atomic_store(&n_threads, n > TG_MAX_THREADS ? TG_MAX_THREADS : (int)n);
}

static int configured_threads(void)
{
    pthread_once(&env_once, read_env);
    return atomic_load(&n_threads);
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    current_worker = id;
    in_task = true;
    pthread_mutex_lock(&pool.lock);
    uint64_t seen = pool.start_generation[id];
    for (;;) {
        bool polled = false;
        if (!pool.stopping && pool.generation == seen && pool.may_spin) {
            /* Poll for the next job before sleeping (see the top). */
            uint_fast64_t seq = atomic_load(&pool.wake_seq);
            pthread_mutex_unlock(&pool.lock);
            polled = poll_briefly(wake_seq_moved, &seq);
            pthread_mutex_lock(&pool.lock);
        }
        while (!pool.stopping && pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stopping)
            break;
        seen = pool.generation;
        if (pool.closed || id > pool.n_wanted)
            continue;
        atomic_fetch_add(&pool.n_busy, 1);
        if (!pool.start_measured) {
            pool.start_measured = true;
            record_start_cost(polled, tg_clock_ns() - pool.published_ns);
        }
        tg_task_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int64_t n_tasks = pool.n_tasks;
        pthread_mutex_unlock(&pool.lock);
        run_tasks(fn, ctx, n_tasks, id);
        pthread_mutex_lock(&pool.lock);
        if (atomic_fetch_sub(&pool.n_busy, 1) == 1)
            pthread_cond_signal(&pool.idle); /* cheap when the caller is polling */
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Make sure workers 1 .. wanted are running; returns how many are (owner
 * held, so no job is in progress). */
static int start_workers(int wanted)
{
    while (pool.n_started < wanted) {
        int id = pool.n_started + 1;
        pool.start_generation[id] = pool.generation;
        if (pthread_create(&pool.threads[id], NULL, worker_main, (void *)(intptr_t)id) != 0)
            break;
        pool.n_started = id;
    }
    return pool.n_started < wanted ? pool.n_started : wanted;
}

/* Join every worker (owner held). */
static void stop_workers(void)
{
    if (pool.n_started == 0)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    atomic_fetch_add(&pool.wake_seq, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int id = 1; id <= pool.n_started; id++)
        pthread_join(pool.threads[id], NULL);
    pool.n_started = 0;
    pool.stopping = false;
}

/* Free the scratch of workers from .. TG_MAX_THREADS-1 (owner held). */
static void free_scratch(int from)
{
    for (int w = from; w < TG_MAX_THREADS; w++)
        for (int s = 0; s < TG_SCRATCH_COUNT; s++) {
            free(pool.scratch[w][s].ptr);
            pool.scratch[w][s].ptr = NULL;
            pool.scratch[w][s].size = 0;
        }
}

static void run_tasks(tg_task_fn fn, void *ctx, int64_t n_tasks, int worker)
{
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&pool.next_task, 1, memory_order_relaxed);
        if (t >= n_tasks)
            return;
        fn(ctx, t, worker);
    }
}

/* ---- polling ---------------------------------------------------------------- */

/* Call ready(arg) until it says yes or the poll time passes; true if it did. */
static bool poll_briefly(bool (*ready)(const void *), const void *arg)
{
    uint64_t deadline = tg_clock_ns() + poll_ns();
    for (unsigned i = 1;; i++) {
        if (ready(arg))
            return true;
        tg_spin_relax();
        if (i % 64 == 0 && tg_clock_ns() > deadline)
            return false;
    }
}

static bool no_worker_busy(const void *arg)
{
    (void)arg;
    return atomic_load_explicit(&pool.n_busy, memory_order_acquire) == 0;
}

static bool wake_seq_moved(const void *seen)
{
    return atomic_load_explicit(&pool.wake_seq, memory_order_acquire) != *(const uint_fast64_t *)seen;
}

/* The CPUs this process may run on: the online ones, or fewer when its
 * affinity mask (taskset, a container's cpuset) allows fewer. Threads that
 * poll for each other must each have a CPU of their own. */
static int online_cpus(void)
{
    static atomic_int cached;
    int n = atomic_load_explicit(&cached, memory_order_relaxed);
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
#if defined(__linux__) && defined(CPU_COUNT)
        cpu_set_t mask;
        if (sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) > 0 &&
            (c < 1 || CPU_COUNT(&mask) < c))
            c = CPU_COUNT(&mask);
#endif
        n = c < 1 ? 1 : c > 1 << 20 ? 1 << 20 : (int)c;
        atomic_store_explicit(&cached, n, memory_order_relaxed);
    }
    return n;
}
