/* storage/seg/segment.c: segments, their pins and the lists they live on.
 *
 * All segments come from one mapping of -m bytes made at open. A segment is
 * FREE, ACTIVE (the open segment of a TTL chain, taking appends), SEALED,
 * EVICTING (its items being removed or moved), DRAINING (empty but still
 * pinned by a reader) or RELOC (an evictor's copy target). Appends claim
 * space under seglock, which also guards the free list, the TTL chains and
 * the seal-order lists; the space is pinned twice, as a reference (refs) and
 * as a writer, until the store commits. An evictor only takes SEALED
 * segments without writers, so it never waits for one. A reader's pin keeps
 * a segment from being reused: the last unpin of a DRAINING segment frees it.
 */
#include "seg_internal.h"

#include "keel/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void free_push(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    KL_ASSERT(atomic_load(&s->live_items) == 0, "segment %u freed with %u live items", id,
              atomic_load(&s->live_items));
    KL_ASSERT(!s->in_order, "segment %u freed while on an order list", id);
    atomic_store(&s->state, SEG_FREE);
    s->chain = NCHAINS;
    s->next = se->free_head;
    se->free_head = (int32_t)id;
    se->nfree++;
}

void *seg_map(size_t len, bool reserve)
{
    const size_t huge = (size_t)2 << 20;
    len = (len + 4095) & ~(size_t)4095;
    size_t span = len + huge;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | (reserve ? 0 : MAP_NORESERVE), -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* align to 2 MiB and ask for huge pages: one TLB entry per 2 MiB of
     * randomly read items and buckets */
    char *a = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    size_t tail = (size_t)(p + span - (a + len));
    if (tail)
        munmap(a + len, tail);
    madvise(a, len, MADV_HUGEPAGE);
    return a;
}

void seg_unmap(void *p, size_t len)
{
    if (p)
        munmap(p, (len + 4095) & ~(size_t)4095);
}

int segs_init(struct seg_engine *se, size_t mem, uint32_t now)
{
    se->nseg = (uint32_t)(mem / se->seg_size);
    if (se->nseg < 4 || se->nseg > (1u << 24))
        return -EINVAL;
    se->data_len = (size_t)se->nseg * se->seg_size;
    se->data = seg_map(se->data_len, true);
    if (se->data == NULL)
        return -ENOMEM;
    se->segs = aligned_alloc(64, sizeof(struct seg) * se->nseg);
    if (se->segs == NULL)
        return -ENOMEM;
    memset(se->segs, 0, sizeof(struct seg) * se->nseg);
    pthread_spin_init(&se->seglock, PTHREAD_PROCESS_PRIVATE);
    se->free_head = NIL;
    se->nfree = 0;
    se->next_seq = 1;
    for (uint32_t i = se->nseg; i-- > 0;) {
        se->segs[i].prev = se->segs[i].next = NIL;
        se->segs[i].oprev = se->segs[i].onext = NIL;
        free_push(se, i);
    }
    for (int c = 0; c < NCHAINS; c++) {
        struct chain *ch = &se->chains[c];
        ch->head = ch->tail = ch->cursor = NIL;
        ch->active[0] = ch->active[1] = NIL;
    }
    for (int q = 0; q < 2; q++)
        se->order[q] = (struct order){NIL, NIL, 0};
    (void)now;
    return 0;
}

void segs_free(struct seg_engine *se)
{
    seg_unmap(se->data, se->data_len);
    free(se->segs);
    pthread_spin_destroy(&se->seglock);
}

void seg_pin(struct seg_engine *se, uint32_t id) { atomic_fetch_add(&se->segs[id].refs, 1); }

static void try_free(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    pthread_spin_lock(&se->seglock);
    uint8_t want = SEG_DRAINING;
    if (atomic_load(&s->refs) == 0 && atomic_compare_exchange_strong(&s->state, &want, SEG_FREE))
        free_push(se, id);
    pthread_spin_unlock(&se->seglock);
}

void seg_unpin(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    int32_t old = atomic_fetch_sub(&s->refs, 1);
    KL_ASSERT(old > 0, "segment %u unpinned more than pinned", id);
    if (old == 1 && atomic_load(&s->state) == SEG_DRAINING)
        try_free(se, id);
}

void seg_retire(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    KL_ASSERT(atomic_load(&s->state) == SEG_EVICTING || atomic_load(&s->state) == SEG_RELOC,
              "segment %u retired in state %u", id, atomic_load(&s->state));
    atomic_store(&s->state, SEG_DRAINING);
    if (atomic_load(&s->refs) == 0)
        try_free(se, id);
}

int32_t free_pop(struct seg_engine *se, uint32_t keep)
{
    if (se->nfree <= keep)
        return NIL;
    int32_t id = se->free_head;
    KL_ASSERT(id != NIL, "free count %u with an empty free list", se->nfree);
    se->free_head = se->segs[id].next;
    se->nfree--;
    struct seg *s = &se->segs[id];
    s->wpos = 0;
    s->seq = se->next_seq++;
    s->create_at = atomic_load_explicit(&se->now, memory_order_relaxed);
    s->max_exp = 0;
    s->prev = s->next = NIL;
    return id;
}

void chain_remove(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    struct chain *c = &se->chains[s->chain];
    if (s->prev != NIL)
        se->segs[s->prev].next = s->next;
    else
        c->head = s->next;
    if (s->next != NIL)
        se->segs[s->next].prev = s->prev;
    else
        c->tail = s->prev;
    if (c->active[0] == (int32_t)id)
        c->active[0] = NIL;
    if (c->active[1] == (int32_t)id)
        c->active[1] = NIL;
    if (c->cursor == (int32_t)id)
        c->cursor = NIL;
    s->prev = s->next = NIL;
}

void chain_push_tail(struct seg_engine *se, uint32_t chain, uint32_t id)
{
    struct seg *s = &se->segs[id];
    struct chain *c = &se->chains[chain];
    s->chain = (uint16_t)chain;
    s->next = NIL;
    s->prev = c->tail;
    if (c->tail != NIL)
        se->segs[c->tail].next = (int32_t)id;
    else
        c->head = (int32_t)id;
    c->tail = (int32_t)id;
}

void chain_push_head(struct seg_engine *se, uint32_t chain, uint32_t id)
{
    struct chain *c = &se->chains[chain];
    if (c->head == NIL)
        chain_push_tail(se, chain, id); /* the only one */
    else
        chain_insert_before(se, chain, (uint32_t)c->head, id);
}

void chain_insert_before(struct seg_engine *se, uint32_t chain, uint32_t before, uint32_t id)
{
    struct seg *s = &se->segs[id], *b = &se->segs[before];
    struct chain *c = &se->chains[chain];
    KL_ASSERT(b->chain == chain, "segment %u is not on chain %u", before, chain);
    s->chain = (uint16_t)chain;
    s->next = (int32_t)before;
    s->prev = b->prev;
    if (b->prev != NIL)
        se->segs[b->prev].next = (int32_t)id;
    else
        c->head = (int32_t)id;
    b->prev = (int32_t)id;
}

void order_push(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    struct order *o = &se->order[s->queue];
    KL_ASSERT(!s->in_order, "segment %u sealed twice", id);
    s->in_order = 1;
    s->onext = NIL;
    s->oprev = o->tail;
    if (o->tail != NIL)
        se->segs[o->tail].onext = (int32_t)id;
    else
        o->head = (int32_t)id;
    o->tail = (int32_t)id;
    o->n++;
}

void order_remove(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    if (!s->in_order)
        return;
    struct order *o = &se->order[s->queue];
    if (s->oprev != NIL)
        se->segs[s->oprev].onext = s->onext;
    else
        o->head = s->onext;
    if (s->onext != NIL)
        se->segs[s->onext].oprev = s->oprev;
    else
        o->tail = s->oprev;
    s->oprev = s->onext = NIL;
    s->in_order = 0;
    o->n--;
}

void seg_seal_locked(struct seg_engine *se, uint32_t id)
{
    struct seg *s = &se->segs[id];
    KL_ASSERT(atomic_load(&s->state) == SEG_ACTIVE || atomic_load(&s->state) == SEG_RELOC,
              "segment %u sealed in state %u", id, atomic_load(&s->state));
    struct chain *c = &se->chains[s->chain];
    if (c->active[s->queue] == (int32_t)id)
        c->active[s->queue] = NIL;
    atomic_store(&s->state, SEG_SEALED);
    order_push(se, id);
}

static void claim(struct seg_engine *se, uint32_t id, uint32_t size, uint32_t exptime,
                  uint32_t *off)
{
    struct seg *s = &se->segs[id];
    *off = s->wpos;
    s->wpos += size;
    if (exptime != 0 && exptime != KL_EXPTIME_EXPIRED && exptime > s->max_exp)
        s->max_exp = exptime;
    atomic_fetch_add(&s->refs, 1);
    atomic_fetch_add(&s->writers, 1);
}

int seg_reserve(struct seg_engine *se, uint32_t chain, uint32_t queue, uint32_t size,
                uint32_t exptime, uint32_t *id, uint32_t *off)
{
    /* merge and s3fifo keep one free segment for the evictor's copies */
    uint32_t keep = (se->evict == KL_EVICT_MERGE || se->evict == KL_EVICT_S3FIFO) ? 1 : 0;
    struct chain *c = &se->chains[chain];
    for (int attempt = 0; attempt < 64; attempt++) {
        pthread_spin_lock(&se->seglock);
        int32_t a = c->active[queue];
        if (a != NIL && se->segs[a].wpos + size <= se->seg_size) {
            claim(se, (uint32_t)a, size, exptime, off);
            pthread_spin_unlock(&se->seglock);
            *id = (uint32_t)a;
            return 0;
        }
        int32_t n = free_pop(se, keep);
        if (n != NIL) {
            if (a != NIL)
                seg_seal_locked(se, (uint32_t)a);
            struct seg *s = &se->segs[n];
            s->queue = (uint8_t)queue;
            if (chain != CHAIN_NOEXP)
                s->max_exp = s->create_at;
            atomic_store(&s->state, SEG_ACTIVE);
            chain_push_tail(se, chain, (uint32_t)n);
            c->active[queue] = n;
            claim(se, (uint32_t)n, size, exptime, off);
            pthread_spin_unlock(&se->seglock);
            *id = (uint32_t)n;
            return 0;
        }
        pthread_spin_unlock(&se->seglock);
        if (evict_once(se) != 0 && attempt > 8)
            break;
    }
    return KL_E_NO_MEMORY;
}

void seg_writer_done(struct seg_engine *se, uint32_t id)
{
    int32_t old = atomic_fetch_sub_explicit(&se->segs[id].writers, 1, memory_order_release);
    KL_ASSERT(old > 0, "segment %u: writer done twice", id);
    seg_unpin(se, id);
}

void seg_live_add(struct seg_engine *se, uint32_t id, uint32_t size)
{
    atomic_fetch_add_explicit(&se->segs[id].live_items, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&se->segs[id].live_bytes, size, memory_order_relaxed);
}

void seg_live_sub(struct seg_engine *se, uint32_t id, uint32_t size)
{
    /* release: whoever sees the count reach 0 may reuse the bytes we read */
    uint32_t old = atomic_fetch_sub_explicit(&se->segs[id].live_items, 1, memory_order_release);
    KL_ASSERT(old > 0, "segment %u: live item count below zero", id);
    atomic_fetch_sub_explicit(&se->segs[id].live_bytes, size, memory_order_relaxed);
}

void seg_slot_gone(struct seg_engine *se, uint64_t v)
{
    struct item_view iv;
    item_read(seg_data(se, SLOT_SEG(v)) + SLOT_OFF(v), &iv);
    seg_live_sub(se, SLOT_SEG(v), iv.size);
}

int32_t seg_take_target(struct seg_engine *se)
{
    pthread_spin_lock(&se->seglock);
    int32_t id = free_pop(se, 0);
    if (id != NIL) {
        se->segs[id].queue = 1;
        se->segs[id].chain = NCHAINS;
        atomic_store(&se->segs[id].state, SEG_RELOC);
    }
    pthread_spin_unlock(&se->seglock);
    return id;
}
