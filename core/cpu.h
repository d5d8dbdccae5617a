/* The instruction set the kernels run on, and the caches they block for.
 *
 * One library runs on any x86-64: the GEMM micro-kernels, the vector math
 * and the fused gate passes are compiled once per instruction set (ISA),
 * and the best one the processor (and its operating system) supports is
 * chosen once, at first use:
 *
 *   TG_ISA_AVX512   AVX-512 F/BW/DQ/VL with FMA (x86-64-v4)
 *   TG_ISA_AVX2     AVX2 with FMA (x86-64-v3)
 *   TG_ISA_GENERIC  portable C (any processor, any architecture)
 *
 * The environment variable TG_ISA=avx512|avx2|generic forces one (an ISA
 * the machine cannot run is refused with a message on stderr, once, and
 * the best one is used instead). Within one ISA results are bit-identical
 * for any thread count; between ISAs they agree to rounding (AVX-512 and
 * AVX2 both use fused multiply-adds; the portable kernels round a product
 * and a sum separately). */
#ifndef TG_CPU_H
#define TG_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TG_ISA_GENERIC = 0, TG_ISA_AVX2 = 1, TG_ISA_AVX512 = 2, TG_ISA_COUNT = 3 } tg_isa;

/* The ISA in use (chosen at the first call). */
TG_API tg_isa tg_isa_active(void);
/* "avx512", "avx2", "generic" ("unknown" for anything else). */
TG_API const char *tg_isa_name(tg_isa isa);
/* Compiled into this library and runnable on this processor. */
TG_API bool tg_isa_supported(tg_isa isa);
/* Switch the kernels to `isa` (tests and benchmarks compare ISAs this way).
 * Fails with TG_ERR_ARG for an ISA this machine cannot run. Not to be called
 * while another thread computes. */
TG_API tg_status tg_isa_select(tg_isa isa);

/* Data cache sizes in bytes, as the kernels see them: the operating
 * system's figures for this processor, or conservative defaults (32 KiB
 * L1, 512 KiB L2) where it gives none. */
TG_API size_t tg_cache_l1d(void);
TG_API size_t tg_cache_l2(void);

#ifdef __cplusplus
}
#endif

#endif
