/* Optimizers, clipping and schedules against PyTorch (fixture made by
 * tests/fixtures/make_optim_fixtures.py), the course's Adam against its
 * formula, and the safety rules of a step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"
#include "util.h"

/* ---- fixture reading ---------------------------------------------------------- */

enum { MAX_TOKENS = 4096, MAX_PARAMS = 2, MAX_STEPS = 5, MAX_OPTS = 12 };

typedef struct {
    FILE *f;
    char *line;
    size_t cap;
    char *tok[MAX_TOKENS];
    int n;
} fixture;

/* Tests run from tests/ (make test) or from the repository root. */
static FILE *open_fixture(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "fixtures/%s", name);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(path, sizeof path, "tests/fixtures/%s", name);
        f = fopen(path, "r");
    }
    ck_assert_msg(f != NULL, "fixture %s not found (run from the repository or tests/)", name);
    return f;
}

/* Next non-empty, non-comment line, split into tokens; false at the end. */
static bool fx_next(fixture *fx)
{
    for (;;) {
        if (getline(&fx->line, &fx->cap, fx->f) < 0)
            return false;
        fx->n = 0;
        for (char *t = strtok(fx->line, " \t\r\n"); t && fx->n < MAX_TOKENS;
             t = strtok(NULL, " \t\r\n"))
            fx->tok[fx->n++] = t;
        if (fx->n > 0 && fx->tok[0][0] != '#')
            return true;
    }
}

static void fx_close(fixture *fx)
{
    fclose(fx->f);
    free(fx->line);
}

typedef struct {
    char kind[8], label[64], algo[16];
    tg_dtype dtype;
    int steps;
    int n_opts;
    char keys[MAX_OPTS][24];
    char text[MAX_OPTS][24];
    double vals[MAX_OPTS];
    double max_norm, total_norm; /* clip records */
    int n_params;
    char name[MAX_PARAMS][8];
    int ndim[MAX_PARAMS];
    int64_t shape[MAX_PARAMS][TG_MAX_DIMS];
    int64_t numel[MAX_PARAMS];
    double *init[MAX_PARAMS];
    double *grad[MAX_STEPS + 1][MAX_PARAMS];
    double *expect[MAX_STEPS + 1][MAX_PARAMS];
} fx_case;

static void parse_opts(fx_case *c, fixture *fx, int from)
{
    for (int i = from; i < fx->n && c->n_opts < MAX_OPTS; i++) {
        char *eq = strchr(fx->tok[i], '=');
        ck_assert_ptr_nonnull(eq);
        *eq = '\0';
        snprintf(c->keys[c->n_opts], sizeof c->keys[0], "%s", fx->tok[i]);
        snprintf(c->text[c->n_opts], sizeof c->text[0], "%s", eq + 1);
        c->vals[c->n_opts++] = strtod(eq + 1, NULL);
    }
}

static double opt_or(const fx_case *c, const char *key, double fallback)
{
    for (int i = 0; i < c->n_opts; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->vals[i];
    return fallback;
}

static const char *opt_text(const fx_case *c, const char *key)
{
    for (int i = 0; i < c->n_opts; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->text[i];
    return "";
}

static int param_index(const fx_case *c, const char *name)
{
    for (int i = 0; i < c->n_params; i++)
        if (strcmp(c->name[i], name) == 0)
            return i;
    ck_abort_msg("fixture: unknown parameter %s", name);
    return -1;
}

static double *parse_values(fixture *fx, int from, int64_t n)
{
    ck_assert_int_eq(fx->n - from, n);
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = strtod(fx->tok[from + i], NULL);
    return v;
}

/* Read the next "case" or "clip" record; false when there is none left. */
static bool next_case(fixture *fx, fx_case *c)
{
    memset(c, 0, sizeof *c);
    while (fx_next(fx)) {
        if (strcmp(fx->tok[0], "case") == 0) {
            snprintf(c->kind, sizeof c->kind, "case");
            snprintf(c->label, sizeof c->label, "%s", fx->tok[1]);
            snprintf(c->algo, sizeof c->algo, "%s", fx->tok[2]);
            c->dtype = strcmp(fx->tok[3], "f32") == 0 ? TG_F32 : TG_F64;
            c->steps = atoi(fx->tok[4]);
            ck_assert_int_le(c->steps, MAX_STEPS);
            parse_opts(c, fx, 5);
            break;
        }
        if (strcmp(fx->tok[0], "clip") == 0) {
            snprintf(c->kind, sizeof c->kind, "clip");
            snprintf(c->label, sizeof c->label, "%s", fx->tok[1]);
            c->dtype = strcmp(fx->tok[2], "f32") == 0 ? TG_F32 : TG_F64;
            c->max_norm = strtod(fx->tok[3], NULL);
            c->total_norm = strtod(fx->tok[4], NULL);
            c->steps = 1;
            break;
        }
    }
    if (!c->kind[0])
        return false;
    while (fx_next(fx) && strcmp(fx->tok[0], "end") != 0) {
        if (strcmp(fx->tok[0], "param") == 0) {
            int i = c->n_params++;
            ck_assert_int_le(c->n_params, MAX_PARAMS);
            snprintf(c->name[i], sizeof c->name[i], "%s", fx->tok[1]);
            c->ndim[i] = atoi(fx->tok[2]);
            c->numel[i] = 1;
            for (int d = 0; d < c->ndim[i]; d++) {
                c->shape[i][d] = atoll(fx->tok[3 + d]);
                c->numel[i] *= c->shape[i][d];
            }
            c->init[i] = parse_values(fx, 3 + c->ndim[i], c->numel[i]);
        } else {
            int t = atoi(fx->tok[1]), i = param_index(c, fx->tok[2]);
            ck_assert(t >= 1 && t <= c->steps);
            double **slot = strcmp(fx->tok[0], "grad") == 0 ? &c->grad[t][i] : &c->expect[t][i];
            *slot = parse_values(fx, 3, c->numel[i]);
        }
    }
    return true;
}

static void free_case(fx_case *c)
{
    for (int i = 0; i < MAX_PARAMS; i++) {
        free(c->init[i]);
        for (int t = 0; t <= MAX_STEPS; t++) {
            free(c->grad[t][i]);
            free(c->expect[t][i]);
        }
    }
}

/* ---- a small model: named parameters with gradients ---------------------------------- */

typedef struct {
    tg_params set;
    tg_tensor *t[MAX_PARAMS];
    int n;
} model;

static void model_from_case(model *m, const fx_case *c)
{
    memset(m, 0, sizeof *m);
    m->n = c->n_params;
    for (int i = 0; i < c->n_params; i++) {
        m->t[i] = tg_tensor_from_doubles(c->dtype, c->ndim[i], c->shape[i], c->init[i]);
        ck_assert_ptr_nonnull(m->t[i]);
        ck_assert_int_eq(tg_tensor_requires_grad(m->t[i], true), TG_OK);
        ck_assert_int_eq(tg_params_add(&m->set, c->name[i], m->t[i]), TG_OK);
    }
}

static void model_free(model *m)
{
    tg_params_clear(&m->set);
    for (int i = 0; i < m->n; i++)
        tg_tensor_free(m->t[i]);
}

static void set_values(tg_tensor *t, const double *values)
{
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set_flat(t, i, values[i]);
}

/* |got - want| <= tol * max(1, |want|) for every element. */
static void assert_close(const char *what, const tg_tensor *got, const double *want, double tol)
{
    for (int64_t i = 0; i < tg_tensor_numel(got); i++) {
        double g = tg_tensor_get_flat(got, i);
        double err = fabs(g - want[i]) / fmax(1.0, fabs(want[i]));
        ck_assert_msg(err <= tol, "%s[%lld]: got %.17g, want %.17g (error %.3g > %.3g)", what,
                      (long long)i, g, want[i], err, tol);
    }
}

static double tolerance(tg_dtype dtype) { return dtype == TG_F64 ? 1e-12 : 1e-6; }

/* ---- PyTorch optimizers -------------------------------------------------------------- */

typedef struct {
    tg_sgd *sgd;
    tg_adam *adam;
    tg_params v, s; /* course */
} any_optimizer;

static void make_optimizer(any_optimizer *o, const fx_case *c, const tg_params *params)
{
    memset(o, 0, sizeof *o);
    double lr = opt_or(c, "lr", NAN);
    if (strcmp(c->algo, "sgd") == 0) {
        tg_sgd_options so = tg_sgd_defaults(lr);
        so.momentum = opt_or(c, "momentum", 0);
        so.weight_decay = opt_or(c, "weight_decay", 0);
        so.nesterov = opt_or(c, "nesterov", 0) != 0;
        o->sgd = tg_sgd_new(params, &so);
        ck_assert_msg(o->sgd != NULL, "%s", tg_last_error());
    } else if (strcmp(c->algo, "course") == 0) {
        ck_assert_int_eq(tg_course_initialize_adam(params, &o->v, &o->s), TG_OK);
    } else {
        bool w = strcmp(c->algo, "adamw") == 0;
        tg_adam_options ao = w ? tg_adamw_defaults(lr) : tg_adam_defaults(lr);
        ao.beta1 = opt_or(c, "beta1", ao.beta1);
        ao.beta2 = opt_or(c, "beta2", ao.beta2);
        ao.eps = opt_or(c, "eps", ao.eps);
        ao.weight_decay = opt_or(c, "weight_decay", ao.weight_decay);
        o->adam = tg_adam_new(params, &ao);
        ck_assert_msg(o->adam != NULL, "%s", tg_last_error());
    }
}

static tg_status step_optimizer(any_optimizer *o, const fx_case *c, const tg_params *params,
                                int t)
{
    if (o->sgd)
        return tg_sgd_step(o->sgd, NULL);
    if (o->adam)
        return tg_adam_step(o->adam, NULL);
    return tg_course_update_parameters_with_adam(params, NULL, &o->v, &o->s, t, opt_or(c, "lr", NAN),
                                          opt_or(c, "beta1", NAN), opt_or(c, "beta2", NAN),
                                          opt_or(c, "eps", NAN));
}

static void free_optimizer(any_optimizer *o)
{
    tg_sgd_free(o->sgd);
    tg_adam_free(o->adam);
    tg_course_free_adam(&o->v, &o->s);
}

/* Run every fixture case whose algorithm is `algo`; returns how many ran. */
static int run_cases(const char *algo)
{
    fixture fx = {open_fixture("optim.txt"), NULL, 0, {0}, 0};
    fx_case c;
    int ran = 0;
    while (next_case(&fx, &c)) {
        if (strcmp(c.kind, "case") == 0 && strcmp(c.algo, algo) == 0) {
            model m;
            model_from_case(&m, &c);
            any_optimizer o;
            make_optimizer(&o, &c, &m.set);
            for (int t = 1; t <= c.steps; t++) {
                for (int i = 0; i < m.n; i++)
                    set_values(m.t[i]->grad, c.grad[t][i]);
                tg_status s = step_optimizer(&o, &c, &m.set, t);
                ck_assert_msg(s == TG_OK, "%s step %d: %s", c.label, t, tg_last_error());
                for (int i = 0; i < m.n; i++) {
                    char what[128];
                    snprintf(what, sizeof what, "%s step %d %s", c.label, t, c.name[i]);
                    assert_close(what, m.t[i], c.expect[t][i], tolerance(c.dtype));
                }
            }
            if (o.adam)
                ck_assert_int_eq(tg_adam_steps(o.adam), c.steps);
            if (o.sgd)
                ck_assert_int_eq(tg_sgd_steps(o.sgd), c.steps);
            free_optimizer(&o);
            model_free(&m);
            ran++;
        }
        free_case(&c);
    }
    fx_close(&fx);
    return ran;
}

START_TEST(sgd_momentum_nesterov_weight_decay_match_pytorch)
{
    ck_assert_int_eq(run_cases("sgd"), 6);
}
END_TEST

START_TEST(adam_matches_pytorch)
{
    ck_assert_int_eq(run_cases("adam"), 4);
}
END_TEST

START_TEST(adamw_matches_pytorch)
{
    ck_assert_int_eq(run_cases("adamw"), 3);
}
END_TEST

START_TEST(course_adam_matches_numpy_fixture)
{
    ck_assert_int_eq(run_cases("course"), 2);
}
END_TEST

/* The course's update, written out here from the notebook, over two steps;
 * gradients come from a "dW"-keyed set as in the course. */
START_TEST(course_adam_matches_the_seed_formula)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_params parameters = {0}, grads = {0}, v = {0}, s = {0};
    tg_tensor *W1 = tg_tensor_randn(&rng, TG_F64, TG_DIMS(2, 3));
    tg_tensor *b1 = tg_tensor_randn(&rng, TG_F64, TG_DIMS(2, 1));
    tg_tensor *dW1 = tg_tensor_randn(&rng, TG_F64, TG_DIMS(2, 3));
    tg_tensor *db1 = tg_tensor_randn(&rng, TG_F64, TG_DIMS(2, 1));
    tg_params_add(&parameters, "W1", W1);
    tg_params_add(&parameters, "b1", b1);
    tg_params_add(&grads, "dW1", dW1);
    tg_params_add(&grads, "db1", db1);
    ck_assert_int_eq(tg_course_initialize_adam(&parameters, &v, &s), TG_OK);
    ck_assert_int_eq(v.count, 2);
    ck_assert_str_eq(v.items[0].name, "dW1");
    ck_assert_str_eq(s.items[1].name, "db1");

    const double lr = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    tg_tensor *ps[2] = {W1, b1}, *gs[2] = {dW1, db1};
    double p_ref[2][6], v_ref[2][6] = {{0}}, s_ref[2][6] = {{0}};
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < tg_tensor_numel(ps[k]); i++)
            p_ref[k][i] = tg_tensor_get_flat(ps[k], i);
    for (int t = 1; t <= 2; t++) {
        ck_assert_int_eq(
            tg_course_update_parameters_with_adam(&parameters, &grads, &v, &s, t, lr, beta1, beta2, eps),
            TG_OK);
        for (int k = 0; k < 2; k++) {
            for (int64_t i = 0; i < tg_tensor_numel(ps[k]); i++) {
                double g = tg_tensor_get_flat(gs[k], i);
                v_ref[k][i] = beta1 * v_ref[k][i] + (1 - beta1) * g;
                double v_corrected = v_ref[k][i] / (1 - pow(beta1, t));
                s_ref[k][i] = beta2 * s_ref[k][i] + (1 - beta2) * (g * g);
                double s_corrected = s_ref[k][i] / (1 - pow(beta2, t));
                p_ref[k][i] = p_ref[k][i] - lr * v_corrected / sqrt(s_corrected + eps);
            }
            assert_close("course p", ps[k], p_ref[k], 1e-15);
            assert_close("course v", v.items[k].tensor, v_ref[k], 1e-15);
            assert_close("course s", s.items[k].tensor, s_ref[k], 1e-15);
        }
        /* The gradients change between the steps. */
        tg_rng_fill_randn(&rng, dW1);
        tg_rng_fill_randn(&rng, db1);
    }
    tg_course_free_adam(&v, &s);
    ck_assert_int_eq(v.count, 0);
    tg_params_clear(&parameters);
    tg_params_clear(&grads);
    tu_free_all((tg_tensor *[]){W1, b1, dW1, db1}, 4);
}
END_TEST

/* Epsilon inside the square root (course) against sqrt(v_hat) + eps
 * (PyTorch): the same on ordinary gradients, different on tiny ones. */
START_TEST(course_and_pytorch_epsilon_differ_only_for_tiny_gradients)
{
    tg_params a = {0}, b = {0}, v = {0}, s = {0};
    tg_tensor *pa = tg_tensor_zeros(TG_F64, TG_DIMS(2));
    tg_tensor *pb = tg_tensor_zeros(TG_F64, TG_DIMS(2));
    tg_tensor_requires_grad(pa, true);
    tg_tensor_requires_grad(pb, true);
    tg_params_add(&a, "p", pa);
    tg_params_add(&b, "p", pb);
    double grads[2] = {0.5, 1e-6};
    set_values(pa->grad, grads);
    set_values(pb->grad, grads);
    tg_adam_options o = tg_adam_defaults(0.01);
    tg_adam *opt = tg_adam_new(&a, &o);
    ck_assert_int_eq(tg_course_initialize_adam(&b, &v, &s), TG_OK);
    ck_assert_int_eq(tg_adam_step(opt, NULL), TG_OK);
    ck_assert_int_eq(tg_course_update_parameters_with_adam(&b, NULL, &v, &s, 1, 0.01, 0.9, 0.999, 1e-8),
                     TG_OK);
    /* Step 1 of PyTorch's Adam moves every element by about lr. */
    double torch0 = tg_tensor_get_flat(pa, 0), torch1 = tg_tensor_get_flat(pa, 1);
    double course0 = tg_tensor_get_flat(pb, 0), course1 = tg_tensor_get_flat(pb, 1);
    ck_assert_double_eq_tol(torch0, -0.01, 1e-9);
    ck_assert_double_eq_tol(course0, -0.01, 1e-9);
    ck_assert_double_eq_tol(torch1, -0.01 * 1e-6 / (1e-6 + 1e-8), 1e-12);
    /* Course: 1e-6 / sqrt(1e-12 + 1e-8) ~ 0.01: the step nearly vanishes. */
    ck_assert_double_eq_tol(course1, -0.01 * 1e-6 / sqrt(1e-12 + 1e-8), 1e-12);
    ck_assert(fabs(course1) < 0.02 * fabs(torch1));
    tg_adam_free(opt);
    tg_course_free_adam(&v, &s);
    tg_params_clear(&a);
    tg_params_clear(&b);
    tg_tensor_free(pa);
    tg_tensor_free(pb);
}
END_TEST

/* ---- clipping ----------------------------------------------------------------------- */

static double grad_norm(const model *m)
{
    double sum = 0;
    for (int i = 0; i < m->n; i++)
        for (int64_t k = 0; k < tg_tensor_numel(m->t[i]); k++) {
            double g = tg_tensor_get_flat(m->t[i]->grad, k);
            sum += g * g;
        }
    return sqrt(sum);
}

START_TEST(clip_grad_norm_matches_pytorch_and_keeps_max_norm)
{
    fixture fx = {open_fixture("optim.txt"), NULL, 0, {0}, 0};
    fx_case c;
    int ran = 0;
    while (next_case(&fx, &c)) {
        if (strcmp(c.kind, "clip") == 0) {
            model m;
            model_from_case(&m, &c);
            for (int i = 0; i < m.n; i++)
                set_values(m.t[i]->grad, c.grad[1][i]);
            double norm = 0;
            ck_assert_int_eq(tg_clip_grad_norm(&m.set, c.max_norm, &norm), TG_OK);
            /* The returned norm is the one before clipping. */
            ck_assert_double_eq_tol(norm, c.total_norm, tolerance(c.dtype) * c.total_norm);
            for (int i = 0; i < m.n; i++)
                assert_close(c.label, m.t[i]->grad, c.expect[1][i], tolerance(c.dtype));
            double after = grad_norm(&m);
            if (c.total_norm > c.max_norm) {
                /* Clipped to max_norm itself (a hair under), e.g. 10, not 1. */
                ck_assert_msg(after <= c.max_norm * (1 + 1e-6) &&
                                  after >= c.max_norm * (1 - 1e-6),
                              "%s: norm after clipping %.17g, threshold %g", c.label, after,
                              c.max_norm);
            } else {
                ck_assert_double_eq_tol(after, c.total_norm, 1e-12 * c.total_norm);
            }
            model_free(&m);
            ran++;
        }
        free_case(&c);
    }
    fx_close(&fx);
    ck_assert_int_eq(ran, 3);
}
END_TEST

START_TEST(clip_grad_norm_to_10_gives_norm_10)
{
    /* Gradient (30, 40, 0) has norm 50; clipped at 10 it is (6, 8, 0). */
    tg_tensor *p = tg_tensor_zeros(TG_F64, TG_DIMS(3));
    tg_tensor_requires_grad(p, true);
    set_values(p->grad, (double[]){30, 40, 0});
    tg_params set = {0};
    tg_params_add(&set, "p", p);
    double norm;
    ck_assert_int_eq(tg_clip_grad_norm(&set, 10.0, &norm), TG_OK);
    ck_assert_double_eq(norm, 50.0);
    double scale = 10.0 / (50.0 + 1e-6);
    ck_assert_double_eq_tol(tg_tensor_get_flat(p->grad, 0), 30 * scale, 1e-15);
    ck_assert_double_eq_tol(tg_tensor_get_flat(p->grad, 1), 40 * scale, 1e-15);
    double after = hypot(tg_tensor_get_flat(p->grad, 0), tg_tensor_get_flat(p->grad, 1));
    ck_assert_double_eq_tol(after, 10.0, 1e-6);
    ck_assert(after > 9.99999);
    /* Under the threshold nothing changes. */
    ck_assert_int_eq(tg_clip_grad_norm(&set, 20.0, &norm), TG_OK);
    ck_assert_double_eq_tol(norm, 10.0, 1e-6);
    ck_assert_double_eq(hypot(tg_tensor_get_flat(p->grad, 0), tg_tensor_get_flat(p->grad, 1)),
                        after);
    /* Huge gradients: the norm does not overflow. */
    set_values(p->grad, (double[]){3e300, 4e300, 0});
    ck_assert_int_eq(tg_clip_grad_norm(&set, 10.0, &norm), TG_OK);
    ck_assert_double_eq_tol(norm, 5e300, 1e286);
    ck_assert_double_eq_tol(tg_tensor_get_flat(p->grad, 1), 8.0, 1e-9);
    /* A NaN gradient: error naming it, gradients left alone, norm reported. */
    set_values(p->grad, (double[]){1, NAN, 100});
    ck_assert_int_eq(tg_clip_grad_norm(&set, 1.0, &norm), TG_ERR_NONFINITE);
    ck_assert(isnan(norm));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "gradient of 'p' is nan at index 1"));
    ck_assert_double_eq(tg_tensor_get_flat(p->grad, 2), 100);
    ck_assert_int_eq(tg_clip_grad_norm(&set, -1.0, NULL), TG_ERR_ARG);
    tg_params_clear(&set);
    tg_tensor_free(p);
}
END_TEST

/* One set of f32 and f64 gradients and a frozen parameter: every pass of the
 * norm (plain, overflow-safe, scaling) and the value clip read each gradient
 * in its own dtype and leave the frozen parameter alone. */
START_TEST(clip_walks_mixed_dtypes_and_skips_frozen)
{
    tg_tensor *a = tg_tensor_zeros(TG_F32, TG_DIMS(2));
    tg_tensor *b = tg_tensor_zeros(TG_F64, TG_DIMS(1));
    tg_tensor *frozen = tg_tensor_from_doubles(TG_F64, TG_DIMS(2), (double[]){7, -7});
    tg_tensor_requires_grad(a, true);
    tg_tensor_requires_grad(b, true);
    tg_params set = {0};
    tg_params_add(&set, "a", a);
    tg_params_add(&set, "frozen", frozen);
    tg_params_add(&set, "b", b);

    set_values(a->grad, (double[]){3, 0});
    set_values(b->grad, (double[]){4});
    double norm = 0, scale = 1.0 / (5.0 + 1e-6);
    ck_assert_int_eq(tg_clip_grad_norm(&set, 1.0, &norm), TG_OK);
    ck_assert_double_eq(norm, 5.0);
    ck_assert_double_eq(tg_tensor_get_flat(a->grad, 0), (double)(float)(3.0 * scale));
    ck_assert_double_eq(tg_tensor_get_flat(a->grad, 1), 0.0);
    ck_assert_double_eq(tg_tensor_get_flat(b->grad, 0), 4.0 * scale);

    /* The sum of squares overflows: the norm is redone relative to 4e300. */
    set_values(a->grad, (double[]){-3, 2});
    set_values(b->grad, (double[]){-4e300});
    ck_assert_int_eq(tg_clip_grad_norm(&set, 2.0, &norm), TG_OK);
    ck_assert_double_eq_tol(norm, 4e300, 1e286);
    ck_assert_double_eq_tol(tg_tensor_get_flat(b->grad, 0), -2.0, 1e-12);
    ck_assert_double_eq(tg_tensor_get_flat(a->grad, 0), (double)(float)(-3.0 * (2.0 / norm)));

    set_values(a->grad, (double[]){-3, 0.5});
    set_values(b->grad, (double[]){4});
    ck_assert_int_eq(tg_clip_grad_value(&set, 1.0), TG_OK);
    ck_assert_double_eq(tg_tensor_get_flat(a->grad, 0), -1.0);
    ck_assert_double_eq(tg_tensor_get_flat(a->grad, 1), 0.5);
    ck_assert_double_eq(tg_tensor_get_flat(b->grad, 0), 1.0);

    ck_assert_ptr_null(frozen->grad);
    ck_assert_double_eq(tg_tensor_get_flat(frozen, 0), 7.0);
    ck_assert_double_eq(tg_tensor_get_flat(frozen, 1), -7.0);
    tg_params_clear(&set);
    tu_free_all((tg_tensor *[]){a, b, frozen}, 3);
}
END_TEST

START_TEST(clip_by_value_is_np_clip_in_place)
{
    const double raw[8] = {-12, -10, -3.5, 0, 4, 10.5, 50, NAN};
    tg_tensor *dWaa = tg_tensor_from_doubles(TG_F64, TG_DIMS(2, 4), raw);
    tg_tensor *dby = tg_tensor_from_doubles(TG_F32, TG_DIMS(8), raw);
    tg_params gradients = {0};
    tg_params_add(&gradients, "dWaa", dWaa);
    tg_params_add(&gradients, "dby", dby);
    ck_assert_int_eq(tg_course_clip(&gradients, 10.0), TG_OK);
    for (int i = 0; i < 7; i++) {
        double want = fmin(fmax(raw[i], -10), 10);
        ck_assert_double_eq(tg_tensor_get_flat(dWaa, i), want);
        ck_assert_double_eq(tg_tensor_get_flat(dby, i), want);
    }
    ck_assert(isnan(tg_tensor_get_flat(dWaa, 7)));
    ck_assert_int_eq(tg_course_clip(&gradients, -1), TG_ERR_ARG);

    /* clip_grad_value_ acts on each parameter's grad, including views' strides. */
    tg_tensor *p = tg_tensor_zeros(TG_F64, TG_DIMS(2, 4));
    tg_tensor_requires_grad(p, true);
    set_values(p->grad, raw);
    tg_params params = {0};
    tg_params_add(&params, "p", p);
    ck_assert_int_eq(tg_clip_grad_value(&params, 4.0), TG_OK);
    for (int i = 0; i < 7; i++)
        ck_assert_double_eq(tg_tensor_get_flat(p->grad, i), fmin(fmax(raw[i], -4), 4));
    tg_params_clear(&gradients);
    tg_params_clear(&params);
    tu_free_all((tg_tensor *[]){dWaa, dby, p}, 3);
}
END_TEST

/* ---- schedules ---------------------------------------------------------------------- */

START_TEST(schedules_match_pytorch_schedulers)
{
    fixture fx = {open_fixture("optim.txt"), NULL, 0, {0}, 0};
    int ran = 0;
    while (fx_next(&fx)) {
        if (strcmp(fx.tok[0], "sched") != 0)
            continue;
        fx_case c;
        memset(&c, 0, sizeof c);
        snprintf(c.label, sizeof c.label, "%s", fx.tok[1]);
        parse_opts(&c, &fx, 2);
        tg_lr_schedule s = {0};
        s.base_lr = opt_or(&c, "base_lr", NAN);
        const char *decay = opt_text(&c, "decay");
        s.decay = strcmp(decay, "step") == 0     ? TG_LR_STEP
                  : strcmp(decay, "cosine") == 0 ? TG_LR_COSINE
                                                 : TG_LR_CONSTANT;
        s.step_size = (int64_t)opt_or(&c, "step_size", 0);
        s.gamma = opt_or(&c, "gamma", 0);
        s.t_max = (int64_t)opt_or(&c, "t_max", 0);
        s.eta_min = opt_or(&c, "eta_min", 0);
        s.warmup_steps = (int64_t)opt_or(&c, "warmup", 0);
        s.warmup_start_factor = opt_or(&c, "start", 1);
        ck_assert(fx_next(&fx) && strcmp(fx.tok[0], "lrs") == 0);
        int n = atoi(fx.tok[1]);
        ck_assert_int_eq(fx.n, n + 2);
        for (int k = 0; k < n; k++) {
            double want = strtod(fx.tok[2 + k], NULL), got = tg_lr_at(&s, k);
            ck_assert_msg(fabs(got - want) <= 1e-12 * fmax(want, 1e-3),
                          "schedule %s step %d: got %.17g, PyTorch %.17g", c.label, k, got, want);
        }
        ran++;
    }
    fx_close(&fx);
    ck_assert_int_eq(ran, 6);
}
END_TEST

START_TEST(schedule_functions_follow_their_formulas)
{
    ck_assert_double_eq(tg_lr_step_decay(0.1, 0, 10, 0.5), 0.1);
    ck_assert_double_eq(tg_lr_step_decay(0.1, 9, 10, 0.5), 0.1);
    ck_assert_double_eq(tg_lr_step_decay(0.1, 10, 10, 0.5), 0.05);
    ck_assert_double_eq(tg_lr_step_decay(0.1, 25, 10, 0.5), 0.025);
    ck_assert_double_eq(tg_lr_cosine(1.0, 0, 100, 0.0), 1.0);
    ck_assert_double_eq_tol(tg_lr_cosine(1.0, 50, 100, 0.0), 0.5, 1e-15);
    ck_assert_double_eq_tol(tg_lr_cosine(1.0, 100, 100, 0.1), 0.1, 1e-15);
    ck_assert_double_eq(tg_lr_warmup_factor(0, 4, 0.2), 0.2);
    ck_assert_double_eq_tol(tg_lr_warmup_factor(2, 4, 0.2), 0.6, 1e-15);
    ck_assert_double_eq(tg_lr_warmup_factor(4, 4, 0.2), 1.0);
    ck_assert_double_eq(tg_lr_warmup_factor(400, 4, 0.2), 1.0);
    ck_assert_double_eq(tg_lr_warmup_factor(3, 0, 0.2), 1.0);
    ck_assert(isnan(tg_lr_step_decay(0.1, 3, 0, 0.5)));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "step_size"));
    ck_assert(isnan(tg_lr_cosine(0.1, -1, 10, 0)));
    /* A NaN rate is refused by the optimizer. */
    tg_params none = {0};
    tg_sgd_options o = tg_sgd_defaults(0.1);
    tg_sgd *opt = tg_sgd_new(&none, &o);
    ck_assert_int_eq(tg_sgd_set_lr(opt, tg_lr_cosine(0.1, -1, 10, 0)), TG_ERR_ARG);
    ck_assert_double_eq(tg_sgd_lr(opt), 0.1);
    ck_assert_int_eq(tg_sgd_set_lr(opt, 0.05), TG_OK);
    ck_assert_double_eq(tg_sgd_lr(opt), 0.05);
    tg_sgd_free(opt);
}
END_TEST

/* ---- safety -------------------------------------------------------------------------- */

/* W (3,4) and b (3,) of dtype with gradients drawn from rng. */
static void make_model(model *m, tg_dtype dtype, uint32_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    memset(m, 0, sizeof *m);
    m->n = 2;
    m->t[0] = tu_param(&rng, dtype, "W", TG_DIMS(3, 4));
    m->t[1] = tu_param(&rng, dtype, "b", TG_DIMS(3));
    for (int i = 0; i < 2; i++) {
        tg_rng_fill_randn(&rng, m->t[i]->grad);
        tg_params_add(&m->set, m->t[i]->name, m->t[i]);
    }
}

/* Contiguous copies of every tensor of a set (parameters and state). */
static tg_tensor **snapshot(const tg_params *set)
{
    tg_tensor **copies = calloc((size_t)set->count, sizeof *copies);
    for (int i = 0; i < set->count; i++)
        copies[i] = tg_tensor_copy(set->items[i].tensor);
    return copies;
}

static void assert_unchanged(const tg_params *set, tg_tensor **copies)
{
    for (int i = 0; i < set->count; i++)
        ck_assert_msg(memcmp(set->items[i].tensor->data, copies[i]->data,
                             (size_t)tg_tensor_numel(copies[i]) *
                                 tg_dtype_size(copies[i]->dtype)) == 0,
                      "'%s' changed", set->items[i].name);
    for (int i = 0; i < set->count; i++)
        tg_tensor_free(copies[i]);
    free(copies);
}

typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_COURSE } opt_kind;

/* An optimizer of each kind over m, two good steps taken so that its state
 * is not zero; `everything` = parameters + optimizer state. */
typedef struct {
    opt_kind kind;
    tg_sgd *sgd;
    tg_adam *adam;
    tg_params v, s, everything;
} safety_rig;

static tg_status rig_step(safety_rig *r, model *m, const tg_tape *tape)
{
    switch (r->kind) {
    case OPT_SGD: return tg_sgd_step(r->sgd, tape);
    case OPT_ADAM:
    case OPT_ADAMW: return tg_adam_step(r->adam, tape);
    case OPT_COURSE:
        (void)tape;
        return tg_course_update_parameters_with_adam(&m->set, NULL, &r->v, &r->s, 3, 0.01, 0.9, 0.999,
                                              1e-8);
    }
    return TG_ERR_ARG;
}

static void rig_make(safety_rig *r, opt_kind kind, model *m)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    ck_assert_int_eq(tg_params_extend(&r->everything, NULL, &m->set), TG_OK);
    if (kind == OPT_SGD) {
        tg_sgd_options o = tg_sgd_defaults(0.1);
        o.momentum = 0.9;
        o.nesterov = true;
        r->sgd = tg_sgd_new(&m->set, &o);
        ck_assert_int_eq(tg_sgd_state(r->sgd, &r->everything), TG_OK);
    } else if (kind == OPT_COURSE) {
        tg_course_initialize_adam(&m->set, &r->v, &r->s);
        ck_assert_int_eq(tg_params_extend(&r->everything, "v.", &r->v), TG_OK);
        ck_assert_int_eq(tg_params_extend(&r->everything, "s.", &r->s), TG_OK);
    } else {
        tg_adam_options o = kind == OPT_ADAMW ? tg_adamw_defaults(0.01) : tg_adam_defaults(0.01);
        r->adam = tg_adam_new(&m->set, &o);
        ck_assert_int_eq(tg_adam_state(r->adam, &r->everything), TG_OK);
    }
    for (int k = 0; k < 2; k++)
        ck_assert_msg(rig_step(r, m, NULL) == TG_OK, "%s", tg_last_error());
}

static void rig_free(safety_rig *r)
{
    tg_sgd_free(r->sgd);
    tg_adam_free(r->adam);
    tg_course_free_adam(&r->v, &r->s);
    tg_params_clear(&r->everything);
}

START_TEST(nonfinite_gradient_is_refused_and_changes_nothing)
{
    const double bad[3] = {NAN, INFINITY, -INFINITY};
    const char *bad_name[3] = {"nan", "inf", "-inf"};
    for (int dt = 0; dt < 2; dt++) {
        for (int kind = OPT_SGD; kind <= OPT_COURSE; kind++) {
            for (int b = 0; b < 3; b++) {
                model m;
                make_model(&m, dt ? TG_F64 : TG_F32, 7);
                safety_rig r;
                rig_make(&r, (opt_kind)kind, &m);
                /* The bad value sits in the second parameter's gradient, so
                 * the first parameter's update would come first. */
                tg_tensor_set(m.t[1]->grad, (int64_t[]){2}, bad[b]);
                tg_tensor **before = snapshot(&r.everything);
                ck_assert_int_eq(rig_step(&r, &m, NULL), TG_ERR_NONFINITE);
                char want[96];
                snprintf(want, sizeof want, "gradient of 'b' is %s at index 2 (element (2))",
                         bad_name[b]);
                ck_assert_msg(strstr(tg_last_error(), want), "message: %s", tg_last_error());
                assert_unchanged(&r.everything, before);
                if (r.adam)
                    ck_assert_int_eq(tg_adam_steps(r.adam), 2);
                if (r.sgd)
                    ck_assert_int_eq(tg_sgd_steps(r.sgd), 2);
                /* Fixed gradient: the step runs again. */
                tg_tensor_set(m.t[1]->grad, (int64_t[]){2}, 0.5);
                ck_assert_int_eq(rig_step(&r, &m, NULL), TG_OK);
                rig_free(&r);
                model_free(&m);
            }
        }
    }
}
END_TEST

START_TEST(nan_message_names_parameter_and_element)
{
    model m;
    make_model(&m, TG_F64, 3);
    safety_rig r;
    rig_make(&r, OPT_ADAM, &m);
    tg_tensor_set(m.t[0]->grad, (int64_t[]){1, 2}, NAN);
    ck_assert_int_eq(rig_step(&r, &m, NULL), TG_ERR_NONFINITE);
    ck_assert_str_eq(tg_last_error(), "tg_adam_step: gradient of 'W' is nan at index 6 (element "
                                      "(1,2)); nothing was changed");
    rig_free(&r);
    model_free(&m);
}
END_TEST

START_TEST(errored_tape_is_refused_and_changes_nothing)
{
    for (int kind = OPT_SGD; kind <= OPT_ADAMW; kind++) {
        model m;
        make_model(&m, TG_F64, 11);
        safety_rig r;
        rig_make(&r, (opt_kind)kind, &m);
        tg_tape *tape = tg_tape_new();
        tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(5, 5));
        ck_assert_ptr_null(tg_matmul(tape, m.t[0], x)); /* (3,4) @ (5,5) */
        tg_tensor **before = snapshot(&r.everything);
        ck_assert_int_eq(rig_step(&r, &m, tape), TG_ERR_STATE);
        ck_assert_ptr_nonnull(strstr(tg_last_error(), "tape holds an error"));
        ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_matmul"));
        assert_unchanged(&r.everything, before);
        tg_tape_reset(tape);
        ck_assert_int_eq(rig_step(&r, &m, tape), TG_OK);
        tg_tape_free(tape);
        tg_tensor_free(x);
        rig_free(&r);
        model_free(&m);
    }
}
END_TEST

START_TEST(overflowing_update_is_refused)
{
    /* f32: a finite gradient of 1e30 times lr 1e10 overflows the parameter. */
    model m;
    make_model(&m, TG_F32, 5);
    tg_sgd_options o = tg_sgd_defaults(1e10);
    tg_sgd *opt = tg_sgd_new(&m.set, &o);
    tg_tensor_set(m.t[0]->grad, (int64_t[]){0, 1}, 1e30);
    tg_tensor **before = snapshot(&m.set);
    ck_assert_int_eq(tg_sgd_step(opt, NULL), TG_ERR_NONFINITE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "update of 'W' at index 1"));
    assert_unchanged(&m.set, before);
    tg_sgd_free(opt);
    /* A parameter that is already NaN is reported as such. */
    tg_tensor_set(m.t[1], (int64_t[]){0}, NAN);
    tg_adam_options ao = tg_adam_defaults(0.1);
    tg_adam *adam = tg_adam_new(&m.set, &ao);
    tg_tensor_set(m.t[0]->grad, (int64_t[]){0, 1}, 1.0);
    ck_assert_int_eq(tg_adam_step(adam, NULL), TG_ERR_NONFINITE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "parameter 'b' is already nan at index 0"));
    ck_assert_int_eq(tg_adam_steps(adam), 0);
    tg_adam_free(adam);
    model_free(&m);
}
END_TEST

START_TEST(bad_options_and_state_are_refused)
{
    model m;
    make_model(&m, TG_F64, 9);
    tg_sgd_options so = tg_sgd_defaults(0.1);
    so.nesterov = true;
    ck_assert_ptr_null(tg_sgd_new(&m.set, &so));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "Nesterov"));
    so = tg_sgd_defaults(-1);
    ck_assert_ptr_null(tg_sgd_new(&m.set, &so));
    tg_adam_options ao = tg_adam_defaults(0.1);
    ao.beta2 = 1.0;
    ck_assert_ptr_null(tg_adam_new(&m.set, &ao));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "betas"));
    ck_assert_ptr_null(tg_adam_new(NULL, &ao));
    tg_params twice = {0};
    tg_params_add(&twice, "W", m.t[0]);
    tg_params_add(&twice, "W_again", m.t[0]);
    ao = tg_adam_defaults(0.1);
    ck_assert_ptr_null(tg_adam_new(&twice, &ao));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "'W' and 'W_again' are the same tensor"));
    tg_params_clear(&twice);
    ck_assert_int_eq(tg_course_update_parameters_with_adam(&m.set, NULL, &m.set, &m.set, 0, 0.01, 0.9,
                                                    0.999, 1e-8),
                     TG_ERR_ARG);

    /* A step count restored from a bad file is refused before any update. */
    ao = tg_adam_defaults(0.1);
    tg_adam *opt = tg_adam_new(&m.set, &ao);
    tg_params state = {0};
    ck_assert_int_eq(tg_adam_state(opt, &state), TG_OK);
    ck_assert_int_eq(state.count, 5);
    ck_assert_str_eq(state.items[0].name, "adam.m.W");
    ck_assert_str_eq(state.items[3].name, "adam.v.b");
    ck_assert_str_eq(state.items[4].name, "adam.step");
    tg_tensor *step = tg_params_find(&state, "adam.step");
    tg_tensor_fill(step, 2.5);
    tg_tensor **before = snapshot(&m.set);
    ck_assert_int_eq(tg_adam_step(opt, NULL), TG_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "step count 2.5"));
    assert_unchanged(&m.set, before);
    tg_tensor_fill(step, 3);
    ck_assert_int_eq(tg_adam_step(opt, NULL), TG_OK);
    ck_assert_int_eq(tg_adam_steps(opt), 4);
    tg_params_clear(&state);
    tg_adam_free(opt);

    /* Course API: a missing "d" entry is named. */
    tg_params v = {0}, s = {0};
    ck_assert_int_eq(tg_course_initialize_adam(&m.set, &v, &s), TG_OK);
    tg_params grads = {0};
    tg_params_add(&grads, "dW", m.t[0]->grad);
    ck_assert_int_eq(
        tg_course_update_parameters_with_adam(&m.set, &grads, &v, &s, 1, 0.01, 0.9, 0.999, 1e-8),
        TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "grads[\"db\"] is missing"));
    tg_params_clear(&grads);
    tg_course_free_adam(&v, &s);
    model_free(&m);
}
END_TEST

START_TEST(frozen_parameter_is_skipped)
{
    model m;
    make_model(&m, TG_F64, 4);
    tg_tensor_requires_grad(m.t[1], false);
    tg_tensor *b_before = tg_tensor_copy(m.t[1]);
    tg_tensor *W_before = tg_tensor_copy(m.t[0]);
    tg_adam_options o = tg_adam_defaults(0.1);
    tg_adam *opt = tg_adam_new(&m.set, &o);
    ck_assert_int_eq(tg_adam_step(opt, NULL), TG_OK);
    ck_assert(tu_bitwise_equal(m.t[1], b_before));
    ck_assert(!tu_bitwise_equal(m.t[0], W_before));
    tg_adam_free(opt);
    tg_tensor_free(b_before);
    tg_tensor_free(W_before);
    model_free(&m);
}
END_TEST

START_TEST(parameter_sets_add_extend_find_and_count)
{
    /* A heap-allocated set, two tensors, extended into a second set under a
     * prefix: names, lookup, element count and zero_grad behave. */
    tg_params *inner = tg_params_new();
    ck_assert_ptr_nonnull(inner);
    tg_tensor *w = tg_tensor_ones(TG_F64, TG_DIMS(2, 3));
    tg_tensor *b = tg_tensor_ones(TG_F64, TG_DIMS(2, 1));
    tg_tensor_requires_grad(w, true);
    tg_tensor_requires_grad(b, true);
    ck_assert_int_eq(tg_params_add(inner, "W", w), TG_OK);
    ck_assert_int_eq(tg_params_add(inner, "b", b), TG_OK);
    ck_assert_int_eq((int)tg_params_numel(inner), 8);

    tg_params outer = {0};
    ck_assert_int_eq(tg_params_extend(&outer, "l0.", inner), TG_OK);
    ck_assert_int_eq(outer.count, 2);
    ck_assert_str_eq(outer.items[0].name, "l0.W");
    ck_assert_ptr_eq(tg_params_find(&outer, "l0.b"), b);
    ck_assert_ptr_null(tg_params_find(&outer, "b"));
    ck_assert_ptr_null(tg_params_find(NULL, "l0.b"));
    ck_assert_int_eq(tg_params_extend(&outer, "x.", NULL), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_params_extend"));
    ck_assert_int_eq(outer.count, 2); /* the refused call added nothing */

    tg_tensor_fill(w->grad, 3.0);
    tg_params_zero_grad(&outer);
    ck_assert_double_eq(tg_tensor_get(w->grad, (int64_t[]){1, 2}), 0.0);
    tg_params_zero_grad(NULL); /* a no-op, not a crash */

    tg_params_clear(&outer);
    ck_assert_int_eq(outer.count, 0);
    tg_params_clear(NULL);
    tg_params_free(inner);
    tg_params_free(NULL);
    tg_tensor_free(w);
    tg_tensor_free(b);
}
END_TEST

/* The trap of issue 14: two layers with the same default names. Extending
 * a set with the second one is refused as a whole (the first half of its
 * names must not slip in), the message names the clash and the fix, and a
 * prefix resolves it. The optimizer's state exports are all-or-nothing too. */
START_TEST(name_collisions_are_refused_whole_and_explained)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_linear *a = tg_linear_new(3, 4, TG_F64, NULL, NULL, TG_INIT_XAVIER, &rng);
    tg_linear *b = tg_linear_new(4, 2, TG_F64, "V", NULL, TG_INIT_XAVIER, &rng);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    tg_params set = {0};
    ck_assert_int_eq(tg_params_extend(&set, NULL, &a->params), TG_OK); /* W b */
    /* b's "V" is new but its "b" clashes: nothing of b may be added */
    ck_assert_int_eq(tg_params_extend(&set, NULL, &b->params), TG_ERR_ARG);
    ck_assert_int_eq(set.count, 2);
    ck_assert_ptr_null(tg_params_find(&set, "V"));
    const char *message = tg_last_error();
    ck_assert_msg(strstr(message, "tg_params_extend: the name 'b' is already in the set") &&
                      strstr(message, "prefix") && strstr(message, "nothing was added"),
                  "%s", message);
    ck_assert_int_eq(tg_params_extend(&set, "head.", &b->params), TG_OK);
    ck_assert_int_eq(set.count, 4);
    ck_assert_ptr_eq(tg_params_find(&set, "head.V"), b->W);

    /* extending a set with itself under a prefix doubles it once */
    ck_assert_int_eq(tg_params_extend(&set, "copy.", &set), TG_OK);
    ck_assert_int_eq(set.count, 8);
    ck_assert_ptr_eq(tg_params_find(&set, "copy.head.V"), b->W);
    tg_params_truncate(&set, 4);
    ck_assert_int_eq(set.count, 4);
    ck_assert_ptr_null(tg_params_find(&set, "copy.W"));

    tg_adam_options o = tg_adam_defaults(0.1);
    tg_adam *opt = tg_adam_new(&set, &o);
    ck_assert_ptr_nonnull(opt);
    ck_assert_int_eq(tg_adam_state(opt, &set), TG_OK);
    int with_state = set.count; /* 4 + 2 * 4 moments + the step */
    ck_assert_int_eq(with_state, 13);
    /* a set that already holds "adam.step", the last name exported, gets none */
    tg_params other = {0};
    ck_assert_int_eq(tg_params_add(&other, "adam.step", a->W), TG_OK);
    ck_assert_int_eq(tg_adam_state(opt, &other), TG_ERR_ARG);
    ck_assert_int_eq(other.count, 1);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "'adam.step' is already in the set"));
    tg_params_clear(&other);

    tg_adam_free(opt);
    tg_params_clear(&set);
    tg_linear_free(a);
    tg_linear_free(b);
}
END_TEST

Suite *suite_optim(void)
{
    Suite *s = suite_create("optim");
    TCase *pytorch = tcase_create("pytorch");
    tcase_add_test(pytorch, sgd_momentum_nesterov_weight_decay_match_pytorch);
    tcase_add_test(pytorch, adam_matches_pytorch);
    tcase_add_test(pytorch, adamw_matches_pytorch);
    tcase_add_test(pytorch, clip_grad_norm_matches_pytorch_and_keeps_max_norm);
    tcase_add_test(pytorch, schedules_match_pytorch_schedulers);
    suite_add_tcase(s, pytorch);
    TCase *course = tcase_create("course");
    tcase_add_test(course, course_adam_matches_numpy_fixture);
    tcase_add_test(course, course_adam_matches_the_seed_formula);
    tcase_add_test(course, course_and_pytorch_epsilon_differ_only_for_tiny_gradients);
    tcase_add_test(course, clip_by_value_is_np_clip_in_place);
    suite_add_tcase(s, course);
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, clip_grad_norm_to_10_gives_norm_10);
    tcase_add_test(rules, clip_walks_mixed_dtypes_and_skips_frozen);
    tcase_add_test(rules, schedule_functions_follow_their_formulas);
    tcase_add_test(rules, nonfinite_gradient_is_refused_and_changes_nothing);
    tcase_add_test(rules, nan_message_names_parameter_and_element);
    tcase_add_test(rules, errored_tape_is_refused_and_changes_nothing);
    tcase_add_test(rules, overflowing_update_is_refused);
    tcase_add_test(rules, bad_options_and_state_are_refused);
    tcase_add_test(rules, frozen_parameter_is_skipped);
    tcase_add_test(rules, parameter_sets_add_extend_find_and_count);
    tcase_add_test(rules, name_collisions_are_refused_whole_and_explained);
    suite_add_tcase(s, rules);
    return s;
}
