/* Cross-thread work: the reactor's inbox and kl_defer_to_thread() (keel/xthread.h).
 *
 * The inbox is the reference object itself (struct kl_reactor_ref), so that
 * posters that outlive the reactor still find valid memory: a lock-free
 * stack of messages, a reference count and the eventfd that wakes the loop.
 * The head holds one of three things: NULL (empty), a message (the most
 * recent post, linked to the older ones), or CLOSED. Closing is one exchange
 * that both takes the pending messages and makes every later post fail, so
 * no post can slip in between a "closed?" check and its push and be lost.
 *
 * Wake-ups. A post that turns the inbox from empty to non-empty writes the
 * eventfd. The backends consume the eventfd's count first and drain after
 * (kl_xthread__woken), so a post that lands after a drain always has a
 * write of its own still to be consumed: none is lost, and a spurious wake
 * costs one empty drain. The loop also drains without the eventfd on its
 * turns that make no system call (fibers stay ready, nothing in flight), so
 * messages are not held up behind busy fibers. The pool's workers write the
 * same eventfd.
 *
 * kl_defer_to_thread() is a job on the reactor's worker pool
 * (poller_pool.c) that cannot be dropped: the fiber waits for the job
 * whatever happens, then reports a cancel that arrived meanwhile.
 */
#include "keel/xthread.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "keel/assert.h"

#include "reactor_internal.h"

/* The head of a closed inbox; never a message's address. */
#define CLOSED ((struct kl_xmsg *)(uintptr_t)1)

struct kl_reactor_ref {
    _Alignas(64) _Atomic(struct kl_xmsg *) head; /* posters' cache line */
    _Alignas(64) atomic_uint refs;
    int evfd;
};

static void ref_free(struct kl_reactor_ref *ref)
{
    if (ref->evfd >= 0)
        close(ref->evfd);
    free(ref);
}

int kl_xthread__attach(struct kl_reactor *r)
{
    KL_ASSERT(r->inbox == NULL, "reactor inbox attached twice");
    struct kl_reactor_ref *ref = aligned_alloc(64, sizeof *ref);
    if (ref == NULL)
        return -ENOMEM;
    atomic_init(&ref->head, NULL);
    atomic_init(&ref->refs, 1); /* the reactor's own */
    /* Blocking on purpose: io_uring then waits for a count instead of
     * answering -EAGAIN, and epoll reads it only once it is readable. */
    ref->evfd = eventfd(0, EFD_CLOEXEC);
    if (ref->evfd < 0) {
        int rc = -errno;
        ref_free(ref);
        return rc;
    }
    r->inbox = ref;
    r->wake_fd = ref->evfd;
    return 0;
}

/* Run a batch taken from the head (newest first) in posting order. */
static void run_batch(struct kl_xmsg *m)
{
    struct kl_xmsg *fifo = NULL;
    while (m) {
        struct kl_xmsg *next = m->next;
        m->next = fifo;
        fifo = m;
        m = next;
    }
    while (fifo) {
        struct kl_xmsg *next = fifo->next; /* fn may free or re-post its message */
        fifo->next = NULL;
        fifo->fn(fifo);
        fifo = next;
    }
}

void kl_xthread__detach(struct kl_reactor *r)
{
    struct kl_reactor_ref *ref = r->inbox;
    if (ref == NULL)
        return;
    struct kl_xmsg *pending = atomic_exchange_explicit(&ref->head, CLOSED, memory_order_acquire);
    KL_ASSERT(pending != CLOSED, "reactor inbox closed twice");
    run_batch(pending);
    if (r->pool)
        kl_io_pool_stop(r);
    r->inbox = NULL;
    r->wake_fd = -1;
    kl_reactor_unref(ref);
}

void kl_xthread__woken(struct kl_reactor *r)
{
    kl_io_pool_reap(r);
    kl_xthread__drain(r);
}

void kl_xthread__drain(struct kl_reactor *r)
{
    KL_ASSERT(r->sched->current == &r->sched->main, "inbox drained in fiber %s",
              r->sched->current->name);
    struct kl_reactor_ref *ref = r->inbox;
    if (atomic_load_explicit(&ref->head, memory_order_relaxed) == NULL)
        return; /* a wake-up for the pool, or a spurious one */
    struct kl_xmsg *batch = atomic_exchange_explicit(&ref->head, NULL, memory_order_acquire);
    KL_ASSERT(batch != CLOSED, "a drain of a closed inbox");
    run_batch(batch);
}

bool kl_xthread__may_receive(const struct kl_reactor *r)
{
    struct kl_reactor_ref *ref = r->inbox;
    /* References first: a poster that posted and then dropped its reference
     * did both in this order, so its message is seen below. */
    if (atomic_load_explicit(&ref->refs, memory_order_acquire) > 1)
        return true;
    return atomic_load_explicit(&ref->head, memory_order_acquire) != NULL;
}

/* ---- public --------------------------------------------------------------- */

struct kl_reactor_ref *kl_reactor_ref(void)
{
    struct kl_reactor_ref *ref = kl_reactor__get()->inbox;
    atomic_fetch_add_explicit(&ref->refs, 1, memory_order_relaxed);
    return ref;
}

void kl_reactor_unref(struct kl_reactor_ref *ref)
{
    unsigned before = atomic_fetch_sub_explicit(&ref->refs, 1, memory_order_acq_rel);
    KL_ASSERT(before > 0, "reactor reference dropped more often than taken");
    if (before == 1)
        ref_free(ref);
}

int kl_reactor_post(struct kl_reactor_ref *target, struct kl_xmsg *msg)
{
    KL_ASSERT(msg != NULL && msg->fn != NULL, "kl_reactor_post() of a message without fn");
    struct kl_xmsg *old = atomic_load_explicit(&target->head, memory_order_relaxed);
    do {
        if (old == CLOSED)
            return -ESHUTDOWN;
        msg->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&target->head, &old, msg, memory_order_release,
                                                    memory_order_relaxed));
    if (old == NULL) { /* empty before: the reactor may be asleep */
        uint64_t one = 1;
        while (write(target->evfd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
    return 0;
}

int kl_defer_to_thread(intptr_t (*fn)(void *arg), void *arg, intptr_t *result)
{
    struct kl_reactor *r = kl_reactor__get();
    struct kl_fiber *cur = r->sched->current;
    KL_ASSERT(fn != NULL, "kl_defer_to_thread() without a function");
    KL_ASSERT(cur != &r->sched->main, "kl_defer_to_thread() outside a fiber");
    if (cur->cancelled)
        return -ECANCELED;
    intptr_t res = 0;
    int rc = kl_io_pool_run(r, "defer", fn, arg, UINT64_MAX, false, &res);
    if (rc < 0)
        return rc;
    if (result)
        *result = res;
    return cur->cancelled ? -ECANCELED : 0;
}
