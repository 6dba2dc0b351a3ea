/* keel/io.h: fiber-aware I/O on the calling thread's reactor.
 *
 * Each call reads like its blocking POSIX namesake but parks only the calling
 * fiber, never the thread, and returns the byte count (or fd) or a negative
 * errno instead of setting errno. `timeout_ns` bounds the wait (0: none);
 * when it passes the call returns -ETIMEDOUT. A cancelled fiber gets
 * -ECANCELED from its current or next call. On every return the request is
 * over: the kernel no longer holds the buffer (on io_uring a timed-out or
 * cancelled request is cancelled and its completion awaited first). When a
 * request completed in the race with its timeout or cancel, its real result
 * is returned.
 *
 * Close fds with kl_close(). Fibers waiting on the fd (in another call on
 * it) then return -EBADF, and the descriptor really closes: on io_uring the
 * requests on it are cancelled first, as an in-flight request holds the file
 * open. (A call on a regular file that a worker thread runs, on epoll, is
 * not interrupted: it finishes with its own result.) On the epoll backend
 * fds are registered on first use; reads and writes do not block through
 * per-call flags (RWF_NOWAIT, MSG_DONTWAIT), and only for accept, connect
 * and files without RWF_NOWAIT (a tty) is the fd switched to O_NONBLOCK, a
 * flag of the file description that other processes may share (a shell's
 * stdin): kl_close() clears it again, and so does kl_reactor_destroy() for
 * fds still open. Regular files, which epoll
 * cannot wait for, are read and written on the reactor's worker threads. One
 * fiber at a time may wait to read, and one to write, on an fd (-EBUSY
 * otherwise). Lengths past what one transfer can move give a short count.
 */
#ifndef KEEL_IO_H
#define KEEL_IO_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Accept a connection on a listening socket; the new fd (close-on-exec) or -errno. */
int kl_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, uint64_t timeout_ns);

/* Connect a socket; 0 or -errno (-ECONNREFUSED, -ETIMEDOUT, ...). */
int kl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, uint64_t timeout_ns);

/* read(2): bytes read (0 at end of file / peer closed) or -errno. */
ssize_t kl_read(int fd, void *buf, size_t len, uint64_t timeout_ns);

/* write(2): bytes written (possibly short) or -errno. */
ssize_t kl_write(int fd, const void *buf, size_t len, uint64_t timeout_ns);

/* readv(2): bytes read or -errno. */
ssize_t kl_readv(int fd, const struct iovec *iov, int iovcnt, uint64_t timeout_ns);

/* writev(2): bytes written or -errno. */
ssize_t kl_writev(int fd, const struct iovec *iov, int iovcnt, uint64_t timeout_ns);

/* recv(2) with MSG_* `flags`: bytes received or -errno. */
ssize_t kl_recv(int fd, void *buf, size_t len, int flags, uint64_t timeout_ns);

/* send(2) with MSG_* `flags` (MSG_NOSIGNAL is always added): bytes sent or -errno. */
ssize_t kl_send(int fd, const void *buf, size_t len, int flags, uint64_t timeout_ns);

/* pread(2) at `offset`: bytes read or -errno. */
ssize_t kl_pread(int fd, void *buf, size_t len, off_t offset, uint64_t timeout_ns);

/* pwrite(2) at `offset`: bytes written or -errno. */
ssize_t kl_pwrite(int fd, const void *buf, size_t len, off_t offset, uint64_t timeout_ns);

/* fsync(2): 0 or -errno. */
int kl_fsync(int fd, uint64_t timeout_ns);

/* Close `fd`, waking its waiters with -EBADF and forgetting its reactor state; 0 or -errno. */
int kl_close(int fd);

#endif /* KEEL_IO_H */
