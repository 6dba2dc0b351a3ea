/* TCP listeners feeding a connection set (keel/listener.h).
 *
 * One socket per address, bound with SO_REUSEADDR and SO_REUSEPORT (IPv6
 * sockets are IPV6_V6ONLY, so "[::]:P" and "0.0.0.0:P" can both be bound),
 * one acceptor fiber per socket. A worker per thread binds the same
 * addresses: the kernel balances new connections across the sockets of a
 * port, so no acceptor hands connections to another thread. (The other
 * design, one acceptor posting fds through the reactors' inboxes, costs a
 * cross-thread post and a wake-up per connection and makes the acceptor's
 * thread a bottleneck; SO_REUSEPORT costs nothing per connection.)
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keel/io.h"
#include "keel/log.h"
#include "keel/reactor.h"

#define MS 1000000ull

static void close_all(struct kl_listener *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->acc[i].fd >= 0)
            kl_close(l->acc[i].fd);
    l->n = 0;
}

/* Bind and listen on one resolved address; the fd or -errno. */
static int bind_one(struct kl_acceptor *a, const struct sockaddr *sa, socklen_t len, int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
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
    for (size_t i = 0; i < KL_LISTENER_MAX_ADDRS; i++)
        l->acc[i].fd = -1;
}

int kl_listener_open(struct kl_listener *l, const struct kl_listener_config *cfg)
{
    init(l, cfg);
    if (cfg->addrs == NULL || cfg->conns == NULL)
        return -EINVAL;
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
            rc = bind_one(&l->acc[l->n], (struct sockaddr *)&ss, sslen, l->cfg.backlog);
        if (rc < 0) {
            close_all(l);
            return rc;
        }
        l->acc[l->n].l = l;
        l->n++;
        p += len;
    }
    return l->n > 0 ? 0 : -EINVAL;
}

int kl_listener_clone(struct kl_listener *l, const struct kl_listener *first,
                      struct kl_connset *conns)
{
    struct kl_listener_config cfg = first->cfg;
    cfg.conns = conns;
    init(l, &cfg);
    for (size_t i = 0; i < first->n; i++) {
        const struct kl_acceptor *f = &first->acc[i];
        int rc = bind_one(&l->acc[i], (const struct sockaddr *)&f->addr, f->addrlen, cfg.backlog);
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

/* A new connection: to the set, or refused at the limit. */
static void adopt(struct kl_listener *l, struct kl_acceptor *a, int fd)
{
    if (a->addr.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int rc = kl_connset_add(l->cfg.conns, fd, NULL);
    if (rc < 0) {
        if (rc == -EAGAIN && l->cfg.refuse)
            l->cfg.refuse(fd, l->cfg.arg);
        l->stats.refused += rc == -EAGAIN;
        kl_close(fd);
        return;
    }
    l->stats.accepted++;
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
