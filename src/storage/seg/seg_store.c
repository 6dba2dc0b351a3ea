/* storage/seg/seg_store.c: the seg engine's writes: reserve and commit,
 * delete, touch, incr/decr, append/prepend and meta invalidation.
 *
 * Every write appends a new copy and then swings the key's hash slot to it
 * under the chain's lock (publish), checking the mode there: add, replace
 * and cas decide on what the slot holds at that moment. A change that needs
 * the old value (append, incr, touch, invalidate) reads it pinned, builds
 * the new copy outside any lock, then publishes it as a cas against the old
 * copy's CAS, and retries if someone changed the key meanwhile.
 */
#include "seg_internal.h"

#include "keel/assert.h"
#include "storage/numbers.h"

#include <string.h>

enum { P_ID, P_OFF, P_HASH, P_SIZE };

static uint64_t cas_of(struct seg_engine *se, uint32_t id, uint32_t off, const struct item_view *iv)
{
    return (iv->bits & IT_HAS_CAS) ? iv->cas : seg_cas(se, id, off);
}

static bool expired_at(uint32_t exptime, uint32_t now)
{
    return exptime != 0 && (exptime == KL_EXPTIME_EXPIRED || exptime <= now);
}

/* Claim space for an item and write all of it but the value. */
static int reserve_item(struct seg_engine *se, const char *key, uint32_t klen, uint32_t vlen,
                        uint32_t bits, uint32_t exptime, uint32_t cflags, uint64_t cas,
                        uint32_t now, uint64_t h, uint32_t *id, uint32_t *off, char **val)
{
    if (exptime != 0)
        bits |= IT_HAS_EXP;
    if (cflags != 0)
        bits |= IT_HAS_CFLAGS;
    if (vlen > IT_VLEN_MAX)
        return KL_E_TOO_LARGE;
    uint32_t size = item_size(klen, vlen, bits);
    if (size > se->item_max)
        return KL_E_TOO_LARGE;
    uint32_t queue = (se->evict == KL_EVICT_S3FIFO && ghost_hit(se, h)) ? 1 : 0;
    int r = seg_reserve(se, ttl_chain(exptime, now), queue, size, exptime, id, off);
    if (r != 0)
        return r;
    *val = item_write(seg_data(se, *id) + *off, key, klen, vlen, bits, exptime, cflags, cas);
    return 0;
}

/* Make the written item at (id, off) the key's value if mode allows; the
 * old slot's `keep` bits (SLOT_FETCHED, SLOT_WIN) carry over to the new one. */
static int publish(struct seg_engine *se, uint64_t h, uint32_t id, uint32_t off,
                   enum kl_store_mode mode, uint64_t cas_in, uint64_t *cas_out, uint32_t now,
                   uint64_t keep)
{
    struct item_view nv, ov;
    item_read(seg_data(se, id) + off, &nv);
    ht_lock(se, h);
    uint64_t old = 0;
    _Atomic uint64_t *slot = ht_find(se, h, nv.key, nv.klen, &old);
    bool live = false;
    uint64_t ocas = 0;
    if (slot) {
        item_read(seg_data(se, SLOT_SEG(old)) + SLOT_OFF(old), &ov);
        live = !expired_at(ov.exptime, now);
        ocas = cas_of(se, SLOT_SEG(old), SLOT_OFF(old), &ov);
    }
    int r = KL_E_STORED;
    bool full = false;
    switch (mode) {
    case KL_ADD:
        if (live)
            r = KL_E_NOT_STORED;
        break;
    case KL_REPLACE:
        if (!live)
            r = KL_E_NOT_STORED;
        break;
    case KL_CAS:
        if (!live)
            r = KL_E_NOT_FOUND;
        else if (ocas != cas_in)
            r = KL_E_EXISTS;
        break;
    default: break;
    }
    if (r == KL_E_STORED) {
        /* the slot goes from the old copy straight to the new one: a reader
         * never sees the key missing in between */
        if (expired_at(nv.exptime, now)) {
            if (slot) {
                atomic_store_explicit(slot, 0, memory_order_release);
                ht_count(se, slot, -1);
            }
        } else {
            uint64_t dropped = 0;
            if (slot == NULL) {
                slot = ht_free_slot(se, h, &dropped, &full);
                if (dropped == 0)
                    ht_count(se, slot, 1);
            }
            if (dropped) {
                seg_slot_gone(se, dropped);
                atomic_fetch_add_explicit(&se->st_evictions, 1, memory_order_relaxed);
            }
            seg_live_add(se, id, nv.size);
            /* the key's read count stays with it: a new copy of a key read
             * often is as worth keeping as the old one was (merge) */
            uint32_t freq = live ? SLOT_FREQ(old) : 0;
            atomic_store_explicit(slot, slot_make(h, slot_loc(id, off), freq, old & keep),
                                  memory_order_release);
        }
        if (old)
            seg_slot_gone(se, old);
        if (cas_out)
            *cas_out = cas_of(se, id, off, &nv);
    }
    ht_unlock(se, h);
    if (full)
        ht_grow(se);
    return r;
}

int seg_reserve_op(struct kl_engine *e, const char *key, size_t klen, uint32_t vlen, uint32_t flags,
                   uint32_t exptime, struct kl_store *st)
{
    struct seg_engine *se = seg_of(e);
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_BAD_KEY;
    uint32_t now = seg_clock(se);
    uint64_t h = key_hash(key, (uint32_t)klen);
    uint32_t id, off;
    int r = reserve_item(se, key, (uint32_t)klen, vlen, 0, exptime, flags, 0, now, h, &id, &off,
                         &st->value);
    if (r != 0)
        return r;
    st->vlen = vlen;
    st->priv[P_ID] = id;
    st->priv[P_OFF] = off;
    st->priv[P_HASH] = (uintptr_t)h;
    return 0;
}

void seg_abort_op(struct kl_engine *e, struct kl_store *st)
{
    seg_writer_done(seg_of(e), (uint32_t)st->priv[P_ID]);
}

enum rmw_op { RMW_APPEND, RMW_PREPEND, RMW_TOUCH, RMW_INVALIDATE, RMW_ARITH };

struct rmw {
    enum rmw_op op;
    const char *data;
    uint32_t dlen;
    uint32_t exptime;
    bool incr;
    uint64_t delta;
    uint64_t result;
};

static int delete_plain(struct seg_engine *se, uint64_t h, const char *key, uint32_t klen,
                        uint64_t cas_in)
{
    uint32_t now = seg_clock(se);
    ht_lock(se, h);
    uint64_t v;
    int r = KL_E_OK;
    _Atomic uint64_t *slot = ht_find(se, h, key, klen, &v);
    if (slot) {
        struct item_view iv;
        uint32_t id = SLOT_SEG(v), off = SLOT_OFF(v);
        item_read(seg_data(se, id) + off, &iv);
        if (expired_at(iv.exptime, now))
            r = KL_E_NOT_FOUND;
        else if (cas_in && cas_of(se, id, off, &iv) != cas_in)
            r = KL_E_EXISTS;
        if (r != KL_E_EXISTS) {
            atomic_store_explicit(slot, 0, memory_order_release);
            ht_count(se, slot, -1);
            seg_slot_gone(se, v);
        }
    } else {
        r = KL_E_NOT_FOUND;
    }
    ht_unlock(se, h);
    return r;
}

/* Read, change, write a new copy, publish against the old CAS; retry on a race. */
static int rmw(struct seg_engine *se, const char *key, uint32_t klen, struct rmw *m,
               uint64_t cas_in, uint64_t *cas_out)
{
    uint64_t h = key_hash(key, klen);
    for (;;) {
        uint32_t now = seg_clock(se);
        uint64_t v;
        if (ht_lookup(se, h, key, klen, &v) == NULL)
            return KL_E_NOT_FOUND;
        uint32_t id = SLOT_SEG(v), off = SLOT_OFF(v);
        struct item_view ov;
        item_read(seg_data(se, id) + off, &ov);
        if (expired_at(ov.exptime, now)) {
            seg_unpin(se, id);
            return KL_E_NOT_FOUND;
        }
        uint64_t ocas = cas_of(se, id, off, &ov);
        if (m->op == RMW_ARITH && ov.vlen == 0) {
            seg_unpin(se, id); /* as memcached: an empty value, before the CAS */
            return KL_E_NON_NUMERIC;
        }
        if (cas_in && ocas != cas_in) {
            seg_unpin(se, id);
            return KL_E_EXISTS;
        }
        uint64_t num = 0;
        if (m->op == RMW_ARITH && !engine_parse_u64(ov.value, ov.vlen, &num)) {
            seg_unpin(se, id);
            return KL_E_NON_NUMERIC;
        }
        uint32_t bits = ov.bits & IT_STALE, exptime = ov.exptime, vlen = ov.vlen;
        uint64_t ncas = 0;
        char digits[20];
        switch (m->op) {
        case RMW_APPEND:
        case RMW_PREPEND:
            bits = 0;
            vlen = ov.vlen + m->dlen;
            break;
        case RMW_TOUCH:
            if (expired_at(m->exptime, now)) {
                seg_unpin(se, id);
                int r = delete_plain(se, h, key, klen, ocas);
                if (r == KL_E_EXISTS)
                    continue;
                return r;
            }
            exptime = m->exptime;
            bits |= IT_HAS_CAS;
            ncas = ocas;
            break;
        case RMW_INVALIDATE: bits |= IT_STALE; break;
        case RMW_ARITH:
            if (m->incr)
                num += m->delta;
            else
                num = num < m->delta ? 0 : num - m->delta;
            vlen = engine_format_u64(num, digits);
            break;
        }
        uint32_t nid, noff;
        char *val;
        int r = reserve_item(se, key, klen, vlen, bits, exptime, ov.cflags, ncas, now, h, &nid,
                             &noff, &val);
        if (r != 0) {
            seg_unpin(se, id);
            return r;
        }
        switch (m->op) {
        case RMW_APPEND:
            memcpy(val, ov.value, ov.vlen);
            memcpy(val + ov.vlen, m->data, m->dlen);
            break;
        case RMW_PREPEND:
            memcpy(val, m->data, m->dlen);
            memcpy(val + m->dlen, ov.value, ov.vlen);
            break;
        case RMW_ARITH: memcpy(val, digits, vlen); break;
        default: memcpy(val, ov.value, vlen); break;
        }
        seg_unpin(se, id);
        /* touch and incr/decr change an item in place as far as memcached's
         * clients can tell: its fetched and recache-token state stay */
        uint64_t keep = m->op == RMW_TOUCH || m->op == RMW_ARITH ? SLOT_FETCHED | SLOT_WIN
                        : m->op == RMW_INVALIDATE                ? SLOT_FETCHED /* a new token */
                                                                 : 0;
        r = publish(se, h, nid, noff, KL_CAS, ocas, cas_out, now, keep);
        seg_writer_done(se, nid);
        if (r == KL_E_STORED) {
            m->result = num;
            return KL_E_OK;
        }
        /* the key changed or went since we read it: read again */
    }
}

int seg_commit_op(struct kl_engine *e, struct kl_store *st, enum kl_store_mode mode,
                  uint64_t cas_in, uint64_t *cas_out)
{
    struct seg_engine *se = seg_of(e);
    uint32_t id = (uint32_t)st->priv[P_ID], off = (uint32_t)st->priv[P_OFF];
    int r;
    if (mode == KL_APPEND || mode == KL_PREPEND) {
        struct item_view iv;
        item_read(seg_data(se, id) + off, &iv);
        struct rmw m = {
            .op = mode == KL_APPEND ? RMW_APPEND : RMW_PREPEND, .data = iv.value, .dlen = iv.vlen};
        r = rmw(se, iv.key, iv.klen, &m, 0, cas_out);
        r = r == KL_E_OK ? KL_E_STORED : r == KL_E_NOT_FOUND ? KL_E_NOT_STORED : r;
    } else {
        r = publish(se, (uint64_t)st->priv[P_HASH], id, off, mode, cas_in, cas_out, seg_clock(se),
                    0);
    }
    seg_writer_done(se, id);
    return r;
}

int seg_delete_op(struct kl_engine *e, const char *key, size_t klen, uint64_t cas_in,
                  bool invalidate, uint64_t *cas_out)
{
    struct seg_engine *se = seg_of(e);
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    if (invalidate) {
        struct rmw m = {.op = RMW_INVALIDATE};
        return rmw(se, key, (uint32_t)klen, &m, cas_in, cas_out);
    }
    return delete_plain(se, key_hash(key, (uint32_t)klen), key, (uint32_t)klen, cas_in);
}

int seg_arith_op(struct kl_engine *e, const char *key, size_t klen, bool incr, uint64_t delta,
                 uint64_t cas_in, uint64_t *value, uint64_t *cas_out)
{
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    struct rmw m = {.op = RMW_ARITH, .incr = incr, .delta = delta};
    int r = rmw(seg_of(e), key, (uint32_t)klen, &m, cas_in, cas_out);
    if (r == KL_E_OK && value)
        *value = m.result;
    return r;
}

int seg_touch_op(struct kl_engine *e, const char *key, size_t klen, uint32_t exptime)
{
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    struct rmw m = {.op = RMW_TOUCH, .exptime = exptime};
    return rmw(seg_of(e), key, (uint32_t)klen, &m, 0, NULL);
}
