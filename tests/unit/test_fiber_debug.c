/* Tests for the fiber runtime's diagnostics (fiber_debug.c and the asserts
 * of fiber.c): a switch inside a critical section and other misuse are
 * assertions; the hogger report, through a reporter and on stderr; a stack
 * overflow named after its fiber; the fiber dump, on a crash and on demand.
 * Death cases run in a forked child (kt.h). */
#include "keel/fiber.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/assert.h"
#include "keel/clock.h"

#include "fiber_kit.h"
#include "kt.h"

static intptr_t yield_in_critical_section(void *arg)
{
    (void)arg;
    kl_fiber_critical_enter();
    kl_fiber_yield();
    return 0;
}

KT_DEATH_TEST(critical_section_switch_asserts, "kl_fiber_yield() in fiber crit inside a critical")
{
    up(16);
    kl_fiber_id a, b;
    kl_fiber_spawn(&a, "crit", yield_in_critical_section, NULL, KL_FIBER_PRIO_NORMAL);
    kl_fiber_spawn(&b, "other", return_arg, NULL, KL_FIBER_PRIO_NORMAL);
    kl_sched_run();
}

static intptr_t suspend_in_critical_section(void *arg)
{
    (void)arg;
    kl_fiber_critical_enter();
    kl_fiber_critical_enter();
    kl_fiber_critical_exit(); /* still inside: they nest */
    return kl_fiber_suspend("lock", KL_FIBER_FOREVER);
}

KT_DEATH_TEST(critical_section_suspend_asserts, "lock in fiber nested inside a critical section")
{
    up(16);
    kl_fiber_id a;
    kl_fiber_spawn(&a, "nested", suspend_in_critical_section, NULL, KL_FIBER_PRIO_NORMAL);
    kl_sched_run();
}

KT_TEST(critical_section_without_switch_is_fine)
{
    up(16);
    kl_fiber_critical_enter();
    kl_fiber_id a;
    KT_EQ_I(kl_fiber_spawn(&a, "x", return_arg, NULL, KL_FIBER_PRIO_NORMAL), 0);
    kl_fiber_critical_exit();
    KT_EQ_I(kl_fiber_join(a, NULL), 0);
    down();
}

KT_DEATH_TEST(yield_outside_fiber_asserts, "kl_fiber_yield() outside a fiber")
{
    up(16);
    kl_fiber_yield();
}

static char hog_name[KL_FIBER_NAME_MAX];
static kl_fiber_id hog_id;
static uint64_t hog_ran_ns;
static int hog_reports;

static void record_hog(const char *name, kl_fiber_id id, uint64_t ran_ns, uint64_t limit_ns)
{
    (void)limit_ns;
    hog_reports++;
    hog_id = id;
    hog_ran_ns = ran_ns;
    snprintf(hog_name, sizeof hog_name, "%s", name);
}

/* Run without switching for `arg` milliseconds. */
static intptr_t spin_then_end(void *arg)
{
    uint64_t end = kl_now() + (uint64_t)(intptr_t)arg * 1000000;
    while (kl_now() < end)
        ;
    return 0;
}

static intptr_t spin_ms(void *arg)
{
    spin_then_end(arg);
    kl_fiber_yield();
    return 0;
}

static intptr_t yield_a_lot(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        kl_fiber_yield();
    return 0;
}

KT_TEST(hogger_is_reported)
{
    struct kl_sched_config cfg = {.max_fibers = 8, .hog_threshold_ns = 2000000};
    KT_REQUIRE(kl_sched_init(&cfg) == 0);
    kl_sched_set_hog_reporter(record_hog);
    hog_reports = 0;
    kl_fiber_id a, b;
    KT_EQ_I(kl_fiber_spawn(&a, "quick", yield_a_lot, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_I(hog_reports, 0);
    KT_EQ_I(kl_fiber_spawn(&b, "slowpoke", spin_ms, (void *)10, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_I(hog_reports, 1);
    KT_EQ_STR(hog_name, "slowpoke");
    KT_CHECK(hog_ran_ns >= 10000000 && hog_ran_ns < 1000000000);
    kl_sched_set_hog_reporter(NULL);
    KT_EQ_I(kl_fiber_join(a, NULL), 0);
    KT_EQ_I(kl_fiber_join(b, NULL), 0);
    down();
}

/* A detached fiber that hogs to its end is reported under its own name and
 * id: before its slot is freed (which bumps the id's incarnation). */
KT_TEST(hogger_reports_an_ending_detached_fiber)
{
    struct kl_sched_config cfg = {.max_fibers = 8, .hog_threshold_ns = 2000000};
    KT_REQUIRE(kl_sched_init(&cfg) == 0);
    kl_sched_set_hog_reporter(record_hog);
    hog_reports = 0;
    kl_fiber_id a;
    KT_EQ_I(kl_fiber_spawn(&a, "last-gasp", spin_then_end, (void *)5, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_detach(a), 0);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_I(hog_reports, 1);
    KT_EQ_STR(hog_name, "last-gasp");
    KT_EQ_U(kl_fiber_id_raw(hog_id), kl_fiber_id_raw(a));
    KT_CHECK(hog_ran_ns >= 5000000);
    kl_sched_set_hog_reporter(NULL);
    down();
}

/* The default reporter writes to stderr; the abort makes this a death case
 * only so that the harness captures stderr. */
KT_DEATH_TEST(hogger_default_report_on_stderr, "hogger: fiber slowpoke (id 0:1) ran ")
{
    struct kl_sched_config cfg = {.max_fibers = 8, .hog_threshold_ns = 1000000};
    kl_sched_init(&cfg);
    kl_fiber_id a;
    kl_fiber_spawn(&a, "slowpoke", spin_ms, (void *)3, KL_FIBER_PRIO_NORMAL);
    kl_sched_run();
    fflush(stderr);
    abort();
}

KT_DEATH_TEST(stack_overflow_names_the_fiber, "stack overflow in fiber deep-diver (id 1:1)")
{
    kl_crash_install();
    up(4);
    kl_fiber_id a, b;
    kl_fiber_spawn(&a, "bystander", suspend_once, NULL, KL_FIBER_PRIO_NORMAL);
    kl_fiber_spawn(&b, "deep-diver", overflow, NULL, KL_FIBER_PRIO_NORMAL);
    kl_sched_run();
}

KT_DEATH_TEST(crash_dump_lists_fibers, "fiber 0:1 bystander            suspended")
{
    kl_crash_install();
    up(4);
    kl_fiber_id a, b;
    kl_fiber_spawn(&a, "bystander", suspend_once, NULL, KL_FIBER_PRIO_NORMAL);
    kl_fiber_spawn(&b, "deep-diver", overflow, NULL, KL_FIBER_PRIO_NORMAL);
    kl_sched_run();
}

static void dump_to_stderr(void) { kl_sched_dump(STDERR_FILENO); }

/* Capture kl_sched_dump(). */
static void dump_to(char *buf, size_t cap) { kt_capture_stderr(dump_to_stderr, buf, cap); }

KT_TEST(dump_lists_every_fiber)
{
    up(8);
    kl_fiber_id sleeper, joiner, fresh, done;
    KT_EQ_I(kl_fiber_spawn(&sleeper, "sleeper", suspend_once, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_spawn(&joiner, "joiner", join_forever_sleeper, &sleeper, KL_FIBER_PRIO_HIGH),
            0);
    KT_EQ_I(kl_fiber_spawn(&done, "finished", return_arg, (void *)77, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_sched_run(), 2);
    KT_EQ_I(kl_fiber_spawn(&fresh, "fresh", return_arg, NULL, KL_FIBER_PRIO_NORMAL), 0);
    KT_EQ_I(kl_fiber_cancel(fresh), 0);
    static char out[4096];
    dump_to(out, sizeof out);
    KT_CHECK(strstr(out, "keel: fibers: 3 live, 1 ready, 2 suspended, 8 slots") != NULL);
    KT_CHECK(strstr(out, "fiber 0:1 sleeper              suspended normal waits on test event") !=
             NULL);
    KT_CHECK(strstr(out, "fiber 1:1 joiner               suspended high waits on join sleeper") !=
             NULL);
    KT_CHECK(strstr(out, "fiber 2:1 finished             done      normal result 77") != NULL);
    KT_CHECK(strstr(out, "fiber 3:1 fresh                ready     normal cancelled") != NULL);
    if (kt_failed())
        fprintf(stderr, "dump was:\n%s", out);
    KT_EQ_I(kl_fiber_resume(sleeper, 0), 0);
    KT_EQ_I(kl_sched_run(), 0);
    down();
}
