/* keel/mmlog.h: a crash-safe, multi-process, append-only shared log.
 *
 * Many processes on one host append to one log concurrently, at memory
 * speed: a writer claims space with one atomic fetch-and-add on a cursor in
 * a shared metadata file, then copies its record into a shared mapping of
 * the data file. A record becomes visible to readers only once complete.
 * Nothing is lost or torn when a writer dies: a claim abandoned by a dead
 * process (or by a writer that hit a full disk) is turned into padding by
 * recovery, which runs on open, on demand, and when a reader finds itself
 * stuck behind a dead claim. The lock that guards growth records its
 * holder and is taken over when the holder is dead. The data file grows by
 * whole chunks with fallocate (a full disk is an error returned to the
 * writer, never SIGBUS) and never shrinks while other handles are open.
 *
 * The files are PATH (data) and PATH.meta (metadata). A handle is used by one
 * thread at a time; open one handle per writing thread (or process). No
 * fiber runtime is needed. Functions return 0 (or a count) or a negative
 * errno.
 *
 * A file-size limit (RLIMIT_FSIZE, `ulimit -f`) is read before every growth
 * of either file, and a growth past it fails with -EFBIG instead of raising
 * SIGXFSZ. Other code in the process can still raise SIGXFSZ: programs
 * should ignore it (signal(SIGXFSZ, SIG_IGN)), as keel's programs do, and
 * take the -EFBIG.
 */
#ifndef KEEL_MMLOG_H
#define KEEL_MMLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kl_mmlog;
struct kl_mmlog_reader;

/* Open flags. */
#define KL_MMLOG_CREATE     1u /* create the log if it does not exist */
#define KL_MMLOG_READONLY   2u /* read only: no appends, no recovery, no trim */
#define KL_MMLOG_NO_RECOVER 4u /* do not run recovery on open */

struct kl_mmlog_options {
    unsigned flags;         /* KL_MMLOG_* */
    uint64_t chunk_size;    /* growth and mapping unit (new logs); default 4 MiB */
    unsigned window_chunks; /* chunks a handle keeps mapped; default 4 */
    unsigned mode;          /* file mode for new files; default 0644 */
};

/* Largest payload one record can carry. */
#define KL_MMLOG_MAX_PAYLOAD   ((UINT32_C(1) << 30) - 16)
/* Record types at and above this value are reserved by mmlog. */
#define KL_MMLOG_TYPE_RESERVED 0xFF00u

/* Open (and with KL_MMLOG_CREATE, create) the log at `path`; NULL options for
 * the defaults. Races with other creators are safe: one initialises. -EFBIG
 * when a file-size limit leaves no room for the files. */
int kl_mmlog_open(const char *path, const struct kl_mmlog_options *options, struct kl_mmlog **out);

/* Close a handle, releasing its mappings and its slot. */
void kl_mmlog_close(struct kl_mmlog *log);

/* Append one record (a copy of `len` bytes). Returns 0 or, e.g., -ENOSPC,
 * -EFBIG (file size limit), -EMSGSIZE (too large), -EINVAL (reserved type). */
int kl_mmlog_append(struct kl_mmlog *log, uint16_t type, const void *data, size_t len);

/* Append the concatenation of `iovcnt` buffers as one record. */
struct iovec;
int kl_mmlog_appendv(struct kl_mmlog *log, uint16_t type, const struct iovec *iov, int iovcnt);

/* Space claimed for in-place writing (zero copy). */
struct kl_mmlog_claim {
    void *data; /* write exactly `len` bytes here, then commit */
    size_t len;
    uint64_t offset; /* of the record in the log */
    unsigned window; /* internal */
};

/* Claim space for a record of `len` bytes (at most one chunk less the header).
 * Claims of one handle are committed or aborted in any order. */
int kl_mmlog_claim(struct kl_mmlog *log, uint16_t type, size_t len, struct kl_mmlog_claim *claim);

/* Publish a claimed record. */
void kl_mmlog_commit(struct kl_mmlog *log, struct kl_mmlog_claim *claim);

/* Give a claim up: it becomes padding. */
void kl_mmlog_abort(struct kl_mmlog *log, struct kl_mmlog_claim *claim);

/* One committed record, as a reader returns it. */
struct kl_mmlog_record {
    uint64_t offset; /* of the record in the log */
    uint16_t type;
    uint32_t len;     /* payload bytes */
    const void *data; /* valid until the next call on the reader */
};

/* A reader of committed records from `offset` (0: the start; it must be a
 * record boundary, such as a record's offset or kl_mmlog_end()). */
int kl_mmlog_reader_open(struct kl_mmlog *log, uint64_t offset, struct kl_mmlog_reader **out);

/* Close a reader. */
void kl_mmlog_reader_close(struct kl_mmlog_reader *reader);

/* The next committed record, skipping padding: 1 with *rec filled, 0 when
 * there is none yet (the end, or a record still being written), or
 * -EBADMSG when the log is damaged at the reader's position. */
int kl_mmlog_next(struct kl_mmlog_reader *reader, struct kl_mmlog_record *rec);

/* Block until the log may have a new record for the reader or `timeout_ms`
 * passes (-1: forever), without spinning. 1 when there may be news, 0 on
 * timeout. A reader stuck behind a dead writer's claim runs recovery. */
int kl_mmlog_wait(struct kl_mmlog_reader *reader, int timeout_ms);

/* The reader's position: the offset of the next record it will look at. */
uint64_t kl_mmlog_reader_offset(const struct kl_mmlog_reader *reader);

/* The current end of the log (the cursor). */
uint64_t kl_mmlog_end(const struct kl_mmlog *log);

/* What check and recovery found. */
struct kl_mmlog_stats {
    uint64_t records;      /* committed records */
    uint64_t record_bytes; /* their payload bytes */
    uint64_t padding;      /* padding records */
    uint64_t padding_bytes;
    uint64_t unfinished;     /* claims not committed: being written, or abandoned */
    uint64_t abandoned;      /* of those, claims whose writer is gone */
    uint64_t damaged;        /* places where the log cannot be parsed */
    uint64_t end;            /* the cursor */
    uint64_t recovered;      /* claims turned into padding by this call */
    uint64_t locks_released; /* dead lock holders displaced by this call */
    uint64_t slots_released; /* slots of dead processes freed by this call */
};

/* Walk the whole log and count what is there; changes nothing. 0, or
 * -EBADMSG when damage was found (the counts are filled either way). */
int kl_mmlog_check(struct kl_mmlog *log, struct kl_mmlog_stats *stats);

/* Pad every abandoned claim, release a dead process's lock and slots. */
int kl_mmlog_recover(struct kl_mmlog *log, struct kl_mmlog_stats *stats);

/* Drop the preallocated tail past the cursor. Idempotent. -EBUSY while any
 * other handle has the log open (shrinking under it could SIGBUS it), or
 * while this handle has a claim open. */
int kl_mmlog_trim(struct kl_mmlog *log);

/* The metadata, for `keel-log stat`. */
struct kl_mmlog_info {
    uint32_t version;
    uint32_t page_size;
    uint64_t chunk_size;
    uint64_t file_size;
    uint64_t cursor;
    uint64_t recovered_upto;
    uint64_t created_ns; /* CLOCK_REALTIME */
    uint64_t grow_count;
    uint64_t lock_takeovers;
    uint64_t recovered_claims;
    int32_t lock_owner; /* tid, 0 when free */
    bool ready;
    bool panicked;
    bool need_scan;
    unsigned open_handles;
    unsigned writing; /* handles with a claim in flight */
};

/* Fill *info from the metadata. */
int kl_mmlog_info(struct kl_mmlog *log, struct kl_mmlog_info *info);

#endif /* KEEL_MMLOG_H */
