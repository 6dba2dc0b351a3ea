/* Tests for keel/reactor.h and keel/io.h, each run on both backends:
 * sleep order and accuracy, suspend timeouts through the wheel, a TCP echo
 * over 127.0.0.1 with many connections, read timeouts, cancelling a fiber
 * blocked in read, file I/O, a closing peer, a refused connect, stop and
 * destroy, and io_uring's batching (fewer system calls than requests).
 * Every case brings up its own scheduler and reactor per backend. */
#include "keel/reactor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/fiber.h"
#include "keel/io.h"

#include "kt.h"
#include "reactor_kit.h"

/* ---- sleep ---------------------------------------------------------------- */

static int wake_order[8];
static int wake_count;

static intptr_t sleeper(void *arg)
{
    int ms = (int)(intptr_t)arg;
    uint64_t t0 = kl_now();
    KT_EQ_I(kl_sleep((uint64_t)ms * MS), 0);
    uint64_t el = kl_now() - t0;
    if (el < (uint64_t)ms * MS)
        kt_fail(__FILE__, __LINE__, "sleep of %d ms woke early: %" PRIu64 " ns", ms, el);
    if (el > (uint64_t)ms * MS + SLOP)
        kt_fail(__FILE__, __LINE__, "sleep of %d ms took %" PRIu64 " ns", ms, el);
    wake_order[wake_count++] = ms;
    return 0;
}

static void sleep_case(enum kl_reactor_backend b)
{
    (void)b;
    static const int ms[] = {30, 5, 20, 10, 15};
    wake_count = 0;
    for (int i = 0; i < 5; i++)
        rk_spawn("sleeper", sleeper, (void *)(intptr_t)ms[i]);
    uint64_t t0 = kl_now();
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(wake_count, 5);
    static const int want[] = {5, 10, 15, 20, 30};
    for (int i = 0; i < 5; i++)
        KT_EQ_I(wake_order[i], want[i]);
    KT_CHECK(kl_now() - t0 >= 30 * MS);
    struct kl_reactor_stats st;
    kl_reactor_stats(&st);
    KT_CHECK(st.timers_fired >= 5);
}

KT_TEST(sleep_order_and_never_early) { rk_each_backend(sleep_case); }

/* ---- suspend with a timeout ------------------------------------------------ */

static int susp_rc[2];
static uint64_t susp_el;
static kl_fiber_id long_waiter;

static intptr_t timed_suspender(void *arg)
{
    (void)arg;
    uint64_t t0 = kl_now();
    susp_rc[0] = kl_fiber_suspend("short", 20 * MS);
    susp_el = kl_now() - t0;
    return 0;
}

static intptr_t long_suspender(void *arg)
{
    (void)arg;
    susp_rc[1] = kl_fiber_suspend("long", 10 * SEC);
    return 0;
}

static intptr_t resumer(void *arg)
{
    (void)arg;
    kl_sleep(5 * MS);
    KT_EQ_I(kl_fiber_resume(long_waiter, 7), 0);
    return 0;
}

static void suspend_case(enum kl_reactor_backend b)
{
    (void)b;
    susp_rc[0] = susp_rc[1] = 1;
    rk_spawn("timed", timed_suspender, NULL);
    long_waiter = rk_spawn("long", long_suspender, NULL);
    rk_spawn("resumer", resumer, NULL);
    uint64_t t0 = kl_now();
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(susp_rc[0], -ETIMEDOUT);
    KT_EQ_I(susp_rc[1], 7);
    KT_CHECK(susp_el >= 20 * MS);
    KT_CHECK(susp_el <= 20 * MS + SLOP);
    /* The 10 s timeout was disarmed: nothing kept the loop waiting for it. */
    KT_CHECK(kl_now() - t0 < 2 * SEC);
}

KT_TEST(suspend_timeout_through_the_wheel) { rk_each_backend(suspend_case); }

/* ---- TCP echo over loopback ------------------------------------------------ */

#define ECHO_CONNS  32
#define ECHO_ROUNDS 20
#define ECHO_MSG    100

static int listen_fd;
static struct sockaddr_in listen_addr;
static int echo_ok;

static int tcp_listener(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *addr;
    if (bind(fd, (struct sockaddr *)addr, len) < 0 || listen(fd, 256) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static ssize_t read_full(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = (got & 1) ? kl_recv(fd, buf + got, len - got, 0, 5 * SEC)
                              : kl_read(fd, buf + got, len - got, 5 * SEC);
        if (n <= 0)
            return n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static intptr_t echo_handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    for (;;) {
        struct iovec iov[2] = {{buf, 10}, {buf + 10, sizeof buf - 10}};
        ssize_t n = kl_readv(fd, iov, 2, 5 * SEC);
        if (n <= 0)
            break;
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = kl_send(fd, buf + off, (size_t)n - off, 0, 5 * SEC);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    kl_close(fd);
    return 0;
}

static intptr_t echo_server(void *arg)
{
    (void)arg;
    for (int i = 0; i < ECHO_CONNS; i++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = kl_accept(listen_fd, (struct sockaddr *)&peer, &len, 5 * SEC);
        if (fd < 0) {
            kt_fail(__FILE__, __LINE__, "kl_accept: %d", fd);
            return fd;
        }
        KT_EQ_U(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
        kl_fiber_id id = rk_spawn("handler", echo_handler, (void *)(intptr_t)fd);
        kl_fiber_detach(id);
    }
    return 0;
}

static intptr_t echo_client(void *arg)
{
    int n = (int)(intptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    KT_CHECK(fd >= 0);
    if (fd < 0)
        return 0;
    int rc = kl_connect(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr, 5 * SEC);
    if (rc != 0) {
        kt_fail(__FILE__, __LINE__, "kl_connect: %d", rc);
        close(fd);
        return 0;
    }
    char out[ECHO_MSG], in[ECHO_MSG];
    for (int r = 0; r < ECHO_ROUNDS; r++) {
        for (int i = 0; i < ECHO_MSG; i++)
            out[i] = (char)(n * 31 + r * 7 + i);
        ssize_t w = (r & 1) ? kl_write(fd, out, sizeof out, 5 * SEC)
                            : kl_writev(fd, &(struct iovec){out, sizeof out}, 1, 5 * SEC);
        KT_EQ_I(w, ECHO_MSG);
        KT_EQ_I(read_full(fd, in, sizeof in), ECHO_MSG);
        if (memcmp(in, out, sizeof in) != 0) {
            kt_fail(__FILE__, __LINE__, "client %d round %d: echo differs", n, r);
            break;
        }
        echo_ok++;
    }
    kl_close(fd);
    return 0;
}

static void echo_case(enum kl_reactor_backend b)
{
    (void)b;
    listen_fd = tcp_listener(&listen_addr);
    KT_REQUIRE(listen_fd >= 0);
    echo_ok = 0;
    rk_spawn("server", echo_server, NULL);
    for (int i = 0; i < ECHO_CONNS; i++)
        rk_spawn("client", echo_client, (void *)(intptr_t)i);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(echo_ok, ECHO_CONNS * ECHO_ROUNDS);
    kl_close(listen_fd);
}

KT_TEST(tcp_echo_over_loopback_many_connections) { rk_each_backend(echo_case); }

/* ---- timeouts, cancel, peer close ------------------------------------------ */

static int pair[2];
static ssize_t got_rc[2];
static uint64_t got_el;
static char got_buf[16];

static intptr_t timed_reader(void *arg)
{
    (void)arg;
    uint64_t t0 = kl_now();
    got_rc[0] = kl_read(pair[0], got_buf, sizeof got_buf, 20 * MS);
    got_el = kl_now() - t0;
    got_rc[1] = kl_read(pair[0], got_buf, sizeof got_buf, 2 * SEC); /* it can go on */
    return 0;
}

static intptr_t late_writer(void *arg)
{
    (void)arg;
    kl_sleep(40 * MS);
    KT_EQ_I(write(pair[1], "hi", 2), 2);
    return 0;
}

static void read_timeout_case(enum kl_reactor_backend b)
{
    (void)b;
    /* Blocking and O_NONBLOCK sockets: io_uring answers -EAGAIN for the latter. */
    for (int nonblock = 0; nonblock < 2; nonblock++) {
        int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
        KT_REQUIRE(socketpair(AF_UNIX, type, 0, pair) == 0);
        got_rc[0] = got_rc[1] = 1;
        rk_spawn("reader", timed_reader, NULL);
        rk_spawn("writer", late_writer, NULL);
        KT_EQ_I(kl_reactor_run(), 0);
        KT_EQ_I(got_rc[0], -ETIMEDOUT);
        KT_CHECK(got_el >= 20 * MS && got_el <= 20 * MS + SLOP);
        KT_EQ_I(got_rc[1], 2);
        KT_CHECK(memcmp(got_buf, "hi", 2) == 0);
        kl_close(pair[0]);
        kl_close(pair[1]);
    }
}

KT_TEST(read_timeout_then_go_on) { rk_each_backend(read_timeout_case); }

static kl_fiber_id blocked_reader;
static int after_cancel_sleep;

static intptr_t forever_reader(void *arg)
{
    (void)arg;
    got_rc[0] = kl_read(pair[0], got_buf, sizeof got_buf, 0);
    after_cancel_sleep = kl_sleep(MS);
    return 0;
}

static void cancel_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    got_rc[0] = 1;
    after_cancel_sleep = 1;
    blocked_reader = rk_spawn("reader", forever_reader, NULL);
    rk_spawn("canceller", rk_canceller, &blocked_reader);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(got_rc[0], -ECANCELED);
    KT_EQ_I(after_cancel_sleep, -ECANCELED); /* sticky: unwinds at every blocking point */
    /* Data written now is still there: the cancelled read consumed nothing. */
    KT_EQ_I(write(pair[1], "x", 1), 1);
    char c;
    KT_EQ_I(recv(pair[0], &c, 1, MSG_DONTWAIT), 1);
    kl_close(pair[0]);
    kl_close(pair[1]);
}

KT_TEST(cancel_blocked_read_returns_ecanceled) { rk_each_backend(cancel_case); }

static intptr_t closer(void *arg)
{
    (void)arg;
    kl_sleep(5 * MS);
    kl_close(pair[1]);
    return 0;
}

static intptr_t eof_reader(void *arg)
{
    (void)arg;
    got_rc[0] = kl_read(pair[0], got_buf, sizeof got_buf, 2 * SEC);
    return 0;
}

static void peer_close_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    got_rc[0] = 1;
    rk_spawn("reader", eof_reader, NULL);
    rk_spawn("closer", closer, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(got_rc[0], 0);
    kl_close(pair[0]);
}

KT_TEST(peer_close_reads_zero) { rk_each_backend(peer_close_case); }

static intptr_t writer_to_closed(void *arg)
{
    (void)arg;
    kl_close(pair[1]);
    got_rc[0] = kl_write(pair[0], "late", 4, SEC);
    got_rc[1] = kl_writev(pair[0], &(struct iovec){.iov_base = "late", .iov_len = 4}, 1, SEC);
    return 0;
}

static void epipe_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    rk_spawn("writer", writer_to_closed, NULL);
    KT_EQ_I(kl_reactor_run(), 0); /* alive: no SIGPIPE killed the process */
    KT_EQ_I(got_rc[0], -EPIPE);
    KT_EQ_I(got_rc[1], -EPIPE);
    kl_close(pair[0]);
}

KT_TEST(write_to_a_closed_peer_is_epipe_not_sigpipe) { rk_each_backend(epipe_case); }

/* ---- connect refused -------------------------------------------------------- */

static int refused_rc;

static intptr_t refused_client(void *arg)
{
    struct sockaddr_in *addr = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    KT_CHECK(fd >= 0);
    if (fd < 0)
        return 0;
    refused_rc = kl_connect(fd, (struct sockaddr *)addr, sizeof *addr, 2 * SEC);
    kl_close(fd);
    return 0;
}

static void refused_case(enum kl_reactor_backend b)
{
    (void)b;
    /* A bound socket that does not listen: its port answers with a reset. */
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    KT_REQUIRE(holder >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    KT_REQUIRE(bind(holder, (struct sockaddr *)&addr, len) == 0);
    KT_REQUIRE(getsockname(holder, (struct sockaddr *)&addr, &len) == 0);
    refused_rc = 1;
    rk_spawn("client", refused_client, &addr);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(refused_rc, -ECONNREFUSED);
    close(holder);
}

KT_TEST(connect_refused) { rk_each_backend(refused_case); }

/* ---- file I/O --------------------------------------------------------------- */

static int file_fd;

static intptr_t file_worker(void *arg)
{
    (void)arg;
    char a[4096], b[4096], r[4096];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    KT_EQ_I(kl_pwrite(file_fd, a, sizeof a, 0, 0), 4096);
    KT_EQ_I(kl_pwrite(file_fd, b, sizeof b, 8192, 2 * SEC), 4096);
    KT_EQ_I(kl_fsync(file_fd, 0), 0);
    KT_EQ_I(kl_pread(file_fd, r, sizeof r, 0, 0), 4096);
    KT_CHECK(memcmp(r, a, sizeof r) == 0);
    KT_EQ_I(kl_pread(file_fd, r, sizeof r, 8192, 0), 4096);
    KT_CHECK(memcmp(r, b, sizeof r) == 0);
    KT_EQ_I(kl_pread(file_fd, r, sizeof r, 4096, 0), 4096); /* the hole reads as zeros */
    KT_CHECK(r[0] == 0 && r[4095] == 0);
    KT_EQ_I(kl_pread(file_fd, r, sizeof r, 1 << 20, 0), 0); /* past the end */
    KT_EQ_I(kl_pread(-1, r, sizeof r, 0, 0), -EBADF);
    return 0;
}

static void file_case(enum kl_reactor_backend b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/file-%s", kt_tmpdir(), kl_reactor_backend_name(b));
    file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    KT_REQUIRE(file_fd >= 0);
    rk_spawn("file", file_worker, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    char check[4096];
    KT_EQ_I(pread(file_fd, check, sizeof check, 8192), 4096);
    KT_CHECK(check[0] == 'b' && check[4095] == 'b');
    close(file_fd);
}

KT_TEST(pread_pwrite_fsync_on_a_temp_file) { rk_each_backend(file_case); }

/* ---- stop and destroy -------------------------------------------------------- */

static intptr_t stopper(void *arg)
{
    (void)arg;
    kl_reactor_stop();
    return 0;
}

static void stop_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    got_rc[0] = 1;
    rk_spawn("reader", eof_reader, NULL);
    rk_spawn("stopper", stopper, NULL);
    KT_EQ_I(kl_reactor_run(), 1); /* the reader is still blocked */
    KT_EQ_I(kl_reactor_destroy(), -EBUSY);
    KT_EQ_I(write(pair[1], "abc", 3), 3);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(got_rc[0], 3);
    kl_close(pair[0]);
    kl_close(pair[1]);
}

KT_TEST(stop_returns_early_and_destroy_refuses_inflight) { rk_each_backend(stop_case); }

KT_TEST(auto_prefers_io_uring)
{
    if (!rk_up(KL_REACTOR_URING))
        KT_SKIP("io_uring unavailable");
    rk_down();
    KT_REQUIRE(rk_up(KL_REACTOR_AUTO));
    KT_EQ_I(kl_reactor_backend(), KL_REACTOR_URING);
    rk_down();
}

KT_TEST(init_needs_a_scheduler)
{
    KT_EQ_I(kl_reactor_init(NULL), -ENOENT);
    KT_REQUIRE(rk_up(KL_REACTOR_EPOLL));
    KT_EQ_I(kl_reactor_init(NULL), -EBUSY);
    rk_down();
    KT_EQ_I(kl_reactor_destroy(), -ENOENT);
}

/* ---- io_uring batching -------------------------------------------------------- */

#define BATCH_PAIRS  32
#define BATCH_ROUNDS 50

static int batch_fds[BATCH_PAIRS][2];
static int batch_ok;

static intptr_t batch_echo(void *arg)
{
    int fd = batch_fds[(intptr_t)arg][1];
    char buf[64];
    for (int r = 0; r < BATCH_ROUNDS; r++) {
        ssize_t n = kl_read(fd, buf, sizeof buf, 5 * SEC);
        if (n <= 0 || kl_write(fd, buf, (size_t)n, 5 * SEC) != n)
            break;
    }
    return 0;
}

static intptr_t batch_client(void *arg)
{
    int fd = batch_fds[(intptr_t)arg][0];
    char out[32], in[32];
    for (int r = 0; r < BATCH_ROUNDS; r++) {
        memset(out, 'A' + r % 26, sizeof out);
        if (kl_write(fd, out, sizeof out, 5 * SEC) != (ssize_t)sizeof out)
            break;
        if (kl_read(fd, in, sizeof in, 5 * SEC) != (ssize_t)sizeof in)
            break;
        if (memcmp(in, out, sizeof in) == 0)
            batch_ok++;
    }
    return 0;
}

KT_TEST(io_uring_batches_submissions)
{
    if (!rk_up(KL_REACTOR_URING))
        KT_SKIP("io_uring unavailable");
    batch_ok = 0;
    for (intptr_t i = 0; i < BATCH_PAIRS; i++) {
        KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, batch_fds[i]) == 0);
        rk_spawn("echo", batch_echo, (void *)i);
        rk_spawn("client", batch_client, (void *)i);
    }
    struct kl_reactor_stats before, after;
    kl_reactor_stats(&before);
    KT_EQ_I(kl_reactor_run(), 0);
    kl_reactor_stats(&after);
    KT_EQ_I(batch_ok, BATCH_PAIRS * BATCH_ROUNDS);
    uint64_t ops = after.submissions - before.submissions;
    uint64_t calls = after.syscalls - before.syscalls;
    printf("  %" PRIu64 " requests, %" PRIu64 " system calls, %" PRIu64 " iterations\n", ops, calls,
           after.iterations - before.iterations);
    KT_EQ_U(ops, (uint64_t)BATCH_PAIRS * BATCH_ROUNDS * 4);
    KT_EQ_U(after.completions - before.completions, ops);
    KT_CHECK(calls * 4 < ops); /* many requests per kernel entry */
    for (int i = 0; i < BATCH_PAIRS; i++) {
        close(batch_fds[i][0]);
        close(batch_fds[i][1]);
    }
    rk_down();
}

/* A fiber that queues a request and wakes another, which queues its own:
 * both requests go to the kernel in one system call, not one call for the
 * first (the loop's turn comes while the woken fiber is ready) and a second
 * for the other. */
#define WAVE_ROUNDS 50

static int wave_fds[2][2];
static kl_fiber_id wave_follower;
static int wave_follower_reads;
static bool wave_follower_waits; /* suspended for its turn */

static intptr_t wave_follow(void *arg)
{
    (void)arg;
    char c;
    for (int round = 0; round < WAVE_ROUNDS; round++) {
        wave_follower_waits = true;
        int rc = kl_fiber_suspend("wave-turn", KL_FIBER_FOREVER);
        wave_follower_waits = false;
        if (rc != 0)
            break;
        wave_follower_reads += kl_read(wave_fds[1][0], &c, 1, 5 * SEC) == 1;
    }
    return 0;
}

static intptr_t wave_lead(void *arg)
{
    (void)arg;
    int lead_reads = 0;
    char c;
    for (int round = 0; round < WAVE_ROUNDS; round++) {
        while (!wave_follower_waits)
            kl_fiber_yield(); /* its last read is done */
        KT_EQ_I(write(wave_fds[0][1], "a", 1), 1);
        KT_EQ_I(write(wave_fds[1][1], "b", 1), 1);
        KT_EQ_I(kl_fiber_resume(wave_follower, 0), 0); /* ready behind the loop's turn */
        lead_reads += kl_read(wave_fds[0][0], &c, 1, 5 * SEC) == 1;
    }
    KT_EQ_I(lead_reads, WAVE_ROUNDS);
    return 0;
}

KT_TEST(a_fiber_woken_in_a_round_shares_its_submission)
{
    if (!rk_up(KL_REACTOR_URING))
        KT_SKIP("io_uring unavailable");
    for (int i = 0; i < 2; i++)
        KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, wave_fds[i]) == 0);
    wave_follower_reads = 0;
    wave_follower = rk_spawn("follower", wave_follow, NULL);
    rk_spawn("lead", wave_lead, NULL);
    struct kl_reactor_stats before, after;
    kl_reactor_stats(&before);
    KT_EQ_I(kl_reactor_run(), 0);
    kl_reactor_stats(&after);
    KT_EQ_I(wave_follower_reads, WAVE_ROUNDS);
    uint64_t calls = after.syscalls - before.syscalls;
    printf("  %d rounds of two requests: %llu system calls\n", WAVE_ROUNDS,
           (unsigned long long)calls);
    KT_CHECK(calls * 4 < WAVE_ROUNDS * 5); /* one per round (two, when each went alone) */
    for (int i = 0; i < 2; i++) {
        close(wave_fds[i][0]);
        close(wave_fds[i][1]);
    }
    rk_down();
}

/* ---- fibers that never stop being ready ------------------------------------- */

static volatile int spin_flag;
static uint64_t spin_rounds;

static intptr_t spinner(void *arg)
{
    (void)arg;
    while (!spin_flag) {
        spin_rounds++;
        kl_fiber_yield();
    }
    return 0;
}

static intptr_t sleep_then_flag(void *arg)
{
    (void)arg;
    kl_sleep(5 * MS);
    char c = 0;
    /* and I/O: it must be submitted although a fiber is always ready */
    KT_EQ_I(kl_write(pair[1], "y", 1, 0), 1);
    KT_EQ_I(kl_read(pair[0], &c, 1, 0), 1);
    KT_EQ_I(c, 'y');
    spin_flag = 1;
    return 0;
}

static void spin_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    spin_flag = 0;
    spin_rounds = 0;
    rk_spawn("spinner", spinner, NULL);
    rk_spawn("sleeper", sleep_then_flag, NULL);
    alarm(20); /* a starved timer would hang here: fail loudly instead */
    KT_EQ_I(kl_reactor_run(), 0);
    alarm(0);
    KT_CHECK(spin_flag);
    KT_CHECK(spin_rounds > 0);
    kl_close(pair[0]);
    kl_close(pair[1]);
}

KT_TEST(timers_and_io_run_while_a_fiber_always_yields) { rk_each_backend(spin_case); }

/* ---- busy-poll mode and the cached time --------------------------------------- */

static uint64_t cached_before, cached_after, real_after;

static intptr_t time_reader(void *arg)
{
    (void)arg;
    cached_before = kl_reactor_now();
    KT_CHECK(cached_before <= kl_now());
    KT_EQ_I(kl_sleep(20 * MS), 0);
    cached_after = kl_reactor_now();
    real_after = kl_now();
    return 0;
}

static void busy_poll_case(enum kl_reactor_backend b, bool busy)
{
    KT_REQUIRE(kl_sched_init(&(struct kl_sched_config){.max_fibers = 16}) == 0);
    int rc = kl_reactor_init(&(struct kl_reactor_options){.backend = b, .busy_poll = busy});
    if (rc != 0) {
        kl_sched_shutdown();
        KT_CHECK(b == KL_REACTOR_URING); /* only io_uring may be missing here */
        kt_skip("io_uring unavailable here (%d)", rc);
        return;
    }
    rk_spawn("time", time_reader, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    struct kl_reactor_stats st;
    kl_reactor_stats(&st);
    printf("  %s, busy_poll %d: %llu iterations, %llu system calls in a 20 ms sleep\n",
           kl_reactor_backend_name(b), busy, (unsigned long long)st.iterations,
           (unsigned long long)st.syscalls);
    KT_CHECK(cached_after - cached_before >= 20 * MS); /* never early, cached or not */
    KT_CHECK(real_after - cached_after < SLOP);
    if (busy) {
        KT_CHECK(st.iterations > 100); /* it spun instead of sleeping */
        KT_EQ_U(st.syscalls, 0);       /* and with nothing in flight, entered no kernel */
    } else {
        KT_CHECK(st.iterations < 10); /* one blocking wait */
    }
    rk_down();
}

KT_TEST(busy_poll_spins_and_blocking_mode_sleeps)
{
    for (size_t i = 0; i < 2; i++) {
        enum kl_reactor_backend b = i == 0 ? KL_REACTOR_URING : KL_REACTOR_EPOLL;
        busy_poll_case(b, true);
        busy_poll_case(b, false);
    }
}

/* ---- a timer that came due during a round of fibers ------------------------ */

static uint64_t short_sleep_took;

static intptr_t sleep_one_ms(void *arg)
{
    (void)arg;
    uint64_t t0 = kl_now();
    kl_sleep(MS);
    short_sleep_took = kl_now() - t0;
    return 0;
}

/* Runs 5 ms without switching: the 1 ms sleep comes due meanwhile. */
static intptr_t spin_5ms(void *arg)
{
    (void)arg;
    uint64_t until = kl_now() + 5 * MS;
    while (kl_now() < until) {
    }
    return 0;
}

static intptr_t sleep_2s(void *arg)
{
    (void)arg;
    return kl_sleep(2 * SEC);
}

/* The loop fires the timers that came due while fibers ran, which makes
 * their fibers ready: it must not then block until the next, far timer. */
static void due_timer_case(enum kl_reactor_backend b)
{
    (void)b;
    short_sleep_took = 0;
    kl_fiber_id sleeper = rk_spawn("1ms", sleep_one_ms, NULL);
    rk_spawn("spin", spin_5ms, NULL);
    kl_fiber_id far = rk_spawn("2s", sleep_2s, NULL);
    KT_EQ_I(kl_fiber_join(sleeper, NULL), 0);
    printf("  a 1 ms sleep took %.1f ms\n", (double)short_sleep_took / MS);
    KT_CHECK(short_sleep_took >= MS && short_sleep_took < 5 * MS + SLOP);
    KT_EQ_I(kl_fiber_cancel(far), 0);
    KT_EQ_I(kl_reactor_run(), 0);
}

KT_TEST(timer_due_after_a_round_does_not_wait_for_the_next) { rk_each_backend(due_timer_case); }
