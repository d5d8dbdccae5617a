/* Machine probes: the memory this process may use and a monotonic clock. */
#ifndef TG_PLATFORM_H
#define TG_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of physical memory of this machine (SIZE_MAX if unknown). */
TG_API size_t tg_physical_memory(void);

/* Bytes of memory this process may use: the least of the machine's
 * physical memory, the memory limit of its cgroup (v2 memory.max, v1
 * memory.limit_in_bytes, of its own group and of every parent) and its
 * RLIMIT_AS and RLIMIT_DATA. *what (may be NULL) names the limit that
 * decides, e.g. "the machine's memory" or "its cgroup's memory.max".
 * Tensor constructors and tg_recurrent_new refuse a larger allocation with
 * TG_ERR_NOMEM: the kernel overcommits, so such a malloc may succeed and the
 * process be killed (by the OOM killer, with no message) only when it
 * touches the memory. Read afresh at each call (a few small files). */
TG_API size_t tg_memory_limit(const char **what);

/* The cgroup part of tg_memory_limit, read from a /proc/self/cgroup file and
 * a cgroup mount point (tests pass a fake pair); SIZE_MAX when no limit. */
TG_API size_t tg_cgroup_memory_limit(const char *self_cgroup, const char *mount,
                                     const char **what);

/* Monotonic clock in nanoseconds. */
TG_API uint64_t tg_clock_ns(void);

#ifdef __cplusplus
}
#endif

#endif
