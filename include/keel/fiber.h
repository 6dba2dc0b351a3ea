/* keel/fiber.h: fibers and the per-thread scheduler below the reactor.
 *
 * A thread that calls kl_sched_init() owns a scheduler: a fixed table of
 * fiber slots, each with a stack carved from one mapping (a guard page below
 * every stack), and one FIFO ready queue per priority. Spawning takes a free
 * slot: no allocation after kl_sched_init(). Fibers never leave their thread.
 *
 * Many fibers: stacks cost address space until touched (a parked fiber
 * typically backs one or two pages of its stack), and the guards are guard
 * regions (madvise MADV_GUARD_INSTALL, Linux 6.13+), which live in the page
 * tables: however many slots, the stacks are one entry in /proc/self/maps,
 * so 100,000 fibers and more fit under vm.max_map_count. On older kernels the
 * guards are mprotect'ed pages, two mappings per stack, which caps a process
 * near 32,000 slots (kl_sched_init() then fails with -ENOMEM).
 *
 * A switch goes straight from one fiber to the next ready one (highest
 * priority first, FIFO within a priority) through a 16-instruction assembly
 * routine. The thread's own stack, the "main context", runs only when no
 * fiber is ready: kl_sched_run() lives there, and so will the reactor. The
 * seam for it is struct kl_sched_hooks: `idle` blocks for I/O and timers when
 * nothing is ready, `timeout_arm`/`timeout_disarm` give kl_fiber_suspend() a
 * timeout (the timer wheel calls kl_fiber_expire() when one fires).
 *
 * kl_fiber_suspend()/kl_fiber_resume() are the one blocking primitive; join,
 * groups, and later sync objects and I/O are built on them. Cancellation is
 * cooperative and sticky: a cancelled fiber's current and every later suspend
 * returns -ECANCELED, so it unwinds at its next blocking point.
 *
 * Fiber ids (kl_fiber_id) carry the slot index and the slot's incarnation, so
 * a handle to a fiber that has ended and whose slot was reused is rejected
 * with -ESRCH rather than reaching the new fiber.
 *
 * Diagnostics: a fault in a guard page is reported on the crash path as
 * "stack overflow in fiber NAME (id SLOT:INCARNATION)", every crash and panic
 * dumps the thread's fibers (the first 256, then a count), kl_sched_dump()
 * dumps them all on demand, and a fiber that runs longer than a threshold
 * without switching is reported ("hogger").
 * The crash reports need keel's handlers: call kl_crash_install() on the
 * thread (kl_sched_init() only adds the hook, it installs no signal handler).
 *
 * Not thread-safe by design: every function acts on the calling thread's
 * scheduler and must be called from that thread.
 */
#ifndef KEEL_FIBER_H
#define KEEL_FIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/list.h"
#include "keel/typed_id.h"

/* Raw value: incarnation << 32 | slot index. 0 is never a fiber. */
KL_TYPED_ID(kl_fiber_id, uint64_t);

/* The id that names no fiber. */
#define KL_FIBER_ID_NONE ((kl_fiber_id){0})

/* kl_fiber_suspend() timeout meaning "no timeout". */
#define KL_FIBER_FOREVER UINT64_MAX

/* Fiber-local storage slots per fiber (keys from kl_fiber_key_create()). */
#define KL_FIBER_LOCAL_SLOTS 8

/* Longest fiber name kept, including the terminating NUL; longer is cut. */
#define KL_FIBER_NAME_MAX 32

/* Priorities: a ready fiber of a higher priority always runs first. */
enum kl_fiber_prio { KL_FIBER_PRIO_HIGH = 0, KL_FIBER_PRIO_NORMAL = 1, KL_FIBER_PRIO_COUNT = 2 };

enum kl_fiber_state {
    KL_FIBER_FREE = 0,  /* slot unused (never a live id's state) */
    KL_FIBER_READY,     /* in a ready queue */
    KL_FIBER_RUNNING,   /* the current fiber */
    KL_FIBER_SUSPENDED, /* in kl_fiber_suspend(): waits for resume, cancel or timeout */
    KL_FIBER_DONE,      /* returned; its result waits for kl_fiber_join() */
};

/* A fiber's entry point; its return value is the result kl_fiber_join() gets. */
typedef intptr_t (*kl_fiber_fn)(void *arg);

/* Called by the scheduler; `ctx` is kl_sched_hooks.ctx. */
struct kl_sched_hooks {
    void *ctx;
    /* On the main context, once per loop iteration: after each round of
     * the fibers that were ready (`fibers_ready`: some are ready again, so do
     * not block), and whenever none is ready but some are suspended (block
     * until something can be resumed, resume it). Return 0, or a negative
     * errno that stops kl_sched_run() with that value. */
    int (*idle)(void *ctx, bool fibers_ready);
    /* Arm a timeout for fiber `id` at kl_now() time `deadline_ns`; when it
     * fires, call kl_fiber_expire(id). Store a handle in *token; 0 or -errno. */
    int (*timeout_arm)(void *ctx, kl_fiber_id id, uint64_t deadline_ns, uint64_t *token);
    /* Disarm a timeout that has not fired (its fiber woke for another reason). */
    void (*timeout_disarm)(void *ctx, uint64_t token);
};

/* How the guard page below each stack is made. */
enum kl_stack_guard {
    KL_STACK_GUARD_AUTO = 0,     /* guard regions where the kernel has them, else mprotect */
    KL_STACK_GUARD_REGION = 1,   /* madvise(MADV_GUARD_INSTALL): no mapping of its own */
    KL_STACK_GUARD_MPROTECT = 2, /* PROT_NONE pages: two mappings per stack */
};

struct kl_sched_config {
    uint32_t max_fibers;       /* fiber slots (100,000 is fine); 0 means 1024 */
    size_t stack_size;         /* usable bytes per stack, rounded up to pages; 0 means 64 KiB */
    size_t guard_size;         /* PROT_NONE bytes below each stack, rounded up; 0 means one page */
    uint64_t hog_threshold_ns; /* report fibers running longer without a switch; 0: off */
    enum kl_stack_guard guard; /* AUTO; REGION fails (-ENOMEM) where unsupported */
};

/* Reports a hogger: fiber `name` ran `ran_ns` without switching (limit `limit_ns`). */
typedef void (*kl_fiber_hog_fn)(const char *name, kl_fiber_id id, uint64_t ran_ns,
                                uint64_t limit_ns);

/* Fibers closed together; caller-owned, initialised with kl_fiber_group_init(). */
struct kl_fiber_group {
    struct kl_list members; /* struct kl_fiber, through its group node */
    const char *name;
    struct kl_fiber *closer; /* the fiber waiting in kl_fiber_group_close(), or NULL */
    bool closed;
};

/* A fiber-local storage key (an index below KL_FIBER_LOCAL_SLOTS). */
KL_TYPED_ID(kl_fiber_key, uint32_t);

/* ---- scheduler (one per thread) --------------------------------------- */

/* Create the calling thread's scheduler (cfg may be NULL); 0, -EBUSY, -EINVAL, -ENOMEM. */
int kl_sched_init(const struct kl_sched_config *cfg);

/* Cancel every fiber, let them unwind, release everything; main context only.
 * 0, -ENOENT (no scheduler) or -EBUSY (fibers did not end; nothing released). */
int kl_sched_shutdown(void);

/* True when the calling thread has a scheduler. */
bool kl_sched_active(void);

/* Install the reactor's hooks (NULL removes them). */
void kl_sched_set_hooks(const struct kl_sched_hooks *hooks);

/* Run fibers until none is ready and the idle hook cannot help; main context
 * only. Returns the number of fibers that have not ended (0: all done), or
 * the idle hook's negative errno. */
int kl_sched_run(void);

/* Write every fiber (id, name, state, priority, what it waits on) to `fd`.
 * Async-signal-safe enough for crash reports (snprintf and write only). */
void kl_sched_dump(int fd);

/* Replace the hogger reporter (NULL restores the default, which writes to stderr). */
void kl_sched_set_hog_reporter(kl_fiber_hog_fn fn);

/* This thread's fiber slots: free now, and in all (max_fibers). A fiber
 * that spawns helpers for its own work (not one per client) can keep a
 * reserve free for the fibers the thread needs to go on serving. */
void kl_sched_slots(uint32_t *free, uint32_t *total);

/* Context switches made by this thread's scheduler so far. */
uint64_t kl_sched_switches(void);

/* How this thread's scheduler guards its stacks (REGION or MPROTECT). */
enum kl_stack_guard kl_sched_stack_guard(void);

/* Give the memory of free stacks back to the kernel, all but the `keep` most
 * recently freed (the next spawns take those first): after a burst of
 * fibers, whose stacks stay backed while their slots wait in the free list.
 * One madvise per stack released; returns how many. Guards stay in place. */
uint32_t kl_sched_trim(uint32_t keep);

/* ---- fibers ------------------------------------------------------------- */

/* Start a fiber (ready, not yet running); its id in *id. 0, -EAGAIN when every
 * slot is taken, -EINVAL on a bad argument, -ENOENT without a scheduler. */
int kl_fiber_spawn(kl_fiber_id *id, const char *name, kl_fiber_fn fn, void *arg,
                   enum kl_fiber_prio prio);

/* Let other ready fibers of the same or higher priority run; returns at once if none. */
void kl_fiber_yield(void);

/* Park the calling fiber until kl_fiber_resume() (returns its `result`), a
 * cancel (-ECANCELED) or `timeout_ns` (-ETIMEDOUT; KL_FIBER_FOREVER: none).
 * `what` names the wait in dumps. A timeout needs the timeout hooks
 * (-EOPNOTSUPP without). Callers re-check their condition on return. */
int kl_fiber_suspend(const char *what, uint64_t timeout_ns);

/* Make a suspended fiber ready; its suspend returns `result` (>= 0 by
 * convention). 0, -ESRCH (no such fiber) or -EALREADY (not suspended). */
int kl_fiber_resume(kl_fiber_id id, int result);

/* The timer wheel's call: the timeout armed for `id` fired; its suspend
 * returns -ETIMEDOUT. 0, -ESRCH or -EALREADY. */
int kl_fiber_expire(kl_fiber_id id);

/* Wait for a fiber to end, store its result, free its slot. From the main
 * context this runs the scheduler. 0, -ESRCH, -EDEADLK (self, or nothing can
 * run), -EINVAL (detached), -EBUSY (already joined), -ECANCELED. */
int kl_fiber_join(kl_fiber_id id, intptr_t *result);

/* Join a fiber that works on the caller's own data (its stack, say) and so
 * must end before the caller may unwind: as kl_fiber_join(), but cancelling
 * the caller does not cut the wait short (the caller stays cancelled: its
 * next blocking call sees it). From a fiber only: 0, -ESRCH, -EDEADLK,
 * -EINVAL (detached, or called from the main context), -EBUSY. */
int kl_fiber_await(kl_fiber_id id, intptr_t *result);

/* Free the fiber's slot as soon as it ends; it can no longer be joined. 0, -ESRCH, -EBUSY. */
int kl_fiber_detach(kl_fiber_id id);

/* Mark a fiber cancelled, waking it with -ECANCELED if suspended. 0 or -ESRCH. */
int kl_fiber_cancel(kl_fiber_id id);

/* True when the calling fiber has been cancelled. */
bool kl_fiber_cancelled(void);

/* The calling fiber's id (KL_FIBER_ID_NONE on the main context). */
kl_fiber_id kl_fiber_self(void);

/* The calling fiber's name ("main" on the main context). */
const char *kl_fiber_name(void);

/* A fiber's state, or -ESRCH for a stale or unknown id. */
int kl_fiber_state(kl_fiber_id id);

/* Enter a critical section: until the matching exit, any switch is a KL_ASSERT failure. */
void kl_fiber_critical_enter(void);

/* Leave a critical section (they nest). */
void kl_fiber_critical_exit(void);

/* ---- groups ------------------------------------------------------------- */

/* Initialise an empty, open group; `name` must outlive it. */
void kl_fiber_group_init(struct kl_fiber_group *group, const char *name);

/* Add a running fiber to the group. 0, -ESRCH, -EBUSY (in a group), -ESHUTDOWN (closed). */
int kl_fiber_group_add(struct kl_fiber_group *group, kl_fiber_id id);

/* Close the group: no more members, cancel all, wait until every member has
 * ended (members stay joinable unless detached). 0, -EDEADLK (the caller is a
 * member, or nothing can run), -ECANCELED (the waiting fiber was cancelled). */
int kl_fiber_group_close(struct kl_fiber_group *group);

/* Members that have not ended yet. */
static inline size_t kl_fiber_group_size(const struct kl_fiber_group *group)
{
    return kl_list_len(&group->members);
}

/* ---- fiber-local storage ------------------------------------------------ */

/* Allocate a key (process-wide); `destructor` (may be NULL) runs on a
 * non-NULL value when its fiber ends. 0 or -ENOSPC. Start-up only. */
int kl_fiber_key_create(kl_fiber_key *key, void (*destructor)(void *));

/* The calling fiber's value for `key` (NULL until set). */
void *kl_fiber_local_get(kl_fiber_key key);

/* Set the calling fiber's value for `key`. */
void kl_fiber_local_set(kl_fiber_key key, void *value);

#endif /* KEEL_FIBER_H */
