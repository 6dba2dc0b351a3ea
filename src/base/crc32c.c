/* CRC-32C (keel/crc32c.h).
 *
 * Reflected polynomial 0x82F63B78. The hardware path feeds the crc32
 * instruction 8 bytes at a time; the portable path uses eight 256-entry
 * tables (slice-by-8), built once from the polynomial at start-up.
 */
#include "keel/crc32c.h"

#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_tables[8][256];
static bool hw_available;

__attribute__((constructor)) static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (CRC32C_POLY & (0u - (crc & 1)));
        crc_tables[0][i] = crc;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tables[t][i] =
                (crc_tables[t - 1][i] >> 8) ^ crc_tables[0][crc_tables[t - 1][i] & 0xff];
    __builtin_cpu_init();
    hw_available = __builtin_cpu_supports("sse4.2");
}

bool kl_crc32c_hw_available(void) { return hw_available; }

uint32_t kl_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc;
        crc = crc_tables[7][word & 0xff] ^ crc_tables[6][(word >> 8) & 0xff] ^
              crc_tables[5][(word >> 16) & 0xff] ^ crc_tables[4][(word >> 24) & 0xff] ^
              crc_tables[3][(word >> 32) & 0xff] ^ crc_tables[2][(word >> 40) & 0xff] ^
              crc_tables[1][(word >> 48) & 0xff] ^ crc_tables[0][word >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_tables[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

__attribute__((target("sse4.2"))) uint32_t kl_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc & 0xffffffffu;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

uint32_t kl_crc32c(uint32_t crc, const void *data, size_t len)
{
    return hw_available ? kl_crc32c_hw(crc, data, len) : kl_crc32c_portable(crc, data, len);
}
