/* Command-line options for the example programs, described by a table and
 * parsed by one function that never exits: it returns a status and a
 * message, so a program decides how to report and a fuzz target
 * (tests/fuzz/fuzz_cli.c) can call it with any argv. Header-only (static
 * functions) so that each example stays a single program.
 *
 *     static const cli_choice cells[] = {{"rnn", TG_CELL_RNN}, {"lstm", TG_CELL_LSTM}, {0}};
 *     cli_option table[] = {
 *         CLI_INTEGER("--hidden", &o.hidden, 1, 8192),
 *         CLI_NUMBER("--lr", &o.lr, 1e-9, 10),
 *         CLI_ONE_OF("--cell", &o.cell, cells),
 *         CLI_TEXT("--save", &o.save),
 *         CLI_SWITCH("--sample", &o.sample),
 *     };
 *     char message[256];
 *     switch (cli_parse(table, n, argc, argv, &o.data, message, sizeof message)) ...
 *
 * Every option but a flag takes the next argument as its value, whatever it
 * looks like (so `--prompt --x` is allowed). An argument that is not an
 * option is positional (the last one wins); "-" alone is positional. */
#ifndef TG_EXAMPLES_CLI_H
#define TG_EXAMPLES_CLI_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    CLI_INT,    /* int in [lo, hi], dest is int * */
    CLI_REAL,   /* finite double in [lo, hi], dest is double * */
    CLI_STRING, /* dest is const char * *, pointing into argv */
    CLI_CHOICE, /* one of choices[].name, dest is int * receiving its value */
    CLI_FLAG    /* no value; dest is int *, set to 1 */
} cli_kind;

typedef struct {
    const char *name; /* NULL ends a list */
    int value;
} cli_choice;

typedef struct {
    const char *name; /* "--hidden" */
    cli_kind kind;
    void *dest;
    double lo, hi;             /* CLI_INT, CLI_REAL */
    const cli_choice *choices; /* CLI_CHOICE */
    int *given;                /* set to 1 when the option appears (may be NULL) */
} cli_option;

/* Table rows (designated initializers leave the other fields zero). */
#define CLI_INTEGER(n, d, l, h) {.name = (n), .kind = CLI_INT, .dest = (d), .lo = (l), .hi = (h)}
#define CLI_NUMBER(n, d, l, h) {.name = (n), .kind = CLI_REAL, .dest = (d), .lo = (l), .hi = (h)}
#define CLI_TEXT(n, d) {.name = (n), .kind = CLI_STRING, .dest = (d)}
#define CLI_ONE_OF(n, d, c) {.name = (n), .kind = CLI_CHOICE, .dest = (d), .choices = (c)}
#define CLI_SWITCH(n, d) {.name = (n), .kind = CLI_FLAG, .dest = (d)}

typedef enum {
    CLI_OK = 0,   /* every option parsed */
    CLI_HELP = 1, /* --help or -h: print the usage, exit 0 */
    CLI_ERROR = 2,  /* message says what is wrong: print it, exit 2 */
    CLI_UNKNOWN = 3 /* the same for an unknown option: print the usage too */
} cli_status;

static cli_status cli_error(char *message, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static cli_status cli_value(const cli_option *opt, const char *value, char *message,
                            size_t size);

/* Parse argv[1..argc) against table[0..n). Destinations of options that do
 * not appear keep their values (the defaults). On CLI_ERROR and CLI_UNKNOWN
 * the message says why, e.g. "--hidden needs an integer in [1, 8192] (got
 * 'abc')", and the destinations may be partly filled. positional may be
 * NULL. Bounds of CLI_INT options must lie within int. */
static cli_status cli_parse(const cli_option *table, int n, int argc, char *const *argv,
                            const char **positional, char *message, size_t size)
{
    if (size > 0)
        message[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const cli_option *opt = NULL;
        for (int k = 0; k < n && !opt; k++)
            if (strcmp(a, table[k].name) == 0)
                opt = &table[k];
        if (!opt) {
            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
                return CLI_HELP;
            if (a[0] == '-' && a[1] != '\0') {
                cli_error(message, size, "unknown option '%s'", a);
                return CLI_UNKNOWN;
            }
            if (positional)
                *positional = a;
            continue;
        }
        if (opt->given)
            *opt->given = 1;
        if (opt->kind == CLI_FLAG) {
            *(int *)opt->dest = 1;
            continue;
        }
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        cli_status s = cli_value(opt, value, message, size);
        if (s != CLI_OK)
            return s;
    }
    return CLI_OK;
}

/* What a program does with cli_parse's answer, the same in every example:
 * CLI_HELP prints the usage on stdout and gives exit status 0; CLI_ERROR
 * prints "program: message" on stderr and gives 2, CLI_UNKNOWN the usage
 * too. CLI_OK gives -1: carry on. Prints only; the caller exits. */
static inline int cli_exit_status(cli_status s, const char *program, const char *message,
                                  void (*usage)(FILE *))
{
    if (s == CLI_OK)
        return -1;
    if (s == CLI_HELP) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "%s: %s\n", program, message);
    if (s == CLI_UNKNOWN)
        usage(stderr);
    return 2;
}

/* ---- helpers ---------------------------------------------------------------------- */

static cli_status cli_error(char *message, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (size > 0)
        vsnprintf(message, size, fmt, ap);
    va_end(ap);
    return CLI_ERROR;
}

/* Store one option's value (value is NULL when argv ran out). */
static cli_status cli_value(const cli_option *opt, const char *value, char *message,
                            size_t size)
{
    if (opt->kind == CLI_CHOICE) {
        /* "--cell needs rnn, lstm or gru": the message lists the choices. */
        for (const cli_choice *c = opt->choices; value && c->name; c++)
            if (strcmp(value, c->name) == 0) {
                *(int *)opt->dest = c->value;
                return CLI_OK;
            }
        char list[256];
        size_t used = 0;
        list[0] = '\0';
        for (const cli_choice *c = opt->choices; c->name && used < sizeof list; c++) {
            const char *sep = c == opt->choices ? "" : c[1].name ? ", " : " or ";
            int w = snprintf(list + used, sizeof list - used, "%s%s", sep, c->name);
            used += w > 0 ? (size_t)w : 0;
        }
        return cli_error(message, size, "%s needs %s", opt->name, list);
    }
    if (!value)
        return cli_error(message, size, "%s needs a value", opt->name);
    if (opt->kind == CLI_STRING) {
        *(const char **)opt->dest = value;
        return CLI_OK;
    }
    char *end = NULL;
    if (opt->kind == CLI_INT) {
        long v = strtol(value, &end, 10);
        if (*value == '\0' || *end != '\0' || v < opt->lo || v > opt->hi)
            return cli_error(message, size, "%s needs an integer in [%.0f, %.0f] (got '%s')",
                             opt->name, opt->lo, opt->hi, value);
        *(int *)opt->dest = (int)v;
        return CLI_OK;
    }
    double v = strtod(value, &end);
    if (*value == '\0' || *end != '\0' || !(v >= opt->lo && v <= opt->hi))
        return cli_error(message, size, "%s needs a number in [%g, %g] (got '%s')", opt->name,
                         opt->lo, opt->hi, value);
    *(double *)opt->dest = v;
    return CLI_OK;
}

#endif
