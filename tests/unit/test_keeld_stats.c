/* test_keeld_stats: the stats reports carry memcached's names, in its order,
 * then keel's own, among them the per-command latency (latency.h): counts
 * exact, percentiles within the histogram's precision, `stats reset`'s
 * baseline subtracted; the per-prefix table (`stats detail`) counts by the
 * first delimiter and stays bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "latency.h"
#include "prefix.h"
#include "stats.h"

/* memcached 1.6.18's `stats`, in its order (Debian 12). */
static const char memcached_general[] =
    "pid uptime time version libevent pointer_size rusage_user rusage_system max_connections "
    "curr_connections total_connections rejected_connections connection_structures "
    "response_obj_oom response_obj_count response_obj_bytes read_buf_count read_buf_bytes "
    "read_buf_bytes_free read_buf_oom reserved_fds cmd_get cmd_set cmd_flush cmd_touch cmd_meta "
    "get_hits get_misses get_expired get_flushed delete_misses delete_hits incr_misses incr_hits "
    "decr_misses decr_hits cas_misses cas_hits cas_badval touch_hits touch_misses store_too_large "
    "store_no_memory auth_cmds auth_errors bytes_read bytes_written limit_maxbytes accepting_conns "
    "listen_disabled_num time_in_listen_disabled_us threads conn_yields hash_power_level "
    "hash_bytes hash_is_expanding slab_reassign_rescues slab_reassign_chunk_rescues "
    "slab_reassign_evictions_nomem slab_reassign_inline_reclaim slab_reassign_busy_items "
    "slab_reassign_busy_deletes slab_reassign_running slabs_moved lru_crawler_running "
    "lru_crawler_starts lru_maintainer_juggles malloc_fails log_worker_dropped log_worker_written "
    "log_watcher_skipped log_watcher_sent log_watchers unexpected_napi_ids round_robin_fallback "
    "bytes curr_items total_items slab_global_page_pool expired_unfetched evicted_unfetched "
    "evicted_active evictions reclaimed crawler_reclaimed crawler_items_checked lrutail_reflocked "
    "moves_to_cold moves_to_warm moves_within_lru direct_reclaims lru_bumps_dropped maxbytes "
    "maxconns tcpport udpport inter verbosity oldest evictions";

#define COLLECTED_MAX 192

struct collected {
    char names[8192];
    char values[COLLECTED_MAX][32];
    char keys[COLLECTED_MAX][40];
    int n;
};

static void collect(void *sink, enum keeld_stat_kind kind, const char *name, const char *value)
{
    (void)kind;
    struct collected *c = sink;
    strcat(c->names, name);
    strcat(c->names, " ");
    if (c->n < COLLECTED_MAX) {
        snprintf(c->keys[c->n], sizeof c->keys[0], "%s", name);
        snprintf(c->values[c->n++], sizeof c->values[0], "%s", value);
    }
}

static const char *value_of(struct collected *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], name) == 0)
            return c->values[i];
    return NULL;
}

/* Every name of ours that memcached also has comes in memcached's order. */
static int in_memcached_order(const char *ours)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", ours);
    const char *pos = memcached_general;
    for (char *save, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char word[64];
        snprintf(word, sizeof word, " %s ", t);
        char padded[sizeof memcached_general + 2];
        snprintf(padded, sizeof padded, " %s ", memcached_general);
        const char *where = strstr(padded, word);
        if (where == NULL)
            continue; /* keel's own */
        const char *at = memcached_general + (where - padded);
        if (at < pos)
            return 0;
        pos = at;
    }
    return 1;
}

KT_TEST(general_report_has_memcached_names_in_order)
{
    struct keeld_options o;
    keeld_options_defaults(&o, 2);
    struct keeld_stats_view v = {.opts = &o, .pid = 42, .started_unix = 1000, .now_unix = 1010};
    v.counters[KEELD_C_cmd_get] = 7;
    v.counters[KEELD_C_get_hits] = 5;
    v.curr_connections = 3;
    v.engine.curr_items = 9;
    struct collected c = {0};
    keeld_stats_general(&v, collect, &c);
    static const char *const required[] = {"pid",
                                           "uptime",
                                           "time",
                                           "version",
                                           "pointer_size",
                                           "rusage_user",
                                           "rusage_system",
                                           "curr_connections",
                                           "total_connections",
                                           "rejected_connections",
                                           "cmd_get",
                                           "cmd_set",
                                           "cmd_flush",
                                           "cmd_touch",
                                           "cmd_meta",
                                           "get_hits",
                                           "get_misses",
                                           "get_expired",
                                           "get_flushed",
                                           "delete_misses",
                                           "delete_hits",
                                           "incr_misses",
                                           "incr_hits",
                                           "decr_misses",
                                           "decr_hits",
                                           "cas_misses",
                                           "cas_hits",
                                           "cas_badval",
                                           "touch_hits",
                                           "touch_misses",
                                           "bytes_read",
                                           "bytes_written",
                                           "limit_maxbytes",
                                           "threads",
                                           "bytes",
                                           "curr_items",
                                           "total_items",
                                           "evictions",
                                           "expired_unfetched",
                                           "evicted_unfetched"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (value_of(&c, required[i]) == NULL)
            kt_fail(__FILE__, __LINE__, "no %s in: %s", required[i], c.names);
    KT_CHECK(in_memcached_order(c.names));
    KT_CHECK(strcmp(value_of(&c, "uptime"), "10") == 0);
    KT_CHECK(strcmp(value_of(&c, "cmd_get"), "7") == 0);
    KT_CHECK(strcmp(value_of(&c, "get_hits"), "5") == 0);
    KT_CHECK(strcmp(value_of(&c, "curr_connections"), "3") == 0);
    KT_CHECK(strcmp(value_of(&c, "curr_items"), "9") == 0);
    KT_CHECK(strcmp(value_of(&c, "limit_maxbytes"), "67108864") == 0);
    KT_CHECK(strncmp(value_of(&c, "version"), "1.6.18", 6) == 0);
    KT_CHECK(value_of(&c, "closed_connections") == NULL); /* internal, not reported */
}

/* Each engine's own figures, and only its own, after memcached's names. */
KT_TEST(engine_figures_follow_the_engine)
{
    struct keeld_options o;
    keeld_options_defaults(&o, 2);
    struct keeld_stats_view v = {.opts = &o, .pid = 42, .started_unix = 1000, .now_unix = 1010};
    v.engine.seg_segments = 64;
    v.engine.seg_free_segments = 2;
    v.engine.seg_used_bytes = 61 << 20;
    v.engine.seg_merges = 17;
    v.engine.hash_overflow_total = 4096;
    v.engine.disk_files = 3;
    struct collected c = {0};
    keeld_stats_general(&v, collect, &c);
    KT_CHECK(in_memcached_order(c.names));
    KT_REQUIRE(value_of(&c, "keel_seg_segments") != NULL);
    KT_CHECK(strcmp(value_of(&c, "keel_seg_segments"), "64") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_seg_free_segments"), "2") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_seg_used_bytes"), "63963136") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_seg_merges"), "17") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_hash_overflow_total"), "4096") == 0);
    KT_CHECK(value_of(&c, "keel_seg_evicted_segments") != NULL);
    KT_CHECK(value_of(&c, "keel_hash_moves") != NULL);
    KT_CHECK(value_of(&c, "keel_disk_files") == NULL);

    o.engine = KEELD_ENGINE_DISK;
    struct collected d = {0};
    keeld_stats_general(&v, collect, &d);
    KT_REQUIRE(value_of(&d, "keel_disk_files") != NULL);
    KT_CHECK(strcmp(value_of(&d, "keel_disk_files"), "3") == 0);
    KT_CHECK(value_of(&d, "keel_seg_segments") == NULL);
    KT_CHECK(value_of(&d, "keel_hash_moves") == NULL);
}

/* `stats reset`: the engine's counters start again from the baseline, its
 * gauges stay. */
KT_TEST(engine_counters_since_a_reset)
{
    struct keeld_engine_figures now = {.bytes = 500,
                                       .curr_items = 5,
                                       .evictions = 70,
                                       .evicted_unfetched = 60,
                                       .seg_merges = 9,
                                       .seg_segments = 64,
                                       .seg_used_bytes = 4000,
                                       .disk_compactions = 2};
    struct keeld_engine_figures base = {.bytes = 900,
                                        .curr_items = 9,
                                        .evictions = 30,
                                        .evicted_unfetched = 61,
                                        .seg_merges = 9,
                                        .seg_segments = 64,
                                        .seg_used_bytes = 7000};
    keeld_engine_counters_since(&now, &base);
    KT_EQ_U(now.evictions, 40);
    KT_EQ_U(now.evicted_unfetched, 0); /* below its base: 0, not a wrap */
    KT_EQ_U(now.seg_merges, 0);
    KT_EQ_U(now.disk_compactions, 2);
    KT_EQ_U(now.bytes, 500); /* gauges untouched */
    KT_EQ_U(now.curr_items, 5);
    KT_EQ_U(now.seg_segments, 64);
    KT_EQ_U(now.seg_used_bytes, 4000);
}

KT_TEST(order_check_catches_a_swap)
{
    KT_CHECK(in_memcached_order("pid uptime keel_x cmd_get get_hits"));
    KT_CHECK(!in_memcached_order("pid get_hits cmd_get"));
}

KT_TEST(settings_report)
{
    struct keeld_options o;
    keeld_options_defaults(&o, 2);
    o.listen_count = 2;
    snprintf(o.listen[0], sizeof o.listen[0], "127.0.0.1");
    snprintf(o.listen[1], sizeof o.listen[1], "::1");
    o.allow_shutdown = true;
    struct collected c = {0};
    keeld_stats_settings(&o, 3, false, collect, &c);
    KT_CHECK(strcmp(value_of(&c, "maxbytes"), "67108864") == 0);
    KT_CHECK(strcmp(value_of(&c, "maxconns"), "1024") == 0);
    KT_CHECK(strcmp(value_of(&c, "tcpport"), "11211") == 0);
    KT_CHECK(strcmp(value_of(&c, "verbosity"), "3") == 0);
    KT_CHECK(strcmp(value_of(&c, "inter"), "127.0.0.1,::1") == 0);
    KT_CHECK(strcmp(value_of(&c, "item_size_max"), "1048576") == 0);
    KT_CHECK(strcmp(value_of(&c, "shutdown_command"), "yes") == 0);
    KT_CHECK(strcmp(value_of(&c, "num_threads"), "2") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_engine"), "seg") == 0);
}

/* ---- per-command latency ------------------------------------------------------ */

static bool near(double got, double want) { return got >= want * 0.99 && got <= want * 1.01; }

KT_TEST(latency_sums_workers_and_reads_percentiles)
{
    struct keeld_latency *w[2] = {calloc(1, sizeof *w[0]), calloc(1, sizeof *w[1])};
    struct keeld_lat_counts *sum = calloc(1, sizeof *sum), *base = calloc(1, sizeof *base);
    KT_REQUIRE(w[0] && w[1] && sum && base);
    /* gets: 900 at 10 us on one worker, 100 at 1 ms on the other */
    keeld_lat_record(w[0], KEELD_LAT_GET, 10000, 900);
    keeld_lat_record(w[1], KEELD_LAT_GET, 1000000, 100);
    keeld_lat_record(w[1], KEELD_LAT_SET, 50000, 3);
    keeld_lat_record(w[0], KEELD_LAT_OTHER, 300ull * 1000000000ull, 1); /* past the cap */
    keeld_lat_add(sum, w[0]);
    keeld_lat_add(sum, w[1]);
    struct keeld_lat_summary l[KEELD_LAT_CLASSES];
    keeld_lat_summarize(sum, NULL, l);
    KT_EQ_U(l[KEELD_LAT_GET].count, 1000);
    KT_CHECK(near(l[KEELD_LAT_GET].p50_us, 10.0));
    KT_CHECK(near(l[KEELD_LAT_GET].p90_us, 10.0));
    KT_CHECK(near(l[KEELD_LAT_GET].p99_us, 1000.0));
    KT_CHECK(near(l[KEELD_LAT_GET].max_us, 1000.0));
    KT_EQ_U(l[KEELD_LAT_SET].count, 3);
    KT_CHECK(near(l[KEELD_LAT_SET].p50_us, 50.0));
    KT_EQ_U(l[KEELD_LAT_DELETE].count, 0);
    KT_CHECK(l[KEELD_LAT_DELETE].max_us == 0.0);
    KT_EQ_U(l[KEELD_LAT_OTHER].count, 1);
    KT_CHECK(l[KEELD_LAT_OTHER].max_us > 130e6); /* counted in the last bucket, 2^37 ns */

    /* `stats reset`: the sum now is the baseline; later records alone count */
    *base = *sum;
    keeld_lat_record(w[0], KEELD_LAT_GET, 2000, 5);
    memset(sum, 0, sizeof *sum);
    keeld_lat_add(sum, w[0]);
    keeld_lat_add(sum, w[1]);
    keeld_lat_summarize(sum, base, l);
    KT_EQ_U(l[KEELD_LAT_GET].count, 5);
    KT_CHECK(near(l[KEELD_LAT_GET].p50_us, 2.0));
    KT_CHECK(near(l[KEELD_LAT_GET].max_us, 2.0));
    KT_EQ_U(l[KEELD_LAT_SET].count, 0);
    free(w[0]);
    free(w[1]);
    free(sum);
    free(base);
}

KT_TEST(latency_classes_of_commands)
{
    KT_EQ_I(keeld_lat_class_of(KL_MC_GETS), KEELD_LAT_GET);
    KT_EQ_I(keeld_lat_class_of(KL_MC_GAT), KEELD_LAT_GET);
    KT_EQ_I(keeld_lat_class_of(KL_MC_CAS), KEELD_LAT_SET);
    KT_EQ_I(keeld_lat_class_of(KL_MC_PREPEND), KEELD_LAT_SET);
    KT_EQ_I(keeld_lat_class_of(KL_MC_DELETE), KEELD_LAT_DELETE);
    KT_EQ_I(keeld_lat_class_of(KL_MC_DECR), KEELD_LAT_ARITH);
    KT_EQ_I(keeld_lat_class_of(KL_MC_TOUCH), KEELD_LAT_TOUCH);
    KT_EQ_I(keeld_lat_class_of(KL_MC_MG), KEELD_LAT_META);
    KT_EQ_I(keeld_lat_class_of(KL_MC_ME), KEELD_LAT_META);
    KT_EQ_I(keeld_lat_class_of(KL_MC_STATS), KEELD_LAT_OTHER);
}

KT_TEST(general_report_ends_with_each_class_latency)
{
    struct keeld_options o;
    keeld_options_defaults(&o, 2);
    struct keeld_stats_view v = {.opts = &o};
    v.latency[KEELD_LAT_GET] = (struct keeld_lat_summary){
        .count = 12, .p50_us = 1.5, .p90_us = 2, .p99_us = 30, .p999_us = 40, .max_us = 41.25};
    struct collected c = {0};
    keeld_stats_general(&v, collect, &c);
    KT_CHECK(strcmp(value_of(&c, "keel_latency_get_count"), "12") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_latency_get_p50_us"), "1.5") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_latency_get_p999_us"), "40.0") == 0);
    KT_CHECK(strcmp(value_of(&c, "keel_latency_get_max_us"), "41.2") == 0);
    for (unsigned k = 0; k < KEELD_LAT_CLASSES; k++) {
        char name[64];
        snprintf(name, sizeof name, "keel_latency_%s_p99_us",
                 keeld_lat_class_name((enum keeld_lat_class)k));
        if (value_of(&c, name) == NULL)
            kt_fail(__FILE__, __LINE__, "no %s", name);
    }
    KT_CHECK(strcmp(value_of(&c, "keel_latency_meta_count"), "0") == 0);
}

/* ---- per-prefix stats (prefix.h) ---- */

static bool report_has(struct keeld_prefixes *p, const char *line)
{
    struct keeld_text t = {0};
    uint32_t cursor = 0;
    while (keeld_prefixes_report(p, &cursor, 100, &t))
        ;
    bool found = t.buf && strstr(t.buf, line) != NULL;
    keeld_text_free(&t);
    return found;
}

KT_TEST(prefixes_count_by_the_first_delimiter_and_stay_bounded)
{
    static struct keeld_prefixes p;
    keeld_prefixes_init(&p, ':', false);
    KT_CHECK(!keeld_prefixes_on(&p));
    keeld_prefixes_switch(&p, true);
    KT_CHECK(keeld_prefixes_on(&p));
    keeld_prefix_count(&p, "user:1:name", 11, KEELD_PREFIX_GET, true);
    keeld_prefix_count(&p, "user:2", 6, KEELD_PREFIX_GET, false);
    keeld_prefix_count(&p, "user:2", 6, KEELD_PREFIX_SET, false);
    keeld_prefix_count(&p, "user:2", 6, KEELD_PREFIX_DEL, false);
    keeld_prefix_count(&p, ":x", 2, KEELD_PREFIX_GET, false);
    keeld_prefix_count(&p, "plain", 5, KEELD_PREFIX_GET, true); /* no delimiter: not counted */
    KT_CHECK(report_has(&p, "PREFIX user get 2 hit 1 set 1 del 1\r\n"));
    KT_CHECK(report_has(&p, "PREFIX  get 1 hit 0 set 0 del 0\r\n"));
    KT_CHECK(!report_has(&p, "plain"));
    KT_EQ_U(p.count, 2);
    /* the table holds KEELD_PREFIXES_MAX prefixes; keys of new ones go uncounted */
    char key[32];
    for (int i = 0; i < KEELD_PREFIXES_MAX + 10; i++) {
        int n = snprintf(key, sizeof key, "p%d:k", i);
        keeld_prefix_count(&p, key, (size_t)n, KEELD_PREFIX_SET, false);
    }
    KT_EQ_U(p.count, KEELD_PREFIXES_MAX);
    KT_CHECK(report_has(&p, "PREFIX user get 2 hit 1 set 1 del 1\r\n")); /* old ones still count */
    keeld_prefixes_clear(&p);
    KT_EQ_U(p.count, 0);
    KT_CHECK(!report_has(&p, "PREFIX"));
    keeld_prefixes_destroy(&p);
}
