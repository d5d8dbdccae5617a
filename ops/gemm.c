/* Reference GEMM: correct for any strides, simple loops. */
#include "gemm.h"

#include "../core/iter.h"

#define DEFINE_GEMM(NAME, T)                                                                   \
    void NAME(int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t rsa, int64_t csa,  \
              const T *B, int64_t rsb, int64_t csb, T beta, T *C, int64_t rsc, int64_t csc)    \
    {                                                                                          \
        for (int64_t i = 0; i < M; i++) {                                                      \
            T *c = C + i * rsc;                                                                \
            for (int64_t j = 0; j < N; j++)                                                    \
                c[j * csc] = beta == 0 ? 0 : beta * c[j * csc];                                \
            for (int64_t k = 0; k < K; k++) {                                                  \
                T a = alpha * A[i * rsa + k * csa];                                            \
                const T *b = B + k * rsb;                                                      \
                for (int64_t j = 0; j < N; j++)                                                \
                    c[j * csc] += a * b[j * csb];                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_GEMM(tg_sgemm, float)
DEFINE_GEMM(tg_dgemm, double)

tg_status tg_gemm(double alpha, const tg_tensor *A, const tg_tensor *B, double beta, tg_tensor *C)
{
    if (!A || !B || !C)
        return tg_fail(TG_ERR_ARG, "tg_gemm: tensor is NULL");
    if (A->ndim != 2 || B->ndim != 2 || C->ndim != 2 || A->shape[1] != B->shape[0] ||
        C->shape[0] != A->shape[0] || C->shape[1] != B->shape[1]) {
        char a[64], b[64], c[64];
        return tg_fail(TG_ERR_SHAPE, "tg_gemm: shapes do not fit: %s @ %s -> %s",
                       tg_shape_str(A, a, sizeof a), tg_shape_str(B, b, sizeof b),
                       tg_shape_str(C, c, sizeof c));
    }
    if (A->dtype != B->dtype || A->dtype != C->dtype)
        return tg_fail(TG_ERR_DTYPE, "tg_gemm: dtypes differ");
    int64_t M = C->shape[0], N = C->shape[1], K = A->shape[1];
    if (A->dtype == TG_F32)
        tg_sgemm(M, N, K, (float)alpha, tg_tensor_base(A), A->strides[0], A->strides[1],
                 tg_tensor_base(B), B->strides[0], B->strides[1], (float)beta, tg_tensor_base(C),
                 C->strides[0], C->strides[1]);
    else
        tg_dgemm(M, N, K, alpha, tg_tensor_base(A), A->strides[0], A->strides[1],
                 tg_tensor_base(B), B->strides[0], B->strides[1], beta, tg_tensor_base(C),
                 C->strides[0], C->strides[1]);
    return TG_OK;
}
