/* bench/conn: keel's connections (keel-demo) against a hand-written epoll
 * server and against memcached.
 *
 * Throughput. A pipelined line echo: 32 connections, each sending 16 lines
 * at once and waiting for their 16 echoes (then 1 line at a time), from one
 * client thread (load.c), in BENCH_ROUNDS rounds (default 5) with the
 * servers in a rotating order (KEEL_DEMO_BEFORE=path adds another keel-demo
 * build on io_uring to the rotation, to compare before and after a change),
 * every round printed, medians compared.
 * Servers, each in its own process: keel-demo on
 * io_uring, the same with a batch wait of BATCH_WAIT_US (`--batch-wait`:
 * a loop that has just seen several completions waits up to that long for
 * as many again before it wakes), keel-demo on epoll, and the baseline
 * (baseline.c: edge-triggered epoll, one thread per core). System calls per
 * request come from each server's own count ("stats": keel's reactor counts
 * every system call its thread makes for I/O and waiting; the baseline
 * counts its own), over the lines it echoed; CPU time per request from
 * /proc/PID/stat over the same run. Client and servers share the machine's
 * cores: the rates are rough on a busy machine; the system call counts are
 * not disturbed.
 *
 * Idle memory. 10,000 connections, each opened, sent one request and
 * answered, then held open; the server's RSS after minus before, divided by
 * 10,000. keel-demo (both backends) and memcached (`memcached -u root -U 0
 * -l 127.0.0.1 -p PORT -c 19000`, one "version" request each), each started
 * for the measurement and stopped by its pid.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_conn.h"

#define CONNS         32
#define IDLE          10000
#define SECS          2.0
#define MAX_ROUNDS    25
#define BATCH_WAIT_US "20"

extern char **environ;

static long rss_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    long size = 0, rss = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &rss) != 2)
            rss = -1;
        fclose(f);
    }
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

/* Start keel-demo on `backend` with `--batch-wait batch_wait_us`; its pid
 * and port, or -1. */
static pid_t demo_start_at(const char *path, const char *backend, const char *batch_wait_us,
                           int *port)
{
    char *argv[] = {(char *)path, "--port",     "0",   "--backend",    (char *)backend,
                    "--no-check", "--grace-ms", "100", "--batch-wait", (char *)batch_wait_us,
                    NULL};
    return bc_spawn(path, argv, "line echo server on 127.0.0.1:", port);
}

static pid_t demo_start(const char *backend, int *port)
{
    return demo_start_at(KEEL_DEMO_PATH, backend, "0", port);
}

/* A free port on 127.0.0.1 (bound, read, released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static pid_t memcached_start(int *port)
{
    *port = free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", *port);
    char *argv[] = {"memcached", "-u", "root", "-U", "0",     "-l",
                    "127.0.0.1", "-p", ps,     "-c", "19000", NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "memcached", NULL, NULL, argv, environ) != 0)
        return -1;
    for (int i = 0; i < 50; i++) { /* until it answers */
        int fd;
        if (bc_hold(*port, 1, &fd, "version\r\n") == 1) {
            close(fd);
            return pid;
        }
        if (fd >= 0)
            close(fd);
        usleep(100000);
    }
    bc_stop(pid);
    return -1;
}

struct tput {
    double rps[2];     /* 16 deep, 1 deep */
    double per_req[2]; /* system calls per request */
    double cpu_ns[2];  /* the server's CPU time per request */
};

static int run_tput(pid_t pid, int port, const char *name, int round, struct tput *t)
{
    static const int depth[2] = {16, 1};
    for (int d = 0; d < 2; d++) {
        uint64_t s0, l0, s1, l1;
        if (pid <= 0 || bc_stats(port, &s0, &l0) != 0) {
            fprintf(stderr, "bench_conn: %s: not running (or no stats): left out\n", name);
            return -1;
        }
        double cpu0 = bc_cpu_seconds(pid);
        t->rps[d] = bc_load(port, CONNS, depth[d], SECS);
        double cpu1 = bc_cpu_seconds(pid);
        if (bc_stats(port, &s1, &l1) != 0 || t->rps[d] <= 0) {
            fprintf(stderr, "bench_conn: %s: no load or no stats: left out\n", name);
            return -1;
        }
        t->per_req[d] = (double)(s1 - s0) / (double)(l1 - l0);
        t->cpu_ns[d] = cpu0 < 0 || cpu1 < 0 ? -1 : (cpu1 - cpu0) * 1e9 / (double)(l1 - l0);
        printf("%-5d %-22s %5d x %-2d %12.0f %14.4f %10.0f\n", round, name, CONNS, depth[d],
               t->rps[d], t->per_req[d], t->cpu_ns[d]);
    }
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
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double idle_bytes(pid_t pid, int port, const char *name, const char *request, int *fds)
{
    if (pid <= 0)
        return -1;
    usleep(200000);
    long before = rss_of(pid);
    int held = bc_hold(port, IDLE, fds, request);
    usleep(500000); /* let the server settle: buffers go back once idle */
    long after = rss_of(pid);
    for (int i = 0; i < held; i++)
        close(fds[i]);
    if (held != IDLE || before < 0 || after < 0) {
        printf("%-22s held %d of %d connections: no figure\n", name, held, IDLE);
        return -1;
    }
    double per = (double)(after - before) / IDLE;
    printf("%-22s %8d %12ld %12ld %10.0f\n", name, IDLE, before, after, per);
    return per;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    const char *env = getenv("BENCH_ROUNDS");
    int rounds = env ? atoi(env) : 5;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 5;
    printf("pipelined line echo, %d connections, %.0f s per run, %d rounds, the servers in a\n"
           "rotating order (client and servers share the machine's cores)\n",
           CONNS, SECS, rounds);
    printf("%-5s %-22s %10s %12s %14s %10s\n", "round", "server", "conns x depth", "requests/s",
           "syscalls/req", "CPU ns/req");
    /* KEEL_DEMO_BEFORE=path: another keel-demo build (say, before a change)
     * joins the rotation on io_uring, for a side-by-side comparison */
    const char *before = getenv("KEEL_DEMO_BEFORE");
    enum { URING, URING_BW, EPOLL, BASE, BEFORE, NSERVERS_MAX };
    static const char *const names[NSERVERS_MAX] = {
        "keel-demo io_uring", ("keel-demo uring bw " BATCH_WAIT_US), "keel-demo epoll",
        "epoll baseline", "before: io_uring"};
    int nservers = before ? NSERVERS_MAX : BEFORE;
    pid_t pids[NSERVERS_MAX];
    int ports[NSERVERS_MAX];
    pids[URING] = demo_start("uring", &ports[URING]);
    pids[URING_BW] = demo_start_at(KEEL_DEMO_PATH, "uring", BATCH_WAIT_US, &ports[URING_BW]);
    pids[EPOLL] = demo_start("epoll", &ports[EPOLL]);
    pids[BASE] = bc_baseline_start(&ports[BASE]);
    if (before)
        pids[BEFORE] = demo_start_at(before, "uring", "0", &ports[BEFORE]);
    static double rps[NSERVERS_MAX][2][MAX_ROUNDS], per_req[NSERVERS_MAX][2][MAX_ROUNDS],
        cpu[NSERVERS_MAX][2][MAX_ROUNDS];
    int ok[NSERVERS_MAX] = {0};
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < nservers; i++) {
            int k = (r + i) % nservers; /* who goes first rotates */
            struct tput t = {0};
            if (ok[k] == 0 && run_tput(pids[k], ports[k], names[k], r + 1, &t) != 0)
                ok[k] = -1;
            for (int d = 0; d < 2; d++) {
                rps[k][d][r] = t.rps[d];
                per_req[k][d][r] = t.per_req[d];
                cpu[k][d][r] = t.cpu_ns[d];
            }
        }
    }
    for (int i = 0; i < nservers; i++)
        bc_stop(pids[i]);
    struct tput med[NSERVERS_MAX];
    printf("\nmedians of %d rounds\n", rounds);
    for (int k = 0; k < nservers; k++) {
        for (int d = 0; d < 2 && ok[k] == 0; d++) {
            med[k].rps[d] = median(rps[k][d], rounds);
            med[k].per_req[d] = median(per_req[k][d], rounds);
            med[k].cpu_ns[d] = median(cpu[k][d], rounds);
            printf("      %-22s %5d x %-2d %12.0f %14.4f %10.0f\n", names[k], CONNS, d ? 1 : 16,
                   med[k].rps[d], med[k].per_req[d], med[k].cpu_ns[d]);
        }
    }
    int ok_u = ok[URING], ok_w = ok[URING_BW], ok_b = ok[BASE];
    struct tput ku = med[URING], kw = med[URING_BW], base = med[BASE];

    printf("\nmemory per idle connection (%d held, one request each)\n", IDLE);
    printf("%-22s %8s %12s %12s %10s\n", "server", "conns", "RSS before", "RSS after", "B/conn");
    static int fds[IDLE];
    int port;
    pid_t pid = demo_start("uring", &port);
    double idle_u = idle_bytes(pid, port, "keel-demo io_uring", "idle\n", fds);
    bc_stop(pid);
    pid = demo_start("epoll", &port);
    double idle_e = idle_bytes(pid, port, "keel-demo epoll", "idle\n", fds);
    bc_stop(pid);
    pid = memcached_start(&port);
    double idle_m = idle_bytes(pid, port, "memcached", "version\r\n", fds);
    bc_stop(pid);
    (void)idle_e;

    printf("\n");
    if (ok_u == 0) {
        printf("result conn_pipelined_rps_uring %.0f req/s\n", ku.rps[0]);
        printf("result conn_syscalls_per_req_pipelined %.4f syscalls/req\n", ku.per_req[0]);
    }
    if (ok_u == 0 && ok_b == 0)
        printf("result conn_vs_epoll_baseline %.2f x\n", ku.rps[0] / base.rps[0]);
    if (ok_w == 0) {
        printf("result conn_pipelined_rps_uring_batch_wait %.0f req/s\n", kw.rps[0]);
        printf("result conn_syscalls_per_req_pipelined_batch_wait %.4f syscalls/req\n",
               kw.per_req[0]);
    }
    if (ok_w == 0 && ok_b == 0)
        printf("result conn_vs_epoll_baseline_batch_wait %.2f x\n", kw.rps[0] / base.rps[0]);
    if (idle_u > 0)
        printf("result conn_idle_bytes %.0f B\n", idle_u);
    if (idle_u > 0 && idle_m > 0)
        printf("result conn_idle_vs_memcached %.2f x\n", idle_u / idle_m);
    return ok_u == 0 && ok_w == 0 && ok_b == 0 && idle_u > 0 && idle_m > 0 ? 0 : 1;
}
