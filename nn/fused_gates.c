/* The gate math of the fused recurrent engine for one instruction set (see
 * fused_internal.h for the layout, fused_gates.inc for the math and its
 * derivation). The Makefile compiles this file once per ISA, like
 * ops/gemm_kernels.c; each object exports tg_gates_table_<isa>, and its
 * activations call the vector math of the same ISA. */
#include <stddef.h>

#include "../ops/each.h"
#include "../ops/vmath_kernels.h"
#include "fused_internal.h"

#ifndef TG_ISA_BUILD
#error "compile with -DTG_ISA_BUILD=<isa> -DTG_ISA_LEVEL=<level> (see the Makefile)"
#endif

#define T float
#define NAME(f) f##_f32
#define VM(f) TG_ISA_TABLE(tg_vmath_table).f##_f32
#include "fused_gates.inc"
#undef T
#undef NAME
#undef VM

#define T double
#define NAME(f) f##_f64
#define VM(f) TG_ISA_TABLE(tg_vmath_table).f##_f64
#include "fused_gates.inc"
#undef T
#undef NAME
#undef VM

#define BOTH(f) {f##_f32, f##_f64}

const tg_gates_table TG_ISA_TABLE(tg_gates_table) = {
    .pass = {[CELL_RNN] = {BOTH(rnn_forward), BOTH(rnn_backward)},
             [CELL_LSTM] = {BOTH(lstm_forward), BOTH(lstm_backward)},
             [CELL_GRU] = {BOTH(gru_forward), BOTH(gru_backward)},
             [CELL_GRU_RESET_FIRST] = {BOTH(gru_reset_first_forward),
                                       BOTH(gru_reset_first_backward)}},
    .reset_first_stage = {BOTH(gru_reset_first_gates), BOTH(gru_reset_grad)},
};
