/* SGD with momentum, Nesterov momentum and L2 weight decay, as
 * torch.optim.SGD with dampening 0 (see optim.h). */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

struct tg_sgd {
    tg_optim_base base;
    tg_sgd_options options;
};

typedef struct {
    double lr, momentum, weight_decay;
    bool nesterov;
    bool first; /* PyTorch starts the buffer as a copy of the first gradient */
} sgd_coeffs;

static int64_t sgd_kernel(const void *coeffs, tg_dtype dtype, int64_t n, void *p, const void *g,
                          void *const *state, bool commit);

tg_sgd_options tg_sgd_defaults(double lr)
{
    tg_sgd_options o = {lr, 0.0, 0.0, false};
    return o;
}

tg_sgd *tg_sgd_new(const tg_params *params, const tg_sgd_options *options)
{
    if (!options) {
        tg_fail(TG_ERR_ARG, "tg_sgd_new: options is NULL");
        return NULL;
    }
    const tg_sgd_options *o = options;
    if (!(o->lr >= 0 && isfinite(o->lr)) || !(o->momentum >= 0 && isfinite(o->momentum)) ||
        !(o->weight_decay >= 0 && isfinite(o->weight_decay))) {
        tg_fail(TG_ERR_ARG,
                "tg_sgd_new: lr %g, momentum %g and weight_decay %g must be finite and >= 0",
                o->lr, o->momentum, o->weight_decay);
        return NULL;
    }
    if (o->nesterov && o->momentum == 0) {
        tg_fail(TG_ERR_ARG, "tg_sgd_new: Nesterov momentum needs momentum > 0");
        return NULL;
    }
    tg_sgd *opt = calloc(1, sizeof *opt);
    if (!opt) {
        tg_fail(TG_ERR_NOMEM, "tg_sgd_new: out of memory");
        return NULL;
    }
    opt->options = *o;
    if (tg_optim_base_init(&opt->base, "tg_sgd_new", params, o->momentum > 0 ? 1 : 0) != TG_OK) {
        free(opt);
        return NULL;
    }
    opt->base.lr = o->lr;
    return opt;
}

void tg_sgd_free(tg_sgd *opt)
{
    if (!opt)
        return;
    tg_optim_base_free(&opt->base);
    free(opt);
}

tg_status tg_sgd_step(tg_sgd *opt, const tg_tape *tape)
{
    if (!opt)
        return tg_fail(TG_ERR_ARG, "tg_sgd_step: optimizer is NULL");
    int64_t steps;
    tg_status s = tg_optim_begin(&opt->base, "tg_sgd_step", tape, &steps);
    if (s != TG_OK)
        return s;
    sgd_coeffs c = {opt->base.lr, opt->options.momentum, opt->options.weight_decay,
                    opt->options.nesterov, steps == 0};
    return tg_optim_apply(&opt->base, "tg_sgd_step", sgd_kernel, &c);
}

tg_status tg_sgd_set_lr(tg_sgd *opt, double lr)
{
    if (!opt)
        return tg_fail(TG_ERR_ARG, "tg_sgd_set_lr: optimizer is NULL");
    return tg_optim_set_lr(&opt->base, "tg_sgd_set_lr", lr);
}

double tg_sgd_lr(const tg_sgd *opt) { return opt ? opt->base.lr : NAN; }

int64_t tg_sgd_steps(const tg_sgd *opt)
{
    return opt ? (int64_t)((const double *)opt->base.step->data)[0] : -1;
}

tg_status tg_sgd_state(const tg_sgd *opt, tg_params *out)
{
    if (!opt)
        return tg_fail(TG_ERR_ARG, "tg_sgd_state: optimizer is NULL");
    static const char *const names[] = {"momentum"};
    return tg_optim_export(&opt->base, "sgd", names, out);
}

/* The operations and their order are PyTorch's _single_tensor_sgd, each in
 * the parameter's dtype:
 *   d_p = grad.add(param, alpha=wd); buf.mul_(momentum).add_(d_p);
 *   d_p = d_p.add(buf, alpha=momentum) (Nesterov); param.add_(d_p, alpha=-lr) */
#define SGD_LOOP(T)                                                                      \
    do {                                                                                 \
        T *pp = p, *buf = state[0];                                                      \
        const T *gp = g;                                                                 \
        const T wd = (T)c->weight_decay, mom = (T)c->momentum, neg_lr = (T)(-c->lr);     \
        for (int64_t i = 0; i < n; i++) {                                                \
            T d = gp[i], b = 0;                                                          \
            if (c->weight_decay != 0)                                                    \
                d = d + wd * pp[i];                                                      \
            if (c->momentum != 0) {                                                      \
                b = c->first ? d : buf[i] * mom + d;                                     \
                d = c->nesterov ? d + mom * b : b;                                       \
            }                                                                            \
            T np = pp[i] + neg_lr * d;                                                   \
            if (commit) {                                                                \
                pp[i] = np;                                                              \
                if (c->momentum != 0)                                                    \
                    buf[i] = b;                                                          \
            } else if (!isfinite(gp[i]) || !isfinite(np) || !isfinite(b)) {              \
                return i;                                                                \
            }                                                                            \
        }                                                                                \
    } while (0)

static int64_t sgd_kernel(const void *coeffs, tg_dtype dtype, int64_t n, void *p, const void *g,
                          void *const *state, bool commit)
{
    const sgd_coeffs *c = coeffs;
    if (dtype == TG_F32)
        SGD_LOOP(float);
    else
        SGD_LOOP(double);
    return -1;
}
