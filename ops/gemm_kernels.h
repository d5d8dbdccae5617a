/* GEMM building blocks: micro-kernels and packing (internal to ops/gemm.c).
 *
 * A micro-kernel computes one MR x NR tile of C from an MR x kc sliver of A
 * and a kc x NR sliver of B, keeping the whole tile in registers:
 *
 *     for k < kc:   C[i, 0:NR] += A[i, k] * B[k, 0:NR]     (i < MR)
 *
 * B is read along its rows as vectors, A is broadcast one element at a time.
 * Each C element is one chain of fused multiply-adds in k order, so its value
 * does not depend on where its tile sits; that is what makes results
 * bit-identical for any thread count.
 *
 * Tile sizes are chosen at build time from the instruction set:
 *     AVX-512F        f32 12 x 32, f64 12 x 16   (24 of 32 zmm registers)
 *     AVX2 + FMA      f32  6 x 16, f64  6 x  8   (12 of 16 ymm registers)
 *     portable C      f32  4 x  8, f64  4 x  4
 *
 * Operands. A sliver is either packed (element (i, k) at a[k*MR + i], rows
 * past mr zero) or read in place (a[i*ars + k*aks], all MR rows valid). A B
 * sliver is either packed (b[k*NR + j], columns past nr zero) or read in
 * place with unit column stride (b[k*bks + j]; columns past nr are masked
 * and never touched). C has unit column stride; only rows < mr and columns
 * < nr are read or written. */
#ifndef TG_GEMM_KERNELS_H
#define TG_GEMM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__AVX512F__)
#define TG_GEMM_ISA "avx512"
#define TG_GEMM_SMR 12
#define TG_GEMM_SNR 32
#define TG_GEMM_DMR 12
#define TG_GEMM_DNR 16
#elif defined(__AVX2__) && defined(__FMA__)
#define TG_GEMM_ISA "avx2"
#define TG_GEMM_SMR 6
#define TG_GEMM_SNR 16
#define TG_GEMM_DMR 6
#define TG_GEMM_DNR 8
#else
#define TG_GEMM_ISA "portable"
#define TG_GEMM_SMR 4
#define TG_GEMM_SNR 8
#define TG_GEMM_DMR 4
#define TG_GEMM_DNR 4
#endif

/* True when the kernels round a*b+c once (FMA); the scalar update of C in
 * ops/gemm.c must then do the same so that every element of C gets the
 * same arithmetic whichever path stores it. */
#if defined(__FMA__)
#define TG_GEMM_FUSED 1
#else
#define TG_GEMM_FUSED 0
#endif

/* One micro-tile:  C = (first ? beta*C : C) + alpha * A @ B  (beta == 0: C
 * is not read). */
typedef struct {
    int64_t kc;
    const void *a;
    int64_t ars, aks; /* in place only */
    const void *b;
    int64_t bks; /* in place only */
    void *c;
    int64_t rsc;
    int mr, nr;
    int first;
    double alpha, beta;
} tg_gemm_tile;

typedef void (*tg_gemm_kernel_fn)(const tg_gemm_tile *t);

/* Copy A[0:mc, 0:kc] (strides rsa, csa) into MR-row slivers, and
 * B[0:kc, 0:nc] (strides rsb, csb) into NR-column slivers, zero-padded. */
typedef void (*tg_gemm_pack_fn)(int64_t rows, int64_t cols, const void *src, int64_t rs,
                                int64_t cs, void *dst);

/* y[i*rsy] = alpha * A[i, :] . x (+ beta * y[i*rsy]; beta == 0: y not read)
 * for i < M, with A row-major (row stride rsa) and x contiguous. */
typedef void (*tg_gemv_fn)(int64_t M, int64_t K, double alpha, const void *A, int64_t rsa,
                           const void *x, double beta, void *y, int64_t rsy);
void tg_sgemv(int64_t M, int64_t K, double alpha, const void *A, int64_t rsa, const void *x,
              double beta, void *y, int64_t rsy);
void tg_dgemv(int64_t M, int64_t K, double alpha, const void *A, int64_t rsa, const void *x,
              double beta, void *y, int64_t rsy);

/* kernel[a_in_place][b_in_place] */
extern const tg_gemm_kernel_fn tg_sgemm_kernels[2][2];
extern const tg_gemm_kernel_fn tg_dgemm_kernels[2][2];

void tg_sgemm_pack_a(int64_t mc, int64_t kc, const void *a, int64_t rsa, int64_t csa, void *dst);
void tg_sgemm_pack_b(int64_t kc, int64_t nc, const void *b, int64_t rsb, int64_t csb, void *dst);
void tg_dgemm_pack_a(int64_t mc, int64_t kc, const void *a, int64_t rsa, int64_t csa, void *dst);
void tg_dgemm_pack_b(int64_t kc, int64_t nc, const void *b, int64_t rsb, int64_t csb, void *dst);

#endif
