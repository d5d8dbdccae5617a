/* Benchmarks: one machine-readable line per measurement, then a table.
 *
 *     bench [--only matmul] [--dtype f32|f64|all] [--threads 1,2] [--sizes 128,512]
 *           [--shapes 1024x32x384,...] [--reps 7] [--best] [--layout nn|nt|tn|tt]
 *
 * Lines look like
 *     bench matmul m=1024 n=32 k=384 dtype=f32 threads=2 gflops=120.5
 * where the rate is the median over --reps repetitions, each timing enough
 * calls to last about 20 ms (--best: the fastest repetition, which is the
 * steadier figure on a machine shared with other work). --layout stores A
 * and/or B transposed (t), as the backward pass reads them: dW = dZ @ X^T is
 * "nt", dX = W^T @ dZ is "tn"; the lines then end in " layout=nt". A section is a function in the `sections`
 * table below: add one there to benchmark something new. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static void bench_matmul(const options *opt);

static const struct {
    const char *name;
    void (*run)(const options *opt);
} sections[] = {
    {"matmul", bench_matmul},
};

static void usage(void)
{
    fprintf(stderr, "usage: bench [--only SECTION] [--dtype f32|f64|all] [--threads 1,2]\n"
                    "             [--sizes 128,256] [--shapes MxNxK,...] [--reps N] [--best]\n"
                    "             [--layout nn|nt|tn|tt]\n");
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
                     .n_threads = 2, .reps = 7, .layout = "nn"};
    int sizes_given = 0, shapes_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--best") == 0) {
            opt->best = 1;
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
        } else if (strcmp(a, "--sizes") == 0) {
            int sizes[MAX_LIST], n = parse_ints(v, sizes);
            for (int j = 0; j < n; j++)
                add_shape(opt, sizes[j], sizes[j], sizes[j]);
            sizes_given = 1;
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
            shapes_given = 1;
        } else if (strcmp(a, "--reps") == 0) {
            opt->reps = atoi(v);
            if (opt->reps < 1)
                usage();
        } else if (strcmp(a, "--layout") == 0) {
            if (strlen(v) != 2 || !strchr("nt", v[0]) || !strchr("nt", v[1]))
                usage();
            memcpy(opt->layout, v, 3);
        } else if (strcmp(a, "--only") == 0) {
            opt->only = v;
        } else {
            usage();
        }
    }
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

int main(int argc, char **argv)
{
    options opt;
    parse_options(argc, argv, &opt);
    int ran = 0;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (!opt.only || strcmp(opt.only, sections[i].name) == 0) {
            sections[i].run(&opt);
            ran = 1;
        }
    if (!ran)
        usage();
    print_table(&opt);
    return 0;
}
