/* keel/assert.h: assertions, panics and crash reports.
 *
 * KL_ASSERT(cond, fmt, ...) stops the process when an invariant is broken,
 * printing the condition, a message that names the invariant, the source
 * location and a backtrace. Assertions stay on in release builds: keel treats
 * a broken invariant as fatal, never as something to run past. Bad input from
 * outside is never an assertion: it gets an error return.
 *
 * kl_crash_install() adds handlers for fatal signals (SIGSEGV, SIGBUS, SIGILL,
 * SIGFPE, SIGABRT) that print the signal, the faulting address and a
 * backtrace on an alternate stack, so that even a stack overflow is reported.
 * Higher layers add hooks (a fiber dump, a log flush) with kl_crash_add_hook().
 */
#ifndef KEEL_ASSERT_H
#define KEEL_ASSERT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#define KL_LIKELY(x)   __builtin_expect(!!(x), 1)
#define KL_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Leave a function out of the optional call trace (keel/trace.h). */
#define KL_NOTRACE     __attribute__((no_instrument_function))

/* Stop the process: `cond` is false. Use through KL_ASSERT, which passes the
 * message format with a ": " prefix (so it is never empty). */
__attribute__((noreturn, cold, format(printf, 5, 6))) void
kl_assert_fail(const char *cond, const char *file, int line, const char *func, const char *fmt,
               ...);

/* Stop the process with a message. Use through KL_PANIC. */
__attribute__((noreturn, cold, format(printf, 4, 5))) void
kl_panic_at(const char *file, int line, const char *func, const char *fmt, ...);

/* Check an invariant; the optional printf-style message names it. */
#define KL_ASSERT(cond, ...)                                                                       \
    do {                                                                                           \
        if (KL_UNLIKELY(!(cond)))                                                                  \
            kl_assert_fail(#cond, __FILE__, __LINE__, __func__, ": " __VA_ARGS__);                 \
    } while (0)

/* Stop the process with a printf-style message and a backtrace. */
#define KL_PANIC(...) kl_panic_at(__FILE__, __LINE__, __func__, __VA_ARGS__)

/* Called on a panic (sig == 0, info == NULL) or a fatal signal, before the
 * backtrace. Runs in a signal handler: it must be async-signal-safe. */
typedef void (*kl_crash_hook_fn)(int sig, const siginfo_t *info, void *arg);

/* Install the fatal-signal handlers (idempotent; per process). */
void kl_crash_install(void);

/* Add a hook that runs on a crash, most recently added first; 0 or -ENOSPC. */
int kl_crash_add_hook(kl_crash_hook_fn fn, void *arg);

/* Remove a hook added with the same fn and arg; 0 or -ENOENT. */
int kl_crash_remove_hook(kl_crash_hook_fn fn, void *arg);

/* Print a backtrace of the calling thread to stderr (async-signal-safe). */
void kl_print_backtrace(void);

/* Write a string to stderr with write(2) only (async-signal-safe). */
void kl_crash_write(const char *s);

/* Write `len` bytes to stderr with write(2) only, retrying short writes. */
void kl_crash_write_n(const char *s, size_t len);

#endif /* KEEL_ASSERT_H */
