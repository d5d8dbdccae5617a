/* Benchmarks: one machine-readable line per measurement, then a table.
 *
 *     bench [--only matmul|recurrent|tape] [--dtype f32|f64|all] [--threads 1,2]
 *           [--sizes 128,512] [--shapes 1024x32x384,...] [--reps 7] [--best]
 *           [--layout nn|nt|tn|tt]
 *           [--config course,rnn-s,lstm-m,lstm-l,lstm-m-var] [--path tape|fused|all]
 *           [--steps N] [--breakdown]
 *
 * First the machine: the processor (name, family/model), the instruction
 * set the kernels run on, the caches they block for, and the measured peak
 * of fused multiply-adds for each dtype and thread count (bench_machine.h):
 *     machine cpu="..." family=6 model=207 online_cpus=2 isa=avx512 l1d_kib=48 l2_kib=2048
 *     machine fma_peak dtype=f32 threads=1 gflops=175.3
 *
 * Lines look like
 *     bench matmul m=1024 n=32 k=384 dtype=f32 threads=2 gflops=120.5
 *     bench config=lstm-m path=fused dtype=f32 threads=2 ms_per_step=12.34 gflops=56.7 pct_peak=16.4 peak_rss_mib=40
 *     bench tape op=add entries=10000 dtype=f32 record_ns=80 backward_ns=85 reset_ns=0.01
 * where the matmul rate is the median over --reps repetitions, each timing
 * enough calls to last about 20 ms (--best: the fastest repetition, which is
 * the steadier figure on a machine shared with other work). --layout stores A
 * and/or B transposed (t), as the backward pass reads them: dW = dZ @ X^T is
 * "nt", dX = W^T @ dZ is "tn"; the lines then end in " layout=nt".
 *
 * The recurrent section times one training step of a model: the recurrent
 * layer over all T steps, a linear output layer on every step, softmax
 * cross-entropy, and the full backward (every weight gradient and dx), no
 * optimizer step. ms_per_step is the median over --steps steps (--best: the
 * fastest) after two warm-up steps; gflops counts the matmuls only, 2 per
 * multiply-add, forward and backward: 3 * 2 m T (G n_a (n_x + n_a) + n_y n_a),
 * G = 4 for the LSTM, 1 for the RNN. Each run happens in a fresh process
 * (bench executes itself with --run), so peak_rss_mib, the child's VmHWM, is
 * the peak resident memory of that run alone. pct_peak is gflops against
 * the measured peak of the line's dtype and thread count. lstm-m-var is
 * lstm-m with lengths uniform in [T/4, T] (a fixed seed), fused path only:
 * the layer computes valid steps only, the head and the loss read only the
 * valid positions (gathered, as from a PackedSequence's data), and its
 * gflops count those. --breakdown prints, before each
 * line, where the step's time went: each op of the tape and, inside a
 * fused layer, its products, loop, gate passes, waits, moves and packing.
 *
 * The tape section measures the tape's own cost: recording an entry (an op
 * on one-element tensors, so that its arithmetic is nothing) and replaying
 * it in backward, in nanoseconds per entry.
 *
 * A section is a function in the `sections` table below: add one there to
 * benchmark something new. Options that only one section reads (--sizes,
 * --config, ...) select that section unless --only says otherwise. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* fork, execv, waitpid */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_machine.h"
#include "tapegrad.h"

#define MAX_LIST 32
#define MAX_RESULTS 1024

typedef struct {
    int dtypes[2], n_dtypes;     /* TG_F32, TG_F64 */
    int threads[MAX_LIST], n_threads;
    int64_t shapes[MAX_LIST][3]; /* m, n, k */
    int n_shapes;
    int reps;
    int best; /* report the fastest repetition instead of the median */
    char layout[3]; /* "nn": A and B row-major; 't' = stored transposed */
    const char *only;
    int configs[MAX_LIST], n_configs; /* indices into CONFIGS */
    int paths[2], n_paths;            /* TG_PATH_TAPE, TG_PATH_FUSED */
    int steps;                        /* 0: each config's default */
    int child;                        /* --run: one recurrent run, in this process */
    int breakdown;                    /* --breakdown: where a recurrent step's time goes */
    const char *self;                 /* argv[0] */
} options;

typedef struct {
    char section[16];
    char config[64]; /* e.g. "m=1024 n=32 k=384" */
    tg_dtype dtype;
    int threads;
    double median, best; /* in the section's unit */
} result;

static result results[MAX_RESULTS];
static int n_results;

/* The measured FMA peak, GFLOP/s, per dtype (0 f32, 1 f64) and thread count. */
static double peaks[2][MAX_LIST];

static void bench_matmul(const options *opt);
static void bench_recurrent(const options *opt);
static void bench_tape(const options *opt);
static void run_recurrent_child(const options *opt);
static void print_recurrent_table(const options *opt);
static double peak_of(const options *opt, tg_dtype dtype, int threads);
static int find_config(const char *name);
static int n_configs(void);

static const struct {
    const char *name;
    void (*run)(const options *opt);
} sections[] = {
    {"matmul", bench_matmul},
    {"recurrent", bench_recurrent},
    {"tape", bench_tape},
};

static void usage(void)
{
    fprintf(stderr, "usage: bench [--only SECTION] [--dtype f32|f64|all] [--threads 1,2]\n"
                    "             [--sizes 128,256] [--shapes MxNxK,...] [--reps N] [--best]\n"
                    "             [--layout nn|nt|tn|tt]\n"
                    "             [--config course,rnn-s,lstm-m,lstm-l,lstm-m-var]\n"
                    "             [--path tape|fused|all] [--steps N] [--breakdown]\n"
                    "sections: matmul, recurrent, tape\n");
    exit(2);
}

/* "1,2,4" -> ints; returns the count. */
static int parse_ints(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1)
            usage();
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            usage();
    }
    return n;
}

static void add_shape(options *opt, int64_t m, int64_t n, int64_t k)
{
    if (opt->n_shapes < MAX_LIST) {
        opt->shapes[opt->n_shapes][0] = m;
        opt->shapes[opt->n_shapes][1] = n;
        opt->shapes[opt->n_shapes][2] = k;
        opt->n_shapes++;
    }
}

static void parse_options(int argc, char **argv, options *opt)
{
    *opt = (options){.dtypes = {TG_F32, TG_F64}, .n_dtypes = 2, .threads = {1, 2},
                     .n_threads = 2, .reps = 7, .layout = "nn", .paths = {TG_PATH_TAPE,
                     TG_PATH_FUSED}, .n_paths = 2, .self = argv[0]};
    int sizes_given = 0, shapes_given = 0, matmul_only = 0, recurrent_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--best") == 0) {
            opt->best = 1;
            continue;
        }
        if (strcmp(a, "--run") == 0) {
            opt->child = 1;
            continue;
        }
        if (strcmp(a, "--breakdown") == 0) {
            opt->breakdown = 1;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--dtype") == 0) {
            if (strcmp(v, "f32") == 0)
                opt->dtypes[0] = TG_F32, opt->n_dtypes = 1;
            else if (strcmp(v, "f64") == 0)
                opt->dtypes[0] = TG_F64, opt->n_dtypes = 1;
            else if (strcmp(v, "all") != 0)
                usage();
        } else if (strcmp(a, "--threads") == 0) {
            opt->n_threads = parse_ints(v, opt->threads);
        } else if (strcmp(a, "--config") == 0) {
            for (const char *c = v; *c;) {
                size_t len = strcspn(c, ",");
                char name[32];
                if (len == 0 || len >= sizeof name || opt->n_configs == MAX_LIST)
                    usage();
                memcpy(name, c, len);
                name[len] = '\0';
                if ((opt->configs[opt->n_configs++] = find_config(name)) < 0)
                    usage();
                c += len + (c[len] == ',');
            }
            recurrent_only = 1;
        } else if (strcmp(a, "--path") == 0) {
            if (strcmp(v, "tape") == 0)
                opt->paths[0] = TG_PATH_TAPE, opt->n_paths = 1;
            else if (strcmp(v, "fused") == 0)
                opt->paths[0] = TG_PATH_FUSED, opt->n_paths = 1;
            else if (strcmp(v, "all") != 0)
                usage();
            recurrent_only = 1;
        } else if (strcmp(a, "--steps") == 0) {
            opt->steps = atoi(v);
            if (opt->steps < 1)
                usage();
            recurrent_only = 1;
        } else if (strcmp(a, "--sizes") == 0) {
            int sizes[MAX_LIST], n = parse_ints(v, sizes);
            for (int j = 0; j < n; j++)
                add_shape(opt, sizes[j], sizes[j], sizes[j]);
            sizes_given = matmul_only = 1;
        } else if (strcmp(a, "--shapes") == 0) {
            const char *s = v;
            while (*s) {
                long long m, n, k;
                int used;
                if (sscanf(s, "%lldx%lldx%lld%n", &m, &n, &k, &used) != 3 || m < 1 || n < 1 ||
                    k < 1)
                    usage();
                add_shape(opt, m, n, k);
                s += used;
                if (*s == ',')
                    s++;
            }
            shapes_given = matmul_only = 1;
        } else if (strcmp(a, "--reps") == 0) {
            opt->reps = atoi(v);
            if (opt->reps < 1)
                usage();
        } else if (strcmp(a, "--layout") == 0) {
            if (strlen(v) != 2 || !strchr("nt", v[0]) || !strchr("nt", v[1]))
                usage();
            memcpy(opt->layout, v, 3);
            matmul_only = 1;
        } else if (strcmp(a, "--only") == 0) {
            opt->only = v;
        } else {
            usage();
        }
    }
    if (!opt->only && matmul_only != recurrent_only)
        opt->only = matmul_only ? "matmul" : "recurrent";
    if (opt->n_configs == 0)
        for (int c = 0; c < n_configs(); c++)
            opt->configs[opt->n_configs++] = c;
    if (!sizes_given && !shapes_given) {
        static const int squares[] = {128, 256, 512, 1024, 2048};
        for (size_t j = 0; j < sizeof squares / sizeof squares[0]; j++)
            add_shape(opt, squares[j], squares[j], squares[j]);
        /* The recurrent shapes: rnn (n_a=256, n_x=128, m=32, T=64) forward
         * step, weight gradient, input gradient; lstm (n_a=512, m=64)
         * forward step, weight gradient and its transpose; a course shape. */
        static const int64_t rect[][3] = {
            {1024, 32, 384}, {1024, 384, 2048}, {384, 32, 1024}, {2048, 64, 1024},
            {2048, 1024, 6400}, {1024, 2048, 64}, {50, 1, 27},
        };
        for (size_t j = 0; j < sizeof rect / sizeof rect[0]; j++)
            add_shape(opt, rect[j][0], rect[j][1], rect[j][2]);
    }
}

/* Seconds on the library's monotonic clock. */
static double now(void) { return 1e-9 * (double)tg_clock_ns(); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and best seconds per call of fn(ctx) over reps repetitions. */
static void time_calls(void (*fn)(void *), void *ctx, int reps, double *median, double *best)
{
    fn(ctx); /* warm up: threads, scratch buffers, caches */
    int calls = 1;
    for (;;) {
        double t = now();
        for (int i = 0; i < calls; i++)
            fn(ctx);
        t = now() - t;
        if (t > 0.02 || calls > (1 << 24))
            break;
        calls *= t < 0.002 ? 10 : 2;
    }
    double times[64];
    if (reps > 64)
        reps = 64;
    for (int r = 0; r < reps; r++) {
        double t = now();
        for (int i = 0; i < calls; i++)
            fn(ctx);
        times[r] = (now() - t) / calls;
    }
    qsort(times, (size_t)reps, sizeof times[0], cmp_double);
    *median = times[reps / 2];
    *best = times[0];
}

static void record(const options *opt, const char *section, const char *config, tg_dtype dtype,
                   int threads, double median, double best)
{
    printf("bench %s %s dtype=%s threads=%d gflops=%.1f%s%s\n", section, config,
           tg_dtype_name(dtype), threads, opt->best ? best : median,
           strcmp(opt->layout, "nn") ? " layout=" : "", strcmp(opt->layout, "nn") ? opt->layout : "");
    fflush(stdout);
    if (n_results < MAX_RESULTS) {
        result *r = &results[n_results++];
        snprintf(r->section, sizeof r->section, "%s", section);
        snprintf(r->config, sizeof r->config, "%s", config);
        r->dtype = dtype;
        r->threads = threads;
        r->median = median;
        r->best = best;
    }
}

/* ---- matmul ---------------------------------------------------------------------- */

typedef struct {
    tg_tensor *A, *B, *C;
    tg_tensor a, b; /* the operands as (M,K) and (K,N) views */
} matmul_ctx;

static void matmul_call(void *ctx)
{
    matmul_ctx *c = ctx;
    tg_gemm(1.0, &c->a, &c->b, 0.0, c->C);
}

/* A rows x cols operand, stored transposed when `transposed`; *view is
 * the rows x cols view of it. */
static tg_tensor *make_operand(tg_rng *rng, tg_dtype dtype, int64_t rows, int64_t cols,
                               int transposed, tg_tensor *view)
{
    tg_tensor *t = transposed ? tg_tensor_randn(rng, dtype, TG_DIMS(cols, rows))
                              : tg_tensor_randn(rng, dtype, TG_DIMS(rows, cols));
    if (t) {
        if (transposed)
            tg_view_transpose(view, t, 0, 1);
        else
            *view = *t;
    }
    return t;
}

static void bench_matmul(const options *opt)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    for (int d = 0; d < opt->n_dtypes; d++)
        for (int s = 0; s < opt->n_shapes; s++) {
            int64_t m = opt->shapes[s][0], n = opt->shapes[s][1], k = opt->shapes[s][2];
            tg_dtype dtype = (tg_dtype)opt->dtypes[d];
            matmul_ctx c;
            c.A = make_operand(&rng, dtype, m, k, opt->layout[0] == 't', &c.a);
            c.B = make_operand(&rng, dtype, k, n, opt->layout[1] == 't', &c.b);
            c.C = tg_tensor_zeros(dtype, TG_DIMS(m, n));
            if (!c.A || !c.B || !c.C) {
                fprintf(stderr, "bench: out of memory for %lldx%lldx%lld\n", (long long)m,
                        (long long)n, (long long)k);
                exit(1);
            }
            char config[64];
            snprintf(config, sizeof config, "m=%lld n=%lld k=%lld", (long long)m, (long long)n,
                     (long long)k);
            double flops = 2.0 * (double)m * (double)n * (double)k;
            for (int t = 0; t < opt->n_threads; t++) {
                tg_set_num_threads(opt->threads[t]);
                double median, best;
                time_calls(matmul_call, &c, opt->reps, &median, &best);
                record(opt, "matmul", config, dtype, opt->threads[t], flops / median * 1e-9,
                       flops / best * 1e-9);
            }
            tg_tensor_free(c.A);
            tg_tensor_free(c.B);
            tg_tensor_free(c.C);
        }
}

/* ---- recurrent training step ------------------------------------------------------------ */

/* The configurations of the performance issue: shape, and how many steps a
 * run times by default (about a second or two of work each). */
typedef struct {
    const char *name;
    tg_cell cell;
    int n_x, n_a, n_y, m, T;
    int steps;
    bool varlen; /* lengths uniform in [T/4, T] (seed 7), fused path only */
} rec_config;

static const rec_config CONFIGS[] = {
    {"course", TG_CELL_RNN, 27, 50, 27, 1, 20, 2000, false},
    {"rnn-s", TG_CELL_RNN, 64, 128, 64, 32, 32, 200, false},
    {"lstm-m", TG_CELL_LSTM, 128, 256, 128, 32, 64, 20, false},
    {"lstm-l", TG_CELL_LSTM, 512, 512, 512, 64, 100, 3, false},
    {"lstm-m-var", TG_CELL_LSTM, 128, 256, 128, 32, 64, 20, true},
};
enum { N_CONFIGS = sizeof CONFIGS / sizeof CONFIGS[0] };

static int n_configs(void) { return N_CONFIGS; }

typedef struct {
    int config, path, threads;
    tg_dtype dtype;
    double ms, best_ms, gflops, rss_mib;
} rec_result;

static rec_result rec_results[MAX_RESULTS];
static int n_rec_results;

static int find_config(const char *name)
{
    for (int c = 0; c < N_CONFIGS; c++)
        if (strcmp(CONFIGS[c].name, name) == 0)
            return c;
    return -1;
}

static const char *path_name(int path) { return path == TG_PATH_FUSED ? "fused" : "tape"; }

/* The lengths of a variable-length config: uniform in [T/4, T], a fixed
 * seed; NULL for the others. */
static int32_t *config_lengths(const rec_config *c)
{
    if (!c->varlen)
        return NULL;
    int32_t *lengths = malloc(sizeof *lengths * (size_t)c->m);
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (int j = 0; lengths && j < c->m; j++)
        lengths[j] = c->T / 4 + (int32_t)tg_rng_below(&rng, (uint64_t)(c->T - c->T / 4 + 1));
    return lengths;
}

/* Matmul FLOPs of one step: forward, and twice that for backward; a
 * variable-length config counts valid steps only (its head sees no other). */
static double step_flops(const rec_config *c)
{
    double gates = c->cell == TG_CELL_LSTM ? 4 : 1, steps = (double)c->m * c->T;
    int32_t *lengths = config_lengths(c);
    if (lengths) {
        steps = 0;
        for (int j = 0; j < c->m; j++)
            steps += lengths[j];
        free(lengths);
    }
    return 3.0 * 2.0 *
           (steps * gates * c->n_a * (double)(c->n_x + c->n_a) + steps * (double)c->n_y * c->n_a);
}

/* The recurrent layer's forward: with the config's lengths, one fused
 * layer node (nn/fused.h). */
static tg_tensor *recurrent_forward(tg_tape *tape, const tg_recurrent *rnn, tg_tensor *x,
                                    tg_path path, const int32_t *lengths)
{
    if (!lengths)
        return tg_recurrent_forward(tape, rnn, x, NULL, path, NULL);
    tg_fused_layer_options o = tg_fused_layer_defaults();
    o.lengths = lengths;
    tg_fused_layer_out out;
    if (tg_fused_layer(tape, rnn->cell, x, NULL, NULL, rnn->layers[0].p, &o, &out) != TG_OK)
        return NULL;
    return out.a;
}

/* The valid positions of a variable-length batch, as columns of the output
 * (n_a, m, T) seen as (n_a, m*T): j*T + t for t < L_j. The head and the loss
 * read only these, as a PyTorch user applies them to a PackedSequence's
 * data; their count. */
static int64_t valid_columns(const rec_config *c, const int32_t *lengths, int32_t *cols)
{
    int64_t n = 0;
    for (int j = 0; j < c->m; j++)
        for (int t = 0; t < lengths[j]; t++)
            cols[n++] = j * c->T + t;
    return n;
}

/* Peak resident memory of this process in MiB (VmHWM), or -1 if unknown. */
static double peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = atof(line + 6);
    if (f)
        fclose(f);
    return kib < 0 ? -1 : kib / 1024.0;
}

static void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, tg_last_error());
    exit(1);
}

/* Add this step's time per op kind (forward + backward) to the totals. */
static int add_tape_profile(const tg_tape *tape, const char **names, uint64_t *ns, int n)
{
    tg_op_profile rows[64];
    int k = tg_tape_profile(tape, rows, 64);
    for (int r = 0; r < k && r < 64; r++) {
        int i = 0;
        while (i < n && strcmp(names[i], rows[r].op) != 0)
            i++;
        if (i == n && n < 64)
            names[n++] = rows[r].op;
        if (i < 64)
            ns[i] += rows[r].forward_ns + rows[r].backward_ns;
    }
    return n;
}

/* Where a step's time goes: each op of the tape, and inside the fused
 * layer its parts (the time loop's parts summed over threads). */
static void print_breakdown(const rec_config *c, tg_path path, tg_dtype dtype, int threads,
                            int steps, const char **names, const uint64_t *ns, int n)
{
    printf("breakdown config=%s path=%s dtype=%s threads=%d (ms per step)\n", c->name,
           path_name(path), tg_dtype_name(dtype), threads);
    for (int i = 0; i < n; i++)
        printf("  op %-24s %9.3f\n", names[i], 1e-6 * (double)ns[i] / steps);
    if (path != TG_PATH_FUSED)
        return;
    tg_fused_profile f;
    tg_fused_profile_read(&f, false);
    double per = 1e-6 / steps;
    printf("  fused layer, inside:\n");
    printf("    products over all steps %9.3f  (%.1f GFLOP/s)\n", per * (double)f.big_gemm_ns,
           f.big_gemm_ns ? 2.0 * (double)f.big_gemm_macs / (double)f.big_gemm_ns : 0.0);
    printf("    time loop (wall)        %9.3f\n", per * (double)f.loop_ns);
    printf("      step products         %9.3f  (%.1f GFLOP/s per thread)\n",
           per * (double)f.step_gemm_ns,
           f.step_gemm_ns ? 2.0 * (double)f.step_gemm_macs / (double)f.step_gemm_ns : 0.0);
    printf("      gate passes           %9.3f\n", per * (double)f.gates_ns);
    printf("      thread waits          %9.3f\n", per * (double)f.wait_ns);
    printf("    moves and transposes    %9.3f\n", per * (double)f.moves_ns);
    printf("    stacking and packing    %9.3f\n", per * (double)f.packing_ns);
    printf("    total inside            %9.3f\n", per * (double)f.total_ns);
}

/* One run: opt names exactly one config, path, dtype and thread count.
 * Prints the result line. */
static void run_recurrent_child(const options *opt)
{
    const rec_config *c = &CONFIGS[opt->configs[0]];
    tg_dtype dtype = (tg_dtype)opt->dtypes[0];
    tg_path path = (tg_path)opt->paths[0];
    int steps = opt->steps ? opt->steps : c->steps;
    if (tg_set_num_threads(opt->threads[0]) != TG_OK)
        die("threads");
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_recurrent *rnn = tg_recurrent_new(c->cell, c->n_x, c->n_a, dtype, NULL, &rng);
    tg_linear *head = tg_linear_new(c->n_a, c->n_y, dtype, "Wy", "by", TG_INIT_PYTORCH, &rng);
    tg_tensor *x = tg_tensor_randn(&rng, dtype, TG_DIMS(c->n_x, c->m, c->T));
    int64_t n_targets = (int64_t)c->m * c->T;
    int32_t *targets = malloc(sizeof *targets * (size_t)n_targets);
    double *times = malloc(sizeof *times * (size_t)steps);
    tg_tape *tape = tg_tape_new();
    int32_t *lengths = config_lengths(c);
    int32_t *cols = malloc(sizeof *cols * (size_t)n_targets);
    if (!rnn || !head || !x || !targets || !times || !tape || (c->varlen && !lengths) || !cols ||
        tg_tensor_requires_grad(x, true) != TG_OK)
        die("setup");
    const int64_t n_valid = lengths ? valid_columns(c, lengths, cols) : n_targets;
    for (int64_t i = 0; i < n_targets; i++)
        targets[i] = (int32_t)tg_rng_below(&rng, (uint64_t)c->n_y);
    /* Two steps warm up: the first grows the tape's arena, whose chunks the
     * reset after it merges into one, which the second touches first. */
    tg_tape_set_profiling(tape, opt->breakdown);
    tg_fused_profile_enable(opt->breakdown);
    uint64_t op_ns[64] = {0};
    const char *op_names[64];
    int n_ops = 0;
    for (int s = -2; s < steps; s++) {
        if (s == 0) {
            tg_fused_profile read;
            tg_fused_profile_read(&read, true);
        }
        double t0 = now();
        tg_tape_reset(tape);
        tg_tensor *h = recurrent_forward(tape, rnn, x, path, lengths);
        if (lengths)
            h = tg_gather_columns(tape, tg_reshape(tape, h, TG_DIMS(c->n_a, n_targets)), cols,
                                  n_valid);
        tg_tensor *logits = tg_linear_forward(tape, head, h);
        tg_tensor *loss = tg_cross_entropy(tape, logits, 0, targets, n_valid, TG_REDUCE_MEAN);
        tg_params_zero_grad(&rnn->params);
        tg_params_zero_grad(&head->params);
        tg_tensor_zero_grad(x);
        if (!loss || tg_backward(tape, loss) != TG_OK)
            die("training step");
        if (s >= 0)
            times[s] = now() - t0;
        if (s >= 0 && opt->breakdown)
            n_ops = add_tape_profile(tape, op_names, op_ns, n_ops);
    }
    if (opt->breakdown)
        print_breakdown(c, path, dtype, opt->threads[0], steps, op_names, op_ns, n_ops);
    qsort(times, (size_t)steps, sizeof times[0], cmp_double);
    double ms = 1e3 * (opt->best ? times[0] : times[steps / 2]);
    printf("bench config=%s path=%s dtype=%s threads=%d ms_per_step=%.4g gflops=%.1f "
           "peak_rss_mib=%.0f best_ms=%.4g\n",
           c->name, path_name(path), tg_dtype_name(dtype), opt->threads[0], ms,
           step_flops(c) / ms * 1e-6, peak_rss_mib(), 1e3 * times[0]);
    fflush(stdout);
    tg_tape_free(tape);
    tg_recurrent_free(rnn);
    tg_linear_free(head);
    tg_tensor_free(x);
    free(targets);
    free(times);
    free(lengths);
    free(cols);
}

/* Run one configuration in a fresh process (this program with --run) and
 * read back its line; false if that failed. */
static bool run_child(const options *opt, int config, int path, tg_dtype dtype, int threads,
                      rec_result *r)
{
    char threads_s[16], steps_s[16];
    snprintf(threads_s, sizeof threads_s, "%d", threads);
    snprintf(steps_s, sizeof steps_s, "%d", opt->steps ? opt->steps : CONFIGS[config].steps);
    char *argv[16] = {(char *)opt->self, "--run", "--config", (char *)CONFIGS[config].name,
                      "--path", (char *)path_name(path), "--dtype", (char *)tg_dtype_name(dtype),
                      "--threads", threads_s, "--steps", steps_s};
    int argc = 12;
    if (opt->best)
        argv[argc++] = "--best";
    if (opt->breakdown)
        argv[argc++] = "--breakdown";
    argv[argc] = NULL;
    int fd[2];
    if (pipe(fd) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        execv("/proc/self/exe", argv);
        execv(opt->self, argv);
        _exit(127);
    }
    close(fd[1]);
    char line[512] = "", buf[512];
    FILE *f = pid > 0 ? fdopen(fd[0], "r") : NULL;
    bool ok = false;
    while (f && fgets(buf, sizeof buf, f)) { /* a breakdown first, then the result line */
        if (strncmp(buf, "bench ", 6) == 0) {
            memcpy(line, buf, sizeof line);
            ok = true;
        } else {
            fputs(buf, stdout);
        }
    }
    if (f)
        fclose(f);
    else
        close(fd[0]);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    char *ms = strstr(line, "ms_per_step="), *rss = strstr(line, "peak_rss_mib=");
    char *best = strstr(line, "best_ms=");
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !ms || !rss || !best)
        return false;
    *r = (rec_result){.config = config, .path = path, .threads = threads, .dtype = dtype};
    r->ms = atof(ms + 12);
    r->rss_mib = atof(rss + 13);
    r->best_ms = atof(best + 8);
    r->gflops = step_flops(&CONFIGS[config]) / r->ms * 1e-6;
    return true;
}

static void bench_recurrent(const options *opt)
{
    for (int ci = 0; ci < opt->n_configs; ci++)
        for (int d = 0; d < opt->n_dtypes; d++)
            for (int p = 0; p < opt->n_paths; p++)
                for (int t = 0; t < opt->n_threads; t++) {
                    int config = opt->configs[ci];
                    tg_dtype dtype = (tg_dtype)opt->dtypes[d];
                    rec_result r;
                    if (CONFIGS[config].varlen && opt->paths[p] != TG_PATH_FUSED)
                        continue;
                    if (!run_child(opt, config, opt->paths[p], dtype, opt->threads[t], &r)) {
                        fprintf(stderr, "bench: the run of %s (%s, %s, %d threads) failed\n",
                                CONFIGS[config].name, path_name(opt->paths[p]),
                                tg_dtype_name(dtype), opt->threads[t]);
                        continue;
                    }
                    double peak = peak_of(opt, dtype, r.threads);
                    printf("bench config=%s path=%s dtype=%s threads=%d ms_per_step=%.*f "
                           "gflops=%.1f pct_peak=%.1f peak_rss_mib=%.0f\n",
                           CONFIGS[config].name, path_name(r.path), tg_dtype_name(dtype),
                           r.threads, r.ms < 1 ? 4 : 2, r.ms, r.gflops,
                           peak > 0 ? 100.0 * r.gflops / peak : 0.0, r.rss_mib);
                    fflush(stdout);
                    if (n_rec_results < MAX_RESULTS)
                        rec_results[n_rec_results++] = r;
                }
}

/* One row per (config, dtype, path), one column per thread count: ms per
 * step (GFLOP/s), then the largest peak RSS of the row's runs. */
static void print_recurrent_table(const options *opt)
{
    if (n_rec_results == 0)
        return;
    printf("\n%-8s %-5s %-6s", "config", "dtype", "path");
    for (int t = 0; t < opt->n_threads; t++)
        printf("  %2d thread%s ms/step (GFLOP/s)", opt->threads[t],
               opt->threads[t] == 1 ? " " : "s");
    printf("  peak RSS\n");
    for (int i = 0; i < n_rec_results; i++) {
        const rec_result *a = &rec_results[i];
        int first = 1;
        for (int j = 0; j < i; j++)
            if (rec_results[j].config == a->config && rec_results[j].dtype == a->dtype &&
                rec_results[j].path == a->path)
                first = 0;
        if (!first)
            continue;
        printf("%-8s %-5s %-6s", CONFIGS[a->config].name, tg_dtype_name(a->dtype),
               path_name(a->path));
        double rss = 0;
        for (int t = 0; t < opt->n_threads; t++) {
            const rec_result *r = NULL;
            for (int j = i; j < n_rec_results && !r; j++)
                if (rec_results[j].config == a->config && rec_results[j].dtype == a->dtype &&
                    rec_results[j].path == a->path && rec_results[j].threads == opt->threads[t])
                    r = &rec_results[j];
            if (r) {
                printf("  %19.*f (%7.1f)", r->ms < 1 ? 4 : 2, r->ms, r->gflops);
                rss = r->rss_mib > rss ? r->rss_mib : rss;
            } else {
                printf("  %29s", "-");
            }
        }
        printf("  %4.0f MiB\n", rss);
    }
}

/* ---- the tape's own cost ------------------------------------------------------------------ */

/* Recording and replaying one entry, with ops on one-element tensors so
 * that the arithmetic is nothing: y = x + y, N times, then backward (each
 * entry's rule adds into two gradients), then a reset. Prints
 *     bench tape op=add entries=10000 dtype=f64 record_ns=85 backward_ns=60 reset_ns=0.1
 * in nanoseconds per entry, the median of --reps repetitions. */
typedef struct {
    tg_tape *tape;
    tg_tensor *x;
    int entries;
    double record, backward, reset; /* seconds for the last run */
} tape_ctx;

static void tape_run(void *ctx)
{
    tape_ctx *c = ctx;
    double t0 = now();
    tg_tensor *y = c->x;
    for (int i = 0; i < c->entries; i++)
        y = tg_add(c->tape, y, c->x);
    double t1 = now();
    if (!y || tg_backward(c->tape, y) != TG_OK)
        die("tape section");
    double t2 = now();
    tg_tape_reset(c->tape);
    c->record = t1 - t0;
    c->backward = t2 - t1;
    c->reset = now() - t2;
}

static void bench_tape(const options *opt)
{
    enum { ENTRIES = 10000 };
    for (int d = 0; d < opt->n_dtypes; d++) {
        tg_dtype dtype = (tg_dtype)opt->dtypes[d];
        tape_ctx c = {tg_tape_new(), tg_tensor_ones(dtype, 0, NULL), ENTRIES, 0, 0, 0};
        if (!c.tape || !c.x || tg_tensor_requires_grad(c.x, true) != TG_OK)
            die("tape section");
        double record[64], backward[64], reset[64];
        int reps = opt->reps < 64 ? opt->reps : 64;
        tape_run(&c); /* warm up: the arena grows once */
        for (int r = 0; r < reps; r++) {
            tape_run(&c);
            record[r] = c.record;
            backward[r] = c.backward;
            reset[r] = c.reset;
        }
        qsort(record, (size_t)reps, sizeof record[0], cmp_double);
        qsort(backward, (size_t)reps, sizeof backward[0], cmp_double);
        qsort(reset, (size_t)reps, sizeof reset[0], cmp_double);
        int pick = opt->best ? 0 : reps / 2;
        printf("bench tape op=add entries=%d dtype=%s record_ns=%.0f backward_ns=%.0f "
               "reset_ns=%.2f\n",
               ENTRIES, tg_dtype_name(dtype), record[pick] / ENTRIES * 1e9,
               backward[pick] / ENTRIES * 1e9, reset[pick] / ENTRIES * 1e9);
        fflush(stdout);
        tg_tape_free(c.tape);
        tg_tensor_free(c.x);
    }
}

/* ---- the table ------------------------------------------------------------------------ */

/* One row per (section, config, dtype), one column per thread count:
 * median (best) in GFLOP/s. */
static void print_table(const options *opt)
{
    printf("\n%-8s %-26s %-5s", "section", "config", "dtype");
    for (int t = 0; t < opt->n_threads; t++)
        printf("   %2d thread%s median (best)", opt->threads[t], opt->threads[t] == 1 ? " " : "s");
    printf("   [GFLOP/s]\n");
    for (int i = 0; i < n_results; i++) {
        int first = 1; /* print each row once, at its first result */
        for (int j = 0; j < i; j++)
            if (strcmp(results[j].section, results[i].section) == 0 &&
                strcmp(results[j].config, results[i].config) == 0 &&
                results[j].dtype == results[i].dtype)
                first = 0;
        if (!first)
            continue;
        printf("%-8s %-26s %-5s", results[i].section, results[i].config,
               tg_dtype_name(results[i].dtype));
        for (int t = 0; t < opt->n_threads; t++) {
            const result *r = NULL;
            for (int j = i; j < n_results && !r; j++)
                if (strcmp(results[j].section, results[i].section) == 0 &&
                    strcmp(results[j].config, results[i].config) == 0 &&
                    results[j].dtype == results[i].dtype && results[j].threads == opt->threads[t])
                    r = &results[j];
            if (r)
                printf("   %14.1f (%6.1f)", r->median, r->best);
            else
                printf("   %23s", "-");
        }
        printf("\n");
    }
}

/* Before the tables: the machine, the kernels' ISA and caches, and the
 * measured peak of every dtype and thread count. */
static void print_machine(const options *opt)
{
    char name[256];
    int family, model;
    cpu_description(name, sizeof name, &family, &model);
    printf("machine cpu=\"%s\" family=%d model=%d online_cpus=%ld isa=%s l1d_kib=%zu "
           "l2_kib=%zu\n",
           name, family, model, sysconf(_SC_NPROCESSORS_ONLN), tg_isa_name(tg_isa_active()),
           tg_cache_l1d() / 1024, tg_cache_l2() / 1024);
    for (int d = 0; d < opt->n_dtypes; d++)
        for (int t = 0; t < opt->n_threads; t++) {
            tg_dtype dtype = (tg_dtype)opt->dtypes[d];
            double peak = fma_peak(dtype, opt->threads[t]);
            peaks[dtype == TG_F64][t] = peak;
            printf("machine fma_peak dtype=%s threads=%d gflops=%.1f\n", tg_dtype_name(dtype),
                   opt->threads[t], peak);
        }
    fflush(stdout);
}

/* The peak measured for a dtype and thread count (0 if not measured). */
static double peak_of(const options *opt, tg_dtype dtype, int threads)
{
    for (int t = 0; t < opt->n_threads; t++)
        if (opt->threads[t] == threads)
            return peaks[dtype == TG_F64][t];
    return 0;
}

int main(int argc, char **argv)
{
    options opt;
    parse_options(argc, argv, &opt);
    if (opt.child) {
        run_recurrent_child(&opt);
        return 0;
    }
    if (!opt.only || strcmp(opt.only, "tape") != 0)
        print_machine(&opt);
    int ran = 0;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (!opt.only || strcmp(opt.only, sections[i].name) == 0) {
            sections[i].run(&opt);
            ran = 1;
        }
    if (!ran)
        usage();
    if (!opt.only || strcmp(opt.only, "matmul") == 0)
        print_table(&opt);
    if (!opt.only || strcmp(opt.only, "recurrent") == 0)
        print_recurrent_table(&opt);
    return 0;
}
