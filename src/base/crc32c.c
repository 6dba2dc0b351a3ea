/* CRC-32C (keel/crc32c.h).
 *
 * Reflected polynomial 0x82F63B78. The hardware path feeds the crc32
 * instruction 8 bytes at a time; the portable path uses eight 256-entry
 * tables (slice-by-8), built once from the polynomial at start-up.
 *
 * The crc32 instruction takes 3 cycles but can start one per cycle, so one
 * chain of them runs at a third of the CPU's pace. Buffers of 3 x STRIDE
 * bytes or more go as three chains at once over neighbouring STRIDE-byte
 * pieces (the first continuing the running CRC, the others from 0), joined
 * after each round: the CRC register is linear, so the register after
 * a || b is shift(register after a) ^ (register of b from 0), where shift
 * advances a register over STRIDE zero bytes. shift is four 256-entry
 * tables (one per byte of the register), built at start-up with the
 * instruction itself. A 4 KiB record's check takes about half the time.
 */
#include "keel/crc32c.h"

#include <string.h>

#define CRC32C_POLY 0x82F63B78u

#define STRIDE 256 /* bytes per chain and round of the three-chain path */

static uint32_t crc_tables[8][256];
static uint32_t shift_tables[4][256]; /* a register advanced over STRIDE zero bytes */
static bool hw_available;

__attribute__((target("sse4.2"))) static uint64_t chain(uint64_t c, const uint8_t *p, size_t words)
{
    for (size_t i = 0; i < words; i++) {
        uint64_t word;
        memcpy(&word, p + 8 * i, 8);
        c = __builtin_ia32_crc32di(c, word);
    }
    return c;
}

static void shift_init(void)
{
    static const uint8_t zeros[STRIDE];
    for (uint32_t byte = 0; byte < 4; byte++)
        for (uint32_t v = 0; v < 256; v++)
            shift_tables[byte][v] = (uint32_t)chain((uint64_t)v << (8 * byte), zeros, STRIDE / 8);
}

static inline uint32_t shift(uint32_t c)
{
    return shift_tables[0][c & 0xff] ^ shift_tables[1][(c >> 8) & 0xff] ^
           shift_tables[2][(c >> 16) & 0xff] ^ shift_tables[3][c >> 24];
}

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
    if (hw_available)
        shift_init();
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
    while (len >= 3 * STRIDE) {
        uint64_t a = c, b = 0, d = 0;
        for (size_t off = 0; off < STRIDE; off += 8) { /* three independent chains */
            uint64_t wa, wb, wd;
            memcpy(&wa, p + off, 8);
            memcpy(&wb, p + STRIDE + off, 8);
            memcpy(&wd, p + 2 * STRIDE + off, 8);
            a = __builtin_ia32_crc32di(a, wa);
            b = __builtin_ia32_crc32di(b, wb);
            d = __builtin_ia32_crc32di(d, wd);
        }
        c = shift(shift((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
        p += 3 * STRIDE;
        len -= 3 * STRIDE;
    }
    c = chain(c, p, len / 8);
    p += len / 8 * 8;
    len %= 8;
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

uint32_t kl_crc32c(uint32_t crc, const void *data, size_t len)
{
    return hw_available ? kl_crc32c_hw(crc, data, len) : kl_crc32c_portable(crc, data, len);
}
