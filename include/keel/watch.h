/* keel/watch.h: fd readiness without a fiber, and a receive that never waits.
 *
 * A struct kl_watch asks the calling thread's reactor to call `fn` (on the
 * main context, within a loop iteration) whenever its fd may have become
 * readable or hung up. No fiber waits and nothing is allocated per event:
 * io_uring keeps one multishot IORING_OP_POLL_ADD armed (its user_data is
 * the fd, with the high half zero, which no fiber id has), epoll has the fd
 * registered edge-triggered once and looks the watch up by fd. Events are
 * edges: the owner reads until kl_recv_ready() answers -EAGAIN (or a short
 * read) and is called again when new bytes arrive; a call may be spurious.
 * `fn` must not block; it typically marks the owner ready and resumes or
 * hands it to a fiber.
 *
 * One watch per fd. A watched fd counts as I/O in flight, so the loop waits
 * for it rather than reporting a deadlock and kl_reactor_destroy() refuses
 * while one is armed. Stop the watch before closing the fd.
 */
#ifndef KEEL_WATCH_H
#define KEEL_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "keel/fiber.h"

struct kl_watch;

/* Called on the reactor's thread, main context; `events` is a POLLIN/POLLHUP/
 * POLLERR/POLLRDHUP mask (may be 0 on a spurious call). */
typedef void (*kl_watch_fn)(struct kl_watch *w, uint32_t events);

/* Caller-owned; must stay valid and unmoved from kl_watch_start() until
 * kl_watch_stop() has returned. */
struct kl_watch {
    kl_watch_fn fn;
    int fd;
    bool armed;          /* the backend watches fd */
    bool stopping;       /* kl_watch_stop() waits for the backend to let go */
    kl_fiber_id stopper; /* the fiber in kl_watch_stop() */
};

/* Start calling `fn` on readiness of socket `fd` (an edge may come at once
 * if bytes are already there). 0, -EBUSY (fd already watched), -EBADF,
 * -ENOMEM, or the backend's error. */
int kl_watch_start(struct kl_watch *w, int fd, kl_watch_fn fn);

/* Stop the watch; on return `fn` is no longer called and the kernel holds
 * nothing of it. From a fiber (on io_uring it waits for the poll's last
 * completion, whatever cancels arrive; a cancel is kept for the next wait).
 * 0, or -EINVAL if the watch is not armed. */
int kl_watch_stop(struct kl_watch *w);

/* True when `fd` is watched on this thread. */
bool kl_watch_active(int fd);

/* recv(2) that never waits for bytes: what is there now (0: peer closed), or
 * -EAGAIN, or -errno. On io_uring it is one SQE (MSG_DONTWAIT) riding with
 * the loop's submission, so reading after a watch's edge costs no system
 * call of its own; on epoll it is one recv(). From a fiber. */
ssize_t kl_recv_ready(int fd, void *buf, size_t len);

#endif /* KEEL_WATCH_H */
