/* Error reporting: status codes and the message of the most recent failure.
 *
 * Library code never aborts on bad input. A function that fails returns a
 * status (or NULL) and leaves a message that names the function and, where
 * shapes are involved, the shapes. Tape operations also keep the first error
 * on their tape (see tape.h); everything else keeps it per thread here. */
#ifndef TG_ERROR_H
#define TG_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TG_OK = 0,
    TG_ERR_ARG,       /* NULL pointer or an argument out of its range */
    TG_ERR_SHAPE,     /* shapes that do not fit together */
    TG_ERR_DTYPE,     /* f32 and f64 mixed, or an unknown dtype */
    TG_ERR_OVERFLOW,  /* a size that does not fit in memory arithmetic */
    TG_ERR_NOMEM,     /* malloc failed, or the tape's memory limit was hit */
    TG_ERR_STATE,     /* the call is not allowed now (errored tape, backward twice) */
    TG_ERR_NONFINITE, /* NaN or Inf found where finite numbers are required */
    TG_ERR_IO,        /* a file could not be opened, read or written */
    TG_ERR_FORMAT     /* a file's contents are corrupt, truncated or mismatched */
} tg_status;

/* Message of the most recent failure in this thread ("" if none). */
TG_API const char *tg_last_error(void);

/* Status of the most recent failure in this thread (TG_OK if none). */
TG_API tg_status tg_last_status(void);

/* Forget the last failure of this thread. */
TG_API void tg_clear_error(void);

/* Short name of a status, e.g. "shape error". */
TG_API const char *tg_status_name(tg_status status);

/* Record a failure for this thread and return `status`, so that callers can
 * write `return tg_fail(TG_ERR_ARG, "tg_x: bad y %d", y);`. */
TG_API tg_status tg_fail(tg_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Overflow-checked size arithmetic: return 0 on success, 1 on overflow. */
TG_API int tg_mul_overflows(size_t a, size_t b, size_t *out);
TG_API int tg_add_overflows(size_t a, size_t b, size_t *out);

#ifdef __cplusplus
}
#endif

#endif
