/* mmlog_internal.h: the handle and the functions the mmlog modules share
 * (meta.c: open, slots, lock; window.c: chunk mappings; append.c: writers;
 * reader.c: readers; recover.c: recovery, check, trim). */
#ifndef KEEL_MMLOG_INTERNAL_H
#define KEEL_MMLOG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/mmlog.h"
#include "mmlog_format.h"

/* Internal to libkeel: never exported from libkeel.so, whatever the name. */
#pragma GCC visibility push(hidden)

/* A mapping of two consecutive chunks [chunk, chunk + 2), so that any record
 * no larger than a chunk that starts in `chunk` lies inside it. */
struct mmlog_window {
    uint64_t chunk; /* UINT64_MAX when nothing is mapped */
    char *base;
};

struct kl_mmlog {
    int data_fd;
    int meta_fd;
    struct mmlog_meta *meta;
    struct mmlog_slot *slot; /* NULL for read-only handles */
    uint64_t chunk_size;
    unsigned window_count;
    struct mmlog_window *windows; /* the writer's ring, indexed by chunk % count */
    bool readonly;
    bool claim_open;
    mmlog_owner self;
    char *path;
};

/* This process's identity (pid and start time). */
mmlog_owner mmlog_self(void);

/* True when the process `owner` names is still running. */
bool mmlog_owner_alive(mmlog_owner owner);

/* Take the meta lock, displacing a dead holder; counts takeovers. */
void mmlog_lock(struct kl_mmlog *log);

/* Release the meta lock; -ENOLCK (and the lock left alone) when another
 * process took it over meanwhile, believing this one dead. */
int mmlog_unlock(struct kl_mmlog *log);

/* RLIMIT_FSIZE now (UINT64_MAX when unlimited): files are never grown past
 * it, so the process gets -EFBIG rather than SIGXFSZ. */
uint64_t mmlog_fsize_limit(void);

/* Extend the data file from `from` to `to` bytes with fallocate (zeros
 * written where the file system has no fallocate), so its blocks are really
 * allocated: a full disk is an error here, never a SIGBUS later. The pages
 * are created by the writers' own first stores, in parallel, not by the
 * grower (see docs/BENCHMARKS.md, "fallocate against writing zeros"). */
int mmlog_grow_file(int fd, uint64_t from, uint64_t to);
/* (-EFBIG, without a system call that could raise SIGXFSZ, past the limit) */

/* Make the data file at least `end` bytes long (whole chunks, one ahead). */
int mmlog_ensure_size(struct kl_mmlog *log, uint64_t end);

/* Pointer to log offset `offset` through a window of `windows` (mapping it
 * if needed); `len` bytes from there are inside the mapping. NULL with
 * errno on mapping failure. */
char *mmlog_window_at(struct kl_mmlog *log, struct mmlog_window *windows, unsigned count,
                      uint64_t offset, bool write);

/* Unmap every window of a ring. */
void mmlog_windows_release(struct kl_mmlog *log, struct mmlog_window *windows, unsigned count);

/* Write a padding record of `len` bytes at `offset` (the caller owns it),
 * through a mapping of its own: the handle's windows, which an open claim
 * of the handle may point into, are left as they are. */
int mmlog_write_padding(struct kl_mmlog *log, uint64_t offset, uint64_t len);

/* Recovery without the full scan: dead slots and their known claims. Runs
 * under the lock. */
void mmlog_recover_slots(struct kl_mmlog *log, struct kl_mmlog_stats *stats);

/* Wake followers blocked in kl_mmlog_wait (if any). */
void mmlog_wake_followers(struct kl_mmlog *log);

#pragma GCC visibility pop

#endif /* KEEL_MMLOG_INTERNAL_H */
