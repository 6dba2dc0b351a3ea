/* storage/disk/compact.c: compaction of sealed data files.
 *
 * A sealed file whose live bytes fall below the threshold is rewritten: its
 * records that the index still names are copied byte for byte (same
 * sequence number, so the same CRC) to the active file's end, each moved
 * like a store: under the shard lock the entry must still name the old
 * place, the new place is claimed and the entry points there PENDING while
 * the copy is written. Reads and writes go on meanwhile; a key changed
 * since simply is not moved. Tombstones are copied too unless the file is
 * the oldest (nothing older can come back); a file holding a flush record is
 * compacted only when it is the oldest. Then a checkpoint that no longer
 * names the file is written, and the file is deleted once unpinned.
 */
#define _GNU_SOURCE
#include "disk_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Move the live record at (file, off) of `size` bytes; 0 or -errno. */
static int relocate(struct disk_engine *de, const char *rec, uint32_t size, uint32_t file,
                    uint64_t off)
{
    const struct rec_hdr *h = rec_hdr(rec);
    uint64_t hv = disk_hash(rec_key(rec), h->klen);
    struct ix_shard *s = &de->ix.shards[ix_shard_of(hv)];
    uint32_t tag = ix_tag_of(hv);
    uint64_t w0 = ix_loc_w0(tag, file, off), noff, seq;
    struct dfile *d;
    uint32_t slot;
    for (;;) {
        pthread_spin_lock(&s->lock);
        slot = ix_slot_of(s, w0);
        if (slot == UINT32_MAX) {
            pthread_spin_unlock(&s->lock);
            return 0; /* changed since: not ours to move */
        }
        if (s->e[slot].w1 & IX_PENDING) { /* being deleted: wait for the outcome */
            pthread_spin_unlock(&s->lock);
            disk_pause();
            continue;
        }
        pthread_spin_lock(&de->files.alloc);
        d = files_claim(&de->files, size, &noff, &seq);
        pthread_spin_unlock(&de->files.alloc);
        if (d)
            break;
        pthread_spin_unlock(&s->lock);
        int r = files_room(&de->files, size);
        if (r != 0)
            return r;
    }
    struct ix_entry old = s->e[slot];
    struct ix_entry neu = {ix_loc_w0(tag, d->id, noff), old.w1 | IX_PENDING};
    s->e[slot] = neu;
    pthread_spin_unlock(&s->lock);
    int wr = files_write(d, rec, size, noff);
    pthread_spin_lock(&s->lock);
    slot = ix_slot_of(s, neu.w0);
    if (slot != UINT32_MAX) {
        if (wr == 0) {
            s->e[slot].w1 &= ~IX_PENDING;
        } else {
            old.w1 = (old.w1 & ~(IX_FETCHED | IX_WIN)) | (s->e[slot].w1 & (IX_FETCHED | IX_WIN));
            s->e[slot] = old;
        }
    }
    pthread_spin_unlock(&s->lock);
    if (wr == 0) {
        struct dfile *of = atomic_load(&de->files.tab[file]);
        atomic_fetch_add(&of->dead, size);
    }
    files_unpin(d);
    return wr;
}

/* Copy a tombstone as it is (no index entry names it). */
static int copy_tomb(struct disk_engine *de, const char *rec, uint32_t size)
{
    uint64_t off, seq;
    struct dfile *d;
    for (;;) {
        pthread_spin_lock(&de->files.alloc);
        d = files_claim(&de->files, size, &off, &seq);
        pthread_spin_unlock(&de->files.alloc);
        if (d)
            break;
        int r = files_room(&de->files, size);
        if (r != 0)
            return r;
    }
    int r = files_write(d, rec, size, off);
    atomic_fetch_add(&d->dead, size);
    files_unpin(d);
    return r;
}

static bool is_live(struct disk_engine *de, const char *rec, uint32_t file, uint64_t off)
{
    const struct rec_hdr *h = rec_hdr(rec);
    uint64_t hv = disk_hash(rec_key(rec), h->klen);
    struct ix_shard *s = &de->ix.shards[ix_shard_of(hv)];
    pthread_spin_lock(&s->lock);
    bool live = ix_slot_of(s, ix_loc_w0(ix_tag_of(hv), file, off)) != UINT32_MAX;
    pthread_spin_unlock(&s->lock);
    return live;
}

/* Rewrite file d; 0 or -errno (then the file stays). */
static int compact_file(struct disk_engine *de, struct dfile *d, bool oldest)
{
    uint64_t end = atomic_load(&d->end);
    const char *m = NULL;
    if (end > 0) {
        m = mmap(NULL, end, PROT_READ, MAP_SHARED, d->fd, 0);
        if (m == MAP_FAILED)
            return -errno;
    }
    int r = 0;
    /* a flush record may not move (it orders by place): only the oldest file drops it */
    for (uint64_t pos = 0; !oldest && pos + REC_HDR <= end;) {
        uint32_t n = rec_check(m + pos, end - pos);
        if (n && rec_hdr(m + pos)->kind == REC_FLUSH) {
            r = -EBUSY;
            break;
        }
        pos += n ? n : 8;
    }
    for (uint64_t pos = 0; r == 0 && pos + REC_HDR <= end;) {
        uint32_t n = rec_check(m + pos, end - pos);
        if (n == 0) {
            pos += 8;
            continue;
        }
        uint8_t kind = rec_hdr(m + pos)->kind;
        if (kind == REC_PUT && is_live(de, m + pos, d->id, pos))
            r = relocate(de, m + pos, n, d->id, pos);
        else if (kind == REC_DEL && !oldest)
            r = copy_tomb(de, m + pos, n);
        pos += n;
    }
    if (m)
        munmap((void *)m, end);
    return r;
}

int disk_compact(struct disk_engine *de, double below)
{
    if (pthread_mutex_trylock(&de->compact_lock) != 0)
        return 0;
    struct dfiles *f = &de->files;
    int done = 0;
    bool oldest = true;
    for (uint32_t i = 1; i < IX_FILES; i++) {
        struct dfile *d = atomic_load(&f->tab[i]);
        if (d == NULL)
            continue;
        bool was_oldest = oldest;
        oldest = false;
        pthread_spin_lock(&f->alloc);
        bool active = d == f->active;
        pthread_spin_unlock(&f->alloc);
        if (!atomic_load(&d->sealed) || active)
            continue;
        uint64_t end = atomic_load(&d->end), dead = atomic_load(&d->dead);
        if (end > 0 && (double)(end - (dead > end ? end : dead)) >= below * (double)end)
            continue;
        /* writes claimed before the seal may still be in flight: wait them out */
        for (int t = 0; atomic_load(&d->refs) != 0 && t < 50000; t++)
            disk_pause();
        if (atomic_load(&d->refs) != 0)
            continue;
        if (compact_file(de, d, was_oldest) != 0) {
            oldest = was_oldest ? false : oldest;
            continue;
        }
        if (de->sync != KL_SYNC_NONE)
            files_sync_now(f);
        /* every entry has moved: a checkpoint without the file, then the file goes */
        atomic_store(&f->tab[i], NULL);
        if (disk_checkpoint(de) != 0) {
            atomic_store(&f->tab[i], d);
            continue;
        }
        /* no entry names the file now; stats and syncs pin files by id
         * without a shard lock: give such a pin in progress time to count */
        usleep(10000);
        while (atomic_load(&d->refs) != 0)
            disk_pause();
        char path[4200];
        snprintf(path, sizeof path, "%s/data-%06u.kd", f->dir, d->id);
        unlink(path);
        win_free(d);
        if (d->dfd != d->fd)
            close(d->dfd);
        close(d->fd);
        free(d);
        atomic_fetch_add(&de->st_compactions, 1);
        oldest = was_oldest;
        done++;
    }
    pthread_mutex_unlock(&de->compact_lock);
    return done;
}
