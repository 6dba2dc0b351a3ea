/* The io_uring backend of the reactor.
 *
 * A fiber's request becomes one SQE whose user_data is the fiber's raw id;
 * the fiber parks (with its timeout in the reactor's wheel) and the CQE
 * wakes it. SQEs are only queued here: the loop iteration hands all of them
 * to the kernel with a single io_uring_submit_and_wait_timeout() (or
 * io_uring_submit() when it must not block), so under load one system call
 * carries many requests. Only a full submission queue forces an early
 * submit.
 *
 * A request whose fiber times out or is cancelled is cancelled in the kernel
 * with IORING_OP_ASYNC_CANCEL (user_data 0: its CQE is only counted), and the
 * fiber waits for the request's own CQE before returning, so the kernel never
 * touches the buffer after the call. A socket marked O_NONBLOCK makes the
 * kernel answer -EAGAIN instead of waiting; the fiber then waits for
 * readiness with IORING_OP_POLL_ADD and tries again.
 *
 * A read of the reactor's wake-up eventfd (xthread.c) stays armed, with
 * user_data WAKE_UDATA (never a fiber id: incarnations start at 1). It is not
 * counted in flight, so it neither keeps the loop alive nor blocks destroy;
 * its CQE runs the posted messages and the pool's finished jobs, and it is
 * re-armed at once (the SQE rides with the next submission). Destroy cancels
 * it and waits for its CQE, since the kernel writes into our buffer.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>

#include "keel/assert.h"
#include "keel/log.h"

#include "reactor_internal.h"

/* The user_data of the wake-up read: slot 1, incarnation 0. */
#define WAKE_UDATA      1u
/* A watch's poll: fd + WATCH_UDATA_MIN, high half zero (watch.c). */
#define WATCH_UDATA_MIN 2u

struct uring_state {
    struct io_uring ring;
    bool wake_armed;
    uint64_t wake_count; /* the wake-up read's buffer */
};

static struct io_uring_sqe *get_sqe(struct kl_reactor *r, struct uring_state *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) { /* the queue is full: hand it to the kernel now */
        r->stats.syscalls++;
        int rc = io_uring_submit(&u->ring);
        if (rc < 0)
            KL_WARN("reactor: io_uring_submit: %d", rc);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

static void prep(struct io_uring_sqe *sqe, const struct kl_io_req *q)
{
    switch (q->kind) {
    case KL_IO_ACCEPT: io_uring_prep_accept(sqe, q->fd, q->addr, q->addrlen, q->flags); break;
    case KL_IO_CONNECT: io_uring_prep_connect(sqe, q->fd, q->addr, q->addrlen_in); break;
    case KL_IO_READ: io_uring_prep_read(sqe, q->fd, q->buf, (unsigned)q->len, (uint64_t)-1); break;
    case KL_IO_WRITE:
        io_uring_prep_write(sqe, q->fd, q->buf, (unsigned)q->len, (uint64_t)-1);
        break;
    case KL_IO_READV:
        io_uring_prep_readv(sqe, q->fd, q->iov, (unsigned)q->iovcnt, (uint64_t)-1);
        break;
    case KL_IO_WRITEV:
        io_uring_prep_writev(sqe, q->fd, q->iov, (unsigned)q->iovcnt, (uint64_t)-1);
        break;
    case KL_IO_RECV: io_uring_prep_recv(sqe, q->fd, q->buf, q->len, q->flags); break;
    case KL_IO_SEND: io_uring_prep_send(sqe, q->fd, q->buf, q->len, q->flags); break;
    case KL_IO_PREAD:
        io_uring_prep_read(sqe, q->fd, q->buf, (unsigned)q->len, (uint64_t)q->offset);
        break;
    case KL_IO_PWRITE:
        io_uring_prep_write(sqe, q->fd, q->buf, (unsigned)q->len, (uint64_t)q->offset);
        break;
    case KL_IO_FSYNC: io_uring_prep_fsync(sqe, q->fd, 0); break;
    }
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
        struct io_uring_sqe *c = get_sqe(r, u);
        if (c != NULL) {
            io_uring_prep_cancel64(c, id, 0);
            io_uring_sqe_set_data64(c, 0);
            r->inflight++;
            r->stats.submissions++;
        }
        kl_reactor__wait_done(r, &w);
    }
    r->waits[slot] = NULL;
    if (reason != 0 && (w.res == -ECANCELED || w.res == -EINTR))
        return reason;
    return w.res;
}

static void arm_wake(struct kl_reactor *r, struct uring_state *u)
{
    KL_ASSERT(!u->wake_armed, "wake-up read armed twice");
    struct io_uring_sqe *sqe = get_sqe(r, u);
    KL_ASSERT(sqe != NULL, "no SQE for the wake-up read");
    io_uring_prep_read(sqe, r->wake_fd, &u->wake_count, sizeof u->wake_count, 0);
    io_uring_sqe_set_data64(sqe, WAKE_UDATA);
    u->wake_armed = true;
}

/* The wake-up read's CQE has come: it is no longer armed. */
static void wake_completed(struct uring_state *u, int res)
{
    KL_ASSERT(u->wake_armed, "a wake-up CQE with no read armed");
    u->wake_armed = false;
    KL_ASSERT(res == (int)sizeof u->wake_count || res == -EINTR || res == -ECANCELED ||
                  res == -EAGAIN,
              "read of the reactor's eventfd: %d", res);
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

static int uring_poll(struct kl_reactor *r, uint64_t timeout_ns)
{
    struct uring_state *u = r->backend_state;
    int rc = 0;
    if (timeout_ns == 0) {
        if (io_uring_sq_ready(&u->ring) > 0) {
            r->stats.syscalls++;
            rc = io_uring_submit(&u->ring);
        }
    } else {
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ns != UINT64_MAX) {
            ts.tv_sec = (long long)(timeout_ns / 1000000000u);
            ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
            tsp = &ts;
        }
        struct io_uring_cqe *cqe;
        r->stats.syscalls++;
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tsp, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        KL_WARN("reactor: io_uring submit/wait: %d", rc);

    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
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
        if (data >= WATCH_UDATA_MIN && (data >> 32) == 0) { /* a watch's poll (watch.c) */
            bool final = !(cqe->flags & IORING_CQE_F_MORE);
            r->inflight -= final;
            kl_watch__event(r, (int)(data - WATCH_UDATA_MIN), cqe->res, final);
            continue;
        }
        r->inflight--;
        if (data != 0)
            kl_reactor__complete(r, data, cqe->res);
    }
    io_uring_cq_advance(&u->ring, seen);
    if (woken) {
        arm_wake(r, u);
        kl_xthread__woken(r);
    }
    return 0;
}

/* A watch (watch.c): arm one one-shot poll (or, for an accept watch, one
 * multishot accept) with user_data fd + 2; stop: remove (cancel) it if
 * armed, else there is nothing to wait for. */
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
    if (on && w->accept) {
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, data);
    } else if (on) {
        io_uring_prep_poll_add(sqe, fd, POLLIN | POLLRDHUP);
        io_uring_sqe_set_data64(sqe, data);
    } else {
        if (w->accept)
            io_uring_prep_cancel64(sqe, data, 0);
        else
            io_uring_prep_poll_remove(sqe, data);
        io_uring_sqe_set_data64(sqe, 0);
    }
    r->inflight++;
    r->stats.submissions++;
    return 0;
}

static void uring_forget(struct kl_reactor *r, int fd)
{
    (void)r;
    (void)fd;
}

static void uring_destroy(struct kl_reactor *r)
{
    struct uring_state *u = r->backend_state;
    if (u->wake_armed) { /* cancel the wake-up read and wait for its CQE */
        struct io_uring_sqe *sqe = get_sqe(r, u);
        KL_ASSERT(sqe != NULL, "no SQE to cancel the wake-up read");
        io_uring_prep_cancel64(sqe, WAKE_UDATA, 0);
        io_uring_sqe_set_data64(sqe, 0);
        io_uring_submit(&u->ring);
        while (u->wake_armed) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&u->ring, &cqe);
            if (rc == -EINTR)
                continue;
            KL_ASSERT(rc == 0, "waiting for the wake-up read's cancel: %d", rc);
            if (io_uring_cqe_get_data64(cqe) == WAKE_UDATA)
                wake_completed(u, cqe->res);
            io_uring_cqe_seen(&u->ring, cqe);
        }
    }
    io_uring_queue_exit(&u->ring);
    free(u);
    r->backend_state = NULL;
}

static const struct kl_poller_ops uring_ops = {
    .name = "io_uring",
    .poll = uring_poll,
    .io = uring_io,
    .watch = uring_watch,
    .forget = uring_forget,
    .destroy = uring_destroy,
};

int kl_poller_uring_init(struct kl_reactor *r)
{
    struct uring_state *u = calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    int rc = io_uring_queue_init(r->ring_entries, &u->ring, 0);
    if (rc < 0) {
        free(u);
        return rc;
    }
    r->backend_state = u;
    r->ops = &uring_ops;
    r->backend = KL_REACTOR_URING;
    arm_wake(r, u);
    return 0;
}
