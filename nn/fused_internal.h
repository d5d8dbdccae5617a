/* Private to nn/fused*.c: the workspace of the fused recurrent engine.
 *
 * Files: fused.c (the public raw kernels and tape nodes), fused_layout.c
 * (this layout, the workspace header, argument checks), fused_engine.c
 * (the time loops, the products, how threads share them), fused_moves.c
 * (tensors into and out of the workspace), fused_gates.c + .inc (the
 * elementwise gate math of one step, compiled per instruction set).
 *
 * Rows. The engine works on "packed sequence" rows, as PyTorch's
 * PackedSequence does: the m examples are sorted by length, longest first
 * (stably, so equal lengths keep their order), and example j gets slot
 * s = slot[j]. Step t is computed for the m_t slots still running, rows
 * off[t] .. off[t] + m_t - 1, R = sum m_t rows in all. Without lengths
 * every m_t is m, off[t] = t m and slot s is example s. A reverse layer
 * reads slot s's input at time L_s - 1 - t at its step t.
 *
 * With G = gates * n_a rows of stacked weights (1 gate block for the RNN;
 * 4 for the LSTM, in the order f, i, c, o; 3 for the GRU: r, z, n) and
 * K = n_a + n_x, the workspace holds, every matrix row-major:
 *
 *   schedule               m_t, off[t], and per slot its length and example
 *   Ws  (G, K)             the weights stacked, acting on [a_prev; x]
 *                          (RNN: [Waa | Wax]; LSTM: rows Wf, Wi, Wc, Wo;
 *                          GRU: rows [Ur | Wr], [Uz | Wz], [Un | Wn])
 *   WaT (n_a, G)           Ws[:, :n_a] transposed (one-example steps' gemv)
 *   bs  (G)                the biases stacked (GRU: then bhn, G + n_a)
 *   Pf                     per gate, Wa_k^T packed for the recurrent products
 *   AX  (R + m, K)         row off[t]+s = [a_prev | x_t] of slot s at step t;
 *                          the a part is where step t-1 wrote its state.
 *                          Rows R .. R+m-1: the final state of each slot
 *   Z   (R, G)             gate pre-activations; the LSTM's and GRU's gate
 *                          passes leave their activated gates in place
 *   C   (R + m, n_a)       LSTM cell states, rows as AX's a part (c0 first)
 *   Rg  (R, G)             GRU: the recurrent projections U a_prev (apart,
 *                          as r multiplies Un a_prev + bhn)
 *   RA  (R, n_a)           GRU with linear_before_reset false: r * a_prev
 * and for backward
 *   Pb                     Ws[:, :n_a] packed (what reaches a_prev)
 *   dZ  (R, G)             d loss / d pre-activations, x side
 *   dGh (R, G)             GRU: the same on the a side (for n: r * dZ_n);
 *                          for the RNN and LSTM the two sides are equal
 *   dH, dC (R + m, n_a)    d loss / d a and d loss / d c, rows as AX's a
 *                          part; rows 0 .. m-1 end as da0, dc0
 *   dWs (G, K), dX (R, n_x)  targets of the final products
 *   dbs (G)                the bias gradients, column sums of dZ (GRU: then
 *                          bhn's, from dGh)
 *
 * State rows. The state a slot has after step t goes to row off[t+1] + s
 * when the slot runs at step t+1 (s < m_{t+1}: where step t+1 reads it),
 * else to its final row R + s. So step t's states are two runs of rows,
 * [0, m_{t+1}) from off[t+1] and [m_{t+1}, m_t) from R. */
#ifndef TG_FUSED_INTERNAL_H
#define TG_FUSED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/isa.h"
#include "../core/tensor.h"
#include "../ops/gemm_packed.h"

enum { RNN_GATES = 1, GRU_GATES = 3, LSTM_GATES = 4 };
/* The gate math variants (index of the gate tables). */
typedef enum { CELL_RNN = 0, CELL_LSTM = 1, CELL_GRU = 2, CELL_GRU_RESET_FIRST = 3 } fused_cell;
enum { N_CELLS = 4 };

extern const char *const tg_fused_lstm_w_names[4];
extern const char *const tg_fused_lstm_b_names[4];
extern const char *const tg_fused_gru_w_names[3];
extern const char *const tg_fused_gru_u_names[3];
extern const char *const tg_fused_gru_b_names[4];

/* Dimensions, options and byte offsets of the regions described above. */
typedef struct {
    tg_dtype dtype;
    size_t es; /* element size */
    fused_cell cell;
    int gates;
    int64_t n_x, n_a, m, T_x, K, G, R;
    bool lengths; /* a schedule other than every example for every step */
    bool reverse;
    size_t sched, Ws, WaT, bs, Pf, AX, Z, C, Rg, RA;
    size_t Pb, dZ, dGh, dH, dC, dWs, dbs, dX;
    size_t pack_f, pack_b; /* bytes of one packed forward gate, of the packed backward */
    size_t forward_bytes, total_bytes;
    bool with_backward; /* the backward regions exist */
} layout;

/* The schedule in the workspace: steps_m[T_x + 1] (m_T = 0), off[T_x + 1],
 * then per slot len[m] and example[m], and per example slot[m]. */
typedef struct {
    const int64_t *m_t, *off;
    const int32_t *len, *example, *slot;
} schedule;

/* ---- fused_layout.c ---- */

/* The layout of a cell for x (n_x, m, T_x); R = m * T_x without lengths. */
tg_status tg_fused_make_layout(const char *who, tg_dtype dtype, fused_cell cell, int64_t n_x,
                               int64_t n_a, int64_t m, int64_t T_x, int64_t R, bool lengths,
                               bool reverse, bool with_backward, layout *L);
/* R for the given lengths (m of them, each 1..T_x; checked, the first bad
 * one named), or m * T_x for NULL. */
tg_status tg_fused_rows(const char *who, const int32_t *lengths, int64_t m, int64_t T_x,
                        int64_t *R);
/* The start of a forward, once its arguments are checked: the layout, the
 * header and the schedule written into a workspace of `bytes` (the
 * backward part is there if the bytes reach it). */
tg_status tg_fused_begin_forward(const char *who, fused_cell cell, const tg_tensor *x,
                                 int64_t n_a, const int32_t *lengths, bool reverse, void *ws,
                                 size_t bytes, layout *L);
/* The layout of the finished forward a workspace holds; `cell` < 0: any. */
tg_status tg_fused_read_header(const char *who, const void *ws, size_t bytes, int cell,
                               bool for_backward, layout *L);
void tg_fused_mark_forward_done(void *ws);
schedule tg_fused_schedule(const layout *L, const void *ws);
/* Address of element `index` of a region. */
static inline void *tg_fused_at(const layout *L, const void *ws, size_t region, int64_t index)
{
    return (char *)(uintptr_t)ws + region + (size_t)index * L->es;
}

/* Argument checks (NULL outputs are not checked); *n_a is read off the weights. */
tg_status tg_fused_check_rnn(const char *who, const tg_tensor *x, const tg_tensor *a0,
                             const tg_tensor *Wax, const tg_tensor *Waa, const tg_tensor *ba,
                             const tg_tensor *a, int64_t *n_a);
tg_status tg_fused_check_lstm(const char *who, const tg_tensor *x, const tg_tensor *a0,
                              const tg_tensor *c0, const tg_tensor *const W[4],
                              const tg_tensor *const b[4], const tg_tensor *a,
                              const tg_tensor *c, int64_t *n_a);
tg_status tg_fused_check_gru(const char *who, const tg_tensor *x, const tg_tensor *a0,
                             const tg_tensor *const W[3], const tg_tensor *const U[3],
                             const tg_tensor *const b[4], const tg_tensor *a, int64_t *n_a);
/* A gradient given to backward: NULL is fine (not wanted); depth 0: 2-D. */
tg_status tg_fused_check_grad(const char *who, const char *name, const tg_tensor *t,
                              const layout *L, const char *dims, int64_t rows, int64_t cols,
                              int64_t depth);
/* The start of a backward: the layout, and the state gradients checked
 * (dc, dc0: LSTM only; the final-state gradients: (n_a, m)). */
tg_status tg_fused_begin_backward(const char *who, const void *ws, size_t bytes, int cell,
                                  const tg_tensor *da, const tg_tensor *dc, const tg_tensor *dx,
                                  const tg_tensor *da0, const tg_tensor *dc0, layout *L);

/* ---- fused_moves.c ---- */

/* How a tensor and the workspace meet: TO_WS copies the tensor in
 * (ADD_TO_WS: adds it), FROM_WS copies out into the tensor, ADD_FROM_WS
 * adds into it. */
enum { TO_WS, ADD_TO_WS, FROM_WS, ADD_FROM_WS };
/* Which workspace row holds slot s at step t: the step's own row (AX's x
 * part, Z, dZ, dX) or the row of its state after the step (AX's a part,
 * C, dH, dC). */
typedef enum { STEP_ROWS, STATE_ROWS } row_kind;

/* The sequence t (n, m, T_x) and a region's columns col0 .. col0+n (rows
 * ld apart) in packed rows of the given kind (see fused_moves.c). */
void tg_fused_move_seq(const layout *L, const void *ws, size_t region, int64_t col0, int64_t ld,
                       row_kind kind, const tg_tensor *t, int how);
/* The state t (n_a, m) and a region's rows row0 + slot (columns 0 .. n_a). */
void tg_fused_move_state(const layout *L, const void *ws, size_t region, int64_t row0,
                         int64_t ld, const tg_tensor *t, int how);
/* Zero n_rows rows of `cols` elements, `ld` apart, from element `first`. */
void tg_fused_zero_rows(const layout *L, void *ws, size_t region, int64_t first, int64_t n_rows,
                        int64_t cols, int64_t ld);
/* sums[c] = the sum over the R rows of a region's columns col0 .. col0+n-1. */
void tg_fused_column_sums(const layout *L, void *ws, size_t region, int64_t col0, int64_t n,
                          int64_t ld, void *sums);
/* Threads worth using for a pass over `bytes` (see fused_moves.c). */
int tg_fused_move_threads(int64_t bytes);

/* Ws[row0 :, col0 :] = src (2-D, any strides); bs[index0 :] = src (n, 1). */
void tg_fused_stack_matrix(const layout *L, void *ws, const tg_tensor *src, int64_t row0,
                           int64_t col0);
void tg_fused_stack_bias(const layout *L, void *ws, const tg_tensor *src, int64_t index0);
/* dW += dWs[row0 : +rows(dW), col0 : +cols(dW)]; db += dbs[index0 : +n]. */
void tg_fused_scatter_weight(const layout *L, const void *ws, tg_tensor *dW, int64_t row0,
                             int64_t col0);
void tg_fused_scatter_bias(const layout *L, const void *ws, tg_tensor *db, int64_t index0);

/* ---- fused_engine.c ---- */

/* What the engine reads and writes besides the workspace. In: x, a0, c0
 * (NULL: zeros). Out: the sequences a, c and the final states a_n, c_n
 * (NULL: not wanted). For backward the same names hold gradients. */
typedef struct {
    const tg_tensor *x, *a0, *c0;
    tg_tensor *a, *c, *a_n, *c_n;
} fused_io;
typedef struct {
    const tg_tensor *da, *dc, *da_n, *dc_n;
    tg_tensor *dx, *da0, *dc0;
} fused_grads;

/* The forward over every step; Ws and bs already stacked. */
void tg_fused_engine_forward(const layout *L, void *ws, const fused_io *io);
/* d loss / d a (and c) of every step, from the last step back: fills dZ,
 * adds into dx, da0, dc0 and, when `weights`, computes dWs and dbs for
 * the callers to scatter. Returns false when nothing flowed in. */
bool tg_fused_engine_backward(const layout *L, void *ws, const fused_grads *g, bool weights);

/* For tests: force how the time loop is shared, whatever plan_loop would
 * choose (TG_SHARE_AUTO: its choice). With one thread every mode is the
 * single thread; by units needs n_a of at least two packed slivers. */
typedef enum { TG_SHARE_AUTO = 0, TG_SHARE_ROWS = 1, TG_SHARE_UNITS = 2 } tg_fused_sharing;
void tg_fused_force_sharing(tg_fused_sharing mode);

/* Profiling (fused.h): a start time when profiling is on, else 0; then
 * the time since `start` added to one counter. */
typedef enum { PROF_MOVES, PROF_PACKING, PROF_BIG_GEMM, PROF_STEP_GEMM, PROF_GATES, PROF_LOOP,
               PROF_TOTAL, PROF_KINDS } prof_kind;
uint64_t tg_fused_prof_start(void);
void tg_fused_prof_add(prof_kind kind, uint64_t start);

/* ---- fused_gates.c: the gate math of one step, per instruction set ---- */

/* The pointers of one step for a slice of the hidden units and a set of
 * its rows: gate k of unit u of row j is at z[j zs + k n_a + u], and every
 * pointer already points at the slice's first unit and the set's first
 * row. The rows are m of the step's slots (every rs-th: zs, hs and cs are
 * rs rows of Z, AX and C); states after the step go to row j of *_next
 * for j < m_next, else of *_fin (see "State rows" above). */
typedef struct {
    int64_t m, m_next, n_a;
    int64_t zs, hs, cs; /* row strides of Z (Rg, dZ, dGh), AX, C (dH, dC, RA) */
    int64_t w;                        /* the slice's hidden units */
    void *z;                          /* Z rows of the step */
    const void *b;                    /* bs */
    void *h_next, *h_fin;             /* AX a part: the state after the step */
    const void *h_prev;               /* AX a part: the state before it */
    const void *c_prev;               /* C */
    void *c_next, *c_fin;             /* C */
    void *r;                          /* GRU: Rg rows */
    void *ra;                         /* GRU, reset first: RA rows */
    void *dz, *dgh;                   /* dZ, dGh rows */
    const void *dh_next, *dh_fin;     /* dH: d loss / d a after the step */
    const void *dc_next, *dc_fin;     /* dC: d loss / d c after the step */
    void *dc_prev;                    /* dC rows of the step: what reaches c_prev */
    void *dh_prev;                    /* dH rows of the step: what reaches a_prev (GRU) */
} step_ptrs;

typedef void (*tg_gate_fn)(const step_ptrs *p);

/* pass[cell][backward][f64]; reset_a: the GRU-reset-first's first stage
 * (r and z, then r * a_prev) forward, and its backward's second stage. */
typedef struct {
    tg_gate_fn pass[N_CELLS][2][2];
    tg_gate_fn reset_first_stage[2][2];
} tg_gates_table;

TG_ISA_DECLARE(const tg_gates_table, tg_gates_table);

static inline const tg_gates_table *tg_gates_active(void) { return TG_ISA_PICK(tg_gates_table); }

#endif
