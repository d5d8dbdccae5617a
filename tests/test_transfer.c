/* Checkpoints for inference and transfer: the model part of a training
 * checkpoint loaded by an inference program built without a generator
 * (PyTorch's strict=False), model-only checkpoints, and a parameter set as
 * one .npz file, read and written by numpy itself where /usr/bin/python3
 * has it. Every refusal leaves the destinations as they were. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define PYTHON "/usr/bin/python3"

/* ---- helpers --------------------------------------------------------------------------- */

typedef struct {
    char dir[64];
    char path[3][128]; /* <dir>/a.npz, b.npz, c.npz (numpy.savez adds .npz otherwise) */
} temp_dir;

static void temp_dir_make(temp_dir *d)
{
    char dir[] = "/tmp/tg_transfer_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    for (int i = 0; i < 3; i++)
        snprintf(d->path[i], sizeof d->path[i], "%s/%c.npz", dir, 'a' + i);
}

static void temp_dir_remove(temp_dir *d)
{
    for (int i = 0; i < 3; i++)
        remove(d->path[i]);
    rmdir(d->dir);
}

/* An LSTM and a linear head under "rnn." and "head.": what char_lm builds. */
typedef struct {
    tg_recurrent *rnn;
    tg_linear *head;
    tg_params params;
} lm;

static void lm_make(lm *m, tg_rng *rng)
{
    m->rnn = tg_recurrent_new(TG_CELL_LSTM, 3, 5, TG_F64, NULL, rng);
    m->head = tg_linear_new(5, 3, TG_F64, NULL, NULL, TG_INIT_XAVIER, rng);
    ck_assert_ptr_nonnull(m->rnn);
    ck_assert_ptr_nonnull(m->head);
    memset(&m->params, 0, sizeof m->params);
    ck_assert_int_eq(tg_params_extend(&m->params, "rnn.", &m->rnn->params), TG_OK);
    ck_assert_int_eq(tg_params_extend(&m->params, "head.", &m->head->params), TG_OK);
}

static void lm_free(lm *m)
{
    tg_params_clear(&m->params);
    tg_recurrent_free(m->rnn);
    tg_linear_free(m->head);
}

/* The model's logits for a fixed input (a persistent copy). */
static tg_tensor *lm_logits(const lm *m)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 2, 4));
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_recurrent_forward(tape, m->rnn, x, NULL, TG_PATH_FUSED, NULL);
    tg_tensor *y = tg_tensor_copy(tg_linear_forward(tape, m->head, a));
    ck_assert_msg(y != NULL, "%s", tg_tape_error(tape));
    tg_tape_free(tape);
    tg_tensor_free(x);
    return y;
}

/* Every tensor of a equals (bit for bit) the tensor of the same name in b. */
static void assert_same_values(const tg_params *a, const tg_params *b)
{
    ck_assert_int_eq(a->count, b->count);
    for (int i = 0; i < a->count; i++) {
        tg_tensor *other = tg_params_find(b, a->items[i].name);
        ck_assert_msg(other && tu_bitwise_equal(a->items[i].tensor, other), "%s differs",
                      a->items[i].name);
    }
}

/* Is name one of the report's list? */
static bool listed(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

/* A training run saves model, Adam's state, the generator and the step; an
 * inference program builds the model without a generator and loads only
 * the model from that file. */
START_TEST(inference_loads_the_model_part_of_a_training_checkpoint)
{
    temp_dir d;
    temp_dir_make(&d);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    lm trained;
    lm_make(&trained, &rng);
    tg_adam_options o = tg_adam_defaults(0.1);
    tg_adam *opt = tg_adam_new(&trained.params, &o);
    ck_assert_ptr_nonnull(opt);
    for (int i = 0; i < trained.params.count; i++) /* a step, so that Adam's state is not zero */
        tg_tensor_fill(trained.params.items[i].tensor->grad, 0.5);
    ck_assert_int_eq(tg_adam_step(opt, NULL), TG_OK);
    tg_params all = {0};
    ck_assert_int_eq(tg_params_extend(&all, NULL, &trained.params), TG_OK);
    ck_assert_int_eq(tg_adam_state(opt, &all), TG_OK);
    tg_checkpoint_int meta[] = {{"step", 1}};
    ck_assert_int_eq(tg_checkpoint_save(d.path[0], &all, &rng, meta, 1), TG_OK);

    lm served;
    lm_make(&served, NULL);
    /* strict: refused, and the model is untouched (all zeros) */
    ck_assert_int_eq(tg_checkpoint_load(d.path[0], &served.params, NULL, NULL, 0),
                     TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "that was not asked for"));
    ck_assert_double_eq(tg_tensor_get_flat(served.head->W, 0), 0.0);

    tg_load_report report;
    ck_assert_int_eq(tg_checkpoint_load_nonstrict(d.path[0], &served.params, NULL, NULL, 0,
                                                  &report),
                     TG_OK);
    ck_assert_int_eq(report.n_loaded, trained.params.count);
    ck_assert_int_eq(report.n_missing, 0);
    /* moments m and v of every parameter, Adam's step, the generator, "step" */
    ck_assert_int_eq(report.n_unexpected, 2 * trained.params.count + 3);
    ck_assert(listed(report.unexpected, report.n_unexpected, "adam.v.head.W"));
    ck_assert(listed(report.unexpected, report.n_unexpected, "rng"));
    ck_assert(listed(report.unexpected, report.n_unexpected, "step"));
    tg_load_report_free(&report);
    ck_assert_int_eq(report.n_unexpected, 0);
    ck_assert_ptr_null(report.unexpected);

    assert_same_values(&trained.params, &served.params);
    tg_tensor *y_trained = lm_logits(&trained), *y_served = lm_logits(&served);
    ck_assert(tu_bitwise_equal(y_trained, y_served));

    tg_tensor_free(y_trained);
    tg_tensor_free(y_served);
    tg_adam_free(opt);
    tg_params_clear(&all);
    lm_free(&trained);
    lm_free(&served);
    temp_dir_remove(&d);
}
END_TEST

/* What the file lacks is listed and left alone: a tensor, the generator, an
 * integer. A model-only checkpoint holds the tensors and nothing else. */
START_TEST(missing_entries_are_listed_and_left_alone)
{
    temp_dir d;
    temp_dir_make(&d);
    tg_rng rng;
    tg_rng_seed(&rng, 6);
    lm small;
    lm_make(&small, &rng);
    ck_assert_int_eq(tg_checkpoint_save_model(d.path[0], &small.params), TG_OK);
    ck_assert_int_eq(tg_checkpoint_load(d.path[0], &small.params, NULL, NULL, 0), TG_OK);
    int64_t value;
    ck_assert_int_eq(tg_checkpoint_read_int(d.path[0], "step", &value), TG_ERR_FORMAT);
    ck_assert_int_eq(tg_checkpoint_load(d.path[0], &small.params, &rng, NULL, 0), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "no generator state"));

    lm bigger; /* the same model and one more tensor */
    lm_make(&bigger, NULL);
    tg_tensor *extra = tg_tensor_full(TG_F32, TG_DIMS(2), 7.0);
    ck_assert_int_eq(tg_params_add(&bigger.params, "extra.W", extra), TG_OK);
    tg_rng kept = rng;
    tg_checkpoint_int meta[] = {{"epoch", -3}};
    tg_load_report report;
    ck_assert_int_eq(tg_checkpoint_load_nonstrict(d.path[0], &bigger.params, &rng, meta, 1,
                                                  &report),
                     TG_OK);
    ck_assert_int_eq(report.n_loaded, small.params.count);
    ck_assert_int_eq(report.n_missing, 3);
    ck_assert_str_eq(report.missing[0], "extra.W");
    ck_assert_str_eq(report.missing[1], "rng");
    ck_assert_str_eq(report.missing[2], "epoch");
    ck_assert_int_eq(report.n_unexpected, 0);
    tg_load_report_free(&report);
    ck_assert_double_eq(tg_tensor_get_flat(extra, 1), 7.0);
    ck_assert_int_eq(memcmp(&kept, &rng, sizeof rng), 0);
    ck_assert_int_eq(meta[0].value, -3);
    ck_assert_double_eq(tg_tensor_get_flat(bigger.rnn->layers[0].p[0], 0),
                        tg_tensor_get_flat(small.rnn->layers[0].p[0], 0));

    tg_params_truncate(&bigger.params, small.params.count);
    tg_tensor_free(extra);
    lm_free(&small);
    lm_free(&bigger);
    temp_dir_remove(&d);
}
END_TEST

/* A non-strict load still checks what it loads: a wrong shape or kind is
 * an error and nothing at all is copied. The report is required. */
START_TEST(nonstrict_loads_refuse_mismatches_whole)
{
    temp_dir d;
    temp_dir_make(&d);
    tg_tensor *W = tg_tensor_full(TG_F64, TG_DIMS(2, 2), 1.0);
    tg_tensor *b = tg_tensor_full(TG_F64, TG_DIMS(2), 2.0);
    tg_params saved = {0};
    ck_assert_int_eq(tg_params_add(&saved, "W", W), TG_OK);
    ck_assert_int_eq(tg_params_add(&saved, "b", b), TG_OK);
    tg_checkpoint_int meta[] = {{"step", 9}};
    ck_assert_int_eq(tg_checkpoint_save(d.path[0], &saved, NULL, meta, 1), TG_OK);

    tg_tensor *W2 = tg_tensor_zeros(TG_F64, TG_DIMS(2, 2));
    tg_tensor *b3 = tg_tensor_zeros(TG_F64, TG_DIMS(3));
    tg_params model = {0};
    ck_assert_int_eq(tg_params_add(&model, "W", W2), TG_OK);
    ck_assert_int_eq(tg_params_add(&model, "b", b3), TG_OK);
    tg_load_report report;
    ck_assert_int_eq(tg_checkpoint_load_nonstrict(d.path[0], &model, NULL, NULL, 0, &report),
                     TG_ERR_FORMAT);
    ck_assert_msg(strstr(tg_last_error(), "tensor 'b' has shape (2,), the model expects (3,)"),
                  "%s", tg_last_error());
    ck_assert_double_eq(tg_tensor_get_flat(W2, 0), 0.0); /* W matched, yet was not copied */
    ck_assert_int_eq(report.n_unexpected, 0);
    ck_assert_ptr_null(report.unexpected);

    tg_params wrong_kind = {0}; /* "step" is an integer in the file */
    ck_assert_int_eq(tg_params_add(&wrong_kind, "step", W2), TG_OK);
    ck_assert_int_eq(tg_checkpoint_load_nonstrict(d.path[0], &wrong_kind, NULL, NULL, 0, &report),
                     TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "'step' is an integer"));
    ck_assert_int_eq(tg_checkpoint_load_nonstrict(d.path[0], &model, NULL, NULL, 0, NULL),
                     TG_ERR_ARG);
    ck_assert_int_eq(tg_checkpoint_save_model(d.path[1], NULL), TG_ERR_ARG);

    tg_params_clear(&saved);
    tg_params_clear(&model);
    tg_params_clear(&wrong_kind);
    tu_free_all((tg_tensor *[]){W, b, W2, b3}, 4);
    temp_dir_remove(&d);
}
END_TEST

/* ---- .npz ------------------------------------------------------------------------------- */

/* Element k (C order) of tensor j: (j + 1) / 2 + k / 4, exact in f32. */
static void fill_formula(tg_tensor *t, int j)
{
    for (int64_t k = 0; k < tg_tensor_numel(t); k++)
        tg_tensor_set_flat(t, k, (j + 1) / 2.0 + (double)k / 4);
}

/* The set that tests/npz_roundtrip.py expects: an f64 matrix, an f32 one, a
 * transposed view, an f32 scalar. t[4] is the view's base. */
typedef struct {
    tg_tensor *t[5];
    tg_tensor view;
    tg_params params;
} npz_set;

static void npz_set_make(npz_set *s, tg_dtype matrices)
{
    memset(s, 0, sizeof *s);
    s->t[0] = tg_tensor_zeros(matrices, TG_DIMS(3, 4));
    s->t[1] = tg_tensor_zeros(matrices == TG_F64 ? TG_F32 : TG_F64, TG_DIMS(2, 3));
    s->t[4] = tg_tensor_zeros(TG_F64, TG_DIMS(3, 2));
    s->t[3] = tg_tensor_zeros(TG_F32, 0, NULL);
    ck_assert_int_eq(tg_view_transpose(&s->view, s->t[4], 0, 1), TG_OK);
    s->t[2] = &s->view;
    const char *names[] = {"l0.Wax", "head.W", "view.T", "scale"};
    for (int j = 0; j < 4; j++)
        ck_assert_int_eq(tg_params_add(&s->params, names[j], s->t[j]), TG_OK);
}

static void npz_set_free(npz_set *s)
{
    tg_params_clear(&s->params);
    tu_free_all((tg_tensor *[]){s->t[0], s->t[1], s->t[3], s->t[4]}, 4);
}

/* A fresh temporary directory, and the set of npz_set_make(TG_F64) with
 * the formula's values saved to its first path. */
static void save_formula_set(temp_dir *d, npz_set *out)
{
    temp_dir_make(d);
    npz_set_make(out, TG_F64);
    for (int j = 0; j < 4; j++)
        fill_formula(out->t[j], j);
    ck_assert_int_eq(tg_npz_save(d->path[0], &out->params), TG_OK);
}

/* Save, load back into destinations of the other dtype (converted), and
 * into a transposed view; the same set saved twice is the same bytes. */
START_TEST(npz_round_trip_in_c)
{
    temp_dir d;
    npz_set out, in;
    save_formula_set(&d, &out);
    ck_assert_int_eq(tg_npz_save(d.path[1], &out.params), TG_OK);
    size_t n0, n1;
    unsigned char *b0 = tu_read_file(d.path[0], &n0), *b1 = tu_read_file(d.path[1], &n1);
    ck_assert(n0 == n1 && memcmp(b0, b1, n0) == 0);
    free(b0);
    free(b1);

    npz_set_make(&in, TG_F32); /* l0.Wax f32 here, f64 in the file; head.W the other way */
    ck_assert_int_eq(tg_npz_load(d.path[0], &in.params), TG_OK);
    for (int j = 0; j < 4; j++)
        ck_assert_msg(tu_max_abs_diff(in.t[j], out.t[j]) == 0, "%s", in.params.items[j].name);
    ck_assert_double_eq(tg_tensor_get(in.t[4], (int64_t[]){2, 0}),
                        tg_tensor_get(out.t[4], (int64_t[]){2, 0}));
    npz_set_free(&out);
    npz_set_free(&in);
    temp_dir_remove(&d);
}
END_TEST

/* numpy.load reads our archive; we read numpy.savez's (Zip64 extra fields),
 * strictly (refused: one array too many) and not, and refuse
 * savez_compressed's. */
START_TEST(npz_round_trip_through_numpy)
{
    if (tu_run(PYTHON " -c 'import numpy'", NULL, 0) != 0) {
        printf("test_transfer: " PYTHON " with numpy not found; the numpy round trip is "
               "skipped\n");
        return;
    }
    temp_dir d;
    npz_set out, in;
    save_formula_set(&d, &out);
    char command[512], output[2048];
    snprintf(command, sizeof command, PYTHON " npz_roundtrip.py %s %s %s", d.path[0], d.path[1],
             d.path[2]);
    ck_assert_msg(tu_run(command, output, sizeof output) == 0 && strstr(output, "numpy ok"), "%s",
                  output);

    npz_set_make(&in, TG_F64);
    ck_assert_int_eq(tg_npz_load(d.path[1], &in.params), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "holds 'extra.npy' that was not asked for"));
    ck_assert_double_eq(tg_tensor_get_flat(in.t[0], 1), 0.0);
    tg_load_report report;
    ck_assert_int_eq(tg_npz_load_nonstrict(d.path[1], &in.params, &report), TG_OK);
    ck_assert_int_eq(report.n_loaded, 4);
    ck_assert_int_eq(report.n_missing, 0);
    ck_assert_int_eq(report.n_unexpected, 1);
    ck_assert_str_eq(report.unexpected[0], "extra");
    tg_load_report_free(&report);
    for (int j = 0; j < 4; j++)
        for (int64_t k = 0; k < tg_tensor_numel(out.t[j]); k++)
            ck_assert_double_eq(tg_tensor_get_flat(in.t[j], k),
                                2 * tg_tensor_get_flat(out.t[j], k));

    ck_assert_int_eq(tg_npz_load_nonstrict(d.path[2], &in.params, &report), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "is compressed (method 8)"));
    npz_set_free(&out);
    npz_set_free(&in);
    temp_dir_remove(&d);
}
END_TEST

/* Write a copy of `bytes` with one byte replaced, to path. */
static void write_patched(const char *path, const unsigned char *bytes, size_t n, size_t at,
                          unsigned char value)
{
    unsigned char *copy = malloc(n);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, bytes, n);
    copy[at] = value;
    tu_write_file(path, copy, n);
    free(copy);
}

/* A corrupt, truncated, foreign or mismatched archive is refused and the
 * destinations are untouched. */
START_TEST(npz_refusals_change_nothing)
{
    temp_dir d;
    npz_set out, in;
    save_formula_set(&d, &out);
    size_t n;
    unsigned char *bytes = tu_read_file(d.path[0], &n);
    /* the central directory's offset: the end record's last field but the comment length */
    const unsigned char *end = bytes + n - 22;
    size_t central =
        end[16] | (size_t)end[17] << 8 | (size_t)end[18] << 16 | (size_t)end[19] << 24;
    ck_assert_int_eq(memcmp(bytes + central, "PK\1\2", 4), 0);
    npz_set_make(&in, TG_F64);
    struct {
        size_t at; /* byte to replace, or n - k to truncate k bytes */
        int value; /* -1: truncate */
        const char *message;
    } cases[] = {
        {central - 1, 0x55, "CRC-32"},            /* a value of the last member */
        {n - 1, -1, "not a zip archive"},         /* the end record cut short */
        {0, 'X', "local header"},                 /* the first member's signature */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        if (cases[c].value < 0)
            tu_write_file(d.path[1], bytes, cases[c].at);
        else
            write_patched(d.path[1], bytes, n, cases[c].at, (unsigned char)cases[c].value);
        ck_assert_int_eq(tg_npz_load(d.path[1], &in.params), TG_ERR_FORMAT);
        ck_assert_msg(strstr(tg_last_error(), cases[c].message), "%s", tg_last_error());
    }
    /* the method of the first member, in the central directory, made "deflate" */
    write_patched(d.path[1], bytes, n, central + 10, 8);
    ck_assert_int_eq(tg_npz_load(d.path[1], &in.params), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "member 'l0.Wax.npy' is compressed"));
    ck_assert_int_eq(tg_npz_load(d.path[2], &in.params), TG_ERR_IO); /* no such file */

    tg_tensor *wrong = tg_tensor_zeros(TG_F32, TG_DIMS(4, 3)); /* scale has shape () */
    in.params.items[3].tensor = wrong;
    ck_assert_int_eq(tg_npz_load(d.path[0], &in.params), TG_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "'scale.npy' has shape (), the model's"));
    for (int j = 0; j < 3; j++) /* nothing was copied, not even what matched */
        ck_assert_double_eq(tg_tensor_get_flat(in.t[j], 0), 0.0);
    in.params.items[3].tensor = in.t[3];

    tg_params fewer = {0}; /* strict: the archive must hold exactly the set */
    ck_assert_int_eq(tg_params_extend(&fewer, NULL, &in.params), TG_OK);
    ck_assert_int_eq(tg_params_add(&fewer, "more", wrong), TG_OK);
    ck_assert_int_eq(tg_npz_load(d.path[0], &fewer), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "has no member 'more.npy'"));
    ck_assert_int_eq(tg_npz_load_nonstrict(d.path[0], &fewer, NULL), TG_ERR_ARG);
    ck_assert_double_eq(tg_tensor_get_flat(in.t[0], 0), 0.0);

    tg_params_clear(&fewer);
    tg_tensor_free(wrong);
    free(bytes);
    npz_set_free(&out);
    npz_set_free(&in);
    temp_dir_remove(&d);
}
END_TEST

Suite *suite_transfer(void)
{
    Suite *s = suite_create("transfer");
    TCase *tc = tcase_create("transfer");
    tcase_add_test(tc, inference_loads_the_model_part_of_a_training_checkpoint);
    tcase_add_test(tc, missing_entries_are_listed_and_left_alone);
    tcase_add_test(tc, nonstrict_loads_refuse_mismatches_whole);
    tcase_add_test(tc, npz_round_trip_in_c);
    tcase_add_test(tc, npz_round_trip_through_numpy);
    tcase_add_test(tc, npz_refusals_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}
