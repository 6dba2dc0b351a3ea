/* The io_uring backend when the kernel will not take submissions for a
 * while (io_uring_submit failing, as on a CQ overflow): a timed-out request
 * still returns by its deadline give or take the fault, and the wake-up read
 * that could not be re-armed is re-armed later, never asserted on. Each case
 * also runs on epoll, where the fault touches nothing and the same outcome
 * is expected.
 *
 * This program defines io_uring_submit and io_uring_submit_and_wait_timeout
 * itself: keel's objects, linked statically into it, call these, which fail
 * with -EBUSY while `fault` is set and otherwise call liburing's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/io.h"
#include "keel/reactor.h"
#include "keel/xthread.h"

#include "kt.h"
#include "reactor_kit.h"

static int fault; /* atomic */

int io_uring_submit(struct io_uring *ring)
{
    static int (*real)(struct io_uring *);
    if (__atomic_load_n(&fault, __ATOMIC_ACQUIRE))
        return -EBUSY;
    if (real == NULL)
        real = (int (*)(struct io_uring *))dlsym(RTLD_NEXT, "io_uring_submit");
    return real(ring);
}

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                                     unsigned wait_nr, struct __kernel_timespec *ts,
                                     sigset_t *sigmask)
{
    static int (*real)(struct io_uring *, struct io_uring_cqe **, unsigned,
                       struct __kernel_timespec *, sigset_t *);
    if (__atomic_load_n(&fault, __ATOMIC_ACQUIRE))
        return -EBUSY;
    if (real == NULL)
        real = (int (*)(struct io_uring *, struct io_uring_cqe **, unsigned,
                        struct __kernel_timespec *,
                        sigset_t *))dlsym(RTLD_NEXT, "io_uring_submit_and_wait_timeout");
    return real(ring, cqe_ptr, wait_nr, ts, sigmask);
}

#define RING    4 /* SQ entries: four waiting fibers fill it */
#define FILLERS RING

static int victim[2];
static int filler[FILLERS][2];
static ssize_t victim_rc;
static uint64_t victim_el;

/* A reactor with a 4-entry ring on backend `b`; false when it cannot be had. */
static bool up_small(enum kl_reactor_backend b)
{
    if (kl_sched_init(&(struct kl_sched_config){.max_fibers = 64}) != 0) {
        kt_fail(__FILE__, __LINE__, "kl_sched_init");
        return false;
    }
    int rc = kl_reactor_init(&(struct kl_reactor_options){.backend = b, .ring_entries = RING});
    if (rc != 0) {
        kl_sched_shutdown();
        if (b == KL_REACTOR_URING)
            kt_skip("io_uring unavailable (%d)", rc);
        else
            kt_fail(__FILE__, __LINE__, "kl_reactor_init: %d", rc);
        return false;
    }
    printf("  backend %s\n", kl_reactor_backend_name(b));
    return true;
}

static intptr_t filler_read(void *arg)
{
    char c;
    kl_read(filler[(intptr_t)arg][0], &c, 1, 100 * MS); /* its SQE fills the queue */
    return 0;
}

static void fill_the_queue(void)
{
    for (intptr_t i = 0; i < FILLERS; i++)
        rk_spawn("filler", filler_read, (void *)i);
}

/* ---- a cancel with no free SQE ------------------------------------------------ */

static intptr_t victim_read(void *arg)
{
    (void)arg;
    char c;
    uint64_t t0 = kl_now();
    victim_rc = kl_read(victim[0], &c, 1, 30 * MS);
    victim_el = kl_now() - t0;
    return 0;
}

static intptr_t fault_window(void *arg)
{
    (void)arg;
    kl_sleep(10 * MS);
    __atomic_store_n(&fault, 1, __ATOMIC_RELEASE); /* the victim times out in here */
    fill_the_queue();
    kl_sleep(50 * MS);
    __atomic_store_n(&fault, 0, __ATOMIC_RELEASE);
    kl_sleep(300 * MS);
    KT_EQ_I(write(victim[1], "x", 1), 1); /* ends a wait that was never cancelled */
    return 0;
}

static void open_pairs(void)
{
    KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, victim) == 0);
    for (int i = 0; i < FILLERS; i++)
        KT_REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, filler[i]) == 0);
}

static void close_pairs(void)
{
    for (int i = -1; i < FILLERS; i++) {
        int *p = i < 0 ? victim : filler[i];
        kl_close(p[0]);
        kl_close(p[1]);
    }
}

/* Run `scene` on a small reactor per backend, its socket pairs open, with
 * an alarm in case a lost wake-up hangs the loop. */
static void each_small_backend(void (*scene)(void))
{
    enum kl_reactor_backend all[] = {KL_REACTOR_URING, KL_REACTOR_EPOLL};
    for (int i = 0; i < 2; i++) {
        if (!up_small(all[i]))
            continue;
        open_pairs();
        alarm(20);
        scene();
        alarm(0);
        close_pairs();
        rk_down();
    }
}

static void cancel_scene(void)
{
    victim_rc = 1;
    rk_spawn("victim", victim_read, NULL);
    rk_spawn("fault", fault_window, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(victim_rc, -ETIMEDOUT);
    KT_CHECK(victim_el < 60 * MS + SLOP); /* the deadline, or the fault's end */
}

KT_TEST(timeout_returns_when_no_sqe_is_free_for_the_cancel) { each_small_backend(cancel_scene); }

/* ---- the wake-up read re-armed later ------------------------------------------ */

static intptr_t job(void *arg) { return (intptr_t)arg; }

static intptr_t defer_in_fault(void *arg)
{
    (void)arg;
    kl_sleep(5 * MS); /* the wake-up read is in the kernel by now */
    __atomic_store_n(&fault, 1, __ATOMIC_RELEASE);
    fill_the_queue();
    /* The worker's wake-up completes the read; re-arming it finds no SQE. */
    intptr_t res = 0;
    KT_EQ_I(kl_defer_to_thread(job, (void *)7, &res), 0);
    KT_EQ_I(res, 7);
    kl_sleep(20 * MS);
    __atomic_store_n(&fault, 0, __ATOMIC_RELEASE);
    kl_sleep(150 * MS); /* the fillers are done: nothing but the wake-up can end a wait */
    uint64_t t0 = kl_now();
    KT_EQ_I(kl_defer_to_thread(job, (void *)8, &res), 0);
    KT_EQ_I(res, 8);
    KT_CHECK(kl_now() - t0 < SEC);
    return 0;
}

static void rearm_scene(void)
{
    rk_spawn("defer", defer_in_fault, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
}

KT_TEST(wake_up_read_is_rearmed_when_an_sqe_is_free_again) { each_small_backend(rearm_scene); }
