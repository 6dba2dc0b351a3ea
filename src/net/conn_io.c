/* A connection's buffered I/O (keel/conn.h): the read buffer and the writer.
 *
 * Read buffer. rbuf[rstart, rend) is the unconsumed input, handed to the
 * parser as one view. Consuming moves rstart; consuming everything resets
 * both offsets to 0, which is the common case for pipelined requests, so
 * nothing is copied per request. The bytes move to the front only when the
 * free tail falls under a quarter of the buffer (and something before them
 * was consumed): each byte moves at most a few times however the input is
 * cut. A buffer full of one unfinished request grows by doubling (malloc:
 * the cold path of one large request) up to rbuf_max, then -ENOBUFS. The
 * buffer comes from the set's pool when the connection gets input and goes
 * back when nothing in it is unconsumed (a partial request keeps it).
 *
 * Readiness. `readable` is cleared *before* a receive is issued and set by
 * the watch's event; a receive that fills the space sets it again (there
 * may be more). So an event that comes while a receive is in flight, or
 * while the handler runs, is never lost, and a short receive ends the
 * reading. Bytes that come with no event (io_uring arms its one-shot
 * receive only when the connection goes idle or waits in kl_conn_fill)
 * complete it as soon as it is armed. On io_uring the watch is a receiving
 * one (keel/watch.h): its event brings the first bytes in a ring buffer,
 * which the next read copies out instead of asking the kernel, so waking an
 * idle connection costs no receive of its own; a receive that filled the
 * ring buffer leaves `readable` set, and the next read asks for the rest.
 *
 * Writer. Copied pieces go into the batch's area (adjacent ones share one
 * iovec), borrowed pieces get an iovec of their own and a release callback.
 * A flush is one writev of every unsent iovec; a short write advances
 * through the iovecs (releasing the ones fully sent) and tries again, all
 * within write_timeout_ns. On error every borrowed piece is released and the
 * error sticks (c->werr), so the handler's later writes fail fast.
 *
 * Send-behind (io_uring). The last flush before a connection goes idle need
 * not hold the runner: conn_send_behind() hands the unsent iovecs to the
 * watch's non-waiting send (keel/watch.h), which rides with the loop's next
 * submission, and the connection goes idle keeping its batch; the
 * completion (conn.c) accounts the bytes with conn_batch_sent() and gives
 * the batch back, or, when the socket took less than all, queues the
 * connection for a runner, whose flush sends the rest within the deadline.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/clock.h"
#include "keel/io.h"
#include "keel/reactor.h"

#include "conn_internal.h"

/* ---- read buffer ---------------------------------------------------------- */

static void rbuf_free(struct kl_connset *set, char *buf)
{
    if (kl_pool_owns(&set->rbufs, buf))
        kl_pool_put(&set->rbufs, buf);
    else
        free(buf);
}

void conn_rbuf_release(struct kl_conn *c)
{
    if (c->rbuf == NULL || c->rstart != c->rend)
        return;
    rbuf_free(c->set, c->rbuf);
    c->rbuf = NULL;
    c->rcap = c->rstart = c->rend = 0;
}

/* Room at the tail for a receive: take, compact or grow. 0 or -ENOBUFS/-ENOMEM. */
static int make_room(struct kl_conn *c)
{
    struct kl_connset *set = c->set;
    if (c->rbuf == NULL) {
        c->rbuf = kl_pool_get(&set->rbufs);
        if (c->rbuf == NULL)
            c->rbuf = malloc(set->cfg.rbuf_size); /* pool exhausted: cold path */
        if (c->rbuf == NULL)
            return -ENOMEM;
        c->rcap = set->cfg.rbuf_size;
        c->rstart = c->rend = 0;
        return 0;
    }
    uint32_t tail = c->rcap - c->rend;
    if (c->rstart > 0 && tail < c->rcap / 4) {
        uint32_t have = c->rend - c->rstart;
        memmove(c->rbuf, c->rbuf + c->rstart, have);
        c->rstart = 0;
        c->rend = have;
        set->stats.compactions++;
        return 0;
    }
    if (tail > 0)
        return 0;
    if (c->rcap >= set->cfg.rbuf_max)
        return -ENOBUFS;
    uint32_t cap = c->rcap > set->cfg.rbuf_max / 2 ? set->cfg.rbuf_max : c->rcap * 2;
    char *nb = malloc(cap);
    if (nb == NULL)
        return -ENOMEM;
    memcpy(nb, c->rbuf, c->rend);
    rbuf_free(set, c->rbuf);
    c->rbuf = nb;
    c->rcap = cap;
    set->stats.grows++;
    return 0;
}

ssize_t conn_read(struct kl_conn *c)
{
    int rc = make_room(c);
    if (rc < 0)
        return rc;
    uint32_t space = c->rcap - c->rend;
    if (kl_watch_held(&c->watch) > 0) { /* the watch's receive brought them */
        size_t n = kl_watch_take(&c->watch, c->rbuf + c->rend, space);
        c->rend += (uint32_t)n;
        c->fresh = true;
        c->set->stats.reads++;
        c->set->stats.read_bytes += n;
        /* bytes left in the watch, or a full receive (more may wait), or a
         * hang-up: read on */
        c->readable = kl_watch_held(&c->watch) > 0 || kl_watch_held_full(&c->watch) || c->hup;
        return (ssize_t)n;
    }
    c->readable = false; /* an edge from now on sets it again */
    ssize_t n = kl_recv_ready(c->watch.fd, c->rbuf + c->rend, space);
    if (n > 0) {
        c->rend += (uint32_t)n;
        c->fresh = true;
        c->set->stats.reads++;
        c->set->stats.read_bytes += (uint64_t)n;
        if ((size_t)n == space || c->hup)
            c->readable = true; /* filled, or the peer hung up: there is more (the end) */
    } else if (n == 0) {
        c->eof = true;
    }
    return n;
}

const char *kl_conn_input(struct kl_conn *c, size_t *len)
{
    *len = c->rend - c->rstart;
    return c->rbuf ? c->rbuf + c->rstart : "";
}

void kl_conn_consume(struct kl_conn *c, size_t n)
{
    KL_ASSERT(n <= c->rend - c->rstart, "consume %zu of %u unconsumed bytes", n,
              c->rend - c->rstart);
    c->rstart += (uint32_t)n;
    if (c->rstart == c->rend)
        c->rstart = c->rend = 0;
}

bool kl_conn_input_full(const struct kl_conn *c)
{
    return c->rcap >= c->set->cfg.rbuf_max && c->rstart == 0 && c->rend == c->rcap;
}

ssize_t kl_conn_fill(struct kl_conn *c, uint64_t timeout_ns)
{
    KL_ASSERT(c->state == CONN_ACTIVE, "kl_conn_fill() on a connection no runner holds");
    uint64_t wait = timeout_ns ? timeout_ns : c->set->cfg.idle_timeout_ns;
    uint64_t deadline = wait ? kl_now() + wait : UINT64_MAX;
    for (;;) {
        if (c->shut)
            return -ESHUTDOWN;
        if (c->eof)
            return 0;
        if (c->readable) {
            ssize_t n = conn_read(c);
            if (n != -EAGAIN)
                return n;
        }
        uint64_t now = kl_now();
        if (now >= deadline)
            return -ETIMEDOUT;
        int rc = kl_watch_arm(&c->watch);
        if (rc < 0)
            return rc;
        c->waiting = true;
        rc = kl_fiber_suspend("conn-fill",
                              deadline == UINT64_MAX ? KL_FIBER_FOREVER : deadline - now);
        c->waiting = false;
        if (rc == -ETIMEDOUT || rc == -ECANCELED)
            return rc;
    }
}

/* ---- writer --------------------------------------------------------------- */

size_t kl_conn_pending(const struct kl_conn *c) { return c->batch ? c->batch->pending : 0; }

static void batch_reset(struct batch *b)
{
    b->niov = b->first = b->used = 0;
    b->pending = 0;
}

void conn_batch_drop(struct kl_conn *c)
{
    struct batch *b = c->batch;
    if (b == NULL)
        return;
    for (uint32_t i = b->first; i < b->niov; i++)
        if (b->rel[i].fn)
            b->rel[i].fn(b->rel[i].arg);
    batch_reset(b);
}

int kl_conn_flush(struct kl_conn *c)
{
    struct batch *b = c->batch;
    KL_ASSERT(b != NULL, "kl_conn_flush() on a connection no runner holds");
    if (c->werr)
        return c->werr;
    struct kl_connset *set = c->set;
    uint64_t deadline = kl_now() + set->cfg.write_timeout_ns;
    while (b->first < b->niov) {
        uint64_t now = kl_now();
        ssize_t n = -ETIMEDOUT;
        if (now < deadline) {
            uint32_t cnt = b->niov - b->first;
            n = kl_writev(c->watch.fd, b->iov + b->first, (int)cnt, deadline - now);
            set->stats.flushes++;
        }
        if (n < 0) {
            c->werr = (int)n;
            conn_batch_drop(c);
            return (int)n;
        }
        conn_batch_sent(c, (size_t)n);
    }
    batch_reset(b);
    return 0;
}

void conn_batch_sent(struct kl_conn *c, size_t n)
{
    struct batch *b = c->batch;
    c->set->stats.written += (uint64_t)n;
    b->pending -= n;
    size_t left = n;
    while (b->first < b->niov && left >= b->iov[b->first].iov_len) {
        left -= b->iov[b->first].iov_len;
        if (b->rel[b->first].fn)
            b->rel[b->first].fn(b->rel[b->first].arg);
        b->first++;
    }
    if (left > 0) { /* short write within one piece */
        b->iov[b->first].iov_base = (char *)b->iov[b->first].iov_base + left;
        b->iov[b->first].iov_len -= left;
    }
    if (b->first == b->niov)
        batch_reset(b);
}

int conn_send_behind(struct kl_conn *c, kl_watch_sent_fn sent)
{
    struct batch *b = c->batch;
    KL_ASSERT(b != NULL && b->first < b->niov && !c->sending, "send-behind with nothing to send");
    b->msg = (struct msghdr){.msg_iov = b->iov + b->first, .msg_iovlen = b->niov - b->first};
    int rc = kl_watch_send(&c->watch, &b->msg, sent);
    if (rc == 0) {
        c->sending = true;
        c->set->stats.flushes++;
    }
    return rc;
}

int kl_conn_write(struct kl_conn *c, const void *buf, size_t len)
{
    struct batch *b = c->batch;
    KL_ASSERT(b != NULL, "kl_conn_write() on a connection no runner holds");
    const char *p = buf;
    uint32_t area = c->set->cfg.wbuf_size;
    while (len > 0) {
        if (c->werr)
            return c->werr;
        struct iovec *last = b->niov > b->first ? &b->iov[b->niov - 1] : NULL;
        bool joins = last && b->rel[b->niov - 1].fn == NULL &&
                     (char *)last->iov_base + last->iov_len == b->area + b->used;
        if (b->used == area || (!joins && b->niov == BATCH_IOV)) {
            int rc = kl_conn_flush(c);
            if (rc < 0)
                return rc;
            continue;
        }
        size_t n = area - b->used < len ? area - b->used : len;
        memcpy(b->area + b->used, p, n);
        if (joins) {
            last->iov_len += n;
        } else {
            b->iov[b->niov] = (struct iovec){b->area + b->used, n};
            b->rel[b->niov] = (struct batch_piece){NULL, NULL};
            b->niov++;
        }
        b->used += (uint32_t)n;
        b->pending += n;
        p += n;
        len -= n;
    }
    return 0;
}

int kl_conn_write_ref(struct kl_conn *c, const void *buf, size_t len, kl_conn_release_fn release,
                      void *arg)
{
    struct batch *b = c->batch;
    KL_ASSERT(b != NULL, "kl_conn_write_ref() on a connection no runner holds");
    int rc = c->werr;
    if (rc == 0 && b->niov == BATCH_IOV)
        rc = kl_conn_flush(c);
    if (rc < 0) {
        if (release)
            release(arg);
        return rc;
    }
    b->iov[b->niov] = (struct iovec){(void *)(uintptr_t)buf, len};
    b->rel[b->niov] = (struct batch_piece){release, arg};
    b->niov++;
    b->pending += len;
    return 0;
}
