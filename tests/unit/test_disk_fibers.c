/* The disk engine from fibers on a reactor (io_uring and epoll): its reads,
 * writes and syncs go through keel/io.h. Many fibers store with --sync
 * always at once: each store returns durable, and they share syncs (group
 * commit: fewer syncs than stores). */
#define _GNU_SOURCE
#include "storage/engine.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk_kit.h"
#include "kt.h"
#include "reactor_kit.h"

#define FIBERS 32
#define STORES 20

static char dir[256];
static struct kl_engine *eng;
static int bad;

static intptr_t writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char k[32], v[64];
    for (int i = 0; i < STORES; i++) {
        snprintf(k, sizeof k, "f%d:%d", id, i);
        int n = snprintf(v, sizeof v, "value of %s", k);
        if (kl_engine_store(eng, KL_SET, k, strlen(k), v, (uint32_t)n, 0, 0, 0, NULL) !=
            KL_E_STORED) {
            bad++;
            continue;
        }
        struct kl_item it;
        if (kl_engine_lookup(eng, k, strlen(k), NULL, &it) != KL_E_OK) {
            bad++;
            continue;
        }
        bad += it.vlen != (uint32_t)n || memcmp(it.value, v, (size_t)n) != 0;
        kl_engine_release(eng, &it);
    }
    return 0;
}

static void run(enum kl_reactor_backend b)
{
    (void)b;
    snprintf(dir, sizeof dir, "/tmp/keel-disk-fibers-XXXXXX");
    KT_REQUIRE(mkdtemp(dir) != NULL);
    struct kl_engine_opts o = {
        .engine = "disk", .data_dir = dir, .sync = KL_SYNC_ALWAYS, .compact_pct = 100, .now = 1};
    KT_REQUIRE(kl_engine_open(&o, &eng) == 0);
    bad = 0;
    for (int i = 0; i < FIBERS; i++)
        rk_spawn("writer", writer, (void *)(intptr_t)i);
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(bad, 0);
    struct kl_engine_stats st;
    kl_engine_stats(eng, &st);
    KT_EQ_U(st.items, FIBERS * STORES);
    KT_CHECK(st.disk_group_syncs > 0);
    KT_CHECK(st.disk_group_syncs < FIBERS * STORES);
    printf("  %s: %llu syncs for %d stores\n", kl_reactor_backend_name(b),
           (unsigned long long)st.disk_group_syncs, FIBERS * STORES);
    kl_engine_close(eng);
    dk_rmdir(dir);
}

KT_TEST(fibers_store_and_read_with_group_commit) { rk_each_backend(run); }

/* Writers cancelled in the middle (as keeld's shutdown cancels connection
 * fibers): a store still either completes whole (STORED, then readable) or
 * fails cleanly; nobody hangs, the group sync does not fail for the others. */
static int stored_ok, stored_bad;

static intptr_t cancelled_writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char k[32], v[64];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "c%d:%d", id, i);
        int n = snprintf(v, sizeof v, "value of %s", k);
        int r = kl_engine_store(eng, KL_SET, k, strlen(k), v, (uint32_t)n, 0, 0, 0, NULL);
        if (r == KL_E_STORED)
            stored_ok++;
        else
            stored_bad++;
        if (kl_fiber_cancelled())
            break;
    }
    return 0;
}

static void run_cancel(enum kl_reactor_backend b)
{
    (void)b;
    snprintf(dir, sizeof dir, "/tmp/keel-disk-fibers-XXXXXX");
    KT_REQUIRE(mkdtemp(dir) != NULL);
    struct kl_engine_opts o = {
        .engine = "disk", .data_dir = dir, .sync = KL_SYNC_ALWAYS, .compact_pct = 100, .now = 1};
    KT_REQUIRE(kl_engine_open(&o, &eng) == 0);
    stored_ok = stored_bad = 0;
    static kl_fiber_id ids[FIBERS];
    for (int i = 0; i < FIBERS; i++) {
        ids[i] = rk_spawn("writer", cancelled_writer, (void *)(intptr_t)i);
        if (i % 2)
            rk_spawn("canceller", rk_canceller, &ids[i]);
    }
    KT_EQ_I(kl_reactor_run(), 0);
    KT_EQ_I(stored_bad, 0);
    KT_CHECK(stored_ok > 0);
    struct kl_engine_stats st;
    kl_engine_stats(eng, &st);
    KT_EQ_U(st.items, (uint64_t)stored_ok);
    KT_EQ_U(st.disk_io_errors, 0);
    kl_engine_close(eng);
    dk_rmdir(dir);
}

KT_TEST(cancelled_writers_finish_their_store) { rk_each_backend(run_cancel); }
