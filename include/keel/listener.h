/* keel/listener.h: TCP listeners that feed a connection set.
 *
 * A listener binds a list of addresses (IPv4 "127.0.0.1:11211", IPv6
 * "[::1]:11211", separated by commas or spaces) with SO_REUSEPORT, and runs
 * one acceptor fiber per socket on the calling thread's reactor. Each worker
 * thread opens its own listener on the same addresses (kl_listener_clone
 * for ports chosen by the kernel), so the kernel spreads connections over
 * the workers and no connection crosses threads. Accepted sockets go to the
 * worker's struct kl_connset (keel/conn.h).
 *
 * On io_uring an acceptor is one multishot accept (keel/watch.h): new
 * sockets reach the set from the loop, with no fiber switch and no SQE per
 * connection; its fiber only sleeps, and wakes to back off and re-arm when
 * the accept ends on an error. On epoll the fiber accepts in a loop.
 *
 * When the process or system is out of descriptors (EMFILE, ENFILE) or of
 * memory, the acceptor backs off (1 ms, doubling up to backoff_max_ns)
 * instead of spinning on the waiting connection. When the set holds
 * max_conns connections, a new one is handed to `refuse` (which may write a
 * last line, without blocking) and closed.
 */
#ifndef KEEL_LISTENER_H
#define KEEL_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "keel/conn.h"
#include "keel/fiber.h"
#include "keel/watch.h"

#define KL_LISTENER_MAX_ADDRS 8

/* Called with a connection refused at the limit, before it is closed. */
typedef void (*kl_listener_refuse_fn)(int fd, void *arg);

struct kl_listener_config {
    const char *addrs;            /* "host:port" list; port 0: the kernel picks */
    int backlog;                  /* 0 means 1024 */
    struct kl_connset *conns;     /* where accepted connections go */
    kl_listener_refuse_fn refuse; /* may be NULL (the connection is just closed) */
    void *arg;
    uint64_t backoff_max_ns; /* 0 means 100 ms */
};

struct kl_listener_stats {
    uint64_t accepted, refused; /* refused: over the connection limit */
    uint64_t backoffs;          /* sleeps on EMFILE/ENFILE/ENOBUFS/ENOMEM */
    uint64_t errors;            /* other accept errors */
};

struct kl_listener;
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
};

/* Bind and listen on every address of cfg->addrs (no reactor needed).
 * 0, -EINVAL (bad address or list), or the socket call's -errno (nothing
 * stays open then). */
int kl_listener_open(struct kl_listener *l, const struct kl_listener_config *cfg);

/* Open `l` on the addresses `first` is bound to (ports as chosen), for
 * another worker; `conns` is that worker's set. 0 or -errno. */
int kl_listener_clone(struct kl_listener *l, const struct kl_listener *first,
                      struct kl_connset *conns);

/* Start one acceptor fiber per socket on this thread's reactor. 0 or -errno. */
int kl_listener_start(struct kl_listener *l);

/* Cancel the acceptors; from a fiber, also wait until they have ended.
 * 0, or -ECANCELED if the waiting fiber was cancelled. */
int kl_listener_stop(struct kl_listener *l);

/* Close the sockets (after the acceptors ended); 0 or -EBUSY. */
int kl_listener_close(struct kl_listener *l);

/* The port socket `i` is bound to (host order), 0 if none. */
uint16_t kl_listener_port(const struct kl_listener *l, size_t i);

#endif /* KEEL_LISTENER_H */
