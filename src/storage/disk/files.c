/* storage/disk/files.c: the disk engine's data files: naming, rotation,
 * preallocation, space claims, reads, writes and group commit.
 *
 * Space is claimed at the active file's end under the alloc spinlock, with
 * the record's sequence number, so sequence order is file order. The active
 * file is preallocated (fallocate) ahead of the claims, in steps, by
 * files_room() outside any lock: a full disk fails there, before a record
 * is placed, so a write never half-lands for lack of space. File systems
 * without fallocate write into plain holes.
 *
 * I/O from a fiber goes through the reactor (keel/io.h: one SQE each,
 * batched per loop iteration); anywhere else (start-up, the background
 * thread, tools, tests) it is a plain system call, and so it is when the
 * reactor cannot take the request (-EBUSY) or the fiber was cancelled: a
 * record half-written, or a group sync failed for everyone because its
 * leader's connection closed, would cost more than the wait.
 *
 * With --direct, records are read and written through a second, O_DIRECT
 * fd (dfd); the buffered fd still preallocates, cuts, syncs and maps (for
 * recovery and compaction). Writes then go through the active file's window
 * (window.c), which turns packed records into whole-block writes; a claim
 * also needs room in it.
 *
 * Group commit (--sync always): a writer whose record is written asks for a
 * sync that starts after that; if none is running it runs one itself
 * (fdatasync of every dirty file), otherwise it waits for the next: every
 * writer that finished while a sync ran shares the following one. A fiber
 * that waits parks on the group's list and the fiber that ran the sync
 * wakes every parked one through its reactor's inbox (they may live on
 * other threads) the moment the sync ends; they look again and one of them
 * starts the next. Outside a fiber the wait polls.
 */
#define _GNU_SOURCE
#include "disk_internal.h"

#include "keel/fiber.h"
#include "keel/io.h"
#include "keel/list.h"
#include "keel/reactor.h"
#include "keel/xthread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREALLOC_STEP ((uint64_t)16 << 20)

static bool in_fiber(void)
{
    return kl_reactor_active() && !kl_fiber_id_eq(kl_fiber_self(), KL_FIBER_ID_NONE);
}

void disk_pause(void)
{
    if (in_fiber()) {
        /* a cancelled fiber (keeld's shutdown) cannot sleep: let the others
         * run, among them the (also cancelled) writer it waits for */
        if (kl_sleep(20000) == -ECANCELED)
            kl_fiber_yield();
    } else {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

static ssize_t do_pread(int fd, void *buf, size_t len, uint64_t off)
{
    if (in_fiber()) {
        ssize_t n = kl_pread(fd, buf, len, (off_t)off, 0);
        if (n != -EBUSY && n != -EAGAIN && n != -ECANCELED)
            return n;
    }
    ssize_t n;
    do
        n = pread(fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t disk_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    if (in_fiber()) {
        ssize_t n = kl_pwrite(fd, buf, len, (off_t)off, 0);
        if (n != -EBUSY && n != -EAGAIN && n != -ECANCELED)
            return n;
    }
    ssize_t n;
    do
        n = pwrite(fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int do_sync(int fd)
{
    if (in_fiber()) {
        int r = kl_fsync(fd, 0);
        if (r != -EBUSY && r != -EAGAIN && r != -ECANCELED)
            return r;
    }
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static void file_path(const struct dfiles *f, uint32_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/data-%06u.kd", f->dir, id);
}

int files_add(struct dfiles *f, uint32_t id, bool create, struct dfile **out)
{
    if (id == 0 || id >= IX_FILES)
        return -ENOSPC; /* every file id taken */
    char path[4200];
    file_path(f, id, path, sizeof path);
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0644);
    if (fd < 0)
        return -errno;
    int dfd = fd;
    if (f->direct) {
        dfd = open(path, O_RDWR | O_CLOEXEC | O_DIRECT);
        if (dfd < 0) {
            int r = -errno;
            close(fd);
            if (create)
                unlink(path);
            return r;
        }
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int r = -errno;
        close(fd);
        if (dfd != fd)
            close(dfd);
        return r;
    }
    struct dfile *d = calloc(1, sizeof *d);
    if (d == NULL) {
        close(fd);
        if (dfd != fd)
            close(dfd);
        return -ENOMEM;
    }
    d->id = id;
    d->fd = fd;
    d->dfd = dfd;
    atomic_init(&d->end, (uint64_t)st.st_size);
    atomic_store_explicit(&f->tab[id], d, memory_order_release);
    *out = d;
    return 0;
}

int files_open(struct dfiles *f, const char *dir, bool direct, uint64_t file_bytes,
               uint32_t rec_max)
{
    memset(f, 0, sizeof *f);
    if (strlen(dir) >= sizeof f->dir - 32)
        return -ENAMETOOLONG;
    strcpy(f->dir, dir);
    f->direct = direct;
    f->win_bytes = win_size(rec_max);
    f->file_bytes = file_bytes;
    f->prealloc = file_bytes < PREALLOC_STEP ? file_bytes : PREALLOC_STEP;
    f->seq = 1;
    pthread_spin_init(&f->alloc, PTHREAD_PROCESS_PRIVATE);
    pthread_mutex_init(&f->grow, NULL);
    pthread_mutex_init(&f->sync_lock, NULL);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -errno;
    DIR *dh = opendir(dir);
    if (dh == NULL)
        return -errno;
    int r = 0;
    for (struct dirent *de; r == 0 && (de = readdir(dh)) != NULL;) {
        unsigned id;
        char tail;
        if (sscanf(de->d_name, "data-%6u.kd%c", &id, &tail) != 1 || id == 0 || id >= IX_FILES)
            continue;
        struct dfile *d;
        r = files_add(f, id, false, &d);
        if (r == 0)
            atomic_store(&d->sealed, true);
    }
    closedir(dh);
    return r;
}

static void file_free(struct dfile *d)
{
    win_free(d);
    if (d->dfd != d->fd)
        close(d->dfd);
    close(d->fd);
    free(d);
}

void files_close(struct dfiles *f)
{
    for (uint32_t i = 0; i < IX_FILES; i++) {
        struct dfile *d = atomic_load(&f->tab[i]);
        if (d) {
            /* drop the preallocated tail, and a direct write's padding */
            if (d == f->active && (d->end < f->room || d->win))
                if (ftruncate(d->fd, (off_t)d->end) != 0) {
                    /* harmless: recovery ignores zeros after the last record */
                }
            file_free(d);
            f->tab[i] = NULL;
        }
    }
    pthread_spin_destroy(&f->alloc);
    pthread_mutex_destroy(&f->grow);
    pthread_mutex_destroy(&f->sync_lock);
}

/* Preallocate [from, to) of the active file; 0 or -errno (-ENOSPC, -EFBIG). */
static int prealloc(struct dfiles *f, struct dfile *d, uint64_t from, uint64_t to)
{
    if (f->no_falloc)
        return 0;
    if (f->direct) /* direct writes cover whole blocks */
        to = (to + 4095) & ~(uint64_t)4095;
    if (fallocate(d->fd, 0, (off_t)from, (off_t)(to - from)) == 0)
        return 0;
    if (errno == EOPNOTSUPP) {
        f->no_falloc = true;
        return 0;
    }
    return -errno;
}

int files_room(struct dfiles *f, uint32_t size)
{
    pthread_mutex_lock(&f->grow);
    int r = 0;
    pthread_spin_lock(&f->alloc);
    struct dfile *a = f->active;
    uint64_t end = a ? atomic_load(&a->end) : 0, room = f->room;
    bool win_full = a && a->win && !win_room(a, end + size);
    pthread_spin_unlock(&f->alloc);
    if (a && end + size <= room) { /* someone else made room meanwhile */
        pthread_mutex_unlock(&f->grow);
        if (win_full) /* or the window waits for writes to land */
            disk_pause();
        return 0;
    }
    if (a == NULL || end + size > f->file_bytes) {
        /* rotate: a new active file; the old one is sealed at its end */
        uint32_t id = a ? a->id + 1 : 1;
        while (id < IX_FILES && atomic_load(&f->tab[id]) != NULL)
            id++;
        struct dfile *d;
        if ((r = files_add(f, id, true, &d)) != 0)
            goto out;
        uint64_t want = size > f->prealloc ? size : f->prealloc;
        r = prealloc(f, d, 0, want);
        if (r == -ENOSPC || r == -EFBIG || r == -EDQUOT) /* nearly full: just this record */
            r = prealloc(f, d, 0, want = size);
        if (r == 0 && f->direct)
            r = win_open(d, f->win_bytes);
        if (r != 0) {
            char path[4200];
            file_path(f, id, path, sizeof path);
            atomic_store(&f->tab[id], NULL);
            file_free(d);
            unlink(path);
            goto out;
        }
        atomic_store(&d->end, 0);
        pthread_spin_lock(&f->alloc);
        f->active = d;
        f->room = want;
        pthread_spin_unlock(&f->alloc);
        if (a) {
            end = atomic_load(&a->end); /* final: claims now go to d */
            win_seal(a);                /* before the cut: a flush landing after it cuts again */
            if (ftruncate(a->fd, (off_t)end) != 0) {
                /* recovery ignores zeros after the last record */
            }
            atomic_store(&a->dirty, true);
            atomic_store(&a->sealed, true);
        }
        goto out;
    }
    uint64_t to = room + f->prealloc;
    to = to < end + size ? end + size : to;
    to = to > f->file_bytes ? f->file_bytes : to;
    r = prealloc(f, a, room, to);
    if ((r == -ENOSPC || r == -EFBIG || r == -EDQUOT) && to > end + size)
        r = prealloc(f, a, room, to = end + size); /* nearly full: just this record */
    if (r == 0) {
        pthread_spin_lock(&f->alloc);
        f->room = to;
        pthread_spin_unlock(&f->alloc);
    }
out:
    pthread_mutex_unlock(&f->grow);
    return r;
}

struct dfile *files_claim(struct dfiles *f, uint32_t size, uint64_t *off, uint64_t *seq)
{
    struct dfile *a = f->active;
    if (a == NULL)
        return NULL;
    uint64_t end = atomic_load_explicit(&a->end, memory_order_relaxed);
    if (end + size > f->room || (a->win && !win_room(a, end + size)))
        return NULL;
    atomic_store_explicit(&a->end, end + size, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_acq_rel);
    *off = end;
    *seq = f->seq++;
    return a;
}

int files_read(struct dfiles *f, struct bufpool *bp, struct dfile *d, uint64_t off, uint32_t len,
               char **buf, uint32_t *cls, const char **rec)
{
    uint64_t start = off, stop = off + len;
    if (f->direct) {
        start &= ~(uint64_t)4095;
        stop = (stop + 4095) & ~(uint64_t)4095;
    }
    char *b = buf_get(bp, (uint32_t)(stop - start), cls);
    if (b == NULL)
        return -ENOMEM;
    /* Read until the record is in: a direct read's last block may be short
     * (the file ends just past the record), and a second read from there
     * would be unaligned, which O_DIRECT refuses once the file grew. */
    uint64_t got = 0, need = off + len - start;
    while (got < need) {
        ssize_t n = do_pread(d->dfd, b + got, stop - start - got, start + got);
        if (n < 0) {
            buf_put(bp, b, *cls);
            return (int)n;
        }
        if (n == 0)
            break; /* end of file before the record's end */
        got += (uint64_t)n;
    }
    if (got < need) {
        buf_put(bp, b, *cls);
        return -EIO;
    }
    *buf = b;
    *rec = b + (off - start);
    return 0;
}

void files_skip(struct dfile *d, uint32_t len, uint64_t off)
{
    if (d->win)
        win_write(d, NULL, len, off);
}

int files_write(struct dfile *d, const void *p, uint32_t len, uint64_t off)
{
    if (d->win)
        return win_write(d, p, len, off);
    uint32_t done = 0;
    while (done < len) {
        ssize_t n = disk_pwrite(d->fd, (const char *)p + done, len - done, off + done);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -ENOSPC;
        done += (uint32_t)n;
    }
    atomic_store_explicit(&d->dirty, true, memory_order_release);
    return 0;
}

int files_sync_now(struct dfiles *f)
{
    int first = 0;
    for (uint32_t i = 1; i < IX_FILES; i++) {
        struct dfile *d = files_pin(f, i);
        if (d == NULL)
            continue;
        if (atomic_exchange(&d->dirty, false)) {
            int r = do_sync(d->fd);
            if (r != 0) {
                atomic_store(&d->dirty, true);
                if (first == 0)
                    first = r;
            }
        }
        files_unpin(d);
    }
    return first;
}

/* A fiber parked until the running group sync ends. The node is malloc'ed:
 * the wake-up may still be on its way when a cancelled waiter leaves. The
 * syncer touches only msg and home (after taking the node off the list);
 * delivered and gone belong to the waiter's thread, where the wake-up runs.
 * The reference to the waiter's reactor goes with the node: the waiter
 * drops it when it takes its own node off the list, the syncer when it has
 * posted (kl_reactor_post still uses it after the message is in). */
struct sync_waiter {
    struct kl_xmsg msg;
    struct sync_waiter *next;    /* dfiles.sync_waiters, under sync_lock */
    struct kl_reactor_ref *home; /* the waiter's reactor */
    kl_fiber_id fiber;
    bool delivered; /* the wake-up ran: the waiter frees the node */
    bool gone;      /* the waiter left first: the wake-up frees the node */
};

/* The syncer's wake-up, on the waiter's thread. */
static void waiter_wake(struct kl_xmsg *msg)
{
    struct sync_waiter *w = kl_container_of(msg, struct sync_waiter, msg);
    if (w->gone) {
        free(w);
        return;
    }
    w->delivered = true;
    if (kl_reactor_active())
        kl_fiber_resume(w->fiber, 0); /* a fiber cancelled meanwhile is no longer parked: fine */
}

/* Under sync_lock: take the node off the list; false when the syncer has it. */
static bool waiter_unlink(struct dfiles *f, struct sync_waiter *w)
{
    for (struct sync_waiter **at = &f->sync_waiters; *at; at = &(*at)->next)
        if (*at == w) {
            *at = w->next;
            return true;
        }
    return false;
}

/* Called with sync_lock held, a sync running; returns with it held again,
 * after that sync ended (or the fiber was cancelled, or it polled). */
static void sync_park(struct dfiles *f)
{
    struct sync_waiter *w = in_fiber() ? malloc(sizeof *w) : NULL;
    if (w == NULL) {
        pthread_mutex_unlock(&f->sync_lock);
        disk_pause();
        pthread_mutex_lock(&f->sync_lock);
        return;
    }
    *w = (struct sync_waiter){.msg = {.fn = waiter_wake},
                              .next = f->sync_waiters,
                              .home = kl_reactor_ref(),
                              .fiber = kl_fiber_self()};
    f->sync_waiters = w;
    pthread_mutex_unlock(&f->sync_lock);
    int rc = kl_fiber_suspend("disk group sync", KL_FIBER_FOREVER);
    pthread_mutex_lock(&f->sync_lock);
    if (waiter_unlink(f, w)) { /* never taken: no wake-up will come */
        kl_reactor_unref(w->home);
        free(w);
    } else if (w->delivered) {
        free(w);
    } else {
        w->gone = true; /* taken, wake-up on its way: it frees the node */
    }
    if (rc == -ECANCELED) { /* cannot park again: poll (disk_pause yields) */
        pthread_mutex_unlock(&f->sync_lock);
        disk_pause();
        pthread_mutex_lock(&f->sync_lock);
    }
}

/* Wake every parked waiter (taken off the list under sync_lock). */
static void sync_wake(struct sync_waiter *list)
{
    while (list) {
        struct sync_waiter *w = list;
        struct kl_reactor_ref *home = w->home;
        list = w->next; /* read before the post: the node may be freed after it */
        if (kl_reactor_post(home, &w->msg) != 0) {
            /* its reactor is being destroyed: its fibers are cancelled and
             * leave on their own; the node stays (freed by nobody) rather
             * than risk a waiter touching it after a free */
        }
        kl_reactor_unref(home);
    }
}

int files_sync_wait(struct dfiles *f)
{
    pthread_mutex_lock(&f->sync_lock);
    uint64_t target = f->sync_started + 1; /* a sync that starts after now */
    int r = 0;
    for (;;) {
        if (f->sync_done >= target) {
            r = f->sync_err;
            break;
        }
        if (!f->sync_busy) {
            f->sync_busy = true;
            uint64_t gen = ++f->sync_started;
            pthread_mutex_unlock(&f->sync_lock);
            atomic_fetch_add(&f->group_syncs, 1);
            int e = files_sync_now(f);
            pthread_mutex_lock(&f->sync_lock);
            f->sync_busy = false;
            f->sync_done = gen;
            f->sync_err = e;
            struct sync_waiter *parked = f->sync_waiters;
            f->sync_waiters = NULL;
            pthread_mutex_unlock(&f->sync_lock);
            sync_wake(parked);
            pthread_mutex_lock(&f->sync_lock);
            continue;
        }
        sync_park(f);
    }
    pthread_mutex_unlock(&f->sync_lock);
    return r;
}
