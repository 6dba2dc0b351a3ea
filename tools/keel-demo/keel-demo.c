/* keel-demo: what `make run` starts until keeld exists.
 *
 * A pipelined line echo server on keel's toolkit, to show it working: one
 * reactor (io_uring, or epoll where io_uring is unavailable), a listener on
 * 127.0.0.1:11211 (keel/listener.h) feeding a connection set (keel/conn.h):
 * an idle connection holds no fiber and no buffer; when lines arrive a
 * runner fiber echoes every complete line in the input and sends the
 * replies with one writev, whatever the depth of pipelining. At start-up
 * it checks itself: 32 client fibers send 500 lines each through the server
 * over loopback, one at a time, then 100 lines in one write, and the demo
 * prints the lines per second and round-trip percentiles. Then it serves
 * until SIGINT or SIGTERM, which a fiber receives (keel/sigwait.h) and
 * turns into a clean stop: the listener stops at once, idle connections are
 * closed, those being served get a grace period (2 s) to finish and are
 * then shut down (kl_connset_stop). SIGHUP writes a dump of every fiber to
 * stderr.
 *
 * Commands on a connection: any line is echoed back; "stats" prints the
 * reactor's and the connections' counters; "quit" closes the connection.
 * It says plainly that it is a demo and not the server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/conn.h"
#include "keel/fiber.h"
#include "keel/histogram.h"
#include "keel/io.h"
#include "keel/listener.h"
#include "keel/reactor.h"
#include "keel/sigwait.h"

#define MS          1000000ull
#define LINE_MAX    (64 * 1024) /* a longer line is refused ("ERROR line too long") */
#define CHECK_CONNS 32
#define CHECK_LINES 500
#define CHECK_DEPTH 100 /* lines of the pipelined round */

struct demo {
    struct sockaddr_in addr;
    struct kl_listener listener;
    struct kl_connset conns;
    uint64_t lines_served;
    uint64_t closed_by_stop;
    struct kl_hist rtt;     /* self-check round trips, ns */
    uint32_t check_running; /* self-check clients not finished */
    uint32_t check_failed;
    uint64_t grace_ns;
};

static struct demo demo;

static void usage(FILE *out)
{
    fprintf(out, "usage: keel-demo [--port N] [--backend auto|uring|epoll] [--no-check]\n"
                 "                 [--grace-ms N] [--batch-wait US]\n"
                 "A demo of keel's fiber runtime: a line echo server on 127.0.0.1.\n"
                 "--batch-wait US (io_uring, Linux 6.12+; default 0, off): after a busy\n"
                 "turn, the loop waits up to US microseconds for as many lines again\n"
                 "before it wakes: fewer wake-ups under pipelined load, up to US more\n"
                 "latency when clients answer one at a time; a lone line is not held.\n"
                 "Stop it with Ctrl-C (SIGINT) or SIGTERM; SIGHUP dumps its fibers to stderr.\n");
}

/* ---- server --------------------------------------------------------------- */

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = kl_send(fd, buf, len, 0, 0);
        if (n < 0)
            return (int)n;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_stats(struct kl_conn *c)
{
    struct kl_reactor_stats st;
    struct kl_connset_stats cs;
    kl_reactor_stats(&st);
    kl_connset_stats(&demo.conns, &cs);
    char out[768];
    int n = snprintf(out, sizeof out,
                     "backend %s\r\nconnections %llu\r\nlines %llu\r\niterations %llu\r\n"
                     "syscalls %llu\r\nsubmissions %llu\r\ncompletions %llu\r\n"
                     "open %u\r\nactive %u\r\nrunners %u\r\nreads %llu\r\nflushes %llu\r\n"
                     "END\r\n",
                     kl_reactor_backend_name(kl_reactor_backend()), (unsigned long long)cs.opened,
                     (unsigned long long)demo.lines_served, (unsigned long long)st.iterations,
                     (unsigned long long)st.syscalls, (unsigned long long)st.submissions,
                     (unsigned long long)st.completions, cs.open, cs.active, cs.runners,
                     (unsigned long long)cs.reads, (unsigned long long)cs.flushes);
    return kl_conn_write(c, out, (size_t)n);
}

/* The handler: echo every complete line in the input (any number of them:
 * pipelined clients get one writev per batch); "stats", "quit". */
static int echo_lines(struct kl_conn *c, void *arg)
{
    (void)arg;
    size_t len, done = 0;
    const char *in = kl_conn_input(c, &len);
    int rc = 0, verdict = KL_CONN_MORE;
    while (rc == 0 && verdict == KL_CONN_MORE) {
        const char *nl = memchr(in + done, '\n', len - done);
        if (nl == NULL)
            break;
        const char *line = in + done;
        size_t n = (size_t)(nl - line) + 1;
        size_t word = n - 1 - (n >= 2 && line[n - 2] == '\r');
        done += n;
        if (word == 4 && memcmp(line, "quit", 4) == 0)
            verdict = KL_CONN_CLOSE;
        else if (word == 5 && memcmp(line, "stats", 5) == 0)
            rc = write_stats(c);
        else
            rc = kl_conn_write(c, line, n);
        demo.lines_served += verdict == KL_CONN_MORE;
    }
    kl_conn_consume(c, done);
    if (rc < 0)
        return rc;
    if (verdict == KL_CONN_MORE && kl_conn_input_full(c)) {
        kl_conn_write(c, "ERROR line too long\r\n", 21);
        return KL_CONN_CLOSE;
    }
    return verdict;
}

static void on_close(struct kl_conn *c, int reason, void *arg)
{
    (void)c;
    (void)arg;
    demo.closed_by_stop += reason == -ESHUTDOWN;
}

/* ---- signals --------------------------------------------------------------- */

static intptr_t signals(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = kl_sigwait(&set, NULL, 0);
        if (sig == SIGHUP) {
            fprintf(stderr, "keel-demo: SIGHUP: the fibers of this thread:\n");
            kl_sched_dump(STDERR_FILENO);
            continue;
        }
        if (sig > 0)
            printf("keel-demo: %s: stopping (grace %llu ms)\n", strsignal(sig),
                   (unsigned long long)(demo.grace_ns / MS));
        kl_listener_stop(&demo.listener); /* no new connections from now on */
        kl_connset_stop(&demo.conns, demo.grace_ns);
        kl_reactor_stop();
        return 0;
    }
}

/* ---- self-check ------------------------------------------------------------- */

/* CHECK_DEPTH lines in one write; every one must come back, in order. */
static bool pipelined_round(int fd)
{
    char out[CHECK_DEPTH * 16], back[CHECK_DEPTH * 16];
    size_t len = 0;
    for (int i = 0; i < CHECK_DEPTH; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, "deep %d\n", i);
    if (send_all(fd, out, len) != 0)
        return false;
    size_t got = 0;
    while (got < len) {
        ssize_t n = kl_recv(fd, back + got, sizeof back - got, 0, 1000 * MS);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return got == len && memcmp(out, back, len) == 0;
}

static intptr_t check_client(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && kl_connect(fd, (struct sockaddr *)&demo.addr, sizeof demo.addr, 0) == 0;
    char line[64], back[64];
    for (int i = 0; ok && i < CHECK_LINES; i++) {
        int len = snprintf(line, sizeof line, "line %d of fiber %llu\n", i,
                           (unsigned long long)kl_fiber_id_raw(kl_fiber_self()));
        uint64_t t0 = kl_now();
        ok = send_all(fd, line, (size_t)len) == 0;
        size_t got = 0;
        while (ok && got < (size_t)len) {
            ssize_t n = kl_recv(fd, back + got, sizeof back - got, 0, 1000 * MS);
            ok = n > 0;
            got += ok ? (size_t)n : 0;
        }
        ok = ok && got == (size_t)len && memcmp(line, back, got) == 0;
        if (ok)
            kl_hist_record(&demo.rtt, kl_now() - t0);
    }
    ok = ok && pipelined_round(fd);
    if (fd >= 0)
        kl_close(fd);
    demo.check_failed += !ok;
    if (--demo.check_running == 0)
        kl_reactor_stop();
    return 0;
}

/* Run the self-check; true if every client saw every line echoed intact. */
static bool self_check(void)
{
    kl_hist_init(&demo.rtt);
    demo.check_running = CHECK_CONNS;
    for (int i = 0; i < CHECK_CONNS; i++) {
        kl_fiber_id id;
        if (kl_fiber_spawn(&id, "check-client", check_client, NULL, KL_FIBER_PRIO_NORMAL) != 0)
            return false;
        kl_fiber_detach(id);
    }
    uint64_t t0 = kl_now();
    int rc = kl_reactor_run();
    double secs = (double)(kl_now() - t0) / 1e9;
    if (rc < 0 || demo.check_running != 0)
        return false;
    printf("self-check: %d fibers x %d lines (one at a time, then %d in one write) echoed in "
           "%.3f s: %.0f lines/s; "
           "round trip p50 %.1f us, p99 %.1f us; %u failed\n",
           CHECK_CONNS, CHECK_LINES, CHECK_DEPTH, secs,
           CHECK_CONNS * (CHECK_LINES + CHECK_DEPTH) / secs,
           (double)kl_hist_percentile(&demo.rtt, 50) / 1e3,
           (double)kl_hist_percentile(&demo.rtt, 99) / 1e3, demo.check_failed);
    return demo.check_failed == 0;
}

/* ---- main --------------------------------------------------------------------- */

static int parse_backend(const char *s, enum kl_reactor_backend *b)
{
    if (strcmp(s, "auto") == 0)
        *b = KL_REACTOR_AUTO;
    else if (strcmp(s, "uring") == 0 || strcmp(s, "io_uring") == 0)
        *b = KL_REACTOR_URING;
    else if (strcmp(s, "epoll") == 0)
        *b = KL_REACTOR_EPOLL;
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is an error (-EFBIG), not death */
    int port = 11211;
    bool check = true;
    struct kl_reactor_options ro = {0};
    demo.grace_ns = 2000 * MS;
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"backend", required_argument, NULL, 'b'},
                                         {"no-check", no_argument, NULL, 'n'},
                                         {"grace-ms", required_argument, NULL, 'g'},
                                         {"batch-wait", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:b:ng:w:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'p':
            port = (int)strtol(optarg, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "keel-demo: bad port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_backend(optarg, &ro.backend) != 0) {
                fprintf(stderr, "keel-demo: backend must be auto, uring or epoll\n");
                return 2;
            }
            break;
        case 'n': check = false; break;
        case 'g': demo.grace_ns = strtoull(optarg, NULL, 10) * MS; break;
        case 'w': {
            unsigned long us = strtoul(optarg, &end, 10);
            if (*end || *optarg == '-' || us > KL_REACTOR_BATCH_WAIT_MAX_US) {
                fprintf(stderr, "keel-demo: --batch-wait takes 0 to %u microseconds\n",
                        KL_REACTOR_BATCH_WAIT_MAX_US);
                return 2;
            }
            ro.batch_wait_us = (uint32_t)us;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Before any thread starts: the signals go to the fiber that waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    kl_sigblock(&set);

    int rc =
        kl_sched_init(&(struct kl_sched_config){.max_fibers = 4096, .hog_threshold_ns = 100 * MS});
    if (rc == 0)
        rc = kl_reactor_init(&ro);
    if (rc != 0) {
        fprintf(stderr, "keel-demo: cannot start the runtime: %s\n", strerror(-rc));
        return 1;
    }
    rc = kl_connset_init(&demo.conns, &(struct kl_connset_config){.max_conns = 16384,
                                                                  .max_active = 256,
                                                                  .rbuf_size = 16384,
                                                                  .rbuf_max = LINE_MAX,
                                                                  .handler = echo_lines,
                                                                  .on_close = on_close});
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (rc == 0)
        rc = kl_listener_open(&demo.listener,
                              &(struct kl_listener_config){.addrs = addr, .conns = &demo.conns});
    if (rc != 0) {
        fprintf(stderr, "keel-demo: cannot listen on %s: %s\n", addr, strerror(-rc));
        return 1;
    }
    demo.addr = (struct sockaddr_in){.sin_family = AF_INET,
                                     .sin_port = htons(kl_listener_port(&demo.listener, 0))};
    demo.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    printf("keel-demo: a demo of keel's runtime, not keeld (the server does not exist yet)\n");
    printf("keel-demo: reactor on %s; line echo server on 127.0.0.1:%d\n",
           kl_reactor_backend_name(kl_reactor_backend()), ntohs(demo.addr.sin_port));

    kl_fiber_id sig;
    if (kl_listener_start(&demo.listener) != 0) {
        fprintf(stderr, "keel-demo: cannot start the acceptor fiber\n");
        return 1;
    }
    if (check && !self_check()) {
        fprintf(stderr, "keel-demo: self-check FAILED\n");
        kl_reactor_shutdown(0);
        return 1;
    }
    if (kl_fiber_spawn(&sig, "signals", signals, NULL, KL_FIBER_PRIO_HIGH) != 0 ||
        kl_fiber_detach(sig) != 0) {
        fprintf(stderr, "keel-demo: cannot start the signal fiber\n");
        kl_reactor_shutdown(0);
        return 1;
    }
    printf("keel-demo: serving; try: printf 'hello\\nstats\\nquit\\n' | nc 127.0.0.1 %d\n",
           ntohs(demo.addr.sin_port));
    rc = kl_reactor_run();
    if (rc < 0) {
        fprintf(stderr, "keel-demo: reactor: %s\n", strerror(-rc));
        return 1;
    }
    int cancelled = kl_reactor_shutdown(demo.grace_ns);
    struct kl_connset_stats cs;
    kl_connset_stats(&demo.conns, &cs);
    printf("keel-demo: stopped: %llu connections, %llu lines served; %llu closed by the stop "
           "(idle at once, busy after the grace period); %d fibers cancelled\n",
           (unsigned long long)cs.opened, (unsigned long long)demo.lines_served,
           (unsigned long long)demo.closed_by_stop, cancelled < 0 ? 0 : cancelled);
    kl_listener_close(&demo.listener);
    kl_sched_shutdown();
    int drc = kl_connset_destroy(&demo.conns);
    kl_reactor_destroy();
    return cancelled < 0 || drc != 0 ? 1 : 0;
}
