/* Tests for keel/workers.h, on both backends: 2 and 4 workers each run the
 * group's function (on their own thread, scheduler and reactor) and count;
 * the counters and the reactors' figures are summed while the workers run
 * and again after the stop; a graceful stop lets fibers that watch
 * kl_reactor_stopping() finish and cancels the others; posts to one worker
 * and to all; pinning (sched_getaffinity in the worker); stop requested
 * from a worker's fiber; bad options, which leave no thread behind.
 *
 * Waits poll the summed counters with a deadline, so a lost message fails
 * the case instead of hanging it. */
#define _GNU_SOURCE /* CPU_SET, sched_getaffinity */
#include "keel/workers.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/reactor.h"

#include "fiber_kit.h"
#include "kt.h"
#include "reactor_kit.h"

#define LOOPS    1000
#define DEADLINE (20 * SEC) /* generous: ASan on a loaded 2-core machine */

/* The program's counters, as a server would define them. */
enum { C_LOOPS, C_MAINS, C_POSTS, C_ENDED, C_CANCELLED, C_OK, C_BAD, C_COUNT };

static enum kl_reactor_backend backend;

static struct kl_workers_options options(uint32_t count)
{
    return (struct kl_workers_options){
        .count = count,
        .reactor = {.backend = backend},
        .sched = {.max_fibers = 64},
        .counters = C_COUNT,
        .name = "test-w",
    };
}

/* Poll the sum of counter `c` until it reaches `want`; false on the deadline. */
static bool wait_for(struct kl_workers *g, unsigned c, uint64_t want)
{
    uint64_t until = kl_now() + DEADLINE;
    uint64_t sums[C_COUNT];
    do {
        kl_workers_stats(g, NULL, sums);
        if (sums[c] >= want)
            return sums[c] == want;
        usleep(1000);
    } while (kl_now() < until);
    kt_fail(__FILE__, __LINE__, "counter %u reached %ju of %ju", c, sums[c], want);
    return false;
}

/* Runs until the stop, counting LOOPS iterations first. */
static void counting_main(struct kl_worker *w, void *arg)
{
    (void)arg;
    kl_counter *c = kl_worker_counters(w);
    bool right = kl_worker_self() == w && kl_reactor_backend() == backend &&
                 kl_worker_cpu(w) == -1 &&
                 kl_workers_get(kl_worker_group(w), kl_worker_index(w)) == w;
    kl_counter_add(&c[right ? C_OK : C_BAD], 1);
    kl_counter_add(&c[C_MAINS], 1);
    for (int i = 0; i < LOOPS; i++) {
        kl_counter_add(&c[C_LOOPS], 1);
        if (i % 100 == 0)
            kl_sleep(100 * 1000); /* timers and reactor iterations to count */
        else
            kl_fiber_yield();
    }
    while (!kl_reactor_stopping())
        if (kl_sleep(MS) == -ECANCELED)
            break;
    kl_counter_add(&c[C_ENDED], 1);
}

static void sum_by_hand(struct kl_workers *g, struct kl_workers_stats *st, uint64_t *sums)
{
    memset(st, 0, sizeof *st);
    memset(sums, 0, C_COUNT * sizeof *sums);
    for (uint32_t i = 0; i < kl_workers_count(g); i++) {
        struct kl_workers_stats one;
        uint64_t c[C_COUNT];
        kl_worker_stats(kl_workers_get(g, i), &one, c);
        st->reactor.iterations += one.reactor.iterations;
        st->reactor.syscalls += one.reactor.syscalls;
        st->reactor.timers_fired += one.reactor.timers_fired;
        st->posts_run += one.posts_run;
        for (int k = 0; k < C_COUNT; k++)
            sums[k] += c[k];
    }
}

static void count_and_stop(uint32_t n, bool busy_poll)
{
    struct kl_workers_options o = options(n);
    o.reactor.busy_poll = busy_poll;
    o.reactor.ring_entries = busy_poll ? 64 : 0;
    struct kl_workers *g = NULL;
    KT_REQUIRE(kl_workers_start(&g, &o, counting_main, NULL) == 0);
    KT_EQ_U(kl_workers_count(g), n);
    KT_CHECK(kl_workers_get(g, n) == NULL);
    /* summed while the workers run */
    KT_CHECK(wait_for(g, C_LOOPS, (uint64_t)n * LOOPS));
    struct kl_workers_stats live;
    uint64_t sums[C_COUNT];
    kl_workers_stats(g, &live, sums);
    KT_EQ_U(sums[C_MAINS], n);
    KT_EQ_U(sums[C_OK], n);
    KT_EQ_U(sums[C_BAD], 0);
    KT_EQ_U(sums[C_ENDED], 0); /* still running */
    KT_CHECK(live.reactor.iterations >= n * (uint64_t)LOOPS / 100);
    KT_CHECK(live.reactor.timers_fired >= n * (uint64_t)LOOPS / 100);
    /* graceful: every main watches kl_reactor_stopping() and ends in time */
    KT_EQ_I(kl_workers_stop(g, 5 * SEC), 0);
    KT_EQ_I(kl_workers_stop(g, 0), 0); /* a second stop reports the same */
    kl_workers_stats(g, &live, sums);
    KT_EQ_U(sums[C_ENDED], n);
    struct kl_workers_stats by_hand;
    uint64_t hand[C_COUNT];
    sum_by_hand(g, &by_hand, hand);
    KT_EQ_U(live.reactor.iterations, by_hand.reactor.iterations);
    KT_EQ_U(live.reactor.syscalls, by_hand.reactor.syscalls);
    KT_EQ_U(live.reactor.timers_fired, by_hand.reactor.timers_fired);
    for (int k = 0; k < C_COUNT; k++)
        KT_EQ_U(sums[k], hand[k]);
    KT_EQ_I(kl_workers_post(g, 0, counting_main, NULL), -ESHUTDOWN);
    kl_workers_destroy(g);
}

static void two_and_four(enum kl_reactor_backend b)
{
    backend = b;
    count_and_stop(2, false);
    count_and_stop(4, false);
    count_and_stop(2, true);
}

KT_TEST(start_count_stop_2_and_4) { rk_each_backend(two_and_four); }

/* ---- graceful stop with fibers running --------------------------------- */

/* Ends on its own once the reactor is stopping. */
static intptr_t polite(void *arg)
{
    kl_counter *c = arg;
    while (!kl_reactor_stopping())
        if (kl_sleep(MS) == -ECANCELED)
            return 0;
    kl_counter_add(&c[C_ENDED], 1);
    return 0;
}

/* Ignores the stop: only the cancel ends it. */
static intptr_t stubborn(void *arg)
{
    kl_counter *c = arg;
    if (kl_fiber_suspend("stubborn", KL_FIBER_FOREVER) == -ECANCELED)
        kl_counter_add(&c[C_CANCELLED], 1);
    return 0;
}

static void spawn_three(struct kl_worker *w, void *arg)
{
    (void)arg;
    kl_counter *c = kl_worker_counters(w);
    kl_fiber_id id;
    KL_ASSERT(kl_fiber_spawn(&id, "polite", polite, c, KL_FIBER_PRIO_NORMAL) == 0);
    kl_fiber_detach(id);
    for (int i = 0; i < 2; i++) {
        KL_ASSERT(kl_fiber_spawn(&id, "stubborn", stubborn, c, KL_FIBER_PRIO_NORMAL) == 0);
        kl_fiber_detach(id);
    }
    kl_counter_add(&c[C_MAINS], 1);
}

static void count_post(struct kl_worker *w, void *arg)
{
    kl_counter_add(&kl_worker_counters(w)[C_POSTS], (uint64_t)(uintptr_t)arg);
}

/* Runs in worker 1's main context (a message, not a fiber). */
static void count_own_message(struct kl_xmsg *msg)
{
    (void)msg;
    kl_counter_add(&kl_worker_counters(kl_worker_self())[C_POSTS], 100);
}

static void graceful(enum kl_reactor_backend b)
{
    backend = b;
    const uint32_t n = 3;
    struct kl_workers_options o = options(n);
    struct kl_workers *g = NULL;
    KT_REQUIRE(kl_workers_start(&g, &o, spawn_three, NULL) == 0);
    KT_CHECK(wait_for(g, C_MAINS, n));
    /* posts: one to each worker, then one to worker 2 */
    KT_EQ_I(kl_workers_post_all(g, count_post, (void *)1), 0);
    KT_EQ_I(kl_workers_post(g, 2, count_post, (void *)10), 0);
    KT_EQ_I(kl_workers_post(g, n, count_post, NULL), -EINVAL);
    KT_EQ_I(kl_workers_post(g, 0, NULL, NULL), -EINVAL);
    /* a message of the caller's own, through the worker's reference */
    static struct kl_xmsg own;
    own.fn = count_own_message;
    KT_EQ_I(kl_reactor_post(kl_worker_ref(kl_workers_get(g, 1)), &own), 0);
    KT_CHECK(wait_for(g, C_POSTS, n + 10 + 100));
    struct kl_workers_stats st;
    kl_workers_stats(g, &st, NULL);
    KT_EQ_U(st.posts_run, n + 1);
    KT_EQ_U(st.posts_dropped, 0);
    uint64_t t0 = kl_now();
    KT_EQ_I(kl_workers_stop(g, 50 * MS), 2 * n); /* the stubborn ones */
    uint64_t took = kl_now() - t0;
    uint64_t sums[C_COUNT];
    kl_workers_stats(g, NULL, sums);
    KT_EQ_U(sums[C_ENDED], n);         /* the polite ones ended in the grace period */
    KT_EQ_U(sums[C_CANCELLED], 2 * n); /* and the others were cancelled after it */
    KT_CHECK(took >= 50 * MS && took < 50 * MS + 2 * SEC);
    KT_EQ_I(kl_workers_post_all(g, count_post, NULL), -ESHUTDOWN);
    kl_workers_destroy(g);
}

KT_TEST(graceful_stop_with_fibers_running) { rk_each_backend(graceful); }

/* ---- stop requested from a worker ----------------------------------------- */

static void stop_from_inside(struct kl_worker *w, void *arg)
{
    (void)arg;
    kl_counter *c = kl_worker_counters(w);
    /* joining itself would deadlock: refused */
    kl_counter_add(&c[kl_workers_stop(kl_worker_group(w), 0) == -EDEADLK ? C_OK : C_BAD], 1);
    if (kl_worker_index(w) == 0)
        kl_workers_request_stop(kl_worker_group(w), SEC);
    while (!kl_reactor_stopping())
        if (kl_sleep(MS) == -ECANCELED)
            return;
    kl_counter_add(&c[C_ENDED], 1);
}

static void stop_inside(enum kl_reactor_backend b)
{
    backend = b;
    struct kl_workers_options o = options(2);
    struct kl_workers *g = NULL;
    KT_REQUIRE(kl_workers_start(&g, &o, stop_from_inside, NULL) == 0);
    KT_CHECK(wait_for(g, C_ENDED, 2)); /* both stop without anyone else asking */
    KT_EQ_I(kl_workers_stop(g, 0), 0);
    uint64_t sums[C_COUNT];
    kl_workers_stats(g, NULL, sums);
    KT_EQ_U(sums[C_OK], 2);
    kl_workers_destroy(g);
}

KT_TEST(stop_requested_by_a_worker) { rk_each_backend(stop_inside); }

/* ---- pinning -------------------------------------------------------------- */

/* Checks that the thread may run on exactly the CPU it was given. */
static void check_pinned(struct kl_worker *w, void *arg)
{
    (void)arg;
    cpu_set_t set;
    bool ok = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1 &&
              kl_worker_cpu(w) >= 0 && CPU_ISSET(kl_worker_cpu(w), &set);
    kl_counter_add(&kl_worker_counters(w)[ok ? C_OK : C_BAD], 1);
}

static void pin_workers(enum kl_reactor_backend b)
{
    backend = b;
    cpu_set_t allowed;
    KT_REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    int usable[CPU_SETSIZE], n = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            usable[n++] = c;
    /* without a list: the i-th usable CPU, round robin */
    struct kl_workers_options o = options(4);
    o.pin = true;
    struct kl_workers *g = NULL;
    KT_REQUIRE(kl_workers_start(&g, &o, check_pinned, NULL) == 0);
    KT_CHECK(wait_for(g, C_OK, 4));
    for (uint32_t i = 0; i < 4; i++)
        KT_EQ_I(kl_worker_cpu(kl_workers_get(g, i)), usable[i % (uint32_t)n]);
    KT_EQ_I(kl_workers_stop(g, 0), 0);
    kl_workers_destroy(g);
    /* an explicit list, last usable CPU first */
    int cpus[2] = {usable[n - 1], usable[0]};
    o = options(2);
    o.pin = true;
    o.cpus = cpus;
    o.cpu_count = 2;
    KT_REQUIRE(kl_workers_start(&g, &o, check_pinned, NULL) == 0);
    KT_CHECK(wait_for(g, C_OK, 2));
    KT_EQ_I(kl_worker_cpu(kl_workers_get(g, 0)), usable[n - 1]);
    KT_EQ_I(kl_worker_cpu(kl_workers_get(g, 1)), usable[0]);
    uint64_t sums[C_COUNT];
    kl_workers_stats(g, NULL, sums);
    KT_EQ_U(sums[C_BAD], 0);
    kl_workers_destroy(g); /* without a stop first */
}

KT_TEST(pinning_works) { rk_each_backend(pin_workers); }

/* ---- the scheduler slice --------------------------------------------------------- */

/* This thread's EEVDF slice from /proc (ns), or -1 where the kernel shows none. */
static long long own_slice(void)
{
    FILE *f = fopen("/proc/thread-self/sched", "r");
    long long v = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "se.slice", 8) == 0)
            sscanf(strchr(line, ':') + 1, "%lld", &v);
    if (f)
        fclose(f);
    return v;
}

static void check_slice(struct kl_worker *w, void *arg)
{
    (void)arg;
    kl_counter_add(&kl_worker_counters(w)[own_slice() == 300000 ? C_OK : C_BAD], 1);
}

static void slice_workers(enum kl_reactor_backend b)
{
    backend = b;
    struct utsname u;
    int major = 0, minor = 0;
    if (uname(&u) == 0)
        sscanf(u.release, "%d.%d", &major, &minor);
    if (major * 100 + minor < 612 || own_slice() < 0)
        KT_SKIP("custom scheduler slices came with Linux 6.12; this is %s", u.release);
    struct kl_workers_options o = options(2);
    o.sched_slice_ns = 300000;
    struct kl_workers *g = NULL;
    KT_REQUIRE(kl_workers_start(&g, &o, check_slice, NULL) == 0);
    KT_CHECK(wait_for(g, C_OK, 2));
    uint64_t sums[C_COUNT];
    kl_workers_stats(g, NULL, sums);
    KT_EQ_U(sums[C_BAD], 0);
    KT_CHECK(own_slice() != 300000); /* the starting thread keeps its own */
    KT_EQ_I(kl_workers_stop(g, 0), 0);
    kl_workers_destroy(g);
}

KT_TEST(workers_get_the_scheduler_slice_asked_for) { rk_each_backend(slice_workers); }

/* ---- a stack overflow on a worker ------------------------------------------ */

static void dive(struct kl_worker *w, void *arg)
{
    (void)w;
    (void)arg;
    kit_recurse(0);
}

KT_DEATH_TEST(overflow_on_a_worker_is_named, "stack overflow in fiber worker-main (id 1:1)")
{
    backend = KL_REACTOR_AUTO;
    struct kl_workers_options o = options(1);
    o.crash_reports = true;
    kl_crash_install(); /* the handlers; each worker adds its own signal stack */
    struct kl_workers *g = NULL;
    KL_ASSERT(kl_workers_start(&g, &o, dive, NULL) == 0);
    sleep(30); /* the worker kills the process long before */
}

/* ---- bad options ---------------------------------------------------------- */

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int start_with(const struct kl_workers_options *o)
{
    struct kl_workers *g = NULL;
    int rc = kl_workers_start(&g, o, counting_main, NULL);
    if (rc == 0)
        kl_workers_destroy(g);
    return rc;
}

static void bad_options(enum kl_reactor_backend b)
{
    backend = b;
    int threads = thread_count();
    struct kl_workers_options o = options(0);
    KT_EQ_I(start_with(&o), -EINVAL); /* no workers */
    o = options(KL_WORKERS_MAX + 1);
    KT_EQ_I(start_with(&o), -EINVAL);
    o = options(2);
    o.counters = KL_WORKER_COUNTERS_MAX + 1;
    KT_EQ_I(start_with(&o), -EINVAL);
    o = options(2);
    o.sched.max_fibers = 1; /* no room for the keeper and the function */
    KT_EQ_I(start_with(&o), -EINVAL);
    int cpus[1] = {CPU_SETSIZE + 5};
    o = options(2);
    o.pin = true;
    o.cpus = cpus;
    o.cpu_count = 1;
    KT_EQ_I(start_with(&o), -EINVAL); /* a CPU that does not exist */
    cpus[0] = -1;
    KT_EQ_I(start_with(&o), -EINVAL);
    o.cpu_count = 0;
    KT_EQ_I(start_with(&o), -EINVAL); /* a list without entries */
    KT_EQ_I(kl_workers_start(NULL, &o, NULL, NULL), -EINVAL);
    /* errors met by the workers themselves: every thread is gone after */
    o = options(3);
    o.reactor.backend = (enum kl_reactor_backend)9;
    KT_EQ_I(start_with(&o), -EINVAL);
    o = options(3);
    o.reactor.ring_entries = 1u << 20;
    KT_EQ_I(start_with(&o), -EINVAL);
    o = options(3);
    o.sched.stack_size = (size_t)1 << 40;
    KT_EQ_I(start_with(&o), -EINVAL);
    KT_EQ_I(thread_count(), threads);
}

KT_TEST(bad_options_fail_cleanly) { rk_each_backend(bad_options); }
