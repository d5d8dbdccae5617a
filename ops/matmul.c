/* tg_matmul: (M,K) @ (K,N) on the tape. */
#include "ops.h"

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

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_matmul", 2, a, b))
        return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0]) {
        char sa[64], sb[64];
        return tg_op_fail(&op, TG_ERR_SHAPE,
                          a->ndim != 2 || b->ndim != 2 ? "needs 2-D operands: %s @ %s"
                                                       : "inner dimensions differ: %s @ %s",
                          tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb));
    }
    tg_tensor *out = tg_op_output(&op, a->dtype, TG_DIMS(a->shape[0], b->shape[1]));
    if (!out)
        return NULL;
    tg_gemm(1.0, a, b, 0.0, out);
    tg_op_record(&op, matmul_backward, out);
    return tg_op_finish(&op, out);
}
