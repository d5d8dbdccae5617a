/* The installed library as a downstream project meets it. `make test`
 * installs a fresh copy under $(BUILD)/stage (`make stage`) before the
 * suites run; these tests read what was installed - headers, pkg-config
 * file, soname, exported symbols - and build the programs of
 * tests/consumer/ against it with pkg-config, in C and in C++, linked to
 * the shared and to the static library, and run them. Programs are built
 * with the flags of this build (TG_CONSUMER_FLAGS), so a sanitizer build
 * checks them too. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define PKG_CONFIG "PKG_CONFIG_PATH=" TG_STAGE "/lib/pkgconfig pkg-config"
#define INCLUDE_DIR TG_STAGE "/include/tapegrad/"
#define OUT TG_STAGE "-programs"

enum { OUTPUT_MAX = 1 << 16, MAX_HEADERS = 64, MAX_FUNCTIONS = 1024 };

/* A function declared in an installed header. */
typedef struct {
    char name[64];
    char header[64]; /* relative to include/tapegrad/, e.g. "core/tensor.h" */
    int line;
} declared;

static char *run(int *status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *run_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int installed_headers(char names[][64]);
static int declared_functions(declared *out);
static char *exported_symbols(void);
static bool in_list(const char *list, const char *word);
static void trim(char *s);
static const char *expected_soname(void);

static void setup(void)
{
    ck_assert_int_eq(tu_run("mkdir -p " OUT, NULL, 0), 0);
}

/* ---- what is installed ------------------------------------------------------------- */

START_TEST(installs_the_public_headers_and_nothing_else)
{
    char headers[MAX_HEADERS][64];
    int n = installed_headers(headers); /* the umbrella's list */
    char *found = run_ok("cd " INCLUDE_DIR " && find . -type f | sed 's|^\\./||' | sort");
    int n_found = 0;
    for (char *line = strtok(found, "\n"); line; line = strtok(NULL, "\n"), n_found++) {
        bool listed = strcmp(line, "tapegrad.h") == 0;
        for (int i = 0; i < n && !listed; i++)
            listed = strcmp(line, headers[i]) == 0;
        ck_assert_msg(listed, "%s is installed but tapegrad.h does not include it", line);
    }
    ck_assert_int_eq(n_found, n + 1);
    free(found);
    const char *internal[] = {"core/bytes.h",      "core/iter.h",         "core/isa.h",
                              "core/npy_stream.h", "core/spin.h",         "core/team.h",
                              "ops/each.h",        "ops/gemm_kernels.h",  "ops/gemm_packed.h",
                              "ops/internal.h",    "ops/vmath.h",         "ops/vmath_kernels.h",
                              "nn/fused_internal.h", "optim/internal.h"};
    for (size_t i = 0; i < sizeof internal / sizeof *internal; i++) {
        char path[256];
        snprintf(path, sizeof path, INCLUDE_DIR "%s", internal[i]);
        ck_assert_msg(access(path, F_OK) != 0, "the internal header %s is installed", internal[i]);
    }
}
END_TEST

START_TEST(pkg_config_points_at_the_include_root)
{
    char *cflags = run_ok(PKG_CONFIG " --cflags tapegrad");
    char *libs = run_ok(PKG_CONFIG " --libs tapegrad");
    char *version = run_ok(PKG_CONFIG " --modversion tapegrad");
    trim(cflags);
    trim(libs);
    trim(version);
    ck_assert_str_eq(cflags, "-I" TG_STAGE "/include");
    ck_assert_str_eq(libs, "-L" TG_STAGE "/lib -ltapegrad");
    ck_assert_str_eq(version, TG_VERSION_STRING);
    free(cflags);
    free(libs);
    free(version);
}
END_TEST

START_TEST(the_soname_follows_the_abi)
{
    const char *soname = expected_soname();
    char *got = run_ok("readelf -d " TG_STAGE "/lib/libtapegrad.so"
                       " | sed -n 's/.*Library soname: \\[\\(.*\\)\\]/\\1/p'");
    trim(got);
    ck_assert_str_eq(got, soname);
    free(got);
    char *link = run_ok("readlink " TG_STAGE "/lib/libtapegrad.so");
    trim(link);
    ck_assert_str_eq(link, soname);
    free(link);
    link = run_ok("readlink " TG_STAGE "/lib/%s", soname);
    trim(link);
    ck_assert_str_eq(link, "libtapegrad.so." TG_VERSION_STRING);
    free(link);
    ck_assert_str_eq(tg_version(), TG_VERSION_STRING);
    ck_assert_int_eq(tg_version_number(), TG_VERSION_NUMBER);
}
END_TEST

/* Each header compiles on its own (it includes what it uses) in C11 and in
 * C++11, with every warning an error. */
START_TEST(every_header_compiles_alone_in_c_and_cpp)
{
    char headers[MAX_HEADERS][64];
    int n = installed_headers(headers);
    for (int i = 0; i < n; i++) {
        free(run_ok("printf '#include <tapegrad/%s>\\n' | " TG_CONSUMER_CC " -std=c11 -Wall "
                    "-Wextra -Werror -pedantic -fsyntax-only -I" TG_STAGE "/include -x c -",
                    headers[i]));
        free(run_ok("printf '#include <tapegrad/%s>\\n' | " TG_CONSUMER_CXX " -std=c++11 -Wall "
                    "-Wextra -Werror -pedantic -fsyntax-only -I" TG_STAGE "/include -x c++ -",
                    headers[i]));
    }
}
END_TEST

/* A dropped status of tg_params_extend (the layer it was to add would not
 * train) is a warning, so an error with -Werror, in C and in C++. */
START_TEST(ignoring_a_set_building_status_does_not_compile)
{
    const char *compilers[] = {TG_CONSUMER_CC " -x c", TG_CONSUMER_CXX " -x c++"};
    for (int i = 0; i < 2; i++) {
        int status;
        char *out = run(&status,
                        "printf '#include <tapegrad/tapegrad.h>\\nvoid f(tg_params *a, const "
                        "tg_params *b) { tg_params_extend(a, \"x.\", b); }\\n' | %s -Werror "
                        "-c -o /dev/null -I" TG_STAGE "/include -",
                        compilers[i]);
        ck_assert_msg(status != 0 && strstr(out, "ignoring return value") &&
                          strstr(out, "tg_params_extend"),
                      "%s", out);
        free(out);
    }
}
END_TEST

/* ---- exported symbols ------------------------------------------------------------ */

/* nm -D of the installed shared library lists exactly the functions that
 * the installed headers declare; every difference is named with the fix. */
START_TEST(exports_exactly_the_declared_functions)
{
    static declared decl[MAX_FUNCTIONS];
    int n = declared_functions(decl);
    char *exported = exported_symbols();
    char problems[3000] = ""; /* Check refuses much longer messages */
    size_t used = 0;
#define PROBLEM(...)                                                                      \
    do {                                                                                  \
        if (used < sizeof problems)                                                       \
            used += (size_t)snprintf(problems + used, sizeof problems - used, __VA_ARGS__); \
    } while (0)
    for (int i = 0; i < n; i++) {
        if (!in_list(exported, decl[i].name))
            PROBLEM("\n  %s:%d: %s is declared but libtapegrad.so does not export it: start its "
                    "declaration with TG_API (core/api.h) and define it in the library",
                    decl[i].header, decl[i].line, decl[i].name);
        char path[256];
        snprintf(path, sizeof path, INCLUDE_DIR "%s", decl[i].header);
        size_t size;
        char *text = (char *)tu_read_file(path, &size);
        text[size] = '\0';
        const char *line = text;
        for (int k = 1; k < decl[i].line && line; k++)
            line = (line = strchr(line, '\n')) ? line + 1 : NULL;
        if (!line || strncmp(line, "TG_API ", 7) != 0)
            PROBLEM("\n  %s:%d: the declaration of %s does not start with TG_API",
                    decl[i].header, decl[i].line, decl[i].name);
        free(text);
    }
    for (char *name = strtok(exported, " "); name; name = strtok(NULL, " ")) {
        bool found = false;
        for (int i = 0; i < n && !found; i++)
            found = strcmp(decl[i].name, name) == 0;
        if (!found)
            PROBLEM("\n  %s is exported by libtapegrad.so but no installed header declares it: "
                    "declare it without TG_API in an internal header, or make it static (or "
                    "declare it, with TG_API, in a header that tapegrad.h includes)",
                    name);
    }
#undef PROBLEM
    free(exported);
    ck_assert_msg(used == 0, "the installed library's surface:%s", problems);
    ck_assert_int_gt(n, 200);
}
END_TEST

/* A C++ program that takes the address of every declared function links:
 * each has C linkage (extern "C"), whichever header declares it. */
START_TEST(cpp_links_every_declared_function)
{
    static declared decl[MAX_FUNCTIONS];
    int n = declared_functions(decl);
    FILE *f = fopen(OUT "/every_function.cpp", "w");
    ck_assert_ptr_nonnull(f);
    /* volatile: the compiler must keep every address, so the linker must find each one */
    fprintf(f, "#include <tapegrad/tapegrad.h>\n#include <cstdio>\n"
               "typedef void (*any_fn)();\nstatic any_fn const volatile every[] = {\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "    reinterpret_cast<any_fn>(&%s),\n", decl[i].name);
    fprintf(f, "};\nint main()\n{\n    int found = 0;\n    for (auto &f : every)\n"
               "        found += f != nullptr;\n    std::printf(\"%%d\\n\", found);\n}\n");
    ck_assert_int_eq(fclose(f), 0);
    free(run_ok(TG_CONSUMER_CXX " -std=c++11 -Wall -Wextra -Werror " TG_CONSUMER_FLAGS
                " " OUT "/every_function.cpp $(" PKG_CONFIG " --cflags --libs tapegrad)"
                " -o " OUT "/every_function"));
    char *out = run_ok("LD_LIBRARY_PATH=" TG_STAGE "/lib " OUT "/every_function");
    ck_assert_int_eq(atoi(out), n);
    free(out);
}
END_TEST

/* ---- programs built against the installed copy ------------------------------------ */

/* Build `source` with `compiler` against the shared or the static library,
 * run it, and return its output. The static link asks pkg-config for the
 * same flags and keeps only libtapegrad static, as a user would. */
static char *build_and_run(const char *compiler, const char *std, const char *source,
                           const char *program, bool shared)
{
    char *built = run_ok(
        "%s %s -Wall -Wextra -Werror -pedantic %s %s -o " OUT "/%s "
        "$(" PKG_CONFIG " --cflags tapegrad) %s && readelf -d " OUT "/%s",
        compiler, std, TG_CONSUMER_FLAGS, source, program,
        shared ? "$(" PKG_CONFIG " --libs tapegrad) -Wl,-rpath," TG_STAGE "/lib"
               : "-Wl,-Bstatic $(" PKG_CONFIG " --libs tapegrad) -Wl,-Bdynamic -lm -lpthread",
        program);
    bool needs_library = strstr(built, "[" "libtapegrad") != NULL;
    ck_assert_msg(needs_library == shared, "%s %s libtapegrad.so:\n%s", program,
                  shared ? "does not need" : "needs", built);
    if (shared)
        ck_assert_msg(strstr(built, expected_soname()) != NULL, "%s does not need %s:\n%s",
                      program, expected_soname(), built);
    free(built);
    return run_ok(OUT "/%s " OUT "/%s.ckpt", program, program);
}

START_TEST(c_program_against_the_shared_and_the_static_library)
{
    for (int shared = 0; shared < 2; shared++) {
        char *out = build_and_run(TG_CONSUMER_CC, "-std=c11", "consumer/model.c",
                                  shared ? "model_shared" : "model_static", shared);
        ck_assert_msg(strstr(out, "tapegrad " TG_VERSION_STRING " (headers " TG_VERSION_STRING
                                  ")") &&
                          strstr(out, "inference matches training"),
                      "%s", out);
        free(out);
    }
}
END_TEST

START_TEST(cpp_program_trains_against_the_shared_and_the_static_library)
{
    for (int shared = 0; shared < 2; shared++) {
        char *out = build_and_run(TG_CONSUMER_CXX, "-std=c++11", "consumer/train.cpp",
                                  shared ? "train_shared" : "train_static", shared);
        ck_assert_msg(strstr(out, "loss ") != NULL, "%s", out);
        free(out);
    }
}
END_TEST

/* ---- helpers --------------------------------------------------------------------------- */

/* Run shell commands (a subshell, so that every command's stderr is
 * folded into the output); their output (malloc'ed) and exit status. */
static char *run(int *status, const char *fmt, ...)
{
    char command[4000];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(command + 1, sizeof command - 2, fmt, ap);
    va_end(ap);
    ck_assert_msg(len > 0 && (size_t)len < sizeof command - 3, "command too long");
    command[0] = '(';
    strcpy(command + 1 + len, ")");
    char *out = malloc(OUTPUT_MAX);
    ck_assert_ptr_nonnull(out);
    *status = tu_run(command, out, OUTPUT_MAX);
    return out;
}

static char *run_ok(const char *fmt, ...)
{
    char command[4000];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(command, sizeof command, fmt, ap);
    va_end(ap);
    ck_assert_msg(len > 0 && (size_t)len < sizeof command, "command too long");
    int status;
    char *out = run(&status, "%s", command);
    size_t n = strlen(out);
    ck_assert_msg(status == 0, "%s\nexited with %d:\n%s", command, status,
                  n > 3000 ? out + n - 3000 : out);
    return out;
}

/* The headers that the installed umbrella includes, e.g. "core/tensor.h". */
static int installed_headers(char names[][64])
{
    size_t size;
    char *text = (char *)tu_read_file(INCLUDE_DIR "tapegrad.h", &size);
    text[size] = '\0';
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64];
        if (sscanf(line, "#include \"%63[^\"]\"", name) == 1) {
            ck_assert_int_lt(n, MAX_HEADERS);
            strcpy(names[n++], name);
        }
    }
    free(text);
    ck_assert_int_gt(n, 10);
    return n;
}

/* Every function the installed headers declare, with where: GCC's -aux-info
 * writes one line per declaration of the translation unit,
 *     / * <path>:<line>:NC * / extern tg_tensor *tg_tensor_zeros (tg_dtype, ...);
 * and those whose path lies in the installed include directory are ours. */
static int declared_functions(declared *out)
{
    free(run_ok("printf '#include <tapegrad/tapegrad.h>\\n' | gcc -std=c11 -fsyntax-only "
                "-I" TG_STAGE "/include -aux-info " OUT "/declared.txt -x c -"));
    size_t size;
    char *text = (char *)tu_read_file(OUT "/declared.txt", &size);
    text[size] = '\0';
    int n = 0;
    const char *prefix = "/* " INCLUDE_DIR;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, prefix, strlen(prefix)) != 0)
            continue;
        declared d = {0};
        const char *at = line + strlen(prefix), *colon = strchr(at, ':');
        const char *decl = strstr(line, "*/ ");
        const char *paren = decl ? strchr(decl, '(') : NULL;
        ck_assert_msg(colon && paren && (size_t)(colon - at) < sizeof d.header, "%s", line);
        if (strncmp(decl + 3, "static ", 7) == 0)
            continue; /* inline in the header, nothing to export */
        memcpy(d.header, at, (size_t)(colon - at));
        d.line = atoi(colon + 1);
        const char *end = paren;
        while (end > decl && end[-1] == ' ')
            end--;
        const char *start = end;
        while (start > decl && (isalnum((unsigned char)start[-1]) || start[-1] == '_'))
            start--;
        ck_assert_msg(end > start && (size_t)(end - start) < sizeof d.name, "%s", line);
        memcpy(d.name, start, (size_t)(end - start));
        ck_assert_int_lt(n, MAX_FUNCTIONS);
        out[n++] = d;
    }
    free(text);
    return n;
}

/* The names that nm -D lists as defined, separated by single spaces. */
static char *exported_symbols(void)
{
    char *out = run_ok("nm -D --defined-only " TG_STAGE "/lib/libtapegrad.so"
                       " | awk '{ print $3 }' | sort | tr '\\n' ' '");
    trim(out);
    return out;
}

/* True when word is one of the space-separated words of list. */
static bool in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* libtapegrad.so.0.<minor> before 1.0, libtapegrad.so.<major> after (core/api.h). */
static const char *expected_soname(void)
{
    static char soname[64];
    if (TG_VERSION_MAJOR == 0)
        snprintf(soname, sizeof soname, "libtapegrad.so.0.%d", TG_VERSION_MINOR);
    else
        snprintf(soname, sizeof soname, "libtapegrad.so.%d", TG_VERSION_MAJOR);
    return soname;
}

Suite *suite_install(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, installs_the_public_headers_and_nothing_else);
    tcase_add_test(tc, pkg_config_points_at_the_include_root);
    tcase_add_test(tc, the_soname_follows_the_abi);
    tcase_add_test(tc, every_header_compiles_alone_in_c_and_cpp);
    tcase_add_test(tc, ignoring_a_set_building_status_does_not_compile);
    tcase_add_test(tc, exports_exactly_the_declared_functions);
    tcase_add_test(tc, cpp_links_every_declared_function);
    tcase_add_test(tc, c_program_against_the_shared_and_the_static_library);
    tcase_add_test(tc, cpp_program_trains_against_the_shared_and_the_static_library);
    suite_add_tcase(s, tc);
    return s;
}
