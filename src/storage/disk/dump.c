/* storage/disk/dump.c: the disk engine's dump (kl_engine_dump, for
 * `lru_crawler metadump`).
 *
 * The index holds no keys, so a dump reads them: each call takes one or
 * more shards, copies a shard's live entries under its lock (pinning their
 * files, as a lookup does), then reads their records with no lock held,
 * DUMP_DEPTH at a time, each read in a fiber of its own so that they are in
 * flight together (disk_in_fibers, as kl_engine_lookup_many), and passes every record that
 * is still a stored, unexpired, unflushed value to the callback. An entry
 * being written at that moment (PENDING) is passed over, and a key written,
 * deleted or moved by compaction during the dump may be missed or listed
 * twice, as the seg engine's dump may. A record that fails its CRC is left
 * out and counted, as a lookup would count it. The engine keeps no access
 * time: last_access is 0.
 */
#include "disk_internal.h"

#include <errno.h>
#include <stdlib.h>

#define DUMP_DEPTH DISK_FIBERS_MAX /* record reads in flight at once */

struct dump_read {
    struct disk_engine *de;
    struct ix_entry e;
    struct dfile *d; /* pinned until the record has been passed on */
    char *buf;
    uint32_t cls;
    const char *rec;
    int rc;
};

static intptr_t read_one(void *arg)
{
    struct dump_read *r = arg;
    r->rc = files_read(&r->de->files, &r->de->bufs, r->d, ix_offset(r->e), ix_len(r->e), &r->buf,
                       &r->cls, &r->rec);
    return 0;
}

/* Copy shard s's live entries (none pending or deleted) into *out, at most
 * cap of them, each with its file pinned; how many. */
static uint32_t copy_shard(struct disk_engine *de, struct ix_shard *s, struct dump_read *out,
                           uint32_t cap)
{
    uint32_t n = 0;
    pthread_spin_lock(&s->lock);
    for (uint32_t i = 0; i < s->cap && n < cap; i++) {
        struct ix_entry e = s->e[i];
        if (!(e.w1 & IX_USED) || (e.w1 & (IX_PENDING | IX_TOMB)))
            continue;
        struct dfile *d = files_pin(&de->files, ix_file(e));
        if (d == NULL)
            continue; /* its file was compacted away: the entry is going */
        out[n++] = (struct dump_read){.de = de, .e = e, .d = d};
    }
    pthread_spin_unlock(&s->lock);
    return n;
}

/* Pass on r's record if it is a live value; free its buffer, unpin its file. */
static void pass_on(struct disk_engine *de, struct dump_read *r, uint32_t now, kl_dump_fn fn,
                    void *arg)
{
    if (r->rc == -ENOMEM) /* the read buffers were all lent out: the wave's are back now */
        read_one(r);
    if (r->rc != 0) {
        atomic_fetch_add(&de->st_io_errors, 1);
    } else if (rec_check(r->rec, ix_len(r->e)) != ix_len(r->e)) {
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
    if (r->rc == 0)
        buf_put(&de->bufs, r->buf, r->cls);
    files_unpin(r->d);
}

int disk_dump_op(struct kl_engine *e, uint64_t *cursor, uint32_t budget, kl_dump_fn fn, void *arg)
{
    struct disk_engine *de = disk_of(e);
    uint32_t now = disk_clock(de);
    uint64_t shard = *cursor;
    uint64_t last = shard + (budget / 8 ? budget / 8 : 1); /* a shard for 8 buckets' worth */
    last = last < IX_NSHARDS ? last : IX_NSHARDS;
    for (; shard < last; shard++) {
        struct ix_shard *s = &de->ix.shards[shard];
        pthread_spin_lock(&s->lock);
        uint32_t cap = s->count + 16; /* room for a few stored meanwhile */
        pthread_spin_unlock(&s->lock);
        struct dump_read *r = malloc((size_t)cap * sizeof *r);
        if (r == NULL)
            return -ENOMEM;
        uint32_t n = copy_shard(de, s, r, cap);
        for (uint32_t i = 0; i < n; i += DUMP_DEPTH) {
            uint32_t k = n - i < DUMP_DEPTH ? n - i : DUMP_DEPTH;
            disk_in_fibers(k, read_one, &r[i], sizeof r[i], "disk-dump");
            for (uint32_t j = 0; j < k; j++)
                pass_on(de, &r[i + j], now, fn, arg);
        }
        free(r);
    }
    *cursor = shard;
    return shard < IX_NSHARDS ? 1 : 0;
}
