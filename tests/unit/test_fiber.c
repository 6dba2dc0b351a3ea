/* Tests for keel/fiber.h: scheduling order, join, suspend/resume, cancel,
 * stale ids, priorities, groups, fiber-local storage, the timeout seam, slot
 * exhaustion and shutdown (the diagnostics are in test_fiber_debug.c). Each
 * case brings up its own scheduler and shuts it down. */
#include "keel/fiber.h"
#include "keel/log.h"
#include "keel/mmlog.h"

#include <errno.h>
#include <execinfo.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "keel/assert.h"
#include "keel/clock.h"

#include "fiber_kit.h"
#include "kt.h"

/* A trace of events, as a string: each fiber appends characters. */
static char trace[256];
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

/* Appends its letter, yields, appends it again (lower case). */
static intptr_t letter_fiber(void *arg)
{
    char c[2] = {(char)(intptr_t)arg, 0};
    trace_add(c);
    kl_fiber_yield();
    c[0] = (char)(c[0] - 'A' + 'a');
    trace_add(c);
    return 0;
}

KT_TEST(spawn_yield_order_is_fifo)
{
    up(16);
    trace_reset();
    kl_fiber_id ids[3];
    for (int i = 0; i < 3; i++)
        KT_EQ_I(kl_fiber_spawn(&ids[i], "letter", letter_fiber, (void *)(intptr_t)('A' + i),
                               KL_FIBER_PRIO_NORMAL),
                0);
    KT_EQ_STR(trace, ""); /* spawning does not run anything */
    KT_EQ_I(kl_fiber_state(ids[0]), KL_FIBER_READY);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_STR(trace, "ABCabc");
    KT_EQ_I(kl_fiber_state(ids[2]), KL_FIBER_DONE);
    for (int i = 0; i < 3; i++)
        KT_EQ_I(kl_fiber_join(ids[i], NULL), 0);
    KT_EQ_U(kl_sched_switches(), 7); /* main>A>B>C>A>B>C>main */
    down();
}

static intptr_t join_child(void *arg)
{
    (void)arg;
    kl_fiber_id child;
    KL_ASSERT(kl_fiber_spawn(&child, "child", return_arg, (void *)(intptr_t)-5,
                             KL_FIBER_PRIO_NORMAL) == 0);
    intptr_t r = 0;
    int rc = kl_fiber_join(child, &r);
    return rc == 0 ? r * 10 : rc;
}

KT_TEST(join_returns_result)
{
    up(16);
    kl_fiber_id a, b;
    KT_EQ_I(kl_fiber_spawn(&a, "forty-two", return_arg, (void *)42, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&b, "joiner", join_child, NULL, KL_FIBER_PRIO_NORMAL), 0);
    intptr_t r = 0;
    KT_EQ_I(kl_fiber_join(a, &r), 0); /* from the main context: runs the scheduler */
    KT_EQ_I(r, 42);
    KT_EQ_I(kl_fiber_join(b, &r), 0); /* a fiber that joined its own child */
    KT_EQ_I(r, -50);
    KT_EQ_I(kl_fiber_join(a, &r), -ESRCH); /* joined once: the slot is gone */
    down();
}

KT_TEST(join_errors)
{
    up(16);
    kl_fiber_id a;
    KT_EQ_I(kl_fiber_spawn(&a, "sleeper", suspend_once, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 1);
    /* nothing can wake it: join from main reports the deadlock */
    KT_EQ_I(kl_fiber_join(a, NULL), -EDEADLK);
    KT_EQ_I(kl_fiber_detach(a), 0);
    KT_EQ_I(kl_fiber_join(a, NULL), -EINVAL);
    KT_EQ_I(kl_fiber_join(KL_FIBER_ID_NONE, NULL), -ESRCH);
    KT_EQ_I(kl_fiber_resume(a, 1), 0);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_I(kl_fiber_state(a), -ESRCH); /* detached: freed when it ended */
    down();
}

static int resumed_with;

static intptr_t suspend_and_record(void *arg)
{
    (void)arg;
    resumed_with = kl_fiber_suspend("test event", KL_FIBER_FOREVER);
    return 0;
}

KT_TEST(suspend_resume)
{
    up(16);
    resumed_with = -1;
    kl_fiber_id a;
    KT_EQ_I(kl_fiber_spawn(&a, "waiter", suspend_and_record, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_resume(a, 3), -EALREADY); /* ready, not suspended */
    KT_EQ_I(kl_sched_run(), 1);                /* parked: one fiber left */
    KT_EQ_I(kl_fiber_state(a), KL_FIBER_SUSPENDED);
    KT_EQ_I(resumed_with, -1);
    KT_EQ_I(kl_fiber_resume(a, 7), 0);
    KT_EQ_I(kl_fiber_resume(a, 8), -EALREADY); /* already ready */
    KT_EQ_I(kl_fiber_state(a), KL_FIBER_READY);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_I(resumed_with, 7);
    KT_EQ_I(kl_fiber_join(a, NULL), 0);
    down();
}

/* Suspends until cancelled, then checks that cancellation is sticky. */
static intptr_t wait_for_cancel(void *arg)
{
    int *cleanups = arg;
    int rc = kl_fiber_suspend("forever", KL_FIBER_FOREVER);
    if (rc != -ECANCELED)
        return 1000 + rc;
    if (!kl_fiber_cancelled())
        return 2000;
    if (kl_fiber_suspend("again", KL_FIBER_FOREVER) != -ECANCELED)
        return 3000;
    if (cleanups)
        (*cleanups)++;
    return rc;
}

KT_TEST(cancel_suspended_and_ready)
{
    up(16);
    kl_fiber_id suspended, ready;
    KT_EQ_I(kl_fiber_spawn(&suspended, "s", wait_for_cancel, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 1);
    KT_EQ_I(kl_fiber_spawn(&ready, "r", wait_for_cancel, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_cancel(suspended), 0);
    KT_EQ_I(kl_fiber_state(suspended), KL_FIBER_READY); /* woken by the cancel */
    KT_EQ_I(kl_fiber_cancel(ready), 0);                 /* not started yet */
    intptr_t r = 0;
    KT_EQ_I(kl_fiber_join(suspended, &r), 0);
    KT_EQ_I(r, -ECANCELED);
    KT_EQ_I(kl_fiber_join(ready, &r), 0);
    KT_EQ_I(r, -ECANCELED); /* its first suspend returned at once */
    down();
}

KT_TEST(cancel_fiber_waiting_in_join)
{
    up(16);
    kl_fiber_id sleeper, joiner;
    KT_EQ_I(kl_fiber_spawn(&sleeper, "sleeper", suspend_once, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&joiner, "joiner", join_forever_sleeper, &sleeper, KL_FIBER_PRIO_NORMAL),
            0);
    KT_EQ_I(kl_sched_run(), 2);
    KT_EQ_I(kl_fiber_join(sleeper, NULL), -EBUSY); /* the joiner waits on it */
    KT_EQ_I(kl_fiber_cancel(joiner), 0);
    intptr_t r = 0;
    KT_EQ_I(kl_fiber_join(joiner, &r), 0);
    KT_EQ_I(r, -ECANCELED);
    KT_EQ_I(kl_fiber_state(sleeper), KL_FIBER_SUSPENDED); /* untouched */
    KT_EQ_I(kl_fiber_resume(sleeper, 5), 0);
    KT_EQ_I(kl_fiber_join(sleeper, &r), 0); /* joinable again */
    KT_EQ_I(r, 5);
    down();
}

/* Awaits the sleeper (through a cancel), then reports whether it is still
 * cancelled and whether the sleeper had ended. */
static intptr_t await_sleeper(void *arg)
{
    kl_fiber_id *sleeper = arg;
    intptr_t r = 0;
    int rc = kl_fiber_await(*sleeper, &r);
    if (rc != 0)
        return 1000 - rc;
    return kl_fiber_cancelled() ? r : 2000 + r;
}

KT_TEST(await_is_not_cut_short_by_cancel)
{
    up(16);
    kl_fiber_id sleeper, awaiter;
    KT_EQ_I(kl_fiber_spawn(&sleeper, "sleeper", suspend_once, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&awaiter, "awaiter", await_sleeper, &sleeper, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 2);
    KT_EQ_I(kl_fiber_cancel(awaiter), 0);
    KT_EQ_I(kl_sched_run(), 2); /* the cancel woke it; it went back to waiting */
    KT_EQ_I(kl_fiber_state(awaiter), KL_FIBER_SUSPENDED);
    KT_EQ_I(kl_fiber_resume(sleeper, 9), 0);
    intptr_t r = 0;
    KT_EQ_I(kl_fiber_join(awaiter, &r), 0);
    KT_EQ_I(r, 9); /* it got the sleeper's result and is still cancelled */
    KT_EQ_I(kl_fiber_await(awaiter, NULL), -ESRCH);
    down();
}

KT_TEST(stale_id_rejected_after_slot_reuse)
{
    up(4);
    kl_fiber_id old_id, new_id;
    KT_EQ_I(kl_fiber_spawn(&old_id, "old", return_arg, (void *)1, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_join(old_id, NULL), 0);
    KT_EQ_I(kl_fiber_spawn(&new_id, "new", suspend_once, NULL, KL_FIBER_PRIO_NORMAL), 0);
    /* same slot, new incarnation */
    KT_EQ_U(kl_fiber_id_raw(old_id) & 0xffffffffu, kl_fiber_id_raw(new_id) & 0xffffffffu);
    KT_CHECK(!kl_fiber_id_eq(old_id, new_id));
    KT_EQ_I(kl_fiber_state(old_id), -ESRCH);
    KT_EQ_I(kl_fiber_cancel(old_id), -ESRCH);
    KT_EQ_I(kl_fiber_resume(old_id, 0), -ESRCH);
    KT_EQ_I(kl_fiber_join(old_id, NULL), -ESRCH);
    KT_EQ_I(kl_fiber_detach(old_id), -ESRCH);
    KT_EQ_I(kl_sched_run(), 1);
    KT_EQ_I(kl_fiber_state(new_id), KL_FIBER_SUSPENDED); /* the stale calls did not reach it */
    KT_EQ_I(kl_fiber_resume(new_id, 9), 0);
    intptr_t r = 0;
    KT_EQ_I(kl_fiber_join(new_id, &r), 0);
    KT_EQ_I(r, 9);
    down();
}

static intptr_t spawn_high_then_trace(void *arg)
{
    (void)arg;
    kl_fiber_id h;
    KL_ASSERT(kl_fiber_spawn(&h, "H2", letter_fiber, (void *)'X', KL_FIBER_PRIO_HIGH) == 0);
    kl_fiber_detach(h);
    trace_add("S");
    kl_fiber_yield(); /* the high fiber runs before the other normal ones */
    trace_add("s");
    return 0;
}

KT_TEST(priorities_high_runs_first)
{
    up(16);
    trace_reset();
    kl_fiber_id ids[4];
    KT_EQ_I(kl_fiber_spawn(&ids[0], "N1", letter_fiber, (void *)'A', KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[1], "N2", letter_fiber, (void *)'B', KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[2], "H1", letter_fiber, (void *)'H', KL_FIBER_PRIO_HIGH), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[3], "N3", spawn_high_then_trace, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 0);
    /* H runs first and, being the only high fiber, its yield returns at once;
     * the X spawned by N3 preempts the normal queue at N3's yield. */
    KT_EQ_STR(trace, "HhABSXxabs");
    for (int i = 0; i < 4; i++)
        KT_EQ_I(kl_fiber_join(ids[i], NULL), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[0], "bad", return_arg, NULL, (enum kl_fiber_prio)7), -EINVAL);
    down();
}

/* Yields until cancelled, then counts itself. */
static intptr_t spin_until_cancelled(void *arg)
{
    int *ended = arg;
    while (!kl_fiber_cancelled())
        kl_fiber_yield();
    (*ended)++;
    return -ECANCELED;
}

static intptr_t suspend_then_count(void *arg)
{
    int *ended = arg;
    int rc = kl_fiber_suspend("group member wait", KL_FIBER_FOREVER);
    (*ended)++;
    return rc;
}

static intptr_t close_group(void *arg) { return kl_fiber_group_close(arg); }

KT_TEST(group_close_cancels_and_waits)
{
    up(16);
    struct kl_fiber_group g;
    kl_fiber_group_init(&g, "conns");
    int ended = 0;
    kl_fiber_id ids[4];
    KT_EQ_I(kl_fiber_spawn(&ids[0], "m0", suspend_then_count, &ended, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[1], "m1", suspend_then_count, &ended, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[2], "m2", spin_until_cancelled, &ended, KL_FIBER_PRIO_NORMAL), 0);
    for (int i = 0; i < 3; i++)
        KT_EQ_I(kl_fiber_group_add(&g, ids[i]), 0);
    KT_EQ_I(kl_fiber_group_add(&g, ids[0]), -EBUSY);
    KT_EQ_U(kl_fiber_group_size(&g), 3);
    /* a fiber closes the group while the spinner keeps the scheduler busy */
    kl_fiber_id closer;
    KT_EQ_I(kl_fiber_spawn(&closer, "closer", close_group, &g, KL_FIBER_PRIO_NORMAL), 0);
    intptr_t r = -1;
    KT_EQ_I(kl_fiber_join(closer, &r), 0);
    KT_EQ_I(r, 0);
    KT_EQ_I(ended, 3);
    KT_EQ_U(kl_fiber_group_size(&g), 0);
    for (int i = 0; i < 3; i++) {
        KT_EQ_I(kl_fiber_join(ids[i], &r), 0); /* still joinable */
        KT_EQ_I(r, -ECANCELED);
    }
    KT_EQ_I(kl_fiber_spawn(&ids[3], "late", return_arg, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_group_add(&g, ids[3]), -ESHUTDOWN);
    KT_EQ_I(kl_fiber_join(ids[3], NULL), 0);
    down();
}

KT_TEST(group_close_from_main)
{
    up(16);
    struct kl_fiber_group g;
    kl_fiber_group_init(&g, "workers");
    int ended = 0;
    for (int i = 0; i < 5; i++) {
        kl_fiber_id id;
        KT_EQ_I(kl_fiber_spawn(&id, "w", i % 2 ? suspend_then_count : spin_until_cancelled, &ended,
                               KL_FIBER_PRIO_NORMAL),
                0);
        KT_EQ_I(kl_fiber_group_add(&g, id), 0);
        KT_EQ_I(kl_fiber_detach(id), 0);
    }
    KT_EQ_I(kl_fiber_group_close(&g), 0);
    KT_EQ_I(ended, 5);
    KT_EQ_I(kl_sched_run(), 0);
    down();
}

static kl_fiber_key key_a, key_b;
static int destroyed_sum;

static void destroy_value(void *v) { destroyed_sum += (int)(intptr_t)v; }

static intptr_t use_locals(void *arg)
{
    intptr_t mine = (intptr_t)arg;
    if (kl_fiber_local_get(key_a) != NULL)
        return -1; /* fresh fibers start empty */
    kl_fiber_local_set(key_a, (void *)mine);
    kl_fiber_local_set(key_b, (void *)(mine * 2));
    kl_fiber_yield(); /* the other fiber sets its own values meanwhile */
    if (kl_fiber_local_get(key_a) != (void *)mine ||
        kl_fiber_local_get(key_b) != (void *)(mine * 2))
        return -2;
    return 0;
}

KT_TEST(fiber_local_storage)
{
    static bool keys_made;
    if (!keys_made) {
        KT_EQ_I(kl_fiber_key_create(&key_a, destroy_value), 0);
        KT_EQ_I(kl_fiber_key_create(&key_b, NULL), 0);
        keys_made = true;
    }
    up(16);
    destroyed_sum = 0;
    kl_fiber_id a, b;
    KT_EQ_I(kl_fiber_spawn(&a, "a", use_locals, (void *)10, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&b, "b", use_locals, (void *)20, KL_FIBER_PRIO_NORMAL), 0);
    intptr_t ra = -9, rb = -9;
    KT_EQ_I(kl_fiber_join(a, &ra), 0);
    KT_EQ_I(kl_fiber_join(b, &rb), 0);
    KT_EQ_I(ra, 0);
    KT_EQ_I(rb, 0);
    KT_EQ_I(destroyed_sum, 30); /* key_a's destructor ran for both */
    /* the slot of `a` is reused: its values are gone */
    KT_EQ_I(kl_fiber_spawn(&a, "a2", use_locals, (void *)1, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_join(a, &ra), 0);
    KT_EQ_I(ra, 0);
    /* keys run out */
    kl_fiber_key k;
    int made = 0;
    while (kl_fiber_key_create(&k, NULL) == 0)
        made++;
    KT_EQ_I(made, KL_FIBER_LOCAL_SLOTS - 2);
    KT_EQ_I(kl_fiber_key_create(&k, NULL), -ENOSPC);
    down();
}

/* A stand-in timer wheel for the timeout seam. */
struct fake_timers {
    int armed, disarmed;
    uint64_t last_token, last_deadline;
    kl_fiber_id last_fiber;
};

static int fake_arm(void *ctx, kl_fiber_id id, uint64_t deadline_ns, uint64_t *token)
{
    struct fake_timers *t = ctx;
    t->armed++;
    t->last_fiber = id;
    t->last_deadline = deadline_ns;
    *token = t->last_token = 100 + (uint64_t)t->armed;
    return 0;
}

static void fake_disarm(void *ctx, uint64_t token)
{
    struct fake_timers *t = ctx;
    if (token == t->last_token)
        t->disarmed++;
}

static intptr_t suspend_with_timeout(void *arg)
{
    (void)arg;
    return kl_fiber_suspend("timed wait", 5000000);
}

KT_TEST(suspend_timeout_seam)
{
    up(16);
    kl_fiber_id a;
    intptr_t r = 0;
    /* without timer hooks, a finite timeout is refused */
    KT_EQ_I(kl_fiber_spawn(&a, "t0", suspend_with_timeout, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_join(a, &r), 0);
    KT_EQ_I(r, -EOPNOTSUPP);

    struct fake_timers t = {0};
    struct kl_sched_hooks hooks = {
        .ctx = &t, .timeout_arm = fake_arm, .timeout_disarm = fake_disarm};
    kl_sched_set_hooks(&hooks);
    uint64_t before = kl_now();
    KT_EQ_I(kl_fiber_spawn(&a, "t1", suspend_with_timeout, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 1);
    KT_EQ_I(t.armed, 1);
    KT_CHECK(kl_fiber_id_eq(t.last_fiber, a));
    KT_CHECK(t.last_deadline >= before + 5000000 && t.last_deadline <= kl_now() + 5000000);
    KT_EQ_I(kl_fiber_expire(a), 0); /* the wheel fired */
    KT_EQ_I(kl_fiber_join(a, &r), 0);
    KT_EQ_I(r, -ETIMEDOUT);
    KT_EQ_I(t.disarmed, 0); /* a fired timer is not disarmed */

    KT_EQ_I(kl_fiber_spawn(&a, "t2", suspend_with_timeout, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 1);
    KT_EQ_I(kl_fiber_resume(a, 4), 0); /* woken first: the timer is disarmed */
    KT_EQ_I(t.disarmed, 1);
    KT_EQ_I(kl_fiber_expire(a), -EALREADY);
    KT_EQ_I(kl_fiber_join(a, &r), 0);
    KT_EQ_I(r, 4);
    kl_sched_set_hooks(NULL);
    down();
}

/* An idle hook stands in for the reactor: it resumes whoever is parked. */
static kl_fiber_id parked;
static int idle_calls;

static int idle_resume_parked(void *ctx, bool fibers_ready)
{
    (void)ctx;
    KT_CHECK(!fibers_ready); /* the only fiber is parked */
    idle_calls++;
    return kl_fiber_resume(parked, 11);
}

KT_TEST(idle_hook_runs_when_nothing_is_ready)
{
    up(16);
    idle_calls = 0;
    struct kl_sched_hooks hooks = {.idle = idle_resume_parked};
    kl_sched_set_hooks(&hooks);
    KT_EQ_I(kl_fiber_spawn(&parked, "parked", suspend_once, NULL, KL_FIBER_PRIO_NORMAL), 0);
    intptr_t r = 0;
    KT_EQ_I(kl_fiber_join(parked, &r), 0);
    KT_EQ_I(r, 11);
    KT_EQ_I(idle_calls, 1);
    kl_sched_set_hooks(NULL);
    down();
}

KT_TEST(slot_exhaustion_is_an_error)
{
    up(4);
    kl_fiber_id ids[5];
    for (int i = 0; i < 4; i++)
        KT_EQ_I(kl_fiber_spawn(&ids[i], "filler", suspend_once, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[4], "one too many", return_arg, NULL, KL_FIBER_PRIO_NORMAL),
            -EAGAIN);
    KT_EQ_I(kl_sched_run(), 4);
    KT_EQ_I(kl_fiber_resume(ids[2], 0), 0);
    KT_EQ_I(kl_fiber_join(ids[2], NULL), 0);
    KT_EQ_I(kl_fiber_spawn(&ids[4], "fits again", return_arg, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_join(ids[4], NULL), 0);
    down(); /* cancels the three still suspended */
}

KT_TEST(shutdown_cancels_and_unwinds)
{
    KT_EQ_I(kl_sched_shutdown(), -ENOENT);
    KT_CHECK(!kl_sched_active());
    up(64);
    KT_EQ_I(kl_sched_init(NULL), -EBUSY);
    int cleanups = 0;
    for (int i = 0; i < 40; i++) {
        kl_fiber_id id;
        KT_EQ_I(kl_fiber_spawn(&id, "conn", wait_for_cancel, &cleanups, KL_FIBER_PRIO_NORMAL), 0);
        if (i % 2)
            KT_EQ_I(kl_fiber_detach(id), 0);
    }
    KT_EQ_I(kl_sched_run(), 40);
    KT_EQ_I(kl_sched_shutdown(), 0);
    KT_EQ_I(cleanups, 40); /* every fiber saw -ECANCELED and cleaned up */
    KT_CHECK(!kl_sched_active());
    KT_EQ_I(kl_fiber_spawn(&(kl_fiber_id){0}, "x", return_arg, NULL, KL_FIBER_PRIO_NORMAL),
            -ENOENT);
    up(2); /* and the thread can have a scheduler again */
    down();
}

KT_TEST(config_is_validated)
{
    struct kl_sched_config cfg = {.max_fibers = UINT32_MAX};
    KT_EQ_I(kl_sched_init(&cfg), -EINVAL);
    cfg = (struct kl_sched_config){.max_fibers = 2, .stack_size = 100, .guard_size = 1};
    KT_EQ_I(kl_sched_init(&cfg), 0); /* sizes round up to pages */
    down();
}

static int frames_seen;

static intptr_t take_backtrace(void *arg)
{
    (void)arg;
    void *frames[64];
    frames_seen = backtrace(frames, 64);
    return 0;
}

/* The unwinder stops at the fiber's entry: the fiber function, the
 * scheduler's entry and the trampoline, not the main stack or garbage. */
KT_TEST(backtrace_stops_at_fiber_entry)
{
    up(4);
    frames_seen = 0;
    kl_fiber_id a;
    KT_EQ_I(kl_fiber_spawn(&a, "bt", take_backtrace, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_join(a, NULL), 0);
    KT_CHECK(frames_seen >= 2 && frames_seen <= 4);
    if (kt_failed())
        fprintf(stderr, "  %d frames\n", frames_seen);
    down();
}

/* Many fibers, many switches, slots reused many times: counts must add up. */
static intptr_t ping(void *arg)
{
    int *counter = arg;
    for (int i = 0; i < 100; i++) {
        (*counter)++;
        kl_fiber_yield();
    }
    return 0;
}

KT_TEST(many_fibers_many_rounds)
{
    up(32);
    int counter = 0;
    for (int round = 0; round < 20; round++) {
        kl_fiber_id ids[32];
        for (int i = 0; i < 32; i++)
            KT_EQ_I(kl_fiber_spawn(&ids[i], "ping", ping, &counter, KL_FIBER_PRIO_NORMAL), 0);
        for (int i = 0; i < 32; i++)
            KT_EQ_I(kl_fiber_join(ids[i], NULL), 0);
    }
    KT_EQ_I(counter, 20 * 32 * 100);
    down();
}

/* Log records written inside a fiber carry its id; outside, 0. */
static intptr_t log_from_fiber(void *arg)
{
    (void)arg;
    KL_INFO("inside a fiber");
    return 0;
}

KT_TEST(log_records_carry_the_fiber_id)
{
    char path[600];
    snprintf(path, sizeof path, "%s/fiber.log", kt_tmpdir());
    kl_log_open(path);
    up(4);
    kl_fiber_id id;
    KT_EQ_I(kl_fiber_spawn(&id, "logger", log_from_fiber, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 0);
    KL_INFO("outside any fiber");
    down();
    kl_log_open("-");

    struct kl_mmlog *log;
    struct kl_mmlog_options ro = {.flags = KL_MMLOG_READONLY};
    KT_REQUIRE(kl_mmlog_open(path, &ro, &log) == 0);
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    uint64_t fibers[2] = {~0ull, ~0ull};
    int n = 0;
    while (kl_mmlog_next(r, &rec) == 1 && n < 2) {
        struct kl_log_entry e;
        KT_REQUIRE(kl_log_decode(rec.data, rec.len, &e) == 0);
        fibers[n++] = e.fiber;
    }
    KT_EQ_I(n, 2);
    KT_EQ_U(fibers[0], kl_fiber_id_raw(id));
    KT_CHECK(fibers[0] != 0);
    KT_EQ_U(fibers[1], 0);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}
