/* The char_lm program: determinism, bit-exact resume, the dinosaur mode, and
 * clear refusals of bad options and files. The tests run the built program
 * (make test builds the examples first), so they check what a user runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define CHAR_LM "../" TG_BUILD_DIR "/examples/char_lm"
#define SHAKESPEARE "../examples/data/tinyshakespeare.txt"
/* A small model, so that each run takes a fraction of a second. */
#define SMALL                                                                                  \
    " --hidden 24 --embed 8 --batch 4 --seq 12 --print-every 1000 --eval-every 1000"           \
    " --sample-every 100000 --length 4 --svg '' " SHAKESPEARE

/* (Checkpoints hold parameters, Adam's moments, the carried states and the
 * generator: equal files, tu_assert_same_file, mean bit-identical training.) */
static char last_output[8192]; /* of the last run of train() */

static void train(const char *extra, const char *save)
{
    char command[1024];
    snprintf(command, sizeof command, CHAR_LM SMALL " %s --save %s", extra, save);
    int status = tu_run(command, last_output, sizeof last_output);
    ck_assert_msg(status == 0, "%s exited with %d:\n%s", command, status, last_output);
}

/* "smooth 3.1234" of the progress line of step `step`. */
static void smoothed_loss_at(int step, char *out, size_t size)
{
    char line[32];
    snprintf(line, sizeof line, "step %5d/", step);
    const char *at = strstr(last_output, line), *smooth = at ? strstr(at, "smooth ") : NULL;
    ck_assert_msg(smooth != NULL, "no progress line for step %d:\n%s", step, last_output);
    snprintf(out, size, "%.13s", smooth);
}

START_TEST(same_seed_gives_identical_parameters_with_one_or_two_threads)
{
    char a[64], b[64], c[64];
    snprintf(a, sizeof a, "/tmp/tg_lm_%d_a.ckpt", (int)getpid());
    snprintf(b, sizeof b, "/tmp/tg_lm_%d_b.ckpt", (int)getpid());
    snprintf(c, sizeof c, "/tmp/tg_lm_%d_c.ckpt", (int)getpid());
    train("--steps 100 --threads 1 --seed 5", a);
    train("--steps 100 --threads 1 --seed 5", b);
    tu_assert_same_file(a, b);
    train("--steps 100 --threads 2 --seed 5", c);
    tu_assert_same_file(a, c);
    /* And the seed matters: another seed gives another model. */
    train("--steps 100 --threads 1 --seed 6", b);
    size_t na, nb;
    unsigned char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    ck_assert(na != nb || memcmp(da, db, na) != 0);
    free(da);
    free(db);
    remove(a), remove(b), remove(c);
}
END_TEST

/* Sampling from the checkpoint works and starts with the prompt. */
static void assert_samples(const char *checkpoint)
{
    char command[256], out[4096];
    snprintf(command, sizeof command, CHAR_LM " --sample --load %s --prompt KING: --length 20",
             checkpoint);
    ck_assert_int_eq(tu_run(command, out, sizeof out), 0);
    ck_assert_msg(strncmp(out, "KING:", 5) == 0 && strlen(out) >= 26, "sample: %s", out);
}

START_TEST(resume_continues_bit_for_bit)
{
    char full[64], part[64], resumed[64], extra[128];
    snprintf(full, sizeof full, "/tmp/tg_lm_%d_full.ckpt", (int)getpid());
    snprintf(part, sizeof part, "/tmp/tg_lm_%d_part.ckpt", (int)getpid());
    snprintf(resumed, sizeof resumed, "/tmp/tg_lm_%d_resumed.ckpt", (int)getpid());
    for (int path = 0; path < 2; path++) {
        const char *p = path ? "--path fused" : "--path tape";
        char smooth_full[16], smooth_resumed[16];
        snprintf(extra, sizeof extra, "--steps 60 %s", p);
        train(extra, full);
        smoothed_loss_at(60, smooth_full, sizeof smooth_full);
        snprintf(extra, sizeof extra, "--steps 60 --stop-after 35 %s", p);
        train(extra, part);
        snprintf(extra, sizeof extra, "--steps 60 --resume %s %s", part, p);
        train(extra, resumed);
        tu_assert_same_file(full, resumed);
        /* the smoothed loss goes on where it stopped (it restarted at log V) */
        smoothed_loss_at(60, smooth_resumed, sizeof smooth_resumed);
        ck_assert_str_eq(smooth_resumed, smooth_full);
    }
    assert_samples(full);
    remove(full), remove(part), remove(resumed);
}
END_TEST

/* --dtype f64 trains an f64 model; its checkpoint says so, so that --resume
 * and --sample rebuild an f64 model from it without being told. */
START_TEST(an_f64_model_resumes_and_samples_from_its_checkpoint)
{
    char full[64], part[64], resumed[64], extra[192];
    snprintf(full, sizeof full, "/tmp/tg_lm_%d_f64_full.ckpt", (int)getpid());
    snprintf(part, sizeof part, "/tmp/tg_lm_%d_f64_part.ckpt", (int)getpid());
    snprintf(resumed, sizeof resumed, "/tmp/tg_lm_%d_f64_resumed.ckpt", (int)getpid());
    train("--steps 30 --dtype f64", full);
    train("--steps 30 --stop-after 12 --dtype f64", part);
    snprintf(extra, sizeof extra, "--steps 30 --resume %s", part);
    train(extra, resumed);
    tu_assert_same_file(full, resumed);
    assert_samples(full);
    /* and the f32 run is another model (the dtype is not ignored) */
    train("--steps 30", part);
    size_t na, nb;
    unsigned char *da = tu_read_file(full, &na), *db = tu_read_file(part, &nb);
    ck_assert(na != nb);
    free(da), free(db);
    remove(full), remove(part), remove(resumed);
}
END_TEST

START_TEST(dinosaur_mode_reproduces_the_course)
{
    char out[8192];
    int status = tu_run(CHAR_LM " --dinos --steps 2001 --path tape ../examples/data/dinos.txt", out, sizeof out);
    ck_assert_msg(status == 0, "%s", out);
    /* The course's first names at iteration 0, drawn from its untrained
     * network with np.random.seed(counter + seed): same init, same draws. */
    ck_assert_ptr_nonnull(strstr(out, "Iteration: 0, Loss: 23.09"));
    ck_assert_ptr_nonnull(strstr(out, "Nkzxwtdmfqoeyhsqwasjkjvu\nKneb\nKzxwtdmfqoeyhsqwasjkjvu\n"));
    ck_assert_ptr_nonnull(strstr(out, "Iteration: 2000, Loss: "));
}
END_TEST

START_TEST(bad_options_and_files_are_refused_clearly)
{
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"--hidden 0", "--hidden needs an integer in [1, 8192] (got '0')"},
        {"--hidden abc", "--hidden needs an integer in [1, 8192] (got 'abc')"},
        {"--hidden 99999999999", "--hidden needs an integer"},
        {"--seq -5", "--seq needs an integer in [1, 100000] (got '-5')"},
        {"--batch", "--batch needs a value"},
        {"--lr nan", "--lr needs a number"},
        {"--lr 1e400", "--lr needs a number"},
        {"--cell transformer", "--cell needs rnn, lstm or gru"},
        {"--path gpu", "--path needs tape or fused"},
        {"--dtype f16", "--dtype needs f32 or f64"},
        {"--mpi", "--mpi needs the MPI build: make mpi"},
        {"--frobnicate", "unknown option '--frobnicate'"},
        {"/nonexistent/corpus.txt", "cannot open '/nonexistent/corpus.txt'"},
        {"--resume /nonexistent/x.ckpt " SHAKESPEARE, "/nonexistent/x.ckpt"},
        {"--seq 5000 --batch 5000 ../examples/data/dinos.txt", "cannot fill one batch"},
        {"--sample --load /nonexistent/y.ckpt", "/nonexistent/y.ckpt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char command[512], out[8192];
        snprintf(command, sizeof command, CHAR_LM " --steps 1 %s", cases[i].args);
        int status = tu_run(command, out, sizeof out);
        ck_assert_msg(status == 1 || status == 2, "'%s' exited with %d:\n%s", cases[i].args,
                      status, out);
        ck_assert_msg(strstr(out, cases[i].message) != NULL, "'%s' said:\n%s\nexpected: %s",
                      cases[i].args, out, cases[i].message);
    }
}
END_TEST

Suite *suite_char_lm(void)
{
    Suite *s = suite_create("char_lm");
    TCase *tc = tcase_create("program");
    tcase_add_test(tc, same_seed_gives_identical_parameters_with_one_or_two_threads);
    tcase_add_test(tc, resume_continues_bit_for_bit);
    tcase_add_test(tc, an_f64_model_resumes_and_samples_from_its_checkpoint);
    tcase_add_test(tc, dinosaur_mode_reproduces_the_course);
    tcase_add_test(tc, bad_options_and_files_are_refused_clearly);
    suite_add_tcase(s, tc);
    return s;
}
