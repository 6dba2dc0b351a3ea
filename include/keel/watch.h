/* keel/watch.h: fd readiness without a fiber, and a receive and a send that
 * never wait.
 *
 * A struct kl_watch asks the calling thread's reactor to call `fn` (on the
 * main context, within a loop iteration) when its fd may have become
 * readable or hung up. No fiber waits and nothing is allocated per event.
 * A watch is armed by kl_watch_start() and fires once; the owner re-arms it
 * (kl_watch_arm) when it wants the next event, typically after reading
 * until a short read or -EAGAIN from kl_recv_ready(). io_uring: one one-shot
 * IORING_OP_POLL_ADD per arm (user_data: the fd, high half zero, which no
 * fiber id has); an arm on a readable socket fires at once. epoll: the fd is
 * registered edge-triggered once, stays armed, and every edge calls `fn`.
 * So `fn` may come while the owner did not ask (epoll), and may be spurious:
 * treat it as "try reading". `fn` must not block; it typically marks the
 * owner ready and resumes or hands it to a fiber.
 *
 * A receiving watch (kl_watch_recv_start) also reads the first bytes. On
 * io_uring each arm is one IORING_OP_RECV that selects a buffer from the
 * thread's receive buffer ring (provided buffers: KL_WATCH_RECV_BUFS of
 * KL_WATCH_RECV_BUF bytes, shared by every receiving watch of the thread)
 * only when bytes come, so an idle socket still holds no buffer, and the
 * bytes come with the event instead of one receive later. The watch holds
 * them (kl_watch_held) until the owner copies them out (kl_watch_take), which
 * gives the buffer back to the ring. When the ring is empty, or the kernel
 * has no buffer rings, the event is a plain "try reading" as above. On epoll
 * it is a readiness watch.
 *
 * One watch per fd. An armed watch counts as I/O in flight, so the loop
 * waits for it rather than reporting a deadlock, and kl_reactor_destroy()
 * refuses while one is armed. Stop the watch before closing the fd.
 */
#ifndef KEEL_WATCH_H
#define KEEL_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "keel/fiber.h"

struct kl_watch;

/* Called on the reactor's thread, main context. A readiness or receiving
 * watch: `res` is a POLLIN/POLLHUP/POLLERR/POLLRDHUP mask, or -errno (a
 * receiving watch's bytes are in kl_watch_held() when it calls). An accept
 * watch: the accepted socket (close-on-exec, now the callee's), or -errno. */
typedef void (*kl_watch_fn)(struct kl_watch *w, int32_t res);

/* Completion of kl_watch_send(), on the reactor's thread, main context: the
 * bytes sent, or -errno (-EAGAIN: the socket took none). */
typedef void (*kl_watch_sent_fn)(struct kl_watch *w, int32_t res);

/* Caller-owned; must stay valid and unmoved from kl_watch_start() until
 * kl_watch_stop() has returned. */
struct kl_watch {
    kl_watch_fn fn;
    int fd;
    bool armed;          /* the backend watches fd */
    bool stopping;       /* kl_watch_stop() waits for the backend to let go */
    bool accept;         /* an accept watch (kl_watch_accept_start) */
    bool recv;           /* a receiving watch on a buffer ring (io_uring) */
    bool sending;        /* a kl_watch_send() is in flight */
    kl_fiber_id stopper; /* the fiber in kl_watch_stop() */
    kl_watch_sent_fn sent;
    uint16_t bid;      /* receiving: the ring buffer holding the bytes */
    uint16_t held_off; /* receiving: the held bytes are [held_off, +held_len) */
    uint16_t held_len; /* of buffer bid (0: none held) */
    bool held_full;    /* the receive filled its buffer: more may wait */
};

/* The receive buffer ring of each io_uring reactor that uses one. */
#define KL_WATCH_RECV_BUFS 64
#define KL_WATCH_RECV_BUF  16384

/* Watch socket `fd` and arm: `fn` comes when it is readable (at once if
 * bytes are already there). 0, -EBUSY (fd already watched), -EBADF,
 * -ENOMEM, or the backend's error. */
int kl_watch_start(struct kl_watch *w, int fd, kl_watch_fn fn);

/* Like kl_watch_start(), and on io_uring each arm receives the first bytes
 * into a ring buffer that the watch holds for the owner (see above). */
int kl_watch_recv_start(struct kl_watch *w, int fd, kl_watch_fn fn);

/* Bytes a receiving watch holds (0 for other watches). */
static inline size_t kl_watch_held(const struct kl_watch *w) { return w->held_len; }

/* Whether the receive that brought the held bytes filled its buffer, so the
 * socket may hold more (read on after taking them). */
static inline bool kl_watch_held_full(const struct kl_watch *w) { return w->held_full; }

/* Copy up to `cap` held bytes to `dst` (the oldest first); the ring buffer
 * goes back once all of them are taken. Bytes copied. */
size_t kl_watch_take(struct kl_watch *w, void *dst, size_t cap);

/* io_uring only: accept on listening socket `fd` with one multishot
 * IORING_OP_ACCEPT; `fn` gets each new socket. The watch disarms itself on
 * an error (-EMFILE...) or when the kernel ends it (w->armed false after
 * that call): re-arm with kl_watch_arm(). 0, -EOPNOTSUPP (epoll), -EBUSY,
 * -EBADF, -ENOMEM. Stop it with kl_watch_stop() from a fiber. */
int kl_watch_accept_start(struct kl_watch *w, int fd, kl_watch_fn fn);

/* Ask for the next event (a no-op while armed). A receiving watch must hold
 * no bytes. 0 or the backend's error. */
int kl_watch_arm(struct kl_watch *w);

/* Stop the watch; on return `fn` is no longer called and the kernel holds
 * nothing of it (held bytes are dropped, their buffer given back). From a fiber when armed on
 * io_uring (it waits for the poll's completion, whatever cancels arrive; a cancel is kept for the
 * next wait). 0, or -EINVAL if the watch was not started or is stopping. */
int kl_watch_stop(struct kl_watch *w);

/* io_uring only: send what `msg` gathers without waiting for room
 * (sendmsg, MSG_DONTWAIT | MSG_NOSIGNAL) as one SQE riding with the loop's
 * next submission; `sent` gets the result when the loop next reaps
 * completions: with the next event, or within a millisecond when none
 * comes (the send's own completion does not wake the loop). `msg` and the
 * bytes it points to must stay untouched until then. One send at a time per watch; kl_watch_stop()
 * waits for it (and `sent` still comes). 0, -EOPNOTSUPP (epoll: send it
 * yourself), -EBUSY (a send in flight, a stop, or no SQE free). */
struct msghdr;
int kl_watch_send(struct kl_watch *w, const struct msghdr *msg, kl_watch_sent_fn sent);

/* True when `fd` is watched on this thread. */
bool kl_watch_active(int fd);

/* recv(2) that never waits for bytes: what is there now (0: peer closed), or
 * -EAGAIN, or -errno. On io_uring it is one SQE (MSG_DONTWAIT) riding with
 * the loop's submission, so reading after a watch's edge costs no system
 * call of its own; on epoll it is one recv(). From a fiber. */
ssize_t kl_recv_ready(int fd, void *buf, size_t len);

#endif /* KEEL_WATCH_H */
