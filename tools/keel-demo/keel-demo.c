/* keel-demo: what `make run` starts until keeld exists.
 *
 * A line echo server on keel's runtime, to show it working: one reactor
 * (io_uring, or epoll where io_uring is unavailable), a fiber that accepts on
 * 127.0.0.1:11211 and one fiber per connection, every read and write parked
 * on the reactor. At start-up it checks itself: 32 client fibers send 500
 * lines each through the server over loopback and the demo prints the
 * requests per second and round-trip percentiles. Then it serves until
 * SIGINT or SIGTERM, which a fiber receives (keel/sigwait.h) and turns into
 * a clean stop: the acceptor is cancelled at once, open connections get a
 * grace period (2 s) to finish, then are cancelled (kl_reactor_shutdown). SIGHUP writes a dump of
 * every fiber to stderr.
 *
 * Commands on a connection: any line is echoed back; "stats" prints the
 * reactor's counters; "quit" closes the connection. It says plainly that it
 * is a demo and not the server.
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
#include "keel/fiber.h"
#include "keel/histogram.h"
#include "keel/io.h"
#include "keel/reactor.h"
#include "keel/sigwait.h"

#define MS          1000000ull
#define LINE_BYTES  1024
#define CHECK_CONNS 32
#define CHECK_LINES 500

struct demo {
    struct sockaddr_in addr;
    int listen_fd;
    uint64_t lines_served;
    uint64_t connections;
    struct kl_hist rtt;     /* self-check round trips, ns */
    uint32_t check_running; /* self-check clients not finished */
    uint32_t check_failed;
    uint64_t grace_ns;
    kl_fiber_id acceptor;
};

static struct demo demo;

static void usage(FILE *out)
{
    fprintf(out, "usage: keel-demo [--port N] [--backend auto|uring|epoll] [--no-check]\n"
                 "                 [--grace-ms N]\n"
                 "A demo of keel's fiber runtime: a line echo server on 127.0.0.1.\n"
                 "keeld, the server, does not exist yet; until it does, `make run`\n"
                 "starts this program instead. Stop it with Ctrl-C (SIGINT) or SIGTERM;\n"
                 "SIGHUP dumps its fibers to stderr.\n");
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

static int send_stats(int fd)
{
    struct kl_reactor_stats st;
    kl_reactor_stats(&st);
    char out[512];
    int n = snprintf(out, sizeof out,
                     "backend %s\r\nconnections %llu\r\nlines %llu\r\niterations %llu\r\n"
                     "syscalls %llu\r\nsubmissions %llu\r\ncompletions %llu\r\nEND\r\n",
                     kl_reactor_backend_name(kl_reactor_backend()),
                     (unsigned long long)demo.connections, (unsigned long long)demo.lines_served,
                     (unsigned long long)st.iterations, (unsigned long long)st.syscalls,
                     (unsigned long long)st.submissions, (unsigned long long)st.completions);
    return send_all(fd, out, (size_t)n);
}

/* Serve one connection: echo each line, until the peer closes or "quit". */
static intptr_t connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[LINE_BYTES];
    size_t have = 0;
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl == NULL) {
            if (have == sizeof buf) {
                send_all(fd, "ERROR line too long\r\n", 21);
                break;
            }
            ssize_t n = kl_recv(fd, buf + have, sizeof buf - have, 0, 0);
            if (n <= 0)
                break; /* closed, error, or cancelled by the shutdown */
            have += (size_t)n;
            continue;
        }
        size_t len = (size_t)(nl - buf) + 1;
        size_t word = len - 1 - (len >= 2 && buf[len - 2] == '\r');
        int rc = 0;
        if (word == 4 && memcmp(buf, "quit", 4) == 0)
            break;
        if (word == 5 && memcmp(buf, "stats", 5) == 0)
            rc = send_stats(fd);
        else
            rc = send_all(fd, buf, len);
        if (rc < 0)
            break;
        demo.lines_served++;
        memmove(buf, buf + len, have - len);
        have -= len;
    }
    kl_close(fd);
    return 0;
}

static intptr_t acceptor(void *arg)
{
    (void)arg;
    while (!kl_reactor_stopping()) {
        int fd = kl_accept(demo.listen_fd, NULL, NULL, 0);
        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            fprintf(stderr, "keel-demo: accept: %s\n", strerror(-fd));
            kl_sleep(10 * MS); /* EMFILE and friends: do not spin */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        kl_fiber_id id;
        if (kl_fiber_spawn(&id, "connection", connection, (void *)(intptr_t)fd,
                           KL_FIBER_PRIO_NORMAL) != 0) {
            kl_close(fd); /* every fiber slot taken: refuse the connection */
            continue;
        }
        kl_fiber_detach(id);
        demo.connections++;
    }
    return 0;
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
        kl_fiber_cancel(demo.acceptor); /* no new connections from now on */
        kl_reactor_stop();
        return 0;
    }
}

/* ---- self-check ------------------------------------------------------------- */

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
    printf("self-check: %d fibers x %d lines echoed in %.3f s: %.0f lines/s; "
           "round trip p50 %.1f us, p99 %.1f us; %u failed\n",
           CHECK_CONNS, CHECK_LINES, secs, CHECK_CONNS * CHECK_LINES / secs,
           (double)kl_hist_percentile(&demo.rtt, 50) / 1e3,
           (double)kl_hist_percentile(&demo.rtt, 99) / 1e3, demo.check_failed);
    return demo.check_failed == 0;
}

/* ---- main --------------------------------------------------------------------- */

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    demo.addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    demo.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof demo.addr;
    if (bind(fd, (struct sockaddr *)&demo.addr, sizeof demo.addr) != 0 || listen(fd, 512) != 0 ||
        getsockname(fd, (struct sockaddr *)&demo.addr, &len) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

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
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'}, {"backend", required_argument, NULL, 'b'},
        {"no-check", no_argument, NULL, 'n'},   {"grace-ms", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},       {0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:b:ng:h", opts, NULL)) != -1) {
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

    demo.listen_fd = listen_on(port);
    if (demo.listen_fd < 0) {
        fprintf(stderr, "keel-demo: cannot listen on 127.0.0.1:%d: %s\n", port,
                strerror(-demo.listen_fd));
        return 1;
    }
    int rc =
        kl_sched_init(&(struct kl_sched_config){.max_fibers = 4096, .hog_threshold_ns = 100 * MS});
    if (rc == 0)
        rc = kl_reactor_init(&ro);
    if (rc != 0) {
        fprintf(stderr, "keel-demo: cannot start the runtime: %s\n", strerror(-rc));
        return 1;
    }
    printf("keel-demo: a demo of keel's runtime, not keeld (the server does not exist yet)\n");
    printf("keel-demo: reactor on %s; line echo server on 127.0.0.1:%d\n",
           kl_reactor_backend_name(kl_reactor_backend()), ntohs(demo.addr.sin_port));

    kl_fiber_id sig;
    if (kl_fiber_spawn(&demo.acceptor, "acceptor", acceptor, NULL, KL_FIBER_PRIO_HIGH) != 0 ||
        kl_fiber_detach(demo.acceptor) != 0) {
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
    printf("keel-demo: stopped: %llu connections, %llu lines served; %d fibers cancelled after the "
           "grace period\n",
           (unsigned long long)demo.connections, (unsigned long long)demo.lines_served,
           cancelled < 0 ? 0 : cancelled);
    kl_close(demo.listen_fd);
    kl_sched_shutdown();
    kl_reactor_destroy();
    return cancelled < 0 ? 1 : 0;
}
