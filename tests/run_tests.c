/* Runs every Check suite (the list is generated from tests/test_*.c), or
 * only the suites named on the command line: run_tests tape ops
 *
 * --shard K/N runs every N-th of those suites starting at the K-th (0 <= K
 * < N), so that `make test` can run N runners side by side, one per CPU. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#define TG_SUITE(name) Suite *suite_##name(void);
#include "suites.h"
#undef TG_SUITE

typedef struct {
    const char *name;
    Suite *(*make)(void);
} suite_entry;

static const suite_entry suites[] = {
#define TG_SUITE(name) {#name, suite_##name},
#include "suites.h"
#undef TG_SUITE
};

static int wanted(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

/* Reads "--shard K/N" from argv[1], then removes it from the arguments. */
static int read_shard(int *argc, char **argv, int *k, int *n)
{
    *k = 0, *n = 1;
    if (*argc < 2 || strcmp(argv[1], "--shard") != 0)
        return 0;
    char end;
    if (*argc < 3 || sscanf(argv[2], "%d/%d%c", k, n, &end) != 2 || *n < 1 || *k < 0 ||
        *k >= *n) {
        fprintf(stderr, "run_tests: --shard wants K/N with 0 <= K < N, e.g. --shard 0/2\n");
        return -1;
    }
    for (int i = 3; i <= *argc; i++) /* argv[argc] is NULL and moves too */
        argv[i - 2] = argv[i];
    *argc -= 2;
    return 0;
}

int main(int argc, char **argv)
{
    int shard, shards;
    if (read_shard(&argc, argv, &shard, &shards) != 0)
        return 2;
    SRunner *runner = NULL;
    int matched = 0;
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (!wanted(suites[i].name, argc, argv) || matched++ % shards != shard)
            continue;
        if (!runner)
            runner = srunner_create(suites[i].make());
        else
            srunner_add_suite(runner, suites[i].make());
    }
    if (!runner) {
        if (matched > 0) /* more shards than suites: this one has none */
            return 0;
        fprintf(stderr, "run_tests: no suite matches\n");
        return 2;
    }
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
