/* test_keeld_stats: the stats reports carry memcached's names, in its order. */
#include <stdio.h>
#include <string.h>

#include "kt.h"
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

struct collected {
    char names[4096];
    char values[64][32];
    char keys[64][40];
    int n;
};

static void collect(void *sink, enum keeld_stat_kind kind, const char *name, const char *value)
{
    (void)kind;
    struct collected *c = sink;
    strcat(c->names, name);
    strcat(c->names, " ");
    if (c->n < 64) {
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
    keeld_stats_settings(&o, 3, collect, &c);
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
