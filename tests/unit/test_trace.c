/* Tests for keel/trace.h. This file is always built with
 * -finstrument-functions (tests/CMakeLists.txt), whatever KEEL_TRACE says:
 * calls are recorded, the ring is printed on a crash with function names,
 * and KL_NOTRACE functions stay out. */
#include "keel/trace.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "keel/assert.h"
#include "kt.h"

/* Not static, so that backtrace_symbols_fd can name them. */
int traced_leaf(int x);
int traced_middle(int x);
int untraced_helper(int x) KL_NOTRACE;

__attribute__((noinline)) int traced_leaf(int x) { return x * 3; }
__attribute__((noinline)) int untraced_helper(int x) { return x + 1; }
__attribute__((noinline)) int traced_middle(int x) { return traced_leaf(untraced_helper(x)); }

KT_TEST(trace_records_calls)
{
    volatile int v = traced_middle(4);
    KT_EQ_I(v, 15);
    KT_CHECK(kl_trace_active());
}

KT_DEATH_TEST(trace_is_printed_on_a_crash, "trace: enter traced_leaf (")
{
    kl_crash_install();
    kl_trace_install();
    volatile int v = traced_middle(1);
    (void)v;
    KL_PANIC("stop here");
}

KT_TEST(trace_names_calls_and_leaves_out_notrace)
{
    volatile int v = traced_middle(2);
    (void)v;
    static char out[1 << 17];
    kt_capture_stderr(kl_trace_dump, out, sizeof out);
    KT_CHECK(strstr(out, "trace: enter traced_middle (") != NULL);
    KT_CHECK(strstr(out, "trace: enter traced_leaf (") != NULL);
    KT_CHECK(strstr(out, "trace: exit  traced_middle (") != NULL);
    KT_CHECK(strstr(out, "untraced_helper") == NULL);
}
