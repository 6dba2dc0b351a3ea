/* Tests for keel/histogram.h: the bucket mapping is continuous and covers
 * 64 bits, percentiles are within 1% of the exact ones on several
 * distributions, and merging equals recording everything in one histogram. */
#include "keel/histogram.h"

#include <math.h>
#include <stdlib.h>

#include "kt.h"

static struct kl_hist h1, h2, h3;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

KT_TEST(hist_buckets_are_contiguous)
{
    uint64_t expect_low = 0;
    for (unsigned i = 0; i < KL_HIST_BUCKETS; i++) {
        uint64_t low, high;
        kl_hist_bucket_range(i, &low, &high);
        if (low != expect_low || high < low) {
            kt_fail(__FILE__, __LINE__, "bucket %u is [%llu, %llu], expected low %llu", i,
                    (unsigned long long)low, (unsigned long long)high,
                    (unsigned long long)expect_low);
            return;
        }
        if (kl_hist_bucket(low) != i || kl_hist_bucket(high) != i) {
            kt_fail(__FILE__, __LINE__, "bucket %u does not map back", i);
            return;
        }
        /* relative width bound: width <= low / 128 (exact buckets have width 1) */
        if (low >= 256 && (high - low + 1) * 128 > low) {
            kt_fail(__FILE__, __LINE__, "bucket %u too wide", i);
            return;
        }
        expect_low = high + 1;
    }
    KT_EQ_U(expect_low, 0); /* the last bucket ends at UINT64_MAX and wraps */
    KT_EQ_U(kl_hist_bucket(UINT64_MAX), KL_HIST_BUCKETS - 1);
}

static void check_percentiles(uint64_t (*gen)(void), const char *what)
{
    enum { N = 200000 };
    static uint64_t values[N];
    kl_hist_init(&h1);
    for (int i = 0; i < N; i++) {
        values[i] = gen();
        kl_hist_record(&h1, values[i]);
    }
    qsort(values, N, sizeof values[0], cmp_u64);
    const double ps[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        size_t rank = (size_t)ceil(ps[i] / 100.0 * N);
        uint64_t exact = values[rank == 0 ? 0 : rank - 1];
        uint64_t got = kl_hist_percentile(&h1, ps[i]);
        double err = exact ? fabs((double)got - (double)exact) / (double)exact : (double)got;
        if (err > 0.01)
            kt_fail(__FILE__, __LINE__, "%s p%g: got %llu, exact %llu (%.3f%%)", what, ps[i],
                    (unsigned long long)got, (unsigned long long)exact, err * 100);
    }
    KT_EQ_U(h1.count, N);
    KT_EQ_U(h1.min, values[0]);
    KT_EQ_U(h1.max, values[N - 1]);
}

static uint64_t gen_uniform(void) { return 1000 + rng() % 1000000; }
static uint64_t gen_small(void) { return rng() % 300; }
static uint64_t gen_lognormal(void)
{
    double u1 = ((double)(rng() >> 11) + 1) / 9007199254740993.0;
    double u2 = ((double)(rng() >> 11) + 1) / 9007199254740993.0;
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
    return (uint64_t)exp(10 + 2 * z);
}
static uint64_t gen_huge(void) { return rng() | (UINT64_C(1) << 63); }

KT_TEST(hist_percentiles_uniform) { check_percentiles(gen_uniform, "uniform"); }
KT_TEST(hist_percentiles_small_exact) { check_percentiles(gen_small, "small"); }
KT_TEST(hist_percentiles_lognormal) { check_percentiles(gen_lognormal, "lognormal"); }
KT_TEST(hist_percentiles_huge_values) { check_percentiles(gen_huge, "huge"); }

KT_TEST(hist_merge_equals_single)
{
    kl_hist_init(&h1);
    kl_hist_init(&h2);
    kl_hist_init(&h3);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = gen_lognormal();
        kl_hist_record(i % 3 ? &h1 : &h2, v);
        kl_hist_record(&h3, v);
    }
    kl_hist_merge(&h1, &h2);
    KT_EQ_U(h1.count, h3.count);
    KT_EQ_U(h1.min, h3.min);
    KT_EQ_U(h1.max, h3.max);
    KT_CHECK(h1.sum == h3.sum);
    KT_CHECK(memcmp(h1.buckets, h3.buckets, sizeof h1.buckets) == 0);
    KT_EQ_U(kl_hist_percentile(&h1, 99), kl_hist_percentile(&h3, 99));
}

KT_TEST(hist_empty_and_record_n)
{
    kl_hist_init(&h1);
    KT_EQ_U(kl_hist_percentile(&h1, 50), 0);
    KT_CHECK(kl_hist_mean(&h1) == 0.0);
    kl_hist_record_n(&h1, 100, 3);
    kl_hist_record_n(&h1, 400, 1);
    kl_hist_record_n(&h1, 5, 0); /* no-op */
    KT_EQ_U(h1.count, 4);
    KT_EQ_U(h1.min, 100);
    KT_CHECK(fabs(kl_hist_mean(&h1) - 175.0) < 1e-9);
    KT_EQ_U(kl_hist_percentile(&h1, 75), 100);
    uint64_t p100 = kl_hist_percentile(&h1, 100);
    KT_EQ_U(p100, 400);
    /* merging an empty histogram changes nothing */
    kl_hist_init(&h2);
    kl_hist_merge(&h1, &h2);
    KT_EQ_U(h1.count, 4);
    KT_EQ_U(h1.min, 100);
}
