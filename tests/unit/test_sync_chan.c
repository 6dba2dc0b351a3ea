/* Tests for the channel of keel/sync.h: order, blocking and hand-off, close
 * semantics, the unbuffered case, FIFO receivers with a cancelled one,
 * timeouts, and a randomized stress run (producers, consumers, timeouts,
 * cancels) that checks every successfully sent item arrives exactly once and
 * in per-producer order. Helpers are in sync_kit.c. */
#include "keel/sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/fiber.h"

#include "kt.h"
#include "sync_kit.h"

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

/* ---- randomized stress ----------------------------------------------------- */

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
