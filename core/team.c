/* A team of threads working through phases in order (see team.h). */
#include "team.h"

#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "platform.h"
#include "threadpool.h"
#include "spin.h"

enum { MAX_SLICES = 64 };

/* A slice's claim: the phase it was last taken in, plus one (so a slice
 * is free in phase p while its claim is p), on its own cache line. */
typedef struct {
    alignas(64) atomic_int_fast64_t phase;
} claim;

typedef struct {
    /* Finished slices and joined members, each on its own cache line:
     * every member writes `done` and polls it. */
    alignas(64) atomic_int_fast64_t done;
    alignas(64) atomic_int joined;
    claim claims[MAX_SLICES];
    int64_t phases, slices;
    int members;
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
        tg_spin_relax();
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

/* Run slice s of phase p if no one has taken it yet. */
static bool take(team *tm, int64_t p, int64_t s, int worker)
{
    int_fast64_t free_claim = p;
    if (!atomic_compare_exchange_strong_explicit(&tm->claims[s].phase, &free_claim, p + 1,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    tm->fn(tm->ctx, p, s, worker);
    atomic_fetch_add_explicit(&tm->done, 1, memory_order_release);
    return true;
}

/* A member takes its own slices of each phase first (slice s belongs to
 * member s mod members, so a slice's data tends to stay in one core's
 * caches from step to step), then any that are still free: a member that
 * is slow or starts late simply takes fewer. It starts at the phase in
 * progress when it joins. */
static void member(void *ctx, int64_t task, int worker)
{
    (void)task;
    team *tm = ctx;
    const int64_t S = tm->slices;
    const int me = atomic_fetch_add_explicit(&tm->joined, 1, memory_order_relaxed) % tm->members;
    for (int64_t p = atomic_load_explicit(&tm->done, memory_order_acquire) / S; p < tm->phases;
         p++) {
        wait_for(tm, p * S);
        for (int64_t s = me; s < S; s += tm->members)
            take(tm, p, s, worker);
        for (int64_t s = 0; s < S; s++)
            take(tm, p, s, worker);
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
    if (threads <= 1 || slices > MAX_SLICES) {
        int worker = tg_threadpool_enter();
        for (int64_t p = 0; p < phases; p++)
            for (int64_t s = 0; s < slices; s++)
                fn(ctx, p, s, worker);
        tg_threadpool_leave();
        return;
    }
    team tm = {.phases = phases, .slices = slices, .members = threads, .fn = fn, .ctx = ctx,
               .may_spin = tg_threadpool_may_spin(threads),
               .spin_ns = tg_threadpool_start_cost_ns()};
    atomic_init(&tm.done, 0);
    atomic_init(&tm.joined, 0);
    for (int64_t s = 0; s < slices; s++)
        atomic_init(&tm.claims[s].phase, 0);
    tg_parallel_for(threads, member, &tm);
}
