/* TCP listeners feeding connection sets (keel/listener.h).
 *
 * One socket per address, bound with SO_REUSEADDR (and SO_REUSEPORT in the
 * REUSEPORT mode; IPv6 sockets are IPV6_V6ONLY, so "[::]:P" and "0.0.0.0:P"
 * can both be bound), one acceptor fiber per socket.
 *
 * REUSEPORT: a listener per worker binds the same addresses; the kernel
 * balances new connections across the sockets of a port, and no socket
 * crosses threads.
 *
 * HANDOFF: one listener; each thread that joins gets a "share": a bounded
 * queue of sockets (a ring with one producer, the acceptor's thread, and
 * consumers that take with a compare-and-swap on its head, so that the
 * acceptor may empty the queue of a worker that is gone while the worker's
 * last message still runs), an inbox message and a reference to the
 * thread's reactor. The acceptor deals sockets round-robin over the shares
 * that have room; for another thread's share it pushes the socket and posts
 * the message only if it is not already posted (`posted`, cleared by the
 * message before it empties the queue: a socket pushed meanwhile is either
 * seen by that run or posts again), so a burst of accepts costs one post
 * and one wake-up per worker. `inflight` counts posted messages not yet
 * finished, so that kl_listener_close never frees a queue a message is
 * still reading. Which mode is faster is measured, not assumed:
 * bench/listener (make bench-listener) runs both on one 2-worker server.
 *
 * Accept errors: out of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) sleeps with an exponential back-off, leaving the connection in
 * the backlog until a descriptor is free; a connection that died in the
 * backlog (ECONNABORTED, EPROTO...) is skipped; anything else is counted
 * and retried after 10 ms. On io_uring the acceptor is a multishot accept
 * (an accept watch, keel/watch.h): its callback adopts each new socket in
 * the loop, and the fiber parks until the accept ends (an error, or the
 * kernel ending it when the completion queue is full), then backs off if
 * it must and re-arms. On epoll the fiber calls kl_accept() in a loop.
 */
#define _GNU_SOURCE
#include "keel/listener.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keel/assert.h"
#include "keel/io.h"
#include "keel/log.h"
#include "keel/reactor.h"

#define MS   1000000ull
#define LINE 64

/* HANDOFF: one joined thread's queue and message. */
struct kl_handoff_share {
    struct kl_xmsg msg; /* drains `ring` on the thread */
    struct kl_listener *l;
    struct kl_connset *conns;
    void *arg;                  /* refuse's */
    struct kl_reactor_ref *ref; /* the thread's reactor */
    bool local;                 /* the acceptor's own thread: no queue, no post */
    bool gone;                  /* a post failed (acceptor's thread only) */
    _Atomic bool ready;         /* joined: the fields above are set */
    _Atomic bool posted;        /* msg is in the inbox and has not started */
    _Atomic uint32_t inflight;  /* posts whose run has not finished */
    _Atomic uint64_t adopted, refused, dropped;
    _Atomic int *ring;
    uint32_t mask;
    _Alignas(LINE) _Atomic uint32_t tail; /* the acceptor's */
    _Alignas(LINE) _Atomic uint32_t head; /* the consumers' */
};

static void close_all(struct kl_listener *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->acc[i].fd >= 0)
            kl_close(l->acc[i].fd);
    l->n = 0;
}

/* Bind and listen on one resolved address; the fd or -errno. */
static int bind_one(struct kl_acceptor *a, const struct sockaddr *sa, socklen_t len, int backlog,
                    bool reuseport)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    a->addrlen = sizeof a->addr;
    if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&a->addr, &a->addrlen) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    a->fd = fd;
    return fd;
}

/* "host:port" or "[v6]:port" into a socket address; 0 or -EINVAL. */
static int resolve(const char *item, size_t len, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char buf[128];
    if (len == 0 || len >= sizeof buf)
        return -EINVAL;
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *host = buf, *colon = strrchr(buf, ':');
    if (colon == NULL)
        return -EINVAL;
    *colon = '\0';
    char *port = colon + 1;
    if (host[0] == '[') {
        size_t hl = strlen(host);
        if (hl < 2 || host[hl - 1] != ']')
            return -EINVAL;
        host[hl - 1] = '\0';
        host++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(*host ? host : NULL, port, &hints, &res) != 0 || res == NULL)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void init(struct kl_listener *l, const struct kl_listener_config *cfg)
{
    memset(l, 0, sizeof *l);
    l->cfg = *cfg;
    l->cfg.backlog = cfg->backlog > 0 ? cfg->backlog : 1024;
    l->cfg.backoff_max_ns = cfg->backoff_max_ns ? cfg->backoff_max_ns : 100 * MS;
    l->cfg.handoff_workers = cfg->handoff_workers ? cfg->handoff_workers : 64;
    l->cfg.handoff_queue = cfg->handoff_queue ? cfg->handoff_queue : 256;
    for (size_t i = 0; i < KL_LISTENER_MAX_ADDRS; i++)
        l->acc[i].fd = -1;
}

/* ---- HANDOFF: the shares ------------------------------------------------------ */

static void shares_free(struct kl_listener *l)
{
    if (l->shares == NULL)
        return;
    for (uint32_t i = 0; i < l->cfg.handoff_workers; i++)
        free(l->shares[i].ring);
    free(l->shares);
    l->shares = NULL;
}

static int shares_alloc(struct kl_listener *l)
{
    uint32_t n = l->cfg.handoff_workers, q = l->cfg.handoff_queue;
    if (n > 4096 || q > (1u << 20) || (q & (q - 1)) != 0)
        return -EINVAL;
    size_t bytes = n * sizeof *l->shares;
    l->shares = aligned_alloc(LINE, bytes);
    if (l->shares == NULL)
        return -ENOMEM;
    memset(l->shares, 0, bytes);
    for (uint32_t i = 0; i < n; i++) {
        struct kl_handoff_share *sh = &l->shares[i];
        sh->l = l;
        sh->mask = q - 1;
        sh->ring = malloc(q * sizeof *sh->ring);
        if (sh->ring == NULL) {
            shares_free(l);
            return -ENOMEM;
        }
    }
    atomic_init(&l->joined, 0);
    return 0;
}

/* The acceptor's thread: queue fd; false when the queue is full. */
static bool ring_push(struct kl_handoff_share *sh, int fd)
{
    uint32_t tail = atomic_load_explicit(&sh->tail, memory_order_relaxed);
    if (tail - atomic_load_explicit(&sh->head, memory_order_acquire) > sh->mask)
        return false;
    atomic_store_explicit(&sh->ring[tail & sh->mask], fd, memory_order_relaxed);
    atomic_store(&sh->tail, tail + 1); /* seq_cst: ordered before the read of `posted` */
    return true;
}

/* Any thread: the oldest queued fd, or -1. The slot is read before the
 * head moves past it, so the producer cannot have reused it. */
static int ring_pop(struct kl_handoff_share *sh)
{
    uint32_t head = atomic_load_explicit(&sh->head, memory_order_acquire);
    for (;;) {
        if (head == atomic_load(&sh->tail))
            return -1;
        int fd = atomic_load_explicit(&sh->ring[head & sh->mask], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&sh->head, &head, head + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return fd;
    }
}

static void count(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

/* A socket into `set` on its thread, or refused at the limit (or with no
 * set), or closed: 0 adopted, 1 refused, -1 dropped (the set is stopping,
 * or the watch failed). */
static int join_set(struct kl_connset *set, kl_listener_refuse_fn refuse, void *arg, int fd)
{
    int rc = set ? kl_connset_add(set, fd, NULL) : -EAGAIN;
    if (rc == 0)
        return 0;
    if (rc == -EAGAIN && refuse)
        refuse(fd, arg);
    kl_close(fd);
    return rc == -EAGAIN ? 1 : -1;
}

/* The joined thread's message: adopt what is queued (close it all once the
 * reactor is gone, run by kl_reactor_destroy). */
static void on_handoff(struct kl_xmsg *msg)
{
    struct kl_handoff_share *sh = kl_container_of(msg, struct kl_handoff_share, msg);
    KL_ASSERT(atomic_load(&sh->inflight) > 0, "a handoff message ran that was not posted");
    atomic_store(&sh->posted, false); /* seq_cst: before the reads of `tail` */
    bool live = kl_reactor_active();
    int fd;
    while ((fd = ring_pop(sh)) >= 0) {
        int r = live ? join_set(sh->conns, sh->l->cfg.refuse, sh->arg, fd) : (close(fd), -1);
        count(r == 0 ? &sh->adopted : r > 0 ? &sh->refused : &sh->dropped);
    }
    atomic_fetch_sub_explicit(&sh->inflight, 1, memory_order_release); /* sh is not touched after */
}

/* Close what is queued for `sh` (its thread is gone, or the listener closes). */
static void drain_closing(struct kl_handoff_share *sh)
{
    int fd;
    while ((fd = ring_pop(sh)) >= 0) {
        close(fd);
        count(&sh->dropped);
    }
}

static int join(struct kl_listener *l, struct kl_connset *conns, void *arg, bool local)
{
    if (l->cfg.mode != KL_LISTENER_HANDOFF || conns == NULL || !kl_reactor_active())
        return -EINVAL;
    uint32_t i = atomic_fetch_add(&l->joined, 1);
    if (i >= l->cfg.handoff_workers)
        return -ENOSPC;
    struct kl_handoff_share *sh = &l->shares[i];
    sh->conns = conns;
    sh->arg = arg;
    sh->local = local;
    sh->ref = local ? NULL : kl_reactor_ref();
    sh->msg.fn = on_handoff;
    atomic_store_explicit(&sh->ready, true, memory_order_release);
    return 0;
}

int kl_listener_join(struct kl_listener *l, struct kl_connset *conns, void *arg)
{
    return join(l, conns, arg, false);
}

int kl_listener_share_stats(const struct kl_listener *l, uint32_t i,
                            struct kl_listener_share_stats *out)
{
    if (l->shares == NULL || i >= l->cfg.handoff_workers ||
        !atomic_load_explicit(&l->shares[i].ready, memory_order_acquire))
        return -ENOENT;
    struct kl_handoff_share *sh = &l->shares[i];
    *out = (struct kl_listener_share_stats){
        .adopted = atomic_load_explicit(&sh->adopted, memory_order_relaxed),
        .refused = atomic_load_explicit(&sh->refused, memory_order_relaxed),
        .dropped = atomic_load_explicit(&sh->dropped, memory_order_relaxed),
    };
    return 0;
}

int kl_listener_open(struct kl_listener *l, const struct kl_listener_config *cfg)
{
    init(l, cfg);
    bool handoff = cfg->mode == KL_LISTENER_HANDOFF;
    if (cfg->addrs == NULL || (cfg->conns == NULL && !handoff) ||
        (cfg->mode != KL_LISTENER_REUSEPORT && !handoff))
        return -EINVAL;
    if (handoff) {
        int rc = shares_alloc(l);
        if (rc < 0)
            return rc;
    }
    const char *p = cfg->addrs;
    for (;;) {
        p += strspn(p, ", \t");
        size_t len = strcspn(p, ", \t");
        if (len == 0)
            break;
        struct sockaddr_storage ss;
        socklen_t sslen;
        int rc = l->n == KL_LISTENER_MAX_ADDRS ? -EINVAL : resolve(p, len, &ss, &sslen);
        if (rc == 0)
            rc = bind_one(&l->acc[l->n], (struct sockaddr *)&ss, sslen, l->cfg.backlog,
                          cfg->mode == KL_LISTENER_REUSEPORT);
        if (rc < 0) {
            close_all(l);
            shares_free(l);
            return rc;
        }
        l->acc[l->n].l = l;
        l->n++;
        p += len;
    }
    if (l->n == 0)
        shares_free(l);
    return l->n > 0 ? 0 : -EINVAL;
}

int kl_listener_clone(struct kl_listener *l, const struct kl_listener *first,
                      struct kl_connset *conns)
{
    struct kl_listener_config cfg = first->cfg;
    cfg.conns = conns;
    init(l, &cfg);
    if (cfg.mode != KL_LISTENER_REUSEPORT)
        return -EINVAL;
    for (size_t i = 0; i < first->n; i++) {
        const struct kl_acceptor *f = &first->acc[i];
        int rc =
            bind_one(&l->acc[i], (const struct sockaddr *)&f->addr, f->addrlen, cfg.backlog, true);
        if (rc < 0) {
            close_all(l);
            return rc;
        }
        l->acc[i].l = l;
        l->n++;
    }
    return 0;
}

static bool out_of_resources(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

static bool connection_gone(int err)
{
    return err == -ECONNABORTED || err == -EPROTO || err == -EPERM || err == -EINTR ||
           err == -ENETDOWN || err == -ENOPROTOOPT || err == -EHOSTDOWN || err == -ENONET ||
           err == -EHOSTUNREACH || err == -EOPNOTSUPP || err == -ENETUNREACH;
}

/* Into this thread's set, or refused (or dropped) there; refused when the
 * thread serves no set (HANDOFF, when every queue was full). */
static void adopt_here(struct kl_listener *l, int fd)
{
    int r = join_set(l->cfg.conns, l->cfg.refuse, l->cfg.arg, fd);
    l->stats.accepted += r == 0;
    l->stats.refused += r > 0;
}

/* HANDOFF: the next share round-robin that takes fd; false if none does. */
static bool deal(struct kl_listener *l, int fd)
{
    uint32_t n = atomic_load_explicit(&l->joined, memory_order_acquire);
    n = n < l->cfg.handoff_workers ? n : l->cfg.handoff_workers;
    for (uint32_t k = 0; k < n; k++) {
        KL_ASSERT(l->next < n, "handoff cursor %u past %u shares", l->next, n);
        struct kl_handoff_share *sh = &l->shares[l->next];
        l->next = l->next + 1 < n ? l->next + 1 : 0;
        if (!atomic_load_explicit(&sh->ready, memory_order_acquire) || sh->gone)
            continue;
        if (sh->local) {
            adopt_here(l, fd);
            return true;
        }
        if (!ring_push(sh, fd))
            continue; /* that worker is behind: the next one */
        l->stats.handed_off++;
        if (!atomic_exchange(&sh->posted, true)) { /* seq_cst: after the push */
            atomic_fetch_add(&sh->inflight, 1);
            if (kl_reactor_post(sh->ref, &sh->msg) < 0) { /* its reactor is gone */
                atomic_fetch_sub(&sh->inflight, 1);
                sh->gone = true;
                drain_closing(sh); /* fd with them */
            }
        }
        return true;
    }
    return false;
}

/* A new connection: to a set, or refused at the limit. */
static void adopt(struct kl_listener *l, struct kl_acceptor *a, int fd)
{
    if (a->addr.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (l->shares == NULL || !deal(l, fd))
        adopt_here(l, fd);
}

/* The pause after accept error `err` (0: none), counting it. */
static uint64_t pause_after(struct kl_listener *l, int err, uint64_t *backoff)
{
    if (err >= 0 || connection_gone(err)) {
        *backoff = 0;
        return 0;
    }
    if (out_of_resources(err)) {
        *backoff = *backoff == 0 ? MS : *backoff * 2;
        if (*backoff > l->cfg.backoff_max_ns)
            *backoff = l->cfg.backoff_max_ns;
        l->stats.backoffs++;
        return *backoff;
    }
    l->stats.errors++;
    KL_WARN("listener: accept: %d", err);
    return 10 * MS;
}

/* io_uring: the accept watch's callback, in the loop. */
static void on_accept(struct kl_watch *w, int32_t res)
{
    struct kl_acceptor *a = kl_container_of(w, struct kl_acceptor, watch);
    if (res >= 0)
        adopt(a->l, a, res);
    else if (w->armed)
        pause_after(a->l, res, &(uint64_t){0}); /* counted; the accept goes on */
    if (!w->armed) { /* it ended: the fiber backs off if need be and re-arms */
        a->err = res < 0 ? res : 0;
        kl_fiber_resume(a->fiber, 0);
    }
}

/* io_uring: park while the multishot accept works; re-arm when it ends. */
static void accept_multishot(struct kl_acceptor *a)
{
    uint64_t backoff = 0;
    while (!kl_fiber_cancelled()) {
        if (!a->watch.armed) {
            uint64_t pause = pause_after(a->l, a->err, &backoff);
            if (pause && kl_sleep(pause) == -ECANCELED)
                break;
            if (kl_watch_arm(&a->watch) < 0 && kl_sleep(10 * MS) == -ECANCELED)
                break;
            continue;
        }
        kl_fiber_suspend("acceptor", KL_FIBER_FOREVER);
    }
    kl_watch_stop(&a->watch);
}

static intptr_t acceptor(void *arg)
{
    struct kl_acceptor *a = arg;
    struct kl_listener *l = a->l;
    if (kl_watch_accept_start(&a->watch, a->fd, on_accept) == 0) {
        accept_multishot(a);
    } else {
        uint64_t backoff = 0;
        while (!kl_fiber_cancelled()) {
            int fd = kl_accept(a->fd, NULL, NULL, 0);
            if (fd == -ECANCELED)
                break;
            if (fd >= 0) {
                backoff = 0;
                adopt(l, a, fd);
                continue;
            }
            uint64_t pause = pause_after(l, fd, &backoff);
            if (pause && kl_sleep(pause) == -ECANCELED)
                break;
        }
    }
    a->fiber = KL_FIBER_ID_NONE;
    if (--l->running == 0 && kl_fiber_id_raw(l->stopper) != 0)
        kl_fiber_resume(l->stopper, 0);
    return 0;
}

int kl_listener_start(struct kl_listener *l)
{
    if (l->shares && l->cfg.conns && !l->self_joined) {
        int rc = join(l, l->cfg.conns, l->cfg.arg, true);
        if (rc < 0)
            return rc;
        l->self_joined = true;
    }
    for (size_t i = 0; i < l->n; i++) {
        struct kl_acceptor *a = &l->acc[i];
        if (kl_fiber_id_raw(a->fiber) != 0)
            continue;
        int rc = kl_fiber_spawn(&a->fiber, "acceptor", acceptor, a, KL_FIBER_PRIO_HIGH);
        if (rc < 0) {
            kl_listener_stop(l);
            return rc;
        }
        kl_fiber_detach(a->fiber);
        l->running++;
    }
    return 0;
}

int kl_listener_stop(struct kl_listener *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (kl_fiber_id_raw(l->acc[i].fiber) != 0)
            kl_fiber_cancel(l->acc[i].fiber);
    if (kl_fiber_id_raw(kl_fiber_self()) == 0)
        return 0; /* main context: they end on their next turn */
    l->stopper = kl_fiber_self();
    int rc = 0;
    while (l->running > 0 && rc != -ECANCELED)
        rc = kl_fiber_suspend("listener-stop", KL_FIBER_FOREVER);
    l->stopper = KL_FIBER_ID_NONE;
    return rc == -ECANCELED ? rc : 0;
}

int kl_listener_close(struct kl_listener *l)
{
    if (l->running > 0)
        return -EBUSY;
    if (l->shares) {
        for (uint32_t i = 0; i < l->cfg.handoff_workers; i++)
            if (atomic_load_explicit(&l->shares[i].inflight, memory_order_acquire) != 0)
                return -EBUSY;
        for (uint32_t i = 0; i < l->cfg.handoff_workers; i++) {
            struct kl_handoff_share *sh = &l->shares[i];
            drain_closing(sh);
            if (sh->ref)
                kl_reactor_unref(sh->ref);
        }
        shares_free(l);
    }
    close_all(l);
    return 0;
}

uint16_t kl_listener_port(const struct kl_listener *l, size_t i)
{
    if (i >= l->n)
        return 0;
    const struct sockaddr_storage *ss = &l->acc[i].addr;
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}
