/* Adam and AdamW as torch.optim.Adam / torch.optim.AdamW, and the course's
 * initialize_adam / update_parameters_with_adam (see optim.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/iter.h"
#include "internal.h"

struct tg_adam {
    tg_optim_base base;
    tg_adam_options options;
};

typedef struct {
    double beta1, beta2, eps;
    double l2;            /* Adam's weight decay, added to the gradient */
    double decay;         /* AdamW: parameters are first multiplied by this */
    bool decoupled;
    double neg_step_size; /* -lr / (1 - beta1^t) */
    double bc2_sqrt;      /* sqrt(1 - beta2^t) */
} adam_coeffs;

typedef struct {
    double beta1, beta2, epsilon, learning_rate;
    double bc1, bc2; /* 1 - beta^t */
} course_coeffs;

static int64_t adam_kernel(const void *coeffs, tg_dtype dtype, int64_t n, void *p, const void *g,
                           void *const *state, bool commit);
static int64_t course_kernel(const void *coeffs, tg_dtype dtype, int64_t n, void *p,
                             const void *g, void *const *state, bool commit);
static tg_status check_adam_options(const char *who, const tg_adam_options *o);
static const tg_tensor *find_d(const tg_params *set, const char *name);

/* The dictionaries of the course's update_parameters_with_adam. */
typedef struct {
    const tg_params *parameters, *grads, *v, *s;
} course_sets;
static tg_optim_target course_target(const void *ctx, int i);
static void drop_from(tg_params *set, int first);

tg_adam_options tg_adam_defaults(double lr)
{
    tg_adam_options o = {lr, 0.9, 0.999, 1e-8, 0.0, false};
    return o;
}

tg_adam_options tg_adamw_defaults(double lr)
{
    tg_adam_options o = {lr, 0.9, 0.999, 1e-8, 0.01, true};
    return o;
}

tg_adam *tg_adam_new(const tg_params *params, const tg_adam_options *options)
{
    if (check_adam_options("tg_adam_new", options) != TG_OK)
        return NULL;
    tg_adam *opt = calloc(1, sizeof *opt);
    if (!opt) {
        tg_fail(TG_ERR_NOMEM, "tg_adam_new: out of memory");
        return NULL;
    }
    opt->options = *options;
    if (tg_optim_base_init(&opt->base, "tg_adam_new", params, 2) != TG_OK) {
        free(opt);
        return NULL;
    }
    opt->base.lr = options->lr;
    return opt;
}

void tg_adam_free(tg_adam *opt)
{
    if (!opt)
        return;
    tg_optim_base_free(&opt->base);
    free(opt);
}

tg_status tg_adam_step(tg_adam *opt, const tg_tape *tape)
{
    if (!opt)
        return tg_fail(TG_ERR_ARG, "tg_adam_step: optimizer is NULL");
    int64_t steps;
    tg_status s = tg_optim_begin(&opt->base, "tg_adam_step", tape, &steps);
    if (s != TG_OK)
        return s;
    const tg_adam_options *o = &opt->options;
    double lr = opt->base.lr, t = (double)(steps + 1);
    /* Scalars are formed in double, as PyTorch forms them in Python. */
    adam_coeffs c;
    c.beta1 = o->beta1;
    c.beta2 = o->beta2;
    c.eps = o->eps;
    c.decoupled = o->decoupled_weight_decay;
    c.l2 = c.decoupled ? 0.0 : o->weight_decay;
    c.decay = 1 - lr * o->weight_decay;
    c.neg_step_size = -(lr / (1 - pow(o->beta1, t)));
    c.bc2_sqrt = sqrt(1 - pow(o->beta2, t));
    return tg_optim_apply(&opt->base, "tg_adam_step", adam_kernel, &c);
}

tg_status tg_adam_set_lr(tg_adam *opt, double lr)
{
    if (!opt)
        return tg_fail(TG_ERR_ARG, "tg_adam_set_lr: optimizer is NULL");
    return tg_optim_set_lr(&opt->base, "tg_adam_set_lr", lr);
}

double tg_adam_lr(const tg_adam *opt) { return opt ? opt->base.lr : NAN; }

int64_t tg_adam_steps(const tg_adam *opt)
{
    return opt ? (int64_t)((const double *)opt->base.step->data)[0] : -1;
}

tg_status tg_adam_state(const tg_adam *opt, tg_params *out)
{
    if (!opt)
        return tg_fail(TG_ERR_ARG, "tg_adam_state: optimizer is NULL");
    static const char *const names[] = {"m", "v"};
    return tg_optim_export(&opt->base, "adam", names, out);
}

/* ---- the course's Adam ------------------------------------------------------- */

tg_status tg_course_initialize_adam(const tg_params *parameters, tg_params *v, tg_params *s)
{
    if (!parameters || !v || !s)
        return tg_fail(TG_ERR_ARG, "tg_course_initialize_adam: NULL argument");
    int v0 = v->count, s0 = s->count;
    tg_status status = TG_OK;
    for (int i = 0; i < parameters->count && status == TG_OK; i++) {
        const tg_tensor *p = parameters->items[i].tensor;
        const char *name = parameters->items[i].name;
        if (!p) {
            status = tg_fail(TG_ERR_ARG, "tg_course_initialize_adam: parameter '%s' is NULL", name);
            break;
        }
        char dname[256];
        if (snprintf(dname, sizeof dname, "d%s", name) >= (int)sizeof dname) {
            status = tg_fail(TG_ERR_ARG, "tg_course_initialize_adam: parameter name '%s' is too long",
                             name);
            break;
        }
        tg_tensor *vt = tg_tensor_zeros(p->dtype, p->ndim, p->shape);
        if (!vt || (status = tg_params_add(v, dname, vt)) != TG_OK) {
            tg_tensor_free(vt);
            status = tg_last_status();
            break;
        }
        tg_tensor *st = tg_tensor_zeros(p->dtype, p->ndim, p->shape);
        if (!st || (status = tg_params_add(s, dname, st)) != TG_OK) {
            tg_tensor_free(st);
            status = tg_last_status();
        }
    }
    if (status != TG_OK) {
        /* Leave v and s as they were. */
        drop_from(v, v0);
        drop_from(s, s0);
    }
    return status;
}

void tg_course_free_adam(tg_params *v, tg_params *s)
{
    drop_from(v, 0);
    drop_from(s, 0);
    tg_params_clear(v);
    tg_params_clear(s);
}

tg_status tg_course_update_parameters_with_adam(const tg_params *parameters, const tg_params *grads,
                                         const tg_params *v, const tg_params *s, int64_t t,
                                         double learning_rate, double beta1, double beta2,
                                         double epsilon)
{
    static const char who[] = "tg_course_update_parameters_with_adam";
    if (!parameters || !v || !s)
        return tg_fail(TG_ERR_ARG, "%s: NULL argument", who);
    tg_adam_options o = {learning_rate, beta1, beta2, epsilon, 0.0, false};
    if (check_adam_options(who, &o) != TG_OK)
        return tg_last_status();
    if (t < 1)
        return tg_fail(TG_ERR_ARG, "%s: t is %lld; it counts steps from 1", who, (long long)t);
    /* Every tensor is found and checked before any arithmetic. */
    for (int i = 0; i < parameters->count; i++) {
        const char *name = parameters->items[i].name;
        const tg_tensor *p = parameters->items[i].tensor;
        if (!p || !tg_tensor_is_contiguous(p))
            return tg_fail(TG_ERR_ARG, "%s: parameter '%s' is NULL or not contiguous", who, name);
        const tg_params *sets[3] = {grads, v, s};
        const char *set_names[3] = {"grads", "v", "s"};
        for (int k = 0; k < 3; k++) {
            tg_status st;
            if (k == 0 && !grads) {
                st = tg_optim_check_like(who, "the gradient", name, p->grad, p);
            } else {
                char what[300];
                snprintf(what, sizeof what, "%s[\"d%s\"]", set_names[k], name);
                const tg_tensor *t = find_d(sets[k], name);
                st = t ? tg_optim_check_like(who, what, name, t, p)
                       : tg_fail(TG_ERR_ARG, "%s: %s is missing (for parameter '%s')", who,
                                 what, name);
            }
            if (st != TG_OK)
                return st;
        }
    }
    course_coeffs c = {beta1, beta2, epsilon, learning_rate, 1 - pow(beta1, (double)t),
                       1 - pow(beta2, (double)t)};
    course_sets sets = {parameters, grads, v, s};
    return tg_optim_check_then_commit(who, parameters->count, course_target, &sets, course_kernel,
                                      &c);
}

/* Parameter i with its gradient and moments, found by the course's names. */
static tg_optim_target course_target(const void *ctx, int i)
{
    const course_sets *sets = ctx;
    const char *name = sets->parameters->items[i].name;
    tg_tensor *p = sets->parameters->items[i].tensor;
    tg_optim_target t = {name, p, sets->grads ? find_d(sets->grads, name) : p->grad,
                         {tg_tensor_base(find_d(sets->v, name)),
                          tg_tensor_base(find_d(sets->s, name))}};
    return t;
}

/* ---- kernels ---------------------------------------------------------------------- */

/* PyTorch's _single_tensor_adam / _single_tensor_adamw, operation by
 * operation in the parameter's dtype:
 *   grad = grad.add(param, alpha=wd)            (Adam)
 *   param.mul_(1 - lr * wd)                     (AdamW)
 *   exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 * addcmul and addcdiv compute self + value * a * b and self + value * a / b,
 * left to right. */
#define ADAM_LOOP(T, SQRT)                                                                 \
    do {                                                                                   \
        T *pp = p, *m = state[0], *v = state[1];                                           \
        const T *gp = g;                                                                   \
        const T beta1 = (T)c->beta1, one_minus_beta1 = (T)(1 - c->beta1);                  \
        const T beta2 = (T)c->beta2, one_minus_beta2 = (T)(1 - c->beta2);                  \
        const T l2 = (T)c->l2, decay = (T)c->decay, eps = (T)c->eps;                       \
        const T bc2_sqrt = (T)c->bc2_sqrt, neg_step_size = (T)c->neg_step_size;            \
        for (int64_t i = 0; i < n; i++) {                                                  \
            T grad = gp[i], param = pp[i];                                                 \
            if (c->l2 != 0)                                                                \
                grad = grad + l2 * param;                                                  \
            if (c->decoupled)                                                              \
                param = param * decay;                                                     \
            T mi = m[i] * beta1 + one_minus_beta1 * grad;                                  \
            T vi = v[i] * beta2 + one_minus_beta2 * grad * grad;                           \
            T denom = SQRT(vi) / bc2_sqrt + eps;                                           \
            T np = param + neg_step_size * mi / denom;                                     \
            if (commit) {                                                                  \
                pp[i] = np;                                                                \
                m[i] = mi;                                                                 \
                v[i] = vi;                                                                 \
            } else if (!isfinite(gp[i]) || !isfinite(np) || !isfinite(mi) || !isfinite(vi)) { \
                return i;                                                                  \
            }                                                                              \
        }                                                                                  \
    } while (0)

static int64_t adam_kernel(const void *coeffs, tg_dtype dtype, int64_t n, void *p, const void *g,
                           void *const *state, bool commit)
{
    const adam_coeffs *c = coeffs;
    if (dtype == TG_F32)
        ADAM_LOOP(float, sqrtf);
    else
        ADAM_LOOP(double, sqrt);
    return -1;
}

/* The course's lines, in numpy's order of evaluation:
 *   v = beta1 * v + (1 - beta1) * g;   v_corrected = v / (1 - beta1**t)
 *   s = beta2 * s + (1 - beta2) * (g ** 2);   s_corrected = s / (1 - beta2**t)
 *   p = p - learning_rate * v_corrected / np.sqrt(s_corrected + epsilon) */
#define COURSE_LOOP(T, SQRT)                                                               \
    do {                                                                                   \
        T *pp = p, *v = state[0], *s = state[1];                                           \
        const T *gp = g;                                                                   \
        const T beta1 = (T)c->beta1, one_minus_beta1 = (T)(1 - c->beta1);                  \
        const T beta2 = (T)c->beta2, one_minus_beta2 = (T)(1 - c->beta2);                  \
        const T bc1 = (T)c->bc1, bc2 = (T)c->bc2, eps = (T)c->epsilon;                     \
        const T lr = (T)c->learning_rate;                                                  \
        for (int64_t i = 0; i < n; i++) {                                                  \
            T grad = gp[i];                                                                \
            T vi = beta1 * v[i] + one_minus_beta1 * grad;                                  \
            T si = beta2 * s[i] + one_minus_beta2 * (grad * grad);                         \
            T v_corrected = vi / bc1, s_corrected = si / bc2;                              \
            T np = pp[i] - lr * v_corrected / SQRT(s_corrected + eps);                     \
            if (commit) {                                                                  \
                pp[i] = np;                                                                \
                v[i] = vi;                                                                 \
                s[i] = si;                                                                 \
            } else if (!isfinite(grad) || !isfinite(np) || !isfinite(vi) || !isfinite(si)) { \
                return i;                                                                  \
            }                                                                              \
        }                                                                                  \
    } while (0)

static int64_t course_kernel(const void *coeffs, tg_dtype dtype, int64_t n, void *p,
                             const void *g, void *const *state, bool commit)
{
    const course_coeffs *c = coeffs;
    if (dtype == TG_F32)
        COURSE_LOOP(float, sqrtf);
    else
        COURSE_LOOP(double, sqrt);
    return -1;
}

/* ---- helpers ------------------------------------------------------------------------ */

static tg_status check_adam_options(const char *who, const tg_adam_options *o)
{
    if (!o)
        return tg_fail(TG_ERR_ARG, "%s: options is NULL", who);
    if (!(o->lr >= 0 && isfinite(o->lr)) || !(o->eps >= 0 && isfinite(o->eps)) ||
        !(o->weight_decay >= 0 && isfinite(o->weight_decay)))
        return tg_fail(TG_ERR_ARG, "%s: lr %g, eps %g and weight_decay %g must be finite and >= 0",
                       who, o->lr, o->eps, o->weight_decay);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return tg_fail(TG_ERR_ARG, "%s: betas (%g, %g) must lie in [0, 1)", who, o->beta1,
                       o->beta2);
    return TG_OK;
}

/* The tensor named "d" + name in set (the course's naming), or NULL. */
static const tg_tensor *find_d(const tg_params *set, const char *name)
{
    for (int i = 0; i < set->count; i++) {
        const char *n = set->items[i].name;
        if (n[0] == 'd' && strcmp(n + 1, name) == 0)
            return set->items[i].tensor;
    }
    return NULL;
}

/* Free the tensors and names of entries first.. of set and shorten it. */
static void drop_from(tg_params *set, int first)
{
    if (!set)
        return;
    for (int i = first; i < set->count; i++) {
        tg_tensor_free(set->items[i].tensor);
        free(set->items[i].name);
    }
    set->count = first;
}
