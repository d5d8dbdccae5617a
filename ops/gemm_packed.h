/* Private: a right operand packed once and multiplied many times.
 *
 * A recurrent layer multiplies the same weights at every time step. Packed
 * once per forward (and once per backward) into the slivers the GEMM
 * kernels read, they cost nothing per step; tg_sgemm would pack them at
 * every call. The caller owns the memory and the threads: tg_packed_gemm
 * computes a range of C's columns on the calling thread, so that a
 * recurrent step can split its units across a team of threads.
 *
 * The packing belongs to the ISA active when it was made; switching the
 * ISA (tg_isa_select) between packing and use is not allowed. */
#ifndef TG_GEMM_PACKED_H
#define TG_GEMM_PACKED_H

#include <stddef.h>
#include <stdint.h>

#include "../core/tensor.h"
#include "gemm_kernels.h"

typedef struct {
    tg_dtype dtype;
    int64_t K, N;
    int nr;                          /* columns per sliver */
    const tg_gemm_kernels *kernels; /* the ISA's kernels it was packed for */
    void *data;                      /* ceil(N / nr) slivers of K x nr */
} tg_packed_b;

/* Bytes for B (K x N) packed for the active ISA (SIZE_MAX if that does not
 * fit in memory arithmetic). */
size_t tg_packed_b_bytes(tg_dtype dtype, int64_t K, int64_t N);
/* The sliver width: a column range given to tg_packed_gemm starts at a
 * multiple of it. */
int64_t tg_packed_b_align(tg_dtype dtype);
/* Pack B (K x N, any strides) into mem (tg_packed_b_bytes, 64-byte aligned). */
void tg_pack_b(tg_packed_b *p, tg_dtype dtype, int64_t K, int64_t N, const void *B,
               int64_t rsb, int64_t csb, void *mem);
/* The same in parts: describe the packing at mem, then fill columns j0 ..
 * j1 of it (j0 a multiple of tg_packed_b_align); threads may fill disjoint
 * column ranges at once. B is the whole matrix. */
void tg_packed_b_init(tg_packed_b *p, tg_dtype dtype, int64_t K, int64_t N, void *mem);
void tg_pack_b_columns(const tg_packed_b *p, int64_t j0, int64_t j1, const void *B,
                       int64_t rsb, int64_t csb);
/* C[0:M, j0:j1] = beta * C + alpha * A @ B[:, j0:j1] on the calling thread,
 * A row-major (M x K, row stride rsa), C row-major (row stride rsc); j0 is
 * a multiple of tg_packed_b_align. Always the kernels: each element is the
 * chain of multiply-adds that tg_sgemm / tg_dgemm compute whenever they use
 * their kernels too (they send a product of one column, or of at most 320
 * multiply-adds, to plain loops that sum in another order). */
void tg_packed_gemm(const tg_packed_b *p, int64_t M, int64_t j0, int64_t j1, double alpha,
                    const void *A, int64_t rsa, double beta, void *C, int64_t rsc);

#endif
