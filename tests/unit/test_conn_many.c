/* Tests for keel/conn.h and keel/listener.h at the edges of the process's
 * resources, on both backends: the acceptor backs off on EMFILE (the test
 * lowers RLIMIT_NOFILE) and serves the waiting connections once descriptors
 * are free again; and 15,000 idle connections, opened by a child process
 * with one request each, are held with no runner, no read buffer and no
 * write batch lent to any of them. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/conn.h"
#include "keel/io.h"
#include "keel/listener.h"
#include "keel/reactor.h"

#include "conn_kit.h"
#include "kt.h"
#include "reactor_kit.h"

#ifndef MANY
#define MANY 15000
#endif

/* ---- EMFILE back-off ------------------------------------------------------------- */

static intptr_t emfile_driver(void *arg)
{
    (void)arg;
    int fds[4];
    for (int i = 0; i < 4; i++) /* the clients' descriptors, before the limit drops */
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct rlimit old;
    KT_EQ_I(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0); /* the lowest free descriptor: the limit makes it unusable */
    close(probe);
    struct rlimit low = {.rlim_cur = (rlim_t)probe, .rlim_max = old.rlim_max};
    uint64_t accepted0 = ck.l.stats.accepted;
    KT_EQ_I(setrlimit(RLIMIT_NOFILE, &low), 0);
    for (int i = 0; i < 4; i++) /* in the backlog; accepting them needs a descriptor */
        KT_EQ_I(kl_connect(fds[i], (struct sockaddr *)&ck.addr, sizeof ck.addr, SEC), 0);
    kl_sleep(100 * MS);
    struct kl_listener_stats st = ck.l.stats;
    KT_EQ_I(setrlimit(RLIMIT_NOFILE, &old), 0);
    printf("    100 ms out of descriptors: %llu back-offs, %llu other errors\n",
           (unsigned long long)st.backoffs, (unsigned long long)st.errors);
    KT_CHECK(st.backoffs >= 2);  /* it tried again */
    KT_CHECK(st.backoffs <= 20); /* but did not spin: 1, 2, 4 ... ms */
    KT_EQ_U(st.errors, 0);
    KT_EQ_U(st.accepted, accepted0);
    KT_CHECK(ck_wait_open(4, 2 * SEC)); /* served once descriptors are free */
    char back[3];
    for (int i = 0; i < 4; i++) {
        KT_CHECK(fds[i] >= 0 && ck_send(fds[i], "e\n", 2) && ck_recv_exact(fds[i], back, 2, SEC));
        if (fds[i] >= 0)
            kl_close(fds[i]);
    }
    ck_finish();
    return 0;
}

static void emfile_case(enum kl_reactor_backend b)
{
    (void)b;
    if (!ck_up(&(struct kl_connset_config){0}))
        return;
    rk_spawn("driver", emfile_driver, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    ck_down();
}

KT_TEST(emfile_backs_off) { rk_each_backend(emfile_case); }

/* ---- 15,000 idle connections from another process --------------------------------- */

/* The child: MANY connections, one round trip each, report, hold until told. */
static void many_child(const struct sockaddr_in *addr, int report, int hold)
{
    static int fds[MANY];
    int ok = 0;
    for (int i = 0; i < MANY; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (const struct sockaddr *)addr, sizeof *addr) != 0)
            break;
        char back[2];
        if (send(fds[i], "m\n", 2, MSG_NOSIGNAL) != 2 || recv(fds[i], back, 2, MSG_WAITALL) != 2)
            break;
        ok++;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%d\n", ok);
    if (write(report, line, (size_t)n) != n)
        _exit(2);
    char c;
    if (read(hold, &c, 1) < 0)
        _exit(3);
    _exit(0);
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static intptr_t many_driver(void *arg)
{
    (void)arg;
    int report[2], hold[2];
    if (pipe(report) != 0 || pipe(hold) != 0) {
        kt_fail(__FILE__, __LINE__, "pipe: %d", errno);
        return 0;
    }
    long rss0 = rss_bytes();
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        close(hold[1]);
        many_child(&ck.addr, report[1], hold[0]);
    }
    close(report[1]);
    close(hold[0]);
    char line[32] = {0};
    ssize_t n = kl_read(report[0], line, sizeof line - 1, 120 * SEC);
    int got = n > 0 ? atoi(line) : -1;
    KT_EQ_I(got, MANY);
    uint64_t t0 = kl_now();
    KT_CHECK(ck_wait_open(MANY, 5 * SEC));
    long rss1 = rss_bytes();
    printf("    %u connections open (reached in %.1f ms after the child's report); server RSS "
           "%+ld B, %.0f B per connection\n",
           ck.set.stats.open, (double)(kl_now() - t0) / 1e6, rss1 - rss0,
           (double)(rss1 - rss0) / MANY);
    KT_EQ_U(ck.set.stats.active, 0);
    KT_EQ_U(kl_pool_in_use(&ck.set.rbufs), 0);   /* no read buffer held */
    KT_EQ_U(kl_pool_in_use(&ck.set.batches), 0); /* no write batch */
    KT_CHECK(ck.set.stats.runners <= ck.set.cfg.max_active);
    KT_CHECK(write(hold[1], "x", 1) == 1); /* the child exits, closing everything */
    int status = -1;
    for (int i = 0; i < 2000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        kl_sleep(5 * MS);
    }
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(report[0]);
    close(hold[1]);
    ck_finish();
    return 0;
}

static void many_case(enum kl_reactor_backend b)
{
    (void)b;
    if (!ck_up(&(struct kl_connset_config){.max_conns = MANY + 100}))
        return;
    rk_spawn("driver", many_driver, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    ck_down();
    KT_EQ_U(ck.set.stats.opened, MANY);
}

KT_TEST(fifteen_thousand_idle_connections)
{
    struct rlimit rl;
    KT_EQ_I(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t need = MANY + 200;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        KT_SKIP("the hard RLIMIT_NOFILE is %llu; %d connections need %llu descriptors",
                (unsigned long long)rl.rlim_max, MANY, (unsigned long long)need);
    struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
    KT_EQ_I(setrlimit(RLIMIT_NOFILE, &raised), 0);
    rk_each_backend(many_case);
    setrlimit(RLIMIT_NOFILE, &rl);
}
