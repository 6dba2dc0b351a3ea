/* sync_internal.h: the wait queue under every sync primitive (keel/sync.h).
 *
 * A waiter is a node on the waiting fiber's stack. It is linked into the
 * object's queue while its fiber sits in kl_sync__wait(). A releaser looks
 * for the first waiter whose fiber is still suspended (kl_sync__first_live();
 * a waiter whose fiber was already woken by a cancel or a timeout is unlinked
 * and skipped), does the hand-off (ownership, a unit, an item) and then wakes
 * it with kl_sync__grant(). The woken fiber trusts `granted`, not the value
 * its suspend returned: once granted, a wait succeeds. Only sync.c and
 * sync_chan.c include this header.
 */
#ifndef KEEL_RUNTIME_SYNC_INTERNAL_H
#define KEEL_RUNTIME_SYNC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/fiber.h"
#include "keel/list.h"

/* Internal to libkeel: never exported from libkeel.so, whatever the name. */
#pragma GCC visibility push(hidden)

struct kl_sync_waiter {
    struct kl_list_node node; /* in the object's queue while waiting */
    kl_fiber_id fiber;
    int result;      /* what the wait returns once granted (0 or -EPIPE) */
    bool granted;    /* set by the releaser before it resumes the fiber */
    bool writer;     /* reader-writer lock: wants to write */
    void *dst;       /* channel receiver: where the item goes */
    const void *src; /* channel sender: the item to send */
};

/* Prepare a waiter for the calling fiber; asserts it runs in a fiber. */
void kl_sync__waiter_init(struct kl_sync_waiter *w, const char *op);

/* Link `w` at the back of `q` and park until granted (returns w->result),
 * cancelled, or timed out (0 = no timeout); on failure `w` is unlinked. */
int kl_sync__wait(struct kl_list *q, struct kl_sync_waiter *w, const char *what,
                  uint64_t timeout_ns);

/* The first waiter whose fiber is still parked, unlinking the ones already
 * woken by a cancel or timeout ahead of it; NULL when there is none. */
struct kl_sync_waiter *kl_sync__first_live(struct kl_list *q);

/* Unlink every waiter whose fiber is no longer parked. */
void kl_sync__purge(struct kl_list *q);

/* Unlink a live waiter, mark it granted with `result` and make it ready. */
void kl_sync__grant(struct kl_sync_waiter *w, int result);

/* Grant every live waiter of `q` in FIFO order; returns how many. */
size_t kl_sync__grant_all(struct kl_list *q, int result);

#pragma GCC visibility pop

#endif /* KEEL_RUNTIME_SYNC_INTERNAL_H */
