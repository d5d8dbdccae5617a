/* CRC-32 as used by zlib, PNG and gzip (IEEE 802.3 polynomial 0x04C11DB7,
 * reflected, initial value and final XOR 0xFFFFFFFF): checkpoints store one
 * per tensor and one for the whole file. crc32("123456789") = 0xCBF43926. */
#ifndef TG_CRC32_H
#define TG_CRC32_H

#include <stddef.h>
#include <stdint.h>

#include "../core/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CRC-32 of n bytes. */
TG_API uint32_t tg_crc32(const void *data, size_t n);

/* Continue a CRC over more bytes: start from 0, feed pieces in order;
 * tg_crc32_update(tg_crc32_update(0, a, na), b, nb) == crc32(a followed by b). */
TG_API uint32_t tg_crc32_update(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif

#endif
