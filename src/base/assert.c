/* Assertions, panics and fatal-signal reports (keel/assert.h).
 *
 * Everything that runs once the process is known to be broken is
 * async-signal-safe: messages are formatted into a stack buffer and written
 * with write(2); backtraces use glibc's backtrace_symbols_fd, which does not
 * allocate. backtrace() itself loads libgcc on first use, so it is primed
 * once at install time, outside any handler. Signal handlers run on an
 * alternate stack, so a thread that overflowed its stack can still report.
 */
#include "keel/assert.h"

#include <errno.h>
#include <execinfo.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KL_CRASH_MAX_HOOKS 8
#define KL_BACKTRACE_DEPTH 64
#define KL_ALTSTACK_SIZE   (64 * 1024)

struct crash_hook {
    kl_crash_hook_fn fn;
    void *arg;
};

static struct crash_hook crash_hooks[KL_CRASH_MAX_HOOKS];
static int crash_hook_count;
static atomic_flag crash_in_progress = ATOMIC_FLAG_INIT;
static bool crash_installed;

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

KL_NOTRACE void kl_crash_write(const char *s) { kl_crash_write_n(s, strlen(s)); }

KL_NOTRACE void kl_crash_write_n(const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

void kl_print_backtrace(void)
{
    void *frames[KL_BACKTRACE_DEPTH];
    int n = backtrace(frames, KL_BACKTRACE_DEPTH);
    kl_crash_write("backtrace:\n");
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
}

static void run_hooks(int sig, const siginfo_t *info)
{
    for (int i = crash_hook_count - 1; i >= 0; i--)
        crash_hooks[i].fn(sig, info, crash_hooks[i].arg);
}

/* Restore the default action and re-raise, so the process dies of the
 * original signal (and dumps core where that is enabled). */
static __attribute__((noreturn)) void die_of(int sig)
{
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig);
}

static __attribute__((noreturn)) void crash_stop(void)
{
    /* A second crash while reporting the first: do not recurse. */
    if (atomic_flag_test_and_set(&crash_in_progress))
        die_of(SIGABRT);
    run_hooks(0, NULL);
    kl_print_backtrace();
    die_of(SIGABRT);
}

/* Print "keel: HEAD at FILE:LINE in FUNC()" and the formatted message, which
 * starts with its own separator (": ..."). */
static void vreport(const char *head, const char *file, int line, const char *func, const char *fmt,
                    va_list ap)
{
    char buf[1024];
    int off = snprintf(buf, sizeof buf, "keel: %s at %s:%d in %s()", head, file, line, func);
    if (off < 0 || (size_t)off >= sizeof buf)
        off = 0;
    if (strcmp(fmt, ": ") != 0)
        vsnprintf(buf + off, sizeof buf - (size_t)off, fmt, ap);
    kl_crash_write(buf);
    kl_crash_write("\n");
}

void kl_assert_fail(const char *cond, const char *file, int line, const char *func, const char *fmt,
                    ...)
{
    char head[512];
    snprintf(head, sizeof head, "assertion failed: `%s`", cond);
    va_list ap;
    va_start(ap, fmt);
    vreport(head, file, line, func, fmt, ap);
    va_end(ap);
    crash_stop();
}

void kl_panic_at(const char *file, int line, const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char with_sep[512];
    snprintf(with_sep, sizeof with_sep, ": %s", fmt);
    vreport("panic", file, line, func, with_sep, ap);
    va_end(ap);
    crash_stop();
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
    }
}

static void fatal_signal_handler(int sig, siginfo_t *info, void *ucontext)
{
    (void)ucontext;
    if (atomic_flag_test_and_set(&crash_in_progress))
        die_of(sig);
    char buf[128];
    snprintf(buf, sizeof buf, "keel: fatal signal %s (%d), fault address %p\n", signal_name(sig),
             sig, info ? info->si_addr : NULL);
    kl_crash_write(buf);
    run_hooks(sig, info);
    kl_print_backtrace();
    die_of(sig);
}

/* Each thread needs its own alternate stack; the main thread gets one here,
 * other threads call kl_crash_install() too (it only adds the stack). */
static void install_altstack(void)
{
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && !(current.ss_flags & SS_DISABLE))
        return;
    stack_t ss = {.ss_sp = malloc(KL_ALTSTACK_SIZE), .ss_size = KL_ALTSTACK_SIZE, .ss_flags = 0};
    if (ss.ss_sp == NULL || sigaltstack(&ss, NULL) != 0)
        KL_PANIC("cannot install an alternate signal stack: %s", strerror(errno));
}

void kl_crash_install(void)
{
    install_altstack();
    if (crash_installed)
        return;
    crash_installed = true;

    void *prime[1];
    backtrace(prime, 1); /* load libgcc's unwinder now, not in a handler */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fatal_signal_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        if (sigaction(fatal_signals[i], &sa, NULL) != 0)
            KL_PANIC("sigaction(%d): %s", fatal_signals[i], strerror(errno));
}

int kl_crash_add_hook(kl_crash_hook_fn fn, void *arg)
{
    KL_ASSERT(fn != NULL);
    if (crash_hook_count == KL_CRASH_MAX_HOOKS)
        return -ENOSPC;
    crash_hooks[crash_hook_count++] = (struct crash_hook){fn, arg};
    return 0;
}

int kl_crash_remove_hook(kl_crash_hook_fn fn, void *arg)
{
    for (int i = 0; i < crash_hook_count; i++) {
        if (crash_hooks[i].fn == fn && crash_hooks[i].arg == arg) {
            memmove(&crash_hooks[i], &crash_hooks[i + 1],
                    (size_t)(crash_hook_count - i - 1) * sizeof crash_hooks[0]);
            crash_hook_count--;
            return 0;
        }
    }
    return -ENOENT;
}
