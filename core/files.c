/* Safe reading and atomic writing of files (see files.h). */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Enough tries to step over leftovers of crashed savers with this pid. */
enum { TEMP_TRIES = 1000 };

static char *temp_name(const char *path, int k);
static tg_status sync_directory(const tg_file_writer *w);

FILE *tg_file_open_regular(const char *who, const char *path, uint64_t *size)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer; it only affects the open here, and is cleared before reading. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        tg_fail(TG_ERR_IO, "%s: cannot open '%s': %s", who, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        tg_fail(TG_ERR_IO, "%s: '%s' is not a regular file (a directory, FIFO or device is "
                "refused unread)", who, path);
        close(fd);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    FILE *f = flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 ? fdopen(fd, "rb")
                                                                         : NULL;
    if (!f) {
        tg_fail(TG_ERR_IO, "%s: cannot open '%s': %s", who, path, strerror(errno));
        close(fd);
        return NULL;
    }
    *size = (uint64_t)st.st_size;
    return f;
}

tg_status tg_file_begin(tg_file_writer *w, const char *who, const char *path)
{
    *w = (tg_file_writer){.who = strdup(who), .path = path};
    if (!w->who)
        return tg_fail(TG_ERR_NOMEM, "%s: out of memory", who);
    int fd = -1, error = EEXIST;
    for (int k = 0; k < TEMP_TRIES && fd < 0 && error == EEXIST; k++) {
        free(w->temp);
        if (!(w->temp = temp_name(path, k))) {
            tg_file_end(w, false);
            return tg_fail(TG_ERR_NOMEM, "%s: out of memory", who);
        }
        fd = open(w->temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        error = fd < 0 ? errno : 0;
    }
    if (fd < 0) {
        tg_fail(TG_ERR_IO, "%s: cannot create a temporary file beside it ('%s'): %s", who,
                w->temp, strerror(error));
        tg_file_end(w, false);
        return TG_ERR_IO;
    }
    /* A replaced file keeps its permissions (a private checkpoint stays 600). */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        (void)fchmod(fd, st.st_mode & 07777);
    if (!(w->f = fdopen(fd, "wb"))) {
        tg_fail(TG_ERR_IO, "%s: cannot write '%s': %s", who, w->temp, strerror(errno));
        close(fd);
        tg_file_end(w, true);
        return TG_ERR_IO;
    }
    return TG_OK;
}

tg_status tg_file_finish(tg_file_writer *w, int write_error)
{
    int error = write_error;
    if (fflush(w->f) != 0 && !error)
        error = errno;
    if (fsync(fileno(w->f)) != 0 && !error)
        error = errno;
    if (fclose(w->f) != 0 && !error)
        error = errno;
    w->f = NULL;
    if (error) {
        tg_fail(TG_ERR_IO, "%s: cannot write '%s': %s", w->who, w->temp, strerror(error));
        tg_file_end(w, true);
        return TG_ERR_IO;
    }
    return TG_OK;
}

tg_status tg_file_commit(tg_file_writer *w)
{
    if (rename(w->temp, w->path) != 0) {
        tg_fail(TG_ERR_IO, "%s: cannot rename '%s' over it: %s", w->who, w->temp,
                strerror(errno));
        tg_file_end(w, true);
        return TG_ERR_IO;
    }
    free(w->temp);
    w->temp = NULL;
    /* The rename itself is durable only once the directory is synced. */
    return sync_directory(w);
}

void tg_file_end(tg_file_writer *w, bool remove_temp)
{
    if (w->f)
        fclose(w->f);
    if (w->temp && remove_temp)
        remove(w->temp);
    free(w->temp);
    free(w->who);
    w->f = NULL;
    w->temp = NULL;
    w->who = NULL;
}

/* ---- helpers ------------------------------------------------------------------ */

/* "<path>.<pid>.tmp", then "<path>.<pid>.<k>.tmp" (malloc'd). */
static char *temp_name(const char *path, int k)
{
    size_t n = strlen(path) + 48;
    char *name = malloc(n);
    if (!name)
        return NULL;
    if (k == 0)
        snprintf(name, n, "%s.%ld.tmp", path, (long)getpid());
    else
        snprintf(name, n, "%s.%ld.%d.tmp", path, (long)getpid(), k);
    return name;
}

static tg_status sync_directory(const tg_file_writer *w)
{
    const char *slash = strrchr(w->path, '/');
    size_t n = slash ? (size_t)(slash - w->path) : 0;
    char *dir = malloc(n + 2);
    if (!dir)
        return tg_fail(TG_ERR_NOMEM, "%s: out of memory", w->who);
    if (!slash)
        strcpy(dir, ".");
    else if (n == 0)
        strcpy(dir, "/");
    else {
        memcpy(dir, w->path, n);
        dir[n] = '\0';
    }
    tg_status s = TG_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* Some file systems cannot sync a directory (EINVAL); the rename has
     * happened either way. */
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        s = tg_fail(TG_ERR_IO, "%s: saved, but syncing the directory '%s' failed: %s", w->who,
                    dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return s;
}
