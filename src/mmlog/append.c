/* mmlog writers: claim, commit, abort, append; and growing the data file.
 *
 * The fast path of an append is: two stores to the handle's own slot, one
 * fetch-and-add on the shared cursor, a header and a payload copied into an
 * already-mapped window, one release store to publish the length, and a
 * relaxed load to see whether any follower sleeps. No system call, no lock.
 * Records larger than a chunk are copied with pwrite and published through
 * the window like any other.
 *
 * Growth runs under the meta lock when a claim ends past the file: the file
 * is extended to the claim's chunk plus two more, so the next claims find
 * room, with fallocate (mmlog_grow_file); writers ahead of the end start
 * that growth with a try-lock, so it rarely stops anyone. A full disk (or RLIMIT_FSIZE,
 * read and checked before every growth so that no SIGXFSZ is raised) fails
 * the append with -ENOSPC or -EFBIG. A writer that would need growth grows
 * the file before it claims, so a failed append claims nothing and a logger
 * looping on a full disk burns no log space; only a writer that raced past
 * another's claim to the end can fail after its claim, which recovery pads.
 *
 * A header is rewritten as padding (abort, a failed copy, recovery) in an
 * order no reader can misread: length 0 first, then the fields, then the
 * positive length; a reader that found a header invalid looks at its length
 * again before it reports damage (reader.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "keel/assert.h"
#include "mmlog_internal.h"

/* Growth starts while this many chunks of room are left, so that writers
 * rarely find the file's end and wait for the lock. */
#define GROW_AHEAD_CHUNKS 2

int mmlog_ensure_size(struct kl_mmlog *log, uint64_t end)
{
    struct mmlog_meta *m = log->meta;
    if (KL_LIKELY(end <= __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE)))
        return 0;
    mmlog_lock(log);
    uint64_t size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
    int err = 0;
    if (end > size) {
        uint64_t cs = log->chunk_size;
        uint64_t page = m->page_size;
        uint64_t want[3] = {(end + cs - 1) / cs * cs + GROW_AHEAD_CHUNKS * cs,
                            (end + cs - 1) / cs * cs, (end + page - 1) / page * page};
        err = -ENOSPC;
        for (int i = 0; i < 3 && err != 0; i++) {
            if (want[i] < end)
                continue;
            err = mmlog_grow_file(log->data_fd, size, want[i]);
            if (err == 0) {
                __atomic_store_n(&m->file_size, want[i], __ATOMIC_RELEASE);
                m->grow_count++;
            }
        }
    }
    mmlog_unlock(log);
    return err;
}

/* Zeros to write from: never written, so its pages stay the shared zero page. */
static const char zeros[64 * 1024];

/* Extend [from, to) by writing zeros: for file systems without fallocate. */
static int write_zeros(int fd, uint64_t from, uint64_t to)
{
    struct iovec iov[64];
    for (int i = 0; i < 64; i++)
        iov[i] = (struct iovec){(void *)zeros, sizeof zeros};
    while (from < to) {
        uint64_t want = to - from;
        int n = 0;
        for (; n < 64 && want > 0; n++) {
            iov[n].iov_len = want < sizeof zeros ? want : sizeof zeros;
            want -= iov[n].iov_len;
        }
        ssize_t w = pwritev(fd, iov, n, (off_t)from);
        for (int i = 0; i < n; i++)
            iov[i].iov_len = sizeof zeros;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -ENOSPC;
        from += (uint64_t)w;
    }
    return 0;
}

uint64_t mmlog_fsize_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    return (uint64_t)rl.rlim_cur;
}

int mmlog_grow_file(int fd, uint64_t from, uint64_t to)
{
    if (to > mmlog_fsize_limit())
        return -EFBIG;
    for (;;) {
        if (fallocate(fd, 0, (off_t)from, (off_t)(to - from)) == 0)
            return 0;
        if (errno == EOPNOTSUPP)
            return write_zeros(fd, from, to);
        if (errno != EINTR)
            return -errno;
    }
}

void mmlog_wake_followers(struct kl_mmlog *log)
{
    struct mmlog_meta *m = log->meta;
    __atomic_fetch_add(&m->commit_seq, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &m->commit_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* Grow the file by one chunk past `seen_size` unless another writer is
 * already at it: a try-lock, never a wait. */
static void grow_ahead(struct kl_mmlog *log, uint64_t seen_size)
{
    struct mmlog_meta *m = log->meta;
    mmlog_owner expected = 0;
    if (__atomic_load_n(&m->lock_owner, __ATOMIC_RELAXED) != 0 ||
        !__atomic_compare_exchange_n(&m->lock_owner, &expected, log->self, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return;
    uint64_t size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
    uint64_t want = seen_size + log->chunk_size;
    if (size < want && mmlog_grow_file(log->data_fd, size, want) == 0) {
        __atomic_store_n(&m->file_size, want, __ATOMIC_RELEASE);
        m->grow_count++;
    }
    mmlog_unlock(log); /* a failure here is reported by the claim that needs the room */
}

/* Claim `total` bytes: returns the offset, with the slot recording the claim,
 * and the file grown to hold it; or a negative errno (the claim abandoned). */
static int64_t reserve(struct kl_mmlog *log, uint64_t total)
{
    /* Grow first where the claim would reach past the file: a growth that
     * fails then costs no log space. */
    uint64_t ahead = __atomic_load_n(&log->meta->cursor, __ATOMIC_RELAXED) + total;
    if (KL_UNLIKELY(ahead > __atomic_load_n(&log->meta->file_size, __ATOMIC_ACQUIRE))) {
        int err = mmlog_ensure_size(log, ahead);
        if (err != 0)
            return err;
    }
    struct mmlog_slot *slot = log->slot;
    slot->claim_len = total;
    __atomic_store_n(&slot->state, MMLOG_SLOT_CLAIMING, __ATOMIC_RELAXED);
    /* acq_rel: whoever reads the cursor past this claim sees CLAIMING */
    uint64_t offset = __atomic_fetch_add(&log->meta->cursor, total, __ATOMIC_ACQ_REL);
    slot->claim_offset = offset;
    __atomic_store_n(&slot->state, MMLOG_SLOT_WRITING, __ATOMIC_RELEASE);
    uint64_t end = offset + total;
    uint64_t size = __atomic_load_n(&log->meta->file_size, __ATOMIC_ACQUIRE);
    int err = 0;
    if (KL_UNLIKELY(end > size))
        err = mmlog_ensure_size(log, end);
    else if (KL_UNLIKELY(size - end < GROW_AHEAD_CHUNKS * log->chunk_size))
        grow_ahead(log, size);
    if (KL_UNLIKELY(err != 0)) {
        __atomic_store_n(&slot->state, MMLOG_SLOT_IDLE, __ATOMIC_RELEASE);
        return err;
    }
    return (int64_t)offset;
}

/* Write a header with a negative (in progress) length; returns it. */
static struct mmlog_hdr *begin_record(char *at, uint64_t offset, uint32_t total, uint16_t type,
                                      uint32_t payload_len)
{
    struct mmlog_hdr *h = (struct mmlog_hdr *)(void *)at;
    h->type = type;
    h->reserved = 0;
    h->payload_len = payload_len;
    h->check = mmlog_check(offset, total, type, payload_len);
    __atomic_store_n(&h->len, -(int32_t)total, __ATOMIC_RELEASE);
    return h;
}

/* Make the header at `at` (in progress, or zeros) committed padding of
 * `total` bytes: length 0, the fields, then the length. */
static void pad_in_place(char *at, uint64_t offset, uint32_t total)
{
    struct mmlog_hdr *h = (struct mmlog_hdr *)(void *)at;
    __atomic_store_n(&h->len, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* 0 is seen before any field changes */
    h->type = MMLOG_TYPE_PAD;
    h->reserved = 0;
    h->payload_len = 0;
    h->check = mmlog_check(offset, total, MMLOG_TYPE_PAD, 0);
    __atomic_store_n(&h->len, (int32_t)total, __ATOMIC_RELEASE);
}

/* The handle's claim is over (published or padded). */
static void end_claim(struct kl_mmlog *log)
{
    __atomic_store_n(&log->slot->state, MMLOG_SLOT_IDLE, __ATOMIC_RELEASE);
    if (KL_UNLIKELY(__atomic_load_n(&log->meta->waiters, __ATOMIC_RELAXED) != 0))
        mmlog_wake_followers(log);
}

static void publish(struct kl_mmlog *log, struct mmlog_hdr *h, uint32_t total)
{
    __atomic_store_n(&h->len, (int32_t)total, __ATOMIC_RELEASE);
    end_claim(log);
}

static int check_writable(struct kl_mmlog *log, uint16_t type, size_t len)
{
    if (log->readonly)
        return -EBADF;
    if (type >= KL_MMLOG_TYPE_RESERVED)
        return -EINVAL;
    if (len > KL_MMLOG_MAX_PAYLOAD)
        return -EMSGSIZE;
    KL_ASSERT(!log->claim_open, "a handle has one claim open at a time");
    return 0;
}

/* Reserve room for a record of `len` payload bytes and write its header, in
 * progress. Returns the header and sets *offset and *total, or returns NULL
 * with *err set (a claim already made is abandoned, for recovery to pad). */
static struct mmlog_hdr *start_record(struct kl_mmlog *log, uint16_t type, size_t len,
                                      uint64_t *offset, uint32_t *total, int *err)
{
    uint64_t size = mmlog_align(MMLOG_HDR_SIZE + len);
    int64_t at_offset = reserve(log, size);
    if (at_offset < 0) {
        *err = (int)at_offset;
        return NULL;
    }
    char *at = mmlog_window_at(log, log->windows, log->window_count, (uint64_t)at_offset, true);
    if (!at) {
        *err = -errno;
        __atomic_store_n(&log->slot->state, MMLOG_SLOT_IDLE, __ATOMIC_RELEASE);
        return NULL;
    }
    *offset = (uint64_t)at_offset;
    *total = (uint32_t)size;
    return begin_record(at, *offset, *total, type, (uint32_t)len);
}

int kl_mmlog_claim(struct kl_mmlog *log, uint16_t type, size_t len, struct kl_mmlog_claim *claim)
{
    int err = check_writable(log, type, len);
    if (err)
        return err;
    if (mmlog_align(MMLOG_HDR_SIZE + len) > log->chunk_size)
        return -EMSGSIZE;
    uint64_t offset;
    uint32_t total;
    struct mmlog_hdr *h = start_record(log, type, len, &offset, &total, &err);
    if (!h)
        return err;
    claim->data = (char *)h + MMLOG_HDR_SIZE;
    claim->len = len;
    claim->offset = offset;
    claim->window = 0;
    log->claim_open = true;
    return 0;
}

void kl_mmlog_commit(struct kl_mmlog *log, struct kl_mmlog_claim *claim)
{
    KL_ASSERT(log->claim_open, "commit without a claim");
    struct mmlog_hdr *h = (struct mmlog_hdr *)(void *)((char *)claim->data - MMLOG_HDR_SIZE);
    KL_ASSERT(h->len < 0 && log->slot->claim_offset == claim->offset,
              "claim at %llu is not in progress", (unsigned long long)claim->offset);
    log->claim_open = false;
    publish(log, h, (uint32_t)-h->len);
}

void kl_mmlog_abort(struct kl_mmlog *log, struct kl_mmlog_claim *claim)
{
    KL_ASSERT(log->claim_open, "abort without a claim");
    struct mmlog_hdr *h = (struct mmlog_hdr *)(void *)((char *)claim->data - MMLOG_HDR_SIZE);
    uint32_t total = (uint32_t)-h->len;
    log->claim_open = false;
    pad_in_place((char *)h, claim->offset, total);
    end_claim(log);
}

int mmlog_write_padding(struct kl_mmlog *log, uint64_t offset, uint64_t len)
{
    struct mmlog_window w = {UINT64_MAX, NULL};
    int err = 0;
    while (len > 0) {
        uint64_t n = len > MMLOG_MAX_RECORD ? MMLOG_MAX_RECORD : len;
        if (len - n != 0 && len - n < MMLOG_HDR_SIZE)
            n -= MMLOG_HDR_SIZE; /* leave room for the last piece's header */
        char *at = mmlog_window_at(log, &w, 1, offset, true);
        if (!at) {
            err = -errno;
            break;
        }
        pad_in_place(at, offset, (uint32_t)n);
        offset += n;
        len -= n;
    }
    mmlog_windows_release(log, &w, 1);
    return err;
}

/* Copy `iov` into the log at `dst` (a mapping) or, for large records, with
 * pwritev at file offset `file_offset`. */
static int copy_payload(struct kl_mmlog *log, char *dst, uint64_t file_offset,
                        const struct iovec *iov, int iovcnt, size_t len)
{
    if (dst) {
        for (int i = 0; i < iovcnt; i++) {
            memcpy(dst, iov[i].iov_base, iov[i].iov_len);
            dst += iov[i].iov_len;
        }
        return 0;
    }
    size_t done = 0;
    while (done < len) {
        /* pwritev has no "skip": rebuild the vector past what was written */
        struct iovec rest[64];
        int n = 0;
        size_t skip = done;
        for (int i = 0; i < iovcnt && n < 64; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            rest[n].iov_base = (char *)iov[i].iov_base + skip;
            rest[n].iov_len = iov[i].iov_len - skip;
            skip = 0;
            n++;
        }
        ssize_t w = pwritev(log->data_fd, rest, n, (off_t)(file_offset + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        done += (size_t)w;
    }
    return 0;
}

int kl_mmlog_appendv(struct kl_mmlog *log, uint16_t type, const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    int err = check_writable(log, type, len);
    if (err)
        return err;
    uint64_t offset;
    uint32_t total;
    struct mmlog_hdr *h = start_record(log, type, len, &offset, &total, &err);
    if (!h)
        return err;
    bool mapped = total <= log->chunk_size; /* else the payload goes by pwrite */
    err = copy_payload(log, mapped ? (char *)h + MMLOG_HDR_SIZE : NULL, offset + MMLOG_HDR_SIZE,
                       iov, iovcnt, len);
    if (err) { /* the claim becomes padding, now */
        pad_in_place((char *)h, offset, total);
        end_claim(log);
    } else {
        publish(log, h, total);
    }
    return err;
}

int kl_mmlog_append(struct kl_mmlog *log, uint16_t type, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return kl_mmlog_appendv(log, type, &iov, 1);
}
