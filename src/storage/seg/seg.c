/* storage/seg/seg.c: the seg engine object: open, close, the clock and the
 * periodic sweep, flush, statistics and lookups.
 *
 * The clock is the caller's: kl_engine_tick() stores `now` and frees expired
 * segments; every operation reads `now` once and first applies a pending
 * delayed flush whose time has come, so a flush is exact to the second
 * without a timer. A lookup pins the item's segment (hashtable.c) and checks
 * the item's own exptime, so an expired item is never returned.
 */
#include "seg_internal.h"

#include "keel/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void do_flush(struct seg_engine *se, uint32_t now)
{
    pthread_mutex_lock(&se->evict_lock);
    ht_clear_all(se);
    pthread_spin_lock(&se->seglock);
    for (uint32_t c = 0; c < NCHAINS; c++) {
        for (int32_t id = se->chains[c].head; id != NIL; id = se->segs[id].next) {
            struct seg *s = &se->segs[id];
            if (atomic_load(&s->state) == SEG_ACTIVE)
                seg_seal_locked(se, (uint32_t)id);
            s->max_exp = 1;
        }
    }
    pthread_spin_unlock(&se->seglock);
    ttl_sweep(se, now);
    pthread_mutex_unlock(&se->evict_lock);
}

uint32_t seg_clock(struct seg_engine *se)
{
    uint32_t now = atomic_load_explicit(&se->now, memory_order_acquire);
    uint32_t fa = atomic_load_explicit(&se->flush_at, memory_order_acquire);
    if (KL_UNLIKELY(fa != 0 && now >= fa) && atomic_compare_exchange_strong(&se->flush_at, &fa, 0))
        do_flush(se, now);
    return now;
}

static void seg_tick(struct kl_engine *e, uint32_t now)
{
    struct seg_engine *se = seg_of(e);
    uint32_t old = atomic_load(&se->now);
    while (now > old && !atomic_compare_exchange_weak(&se->now, &old, now))
        ;
    now = seg_clock(se);
    ttl_sweep(se, now);
}

static void seg_flush(struct kl_engine *e, uint32_t delay)
{
    struct seg_engine *se = seg_of(e);
    uint32_t now = atomic_load(&se->now);
    if (delay == 0) {
        atomic_store(&se->flush_at, 0);
        do_flush(se, now);
    } else {
        atomic_store(&se->flush_at, now + delay);
    }
}

static int seg_lookup(struct kl_engine *e, const char *key, size_t klen,
                      const struct kl_lookup_opts *o, struct kl_item *it)
{
    struct seg_engine *se = seg_of(e);
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    if (o && (o->flags & KL_LOOKUP_TOUCH)) {
        int r = seg_touch_op(e, key, klen, o->exptime);
        if (r != KL_E_OK)
            return r;
    }
    uint32_t now = seg_clock(se);
    uint64_t h = key_hash(key, (uint32_t)klen), v;
    _Atomic uint64_t *slot = ht_lookup(se, h, key, (uint32_t)klen, &v);
    if (slot == NULL)
        return KL_E_NOT_FOUND;
    uint32_t id = SLOT_SEG(v), off = SLOT_OFF(v);
    struct item_view iv;
    item_read(seg_data(se, id) + off, &iv);
    if (iv.exptime != 0 && iv.exptime <= now) {
        seg_unpin(se, id);
        return KL_E_NOT_FOUND;
    }
    it->value = iv.value;
    it->vlen = iv.vlen;
    it->flags = iv.cflags;
    it->cas = (iv.bits & IT_HAS_CAS) ? iv.cas : seg_cas(se, id, off);
    it->exptime = iv.exptime;
    it->ttl_left = iv.exptime ? (int32_t)(iv.exptime - now) : -1;
    uint32_t born = se->segs[id].create_at;
    it->last_access = now > born ? now - born : 0;
    it->meta =
        ((v & SLOT_FETCHED) ? KL_META_FETCHED : 0) | ((iv.bits & IT_STALE) ? KL_META_STALE : 0);
    /* only meta gets take the recache token: a classic get of a stale item
     * must not leave the next mg without its win (memcached) */
    bool meta = o && (o->flags & (KL_LOOKUP_META | KL_LOOKUP_WIN));
    bool recache = meta && ((iv.bits & IT_STALE) || (o->flags & KL_LOOKUP_WIN) ||
                            (o->recache_ttl && iv.exptime && iv.exptime - now < o->recache_ttl));
    if (recache) {
        it->meta |= KL_META_WON;
        for (;;) {
            if (v & SLOT_WIN)
                break;
            if (atomic_compare_exchange_weak(slot, &v, v | SLOT_WIN)) {
                it->meta = (it->meta & ~(uint32_t)KL_META_WON) | KL_META_WIN;
                v |= SLOT_WIN;
                break;
            }
            if ((v & SLOT_LOC_MASK) != slot_loc(id, off))
                break; /* replaced meanwhile: someone else's copy */
        }
    } else if (v & SLOT_WIN) {
        it->meta |= KL_META_WON; /* the token went to another client: Z */
    }
    if (!(o && (o->flags & KL_LOOKUP_NOBUMP)))
        ht_bump(slot, v);
    it->priv[0] = id;
    return KL_E_OK;
}

static void seg_release(struct kl_engine *e, struct kl_item *it)
{
    seg_unpin(seg_of(e), (uint32_t)it->priv[0]);
    it->priv[0] = UINTPTR_MAX;
}

static void seg_stats(struct kl_engine *e, struct kl_engine_stats *s)
{
    struct seg_engine *se = seg_of(e);
    memset(s, 0, sizeof *s);
    pthread_spin_lock(&se->seglock);
    for (uint32_t i = 0; i < se->nseg; i++) {
        struct seg *g = &se->segs[i];
        s->items += atomic_load_explicit(&g->live_items, memory_order_relaxed);
        s->bytes += atomic_load_explicit(&g->live_bytes, memory_order_relaxed);
        if (atomic_load(&g->state) != SEG_FREE)
            s->seg_used_bytes += g->wpos;
    }
    s->segs_free = se->nfree;
    pthread_spin_unlock(&se->seglock);
    s->limit_bytes = se->data_len;
    s->evictions = atomic_load(&se->st_evictions);
    s->expirations = atomic_load(&se->st_expirations);
    s->expired_unfetched = atomic_load(&se->st_expired_unfetched);
    s->evicted_unfetched = atomic_load(&se->st_evicted_unfetched);
    s->segs_total = se->nseg;
    s->seg_evictions = atomic_load(&se->st_seg_evictions);
    s->seg_expirations = atomic_load(&se->st_seg_expirations);
    s->seg_merges = atomic_load(&se->st_seg_merges);
    s->hash_bytes = ht_bytes_used(se);
    s->hash_buckets = ht_buckets(se);
    s->hash_overflow_used = ht_overflow_used(se);
    s->hash_overflow_total = se->novf;
    s->hash_moves = atomic_load(&se->st_hash_moves);
}

struct dump_ctx {
    uint32_t now;
    kl_dump_fn fn;
    void *arg;
};

/* One slot of a dump's walk, under its chain's lock: the item it points to
 * cannot be evicted or expired meanwhile (both empty the slot first). */
static void dump_visit(struct seg_engine *se, uint64_t v, void *arg)
{
    const struct dump_ctx *d = arg;
    uint32_t id = SLOT_SEG(v), off = SLOT_OFF(v);
    struct item_view iv;
    item_read(seg_data(se, id) + off, &iv);
    if (iv.exptime != 0 && iv.exptime <= d->now)
        return;
    uint32_t born = se->segs[id].create_at;
    struct kl_item_meta m = {
        .key = iv.key,
        .klen = iv.klen,
        .exptime = iv.exptime,
        .last_access = d->now > born ? d->now - born : 0,
        .cas = (iv.bits & IT_HAS_CAS) ? iv.cas : seg_cas(se, id, off),
        .size = iv.size,
        .fetched = (v & SLOT_FETCHED) != 0,
    };
    d->fn(d->arg, &m);
}

static int seg_dump(struct kl_engine *e, uint64_t *cursor, uint32_t budget, kl_dump_fn fn,
                    void *arg)
{
    struct seg_engine *se = seg_of(e);
    struct dump_ctx d = {seg_clock(se), fn, arg};
    uint32_t from = *cursor < UINT32_MAX ? (uint32_t)*cursor : UINT32_MAX;
    uint32_t next = ht_walk(se, from, budget ? budget : 1, dump_visit, &d);
    *cursor = next;
    return next < ht_buckets(se) ? 1 : 0;
}

/* The evictor's scan buffer and s3fifo's ghost array: mapped, so that they
 * take memory only once used (calloc may hand out touched heap pages). */
static int map_aux(struct seg_engine *se)
{
    se->scan = seg_map(se->scan_cap * sizeof *se->scan, false);
    se->ghost = seg_map(((size_t)se->ghost_mask + 1) * sizeof *se->ghost, false);
    return se->scan && se->ghost ? 0 : -ENOMEM;
}

static void unmap_aux(struct seg_engine *se)
{
    seg_unmap(se->scan, se->scan_cap * sizeof *se->scan);
    seg_unmap((void *)se->ghost, ((size_t)se->ghost_mask + 1) * sizeof *se->ghost);
}

static void seg_close(struct kl_engine *e)
{
    struct seg_engine *se = seg_of(e);
    ht_free(se);
    segs_free(se);
    pthread_mutex_destroy(&se->evict_lock);
    unmap_aux(se);
    free(se);
}

static const struct kl_engine_ops seg_ops = {
    .close = seg_close,
    .tick = seg_tick,
    .lookup = seg_lookup,
    .release = seg_release,
    .reserve = seg_reserve_op,
    .commit = seg_commit_op,
    .abort = seg_abort_op,
    .remove = seg_delete_op,
    .arith = seg_arith_op,
    .touch = seg_touch_op,
    .flush = seg_flush,
    .stats = seg_stats,
    .dump = seg_dump,
};

static unsigned log2_floor(uint64_t x) { return x ? 63u - (unsigned)__builtin_clzll(x) : 0; }

int kl_seg_open(const struct kl_engine_opts *opts, struct kl_engine **out)
{
    size_t mem = opts->mem_bytes ? opts->mem_bytes : (size_t)64 << 20;
    size_t seg_size = opts->seg_size ? opts->seg_size : (size_t)1 << 20;
    if (seg_size < 4096 || seg_size > ((size_t)8 << 20) || (seg_size & (seg_size - 1)))
        return -EINVAL;
    if ((unsigned)opts->evict > KL_EVICT_S3FIFO)
        return -EINVAL;
    if (opts->hash_power && (opts->hash_power < 4 || opts->hash_power > 30))
        return -EINVAL;
    struct seg_engine *se = calloc(1, sizeof *se);
    if (se == NULL)
        return -ENOMEM;
    se->base.ops = &seg_ops;
    se->evict = opts->evict;
    se->seg_size = (uint32_t)seg_size;
    se->off_bits = log2_floor(seg_size) - 3;
    se->item_max = (uint32_t)seg_size;
    if (opts->item_max && opts->item_max < seg_size)
        se->item_max = (uint32_t)opts->item_max;
    se->reloc = NIL;
    se->rng = 0x9e3779b97f4a7c15ull;
    atomic_init(&se->now, opts->now);
    pthread_mutex_init(&se->evict_lock, NULL);
    /* buckets: 2^hash_power (or 256) at first; the table grows as items
     * come, up to room for -m of items of 40 bytes, 7 a bucket */
    uint64_t nb = opts->hash_power ? (uint64_t)1 << opts->hash_power : 256;
    uint64_t nb_max = mem / 40 / 7;
    nb_max = nb_max < nb ? nb : nb_max > (1u << 30) ? (1u << 30) : nb_max;
    se->scan_cap = MERGE_MAX * (se->seg_size / 8);
    uint32_t gp = log2_floor(mem / 512);
    gp = gp < 4 ? 4 : gp;
    se->ghost_mask = (1u << gp) - 1;
    int r;
    if ((r = map_aux(se)) != 0 || (r = ht_init(se, (uint32_t)nb, (uint32_t)nb_max)) != 0 ||
        (r = segs_init(se, mem, opts->now)) != 0) {
        unmap_aux(se);
        ht_free(se);
        if (se->segs || se->data)
            segs_free(se);
        pthread_mutex_destroy(&se->evict_lock);
        free(se);
        return r;
    }
    *out = &se->base;
    return 0;
}
