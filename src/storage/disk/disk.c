/* storage/disk/disk.c: the disk engine object: open, close, the clock,
 * flush_all, statistics and the background thread.
 *
 * The background thread does what no request should wait for: the batch
 * sync every --sync-ms, index checkpoints every checkpoint_s seconds, and
 * compaction of sealed files (compact.c). It uses plain system calls; the
 * workers' fibers never wait for it.
 */
#define _GNU_SOURCE
#include "disk_internal.h"

#include "keel/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

uint32_t disk_clock(struct disk_engine *de)
{
    uint32_t now = atomic_load_explicit(&de->now, memory_order_acquire);
    uint32_t fa = atomic_load_explicit(&de->flush_at, memory_order_acquire);
    if (KL_UNLIKELY(fa != 0 && now >= fa))
        disk_do_flush(de, fa);
    return now;
}

void disk_dead(struct disk_engine *de, struct ix_entry e)
{
    struct dfile *d = atomic_load(&de->files.tab[ix_file(e)]);
    if (d)
        atomic_fetch_add(&d->dead, ix_len(e));
    atomic_fetch_sub(&de->live_bytes, ix_len(e));
}

struct flush_at {
    struct disk_engine *de;
    uint32_t file;
    uint64_t off;
};

/* Entries written before the flush record go (later ones are newer stores). */
static bool flush_drop(void *arg, struct ix_entry e)
{
    struct flush_at *fa = arg;
    if (!ix_before(e, fa->file, fa->off))
        return false;
    if (!(e.w1 & IX_PENDING))
        disk_dead(fa->de, e);
    return true;
}

/* Append a flush record whose exptime is `due` (0: a flush now; else a
 * delayed flush_all, which recovery schedules again); its file (pinned) and
 * place, or NULL when the device has no room. */
static struct dfile *append_flush(struct disk_engine *de, uint32_t due, uint64_t *off)
{
    char rec[REC_HDR + 8];
    rec_start(rec, REC_FLUSH, "", 0, 0, 0, due, 0, 0);
    uint32_t body = rec_crc_body(rec), size = rec_size(0, 0);
    struct dfile *d;
    uint64_t seq;
    for (;;) {
        pthread_spin_lock(&de->files.alloc);
        d = files_claim(&de->files, size, off, &seq);
        pthread_spin_unlock(&de->files.alloc);
        if (d || files_room(&de->files, size) != 0)
            break;
    }
    if (d == NULL) {
        atomic_fetch_add(&de->st_no_space, 1);
        return NULL;
    }
    rec_seal(rec, seq, body);
    if (due == 0)
        atomic_store(&de->flush_seq, seq);
    if (files_write(d, rec, size, *off) != 0)
        atomic_fetch_add(&de->st_io_errors, 1);
    atomic_fetch_add(&d->dead, size);
    return d;
}

void disk_do_flush(struct disk_engine *de, uint32_t due)
{
    /* a flush record, so that recovery forgets what came before it; the
     * pending delayed flush changes under ckpt_lock only, so a checkpoint
     * never records it gone before this record is placed */
    pthread_mutex_lock(&de->ckpt_lock);
    uint32_t pending = atomic_load(&de->flush_at);
    if (due != 0 && pending != due) { /* run or replaced meanwhile */
        pthread_mutex_unlock(&de->ckpt_lock);
        return;
    }
    atomic_store(&de->flush_at, 0);
    struct flush_at fa = {.de = de, .file = IX_FILES, .off = 0};
    struct dfile *d = append_flush(de, 0, &fa.off);
    if (d) {
        fa.file = d->id;
        files_unpin(d);
    } else { /* flushed in memory only */
        fa.off = 0;
        pthread_spin_lock(&de->files.alloc);
        atomic_store(&de->flush_seq, de->files.seq);
        pthread_spin_unlock(&de->files.alloc);
    }
    ix_sweep(&de->ix, flush_drop, &fa);
    pthread_mutex_unlock(&de->ckpt_lock);
}

static void disk_tick(struct kl_engine *e, uint32_t now)
{
    struct disk_engine *de = disk_of(e);
    uint32_t old = atomic_load(&de->now);
    while (now > old && !atomic_compare_exchange_weak(&de->now, &old, now))
        ;
    disk_clock(de);
}

static void disk_flush(struct kl_engine *e, uint32_t delay)
{
    struct disk_engine *de = disk_of(e);
    if (delay == 0) {
        disk_do_flush(de, 0);
    } else { /* on file too, so that a restart before it is due keeps it */
        uint32_t due = atomic_load(&de->now) + delay;
        pthread_mutex_lock(&de->ckpt_lock);
        atomic_store(&de->flush_at, due);
        uint64_t off;
        struct dfile *d = append_flush(de, due, &off);
        if (d)
            files_unpin(d);
        pthread_mutex_unlock(&de->ckpt_lock);
    }
}

static void disk_stats(struct kl_engine *e, struct kl_engine_stats *s)
{
    struct disk_engine *de = disk_of(e);
    memset(s, 0, sizeof *s);
    ix_usage(&de->ix, &s->hash_bytes, &s->items);
    s->bytes = atomic_load(&de->live_bytes);
    for (uint32_t i = 1; i < IX_FILES; i++) {
        struct dfile *d = files_pin(&de->files, i);
        if (d == NULL)
            continue;
        s->disk_files++;
        s->disk_data_bytes += atomic_load(&d->end);
        s->disk_dead_bytes += atomic_load(&d->dead);
        files_unpin(d);
    }
    s->limit_bytes = s->disk_data_bytes;
    s->hash_buckets = s->hash_bytes / 64;
    s->expirations = atomic_load(&de->st_expirations);
    s->disk_corrupt = atomic_load(&de->st_corrupt);
    s->disk_io_errors = atomic_load(&de->st_io_errors);
    s->disk_no_space = atomic_load(&de->st_no_space);
    s->disk_compactions = atomic_load(&de->st_compactions);
    s->disk_group_syncs = atomic_load(&de->files.group_syncs);
}

static void *bg_main(void *arg)
{
    struct disk_engine *de = arg;
    uint32_t period_ms = de->sync == KL_SYNC_BATCH ? de->sync_ms : 1000;
    uint64_t last_slow = 0, last_ckpt = 0, ms = 0;
    pthread_mutex_lock(&de->bg_lock);
    while (!de->bg_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(period_ms % 1000) * 1000000L;
        ts.tv_sec += period_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&de->bg_cond, &de->bg_lock, &ts);
        if (de->bg_stop)
            break;
        pthread_mutex_unlock(&de->bg_lock);
        ms += period_ms;
        if (de->sync == KL_SYNC_BATCH && files_sync_now(&de->files) != 0)
            atomic_fetch_add(&de->st_io_errors, 1);
        if (ms - last_slow >= 1000) {
            last_slow = ms;
            if (de->compact_below < 1.0)
                disk_compact(de, de->compact_below);
            if (de->checkpoint_s && ms - last_ckpt >= (uint64_t)de->checkpoint_s * 1000) {
                last_ckpt = ms;
                disk_checkpoint(de);
            }
        }
        pthread_mutex_lock(&de->bg_lock);
    }
    pthread_mutex_unlock(&de->bg_lock);
    return NULL;
}

static void disk_free(struct disk_engine *de)
{
    files_close(&de->files);
    ix_free(&de->ix);
    bufpool_destroy(&de->bufs);
    pthread_mutex_destroy(&de->bg_lock);
    pthread_cond_destroy(&de->bg_cond);
    pthread_mutex_destroy(&de->compact_lock);
    pthread_mutex_destroy(&de->ckpt_lock);
    free(de);
}

static void disk_close(struct kl_engine *e)
{
    struct disk_engine *de = disk_of(e);
    if (de->bg_running) {
        pthread_mutex_lock(&de->bg_lock);
        de->bg_stop = true;
        pthread_cond_signal(&de->bg_cond);
        pthread_mutex_unlock(&de->bg_lock);
        pthread_join(de->bg, NULL);
    }
    if (de->sync != KL_SYNC_NONE)
        files_sync_now(&de->files);
    disk_checkpoint(de);
    disk_free(de);
}

static const struct kl_engine_ops disk_ops = {
    .close = disk_close,
    .tick = disk_tick,
    .lookup = disk_lookup_op,
    .lookup_many = disk_lookup_many_op,
    .dump = disk_dump_op,
    .release = disk_release_op,
    .reserve = disk_reserve_op,
    .commit = disk_commit_op,
    .abort = disk_abort_op,
    .remove = disk_delete_op,
    .arith = disk_arith_op,
    .touch = disk_touch_op,
    .flush = disk_flush,
    .stats = disk_stats,
};

int kl_disk_open(const struct kl_engine_opts *opts, struct kl_engine **out)
{
    if (opts->data_dir == NULL || opts->data_dir[0] == '\0' ||
        (unsigned)opts->sync > KL_SYNC_NONE || opts->compact_pct > 100)
        return -EINVAL;
    uint64_t file_bytes = opts->file_bytes ? opts->file_bytes : (uint64_t)1 << 30;
    uint64_t item_max = opts->item_max ? opts->item_max + REC_HDR + KL_KEY_MAX : (1u << 20) + 512;
    if (file_bytes > ((uint64_t)1 << 35) || item_max > REC_MAX || item_max > file_bytes)
        return -EINVAL;
    struct disk_engine *de = calloc(1, sizeof *de);
    if (de == NULL)
        return -ENOMEM;
    de->base.ops = &disk_ops;
    de->sync = opts->sync;
    de->sync_ms = opts->sync_ms ? opts->sync_ms : 10;
    de->item_max = (uint32_t)item_max;
    de->compact_below = (opts->compact_pct ? opts->compact_pct : 50) / 100.0;
    de->checkpoint_s = opts->checkpoint_s ? opts->checkpoint_s : 60;
    atomic_init(&de->now, opts->now);
    atomic_init(&de->cas_next, 1);
    pthread_mutex_init(&de->bg_lock, NULL);
    pthread_cond_init(&de->bg_cond, NULL);
    pthread_mutex_init(&de->compact_lock, NULL);
    pthread_mutex_init(&de->ckpt_lock, NULL);
    int r = bufpool_init(&de->bufs, de->item_max + 8192);
    if (r == 0)
        r = files_open(&de->files, opts->data_dir, opts->direct, file_bytes, de->item_max);
    if (r == 0)
        r = disk_recover(de);
    if (r == 0)
        disk_clock(de); /* a delayed flush_all that fell due while down runs now */
    if (r == 0 && pthread_create(&de->bg, NULL, bg_main, de) != 0)
        r = -EAGAIN;
    if (r != 0) {
        disk_free(de);
        return r;
    }
    de->bg_running = true;
    *out = &de->base;
    return 0;
}
