/* storage/disk/dump.c: the disk engine's dump (kl_engine_dump, for
 * `lru_crawler metadump`).
 *
 * The index holds no keys, so a dump reads them: each call takes one or
 * more shards, copies a shard's live entries under its lock and pins their
 * files (once a file, not once an entry: the lock is the one every lookup
 * of the shard needs), then reads the records with no lock held, DUMP_DEPTH
 * at a time, each read in a fiber of its own so that they are in flight
 * together (disk_in_fibers, as kl_engine_lookup_many), and passes every
 * record that is still a stored, unexpired, unflushed value to the
 * callback. A read refused for want of a buffer (the pool is shared with
 * lookups) is tried again once its wave's buffers are back, a few times; a
 * key still without one ends the dump with -ENOMEM rather than leave it out
 * silently. An entry being written at that moment (PENDING) is passed over,
 * and a key written, deleted or moved by compaction during the dump may be
 * missed or listed twice, as the seg engine's dump may. A record that fails
 * its CRC is left out and counted. The engine keeps no access time:
 * last_access is 0.
 */
#include "disk_internal.h"

#include <errno.h>
#include <stdlib.h>

#include "keel/assert.h"

#define DUMP_DEPTH   DISK_FIBERS_MAX /* record reads in flight at once */
#define DUMP_FILES   64              /* files a shard's entries pin one by one beyond this */
#define DUMP_RETRIES 100             /* tries of a read refused for want of a buffer */

struct dump_read {
    struct disk_engine *de;
    struct ix_entry e;
    struct dfile *d;
    bool own_pin; /* d pinned for this entry alone (past DUMP_FILES distinct files) */
    char *buf;
    uint32_t cls;
    const char *rec;
    int rc;
};

/* A shard's copy: its entries, and the files they pin. */
struct shard_copy {
    struct dump_read *r;
    uint32_t n, cap;
    struct dfile *pinned[DUMP_FILES];
    uint32_t npinned;
};

static intptr_t read_one(void *arg)
{
    struct dump_read *r = arg;
    r->rc = files_read(&r->de->files, &r->de->bufs, r->d, ix_offset(r->e), ix_len(r->e), &r->buf,
                       &r->cls, &r->rec);
    return 0;
}

static void unpin_all(struct shard_copy *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->r[i].own_pin)
            files_unpin(c->r[i].d);
    for (uint32_t i = 0; i < c->npinned; i++)
        files_unpin(c->pinned[i]);
    c->n = c->npinned = 0;
}

/* Under s's lock: file id pinned for the copy (once a file), or NULL when
 * the file is gone; *own when this entry holds a pin of its own. */
static struct dfile *pin_for(struct disk_engine *de, struct shard_copy *c, uint32_t id, bool *own)
{
    *own = false;
    for (uint32_t i = 0; i < c->npinned; i++)
        if (c->pinned[i]->id == id)
            return c->pinned[i];
    struct dfile *d = files_pin(&de->files, id);
    if (d == NULL)
        return NULL;
    if (c->npinned < DUMP_FILES)
        c->pinned[c->npinned++] = d;
    else
        *own = true;
    return d;
}

/* Copy shard s's live entries (none pending or deleted) with their files
 * pinned; false when more entries than c->cap arrived since the caller
 * sized it (nothing is then copied or pinned). */
static bool copy_shard(struct disk_engine *de, struct ix_shard *s, struct shard_copy *c)
{
    pthread_spin_lock(&s->lock);
    if (s->count > c->cap) {
        pthread_spin_unlock(&s->lock);
        return false;
    }
    for (uint32_t i = 0; i < s->cap; i++) {
        struct ix_entry e = s->e[i];
        if (!(e.w1 & IX_USED) || (e.w1 & (IX_PENDING | IX_TOMB)))
            continue;
        bool own;
        struct dfile *d = pin_for(de, c, ix_file(e), &own);
        if (d == NULL)
            continue; /* its file was compacted away: the entry is going */
        KL_ASSERT(c->n < c->cap, "shard of %u entries copied past %u", s->count, c->cap);
        c->r[c->n++] = (struct dump_read){.de = de, .e = e, .d = d, .own_pin = own};
    }
    pthread_spin_unlock(&s->lock);
    return true;
}

/* Pass on r's record if it is a live value, and free its buffer. */
static void pass_on(struct disk_engine *de, struct dump_read *r, uint32_t now, kl_dump_fn fn,
                    void *arg)
{
    if (r->rc != 0) {
        atomic_fetch_add(&de->st_io_errors, 1);
        return;
    }
    if (rec_check(r->rec, ix_len(r->e)) != ix_len(r->e)) {
        atomic_fetch_add(&de->st_corrupt, 1);
    } else {
        const struct rec_hdr *h = rec_hdr(r->rec);
        if (h->kind == REC_PUT && !disk_expired(h->exptime, now) &&
            h->seq >= atomic_load(&de->flush_seq)) {
            struct kl_item_meta m = {
                .key = rec_key(r->rec),
                .klen = h->klen,
                .exptime = h->exptime,
                .last_access = 0,
                .cas = h->cas,
                .size = ix_len(r->e),
                .fetched = (r->e.w1 & IX_FETCHED) != 0,
            };
            fn(arg, &m);
        }
    }
    buf_put(&de->bufs, r->buf, r->cls);
}

/* Read and pass on r[0, k): the reads in flight together, then the ones
 * refused a buffer again, one by one, once the others' are back. 0, or
 * -ENOMEM when one could not get a buffer at all. */
static int one_wave(struct disk_engine *de, struct dump_read *r, uint32_t k, uint32_t now,
                    kl_dump_fn fn, void *arg)
{
    disk_in_fibers(k, read_one, r, sizeof *r, "disk-dump");
    for (uint32_t j = 0; j < k; j++)
        if (r[j].rc != -ENOMEM)
            pass_on(de, &r[j], now, fn, arg);
    int rc = 0;
    for (uint32_t j = 0; j < k; j++) {
        if (r[j].rc != -ENOMEM)
            continue;
        for (int t = 0; rc == 0 && t < DUMP_RETRIES && r[j].rc == -ENOMEM; t++) {
            if (t > 0)
                disk_pause(); /* lookups hold the buffers: let them finish */
            read_one(&r[j]);
        }
        if (r[j].rc == -ENOMEM)
            rc = -ENOMEM; /* no buffer (or an earlier read had none): the dump stops */
        else
            pass_on(de, &r[j], now, fn, arg);
    }
    return rc;
}

/* Dump one shard: 0 or -ENOMEM. */
static int dump_shard(struct disk_engine *de, struct ix_shard *s, uint32_t now, kl_dump_fn fn,
                      void *arg)
{
    struct shard_copy c = {.r = NULL};
    for (;;) {
        pthread_spin_lock(&s->lock);
        c.cap = s->count + 16; /* room for a few stored meanwhile */
        pthread_spin_unlock(&s->lock);
        c.r = malloc((size_t)c.cap * sizeof *c.r);
        if (c.r == NULL)
            return -ENOMEM;
        if (copy_shard(de, s, &c))
            break;
        free(c.r); /* it grew past the room: size it again */
    }
    int rc = 0;
    for (uint32_t i = 0; i < c.n && rc == 0; i += DUMP_DEPTH)
        rc = one_wave(de, &c.r[i], c.n - i < DUMP_DEPTH ? c.n - i : DUMP_DEPTH, now, fn, arg);
    unpin_all(&c);
    free(c.r);
    return rc;
}

int disk_dump_op(struct kl_engine *e, uint64_t *cursor, uint32_t budget, kl_dump_fn fn, void *arg)
{
    struct disk_engine *de = disk_of(e);
    uint32_t now = disk_clock(de);
    uint64_t shard = *cursor;
    uint64_t last = shard + (budget / 8 ? budget / 8 : 1); /* a shard for 8 buckets' worth */
    last = last < IX_NSHARDS ? last : IX_NSHARDS;
    int rc = 0;
    for (; shard < last && rc == 0; shard++)
        rc = dump_shard(de, &de->ix.shards[shard], now, fn, arg);
    *cursor = shard; /* past the shards passed on (an error's shard may be in part) */
    if (rc != 0)
        return rc;
    return shard < IX_NSHARDS ? 1 : 0;
}
