/* Concurrency tests for the disk engine: threads store, read, delete and
 * count on a shared key space while a compactor rewrites sealed files; every
 * value read must be whole and belong to its key, counters moved by incr
 * must end exact, and after a reopen every key must hold its last value. */
#define _GNU_SOURCE
#include "storage/disk/disk_internal.h"
#include "storage/engine.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk_kit.h"
#include "kt.h"

#define NKEYS    400u
#define NTHREADS 4
#define OPS      4000

static char dir[256];

struct shared {
    struct kl_engine *e;
    _Atomic int failures;
    _Atomic bool stop;
    _Atomic uint64_t incrs;
    _Atomic int compactions;
    pthread_mutex_t key_lock[NKEYS]; /* owner of a key's last value (for the final check) */
    uint32_t last[NKEYS];            /* last version stored, 0: deleted */
};

static void fill(char *v, uint32_t len, uint32_t key, uint32_t ver)
{
    int n = snprintf(v, len, "k%u v%u ", key, ver);
    for (uint32_t i = (uint32_t)n; i < len; i++)
        v[i] = (char)('a' + (key * 7 + ver + i) % 26);
}

static uint32_t len_of(uint32_t key, uint32_t ver) { return 24 + (key * 13 + ver * 7) % 900; }

static bool value_ok(const struct kl_item *it, uint32_t key)
{
    char head[32];
    size_t hn = it->vlen < 31 ? it->vlen : 31;
    memcpy(head, it->value, hn);
    head[hn] = 0;
    unsigned k, ver;
    if (sscanf(head, "k%u v%u ", &k, &ver) != 2 || k != key || it->vlen != len_of(key, ver))
        return false;
    char want[1024];
    fill(want, it->vlen, key, ver);
    return memcmp(want, it->value, it->vlen) == 0;
}

static void *worker(void *arg)
{
    struct shared *sh = arg;
    uint64_t rng = (uint64_t)pthread_self() | 1;
    char v[1024], key[16];
    for (int op = 0; op < OPS; op++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint32_t k = (uint32_t)(rng % NKEYS), what = (uint32_t)(rng >> 32) % 10;
        snprintf(key, sizeof key, "key%u", k);
        if (what < 4) {
            pthread_mutex_lock(&sh->key_lock[k]);
            uint32_t ver = sh->last[k] + 1 + (uint32_t)(rng >> 48) % 3;
            fill(v, len_of(k, ver), k, ver);
            int r =
                kl_engine_store(sh->e, KL_SET, key, strlen(key), v, len_of(k, ver), 0, 0, 0, NULL);
            if (r == KL_E_STORED)
                sh->last[k] = ver;
            else
                atomic_fetch_add(&sh->failures, 1);
            pthread_mutex_unlock(&sh->key_lock[k]);
        } else if (what < 5) {
            pthread_mutex_lock(&sh->key_lock[k]);
            kl_engine_delete(sh->e, key, strlen(key), 0, false, NULL);
            sh->last[k] = 0;
            pthread_mutex_unlock(&sh->key_lock[k]);
        } else if (what < 6) {
            uint64_t val;
            int r = kl_engine_arith(sh->e, "counter", 7, true, 1, 0, &val, NULL);
            if (r == KL_E_OK)
                atomic_fetch_add(&sh->incrs, 1);
            else
                atomic_fetch_add(&sh->failures, 1);
        } else {
            struct kl_item it;
            int r = kl_engine_lookup(sh->e, key, strlen(key), NULL, &it);
            if (r == KL_E_OK) {
                if (!value_ok(&it, k))
                    atomic_fetch_add(&sh->failures, 1);
                kl_engine_release(sh->e, &it);
            } else if (r != KL_E_NOT_FOUND) {
                atomic_fetch_add(&sh->failures, 1);
            }
        }
    }
    return NULL;
}

static void *compactor(void *arg)
{
    struct shared *sh = arg;
    while (!atomic_load(&sh->stop)) {
        atomic_fetch_add(&sh->compactions, disk_compact(disk_of(sh->e), 0.9));
        usleep(2000);
    }
    return NULL;
}

static struct kl_engine *open_it(void)
{
    struct kl_engine_opts o = {.engine = "disk",
                               .data_dir = dir,
                               .sync = KL_SYNC_NONE,
                               .file_bytes = 64 << 10,
                               .item_max = 16384,
                               .compact_pct = 100,
                               .now = 1000};
    struct kl_engine *e = NULL;
    KT_EQ_I(kl_engine_open(&o, &e), 0);
    return e;
}

KT_TEST(threads_and_compaction_race)
{
    snprintf(dir, sizeof dir, "/tmp/keel-disk-threads-XXXXXX");
    KT_REQUIRE(mkdtemp(dir) != NULL);
    static struct shared sh;
    memset(&sh, 0, sizeof sh);
    for (uint32_t i = 0; i < NKEYS; i++)
        pthread_mutex_init(&sh.key_lock[i], NULL);
    sh.e = open_it();
    KT_EQ_I(kl_engine_store(sh.e, KL_SET, "counter", 7, "0", 1, 0, 0, 0, NULL), KL_E_STORED);
    pthread_t th[NTHREADS], ct;
    pthread_create(&ct, NULL, compactor, &sh);
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, worker, &sh);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&sh.stop, true);
    pthread_join(ct, NULL);
    KT_EQ_I(atomic_load(&sh.failures), 0);
    KT_CHECK(atomic_load(&sh.compactions) > 0);
    struct kl_item it;
    KT_EQ_I(kl_engine_lookup(sh.e, "counter", 7, NULL, &it), KL_E_OK);
    char num[24] = {0};
    memcpy(num, it.value, it.vlen < 23 ? it.vlen : 23);
    kl_engine_release(sh.e, &it);
    KT_EQ_U(strtoull(num, NULL, 10), atomic_load(&sh.incrs));
    /* after a reopen (checkpoint and compacted files), every key holds its last value */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            kl_engine_close(sh.e);
            sh.e = open_it();
        }
        int bad = 0;
        for (uint32_t k = 0; k < NKEYS; k++) {
            char key[16];
            snprintf(key, sizeof key, "key%u", k);
            int r = kl_engine_lookup(sh.e, key, strlen(key), NULL, &it);
            if (sh.last[k] == 0) {
                bad += r != KL_E_NOT_FOUND;
                if (r == KL_E_OK)
                    kl_engine_release(sh.e, &it);
                continue;
            }
            if (r != KL_E_OK) {
                bad++;
                continue;
            }
            bad += !value_ok(&it, k) || it.vlen != len_of(k, sh.last[k]);
            kl_engine_release(sh.e, &it);
        }
        KT_EQ_I(bad, 0);
    }
    kl_engine_close(sh.e);
    dk_rmdir(dir);
}
