/* Direct writes of the disk engine (storage/disk/window.c): records packed
 * into shared 4 KiB blocks and written with O_DIRECT from several threads
 * must all land whole, also when a record is written while a write of its
 * block is in flight, and survive a reopen; recovery must take the zero
 * padding a direct write leaves past the last record. Each case runs in a
 * fresh directory on a file system that takes O_DIRECT (the case is
 * skipped where none does: tmpfs refuses it). */
#define _GNU_SOURCE
#include "storage/disk/disk_internal.h"
#include "storage/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk_kit.h"
#include "kt.h"

#define NTHREADS 4

static char dir[256];

static bool fresh_direct_dir(void)
{
    if (dk_direct_dir("keel-disk-direct", dir, sizeof dir))
        return true;
    kt_skip("no file system here takes O_DIRECT ($TMPDIR, /tmp, the build dir)");
    return false;
}

static struct kl_engine *open_direct(enum kl_sync_mode sync, uint64_t file_bytes)
{
    struct kl_engine_opts o = {.engine = "disk",
                               .data_dir = dir,
                               .direct = true,
                               .sync = sync,
                               .file_bytes = file_bytes,
                               .item_max = 4096,
                               .compact_pct = 100,
                               .now = 1000};
    struct kl_engine *e = NULL;
    int r = kl_engine_open(&o, &e);
    if (r != 0)
        kt_fail(__FILE__, __LINE__, "kl_engine_open --direct: %d", r);
    return e;
}

/* Value of key k: 1 to 120 bytes, naming the key (records of 48 to ~180
 * bytes: dozens share each block). */
static uint32_t vlen_of(uint32_t k) { return 1 + (k * 37) % 120; }

static void fill(char *v, uint32_t k)
{
    uint32_t n = vlen_of(k);
    for (uint32_t i = 0; i < n; i++)
        v[i] = (char)('a' + (k + i * 7) % 26);
    if (n >= 8)
        snprintf(v, 8, "%07u", k % 10000000);
}

struct load {
    struct kl_engine *e;
    uint32_t first, count;
    _Atomic int failures;
};

static void *storer(void *arg)
{
    struct load *l = arg;
    char key[24], v[128];
    for (uint32_t k = l->first; k < l->first + l->count; k++) {
        snprintf(key, sizeof key, "key:%u", k);
        fill(v, k);
        if (kl_engine_store(l->e, KL_SET, key, strlen(key), v, vlen_of(k), 0, 0, 0, NULL) !=
            KL_E_STORED) {
            atomic_fetch_add(&l->failures, 1);
            continue;
        }
        /* read back at once (direct): its block is likely being written
         * again meanwhile, with the other threads' records */
        struct kl_item it;
        if (kl_engine_lookup(l->e, key, strlen(key), NULL, &it) != KL_E_OK) {
            atomic_fetch_add(&l->failures, 1);
            continue;
        }
        if (it.vlen != vlen_of(k) || memcmp(it.value, v, it.vlen) != 0)
            atomic_fetch_add(&l->failures, 1);
        kl_engine_release(l->e, &it);
    }
    return NULL;
}

/* How many of keys [0, n) are missing or wrong. */
static int check_keys(struct kl_engine *e, uint32_t n)
{
    int bad = 0;
    char key[24], want[128];
    for (uint32_t k = 0; k < n; k++) {
        snprintf(key, sizeof key, "key:%u", k);
        struct kl_item it;
        int r = kl_engine_lookup(e, key, strlen(key), NULL, &it);
        fill(want, k);
        bool ok = r == KL_E_OK && it.vlen == vlen_of(k) && memcmp(it.value, want, it.vlen) == 0;
        if (!ok && bad++ < 5)
            fprintf(stderr, "  %s: lookup %s\n", key, kl_eresult_name(r));
        if (r == KL_E_OK)
            kl_engine_release(e, &it);
    }
    return bad;
}

static void store_from_threads(struct kl_engine *e, uint32_t per_thread)
{
    static struct load l[NTHREADS];
    pthread_t th[NTHREADS];
    for (uint32_t i = 0; i < NTHREADS; i++) {
        l[i] = (struct load){.e = e, .first = i * per_thread, .count = per_thread};
        KT_REQUIRE(pthread_create(&th[i], NULL, storer, &l[i]) == 0);
    }
    int failures = 0;
    for (uint32_t i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        failures += atomic_load(&l[i].failures);
    }
    KT_EQ_I(failures, 0);
}

static int data_fd(uint32_t id, int flags)
{
    char p[300];
    snprintf(p, sizeof p, "%s/data-%06u.kd", dir, id);
    return open(p, flags | O_CLOEXEC);
}

/* Threads store small records (many to a block) with no sync, then with
 * group commit; each is read back (direct) at once, while others write its
 * block again, and after reopens. The
 * files are small, so the writes also cross rotations. */
KT_TEST(small_records_from_threads_share_blocks)
{
    if (!fresh_direct_dir())
        return;
    const uint32_t per = 3000, n = NTHREADS * per;
    struct kl_engine *e = open_direct(KL_SYNC_NONE, 256 << 10);
    KT_REQUIRE(e != NULL);
    store_from_threads(e, per);
    KT_EQ_I(check_keys(e, n), 0);
    struct kl_engine_stats st;
    kl_engine_stats(e, &st);
    KT_CHECK(st.disk_files > 2); /* rotated, each file written by several threads */
    kl_engine_close(e);
    e = open_direct(KL_SYNC_ALWAYS, 256 << 10);
    KT_REQUIRE(e != NULL);
    KT_EQ_I(check_keys(e, n), 0);
    /* again under group commit, over the records of the first run */
    store_from_threads(e, per / 6);
    KT_EQ_I(check_keys(e, n), 0);
    kl_engine_close(e);
    e = open_direct(KL_SYNC_NONE, 256 << 10);
    KT_REQUIRE(e != NULL);
    KT_EQ_I(check_keys(e, n), 0);
    kl_engine_close(e);
    dk_rmdir(dir);
}

/* ---- a record written while a write of its block is in flight ---- */

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_cond = PTHREAD_COND_INITIALIZER;
static int hold_first;      /* flushes still to hold: the first is held until released */
static bool held, released; /* a flush is held before its pwrite; it may go */
static int flushes;         /* flushes seen */

static void hook(uint64_t start, uint64_t stop)
{
    pthread_mutex_lock(&hook_lock);
    flushes++;
    KT_CHECK(start % 4096 == 0 && stop % 4096 == 0 && stop > start);
    if (hold_first > 0) {
        hold_first--;
        held = true;
        pthread_cond_broadcast(&hook_cond);
        while (!released)
            pthread_cond_wait(&hook_cond, &hook_lock);
    }
    pthread_mutex_unlock(&hook_lock);
}

struct rec_write {
    struct dfile *d;
    const char *rec;
    uint32_t size;
    uint64_t off;
    _Atomic int done; /* 1 + files_write's result */
};

static void *do_write(void *arg)
{
    struct rec_write *w = arg;
    int r = files_write(w->d, w->rec, w->size, w->off);
    atomic_store(&w->done, 1 + r);
    return NULL;
}

/* Build a record for key/value in buf and claim its place in f: the file. */
static struct dfile *claim_rec(struct dfiles *f, char *buf, const char *key, const char *value,
                               uint32_t *size, uint64_t *off)
{
    uint32_t klen = (uint32_t)strlen(key), vlen = (uint32_t)strlen(value);
    memcpy(rec_start(buf, REC_PUT, key, klen, vlen, 0, 0, 0, 1), value, vlen);
    uint32_t body = rec_crc_body(buf);
    *size = rec_size(klen, vlen);
    uint64_t seq;
    struct dfile *d = NULL;
    for (int i = 0; d == NULL && i < 2; i++) {
        pthread_spin_lock(&f->alloc);
        d = files_claim(f, *size, off, &seq);
        pthread_spin_unlock(&f->alloc);
        if (d == NULL && files_room(f, *size) != 0)
            break;
    }
    if (d)
        rec_seal(buf, seq, body);
    return d;
}

/* Is w's record on file, byte for byte (read with the buffered fd)? */
static bool on_file(const struct rec_write *w)
{
    char got[4096];
    int fd = data_fd(w->d->id, O_RDONLY);
    bool ok = fd >= 0 && w->off + w->size <= sizeof got &&
              pread(fd, got, sizeof got, 0) >= (ssize_t)(w->off + w->size) &&
              memcmp(got + w->off, w->rec, w->size) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A fresh direct dir with the data files open in f (recycled by the cases). */
static bool open_files(struct dfiles *f)
{
    if (!fresh_direct_dir())
        return false;
    if (files_open(f, dir, true, 1 << 20, 4096) == 0)
        return true;
    kt_fail(__FILE__, __LINE__, "files_open --direct in %s", dir);
    return false;
}

static bool waits(struct rec_write *w)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return atomic_load(&w->done) == 0;
}

KT_TEST(record_written_while_its_block_is_in_flight)
{
    static struct dfiles f;
    if (!open_files(&f))
        return;
    static char a[256] __attribute__((aligned(8))), b[256] __attribute__((aligned(8)));
    static char c[256] __attribute__((aligned(8)));
    struct rec_write wa = {0}, wb = {0}, wc = {0};
    wa.d = claim_rec(&f, a, "alpha", "the first record of the block", &wa.size, &wa.off);
    KT_REQUIRE(wa.d != NULL && wa.off == 0);
    wa.rec = a;
    win_flush_hook = hook;
    hold_first = 1;
    pthread_t ta, tb, tc;
    /* A's flush is held in flight; B, its neighbour in the block, is then
     * claimed and written: it may not copy into the block or write it until
     * A's write is done, and then writes it again with both records */
    KT_REQUIRE(pthread_create(&ta, NULL, do_write, &wa) == 0);
    pthread_mutex_lock(&hook_lock);
    while (!held)
        pthread_cond_wait(&hook_cond, &hook_lock);
    pthread_mutex_unlock(&hook_lock);
    wb.d = claim_rec(&f, b, "beta", "the second, same block", &wb.size, &wb.off);
    KT_REQUIRE(wb.d == wa.d && wb.off == wa.size);
    wb.rec = b;
    KT_REQUIRE(pthread_create(&tb, NULL, do_write, &wb) == 0);
    KT_CHECK(waits(&wb));
    KT_CHECK(waits(&wa));
    pthread_mutex_lock(&hook_lock);
    released = true;
    pthread_cond_broadcast(&hook_cond);
    pthread_mutex_unlock(&hook_lock);
    pthread_join(ta, NULL);
    KT_EQ_I(atomic_load(&wa.done), 1);
    pthread_join(tb, NULL);
    KT_EQ_I(atomic_load(&wb.done), 1);
    KT_EQ_I(flushes, 2);
    /* C, claimed once B's write returned, lands in the same block by a
     * third write, which carries A and B again */
    wc.d = claim_rec(&f, c, "gamma", "the third", &wc.size, &wc.off);
    KT_REQUIRE(wc.d == wa.d && wc.off == wb.off + wb.size);
    wc.rec = c;
    KT_REQUIRE(pthread_create(&tc, NULL, do_write, &wc) == 0);
    pthread_join(tc, NULL);
    KT_EQ_I(atomic_load(&wc.done), 1);
    KT_EQ_I(flushes, 3);
    win_flush_hook = NULL;
    /* on file, the block holds all three */
    KT_CHECK(on_file(&wa) && on_file(&wb) && on_file(&wc));
    files_close(&f);
    /* and recovery finds them */
    struct kl_engine *e = open_direct(KL_SYNC_NONE, 1 << 20);
    KT_REQUIRE(e != NULL);
    struct kl_item it;
    KT_EQ_I(kl_engine_lookup(e, "alpha", 5, NULL, &it), KL_E_OK);
    KT_CHECK(it.vlen == 29 && memcmp(it.value, "the first record of the block", 29) == 0);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "beta", 4, NULL, &it), KL_E_OK);
    KT_CHECK(it.vlen == 22 && memcmp(it.value, "the second, same block", 22) == 0);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "gamma", 5, NULL, &it), KL_E_OK);
    kl_engine_release(e, &it);
    kl_engine_close(e);
    dk_rmdir(dir);
}

/* A record that follows a claim not yet written waits for it: its block
 * is written only once both are in (no flush writes a block someone is
 * still copying into). */
KT_TEST(record_after_an_unwritten_claim_waits_for_it)
{
    static struct dfiles f;
    if (!open_files(&f))
        return;
    static char a[256] __attribute__((aligned(8))), b[256] __attribute__((aligned(8)));
    struct rec_write wa = {0}, wb = {0};
    wa.d = claim_rec(&f, a, "first", "claimed first, written last", &wa.size, &wa.off);
    wb.d = claim_rec(&f, b, "second", "claimed second, written first", &wb.size, &wb.off);
    KT_REQUIRE(wa.d != NULL && wb.d == wa.d);
    wa.rec = a, wb.rec = b;
    flushes = 0;
    hold_first = 0;
    win_flush_hook = hook;
    pthread_t ta, tb;
    KT_REQUIRE(pthread_create(&tb, NULL, do_write, &wb) == 0);
    KT_CHECK(waits(&wb));
    KT_EQ_I(flushes, 0);
    KT_REQUIRE(pthread_create(&ta, NULL, do_write, &wa) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    KT_EQ_I(atomic_load(&wa.done), 1);
    KT_EQ_I(atomic_load(&wb.done), 1);
    KT_EQ_I(flushes, 1); /* one write carried both */
    win_flush_hook = NULL;
    KT_CHECK(on_file(&wa) && on_file(&wb));
    files_close(&f);
    dk_rmdir(dir);
}

/* A crash leaves the active file padded with zeros past its last record
 * (the rest of the block a direct write covers, and the preallocation):
 * recovery ends there, and writes go on after the last record. */
KT_TEST(recovery_takes_zero_padding_after_the_last_record)
{
    if (!fresh_direct_dir())
        return;
    struct kl_engine *e = open_direct(KL_SYNC_ALWAYS, 1 << 20);
    KT_REQUIRE(e != NULL);
    store_from_threads(e, 50);
    kl_engine_close(e); /* cuts the file at its last record */
    int fd = data_fd(1, O_RDWR);
    KT_REQUIRE(fd >= 0);
    struct stat st;
    KT_REQUIRE(fstat(fd, &st) == 0);
    KT_CHECK(st.st_size % 4096 != 0);
    /* zeros to the block's end and 64 KiB more, then a torn record (its
     * header's start) after another stretch of zeros */
    off_t end = st.st_size;
    KT_REQUIRE(ftruncate(fd, ((end + 4095) & ~4095) + 65536) == 0);
    KT_REQUIRE(pwrite(fd, "\x12\x34\x56\x78\x64\x4b\x01\x05", 8, end + 8192) == 8);
    close(fd);
    e = open_direct(KL_SYNC_ALWAYS, 1 << 20);
    KT_REQUIRE(e != NULL);
    KT_EQ_I(check_keys(e, NTHREADS * 50), 0);
    /* the next records follow the last one: padding and torn tail are gone */
    static struct load l;
    l = (struct load){.e = e, .first = NTHREADS * 50, .count = 30};
    storer(&l);
    KT_EQ_I(atomic_load(&l.failures), 0);
    kl_engine_close(e);
    fd = data_fd(1, O_RDONLY);
    KT_REQUIRE(fd >= 0 && fstat(fd, &st) == 0);
    close(fd);
    KT_CHECK(st.st_size < end + 30 * 200);
    e = open_direct(KL_SYNC_NONE, 1 << 20);
    KT_REQUIRE(e != NULL);
    KT_EQ_I(check_keys(e, NTHREADS * 50 + 30), 0);
    kl_engine_close(e);
    dk_rmdir(dir);
}
