/* reactor_internal.h: the reactor's data and the poller interface.
 *
 * reactor.c owns the loop, the timers and the hooks; io.c turns each public
 * I/O call into a struct kl_io_req and hands it to the backend's `io`
 * function, which parks the calling fiber until the request is over.
 * poller_uring.c and poller_epoll.c are the backends. xthread.c owns the
 * reactor's inbox and its wake-up eventfd, which both backends watch and
 * which poller_pool.c's worker threads (file I/O on epoll,
 * kl_defer_to_thread everywhere) write as well. Only these files include
 * this header.
 */
#ifndef KEEL_RUNTIME_REACTOR_INTERNAL_H
#define KEEL_RUNTIME_REACTOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "keel/fiber.h"
#include "keel/reactor.h"
#include "keel/timer_wheel.h"
#include "keel/watch.h"
#include "keel/xthread.h"

#include "fiber_internal.h"

/* Internal to libkeel: never exported from libkeel.so, whatever the name. */
#pragma GCC visibility push(hidden)

enum kl_io_kind {
    KL_IO_ACCEPT,
    KL_IO_CONNECT,
    KL_IO_READ,
    KL_IO_WRITE,
    KL_IO_READV,
    KL_IO_WRITEV,
    KL_IO_RECV,
    KL_IO_SEND,
    KL_IO_PREAD,
    KL_IO_PWRITE,
    KL_IO_FSYNC,
};

/* One request, on the calling fiber's stack for the length of the call. */
struct kl_io_req {
    enum kl_io_kind kind;
    int fd;
    int flags; /* MSG_* for recv/send, SOCK_* for accept */
    void *buf;
    size_t len;
    const struct iovec *iov;
    int iovcnt;
    off_t offset;
    struct sockaddr *addr; /* accept: out; connect: in (const in spirit) */
    socklen_t *addrlen;    /* accept */
    socklen_t addrlen_in;  /* connect */
    bool nowait;           /* -EAGAIN is the answer: do not wait for readiness (watch.c) */
};

/* What a fiber waiting for a completion has, indexed by fiber slot. */
struct kl_io_wait {
    uint64_t id; /* the fiber's raw id: the user_data of its request */
    int64_t res;
    bool done;
};

struct kl_reactor;

/* The poller interface: one implementation per backend. */
struct kl_poller_ops {
    const char *name;
    /* One loop iteration's kernel part: submit, wait up to `timeout_ns`
     * (0: do not block; UINT64_MAX: no limit), reap and wake fibers. */
    int (*poll)(struct kl_reactor *r, uint64_t timeout_ns);
    /* Run `req` for the calling fiber; the result or -errno. */
    int64_t (*io)(struct kl_reactor *r, struct kl_io_req *req, uint64_t deadline_ns);
    /* Arm (on) or stop watch `w` for readiness of its fd (watch.c); 0 or
     * -errno. epoll: registered (and counted in r->inflight) from the first
     * arm to the stop. io_uring: one poll per arm, counted while armed; a
     * stop returns 1 when nothing is armed, else asks for the poll's removal
     * (0) and its CQE reaches kl_watch__event() with `final` set. */
    int (*watch)(struct kl_reactor *r, struct kl_watch *w, bool on);
    /* io_uring's receive buffer ring (receiving watches): the bytes of
     * buffer `bid`, and its return to the ring. NULL on epoll. */
    char *(*recv_buf)(struct kl_reactor *r, uint16_t bid);
    void (*recv_buf_put)(struct kl_reactor *r, uint16_t bid);
    /* kl_watch_send(): queue the send; 0 or -EBUSY. NULL on epoll. */
    int (*watch_send)(struct kl_reactor *r, struct kl_watch *w, const struct msghdr *msg);
    /* Forget per-fd state before `fd` is closed. */
    void (*forget)(struct kl_reactor *r, int fd);
    void (*destroy)(struct kl_reactor *r);
};

struct kl_reactor {
    struct kl_sched *sched;
    const struct kl_poller_ops *ops;
    enum kl_reactor_backend backend;
    bool busy_poll;
    uint32_t batch_wait_us; /* kl_reactor_options.batch_wait_us */
    bool stop;
    bool stopping; /* in kl_reactor_shutdown() */
    uint64_t now;  /* kl_now() at the last loop iteration: kl_reactor_now() */
    uint32_t ring_entries;
    uint64_t inflight; /* requests the kernel or the pool holds, parked fd waiters */
    struct kl_reactor_stats stats;
    struct kl_timer_wheel wheel;
    struct kl_timer *timers;   /* per fiber slot: its suspend timeout */
    uint64_t *timer_ids;       /* per fiber slot: the raw id the timer expires */
    struct kl_io_wait **waits; /* per fiber slot: the completion it waits for */
    void *backend_state;
    struct kl_reactor_ref *inbox; /* posted messages (xthread.c) */
    int wake_fd;                  /* the inbox's eventfd: other threads wake the loop here */
    struct kl_io_pool *pool;      /* worker threads, started on first use (poller_pool.c) */
};

extern __thread struct kl_reactor *kl_reactor__tls;

/* The calling thread's reactor; asserts there is one. */
struct kl_reactor *kl_reactor__get(void);

/* Slot index of a raw fiber id. */
static inline uint32_t kl_reactor__slot(uint64_t raw_id) { return (uint32_t)raw_id; }

/* Park the calling fiber until `w` is done, whatever cancels or resumes
 * arrive meanwhile; the fiber's cancelled flag is kept. */
void kl_reactor__wait_done(struct kl_reactor *r, struct kl_io_wait *w);

/* A completion for raw id `user_data` with result `res`: wake its fiber. */
void kl_reactor__complete(struct kl_reactor *r, uint64_t user_data, int64_t res);

/* Suspend the calling fiber until `deadline_ns` (UINT64_MAX: none). */
int kl_reactor__park(struct kl_reactor *r, const char *what, uint64_t deadline_ns);

/* Worker threads for blocking work (poller_pool.c): the epoll backend's file
 * I/O and kl_defer_to_thread(). Started on first use; a finished job wakes
 * the reactor through r->wake_fd. */
struct kl_io_pool;
/* Run fn(arg) on a worker while the calling fiber parks (`what` names the
 * wait in dumps); 0 with the job's return value in *res. On timeout or
 * cancel a job that has not started is dropped when `droppable` (returns
 * -ETIMEDOUT or -ECANCELED); a started or undroppable job is awaited (the
 * fiber's cancelled flag is kept). -EAGAIN: no worker thread could start. */
int kl_io_pool_run(struct kl_reactor *r, const char *what, intptr_t (*fn)(void *arg), void *arg,
                   uint64_t deadline_ns, bool droppable, intptr_t *res);
/* The epoll backend's pread/pwrite/fsync on the pool; result or -errno. */
int64_t kl_io_pool_file(struct kl_reactor *r, struct kl_io_req *q, uint64_t deadline_ns);
/* On the reactor: wake the fibers whose jobs are done. */
void kl_io_pool_reap(struct kl_reactor *r);
/* Join the workers (no job may be pending) and free the pool. */
void kl_io_pool_stop(struct kl_reactor *r);

/* The inbox (xthread.c). Attach creates it and r->wake_fd before the
 * backend starts; detach closes it (later posts get -ESHUTDOWN), runs the
 * messages that made it in, stops the pool and drops the reactor's own
 * reference. */
int kl_xthread__attach(struct kl_reactor *r);
void kl_xthread__detach(struct kl_reactor *r);
/* A backend saw r->wake_fd readable and consumed its count: reap the pool's
 * finished jobs, run the posted messages. */
void kl_xthread__woken(struct kl_reactor *r);
/* Run the posted messages, if any, without touching the eventfd (the loop's
 * turn when it makes no system call; the count left behind only costs a
 * spurious wake-up). One load when the inbox is empty. */
void kl_xthread__drain(struct kl_reactor *r);
/* True while a post can still arrive: another reference exists, or a
 * message waits. The loop then blocks instead of reporting a deadlock. */
bool kl_xthread__may_receive(const struct kl_reactor *r);

/* An event for the watch of `fd` (watch.c): `res` is the poll mask, an
 * accepted socket, a receive's byte count, or -errno; `bid` the ring buffer
 * a receive filled (-1: none); `final` when the backend no longer watches
 * (io_uring's last CQE of a multishot request, or a one-shot's CQE). */
void kl_watch__event(struct kl_reactor *r, int fd, int32_t res, int32_t bid, bool final);

/* The completion of a watch's send (kl_watch_send): bytes sent or -errno. */
void kl_watch__sent(struct kl_reactor *r, int fd, int32_t res);

/* Backend constructors: fill r->backend_state and r->ops; 0 or -errno. */
int kl_poller_uring_init(struct kl_reactor *r);
int kl_poller_epoll_init(struct kl_reactor *r);

#pragma GCC visibility pop

#endif /* KEEL_RUNTIME_REACTOR_INTERNAL_H */
