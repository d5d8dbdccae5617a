/* Files from outside, read safely, and files written atomically: what the
 * .npy, checkpoint and text readers and writers share (internal).
 *
 * Reading: a path is opened without blocking and checked to be a regular
 * file before a byte is read, so a FIFO, a terminal or /dev/zero is refused
 * at once instead of hanging or reading without end; its size bounds what
 * is read.
 *
 * Writing: the data goes to a new temporary file beside the destination,
 * "<path>.<pid>.tmp" (or "<path>.<pid>.<k>.tmp" when that name is taken),
 * created exclusively (O_CREAT | O_EXCL | O_NOFOLLOW: never an existing
 * file, never through a symbolic link planted at the name), given the mode
 * of the file it replaces, flushed and fsync'ed, then renamed over the
 * destination, and the directory is fsync'ed. Two processes or threads
 * saving to one path each write their own temporary file, so a reader sees
 * the old file or one of the new ones, whole; a crash or kill -9 leaves the
 * destination whole too (and at most a stray temporary file). */
#ifndef TG_FILES_H
#define TG_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

/* Open path for reading (binary). On failure NULL and a TG_ERR_IO message
 * "<who>: cannot open '<path>': <reason>" or "<who>: '<path>' is not a
 * regular file (...)". *size is the file's length in bytes. */
FILE *tg_file_open_regular(const char *who, const char *path, uint64_t *size);

/* A file being written to replace `path`. */
typedef struct {
    char *who;        /* names the caller in messages, e.g. "checkpoint run.ckpt" */
    const char *path; /* the destination */
    char *temp;       /* the temporary file (malloc'd), NULL when none */
    FILE *f;          /* writes go here */
} tg_file_writer;

/* Create the temporary file and open w->f on it. TG_ERR_IO (or NOMEM) with
 * a message on failure; then nothing exists on disk. */
tg_status tg_file_begin(tg_file_writer *w, const char *who, const char *path);
/* Flush, fsync and close the temporary file. `write_error` is the errno of
 * a write the caller saw fail (0 if none). On failure the temporary file is
 * removed. */
tg_status tg_file_finish(tg_file_writer *w, int write_error);
/* Rename the finished temporary file over the destination and fsync the
 * directory. On failure the temporary file is removed. */
tg_status tg_file_commit(tg_file_writer *w);
/* Forget the writer; removes the temporary file if `remove_temp` (an
 * abandoned write), keeps it otherwise (a finished one, left on purpose). */
void tg_file_end(tg_file_writer *w, bool remove_temp);

#endif
