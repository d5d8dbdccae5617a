/* The machine a benchmark ran on, for examples/bench.c: the processor's
 * name and family/model, the kernel instruction set in use, the cache
 * sizes the kernels block for, and the measured peak rate of fused
 * multiply-adds (FMA) per dtype and thread count, against which every
 * recurrent line gives pct_peak.
 *
 * The peak is measured, not looked up: each thread runs independent
 * chains of multiply-adds on registers (no memory traffic) with the
 * vector width of the ISA in use, enough of them to hide the latency, for
 * about 50 ms; all threads run at once, so the figure for 2 threads
 * includes whatever the cores share. */
#ifndef TG_BENCH_MACHINE_H
#define TG_BENCH_MACHINE_H

#include <stdio.h>
#include <string.h>

#include "tapegrad.h"
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_X86 1
#else
#define BENCH_X86 0
#endif

/* "model name", "cpu family" and "model" of /proc/cpuinfo (empty if unknown). */
static void cpu_description(char *name, size_t name_size, int *family, int *model)
{
    snprintf(name, name_size, "unknown");
    *family = *model = -1;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *value = colon + 1 + (colon[1] == ' ');
        value[strcspn(value, "\n")] = '\0';
        if (strncmp(line, "model name", 10) == 0)
            snprintf(name, name_size, "%s", value);
        else if (strncmp(line, "cpu family", 10) == 0 && *family < 0)
            *family = atoi(value);
        else if (strncmp(line, "model", 5) == 0 && (line[5] == '\t' || line[5] == ' ') &&
                 *model < 0)
            *model = atoi(value);
        if (line[0] == '\n')
            break; /* the first processor is enough */
    }
    if (f)
        fclose(f);
}

/* ---- the FMA probe: 12 chains, `iters` rounds; returns a value so the
 * work cannot be dropped. One function per ISA and dtype. ---- */

enum { PROBE_CHAINS = 12 };

/* Twelve named accumulators (an array would live in memory and wait on
 * store forwarding); TARGET enables the ISA for this function only. */
#define PROBE_FN(NAME, TARGET, V, SET1, FMA, ADD, SUM)                                      \
    TARGET static double NAME(long iters)                                                  \
    {                                                                                      \
        const V mul = SET1(0.999999), add = SET1(1e-7);                                    \
        V a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4), a5 = SET1(5), a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9), a10 = SET1(10), a11 = SET1(11);                                                                \
        for (long i = 0; i < iters; i++) {                                                 \
            a0 = FMA(a0, mul, add); a1 = FMA(a1, mul, add); a2 = FMA(a2, mul, add); a3 = FMA(a3, mul, add); a4 = FMA(a4, mul, add); a5 = FMA(a5, mul, add); a6 = FMA(a6, mul, add); a7 = FMA(a7, mul, add); a8 = FMA(a8, mul, add); a9 = FMA(a9, mul, add); a10 = FMA(a10, mul, add); a11 = FMA(a11, mul, add);                                                               \
        }                                                                                  \
        V s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));           \
        s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                       \
        return SUM(s);                                                                     \
    }

#if BENCH_X86
#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))
AVX2 static inline double first_f32(__m256 v) { return _mm_cvtss_f32(_mm256_castps256_ps128(v)); }
AVX2 static inline double first_f64(__m256d v) { return _mm_cvtsd_f64(_mm256_castpd256_pd128(v)); }
PROBE_FN(probe_avx512_f32, AVX512, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
         _mm512_reduce_add_ps)
PROBE_FN(probe_avx512_f64, AVX512, __m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd,
         _mm512_reduce_add_pd)
PROBE_FN(probe_avx2_f32, AVX2, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, first_f32)
PROBE_FN(probe_avx2_f64, AVX2, __m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd, first_f64)
#endif

/* Generic: what the portable kernels do, a multiply then an add, on plain
 * floats or doubles (compilers vectorise it as they can). */
#define GENERIC_SET1_F32(x) ((float)(x))
#define GENERIC_SET1_F64(x) ((double)(x))
#define GENERIC_MULADD(a, b, c) ((a) * (b) + (c))
#define GENERIC_ADD(a, b) ((a) + (b))
#define GENERIC_SUM(x) ((double)(x))
PROBE_FN(probe_generic_f32, , float, GENERIC_SET1_F32, GENERIC_MULADD, GENERIC_ADD, GENERIC_SUM)
PROBE_FN(probe_generic_f64, , double, GENERIC_SET1_F64, GENERIC_MULADD, GENERIC_ADD, GENERIC_SUM)

/* Lanes of one vector of the ISA, and its probe. */
static int probe_lanes(tg_isa isa, tg_dtype dtype)
{
    int bytes = isa == TG_ISA_AVX512 ? 64 : isa == TG_ISA_AVX2 ? 32 : (int)tg_dtype_size(dtype);
    return bytes / (int)tg_dtype_size(dtype);
}

static double run_probe(tg_isa isa, tg_dtype dtype, long iters)
{
#if BENCH_X86
    if (isa == TG_ISA_AVX512)
        return dtype == TG_F32 ? probe_avx512_f32(iters) : probe_avx512_f64(iters);
    if (isa == TG_ISA_AVX2)
        return dtype == TG_F32 ? probe_avx2_f32(iters) : probe_avx2_f64(iters);
#endif
    return dtype == TG_F32 ? probe_generic_f32(iters) : probe_generic_f64(iters);
}

typedef struct {
    tg_isa isa;
    tg_dtype dtype;
    long iters;
    volatile double sink;
} probe_job;

static void probe_task(void *ctx, int64_t task, int worker)
{
    (void)task;
    (void)worker;
    probe_job *p = ctx;
    p->sink = run_probe(p->isa, p->dtype, p->iters);
}

/* GFLOP/s of `threads` threads all running the probe of the ISA in use.
 * The iteration count is first sized on one thread to last ~50 ms. */
static double fma_peak(tg_dtype dtype, int threads)
{
    probe_job p = {tg_isa_active(), dtype, 1000, 0};
    double flops_per_iter = 2.0 * PROBE_CHAINS * probe_lanes(p.isa, dtype);
    for (;;) {
        uint64_t t0 = tg_clock_ns();
        p.sink = run_probe(p.isa, dtype, p.iters);
        double s = 1e-9 * (double)(tg_clock_ns() - t0);
        if (s > 0.01 || p.iters > (1L << 40))
            break;
        p.iters *= 4;
    }
    p.iters *= 5; /* ~50 ms */
    int saved = tg_get_num_threads();
    if (tg_set_num_threads(threads) != TG_OK)
        return 0;
    tg_parallel_for(threads, probe_task, &p); /* starts the workers */
    uint64_t t0 = tg_clock_ns();
    tg_parallel_for(threads, probe_task, &p);
    double s = 1e-9 * (double)(tg_clock_ns() - t0);
    tg_set_num_threads(saved);
    return flops_per_iter * (double)p.iters * threads / s * 1e-9;
}

#endif
