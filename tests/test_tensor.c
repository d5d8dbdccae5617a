/* Tensors: constructors, element access, contiguity, copies across dtypes and
 * strides, every view (checked element by element against index arithmetic),
 * error paths, and the numpy-style printer (against text numpy printed). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* A tensor whose every element equals its flat C-order index, so reading a
 * view tells exactly which base element the view reached. */
static tg_tensor *numbered(tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_tensor_zeros(dtype, ndim, shape);
    ck_assert_msg(t != NULL, "%s", tg_last_error());
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set_flat(t, i, (double)i);
    return t;
}

static int64_t flat_index(const tg_tensor *base, const int64_t *index)
{
    int64_t flat = 0;
    for (int d = 0; d < base->ndim; d++) {
        ck_assert_msg(index[d] >= 0 && index[d] < base->shape[d], "index %lld outside dim %d",
                      (long long)index[d], d);
        flat = flat * base->shape[d] + index[d];
    }
    return flat;
}

/* Where element `view_index` of a view must come from in its base. */
typedef void (*index_map)(const int64_t *view_index, int64_t *base_index, const void *ctx);

/* Visit every index of the view; each element must be the base element the
 * map names, and the view must read the base's storage. Returns the count. */
static int64_t check_view(const tg_tensor *view, const tg_tensor *base, index_map map,
                          const void *ctx)
{
    ck_assert_ptr_eq(view->data, base->data);
    int64_t n = tg_tensor_numel(view), index[TG_MAX_DIMS] = {0}, count = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t base_index[TG_MAX_DIMS] = {0};
        map(index, base_index, ctx);
        double want = (double)flat_index(base, base_index);
        ck_assert_msg(tg_tensor_get(view, index) == want, "element %lld: got %g, want %g",
                      (long long)i, tg_tensor_get(view, index), want);
        ck_assert(tg_tensor_get_flat(view, i) == want);
        count++;
        for (int d = view->ndim - 1; d >= 0; d--) {
            if (++index[d] < view->shape[d])
                break;
            index[d] = 0;
        }
    }
    return count;
}

static void assert_shape(const tg_tensor *t, int ndim, const int64_t *shape)
{
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
}

/* The last error must have this status and mention `part`. */
static void assert_error(tg_status status, const char *part)
{
    ck_assert_int_eq(tg_last_status(), status);
    ck_assert_msg(strstr(tg_last_error(), part) != NULL, "message '%s' lacks '%s'",
                  tg_last_error(), part);
}

/* ---- constructors -------------------------------------------------------- */

START_TEST(zeros_ones_full_have_contiguous_layout_and_values)
{
    for (int dt = 0; dt < 2; dt++) {
        tg_dtype dtype = (tg_dtype)dt;
        tg_tensor *z = tg_tensor_zeros(dtype, TG_DIMS(2, 3, 4));
        tg_tensor *o = tg_tensor_ones(dtype, TG_DIMS(5));
        tg_tensor *f = tg_tensor_full(dtype, TG_DIMS(3, 2), -2.5);
        tg_tensor *s = tg_tensor_full(dtype, 0, NULL, 7.0);
        ck_assert(z && o && f && s);
        assert_shape(z, TG_DIMS(2, 3, 4));
        ck_assert_int_eq(z->strides[0], 12);
        ck_assert_int_eq(z->strides[1], 4);
        ck_assert_int_eq(z->strides[2], 1);
        ck_assert_int_eq(z->offset, 0);
        ck_assert_int_eq(z->dtype, dtype);
        ck_assert_int_eq(tg_tensor_numel(z), 24);
        ck_assert_ptr_null(z->grad);
        ck_assert_ptr_null(z->grad_root);
        for (int64_t i = 0; i < 24; i++)
            ck_assert(tg_tensor_get_flat(z, i) == 0.0);
        for (int64_t i = 0; i < 5; i++)
            ck_assert(tg_tensor_get_flat(o, i) == 1.0);
        for (int64_t i = 0; i < 6; i++)
            ck_assert(tg_tensor_get_flat(f, i) == -2.5);
        ck_assert_int_eq(s->ndim, 0);
        ck_assert_int_eq(tg_tensor_numel(s), 1);
        ck_assert(tg_tensor_item(s) == 7.0);
        tu_free_all((tg_tensor *[]){z, o, f, s}, 4);
    }
    ck_assert_uint_eq(tg_dtype_size(TG_F32), 4);
    ck_assert_uint_eq(tg_dtype_size(TG_F64), 8);
    ck_assert_str_eq(tg_dtype_name(TG_F32), "f32");
    ck_assert_str_eq(tg_dtype_name(TG_F64), "f64");
}
END_TEST

START_TEST(zero_sized_dimensions_make_empty_tensors)
{
    tg_tensor *e = tg_tensor_zeros(TG_F64, TG_DIMS(0, 3));
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(e->data);
    ck_assert_int_eq(tg_tensor_numel(e), 0);
    ck_assert(tg_tensor_is_contiguous(e));
    tg_tensor_fill(e, 3.0); /* nothing to do, nothing to break */
    tg_tensor *c = tg_tensor_copy(e);
    ck_assert_ptr_nonnull(c);
    assert_shape(c, TG_DIMS(0, 3));
    tg_tensor_free(c);
    tg_tensor_free(e);
}
END_TEST

START_TEST(from_array_converts_either_source_dtype)
{
    const double d[] = {1.0, -2.5, 1e-3, 3.0e38, 0.1, -0.0};
    const float f[] = {1.0f, -2.5f, 1e-3f, 3.0e38f, 0.1f, -0.0f};
    tg_tensor *dd = tg_tensor_from_array(TG_F64, TG_DIMS(2, 3), TG_F64, d);
    tg_tensor *df = tg_tensor_from_array(TG_F64, TG_DIMS(3, 2), TG_F32, f);
    tg_tensor *fd = tg_tensor_from_array(TG_F32, TG_DIMS(6), TG_F64, d);
    tg_tensor *ff = tg_tensor_from_array(TG_F32, TG_DIMS(6), TG_F32, f);
    tg_tensor *hd = tg_tensor_from_doubles(TG_F64, TG_DIMS(6), d);
    ck_assert(dd && df && fd && ff && hd);
    for (int i = 0; i < 6; i++) {
        ck_assert(((double *)dd->data)[i] == d[i]);
        ck_assert(((double *)df->data)[i] == (double)f[i]);
        ck_assert(((float *)fd->data)[i] == (float)d[i]);
        ck_assert(((float *)ff->data)[i] == f[i]);
        ck_assert(((double *)hd->data)[i] == d[i]);
    }
    ck_assert(signbit(tg_tensor_get_flat(fd, 5)));
    ck_assert_ptr_null(tg_tensor_from_array(TG_F64, TG_DIMS(2), TG_F64, NULL));
    assert_error(TG_ERR_ARG, "tg_tensor_from_array");
    ck_assert_ptr_null(tg_tensor_from_array(TG_F64, TG_DIMS(2), (tg_dtype)9, d));
    assert_error(TG_ERR_DTYPE, "tg_tensor_from_array");
    tu_free_all((tg_tensor *[]){dd, df, fd, ff, hd}, 5);
}
END_TEST

static void assert_arange(tg_dtype dtype, double start, double stop, double step, int64_t n,
                          const double *want)
{
    tg_tensor *t = tg_tensor_arange(dtype, start, stop, step);
    ck_assert_msg(t != NULL, "%s", tg_last_error());
    assert_shape(t, 1, &n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(tg_tensor_get_flat(t, i) == want[i], "arange(%g, %g, %g)[%lld] = %g",
                      start, stop, step, (long long)i, tg_tensor_get_flat(t, i));
    tg_tensor_free(t);
}

START_TEST(arange_counts_like_numpy)
{
    assert_arange(TG_F64, 0, 5, 1, 5, (double[]){0, 1, 2, 3, 4});
    assert_arange(TG_F32, 0, 1, 0.25, 4, (double[]){0, 0.25, 0.5, 0.75});
    assert_arange(TG_F64, 5, 0, -1.5, 4, (double[]){5, 3.5, 2, 0.5});
    assert_arange(TG_F64, -1, -3, -1, 2, (double[]){-1, -2});
    assert_arange(TG_F64, 0, 5.5, 2, 3, (double[]){0, 2, 4});
    assert_arange(TG_F64, 3, 3, 1, 0, NULL);  /* empty range */
    assert_arange(TG_F64, 0, 5, -1, 0, NULL); /* wrong direction: empty */
    ck_assert_ptr_null(tg_tensor_arange(TG_F64, 0, 5, 0));
    assert_error(TG_ERR_ARG, "tg_tensor_arange");
    ck_assert_ptr_null(tg_tensor_arange(TG_F64, 0, NAN, 1));
    assert_error(TG_ERR_ARG, "tg_tensor_arange");
    ck_assert_ptr_null(tg_tensor_arange(TG_F64, 0, 1e300, 1e-300));
    assert_error(TG_ERR_OVERFLOW, "tg_tensor_arange");
}
END_TEST

START_TEST(copy_of_a_view_is_contiguous_and_independent)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(3, 4));
    base->name = "base";
    tg_tensor view;
    ck_assert_int_eq(tg_view_transpose(&view, base, 0, 1), TG_OK);
    tg_tensor *c = tg_tensor_copy(&view);
    ck_assert_ptr_nonnull(c);
    assert_shape(c, TG_DIMS(4, 3));
    ck_assert(tg_tensor_is_contiguous(c));
    ck_assert_ptr_ne(c->data, base->data);
    ck_assert_str_eq(c->name, "base");
    ck_assert_ptr_null(c->grad_root);
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 3; j++)
            ck_assert(tg_tensor_get(c, (int64_t[]){i, j}) == (double)(j * 4 + i));
    tg_tensor_set(c, (int64_t[]){0, 1}, -1.0);
    ck_assert(tg_tensor_get(base, (int64_t[]){1, 0}) == 4.0);
    ck_assert_ptr_null(tg_tensor_copy(NULL));
    assert_error(TG_ERR_ARG, "tg_tensor_copy");
    tg_tensor_free(c);
    tg_tensor_free(base);
}
END_TEST

START_TEST(wrap_uses_the_callers_memory)
{
    double data[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *t = tg_tensor_wrap(TG_F64, TG_DIMS(2, 3), data);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_eq(t->data, data);
    ck_assert(tg_tensor_get(t, (int64_t[]){1, 2}) == 6.0);
    tg_tensor_set(t, (int64_t[]){0, 1}, 20.0);
    ck_assert(data[1] == 20.0);
    data[4] = 50.0;
    ck_assert(tg_tensor_get(t, (int64_t[]){1, 1}) == 50.0);
    tg_tensor_free(t); /* must not free the stack array */
    ck_assert(data[5] == 6.0);
    ck_assert_ptr_null(tg_tensor_wrap(TG_F64, TG_DIMS(2), NULL));
    assert_error(TG_ERR_ARG, "tg_tensor_wrap");
    ck_assert_ptr_null(tg_tensor_wrap((tg_dtype)5, TG_DIMS(2), data));
    assert_error(TG_ERR_DTYPE, "tg_tensor_wrap");
    ck_assert_ptr_null(tg_tensor_wrap(TG_F64, TG_DIMS(-2), data));
    assert_error(TG_ERR_SHAPE, "tg_tensor_wrap");
}
END_TEST

/* ---- element access, contiguity, copies ------------------------------------ */

START_TEST(element_access_follows_offset_and_strides)
{
    tg_tensor *base = numbered(TG_F32, TG_DIMS(4, 6));
    tg_tensor v;
    /* rows 1 and 3, columns 5, 3, 1 reached through a transposed slice */
    ck_assert_int_eq(tg_view_slice(&v, base, 0, 1, 4, 2), TG_OK);
    ck_assert_int_eq(tg_view_slice(&v, &v, 1, 1, 6, 2), TG_OK);
    ck_assert_int_eq(tg_view_transpose(&v, &v, 0, 1), TG_OK);
    assert_shape(&v, TG_DIMS(3, 2));
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 2; j++) {
            double want = (double)((1 + 2 * j) * 6 + 1 + 2 * i);
            ck_assert(tg_tensor_get(&v, (int64_t[]){i, j}) == want);
            ck_assert(tg_tensor_get_flat(&v, i * 2 + j) == want);
        }
    tg_tensor_set_flat(&v, 5, -7.0); /* v[2,1] = base[3,5] */
    ck_assert(tg_tensor_get(base, (int64_t[]){3, 5}) == -7.0);
    tg_tensor_fill(&v, 0.5);
    int changed = 0;
    for (int64_t i = 0; i < 24; i++)
        changed += tg_tensor_get_flat(base, i) == 0.5;
    ck_assert_int_eq(changed, 6);
    ck_assert(tg_tensor_get(base, (int64_t[]){1, 0}) == 6.0);
    tg_tensor one;
    ck_assert_int_eq(tg_view_select(&one, base, 0, 2), TG_OK);
    ck_assert_int_eq(tg_view_select(&one, &one, 0, 4), TG_OK);
    ck_assert(tg_tensor_item(&one) == 16.0);
    tg_tensor_free(base);
}
END_TEST

START_TEST(contiguity_is_detected_for_every_kind_of_view)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(4, 1, 6));
    tg_tensor v;
    ck_assert(tg_tensor_is_contiguous(base));
    tg_view_transpose(&v, base, 0, 2);
    ck_assert(!tg_tensor_is_contiguous(&v));
    tg_view_transpose(&v, base, 0, 1); /* only a size-1 dim moves */
    ck_assert(tg_tensor_is_contiguous(&v));
    tg_view_slice(&v, base, 0, 1, 3, 1); /* leading rows: still one block */
    ck_assert(tg_tensor_is_contiguous(&v));
    tg_view_slice(&v, base, 2, 0, 6, 2);
    ck_assert(!tg_tensor_is_contiguous(&v));
    tg_view_slice(&v, base, 2, 1, 4, 1);
    ck_assert(!tg_tensor_is_contiguous(&v));
    tg_view_select(&v, base, 0, 2);
    ck_assert(tg_tensor_is_contiguous(&v));
    tg_view_select(&v, base, 2, 3);
    ck_assert(!tg_tensor_is_contiguous(&v));
    tg_view_expand(&v, base, TG_DIMS(4, 5, 6));
    ck_assert(!tg_tensor_is_contiguous(&v));
    tg_view_slice(&v, base, 2, 3, 3, 1); /* empty: any layout is contiguous */
    ck_assert_int_eq(tg_tensor_numel(&v), 0);
    ck_assert(tg_tensor_is_contiguous(&v));
    tg_tensor_free(base);
}
END_TEST

START_TEST(copy_into_converts_dtypes_across_strides)
{
    tg_tensor *src = numbered(TG_F64, TG_DIMS(4, 6));
    tg_tensor_set_flat(src, 2, 0.1); /* not exact in f32; lands in dst[4,2] */
    for (int dt = 0; dt < 2; dt++) {
        tg_tensor *dst = tg_tensor_full((tg_dtype)dt, TG_DIMS(6, 8), -1.0);
        tg_tensor s, d;
        tg_view_slice(&s, src, 1, 0, 6, 2);      /* (4,3), stride 2 */
        tg_view_transpose(&d, dst, 0, 1);        /* (8,6) */
        tg_view_slice(&d, &d, 0, 2, 6, 1);       /* (4,6) */
        tg_view_slice(&d, &d, 1, -1, -7, 1);     /* empty: stop before start */
        ck_assert_int_eq(tg_tensor_numel(&d), 0);
        tg_view_transpose(&d, dst, 0, 1);
        tg_view_slice(&d, &d, 0, 2, 6, 1);
        tg_view_slice(&d, &d, 1, 3, 6, 1);       /* (4,3) */
        ck_assert_int_eq(tg_tensor_copy_into(&d, &s), TG_OK);
        for (int64_t i = 0; i < 6; i++)
            for (int64_t j = 0; j < 8; j++) {
                double got = tg_tensor_get(dst, (int64_t[]){i, j});
                bool inside = i >= 3 && j >= 2 && j < 6;
                double want = inside ? tg_tensor_get(src, (int64_t[]){j - 2, 2 * (i - 3)}) : -1.0;
                if (dt == TG_F32)
                    want = (double)(float)want;
                ck_assert_msg(got == want, "dst[%lld,%lld] = %g, want %g", (long long)i,
                              (long long)j, got, want);
            }
        /* and back: f32/f64 -> f64 view */
        tg_tensor *back = tg_tensor_zeros(TG_F64, TG_DIMS(4, 3));
        ck_assert_int_eq(tg_tensor_copy_into(back, &d), TG_OK);
        ck_assert(tg_tensor_get(back, (int64_t[]){0, 1}) == (dt == TG_F32 ? (double)0.1f : 0.1));
        ck_assert(tg_tensor_get(back, (int64_t[]){3, 2}) == 22.0);
        tg_tensor *wrong = tg_tensor_zeros(TG_F64, TG_DIMS(3, 4));
        ck_assert_int_eq(tg_tensor_copy_into(wrong, &d), TG_ERR_SHAPE);
        assert_error(TG_ERR_SHAPE, "(3,4) <- (4,3)");
        ck_assert_int_eq(tg_tensor_copy_into(NULL, &d), TG_ERR_ARG);
        ck_assert_int_eq(tg_tensor_copy_into(wrong, NULL), TG_ERR_ARG);
        tu_free_all((tg_tensor *[]){dst, back, wrong}, 3);
    }
    tg_tensor_free(src);
}
END_TEST

/* ---- views, element by element ---------------------------------------------- */

typedef struct {
    int perm[TG_MAX_DIMS];
    int dim;
    int64_t start, step, index;
    int lead;
} map_args;

static void map_permute(const int64_t *v, int64_t *b, const void *ctx)
{
    const map_args *m = ctx;
    for (int d = 0; d < 4; d++)
        b[m->perm[d]] = v[d];
}

static void map_slice(const int64_t *v, int64_t *b, const void *ctx)
{
    const map_args *m = ctx;
    for (int d = 0; d < 4; d++)
        b[d] = d == m->dim ? m->start + v[d] * m->step : v[d];
}

static void map_select(const int64_t *v, int64_t *b, const void *ctx)
{
    const map_args *m = ctx;
    for (int d = 0, k = 0; d < 4; d++)
        b[d] = d == m->dim ? m->index : v[k++];
}

START_TEST(transpose_and_permute_move_strides)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(3, 4, 5, 2));
    tg_tensor v;
    ck_assert_int_eq(tg_view_transpose(&v, base, 1, 3), TG_OK);
    assert_shape(&v, TG_DIMS(3, 2, 5, 4));
    ck_assert_int_eq(check_view(&v, base, map_permute, &(map_args){.perm = {0, 3, 2, 1}}), 120);
    ck_assert_int_eq(tg_view_transpose(&v, base, -1, 0), TG_OK); /* negative dims count back */
    assert_shape(&v, TG_DIMS(2, 4, 5, 3));
    check_view(&v, base, map_permute, &(map_args){.perm = {3, 1, 2, 0}});
    /* view[i0,i1,i2,i3] = base[...] with base dim perm[d] = i_d */
    int perm[] = {2, 0, 3, 1};
    ck_assert_int_eq(tg_view_permute(&v, base, perm), TG_OK);
    assert_shape(&v, TG_DIMS(5, 3, 2, 4));
    ck_assert_int_eq(check_view(&v, base, map_permute, &(map_args){.perm = {2, 0, 3, 1}}), 120);
    /* a view of a view, written over itself */
    ck_assert_int_eq(tg_view_transpose(&v, &v, 0, 3), TG_OK);
    check_view(&v, base, map_permute, &(map_args){.perm = {1, 0, 3, 2}});
    tg_tensor_free(base);
}
END_TEST

START_TEST(slice_with_steps_and_negative_bounds)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(3, 4, 5, 2));
    tg_tensor v;
    ck_assert_int_eq(tg_view_slice(&v, base, 1, 1, 4, 2), TG_OK); /* 1, 3 */
    assert_shape(&v, TG_DIMS(3, 2, 5, 2));
    check_view(&v, base, map_slice, &(map_args){.dim = 1, .start = 1, .step = 2});
    ck_assert_int_eq(tg_view_slice(&v, base, 2, -4, -1, 1), TG_OK); /* 1, 2, 3 */
    assert_shape(&v, TG_DIMS(3, 4, 3, 2));
    check_view(&v, base, map_slice, &(map_args){.dim = 2, .start = 1, .step = 1});
    ck_assert_int_eq(tg_view_slice(&v, base, -2, 0, 100, 3), TG_OK); /* 0, 3; stop clamps */
    assert_shape(&v, TG_DIMS(3, 4, 2, 2));
    check_view(&v, base, map_slice, &(map_args){.dim = 2, .start = 0, .step = 3});
    ck_assert_int_eq(tg_view_slice(&v, base, 0, -100, 2, 1), TG_OK); /* start clamps to 0 */
    assert_shape(&v, TG_DIMS(2, 4, 5, 2));
    check_view(&v, base, map_slice, &(map_args){.dim = 0, .start = 0, .step = 1});
    ck_assert_int_eq(tg_view_slice(&v, base, 2, 3, 5, INT64_MAX), TG_OK); /* huge step */
    assert_shape(&v, TG_DIMS(3, 4, 1, 2));
    check_view(&v, base, map_slice, &(map_args){.dim = 2, .start = 3, .step = 1});
    ck_assert_int_eq(tg_view_slice(&v, base, 2, 7, 9, 1), TG_OK); /* past the end: empty */
    ck_assert_int_eq(v.shape[2], 0);
    ck_assert_int_eq(tg_view_slice(&v, base, 2, 3, 1, 1), TG_OK); /* backwards: empty */
    ck_assert_int_eq(v.shape[2], 0);
    tg_tensor_free(base);
}
END_TEST

START_TEST(select_drops_a_dimension)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(3, 4, 5, 2));
    tg_tensor v;
    ck_assert_int_eq(tg_view_select(&v, base, 2, -1), TG_OK); /* x[:, :, 4] */
    assert_shape(&v, TG_DIMS(3, 4, 2));
    ck_assert_int_eq(check_view(&v, base, map_select, &(map_args){.dim = 2, .index = 4}), 24);
    ck_assert_int_eq(tg_view_select(&v, base, 0, 2), TG_OK);
    assert_shape(&v, TG_DIMS(4, 5, 2));
    check_view(&v, base, map_select, &(map_args){.dim = 0, .index = 2});
    ck_assert_int_eq(tg_view_select(&v, base, -1, -2), TG_OK);
    assert_shape(&v, TG_DIMS(3, 4, 5));
    check_view(&v, base, map_select, &(map_args){.dim = 3, .index = 0});
    tg_tensor_free(base);
}
END_TEST

static void map_reshape(const int64_t *v, int64_t *b, const void *ctx)
{
    /* view (12, 10) of base (3,4,5,2): flat = 10 i + j */
    (void)ctx;
    int64_t flat = v[0] * 10 + v[1];
    b[3] = flat % 2;
    b[2] = flat / 2 % 5;
    b[1] = flat / 10 % 4;
    b[0] = flat / 40;
}

static void map_select_reshape(const int64_t *v, int64_t *b, const void *ctx)
{
    /* view (5, 8) of base[2] (4,5,2): flat = 8 i + j */
    (void)ctx;
    int64_t flat = v[0] * 8 + v[1];
    b[0] = 2;
    b[3] = flat % 2;
    b[2] = flat / 2 % 5;
    b[1] = flat / 10;
}

START_TEST(reshape_of_contiguous_data_only)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(3, 4, 5, 2));
    tg_tensor v;
    ck_assert_int_eq(tg_view_reshape(&v, base, TG_DIMS(12, -1)), TG_OK);
    assert_shape(&v, TG_DIMS(12, 10));
    ck_assert_int_eq(check_view(&v, base, map_reshape, NULL), 120);
    ck_assert_int_eq(tg_view_reshape(&v, base, TG_DIMS(-1, 10)), TG_OK);
    assert_shape(&v, TG_DIMS(12, 10));
    check_view(&v, base, map_reshape, NULL);
    /* a contiguous view with an offset keeps it */
    tg_tensor row;
    tg_view_select(&row, base, 0, 2);
    ck_assert_int_eq(tg_view_reshape(&v, &row, TG_DIMS(5, 8)), TG_OK);
    ck_assert_int_eq(v.offset, 80);
    check_view(&v, base, map_select_reshape, NULL);
    /* to and from a scalar shape */
    tg_tensor one;
    tg_view_slice(&one, base, 0, 1, 2, 1);
    tg_view_slice(&one, &one, 1, 2, 3, 1);
    tg_view_slice(&one, &one, 2, 3, 4, 1);
    tg_view_slice(&one, &one, 3, 1, 2, 1);
    ck_assert_int_eq(tg_view_reshape(&v, &one, 0, NULL), TG_OK);
    ck_assert_int_eq(v.ndim, 0);
    ck_assert(tg_tensor_item(&v) == 40 + 20 + 6 + 1);
    /* refused: not contiguous, two -1, wrong count, negative, -1 of nothing */
    tg_tensor t;
    tg_view_transpose(&t, base, 0, 1);
    ck_assert_int_eq(tg_view_reshape(&v, &t, TG_DIMS(120)), TG_ERR_ARG);
    assert_error(TG_ERR_ARG, "not contiguous");
    ck_assert_int_eq(tg_view_reshape(&v, base, TG_DIMS(-1, -1)), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_reshape(&v, base, TG_DIMS(7, 17)), TG_ERR_SHAPE);
    assert_error(TG_ERR_SHAPE, "(3,4,5,2)");
    ck_assert_int_eq(tg_view_reshape(&v, base, TG_DIMS(-3, -40)), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_view_reshape(&v, base, TG_DIMS(-1, 7)), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_view_reshape(&v, base, TG_DIMS(INT64_MAX, 4, 4)), TG_ERR_OVERFLOW);
    ck_assert_int_eq(tg_view_reshape(&v, base, 7, (int64_t[7]){1, 1, 1, 1, 1, 1, 120}),
                     TG_ERR_ARG);
    tg_tensor_free(base);
}
END_TEST

static void map_expand(const int64_t *v, int64_t *b, const void *ctx)
{
    /* base (3,1) seen as (2,3,4) */
    (void)ctx;
    b[0] = v[1];
    b[1] = 0;
}

START_TEST(expand_repeats_with_stride_zero)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(3, 1));
    tg_tensor v;
    ck_assert_int_eq(tg_view_expand(&v, base, TG_DIMS(2, 3, 4)), TG_OK);
    assert_shape(&v, TG_DIMS(2, 3, 4));
    ck_assert_int_eq(v.strides[0], 0);
    ck_assert_int_eq(v.strides[1], 1);
    ck_assert_int_eq(v.strides[2], 0);
    ck_assert_int_eq(check_view(&v, base, map_expand, NULL), 24);
    /* a write through one repeated element is seen by all of them */
    tg_tensor_set(&v, (int64_t[]){1, 2, 3}, 9.0);
    ck_assert(tg_tensor_get(&v, (int64_t[]){0, 2, 0}) == 9.0);
    ck_assert(tg_tensor_get(base, (int64_t[]){2, 0}) == 9.0);
    /* same shape: unchanged strides; size 1 to 0 is allowed, as in numpy */
    ck_assert_int_eq(tg_view_expand(&v, base, TG_DIMS(3, 1)), TG_OK);
    ck_assert_int_eq(v.strides[0], 1);
    ck_assert_int_eq(tg_view_expand(&v, base, TG_DIMS(3, 0)), TG_OK);
    ck_assert_int_eq(tg_tensor_numel(&v), 0);
    /* refused: a dimension that is not 1 cannot grow; fewer dims; negative */
    ck_assert_int_eq(tg_view_expand(&v, base, TG_DIMS(4, 2)), TG_ERR_SHAPE);
    assert_error(TG_ERR_SHAPE, "(3,1)");
    ck_assert_int_eq(tg_view_expand(&v, base, TG_DIMS(3)), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_view_expand(&v, base, TG_DIMS(-1, 3, 1)), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_view_expand(&v, base, TG_DIMS((int64_t)1 << 40, 3, (int64_t)1 << 40)),
                     TG_ERR_OVERFLOW);
    assert_error(TG_ERR_OVERFLOW, "tg_view_expand");
    /* a failed expand onto itself leaves the tensor as it was */
    tg_tensor self = *base;
    ck_assert_int_eq(tg_view_expand(&self, &self, TG_DIMS(3, -2)), TG_ERR_SHAPE);
    assert_shape(&self, TG_DIMS(3, 1));
    ck_assert_int_eq(tg_view_expand(&self, &self, TG_DIMS(2, 3, -1)), TG_ERR_SHAPE);
    assert_shape(&self, TG_DIMS(3, 1));
    ck_assert_int_eq(self.strides[0], 1);
    ck_assert_int_eq(tg_view_expand(&self, &self, TG_DIMS(2, 3, 5)), TG_OK);
    ck_assert_int_eq(tg_view_expand(&self, &self, TG_DIMS(2, 4, 5)), TG_ERR_SHAPE);
    assert_shape(&self, TG_DIMS(2, 3, 5));
    tg_tensor_free(base);
}
END_TEST

START_TEST(views_share_storage_and_gradient_root)
{
    tg_tensor *base = numbered(TG_F64, TG_DIMS(4, 5));
    ck_assert_int_eq(tg_tensor_requires_grad(base, true), TG_OK);
    ck_assert_ptr_eq(base->grad_root, base);
    tg_tensor views[6];
    ck_assert_int_eq(tg_view_transpose(&views[0], base, 0, 1), TG_OK);
    ck_assert_int_eq(tg_view_permute(&views[1], base, (int[]){1, 0}), TG_OK);
    ck_assert_int_eq(tg_view_slice(&views[2], base, 1, 1, 5, 3), TG_OK);
    ck_assert_int_eq(tg_view_select(&views[3], base, 0, -1), TG_OK);
    ck_assert_int_eq(tg_view_reshape(&views[4], base, TG_DIMS(2, 10)), TG_OK);
    ck_assert_int_eq(tg_view_expand(&views[5], base, TG_DIMS(3, 4, 5)), TG_OK);
    for (int k = 0; k < 6; k++) {
        ck_assert_ptr_eq(views[k].data, base->data);
        ck_assert_ptr_eq(views[k].grad_root, base); /* gradients reach the base */
        ck_assert_ptr_null(views[k].grad);          /* a view owns nothing */
        ck_assert_uint_eq(views[k].flags, 0);
        tg_tensor_free(&views[k]);                  /* and frees nothing */
    }
    /* detach: same elements, no gradient */
    tg_tensor d;
    tg_view_detach(&d, &views[2]);
    ck_assert_ptr_eq(d.data, base->data);
    ck_assert_ptr_null(d.grad_root);
    ck_assert_int_eq(d.offset, views[2].offset);
    ck_assert_int_eq(d.strides[1], 3);
    check_view(&d, base, map_slice, &(map_args){.dim = 1, .start = 1, .step = 3});
    /* writes through views land in the base */
    tg_tensor_set(&views[0], (int64_t[]){4, 1}, -1.0);
    ck_assert(tg_tensor_get(base, (int64_t[]){1, 4}) == -1.0);
    tg_tensor_set(&views[2], (int64_t[]){2, 1}, -2.0);
    ck_assert(tg_tensor_get(base, (int64_t[]){2, 4}) == -2.0);
    tg_tensor_set(&views[3], (int64_t[]){0}, -3.0);
    ck_assert(tg_tensor_get(base, (int64_t[]){3, 0}) == -3.0);
    tg_tensor_set(&views[4], (int64_t[]){1, 3}, -4.0);
    ck_assert(tg_tensor_get(base, (int64_t[]){2, 3}) == -4.0);
    /* views cannot own a gradient */
    ck_assert_int_eq(tg_tensor_requires_grad(&views[0], true), TG_ERR_ARG);
    assert_error(TG_ERR_ARG, "tg_tensor_requires_grad");
    ck_assert_int_eq(tg_tensor_requires_grad(NULL, true), TG_ERR_ARG);
    ck_assert_int_eq(tg_tensor_requires_grad(base, false), TG_OK);
    ck_assert_ptr_null(base->grad);
    ck_assert_ptr_null(base->grad_root);
    tg_tensor_free(base);
}
END_TEST

/* Row-select of a time slice of a transpose: the three compose. */
static void map_chain(const int64_t *v, int64_t *b, const void *ctx)
{
    /* base (3,4,5,2); t = transpose(0,2) -> (5,4,3,2); s = t[1:5:2] -> (2,4,3,2);
     * view = s[:, :, :, 1] -> (2,4,3) */
    (void)ctx;
    b[2] = 1 + 2 * v[0];
    b[1] = v[1];
    b[0] = v[2];
    b[3] = 1;
}

START_TEST(chained_views_compose)
{
    tg_tensor *base = numbered(TG_F32, TG_DIMS(3, 4, 5, 2));
    tg_tensor v;
    ck_assert_int_eq(tg_view_transpose(&v, base, 0, 2), TG_OK);
    ck_assert_int_eq(tg_view_slice(&v, &v, 0, 1, 5, 2), TG_OK);
    ck_assert_int_eq(tg_view_select(&v, &v, 3, 1), TG_OK);
    assert_shape(&v, TG_DIMS(2, 4, 3));
    ck_assert_int_eq(check_view(&v, base, map_chain, NULL), 24);
    tg_tensor *c = tg_tensor_copy(&v);
    ck_assert(tu_bitwise_equal(c, &v));
    tg_tensor_free(c);
    tg_tensor_free(base);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------- */

START_TEST(bad_shapes_are_refused_with_a_message)
{
    ck_assert_ptr_null(tg_tensor_zeros(TG_F64, TG_DIMS(3, -1)));
    assert_error(TG_ERR_SHAPE, "tg_tensor_zeros: dimension 1 is negative (-1)");
    ck_assert_ptr_null(tg_tensor_ones(TG_F32, 7, (int64_t[7]){1, 1, 1, 1, 1, 1, 1}));
    assert_error(TG_ERR_SHAPE, "7 dimensions");
    ck_assert_ptr_null(tg_tensor_zeros(TG_F64, -1, NULL));
    assert_error(TG_ERR_SHAPE, "-1 dimensions");
    ck_assert_ptr_null(tg_tensor_zeros(TG_F64, 2, NULL));
    assert_error(TG_ERR_ARG, "shape is NULL");
    ck_assert_ptr_null(tg_tensor_zeros((tg_dtype)3, TG_DIMS(2)));
    assert_error(TG_ERR_DTYPE, "unknown dtype");
    /* sizes whose byte count does not fit: refused before any allocation */
    const int64_t big = (int64_t)1 << 40;
    ck_assert_ptr_null(tg_tensor_zeros(TG_F64, TG_DIMS(big, big)));
    assert_error(TG_ERR_OVERFLOW, "tg_tensor_zeros: the shape's element count overflows");
    ck_assert_ptr_null(tg_tensor_full(TG_F32, TG_DIMS(big, 1 << 20, 1 << 4), 1.0));
    assert_error(TG_ERR_OVERFLOW, "tg_tensor_full");
    ck_assert_ptr_null(tg_tensor_zeros(TG_F64, TG_DIMS(INT64_MAX, 2)));
    assert_error(TG_ERR_OVERFLOW, "overflows");
    /* an empty dimension does not excuse strides that overflow */
    ck_assert_ptr_null(tg_tensor_zeros(TG_F64, TG_DIMS(0, big, big)));
    assert_error(TG_ERR_OVERFLOW, "overflows");
    int64_t numel = -1;
    ck_assert_int_eq(tg_check_shape("caller", TG_DIMS(big, big), &numel), TG_ERR_OVERFLOW);
    assert_error(TG_ERR_OVERFLOW, "caller");
    ck_assert_int_eq(numel, -1);
    ck_assert_int_eq(tg_check_shape("caller", TG_DIMS(4, 0, 9), &numel), TG_OK);
    ck_assert_int_eq(numel, 0);
    ck_assert_int_eq(tg_check_shape("caller", 0, NULL, &numel), TG_OK);
    ck_assert_int_eq(numel, 1);
}
END_TEST

START_TEST(bad_view_arguments_are_refused)
{
    tg_tensor *x = numbered(TG_F64, TG_DIMS(3, 4));
    tg_tensor v;
    ck_assert_int_eq(tg_view_transpose(&v, x, 0, 2), TG_ERR_ARG);
    assert_error(TG_ERR_ARG, "tg_view_transpose: dimension 2 is out of range for shape (3,4)");
    ck_assert_int_eq(tg_view_transpose(&v, x, -3, 0), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_transpose(NULL, x, 0, 1), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_transpose(&v, NULL, 0, 1), TG_ERR_ARG);
    assert_error(TG_ERR_ARG, "NULL");
    ck_assert_int_eq(tg_view_permute(&v, x, (int[]){0, 0}), TG_ERR_ARG);
    assert_error(TG_ERR_ARG, "not a permutation");
    ck_assert_int_eq(tg_view_permute(&v, x, (int[]){1, 2}), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_permute(&v, x, NULL), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_slice(&v, x, 0, 0, 2, 0), TG_ERR_ARG);
    assert_error(TG_ERR_ARG, "step");
    ck_assert_int_eq(tg_view_slice(&v, x, 0, 0, 2, -1), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_slice(&v, x, 5, 0, 2, 1), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_select(&v, x, 1, 4), TG_ERR_ARG);
    assert_error(TG_ERR_ARG, "index 4 is out of range for dimension 1 of (3,4)");
    ck_assert_int_eq(tg_view_select(&v, x, 0, -4), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_select(&v, x, 2, 0), TG_ERR_ARG);
    tg_tensor scalar;
    ck_assert_int_eq(tg_view_select(&scalar, x, 0, 1), TG_OK);
    ck_assert_int_eq(tg_view_select(&scalar, &scalar, 0, 1), TG_OK);
    ck_assert_int_eq(tg_view_select(&v, &scalar, 0, 0), TG_ERR_ARG); /* 0-d: no dims */
    ck_assert_int_eq(tg_view_reshape(&v, NULL, TG_DIMS(12)), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_reshape(&v, x, 2, NULL), TG_ERR_ARG);
    ck_assert_int_eq(tg_view_expand(&v, x, 2, NULL), TG_ERR_SHAPE);
    ck_assert_int_eq(tg_view_expand(&v, NULL, TG_DIMS(3, 4)), TG_ERR_ARG);
    tg_view_detach(NULL, x); /* nothing to do, no crash */
    tg_view_detach(&v, NULL);
    tg_tensor_free(NULL);
    tg_tensor_fill(NULL, 1.0);
    tg_tensor_zero_grad(NULL);
    tg_tensor_free(x);
}
END_TEST

START_TEST(every_status_has_its_own_name)
{
    /* Messages print these names, so each must be distinct and non-empty,
     * and a value outside the enum must not crash the lookup. */
    const tg_status all[] = {TG_OK,         TG_ERR_ARG,   TG_ERR_SHAPE,     TG_ERR_DTYPE,
                             TG_ERR_OVERFLOW, TG_ERR_NOMEM, TG_ERR_STATE, TG_ERR_NONFINITE,
                             TG_ERR_IO,     TG_ERR_FORMAT};
    const int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n; i++) {
        const char *name = tg_status_name(all[i]);
        ck_assert_ptr_nonnull(name);
        ck_assert_int_gt((int)strlen(name), 0);
        ck_assert_str_ne(name, "unknown status");
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(name, tg_status_name(all[j]));
    }
    ck_assert_str_eq(tg_status_name(TG_OK), "ok");
    ck_assert_str_eq(tg_status_name(TG_ERR_SHAPE), "shape error");
    ck_assert_str_eq(tg_status_name((tg_status)12345), "unknown status");
    /* The machine's memory is known here (Linux), and is not absurdly small. */
    ck_assert_uint_gt(tg_physical_memory(), (size_t)1 << 24);
}
END_TEST

/* The cgroup limit, read from a fake /proc/self/cgroup and mount point: the
 * least memory.max (v2) or memory.limit_in_bytes (v1) of the group and its
 * parents; "max", a missing file or no line for the controller mean none. */
static void fake_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (char *p = strchr(path + strlen(dir) + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    tu_write_file(path, text, strlen(text));
}

START_TEST(cgroup_memory_limits_are_read_up_the_tree)
{
    char dir[64] = "/tmp/tg_cgroup_XXXXXX", self[128], mount[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(self, sizeof self, "%s/self", dir);
    snprintf(mount, sizeof mount, "%s/fs", dir);
    const char *what = NULL;
    /* v2: the group says max, its parent 512 MiB, the root 1 GiB */
    fake_file(dir, "self", "0::/user/job\n");
    fake_file(dir, "fs/user/job/memory.max", "max\n");
    fake_file(dir, "fs/user/memory.max", "536870912\n");
    fake_file(dir, "fs/memory.max", "1073741824\n");
    ck_assert_uint_eq(tg_cgroup_memory_limit(self, mount, &what), (size_t)536870912);
    ck_assert_str_eq(what, "its cgroup's memory.max");
    /* v1 (as on this kind of machine): the memory controller's own line */
    fake_file(dir, "self", "5:cpu,cpuacct:/\n4:memory:/box/1\n0::/\n");
    fake_file(dir, "fs/memory/box/1/memory.limit_in_bytes", "268435456\n");
    fake_file(dir, "fs/memory/memory.limit_in_bytes", "9223372036854771712\n");
    ck_assert_uint_eq(tg_cgroup_memory_limit(self, mount, &what), (size_t)268435456);
    ck_assert_str_eq(what, "its cgroup's memory.limit_in_bytes");
    /* a controller list that merely contains the word, and no v2 line */
    fake_file(dir, "self", "4:nomemory,memoryx:/box/1\n");
    ck_assert_uint_eq(tg_cgroup_memory_limit(self, mount, &what), SIZE_MAX);
    /* no such file: no limit */
    ck_assert_uint_eq(tg_cgroup_memory_limit("/nonexistent/cgroup", mount, NULL), SIZE_MAX);
    /* the whole probe never exceeds the machine, and names what decides */
    ck_assert_uint_le(tg_memory_limit(&what), tg_physical_memory());
    ck_assert_ptr_nonnull(what);
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    ck_assert_int_eq(system(command), 0);
}
END_TEST

START_TEST(shape_strings)
{
    char buf[64];
    tg_tensor *a = tg_tensor_zeros(TG_F64, TG_DIMS(3, 4));
    tg_tensor *b = tg_tensor_zeros(TG_F64, TG_DIMS(5));
    tg_tensor *c = tg_tensor_zeros(TG_F64, 0, NULL);
    ck_assert_str_eq(tg_shape_str(a, buf, sizeof buf), "(3,4)");
    ck_assert_str_eq(tg_shape_str(b, buf, sizeof buf), "(5,)");
    ck_assert_str_eq(tg_shape_str(c, buf, sizeof buf), "()");
    ck_assert_str_eq(tg_shape_str(NULL, buf, sizeof buf), "NULL");
    ck_assert_str_eq(tg_shape_str(a, buf, 4), "(3,");
    ck_assert(tg_tensor_same_shape(a, a) && !tg_tensor_same_shape(a, b));
    tu_free_all((tg_tensor *[]){a, b, c}, 3);
}
END_TEST

/* ---- the printer: expected text is what numpy 1.24 printed for the same
 * values, e.g. repr(np.random.randn(2, 3)) after np.random.seed(1), followed
 * by "  # dtype shape". -------------------------------------------------------------- */

/* The printer's output as a string (caller frees). */
static char *printed(const char *name, const tg_tensor *t)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    ck_assert_ptr_nonnull(f);
    tg_tensor_print(f, name, t);
    fclose(f);
    return text;
}

static void assert_printed(const char *name, const tg_tensor *t, const char *want)
{
    char *got = printed(name, t);
    ck_assert_msg(strcmp(got, want) == 0, "printed:\n%s\nwanted:\n%s", got, want);
    free(got);
}

START_TEST(print_small_matrix_like_numpy)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(2, 3));
    assert_printed(NULL, x,
                   "array([[ 1.62434536, -0.61175641, -0.52817175],\n"
                   "       [-1.07296862,  0.86540763, -2.3015387 ]])  # f64 (2,3)\n");
    /* a transposed view, with a name that shifts the continuation lines:
     * numpy's np.array2string(x.T, separator=', ', prefix='W = array(') */
    tg_tensor t;
    tg_view_transpose(&t, x, 0, 1);
    assert_printed("W", &t,
                   "W = array([[ 1.62434536, -1.07296862],\n"
                   "           [-0.61175641,  0.86540763],\n"
                   "           [-0.52817175, -2.3015387 ]])  # f64 (3,2)\n");
    x->name = "x"; /* the tensor's own name when none is given */
    char *got = printed(NULL, x);
    ck_assert_msg(strncmp(got, "x = array([[ 1.62434536,", 24) == 0, "%s", got);
    free(got);
    tg_tensor_free(x);
}
END_TEST

START_TEST(print_scalars_empties_and_special_values)
{
    tg_tensor *s = tg_tensor_full(TG_F64, 0, NULL, 1.5);
    assert_printed(NULL, s, "array(1.5)  # f64 ()\n");
    tg_tensor *e = tg_tensor_zeros(TG_F64, TG_DIMS(0, 3));
    assert_printed("e", e, "e = array([])  # f64 (0,3)\n");
    tg_tensor *f = tg_tensor_from_doubles(TG_F32, TG_DIMS(3), (double[]){0.5, -INFINITY, NAN});
    /* repr(np.array([0.5, -np.inf, np.nan], dtype=np.float32)) */
    assert_printed(NULL, f, "array([ 0.5, -inf,  nan])  # f32 (3,)\n");
    /* repr(np.float32(0.1) * np.ones(1, np.float32)): shortest digits of the f32 */
    tg_tensor *g = tg_tensor_full(TG_F32, TG_DIMS(1), 0.1);
    assert_printed(NULL, g, "array([0.1])  # f32 (1,)\n");
    assert_printed("none", NULL, "none = NULL\n");
    tu_free_all((tg_tensor *[]){s, e, f, g}, 4);
}
END_TEST

START_TEST(print_summarises_large_tensors)
{
    /* repr(np.arange(2000.)): scientific, because max/min > 1000 among the
     * shown elements */
    tg_tensor *a = tg_tensor_arange(TG_F64, 0, 2000, 1);
    assert_printed(NULL, a,
                   "array([0.000e+00, 1.000e+00, 2.000e+00, ..., 1.997e+03, 1.998e+03,\n"
                   "       1.999e+03])  # f64 (2000,)\n");
    /* repr((np.arange(2000.) / 8 - 100).reshape(40, 50)), printed from a
     * reshape view */
    tg_tensor *b = tg_tensor_arange(TG_F64, -100, 150, 0.125);
    tg_tensor m;
    ck_assert_int_eq(tg_view_reshape(&m, b, TG_DIMS(40, 50)), TG_OK);
    assert_printed(NULL, &m,
                   "array([[-100.   ,  -99.875,  -99.75 , ...,  -94.125,  -94.   ,  -93.875],\n"
                   "       [ -93.75 ,  -93.625,  -93.5  , ...,  -87.875,  -87.75 ,  -87.625],\n"
                   "       [ -87.5  ,  -87.375,  -87.25 , ...,  -81.625,  -81.5  ,  -81.375],\n"
                   "       ...,\n"
                   "       [ 131.25 ,  131.375,  131.5  , ...,  137.125,  137.25 ,  137.375],\n"
                   "       [ 137.5  ,  137.625,  137.75 , ...,  143.375,  143.5  ,  143.625],\n"
                   "       [ 143.75 ,  143.875,  144.   , ...,  149.625,  149.75 ,  149.875]])"
                   "  # f64 (40,50)\n");
    /* exactly 1000 elements are not summarised */
    tg_tensor *c = tg_tensor_zeros(TG_F64, TG_DIMS(1000));
    char *got = printed(NULL, c);
    ck_assert_ptr_null(strstr(got, "..."));
    free(got);
    tu_free_all((tg_tensor *[]){a, b, c}, 3);
}
END_TEST

Suite *suite_tensor(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, zeros_ones_full_have_contiguous_layout_and_values);
    tcase_add_test(tc, zero_sized_dimensions_make_empty_tensors);
    tcase_add_test(tc, from_array_converts_either_source_dtype);
    tcase_add_test(tc, arange_counts_like_numpy);
    tcase_add_test(tc, copy_of_a_view_is_contiguous_and_independent);
    tcase_add_test(tc, wrap_uses_the_callers_memory);
    tcase_add_test(tc, element_access_follows_offset_and_strides);
    tcase_add_test(tc, contiguity_is_detected_for_every_kind_of_view);
    tcase_add_test(tc, copy_into_converts_dtypes_across_strides);
    tcase_add_test(tc, transpose_and_permute_move_strides);
    tcase_add_test(tc, slice_with_steps_and_negative_bounds);
    tcase_add_test(tc, select_drops_a_dimension);
    tcase_add_test(tc, reshape_of_contiguous_data_only);
    tcase_add_test(tc, expand_repeats_with_stride_zero);
    tcase_add_test(tc, views_share_storage_and_gradient_root);
    tcase_add_test(tc, chained_views_compose);
    tcase_add_test(tc, bad_shapes_are_refused_with_a_message);
    tcase_add_test(tc, bad_view_arguments_are_refused);
    tcase_add_test(tc, every_status_has_its_own_name);
    tcase_add_test(tc, shape_strings);
    tcase_add_test(tc, cgroup_memory_limits_are_read_up_the_tree);
    tcase_add_test(tc, print_small_matrix_like_numpy);
    tcase_add_test(tc, print_scalars_empties_and_special_values);
    tcase_add_test(tc, print_summarises_large_tensors);
    suite_add_tcase(s, tc);
    return s;
}
