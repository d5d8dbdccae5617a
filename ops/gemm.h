/* General matrix multiply on strided operands: the performance core.
 *
 *     C = beta * C + alpha * A @ B        A (M,K), B (K,N), C (M,N)
 *
 * Every operand is given by a base pointer, a row stride and a column stride
 * (in elements), so transposes and time slices x[:, :, t] need no copy.
 * With beta == 0, C is only written (it may hold garbage, even NaN).
 * C must not overlap A or B, and no two elements of C may share memory.
 * Results are bit-identical for any thread count. */
#ifndef TG_GEMM_H
#define TG_GEMM_H

#include <stdint.h>

#include "../core/tensor.h"
#include "../core/api.h"

#ifdef __cplusplus
extern "C" {
#endif

TG_API void tg_sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t rsa,
              int64_t csa, const float *B, int64_t rsb, int64_t csb, float beta, float *C,
              int64_t rsc, int64_t csc);
TG_API void tg_dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t rsa,
              int64_t csa, const double *B, int64_t rsb, int64_t csb, double beta, double *C,
              int64_t rsc, int64_t csc);

/* The textbook triple loop, with a double accumulator: the definition the
 * optimised paths are tested against (slow; no checks). */
TG_API void tg_gemm_reference(tg_dtype dtype, int64_t M, int64_t N, int64_t K, double alpha,
                       const void *A, int64_t rsa, int64_t csa, const void *B, int64_t rsb,
                       int64_t csb, double beta, void *C, int64_t rsc, int64_t csc);

/* The same on 2-D tensor views (checks shapes and dtypes). */
TG_API tg_status tg_gemm(double alpha, const tg_tensor *A, const tg_tensor *B, double beta, tg_tensor *C);

#ifdef __cplusplus
}
#endif

#endif
