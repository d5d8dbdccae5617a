/* Machine probes: the size of physical memory and a monotonic clock. */
#ifndef TG_PLATFORM_H
#define TG_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of physical memory of this machine (SIZE_MAX if unknown). Tensor
 * constructors refuse a larger allocation with TG_ERR_NOMEM: the kernel
 * overcommits, so such a malloc may succeed and the process be killed only
 * when it touches the memory. */
size_t tg_physical_memory(void);

/* Monotonic clock in nanoseconds. */
uint64_t tg_clock_ns(void);

#endif
