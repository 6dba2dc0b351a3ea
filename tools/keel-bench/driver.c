/* keel-bench's connection driver: a sender and a receiver fiber per connection.
 *
 * The sender composes requests into one batch and sends it with one
 * kl_writev (command lines formatted into a buffer, values pointed at the
 * fixed pattern, never copied), appending each request to the connection's
 * ring of requests in flight. Closed loop, it refills the ring up to
 * --pipeline as soon as replies free room and times each request from its
 * actual send. Open loop, request i of a connection is due at a fixed time
 * (start + phase + i * connections / rate); every due request goes out in
 * the next batch and is timed from when it was due, so a server that stalls
 * shows its stall in the latencies while the schedule keeps its rate (no
 * coordinated omission); a request due before the end is sent even when the
 * generator itself woke up after it. Closed loop one request at a time, one fiber does
 * both: send, then receive the reply. The receiver reads replies (kl_recv), parses them
 * with the protocol's kl_mc_parse_reply and matches each to the ring's
 * oldest request: replies on one connection come in request order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "keel/assert.h"
#include "keel/clock.h"
#include "keel/io.h"
#include "keel/memcache.h"
#include "keel/reactor.h"
#include "keel/sync.h"

#define MS        1000000ull
#define HDR_FLUSH (64 * 1024)                           /* send once the lines reach this */
#define HDR_CAP   (HDR_FLUSH + KB_MGET_MAX * 256 + 512) /* room for one more request */
#define IOV_BATCH 1024

struct conn {
    struct kb_run *run;
    struct kb_thread *t;
    kl_counter *ctr;
    uint32_t index; /* among all connections */
    int fd;
    bool dead;        /* the connection failed: stop both fibers */
    bool sender_done; /* nothing more will be sent */
    struct kb_rng rng;
    uint32_t *expect; /* verify: every key's state (this connection's keys only touched) */
    uint32_t next_ver;
    /* requests in flight: ring[(head + i) % cap] for i < count */
    struct kb_req *ring;
    uint32_t *keys; /* the ring slots' keys and expectations */
    uint32_t cap, head, count, window;
    struct kl_signal room; /* the receiver freed ring slots */
    /* the batch being composed */
    char *hdr;
    size_t hdr_len, hdr_cut; /* bytes formatted; start of the text not yet in an iovec */
    struct iovec *iov;
    int niov;
    uint32_t batch_first, batch_n;
    /* received bytes */
    char *rbuf;
    size_t rcap, rlen;
};

static inline char *put_u32(char *p, uint32_t v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static inline char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Close the text gathered so far into an iovec. */
static void cut_text(struct conn *c)
{
    if (c->hdr_len > c->hdr_cut) {
        c->iov[c->niov++] = (struct iovec){c->hdr + c->hdr_cut, c->hdr_len - c->hdr_cut};
        c->hdr_cut = c->hdr_len;
    }
}

/* ---- composing ---- */

static struct kb_req *ring_push(struct conn *c)
{
    KL_ASSERT(c->count < c->cap, "ring of %u overfull", c->cap);
    struct kb_req *q = &c->ring[(c->head + c->count) % c->cap];
    c->count++;
    c->batch_n++;
    return q;
}

static char *put_key(struct conn *c, char *p, uint32_t k)
{
    return p + kb_key_format(&c->run->opt, k, p);
}

/* The connection's next version, for a store or a delete (>= 2, rising). */
static uint32_t next_version(struct conn *c)
{
    uint32_t ver = c->next_ver++;
    if (c->next_ver < 2)
        c->next_ver = 2;
    return ver;
}

/* Append a store (set or ms) of key k: line, value head, pattern, "\r\n". */
static void compose_store(struct conn *c, struct kb_req *q, enum kb_cmd cmd, uint32_t k)
{
    const struct kb_run *run = c->run;
    uint32_t ver = q->ver = next_version(c);
    uint32_t len = kb_value_len(run->opt.value_min, run->opt.value_max, k);
    char *p = c->hdr + c->hdr_len;
    if (cmd == KB_SET) {
        p = put_str(p, "set ", 4);
        p = put_key(c, p, k);
        p = put_str(p, " 0 0 ", 5);
    } else {
        p = put_str(p, "ms ", 3);
        p = put_key(c, p, k);
        *p++ = ' ';
    }
    p = put_u32(p, len);
    p = put_str(p, "\r\n", 2);
    char head[KB_VALUE_HEAD];
    uint32_t hl = kb_value_head(k, run->run_tag, ver, head);
    if (hl > len)
        hl = len;
    p = put_str(p, head, hl);
    c->hdr_len = (size_t)(p - c->hdr);
    if (len > hl) {
        cut_text(c);
        const char *pat = kb_pattern + kb_pattern_offset(k, run->run_tag, ver);
        c->iov[c->niov++] = (struct iovec){(void *)pat, len - hl};
    }
    p = c->hdr + c->hdr_len;
    p = put_str(p, "\r\n", 2);
    c->hdr_len = (size_t)(p - c->hdr);
    q->expect[0] = ver;
    if (run->opt.verify)
        c->expect[k] = ver;
}

/* Append one request of `cmd`; key < 0 picks keys by the distribution. */
static void compose(struct conn *c, enum kb_cmd cmd, int64_t key, uint64_t t0)
{
    const struct kb_run *run = c->run;
    struct kb_req *q = ring_push(c);
    q->t0 = t0;
    q->cmd = (uint8_t)cmd;
    q->nkeys = cmd == KB_MGET ? (uint8_t)run->opt.mget_keys : 1;
    q->done = 0;
    for (uint32_t i = 0; i < q->nkeys; i++) {
        q->keys[i] = key >= 0 ? (uint32_t)key : kb_pick_key(run, &c->rng, c->index);
        q->expect[i] = run->opt.verify ? c->expect[q->keys[i]] : KB_EXPECT_UNKNOWN;
    }
    uint32_t k = q->keys[0];
    char *p = c->hdr + c->hdr_len;
    switch (cmd) {
    case KB_GET:
    case KB_MGET:
        p = put_str(p, "get", 3);
        for (uint32_t i = 0; i < q->nkeys; i++) {
            *p++ = ' ';
            p = put_key(c, p, q->keys[i]);
        }
        p = put_str(p, "\r\n", 2);
        break;
    case KB_MG:
        p = put_str(p, "mg ", 3);
        p = put_key(c, p, k);
        p = put_str(p, " v\r\n", 4);
        break;
    case KB_DELETE:
        p = put_str(p, "delete ", 7);
        p = put_key(c, p, k);
        p = put_str(p, "\r\n", 2);
        q->ver = next_version(c);
        if (run->opt.verify)
            c->expect[k] = KB_EXPECT_DELETED;
        if (run->state) /* a miss is right from now on, if the server dies */
            kb_state_record(c->run, c->t, 'd', k, q->ver);
        break;
    case KB_SET:
    case KB_MS: compose_store(c, q, cmd, k); return;
    default: KL_ASSERT(false, "command %d", (int)cmd);
    }
    c->hdr_len = (size_t)(p - c->hdr);
}

static bool batch_full(const struct conn *c)
{
    return c->hdr_len >= HDR_FLUSH || c->niov + 4 > IOV_BATCH;
}

/* Send the batch: every iovec, in as many writev calls as it takes. */
static int flush(struct conn *c)
{
    cut_text(c);
    struct iovec *iov = c->iov;
    int n = c->niov;
    while (n > 0) {
        ssize_t w = kl_writev(c->fd, iov, n, 0);
        if (w < 0)
            return (int)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    c->niov = 0;
    c->hdr_len = c->hdr_cut = 0;
    c->batch_n = 0;
    return 0;
}

static void batch_begin(struct conn *c)
{
    c->batch_first = c->count;
    c->batch_n = 0;
}

/* ---- matching replies ---- */

static bool measured(const struct kb_run *run, uint64_t t0)
{
    return t0 >= run->measure_ns && t0 < kb_end(run);
}

static void hit(struct conn *c, const struct kb_req *q, uint32_t i, const struct kl_mc_str *val)
{
    kl_counter_add(&c->ctr[KB_C_HITS], 1);
    if (measured(c->run, q->t0))
        c->t->hits[q->cmd]++;
    int bad = 0;
    if (c->run->opt.check)
        bad = kb_state_check_value(c->run, c->t, q->keys[i], val->p, val->len);
    else if (c->run->opt.verify)
        bad = kb_verify_value(c->run, c->t, q->keys[i], q->expect[i], val->p, val->len);
    if (bad < 0)
        kl_counter_add(&c->ctr[KB_C_ERRORS], 1);
}

static void miss(struct conn *c, const struct kb_req *q, uint32_t i)
{
    kl_counter_add(&c->ctr[KB_C_MISSES], 1);
    if (measured(c->run, q->t0))
        c->t->misses[q->cmd]++;
    int bad = 0;
    if (c->run->opt.check)
        bad = kb_state_check_miss(c->run, c->t, q->keys[i]);
    else if (c->run->opt.verify)
        bad = kb_verify_miss(c->t, q->keys[i], q->expect[i]);
    if (bad < 0)
        kl_counter_add(&c->ctr[KB_C_ERRORS], 1);
}

static void req_error(struct conn *c, enum kb_err kind, const struct kb_req *q, const char *what)
{
    uint32_t i = q->done < q->nkeys ? q->done : q->nkeys - 1u;
    kl_counter_add(&c->ctr[KB_C_ERRORS], 1);
    kb_error(c->t, kind, "%s to %s of key %u", what, kb_cmd_names[q->cmd], q->keys[i]);
}

/* An error reply: named with the server's own message ("SERVER_ERROR out of space"). */
static void error_reply(struct conn *c, const struct kb_req *q, const struct kl_mc_reply *r)
{
    const char *code = r->type == KL_MC_REPLY_SERVER_ERROR   ? "SERVER_ERROR"
                       : r->type == KL_MC_REPLY_CLIENT_ERROR ? "CLIENT_ERROR"
                                                             : "ERROR";
    char what[96];
    int n = (int)(r->value.len < 64 ? r->value.len : 64);
    snprintf(what, sizeof what, "%s%s%.*s", code, n ? " " : "", n, r->value.p);
    req_error(c, KB_E_SERVER, q, what);
}

static void complete(struct conn *c, uint64_t now)
{
    struct kb_req *q = &c->ring[c->head];
    uint64_t lat = now > q->t0 ? now - q->t0 : 0;
    kl_counter_add(&c->t->coarse[kb_coarse_bucket(lat)], 1);
    kl_counter_add(&c->ctr[KB_C_REQUESTS], 1);
    if (measured(c->run, q->t0)) {
        c->t->requests[q->cmd]++;
        kl_hist_record(c->t->hist[q->cmd], lat);
    }
    c->head = (c->head + 1) % c->cap;
    c->count--;
}

/* A store failed: what the server holds for the key is no longer known. */
static void store_failed(struct conn *c, const struct kb_req *q)
{
    if (c->run->opt.verify && c->expect[q->keys[0]] == q->expect[0])
        c->expect[q->keys[0]] = KB_EXPECT_UNKNOWN;
}

/* One reply unit against the oldest request in flight; -1 when the stream
 * cannot be followed any more. */
static int on_reply(struct conn *c, const struct kl_mc_reply *r, uint64_t now)
{
    if (c->count == 0) {
        kl_counter_add(&c->ctr[KB_C_ERRORS], 1);
        kb_error(c->t, KB_E_PROTOCOL, "a reply with no request in flight (type %u)", r->type);
        return -1;
    }
    struct kb_req *q = &c->ring[c->head];
    uint8_t t = r->type;
    if (t == KL_MC_REPLY_ERROR || t == KL_MC_REPLY_CLIENT_ERROR || t == KL_MC_REPLY_SERVER_ERROR) {
        error_reply(c, q, r);
        if (q->cmd == KB_SET || q->cmd == KB_MS)
            store_failed(c, q);
        complete(c, now);
        return 0;
    }
    switch (q->cmd) {
    case KB_GET:
    case KB_MGET:
        if (t == KL_MC_REPLY_VALUE) {
            int64_t k = kb_key_parse(&c->run->opt, r->key.p, r->key.len);
            uint32_t i = q->done;
            while (i < q->nkeys && (int64_t)q->keys[i] != k)
                i++;
            if (i == q->nkeys) {
                req_error(c, KB_E_PROTOCOL, q, "VALUE of a key not asked for");
                return -1;
            }
            for (; q->done < i; q->done++)
                miss(c, q, q->done);
            hit(c, q, i, &r->value);
            q->done++;
            return 0;
        }
        if (t != KL_MC_REPLY_END) {
            req_error(c, KB_E_PROTOCOL, q, "unexpected reply");
            return -1;
        }
        for (; q->done < q->nkeys; q->done++)
            miss(c, q, q->done);
        break;
    case KB_MG:
        if (t == KL_MC_REPLY_VA)
            hit(c, q, 0, &r->value);
        else if (t == KL_MC_REPLY_EN)
            miss(c, q, 0);
        else {
            req_error(c, KB_E_PROTOCOL, q, "unexpected reply");
            return -1;
        }
        break;
    case KB_SET:
    case KB_MS: {
        uint8_t ok = q->cmd == KB_SET ? KL_MC_REPLY_STORED : KL_MC_REPLY_HD;
        uint8_t no = q->cmd == KB_SET ? KL_MC_REPLY_NOT_STORED : KL_MC_REPLY_NS;
        if (t == no) {
            req_error(c, KB_E_NOT_STORED, q, "NOT_STORED");
            store_failed(c, q);
        } else if (t != ok) {
            req_error(c, KB_E_PROTOCOL, q, "unexpected reply");
            return -1;
        } else if (c->run->state) {
            kb_state_record(c->run, c->t, 'S', q->keys[0], q->ver);
        }
        break;
    }
    case KB_DELETE:
        if (t == KL_MC_REPLY_NOT_FOUND) {
            if (c->run->opt.verify && q->expect[0] >= 2)
                req_error(c, KB_E_MISSING, q, "NOT_FOUND (a stored key)");
        } else if (t != KL_MC_REPLY_DELETED) {
            req_error(c, KB_E_PROTOCOL, q, "unexpected reply");
            return -1;
        }
        if (c->run->state) /* either way, the key is gone now */
            kb_state_record(c->run, c->t, 'D', q->keys[0], q->ver);
        break;
    default: KL_ASSERT(false, "command %u in flight", q->cmd);
    }
    complete(c, now);
    return 0;
}

/* Count the requests still in flight as lost, of `kind`. */
static void lose_all(struct conn *c, enum kb_err kind, const char *why)
{
    while (c->count > 0) {
        struct kb_req *q = &c->ring[c->head];
        req_error(c, kind, q, why);
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
}

/* Read once and match every complete reply; 0 when receiving is over (the
 * sender is done and nothing is in flight, or the connection failed). */
static int receive_once(struct conn *c)
{
    const struct kb_run *run = c->run;
    if (c->dead || (c->sender_done && c->count == 0))
        return 0;
    uint64_t timeout = 100 * MS, now = kl_now();
    if (c->sender_done || now >= kb_end(run)) {
        if (now >= kb_drain(run)) {
            lose_all(c, KB_E_TIMEOUT, "no reply before the drain time ran out");
            c->dead = true;
            return 0;
        }
        timeout = kb_drain(run) - now < timeout ? kb_drain(run) - now : timeout;
    }
    if (c->rlen == c->rcap) {
        kl_counter_add(&c->ctr[KB_C_ERRORS], 1);
        kb_error(c->t, KB_E_PROTOCOL, "a reply larger than %zu bytes", c->rcap);
        lose_all(c, KB_E_PROTOCOL, "stream lost after a bad reply");
        c->dead = true;
        return 0;
    }
    ssize_t n = kl_recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0, timeout);
    if (n == -ETIMEDOUT)
        return 1;
    if (n <= 0) {
        lose_all(c, KB_E_CONNECTION, n == 0 ? "connection closed" : strerror((int)-n));
        c->dead = true;
        return 0;
    }
    c->rlen += (size_t)n;
    now = kl_now();
    size_t off = 0;
    uint32_t before = c->count;
    for (;;) {
        struct kl_mc_reply r;
        int rc = kl_mc_parse_reply(c->rbuf + off, c->rlen - off, &r);
        if (rc == -EAGAIN)
            break;
        if (rc < 0 || on_reply(c, &r, now) < 0) {
            if (rc < 0) {
                kl_counter_add(&c->ctr[KB_C_ERRORS], 1);
                kb_error(c->t, KB_E_PROTOCOL, "a reply that does not parse");
            }
            lose_all(c, KB_E_PROTOCOL, "stream lost after a bad reply");
            c->dead = true;
            return 0;
        }
        off += r.consumed;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if (c->count < before)
        kl_signal_notify_all(&c->room);
    return 1;
}

static intptr_t receiver(void *arg)
{
    struct conn *c = arg;
    while (receive_once(c))
        ;
    c->dead = true; /* the sender stops if it still runs */
    kl_signal_notify_all(&c->room);
    return 0;
}

/* ---- sending ---- */

static int wait_room(struct conn *c, uint32_t need)
{
    while (!c->dead && c->window - c->count < need)
        kl_signal_wait(&c->room, 10 * MS);
    return c->dead ? -EPIPE : 0;
}

static int send_closed(struct conn *c)
{
    const struct kb_run *run = c->run;
    for (;;) {
        if (wait_room(c, 1) < 0)
            return -EPIPE;
        uint64_t now = kl_now();
        if (now >= kb_end(run))
            return 0;
        batch_begin(c);
        while (c->count < c->window && !batch_full(c))
            compose(c, kb_pick_cmd(&run->opt, &c->rng), -1, 0);
        now = kl_now();
        for (uint32_t i = 0; i < c->batch_n; i++)
            c->ring[(c->head + c->batch_first + i) % c->cap].t0 = now;
        if (flush(c) < 0)
            return -EPIPE;
    }
}

/* Closed loop, one request at a time: this fiber sends and receives (no
 * second fiber, no hand-off between them). */
static int send_serial(struct conn *c)
{
    const struct kb_run *run = c->run;
    while (!c->dead && kl_now() < kb_end(run)) {
        batch_begin(c);
        compose(c, kb_pick_cmd(&run->opt, &c->rng), -1, 0);
        c->ring[c->head].t0 = kl_now();
        if (flush(c) < 0) {
            lose_all(c, KB_E_CONNECTION, "send failed");
            c->dead = true;
            break;
        }
        while (c->count > 0 && receive_once(c))
            ;
    }
    c->sender_done = true;
    return c->dead ? -EPIPE : 0;
}

static int send_open(struct conn *c)
{
    const struct kb_run *run = c->run;
    double interval = (double)run->total_conns * 1e9 / run->opt.rate;
    double phase = interval * c->index / run->total_conns;
    uint64_t i = 0;
    for (;;) {
        if (c->dead)
            return -EPIPE;
        uint64_t due = run->start_ns + (uint64_t)(phase + interval * (double)i);
        uint64_t now = kl_now();
        if (due >= kb_end(run)) /* one due before the end goes out, however late */
            return 0;
        if (due > now) {
            kl_sleep(due - now);
            continue;
        }
        if (c->count == c->window) {
            kl_signal_wait(&c->room, 10 * MS);
            continue;
        }
        batch_begin(c);
        uint64_t first = due;
        while (due <= now && due < kb_end(run) && c->count < c->window && !batch_full(c)) {
            compose(c, kb_pick_cmd(&run->opt, &c->rng), -1, due);
            i++;
            due = run->start_ns + (uint64_t)(phase + interval * (double)i);
        }
        if (measured(run, first))
            kl_hist_record(c->t->lag, kl_now() - first);
        if (flush(c) < 0)
            return -EPIPE;
    }
}

/* --load: store each of this connection's keys once; with --verify read
 * each back. --check: only read each. */
static int send_load(struct conn *c)
{
    const struct kb_run *run = c->run;
    int first = run->opt.check ? 1 : 0, last = run->opt.verify || run->opt.check ? 1 : 0;
    for (int pass = first; pass <= last; pass++) {
        uint64_t k = c->index;
        while (k < run->opt.keys && kl_now() < kb_end(run)) {
            if (wait_room(c, 1) < 0)
                return -EPIPE;
            batch_begin(c);
            uint64_t now = kl_now();
            while (k < run->opt.keys && c->count < c->window && !batch_full(c)) {
                compose(c, pass == 0 ? KB_SET : KB_GET, (int64_t)k, now);
                k += run->total_conns;
            }
            if (flush(c) < 0)
                return -EPIPE;
        }
        while (!c->dead && c->count > 0) /* the reads must see every store */
            kl_signal_wait(&c->room, 10 * MS);
    }
    return c->dead ? -EPIPE : 0;
}

static int conn_setup(struct conn *c)
{
    const struct kb_options *opt = &c->run->opt;
    const struct sockaddr_in *sa = &opt->servers[c->index % opt->nservers];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = kl_connect(c->fd, (const struct sockaddr *)sa, sizeof *sa, 5000 * MS);
    if (rc < 0) {
        kl_close(c->fd);
        c->fd = -1;
    }
    return rc;
}

static intptr_t conn_main(void *arg)
{
    struct conn *c = arg;
    const struct kb_run *run = c->run;
    int rc = conn_setup(c);
    if (rc < 0) {
        kl_counter_add(&c->ctr[KB_C_ERRORS], 1);
        kb_error(c->t, KB_E_CONNECTION, "connect to %s: %s",
                 run->opt.server_names[c->index % run->opt.nservers], strerror(-rc));
        return rc;
    }
    uint64_t now = kl_now();
    bool sweep = run->opt.load || run->opt.check; /* every key once, in order */
    if (!sweep && run->opt.rate == 0 && run->opt.pipeline == 1) {
        if (run->start_ns > now)
            kl_sleep(run->start_ns - now);
        send_serial(c);
        kl_close(c->fd);
        return 0;
    }
    kl_fiber_id rid;
    rc = kl_fiber_spawn(&rid, "kb-recv", receiver, c, KL_FIBER_PRIO_NORMAL);
    KL_ASSERT(rc == 0, "spawn a receiver: %d (fiber slots are sized for it)", rc);
    if (run->start_ns > now)
        kl_sleep(run->start_ns - now);
    if (sweep)
        send_load(c);
    else if (run->opt.rate > 0)
        send_open(c);
    else
        send_closed(c);
    c->sender_done = true;
    kl_fiber_join(rid, NULL);
    kl_close(c->fd);
    return 0;
}

static void conn_free(struct conn *c)
{
    free(c->ring);
    free(c->keys);
    free(c->hdr);
    free(c->iov);
    free(c->rbuf);
    free(c);
}

static struct conn *conn_new(struct kb_run *run, struct kb_thread *t, kl_counter *ctr,
                             uint32_t index, uint32_t *expect)
{
    const struct kb_options *opt = &run->opt;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->run = run;
    c->t = t;
    c->ctr = ctr;
    c->index = index;
    c->fd = -1;
    c->expect = expect;
    c->next_ver = 2;
    kb_rng_seed(&c->rng, opt->seed * 0x100000001b3ull + index);
    c->window = opt->pipeline;
    if (opt->rate > 0 && c->window < KB_OPEN_WINDOW)
        c->window = KB_OPEN_WINDOW;
    c->cap = c->window;
    kl_signal_init(&c->room);
    c->ring = calloc(c->cap, sizeof *c->ring);
    uint32_t per = opt->mix[KB_MGET] ? opt->mget_keys : 1; /* keys per request, at most */
    c->keys = calloc((size_t)c->cap * per * 2, sizeof *c->keys);
    for (uint32_t i = 0; c->ring && c->keys && i < c->cap; i++) {
        c->ring[i].keys = c->keys + (size_t)i * per * 2;
        c->ring[i].expect = c->ring[i].keys + per;
    }
    c->hdr = malloc(HDR_CAP);
    c->iov = calloc(IOV_BATCH, sizeof *c->iov);
    c->rcap = 64 * 1024 + 2 * ((size_t)opt->value_max + 512);
    c->rbuf = malloc(c->rcap);
    if (!c->ring || !c->keys || !c->hdr || !c->iov || !c->rbuf) {
        conn_free(c);
        return NULL;
    }
    return c;
}

void kb_worker_main(struct kl_worker *w, void *arg)
{
    struct kb_run *run = arg;
    uint32_t me = kl_worker_index(w), nt = run->opt.threads;
    struct kb_thread *t = &run->threads[me];
    kl_counter *ctr = kl_worker_counters(w);
    uint32_t mine = 0;
    for (uint32_t g = me; g < run->total_conns; g += nt)
        mine++;
    struct conn **conns = calloc(mine ? mine : 1, sizeof *conns);
    kl_fiber_id *ids = calloc(mine ? mine : 1, sizeof *ids);
    uint32_t n = 0;
    for (uint32_t g = me; conns && ids && g < run->total_conns; g += nt) {
        struct conn *c = conn_new(run, t, ctr, g, run->expect);
        if (!c || kl_fiber_spawn(&ids[n], "kb-conn", conn_main, c, KL_FIBER_PRIO_NORMAL) < 0) {
            kl_counter_add(&ctr[KB_C_ERRORS], 1);
            kb_error(t, KB_E_CONNECTION, "connection %u: out of memory or fibers", g);
            if (c)
                conn_free(c);
            continue;
        }
        conns[n++] = c;
    }
    for (uint32_t i = 0; i < n; i++) {
        kl_fiber_join(ids[i], NULL);
        conn_free(conns[i]);
    }
    kb_state_flush(run, t);
    free(conns);
    free(ids);
    atomic_fetch_add(&run->threads_done, 1);
}
