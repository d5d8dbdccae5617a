/* Private: the vector math of one instruction set, as a table (see
 * vmath.h for the functions, ops/vmath_kernels.c for the code, core/isa.h
 * for how a table is chosen). The arrays compute y[i] = f(x[i] + b[i]), or
 * f(x[i]) when b is NULL; the scalars give the arrays' bits for one
 * element. */
#ifndef TG_VMATH_KERNELS_H
#define TG_VMATH_KERNELS_H

#include <stdint.h>

#include "../core/isa.h"

typedef struct {
    void (*exp_f32)(int64_t n, const float *x, const float *b, float *y);
    void (*exp_f64)(int64_t n, const double *x, const double *b, double *y);
    void (*tanh_f32)(int64_t n, const float *x, const float *b, float *y);
    void (*tanh_f64)(int64_t n, const double *x, const double *b, double *y);
    void (*sigmoid_f32)(int64_t n, const float *x, const float *b, float *y);
    void (*sigmoid_f64)(int64_t n, const double *x, const double *b, double *y);
    float (*exp1_f32)(float x);
    double (*exp1_f64)(double x);
    float (*tanh1_f32)(float x);
    double (*tanh1_f64)(double x);
    float (*sigmoid1_f32)(float x);
    double (*sigmoid1_f64)(double x);
} tg_vmath_table;

TG_ISA_DECLARE(const tg_vmath_table, tg_vmath_table);

static inline const tg_vmath_table *tg_vmath_active(void) { return TG_ISA_PICK(tg_vmath_table); }

#endif
