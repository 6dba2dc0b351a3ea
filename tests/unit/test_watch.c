/* Tests for keel/watch.h's receiving watches, on both backends: on io_uring
 * the event brings the bytes (held, taken in parts), every ring buffer goes
 * back (many more rounds than the ring has buffers, stops while holding),
 * more sockets with bytes at once than buffers in the ring (the rest get a
 * plain event and read for themselves), and the end of input. On epoll a
 * receiving watch is a readiness watch: events, no bytes held. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keel/io.h"
#include "keel/list.h"
#include "keel/reactor.h"
#include "keel/watch.h"

#include "kt.h"
#include "reactor_kit.h"

/* One socket pair with a receiving watch on side [0]. */
struct pair {
    int fd[2];
    struct kl_watch w;
    int events;
    int32_t last;     /* the last event's mask */
    size_t held_seen; /* kl_watch_held() at the last event */
};

static enum kl_reactor_backend backend;

static void on_event(struct kl_watch *w, int32_t res)
{
    struct pair *p = kl_container_of(w, struct pair, w);
    p->events++;
    p->last = res;
    p->held_seen = kl_watch_held(w);
}

static bool pair_open(struct pair *p)
{
    memset(p, 0, sizeof *p);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd) != 0) {
        kt_fail(__FILE__, __LINE__, "socketpair: %d", errno);
        return false;
    }
    int rc = kl_watch_recv_start(&p->w, p->fd[0], on_event);
    KT_EQ_I(rc, 0);
    return rc == 0;
}

static void pair_close(struct pair *p)
{
    KT_EQ_I(kl_watch_stop(&p->w), 0);
    KT_EQ_U(kl_watch_held(&p->w), 0);
    kl_close(p->fd[0]);
    close(p->fd[1]);
}

/* Run `body` in a fiber on each backend. */
static kl_fiber_fn case_body;

static void run_case(enum kl_reactor_backend b)
{
    backend = b;
    rk_spawn("case", case_body, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
}

static void on_both_backends(kl_fiber_fn body)
{
    case_body = body;
    rk_each_backend(run_case);
}

/* Let the loop run until `p` has seen `n` events (or a second passed). */
static bool wait_events(struct pair *p, int n)
{
    for (int i = 0; i < 1000 && p->events < n; i++)
        kl_sleep(MS);
    return p->events >= n;
}

/* ---- the bytes come with the event, and every buffer goes back -------------------------- */

static intptr_t rounds_fiber(void *arg)
{
    (void)arg;
    struct pair p;
    if (!pair_open(&p))
        return 0;
    /* three times the ring: a buffer not given back would run it dry */
    for (int round = 0; round < 3 * KL_WATCH_RECV_BUFS; round++) {
        char msg[32], got[32];
        int len = snprintf(msg, sizeof msg, "round %d", round);
        KT_CHECK(write(p.fd[1], msg, (size_t)len) == len);
        if (!wait_events(&p, round + 1)) {
            kt_fail(__FILE__, __LINE__, "round %d: no event", round);
            break;
        }
        KT_CHECK(p.last & POLLIN);
        if (backend == KL_REACTOR_URING) {
            KT_EQ_U(p.held_seen, (size_t)len); /* the bytes came with the event */
            KT_CHECK(!kl_watch_held_full(&p.w));
            /* taken in two parts, oldest first */
            KT_EQ_U(kl_watch_take(&p.w, got, 3), 3);
            KT_EQ_U(kl_watch_held(&p.w), (size_t)len - 3);
            KT_EQ_U(kl_watch_take(&p.w, got + 3, sizeof got - 3), (size_t)len - 3);
            KT_EQ_U(kl_watch_held(&p.w), 0);
        } else {
            KT_EQ_U(p.held_seen, 0); /* epoll: readiness only */
            KT_EQ_I(kl_recv_ready(p.fd[0], got, sizeof got), len);
        }
        if (memcmp(got, msg, (size_t)len) != 0) {
            kt_fail(__FILE__, __LINE__, "round %d: bytes differ", round);
            break;
        }
        if (backend == KL_REACTOR_URING)
            KT_EQ_I(kl_watch_arm(&p.w), 0); /* epoll stays armed */
    }
    pair_close(&p);
    return 0;
}

KT_TEST(receiving_watch_brings_the_bytes_and_gives_every_buffer_back)
{
    on_both_backends(rounds_fiber);
}

/* ---- a watch stopped while it holds bytes gives its buffer back ------------------------- */

static intptr_t stop_fiber(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2 * KL_WATCH_RECV_BUFS; i++) {
        struct pair p;
        if (!pair_open(&p))
            return 0;
        KT_CHECK(write(p.fd[1], "held", 4) == 4);
        if (!wait_events(&p, 1)) {
            kt_fail(__FILE__, __LINE__, "watch %d: no event", i);
            pair_close(&p);
            break;
        }
        KT_EQ_U(p.held_seen, backend == KL_REACTOR_URING ? 4 : 0);
        pair_close(&p); /* drops the held bytes */
    }
    return 0;
}

KT_TEST(a_watch_stopped_holding_bytes_gives_its_buffer_back) { on_both_backends(stop_fiber); }

/* ---- more sockets with bytes at once than buffers in the ring --------------------------- */

#define CROWD (KL_WATCH_RECV_BUFS + 16)

static struct pair crowd[CROWD];

static intptr_t crowd_fiber(void *arg)
{
    (void)arg;
    int opened = 0;
    while (opened < CROWD && pair_open(&crowd[opened]))
        opened++;
    kl_sleep(5 * MS); /* every receive armed in the kernel */
    for (int i = 0; i < opened; i++)
        KT_CHECK(write(crowd[i].fd[1], "crowd", 5) == 5);
    int evented = 0, holding = 0;
    for (int t = 0; t < 1000 && evented < opened; t++) {
        kl_sleep(MS);
        evented = holding = 0;
        for (int i = 0; i < opened; i++) {
            evented += crowd[i].events > 0;
            holding += kl_watch_held(&crowd[i].w) > 0;
        }
    }
    KT_EQ_I(evented, opened); /* everyone heard of its bytes */
    if (backend == KL_REACTOR_URING)
        KT_EQ_I(holding, KL_WATCH_RECV_BUFS); /* as many as the ring had buffers */
    /* each gets its bytes: from its watch, or (no buffer was left) by itself */
    for (int i = 0; i < opened; i++) {
        char got[8];
        size_t n = kl_watch_take(&crowd[i].w, got, sizeof got);
        if (n == 0)
            n = (size_t)kl_recv_ready(crowd[i].fd[0], got, sizeof got);
        if (n != 5 || memcmp(got, "crowd", 5) != 0)
            kt_fail(__FILE__, __LINE__, "socket %d: %zu bytes", i, n);
    }
    /* the ring is whole again: a second crowd round holds as many */
    for (int i = 0; i < opened; i++) {
        crowd[i].events = 0;
        if (backend == KL_REACTOR_URING)
            KT_EQ_I(kl_watch_arm(&crowd[i].w), 0);
    }
    for (int i = 0; i < KL_WATCH_RECV_BUFS && i < opened; i++)
        KT_CHECK(write(crowd[i].fd[1], "again", 5) == 5);
    if (opened > 0)
        wait_events(&crowd[0], 1);
    kl_sleep(5 * MS);
    for (int i = 0; i < KL_WATCH_RECV_BUFS && i < opened; i++) {
        KT_EQ_I(crowd[i].events, 1);
        KT_EQ_U(crowd[i].held_seen, backend == KL_REACTOR_URING ? 5 : 0);
    }
    for (int i = 0; i < opened; i++)
        pair_close(&crowd[i]);
    return 0;
}

KT_TEST(more_sockets_with_bytes_than_ring_buffers_all_hear_and_read)
{
    on_both_backends(crowd_fiber);
}

/* ---- the end of input ------------------------------------------------------------------- */

static intptr_t eof_fiber(void *arg)
{
    (void)arg;
    struct pair p;
    if (!pair_open(&p))
        return 0;
    KT_EQ_I(shutdown(p.fd[1], SHUT_WR), 0);
    KT_CHECK(wait_events(&p, 1));
    if (p.events > 0) {
        KT_EQ_U(p.held_seen, 0);
        KT_CHECK(p.last & (POLLRDHUP | POLLHUP | POLLIN));
        char c;
        KT_EQ_I(kl_recv_ready(p.fd[0], &c, 1), 0);
    }
    pair_close(&p);
    return 0;
}

KT_TEST(the_end_of_input_is_an_event_with_nothing_held) { on_both_backends(eof_fiber); }

/* ---- a send's completion does not wake the loop by itself (io_uring) ------------------ */

#define SEND_ROUNDS 40

static int sends_done;

static void on_sent(struct kl_watch *w, int32_t res)
{
    (void)w;
    KT_EQ_I(res, 1);
    sends_done++;
}

static intptr_t send_then_sleep_fiber(void *arg)
{
    (void)arg;
    struct pair p;
    memset(&p, 0, sizeof p);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.fd) != 0) {
        kt_fail(__FILE__, __LINE__, "socketpair: %d", errno);
        return 0;
    }
    KT_EQ_I(kl_watch_start(&p.w, p.fd[0], on_event), 0); /* nothing to read: stays armed */
    struct kl_reactor_stats before, after;
    kl_reactor_stats(&before);
    for (int round = 0; round < SEND_ROUNDS; round++) {
        char c = 'x', got;
        struct iovec iov = {&c, 1};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        KT_EQ_I(kl_watch_send(&p.w, &msg, on_sent), 0);
        kl_sleep(300000); /* 300 us: the send is reaped by the wait that ends the sleep */
        KT_EQ_I(sends_done, round + 1);
        KT_EQ_I(read(p.fd[1], &got, 1), 1);
    }
    kl_reactor_stats(&after);
    uint64_t calls = after.syscalls - before.syscalls;
    printf("  %d sends and sleeps: %llu system calls\n", SEND_ROUNDS, (unsigned long long)calls);
    /* one wait per round; a send's CQE waking the loop on its own made it two */
    KT_CHECK(calls * 4 < SEND_ROUNDS * 5);
    pair_close(&p);
    return 0;
}

KT_TEST(a_send_completion_alone_does_not_wake_the_loop)
{
    KT_REQUIRE(kl_sched_init(&(struct kl_sched_config){.max_fibers = 64}) == 0);
    /* a fine wheel, so that the sleep's deadline is what ends the wait */
    struct kl_reactor_options o = {.backend = KL_REACTOR_URING, .timer_resolution_ns = 50000};
    int rc = kl_reactor_init(&o);
    if (rc != 0) {
        kl_sched_shutdown();
        KT_SKIP("io_uring unavailable (%d)", rc);
    }
    sends_done = 0;
    rk_spawn("sender", send_then_sleep_fiber, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    rk_down();
}
