/* keel/pool.h: fixed-capacity object pools.
 *
 * A pool hands out objects of one size from a single anonymous mapping made
 * at creation: O(1) get and put, no malloc afterwards, and no page touched
 * before its object is first handed out (fresh objects come from a bump index,
 * returned ones from a free list threaded through the objects themselves).
 * A bitmap in the same mapping tracks which objects are out, so putting an
 * object twice, or one that is not the pool's, is caught by an assertion.
 * A depleted pool returns NULL with errno ENOMEM: running out is an error
 * for the caller to handle, not a crash. Under ASan, objects in the pool are
 * poisoned while they are free.
 */
#ifndef KEEL_POOL_H
#define KEEL_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kl_pool {
    char *objects;      /* first object; the mapping starts here */
    uint64_t *out_bits; /* one bit per object, set while handed out */
    void *free_list;    /* returned objects, linked through their first word */
    size_t obj_size;    /* object size rounded up to the alignment */
    size_t capacity;
    size_t fresh; /* objects [fresh, capacity) were never handed out */
    size_t in_use;
    size_t map_len;
    uint64_t depleted; /* times a get found the pool empty */
    const char *name;
};

/* Create a pool of `capacity` objects of `obj_size` bytes (aligned to 16).
 * 0, -EINVAL or -ENOMEM. `name` must outlive the pool. */
int kl_pool_init(struct kl_pool *pool, const char *name, size_t obj_size, size_t capacity);

/* Release the pool's mapping. Objects still out become invalid. */
void kl_pool_destroy(struct kl_pool *pool);

/* An object (contents unspecified), or NULL with errno = ENOMEM when depleted. */
void *kl_pool_get(struct kl_pool *pool);

/* Return an object obtained from this pool. */
void kl_pool_put(struct kl_pool *pool, void *obj);

/* True when `ptr` points at the start of one of the pool's objects. */
bool kl_pool_owns(const struct kl_pool *pool, const void *ptr);

/* Index of an object of the pool, in [0, capacity). */
size_t kl_pool_index(const struct kl_pool *pool, const void *obj);

/* The object at `index` (handed out or not). */
void *kl_pool_at(const struct kl_pool *pool, size_t index);

/* Objects currently handed out. */
static inline size_t kl_pool_in_use(const struct kl_pool *pool) { return pool->in_use; }

/* Objects that can still be handed out. */
static inline size_t kl_pool_available(const struct kl_pool *pool)
{
    return pool->capacity - pool->in_use;
}

#endif /* KEEL_POOL_H */
