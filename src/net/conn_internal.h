/* conn_internal.h: the connection object and the write batch, shared by
 * conn.c (life cycle, runners, deadlines) and conn_io.c (read buffer,
 * writer). Only these files include it. */
#ifndef KEEL_NET_CONN_INTERNAL_H
#define KEEL_NET_CONN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "keel/conn.h"
#include "keel/watch.h"

enum conn_state {
    CONN_IDLE = 1, /* watched, in set->idle, no runner */
    CONN_READY,    /* in set->ready, waiting for a runner */
    CONN_ACTIVE,   /* in set->active, held by c->runner */
    CONN_CLOSING,  /* in no list, being closed */
};

/* What an idle connection costs: this object (144 bytes) and its socket. */
struct kl_conn {
    struct kl_watch watch; /* the reactor's readiness watch on the socket */
    struct kl_list_node node;
    struct kl_connset *set;
    char *rbuf; /* NULL while nothing is unconsumed and no runner holds it */
    uint32_t rcap, rstart, rend;
    uint8_t state;       /* enum conn_state */
    bool readable;       /* an edge came since the last receive began */
    bool fresh;          /* bytes came since the handler last ran */
    bool eof;            /* the peer closed (a receive returned 0) */
    bool hup;            /* an edge said the peer hung up: read on until the 0 */
    bool waiting;        /* the runner is parked in kl_conn_fill() */
    bool shut;           /* kl_conn_shutdown() was called */
    bool sending;        /* a send-behind of the batch is in flight */
    int werr;            /* a flush failed: later writes fail with it */
    struct batch *batch; /* while a runner holds it */
    kl_fiber_id runner;
    uint64_t idle_since; /* kl_reactor_now() when it last went idle */
    void *user;
};

/* Gathered replies of one batch: copied bytes live in `area`, borrowed ones
 * stay where they are; rel[i] releases iov[i] (NULL for copied ones). */
#define BATCH_IOV 64
struct batch_piece {
    kl_conn_release_fn fn;
    void *arg;
};
struct batch {
    struct iovec iov[BATCH_IOV];
    struct batch_piece rel[BATCH_IOV];
    uint32_t niov, first; /* iov[first, niov) are not yet sent */
    uint32_t used;        /* bytes of area taken */
    size_t pending;       /* bytes not yet sent */
    struct msghdr msg;    /* a send-behind's, while in flight */
    char area[];
};

/* conn_io.c */
/* Read what is there into the read buffer (taking a buffer, compacting or
 * growing as needed): bytes read, 0 at end of input, -EAGAIN, -ENOBUFS at
 * rbuf_max, or -errno. */
ssize_t conn_read(struct kl_conn *c);
/* Give back the read buffer if nothing in it is unconsumed. */
void conn_rbuf_release(struct kl_conn *c);
/* Release every borrowed piece not yet sent and empty the batch. */
void conn_batch_drop(struct kl_conn *c);
/* Account `n` bytes of the batch as sent: release the pieces sent whole,
 * advance into a piece sent in part; empty the batch when all went. */
void conn_batch_sent(struct kl_conn *c, size_t n);
/* Send the batch's unsent bytes without waiting (io_uring); `sent` gets the
 * completion. 0, or -errno (-EOPNOTSUPP on epoll): flush it instead. */
int conn_send_behind(struct kl_conn *c, kl_watch_sent_fn sent);

#endif /* KEEL_NET_CONN_INTERNAL_H */
