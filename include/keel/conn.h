/* keel/conn.h: connections that hold a fiber only while they have work.
 *
 * A struct kl_connset is one worker thread's connections: fixed pools of
 * connection objects, read buffers and write batches, and a few fibers
 * ("runners"). Hand it accepted sockets (kl_connset_add, or a listener,
 * keel/listener.h). An idle connection is a small object the reactor
 * watches (keel/watch.h): no fiber, no stack, no buffer. When bytes arrive,
 * a runner takes the connection, lends it a read buffer and a write batch,
 * and calls the handler, which parses the bytes in place, consumes what it
 * handled and gathers replies; the runner sends them with one writev, and
 * when no input is left it gives everything back and takes the next ready
 * connection. A handler that blocks (disk I/O, a lock) keeps its runner
 * meanwhile; the other connections get other runners.
 *
 * The read buffer is one view of all unconsumed bytes; consuming moves a
 * start offset (no copy per request), and the bytes are moved to the front
 * only when the free tail runs short. It grows past its pooled size, up to
 * `rbuf_max`, for one large request. The writer copies small pieces into
 * the batch's area and borrows large ones (a release callback runs once they
 * are sent); it flushes when the handler returns, when the area or its
 * iovec array is full, or on kl_conn_flush(), within `write_timeout_ns`.
 * On io_uring the last flush before the connection goes idle is a
 * send-behind: handed to the kernel with the loop's next submission while
 * the runner moves on (the bytes a full socket did not take are sent by a
 * runner later, within the deadline).
 *
 * Not thread-safe: a connset belongs to the thread whose reactor it uses.
 * The one thing sets of several threads may share is a struct kl_conn_quota:
 * a limit on the connections open in all of them (a process's -c), kept by
 * one atomic count that kl_connset_add takes from and a close gives back to.
 */
#ifndef KEEL_CONN_H
#define KEEL_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/fiber.h"
#include "keel/list.h"
#include "keel/pool.h"

struct kl_conn;
struct kl_connset;

/* What a handler returns: go on (it waits for more input), or close once
 * the replies it queued are sent. A negative errno closes at once. */
enum { KL_CONN_MORE = 0, KL_CONN_CLOSE = 1 };

/* Called in a runner fiber when new bytes are in the read buffer. */
typedef int (*kl_conn_handler)(struct kl_conn *c, void *arg);

/* Called when a connection closes (its fd still open, about to be closed);
 * `reason`: 0 (peer closed or handler asked), -ETIMEDOUT (idle or write
 * deadline), -ENOBUFS (input bound hit), -ESHUTDOWN (stop), or -errno. */
typedef void (*kl_conn_close_fn)(struct kl_conn *c, int reason, void *arg);

/* Called when a connection has been adopted (kl_connset_add). */
typedef void (*kl_conn_open_fn)(struct kl_conn *c, void *arg);

/* Called after a borrowed piece has been sent (or dropped with its
 * connection); from a fiber, or from the loop's main context after a
 * send-behind: it must not park. */
typedef void (*kl_conn_release_fn)(void *arg);

/* A connection limit shared by several sets (threads): kl_connset_add takes
 * one unit (-EAGAIN when none is left), the connection's close gives it back. */
struct kl_conn_quota {
    _Atomic uint32_t open; /* units taken */
    uint32_t max;
};

struct kl_connset_config {
    uint32_t max_conns;          /* open connections at most; 0 means 1024 */
    struct kl_conn_quota *quota; /* may be NULL; else also bounded by it (shared) */
    uint32_t max_active;         /* runner fibers (connections being served at once); 0: 64 */
    uint32_t rbuf_size;          /* pooled read buffer; 0 means 16 KiB */
    uint32_t rbuf_max;           /* bound on one connection's unconsumed input; 0 means 1 MiB */
    uint32_t wbuf_size;          /* copy area of a write batch; 0 means 16 KiB */
    uint64_t idle_timeout_ns;    /* close connections idle this long; 0: never */
    uint64_t write_timeout_ns;   /* bound on one flush; 0 means 10 s */
    kl_conn_handler handler;
    kl_conn_open_fn on_open;   /* may be NULL */
    kl_conn_close_fn on_close; /* may be NULL */
    void *arg;                 /* passed to handler and on_close */
};

/* Counters since kl_connset_init(). */
struct kl_connset_stats {
    uint64_t opened, closed;     /* connections */
    uint64_t idle_timeouts;      /* closed by the idle deadline */
    uint64_t activations;        /* times a runner took a connection */
    uint64_t reads, read_bytes;  /* receives that returned bytes */
    uint64_t flushes, written;   /* writev/sendmsg calls (incl. retries of short writes), bytes */
    uint64_t sends_short;        /* send-behinds the socket took in part: a runner sent the rest */
    uint64_t compactions, grows; /* read buffer moves and growths past rbuf_size */
    uint64_t input_full;         /* connections closed at rbuf_max */
    uint32_t open, active;       /* connections open now, of them held by a runner */
    uint32_t runners;            /* runner fibers now */
};

/* One worker's connections; caller-owned, opaque in use. */
struct kl_connset {
    struct kl_connset_config cfg;
    struct kl_pool conns, rbufs, batches;
    struct kl_list idle;   /* watched, no runner: oldest first (the idle deadline) */
    struct kl_list ready;  /* waiting for a runner */
    struct kl_list active; /* held by a runner */
    kl_fiber_id *parked;   /* runners waiting for work (a stack) */
    uint32_t nparked;
    kl_fiber_id keeper;  /* idle deadlines and the stop */
    bool keeper_parked;  /* it sleeps with no deadline: wake it when one comes */
    kl_fiber_id stopper; /* the fiber in kl_connset_stop() */
    bool stopping, stopped;
    bool no_send_behind; /* the backend has none (epoll) */
    uint32_t behind;     /* connections no runner holds that keep a batch (send-behind) */
    struct kl_connset_stats stats;
};

/* ---- the set ------------------------------------------------------------- */

/* Create the pools and start the keeper fiber; needs the thread's reactor.
 * 0, -EINVAL (no handler, bad sizes), -ENOMEM, or a spawn error. */
int kl_connset_init(struct kl_connset *set, const struct kl_connset_config *cfg);

/* Adopt an accepted socket: 0, -EAGAIN (at max_conns or the quota's max:
 * the caller refuses and closes it), -ESHUTDOWN (stopping), or the watch's error (the fd stays
 * the caller's on error). */
int kl_connset_add(struct kl_connset *set, int fd, struct kl_conn **out);

/* True when max_conns connections are open, or the quota is used up. */
bool kl_connset_full(const struct kl_connset *set);

/* Stop from a fiber: take no more connections, close the idle ones, let the
 * ones being served finish their batch (then close them), and after
 * `grace_ns` shut the rest down (their runners wake with an error). Returns
 * once every connection is closed: 0, or -ECANCELED if the caller was
 * cancelled meanwhile (the keeper closes the rest). A reactor shutdown that
 * cancels the set's fibers has the same effect without this call. */
int kl_connset_stop(struct kl_connset *set, uint64_t grace_ns);

/* Release the pools; main context, after the set's fibers have ended (after
 * kl_connset_stop, or the reactor's shutdown). 0, or -EBUSY. */
int kl_connset_destroy(struct kl_connset *set);

/* Set up a shared limit of `max` connections (before any set uses it). */
void kl_conn_quota_init(struct kl_conn_quota *q, uint32_t max);

/* Connections open under the quota now, from any thread. */
uint32_t kl_conn_quota_open(const struct kl_conn_quota *q);

/* Copy the counters into *stats. */
void kl_connset_stats(const struct kl_connset *set, struct kl_connset_stats *stats);

/* Call fn(c, arg) for every open connection of the set: idle ones, then those
 * waiting for a runner, then those held by one. The set's own thread only;
 * fn must not park, close or add connections. */
void kl_connset_foreach(struct kl_connset *set, void (*fn)(struct kl_conn *c, void *arg),
                        void *arg);

/* ---- one connection (from its handler, in its runner) ----------------------- */

/* The unconsumed input: its length in *len (the pointer is valid until the
 * next kl_conn_fill, or until the handler returns). */
const char *kl_conn_input(struct kl_conn *c, size_t *len);

/* Drop the first `n` unconsumed bytes (n <= the view's length). */
void kl_conn_consume(struct kl_conn *c, size_t n);

/* Wait for and read more input (up to `timeout_ns`; 0: the idle timeout or
 * none): bytes added, 0 when the peer closed, -ENOBUFS at rbuf_max,
 * -ETIMEDOUT, -ECANCELED, -ESHUTDOWN or -errno. */
ssize_t kl_conn_fill(struct kl_conn *c, uint64_t timeout_ns);

/* True when the unconsumed input has reached rbuf_max (nothing more can be
 * read until the handler consumes; if it consumes nothing, the connection closes). */
bool kl_conn_input_full(const struct kl_conn *c);

/* Queue `len` bytes, copied (a full batch is flushed first). 0 or -errno
 * (the flush's error: the connection is then closing). */
int kl_conn_write(struct kl_conn *c, const void *buf, size_t len);

/* Queue `len` bytes borrowed until sent; `release(arg)` runs after they are
 * sent or dropped (release may be NULL). 0 or -errno (released already). */
int kl_conn_write_ref(struct kl_conn *c, const void *buf, size_t len, kl_conn_release_fn release,
                      void *arg);

/* Send everything queued now (one writev, repeated on short writes, within
 * write_timeout_ns). 0 or -errno (-ETIMEDOUT, -EPIPE, -ECANCELED...). */
int kl_conn_flush(struct kl_conn *c);

/* Bytes queued and not yet sent. */
size_t kl_conn_pending(const struct kl_conn *c);

/* kl_reactor_now() when the connection last went idle, or 0 while it has
 * input to serve or a runner holds it. */
uint64_t kl_conn_idle_since(const struct kl_conn *c);

/* The connection's socket. */
int kl_conn_fd(const struct kl_conn *c);

/* Per-connection user pointer (NULL at first). */
void *kl_conn_user(const struct kl_conn *c);

/* Set the per-connection user pointer. */
void kl_conn_set_user(struct kl_conn *c, void *user);

/* From any fiber of the thread: shut the socket down, so the fiber serving
 * the connection (reading, writing, or parked in kl_conn_fill) wakes with an
 * error and closes it; an idle one is closed by its next runner. 0 or -errno. */
int kl_conn_shutdown(struct kl_conn *c);

#endif /* KEEL_CONN_H */
