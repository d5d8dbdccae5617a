/* Per-thread record of the most recent failure; overflow-checked size arithmetic. */
#include "error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

enum { TG_MESSAGE_MAX = 512 };

static _Thread_local char last_message[TG_MESSAGE_MAX];
static _Thread_local tg_status last_status = TG_OK;

const char *tg_last_error(void) { return last_message; }

tg_status tg_last_status(void) { return last_status; }

void tg_clear_error(void)
{
    last_message[0] = '\0';
    last_status = TG_OK;
}

const char *tg_status_name(tg_status status)
{
    switch (status) {
    case TG_OK: return "ok";
    case TG_ERR_ARG: return "invalid argument";
    case TG_ERR_SHAPE: return "shape error";
    case TG_ERR_DTYPE: return "dtype error";
    case TG_ERR_OVERFLOW: return "size overflow";
    case TG_ERR_NOMEM: return "out of memory";
    case TG_ERR_STATE: return "invalid state";
    case TG_ERR_NONFINITE: return "non-finite value";
    case TG_ERR_IO: return "i/o error";
    case TG_ERR_FORMAT: return "format error";
    }
    return "unknown status";
}

tg_status tg_fail(tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}

int tg_mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

int tg_add_overflows(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return 1;
    *out = a + b;
    return 0;
}
