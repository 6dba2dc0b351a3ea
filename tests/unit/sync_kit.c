/* sync_kit.c: what the sync tests share (sync_kit.h). */
#include "sync_kit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/clock.h"
#include "keel/timer_wheel.h"

#include "kt.h"

void up(uint32_t max_fibers)
{
    struct kl_sched_config cfg = {.max_fibers = max_fibers};
    int rc = kl_sched_init(&cfg);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_sched_init: %d", rc);
}

void down(void)
{
    kl_sched_set_hooks(NULL);
    int rc = kl_sched_shutdown();
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_sched_shutdown: %d", rc);
}

kl_fiber_id spawn(const char *name, kl_fiber_fn fn, void *arg)
{
    kl_fiber_id id;
    int rc = kl_fiber_spawn(&id, name, fn, arg, KL_FIBER_PRIO_NORMAL);
    KL_ASSERT(rc == 0, "spawn %s: %d", name, rc);
    return id;
}

intptr_t join(kl_fiber_id id)
{
    intptr_t r = -999;
    int rc = kl_fiber_join(id, &r);
    KL_ASSERT(rc == 0, "join: %d", rc);
    return r;
}

/* ---- timeouts: a timer wheel on a fake clock ------------------------------ */

static struct kl_timer_wheel wheel;
static struct kl_timer timers[TIMERS];
static kl_fiber_id timer_fiber[TIMERS];
uint64_t fake_now;
uint64_t idle_horizon; /* the idle hook fires no timeout due later than this */
int timeouts_fired;

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

/* Nothing is ready: jump the fake clock to the next timeout and fire it.
 * Between rounds of ready fibers the clock stands still. */
static int idle_advance(void *ctx, bool fibers_ready)
{
    (void)ctx;
    if (fibers_ready)
        return 0;
    uint64_t next = kl_timer_wheel_next_deadline(&wheel);
    if (next == UINT64_MAX || next > idle_horizon)
        return -EDEADLK;
    if (next > fake_now)
        fake_now = next;
    kl_timer_wheel_advance(&wheel, fake_now);
    return 0;
}

/* Move the fake clock by `ns` and fire what is due (the stress clock fiber). */
void clock_step(uint64_t ns)
{
    uint64_t real = kl_now();
    fake_now = (fake_now > real ? fake_now : real) + ns;
    kl_timer_wheel_advance(&wheel, fake_now);
}

void timers_up(void)
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

void timers_down(void)
{
    KT_EQ_U(kl_timer_wheel_pending(&wheel), 0); /* every wait disarmed or fired its timeout */
    kl_timer_wheel_destroy(&wheel);
}

/* ---- a trace of who got what, in order ------------------------------------- */

char trace[512];
static size_t trace_len;

void trace_reset(void)
{
    trace_len = 0;
    trace[0] = '\0';
}

void trace_add(const char *s)
{
    size_t n = strlen(s);
    if (trace_len + n < sizeof trace) {
        memcpy(trace + trace_len, s, n + 1);
        trace_len += n;
    }
}

void job_trace(struct job *j)
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

void job_hold(struct job *j)
{
    if (j->gate)
        KL_ASSERT(kl_event_wait(j->gate, 0) == 0);
    if (!kl_fiber_id_eq(j->victim, KL_FIBER_ID_NONE))
        KL_ASSERT(kl_fiber_cancel(j->victim) == 0);
}

uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

unsigned rng_below(uint64_t *s, unsigned n) { return (unsigned)(rng_next(s) % n); }

/* A timeout for a random wait: none three times in four, else 1-3 ms. */
uint64_t rng_timeout(uint64_t *s)
{
    return rng_below(s, 4) ? 0 : (1 + rng_below(s, 3)) * (uint64_t)MS;
}

void rng_yields(uint64_t *s, unsigned max)
{
    for (unsigned n = rng_below(s, max + 1); n > 0; n--)
        kl_fiber_yield();
}
