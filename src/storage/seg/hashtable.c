/* storage/seg/hashtable.c: the seg engine's hash table.
 *
 * 2^hash_power buckets of 64 bytes, 8 slots of 64 bits. Slot 0 of a chain's
 * first bucket holds the chain's spin lock (bit 0) and the index of the next
 * bucket (bits 32-63, 0 for none); slot 0 of an overflow bucket holds only
 * its next index. Slots 1-7 hold a 12-bit tag, a frequency, the fetched and
 * win bits, the segment and offset/8 of an item.
 *
 * Readers take no lock: they load a slot, pin its segment, load the slot
 * again (if it changed, the segment may have been reused: retry) and compare
 * the key. Writers lock one chain. Overflow buckets come from a fixed array
 * sized at open and stay with their chain; when none is left, an insert
 * replaces the least used entry of the chain, so memory never grows.
 */
#include "seg_internal.h"

#include "keel/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int ht_init(struct seg_engine *se, unsigned hash_power)
{
    size_t nb = (size_t)1 << hash_power;
    se->hmask = (uint32_t)(nb - 1);
    se->novf = (uint32_t)(nb / 4 + 16);
    size_t bytes = (nb + se->novf) * 64;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    se->table = p;
    se->ovf = se->table + nb * 8;
    se->hash_bytes = bytes;
    atomic_init(&se->ovf_used, 0);
    return 0;
}

void ht_free(struct seg_engine *se)
{
    if (se->table)
        munmap((void *)se->table, se->hash_bytes);
    se->table = NULL;
}

static inline _Atomic uint64_t *head_of(struct seg_engine *se, uint64_t h)
{
    return &se->table[(size_t)(h & se->hmask) * 8];
}

static inline _Atomic uint64_t *next_of(struct seg_engine *se, _Atomic uint64_t *b)
{
    uint32_t nx = (uint32_t)(atomic_load_explicit(&b[0], memory_order_acquire) >> 32);
    return nx ? &se->ovf[(size_t)(nx - 1) * 8] : NULL;
}

void ht_lock(struct seg_engine *se, uint64_t h)
{
    _Atomic uint64_t *s0 = head_of(se, h);
    while (atomic_fetch_or_explicit(s0, 1, memory_order_acquire) & 1) {
        while (atomic_load_explicit(s0, memory_order_relaxed) & 1)
            __builtin_ia32_pause();
    }
}

void ht_unlock(struct seg_engine *se, uint64_t h)
{
    uint64_t old = atomic_fetch_and_explicit(head_of(se, h), ~1ull, memory_order_release);
    KL_ASSERT(old & 1, "hash chain unlocked twice");
}

static bool key_at(struct seg_engine *se, uint64_t v, const char *key, uint32_t klen)
{
    const char *p = seg_data(se, SLOT_SEG(v)) + SLOT_OFF(v);
    uint32_t hdr;
    memcpy(&hdr, p, 4);
    if (((hdr >> 20) & 0xff) != klen)
        return false;
    struct item_view iv;
    item_read(p, &iv);
    return memcmp(iv.key, key, klen) == 0;
}

_Atomic uint64_t *ht_find(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                          uint64_t *out)
{
    uint32_t tag = hash_tag(h);
    for (_Atomic uint64_t *b = head_of(se, h); b; b = next_of(se, b)) {
        for (int i = 1; i < 8; i++) {
            uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
            if (v && SLOT_TAG(v) == tag && key_at(se, v, key, klen)) {
                *out = v;
                return &b[i];
            }
        }
    }
    return NULL;
}

_Atomic uint64_t *ht_find_loc(struct seg_engine *se, uint64_t h, uint64_t loc)
{
    uint32_t tag = hash_tag(h);
    for (_Atomic uint64_t *b = head_of(se, h); b; b = next_of(se, b)) {
        for (int i = 1; i < 8; i++) {
            uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
            if (v && SLOT_TAG(v) == tag && (v & SLOT_LOC_MASK) == loc)
                return &b[i];
        }
    }
    return NULL;
}

_Atomic uint64_t *ht_free_slot(struct seg_engine *se, uint64_t h, uint64_t *dropped)
{
    _Atomic uint64_t *last = NULL, *victim = NULL;
    uint32_t vfreq = FREQ_MAX + 1;
    *dropped = 0;
    for (_Atomic uint64_t *b = head_of(se, h); b; b = next_of(se, b)) {
        for (int i = 1; i < 8; i++) {
            uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
            if (v == 0)
                return &b[i];
            if (SLOT_FREQ(v) < vfreq) {
                vfreq = SLOT_FREQ(v);
                victim = &b[i];
            }
        }
        last = b;
    }
    uint32_t idx = atomic_fetch_add_explicit(&se->ovf_used, 1, memory_order_relaxed);
    if (idx < se->novf) {
        _Atomic uint64_t *nb = &se->ovf[(size_t)idx * 8];
        atomic_fetch_or_explicit(&last[0], (uint64_t)(idx + 1) << 32, memory_order_release);
        return &nb[1];
    }
    *dropped = atomic_load_explicit(victim, memory_order_relaxed);
    return victim;
}

_Atomic uint64_t *ht_lookup(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                            uint64_t *out)
{
    uint32_t tag = hash_tag(h);
    const uint64_t same = SLOT_LOC_MASK | (0xfffull << 52);
retry:
    for (_Atomic uint64_t *b = head_of(se, h); b; b = next_of(se, b)) {
        for (int i = 1; i < 8; i++) {
            uint64_t v = atomic_load_explicit(&b[i], memory_order_acquire);
            if (v == 0 || SLOT_TAG(v) != tag)
                continue;
            uint32_t id = SLOT_SEG(v);
            seg_pin(se, id);
            uint64_t again = atomic_load(&b[i]);
            if ((again & same) != (v & same)) {
                seg_unpin(se, id);
                goto retry;
            }
            if (key_at(se, v, key, klen)) {
                *out = again;
                return &b[i];
            }
            seg_unpin(se, id);
        }
    }
    return NULL;
}

static __thread uint32_t bump_rng = 0x9e3779b9u;

void ht_bump(_Atomic uint64_t *slot, uint64_t v)
{
    uint64_t nv = v | SLOT_FETCHED;
    uint32_t f = SLOT_FREQ(v);
    if (f < FREQ_MAX) {
        bump_rng ^= bump_rng << 13;
        bump_rng ^= bump_rng >> 17;
        bump_rng ^= bump_rng << 5;
        if (f < 4 || bump_rng % f == 0)
            nv += 1ull << 44;
    }
    if (nv != v)
        atomic_compare_exchange_strong_explicit(slot, &v, nv, memory_order_relaxed,
                                                memory_order_relaxed);
}

void ht_clear_all(struct seg_engine *se)
{
    for (uint64_t hb = 0; hb <= se->hmask; hb++) {
        ht_lock(se, hb);
        for (_Atomic uint64_t *b = head_of(se, hb); b; b = next_of(se, b)) {
            for (int i = 1; i < 8; i++) {
                uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
                if (v) {
                    atomic_store_explicit(&b[i], 0, memory_order_release);
                    seg_slot_gone(se, v);
                }
            }
        }
        ht_unlock(se, hb);
    }
}

uint32_t ht_overflow_used(struct seg_engine *se)
{
    uint32_t n = atomic_load_explicit(&se->ovf_used, memory_order_relaxed);
    return n < se->novf ? n : se->novf;
}
