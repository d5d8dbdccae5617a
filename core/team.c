/* A team of threads working through phases in order (see team.h). */
#include "team.h"

#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "platform.h"
#include "threadpool.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

typedef struct {
    /* Taken and finished slices, each on its own cache line: every member
     * writes both, and polls `done`. */
    alignas(64) atomic_int_fast64_t next;
    alignas(64) atomic_int_fast64_t done;
    alignas(64) int64_t phases, slices;
    tg_team_fn fn;
    void *ctx;
    bool may_spin;
    uint64_t spin_ns;
} team;

static atomic_uint_fast64_t waited_ns;

uint64_t tg_team_waited_ns(void) { return atomic_load_explicit(&waited_ns, memory_order_relaxed); }

/* Wait until `done` reaches `target` (every slice before it finished). */
static void wait_for(const team *tm, int64_t target)
{
    if (atomic_load_explicit(&tm->done, memory_order_acquire) >= target)
        return;
    uint64_t first = tg_clock_ns(), start = 0;
    for (unsigned i = 1; atomic_load_explicit(&tm->done, memory_order_acquire) < target; i++) {
        if (!tm->may_spin) {
            sched_yield();
            continue;
        }
        cpu_relax();
        if (i % 256 == 0) {
            uint64_t now = tg_clock_ns();
            if (!start)
                start = now;
            else if (now - start > tm->spin_ns)
                sched_yield();
        }
    }
    atomic_fetch_add_explicit(&waited_ns, tg_clock_ns() - first, memory_order_relaxed);
}

static void member(void *ctx, int64_t task, int worker)
{
    (void)task;
    team *tm = ctx;
    const int64_t total = tm->phases * tm->slices;
    for (;;) {
        int64_t id = atomic_fetch_add_explicit(&tm->next, 1, memory_order_relaxed);
        if (id >= total)
            return;
        int64_t phase = id / tm->slices;
        wait_for(tm, phase * tm->slices);
        tm->fn(tm->ctx, phase, id % tm->slices, worker);
        atomic_fetch_add_explicit(&tm->done, 1, memory_order_release);
    }
}

void tg_team_run(int64_t phases, int64_t slices, int threads, tg_team_fn fn, void *ctx)
{
    if (phases <= 0 || slices <= 0)
        return;
    if (threads > tg_get_num_threads())
        threads = tg_get_num_threads();
    if (threads > slices)
        threads = (int)slices;
    if (threads <= 1) {
        int worker = tg_threadpool_enter();
        for (int64_t p = 0; p < phases; p++)
            for (int64_t s = 0; s < slices; s++)
                fn(ctx, p, s, worker);
        tg_threadpool_leave();
        return;
    }
    team tm = {.phases = phases, .slices = slices, .fn = fn, .ctx = ctx,
               .may_spin = tg_threadpool_may_spin(threads),
               .spin_ns = tg_threadpool_start_cost_ns()};
    atomic_init(&tm.next, 0);
    atomic_init(&tm.done, 0);
    tg_parallel_for(threads, member, &tm);
}
