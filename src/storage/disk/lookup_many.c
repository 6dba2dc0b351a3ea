/* storage/disk/lookup_many.c: the disk engine's batched lookup: every read
 * of a batch in flight at once.
 *
 * A lookup parks its fiber until its record is read, so n lookups one after
 * the other keep one read in flight. kl_engine_lookup_many() instead runs
 * each key but the first in a fiber of its own (the calling fiber takes the
 * first), so the reactor hands all n reads to the kernel in one submission
 * and the device sees the batch's whole depth; then the caller awaits the
 * fibers (disk_in_fibers, which the dump's reads use too). They write into the caller's arrays, so
 * the caller waits for them even when it is cancelled (kl_fiber_await). A batch leaves a quarter of
 * the thread's fiber slots free: the server's connection runners and posted
 * jobs (a drain, `stats conns`) need slots too, and many connections' batches
 * at once could take them all. Keys without a fiber (outside a reactor, or
 * past that reserve) are looked up in turn.
 */
#include "disk_internal.h"

#include "keel/assert.h"
#include "keel/fiber.h"
#include "keel/reactor.h"

struct one_lookup {
    struct kl_engine *e;
    const struct kl_key *key;
    struct kl_item *item;
    int *result;
};

static intptr_t lookup_fiber(void *arg)
{
    struct one_lookup *l = arg;
    *l->result = disk_lookup_op(l->e, l->key->p, l->key->len, NULL, l->item);
    return 0;
}

/* Each lookup's first step misses the cache on its index slots (the index
 * is far larger than the cache); asking for all the batch's slots first lets
 * those misses overlap: the shards, then their tables. */
static void prefetch_index(struct disk_engine *de, size_t n, const struct kl_key *keys)
{
    uint64_t hv[KL_LOOKUP_MANY_MAX];
    for (size_t i = 0; i < n; i++) {
        hv[i] = disk_hash(keys[i].p, (uint32_t)keys[i].len);
        __builtin_prefetch(&de->ix.shards[ix_shard_of(hv[i])]);
    }
    for (size_t i = 0; i < n; i++)
        ix_prefetch(&de->ix.shards[ix_shard_of(hv[i])], ix_tag_of(hv[i]));
}

_Static_assert(KL_LOOKUP_MANY_MAX <= DISK_FIBERS_MAX, "a batch's lookups fit one wave");

void disk_lookup_many_op(struct kl_engine *e, size_t n, const struct kl_key *keys,
                         struct kl_item *items, int *results)
{
    KL_ASSERT(n <= KL_LOOKUP_MANY_MAX, "%zu keys in one batch", n);
    if (n > 1)
        prefetch_index(disk_of(e), n, keys);
    struct one_lookup jobs[KL_LOOKUP_MANY_MAX];
    for (size_t i = 0; i < n; i++)
        jobs[i] = (struct one_lookup){e, &keys[i], &items[i], &results[i]};
    disk_in_fibers((uint32_t)n, lookup_fiber, jobs, sizeof jobs[0], "disk-get");
}

void disk_in_fibers(uint32_t n, intptr_t (*fn)(void *), void *args, size_t stride, const char *name)
{
    KL_ASSERT(n <= DISK_FIBERS_MAX, "%u jobs in one wave", n);
    char *arg = args;
    kl_fiber_id ids[DISK_FIBERS_MAX];
    uint32_t spare = 0, total = 0;
    if (n > 1 && kl_reactor_active() && !kl_fiber_id_eq(kl_fiber_self(), KL_FIBER_ID_NONE)) {
        kl_sched_slots(&spare, &total);
        spare = spare > total / 4 ? spare - total / 4 : 0; /* the reserve stays free */
    }
    for (uint32_t i = 1; i < n; i++) {
        ids[i] = KL_FIBER_ID_NONE;
        if (spare > 0 &&
            kl_fiber_spawn(&ids[i], name, fn, arg + i * stride, KL_FIBER_PRIO_NORMAL) == 0)
            spare--;
        else
            ids[i] = KL_FIBER_ID_NONE;
    }
    if (n > 0)
        fn(arg);
    for (uint32_t i = 1; i < n; i++) {
        if (kl_fiber_id_eq(ids[i], KL_FIBER_ID_NONE)) {
            fn(arg + i * stride);
            continue;
        }
        int rc = kl_fiber_await(ids[i], NULL);
        KL_ASSERT(rc == 0, "await of a %s fiber: %d", name, rc);
    }
}
