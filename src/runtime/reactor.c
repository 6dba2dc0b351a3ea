/* The per-thread reactor: scheduler hooks, timers and the loop (keel/reactor.h).
 *
 * The reactor lives in the scheduler's seam. timeout_arm/timeout_disarm keep
 * one kl_timer per fiber slot in a timer wheel (a fiber has at most one
 * suspend timeout at a time, so the slot index is the token and nothing is
 * allocated per wait). `idle` is the loop iteration: fire due timers, then
 * let the backend submit, wait (until the next completion or the wheel's next
 * deadline, or not at all when a fiber is ready or in busy-poll mode) and
 * reap, then fire the timers that came due while it waited. It gives up
 * with -EDEADLK only when no timer, no request in flight and no post from
 * another thread (xthread.c) could wake a suspended fiber.
 *
 * I/O completions are matched to fibers through a per-slot table of
 * struct kl_io_wait pointers: user_data carries the raw fiber id, the slot
 * index is its low half, and the incarnation check drops a completion that
 * would reach the wrong fiber.
 */
#include "keel/reactor.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/clock.h"
#include "keel/log.h"

#include "reactor_internal.h"

__thread struct kl_reactor *kl_reactor__tls;

struct kl_reactor *kl_reactor__get(void)
{
    struct kl_reactor *r = kl_reactor__tls;
    KL_ASSERT(r != NULL, "no reactor on this thread (kl_reactor_init)");
    return r;
}

/* ---- timeouts through the wheel ----------------------------------------- */

static void timeout_fired(struct kl_timer *timer, void *arg)
{
    struct kl_reactor *r = arg;
    uint32_t slot = (uint32_t)(timer - r->timers);
    r->stats.timers_fired++;
    kl_fiber_expire(kl_fiber_id_from(r->timer_ids[slot]));
}

static int hook_timeout_arm(void *ctx, kl_fiber_id id, uint64_t deadline_ns, uint64_t *token)
{
    struct kl_reactor *r = ctx;
    uint32_t slot = kl_reactor__slot(kl_fiber_id_raw(id));
    KL_ASSERT(slot < r->sched->capacity);
    struct kl_timer *t = &r->timers[slot];
    KL_ASSERT(!kl_timer_armed(t), "fiber slot %u armed two timeouts", slot);
    r->timer_ids[slot] = kl_fiber_id_raw(id);
    kl_timer_init(t, timeout_fired, r);
    kl_timer_wheel_insert(&r->wheel, t, deadline_ns, 0);
    *token = slot;
    return 0;
}

static void hook_timeout_disarm(void *ctx, uint64_t token)
{
    struct kl_reactor *r = ctx;
    KL_ASSERT(token < r->sched->capacity);
    kl_timer_wheel_cancel(&r->wheel, &r->timers[token]);
}

/* ---- the loop ------------------------------------------------------------- */

static int hook_idle(void *ctx, bool fibers_ready)
{
    struct kl_reactor *r = ctx;
    r->stats.iterations++;
    uint64_t now = kl_now();
    r->now = now;
    /* Timers that came due while the fibers ran may wake some: then do not block. */
    bool fired = kl_timer_wheel_advance(&r->wheel, now) > 0;

    uint64_t timeout = 0;
    if (!r->busy_poll && !r->stop && !fibers_ready && !fired) {
        uint64_t next = kl_timer_wheel_next_deadline(&r->wheel);
        if (next == UINT64_MAX) {
            if (r->inflight == 0 && !kl_xthread__may_receive(r))
                return -EDEADLK; /* suspended fibers that nothing here can wake */
            timeout = UINT64_MAX;
        } else {
            timeout = next > now ? next - now : 0;
        }
    }
    if (timeout == 0 && r->inflight == 0) {
        kl_xthread__drain(r); /* posted messages still run while fibers stay ready */
        return 0;             /* nothing to submit or reap: no system call */
    }
    int rc = r->ops->poll(r, timeout);
    if (rc < 0)
        return rc;
    if (timeout != 0) {
        r->now = kl_now();
        kl_timer_wheel_advance(&r->wheel, r->now);
    }
    return 0;
}

void kl_reactor__complete(struct kl_reactor *r, uint64_t user_data, int64_t res)
{
    uint32_t slot = kl_reactor__slot(user_data);
    if (slot >= r->sched->capacity)
        return;
    struct kl_io_wait *w = r->waits[slot];
    if (w == NULL || w->id != user_data || w->done)
        return;
    w->res = res;
    w->done = true;
    r->stats.completions++;
    kl_fiber_resume(kl_fiber_id_from(user_data), 0);
}

void kl_reactor__wait_done(struct kl_reactor *r, struct kl_io_wait *w)
{
    struct kl_fiber *cur = r->sched->current;
    bool cancelled = cur->cancelled;
    while (!w->done) {
        cur->cancelled = false; /* the sticky flag would refuse to park */
        kl_fiber__suspend(r->sched, "io-drain", NULL, KL_FIBER_FOREVER);
        cancelled |= cur->cancelled;
    }
    cur->cancelled = cancelled;
}

int kl_reactor__park(struct kl_reactor *r, const char *what, uint64_t deadline_ns)
{
    uint64_t timeout = KL_FIBER_FOREVER;
    if (deadline_ns != UINT64_MAX) {
        uint64_t now = kl_now();
        if (now >= deadline_ns)
            return -ETIMEDOUT;
        timeout = deadline_ns - now;
    }
    return kl_fiber__suspend(r->sched, what, NULL, timeout);
}

/* ---- public --------------------------------------------------------------- */

/* A write to a socket whose peer has gone must be an error the fiber sees
 * (-EPIPE), not a signal that ends the process: kl_write and kl_writev work
 * on any fd, so MSG_NOSIGNAL cannot be used for them. A disposition that the
 * program chose itself (a handler, or SIG_IGN) is left as it is. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

static void release(struct kl_reactor *r)
{
    kl_xthread__detach(r);
    kl_timer_wheel_destroy(&r->wheel);
    free(r->timers);
    free(r->timer_ids);
    free(r->waits);
    free(r);
}

int kl_reactor_init(const struct kl_reactor_options *opts)
{
    if (!kl_sched_active())
        return -ENOENT;
    if (kl_reactor__tls)
        return -EBUSY;
    struct kl_reactor_options o = opts ? *opts : (struct kl_reactor_options){0};
    if ((unsigned)o.backend > KL_REACTOR_EPOLL || o.ring_entries > 32768 ||
        o.batch_wait_us > KL_REACTOR_BATCH_WAIT_MAX_US)
        return -EINVAL;
    struct kl_sched *s = kl_sched__get();
    struct kl_reactor *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->sched = s;
    r->busy_poll = o.busy_poll;
    r->batch_wait_us = o.batch_wait_us;
    r->ring_entries = o.ring_entries ? o.ring_entries : 256;
    r->wake_fd = -1;
    r->timers = calloc(s->capacity, sizeof *r->timers);
    r->timer_ids = calloc(s->capacity, sizeof *r->timer_ids);
    r->waits = calloc(s->capacity, sizeof *r->waits);
    int rc = kl_timer_wheel_init(
        &r->wheel, o.timer_resolution_ns ? o.timer_resolution_ns : KL_TIMER_WHEEL_DEFAULT_RES,
        kl_now());
    if (r->timers == NULL || r->timer_ids == NULL || r->waits == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = kl_xthread__attach(r);
    if (rc < 0) {
        release(r);
        return rc;
    }
    for (uint32_t i = 0; i < s->capacity; i++)
        kl_timer_init(&r->timers[i], timeout_fired, r);

    rc = -ENOSYS;
    if (o.backend == KL_REACTOR_AUTO || o.backend == KL_REACTOR_URING) {
        rc = kl_poller_uring_init(r);
        if (rc < 0 && o.backend == KL_REACTOR_AUTO)
            KL_INFO("reactor: io_uring unavailable (%d), using epoll", rc);
    }
    if (rc < 0 && o.backend != KL_REACTOR_URING)
        rc = kl_poller_epoll_init(r);
    if (rc < 0) {
        release(r);
        return rc;
    }
    ignore_sigpipe();
    r->now = kl_now();
    kl_reactor__tls = r;
    struct kl_sched_hooks hooks = {
        .ctx = r,
        .idle = hook_idle,
        .timeout_arm = hook_timeout_arm,
        .timeout_disarm = hook_timeout_disarm,
    };
    kl_sched_set_hooks(&hooks);
    return 0;
}

static bool run_done(void *arg)
{
    struct kl_reactor *r = arg;
    return r->stop || r->sched->live == 0;
}

int kl_reactor_run(void)
{
    struct kl_reactor *r = kl_reactor__get();
    r->stop = false;
    int rc = kl_sched__run_until(r->sched, run_done, r);
    r->stop = false;
    if (rc < 0 && rc != -EDEADLK)
        return rc;
    return (int)r->sched->live;
}

void kl_reactor_stop(void) { kl_reactor__get()->stop = true; }

struct grace {
    struct kl_reactor *r;
    struct kl_timer timer;
    bool over;
};

static void grace_over(struct kl_timer *timer, void *arg)
{
    (void)timer;
    ((struct grace *)arg)->over = true;
}

static bool grace_done(void *arg)
{
    struct grace *g = arg;
    return g->over || g->r->sched->live == 0;
}

static bool none_live(void *arg) { return ((struct kl_reactor *)arg)->sched->live == 0; }

int kl_reactor_shutdown(uint64_t grace_ns)
{
    struct kl_reactor *r = kl_reactor__get();
    struct kl_sched *s = r->sched;
    KL_ASSERT(s->current == &s->main, "kl_reactor_shutdown() from fiber %s", s->current->name);
    KL_ASSERT(!r->stopping, "kl_reactor_shutdown() while it runs");
    r->stopping = true;
    r->stop = false;
    int rc = 0;
    if (grace_ns > 0 && s->live > 0) {
        struct grace g = {.r = r};
        kl_timer_init(&g.timer, grace_over, &g);
        uint64_t now = kl_now();
        kl_timer_wheel_insert(
            &r->wheel, &g.timer,
            grace_ns > KL_TIMER_DEADLINE_MAX - now ? KL_TIMER_DEADLINE_MAX : now + grace_ns, 0);
        rc = kl_sched__run_until(s, grace_done, &g);
        if (kl_timer_armed(&g.timer))
            kl_timer_wheel_cancel(&r->wheel, &g.timer);
    }
    int cancelled = 0;
    if (rc == 0 || rc == -EDEADLK) {
        cancelled = (int)kl_sched__cancel_all(s);
        rc = kl_sched__run_until(s, none_live, r);
    }
    r->stopping = false;
    r->stop = false;
    if (rc < 0)
        return rc;
    return cancelled;
}

bool kl_reactor_stopping(void) { return kl_reactor__tls != NULL && kl_reactor__tls->stopping; }

int kl_reactor_destroy(void)
{
    struct kl_reactor *r = kl_reactor__tls;
    if (r == NULL)
        return -ENOENT;
    if (r->inflight > 0 || kl_timer_wheel_pending(&r->wheel) > 0)
        return -EBUSY;
    if (kl_sched_active())
        kl_sched_set_hooks(NULL);
    r->ops->destroy(r);
    kl_reactor__tls = NULL;
    release(r);
    return 0;
}

bool kl_reactor_active(void) { return kl_reactor__tls != NULL; }

enum kl_reactor_backend kl_reactor_backend(void) { return kl_reactor__get()->backend; }

const char *kl_reactor_backend_name(enum kl_reactor_backend backend)
{
    switch (backend) {
    case KL_REACTOR_URING: return "io_uring";
    case KL_REACTOR_EPOLL: return "epoll";
    default: return "auto";
    }
}

void kl_reactor_stats(struct kl_reactor_stats *stats) { *stats = kl_reactor__get()->stats; }

const struct kl_reactor_stats *kl_reactor_stats_live(void) { return &kl_reactor__get()->stats; }

uint64_t kl_reactor_now(void) { return kl_reactor__get()->now; }

int kl_sleep(uint64_t ns)
{
    struct kl_reactor *r = kl_reactor__get();
    uint64_t now = kl_now();
    uint64_t deadline = ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + ns;
    for (;;) {
        int rc = kl_reactor__park(r, "sleep", deadline);
        if (rc == -ETIMEDOUT)
            return 0;
        if (rc == -ECANCELED)
            return rc;
        /* resumed by someone else: sleep on until the deadline */
    }
}
