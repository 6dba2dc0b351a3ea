/* Tests for keel/timer_wheel.h: firing order and timing (never early, at most
 * one tick late), cancel and re-arm from callbacks, recurring timers,
 * cascading across every level boundary and the overflow list, next_deadline,
 * a long random run checked against a plain reference model, and the
 * assertions on misuse. */
#include "keel/timer_wheel.h"

#include <errno.h>
#include <stdlib.h>

#include "kt.h"

#define US  UINT64_C(1000)
#define MS  UINT64_C(1000000)
#define SEC (1000 * MS)
#define DAY (86400 * SEC)

struct tt {
    struct kl_timer timer;
    int id;
    int fires;
    uint64_t fire_now; /* wheel time at the last firing */
    void (*hook)(struct tt *self);
};

static struct kl_timer_wheel wheel, other_wheel;

#define MAX_T 1024
static struct tt ts[MAX_T];
static int order[1 << 16];
static int norder;

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }

static void on_fire(struct kl_timer *timer, void *arg)
{
    struct tt *x = arg;
    uint64_t now = kl_timer_wheel_now(&wheel);
    if (timer != &x->timer)
        kt_fail(__FILE__, __LINE__, "callback got timer %p, not %p", (void *)timer,
                (void *)&x->timer);
    if (timer->period == 0 && now < timer->deadline)
        kt_fail(__FILE__, __LINE__, "timer %d fired early: now %" PRIu64 " < deadline %" PRIu64,
                x->id, now, timer->deadline);
    x->fires++;
    x->fire_now = now;
    if (norder < (int)(sizeof order / sizeof order[0]))
        order[norder++] = x->id;
    if (x->hook)
        x->hook(x);
}

static void reset(uint64_t resolution, uint64_t now)
{
    for (int i = 0; i < MAX_T; i++) {
        kl_timer_init(&ts[i].timer, on_fire, &ts[i]);
        ts[i].id = i;
        ts[i].fires = 0;
        ts[i].fire_now = 0;
        ts[i].hook = NULL;
    }
    norder = 0;
    if (kl_timer_wheel_init(&wheel, resolution, now) != 0)
        kt_fail(__FILE__, __LINE__, "kl_timer_wheel_init failed");
}

KT_TEST(init_rejects_bad_resolution)
{
    KT_EQ_I(kl_timer_wheel_init(&wheel, 0, 0), -EINVAL);
    KT_EQ_I(kl_timer_wheel_init(&wheel, KL_TIMER_WHEEL_RESOLUTION_MAX + 1, 0), -EINVAL);
    KT_EQ_I(kl_timer_wheel_init(&wheel, 1, 0), 0);
    KT_EQ_I(kl_timer_wheel_init(&wheel, KL_TIMER_WHEEL_RESOLUTION_MAX, 0), 0);
    KT_EQ_U(kl_timer_wheel_resolution(&wheel), KL_TIMER_WHEEL_RESOLUTION_MAX);
}

KT_TEST(empty_wheel)
{
    reset(MS, 5 * SEC);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), UINT64_MAX);
    KT_EQ_U(kl_timer_wheel_now(&wheel), 5 * SEC);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 100 * DAY), 0);
    KT_EQ_U(kl_timer_wheel_now(&wheel), 100 * DAY);
    KT_CHECK(!kl_timer_armed(&ts[0].timer));
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[0].timer), -ENOENT);
}

KT_TEST(fires_in_deadline_order)
{
    reset(MS, 0);
    rng_state = 42;
    uint64_t deadlines[500];
    for (int i = 0; i < 500; i++) {
        deadlines[i] = 1 + rnd_below(20 * SEC); /* levels 0, 1 and 2 */
        kl_timer_wheel_insert(&wheel, &ts[i].timer, deadlines[i], 0);
        KT_CHECK(kl_timer_armed(&ts[i].timer));
    }
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 500);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 30 * SEC), 500);
    KT_EQ_I(norder, 500);
    for (int i = 1; i < norder; i++) {
        uint64_t prev = (deadlines[order[i - 1]] + MS - 1) / MS;
        uint64_t next = (deadlines[order[i]] + MS - 1) / MS;
        if (prev > next)
            kt_fail(__FILE__, __LINE__, "timer %d (tick %" PRIu64 ") fired before %d (%" PRIu64 ")",
                    order[i - 1], prev, order[i], next);
    }
    for (int i = 0; i < 500; i++) {
        KT_EQ_I(ts[i].fires, 1);
        KT_CHECK(!kl_timer_armed(&ts[i].timer));
    }
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
}

KT_TEST(never_early_at_most_one_tick_late)
{
    reset(MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 5 * MS + 300 * US, 0); /* rounds up to 6 ms */
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 7 * MS, 0);            /* on a tick */
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 5 * MS + 299 * US), 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 5 * MS + 300 * US), 0); /* due, but mid-tick */
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 6 * MS - 1), 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 6 * MS), 1);
    KT_EQ_I(ts[0].fires, 1);
    KT_EQ_U(ts[0].fire_now, 6 * MS); /* less than deadline + resolution */
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 7 * MS - 1), 0);
    KT_EQ_I(ts[1].fires, 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 7 * MS), 1);
    KT_EQ_I(ts[1].fires, 1);
}

KT_TEST(cancel_before_firing)
{
    reset(MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 10 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 100 * DAY, 0); /* overflow list */
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 3);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[0].timer), 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[2].timer), 0);
    KT_CHECK(!kl_timer_armed(&ts[0].timer));
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[0].timer), -ENOENT); /* already cancelled */
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[3].timer), -ENOENT); /* never armed */
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 1);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 200 * DAY), 1);
    KT_EQ_I(ts[0].fires, 0);
    KT_EQ_I(ts[1].fires, 1);
    KT_EQ_I(ts[2].fires, 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), UINT64_MAX);
}

/* Timers 0 and 1 share a tick, which fires its timers in no specified order:
 * the first of the two to fire cancels the other, and timer 2. */
static void cancel_partner_and_2(struct tt *self)
{
    struct tt *partner = self == &ts[0] ? &ts[1] : &ts[0];
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &partner->timer), 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[2].timer), 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[3].timer), -ENOENT);
}

KT_TEST(cancel_from_another_callback)
{
    reset(MS, 0);
    ts[0].hook = cancel_partner_and_2;
    ts[1].hook = cancel_partner_and_2;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 10 * MS, 0); /* the same tick */
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 20 * MS, 0); /* later in the same advance */
    kl_timer_wheel_insert(&wheel, &ts[4].timer, 15 * MS, 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 30 * MS), 2);
    KT_EQ_I(ts[0].fires + ts[1].fires, 1);
    KT_EQ_I(ts[2].fires, 0);
    KT_EQ_I(ts[4].fires, 1);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
}

static void rearm_plus_5ms(struct tt *self)
{
    KT_CHECK(!kl_timer_armed(&self->timer));
    if (self->fires < 3)
        kl_timer_wheel_insert(&wheel, &self->timer, kl_timer_wheel_now(&wheel) + 5 * MS, 0);
}

KT_TEST(rearm_from_own_callback)
{
    reset(MS, 0);
    ts[0].hook = rearm_plus_5ms;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 5 * MS, 0);
    for (uint64_t now = 1 * MS; now <= 40 * MS; now += MS)
        kl_timer_wheel_advance(&wheel, now);
    KT_EQ_I(ts[0].fires, 3);
    KT_EQ_U(ts[0].fire_now, 15 * MS);
    KT_CHECK(!kl_timer_armed(&ts[0].timer));
}

static void rearm_now(struct tt *self)
{
    kl_timer_wheel_insert(&wheel, &self->timer, kl_timer_wheel_now(&wheel), 0);
}

/* Timers 0 and 1 share a tick: the first to fire re-arms the other, due in
 * this same tick, to later. */
static void rearm_partner(struct tt *self)
{
    struct tt *partner = self == &ts[0] ? &ts[1] : &ts[0];
    if (kl_timer_armed(&partner->timer))
        kl_timer_wheel_rearm(&wheel, &partner->timer, 50 * MS, 0);
}

KT_TEST(rearm_for_now_waits_for_next_advance)
{
    reset(MS, 0);
    ts[0].hook = rearm_now;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 10 * MS), 1); /* no live-lock */
    KT_CHECK(kl_timer_armed(&ts[0].timer));
    KT_CHECK(kl_timer_wheel_next_deadline(&wheel) <= 10 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 10 * MS), 1); /* the same time: still due */
    KT_EQ_I(ts[0].fires, 2);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[0].timer), 0);

    reset(MS, 0);
    ts[0].hook = rearm_partner;
    ts[1].hook = rearm_partner;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 5 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 5 * MS, 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 10 * MS), 1);
    KT_EQ_I(ts[0].fires + ts[1].fires, 1);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 50 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 50 * MS), 1);
    KT_EQ_I(ts[0].fires, 1);
    KT_EQ_I(ts[1].fires, 1);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
}

static void cancel_1_arm_2_overdue(struct tt *self)
{
    (void)self;
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[1].timer), 0);
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 1 * MS, 0);
}

KT_TEST(overdue_armed_in_callback_waits_for_next_advance)
{
    reset(MS, 100 * MS);
    ts[0].hook = cancel_1_arm_2_overdue;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 50 * MS, 0); /* overdue when armed */
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 60 * MS, 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 50 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 100 * MS), 1);
    KT_EQ_I(ts[0].fires, 1);
    KT_EQ_I(ts[1].fires, 0);
    KT_EQ_I(ts[2].fires, 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 1 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 100 * MS), 1);
    KT_EQ_I(ts[2].fires, 1);
}

/* Overdue timers fire in arming order, also after cancels at either end of
 * their list (which moves where the next one is appended). */
KT_TEST(overdue_fire_in_arming_order_across_cancels)
{
    reset(MS, 100 * MS);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 90 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 20 * MS, 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[2].timer), 0); /* the last */
    kl_timer_wheel_insert(&wheel, &ts[3].timer, 5 * MS, 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[0].timer), 0); /* the first */
    kl_timer_wheel_insert(&wheel, &ts[4].timer, 95 * MS, 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[4].timer), 0); /* the last again */
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[3].timer), 0); /* now the last */
    kl_timer_wheel_insert(&wheel, &ts[5].timer, 1 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[6].timer, 100 * MS, 0);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 3);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 100 * MS), 3);
    KT_EQ_I(norder, 3);
    KT_EQ_I(order[0], 1);
    KT_EQ_I(order[1], 5);
    KT_EQ_I(order[2], 6);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
}

/* From the first of three firing overdue timers: cancel the last one still
 * to fire, and arm, cancel and arm overdue ones (they wait for the next call). */
static void juggle_firing_and_due(struct tt *self)
{
    (void)self;
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[2].timer), 0); /* the last of the firing list */
    kl_timer_wheel_insert(&wheel, &ts[3].timer, 1 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[4].timer, 2 * MS, 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[3].timer), 0); /* the first of the due list */
    kl_timer_wheel_insert(&wheel, &ts[5].timer, 3 * MS, 0);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[5].timer), 0); /* its last */
    kl_timer_wheel_insert(&wheel, &ts[6].timer, 4 * MS, 0);
}

KT_TEST(overdue_lists_edited_from_a_callback)
{
    reset(MS, 100 * MS);
    ts[0].hook = juggle_firing_and_due;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 20 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 30 * MS, 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 100 * MS), 2);
    KT_EQ_I(norder, 2);
    KT_EQ_I(order[0], 0);
    KT_EQ_I(order[1], 1);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 2);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 100 * MS), 2);
    KT_EQ_I(norder, 4);
    KT_EQ_I(order[2], 4);
    KT_EQ_I(order[3], 6);
    KT_EQ_I(ts[2].fires + ts[3].fires + ts[5].fires, 0);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
}

static void insert_3(struct tt *self)
{
    (void)self;
    kl_timer_wheel_insert(&wheel, &ts[3].timer, kl_timer_wheel_now(&wheel) + 5 * MS, 0);
}

KT_TEST(insert_from_callback)
{
    reset(MS, 0);
    ts[0].hook = insert_3;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    /* Time given to advance is 10 ms, so timer 3 is due at 15 ms. */
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 10 * MS), 1);
    KT_CHECK(kl_timer_armed(&ts[3].timer));
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 15 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 15 * MS), 1);
    KT_EQ_I(ts[3].fires, 1);
    /* With a later advance() time, the new timer falls inside the same call. */
    reset(MS, 0);
    ts[0].hook = insert_3;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 2 * SEC), 1);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 2 * SEC + 5 * MS - 1), 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 2 * SEC + 5 * MS), 1);
}

static void stop_after_3(struct tt *self)
{
    KT_CHECK(kl_timer_armed(&self->timer)); /* re-armed before the callback */
    if (self->fires == 3)
        KT_EQ_I(kl_timer_wheel_cancel(&wheel, &self->timer), 0);
}

KT_TEST(recurring_timer)
{
    reset(MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 10 * MS);
    for (uint64_t now = 1 * MS; now <= 100 * MS; now += MS) {
        int before = ts[0].fires;
        kl_timer_wheel_advance(&wheel, now);
        KT_EQ_I(ts[0].fires - before, now % (10 * MS) == 0 ? 1 : 0);
    }
    KT_EQ_I(ts[0].fires, 10);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 110 * MS);
    /* A long gap: one firing, the missed periods skipped, the phase kept. */
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 1000 * MS + 500 * US), 1);
    KT_EQ_I(ts[0].fires, 11);
    KT_EQ_U(kl_timer_deadline(&ts[0].timer), 1010 * MS);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 1010 * MS);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[0].timer), 0);

    /* Advancing exactly onto the next period still fires once per advance(). */
    reset(MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 10 * MS, 10 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 20 * MS), 1);
    KT_EQ_U(kl_timer_deadline(&ts[2].timer), 30 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 30 * MS), 1);
    KT_EQ_I(ts[2].fires, 2);

    /* Cancelling from its own callback stops it. */
    reset(MS, 0);
    ts[1].hook = stop_after_3;
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 7 * MS, 7 * MS);
    for (uint64_t now = 0; now <= 200 * MS; now += 3 * MS)
        kl_timer_wheel_advance(&wheel, now);
    KT_EQ_I(ts[1].fires, 3);
    KT_CHECK(!kl_timer_armed(&ts[1].timer));
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
}

/* Timers at either side of every level boundary and past the last level:
 * the wheel is advanced towards each deadline in ever smaller steps (so the
 * timer cascades level by level), and after every advance exactly the timers
 * whose deadline has passed must have fired. */
KT_TEST(cascade_across_every_level_boundary)
{
    static const uint64_t rel_ms[] = {
        1,
        255,
        256,
        257,
        511,
        512,
        65535,
        65536,
        65537,
        131072,
        (1u << 24) - 1,
        1u << 24,
        (1u << 24) + 1,
        (UINT64_C(1) << 32) - 1,
        UINT64_C(1) << 32,
        (UINT64_C(1) << 32) + 1,
        100 * 86400000ull,
        1000 * 86400000ull,
    };
    enum { N = sizeof rel_ms / sizeof rel_ms[0] };
    static const uint64_t bases_ms[] = {0, 123456789, (UINT64_C(1) << 32) - 100,
                                        (UINT64_C(1) << 40) + (1u << 24) - 3};
    static uint64_t points[N * 46];
    for (size_t b = 0; b < sizeof bases_ms / sizeof bases_ms[0]; b++) {
        uint64_t base = bases_ms[b] * MS;
        reset(MS, base);
        int np = 0;
        for (int i = 0; i < N; i++) {
            uint64_t d = base + rel_ms[i] * MS;
            kl_timer_wheel_insert(&wheel, &ts[i].timer, d, 0);
            for (int k = 42; k >= 0; k--)
                if ((UINT64_C(1) << k) * MS < d - base)
                    points[np++] = d - (UINT64_C(1) << k) * MS;
            points[np++] = d - 1;
            points[np++] = d;
        }
        /* sort the check points (insertion sort, small) */
        for (int i = 1; i < np; i++)
            for (int j = i; j > 0 && points[j - 1] > points[j]; j--) {
                uint64_t x = points[j];
                points[j] = points[j - 1];
                points[j - 1] = x;
            }
        for (int p = 0; p < np; p++) {
            uint64_t now = points[p];
            kl_timer_wheel_advance(&wheel, now);
            uint64_t next = UINT64_MAX;
            size_t pending = 0;
            for (int i = 0; i < N; i++) {
                uint64_t d = base + rel_ms[i] * MS;
                int expect = d <= now;
                if (ts[i].fires != expect) {
                    kt_fail(__FILE__, __LINE__,
                            "base %" PRIu64 " ms, timer at +%" PRIu64 " ms: %d fires at +%" PRIu64
                            " ns, expected %d",
                            bases_ms[b], rel_ms[i], ts[i].fires, now - base, expect);
                    return;
                }
                if (!expect) {
                    pending++;
                    if (d < next)
                        next = d;
                }
            }
            KT_EQ_U(kl_timer_wheel_pending(&wheel), pending);
            KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), next);
        }
        for (int i = 0; i < N; i++)
            KT_EQ_U(ts[i].fire_now, base + rel_ms[i] * MS);
    }
}

KT_TEST(overflow_list)
{
    reset(MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 60 * DAY, 0);
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 400 * DAY, 0);
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 50 * DAY, 0); /* past level 3 too */
    kl_timer_wheel_insert(&wheel, &ts[3].timer, 1 * SEC, 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 1 * SEC);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 2 * SEC), 1);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 50 * DAY);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[2].timer), 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 60 * DAY);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 60 * DAY - 1), 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 60 * DAY), 1);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 400 * DAY);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 399 * DAY), 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 401 * DAY), 1);
    KT_EQ_U(ts[1].fire_now, 401 * DAY);
    /* a far deadline is clamped, not wrapped */
    kl_timer_wheel_insert(&wheel, &ts[4].timer, UINT64_MAX, 0);
    KT_EQ_U(kl_timer_deadline(&ts[4].timer), KL_TIMER_DEADLINE_MAX);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 1000 * DAY), 0);
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 1);
}

KT_TEST(next_deadline)
{
    reset(MS, 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), UINT64_MAX);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 70 * SEC, 0); /* level 2 */
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 70 * SEC);
    kl_timer_wheel_insert(&wheel, &ts[1].timer, 300 * MS + 1, 0); /* level 1, rounds up */
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 301 * MS);
    kl_timer_wheel_insert(&wheel, &ts[2].timer, 290 * MS, 0); /* the same level-1 bin */
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 290 * MS);
    kl_timer_wheel_insert(&wheel, &ts[3].timer, 5 * MS, 0); /* level 0 */
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 5 * MS);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[3].timer), 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 290 * MS);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[2].timer), 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 301 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 200 * MS), 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 301 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 301 * MS), 1);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 70 * SEC);
    /* a deadline already passed: due now, fires at the next advance */
    kl_timer_wheel_insert(&wheel, &ts[4].timer, 100 * MS, 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 100 * MS);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 301 * MS), 1);
    KT_EQ_I(ts[4].fires, 1);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), 70 * SEC);
    KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[0].timer), 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), UINT64_MAX);
}

KT_TEST(destroy_disarms)
{
    reset(MS, 0);
    for (int i = 0; i < 10; i++)
        kl_timer_wheel_insert(&wheel, &ts[i].timer, (uint64_t)i * 40 * DAY, 0);
    kl_timer_wheel_destroy(&wheel);
    for (int i = 0; i < 10; i++)
        KT_CHECK(!kl_timer_armed(&ts[i].timer));
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0);
    KT_EQ_U(kl_timer_wheel_advance(&wheel, 1000 * DAY), 0);
    KT_EQ_U(kl_timer_wheel_next_deadline(&wheel), UINT64_MAX);
}

/* ---- random run against a reference model ------------------------------ */

struct model {
    bool armed;
    bool overdue; /* armed for a tick already processed: fires first, in arming order */
    uint64_t deadline;
    uint64_t tick;
    int fires_this_call;
};

static struct model model[MAX_T];
static uint64_t model_res;
static uint64_t last_tick_fired;
static bool fired_in_order; /* a timer that was not overdue has fired in this call */

static uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

static uint64_t random_delay(void)
{
    /* log-uniform over 1 ns .. 2^56 ns (2.3 years): every level and the overflow */
    return rnd_below(UINT64_C(1) << rnd_below(57)) + 1;
}

static void model_hook(struct tt *self)
{
    struct model *m = &model[self->id];
    if (m->overdue && fired_in_order)
        kt_fail(__FILE__, __LINE__, "overdue timer %d fired after a timer in tick order", self->id);
    if (!m->overdue && m->tick < last_tick_fired)
        kt_fail(__FILE__, __LINE__, "timer %d (tick %" PRIu64 ") fired after tick %" PRIu64,
                self->id, m->tick, last_tick_fired);
    if (!m->overdue) {
        last_tick_fired = m->tick;
        fired_in_order = true;
    }
    m->fires_this_call++;
    m->armed = false;
    if (self->id % 5 == 0) { /* re-arm itself, always in the future */
        uint64_t d = kl_timer_wheel_now(&wheel) + random_delay();
        kl_timer_wheel_insert(&wheel, &self->timer, d, 0);
        *m = (struct model){true, false, d, ceil_div(d, model_res), m->fires_this_call};
    } else if (self->id % 5 == 1) { /* cancel some other timer */
        int victim = (int)rnd_below(MAX_T);
        bool was = model[victim].armed;
        KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[victim].timer), was ? 0 : -ENOENT);
        model[victim].armed = false;
    }
}

static void random_run(uint64_t resolution, uint64_t seed, int steps)
{
    rng_state = seed;
    uint64_t now = rnd_below(UINT64_C(1) << 50);
    reset(resolution, now);
    model_res = resolution;
    for (int i = 0; i < MAX_T; i++) {
        model[i] = (struct model){0};
        ts[i].hook = model_hook;
    }
    for (int step = 0; step < steps && !kt_failed(); step++) {
        unsigned op = (unsigned)rnd_below(10);
        int i = (int)rnd_below(MAX_T);
        if (op < 5) { /* arm or re-arm, sometimes in the past */
            uint64_t d =
                rnd_below(8) == 0 ? now - rnd_below(now < SEC ? now : SEC) : now + random_delay();
            kl_timer_wheel_rearm(&wheel, &ts[i].timer, d, 0);
            uint64_t tick = ceil_div(d, resolution);
            model[i] = (struct model){true, tick <= now / resolution, d, tick, 0};
        } else if (op < 7) {
            KT_EQ_I(kl_timer_wheel_cancel(&wheel, &ts[i].timer), model[i].armed ? 0 : -ENOENT);
            model[i].armed = false;
        } else {
            /* advance: 0, a little, or a lot */
            unsigned kind = (unsigned)rnd_below(16);
            uint64_t step_ns = kind < 3    ? 0
                               : kind < 9  ? rnd_below(10 * resolution)
                               : kind < 15 ? random_delay() >> 8
                                           : random_delay();
            if (now + step_ns < (UINT64_C(1) << 61))
                now += step_ns;
            uint64_t target = now / resolution;
            bool due[MAX_T];
            size_t expect_fired = 0;
            for (int j = 0; j < MAX_T; j++) {
                due[j] = model[j].armed && model[j].tick <= target;
                expect_fired += due[j];
                model[j].fires_this_call = 0;
            }
            last_tick_fired = 0;
            fired_in_order = false;
            size_t fired = kl_timer_wheel_advance(&wheel, now);
            size_t counted = 0;
            for (int j = 0; j < MAX_T; j++) {
                counted += (size_t)model[j].fires_this_call;
                if (model[j].fires_this_call != (due[j] ? 1 : 0) &&
                    !(due[j] && !model[j].armed && model[j].fires_this_call == 0)) {
                    kt_fail(__FILE__, __LINE__,
                            "step %d: timer %d fired %d times, expected %d (tick %" PRIu64
                            ", target %" PRIu64 ")",
                            step, j, model[j].fires_this_call, due[j], model[j].tick, target);
                    return;
                }
            }
            KT_EQ_U(fired, counted);
            KT_CHECK(fired <= expect_fired); /* fewer when a callback cancelled a due timer */
        }
        size_t pending = 0;
        uint64_t min_tick = UINT64_MAX;
        for (int j = 0; j < MAX_T; j++) {
            if (kl_timer_armed(&ts[j].timer) != model[j].armed) {
                kt_fail(__FILE__, __LINE__, "step %d: timer %d armed %d, model says %d", step, j,
                        kl_timer_armed(&ts[j].timer), model[j].armed);
                return;
            }
            if (model[j].armed) {
                pending++;
                if (model[j].tick < min_tick)
                    min_tick = model[j].tick;
            }
        }
        KT_EQ_U(kl_timer_wheel_pending(&wheel), pending);
        KT_EQ_U(kl_timer_wheel_next_deadline(&wheel),
                min_tick == UINT64_MAX ? UINT64_MAX : min_tick * resolution);
    }
    kl_timer_wheel_destroy(&wheel);
}

KT_TEST(random_against_model_1ms) { random_run(MS, 1, 20000); }

KT_TEST(random_against_model_odd_resolution)
{
    random_run(999983, 2, 20000); /* a prime: exercises the reciprocal division */
}

KT_TEST(random_against_model_pow2_resolution) { random_run(1024, 3, 20000); }

KT_TEST(random_against_model_1ns) { random_run(1, 4, 10000); }

/* ---- misuse ------------------------------------------------------------ */

KT_DEATH_TEST(double_insert_asserts, "is already armed")
{
    reset(MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 10 * MS, 0);
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 20 * MS, 0);
}

KT_DEATH_TEST(cancel_in_wrong_wheel_asserts, "armed in another wheel")
{
    reset(MS, 0);
    kl_timer_wheel_init(&other_wheel, MS, 0);
    kl_timer_wheel_insert(&other_wheel, &ts[0].timer, 10 * MS, 0);
    kl_timer_wheel_cancel(&wheel, &ts[0].timer);
}

static void advance_inside(struct tt *self)
{
    (void)self;
    kl_timer_wheel_advance(&wheel, kl_timer_wheel_now(&wheel));
}

KT_DEATH_TEST(advance_from_callback_asserts, "called from a timer callback")
{
    reset(MS, 0);
    ts[0].hook = advance_inside;
    kl_timer_wheel_insert(&wheel, &ts[0].timer, 1 * MS, 0);
    kl_timer_wheel_advance(&wheel, 2 * MS);
}
