/* bench/echo: an echo server on keel's reactor (io_uring, then epoll)
 * against a plain one-thread-per-connection server, driven by one client.
 *
 * Each server runs in a child process on a listening socket on 127.0.0.1.
 * The client, in the parent, is always the same program: keel fibers on an
 * io_uring reactor, CONNS connections, each sending a MSG-byte request and
 * waiting for the whole echo before the next (closed loop). Once every
 * connection is up, the client measures for a fixed time: requests, and the
 * latency of each one (write to full echo) in a histogram. Rounds alternate
 * the order of the servers (A B C, then C B A, ...) so that drift on the
 * machine does not favour one side; the table shows the median rate over
 * rounds and the p99 over all requests.
 *
 * System calls per request. For keel's servers, the server's own reactor
 * counters (every system call the reactor thread makes for I/O and waiting)
 * over the requests it served. For every server, also the kernel's count:
 * `perf stat -e raw_syscalls:sys_enter -p PID`, divided by the requests the
 * client made from starting perf to stopping it (perf counts from when it
 * has attached, a moment after it starts, so this column errs low by that
 * moment over the ~window+0.2 s it spans). When perf is missing or refused,
 * the column says so. Client and server share the machine's cores.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/fiber.h"
#include "keel/histogram.h"
#include "keel/io.h"
#include "keel/reactor.h"

#define CONNS      64
#define MSG        64
#define MAX_ROUNDS 15

extern char **environ;

enum mode { MODE_URING, MODE_EPOLL, MODE_THREADS, MODE_COUNT };
static const char *const mode_name[MODE_COUNT] = {"keel io_uring", "keel epoll", "thread per conn"};
static const char *const mode_key[MODE_COUNT] = {"uring", "epoll", "threads"};

/* What a server child reports through its pipe when it ends. */
struct server_report {
    uint64_t requests;
    uint64_t syscalls; /* reactor's count; 0 for the thread server */
};

/* ---- servers (in the child) ------------------------------------------------ */

static int srv_listen;
static uint64_t srv_bytes;

static intptr_t srv_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = kl_read(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        srv_bytes += (uint64_t)n;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = kl_write(fd, buf + off, (size_t)(n - off), 0);
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    kl_close(fd);
    return 0;
}

static intptr_t srv_accept(void *arg)
{
    (void)arg;
    for (int i = 0; i < CONNS; i++) {
        int fd = kl_accept(srv_listen, NULL, NULL, 0);
        if (fd < 0)
            return fd;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        kl_fiber_id id;
        if (kl_fiber_spawn(&id, "conn", srv_conn, (void *)(intptr_t)fd, KL_FIBER_PRIO_NORMAL) == 0)
            kl_fiber_detach(id);
    }
    return 0;
}

static void *thread_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    uint64_t bytes = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        bytes += (uint64_t)n;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    close(fd);
    return (void *)(uintptr_t)bytes;
}

static struct server_report run_server(enum mode m)
{
    struct server_report rep = {0};
    if (m == MODE_THREADS) {
        pthread_t th[CONNS];
        for (int i = 0; i < CONNS; i++) {
            int fd = accept(srv_listen, NULL, NULL);
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            pthread_create(&th[i], NULL, thread_conn, (void *)(intptr_t)fd);
        }
        for (int i = 0; i < CONNS; i++) {
            void *bytes;
            pthread_join(th[i], &bytes);
            rep.requests += (uintptr_t)bytes / MSG;
        }
        return rep;
    }
    struct kl_sched_config cfg = {.max_fibers = CONNS + 8};
    struct kl_reactor_options o = {.backend =
                                       m == MODE_URING ? KL_REACTOR_URING : KL_REACTOR_EPOLL};
    if (kl_sched_init(&cfg) != 0 || kl_reactor_init(&o) != 0) {
        fprintf(stderr, "server: cannot start %s\n", mode_name[m]);
        exit(1);
    }
    kl_fiber_id id;
    kl_fiber_spawn(&id, "accept", srv_accept, NULL, KL_FIBER_PRIO_NORMAL);
    kl_fiber_detach(id);
    kl_reactor_run();
    struct kl_reactor_stats st;
    kl_reactor_stats(&st);
    rep.requests = srv_bytes / MSG;
    rep.syscalls = st.syscalls;
    kl_sched_shutdown();
    kl_reactor_destroy();
    return rep;
}

/* ---- the client (in the parent) ---------------------------------------------- */

static struct sockaddr_in cli_addr;
static int cli_connected;
static bool cli_measuring, cli_stop;
static bool cli_perf_on;
static uint64_t cli_requests, cli_errors, cli_perf_requests;
static struct kl_hist cli_hist;

static intptr_t cli_conn(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (kl_connect(fd, (struct sockaddr *)&cli_addr, sizeof cli_addr, 0) != 0) {
        cli_errors++;
        cli_connected++;
        kl_close(fd);
        return 0;
    }
    cli_connected++;
    char out[MSG], in[MSG];
    memset(out, 'k', sizeof out);
    while (!cli_stop) {
        uint64_t t0 = kl_now();
        if (kl_write(fd, out, sizeof out, 0) != MSG) {
            cli_errors++;
            break;
        }
        size_t got = 0;
        while (got < MSG) {
            ssize_t n = kl_read(fd, in + got, MSG - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got < MSG) {
            cli_errors++;
            break;
        }
        if (cli_perf_on)
            cli_perf_requests++;
        if (cli_measuring) {
            cli_requests++;
            kl_hist_record(&cli_hist, kl_now() - t0);
        }
    }
    kl_close(fd);
    return 0;
}

static pid_t perf_start(pid_t target, const char *out)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)target);
    char *argv[] = {"perf", "stat", "-e", "raw_syscalls:sys_enter", "-x", ",", "-o", (char *)out,
                    "-p",   pid,    NULL};
    pid_t p;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&p, "perf", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? p : -1;
}

/* The count perf wrote, or -1. */
static double perf_stop(pid_t p, const char *out)
{
    if (p <= 0)
        return -1;
    kill(p, SIGINT);
    int status;
    waitpid(p, &status, 0);
    FILE *f = fopen(out, "r");
    if (f == NULL)
        return -1;
    char line[256];
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "raw_syscalls:sys_enter") && line[0] >= '0' && line[0] <= '9')
            v = strtod(line, NULL);
    fclose(f);
    unlink(out);
    return v;
}

struct round_result {
    double rps;
    double perf_calls_per_req; /* -1: not measured */
    double reactor_calls_per_req;
};

static pid_t cli_server_pid;
static uint64_t cli_seconds;
static double cli_perf_count;
static uint64_t cli_window_ns;

static intptr_t cli_control(void *arg)
{
    (void)arg;
    for (int i = 0; cli_connected < CONNS && i < 10000; i++) /* at most 10 s */
        kl_sleep(1000000);
    kl_sleep(100000000); /* 100 ms of warm-up */
    char out[64];
    snprintf(out, sizeof out, "/tmp/keel-bench-echo-perf.%d", (int)getpid());
    pid_t perf = perf_start(cli_server_pid, out);
    cli_perf_on = perf > 0;
    if (perf > 0)
        kl_sleep(200000000); /* let perf attach before the window opens */
    uint64_t t0 = kl_now();
    cli_measuring = true;
    kl_sleep(cli_seconds * 1000000000u);
    cli_measuring = false;
    cli_window_ns = kl_now() - t0;
    cli_perf_count = perf_stop(perf, out); /* blocks the client: no request runs meanwhile */
    cli_perf_on = false;
    cli_stop = true;
    return 0;
}

static int run_round(enum mode m, struct kl_hist *hist, struct round_result *res)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cli_addr =
        (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof cli_addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&cli_addr, len) < 0 || listen(lfd, CONNS) < 0 ||
        getsockname(lfd, (struct sockaddr *)&cli_addr, &len) < 0)
        return -errno;
    int pfd[2];
    if (pipe(pfd) < 0)
        return -errno;
    pid_t child = fork();
    if (child == 0) {
        close(pfd[0]);
        srv_listen = lfd;
        struct server_report rep = run_server(m);
        ssize_t w = write(pfd[1], &rep, sizeof rep);
        _exit(w == (ssize_t)sizeof rep ? 0 : 1);
    }
    close(pfd[1]);
    close(lfd);

    cli_server_pid = child;
    cli_connected = 0;
    cli_measuring = cli_stop = false;
    cli_requests = cli_errors = cli_perf_requests = 0;
    cli_perf_on = false;
    kl_hist_init(&cli_hist);
    struct kl_sched_config cfg = {.max_fibers = CONNS + 8};
    struct kl_reactor_options o = {.backend = KL_REACTOR_URING};
    if (kl_sched_init(&cfg) != 0 || kl_reactor_init(&o) != 0)
        return -1;
    kl_fiber_id id;
    for (int i = 0; i < CONNS; i++) {
        kl_fiber_spawn(&id, "client", cli_conn, NULL, KL_FIBER_PRIO_NORMAL);
        kl_fiber_detach(id);
    }
    kl_fiber_spawn(&id, "control", cli_control, NULL, KL_FIBER_PRIO_HIGH);
    kl_fiber_detach(id);
    kl_reactor_run();
    kl_sched_shutdown();
    kl_reactor_destroy();

    struct server_report rep = {0};
    ssize_t got = read(pfd[0], &rep, sizeof rep);
    close(pfd[0]);
    int status;
    waitpid(child, &status, 0);
    if (got != (ssize_t)sizeof rep || cli_errors > 0) {
        fprintf(stderr, "%s: server report %zd bytes, %ju client errors\n", mode_name[m], got,
                (uintmax_t)cli_errors);
        return -1;
    }
    kl_hist_merge(hist, &cli_hist);
    res->rps = (double)cli_requests * 1e9 / (double)cli_window_ns;
    /* perf counted from its start to its stop: divide by the requests of
     * that same span, not by those of the (shorter) measuring window. */
    res->perf_calls_per_req = cli_perf_count >= 0 && cli_perf_requests > 0
                                  ? cli_perf_count / (double)cli_perf_requests
                                  : -1;
    res->reactor_calls_per_req =
        m != MODE_THREADS && rep.requests > 0 ? (double)rep.syscalls / (double)rep.requests : -1;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    int rounds = 3;
    cli_seconds = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            cli_seconds = (uint64_t)atoi(argv[i + 1]);
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || cli_seconds < 1) {
        fprintf(stderr, "usage: bench_echo [--rounds 1..%d] [--seconds N]\n", MAX_ROUNDS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    static struct kl_hist hist[MODE_COUNT];
    static struct round_result res[MODE_COUNT][MAX_ROUNDS];
    for (int m = 0; m < MODE_COUNT; m++)
        kl_hist_init(&hist[m]);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("echo over 127.0.0.1: %d connections, %d-byte requests, closed loop, %ju s per round, "
           "%d rounds, order alternating\n",
           CONNS, MSG, (uintmax_t)cli_seconds, rounds);
    printf("client (keel fibers on io_uring) and server share this %ld-core machine\n\n", cpus);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < MODE_COUNT; k++) {
            enum mode m = (enum mode)(r % 2 == 0 ? k : MODE_COUNT - 1 - k);
            if (run_round(m, &hist[m], &res[m][r]) != 0) {
                fprintf(stderr, "round %d of %s failed\n", r + 1, mode_name[m]);
                return 1;
            }
            printf("round %d %-16s %10.0f rps\n", r + 1, mode_name[m], res[m][r].rps);
            fflush(stdout);
        }
    }
    printf("\n%-16s %12s %10s %10s %18s %18s\n", "server", "median rps", "p50 us", "p99 us",
           "calls/req reactor", "calls/req perf");
    double rps[MODE_COUNT], p99[MODE_COUNT], calls[MODE_COUNT], pcalls[MODE_COUNT];
    for (int m = 0; m < MODE_COUNT; m++) {
        double v[MAX_ROUNDS], c[MAX_ROUNDS], pc[MAX_ROUNDS];
        for (int r = 0; r < rounds; r++) {
            v[r] = res[m][r].rps;
            c[r] = res[m][r].reactor_calls_per_req;
            pc[r] = res[m][r].perf_calls_per_req;
        }
        rps[m] = median(v, rounds);
        calls[m] = median(c, rounds);
        pcalls[m] = median(pc, rounds);
        p99[m] = (double)kl_hist_percentile(&hist[m], 99) / 1000.0;
        char cr[32] = "n/a", pr[32] = "perf unavailable";
        if (calls[m] >= 0)
            snprintf(cr, sizeof cr, "%.3f", calls[m]);
        if (pcalls[m] >= 0)
            snprintf(pr, sizeof pr, "%.3f", pcalls[m]);
        printf("%-16s %12.0f %10.1f %10.1f %18s %18s\n", mode_name[m], rps[m],
               (double)kl_hist_percentile(&hist[m], 50) / 1000.0, p99[m], cr, pr);
    }
    printf("\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        printf("result echo_rps_%s %.0f rps\n", mode_key[m], rps[m]);
        printf("result echo_p99_%s %.1f us\n", mode_key[m], p99[m]);
    }
    printf("result echo_syscalls_per_req_uring %.3f calls\n", calls[MODE_URING]);
    printf("result echo_syscalls_per_req_epoll %.3f calls\n", calls[MODE_EPOLL]);
    for (int m = 0; m < MODE_COUNT; m++)
        if (pcalls[m] >= 0)
            printf("result echo_perf_syscalls_per_req_%s %.3f calls\n", mode_key[m], pcalls[m]);
    return 0;
}
