/* examples/classify_words: a short training run (its output, its
 * checkpoint, the same seed giving the same model), the saved model
 * classifying a file and standard input with the accuracy the training run
 * reported, and the refused inputs. Steps, not seconds: nothing here
 * depends on time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define PROGRAM "../" TG_BUILD_DIR "/examples/classify_words"
#define WORDS "../examples/data/words/words.tsv"
#define SHORT_RUN PROGRAM " --steps 60 --seconds 0 --threads 1 --print-every 20 --validation 1000"

static void temp_path(char *path, size_t size, const char *tag)
{
    snprintf(path, size, "/tmp/tg_words_%d_%s", (int)getpid(), tag);
    remove(path);
}

/* The last line of out, without its newline. */
static const char *last_line(char *out)
{
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    char *line = strrchr(out, '\n');
    return line ? line + 1 : out;
}

/* The last `lines` lines of words.tsv (which ends with a newline), the
 * held-out part, in a file of their own. */
static void write_tail(const char *path, int lines)
{
    size_t n, at;
    unsigned char *data = tu_read_file(WORDS, &n);
    int newlines = 0;
    for (at = n; at > 0; at--) /* stop just after the newline before those lines */
        if (data[at - 1] == '\n' && ++newlines == lines + 1)
            break;
    tu_write_file(path, data + at, n - at);
    free(data);
}

START_TEST(training_reports_saves_and_the_model_classifies)
{
    static char out[1 << 16], again[1 << 16];
    char ckpt[128], ckpt2[128], tail[128], command[1024];
    temp_path(ckpt, sizeof ckpt, "a.ckpt");
    temp_path(ckpt2, sizeof ckpt2, "b.ckpt");
    temp_path(tail, sizeof tail, "tail.tsv");
    snprintf(command, sizeof command, SHORT_RUN " --save %s " WORDS, ckpt);
    ck_assert_msg(tu_run(command, out, sizeof out) == 0, "%s", out);
    static const char *expected[] = {"24000 training, 1000 validation", "bidirectional gru",
                                     "fused path", "step    20  loss", "step    60  loss",
                                     "dutch ", "english ", "polish ", "portuguese ", "spanish ",
                                     "checkpoint: "};
    for (size_t k = 0; k < sizeof expected / sizeof expected[0]; k++)
        ck_assert_msg(strstr(out, expected[k]) != NULL, "no '%s' in:\n%s", expected[k], out);
    const char *last = last_line(out);
    double accuracy = -1;
    char rest[8] = "";
    ck_assert_msg(sscanf(last, "validation accuracy %lf %7s", &accuracy, rest) == 2 &&
                      strcmp(rest, "%") == 0,
                  "last line: '%s'", last);
    ck_assert_msg(accuracy > 50 && accuracy <= 100, "%s", last); /* guessing: 20 % */

    /* the same seed: the same model, bit for bit */
    snprintf(command, sizeof command, SHORT_RUN " --save %s " WORDS, ckpt2);
    ck_assert_int_eq(tu_run(command, again, sizeof again), 0);
    ck_assert_str_eq(last_line(again), last);
    size_t na, nb;
    unsigned char *a = tu_read_file(ckpt, &na), *b = tu_read_file(ckpt2, &nb);
    ck_assert(na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);

    /* the saved model on the held-out words: the accuracy training reported */
    write_tail(tail, 1000);
    snprintf(command, sizeof command, PROGRAM " --load %s %s", ckpt, tail);
    ck_assert_msg(tu_run(command, again, sizeof again) == 0, "%s", again);
    char want[64];
    snprintf(want, sizeof want, "accuracy %.1f %% (", accuracy);
    ck_assert_msg(strncmp(last_line(again), want, strlen(want)) == 0, "'%s' after '%s'",
                  last_line(again), last);
    ck_assert_ptr_nonnull(strstr(last_line(again), "of 1000 labelled words)"));

    /* words alone on standard input: one language per line, no accuracy */
    snprintf(command, sizeof command, "printf 'hola\\nprzepraszam\\n\\nhello\\r\\n' | "
             PROGRAM " --load %s -", ckpt);
    ck_assert_int_eq(tu_run(command, again, sizeof again), 0);
    ck_assert(strncmp(again, "hola\t", 5) == 0);
    ck_assert_ptr_nonnull(strstr(again, "\nprzepraszam\t"));
    ck_assert_ptr_nonnull(strstr(again, "\nhello\t"));
    ck_assert_ptr_null(strstr(again, "accuracy"));
    remove(ckpt), remove(ckpt2), remove(tail);
}
END_TEST

/* _i indexes the rows: a clear message and a non-zero status. */
static const struct {
    const char *input; /* written to a file, then passed; NULL: the command as is */
    const char *args;  /* after the program; %s: that file */
    int status;
    const char *message;
} refused[] = {
    {"hola\tspanish\ntlhIngan\tklingon\n", "--steps 1 --seconds 0 %s", 1,
     "line 2: a language other than dutch, english, polish, portuguese or spanish"},
    {"hola\tspanish\nhello\n", "--steps 1 --seconds 0 %s", 1, "line 2: no language after a tab"},
    {"\tspanish\n", "--steps 1 --seconds 0 %s", 1, "line 1: an empty word"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\tenglish\n",
     "--steps 1 --seconds 0 %s", 1, "line 1: a word longer than 64 bytes"},
    {"hola\tspanish\nhello\tenglish\n", "--steps 1 --seconds 0 %s", 1,
     "holds 2 words, not more than --validation 5000"},
    {NULL, "--steps 1 --seconds 0 /tmp", 1, "cannot read /tmp: not a regular file"},
    {NULL, "--steps 1 --seconds 0 /nonexistent/words.tsv", 1,
     "cannot read /nonexistent/words.tsv: No such file or directory"},
    {NULL, "--load /nonexistent.ckpt -", 1, "checkpoint /nonexistent.ckpt"},
    {NULL, "--seconds 0", 2, "--seconds 0 and --steps 0: training would never end"},
    {NULL, "--dropout 1", 2, "--dropout needs a number in [0, 0.99]"},
    {NULL, "--path gpu", 2, "--path needs tape or fused"},
};

START_TEST(bad_inputs_are_refused_clearly)
{
    char path[128], args[512], command[1024], out[4096];
    temp_path(path, sizeof path, "input.tsv");
    if (refused[_i].input)
        tu_write_file(path, refused[_i].input, strlen(refused[_i].input));
    snprintf(args, sizeof args, refused[_i].args, path);
    snprintf(command, sizeof command, PROGRAM " --save '' %s", args);
    ck_assert_int_eq(tu_run(command, out, sizeof out), refused[_i].status);
    ck_assert_msg(strstr(out, refused[_i].message) != NULL, "'%s' lacks '%s'", out,
                  refused[_i].message);
    remove(path);
}
END_TEST

Suite *suite_words(void)
{
    Suite *s = suite_create("words");
    TCase *tc = tcase_create("classify_words");
    tcase_add_test(tc, training_reports_saves_and_the_model_classifies);
    tcase_add_loop_test(tc, bad_inputs_are_refused_clearly, 0,
                        (int)(sizeof refused / sizeof refused[0]));
    suite_add_tcase(s, tc);
    return s;
}
