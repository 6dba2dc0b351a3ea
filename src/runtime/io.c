/* Fiber-aware I/O (keel/io.h): one request description, two backends.
 *
 * Every call builds a struct kl_io_req on the fiber's stack, turns its
 * relative timeout into an absolute deadline and hands it to the reactor's
 * backend, which parks the fiber until the request is over. A fiber that is
 * already cancelled gets -ECANCELED before anything reaches the kernel.
 */
#include "keel/io.h"

#include <errno.h>
#include <unistd.h>

#include "keel/clock.h"

#include "reactor_internal.h"

static int64_t submit(struct kl_io_req *req, uint64_t timeout_ns)
{
    struct kl_reactor *r = kl_reactor__get();
    KL_ASSERT(r->sched->current != &r->sched->main, "fiber-aware I/O outside a fiber");
    if (r->sched->current->cancelled)
        return -ECANCELED;
    uint64_t deadline = UINT64_MAX;
    if (timeout_ns != 0) {
        uint64_t now = kl_now();
        deadline = timeout_ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + timeout_ns;
    }
    return r->ops->io(r, req, deadline);
}

int kl_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, uint64_t timeout_ns)
{
    struct kl_io_req req = {
        .kind = KL_IO_ACCEPT, .fd = fd, .addr = addr, .addrlen = addrlen, .flags = SOCK_CLOEXEC};
    return (int)submit(&req, timeout_ns);
}

int kl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_CONNECT,
                            .fd = fd,
                            .addr = (struct sockaddr *)(uintptr_t)addr,
                            .addrlen_in = addrlen};
    return (int)submit(&req, timeout_ns);
}

ssize_t kl_read(int fd, void *buf, size_t len, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_READ, .fd = fd, .buf = buf, .len = len};
    return submit(&req, timeout_ns);
}

ssize_t kl_write(int fd, const void *buf, size_t len, uint64_t timeout_ns)
{
    struct kl_io_req req = {
        .kind = KL_IO_WRITE, .fd = fd, .buf = (void *)(uintptr_t)buf, .len = len};
    return submit(&req, timeout_ns);
}

ssize_t kl_readv(int fd, const struct iovec *iov, int iovcnt, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_READV, .fd = fd, .iov = iov, .iovcnt = iovcnt};
    return submit(&req, timeout_ns);
}

ssize_t kl_writev(int fd, const struct iovec *iov, int iovcnt, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_WRITEV, .fd = fd, .iov = iov, .iovcnt = iovcnt};
    return submit(&req, timeout_ns);
}

ssize_t kl_recv(int fd, void *buf, size_t len, int flags, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_RECV, .fd = fd, .buf = buf, .len = len, .flags = flags};
    return submit(&req, timeout_ns);
}

ssize_t kl_send(int fd, const void *buf, size_t len, int flags, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_SEND,
                            .fd = fd,
                            .buf = (void *)(uintptr_t)buf,
                            .len = len,
                            .flags = flags | MSG_NOSIGNAL};
    return submit(&req, timeout_ns);
}

ssize_t kl_pread(int fd, void *buf, size_t len, off_t offset, uint64_t timeout_ns)
{
    struct kl_io_req req = {
        .kind = KL_IO_PREAD, .fd = fd, .buf = buf, .len = len, .offset = offset};
    return submit(&req, timeout_ns);
}

ssize_t kl_pwrite(int fd, const void *buf, size_t len, off_t offset, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_PWRITE,
                            .fd = fd,
                            .buf = (void *)(uintptr_t)buf,
                            .len = len,
                            .offset = offset};
    return submit(&req, timeout_ns);
}

int kl_fsync(int fd, uint64_t timeout_ns)
{
    struct kl_io_req req = {.kind = KL_IO_FSYNC, .fd = fd};
    return (int)submit(&req, timeout_ns);
}

int kl_close(int fd)
{
    struct kl_reactor *r = kl_reactor__tls;
    if (r && fd >= 0)
        r->ops->forget(r, fd);
    return close(fd) == 0 ? 0 : -errno;
}
