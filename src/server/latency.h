/* latency.h: keeld's per-command latency, which memcached does not report.
 *
 * What is timed: the server's own time for a command, from the start of the
 * handler call that parsed it (its bytes were in the connection's buffer)
 * to the end of that call, when its reply is queued and the flush follows.
 * Every command of one read gets the time of the whole call: a reply does
 * not leave before the batch's flush. The network and a wait for a free
 * runner are not in it; a disk engine's reads are.
 *
 * Each worker records into its own histograms (keel/histogram.h's bucket
 * layout, capped at about 137 s) with kl_counter_add: no lock and no shared
 * line on the hot path. A report sums every worker's buckets with relaxed
 * loads, subtracts the baseline that `stats reset` took, and reads the
 * percentiles off the sum.
 */
#ifndef KEELD_LATENCY_H
#define KEELD_LATENCY_H

#include <stdint.h>

#include "keel/histogram.h"
#include "keel/memcache.h"
#include "keel/workers.h"

enum keeld_lat_class {
    KEELD_LAT_GET,    /* get gets gat gats */
    KEELD_LAT_SET,    /* set add replace append prepend cas */
    KEELD_LAT_DELETE, /* delete */
    KEELD_LAT_ARITH,  /* incr decr */
    KEELD_LAT_TOUCH,  /* touch */
    KEELD_LAT_META,   /* mg ms md ma mn me */
    KEELD_LAT_OTHER,  /* stats, version, flush_all, verbosity, ... */
    KEELD_LAT_CLASSES
};

/* kl_hist buckets kept: values up to 2^37 ns; longer ones go to the last. */
#define KEELD_LAT_BUCKETS 4096u

/* One worker's histograms; only its thread records. */
struct keeld_latency {
    kl_counter b[KEELD_LAT_CLASSES][KEELD_LAT_BUCKETS];
};

/* Bucket counts read off histograms: a sum over workers, a baseline. */
struct keeld_lat_counts {
    uint64_t b[KEELD_LAT_CLASSES][KEELD_LAT_BUCKETS];
};

/* A class's figures for a report, in microseconds. */
struct keeld_lat_summary {
    uint64_t count;
    double p50_us, p90_us, p99_us, p999_us, max_us;
};

/* The class of a parsed command. */
enum keeld_lat_class keeld_lat_class_of(uint8_t mc_type);

/* "get", "set", ...: the class's name in the report. */
const char *keeld_lat_class_name(enum keeld_lat_class c);

/* Record `n` commands of class `c` that took `ns`; the worker's thread only. */
static inline void keeld_lat_record(struct keeld_latency *l, enum keeld_lat_class c, uint64_t ns,
                                    uint64_t n)
{
    unsigned b = kl_hist_bucket(ns);
    kl_counter_add(&l->b[c][b < KEELD_LAT_BUCKETS ? b : KEELD_LAT_BUCKETS - 1], n);
}

/* Add one worker's histograms to *sum (any thread: relaxed loads). */
void keeld_lat_add(struct keeld_lat_counts *sum, const struct keeld_latency *worker);

/* Figures of each class from summed counts minus a baseline (NULL: none). */
void keeld_lat_summarize(const struct keeld_lat_counts *sum,
                         const struct keeld_lat_counts *baseline,
                         struct keeld_lat_summary out[KEELD_LAT_CLASSES]);

#endif /* KEELD_LATENCY_H */
