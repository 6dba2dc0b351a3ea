/* keel/histogram.h: a log-linear latency histogram (HDR-style).
 *
 * Values (typically nanoseconds) up to 2^64-1 fall into buckets: below 256
 * one bucket per value; above, each power-of-two range [2^e, 2^(e+1)) is cut
 * into 128 equal buckets. A bucket's width is at most 1/128 of its lower
 * bound, and queries report the bucket's midpoint, so every reported
 * percentile is within 0.4% of a value actually recorded in that bucket
 * (the bound is 1%). Min, max, count and sum are exact. Histograms
 * merge by adding counts. Recording is a few instructions and never allocates.
 */
#ifndef KEEL_HISTOGRAM_H
#define KEEL_HISTOGRAM_H

#include <stdint.h>

#define KL_HIST_SUB_BITS  7 /* 128 buckets per power of two */
#define KL_HIST_SUB_COUNT (1u << KL_HIST_SUB_BITS)
/* Values below 2*SUB_COUNT map to themselves; a value v in [2^e, 2^(e+1)),
 * e > SUB_BITS, maps to (e - SUB_BITS) * SUB_COUNT + (v >> (e - SUB_BITS)),
 * whose last term lies in [SUB_COUNT, 2*SUB_COUNT). */
#define KL_HIST_BUCKETS   ((64 - KL_HIST_SUB_BITS + 1) * KL_HIST_SUB_COUNT)

struct kl_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    unsigned __int128 sum;
    uint64_t buckets[KL_HIST_BUCKETS];
};

/* Reset to empty. */
void kl_hist_init(struct kl_hist *h);

/* Bucket index of a value. */
static inline unsigned kl_hist_bucket(uint64_t v)
{
    if (v < 2 * KL_HIST_SUB_COUNT)
        return (unsigned)v;
    unsigned shift = 63u - (unsigned)__builtin_clzll(v) - KL_HIST_SUB_BITS; /* >= 1 */
    return shift * KL_HIST_SUB_COUNT + (unsigned)(v >> shift);
}

/* Record `n` occurrences of value `v`. */
static inline void kl_hist_record_n(struct kl_hist *h, uint64_t v, uint64_t n)
{
    if (n == 0)
        return;
    h->buckets[kl_hist_bucket(v)] += n;
    if (v < h->min || h->count == 0)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count += n;
    h->sum += (unsigned __int128)v * n;
}

/* Record one value. */
static inline void kl_hist_record(struct kl_hist *h, uint64_t v) { kl_hist_record_n(h, v, 1); }

/* Add every count of `src` to `dst`. */
void kl_hist_merge(struct kl_hist *dst, const struct kl_hist *src);

/* The value at percentile `p` (0..100): the smallest bucket such that at
 * least p% of values are at or below it, reported as its midpoint and clamped
 * to [min, max]. 0 when empty. */
uint64_t kl_hist_percentile(const struct kl_hist *h, double p);

/* Arithmetic mean; 0 when empty. */
double kl_hist_mean(const struct kl_hist *h);

/* Lowest and highest value that fall into bucket `index`. */
void kl_hist_bucket_range(unsigned index, uint64_t *low, uint64_t *high);

#endif /* KEEL_HISTOGRAM_H */
