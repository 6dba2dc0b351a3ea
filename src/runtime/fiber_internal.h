/* fiber_internal.h: the scheduler's data, shared by the fiber sources.
 *
 * fiber.c owns the life cycle and the switch path; fiber_group.c builds
 * groups on suspend/resume; fiber_debug.c has the dump, the hogger report
 * and the crash hook; fiber_local.c the fiber-local storage keys. Only these
 * files include this header.
 */
#ifndef KEEL_RUNTIME_FIBER_INTERNAL_H
#define KEEL_RUNTIME_FIBER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/fiber.h"
#include "keel/list.h"

/* Internal to libkeel: never exported from libkeel.so, whatever the name. */
#pragma GCC visibility push(hidden)

struct kl_sched;
struct kl_fiber;

/* A FIFO of ready fibers, linked through kl_fiber.ready_next. A fiber in a
 * ready list is READY, and a READY fiber is in one, or was just taken from
 * one for the switch that is under way. That state is the list's ownership
 * check (asserted on push and pop), so unlike kl_queue it keeps no owner
 * pointer and no count: yield is keel's hottest path. */
struct kl_ready_list {
    struct kl_fiber *head;
    struct kl_fiber *tail;
};

struct kl_fiber {
    void *sp; /* saved stack pointer while not running */
    struct kl_sched *sched;
    struct kl_fiber *ready_next;    /* next in its ready list, while READY */
    struct kl_queue_node slot_node; /* in the free-slot stack, while FREE */
    enum kl_fiber_state state;
    enum kl_fiber_prio prio;
    uint32_t index;       /* slot; UINT32_MAX for the main context */
    uint32_t incarnation; /* bumped when the slot is freed; never 0 */
    bool cancelled;
    bool detached;
    bool timer_armed;
    int wake_result;         /* what kl_fiber_suspend() returns */
    const char *wait_what;   /* while suspended: what kind of wait */
    const char *wait_detail; /* and on what (a fiber or group name), or NULL */
    uint64_t timer_token;    /* from timeout_arm, while timer_armed */
    struct kl_fiber *joiner; /* waiting in kl_fiber_join(); may be the main context */
    kl_fiber_fn fn;
    void *arg;
    intptr_t result;
    struct kl_fiber_group *group;
    struct kl_list_node group_node;
    void *local[KL_FIBER_LOCAL_SLOTS];
    char *stack_lo; /* usable stack [stack_lo, stack_lo + stack_size) */
    unsigned valgrind_stack_id;
    void *asan_fake_stack;
    const void *asan_stack_bottom; /* the main context learns its own on the first switch */
    size_t asan_stack_size;
    bool stack_used; /* ASan: spawned before, so its stack's shadow may be poisoned */
    bool stack_warm; /* spawned since the last kl_sched_trim(): its pages may be backed */
    char name[KL_FIBER_NAME_MAX];
};

struct kl_sched {
    struct kl_fiber *current;
    struct kl_ready_list ready[KL_FIBER_PRIO_COUNT];
    uint32_t critical;  /* critical-section nesting depth */
    uint32_t live;      /* spawned and not yet ended */
    uint32_t suspended; /* in kl_fiber_suspend() */
    uint64_t switches;
    uint64_t hog_threshold_ns;
    uint64_t slice_start_ns; /* when the current fiber was switched in (hogger check on) */
    struct kl_fiber *fibers;
    uint32_t capacity;
    struct kl_queue free_slots; /* LIFO: the most recently used stack is the warmest */
    uint32_t nfree;             /* slots in free_slots */
    char *map;                  /* [guard][stack][guard][stack]..., one mapping */
    size_t map_len;
    size_t stack_size;
    size_t guard_size;
    size_t slot_size; /* guard_size + stack_size */
    enum kl_stack_guard guard_kind;
    struct kl_sched_hooks hooks;
    bool has_hooks;
    struct kl_fiber main; /* the thread's own stack */
};

/* The calling thread's scheduler, or NULL. Initial-exec: the objects are
 * position independent, and the default model for PIC (general dynamic)
 * would call __tls_get_addr on every access, i.e. on every switch. keel is
 * linked, never dlopen'ed, so static TLS is always available. */
extern __thread struct kl_sched *kl_sched__tls __attribute__((tls_model("initial-exec")));

/* The calling thread's scheduler; asserts there is one. */
static inline struct kl_sched *kl_sched__get(void)
{
    struct kl_sched *s = kl_sched__tls;
    KL_ASSERT(s != NULL, "no fiber scheduler on this thread (kl_sched_init)");
    return s;
}

/* The fiber `id` names, or NULL when stale, unknown or free. */
struct kl_fiber *kl_sched__lookup(struct kl_sched *s, kl_fiber_id id);

/* The id of a fiber slot in its current incarnation. */
static inline kl_fiber_id kl_fiber__id(const struct kl_fiber *f)
{
    return kl_fiber_id_from(((uint64_t)f->incarnation << 32) | f->index);
}

/* kl_fiber_suspend() with a detail for dumps (the name of what is awaited). */
int kl_fiber__suspend(struct kl_sched *s, const char *what, const char *detail,
                      uint64_t timeout_ns);

/* Wake a suspended fiber: its suspend returns `result`. */
void kl_sched__wake(struct kl_sched *s, struct kl_fiber *f, int result);

/* From the main context: run fibers until done(arg) is true; 0, or -EDEADLK
 * when nothing is ready and the idle hook cannot help, or the hook's error. */
int kl_sched__run_until(struct kl_sched *s, bool (*done)(void *arg), void *arg);

/* Cancel every fiber that has not ended; returns how many. */
uint32_t kl_sched__cancel_all(struct kl_sched *s);

/* The fiber ended: take it out of its group, waking a closer waiting for it. */
void kl_fiber_group__leave(struct kl_fiber *f);

/* Run the fiber-local destructors of an ending fiber and clear its slots. */
void kl_fiber_local__release(struct kl_fiber *f);

/* Report a fiber that ran `ran_ns` without switching. */
void kl_sched__report_hog(struct kl_sched *s, struct kl_fiber *f, uint64_t ran_ns);

/* Add the process-wide crash hook (once). */
void kl_sched__install_crash_hook(void);

/* Printable state name. Inline and call-free on purpose: the switch path's
 * assertions print it, and a call there (even on the failing branch) makes
 * the compiler keep values in callee-saved registers, pushed and popped on
 * every switch. */
static inline const char *kl_fiber__state_name(enum kl_fiber_state state)
{
    static const char *const names[] = {
        [KL_FIBER_FREE] = "free",       [KL_FIBER_READY] = "ready",
        [KL_FIBER_RUNNING] = "running", [KL_FIBER_SUSPENDED] = "suspended",
        [KL_FIBER_DONE] = "done",
    };
    return (unsigned)state < sizeof names / sizeof names[0] ? names[state] : "?";
}

#pragma GCC visibility pop

#endif /* KEEL_RUNTIME_FIBER_INTERNAL_H */
