/* Checkpoints: CRC-32, the documented byte layout, bit-exact resume, and
 * refusal of every truncated, corrupted or mismatched file with the model
 * left untouched. */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* ---- helpers --------------------------------------------------------------------- */

typedef struct {
    char dir[64];
    char path[128]; /* <dir>/model.ckpt */
    char tmp[160];  /* <path>.<pid>.tmp, where a save of this process writes first */
} temp_files;

static void temp_files_make(temp_files *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/model.ckpt", f->dir);
    snprintf(f->tmp, sizeof f->tmp, "%s.%ld.tmp", f->path, (long)getpid());
}

/* The names in the directory but the checkpoint's own. */
static int stray_files(const temp_files *f)
{
    DIR *d = opendir(f->dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "model.ckpt");
    closedir(d);
    return n;
}

static void temp_files_remove(temp_files *f)
{
    DIR *d = opendir(f->dir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            remove(path);
    }
    closedir(d);
    rmdir(f->dir);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A model: "Wax" f64 (n_a, n_x), "ba" f32 (n_a,), with gradients; an Adam
 * optimizer over it; `all` = parameters + optimizer state. */
typedef struct {
    tg_tensor *Wax, *ba;
    tg_params params, all;
    tg_adam *opt;
} model;

static void model_make(model *m, int64_t n_a, int64_t n_x, uint32_t seed)
{
    memset(m, 0, sizeof *m);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    m->Wax = tu_param(&rng, TG_F64, "Wax", TG_DIMS(n_a, n_x));
    m->ba = tu_param(&rng, TG_F32, "ba", TG_DIMS(n_a));
    tg_params_add(&m->params, "Wax", m->Wax);
    tg_params_add(&m->params, "ba", m->ba);
    tg_adam_options o = tg_adamw_defaults(0.01);
    m->opt = tg_adam_new(&m->params, &o);
    ck_assert_ptr_nonnull(m->opt);
    ck_assert_int_eq(tg_params_extend(&m->all, NULL, &m->params), TG_OK);
    ck_assert_int_eq(tg_adam_state(m->opt, &m->all), TG_OK);
}

static void model_free(model *m)
{
    tg_adam_free(m->opt);
    tg_params_clear(&m->params);
    tg_params_clear(&m->all);
    tg_tensor_free(m->Wax);
    tg_tensor_free(m->ba);
}

/* One training step with gradients drawn from rng (the data stream). */
static void train_step(model *m, tg_rng *rng)
{
    tg_rng_fill_randn(rng, m->Wax->grad);
    tg_rng_fill_randn(rng, m->ba->grad);
    ck_assert_int_eq(tg_adam_step(m->opt, NULL), TG_OK);
}

/* Raw bytes of every tensor of a set, and of a generator. */
typedef struct {
    int n;
    tg_tensor **copies;
    tg_rng rng;
} snapshot;

static void snapshot_take(snapshot *s, const tg_params *set, const tg_rng *rng)
{
    s->n = set->count;
    s->copies = calloc((size_t)set->count, sizeof *s->copies);
    for (int i = 0; i < set->count; i++)
        s->copies[i] = tg_tensor_copy(set->items[i].tensor);
    if (rng)
        s->rng = *rng;
}

static bool snapshot_equal(const snapshot *s, const tg_params *set, const tg_rng *rng)
{
    for (int i = 0; i < s->n; i++) {
        const tg_tensor *t = set->items[i].tensor;
        if (memcmp(t->data, s->copies[i]->data,
                   (size_t)tg_tensor_numel(t) * tg_dtype_size(t->dtype)) != 0)
            return false;
    }
    if (rng && (memcmp(rng->key, s->rng.key, sizeof rng->key) != 0 || rng->pos != s->rng.pos ||
                rng->has_gauss != s->rng.has_gauss ||
                memcmp(&rng->gauss, &s->rng.gauss, sizeof rng->gauss) != 0))
        return false;
    return true;
}

static void snapshot_free(snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        tg_tensor_free(s->copies[i]);
    free(s->copies);
}

/* ---- CRC-32 -------------------------------------------------------------------------- */

START_TEST(crc32_matches_known_check_values)
{
    ck_assert_uint_eq(tg_crc32("123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(tg_crc32("", 0), 0u);
    ck_assert_uint_eq(tg_crc32("a", 1), 0xE8B7BE43u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    ck_assert_uint_eq(tg_crc32(fox, strlen(fox)), 0x414FA339u);
    /* Pieces chain to the CRC of the whole. */
    uint32_t c = tg_crc32_update(0, fox, 10);
    c = tg_crc32_update(c, fox + 10, strlen(fox) - 10);
    ck_assert_uint_eq(c, 0x414FA339u);
    unsigned char zeros[32] = {0};
    ck_assert_uint_eq(tg_crc32(zeros, sizeof zeros), 0x190A55ADu);
}
END_TEST

/* ---- format ------------------------------------------------------------------------- */

START_TEST(file_layout_is_as_documented)
{
    temp_files f;
    temp_files_make(&f);
    tg_tensor *W = tg_tensor_arange(TG_F64, 0, 6, 1);
    tg_tensor W2;
    tg_view_reshape(&W2, W, TG_DIMS(2, 3));
    tg_params set = {0};
    tg_params_add(&set, "W", &W2);
    tg_checkpoint_int meta[] = {{"step", 42}};
    ck_assert_int_eq(tg_checkpoint_save(f.path, &set, NULL, meta, 1), TG_OK);
    ck_assert_int_eq(stray_files(&f), 0); /* the temporary file was renamed */
    size_t n;
    unsigned char *d = tu_read_file(f.path, &n);
    ck_assert_int_eq(memcmp(d, "\x89TGCKPT\n", 8), 0);
    ck_assert_uint_eq(le32(d + 8), 1);
    ck_assert_int_eq(memcmp(d + 12, "\x04\x03\x02\x01", 4), 0);
    ck_assert_uint_eq(le32(d + 16), 2);
    /* Entry "W": name, kind 2 (f64), ndim 2, shape 2 and 3, 48 bytes, CRC, values. */
    size_t p = 20;
    ck_assert_uint_eq(le32(d + p), 1);
    ck_assert_int_eq(d[p + 4], 'W');
    p += 5;
    ck_assert_uint_eq(le32(d + p), 2);
    ck_assert_uint_eq(le32(d + p + 4), 2);
    ck_assert_uint_eq(le32(d + p + 8), 2);
    ck_assert_uint_eq(le32(d + p + 16), 3);
    ck_assert_uint_eq(le32(d + p + 24), 48);
    ck_assert_uint_eq(le32(d + p + 32), tg_crc32(d + p + 36, 48));
    double v;
    memcpy(&v, d + p + 36 + 5 * 8, 8);
    ck_assert_double_eq(v, 5.0);
    p += 36 + 48;
    /* Entry "step": kind 3, ndim 0, 8 bytes. */
    ck_assert_uint_eq(le32(d + p), 4);
    ck_assert_int_eq(memcmp(d + p + 4, "step", 4), 0);
    p += 8;
    ck_assert_uint_eq(le32(d + p), 3);
    ck_assert_uint_eq(le32(d + p + 4), 0);
    ck_assert_uint_eq(le32(d + p + 8), 8);
    ck_assert_uint_eq(le32(d + p + 20), 42);
    p += 20 + 8;
    /* Trailer. */
    ck_assert_uint_eq(n, p + 16);
    ck_assert_int_eq(memcmp(d + p, "TEND", 4), 0);
    ck_assert_uint_eq(le32(d + p + 4), n);
    ck_assert_uint_eq(le32(d + p + 12), tg_crc32(d, n - 4));
    free(d);
    tg_params_clear(&set);
    tg_tensor_free(W);
    temp_files_remove(&f);
}
END_TEST

/* ---- round trip ------------------------------------------------------------------------ */

START_TEST(round_trip_resumes_training_bit_exactly)
{
    temp_files f;
    temp_files_make(&f);
    model a;
    model_make(&a, 5, 3, 1);
    tg_rng data;
    tg_rng_seed(&data, 99);
    for (int k = 0; k < 4; k++)
        train_step(&a, &data);
    (void)tg_rng_randn(&data); /* leaves a second normal waiting: has_gauss */
    ck_assert(data.has_gauss);
    tg_checkpoint_int meta[] = {{"epoch", 3}, {"batch", -17}};
    ck_assert_int_eq(tg_checkpoint_save(f.path, &a.all, &data, meta, 2), TG_OK);
    /* The original run continues... */
    for (int k = 0; k < 5; k++)
        train_step(&a, &data);

    /* ...and a fresh process resumes from the file. */
    model b;
    model_make(&b, 5, 3, 2);
    tg_rng data_b;
    tg_rng_seed(&data_b, 12345);
    tg_checkpoint_int got[] = {{"batch", 0}, {"epoch", 0}};
    ck_assert_msg(tg_checkpoint_load(f.path, &b.all, &data_b, got, 2) == TG_OK, "%s",
                  tg_last_error());
    ck_assert_int_eq(got[0].value, -17);
    ck_assert_int_eq(got[1].value, 3);
    ck_assert_int_eq(tg_adam_steps(b.opt), 4);
    for (int k = 0; k < 5; k++)
        train_step(&b, &data_b);
    for (int i = 0; i < a.all.count; i++)
        ck_assert_msg(tu_bitwise_equal(a.all.items[i].tensor, b.all.items[i].tensor),
                      "'%s' differs after resuming", a.all.items[i].name);
    /* The generator continues the same stream. */
    for (int k = 0; k < 100; k++)
        ck_assert_double_eq(tg_rng_randn(&data), tg_rng_randn(&data_b));
    model_free(&a);
    model_free(&b);
    temp_files_remove(&f);
}
END_TEST

/* A saved view of any strides loads into a destination of any strides. */
START_TEST(views_save_and_load_in_c_order)
{
    temp_files f;
    temp_files_make(&f);
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F32, TG_DIMS(3, 4));
    tg_tensor xt, yt;
    tg_view_transpose(&xt, x, 0, 1);
    tg_params out = {0}, in = {0};
    tg_params_add(&out, "x", &xt);
    ck_assert_int_eq(tg_checkpoint_save(f.path, &out, NULL, NULL, 0), TG_OK);
    tg_tensor *y = tg_tensor_zeros(TG_F32, TG_DIMS(3, 4));
    tg_view_transpose(&yt, y, 0, 1);
    tg_params_add(&in, "x", &yt);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &in, NULL, NULL, 0), TG_OK);
    ck_assert(tu_bitwise_equal(x, y));
    tg_params_clear(&out);
    tg_params_clear(&in);
    tg_tensor_free(x);
    tg_tensor_free(y);
    temp_files_remove(&f);
}
END_TEST

/* ---- refusals --------------------------------------------------------------------------- */

/* A small checkpoint (2 tensors, 4 Adam state tensors, step, rng, one
 * integer) and a model to load it into whose values differ. */
typedef struct {
    temp_files f;
    model src, dst;
    tg_rng rng_src, rng_dst;
    unsigned char *bytes;
    size_t size;
} refusal_rig;

static void rig_make(refusal_rig *r)
{
    temp_files_make(&r->f);
    model_make(&r->src, 2, 3, 1);
    model_make(&r->dst, 2, 3, 2);
    tg_rng_seed(&r->rng_src, 1);
    tg_rng_seed(&r->rng_dst, 2);
    train_step(&r->src, &r->rng_src);
    tg_checkpoint_int meta[] = {{"epoch", 7}};
    ck_assert_int_eq(tg_checkpoint_save(r->f.path, &r->src.all, &r->rng_src, meta, 1), TG_OK);
    r->bytes = tu_read_file(r->f.path, &r->size);
}

static void rig_free(refusal_rig *r)
{
    free(r->bytes);
    model_free(&r->src);
    model_free(&r->dst);
    temp_files_remove(&r->f);
}

/* Load the file into rig->dst: must fail with `status`, a message that
 * names the file, and nothing changed. */
static void assert_refused(refusal_rig *r, tg_status status, const char *context)
{
    snapshot before;
    snapshot_take(&before, &r->dst.all, &r->rng_dst);
    tg_checkpoint_int meta[] = {{"epoch", -1}};
    tg_status s = tg_checkpoint_load(r->f.path, &r->dst.all, &r->rng_dst, meta, 1);
    ck_assert_msg(s == status, "%s: status %s, want %s (%s)", context, tg_status_name(s),
                  tg_status_name(status), tg_last_error());
    char prefix[160];
    snprintf(prefix, sizeof prefix, "checkpoint %s: ", r->f.path);
    ck_assert_msg(strncmp(tg_last_error(), prefix, strlen(prefix)) == 0, "%s: message '%s'",
                  context, tg_last_error());
    ck_assert_msg(snapshot_equal(&before, &r->dst.all, &r->rng_dst), "%s: model changed",
                  context);
    ck_assert_int_eq(meta[0].value, -1);
    snapshot_free(&before);
}

START_TEST(truncation_at_every_byte_is_refused)
{
    refusal_rig r;
    rig_make(&r);
    ck_assert_uint_gt(r.size, 2600);
    for (size_t len = 0; len < r.size; len++) {
        tu_write_file(r.f.path, r.bytes, len);
        char context[64];
        snprintf(context, sizeof context, "truncated to %zu of %zu bytes", len, r.size);
        assert_refused(&r, TG_ERR_FORMAT, context);
    }
    /* The intact file loads. */
    tu_write_file(r.f.path, r.bytes, r.size);
    ck_assert_int_eq(tg_checkpoint_load(r.f.path, &r.dst.all, &r.rng_dst,
                                        (tg_checkpoint_int[]){{"epoch", 0}}, 1),
                     TG_OK);
    rig_free(&r);
}
END_TEST

START_TEST(corrupted_bytes_are_refused)
{
    refusal_rig r;
    rig_make(&r);
    unsigned char *bad = malloc(r.size);
    int refused_by_crc = 0;
    /* Every byte, each with a different single-bit flip, then a sample
     * with whole-byte changes. */
    for (size_t off = 0; off < r.size; off++) {
        memcpy(bad, r.bytes, r.size);
        bad[off] ^= (unsigned char)(1u << (off % 8));
        tu_write_file(r.f.path, bad, r.size);
        char context[64];
        snprintf(context, sizeof context, "bit %zu of byte %zu flipped", off % 8, off);
        assert_refused(&r, TG_ERR_FORMAT, context);
        if (strstr(tg_last_error(), "CRC-32"))
            refused_by_crc++;
    }
    for (size_t off = 3; off < r.size; off += 37) {
        memcpy(bad, r.bytes, r.size);
        bad[off] ^= 0xFF;
        tu_write_file(r.f.path, bad, r.size);
        assert_refused(&r, TG_ERR_FORMAT, "byte inverted");
    }
    /* Most bytes are data, caught by a checksum rather than a parse error. */
    ck_assert_int_gt(refused_by_crc, (int)(r.size * 9 / 10));
    free(bad);
    rig_free(&r);
}
END_TEST

START_TEST(wrong_version_and_magic_are_refused)
{
    refusal_rig r;
    rig_make(&r);
    unsigned char *bad = malloc(r.size);
    memcpy(bad, r.bytes, r.size);
    bad[8] = 2;
    tu_write_file(r.f.path, bad, r.size);
    assert_refused(&r, TG_ERR_FORMAT, "version 2");
    ck_assert_ptr_nonnull(
        strstr(tg_last_error(), "has format version 2; this build reads version 1"));
    memcpy(bad, r.bytes, r.size);
    memcpy(bad, "PK\x03\x04", 4);
    tu_write_file(r.f.path, bad, r.size);
    assert_refused(&r, TG_ERR_FORMAT, "magic");
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "not a tapegrad checkpoint"));
    free(bad);
    rig_free(&r);
}
END_TEST

START_TEST(mismatched_model_is_refused_with_a_clear_message)
{
    temp_files f;
    temp_files_make(&f);
    tg_tensor *small = tg_tensor_zeros(TG_F64, TG_DIMS(50, 50));
    tg_tensor *by = tg_tensor_zeros(TG_F64, TG_DIMS(2, 1));
    tg_params saved = {0};
    tg_params_add(&saved, "Waa", small);
    tg_params_add(&saved, "by", by);
    ck_assert_int_eq(tg_checkpoint_save(f.path, &saved, NULL, NULL, 0), TG_OK);

    tg_tensor *big = tg_tensor_ones(TG_F64, TG_DIMS(64, 64));
    tg_tensor *by32 = tg_tensor_ones(TG_F32, TG_DIMS(2, 1));
    tg_tensor *by64 = tg_tensor_ones(TG_F64, TG_DIMS(2, 1));
    tg_tensor *extra = tg_tensor_ones(TG_F64, TG_DIMS(3));
    char want[256];

    tg_params model = {0};
    tg_params_add(&model, "Waa", big);
    tg_params_add(&model, "by", by64);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &model, NULL, NULL, 0), TG_ERR_FORMAT);
    snprintf(want, sizeof want,
             "checkpoint %s: tensor 'Waa' has shape (50,50), the model expects (64,64)", f.path);
    ck_assert_str_eq(tg_last_error(), want);
    ck_assert_double_eq(tg_tensor_get_flat(big, 0), 1.0);
    ck_assert_double_eq(tg_tensor_get_flat(by64, 0), 1.0);
    tg_params_clear(&model);

    tg_params_add(&model, "Waa", small);
    tg_params_add(&model, "by", by32);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &model, NULL, NULL, 0), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tensor 'by' is f64, the model's is f32"));
    tg_params_clear(&model);

    tg_params_add(&model, "Waa", small);
    tg_params_add(&model, "by", by64);
    tg_params_add(&model, "bx", extra);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &model, NULL, NULL, 0), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "has no tensor 'bx'"));
    ck_assert_double_eq(tg_tensor_get_flat(by64, 0), 1.0);
    tg_params_clear(&model);

    tg_params_add(&model, "Waa", small);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &model, NULL, NULL, 0), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "an f64 tensor 'by' that was not asked for"));

    tg_rng rng;
    tg_rng_seed(&rng, 1);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &saved, &rng, NULL, 0), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "no generator state"));
    tg_checkpoint_int step = {"step", 0};
    ck_assert_int_eq(tg_checkpoint_load(f.path, &saved, NULL, &step, 1), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "has no integer 'step'"));
    ck_assert_int_eq(tg_checkpoint_load(f.path, &saved, NULL, NULL, 0), TG_OK);

    tg_params_clear(&model);
    tg_params_clear(&saved);
    tu_free_all((tg_tensor *[]){small, by, big, by32, by64, extra}, 6);
    temp_files_remove(&f);
}
END_TEST

START_TEST(unreadable_paths_and_bad_names_are_refused)
{
    temp_files f;
    temp_files_make(&f);
    tg_tensor *x = tg_tensor_ones(TG_F64, TG_DIMS(2));
    tg_params set = {0};
    tg_params_add(&set, "x", x);
    char path[200];
    snprintf(path, sizeof path, "%s/missing.ckpt", f.dir);
    ck_assert_int_eq(tg_checkpoint_load(path, &set, NULL, NULL, 0), TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "cannot open '"));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "missing.ckpt': No such file or directory"));
    ck_assert_int_eq(tg_checkpoint_load(f.dir, &set, NULL, NULL, 0), TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "not a regular file"));
    snprintf(path, sizeof path, "%s/no/such/dir/x.ckpt", f.dir);
    ck_assert_int_eq(tg_checkpoint_save(path, &set, NULL, NULL, 0), TG_ERR_IO);
    ck_assert_double_eq(tg_tensor_get_flat(x, 1), 1.0);
    /* A directory in the way: the rename fails, the temporary file goes. */
    snprintf(path, sizeof path, "%s/in_the_way", f.dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(tg_checkpoint_save(path, &set, NULL, NULL, 0), TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "cannot rename"));
    ck_assert_int_eq(rmdir(path), 0);
    /* A write that fails (the file size limit standing in for a full disk). */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit before_limit, limit;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &before_limit), 0);
    limit = before_limit;
    limit.rlim_cur = 16;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
    tg_status s = tg_checkpoint_save(f.path, &set, NULL, NULL, 0);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &before_limit), 0);
    ck_assert_int_eq(s, TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "cannot write"));
    /* A path in the current directory (no slash): that directory is synced. */
    char here[64];
    snprintf(here, sizeof here, "tg_ckpt_here_%d.ckpt", (int)getpid());
    ck_assert_int_eq(tg_checkpoint_save(here, &set, NULL, NULL, 0), TG_OK);
    ck_assert_int_eq(remove(here), 0);
    /* Names: empty, duplicated, or the generator's when it is saved too. */
    tg_checkpoint_int dup[] = {{"x", 1}};
    ck_assert_int_eq(tg_checkpoint_save(f.path, &set, NULL, dup, 1), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "two entries are named 'x'"));
    tg_checkpoint_int empty[] = {{"", 1}};
    ck_assert_int_eq(tg_checkpoint_save(f.path, &set, NULL, empty, 1), TG_ERR_ARG);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_checkpoint_int clash[] = {{"rng", 1}};
    ck_assert_int_eq(tg_checkpoint_save(f.path, &set, &rng, clash, 1), TG_ERR_ARG);
    ck_assert_int_ne(access(f.path, F_OK), 0);
    ck_assert_int_eq(stray_files(&f), 0);
    tg_params_clear(&set);
    tg_tensor_free(x);
    temp_files_remove(&f);
}
END_TEST

/* A crash after the temporary file is written but before the rename leaves
 * the previous checkpoint intact; the next save recovers. */
START_TEST(interrupted_save_leaves_the_old_checkpoint_intact)
{
    temp_files f;
    temp_files_make(&f);
    model m;
    model_make(&m, 4, 3, 1);
    tg_rng data;
    tg_rng_seed(&data, 5);
    train_step(&m, &data);
    ck_assert_int_eq(tg_checkpoint_save(f.path, &m.all, NULL, NULL, 0), TG_OK);
    snapshot first;
    snapshot_take(&first, &m.all, NULL);
    size_t n_old;
    unsigned char *old_bytes = tu_read_file(f.path, &n_old);

    train_step(&m, &data);
    ck_assert_int_eq(tg_checkpoint_write_temp(f.path, &m.all, NULL, NULL, 0), TG_OK);
    /* "Crash" here: the new data sits in <path>.<pid>.tmp, path is the old file. */
    ck_assert_int_eq(access(f.tmp, F_OK), 0);
    size_t n_now;
    unsigned char *now_bytes = tu_read_file(f.path, &n_now);
    ck_assert(n_now == n_old && memcmp(now_bytes, old_bytes, n_old) == 0);
    free(now_bytes);

    model fresh;
    model_make(&fresh, 4, 3, 9);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &fresh.all, NULL, NULL, 0), TG_OK);
    ck_assert(snapshot_equal(&first, &fresh.all, NULL));
    ck_assert_int_eq(tg_adam_steps(fresh.opt), 1);

    /* Restart: a full save steps over the stale temporary file (never
     * opening an existing file) and leaves it alone. */
    size_t n_stale;
    unsigned char *stale = tu_read_file(f.tmp, &n_stale);
    ck_assert_int_eq(tg_checkpoint_save(f.path, &m.all, NULL, NULL, 0), TG_OK);
    ck_assert_int_eq(stray_files(&f), 1);
    size_t n_after;
    unsigned char *after = tu_read_file(f.tmp, &n_after);
    ck_assert(n_after == n_stale && memcmp(after, stale, n_stale) == 0);
    free(stale);
    free(after);
    ck_assert_int_eq(tg_checkpoint_load(f.path, &fresh.all, NULL, NULL, 0), TG_OK);
    ck_assert_int_eq(tg_adam_steps(fresh.opt), 2);
    for (int i = 0; i < m.all.count; i++)
        ck_assert(tu_bitwise_equal(m.all.items[i].tensor, fresh.all.items[i].tensor));
    free(old_bytes);
    snapshot_free(&first);
    model_free(&m);
    model_free(&fresh);
    temp_files_remove(&f);
}
END_TEST

/* The training-loop snippet of optim/README.md ("## Optimizers, clipping
 * and schedules"), as written there, run twice: straight through, and
 * stopped and resumed from a checkpoint half way. Both runs end bit-identical. */
static void readme_train(const char *ckpt, int64_t first, int64_t last, tg_tensor *W,
                         tg_tensor *x, bool resume)
{
    tg_params params = {0};
    tg_params_add(&params, "W", W);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tape *tape = tg_tape_new();

    /* ---- README snippet begins ---- */
    tg_adam_options o = tg_adamw_defaults(1e-2);       /* torch.optim.AdamW(lr=1e-2) */
    tg_adam *opt = tg_adam_new(&params, &o);
    tg_lr_schedule schedule = {.base_lr = 1e-2, .decay = TG_LR_COSINE, .t_max = 100,
                               .warmup_steps = 5, .warmup_start_factor = 0.1};
    tg_params all = {0};                                /* what a checkpoint holds */
    ck_assert_int_eq(tg_params_extend(&all, NULL, &params), TG_OK);
    ck_assert_int_eq(tg_adam_state(opt, &all), TG_OK); /* "adam.m.W", "adam.v.W", "adam.step" */
    tg_checkpoint_int meta[] = {{"step", 0}};
    if (resume && tg_checkpoint_load(ckpt, &all, &rng, meta, 1) != TG_OK)
        fprintf(stderr, "%s\n", tg_last_error());
    for (int64_t step = meta[0].value; step < last; step++) {
        tg_rng_fill_randn(&rng, x);                     /* a batch */
        tg_tensor *loss = tg_sum(tape, tg_tanh(tape, tg_matmul(tape, W, x)));
        tg_backward(tape, loss);
        tg_clip_grad_norm(&params, 5.0, NULL);
        tg_adam_set_lr(opt, tg_lr_at(&schedule, step));
        if (tg_adam_step(opt, tape) != TG_OK)           /* errored tape, NaN: nothing changes */
            fprintf(stderr, "step %lld skipped: %s\n", (long long)step, tg_last_error());
        tg_params_zero_grad(&params);
        tg_tape_reset(tape);
        meta[0].value = step + 1;
        if (meta[0].value == first)
            ck_assert_int_eq(tg_checkpoint_save(ckpt, &all, &rng, meta, 1), TG_OK);
    }
    tg_adam_free(opt);
    tg_params_clear(&all);
    /* ---- README snippet ends ---- */

    tg_tape_free(tape);
    tg_params_clear(&params);
}

START_TEST(readme_training_loop_resumes_bit_exactly)
{
    temp_files f;
    temp_files_make(&f);
    tg_rng init;
    tg_rng_seed(&init, 8);
    tg_tensor *W_straight = tu_param(&init, TG_F64, "W", TG_DIMS(4, 3));
    tg_tensor *W_resumed = tg_tensor_copy(W_straight);
    tg_tensor_requires_grad(W_resumed, true);
    tg_tensor *x = tg_tensor_zeros(TG_F64, TG_DIMS(3, 8));
    readme_train(f.path, 12, 30, W_straight, x, false); /* saves at step 12 */
    ck_assert_int_eq(access(f.path, F_OK), 0);
    readme_train(f.path, -1, 30, W_resumed, x, true); /* loads step 12's W, continues */
    ck_assert(tu_bitwise_equal(W_straight, W_resumed));
    tg_tensor *W_start = tg_tensor_copy(W_straight);
    tg_rng_seed(&init, 8);
    tg_rng_fill_randn(&init, W_start);
    ck_assert(!tu_bitwise_equal(W_straight, W_start)); /* training did move W */
    tu_free_all((tg_tensor *[]){W_straight, W_resumed, W_start, x}, 4);
    temp_files_remove(&f);
}
END_TEST

/* A program that builds its model from sizes stored in the checkpoint reads
 * them first; a corrupt file is refused before any value is returned. */
START_TEST(single_integers_can_be_read_before_building_the_model)
{
    temp_files f;
    temp_files_make(&f);
    tg_tensor *W = tg_tensor_zeros(TG_F32, TG_DIMS(2, 3));
    tg_params params = {0};
    tg_params_add(&params, "W", W);
    tg_checkpoint_int meta[] = {{"hidden", 256}, {"layers", 2}};
    ck_assert_int_eq(tg_checkpoint_save(f.path, &params, NULL, meta, 2), TG_OK);
    int64_t v = -1;
    ck_assert_int_eq(tg_checkpoint_read_int(f.path, "layers", &v), TG_OK);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(tg_checkpoint_read_int(f.path, "hidden", &v), TG_OK);
    ck_assert_int_eq(v, 256);
    ck_assert_int_eq(tg_checkpoint_read_int(f.path, "W", &v), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "no integer named 'W'"));
    size_t size;
    unsigned char *data = tu_read_file(f.path, &size);
    data[size / 2] ^= 0x10;
    tu_write_file(f.path, data, size);
    v = -1;
    ck_assert_int_ne(tg_checkpoint_read_int(f.path, "layers", &v), TG_OK);
    ck_assert_int_eq(v, -1);
    free(data);
    tg_params_clear(&params);
    tg_tensor_free(W);
    temp_files_remove(&f);
}
END_TEST

/* One file read once answers several questions: integers first (to build a
 * model), then the restore. */
START_TEST(an_opened_checkpoint_answers_several_questions)
{
    temp_files f;
    temp_files_make(&f);
    model m, fresh;
    model_make(&m, 4, 3, 1);
    model_make(&fresh, 4, 3, 2);
    tg_rng data;
    tg_rng_seed(&data, 5);
    train_step(&m, &data);
    tg_checkpoint_int meta[] = {{"hidden", 4}, {"step", 1}};
    ck_assert_int_eq(tg_checkpoint_save(f.path, &m.all, NULL, meta, 2), TG_OK);
    tg_checkpoint *ck = tg_checkpoint_open(f.path);
    ck_assert_ptr_nonnull(ck);
    remove(f.path); /* everything is in memory now */
    int64_t hidden = 0;
    ck_assert_int_eq(tg_checkpoint_get_int(ck, "hidden", &hidden), TG_OK);
    ck_assert_int_eq(hidden, 4);
    ck_assert(tg_checkpoint_has(ck, "Wax") && tg_checkpoint_has(ck, "step"));
    ck_assert(!tg_checkpoint_has(ck, "Waa"));
    ck_assert_int_eq(tg_checkpoint_get_int(ck, "Wax", &hidden), TG_ERR_FORMAT);
    tg_checkpoint_int back[] = {{"step", 0}, {"hidden", 0}};
    ck_assert_int_eq(tg_checkpoint_restore(ck, &fresh.all, NULL, back, 2), TG_OK);
    ck_assert_int_eq(back[0].value, 1);
    for (int i = 0; i < m.all.count; i++)
        ck_assert(tu_bitwise_equal(m.all.items[i].tensor, fresh.all.items[i].tensor));
    /* the same rules as tg_checkpoint_load: everything asked for, nothing else */
    ck_assert_int_eq(tg_checkpoint_restore(ck, &fresh.all, NULL, back, 1), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "holds an integer 'hidden' that was not asked for"));
    /* or non-strict, with the report of what was left out */
    tg_load_report report;
    ck_assert_int_eq(tg_checkpoint_restore_nonstrict(ck, &fresh.params, NULL, back, 1, &report),
                     TG_OK);
    ck_assert_int_eq(report.n_loaded, 3); /* Wax, ba, step */
    ck_assert_int_eq(report.n_missing, 0);
    ck_assert_int_eq(report.n_unexpected, fresh.all.count - fresh.params.count + 1);
    tg_load_report_free(&report);
    ck_assert_int_eq(tg_checkpoint_restore_nonstrict(ck, &fresh.params, NULL, back, 1, NULL),
                     TG_ERR_ARG);
    tg_checkpoint_close(ck);
    model_free(&m);
    model_free(&fresh);
    temp_files_remove(&f);
}
END_TEST

/* ---- saving beside other processes -------------------------------------------------- */

/* A checkpoint whose every value and whose integer "stamp" equal one
 * number, so that a reader can tell a whole file from a mix of two. */
typedef struct {
    tg_tensor *W;
    tg_params set;
    tg_checkpoint_int stamp[1];
} stamped;

static void stamped_make(stamped *c)
{
    c->W = tg_tensor_zeros(TG_F64, TG_DIMS(512, 256)); /* 1 MB: a save takes a while */
    ck_assert_ptr_nonnull(c->W);
    c->set = (tg_params){0};
    tg_params_add(&c->set, "W", c->W);
    c->stamp[0] = (tg_checkpoint_int){"stamp", 0};
}

static void stamped_free(stamped *c)
{
    tg_params_clear(&c->set);
    tg_tensor_free(c->W);
}

static tg_status stamped_save(stamped *c, const char *path, int64_t stamp)
{
    tg_tensor_fill(c->W, (double)stamp);
    c->stamp[0].value = stamp;
    return tg_checkpoint_save(path, &c->set, NULL, c->stamp, 1);
}

/* Load and check that the file is one whole save: 1 if so. */
static int stamped_load_is_whole(stamped *c, const char *path)
{
    if (tg_checkpoint_load(path, &c->set, NULL, c->stamp, 1) != TG_OK)
        return 0;
    for (int64_t i = 0; i < tg_tensor_numel(c->W); i++)
        if (tg_tensor_get_flat(c->W, i) != (double)c->stamp[0].value)
            return 0;
    return 1;
}

/* A child process that saves `rounds` times (forever if < 0), writing a
 * byte to `notify` (if >= 0) after each save; exit status 1 if a save fails. */
static pid_t start_saver(const char *path, int id, int rounds, int notify)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid > 0)
        return pid;
    stamped c;
    stamped_make(&c);
    for (int64_t r = 1; rounds < 0 || r <= rounds; r++) {
        if (stamped_save(&c, path, id * 1000000 + r) != TG_OK)
            _exit(1);
        if (notify >= 0 && write(notify, "s", 1) != 1)
            _exit(1);
    }
    _exit(0);
}

/* Two processes save to one path in a loop while this one loads it: every
 * load finds one whole checkpoint. Before, both wrote "<path>.tmp", opened
 * with truncation, and a rename could publish the other's half-written file. */
START_TEST(two_savers_and_a_reader_never_see_a_torn_checkpoint)
{
    temp_files f;
    temp_files_make(&f);
    stamped c;
    stamped_make(&c);
    ck_assert_int_eq(stamped_save(&c, f.path, 0), TG_OK);
    pid_t a = start_saver(f.path, 1, 40, -1), b = start_saver(f.path, 2, 40, -1);
    int loads = 0, torn = 0, status_a = -1, status_b = -1, running = 2;
    while (running > 0) {
        loads++;
        torn += !stamped_load_is_whole(&c, f.path);
        running -= waitpid(a, &status_a, WNOHANG) == a;
        running -= waitpid(b, &status_b, WNOHANG) == b;
    }
    ck_assert_msg(WIFEXITED(status_a) && WEXITSTATUS(status_a) == 0, "saver 1 failed");
    ck_assert_msg(WIFEXITED(status_b) && WEXITSTATUS(status_b) == 0, "saver 2 failed");
    ck_assert_msg(torn == 0, "%d of %d loads found a torn or corrupt checkpoint", torn, loads);
    ck_assert(stamped_load_is_whole(&c, f.path));
    ck_assert_int_eq(c.stamp[0].value % 1000000, 40); /* the last save of one of them */
    ck_assert_int_eq(stray_files(&f), 0);
    stamped_free(&c);
    temp_files_remove(&f);
}
END_TEST

/* kill -9 of both savers at a moment when each has saved and is saving
 * again leaves a loadable checkpoint, every time. */
START_TEST(kill_9_of_two_savers_leaves_a_whole_checkpoint)
{
    temp_files f;
    temp_files_make(&f);
    stamped c;
    stamped_make(&c);
    ck_assert_int_eq(stamped_save(&c, f.path, 0), TG_OK);
    for (int round = 0; round < 10; round++) {
        int pipes[2][2];
        pid_t pid[2];
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(pipe(pipes[k]), 0);
            pid[k] = start_saver(f.path, k + 1, -1, pipes[k][1]);
            close(pipes[k][1]);
        }
        char got[2];
        for (int k = 0; k < 2; k++) /* each has finished two saves */
            ck_assert_int_eq(read(pipes[k][0], got, 2) > 0 && read(pipes[k][0], got, 1) > 0, 1);
        for (int k = 0; k < 2; k++) {
            kill(pid[k], SIGKILL);
            waitpid(pid[k], NULL, 0);
            close(pipes[k][0]);
        }
        ck_assert_msg(stamped_load_is_whole(&c, f.path), "round %d: %s", round, tg_last_error());
        ck_assert_int_ge(c.stamp[0].value % 1000000, 1);
    }
    stamped_free(&c);
    temp_files_remove(&f);
}
END_TEST

/* Saving keeps the mode of the file it replaces (a private checkpoint
 * stayed 600 only until the next save) and never writes through a symbolic
 * link planted where the temporary file goes. */
START_TEST(saving_keeps_the_mode_and_follows_no_planted_link)
{
    temp_files f;
    temp_files_make(&f);
    stamped c;
    stamped_make(&c);
    ck_assert_int_eq(stamped_save(&c, f.path, 1), TG_OK);
    ck_assert_int_eq(chmod(f.path, 0600), 0);
    ck_assert_int_eq(stamped_save(&c, f.path, 2), TG_OK);
    struct stat st;
    ck_assert_int_eq(stat(f.path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);

    char victim[200], old_temp[200];
    snprintf(victim, sizeof victim, "%s/victim", f.dir);
    snprintf(old_temp, sizeof old_temp, "%s.tmp", f.path); /* the old fixed name */
    tu_write_file(victim, "precious", 8);
    ck_assert_int_eq(symlink(victim, f.tmp), 0);
    ck_assert_int_eq(symlink(victim, old_temp), 0);
    ck_assert_int_eq(stamped_save(&c, f.path, 3), TG_OK);
    size_t n;
    unsigned char *bytes = tu_read_file(victim, &n);
    ck_assert(n == 8 && memcmp(bytes, "precious", 8) == 0);
    free(bytes);
    ck_assert_int_eq(lstat(f.tmp, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert(stamped_load_is_whole(&c, f.path));
    ck_assert_int_eq(c.stamp[0].value, 3);
    stamped_free(&c);
    temp_files_remove(&f);
}
END_TEST

Suite *suite_checkpoint(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *format = tcase_create("format");
    tcase_add_test(format, crc32_matches_known_check_values);
    tcase_add_test(format, file_layout_is_as_documented);
    tcase_add_test(format, round_trip_resumes_training_bit_exactly);
    tcase_add_test(format, views_save_and_load_in_c_order);
    tcase_add_test(format, readme_training_loop_resumes_bit_exactly);
    tcase_add_test(format, interrupted_save_leaves_the_old_checkpoint_intact);
    tcase_add_test(format, single_integers_can_be_read_before_building_the_model);
    suite_add_tcase(s, format);
    TCase *refusals = tcase_create("refusals");
    tcase_add_test(refusals, truncation_at_every_byte_is_refused);
    tcase_add_test(refusals, corrupted_bytes_are_refused);
    tcase_add_test(refusals, wrong_version_and_magic_are_refused);
    tcase_add_test(refusals, mismatched_model_is_refused_with_a_clear_message);
    tcase_add_test(refusals, unreadable_paths_and_bad_names_are_refused);
    suite_add_tcase(s, refusals);
    TCase *others = tcase_create("other processes");
    tcase_set_timeout(others, 120);
    tcase_add_test(others, an_opened_checkpoint_answers_several_questions);
    tcase_add_test(others, two_savers_and_a_reader_never_see_a_torn_checkpoint);
    tcase_add_test(others, kill_9_of_two_savers_leaves_a_whole_checkpoint);
    tcase_add_test(others, saving_keeps_the_mode_and_follows_no_planted_link);
    suite_add_tcase(s, others);
    return s;
}
