/* storage/disk/disk_ops.c: the disk engine's operations: lookup, stores,
 * delete, touch, incr/decr and meta invalidation.
 *
 * Every operation starts the same way: under the key's shard lock it copies
 * the entries that carry the key's tag (waiting out PENDING ones) and pins
 * their files, then reads those records with no lock held (one read for
 * nearly every key) and finds the one whose key matches. A lookup is done
 * there. A mutation decides on what it read (memcached's rules), builds the
 * new record and commits: under the shard lock again it checks that the
 * tag's entries are still the ones it read (else it starts over), claims
 * space at the active file's end, points the entry at the new record marked
 * PENDING, then writes the record unlocked and clears the mark. A delete
 * writes a tombstone and drops the entry. So what a key's entry names is
 * always on file, and a record on file is never a decision that failed.
 */
#include "disk_internal.h"

#include "keel/assert.h"
#include "storage/numbers.h"

#include <errno.h>

#define MAXC 8 /* entries of one tag in one shard we look at (more: astronomically rare) */

struct cand {
    uint32_t n;
    struct ix_entry e[MAXC];
    struct dfile *d[MAXC];
};

/* Copy the tag's entries (none PENDING) and pin their files. */
static void collect(struct disk_engine *de, struct ix_shard *s, uint32_t tag, struct cand *c)
{
    uint32_t slots[MAXC];
    for (;;) {
        pthread_spin_lock(&s->lock);
        uint32_t n = ix_find(s, tag, slots, MAXC);
        n = n > MAXC ? MAXC : n;
        bool pending = false, stale = false;
        c->n = 0;
        for (uint32_t i = 0; i < n; i++)
            pending |= (s->e[slots[i]].w1 & IX_PENDING) != 0;
        if (!pending) {
            for (uint32_t i = 0; i < n; i++) {
                struct dfile *d = files_pin(&de->files, ix_file(s->e[slots[i]]));
                if (d == NULL) { /* its file was compacted away (a failed write's revert) */
                    stale = true;
                    ix_remove(s, slots[i]);
                    break;
                }
                c->e[c->n] = s->e[slots[i]];
                c->d[c->n++] = d;
            }
            if (!stale) {
                pthread_spin_unlock(&s->lock);
                return;
            }
        }
        for (uint32_t i = 0; i < c->n; i++)
            files_unpin(c->d[i]);
        pthread_spin_unlock(&s->lock);
        if (pending)
            disk_pause();
    }
}

/* Under the shard lock: are the tag's entries still those of c? */
static bool unchanged(struct ix_shard *s, uint32_t tag, const struct cand *c)
{
    const uint64_t vol = IX_FETCHED | IX_WIN; /* bits lookups may flip */
    uint32_t slots[MAXC];
    uint32_t n = ix_find(s, tag, slots, MAXC);
    if ((n > MAXC ? MAXC : n) != c->n)
        return false;
    for (uint32_t i = 0; i < c->n; i++) {
        struct ix_entry e = s->e[slots[i]];
        if (e.w0 != c->e[i].w0 || (e.w1 & ~vol) != (c->e[i].w1 & ~vol))
            return false;
    }
    return true;
}

/* Drop an entry if it is still this one (corrupt, expired); under no lock. */
static bool drop_entry(struct disk_engine *de, struct ix_shard *s, struct ix_entry e)
{
    bool dropped = false;
    pthread_spin_lock(&s->lock);
    uint32_t slot = ix_slot_of(s, e.w0);
    if (slot != UINT32_MAX && !(s->e[slot].w1 & IX_PENDING)) {
        ix_remove(s, slot);
        dropped = true;
    }
    pthread_spin_unlock(&s->lock);
    if (dropped)
        disk_dead(de, e);
    return dropped;
}

/* What resolve() found: the key's record (in buf) or none. */
struct found {
    int idx; /* candidate index, -1: the key has no entry */
    char *buf;
    uint32_t cls;
    const char *rec;
};

static void found_free(struct disk_engine *de, struct found *f)
{
    if (f->buf)
        buf_put(&de->bufs, f->buf, f->cls);
    f->buf = NULL;
}

/* Read the candidates until the key's record: KL_E_OK (f->idx may be -1),
 * KL_E_CORRUPT (a candidate failed its CRC: dropped and counted) or KL_E_IO.
 * Unpins every candidate's file. */
static int resolve(struct disk_engine *de, struct ix_shard *s, struct cand *c, const char *key,
                   uint32_t klen, struct found *f)
{
    int r = KL_E_OK;
    f->idx = -1;
    f->buf = NULL;
    for (uint32_t i = 0; i < c->n && f->idx < 0 && r == KL_E_OK; i++) {
        struct ix_entry e = c->e[i];
        int rc = files_read(&de->files, &de->bufs, c->d[i], ix_offset(e), ix_len(e), &f->buf,
                            &f->cls, &f->rec);
        files_unpin(c->d[i]);
        c->d[i] = NULL;
        if (rc == -ENOMEM) {
            r = KL_E_NO_MEMORY; /* every buffer of the class lent out */
            break;
        }
        if (rc != 0) {
            atomic_fetch_add(&de->st_io_errors, 1);
            r = KL_E_IO;
            break;
        }
        const struct rec_hdr *h = rec_hdr(f->rec);
        if (rec_check(f->rec, ix_len(e)) != ix_len(e) || h->kind != REC_PUT) {
            atomic_fetch_add(&de->st_corrupt, 1);
            drop_entry(de, s, e);
            r = KL_E_CORRUPT;
        } else if (h->klen == klen && memcmp(rec_key(f->rec), key, klen) == 0) {
            f->idx = (int)i;
            break;
        }
        found_free(de, f);
    }
    for (uint32_t i = 0; i < c->n; i++)
        if (c->d[i]) {
            files_unpin(c->d[i]);
            c->d[i] = NULL;
        }
    if (r != KL_E_OK)
        found_free(de, f);
    return r;
}

/* Is the found record live at `now`? (else drop it as expired or flushed) */
static bool live(struct disk_engine *de, struct ix_shard *s, struct cand *c, struct found *f,
                 uint32_t now)
{
    if (f->idx < 0)
        return false;
    const struct rec_hdr *h = rec_hdr(f->rec);
    if (!disk_expired(h->exptime, now) && h->seq >= atomic_load(&de->flush_seq))
        return true;
    if (drop_entry(de, s, c->e[f->idx]))
        atomic_fetch_add(&de->st_expirations, 1);
    return false;
}

int disk_lookup_op(struct kl_engine *e, const char *key, size_t klen,
                   const struct kl_lookup_opts *o, struct kl_item *it)
{
    struct disk_engine *de = disk_of(e);
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    if (o && (o->flags & KL_LOOKUP_TOUCH)) {
        int r = disk_touch_op(e, key, klen, o->exptime);
        if (r != KL_E_OK)
            return r;
    }
    uint32_t now = disk_clock(de);
    uint64_t hv = disk_hash(key, (uint32_t)klen);
    struct ix_shard *s = &de->ix.shards[ix_shard_of(hv)];
    uint32_t tag = ix_tag_of(hv);
    struct cand c;
    struct found f;
    collect(de, s, tag, &c);
    int r = resolve(de, s, &c, key, (uint32_t)klen, &f);
    if (r != KL_E_OK)
        return r;
    if (!live(de, s, &c, &f, now)) {
        found_free(de, &f);
        return KL_E_NOT_FOUND;
    }
    const struct rec_hdr *h = rec_hdr(f.rec);
    it->value = rec_value(f.rec);
    it->vlen = h->vlen;
    it->flags = h->flags;
    it->cas = h->cas;
    it->exptime = h->exptime;
    it->ttl_left = h->exptime ? (int32_t)(h->exptime - now) : -1;
    it->last_access = 0; /* not kept by this engine */
    it->meta = (h->bits & REC_STALE) ? KL_META_STALE : 0;
    bool meta = o && (o->flags & (KL_LOOKUP_META | KL_LOOKUP_WIN));
    bool recache = meta && ((h->bits & REC_STALE) || (o->flags & KL_LOOKUP_WIN) ||
                            (o->recache_ttl && h->exptime && h->exptime - now < o->recache_ttl));
    bool bump = !(o && (o->flags & KL_LOOKUP_NOBUMP));
    pthread_spin_lock(&s->lock);
    uint32_t slot = ix_slot_of(s, c.e[f.idx].w0);
    uint64_t w1 = slot != UINT32_MAX ? s->e[slot].w1 : c.e[f.idx].w1;
    if (w1 & IX_FETCHED)
        it->meta |= KL_META_FETCHED;
    if (recache && !(w1 & IX_WIN)) {
        it->meta |= KL_META_WIN;
        w1 |= IX_WIN;
    } else if (w1 & IX_WIN) {
        it->meta |= KL_META_WON;
    }
    if (bump)
        w1 |= IX_FETCHED;
    if (slot != UINT32_MAX)
        s->e[slot].w1 = w1;
    pthread_spin_unlock(&s->lock);
    it->priv[0] = (uintptr_t)f.buf;
    it->priv[1] = f.cls;
    return KL_E_OK;
}

void disk_release_op(struct kl_engine *e, struct kl_item *it)
{
    buf_put(&disk_of(e)->bufs, (char *)it->priv[0], (uint32_t)it->priv[1]);
    it->priv[0] = 0;
}

/* ---- mutations ---- */

enum mop { M_STORE, M_DELETE, M_INVALIDATE, M_TOUCH, M_ARITH };

struct mut {
    enum mop op;
    enum kl_store_mode mode;
    char *rec; /* M_STORE: the reserved record (header, key, value) */
    uint32_t exptime;
    uint64_t cas_in;
    bool incr;
    uint64_t delta;
    uint64_t cas_out, num; /* results */
};

static uint64_t new_cas(struct disk_engine *de) { return atomic_fetch_add(&de->cas_next, 1); }

/* Decide on the old record (NULL: none live). KL_E_OK with *out the record
 * to write (in a buffer of ours, or m->rec) and *keep the entry bits to carry
 * over, or a result to return as it is. */
static int decide(struct disk_engine *de, struct mut *m, const char *old, char **out,
                  uint32_t *ocls, uint64_t *keep)
{
    const struct rec_hdr *oh = old ? rec_hdr(old) : NULL;
    *out = NULL;
    *keep = 0;
    if (m->op == M_STORE) {
        const struct rec_hdr *nh = rec_hdr(m->rec);
        switch (m->mode) {
        case KL_ADD:
            if (oh)
                return KL_E_NOT_STORED;
            break;
        case KL_REPLACE:
        case KL_APPEND:
        case KL_PREPEND:
            if (!oh)
                return KL_E_NOT_STORED;
            break;
        case KL_CAS:
            if (!oh)
                return KL_E_NOT_FOUND;
            if (oh->cas != m->cas_in)
                return KL_E_EXISTS;
            break;
        default: break;
        }
        m->cas_out = new_cas(de);
        if (m->mode != KL_APPEND && m->mode != KL_PREPEND) {
            ((struct rec_hdr *)m->rec)->cas = m->cas_out;
            *out = m->rec;
            return KL_E_OK;
        }
        uint64_t vlen = (uint64_t)oh->vlen + nh->vlen;
        if (rec_size(nh->klen, 0) + vlen > de->item_max)
            return KL_E_TOO_LARGE;
        char *b = buf_get(&de->bufs, rec_size(nh->klen, (uint32_t)vlen), ocls);
        if (b == NULL)
            return KL_E_NO_MEMORY;
        char *v = rec_start(b, REC_PUT, rec_key(old), oh->klen, (uint32_t)vlen, oh->flags,
                            oh->exptime, 0, m->cas_out);
        const char *first = m->mode == KL_APPEND ? rec_value(old) : rec_value(m->rec);
        uint32_t flen = m->mode == KL_APPEND ? oh->vlen : nh->vlen;
        memcpy(v, first, flen);
        memcpy(v + flen, m->mode == KL_APPEND ? rec_value(m->rec) : rec_value(old),
               (uint32_t)vlen - flen);
        *out = b;
        return KL_E_OK;
    }
    if (!oh)
        return KL_E_NOT_FOUND;
    if (m->op == M_ARITH && oh->vlen == 0)
        return KL_E_NON_NUMERIC; /* as memcached: before the CAS check */
    if (m->cas_in && oh->cas != m->cas_in)
        return KL_E_EXISTS;
    char digits[20];
    uint32_t vlen = oh->vlen, bits = oh->bits, exptime = oh->exptime;
    uint64_t cas = oh->cas;
    const char *val = rec_value(old);
    enum rec_kind kind = REC_PUT;
    switch (m->op) {
    case M_DELETE:
        kind = REC_DEL;
        vlen = 0;
        break;
    case M_INVALIDATE:
        bits |= REC_STALE;
        cas = m->cas_out = new_cas(de);
        *keep = IX_FETCHED; /* a new recache token */
        break;
    case M_TOUCH:
        if (disk_expired(m->exptime, atomic_load(&de->now))) {
            kind = REC_DEL;
            vlen = 0;
        }
        exptime = m->exptime;
        *keep = IX_FETCHED | IX_WIN;
        break;
    case M_ARITH: {
        uint64_t num;
        if (!engine_parse_u64(val, oh->vlen, &num))
            return KL_E_NON_NUMERIC;
        num = m->incr ? num + m->delta : num < m->delta ? 0 : num - m->delta;
        m->num = num;
        vlen = engine_format_u64(num, digits);
        val = digits;
        cas = m->cas_out = new_cas(de);
        *keep = IX_FETCHED | IX_WIN;
        break;
    }
    default: KL_PANIC("mutation %d", (int)m->op);
    }
    char *b = buf_get(&de->bufs, rec_size(oh->klen, vlen), ocls);
    if (b == NULL)
        return KL_E_NO_MEMORY;
    char *v = rec_start(b, kind, rec_key(old), oh->klen, vlen, oh->flags, exptime, bits, cas);
    memcpy(v, val, vlen);
    *out = b;
    return KL_E_OK;
}

#define C_RETRY (-1)

/* Commit a decided record: KL_E_OK, C_RETRY (the key's entries changed:
 * start over), KL_E_NO_SPACE, KL_E_IO, KL_E_NO_MEMORY. */
static int commit(struct disk_engine *de, struct ix_shard *s, uint32_t tag, struct cand *c,
                  struct found *f, char *rec, uint64_t keep)
{
    const struct rec_hdr *h = rec_hdr(rec);
    uint32_t size = rec_size(h->klen, h->vlen);
    uint32_t body = rec_crc_body(rec);
    bool del = h->kind == REC_DEL, had = f->idx >= 0;
    struct ix_entry old = had ? c->e[f->idx] : (struct ix_entry){0, 0}, neu;
    struct dfile *d;
    uint64_t off, seq;
    for (;;) {
        pthread_spin_lock(&s->lock);
        if (!unchanged(s, tag, c)) {
            pthread_spin_unlock(&s->lock);
            return C_RETRY;
        }
        pthread_spin_lock(&de->files.alloc);
        d = files_claim(&de->files, size, &off, &seq);
        pthread_spin_unlock(&de->files.alloc);
        if (d != NULL)
            break;
        pthread_spin_unlock(&s->lock);
        int r = files_room(&de->files, size);
        if (r == -ENOSPC || r == -EFBIG || r == -EDQUOT) {
            atomic_fetch_add(&de->st_no_space, 1);
            return KL_E_NO_SPACE;
        }
        if (r != 0) {
            atomic_fetch_add(&de->st_io_errors, 1);
            return KL_E_IO;
        }
    }
    rec_seal(rec, seq, body);
    uint32_t slot = had ? ix_slot_of(s, old.w0) : UINT32_MAX;
    if (had)
        old = s->e[slot];
    if (del) {
        neu = old;
        neu.w1 |= IX_PENDING | IX_TOMB;
        s->e[slot] = neu;
    } else {
        neu.w0 = ix_loc_w0(tag, d->id, off);
        neu.w1 = ix_w1(size, h->exptime, IX_USED | IX_PENDING | (old.w1 & keep));
        if (had) {
            s->e[slot] = neu;
        } else if (ix_insert(s, neu) != 0) {
            pthread_spin_unlock(&s->lock);
            /* the claimed space stays a hole; recovery skips it */
            files_skip(d, size, off);
            files_unpin(d);
            return KL_E_NO_MEMORY;
        }
    }
    pthread_spin_unlock(&s->lock);

    int wr = files_write(d, rec, size, off);

    pthread_spin_lock(&s->lock);
    slot = ix_slot_of(s, neu.w0);
    if (slot != UINT32_MAX && (s->e[slot].w1 & IX_PENDING)) { /* else flushed meanwhile */
        if (wr != 0) {
            if (had)
                s->e[slot] = old;
            else
                ix_remove(s, slot);
        } else if (del) {
            ix_remove(s, slot);
        } else {
            s->e[slot].w1 &= ~IX_PENDING;
        }
    }
    pthread_spin_unlock(&s->lock);
    if (wr != 0) {
        files_unpin(d);
        atomic_fetch_add(wr == -ENOSPC || wr == -EFBIG ? &de->st_no_space : &de->st_io_errors, 1);
        return wr == -ENOSPC || wr == -EFBIG ? KL_E_NO_SPACE : KL_E_IO;
    }
    if (had)
        disk_dead(de, old);
    if (del) /* a tombstone serves recovery only */
        atomic_fetch_add(&d->dead, size);
    else
        atomic_fetch_add(&de->live_bytes, size);
    files_unpin(d);
    if (de->sync == KL_SYNC_ALWAYS) {
        int sr = files_sync_wait(&de->files);
        if (sr != 0) {
            atomic_fetch_add(&de->st_io_errors, 1);
            return sr == -ENOSPC ? KL_E_NO_SPACE : KL_E_IO;
        }
    }
    return KL_E_OK;
}

/* Run a mutation on a key to its end (retrying when the key changed under it). */
static int mutate(struct disk_engine *de, const char *key, uint32_t klen, struct mut *m)
{
    uint64_t hv = disk_hash(key, klen);
    struct ix_shard *s = &de->ix.shards[ix_shard_of(hv)];
    uint32_t tag = ix_tag_of(hv);
    for (;;) {
        uint32_t now = disk_clock(de);
        struct cand c;
        struct found f;
        collect(de, s, tag, &c);
        int r = resolve(de, s, &c, key, klen, &f);
        if (r == KL_E_CORRUPT)
            continue; /* the bad entry is gone: as if absent */
        if (r != KL_E_OK)
            return r;
        if (f.idx >= 0 && !live(de, s, &c, &f, now)) {
            found_free(de, &f);
            continue; /* dropped: read the entries again */
        }
        char *rec;
        uint32_t cls = 0;
        uint64_t keep;
        r = decide(de, m, f.idx >= 0 ? f.rec : NULL, &rec, &cls, &keep);
        if (r == KL_E_OK) {
            r = commit(de, s, tag, &c, &f, rec, keep);
            if (rec != m->rec)
                buf_put(&de->bufs, rec, cls);
        }
        found_free(de, &f);
        if (r != C_RETRY)
            return r;
    }
}

/* ---- the engine's entry points ---- */

enum { P_BUF, P_CLS, P_KLEN };

int disk_reserve_op(struct kl_engine *e, const char *key, size_t klen, uint32_t vlen,
                    uint32_t flags, uint32_t exptime, struct kl_store *st)
{
    struct disk_engine *de = disk_of(e);
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_BAD_KEY;
    if ((uint64_t)rec_size((uint32_t)klen, 0) + vlen > de->item_max)
        return KL_E_TOO_LARGE;
    uint32_t cls;
    char *b = buf_get(&de->bufs, rec_size((uint32_t)klen, vlen), &cls);
    if (b == NULL)
        return KL_E_NO_MEMORY;
    st->value = rec_start(b, REC_PUT, key, (uint32_t)klen, vlen, flags, exptime, 0, 0);
    st->vlen = vlen;
    st->priv[P_BUF] = (uintptr_t)b;
    st->priv[P_CLS] = cls;
    st->priv[P_KLEN] = klen;
    return 0;
}

void disk_abort_op(struct kl_engine *e, struct kl_store *st)
{
    buf_put(&disk_of(e)->bufs, (char *)st->priv[P_BUF], (uint32_t)st->priv[P_CLS]);
}

int disk_commit_op(struct kl_engine *e, struct kl_store *st, enum kl_store_mode mode,
                   uint64_t cas_in, uint64_t *cas_out)
{
    struct disk_engine *de = disk_of(e);
    char *rec = (char *)st->priv[P_BUF];
    struct mut m = {.op = M_STORE, .mode = mode, .rec = rec, .cas_in = cas_in};
    int r = mutate(de, rec_key(rec), rec_hdr(rec)->klen, &m);
    if (r == KL_E_OK) {
        r = KL_E_STORED;
        if (cas_out)
            *cas_out = m.cas_out;
    }
    disk_abort_op(e, st);
    return r;
}

int disk_delete_op(struct kl_engine *e, const char *key, size_t klen, uint64_t cas_in,
                   bool invalidate, uint64_t *cas_out)
{
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    struct mut m = {.op = invalidate ? M_INVALIDATE : M_DELETE, .cas_in = cas_in};
    int r = mutate(disk_of(e), key, (uint32_t)klen, &m);
    if (r == KL_E_OK && cas_out && invalidate)
        *cas_out = m.cas_out;
    return r;
}

int disk_arith_op(struct kl_engine *e, const char *key, size_t klen, bool incr, uint64_t delta,
                  uint64_t cas_in, uint64_t *value, uint64_t *cas_out)
{
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    struct mut m = {.op = M_ARITH, .incr = incr, .delta = delta, .cas_in = cas_in};
    int r = mutate(disk_of(e), key, (uint32_t)klen, &m);
    if (r == KL_E_OK) {
        if (value)
            *value = m.num;
        if (cas_out)
            *cas_out = m.cas_out;
    }
    return r;
}

int disk_touch_op(struct kl_engine *e, const char *key, size_t klen, uint32_t exptime)
{
    if (klen == 0 || klen > KL_KEY_MAX)
        return KL_E_NOT_FOUND;
    struct mut m = {.op = M_TOUCH, .exptime = exptime};
    return mutate(disk_of(e), key, (uint32_t)klen, &m);
}
