/* Character-level text datasets: vocabulary, encoding, splits, batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optim/text.h"
#include "util.h"

/* A temporary file holding n bytes; returns its path in buf. */
static const char *temp_file(char *buf, size_t size, const void *bytes, size_t n)
{
    snprintf(buf, size, "/tmp/tg_text_%d_%zu.txt", (int)getpid(), n);
    FILE *f = fopen(buf, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return buf;
}

START_TEST(vocabulary_is_the_sorted_distinct_bytes)
{
    const char *s = "hello world";
    tg_text *t = tg_text_from_bytes(s, strlen(s));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->vocab_size, 8); /* ' ' d e h l o r w */
    ck_assert_int_eq(t->itos[0], ' ');
    ck_assert_int_eq(t->itos[7], 'w');
    ck_assert_int_eq(tg_text_id(t, 'h'), 3);
    ck_assert_int_eq(tg_text_id(t, 'z'), -1);
    ck_assert_int_eq(t->n, 11);
    char back[12] = {0};
    ck_assert_int_eq(tg_text_decode(t, t->ids, 11, back), TG_OK);
    ck_assert_str_eq(back, s);
    int32_t ids[3];
    ck_assert_int_eq(tg_text_encode(t, "low", 3, ids), TG_OK);
    ck_assert_int_eq(ids[0], tg_text_id(t, 'l'));
    ck_assert_int_eq(tg_text_encode(t, "lax", 3, ids), TG_ERR_ARG);
    ck_assert_str_eq(tg_last_error(),
                     "tg_text_encode: byte 0x61 ('a') at position 1 is not in the vocabulary");
    ck_assert_int_eq(tg_text_decode(t, (const int32_t[]){1, 8}, 2, back), TG_ERR_ARG);
    tg_text_free(t);
}
END_TEST

START_TEST(bad_files_get_clear_errors)
{
    char path[128];
    ck_assert_ptr_null(tg_text_load("/nonexistent/dir/corpus.txt"));
    ck_assert_int_eq(tg_last_status(), TG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "cannot open '/nonexistent/dir/corpus.txt'"));

    temp_file(path, sizeof path, "", 0);
    ck_assert_ptr_null(tg_text_load(path));
    ck_assert_int_eq(tg_last_status(), TG_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "empty"));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), path));
    unlink(path);

    temp_file(path, sizeof path, "aaaaaaa", 7);
    ck_assert_ptr_null(tg_text_load(path));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "single distinct byte (0x61)"));
    unlink(path);

    /* A directory opens on Linux but cannot be read. */
    ck_assert_ptr_null(tg_text_load("/tmp"));
    ck_assert_int_ne(tg_last_status(), TG_OK);
}
END_TEST

START_TEST(files_load_as_bytes)
{
    char path[128];
    const unsigned char bytes[] = {0, 255, 10, 0, 'A'};
    temp_file(path, sizeof path, bytes, sizeof bytes);
    tg_text *t = tg_text_load(path);
    unlink(path);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->vocab_size, 4);
    ck_assert_int_eq(t->ids[1], 3); /* 0xff is the largest byte */
    ck_assert_int_eq(t->ids[3], 0);
    tg_text_free(t);
}
END_TEST

START_TEST(split_keeps_the_last_fraction_for_validation)
{
    int64_t train, val;
    ck_assert_int_eq(tg_text_split(1000, 0.05, &train, &val), TG_OK);
    ck_assert_int_eq(train, 950);
    ck_assert_int_eq(val, 50);
    ck_assert_int_eq(tg_text_split(3, 0.5, &train, &val), TG_ERR_ARG);
    ck_assert_int_eq(tg_text_split(1000, 1.0, &train, &val), TG_ERR_ARG);
}
END_TEST

/* ids 0..n-1, so every batch shows exactly which windows it took. */
static int32_t *counting(int64_t n)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)i;
    return ids;
}

START_TEST(shuffled_batches_follow_numpys_shuffle)
{
    /* 12 windows of T=4 (+1): 49 ids; m = 3, so 4 batches an epoch. */
    int32_t *ids = counting(49);
    tg_batcher *b = tg_batcher_new(ids, 49, 3, 4, TG_BATCH_SHUFFLED, 7);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(tg_batcher_batches_per_epoch(b), 4);
    /* np.random.seed(7); w = np.arange(12); np.random.shuffle(w), then once more */
    const int epoch1[12] = {7, 10, 2, 5, 0, 1, 11, 8, 3, 6, 9, 4};
    const int epoch2[12] = {1, 5, 2, 3, 11, 9, 0, 4, 6, 7, 8, 10};
    int32_t in[12], tg[12];
    for (int k = 0; k < 8; k++) {
        ck_assert_int_eq(tg_batcher_next(b, in, tg), TG_OK);
        for (int i = 0; i < 3; i++) {
            int w = (k < 4 ? epoch1 : epoch2)[(k % 4) * 3 + i];
            for (int t = 0; t < 4; t++) {
                ck_assert_int_eq(in[i * 4 + t], w * 4 + t);
                ck_assert_int_eq(tg[i * 4 + t], w * 4 + t + 1);
            }
        }
    }
    /* Seeking reproduces the same batches. */
    int32_t again[12], again_tg[12];
    tg_batcher_seek(b, 5);
    tg_batcher_next(b, again, again_tg);
    tg_batcher *c = tg_batcher_new(ids, 49, 3, 4, TG_BATCH_SHUFFLED, 7);
    for (int k = 0; k < 6; k++)
        tg_batcher_next(c, in, tg);
    ck_assert_mem_eq(again, in, sizeof in);
    ck_assert_int_eq(tg_batcher_position(c), 6);
    tg_batcher_free(b);
    tg_batcher_free(c);
    free(ids);
}
END_TEST

START_TEST(stream_batches_continue_each_row)
{
    /* 2 streams of 20 ids from 41; T = 5 gives 4 batches an epoch. */
    int32_t *ids = counting(41);
    tg_batcher *b = tg_batcher_new(ids, 41, 2, 5, TG_BATCH_STREAM, 0);
    ck_assert_int_eq(tg_batcher_batches_per_epoch(b), 4);
    int32_t in[10], tg[10];
    for (int k = 0; k < 5; k++) {
        tg_batcher_next(b, in, tg);
        for (int i = 0; i < 2; i++)
            for (int t = 0; t < 5; t++) {
                ck_assert_int_eq(in[i * 5 + t], i * 20 + (k % 4) * 5 + t);
                ck_assert_int_eq(tg[i * 5 + t], in[i * 5 + t] + 1);
            }
    }
    tg_batcher_free(b);
    free(ids);
}
END_TEST

START_TEST(too_little_text_is_refused)
{
    int32_t *ids = counting(10);
    ck_assert_ptr_null(tg_batcher_new(ids, 10, 4, 5, TG_BATCH_SHUFFLED, 1));
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "cannot fill one batch of 4 sequences of 5"));
    ck_assert_ptr_null(tg_batcher_new(ids, 10, 0, 5, TG_BATCH_STREAM, 1));
    ck_assert_ptr_null(tg_batcher_new(NULL, 10, 1, 1, TG_BATCH_STREAM, 1));
    free(ids);
}
END_TEST

Suite *suite_text(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, vocabulary_is_the_sorted_distinct_bytes);
    tcase_add_test(tc, bad_files_get_clear_errors);
    tcase_add_test(tc, files_load_as_bytes);
    tcase_add_test(tc, split_keeps_the_last_fraction_for_validation);
    tcase_add_test(tc, shuffled_batches_follow_numpys_shuffle);
    tcase_add_test(tc, stream_batches_continue_each_row);
    tcase_add_test(tc, too_little_text_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
