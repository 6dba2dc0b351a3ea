/* storage/disk/recovery.c: rebuilding the index at open, and the index
 * checkpoint that makes that fast.
 *
 * Recovery loads the checkpoint (index.ckpt: the entries, shard by shard,
 * and how far each data file was covered), then scans every data file from
 * where the checkpoint left it (the whole file if it is newer), through an
 * mmap, verifying each record's CRC. A key's newest record by sequence
 * number wins (compaction copies records with their old sequence number,
 * later in file order); a tombstone is kept as a TOMB entry until the end so
 * that no older copy comes back; a flush record drops everything before it.
 * A delayed flush_all left its own flush record (exptime = when it is due):
 * the newest one, unless a flush came after it, is scheduled again (or done
 * at once, by the first operation, if it fell due while the server was
 * down: whatever is on file was stored before it was due). The checkpoint
 * keeps the one pending when it was taken.
 * A record that fails its check is skipped when a valid one follows (a write
 * that never landed among ones that did) and cut off when none does (a torn
 * tail).
 *
 * A checkpoint notes each file's claimed end, syncs the data, waits out
 * writes still pending below those ends, and copies each shard under its
 * lock; whatever lands later lies past the noted ends and is scanned at the
 * next start. It is written to index.tmp, synced and renamed.
 */
#define _GNU_SOURCE
#include "disk_internal.h"

#include "keel/assert.h"
#include "keel/crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_MAGIC 0x3130305850434b44ull /* "DKCPX001" */

struct ckpt_head {
    uint64_t magic;
    uint64_t entries;
    uint64_t flush_seq, cas_next, seq_next;
    uint32_t nfiles, flush_due; /* flush_due: a delayed flush_all pending, 0 none */
};

struct ckpt_file {
    uint32_t id, pad;
    uint64_t end;
};

struct scan {
    struct disk_engine *de;
    const char *map[IX_FILES];
    uint64_t maplen[IX_FILES];
    uint64_t covered[IX_FILES]; /* checkpointed bytes of each file */
    uint64_t max_seq, max_cas;
    uint64_t due_seq; /* the flush record that set `due` (the checkpoint: its last seq) */
    uint32_t due;     /* a delayed flush_all pending, 0 none */
};

static const char *rec_at(struct scan *sc, struct ix_entry e)
{
    return sc->map[ix_file(e)] + ix_offset(e);
}

/* Apply the record at (file, off) to the index being rebuilt. */
static void apply(struct scan *sc, uint32_t file, uint64_t off, uint32_t size)
{
    struct disk_engine *de = sc->de;
    const char *p = sc->map[file] + off;
    const struct rec_hdr *h = rec_hdr(p);
    if (h->seq > sc->max_seq)
        sc->max_seq = h->seq;
    if (h->cas > sc->max_cas)
        sc->max_cas = h->cas;
    if (h->kind == REC_FLUSH)
        return; /* applied by scan_file() */
    if (h->seq < atomic_load(&de->flush_seq))
        return;
    uint64_t hv = disk_hash(rec_key(p), h->klen);
    struct ix_shard *s = &de->ix.shards[ix_shard_of(hv)];
    uint32_t tag = ix_tag_of(hv), slots[16];
    uint32_t n = ix_find(s, tag, slots, 16);
    uint64_t state = IX_USED;
    if (h->kind == REC_DEL || disk_expired(h->exptime, atomic_load(&de->now)))
        state |= IX_TOMB;
    struct ix_entry neu = {ix_loc_w0(tag, file, off), ix_w1(size, h->exptime, state)};
    for (uint32_t i = 0; i < n && i < 16; i++) {
        struct ix_entry e = s->e[slots[i]];
        const char *q = rec_at(sc, e);
        if (rec_hdr(q)->klen == h->klen && memcmp(rec_key(q), rec_key(p), h->klen) == 0) {
            if (rec_hdr(q)->seq < h->seq)
                s->e[slots[i]] = neu;
            return;
        }
    }
    if (ix_insert(s, neu) != 0)
        KL_PANIC("no memory for the index during recovery");
}

struct before {
    uint32_t file;
    uint64_t off;
};

static bool drop_before(void *arg, struct ix_entry e)
{
    struct before *b = arg;
    return ix_before(e, b->file, b->off);
}

/* Scan file d from sc->covered; cut a torn tail; returns the valid end. */
static uint64_t scan_file(struct scan *sc, struct dfile *d)
{
    struct disk_engine *de = sc->de;
    const char *m = sc->map[d->id];
    uint64_t size = sc->maplen[d->id], pos = sc->covered[d->id];
    while (pos + REC_HDR <= size) {
        uint32_t n = rec_check(m + pos, size - pos);
        if (n == 0) {
            uint64_t q = pos + 8;
            while (q + REC_HDR <= size && rec_check(m + q, size - q) == 0)
                q += 8;
            if (q + REC_HDR > size)
                break; /* nothing valid follows: a torn tail */
            atomic_fetch_add(&de->st_torn, 1);
            pos = q;
            continue;
        }
        const struct rec_hdr *h = rec_hdr(m + pos);
        if (h->kind == REC_FLUSH && h->exptime == 0 && h->seq > atomic_load(&de->flush_seq)) {
            atomic_store(&de->flush_seq, h->seq);
            struct before b = {d->id, pos};
            ix_sweep(&de->ix, drop_before, &b);
        }
        if (h->kind == REC_FLUSH && h->seq > sc->due_seq) { /* the newest flush decides */
            sc->due_seq = h->seq;
            sc->due = h->exptime;
        }
        apply(sc, d->id, pos, n);
        atomic_fetch_add(&de->st_recovered, 1);
        pos += n;
    }
    return pos > size ? size : pos;
}

static char *ckpt_path(struct disk_engine *de, const char *name)
{
    size_t n = strlen(de->files.dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", de->files.dir, name);
    return p;
}

/* Load index.ckpt if it is whole and matches the files; true if loaded. */
static bool load_ckpt(struct scan *sc)
{
    struct disk_engine *de = sc->de;
    char *path = ckpt_path(de, "index.ckpt");
    if (path == NULL)
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = false;
    const char *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(struct ckpt_head) + 4)
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return false;
    size_t len = (size_t)st.st_size;
    struct ckpt_head h;
    memcpy(&h, m, sizeof h);
    uint32_t crc;
    memcpy(&crc, m + len - 4, 4);
    size_t need = sizeof h + (size_t)h.nfiles * sizeof(struct ckpt_file) + (size_t)IX_NSHARDS * 4 +
                  h.entries * sizeof(struct ix_entry) + 4;
    if (h.magic != CKPT_MAGIC || h.nfiles >= IX_FILES || need != len ||
        kl_crc32c(0, m, len - 4) != crc)
        goto out;
    const struct ckpt_file *cf = (const struct ckpt_file *)(m + sizeof h);
    for (uint32_t i = 0; i < h.nfiles; i++) {
        if (cf[i].id == 0 || cf[i].id >= IX_FILES)
            goto out;
        struct dfile *d = atomic_load(&de->files.tab[cf[i].id]);
        if (d && sc->maplen[d->id] >= cf[i].end)
            sc->covered[cf[i].id] = cf[i].end;
    }
    if (ix_init(&de->ix, h.entries) != 0)
        goto out;
    const char *p = (const char *)(cf + h.nfiles);
    for (uint32_t s = 0; s < IX_NSHARDS; s++) {
        uint32_t n;
        memcpy(&n, p, 4);
        p += 4;
        struct ix_shard *sh = &de->ix.shards[s];
        for (uint32_t i = 0; i < n; i++, p += sizeof(struct ix_entry)) {
            struct ix_entry e;
            memcpy(&e, p, sizeof e);
            uint32_t f = ix_file(e);
            /* entries of files gone since (compacted) or not covered are dropped */
            if (sc->covered[f] < ix_offset(e) + ix_len(e))
                continue;
            if (ix_insert(sh, e) != 0)
                goto out;
        }
    }
    atomic_store(&de->flush_seq, h.flush_seq);
    sc->due = h.flush_due;
    /* flush records below seq_next are in it (flush_due), even where a
     * file shorter than it says is scanned again from its start */
    sc->due_seq = h.seq_next ? h.seq_next - 1 : 0;
    sc->max_cas = h.cas_next ? h.cas_next - 1 : 0;
    sc->max_seq = h.seq_next ? h.seq_next - 1 : 0;
    ok = true;
out:
    munmap((void *)m, len);
    if (!ok) {
        ix_free(&de->ix);
        memset(sc->covered, 0, sizeof sc->covered);
    }
    return ok;
}

/* Drop the tombstones kept during the scan; sum each file's live bytes. */
static bool tomb_or_live(void *arg, struct ix_entry e)
{
    if (e.w1 & IX_TOMB)
        return true;
    uint64_t *live = arg;
    live[ix_file(e)] += ix_len(e);
    return false;
}

int disk_recover(struct disk_engine *de)
{
    struct scan *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return -ENOMEM;
    sc->de = de;
    struct dfiles *f = &de->files;
    int r = 0;
    for (uint32_t i = 1; i < IX_FILES; i++) {
        struct dfile *d = atomic_load(&f->tab[i]);
        if (d == NULL)
            continue;
        uint64_t size = atomic_load(&d->end);
        sc->maplen[i] = size;
        if (size == 0)
            continue;
        void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, d->fd, 0);
        if (m == MAP_FAILED) {
            r = -errno;
            goto out;
        }
        madvise(m, size, MADV_SEQUENTIAL);
        sc->map[i] = m;
    }
    if (!load_ckpt(sc) && (r = ix_init(&de->ix, 0)) != 0)
        goto out;
    struct dfile *last = NULL;
    for (uint32_t i = 1; i < IX_FILES; i++) {
        struct dfile *d = atomic_load(&f->tab[i]);
        if (d == NULL)
            continue;
        uint64_t end = sc->map[i] ? scan_file(sc, d) : 0;
        if (end < sc->maplen[i] && ftruncate(d->fd, (off_t)end) != 0) {
            r = -errno;
            goto out;
        }
        atomic_store(&d->end, end);
        atomic_store(&d->dead, end);
        last = d;
    }
    uint64_t *live = calloc(IX_FILES, sizeof *live);
    if (live == NULL) {
        r = -ENOMEM;
        goto out;
    }
    ix_sweep(&de->ix, tomb_or_live, live);
    for (uint32_t i = 1; i < IX_FILES; i++) {
        struct dfile *d = atomic_load(&f->tab[i]);
        if (d) {
            atomic_fetch_sub(&d->dead, live[i]); /* dead started at the file's end */
            atomic_fetch_add(&de->live_bytes, live[i]);
        }
    }
    free(live);
    f->seq = sc->max_seq + 1;
    atomic_store(&de->cas_next, sc->max_cas + 1);
    if (last) { /* the newest file goes on taking writes */
        atomic_store(&last->sealed, false);
        f->active = last;
        f->room = atomic_load(&last->end);
        if (f->direct && (r = win_open(last, f->win_bytes)) != 0)
            goto out;
    }
    atomic_store(&de->flush_at, sc->due); /* disk_clock() runs it once due */
out:
    for (uint32_t i = 1; i < IX_FILES; i++)
        if (sc->map[i])
            munmap((void *)sc->map[i], sc->maplen[i]);
    free(sc);
    return r;
}

/* ---- writing a checkpoint ---- */

struct ckpt_ends {
    uint64_t end[IX_FILES]; /* 0: not covered (created later) */
};

/* Must a checkpoint wait for this entry? (a write in flight below the ends) */
static bool in_flight_below(const struct ckpt_ends *ce, struct ix_entry e)
{
    return (e.w1 & IX_PENDING) && ix_offset(e) < ce->end[ix_file(e)];
}

static int write_all(int fd, const void *p, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, (const char *)p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)n;
    }
    return 0;
}

int disk_checkpoint(struct disk_engine *de)
{
    struct dfiles *f = &de->files;
    struct ckpt_ends *ce = calloc(1, sizeof *ce);
    struct ckpt_file *cf = calloc(IX_FILES, sizeof *cf);
    char *tmp = ckpt_path(de, "index.tmp"), *final = ckpt_path(de, "index.ckpt");
    struct ix_entry *copy = NULL;
    int r = -ENOMEM, fd = -1;
    if (ce == NULL || cf == NULL || tmp == NULL || final == NULL)
        goto out;
    pthread_mutex_lock(&de->ckpt_lock);
    struct ckpt_head h = {.magic = CKPT_MAGIC,
                          .flush_seq = atomic_load(&de->flush_seq),
                          .flush_due = atomic_load(&de->flush_at)};
    pthread_spin_lock(&f->alloc);
    h.seq_next = f->seq;
    for (uint32_t i = 1; i < IX_FILES; i++) {
        struct dfile *d = atomic_load(&f->tab[i]);
        if (d) {
            ce->end[i] = atomic_load(&d->end);
            cf[h.nfiles++] = (struct ckpt_file){.id = i, .end = ce->end[i]};
        }
    }
    pthread_spin_unlock(&f->alloc);
    h.cas_next = atomic_load(&de->cas_next);
    if ((r = files_sync_now(f)) != 0)
        goto unlock;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
        goto unlock;
    }
    /* the head's entry count is patched once known: write it last */
    if (lseek(fd, (off_t)(sizeof h + h.nfiles * sizeof *cf), SEEK_SET) < 0) {
        r = -errno;
        goto unlock;
    }
    for (uint32_t s = 0; s < IX_NSHARDS && r == 0; s++) {
        struct ix_shard *sh = &de->ix.shards[s];
        uint32_t n = 0;
        for (;;) {
            pthread_spin_lock(&sh->lock);
            bool wait = false;
            for (uint32_t j = 0; j < sh->cap && !wait; j++)
                wait = (sh->e[j].w1 & IX_USED) && in_flight_below(ce, sh->e[j]);
            if (!wait)
                break;
            pthread_spin_unlock(&sh->lock);
            disk_pause();
        }
        struct ix_entry *c = realloc(copy, (size_t)sh->cap * sizeof *c + 1);
        if (c == NULL) {
            pthread_spin_unlock(&sh->lock);
            r = -ENOMEM;
            break;
        }
        copy = c;
        for (uint32_t j = 0; j < sh->cap; j++) {
            struct ix_entry e = sh->e[j];
            if (!(e.w1 & IX_USED) || (e.w1 & IX_PENDING) || ce->end[ix_file(e)] == 0)
                continue;
            e.w1 &= ~(IX_WIN | IX_TOMB);
            copy[n++] = e;
        }
        pthread_spin_unlock(&sh->lock);
        h.entries += n;
        r = write_all(fd, &n, 4);
        if (r == 0)
            r = write_all(fd, copy, (size_t)n * sizeof *copy);
    }
    if (r != 0)
        goto unlock;
    /* now the head, with the entry count */
    if (lseek(fd, 0, SEEK_SET) < 0) {
        r = -errno;
        goto unlock;
    }
    if ((r = write_all(fd, &h, sizeof h)) != 0 ||
        (r = write_all(fd, cf, h.nfiles * sizeof *cf)) != 0)
        goto unlock;
    /* the CRC over the whole file (cheap next to the sync) */
    if (lseek(fd, 0, SEEK_END) < 0) {
        r = -errno;
        goto unlock;
    }
    {
        int rfd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (rfd < 0) {
            r = -errno;
            goto unlock;
        }
        struct stat st;
        fstat(rfd, &st);
        uint32_t all = 0;
        if (st.st_size > 0) {
            void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, rfd, 0);
            if (m == MAP_FAILED) {
                r = -errno;
                close(rfd);
                goto unlock;
            }
            all = kl_crc32c(0, m, (size_t)st.st_size);
            munmap(m, (size_t)st.st_size);
        }
        close(rfd);
        if ((r = write_all(fd, &all, 4)) != 0)
            goto unlock;
    }
    if (fdatasync(fd) != 0 || rename(tmp, final) != 0) {
        r = -errno;
        goto unlock;
    }
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
unlock:
    pthread_mutex_unlock(&de->ckpt_lock);
out:
    if (fd >= 0)
        close(fd);
    if (r != 0 && tmp)
        unlink(tmp);
    free(copy);
    free(ce);
    free(cf);
    free(tmp);
    free(final);
    return r;
}
