/* Tests for the seg engine's operations (storage/engine.h) with a clock
 * driven by hand: every store mode, CAS, expiry to the second, flush with a
 * delay, touch and get-and-touch, append and prepend, incr/decr, delete,
 * meta invalidation and the meta bits, limits and statistics. */
#include "storage/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kt.h"
#include "seg_kit.h"

#define MEM (4u << 20)
#define SEG (64u << 10)

static struct kl_engine *eng(void) { return sk_open(KL_EVICT_MERGE, MEM, SEG); }

KT_TEST(seg_open_rejects_bad_options)
{
    struct kl_engine *e;
    struct kl_engine_opts o = {.mem_bytes = MEM, .seg_size = 3000};
    KT_EQ_I(kl_engine_open(&o, &e), -EINVAL);
    o.seg_size = 16u << 20;
    KT_EQ_I(kl_engine_open(&o, &e), -EINVAL);
    o = (struct kl_engine_opts){.mem_bytes = 64 << 10, .seg_size = 64 << 10};
    KT_EQ_I(kl_engine_open(&o, &e), -EINVAL); /* fewer than 4 segments */
    o = (struct kl_engine_opts){.engine = "disk?"};
    KT_EQ_I(kl_engine_open(&o, &e), -EINVAL);
    enum kl_evict_policy p;
    KT_EQ_I(kl_evict_policy_parse("s3fifo", &p), 0);
    KT_EQ_I(p, KL_EVICT_S3FIFO);
    KT_EQ_I(kl_evict_policy_parse("lru", &p), -EINVAL);
    KT_EQ_STR(kl_evict_policy_name(KL_EVICT_CTE), "cte");
    KT_EQ_STR(kl_eresult_name(KL_E_EXISTS), "EXISTS");
}

KT_TEST(seg_set_get_delete)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    struct kl_item it;
    uint64_t cas = 0;
    KT_CHECK(!sk_get(e, "k", buf, sizeof buf, NULL));
    KT_EQ_I(sk_store(e, KL_SET, "k", "hello", 0xdeadbeef, 0, 0, &cas), KL_E_STORED);
    KT_CHECK(cas != 0);
    KT_REQUIRE(sk_get(e, "k", buf, sizeof buf, &it));
    KT_EQ_STR(buf, "hello");
    KT_EQ_U(it.flags, 0xdeadbeef);
    KT_EQ_U(it.cas, cas);
    KT_EQ_I(it.ttl_left, -1);
    KT_EQ_U(it.exptime, 0);
    KT_EQ_I(sk_store(e, KL_SET, "k", "", 0, 0, 0, NULL), KL_E_STORED); /* empty value */
    KT_REQUIRE(sk_get(e, "k", buf, sizeof buf, &it));
    KT_EQ_U(it.vlen, 0);
    KT_EQ_U(it.flags, 0);
    KT_EQ_I(kl_engine_delete(e, "k", 1, 0, false, NULL), KL_E_OK);
    KT_CHECK(!sk_get(e, "k", buf, sizeof buf, NULL));
    KT_EQ_I(kl_engine_delete(e, "k", 1, 0, false, NULL), KL_E_NOT_FOUND);
    struct kl_engine_stats s;
    kl_engine_stats(e, &s);
    KT_EQ_U(s.items, 0);
    KT_EQ_U(s.bytes, 0);
    kl_engine_close(e);
}

KT_TEST(seg_store_modes)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    KT_EQ_I(sk_store(e, KL_REPLACE, "a", "1", 0, 0, 0, NULL), KL_E_NOT_STORED);
    KT_EQ_I(sk_store(e, KL_ADD, "a", "1", 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_ADD, "a", "2", 0, 0, 0, NULL), KL_E_NOT_STORED);
    KT_REQUIRE(sk_get(e, "a", buf, sizeof buf, NULL));
    KT_EQ_STR(buf, "1");
    KT_EQ_I(sk_store(e, KL_REPLACE, "a", "3", 0, 0, 0, NULL), KL_E_STORED);
    KT_REQUIRE(sk_get(e, "a", buf, sizeof buf, NULL));
    KT_EQ_STR(buf, "3");
    KT_EQ_I(sk_store(e, KL_APPEND, "b", "x", 0, 0, 0, NULL), KL_E_NOT_STORED);
    KT_EQ_I(sk_store(e, KL_PREPEND, "b", "x", 0, 0, 0, NULL), KL_E_NOT_STORED);
    KT_CHECK(!sk_get(e, "b", buf, sizeof buf, NULL));
    kl_engine_close(e);
}

KT_TEST(seg_cas_is_exact_per_item)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    uint64_t ca, cb, c2;
    KT_EQ_I(sk_store(e, KL_SET, "a", "1", 0, 0, 0, &ca), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_SET, "b", "1", 0, 0, 0, &cb), KL_E_STORED);
    KT_CHECK(ca != cb);
    KT_EQ_I(sk_store(e, KL_CAS, "nope", "1", 0, 0, ca, NULL), KL_E_NOT_FOUND);
    /* another key changing does not disturb a's CAS */
    for (int i = 0; i < 100; i++)
        KT_EQ_I(sk_store(e, KL_SET, "b", "2", 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_CAS, "a", "2", 0, 0, ca + 1, NULL), KL_E_EXISTS);
    KT_EQ_I(sk_store(e, KL_CAS, "a", "2", 0, 0, ca, &c2), KL_E_STORED);
    KT_CHECK(c2 > ca); /* CAS values only grow */
    KT_EQ_I(sk_store(e, KL_CAS, "a", "3", 0, 0, ca, NULL), KL_E_EXISTS);
    KT_REQUIRE(sk_get(e, "a", buf, sizeof buf, NULL));
    KT_EQ_STR(buf, "2");
    /* delete with CAS */
    KT_EQ_I(kl_engine_delete(e, "a", 1, ca, false, NULL), KL_E_EXISTS);
    KT_EQ_I(kl_engine_delete(e, "a", 1, c2, false, NULL), KL_E_OK);
    KT_EQ_I(sk_store(e, KL_CAS, "a", "3", 0, 0, c2, NULL), KL_E_NOT_FOUND);
    kl_engine_close(e);
}

KT_TEST(seg_expiry_at_the_exact_second)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    struct kl_item it;
    KT_EQ_I(sk_store(e, KL_SET, "short", "v", 0, SK_T0 + 10, 0, NULL), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_SET, "long", "v", 0, SK_T0 + 100000, 0, NULL), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_SET, "never", "v", 0, 0, 0, NULL), KL_E_STORED);
    KT_REQUIRE(sk_get(e, "short", buf, sizeof buf, &it));
    KT_EQ_I(it.ttl_left, 10);
    KT_EQ_U(it.exptime, SK_T0 + 10);
    kl_engine_tick(e, SK_T0 + 9);
    KT_REQUIRE(sk_get(e, "short", buf, sizeof buf, &it));
    KT_EQ_I(it.ttl_left, 1);
    kl_engine_tick(e, SK_T0 + 10);
    KT_CHECK(!sk_get(e, "short", buf, sizeof buf, NULL));
    KT_CHECK(sk_get(e, "long", buf, sizeof buf, NULL));
    /* a store with an expired exptime removes the old value */
    KT_EQ_I(sk_store(e, KL_SET, "never", "x", 0, KL_EXPTIME_EXPIRED, 0, NULL), KL_E_STORED);
    KT_CHECK(!sk_get(e, "never", buf, sizeof buf, NULL));
    KT_EQ_I(sk_store(e, KL_SET, "past", "x", 0, SK_T0, 0, NULL), KL_E_STORED);
    KT_CHECK(!sk_get(e, "past", buf, sizeof buf, NULL));
    /* add on an expired key stores */
    KT_EQ_I(sk_store(e, KL_ADD, "short", "again", 0, 0, 0, NULL), KL_E_STORED);
    KT_REQUIRE(sk_get(e, "short", buf, sizeof buf, NULL));
    KT_EQ_STR(buf, "again");
    kl_engine_tick(e, SK_T0 + 99999);
    KT_CHECK(sk_get(e, "long", buf, sizeof buf, NULL));
    kl_engine_tick(e, SK_T0 + 100000);
    KT_CHECK(!sk_get(e, "long", buf, sizeof buf, NULL));
    struct kl_engine_stats s;
    kl_engine_stats(e, &s);
    KT_EQ_U(s.items, 1); /* "short" again, without expiry */
    KT_CHECK(s.seg_expirations >= 2);
    KT_CHECK(s.expirations >= 2);
    KT_CHECK(s.expired_unfetched == 0);
    kl_engine_close(e);
}

KT_TEST(seg_sweep_frees_expired_segments_and_counts_unfetched)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char key[32], val[1000];
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = 0;
    for (int i = 0; i < 500; i++) { /* ~8 segments with a 60 s TTL */
        snprintf(key, sizeof key, "k%d", i);
        KT_EQ_I(sk_store(e, KL_SET, key, val, 0, SK_T0 + 60, 0, NULL), KL_E_STORED);
    }
    struct kl_engine_stats s0, s1;
    kl_engine_stats(e, &s0);
    KT_EQ_U(s0.items, 500);
    kl_engine_tick(e, SK_T0 + 61);
    kl_engine_stats(e, &s1);
    KT_EQ_U(s1.items, 0);
    KT_EQ_U(s1.expirations, 500);
    KT_EQ_U(s1.expired_unfetched, 500);
    KT_EQ_U(s1.segs_free, s1.segs_total); /* every segment back */
    kl_engine_close(e);
}

KT_TEST(seg_flush_now_and_with_delay)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    KT_EQ_I(sk_store(e, KL_SET, "a", "1", 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_SET, "b", "1", 0, SK_T0 + 5000, 0, NULL), KL_E_STORED);
    kl_engine_flush(e, 0);
    KT_CHECK(!sk_get(e, "a", buf, sizeof buf, NULL));
    KT_CHECK(!sk_get(e, "b", buf, sizeof buf, NULL));
    KT_EQ_I(sk_store(e, KL_SET, "a", "2", 0, 0, 0, NULL), KL_E_STORED);
    KT_REQUIRE(sk_get(e, "a", buf, sizeof buf, NULL));
    KT_EQ_STR(buf, "2");
    kl_engine_flush(e, 10);
    kl_engine_tick(e, SK_T0 + 9);
    KT_EQ_I(sk_store(e, KL_SET, "c", "3", 0, 0, 0, NULL), KL_E_STORED);
    KT_CHECK(sk_get(e, "a", buf, sizeof buf, NULL));
    KT_CHECK(sk_get(e, "c", buf, sizeof buf, NULL));
    kl_engine_tick(e, SK_T0 + 10);
    KT_CHECK(!sk_get(e, "a", buf, sizeof buf, NULL));
    KT_CHECK(!sk_get(e, "c", buf, sizeof buf, NULL));
    KT_EQ_I(sk_store(e, KL_SET, "d", "4", 0, 0, 0, NULL), KL_E_STORED);
    KT_CHECK(sk_get(e, "d", buf, sizeof buf, NULL));
    struct kl_engine_stats s;
    kl_engine_stats(e, &s);
    KT_EQ_U(s.items, 1);
    kl_engine_close(e);
}

KT_TEST(seg_touch_and_gat_keep_cas)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    struct kl_item it;
    uint64_t cas;
    KT_EQ_I(sk_store(e, KL_SET, "t", "v", 7, SK_T0 + 10, 0, &cas), KL_E_STORED);
    KT_EQ_I(kl_engine_touch(e, "t", 1, SK_T0 + 100), KL_E_OK);
    KT_EQ_I(kl_engine_touch(e, "x", 1, SK_T0 + 100), KL_E_NOT_FOUND);
    kl_engine_tick(e, SK_T0 + 50);
    KT_REQUIRE(sk_get(e, "t", buf, sizeof buf, &it));
    KT_EQ_STR(buf, "v");
    KT_EQ_U(it.flags, 7);
    KT_EQ_U(it.cas, cas);
    KT_EQ_I(it.ttl_left, 50);
    /* get-and-touch: to never expire */
    struct kl_lookup_opts o = {.flags = KL_LOOKUP_TOUCH, .exptime = 0};
    KT_EQ_I(kl_engine_lookup(e, "t", 1, &o, &it), KL_E_OK);
    KT_EQ_I(it.ttl_left, -1);
    KT_EQ_U(it.cas, cas);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "zz", 2, &o, &it), KL_E_NOT_FOUND);
    kl_engine_tick(e, SK_T0 + 1000);
    KT_CHECK(sk_get(e, "t", buf, sizeof buf, NULL));
    KT_EQ_I(sk_store(e, KL_CAS, "t", "w", 0, 0, cas, NULL), KL_E_STORED);
    /* touch into the past deletes */
    KT_EQ_I(kl_engine_touch(e, "t", 1, KL_EXPTIME_EXPIRED), KL_E_OK);
    KT_CHECK(!sk_get(e, "t", buf, sizeof buf, NULL));
    kl_engine_close(e);
}

KT_TEST(seg_append_prepend_keep_flags_and_exptime)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    struct kl_item it;
    uint64_t c1, c2;
    KT_EQ_I(sk_store(e, KL_SET, "s", "mid", 42, SK_T0 + 30, 0, &c1), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_APPEND, "s", "-end", 1, 0, 0, &c2), KL_E_STORED);
    KT_CHECK(c2 != c1);
    KT_EQ_I(sk_store(e, KL_PREPEND, "s", "start-", 2, 0, 0, NULL), KL_E_STORED);
    KT_REQUIRE(sk_get(e, "s", buf, sizeof buf, &it));
    KT_EQ_STR(buf, "start-mid-end");
    KT_EQ_U(it.flags, 42);
    KT_EQ_U(it.exptime, SK_T0 + 30);
    /* an append that would be too large */
    static char big[40000];
    memset(big, 'b', sizeof big - 1);
    KT_EQ_I(sk_store(e, KL_SET, "big", big, 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(sk_store(e, KL_APPEND, "big", big, 0, 0, 0, NULL), KL_E_TOO_LARGE);
    kl_engine_close(e);
}

KT_TEST(seg_incr_decr)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64];
    uint64_t v = 0, c1, c2;
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 1, 0, &v, NULL), KL_E_NOT_FOUND);
    KT_EQ_I(sk_store(e, KL_SET, "n", "99", 5, 0, 0, &c1), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 1, 0, &v, &c2), KL_E_OK);
    KT_EQ_U(v, 100);
    KT_CHECK(c2 != c1);
    struct kl_item it;
    KT_REQUIRE(sk_get(e, "n", buf, sizeof buf, &it));
    KT_EQ_STR(buf, "100");
    KT_EQ_U(it.flags, 5);
    KT_EQ_I(kl_engine_arith(e, "n", 1, false, 30, 0, &v, NULL), KL_E_OK);
    KT_EQ_U(v, 70);
    KT_EQ_I(kl_engine_arith(e, "n", 1, false, 1000, 0, &v, NULL), KL_E_OK);
    KT_EQ_U(v, 0); /* decr stops at 0 */
    KT_EQ_I(sk_store(e, KL_SET, "n", "18446744073709551615", 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 2, 0, &v, NULL), KL_E_OK);
    KT_EQ_U(v, 1); /* incr wraps at 2^64 */
    KT_EQ_I(sk_store(e, KL_SET, "n", "18446744073709551616", 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 1, 0, &v, NULL), KL_E_NON_NUMERIC);
    const char *bad[] = {"abc", "", "-1", "12a", " 1", "123456789012345678901"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        KT_EQ_I(sk_store(e, KL_SET, "n", bad[i], 0, 0, 0, NULL), KL_E_STORED);
        KT_EQ_I(kl_engine_arith(e, "n", 1, false, 1, 0, &v, NULL), KL_E_NON_NUMERIC);
    }
    KT_EQ_I(sk_store(e, KL_SET, "n", "007", 0, 0, 0, &c1), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 1, c1 + 1, &v, NULL), KL_E_EXISTS);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 1, c1, &v, NULL), KL_E_OK);
    KT_EQ_U(v, 8);
    KT_REQUIRE(sk_get(e, "n", buf, sizeof buf, NULL));
    KT_EQ_STR(buf, "8");
    kl_engine_close(e);
}

KT_TEST(seg_meta_invalidate_fetched_and_win)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    struct kl_item it;
    uint64_t c1, c2;
    KT_EQ_I(sk_store(e, KL_SET, "m", "v", 0, SK_T0 + 100, 0, &c1), KL_E_STORED);
    struct kl_lookup_opts nobump = {.flags = KL_LOOKUP_NOBUMP};
    KT_EQ_I(kl_engine_lookup(e, "m", 1, &nobump, &it), KL_E_OK);
    KT_EQ_U(it.meta, 0);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "m", 1, NULL, &it), KL_E_OK);
    KT_EQ_U(it.meta, 0); /* not fetched before */
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "m", 1, NULL, &it), KL_E_OK);
    KT_EQ_U(it.meta, KL_META_FETCHED);
    kl_engine_release(e, &it);
    /* recache: ttl_left (100) under 200 wins once */
    struct kl_lookup_opts rc = {.flags = KL_LOOKUP_META, .recache_ttl = 200};
    KT_EQ_I(kl_engine_lookup(e, "m", 1, &rc, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_WIN);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "m", 1, &rc, &it), KL_E_OK);
    KT_CHECK(!(it.meta & KL_META_WIN));
    KT_CHECK(it.meta & KL_META_WON);
    kl_engine_release(e, &it);
    /* invalidate: stays, stale, new CAS, a new win */
    KT_EQ_I(kl_engine_delete(e, "m", 1, c1 + 7, true, &c2), KL_E_EXISTS);
    KT_EQ_I(kl_engine_delete(e, "m", 1, 0, true, &c2), KL_E_OK);
    KT_CHECK(c2 != c1);
    KT_EQ_I(kl_engine_lookup(e, "m", 1, NULL, &it), KL_E_OK); /* a classic get: no token */
    KT_CHECK(it.meta & KL_META_STALE);
    KT_CHECK(!(it.meta & (KL_META_WIN | KL_META_WON)));
    kl_engine_release(e, &it);
    struct kl_lookup_opts mg = {.flags = KL_LOOKUP_META};
    KT_EQ_I(kl_engine_lookup(e, "m", 1, &mg, &it), KL_E_OK);
    KT_EQ_U(it.cas, c2);
    KT_CHECK(it.meta & KL_META_STALE);
    KT_CHECK(it.meta & KL_META_WIN);
    KT_CHECK(it.meta & KL_META_FETCHED); /* invalidation keeps "fetched" (memcached) */
    KT_EQ_U(it.exptime, SK_T0 + 100);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "m", 1, &mg, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_STALE);
    KT_CHECK(it.meta & KL_META_WON);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_delete(e, "zz", 2, 0, true, NULL), KL_E_NOT_FOUND);
    /* a store clears the stale state */
    KT_EQ_I(sk_store(e, KL_SET, "m", "fresh", 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_lookup(e, "m", 1, NULL, &it), KL_E_OK);
    KT_EQ_U(it.meta, 0);
    kl_engine_release(e, &it);
    kl_engine_close(e);
}

/* memcached's meta semantics that keeld's differential test caught: the
 * recache token, once sent, shows as Z to every later reader (not only to
 * those asking R); a vivified item is won by its creator (KL_LOOKUP_WIN);
 * touch and incr keep an item's fetched and token state, as memcached's
 * in-place updates do. */
KT_TEST(seg_meta_token_and_state_survive_updates)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    struct kl_item it;
    uint64_t cas, value;
    KT_EQ_I(sk_store(e, KL_ADD, "v", "", 0, SK_T0 + 30, 0, NULL), KL_E_STORED);
    struct kl_lookup_opts win = {.flags = KL_LOOKUP_WIN};
    KT_EQ_I(kl_engine_lookup(e, "v", 1, &win, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_WIN);
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_lookup(e, "v", 1, NULL, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_WON); /* a plain get sees the token went out */
    KT_CHECK(!(it.meta & KL_META_WIN));
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_touch(e, "v", 1, SK_T0 + 3600), KL_E_OK);
    KT_EQ_I(kl_engine_lookup(e, "v", 1, NULL, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_WON); /* still, after a touch */
    KT_CHECK(it.meta & KL_META_FETCHED);
    kl_engine_release(e, &it);

    KT_EQ_I(sk_store(e, KL_SET, "n", "41", 0, 0, 0, &cas), KL_E_STORED);
    KT_EQ_I(kl_engine_lookup(e, "n", 1, NULL, &it), KL_E_OK); /* fetched from now on */
    kl_engine_release(e, &it);
    KT_EQ_I(kl_engine_arith(e, "n", 1, true, 1, 0, &value, &cas), KL_E_OK);
    KT_EQ_U(value, 42);
    struct kl_lookup_opts nobump = {.flags = KL_LOOKUP_NOBUMP};
    KT_EQ_I(kl_engine_lookup(e, "n", 1, &nobump, &it), KL_E_OK);
    KT_CHECK(it.meta & KL_META_FETCHED); /* incr kept it */
    kl_engine_release(e, &it);

    KT_EQ_I(sk_store(e, KL_SET, "w", "word", 0, 0, 0, &cas), KL_E_STORED);
    /* as memcached's ma: a wrong CAS is EX before the value is read as a number */
    KT_EQ_I(kl_engine_arith(e, "w", 1, true, 1, cas + 1, &value, NULL), KL_E_EXISTS);
    KT_EQ_I(kl_engine_arith(e, "w", 1, true, 1, cas, &value, NULL), KL_E_NON_NUMERIC);
    /* but an empty value is not a number before anything else (memcached's do_add_delta) */
    KT_EQ_I(sk_store(e, KL_SET, "z", "", 0, 0, 0, &cas), KL_E_STORED);
    KT_EQ_I(kl_engine_arith(e, "z", 1, true, 1, cas + 1, &value, NULL), KL_E_NON_NUMERIC);
    kl_engine_close(e);
}

KT_TEST(seg_limits_and_reservations)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    char buf[64], key[300];
    memset(key, 'k', sizeof key);
    struct kl_store st;
    KT_EQ_I(kl_engine_reserve(e, key, 0, 1, 0, 0, &st), KL_E_BAD_KEY);
    KT_EQ_I(kl_engine_reserve(e, key, 251, 1, 0, 0, &st), KL_E_BAD_KEY);
    KT_EQ_I(kl_engine_reserve(e, key, 250, 1, 0, 0, &st), 0);
    kl_engine_abort(e, &st);
    KT_EQ_I(kl_engine_reserve(e, "x", 1, SEG, 0, 0, &st), KL_E_TOO_LARGE);
    KT_EQ_I(kl_engine_reserve(e, "x", 1, SEG - 16, 0, 0, &st), 0); /* fits a segment */
    memset(st.value, 'x', st.vlen);
    KT_EQ_I(kl_engine_commit(e, &st, KL_SET, 0, NULL), KL_E_STORED);
    /* an aborted store leaves the old value */
    KT_EQ_I(sk_store(e, KL_SET, "a", "old", 0, 0, 0, NULL), KL_E_STORED);
    KT_EQ_I(kl_engine_reserve(e, "a", 1, 3, 0, 0, &st), 0);
    memcpy(st.value, "new", 3);
    kl_engine_abort(e, &st);
    KT_REQUIRE(sk_get(e, "a", buf, sizeof buf, NULL));
    KT_EQ_STR(buf, "old");
    kl_engine_close(e);
    /* item_max below the segment size */
    struct kl_engine_opts o = {.mem_bytes = MEM, .seg_size = SEG, .item_max = 1024, .now = SK_T0};
    KT_REQUIRE(kl_engine_open(&o, &e) == 0);
    KT_EQ_I(kl_engine_reserve(e, "x", 1, 2000, 0, 0, &st), KL_E_TOO_LARGE);
    kl_engine_close(e);
}

KT_TEST(seg_pinned_item_survives_eviction)
{
    struct kl_engine *e = sk_open(KL_EVICT_FIFO, 8 * SEG, SEG);
    KT_REQUIRE(e);
    char key[32], val[2000];
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = 0;
    KT_EQ_I(sk_store(e, KL_SET, "pinned", "still here", 0, 0, 0, NULL), KL_E_STORED);
    struct kl_item it;
    KT_REQUIRE(kl_engine_lookup(e, "pinned", 6, NULL, &it) == KL_E_OK);
    for (int i = 0; i < 2000; i++) { /* 60 segments' worth through 8 */
        snprintf(key, sizeof key, "k%d", i);
        KT_EQ_I(sk_store(e, KL_SET, key, val, 0, 0, 0, NULL), KL_E_STORED);
    }
    KT_CHECK(memcmp(it.value, "still here", 10) == 0); /* the pin kept the bytes */
    kl_engine_release(e, &it);
    struct kl_engine_stats s;
    kl_engine_stats(e, &s);
    KT_CHECK(s.evictions > 1000);
    KT_CHECK(s.evicted_unfetched > 1000);
    KT_EQ_U(s.segs_total, 8);
    kl_engine_close(e);
}

/* ---- the dump (lru_crawler metadump) ---- */

#define DUMP_KEYS 500u

struct dump_seen {
    uint8_t times[DUMP_KEYS];
    uint64_t cas[DUMP_KEYS];
    bool fetched[DUMP_KEYS];
    uint32_t exptime[DUMP_KEYS];
    uint32_t others; /* lines for keys not stored by the test */
};

static void dump_collect(void *arg, const struct kl_item_meta *m)
{
    struct dump_seen *d = arg;
    char key[32];
    unsigned k;
    if (m->klen >= sizeof key) {
        d->others++;
        return;
    }
    memcpy(key, m->key, m->klen);
    key[m->klen] = 0;
    if (sscanf(key, "key%u", &k) != 1 || k >= DUMP_KEYS) {
        d->others++;
        return;
    }
    d->times[k]++;
    d->cas[k] = m->cas;
    d->fetched[k] = m->fetched;
    d->exptime[k] = m->exptime;
}

KT_TEST(seg_dump_lists_live_items_in_parts)
{
    struct kl_engine *e = eng();
    KT_REQUIRE(e);
    static uint64_t cas[DUMP_KEYS];
    char key[32], buf[64];
    for (uint32_t k = 0; k < DUMP_KEYS; k++) {
        snprintf(key, sizeof key, "key%u", k);
        /* every third key expires at +5 s, a few others at +7 s: both in
         * one TTL chain's segment, which the sweep at +6 s keeps */
        uint32_t exptime = k % 3 == 0 ? SK_T0 + 5 : k % 7 == 1 ? SK_T0 + 7 : 0;
        KT_EQ_I(sk_store(e, KL_SET, key, "value", 0, exptime, 0, &cas[k]), KL_E_STORED);
        if (k % 5 == 0)
            KT_REQUIRE(sk_get(e, key, buf, sizeof buf, NULL));
    }
    kl_engine_tick(e, SK_T0 + 6); /* every third key has expired, in a live segment */
    static struct dump_seen d;
    memset(&d, 0, sizeof d);
    uint64_t cursor = 0;
    int calls = 0, more;
    do {
        more = kl_engine_dump(e, &cursor, 4, dump_collect, &d);
        calls++;
        KT_REQUIRE(more == 0 || more == 1);
    } while (more == 1 && calls < 100000);
    KT_EQ_I(more, 0);
    KT_CHECK(calls > 1); /* the walk came in parts */
    KT_EQ_U(d.others, 0);
    for (uint32_t k = 0; k < DUMP_KEYS; k++) {
        if (k % 3 == 0) {
            KT_EQ_U(d.times[k], 0); /* expired: not listed */
            continue;
        }
        KT_EQ_U(d.times[k], 1);
        KT_EQ_U(d.cas[k], cas[k]);
        KT_EQ_U(d.exptime[k], k % 7 == 1 ? SK_T0 + 7 : 0);
        KT_EQ_I(d.fetched[k], k % 5 == 0);
    }
    /* a finished cursor stays finished */
    more = kl_engine_dump(e, &cursor, 4, dump_collect, &d);
    KT_EQ_I(more, 0);
    kl_engine_close(e);
}
