/* mmlog readers: iterate committed records, and follow a live log.
 *
 * A reader walks headers from its offset: a committed record is returned,
 * padding is skipped, and an uncommitted one (a length of zero or below)
 * ends the walk for now. Records up to a chunk are returned in place, from
 * the reader's own window; larger ones are copied out with pread.
 *
 * Following: a blocked reader counts itself in meta->waiters and sleeps on
 * the futex meta->commit_seq; a writer that commits while waiters is non-zero
 * bumps the sequence and wakes them. The writer reads `waiters` without a
 * full fence (it would cost every append), so in a rare race a wake-up can be
 * missed; sleeps are therefore cut into slices of at most 20 ms, which bounds
 * the delay. A reader that stays stuck on the same unfinished claim for
 * STALL_RECOVER_MS runs recovery, which pads the claim if its writer is dead;
 * that includes a claim past the end of the file, which its writer died
 * before growing the file to hold.
 *
 * A header found invalid is looked at again when its length has changed
 * meanwhile: a writer turning it into padding (append.c) may have been
 * half-way, and only a length that stayed the same means damage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "keel/assert.h"
#include "keel/clock.h"
#include "mmlog_internal.h"

#define WAIT_SLICE_MS    20
#define STALL_RECOVER_MS 200

struct kl_mmlog_reader {
    struct kl_mmlog *log;
    uint64_t offset;
    struct mmlog_window window;
    char *copy; /* for records larger than a chunk */
    size_t copy_cap;
    uint64_t stuck_offset; /* where the reader last found an unfinished claim */
    uint64_t stuck_since_ns;
};

int kl_mmlog_reader_open(struct kl_mmlog *log, uint64_t offset, struct kl_mmlog_reader **out)
{
    if (offset % MMLOG_ALIGN != 0)
        return -EINVAL;
    struct kl_mmlog_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->log = log;
    r->offset = offset;
    r->window.chunk = UINT64_MAX;
    r->stuck_offset = UINT64_MAX;
    *out = r;
    return 0;
}

void kl_mmlog_reader_close(struct kl_mmlog_reader *r)
{
    if (!r)
        return;
    mmlog_windows_release(r->log, &r->window, 1);
    free(r->copy);
    free(r);
}

uint64_t kl_mmlog_reader_offset(const struct kl_mmlog_reader *r) { return r->offset; }

static void note_stuck(struct kl_mmlog_reader *r)
{
    if (r->stuck_offset != r->offset) {
        r->stuck_offset = r->offset;
        r->stuck_since_ns = kl_now();
    }
}

/* The header at the reader's offset, or NULL when the log does not reach it
 * yet. */
static const struct mmlog_hdr *header_here(struct kl_mmlog_reader *r, int *err)
{
    struct mmlog_meta *m = r->log->meta;
    *err = 0;
    if (r->offset >= __atomic_load_n(&m->cursor, __ATOMIC_ACQUIRE))
        return NULL;
    if (r->offset + MMLOG_HDR_SIZE > __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE)) {
        note_stuck(r); /* claimed, but the file has not grown to it yet */
        return NULL;
    }
    const char *at = mmlog_window_at(r->log, &r->window, 1, r->offset, false);
    if (!at) {
        *err = -errno;
        return NULL;
    }
    return (const struct mmlog_hdr *)(const void *)at;
}

int kl_mmlog_next(struct kl_mmlog_reader *r, struct kl_mmlog_record *rec)
{
    for (;;) {
        int err;
        const struct mmlog_hdr *h = header_here(r, &err);
        if (!h)
            return err;
        int32_t len = __atomic_load_n(&h->len, __ATOMIC_ACQUIRE);
        if (len <= 0 && (len == 0 || mmlog_hdr_valid(h, r->offset, len))) {
            note_stuck(r); /* being written, or abandoned */
            return 0;
        }
        if (!mmlog_hdr_valid(h, r->offset, len)) {
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&h->len, __ATOMIC_RELAXED) != len)
                continue; /* rewritten while we looked: look again */
            return -EBADMSG;
        }
        uint64_t at = r->offset;
        r->offset += (uint32_t)len;
        if (h->type == MMLOG_TYPE_PAD)
            continue;
        rec->offset = at;
        rec->type = h->type;
        rec->len = h->payload_len;
        if ((uint32_t)len <= r->log->chunk_size) {
            rec->data = (const char *)h + MMLOG_HDR_SIZE;
            return 1;
        }
        if (r->copy_cap < h->payload_len) {
            char *bigger = realloc(r->copy, h->payload_len);
            if (!bigger)
                return -ENOMEM;
            r->copy = bigger;
            r->copy_cap = h->payload_len;
        }
        size_t done = 0;
        while (done < h->payload_len) {
            ssize_t n = pread(r->log->data_fd, r->copy + done, h->payload_len - done,
                              (off_t)(at + MMLOG_HDR_SIZE + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return n < 0 ? -errno : -EIO;
            done += (size_t)n;
        }
        rec->data = r->copy;
        return 1;
    }
}

/* True when kl_mmlog_next has something new to say. */
static bool has_news(struct kl_mmlog_reader *r)
{
    int err;
    const struct mmlog_hdr *h = header_here(r, &err);
    if (err)
        return true; /* let next() report it */
    return h && __atomic_load_n(&h->len, __ATOMIC_ACQUIRE) > 0;
}

int kl_mmlog_wait(struct kl_mmlog_reader *r, int timeout_ms)
{
    struct mmlog_meta *m = r->log->meta;
    uint64_t start = kl_now();
    for (;;) {
        if (has_news(r))
            return 1;
        /* Stuck behind an unfinished claim for long: maybe its writer died. */
        if (!r->log->readonly && r->stuck_offset == r->offset &&
            r->offset < __atomic_load_n(&m->cursor, __ATOMIC_ACQUIRE) &&
            kl_now() - r->stuck_since_ns > (uint64_t)STALL_RECOVER_MS * 1000000) {
            struct kl_mmlog_stats stats;
            kl_mmlog_recover(r->log, &stats);
            r->stuck_since_ns = kl_now();
            if (has_news(r))
                return 1;
        }
        int slice = WAIT_SLICE_MS;
        if (timeout_ms >= 0) {
            uint64_t waited_ms = (kl_now() - start) / 1000000;
            if (waited_ms >= (uint64_t)timeout_ms)
                return 0;
            if ((uint64_t)timeout_ms - waited_ms < (uint64_t)slice)
                slice = (int)((uint64_t)timeout_ms - waited_ms);
        }
        __atomic_fetch_add(&m->waiters, 1, __ATOMIC_SEQ_CST);
        uint32_t seq = __atomic_load_n(&m->commit_seq, __ATOMIC_SEQ_CST);
        if (!has_news(r)) {
            struct timespec ts = {slice / 1000, (long)(slice % 1000) * 1000000};
            syscall(SYS_futex, &m->commit_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
        }
        __atomic_fetch_sub(&m->waiters, 1, __ATOMIC_SEQ_CST);
    }
}
