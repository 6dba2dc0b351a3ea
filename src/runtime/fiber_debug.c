/* Fiber diagnostics: dump, hogger report, crash hook (keel/fiber.h).
 *
 * Everything here may run on the crash path (in a signal handler, on the
 * alternate stack), so it formats with snprintf into stack buffers and writes
 * with write(2), as keel/assert.h does. The crash hook is process-wide and
 * added once; it reads the faulting thread's scheduler from thread-local
 * storage. A SIGSEGV or SIGBUS whose address lies in one of that scheduler's
 * guard pages is a stack overflow of the fiber whose stack sits just above it.
 */
#include "keel/fiber.h"
#include "keel/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keel/assert.h"

#include "fiber_internal.h"

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0)
            return; /* best effort: this may run while the process dies */
        buf += n;
        len -= (size_t)n;
    }
}

static void write_line(int fd, char *buf, int n, size_t cap)
{
    if (n < 0)
        return;
    write_all(fd, buf, (size_t)n < cap ? (size_t)n : cap - 1);
}

/* Fibers a crash report lists; the rest are counted (100,000 lines would
 * bury the report). kl_sched_dump() lists them all. */
#define CRASH_DUMP_FIBERS 256

static void dump(const struct kl_sched *s, int fd, uint32_t limit)
{
    char line[256];
    uint32_t ready = s->main.state == KL_FIBER_READY; /* the lists are not walked in a crash */
    for (uint32_t i = 0; i < s->capacity; i++)
        ready += s->fibers[i].state == KL_FIBER_READY;
    int n = snprintf(line, sizeof line,
                     "keel: fibers: %u live, %u ready, %u suspended, %u slots, %" PRIu64
                     " switches, current %s\n",
                     s->live, ready, s->suspended, s->capacity, s->switches, s->current->name);
    write_line(fd, line, n, sizeof line);
    uint32_t listed = 0, unlisted = 0;
    for (uint32_t i = 0; i < s->capacity; i++) {
        const struct kl_fiber *f = &s->fibers[i];
        if (f->state == KL_FIBER_FREE)
            continue;
        if (listed == limit) {
            unlisted++;
            continue;
        }
        listed++;
        char wait[96] = "";
        if (f->state == KL_FIBER_SUSPENDED)
            snprintf(wait, sizeof wait, " waits on %s%s%s%s", f->wait_what,
                     f->wait_detail ? " " : "", f->wait_detail ? f->wait_detail : "",
                     f->timer_armed ? " (with timeout)" : "");
        else if (f->state == KL_FIBER_DONE)
            snprintf(wait, sizeof wait, " result %" PRIdPTR, f->result);
        n = snprintf(line, sizeof line, "  fiber %u:%u %-20s %-9s %s%s%s%s\n", f->index,
                     f->incarnation, f->name, kl_fiber__state_name(f->state),
                     f->prio == KL_FIBER_PRIO_HIGH ? "high" : "normal", wait,
                     f->cancelled ? " cancelled" : "", f->detached ? " detached" : "");
        write_line(fd, line, n, sizeof line);
    }
    if (unlisted) {
        n = snprintf(line, sizeof line, "  (%u more fibers not listed)\n", unlisted);
        write_line(fd, line, n, sizeof line);
    }
}

void kl_sched_dump(int fd)
{
    const struct kl_sched *s = kl_sched__tls;
    if (s == NULL) {
        static const char none[] = "keel: no fiber scheduler on this thread\n";
        write_all(fd, none, sizeof none - 1);
        return;
    }
    dump(s, fd, UINT32_MAX);
}

/* ---- hogger --------------------------------------------------------------- */

static void default_hog_reporter(const char *name, kl_fiber_id id, uint64_t ran_ns,
                                 uint64_t limit_ns)
{
    uint64_t raw = kl_fiber_id_raw(id);
    KL_WARN("hogger: fiber %s (id %" PRIu32 ":%" PRIu32 ") ran %.3f ms without yielding "
            "(limit %.3f ms)",
            name, (uint32_t)raw, (uint32_t)(raw >> 32), (double)ran_ns / 1e6,
            (double)limit_ns / 1e6);
}

static kl_fiber_hog_fn hog_reporter = default_hog_reporter;

void kl_sched_set_hog_reporter(kl_fiber_hog_fn fn)
{
    hog_reporter = fn ? fn : default_hog_reporter;
}

void kl_sched__report_hog(struct kl_sched *s, struct kl_fiber *f, uint64_t ran_ns)
{
    hog_reporter(f->name, kl_fiber__id(f), ran_ns, s->hog_threshold_ns);
}

/* ---- crash hook ----------------------------------------------------------- */

static void crash_hook(int sig, const siginfo_t *info, void *arg)
{
    (void)arg;
    const struct kl_sched *s = kl_sched__tls;
    if (s == NULL)
        return;
    if ((sig == SIGSEGV || sig == SIGBUS) && info != NULL) {
        const char *addr = info->si_addr;
        if (addr >= s->map && addr < s->map + s->map_len) {
            size_t off = (size_t)(addr - s->map);
            const struct kl_fiber *f = &s->fibers[off / s->slot_size];
            if (off % s->slot_size < s->guard_size) {
                char line[160];
                int n = snprintf(line, sizeof line,
                                 "keel: stack overflow in fiber %s (id %u:%u), fault address %p, "
                                 "stack size %zu\n",
                                 f->name, f->index, f->incarnation, info->si_addr, s->stack_size);
                write_line(STDERR_FILENO, line, n, sizeof line);
            }
        }
    }
    dump(s, STDERR_FILENO, CRASH_DUMP_FIBERS);
}

static pthread_once_t crash_hook_once = PTHREAD_ONCE_INIT;

static void add_crash_hook(void)
{
    /* -ENOSPC (every hook slot taken) leaves fibers out of crash reports; the
     * process still works, so it is not a reason to fail kl_sched_init(). */
    (void)kl_crash_add_hook(crash_hook, NULL);
}

void kl_sched__install_crash_hook(void) { pthread_once(&crash_hook_once, add_crash_hook); }
