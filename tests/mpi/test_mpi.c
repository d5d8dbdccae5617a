/* char_lm --mpi (make test-mpi): 2 ranks with batch B/2 against 1 process
 * with batch B, the same run twice, resuming across ranks, and failures
 * that end every rank with one message: a killed rank, a rank that cannot
 * start, a fault policy that stops, ranks started differently. The tests
 * run the built programs through mpirun, each under a generous `timeout`
 * so that a hang fails its test; nothing is timed. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../util.h"

#define CHAR_LM "../" TG_BUILD_DIR "/examples/char_lm"
#define CHAR_LM_MPI "../" TG_MPI_BUILD_DIR "/char_lm --mpi"
/* As root, Open MPI wants both variables; 2 ranks may share one core. */
#define MPIRUN_ENV "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
#define MPIRUN_OPTS " --oversubscribe --bind-to none"
#define MPIRUN MPIRUN_ENV "timeout 600 " TG_MPIRUN MPIRUN_OPTS
#define TIMED_OUT 124 /* timeout's status */
/* A small model, so that a run takes a second or two even on one core. */
#define SMALL                                                                                  \
    " --hidden 24 --embed 8 --batch 4 --seq 12 --threads 1 --print-every 1000"                  \
    " --eval-every 1000 --sample-every 100000 --length 4 --svg ''"                              \
    " ../examples/data/tinyshakespeare.txt"

static void temp_path(char *out, size_t size, const char *what)
{
    snprintf(out, size, "/tmp/tg_mpi_%d_%s", (int)getpid(), what);
}

/* Run a command (a printf format) that must succeed. */
static void run_ok(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void run_ok(const char *format, ...)
{
    char command[1024], out[16384];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(command, sizeof command, format, ap);
    va_end(ap);
    ck_assert(n > 0 && (size_t)n < sizeof command);
    int status = tu_run(command, out, sizeof out);
    ck_assert_msg(status == 0, "%s exited with %d:\n%s", command, status, out);
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- the parameters of a checkpoint (format: optim/checkpoint.h) ------------------ */

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Largest |a - b| over the model's parameters ("embed.", "rnn.", "head.":
 * not the optimizer's state, the carried states or the smoothed loss), and
 * the largest |b|; how many tensors were compared. */
static int parameter_difference(const char *path_a, const char *path_b, double *diff,
                                double *largest)
{
    size_t size[2];
    unsigned char *file[2] = {tu_read_file(path_a, &size[0]), tu_read_file(path_b, &size[1])};
    size_t at[2] = {20, 20}; /* after the header */
    uint32_t entries = (uint32_t)le(file[0] + 16, 4);
    ck_assert_uint_eq(entries, (uint32_t)le(file[1] + 16, 4));
    int compared = 0;
    *diff = *largest = 0;
    for (uint32_t e = 0; e < entries; e++) {
        const unsigned char *name[2], *payload[2];
        uint64_t len[2], kind[2], bytes[2];
        for (int f = 0; f < 2; f++) {
            const unsigned char *p = file[f] + at[f];
            len[f] = le(p, 4);
            name[f] = p + 4;
            kind[f] = le(p + 4 + len[f], 4);
            uint64_t ndim = le(p + 8 + len[f], 4);
            const unsigned char *q = p + 12 + len[f] + 8 * ndim;
            bytes[f] = le(q, 8);
            payload[f] = q + 12;
            at[f] = (size_t)(payload[f] + bytes[f] - file[f]);
            ck_assert_msg(at[f] <= size[f], "%s is truncated", f ? path_b : path_a);
        }
        ck_assert_msg(len[0] == len[1] && !memcmp(name[0], name[1], len[0]) &&
                          kind[0] == kind[1] && bytes[0] == bytes[1],
                      "the checkpoints hold different entries");
        bool param = !strncmp((const char *)name[0], "embed.", 6) ||
                     !strncmp((const char *)name[0], "rnn.", 4) ||
                     !strncmp((const char *)name[0], "head.", 5);
        if (!param || (kind[0] != 1 && kind[0] != 2))
            continue;
        size_t es = kind[0] == 1 ? 4 : 8;
        for (uint64_t i = 0; i < bytes[0] / es; i++) {
            double v[2];
            for (int f = 0; f < 2; f++) {
                uint64_t bits = le(payload[f] + i * es, (int)es);
                if (es == 4) {
                    float x;
                    uint32_t b32 = (uint32_t)bits;
                    memcpy(&x, &b32, 4);
                    v[f] = x;
                } else {
                    memcpy(&v[f], &bits, 8);
                }
            }
            *diff = fmax(*diff, fabs(v[0] - v[1]));
            *largest = fmax(*largest, fabs(v[1]));
        }
        compared++;
    }
    free(file[0]);
    free(file[1]);
    return compared;
}

static void assert_parameters_close(const char *a, const char *b, double tolerance)
{
    double diff, largest;
    int n = parameter_difference(a, b, &diff, &largest);
    ck_assert_msg(n == 11, "%d parameter tensors compared, expected 11", n);
    ck_assert_msg(diff <= tolerance * largest,
                  "%s and %s differ by %g, %.3g of the largest parameter %g (tolerance %g)", a,
                  b, diff, diff / largest, largest, tolerance);
}

/* ---- the same computation ------------------------------------------------------------ */

/* 2 ranks with batch 4 (2 streams each) against 1 process with batch 4, for
 * 50 steps: the same parameters but for the order of one sum. */
START_TEST(two_ranks_compute_the_step_of_one_process)
{
    static const struct {
        const char *dtype;
        double tolerance;
    } cases[] = {{"f32", 1e-6}, {"f64", 1e-12}};
    char one[64], two[64];
    temp_path(one, sizeof one, "one.ckpt");
    temp_path(two, sizeof two, "two.ckpt");
    for (int c = 0; c < 2; c++) {
        run_ok(CHAR_LM SMALL " --steps 50 --dtype %s --save %s", cases[c].dtype, one);
        run_ok(MPIRUN " -np 2 " CHAR_LM_MPI SMALL " --steps 50 --dtype %s --save %s",
               cases[c].dtype, two);
        assert_parameters_close(one, two, cases[c].tolerance);
    }
    /* The comparison can fail: another seed is another model. */
    run_ok(CHAR_LM SMALL " --steps 50 --dtype f64 --seed 9 --save %s", one);
    double diff, largest;
    parameter_difference(one, two, &diff, &largest);
    ck_assert_msg(diff > 1e-3 * largest, "another seed gave the same parameters");
    remove(one), remove(two);
}
END_TEST

START_TEST(the_same_two_rank_run_twice_is_bit_identical)
{
    char a[64], b[64];
    temp_path(a, sizeof a, "a.ckpt");
    temp_path(b, sizeof b, "b.ckpt");
    const char *runs[2] = {a, b};
    for (int i = 0; i < 2; i++)
        run_ok(MPIRUN " -np 2 " CHAR_LM_MPI SMALL " --steps 40 --save %s", runs[i]);
    tu_assert_same_file(a, b);
    remove(a), remove(b);
}
END_TEST

/* Stopped after 35 of 60 steps and resumed, on 2 ranks: the checkpoint of
 * the uninterrupted 2-rank run, bit for bit, with and without restore's
 * snapshot. */
START_TEST(a_resume_across_ranks_is_bit_identical)
{
    char full[64], part[64], resumed[64];
    temp_path(full, sizeof full, "full.ckpt");
    temp_path(part, sizeof part, "part.ckpt");
    temp_path(resumed, sizeof resumed, "resumed.ckpt");
    const char *policies[2] = {"", " --on-nonfinite restore --snapshot-every 10"};
    for (int p = 0; p < 2; p++) {
        run_ok(MPIRUN " -np 2 " CHAR_LM_MPI SMALL "%s --steps 60 --save %s", policies[p], full);
        run_ok(MPIRUN " -np 2 " CHAR_LM_MPI SMALL "%s --steps 60 --stop-after 35 --save %s",
               policies[p], part);
        run_ok(MPIRUN " -np 2 " CHAR_LM_MPI SMALL "%s --steps 60 --resume %s --save %s",
               policies[p], part, resumed);
        tu_assert_same_file(full, resumed);
    }
    remove(full), remove(part), remove(resumed);
}
END_TEST

/* A checkpoint holds every stream's state whatever the number of ranks: one
 * process's checkpoint resumed on 2 ranks ends where one process ends. */
START_TEST(a_one_process_checkpoint_resumes_on_two_ranks)
{
    char full[64], part[64], resumed[64];
    temp_path(full, sizeof full, "full1.ckpt");
    temp_path(part, sizeof part, "part1.ckpt");
    temp_path(resumed, sizeof resumed, "resumed2.ckpt");
    run_ok(CHAR_LM SMALL " --dtype f64 --steps 60 --save %s", full);
    run_ok(CHAR_LM SMALL " --dtype f64 --steps 60 --stop-after 35 --save %s", part);
    run_ok(MPIRUN " -np 2 " CHAR_LM_MPI SMALL " --steps 60 --resume %s --save %s", part,
           resumed);
    assert_parameters_close(full, resumed, 1e-12);
    remove(full), remove(part), remove(resumed);
}
END_TEST

/* ---- failures end every rank, with one message ------------------------------------ */

/* Whether process pid is a child of parent and MPI rank `rank`. */
static bool is_rank(pid_t pid, pid_t parent, int rank)
{
    char path[64], buf[8192], want[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *after = strrchr(buf, ')'); /* the name may hold spaces */
    int ppid = 0;
    if (!after || sscanf(after, ") %*c %d", &ppid) != 1 || ppid != parent)
        return false;
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    int fd = open(path, O_RDONLY);
    ssize_t got = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (got > 0)
        buf[got] = '\0';
    for (ssize_t i = 0; i < got; i += (ssize_t)strlen(buf + i) + 1)
        if (strcmp(buf + i, want) == 0)
            return true;
    return false;
}

/* The pid of the child of `parent` that is MPI rank `rank`, or -1. */
static pid_t find_rank(pid_t parent, int rank)
{
    DIR *proc = opendir("/proc");
    ck_assert_ptr_nonnull(proc);
    pid_t found = -1;
    for (struct dirent *e; found < 0 && (e = readdir(proc));) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid > 0 && is_rank(pid, parent, rank))
            found = pid;
    }
    closedir(proc);
    return found;
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Rank 1 killed (SIGKILL) in the middle of a long run: mpirun ends the job
 * (rank 0 waits in an allreduce that cannot complete) with an error that
 * says which rank died. A generous deadline, not a timing assertion. */
START_TEST(a_killed_rank_ends_the_job_with_an_error)
{
    char log[64], command[1024];
    temp_path(log, sizeof log, "killed.log");
    snprintf(command, sizeof command,
             "exec " MPIRUN_ENV TG_MPIRUN MPIRUN_OPTS " -np 2 " CHAR_LM_MPI
             " --hidden 24 --embed 8 --batch 4 --seq 12 --threads 1 --print-every 10"
             " --eval-every 1000000 --sample-every 1000000 --steps 1000000 --save '' --svg ''"
             " ../examples/data/tinyshakespeare.txt");
    pid_t mpirun = fork();
    ck_assert_int_ge(mpirun, 0);
    if (mpirun == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    int waited = 0, status = 0;
    while (!file_has(log, "step    20/") && waited < 300000 &&
           waitpid(mpirun, &status, WNOHANG) == 0) {
        sleep_ms(50);
        waited += 50;
    }
    pid_t rank1 = find_rank(mpirun, 1);
    ck_assert_msg(rank1 > 0, "rank 1 of mpirun %d not found; log %s", (int)mpirun, log);
    ck_assert_int_eq(kill(rank1, SIGKILL), 0);
    pid_t done = 0;
    for (waited = 0; waited < 120000 && (done = waitpid(mpirun, &status, WNOHANG)) == 0;
         waited += 50)
        sleep_ms(50);
    if (done == 0) { /* a hang: end it, then fail */
        kill(mpirun, SIGKILL);
        waitpid(mpirun, &status, 0);
        ck_abort_msg("the job still ran 120 s after rank 1 was killed");
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0,
                  "mpirun ended with status %d", status);
    ck_assert_msg(file_has(log, "rank 1") && file_has(log, "exited on signal 9"),
                  "the job's output (%s) does not say that rank 1 was killed", log);
    remove(log);
}
END_TEST

/* Rank 1 cannot read its checkpoint (MPMD: each rank its own command
 * line): every rank stops, and the reason is printed once, by rank 0. */
START_TEST(a_rank_that_cannot_start_stops_every_rank_with_one_message)
{
    char out[16384];
    int status = tu_run(MPIRUN " -np 1 " CHAR_LM_MPI SMALL " --steps 5 --save '' : -np 1 "
                        CHAR_LM_MPI SMALL " --steps 5 --save '' --resume /nonexistent/x.ckpt",
                        out, sizeof out);
    ck_assert_msg(status != 0 && status != TIMED_OUT, "status %d:\n%s", status, out);
    ck_assert_msg(count(out, "cannot open '/nonexistent/x.ckpt'") == 1 &&
                      strstr(out, "char_lm: rank 1: cannot resume:") &&
                      count(out, "char_lm: all 2 ranks stop") == 1,
                  "expected one message naming rank 1:\n%s", out);
}
END_TEST

/* A loss that diverges under --on-nonfinite stop: the whole batch's loss is
 * the same on every rank, so they stop together; one report, nothing saved. */
START_TEST(a_fault_policy_that_stops_stops_every_rank_once)
{
    char out[16384], command[1024], saved[64];
    temp_path(saved, sizeof saved, "never.ckpt");
    remove(saved);
    snprintf(command, sizeof command,
             MPIRUN " -np 2 " CHAR_LM_MPI SMALL " --steps 20 --lr 1e30 --on-nonfinite stop "
             "--save %s", saved);
    int status = tu_run(command, out, sizeof out);
    ck_assert_msg(status != 0 && status != TIMED_OUT, "status %d:\n%s", status, out);
    ck_assert_msg(count(out, "above --max-loss 100: training diverges") == 1 &&
                      count(out, "char_lm: stopping at step 2; nothing saved") == 1,
                  "expected one report of the stop:\n%s", out);
    ck_assert_int_ne(access(saved, F_OK), 0);
}
END_TEST

START_TEST(ranks_started_differently_are_refused)
{
    static const struct {
        const char *command, *message;
    } cases[] = {
        {MPIRUN " -np 1 " CHAR_LM_MPI SMALL " --steps 5 : -np 1 " CHAR_LM_MPI SMALL
                " --steps 5 --lr 0.01",
         "char_lm: the 2 ranks did not start alike: --lr is 0.003 on one and 0.01 on another"},
        {MPIRUN " -np 1 " CHAR_LM_MPI SMALL " --steps 5 : -np 1 " CHAR_LM_MPI SMALL
                " --steps 5 --hidden 25",
         "char_lm: the 2 ranks did not start alike: the size of the state in bytes"},
        {MPIRUN " -np 2 " CHAR_LM_MPI SMALL " --steps 5 --batch 5",
         "char_lm: --batch 5 does not split over 2 ranks: give a multiple of 2"},
        {MPIRUN " -np 2 " CHAR_LM_MPI " --sample --load /nonexistent/y.ckpt",
         "char_lm: --mpi trains; --sample runs as one process"},
        {MPIRUN " -np 2 " CHAR_LM_MPI SMALL " --steps 5 --hidden 0",
         "char_lm: --hidden needs an integer in [1, 8192] (got '0')"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[16384];
        int status = tu_run(cases[i].command, out, sizeof out);
        ck_assert_msg(status != 0 && status != TIMED_OUT, "%s: status %d:\n%s", cases[i].command,
                      status, out);
        ck_assert_msg(count(out, cases[i].message) == 1, "%s said:\n%s\nexpected once: %s",
                      cases[i].command, out, cases[i].message);
    }
    /* and mpirun without --mpi would train separate models: refused */
    char out[16384];
    int status = tu_run(MPIRUN " -np 2 " CHAR_LM SMALL " --steps 5", out, sizeof out);
    ck_assert_msg(status != 0 && strstr(out, "but without --mpi"), "status %d:\n%s", status, out);
}
END_TEST

Suite *suite_mpi(void)
{
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("char_lm --mpi");
    tcase_add_test(tc, two_ranks_compute_the_step_of_one_process);
    tcase_add_test(tc, the_same_two_rank_run_twice_is_bit_identical);
    tcase_add_test(tc, a_resume_across_ranks_is_bit_identical);
    tcase_add_test(tc, a_one_process_checkpoint_resumes_on_two_ranks);
    tcase_add_test(tc, a_killed_rank_ends_the_job_with_an_error);
    tcase_add_test(tc, a_rank_that_cannot_start_stops_every_rank_with_one_message);
    tcase_add_test(tc, a_fault_policy_that_stops_stops_every_rank_once);
    tcase_add_test(tc, ranks_started_differently_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
