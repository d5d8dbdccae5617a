/* numpy's .npy format: one tensor per file, to exchange arrays with numpy.
 *
 *     tg_npy_save("W.npy", W);          ->  np.load("W.npy")
 *     np.save("x.npy", x)               ->  tg_tensor *x = tg_npy_load("x.npy");
 *
 * A .npy file is the magic "\x93NUMPY", a version (major, minor byte), the
 * header length (uint16 little-endian for version 1.0, uint32 for 2.0 and
 * 3.0), an ASCII header that is a Python dict literal
 *     {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline, then the raw element data.
 *
 * Supported: dtypes '<f4' (f32) and '<f8' (f64); C order and Fortran order
 * (a Fortran-order file is reordered into a C-order tensor on load); versions
 * 1.0, 2.0 and 3.0 on read; version 1.0 on write (a header of at most six
 * dimensions always fits it). Files are little-endian on every host.
 *
 * Anything else - big-endian or other dtypes, a bad magic, an unknown
 * version, a header that does not parse (a control or NUL byte inside a
 * string included) or lies about the data length, a shape whose size
 * overflows, truncated data, bytes after the data - is a TG_ERR_FORMAT error
 * whose message names the file and the problem. An empty array (a dimension
 * 0) is valid. A path that is not a regular file (a FIFO, a device) is
 * refused before anything is read. */
#ifndef TG_NPY_H
#define TG_NPY_H

#include "api.h"
#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write t (any strides, f32 or f64) to path; the file holds its values in
 * C order of its shape. Replaces path atomically (a temporary file beside
 * it, fsync, rename: core/files.h), so a full disk or a crash leaves the old
 * file whole. */
TG_API tg_status tg_npy_save(const char *path, const tg_tensor *t);

/* Read path into a new persistent C-order tensor: f32 for '<f4', f64 for
 * '<f8'. NULL on error (see tg_last_error). */
TG_API tg_tensor *tg_npy_load(const char *path);

/* Read path into an existing tensor of the same shape (any strides); the
 * values are converted if the dtypes differ. dst is unchanged on error. */
TG_API tg_status tg_npy_load_into(const char *path, tg_tensor *dst);

#ifdef __cplusplus
}
#endif

#endif
