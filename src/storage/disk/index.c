/* storage/disk/index.c: the disk engine's in-memory index.
 *
 * 4096 shards, each an open-addressing table of 16-byte entries with linear
 * probing under its own spinlock. An entry's home slot comes from its 20-bit
 * tag (fastrange), so a table can be resized and an entry deleted by
 * backward shift without the key. A table grows by a quarter when it passes
 * 85% full, which keeps it above 68% full after growing: 16-byte entries
 * then cost at most about 24 bytes per key, whatever the key's length.
 *
 * The shards' first tables are carved from one mapping (the arena), sized
 * for the keys expected (a checkpoint's count at start-up) and asked for
 * huge pages: 10 million keys are 200 MB of index, and faulting that in
 * 4 KiB at a time was most of a restart. Fresh mappings are zero, so
 * nothing is cleared either. A table that grows moves to malloc'ed memory
 * and gives the whole pages of its old place back to the kernel.
 */
#include "disk_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIN_CAP 16u

static inline uint32_t home(uint32_t tag, uint32_t cap)
{
    return (uint32_t)(((uint64_t)tag * cap) >> 20);
}

static int shard_alloc(struct ix_shard *s, uint32_t cap)
{
    struct ix_entry *e = calloc(cap, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    s->e = e;
    s->cap = cap;
    s->in_arena = false;
    return 0;
}

/* Release a shard's table: free() it, or return its whole pages in the arena. */
static void table_release(struct ix_entry *e, uint32_t cap, bool in_arena)
{
    if (!in_arena) {
        free(e);
        return;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)e + page - 1) & ~(page - 1);
    uintptr_t to = ((uintptr_t)(e + cap)) & ~(page - 1);
    if (to > from)
        madvise((void *)from, to - from, MADV_DONTNEED); /* advice: failure only costs memory */
}

int ix_init(struct ix *x, uint64_t expect_keys)
{
    x->arena = NULL;
    x->shards = calloc(IX_NSHARDS, sizeof *x->shards);
    if (x->shards == NULL)
        return -ENOMEM;
    uint64_t per = expect_keys / IX_NSHARDS * 100 / 80 + MIN_CAP;
    uint32_t cap = per > (1u << 20) ? (1u << 20) : (uint32_t)per;
    x->arena_len = (size_t)IX_NSHARDS * cap * sizeof(struct ix_entry);
    void *m = mmap(NULL, x->arena_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        free(x->shards);
        x->shards = NULL;
        return -ENOMEM;
    }
    madvise(m, x->arena_len, MADV_HUGEPAGE); /* advice: without it, 4 KiB pages */
    x->arena = m;
    for (uint32_t i = 0; i < IX_NSHARDS; i++) {
        struct ix_shard *s = &x->shards[i];
        pthread_spin_init(&s->lock, PTHREAD_PROCESS_PRIVATE);
        s->e = (struct ix_entry *)(x->arena + (size_t)i * cap * sizeof(struct ix_entry));
        s->cap = cap;
        s->in_arena = true;
    }
    return 0;
}

void ix_free(struct ix *x)
{
    if (x->shards == NULL)
        return;
    for (uint32_t i = 0; i < IX_NSHARDS; i++) {
        if (!x->shards[i].in_arena)
            free(x->shards[i].e);
        pthread_spin_destroy(&x->shards[i].lock);
    }
    free(x->shards);
    x->shards = NULL;
    if (x->arena)
        munmap(x->arena, x->arena_len);
    x->arena = NULL;
}

void ix_prefetch(const struct ix_shard *s, uint32_t tag)
{
    /* Without the lock: a table growing meanwhile makes the hint stale,
     * never wrong (a prefetch does not fault). */
    struct ix_entry *e = __atomic_load_n(&s->e, __ATOMIC_RELAXED);
    uint32_t cap = __atomic_load_n(&s->cap, __ATOMIC_RELAXED);
    uint32_t at = home(tag, cap);
    uint32_t last = at + IX_PREFETCH_SLOTS < cap ? at + IX_PREFETCH_SLOTS : cap - 1;
    for (uint32_t i = at; i <= last; i += 64 / sizeof *e)
        __builtin_prefetch(&e[i]);
    __builtin_prefetch(&e[last]);
}

uint32_t ix_find(struct ix_shard *s, uint32_t tag, uint32_t *slots, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t i = home(tag, s->cap);; i = i + 1 == s->cap ? 0 : i + 1) {
        struct ix_entry e = s->e[i];
        if (!(e.w1 & IX_USED))
            return n;
        if (ix_tag(e) == tag) {
            if (n < max)
                slots[n] = i;
            n++;
        }
    }
}

static void place(struct ix_shard *s, struct ix_entry e)
{
    uint32_t i = home(ix_tag(e), s->cap);
    while (s->e[i].w1 & IX_USED)
        i = i + 1 == s->cap ? 0 : i + 1;
    s->e[i] = e;
}

int ix_insert(struct ix_shard *s, struct ix_entry e)
{
    if ((uint64_t)(s->count + 1) * 100 > (uint64_t)s->cap * 85) {
        struct ix_shard n = {0};
        uint32_t cap = s->cap + s->cap / 4 + 1;
        if (shard_alloc(&n, cap) != 0)
            return -ENOMEM;
        for (uint32_t i = 0; i < s->cap; i++)
            if (s->e[i].w1 & IX_USED)
                place(&n, s->e[i]);
        table_release(s->e, s->cap, s->in_arena);
        /* atomic: ix_prefetch() reads both without the lock */
        __atomic_store_n(&s->e, n.e, __ATOMIC_RELAXED);
        __atomic_store_n(&s->cap, n.cap, __ATOMIC_RELAXED);
        s->in_arena = false;
    }
    place(s, e);
    s->count++;
    return 0;
}

void ix_remove(struct ix_shard *s, uint32_t slot)
{
    uint32_t cap = s->cap, hole = slot;
    for (uint32_t i = hole + 1 == cap ? 0 : hole + 1;; i = i + 1 == cap ? 0 : i + 1) {
        struct ix_entry e = s->e[i];
        if (!(e.w1 & IX_USED))
            break;
        /* move e back into the hole unless its home lies after the hole
         * (cyclically within (hole, i]) */
        uint32_t h = home(ix_tag(e), cap);
        bool stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i);
        if (!stays) {
            s->e[hole] = e;
            hole = i;
        }
    }
    s->e[hole] = (struct ix_entry){0, 0};
    s->count--;
}

uint32_t ix_slot_of(struct ix_shard *s, uint64_t w0)
{
    uint32_t tag = (uint32_t)(w0 >> 44);
    for (uint32_t i = home(tag, s->cap);; i = i + 1 == s->cap ? 0 : i + 1) {
        struct ix_entry e = s->e[i];
        if (!(e.w1 & IX_USED))
            return UINT32_MAX;
        if (e.w0 == w0)
            return i;
    }
}

uint64_t ix_sweep(struct ix *x, bool (*drop)(void *arg, struct ix_entry e), void *arg)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < IX_NSHARDS; i++) {
        struct ix_shard *s = &x->shards[i];
        pthread_spin_lock(&s->lock);
        for (uint32_t j = 0; j < s->cap; j++) {
            /* a removal shifts a later entry into j: look at j again */
            while ((s->e[j].w1 & IX_USED) && drop(arg, s->e[j])) {
                ix_remove(s, j);
                n++;
            }
        }
        pthread_spin_unlock(&s->lock);
    }
    return n;
}

void ix_usage(struct ix *x, uint64_t *bytes, uint64_t *entries)
{
    uint64_t b = (uint64_t)IX_NSHARDS * sizeof(struct ix_shard), n = 0;
    for (uint32_t i = 0; i < IX_NSHARDS; i++) {
        struct ix_shard *s = &x->shards[i];
        pthread_spin_lock(&s->lock);
        b += (uint64_t)s->cap * sizeof(struct ix_entry);
        n += s->count;
        pthread_spin_unlock(&s->lock);
    }
    *bytes = b;
    *entries = n;
}
