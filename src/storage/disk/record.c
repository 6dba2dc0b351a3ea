/* storage/disk/record.c: the disk engine's record framing.
 *
 * A record is a fixed 40-byte header, the key, the value, and zero padding
 * to 8 bytes. The CRC32C covers everything after the CRC field up to the end
 * of the value, so a torn write, a flipped bit or stale bytes are caught
 * before a value is handed out; the magic and the lengths are checked first
 * so that scanning garbage stays cheap.
 */
#include "disk_internal.h"

#include "keel/crc32c.h"

#include <stddef.h>

char *rec_start(char *p, enum rec_kind kind, const char *key, uint32_t klen, uint32_t vlen,
                uint32_t flags, uint32_t exptime, uint32_t bits, uint64_t cas)
{
    struct rec_hdr h = {
        .magic = REC_MAGIC,
        .kind = (uint8_t)kind,
        .klen = (uint8_t)klen,
        .vlen = vlen,
        .flags = flags,
        .exptime = exptime,
        .bits = bits,
        .cas = cas,
    };
    memcpy(p, &h, sizeof h);
    memcpy(p + REC_HDR, key, klen);
    return p + REC_HDR + klen;
}

/* CRC order: header bytes 4..31, key and value, then the sequence number,
 * so that a record's sequence number can be set last at little cost. */
static uint32_t crc_body(const char *p)
{
    const struct rec_hdr *h = rec_hdr(p);
    uint32_t c = kl_crc32c(0, p + 4, offsetof(struct rec_hdr, seq) - 4);
    return kl_crc32c(c, p + REC_HDR, (size_t)h->klen + h->vlen);
}

uint32_t rec_crc_body(char *p)
{
    const struct rec_hdr *h = rec_hdr(p);
    uint32_t used = REC_HDR + h->klen + h->vlen;
    memset(p + used, 0, rec_size(h->klen, h->vlen) - used);
    return crc_body(p);
}

void rec_seal(char *p, uint64_t seq, uint32_t body_crc)
{
    struct rec_hdr *h = (struct rec_hdr *)p;
    h->seq = seq;
    h->crc = kl_crc32c(body_crc, &h->seq, 8);
}

uint32_t rec_check(const char *p, uint64_t avail)
{
    if (avail < REC_HDR)
        return 0;
    const struct rec_hdr *h = rec_hdr(p);
    if (h->magic != REC_MAGIC || h->kind < REC_PUT || h->kind > REC_FLUSH || h->vlen > REC_MAX)
        return 0;
    uint32_t size = rec_size(h->klen, h->vlen);
    if (size > avail || size > REC_MAX)
        return 0;
    if (kl_crc32c(crc_body(p), &h->seq, 8) != h->crc)
        return 0;
    return size;
}
