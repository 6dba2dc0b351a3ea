/* The function-call trace (keel/trace.h).
 *
 * GCC and clang call __cyg_profile_func_enter/exit around every function of
 * code built with -finstrument-functions; those hooks (trace_hooks.c) are
 * part of libkeel only in the trace build (KEEL_TRACE=ON), so that an
 * ordinary libkeel defines no names outside its API. Each thread keeps a ring of its
 * last KL_TRACE_RING events in memory mapped on its first event (so threads
 * of an uninstrumented program cost nothing). Nothing here may itself be
 * instrumented, allocate with malloc, or take a lock: it runs inside every
 * call, including those of the allocator's callers and signal handlers.
 */
#define _GNU_SOURCE
#include "keel/trace.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "keel/assert.h"
#include "keel/clock.h"

#include "trace_internal.h"

struct trace_event {
    void *fn;
    void *site;
    uint64_t tsc; /* low bit: 1 enter, 0 exit */
};

struct trace_ring {
    uint64_t next; /* events written so far */
    struct trace_event events[KL_TRACE_RING];
};

static __thread struct trace_ring *ring;
static __thread bool ring_failed;
static bool any_recorded;

KL_NOTRACE void trace_record(void *fn, void *site, uint64_t enter)
{
    struct trace_ring *r = ring;
    if (KL_UNLIKELY(!r)) {
        if (ring_failed)
            return;
        void *m = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            ring_failed = true;
            return;
        }
        ring = r = m;
        any_recorded = true;
    }
    struct trace_event *e = &r->events[r->next % KL_TRACE_RING];
    e->fn = fn;
    e->site = site;
    e->tsc = (kl_rdtsc() & ~UINT64_C(1)) | enter;
    r->next++;
}

bool kl_trace_active(void) { return any_recorded; }

/* Write "enter name (object+offset)" for one event. dladdr reads the
 * dynamic symbol table only, as backtrace_symbols_fd does; static functions
 * show as object+offset (addr2line resolves them). */
static KL_NOTRACE void write_event(const struct trace_event *e)
{
    char line[256];
    Dl_info info;
    const char *what = e->tsc & 1 ? "enter" : "exit ";
    if (dladdr(e->fn, &info) && info.dli_fname) {
        const char *obj = strrchr(info.dli_fname, '/');
        obj = obj ? obj + 1 : info.dli_fname;
        uintptr_t off = (uintptr_t)e->fn - (uintptr_t)info.dli_fbase;
        if (info.dli_sname && info.dli_saddr == e->fn)
            snprintf(line, sizeof line, "trace: %s %s (%s+%#lx)\n", what, info.dli_sname, obj,
                     (unsigned long)off);
        else
            snprintf(line, sizeof line, "trace: %s %s+%#lx\n", what, obj, (unsigned long)off);
    } else {
        snprintf(line, sizeof line, "trace: %s %p\n", what, e->fn);
    }
    kl_crash_write(line);
}

KL_NOTRACE void kl_trace_dump(void)
{
    struct trace_ring *r = ring;
    if (!r) {
        kl_crash_write("trace: no calls recorded in this thread\n");
        return;
    }
    /* Snapshot the end: in a traced build, calls made while dumping add
     * events of their own. */
    uint64_t end = r->next;
    uint64_t n = end < KL_TRACE_RING ? end : KL_TRACE_RING;
    char line[96];
    snprintf(line, sizeof line, "trace: last %llu of %llu calls in this thread, oldest first\n",
             (unsigned long long)n, (unsigned long long)end);
    kl_crash_write(line);
    for (uint64_t i = end - n; i < end; i++)
        write_event(&r->events[i % KL_TRACE_RING]);
}

static KL_NOTRACE void dump_on_crash(int sig, const siginfo_t *info, void *arg)
{
    (void)sig, (void)info, (void)arg;
    kl_trace_dump();
}

KL_NOTRACE void kl_trace_install(void)
{
    static bool installed;
    if (installed)
        return;
    installed = true;
    kl_crash_add_hook(dump_on_crash, NULL);
}
