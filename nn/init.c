/* Parameter initialisers shared by the recurrent, linear and embedding layers
 * (and open to custom cells through tg_init_param).
 *
 * Every draw comes from the numpy-compatible tg_rng in C order of the
 * tensor, so `np.random.seed(s); np.random.randn(n_a, n_x) * 0.01` is
 * reproduced value for value by TG_INIT_COURSE. Biases under the course and
 * Xavier schemes are zeros and draw nothing, as np.zeros draws nothing. */
#include <math.h>

#include "recurrent.h"

/* t (fan_out, fan_in) for a weight, any shape for a bias */
tg_status tg_init_param(tg_tensor *t, tg_init init, bool bias, int64_t pytorch_fan, tg_rng *rng)
{
    if (!t || !rng)
        return tg_fail(TG_ERR_ARG, "tg_init_param: %s is NULL", t ? "rng" : "tensor");
    if (init != TG_INIT_COURSE && init != TG_INIT_XAVIER && init != TG_INIT_PYTORCH)
        return tg_fail(TG_ERR_ARG, "tg_init_param: unknown initialiser %d", (int)init);
    if (tg_dtype_size(t->dtype) == 0)
        return tg_fail(TG_ERR_DTYPE, "tg_init_param: unknown dtype %d", (int)t->dtype);
    int64_t n = tg_tensor_numel(t);
    char s[64];
    if (init == TG_INIT_PYTORCH) {
        if (pytorch_fan < 1)
            return tg_fail(TG_ERR_ARG,
                           "tg_init_param: the PyTorch bound needs a fan >= 1, got %lld",
                           (long long)pytorch_fan);
        double k = 1.0 / sqrt((double)pytorch_fan);
        tg_rng_fill_uniform(rng, t, -k, k);
        return TG_OK;
    }
    if (bias) {
        tg_tensor_fill(t, 0.0);
        return TG_OK;
    }
    if (init == TG_INIT_COURSE) {
        /* multiply in double before rounding, as numpy's randn(...) * 0.01 does */
        for (int64_t i = 0; i < n; i++)
            tg_tensor_set_flat(t, i, tg_rng_randn(rng) * 0.01);
        return TG_OK;
    }
    if (t->ndim != 2)
        return tg_fail(TG_ERR_SHAPE, "tg_init_param: Xavier needs a 2-D weight (fan_out, fan_in), "
                       "got %s", tg_shape_str(t, s, sizeof s));
    double fans = (double)t->shape[0] + (double)t->shape[1];
    if (fans <= 0)
        return TG_OK; /* an empty weight has nothing to draw */
    double limit = sqrt(6.0 / fans);
    tg_rng_fill_uniform(rng, t, -limit, limit);
    return TG_OK;
}
