/* The vector math functions of vmath.h: each calls the instance of the
 * instruction set in use (ops/vmath_kernels.c, one object per ISA). */
#include "vmath.h"

#include <stddef.h>

#include "vmath_kernels.h"

void tg_vexp_f32(int64_t n, const float *x, float *y) { tg_vmath_active()->exp_f32(n, x, NULL, y); }
void tg_vexp_f64(int64_t n, const double *x, double *y)
{
    tg_vmath_active()->exp_f64(n, x, NULL, y);
}
void tg_vtanh_f32(int64_t n, const float *x, float *y)
{
    tg_vmath_active()->tanh_f32(n, x, NULL, y);
}
void tg_vtanh_f64(int64_t n, const double *x, double *y)
{
    tg_vmath_active()->tanh_f64(n, x, NULL, y);
}
void tg_vsigmoid_f32(int64_t n, const float *x, float *y)
{
    tg_vmath_active()->sigmoid_f32(n, x, NULL, y);
}
void tg_vsigmoid_f64(int64_t n, const double *x, double *y)
{
    tg_vmath_active()->sigmoid_f64(n, x, NULL, y);
}

void tg_vtanh_bias_f32(int64_t n, const float *x, const float *b, float *y)
{
    tg_vmath_active()->tanh_f32(n, x, b, y);
}
void tg_vtanh_bias_f64(int64_t n, const double *x, const double *b, double *y)
{
    tg_vmath_active()->tanh_f64(n, x, b, y);
}
void tg_vsigmoid_bias_f32(int64_t n, const float *x, const float *b, float *y)
{
    tg_vmath_active()->sigmoid_f32(n, x, b, y);
}
void tg_vsigmoid_bias_f64(int64_t n, const double *x, const double *b, double *y)
{
    tg_vmath_active()->sigmoid_f64(n, x, b, y);
}

float tg_math_exp_f32(float x) { return tg_vmath_active()->exp1_f32(x); }
double tg_math_exp_f64(double x) { return tg_vmath_active()->exp1_f64(x); }
float tg_math_tanh_f32(float x) { return tg_vmath_active()->tanh1_f32(x); }
double tg_math_tanh_f64(double x) { return tg_vmath_active()->tanh1_f64(x); }
float tg_math_sigmoid_f32(float x) { return tg_vmath_active()->sigmoid1_f32(x); }
double tg_math_sigmoid_f64(double x) { return tg_vmath_active()->sigmoid1_f64(x); }
