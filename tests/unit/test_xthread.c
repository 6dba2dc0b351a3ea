/* Tests for keel/xthread.h, on both backends where it matters: posts from
 * four threads arrive once each and in order per producer; a reactor asleep
 * with nothing else to wait for wakes for a post (and, with no reference
 * out, still reports the deadlock), and so does one whose fiber never parks;
 * posts to the reactor's own thread; posts
 * refused once destroy has begun, and a poster racing destroy; a callback
 * that spawns a fiber; kl_defer_to_thread() while another fiber ticks, when
 * cancelled (running or still queued), and many at once; two reactors
 * playing ping-pong.
 *
 * Cases that could hang if a wake-up were lost arm alarm(): a lost wake-up
 * kills the program (and fails ctest) instead of stalling it.
 */
#include "keel/xthread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/fiber.h"
#include "keel/list.h"
#include "keel/reactor.h"

#include "kt.h"
#include "reactor_kit.h"

#define WATCHDOG_S 60 /* generous: ASan on a loaded 2-core machine */

static pthread_t reactor_thread;
static kl_fiber_id waiter;
static int waiter_rc;

/* Park until resumed (no timeout: nothing but a post can wake it). */
static intptr_t park_forever(void *arg)
{
    (void)arg;
    waiter_rc = kl_fiber_suspend("await-post", KL_FIBER_FOREVER);
    return 0;
}

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "pthread_create: %d", rc);
}

/* ---- many producers ---------------------------------------------------------- */

#define PRODUCERS 4
#define PER_PROD  10000

struct tmsg {
    struct kl_xmsg m;
    int producer;
    int seq;
};

static struct tmsg msgs[PRODUCERS][PER_PROD];
static unsigned char seen[PRODUCERS][PER_PROD];
static int next_seq[PRODUCERS];
static int received, out_of_order, duplicates, wrong_thread;

static void on_tmsg(struct kl_xmsg *m)
{
    struct tmsg *t = kl_container_of(m, struct tmsg, m);
    if (!pthread_equal(pthread_self(), reactor_thread))
        wrong_thread++;
    if (t->seq != next_seq[t->producer])
        out_of_order++;
    next_seq[t->producer] = t->seq + 1;
    if (seen[t->producer][t->seq]++)
        duplicates++;
    if (++received == PRODUCERS * PER_PROD)
        kl_fiber_resume(waiter, 1);
}

struct producer {
    struct kl_reactor_ref *ref;
    int index;
    int failed;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_PROD; i++) {
        struct tmsg *t = &msgs[p->index][i];
        *t = (struct tmsg){.m.fn = on_tmsg, .producer = p->index, .seq = i};
        if (kl_reactor_post(p->ref, &t->m) != 0)
            p->failed++;
        if (i % 1000 == 999)
            sched_yield(); /* let the reactor drain part-way: many small batches */
    }
    kl_reactor_unref(p->ref);
    return NULL;
}

static void producers_case(enum kl_reactor_backend b)
{
    (void)b;
    alarm(WATCHDOG_S);
    reactor_thread = pthread_self();
    memset(seen, 0, sizeof seen);
    memset(next_seq, 0, sizeof next_seq);
    received = out_of_order = duplicates = wrong_thread = 0;
    waiter_rc = 0;
    waiter = rk_spawn("waiter", park_forever, NULL);
    struct producer prod[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        prod[i] = (struct producer){.ref = kl_reactor_ref(), .index = i};
        start_thread(&th[i], produce, &prod[i]);
    }
    KT_EQ_I(kl_reactor_run(), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        KT_EQ_I(prod[i].failed, 0);
    }
    KT_EQ_I(waiter_rc, 1);
    KT_EQ_I(received, PRODUCERS * PER_PROD);
    KT_EQ_I(out_of_order, 0);
    KT_EQ_I(duplicates, 0);
    KT_EQ_I(wrong_thread, 0);
    for (int p = 0; p < PRODUCERS; p++)
        KT_EQ_I(next_seq[p], PER_PROD);
    alarm(0);
}

KT_TEST(posts_from_four_threads_arrive_once_in_order) { rk_each_backend(producers_case); }

/* ---- asleep, then woken ---------------------------------------------------------- */

struct late_post {
    struct kl_xmsg m;
    struct kl_reactor_ref *ref;
    uint64_t delay_ns;
};

static void resume_waiter(struct kl_xmsg *m)
{
    (void)m;
    if (kl_reactor_active()) /* not when run from destroy */
        kl_fiber_resume(waiter, 5);
}

/* Sleep, post, and drop the reference at once: the message alone must keep
 * the reactor waiting for it. */
static void *post_later(void *arg)
{
    struct late_post *lp = arg;
    usleep((useconds_t)(lp->delay_ns / 1000));
    int rc = kl_reactor_post(lp->ref, &lp->m);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "post: %d", rc);
    kl_reactor_unref(lp->ref);
    return NULL;
}

static void asleep_case(enum kl_reactor_backend b)
{
    (void)b;
    alarm(WATCHDOG_S);
    waiter_rc = 0;
    waiter = rk_spawn("waiter", park_forever, NULL);
    struct late_post lp = {.m.fn = resume_waiter, .ref = kl_reactor_ref(), .delay_ns = 50 * MS};
    struct kl_reactor_stats before, after;
    kl_reactor_stats(&before);
    uint64_t t0 = kl_now();
    pthread_t th;
    start_thread(&th, post_later, &lp);
    KT_EQ_I(kl_reactor_run(), 0); /* not 1: the held reference keeps it waiting */
    uint64_t el = kl_now() - t0;
    pthread_join(th, NULL);
    kl_reactor_stats(&after);
    KT_EQ_I(waiter_rc, 5);
    KT_CHECK(el >= 50 * MS);
    /* It slept in the kernel rather than spinning: a handful of iterations. */
    uint64_t iters = after.iterations - before.iterations;
    printf("  woken after %llu ms, %llu iterations\n", (unsigned long long)(el / MS),
           (unsigned long long)iters);
    KT_CHECK(iters <= 4);
    alarm(0);
}

KT_TEST(asleep_reactor_wakes_for_a_post) { rk_each_backend(asleep_case); }

/* The poster posted and let go before the loop ever looked: no reference is
 * out, but the waiting message must still be run, not taken for a deadlock. */
static void let_go_case(enum kl_reactor_backend b)
{
    (void)b;
    alarm(WATCHDOG_S);
    waiter_rc = 0;
    waiter = rk_spawn("waiter", park_forever, NULL);
    struct late_post lp = {.m.fn = resume_waiter, .ref = kl_reactor_ref()};
    pthread_t th;
    start_thread(&th, post_later, &lp);
    pthread_join(th, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(waiter_rc, 5);
    alarm(0);
}

KT_TEST(post_from_a_thread_that_let_go_still_runs) { rk_each_backend(let_go_case); }

/* A fiber that never parks (it yields until a message tells it to stop):
 * the loop's turns between its rounds make no system call, and must still
 * run posted messages. */
static atomic_bool told_to_stop;
static int spins;

static void tell_to_stop(struct kl_xmsg *m)
{
    (void)m;
    atomic_store(&told_to_stop, true);
}

static intptr_t spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&told_to_stop)) {
        kl_fiber_yield();
        spins++;
    }
    return 0;
}

static void busy_case(enum kl_reactor_backend b)
{
    (void)b;
    alarm(WATCHDOG_S);
    atomic_store(&told_to_stop, false);
    spins = 0;
    rk_spawn("spinner", spinner, NULL);
    struct late_post lp = {.m.fn = tell_to_stop, .ref = kl_reactor_ref(), .delay_ns = 20 * MS};
    pthread_t th;
    start_thread(&th, post_later, &lp);
    KT_EQ_I(kl_reactor_run(), 0);
    pthread_join(th, NULL);
    KT_CHECK(atomic_load(&told_to_stop));
    KT_CHECK(spins > 0);
    alarm(0);
}

KT_TEST(posts_run_while_a_fiber_stays_ready) { rk_each_backend(busy_case); }

static void deadlock_case(enum kl_reactor_backend b)
{
    (void)b;
    waiter = rk_spawn("waiter", park_forever, NULL);
    KT_EQ_I(kl_reactor_run(), 1); /* nothing could wake it: reported, as before */
    struct kl_reactor_ref *ref = kl_reactor_ref();
    kl_reactor_unref(ref);
    KT_EQ_I(kl_reactor_run(), 1); /* a reference taken and dropped changes nothing */
}

KT_TEST(no_reference_out_still_reports_deadlock) { rk_each_backend(deadlock_case); }

/* ---- posting to one's own reactor ------------------------------------------------- */

struct tagged {
    struct kl_xmsg m;
    char tag;
    bool wake;
};

static char order[16];
static int order_len, ran_active;

static void on_tagged(struct kl_xmsg *m)
{
    struct tagged *t = kl_container_of(m, struct tagged, m);
    order[order_len++] = t->tag;
    ran_active += kl_reactor_active();
    if (t->wake)
        kl_fiber_resume(waiter, 9);
}

static struct kl_reactor_ref *own_ref;
static struct tagged own_msgs[4];

static intptr_t self_poster(void *arg)
{
    (void)arg;
    own_msgs[1] = (struct tagged){.m.fn = on_tagged, .tag = 'b'};
    own_msgs[2] = (struct tagged){.m.fn = on_tagged, .tag = 'c'};
    own_msgs[3] = (struct tagged){.m.fn = on_tagged, .tag = 'd', .wake = true};
    for (int i = 1; i < 4; i++)
        KT_EQ_I(kl_reactor_post(own_ref, &own_msgs[i].m), 0);
    KT_EQ_I(order_len, 0); /* nothing runs inside a post, nor before the loop's turn */
    waiter_rc = kl_fiber_suspend("own-post", KL_FIBER_FOREVER);
    return 0;
}

static void own_case(enum kl_reactor_backend b)
{
    (void)b;
    alarm(WATCHDOG_S);
    order_len = 0;
    memset(order, 0, sizeof order);
    waiter_rc = 0;
    own_ref = kl_reactor_ref();
    own_msgs[0] = (struct tagged){.m.fn = on_tagged, .tag = 'a'};
    KT_EQ_I(kl_reactor_post(own_ref, &own_msgs[0].m), 0); /* from the main context */
    waiter = rk_spawn("self", self_poster, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(waiter_rc, 9);
    KT_EQ_STR(order, "abcd");
    kl_reactor_unref(own_ref);
    alarm(0);
}

KT_TEST(post_to_own_reactor) { rk_each_backend(own_case); }

/* ---- destroy ------------------------------------------------------------------------ */

static struct tagged late_msgs[3];
static int inner_post_rc;

static void post_during_destroy(struct kl_xmsg *m)
{
    on_tagged(m);
    inner_post_rc = kl_reactor_post(own_ref, &late_msgs[2].m);
}

KT_TEST(post_after_destroy_started_is_refused)
{
    KT_REQUIRE(rk_up(KL_REACTOR_EPOLL));
    order_len = 0;
    memset(order, 0, sizeof order);
    inner_post_rc = 1;
    ran_active = 0;
    own_ref = kl_reactor_ref();
    late_msgs[0] = (struct tagged){.m.fn = on_tagged, .tag = 'x'};
    late_msgs[1] = (struct tagged){.m.fn = post_during_destroy, .tag = 'y'};
    late_msgs[2] = (struct tagged){.m.fn = on_tagged, .tag = 'z'};
    KT_EQ_I(kl_reactor_post(own_ref, &late_msgs[0].m), 0);
    KT_EQ_I(kl_reactor_post(own_ref, &late_msgs[1].m), 0);
    KT_EQ_I(order_len, 0); /* no loop ran */
    rk_down();
    /* Destroy ran what had made it in, in order; the post it saw was refused. */
    KT_EQ_STR(order, "xy");
    KT_EQ_I(ran_active, 0); /* they could tell: the reactor was gone */
    KT_EQ_I(inner_post_rc, -ESHUTDOWN);
    KT_EQ_I(kl_reactor_post(own_ref, &late_msgs[2].m), -ESHUTDOWN);
    KT_EQ_I(order_len, 2);
    kl_reactor_unref(own_ref); /* the last reference: the handle is freed (ASan checks) */
}

#define RACE_MSGS 200000

struct race_msg {
    struct kl_xmsg m;
    int index;
};

static struct race_msg *race;
static unsigned char *race_ran;
static int race_twice;
static atomic_int race_accepted;

static void on_race(struct kl_xmsg *m)
{
    struct race_msg *r = kl_container_of(m, struct race_msg, m);
    if (race_ran[r->index]++)
        race_twice++;
}

static void *race_poster(void *arg)
{
    struct kl_reactor_ref *ref = arg;
    for (int i = 0; i < RACE_MSGS; i++) {
        race[i] = (struct race_msg){.m.fn = on_race, .index = i};
        int rc = kl_reactor_post(ref, &race[i].m);
        if (rc == -ESHUTDOWN)
            break;
        if (rc != 0)
            kt_fail(__FILE__, __LINE__, "post: %d", rc);
        atomic_fetch_add(&race_accepted, 1);
    }
    kl_reactor_unref(ref);
    return NULL;
}

static intptr_t nap(void *arg)
{
    (void)arg;
    kl_sleep(5 * MS);
    return 0;
}

/* Every accepted post runs exactly once, in the loop or from destroy. */
static void race_case(enum kl_reactor_backend b)
{
    (void)b;
    race = calloc(RACE_MSGS, sizeof *race);
    race_ran = calloc(RACE_MSGS, 1);
    KT_REQUIRE(race && race_ran);
    race_twice = 0;
    atomic_store(&race_accepted, 0);
    pthread_t th;
    start_thread(&th, race_poster, kl_reactor_ref());
    rk_spawn("nap", nap, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    rk_down(); /* destroy closes the inbox while the poster may still post */
    pthread_join(th, NULL);
    int accepted = atomic_load(&race_accepted), ran = 0;
    for (int i = 0; i < RACE_MSGS; i++)
        ran += race_ran[i];
    printf("  %d posts accepted before the inbox closed\n", accepted);
    KT_EQ_I(ran, accepted);
    KT_EQ_I(race_twice, 0);
    for (int i = 0; i < accepted; i++)
        KT_EQ_I(race_ran[i], 1);
    free(race);
    free(race_ran);
    KT_REQUIRE(rk_up(b)); /* rk_each_backend takes it down again */
}

KT_TEST(post_racing_destroy_runs_each_accepted_message_once) { rk_each_backend(race_case); }

/* ---- a callback that spawns a fiber ---------------------------------------------------- */

static int child_slept;
static pthread_t child_thread;

static intptr_t child(void *arg)
{
    (void)arg;
    child_slept = kl_sleep(2 * MS) == 0; /* a real fiber: it can block */
    child_thread = pthread_self();
    kl_fiber_resume(waiter, 3);
    return 0;
}

static void spawn_child(struct kl_xmsg *m)
{
    (void)m;
    kl_fiber_id id;
    int rc = kl_fiber_spawn(&id, "child", child, NULL, KL_FIBER_PRIO_NORMAL);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "spawn from a callback: %d", rc);
    else
        kl_fiber_detach(id);
}

static void spawn_case(enum kl_reactor_backend b)
{
    (void)b;
    alarm(WATCHDOG_S);
    child_slept = 0;
    waiter_rc = 0;
    waiter = rk_spawn("waiter", park_forever, NULL);
    struct late_post lp = {.m.fn = spawn_child, .ref = kl_reactor_ref(), .delay_ns = 10 * MS};
    pthread_t th;
    start_thread(&th, post_later, &lp);
    KT_EQ_I(kl_reactor_run(), 0);
    pthread_join(th, NULL);
    KT_EQ_I(waiter_rc, 3);
    KT_CHECK(child_slept);
    KT_CHECK(pthread_equal(child_thread, pthread_self()));
    alarm(0);
}

KT_TEST(callback_spawns_a_fiber) { rk_each_backend(spawn_case); }

/* ---- kl_defer_to_thread ------------------------------------------------------------------ */

static atomic_bool defer_done;
static int ticks;
static pthread_t job_thread;
static atomic_int job_finished;

static intptr_t blocking_job(void *arg)
{
    job_thread = pthread_self();
    usleep((useconds_t)(intptr_t)arg);
    atomic_store(&job_finished, 1);
    return 42;
}

static intptr_t ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&defer_done)) {
        kl_sleep(5 * MS);
        ticks++;
    }
    return 0;
}

static int defer_rc, ticks_during;
static intptr_t defer_res;
static uint64_t defer_el;

static intptr_t deferrer(void *arg)
{
    (void)arg;
    kl_sleep(MS); /* let the ticker start */
    int t0 = ticks;
    uint64_t start = kl_now();
    defer_rc = kl_defer_to_thread(blocking_job, (void *)(intptr_t)50000, &defer_res);
    defer_el = kl_now() - start;
    ticks_during = ticks - t0;
    atomic_store(&defer_done, true);
    return 0;
}

static void defer_case(enum kl_reactor_backend b)
{
    (void)b;
    atomic_store(&defer_done, false);
    atomic_store(&job_finished, 0);
    ticks = ticks_during = 0;
    defer_rc = 1;
    defer_res = 0;
    rk_spawn("ticker", ticker, NULL);
    rk_spawn("deferrer", deferrer, NULL);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(defer_rc, 0);
    KT_EQ_I(defer_res, 42);
    KT_CHECK(defer_el >= 50 * MS);
    KT_CHECK(!pthread_equal(job_thread, pthread_self()));
    printf("  the ticker ticked %d times during the 50 ms call\n", ticks_during);
    KT_CHECK(ticks_during >= 3); /* 5 ms ticks: about 10 when the reactor is not blocked */
}

KT_TEST(defer_runs_a_blocking_call_while_fibers_run) { rk_each_backend(defer_case); }

static kl_fiber_id victim;
static int second_rc, finished_on_return;
static intptr_t second_res;

static intptr_t cancelled_deferrer(void *arg)
{
    (void)arg;
    uint64_t start = kl_now();
    defer_rc = kl_defer_to_thread(blocking_job, (void *)(intptr_t)60000, &defer_res);
    defer_el = kl_now() - start;
    finished_on_return = atomic_load(&job_finished);
    atomic_store(&job_finished, 0);
    second_rc = kl_defer_to_thread(blocking_job, (void *)(intptr_t)1, &second_res);
    return 0;
}

static void defer_cancel_case(enum kl_reactor_backend b)
{
    (void)b;
    atomic_store(&job_finished, 0);
    defer_rc = second_rc = 1;
    defer_res = second_res = 0;
    finished_on_return = 0;
    victim = rk_spawn("victim", cancelled_deferrer, NULL);
    rk_spawn("canceller", rk_canceller, &victim);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(defer_rc, -ECANCELED);
    KT_EQ_I(defer_res, 42);         /* the result is still passed back */
    KT_EQ_I(finished_on_return, 1); /* it waited for the job */
    KT_CHECK(defer_el >= 60 * MS);
    KT_EQ_I(second_rc, -ECANCELED); /* already cancelled: nothing runs */
    KT_EQ_I(second_res, 0);
    KT_EQ_I(atomic_load(&job_finished), 0);
}

KT_TEST(defer_cancelled_waits_for_the_job) { rk_each_backend(defer_cancel_case); }

/* A job still queued (every worker busy) when its fiber is cancelled is
 * not dropped: it runs, and the fiber waits for it. */
static intptr_t nap_job(void *arg)
{
    usleep((useconds_t)(intptr_t)arg);
    return 0;
}

static intptr_t filler(void *arg)
{
    (void)arg;
    intptr_t res;
    KT_EQ_I(kl_defer_to_thread(nap_job, (void *)(intptr_t)40000, &res), 0);
    return 0;
}

static intptr_t queued_victim(void *arg)
{
    (void)arg;
    defer_rc = kl_defer_to_thread(blocking_job, (void *)(intptr_t)1000, &defer_res);
    finished_on_return = atomic_load(&job_finished);
    return 0;
}

static void defer_queued_case(enum kl_reactor_backend b)
{
    (void)b;
    atomic_store(&job_finished, 0);
    defer_rc = 1;
    defer_res = 0;
    finished_on_return = 0;
    for (int i = 0; i < 8; i++) /* the pool's bound: every worker busy for 40 ms */
        rk_spawn("filler", filler, NULL);
    victim = rk_spawn("victim", queued_victim, NULL);
    rk_spawn("canceller", rk_canceller, &victim);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(defer_rc, -ECANCELED);
    KT_EQ_I(defer_res, 42);
    KT_EQ_I(finished_on_return, 1);
}

KT_TEST(defer_cancelled_while_queued_still_runs) { rk_each_backend(defer_queued_case); }

#define DEFERS 24

static atomic_int in_job, max_in_job;
static intptr_t many_res[DEFERS];
static int many_rc[DEFERS];

static intptr_t counted_job(void *arg)
{
    int now = atomic_fetch_add(&in_job, 1) + 1;
    int max = atomic_load(&max_in_job);
    while (now > max && !atomic_compare_exchange_weak(&max_in_job, &max, now)) {
    }
    usleep(10000);
    atomic_fetch_sub(&in_job, 1);
    return (intptr_t)arg * 3 + 1;
}

static intptr_t many_deferrer(void *arg)
{
    intptr_t i = (intptr_t)arg;
    many_rc[i] = kl_defer_to_thread(counted_job, (void *)i, &many_res[i]);
    return 0;
}

static void many_case(enum kl_reactor_backend b)
{
    (void)b;
    atomic_store(&in_job, 0);
    atomic_store(&max_in_job, 0);
    for (intptr_t i = 0; i < DEFERS; i++) {
        many_rc[i] = 1;
        many_res[i] = 0;
        rk_spawn("deferrer", many_deferrer, (void *)i);
    }
    KT_EQ_I(kl_reactor_run(), 0);
    for (int i = 0; i < DEFERS; i++) {
        KT_EQ_I(many_rc[i], 0);
        KT_EQ_I(many_res[i], i * 3 + 1);
    }
    int max = atomic_load(&max_in_job);
    printf("  at most %d jobs ran at once\n", max);
    KT_CHECK(max >= 2);
    KT_CHECK(max <= 8); /* the pool's bound */
    struct kl_reactor_stats st;
    kl_reactor_stats(&st);
    KT_EQ_U(st.completions, DEFERS);
}

KT_TEST(many_concurrent_defers) { rk_each_backend(many_case); }

/* ---- two reactors ping-ponging ---------------------------------------------------------- */

#define ROUNDS 2000

struct side {
    enum kl_reactor_backend backend;
    struct kl_reactor_ref *self_ref; /* published for the other side */
    struct side *other;
    struct kl_xmsg msg; /* this side's ball: posted to the other side */
    kl_fiber_id waiter;
    int count, failed, wrong_thread;
    pthread_t thread; /* set by the side's own thread */
    bool serves;      /* the side that starts */
};

static pthread_barrier_t pp_barrier;
static struct side sides[2];

static void hit(struct side *s)
{
    int rc = kl_reactor_post(s->other->self_ref, &s->msg);
    if (rc != 0)
        s->failed++;
}

/* The other side's ball landed here: count it and send ours back. */
static void on_ball(struct kl_xmsg *m)
{
    struct side *from = kl_container_of(m, struct side, msg);
    struct side *s = from->other;
    if (!pthread_equal(pthread_self(), s->thread))
        s->wrong_thread++;
    s->count++;
    if (!s->serves || s->count < ROUNDS)
        hit(s);
    if (s->count == ROUNDS)
        kl_fiber_resume(s->waiter, 0);
}

static intptr_t player(void *arg)
{
    struct side *s = arg;
    if (s->serves)
        hit(s);
    kl_fiber_suspend("rally", KL_FIBER_FOREVER);
    return 0;
}

static void *side_main(void *arg)
{
    struct side *s = arg;
    s->thread = pthread_self();
    bool ok = rk_up(s->backend);
    s->self_ref = ok ? kl_reactor_ref() : NULL;
    s->msg.fn = on_ball;
    pthread_barrier_wait(&pp_barrier); /* both refs published */
    if (!ok || s->other->self_ref == NULL) {
        s->failed++;
    } else {
        s->waiter = rk_spawn("player", player, s);
        if (kl_reactor_run() != 0)
            s->failed++;
    }
    pthread_barrier_wait(&pp_barrier); /* nobody posts any more */
    if (s->other->self_ref)
        kl_reactor_unref(s->other->self_ref);
    if (ok)
        rk_down();
    return NULL;
}

KT_TEST(two_reactors_ping_pong)
{
    alarm(WATCHDOG_S);
    /* Mixed backends where io_uring works: each wakes the other. */
    enum kl_reactor_backend first = KL_REACTOR_EPOLL;
    if (rk_up(KL_REACTOR_URING)) {
        rk_down();
        first = KL_REACTOR_URING;
    }
    pthread_barrier_init(&pp_barrier, NULL, 2);
    memset(sides, 0, sizeof sides);
    sides[0] = (struct side){.backend = first, .other = &sides[1], .serves = true};
    sides[1] = (struct side){.backend = KL_REACTOR_EPOLL, .other = &sides[0]};
    printf("  %s against %s\n", kl_reactor_backend_name(sides[0].backend),
           kl_reactor_backend_name(sides[1].backend));
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        start_thread(&th[i], side_main, &sides[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&pp_barrier);
    for (int i = 0; i < 2; i++) {
        KT_EQ_I(sides[i].count, ROUNDS);
        KT_EQ_I(sides[i].failed, 0);
        KT_EQ_I(sides[i].wrong_thread, 0);
    }
    alarm(0);
}

/* ---- misuse ------------------------------------------------------------------------------- */

KT_DEATH_TEST(post_without_fn_asserts, "without fn")
{
    if (!rk_up(KL_REACTOR_EPOLL))
        return;
    struct kl_xmsg m = {0};
    kl_reactor_post(kl_reactor_ref(), &m);
}
