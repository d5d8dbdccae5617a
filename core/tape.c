/* The tape, its arena, backward, and the helpers every op is written with. */
#include "tape.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iter.h"
#include "platform.h"

enum { ARENA_ALIGN = 64, ARENA_FIRST_CHUNK = 1 << 20, TAPE_MESSAGE_MAX = 512 };

/* Arena memory is a list of chunks; allocation bumps `used` in the current
 * one. After a step that needed more than one chunk, reset merges them into
 * one chunk of the total size, so the next identical step never mallocs. */
typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    unsigned char *data; /* ARENA_ALIGN-aligned */
} chunk;

/* During backward, the gradient of a persistent root (a parameter) is
 * collected in an arena buffer and added into the user's gradient only when
 * the whole pass succeeded: a backward that fails half way (anomaly, memory
 * limit) leaves every parameter's gradient exactly as it was. */
typedef struct held_grad {
    struct held_grad *next;
    tg_tensor *root;
    tg_tensor *user_grad; /* root->grad outside backward */
} held_grad;

struct tg_tape {
    chunk *first, *current;
    size_t reserved, used, limit;
    tg_entry *last;
    size_t n_entries;
    tg_status status;
    char message[TAPE_MESSAGE_MAX];
    bool no_grad, anomaly, profiling, backward_done, in_backward, evaluation;
    held_grad *held;
};

/* ---- life cycle ------------------------------------------------------------ */

tg_tape *tg_tape_new(void)
{
    tg_tape *tape = calloc(1, sizeof *tape);
    if (!tape)
        tg_fail(TG_ERR_NOMEM, "tg_tape_new: out of memory");
    return tape;
}

static void free_chunks(chunk *c)
{
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
}

void tg_tape_free(tg_tape *tape)
{
    if (!tape)
        return;
    free_chunks(tape->first);
    free(tape);
}

static chunk *new_chunk(size_t size)
{
    size_t total;
    if (tg_add_overflows(sizeof(chunk) + ARENA_ALIGN, size, &total))
        return NULL;
    chunk *c = malloc(total);
    if (!c)
        return NULL;
    uintptr_t p = (uintptr_t)(c + 1);
    p = (p + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
    c->data = (unsigned char *)p;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void tg_tape_reset(tg_tape *tape)
{
    if (!tape)
        return;
    if (tape->first && tape->first->next) {
        size_t total = tape->reserved;
        free_chunks(tape->first);
        tape->first = new_chunk(total);
        tape->reserved = tape->first ? total : 0;
    }
    for (chunk *c = tape->first; c; c = c->next)
        c->used = 0;
    tape->current = tape->first;
    tape->used = 0;
    tape->last = NULL;
    tape->n_entries = 0;
    tape->status = TG_OK;
    tape->message[0] = '\0';
    tape->backward_done = false;
}

/* ---- modes and state ----------------------------------------------------------- */

bool tg_tape_no_grad(tg_tape *tape, bool on)
{
    if (!tape)
        return false;
    bool old = tape->no_grad;
    tape->no_grad = on;
    return old;
}

bool tg_tape_set_training(tg_tape *tape, bool training)
{
    if (!tape)
        return false;
    bool old = !tape->evaluation;
    tape->evaluation = !training;
    return old;
}

bool tg_tape_is_training(const tg_tape *tape) { return tape && !tape->evaluation; }

void tg_tape_set_anomaly(tg_tape *tape, bool on)
{
    if (tape)
        tape->anomaly = on;
}

void tg_tape_set_profiling(tg_tape *tape, bool on)
{
    if (tape)
        tape->profiling = on;
}

void tg_tape_set_memory_limit(tg_tape *tape, size_t bytes)
{
    if (tape)
        tape->limit = bytes;
}

tg_status tg_tape_status(const tg_tape *tape) { return tape ? tape->status : TG_ERR_ARG; }

const char *tg_tape_error(const tg_tape *tape)
{
    return tape ? tape->message : "tape is NULL";
}

size_t tg_tape_entry_count(const tg_tape *tape) { return tape ? tape->n_entries : 0; }
size_t tg_tape_bytes_used(const tg_tape *tape) { return tape ? tape->used : 0; }
size_t tg_tape_bytes_reserved(const tg_tape *tape) { return tape ? tape->reserved : 0; }
const tg_entry *tg_tape_last_entry(const tg_tape *tape) { return tape ? tape->last : NULL; }

static tg_status tape_vfail(tg_tape *tape, tg_status status, const char *fmt, va_list ap)
{
    char message[TAPE_MESSAGE_MAX];
    vsnprintf(message, sizeof message, fmt, ap);
    if (tape && tape->status == TG_OK) {
        tape->status = status;
        memcpy(tape->message, message, sizeof message);
    }
    tg_fail(status, "%s", message);
    return status;
}

tg_status tg_tape_fail(tg_tape *tape, tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tape_vfail(tape, status, fmt, ap);
    va_end(ap);
    return status;
}

/* ---- memory ----------------------------------------------------------------------- */

void *tg_tape_alloc(tg_tape *tape, size_t bytes)
{
    if (!tape) {
        tg_fail(TG_ERR_ARG, "tg_tape_alloc: tape is NULL");
        return NULL;
    }
    size_t need;
    if (tg_add_overflows(bytes, ARENA_ALIGN - 1, &need)) {
        tg_tape_fail(tape, TG_ERR_OVERFLOW, "tape arena: a request of %zu bytes overflows", bytes);
        return NULL;
    }
    need &= ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0)
        need = ARENA_ALIGN;
    for (chunk *c = tape->current; c; c = c->next) {
        if (c->size - c->used >= need) {
            void *p = c->data + c->used;
            c->used += need;
            tape->used += need;
            tape->current = c;
            return p;
        }
    }
    size_t size = need > ARENA_FIRST_CHUNK ? need : ARENA_FIRST_CHUNK;
    if (tape->reserved > size)
        size = tape->reserved; /* grow geometrically */
    if (size < need)
        size = need;
    if (tape->limit) {
        size_t room = tape->limit > tape->reserved ? tape->limit - tape->reserved : 0;
        if (room < need) {
            tg_tape_fail(tape, TG_ERR_NOMEM,
                         "tape arena: memory limit of %zu bytes reached (%zu in use, %zu more "
                         "requested)",
                         tape->limit, tape->used, bytes);
            return NULL;
        }
        if (size > room)
            size = room;
    }
    chunk *c = new_chunk(size);
    if (!c) {
        tg_tape_fail(tape, TG_ERR_NOMEM, "tape arena: cannot allocate %zu bytes", size);
        return NULL;
    }
    /* Append after the last chunk so earlier chunks keep their order. */
    if (!tape->first)
        tape->first = c;
    else {
        chunk *tail = tape->current ? tape->current : tape->first;
        while (tail->next)
            tail = tail->next;
        tail->next = c;
    }
    tape->reserved += size;
    c->used = need;
    tape->used += need;
    tape->current = c;
    return c->data;
}

static tg_tensor *tape_tensor(tg_tape *tape, const char *who, tg_dtype dtype, int ndim,
                              const int64_t *shape, bool zero)
{
    int64_t numel;
    size_t elsize = tg_dtype_size(dtype);
    if (elsize == 0) {
        tg_tape_fail(tape, TG_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
        return NULL;
    }
    if (tg_check_shape(who, ndim, shape, &numel) != TG_OK) {
        tg_tape_fail(tape, tg_last_status(), "%s", tg_last_error());
        return NULL;
    }
    size_t bytes;
    if (tg_mul_overflows((size_t)numel, elsize, &bytes)) {
        tg_tape_fail(tape, TG_ERR_OVERFLOW, "%s: tensor size overflows", who);
        return NULL;
    }
    tg_tensor *t = tg_tape_alloc(tape, sizeof *t);
    void *data = t ? tg_tape_alloc(tape, bytes) : NULL;
    if (!data)
        return NULL;
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->strides[d] = stride;
        stride *= shape[d];
    }
    t->data = data;
    t->flags = TG_TENSOR_ARENA;
    if (zero)
        memset(data, 0, bytes);
    return t;
}

tg_tensor *tg_tape_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape)
{
    return tape_tensor(tape, "tg_tape_tensor", dtype, ndim, shape, false);
}

tg_tensor *tg_tape_zeros(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape)
{
    return tape_tensor(tape, "tg_tape_zeros", dtype, ndim, shape, true);
}

tg_tensor *tg_tape_view_of(tg_tape *tape, const tg_tensor *t)
{
    tg_tensor *v = tg_tape_alloc(tape, sizeof *v);
    if (!v)
        return NULL;
    *v = *t;
    v->grad = NULL;
    v->flags = TG_TENSOR_ARENA;
    return v;
}

/* ---- writing ops ---------------------------------------------------------------------- */

bool tg_op_begin_array(tg_op *op, tg_tape *tape, const char *name, int n_in,
                       tg_tensor *const *in)
{
    op->tape = tape;
    op->name = name;
    op->n_in = n_in;
    op->needs_grad = false;
    op->entry = NULL;
    op->start_ns = 0;
    if (!tape) {
        tg_fail(TG_ERR_ARG, "%s: tape is NULL", name);
        return false;
    }
    if (tape->status != TG_OK) {
        tg_fail(TG_ERR_STATE, "%s: not run, the tape holds an earlier error: %s", name,
                tape->message);
        return false;
    }
    if (n_in < 0) {
        tg_tape_fail(tape, TG_ERR_ARG, "%s: %d inputs", name, n_in);
        return false;
    }
    op->in = op->inline_in;
    if (n_in > TG_OP_MAX_INPUTS && !(op->in = tg_tape_alloc(tape, sizeof *op->in * (size_t)n_in)))
        return false;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            tg_tape_fail(tape, TG_ERR_ARG, "%s: input %d is NULL", name, i + 1);
            return false;
        }
        if (tg_dtype_size(in[i]->dtype) == 0 || in[i]->ndim < 0 || in[i]->ndim > TG_MAX_DIMS) {
            tg_tape_fail(tape, TG_ERR_ARG, "%s: input %d is not a valid tensor", name, i + 1);
            return false;
        }
        if (in[i]->dtype != in[0]->dtype) {
            tg_tape_fail(tape, TG_ERR_DTYPE, "%s: dtypes differ: input 1 is %s, input %d is %s",
                         name, tg_dtype_name(in[0]->dtype), i + 1, tg_dtype_name(in[i]->dtype));
            return false;
        }
        op->in[i] = in[i];
        if (in[i]->grad_root)
            op->needs_grad = true;
    }
    if (tape->no_grad)
        op->needs_grad = false;
    if (tape->profiling)
        op->start_ns = tg_clock_ns();
    return true;
}

bool tg_op_begin(tg_op *op, tg_tape *tape, const char *name, int n_in, ...)
{
    tg_tensor *in[TG_OP_MAX_INPUTS] = {NULL};
    if (n_in > TG_OP_MAX_INPUTS) {
        tg_tape_fail(tape, TG_ERR_ARG, "%s: %d inputs (tg_op_begin takes at most %d)", name,
                     n_in, TG_OP_MAX_INPUTS);
        return false;
    }
    va_list ap;
    va_start(ap, n_in);
    for (int i = 0; i < n_in && i < TG_OP_MAX_INPUTS; i++)
        in[i] = va_arg(ap, tg_tensor *);
    va_end(ap);
    return tg_op_begin_array(op, tape, name, n_in, in);
}

void *tg_op_fail(tg_op *op, tg_status status, const char *fmt, ...)
{
    char message[TAPE_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    tg_tape_fail(op->tape, status, "%s: %s", op->name, message);
    return NULL;
}

tg_tensor *tg_op_output(tg_op *op, tg_dtype dtype, int ndim, const int64_t *shape)
{
    return tape_tensor(op->tape, op->name, dtype, ndim, shape, false);
}

/* Keep what the entry points at alive until backward: tensors the caller
 * made on the stack (views) are copied into the arena. */
static tg_tensor *pin_input(tg_tape *tape, tg_tensor *t)
{
    if (t->flags & (TG_TENSOR_ARENA | TG_TENSOR_HEAP))
        return t;
    return tg_tape_view_of(tape, t);
}

tg_entry *tg_op_record_n(tg_op *op, tg_backward_fn backward, int n_out, tg_tensor **out)
{
    tg_tape *tape = op->tape;
    if (!op->needs_grad || tape->status != TG_OK)
        return NULL;
    tg_entry *e = tg_tape_alloc(tape, sizeof *e);
    tg_tensor **in = tg_tape_alloc(tape, sizeof *in * (size_t)(op->n_in + 1));
    tg_tensor **outs = tg_tape_alloc(tape, sizeof *outs * (size_t)n_out);
    if (!e || !in || !outs)
        return NULL;
    memset(e, 0, sizeof *e);
    for (int i = 0; i < op->n_in; i++)
        if (!(in[i] = pin_input(tape, op->in[i])))
            return NULL;
    for (int k = 0; k < n_out; k++) {
        outs[k] = out[k];
        out[k]->grad_root = out[k];
    }
    e->op = op->name;
    e->backward = backward;
    e->n_in = op->n_in;
    e->in = in;
    e->n_out = n_out;
    e->out = outs;
    e->prev = tape->last;
    tape->last = e;
    tape->n_entries++;
    op->entry = e;
    return e;
}

tg_entry *tg_op_record(tg_op *op, tg_backward_fn backward, tg_tensor *out)
{
    return tg_op_record_n(op, backward, 1, &out);
}

typedef struct {
    tg_dtype dtype;
    bool finite;
} finite_check;

static void finite_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    finite_check *c = ctx;
    if (!c->finite)
        return;
    if (c->dtype == TG_F32) {
        const float *p = ptr[0];
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(p[i * stride[0]])) {
                c->finite = false;
                return;
            }
    } else {
        const double *p = ptr[0];
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(p[i * stride[0]])) {
                c->finite = false;
                return;
            }
    }
}

static bool all_finite(const tg_tensor *t)
{
    finite_check c = {t->dtype, true};
    const tg_tensor *operands[1] = {t};
    tg_iter_tensors(1, operands, finite_row, &c);
    return c.finite;
}

/* True when out shares the storage of an input: a view, which computed nothing. */
static bool is_view_of_input(const tg_op *op, const tg_tensor *out)
{
    for (int i = 0; i < op->n_in; i++)
        if (op->in[i]->data == out->data)
            return true;
    return false;
}

tg_status tg_op_finish_n(tg_op *op, int n_out, tg_tensor **out)
{
    tg_tape *tape = op->tape;
    if (tape->status != TG_OK)
        return tape->status;
    for (int k = 0; tape->anomaly && k < n_out; k++) {
        if (is_view_of_input(op, out[k]) || all_finite(out[k]))
            continue; /* a view passes values on: the op that made them answers */
        char s[64], si[64], source[160] = ""; /* an input that already held one */
        for (int i = 0; i < op->n_in && !source[0]; i++)
            if (!all_finite(op->in[i]))
                snprintf(source, sizeof source,
                         ": its input %d %s%s%s already held one (data or a parameter)", i + 1,
                         op->in[i]->name ? op->in[i]->name : "", op->in[i]->name ? " " : "",
                         tg_shape_str(op->in[i], si, sizeof si));
        tg_tape_fail(tape, TG_ERR_NONFINITE,
                     "anomaly: %s produced a non-finite value in its output %d %s%s", op->name,
                     k + 1, tg_shape_str(out[k], s, sizeof s), source);
        return TG_ERR_NONFINITE;
    }
    if (tape->profiling && op->entry)
        op->entry->forward_ns = tg_clock_ns() - op->start_ns;
    return TG_OK;
}

tg_tensor *tg_op_finish(tg_op *op, tg_tensor *out)
{
    return tg_op_finish_n(op, 1, &out) == TG_OK ? out : NULL;
}

const tg_tensor *tg_grad_out(const tg_tensor *out) { return out ? out->grad : NULL; }

/* Point root->grad at a zeroed arena buffer until backward ends. */
static bool hold_gradient(tg_tape *tape, tg_tensor *root)
{
    held_grad *h = tg_tape_alloc(tape, sizeof *h);
    tg_tensor *buffer =
        h ? tape_tensor(tape, "backward", root->dtype, root->ndim, root->shape, true) : NULL;
    if (!buffer)
        return false;
    h->root = root;
    h->user_grad = root->grad;
    h->next = tape->held;
    tape->held = h;
    root->grad = buffer;
    return true;
}

/* Give every held root its own gradient back, adding what was collected
 * when the pass succeeded. */
static void release_held(tg_tape *tape, bool commit)
{
    for (held_grad *h = tape->held; h; h = h->next) {
        tg_tensor *collected = h->root->grad;
        h->root->grad = h->user_grad;
        if (commit)
            tg_accumulate(h->user_grad, collected, 1.0);
    }
    tape->held = NULL;
}

tg_tensor *tg_grad_in(tg_tape *tape, const tg_tensor *t)
{
    tg_tensor *root = t->grad_root;
    if (!root)
        return NULL;
    if (!root->grad) {
        /* Only tape roots get here: persistent roots own their gradient. */
        root->grad = tape_tensor(tape, "backward", root->dtype, root->ndim, root->shape, true);
        if (!root->grad)
            return NULL;
    } else if (tape->in_backward && !(root->grad->flags & TG_TENSOR_ARENA)) {
        if (!hold_gradient(tape, root))
            return NULL;
    }
    if (t == root)
        return root->grad;
    tg_tensor *g = tg_tape_alloc(tape, sizeof *g);
    if (!g)
        return NULL;
    *g = *t;
    g->data = root->grad->data;
    g->grad = NULL;
    g->grad_root = NULL;
    g->flags = TG_TENSOR_ARENA;
    return g;
}

/* ---- backward ------------------------------------------------------------------------- */

static tg_status run_entries(tg_tape *tape);

static tg_status run_backward(tg_tape *tape)
{
    tape->in_backward = true;
    tg_status status = run_entries(tape);
    tape->in_backward = false;
    release_held(tape, status == TG_OK);
    return status;
}

static tg_status run_entries(tg_tape *tape)
{
    for (tg_entry *e = tape->last; e; e = e->prev) {
        if (!e->backward)
            continue;
        bool any = false;
        for (int k = 0; k < e->n_out; k++)
            if (e->out[k]->grad)
                any = true;
        if (!any)
            continue;
        uint64_t t0 = tape->profiling ? tg_clock_ns() : 0;
        e->backward(tape, e);
        if (tape->status != TG_OK)
            return tape->status;
        if (tape->profiling)
            e->backward_ns += tg_clock_ns() - t0;
        if (tape->anomaly) {
            for (int i = 0; i < e->n_in; i++) {
                tg_tensor *root = e->in[i]->grad_root;
                if (root && root->grad && !all_finite(root->grad)) {
                    char s[64];
                    return tg_tape_fail(
                        tape, TG_ERR_NONFINITE,
                        "anomaly: the backward of %s produced a non-finite gradient for input %d %s",
                        e->op, i + 1, tg_shape_str(e->in[i], s, sizeof s));
                }
            }
        }
    }
    return TG_OK;
}

static tg_status begin_backward(tg_tape *tape, const tg_tensor *output, const char *who)
{
    if (!tape)
        return tg_fail(TG_ERR_ARG, "%s: tape is NULL", who);
    if (tape->status != TG_OK)
        return tg_fail(TG_ERR_STATE, "%s: refused, the tape holds an error: %s", who,
                       tape->message);
    if (!output)
        return tg_tape_fail(tape, TG_ERR_ARG, "%s: output is NULL", who);
    if (tape->backward_done)
        return tg_tape_fail(tape, TG_ERR_STATE,
                            "%s: backward already ran on this tape; reset it and run the "
                            "forward again",
                            who);
    if (!output->grad_root || output->grad_root != output || !(output->flags & TG_TENSOR_ARENA))
        return tg_tape_fail(tape, TG_ERR_ARG,
                            "%s: the output was not computed on this tape from tensors that "
                            "require a gradient",
                            who);
    return TG_OK;
}

tg_status tg_backward(tg_tape *tape, tg_tensor *loss)
{
    tg_status s = begin_backward(tape, loss, "tg_backward");
    if (s != TG_OK)
        return s;
    if (tg_tensor_numel(loss) != 1) {
        char buf[64];
        return tg_tape_fail(tape, TG_ERR_SHAPE,
                            "tg_backward: the output %s is not a scalar; pass a seed gradient "
                            "with tg_backward_with",
                            tg_shape_str(loss, buf, sizeof buf));
    }
    tg_tensor *g = tg_grad_in(tape, loss);
    if (!g)
        return tape->status;
    tg_tensor_fill(g, 1.0);
    tape->backward_done = true;
    return run_backward(tape);
}

tg_status tg_backward_with(tg_tape *tape, tg_tensor *output, const tg_tensor *seed)
{
    tg_status s = begin_backward(tape, output, "tg_backward_with");
    if (s != TG_OK)
        return s;
    if (!seed)
        return tg_tape_fail(tape, TG_ERR_ARG, "tg_backward_with: seed is NULL");
    if (!tg_tensor_same_shape(output, seed)) {
        char a[64], b[64];
        return tg_tape_fail(tape, TG_ERR_SHAPE,
                            "tg_backward_with: seed %s does not match the output %s",
                            tg_shape_str(seed, a, sizeof a), tg_shape_str(output, b, sizeof b));
    }
    tg_tensor *g = tg_grad_in(tape, output);
    if (!g)
        return tape->status;
    tg_tensor_copy_into(g, seed);
    tape->backward_done = true;
    return run_backward(tape);
}

/* ---- profile ------------------------------------------------------------------------------ */

int tg_tape_profile(const tg_tape *tape, tg_op_profile *rows, int max)
{
    int n = 0;
    if (!tape || !rows || max <= 0)
        return 0;
    for (const tg_entry *e = tape->last; e; e = e->prev) {
        int k = 0;
        while (k < n && strcmp(rows[k].op, e->op) != 0)
            k++;
        if (k == n) {
            if (n == max)
                continue;
            rows[n].op = e->op;
            rows[n].count = 0;
            rows[n].forward_ns = rows[n].backward_ns = 0;
            n++;
        }
        rows[k].count++;
        rows[k].forward_ns += e->forward_ns;
        rows[k].backward_ns += e->backward_ns;
    }
    /* Insertion sort by total time, largest first: n is small. */
    for (int i = 1; i < n; i++) {
        tg_op_profile r = rows[i];
        uint64_t total = r.forward_ns + r.backward_ns;
        int j = i - 1;
        while (j >= 0 && rows[j].forward_ns + rows[j].backward_ns < total) {
            rows[j + 1] = rows[j];
            j--;
        }
        rows[j + 1] = r;
    }
    return n;
}

void tg_tape_print_profile(const tg_tape *tape, FILE *f)
{
    tg_op_profile rows[64];
    int n = tg_tape_profile(tape, rows, 64);
    uint64_t all = 0;
    for (int i = 0; i < n; i++)
        all += rows[i].forward_ns + rows[i].backward_ns;
    fprintf(f, "%-24s %8s %12s %12s %7s\n", "op", "count", "forward ms", "backward ms", "share");
    for (int i = 0; i < n; i++) {
        uint64_t total = rows[i].forward_ns + rows[i].backward_ns;
        fprintf(f, "%-24s %8lld %12.3f %12.3f %6.1f%%\n", rows[i].op, (long long)rows[i].count,
                rows[i].forward_ns / 1e6, rows[i].backward_ns / 1e6,
                all ? 100.0 * (double)total / (double)all : 0.0);
    }
}
