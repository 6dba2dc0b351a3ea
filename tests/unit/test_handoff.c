/* Tests for keel/listener.h's two modes over worker threads (keel/workers.h),
 * on both backends: a line echo server of 2 or 3 workers, each with its own
 * connection set, fed by one HANDOFF listener (its acceptor on worker 0) or
 * by a REUSEPORT listener per worker. The main thread is the client, with
 * plain blocking sockets (receive timeouts, so a lost connection fails the
 * case instead of hanging it).
 *
 * HANDOFF deals connections round-robin: exactly even over the workers
 * (also from an acceptor thread that serves no connection itself); the
 * limit is one kl_conn_quota over the process, refused on whichever worker
 * the connection reached (in both modes); EMFILE makes the acceptor back
 * off; a graceful stop while a client thread keeps connecting (sockets
 * queued between threads; in both modes) and a handoff to a worker that has
 * already ended leak no descriptor (the process's count in /proc/self/fd,
 * before and after).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/conn.h"
#include "keel/listener.h"
#include "keel/workers.h"

#include "kt.h"
#include "line_echo.h"
#include "reactor_kit.h"

#define MAXW     4
#define DEADLINE (20 * SEC) /* generous: ASan on a loaded 2-core machine */
#define REFUSAL  "SERVER_ERROR too many open connections\r\n"

enum { C_OPEN = LINE_ECHO_OPENED, C_CLOSED = LINE_ECHO_CLOSED, C_REFUSED, C_COUNT };

/* The server: the listeners, each worker's set, the shared limit. */
static struct {
    enum kl_reactor_backend backend;
    enum kl_listener_mode mode;
    uint32_t n;
    struct kl_workers *g;
    struct kl_listener l[MAXW]; /* HANDOFF: l[0] only */
    struct kl_connset set[MAXW];
    struct kl_conn_quota quota;
    bool use_quota;
    bool lone_acceptor;     /* HANDOFF: worker 0 only accepts (no set) */
    atomic_int state[MAXW]; /* 0 starting, 1 serving, 2 drained, -errno failed */
    struct sockaddr_in addr;
    uint64_t grace_ns;
    uint64_t dropped; /* HANDOFF, at the last hk_down: sockets closed unserved */
} hk;

/* On the thread that refuses: its own counters are `arg`. */
static void refuse(int fd, void *arg)
{
    ssize_t n = send(fd, REFUSAL, sizeof REFUSAL - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    kl_counter_add(&((kl_counter *)arg)[C_REFUSED], 1);
}

static void worker_main(struct kl_worker *w, void *arg)
{
    (void)arg;
    uint32_t i = kl_worker_index(w);
    kl_counter *counters = kl_worker_counters(w);
    struct kl_connset_config cc = {
        .max_conns = 256,
        .quota = hk.use_quota ? &hk.quota : NULL,
        .handler = line_echo,
        .on_open = line_echo_opened,
        .on_close = line_echo_closed,
        .arg = counters,
    };
    bool serves = !(hk.lone_acceptor && i == 0);
    int rc = serves ? kl_connset_init(&hk.set[i], &cc) : 0;
    if (rc == 0 && (hk.mode == KL_LISTENER_REUSEPORT || i == 0)) {
        hk.l[i].cfg.arg = counters; /* refuse's, on this thread */
        rc = kl_listener_start(&hk.l[i]);
    } else if (rc == 0) {
        rc = kl_listener_join(&hk.l[0], &hk.set[i], counters);
    }
    atomic_store(&hk.state[i], rc == 0 ? 1 : rc);
}

/* Bring up n workers in `mode`; quota_max 0: no shared limit; HANDOFF
 * with room for `shares` threads (0: n). */
static bool hk_up(enum kl_listener_mode mode, uint32_t n, uint32_t quota_max, uint32_t shares)
{
    hk.mode = mode;
    hk.n = n;
    hk.use_quota = quota_max > 0;
    kl_conn_quota_init(&hk.quota, quota_max);
    for (uint32_t i = 0; i < MAXW; i++)
        atomic_store(&hk.state[i], 0);
    struct kl_listener_config lc = {
        .addrs = "127.0.0.1:0",
        .conns = hk.lone_acceptor ? NULL : &hk.set[0],
        .refuse = refuse,
        .mode = mode,
        .handoff_workers = shares ? shares : n,
    };
    KT_EQ_I(kl_listener_open(&hk.l[0], &lc), 0);
    for (uint32_t i = 1; mode == KL_LISTENER_REUSEPORT && i < n; i++)
        KT_EQ_I(kl_listener_clone(&hk.l[i], &hk.l[0], &hk.set[i]), 0);
    hk.addr = (struct sockaddr_in){.sin_family = AF_INET,
                                   .sin_port = htons(kl_listener_port(&hk.l[0], 0)),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct kl_workers_options o = {
        .count = n,
        .reactor = {.backend = hk.backend},
        .sched = {.max_fibers = 256},
        .counters = C_COUNT,
        .name = "test-hand",
    };
    int rc = kl_workers_start(&hk.g, &o, worker_main, NULL);
    KT_EQ_I(rc, 0);
    if (rc != 0)
        return false;
    uint64_t until = kl_now() + DEADLINE;
    for (uint32_t i = 0; i < n; i++) {
        while (atomic_load(&hk.state[i]) == 0 && kl_now() < until)
            usleep(1000);
        KT_EQ_I(atomic_load(&hk.state[i]), 1);
        if (atomic_load(&hk.state[i]) != 1)
            return false;
    }
    return true;
}

/* On each worker, as keeld drains: stop accepting, stop the set. */
static void drain(struct kl_worker *w, void *arg)
{
    (void)arg;
    uint32_t i = kl_worker_index(w);
    if (hk.mode == KL_LISTENER_REUSEPORT || i == 0)
        kl_listener_stop(&hk.l[i]);
    if (!(hk.lone_acceptor && i == 0))
        kl_connset_stop(&hk.set[i], hk.grace_ns);
    atomic_store(&hk.state[i], 2);
}

/* Stop (gracefully: drain first), then close and free everything. */
static void hk_down(bool graceful)
{
    if (graceful) {
        KT_EQ_I(kl_workers_post_all(hk.g, drain, NULL), 0);
        uint64_t until = kl_now() + DEADLINE;
        for (uint32_t i = 0; i < hk.n; i++)
            while (atomic_load(&hk.state[i]) == 1 && kl_now() < until)
                usleep(1000);
    }
    KT_CHECK(kl_workers_stop(hk.g, 0) >= 0);
    if (hk.mode == KL_LISTENER_HANDOFF) {
        /* every socket queued for another thread was adopted, refused or closed */
        uint64_t taken = 0;
        struct kl_listener_share_stats ss;
        hk.dropped = 0;
        for (uint32_t i = 0; kl_listener_share_stats(&hk.l[0], i, &ss) == 0; i++) {
            taken += ss.adopted + ss.refused + ss.dropped;
            hk.dropped += ss.dropped;
        }
        KT_EQ_U(taken, hk.l[0].stats.handed_off);
    }
    uint32_t nl = hk.mode == KL_LISTENER_REUSEPORT ? hk.n : 1;
    for (uint32_t i = 0; i < nl; i++)
        KT_EQ_I(kl_listener_close(&hk.l[i]), 0);
    for (uint32_t i = 0; i < hk.n; i++)
        if (!(hk.lone_acceptor && i == 0))
            KT_EQ_I(kl_connset_destroy(&hk.set[i]), 0);
    if (hk.use_quota)
        KT_EQ_U(kl_conn_quota_open(&hk.quota), 0);
}

static void hk_destroy(void)
{
    kl_workers_destroy(hk.g);
    hk.g = NULL;
}

static uint64_t counter(uint32_t w, unsigned c)
{
    uint64_t v[C_COUNT];
    kl_worker_stats(kl_workers_get(hk.g, w), NULL, v);
    return v[c];
}

static uint64_t sum(unsigned c)
{
    uint64_t v[C_COUNT];
    kl_workers_stats(hk.g, NULL, v);
    return v[c];
}

/* Poll until sum(c) reaches want; false (reported) on the deadline. */
static bool wait_sum(unsigned c, uint64_t want)
{
    uint64_t until = kl_now() + DEADLINE;
    while (sum(c) < want && kl_now() < until)
        usleep(1000);
    if (sum(c) == want)
        return true;
    kt_fail(__FILE__, __LINE__, "counter %u is %ju, not %ju", c, (uintmax_t)sum(c),
            (uintmax_t)want);
    return false;
}

static void timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A connected client socket (receives time out after 5 s), or -1. The
 * timeouts come after the connect: with one, a blocking call that the
 * kernel interrupts (task work of this thread's io_uring) fails with EINTR
 * instead of restarting; the receives retry on EINTR. */
static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&hk.addr, sizeof hk.addr) != 0) {
        close(fd);
        return -1;
    }
    timeouts(fd, 5000);
    return fd;
}

/* Receive exactly len bytes; false on a timeout, an error or the end. */
static bool recv_exact(int fd, char *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* A line there and back. */
static bool echoes(int fd)
{
    char back[8];
    ssize_t sent;
    while ((sent = send(fd, "hello\n", 6, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return sent == 6 && recv_exact(fd, back, 6) && memcmp(back, "hello\n", 6) == 0;
}

/* The refusal line, then the end. */
static bool refused(int fd)
{
    char line[sizeof REFUSAL], more;
    if (!recv_exact(fd, line, sizeof REFUSAL - 1) || memcmp(line, REFUSAL, sizeof REFUSAL - 1))
        return false;
    ssize_t n;
    while ((n = recv(fd, &more, 1, 0)) < 0 && errno == EINTR)
        ;
    return n == 0;
}

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* ---- round-robin over the workers ------------------------------------------------- */

static void spread_case(enum kl_reactor_backend b)
{
    hk.backend = b;
    enum { N = 3, PER = 8 };
    if (!hk_up(KL_LISTENER_HANDOFF, N, 0, 0))
        return;
    int fds[N * PER];
    for (int i = 0; i < N * PER; i++) { /* one at a time: accepted in this order */
        fds[i] = dial();
        KT_CHECK(fds[i] >= 0 && echoes(fds[i]));
    }
    KT_CHECK(wait_sum(C_OPEN, N * PER));
    for (uint32_t w = 0; w < N; w++) {
        KT_EQ_U(counter(w, C_OPEN), PER); /* exactly even */
        struct kl_listener_share_stats ss;
        KT_EQ_I(kl_listener_share_stats(&hk.l[0], w, &ss), 0);
        KT_EQ_U(ss.refused + ss.dropped, 0);
    }
    struct kl_listener_share_stats none;
    KT_EQ_I(kl_listener_share_stats(&hk.l[0], N, &none), -ENOENT);
    for (int i = 0; i < N * PER; i++) /* every connection still works */
        KT_CHECK(fds[i] >= 0 && echoes(fds[i]));
    for (int i = 0; i < N * PER; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    KT_CHECK(wait_sum(C_CLOSED, N * PER));
    hk.grace_ns = 0;
    hk_down(true);
    KT_EQ_U(hk.l[0].stats.accepted, PER); /* its own share, read after the threads ended */
    KT_EQ_U(hk.l[0].stats.handed_off, (N - 1) * PER);
    hk_destroy();
}

KT_TEST(handoff_spreads_round_robin) { rk_each_backend(spread_case); }

/* The acceptor on a thread of its own (cfg.conns NULL): every connection
 * crosses to the 2 serving workers, evenly. */
static void lone_case(enum kl_reactor_backend b)
{
    hk.backend = b;
    hk.lone_acceptor = true;
    enum { N = 3, PER = 6 };
    if (!hk_up(KL_LISTENER_HANDOFF, N, 0, N - 1)) {
        hk.lone_acceptor = false;
        return;
    }
    int fds[(N - 1) * PER];
    for (int i = 0; i < (N - 1) * PER; i++) {
        fds[i] = dial();
        KT_CHECK(fds[i] >= 0 && echoes(fds[i]));
    }
    KT_CHECK(wait_sum(C_OPEN, (N - 1) * PER));
    KT_EQ_U(counter(0, C_OPEN), 0);
    for (uint32_t w = 1; w < N; w++)
        KT_EQ_U(counter(w, C_OPEN), PER);
    for (int i = 0; i < (N - 1) * PER; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    hk.grace_ns = 0;
    hk_down(true);
    KT_EQ_U(hk.l[0].stats.accepted, 0);
    KT_EQ_U(hk.l[0].stats.handed_off, (N - 1) * PER);
    hk_destroy();
    hk.lone_acceptor = false;
}

KT_TEST(handoff_from_an_acceptor_thread_of_its_own) { rk_each_backend(lone_case); }

/* ---- one limit over the process ------------------------------------------------------ */

static void limit_in(enum kl_listener_mode mode)
{
    enum { MAX = 4, EXTRA = 3 };
    if (!hk_up(mode, 2, MAX, 0))
        return;
    int fds[MAX + EXTRA];
    for (int i = 0; i < MAX; i++) {
        fds[i] = dial();
        KT_CHECK(fds[i] >= 0 && echoes(fds[i]));
    }
    KT_CHECK(wait_sum(C_OPEN, MAX));
    KT_EQ_U(kl_conn_quota_open(&hk.quota), MAX);
    for (int i = MAX; i < MAX + EXTRA; i++) { /* refused on whichever worker */
        fds[i] = dial();
        KT_CHECK(fds[i] >= 0 && refused(fds[i]));
    }
    KT_CHECK(wait_sum(C_REFUSED, EXTRA));
    if (mode == KL_LISTENER_HANDOFF) /* round-robin: both workers refused some */
        KT_CHECK(counter(0, C_REFUSED) > 0 && counter(1, C_REFUSED) > 0);
    close(fds[0]); /* a unit comes back */
    KT_CHECK(wait_sum(C_CLOSED, 1));
    uint64_t until = kl_now() + DEADLINE;
    while (kl_conn_quota_open(&hk.quota) != MAX - 1 && kl_now() < until)
        usleep(1000);
    fds[0] = dial();
    KT_CHECK(fds[0] >= 0 && echoes(fds[0]));
    KT_EQ_U(sum(C_OPEN), MAX + 1);
    for (int i = 0; i < MAX + EXTRA; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    hk.grace_ns = 0;
    hk_down(true);
    hk_destroy();
}

static void limit_case(enum kl_reactor_backend b)
{
    hk.backend = b;
    printf("    handoff\n");
    limit_in(KL_LISTENER_HANDOFF);
    printf("    reuseport\n");
    limit_in(KL_LISTENER_REUSEPORT);
}

KT_TEST(limit_over_the_process_refuses_cleanly) { rk_each_backend(limit_case); }

/* ---- EMFILE: the acceptor backs off ------------------------------------------------- */

static void emfile_case(enum kl_reactor_backend b)
{
    hk.backend = b;
    /* A multishot accept on io_uring reads the limit when it is armed: lower
     * it before the workers start, then take every descriptor left. */
    struct rlimit old;
    KT_EQ_I(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0); /* the lowest free descriptor */
    close(probe);
    struct rlimit low = {.rlim_cur = (rlim_t)probe + 64, .rlim_max = old.rlim_max};
    KT_EQ_I(setrlimit(RLIMIT_NOFILE, &low), 0);
    if (!hk_up(KL_LISTENER_HANDOFF, 2, 0, 0)) {
        setrlimit(RLIMIT_NOFILE, &old);
        return;
    }
    int fds[4];
    for (int i = 0; i < 4; i++) /* the clients' descriptors, before the table is full */
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int filler[64], nfill = 0;
    while (nfill < 64 && (filler[nfill] = dup(0)) >= 0)
        nfill++;
    KT_CHECK(nfill < 64 && errno == EMFILE);
    for (int i = 0; i < 4; i++) { /* in the backlog; accepting them needs a descriptor */
        KT_EQ_I(connect(fds[i], (struct sockaddr *)&hk.addr, sizeof hk.addr), 0);
        timeouts(fds[i], 5000);
    }
    usleep(100 * 1000);
    uint64_t opened = sum(C_OPEN);
    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    /* none should be served while the table is full; but a descriptor that
     * something else in the process frees meanwhile lets one through (seen
     * once in ~40 runs under ASan): what must hold is that they waited */
    printf("    %llu of 4 served while out of descriptors\n", (unsigned long long)opened);
    KT_CHECK(opened <= 1);
    for (int i = 0; i < 4; i++) /* served once descriptors are free */
        KT_CHECK(echoes(fds[i]));
    KT_CHECK(wait_sum(C_OPEN, 4));
    KT_EQ_U(counter(0, C_OPEN), 2); /* and still dealt round-robin */
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    hk.grace_ns = 0;
    hk_down(true);
    KT_EQ_I(setrlimit(RLIMIT_NOFILE, &old), 0);
    struct kl_listener_stats st = hk.l[0].stats; /* the acceptor's thread has ended */
    printf("    100 ms out of descriptors: %llu back-offs, %llu other errors\n",
           (unsigned long long)st.backoffs, (unsigned long long)st.errors);
    KT_CHECK(st.backoffs >= 2);  /* it tried again */
    KT_CHECK(st.backoffs <= 20); /* but did not spin: 1, 2, 4 ... ms */
    KT_EQ_U(st.errors, 0);
    hk_destroy();
}

KT_TEST(handoff_emfile_backs_off) { rk_each_backend(emfile_case); }

/* ---- a graceful stop while connections cross threads ------------------------------------- */

#define CHURN_HELD 16

struct churn {
    atomic_bool stop;
    uint64_t opened;
};

/* Keep CHURN_HELD connections open, replacing the oldest with a new one
 * (sent a line, not waiting for it) as fast as it can. */
static void *churn_main(void *arg)
{
    struct churn *ch = arg;
    int held[CHURN_HELD];
    for (int i = 0; i < CHURN_HELD; i++)
        held[i] = -1;
    for (uint64_t k = 0; !atomic_load(&ch->stop); k++) {
        int *slot = &held[k % CHURN_HELD];
        if (*slot >= 0)
            close(*slot);
        *slot = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (*slot < 0)
            continue;
        timeouts(*slot, 200); /* a full backlog after the stop: do not wait for it */
        if (connect(*slot, (struct sockaddr *)&hk.addr, sizeof hk.addr) == 0 &&
            send(*slot, "x\n", 2, MSG_NOSIGNAL | MSG_DONTWAIT) == 2)
            ch->opened++;
    }
    for (int i = 0; i < CHURN_HELD; i++)
        if (held[i] >= 0)
            close(held[i]);
    return NULL;
}

static void stop_case(enum kl_reactor_backend b)
{
    hk.backend = b;
    for (int round = 0; round < 6; round++) { /* 3 handing off, then 3 with SO_REUSEPORT */
        int before = fd_count();
        enum kl_listener_mode mode = round < 3 ? KL_LISTENER_HANDOFF : KL_LISTENER_REUSEPORT;
        if (!hk_up(mode, 2, 0, 0))
            return;
        struct churn ch = {0};
        pthread_t t;
        KT_REQUIRE(pthread_create(&t, NULL, churn_main, &ch) == 0);
        usleep(150 * 1000);
        hk.grace_ns = 20 * MS;
        hk_down(true); /* the listener stops, then the sets, while the client connects */
        atomic_store(&ch.stop, true);
        pthread_join(t, NULL);
        if (mode == KL_LISTENER_HANDOFF)
            printf("    round %d: %ju connections opened, %ju handed to worker 1 (%ju of them "
                   "closed unserved at the stop), %ju served\n",
                   round, (uintmax_t)ch.opened, (uintmax_t)hk.l[0].stats.handed_off,
                   (uintmax_t)hk.dropped, (uintmax_t)sum(C_OPEN));
        else
            printf("    round %d (reuseport): %ju connections opened, %ju served\n", round,
                   (uintmax_t)ch.opened, (uintmax_t)sum(C_OPEN));
        KT_EQ_U(sum(C_OPEN), sum(C_CLOSED));
        hk_destroy();
        int after = fd_count(); /* nothing leaked on the way between threads */
        if (after != before) {
            kt_fail(__FILE__, __LINE__, "%s, round %d: %d descriptors open, %d before",
                    kl_reactor_backend_name(b), round, after, before);
            if (system("ls -l /proc/$PPID/fd >&2") != 0) /* which one, for the report */
                printf("    (no listing)\n");
        }
    }
}

KT_TEST(graceful_stop_leaks_no_fd) { rk_each_backend(stop_case); }

/* ---- a handoff to a thread whose reactor is gone ----------------------------------------------
 */

static struct kl_connset gone_set;
static atomic_int gone_joined;

static void gone_main(struct kl_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    int rc = kl_connset_init(
        &gone_set, &(struct kl_connset_config){.handler = line_echo, .arg = kl_worker_counters(w)});
    if (rc == 0)
        rc = kl_listener_join(&hk.l[0], &gone_set, NULL);
    atomic_store(&gone_joined, rc == 0 ? 1 : rc);
}

static void gone_case(enum kl_reactor_backend b)
{
    hk.backend = b;
    int before = fd_count();
    if (!hk_up(KL_LISTENER_HANDOFF, 1, 0, 2)) /* room for worker 0 and `gone` */
        return;
    /* the second share goes to a one-worker group that then ends */
    struct kl_workers *other = NULL;
    atomic_store(&gone_joined, 0);
    struct kl_workers_options o = {
        .count = 1, .reactor = {.backend = b}, .sched = {.max_fibers = 64}, .counters = C_COUNT};
    KT_REQUIRE(kl_workers_start(&other, &o, gone_main, NULL) == 0);
    uint64_t until = kl_now() + DEADLINE;
    while (atomic_load(&gone_joined) == 0 && kl_now() < until)
        usleep(1000);
    KT_EQ_I(atomic_load(&gone_joined), 1);
    KT_CHECK(kl_workers_stop(other, 0) >= 0);
    KT_EQ_I(kl_connset_destroy(&gone_set), 0);
    int fds[6], ended = 0;
    for (int i = 0; i < 6; i++) {
        fds[i] = dial();
        KT_REQUIRE(fds[i] >= 0);
        if (!echoes(fds[i]))
            ended++;
    }
    KT_EQ_I(ended, 1); /* the one dealt to the ended thread: closed, then it is skipped */
    struct kl_listener_share_stats ss;
    KT_EQ_I(kl_listener_share_stats(&hk.l[0], 1, &ss), 0);
    KT_EQ_U(ss.dropped, 1);
    KT_EQ_U(ss.adopted, 0);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    hk.grace_ns = 0;
    hk_down(true);
    hk_destroy();
    kl_workers_destroy(other);
    KT_EQ_I(fd_count(), before);
}

KT_TEST(handoff_to_an_ended_thread_closes_the_socket) { rk_each_backend(gone_case); }
