/* GEMM micro-kernels, packing, matrix-vector products and tile stores for
 * one instruction set (see gemm_kernels.h).
 *
 * The Makefile compiles this file once per ISA, with -DTG_ISA_BUILD=<name>,
 * -DTG_ISA_LEVEL=<2 avx512, 1 avx2, 0 generic> and that ISA's -march; each
 * object exports one table, tg_gemm_table_<name>. The SIMD kernels share
 * the template gemm_simd.inc, instantiated per dtype and row count with a
 * small set of vector macros; the generic kernel is plain C that any
 * compiler vectorises as it can. */
#include "gemm_kernels.h"

#include <math.h>
#include <string.h>

#ifndef TG_ISA_BUILD
#error "compile with -DTG_ISA_BUILD=<isa> -DTG_ISA_LEVEL=<level> (see the Makefile)"
#endif
#if TG_ISA_LEVEL == 2 && !(defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__FMA__))
#error "the avx512 kernels need -march=x86-64-v4 (AVX-512 F/DQ and FMA)"
#endif
#if TG_ISA_LEVEL == 1 && !(defined(__AVX2__) && defined(__FMA__))
#error "the avx2 kernels need -march=x86-64-v3 (AVX2 and FMA)"
#endif

#if TG_ISA_LEVEL >= 1
#include <immintrin.h>
#endif

#define TG_ROWS1(X) X(0)
#define TG_ROWS2(X) X(0) X(1)
#define TG_ROWS4(X) X(0) X(1) X(2) X(3)
#define TG_ROWS6(X) TG_ROWS4(X) X(4) X(5)
#define TG_ROWS8(X) TG_ROWS6(X) X(6) X(7)
#define TG_ROWS12(X) TG_ROWS8(X) X(8) X(9) X(10) X(11)

/* One kernel class of the template: MR rows, named prefix_<x>. */
#define TG_KERNEL_TABLE(prefix)                                                               \
    {                                                                                         \
        {prefix##_packed_packed, prefix##_packed_inplace},                                    \
        {                                                                                     \
            prefix##_inplace_packed, prefix##_inplace_inplace                                 \
        }                                                                                     \
    }

/* ---- AVX-512 ---------------------------------------------------------------- */
#if TG_ISA_LEVEL == 2

static inline __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}
static inline __mmask8 mask8(int n)
{
    return n >= 8 ? (__mmask8)0xff : n <= 0 ? (__mmask8)0 : (__mmask8)((1u << n) - 1);
}

#define S_MR_0 12
#define S_MR_1 8
#define S_MR_2 4
#define S_NR 32
#define D_MR_0 12
#define D_MR_1 8
#define D_MR_2 4
#define D_NR 16
#define FUSED 1

#define T float
#define V __m512
#define VL 16
#define NR S_NR
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
#define MR 12
#define ROWS TG_ROWS12
#define KERNEL(x) s12_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 8
#define ROWS TG_ROWS8
#define KERNEL(x) s8_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 4
#define ROWS TG_ROWS4
#define KERNEL(x) s4_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define KERNEL(x) s_##x
#include "gemv_simd.inc"
#undef KERNEL
#undef T
#undef V
#undef VL
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

#define T double
#define V __m512d
#define VL 8
#define NR D_NR
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
#define MR 12
#define ROWS TG_ROWS12
#define KERNEL(x) d12_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 8
#define ROWS TG_ROWS8
#define KERNEL(x) d8_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 4
#define ROWS TG_ROWS4
#define KERNEL(x) d4_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define KERNEL(x) d_##x
#include "gemv_simd.inc"

#define S_KERNELS {TG_KERNEL_TABLE(s12), TG_KERNEL_TABLE(s8), TG_KERNEL_TABLE(s4)}
#define D_KERNELS {TG_KERNEL_TABLE(d12), TG_KERNEL_TABLE(d8), TG_KERNEL_TABLE(d4)}

/* ---- AVX2 + FMA ----------------------------------------------------------------- */
#elif TG_ISA_LEVEL == 1

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

#define S_MR_0 6
#define S_MR_1 4
#define S_MR_2 2
#define S_NR 16
#define D_MR_0 6
#define D_MR_1 4
#define D_MR_2 2
#define D_NR 8
#define FUSED 1

#define T float
#define V __m256
#define VL 8
#define NR S_NR
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
#define MR 6
#define ROWS TG_ROWS6
#define KERNEL(x) s6_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 4
#define ROWS TG_ROWS4
#define KERNEL(x) s4_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 2
#define ROWS TG_ROWS2
#define KERNEL(x) s2_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define KERNEL(x) s_##x
#include "gemv_simd.inc"
#undef KERNEL
#undef T
#undef V
#undef VL
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

#define T double
#define V __m256d
#define VL 4
#define NR D_NR
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
#define MR 6
#define ROWS TG_ROWS6
#define KERNEL(x) d6_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 4
#define ROWS TG_ROWS4
#define KERNEL(x) d4_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define MR 2
#define ROWS TG_ROWS2
#define KERNEL(x) d2_##x
#include "gemm_simd.inc"
#undef MR
#undef ROWS
#undef KERNEL
#define KERNEL(x) d_##x
#include "gemv_simd.inc"

#define S_KERNELS {TG_KERNEL_TABLE(s6), TG_KERNEL_TABLE(s4), TG_KERNEL_TABLE(s2)}
#define D_KERNELS {TG_KERNEL_TABLE(d6), TG_KERNEL_TABLE(d4), TG_KERNEL_TABLE(d2)}

/* ---- portable C ------------------------------------------------------------------- */
#else

#define S_MR_0 4
#define S_MR_1 2
#define S_MR_2 1
#define S_NR 8
#define D_MR_0 4
#define D_MR_1 2
#define D_MR_2 1
#define D_NR 4
#define FUSED 0

/* MR rows of the tile as small local arrays: compilers keep them in
 * vector registers and vectorise the fixed-length loops over j with
 * whatever SIMD the target has. Multiply and add stay separate (-std=c11
 * does not contract them), so every platform rounds alike. */
#define TG_PORTABLE_KERNEL(NAME, T, MR, NR, a_in_place, b_in_place)                          \
    static void NAME(const tg_gemm_tile *t)                                                  \
    {                                                                                        \
        const T *a = t->a, *b = t->b;                                                        \
        const int64_t ars = a_in_place ? t->ars : 1, aks = a_in_place ? t->aks : MR;         \
        const int64_t bks = b_in_place ? t->bks : NR;                                        \
        const int nb = b_in_place ? t->nr : NR;                                              \
        T acc[MR][NR];                                                                       \
        memset(acc, 0, sizeof acc);                                                          \
        for (int64_t k = 0; k < t->kc; k++, a += aks, b += bks) {                            \
            T row[NR];                                                                       \
            for (int j = 0; j < NR; j++)                                                     \
                row[j] = j < nb ? b[j] : 0;                                                  \
            for (int i = 0; i < MR; i++) {                                                   \
                const T ai = a[i * ars];                                                     \
                for (int j = 0; j < NR; j++)                                                 \
                    acc[i][j] += ai * row[j];                                                \
            }                                                                                \
        }                                                                                    \
        const T alpha = (T)t->alpha, beta = (T)t->beta;                                      \
        for (int i = 0; i < t->mr; i++) {                                                    \
            T *p = (T *)t->c + i * t->rsc;                                                   \
            for (int j = 0; j < t->nr; j++) {                                                \
                if (!t->first)                                                               \
                    p[j] = alpha * acc[i][j] + p[j];                                         \
                else if (beta == 0)                                                          \
                    p[j] = alpha * acc[i][j];                                                \
                else                                                                         \
                    p[j] = alpha * acc[i][j] + beta * p[j];                                  \
            }                                                                                \
        }                                                                                    \
    }
#define TG_PORTABLE_KERNELS(prefix, T, MR, NR)                                               \
    TG_PORTABLE_KERNEL(prefix##_packed_packed, T, MR, NR, 0, 0)                              \
    TG_PORTABLE_KERNEL(prefix##_packed_inplace, T, MR, NR, 0, 1)                             \
    TG_PORTABLE_KERNEL(prefix##_inplace_packed, T, MR, NR, 1, 0)                             \
    TG_PORTABLE_KERNEL(prefix##_inplace_inplace, T, MR, NR, 1, 1)

TG_PORTABLE_KERNELS(s4, float, 4, S_NR)
TG_PORTABLE_KERNELS(s2, float, 2, S_NR)
TG_PORTABLE_KERNELS(s1, float, 1, S_NR)
TG_PORTABLE_KERNELS(d4, double, 4, D_NR)
TG_PORTABLE_KERNELS(d2, double, 2, D_NR)
TG_PORTABLE_KERNELS(d1, double, 1, D_NR)

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
TG_PORTABLE_GEMV(s_gemv, float)
TG_PORTABLE_GEMV(d_gemv, double)

#define S_KERNELS {TG_KERNEL_TABLE(s4), TG_KERNEL_TABLE(s2), TG_KERNEL_TABLE(s1)}
#define D_KERNELS {TG_KERNEL_TABLE(d4), TG_KERNEL_TABLE(d2), TG_KERNEL_TABLE(d1)}

#endif

/* ---- packing, and the store of a tile computed apart ---------------------------------
 * Slivers are laid out one after another, each kc deep. The common layouts
 * get loops with unit-stride reads (transposes go 16 k at a time, so the
 * block being written stays in L1); anything else (broadcast stride 0,
 * arbitrary views) takes the general loop. */

/* One sliver, A's rows or B's columns: W lanes (a constant, so that the
 * copies vectorise), n of them real (the rest zero), kc deep; lane i at
 * depth k is s[i * ls + k * ks] and goes to d[k * W + i]. */
#define TG_PACK_SLIVER(W, n, ls, ks)                                                         \
    do {                                                                                     \
        if (n == W && ls == 1) { /* lanes contiguous at each k */                            \
            for (int64_t k = 0; k < kc; k++)                                                 \
                for (int i = 0; i < W; i++)                                                  \
                    d[k * W + i] = s[k * ks + i];                                            \
        } else if (n == W && ks == 1) { /* depth contiguous: transpose by blocks */          \
            for (int64_t k0 = 0; k0 < kc; k0 += 16) {                                        \
                const int64_t k1 = kc - k0 < 16 ? kc : k0 + 16;                              \
                for (int i = 0; i < W; i++)                                                  \
                    for (int64_t k = k0; k < k1; k++)                                        \
                        d[k * W + i] = s[i * ls + k];                                        \
            }                                                                                \
        } else {                                                                             \
            for (int64_t k = 0; k < kc; k++)                                                 \
                for (int i = 0; i < W; i++)                                                  \
                    d[k * W + i] = i < n ? s[i * ls + k * ks] : 0;                           \
        }                                                                                    \
    } while (0)

/* Column-major A (rsa == 1): k outer, so that each k's column, contiguous
 * in the source, is read in one pass and dealt out to every sliver (read
 * sliver by sliver instead, each column's cache lines would be fetched
 * once per sliver, from a stride that maps every k to the same cache set). */
#define TG_PACK_A_COLUMNS(T, MR)                                                             \
    do {                                                                                     \
        const int64_t full = mc - mc % MR;                                                   \
        for (int64_t k = 0; k < kc; k++) {                                                   \
            const T *s = a + k * csa;                                                        \
            T *d = (T *)dst + k * MR;                                                        \
            for (int64_t r0 = 0; r0 < full; r0 += MR, d += MR * kc)                          \
                for (int i = 0; i < MR; i++)                                                 \
                    d[i] = s[r0 + i];                                                        \
            for (int i = 0; i < MR && full < mc; i++)                                        \
                d[i] = full + i < mc ? s[full + i] : 0;                                      \
        }                                                                                    \
    } while (0)

#define TG_PACK_A(NAME, T, M0, M1, M2)                                                       \
    static void NAME(int64_t mc, int64_t kc, const void *src, int64_t rsa, int64_t csa,      \
                     void *dst, int mr)                                                      \
    {                                                                                        \
        const T *a = src;                                                                    \
        if (rsa == 1 && mr == M0) {                                                          \
            TG_PACK_A_COLUMNS(T, M0);                                                        \
            return;                                                                          \
        }                                                                                    \
        T *d = dst;                                                                          \
        for (int64_t r0 = 0; r0 < mc; r0 += mr, d += mr * kc) {                              \
            const int rows = mc - r0 < mr ? (int)(mc - r0) : mr;                             \
            const T *s = a + r0 * rsa;                                                       \
            if (mr == M0)                                                                    \
                TG_PACK_SLIVER(M0, rows, rsa, csa);                                          \
            else if (mr == M1)                                                               \
                TG_PACK_SLIVER(M1, rows, rsa, csa);                                          \
            else                                                                             \
                TG_PACK_SLIVER(M2, rows, rsa, csa);                                          \
        }                                                                                    \
    }

#define TG_PACK_B(NAME, T, NR)                                                               \
    static void NAME(int64_t kc, int64_t nc, const void *src, int64_t rsb, int64_t csb,      \
                     void *dst)                                                              \
    {                                                                                        \
        const T *b = src;                                                                    \
        T *d = dst;                                                                          \
        for (int64_t j0 = 0; j0 < nc; j0 += NR, d += NR * kc) {                              \
            const int cols = nc - j0 < NR ? (int)(nc - j0) : NR;                             \
            const T *s = b + j0 * csb;                                                       \
            TG_PACK_SLIVER(NR, cols, csb, rsb);                                              \
        }                                                                                    \
    }


/* ---- transposes ------------------------------------------------------------------------
 * Whole blocks (B x B, B the lanes of a vector) go through registers (SIMD
 * ISAs); the edges, and every element on the generic ISA, through a small
 * buffer, read a source row and written a destination row at a time so
 * that each cache line on either side is touched once per tile. */

#define TG_TRANSPOSE_EDGE(NAME, T)                                                           \
    static void NAME(int64_t rows, int64_t cols, const T *src, int64_t ss, T *dst,           \
                     int64_t ds, int add)                                                    \
    {                                                                                        \
        enum { TILE = 16 };                                                                  \
        T buf[TILE][TILE];                                                                   \
        for (int64_t i0 = 0; i0 < rows; i0 += TILE)                                          \
            for (int64_t j0 = 0; j0 < cols; j0 += TILE) {                                    \
                int64_t ni = rows - i0 < TILE ? rows - i0 : TILE;                            \
                int64_t nj = cols - j0 < TILE ? cols - j0 : TILE;                            \
                for (int64_t i = 0; i < ni; i++)                                             \
                    for (int64_t j = 0; j < nj; j++)                                         \
                        buf[j][i] = src[(i0 + i) * ss + j0 + j];                             \
                for (int64_t j = 0; j < nj; j++) {                                           \
                    T *d = dst + (j0 + j) * ds + i0;                                         \
                    if (add)                                                                 \
                        for (int64_t i = 0; i < ni; i++)                                     \
                            d[i] += buf[j][i];                                               \
                    else                                                                     \
                        for (int64_t i = 0; i < ni; i++)                                     \
                            d[i] = buf[j][i];                                                \
                }                                                                            \
            }                                                                                \
    }
TG_TRANSPOSE_EDGE(s_transpose_edge, float)
TG_TRANSPOSE_EDGE(d_transpose_edge, double)

/* The block transposes, then the edges: BLOCK(i0, j0) moves one B x B block. */
#define TG_TRANSPOSE(NAME, T, B, BLOCK, EDGE)                                                \
    static void NAME(int64_t rows, int64_t cols, const void *src_, int64_t ss, void *dst_,    \
                     int64_t ds, int add)                                                    \
    {                                                                                        \
        const T *src = src_;                                                                 \
        T *dst = dst_;                                                                       \
        const int64_t rb = rows - rows % B, cb = cols - cols % B;                            \
        for (int64_t i0 = 0; i0 < rb; i0 += B)                                               \
            for (int64_t j0 = 0; j0 < cb; j0 += B)                                           \
                BLOCK(src + i0 * ss + j0, ss, dst + j0 * ds + i0, ds, add);                  \
        if (cb < cols)                                                                       \
            EDGE(rb, cols - cb, src + cb, ss, dst + cb * ds, ds, add);                       \
        if (rb < rows)                                                                       \
            EDGE(rows - rb, cols, src + rb * ss, ss, dst + rb, ds, add);                     \
    }

#if TG_ISA_LEVEL == 2
/* 16 x 16 floats: pairs interleaved, then pairs of pairs, then 128-bit
 * lanes gathered across the four groups of four rows. */
static inline void s_block16(const float *src, int64_t ss, float *dst, int64_t ds, int add)
{
    __m512 r[16], t[16], u[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * ss);
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++) {
        __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 2]);
        __m512d c = _mm512_castps_pd(t[4 * k + 1]), d = _mm512_castps_pd(t[4 * k + 3]);
        u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
    }
    for (int j = 0; j < 16; j++) {
        float *d = dst + j * ds;
        _mm512_storeu_ps(d, add ? _mm512_add_ps(_mm512_loadu_ps(d), r[j]) : r[j]);
    }
}

/* 8 x 8 doubles: pairs interleaved, then 128-bit lanes gathered. */
static inline void d_block8(const double *src, int64_t ss, double *dst, int64_t ds, int add)
{
    __m512d r[8], t[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm512_loadu_pd(src + i * ss);
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm512_unpacklo_pd(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_pd(r[2 * k], r[2 * k + 1]);
    }
    for (int c = 0; c < 2; c++) {
        __m512d v0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x88);
        __m512d v1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xdd);
        __m512d w0 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x88);
        __m512d w1 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xdd);
        r[c] = _mm512_shuffle_f64x2(v0, w0, 0x88);
        r[4 + c] = _mm512_shuffle_f64x2(v0, w0, 0xdd);
        r[2 + c] = _mm512_shuffle_f64x2(v1, w1, 0x88);
        r[6 + c] = _mm512_shuffle_f64x2(v1, w1, 0xdd);
    }
    for (int j = 0; j < 8; j++) {
        double *d = dst + j * ds;
        _mm512_storeu_pd(d, add ? _mm512_add_pd(_mm512_loadu_pd(d), r[j]) : r[j]);
    }
}
TG_TRANSPOSE(s_transpose, float, 16, s_block16, s_transpose_edge)
TG_TRANSPOSE(d_transpose, double, 8, d_block8, d_transpose_edge)

#elif TG_ISA_LEVEL == 1
/* 8 x 8 floats: pairs, pairs of pairs, then 128-bit halves. */
static inline void s_block8(const float *src, int64_t ss, float *dst, int64_t ds, int add)
{
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + i * ss);
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        r[4 * k] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
        r[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0xee);
        r[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
        r[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xee);
    }
    for (int c = 0; c < 4; c++) {
        t[c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x20);
        t[4 + c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x31);
    }
    for (int j = 0; j < 8; j++) {
        float *d = dst + j * ds;
        _mm256_storeu_ps(d, add ? _mm256_add_ps(_mm256_loadu_ps(d), t[j]) : t[j]);
    }
}

/* 4 x 4 doubles. */
static inline void d_block4(const double *src, int64_t ss, double *dst, int64_t ds, int add)
{
    __m256d r[4], t[4];
    for (int i = 0; i < 4; i++)
        r[i] = _mm256_loadu_pd(src + i * ss);
    t[0] = _mm256_unpacklo_pd(r[0], r[1]);
    t[1] = _mm256_unpackhi_pd(r[0], r[1]);
    t[2] = _mm256_unpacklo_pd(r[2], r[3]);
    t[3] = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t[0], t[2], 0x20);
    r[1] = _mm256_permute2f128_pd(t[1], t[3], 0x20);
    r[2] = _mm256_permute2f128_pd(t[0], t[2], 0x31);
    r[3] = _mm256_permute2f128_pd(t[1], t[3], 0x31);
    for (int j = 0; j < 4; j++) {
        double *d = dst + j * ds;
        _mm256_storeu_pd(d, add ? _mm256_add_pd(_mm256_loadu_pd(d), r[j]) : r[j]);
    }
}
TG_TRANSPOSE(s_transpose, float, 8, s_block8, s_transpose_edge)
TG_TRANSPOSE(d_transpose, double, 4, d_block4, d_transpose_edge)

#else
static void s_transpose(int64_t rows, int64_t cols, const void *src, int64_t ss, void *dst,
                        int64_t ds, int add)
{
    s_transpose_edge(rows, cols, src, ss, dst, ds, add);
}
static void d_transpose(int64_t rows, int64_t cols, const void *src, int64_t ss, void *dst,
                        int64_t ds, int add)
{
    d_transpose_edge(rows, cols, src, ss, dst, ds, add);
}
#endif

#if FUSED
#define FUSED_F32(a, b, c) fmaf(a, b, c)
#define FUSED_F64(a, b, c) fma(a, b, c)
#else
#define FUSED_F32(a, b, c) ((a) * (b) + (c))
#define FUSED_F64(a, b, c) ((a) * (b) + (c))
#endif

#define TG_UPDATE(NAME, T, FUSED_OP)                                                         \
    static void NAME(int mr, int nr, const void *tile_, int64_t tile_rs, double alpha_,      \
                     double beta_, int mode, void *C_, int64_t rsc, int64_t csc)             \
    {                                                                                        \
        const T *tile = tile_, alpha = (T)alpha_, beta = (T)beta_;                           \
        T *C = C_;                                                                           \
        for (int i = 0; i < mr; i++)                                                         \
            for (int j = 0; j < nr; j++) {                                                   \
                T *p = C + i * rsc + j * csc, v = tile[i * tile_rs + j];                     \
                *p = mode == 0 ? alpha * v : FUSED_OP(alpha, v, mode == 1 ? beta * *p : *p); \
            }                                                                                \
    }

TG_PACK_A(s_pack_a, float, S_MR_0, S_MR_1, S_MR_2)
TG_PACK_A(d_pack_a, double, D_MR_0, D_MR_1, D_MR_2)
TG_PACK_B(s_pack_b, float, S_NR)
TG_PACK_B(d_pack_b, double, D_NR)
TG_UPDATE(s_update, float, FUSED_F32)
TG_UPDATE(d_update, double, FUSED_F64)

#define TG_STRINGIFY_(x) #x
#define TG_STRINGIFY(x) TG_STRINGIFY_(x)

const tg_gemm_table TG_ISA_TABLE(tg_gemm_table) = {
    .isa = TG_STRINGIFY(TG_ISA_BUILD),
    .f32 = {.mr = {S_MR_0, S_MR_1, S_MR_2}, .nr = S_NR, .kernel = S_KERNELS, .pack_a = s_pack_a,
            .pack_b = s_pack_b, .gemv = s_gemv, .update = s_update,
            .transpose = s_transpose},
    .f64 = {.mr = {D_MR_0, D_MR_1, D_MR_2}, .nr = D_NR, .kernel = D_KERNELS, .pack_a = d_pack_a,
            .pack_b = d_pack_b, .gemv = d_gemv, .update = d_update,
            .transpose = d_transpose},
};
