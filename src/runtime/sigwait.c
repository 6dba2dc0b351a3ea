/* Signals delivered to a fiber through a signalfd (keel/sigwait.h).
 *
 * Each wait opens its own signalfd for its set and reads one
 * signalfd_siginfo through the reactor: signals are rare, and a signalfd per
 * wait keeps no state between waits. Nothing is lost in between: a blocked
 * signal stays pending in the kernel until a signalfd reads it. The fd is
 * opened blocking; each backend reads it without blocking the thread (io_uring
 * arms a poll and retries in this thread's context, so the read sees this
 * thread's signals; epoll reads it with RWF_NOWAIT, or under O_NONBLOCK where
 * the kernel cannot, and waits for the edge).
 */
#define _GNU_SOURCE
#include "keel/sigwait.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "keel/io.h"
#include "keel/reactor.h"

int kl_sigblock(const sigset_t *set)
{
    if (set == NULL)
        return -EINVAL;
    return -pthread_sigmask(SIG_BLOCK, set, NULL);
}

int kl_sigwait(const sigset_t *set, struct signalfd_siginfo *info, uint64_t timeout_ns)
{
    if (set == NULL || sigisemptyset(set))
        return -EINVAL;
    if (!kl_reactor_active())
        return -ENOENT;
    int rc = kl_sigblock(set);
    if (rc < 0)
        return rc;
    int fd = signalfd(-1, set, SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct signalfd_siginfo si;
    ssize_t n = kl_read(fd, &si, sizeof si, timeout_ns);
    kl_close(fd);
    if (n < 0)
        return (int)n;
    if (n != (ssize_t)sizeof si)
        return -EIO; /* a signalfd reads whole records */
    if (info)
        *info = si;
    return (int)si.ssi_signo;
}
