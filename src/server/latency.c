/* latency.c: keeld's per-command latency histograms (see latency.h). */
#include "latency.h"

#include <stdlib.h>

#include "keel/assert.h"

enum keeld_lat_class keeld_lat_class_of(uint8_t mc_type)
{
    switch (mc_type) {
    case KL_MC_GET:
    case KL_MC_GETS:
    case KL_MC_GAT:
    case KL_MC_GATS: return KEELD_LAT_GET;
    case KL_MC_SET:
    case KL_MC_ADD:
    case KL_MC_REPLACE:
    case KL_MC_APPEND:
    case KL_MC_PREPEND:
    case KL_MC_CAS: return KEELD_LAT_SET;
    case KL_MC_DELETE: return KEELD_LAT_DELETE;
    case KL_MC_INCR:
    case KL_MC_DECR: return KEELD_LAT_ARITH;
    case KL_MC_TOUCH: return KEELD_LAT_TOUCH;
    case KL_MC_MG:
    case KL_MC_MS:
    case KL_MC_MD:
    case KL_MC_MA:
    case KL_MC_MN:
    case KL_MC_ME: return KEELD_LAT_META;
    default: return KEELD_LAT_OTHER;
    }
}

const char *keeld_lat_class_name(enum keeld_lat_class c)
{
    static const char *const names[KEELD_LAT_CLASSES] = {"get",   "set",  "delete", "incr_decr",
                                                         "touch", "meta", "other"};
    KL_ASSERT((unsigned)c < KEELD_LAT_CLASSES, "latency class %d", (int)c);
    return names[c];
}

void keeld_lat_add(struct keeld_lat_counts *sum, const struct keeld_latency *worker)
{
    for (unsigned c = 0; c < KEELD_LAT_CLASSES; c++)
        for (unsigned b = 0; b < KEELD_LAT_BUCKETS; b++)
            sum->b[c][b] += kl_counter_get(&worker->b[c][b]);
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

void keeld_lat_summarize(const struct keeld_lat_counts *sum,
                         const struct keeld_lat_counts *baseline,
                         struct keeld_lat_summary out[KEELD_LAT_CLASSES])
{
    struct kl_hist *h = malloc(sizeof *h);
    for (unsigned c = 0; c < KEELD_LAT_CLASSES; c++) {
        out[c] = (struct keeld_lat_summary){0};
        if (h == NULL)
            continue; /* no memory for the sum: the class reads as empty */
        kl_hist_init(h);
        unsigned first = KEELD_LAT_BUCKETS, last = 0;
        for (unsigned b = 0; b < KEELD_LAT_BUCKETS; b++) {
            uint64_t v = sum->b[c][b];
            uint64_t base = baseline ? baseline->b[c][b] : 0;
            h->buckets[b] = v > base ? v - base : 0;
            h->count += h->buckets[b];
            if (h->buckets[b]) {
                first = b < first ? b : first;
                last = b;
            }
        }
        if (h->count == 0)
            continue;
        uint64_t lo, hi;
        kl_hist_bucket_range(first, &lo, &hi);
        h->min = lo;
        kl_hist_bucket_range(last, &lo, &hi);
        h->max = hi;
        out[c] = (struct keeld_lat_summary){
            .count = h->count,
            .p50_us = us(kl_hist_percentile(h, 50)),
            .p90_us = us(kl_hist_percentile(h, 90)),
            .p99_us = us(kl_hist_percentile(h, 99)),
            .p999_us = us(kl_hist_percentile(h, 99.9)),
            .max_us = us(h->max),
        };
    }
    free(h);
}
