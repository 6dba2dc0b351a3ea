/* storage/disk/window.c: direct (O_DIRECT) writes of unaligned records.
 *
 * With --direct a write must cover whole 4 KiB blocks from an aligned
 * buffer, but records are packed back to back, so neighbours share blocks,
 * and their writers run concurrently on several threads. The active file
 * (and a file just sealed, until its last claims are written) has a window:
 * an aligned ring of `cap` bytes that mirrors the file's unwritten tail, the
 * file bytes [base, base + cap) at ring offset (file offset % cap). A claim
 * must end within it (files_claim() refuses one that does not, and
 * files_room() then waits for the window to move on).
 *
 * A writer copies its record into the ring and counts its bytes in each
 * block's `copied`; `done` is how far every claimed byte is copied (a
 * block's count equal to the bytes claimed in it). Then the ring is written
 * to the file by flushes, one at a time: a flush writes the blocks from
 * `written` (rounded down) to `done` (rounded up), the last block zero
 * padded past the claims, with one pwrite through the O_DIRECT fd. A writer
 * whose record is not yet on file starts the next flush if none is running
 * and there is something to write, else it waits for the flush running (or
 * the next one) to end and looks again; it returns once a completed flush
 * covered its record. A fiber waits parked on the window's list, and the
 * flush's writer wakes the list when the flush ends: a fiber of its own
 * thread at once, one of another thread by a message to that thread's
 * reactor (kl_reactor_post: an eventfd write if that inbox was empty); a
 * parked fiber also looks again every WAIT_NS. A plain thread (start-up,
 * the background thread, tests) polls with disk_pause(). So:
 *
 * - Two writes of one block are never in flight at once, and each flush
 *   writes every block from the whole current ring content, so a later
 *   write of a shared block carries every record an earlier one did: an
 *   acknowledged record is never lost by a rewrite of its block, and a
 *   SIGKILL leaves each block either before or after its last write, both
 *   holding every acknowledged record. A flush never writes a block a writer
 *   is still copying into: `done` stops before the block of the first claim
 *   not yet copied, and a writer whose first block is in the flush running
 *   (the partial last block) waits for it before copying. Blocks wholly
 *   written leave the window (`base` moves) and their ring bytes are zeroed
 *   for reuse, so a flush pads the last block with zeros, which recovery
 *   reads as the end (a torn tail it cuts off, or a hole before a record).
 * - Reads are direct too and see only records whose flush completed; a
 *   rewrite of their block carries the same bytes for them.
 * - The cost per record: one memcpy into the ring, a few words under the
 *   window's spinlock, and one memset of its bytes when they leave the
 *   window; per flush one pwrite (a writer never issues more than one, and
 *   concurrent writers share it: the more in flight, the fewer pwrites per
 *   record), and per flush at most one eventfd write per other thread with
 *   fibers waiting. No allocation (a waiter lives on its fiber's stack).
 *   The price of packing: a writer whose first block is in the flush
 *   running waits for it, then for its own (about two device writes).
 * - A flush that fails fails every record it carried (their writers return
 *   the error); the window moves on past them. (A writer that looks late,
 *   after a second failure, is told of the span from the first failed byte
 *   to the last: it may get an error for a record that landed.)
 *
 * A sealed file's window is freed once all of its claims are written and no
 * writer is inside (by the last one out, or by the sealing); a flush that
 * lands past the file's final end after sealing cut it there cuts it again.
 */
#define _GNU_SOURCE
#include "disk_internal.h"

#include "keel/assert.h"
#include "keel/fiber.h"
#include "keel/reactor.h"
#include "keel/xthread.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLK     ((uint64_t)4096)
#define WAIT_NS ((uint64_t)2000000) /* a fiber looks again after this, woken or not */

/* A fiber waiting for the end of a flush, on its stack (wait_flush()). */
struct waiter {
    struct kl_xmsg msg; /* first: the wake-up posted to its thread */
    struct waiter *next;
    struct kl_reactor_ref *ref;
    pthread_t thread;
    kl_fiber_id id;
    bool taken;             /* under the lock: a waker took it off the list */
    _Atomic bool delivered; /* the waker is done with it (it may go) */
};

struct dwin {
    pthread_spinlock_t lock;
    char *ring;             /* cap bytes, page-aligned */
    uint64_t cap;           /* a multiple of BLK */
    uint32_t *copied;       /* per ring block: claimed bytes copied in */
    _Atomic uint64_t base;  /* file offset of the ring's oldest block */
    uint64_t done;          /* every claimed byte below is copied */
    uint64_t written;       /* every byte below is on file */
    uint64_t fl_end;        /* a flush in flight writes the blocks below this */
    bool busy;              /* a flush is in flight */
    bool sealed, gone;      /* the file is sealed; the window is being freed */
    uint32_t inside;        /* writers in win_write() */
    struct waiter *waiters; /* fibers waiting for the flush in flight to end */
    int err;                /* the last failed flush: its error and range */
    uint64_t err_lo, err_hi;
};

void (*win_flush_hook)(uint64_t start, uint64_t stop);

static inline uint64_t down(uint64_t x) { return x & ~(BLK - 1); }
static inline uint64_t up(uint64_t x) { return (x + BLK - 1) & ~(BLK - 1); }

uint64_t win_size(uint32_t rec_max)
{
    uint64_t need = 2 * up(rec_max) + 2 * BLK, min = (uint64_t)4 << 20;
    return need > min ? need : min;
}

int win_open(struct dfile *d, uint64_t cap)
{
    KL_ASSERT(d->win == NULL && cap % BLK == 0 && cap >= 2 * BLK);
    struct dwin *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->copied = calloc(cap / BLK, sizeof *w->copied);
    w->ring = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->copied == NULL || w->ring == MAP_FAILED) {
        if (w->ring != MAP_FAILED)
            munmap(w->ring, cap);
        free(w->copied);
        free(w);
        return -ENOMEM;
    }
    w->cap = cap;
    pthread_spin_init(&w->lock, PTHREAD_PROCESS_PRIVATE);
    uint64_t end = atomic_load(&d->end), base = down(end), slot = base % cap;
    if (end > base) { /* the records already in the last block: rewritten with it */
        ssize_t n = pread(d->dfd, w->ring + slot, BLK, (off_t)base);
        if (n < (ssize_t)(end - base)) {
            int r = n < 0 ? -errno : -EIO;
            munmap(w->ring, cap);
            free(w->copied);
            pthread_spin_destroy(&w->lock);
            free(w);
            return r;
        }
        memset(w->ring + slot + (end - base), 0, BLK - (end - base));
        w->copied[slot / BLK] = (uint32_t)(end - base);
    }
    atomic_init(&w->base, base);
    w->done = w->written = end;
    d->win = w;
    return 0;
}

void win_free(struct dfile *d)
{
    struct dwin *w = d->win;
    if (w == NULL)
        return;
    d->win = NULL;
    munmap(w->ring, w->cap);
    free(w->copied);
    pthread_spin_destroy(&w->lock);
    free(w);
}

bool win_room(const struct dfile *d, uint64_t end)
{
    const struct dwin *w = d->win;
    return end <= atomic_load_explicit(&w->base, memory_order_acquire) + w->cap;
}

/* Under the lock: is the sealed file's window done with (then marked gone)? */
static bool drained(struct dwin *w, struct dfile *d)
{
    if (!w->sealed || w->gone || w->busy || w->inside != 0 ||
        w->written < atomic_load_explicit(&d->end, memory_order_acquire))
        return false;
    w->gone = true;
    return true;
}

/* Under the lock: count [off, off + len) as copied in; advance done. */
static void account(struct dwin *w, struct dfile *d, uint64_t off, uint64_t len)
{
    for (uint64_t b = down(off); b < off + len; b += BLK) {
        uint64_t lo = b > off ? b : off, hi = b + BLK < off + len ? b + BLK : off + len;
        uint32_t *c = &w->copied[(b % w->cap) / BLK];
        *c += (uint32_t)(hi - lo);
        KL_ASSERT(*c <= BLK, "block at %llu over-counted", (unsigned long long)b);
    }
    /* the claimed end is read after the counts' lock was taken: every count
     * seen belongs to a claim below it */
    uint64_t end = atomic_load_explicit(&d->end, memory_order_acquire);
    while (w->done < end) {
        uint64_t b = down(w->done), hi = b + BLK < end ? b + BLK : end;
        if (w->copied[(b % w->cap) / BLK] != hi - b)
            break;
        w->done = hi;
    }
}

static int pwrite_all(int fd, const char *p, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = disk_pwrite(fd, p + done, len - done, off + done);
        if (n < 0)
            return (int)n;
        if (n == 0 || n % BLK != 0)
            return n == 0 ? -ENOSPC : -EIO; /* the rest would be unaligned */
        done += (uint64_t)n;
    }
    return 0;
}

static bool in_fiber(void)
{
    return kl_reactor_active() && !kl_fiber_id_eq(kl_fiber_self(), KL_FIBER_ID_NONE);
}

/* The message's fn, on the waiter's thread (the waiter is not running). */
static void wake_msg(struct kl_xmsg *m)
{
    struct waiter *ww = (struct waiter *)m;
    kl_fiber_id id = ww->id;
    atomic_store_explicit(&ww->delivered, true, memory_order_release);
    kl_fiber_resume(id, 0);
}

/* Wake the fibers of a list taken off a window: those of this thread at
 * once, the others by a message to their thread (its eventfd is written
 * only if its inbox was empty). A taken waiter's reference to its reactor
 * is the waker's to drop, after the post: the waiter may be gone by then
 * (and its reactor too, but for that reference). */
static void wake_all(struct waiter *list)
{
    bool fiber = in_fiber();
    pthread_t self = pthread_self();
    while (list) {
        struct waiter *ww = list;
        struct kl_reactor_ref *ref = ww->ref;
        list = ww->next; /* before it is delivered: then it may go */
        if (fiber && pthread_equal(ww->thread, self)) {
            kl_fiber_id id = ww->id;
            atomic_store_explicit(&ww->delivered, true, memory_order_release);
            kl_fiber_resume(id, 0); /* -EALREADY if it timed out meanwhile */
        } else if (kl_reactor_post(ref, &ww->msg) != 0) {
            atomic_store_explicit(&ww->delivered, true, memory_order_release);
        }
        kl_reactor_unref(ref);
    }
}

/* Park the calling fiber (the lock dropped) until woken or WAIT_NS pass; a
 * cancelled fiber (keeld's shutdown) cannot park: it lets the others run. */
static void park(void)
{
    if (kl_fiber_suspend("disk-flush", WAIT_NS) == -ECANCELED)
        kl_fiber_yield();
}

/* Under the lock: wait for the flush in flight to end (or, with none,
 * for the next one), the lock dropped meanwhile; a thread polls. */
static void wait_flush(struct dwin *w)
{
    if (!in_fiber()) {
        pthread_spin_unlock(&w->lock);
        disk_pause();
        pthread_spin_lock(&w->lock);
        return;
    }
    struct waiter ww = {.msg.fn = wake_msg,
                        .next = w->waiters,
                        .ref = kl_reactor_ref(),
                        .thread = pthread_self(),
                        .id = kl_fiber_self()};
    w->waiters = &ww;
    pthread_spin_unlock(&w->lock);
    park();
    pthread_spin_lock(&w->lock);
    if (!ww.taken) { /* timed out: off the list */
        struct waiter **p = &w->waiters;
        while (*p != &ww)
            p = &(*p)->next;
        *p = ww.next;
        kl_reactor_unref(ww.ref);
    }
    while (ww.taken && !atomic_load_explicit(&ww.delivered, memory_order_acquire)) {
        pthread_spin_unlock(&w->lock); /* its waker is on the way */
        park();
        pthread_spin_lock(&w->lock);
    }
}

/* Under the lock: where a flush started now would end (from down(written)),
 * or 0 if there is nothing it may write yet. Past done it pads the last
 * block with zeros, unless a claim reaches into that block (its writer may
 * be copying into it): then it stops at the block. */
static uint64_t flush_stop(struct dwin *w, struct dfile *d)
{
    if (w->busy || w->done <= w->written)
        return 0;
    uint64_t stop = up(w->done);
    if (stop != w->done && atomic_load_explicit(&d->end, memory_order_acquire) > w->done)
        stop = down(w->done);
    return stop > down(w->written) ? stop : 0;
}

/* Under the lock, with stop from flush_stop(): write the ring from written
 * to stop (one pwrite, up to the ring's end), then account it. The lock is
 * dropped meanwhile. */
static void flush(struct dwin *w, struct dfile *d, uint64_t stop)
{
    uint64_t from = w->written, start = down(from), slot = start % w->cap;
    KL_ASSERT(!w->busy && stop > start && stop % BLK == 0);
    if (slot + (stop - start) > w->cap)
        stop = start + (w->cap - slot); /* the rest from the ring's start, next time */
    uint64_t snap = w->done < stop ? w->done : stop;
    w->busy = true;
    w->fl_end = stop;
    pthread_spin_unlock(&w->lock);

    if (win_flush_hook)
        win_flush_hook(start, stop);
    int r = pwrite_all(d->dfd, w->ring + slot, stop - start, start);
    if (r == 0)
        atomic_store_explicit(&d->dirty, true, memory_order_release);
    /* blocks wholly written leave the window: nobody copies into them now
     * (every claim in them is copied) and no claim reaches their next turn
     * in the ring before base moves past them */
    uint64_t nbase = down(snap);
    memset(w->ring + slot, 0, nbase - start);
    for (uint64_t b = start; b < nbase; b += BLK)
        w->copied[(b % w->cap) / BLK] = 0;

    pthread_spin_lock(&w->lock);
    if (r != 0) {
        w->err_lo = w->err != 0 && w->err_lo < from ? w->err_lo : from;
        w->err_hi = snap;
        w->err = r;
    }
    w->written = snap;
    atomic_store_explicit(&w->base, nbase, memory_order_release);
    w->busy = false;
    w->fl_end = 0;
    struct waiter *list = w->waiters;
    w->waiters = NULL;
    for (struct waiter *ww = list; ww; ww = ww->next)
        ww->taken = true;
    uint64_t end = atomic_load(&d->end);
    bool cut = w->sealed && w->written >= end && stop > end;
    pthread_spin_unlock(&w->lock);
    wake_all(list);
    /* sealed (and cut) while this flush was in flight: cut its padding */
    if (cut && ftruncate(d->fd, (off_t)end) != 0) {
        /* recovery ignores zeros after the last record */
    }
    pthread_spin_lock(&w->lock);
}

int win_write(struct dfile *d, const void *p, uint32_t len, uint64_t off)
{
    struct dwin *w = d->win;
    KL_ASSERT(w != NULL && len > 0 && off + len <= atomic_load(&w->base) + w->cap);
    uint64_t stop = off + len;
    pthread_spin_lock(&w->lock);
    w->inside++;
    while (w->busy && off < w->fl_end) /* the flush running reads our first block */
        wait_flush(w);
    pthread_spin_unlock(&w->lock);
    if (p) { /* (NULL: a claim given up; its zeros go as a hole) */
        uint64_t slot = off % w->cap, first = len < w->cap - slot ? len : w->cap - slot;
        memcpy(w->ring + slot, p, first);
        memcpy(w->ring, (const char *)p + first, len - first);
    }
    pthread_spin_lock(&w->lock);
    account(w, d, off, len);
    int r = 0;
    for (;;) {
        if (w->written >= stop) {
            if (w->err != 0 && off < w->err_hi && stop > w->err_lo)
                r = w->err;
            break;
        }
        uint64_t fstop = flush_stop(w, d);
        if (fstop != 0)
            flush(w, d, fstop);
        else
            wait_flush(w);
    }
    w->inside--;
    bool drop = drained(w, d);
    pthread_spin_unlock(&w->lock);
    if (drop)
        win_free(d);
    return r;
}

void win_seal(struct dfile *d)
{
    struct dwin *w = d->win;
    if (w == NULL)
        return;
    pthread_spin_lock(&w->lock);
    w->sealed = true;
    bool drop = drained(w, d);
    pthread_spin_unlock(&w->lock);
    if (drop)
        win_free(d);
}
