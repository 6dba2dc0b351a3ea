/* Fibers and the per-thread scheduler: life cycle and switch path (keel/fiber.h).
 *
 * Two ideas carry the design. First, a slot is everything a fiber needs: the
 * struct, its stack (a fixed place in the scheduler's one mapping) and its
 * ready-queue node, so spawning is popping a free slot and writing seven words
 * on its stack. Second, there is no scheduler context: a fiber that yields or
 * blocks pops the next ready fiber and switches straight to it; the thread's
 * own stack (the main context, where kl_sched_run() and later the reactor
 * live) is only the target when nothing is ready.
 *
 * Stacks and guards. All stacks of a scheduler are slots of one private,
 * read-write, MAP_NORESERVE mapping, [guard][stack][guard][stack]..., so a
 * stack costs address space only: its pages are backed once touched, and a
 * freed slot goes back to a LIFO free list, so the next spawn reuses the
 * warmest stack; kl_sched_trim() gives the pages of the colder free stacks
 * back after a burst. The guard below each stack is installed with
 * madvise(MADV_GUARD_INSTALL) (Linux 6.13+): a guard region lives in the page
 * tables and does not split the mapping, so 100,000 stacks are one VMA, where
 * mprotect'ed guards would cost two each and vm.max_map_count (65530 by
 * default) would cap a process near 32,000 fibers. Grouping stacks per
 * mapping or sharing guards between neighbours cannot help there: a
 * PROT_NONE guard and a writable stack never merge into one VMA, so every
 * guarded stack costs two whatever the grouping. Kernels without guard
 * regions (EINVAL) fall back to mprotect'ed guards, with that cap (init
 * fails with -ENOMEM beyond it); kl_sched_config.guard can force it. Either
 * way a write below a stack faults in its guard, and the crash hook
 * (fiber_debug.c) names the fiber whose slot the address falls in.
 *
 * Every switch goes through switch_stacks(), where the sanitizer
 * notifications live; the hogger clock runs before it (switch_checked(), out
 * of line, or fiber_finish()), and every caller has checked the
 * critical-section assertion. ASan learns each switch through
 * __sanitizer_start/finish_switch_fiber; valgrind learns each stack once, at
 * kl_sched_init(), through VALGRIND_STACK_REGISTER.
 */
#include "keel/fiber.h"
#include "keel/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "keel/assert.h"
#include "keel/clock.h"

#include "fiber_internal.h"
#include "fiber_switch.h"

#if defined(KEEL_SANITIZE) || defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define FIBER_ASAN 1
#else
#define FIBER_ASAN 0
#endif

#define DEFAULT_MAX_FIBERS 1024u
#define DEFAULT_STACK_SIZE (64u * 1024u)
#define MAIN_INDEX         UINT32_MAX

__thread struct kl_sched *kl_sched__tls __attribute__((tls_model("initial-exec")));

/* ---- ready queues --------------------------------------------------------- */

_Static_assert(KL_FIBER_PRIO_COUNT == 2 && KL_FIBER_PRIO_HIGH == 0,
               "pop_ready() knows exactly two priorities");

static inline void push_ready(struct kl_sched *s, struct kl_fiber *f)
{
    KL_ASSERT(f->state != KL_FIBER_READY, "fiber %s is already ready", f->name);
    f->state = KL_FIBER_READY;
    f->ready_next = NULL;
    struct kl_ready_list *q = &s->ready[f->prio];
    if (q->tail)
        q->tail->ready_next = f;
    else
        q->head = f;
    q->tail = f;
}

static inline bool any_ready(const struct kl_sched *s)
{
    return s->ready[KL_FIBER_PRIO_HIGH].head != NULL || s->ready[KL_FIBER_PRIO_NORMAL].head != NULL;
}

/* Take the head of a list that is not empty. */
static inline struct kl_fiber *pop_from(struct kl_ready_list *q)
{
    struct kl_fiber *f = q->head;
    KL_ASSERT(f->state == KL_FIBER_READY, "fiber %s in a ready list is %s", f->name,
              kl_fiber__state_name(f->state));
    q->head = f->ready_next;
    if (q->head == NULL)
        q->tail = NULL;
    return f;
}

/* The next fiber to run, or NULL when none is ready. */
static inline struct kl_fiber *pop_ready(struct kl_sched *s)
{
    struct kl_ready_list *q = &s->ready[KL_FIBER_PRIO_HIGH];
    if (q->head == NULL)
        q = &s->ready[KL_FIBER_PRIO_NORMAL];
    return q->head ? pop_from(q) : NULL;
}

/* ---- the switch ----------------------------------------------------------- */

#if FIBER_ASAN
/* Runs on the stack just switched to. The first switch ever comes from the
 * main context, which is how that context learns its own stack's extent. */
static void asan_switched(struct kl_sched *s, struct kl_fiber *from)
{
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(s->current->asan_fake_stack, &bottom, &size);
    if (from == &s->main && s->main.asan_stack_bottom == NULL) {
        s->main.asan_stack_bottom = bottom;
        s->main.asan_stack_size = size;
    }
}
#endif

static void hog_check(struct kl_sched *s, struct kl_fiber *prev)
{
    uint64_t now = kl_now();
    uint64_t ran = now - s->slice_start_ns;
    if (prev != &s->main && ran > s->hog_threshold_ns)
        kl_sched__report_hog(s, prev, ran);
    s->slice_start_ns = now;
}

/* The switch proper: `next` becomes current and runs; returns when something
 * switches back to `prev`. */
static inline void switch_stacks(struct kl_sched *s, struct kl_fiber *prev, struct kl_fiber *next,
                                 bool prev_dying)
{
    next->state = KL_FIBER_RUNNING;
    s->current = next;
    s->switches++;
#if FIBER_ASAN
    __sanitizer_start_switch_fiber(prev_dying ? NULL : &prev->asan_fake_stack,
                                   next->asan_stack_bottom, next->asan_stack_size);
    struct kl_fiber *from = prev;
#else
    (void)prev_dying;
#endif
    kl_fiber__switch(&prev->sp, next->sp);
#if FIBER_ASAN
    asan_switched(s, from);
#endif
}

/* switch_stacks() with the hogger check first; out of line so that the switch
 * path without it makes no call that returns, and the compiler need not keep
 * its values in callee-saved registers across one. */
static __attribute__((noinline, cold)) void
switch_checked(struct kl_sched *s, struct kl_fiber *prev, struct kl_fiber *next, bool prev_dying)
{
    hog_check(s, prev);
    switch_stacks(s, prev, next, prev_dying);
}

/* Leave `prev` (the current context) for `next`; returns when something
 * switches back to `prev`. A dying `prev` never comes back. Every caller has
 * checked that no critical section is open (check_may_switch). */
static inline void switch_to(struct kl_sched *s, struct kl_fiber *prev, struct kl_fiber *next,
                             bool prev_dying)
{
    KL_ASSERT(s->current == prev, "switch from %s, but %s is running", prev->name,
              s->current->name);
    if (KL_UNLIKELY(s->hog_threshold_ns != 0))
        switch_checked(s, prev, next, prev_dying);
    else
        switch_stacks(s, prev, next, prev_dying);
}

/* The context to switch to when `prev` stops running. */
static inline struct kl_fiber *next_to_run(struct kl_sched *s)
{
    struct kl_fiber *next = pop_ready(s);
    if (next)
        return next;
    KL_ASSERT(s->main.state != KL_FIBER_READY, "main context is ready but in no ready list");
    return &s->main;
}

static inline void check_may_switch(struct kl_sched *s, const char *op)
{
    KL_ASSERT(s->critical == 0, "%s in fiber %s inside a critical section", op, s->current->name);
}

/* ---- slots ---------------------------------------------------------------- */

struct kl_fiber *kl_sched__lookup(struct kl_sched *s, kl_fiber_id id)
{
    uint64_t raw = kl_fiber_id_raw(id);
    uint32_t index = (uint32_t)raw;
    if (index >= s->capacity)
        return NULL;
    struct kl_fiber *f = &s->fibers[index];
    if (f->state == KL_FIBER_FREE || f->incarnation != (uint32_t)(raw >> 32))
        return NULL;
    return f;
}

static void release_slot(struct kl_sched *s, struct kl_fiber *f)
{
    KL_ASSERT(f->state == KL_FIBER_DONE, "release of fiber %s in state %s", f->name,
              kl_fiber__state_name(f->state));
    KL_ASSERT(f->joiner == NULL && f->group == NULL);
    f->state = KL_FIBER_FREE;
    f->incarnation = f->incarnation == UINT32_MAX ? 1 : f->incarnation + 1;
    kl_queue_push_front(&s->free_slots, &f->slot_node);
    s->nfree++;
}

/* ---- fiber life ----------------------------------------------------------- */

static __attribute__((noreturn)) void fiber_finish(struct kl_sched *s, struct kl_fiber *f)
{
    KL_ASSERT(s->current == f && f->state == KL_FIBER_RUNNING);
    KL_ASSERT(s->critical == 0, "fiber %s ended inside a critical section", f->name);
    kl_fiber_local__release(f);
    f->state = KL_FIBER_DONE;
    KL_ASSERT(s->live > 0);
    s->live--;
    if (f->group)
        kl_fiber_group__leave(f);
    struct kl_fiber *joiner = f->joiner;
    if (joiner && joiner != &s->main && joiner->state == KL_FIBER_SUSPENDED)
        kl_sched__wake(s, joiner, 0);
    /* The hogger report comes first, while the slot is still this fiber's
     * (its name and id are right, and a spawn from the reporter cannot take
     * the stack it runs on). Then nothing runs before the switch. */
    if (s->hog_threshold_ns)
        hog_check(s, f);
    if (f->detached)
        release_slot(s, f);
    switch_stacks(s, f, next_to_run(s), true);
    KL_PANIC("fiber %s was resumed after it ended", f->name);
}

/* Entry of every fiber, called by the trampoline on the fiber's stack. */
static __attribute__((noreturn)) void fiber_main(void *arg)
{
    struct kl_fiber *f = arg;
    struct kl_sched *s = f->sched;
#if FIBER_ASAN
    asan_switched(s, NULL);
#endif
    f->result = f->fn(f->arg);
    fiber_finish(s, f);
}

int kl_fiber_spawn(kl_fiber_id *id, const char *name, kl_fiber_fn fn, void *arg,
                   enum kl_fiber_prio prio)
{
    struct kl_sched *s = kl_sched__tls;
    if (s == NULL)
        return -ENOENT;
    if (id == NULL || fn == NULL || (unsigned)prio >= KL_FIBER_PRIO_COUNT)
        return -EINVAL;
    struct kl_queue_node *n = kl_queue_pop_front(&s->free_slots);
    if (n == NULL)
        return -EAGAIN;
    s->nfree--;
    struct kl_fiber *f = kl_container_of(n, struct kl_fiber, slot_node);
    KL_ASSERT(f->state == KL_FIBER_FREE, "free slot %u is %s", f->index,
              kl_fiber__state_name(f->state));
    f->prio = prio;
    f->cancelled = false;
    f->detached = false;
    f->timer_armed = false;
    f->wake_result = 0;
    f->wait_what = NULL;
    f->wait_detail = NULL;
    f->joiner = NULL;
    f->fn = fn;
    f->arg = arg;
    f->result = 0;
    f->group = NULL;
    memset(f->local, 0, sizeof f->local);
    if (name == NULL)
        name = "fiber";
    size_t len = strnlen(name, KL_FIBER_NAME_MAX - 1);
    memcpy(f->name, name, len);
    f->name[len] = '\0';
#if FIBER_ASAN
    /* Frames of the slot's previous fiber left their redzones poisoned; a
     * stack never used has clean shadow (100,000 first spawns would
     * otherwise write 800 MB of it). */
    if (f->stack_used)
        ASAN_UNPOISON_MEMORY_REGION(f->stack_lo, s->stack_size);
    f->stack_used = true;
    f->asan_fake_stack = NULL;
#endif
    f->stack_warm = true;
    f->sp = kl_fiber__stack_init(f->stack_lo + s->stack_size, fiber_main, f);
    s->live++;
    push_ready(s, f);
    *id = kl_fiber__id(f);
    return 0;
}

void kl_fiber_yield(void)
{
    struct kl_sched *s = kl_sched__get();
    struct kl_fiber *cur = s->current;
    KL_ASSERT(cur != &s->main, "kl_fiber_yield() outside a fiber");
    check_may_switch(s, "kl_fiber_yield()");
    /* Pop before pushing: a fiber never yields to a lower priority, and
     * among equals it goes behind the ones ready now. */
    struct kl_ready_list *q = &s->ready[KL_FIBER_PRIO_HIGH];
    if (q->head == NULL) {
        if (cur->prio == KL_FIBER_PRIO_HIGH)
            return;
        q = &s->ready[KL_FIBER_PRIO_NORMAL];
        if (q->head == NULL)
            return;
    }
    struct kl_fiber *next = pop_from(q);
    push_ready(s, cur);
    switch_to(s, cur, next, false);
}

int kl_fiber__suspend(struct kl_sched *s, const char *what, const char *detail, uint64_t timeout_ns)
{
    struct kl_fiber *cur = s->current;
    KL_ASSERT(cur != &s->main, "%s: suspend outside a fiber", what);
    KL_ASSERT(cur->state == KL_FIBER_RUNNING);
    check_may_switch(s, what);
    if (cur->cancelled)
        return -ECANCELED;
    if (timeout_ns != KL_FIBER_FOREVER) {
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        if (s->hooks.timeout_arm == NULL)
            return -EOPNOTSUPP;
        uint64_t now = kl_now();
        uint64_t deadline = timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
        int rc = s->hooks.timeout_arm(s->hooks.ctx, kl_fiber__id(cur), deadline, &cur->timer_token);
        if (rc < 0)
            return rc;
        cur->timer_armed = true;
    }
    cur->state = KL_FIBER_SUSPENDED;
    cur->wait_what = what;
    cur->wait_detail = detail;
    cur->wake_result = 0;
    s->suspended++;
    switch_to(s, cur, next_to_run(s), false);
    KL_ASSERT(cur->state == KL_FIBER_RUNNING && !cur->timer_armed);
    return cur->wake_result;
}

int kl_fiber_suspend(const char *what, uint64_t timeout_ns)
{
    return kl_fiber__suspend(kl_sched__get(), what ? what : "suspend", NULL, timeout_ns);
}

void kl_sched__wake(struct kl_sched *s, struct kl_fiber *f, int result)
{
    KL_ASSERT(f->state == KL_FIBER_SUSPENDED, "wake of fiber %s in state %s", f->name,
              kl_fiber__state_name(f->state));
    if (f->timer_armed) {
        f->timer_armed = false;
        if (s->hooks.timeout_disarm)
            s->hooks.timeout_disarm(s->hooks.ctx, f->timer_token);
    }
    KL_ASSERT(s->suspended > 0);
    s->suspended--;
    f->wake_result = result;
    f->wait_what = NULL;
    f->wait_detail = NULL;
    push_ready(s, f);
}

int kl_fiber_resume(kl_fiber_id id, int result)
{
    struct kl_sched *s = kl_sched__get();
    struct kl_fiber *f = kl_sched__lookup(s, id);
    if (f == NULL)
        return -ESRCH;
    if (f->state != KL_FIBER_SUSPENDED)
        return -EALREADY;
    kl_sched__wake(s, f, result);
    return 0;
}

int kl_fiber_expire(kl_fiber_id id)
{
    struct kl_sched *s = kl_sched__get();
    struct kl_fiber *f = kl_sched__lookup(s, id);
    if (f == NULL)
        return -ESRCH;
    if (f->state != KL_FIBER_SUSPENDED || !f->timer_armed)
        return -EALREADY;
    f->timer_armed = false; /* it fired: nothing to disarm */
    kl_sched__wake(s, f, -ETIMEDOUT);
    return 0;
}

static bool fiber_done(void *arg) { return ((struct kl_fiber *)arg)->state == KL_FIBER_DONE; }

/* kl_fiber_join(), and kl_fiber_await() when `through_cancel`. */
static int join(kl_fiber_id id, intptr_t *result, bool through_cancel)
{
    struct kl_sched *s = kl_sched__tls;
    if (s == NULL)
        return -ENOENT;
    struct kl_fiber *f = kl_sched__lookup(s, id);
    struct kl_fiber *cur = s->current;
    if (f == NULL)
        return -ESRCH;
    if (f == cur)
        return -EDEADLK;
    if (f->detached)
        return -EINVAL;
    if (f->joiner)
        return -EBUSY;
    if (through_cancel && cur == &s->main)
        return -EINVAL;
    int rc = 0;
    if (f->state != KL_FIBER_DONE) {
        check_may_switch(s, "kl_fiber_join()");
        f->joiner = cur;
        if (cur == &s->main) {
            rc = kl_sched__run_until(s, fiber_done, f);
        } else {
            bool cancelled = cur->cancelled;
            while (f->state != KL_FIBER_DONE) {
                if (through_cancel)
                    cur->cancelled = false; /* the sticky flag would refuse to park */
                rc = kl_fiber__suspend(s, "join", f->name, KL_FIBER_FOREVER);
                cancelled |= cur->cancelled;
                if (rc == -ECANCELED && !through_cancel)
                    break;
                rc = 0;
            }
            cur->cancelled = cancelled;
        }
        f->joiner = NULL;
        if (f->state != KL_FIBER_DONE)
            return rc;
    }
    if (result)
        *result = f->result;
    release_slot(s, f);
    return 0;
}

int kl_fiber_join(kl_fiber_id id, intptr_t *result) { return join(id, result, false); }

int kl_fiber_await(kl_fiber_id id, intptr_t *result) { return join(id, result, true); }

int kl_fiber_detach(kl_fiber_id id)
{
    struct kl_sched *s = kl_sched__get();
    struct kl_fiber *f = kl_sched__lookup(s, id);
    if (f == NULL)
        return -ESRCH;
    if (f->joiner)
        return -EBUSY;
    if (f->state == KL_FIBER_DONE) {
        release_slot(s, f);
        return 0;
    }
    f->detached = true;
    return 0;
}

int kl_fiber_cancel(kl_fiber_id id)
{
    struct kl_sched *s = kl_sched__get();
    struct kl_fiber *f = kl_sched__lookup(s, id);
    if (f == NULL)
        return -ESRCH;
    if (f->state == KL_FIBER_DONE)
        return 0;
    f->cancelled = true;
    if (f->state == KL_FIBER_SUSPENDED)
        kl_sched__wake(s, f, -ECANCELED);
    return 0;
}

bool kl_fiber_cancelled(void) { return kl_sched__get()->current->cancelled; }

/* The fiber id that log records carry: 0 outside a fiber. */
static uint64_t fiber_id_for_log(void)
{
    struct kl_sched *s = kl_sched__tls;
    return s == NULL || s->current == &s->main ? 0 : kl_fiber_id_raw(kl_fiber__id(s->current));
}

kl_fiber_id kl_fiber_self(void)
{
    struct kl_sched *s = kl_sched__tls;
    if (s == NULL || s->current == &s->main)
        return KL_FIBER_ID_NONE;
    return kl_fiber__id(s->current);
}

const char *kl_fiber_name(void)
{
    struct kl_sched *s = kl_sched__tls;
    return s ? s->current->name : "main";
}

int kl_fiber_state(kl_fiber_id id)
{
    struct kl_fiber *f = kl_sched__lookup(kl_sched__get(), id);
    return f ? (int)f->state : -ESRCH;
}

void kl_fiber_critical_enter(void) { kl_sched__get()->critical++; }

void kl_fiber_critical_exit(void)
{
    struct kl_sched *s = kl_sched__get();
    KL_ASSERT(s->critical > 0, "kl_fiber_critical_exit() without an enter");
    s->critical--;
}

/* ---- the main context ----------------------------------------------------- */

/* The loop on the main context. Without hooks it runs ready fibers until
 * none is left. With an idle hook (a reactor) it works in iterations: the
 * main context queues itself behind the fibers ready now, so it gets a turn
 * after each round of them, even when some fiber is always ready (one that
 * yields in a loop), and calls the hook, which fires due timers and submits
 * and reaps I/O, without blocking while fibers are ready. So timers and I/O
 * never starve behind busy fibers. */
int kl_sched__run_until(struct kl_sched *s, bool (*done)(void *arg), void *arg)
{
    KL_ASSERT(s->current == &s->main, "the scheduler loop runs on the main context, not in %s",
              s->current->name);
    while (!done(arg)) {
        check_may_switch(s, "the scheduler loop");
        if (any_ready(s)) {
            if (s->hooks.idle)
                push_ready(s, &s->main); /* a turn after the fibers ready now */
            switch_to(s, &s->main, pop_ready(s), false);
            if (s->hooks.idle == NULL || done(arg))
                continue;
        } else if (s->suspended == 0 || s->hooks.idle == NULL) {
            return -EDEADLK;
        }
        int rc = s->hooks.idle(s->hooks.ctx, any_ready(s));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool none_live(void *arg) { return ((struct kl_sched *)arg)->live == 0; }

int kl_sched_run(void)
{
    struct kl_sched *s = kl_sched__get();
    int rc = kl_sched__run_until(s, none_live, s);
    if (rc < 0 && rc != -EDEADLK)
        return rc;
    return (int)s->live;
}

void kl_sched_set_hooks(const struct kl_sched_hooks *hooks)
{
    struct kl_sched *s = kl_sched__get();
    s->hooks = hooks ? *hooks : (struct kl_sched_hooks){0};
}

uint64_t kl_sched_switches(void) { return kl_sched__get()->switches; }

void kl_sched_slots(uint32_t *free, uint32_t *total)
{
    struct kl_sched *s = kl_sched__get();
    *free = s->nfree;
    *total = s->capacity;
}

enum kl_stack_guard kl_sched_stack_guard(void) { return kl_sched__get()->guard_kind; }

uint32_t kl_sched_trim(uint32_t keep)
{
    struct kl_sched *s = kl_sched__get();
    uint32_t seen = 0, released = 0;
    for (struct kl_queue_node *n = kl_queue_peek(&s->free_slots); n; n = n->next) {
        struct kl_fiber *f = kl_container_of(n, struct kl_fiber, slot_node);
        if (seen++ < keep || !f->stack_warm)
            continue;
        /* Guard regions and mprotect'ed guards both survive MADV_DONTNEED. */
        if (madvise(f->stack_lo, s->stack_size, MADV_DONTNEED) != 0)
            continue;
        f->stack_warm = false;
#if FIBER_ASAN
        ASAN_UNPOISON_MEMORY_REGION(f->stack_lo, s->stack_size);
        f->stack_used = false;
#endif
        released++;
    }
    return released;
}

bool kl_sched_active(void) { return kl_sched__tls != NULL; }

/* ---- set-up and tear-down ------------------------------------------------- */

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

static void destroy(struct kl_sched *s)
{
    if (s->fibers) {
        for (uint32_t i = 0; i < s->capacity; i++) {
            struct kl_fiber *f = &s->fibers[i];
            if (f->valgrind_stack_id)
                VALGRIND_STACK_DEREGISTER(f->valgrind_stack_id);
#if FIBER_ASAN
            /* Only used stacks have poisoned shadow: the whole mapping's
             * would be an eighth of its size to write. */
            if (f->stack_used)
                ASAN_UNPOISON_MEMORY_REGION(f->stack_lo, s->stack_size);
#endif
        }
    }
    if (s->map)
        munmap(s->map, s->map_len);
    free(s->fibers);
    free(s);
}

/* Linux 6.13's lightweight guard pages; Debian 12's headers predate them. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Make every slot's guard: guard regions where the kernel has them, else
 * mprotect (two mappings per stack). 0 or -ENOMEM. */
static int make_guards(struct kl_sched *s, enum kl_stack_guard want)
{
    s->guard_kind =
        want == KL_STACK_GUARD_MPROTECT ? KL_STACK_GUARD_MPROTECT : KL_STACK_GUARD_REGION;
    for (uint32_t i = 0; i < s->capacity; i++) {
        char *guard = s->map + (size_t)i * s->slot_size;
        if (s->guard_kind == KL_STACK_GUARD_REGION) {
            if (madvise(guard, s->guard_size, MADV_GUARD_INSTALL) == 0)
                continue;
            if (errno != EINVAL || i > 0 || want == KL_STACK_GUARD_REGION)
                return -ENOMEM;
            s->guard_kind = KL_STACK_GUARD_MPROTECT; /* an older kernel */
        }
        if (mprotect(guard, s->guard_size, PROT_NONE) != 0)
            return -ENOMEM; /* most likely vm.max_map_count */
    }
    return 0;
}

int kl_sched_init(const struct kl_sched_config *cfg)
{
    kl_log_set_fiber_hook(fiber_id_for_log);
    if (kl_sched__tls)
        return -EBUSY;
    struct kl_sched_config c = cfg ? *cfg : (struct kl_sched_config){0};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint32_t max = c.max_fibers ? c.max_fibers : DEFAULT_MAX_FIBERS;
    if (max >= MAIN_INDEX || c.stack_size > ((size_t)1 << 32) || c.guard_size > ((size_t)1 << 32) ||
        (unsigned)c.guard > KL_STACK_GUARD_MPROTECT)
        return -EINVAL;
    size_t stack = round_up(c.stack_size ? c.stack_size : DEFAULT_STACK_SIZE, page);
    size_t guard = round_up(c.guard_size ? c.guard_size : page, page);
    size_t slot = stack + guard;
    if (slot > SIZE_MAX / 4 / max)
        return -EINVAL;

    struct kl_sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->fibers = calloc(max, sizeof *s->fibers);
    void *map = mmap(NULL, slot * max, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s->fibers == NULL || map == MAP_FAILED) {
        s->map = NULL;
        destroy(s);
        return -ENOMEM;
    }
    s->map = map;
    s->map_len = slot * max;
    s->capacity = max;
    s->stack_size = stack;
    s->guard_size = guard;
    s->slot_size = slot;
    s->hog_threshold_ns = c.hog_threshold_ns;
    kl_queue_init(&s->free_slots);
    int rc = make_guards(s, c.guard);
    if (rc < 0) {
        destroy(s);
        return rc;
    }

    for (uint32_t i = 0; i < max; i++) {
        struct kl_fiber *f = &s->fibers[i];
        f->sched = s;
        f->index = i;
        f->incarnation = 1;
        f->state = KL_FIBER_FREE;
        f->stack_lo = s->map + (size_t)i * slot + guard;
        kl_list_node_init(&f->group_node);
        kl_queue_node_init(&f->slot_node);
        f->valgrind_stack_id = VALGRIND_STACK_REGISTER(f->stack_lo, f->stack_lo + stack);
        f->asan_stack_bottom = f->stack_lo;
        f->asan_stack_size = stack;
        kl_queue_push_back(&s->free_slots, &f->slot_node);
        s->nfree++;
    }

    s->main.sched = s;
    s->main.index = MAIN_INDEX;
    s->main.state = KL_FIBER_RUNNING;
    s->main.prio = KL_FIBER_PRIO_NORMAL;
    kl_list_node_init(&s->main.group_node);
    strcpy(s->main.name, "main");
    s->current = &s->main;
    s->slice_start_ns = kl_now();
    kl_sched__install_crash_hook();
    kl_sched__tls = s;
    return 0;
}

uint32_t kl_sched__cancel_all(struct kl_sched *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->capacity; i++) {
        struct kl_fiber *f = &s->fibers[i];
        KL_ASSERT(f->state != KL_FIBER_RUNNING, "cancel-all from fiber %s", f->name);
        if (f->state == KL_FIBER_READY || f->state == KL_FIBER_SUSPENDED) {
            kl_fiber_cancel(kl_fiber__id(f));
            n++;
        }
    }
    return n;
}

int kl_sched_shutdown(void)
{
    struct kl_sched *s = kl_sched__tls;
    if (s == NULL)
        return -ENOENT;
    KL_ASSERT(s->current == &s->main, "kl_sched_shutdown() from fiber %s", s->current->name);
    kl_sched__cancel_all(s);
    kl_sched__run_until(s, none_live, s);
    if (s->live > 0)
        return -EBUSY;
    kl_fiber_local__release(&s->main);
    kl_sched__tls = NULL;
    destroy(s);
    return 0;
}
