/* storage/seg/evict.c: making room when no segment is free.
 *
 * One evictor at a time (evict_lock). It takes SEALED segments without
 * writers only, marks them EVICTING under seglock, then removes or moves
 * their items under each item's bucket lock, and retires them (freed at
 * once, or by the last reader's unpin).
 *
 * Policies: fifo (oldest sealed), cte (the chain head closest to expiry),
 * random, merge (Segcache's merge, made to waste no room: k adjacent
 * segments of one TTL chain, at a cursor that sweeps the chain, are copied
 * (4, or up to 8 that fit in one) into k - 1 new ones in their place (the
 * first fills before the next is taken), which keep the most
 * frequently read of their live items and fill up with the newest of the
 * next frequency, the counts decaying slowly; replaced and deleted copies
 * are never copied, so sparse segments are compacted without evicting, and
 * when up to 8 adjacent segments anywhere fit in one they are merged first.
 * Segcache's k-into-1 merge evicted live items while a third of memory held
 * dead copies: under zipf overwrites, the hot keys' old copies), and s3fifo
 * (S3-FIFO over segments: new keys
 * go to a small queue, keys found in a ghost list of recently evicted hashes
 * to the main one; a small segment's read items move to the main queue, a
 * main segment's read items are kept with their count lowered). Moved items
 * keep their CAS.
 */
#include "seg_internal.h"

#include "keel/assert.h"

#include <errno.h>
#include <string.h>

#define MERGE_N     4  /* sources of an evicting merge (into 3) */
#define DECAY_EVERY 16 /* evicting merges: one in this many halves the counts */

bool ghost_hit(struct seg_engine *se, uint64_t h)
{
    uint32_t fp = (uint32_t)h | 1;
    return atomic_load_explicit(&se->ghost[(h >> 32) & se->ghost_mask], memory_order_relaxed) == fp;
}

static void ghost_add(struct seg_engine *se, uint64_t h)
{
    atomic_store_explicit(&se->ghost[(h >> 32) & se->ghost_mask], (uint32_t)h | 1,
                          memory_order_relaxed);
}

/* Under the bucket lock: remove the slot of a dropped item and count it. */
static void drop_slot(struct seg_engine *se, _Atomic uint64_t *slot, uint64_t v, uint32_t size,
                      int expired)
{
    atomic_store_explicit(slot, 0, memory_order_release);
    ht_count(se, slot, -1);
    seg_live_sub(se, SLOT_SEG(v), size);
    bool unfetched = !(v & SLOT_FETCHED);
    if (expired) {
        atomic_fetch_add_explicit(&se->st_expirations, 1, memory_order_relaxed);
        if (unfetched)
            atomic_fetch_add_explicit(&se->st_expired_unfetched, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&se->st_evictions, 1, memory_order_relaxed);
        if (unfetched)
            atomic_fetch_add_explicit(&se->st_evicted_unfetched, 1, memory_order_relaxed);
    }
}

void seg_clear(struct seg_engine *se, uint32_t id, int expired)
{
    KL_ASSERT(atomic_load(&se->segs[id].state) == SEG_EVICTING, "segment %u cleared in state %u",
              id, atomic_load(&se->segs[id].state));
    const char *base = seg_data(se, id);
    uint32_t end = se->segs[id].wpos;
    struct item_view iv;
    for (uint32_t off = 0; off < end; off += iv.size) {
        item_read(base + off, &iv);
        if (atomic_load_explicit(&se->segs[id].live_items, memory_order_acquire) == 0)
            break;
        uint64_t h = key_hash(iv.key, iv.klen);
        ht_lock(se, h);
        _Atomic uint64_t *slot = ht_find_loc(se, h, slot_loc(id, off));
        if (slot)
            drop_slot(se, slot, atomic_load_explicit(slot, memory_order_relaxed), iv.size, expired);
        ht_unlock(se, h);
    }
    seg_retire(se, id);
}

/* Collect the live items of an EVICTING segment into se->scan from entry n
 * on, marked as source `which`; the new count. */
static uint32_t scan_live(struct seg_engine *se, uint32_t id, uint32_t n, uint8_t which)
{
    const char *base = seg_data(se, id);
    uint32_t end = se->segs[id].wpos;
    struct item_view iv;
    for (uint32_t off = 0; off < end; off += iv.size) {
        item_read(base + off, &iv);
        uint64_t h = key_hash(iv.key, iv.klen);
        ht_lock(se, h);
        _Atomic uint64_t *slot = ht_find_loc(se, h, slot_loc(id, off));
        if (slot) {
            KL_ASSERT(n < se->scan_cap, "segment %u holds more items than fit", id);
            uint64_t v = atomic_load_explicit(slot, memory_order_relaxed);
            se->scan[n++] = (struct scan_ent){h, off, (uint8_t)SLOT_FREQ(v), which, 0};
        }
        ht_unlock(se, h);
    }
    return n;
}

/* Copy one item into the target (evictor-owned) and repoint its slot, under
 * its bucket lock. Returns false when the target has no room. */
static bool move_item(struct seg_engine *se, _Atomic uint64_t *slot, uint64_t v, uint64_t h,
                      uint32_t target, uint32_t newfreq)
{
    uint32_t id = SLOT_SEG(v), off = SLOT_OFF(v);
    struct item_view iv;
    item_read(seg_data(se, id) + off, &iv);
    uint64_t cas = (iv.bits & IT_HAS_CAS) ? iv.cas : seg_cas(se, id, off);
    uint32_t bits = iv.bits | IT_HAS_CAS;
    uint32_t size = item_size(iv.klen, iv.vlen, bits);
    struct seg *t = &se->segs[target];
    if (t->wpos + size > se->seg_size)
        return false;
    uint32_t toff = t->wpos;
    char *val = item_write(seg_data(se, target) + toff, iv.key, iv.klen, iv.vlen, bits, iv.exptime,
                           iv.cflags, cas);
    memcpy(val, iv.value, iv.vlen);
    t->wpos += size;
    if (iv.exptime == 0)
        se->reloc_noexp = true;
    else if (iv.exptime > t->max_exp)
        t->max_exp = iv.exptime;
    seg_live_add(se, target, size);
    atomic_store_explicit(
        slot, slot_make(h, slot_loc(target, toff), newfreq, v & (SLOT_FETCHED | SLOT_WIN)),
        memory_order_release);
    seg_live_sub(se, id, iv.size);
    return true;
}

/* Take an eligible segment for eviction (under seglock). */
static bool eligible(struct seg_engine *se, int32_t id)
{
    return id != NIL && atomic_load(&se->segs[id].state) == SEG_SEALED &&
           atomic_load_explicit(&se->segs[id].writers, memory_order_acquire) == 0;
}

static void take(struct seg_engine *se, uint32_t id, bool unchain)
{
    order_remove(se, id);
    if (unchain)
        chain_remove(se, id);
    atomic_store(&se->segs[id].state, SEG_EVICTING);
}

/* Under seglock: a last resort when nothing is sealed: the fullest open
 * segment without writers, sealed. */
static int32_t pick_active(struct seg_engine *se)
{
    int32_t best = NIL;
    for (uint32_t i = 0; i < se->nseg; i++) {
        struct seg *s = &se->segs[i];
        if (atomic_load(&s->state) == SEG_ACTIVE && atomic_load(&s->writers) == 0 &&
            (best == NIL || s->wpos > se->segs[best].wpos))
            best = (int32_t)i;
    }
    if (best != NIL)
        seg_seal_locked(se, (uint32_t)best);
    return best;
}

static int32_t pick_order(struct seg_engine *se, int q)
{
    for (int32_t id = se->order[q].head; id != NIL; id = se->segs[id].onext)
        if (eligible(se, id))
            return id;
    return NIL;
}

static int32_t pick(struct seg_engine *se)
{
    int32_t id = NIL;
    switch (se->evict) {
    case KL_EVICT_CTE: {
        uint32_t best = UINT32_MAX;
        for (uint32_t c = 0; c < TTL_BUCKETS; c++) {
            int32_t h = se->chains[c].head;
            if (eligible(se, h) && se->segs[h].max_exp < best) {
                best = se->segs[h].max_exp;
                id = h;
            }
        }
        if (id == NIL && eligible(se, se->chains[CHAIN_NOEXP].head))
            id = se->chains[CHAIN_NOEXP].head;
        break;
    }
    case KL_EVICT_RANDOM:
        for (int tries = 0; tries < 64 && id == NIL; tries++) {
            se->rng ^= se->rng << 13;
            se->rng ^= se->rng >> 7;
            se->rng ^= se->rng << 17;
            uint32_t r = (uint32_t)(se->rng % se->nseg);
            if (eligible(se, (int32_t)r))
                id = (int32_t)r;
        }
        break;
    default: break;
    }
    if (id == NIL)
        id = pick_order(se, 0);
    if (id == NIL)
        id = pick_order(se, 1);
    if (id == NIL)
        id = pick_active(se);
    return id;
}

static int evict_plain(struct seg_engine *se)
{
    pthread_spin_lock(&se->seglock);
    int32_t id = pick(se);
    if (id != NIL)
        take(se, (uint32_t)id, true);
    pthread_spin_unlock(&se->seglock);
    if (id == NIL)
        return -ENOMEM;
    seg_clear(se, (uint32_t)id, 0);
    atomic_fetch_add_explicit(&se->st_seg_evictions, 1, memory_order_relaxed);
    return 0;
}

/* Seal a copy target into the chain of its latest exptime. */
static void publish_target(struct seg_engine *se, uint32_t t)
{
    struct seg *s = &se->segs[t];
    uint32_t now = atomic_load_explicit(&se->now, memory_order_relaxed);
    pthread_spin_lock(&se->seglock);
    uint32_t c = se->reloc_noexp ? CHAIN_NOEXP : ttl_chain(s->max_exp, now);
    if (c == CHAIN_NOEXP)
        s->max_exp = 0;
    else if (s->max_exp == 0)
        s->max_exp = now;
    chain_push_tail(se, c, t);
    seg_seal_locked(se, t);
    pthread_spin_unlock(&se->seglock);
    se->reloc_noexp = false;
}

/* Lock a scanned item's bucket chain: its slot if it still points to the
 * item at (src, e->off), *v its value; NULL if it went. Unlock with ht_unlock. */
static _Atomic uint64_t *scan_lock(struct seg_engine *se, const struct scan_ent *e, uint32_t src,
                                   uint64_t *v)
{
    ht_lock(se, e->hash);
    _Atomic uint64_t *slot = ht_find_loc(se, e->hash, slot_loc(src, e->off));
    if (slot)
        *v = atomic_load_explicit(slot, memory_order_relaxed);
    return slot;
}

/* Under the bucket lock: evict the item at (src, off) that slot (value v) points to. */
static void evict_at(struct seg_engine *se, _Atomic uint64_t *slot, uint64_t v, uint32_t src,
                     uint32_t off)
{
    struct item_view iv;
    item_read(seg_data(se, src) + off, &iv);
    drop_slot(se, slot, v, iv.size, 0);
}

/* Drop or move the live items of src; keep_min: least frequency to keep. */
static void relocate(struct seg_engine *se, uint32_t src, uint32_t from, uint32_t to,
                     uint32_t keep_min, bool halve, bool to_ghost, int32_t *target)
{
    for (uint32_t i = from; i < to; i++) {
        struct scan_ent *e = &se->scan[i];
        uint64_t v = 0;
        _Atomic uint64_t *slot = scan_lock(se, e, src, &v);
        if (slot) {
            uint32_t f = SLOT_FREQ(v);
            bool moved = false;
            if (f >= keep_min && *target != NIL)
                moved = move_item(se, slot, v, e->hash, (uint32_t)*target,
                                  halve ? f / 2 : (f > 0 ? f - 1 : 0));
            if (!moved) {
                evict_at(se, slot, v, src, e->off);
                if (to_ghost)
                    ghost_add(se, e->hash);
            }
        }
        ht_unlock(se, e->hash);
    }
}

/* How many of the k adjacent candidates to merge: as many as the target can
 * take whole when two or more fit (compaction: the space of replaced and
 * deleted copies comes back and no live item goes), else MERGE_N (eviction:
 * the most read items of the sources are kept). */
static int merge_count(struct seg_engine *se, const int32_t *src, int k)
{
    uint64_t live = 0;
    int fit = 0;
    for (int i = 0; i < k; i++) {
        struct seg *s = &se->segs[src[i]];
        /* a moved item may gain 8 bytes of CAS: count them for every item */
        live += atomic_load_explicit(&s->live_bytes, memory_order_relaxed) +
                8ull * atomic_load_explicit(&s->live_items, memory_order_relaxed);
        if (live > se->seg_size)
            break;
        fit = i + 1;
    }
    return fit >= 2 ? fit : k < MERGE_N ? k : MERGE_N;
}

static uint64_t live_of(struct seg_engine *se, int32_t id)
{
    return atomic_load_explicit(&se->segs[id].live_bytes, memory_order_relaxed) +
           8ull * atomic_load_explicit(&se->segs[id].live_items, memory_order_relaxed);
}

/* Under seglock: the first of two adjacent eligible segments of one chain
 * with the fewest live bytes, if one segment can take both whole (where a
 * merge frees a segment without evicting anything); NIL if none can. */
static int32_t best_compaction(struct seg_engine *se, uint32_t *chain)
{
    int32_t best = NIL;
    uint64_t least = (uint64_t)se->seg_size + 1;
    for (uint32_t c = 0; c < NCHAINS; c++) {
        for (int32_t id = se->chains[c].head; id != NIL; id = se->segs[id].next) {
            int32_t nx = se->segs[id].next;
            if (nx == NIL || !eligible(se, id) || !eligible(se, nx))
                continue;
            uint64_t live = live_of(se, id) + live_of(se, nx);
            if (live < least) {
                least = live;
                best = id;
                *chain = c;
            }
        }
    }
    return best;
}

/* Bytes an item at off of src takes once moved (it gains its CAS). */
static uint32_t moved_size(struct seg_engine *se, uint32_t src, uint32_t off)
{
    struct item_view iv;
    item_read(seg_data(se, src) + off, &iv);
    return item_size(iv.klen, iv.vlen, iv.bits | IT_HAS_CAS);
}

/* Which of the n scanned items a merge into ntarget segments keeps: those
 * read at least *keep_min times, and of those read keep_min - 1 times the
 * first *partial bytes' worth (so that the targets fill up). Frequency 0
 * counts: when the targets hold every live item, nothing is evicted. */
static void merge_cutoff(struct seg_engine *se, const int32_t *src, uint32_t n, uint32_t ntarget,
                         uint32_t *keep_min, uint64_t *partial)
{
    uint64_t w[FREQ_MAX + 2] = {0};
    uint32_t largest = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t size = moved_size(se, (uint32_t)src[se->scan[i].src], se->scan[i].off);
        w[se->scan[i].freq] += size;
        largest = size > largest ? size : largest;
    }
    /* room lost where an item does not fit at a target's end (but the
     * last's): less than the largest item */
    uint64_t budget = (uint64_t)ntarget * se->seg_size - (uint64_t)(ntarget - 1) * largest;
    uint64_t sum = 0;
    uint32_t f = FREQ_MAX + 1;
    while (f > 0 && sum + w[f - 1] <= budget)
        sum += w[--f];
    *keep_min = f;
    *partial = budget - sum;
}

/* Under seglock: a fresh copy target for chain c, RELOC, or NIL when none is free. */
static int32_t merge_target_locked(struct seg_engine *se, uint32_t c, uint32_t born)
{
    int32_t t = free_pop(se, 0);
    if (t != NIL) {
        struct seg *s = &se->segs[t];
        s->create_at = born; /* before readers can see its items */
        s->queue = 0;
        s->chain = (uint16_t)c;
        atomic_store(&s->state, SEG_RELOC);
    }
    return t;
}

static int32_t merge_target(struct seg_engine *se, uint32_t c, uint32_t born)
{
    pthread_spin_lock(&se->seglock);
    int32_t t = merge_target_locked(se, c, born);
    pthread_spin_unlock(&se->seglock);
    return t;
}

/* Seal a filled copy target into chain c just before segment `before` (the
 * merge's last source, which holds the place of them all). */
static void merge_publish(struct seg_engine *se, uint32_t t, uint32_t c, uint32_t before)
{
    struct seg *s = &se->segs[t];
    pthread_spin_lock(&se->seglock);
    if (c == CHAIN_NOEXP)
        s->max_exp = 0;
    else if (s->max_exp == 0)
        s->max_exp = s->create_at;
    chain_insert_before(se, c, before, t);
    seg_seal_locked(se, t);
    pthread_spin_unlock(&se->seglock);
    se->reloc_noexp = false;
}

static int evict_merge(struct seg_engine *se)
{
    int32_t src[MERGE_MAX];
    int k = 0;
    uint32_t c = 0;
    pthread_spin_lock(&se->seglock);
    /* dead copies first, wherever they are; else evict at the chains' cursors */
    int32_t first_src = best_compaction(se, &c);
    bool compact = first_src != NIL;
    for (int32_t id = first_src; id != NIL && k < MERGE_MAX && eligible(se, id);
         id = se->segs[id].next)
        src[k++] = id;
    if (compact)
        k = merge_count(se, src, k);
    for (uint32_t tries = 0; tries < NCHAINS && k < 2; tries++) {
        c = (se->chain_cursor + tries) % NCHAINS;
        struct chain *ch = &se->chains[c];
        int32_t start = ch->head;
        if (ch->cursor != NIL && se->segs[ch->cursor].seq == ch->cursor_seq &&
            eligible(se, ch->cursor) && se->segs[ch->cursor].next != NIL &&
            eligible(se, se->segs[ch->cursor].next))
            start = ch->cursor;
        k = 0;
        for (int32_t id = start; id != NIL && k < MERGE_MAX && eligible(se, id);
             id = se->segs[id].next)
            src[k++] = id;
        k = merge_count(se, src, k);
    }
    if (!compact)
        se->chain_cursor = (c + 1) % NCHAINS;
    struct chain *ch = &se->chains[c];
    bool cursor_in_src = false;
    for (int i = 0; i < k; i++)
        cursor_in_src |= ch->cursor == src[i] && se->segs[src[i]].seq == ch->cursor_seq;
    uint32_t born = UINT32_MAX;
    for (int i = 0; i < k; i++)
        born = se->segs[src[i]].create_at < born ? se->segs[src[i]].create_at : born;
    int32_t t = k >= 2 ? merge_target_locked(se, c, born) : NIL, first_t = NIL;
    if (t != NIL)
        for (int i = 0; i < k; i++)
            take(se, (uint32_t)src[i], i < k - 1); /* the last holds the place */
    pthread_spin_unlock(&se->seglock);
    if (t == NIL)
        return evict_plain(se);

    /* every live item of the sources, then which of them fit in k - 1
     * targets (a compaction's fit in one), the most read first: a merge of
     * sparse segments (replaced copies) evicts nothing, a dense one the
     * least read items only */
    uint32_t n = 0;
    for (int i = 0; i < k; i++)
        n = scan_live(se, (uint32_t)src[i], n, (uint8_t)i);
    uint32_t keep_min;
    uint64_t partial;
    merge_cutoff(se, src, n, (uint32_t)k - 1, &keep_min, &partial);
    /* the newest items of the partial class are kept (the older ones had
     * longer to be read) */
    for (uint32_t i = n; i-- > 0;) {
        struct scan_ent *en = &se->scan[i];
        en->part = 0;
        if ((uint32_t)en->freq + 1 == keep_min) {
            uint32_t size = moved_size(se, (uint32_t)src[en->src], en->off);
            if (partial >= size) {
                partial -= size;
                en->part = 1;
            }
        }
    }
    /* one evicting merge in DECAY_EVERY halves the counts it keeps: the
     * cursor sweeps the chain every few seconds, and halving at each merge
     * (Segcache) left counts of the last sweep only, too few reads to tell
     * zipf's middle ranks from its coldest keys (workload 4: steady miss
     * ratio 0.145 halving at each merge, 0.140 at one in 16) */
    bool halve = keep_min > 0 && se->merge_evicting++ % DECAY_EVERY == 0;
    uint32_t last = (uint32_t)src[k - 1];
    se->reloc_noexp = false;
    uint32_t e = 0;
    for (int i = 0; i < k; i++) {
        uint32_t s = (uint32_t)src[i];
        for (; e < n && se->scan[e].src == i; e++) {
            struct scan_ent *en = &se->scan[e];
            uint64_t v = 0;
            _Atomic uint64_t *slot = scan_lock(se, en, s, &v);
            if (slot) {
                uint32_t f = SLOT_FREQ(v);
                bool keep = f >= keep_min || (f + 1 == keep_min && en->part);
                bool moved = false;
                if (keep && t != NIL) {
                    moved = move_item(se, slot, v, en->hash, (uint32_t)t, halve ? f / 2 : f);
                    if (!moved) {
                        /* full: seal it and go on in a fresh one (a source
                         * retired before is free again by now) */
                        ht_unlock(se, en->hash);
                        merge_publish(se, (uint32_t)t, c, last);
                        first_t = first_t == NIL ? t : first_t;
                        t = merge_target(se, c, born);
                        slot = scan_lock(se, en, s, &v);
                        if (slot == NULL) {
                            ht_unlock(se, en->hash);
                            continue;
                        }
                        f = SLOT_FREQ(v);
                        moved = t != NIL &&
                                move_item(se, slot, v, en->hash, (uint32_t)t, halve ? f / 2 : f);
                    }
                }
                if (!moved)
                    evict_at(se, slot, v, s, en->off);
            }
            ht_unlock(se, en->hash);
        }
        if (i < k - 1)
            seg_retire(se, s);
    }
    bool part_full = false;
    if (t != NIL) {
        if (se->segs[t].wpos == 0) {
            seg_retire(se, (uint32_t)t);
            t = NIL;
        } else {
            part_full = se->segs[t].wpos < se->seg_size / 4 * 3;
            merge_publish(se, (uint32_t)t, c, last);
            first_t = first_t == NIL ? t : first_t;
        }
    }
    pthread_spin_lock(&se->seglock);
    int32_t after = se->segs[last].next;
    chain_remove(se, last);
    int32_t next;
    if (compact) /* the eviction sweep keeps its place */
        next = cursor_in_src ? (first_t != NIL ? first_t : after) : ch->cursor;
    else /* a target under 3/4 full is the first source of the next merge here,
          * so that merged segments fill up instead of staying part empty */
        next = part_full ? t : after;
    ch->cursor = next;
    ch->cursor_seq = next != NIL ? se->segs[next].seq : 0;
    pthread_spin_unlock(&se->seglock);
    seg_retire(se, last);
    atomic_fetch_add_explicit(&se->st_seg_merges, 1, memory_order_relaxed);
    return 0;
}

static int evict_s3fifo(struct seg_engine *se)
{
    pthread_spin_lock(&se->seglock);
    bool small = se->order[0].n * 10 > se->nseg || se->order[1].n == 0;
    int32_t id = pick_order(se, small ? 0 : 1);
    if (id == NIL) {
        small = !small;
        id = pick_order(se, small ? 0 : 1);
    }
    if (id == NIL) {
        id = pick_active(se);
        small = id != NIL && se->segs[id].queue == 0;
    }
    if (id != NIL)
        take(se, (uint32_t)id, true);
    pthread_spin_unlock(&se->seglock);
    if (id == NIL)
        return -ENOMEM;
    if (se->reloc == NIL)
        se->reloc = seg_take_target(se);
    uint32_t n = scan_live(se, (uint32_t)id, 0, 0);
    /* move what fits into the open target; when the next item does not
     * fit, publish the target and go on with a fresh one */
    uint32_t done = 0;
    while (done < n) {
        uint32_t end = done;
        if (se->reloc != NIL) {
            uint32_t room = se->seg_size - se->segs[se->reloc].wpos;
            for (; end < n; end++) {
                struct item_view iv;
                item_read(seg_data(se, (uint32_t)id) + se->scan[end].off, &iv);
                uint32_t sz = item_size(iv.klen, iv.vlen, iv.bits | IT_HAS_CAS);
                if (sz > room)
                    break;
                room -= sz;
            }
            if (end == done && se->segs[se->reloc].wpos > 0) {
                publish_target(se, (uint32_t)se->reloc);
                se->reloc = seg_take_target(se);
                continue;
            }
        }
        if (end == done)
            end = done + 1; /* no target, or an empty one too small: drop it */
        relocate(se, (uint32_t)id, done, end, 1, false, small, &se->reloc);
        done = end;
    }
    seg_retire(se, (uint32_t)id);
    if (se->reloc != NIL && se->segs[se->reloc].wpos > se->seg_size - se->seg_size / 8) {
        publish_target(se, (uint32_t)se->reloc);
        se->reloc = NIL;
    }
    atomic_fetch_add_explicit(&se->st_seg_evictions, 1, memory_order_relaxed);
    return 0;
}

int evict_once(struct seg_engine *se)
{
    pthread_mutex_lock(&se->evict_lock);
    pthread_spin_lock(&se->seglock);
    uint32_t nfree = se->nfree;
    pthread_spin_unlock(&se->seglock);
    int r = 0;
    if (nfree < 2) {
        switch (se->evict) {
        case KL_EVICT_MERGE: r = evict_merge(se); break;
        case KL_EVICT_S3FIFO: r = evict_s3fifo(se); break;
        default: r = evict_plain(se); break;
        }
    }
    pthread_mutex_unlock(&se->evict_lock);
    return r;
}
