/* tg_matmul: (M,K) @ (K,N) on the tape; tg_matmul_bias: the same plus a
 * bias column. */
#include "ops.h"

#include "../core/iter.h"
#include "gemm.h"
#include "internal.h"

/* dA += dC @ B^T and dB += A^T @ dC, straight into the gradient buffers. */
static void matmul_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *a = e->in[0], *b = e->in[1];
    const tg_tensor *g = tg_grad_out(e->out[0]);
    tg_tensor *ga = tg_grad_in(tape, a);
    if (ga) {
        tg_tensor bt;
        tg_view_transpose(&bt, b, 0, 1);
        tg_gemm_accumulate(tape, ga, g, &bt);
    }
    tg_tensor *gb = tg_grad_in(tape, b);
    if (gb) {
        tg_tensor at;
        tg_view_transpose(&at, a, 0, 1);
        tg_gemm_accumulate(tape, gb, &at, g);
    }
}

/* The operands of a product must be 2-D with equal inner dimensions. */
static bool check_operands(tg_op *op, const tg_tensor *a, const tg_tensor *b)
{
    if (a->ndim == 2 && b->ndim == 2 && a->shape[1] == b->shape[0])
        return true;
    char sa[64], sb[64];
    tg_op_fail(op, TG_ERR_SHAPE,
               a->ndim != 2 || b->ndim != 2 ? "needs 2-D operands: %s @ %s"
                                            : "inner dimensions differ: %s @ %s",
               tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb));
    return false;
}

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_matmul", 2, a, b) || !check_operands(&op, a, b))
        return NULL;
    tg_tensor *out = tg_op_output(&op, a->dtype, TG_DIMS(a->shape[0], b->shape[1]));
    if (!out)
        return NULL;
    tg_gemm(1.0, a, b, 0.0, out);
    tg_op_record(&op, matmul_backward, out);
    return tg_op_finish(&op, out);
}

/* ---- with a bias ---- */

/* sum of x[j * stride] for j < n: sixteen partial sums (lane k takes j =
 * k mod 16), combined pairwise, in the same order whatever the stride (a
 * layout never changes the bits); blocks of 16 let the compiler vectorise
 * the contiguous case. */
#define ROW_SUM(T)                                                                           \
    do {                                                                                     \
        const T *x = (const T *)row;                                                         \
        int64_t blocked = n - n % 16, j = 0;                                                 \
        if (stride == 1)                                                                     \
            for (; j < blocked; j += 16)                                                     \
                for (int k = 0; k < 16; k++)                                                 \
                    part[k] += x[j + k];                                                     \
        for (; j < n; j++)                                                                   \
            part[j % 16] += x[j * stride];                                                   \
    } while (0)

static double row_sum(const tg_tensor *t, const char *row, int64_t n, int64_t stride)
{
    double part[16] = {0};
    if (t->dtype == TG_F32)
        ROW_SUM(float);
    else
        ROW_SUM(double);
    for (int w = 8; w > 0; w /= 2)
        for (int k = 0; k < w; k++)
            part[k] += part[k + w];
    return part[0];
}

/* As matmul_backward, and dbias += the row sums of dC. */
static void matmul_bias_backward(tg_tape *tape, const tg_entry *e)
{
    matmul_backward(tape, e);
    const tg_tensor *g = tg_grad_out(e->out[0]);
    tg_tensor *gbias = tg_grad_in(tape, e->in[2]);
    if (!g || !gbias)
        return;
    int64_t es = (int64_t)tg_dtype_size(g->dtype);
    const char *base = tg_tensor_base(g);
    char *gb = tg_tensor_base(gbias);
    for (int64_t i = 0; i < g->shape[0]; i++) {
        double s = row_sum(g, base + i * g->strides[0] * es, g->shape[1], g->strides[1]);
        char *p = gb + i * gbias->strides[0] * es;
        if (g->dtype == TG_F32)
            *(float *)p += (float)s;
        else
            *(double *)p += s;
    }
}

tg_tensor *tg_matmul_bias(tg_tape *tape, tg_tensor *a, tg_tensor *b, tg_tensor *bias)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_matmul_bias", 3, a, b, bias) || !check_operands(&op, a, b))
        return NULL;
    if (bias->ndim != 2 || bias->shape[0] != a->shape[0] || bias->shape[1] != 1) {
        char sa[64], sc[64];
        return tg_op_fail(&op, TG_ERR_SHAPE, "the bias is %s but must be (%lld,1) for %s",
                          tg_shape_str(bias, sc, sizeof sc), (long long)a->shape[0],
                          tg_shape_str(a, sa, sizeof sa));
    }
    tg_tensor *out = tg_op_output(&op, a->dtype, TG_DIMS(a->shape[0], b->shape[1]));
    if (!out)
        return NULL;
    tg_tensor column; /* the bias broadcast over every column */
    tg_view_expand(&column, bias, 2, out->shape);
    tg_tensor_copy_into(out, &column);
    tg_gemm(1.0, a, b, 1.0, out);
    tg_op_record(&op, matmul_bias_backward, out);
    return tg_op_finish(&op, out);
}
