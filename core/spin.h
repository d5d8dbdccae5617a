/* Private: one turn of a busy wait (core/threadpool.c, core/team.c).
 *
 * Not the PAUSE instruction. Under KVM a virtual CPU that runs PAUSE in a
 * tight loop is taken for a spinning lock waiter and descheduled (pause-
 * loop exiting): measured here, a polling worker then took milliseconds
 * instead of a microsecond to see its next job. A compiler barrier keeps
 * the poll a plain load in a loop, which the hypervisor leaves alone. */
#ifndef TG_SPIN_H
#define TG_SPIN_H

#if defined(__GNUC__) || defined(__clang__)
static inline void tg_spin_relax(void) { __asm__ __volatile__("" ::: "memory"); }
#else
static inline void tg_spin_relax(void) {}
#endif

#endif
