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
 * and retried after 10 ms. On io_uring each accept is one SQE that rides
 * with the loop's submission (multishot accept is not used yet).
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

static intptr_t acceptor(void *arg)
{
    struct kl_acceptor *a = arg;
    struct kl_listener *l = a->l;
    uint64_t backoff = 0;
    while (!kl_fiber_cancelled()) {
        int fd = kl_accept(a->fd, NULL, NULL, 0);
        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            uint64_t pause = 0;
            if (out_of_resources(fd)) {
                backoff = backoff == 0 ? MS : backoff * 2;
                if (backoff > l->cfg.backoff_max_ns)
                    backoff = l->cfg.backoff_max_ns;
                l->stats.backoffs++;
                pause = backoff;
            } else if (!connection_gone(fd)) {
                l->stats.errors++;
                KL_WARN("listener: accept: %d", fd);
                pause = 10 * MS;
            }
            if (pause && kl_sleep(pause) == -ECANCELED)
                break;
            continue;
        }
        backoff = 0;
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
            continue;
        }
        l->stats.accepted++;
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
