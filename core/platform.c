/* Machine probes (see platform.h).
 *
 * The cgroup files are read with open/read into fixed buffers, never
 * through malloc: the probe runs when memory is short. */
#include "platform.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

enum { PATH_BYTES = 4096, CGROUP_FILE_BYTES = 8192 };

static bool read_small_file(const char *path, char *buf, size_t size);
static bool lists_memory(const char *c, const char *stop);
static size_t limit_up_the_tree(const char *mount, const char *group, const char *file);
static bool find_group(const char *self, bool v1, char *group, size_t size);

size_t tg_physical_memory(void)
{
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t bytes;
    if (pages > 0 && page > 0 && !tg_mul_overflows((size_t)pages, (size_t)page, &bytes))
        return bytes;
#endif
    return SIZE_MAX;
}

size_t tg_memory_limit(const char **what)
{
    const char *why = "the machine's memory";
    size_t limit = tg_physical_memory();
    const char *cgroup_why;
    size_t cgroup = tg_cgroup_memory_limit("/proc/self/cgroup", "/sys/fs/cgroup", &cgroup_why);
    if (cgroup < limit) {
        limit = cgroup;
        why = cgroup_why;
    }
    static const struct {
        int resource;
        const char *name;
    } rlimits[2] = {{RLIMIT_AS, "its RLIMIT_AS"}, {RLIMIT_DATA, "its RLIMIT_DATA"}};
    for (int i = 0; i < 2; i++) {
        struct rlimit r;
        if (getrlimit(rlimits[i].resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY &&
            (uint64_t)r.rlim_cur < (uint64_t)limit) {
            limit = (size_t)r.rlim_cur;
            why = rlimits[i].name;
        }
    }
    if (what)
        *what = why;
    return limit;
}

size_t tg_cgroup_memory_limit(const char *self_cgroup, const char *mount, const char **what)
{
    char self[CGROUP_FILE_BYTES], group[PATH_BYTES], root[PATH_BYTES];
    size_t limit = SIZE_MAX;
    if (what)
        *what = "no cgroup limit";
    if (!read_small_file(self_cgroup, self, sizeof self))
        return limit;
    if (find_group(self, false, group, sizeof group)) {
        limit = limit_up_the_tree(mount, group, "memory.max");
        if (what && limit != SIZE_MAX)
            *what = "its cgroup's memory.max";
    }
    snprintf(root, sizeof root, "%s/memory", mount);
    if (find_group(self, true, group, sizeof group)) {
        size_t v1 = limit_up_the_tree(root, group, "memory.limit_in_bytes");
        if (v1 < limit) {
            limit = v1;
            if (what)
                *what = "its cgroup's memory.limit_in_bytes";
        }
    }
    return limit;
}

uint64_t tg_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- helpers ------------------------------------------------------------------- */

/* The whole file (up to size - 1 bytes), terminated. */
static bool read_small_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t n = 0;
    ssize_t got;
    while (n + 1 < size && (got = read(fd, buf + n, size - 1 - n)) > 0)
        n += (size_t)got;
    close(fd);
    buf[n] = '\0';
    return n > 0;
}

/* Whether the comma-separated controllers c..stop include "memory". */
static bool lists_memory(const char *c, const char *stop)
{
    while (c < stop) {
        size_t len = strcspn(c, ",:");
        if (len == 6 && strncmp(c, "memory", 6) == 0)
            return true;
        c += len + 1;
    }
    return false;
}

/* The group of this process in /proc/self/cgroup's lines
 * "id:controllers:/path": the v2 line "0::/path", or the v1 line whose
 * controllers include "memory". */
static bool find_group(const char *self, bool v1, char *group, size_t size)
{
    for (const char *line = self, *next; *line; line = next) {
        const char *end = line + strcspn(line, "\n");
        next = *end ? end + 1 : end;
        const char *colon = memchr(line, ':', (size_t)(end - line));
        const char *second = colon ? memchr(colon + 1, ':', (size_t)(end - colon - 1)) : NULL;
        if (!second)
            continue;
        bool match = v1 ? lists_memory(colon + 1, second)
                        : second == colon + 1 && colon == line + 1 && line[0] == '0';
        size_t len = (size_t)(end - second - 1);
        if (match && len < size) {
            memcpy(group, second + 1, len);
            group[len] = '\0';
            return true;
        }
    }
    return false;
}

/* The least limit in `file` of the group and each of its parents up to the
 * mount point ("max" or a missing file: none). */
static size_t limit_up_the_tree(const char *mount, const char *group, const char *file)
{
    char dir[PATH_BYTES], path[PATH_BYTES + 64], value[64];
    size_t limit = SIZE_MAX;
    if ((size_t)snprintf(dir, sizeof dir, "%s%s", mount, group) >= sizeof dir)
        return limit;
    size_t floor = strlen(mount);
    for (;;) {
        size_t len = strlen(dir);
        while (len > floor && dir[len - 1] == '/') /* "/a/b/" -> "/a/b" */
            dir[--len] = '\0';
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if (read_small_file(path, value, sizeof value) && value[0] >= '0' && value[0] <= '9') {
            unsigned long long v = strtoull(value, NULL, 10);
            if (v < (unsigned long long)limit)
                limit = (size_t)v;
        }
        char *slash = strrchr(dir, '/');
        if (len <= floor || !slash || (size_t)(slash - dir) < floor)
            return limit;
        *slash = '\0';
    }
}
