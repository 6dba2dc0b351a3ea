/* storage/seg/hashtable.c: the seg engine's hash table.
 *
 * Buckets of 64 bytes, 8 slots of 64 bits (any count: an index is a
 * multiply-shift of the hash, so the table can be sized to the item count). A key may live in
 * either of two chains (two-choice hashing: an insert goes to the chain with
 * room in its first bucket, so buckets fill to ~90% before any overflow);
 * a writer locks both, lower index first. When both first buckets are
 * full, an insert first tries to move one of their entries to the other
 * first bucket of that entry's own pair (one cuckoo step), which keeps the
 * table near full before it chains overflow buckets. A move bumps a version
 * in both buckets' slot 0 (odd while it runs); a lock-free reader that
 * misses looks again if its first bucket's version changed. Slot 0 of a chain's
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

int ht_init(struct seg_engine *se, uint32_t nb)
{
    se->nbuckets = nb;
    se->novf = (uint32_t)(nb / 2 + 16); /* address space; touched only when used */
    size_t bytes = (nb + se->novf) * 64;
    void *p = seg_map(bytes);
    if (p == NULL)
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

static inline uint32_t idx1(struct seg_engine *se, uint64_t h)
{
    return (uint32_t)(((h & 0xffffffffu) * se->nbuckets) >> 32);
}

static inline uint32_t idx2(struct seg_engine *se, uint64_t h)
{
    uint32_t i = (uint32_t)((((h * 0x9e3779b97f4a7c15ull) >> 32) * se->nbuckets) >> 32);
    return i != idx1(se, h) ? i : (i + 1) % se->nbuckets;
}

static inline _Atomic uint64_t *bucket(struct seg_engine *se, uint32_t i)
{
    return &se->table[(size_t)i * 8];
}

static inline _Atomic uint64_t *next_of(struct seg_engine *se, _Atomic uint64_t *b)
{
    uint32_t nx = (uint32_t)(atomic_load_explicit(&b[0], memory_order_acquire) >> 32);
    return nx ? &se->ovf[(size_t)(nx - 1) * 8] : NULL;
}

/* Every bucket of both chains of h. */
#define FOR_BUCKETS(se, h, b)                                                                      \
    for (int c_ = 0; c_ < 2; c_++)                                                                 \
        for (_Atomic uint64_t *b = bucket(se, c_ ? idx2(se, h) : idx1(se, h)); b;                  \
             b = next_of(se, b))

static void lock_one(_Atomic uint64_t *s0)
{
    while (atomic_fetch_or_explicit(s0, 1, memory_order_acquire) & 1) {
        while (atomic_load_explicit(s0, memory_order_relaxed) & 1)
            __builtin_ia32_pause();
    }
}

static void unlock_one(_Atomic uint64_t *s0)
{
    uint64_t old = atomic_fetch_and_explicit(s0, ~1ull, memory_order_release);
    KL_ASSERT(old & 1, "hash chain unlocked twice");
}

void ht_lock(struct seg_engine *se, uint64_t h)
{
    uint32_t a = idx1(se, h), b = idx2(se, h);
    lock_one(bucket(se, a < b ? a : b));
    lock_one(bucket(se, a < b ? b : a));
}

void ht_unlock(struct seg_engine *se, uint64_t h)
{
    unlock_one(bucket(se, idx1(se, h)));
    unlock_one(bucket(se, idx2(se, h)));
}

#define VER_ONE  (1ull << 8)
#define VER_MASK (0xffffffull << 8)

static void ver_bump(_Atomic uint64_t *s0)
{
    uint64_t old = atomic_load_explicit(s0, memory_order_relaxed), nv;
    do
        nv = (old & ~VER_MASK) | ((old + VER_ONE) & VER_MASK);
    while (!atomic_compare_exchange_weak_explicit(s0, &old, nv, memory_order_acq_rel,
                                                  memory_order_relaxed));
}

static inline bool key_at(struct seg_engine *se, uint64_t v, const char *key, uint32_t klen)
{
    return item_key_is(seg_data(se, SLOT_SEG(v)) + SLOT_OFF(v), key, klen);
}

_Atomic uint64_t *ht_find(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                          uint64_t *out)
{
    uint32_t tag = hash_tag(h);
    FOR_BUCKETS(se, h, b)
    {
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
    FOR_BUCKETS(se, h, b)
    {
        for (int i = 1; i < 8; i++) {
            uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
            if (v && SLOT_TAG(v) == tag && (v & SLOT_LOC_MASK) == loc)
                return &b[i];
        }
    }
    return NULL;
}

static _Atomic uint64_t *empty_in(_Atomic uint64_t *b, int *n)
{
    _Atomic uint64_t *first = NULL;
    *n = 0;
    for (int i = 1; i < 8; i++) {
        if (atomic_load_explicit(&b[i], memory_order_relaxed) == 0) {
            first = first ? first : &b[i];
            (*n)++;
        }
    }
    return first;
}

/* Under the pair's locks, with bucket b (index bi) full: move one of its
 * entries to the other first bucket of its own key, if that has room and
 * its lock is free. Returns the slot freed, or NULL. */
static _Atomic uint64_t *displace(struct seg_engine *se, _Atomic uint64_t *b, uint32_t bi)
{
    for (int i = 1; i < 8; i++) {
        uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
        struct item_view iv;
        item_read(seg_data(se, SLOT_SEG(v)) + SLOT_OFF(v), &iv);
        uint64_t kh = key_hash(iv.key, iv.klen);
        uint32_t a1 = idx1(se, kh), a2 = idx2(se, kh);
        uint32_t ai = a1 == bi ? a2 : a1;
        _Atomic uint64_t *ab = bucket(se, ai);
        int n;
        if (empty_in(ab, &n) == NULL)
            continue;
        uint64_t s0 = atomic_load_explicit(&ab[0], memory_order_relaxed);
        if ((s0 & 1) || !atomic_compare_exchange_strong_explicit(
                            &ab[0], &s0, s0 | 1, memory_order_acquire, memory_order_relaxed))
            continue; /* busy: cannot wait for it here (lock order) */
        _Atomic uint64_t *to = empty_in(ab, &n);
        if (to) {
            ver_bump(&b[0]); /* odd: a move runs */
            ver_bump(&ab[0]);
            atomic_store_explicit(to, v, memory_order_release);
            atomic_store_explicit(&b[i], 0, memory_order_release);
            ver_bump(&ab[0]);
            ver_bump(&b[0]); /* even again */
            atomic_fetch_add_explicit(&se->st_hash_moves, 1, memory_order_relaxed);
        }
        unlock_one(&ab[0]);
        if (to)
            return &b[i];
    }
    return NULL;
}

_Atomic uint64_t *ht_free_slot(struct seg_engine *se, uint64_t h, uint64_t *dropped)
{
    *dropped = 0;
    /* the first bucket of either chain with more room */
    int n1, n2;
    _Atomic uint64_t *b1 = bucket(se, idx1(se, h)), *b2 = bucket(se, idx2(se, h));
    _Atomic uint64_t *e1 = empty_in(b1, &n1), *e2 = empty_in(b2, &n2);
    if (e1 || e2)
        return n1 >= n2 ? e1 : e2;
    _Atomic uint64_t *moved = displace(se, b1, idx1(se, h));
    if (moved == NULL)
        moved = displace(se, b2, idx2(se, h));
    if (moved)
        return moved;
    /* then any overflow bucket; else chain one to the shorter chain */
    _Atomic uint64_t *last[2] = {b1, b2}, *victim = NULL;
    int len[2] = {0, 0};
    uint32_t vfreq = FREQ_MAX + 1;
    for (int c = 0; c < 2; c++) {
        for (_Atomic uint64_t *b = c ? b2 : b1; b; b = next_of(se, b)) {
            int n;
            _Atomic uint64_t *e = empty_in(b, &n);
            if (e)
                return e;
            for (int i = 1; i < 8; i++) {
                uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
                if (SLOT_FREQ(v) < vfreq) {
                    vfreq = SLOT_FREQ(v);
                    victim = &b[i];
                }
            }
            last[c] = b;
            len[c]++;
        }
    }
    uint32_t idx = atomic_fetch_add_explicit(&se->ovf_used, 1, memory_order_relaxed);
    if (idx < se->novf) {
        _Atomic uint64_t *tail = last[len[1] < len[0] ? 1 : 0];
        atomic_fetch_or_explicit(&tail[0], (uint64_t)(idx + 1) << 32, memory_order_release);
        return &se->ovf[(size_t)idx * 8 + 1];
    }
    *dropped = atomic_load_explicit(victim, memory_order_relaxed);
    return victim;
}

_Atomic uint64_t *ht_lookup(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                            uint64_t *out)
{
    uint32_t tag = hash_tag(h);
    const uint64_t same = SLOT_LOC_MASK | (0xfffull << 52);
    _Atomic uint64_t *first = bucket(se, idx1(se, h));
    uint64_t ver;
retry:
    while ((ver = atomic_load_explicit(&first[0], memory_order_acquire) & VER_MASK) & VER_ONE)
        __builtin_ia32_pause(); /* a move in this bucket: wait for it */
    FOR_BUCKETS(se, h, b)
    {
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
    /* a miss while an entry moved between our two buckets: look again */
    if ((atomic_load_explicit(&first[0], memory_order_acquire) & VER_MASK) != ver)
        goto retry;
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
    for (uint32_t hb = 0; hb < se->nbuckets; hb++) {
        lock_one(bucket(se, hb));
        for (_Atomic uint64_t *b = bucket(se, hb); b; b = next_of(se, b)) {
            for (int i = 1; i < 8; i++) {
                uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
                if (v) {
                    atomic_store_explicit(&b[i], 0, memory_order_release);
                    seg_slot_gone(se, v);
                }
            }
        }
        unlock_one(bucket(se, hb));
    }
}

uint32_t ht_overflow_used(struct seg_engine *se)
{
    uint32_t n = atomic_load_explicit(&se->ovf_used, memory_order_relaxed);
    return n < se->novf ? n : se->novf;
}
