/* Log-linear histogram (keel/histogram.h). The bucket mapping lives in the
 * header so recording inlines; this file holds the queries. */
#include "keel/histogram.h"

#include <string.h>

#include "keel/assert.h"

void kl_hist_init(struct kl_hist *h) { memset(h, 0, sizeof *h); }

void kl_hist_bucket_range(unsigned index, uint64_t *low, uint64_t *high)
{
    KL_ASSERT(index < KL_HIST_BUCKETS, "bucket %u out of range", index);
    if (index < 2 * KL_HIST_SUB_COUNT) {
        *low = *high = index;
        return;
    }
    unsigned shift = index / KL_HIST_SUB_COUNT - 1;
    uint64_t top = KL_HIST_SUB_COUNT + index % KL_HIST_SUB_COUNT; /* v >> shift */
    *low = top << shift;
    *high = *low + ((UINT64_C(1) << shift) - 1);
}

void kl_hist_merge(struct kl_hist *dst, const struct kl_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < KL_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
}

uint64_t kl_hist_percentile(const struct kl_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p <= 0)
        return h->min;
    if (p >= 100)
        return h->max;
    double exact_rank = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)exact_rank;
    if ((double)rank < exact_rank) /* round up, without libm */
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < KL_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t low, high;
            kl_hist_bucket_range(i, &low, &high);
            uint64_t mid = low + (high - low) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double kl_hist_mean(const struct kl_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
