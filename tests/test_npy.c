/* .npy files: round trips, files written by numpy (fixtures made by
 * tests/fixtures/make_npy_fixtures.py), and every kind of bad file. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Tests run from tests/ (make test) or from the repository root. */
static void fixture_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "fixtures/%s", name);
    if (access(buf, R_OK) != 0)
        snprintf(buf, size, "tests/fixtures/%s", name);
    ck_assert_msg(access(buf, R_OK) == 0, "fixture %s not found", name);
}

/* A fresh directory under /tmp for one test's files. */
static void temp_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/tg_npy_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(const char *dir, const char *const *files, int n)
{
    char path[512];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    rmdir(dir);
}

/* The fixtures' values: element i = (-1)^i sqrt(i + 1), in the file's dtype. */
static double fixture_value(tg_dtype dtype, int64_t i)
{
    double sign = i % 2 == 0 ? 1.0 : -1.0;
    return dtype == TG_F32 ? sign * (double)sqrtf((float)(i + 1)) : sign * sqrt((double)(i + 1));
}

static tg_tensor *fixture_tensor(tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_tensor_zeros(dtype, ndim, shape);
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set_flat(t, i, fixture_value(dtype, i));
    return t;
}

static void assert_fixture_values(const tg_tensor *t, tg_dtype dtype, int ndim,
                                  const int64_t *shape)
{
    ck_assert_int_eq(t->dtype, dtype);
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        ck_assert_msg(tg_tensor_get_flat(t, i) == fixture_value(dtype, i),
                      "element %lld: %.17g, want %.17g", (long long)i, tg_tensor_get_flat(t, i),
                      fixture_value(dtype, i));
}

/* A .npy file with an exact header text (no padding added) and data bytes. */
static void write_raw_npy(const char *path, int major, const char *header, const void *data,
                          size_t data_len)
{
    unsigned char buf[4096];
    size_t hl = strlen(header), n = 0;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hl & 0xFF);
    buf[9] = (unsigned char)(hl >> 8);
    n = 10;
    if (major >= 2) {
        buf[10] = buf[11] = 0;
        n = 12;
    }
    memcpy(buf + n, header, hl);
    memcpy(buf + n + hl, data, data_len);
    tu_write_file(path, buf, n + hl + data_len);
}

static void assert_refused(const char *path, const char *expected_text)
{
    tg_clear_error();
    tg_tensor *t = tg_npy_load(path);
    ck_assert_msg(t == NULL, "%s was accepted", path);
    ck_assert_int_eq(tg_last_status(), TG_ERR_FORMAT);
    ck_assert_msg(strstr(tg_last_error(), expected_text), "message '%s' lacks '%s'",
                  tg_last_error(), expected_text);
}

START_TEST(reads_files_written_by_numpy)
{
    char path[256];
    fixture_path(path, sizeof path, "npy_f64_3x4.npy");
    tg_tensor *t = tg_npy_load(path);
    ck_assert_msg(t != NULL, "%s", tg_last_error());
    assert_fixture_values(t, TG_F64, TG_DIMS(3, 4));
    tg_tensor_free(t);

    const struct {
        const char *file;
        tg_dtype dtype;
        int ndim;
        int64_t shape[3];
    } cases[] = {
        {"npy_f32_2x3x4.npy", TG_F32, 3, {2, 3, 4}},
        {"npy_f64_vector5.npy", TG_F64, 1, {5}},
        {"npy_f64_scalar.npy", TG_F64, 0, {0}},
        {"npy_f64_empty_0x3.npy", TG_F64, 2, {0, 3}},
        {"npy_f64_3x4_v2.npy", TG_F64, 2, {3, 4}},
        /* Fortran order comes back as the same logical array in C order. */
        {"npy_f64_3x4_fortran.npy", TG_F64, 2, {3, 4}},
        {"npy_f32_2x3x4_fortran.npy", TG_F32, 3, {2, 3, 4}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fixture_path(path, sizeof path, cases[k].file);
        t = tg_npy_load(path);
        ck_assert_msg(t != NULL, "%s: %s", cases[k].file, tg_last_error());
        ck_assert(tg_tensor_is_contiguous(t));
        assert_fixture_values(t, cases[k].dtype, cases[k].ndim, cases[k].shape);
        tg_tensor_free(t);
    }
}
END_TEST

/* Our writer produces the very bytes np.save produced for the same array. */
START_TEST(writes_the_same_bytes_as_numpy)
{
    char dir[64], out[128], ref[256];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/out.npy", dir);
    const struct {
        const char *file;
        tg_dtype dtype;
        int ndim;
        int64_t shape[3];
    } cases[] = {
        {"npy_f64_3x4.npy", TG_F64, 2, {3, 4}},     {"npy_f32_2x3x4.npy", TG_F32, 3, {2, 3, 4}},
        {"npy_f64_vector5.npy", TG_F64, 1, {5}},    {"npy_f64_scalar.npy", TG_F64, 0, {0}},
        {"npy_f64_empty_0x3.npy", TG_F64, 2, {0, 3}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_tensor *t = fixture_tensor(cases[k].dtype, cases[k].ndim, cases[k].shape);
        ck_assert_int_eq(tg_npy_save(out, t), TG_OK);
        fixture_path(ref, sizeof ref, cases[k].file);
        size_t n_out, n_ref;
        unsigned char *a = tu_read_file(out, &n_out), *b = tu_read_file(ref, &n_ref);
        ck_assert_msg(n_out == n_ref && memcmp(a, b, n_ref) == 0, "%s: bytes differ",
                      cases[k].file);
        free(a);
        free(b);
        tg_tensor_free(t);
    }
    remove_dir(dir, (const char *[]){"out.npy"}, 1);
}
END_TEST

START_TEST(round_trip_is_bit_exact_including_views)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.npy", dir);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (int dt = 0; dt < 2; dt++) {
        tg_dtype dtype = dt ? TG_F64 : TG_F32;
        tg_tensor *x = tg_tensor_randn(&rng, dtype, TG_DIMS(4, 5, 6));
        tg_tensor_set_flat(x, 3, NAN);
        tg_tensor_set_flat(x, 4, -INFINITY);
        tg_tensor_set_flat(x, 5, -0.0);
        tg_tensor_set_flat(x, 6, dtype == TG_F64 ? 4.9e-324 : 1e-45); /* subnormal */
        ck_assert_int_eq(tg_npy_save(path, x), TG_OK);
        tg_tensor *y = tg_npy_load(path);
        ck_assert_ptr_nonnull(y);
        ck_assert(tg_tensor_same_shape(x, y));
        size_t bytes = (size_t)tg_tensor_numel(x) * tg_dtype_size(dtype);
        ck_assert_int_eq(memcmp(x->data, y->data, bytes), 0);
        tg_tensor_free(y);
        /* A transposed, sliced view is written in its own C order. */
        tg_tensor tv, sv;
        tg_view_transpose(&tv, x, 0, 2);
        tg_view_slice(&sv, &tv, 1, 1, 5, 2);
        ck_assert_int_eq(tg_npy_save(path, &sv), TG_OK);
        y = tg_npy_load(path);
        ck_assert_ptr_nonnull(y);
        ck_assert(tg_tensor_same_shape(&sv, y));
        ck_assert(tu_bitwise_equal(&sv, y));
        /* load_into fills a view of another dtype. */
        tg_tensor *z = tg_tensor_zeros(dt ? TG_F32 : TG_F64, sv.ndim, sv.shape);
        ck_assert_int_eq(tg_npy_load_into(path, z), TG_OK);
        ck_assert_double_eq(tg_tensor_get_flat(z, 7), (double)(float)tg_tensor_get_flat(y, 7));
        tg_tensor *wrong = tg_tensor_zeros(dtype, TG_DIMS(2, 2));
        ck_assert_int_eq(tg_npy_load_into(path, wrong), TG_ERR_SHAPE);
        ck_assert_ptr_nonnull(strstr(tg_last_error(), "(6,2,4)"));
        tu_free_all((tg_tensor *[]){x, y, z, wrong}, 4);
    }
    remove_dir(dir, (const char *[]){"x.npy"}, 1);
}
END_TEST

START_TEST(refuses_other_dtypes_and_byte_orders)
{
    char path[256];
    fixture_path(path, sizeof path, "npy_f8_bigendian.npy");
    assert_refused(path, "big-endian ('>f8')");
    fixture_path(path, sizeof path, "npy_i8.npy");
    assert_refused(path, "dtype '<i8'");
}
END_TEST

START_TEST(refuses_malformed_headers)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    double data[16] = {0}; /* room for the "bytes after its data" case */
    const struct {
        const char *header;
        size_t data_len;
        const char *message;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }\n", 8 * 11, "truncated"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }\n", 8 * 12 + 3,
         "bytes after its data"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 4), }\n", 8 * 12,
         "bytes after its data"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n", 0,
         "overflows"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 0,
         "overflows"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1), }\n", 8,
         "more than 6 dimensions"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-3, 4), }\n", 0, "non-negative"},
        {"{'descr': '<f8', 'fortran_order': False, }\n", 8, "lacks 'shape'"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n", 8,
         "appears twice"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}\n", 8,
         "unexpected key 'extra'"},
        {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }\n", 8,
         "structured dtype"},
        {"{'descr': '<f8', 'fortran_order': Maybe, 'shape': (1,), }\n", 8, "True or False"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,) }junk\n", 8, "padding"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), \n", 8, "does not parse"},
        {"['descr', '<f8']\n", 8, "does not parse"},
        {"", 8, "does not parse"},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }\n", 2, "dtype '<f2'"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_raw_npy(path, 1, cases[k].header, data, cases[k].data_len);
        assert_refused(path, cases[k].message);
    }
    /* Python 2's numpy wrote "3L"; that still reads. */
    write_raw_npy(path, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 4L), }\n",
                  data, 12 * sizeof data[0]);
    tg_tensor *t = tg_npy_load(path);
    ck_assert_msg(t != NULL, "%s", tg_last_error());
    ck_assert_int_eq(t->shape[1], 4);
    tg_tensor_free(t);
    remove_dir(dir, (const char *[]){"bad.npy"}, 1);
}
END_TEST

START_TEST(refuses_bad_preambles)
{
    char dir[64], path[128], ref[256];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    fixture_path(ref, sizeof ref, "npy_f64_3x4.npy");
    size_t n;
    unsigned char *good = tu_read_file(ref, &n);
    unsigned char *bad = malloc(n);

    memcpy(bad, good, n);
    bad[1] = 'X';
    tu_write_file(path, bad, n);
    assert_refused(path, "bad magic");

    memcpy(bad, good, n);
    bad[6] = 4;
    tu_write_file(path, bad, n);
    assert_refused(path, "version 4.0");
    bad[6] = 1;
    bad[7] = 1;
    tu_write_file(path, bad, n);
    assert_refused(path, "version 1.1");

    memcpy(bad, good, n);
    bad[8] = 0xFF; /* header length 255: past the end of the file */
    tu_write_file(path, bad, n);
    assert_refused(path, "runs past the end");

    /* Cut at every length: always a clear refusal, never a crash. */
    for (size_t len = 0; len < n; len++) {
        tu_write_file(path, good, len);
        tg_clear_error();
        ck_assert_msg(tg_npy_load(path) == NULL, "accepted %zu of %zu bytes", len, n);
        ck_assert_int_eq(tg_last_status(), TG_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(tg_last_error(), path));
    }
    free(good);
    free(bad);

    /* A path that is not there, and a directory, are i/o errors. */
    snprintf(path, sizeof path, "%s/missing.npy", dir);
    ck_assert_ptr_null(tg_npy_load(path));
    ck_assert_int_eq(tg_last_status(), TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "No such file"));
    ck_assert_ptr_null(tg_npy_load(dir));
    ck_assert_int_eq(tg_last_status(), TG_ERR_IO);
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", dir);
    tg_tensor *t = tg_tensor_zeros(TG_F64, TG_DIMS(2));
    ck_assert_int_eq(tg_npy_save(path, t), TG_ERR_IO);
    tg_tensor_free(t);
    remove_dir(dir, (const char *[]){"bad.npy"}, 1);
}
END_TEST

/* A save that fails part way (here the file size limit stands in for a full
 * disk) leaves the file it was replacing whole, and no temporary file: .npy
 * and .npz. Before, the save truncated the file in place and then removed
 * it. */
START_TEST(a_failed_save_leaves_the_old_file_whole)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.npy", dir);
    tg_tensor *small = tg_tensor_arange(TG_F64, 0, 3, 1);
    ck_assert_int_eq(tg_npy_save(path, small), TG_OK);
    size_t n_before;
    unsigned char *before = tu_read_file(path, &n_before);
    char npz[160];
    snprintf(npz, sizeof npz, "%s/x.npz", dir);
    tg_params small_set = {0}, big_set = {0};
    ck_assert_int_eq(tg_params_add(&small_set, "x", small), TG_OK);
    ck_assert_int_eq(tg_npz_save(npz, &small_set), TG_OK);
    size_t n_npz;
    unsigned char *npz_before = tu_read_file(npz, &n_npz);
    tg_tensor *big = tg_tensor_zeros(TG_F32, TG_DIMS(1000, 1000));
    ck_assert_int_eq(tg_params_add(&big_set, "x", big), TG_OK);
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
    struct rlimit before_limit, limit;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &before_limit), 0);
    limit = before_limit;
    limit.rlim_cur = 4096;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
    tg_status s = tg_npy_save(path, big), s_npz = tg_npz_save(npz, &big_set);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &before_limit), 0);
    ck_assert_int_eq(s, TG_ERR_IO);
    ck_assert_int_eq(s_npz, TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "cannot write"));
    size_t n_npz_after;
    unsigned char *npz_after = tu_read_file(npz, &n_npz_after);
    ck_assert(n_npz_after == n_npz && memcmp(npz_after, npz_before, n_npz) == 0);
    free(npz_before);
    free(npz_after);
    remove(npz);
    tg_params_clear(&small_set);
    tg_params_clear(&big_set);
    tg_tensor_free(big);
    size_t n_after;
    unsigned char *after = tu_read_file(path, &n_after);
    ck_assert(n_after == n_before && memcmp(after, before, n_before) == 0);
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        entries += e->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(entries, 1); /* x.npy alone */
    free(before);
    free(after);
    tg_tensor_free(small);
    remove_dir(dir, (const char *[]){"x.npy"}, 1);
}
END_TEST

Suite *suite_npy(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_test(tc, reads_files_written_by_numpy);
    tcase_add_test(tc, writes_the_same_bytes_as_numpy);
    tcase_add_test(tc, round_trip_is_bit_exact_including_views);
    tcase_add_test(tc, refuses_other_dtypes_and_byte_orders);
    tcase_add_test(tc, refuses_malformed_headers);
    tcase_add_test(tc, refuses_bad_preambles);
    tcase_add_test(tc, a_failed_save_leaves_the_old_file_whole);
    suite_add_tcase(s, tc);
    return s;
}
