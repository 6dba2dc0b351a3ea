/* fiber_kit.h: a scheduler per test case, for the fiber tests. */
#ifndef KEEL_TEST_FIBER_KIT_H
#define KEEL_TEST_FIBER_KIT_H

#include "keel/fiber.h"

#include "kt.h"

/* Bring up the calling thread's scheduler with `max_fibers` slots. */
static inline void up(uint32_t max_fibers)
{
    struct kl_sched_config cfg = {.max_fibers = max_fibers};
    int rc = kl_sched_init(&cfg);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_sched_init: %d", rc);
}

/* Shut it down, failing the case if fibers did not end. */
static inline void down(void)
{
    int rc = kl_sched_shutdown();
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_sched_shutdown: %d", rc);
}

/* Fiber bodies the cases share. */

/* Returns its argument. */
static inline intptr_t return_arg(void *arg) { return (intptr_t)arg; }

/* Parks until resumed or cancelled; returns what the suspend returned. */
static inline intptr_t suspend_once(void *arg)
{
    (void)arg;
    return kl_fiber_suspend("test event", KL_FIBER_FOREVER);
}

/* Joins the fiber *arg names; returns the join's result. */
static inline intptr_t join_forever_sleeper(void *arg)
{
    kl_fiber_id target = *(kl_fiber_id *)arg;
    return kl_fiber_join(target, NULL);
}

/* Recurses (512 bytes a frame) until its stack overflows. */
static inline int kit_recurse(volatile int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    if (depth < 0) /* never: keeps the recursion from becoming a loop */
        return 0;
    return kit_recurse(depth + 1) + pad[0];
}

/* A fiber body that overflows its stack. */
static inline intptr_t overflow(void *arg)
{
    (void)arg;
    return kit_recurse(0);
}

#endif /* KEEL_TEST_FIBER_KIT_H */
