/* Machine probes (see platform.h). */
#include "platform.h"

#include <time.h>
#include <unistd.h>

#include "error.h"

size_t tg_physical_memory(void)
{
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t bytes;
    if (pages > 0 && page > 0 && !tg_mul_overflows((size_t)pages, (size_t)page, &bytes))
        return bytes;
#endif
    return SIZE_MAX;
}

uint64_t tg_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
