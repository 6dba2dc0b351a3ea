/* keel/listener.h: TCP listeners that feed connection sets.
 *
 * A listener binds a list of addresses (IPv4 "127.0.0.1:11211", IPv6
 * "[::1]:11211", separated by commas or spaces) and runs one acceptor fiber
 * per socket on the calling thread's reactor. Two modes spread connections
 * over worker threads (keel/workers.h):
 *
 * - KL_LISTENER_REUSEPORT (the default): each worker opens its own listener
 *   on the same addresses with SO_REUSEPORT (kl_listener_clone for ports
 *   chosen by the kernel); the kernel hashes connections over the workers'
 *   sockets and no connection crosses threads. The split follows the hash
 *   of the client's address and port, so a few long connections may land
 *   unevenly.
 * - KL_LISTENER_HANDOFF: one listener, started on one thread (usually a
 *   worker, whose set is cfg.conns). Other workers join it from their own
 *   thread (kl_listener_join). The acceptor deals connections out round-robin
 *   over the joined threads, itself included: its own share goes to its set
 *   at once, the others' through a queue per worker and that worker's
 *   reactor inbox (keel/xthread.h; one post wakes it for all the sockets
 *   queued meanwhile). The split is exact; each connection costs a handoff.
 *
 * Either way a new socket joins its worker's struct kl_connset (keel/conn.h)
 * through kl_connset_add on that worker's thread, with the same limits: the
 * set's max_conns, and its kl_conn_quota if several sets share one (a limit
 * over the process); a connection over the limit is handed to `refuse` on
 * that thread, with that worker's `arg`, and closed.
 *
 * On io_uring an acceptor is one multishot accept (keel/watch.h): new
 * sockets reach the set from the loop, with no fiber switch and no SQE per
 * connection; its fiber only sleeps, and wakes to back off and re-arm when
 * the accept ends on an error. On epoll the fiber accepts in a loop.
 *
 * When the process or system is out of descriptors (EMFILE, ENFILE) or of
 * memory, the acceptor backs off (1 ms, doubling up to backoff_max_ns)
 * instead of spinning on the waiting connection. `refuse` may write a last
 * line, without blocking.
 *
 * HANDOFF: who owns a socket on its way. The acceptor, until it is in a
 * worker's queue; then the queue. The worker's inbox message takes it out
 * and adopts it (or refuses it, or closes it if the set or reactor is
 * stopping: a message run by kl_reactor_destroy closes what it finds). When
 * a post fails (the worker's reactor is gone) the acceptor empties that
 * queue itself, closing the sockets, and skips that worker from then on;
 * kl_listener_close closes anything left. A socket leaves a queue exactly
 * once. When every queue is full, the acceptor's own set takes the socket
 * (or, without one, it is refused).
 */
#ifndef KEEL_LISTENER_H
#define KEEL_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "keel/conn.h"
#include "keel/fiber.h"
#include "keel/watch.h"
#include "keel/xthread.h"

#define KL_LISTENER_MAX_ADDRS 8

enum kl_listener_mode {
    KL_LISTENER_REUSEPORT = 0, /* a listener per worker, SO_REUSEPORT */
    KL_LISTENER_HANDOFF,       /* one acceptor hands sockets to the workers that joined */
};

/* Called with a connection refused at the limit, before it is closed. */
typedef void (*kl_listener_refuse_fn)(int fd, void *arg);

struct kl_listener_config {
    const char *addrs;            /* "host:port" list; port 0: the kernel picks */
    int backlog;                  /* 0 means 1024 */
    struct kl_connset *conns;     /* where accepted connections go (HANDOFF: the acceptor
                                   * thread's share; NULL: that thread serves none) */
    kl_listener_refuse_fn refuse; /* may be NULL (the connection is just closed) */
    void *arg;                    /* refuse's, on the acceptor's thread */
    uint64_t backoff_max_ns;      /* 0 means 100 ms */
    enum kl_listener_mode mode;
    uint32_t handoff_workers; /* HANDOFF: threads that may join, the acceptor's included;
                               * 0 means 64 */
    uint32_t handoff_queue;   /* HANDOFF: sockets queued per worker (a power of two);
                               * 0 means 256 */
};

/* Written by the acceptor's thread (read them once it has stopped). */
struct kl_listener_stats {
    uint64_t accepted, refused; /* into cfg.conns / refused there: over the limit */
    uint64_t backoffs;          /* sleeps on EMFILE/ENFILE/ENOBUFS/ENOMEM */
    uint64_t errors;            /* other accept errors */
    uint64_t handed_off;        /* HANDOFF: queued for another thread */
};

/* HANDOFF: what happened on one joined thread to the sockets handed to it
 * (any thread may read them, any time). */
struct kl_listener_share_stats {
    uint64_t adopted; /* joined its set */
    uint64_t refused; /* over the limit: refuse() and closed */
    uint64_t dropped; /* closed unserved: its set or reactor was stopping */
};

struct kl_listener;
struct kl_handoff_share; /* HANDOFF: one joined thread (listener.c) */

struct kl_acceptor {
    struct kl_listener *l;
    int fd;
    kl_fiber_id fiber;
    struct kl_watch watch;        /* io_uring: the multishot accept */
    int err;                      /* the error that ended it, for the fiber */
    struct sockaddr_storage addr; /* as bound (with the kernel's port) */
    socklen_t addrlen;
};

/* Caller-owned. */
struct kl_listener {
    struct kl_listener_config cfg;
    struct kl_acceptor acc[KL_LISTENER_MAX_ADDRS];
    size_t n;
    uint32_t running; /* acceptor fibers not ended */
    kl_fiber_id stopper;
    struct kl_listener_stats stats;
    struct kl_handoff_share *shares; /* HANDOFF: handoff_workers of them */
    _Atomic uint32_t joined;         /* HANDOFF: shares claimed */
    uint32_t next;                   /* HANDOFF: the round-robin's cursor */
    bool self_joined;                /* HANDOFF: the acceptor's thread has its share */
};

/* Bind and listen on every address of cfg->addrs (no reactor needed).
 * 0, -EINVAL (bad address or list, bad mode, handoff_queue not a power of
 * two), -ENOMEM (HANDOFF's queues), or the
 * socket call's -errno (nothing stays open then). HANDOFF binds without
 * SO_REUSEPORT. */
int kl_listener_open(struct kl_listener *l, const struct kl_listener_config *cfg);

/* REUSEPORT: open `l` on the addresses `first` is bound to (ports as
 * chosen), for another worker; `conns` is that worker's set. 0, -EINVAL
 * (HANDOFF), or -errno. */
int kl_listener_clone(struct kl_listener *l, const struct kl_listener *first,
                      struct kl_connset *conns);

/* Start one acceptor fiber per socket on this thread's reactor (HANDOFF:
 * this thread also joins with cfg.conns, unless NULL). 0 or -errno. */
int kl_listener_start(struct kl_listener *l);

/* HANDOFF, from another thread with a reactor, once `conns` is up: take a
 * share of the connections into `conns`; `arg` is refuse's there. Until
 * kl_listener_close, sockets may be queued for this thread: keep `conns`
 * until its reactor is destroyed. 0, -EINVAL (REUSEPORT), -ENOSPC (more
 * than handoff_workers joined). */
int kl_listener_join(struct kl_listener *l, struct kl_connset *conns, void *arg);

/* HANDOFF: the counters of share `i` (in joining order; 0 is the acceptor's
 * thread when it serves); 0, or -ENOENT. */
int kl_listener_share_stats(const struct kl_listener *l, uint32_t i,
                            struct kl_listener_share_stats *out);

/* Cancel the acceptors; from a fiber, also wait until they have ended.
 * 0, or -ECANCELED if the waiting fiber was cancelled. */
int kl_listener_stop(struct kl_listener *l);

/* Close the sockets, after the acceptors ended (HANDOFF: also after every
 * post to the joined threads has run, which their reactor's destroy
 * guarantees; then it closes any socket still queued and frees the
 * queues). 0, or -EBUSY (nothing done: call again later). */
int kl_listener_close(struct kl_listener *l);

/* The port socket `i` is bound to (host order), 0 if none. */
uint16_t kl_listener_port(const struct kl_listener *l, size_t i);

#endif /* KEEL_LISTENER_H */
