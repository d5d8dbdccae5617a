/* Vectorised exp, tanh and sigmoid for one instruction set (see vmath.h).
 *
 * The Makefile compiles this file once per ISA (-DTG_ISA_BUILD=<name> and
 * that ISA's -march, as ops/gemm_kernels.c); each object exports the table
 * tg_vmath_table_<name>, which ops/vmath.c dispatches to.
 *
 * Method (the algorithms are in vmath.inc):
 *   exp      x = k ln2 + r with |r| <= ln2/2, then e^x = 2^k (1 + q) where
 *            q = e^r - 1 = r + r^2 p(r), p of degree 5 (f32) or 10 (f64);
 *   tanh     m = e^(2|x|) - 1 by the same reduction, tanh|x| = m / (m + 2);
 *   sigmoid  e = e^-|x|, then 1 / (1 + e) or e / (1 + e).
 * p interpolates (e^r - 1 - r) / r^2 at the Chebyshev nodes of [-0.35, 0.35]
 * (computed in 80-digit decimal arithmetic, then rounded to the type); its
 * own error, 1.5e-9 (f32) and 1.6e-18 (f64), is lost in the rounding of
 * the arithmetic around it.
 *
 * vmath.inc is instantiated for each precision twice: as a scalar and as a
 * vector of the widest SIMD the ISA allows (AVX-512: 16 floats or 8
 * doubles; AVX2 with FMA: 8 or 4; generic: the scalar once more). The
 * table is at the end, after the instances it points to. */
#include "vmath_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef TG_ISA_BUILD
#error "compile with -DTG_ISA_BUILD=<isa> -DTG_ISA_LEVEL=<level> (see the Makefile)"
#endif
#if TG_ISA_LEVEL == 2
#define VMATH_SIMD 512
#elif TG_ISA_LEVEL == 1
#define VMATH_SIMD 256
#else
#define VMATH_SIMD 0
#endif

#if VMATH_SIMD
#include <immintrin.h>
#endif

#define VMATH_CAT_(a, b) a##b
#define VMATH_CAT(a, b) VMATH_CAT_(a, b)

/* ---- constants of the two precisions ------------------------------------------- */

/* The instance's precision picks them: P_L2E is L2E_f32 in an f32 instance. */
#define P_L2E PREC(L2E)
#define P_SHIFT PREC(SHIFT)
#define P_LN2_HI PREC(LN2_HI)
#define P_LN2_LO PREC(LN2_LO)
#define P_EXP_LO PREC(EXP_LO)
#define P_EXP_HI PREC(EXP_HI)
#define P_TANH_MAX PREC(TANH_MAX)
#define P_POLY PREC(poly)
#define P_POLY_N ((int)(sizeof P_POLY / sizeof P_POLY[0]))

/* 1/ln2; 1.5 * 2^23, whose addition rounds |v| < 2^22 to an integer; ln2
 * in two parts, the first with 15 significant bits so that k * LN2_HI is
 * exact for |k| < 2^9. Below EXP_LO exp is 0 and above EXP_HI +inf (both
 * with a margin); tanh is 1 beyond TANH_MAX. */
#define L2E_f32 1.44269502f
#define SHIFT_f32 12582912.0f
#define LN2_HI_f32 0x1.62e4p-1f /* 0.693145751953125 */
#define LN2_LO_f32 1.42860677e-06f
#define EXP_LO_f32 -105.0f
#define EXP_HI_f32 89.0f
#define TANH_MAX_f32 10.0f
static const float poly_f32[] = {0.5f,           0.166666672f,   0.0416664556f,
                                 0.00833331048f, 0.00139345322f, 0.000198919704f};

/* The same for doubles: 1.5 * 2^52; LN2_HI has 32 significant bits (exact
 * products for |k| < 2^21). */
#define L2E_f64 1.4426950408889634
#define SHIFT_f64 6755399441055744.0
#define LN2_HI_f64 0x1.62e42feep-1 /* 0.69314718036912382 */
#define LN2_LO_f64 1.9082149292705877e-10
#define EXP_LO_f64 -750.0
#define EXP_HI_f64 710.0
#define TANH_MAX_f64 20.0
static const double poly_f64[] = {0.5,
                                  0.16666666666666671,
                                  0.041666666666666671,
                                  0.0083333333333255512,
                                  0.0013888888888883332,
                                  0.00019841269876840357,
                                  2.480158732699005e-05,
                                  2.7557252863367322e-06,
                                  2.7557271831536131e-07,
                                  2.5106262550879078e-08,
                                  2.0915433598076003e-09};

/* ---- scalar instances ----------------------------------------------------------- */

/* 2^k from t = k + SHIFT: k sits in the low bits of t's significand;
 * shifted up into the exponent field (dropping everything above) and
 * biased, it is the float 2^k. Unsigned arithmetic wraps, as SIMD lanes do. */
static inline float pow2_f32(float t)
{
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    u = (u << 23) + (127u << 23);
    memcpy(&t, &u, sizeof t);
    return t;
}
static inline double pow2_f64(double t)
{
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    u = (u << 52) + ((uint64_t)1023 << 52);
    memcpy(&t, &u, sizeof t);
    return t;
}

/* Fused exactly where the vector instances fuse: always when they exist. */
#if VMATH_SIMD || defined(__FMA__)
#define FMA(a, b, c) _Generic((a), float: fmaf, double: fma)(a, b, c)
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#endif
/* MIN and MAX return the second operand when the comparison is false, as
 * the SIMD instructions do, so a NaN takes the same path in both (and
 * KEEPNAN puts it back at the end). */
#define V T
#define W 1
#define SET(c) ((T)(c))
#define LOAD(p) (*(p))
#define STORE(p, v) (*(p) = (v))
#define LOADN(p, n) LOAD(p)
#define STOREN(p, v, n) STORE(p, v)
#define ADD(a, b) ((a) + (b))
#define SUB(a, b) ((a) - (b))
#define MUL(a, b) ((a) * (b))
#define DIV(a, b) ((a) / (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ABS(a) _Generic((a), float: fabsf, double: fabs)(a)
#define COPYSIGN(m, s) _Generic((m), float: copysignf, double: copysign)(m, s)
#define LT(a, b) ((a) < (b))
#define SELECT(m, a, b) ((m) ? (a) : (b))
#define KEEPNAN(y, x) ((x) != (x) ? (x) + (x) : (y))
#define POW2(t) _Generic((t), float: pow2_f32, double: pow2_f64)(t)

#define T float
#define PREC(c) c##_f32
#define NAME(f) f##_f32_scalar
#include "vmath.inc"
#undef T
#undef PREC
#undef NAME

#define T double
#define PREC(c) c##_f64
#define NAME(f) f##_f64_scalar
#include "vmath.inc"
#undef T
#undef PREC
#undef NAME

#undef FMA
#undef V
#undef W
#undef SET
#undef LOAD
#undef STORE
#undef LOADN
#undef STOREN
#undef ADD
#undef SUB
#undef MUL
#undef DIV
#undef MIN
#undef MAX
#undef ABS
#undef COPYSIGN
#undef LT
#undef SELECT
#undef KEEPNAN
#undef POW2

/* ---- vector instances ------------------------------------------------------------ */

#if VMATH_SIMD == 512

/* Tails use masked loads and stores: lanes past n are neither read nor written. */
static inline __m512 loadn_f32(const float *p, int64_t n)
{
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}
static inline void storen_f32(float *p, __m512 v, int64_t n)
{
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v);
}
static inline __m512 copysign_f32(__m512 m, __m512 s)
{
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(INT32_MIN));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(m), sign));
}
static inline __m512 keepnan_f32(__m512 y, __m512 x)
{
    return _mm512_mask_add_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x, x);
}
static inline __m512 pow2v_f32(__m512 t)
{
    __m512i u = _mm512_slli_epi32(_mm512_castps_si512(t), 23);
    return _mm512_castsi512_ps(_mm512_add_epi32(u, _mm512_set1_epi32(127 << 23)));
}

static inline __m512d loadn_f64(const double *p, int64_t n)
{
    return _mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p);
}
static inline void storen_f64(double *p, __m512d v, int64_t n)
{
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), v);
}
static inline __m512d copysign_f64(__m512d m, __m512d s)
{
    __m512i sign = _mm512_and_si512(_mm512_castpd_si512(s), _mm512_set1_epi64(INT64_MIN));
    return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(m), sign));
}
static inline __m512d keepnan_f64(__m512d y, __m512d x)
{
    return _mm512_mask_add_pd(y, _mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), x, x);
}
static inline __m512d pow2v_f64(__m512d t)
{
    __m512i u = _mm512_slli_epi64(_mm512_castpd_si512(t), 52);
    return _mm512_castsi512_pd(_mm512_add_epi64(u, _mm512_set1_epi64((int64_t)1023 << 52)));
}

#define VOP(op) VMATH_CAT(VMATH_CAT(_mm512_, op), VSFX)
#define ABS(a) VOP(abs)(a)
#define LT(a, b) VMATH_CAT(VOP(cmp), _mask)(a, b, _CMP_LT_OQ)
#define SELECT(m, a, b) VOP(mask_blend)(m, b, a)

#elif VMATH_SIMD == 256

/* Tails use masked loads and stores: lanes past n are neither read nor written. */
static inline __m256i tail_mask_32(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i tail_mask_64(int64_t n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
static inline __m256 loadn_f32(const float *p, int64_t n)
{
    return _mm256_maskload_ps(p, tail_mask_32(n));
}
static inline void storen_f32(float *p, __m256 v, int64_t n)
{
    _mm256_maskstore_ps(p, tail_mask_32(n), v);
}
static inline __m256 copysign_f32(__m256 m, __m256 s)
{
    return _mm256_or_ps(m, _mm256_and_ps(s, _mm256_set1_ps(-0.0f)));
}
static inline __m256 keepnan_f32(__m256 y, __m256 x)
{
    return _mm256_blendv_ps(y, _mm256_add_ps(x, x), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
static inline __m256 pow2v_f32(__m256 t)
{
    __m256i u = _mm256_slli_epi32(_mm256_castps_si256(t), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(u, _mm256_set1_epi32(127 << 23)));
}

static inline __m256d loadn_f64(const double *p, int64_t n)
{
    return _mm256_maskload_pd(p, tail_mask_64(n));
}
static inline void storen_f64(double *p, __m256d v, int64_t n)
{
    _mm256_maskstore_pd(p, tail_mask_64(n), v);
}
static inline __m256d copysign_f64(__m256d m, __m256d s)
{
    return _mm256_or_pd(m, _mm256_and_pd(s, _mm256_set1_pd(-0.0)));
}
static inline __m256d keepnan_f64(__m256d y, __m256d x)
{
    return _mm256_blendv_pd(y, _mm256_add_pd(x, x), _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}
static inline __m256d pow2v_f64(__m256d t)
{
    __m256i u = _mm256_slli_epi64(_mm256_castpd_si256(t), 52);
    return _mm256_castsi256_pd(_mm256_add_epi64(u, _mm256_set1_epi64x((int64_t)1023 << 52)));
}

#define VOP(op) VMATH_CAT(VMATH_CAT(_mm256_, op), VSFX)
#define ABS(a) VOP(andnot)(SET(-0.0), a)
#define LT(a, b) VOP(cmp)(a, b, _CMP_LT_OQ)
#define SELECT(m, a, b) VOP(blendv)(b, a, m)

#endif

#if VMATH_SIMD
#define SET(c) VOP(set1)((T)(c))
#define LOAD(p) VOP(loadu)(p)
#define STORE(p, v) VOP(storeu)(p, v)
#define LOADN(p, n) PREC(loadn)(p, n)
#define STOREN(p, v, n) PREC(storen)(p, v, n)
#define ADD(a, b) VOP(add)(a, b)
#define SUB(a, b) VOP(sub)(a, b)
#define MUL(a, b) VOP(mul)(a, b)
#define DIV(a, b) VOP(div)(a, b)
#define MIN(a, b) VOP(min)(a, b)
#define MAX(a, b) VOP(max)(a, b)
#define FMA(a, b, c) VOP(fmadd)(a, b, c)
#define COPYSIGN(m, s) PREC(copysign)(m, s)
#define KEEPNAN(y, x) PREC(keepnan)(y, x)
#define POW2(t) PREC(pow2v)(t)
#define W (VMATH_SIMD / 8 / (int)sizeof(T))

#define T float
#define V VMATH_CAT(__m, VMATH_SIMD)
#define VSFX _ps
#define PREC(c) c##_f32
#define NAME(f) f##_f32_vector
#include "vmath.inc"
#undef T
#undef V
#undef VSFX
#undef PREC
#undef NAME

#define T double
#define V VMATH_CAT(VMATH_CAT(__m, VMATH_SIMD), d)
#define VSFX _pd
#define PREC(c) c##_f64
#define NAME(f) f##_f64_vector
#include "vmath.inc"

#else /* no SIMD: the scalar instances serve the arrays too */
#define vexp_f32_vector vexp_f32_scalar
#define vtanh_f32_vector vtanh_f32_scalar
#define vsigmoid_f32_vector vsigmoid_f32_scalar
#define vexp_f64_vector vexp_f64_scalar
#define vtanh_f64_vector vtanh_f64_scalar
#define vsigmoid_f64_vector vsigmoid_f64_scalar
#endif

/* ---- the table --------------------------------------------------------------------- */

const tg_vmath_table TG_ISA_TABLE(tg_vmath_table) = {
    .exp_f32 = vexp_f32_vector,
    .exp_f64 = vexp_f64_vector,
    .tanh_f32 = vtanh_f32_vector,
    .tanh_f64 = vtanh_f64_vector,
    .sigmoid_f32 = vsigmoid_f32_vector,
    .sigmoid_f64 = vsigmoid_f64_vector,
    .exp1_f32 = exp_f32_scalar,
    .exp1_f64 = exp_f64_scalar,
    .tanh1_f32 = tanh_f32_scalar,
    .tanh1_f64 = tanh_f64_scalar,
    .sigmoid1_f32 = sigmoid_f32_scalar,
    .sigmoid1_f64 = sigmoid_f64_scalar,
};
