/* keel/sync.h: fiber sync primitives: event, signal, mutex, reader-writer
 * lock, semaphore, barrier, bounded channel and future.
 *
 * Every object is caller-owned and initialised with its _init function; none
 * allocates. A fiber that must wait links a waiter node that lives on its own
 * stack into the object's FIFO wait queue (a kl_list) and parks in
 * kl_fiber_suspend(). The other side wakes it with kl_fiber_resume().
 *
 * Three rules hold for all of them:
 *
 * - FIFO and hand-off. Waiters are served in arrival order. A release does
 *   not just wake the next waiter and let it race for the resource: it hands
 *   the resource over (mutex ownership, a semaphore unit, a channel slot or
 *   item) before the woken fiber runs, so a newcomer cannot barge ahead of it.
 *   A fast path never overtakes a queue: trylock on a free mutex with waiters
 *   queued cannot happen (a free mutex has none), and a semaphore with waiters
 *   has a count of 0.
 * - Timeouts. Every wait takes `timeout_ns`, relative; 0 (or
 *   KL_FIBER_FOREVER) means none. A wait that expires returns -ETIMEDOUT. A
 *   finite timeout needs the scheduler's timeout hooks (-EOPNOTSUPP without).
 * - Cancellation. A wait in a cancelled fiber returns -ECANCELED. A fast path
 *   that need not block still succeeds. A waiter that times out or is
 *   cancelled leaves the queue and never consumes a wake-up: a release that
 *   finds it already woken (not suspended) skips it and serves the next one.
 *   A waiter that was handed the resource keeps it, even if it is cancelled
 *   before it runs (its wait returns 0 and it must release as usual).
 *
 * Blocking calls must run in a fiber; releases, sets, posts, notifies and
 * closes may also run on the main context. Like the scheduler, nothing here
 * is thread-safe: an object belongs to the fibers of one thread.
 */
#ifndef KEEL_SYNC_H
#define KEEL_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/fiber.h"
#include "keel/list.h"

/* A wait's timeout meaning "none" (KL_FIBER_FOREVER means none too). */
#define KL_SYNC_NO_TIMEOUT 0

/* ---- event: level-triggered --------------------------------------------- */

/* While set, waits return at once; setting wakes every waiter. */
struct kl_event {
    struct kl_list waiters;
    bool set;
};

/* Initialise an event, set or not. */
void kl_event_init(struct kl_event *ev, bool set);

/* Set the event and wake every waiter (each one's wait returns 0). */
void kl_event_set(struct kl_event *ev);

/* Clear the event; waiters already woken still return 0. */
void kl_event_reset(struct kl_event *ev);

/* True while the event is set. */
static inline bool kl_event_is_set(const struct kl_event *ev) { return ev->set; }

/* Wait until the event is set. 0, -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_event_wait(struct kl_event *ev, uint64_t timeout_ns);

/* ---- signal: edge-triggered --------------------------------------------- */

/* A notify wakes the fibers waiting at that moment; it is not remembered. */
struct kl_signal {
    struct kl_list waiters;
};

/* Initialise a signal with no waiters. */
void kl_signal_init(struct kl_signal *sig);

/* Wait for the next notify. 0, -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_signal_wait(struct kl_signal *sig, uint64_t timeout_ns);

/* Wake the longest-waiting fiber; returns how many were woken (0 or 1). */
size_t kl_signal_notify_one(struct kl_signal *sig);

/* Wake every current waiter, in arrival order; returns how many. */
size_t kl_signal_notify_all(struct kl_signal *sig);

/* ---- mutex: owner-checked, FIFO hand-off -------------------------------- */

struct kl_mutex {
    struct kl_list waiters;
    kl_fiber_id owner; /* KL_FIBER_ID_NONE when free */
};

/* Initialise an unlocked mutex. */
void kl_mutex_init(struct kl_mutex *m);

/* Lock; asserts the caller does not hold it. 0, -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_mutex_lock(struct kl_mutex *m, uint64_t timeout_ns);

/* Lock if free; 0 or -EBUSY. Asserts the caller does not hold it. */
int kl_mutex_trylock(struct kl_mutex *m);

/* Unlock, handing the mutex to the first waiter; asserts the caller owns it. */
void kl_mutex_unlock(struct kl_mutex *m);

/* True while some fiber holds the mutex. */
static inline bool kl_mutex_locked(const struct kl_mutex *m)
{
    return !kl_fiber_id_eq(m->owner, KL_FIBER_ID_NONE);
}

/* ---- reader-writer lock: FIFO phases ------------------------------------ */

/* One FIFO queue of readers and writers. A lock is granted at once only when
 * it is compatible with the holders and nobody waits; a release grants the
 * head of the queue: one writer, or the whole run of readers at the head.
 * So neither side starves (writer preference starves readers under a steady
 * stream of writers), and a writer waits at most for the readers ahead of it.
 * Readers are counted, not recorded: a read unlock can only check that some
 * reader holds the lock. The writer is owner-checked like a mutex. */
struct kl_rwlock {
    struct kl_list waiters;
    uint32_t readers;   /* fibers holding it for reading */
    kl_fiber_id writer; /* the fiber holding it for writing, or none */
};

/* Initialise an unlocked reader-writer lock. */
void kl_rwlock_init(struct kl_rwlock *rw);

/* Lock for reading. 0, -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_rwlock_rdlock(struct kl_rwlock *rw, uint64_t timeout_ns);

/* Lock for reading if that needs no wait; 0 or -EBUSY. */
int kl_rwlock_tryrdlock(struct kl_rwlock *rw);

/* Drop a read lock; asserts that readers hold the lock. */
void kl_rwlock_rdunlock(struct kl_rwlock *rw);

/* Lock for writing; asserts the caller is not the writer. 0, -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP.
 */
int kl_rwlock_wrlock(struct kl_rwlock *rw, uint64_t timeout_ns);

/* Lock for writing if that needs no wait; 0 or -EBUSY. */
int kl_rwlock_trywrlock(struct kl_rwlock *rw);

/* Drop the write lock; asserts the caller is the writer. */
void kl_rwlock_wrunlock(struct kl_rwlock *rw);

/* ---- counting semaphore ------------------------------------------------- */

struct kl_sem {
    struct kl_list waiters; /* non-empty only while count == 0 */
    uint64_t count;
};

/* Initialise a semaphore holding `count` units. */
void kl_sem_init(struct kl_sem *sem, uint64_t count);

/* Take one unit. 0, -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_sem_wait(struct kl_sem *sem, uint64_t timeout_ns);

/* Take one unit if one is free; 0 or -EAGAIN. */
int kl_sem_trywait(struct kl_sem *sem);

/* Give one unit back: to the first waiter if any, else to the count. */
void kl_sem_post(struct kl_sem *sem);

/* Free units. */
static inline uint64_t kl_sem_value(const struct kl_sem *sem) { return sem->count; }

/* ---- barrier: N parties, reusable --------------------------------------- */

/* kl_barrier_wait()'s result for the one fiber whose arrival released the others. */
#define KL_BARRIER_SERIAL 1

/* A party that times out or is cancelled withdraws its arrival. */
struct kl_barrier {
    struct kl_list waiters; /* the parties that have arrived in this round */
    uint32_t parties;
    uint64_t rounds; /* completed rounds */
};

/* Initialise a barrier for `parties` fibers; 0 or -EINVAL (0 parties). */
int kl_barrier_init(struct kl_barrier *b, uint32_t parties);

/* Arrive and wait for the round to fill. KL_BARRIER_SERIAL for the last
 * arrival, 0 for the others, -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_barrier_wait(struct kl_barrier *b, uint64_t timeout_ns);

/* ---- bounded channel ---------------------------------------------------- */

/* Fixed-size items in a caller-provided ring of `capacity` items (0: an
 * unbuffered channel where every send meets a receive). Items keep send
 * order. A sender blocked on a full ring has its item moved in as soon as a
 * slot frees, before it runs again; a receiver blocked on an empty ring is
 * handed the next item sent. After close, sends fail with -EPIPE, receives
 * drain what is buffered and then fail with -EPIPE; blocked senders and
 * receivers are woken with -EPIPE. */
struct kl_chan {
    struct kl_list senders;   /* non-empty only while the ring is full */
    struct kl_list receivers; /* non-empty only while the ring is empty */
    unsigned char *buf;
    size_t item_size;
    size_t capacity;
    size_t head;  /* index of the oldest item */
    size_t count; /* items in the ring */
    bool closed;
};

/* Initialise a channel over `buf` (capacity * item_size bytes, may be NULL
 * when capacity is 0); 0 or -EINVAL. */
int kl_chan_init(struct kl_chan *ch, void *buf, size_t item_size, size_t capacity);

/* Send a copy of *item. 0, -EPIPE (closed), -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_chan_send(struct kl_chan *ch, const void *item, uint64_t timeout_ns);

/* Send without waiting; 0, -EAGAIN (full) or -EPIPE. */
int kl_chan_try_send(struct kl_chan *ch, const void *item);

/* Receive the oldest item into *item. 0, -EPIPE (closed and drained),
 * -ETIMEDOUT, -ECANCELED, -EOPNOTSUPP. */
int kl_chan_recv(struct kl_chan *ch, void *item, uint64_t timeout_ns);

/* Receive without waiting; 0, -EAGAIN (empty) or -EPIPE. */
int kl_chan_try_recv(struct kl_chan *ch, void *item);

/* Close the channel (idempotent) and wake every blocked fiber with -EPIPE. */
void kl_chan_close(struct kl_chan *ch);

/* Items buffered in the ring. */
static inline size_t kl_chan_len(const struct kl_chan *ch) { return ch->count; }

/* True once the channel is closed. */
static inline bool kl_chan_closed(const struct kl_chan *ch) { return ch->closed; }

/* ---- future (the promise side is kl_future_set) ------------------------- */

struct kl_future {
    struct kl_list waiters;
    intptr_t value;
    bool ready;
};

/* Initialise a future with no value. */
void kl_future_init(struct kl_future *fut);

/* Set the value and wake every waiter; asserts it was not set before. */
void kl_future_set(struct kl_future *fut, intptr_t value);

/* Wait for the value, store it in *value (may be NULL). 0, -ETIMEDOUT,
 * -ECANCELED, -EOPNOTSUPP. */
int kl_future_wait(struct kl_future *fut, intptr_t *value, uint64_t timeout_ns);

/* True once the value is set. */
static inline bool kl_future_ready(const struct kl_future *fut) { return fut->ready; }

#endif /* KEEL_SYNC_H */
