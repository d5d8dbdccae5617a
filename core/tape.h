/* The tape: reverse-mode automatic differentiation.
 *
 * Every op appends one entry to its tape: the op's name, its inputs, its
 * output(s), what its backward rule saved, and the rule. tg_backward walks
 * the entries from last to first, so the reverse of execution order is the
 * (already topological) order of the backward pass. Gradients accumulate
 * with +=: a parameter used at every time step collects the sum.
 *
 * Memory. Every tensor an op makes comes from the tape's arena: a pointer
 * bump. tg_tape_reset releases them all at once and keeps the memory for the
 * next step, so a training loop in steady state calls no malloc.
 *
 * Errors are sticky. The first failure (bad shapes, NaN in anomaly mode,
 * memory limit) is kept on the tape with a message naming the op and the
 * shapes; later ops on that tape return NULL at once, and tg_backward and
 * optimizer steps refuse to run. tg_tape_reset clears it. A backward that
 * fails part way leaves every persistent gradient as it was: during backward
 * a parameter's gradient collects in an arena buffer and is added into
 * param->grad only when the whole pass has succeeded.
 *
 * A tape's tensors. Every tensor an op makes, and every view of one, carries
 * its tape and the tape's reset count (tensor.h: tape, tape_generation). An
 * op or a backward given a tensor of another tape, or one made before the
 * tape's last reset, refuses it ("tg_mul: input 2 belongs to another tape",
 * "tg_tanh: input 1 is stale: ..."). The arena gives no memory back before
 * tg_tape_free, so a stale pointer is refused, never followed into freed
 * memory. (Reading a stale tensor with tg_tensor_get is not checked: it
 * shows whatever the arena holds now.) A view made before
 * tg_tensor_requires_grad(W, false) sends W nothing.
 *
 * Threads: what may run at the same time in different threads.
 *   - Ops and backward on different tapes, also when they read the same
 *     persistent tensors: one model shared for inference, or parameters
 *     shared in training. Each backward collects the parameters' gradients
 *     on its own tape and adds them into param->grad under a lock when it
 *     has succeeded, so param->grad ends as the sum of every pass (added in
 *     either order: equal to rounding, not bit for bit).
 *   - Anything on separate models and tapes.
 *   - Products from several threads: the thread pool runs one job at a
 *     time, the others wait; results are the same as from one thread.
 * Not at the same time: two threads on one tape; anything that writes a
 * persistent tensor (an optimizer step, zero_grad, requires_grad, a
 * checkpoint load, tg_tensor_set, tg_tensor_free) while another thread
 * reads or writes it, a backward that shares it included.
 * tests/test_threads.c runs the first three under ThreadSanitizer (make tsan).
 *
 * Writing an op (this is how every op in ops/ and nn/ is written):
 *
 *     tg_tensor *my_op(tg_tape *tape, tg_tensor *x) {
 *         tg_op op;
 *         if (!tg_op_begin(&op, tape, "my_op", 1, x))   // NULL, dtype, tape state
 *             return NULL;
 *         tg_tensor *out = tg_op_output(&op, x->dtype, x->ndim, x->shape);
 *         if (!out) return NULL;
 *         ... compute out from x ...
 *         tg_entry *e = tg_op_record(&op, my_backward, out);   // NULL when not recorded
 *         if (e) e->scalar = ...;                              // what backward needs
 *         return tg_op_finish(&op, out);                       // anomaly check
 *     }
 *     static void my_backward(tg_tape *tape, const tg_entry *e) {
 *         const tg_tensor *g = tg_grad_out(e->out[0]);         // d loss / d out
 *         tg_tensor *gx = tg_grad_in(tape, e->in[0]);          // NULL: x needs none
 *         if (gx) ... gx += f(g) ...
 *     }
 */
#ifndef TG_TAPE_H
#define TG_TAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_tape tg_tape;
typedef struct tg_entry tg_entry;

/* A backward rule: read the gradients of e->out, add into those of e->in. */
typedef void (*tg_backward_fn)(tg_tape *tape, const tg_entry *e);

struct tg_entry {
    const char *op;          /* name, e.g. "tg_matmul" */
    tg_backward_fn backward; /* NULL for views (their gradient needs no rule) */
    int n_in, n_out;
    tg_tensor **in;          /* inputs as seen by the op (arena copies) */
    tg_tensor **out;         /* outputs, all roots of their own gradient */
    void *saved;             /* op-specific data from the arena, or NULL */
    double scalar;           /* small op parameters, for simple ops */
    int64_t ints[4];
    tg_entry *prev;          /* the entry recorded before this one */
    uint64_t forward_ns;     /* time of the forward, when profiling */
    uint64_t backward_ns;    /* time of the backward, when profiling */
};

/* ---- life cycle ---------------------------------------------------------- */

TG_API tg_tape *tg_tape_new(void);
TG_API void tg_tape_free(tg_tape *tape);
/* Drop every entry and every tape tensor, clear the error, keep the memory. */
TG_API void tg_tape_reset(tg_tape *tape);

/* ---- modes ---------------------------------------------------------------- */

/* While no-grad is on, ops compute but record nothing. Returns the old mode. */
TG_API bool tg_tape_no_grad(tg_tape *tape, bool on);
/* Training (the default) or evaluation: in evaluation mode tg_dropout is
 * the identity, and so is the dropout of every layer run on this tape. The
 * mode sits on the tape because a forward pass is a run of ops on one tape,
 * which already carries that run's other modes (no-grad, anomaly): a whole
 * model, however it is assembled, switches with one call and no layer can
 * be missed. Returns the old mode; reset keeps it. */
TG_API bool tg_tape_set_training(tg_tape *tape, bool training);
TG_API bool tg_tape_is_training(const tg_tape *tape);
/* Anomaly mode: check every op's output (and, in backward, every gradient)
 * for NaN/Inf; the first op that produced one is named in the error (a view
 * produces nothing; a value that was already non-finite in an op's input,
 * from data or a parameter, is reported as such). */
TG_API void tg_tape_set_anomaly(tg_tape *tape, bool on);
/* Time every op's forward and backward (see tg_tape_profile). */
TG_API void tg_tape_set_profiling(tg_tape *tape, bool on);
/* Refuse to grow the arena past `bytes` (0 = no limit). Hitting the limit is
 * a TG_ERR_NOMEM error on the tape, never a crash. */
TG_API void tg_tape_set_memory_limit(tg_tape *tape, size_t bytes);

/* ---- state ----------------------------------------------------------------- */

TG_API tg_status tg_tape_status(const tg_tape *tape);
TG_API const char *tg_tape_error(const tg_tape *tape); /* "" when fine */
TG_API size_t tg_tape_entry_count(const tg_tape *tape);
TG_API size_t tg_tape_bytes_used(const tg_tape *tape);    /* arena bytes since reset */
TG_API size_t tg_tape_bytes_reserved(const tg_tape *tape); /* arena capacity */
/* Last entry recorded (walk backwards through e->prev), or NULL. */
TG_API const tg_entry *tg_tape_last_entry(const tg_tape *tape);

/* Record an error on the tape (the first one wins); returns its status. */
TG_API tg_status tg_tape_fail(tg_tape *tape, tg_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- backward ---------------------------------------------------------------- */

/* d loss / d loss = 1 for a one-element loss, then every entry in reverse.
 * Adds into the gradients of every tensor that requires one. */
TG_API tg_status tg_backward(tg_tape *tape, tg_tensor *loss);
/* Same, from any output with an explicit seed gradient of its shape. */
TG_API tg_status tg_backward_with(tg_tape *tape, tg_tensor *output, const tg_tensor *seed);

/* ---- memory --------------------------------------------------------------------- */

/* `bytes` of 64-byte-aligned arena memory, or NULL (error recorded). */
TG_API void *tg_tape_alloc(tg_tape *tape, size_t bytes);
/* A contiguous tape tensor (not zeroed), or NULL (error recorded). */
TG_API tg_tensor *tg_tape_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape);
/* The same, zero-filled. */
TG_API tg_tensor *tg_tape_zeros(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape);
/* A tape copy of the description of t (shares its data). */
TG_API tg_tensor *tg_tape_view_of(tg_tape *tape, const tg_tensor *t);
/* Mark a tensor struct that lives in the tape's arena as this tape's, of
 * this step (tape_tensor, tg_tape_view_of and the ops' own views do). */
TG_API void tg_tape_tag(tg_tape *tape, tg_tensor *t);
/* NULL if t may be used on the tape now (a persistent tensor, or a tensor
 * the tape made since its last reset); else why not ("belongs to another
 * tape", "is stale: ..."). tg_op_begin and backward refuse such tensors. */
TG_API const char *tg_tape_foreign(const tg_tape *tape, const tg_tensor *t);

/* ---- writing ops -------------------------------------------------------------------- */

/* tg_op_begin takes at most this many inputs; tg_op_begin_array any number. */
#define TG_OP_MAX_INPUTS 16

typedef struct {
    tg_tape *tape;
    const char *name;
    int n_in;
    tg_tensor **in;   /* the inputs; an op may replace one by a view of it */
    tg_tensor *inline_in[TG_OP_MAX_INPUTS];
    bool needs_grad;  /* some input carries a gradient and recording is on */
    uint64_t start_ns;
    tg_entry *entry;  /* set by tg_op_record */
} tg_op;

/* Start an op: check the tape, that no input is NULL and that all inputs
 * share one dtype. Returns false (error recorded) if the op must not run. */
TG_API bool tg_op_begin(tg_op *op, tg_tape *tape, const char *name, int n_in, ...);
/* Same with an array of inputs. */
TG_API bool tg_op_begin_array(tg_op *op, tg_tape *tape, const char *name, int n_in,
                              tg_tensor *const *in);
/* Fail the op with a message; the op's name is prefixed. Returns NULL. */
TG_API void *tg_op_fail(tg_op *op, tg_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A fresh output tensor for the op (contiguous, not zeroed). */
TG_API tg_tensor *tg_op_output(tg_op *op, tg_dtype dtype, int ndim, const int64_t *shape);
/* Record an entry with one output if some input needs a gradient; marks the
 * output as a gradient root. Returns the entry (to fill `saved`, `scalar`,
 * `ints`) or NULL when nothing is recorded (no grad needed, or no-grad mode). */
TG_API tg_entry *tg_op_record(tg_op *op, tg_backward_fn backward, tg_tensor *out);
/* Same with several outputs. */
TG_API tg_entry *tg_op_record_n(tg_op *op, tg_backward_fn backward, int n_out, tg_tensor **out);
/* Finish: anomaly check of outputs, profiling. Returns out, or NULL on error. */
TG_API tg_tensor *tg_op_finish(tg_op *op, tg_tensor *out);
TG_API tg_status tg_op_finish_n(tg_op *op, int n_out, tg_tensor **out);

/* In a backward rule: the gradient of an output, or NULL if nothing flowed
 * into it (then the rule has nothing to do for it). */
TG_API const tg_tensor *tg_grad_out(const tg_tensor *out);
/* In a backward rule: the gradient view of input t to add into (allocated and
 * zeroed on first use), or NULL if t needs no gradient. The view has t's shape
 * and strides and lies inside the gradient of t's root. */
TG_API tg_tensor *tg_grad_in(tg_tape *tape, const tg_tensor *t);

/* ---- profile --------------------------------------------------------------------------- */

typedef struct {
    const char *op;
    int64_t count;
    uint64_t forward_ns, backward_ns;
} tg_op_profile;

/* Sum time per op kind over the current tape; writes up to `max` rows sorted
 * by total time, returns the number of kinds. Needs profiling on. */
TG_API int tg_tape_profile(const tg_tape *tape, tg_op_profile *rows, int max);
/* Print the profile as a table. */
TG_API void tg_tape_print_profile(const tg_tape *tape, FILE *f);

/* ---- picture ------------------------------------------------------------------------------ */

/* Write the tape as a Graphviz DOT graph (core/tape_dot.c): ops are boxes
 * (view ops dashed), tensors ellipses labelled with their shapes, persistent
 * ones filled and named; edges run input -> op -> output. Render it with
 * `dot -Tsvg tape.dot -o tape.svg`. TG_ERR_IO if writing failed. */
TG_API tg_status tg_tape_dot(const tg_tape *tape, FILE *f);

#ifdef __cplusplus
}
#endif

#endif
