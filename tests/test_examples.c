/* The teaching examples: each test runs the built program (make test builds
 * the examples first) and checks the claim it teaches, with small options
 * where the claim allows. Also the tape picture, tg_tape_dot, in-process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define PROGRAM(name) "../" TG_BUILD_DIR "/examples/" name

enum { OUTPUT_MAX = 1 << 16 };

/* Run a command (stderr folded in); its output, malloc'ed, and exit status. */
static char *run_program(const char *command, int *status)
{
    char *out = malloc(OUTPUT_MAX);
    ck_assert_ptr_nonnull(out);
    *status = tu_run(command, out, OUTPUT_MAX);
    return out;
}

/* The end of a long output: Check refuses very long failure messages. */
static const char *tail(const char *out)
{
    size_t n = strlen(out);
    return n > 1500 ? out + n - 1500 : out;
}

/* Run and insist on exit status 0. */
static char *run_ok(const char *command)
{
    int status;
    char *out = run_program(command, &status);
    ck_assert_msg(status == 0, "%s exited with %d:\n%s", command, status, tail(out));
    return out;
}

/* The number after `label` in text (the first occurrence after `from`). */
static double number_after(const char *text, const char *label)
{
    const char *at = strstr(text, label);
    ck_assert_msg(at != NULL, "'%s' not in the output:\n%s", label, tail(text));
    char *end;
    double v = strtod(at + strlen(label), &end);
    ck_assert_msg(end != at + strlen(label), "no number after '%s'", label);
    return v;
}

/* ---- course_rnn ------------------------------------------------------------------------- */

/* What the notebook prints (shared/seeds/003_..., the outputs of In [3], In
 * [5], In [11], In [30] and In [42]), line by line. */
static const char *const notebook[] = {
    "a_next[4] = ",
    " [ 0.59584544  0.18141802  0.61311866  0.99808218  0.85016201  0.99980978",
    " -0.18887155  0.99815551  0.6531151   0.82872037]",
    "a_next.shape = ",
    " (5, 10)",
    "yt_pred[1] =",
    " [0.9888161  0.01682021 0.21140899 0.36817467 0.98988387 0.88945212",
    " 0.36920224 0.9966312  0.9982559  0.17746526]",
    "yt_pred.shape = ",
    " (2, 10)",
    "All tests passed",
    "a[4][1] = ",
    " [-0.99999375  0.77911235 -0.99861469 -0.99833267]",
    "a.shape = ",
    " (5, 10, 4)",
    "y_pred[1][3] =",
    " [0.79560373 0.86224861 0.11118257 0.81515947]",
    "y_pred.shape = ",
    " (2, 10, 4)",
    "caches[1][1][3] =",
    " [-1.1425182  -0.34934272 -0.20889423  0.58662319]",
    "len(caches) = ",
    " 2",
    "All tests passed",
    "a_next[4] = ",
    " [-0.66408471  0.0036921   0.02088357  0.22834167 -0.85575339  0.00138482",
    "  0.76566531  0.34631421 -0.00215674  0.43827275]",
    "a_next.shape =  (5, 10)",
    "c_next[2] = ",
    " [ 0.63267805  1.00570849  0.35504474  0.20690913 -1.64566718  0.11832942",
    "  0.76449811 -0.0981561  -0.74348425 -0.26810932]",
    "c_next.shape =  (5, 10)",
    "yt[1] = [0.79913913 0.15986619 0.22412122 0.15606108 0.97057211 0.31146381",
    " 0.00943007 0.12666353 0.39380172 0.07828381]",
    "yt.shape =  (2, 10)",
    "cache[1][3] =",
    " [-0.16263996  1.03729328  0.72938082 -0.54101719  0.02752074 -0.30821874",
    "  0.07651101 -1.03752894  1.41219977 -0.37647422]",
    "len(cache) =  10",
    "All tests passed",
    "a[4][3][6] =  0.1721177675329167",
    "a.shape =  (5, 10, 7)",
    "y[1][4][3] = 0.9508734618501101",
    "y.shape =  (2, 10, 7)",
    "caches[1][1][1] =",
    " [ 0.82797464  0.23009474  0.76201118 -0.22232814 -0.20075807  0.18656139",
    "  0.41005165]",
    "c[1][2][1] -0.8555449167181983",
    "len(caches) =  2",
    "All tests passed",
    "gradients[\"dxt\"][1][2] = -1.3872130506020928",
    "gradients[\"dxt\"].shape = (3, 10)",
    "gradients[\"da_prev\"][2][3] = -0.1523994937739543",
    "gradients[\"da_prev\"].shape = (5, 10)",
    "gradients[\"dWax\"][3][1] = 0.41077282493545836",
    "gradients[\"dWax\"].shape = (5, 3)",
    "gradients[\"dWaa\"][1][2] = 1.1503450668497135",
    "gradients[\"dWaa\"].shape = (5, 5)",
    "gradients[\"dba\"][4] = [0.20023491]",
    "gradients[\"dba\"].shape = (5, 1)",
};

/* A line ending in a float printed with all its digits ("... = -0.152399...") */
static bool full_precision(const char *line, double *value, size_t *prefix)
{
    const char *space = strrchr(line, ' ');
    if (!space)
        return false;
    char *end;
    *value = strtod(space + 1, &end);
    int digits = 0;
    for (const char *c = space + 1; *c; c++)
        digits += *c >= '0' && *c <= '9';
    *prefix = (size_t)(space - line);
    return *end == '\0' && end != space + 1 && digits >= 15;
}

/* Every line of the notebook appears in the output, in order, character for
 * character; except that the last digits of a float printed in full depend
 * on the order of a sum (numpy calls BLAS), so those agree to 1e-15. */
START_TEST(course_rnn_prints_the_notebooks_numbers)
{
    char *out = run_ok(PROGRAM("course_rnn"));
    const char *cursor = out;
    size_t n = sizeof notebook / sizeof *notebook;
    for (size_t k = 0; k < n; k++) {
        const char *want = notebook[k];
        double expected;
        size_t prefix;
        bool numeric = full_precision(want, &expected, &prefix);
        bool found = false;
        while (*cursor && !found) {
            const char *eol = strchr(cursor, '\n');
            size_t len = eol ? (size_t)(eol - cursor) : strlen(cursor);
            if (numeric)
                found = len > prefix && strncmp(cursor, want, prefix + 1) == 0 &&
                        fabs(strtod(cursor + prefix + 1, NULL) - expected) <=
                            1e-15 * fmax(1, fabs(expected));
            else
                found = len == strlen(want) && strncmp(cursor, want, len) == 0;
            cursor = eol ? eol + 1 : cursor + len;
        }
        ck_assert_msg(found, "the notebook's line %zu '%s' is missing (in order)", k + 1, want);
    }
    /* Exercises 6 and 8: the fused backward equals the notebook's algorithm. */
    const char *chains[] = {"chained rnn_cell_backward", "chained lstm_cell_backward"};
    for (int k = 0; k < 2; k++) {
        const char *line = strstr(out, chains[k]);
        ck_assert_msg(line != NULL, "'%s' missing:\n%s", chains[k], tail(out));
        ck_assert_double_lt(number_after(line, "max |difference| "), 1e-12);
    }
    free(out);
}
END_TEST

/* ---- gradcheck_lesson --------------------------------------------------------------------- */

START_TEST(gradcheck_lesson_catches_the_seed_004_bug)
{
    char *out = run_ok(PROGRAM("gradcheck_lesson"));
    /* the ops and the correct custom op pass, the buggy one fails on Waa */
    const char *first = strstr(out, "gradcheck passed");
    ck_assert_msg(first && strstr(first + 1, "gradcheck passed"), "%s", tail(out));
    const char *failed = strstr(out, "gradcheck FAILED");
    ck_assert_msg(failed && strstr(failed, " at Waa["), "%s", tail(out));
    ck_assert_ptr_nonnull(strstr(out, "caught: the gradient of Waa is wrong"));
    /* per tensor: Waa alone is wrong */
    static const char *const names[] = {"xt", "a_prev", "Wax", "Waa", "ba"};
    const char *table = strstr(out, "per tensor");
    ck_assert_ptr_nonnull(table);
    for (int k = 0; k < 5; k++) {
        char row[32];
        snprintf(row, sizeof row, "\n   %-7s max error", names[k]);
        const char *at = strstr(table, row);
        ck_assert_msg(at != NULL, "no row for %s:\n%s", names[k], tail(table));
        const char *eol = strchr(at + 1, '\n');
        bool wrong = strstr(at, "WRONG") && (!eol || strstr(at, "WRONG") < eol);
        ck_assert_msg(wrong == (k == 3), "%s: %.80s", names[k], at);
    }
    /* the correct rule gives the notebook's dWaa[1][2]; the buggy one the weight */
    ck_assert_double_eq_tol(number_after(out, "the correct rule  "), 1.1503450668497135, 1e-15);
    ck_assert_double_eq_tol(number_after(out, "seed 004's rule   "), 0.4034916417908, 1e-12);
    free(out);
}
END_TEST

/* ---- tape_vs_fused -------------------------------------------------------------------------- */

START_TEST(tape_vs_fused_paths_agree_in_f64)
{
    char *out = run_ok(PROGRAM("tape_vs_fused") " --hidden 12 --seq 6 --batch 3 --repeat 1");
    /* one verdict per cell, elementwise relative differences below 1e-10 */
    const char *at = out;
    for (int cell = 0; cell < 2; cell++) {
        at = strstr(at, "largest relative difference ");
        ck_assert_msg(at != NULL, "verdict %d missing:\n%s", cell, tail(out));
        double worst = number_after(at, "largest relative difference ");
        ck_assert_msg(worst < 1e-10, "relative difference %g:\n%s", worst, tail(out));
        at++;
    }
    static const char *const rows[] = {"\n  x ", "\n  l0.Wax ", "\n  l0.Waa ", "\n  l0.ba ",
                                       "\n  l0.Wf ", "\n  l0.Wo ", "\n  l0.bc ", "\n  Wy ",
                                       "\n  by "};
    for (size_t k = 0; k < sizeof rows / sizeof *rows; k++)
        ck_assert_msg(strstr(out, rows[k]) != NULL, "no row '%s':\n%s", rows[k] + 1, tail(out));
    /* timings per path, the tape's size, the reasons and the profile */
    ck_assert_ptr_nonnull(strstr(out, "\nrnn       12  tape "));
    ck_assert_ptr_nonnull(strstr(out, "\nlstm      12  fused "));
    ck_assert_ptr_nonnull(strstr(out, "Why the fused path is faster"));
    ck_assert_ptr_nonnull(strstr(out, "tg_matmul"));
    ck_assert_ptr_nonnull(strstr(out, "forward ms"));
    free(out);
    /* and f32 agrees normwise; bad options are refused */
    free(run_ok(PROGRAM("tape_vs_fused") " --hidden 8 --seq 4 --batch 2 --repeat 1 --dtype f32"));
    int status;
    out = run_program(PROGRAM("tape_vs_fused") " --dtype f16", &status);
    ck_assert_int_eq(status, 2);
    ck_assert_ptr_nonnull(strstr(out, "--dtype needs f32 or f64"));
    free(out);
    out = run_program(PROGRAM("tape_vs_fused") " --dtpye f32", &status);
    ck_assert_int_eq(status, 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown option '--dtpye'"));
    ck_assert_ptr_nonnull(strstr(out, "usage: tape_vs_fused"));
    free(out);
}
END_TEST

/* ---- vanishing ------------------------------------------------------------------------------ */

START_TEST(vanishing_lstm_beats_rnn_at_the_longest_length)
{
    char svg[64], command[256];
    snprintf(svg, sizeof svg, "/tmp/tg_vanishing_%d.svg", (int)getpid());
    snprintf(command, sizeof command, PROGRAM("vanishing") " --lengths 50 --svg %s", svg);
    char *out = run_ok(command);
    double rnn = number_after(out, "\n  50  rnn  "), lstm = number_after(out, "\n  50  lstm ");
    ck_assert_msg(lstm > rnn + 20, "lstm %.1f%%, rnn %.1f%%:\n%s", lstm, rnn, tail(out));
    /* the gradient reaching step 1 of the trained RNN has all but vanished */
    const char *ratio = strstr(out, "|d loss / d a_50| = ");
    ck_assert_ptr_nonnull(ratio);
    double rnn_ratio = number_after(ratio, "= ");
    ck_assert_msg(rnn_ratio < 1e-6, "%s", tail(out));
    /* the plot holds four curves */
    FILE *f = fopen(svg, "r");
    ck_assert_msg(f != NULL, "no %s", svg);
    char line[4096];
    int curves = 0;
    while (fgets(line, sizeof line, f))
        curves += strstr(line, "<polyline") != NULL;
    fclose(f);
    ck_assert_int_eq(curves, 4);
    remove(svg);
    free(out);
}
END_TEST

/* ---- the tape as a picture ------------------------------------------------------------------- */

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *at = strstr(text, what); at; at = strstr(at + 1, what))
        n++;
    return n;
}

static char *slurp(FILE *f)
{
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    return text;
}

/* Every node used by an edge is declared exactly once. */
static void assert_nodes_declared(const char *dot)
{
    for (const char *at = strstr(dot, " -> "); at; at = strstr(at + 1, " -> ")) {
        const char *start = at;
        while (start > dot && start[-1] != ' ')
            start--;
        char ends[2][32];
        ck_assert_int_eq(sscanf(start, "%31s -> %31[a-z0-9]", ends[0], ends[1]), 2);
        for (int k = 0; k < 2; k++) {
            char declared[80];
            snprintf(declared, sizeof declared, "  %s [", ends[k]);
            ck_assert_msg(count(dot, declared) == 1, "node %s declared %d times", ends[k],
                          count(dot, declared));
        }
    }
}

/* loss = sum(tanh(W x + b)[:, 0]): a broadcast inside an op, a view entry. */
START_TEST(tape_dot_draws_ops_tensors_and_views)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *W = tu_param(&rng, TG_F64, "W", TG_DIMS(4, 3));
    tg_tensor *b = tu_param(&rng, TG_F64, "b\"q", TG_DIMS(4, 1)); /* a quote to escape */
    tg_tensor *x = tg_tensor_randn(&rng, TG_F64, TG_DIMS(3, 5));
    x->name = "x";
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_tanh(tape, tg_add(tape, tg_matmul(tape, W, x), b));
    tg_tensor *loss = tg_sum(tape, tg_select(tape, y, 1, 0));
    ck_assert_ptr_nonnull(loss);

    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(tg_tape_dot(tape, f), TG_OK);
    char *dot = slurp(f);
    fclose(f);
    ck_assert_msg(strncmp(dot, "digraph tape {\n", 15) == 0 && strstr(dot, "\n}\n"), "%s",
                  tail(dot));
    /* one box per entry, named after its op; one edge per input and output */
    int inputs = 0, outputs = 0;
    for (const tg_entry *e = tg_tape_last_entry(tape); e; e = e->prev) {
        char label[64];
        snprintf(label, sizeof label, "label=\"%s\"", e->op);
        ck_assert_msg(strstr(dot, label) != NULL, "%s missing:\n%s", e->op, tail(dot));
        inputs += e->n_in;
        outputs += e->n_out;
    }
    ck_assert_int_eq(count(dot, "shape=box"), (int)tg_tape_entry_count(tape));
    ck_assert_int_eq(count(dot, " -> op"), inputs);
    ck_assert_int_eq(count(dot, "-> t"), outputs + 1); /* + the broadcast's dashed edge */
    /* W, x, b, b broadcast, matmul, add, tanh, select and sum outputs */
    ck_assert_int_eq(count(dot, "shape=ellipse"), 9);
    ck_assert_ptr_nonnull(strstr(dot, "label=\"W\\n(4,3)\""));
    ck_assert_ptr_nonnull(strstr(dot, "fillcolor=\"#eeeeee\", label=\"x\\n(3,5)\""));
    ck_assert_ptr_nonnull(strstr(dot, "label=\"b\\\"q\\n(4,1)\""));
    ck_assert_ptr_nonnull(strstr(dot, "style=dashed, label=\"b\\\"q\\n(4,5)\""));
    ck_assert_ptr_nonnull(strstr(dot, "[style=dashed];"));
    ck_assert_ptr_nonnull(strstr(dot, "style=\"rounded,dashed\", fillcolor=\"#fff2cc\", "
                                      "label=\"tg_select\""));
    ck_assert_ptr_nonnull(strstr(dot, "style=bold, label=\"scalar\""));
    assert_nodes_declared(dot);
    free(dot);

    /* an empty tape is an empty graph; NULL arguments are refused */
    tg_tape_reset(tape);
    f = tmpfile();
    ck_assert_int_eq(tg_tape_dot(tape, f), TG_OK);
    dot = slurp(f);
    ck_assert_int_eq(count(dot, "shape="), 0);
    free(dot);
    ck_assert_int_eq(tg_tape_dot(NULL, f), TG_ERR_ARG);
    ck_assert_int_eq(tg_tape_dot(tape, NULL), TG_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "tg_tape_dot"));
    fclose(f);
    tg_tape_free(tape);
    tg_tensor *all[] = {W, b, x};
    tu_free_all(all, 3);
}
END_TEST

/* The program's RNN step: the DOT names every op it listed, and Graphviz
 * accepts it (when `dot` is installed). */
START_TEST(tape_dot_program_writes_a_valid_graph)
{
    char path[64], svg[64], command[256];
    snprintf(path, sizeof path, "/tmp/tg_rnn_step_%d.dot", (int)getpid());
    snprintf(svg, sizeof svg, "/tmp/tg_rnn_step_%d.svg", (int)getpid());
    snprintf(command, sizeof command, PROGRAM("tape_dot") " %s", path);
    char *out = run_ok(command);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s:\n%s", path, tail(out));
    char *dot = slurp(f);
    fclose(f);
    /* the listing: "  N  op  (inputs) -> shape", one line per entry */
    int listed = 0;
    for (const char *line = strstr(out, "\n   1  "); line; line = strchr(line + 1, '\n')) {
        int number;
        char op[64], label[80];
        if (sscanf(line + 1, "%d %63s", &number, op) != 2 || number != listed + 1)
            break;
        listed++;
        snprintf(label, sizeof label, "label=\"%s\"", op);
        ck_assert_msg(strstr(dot, label) != NULL, "op %s not in the picture", op);
    }
    ck_assert_int_ge(listed, 8);
    ck_assert_int_eq(count(dot, "shape=box"), listed);
    ck_assert_ptr_nonnull(strstr(dot, "label=\"tg_cross_entropy\""));
    static const char *const params[] = {"Waa", "Wax", "ba", "Wya", "by", "xt", "a_prev"};
    for (int k = 0; k < 7; k++) {
        char label[32];
        snprintf(label, sizeof label, "label=\"%s\\n(", params[k]);
        ck_assert_msg(strstr(dot, label) != NULL, "%s not named:\n%s", params[k], tail(dot));
    }
    assert_nodes_declared(dot);
    if (system("command -v dot >/dev/null 2>&1") == 0) {
        snprintf(command, sizeof command, "dot -Tsvg %s -o %s", path, svg);
        free(run_ok(command));
        f = fopen(svg, "r");
        ck_assert_ptr_nonnull(f);
        char *picture = slurp(f);
        fclose(f);
        ck_assert_ptr_nonnull(strstr(picture, "<svg"));
        ck_assert_ptr_nonnull(strstr(picture, "tg_cross_entropy"));
        free(picture);
        remove(svg);
    }
    remove(path);
    free(dot);
    free(out);
}
END_TEST

/* The cost model of data-parallel training: P counted from the models the
 * library builds, and the arithmetic of examples/mpi_cost.c's header for
 * given step times (C = 100 ms and 1000 ms): N = 1 + C W / (2 S). */
START_TEST(mpi_cost_counts_the_parameters_and_finds_where_networks_stop_paying)
{
    char *out = run_ok(PROGRAM("mpi_cost") " --step-ms 100,1000"
                                           " ../examples/data/tinyshakespeare.txt");
    static const char *const expected[] = {
        /* make run: embedding 65x64, LSTM 4*256*(256+64) + 4*256, head 65x256 + 65 */
        "make run (lstm 64 -> 256 -> 65, batch 32 x 64): P = 349569 parameters, S = 4P = 1.40 MB",
        /* 1 + 0.1 s * 1.25e9 B/s / (2 * 1398276 B) = 45.7 */
        "10 Gbit/s: allreduce 1.12 ms at N = 2, 2.24 ms as N grows; stops paying after N = 45",
        "100 Gbit/s: allreduce 0.11 ms at N = 2, 0.22 ms as N grows; stops paying after N = 447",
        "lstm-l (lstm 512 -> 512 -> 512, batch 64 x 100): P = 2361856 parameters",
        /* 1 + 1 s * 1.25e9 / (2 * 9447424) = 67.2 */
        "10 Gbit/s: allreduce 7.56 ms at N = 2, 15.12 ms as N grows; stops paying after N = 67",
        "the batch of 64 streams stops it at N = 64"};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        ck_assert_msg(strstr(out, expected[i]), "expected '%s' in:\n%s", expected[i], out);
    free(out);
    /* measured: one step of each model after a warm-up (any positive time) */
    out = run_ok(PROGRAM("mpi_cost") " --threads 1 --steps 1 ../examples/data/tinyshakespeare.txt");
    double C[2];
    const char *at = strstr(out, "one machine's step C = ");
    ck_assert_msg(at && sscanf(at, "one machine's step C = %lf ms (1 thread)", &C[0]) == 1 &&
                      (at = strstr(at + 1, "one machine's step C = ")) &&
                      sscanf(at, "one machine's step C = %lf ms (1 thread)", &C[1]) == 1 &&
                      C[0] > 0 && C[1] > 0 && strstr(out, "P = 2361856 parameters"),
                  "%s", out);
    free(out);
    int status;
    out = run_program(PROGRAM("mpi_cost") " --step-ms 100", &status);
    ck_assert_int_eq(status, 2);
    ck_assert_ptr_nonnull(strstr(out, "--step-ms needs two times in milliseconds"));
    free(out);
}
END_TEST

Suite *suite_examples(void)
{
    Suite *s = suite_create("examples");
    TCase *programs = tcase_create("programs");
    tcase_set_timeout(programs, 300); /* vanishing trains two models: seconds, not minutes */
    tcase_add_test(programs, course_rnn_prints_the_notebooks_numbers);
    tcase_add_test(programs, gradcheck_lesson_catches_the_seed_004_bug);
    tcase_add_test(programs, tape_vs_fused_paths_agree_in_f64);
    tcase_add_test(programs, vanishing_lstm_beats_rnn_at_the_longest_length);
    tcase_add_test(programs, tape_dot_program_writes_a_valid_graph);
    tcase_add_test(programs, mpi_cost_counts_the_parameters_and_finds_where_networks_stop_paying);
    suite_add_tcase(s, programs);
    TCase *dot = tcase_create("dot");
    tcase_add_test(dot, tape_dot_draws_ops_tensors_and_views);
    suite_add_tcase(s, dot);
    return s;
}
