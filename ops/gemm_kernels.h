/* GEMM building blocks, one set per instruction set (private to ops/gemm.c
 * and the fused recurrent engine).
 *
 * A micro-kernel computes one MR x NR tile of C from an MR x kc sliver of A
 * and a kc x NR sliver of B, keeping the whole tile in registers:
 *
 *     for k < kc:   C[i, 0:NR] += A[i, k] * B[k, 0:NR]     (i < MR)
 *
 * B is read along its rows as vectors, A is broadcast one element at a time.
 * Each C element is one chain of multiply-adds in k order, so its value
 * does not depend on where its tile sits or which kernel computes it; that
 * is what makes results bit-identical for any thread count.
 *
 * Each ISA has kernels for three row counts (TG_GEMM_CLASSES), largest
 * first, so that the last rows of a block cost what they compute instead
 * of a whole tile (m = 64 rows of a recurrent step are 5 x 12 + 4):
 *     AVX-512   f32 12/8/4 x 32, f64 12/8/4 x 16   (24 of 32 zmm registers)
 *     AVX2+FMA  f32  6/4/2 x 16, f64  6/4/2 x  8   (12 of 16 ymm registers)
 *     generic   f32  4/4/4 x  8, f64  4/4/4 x  4
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

#include "../core/isa.h"

enum { TG_GEMM_CLASSES = 3, TG_GEMM_MAX_TILE = 12 * 32 };

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

/* Copy A[0:rows, 0:kc] (strides rsa, csa) into slivers of mr rows, and
 * B[0:kc, 0:cols] (strides rsb, csb) into slivers of NR columns, each
 * zero-padded. */
typedef void (*tg_gemm_pack_a_fn)(int64_t rows, int64_t kc, const void *src, int64_t rs,
                                  int64_t cs, void *dst, int mr);
typedef void (*tg_gemm_pack_b_fn)(int64_t kc, int64_t cols, const void *src, int64_t rs,
                                  int64_t cs, void *dst);

/* y[i*rsy] = alpha * A[i, :] . x (+ beta * y[i*rsy]; beta == 0: y not read)
 * for i < M, with A row-major (row stride rsa) and x contiguous. */
typedef void (*tg_gemv_fn)(int64_t M, int64_t K, double alpha, const void *A, int64_t rsa,
                           const void *x, double beta, void *y, int64_t rsy);

/* The store of a tile computed apart (for a C with non-unit column
 * stride): mode 0: C = alpha*t; 1: C = alpha*t + beta*C; 2: C = alpha*t +
 * C, rounded as the kernels round (one rounding where they use FMA). */
typedef void (*tg_gemm_update_fn)(int mr, int nr, const void *tile, int64_t tile_rs,
                                  double alpha, double beta, int mode, void *C, int64_t rsc,
                                  int64_t csc);

/* dst[j*ds + i] = src[i*ss + j] (add != 0: +=) for i < rows, j < cols: a
 * transpose with contiguous rows on both sides, in register blocks. The
 * sequences (n, m, T_x) of the fused recurrent layers move in and out of
 * their workspace this way. */
typedef void (*tg_transpose_fn)(int64_t rows, int64_t cols, const void *src, int64_t ss,
                                void *dst, int64_t ds, int add);

/* Everything of one dtype on one ISA. */
typedef struct {
    int mr[TG_GEMM_CLASSES]; /* rows of each kernel class, largest first */
    int nr;
    tg_gemm_kernel_fn kernel[TG_GEMM_CLASSES][2][2]; /* [class][a in place][b in place] */
    tg_gemm_pack_a_fn pack_a;
    tg_gemm_pack_b_fn pack_b;
    tg_gemv_fn gemv;
    tg_gemm_update_fn update;
    tg_transpose_fn transpose;
} tg_gemm_kernels;

typedef struct {
    const char *isa;
    tg_gemm_kernels f32, f64;
} tg_gemm_table;

TG_ISA_DECLARE(const tg_gemm_table, tg_gemm_table);

/* The kernels of the active ISA. */
static inline const tg_gemm_table *tg_gemm_active(void) { return TG_ISA_PICK(tg_gemm_table); }

#endif
