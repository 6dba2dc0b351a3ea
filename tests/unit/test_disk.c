/* Tests of the disk engine (storage/disk/): every operation's memcached
 * semantics, record framing and CRC failures, replay after reopen, torn
 * tails, the checkpoint, and group commit. Each case works in a fresh
 * temporary data directory; the engine runs from plain threads here (its
 * I/O then uses plain system calls; keeld's tests cover the reactor path). */
#define _GNU_SOURCE
#include "storage/disk/disk_internal.h"
#include "storage/engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk_kit.h"
#include "kt.h"

#define T0 1000u

static char dir[256];

static void fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/keel-disk-test-XXXXXX");
    KT_REQUIRE(mkdtemp(dir) != NULL);
}

static struct kl_engine *open_disk_at(enum kl_sync_mode sync, uint64_t file_bytes, uint32_t now)
{
    struct kl_engine_opts o = {.engine = "disk",
                               .data_dir = dir,
                               .sync = sync,
                               .file_bytes = file_bytes,
                               .item_max = file_bytes ? 16384 : 0,
                               .compact_pct = 100,
                               .now = now};
    struct kl_engine *e = NULL;
    int r = kl_engine_open(&o, &e);
    KT_EQ_I(r, 0);
    return e;
}

static struct kl_engine *open_disk(enum kl_sync_mode sync, uint64_t file_bytes)
{
    return open_disk_at(sync, file_bytes, T0);
}

static int put(struct kl_engine *e, enum kl_store_mode m, const char *k, const char *v,
               uint32_t exptime, uint64_t cas_in, uint64_t *cas_out)
{
    return kl_engine_store(e, m, k, strlen(k), v, (uint32_t)strlen(v), 7, exptime, cas_in, cas_out);
}

/* The value of k as a string ("" if missing; "!<result>" on an error). */
static const char *get(struct kl_engine *e, const char *k, struct kl_item *out)
{
    static char buf[4096];
    struct kl_item it;
    int r = kl_engine_lookup(e, k, strlen(k), NULL, &it);
    if (r == KL_E_NOT_FOUND)
        return "";
    if (r != KL_E_OK) {
        snprintf(buf, sizeof buf, "!%s", kl_eresult_name(r));
        return buf;
    }
    size_t n = it.vlen < sizeof buf - 1 ? it.vlen : sizeof buf - 1;
    memcpy(buf, it.value, n);
    buf[n] = 0;
    if (out)
        *out = it;
    kl_engine_release(e, &it);
    return buf;
}

KT_TEST(store_modes_follow_memcached)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    uint64_t cas = 0, cas2 = 0;
    KT_EQ_I(put(e, KL_ADD, "a", "1", 0, 0, &cas), KL_E_STORED);
    KT_EQ_I(put(e, KL_ADD, "a", "2", 0, 0, NULL), KL_E_NOT_STORED);
    KT_EQ_I(put(e, KL_REPLACE, "b", "2", 0, 0, NULL), KL_E_NOT_STORED);
    KT_EQ_I(put(e, KL_REPLACE, "a", "3", 0, 0, &cas2), KL_E_STORED);
    KT_CHECK(cas2 != cas);
    KT_EQ_I(put(e, KL_CAS, "a", "4", 0, cas, NULL), KL_E_EXISTS);
    KT_EQ_I(put(e, KL_CAS, "zz", "4", 0, cas, NULL), KL_E_NOT_FOUND);
    KT_EQ_I(put(e, KL_CAS, "a", "4", 0, cas2, NULL), KL_E_STORED);
    KT_EQ_STR(get(e, "a", NULL), "4");
    KT_EQ_I(put(e, KL_APPEND, "a", "56", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_PREPEND, "a", "0", 0, 0, NULL), KL_E_STORED);
    struct kl_item it;
    KT_EQ_STR(get(e, "a", &it), "0456");
    KT_EQ_U(it.flags, 7);
    KT_EQ_I(put(e, KL_APPEND, "nope", "x", 0, 0, NULL), KL_E_NOT_STORED);
    KT_EQ_I(put(e, KL_SET, "a", "", 0, 0, NULL), KL_E_STORED);
    KT_EQ_STR(get(e, "a", NULL), "");
    KT_EQ_I(kl_engine_lookup(e, "a", 1, NULL, &it), KL_E_OK);
    KT_EQ_U(it.vlen, 0);
    kl_engine_release(e, &it);
    kl_engine_close(e);
    dk_rmdir(dir);
}

KT_TEST(delete_arith_touch_expiry_flush)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    uint64_t cas = 0, v = 0;
    KT_EQ_I(put(e, KL_SET, "n", "10", 0, 0, &cas), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 5, 0, &v, NULL), KL_E_OK);
    KT_EQ_U(v, 15);
    KT_EQ_I(kl_engine_arith(e, "n", 1, false, 100, 0, &v, NULL), KL_E_OK);
    KT_EQ_U(v, 0);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 1, 12345, &v, NULL), KL_E_EXISTS);
    KT_EQ_I(put(e, KL_SET, "s", "abc", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "s", 1, true, 1, 0, &v, NULL), KL_E_NON_NUMERIC);
    KT_EQ_I(kl_engine_arith(e, "zz", 2, true, 1, 0, &v, NULL), KL_E_NOT_FOUND);
    /* delete with a wrong CAS, then the right one */
    KT_EQ_I(put(e, KL_SET, "d", "x", 0, 0, &cas), KL_E_STORED);
    KT_EQ_I(kl_engine_delete(e, "d", 1, cas + 1000, false, NULL), KL_E_EXISTS);
    KT_EQ_I(kl_engine_delete(e, "d", 1, cas, false, NULL), KL_E_OK);
    KT_EQ_I(kl_engine_delete(e, "d", 1, 0, false, NULL), KL_E_NOT_FOUND);
    KT_EQ_STR(get(e, "d", NULL), "");
    /* touch keeps the CAS; expiry on the engine's clock */
    struct kl_item it;
    KT_EQ_I(put(e, KL_SET, "t", "v", T0 + 10, 0, &cas), KL_E_STORED);
    KT_EQ_I(kl_engine_touch(e, "t", 1, T0 + 100), KL_E_OK);
    KT_EQ_STR(get(e, "t", &it), "v");
    KT_EQ_U(it.cas, cas);
    KT_EQ_U(it.exptime, T0 + 100);
    kl_engine_tick(e, T0 + 50);
    KT_EQ_STR(get(e, "t", NULL), "v");
    kl_engine_tick(e, T0 + 100);
    KT_EQ_STR(get(e, "t", NULL), "");
    KT_EQ_I(put(e, KL_SET, "x", "v", KL_EXPTIME_EXPIRED, 0, NULL), KL_E_STORED);
    KT_EQ_STR(get(e, "x", NULL), "");
    KT_EQ_I(put(e, KL_ADD, "x", "w", 0, 0, NULL), KL_E_STORED);
    /* meta invalidate: stale, new CAS, the token */
    uint64_t c2 = 0;
    KT_EQ_I(kl_engine_delete(e, "x", 1, 0, true, &c2), KL_E_OK);
    struct kl_lookup_opts mo = {.flags = KL_LOOKUP_META};
    KT_EQ_I(kl_engine_lookup(e, "x", 1, &mo, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_STALE);
    KT_CHECK(it.meta & KL_META_WIN);
    KT_EQ_U(it.cas, c2);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "x", 1, &mo, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_WON);
    KT_CHECK(it.meta & KL_META_FETCHED);
    kl_engine_release(e, &it);
    /* flush_all, at once and delayed */
    kl_engine_flush(e, 0);
    KT_EQ_STR(get(e, "s", NULL), "");
    KT_EQ_I(put(e, KL_SET, "after", "1", 0, 0, NULL), KL_E_STORED);
    kl_engine_flush(e, 5);
    KT_EQ_STR(get(e, "after", NULL), "1");
    kl_engine_tick(e, T0 + 200);
    KT_EQ_STR(get(e, "after", NULL), "");
    KT_EQ_I(put(e, KL_SET, "later", "2", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    /* the flush holds across a restart; what came after it too */
    e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_STR(get(e, "after", NULL), "");
    KT_EQ_STR(get(e, "later", NULL), "2");
    kl_engine_close(e);
    dk_rmdir(dir);
}

static void remove_ckpt(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/index.ckpt", dir);
    unlink(p);
}

/* Reopen with or without the checkpoint: the same keys either way. */
static void replay_case(bool keep_ckpt)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_BATCH, 64 << 10); /* small files: rotation */
    char k[32], v[64];
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        snprintf(v, sizeof v, "value-%d-%0*d", i, i % 40, 0);
        KT_REQUIRE(put(e, KL_SET, k, v, 0, 0, NULL) == KL_E_STORED);
    }
    for (int i = 0; i < 2000; i += 3) {
        snprintf(k, sizeof k, "key:%d", i);
        KT_REQUIRE(kl_engine_delete(e, k, strlen(k), 0, false, NULL) == KL_E_OK);
    }
    for (int i = 1; i < 2000; i += 3) {
        snprintf(k, sizeof k, "key:%d", i);
        KT_REQUIRE(put(e, KL_SET, k, "new", 0, 0, NULL) == KL_E_STORED);
    }
    struct kl_engine_stats st;
    kl_engine_stats(e, &st);
    KT_CHECK(st.disk_files > 2);
    uint64_t items = st.items;
    kl_engine_close(e);
    if (!keep_ckpt)
        remove_ckpt();
    e = open_disk(KL_SYNC_BATCH, 64 << 10);
    kl_engine_stats(e, &st);
    KT_EQ_U(st.items, items);
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        snprintf(v, sizeof v, "value-%d-%0*d", i, i % 40, 0);
        const char *want = i % 3 == 0 ? "" : i % 3 == 1 ? "new" : v;
        bad += strcmp(get(e, k, NULL), want) != 0;
    }
    KT_EQ_I(bad, 0);
    /* stores after the reopen get new CAS values and survive another one */
    uint64_t cas;
    KT_EQ_I(put(e, KL_SET, "key:0", "again", 0, 0, &cas), KL_E_STORED);
    kl_engine_close(e);
    e = open_disk(KL_SYNC_BATCH, 64 << 10);
    struct kl_item it;
    KT_EQ_STR(get(e, "key:0", &it), "again");
    KT_EQ_U(it.cas, cas);
    kl_engine_close(e);
    dk_rmdir(dir);
}

KT_TEST(replay_after_reopen_without_checkpoint) { replay_case(false); }

KT_TEST(replay_after_reopen_with_checkpoint) { replay_case(true); }

/* A delayed flush_all outlives a restart (from its record, or from the
 * checkpoint): still pending, it runs when due and takes what was stored
 * before, across the restart; fallen due while the server was down, it runs
 * at open; a later flush_all 0 cancels it, as in memcached. */
static void delayed_flush_case(bool keep_ckpt)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_I(put(e, KL_SET, "a", "1", 0, 0, NULL), KL_E_STORED);
    kl_engine_flush(e, 10); /* due at T0 + 10 */
    KT_EQ_I(put(e, KL_SET, "b", "2", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    if (!keep_ckpt)
        remove_ckpt();
    e = open_disk_at(KL_SYNC_NONE, 0, T0 + 5); /* still pending */
    KT_EQ_STR(get(e, "a", NULL), "1");
    KT_EQ_STR(get(e, "b", NULL), "2");
    KT_EQ_I(put(e, KL_SET, "c", "3", 0, 0, NULL), KL_E_STORED);
    kl_engine_tick(e, T0 + 10);
    KT_EQ_STR(get(e, "a", NULL), "");
    KT_EQ_STR(get(e, "b", NULL), "");
    KT_EQ_STR(get(e, "c", NULL), "");
    KT_EQ_I(put(e, KL_SET, "d", "4", 0, 0, NULL), KL_E_STORED);
    kl_engine_flush(e, 10); /* due at T0 + 20: the server goes down before */
    KT_EQ_I(put(e, KL_SET, "e", "5", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    if (!keep_ckpt)
        remove_ckpt();
    e = open_disk_at(KL_SYNC_NONE, 0, T0 + 30); /* fell due while down */
    struct kl_engine_stats st;
    kl_engine_stats(e, &st);
    KT_EQ_U(st.items, 0);
    KT_EQ_STR(get(e, "d", NULL), "");
    KT_EQ_STR(get(e, "e", NULL), "");
    KT_EQ_I(put(e, KL_SET, "f", "6", 0, 0, NULL), KL_E_STORED);
    kl_engine_flush(e, 10); /* due at T0 + 40, then cancelled by a flush now */
    kl_engine_flush(e, 0);
    KT_EQ_I(put(e, KL_SET, "g", "7", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    if (!keep_ckpt)
        remove_ckpt();
    e = open_disk_at(KL_SYNC_NONE, 0, T0 + 50);
    KT_EQ_STR(get(e, "f", NULL), "");
    KT_EQ_STR(get(e, "g", NULL), "7");
    kl_engine_close(e);
    dk_rmdir(dir);
}

KT_TEST(delayed_flush_survives_restart_from_its_record) { delayed_flush_case(false); }

KT_TEST(delayed_flush_survives_restart_from_the_checkpoint) { delayed_flush_case(true); }

/* Records written after the checkpoint are replayed on top of it. */
KT_TEST(checkpoint_plus_tail_replay)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_I(put(e, KL_SET, "a", "1", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "b", "1", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e); /* checkpoint here */
    char ck[512], saved[512];
    snprintf(ck, sizeof ck, "%s/index.ckpt", dir);
    snprintf(saved, sizeof saved, "%s/saved.ckpt", dir);
    KT_REQUIRE(link(ck, saved) == 0);
    e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_I(put(e, KL_SET, "a", "2", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_delete(e, "b", 1, 0, false, NULL), KL_E_OK);
    KT_EQ_I(put(e, KL_SET, "c", "3", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    /* put the old checkpoint back: the tail after it must be replayed */
    KT_REQUIRE(rename(saved, ck) == 0);
    e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_STR(get(e, "a", NULL), "2");
    KT_EQ_STR(get(e, "b", NULL), "");
    KT_EQ_STR(get(e, "c", NULL), "3");
    kl_engine_close(e);
    dk_rmdir(dir);
}

static int data_fd(int flags)
{
    char p[512];
    snprintf(p, sizeof p, "%s/data-000001.kd", dir);
    return open(p, flags);
}

/* Every flush record below the checkpoint's next sequence number is
 * already in it (flush_seq, flush_due). A file shorter than the checkpoint
 * says is scanned again from its start; a delayed flush_all's record there
 * must not be scheduled again over the flush that ran it (a newer record, in
 * a later file the checkpoint covers): that would flush at open what was
 * stored after it ran. */
KT_TEST(rescanned_old_delayed_flush_is_not_scheduled_again)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 64 << 10);
    kl_engine_flush(e, 10); /* its record goes to file 1; due at T0 + 10 */
    char k[32], v[512];
    memset(v, 'p', sizeof v - 1);
    v[sizeof v - 1] = '\0';
    for (int i = 0; i < 300; i++) { /* past 64 KiB: file 2 takes the rest */
        snprintf(k, sizeof k, "pad:%d", i);
        KT_EQ_I(put(e, KL_SET, k, v, 0, 0, NULL), KL_E_STORED);
    }
    struct kl_engine_stats st;
    kl_engine_stats(e, &st);
    KT_REQUIRE(st.disk_files >= 2);
    kl_engine_tick(e, T0 + 10); /* it runs: its flush record goes to the last file */
    KT_EQ_I(put(e, KL_SET, "after", "kept", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);       /* a checkpoint: nothing pending */
    int fd = data_fd(O_RDWR); /* file 1 loses its last bytes */
    struct stat fs;
    KT_REQUIRE(fd >= 0 && fstat(fd, &fs) == 0);
    KT_REQUIRE(ftruncate(fd, fs.st_size - 1) == 0);
    close(fd);
    e = open_disk_at(KL_SYNC_NONE, 64 << 10, T0 + 30);
    KT_EQ_STR(get(e, "after", NULL), "kept");
    kl_engine_close(e);
    dk_rmdir(dir);
}

KT_TEST(flipped_byte_is_corrupt_never_a_value)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_I(put(e, KL_SET, "victim", "precious-value", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "other", "fine", 0, 0, NULL), KL_E_STORED);
    int fd = data_fd(O_RDWR);
    KT_REQUIRE(fd >= 0);
    char c;
    KT_REQUIRE(pread(fd, &c, 1, 40 + 6 + 3) == 1); /* inside the first value */
    c ^= 0x20;
    KT_REQUIRE(pwrite(fd, &c, 1, 40 + 6 + 3) == 1);
    close(fd);
    KT_EQ_STR(get(e, "victim", NULL), "!CORRUPT");
    struct kl_engine_stats st;
    kl_engine_stats(e, &st);
    KT_EQ_U(st.disk_corrupt, 1);
    KT_EQ_STR(get(e, "victim", NULL), ""); /* dropped after the report */
    KT_EQ_STR(get(e, "other", NULL), "fine");
    KT_EQ_I(put(e, KL_SET, "victim", "again", 0, 0, NULL), KL_E_STORED);
    KT_EQ_STR(get(e, "victim", NULL), "again");
    kl_engine_close(e);
    dk_rmdir(dir);
}

KT_TEST(torn_tail_is_cut_and_a_hole_skipped)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_I(put(e, KL_SET, "k1", "v1", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "k2", "v2", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "k3", "v3", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "k4", "v4", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    remove_ckpt();
    int fd = data_fd(O_RDWR);
    KT_REQUIRE(fd >= 0);
    struct stat st;
    KT_REQUIRE(fstat(fd, &st) == 0);
    uint64_t rec = (uint64_t)st.st_size / 4;
    /* zero the middle record's header (a write that never landed), and tear the last one */
    char zero[16] = {0};
    KT_REQUIRE(pwrite(fd, zero, sizeof zero, (off_t)rec) == (ssize_t)sizeof zero);
    KT_REQUIRE(ftruncate(fd, st.st_size - 5) == 0);
    close(fd);
    e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_STR(get(e, "k1", NULL), "v1");
    KT_EQ_STR(get(e, "k2", NULL), "");
    KT_EQ_STR(get(e, "k3", NULL), "v3");
    KT_EQ_STR(get(e, "k4", NULL), "");
    KT_EQ_I(put(e, KL_SET, "k5", "v5", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    fd = data_fd(O_RDONLY);
    KT_REQUIRE(fstat(fd, &st) == 0);
    close(fd);
    KT_EQ_U((uint64_t)st.st_size, 4 * rec); /* tail cut, then k5 appended */
    e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_STR(get(e, "k5", NULL), "v5");
    KT_EQ_STR(get(e, "k3", NULL), "v3");
    KT_EQ_STR(get(e, "k1", NULL), "v1");
    kl_engine_close(e);
    dk_rmdir(dir);
}

KT_TEST(sync_always_and_bad_options)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_ALWAYS, 0);
    KT_EQ_I(put(e, KL_SET, "a", "1", 0, 0, NULL), KL_E_STORED);
    KT_EQ_STR(get(e, "a", NULL), "1");
    kl_engine_close(e);
    struct kl_engine_opts o = {.engine = "disk"};
    KT_EQ_I(kl_engine_open(&o, &e), -EINVAL);
    o.data_dir = "/proc/no/such/dir";
    KT_CHECK(kl_engine_open(&o, &e) < 0);
    enum kl_sync_mode m;
    KT_EQ_I(kl_sync_mode_parse("always", &m), 0);
    KT_EQ_I(m, KL_SYNC_ALWAYS);
    KT_EQ_I(kl_sync_mode_parse("sometimes", &m), -EINVAL);
    dk_rmdir(dir);
}

KT_TEST(large_values_and_too_large)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    uint32_t n = 600000;
    char *v = malloc(n);
    for (uint32_t i = 0; i < n; i++)
        v[i] = (char)('a' + i % 26);
    KT_EQ_I(kl_engine_store(e, KL_SET, "big", 3, v, n, 0, 0, 0, NULL), KL_E_STORED);
    struct kl_item it;
    KT_EQ_I(kl_engine_lookup(e, "big", 3, NULL, &it), KL_E_OK);
    KT_EQ_U(it.vlen, n);
    KT_CHECK(memcmp(it.value, v, n) == 0);
    kl_engine_release(e, &it);
    struct kl_store st;
    KT_EQ_I(kl_engine_reserve(e, "huge", 4, 2u << 20, 0, 0, &st), KL_E_TOO_LARGE);
    KT_EQ_I(kl_engine_reserve(e, "", 0, 1, 0, 0, &st), KL_E_BAD_KEY);
    free(v);
    kl_engine_close(e);
    dk_rmdir(dir);
}

/* A full device (here: past RLIMIT_FSIZE, EFBIG): stores fail with
 * KL_E_NO_SPACE, reads go on, and everything stored before is there after a
 * reopen. */
KT_TEST(full_disk_refuses_writes_keeps_reads)
{
    fresh_dir();
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    KT_REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 1 << 20;
    KT_REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    struct kl_engine *e = open_disk(KL_SYNC_BATCH, 8 << 20);
    char k[32], v[1000];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = 0;
    int stored = 0, r = KL_E_STORED;
    for (; stored < 5000; stored++) {
        snprintf(k, sizeof k, "key:%d", stored);
        if ((r = put(e, KL_SET, k, v, 0, 0, NULL)) != KL_E_STORED)
            break;
    }
    KT_EQ_I(r, KL_E_NO_SPACE);
    KT_CHECK(stored > 900 && stored < 1100);
    KT_EQ_I(put(e, KL_SET, "more", v, 0, 0, NULL), KL_E_NO_SPACE);
    KT_EQ_STR(get(e, "key:0", NULL), v);
    struct kl_engine_stats st;
    kl_engine_stats(e, &st);
    KT_CHECK(st.disk_no_space >= 2);
    kl_engine_close(e);
    KT_REQUIRE(setrlimit(RLIMIT_FSIZE, &old) == 0);
    e = open_disk(KL_SYNC_BATCH, 8 << 20);
    int missing = 0;
    for (int i = 0; i < stored; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        missing += strcmp(get(e, k, NULL), v) != 0;
    }
    KT_EQ_I(missing, 0);
    KT_EQ_STR(get(e, "more", NULL), "");
    KT_EQ_I(put(e, KL_SET, "more", "now", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e);
    dk_rmdir(dir);
}

/* A fresh engine reading with O_DIRECT (*o: its options, to reopen), or
 * NULL with the case marked skipped where the file system refuses O_DIRECT. */
static struct kl_engine *open_direct(struct kl_engine_opts *o)
{
    fresh_dir();
    *o = (struct kl_engine_opts){
        .engine = "disk", .data_dir = dir, .direct = true, .compact_pct = 100, .now = T0};
    struct kl_engine *e = NULL;
    int r = kl_engine_open(o, &e);
    if (r == -EINVAL) {
        dk_rmdir(dir);
        kt_skip("this file system refuses O_DIRECT");
        return NULL;
    }
    if (r != 0)
        kt_fail(__FILE__, __LINE__, "kl_engine_open with --direct: %d", r);
    return r == 0 ? e : NULL;
}

KT_TEST(direct_reads_and_more_semantics)
{
    struct kl_engine_opts o;
    struct kl_engine *e = open_direct(&o);
    if (e == NULL)
        return;     /* skipped, or failed */
    char big[3000]; /* two of them: the second spans a 4 KiB block boundary */
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    KT_EQ_I(put(e, KL_SET, "small", "s", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "big1", big, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "big", big, 0, 0, NULL), KL_E_STORED);
    KT_EQ_STR(get(e, "small", NULL), "s");
    KT_EQ_STR(get(e, "big1", NULL), big);
    KT_EQ_STR(get(e, "big", NULL), big);
    /* incr wraps at 2^64; get-and-touch sets the exptime first */
    uint64_t v;
    KT_EQ_I(put(e, KL_SET, "n", "18446744073709551615", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 2, 0, &v, NULL), KL_E_OK);
    KT_EQ_U(v, 1);
    KT_EQ_STR(get(e, "n", NULL), "1");
    struct kl_lookup_opts to = {.flags = KL_LOOKUP_TOUCH, .exptime = T0 + 5};
    struct kl_item it;
    KT_EQ_I(kl_engine_lookup(e, "small", 5, &to, &it), KL_E_OK);
    KT_EQ_U(it.exptime, T0 + 5);
    KT_EQ_I(it.ttl_left, 5);
    kl_engine_release(e, &it);
    kl_engine_tick(e, T0 + 6);
    KT_EQ_STR(get(e, "small", NULL), "");
    uint64_t cas;
    KT_EQ_I(put(e, KL_SET, "c", "1", T0 + 7, 0, &cas), KL_E_STORED);
    kl_engine_tick(e, T0 + 8);
    KT_EQ_I(put(e, KL_CAS, "c", "2", 0, cas, NULL), KL_E_NOT_FOUND); /* expired */
    KT_EQ_I(kl_engine_touch(e, "c", 1, T0 + 100), KL_E_NOT_FOUND);
    /* touch to the past deletes */
    KT_EQ_I(put(e, KL_SET, "t", "1", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_touch(e, "t", 1, KL_EXPTIME_EXPIRED), KL_E_OK);
    KT_EQ_STR(get(e, "t", NULL), "");
    kl_engine_close(e);
    e = NULL;
    KT_REQUIRE(kl_engine_open(&o, &e) == 0);
    KT_EQ_STR(get(e, "big", NULL), big);
    KT_EQ_STR(get(e, "t", NULL), "");
    kl_engine_close(e);
    dk_rmdir(dir);
}

/* A direct read of a file's last record reads only as far as the record:
 * where the file ends just past it (recovery and rotation cut the tail off)
 * the first read comes back short, and a second read from there would be
 * unaligned, which O_DIRECT refuses once the file has grown meanwhile (a
 * writer preallocating). Here a thread grows and cuts the file in a loop
 * while gets read its last record: every one must be the value. */
static atomic_bool grower_stop;

static void *grower(void *arg)
{
    off_t end = *(off_t *)arg;
    int fd = data_fd(O_WRONLY);
    for (unsigned i = 0; fd >= 0 && !grower_stop; i++)
        if (ftruncate(fd, end + (i % 2 ? 8192 : 0)) != 0)
            break;
    if (fd >= 0) {
        if (ftruncate(fd, end) != 0) { /* the test then fails on its reads */
        }
        close(fd);
    }
    return NULL;
}

KT_TEST(direct_read_of_the_last_record_while_the_file_grows)
{
    struct kl_engine_opts o;
    struct kl_engine *e = open_direct(&o);
    if (e == NULL)
        return; /* skipped, or failed */
    KT_EQ_I(put(e, KL_SET, "first", "1", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "last", "the last record", 0, 0, NULL), KL_E_STORED);
    kl_engine_close(e); /* cuts the preallocated tail: the file ends at the record */
    KT_REQUIRE(kl_engine_open(&o, &e) == 0);
    struct stat st;
    int fd = data_fd(O_RDONLY);
    KT_REQUIRE(fd >= 0 && fstat(fd, &st) == 0);
    close(fd);
    KT_CHECK(st.st_size % 4096 != 0);
    off_t end = st.st_size;
    grower_stop = false;
    pthread_t t;
    KT_REQUIRE(pthread_create(&t, NULL, grower, &end) == 0);
    int bad = 0;
    const char *first_bad = "";
    struct timespec t0, ts;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 200000 && bad < 10; i++) { /* at most ~2 s (sanitizers are slow) */
        if (i % 1024 == 0 && clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && ts.tv_sec - t0.tv_sec > 2)
            break;
        const char *v = get(e, "last", NULL);
        if (strcmp(v, "the last record") != 0 && bad++ == 0)
            first_bad = strdup(v);
    }
    grower_stop = true;
    pthread_join(t, NULL);
    KT_EQ_STR(first_bad, "");
    KT_EQ_I(bad, 0);
    kl_engine_close(e);
    dk_rmdir(dir);
}

/* The record format itself: sizes padded to 8, every byte covered by the
 * CRC (a flip anywhere in header, key or value is caught), short reads and
 * garbage refused. */
KT_TEST(record_framing)
{
    char buf[256] __attribute__((aligned(8)));
    memset(buf, 0x5a, sizeof buf);
    char *v = rec_start(buf, REC_PUT, "key", 3, 5, 42, 77, 0, 1234);
    memcpy(v, "value", 5);
    uint32_t body = rec_crc_body(buf);
    rec_seal(buf, 99, body);
    uint32_t size = rec_size(3, 5);
    KT_EQ_U(size, 48); /* 40 + 3 + 5 */
    KT_EQ_U(rec_size(3, 6), 56);
    KT_EQ_U(rec_check(buf, size), size);
    KT_EQ_U(rec_check(buf, size - 1), 0); /* short */
    KT_EQ_U(rec_hdr(buf)->seq, 99);
    KT_EQ_U(rec_hdr(buf)->cas, 1234);
    KT_EQ_U(rec_hdr(buf)->flags, 42);
    KT_EQ_U(rec_hdr(buf)->exptime, 77);
    KT_CHECK(memcmp(rec_key(buf), "key", 3) == 0 && memcmp(rec_value(buf), "value", 5) == 0);
    int missed = 0;
    for (uint32_t i = 0; i < REC_HDR + 8; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (char)(1 << bit);
            missed += rec_check(buf, sizeof buf) == size;
            buf[i] ^= (char)(1 << bit);
        }
    }
    KT_EQ_I(missed, 0);
    KT_EQ_U(rec_check(buf, size), size);
    char zeros[64] = {0};
    KT_EQ_U(rec_check(zeros, sizeof zeros), 0);
}

/* ---- the dump (lru_crawler metadump) ---- */

struct disk_seen {
    char keys[64][16];
    uint64_t cas[64];
    uint32_t exptime[64], n, others;
    bool fetched[64];
};

static void disk_collect(void *arg, const struct kl_item_meta *m)
{
    struct disk_seen *d = arg;
    if (d->n >= 64 || m->klen >= sizeof d->keys[0]) {
        d->others++;
        return;
    }
    memcpy(d->keys[d->n], m->key, m->klen);
    d->keys[d->n][m->klen] = 0;
    d->cas[d->n] = m->cas;
    d->exptime[d->n] = m->exptime;
    d->fetched[d->n++] = m->fetched;
}

static int seen_at(const struct disk_seen *d, const char *key)
{
    int at = -1;
    for (uint32_t i = 0; i < d->n; i++)
        if (strcmp(d->keys[i], key) == 0)
            at = at < 0 ? (int)i : -2; /* listed twice */
    return at;
}

/* A whole dump into d (cleared first), in parts of every shard: the last result. */
static int dump_whole(struct kl_engine *e, struct disk_seen *d)
{
    memset(d, 0, sizeof *d);
    uint64_t cursor = 0;
    int more;
    while ((more = kl_engine_dump(e, &cursor, 4096 * 8, disk_collect, d)) == 1)
        ;
    return more;
}

KT_TEST(dump_lists_live_values_from_their_records)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    uint64_t cas_a = 0, cas_b = 0;
    KT_EQ_I(put(e, KL_SET, "a", "old", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "a", "new", 0, 0, &cas_a), KL_E_STORED); /* the old record is dead */
    KT_EQ_I(put(e, KL_SET, "b", "v", T0 + 100, 0, &cas_b), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "gone", "v", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_delete(e, "gone", 4, 0, false, NULL), KL_E_OK);
    KT_EQ_I(put(e, KL_SET, "soon", "v", T0 + 5, 0, NULL), KL_E_STORED);
    KT_EQ_STR(get(e, "a", NULL), "new"); /* fetched */
    kl_engine_tick(e, T0 + 6);           /* "soon" has expired */
    static struct disk_seen d;
    memset(&d, 0, sizeof d);
    uint64_t cursor = 0;
    int more, calls = 0;
    do {
        more = kl_engine_dump(e, &cursor, 8, disk_collect, &d);
        calls++;
    } while (more == 1 && calls < 100000);
    KT_EQ_I(more, 0);
    KT_CHECK(calls > 1);
    KT_EQ_U(d.n, 2);
    KT_EQ_U(d.others, 0);
    int a = seen_at(&d, "a"), b = seen_at(&d, "b");
    KT_REQUIRE(a >= 0 && b >= 0);
    KT_EQ_U(d.cas[a], cas_a);
    KT_EQ_U(d.cas[b], cas_b);
    KT_EQ_U(d.exptime[a], 0);
    KT_EQ_U(d.exptime[b], T0 + 100);
    KT_CHECK(d.fetched[a] && !d.fetched[b]);
    /* after flush_all, nothing */
    kl_engine_flush(e, 0);
    KT_EQ_I(dump_whole(e, &d), 0);
    KT_EQ_U(d.n, 0);
    kl_engine_close(e);
    dk_rmdir(dir);
}

/* A dump whose reads cannot get a buffer (every one lent out) says so
 * (-ENOMEM) instead of ending as if the keys were not there; with the
 * buffers back, it lists them. */
KT_TEST(dump_without_read_buffers_fails_instead_of_leaving_keys_out)
{
    fresh_dir();
    struct kl_engine *e = open_disk(KL_SYNC_NONE, 0);
    KT_EQ_I(put(e, KL_SET, "k1", "v", 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(put(e, KL_SET, "k2", "v", 0, 0, NULL), KL_E_STORED);
    struct disk_engine *de = disk_of(e);
    size_t cap = 1u << 17, held = 0;
    char **bufs = malloc(cap * sizeof *bufs);
    KT_REQUIRE(bufs);
    uint32_t cls = 0;
    while (held < cap && (bufs[held] = buf_get(&de->bufs, 64, &cls)) != NULL)
        held++;
    KT_CHECK(held > 0 && held < cap); /* the record's class ran dry */
    static struct disk_seen d;
    KT_EQ_I(dump_whole(e, &d), -ENOMEM);
    for (size_t i = 0; i < held; i++)
        buf_put(&de->bufs, bufs[i], cls);
    free(bufs);
    KT_EQ_I(dump_whole(e, &d), 0);
    KT_EQ_U(d.n, 2);
    kl_engine_close(e);
    dk_rmdir(dir);
}
