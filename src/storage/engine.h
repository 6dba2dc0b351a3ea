/* storage/engine.h: the one interface between keeld and its storage engines.
 *
 * An engine is an object with a table of operations (struct kl_engine_ops);
 * the server calls the kl_engine_*() wrappers below and never knows which
 * engine it talks to. Every call is safe from any worker thread at once. A
 * call may park the calling fiber (the disk engine waits for its reads); the
 * in-memory seg engine never does.
 *
 * Two ideas a reader needs:
 * - Time comes from the caller. kl_engine_tick(e, now) advances the engine's
 *   clock (seconds, never backwards) and does the engine's once-a-second work
 *   (the seg engine frees expired segments there). Exptimes arrive already
 *   decoded by the protocol layer: an absolute time on this clock, 0 for
 *   "never", KL_EXPTIME_EXPIRED for "already expired" (any exptime <= now is
 *   also expired). Tests drive the clock by hand.
 * - No copy beyond the engine's own store. A lookup pins the item and hands
 *   out a pointer into engine memory that stays valid until
 *   kl_engine_release(), so the server can send it with writev. A store is
 *   two steps: kl_engine_reserve() returns a pointer where the server copies
 *   the value bytes once (straight from its read buffer), then
 *   kl_engine_commit() applies the mode (set/add/replace/append/prepend/cas)
 *   atomically, or kl_engine_abort() drops the space. The caller must not
 *   park between reserve and commit/abort (the seg engine's evictor skips
 *   segments with writers rather than waiting, but the space stays pinned).
 */
#ifndef KEEL_STORAGE_ENGINE_H
#define KEEL_STORAGE_ENGINE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exptime meaning "already expired" (memcached's negative exptime). */
#define KL_EXPTIME_EXPIRED UINT32_MAX

/* Results of engine operations. */
enum kl_eresult {
    KL_E_OK = 0,      /* done (found, deleted, touched, incremented) */
    KL_E_STORED,      /* store applied */
    KL_E_NOT_STORED,  /* add on a present key, replace/append/prepend on a missing one */
    KL_E_EXISTS,      /* cas (or delete with cas) on an item changed since */
    KL_E_NOT_FOUND,   /* no such (live) item */
    KL_E_TOO_LARGE,   /* the item cannot fit an engine unit (segment) or the item limit */
    KL_E_NO_MEMORY,   /* no space could be freed (every candidate pinned) */
    KL_E_NON_NUMERIC, /* incr/decr on a value that is not a 64-bit decimal */
    KL_E_BAD_KEY,     /* key empty or longer than KL_KEY_MAX */
    KL_E_CORRUPT,     /* the stored record failed its check (disk: CRC); counted, dropped */
    KL_E_NO_SPACE,    /* the device is full (disk: ENOSPC, EFBIG); nothing was written */
    KL_E_IO,          /* the device failed a read, write or sync (disk) */
};

/* Longest key (memcached's limit). */
#define KL_KEY_MAX 250

/* Store modes. */
enum kl_store_mode { KL_SET, KL_ADD, KL_REPLACE, KL_APPEND, KL_PREPEND, KL_CAS };

/* Eviction policies (the seg engine's --evict). */
enum kl_evict_policy {
    KL_EVICT_MERGE,
    KL_EVICT_FIFO,
    KL_EVICT_CTE,
    KL_EVICT_RANDOM,
    KL_EVICT_S3FIFO
};

/* When the disk engine makes its writes durable (--sync). */
enum kl_sync_mode {
    KL_SYNC_BATCH = 0, /* every sync_ms (default): a crash loses at most that much */
    KL_SYNC_ALWAYS,    /* a store returns once durable; concurrent stores share a sync */
    KL_SYNC_NONE,      /* when the kernel writes back (and at close) */
};

/* Options of kl_engine_open(); zero fields take the defaults. */
struct kl_engine_opts {
    const char *engine;         /* "seg" (default) or "disk" */
    size_t mem_bytes;           /* -m: item memory (default 64 MiB) */
    size_t item_max;            /* largest item, key+value+header (default: seg size) */
    size_t seg_size;            /* --seg-size (default 1 MiB; power of two, 4 KiB..8 MiB) */
    unsigned hash_power;        /* --hash-power: 2^n buckets of 8 slots (default from mem) */
    enum kl_evict_policy evict; /* --evict (default merge) */
    uint32_t now;               /* the clock at open (seconds) */
    /* the disk engine */
    const char *data_dir;   /* --data-dir (required) */
    bool direct;            /* --direct: read the data files with O_DIRECT */
    enum kl_sync_mode sync; /* --sync (default batch) */
    uint32_t sync_ms;       /* --sync-ms: batch interval (default 10) */
    uint64_t file_bytes;    /* data file size before rotation (default 1 GiB) */
    unsigned compact_pct;   /* compact sealed files under this % live (default 50; 100: off) */
    uint32_t checkpoint_s;  /* index checkpoint interval, seconds (default 60) */
};

/* State bits of a looked-up item (meta protocol). */
enum {
    KL_META_FETCHED = 1 << 0, /* fetched before this lookup ("h" flag) */
    KL_META_STALE = 1 << 1,   /* marked stale by an invalidating delete ("X") */
    KL_META_WIN = 1 << 2,     /* this caller won the right to recache ("W") */
    KL_META_WON = 1 << 3,     /* another caller already won ("Z") */
};

/* A pinned item: valid until kl_engine_release(). */
struct kl_item {
    const char *value;    /* the value bytes, in engine memory */
    uint32_t vlen;        /* value length */
    uint32_t flags;       /* client flags */
    uint64_t cas;         /* unique per stored copy; unchanged by touch */
    uint32_t exptime;     /* absolute, 0 = never */
    int32_t ttl_left;     /* seconds until expiry, -1 = never */
    uint32_t last_access; /* seconds since last access or write (engine-approximate) */
    uint32_t meta;        /* KL_META_* */
    uintptr_t priv[2];    /* engine's own (the pin) */
};

/* Lookup options. */
enum {
    KL_LOOKUP_NOBUMP = 1 << 0, /* do not count as an access (no LRU/fetched update) */
    KL_LOOKUP_TOUCH = 1 << 1,  /* get-and-touch: set exptime first */
    KL_LOOKUP_WIN = 1 << 2,    /* win the recache token unless it was sent (meta N) */
    KL_LOOKUP_META = 1 << 3,   /* a meta get: a stale item (or R) hands out the token */
};
struct kl_lookup_opts {
    unsigned flags;       /* KL_LOOKUP_* */
    uint32_t exptime;     /* new exptime with KL_LOOKUP_TOUCH */
    uint32_t recache_ttl; /* >0: win a recache token when ttl_left < this ("R") */
};

/* One key of kl_engine_lookup_many(). */
struct kl_key {
    const char *p;
    uint32_t len;
};

/* Most keys one kl_engine_lookup_many() call takes. */
#define KL_LOOKUP_MANY_MAX 32

/* A store in progress: reserve fills it; commit or abort ends it. */
struct kl_store {
    char *value; /* where the caller writes vlen value bytes */
    uint32_t vlen;
    uintptr_t priv[6]; /* engine's own */
};

/* Statistics (absolute values; the server diffs or sums them). */
struct kl_engine_stats {
    uint64_t items;             /* live items */
    uint64_t bytes;             /* bytes of live items (headers, keys, values) */
    uint64_t limit_bytes;       /* item memory (-m) */
    uint64_t evictions;         /* live items removed to make room */
    uint64_t expirations;       /* items removed by expiry sweeps */
    uint64_t expired_unfetched; /* of those, never fetched */
    uint64_t evicted_unfetched; /* evicted and never fetched */
    uint64_t reclaimed;         /* space of replaced/deleted items reused */
    /* engine figures */
    uint64_t segs_total, segs_free, seg_evictions, seg_expirations, seg_merges;
    uint64_t hash_bytes; /* hash table bytes in use (first buckets, overflow taken, hints) */
    uint64_t hash_buckets, hash_overflow_used, hash_overflow_total;
    uint64_t hash_moves;     /* entries moved to their other bucket to make room */
    uint64_t seg_used_bytes; /* bytes written in segments in use (live and dead) */
    /* disk engine figures */
    uint64_t disk_files, disk_data_bytes, disk_dead_bytes; /* data files and their bytes */
    uint64_t disk_corrupt;     /* records that failed their CRC on a read */
    uint64_t disk_io_errors;   /* failed reads, writes and syncs */
    uint64_t disk_no_space;    /* writes refused for a full device */
    uint64_t disk_compactions; /* data files rewritten */
    uint64_t disk_group_syncs; /* syncs that --sync always stores waited for (shared) */
};

/* One live item as `lru_crawler metadump` lists it (kl_engine_dump). */
struct kl_item_meta {
    const char *key; /* valid during the callback only */
    uint32_t klen;
    uint32_t exptime;     /* absolute, 0 = never */
    uint32_t last_access; /* seconds since last access or write (engine-approximate) */
    uint64_t cas;
    uint32_t size; /* bytes the item takes in the engine */
    bool fetched;  /* read since it was stored */
};

/* Called for each item of a dump, inside the engine's locks: it must not
 * block or call the engine. */
typedef void (*kl_dump_fn)(void *arg, const struct kl_item_meta *m);

struct kl_engine;

/* The operations every engine implements (see the wrappers for meaning). */
struct kl_engine_ops {
    void (*close)(struct kl_engine *e);
    void (*tick)(struct kl_engine *e, uint32_t now);
    int (*lookup)(struct kl_engine *e, const char *key, size_t klen, const struct kl_lookup_opts *o,
                  struct kl_item *it);
    void (*release)(struct kl_engine *e, struct kl_item *it);
    /* Optional: engines that wait for a device overlap the waits (see the wrapper). */
    void (*lookup_many)(struct kl_engine *e, size_t n, const struct kl_key *keys,
                        struct kl_item *items, int *results);
    int (*reserve)(struct kl_engine *e, const char *key, size_t klen, uint32_t vlen, uint32_t flags,
                   uint32_t exptime, struct kl_store *st);
    int (*commit)(struct kl_engine *e, struct kl_store *st, enum kl_store_mode mode,
                  uint64_t cas_in, uint64_t *cas_out);
    void (*abort)(struct kl_engine *e, struct kl_store *st);
    int (*remove)(struct kl_engine *e, const char *key, size_t klen, uint64_t cas_in,
                  bool invalidate, uint64_t *cas_out);
    int (*arith)(struct kl_engine *e, const char *key, size_t klen, bool incr, uint64_t delta,
                 uint64_t cas_in, uint64_t *value, uint64_t *cas_out);
    int (*touch)(struct kl_engine *e, const char *key, size_t klen, uint32_t exptime);
    void (*flush)(struct kl_engine *e, uint32_t delay);
    void (*stats)(struct kl_engine *e, struct kl_engine_stats *s);
    /* Optional: list the live items (see the wrapper). */
    int (*dump)(struct kl_engine *e, uint64_t *cursor, uint32_t budget, kl_dump_fn fn, void *arg);
};

/* Every engine object starts with this. */
struct kl_engine {
    const struct kl_engine_ops *ops;
};

/* Open the engine opts->engine names; 0 or -EINVAL (bad options), -ENOMEM. */
int kl_engine_open(const struct kl_engine_opts *opts, struct kl_engine **out);

/* The seg engine (in memory, Segcache); 0 or a negative errno. */
int kl_seg_open(const struct kl_engine_opts *opts, struct kl_engine **out);

/* The disk engine (data files in opts->data_dir, an index in memory); 0 or a negative errno. */
int kl_disk_open(const struct kl_engine_opts *opts, struct kl_engine **out);

/* Parse a sync mode name ("always", "batch", "none"); 0 or -EINVAL. */
int kl_sync_mode_parse(const char *name, enum kl_sync_mode *out);

/* Parse an eviction policy name ("merge", "fifo", ...); 0 or -EINVAL. */
int kl_evict_policy_parse(const char *name, enum kl_evict_policy *out);

/* The name of a policy. */
const char *kl_evict_policy_name(enum kl_evict_policy p);

/* The name of a result ("STORED", "NOT_FOUND", ...). */
const char *kl_eresult_name(int r);

/* Close the engine; every item must have been released. */
static inline void kl_engine_close(struct kl_engine *e) { e->ops->close(e); }

/* Advance the clock to `now` (seconds) and do the engine's periodic work. */
static inline void kl_engine_tick(struct kl_engine *e, uint32_t now) { e->ops->tick(e, now); }

/* Look up a key: KL_E_OK with *it pinned (release it), KL_E_NOT_FOUND, or
 * (disk) KL_E_CORRUPT, KL_E_IO, KL_E_NO_MEMORY.
 * `o` may be NULL (a plain get). */
static inline int kl_engine_lookup(struct kl_engine *e, const char *key, size_t klen,
                                   const struct kl_lookup_opts *o, struct kl_item *it)
{
    return e->ops->lookup(e, key, klen, o, it);
}

/* Look up n plain-get keys (n <= KL_LOOKUP_MANY_MAX): results[i] is what
 * kl_engine_lookup(keys[i]) returns, items[i] pinned when it is KL_E_OK. An
 * engine that waits for a device overlaps the waits (the disk engine has all
 * n reads in flight at once); any other looks the keys up in turn. */
static inline void kl_engine_lookup_many(struct kl_engine *e, size_t n, const struct kl_key *keys,
                                         struct kl_item *items, int *results)
{
    if (e->ops->lookup_many) {
        e->ops->lookup_many(e, n, keys, items, results);
        return;
    }
    for (size_t i = 0; i < n; i++)
        results[i] = e->ops->lookup(e, keys[i].p, keys[i].len, NULL, &items[i]);
}

/* True when the engine overlaps batched lookups, so that the server gains by
 * gathering the keys of several pipelined gets into one call. */
static inline bool kl_engine_overlaps(const struct kl_engine *e)
{
    return e->ops->lookup_many != NULL;
}

/* Unpin an item returned by kl_engine_lookup(). */
static inline void kl_engine_release(struct kl_engine *e, struct kl_item *it)
{
    e->ops->release(e, it);
}

/* Reserve space for an item of vlen value bytes: 0 with st->value to fill,
 * or KL_E_TOO_LARGE, KL_E_NO_MEMORY, KL_E_BAD_KEY. */
static inline int kl_engine_reserve(struct kl_engine *e, const char *key, size_t klen,
                                    uint32_t vlen, uint32_t flags, uint32_t exptime,
                                    struct kl_store *st)
{
    return e->ops->reserve(e, key, klen, vlen, flags, exptime, st);
}

/* Apply a reserved store with a mode; cas_in is the CAS of mode KL_CAS.
 * KL_E_STORED (cas_out = the new CAS), KL_E_NOT_STORED, KL_E_EXISTS,
 * KL_E_NOT_FOUND, KL_E_TOO_LARGE (append grew too big), KL_E_NO_MEMORY,
 * and on disk KL_E_NO_SPACE, KL_E_IO. The disk engine may park here. Every
 * other mutation below may also return KL_E_NO_SPACE or KL_E_IO on disk. */
static inline int kl_engine_commit(struct kl_engine *e, struct kl_store *st,
                                   enum kl_store_mode mode, uint64_t cas_in, uint64_t *cas_out)
{
    return e->ops->commit(e, st, mode, cas_in, cas_out);
}

/* Drop a reservation (bad data from the client). */
static inline void kl_engine_abort(struct kl_engine *e, struct kl_store *st)
{
    e->ops->abort(e, st);
}

/* Delete a key (only if its CAS is cas_in, when non-zero). With invalidate
 * (meta), mark it stale and give it a new CAS instead (returned in cas_out).
 * KL_E_OK, KL_E_NOT_FOUND, KL_E_EXISTS. */
static inline int kl_engine_delete(struct kl_engine *e, const char *key, size_t klen,
                                   uint64_t cas_in, bool invalidate, uint64_t *cas_out)
{
    return e->ops->remove(e, key, klen, cas_in, invalidate, cas_out);
}

/* incr/decr a decimal value: incr wraps at 2^64, decr stops at 0. KL_E_OK with
 * the new *value, KL_E_NOT_FOUND, KL_E_NON_NUMERIC, KL_E_EXISTS (cas_in). */
static inline int kl_engine_arith(struct kl_engine *e, const char *key, size_t klen, bool incr,
                                  uint64_t delta, uint64_t cas_in, uint64_t *value,
                                  uint64_t *cas_out)
{
    return e->ops->arith(e, key, klen, incr, delta, cas_in, value, cas_out);
}

/* Set a key's exptime (its CAS stays): KL_E_OK or KL_E_NOT_FOUND. */
static inline int kl_engine_touch(struct kl_engine *e, const char *key, size_t klen,
                                  uint32_t exptime)
{
    return e->ops->touch(e, key, klen, exptime);
}

/* Invalidate every item stored before now + delay (delay 0: at once). */
static inline void kl_engine_flush(struct kl_engine *e, uint32_t delay) { e->ops->flush(e, delay); }

/* Read the statistics. */
static inline void kl_engine_stats(struct kl_engine *e, struct kl_engine_stats *s)
{
    e->ops->stats(e, s);
}

/* Store a value in one call (reserve, copy, commit). */
int kl_engine_store(struct kl_engine *e, enum kl_store_mode mode, const char *key, size_t klen,
                    const void *value, uint32_t vlen, uint32_t flags, uint32_t exptime,
                    uint64_t cas_in, uint64_t *cas_out);

/* List the live items a part at a time: each call passes about `budget`
 * hash buckets' worth of unexpired items, from *cursor on (0 to start), to
 * fn and advances *cursor. 1 while more remain, 0 once the walk is done,
 * -ENOTSUP for an engine without a dump, -ENOMEM. The seg engine calls fn
 * under a hash chain's lock; the disk engine reads each item's record (so
 * the call may park the fiber) and calls fn with no lock held. An item
 * stored, moved or removed during the walk may be missed or listed twice,
 * as memcached's crawler may. */
static inline int kl_engine_dump(struct kl_engine *e, uint64_t *cursor, uint32_t budget,
                                 kl_dump_fn fn, void *arg)
{
    if (e->ops->dump == NULL)
        return -ENOTSUP;
    return e->ops->dump(e, cursor, budget, fn, arg);
}

#endif /* KEEL_STORAGE_ENGINE_H */
