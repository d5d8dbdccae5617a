/* Private: a team of the pool's threads working through phases in order.
 *
 *     tg_team_run(phases, slices, threads, fn, ctx)
 *
 * runs fn(ctx, phase, slice, worker) for every phase in [0, phases) and
 * slice in [0, slices), phase after phase: a slice of phase p starts only
 * when every slice of the phases before it has finished. This is the shape
 * of a recurrent layer's time loop (a phase is a time step, a slice a
 * block of hidden units), which a fork and join per step would pay for in
 * wake-ups; here the team is started once and its members wait for each
 * other by polling a counter.
 *
 * Each member first takes its own slices of a phase (slice s belongs to
 * member s mod threads, so a slice's data stays in one core's caches from
 * phase to phase), then any slice still free: a member that starts late
 * (waking takes a while) or runs slowly on a busy host simply takes fewer,
 * and no member ever waits for a slice that no one has taken. What a slice computes must not depend on which worker
 * runs it: then results are the same for any thread count. The calling
 * thread always takes part; with threads <= 1 everything runs in order on
 * it. A member that waits polls for at most what the pool measures a
 * wake-up to cost (tg_threadpool_start_cost_ns) before it also yields the
 * processor between polls, and yields at once when the team has more
 * threads than the machine has CPUs. At most 64 slices run in parallel;
 * more run on the calling thread alone. */
#ifndef TG_TEAM_H
#define TG_TEAM_H

#include <stdint.h>

typedef void (*tg_team_fn)(void *ctx, int64_t phase, int64_t slice, int worker);

void tg_team_run(int64_t phases, int64_t slices, int threads, tg_team_fn fn, void *ctx);

/* Nanoseconds the members of all teams have spent waiting for each other
 * since the process started (summed over threads). */
uint64_t tg_team_waited_ns(void);

#endif
