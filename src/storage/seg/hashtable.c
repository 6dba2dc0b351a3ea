/* storage/seg/hashtable.c: the seg engine's hash table.
 *
 * Buckets of 64 bytes, 8 slots of 64 bits. A key may live in either of two
 * chains (two-choice hashing: an insert goes to the chain with room in its
 * first bucket); a writer locks both, lower index first. The second chain's
 * hash is the first's XOR a mix of the key's 12-bit tag, so an entry's other
 * bucket follows from the bucket it is in and its tag, without reading the
 * item (but for the one bit an unsplit bucket does not tell: see alt_in).
 * When both first buckets are full, an insert makes room by cuckoo moves:
 * an entry goes to its own other first bucket, which may first send one of
 * its entries to theirs, up to DISPLACE_DEPTH moves, each bucket of the path
 * taken with a try-lock (never waited for: lock order); only when that fails
 * does it chain an overflow bucket. Linear hashing leaves unsplit buckets
 * with twice the keys of split ones; these moves spread them, so the first
 * buckets fill to 15/16 with almost no overflow bucket (one step alone left
 * half of them full at 4/5 and overflowed beyond).
 * A move bumps a version in both buckets' slot 0 (odd while it runs); a
 * lock-free reader that misses looks again if its first bucket's version
 * changed. Slot 0 of a chain's first bucket holds the chain's spin lock
 * (bit 0), the move version (bits 8-31) and the index of the next bucket
 * (bits 32-63, 0 for none); slot 0 of an overflow bucket holds only its
 * next index. Slots 1-7 hold a 12-bit tag, a frequency, the fetched and
 * win bits, the segment and offset/8 of an item.
 *
 * The table grows by linear hashing, so it holds about as many buckets as
 * the items need, not as -m could hold: one mapping is reserved for the
 * largest table, and only the buckets in use are touched. With nb buckets
 * in use (2^L <= nb < 2^(L+1)), a hash x goes to x mod 2^L, or to
 * x mod 2^(L+1) when that first choice is below nb - 2^L (already split).
 * Growing splits bucket nb - 2^L: its entries whose index became nb move to
 * the new bucket nb. The state word (nb << 1 | splitting) is published
 * before the moves; a reader that misses while the state was splitting or
 * has changed looks again, and a writer that locked its chains checks that
 * the state still maps its key there (a split must lock the bucket it
 * splits, so a writer's locked chains never change under it). Growth is
 * driven by the occupied-slot count (striped counters) when an insert
 * finds both first buckets full.
 *
 * Readers take no lock: they load a slot, pin its segment, load the slot
 * again (if it changed, the segment may have been reused: retry) and compare
 * the key. Writers lock one chain pair. Overflow buckets come from a fixed
 * pool and stay with their chain; when none is left, an insert replaces the
 * least used entry of the chain, so memory never grows past the mapping.
 */
#include "seg_internal.h"

#include "keel/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Checks that cost a cache miss or more: in debug builds (make asan) only. */
#ifdef NDEBUG
#define KL_DEBUG_ASSERT(cond, ...) ((void)0)
#else
#define KL_DEBUG_ASSERT(cond, ...) KL_ASSERT(cond, __VA_ARGS__)
#endif

/* Grow when occupied slots exceed this share of the first buckets' 7 slots
 * (64 / (7 * 15/16) = 9.75 bytes of table per item). */
#define LOAD_NUM       15
#define LOAD_DEN       16
/* Moves an insert may chain to free a slot in a full first bucket. */
#define DISPLACE_DEPTH 3

int ht_init(struct seg_engine *se, uint32_t nb, uint32_t nb_max)
{
    KL_ASSERT(nb >= 1 && nb <= nb_max, "hash table of %u buckets, at most %u", nb, nb_max);
    se->nb_max = nb_max;
    se->novf = (uint32_t)(nb_max / 2 + 16); /* address space; touched only when used */
    size_t words = ((size_t)nb_max + 63) / 64;
    size_t bytes = ((size_t)nb_max + se->novf) * 64 + (words * 8 + 63) / 64 * 64;
    void *p = seg_map(bytes, false); /* mostly never touched */
    if (p == NULL)
        return -ENOMEM;
    se->table = p;
    se->ovf = se->table + (size_t)nb_max * 8;
    se->full_bits = se->ovf + (size_t)se->novf * 8;
    /* overflow buckets are few and taken in order: small pages, so that the
     * first one does not cost a 2 MiB page */
    uintptr_t ovf_page = ((uintptr_t)se->ovf + 4095) & ~(uintptr_t)4095;
    madvise((void *)ovf_page, (uintptr_t)p + bytes - ovf_page, MADV_NOHUGEPAGE);
    se->hash_bytes = bytes;
    atomic_init(&se->ovf_used, 0);
    atomic_init(&se->ht_state, (uint64_t)nb << 1);
    for (int i = 0; i < 8; i++)
        atomic_init(&se->ht_items[i].n, 0);
    pthread_mutex_init(&se->grow_lock, NULL);
    return 0;
}

void ht_free(struct seg_engine *se)
{
    if (se->table) {
        seg_unmap((void *)se->table, se->hash_bytes);
        pthread_mutex_destroy(&se->grow_lock);
    }
    se->table = NULL;
}

uint32_t ht_buckets(struct seg_engine *se)
{
    return (uint32_t)(atomic_load_explicit(&se->ht_state, memory_order_acquire) >> 1);
}

/* Linear hashing: x's bucket among nb. */
static inline uint32_t lin(uint32_t x, uint32_t nb)
{
    uint32_t lo = 1u << (31 - __builtin_clz(nb)), m = x & (lo - 1);
    return m < nb - lo ? x & (2 * lo - 1) : m;
}

static inline uint32_t idx1(uint32_t nb, uint64_t h) { return lin((uint32_t)h, nb); }

/* The mask from a key's first hash to its second: a mix of its tag alone,
 * so that an entry's other bucket follows from its bucket and slot. */
static inline uint32_t tag_mix(uint32_t tag)
{
    uint32_t x = tag * 0x9e3779b1u;
    x ^= x >> 15;
    x *= 0x85ebca6bu;
    return x ^ (x >> 13);
}

static inline uint32_t idx2(uint32_t nb, uint64_t h)
{
    return lin((uint32_t)h ^ tag_mix(hash_tag(h)), nb);
}

/* The other first bucket, among nb, of the entry v found in bucket bi, from
 * bi and v's tag: a split bucket tells the low L+1 bits of the hash that led
 * there, an unsplit one only L; UINT32_MAX when the missing bit decides. */
static inline uint32_t alt_in(uint32_t nb, uint32_t bi, uint64_t v)
{
    uint32_t lo = 1u << (31 - __builtin_clz(nb)), m = tag_mix(SLOT_TAG(v));
    if (bi < nb - lo || bi >= lo)
        return lin(bi ^ (m & (2 * lo - 1)), nb);
    uint32_t y = (bi ^ m) & (lo - 1);
    return y < nb - lo ? UINT32_MAX : y;
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

/* The two first buckets of h among nb (equal for a few keys: one chain). */
struct pair {
    uint32_t a, b;
};

static inline struct pair pair_in(uint32_t nb, uint64_t h)
{
    return (struct pair){idx1(nb, h), idx2(nb, h)};
}

/* h's chains as the table is now (stable while they are locked). */
static inline struct pair pair_of(struct seg_engine *se, uint64_t h)
{
    return pair_in(ht_buckets(se), h);
}

/* Every bucket of both chains of pair p. */
#define FOR_BUCKETS(se, p, b)                                                                      \
    for (int c_ = 0; c_ < ((p).a == (p).b ? 1 : 2); c_++)                                          \
        for (_Atomic uint64_t *b = bucket(se, c_ ? (p).b : (p).a); b; b = next_of(se, b))

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

static void lock_pair(struct seg_engine *se, struct pair p)
{
    uint32_t lo = p.a < p.b ? p.a : p.b, hi = p.a < p.b ? p.b : p.a;
    lock_one(bucket(se, lo));
    if (hi != lo)
        lock_one(bucket(se, hi));
}

static void unlock_pair(struct seg_engine *se, struct pair p)
{
    unlock_one(bucket(se, p.a));
    if (p.b != p.a)
        unlock_one(bucket(se, p.b));
}

void ht_lock(struct seg_engine *se, uint64_t h)
{
    for (;;) {
        struct pair p = pair_of(se, h);
        lock_pair(se, p);
        /* a split of one of these buckets may have run before we got it */
        struct pair q = pair_of(se, h);
        if (q.a == p.a && q.b == p.b)
            return;
        unlock_pair(se, p);
    }
}

void ht_unlock(struct seg_engine *se, uint64_t h) { unlock_pair(se, pair_of(se, h)); }

/* The full-bucket hints: bit bi set when first bucket bi was last seen
 * with no empty slot. A hint only: whoever relies on it looks at the bucket
 * under its lock; a wrong bit costs a miss (set) or a skipped move (clear).
 * Every slot emptied clears its bucket's bit (ht_count), so a bucket with
 * room is never left marked full. */
static inline bool hint_full(struct seg_engine *se, uint32_t bi)
{
    return (atomic_load_explicit(&se->full_bits[bi / 64], memory_order_relaxed) >> (bi % 64)) & 1;
}

static void hint_set(struct seg_engine *se, uint32_t bi, bool full)
{
    _Atomic uint64_t *w = &se->full_bits[bi / 64];
    uint64_t bit = 1ull << (bi % 64);
    if (((atomic_load_explicit(w, memory_order_relaxed) & bit) != 0) == full)
        return; /* no write: the word is shared by 64 buckets */
    if (full)
        atomic_fetch_or_explicit(w, bit, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(w, ~bit, memory_order_relaxed);
}

void ht_count(struct seg_engine *se, _Atomic uint64_t *slot, int delta)
{
    atomic_fetch_add_explicit(&se->ht_items[((uintptr_t)slot >> 6) & 7].n, delta,
                              memory_order_relaxed);
    if (delta < 0 && slot < se->ovf)
        hint_set(se, (uint32_t)((slot - se->table) / 8), false);
}

static int64_t items_in_table(struct seg_engine *se)
{
    int64_t n = 0;
    for (int i = 0; i < 8; i++)
        n += atomic_load_explicit(&se->ht_items[i].n, memory_order_relaxed);
    return n;
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

/* The hash of the key a slot points to (its item is live: it cannot go). */
static uint64_t hash_at(struct seg_engine *se, uint64_t v)
{
    struct item_view iv;
    item_read(seg_data(se, SLOT_SEG(v)) + SLOT_OFF(v), &iv);
    return key_hash(iv.key, iv.klen);
}

/* Move slot value v from `from` to the empty slot `to` under their locks. A
 * reader may set the fetched or win bit on the old slot meanwhile: carried. */
static void move_slot(_Atomic uint64_t *from, _Atomic uint64_t *to, uint64_t v)
{
    atomic_store_explicit(to, v, memory_order_release);
    uint64_t last = atomic_exchange_explicit(from, 0, memory_order_acq_rel);
    if (last != v)
        atomic_fetch_or_explicit(to, last & (SLOT_FETCHED | SLOT_WIN), memory_order_release);
}

_Atomic uint64_t *ht_find(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                          uint64_t *out)
{
    uint32_t tag = hash_tag(h);
    struct pair p = pair_of(se, h);
    FOR_BUCKETS(se, p, b)
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
    struct pair p = pair_of(se, h);
    FOR_BUCKETS(se, p, b)
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

/* The other first bucket of the entry v in the locked bucket bi (bi itself
 * for a key with one chain): from the tag, else from the item's key. */
static uint32_t alt_of(struct seg_engine *se, uint32_t bi, uint64_t v)
{
    uint32_t nb = ht_buckets(se), ai = alt_in(nb, bi, v);
    if (ai != UINT32_MAX)
        return ai;
    struct pair kp = pair_in(nb, hash_at(se, v));
    KL_ASSERT(kp.a == bi || kp.b == bi, "entry of bucket %u/%u found in %u", kp.a, kp.b, bi);
    return kp.a == bi ? kp.b : kp.a;
}

static _Atomic uint64_t *displace(struct seg_engine *se, _Atomic uint64_t *b, uint32_t bi,
                                  int depth);

/* Move entry b[i] (value v) to its other first bucket ai if that has room
 * or, with depth > 1, can be given room; the slot freed, or NULL. */
static _Atomic uint64_t *move_out(struct seg_engine *se, _Atomic uint64_t *b, uint32_t bi, int i,
                                  uint64_t v, uint32_t ai, int depth)
{
    _Atomic uint64_t *ab = bucket(se, ai);
    uint64_t s0 = atomic_load_explicit(&ab[0], memory_order_relaxed);
    if ((s0 & 1) || !atomic_compare_exchange_strong_explicit(
                        &ab[0], &s0, s0 | 1, memory_order_acquire, memory_order_relaxed))
        return NULL; /* busy (or on our own path): cannot wait for it here (lock order) */
    /* a split of ai may have run before we locked it */
    _Atomic uint64_t *to = NULL;
    if (alt_of(se, bi, v) == ai) {
        int n;
        to = empty_in(ab, &n);
        KL_DEBUG_ASSERT(!(to && hint_full(se, ai)), "bucket %u marked full with room", ai);
        hint_set(se, ai, to == NULL || n == 1); /* full now, or once v is in */
        if (to == NULL && depth > 1)
            to = displace(se, ab, ai, depth - 1);
    }
    if (to) {
#ifndef NDEBUG
        struct pair kp = pair_of(se, hash_at(se, v)); /* the tag told the truth */
#endif
        KL_DEBUG_ASSERT((kp.a == bi && kp.b == ai) || (kp.a == ai && kp.b == bi),
                        "move of an entry of %u/%u from %u to %u", kp.a, kp.b, bi, ai);
        ver_bump(&b[0]); /* odd: a move runs */
        ver_bump(&ab[0]);
        move_slot(&b[i], to, v);
        ver_bump(&ab[0]);
        ver_bump(&b[0]); /* even again */
        atomic_fetch_add_explicit(&se->st_hash_moves, 1, memory_order_relaxed);
    }
    unlock_one(&ab[0]);
    return to ? &b[i] : NULL; /* b stays full: its caller fills the slot */
}

/* Under bucket b's lock (index bi), b full: move one of its entries to the
 * other first bucket of its own key, if that has room, or (depth > 1) can
 * be given room the same way with depth - 1 moves. First the entries whose
 * other bucket the tag tells and the hints say has room (no cache miss but
 * the move's own), then those whose item must tell it, then the deeper
 * moves, their buckets prefetched together so that the misses overlap.
 * Returns the slot freed, or NULL. */
static _Atomic uint64_t *displace(struct seg_engine *se, _Atomic uint64_t *b, uint32_t bi,
                                  int depth)
{
    uint64_t v[8];
    uint32_t alt[8], nb = ht_buckets(se);
    _Atomic uint64_t *freed = NULL;
    bool by_key = false;
    for (int i = 1; i < 8 && freed == NULL; i++) {
        v[i] = atomic_load_explicit(&b[i], memory_order_relaxed);
        alt[i] = alt_in(nb, bi, v[i]);
        if (alt[i] == UINT32_MAX)
            by_key = true;
        else if (alt[i] != bi && !hint_full(se, alt[i]))
            freed = move_out(se, b, bi, i, v[i], alt[i], 1);
    }
    if (freed)
        return freed;
    /* an unsplit bucket's entry: its other bucket y or y + 2^L (both split) */
    uint32_t lo = 1u << (31 - __builtin_clz(nb));
    bool read[8] = {false};
    for (int i = 1; i < 8 && by_key; i++) {
        if (alt[i] != UINT32_MAX)
            continue;
        uint32_t y = (bi ^ tag_mix(SLOT_TAG(v[i]))) & (lo - 1);
        read[i] = depth > 1 || !hint_full(se, y) || !hint_full(se, y + lo);
        if (read[i])
            __builtin_prefetch(seg_data(se, SLOT_SEG(v[i])) + SLOT_OFF(v[i]));
    }
    for (int i = 1; i < 8 && by_key && freed == NULL; i++) {
        if (alt[i] == UINT32_MAX && read[i]) {
            alt[i] = alt_of(se, bi, v[i]);
            if (alt[i] != bi && !hint_full(se, alt[i]))
                freed = move_out(se, b, bi, i, v[i], alt[i], 1);
        }
    }
    if (freed || depth <= 1)
        return freed;
    for (int i = 1; i < 8; i++)
        __builtin_prefetch(bucket(se, alt[i]));
    for (int i = 1; i < 8 && freed == NULL; i++)
        freed = alt[i] == bi ? NULL : move_out(se, b, bi, i, v[i], alt[i], depth);
    return freed;
}

/* A fresh overflow bucket chained after tail; its first slot, or NULL. */
static _Atomic uint64_t *chain_overflow(struct seg_engine *se, _Atomic uint64_t *tail)
{
    uint32_t idx = atomic_fetch_add_explicit(&se->ovf_used, 1, memory_order_relaxed);
    if (idx >= se->novf)
        return NULL;
    atomic_fetch_or_explicit(&tail[0], (uint64_t)(idx + 1) << 32, memory_order_release);
    return &se->ovf[(size_t)idx * 8 + 1];
}

_Atomic uint64_t *ht_free_slot(struct seg_engine *se, uint64_t h, uint64_t *dropped, bool *full)
{
    *dropped = 0;
    *full = false;
    /* the first bucket of either chain with more room */
    struct pair p = pair_of(se, h);
    int n1, n2;
    _Atomic uint64_t *b1 = bucket(se, p.a), *b2 = bucket(se, p.b);
    _Atomic uint64_t *e1 = empty_in(b1, &n1), *e2 = empty_in(b2, &n2);
    KL_DEBUG_ASSERT(!(e1 && hint_full(se, p.a)) && !(e2 && hint_full(se, p.b)),
                    "bucket %u or %u marked full with room", p.a, p.b);
    if (e1 || e2) {
        bool one = n1 >= n2;
        if ((one ? n1 : n2) == 1) /* full once the caller fills it */
            hint_set(se, one ? p.a : p.b, true);
        return one ? e1 : e2;
    }
    hint_set(se, p.a, true);
    hint_set(se, p.b, true);
    *full = true;
    _Atomic uint64_t *moved = NULL;
    for (int d = 1; d <= DISPLACE_DEPTH && moved == NULL; d++) {
        moved = displace(se, b1, p.a, d);
        if (moved == NULL && p.b != p.a)
            moved = displace(se, b2, p.b, d);
    }
    if (moved)
        return moved;
    /* then any overflow bucket; else chain one to the shorter chain */
    _Atomic uint64_t *last[2] = {b1, b2}, *victim = NULL;
    int len[2] = {0, 0};
    uint32_t vfreq = FREQ_MAX + 1;
    for (int c = 0; c < (p.a == p.b ? 1 : 2); c++) {
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
    if (p.a == p.b)
        len[1] = len[0] + 1;
    _Atomic uint64_t *e = chain_overflow(se, last[len[1] < len[0] ? 1 : 0]);
    if (e)
        return e;
    *dropped = atomic_load_explicit(victim, memory_order_relaxed);
    return victim;
}

/* Under grow_lock: split bucket nb - 2^L into itself and the new bucket nb. */
static void split_one(struct seg_engine *se)
{
    uint32_t nb = ht_buckets(se);
    KL_ASSERT(nb < se->nb_max, "hash table split past its mapping (%u buckets)", nb);
    uint32_t from = nb - (1u << (31 - __builtin_clz(nb))), to = nb;
    _Atomic uint64_t *fb = bucket(se, from), *tb = bucket(se, to);
    lock_one(fb);
    lock_one(tb);
    /* from now on a key of `to` is looked for there; readers that miss meanwhile retry */
    atomic_store_explicit(&se->ht_state, ((uint64_t)(nb + 1) << 1) | 1, memory_order_seq_cst);
    _Atomic uint64_t *tail = tb, *dst = &tb[1];
    for (_Atomic uint64_t *b = fb; b; b = next_of(se, b)) {
        for (int i = 1; i < 8; i++) {
            uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
            if (v == 0)
                continue;
            struct pair kp = pair_in(nb + 1, hash_at(se, v));
            if (kp.a == from || kp.b == from)
                continue;
            KL_ASSERT(kp.a == to || kp.b == to, "split of bucket %u: entry of %u/%u", from, kp.a,
                      kp.b);
            if (dst == tail + 8) {
                dst = chain_overflow(se, tail);
                tail = dst ? dst - 1 : tail;
            }
            if (dst == NULL) {
                /* no overflow bucket left: the entry cannot stay where no
                 * lookup will look, so it goes (an eviction) */
                uint64_t last = atomic_exchange_explicit(&b[i], 0, memory_order_acq_rel);
                ht_count(se, &b[i], -1);
                seg_slot_gone(se, last);
                atomic_fetch_add_explicit(&se->st_evictions, 1, memory_order_relaxed);
                continue;
            }
            ht_count(se, &b[i], -1);
            ht_count(se, dst, 1);
            move_slot(&b[i], dst++, v);
        }
    }
    atomic_store_explicit(&se->ht_state, (uint64_t)(nb + 1) << 1, memory_order_release);
    unlock_one(tb);
    unlock_one(fb);
}

void ht_grow(struct seg_engine *se)
{
    if (pthread_mutex_trylock(&se->grow_lock) != 0)
        return; /* another thread grows it */
    for (int n = 0; n < 256; n++) {
        uint32_t nb = ht_buckets(se);
        if (nb >= se->nb_max || items_in_table(se) * LOAD_DEN <= (int64_t)nb * 7 * LOAD_NUM)
            break;
        split_one(se);
    }
    pthread_mutex_unlock(&se->grow_lock);
}

_Atomic uint64_t *ht_lookup(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                            uint64_t *out)
{
    uint32_t tag = hash_tag(h);
    const uint64_t same = SLOT_LOC_MASK | (0xfffull << 52);
    uint64_t ver, state;
    _Atomic uint64_t *first;
    struct pair p;
retry:
    state = atomic_load_explicit(&se->ht_state, memory_order_acquire);
    p = pair_in((uint32_t)(state >> 1), h);
    first = bucket(se, p.a);
    while ((ver = atomic_load_explicit(&first[0], memory_order_acquire) & VER_MASK) & VER_ONE)
        __builtin_ia32_pause(); /* a move in this bucket: wait for it */
    FOR_BUCKETS(se, p, b)
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
    /* a miss while an entry moved between our two buckets, or while a
     * split moved entries between buckets: look again */
    if ((atomic_load_explicit(&first[0], memory_order_acquire) & VER_MASK) != ver)
        goto retry;
    if ((state & 1) || atomic_load_explicit(&se->ht_state, memory_order_acquire) != state) {
        __builtin_ia32_pause();
        goto retry;
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
    pthread_mutex_lock(&se->grow_lock); /* the bucket count holds still */
    uint32_t nb = ht_buckets(se);
    for (uint32_t hb = 0; hb < nb; hb++) {
        lock_one(bucket(se, hb));
        for (_Atomic uint64_t *b = bucket(se, hb); b; b = next_of(se, b)) {
            for (int i = 1; i < 8; i++) {
                uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
                if (v) {
                    atomic_store_explicit(&b[i], 0, memory_order_release);
                    ht_count(se, &b[i], -1);
                    seg_slot_gone(se, v);
                }
            }
        }
        unlock_one(bucket(se, hb));
    }
    pthread_mutex_unlock(&se->grow_lock);
}

uint32_t ht_walk(struct seg_engine *se, uint32_t from, uint32_t n, ht_visit_fn fn, void *arg)
{
    uint32_t nb = ht_buckets(se);
    uint32_t end = from < nb && n < nb - from ? from + n : nb;
    for (uint32_t hb = from; hb < end; hb++) {
        lock_one(bucket(se, hb));
        for (_Atomic uint64_t *b = bucket(se, hb); b; b = next_of(se, b)) {
            for (int i = 1; i < 8; i++) {
                uint64_t v = atomic_load_explicit(&b[i], memory_order_relaxed);
                if (v)
                    fn(se, v, arg);
            }
        }
        unlock_one(bucket(se, hb));
    }
    return end;
}

uint64_t ht_bytes_used(struct seg_engine *se)
{
    uint64_t nb = ht_buckets(se);
    return (nb + ht_overflow_used(se)) * 64 + (nb + 63) / 64 * 8;
}

uint32_t ht_overflow_used(struct seg_engine *se)
{
    uint32_t n = atomic_load_explicit(&se->ovf_used, memory_order_relaxed);
    return n < se->novf ? n : se->novf;
}
