/* mmlog open/close, process identities, handle slots and the meta lock.
 *
 * Creation race: every opener makes sure PATH.meta is at least one meta
 * long (fallocate never shrinks), maps it, and tries to become the
 * initialiser with one compare-and-swap on init_owner (0 -> self). The
 * winner creates the data file, fills the meta and publishes state READY
 * with release ordering; the others wait. If the initialiser dies first,
 * a waiter finds it dead and takes init_owner over with another CAS, and
 * initialises from scratch: nothing can have been written to a log that
 * never became READY.
 *
 * The lock (growth, recovery, trim) is a CAS on lock_owner holding the
 * holder's identity; a waiter that finds the holder dead takes it over.
 * Everything done under the lock is idempotent (growth to a size, padding
 * an abandoned claim), so taking over half-done work is safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keel/assert.h"
#include "mmlog_internal.h"

#define DEFAULT_CHUNK_SIZE (4u << 20)
#define DEFAULT_WINDOWS    4u
#define INIT_WAIT_LIMIT_MS 10000

/* Start time (clock ticks since boot) of process `pid`; 0 when unknown. */
static uint64_t process_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields resume after
     * the last ')'. p then points at the space before field 3 (state); each
     * step moves to the space before the next field, up to starttime (22). */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static mmlog_owner owner_of(pid_t pid, uint64_t start_time)
{
    return ((start_time & 0xffffffffu) << 32) | (uint32_t)pid;
}

mmlog_owner mmlog_self(void)
{
    static pid_t cached_pid;
    static mmlog_owner cached;
    pid_t pid = getpid();
    if (pid != cached_pid) { /* first call, or a forked child */
        cached = owner_of(pid, process_start_time(pid));
        cached_pid = pid;
    }
    return cached;
}

bool mmlog_owner_alive(mmlog_owner owner)
{
    pid_t pid = (pid_t)(uint32_t)owner;
    if (owner == 0 || pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno != EPERM)
        return false;
    uint64_t start = process_start_time(pid);
    if (start == 0) /* no /proc: trust kill() */
        return kill(pid, 0) == 0 || errno == EPERM;
    return owner_of(pid, start) == owner;
}

void mmlog_lock(struct kl_mmlog *log)
{
    struct mmlog_meta *m = log->meta;
    for (unsigned spins = 0;; spins++) {
        mmlog_owner expected = 0;
        if (__atomic_compare_exchange_n(&m->lock_owner, &expected, log->self, false,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        /* Held. Every so often, ask whether the holder still lives. */
        if (spins % 32 == 31 && !mmlog_owner_alive(expected)) {
            if (__atomic_compare_exchange_n(&m->lock_owner, &expected, log->self, false,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                __atomic_fetch_add(&m->lock_takeovers, 1, __ATOMIC_RELAXED);
                return;
            }
        }
        if (spins < 64) {
            __builtin_ia32_pause();
        } else {
            struct timespec ts = {0, spins < 256 ? 1000 : 100000};
            nanosleep(&ts, NULL);
        }
    }
}

int mmlog_unlock(struct kl_mmlog *log)
{
    /* Another process may have taken the lock over, finding this one dead
     * (a stale /proc, a stopped process): that is outside this process's
     * control, so it is an error, and the new holder keeps its lock. */
    mmlog_owner held = log->self;
    if (__atomic_compare_exchange_n(&log->meta->lock_owner, &held, 0, false, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
        return 0;
    return -ENOLCK;
}

/* Create the data file and fill the meta; runs in the winner of init_owner. */
static int initialise(struct kl_mmlog *log, const struct kl_mmlog_options *opt)
{
    struct mmlog_meta *m = log->meta;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t chunk = opt->chunk_size ? opt->chunk_size : DEFAULT_CHUNK_SIZE;
    if (chunk % (uint64_t)page != 0 || chunk < 4 * (uint64_t)page || chunk > (1ull << 34))
        return -EINVAL;
    int fd = open(log->path, O_RDWR | O_CREAT | O_CLOEXEC, opt->mode ? opt->mode : 0644);
    if (fd < 0)
        return -errno;
    /* A previous initialiser may have died half-way: start over. */
    int err = ftruncate(fd, 0) != 0 ? -errno : mmlog_grow_file(fd, 0, chunk);
    if (err != 0) {
        close(fd);
        return err;
    }
    close(fd);
    memset(&m->slots, 0, sizeof m->slots);
    m->magic = MMLOG_MAGIC;
    m->version = MMLOG_VERSION;
    m->page_size = (uint32_t)page;
    m->chunk_size = chunk;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->created_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    m->lock_owner = 0;
    m->flags = 0;
    m->file_size = chunk;
    m->recovered_upto = 0;
    m->grow_count = 0;
    m->lock_takeovers = 0;
    m->recovered_claims = 0;
    m->cursor = 0;
    m->commit_seq = 0;
    m->waiters = 0;
    __atomic_store_n(&m->state, MMLOG_STATE_READY, __ATOMIC_RELEASE);
    return 0;
}

/* Wait until the log is READY, initialising it if we win (or inherit) the
 * right to. */
static int wait_ready(struct kl_mmlog *log, const struct kl_mmlog_options *opt)
{
    struct mmlog_meta *m = log->meta;
    for (int waited_ms = 0;; waited_ms++) {
        uint32_t state = __atomic_load_n(&m->state, __ATOMIC_ACQUIRE);
        if (state == MMLOG_STATE_READY)
            return 0;
        if (state != MMLOG_STATE_EMPTY && state != MMLOG_STATE_INITIALIZING)
            return -EPROTO; /* not an mmlog: never initialise over it */
        if (log->readonly) {
            if (waited_ms >= INIT_WAIT_LIMIT_MS)
                return -EAGAIN;
        } else {
            mmlog_owner owner = __atomic_load_n(&m->init_owner, __ATOMIC_ACQUIRE);
            bool mine = false;
            if (owner == 0 || (waited_ms % 10 == 9 && !mmlog_owner_alive(owner)))
                mine = __atomic_compare_exchange_n(&m->init_owner, &owner, log->self, false,
                                                   __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
            if (mine) {
                __atomic_store_n(&m->state, MMLOG_STATE_INITIALIZING, __ATOMIC_RELEASE);
                int err = initialise(log, opt);
                if (err != 0) /* let another opener try */
                    __atomic_store_n(&m->init_owner, 0, __ATOMIC_RELEASE);
                return err;
            }
            if (waited_ms >= INIT_WAIT_LIMIT_MS)
                return -EAGAIN;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static int take_slot(struct kl_mmlog *log)
{
    struct mmlog_meta *m = log->meta;
    for (int attempt = 0; attempt < 2; attempt++) {
        for (unsigned i = 0; i < MMLOG_MAX_SLOTS; i++) {
            struct mmlog_slot *s = &m->slots[i];
            mmlog_owner expected = 0;
            if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == 0 &&
                __atomic_compare_exchange_n(&s->owner, &expected, log->self, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
                s->tid = gettid();
                s->claim_offset = 0;
                s->claim_len = 0;
                __atomic_store_n(&s->state, MMLOG_SLOT_IDLE, __ATOMIC_RELEASE);
                log->slot = s;
                return 0;
            }
        }
        /* Full: free the slots of dead processes and look again. */
        mmlog_lock(log);
        mmlog_recover_slots(log, NULL);
        mmlog_unlock(log);
    }
    return -EUSERS;
}

int kl_mmlog_open(const char *path, const struct kl_mmlog_options *options, struct kl_mmlog **out)
{
    struct kl_mmlog_options opt = options ? *options : (struct kl_mmlog_options){0};
    struct kl_mmlog *log = calloc(1, sizeof *log);
    if (!log)
        return -ENOMEM;
    log->data_fd = -1;
    log->meta_fd = -1;
    log->readonly = (opt.flags & KL_MMLOG_READONLY) != 0;
    log->self = mmlog_self();
    log->window_count = opt.window_chunks ? opt.window_chunks : DEFAULT_WINDOWS;
    log->path = strdup(path);
    char *meta_path = malloc(strlen(path) + 6);
    int err = -ENOMEM;
    if (!log->path || !meta_path)
        goto fail;
    sprintf(meta_path, "%s.meta", path);

    int flags = (log->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if ((opt.flags & KL_MMLOG_CREATE) && !log->readonly)
        flags |= O_CREAT;
    log->meta_fd = open(meta_path, flags, opt.mode ? opt.mode : 0644);
    if (log->meta_fd < 0) {
        err = -errno;
        goto fail;
    }
    struct stat st;
    if (fstat(log->meta_fd, &st) != 0) {
        err = -errno;
        goto fail;
    }
    if ((uint64_t)st.st_size < sizeof(struct mmlog_meta)) {
        if (log->readonly) {
            err = -EAGAIN; /* being created; try again */
            goto fail;
        }
        if (sizeof(struct mmlog_meta) > mmlog_fsize_limit()) {
            err = -EFBIG; /* growing it would raise SIGXFSZ */
            goto fail;
        }
        if (fallocate(log->meta_fd, 0, 0, sizeof(struct mmlog_meta)) != 0) {
            /* Without fallocate, extend it with ftruncate: it never shrinks
             * the file here, as nobody makes it longer than the meta block;
             * the block is then sparse, and a full disk shows when the
             * creator first writes it (SIGBUS), as it can on such a file
             * system anyway. */
            if (errno != EOPNOTSUPP || ftruncate(log->meta_fd, sizeof(struct mmlog_meta)) != 0) {
                err = -errno;
                goto fail;
            }
        }
    }
    int prot = log->readonly ? PROT_READ : PROT_READ | PROT_WRITE;
    log->meta = mmap(NULL, sizeof(struct mmlog_meta), prot, MAP_SHARED, log->meta_fd, 0);
    if (log->meta == MAP_FAILED) {
        log->meta = NULL;
        err = -errno;
        goto fail;
    }
    if ((err = wait_ready(log, &opt)) != 0)
        goto fail;
    if (log->meta->magic != MMLOG_MAGIC || log->meta->version != MMLOG_VERSION) {
        err = -EPROTO;
        goto fail;
    }
    log->chunk_size = log->meta->chunk_size;
    log->data_fd = open(path, (log->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (log->data_fd < 0) {
        err = -errno;
        goto fail;
    }
    log->windows = calloc(log->window_count, sizeof *log->windows);
    if (!log->windows) {
        err = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < log->window_count; i++)
        log->windows[i].chunk = UINT64_MAX;
    if (!log->readonly) {
        if ((err = take_slot(log)) != 0)
            goto fail;
        if (!(opt.flags & KL_MMLOG_NO_RECOVER)) {
            mmlog_lock(log);
            mmlog_recover_slots(log, NULL);
            mmlog_unlock(log);
        }
    }
    free(meta_path);
    *out = log;
    return 0;
fail:
    free(meta_path);
    kl_mmlog_close(log);
    return err;
}

void kl_mmlog_close(struct kl_mmlog *log)
{
    if (!log)
        return;
    KL_ASSERT(!log->claim_open, "mmlog closed with a claim open");
    if (log->windows) {
        mmlog_windows_release(log, log->windows, log->window_count);
        free(log->windows);
    }
    if (log->slot) {
        __atomic_store_n(&log->slot->state, MMLOG_SLOT_FREE, __ATOMIC_RELAXED);
        __atomic_store_n(&log->slot->owner, 0, __ATOMIC_RELEASE);
    }
    if (log->meta)
        munmap(log->meta, sizeof(struct mmlog_meta));
    if (log->meta_fd >= 0)
        close(log->meta_fd);
    if (log->data_fd >= 0)
        close(log->data_fd);
    free(log->path);
    free(log);
}

int kl_mmlog_info(struct kl_mmlog *log, struct kl_mmlog_info *info)
{
    const struct mmlog_meta *m = log->meta;
    memset(info, 0, sizeof *info);
    info->version = m->version;
    info->page_size = m->page_size;
    info->chunk_size = m->chunk_size;
    info->file_size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
    info->cursor = __atomic_load_n(&m->cursor, __ATOMIC_ACQUIRE);
    info->recovered_upto = m->recovered_upto;
    info->created_ns = m->created_ns;
    info->grow_count = m->grow_count;
    info->lock_takeovers = m->lock_takeovers;
    info->recovered_claims = m->recovered_claims;
    info->lock_owner = (int32_t)(uint32_t)__atomic_load_n(&m->lock_owner, __ATOMIC_RELAXED);
    info->ready = __atomic_load_n(&m->state, __ATOMIC_ACQUIRE) == MMLOG_STATE_READY;
    uint32_t flags = __atomic_load_n(&m->flags, __ATOMIC_RELAXED);
    info->panicked = flags & MMLOG_FLAG_PANICKED;
    info->need_scan = flags & MMLOG_FLAG_NEED_SCAN;
    for (unsigned i = 0; i < MMLOG_MAX_SLOTS; i++) {
        if (__atomic_load_n(&m->slots[i].owner, __ATOMIC_RELAXED) == 0)
            continue;
        info->open_handles++;
        if (__atomic_load_n(&m->slots[i].state, __ATOMIC_RELAXED) >= MMLOG_SLOT_CLAIMING)
            info->writing++;
    }
    return 0;
}

uint64_t kl_mmlog_end(const struct kl_mmlog *log)
{
    return __atomic_load_n(&log->meta->cursor, __ATOMIC_ACQUIRE);
}
