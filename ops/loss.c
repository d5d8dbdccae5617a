/* Losses: cross-entropy of logits against class ids (fused with
 * log-softmax), and mean squared error. Both return a scalar.
 *
 * Cross-entropy follows PyTorch's F.cross_entropy: an ignored target counts
 * for nothing, class weights scale each position's loss (and a mean divides
 * by the sum of the weights of the counted targets), and label smoothing
 * mixes the one-hot target with the uniform distribution. Per counted
 * position i with target t, weights w (all 1 without) and smoothing e over
 * C classes, with l_c = lse - x_c = -log softmax(x)_c:
 *     loss_i = (1 - e) w_t l_t + (e / C) sum_c w_c l_c
 *     d loss_i / d x_c = (1 - e) w_t (p_c - [c = t]) + (e / C) (W p_c - w_c)
 * where p = softmax(x) and W = sum_c w_c. Where nothing counts (every
 * target ignored, or their weights all 0) the loss is 0 with zero
 * gradients, where PyTorch returns 0/0.
 *
 * It saves the validated targets and the two parts of each position's
 * log-sum-exp: backward recomputes the softmax from the logits instead of
 * keeping a tensor of probabilities as large as the logits on the tape.
 * The lse is kept as max and logsum apart, l_c = (max - x_c) + logsum, so
 * tied logits of 1e300 keep their log 2. */
#include <math.h>
#include <string.h>

#include "../core/iter.h"
#include "../core/threadpool.h"
#include "internal.h"
#include "ops.h"
#include "vmath.h"

/* Positions go in chunks of this many on every path: each chunk sums its
 * positions' losses in order and the chunks are summed in order, so that
 * the loss has the same bits whatever the layout and however many threads
 * share the chunks. */
enum { CE_CHUNK = 256 };
/* 1/count for a mean, 1 for a sum; fails the op for an unknown reduction or
 * a mean over nothing. */
static bool reduction_scale(tg_op *op, tg_reduction reduction, int64_t count,
                            const tg_tensor *x, double *scale)
{
    char s[64];
    if (reduction != TG_REDUCE_MEAN && reduction != TG_REDUCE_SUM) {
        tg_op_fail(op, TG_ERR_ARG, "unknown reduction %d", (int)reduction);
        return false;
    }
    if (reduction == TG_REDUCE_MEAN && count == 0) {
        tg_op_fail(op, TG_ERR_SHAPE, "mean over no elements: %s is empty",
                   tg_shape_str(x, s, sizeof s));
        return false;
    }
    *scale = reduction == TG_REDUCE_MEAN ? 1.0 / (double)count : 1.0;
    return true;
}

/* ---- cross-entropy ----------------------------------------------------------- */

/* A call after validation (check_cross_entropy): what the forward, the
 * entry and the backward read. */
typedef struct {
    int axis;
    int64_t n_classes, positions;
    int32_t *ids;     /* one per position, in C order of the other axes; -1: ignored */
    double *weights;  /* n_classes, or NULL: every class weighs 1 */
    double smoothing; /* label smoothing e in [0, 1] */
    double weight_sum; /* W = sum of the class weights (for smoothing) */
    double scale;     /* 1 / (sum of counted weights) for a mean, 1 for a sum, 0: none counts */
} ce_spec;

/* What the entry keeps: the call, and each position's max and logsum. */
typedef struct {
    ce_spec spec;
    double *max, *logsum;
} ce_saved;

/* One call of any of the three entry points, as given. */
typedef struct {
    const char *name;
    int axis;
    const int32_t *targets;
    int64_t n_targets;
    bool sequence;          /* tg_sequence_cross_entropy: lengths mask (m, T_x) positions */
    const int32_t *lengths;
    bool ignore;            /* targets equal to o.ignore_index count for nothing */
    tg_cross_entropy_options o;
} ce_call;

static bool check_cross_entropy(tg_op *op, tg_tensor *logits, const ce_call *call,
                                ce_spec *spec);
static double ce_forward(const tg_tensor *logits, const ce_spec *spec, double *max,
                         double *logsum, double *partial);
static void ce_backward(tg_tape *tape, const tg_entry *e);

tg_cross_entropy_options tg_cross_entropy_defaults(void)
{
    return (tg_cross_entropy_options){.reduction = TG_REDUCE_MEAN, .ignore_index = -100};
}

/* Every entry point: validate into a spec, then one forward and one entry. */
static tg_tensor *cross_entropy(tg_tape *tape, tg_tensor *logits, const ce_call *call)
{
    tg_op op;
    ce_spec spec;
    if (!tg_op_begin(&op, tape, call->name, 1, logits) ||
        !check_cross_entropy(&op, logits, call, &spec))
        return NULL;
    tg_tensor *out = tg_op_output(&op, logits->dtype, 0, NULL);
    if (!out)
        return NULL;
    ce_saved *saved = NULL;
    if (op.needs_grad) { /* room for what backward needs, before the forward fills it */
        size_t bytes;
        if (tg_mul_overflows((size_t)spec.positions, sizeof(double), &bytes))
            return tg_op_fail(&op, TG_ERR_OVERFLOW, "%lld positions do not fit in memory",
                              (long long)spec.positions);
        saved = tg_tape_alloc(tape, sizeof *saved);
        double *max = saved ? tg_tape_alloc(tape, bytes) : NULL;
        double *logsum = max ? tg_tape_alloc(tape, bytes) : NULL;
        if (!logsum)
            return NULL;
        *saved = (ce_saved){spec, max, logsum};
    }
    double *partial = tg_tape_alloc(tape, sizeof(double) *
                                              (size_t)((spec.positions + CE_CHUNK - 1) / CE_CHUNK + 1));
    if (!partial)
        return NULL;
    double loss = ce_forward(logits, &spec, saved ? saved->max : NULL,
                             saved ? saved->logsum : NULL, partial);
    tg_row_set(out->data, out->dtype, 0, loss * spec.scale);
    tg_entry *e = tg_op_record(&op, ce_backward, out);
    if (e)
        e->saved = saved;
    return tg_op_finish(&op, out);
}

/* logits (..., n_classes, ...), targets (one per other position) -> scalar */
tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, int class_axis,
                            const int32_t *targets, int64_t n_targets, tg_reduction reduction)
{
    ce_call call = {"tg_cross_entropy", class_axis, targets, n_targets, .o =
                    tg_cross_entropy_defaults()};
    call.o.reduction = reduction;
    return cross_entropy(tape, logits, &call);
}

tg_tensor *tg_cross_entropy_with(tg_tape *tape, tg_tensor *logits, int class_axis,
                                 const int32_t *targets, int64_t n_targets,
                                 const tg_cross_entropy_options *options)
{
    ce_call call = {"tg_cross_entropy_with", class_axis, targets, n_targets, .ignore = true,
                    .o = options ? *options : tg_cross_entropy_defaults()};
    return cross_entropy(tape, logits, &call);
}

/* logits (n_y, m, T_x), targets (m, T_x) in C order, lengths (m) -> scalar */
tg_tensor *tg_sequence_cross_entropy(tg_tape *tape, tg_tensor *logits, const int32_t *targets,
                                     const int32_t *lengths,
                                     const tg_cross_entropy_options *options)
{
    int64_t n = logits && logits->ndim == 3 ? logits->shape[1] * logits->shape[2] : -1;
    ce_call call = {"tg_sequence_cross_entropy", 0, targets, n, true, lengths, true,
                    options ? *options : tg_cross_entropy_defaults()};
    return cross_entropy(tape, logits, &call);
}

/* ---- one position, the same arithmetic on every path ------------------------- */

/* loss_i from its lse parts, its target's logit x_t and, with smoothing,
 * smooth = sum_c w_c (max - x_c). */
static inline double position_loss(const ce_spec *s, int32_t t, tg_lse lse, double x_t,
                                   double smooth)
{
    double nll = (s->weights ? s->weights[t] : 1.0) * ((lse.max - x_t) + lse.logsum);
    if (s->smoothing == 0)
        return nll;
    return (1 - s->smoothing) * nll +
           s->smoothing / (double)s->n_classes * (smooth + s->weight_sum * lse.logsum);
}

/* d loss_i / d x_c given p = softmax(x)_c, before the upstream factor. */
static inline double element_grad(const ce_spec *s, int32_t t, int64_t c, double p)
{
    double g = (s->weights ? s->weights[t] : 1.0) * (p - (c == t));
    if (s->smoothing == 0)
        return g;
    double w_c = s->weights ? s->weights[c] : 1.0;
    return (1 - s->smoothing) * g +
           s->smoothing / (double)s->n_classes * (s->weight_sum * p - w_c);
}

/* ---- along lanes (any layout) ---------------------------------------------------- */

typedef struct {
    tg_dtype dtype;
    const ce_spec *spec;
    double *max, *logsum; /* forward: written when not NULL; backward: read */
    double *partial;      /* forward: the loss summed per chunk of CE_CHUNK positions */
    double coef;          /* backward: d loss / d (a position's loss) */
} ce_args;


/* sum_c w_c (max - x_c) of a lane, classes in order. */
static double lane_smooth(const ce_spec *s, const void *x, tg_dtype dtype, int64_t stride,
                          double max)
{
    double sum = 0;
    for (int64_t c = 0; c < s->n_classes; c++)
        sum += (s->weights ? s->weights[c] : 1.0) * (max - tg_row_get(x, dtype, c * stride));
    return sum;
}

/* Operands: x. */
static void ce_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr, const int64_t *stride)
{
    ce_args *a = ctx;
    int32_t t = a->spec->ids[pos];
    if (t < 0)
        return;
    tg_lse lse = tg_lane_lse(ptr[0], a->dtype, n, stride[0]);
    if (a->max) {
        a->max[pos] = lse.max;
        a->logsum[pos] = lse.logsum;
    }
    double smooth = a->spec->smoothing ? lane_smooth(a->spec, ptr[0], a->dtype, stride[0], lse.max)
                                       : 0;
    a->partial[pos / CE_CHUNK] +=
        position_loss(a->spec, t, lse, tg_row_get(ptr[0], a->dtype, t * stride[0]), smooth);
}

/* Operands: gx, x. */
static void ce_grad_lane(void *ctx, int64_t pos, int64_t n, void *const *ptr,
                         const int64_t *stride)
{
    const ce_args *a = ctx;
    int32_t t = a->spec->ids[pos];
    if (t < 0)
        return;
    for (int64_t c = 0; c < n; c++) {
        double z = (tg_row_get(ptr[1], a->dtype, c * stride[1]) - a->max[pos]) - a->logsum[pos];
        double p = tg_math_exp_f64(z);
        tg_row_add(ptr[0], a->dtype, c * stride[0], element_grad(a->spec, t, c, p) * a->coef);
    }
}

/* ---- across contiguous positions (the common layout, fast) ----------------------- */

/* Logits (classes, positions...) with the positions contiguous (a linear
 * layer's output (n_y, m, T_x), or its transpose's (positions, classes)
 * rows) run across positions instead of along lanes: a chunk of positions
 * at a time, one class row after the other, so every loop is over
 * contiguous memory and the exponentials go through vmath's vector exp.
 * Each position computes what a lane computes, with its classes summed in
 * the same order and the same functions: the layout never changes a bit.
 * Large logits share their chunks between threads. */

/* True when the positions of t (all axes but `axis`) are one run of stride
 * 1 in C order; *class_stride is then the stride along `axis`. */
static bool positions_contiguous(const tg_tensor *t, int axis, int64_t *class_stride)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (d == axis || t->shape[d] == 1)
            continue;
        if (t->strides[d] != expect)
            return false;
        expect *= t->shape[d];
    }
    *class_stride = t->strides[axis];
    return true;
}

/* mx[k], ls[k] (and smooth[k] with smoothing) of positions p0 .. p0+np-1. */
#define CE_LSE(T)                                                                      \
    do {                                                                               \
        const T *x_ = x;                                                               \
        for (int64_t k = 0; k < np; k++) {                                             \
            mx[k] = -INFINITY;                                                         \
            sum[k] = 0;                                                                \
            smooth[k] = 0;                                                             \
        }                                                                              \
        for (int64_t c = 0; c < C; c++) {                                              \
            const T *row = x_ + c * cs + p0;                                           \
            for (int64_t k = 0; k < np; k++) /* as fmax: a NaN logit is skipped */     \
                mx[k] = row[k] > mx[k] ? row[k] : mx[k];                               \
        }                                                                              \
        for (int64_t c = 0; c < C; c++) {                                              \
            const T *row = x_ + c * cs + p0;                                           \
            for (int64_t k = 0; k < np; k++)                                           \
                tmp[k] = row[k] - mx[k];                                               \
            tg_vexp_f64(np, tmp, tmp);                                                 \
            for (int64_t k = 0; k < np; k++)                                           \
                sum[k] += tmp[k];                                                      \
            if (s->smoothing) {                                                        \
                double w_c = s->weights ? s->weights[c] : 1.0;                         \
                for (int64_t k = 0; k < np; k++)                                       \
                    smooth[k] += w_c * (mx[k] - row[k]);                               \
            }                                                                          \
        }                                                                              \
    } while (0)

typedef struct {
    const ce_spec *s;
    tg_dtype dtype;
    void *gx;      /* backward */
    const void *x;
    int64_t cs;    /* class stride */
    double *max, *logsum;
    double *partial; /* forward */
    double coef;     /* backward */
} ce_rows;

/* Forward, chunk `chunk`: its loss into partial[chunk]. */
static void ce_forward_chunk(void *ctx, int64_t chunk, int worker)
{
    (void)worker;
    const ce_rows *r = ctx;
    const ce_spec *s = r->s;
    const void *x = r->x;
    int64_t C = s->n_classes, cs = r->cs, p0 = chunk * CE_CHUNK;
    int64_t np = s->positions - p0 < CE_CHUNK ? s->positions - p0 : CE_CHUNK;
    double loss = 0, mx[CE_CHUNK], sum[CE_CHUNK], smooth[CE_CHUNK], tmp[CE_CHUNK];
    if (r->dtype == TG_F32)
        CE_LSE(float);
    else
        CE_LSE(double);
    for (int64_t k = 0; k < np; k++) {
        int32_t t = s->ids[p0 + k];
        if (t < 0)
            continue;
        /* an infinite maximum (or none): nothing finite to subtract */
        tg_lse lse = {mx[k], isinf(mx[k]) ? 0 : log(sum[k])};
        if (r->max) {
            r->max[p0 + k] = lse.max;
            r->logsum[p0 + k] = lse.logsum;
        }
        loss += position_loss(s, t, lse, tg_row_get(x, r->dtype, t * cs + p0 + k), smooth[k]);
    }
    r->partial[chunk] = loss;
}

/* The chunks of positions x classes logits, on as many threads as pays:
 * an exponential and a few operations per logit, taken at 1 ns (a fast
 * estimate), against what the pool measures a start to cost. */
static void run_chunks(const ce_spec *s, tg_task_fn fn, ce_rows *r)
{
    int64_t chunks = (s->positions + CE_CHUNK - 1) / CE_CHUNK;
    int threads = tg_get_num_threads();
    double saved_ns = (double)s->positions * (double)s->n_classes * (1.0 - 1.0 / threads);
    if (threads > 1 && chunks > 1 && saved_ns > 4.0 * (double)tg_threadpool_start_cost_ns()) {
        tg_parallel_for(chunks, fn, r);
        return;
    }
    for (int64_t c = 0; c < chunks; c++)
        fn(r, c, 0);
}

/* gx += element_grad(softmax) * coef over contiguous positions. */
#define CE_GRAD(T)                                                                     \
    do {                                                                               \
        const T *x_ = x;                                                               \
        T *g_ = gx;                                                                    \
        for (int64_t c = 0; c < s->n_classes; c++) {                                   \
            const T *row = x_ + c * cs + p0;                                           \
            T *grow = g_ + c * cs + p0;                                                \
            for (int64_t k = 0; k < np; k++)                                           \
                tmp[k] = (row[k] - max[p0 + k]) - logsum[p0 + k];                      \
            tg_vexp_f64(np, tmp, tmp);                                                 \
            for (int64_t k = 0; k < np; k++)                                           \
                if (ids[k] >= 0)                                                       \
                    grow[k] += (T)(element_grad(s, ids[k], c, tmp[k]) * coef);         \
        }                                                                              \
    } while (0)

/* Backward, chunk `chunk`: its positions' gradients (no other chunk's). */
static void ce_backward_chunk(void *ctx, int64_t chunk, int worker)
{
    (void)worker;
    const ce_rows *r = ctx;
    const ce_spec *s = r->s;
    const void *x = r->x;
    void *gx = r->gx;
    const double *max = r->max, *logsum = r->logsum, coef = r->coef;
    int64_t cs = r->cs, p0 = chunk * CE_CHUNK;
    int64_t np = s->positions - p0 < CE_CHUNK ? s->positions - p0 : CE_CHUNK;
    const int32_t *ids = s->ids + p0;
    double tmp[CE_CHUNK];
    if (r->dtype == TG_F32)
        CE_GRAD(float);
    else
        CE_GRAD(double);
}

/* ---- forward and backward: pick the path ------------------------------------------- */

/* The summed (unscaled) loss; max and logsum kept when not NULL. partial
 * has a double for each chunk of CE_CHUNK positions. */
static double ce_forward(const tg_tensor *logits, const ce_spec *spec, double *max,
                         double *logsum, double *partial)
{
    int64_t cs, chunks = (spec->positions + CE_CHUNK - 1) / CE_CHUNK;
    memset(partial, 0, (size_t)chunks * sizeof *partial);
    if (spec->n_classes > 0 && positions_contiguous(logits, spec->axis, &cs)) {
        ce_rows r = {.s = spec, .dtype = logits->dtype, .x = tg_tensor_base(logits), .cs = cs,
                     .max = max, .logsum = logsum, .partial = partial};
        run_chunks(spec, ce_forward_chunk, &r);
    } else {
        ce_args args = {logits->dtype, spec, max, logsum, partial, 0};
        const tg_tensor *operands[1] = {logits};
        tg_iter_lanes(1, operands, spec->axis, ce_lane, &args);
    }
    double loss = 0;
    for (int64_t c = 0; c < chunks; c++)
        loss += partial[c];
    return loss;
}

static void ce_backward(tg_tape *tape, const tg_entry *e)
{
    tg_tensor *gx = tg_grad_in(tape, e->in[0]);
    const ce_saved *saved = e->saved;
    const ce_spec *s = &saved->spec;
    if (!gx || s->scale == 0)
        return;
    const tg_tensor *x = e->in[0];
    double coef = tg_tensor_item(tg_grad_out(e->out[0])) * s->scale;
    int64_t sx, sg;
    if (positions_contiguous(x, s->axis, &sx) && positions_contiguous(gx, s->axis, &sg) &&
        sx == sg && !tg_tensor_self_overlaps(gx)) {
        ce_rows r = {.s = s, .dtype = x->dtype, .gx = tg_tensor_base(gx),
                     .x = tg_tensor_base(x), .cs = sx, .max = saved->max,
                     .logsum = saved->logsum, .coef = coef};
        run_chunks(s, ce_backward_chunk, &r);
        return;
    }
    ce_args args = {gx->dtype, s, saved->max, saved->logsum, NULL, coef};
    const tg_tensor *operands[2] = {gx, x};
    tg_iter_lanes(2, operands, s->axis, ce_grad_lane, &args);
}

/* ---- validation ----------------------------------------------------------------- */

/* The options beyond the reduction: smoothing, weights (copied into the arena). */
static bool check_ce_options(tg_op *op, const tg_cross_entropy_options *o, ce_spec *spec)
{
    if (!(o->label_smoothing >= 0 && o->label_smoothing <= 1)) {
        tg_op_fail(op, TG_ERR_ARG, "label_smoothing %g is outside [0, 1]", o->label_smoothing);
        return false;
    }
    spec->smoothing = o->label_smoothing;
    spec->weight_sum = (double)spec->n_classes;
    if (!o->class_weights)
        return true;
    spec->weights = tg_tape_alloc(op->tape, sizeof(double) * (size_t)(spec->n_classes + 1));
    if (!spec->weights)
        return false;
    spec->weight_sum = 0;
    for (int64_t c = 0; c < spec->n_classes; c++) {
        double w = o->class_weights[c];
        if (!(w >= 0 && isfinite(w))) {
            tg_op_fail(op, TG_ERR_ARG, "class_weights[%lld] = %g (needs a finite weight >= 0)",
                       (long long)c, w);
            return false;
        }
        spec->weights[c] = w;
        spec->weight_sum += w;
    }
    return true;
}

/* The sequence form: logits (n_y, m, T_x) and lengths[j] in [1, T_x]. */
static bool check_lengths(tg_op *op, const tg_tensor *logits, const int32_t *lengths)
{
    char s[64];
    if (logits->ndim != 3 || !lengths) {
        tg_op_fail(op, logits->ndim != 3 ? TG_ERR_SHAPE : TG_ERR_ARG, "%s (logits %s)",
                   logits->ndim != 3 ? "logits must be (n_y, m, T_x)" : "lengths is NULL",
                   tg_shape_str(logits, s, sizeof s));
        return false;
    }
    int64_t T_x = logits->shape[2];
    for (int64_t j = 0; j < logits->shape[1]; j++)
        if (lengths[j] < 1 || lengths[j] > T_x) {
            tg_op_fail(op, TG_ERR_ARG, "lengths[%lld] = %d is outside [1, T_x = %lld]",
                       (long long)j, (int)lengths[j], (long long)T_x);
            return false;
        }
    return true;
}

/* The targets, copied into spec->ids with -1 for every position that does
 * not count (padded, or the ignore_index); the others in [0, n_classes). */
static bool check_targets(tg_op *op, const tg_tensor *logits, const ce_call *call,
                          ce_spec *spec)
{
    char s[64];
    int64_t P = spec->positions, T_x = call->sequence ? logits->shape[2] : 1;
    if (P > 0 && !call->targets) {
        tg_op_fail(op, TG_ERR_ARG, "targets is NULL (logits %s)",
                   tg_shape_str(logits, s, sizeof s));
        return false;
    }
    if (call->n_targets != P) {
        tg_op_fail(op, TG_ERR_SHAPE,
                   "%lld targets for logits %s with classes along axis %d (%lld needed)",
                   (long long)call->n_targets, tg_shape_str(logits, s, sizeof s), spec->axis,
                   (long long)P);
        return false;
    }
    if (!(spec->ids = tg_tape_copy_ids(op->tape, call->targets, P)))
        return false;
    for (int64_t p = 0; p < P; p++) {
        int32_t t = spec->ids[p];
        if ((call->sequence && p % T_x >= call->lengths[p / T_x]) ||
            (call->ignore && t == call->o.ignore_index)) {
            spec->ids[p] = -1;
        } else if (t < 0 || t >= spec->n_classes) {
            tg_op_fail(op, TG_ERR_ARG,
                       "target %d at position %lld is outside [0, %lld) (logits %s, classes "
                       "along axis %d)",
                       (int)t, (long long)p, (long long)spec->n_classes,
                       tg_shape_str(logits, s, sizeof s), spec->axis);
            return false;
        }
    }
    return true;
}

/* Validate every argument and fill spec (ids and weights in the arena); on
 * false the op has failed with a message naming the problem. */
static bool check_cross_entropy(tg_op *op, tg_tensor *logits, const ce_call *call,
                                ce_spec *spec)
{
    int axis = call->axis;
    if ((call->sequence && !check_lengths(op, logits, call->lengths)) ||
        !tg_op_axis(op, logits, &axis))
        return false;
    *spec = (ce_spec){.axis = axis, .n_classes = logits->shape[axis], .positions = 1};
    for (int d = 0; d < logits->ndim; d++)
        spec->positions *= d == axis ? 1 : logits->shape[d];
    double per_position;
    if (!check_targets(op, logits, call, spec) ||
        !reduction_scale(op, call->o.reduction, spec->positions, logits, &per_position) ||
        !check_ce_options(op, &call->o, spec))
        return false;
    double counted = 0; /* a mean divides by the weights of the counted targets */
    for (int64_t p = 0; p < spec->positions; p++)
        if (spec->ids[p] >= 0)
            counted += spec->weights ? spec->weights[spec->ids[p]] : 1.0;
    spec->scale = call->o.reduction == TG_REDUCE_SUM ? 1.0 : counted > 0 ? 1.0 / counted : 0.0;
    return true;
}

/* ---- mean squared error ---------------------------------------------------------- */

typedef struct {
    tg_dtype dtype;
    double sum;  /* forward: sum of squared differences */
    double coef; /* backward: d loss / d (pred - target), signed for the operand */
} mse_args;

/* Operands: pred, target. */
static void mse_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    mse_args *a = ctx;
    for (int64_t i = 0; i < n; i++) {
        double d = tg_row_get(ptr[0], a->dtype, i * stride[0]) -
                   tg_row_get(ptr[1], a->dtype, i * stride[1]);
        a->sum += d * d;
    }
}

/* Operands: g_in, pred, target. g_in += coef * (pred - target). */
static void mse_grad_row(void *ctx, int64_t n, void *const *ptr, const int64_t *stride)
{
    const mse_args *a = ctx;
    for (int64_t i = 0; i < n; i++) {
        double d = tg_row_get(ptr[1], a->dtype, i * stride[1]) -
                   tg_row_get(ptr[2], a->dtype, i * stride[2]);
        tg_row_add(ptr[0], a->dtype, i * stride[0], a->coef * d);
    }
}

static void mse_backward(tg_tape *tape, const tg_entry *e)
{
    double coef = 2.0 * tg_tensor_item(tg_grad_out(e->out[0])) * e->scalar;
    for (int which = 0; which < 2; which++) {
        tg_tensor *gin = tg_grad_in(tape, e->in[which]);
        if (!gin)
            continue;
        mse_args args = {gin->dtype, 0, which == 0 ? coef : -coef};
        const tg_tensor *operands[3] = {gin, e->in[0], e->in[1]};
        tg_iter_tensors(3, operands, mse_grad_row, &args);
    }
}

/* pred, target (same shape) -> scalar */
tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target, tg_reduction reduction)
{
    tg_op op;
    if (!tg_op_begin(&op, tape, "tg_mse", 2, pred, target))
        return NULL;
    if (!tg_tensor_same_shape(pred, target)) {
        char sp[64], st[64];
        return tg_op_fail(&op, TG_ERR_SHAPE, "shapes differ: pred %s, target %s",
                          tg_shape_str(pred, sp, sizeof sp), tg_shape_str(target, st, sizeof st));
    }
    double scale;
    if (!reduction_scale(&op, reduction, tg_tensor_numel(pred), pred, &scale))
        return NULL;
    tg_tensor *out = tg_op_output(&op, pred->dtype, 0, NULL);
    if (!out)
        return NULL;
    mse_args args = {pred->dtype, 0, 0};
    const tg_tensor *operands[2] = {pred, target};
    tg_iter_tensors(2, operands, mse_row, &args);
    tg_row_set(out->data, out->dtype, 0, args.sum * scale);
    tg_entry *e = tg_op_record(&op, mse_backward, out);
    if (e)
        e->scalar = scale;
    return tg_op_finish(&op, out);
}
