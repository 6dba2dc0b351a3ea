/* conns.c: `stats conns` (see conns.h).
 *
 * The asking fiber posts one job to every worker (keel/workers.h); each job
 * lists its worker's sockets into its own text and posts a note back to the
 * asker's worker, which counts it on a semaphore the asker waits on. The
 * report is shared by a reference count: the asker and every job in flight
 * hold one, and whoever lets go last frees it, so an asker that stops
 * waiting (after a second) leaves nothing dangling. A post that fails (a
 * worker stopping) just leaves that worker out.
 */
#define _GNU_SOURCE
#include "conns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "keel/clock.h"
#include "keel/sync.h"

#define WAIT_NS 1000000000ull

struct report {
    atomic_uint refs;
    struct kl_sem done; /* the asker's thread only */
    struct kl_workers *group;
    uint32_t asker;
    keeld_conns_list_fn list;
    void *arg;
    uint32_t n;
    struct job {
        struct report *r;
        uint32_t index;
        struct keeld_text out;
    } jobs[];
};

static void report_put(struct report *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    for (uint32_t i = 0; i < r->n; i++)
        keeld_text_free(&r->jobs[i].out);
    free(r);
}

/* On the asker's thread: one more worker is done. */
static void note_done(struct kl_worker *w, void *arg)
{
    (void)w;
    struct report *r = arg;
    kl_sem_post(&r->done);
    report_put(r);
}

/* On worker j->index's thread: list its sockets, then tell the asker. */
static void list_worker(struct kl_worker *w, void *arg)
{
    (void)w;
    struct job *j = arg;
    struct report *r = j->r;
    r->list(j->index, &j->out, r->arg);
    if (kl_workers_post(r->group, r->asker, note_done, r) < 0)
        report_put(r); /* the asker's worker is stopping: nobody waits */
}

/* Emit the "name value" lines of one worker's text. */
static void emit_lines(const struct keeld_text *t, keeld_stat_emit emit, void *sink)
{
    const char *p = t->buf, *end = t->buf + t->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *sp = memchr(p, ' ', (size_t)(nl - p));
        char name[64], value[128];
        snprintf(name, sizeof name, "%.*s", (int)(sp - p), p);
        snprintf(value, sizeof value, "%.*s", (int)(nl - sp - 1), sp + 1);
        emit(sink, KEELD_STAT_INFO, name, value);
        p = nl + 1;
    }
}

int keeld_conns_report(struct kl_workers *group, keeld_conns_list_fn list, void *arg,
                       keeld_stat_emit emit, void *sink)
{
    uint32_t n = kl_workers_count(group);
    struct report *r = calloc(1, sizeof *r + n * sizeof r->jobs[0]);
    if (r == NULL)
        return -ENOMEM;
    atomic_init(&r->refs, 1);
    kl_sem_init(&r->done, 0);
    r->group = group;
    r->asker = kl_worker_index(kl_worker_self());
    r->list = list;
    r->arg = arg;
    r->n = n;
    uint32_t posted = 0;
    for (uint32_t i = 0; i < n; i++) {
        r->jobs[i] = (struct job){.r = r, .index = i};
        atomic_fetch_add(&r->refs, 1);
        if (kl_workers_post(group, i, list_worker, &r->jobs[i]) < 0)
            atomic_fetch_sub(&r->refs, 1); /* stopping: left out */
        else
            posted++;
    }
    uint64_t deadline = kl_now() + WAIT_NS;
    uint32_t done = 0;
    for (; done < posted; done++) {
        uint64_t now = kl_now();
        if (now >= deadline || kl_sem_wait(&r->done, deadline - now) != 0)
            break;
    }
    if (done == posted) /* every job is done with its text */
        for (uint32_t i = 0; i < n; i++)
            emit_lines(&r->jobs[i].out, emit, sink);
    report_put(r);
    return 0;
}

/* "tcp:127.0.0.1:11211" or "tcp6:[::1]:11211", as memcached writes them. */
static void format_addr(char *buf, size_t len, const struct sockaddr_storage *a)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "tcp:%s:%u", host, ntohs(in->sin_port));
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "tcp6:[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "unknown");
    }
}

static void addr_line(struct keeld_text *out, int fd, const char *key, bool peer)
{
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    int rc = peer ? getpeername(fd, (struct sockaddr *)&a, &alen)
                  : getsockname(fd, (struct sockaddr *)&a, &alen);
    if (rc != 0)
        return; /* the peer is gone: memcached leaves the line out too */
    char text[INET6_ADDRSTRLEN + 16];
    format_addr(text, sizeof text, &a);
    keeld_text_printf(out, "%d:%s %s\n", fd, key, text);
}

void keeld_conns_listening(struct keeld_text *out, int fd, uint64_t up_s)
{
    addr_line(out, fd, "addr", false);
    keeld_text_printf(out, "%d:state conn_listening\n%d:secs_since_last_cmd %llu\n", fd, fd,
                      (unsigned long long)up_s);
}

void keeld_conns_connection(struct keeld_text *out, int fd, bool busy, uint64_t idle_s)
{
    addr_line(out, fd, "addr", true);
    addr_line(out, fd, "listen_addr", false);
    keeld_text_printf(out, "%d:state %s\n%d:secs_since_last_cmd %llu\n", fd,
                      busy ? "conn_parse_cmd" : "conn_read", fd, (unsigned long long)idle_s);
}
