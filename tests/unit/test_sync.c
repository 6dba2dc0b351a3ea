/* Tests for keel/sync.h, all primitives but the channel (test_sync_chan.c):
 * per primitive, basic behaviour, FIFO order with several waiters, timeouts
 * (a real timer wheel behind the scheduler's timeout hooks, advanced on a
 * fake clock by the idle hook), cancellation of a waiter (the wake-up then
 * goes to the next one), misuse assertions, and a randomized stress run that
 * checks mutual exclusion, the semaphore's bound and count and reader-writer
 * exclusion under timeouts and cancels. Helpers are in sync_kit.c. */
#include "keel/sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/fiber.h"

#include "kt.h"
#include "sync_kit.h"

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

/* A waiter handed a unit and then cancelled before it runs keeps the unit. */
KT_TEST(granted_waiter_keeps_the_resource_when_cancelled)
{
    up(16);
    trace_reset();
    struct kl_sem sem;
    kl_sem_init(&sem, 0);
    struct job j = {.tag = "b", .obj = &sem};
    kl_fiber_id id = spawn("sem", sem_worker, &j);
    KT_EQ_I(kl_sched_run(), 1);
    kl_sem_post(&sem); /* handed to b: b is ready */
    KT_EQ_I(kl_fiber_cancel(id), 0);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_I(j.rc, 0); /* the wait succeeded; b posted the unit back */
    KT_EQ_STR(trace, "b");
    KT_EQ_U(kl_sem_value(&sem), 1);
    join(id);
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
