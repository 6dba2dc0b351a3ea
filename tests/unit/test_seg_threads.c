/* Concurrency tests for the seg engine: 2 and 8 threads (on however many
 * cores) share one engine. Counters moved by incr and by gets+cas loops
 * must end exact; random stores, reads, deletes, touches and invalidations
 * on a shared key space, with eviction running, must only ever return whole
 * values that name their key and a version that was written; dumps
 * (lru_crawler metadump) run beside them and list only the test's keys. Run under
 * ThreadSanitizer by `make tsan`. */
#include "storage/engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "seg_kit.h"

#define NCTR  4
#define NKEYS 3000u

struct shared {
    struct kl_engine *e;  /* random values */
    struct kl_engine *ce; /* counters (their own engine: e's tiny table may drop entries) */
    int nthreads;
    int ops;
    bool evicting;
    _Atomic uint32_t issued[NKEYS];
    _Atomic int failures;
    _Atomic uint32_t clock;
    uint64_t incr_done[NCTR], cas_done[NCTR]; /* summed after join */
};

struct worker {
    struct shared *sh;
    int id;
    pthread_t th;
    uint64_t incrs[NCTR], cases[NCTR];
};

static void fail(struct shared *sh, const char *what, const char *key)
{
    if (atomic_fetch_add(&sh->failures, 1) < 5)
        fprintf(stderr, "  concurrency check failed: %s (%s)\n", what, key);
}

/* A returned value must name its key, a version already issued, and carry
 * the bytes of that version. */
static void check_value(struct shared *sh, uint32_t k, const struct kl_item *it, char *scratch)
{
    unsigned rk, rv;
    char key[16];
    snprintf(key, sizeof key, "key%u", k);
    char head[32]; /* values are not NUL-terminated: scan a copy */
    size_t hn = it->vlen < sizeof head - 1 ? it->vlen : sizeof head - 1;
    memcpy(head, it->value, hn);
    head[hn] = 0;
    if (it->vlen < 6 || sscanf(head, "k%u v%u ", &rk, &rv) != 2 || rk != k) {
        fail(sh, "value of another key or torn header", key);
        return;
    }
    if (rv > atomic_load(&sh->issued[k])) {
        fail(sh, "a version never written", key);
        return;
    }
    sk_fill(scratch, it->vlen, k, rv);
    if (memcmp(scratch, it->value, it->vlen) != 0)
        fail(sh, "torn value", key);
}

static void counters(struct worker *w, uint64_t *rng)
{
    struct kl_engine *e = w->sh->ce;
    uint32_t c = (uint32_t)(sk_rand(rng) % NCTR);
    char key[16];
    size_t klen;
    if (sk_rand(rng) & 1) {
        klen = (size_t)snprintf(key, sizeof key, "ctr%u", c);
        uint64_t v;
        if (kl_engine_arith(e, key, klen, true, 1, 0, &v, NULL) == KL_E_OK)
            w->incrs[c]++;
        else
            fail(w->sh, "incr", key);
        return;
    }
    klen = (size_t)snprintf(key, sizeof key, "cas%u", c);
    for (;;) { /* gets, add one, cas; again on EXISTS */
        struct kl_item it;
        if (kl_engine_lookup(e, key, klen, NULL, &it) != KL_E_OK) {
            fail(w->sh, "cas counter missing", key);
            return;
        }
        char num[32];
        uint32_t n = it.vlen < 31 ? it.vlen : 31;
        memcpy(num, it.value, n);
        num[n] = 0;
        uint64_t cas = it.cas;
        kl_engine_release(e, &it);
        snprintf(num, sizeof num, "%llu", strtoull(num, NULL, 10) + 1);
        int r = kl_engine_store(e, KL_CAS, key, klen, num, (uint32_t)strlen(num), 0, 0, cas, NULL);
        if (r == KL_E_STORED) {
            w->cases[c]++;
            return;
        }
        if (r != KL_E_EXISTS) {
            fail(w->sh, "cas result", key);
            return;
        }
    }
}

/* Every line of a dump must name one of the test's keys. */
static void dump_check(void *arg, const struct kl_item_meta *m)
{
    struct shared *sh = arg;
    char key[16];
    unsigned k;
    uint32_t n = m->klen < sizeof key - 1 ? m->klen : sizeof key - 1;
    memcpy(key, m->key, n);
    key[n] = 0;
    if (m->klen >= sizeof key || sscanf(key, "key%u", &k) != 1 || k >= NKEYS || m->size < m->klen)
        fail(sh, "a dump line for no key of the test", key);
}

/* A whole dump, in small parts, while the other threads store and evict. */
static void dump_all(struct shared *sh)
{
    uint64_t cursor = 0;
    int more;
    do
        more = kl_engine_dump(sh->e, &cursor, 8, dump_check, sh);
    while (more == 1);
    if (more != 0)
        fail(sh, "dump result", "-");
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    struct kl_engine *e = sh->e;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
    char *val = malloc(8192), *scratch = malloc(8192);
    for (int i = 0; i < sh->ops; i++) {
        if (w->id == 0 && i % 500 == 0)
            kl_engine_tick(e, atomic_fetch_add(&sh->clock, 1) + 1);
        if (w->id == 1 && i % 2000 == 0)
            dump_all(sh);
        if (!sh->evicting && i % 8 == 0) {
            counters(w, &rng);
            continue;
        }
        uint32_t k = (uint32_t)(sk_rand(&rng) % NKEYS);
        char key[16];
        size_t klen = (size_t)snprintf(key, sizeof key, "key%u", k);
        uint64_t r = sk_rand(&rng) % 100;
        uint32_t now = atomic_load(&sh->clock);
        if (r < 35) {
            uint32_t ver = atomic_fetch_add(&sh->issued[k], 1) + 1;
            uint32_t size = 20 + (uint32_t)(sk_rand(&rng) % (sh->evicting ? 3000 : 200));
            sk_fill(val, size, k, ver);
            uint32_t exp = (r < 5) ? now + 1 + (uint32_t)(sk_rand(&rng) % 20) : 0;
            enum kl_store_mode mode = (r < 30) ? KL_SET : (r < 33 ? KL_ADD : KL_REPLACE);
            int res = kl_engine_store(e, mode, key, klen, val, size, 0, exp, 0, NULL);
            if (res != KL_E_STORED && res != KL_E_NOT_STORED)
                fail(sh, kl_eresult_name(res), key);
        } else if (r < 38) {
            kl_engine_delete(e, key, klen, 0, false, NULL);
        } else if (r < 40) {
            kl_engine_touch(e, key, klen, (r & 1) ? 0 : now + 30);
        } else if (r < 41) {
            kl_engine_delete(e, key, klen, 0, true, NULL);
        } else {
            struct kl_item it;
            if (kl_engine_lookup(e, key, klen, NULL, &it) == KL_E_OK) {
                check_value(sh, k, &it, scratch);
                kl_engine_release(e, &it);
            }
        }
    }
    free(val);
    free(scratch);
    return NULL;
}

static void run_threads(int nthreads, bool evicting, enum kl_evict_policy p)
{
    struct shared *sh = calloc(1, sizeof *sh);
    KT_REQUIRE(sh);
    if (evicting) {
        sh->e = sk_open(p, 1u << 20, 16u << 10);
    } else {
        /* 256 buckets (1792 first slots) for 3000 keys: first buckets are
         * full, so inserts move entries and chain overflow under readers */
        struct kl_engine_opts o = {
            .mem_bytes = 16u << 20, .seg_size = 64u << 10, .hash_power = 8, .now = SK_T0};
        KT_REQUIRE(kl_engine_open(&o, &sh->e) == 0);
    }
    sh->ce = sk_open(p, 4u << 20, 64u << 10);
    KT_REQUIRE(sh->ce);
    KT_REQUIRE(sh->e);
    sh->nthreads = nthreads;
#ifdef KEEL_TSAN
    sh->ops = 15000; /* ThreadSanitizer runs ~10x slower */
#else
    sh->ops = 40000;
#endif
    sh->evicting = evicting;
    atomic_init(&sh->clock, SK_T0);
    for (int c = 0; c < NCTR; c++) {
        char key[16];
        snprintf(key, sizeof key, "ctr%d", c);
        KT_EQ_I(sk_store(sh->ce, KL_SET, key, "0", 0, 0, 0, NULL), KL_E_STORED);
        snprintf(key, sizeof key, "cas%d", c);
        KT_EQ_I(sk_store(sh->ce, KL_SET, key, "0", 0, 0, 0, NULL), KL_E_STORED);
    }
    if (!evicting) {
        /* half the keys first: as the threads store the rest, inserts move
         * entries between buckets while others read */
        char *val = malloc(256);
        KT_REQUIRE(val);
        for (uint32_t k = 0; k < NKEYS; k += 2) {
            char key[16];
            uint32_t ver = atomic_fetch_add(&sh->issued[k], 1) + 1;
            sk_fill(val, 100, k, ver);
            size_t klen = (size_t)snprintf(key, sizeof key, "key%u", k);
            KT_EQ_I(kl_engine_store(sh->e, KL_SET, key, klen, val, 100, 0, 0, 0, NULL),
                    KL_E_STORED);
        }
        free(val);
    }
    struct kl_engine_stats s;
    kl_engine_stats(sh->e, &s);
    uint64_t moves_before = s.hash_moves;
    struct worker w[8];
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){.sh = sh, .id = i};
        KT_REQUIRE(pthread_create(&w[i].th, NULL, run, &w[i]) == 0);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(w[i].th, NULL);
    KT_EQ_I(atomic_load(&sh->failures), 0);
    if (!evicting) {
        for (int c = 0; c < NCTR; c++) {
            uint64_t incrs = 0, cases = 0;
            for (int i = 0; i < nthreads; i++) {
                incrs += w[i].incrs[c];
                cases += w[i].cases[c];
            }
            char key[16], buf[32];
            snprintf(key, sizeof key, "ctr%d", c);
            KT_REQUIRE(sk_get(sh->ce, key, buf, sizeof buf, NULL));
            KT_EQ_U(strtoull(buf, NULL, 10), incrs);
            snprintf(key, sizeof key, "cas%d", c);
            KT_REQUIRE(sk_get(sh->ce, key, buf, sizeof buf, NULL));
            KT_EQ_U(strtoull(buf, NULL, 10), cases);
            KT_CHECK(incrs > 0 && cases > 0);
        }
    }
    kl_engine_stats(sh->e, &s);
    if (evicting)
        KT_CHECK(s.evictions > 0);
    else
        KT_CHECK(s.hash_moves > moves_before); /* moves ran beside the readers */
    KT_CHECK(s.seg_used_bytes <= s.limit_bytes);
    kl_engine_close(sh->e);
    kl_engine_close(sh->ce);
    free(sh);
}

KT_TEST(seg_threads_2_counters_and_values) { run_threads(2, false, KL_EVICT_MERGE); }
KT_TEST(seg_threads_8_counters_and_values) { run_threads(8, false, KL_EVICT_MERGE); }
KT_TEST(seg_threads_2_evicting_merge) { run_threads(2, true, KL_EVICT_MERGE); }
KT_TEST(seg_threads_8_evicting_merge) { run_threads(8, true, KL_EVICT_MERGE); }
KT_TEST(seg_threads_8_evicting_s3fifo) { run_threads(8, true, KL_EVICT_S3FIFO); }
KT_TEST(seg_threads_8_evicting_fifo) { run_threads(8, true, KL_EVICT_FIFO); }
