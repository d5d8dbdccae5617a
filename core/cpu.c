/* Instruction set and cache sizes (see cpu.h). */
#include "cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isa.h"

static const char *const ISA_NAMES[TG_ISA_COUNT] = {"generic", "avx2", "avx512"};

static atomic_int active = -1;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static bool cpu_runs(tg_isa isa)
{
#if TG_X86_ISAS
    __builtin_cpu_init();
    switch (isa) {
    case TG_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
    case TG_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default:
        break;
    }
#endif
    return isa == TG_ISA_GENERIC;
}

bool tg_isa_supported(tg_isa isa)
{
    return (int)isa >= 0 && isa < TG_ISA_COUNT && cpu_runs(isa);
}

const char *tg_isa_name(tg_isa isa)
{
    return (int)isa >= 0 && isa < TG_ISA_COUNT ? ISA_NAMES[isa] : "unknown";
}

/* The best ISA, unless TG_ISA names another one this machine runs. */
static void choose(void)
{
    tg_isa best = TG_ISA_GENERIC;
    for (int i = TG_ISA_COUNT - 1; i > 0; i--)
        if (tg_isa_supported((tg_isa)i)) {
            best = (tg_isa)i;
            break;
        }
    const char *env = getenv("TG_ISA");
    if (env && *env) {
        int wanted = -1;
        for (int i = 0; i < TG_ISA_COUNT; i++)
            if (strcmp(env, ISA_NAMES[i]) == 0)
                wanted = i;
        if (wanted >= 0 && tg_isa_supported((tg_isa)wanted))
            best = (tg_isa)wanted;
        else
            fprintf(stderr, "tapegrad: TG_ISA=%s is not %s; using %s\n", env,
                    wanted < 0 ? "one of avx512, avx2, generic" : "supported by this processor",
                    ISA_NAMES[best]);
    }
    atomic_store(&active, (int)best);
}

tg_isa tg_isa_active(void)
{
    int isa = atomic_load_explicit(&active, memory_order_relaxed);
    if (isa < 0) {
        pthread_once(&choose_once, choose);
        isa = atomic_load(&active);
    }
    return (tg_isa)isa;
}

tg_status tg_isa_select(tg_isa isa)
{
    if (!tg_isa_supported(isa))
        return tg_fail(TG_ERR_ARG, "tg_isa_select: %s %s", tg_isa_name(isa),
                       (int)isa >= 0 && isa < TG_ISA_COUNT
                           ? "is not supported by this processor or this build"
                           : "is not an instruction set");
    pthread_once(&choose_once, choose); /* so that a later first use keeps the choice */
    atomic_store(&active, (int)isa);
    return TG_OK;
}

/* ---- caches ------------------------------------------------------------------ */

static size_t cache_size(int name, size_t fallback)
{
    long bytes = -1;
#ifdef _SC_LEVEL1_DCACHE_SIZE
    bytes = sysconf(name);
#else
    (void)name;
#endif
    /* Sanity bounds: figures outside them are taken as "unknown". */
    return bytes >= 4096 && bytes <= (1L << 30) ? (size_t)bytes : fallback;
}

size_t tg_cache_l1d(void)
{
#ifdef _SC_LEVEL1_DCACHE_SIZE
    return cache_size(_SC_LEVEL1_DCACHE_SIZE, 32 * 1024);
#else
    return cache_size(0, 32 * 1024);
#endif
}

size_t tg_cache_l2(void)
{
#ifdef _SC_LEVEL2_CACHE_SIZE
    return cache_size(_SC_LEVEL2_CACHE_SIZE, 512 * 1024);
#else
    return cache_size(0, 512 * 1024);
#endif
}
