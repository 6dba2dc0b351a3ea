/* Readiness watches and a receive that never waits (keel/watch.h).
 *
 * The thread's watches sit in a table indexed by fd, so both backends find
 * the watch of an event without a pointer in the kernel: epoll looks the fd
 * up for each event, io_uring's poll carries fd + 2 as user_data (high half
 * zero: never a fiber id, and clear of the wake-up read's 1 and the
 * counted-only 0). The table grows by doubling when a larger fd comes
 * (rare: it starts at RLIMIT_NOFILE) and is freed when the last watch goes.
 *
 * io_uring: one-shot polls, re-armed by the owner (kl_watch_arm) when it
 * wants the next event. Multishot polls were tried first: when many sockets
 * become readable at once the completion queue fills, the kernel ends every
 * multishot poll that cannot post, and re-arming a poll on a socket that
 * stays readable ends it again at once: a storm of re-arms. A one-shot
 * poll's completion always gets through (it overflows into the kernel's
 * list), and costs one SQE per idle period, which rides with the loop's
 * submission. Stopping is asynchronous in the kernel: kl_watch_stop() asks
 * for the armed poll's removal and parks, through the reactor's per-slot
 * wait table, until the poll's completion arrives.
 *
 * A receiving watch arms, on io_uring, one one-shot IORING_OP_RECV with
 * IOSQE_BUFFER_SELECT instead of the poll: it completes as the poll would
 * (a one-shot: no re-arm storms), but with the first bytes in a buffer of
 * the reactor's ring, which the watch holds for its owner. The kernel picks
 * the buffer only when bytes come. A receive that found the ring empty
 * (-ENOBUFS), the end of input (0) or an error becomes a plain poll mask for
 * the owner, whose own receive then finds out; so does every event of a
 * reactor whose kernel refused the ring (the backend clears w->recv and arms
 * polls). Held bytes go back to the ring when taken, or at the stop.
 *
 * A watch's send (io_uring only) is one IORING_OP_SENDMSG with MSG_DONTWAIT:
 * it never waits in the kernel, so it completes while it is submitted, and
 * the owner need not park a fiber for it. Its completion is reaped with the
 * loop's next event (it does not wake the loop by itself: poller_uring.c),
 * always before an event of the same socket, which the kernel can only post
 * after it. Its user_data is the watch's with WATCH_SEND_TAG set. A stop
 * waits for it.
 *
 * An accept watch (io_uring only) is one multishot IORING_OP_ACCEPT: every
 * CQE with IORING_CQE_F_MORE carries a new socket; the last one (an error,
 * or the kernel ending it) disarms the watch, and the owner re-arms when it
 * wants more (after a back-off on EMFILE, say). Its stop is an async cancel.
 */
#define _GNU_SOURCE /* MSG_DONTWAIT is POSIX; POLLRDHUP is not */
#include "keel/watch.h"

#include <errno.h>
#include <unistd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "keel/assert.h"
#include "keel/clock.h"

#include "reactor_internal.h"

struct watch_table {
    struct kl_watch **by_fd;
    size_t cap;
    size_t count;
};

static __thread struct watch_table table;

static struct kl_watch *lookup(int fd)
{
    return fd >= 0 && (size_t)fd < table.cap ? table.by_fd[fd] : NULL;
}

static int table_add(struct kl_watch *w, int fd)
{
    if ((size_t)fd >= table.cap) {
        size_t n = table.cap ? table.cap : 1024;
        struct rlimit rl;
        if (table.cap == 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur > n && rl.rlim_cur < (1u << 20))
            n = (size_t)rl.rlim_cur;
        while (n <= (size_t)fd)
            n *= 2;
        struct kl_watch **t = realloc(table.by_fd, n * sizeof *t);
        if (t == NULL)
            return -ENOMEM;
        memset(t + table.cap, 0, (n - table.cap) * sizeof *t);
        table.by_fd = t;
        table.cap = n;
    }
    if (table.by_fd[fd] != NULL)
        return -EBUSY;
    table.by_fd[fd] = w;
    table.count++;
    return 0;
}

static void table_remove(struct kl_watch *w)
{
    KL_ASSERT(lookup(w->fd) == w, "watch of fd %d not in the table", w->fd);
    table.by_fd[w->fd] = NULL;
    if (--table.count == 0) {
        free(table.by_fd);
        table = (struct watch_table){0};
    }
}

enum watch_kind { WATCH_READY, WATCH_ACCEPT, WATCH_RECV };

static int start(struct kl_watch *w, int fd, kl_watch_fn fn, enum watch_kind kind)
{
    struct kl_reactor *r = kl_reactor__get();
    if (fd < 0 || fd >= (1 << 30))
        return -EBADF;
    if (kind == WATCH_ACCEPT && r->backend != KL_REACTOR_URING)
        return -EOPNOTSUPP;
    *w = (struct kl_watch){.fn = fn,
                           .fd = fd,
                           .accept = kind == WATCH_ACCEPT,
                           .recv = kind == WATCH_RECV && r->ops->recv_buf != NULL};
    int rc = table_add(w, fd);
    if (rc < 0)
        return rc;
    rc = r->ops->watch(r, w, true);
    if (rc < 0) {
        table_remove(w);
        return rc;
    }
    w->armed = true;
    return 0;
}

int kl_watch_start(struct kl_watch *w, int fd, kl_watch_fn fn)
{
    return start(w, fd, fn, WATCH_READY);
}

int kl_watch_recv_start(struct kl_watch *w, int fd, kl_watch_fn fn)
{
    return start(w, fd, fn, WATCH_RECV);
}

int kl_watch_accept_start(struct kl_watch *w, int fd, kl_watch_fn fn)
{
    return start(w, fd, fn, WATCH_ACCEPT);
}

/* Give ring buffer `bid` back (-1: none). */
static void give_back(struct kl_reactor *r, int32_t bid)
{
    if (bid >= 0)
        r->ops->recv_buf_put(r, (uint16_t)bid);
}

/* Drop the bytes held, giving their buffer back. */
static void drop_held(struct kl_reactor *r, struct kl_watch *w)
{
    give_back(r, w->held_len > 0 ? w->bid : -1);
    w->held_len = w->held_off = 0;
}

size_t kl_watch_take(struct kl_watch *w, void *dst, size_t cap)
{
    if (w->held_len == 0)
        return 0;
    struct kl_reactor *r = kl_reactor__get();
    size_t n = cap < w->held_len ? cap : w->held_len;
    memcpy(dst, r->ops->recv_buf(r, w->bid) + w->held_off, n);
    if (n == w->held_len) {
        drop_held(r, w);
    } else {
        w->held_off = (uint16_t)(w->held_off + n);
        w->held_len = (uint16_t)(w->held_len - n);
    }
    return n;
}

/* Let the loop run for a millisecond, whatever cancels arrive (kept). */
static void pause_1ms(struct kl_reactor *r)
{
    struct kl_fiber *cur = r->sched->current;
    KL_ASSERT(cur != &r->sched->main, "kl_watch_stop() must wait outside a fiber");
    bool cancelled = cur->cancelled;
    cur->cancelled = false;
    kl_reactor__park(r, "watch-stop-retry", kl_now() + 1000000u);
    cur->cancelled |= cancelled;
}

int kl_watch_stop(struct kl_watch *w)
{
    struct kl_reactor *r = kl_reactor__get();
    if (w->stopping || lookup(w->fd) != w)
        return -EINVAL;
    w->stopping = true;
    int rc;
    while ((rc = r->ops->watch(r, w, false)) < 0) /* no SQE for the removal */
        pause_1ms(r);
    if (rc == 1)
        w->armed = false;
    /* io_uring: wait for the armed request's last completion and for a send
     * in flight (its completion still reaches the owner) */
    while (w->armed || w->sending) {
        struct kl_fiber *cur = r->sched->current;
        KL_ASSERT(cur != &r->sched->main, "kl_watch_stop() on io_uring outside a fiber");
        uint64_t id = kl_fiber_id_raw(kl_fiber__id(cur));
        uint32_t slot = kl_reactor__slot(id);
        struct kl_io_wait wait = {.id = id};
        KL_ASSERT(r->waits[slot] == NULL, "fiber slot %u has two requests in flight", slot);
        r->waits[slot] = &wait;
        w->stopper = kl_fiber_id_from(id);
        kl_reactor__wait_done(r, &wait);
        r->waits[slot] = NULL;
    }
    drop_held(r, w);
    table_remove(w);
    w->stopping = false;
    return 0;
}

int kl_watch_arm(struct kl_watch *w)
{
    struct kl_reactor *r = kl_reactor__get();
    if (w->armed || w->stopping || lookup(w->fd) != w)
        return 0;
    KL_ASSERT(w->held_len == 0, "receiving watch of fd %d armed with %u bytes held", w->fd,
              w->held_len);
    int rc = r->ops->watch(r, w, true);
    if (rc == 0)
        w->armed = true;
    return rc;
}

bool kl_watch_active(int fd) { return lookup(fd) != NULL; }

int kl_watch_send(struct kl_watch *w, const struct msghdr *msg, kl_watch_sent_fn sent)
{
    struct kl_reactor *r = kl_reactor__get();
    if (r->ops->watch_send == NULL)
        return -EOPNOTSUPP;
    if (w->sending || w->stopping || lookup(w->fd) != w)
        return -EBUSY;
    int rc = r->ops->watch_send(r, w, msg);
    if (rc == 0) {
        w->sent = sent;
        w->sending = true;
    }
    return rc;
}

void kl_watch__sent(struct kl_reactor *r, int fd, int32_t res)
{
    struct kl_watch *w = lookup(fd);
    KL_ASSERT(w != NULL && w->sending, "a send completion on fd %d with no send of a watch", fd);
    w->sending = false;
    w->sent(w, res); /* also while stopping: the owner learns its bytes are free */
    if (w->stopping && kl_fiber_id_raw(w->stopper) != 0)
        kl_reactor__complete(r, kl_fiber_id_raw(w->stopper), 0);
}

/* A receiving watch's completion: hold the bytes, or tell the owner to read. */
static void recv_event(struct kl_reactor *r, struct kl_watch *w, int32_t res, int32_t bid)
{
    KL_ASSERT(w->held_len == 0, "receive completed on fd %d with %u bytes still held", w->fd,
              w->held_len);
    if (res > 0 && bid >= 0) {
        KL_ASSERT(res <= KL_WATCH_RECV_BUF, "receive of %d bytes into a ring buffer", res);
        w->bid = (uint16_t)bid;
        w->held_off = 0;
        w->held_len = (uint16_t)res;
        w->held_full = res == KL_WATCH_RECV_BUF;
        w->fn(w, POLLIN);
        return;
    }
    give_back(r, bid);
    w->held_full = false;
    /* the end of input, no buffer in the ring, or an error: the owner's own
     * receive finds out which */
    w->fn(w, res == 0 ? POLLIN | POLLRDHUP : res == -ENOBUFS ? POLLIN : POLLIN | POLLERR);
}

void kl_watch__event(struct kl_reactor *r, int fd, int32_t res, int32_t bid, bool final)
{
    struct kl_watch *w = lookup(fd);
    if (w == NULL) {
        give_back(r, bid);
        return;
    }
    if (final) {
        w->armed = false;
        if (w->stopping && kl_fiber_id_raw(w->stopper) != 0)
            kl_reactor__complete(r, kl_fiber_id_raw(w->stopper), 0);
    }
    if (w->stopping) {
        /* accepted in the race with the stop: nobody takes it (also on the
         * last completion: a multishot accept that cannot post its CQE, the
         * completion queue being full, ends with a socket in that one) */
        if (w->accept && res >= 0)
            close(res);
        give_back(r, bid); /* received in the race with the stop */
        return;
    }
    if (w->recv)
        recv_event(r, w, res, bid);
    else
        w->fn(w, res);
}

ssize_t kl_recv_ready(int fd, void *buf, size_t len)
{
    struct kl_reactor *r = kl_reactor__get();
    KL_ASSERT(r->sched->current != &r->sched->main, "kl_recv_ready() outside a fiber");
    if (r->sched->current->cancelled)
        return -ECANCELED;
    struct kl_io_req req = {.kind = KL_IO_RECV,
                            .fd = fd,
                            .buf = buf,
                            .len = len,
                            .flags = MSG_DONTWAIT,
                            .nowait = true};
    return r->ops->io(r, &req, UINT64_MAX);
}
