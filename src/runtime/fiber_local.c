/* Fiber-local storage (keel/fiber.h).
 *
 * Keys are process-wide indices into a fixed array of KL_FIBER_LOCAL_SLOTS
 * pointers in every fiber (the main context has one too), so get and set are
 * one load or store and spawning clears the array. Keys are created at
 * start-up; a destructor runs on the fiber's stack when the fiber ends.
 */
#include "keel/fiber.h"

#include <errno.h>
#include <stdatomic.h>

#include "fiber_internal.h"

static void (*key_destructors[KL_FIBER_LOCAL_SLOTS])(void *);
static atomic_uint key_count;

int kl_fiber_key_create(kl_fiber_key *key, void (*destructor)(void *))
{
    unsigned n = atomic_fetch_add(&key_count, 1);
    if (n >= KL_FIBER_LOCAL_SLOTS) {
        atomic_fetch_sub(&key_count, 1);
        return -ENOSPC;
    }
    key_destructors[n] = destructor;
    *key = kl_fiber_key_from(n);
    return 0;
}

static inline uint32_t key_index(kl_fiber_key key)
{
    uint32_t i = kl_fiber_key_raw(key);
    KL_ASSERT(i < atomic_load_explicit(&key_count, memory_order_relaxed),
              "fiber-local key %u was never created", i);
    return i;
}

void *kl_fiber_local_get(kl_fiber_key key)
{
    return kl_sched__get()->current->local[key_index(key)];
}

void kl_fiber_local_set(kl_fiber_key key, void *value)
{
    kl_sched__get()->current->local[key_index(key)] = value;
}

void kl_fiber_local__release(struct kl_fiber *f)
{
    for (int i = 0; i < KL_FIBER_LOCAL_SLOTS; i++) {
        void *value = f->local[i];
        f->local[i] = NULL;
        if (value && key_destructors[i])
            key_destructors[i](value);
    }
}
