/* storage/numbers.c: the decimal numbers of incr/decr, shared by the
 * engines (storage/numbers.h). */
#include "storage/numbers.h"

/* Parse a value as memcached's incr/decr does: 1-20 digits, at most 2^64-1. */
bool engine_parse_u64(const char *p, uint32_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

uint32_t engine_format_u64(uint64_t v, char *buf)
{
    char tmp[20];
    uint32_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (uint32_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}
