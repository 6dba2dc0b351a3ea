/* stats.h: keeld's statistics, named as memcached names them.
 *
 * Each worker counts into its own block of kl_counter (keel/workers.h): one
 * relaxed add on its own cache lines, no lock, nothing shared on the request
 * path. A report sums the blocks and walks one table that gives every
 * figure its memcached name, its kind and its order, so `stats` over the
 * protocol and /metrics over HTTP say the same thing under the same names.
 * `stats reset` does not write the workers' counters from another thread:
 * it records the sums as a baseline that later reports subtract.
 */
#ifndef KEELD_STATS_H
#define KEELD_STATS_H

#include <stdint.h>
#include <sys/types.h>

#include "latency.h"
#include "options.h"

/* The counters a worker keeps, in memcached's order; X(name). */
#define KEELD_COUNTER_LIST(X)                                                                      \
    X(total_connections)                                                                           \
    X(closed_connections)                                                                          \
    X(rejected_connections)                                                                        \
    X(cmd_get)                                                                                     \
    X(cmd_set)                                                                                     \
    X(cmd_flush)                                                                                   \
    X(cmd_touch)                                                                                   \
    X(cmd_meta)                                                                                    \
    X(get_hits)                                                                                    \
    X(get_misses)                                                                                  \
    X(get_expired)                                                                                 \
    X(get_flushed)                                                                                 \
    X(delete_misses)                                                                               \
    X(delete_hits)                                                                                 \
    X(incr_misses)                                                                                 \
    X(incr_hits)                                                                                   \
    X(decr_misses)                                                                                 \
    X(decr_hits)                                                                                   \
    X(cas_misses)                                                                                  \
    X(cas_hits)                                                                                    \
    X(cas_badval)                                                                                  \
    X(touch_hits)                                                                                  \
    X(touch_misses)                                                                                \
    X(store_too_large)                                                                             \
    X(store_no_memory)                                                                             \
    X(bytes_read)                                                                                  \
    X(bytes_written)                                                                               \
    X(conn_yields)                                                                                 \
    X(total_items)

enum keeld_counter {
#define KEELD_COUNTER_ENUM(name) KEELD_C_##name,
    KEELD_COUNTER_LIST(KEELD_COUNTER_ENUM)
#undef KEELD_COUNTER_ENUM
        KEELD_COUNTERS
};

/* What the engine reports, in memcached's terms (filled by the server from
 * the engine's own statistics). */
struct keeld_engine_figures {
    uint64_t bytes, curr_items, total_items;
    uint64_t evictions, expired_unfetched, evicted_unfetched, reclaimed;
    uint64_t hash_power_level, hash_bytes;
    /* the seg engine's (reported with --engine seg) */
    uint64_t seg_segments, seg_free_segments, seg_used_bytes;
    uint64_t seg_evicted_segments, seg_expired_segments, seg_merges;
    uint64_t hash_buckets, hash_overflow_used, hash_overflow_total, hash_moves;
    /* the disk engine's (reported with --engine disk) */
    uint64_t disk_corrupt, disk_io_errors, disk_no_space, disk_files, disk_data_bytes;
    uint64_t disk_dead_bytes, disk_compactions, disk_group_syncs;
};

/* Subtract base's counters (evictions, merges, disk errors...: what `stats
 * reset` starts again) from f's; the gauges (bytes, items...) stay. A
 * counter below its base (not expected: they only grow) reads 0. */
void keeld_engine_counters_since(struct keeld_engine_figures *f,
                                 const struct keeld_engine_figures *base);

/* Everything a report needs, gathered by the server. */
struct keeld_stats_view {
    const struct keeld_options *opts;
    pid_t pid;
    uint64_t started_unix;             /* wall-clock seconds at start */
    uint64_t now_unix;                 /* wall-clock seconds now */
    uint64_t counters[KEELD_COUNTERS]; /* summed over workers, baseline subtracted */
    uint64_t curr_connections;
    struct keeld_engine_figures engine;
    uint64_t reactor_syscalls, reactor_iterations, reactor_submissions;
    struct keeld_lat_summary latency[KEELD_LAT_CLASSES]; /* since start or `stats reset` */
};

enum keeld_stat_kind {
    KEELD_STAT_COUNTER, /* only grows (until stats reset) */
    KEELD_STAT_GAUGE,   /* goes up and down */
    KEELD_STAT_INFO,    /* text: version, settings that are words */
};

/* Receives one figure of a report. */
typedef void (*keeld_stat_emit)(void *sink, enum keeld_stat_kind kind, const char *name,
                                const char *value);

/* The general report (`stats`): memcached's names and order, then keel's own. */
void keeld_stats_general(const struct keeld_stats_view *v, keeld_stat_emit emit, void *sink);

/* `stats settings`; verbosity and detail_on are the live ones (-v, then the
 * `verbosity` command; -D, then `stats detail on|off`). */
void keeld_stats_settings(const struct keeld_options *o, unsigned verbosity, bool detail_on,
                          keeld_stat_emit emit, void *sink);

/* The version keeld reports ("VERSION x" and `stats`). */
#define KEELD_VERSION_STRING "1.6.18-keel-0.1.0"

#endif
