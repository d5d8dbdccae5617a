/* The .npy format on an open stream (internal: tg_npy_save and tg_npy_load
 * wrap these around a file; the .npz reader and writer of optim/npz.c feed
 * them the members of a zip archive). `path` only names the data in
 * messages. */
#ifndef TG_NPY_STREAM_H
#define TG_NPY_STREAM_H

#include <stdint.h>
#include <stdio.h>

#include "tensor.h"

/* Write t as a whole .npy image at f's position. */
tg_status tg_npy_write_stream(FILE *f, const tg_tensor *t, const char *path);

/* Read a .npy image of exactly `size` bytes from f's position into a new
 * persistent C-order tensor; NULL on error (see tg_last_error). */
tg_tensor *tg_npy_read_stream(FILE *f, const char *path, uint64_t size);

#endif
