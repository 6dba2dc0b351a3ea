/* The io_uring backend of the reactor.
 *
 * A fiber's request becomes one SQE whose user_data is the fiber's raw id;
 * the fiber parks (with its timeout in the reactor's wheel) and the CQE
 * wakes it. SQEs are only queued here: the loop iteration hands all of them
 * to the kernel with a single io_uring_submit_and_wait_timeout() (or
 * io_uring_submit() when it must not block), so under load one system call
 * carries many requests. Only a full submission queue forces an early
 * submit; a loop iteration that has fibers ready leaves its SQEs queued for
 * one round, since the ready fibers usually add theirs, and a watch's send,
 * which completes as it is submitted, is not counted as a reason to wake
 * (see uring_poll).
 *
 * A request whose fiber times out or is cancelled is cancelled in the kernel
 * with IORING_OP_ASYNC_CANCEL (user_data 0: its CQE is only counted), and the
 * fiber waits for the request's own CQE before returning, so the kernel never
 * touches the buffer after the call. When not even a flush frees an SQE for
 * the cancel, the fiber tries again every millisecond: its wait never rests
 * on a cancel that was not queued. kl_close() of an fd that requests are on
 * (a count per fd) cancels them all (IORING_ASYNC_CANCEL_FD) and submits
 * that before the fd is closed, so no request keeps the file open and each
 * waiter gets -EBADF; closing an idle fd costs no system call. Lengths are
 * capped at the kernel's own limit for one transfer (a short count), as an
 * SQE holds 32 bits. A socket marked O_NONBLOCK makes the
 * kernel answer -EAGAIN instead of waiting; the fiber then waits for
 * readiness with IORING_OP_POLL_ADD and tries again.
 *
 * A batch wait (kl_reactor_options.batch_wait_us, off by default) asks the
 * kernel for a minimum wait: after a poll that found several completions,
 * the next blocking wait expects as many again and, once the minimum wait
 * has passed, returns with whatever came (submit_and_wait_batch). A poll
 * that found one completion or none turns it off until the next busy one.
 *
 * Receiving watches (watch.c) draw on one ring of provided buffers per
 * reactor (buffer group 0), set up at the first such watch's arm: the
 * kernel takes a buffer only when bytes come, so a buffer is held from a
 * receive's CQE until its owner copies the bytes out. A kernel without
 * buffer rings (before 5.19) turns those watches into readiness watches.
 *
 * A read of the reactor's wake-up eventfd (xthread.c) stays armed, with
 * user_data WAKE_UDATA (never a fiber id: incarnations start at 1). It is not
 * counted in flight, so it neither keeps the loop alive nor blocks destroy;
 * its CQE runs the posted messages and the pool's finished jobs, and it is
 * re-armed at once (the SQE rides with the next submission), or at the next
 * loop iteration when no SQE is free. Destroy cancels it and waits for its
 * CQE, since the kernel writes into our buffer. Unexpected kernel results
 * are reported (KL_WARN), never asserted.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "keel/watch.h"

#include "keel/assert.h"
#include "keel/log.h"

#include "reactor_internal.h"

/* The user_data of the wake-up read: slot 1, incarnation 0. */
#define WAKE_UDATA      1u
/* A watch's poll: fd + WATCH_UDATA_MIN, high half zero (watch.c); its
 * send: the same with WATCH_SEND_TAG (fds stay under 2^30). */
#define WATCH_UDATA_MIN 2u
#define WATCH_SEND_TAG  (1u << 31)

/* The most one read or write transfers (Linux's MAX_RW_COUNT with 4 KiB pages). */
#define MAX_RW 0x7ffff000u

/* Non-blocking polls that may pass over pending completions (see uring_poll). */
#define REAP_PATIENCE     8
/* Non-blocking polls that may pass over queued SQEs (see uring_poll). */
#define SUBMIT_PATIENCE   1
/* The longest a blocking wait that counts queued sends as expected may
 * last (see uring_poll). */
#define SENDS_WAIT_CAP_NS 1000000u
/* Completions (of requests and watches; not sends) the last poll that found
 * any must have brought for the next blocking wait to be a batch wait
 * (kl_reactor_options.batch_wait_us): a lone request is not kept waiting
 * for company that is not coming. A batch wait expects as many as that
 * poll brought, at most BATCH_WAIT_MAX_NR, before its time is up. */
#define BATCH_WAIT_LOAD   2u
#define BATCH_WAIT_MAX_NR 64u

#ifndef IORING_FEAT_MIN_TIMEOUT /* Linux 6.12; liburing 2.3 predates it */
#define IORING_FEAT_MIN_TIMEOUT (1u << 15)
#endif

/* How often a fiber retries queueing the cancel of its request. */
#define CANCEL_RETRY_NS 1000000u

struct uring_state {
    struct io_uring ring;
    uint32_t *fd_busy; /* per fd: requests of run_one in the kernel, for kl_close */
    size_t nfds;
    bool busy_lost; /* the table could not grow: kl_close always cancels */
    bool wake_armed;
    bool wake_broken;       /* its read failed unexpectedly: not armed again */
    bool deferred;          /* DEFER_TASKRUN: completions wait for our io_uring_enter */
    uint32_t unreaped;      /* non-blocking polls since completions were last reaped */
    uint32_t unsubmitted;   /* non-blocking polls since queued SQEs were last submitted */
    uint32_t sends_queued;  /* watch sends queued whose CQE is not reaped yet */
    uint32_t batch_wait_us; /* the reactor's, or 0 where the kernel has no minimum wait */
    uint32_t last_events;   /* completions the last poll that found any brought, capped */
    uint64_t wake_count;    /* the wake-up read's buffer */
    /* the receive buffer ring (receiving watches), set up on first use */
    bool recv_tried, recv_ok;
    struct io_uring_buf_ring *recv_ring;
    char *recv_bufs; /* KL_WATCH_RECV_BUFS buffers of KL_WATCH_RECV_BUF bytes */
};

#define RECV_GROUP     0
#define RECV_RING_SIZE (KL_WATCH_RECV_BUFS * sizeof(struct io_uring_buf))

static void recv_ring_add(struct uring_state *u, uint16_t bid)
{
    io_uring_buf_ring_add(u->recv_ring, u->recv_bufs + (size_t)bid * KL_WATCH_RECV_BUF,
                          KL_WATCH_RECV_BUF, bid, io_uring_buf_ring_mask(KL_WATCH_RECV_BUFS), 0);
    io_uring_buf_ring_advance(u->recv_ring, 1);
}

/* Map and register the receive buffer ring; false (for good) if the
 * kernel or memory refuses. */
static bool recv_ring_setup(struct uring_state *u)
{
    if (u->recv_tried)
        return u->recv_ok;
    u->recv_tried = true;
    void *ring =
        mmap(NULL, RECV_RING_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *bufs = mmap(NULL, (size_t)KL_WATCH_RECV_BUFS * KL_WATCH_RECV_BUF, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring != MAP_FAILED && bufs != MAP_FAILED) {
        struct io_uring_buf_reg reg = {
            .ring_addr = (uintptr_t)ring, .ring_entries = KL_WATCH_RECV_BUFS, .bgid = RECV_GROUP};
        int rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
        if (rc == 0) {
            u->recv_ring = ring;
            u->recv_bufs = bufs;
            io_uring_buf_ring_init(u->recv_ring);
            for (uint16_t bid = 0; bid < KL_WATCH_RECV_BUFS; bid++)
                recv_ring_add(u, bid);
            u->recv_ok = true;
            return true;
        }
        if (rc != -EINVAL && rc != -ENOENT)
            KL_WARN("reactor: io_uring buffer ring: %d; receiving watches poll instead", rc);
    }
    if (ring != MAP_FAILED)
        munmap(ring, RECV_RING_SIZE);
    if (bufs != MAP_FAILED)
        munmap(bufs, (size_t)KL_WATCH_RECV_BUFS * KL_WATCH_RECV_BUF);
    return false;
}

static char *uring_recv_buf(struct kl_reactor *r, uint16_t bid)
{
    struct uring_state *u = r->backend_state;
    KL_ASSERT(u->recv_ok && bid < KL_WATCH_RECV_BUFS, "receive buffer %u of no ring", bid);
    return u->recv_bufs + (size_t)bid * KL_WATCH_RECV_BUF;
}

static void uring_recv_buf_put(struct kl_reactor *r, uint16_t bid)
{
    struct uring_state *u = r->backend_state;
    KL_ASSERT(u->recv_ok && bid < KL_WATCH_RECV_BUFS, "receive buffer %u of no ring", bid);
    recv_ring_add(u, bid);
}

static struct io_uring_sqe *get_sqe(struct kl_reactor *r, struct uring_state *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) { /* the queue is full: hand it to the kernel now */
        r->stats.syscalls++;
        int rc = io_uring_submit(&u->ring);
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) /* not transient */
            KL_WARN("reactor: io_uring_submit: %d", rc);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

static void prep(struct io_uring_sqe *sqe, const struct kl_io_req *q)
{
    unsigned len = q->len > MAX_RW ? MAX_RW : (unsigned)q->len;
    switch (q->kind) {
    case KL_IO_ACCEPT: io_uring_prep_accept(sqe, q->fd, q->addr, q->addrlen, q->flags); break;
    case KL_IO_CONNECT: io_uring_prep_connect(sqe, q->fd, q->addr, q->addrlen_in); break;
    case KL_IO_READ: io_uring_prep_read(sqe, q->fd, q->buf, len, (uint64_t)-1); break;
    case KL_IO_WRITE: io_uring_prep_write(sqe, q->fd, q->buf, len, (uint64_t)-1); break;
    case KL_IO_READV:
        io_uring_prep_readv(sqe, q->fd, q->iov, (unsigned)q->iovcnt, (uint64_t)-1);
        break;
    case KL_IO_WRITEV:
        io_uring_prep_writev(sqe, q->fd, q->iov, (unsigned)q->iovcnt, (uint64_t)-1);
        break;
    case KL_IO_RECV: io_uring_prep_recv(sqe, q->fd, q->buf, len, q->flags); break;
    case KL_IO_SEND: io_uring_prep_send(sqe, q->fd, q->buf, len, q->flags); break;
    case KL_IO_PREAD: io_uring_prep_read(sqe, q->fd, q->buf, len, (uint64_t)q->offset); break;
    case KL_IO_PWRITE: io_uring_prep_write(sqe, q->fd, q->buf, len, (uint64_t)q->offset); break;
    case KL_IO_FSYNC: io_uring_prep_fsync(sqe, q->fd, 0); break;
    }
}

/* Count a request on `fd` in (+1) or out (-1) of the kernel. The table
 * grows (rarely, by doubling) to the largest fd seen. */
static void fd_busy_add(struct uring_state *u, int fd, int d)
{
    if (fd < 0)
        return;
    if ((size_t)fd >= u->nfds) {
        size_t n = u->nfds ? u->nfds : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        uint32_t *t = d > 0 ? realloc(u->fd_busy, n * sizeof *t) : NULL;
        if (t == NULL) {
            u->busy_lost = d > 0;
            return;
        }
        memset(t + u->nfds, 0, (n - u->nfds) * sizeof *t);
        u->fd_busy = t;
        u->nfds = n;
    }
    u->fd_busy[fd] += (uint32_t)d;
}

/* Queue the cancel of request `id`, whose fiber no longer waits for it;
 * without a free SQE, try again each CANCEL_RETRY_NS until one is free or the
 * request is over. The fiber's cancelled flag is kept. */
static void cancel_request(struct kl_reactor *r, struct uring_state *u, uint64_t id,
                           const struct kl_io_wait *w)
{
    struct kl_fiber *cur = r->sched->current;
    bool cancelled = cur->cancelled;
    while (!w->done) {
        struct io_uring_sqe *c = get_sqe(r, u);
        if (c != NULL) {
            io_uring_prep_cancel64(c, id, 0);
            io_uring_sqe_set_data64(c, 0);
            r->inflight++;
            r->stats.submissions++;
            break;
        }
        cur->cancelled = false; /* the sticky flag would refuse to park */
        kl_fiber__suspend(r->sched, "io_uring-cancel", NULL, CANCEL_RETRY_NS);
        cancelled |= cur->cancelled;
    }
    cur->cancelled = cancelled;
}

/* Queue one SQE (the request, or a readiness poll when poll_mask is set) and
 * park until its CQE; the CQE's result, or the timeout/cancel reason when
 * the kernel cancelled the request. */
static int64_t run_one(struct kl_reactor *r, struct uring_state *u, const struct kl_io_req *q,
                       short poll_mask, uint64_t deadline)
{
    struct io_uring_sqe *sqe = get_sqe(r, u);
    if (sqe == NULL)
        return -EBUSY;
    uint64_t id = kl_fiber_id_raw(kl_fiber__id(r->sched->current));
    uint32_t slot = kl_reactor__slot(id);
    struct kl_io_wait w = {.id = id};
    if (poll_mask)
        io_uring_prep_poll_add(sqe, q->fd, (unsigned)poll_mask);
    else
        prep(sqe, q);
    io_uring_sqe_set_data64(sqe, id);
    KL_ASSERT(r->waits[slot] == NULL, "fiber slot %u has two requests in flight", slot);
    r->waits[slot] = &w;
    fd_busy_add(u, q->fd, 1);
    r->inflight++;
    r->stats.submissions++;

    int reason = 0;
    while (!w.done) {
        int rc = kl_reactor__park(r, "io_uring", deadline);
        if (rc == -ETIMEDOUT || rc == -ECANCELED) {
            reason = rc;
            break;
        }
    }
    if (!w.done) {
        cancel_request(r, u, id, &w);
        kl_reactor__wait_done(r, &w);
    }
    r->waits[slot] = NULL;
    fd_busy_add(u, q->fd, -1);
    if (reason != 0 && (w.res == -ECANCELED || w.res == -EINTR))
        return reason;
    if (reason == 0 && w.res == -ECANCELED)
        return -EBADF; /* cancelled by kl_close() of its fd (uring_forget) */
    return w.res;
}

/* Queue the wake-up read; false when no SQE is free (the next loop
 * iteration tries again). */
static bool arm_wake(struct kl_reactor *r, struct uring_state *u)
{
    KL_ASSERT(!u->wake_armed, "wake-up read armed twice");
    if (u->wake_broken)
        return false;
    struct io_uring_sqe *sqe = get_sqe(r, u);
    if (sqe == NULL)
        return false;
    io_uring_prep_read(sqe, r->wake_fd, &u->wake_count, sizeof u->wake_count, 0);
    io_uring_sqe_set_data64(sqe, WAKE_UDATA);
    u->wake_armed = true;
    return true;
}

/* The wake-up read's CQE has come: it is no longer armed. A result other
 * than a count or an interruption is the kernel's to report, not ours to
 * assert: it is logged and the read is not armed again (rather than spin
 * on an error); the loop still drains posts on its other turns. */
static void wake_completed(struct uring_state *u, int res)
{
    KL_ASSERT(u->wake_armed, "a wake-up CQE with no read armed");
    u->wake_armed = false;
    if (res != (int)sizeof u->wake_count && res != -EINTR && res != -ECANCELED && res != -EAGAIN) {
        KL_WARN("reactor: read of the wake-up eventfd: %d; cross-thread wake-ups are off", res);
        u->wake_broken = true;
    }
}

static bool waits_for_readiness(enum kl_io_kind kind)
{
    return kind != KL_IO_PREAD && kind != KL_IO_PWRITE && kind != KL_IO_FSYNC &&
           kind != KL_IO_CONNECT;
}

static short poll_mask_of(enum kl_io_kind kind)
{
    switch (kind) {
    case KL_IO_ACCEPT:
    case KL_IO_READ:
    case KL_IO_READV:
    case KL_IO_RECV: return POLLIN;
    default: return POLLOUT;
    }
}

static int64_t uring_io(struct kl_reactor *r, struct kl_io_req *q, uint64_t deadline)
{
    struct uring_state *u = r->backend_state;
    for (;;) {
        int64_t res = run_one(r, u, q, 0, deadline);
        if (res != -EAGAIN || q->nowait || !waits_for_readiness(q->kind))
            return res;
        res = run_one(r, u, q, poll_mask_of(q->kind), deadline);
        if (res < 0)
            return res;
    }
}

/* Whether the kernel holds completion work that only an enter runs. */
static bool completions_pending(const struct uring_state *u)
{
    return (IO_URING_READ_ONCE(*u->ring.sq.kflags) & IORING_SQ_TASKRUN) != 0;
}

/* io_uring_submit_and_wait_timeout() with a minimum wait: hand the queued
 * SQEs to the kernel and wait up to `ts` (NULL: no limit) for `wait_nr`
 * completions, except that once u->batch_wait_us has passed, any completion
 * that came meanwhile ends the wait (IORING_ENTER_EXT_ARG's min_wait_usec,
 * which liburing 2.3 cannot pass: its queue flush is repeated here, for a
 * ring without SQPOLL). The kernel's result, or -errno. */
static int submit_and_wait_batch(struct uring_state *u, unsigned wait_nr,
                                 struct __kernel_timespec *ts)
{
    struct io_uring_sq *sq = &u->ring.sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        IO_URING_WRITE_ONCE(*sq->ktail, tail);
    }
    unsigned to_submit = tail - IO_URING_READ_ONCE(*sq->khead);
    struct io_uring_getevents_arg arg = {
        .sigmask = 0, .sigmask_sz = _NSIG / 8, .pad = u->batch_wait_us, .ts = (uintptr_t)ts};
    long rc = syscall(__NR_io_uring_enter, u->ring.ring_fd, to_submit, wait_nr,
                      IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    return rc < 0 ? -errno : (int)rc;
}

static int uring_poll(struct kl_reactor *r, uint64_t timeout_ns)
{
    struct uring_state *u = r->backend_state;
    int rc = 0;
    if (KL_UNLIKELY(!u->wake_armed))
        arm_wake(r, u); /* no SQE was free when it completed last */
    if (timeout_ns == 0) {
        /* Completions alone do not call for a system call while fibers are
         * ready: those fibers will submit (and that call reaps) or park (and
         * the blocking wait reaps), so completions come in batches. Only a
         * loop that stays busy without submitting enters for them, after
         * REAP_PATIENCE polls, so no completion waits forever. Queued SQEs
         * wait SUBMIT_PATIENCE rounds too: the fibers made ready during the
         * last round usually queue more, or park, and then one call carries
         * the whole wave. */
        bool reap = u->deferred && completions_pending(u) && ++u->unreaped >= REAP_PATIENCE;
        bool submit = io_uring_sq_ready(&u->ring) > 0 && ++u->unsubmitted > SUBMIT_PATIENCE;
        if (submit || reap) {
            r->stats.syscalls++;
            rc = io_uring_submit_and_get_events(&u->ring);
            u->unreaped = 0;
        }
    } else {
        u->unreaped = 0;
        /* A watch's send (MSG_DONTWAIT) completes while it is submitted, so
         * its CQE is in the ring before the wait starts: waiting for one
         * CQE beyond them keeps a send's completion from waking the loop
         * for nothing but itself. Should one not complete at once after
         * all, the wait is capped, so the loop still comes round. */
        unsigned wait_nr = 1;
        if (u->sends_queued > 0) {
            wait_nr += u->sends_queued;
            if (timeout_ns > SENDS_WAIT_CAP_NS)
                timeout_ns = SENDS_WAIT_CAP_NS;
        }
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ns != UINT64_MAX) {
            ts.tv_sec = (long long)(timeout_ns / 1000000000u);
            ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
            tsp = &ts;
        }
        r->stats.syscalls++;
        if (u->batch_wait_us > 0 && u->last_events >= BATCH_WAIT_LOAD) {
            r->stats.batch_waits++;
            rc = submit_and_wait_batch(u, wait_nr - 1 + u->last_events, tsp);
        } else {
            struct io_uring_cqe *cqe;
            rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, wait_nr, tsp, NULL);
        }
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        KL_WARN("reactor: io_uring submit/wait: %d", rc);
    if (io_uring_sq_ready(&u->ring) == 0)
        u->unsubmitted = 0; /* not when the kernel refused them: the next poll submits */

    struct io_uring_cqe *cqe;
    unsigned head, seen = 0, events = 0;
    bool woken = false;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        seen++;
        uint64_t data = io_uring_cqe_get_data64(cqe);
        if (data == LIBURING_UDATA_TIMEOUT)
            continue; /* liburing's own wait timeout */
        if (data == WAKE_UDATA) {
            wake_completed(u, cqe->res);
            woken = true;
            continue;
        }
        KL_ASSERT(r->inflight > 0, "a CQE with nothing in flight");
        if (data >= WATCH_UDATA_MIN && (data >> 32) == 0 && (data & WATCH_SEND_TAG)) {
            r->inflight--; /* a watch's send (watch.c) */
            KL_ASSERT(u->sends_queued > 0, "a send's CQE with no send queued");
            u->sends_queued--;
            kl_watch__sent(r, (int)((data & ~(uint64_t)WATCH_SEND_TAG) - WATCH_UDATA_MIN),
                           cqe->res);
            continue;
        }
        if (data >= WATCH_UDATA_MIN && (data >> 32) == 0) { /* a watch's request (watch.c) */
            bool final = !(cqe->flags & IORING_CQE_F_MORE);
            int32_t bid = cqe->flags & IORING_CQE_F_BUFFER
                              ? (int32_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT)
                              : -1;
            r->inflight -= final;
            events++;
            kl_watch__event(r, (int)(data - WATCH_UDATA_MIN), cqe->res, bid, final);
            continue;
        }
        r->inflight--;
        if (data != 0) {
            events++;
            kl_reactor__complete(r, data, cqe->res);
        }
    }
    io_uring_cq_advance(&u->ring, seen);
    if (events > 0)
        u->last_events = events < BATCH_WAIT_MAX_NR ? events : BATCH_WAIT_MAX_NR;
    if (woken) {
        arm_wake(r, u);
        kl_xthread__woken(r);
    }
    return 0;
}

/* A watch (watch.c): arm one one-shot poll (an accept watch: one multishot
 * accept; a receiving watch: one receive selecting a ring buffer) with
 * user_data fd + 2; stop: remove (cancel) it if armed, else there is
 * nothing to wait for. */
static int uring_watch(struct kl_reactor *r, struct kl_watch *w, bool on)
{
    struct uring_state *u = r->backend_state;
    int fd = w->fd;
    if (!on && !w->armed)
        return 1;
    struct io_uring_sqe *sqe = get_sqe(r, u);
    if (sqe == NULL)
        return -EBUSY;
    uint64_t data = (uint64_t)fd + WATCH_UDATA_MIN;
    if (on && w->recv && !recv_ring_setup(u))
        w->recv = false; /* no buffer ring: a readiness watch */
    if (on && w->recv) {
        io_uring_prep_recv(sqe, fd, NULL, KL_WATCH_RECV_BUF, 0);
        /* armed once the owner's own receive came back short: the socket is
         * almost always empty, so the kernel skips the receive it would try
         * before arming its poll (bench-conn: 1-2% less CPU a line) */
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = RECV_GROUP;
        io_uring_sqe_set_data64(sqe, data);
    } else if (on && w->accept) {
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, data);
    } else if (on) {
        io_uring_prep_poll_add(sqe, fd, POLLIN | POLLRDHUP);
        io_uring_sqe_set_data64(sqe, data);
    } else {
        if (w->accept || w->recv)
            io_uring_prep_cancel64(sqe, data, 0);
        else
            io_uring_prep_poll_remove(sqe, data);
        io_uring_sqe_set_data64(sqe, 0);
    }
    r->inflight++;
    r->stats.submissions++;
    return 0;
}

static int uring_watch_send(struct kl_reactor *r, struct kl_watch *w, const struct msghdr *msg)
{
    struct uring_state *u = r->backend_state;
    struct io_uring_sqe *sqe = get_sqe(r, u);
    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_sendmsg(sqe, w->fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ((uint64_t)w->fd + WATCH_UDATA_MIN) | WATCH_SEND_TAG);
    u->sends_queued++;
    r->inflight++;
    r->stats.submissions++;
    return 0;
}

/* Cancel every request on `fd` before it is closed: an in-flight request
 * holds the file, so the descriptor would stay open (the peer would never
 * see EOF) and its fiber would wait on. The cancel must reach the kernel
 * while the fd still names the file, hence the submission here. */
static void uring_forget(struct kl_reactor *r, int fd)
{
    struct uring_state *u = r->backend_state;
    if (!u->busy_lost && ((size_t)fd >= u->nfds || u->fd_busy[fd] == 0))
        return; /* no request of ours holds it */
    struct io_uring_sqe *sqe = get_sqe(r, u);
    if (sqe == NULL) {
        KL_WARN("reactor: no SQE to cancel the requests on fd %d before its close", fd);
        return;
    }
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, 0);
    r->inflight++;
    r->stats.submissions++;
    r->stats.syscalls++;
    int rc = io_uring_submit(&u->ring);
    if (rc < 0)
        KL_WARN("reactor: io_uring_submit: %d", rc);
}

static void uring_destroy(struct kl_reactor *r)
{
    struct uring_state *u = r->backend_state;
    struct io_uring_sqe *sqe = u->wake_armed ? get_sqe(r, u) : NULL;
    if (sqe != NULL) { /* cancel the wake-up read and wait for its CQE */
        io_uring_prep_cancel64(sqe, WAKE_UDATA, 0);
        io_uring_sqe_set_data64(sqe, 0);
        io_uring_submit(&u->ring);
        while (u->wake_armed) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&u->ring, &cqe);
            if (rc == -EINTR)
                continue;
            if (rc != 0) { /* the ring's exit below still stops the read */
                KL_WARN("reactor: waiting for the wake-up read's cancel: %d", rc);
                break;
            }
            if (io_uring_cqe_get_data64(cqe) == WAKE_UDATA)
                wake_completed(u, cqe->res);
            io_uring_cqe_seen(&u->ring, cqe);
        }
    } else if (u->wake_armed) {
        KL_WARN("reactor: no SQE to cancel the wake-up read; the ring's exit stops it");
    }
    io_uring_queue_exit(&u->ring);
    if (u->recv_ok) {
        munmap(u->recv_ring, RECV_RING_SIZE);
        munmap(u->recv_bufs, (size_t)KL_WATCH_RECV_BUFS * KL_WATCH_RECV_BUF);
    }
    free(u->fd_busy);
    free(u);
    r->backend_state = NULL;
}

static const struct kl_poller_ops uring_ops = {
    .name = "io_uring",
    .poll = uring_poll,
    .io = uring_io,
    .watch = uring_watch,
    .recv_buf = uring_recv_buf,
    .recv_buf_put = uring_recv_buf_put,
    .watch_send = uring_watch_send,
    .forget = uring_forget,
    .destroy = uring_destroy,
};

int kl_poller_uring_init(struct kl_reactor *r)
{
    struct uring_state *u = calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    unsigned deferred =
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    int rc = io_uring_queue_init(r->ring_entries, &u->ring, deferred);
    u->deferred = rc == 0;
    if (rc == -EINVAL) /* before Linux 6.1 */
        rc = io_uring_queue_init(r->ring_entries, &u->ring, 0);
    if (rc < 0) {
        free(u);
        return rc;
    }
    r->backend_state = u;
    r->ops = &uring_ops;
    r->backend = KL_REACTOR_URING;
    if (r->batch_wait_us > 0 && !(u->ring.features & IORING_FEAT_MIN_TIMEOUT))
        KL_WARN("reactor: this kernel has no minimum wait (Linux 6.12): batch wait off");
    else
        u->batch_wait_us = r->batch_wait_us;
    arm_wake(r, u);
    return 0;
}
