/* Fiber sync primitives: event, signal, mutex, reader-writer lock, semaphore,
 * barrier and future (keel/sync.h); the channel is in sync_chan.c.
 *
 * All of them are a state word or two plus one FIFO queue of waiters that
 * live on the waiting fibers' stacks, built on kl_fiber_suspend() and
 * kl_fiber_resume() alone. Two ideas carry the design. First, hand-off: a
 * release picks the first parked waiter, transfers the resource to it (the
 * mutex owner, a semaphore unit, the read or write lock) and only then makes
 * it ready, so the state is never "free but promised", and a fiber that
 * arrives before the woken one runs finds the resource taken. Second, a
 * waiter woken by a cancel or a timeout is not suspended any more, so a
 * release recognises it with kl_fiber_state(), unlinks it and serves the next
 * one: a departing waiter never swallows a wake-up.
 */
#include "keel/sync.h"

#include <errno.h>

#include "keel/assert.h"
#include "keel/clock.h"

#include "sync_internal.h"

/* ---- the wait queue ------------------------------------------------------- */

void kl_sync__waiter_init(struct kl_sync_waiter *w, const char *op)
{
    kl_fiber_id self = kl_fiber_self();
    KL_ASSERT(!kl_fiber_id_eq(self, KL_FIBER_ID_NONE), "%s outside a fiber", op);
    *w = (struct kl_sync_waiter){.node = KL_LIST_NODE_INIT, .fiber = self};
}

static bool parked(const struct kl_sync_waiter *w)
{
    return kl_fiber_state(w->fiber) == KL_FIBER_SUSPENDED;
}

int kl_sync__wait(struct kl_list *q, struct kl_sync_waiter *w, const char *what,
                  uint64_t timeout_ns)
{
    KL_ASSERT(kl_fiber_id_eq(w->fiber, kl_fiber_self()) && !w->granted);
    bool forever = timeout_ns == 0 || timeout_ns == KL_FIBER_FOREVER;
    uint64_t deadline = 0;
    if (!forever) {
        uint64_t now = kl_now();
        deadline = timeout_ns > UINT64_MAX - 1 - now ? UINT64_MAX - 1 : now + timeout_ns;
    }
    for (;;) {
        if (!kl_list_node_linked(&w->node))
            kl_list_push_back(q, &w->node);
        KL_ASSERT(kl_list_contains(q, &w->node), "%s: waiter in a foreign queue", what);
        uint64_t t = KL_FIBER_FOREVER;
        if (!forever) {
            uint64_t now = kl_now();
            t = now >= deadline ? 0 : deadline - now; /* 0: -ETIMEDOUT at once */
        }
        int rc = kl_fiber_suspend(what, t);
        if (w->granted) {
            KL_ASSERT(!kl_list_node_linked(&w->node), "%s: granted waiter still queued", what);
            return w->result;
        }
        if (rc < 0) {
            if (kl_list_node_linked(&w->node))
                kl_list_remove(q, &w->node);
            return rc;
        }
        /* A stray kl_fiber_resume(): park again (at the back if a release
         * saw us awake and unlinked us). */
    }
}

struct kl_sync_waiter *kl_sync__first_live(struct kl_list *q)
{
    struct kl_list_node *n;
    while ((n = kl_list_first(q)) != NULL) {
        struct kl_sync_waiter *w = kl_container_of(n, struct kl_sync_waiter, node);
        if (parked(w))
            return w;
        kl_list_unlink(n); /* woken by a cancel or timeout: it leaves on its own */
    }
    return NULL;
}

void kl_sync__purge(struct kl_list *q)
{
    kl_list_for_each_safe (n, q) {
        if (!parked(kl_container_of(n, struct kl_sync_waiter, node)))
            kl_list_unlink(n);
    }
}

void kl_sync__grant(struct kl_sync_waiter *w, int result)
{
    KL_ASSERT(kl_list_node_linked(&w->node) && !w->granted, "grant of a waiter not queued");
    kl_list_unlink(&w->node);
    w->granted = true;
    w->result = result;
    int rc = kl_fiber_resume(w->fiber, 0);
    KL_ASSERT(rc == 0, "granted waiter could not be resumed: %d", rc);
}

size_t kl_sync__grant_all(struct kl_list *q, int result)
{
    size_t n = 0;
    struct kl_sync_waiter *w;
    while ((w = kl_sync__first_live(q)) != NULL) {
        kl_sync__grant(w, result);
        n++;
    }
    return n;
}

static inline bool no_fiber(kl_fiber_id id) { return kl_fiber_id_eq(id, KL_FIBER_ID_NONE); }

/* ---- event ---------------------------------------------------------------- */

void kl_event_init(struct kl_event *ev, bool set)
{
    kl_list_init(&ev->waiters);
    ev->set = set;
}

void kl_event_set(struct kl_event *ev)
{
    ev->set = true;
    kl_sync__grant_all(&ev->waiters, 0);
    KL_ASSERT(kl_list_empty(&ev->waiters));
}

void kl_event_reset(struct kl_event *ev) { ev->set = false; }

int kl_event_wait(struct kl_event *ev, uint64_t timeout_ns)
{
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_event_wait()");
    if (ev->set) {
        KL_ASSERT(kl_list_empty(&ev->waiters), "a set event has waiters");
        return 0;
    }
    return kl_sync__wait(&ev->waiters, &w, "event", timeout_ns);
}

/* ---- signal --------------------------------------------------------------- */

void kl_signal_init(struct kl_signal *sig) { kl_list_init(&sig->waiters); }

int kl_signal_wait(struct kl_signal *sig, uint64_t timeout_ns)
{
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_signal_wait()");
    return kl_sync__wait(&sig->waiters, &w, "signal", timeout_ns);
}

size_t kl_signal_notify_one(struct kl_signal *sig)
{
    struct kl_sync_waiter *w = kl_sync__first_live(&sig->waiters);
    if (w == NULL)
        return 0;
    kl_sync__grant(w, 0);
    return 1;
}

size_t kl_signal_notify_all(struct kl_signal *sig)
{
    /* Woken fibers run only after this returns, so a fiber that waits again
     * at once joins a queue this call no longer walks. */
    return kl_sync__grant_all(&sig->waiters, 0);
}

/* ---- mutex ---------------------------------------------------------------- */

void kl_mutex_init(struct kl_mutex *m)
{
    kl_list_init(&m->waiters);
    m->owner = KL_FIBER_ID_NONE;
}

/* Asserts the caller is a fiber that does not hold `m`; returns its id. */
static kl_fiber_id mutex_check_lock(const struct kl_mutex *m, const char *op)
{
    kl_fiber_id self = kl_fiber_self();
    KL_ASSERT(!no_fiber(self), "%s outside a fiber", op);
    KL_ASSERT(!kl_fiber_id_eq(m->owner, self), "%s: fiber %s already owns the mutex", op,
              kl_fiber_name());
    return self;
}

int kl_mutex_trylock(struct kl_mutex *m)
{
    kl_fiber_id self = mutex_check_lock(m, "kl_mutex_trylock()");
    if (!no_fiber(m->owner))
        return -EBUSY;
    KL_ASSERT(kl_list_empty(&m->waiters), "a free mutex has waiters");
    m->owner = self;
    return 0;
}

int kl_mutex_lock(struct kl_mutex *m, uint64_t timeout_ns)
{
    kl_fiber_id self = mutex_check_lock(m, "kl_mutex_lock()");
    if (no_fiber(m->owner)) {
        KL_ASSERT(kl_list_empty(&m->waiters), "a free mutex has waiters");
        m->owner = self;
        return 0;
    }
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_mutex_lock()");
    int rc = kl_sync__wait(&m->waiters, &w, "mutex", timeout_ns);
    KL_ASSERT(rc < 0 || kl_fiber_id_eq(m->owner, self), "mutex granted but owned by another");
    return rc;
}

void kl_mutex_unlock(struct kl_mutex *m)
{
    kl_fiber_id self = kl_fiber_self();
    KL_ASSERT(!no_fiber(self) && kl_fiber_id_eq(m->owner, self),
              "kl_mutex_unlock() by fiber %s, which does not own the mutex", kl_fiber_name());
    struct kl_sync_waiter *w = kl_sync__first_live(&m->waiters);
    if (w == NULL) {
        m->owner = KL_FIBER_ID_NONE;
        return;
    }
    m->owner = w->fiber; /* hand-off: the mutex never looks free */
    kl_sync__grant(w, 0);
}

/* ---- reader-writer lock --------------------------------------------------- */

void kl_rwlock_init(struct kl_rwlock *rw)
{
    kl_list_init(&rw->waiters);
    rw->readers = 0;
    rw->writer = KL_FIBER_ID_NONE;
}

/* Grant the head of the queue what the holders allow: one writer, or the
 * run of readers before the next writer. */
static void rwlock_dispatch(struct kl_rwlock *rw)
{
    for (;;) {
        struct kl_sync_waiter *w = kl_sync__first_live(&rw->waiters);
        if (w == NULL || !no_fiber(rw->writer))
            return;
        if (w->writer) {
            if (rw->readers > 0)
                return;
            rw->writer = w->fiber;
            kl_sync__grant(w, 0);
            return;
        }
        KL_ASSERT(rw->readers < UINT32_MAX, "reader count overflow");
        rw->readers++;
        kl_sync__grant(w, 0);
    }
}

static kl_fiber_id rwlock_check(const struct kl_rwlock *rw, const char *op)
{
    kl_fiber_id self = kl_fiber_self();
    KL_ASSERT(!no_fiber(self), "%s outside a fiber", op);
    KL_ASSERT(!kl_fiber_id_eq(rw->writer, self), "%s: fiber %s already holds the write lock", op,
              kl_fiber_name());
    return self;
}

static bool rwlock_read_free(const struct kl_rwlock *rw)
{
    return no_fiber(rw->writer) && kl_list_empty(&rw->waiters);
}

static bool rwlock_write_free(const struct kl_rwlock *rw)
{
    return no_fiber(rw->writer) && rw->readers == 0 && kl_list_empty(&rw->waiters);
}

int kl_rwlock_tryrdlock(struct kl_rwlock *rw)
{
    rwlock_check(rw, "kl_rwlock_tryrdlock()");
    if (!rwlock_read_free(rw))
        return -EBUSY;
    KL_ASSERT(rw->readers < UINT32_MAX, "reader count overflow");
    rw->readers++;
    return 0;
}

int kl_rwlock_rdlock(struct kl_rwlock *rw, uint64_t timeout_ns)
{
    if (kl_rwlock_tryrdlock(rw) == 0)
        return 0;
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_rwlock_rdlock()");
    int rc = kl_sync__wait(&rw->waiters, &w, "rwlock read", timeout_ns);
    if (rc < 0)
        rwlock_dispatch(rw); /* a reader leaving cannot unblock others, but be exact */
    else
        KL_ASSERT(rw->readers > 0 && no_fiber(rw->writer), "read lock granted while not held");
    return rc;
}

void kl_rwlock_rdunlock(struct kl_rwlock *rw)
{
    KL_ASSERT(rw->readers > 0 && no_fiber(rw->writer), "kl_rwlock_rdunlock() without a reader");
    rw->readers--;
    if (rw->readers == 0)
        rwlock_dispatch(rw);
}

int kl_rwlock_trywrlock(struct kl_rwlock *rw)
{
    kl_fiber_id self = rwlock_check(rw, "kl_rwlock_trywrlock()");
    if (!rwlock_write_free(rw))
        return -EBUSY;
    rw->writer = self;
    return 0;
}

int kl_rwlock_wrlock(struct kl_rwlock *rw, uint64_t timeout_ns)
{
    kl_fiber_id self = rwlock_check(rw, "kl_rwlock_wrlock()");
    if (rwlock_write_free(rw)) {
        rw->writer = self;
        return 0;
    }
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_rwlock_wrlock()");
    w.writer = true;
    int rc = kl_sync__wait(&rw->waiters, &w, "rwlock write", timeout_ns);
    if (rc < 0)
        rwlock_dispatch(rw); /* readers queued behind a departing writer may go */
    else
        KL_ASSERT(kl_fiber_id_eq(rw->writer, self) && rw->readers == 0,
                  "write lock granted but not held");
    return rc;
}

void kl_rwlock_wrunlock(struct kl_rwlock *rw)
{
    kl_fiber_id self = kl_fiber_self();
    KL_ASSERT(!no_fiber(self) && kl_fiber_id_eq(rw->writer, self),
              "kl_rwlock_wrunlock() by fiber %s, which does not hold the write lock",
              kl_fiber_name());
    KL_ASSERT(rw->readers == 0);
    rw->writer = KL_FIBER_ID_NONE;
    rwlock_dispatch(rw);
}

/* ---- semaphore ------------------------------------------------------------ */

void kl_sem_init(struct kl_sem *sem, uint64_t count)
{
    kl_list_init(&sem->waiters);
    sem->count = count;
}

int kl_sem_trywait(struct kl_sem *sem)
{
    if (sem->count == 0)
        return -EAGAIN;
    KL_ASSERT(kl_list_empty(&sem->waiters), "a semaphore with free units has waiters");
    sem->count--;
    return 0;
}

int kl_sem_wait(struct kl_sem *sem, uint64_t timeout_ns)
{
    if (kl_sem_trywait(sem) == 0)
        return 0;
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_sem_wait()");
    return kl_sync__wait(&sem->waiters, &w, "semaphore", timeout_ns);
}

void kl_sem_post(struct kl_sem *sem)
{
    struct kl_sync_waiter *w = kl_sync__first_live(&sem->waiters);
    if (w != NULL) {
        KL_ASSERT(sem->count == 0, "semaphore has waiters and %ju units", (uintmax_t)sem->count);
        kl_sync__grant(w, 0); /* the unit goes straight to the waiter */
        return;
    }
    KL_ASSERT(sem->count < UINT64_MAX, "semaphore count overflow");
    sem->count++;
}

/* ---- barrier -------------------------------------------------------------- */

int kl_barrier_init(struct kl_barrier *b, uint32_t parties)
{
    if (parties == 0)
        return -EINVAL;
    kl_list_init(&b->waiters);
    b->parties = parties;
    b->rounds = 0;
    return 0;
}

int kl_barrier_wait(struct kl_barrier *b, uint64_t timeout_ns)
{
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_barrier_wait()");
    /* The queued parties are the round's arrivals; one that was cancelled or
     * timed out but has not run yet withdraws here. */
    kl_sync__purge(&b->waiters);
    KL_ASSERT(kl_list_len(&b->waiters) < b->parties, "barrier round overfull");
    if (kl_list_len(&b->waiters) + 1 == b->parties) {
        size_t woken = kl_sync__grant_all(&b->waiters, 0);
        KL_ASSERT(woken + 1 == b->parties, "barrier released %zu of %u", woken + 1, b->parties);
        b->rounds++;
        return KL_BARRIER_SERIAL;
    }
    return kl_sync__wait(&b->waiters, &w, "barrier", timeout_ns);
}

/* ---- future --------------------------------------------------------------- */

void kl_future_init(struct kl_future *fut)
{
    kl_list_init(&fut->waiters);
    fut->value = 0;
    fut->ready = false;
}

void kl_future_set(struct kl_future *fut, intptr_t value)
{
    KL_ASSERT(!fut->ready, "kl_future_set() on a future already set");
    fut->value = value;
    fut->ready = true;
    kl_sync__grant_all(&fut->waiters, 0);
    KL_ASSERT(kl_list_empty(&fut->waiters));
}

int kl_future_wait(struct kl_future *fut, intptr_t *value, uint64_t timeout_ns)
{
    int rc = 0;
    if (!fut->ready) {
        struct kl_sync_waiter w;
        kl_sync__waiter_init(&w, "kl_future_wait()");
        rc = kl_sync__wait(&fut->waiters, &w, "future", timeout_ns);
    }
    if (rc == 0) {
        KL_ASSERT(fut->ready, "future waiter woken without a value");
        if (value)
            *value = fut->value;
    }
    return rc;
}
