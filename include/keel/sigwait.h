/* keel/sigwait.h: POSIX signals delivered to a fiber.
 *
 * A service stops on SIGTERM or SIGINT and reloads on SIGHUP; with keel a
 * fiber waits for them like for any other I/O: kl_sigwait() parks the
 * calling fiber, never the thread, until one of the signals in its set is
 * pending, and returns it. Underneath, the signals are blocked in the thread
 * and read from a signalfd through the reactor (keel/io.h), on either
 * backend, so no handler runs in signal context and the fiber may do
 * anything with what it received.
 *
 * A blocked signal sent to the process is still delivered to any thread that
 * does not block it, with its default action (for SIGTERM: the end of the
 * process). So block the service's signals with kl_sigblock() in main()
 * before starting threads: threads inherit the mask.
 */
#ifndef KEEL_SIGWAIT_H
#define KEEL_SIGWAIT_H

#include <signal.h>
#include <stdint.h>
#include <sys/signalfd.h>

/* Block `set` in the calling thread; threads it starts later inherit the
 * mask. 0 or -errno. */
int kl_sigblock(const sigset_t *set);

/* Park the calling fiber until a signal of `set` is pending, take it and
 * return its number; `info` (may be NULL) receives what the kernel tells of
 * it (sender pid, uid, ...). Blocks `set` in the calling thread first.
 * `timeout_ns` bounds the wait (0: none). -ETIMEDOUT, -ECANCELED, -EINVAL
 * (empty set) or another -errno. Needs the thread's reactor. */
int kl_sigwait(const sigset_t *set, struct signalfd_siginfo *info, uint64_t timeout_ns);

#endif /* KEEL_SIGWAIT_H */
