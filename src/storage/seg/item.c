/* storage/seg/item.c: the layout of an item in a segment.
 *
 * An item is a 4-byte header word (value length: 20 bits, key length: 8,
 * flags: 4), then only the optional fields it needs (exptime, client flags,
 * an explicit CAS for a copy that moved), then key and value, padded to 8
 * bytes. An item without TTL or client flags costs 4 bytes plus padding.
 */
#include "seg_internal.h"

#include <string.h>

char *item_write(char *p, const char *key, uint32_t klen, uint32_t vlen, uint32_t bits,
                 uint32_t exptime, uint32_t cflags, uint64_t cas)
{
    uint32_t hdr = vlen | (klen << 20) | (bits << 28);
    memcpy(p, &hdr, 4);
    p += 4;
    if (bits & IT_HAS_EXP) {
        memcpy(p, &exptime, 4);
        p += 4;
    }
    if (bits & IT_HAS_CFLAGS) {
        memcpy(p, &cflags, 4);
        p += 4;
    }
    if (bits & IT_HAS_CAS) {
        memcpy(p, &cas, 8);
        p += 8;
    }
    memcpy(p, key, klen);
    return p + klen;
}
