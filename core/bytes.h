/* Byte order, for the file formats (checkpoints and .npy), which store
 * little-endian values whatever the host. */
#ifndef TG_BYTES_H
#define TG_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline bool tg_host_is_little_endian(void)
{
    uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

/* Reverse the bytes of each of count elements of elsize bytes, in place. */
static inline void tg_swap_elements(void *data, size_t count, size_t elsize)
{
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += elsize)
        for (size_t a = 0, b = elsize - 1; a < b; a++, b--) {
            unsigned char tmp = p[a];
            p[a] = p[b];
            p[b] = tmp;
        }
}

#endif
