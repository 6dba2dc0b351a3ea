/* Tests for many fibers (keel/fiber.h): 100,000 parked in one scheduler,
 * each suspended, then all resumed and joined, with /proc/self/maps far
 * below vm.max_map_count and a rough figure of memory per parked fiber; a
 * stack overflow in one fiber among 100,000 caught and named; the mprotect
 * fallback's guards (two mappings per stack) still catch an overflow;
 * kl_sched_trim() gives free stacks' memory back and keeps their guards.
 *
 * The 100,000 runs in the ASan build too: a parked fiber's stack has clean
 * shadow until it is used, and fiber.c unpoisons only used stacks. */
#include "keel/fiber.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/assert.h"

#include "fiber_kit.h"
#include "kt.h"

#define MANY 100000u

#if defined(KEEL_SANITIZE) || defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

/* Lines of /proc/self/maps: the process's mappings (VMAs). */
static long maps_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = 65530; /* the kernel's default */
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

/* Resident bytes of the process (/proc/self/statm). */
static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

/* Skip (true) when this kernel has no guard regions: then 100,000 stacks
 * would need 200,000 mappings. */
static bool no_guard_regions(void)
{
    up(4);
    enum kl_stack_guard g = kl_sched_stack_guard();
    down();
    return g != KL_STACK_GUARD_REGION;
}

static unsigned parked_now, woken;

/* Parks once; returns its argument plus what the resume passed. */
static intptr_t park(void *arg)
{
    parked_now++;
    int rc = kl_fiber_suspend("parked", KL_FIBER_FOREVER);
    parked_now--;
    woken++;
    return (intptr_t)arg + rc;
}

static kl_fiber_id ids[MANY];

KT_TEST(park_100k_fibers)
{
    if (no_guard_regions())
        KT_SKIP("kernel lacks MADV_GUARD_INSTALL (Linux 6.13+): mprotect guards cost two "
                "mappings per stack, so vm.max_map_count caps fibers near 32k");
    long before_maps = maps_lines();
    long rss_none = rss_bytes();
    up(MANY);
    KT_EQ_I(kl_sched_stack_guard(), KL_STACK_GUARD_REGION);
    long rss0 = rss_bytes();
    parked_now = woken = 0;
    for (unsigned i = 0; i < MANY; i++)
        KT_REQUIRE(kl_fiber_spawn(&ids[i], "parked", park, (void *)(intptr_t)i,
                                  KL_FIBER_PRIO_NORMAL) == 0);
    kl_fiber_id extra;
    KT_EQ_I(kl_fiber_spawn(&extra, "one-too-many", park, NULL, KL_FIBER_PRIO_NORMAL), -EAGAIN);
    KT_EQ_I(kl_sched_run(), MANY); /* every one parked */
    KT_EQ_U(parked_now, MANY);
    long rss1 = rss_bytes();
    long maps = maps_lines();
    long limit = max_map_count();
    printf("  %u parked: /proc/self/maps %ld lines (%ld before the scheduler; limit %ld); "
           "RSS per parked fiber %.0f bytes, %.0f with its slot in the fiber table\n",
           MANY, maps, before_maps, limit, (double)(rss1 - rss0) / MANY,
           (double)(rss1 - rss_none) / MANY);
    KT_CHECK(maps >= 0 && maps < limit / 16);
    KT_CHECK(maps - before_maps < 16); /* the stacks are a handful of mappings, not 100k */
#if !UNDER_ASAN
    /* One or two touched stack pages plus page tables; not the 64 KiB stack. */
    KT_CHECK(rss1 - rss0 < (long)MANY * 16 * 1024);
#endif
    KT_EQ_I(kl_fiber_state(ids[MANY / 2]), KL_FIBER_SUSPENDED);
    for (unsigned i = 0; i < MANY; i++)
        KT_REQUIRE(kl_fiber_resume(ids[i], 1) == 0);
    KT_EQ_I(kl_sched_run(), 0);
    KT_EQ_U(woken, MANY);
    unsigned bad = 0;
    for (unsigned i = 0; i < MANY; i++) {
        intptr_t r = -1;
        bad += kl_fiber_join(ids[i], &r) != 0 || r != (intptr_t)i + 1;
    }
    KT_EQ_U(bad, 0);
    /* the slots are free again: a second round reuses them */
    for (unsigned i = 0; i < 1000; i++)
        KT_REQUIRE(kl_fiber_spawn(&ids[i], "again", return_arg, NULL, KL_FIBER_PRIO_NORMAL) == 0);
    KT_EQ_I(kl_sched_run(), 0);
    for (unsigned i = 0; i < 1000; i++)
        KT_EQ_I(kl_fiber_join(ids[i], NULL), 0);
    down();
}

/* Park `n` fibers, then run one that overflows its stack. */
static void overflow_among(uint32_t n, enum kl_stack_guard guard)
{
    kl_crash_install();
    struct kl_sched_config cfg = {.max_fibers = n + 1, .guard = guard};
    KL_ASSERT(kl_sched_init(&cfg) == 0);
    for (uint32_t i = 0; i < n; i++)
        KL_ASSERT(kl_fiber_spawn(&ids[i], "parked", park, NULL, KL_FIBER_PRIO_NORMAL) == 0);
    KL_ASSERT(kl_sched_run() == (int)n);
    kl_fiber_id diver;
    KL_ASSERT(kl_fiber_spawn(&diver, "deep-diver", overflow, NULL, KL_FIBER_PRIO_NORMAL) == 0);
    kl_sched_run();
}

KT_DEATH_TEST(overflow_among_100k_is_named, "stack overflow in fiber deep-diver (id 100000:1)")
{
    if (no_guard_regions())
        KT_SKIP("kernel lacks MADV_GUARD_INSTALL (Linux 6.13+): 100,000 guarded stacks would "
                "need 200,000 mappings");
    overflow_among(MANY, KL_STACK_GUARD_REGION);
}

/* The crash report lists 256 fibers and counts the rest: 1000 parked and
 * the diver, 1001 in all. */
KT_DEATH_TEST(crash_dump_is_capped, "(745 more fibers not listed)")
{
    overflow_among(1000, KL_STACK_GUARD_AUTO);
}

KT_DEATH_TEST(overflow_with_mprotect_guards_is_named,
              "stack overflow in fiber deep-diver (id 1000:1)")
{
    overflow_among(1000, KL_STACK_GUARD_MPROTECT);
}

KT_TEST(mprotect_guards_cost_two_mappings_per_stack)
{
    long before = maps_lines();
    struct kl_sched_config cfg = {.max_fibers = 1000, .guard = KL_STACK_GUARD_MPROTECT};
    KT_REQUIRE(kl_sched_init(&cfg) == 0);
    KT_EQ_I(kl_sched_stack_guard(), KL_STACK_GUARD_MPROTECT);
    long during = maps_lines();
    down();
    printf("  1000 stacks with mprotect guards: %ld more mappings\n", during - before);
    KT_CHECK(during - before >= 2 * 1000 - 2);
    /* a bad guard kind */
    cfg.guard = (enum kl_stack_guard)7;
    KT_EQ_I(kl_sched_init(&cfg), -EINVAL);
}

/* Under ASan a burst costs ~10x (shadow for every touched byte, on a loaded
 * 2-core machine 20 s): what trimming does does not depend on the count. */
#define BURST (UNDER_ASAN ? 5000u : 20000u)
#define TOUCH (16 * 1024)

/* Touches TOUCH bytes of its stack, then parks. */
static intptr_t touch_and_park(void *arg)
{
    char buf[TOUCH];
    memset(buf, 1, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory"); /* the buffer escapes: clang keeps it whole */
    return park(arg) + buf[TOUCH / 2];
}

/* BURST fibers touch their stacks, park, are resumed and joined; false
 * (a failure recorded) if any step failed. */
static bool burst(void)
{
    int bad = 0;
    for (unsigned i = 0; i < BURST; i++)
        bad += kl_fiber_spawn(&ids[i], "burst", touch_and_park, NULL, KL_FIBER_PRIO_NORMAL) != 0;
    bad += kl_sched_run() != BURST;
    for (unsigned i = 0; i < BURST; i++)
        bad += kl_fiber_resume(ids[i], 0) != 0;
    bad += kl_sched_run() != 0;
    for (unsigned i = 0; i < BURST; i++)
        bad += kl_fiber_join(ids[i], NULL) != 0;
    KT_EQ_I(bad, 0);
    return bad == 0;
}

KT_TEST(trim_gives_free_stacks_back)
{
    up(BURST);
    KT_REQUIRE(burst());
    long before = rss_bytes(); /* every slot free, its stack still backed */
    KT_EQ_U(kl_sched_trim(100), BURST - 100);
    long after = rss_bytes();
    printf("  trim of %u free stacks: RSS %.1f -> %.1f MB\n", BURST - 100, before / 1e6,
           after / 1e6);
    KT_CHECK(before - after >= (long)(BURST - 100) * TOUCH * 9 / 10);
    KT_EQ_U(kl_sched_trim(100), 0); /* nothing warm is left beyond the kept ones */
    KT_EQ_U(kl_sched_trim(0), 100);
    /* trimmed stacks work again */
    KT_REQUIRE(burst());
    down();
}

/* After a trim, the slot's guard still catches an overflow. */
static void overflow_after_trim(enum kl_stack_guard guard)
{
    kl_crash_install();
    struct kl_sched_config cfg = {.max_fibers = 4, .guard = guard};
    KL_ASSERT(kl_sched_init(&cfg) == 0);
    for (int i = 0; i < 4; i++)
        KL_ASSERT(kl_fiber_spawn(&ids[i], "first", return_arg, NULL, KL_FIBER_PRIO_NORMAL) == 0);
    for (int i = 0; i < 4; i++)
        KL_ASSERT(kl_fiber_join(ids[i], NULL) == 0);
    KL_ASSERT(kl_sched_trim(0) == 4);
    kl_fiber_id diver; /* slot 3, freed last, comes first */
    KL_ASSERT(kl_fiber_spawn(&diver, "deep-diver", overflow, NULL, KL_FIBER_PRIO_NORMAL) == 0);
    kl_sched_run();
}

KT_DEATH_TEST(overflow_after_trim_is_named, "stack overflow in fiber deep-diver (id 3:2)")
{
    overflow_after_trim(KL_STACK_GUARD_AUTO);
}

KT_DEATH_TEST(overflow_after_trim_mprotect_is_named, "stack overflow in fiber deep-diver (id 3:2)")
{
    overflow_after_trim(KL_STACK_GUARD_MPROTECT);
}
