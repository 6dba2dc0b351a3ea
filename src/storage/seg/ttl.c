/* storage/seg/ttl.c: TTL buckets and eager expiry.
 *
 * Items are appended to the open segment of the chain of their TTL: 1024
 * buckets in four ranges of 256 with widths 8 s, 128 s, 2048 s and 32768 s
 * (as Segcache), plus one chain for items that never expire. Segments of a
 * chain are in creation order, so the head expires first: the sweep frees
 * whole segments from each head once their latest exptime has passed. An
 * item's own exptime is checked on every read, so an expired item is never
 * returned between two sweeps.
 */
#include "seg_internal.h"

uint32_t ttl_chain(uint32_t exptime, uint32_t now)
{
    if (exptime == 0)
        return CHAIN_NOEXP;
    if (exptime == KL_EXPTIME_EXPIRED || exptime <= now)
        return 0;
    uint32_t ttl = exptime - now;
    if (ttl < (1u << 11))
        return ttl >> 3;
    if (ttl < (1u << 15))
        return 256 + (ttl >> 7);
    if (ttl < (1u << 19))
        return 512 + (ttl >> 11);
    if (ttl < (1u << 23))
        return 768 + (ttl >> 15);
    return TTL_BUCKETS - 1;
}

void ttl_sweep(struct seg_engine *se, uint32_t now)
{
    for (uint32_t c = 0; c < NCHAINS; c++) {
        for (;;) {
            pthread_spin_lock(&se->seglock);
            int32_t h = se->chains[c].head;
            if (h == NIL) {
                pthread_spin_unlock(&se->seglock);
                break;
            }
            struct seg *s = &se->segs[h];
            uint8_t st = atomic_load(&s->state);
            bool expired = s->max_exp != 0 && s->max_exp <= now;
            if (!expired || atomic_load_explicit(&s->writers, memory_order_acquire) != 0 ||
                (st != SEG_SEALED && st != SEG_ACTIVE)) {
                pthread_spin_unlock(&se->seglock);
                break;
            }
            order_remove(se, (uint32_t)h);
            chain_remove(se, (uint32_t)h);
            atomic_store(&s->state, SEG_EVICTING);
            pthread_spin_unlock(&se->seglock);
            seg_clear(se, (uint32_t)h, 1);
            atomic_fetch_add_explicit(&se->st_seg_expirations, 1, memory_order_relaxed);
        }
    }
}
