/* server.c: keeld's start-up, serving and shutdown (see server.h).
 *
 * Listening sockets are opened on the main thread before any worker starts,
 * so a bad address or a port in use is a start-up error, said once. Two
 * ways to reach the workers (--listener, keel/listener.h): reuseport (the
 * default) opens one SO_REUSEPORT socket per worker and address, each
 * worker starts its own acceptors and connections never cross threads;
 * handoff opens the sockets once, worker 0 accepts and deals connections
 * round-robin to every worker through its inbox (the others join the
 * listener once their set is up). Either way each worker's set holds its
 * connections, and the -c limit is one count over the process (a
 * kl_conn_quota the sets share), refused on the worker the connection
 * reached.
 *
 * Reports (`stats`, /metrics) sum the workers' counters without stopping
 * them and add the engine's figures; `stats reset` keeps a baseline.
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "conns.h"
#include "exec.h"
#include "keel/listener.h"
#include "keel/log.h"
#include "keel/workers.h"
#include "privileges.h"
#include "stats.h"
#include "words.h"

#define MB             (1024ull * 1024ull)
#define DRAIN_GRACE_NS (2000ull * 1000 * 1000)

struct slot {
    struct keeld_latency lat; /* w's histograms (first: pages of their own) */
    struct keeld_worker w;
    struct kl_connset conns;
    struct kl_listener listener;
    atomic_int state; /* 0 starting, 1 serving, 2 drained, -errno failed */
};

struct server {
    const struct keeld_options *opts;
    struct keeld_shared shared;
    struct kl_engine *engine;
    struct kl_workers *workers;         /* the main thread's handle */
    _Atomic(struct kl_workers *) group; /* the same, for reports: set by the workers */
    struct slot *slots;                 /* handoff: slots[0].listener is the one listener */
    struct kl_conn_quota quota;         /* -c, over every worker's set */
    struct keeld_admin *admin;
    struct keeld_prefixes prefixes; /* `stats detail` */
    uint64_t started;
    pthread_mutex_t baseline_lock;
    uint64_t baseline[KEELD_COUNTERS];
    struct keeld_engine_figures engine_baseline; /* its counters at `stats reset` */
    struct kl_reactor_stats reactor_baseline;
    struct keeld_lat_counts *lat_baseline; /* from `stats reset` */
    struct keeld_lat_counts *lat_sum;      /* the reports' scratch, under baseline_lock */
    atomic_ullong grace_ns;
};

static struct server srv;

/* ---- reports ---- */

static void sum_counters(struct server *s, uint64_t out[KEELD_COUNTERS],
                         struct kl_workers_stats *ws)
{
    kl_workers_stats(atomic_load(&s->group), ws, out);
}

/* Every worker's latency buckets into s->lat_sum; under baseline_lock. */
static void sum_latency(struct server *s)
{
    memset(s->lat_sum, 0, sizeof *s->lat_sum);
    for (uint32_t i = 0; i < s->opts->threads; i++)
        keeld_lat_add(s->lat_sum, &s->slots[i].lat);
}

static void engine_figures(struct server *s, struct keeld_engine_figures *f)
{
    struct kl_engine_stats es;
    kl_engine_stats(s->engine, &es);
    *f = (struct keeld_engine_figures){
        .bytes = es.bytes,
        .curr_items = es.items,
        .evictions = es.evictions,
        .expired_unfetched = es.expired_unfetched,
        .evicted_unfetched = es.evicted_unfetched,
        .reclaimed = es.reclaimed,
        .hash_bytes = es.hash_bytes,
        .seg_segments = es.segs_total,
        .seg_free_segments = es.segs_free,
        .seg_used_bytes = es.seg_used_bytes,
        .seg_evicted_segments = es.seg_evictions,
        .seg_expired_segments = es.seg_expirations,
        .seg_merges = es.seg_merges,
        .hash_buckets = es.hash_buckets,
        .hash_overflow_used = es.hash_overflow_used,
        .hash_overflow_total = es.hash_overflow_total,
        .hash_moves = es.hash_moves,
        .disk_corrupt = es.disk_corrupt,
        .disk_io_errors = es.disk_io_errors,
        .disk_no_space = es.disk_no_space,
        .disk_files = es.disk_files,
        .disk_data_bytes = es.disk_data_bytes,
        .disk_dead_bytes = es.disk_dead_bytes,
        .disk_compactions = es.disk_compactions,
        .disk_group_syncs = es.disk_group_syncs,
    };
    uint64_t slots = es.hash_buckets * 8;
    while (slots > 1) {
        f->hash_power_level++;
        slots >>= 1;
    }
}

static void general_view(struct server *s, struct keeld_stats_view *v)
{
    struct kl_workers_stats ws;
    memset(v, 0, sizeof *v);
    v->opts = s->opts;
    v->pid = getpid();
    v->started_unix = s->started;
    v->now_unix = (uint64_t)time(NULL);
    /* summed under the lock that `stats reset` takes, so a baseline is
     * never newer than the sums it is taken from */
    pthread_mutex_lock(&s->baseline_lock);
    sum_counters(s, v->counters, &ws);
    uint64_t opened = v->counters[KEELD_C_total_connections];
    uint64_t closed = v->counters[KEELD_C_closed_connections];
    v->curr_connections = opened > closed ? opened - closed : 0; /* read one after the other */
    for (int i = 0; i < KEELD_COUNTERS; i++)
        v->counters[i] = v->counters[i] > s->baseline[i] ? v->counters[i] - s->baseline[i] : 0;
    sum_latency(s);
    keeld_lat_summarize(s->lat_sum, s->lat_baseline, v->latency);
    engine_figures(s, &v->engine);
    keeld_engine_counters_since(&v->engine, &s->engine_baseline);
    struct kl_reactor_stats rb = s->reactor_baseline; /* a reset may come after the unlock */
    pthread_mutex_unlock(&s->baseline_lock);
    v->engine.total_items = v->counters[KEELD_C_total_items];
    v->reactor_syscalls = ws.reactor.syscalls - rb.syscalls;
    v->reactor_iterations = ws.reactor.iterations - rb.iterations;
    v->reactor_submissions = ws.reactor.submissions - rb.submissions;
}

struct conn_listing {
    struct keeld_text *out;
    uint64_t now;
};

static void list_conn(struct kl_conn *c, void *arg)
{
    struct conn_listing *l = arg;
    uint64_t since = kl_conn_idle_since(c);
    uint64_t idle_s = since && l->now > since ? (l->now - since) / 1000000000ull : 0;
    keeld_conns_connection(l->out, kl_conn_fd(c), since == 0, idle_s);
}

/* `stats conns` on worker `index`'s thread: its listening sockets, then its
 * connections. */
static void list_conns(uint32_t index, struct keeld_text *out, void *arg)
{
    struct server *s = arg;
    struct slot *slot = &s->slots[index];
    if (atomic_load(&slot->state) != 1)
        return; /* starting or drained */
    for (size_t i = 0; i < slot->listener.n; i++)
        keeld_conns_listening(out, slot->listener.acc[i].fd, (uint64_t)time(NULL) - s->started);
    struct conn_listing l = {out, kl_reactor_now()};
    kl_connset_foreach(&slot->conns, list_conn, &l);
}

static int stats_report(void *arg, const char *which, size_t len, keeld_stat_emit emit, void *sink)
{
    struct server *s = arg;
    struct kl_mc_str sub = {which, (uint32_t)len}; /* the subcommand: the rest of the line */
    if (len == 0) {
        struct keeld_stats_view v;
        general_view(s, &v);
        keeld_stats_general(&v, emit, sink);
        return 0;
    }
    if (keeld_word_is(sub, "settings")) {
        keeld_stats_settings(s->opts, atomic_load(&s->shared.verbosity),
                             keeld_prefixes_on(&s->prefixes), emit, sink);
        return 0;
    }
    if (keeld_word_is(sub, "reset")) {
        uint64_t now[KEELD_COUNTERS];
        struct kl_workers_stats ws;
        pthread_mutex_lock(&s->baseline_lock);
        sum_counters(s, now, &ws);
        /* as memcached: every counter starts again (total_connections
         * too), the gauges stay (curr_connections is taken before the
         * baseline, from the raw opened and closed counts) */
        for (int i = 0; i < KEELD_COUNTERS; i++)
            s->baseline[i] = now[i];
        engine_figures(s, &s->engine_baseline);
        s->reactor_baseline = ws.reactor;
        sum_latency(s);
        *s->lat_baseline = *s->lat_sum;
        pthread_mutex_unlock(&s->baseline_lock);
        keeld_prefixes_clear(&s->prefixes); /* as memcached */
        return 0;
    }
    if (keeld_word_is(sub, "conns"))
        return keeld_conns_report(atomic_load(&s->group), list_conns, s, emit, sink);
    /* memcached's slab and item reports describe machinery keel does not have */
    if (keeld_word_is(sub, "items") || keeld_word_is(sub, "slabs") || keeld_word_is(sub, "sizes"))
        return 0;
    return -1;
}

struct prom {
    struct keeld_text *out;
};

static void prom_sample(void *sink, enum keeld_stat_kind kind, const char *name, const char *value)
{
    struct prom *p = sink;
    if (kind == KEELD_STAT_INFO)
        return;
    bool counter = kind == KEELD_STAT_COUNTER;
    keeld_text_printf(p->out, "# TYPE keeld_%s%s %s\nkeeld_%s%s %s\n", name,
                      counter ? "_total" : "", counter ? "counter" : "gauge", name,
                      counter ? "_total" : "", value);
}

static void metrics(void *arg, struct keeld_text *out)
{
    struct server *s = arg;
    struct keeld_stats_view v;
    general_view(s, &v);
    keeld_text_printf(out, "# TYPE keeld_info gauge\nkeeld_info{version=\"%s\",engine=\"%s\"} 1\n",
                      KEELD_VERSION_STRING, keeld_engine_name(s->opts->engine));
    struct prom p = {out};
    keeld_stats_general(&v, prom_sample, &p);
}

/* ---- workers ---- */

static void refuse(int fd, void *arg)
{
    struct keeld_worker *w = arg;
    static const char line[] = "ERROR Too many open connections\r\n";
    ssize_t n = send(fd, line, sizeof line - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n; /* a last word: nothing to do if it cannot be sent */
    keeld_count(w, KEELD_C_rejected_connections, 1);
}

static void on_open(struct kl_conn *c, void *arg)
{
    /* as memcached: replies leave at once, not held for the client's ACK */
    int one = 1;
    setsockopt(kl_conn_fd(c), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    keeld_count(arg, KEELD_C_total_connections, 1);
    if (KL_UNLIKELY(keeld_tracing(arg)))
        keeld_trace(kl_conn_fd(c), '<', "new client connection", 21);
}

static void on_close(struct kl_conn *c, int reason, void *arg)
{
    (void)reason;
    keeld_count(arg, KEELD_C_closed_connections, 1);
    if (KL_UNLIKELY(keeld_tracing(arg)))
        keeld_trace(kl_conn_fd(c), '<', "connection closed.", 18);
}

static void worker_main(struct kl_worker *kw, void *arg)
{
    struct server *s = arg;
    struct slot *slot = &s->slots[kl_worker_index(kw)];
    const struct keeld_options *o = s->opts;
    atomic_store(&s->group, kl_worker_group(kw)); /* before any client can ask for stats */
    int rc = keeld_worker_init(&slot->w, &s->shared, kl_worker_counters(kw), &slot->lat);
    uint32_t rbuf_max = o->max_item_size + 4096 > MB ? o->max_item_size + 4096 : (uint32_t)MB;
    struct kl_connset_config cc = {
        .max_conns = o->max_conns,
        .quota = &s->quota,
        .rbuf_max = rbuf_max,
        .idle_timeout_ns = (uint64_t)o->idle_timeout_s * 1000000000ull,
        .handler = keeld_session,
        .on_open = on_open,
        .on_close = on_close,
        .arg = &slot->w,
    };
    if (rc == 0)
        rc = kl_connset_init(&slot->conns, &cc);
    bool acceptor = o->listener == KEELD_LISTENER_REUSEPORT || slot == &s->slots[0];
    if (rc == 0 && acceptor)
        rc = kl_listener_start(&slot->listener);
    else if (rc == 0) /* handoff: worker 0's acceptor deals this one its share from now */
        rc = kl_listener_join(&s->slots[0].listener, &slot->conns, &slot->w);
    atomic_store(&slot->state, rc == 0 ? 1 : rc);
}

static void drain(struct kl_worker *kw, void *arg)
{
    struct server *s = arg;
    struct slot *slot = &s->slots[kl_worker_index(kw)];
    if (atomic_load(&slot->state) != 1)
        return;
    bool handoff = s->opts->listener == KEELD_LISTENER_HANDOFF;
    if (!handoff || slot == &s->slots[0])
        kl_listener_stop(&slot->listener);
    kl_connset_stop(&slot->conns, atomic_load(&s->grace_ns));
    if (!handoff) /* handoff: closed once every worker's inbox has run (stop()) */
        kl_listener_close(&slot->listener);
    atomic_store(&slot->state, 2);
}

static void request_shutdown(void *arg, bool graceful)
{
    struct server *s = arg;
    atomic_store(&s->grace_ns, graceful ? DRAIN_GRACE_NS : 0);
    kill(getpid(), SIGTERM);
}

/* ---- start-up ---- */

/* "ADDR:PORT" for each -l, in the listener's syntax. */
static int listen_list(const struct keeld_options *o, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < o->listen_count; i++) {
        const char *a = o->listen[i];
        const char *last = strrchr(a, ':');
        bool bare_v6 = last && strchr(a, ':') != last && a[0] != '[';
        bool has_port = last && !bare_v6 && (a[0] != '[' || last > strchr(a, ']'));
        int n;
        if (has_port)
            n = snprintf(out + len, cap - len, "%s%s", i ? "," : "", a);
        else if (bare_v6)
            n = snprintf(out + len, cap - len, "%s[%s]:%u", i ? "," : "", a, o->port);
        else
            n = snprintf(out + len, cap - len, "%s%s:%u", i ? "," : "", a, o->port);
        if (n < 0 || (size_t)n >= cap - len)
            return -1;
        len += (size_t)n;
    }
    return 0;
}

static int open_engine(struct server *s, char *err, size_t err_len)
{
    const struct keeld_options *o = s->opts;
    struct kl_engine_opts eo = {
        .engine = keeld_engine_name(o->engine),
        .mem_bytes = o->memory_bytes,
        .item_max = o->max_item_size,
        .seg_size = o->seg_size,
        .hash_power = o->hash_power,
        .now = (uint32_t)time(NULL),
        .data_dir = o->data_dir[0] ? o->data_dir : NULL,
        .direct = o->direct,
        .sync = (enum kl_sync_mode)o->sync,
        .sync_ms = o->sync_ms,
    };
    if (eo.seg_size == 0) {
        eo.seg_size = MB;
        while (eo.seg_size < o->max_item_size)
            eo.seg_size *= 2;
    }
    if (o->evict[0] && kl_evict_policy_parse(o->evict, &eo.evict) != 0) {
        snprintf(err, err_len, "--evict %s: unknown policy", o->evict);
        return -1;
    }
    if (o->engine == KEELD_ENGINE_DISK)
        signal(SIGXFSZ, SIG_IGN); /* past `ulimit -f`, a write fails with EFBIG instead */
    int rc = kl_engine_open(&eo, &s->engine);
    if (rc != 0 && o->engine == KEELD_ENGINE_DISK) {
        snprintf(err, err_len, "cannot open the disk engine in %.300s: %s", o->data_dir,
                 strerror(-rc));
        return -1;
    }
    if (rc != 0) {
        snprintf(err, err_len, "cannot open the %s engine (-m %llu, -I %u, segments of %zu): %s",
                 eo.engine, (unsigned long long)(o->memory_bytes / MB), o->max_item_size,
                 eo.seg_size, strerror(-rc));
        return -1;
    }
    return 0;
}

/* SO_REUSEPORT would let keeld share a port another process listens on
 * (and take half its connections): a port in use must be an error, as with
 * memcached, so each fixed port is first bound without it. */
static int probe_ports(const char *addrs, char *err, size_t err_len)
{
    char list[KEELD_MAX_LISTEN * (KEELD_ADDR_BYTES + 8)];
    snprintf(list, sizeof list, "%s", addrs);
    char *save = NULL;
    for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(a, ':');
        if (colon == NULL || strcmp(colon + 1, "0") == 0)
            continue;
        *colon = '\0';
        char *host = a;
        if (host[0] == '[') {
            host++;
            host[strlen(host) - 1] = '\0';
        }
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV},
                        *res = NULL;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
            continue; /* the listener reports the bad address */
        int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1, rc = -1, e = 0;
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT is fine */
            rc = bind(fd, res->ai_addr, res->ai_addrlen);
            e = errno;
            close(fd);
        }
        freeaddrinfo(res);
        if (rc != 0 && e == EADDRINUSE) {
            snprintf(err, err_len, "cannot listen on %s:%s: %s", a, colon + 1, strerror(e));
            return -1;
        }
    }
    return 0;
}

static int open_listeners(struct server *s, uint32_t n, char *err, size_t err_len)
{
    char addrs[KEELD_MAX_LISTEN * (KEELD_ADDR_BYTES + 8)];
    if (listen_list(s->opts, addrs, sizeof addrs) < 0) {
        snprintf(err, err_len, "-l: too many addresses");
        return -1;
    }
    if (probe_ports(addrs, err, err_len) < 0)
        return -1;
    bool handoff = s->opts->listener == KEELD_LISTENER_HANDOFF;
    struct kl_listener_config lc = {
        .addrs = addrs,
        .backlog = (int)s->opts->backlog,
        .conns = &s->slots[0].conns,
        .refuse = refuse,
        .arg = &s->slots[0].w,
        .mode = handoff ? KL_LISTENER_HANDOFF : KL_LISTENER_REUSEPORT,
        .handoff_workers = n,
    };
    int rc = kl_listener_open(&s->slots[0].listener, &lc);
    for (uint32_t i = 1; rc == 0 && !handoff && i < n; i++) {
        rc = kl_listener_clone(&s->slots[i].listener, &s->slots[0].listener, &s->slots[i].conns);
        s->slots[i].listener.cfg.arg = &s->slots[i].w;
    }
    if (rc != 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", addrs, strerror(-rc));
        return -1;
    }
    return 0;
}

static int start(struct server *s, char *err, size_t err_len)
{
    const struct keeld_options *o = s->opts;
    uint32_t n = o->threads;
    s->slots = calloc(n, sizeof *s->slots);
    s->lat_sum = calloc(1, sizeof *s->lat_sum);
    s->lat_baseline = calloc(1, sizeof *s->lat_baseline);
    if (s->slots == NULL || s->lat_sum == NULL || s->lat_baseline == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (keeld_raise_fd_limit(o->max_conns, 64 + 8 * n, err, err_len) < 0)
        return -1;
    kl_conn_quota_init(&s->quota, o->max_conns);
    if (open_engine(s, err, err_len) < 0 || open_listeners(s, n, err, err_len) < 0)
        return -1;
    if (keeld_become_user(o->user, err, err_len) < 0)
        return -1;
    s->shared = (struct keeld_shared){
        .engine = s->engine,
        .opts = o,
        .stats = stats_report,
        .stats_arg = s,
        .shutdown = request_shutdown,
        .shutdown_arg = s,
        .prefixes = &s->prefixes,
    };
    atomic_init(&s->shared.verbosity, o->verbose);
    kl_mc_config_init(&s->shared.mc);
    s->shared.mc.item_size_max = o->max_item_size;
    enum kl_reactor_backend be = o->backend == KEELD_BACKEND_URING   ? KL_REACTOR_URING
                                 : o->backend == KEELD_BACKEND_EPOLL ? KL_REACTOR_EPOLL
                                                                     : KL_REACTOR_AUTO;
    struct kl_workers_options wo = {
        .count = n,
        .reactor = {.backend = be, .busy_poll = o->busy_poll},
        .sched = {.max_fibers = 1024},
        .counters = KEELD_COUNTERS,
        .crash_reports = true,
        .name = "keeld",
        .sched_slice_ns = (uint64_t)o->sched_slice_us * 1000u,
    };
    int rc = kl_workers_start(&s->workers, &wo, worker_main, s);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start %u worker threads: %s", n, strerror(-rc));
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        int st;
        while ((st = atomic_load(&s->slots[i].state)) == 0)
            usleep(1000);
        if (st < 0) {
            snprintf(err, err_len, "worker %u could not start serving: %s", i, strerror(-st));
            return -1;
        }
    }
    if (o->admin[0]) { /* once the workers it reports on are up */
        s->admin = keeld_admin_start(o->admin, metrics, s, err, err_len);
        if (s->admin == NULL)
            return -1;
    }
    return 0;
}

static void stop(struct server *s)
{
    if (s->workers) {
        kl_workers_post_all(s->workers, drain, s);
        uint64_t deadline = (uint64_t)time(NULL) + atomic_load(&s->grace_ns) / 1000000000ull + 5;
        for (uint32_t i = 0; i < s->opts->threads; i++)
            while (atomic_load(&s->slots[i].state) == 1 && (uint64_t)time(NULL) < deadline)
                usleep(2000);
        kl_workers_stop(s->workers, 0);
        if (s->opts->listener == KEELD_LISTENER_HANDOFF && s->slots)
            kl_listener_close(&s->slots[0].listener); /* every worker's inbox has run */
    }
    keeld_admin_stop(s->admin);
}

/* ---- the main thread ---- */

static void describe(const struct server *s)
{
    const struct keeld_options *o = s->opts;
    static const char *const syncs[] = {"batch", "always", "none"};
    if (o->engine == KEELD_ENGINE_DISK)
        fprintf(stderr, "keeld %s: disk engine in %s (sync %s%s), %u threads, listening on",
                KEELD_VERSION_STRING, o->data_dir, syncs[o->sync], o->direct ? ", direct" : "",
                o->threads);
    else
        fprintf(stderr, "keeld %s: %s engine, %llu MB, %u threads, listening on",
                KEELD_VERSION_STRING, keeld_engine_name(o->engine),
                (unsigned long long)(o->memory_bytes / MB), o->threads);
    for (size_t i = 0; i < s->slots[0].listener.n; i++)
        fprintf(stderr, "%s %s port %u", i ? "," : "", o->listen[i < o->listen_count ? i : 0],
                kl_listener_port(&s->slots[0].listener, i));
    if (s->admin)
        fprintf(stderr, "; metrics on http://%s/metrics", o->admin);
    fprintf(stderr, "\n");
}

int keeld_run(const struct keeld_options *opts)
{
    struct server *s = &srv;
    memset(s, 0, sizeof *s);
    s->opts = opts;
    s->started = (uint64_t)time(NULL);
    pthread_mutex_init(&s->baseline_lock, NULL);
    keeld_prefixes_init(&s->prefixes, opts->prefix_delimiter, opts->detail_on);
    atomic_store(&s->grace_ns, DRAIN_GRACE_NS);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a log past the file-size limit is an error, not a death */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started below inherits it */

    if (kl_log_open(opts->log_path[0] ? opts->log_path : NULL) != 0 && opts->verbose)
        fprintf(stderr, "keeld: the log cannot be opened; records go to stderr\n");
    if (geteuid() == 0 && opts->user[0] == '\0')
        fprintf(stderr, "keeld: running as root without -u USER (memcached would refuse)\n");
    for (unsigned i = 0; i < opts->ignored_count; i++)
        fprintf(stderr, "keeld: -o %s has no effect in keel (ignored)\n", opts->ignored[i]);

    char err[512];
    if (start(s, err, sizeof err) < 0) {
        fprintf(stderr, "keeld: %s\n", err);
        stop(s);
        return 1;
    }
    describe(s);
    KL_INFO("keeld %s serving: %u threads, %llu MB", KEELD_VERSION_STRING, opts->threads,
            (unsigned long long)(opts->memory_bytes / MB));

    uint32_t clock = (uint32_t)time(NULL);
    for (;;) {
        struct timespec second = {1, 0};
        int sig = sigtimedwait(&set, NULL, &second);
        uint32_t now = (uint32_t)time(NULL);
        clock = now > clock ? now : clock; /* the engine's clock never goes back (NTP steps) */
        kl_engine_tick(s->engine, clock);
        if (sig == SIGHUP) {
            kl_log_close();
            kl_log_open(opts->log_path[0] ? opts->log_path : NULL);
            KL_INFO("log reopened on SIGHUP");
        } else if (sig == SIGTERM || sig == SIGINT) {
            break;
        }
    }
    KL_INFO("keeld stopping: draining connections");
    stop(s);
    kl_engine_close(s->engine);
    keeld_prefixes_destroy(&s->prefixes);
    return 0;
}
