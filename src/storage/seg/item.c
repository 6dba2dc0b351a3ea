/* storage/seg/item.c: the layout of an item in a segment.
 *
 * An item is a 4-byte header word (value length: 20 bits, key length: 8,
 * flags: 4), then only the optional fields it needs (exptime, client flags,
 * an explicit CAS for a copy that moved), then key and value, padded to 8
 * bytes. An item without TTL or client flags costs 4 bytes plus padding.
 */
#include "seg_internal.h"

#include <string.h>

uint32_t item_size(uint32_t klen, uint32_t vlen, uint32_t bits)
{
    uint32_t n = 4 + klen + vlen;
    if (bits & IT_HAS_EXP)
        n += 4;
    if (bits & IT_HAS_CFLAGS)
        n += 4;
    if (bits & IT_HAS_CAS)
        n += 8;
    return (n + 7) & ~7u;
}

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

void item_read(const char *p, struct item_view *v)
{
    uint32_t hdr;
    memcpy(&hdr, p, 4);
    v->vlen = hdr & IT_VLEN_MAX;
    v->klen = (hdr >> 20) & 0xff;
    v->bits = hdr >> 28;
    v->size = item_size(v->klen, v->vlen, v->bits);
    p += 4;
    v->exptime = 0;
    v->cflags = 0;
    v->cas = 0;
    if (v->bits & IT_HAS_EXP) {
        memcpy(&v->exptime, p, 4);
        p += 4;
    }
    if (v->bits & IT_HAS_CFLAGS) {
        memcpy(&v->cflags, p, 4);
        p += 4;
    }
    if (v->bits & IT_HAS_CAS) {
        memcpy(&v->cas, p, 8);
        p += 8;
    }
    v->key = p;
    v->value = p + v->klen;
}
