/* mmlog recovery, check and trim.
 *
 * Recovery, under the meta lock:
 *  1. Slots of dead processes are freed. A dead slot in state WRITING names
 *     its claim exactly (offset, length): unless committed, it becomes
 *     padding. One in state CLAIMING died between announcing a claim and
 *     learning its offset: the log is marked NEED_SCAN.
 *  2. (kl_mmlog_recover only) The log is scanned from recovered_upto to the
 *     cursor. Committed records and padding are stepped over. An unfinished
 *     claim that no live slot owns is abandoned: with a valid in-progress
 *     header its length is known; with zeros (the writer died before its
 *     header, or gave up on a full disk) the scan looks for the next place
 *     that is either a valid header (bound to its offset by `check`) or a
 *     live claim, and pads up to it. recovered_upto advances over the prefix
 *     that holds no live claim.
 * A live writer's claim is never touched: it is known from its slot, which
 * is read after the cursor, and a CLAIMING slot that stays unresolved stops
 * the scan rather than risk padding over it.
 *
 * Check walks the same way without the lock and changes nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/assert.h"
#include "mmlog_internal.h"

/* Live claims, read from the slots after the cursor. */
struct live_claims {
    uint64_t offset[MMLOG_MAX_SLOTS];
    uint64_t len[MMLOG_MAX_SLOTS];
    unsigned count;
    bool unresolved; /* a live slot still CLAIMING: offset unknown */
};

static void read_live_claims(struct kl_mmlog *log, struct live_claims *lc, bool check_alive)
{
    lc->count = 0;
    lc->unresolved = false;
    for (unsigned i = 0; i < MMLOG_MAX_SLOTS; i++) {
        struct mmlog_slot *s = &log->meta->slots[i];
        mmlog_owner owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
        if (owner == 0)
            continue;
        uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (state < MMLOG_SLOT_CLAIMING)
            continue;
        if (check_alive && owner != log->self && !mmlog_owner_alive(owner))
            continue;
        if (state == MMLOG_SLOT_CLAIMING) {
            lc->unresolved = true;
            continue;
        }
        lc->offset[lc->count] = s->claim_offset;
        lc->len[lc->count] = s->claim_len;
        lc->count++;
    }
}

/* Length of the live claim at `offset`, or 0. */
static uint64_t live_claim_at(const struct live_claims *lc, uint64_t offset)
{
    for (unsigned i = 0; i < lc->count; i++)
        if (lc->offset[i] == offset)
            return lc->len[i];
    return 0;
}

/* A read-only look at the header at `offset` (inside the file). */
static const struct mmlog_hdr *peek(struct kl_mmlog *log, struct mmlog_window *w, uint64_t offset)
{
    const char *at = mmlog_window_at(log, w, 1, offset, false);
    return at ? (const struct mmlog_hdr *)(const void *)at : NULL;
}

static bool valid_at(struct kl_mmlog *log, struct mmlog_window *w, uint64_t offset)
{
    const struct mmlog_hdr *h = peek(log, w, offset);
    return h && mmlog_hdr_valid(h, offset, __atomic_load_n(&h->len, __ATOMIC_ACQUIRE));
}

/* From an unparseable place `p`, the next offset that is a valid header, a
 * live claim, or `end`. */
static uint64_t next_boundary(struct kl_mmlog *log, struct mmlog_window *w,
                              const struct live_claims *lc, uint64_t p, uint64_t end)
{
    for (uint64_t q = p + MMLOG_ALIGN; q < end; q += MMLOG_ALIGN)
        if (live_claim_at(lc, q) || (q + MMLOG_HDR_SIZE <= end && valid_at(log, w, q)))
            return q;
    return end;
}

void mmlog_recover_slots(struct kl_mmlog *log, struct kl_mmlog_stats *stats)
{
    struct mmlog_meta *m = log->meta;
    uint64_t size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < MMLOG_MAX_SLOTS; i++) {
        struct mmlog_slot *s = &m->slots[i];
        mmlog_owner owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
        if (owner == 0 || owner == log->self || mmlog_owner_alive(owner))
            continue;
        uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (state == MMLOG_SLOT_CLAIMING) {
            __atomic_fetch_or(&m->flags, MMLOG_FLAG_NEED_SCAN, __ATOMIC_RELAXED);
        } else if (state == MMLOG_SLOT_WRITING) {
            uint64_t off = s->claim_offset, len = s->claim_len;
            bool padded = false;
            if (off + len <= size) {
                struct mmlog_window w = {UINT64_MAX, NULL};
                const struct mmlog_hdr *h = peek(log, &w, off);
                bool committed = h && __atomic_load_n(&h->len, __ATOMIC_ACQUIRE) > 0 &&
                                 mmlog_hdr_valid(h, off, h->len);
                mmlog_windows_release(log, &w, 1);
                padded = committed || mmlog_write_padding(log, off, len) == 0;
                if (!committed && padded) {
                    m->recovered_claims++;
                    if (stats)
                        stats->recovered++;
                }
            }
            if (!padded) /* past the file's end: the scan will find it */
                __atomic_fetch_or(&m->flags, MMLOG_FLAG_NEED_SCAN, __ATOMIC_RELAXED);
        }
        __atomic_store_n(&s->state, MMLOG_SLOT_FREE, __ATOMIC_RELAXED);
        __atomic_store_n(&s->owner, 0, __ATOMIC_RELEASE);
        if (stats)
            stats->slots_released++;
    }
}

/* Wait (briefly) for live CLAIMING slots to learn their offsets. */
static void read_resolved_claims(struct kl_mmlog *log, struct live_claims *lc)
{
    for (int tries = 0; tries < 1000; tries++) {
        read_live_claims(log, lc, true);
        if (!lc->unresolved)
            return;
        sched_yield();
    }
}

int kl_mmlog_recover(struct kl_mmlog *log, struct kl_mmlog_stats *stats)
{
    if (log->readonly)
        return -EBADF;
    struct mmlog_meta *m = log->meta;
    memset(stats, 0, sizeof *stats);
    struct live_claims *lc = malloc(sizeof *lc);
    if (!lc)
        return -ENOMEM;
    uint64_t takeovers = m->lock_takeovers;
    mmlog_lock(log);
    stats->locks_released = m->lock_takeovers - takeovers;
    mmlog_recover_slots(log, stats);
    uint64_t end = __atomic_load_n(&m->cursor, __ATOMIC_ACQUIRE);
    read_resolved_claims(log, lc);
    mmlog_unlock(log);

    /* Claims past the file's end need the file to hold their padding. */
    int err = mmlog_ensure_size(log, end);
    mmlog_lock(log);
    uint64_t size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
    if (err != 0 && end > size)
        end = size / MMLOG_ALIGN * MMLOG_ALIGN;
    err = 0;

    struct mmlog_window w = {UINT64_MAX, NULL};
    uint64_t p = m->recovered_upto;
    bool clean_prefix = true;
    while (p + MMLOG_HDR_SIZE <= end) {
        const struct mmlog_hdr *h = peek(log, &w, p);
        if (!h) {
            err = -errno;
            break;
        }
        int32_t len = __atomic_load_n(&h->len, __ATOMIC_ACQUIRE);
        uint64_t live = live_claim_at(lc, p);
        if (len > 0 && mmlog_hdr_valid(h, p, len)) {
            p += (uint32_t)len;
        } else if (live) {
            clean_prefix = false; /* a live writer's claim: leave it */
            p += live;
        } else if (lc->unresolved) {
            break; /* might be the unresolved writer's: decide later */
        } else {
            uint64_t pad = len < 0 && mmlog_hdr_valid(h, p, len)
                               ? (uint32_t)-len
                               : next_boundary(log, &w, lc, p, end) - p;
            if ((err = mmlog_write_padding(log, p, pad)) != 0)
                break;
            stats->recovered++;
            m->recovered_claims++;
            p += pad;
        }
        if (clean_prefix)
            m->recovered_upto = p;
    }
    mmlog_windows_release(log, &w, 1);
    if (clean_prefix && p >= end && !lc->unresolved)
        __atomic_fetch_and(&m->flags, ~MMLOG_FLAG_NEED_SCAN, __ATOMIC_RELAXED);
    stats->end = end;
    mmlog_unlock(log);
    free(lc);
    if (stats->recovered)
        mmlog_wake_followers(log);
    return err;
}

int kl_mmlog_check(struct kl_mmlog *log, struct kl_mmlog_stats *stats)
{
    struct mmlog_meta *m = log->meta;
    memset(stats, 0, sizeof *stats);
    struct live_claims *lc = malloc(sizeof *lc);
    if (!lc)
        return -ENOMEM;
    uint64_t end = __atomic_load_n(&m->cursor, __ATOMIC_ACQUIRE);
    read_live_claims(log, lc, true);
    uint64_t size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
    struct mmlog_window w = {UINT64_MAX, NULL};
    uint64_t p = 0;
    uint64_t scan_end = end < size ? end : size / MMLOG_ALIGN * MMLOG_ALIGN;
    while (p + MMLOG_HDR_SIZE <= scan_end) {
        const struct mmlog_hdr *h = peek(log, &w, p);
        if (!h)
            break;
        int32_t len = __atomic_load_n(&h->len, __ATOMIC_ACQUIRE);
        bool valid = mmlog_hdr_valid(h, p, len);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (!valid && __atomic_load_n(&h->len, __ATOMIC_RELAXED) != len)
            continue; /* rewritten while we looked (append.c): look again */
        uint64_t live = live_claim_at(lc, p);
        if (valid && len > 0) {
            if (h->type == MMLOG_TYPE_PAD) {
                stats->padding++;
                stats->padding_bytes += (uint32_t)len;
            } else {
                stats->records++;
                stats->record_bytes += h->payload_len;
            }
            p += (uint32_t)len;
        } else if (live) {
            stats->unfinished++;
            p += live;
        } else if (len == 0 || valid) {
            stats->unfinished++;
            if (!lc->unresolved)
                stats->abandoned++;
            p = valid ? p + (uint32_t)-len : next_boundary(log, &w, lc, p, scan_end);
        } else {
            stats->damaged++;
            p = next_boundary(log, &w, lc, p, scan_end);
        }
    }
    if (end > p && !live_claim_at(lc, p)) { /* claims the file never grew to hold */
        stats->unfinished++;
        if (!lc->unresolved)
            stats->abandoned++;
    }
    mmlog_windows_release(log, &w, 1);
    free(lc);
    stats->end = end;
    return stats->damaged ? -EBADMSG : 0;
}

int kl_mmlog_trim(struct kl_mmlog *log)
{
    if (log->readonly)
        return -EBADF;
    if (log->claim_open)
        return -EBUSY; /* the claim points into a window trim would unmap */
    struct mmlog_meta *m = log->meta;
    mmlog_lock(log);
    mmlog_recover_slots(log, NULL);
    int err = 0;
    for (unsigned i = 0; i < MMLOG_MAX_SLOTS && err == 0; i++) {
        struct mmlog_slot *s = &m->slots[i];
        mmlog_owner owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
        if (owner != 0 && s != log->slot)
            err = -EBUSY;
    }
    if (err == 0) {
        uint64_t cursor = __atomic_load_n(&m->cursor, __ATOMIC_ACQUIRE);
        uint64_t page = m->page_size;
        uint64_t want = (cursor + page - 1) / page * page;
        if (want < page)
            want = page;
        uint64_t size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
        if (want < size) {
            mmlog_windows_release(log, log->windows, log->window_count);
            if (ftruncate(log->data_fd, (off_t)want) != 0)
                err = -errno;
            else
                __atomic_store_n(&m->file_size, want, __ATOMIC_RELEASE);
        }
    }
    mmlog_unlock(log);
    return err;
}
