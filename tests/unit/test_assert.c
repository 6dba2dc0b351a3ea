/* Tests for keel/assert.h: assertion and panic messages name the invariant
 * and print a backtrace; fatal signals are reported; crash hooks run. */
#include "keel/assert.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "kt.h"

KT_TEST(assert_true_is_silent)
{
    int x = 1;
    KL_ASSERT(x == 1, "x is %d", x);
    KL_ASSERT(x == 1);
}

KT_DEATH_TEST(assert_message_names_invariant, "assertion failed: `queue_len < 4`")
{
    int queue_len = 7;
    KL_ASSERT(queue_len < 4, "queue holds %d entries", queue_len);
}

KT_DEATH_TEST(assert_message_has_formatted_text, "queue holds 7 entries")
{
    int queue_len = 7;
    KL_ASSERT(queue_len < 4, "queue holds %d entries", queue_len);
}

KT_DEATH_TEST(assert_prints_backtrace, "backtrace:") { KL_ASSERT(getpid() == 0); }

KT_DEATH_TEST(panic_message, "panic at ") { KL_PANIC("the disk is on fire (%d)", 451); }

static void hook(int sig, const siginfo_t *info, void *arg)
{
    (void)sig;
    (void)info;
    kl_crash_write((const char *)arg);
}

KT_DEATH_TEST(panic_runs_hooks, "hook ran")
{
    kl_crash_add_hook(hook, "hook ran\n");
    KL_PANIC("stop");
}

KT_DEATH_TEST(segv_is_reported_with_backtrace, "fatal signal SIGSEGV")
{
    kl_crash_install();
    static volatile uintptr_t bad_address = 16;
    *(volatile int *)bad_address = 1;
}

static volatile int recursion_limit = 1 << 30; /* far past any stack */

static int recurse(int depth)
{
    volatile char pad[1024];
    pad[0] = (char)depth;
    if (depth == recursion_limit)
        return 0;
    return recurse(depth + 1) + pad[0];
}

/* A stack overflow is reported from the alternate stack. */
KT_DEATH_TEST(stack_overflow_is_reported, "fatal signal SIGSEGV")
{
    kl_crash_install();
    recurse(0);
}

KT_TEST(crash_hooks_add_remove)
{
    KT_EQ_I(kl_crash_remove_hook(hook, NULL), -ENOENT);
    KT_EQ_I(kl_crash_add_hook(hook, NULL), 0);
    KT_EQ_I(kl_crash_remove_hook(hook, NULL), 0);
    int added = 0;
    while (kl_crash_add_hook(hook, NULL) == 0)
        added++;
    KT_EQ_I(added, 8);
    while (kl_crash_remove_hook(hook, NULL) == 0)
        added--;
    KT_EQ_I(added, 0);
}
