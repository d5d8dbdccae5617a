/* The generator against numpy's legacy stream, replayed from a fixture that
 * numpy wrote (tests/fixtures/make_rng_fixtures.py -> fixtures/rng.txt).
 * Doubles are compared bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* make test runs from tests/; also accept the repository root. */
static FILE *open_fixture(void)
{
    FILE *f = fopen("fixtures/rng.txt", "r");
    if (!f)
        f = fopen("tests/fixtures/rng.txt", "r");
    ck_assert_msg(f != NULL, "cannot open fixtures/rng.txt (run from tests/)");
    return f;
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Counts of checked values per kind of step, to prove the replay saw them. */
typedef struct {
    int seeds, randn, rand, mix, arrays, randint, shuffle, choice;
} replay_counts;

/* Split the rest of a line into whitespace-separated tokens (in place). */
static int tokenize(char *line, char **tok, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(line, " \t\n", &save); s && n < max; s = strtok_r(NULL, " \t\n", &save))
        tok[n++] = s;
    return n;
}

/* Index of the ":" token, which separates a step's arguments from its values. */
static int colon_at(char **tok, int n, int lineno)
{
    for (int i = 0; i < n; i++)
        if (strcmp(tok[i], ":") == 0)
            return i;
    ck_abort_msg("fixture line %d has no ':'", lineno);
    return -1;
}

static void check_double(double got, const char *want_text, int lineno, const char *what, int k)
{
    double want = strtod(want_text, NULL);
    ck_assert_msg(same_bits(got, want), "line %d: %s value %d: got %.17g, numpy %.17g", lineno,
                  what, k, got, want);
}

static void replay_array(tg_rng *rng, char **tok, int n, int c, int lineno, bool normal,
                         replay_counts *counts)
{
    int64_t rows = atoll(tok[1]), cols = atoll(tok[2]);
    ck_assert_int_eq(n - c - 1, rows * cols);
    tg_tensor *t = normal ? tg_tensor_randn(rng, TG_F64, TG_DIMS(rows, cols))
                          : tg_tensor_rand(rng, TG_F64, TG_DIMS(rows, cols));
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < rows * cols; i++)
        check_double(tg_tensor_get_flat(t, i), tok[c + 1 + i], lineno, tok[0], (int)i);
    counts->arrays += (int)(rows * cols);
    tg_tensor_free(t);
}

static void replay_line(tg_rng *rng, char *line, int lineno, replay_counts *counts)
{
    enum { MAX_TOKENS = 512 };
    char *tok[MAX_TOKENS];
    int n = tokenize(line, tok, MAX_TOKENS);
    if (n == 0 || tok[0][0] == '#')
        return;
    if (strcmp(tok[0], "seed") == 0) {
        ck_assert_int_eq(n, 2);
        tg_rng_seed(rng, (uint32_t)strtoull(tok[1], NULL, 10));
        counts->seeds++;
        return;
    }
    int c = colon_at(tok, n, lineno);
    if (strcmp(tok[0], "randn") == 0 || strcmp(tok[0], "rand") == 0) {
        bool normal = tok[0][4] == 'n';
        for (int k = c + 1; k < n; k++)
            check_double(normal ? tg_rng_randn(rng) : tg_rng_rand(rng), tok[k], lineno, tok[0],
                         k - c - 1);
        *(normal ? &counts->randn : &counts->rand) += n - c - 1;
    } else if (strcmp(tok[0], "mix") == 0) {
        for (int k = c + 1; k + 1 < n; k += 2) {
            bool normal = strcmp(tok[k], "n") == 0;
            check_double(normal ? tg_rng_randn(rng) : tg_rng_rand(rng), tok[k + 1], lineno,
                         normal ? "mix randn" : "mix rand", (k - c - 1) / 2);
            counts->mix++;
        }
    } else if (strcmp(tok[0], "randn_array") == 0 || strcmp(tok[0], "rand_array") == 0) {
        replay_array(rng, tok, n, c, lineno, tok[0][4] == 'n', counts);
    } else if (strcmp(tok[0], "randint") == 0) {
        uint64_t range = strtoull(tok[1], NULL, 10);
        for (int k = c + 1; k < n; k++) {
            uint64_t want = strtoull(tok[k], NULL, 10);
            uint32_t got = tg_rng_below(rng, range);
            ck_assert_msg(got == want, "line %d: randint(0, %llu) value %d: got %u, numpy %llu",
                          lineno, (unsigned long long)range, k - c - 1, got,
                          (unsigned long long)want);
            counts->randint++;
        }
    } else if (strcmp(tok[0], "shuffle") == 0) {
        int64_t len = atoll(tok[1]);
        ck_assert_int_eq(n - c - 1, len);
        int32_t *values = malloc(sizeof *values * (size_t)len);
        for (int64_t i = 0; i < len; i++)
            values[i] = (int32_t)i;
        tg_rng_shuffle_i32(rng, values, len);
        for (int64_t i = 0; i < len; i++)
            ck_assert_msg(values[i] == atoi(tok[c + 1 + i]),
                          "line %d: shuffle(%lld) position %lld: got %d, numpy %s", lineno,
                          (long long)len, (long long)i, values[i], tok[c + 1 + i]);
        counts->shuffle += (int)len;
        free(values);
    } else if (strcmp(tok[0], "choice") == 0) {
        int64_t len = atoll(tok[1]);
        ck_assert_int_eq(c, 2 + len);
        double probs[64];
        ck_assert_int_le(len, 64);
        for (int64_t i = 0; i < len; i++)
            probs[i] = strtod(tok[2 + i], NULL);
        for (int k = c + 1; k < n; k++) {
            int64_t got = tg_rng_choice(rng, probs, len);
            ck_assert_msg(got == atoll(tok[k]), "line %d: choice pick %d: got %lld, numpy %s",
                          lineno, k - c - 1, (long long)got, tok[k]);
            counts->choice++;
        }
    } else {
        ck_abort_msg("fixture line %d: unknown step '%s'", lineno, tok[0]);
    }
}

START_TEST(stream_matches_numpy_fixture)
{
    FILE *f = open_fixture();
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    replay_counts counts = {0};
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    while (getline(&line, &cap, f) != -1)
        replay_line(&rng, line, ++lineno, &counts);
    free(line);
    fclose(f);
    /* Every kind of step was replayed, for all six seeds. */
    ck_assert_int_eq(counts.seeds, 6 * 6);
    ck_assert_int_eq(counts.randn, 6 * 21);
    ck_assert_int_eq(counts.rand, 6 * 20);
    ck_assert_int_eq(counts.mix, 6 * 24);
    ck_assert_int_eq(counts.arrays, 6 * (15 + 8 + 3 + 4 + 1 + 4));
    ck_assert_int_eq(counts.randint, 6 * 11 * 8);
    ck_assert_int_eq(counts.shuffle, 6 * (1 + 2 + 5 + 10 + 52 + 100));
    ck_assert_int_eq(counts.choice, 6 * 6 * 12);
}
END_TEST

/* f32 tensors hold the f64 stream rounded to float, in the same order. */
START_TEST(f32_tensors_round_the_same_stream)
{
    tg_rng a, b;
    tg_rng_seed(&a, 3);
    tg_rng_seed(&b, 3);
    tg_tensor *x = tg_tensor_randn(&a, TG_F32, TG_DIMS(4, 5));
    tg_tensor *u = tg_tensor_rand(&a, TG_F32, TG_DIMS(7));
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(u);
    for (int64_t i = 0; i < 20; i++)
        ck_assert(((float *)x->data)[i] == (float)tg_rng_randn(&b));
    for (int64_t i = 0; i < 7; i++)
        ck_assert(((float *)u->data)[i] == (float)tg_rng_rand(&b));
    tg_tensor_free(x);
    tg_tensor_free(u);
}
END_TEST

/* A view is filled in C order of its own shape, whatever its strides. */
START_TEST(fill_of_a_transposed_view_follows_its_shape)
{
    tg_tensor *base = tg_tensor_zeros(TG_F64, TG_DIMS(3, 4));
    tg_tensor view;
    ck_assert_int_eq(tg_view_transpose(&view, base, 0, 1), TG_OK);
    tg_rng a, b;
    tg_rng_seed(&a, 42);
    tg_rng_seed(&b, 42);
    tg_rng_fill_randn(&a, &view);
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 3; j++)
            ck_assert(same_bits(tg_tensor_get(base, (int64_t[]){j, i}), tg_rng_randn(&b)));
    tg_rng_fill_uniform(&a, &view, -2.0, 3.0);
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 3; j++) {
            double want = -2.0 + 5.0 * tg_rng_rand(&b);
            ck_assert(same_bits(tg_tensor_get(base, (int64_t[]){j, i}), want));
            ck_assert(want >= -2.0 && want < 3.0);
        }
    tg_tensor_free(base);
}
END_TEST

/* Weights need not sum to 1: scaling them by a power of two changes no
 * probability and no pick; zero, negative and NaN weights are never picked. */
START_TEST(choice_weights_and_edge_cases)
{
    tg_rng a, b;
    tg_rng_seed(&a, 7);
    tg_rng_seed(&b, 7);
    double p[] = {0.1, 0.2, 0.3, 0.4}, twice[] = {0.2, 0.4, 0.6, 0.8};
    for (int k = 0; k < 200; k++)
        ck_assert_int_eq(tg_rng_choice(&a, p, 4), tg_rng_choice(&b, twice, 4));
    double odd[] = {-1.0, NAN, 0.0, 2.0, INFINITY};
    for (int k = 0; k < 50; k++)
        ck_assert_int_eq(tg_rng_choice(&a, odd, 5), 3);
    double none[] = {0.0, -3.0};
    ck_assert_int_eq(tg_rng_choice(&a, none, 2), -1);
    ck_assert_int_eq(tg_rng_choice(&a, p, 0), -1);
    ck_assert_int_eq(tg_rng_choice(&a, NULL, 4), -1);
}
END_TEST

/* numpy's randint(0, 1) consumes nothing, so neither does tg_rng_below(1). */
START_TEST(below_one_draws_nothing)
{
    tg_rng a, b;
    tg_rng_seed(&a, 5);
    tg_rng_seed(&b, 5);
    for (int k = 0; k < 10; k++)
        ck_assert_uint_eq(tg_rng_below(&a, 1), 0);
    ck_assert_uint_eq(tg_rng_u32(&a), tg_rng_u32(&b));
    tg_tensor *t = tg_tensor_randn(NULL, TG_F64, TG_DIMS(2));
    ck_assert_ptr_null(t);
    ck_assert_int_eq(tg_last_status(), TG_ERR_ARG);
}
END_TEST

Suite *suite_rng(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, stream_matches_numpy_fixture);
    tcase_add_test(tc, f32_tensors_round_the_same_stream);
    tcase_add_test(tc, fill_of_a_transposed_view_follows_its_shape);
    tcase_add_test(tc, choice_weights_and_edge_cases);
    tcase_add_test(tc, below_one_draws_nothing);
    suite_add_tcase(s, tc);
    return s;
}
