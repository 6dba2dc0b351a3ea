/* Connections that hold a fiber only while they have work (keel/conn.h).
 *
 * The idle design. memcached holds an idle connection for about 600 bytes
 * because it gives the connection's buffers back when it goes idle; a fiber
 * per connection with a touched stack of a few KiB would cost 5-10 times
 * that. So here an idle connection is only its struct kl_conn (144
 * bytes, from a pool) and its socket, which the reactor watches without a
 * fiber (keel/watch.h: on io_uring a one-shot receive into the reactor's
 * ring of provided buffers, armed when it goes idle, which brings the first
 * bytes with the event; the fd's one edge-triggered registration on epoll). Everything else is
 * lent while the connection has work and taken back after:
 *
 *   idle --edge--> ready --runner free--> active --no input left--> idle
 *                                            \--close, error, stop--> closed
 *
 * - The watch's callback (main context, in the loop) marks the connection
 *   readable and, if it is idle, queues it on `ready` and resumes a parked
 *   runner (or spawns one, up to max_active).
 * - A runner is a fiber of the set. It takes a ready connection, lends it a
 *   write batch (pool of max_active) and, when it reads, a read buffer (pool),
 *   then loops: receive what is there, call the handler if bytes came,
 *   flush the gathered replies with one writev, and again while the
 *   connection stays readable. When a receive came back short (or -EAGAIN)
 *   and no new edge came, the batch goes back, the read buffer goes back if
 *   nothing in it is unconsumed, and the connection is idle again. A handler
 *   that blocks keeps the runner; so does a flush to a slow reader (bounded
 *   by write_timeout_ns) and a kl_conn_fill() wait.
 * - Runners take turns: after a few rounds with input still coming, a
 *   connection yields its runner to the ready queue if others wait.
 *
 * Memory while idle, then, is the pool object plus the backends' per-fd
 * words (the watch table's pointer; epoll's fd state). Touched read buffers
 * and runner stacks are bounded by how many connections are served at once,
 * not by how many are open: pools hand the most recently returned object
 * out first, so the same few pages serve everyone.
 *
 * The idle deadline costs nothing per request: going idle appends the
 * connection to the `idle` list (oldest first) with the loop's cached time,
 * and one keeper fiber sleeps until the oldest one's deadline (plus 1/16 of
 * the timeout, so that one wake-up closes many), closes what has expired
 * and sleeps again; with no deadline pending it sleeps until a connection
 * goes idle. The keeper also closes the idle and queued connections when
 * the set stops or its fibers are cancelled (kl_reactor_shutdown); active
 * ones are closed by their runners, whose I/O then fails.
 */
#define _GNU_SOURCE
#include "keel/conn.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "keel/assert.h"
#include "keel/clock.h"
#include "keel/io.h"
#include "keel/log.h"
#include "keel/reactor.h"

#include "conn_internal.h"

#define ROUNDS_BEFORE_TURN 16 /* rounds a connection keeps a runner while others wait */

static struct kl_conn *conn_of(struct kl_list_node *n)
{
    return kl_container_of(n, struct kl_conn, node);
}

static void wake(kl_fiber_id id)
{
    if (kl_fiber_id_raw(id) != 0)
        kl_fiber_resume(id, 0); /* -EALREADY: it is running or ready anyway */
}

/* ---- the shared limit ------------------------------------------------------ */

void kl_conn_quota_init(struct kl_conn_quota *q, uint32_t max)
{
    atomic_init(&q->open, 0);
    q->max = max;
}

uint32_t kl_conn_quota_open(const struct kl_conn_quota *q)
{
    return atomic_load_explicit((_Atomic uint32_t *)&q->open, memory_order_relaxed);
}

/* One unit of `q` (NULL: no quota); false when all are taken. */
static bool quota_take(struct kl_conn_quota *q)
{
    if (q == NULL)
        return true;
    uint32_t cur = atomic_load_explicit(&q->open, memory_order_relaxed);
    while (cur < q->max)
        if (atomic_compare_exchange_weak_explicit(&q->open, &cur, cur + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static void quota_give(struct kl_conn_quota *q)
{
    if (q == NULL)
        return;
    uint32_t was = atomic_fetch_sub_explicit(&q->open, 1, memory_order_relaxed);
    KL_ASSERT(was > 0, "connection quota given back more often than taken");
}

/* ---- runners ------------------------------------------------------------- */

static intptr_t runner(void *arg);

/* A connection is ready: give it to a parked runner, or start one. */
static void want_runner(struct kl_connset *set)
{
    if (set->nparked > 0) {
        wake(set->parked[--set->nparked]);
        return;
    }
    if (set->stats.runners >= set->cfg.max_active)
        return; /* a runner that finishes takes it */
    kl_fiber_id id;
    int rc = kl_fiber_spawn(&id, "conn-runner", runner, set, KL_FIBER_PRIO_NORMAL);
    if (rc == 0)
        rc = kl_fiber_detach(id);
    if (rc == 0)
        set->stats.runners++;
    else if (set->stats.runners == 0)
        KL_WARN("conn: no runner fiber could start (%d); %zu connections wait", rc,
                kl_list_len(&set->ready));
}

/* A connection holds the start of a request (bytes not consumed yet). */
static bool pending(const struct kl_conn *c) { return c->rend > c->rstart; }

static void make_ready(struct kl_connset *set, struct kl_conn *c)
{
    c->state = CONN_READY;
    kl_list_push_back(&set->ready, &c->node);
    want_runner(set);
}

static void on_edge(struct kl_watch *w, int32_t res)
{
    /* the receive tells data, end of input and errors apart; but a hang-up
     * must be remembered: on epoll it comes on the same (only) edge as the
     * last bytes, and a short read of those would otherwise end the reading */
    struct kl_conn *c = kl_container_of(w, struct kl_conn, watch);
    if (res > 0 && (res & (POLLRDHUP | POLLHUP | POLLERR)))
        c->hup = true;
    c->readable = true;
    if (c->state == CONN_IDLE) {
        kl_list_remove(&c->set->idle, &c->node);
        make_ready(c->set, c);
    } else if (c->state == CONN_ACTIVE && c->waiting) {
        wake(c->runner);
    }
}

/* A batch a connection kept after a send-behind goes back to the pool. */
static void give_back_kept(struct kl_connset *set, struct kl_conn *c)
{
    KL_ASSERT(c->batch != NULL && set->behind > 0, "no kept batch to give back");
    kl_pool_put(&set->batches, c->batch);
    c->batch = NULL;
    set->behind--;
}

static void close_conn(struct kl_connset *set, struct kl_conn *c, int reason)
{
    KL_ASSERT(c->state != CONN_CLOSING, "connection closed twice");
    bool kept = c->batch != NULL && c->state != CONN_ACTIVE; /* counted in set->behind */
    if (kl_list_node_linked(&c->node))
        kl_list_unlink(&c->node);
    if (c->state == CONN_ACTIVE)
        set->stats.active--;
    c->state = CONN_CLOSING;
    if (set->cfg.on_close)
        set->cfg.on_close(c, reason, set->cfg.arg);
    kl_watch_stop(&c->watch); /* waits for a send-behind: the kernel lets go of the batch */
    conn_batch_drop(c);
    if (kept) {
        give_back_kept(set, c);
    } else if (c->batch) {
        kl_pool_put(&set->batches, c->batch);
        c->batch = NULL;
    }
    kl_close(c->watch.fd);
    c->rstart = c->rend = 0;
    conn_rbuf_release(c);
    set->stats.open--;
    set->stats.closed++;
    kl_pool_put(&set->conns, c);
    quota_give(set->cfg.quota);
    if (set->stats.open == 0)
        wake(set->stopper);
}

/* After a batch with no input left: give the connection back to the watch
 * (armed by the caller: bytes that came meanwhile fire it at once). */
static void go_idle(struct kl_connset *set, struct kl_conn *c)
{
    if (c->sending) { /* kept: the send's completion gives it back */
        set->behind++;
    } else {
        kl_pool_put(&set->batches, c->batch);
        c->batch = NULL;
    }
    conn_rbuf_release(c);
    kl_list_remove(&set->active, &c->node);
    set->stats.active--;
    c->runner = KL_FIBER_ID_NONE;
    c->state = CONN_IDLE;
    c->idle_since = kl_reactor_now();
    kl_list_push_back(&set->idle, &c->node);
    if (set->keeper_parked && set->cfg.idle_timeout_ns)
        wake(set->keeper);
}

/* A send-behind's completion (main context): account the bytes; all sent,
 * a connection no runner holds gives its batch back; the rest (the socket
 * was full) or an error is a runner's to deal with: flush within the
 * deadline, or close. A runner that took the connection meanwhile waits for
 * this (settle_output); a closing one is dealt with by close_conn(). */
static void on_sent(struct kl_watch *w, int32_t res)
{
    struct kl_conn *c = kl_container_of(w, struct kl_conn, watch);
    struct kl_connset *set = c->set;
    KL_ASSERT(c->sending && c->batch != NULL, "a send-behind completion with none in flight");
    c->sending = false;
    if (res > 0)
        conn_batch_sent(c, (size_t)res);
    else if (res < 0 && res != -EAGAIN) {
        c->werr = res;
        conn_batch_drop(c);
    }
    bool done = c->batch->first == c->batch->niov && c->werr == 0;
    if (!done)
        set->stats.sends_short += res >= 0 || res == -EAGAIN;
    switch (c->state) {
    case CONN_IDLE:
        if (done) {
            give_back_kept(set, c);
        } else {
            kl_list_remove(&set->idle, &c->node);
            make_ready(set, c);
        }
        break;
    case CONN_READY: /* input came first: its runner settles the rest */
        if (done)
            give_back_kept(set, c);
        break;
    case CONN_ACTIVE:
        if (c->waiting)
            wake(c->runner);
        break;
    default: break; /* closing: close_conn() drops and gives back */
    }
}

/* The runner's first duty to a connection it takes: the end of a
 * send-behind, and the bytes the socket did not take then. 0 or -errno. */
static int settle_output(struct kl_conn *c)
{
    while (c->sending) { /* reaped before the event that made c ready */
        c->waiting = true;
        int rc = kl_fiber_suspend("conn-send-behind", KL_FIBER_FOREVER);
        c->waiting = false;
        if (rc == -ECANCELED)
            return rc; /* close_conn() still waits for the send */
    }
    if (c->werr)
        return c->werr;
    return c->batch->first < c->batch->niov ? kl_conn_flush(c) : 0;
}

/* Hand the batch's unsent bytes to a send-behind if one may start: io_uring,
 * and fewer batches kept by connections no runner holds than runners, so
 * that batches (twice the runners) never run out. 0, or -errno: flush them
 * now. */
static int try_send_behind(struct kl_connset *set, struct kl_conn *c)
{
    if (set->no_send_behind || set->behind >= set->cfg.max_active)
        return -EBUSY;
    int rc = conn_send_behind(c, on_sent);
    if (rc == -EOPNOTSUPP)
        set->no_send_behind = true;
    return rc;
}

/* Serve one ready connection until it has no input left (or closes). */
static void serve(struct kl_connset *set, struct kl_conn *c)
{
    KL_ASSERT(c->state == CONN_READY, "serving a connection in state %d", c->state);
    c->state = CONN_ACTIVE;
    c->runner = kl_fiber_self();
    kl_list_push_back(&set->active, &c->node);
    set->stats.active++;
    set->stats.activations++;
    if (c->batch != NULL) { /* kept by a send-behind: now the runner's */
        KL_ASSERT(set->behind > 0, "a kept batch not counted");
        set->behind--;
    } else {
        c->batch = kl_pool_get(&set->batches);
        KL_ASSERT(c->batch != NULL, "more runners and send-behinds than write batches");
        c->batch->niov = c->batch->first = c->batch->used = 0;
        c->batch->pending = 0;
    }

    int reason = settle_output(c);
    for (int round = 1; reason == 0; round++) {
        bool full = false;
        if (c->shut) {
            reason = -ESHUTDOWN;
            break;
        }
        if (c->readable && !c->eof) {
            ssize_t n = conn_read(c);
            if (n == -ENOBUFS)
                full = true;
            else if (n < 0 && n != -EAGAIN) {
                reason = (int)n;
                break;
            }
        }
        if (c->fresh || full) {
            size_t before = c->rend - c->rstart;
            int rc = set->cfg.handler(c, set->cfg.arg);
            c->fresh = false;
            if (rc < 0) {
                reason = rc;
                break;
            }
            if (full && c->rend - c->rstart == before) {
                set->stats.input_full++;
                reason = -ENOBUFS;
            }
            if (rc == KL_CONN_CLOSE || reason != 0) {
                int frc = kl_conn_flush(c);
                reason = reason ? reason : (frc < 0 ? frc : 0);
                break;
            }
        }
        /* the replies: flushed now while more input is to be read (or the
         * connection ends); else sent behind as it goes idle */
        bool idle_next = !c->readable && !c->eof && !set->stopping;
        if (c->batch->first < c->batch->niov && (!idle_next || try_send_behind(set, c) != 0)) {
            int rc = kl_conn_flush(c);
            if (rc < 0) {
                reason = rc;
                break;
            }
        }
        if (c->eof)
            break; /* reason 0: the peer closed */
        if (!c->readable) {
            /* stopping: a connection is closed once it holds no partial request */
            reason = set->stopping && !pending(c) ? -ESHUTDOWN : kl_watch_arm(&c->watch);
            if (reason != 0)
                break;
            go_idle(set, c);
            return;
        }
        if (round % ROUNDS_BEFORE_TURN == 0) {
            if (!kl_list_empty(&set->ready)) { /* let the others have this runner */
                kl_pool_put(&set->batches, c->batch);
                c->batch = NULL;
                kl_list_remove(&set->active, &c->node);
                set->stats.active--;
                c->runner = KL_FIBER_ID_NONE;
                c->state = CONN_READY;
                kl_list_push_back(&set->ready, &c->node);
                return;
            }
            kl_fiber_yield(); /* epoll's receives do not park: let other fibers run */
        }
    }
    close_conn(set, c, reason);
}

static void unpark(struct kl_connset *set, kl_fiber_id self)
{
    for (uint32_t i = 0; i < set->nparked; i++) {
        if (kl_fiber_id_raw(set->parked[i]) == kl_fiber_id_raw(self)) {
            set->parked[i] = set->parked[--set->nparked];
            return;
        }
    }
}

static intptr_t runner(void *arg)
{
    struct kl_connset *set = arg;
    kl_fiber_id self = kl_fiber_self();
    for (;;) {
        struct kl_list_node *n = kl_list_pop_front(&set->ready);
        if (n != NULL) {
            serve(set, conn_of(n));
            continue;
        }
        if (set->stopping || kl_fiber_cancelled())
            break;
        KL_ASSERT(set->nparked < set->cfg.max_active, "more parked runners than runners");
        set->parked[set->nparked++] = self;
        int rc = kl_fiber_suspend("conn-runner", KL_FIBER_FOREVER);
        if (rc == -ECANCELED) {
            unpark(set, self);
            /* serve what is queued: each closes at once, its I/O refused */
        }
    }
    set->stats.runners--;
    if (set->stats.runners == 0)
        wake(set->stopper);
    return 0;
}

/* ---- the keeper: idle deadlines and closing ------------------------------------ */

/* At a stop: close the idle connections; with `all`, also those holding the
 * start of a request and those queued for a runner (else they are requests
 * in flight, served until the grace period ends). */
static void close_unserved(struct kl_connset *set, bool all)
{
    /* a close may park (io_uring: the watch's removal), and meanwhile edges
     * move connections off the idle list: after one, start again at its head */
    struct kl_list_node *n = kl_list_first(&set->idle);
    while (n != NULL) {
        if (!all && pending(conn_of(n))) {
            n = kl_list_next(n);
            continue;
        }
        close_conn(set, conn_of(n), -ESHUTDOWN);
        n = kl_list_first(&set->idle);
    }
    while (all && (n = kl_list_first(&set->ready)) != NULL)
        close_conn(set, conn_of(n), -ESHUTDOWN);
    while (set->nparked > 0) /* they find nothing to do and end */
        wake(set->parked[--set->nparked]);
}

static intptr_t keeper(void *arg)
{
    struct kl_connset *set = arg;
    uint64_t timeout = set->cfg.idle_timeout_ns;
    while (!set->stopping) {
        uint64_t wait = KL_FIBER_FOREVER;
        struct kl_list_node *n = kl_list_first(&set->idle);
        if (timeout != 0 && n != NULL) {
            struct kl_conn *c = conn_of(n);
            uint64_t deadline = c->idle_since + timeout, now = kl_now();
            if (deadline <= now) {
                set->stats.idle_timeouts++;
                close_conn(set, c, -ETIMEDOUT);
                continue;
            }
            wait = deadline - now + timeout / 16;
        }
        set->keeper_parked = wait == KL_FIBER_FOREVER;
        int rc = kl_fiber_suspend("conn-keeper", wait);
        set->keeper_parked = false;
        if (rc == -ECANCELED)
            break;
    }
    set->stopping = true;
    close_unserved(set, kl_fiber_cancelled());
    set->keeper = KL_FIBER_ID_NONE;
    wake(set->stopper);
    return 0;
}

/* ---- the set ------------------------------------------------------------------- */

int kl_connset_init(struct kl_connset *set, const struct kl_connset_config *cfg)
{
    memset(set, 0, sizeof *set);
    struct kl_connset_config c = *cfg;
    if (c.handler == NULL)
        return -EINVAL;
    c.max_conns = c.max_conns ? c.max_conns : 1024;
    c.max_active = c.max_active ? c.max_active : 64;
    c.rbuf_size = c.rbuf_size ? c.rbuf_size : 16384;
    c.rbuf_max = c.rbuf_max ? c.rbuf_max : 1u << 20;
    c.wbuf_size = c.wbuf_size ? c.wbuf_size : 16384;
    c.write_timeout_ns = c.write_timeout_ns ? c.write_timeout_ns : 10000000000ull;
    if (c.rbuf_max < c.rbuf_size || c.rbuf_size < 64 || c.rbuf_max > (1u << 30) ||
        c.wbuf_size < 64 || c.wbuf_size > (1u << 30))
        return -EINVAL;
    set->cfg = c;
    kl_list_init(&set->idle);
    kl_list_init(&set->ready);
    kl_list_init(&set->active);
    int rc = kl_pool_init(&set->conns, "connections", sizeof(struct kl_conn), c.max_conns);
    if (rc == 0)
        rc = kl_pool_init(&set->rbufs, "read buffers", c.rbuf_size, c.max_conns);
    if (rc == 0)
        rc = kl_pool_init(&set->batches, "write batches", sizeof(struct batch) + c.wbuf_size,
                          2 * c.max_active); /* runners' and send-behinds' */
    set->parked = calloc(c.max_active, sizeof *set->parked);
    if (rc == 0 && set->parked == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        rc = kl_fiber_spawn(&set->keeper, "conn-keeper", keeper, set, KL_FIBER_PRIO_NORMAL);
        if (rc == 0)
            kl_fiber_detach(set->keeper);
    }
    if (rc < 0) {
        set->keeper = KL_FIBER_ID_NONE;
        kl_connset_destroy(set);
    }
    return rc;
}

bool kl_connset_full(const struct kl_connset *set)
{
    const struct kl_conn_quota *q = set->cfg.quota;
    return set->stats.open >= set->cfg.max_conns || (q && kl_conn_quota_open(q) >= q->max);
}

int kl_connset_add(struct kl_connset *set, int fd, struct kl_conn **out)
{
    if (set->stopping)
        return -ESHUTDOWN;
    if (set->stats.open >= set->cfg.max_conns || !quota_take(set->cfg.quota))
        return -EAGAIN;
    struct kl_conn *c = kl_pool_get(&set->conns);
    if (c == NULL) {
        quota_give(set->cfg.quota);
        return -EAGAIN;
    }
    memset(c, 0, sizeof *c);
    c->set = set;
    kl_list_node_init(&c->node);
    int rc = kl_watch_recv_start(&c->watch, fd, on_edge);
    if (rc < 0) {
        kl_pool_put(&set->conns, c);
        quota_give(set->cfg.quota);
        return rc;
    }
    c->state = CONN_IDLE;
    c->idle_since = kl_reactor_now();
    kl_list_push_back(&set->idle, &c->node);
    set->stats.open++;
    set->stats.opened++;
    if (set->keeper_parked && set->cfg.idle_timeout_ns)
        wake(set->keeper);
    if (set->cfg.on_open)
        set->cfg.on_open(c, set->cfg.arg);
    if (out)
        *out = c;
    return 0;
}

int kl_connset_stop(struct kl_connset *set, uint64_t grace_ns)
{
    set->stopping = true;
    set->stopper = kl_fiber_self();
    wake(set->keeper); /* it closes the idle and queued connections */
    uint64_t deadline = kl_now() + grace_ns;
    int rc = 0;
    bool shut = false;
    while (set->stats.open > 0 || kl_fiber_id_raw(set->keeper) != 0) {
        uint64_t now = kl_now();
        if (!shut && now >= deadline) {
            kl_list_for_each (it, &set->active)
                kl_conn_shutdown(conn_of(it));
            close_unserved(set, true); /* partial requests that did not complete */
            shut = true;
        }
        rc = kl_fiber_suspend("conn-stop", shut ? KL_FIBER_FOREVER : deadline - now);
        if (rc == -ECANCELED)
            break;
        rc = 0;
    }
    set->stopper = KL_FIBER_ID_NONE;
    set->stopped = rc == 0;
    return rc;
}

int kl_connset_destroy(struct kl_connset *set)
{
    if (set->stats.open > 0 || set->stats.runners > 0 || kl_fiber_id_raw(set->keeper) != 0)
        return -EBUSY;
    KL_ASSERT(set->behind == 0, "%u batches kept with every connection closed", set->behind);
    if (set->conns.objects)
        kl_pool_destroy(&set->conns);
    if (set->rbufs.objects)
        kl_pool_destroy(&set->rbufs);
    if (set->batches.objects)
        kl_pool_destroy(&set->batches);
    free(set->parked);
    set->parked = NULL;
    return 0;
}

void kl_connset_stats(const struct kl_connset *set, struct kl_connset_stats *stats)
{
    *stats = set->stats;
}

void kl_connset_foreach(struct kl_connset *set, void (*fn)(struct kl_conn *c, void *arg), void *arg)
{
    struct kl_list *lists[] = {&set->idle, &set->ready, &set->active};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        for (struct kl_list_node *n = kl_list_first(lists[i]); n != NULL; n = kl_list_next(n))
            fn(conn_of(n), arg);
}

/* ---- one connection ------------------------------------------------------------- */

int kl_conn_fd(const struct kl_conn *c) { return c->watch.fd; }

uint64_t kl_conn_idle_since(const struct kl_conn *c)
{
    return c->state == CONN_IDLE ? c->idle_since : 0;
}

void *kl_conn_user(const struct kl_conn *c) { return c->user; }

void kl_conn_set_user(struct kl_conn *c, void *user) { c->user = user; }

int kl_conn_shutdown(struct kl_conn *c)
{
    if (c->state == CONN_CLOSING)
        return -EBADF;
    c->shut = true;
    if (c->state == CONN_ACTIVE && c->waiting)
        wake(c->runner);
    return shutdown(c->watch.fd, SHUT_RDWR) == 0 ? 0 : -errno;
}
