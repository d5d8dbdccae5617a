/* GEMM micro-kernels and packing routines (see gemm_kernels.h).
 *
 * The instruction set is fixed at build time (-march): AVX-512F, else AVX2
 * with FMA, else portable C that any compiler vectorises as it can. The
 * SIMD kernels share one template, gemm_simd.inc, instantiated per dtype
 * with a small set of vector macros. */
#include "gemm_kernels.h"

#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define TG_ROWS4(X) X(0) X(1) X(2) X(3)
#define TG_ROWS6(X) TG_ROWS4(X) X(4) X(5)
#define TG_ROWS12(X) TG_ROWS6(X) X(6) X(7) X(8) X(9) X(10) X(11)

/* ---- AVX-512 ------------------------------------------------------------- */
#if defined(__AVX512F__)

static inline __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}
static inline __mmask8 mask8(int n)
{
    return n >= 8 ? (__mmask8)0xff : n <= 0 ? (__mmask8)0 : (__mmask8)((1u << n) - 1);
}

#define T float
#define V __m512
#define VL 16
#define MR TG_GEMM_SMR
#define NR TG_GEMM_SNR
#define ROWS TG_ROWS12
#define MASK __mmask16
#define V_MASK(n) mask16(n)
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_STOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUM(v) _mm512_reduce_add_ps(v)
#define KERNEL(x) skernel_##x
#include "gemm_simd.inc"
#undef T
#undef V
#undef VL
#undef MR
#undef NR
#undef MASK
#undef V_MASK
#undef V_ZERO
#undef V_SET1
#undef V_LOAD
#undef V_LOADM
#undef V_STORE
#undef V_STOREM
#undef V_FMA
#undef V_MUL
#undef V_ADD
#undef V_SUM
#undef KERNEL

#define T double
#define V __m512d
#define VL 8
#define MR TG_GEMM_DMR
#define NR TG_GEMM_DNR
#define MASK __mmask8
#define V_MASK(n) mask8(n)
#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_LOAD(p) _mm512_loadu_pd(p)
#define V_LOADM(p, m) _mm512_maskz_loadu_pd(m, p)
#define V_STORE(p, v) _mm512_storeu_pd(p, v)
#define V_STOREM(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_MUL(a, b) _mm512_mul_pd(a, b)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_SUM(v) _mm512_reduce_add_pd(v)
#define KERNEL(x) dkernel_##x
#include "gemm_simd.inc"

/* ---- AVX2 + FMA ------------------------------------------------------------ */
#elif defined(__AVX2__) && defined(__FMA__)

/* Lane masks as integer vectors (all ones in lanes < n), for vmaskmov. */
static inline __m256i mask_ps(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i mask_pd(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline float sum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline double sum_pd(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

#define T float
#define V __m256
#define VL 8
#define MR TG_GEMM_SMR
#define NR TG_GEMM_SNR
#define ROWS TG_ROWS6
#define MASK __m256i
#define V_MASK(n) mask_ps(n)
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADM(p, m) _mm256_maskload_ps(p, m)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_STOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUM(v) sum_ps(v)
#define KERNEL(x) skernel_##x
#include "gemm_simd.inc"
#undef T
#undef V
#undef VL
#undef MR
#undef NR
#undef MASK
#undef V_MASK
#undef V_ZERO
#undef V_SET1
#undef V_LOAD
#undef V_LOADM
#undef V_STORE
#undef V_STOREM
#undef V_FMA
#undef V_MUL
#undef V_ADD
#undef V_SUM
#undef KERNEL

#define T double
#define V __m256d
#define VL 4
#define MR TG_GEMM_DMR
#define NR TG_GEMM_DNR
#define MASK __m256i
#define V_MASK(n) mask_pd(n)
#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_LOADM(p, m) _mm256_maskload_pd(p, m)
#define V_STORE(p, v) _mm256_storeu_pd(p, v)
#define V_STOREM(p, m, v) _mm256_maskstore_pd(p, m, v)
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_MUL(a, b) _mm256_mul_pd(a, b)
#define V_ADD(a, b) _mm256_add_pd(a, b)
#define V_SUM(v) sum_pd(v)
#define KERNEL(x) dkernel_##x
#include "gemm_simd.inc"

/* ---- portable C -------------------------------------------------------------- */
#else

/* Four rows of the tile as small local arrays: compilers keep them in
 * vector registers and vectorise the fixed-length loops over j with
 * whatever SIMD the target has. Multiply and add stay separate (-std=c11
 * does not contract them). */
_Static_assert(TG_GEMM_SMR == 4 && TG_GEMM_DMR == 4, "the portable kernel has four rows");
#define TG_PORTABLE_KERNEL(NAME, T, NR, a_in_place, b_in_place)                              \
    static void NAME(const tg_gemm_tile *t)                                                  \
    {                                                                                        \
        const T *a = t->a, *b = t->b;                                                        \
        const int64_t ars = a_in_place ? t->ars : 1, aks = a_in_place ? t->aks : 4;          \
        const int64_t bks = b_in_place ? t->bks : NR;                                        \
        const int nb = b_in_place ? t->nr : NR;                                              \
        T c0[NR] = {0}, c1[NR] = {0}, c2[NR] = {0}, c3[NR] = {0};                            \
        for (int64_t k = 0; k < t->kc; k++, a += aks, b += bks) {                            \
            T row[NR];                                                                       \
            for (int j = 0; j < NR; j++)                                                     \
                row[j] = j < nb ? b[j] : 0;                                                  \
            const T a0 = a[0], a1 = a[ars], a2 = a[2 * ars], a3 = a[3 * ars];                \
            for (int j = 0; j < NR; j++) {                                                   \
                c0[j] += a0 * row[j];                                                        \
                c1[j] += a1 * row[j];                                                        \
                c2[j] += a2 * row[j];                                                        \
                c3[j] += a3 * row[j];                                                        \
            }                                                                                \
        }                                                                                    \
        const T alpha = (T)t->alpha, beta = (T)t->beta;                                      \
        const T *rows[4] = {c0, c1, c2, c3};                                                 \
        for (int i = 0; i < t->mr; i++) {                                                    \
            T *p = (T *)t->c + i * t->rsc;                                                   \
            for (int j = 0; j < t->nr; j++) {                                                \
                if (!t->first)                                                               \
                    p[j] = alpha * rows[i][j] + p[j];                                        \
                else if (beta == 0)                                                          \
                    p[j] = alpha * rows[i][j];                                               \
                else                                                                         \
                    p[j] = alpha * rows[i][j] + beta * p[j];                                 \
            }                                                                                \
        }                                                                                    \
    }

/* Matrix times vector: sixteen partial sums per row, which compilers keep
 * in vector registers. */
#define TG_PORTABLE_GEMV(NAME, T)                                                            \
    static void NAME(int64_t M, int64_t K, double alpha_, const void *A_, int64_t rsa,       \
                     const void *x_, double beta_, void *y_, int64_t rsy)                    \
    {                                                                                        \
        const T *A = A_, *x = x_, alpha = (T)alpha_, beta = (T)beta_;                        \
        T *y = y_;                                                                           \
        const int64_t K16 = K - K % 16;                                                      \
        for (int64_t i = 0; i < M; i++) {                                                    \
            const T *a = A + i * rsa;                                                        \
            T part[16] = {0}, tail = 0;                                                      \
            for (int64_t k = 0; k < K16; k += 16)                                            \
                for (int l = 0; l < 16; l++)                                                 \
                    part[l] += a[k + l] * x[k + l];                                          \
            for (int64_t k = K16; k < K; k++)                                                \
                tail += a[k] * x[k];                                                         \
            for (int l = 8; l > 0; l /= 2) /* pairwise: 16 -> 1 */                           \
                for (int m = 0; m < l; m++)                                                  \
                    part[m] += part[m + l];                                                  \
            const T dot = part[0] + tail;                                                    \
            y[i * rsy] = beta == 0 ? alpha * dot : alpha * dot + beta * y[i * rsy];          \
        }                                                                                    \
    }

TG_PORTABLE_GEMV(skernel_gemv, float)
TG_PORTABLE_GEMV(dkernel_gemv, double)

TG_PORTABLE_KERNEL(skernel_packed_packed, float, TG_GEMM_SNR, 0, 0)
TG_PORTABLE_KERNEL(skernel_packed_inplace, float, TG_GEMM_SNR, 0, 1)
TG_PORTABLE_KERNEL(skernel_inplace_packed, float, TG_GEMM_SNR, 1, 0)
TG_PORTABLE_KERNEL(skernel_inplace_inplace, float, TG_GEMM_SNR, 1, 1)
TG_PORTABLE_KERNEL(dkernel_packed_packed, double, TG_GEMM_DNR, 0, 0)
TG_PORTABLE_KERNEL(dkernel_packed_inplace, double, TG_GEMM_DNR, 0, 1)
TG_PORTABLE_KERNEL(dkernel_inplace_packed, double, TG_GEMM_DNR, 1, 0)
TG_PORTABLE_KERNEL(dkernel_inplace_inplace, double, TG_GEMM_DNR, 1, 1)

#endif

void tg_sgemv(int64_t M, int64_t K, double alpha, const void *A, int64_t rsa, const void *x,
              double beta, void *y, int64_t rsy)
{
    skernel_gemv(M, K, alpha, A, rsa, x, beta, y, rsy);
}
void tg_dgemv(int64_t M, int64_t K, double alpha, const void *A, int64_t rsa, const void *x,
              double beta, void *y, int64_t rsy)
{
    dkernel_gemv(M, K, alpha, A, rsa, x, beta, y, rsy);
}

const tg_gemm_kernel_fn tg_sgemm_kernels[2][2] = {
    {skernel_packed_packed, skernel_packed_inplace},
    {skernel_inplace_packed, skernel_inplace_inplace},
};
const tg_gemm_kernel_fn tg_dgemm_kernels[2][2] = {
    {dkernel_packed_packed, dkernel_packed_inplace},
    {dkernel_inplace_packed, dkernel_inplace_inplace},
};

/* ---- packing --------------------------------------------------------------------
 * Slivers are laid out one after another, each kc deep. The common layouts
 * get loops with unit-stride reads (transposes go 16 k at a time, so the
 * block being written stays in L1); anything else (broadcast stride 0,
 * arbitrary views) takes the general loop. */

#define TG_PACK_A(NAME, T, MR)                                                               \
    void NAME(int64_t mc, int64_t kc, const void *src, int64_t rsa, int64_t csa, void *dst)   \
    {                                                                                        \
        const T *a = src;                                                                    \
        T *d = dst;                                                                          \
        for (int64_t r0 = 0; r0 < mc; r0 += MR, d += MR * kc) {                              \
            const int rows = mc - r0 < MR ? (int)(mc - r0) : MR;                             \
            const T *s = a + r0 * rsa;                                                       \
            if (rows == MR && rsa == 1) { /* column-major: MR contiguous per k */            \
                for (int64_t k = 0; k < kc; k++)                                             \
                    memcpy(d + k * MR, s + k * csa, MR * sizeof(T));                         \
            } else if (rows == MR && csa == 1) { /* row-major: transpose by blocks */        \
                for (int64_t k0 = 0; k0 < kc; k0 += 16) {                                    \
                    const int64_t k1 = kc - k0 < 16 ? kc : k0 + 16;                          \
                    for (int i = 0; i < MR; i++)                                             \
                        for (int64_t k = k0; k < k1; k++)                                    \
                            d[k * MR + i] = s[i * rsa + k];                                  \
                }                                                                            \
            } else {                                                                         \
                for (int64_t k = 0; k < kc; k++)                                             \
                    for (int i = 0; i < MR; i++)                                             \
                        d[k * MR + i] = i < rows ? s[i * rsa + k * csa] : 0;                 \
            }                                                                                \
        }                                                                                    \
    }

#define TG_PACK_B(NAME, T, NR)                                                               \
    void NAME(int64_t kc, int64_t nc, const void *src, int64_t rsb, int64_t csb, void *dst)   \
    {                                                                                        \
        const T *b = src;                                                                    \
        T *d = dst;                                                                          \
        for (int64_t j0 = 0; j0 < nc; j0 += NR, d += NR * kc) {                              \
            const int cols = nc - j0 < NR ? (int)(nc - j0) : NR;                             \
            const T *s = b + j0 * csb;                                                       \
            if (cols == NR && csb == 1) { /* row-major: NR contiguous per k */               \
                for (int64_t k = 0; k < kc; k++)                                             \
                    memcpy(d + k * NR, s + k * rsb, NR * sizeof(T));                         \
            } else if (cols == NR && rsb == 1) { /* column-major: transpose by blocks */     \
                for (int64_t k0 = 0; k0 < kc; k0 += 16) {                                    \
                    const int64_t k1 = kc - k0 < 16 ? kc : k0 + 16;                          \
                    for (int j = 0; j < NR; j++)                                             \
                        for (int64_t k = k0; k < k1; k++)                                    \
                            d[k * NR + j] = s[j * csb + k];                                  \
                }                                                                            \
            } else {                                                                         \
                for (int64_t k = 0; k < kc; k++)                                             \
                    for (int j = 0; j < NR; j++)                                             \
                        d[k * NR + j] = j < cols ? s[k * rsb + j * csb] : 0;                 \
            }                                                                                \
        }                                                                                    \
    }

TG_PACK_A(tg_sgemm_pack_a, float, TG_GEMM_SMR)
TG_PACK_A(tg_dgemm_pack_a, double, TG_GEMM_DMR)
TG_PACK_B(tg_sgemm_pack_b, float, TG_GEMM_SNR)
TG_PACK_B(tg_dgemm_pack_b, double, TG_GEMM_DNR)
