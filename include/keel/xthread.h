/* keel/xthread.h: work that crosses threads, to and from a reactor.
 *
 * Fibers never leave their thread, so threads talk by posting work.
 *
 * The inbox. Every reactor has one. Another thread (or the reactor's own)
 * posts a struct kl_xmsg that the caller embeds in its own object; the
 * message's `fn` then runs on the reactor's thread, in the main context,
 * within a loop iteration. It must not block; it may spawn fibers, resume
 * them, set events and post further messages. Messages from one poster run
 * in the order they were posted (FIFO per producer); messages of different
 * posters interleave.
 *
 * The inbox is a lock-free stack: a post is one compare-and-swap on its head
 * (retried only when another post or the reactor won the race), and the
 * reactor takes the whole stack with one exchange and reverses it. So the
 * reactor never waits for a poster, even one preempted mid-post. A post that
 * finds the inbox empty also writes the reactor's eventfd (the reactor may be
 * asleep); later posts until the next drain write nothing. io_uring keeps a
 * read of that eventfd armed, epoll has it registered.
 *
 * Other threads reach a reactor through a counted reference, taken on the
 * reactor's thread with kl_reactor_ref() and dropped with kl_reactor_unref()
 * by whoever holds it last. The reference outlives the reactor: once
 * kl_reactor_destroy() has begun, a post returns -ESHUTDOWN. Messages that
 * made it in before run from kl_reactor_destroy() itself, on its thread, so
 * that each is handed back to its owner exactly once. There the reactor is
 * already gone (kl_reactor_active() is false) and so, usually, is the
 * scheduler: such a callback should only release its message, not resume or
 * spawn fibers.
 *
 * While some thread other than the loop could still post (a reference is
 * held besides the reactor's own, or a message waits), a loop with
 * suspended fibers and nothing else to wait for blocks for the next post
 * instead of giving up with -EDEADLK. Messages run on the loop's turns,
 * whether fibers wait or stay busy, but kl_reactor_run() still returns when
 * no fiber is left: a thread that serves only its inbox keeps a fiber parked
 * until a message tells it to stop. The same holds in kl_reactor_shutdown()
 * and kl_sched_shutdown(): a fiber that a callback spawns after the cancel
 * and that then parks keeps them waiting for posts; a callback can check
 * kl_reactor_stopping().
 *
 * kl_defer_to_thread() runs a blocking call on a worker thread while the
 * calling fiber parks and the reactor's other fibers go on. The workers are
 * the reactor's pool (the same that serves file I/O on the epoll backend):
 * started on first use, grown while every worker is busy, up to a small
 * bound; jobs beyond it queue in FIFO order.
 */
#ifndef KEEL_XTHREAD_H
#define KEEL_XTHREAD_H

#include <stdint.h>

/* A message for another reactor's thread, embedded in the caller's object
 * (find the object with kl_container_of). Set `fn`; `next` is the inbox's.
 * A message must not be posted again before its fn has started. */
struct kl_xmsg {
    struct kl_xmsg *next;
    void (*fn)(struct kl_xmsg *msg); /* runs on the target reactor's thread */
};

/* A counted handle to a reactor that any thread may use. */
struct kl_reactor_ref;

/* A new reference to the calling thread's reactor (asserts there is one);
 * hand it to another thread, which drops it with kl_reactor_unref(). */
struct kl_reactor_ref *kl_reactor_ref(void);

/* Drop a reference, from any thread; the last one frees the handle. */
void kl_reactor_unref(struct kl_reactor_ref *ref);

/* Post `msg` to `target` from any thread; its fn runs on the target's thread.
 * 0, or -ESHUTDOWN once the target is being destroyed (msg is not taken). */
int kl_reactor_post(struct kl_reactor_ref *target, struct kl_xmsg *msg);

/* Run fn(arg) on a worker thread while the calling fiber parks (fibers
 * only). 0 with fn's return value in *result (result may be NULL), or
 * -ECANCELED, or -EAGAIN when no worker thread could be started. A fiber
 * cancelled while waiting still waits for fn to return (the job lives on its
 * stack) and then returns -ECANCELED with *result set; a fiber already
 * cancelled on entry gets -ECANCELED and fn does not run. */
int kl_defer_to_thread(intptr_t (*fn)(void *arg), void *arg, intptr_t *result);

#endif /* KEEL_XTHREAD_H */
