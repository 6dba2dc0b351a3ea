/* storage/disk/disk_internal.h: the disk engine's shared structures.
 *
 * Data: append-only data files "data-NNNNNN.kd" in the data dir; the newest
 * is active, the older ones sealed. A record is a 40-byte header (CRC32C,
 * magic, kind, key length, value length, client flags, exptime, bits, CAS,
 * sequence number), the key and the value, padded to 8 bytes, so one read of
 * the record's exact length fetches all of it (record.c).
 *
 * Index: 4096 shards, each an open-addressing table (linear probing,
 * backward-shift deletion) of 16-byte entries under the shard's own
 * spinlock. An entry holds 32 bits of the key's hash (12 pick the shard, 20
 * are its tag), the record's file and offset and length, its exptime and a
 * few state bits: no key, whatever its length. Keys are checked against the
 * record read; a tag collision costs another read, never a wrong value.
 *
 * Writes: a mutation decides on what it read, then, under the shard lock,
 * checks that the key's entries did not change meanwhile, claims space at
 * the active file's end and swings the entry to the new record marked
 * PENDING; it writes the record with no lock held and clears PENDING. Who
 * meets a PENDING entry waits for it (a short sleep), so the record an entry
 * names is always on file, and one key's writes apply in sequence order.
 *
 * Locks, in order: shard lock -> alloc lock (active file, end, sequence).
 * No I/O under either; file creation and preallocation happen before.
 */
#ifndef KEEL_STORAGE_DISK_INTERNAL_H
#define KEEL_STORAGE_DISK_INTERNAL_H

#include "storage/engine.h"

#include "keel/hash.h"
#include "keel/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* ---- records (record.c) ---- */

#define REC_MAGIC 0x4b64u /* "dK" */
#define REC_HDR   40u
#define REC_MAX   ((1u << 24) - 8) /* the index's length field */

enum rec_kind { REC_PUT = 1, REC_DEL = 2, REC_FLUSH = 3 };
#define REC_STALE 1u /* bits: invalidated by a meta delete */

struct rec_hdr {
    uint32_t crc; /* CRC32C of everything after this field, key and value included */
    uint16_t magic;
    uint8_t kind;
    uint8_t klen;
    uint32_t vlen;
    uint32_t flags; /* client flags */
    uint32_t exptime;
    uint32_t bits; /* REC_STALE */
    uint64_t cas;
    uint64_t seq;
};
_Static_assert(sizeof(struct rec_hdr) == REC_HDR, "record header is 40 bytes");

/* Bytes of a record with these lengths, padded to 8. */
static inline uint32_t rec_size(uint32_t klen, uint32_t vlen)
{
    return (REC_HDR + klen + vlen + 7u) & ~7u;
}

/* Write a header and key at p (value left to the caller); returns the value pointer. */
char *rec_start(char *p, enum rec_kind kind, const char *key, uint32_t klen, uint32_t vlen,
                uint32_t flags, uint32_t exptime, uint32_t bits, uint64_t cas);

/* The CRC of a started record over everything but its sequence number (and
 * zero its padding): computed before the record's place is known. */
uint32_t rec_crc_body(char *p);

/* Set the sequence number and the CRC (from rec_crc_body): ready to write. */
void rec_seal(char *p, uint64_t seq, uint32_t body_crc);

/* Check a record of `avail` readable bytes at p: its size, or 0 if it is not whole and valid. */
uint32_t rec_check(const char *p, uint64_t avail);

static inline const char *rec_key(const char *p) { return p + REC_HDR; }
static inline const struct rec_hdr *rec_hdr(const char *p) { return (const struct rec_hdr *)p; }
static inline const char *rec_value(const char *p) { return p + REC_HDR + rec_hdr(p)->klen; }

/* ---- buffers (buf.c): size classes of aligned, recycled buffers ---- */

#define BUF_CLASSES 12 /* 4 KiB << 0..11: up to 8 MiB */
#define BUF_MIN     4096u

struct bufpool {
    pthread_spinlock_t lock[BUF_CLASSES];
    struct kl_pool pool[BUF_CLASSES];
    _Atomic bool ready[BUF_CLASSES]; /* mapped (on first use) */
    pthread_mutex_t init_lock;
    uint32_t nclasses;
};

int bufpool_init(struct bufpool *bp, uint32_t largest);
void bufpool_destroy(struct bufpool *bp);
/* A buffer of at least len bytes, 4096-aligned (its class in *cls), or NULL. */
char *buf_get(struct bufpool *bp, uint32_t len, uint32_t *cls);
void buf_put(struct bufpool *bp, char *b, uint32_t cls);

/* ---- the index (index.c) ---- */

/* Entry: w0 = off/8 (32) | file (12) << 32 | tag (20) << 44;
 * w1 = len (24) | exptime (32) << 24 | state (8) << 56. */
#define IX_NSHARDS_BITS 12
#define IX_NSHARDS      (1u << IX_NSHARDS_BITS)
#define IX_FILES        4096u /* file ids 1..4095 */
#define IX_USED         (1ull << 56)
#define IX_PENDING      (1ull << 57) /* record being written: wait */
#define IX_TOMB         (1ull << 58) /* being deleted (pending), or deleted (recovery) */
#define IX_FETCHED      (1ull << 59)
#define IX_WIN          (1ull << 60) /* the recache token went out */

struct ix_entry {
    uint64_t w0, w1;
};

static inline uint64_t ix_offset(struct ix_entry e) { return (e.w0 & 0xffffffffull) << 3; }
static inline uint32_t ix_file(struct ix_entry e) { return (uint32_t)(e.w0 >> 32) & 0xfff; }
static inline uint32_t ix_tag(struct ix_entry e) { return (uint32_t)(e.w0 >> 44); }
static inline uint32_t ix_len(struct ix_entry e) { return (uint32_t)(e.w1 & 0xffffff); }
static inline uint32_t ix_exptime(struct ix_entry e) { return (uint32_t)(e.w1 >> 24); }
static inline uint64_t ix_loc_w0(uint32_t tag, uint32_t file, uint64_t off)
{
    return ((uint64_t)tag << 44) | ((uint64_t)file << 32) | (off >> 3);
}
static inline uint64_t ix_w1(uint32_t len, uint32_t exptime, uint64_t state)
{
    return (uint64_t)len | ((uint64_t)exptime << 24) | state;
}

struct ix_shard {
    pthread_spinlock_t lock;
    uint32_t cap, count;
    bool in_arena; /* e lies in the index's arena (else it was malloc'ed) */
    struct ix_entry *e;
};

struct ix {
    struct ix_shard *shards;
    char *arena; /* every shard's first table, one mapping (huge pages) */
    size_t arena_len;
};

/* The shard of a hash, and the tag kept in its entries. */
static inline uint32_t ix_shard_of(uint64_t h) { return (uint32_t)(h >> (64 - IX_NSHARDS_BITS)); }
static inline uint32_t ix_tag_of(uint64_t h) { return (uint32_t)(h >> 32) & 0xfffff; }

int ix_init(struct ix *x, uint64_t expect_keys);
void ix_free(struct ix *x);
/* Under the shard lock: up to max slots whose entry has tag; their count
 * (which may exceed max). */
uint32_t ix_find(struct ix_shard *s, uint32_t tag, uint32_t *slots, uint32_t max);
/* Under the shard lock: insert an entry (growing the table); 0 or -ENOMEM. */
int ix_insert(struct ix_shard *s, struct ix_entry e);
/* Without the lock: ask the cache for the slots where ix_find() will start
 * looking for tag (its home and the next IX_PREFETCH_SLOTS), so that a batch
 * of lookups waits for its index lines once, together, not one by one. */
#define IX_PREFETCH_SLOTS 12u
void ix_prefetch(const struct ix_shard *s, uint32_t tag);
/* Under the shard lock: remove the entry at slot. */
void ix_remove(struct ix_shard *s, uint32_t slot);
/* Under the shard lock: the slot holding exactly this w0, or UINT32_MAX. */
uint32_t ix_slot_of(struct ix_shard *s, uint64_t w0);
/* Remove every entry for which drop(arg, entry) is true (it is called under
 * the shard's lock); how many. */
uint64_t ix_sweep(struct ix *x, bool (*drop)(void *arg, struct ix_entry e), void *arg);
/* Does entry e's record lie before (file, off)? */
static inline bool ix_before(struct ix_entry e, uint32_t file, uint64_t off)
{
    return ix_file(e) < file || (ix_file(e) == file && ix_offset(e) < off);
}
/* Bytes of the index tables and the entries in them. */
void ix_usage(struct ix *x, uint64_t *bytes, uint64_t *entries);

/* ---- data files (files.c) ---- */

struct dwin;

struct dfile {
    uint32_t id;
    int fd;                  /* buffered: preallocation, cuts, syncs, mmaps (and writes) */
    int dfd;                 /* records' reads and writes: fd, or an O_DIRECT one (--direct) */
    struct dwin *win;        /* --direct: the unwritten tail, while writes may come (window.c) */
    _Atomic int32_t refs;    /* pins: readers, writers, compaction */
    _Atomic uint64_t end;    /* bytes of records claimed (the active file grows) */
    _Atomic uint64_t dead;   /* bytes of records no longer live */
    _Atomic bool dirty;      /* written since the last sync */
    _Atomic bool sealed;     /* no longer active */
    _Atomic bool compacting; /* being rewritten: not a compaction candidate */
};

struct dfiles {
    char dir[4096];
    bool direct;
    uint64_t win_bytes;  /* --direct: each write window's size */
    uint64_t file_bytes; /* rotate when the active file reaches this */
    uint64_t prealloc;   /* fallocate steps */
    struct dfile *_Atomic tab[IX_FILES];
    /* alloc lock: the active file, its end, its preallocated end, the sequence */
    pthread_spinlock_t alloc;
    struct dfile *active;
    uint64_t room;        /* preallocated end of the active file */
    uint64_t seq;         /* next sequence number */
    bool no_falloc;       /* the file system has no fallocate */
    pthread_mutex_t grow; /* one rotation / preallocation at a time */
    /* group commit */
    pthread_mutex_t sync_lock;
    uint64_t sync_started, sync_done;
    bool sync_busy;
    int sync_err;
    struct sync_waiter *sync_waiters; /* fibers parked until sync_busy ends (files.c) */
    _Atomic uint64_t group_syncs;     /* syncs run for --sync always (shared by the waiters) */
};

/* Open the data directory's files (creating the directory); records are at
 * most rec_max bytes. 0 or -errno. */
int files_open(struct dfiles *f, const char *dir, bool direct, uint64_t file_bytes,
               uint32_t rec_max);
void files_close(struct dfiles *f);
/* Open (create) data file id; 0 or -errno. */
int files_add(struct dfiles *f, uint32_t id, bool create, struct dfile **out);
/* Make the active file ready for `size` more bytes (rotate, preallocate); 0 or -errno. */
int files_room(struct dfiles *f, uint32_t size);
/* Under the alloc lock only: claim size bytes at the active file's end (no syscall):
 * the file (pinned) and offset, or NULL when files_room() must run first. */
struct dfile *files_claim(struct dfiles *f, uint32_t size, uint64_t *off, uint64_t *seq);
/* Pin / unpin a file by id (pin under a shard lock). */
static inline struct dfile *files_pin(struct dfiles *f, uint32_t id)
{
    struct dfile *d = atomic_load_explicit(&f->tab[id], memory_order_acquire);
    if (d)
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_acq_rel);
    return d;
}
static inline void files_unpin(struct dfile *d)
{
    atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel);
}
/* Read len bytes at off of file d into an aligned buffer; *rec points at the
 * record (inside the buffer). 0, -EIO (short) or -errno. */
int files_read(struct dfiles *f, struct bufpool *bp, struct dfile *d, uint64_t off, uint32_t len,
               char **buf, uint32_t *cls, const char **rec);
/* Write len bytes at off, claimed by files_claim(); 0 or -errno (short writes retried). */
int files_write(struct dfile *d, const void *p, uint32_t len, uint64_t off);
/* Give up a claim that will not be written (it stays a hole). */
void files_skip(struct dfile *d, uint32_t len, uint64_t off);
/* pwrite(2) through the reactor from a fiber, else a plain one; bytes or -errno. */
ssize_t disk_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* ---- direct writes (window.c) ---- */

/* The window size for records of at most rec_max bytes. */
uint64_t win_size(uint32_t rec_max);
/* Give file d (becoming active, at its end) a window of cap bytes; 0 or -errno. */
int win_open(struct dfile *d, uint64_t cap);
/* Free d's window, if any (no writer may be in it). */
void win_free(struct dfile *d);
/* Under the alloc lock: may a claim of the active file d end at `end`? */
bool win_room(const struct dfile *d, uint64_t end);
/* files_write() with a window (p NULL: files_skip()). */
int win_write(struct dfile *d, const void *p, uint32_t len, uint64_t off);
/* d is no longer active (its end is final): the window goes once drained. */
void win_seal(struct dfile *d);
/* Tests: called by each flush just before its pwrite of [start, stop). */
extern void (*win_flush_hook)(uint64_t start, uint64_t stop);
/* Make every written record durable (group commit: concurrent callers share a sync). */
int files_sync_wait(struct dfiles *f);
/* fdatasync every dirty file now; 0 or the first -errno. */
int files_sync_now(struct dfiles *f);
/* Sleep a little: a fiber parks, a thread sleeps. */
void disk_pause(void);

/* ---- the engine ---- */

struct disk_engine {
    struct kl_engine base;
    struct ix ix;
    struct dfiles files;
    struct bufpool bufs;
    enum kl_sync_mode sync;
    uint32_t sync_ms;
    uint32_t item_max;
    double compact_below; /* rewrite sealed files with less live data than this */
    _Atomic uint32_t now;
    _Atomic uint32_t flush_at;  /* delayed flush_all, 0: none */
    _Atomic uint64_t flush_seq; /* records below this sequence are flushed */
    _Atomic uint64_t cas_next;
    _Atomic uint64_t live_bytes;
    /* background thread: batch sync, checkpoints, compaction */
    pthread_t bg;
    bool bg_running;
    pthread_mutex_t bg_lock;
    pthread_cond_t bg_cond;
    bool bg_stop;
    pthread_mutex_t compact_lock; /* one compaction at a time */
    pthread_mutex_t ckpt_lock;    /* one checkpoint at a time, and no flush_all during one */
    uint32_t checkpoint_s;
    /* statistics */
    _Atomic uint64_t st_corrupt, st_io_errors, st_no_space, st_compactions, st_compacted_bytes;
    _Atomic uint64_t st_expirations, st_recovered, st_torn;
};

static inline struct disk_engine *disk_of(struct kl_engine *e) { return (struct disk_engine *)e; }

static inline uint64_t disk_hash(const char *key, uint32_t klen) { return kl_hash64(key, klen, 0); }

static inline bool disk_expired(uint32_t exptime, uint32_t now)
{
    return exptime != 0 && (exptime == KL_EXPTIME_EXPIRED || exptime <= now);
}

/* The clock, applying a due delayed flush first. */
uint32_t disk_clock(struct disk_engine *de);

/* Recovery (recovery.c): load the checkpoint, scan what follows; 0 or -errno. */
int disk_recover(struct disk_engine *de);
/* Write the index checkpoint; 0 or -errno. */
int disk_checkpoint(struct disk_engine *de);
/* Compaction (compact.c): rewrite the sealed files below the threshold; how many. */
int disk_compact(struct disk_engine *de, double below);

/* Operations (disk_ops.c). */
int disk_lookup_op(struct kl_engine *e, const char *key, size_t klen,
                   const struct kl_lookup_opts *o, struct kl_item *it);
int disk_dump_op(struct kl_engine *e, uint64_t *cursor, uint32_t budget, kl_dump_fn fn, void *arg);
/* Run fn on each of n jobs (args, `stride` bytes apart), the first in the
 * calling fiber and the others each in a fiber of its own while a quarter of
 * the thread's fiber slots stays free (else in turn), and wait for all: their
 * waits on the device overlap. n <= DISK_FIBERS_MAX. */
#define DISK_FIBERS_MAX 32
void disk_in_fibers(uint32_t n, intptr_t (*fn)(void *), void *args, size_t stride,
                    const char *name);
void disk_lookup_many_op(struct kl_engine *e, size_t n, const struct kl_key *keys,
                         struct kl_item *items, int *results);
void disk_release_op(struct kl_engine *e, struct kl_item *it);
int disk_reserve_op(struct kl_engine *e, const char *key, size_t klen, uint32_t vlen,
                    uint32_t flags, uint32_t exptime, struct kl_store *st);
int disk_commit_op(struct kl_engine *e, struct kl_store *st, enum kl_store_mode mode,
                   uint64_t cas_in, uint64_t *cas_out);
void disk_abort_op(struct kl_engine *e, struct kl_store *st);
int disk_delete_op(struct kl_engine *e, const char *key, size_t klen, uint64_t cas_in,
                   bool invalidate, uint64_t *cas_out);
int disk_arith_op(struct kl_engine *e, const char *key, size_t klen, bool incr, uint64_t delta,
                  uint64_t cas_in, uint64_t *value, uint64_t *cas_out);
int disk_touch_op(struct kl_engine *e, const char *key, size_t klen, uint32_t exptime);
/* Append a flush record and empty the index, and clear the delayed flush
 * pending; with `due` non-zero only if that delayed flush is still the one
 * pending (the clock's call when it falls due). */
void disk_do_flush(struct disk_engine *de, uint32_t due);
/* Account a record that stopped being live. */
void disk_dead(struct disk_engine *de, struct ix_entry e);

#endif /* KEEL_STORAGE_DISK_INTERNAL_H */
