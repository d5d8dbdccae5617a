/* Learning-rate schedules as pure functions of the step (see optim.h). The
 * closed forms are PyTorch's _get_closed_form_lr; its schedulers update the
 * rate recursively, which agrees with these to rounding. */
#include <math.h>

#include "internal.h"

double tg_lr_step_decay(double base_lr, int64_t step, int64_t step_size, double gamma)
{
    if (step < 0 || step_size <= 0) {
        tg_fail(TG_ERR_ARG, "tg_lr_step_decay: step %lld must be >= 0 and step_size %lld > 0",
                (long long)step, (long long)step_size);
        return NAN;
    }
    return base_lr * pow(gamma, (double)(step / step_size));
}

double tg_lr_cosine(double base_lr, int64_t step, int64_t t_max, double eta_min)
{
    if (step < 0 || t_max <= 0) {
        tg_fail(TG_ERR_ARG, "tg_lr_cosine: step %lld must be >= 0 and t_max %lld > 0",
                (long long)step, (long long)t_max);
        return NAN;
    }
    const double pi = 3.14159265358979323846;
    return eta_min + (base_lr - eta_min) * (1 + cos(pi * (double)step / (double)t_max)) / 2;
}

double tg_lr_warmup_factor(int64_t step, int64_t warmup_steps, double start_factor)
{
    if (step < 0 || warmup_steps < 0 || !(start_factor > 0 && start_factor <= 1)) {
        tg_fail(TG_ERR_ARG,
                "tg_lr_warmup_factor: step %lld and warmup_steps %lld must be >= 0, "
                "start_factor %g in (0, 1]",
                (long long)step, (long long)warmup_steps, start_factor);
        return NAN;
    }
    if (warmup_steps == 0)
        return 1.0;
    int64_t done = step < warmup_steps ? step : warmup_steps;
    return start_factor + (1.0 - start_factor) * (double)done / (double)warmup_steps;
}

double tg_lr_at(const tg_lr_schedule *schedule, int64_t step)
{
    if (!schedule) {
        tg_fail(TG_ERR_ARG, "tg_lr_at: schedule is NULL");
        return NAN;
    }
    const tg_lr_schedule *s = schedule;
    double lr;
    switch (s->decay) {
    case TG_LR_CONSTANT:
        lr = step >= 0 ? s->base_lr : NAN;
        break;
    case TG_LR_STEP: lr = tg_lr_step_decay(s->base_lr, step, s->step_size, s->gamma); break;
    case TG_LR_COSINE: lr = tg_lr_cosine(s->base_lr, step, s->t_max, s->eta_min); break;
    default:
        tg_fail(TG_ERR_ARG, "tg_lr_at: unknown decay %d", (int)s->decay);
        return NAN;
    }
    if (s->warmup_steps > 0)
        lr *= tg_lr_warmup_factor(step, s->warmup_steps, s->warmup_start_factor);
    return lr;
}
