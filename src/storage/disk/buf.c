/* storage/disk/buf.c: aligned buffers for records, in size classes.
 *
 * Each class (4 KiB, 8 KiB, ... up to the largest record) is a kl_pool: one
 * mapping, made when the class is first used (most workloads use one or
 * two), pages touched only when first handed out, and every buffer
 * 4096-aligned (object sizes are multiples of 4096 and the mapping is
 * page-aligned), as O_DIRECT needs. A pool is single-threaded, so each class
 * has a spinlock; the critical section is a pointer pop.
 */
#include "disk_internal.h"

#include "keel/assert.h"

#include <errno.h>

/* Reserve about this much address space per class (untouched until used),
 * and room for at least 64 buffers. */
#define CLASS_SPACE ((size_t)256 << 20)

int bufpool_init(struct bufpool *bp, uint32_t largest)
{
    memset(bp, 0, sizeof *bp);
    uint32_t n = 1;
    while (n < BUF_CLASSES && ((size_t)BUF_MIN << (n - 1)) < largest)
        n++;
    bp->nclasses = n;
    pthread_mutex_init(&bp->init_lock, NULL);
    for (uint32_t c = 0; c < n; c++)
        pthread_spin_init(&bp->lock[c], PTHREAD_PROCESS_PRIVATE);
    return 0;
}

void bufpool_destroy(struct bufpool *bp)
{
    for (uint32_t c = 0; c < bp->nclasses; c++) {
        if (atomic_load(&bp->ready[c]))
            kl_pool_destroy(&bp->pool[c]);
        pthread_spin_destroy(&bp->lock[c]);
    }
    if (bp->nclasses)
        pthread_mutex_destroy(&bp->init_lock);
    bp->nclasses = 0;
}

/* Map class c on first use; false if that failed. */
static bool class_ready(struct bufpool *bp, uint32_t c)
{
    if (KL_LIKELY(atomic_load_explicit(&bp->ready[c], memory_order_acquire)))
        return true;
    pthread_mutex_lock(&bp->init_lock);
    if (!atomic_load(&bp->ready[c])) {
        size_t size = (size_t)BUF_MIN << c, cap = CLASS_SPACE / size;
        if (kl_pool_init(&bp->pool[c], "disk-buffers", size, cap < 64 ? 64 : cap) == 0)
            atomic_store_explicit(&bp->ready[c], true, memory_order_release);
    }
    pthread_mutex_unlock(&bp->init_lock);
    return atomic_load(&bp->ready[c]);
}

char *buf_get(struct bufpool *bp, uint32_t len, uint32_t *cls)
{
    uint32_t c = 0;
    while (c < bp->nclasses && ((size_t)BUF_MIN << c) < len)
        c++;
    if (c == bp->nclasses || !class_ready(bp, c))
        return NULL;
    pthread_spin_lock(&bp->lock[c]);
    char *b = kl_pool_get(&bp->pool[c]);
    pthread_spin_unlock(&bp->lock[c]);
    *cls = c;
    return b;
}

void buf_put(struct bufpool *bp, char *b, uint32_t cls)
{
    pthread_spin_lock(&bp->lock[cls]);
    kl_pool_put(&bp->pool[cls], b);
    pthread_spin_unlock(&bp->lock[cls]);
}
