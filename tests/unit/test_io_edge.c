/* Edge cases of the reactor and fiber-aware I/O, each on both backends:
 * a fiber woken by a timer while another hogs the loop, kl_close() of an fd
 * that other fibers wait on, regular files through kl_read/kl_write, the
 * O_NONBLOCK flag of a shared file description, and lengths of 4 GiB or
 * more. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/io.h"
#include "keel/reactor.h"

#include "kt.h"
#include "reactor_kit.h"

/* ---- a fiber woken by a timer while another one hogs the loop ------------ */

static int wake_pipe[2];
static ssize_t woken_read;
static uint64_t woken_el;

static intptr_t timer_woken_writer(void *arg)
{
    (void)arg;
    KT_EQ_I(kl_sleep(1 * MS), 0);
    KT_EQ_I(kl_write(wake_pipe[1], "x", 1, 0), 1);
    return 0;
}

static intptr_t hog_then_read(void *arg)
{
    (void)arg;
    uint64_t t0 = kl_now();
    while (kl_now() - t0 < 5 * MS) /* the sleeper's timer comes due meanwhile */
        ;
    char c;
    woken_read = kl_read(wake_pipe[0], &c, 1, 2 * SEC);
    woken_el = kl_now() - t0;
    return 0;
}

static void timer_wake_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(pipe2(wake_pipe, O_CLOEXEC) == 0);
    woken_read = -1;
    rk_spawn("sleeper", timer_woken_writer, NULL);
    rk_spawn("hog", hog_then_read, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(woken_read, 1);
    KT_CHECK(woken_el < 1 * SEC); /* not the read's timeout */
    kl_close(wake_pipe[0]);
    kl_close(wake_pipe[1]);
}

/* The loop must not block (or give up) while a timer it has just fired made
 * a fiber ready. */
KT_TEST(fiber_woken_by_a_timer_runs_before_the_loop_blocks) { rk_each_backend(timer_wake_case); }

/* ---- kl_close() of an fd that other fibers wait on --------------------------- */

static int cpair[2];
static ssize_t closed_rc[2];
static uint64_t closed_el[2];
static ssize_t peer_rc;

static intptr_t wait_to_read(void *arg)
{
    (void)arg;
    char buf[16];
    uint64_t t0 = kl_now();
    closed_rc[0] = kl_read(cpair[0], buf, sizeof buf, 2 * SEC);
    closed_el[0] = kl_now() - t0;
    return 0;
}

static intptr_t wait_to_write(void *arg)
{
    (void)arg;
    static char junk[64 * 1024];
    uint64_t t0 = kl_now();
    ssize_t n;
    while ((n = kl_write(cpair[0], junk, sizeof junk, 2 * SEC)) > 0) /* until it blocks */
        t0 = kl_now();
    closed_rc[1] = n;
    closed_el[1] = kl_now() - t0;
    return 0;
}

static intptr_t close_under_them(void *arg)
{
    (void)arg;
    KT_EQ_I(kl_sleep(20 * MS), 0);
    KT_EQ_I(kl_close(cpair[0]), 0);
    /* The descriptor is really closed: the peer reads to the end and sees EOF. */
    static char buf[64 * 1024];
    ssize_t n;
    while ((n = kl_read(cpair[1], buf, sizeof buf, 1 * SEC)) > 0)
        ;
    peer_rc = n;
    return 0;
}

static void close_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cpair) == 0);
    closed_rc[0] = closed_rc[1] = peer_rc = 1;
    rk_spawn("reader", wait_to_read, NULL);
    rk_spawn("writer", wait_to_write, NULL);
    rk_spawn("closer", close_under_them, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    for (int i = 0; i < 2; i++) {
        KT_EQ_I(closed_rc[i], -EBADF);
        KT_CHECK(closed_el[i] < 1 * SEC);
    }
    KT_EQ_I(peer_rc, 0);
    kl_close(cpair[1]);
}

KT_TEST(close_wakes_the_fibers_waiting_on_the_fd_with_ebadf) { rk_each_backend(close_case); }

/* ---- regular files through kl_read/kl_write, and shared descriptions --------- */

static int file_fd;

static intptr_t file_io(void *arg)
{
    (void)arg;
    KT_EQ_I(kl_write(file_fd, "hello, ", 7, SEC), 7);
    struct iovec wv[1] = {{(void *)"file", 4}};
    KT_EQ_I(kl_writev(file_fd, wv, 1, SEC), 4);
    KT_EQ_I(lseek(file_fd, 0, SEEK_SET), 0);
    char buf[32] = {0};
    KT_EQ_I(kl_read(file_fd, buf, 7, SEC), 7);
    char rest[8] = {0};
    struct iovec rv[1] = {{rest, sizeof rest}};
    KT_EQ_I(kl_readv(file_fd, rv, 1, SEC), 4);
    KT_EQ_STR(buf, "hello, ");
    KT_EQ_STR(rest, "file");
    return 0;
}

static void file_case(enum kl_reactor_backend b)
{
    (void)b;
    char path[300];
    snprintf(path, sizeof path, "%s/plain", kt_tmpdir());
    file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    KT_REQUIRE(file_fd >= 0);
    rk_spawn("file", file_io, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(kl_close(file_fd), 0);
}

KT_TEST(read_and_write_on_a_regular_file) { rk_each_backend(file_case); }

static int shared_pipe[2];
static int shared_dup;

static bool nonblocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

static intptr_t pipe_io(void *arg)
{
    (void)arg;
    char c = 0;
    bool was = nonblocking(shared_pipe[0]);
    KT_EQ_I(kl_write(shared_pipe[1], "ab", 2, SEC), 2);
    KT_EQ_I(kl_read(shared_dup, &c, 1, SEC), 1); /* through the duplicate */
    KT_EQ_I(nonblocking(shared_pipe[0]), was);   /* reads do not need the flag */
    KT_EQ_I(kl_close(shared_dup), 0);
    KT_EQ_I(kl_read(shared_pipe[0], &c, 1, SEC), 1);
    KT_EQ_I(c, 'b');
    /* The duplicate's close changed nothing for the fd still in use: an
     * empty pipe is a wait, not a blocked thread. */
    KT_EQ_I(kl_read(shared_pipe[0], &c, 1, 20 * MS), -ETIMEDOUT);
    return 0;
}

/* Descriptions that the program shares with others (stdin and a shell) keep
 * their O_NONBLOCK flag as they had it once keel lets go of them: at
 * kl_close() of a duplicate, and when the reactor is destroyed. */
KT_TEST(io_leaves_the_nonblocking_flag_of_a_shared_description_as_it_was)
{
    enum kl_reactor_backend all[] = {KL_REACTOR_URING, KL_REACTOR_EPOLL};
    for (int i = 0; i < 2; i++) {
        KT_REQUIRE(pipe2(shared_pipe, O_CLOEXEC) == 0);
        shared_dup = dup(shared_pipe[0]);
        KT_REQUIRE(shared_dup >= 0);
        if (!rk_up(all[i])) {
            close(shared_pipe[0]);
            close(shared_pipe[1]);
            close(shared_dup);
            kt_skip("the %s backend could not be brought up here", kl_reactor_backend_name(all[i]));
            continue;
        }
        printf("  backend %s\n", kl_reactor_backend_name(all[i]));
        rk_spawn("pipe", pipe_io, NULL);
        KT_EQ_I(kl_reactor_run(), 0);
        KT_CHECK(!nonblocking(shared_pipe[0])); /* the duplicate was closed */
        rk_down();
        KT_CHECK(!nonblocking(shared_pipe[1])); /* the reactor is gone */
        /* a flag the program set itself stays */
        KT_REQUIRE(fcntl(shared_pipe[1], F_SETFL, O_NONBLOCK) == 0);
        KT_REQUIRE(rk_up(all[i]));
        rk_spawn("pipe", pipe_io, NULL);
        shared_dup = dup(shared_pipe[0]);
        KT_EQ_I(kl_reactor_run(), 0);
        rk_down();
        KT_CHECK(nonblocking(shared_pipe[1]));
        close(shared_pipe[0]);
        close(shared_pipe[1]);
    }
}

/* ---- lengths of 4 GiB or more --------------------------------------------------- */

#define HUGE_LEN ((size_t)1 << 32)

static char *huge;
static int hpair[2];
static ssize_t huge_rc[2];

static intptr_t huge_io(void *arg)
{
    (void)arg;
    huge_rc[0] = kl_read(hpair[0], huge, HUGE_LEN, SEC);
    huge_rc[1] = kl_write(hpair[0], huge, HUGE_LEN + 8, SEC);
    return 0;
}

static void huge_case(enum kl_reactor_backend b)
{
    (void)b;
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, hpair) == 0);
    KT_EQ_I(write(hpair[1], "sixteen bytes!!!", 16), 16);
    rk_spawn("huge", huge_io, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(huge_rc[0], 16);  /* not 0, as a length truncated to 32 bits would give */
    KT_CHECK(huge_rc[1] > 0); /* a short count */
    KT_CHECK(memcmp(huge, "sixteen bytes!!!", 16) == 0);
    kl_close(hpair[0]);
    kl_close(hpair[1]);
}

/* A length past 32 bits reads and writes what there is (a short count, as
 * the kernel itself caps a transfer), never a request for 0 bytes. */
KT_TEST(lengths_of_4_gib_and_more_give_short_counts)
{
    /* Address space only: the pages are never touched past the first ones. */
    huge = mmap(NULL, HUGE_LEN + 4096, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (huge == MAP_FAILED)
        KT_SKIP("cannot reserve 4 GiB of address space here");
    rk_each_backend(huge_case);
    munmap(huge, HUGE_LEN + 4096);
}
