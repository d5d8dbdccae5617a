/* Machine probes: the size of physical memory and a monotonic clock. */
#ifndef TG_PLATFORM_H
#define TG_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of physical memory of this machine (SIZE_MAX if unknown). Tensor
 * constructors refuse a larger allocation with TG_ERR_NOMEM: the kernel
 * overcommits, so such a malloc may succeed and the process be killed only
 * when it touches the memory. */
TG_API size_t tg_physical_memory(void);

/* Monotonic clock in nanoseconds. */
TG_API uint64_t tg_clock_ns(void);

#ifdef __cplusplus
}
#endif

#endif
