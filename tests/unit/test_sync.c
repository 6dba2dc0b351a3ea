/* Tests for keel/sync.h: per primitive, basic behaviour, FIFO order with
 * several waiters, timeouts (a real timer wheel behind the scheduler's
 * timeout hooks, advanced on a fake clock by the idle hook), cancellation of
 * a waiter (the wake-up then goes to the next one), misuse assertions,
 * channel close semantics, and randomized stress runs that check the
 * invariants (mutual exclusion, semaphore bound and count, reader-writer
 * exclusion, channel order and count) under timeouts and cancels. */
#include "keel/sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/clock.h"
#include "keel/fiber.h"
#include "keel/timer_wheel.h"

#include "kt.h"

#define MS 1000000u

static void up(uint32_t max_fibers)
{
    struct kl_sched_config cfg = {.max_fibers = max_fibers};
    int rc = kl_sched_init(&cfg);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_sched_init: %d", rc);
}

static void down(void)
{
    kl_sched_set_hooks(NULL);
    int rc = kl_sched_shutdown();
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_sched_shutdown: %d", rc);
}

static kl_fiber_id spawn(const char *name, kl_fiber_fn fn, void *arg)
{
    kl_fiber_id id;
    int rc = kl_fiber_spawn(&id, name, fn, arg, KL_FIBER_PRIO_NORMAL);
    KL_ASSERT(rc == 0, "spawn %s: %d", name, rc);
    return id;
}

static intptr_t join(kl_fiber_id id)
{
    intptr_t r = -999;
    int rc = kl_fiber_join(id, &r);
    KL_ASSERT(rc == 0, "join: %d", rc);
    return r;
}

/* ---- timeouts: a timer wheel on a fake clock ------------------------------ */

#define TIMERS 512

static struct kl_timer_wheel wheel;
static struct kl_timer timers[TIMERS];
static kl_fiber_id timer_fiber[TIMERS];
static uint64_t fake_now;
static uint64_t idle_horizon; /* the idle hook fires no timeout due later than this */
static int timeouts_fired;

static void timer_fire(struct kl_timer *t, void *arg)
{
    (void)t;
    size_t i = (size_t)(uintptr_t)arg;
    kl_fiber_id id = timer_fiber[i];
    timer_fiber[i] = KL_FIBER_ID_NONE;
    timeouts_fired++;
    KL_ASSERT(kl_fiber_expire(id) == 0, "expire of an armed timeout failed");
}

static int timer_arm(void *ctx, kl_fiber_id id, uint64_t deadline_ns, uint64_t *token)
{
    (void)ctx;
    for (size_t i = 0; i < TIMERS; i++) {
        if (kl_fiber_id_eq(timer_fiber[i], KL_FIBER_ID_NONE)) {
            timer_fiber[i] = id;
            kl_timer_init(&timers[i], timer_fire, (void *)(uintptr_t)i);
            kl_timer_wheel_insert(&wheel, &timers[i], deadline_ns, 0);
            *token = i;
            return 0;
        }
    }
    return -ENOSPC;
}

static void timer_disarm(void *ctx, uint64_t token)
{
    (void)ctx;
    KL_ASSERT(kl_timer_wheel_cancel(&wheel, &timers[token]) == 0, "disarm of an idle timer");
    timer_fiber[token] = KL_FIBER_ID_NONE;
}

/* Nothing is ready: jump the fake clock to the next timeout and fire it. */
static int idle_advance(void *ctx)
{
    (void)ctx;
    uint64_t next = kl_timer_wheel_next_deadline(&wheel);
    if (next == UINT64_MAX || next > idle_horizon)
        return -EDEADLK;
    if (next > fake_now)
        fake_now = next;
    kl_timer_wheel_advance(&wheel, fake_now);
    return 0;
}

/* Move the fake clock by `ns` and fire what is due (the stress clock fiber). */
static void clock_step(uint64_t ns)
{
    uint64_t real = kl_now();
    fake_now = (fake_now > real ? fake_now : real) + ns;
    kl_timer_wheel_advance(&wheel, fake_now);
}

static void timers_up(void)
{
    fake_now = kl_now();
    idle_horizon = fake_now + 1000 * (uint64_t)MS;
    timeouts_fired = 0;
    KL_ASSERT(kl_timer_wheel_init(&wheel, KL_TIMER_WHEEL_DEFAULT_RES, fake_now) == 0);
    for (size_t i = 0; i < TIMERS; i++)
        timer_fiber[i] = KL_FIBER_ID_NONE;
    struct kl_sched_hooks hooks = {
        .idle = idle_advance, .timeout_arm = timer_arm, .timeout_disarm = timer_disarm};
    kl_sched_set_hooks(&hooks);
}

static void timers_down(void)
{
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0); /* every wait disarmed or fired its timeout */
    kl_timer_wheel_destroy(&wheel);
}

/* ---- a trace of who got what, in order ------------------------------------- */

static char trace[512];
static size_t trace_len;

static void trace_reset(void)
{
    trace_len = 0;
    trace[0] = '\0';
}

static void trace_add(const char *s)
{
    size_t n = strlen(s);
    if (trace_len + n < sizeof trace) {
        memcpy(trace + trace_len, s, n + 1);
        trace_len += n;
    }
}

/* One waiting fiber: what it waits on, its trace tag, its timeout, its result. */
struct job {
    const char *tag;
    void *obj;
    uint64_t timeout;
    int rc;
    intptr_t value;
    struct kl_event *gate; /* holders: wait here before releasing */
    kl_fiber_id victim;    /* holders: cancel this fiber right before releasing */
    int start;             /* channel receivers: the first value expected */
    bool done;
};

static void job_trace(struct job *j)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%s%s", j->tag,
             j->rc == 0            ? ""
             : j->rc == -ETIMEDOUT ? "T"
             : j->rc == -ECANCELED ? "C"
             : j->rc == -EPIPE     ? "P"
                                   : "?");
    trace_add(buf);
}

static void job_hold(struct job *j)
{
    if (j->gate)
        KL_ASSERT(kl_event_wait(j->gate, 0) == 0);
    if (!kl_fiber_id_eq(j->victim, KL_FIBER_ID_NONE))
        KL_ASSERT(kl_fiber_cancel(j->victim) == 0);
}

/* ---- event ----------------------------------------------------------------- */

static intptr_t event_waiter(void *arg)
{
    struct job *j = arg;
    j->rc = kl_event_wait(j->obj, j->timeout);
    job_trace(j);
    return 0;
}

KT_TEST(event_level_triggered_fifo)
{
    up(16);
    trace_reset();
    struct kl_event ev;
    kl_event_init(&ev, false);
    KT_CHECK(!kl_event_is_set(&ev));
    struct job j[3] = {
        {.tag = "a", .obj = &ev}, {.tag = "b", .obj = &ev}, {.tag = "c", .obj = &ev}};
    kl_fiber_id id[3];
    for (int i = 0; i < 3; i++)
        id[i] = spawn("ev", event_waiter, &j[i]);
    KT_EQ_I(kl_sched_run(), 3);
    KT_EQ_STR(trace, "");
    kl_event_set(&ev);
    kl_event_reset(&ev); /* the woken waiters still return 0 */
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "abc");
    for (int i = 0; i < 3; i++)
        join(id[i]);
    /* while set, a wait returns at once, any number of times */
    kl_event_set(&ev);
    trace_reset();
    id[0] = spawn("ev", event_waiter, &j[0]);
    id[1] = spawn("ev", event_waiter, &j[1]);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "ab");
    join(id[0]);
    join(id[1]);
    down();
}

/* Sleeps `timeout` on a signal nobody notifies, then sets the event. */
static intptr_t late_setter(void *arg)
{
    struct job *j = arg;
    struct kl_signal never;
    kl_signal_init(&never);
    j->rc = kl_signal_wait(&never, j->timeout);
    kl_event_set(j->obj);
    return 0;
}

KT_TEST(event_timeout_and_cancel)
{
    up(16);
    timers_up();
    trace_reset();
    struct kl_event ev;
    kl_event_init(&ev, false);
    struct job j[3] = {{.tag = "a", .obj = &ev, .timeout = 5 * MS},
                       {.tag = "b", .obj = &ev},
                       {.tag = "c", .obj = &ev, .timeout = 50 * MS}};
    struct job setter = {.obj = &ev, .timeout = 10 * MS};
    kl_fiber_id id[3];
    for (int i = 0; i < 3; i++)
        id[i] = spawn("ev", event_waiter, &j[i]);
    kl_fiber_id s = spawn("setter", late_setter, &setter);
    KT_EQ_I(kl_fiber_cancel(id[1]), 0); /* not started: its wait fails at once */
    KT_EQ_I(kl_sched_run(), 0);
    /* a times out at 5 ms; the setter's own wait times out at 10 ms and it
     * sets the event, which wakes c before its 50 ms (its timer is disarmed) */
    KT_EQ_STR(trace, "bCaTc");
    KT_EQ_I(setter.rc, -ETIMEDOUT);
    KT_EQ_I(timeouts_fired, 2);
    for (int i = 0; i < 3; i++)
        join(id[i]);
    join(s);
    timers_down();
    down();
}

/* ---- signal ---------------------------------------------------------------- */

static intptr_t signal_waiter(void *arg)
{
    struct job *j = arg;
    j->rc = kl_signal_wait(j->obj, j->timeout);
    job_trace(j);
    return 0;
}

/* Waits, and once woken waits again at once (the same notify_all must not count it twice). */
static intptr_t signal_rewaiter(void *arg)
{
    struct job *j = arg;
    j->rc = kl_signal_wait(j->obj, 0);
    job_trace(j);
    j->rc = kl_signal_wait(j->obj, 0);
    job_trace(j);
    return 0;
}

KT_TEST(signal_edge_triggered_fifo_and_cancel)
{
    up(16);
    trace_reset();
    struct kl_signal sig;
    kl_signal_init(&sig);
    KT_EQ_U(kl_signal_notify_one(&sig), 0); /* nobody waits: not remembered */
    KT_EQ_U(kl_signal_notify_all(&sig), 0);
    struct job j[4] = {{.tag = "a", .obj = &sig},
                       {.tag = "b", .obj = &sig},
                       {.tag = "c", .obj = &sig},
                       {.tag = "d", .obj = &sig}};
    kl_fiber_id id[4];
    id[0] = spawn("sig", signal_rewaiter, &j[0]);
    for (int i = 1; i < 4; i++)
        id[i] = spawn("sig", signal_waiter, &j[i]);
    KT_EQ_I(kl_sched_run(), 4);
    KT_EQ_U(kl_signal_notify_one(&sig), 1); /* the first to arrive */
    KT_EQ_I(kl_sched_run(), 4);             /* a woke and waits again, at the back */
    KT_EQ_STR(trace, "a");
    KT_EQ_I(kl_fiber_cancel(id[1]), 0); /* b is woken by the cancel but has not run */
    KT_EQ_U(kl_signal_notify_one(&sig), 1);
    KT_EQ_I(kl_sched_run(), 2); /* the notify went to c, not to the cancelled b */
    KT_EQ_STR(trace, "abCc");
    KT_EQ_U(kl_signal_notify_all(&sig), 2); /* d, then a (re-queued) */
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "abCcda");
    for (int i = 0; i < 4; i++)
        join(id[i]);
    down();
}

/* ---- mutex ----------------------------------------------------------------- */

/* Locks, records, optionally waits at its gate and cancels its victim, unlocks. */
static intptr_t mutex_worker(void *arg)
{
    struct job *j = arg;
    j->rc = kl_mutex_lock(j->obj, j->timeout);
    job_trace(j);
    if (j->rc == 0) {
        job_hold(j);
        kl_mutex_unlock(j->obj);
    }
    j->done = true;
    return 0;
}

static int barged;

/* Tries the mutex right after it was handed off (before the new owner runs). */
static intptr_t mutex_barger(void *arg)
{
    barged = kl_mutex_trylock(arg);
    if (barged == 0)
        kl_mutex_unlock(arg);
    return 0;
}

KT_TEST(mutex_fifo_hand_off)
{
    up(16);
    trace_reset();
    struct kl_mutex m;
    kl_mutex_init(&m);
    struct kl_event gate;
    kl_event_init(&gate, false);
    struct job j[4] = {{.tag = "A", .obj = &m, .gate = &gate},
                       {.tag = "b", .obj = &m},
                       {.tag = "c", .obj = &m},
                       {.tag = "d", .obj = &m}};
    kl_fiber_id id[4];
    for (int i = 0; i < 4; i++)
        id[i] = spawn("mutex", mutex_worker, &j[i]);
    KT_EQ_I(kl_sched_run(), 4); /* A holds and waits at its gate; b c d queue */
    KT_EQ_STR(trace, "A");
    KT_CHECK(kl_mutex_locked(&m));
    KT_EQ_U(kl_list_len(&m.waiters), 3);
    kl_event_set(&gate);
    barged = 1;
    kl_fiber_id barger = spawn("barger", mutex_barger, &m); /* ready after A */
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "Abcd");
    KT_EQ_I(barged, -EBUSY); /* A unlocked before it ran, but b already owned it */
    KT_CHECK(!kl_mutex_locked(&m));
    KT_EQ_U(kl_list_len(&m.waiters), 0);
    for (int i = 0; i < 4; i++)
        join(id[i]);
    join(barger);
    down();
}

KT_TEST(mutex_cancelled_waiter_passes_the_lock_on)
{
    up(16);
    trace_reset();
    struct kl_mutex m;
    kl_mutex_init(&m);
    struct kl_event gate;
    kl_event_init(&gate, false);
    struct job j[4] = {{.tag = "A", .obj = &m, .gate = &gate},
                       {.tag = "b", .obj = &m},
                       {.tag = "c", .obj = &m},
                       {.tag = "d", .obj = &m}};
    kl_fiber_id id[4];
    for (int i = 0; i < 4; i++)
        id[i] = spawn("mutex", mutex_worker, &j[i]);
    j[0].victim = id[1]; /* A cancels b, then unlocks before b can run */
    KT_EQ_I(kl_sched_run(), 4);
    KT_EQ_I(kl_fiber_cancel(id[2]), 0); /* c leaves the queue on its own */
    KT_EQ_I(kl_sched_run(), 3);
    KT_EQ_STR(trace, "AcC");
    KT_EQ_U(kl_list_len(&m.waiters), 2);
    kl_event_set(&gate);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "AcCbCd"); /* b woke cancelled, d got the lock */
    KT_CHECK(!kl_mutex_locked(&m));
    for (int i = 0; i < 4; i++)
        join(id[i]);
    down();
}

KT_TEST(mutex_timeout)
{
    up(16);
    timers_up();
    trace_reset();
    struct kl_mutex m;
    kl_mutex_init(&m);
    struct kl_event gate;
    kl_event_init(&gate, false);
    struct job j[3] = {{.tag = "A", .obj = &m, .gate = &gate},
                       {.tag = "b", .obj = &m, .timeout = 5 * MS},
                       {.tag = "c", .obj = &m, .timeout = 3600000 * (uint64_t)MS}};
    kl_fiber_id id[3];
    for (int i = 0; i < 3; i++)
        id[i] = spawn("mutex", mutex_worker, &j[i]);
    KT_EQ_I(kl_sched_run(), 2); /* b times out after 5 ms; c's hour is beyond the horizon */
    KT_EQ_STR(trace, "AbT");
    KT_EQ_I(kl_fiber_state(id[2]), KL_FIBER_SUSPENDED);
    KT_EQ_U(kl_list_len(&m.waiters), 1);
    kl_event_set(&gate);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "AbTc");
    KT_EQ_I(kl_fiber_state(id[2]), KL_FIBER_DONE);
    KT_EQ_I(timeouts_fired, 1);
    for (int i = 0; i < 3; i++)
        join(id[i]);
    timers_down();
    down();
}

/* ---- reader-writer lock ---------------------------------------------------- */

/* job.value: 1 for a writer. Locks, records, holds at its gate, unlocks. */
static intptr_t rw_worker(void *arg)
{
    struct job *j = arg;
    j->rc = j->value ? kl_rwlock_wrlock(j->obj, j->timeout) : kl_rwlock_rdlock(j->obj, j->timeout);
    job_trace(j);
    if (j->rc == 0) {
        job_hold(j);
        if (j->value)
            kl_rwlock_wrunlock(j->obj);
        else
            kl_rwlock_rdunlock(j->obj);
    }
    return 0;
}

KT_TEST(rwlock_fifo_phases)
{
    up(16);
    trace_reset();
    struct kl_rwlock rw;
    kl_rwlock_init(&rw);
    struct kl_event g1, g2, gw;
    kl_event_init(&g1, false);
    kl_event_init(&g2, false);
    kl_event_init(&gw, false);
    struct job j[6] = {{.tag = "1", .obj = &rw, .gate = &g1},
                       {.tag = "2", .obj = &rw, .gate = &g2},
                       {.tag = "W", .obj = &rw, .gate = &gw, .value = 1},
                       {.tag = "3", .obj = &rw},
                       {.tag = "4", .obj = &rw},
                       {.tag = "w", .obj = &rw, .value = 1}};
    kl_fiber_id id[6];
    for (int i = 0; i < 6; i++)
        id[i] = spawn("rw", rw_worker, &j[i]);
    KT_EQ_I(kl_sched_run(), 6);
    KT_EQ_STR(trace, "12"); /* readers share; 3 and 4 queue behind the waiting writer */
    KT_EQ_U(rw.readers, 2);
    KT_EQ_U(kl_list_len(&rw.waiters), 4);
    kl_event_set(&g1);
    KT_EQ_I(kl_sched_run(), 5);
    KT_EQ_STR(trace, "12");
    kl_event_set(&g2);
    KT_EQ_I(kl_sched_run(), 4);
    KT_EQ_STR(trace, "12W");
    kl_event_set(&gw); /* W's release lets the run of readers 3, 4 in, then w */
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "12W34w");
    KT_EQ_U(rw.readers, 0);
    KT_CHECK(kl_fiber_id_eq(rw.writer, KL_FIBER_ID_NONE));
    for (int i = 0; i < 6; i++)
        join(id[i]);
    down();
}

KT_TEST(rwlock_departing_writer_lets_readers_in)
{
    up(16);
    timers_up();
    struct kl_rwlock rw;
    kl_rwlock_init(&rw);
    for (int round = 0; round < 2; round++) { /* 0: the writer times out; 1: it is cancelled */
        trace_reset();
        struct kl_event g;
        kl_event_init(&g, false);
        struct job j[3] = {{.tag = "1", .obj = &rw, .gate = &g},
                           {.tag = "W", .obj = &rw, .value = 1, .timeout = round ? 0 : 5 * MS},
                           {.tag = "2", .obj = &rw, .gate = &g}};
        kl_fiber_id id[3];
        for (int i = 0; i < 3; i++)
            id[i] = spawn("rw", rw_worker, &j[i]);
        if (round == 1) {
            KT_EQ_I(kl_sched_run(), 3);
            KT_EQ_STR(trace, "1");
            KT_EQ_I(kl_fiber_cancel(id[1]), 0);
        }
        KT_EQ_I(kl_sched_run(), 2); /* 2 no longer waits behind a writer */
        KT_EQ_STR(trace, round ? "1WC2" : "1WT2");
        KT_EQ_U(rw.readers, 2);
        kl_event_set(&g);
        KT_EQ_I(kl_sched_run(), 0);
        KT_EQ_U(rw.readers, 0);
        KT_EQ_U(kl_list_len(&rw.waiters), 0);
        for (int i = 0; i < 3; i++)
            join(id[i]);
    }
    timers_down();
    down();
}

/* ---- semaphore ------------------------------------------------------------- */

static intptr_t sem_worker(void *arg)
{
    struct job *j = arg;
    j->rc = kl_sem_wait(j->obj, j->timeout);
    job_trace(j);
    if (j->rc == 0) {
        job_hold(j);
        kl_sem_post(j->obj);
    }
    return 0;
}

KT_TEST(semaphore_fifo_hand_off_cancel_timeout)
{
    up(16);
    timers_up();
    trace_reset();
    struct kl_sem sem;
    kl_sem_init(&sem, 1);
    struct kl_event gate;
    kl_event_init(&gate, false);
    struct job j[5] = {{.tag = "A", .obj = &sem, .gate = &gate},
                       {.tag = "b", .obj = &sem},
                       {.tag = "c", .obj = &sem},
                       {.tag = "d", .obj = &sem},
                       {.tag = "e", .obj = &sem, .timeout = 5 * MS}};
    kl_fiber_id id[5];
    for (int i = 0; i < 5; i++)
        id[i] = spawn("sem", sem_worker, &j[i]);
    KT_EQ_I(kl_sched_run(), 4); /* e timed out */
    KT_EQ_STR(trace, "AeT");
    KT_EQ_U(kl_sem_value(&sem), 0);
    KT_EQ_U(kl_list_len(&sem.waiters), 3);
    KT_EQ_I(kl_fiber_cancel(id[2]), 0); /* c: woken, not run yet */
    kl_sem_post(&sem);                  /* an extra unit: it goes to b, past c */
    KT_EQ_U(kl_sem_value(&sem), 0);
    KT_EQ_I(kl_sem_trywait(&sem), -EAGAIN); /* handed off: no barging */
    KT_EQ_I(kl_sched_run(), 1);
    KT_EQ_STR(trace, "AeTcCbd"); /* b posts its unit to d */
    KT_EQ_U(kl_sem_value(&sem), 1);
    kl_event_set(&gate);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_U(kl_sem_value(&sem), 2);
    KT_EQ_I(kl_sem_trywait(&sem), 0);
    KT_EQ_U(kl_sem_value(&sem), 1);
    for (int i = 0; i < 5; i++)
        join(id[i]);
    timers_down();
    down();
}

/* ---- barrier --------------------------------------------------------------- */

static int serials[4];

/* Crosses the barrier job.value times, counting the serial results per round. */
static intptr_t barrier_worker(void *arg)
{
    struct job *j = arg;
    for (intptr_t r = 0; r < j->value; r++) {
        j->rc = kl_barrier_wait(j->obj, j->timeout);
        if (j->rc < 0) {
            job_trace(j);
            return 0;
        }
        if (j->rc == KL_BARRIER_SERIAL)
            serials[r]++;
        char buf[8];
        snprintf(buf, sizeof buf, "%s%d", j->tag, (int)r);
        trace_add(buf);
    }
    return 0;
}

KT_TEST(barrier_rounds)
{
    up(16);
    trace_reset();
    memset(serials, 0, sizeof serials);
    struct kl_barrier b;
    KT_EQ_I(kl_barrier_init(&b, 0), -EINVAL);
    KT_EQ_I(kl_barrier_init(&b, 3), 0);
    struct job j[3] = {{.tag = "a", .obj = &b, .value = 3},
                       {.tag = "b", .obj = &b, .value = 3},
                       {.tag = "c", .obj = &b, .value = 3}};
    kl_fiber_id id[3];
    for (int i = 0; i < 3; i++)
        id[i] = spawn("bar", barrier_worker, &j[i]);
    KT_EQ_I(kl_sched_run(), 0);
    /* The last arrival goes on at once, the others follow in FIFO order;
     * whoever arrives last in a round differs: c, then b, then c. */
    KT_EQ_STR(trace, "c0a0b0b1c1a1a2b2c2");
    for (int r = 0; r < 3; r++)
        KT_EQ_I(serials[r], 1);
    KT_EQ_U(b.rounds, 3);
    for (int i = 0; i < 3; i++)
        join(id[i]);
    down();
}

KT_TEST(barrier_departing_party_withdraws)
{
    up(16);
    timers_up();
    trace_reset();
    memset(serials, 0, sizeof serials);
    struct kl_barrier b;
    KT_EQ_I(kl_barrier_init(&b, 3), 0);
    struct job j[5] = {{.tag = "t", .obj = &b, .value = 1, .timeout = 5 * MS},
                       {.tag = "x", .obj = &b, .value = 1},
                       {.tag = "y", .obj = &b, .value = 1},
                       {.tag = "z", .obj = &b, .value = 1},
                       {.tag = "w", .obj = &b, .value = 1}};
    kl_fiber_id id[5];
    id[0] = spawn("bar", barrier_worker, &j[0]);
    id[1] = spawn("bar", barrier_worker, &j[1]);
    KT_EQ_I(kl_sched_run(), 1); /* t timed out: only x has arrived */
    KT_EQ_STR(trace, "tT");
    id[2] = spawn("bar", barrier_worker, &j[2]);
    KT_EQ_I(kl_sched_run(), 2); /* x, y: not yet three */
    id[3] = spawn("bar", barrier_worker, &j[3]);
    KT_EQ_I(kl_fiber_cancel(id[2]), 0); /* y: woken after z was made ready */
    KT_EQ_I(kl_sched_run(), 2);         /* z arrived while y was still queued: y did not count */
    KT_EQ_STR(trace, "tTyC");
    id[4] = spawn("bar", barrier_worker, &j[4]);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "tTyCw0x0z0");
    KT_EQ_I(serials[0], 1);
    KT_EQ_U(b.rounds, 1);
    for (int i = 0; i < 5; i++)
        join(id[i]);
    timers_down();
    down();
}

/* ---- channel --------------------------------------------------------------- */

/* Sends job.value ints 0, 1, ... ; rc is the first failure (or 0). */
static intptr_t chan_sender(void *arg)
{
    struct job *j = arg;
    j->rc = 0;
    for (int i = 0; i < j->value; i++) {
        int rc = kl_chan_send(j->obj, &i, j->timeout);
        if (rc < 0) {
            j->rc = rc;
            return i; /* how many were sent */
        }
    }
    return j->value;
}

/* Receives ints (job.value of them, 0: until a failure) checking they count up
 * from job.start; returns how many, rc is the failure. */
static intptr_t chan_receiver(void *arg)
{
    struct job *j = arg;
    int v, n = 0;
    while ((j->rc = kl_chan_recv(j->obj, &v, j->timeout)) == 0) {
        if (v != j->start + n)
            return -1000 - v;
        n++;
        if (j->value && n == j->value)
            break;
    }
    return n;
}

KT_TEST(chan_order_blocking_and_hand_off)
{
    up(16);
    int ring[4];
    struct kl_chan ch;
    KT_EQ_I(kl_chan_init(&ch, NULL, sizeof(int), 4), -EINVAL);
    KT_EQ_I(kl_chan_init(&ch, ring, 0, 4), -EINVAL);
    KT_EQ_I(kl_chan_init(&ch, ring, sizeof(int), 4), 0);
    struct job s = {.obj = &ch, .value = 10};
    kl_fiber_id sid = spawn("send", chan_sender, &s);
    KT_EQ_I(kl_sched_run(), 1);
    KT_EQ_U(kl_chan_len(&ch), 4); /* full: the sender blocks holding item 4 */
    KT_EQ_I(kl_fiber_state(sid), KL_FIBER_SUSPENDED);
    int v = -1;
    KT_EQ_I(kl_chan_try_recv(&ch, &v), 0);
    KT_EQ_I(v, 0);
    KT_EQ_U(kl_chan_len(&ch), 4); /* item 4 moved in at once */
    KT_EQ_I(kl_fiber_state(sid), KL_FIBER_READY);
    v = 99;
    KT_EQ_I(kl_chan_try_send(&ch, &v), -EAGAIN); /* a newcomer finds it full */
    struct job r = {.obj = &ch, .value = 9, .start = 1};
    kl_fiber_id rid = spawn("recv", chan_receiver, &r);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_I(join(sid), 10);
    KT_EQ_I(join(rid), 9);
    KT_EQ_I(r.rc, 0);
    KT_EQ_U(kl_chan_len(&ch), 0);
    down();
}

KT_TEST(chan_close_semantics)
{
    up(16);
    int ring[2];
    struct kl_chan ch;
    KT_EQ_I(kl_chan_init(&ch, ring, sizeof(int), 2), 0);
    struct job s = {.obj = &ch, .value = 5};
    kl_fiber_id sid = spawn("send", chan_sender, &s);
    KT_EQ_I(kl_sched_run(), 1); /* 0 and 1 buffered, blocked on 2 */
    kl_chan_close(&ch);
    KT_CHECK(kl_chan_closed(&ch));
    KT_EQ_I(join(sid), 2); /* the blocked send failed, item 2 was not sent */
    KT_EQ_I(s.rc, -EPIPE);
    int v = 7;
    KT_EQ_I(kl_chan_try_send(&ch, &v), -EPIPE);
    struct job r = {.obj = &ch};
    kl_fiber_id rid = spawn("recv", chan_receiver, &r);
    KT_EQ_I(join(rid), 2); /* drained 0 and 1, then -EPIPE */
    KT_EQ_I(r.rc, -EPIPE);
    KT_EQ_I(kl_chan_try_recv(&ch, &v), -EPIPE);
    kl_chan_close(&ch); /* idempotent */

    /* receivers blocked on an empty channel get -EPIPE at close */
    KT_EQ_I(kl_chan_init(&ch, ring, sizeof(int), 2), 0);
    struct job rs[2] = {{.obj = &ch}, {.obj = &ch}};
    kl_fiber_id r0 = spawn("recv", chan_receiver, &rs[0]);
    kl_fiber_id r1 = spawn("recv", chan_receiver, &rs[1]);
    KT_EQ_I(kl_sched_run(), 2);
    KT_EQ_I(kl_chan_try_recv(&ch, &v), -EAGAIN);
    kl_chan_close(&ch);
    KT_EQ_I(join(r0), 0);
    KT_EQ_I(join(r1), 0);
    KT_EQ_I(rs[0].rc, -EPIPE);
    KT_EQ_I(rs[1].rc, -EPIPE);
    down();
}

KT_TEST(chan_unbuffered_rendezvous)
{
    up(16);
    struct kl_chan ch;
    KT_EQ_I(kl_chan_init(&ch, NULL, sizeof(int), 0), 0);
    int v = 1;
    KT_EQ_I(kl_chan_try_send(&ch, &v), -EAGAIN); /* no receiver */
    struct job s = {.obj = &ch, .value = 6};
    struct job r = {.obj = &ch, .value = 6};
    kl_fiber_id sid = spawn("send", chan_sender, &s);
    kl_fiber_id rid = spawn("recv", chan_receiver, &r);
    KT_EQ_I(join(sid), 6);
    KT_EQ_I(join(rid), 6);
    /* a receiver first: a try_send hands straight to it */
    rid = spawn("recv", chan_receiver, &r);
    KT_EQ_I(kl_sched_run(), 1);
    for (int i = 0; i < 6; i++) {
        KT_EQ_I(kl_chan_try_send(&ch, &i), 0);
        KT_EQ_I(kl_sched_run(), i < 5 ? 1 : 0);
    }
    KT_EQ_I(join(rid), 6);
    down();
}

KT_TEST(chan_fifo_receivers_cancel_and_timeout)
{
    up(16);
    timers_up();
    int ring[1];
    struct kl_chan ch;
    KT_EQ_I(kl_chan_init(&ch, ring, sizeof(int), 1), 0);
    /* receivers a, b, c each take one item; b is cancelled before the sends */
    struct job r[4] = {{.obj = &ch, .value = 1, .start = 10},
                       {.obj = &ch, .value = 1, .start = 10},
                       {.obj = &ch, .value = 1, .start = 11},
                       {.obj = &ch, .value = 1, .timeout = 5 * MS}};
    kl_fiber_id id[4];
    for (int i = 0; i < 3; i++)
        id[i] = spawn("recv", chan_receiver, &r[i]);
    KT_EQ_I(kl_sched_run(), 3);
    KT_EQ_I(kl_fiber_cancel(id[1]), 0);
    int v = 10;
    KT_EQ_I(kl_chan_try_send(&ch, &v), 0); /* to a */
    v = 11;
    KT_EQ_I(kl_chan_try_send(&ch, &v), 0); /* to c, past the cancelled b */
    KT_EQ_U(kl_chan_len(&ch), 0);
    KT_EQ_I(join(id[0]), 1);
    KT_EQ_I(join(id[1]), 0);
    KT_EQ_I(r[1].rc, -ECANCELED);
    KT_EQ_I(join(id[2]), 1);
    /* a receive times out on the empty channel */
    id[3] = spawn("recv", chan_receiver, &r[3]);
    KT_EQ_I(join(id[3]), 0);
    KT_EQ_I(r[3].rc, -ETIMEDOUT);
    /* a send times out on the full one; its item is not sent */
    v = 5;
    KT_EQ_I(kl_chan_try_send(&ch, &v), 0);
    struct job s = {.obj = &ch, .value = 1, .timeout = 5 * MS};
    kl_fiber_id sid = spawn("send", chan_sender, &s);
    KT_EQ_I(join(sid), 0);
    KT_EQ_I(s.rc, -ETIMEDOUT);
    KT_EQ_U(kl_chan_len(&ch), 1);
    KT_EQ_U(kl_list_len(&ch.senders), 0);
    KT_EQ_I(kl_chan_try_recv(&ch, &v), 0);
    KT_EQ_I(v, 5);
    KT_EQ_I(timeouts_fired, 2);
    timers_down();
    down();
}

/* ---- future ---------------------------------------------------------------- */

static intptr_t future_waiter(void *arg)
{
    struct job *j = arg;
    j->value = -1;
    j->rc = kl_future_wait(j->obj, &j->value, j->timeout);
    job_trace(j);
    return 0;
}

static intptr_t future_setter(void *arg)
{
    struct job *j = arg;
    struct kl_signal never;
    kl_signal_init(&never);
    j->rc = kl_signal_wait(&never, j->timeout); /* sleep */
    job_hold(j);                                /* cancel a waiter that then cannot run first */
    kl_future_set(j->obj, 42);
    return 0;
}

KT_TEST(future_set_once_wakes_all)
{
    up(16);
    timers_up();
    trace_reset();
    struct kl_future fut;
    kl_future_init(&fut);
    struct job j[4] = {{.tag = "a", .obj = &fut},
                       {.tag = "b", .obj = &fut, .timeout = 5 * MS},
                       {.tag = "c", .obj = &fut},
                       {.tag = "d", .obj = &fut, .timeout = 50 * MS}};
    struct job setter = {.obj = &fut, .timeout = 10 * MS};
    kl_fiber_id id[4];
    for (int i = 0; i < 4; i++)
        id[i] = spawn("fut", future_waiter, &j[i]);
    setter.victim = id[2];
    kl_fiber_id sid = spawn("setter", future_setter, &setter);
    KT_EQ_I(kl_sched_run(), 0);
    /* b timed out at 5 ms; at 10 ms the setter cancelled c and set the value */
    KT_EQ_STR(trace, "bTcCad");
    KT_EQ_I(j[2].value, -1);
    KT_EQ_I(j[2].rc, -ECANCELED);
    KT_EQ_I(j[0].value, 42);
    KT_EQ_I(j[3].value, 42);
    KT_EQ_I(j[1].value, -1);
    KT_CHECK(kl_future_ready(&fut));
    struct job late = {.tag = "e", .obj = &fut};
    kl_fiber_id e = spawn("fut", future_waiter, &late);
    join(e);
    KT_EQ_I(late.rc, 0); /* already set: at once */
    KT_EQ_I(late.value, 42);
    for (int i = 0; i < 4; i++)
        join(id[i]);
    join(sid);
    timers_down();
    down();
}

/* ---- misuse ---------------------------------------------------------------- */

static struct kl_mutex misuse_mutex;

static intptr_t lock_and_return(void *arg)
{
    (void)arg;
    return kl_mutex_lock(&misuse_mutex, 0);
}

static intptr_t unlock_foreign(void *arg)
{
    (void)arg;
    kl_mutex_unlock(&misuse_mutex);
    return 0;
}

KT_DEATH_TEST(mutex_unlock_by_non_owner_asserts,
              "kl_mutex_unlock() by fiber thief, which does not own the mutex")
{
    up(16);
    kl_mutex_init(&misuse_mutex);
    spawn("owner", lock_and_return, NULL);
    spawn("thief", unlock_foreign, NULL);
    kl_sched_run();
}

KT_DEATH_TEST(mutex_unlock_from_main_asserts, "kl_mutex_unlock() by fiber main")
{
    up(16);
    kl_mutex_init(&misuse_mutex);
    kl_mutex_unlock(&misuse_mutex);
}

static intptr_t lock_twice(void *arg)
{
    (void)arg;
    kl_mutex_lock(&misuse_mutex, 0);
    return kl_mutex_lock(&misuse_mutex, 0);
}

KT_DEATH_TEST(mutex_relock_by_owner_asserts, "kl_mutex_lock(): fiber twice already owns the mutex")
{
    up(16);
    kl_mutex_init(&misuse_mutex);
    spawn("twice", lock_twice, NULL);
    kl_sched_run();
}

KT_DEATH_TEST(future_double_set_asserts, "kl_future_set() on a future already set")
{
    up(16);
    struct kl_future fut;
    kl_future_init(&fut);
    kl_future_set(&fut, 1);
    kl_future_set(&fut, 2);
}

static struct kl_rwlock misuse_rw;

static intptr_t wrlock_and_return(void *arg)
{
    (void)arg;
    return kl_rwlock_wrlock(&misuse_rw, 0);
}

static intptr_t wrunlock_foreign(void *arg)
{
    (void)arg;
    kl_rwlock_wrunlock(&misuse_rw);
    return 0;
}

KT_DEATH_TEST(rwlock_wrunlock_by_non_writer_asserts,
              "kl_rwlock_wrunlock() by fiber thief, which does not hold the write lock")
{
    up(16);
    kl_rwlock_init(&misuse_rw);
    spawn("writer", wrlock_and_return, NULL);
    spawn("thief", wrunlock_foreign, NULL);
    kl_sched_run();
}

KT_DEATH_TEST(rwlock_rdunlock_unheld_asserts, "kl_rwlock_rdunlock() without a reader")
{
    up(16);
    kl_rwlock_init(&misuse_rw);
    kl_rwlock_rdunlock(&misuse_rw);
}

KT_DEATH_TEST(blocking_wait_outside_fiber_asserts, "kl_sem_wait() outside a fiber")
{
    up(16);
    struct kl_sem sem;
    kl_sem_init(&sem, 0);
    kl_sem_wait(&sem, 0);
}

/* ---- randomized stress ----------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static unsigned rng_below(uint64_t *s, unsigned n) { return (unsigned)(rng_next(s) % n); }

/* A timeout for a random wait: none three times in four, else 1-3 ms. */
static uint64_t rng_timeout(uint64_t *s)
{
    return rng_below(s, 4) ? 0 : (1 + rng_below(s, 3)) * (uint64_t)MS;
}

static void rng_yields(uint64_t *s, unsigned max)
{
    for (unsigned n = rng_below(s, max + 1); n > 0; n--)
        kl_fiber_yield();
}

#define STRESS_WORKERS 24
#define STRESS_ROUNDS  150
#define STRESS_SEM     3

static struct {
    struct kl_mutex m;
    struct kl_sem sem;
    struct kl_rwlock rw;
    int in_mutex, in_sem, readers, writers; /* who is inside each section now */
    int violations;
    int acquired, timeouts, cancels, done;
    kl_fiber_id ids[STRESS_WORKERS];
    uint64_t seed;
} st;

static void stress_check(bool ok)
{
    if (!ok)
        st.violations++;
}

static intptr_t stress_worker(void *arg)
{
    uint64_t rng = st.seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(uintptr_t)arg);
    int rc = 0;
    for (int round = 0; round < STRESS_ROUNDS && rc != -ECANCELED; round++) {
        unsigned op = rng_below(&rng, 4);
        uint64_t timeout = rng_timeout(&rng);
        switch (op) {
        case 0: rc = kl_mutex_lock(&st.m, timeout); break;
        case 1: rc = kl_sem_wait(&st.sem, timeout); break;
        case 2: rc = kl_rwlock_rdlock(&st.rw, timeout); break;
        default: rc = kl_rwlock_wrlock(&st.rw, timeout); break;
        }
        if (rc == -ETIMEDOUT)
            st.timeouts++;
        if (rc < 0)
            continue;
        st.acquired++;
        int *inside = op == 0   ? &st.in_mutex
                      : op == 1 ? &st.in_sem
                      : op == 2 ? &st.readers
                                : &st.writers;
        (*inside)++;
        for (int k = 0; k < 2; k++) { /* check on entry and after some yields */
            stress_check(st.in_mutex <= 1 && st.in_sem <= STRESS_SEM && st.writers <= 1);
            stress_check(st.writers == 0 || st.readers == 0);
            stress_check(st.in_sem + (int)kl_sem_value(&st.sem) <= STRESS_SEM);
            rng_yields(&rng, 3);
        }
        (*inside)--;
        switch (op) {
        case 0: kl_mutex_unlock(&st.m); break;
        case 1: kl_sem_post(&st.sem); break;
        case 2: kl_rwlock_rdunlock(&st.rw); break;
        default: kl_rwlock_wrunlock(&st.rw); break;
        }
        rng_yields(&rng, 1);
    }
    if (rc == -ECANCELED)
        st.cancels++;
    st.done++;
    return 0;
}

/* Moves the fake clock and now and then cancels a worker, until all are done. */
static intptr_t stress_clock(void *arg)
{
    int *finished = arg;
    uint64_t rng = st.seed + 1;
    while (*finished < STRESS_WORKERS) {
        clock_step(rng_below(&rng, 3) * (uint64_t)MS);
        if (rng_below(&rng, 200) == 0)
            kl_fiber_cancel(st.ids[rng_below(&rng, STRESS_WORKERS)]);
        kl_fiber_yield();
    }
    return 0;
}

KT_TEST(stress_locks_and_semaphore)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        up(STRESS_WORKERS + 4);
        timers_up();
        memset(&st, 0, sizeof st);
        st.seed = seed * 7919;
        kl_mutex_init(&st.m);
        kl_sem_init(&st.sem, STRESS_SEM);
        kl_rwlock_init(&st.rw);
        for (int i = 0; i < STRESS_WORKERS; i++)
            st.ids[i] = spawn("worker", stress_worker, (void *)(uintptr_t)(i + 1));
        kl_fiber_id clock = spawn("clock", stress_clock, &st.done);
        KT_EQ_I(kl_sched_run(), 0);
        join(clock);
        for (int i = 0; i < STRESS_WORKERS; i++)
            join(st.ids[i]);
        KT_EQ_I(st.violations, 0);
        KT_EQ_I(st.done, STRESS_WORKERS);
        KT_CHECK(st.acquired > STRESS_WORKERS * STRESS_ROUNDS / 4);
        KT_CHECK(st.timeouts > 0); /* the timeout path ran ... */
        KT_CHECK(st.cancels > 0);  /* ... and so did the cancel path */
        KT_CHECK(!kl_mutex_locked(&st.m));
        KT_EQ_U(kl_list_len(&st.m.waiters), 0);
        KT_EQ_U(kl_sem_value(&st.sem), STRESS_SEM);
        KT_EQ_U(kl_list_len(&st.sem.waiters), 0);
        KT_EQ_U(st.rw.readers, 0);
        KT_CHECK(kl_fiber_id_eq(st.rw.writer, KL_FIBER_ID_NONE));
        KT_EQ_U(kl_list_len(&st.rw.waiters), 0);
        timers_down();
        down();
        if (kt_failed()) {
            printf("  stress seed %ju failed\n", (uintmax_t)st.seed);
            return;
        }
    }
}

#define CH_PRODUCERS 4
#define CH_CONSUMERS 3
#define CH_ITEMS     300

struct ch_item {
    uint32_t producer, seq;
};

static struct {
    struct kl_chan ch;
    struct ch_item ring[5];
    uint32_t sent[CH_PRODUCERS]; /* sends that returned 0 */
    uint8_t seen[CH_PRODUCERS][CH_ITEMS];
    int received, order_errors, dup_errors, cancels, finished;
    kl_fiber_id producers[CH_PRODUCERS], consumers[CH_CONSUMERS];
    uint64_t seed;
} cs;

static intptr_t ch_producer(void *arg)
{
    uint32_t p = (uint32_t)(uintptr_t)arg;
    uint64_t rng = cs.seed ^ (0x9E3779B97F4A7C15ULL * (p + 1));
    for (uint32_t seq = 0; seq < CH_ITEMS;) {
        struct ch_item it = {p, seq};
        int rc = kl_chan_send(&cs.ch, &it, rng_timeout(&rng));
        if (rc == 0) {
            cs.sent[p] = ++seq;
        } else if (rc != -ETIMEDOUT) { /* cancelled: item `seq` was not sent */
            cs.cancels++;
            break;
        }
        rng_yields(&rng, 2);
    }
    return 0;
}

static intptr_t ch_consumer(void *arg)
{
    uint64_t rng = cs.seed ^ (0xC2B2AE3D27D4EB4FULL * ((uintptr_t)arg + 1));
    int64_t last[CH_PRODUCERS];
    for (int p = 0; p < CH_PRODUCERS; p++)
        last[p] = -1;
    for (;;) {
        struct ch_item it;
        int rc = kl_chan_recv(&cs.ch, &it, rng_timeout(&rng));
        if (rc == -ETIMEDOUT)
            continue;
        if (rc < 0) {
            if (rc == -ECANCELED)
                cs.cancels++;
            break;
        }
        cs.received++;
        if (it.producer >= CH_PRODUCERS || it.seq >= CH_ITEMS ||
            (int64_t)it.seq <= last[it.producer]) {
            cs.order_errors++;
            continue;
        }
        last[it.producer] = it.seq;
        if (cs.seen[it.producer][it.seq]++)
            cs.dup_errors++;
        rng_yields(&rng, 2);
    }
    cs.finished++;
    return 0;
}

/* Joins the producers, closes the channel; moves the clock and cancels one
 * producer and one consumer along the way. */
static intptr_t ch_driver(void *arg)
{
    (void)arg;
    uint64_t rng = cs.seed + 3;
    bool closed = false;
    while (cs.finished < CH_CONSUMERS) {
        clock_step(rng_below(&rng, 3) * (uint64_t)MS);
        if (rng_below(&rng, 300) == 0)
            kl_fiber_cancel(cs.producers[0]);
        if (rng_below(&rng, 300) == 0)
            kl_fiber_cancel(cs.consumers[0]);
        bool producing = false;
        for (int p = 0; p < CH_PRODUCERS; p++)
            producing |= kl_fiber_state(cs.producers[p]) != KL_FIBER_DONE;
        if (!producing && !closed) {
            kl_chan_close(&cs.ch);
            closed = true;
        }
        kl_fiber_yield();
    }
    return 0;
}

KT_TEST(stress_channel_order_and_count)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        up(16);
        timers_up();
        memset(&cs, 0, sizeof cs);
        cs.seed = seed * 104729;
        KT_EQ_I(kl_chan_init(&cs.ch, cs.ring, sizeof(struct ch_item), 5), 0);
        for (int p = 0; p < CH_PRODUCERS; p++)
            cs.producers[p] = spawn("producer", ch_producer, (void *)(uintptr_t)p);
        for (int c = 0; c < CH_CONSUMERS; c++)
            cs.consumers[c] = spawn("consumer", ch_consumer, (void *)(uintptr_t)c);
        kl_fiber_id driver = spawn("driver", ch_driver, NULL);
        KT_EQ_I(kl_sched_run(), 0);
        join(driver);
        for (int p = 0; p < CH_PRODUCERS; p++)
            join(cs.producers[p]);
        for (int c = 0; c < CH_CONSUMERS; c++)
            join(cs.consumers[c]);
        KT_EQ_I(cs.order_errors, 0);
        KT_EQ_I(cs.dup_errors, 0);
        /* every item whose send succeeded was received exactly once, and no other */
        int expected = 0;
        for (int p = 0; p < CH_PRODUCERS; p++) {
            expected += (int)cs.sent[p];
            for (uint32_t q = 0; q < CH_ITEMS; q++)
                KT_EQ_U(cs.seen[p][q], q < cs.sent[p] ? 1 : 0);
        }
        KT_EQ_I(cs.received, expected);
        KT_CHECK(expected > CH_PRODUCERS * CH_ITEMS / 2);
        KT_EQ_U(kl_chan_len(&cs.ch), 0);
        timers_down();
        down();
        if (kt_failed()) {
            printf("  channel stress seed %ju failed\n", (uintmax_t)cs.seed);
            return;
        }
    }
}
