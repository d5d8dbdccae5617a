/* CRC-32 (see crc32.h): a 256-entry table, one lookup per byte. The table is
 * built once from the reflected polynomial 0xEDB88320 under pthread_once, so
 * concurrent first calls are safe and no constant table is pasted in. */
#include "crc32.h"

#include <pthread.h>

#define CRC32_REFLECTED_POLY 0xEDB88320u

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t c = byte;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1u) ? (c >> 1) ^ CRC32_REFLECTED_POLY : c >> 1;
        table[byte] = c;
    }
}

uint32_t tg_crc32_update(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&table_once, build_table);
    const unsigned char *p = data;
    /* The running value is kept pre-inverted so that pieces chain. */
    uint32_t c = crc ^ 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t tg_crc32(const void *data, size_t n) { return tg_crc32_update(0, data, n); }
