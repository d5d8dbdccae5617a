/* Vectorised exp, tanh and sigmoid over contiguous arrays, f32 and f64.
 *
 * Internal to the library: the elementwise ops and the fused recurrent
 * kernels compute their activations here. The vector code is that of the
 * instruction set in use (AVX-512, AVX2 with FMA, or portable C; see
 * core/cpu.h), chosen at run time.
 *
 * Accuracy, against the exact function, over the whole range of the type:
 *   f32: at most 4 ulp (about 2 in practice);
 *   f64: relative error below 2e-15 (a few ulp).
 * Limits are exact: tanh(+-inf) = +-1, sigmoid(+inf) = 1, sigmoid(-inf) = 0,
 * exp(-inf) = 0, exp(+inf) = +inf; exp overflows to +inf and underflows
 * through the subnormals to 0; NaN propagates. Nothing overflows inside, so
 * tanh(+-1000) = +-1, sigmoid(1000) = 1 and sigmoid(-1000) = 0.
 *
 * Layout independence: the scalar functions tg_math_* give, element by
 * element, exactly the bits that the array functions give, so a kernel may
 * take its vector path on contiguous rows and a scalar loop on strided ones
 * and still produce the same tensor.
 *
 * In the array functions y may be the same array as x (or b); partial
 * overlap is not allowed. n may be 0. No alignment is required. */
#ifndef TG_VMATH_H
#define TG_VMATH_H

#include <stdint.h>

/* ---- arrays: y[i] = f(x[i]) ------------------------------------------------- */

void tg_vexp_f32(int64_t n, const float *x, float *y);
void tg_vexp_f64(int64_t n, const double *x, double *y);
void tg_vtanh_f32(int64_t n, const float *x, float *y);
void tg_vtanh_f64(int64_t n, const double *x, double *y);
void tg_vsigmoid_f32(int64_t n, const float *x, float *y);
void tg_vsigmoid_f64(int64_t n, const double *x, double *y);

/* ---- gate math: y[i] = f(x[i] + b[i]) ---------------------------------------------
 * The sum is rounded to the type first, so the result equals the add op
 * followed by the activation op, bit for bit. For a bias broadcast over
 * rows, call once per row with the same b. */

void tg_vtanh_bias_f32(int64_t n, const float *x, const float *b, float *y);
void tg_vtanh_bias_f64(int64_t n, const double *x, const double *b, double *y);
void tg_vsigmoid_bias_f32(int64_t n, const float *x, const float *b, float *y);
void tg_vsigmoid_bias_f64(int64_t n, const double *x, const double *b, double *y);

/* ---- one element, the same bits as the array functions -------------------------- *
 * (of the same ISA: AVX-512 and AVX2 agree bit for bit, as both fuse their
 * multiply-adds; the portable code rounds them separately). */

float tg_math_exp_f32(float x);
double tg_math_exp_f64(double x);
float tg_math_tanh_f32(float x);
double tg_math_tanh_f64(double x);
float tg_math_sigmoid_f32(float x);
double tg_math_sigmoid_f64(double x);

#endif
