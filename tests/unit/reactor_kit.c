/* reactor_kit.c: scheduler and reactor set-up shared by the reactor-level tests. */
#include "reactor_kit.h"

#include <errno.h>
#include <stdio.h>

#include "kt.h"

/* Each case runs on io_uring, on epoll, and on io_uring again with a batch
 * wait (kl_reactor_options.batch_wait_us), which changes when the loop
 * wakes but must change nothing a fiber sees. */
static const struct kl_reactor_options all_passes[] = {
    {.backend = KL_REACTOR_URING},
    {.backend = KL_REACTOR_EPOLL},
    {.backend = KL_REACTOR_URING, .batch_wait_us = 2000},
};

bool rk_up(enum kl_reactor_backend b)
{
    return rk_up_with(&(struct kl_reactor_options){.backend = b});
}

bool rk_up_with(const struct kl_reactor_options *o)
{
    enum kl_reactor_backend b = o->backend;
    struct kl_sched_config cfg = {.max_fibers = 256};
    int rc = kl_sched_init(&cfg);
    if (rc != 0) {
        kt_fail(__FILE__, __LINE__, "kl_sched_init: %d", rc);
        return false;
    }
    rc = kl_reactor_init(o);
    if (rc != 0) {
        kl_sched_shutdown();
        if (b == KL_REACTOR_URING && (rc == -ENOSYS || rc == -EPERM)) {
            printf("  io_uring unavailable here (%d): io_uring pass skipped\n", rc);
            return false;
        }
        kt_fail(__FILE__, __LINE__, "kl_reactor_init(%s): %d", kl_reactor_backend_name(b), rc);
        return false;
    }
    return true;
}

void rk_down(void)
{
    int rc = kl_sched_shutdown();
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_sched_shutdown: %d", rc);
    rc = kl_reactor_destroy();
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_reactor_destroy: %d", rc);
}

/* Run `fn` once per backend that can be brought up here. A case that could
 * not run on every backend did not fully run: it counts as skipped (its
 * failures on the others still fail it). */
void rk_each_backend(void (*fn)(enum kl_reactor_backend))
{
    const char *missing = NULL;
    for (size_t i = 0; i < sizeof all_passes / sizeof all_passes[0]; i++) {
        const struct kl_reactor_options *o = &all_passes[i];
        if (!rk_up_with(o)) {
            missing = kl_reactor_backend_name(o->backend);
            continue;
        }
        if (o->batch_wait_us)
            printf("  backend %s, batch wait %u us\n", kl_reactor_backend_name(o->backend),
                   o->batch_wait_us);
        else
            printf("  backend %s\n", kl_reactor_backend_name(o->backend));
        fn(o->backend);
        rk_down();
    }
    if (missing)
        kt_skip("the %s backend could not be brought up here", missing);
}

kl_fiber_id rk_spawn(const char *name, kl_fiber_fn fn, void *arg)
{
    kl_fiber_id id;
    int rc = kl_fiber_spawn(&id, name, fn, arg, KL_FIBER_PRIO_NORMAL);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "spawn %s: %d", name, rc);
    return id;
}

intptr_t rk_canceller(void *arg)
{
    kl_sleep(10 * MS);
    int rc = kl_fiber_cancel(*(kl_fiber_id *)arg);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_fiber_cancel: %d", rc);
    return 0;
}
