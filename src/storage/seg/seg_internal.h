/* storage/seg/seg_internal.h: the seg engine's shared structures.
 *
 * Memory: one mapping of -m bytes cut into segments; a segment's header lives
 * in a separate array (struct seg). Items are appended to a segment and never
 * changed in place: every change writes a new copy. A hash table of 64-byte
 * buckets maps a key to (segment, offset) with a 12-bit tag.
 *
 * CAS: a fresh copy's CAS is (segment's allocation sequence << off_bits) |
 * offset/8, unique and increasing without storing it. A copy that moves
 * (touch, merge or s3fifo relocation) keeps its CAS in 8 extra bytes.
 *
 * Locks, in order: evict_lock (one evictor at a time) -> a hash bucket lock
 * -> seglock (free list, TTL chains, active segments). Nothing that may
 * allocate a segment runs under a bucket lock.
 */
#ifndef KEEL_STORAGE_SEG_INTERNAL_H
#define KEEL_STORAGE_SEG_INTERNAL_H

#include "storage/engine.h"

#include "keel/hash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define TTL_BUCKETS 1024
#define CHAIN_NOEXP TTL_BUCKETS /* chain of items without expiry */
#define NCHAINS     (TTL_BUCKETS + 1)
#define NIL         (-1)

/* ---- items (item.c) ---- */

/* Header word: vlen (20 bits) | klen << 20 | flags << 28. */
#define IT_HAS_EXP    1u
#define IT_HAS_CFLAGS 2u
#define IT_HAS_CAS    4u
#define IT_STALE      8u
#define IT_VLEN_MAX   ((1u << 20) - 1)

struct item_view {
    const char *key;
    const char *value;
    uint32_t klen, vlen, size;
    uint32_t bits;    /* IT_* */
    uint32_t exptime; /* 0 = never */
    uint32_t cflags;
    uint64_t cas; /* explicit CAS (IT_HAS_CAS) or 0 */
};

/* Bytes of the optional fields an item's flag bits ask for. */
static inline uint32_t item_opt_len(uint32_t bits)
{
    return ((bits & IT_HAS_EXP) ? 4 : 0) + ((bits & IT_HAS_CFLAGS) ? 4 : 0) +
           ((bits & IT_HAS_CAS) ? 8 : 0);
}

/* Bytes of an item with these parts, 8-byte aligned. */
static inline uint32_t item_size(uint32_t klen, uint32_t vlen, uint32_t bits)
{
    return (4 + item_opt_len(bits) + klen + vlen + 7) & ~7u;
}

/* Write an item's header, optional fields and key at p; returns the value pointer. */
char *item_write(char *p, const char *key, uint32_t klen, uint32_t vlen, uint32_t bits,
                 uint32_t exptime, uint32_t cflags, uint64_t cas);

/* Decode the item at p. */
static inline void item_read(const char *p, struct item_view *v)
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

/* Is the item at p's key this one? (the fast check of lookups) */
static inline bool item_key_is(const char *p, const char *key, uint32_t klen)
{
    uint32_t hdr;
    memcpy(&hdr, p, 4);
    return ((hdr >> 20) & 0xff) == klen && memcmp(p + 4 + item_opt_len(hdr >> 28), key, klen) == 0;
}

/* ---- segments ---- */

enum seg_state { SEG_FREE, SEG_ACTIVE, SEG_SEALED, SEG_EVICTING, SEG_DRAINING, SEG_RELOC };

struct seg {
    _Atomic int32_t refs;        /* pins: readers and writers */
    _Atomic int32_t writers;     /* reservations not yet committed */
    _Atomic uint32_t live_items; /* items the hash table points to */
    _Atomic uint32_t live_bytes;
    _Atomic uint8_t state; /* enum seg_state */
    uint8_t queue;         /* s3fifo: 0 small, 1 main */
    uint8_t in_order;      /* on an order list */
    uint16_t chain;        /* TTL chain (NCHAINS: none) */
    uint32_t wpos;         /* bytes claimed (under seglock) */
    uint32_t create_at;
    uint32_t max_exp;     /* latest exptime of its items, 0 = never */
    int32_t prev, next;   /* TTL chain */
    int32_t oprev, onext; /* seal order (fifo, s3fifo queues) */
    uint64_t seq;         /* allocation sequence: CAS high bits */
} __attribute__((aligned(64)));

struct chain {
    int32_t head, tail;
    int32_t active[2]; /* open segment per s3fifo queue (queue 0 otherwise) */
    int32_t cursor;    /* merge: next segment to merge */
    uint64_t cursor_seq;
};

struct order {
    int32_t head, tail;
    uint32_t n;
};

/* One live item found by a segment scan. */
struct scan_ent {
    uint64_t hash;
    uint32_t off;
    uint8_t freq;
    uint8_t src;  /* which of a merge's sources */
    uint8_t part; /* merge: kept from the partial class */
};

#define MERGE_MAX 8 /* most sources of a merge */

struct seg_engine {
    struct kl_engine base;
    enum kl_evict_policy evict;
    uint32_t seg_size, off_bits, item_max;
    uint8_t *data;
    size_t data_len;
    struct seg *segs;
    uint32_t nseg;

    /* hash table (hashtable.c) */
    _Atomic uint64_t *table;
    _Atomic uint64_t *ovf;
    _Atomic uint64_t *full_bits; /* a bit a first bucket: seen full (a hint) */
    uint32_t nb_max;             /* buckets the mapping has room for */
    uint32_t novf;
    _Atomic uint32_t ovf_used;
    size_t hash_bytes;
    pthread_mutex_t grow_lock; /* one splitter at a time; flush holds it too */
    /* buckets in use << 1 | a split is moving entries (own cache line: read by every lookup) */
    _Alignas(64) _Atomic uint64_t ht_state;
    struct {
        _Alignas(64) _Atomic int64_t n;
    } ht_items[8]; /* occupied slots, striped by bucket address */

    /* segments (segment.c) */
    pthread_spinlock_t seglock;
    struct chain chains[NCHAINS];
    int32_t free_head;
    uint32_t nfree;
    uint64_t next_seq;
    struct order order[2];

    /* eviction (evict.c) */
    pthread_mutex_t evict_lock;
    uint32_t chain_cursor;
    uint32_t merge_evicting; /* evicting merges done (merge's decay) */
    uint64_t rng;
    int32_t reloc; /* s3fifo: open main-queue target */
    bool reloc_noexp;
    struct scan_ent *scan;
    uint32_t scan_cap;
    _Atomic uint32_t *ghost;
    uint32_t ghost_mask;

    /* time */
    _Atomic uint32_t now;
    _Atomic uint32_t flush_at; /* 0: none pending */

    /* statistics (off the hot path) */
    _Atomic uint64_t st_evictions, st_expirations, st_expired_unfetched, st_evicted_unfetched;
    _Atomic uint64_t st_seg_evictions, st_seg_expirations, st_seg_merges, st_hash_moves;
};

static inline struct seg_engine *seg_of(struct kl_engine *e) { return (struct seg_engine *)e; }

static inline char *seg_data(struct seg_engine *se, uint32_t id)
{
    return (char *)se->data + (size_t)id * se->seg_size;
}

static inline uint64_t key_hash(const char *key, uint32_t klen) { return kl_hash64(key, klen, 0); }

static inline uint64_t seg_cas(struct seg_engine *se, uint32_t id, uint32_t off)
{
    return (se->segs[id].seq << se->off_bits) | (off >> 3);
}

/* ---- hash table (hashtable.c) ---- */

/* Slot: off/8 (20 bits) | seg (24) << 20 | freq (6) << 44 | fetched << 50 |
 * win << 51 | tag (12) << 52. 0 is empty. */
#define SLOT_OFF(v)   ((uint32_t)((v)&0xfffff) << 3)
#define SLOT_SEG(v)   ((uint32_t)(((v) >> 20) & 0xffffff))
#define SLOT_FREQ(v)  ((uint32_t)(((v) >> 44) & 0x3f))
#define SLOT_FETCHED  (1ull << 50)
#define SLOT_WIN      (1ull << 51)
#define SLOT_TAG(v)   ((uint32_t)((v) >> 52))
#define SLOT_LOC_MASK ((1ull << 44) - 1)
#define FREQ_MAX      63u

static inline uint64_t slot_loc(uint32_t seg, uint32_t off)
{
    return ((uint64_t)seg << 20) | (off >> 3);
}

static inline uint32_t hash_tag(uint64_t h)
{
    uint32_t t = (uint32_t)(h >> 52);
    return t ? t : 1;
}

static inline uint64_t slot_make(uint64_t h, uint64_t loc, uint32_t freq, uint64_t bits)
{
    return ((uint64_t)hash_tag(h) << 52) | bits | ((uint64_t)freq << 44) | loc;
}

/* A table of nb buckets that may grow to nb_max (address space reserved, touched as used). */
int ht_init(struct seg_engine *se, uint32_t nb, uint32_t nb_max);
void ht_free(struct seg_engine *se);
/* Lock and unlock the chain of hash h. */
void ht_lock(struct seg_engine *se, uint64_t h);
void ht_unlock(struct seg_engine *se, uint64_t h);
/* Under the lock: the slot holding key (or NULL); *v is its value. */
_Atomic uint64_t *ht_find(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                          uint64_t *v);
/* Under the lock: the slot pointing to loc (or NULL). */
_Atomic uint64_t *ht_find_loc(struct seg_engine *se, uint64_t h, uint64_t loc);
/* Under the lock: a free slot for h, chaining a bucket or dropping the least
 * used entry of the chain when none is left (*dropped = its old value).
 * *full tells that both first buckets were full (the table should grow). */
_Atomic uint64_t *ht_free_slot(struct seg_engine *se, uint64_t h, uint64_t *dropped, bool *full);
/* Under the lock: an empty slot got an item (+1) or an item's slot was emptied (-1). */
void ht_count(struct seg_engine *se, _Atomic uint64_t *slot, int delta);
/* Without any bucket lock held: split buckets while the table is fuller than
 * its target load (does nothing if another thread is growing it). */
void ht_grow(struct seg_engine *se);
/* Buckets in use (not counting overflow buckets). */
uint32_t ht_buckets(struct seg_engine *se);
/* Without a lock: find key, pin its segment; the slot and value, or NULL. */
_Atomic uint64_t *ht_lookup(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                            uint64_t *v);
/* Count an access on a looked-up slot (best effort). */
void ht_bump(_Atomic uint64_t *slot, uint64_t v);
/* Walk every slot of the table (for flush), each bucket chain under its lock. */
void ht_clear_all(struct seg_engine *se);
/* Visit the slots of buckets [from, from + n) (to the table's end at most),
 * each chain under its lock: fn must not block or take an engine lock. The
 * bucket to go on from; at or past ht_buckets() the table has been walked. */
typedef void (*ht_visit_fn)(struct seg_engine *se, uint64_t v, void *arg);
uint32_t ht_walk(struct seg_engine *se, uint32_t from, uint32_t n, ht_visit_fn fn, void *arg);
uint32_t ht_overflow_used(struct seg_engine *se);
/* Bytes of table in use: first buckets, overflow buckets taken, full hints. */
uint64_t ht_bytes_used(struct seg_engine *se);

/* ---- segments (segment.c) ---- */

/* An anonymous mapping of len bytes, 2 MiB aligned, with huge pages asked
 * for; reserve: counted against the commit limit (else MAP_NORESERVE). */
void *seg_map(size_t len, bool reserve);
/* Unmap what seg_map(len) mapped (NULL: nothing). */
void seg_unmap(void *p, size_t len);
int segs_init(struct seg_engine *se, size_t mem, uint32_t now);
void segs_free(struct seg_engine *se);
void seg_pin(struct seg_engine *se, uint32_t id);
void seg_unpin(struct seg_engine *se, uint32_t id);
/* Claim size bytes in chain's open segment: 0 with id and off pinned as a
 * writer, or KL_E_NO_MEMORY. */
int seg_reserve(struct seg_engine *se, uint32_t chain, uint32_t queue, uint32_t size,
                uint32_t exptime, uint32_t *id, uint32_t *off);
/* End a writer's claim. */
void seg_writer_done(struct seg_engine *se, uint32_t id);
/* An item (size bytes at seg id) became live / stopped being live. */
void seg_live_add(struct seg_engine *se, uint32_t id, uint32_t size);
void seg_live_sub(struct seg_engine *se, uint32_t id, uint32_t size);
/* Account a slot value that is being removed from the table. */
void seg_slot_gone(struct seg_engine *se, uint64_t v);
/* Under seglock: list operations. */
void chain_remove(struct seg_engine *se, uint32_t id);
void chain_push_head(struct seg_engine *se, uint32_t chain, uint32_t id);
/* Link id into chain just before `before`, a segment of that chain. */
void chain_insert_before(struct seg_engine *se, uint32_t chain, uint32_t before, uint32_t id);
void chain_push_tail(struct seg_engine *se, uint32_t chain, uint32_t id);
void order_remove(struct seg_engine *se, uint32_t id);
void order_push(struct seg_engine *se, uint32_t id);
int32_t free_pop(struct seg_engine *se, uint32_t keep);
void seg_seal_locked(struct seg_engine *se, uint32_t id);
/* Take a segment for a copy target (evictor): RELOC state, or NIL. */
int32_t seg_take_target(struct seg_engine *se);
/* After its items are gone: free it now, or when its last pin goes. */
void seg_retire(struct seg_engine *se, uint32_t id);

/* ---- TTL chains (ttl.c) ---- */

uint32_t ttl_chain(uint32_t exptime, uint32_t now);
/* Free every expired segment at the head of each chain. */
void ttl_sweep(struct seg_engine *se, uint32_t now);

/* ---- the engine: seg.c and seg_store.c ---- */

/* Read the clock, applying a delayed flush whose time has come. */
uint32_t seg_clock(struct seg_engine *se);
int seg_reserve_op(struct kl_engine *e, const char *key, size_t klen, uint32_t vlen, uint32_t flags,
                   uint32_t exptime, struct kl_store *st);
int seg_commit_op(struct kl_engine *e, struct kl_store *st, enum kl_store_mode mode,
                  uint64_t cas_in, uint64_t *cas_out);
void seg_abort_op(struct kl_engine *e, struct kl_store *st);
int seg_delete_op(struct kl_engine *e, const char *key, size_t klen, uint64_t cas_in,
                  bool invalidate, uint64_t *cas_out);
int seg_arith_op(struct kl_engine *e, const char *key, size_t klen, bool incr, uint64_t delta,
                 uint64_t cas_in, uint64_t *value, uint64_t *cas_out);
int seg_touch_op(struct kl_engine *e, const char *key, size_t klen, uint32_t exptime);

/* ---- eviction (evict.c) ---- */

/* Free at least one segment; 0, or -ENOMEM when nothing could go. */
int evict_once(struct seg_engine *se);
/* Remove every item of an EVICTING segment from the table and retire it;
 * expired != 0 counts them as expirations. */
void seg_clear(struct seg_engine *se, uint32_t id, int expired);
bool ghost_hit(struct seg_engine *se, uint64_t h);

#endif /* KEEL_STORAGE_SEG_INTERNAL_H */
