/* Eviction tests for the seg engine: under each policy, write ten times the
 * engine's memory in items of mixed sizes and TTLs, reading and deleting
 * keys in between, and check against a reference model that every value
 * returned is the last one stored for its key (same length, same bytes, not
 * expired, same CAS as seen before), that every store succeeds, and that
 * memory stays bounded (segments, hash overflow, resident size). */
#include "storage/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "seg_kit.h"

#define MEM   (2u << 20)
#define SEG   (64u << 10)
#define NKEYS 6000u

struct model {
    uint32_t ver;     /* last version stored, 0 = none (or deleted) */
    uint32_t exptime; /* of that version */
    uint32_t size;
    uint64_t cas; /* CAS seen for that version, 0 = not seen yet */
};

static uint32_t pick_size(uint64_t *rng)
{
    uint64_t r = sk_rand(rng) % 100;
    if (r < 89)
        return 40 + (uint32_t)(sk_rand(rng) % 460);
    if (r < 99)
        return 1000 + (uint32_t)(sk_rand(rng) % 7000);
    return 20000 + (uint32_t)(sk_rand(rng) % 20000);
}

static uint32_t pick_exptime(uint64_t *rng, uint32_t now)
{
    static const uint32_t ttl[] = {0, 0, 0, 0, 5, 60, 600, 5000, 200000};
    uint32_t t = ttl[sk_rand(rng) % (sizeof ttl / sizeof ttl[0])];
    return t ? now + t : 0;
}

/* A value: a header naming key and version, then bytes derived from both. */

/* Skewed key choice: a few keys much more popular than the rest. */
static uint32_t pick_key(uint64_t *rng)
{
    double u = (double)(sk_rand(rng) % 1000000) / 1000000.0;
    return (uint32_t)(u * u * u * NKEYS);
}

static void run_policy(enum kl_evict_policy p)
{
    struct kl_engine *e = sk_open(p, MEM, SEG);
    KT_REQUIRE(e);
    struct model *m = calloc(NKEYS, sizeof *m);
    char *val = malloc(64 << 10), *got = malloc(64 << 10);
    KT_REQUIRE(m && val && got);
    uint64_t rng = 0x1234567 + (uint64_t)p;
    uint32_t now = SK_T0, ver = 0;
    uint64_t written = 0, gets = 0, hits = 0, ops = 0;
    long rss_warm = 0;
    int bad = 0;
    while (written < 10ull * MEM && bad < 5) {
        ops++;
        if (ops % 200 == 0)
            kl_engine_tick(e, ++now);
        if (rss_warm == 0 && written > 2ull * MEM)
            rss_warm = sk_resident_kib();
        uint32_t k = pick_key(&rng);
        char key[16];
        size_t klen = (size_t)snprintf(key, sizeof key, "key%u", k);
        uint64_t r = sk_rand(&rng) % 100;
        if (r < 45) {
            uint32_t size = pick_size(&rng), exp = pick_exptime(&rng, now);
            sk_fill(val, size, k, ++ver);
            uint64_t cas = 0;
            int res = kl_engine_store(e, KL_SET, key, klen, val, size, k, exp, 0, &cas);
            if (res != KL_E_STORED) {
                kt_fail(__FILE__, __LINE__, "%s: set %s: %s", kl_evict_policy_name(p), key,
                        kl_eresult_name(res));
                bad++;
                continue;
            }
            m[k] = (struct model){ver, exp, size, cas};
            written += size + klen;
        } else if (r < 48) {
            int res = kl_engine_delete(e, key, klen, 0, false, NULL);
            if (res == KL_E_OK && m[k].ver == 0) {
                kt_fail(__FILE__, __LINE__, "deleted a key never stored");
                bad++;
            }
            m[k].ver = 0;
        } else {
            gets++;
            struct kl_item it;
            if (kl_engine_lookup(e, key, klen, NULL, &it) != KL_E_OK)
                continue;
            hits++;
            struct model *x = &m[k];
            bool live = x->ver != 0 && (x->exptime == 0 || x->exptime > now);
            sk_fill(got, x->size, k, x->ver);
            if (!live || it.vlen != x->size || memcmp(it.value, got, it.vlen) != 0 ||
                it.flags != k || it.exptime != x->exptime || (x->cas && it.cas != x->cas)) {
                kt_fail(__FILE__, __LINE__,
                        "%s: %s at %u: got %.20s (len %u, cas %llu), model v%u len %u exp %u "
                        "live %d cas %llu",
                        kl_evict_policy_name(p), key, now, it.value, it.vlen,
                        (unsigned long long)it.cas, x->ver, x->size, x->exptime, live,
                        (unsigned long long)x->cas);
                bad++;
            }
            x->cas = it.cas;
            kl_engine_release(e, &it);
        }
    }
    struct kl_engine_stats s;
    kl_engine_stats(e, &s);
    long rss_end = sk_resident_kib();
    printf("  %-6s ops %llu hit %.1f%% items %llu evictions %llu seg_evictions %llu merges %llu "
           "expirations %llu overflow %llu/%llu rss +%ld KiB\n",
           kl_evict_policy_name(p), (unsigned long long)ops, 100.0 * (double)hits / (double)gets,
           (unsigned long long)s.items, (unsigned long long)s.evictions,
           (unsigned long long)s.seg_evictions, (unsigned long long)s.seg_merges,
           (unsigned long long)s.expirations, (unsigned long long)s.hash_overflow_used,
           (unsigned long long)s.hash_overflow_total, rss_end - rss_warm);
    KT_EQ_U(s.segs_total, MEM / SEG);
    KT_CHECK(s.seg_used_bytes <= s.limit_bytes);
    KT_CHECK(s.bytes <= s.limit_bytes);
    KT_CHECK(s.evictions > 0);
    KT_CHECK(s.items <= NKEYS);
    KT_CHECK(hits * 10 > gets); /* it keeps serving: over 10% hits */
    KT_CHECK(rss_end - rss_warm < 1024);
    if (p == KL_EVICT_MERGE)
        KT_CHECK(s.seg_merges > 0);
    free(m);
    free(val);
    free(got);
    kl_engine_close(e);
}

KT_TEST(seg_evict_merge) { run_policy(KL_EVICT_MERGE); }
KT_TEST(seg_evict_fifo) { run_policy(KL_EVICT_FIFO); }
KT_TEST(seg_evict_cte) { run_policy(KL_EVICT_CTE); }
KT_TEST(seg_evict_random) { run_policy(KL_EVICT_RANDOM); }
KT_TEST(seg_evict_s3fifo) { run_policy(KL_EVICT_S3FIFO); }

/* Overwrites of a small key space, never read: memory fills with dead copies,
 * and the default policy (merge) must compact them without dropping a live
 * key (it once dropped every item not read since written, and split its room
 * evenly over mostly dead sources). s3fifo is left out on purpose: dropping
 * items never read again from its small queue is what S3-FIFO is. */
KT_TEST(seg_overwrites_never_lose_live_keys)
{
    static const enum kl_evict_policy policies[] = {KL_EVICT_MERGE};
    for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
        struct kl_engine *e = sk_open(policies[p], 1 << 20, 64 << 10); /* 16 segments */
        KT_REQUIRE(e);
        char v[1024], got[1100];
        uint32_t last[100] = {0};
        uint64_t rnd = 7;
        /* keys 0-49 are written once, first (they sit in the oldest segments);
         * keys 50-99 are overwritten again and again after them */
        for (uint32_t i = 0; i < 20000; i++) { /* ~20 MB through 1 MiB, 100 KB live */
            uint32_t k = i < 50 ? i : 50 + (uint32_t)(sk_rand(&rnd) % 50);
            char key[16];
            snprintf(key, sizeof key, "key%u", k);
            sk_fill(v, 1000, k, i);
            v[1000] = '\0';
            KT_REQUIRE(sk_store(e, KL_SET, key, v, 0, 0, 0, NULL) == KL_E_STORED);
            last[k] = i;
        }
        uint32_t lost = 0;
        for (uint32_t k = 0; k < 100; k++) {
            char key[16];
            snprintf(key, sizeof key, "key%u", k);
            sk_fill(v, 1000, k, last[k]);
            v[1000] = '\0';
            if (!sk_get(e, key, got, sizeof got, NULL) || strcmp(got, v) != 0)
                lost++;
        }
        if (lost)
            kt_fail(__FILE__, __LINE__, "%s: %u of 100 live keys lost or wrong",
                    kl_evict_policy_name(policies[p]), lost);
        kl_engine_close(e);
    }
}

/* Random overwrites of keys whose live bytes fill 40% of memory: segments
 * are about 40% live when the evictor meets them, so two or more fit in one
 * and merge must reclaim the dead copies without evicting a live key (a
 * merge of 4 into 1 evicted 60% of the live bytes it met). */
KT_TEST(seg_merge_compacts_before_it_evicts)
{
    enum { NK = 1600, VL = 1000 };
    struct kl_engine *e = sk_open(KL_EVICT_MERGE, 4 << 20, 64 << 10); /* 64 segments */
    KT_REQUIRE(e);
    char v[VL + 1], got[VL + 100], key[16];
    uint32_t *last = calloc(NK, sizeof *last);
    KT_REQUIRE(last);
    uint64_t rnd = 11;
    for (uint32_t i = 0; i < 40000; i++) { /* ~40 MB through 4 MiB */
        uint32_t k = i < NK ? i : (uint32_t)(sk_rand(&rnd) % NK);
        snprintf(key, sizeof key, "key%u", k);
        sk_fill(v, VL, k, i);
        v[VL] = '\0';
        KT_REQUIRE(sk_store(e, KL_SET, key, v, 0, 0, 0, NULL) == KL_E_STORED);
        last[k] = i;
    }
    uint32_t lost = 0;
    for (uint32_t k = 0; k < NK; k++) {
        snprintf(key, sizeof key, "key%u", k);
        sk_fill(v, VL, k, last[k]);
        v[VL] = '\0';
        if (!sk_get(e, key, got, sizeof got, NULL) || strcmp(got, v) != 0)
            lost++;
    }
    struct kl_engine_stats s;
    kl_engine_stats(e, &s);
    printf("# %u keys: %u lost, %llu evictions, %llu merges\n", NK, lost,
           (unsigned long long)s.evictions, (unsigned long long)s.seg_merges);
    KT_EQ_U(lost, 0);
    KT_EQ_U(s.evictions, 0);
    KT_CHECK(s.seg_merges > 0);
    free(last);
    kl_engine_close(e);
}

/* A value of 100-1000 bytes, the size fixed per key (a C string). */
static void fill(char *v, uint32_t k, uint32_t ver) /* 100-1000 bytes, fixed per key */
{
    uint32_t size = 100 + k * 7919 % 901;
    sk_fill(v, size, k, ver);
    v[size] = '\0';
}

/* Skewed reads and overwrites over twice what fits (workload 4 of
 * vs_memcached in small): the hot keys' overwrites leave their old copies
 * dead in every segment, and merge must keep memory full of live items
 * rather than of dead copies, and keep the keys read most. Segcache's merge
 * of 4 segments into 1 evicted live items while a third of the segments'
 * bytes were dead copies: 63% of memory live, 84% of reads hit here (now
 * 82% and 92%). */
KT_TEST(seg_merge_keeps_memory_live_under_hot_overwrites)
{
    enum { NK = 8000, MEMB = 4 << 20 };
    struct kl_engine *e = sk_open(KL_EVICT_MERGE, MEMB, 64 << 10); /* 64 segments */
    KT_REQUIRE(e);
    char v[1100], got[1200], key[16];
    uint64_t rnd = 5;
    uint32_t now = SK_T0, ver = 0;
    for (uint32_t k = 0; k < NK; k++) { /* every key once: ~8 MB through 4 MiB */
        snprintf(key, sizeof key, "key%u", k);
        fill(v, k, ++ver);
        KT_REQUIRE(sk_store(e, KL_SET, key, v, 0, 0, 0, NULL) == KL_E_STORED);
    }
    uint64_t gets = 0, hits = 0;
    for (uint32_t i = 0; i < 400000; i++) {
        if (i % 2000 == 0)
            kl_engine_tick(e, ++now);
        double u = (double)(sk_rand(&rnd) % 1000000) / 1000000.0;
        uint32_t k = (uint32_t)(u * u * u * u * NK); /* skewed: key 0 the hottest */
        snprintf(key, sizeof key, "key%u", k);
        if (sk_rand(&rnd) % 10 == 0) {
            fill(v, k, ++ver);
            KT_REQUIRE(sk_store(e, KL_SET, key, v, 0, 0, 0, NULL) == KL_E_STORED);
        } else if (i >= 300000) {
            gets++;
            hits += sk_get(e, key, got, sizeof got, NULL);
        } else {
            sk_get(e, key, got, sizeof got, NULL);
        }
    }
    struct kl_engine_stats s;
    kl_engine_stats(e, &s);
    double live = (double)s.bytes / (double)s.limit_bytes, hit = (double)hits / (double)gets;
    printf("# %llu items, live bytes %.0f%% of memory (%.0f%% written), hit ratio %.3f\n",
           (unsigned long long)s.items, 100 * live, 100.0 * (double)s.seg_used_bytes / MEMB, hit);
    KT_CHECK(live >= 0.75);
    KT_CHECK(hit >= 0.88);
    kl_engine_close(e);
}
