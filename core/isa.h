/* Private: how code compiled once per instruction set is named and found.
 *
 * A source file that holds kernels (ops/gemm_kernels.c, ops/vmath.c,
 * nn/fused_gates.c) is compiled by the Makefile once per ISA, with
 * -DTG_ISA_BUILD=<isa> and that ISA's -march, into objects that each export
 * one table named TG_ISA_TABLE(prefix): e.g. tg_gemm_table_avx512. The
 * callers pick the table of tg_isa_active() (core/cpu.h).
 *
 * The x86 ISAs exist when the compiler targets x86-64 with GCC or Clang
 * (the Makefile builds their objects exactly then); elsewhere only the
 * generic tables do. */
#ifndef TG_ISA_H
#define TG_ISA_H

#include "cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TG_X86_ISAS 1
#else
#define TG_X86_ISAS 0
#endif

#define TG_ISA_CAT_(a, b) a##_##b
#define TG_ISA_CAT(a, b) TG_ISA_CAT_(a, b)
/* In a per-ISA object: the name of its exported table. */
#define TG_ISA_TABLE(prefix) TG_ISA_CAT(prefix, TG_ISA_BUILD)

/* Declare a table type's three instances and pick the active one:
 *     TG_ISA_TABLES(const gemm_table, tg_gemm_table)
 *     ... tg_isa_pick(tg_gemm_table) */
#if TG_X86_ISAS
#define TG_ISA_DECLARE(type, prefix)                                                          \
    extern type TG_ISA_CAT(prefix, generic), TG_ISA_CAT(prefix, avx2),                        \
        TG_ISA_CAT(prefix, avx512)
#define TG_ISA_PICK(prefix)                                                                   \
    (tg_isa_active() == TG_ISA_AVX512 ? &TG_ISA_CAT(prefix, avx512)                           \
     : tg_isa_active() == TG_ISA_AVX2 ? &TG_ISA_CAT(prefix, avx2)                             \
                                      : &TG_ISA_CAT(prefix, generic))
#else
#define TG_ISA_DECLARE(type, prefix) extern type TG_ISA_CAT(prefix, generic)
#define TG_ISA_PICK(prefix) (&TG_ISA_CAT(prefix, generic))
#endif

#endif
