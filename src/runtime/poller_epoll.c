/* The edge-triggered epoll backend of the reactor.
 *
 * Each fd is registered once, on first use, for EPOLLIN|EPOLLOUT|EPOLLRDHUP
 * with EPOLLET; its state (the fiber waiting to read, the one waiting to
 * write) is a table indexed by fd. Calls do not block without touching the
 * fd's flags where the kernel allows it: reads and writes with RWF_NOWAIT
 * (preadv2/pwritev2), recv and send with MSG_DONTWAIT. O_NONBLOCK, a flag
 * of the file description that other processes may share (a shell's
 * stdin), is set only where that is not enough: for accept and connect, and
 * on files without RWF_NOWAIT (a tty). A flag keel set is cleared again when
 * keel lets go of the fd, at kl_close() and when the reactor is destroyed.
 * kl_close() wakes the fibers waiting on the fd with -EBADF. A
 * fiber always tries the system call first and parks only on EAGAIN: an
 * edge that arrived before the attempt is then a harmless spurious wake-up,
 * and one that arrives after it wakes the parked fiber, so no readiness
 * flags are needed. A non-blocking connect parks as a writer and asks
 * connect() again on the edge (0 once connected, the error if it failed).
 *
 * Regular files are always "ready" (epoll refuses them with EPERM), so
 * pread/pwrite/fsync, and read/write on a file epoll refused, go to the
 * reactor's worker pool (poller_pool.c). The reactor's wake-up eventfd
 * (xthread.c), which the pool and other threads' posts write, is registered
 * here too.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keel/log.h"

#include "reactor_internal.h"

#define MAX_EVENTS 128
#define MAX_FDS    (1u << 20)

struct fd_state {
    uint64_t reader; /* raw id of the fiber parked to read/accept, or 0 */
    uint64_t writer; /* to write/connect */
    bool registered;
    bool file;         /* epoll refused it (a regular file): its I/O goes to the pool */
    bool no_nowait;    /* no RWF_NOWAIT here: plain read/write under O_NONBLOCK */
    bool set_nonblock; /* keel set O_NONBLOCK: restore `flags` when letting go */
    int flags;         /* F_GETFL before keel set O_NONBLOCK */
    uint64_t dev, ino; /* the file's identity, checked before restoring at destroy */
};

struct epoll_state {
    int epfd;
    struct fd_state *fds;
    size_t nfds;
    struct epoll_event events[MAX_EVENTS];
};

static bool is_file_io(enum kl_io_kind kind)
{
    return kind == KL_IO_PREAD || kind == KL_IO_PWRITE || kind == KL_IO_FSYNC;
}

static bool is_read_side(enum kl_io_kind kind)
{
    return kind == KL_IO_ACCEPT || kind == KL_IO_READ || kind == KL_IO_READV || kind == KL_IO_RECV;
}

/* The fd's state, registering the fd on first use; NULL and *err on failure. */
static struct fd_state *fd_register(struct kl_reactor *r, struct epoll_state *e, int fd, int *err)
{
    if (fd < 0 || (size_t)fd >= MAX_FDS) {
        *err = -EBADF;
        return NULL;
    }
    if ((size_t)fd >= e->nfds) { /* rare: beyond RLIMIT_NOFILE at start-up */
        size_t n = e->nfds;
        while (n <= (size_t)fd)
            n *= 2;
        struct fd_state *t = realloc(e->fds, n * sizeof *t);
        if (t == NULL) {
            *err = -ENOMEM;
            return NULL;
        }
        memset(t + e->nfds, 0, (n - e->nfds) * sizeof *t);
        e->fds = t;
        e->nfds = n;
    }
    struct fd_state *st = &e->fds[fd];
    if (st->registered)
        return st;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    r->stats.syscalls++;
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST) {
        if (errno != EPERM) {
            *err = -errno;
            return NULL;
        }
        st->file = true; /* always ready: blocking calls on the pool, flags untouched */
    }
    st->registered = true;
    return st;
}

/* Set O_NONBLOCK on the fd unless it has it, remembering the flags to
 * restore; 0 or -errno. */
static int set_nonblock(struct kl_reactor *r, struct fd_state *st, int fd)
{
    if (st->set_nonblock)
        return 0;
    r->stats.syscalls++;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (fl & O_NONBLOCK)
        return 0;
    struct stat sb;
    r->stats.syscalls += 2;
    if (fstat(fd, &sb) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    st->set_nonblock = true;
    st->flags = fl;
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
    return 0;
}

/* Clear the O_NONBLOCK keel set on `fd`; at destroy (`check_identity`) only
 * if the fd still names the same file, as it may have been closed without
 * kl_close() and its number reused. */
static void restore_flags(int fd, const struct fd_state *st, bool check_identity)
{
    if (!st->set_nonblock)
        return;
    struct stat sb;
    if (check_identity &&
        (fstat(fd, &sb) < 0 || (uint64_t)sb.st_dev != st->dev || (uint64_t)sb.st_ino != st->ino))
        return;
    fcntl(fd, F_SETFL, st->flags);
}

/* read/write/readv/writev that do not block whatever the fd's flags
 * (RWF_NOWAIT); -EOPNOTSUPP where the file cannot do that. */
static ssize_t rw_nowait(const struct kl_io_req *q)
{
    struct iovec one = {q->buf, q->len};
    bool vec = q->kind == KL_IO_READV || q->kind == KL_IO_WRITEV;
    const struct iovec *iov = vec ? q->iov : &one;
    int cnt = vec ? q->iovcnt : 1;
    if (q->kind == KL_IO_READ || q->kind == KL_IO_READV)
        return preadv2(q->fd, iov, cnt, -1, RWF_NOWAIT);
    return pwritev2(q->fd, iov, cnt, -1, RWF_NOWAIT);
}

/* One attempt at the request; -EAGAIN means "wait for the edge". */
static int64_t attempt(struct kl_reactor *r, struct fd_state *st, const struct kl_io_req *q)
{
    ssize_t n;
    bool rw = q->kind == KL_IO_READ || q->kind == KL_IO_WRITE || q->kind == KL_IO_READV ||
              q->kind == KL_IO_WRITEV;
    if (rw && !st->no_nowait) {
        n = rw_nowait(q);
        if (n >= 0)
            return n;
        if (errno != EOPNOTSUPP)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        st->no_nowait = true; /* from now on: plain calls, O_NONBLOCK set */
        int err = set_nonblock(r, st, q->fd);
        if (err < 0)
            return err;
    }
    switch (q->kind) {
    case KL_IO_ACCEPT: n = accept4(q->fd, q->addr, q->addrlen, q->flags | SOCK_NONBLOCK); break;
    case KL_IO_CONNECT:
        n = connect(q->fd, q->addr, q->addrlen_in);
        if (n < 0 && (errno == EINPROGRESS || errno == EALREADY))
            return -EAGAIN;
        if (n < 0 && errno == EISCONN)
            return 0; /* the earlier attempt has completed */
        break;
    case KL_IO_READ: n = read(q->fd, q->buf, q->len); break;
    case KL_IO_WRITE: n = write(q->fd, q->buf, q->len); break;
    case KL_IO_READV: n = readv(q->fd, q->iov, q->iovcnt); break;
    case KL_IO_WRITEV: n = writev(q->fd, q->iov, q->iovcnt); break;
    case KL_IO_RECV: n = recv(q->fd, q->buf, q->len, q->flags | MSG_DONTWAIT); break;
    case KL_IO_SEND: n = send(q->fd, q->buf, q->len, q->flags | MSG_DONTWAIT); break;
    default: return -EINVAL;
    }
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static int64_t epoll_io(struct kl_reactor *r, struct kl_io_req *q, uint64_t deadline)
{
    struct epoll_state *e = r->backend_state;
    if (is_file_io(q->kind))
        return kl_io_pool_file(r, q, deadline);
    int err = 0;
    struct fd_state *st = fd_register(r, e, q->fd, &err);
    if (st == NULL)
        return err;
    if (st->file)
        return q->kind == KL_IO_ACCEPT || q->kind == KL_IO_CONNECT || q->kind == KL_IO_RECV ||
                       q->kind == KL_IO_SEND
                   ? -ENOTSOCK
                   : kl_io_pool_file(r, q, deadline);
    if (q->kind == KL_IO_ACCEPT || q->kind == KL_IO_CONNECT) { /* no per-call flag for these */
        err = set_nonblock(r, st, q->fd);
        if (err < 0)
            return err;
    }
    uint64_t self = kl_fiber_id_raw(kl_fiber__id(r->sched->current));
    r->stats.submissions++;
    for (;;) {
        r->stats.syscalls++;
        int64_t res = attempt(r, st, q);
        if (res == -EINTR)
            continue;
        if (res != -EAGAIN || q->nowait) {
            r->stats.completions++;
            return res;
        }
        st = &e->fds[q->fd]; /* the table may have moved while we were parked */
        uint64_t *waiter = is_read_side(q->kind) ? &st->reader : &st->writer;
        if (*waiter != 0 && *waiter != self)
            return -EBUSY;
        *waiter = self;
        r->inflight++;
        int rc = kl_reactor__park(r, is_read_side(q->kind) ? "epoll-in" : "epoll-out", deadline);
        r->inflight--;
        st = &e->fds[q->fd];
        waiter = is_read_side(q->kind) ? &st->reader : &st->writer;
        if (*waiter == self)
            *waiter = 0;
        if (rc == -ETIMEDOUT || rc == -ECANCELED || rc == -EBADF) /* EBADF: kl_close'd */
            return rc;
    }
}

static void wake(uint64_t raw, int result)
{
    if (raw != 0)
        kl_fiber_resume(kl_fiber_id_from(raw), result); /* -EALREADY: woken already */
}

static int epoll_poll(struct kl_reactor *r, uint64_t timeout_ns)
{
    struct epoll_state *e = r->backend_state;
    int ms;
    if (timeout_ns == UINT64_MAX)
        ms = -1;
    else if (timeout_ns / 1000000u >= INT32_MAX)
        ms = INT32_MAX;
    else
        ms = (int)((timeout_ns + 999999u) / 1000000u); /* never wake early */
    r->stats.syscalls++;
    int n = epoll_wait(e->epfd, e->events, MAX_EVENTS, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        int fd = e->events[i].data.fd;
        uint32_t ev = e->events[i].events;
        if (fd == r->wake_fd) {
            uint64_t count; /* consumed before the drain: a later write wakes us again */
            r->stats.syscalls++;
            ssize_t got = read(r->wake_fd, &count, sizeof count);
            (void)got; /* readable (level-triggered, one reader): it does not block */
            kl_xthread__woken(r);
            continue;
        }
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) /* a watch is for input */
            kl_watch__event(r, fd, (int32_t)ev, -1, false);    /* returns at once if none */
        if ((size_t)fd >= e->nfds)
            continue;
        struct fd_state *st = &e->fds[fd];
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            wake(st->reader, 0);
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            wake(st->writer, 0);
    }
    return 0;
}

/* A watch (watch.c): the fd's one registration serves it from the first arm
 * (which stays armed) to the stop; events reach it by fd. */
static int epoll_watch(struct kl_reactor *r, struct kl_watch *w, bool on)
{
    if (on) {
        int err = 0;
        if (fd_register(r, r->backend_state, w->fd, &err) == NULL)
            return err;
        r->inflight++;
        return 0;
    }
    r->inflight--;
    return 1; /* nothing of it is left in the kernel */
}

static void epoll_forget(struct kl_reactor *r, int fd)
{
    struct epoll_state *e = r->backend_state;
    if ((size_t)fd >= e->nfds)
        return;
    struct fd_state *st = &e->fds[fd];
    wake(st->reader, -EBADF);
    wake(st->writer, -EBADF);
    restore_flags(fd, st, false);
    *st = (struct fd_state){0};
}

static void epoll_destroy(struct kl_reactor *r)
{
    struct epoll_state *e = r->backend_state;
    if (e->epfd >= 0)
        close(e->epfd);
    for (size_t fd = 0; e->fds != NULL && fd < e->nfds; fd++)
        restore_flags((int)fd, &e->fds[fd], true);
    free(e->fds);
    free(e);
    r->backend_state = NULL;
}

static const struct kl_poller_ops epoll_ops = {
    .name = "epoll",
    .poll = epoll_poll,
    .io = epoll_io,
    .watch = epoll_watch,
    .forget = epoll_forget,
    .destroy = epoll_destroy,
};

int kl_poller_epoll_init(struct kl_reactor *r)
{
    struct epoll_state *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    e->epfd = -1;
    r->backend_state = e;
    struct rlimit rl;
    e->nfds = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 1024)
        e->nfds = rl.rlim_cur < MAX_FDS ? (size_t)rl.rlim_cur : MAX_FDS;
    e->fds = calloc(e->nfds, sizeof *e->fds);
    int rc = 0;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->fds == NULL)
        rc = -ENOMEM;
    else if (e->epfd < 0)
        rc = -errno;
    if (rc == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = r->wake_fd};
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, r->wake_fd, &ev) < 0)
            rc = -errno;
    }
    if (rc < 0) {
        epoll_destroy(r);
        return rc;
    }
    r->ops = &epoll_ops;
    r->backend = KL_REACTOR_EPOLL;
    return 0;
}
