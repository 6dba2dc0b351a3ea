/* Fixed-capacity object pools (keel/pool.h).
 *
 * Layout of the one mapping: [objects][out-bitmap]. get takes from the free
 * list first, then from the never-used tail; both O(1).
 */
#include "keel/pool.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "keel/assert.h"

#if defined(__SANITIZE_ADDRESS__) || defined(KEEL_SANITIZE)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define POOL_ALIGN 16

int kl_pool_init(struct kl_pool *pool, const char *name, size_t obj_size, size_t capacity)
{
    memset(pool, 0, sizeof *pool);
    if (obj_size == 0 || capacity == 0)
        return -EINVAL;
    if (obj_size < sizeof(void *))
        obj_size = sizeof(void *);
    size_t size = (obj_size + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
    if (capacity > SIZE_MAX / 2 / size)
        return -EINVAL;
    size_t objects_len = size * capacity;
    size_t bitmap_len = (capacity + 63) / 64 * sizeof(uint64_t);
    size_t map_len = objects_len + bitmap_len;

    void *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return -ENOMEM;
    pool->objects = map;
    pool->out_bits = (uint64_t *)(void *)(pool->objects + objects_len);
    pool->obj_size = size;
    pool->capacity = capacity;
    pool->map_len = map_len;
    pool->name = name;
    POISON(pool->objects, objects_len);
    return 0;
}

void kl_pool_destroy(struct kl_pool *pool)
{
    if (pool->objects) {
        UNPOISON(pool->objects, pool->obj_size * pool->capacity);
        munmap(pool->objects, pool->map_len);
    }
    memset(pool, 0, sizeof *pool);
}

static inline void mark_out(struct kl_pool *pool, size_t index, bool out)
{
    uint64_t bit = UINT64_C(1) << (index % 64);
    uint64_t *word = &pool->out_bits[index / 64];
    KL_ASSERT(((*word & bit) != 0) != out, "pool %s: object %zu is already %s", pool->name, index,
              out ? "handed out" : "free");
    *word ^= bit;
}

void *kl_pool_get(struct kl_pool *pool)
{
    char *obj;
    if (pool->free_list) {
        obj = pool->free_list;
        UNPOISON(obj, sizeof(void *));
        pool->free_list = *(void **)(void *)obj;
    } else if (pool->fresh < pool->capacity) {
        obj = pool->objects + pool->fresh++ * pool->obj_size;
    } else {
        pool->depleted++;
        errno = ENOMEM;
        return NULL;
    }
    UNPOISON(obj, pool->obj_size);
    mark_out(pool, (size_t)(obj - pool->objects) / pool->obj_size, true);
    pool->in_use++;
    return obj;
}

bool kl_pool_owns(const struct kl_pool *pool, const void *ptr)
{
    const char *p = ptr;
    if (p < pool->objects || p >= pool->objects + pool->obj_size * pool->capacity)
        return false;
    return (size_t)(p - pool->objects) % pool->obj_size == 0;
}

size_t kl_pool_index(const struct kl_pool *pool, const void *obj)
{
    KL_ASSERT(kl_pool_owns(pool, obj), "pool %s does not own %p", pool->name, obj);
    return (size_t)((const char *)obj - pool->objects) / pool->obj_size;
}

void *kl_pool_at(const struct kl_pool *pool, size_t index)
{
    KL_ASSERT(index < pool->capacity, "pool %s: index %zu past capacity %zu", pool->name, index,
              pool->capacity);
    return pool->objects + index * pool->obj_size;
}

void kl_pool_put(struct kl_pool *pool, void *obj)
{
    size_t index = kl_pool_index(pool, obj);
    mark_out(pool, index, false);
    KL_ASSERT(pool->in_use > 0);
    pool->in_use--;
    *(void **)obj = pool->free_list;
    pool->free_list = obj;
    POISON(obj, pool->obj_size); /* the pool unpoisons the link word when it reads it */
}
