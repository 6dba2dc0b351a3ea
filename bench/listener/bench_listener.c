/* bench/listener: keel/listener.h's two modes side by side, on a 2-worker
 * line echo server.
 *
 * The server is this program again (`bench_listener serve MODE BACKEND`),
 * one process per mode: 2 worker threads (keel/workers.h), each with its
 * connection set, fed by a listener per worker with SO_REUSEPORT or by one
 * acceptor on worker 0 handing connections over (KL_LISTENER_HANDOFF). It
 * echoes lines; "stats" answers with the connections open on each worker
 * (not counting the one asking).
 *
 * Two loads, the modes alternating (which goes first rotates), BENCH_ROUNDS
 * rounds (default 5), every round printed, medians compared:
 * (a) connection rate: 4 client threads, each connecting, sending one line,
 *     reading its echo and closing (SO_LINGER 0: a reset, so that no
 *     TIME_WAIT eats the ephemeral ports), as fast as they can;
 * (b) throughput: 32 long-lived connections pipelining 16 lines deep
 *     (bench/conn's client); SO_REUSEPORT hashes the 32 connections over
 *     the 2 workers and may split them unevenly, the handoff deals them
 *     exactly: the split on each worker is printed for every round.
 * Client and server share the machine's cores: rates are rough on a busy
 * machine; the server's CPU time per connection and per line (from
 * /proc/PID/stat, 10 ms ticks) is steadier. BENCH_BACKEND=epoll runs the servers on epoll (default:
 * auto).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/conn.h"
#include "keel/listener.h"
#include "keel/workers.h"
#include "../conn/line_echo.h"

#include "../conn/bench_conn.h"

#define WORKERS      2
#define CONNS        32
#define DEPTH        16
#define RATE_THREADS 4
#define SECS         2.0
#define MAX_ROUNDS   25

/* ---- the server (a child process) ------------------------------------------- */

enum { C_OPENED = LINE_ECHO_OPENED, C_CLOSED = LINE_ECHO_CLOSED, C_COUNT };

static struct {
    enum kl_listener_mode mode;
    struct kl_workers *g;
    struct kl_listener l[WORKERS];
    struct kl_connset set[WORKERS];
    atomic_int up;
} srv;

static void stats_reply(struct kl_conn *c)
{
    char out[128];
    int len = snprintf(out, sizeof out, "open");
    uint32_t self = kl_worker_index(kl_worker_self());
    for (uint32_t i = 0; i < WORKERS; i++) {
        uint64_t v[C_COUNT];
        kl_worker_stats(kl_workers_get(srv.g, i), NULL, v);
        uint64_t open = v[C_OPENED] - v[C_CLOSED] - (i == self); /* not this one */
        len += snprintf(out + len, sizeof out - (size_t)len, " %llu", (unsigned long long)open);
    }
    len += snprintf(out + len, sizeof out - (size_t)len, "\r\nEND\r\n");
    kl_conn_write(c, out, (size_t)len);
}

/* Echo every complete line; "stats" first in the input answers instead. */
static int handler(struct kl_conn *c, void *arg)
{
    size_t len;
    const char *in = kl_conn_input(c, &len);
    if (len >= 6 && memcmp(in, "stats\n", 6) == 0) {
        stats_reply(c);
        kl_conn_consume(c, 6);
        return KL_CONN_MORE;
    }
    return line_echo(c, arg);
}

static void serve_worker(struct kl_worker *w, void *arg)
{
    (void)arg;
    uint32_t i = kl_worker_index(w);
    struct kl_connset_config cc = {.max_conns = 8192,
                                   .handler = handler,
                                   .on_open = line_echo_opened,
                                   .on_close = line_echo_closed,
                                   .arg = kl_worker_counters(w)};
    int rc = kl_connset_init(&srv.set[i], &cc);
    if (rc == 0 && (srv.mode == KL_LISTENER_REUSEPORT || i == 0))
        rc = kl_listener_start(&srv.l[i]);
    else if (rc == 0)
        rc = kl_listener_join(&srv.l[0], &srv.set[i], NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_listener: worker %u: %s\n", i, strerror(-rc));
        exit(1);
    }
    atomic_fetch_add(&srv.up, 1);
}

static int serve(const char *mode, const char *backend)
{
    srv.mode = strcmp(mode, "handoff") == 0 ? KL_LISTENER_HANDOFF : KL_LISTENER_REUSEPORT;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the workers inherit it */
    struct kl_listener_config lc = {
        .addrs = "127.0.0.1:0", .conns = &srv.set[0], .mode = srv.mode, .handoff_workers = WORKERS};
    int rc = kl_listener_open(&srv.l[0], &lc);
    for (uint32_t i = 1; rc == 0 && srv.mode == KL_LISTENER_REUSEPORT && i < WORKERS; i++)
        rc = kl_listener_clone(&srv.l[i], &srv.l[0], &srv.set[i]);
    struct kl_workers_options o = {
        .count = WORKERS,
        .reactor = {.backend = strcmp(backend, "epoll") == 0   ? KL_REACTOR_EPOLL
                               : strcmp(backend, "uring") == 0 ? KL_REACTOR_URING
                                                               : KL_REACTOR_AUTO},
        .sched = {.max_fibers = 1024},
        .counters = C_COUNT,
        .name = "bench-l",
    };
    if (rc == 0)
        rc = kl_workers_start(&srv.g, &o, serve_worker, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_listener: server: %s\n", strerror(-rc));
        return 1;
    }
    while (atomic_load(&srv.up) < WORKERS)
        usleep(1000);
    printf("port %u\nserving\n", kl_listener_port(&srv.l[0], 0));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    kl_workers_stop(srv.g, 0);
    _exit(0); /* a bench server: the process's end releases the rest */
}

/* ---- the client ----------------------------------------------------------------- */

static pid_t server_start(const char *mode, const char *backend, int *port)
{
    char *argv[] = {"bench_listener", "serve", (char *)mode, (char *)backend, NULL};
    return bc_spawn("/proc/self/exe", argv, "port ", port);
}

/* Read until `end` is in buf (NUL-terminated); false on an error. */
static bool read_until(int fd, char *buf, size_t cap, const char *end)
{
    size_t have = 0;
    buf[0] = '\0';
    while (strstr(buf, end) == NULL) {
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n <= 0)
            return false;
        have += (size_t)n;
        buf[have] = '\0';
    }
    return true;
}

/* The connections open on each worker, from the server's "stats". */
static int split_of(int port, unsigned split[WORKERS])
{
    int fd = bc_dial(port);
    char buf[256];
    bool ok = fd >= 0 && write(fd, "stats\n", 6) == 6 && read_until(fd, buf, sizeof buf, "END");
    if (fd >= 0)
        close(fd);
    return ok && sscanf(buf, "open %u %u", &split[0], &split[1]) == WORKERS ? 0 : -1;
}

struct rate_job {
    int port;
    uint64_t until;
    uint64_t done, failed;
};

static void *rate_thread(void *arg)
{
    struct rate_job *j = arg;
    char buf[256];
    struct linger rst = {.l_onoff = 1, .l_linger = 0};
    while (kl_now() < j->until) {
        int fd = bc_dial(j->port);
        bool ok = fd >= 0 && write(fd, BC_LINE, BC_LINE_LEN) == (ssize_t)BC_LINE_LEN &&
                  read_until(fd, buf, sizeof buf, "\n");
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
            close(fd);
        }
        if (ok)
            j->done++;
        else if (++j->failed > 100)
            break;
    }
    return NULL;
}

/* Connections per second over SECS, or -1; the count made in *count. */
static double conn_rate(int port, uint64_t *count)
{
    struct rate_job jobs[RATE_THREADS];
    pthread_t t[RATE_THREADS];
    uint64_t t0 = kl_now(), until = t0 + (uint64_t)(SECS * 1e9);
    for (int i = 0; i < RATE_THREADS; i++) {
        jobs[i] = (struct rate_job){.port = port, .until = until};
        pthread_create(&t[i], NULL, rate_thread, &jobs[i]);
    }
    uint64_t done = 0, failed = 0;
    for (int i = 0; i < RATE_THREADS; i++) {
        pthread_join(t[i], NULL);
        done += jobs[i].done;
        failed += jobs[i].failed;
    }
    double secs = (double)(kl_now() - t0) / 1e9;
    *count = done;
    return failed > 100 ? -1 : (double)done / secs;
}

struct mid {
    int port;
    unsigned split[WORKERS];
    int rc;
};

static void take_split(void *arg)
{
    struct mid *m = arg;
    m->rc = split_of(m->port, m->split);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2], argv[3]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    const char *env = getenv("BENCH_ROUNDS");
    int rounds = env ? atoi(env) : 5;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 5;
    const char *backend = getenv("BENCH_BACKEND") ? getenv("BENCH_BACKEND") : "auto";

    enum { REUSE, HANDOFF, NMODES };
    static const char *const names[NMODES] = {"reuseport", "handoff"};
    pid_t pids[NMODES];
    int ports[NMODES];
    for (int m = 0; m < NMODES; m++) {
        pids[m] = server_start(names[m], backend, &ports[m]);
        if (pids[m] < 0) {
            fprintf(stderr, "bench_listener: the %s server did not start\n", names[m]);
            for (int k = 0; k < m; k++)
                bc_stop(pids[k]);
            return 1;
        }
    }
    printf("listener modes on a %d-worker line echo server (backend %s), %d rounds, the modes\n"
           "alternating (client and server share the machine's cores)\n",
           WORKERS, backend, rounds);
    printf("(a) %d client threads: connect, one line, its echo, close; (b) %d connections x %d "
           "deep\n",
           RATE_THREADS, CONNS, DEPTH);
    printf("%-5s %-10s %12s %14s %14s %14s %10s\n", "round", "mode", "(a) conns/s",
           "(a) CPU us/conn", "(b) lines/s", "(b) CPU ns/line", "(b) split");
    static double rate[NMODES][MAX_ROUNDS], tput[NMODES][MAX_ROUNDS];
    static double cpu_conn[NMODES][MAX_ROUNDS], cpu_line[NMODES][MAX_ROUNDS];
    int ok = 1;
    for (int r = 0; r < rounds && ok; r++) {
        for (int i = 0; i < NMODES && ok; i++) {
            int m = (r + i) % NMODES;
            uint64_t conns = 0;
            double c0 = bc_cpu_seconds(pids[m]);
            rate[m][r] = conn_rate(ports[m], &conns);
            double c1 = bc_cpu_seconds(pids[m]);
            struct mid mid = {.port = ports[m], .rc = -1};
            tput[m][r] = bc_load_mid(ports[m], CONNS, DEPTH, SECS, take_split, &mid);
            double c2 = bc_cpu_seconds(pids[m]);
            ok = rate[m][r] > 0 && tput[m][r] > 0 && mid.rc == 0 && conns > 0;
            /* (b)'s CPU includes its warm-up: lines over the whole call, roughly */
            cpu_conn[m][r] = ok ? (c1 - c0) * 1e6 / (double)conns : 0;
            cpu_line[m][r] = ok ? (c2 - c1) * 1e9 / (tput[m][r] * (SECS + 0.3)) : 0;
            printf("%-5d %-10s %12.0f %14.1f %14.0f %14.0f %5u / %u\n", r + 1, names[m], rate[m][r],
                   cpu_conn[m][r], tput[m][r], cpu_line[m][r], mid.split[0], mid.split[1]);
        }
    }
    for (int m = 0; m < NMODES; m++)
        bc_stop(pids[m]);
    if (!ok) {
        fprintf(stderr, "bench_listener: a run failed\n");
        return 1;
    }
    double mrate[NMODES], mtput[NMODES];
    printf("\nmedians of %d rounds\n", rounds);
    for (int m = 0; m < NMODES; m++) {
        mrate[m] = median(rate[m], rounds);
        mtput[m] = median(tput[m], rounds);
        printf("      %-10s %12.0f %14.1f %14.0f %14.0f\n", names[m], mrate[m],
               median(cpu_conn[m], rounds), mtput[m], median(cpu_line[m], rounds));
    }
    printf("\nresult conn_accept_rate_reuseport %.0f conn/s\n", mrate[REUSE]);
    printf("result conn_accept_rate_handoff %.0f conn/s\n", mrate[HANDOFF]);
    printf("result conn_handoff_vs_reuseport %.2f x\n", mtput[HANDOFF] / mtput[REUSE]);
    return 0;
}
