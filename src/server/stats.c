/* stats.c: the `stats` and `stats settings` reports (see stats.h).
 *
 * One walk per report, in memcached's order, through an emit callback: the
 * protocol side turns each figure into a STAT line, the admin endpoint into
 * a Prometheus sample. Figures memcached has and keel has no machinery for
 * (slab reassignment, LRU crawler, ...) are left out rather than faked.
 */
#define _GNU_SOURCE
#include "stats.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static const char *const counter_names[KEELD_COUNTERS] = {
#define KEELD_COUNTER_NAME(name) #name,
    KEELD_COUNTER_LIST(KEELD_COUNTER_NAME)
#undef KEELD_COUNTER_NAME
};

struct out {
    keeld_stat_emit emit;
    void *sink;
};

static void num(struct out *o, enum keeld_stat_kind kind, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    o->emit(o->sink, kind, name, buf);
}

static void text(struct out *o, const char *name, const char *v)
{
    o->emit(o->sink, KEELD_STAT_INFO, name, v);
}

static void seconds(struct out *o, const char *name, struct timeval tv)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
    o->emit(o->sink, KEELD_STAT_COUNTER, name, buf);
}

/* Per-command latency (latency.h): keel_latency_<class>_count, then _p50_us,
 * _p90_us, _p99_us, _p999_us and _max_us, every class even when empty. */
static void latency(struct out *o, const struct keeld_lat_summary *lat)
{
    for (unsigned c = 0; c < KEELD_LAT_CLASSES; c++) {
        const char *cls = keeld_lat_class_name((enum keeld_lat_class)c);
        const struct keeld_lat_summary *l = &lat[c];
        char name[64], buf[32];
        snprintf(name, sizeof name, "keel_latency_%s_count", cls);
        num(o, KEELD_STAT_COUNTER, name, l->count);
        const struct {
            const char *what;
            double v;
        } fig[] = {{"p50", l->p50_us},
                   {"p90", l->p90_us},
                   {"p99", l->p99_us},
                   {"p999", l->p999_us},
                   {"max", l->max_us}};
        for (size_t i = 0; i < sizeof fig / sizeof fig[0]; i++) {
            snprintf(name, sizeof name, "keel_latency_%s_%s_us", cls, fig[i].what);
            snprintf(buf, sizeof buf, "%.1f", fig[i].v);
            o->emit(o->sink, KEELD_STAT_GAUGE, name, buf);
        }
    }
}

/* Counters from `first` to `last` inclusive, under their own names. */
static void counters(struct out *o, const struct keeld_stats_view *v, enum keeld_counter first,
                     enum keeld_counter last)
{
    for (int c = first; c <= (int)last; c++)
        num(o, KEELD_STAT_COUNTER, counter_names[c], v->counters[c]);
}

/* The engine's figures that memcached reports (in its order) and each
 * engine's own: each a field of keeld_engine_figures, read by offset, so
 * that one table both emits a figure and says whether `stats reset`
 * starts it again. */
struct engine_fig {
    enum keeld_stat_kind kind;
    const char *name;
    size_t off;
};
#define FIG(kind, name, field)                                                                     \
    {                                                                                              \
        kind, name, offsetof(struct keeld_engine_figures, field)                                   \
    }

static const struct engine_fig memcached_figs[] = {
    FIG(KEELD_STAT_COUNTER, "expired_unfetched", expired_unfetched),
    FIG(KEELD_STAT_COUNTER, "evicted_unfetched", evicted_unfetched),
    FIG(KEELD_STAT_COUNTER, "evictions", evictions),
    FIG(KEELD_STAT_COUNTER, "reclaimed", reclaimed),
};

static const struct engine_fig seg_figs[] = {
    FIG(KEELD_STAT_GAUGE, "keel_seg_segments", seg_segments),
    FIG(KEELD_STAT_GAUGE, "keel_seg_free_segments", seg_free_segments),
    /* written into segments in use, live and dead: bytes / this is the
     * share of the written memory that still holds current items */
    FIG(KEELD_STAT_GAUGE, "keel_seg_used_bytes", seg_used_bytes),
    FIG(KEELD_STAT_COUNTER, "keel_seg_evicted_segments", seg_evicted_segments),
    FIG(KEELD_STAT_COUNTER, "keel_seg_expired_segments", seg_expired_segments),
    FIG(KEELD_STAT_COUNTER, "keel_seg_merges", seg_merges),
    FIG(KEELD_STAT_GAUGE, "keel_hash_buckets", hash_buckets),
    FIG(KEELD_STAT_GAUGE, "keel_hash_overflow_used", hash_overflow_used),
    FIG(KEELD_STAT_GAUGE, "keel_hash_overflow_total", hash_overflow_total),
    FIG(KEELD_STAT_COUNTER, "keel_hash_moves", hash_moves),
};

static const struct engine_fig disk_figs[] = {
    FIG(KEELD_STAT_COUNTER, "keel_disk_corrupt", disk_corrupt),
    FIG(KEELD_STAT_COUNTER, "keel_disk_io_errors", disk_io_errors),
    FIG(KEELD_STAT_COUNTER, "keel_disk_no_space", disk_no_space),
    FIG(KEELD_STAT_GAUGE, "keel_disk_files", disk_files),
    FIG(KEELD_STAT_GAUGE, "keel_disk_data_bytes", disk_data_bytes),
    FIG(KEELD_STAT_GAUGE, "keel_disk_dead_bytes", disk_dead_bytes),
    FIG(KEELD_STAT_COUNTER, "keel_disk_compactions", disk_compactions),
    FIG(KEELD_STAT_COUNTER, "keel_disk_group_syncs", disk_group_syncs),
    FIG(KEELD_STAT_GAUGE, "keel_disk_index_bytes", hash_bytes), /* the index */
};

#define FIGS(t) t, sizeof t / sizeof t[0]

static uint64_t fig_get(const struct keeld_engine_figures *f, const struct engine_fig *g)
{
    uint64_t v;
    memcpy(&v, (const char *)f + g->off, sizeof v);
    return v;
}

static void fig_set(struct keeld_engine_figures *f, const struct engine_fig *g, uint64_t v)
{
    memcpy((char *)f + g->off, &v, sizeof v);
}

static void emit_figs(struct out *o, const struct keeld_engine_figures *f,
                      const struct engine_fig *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        num(o, t[i].kind, t[i].name, fig_get(f, &t[i]));
}

static void counters_since(struct keeld_engine_figures *f, const struct keeld_engine_figures *base,
                           const struct engine_fig *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].kind != KEELD_STAT_COUNTER)
            continue;
        uint64_t now = fig_get(f, &t[i]), was = fig_get(base, &t[i]);
        fig_set(f, &t[i], now > was ? now - was : 0);
    }
}

void keeld_engine_counters_since(struct keeld_engine_figures *f,
                                 const struct keeld_engine_figures *base)
{
    counters_since(f, base, FIGS(memcached_figs));
    counters_since(f, base, FIGS(seg_figs));
    counters_since(f, base, FIGS(disk_figs));
}

void keeld_stats_general(const struct keeld_stats_view *v, keeld_stat_emit emit, void *sink)
{
    struct out o = {emit, sink};
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    num(&o, KEELD_STAT_INFO, "pid", (uint64_t)v->pid);
    num(&o, KEELD_STAT_GAUGE, "uptime", v->now_unix - v->started_unix);
    num(&o, KEELD_STAT_GAUGE, "time", v->now_unix);
    text(&o, "version", KEELD_VERSION_STRING);
    num(&o, KEELD_STAT_INFO, "pointer_size", 8 * sizeof(void *));
    seconds(&o, "rusage_user", ru.ru_utime);
    seconds(&o, "rusage_system", ru.ru_stime);
    num(&o, KEELD_STAT_GAUGE, "max_connections", v->opts->max_conns);
    num(&o, KEELD_STAT_GAUGE, "curr_connections", v->curr_connections);
    counters(&o, v, KEELD_C_total_connections, KEELD_C_total_connections);
    counters(&o, v, KEELD_C_rejected_connections, KEELD_C_rejected_connections);
    counters(&o, v, KEELD_C_cmd_get, KEELD_C_bytes_written);
    num(&o, KEELD_STAT_GAUGE, "limit_maxbytes", v->opts->memory_bytes);
    num(&o, KEELD_STAT_GAUGE, "threads", v->opts->threads);
    counters(&o, v, KEELD_C_conn_yields, KEELD_C_conn_yields);
    num(&o, KEELD_STAT_GAUGE, "hash_power_level", v->engine.hash_power_level);
    num(&o, KEELD_STAT_GAUGE, "hash_bytes", v->engine.hash_bytes);
    num(&o, KEELD_STAT_GAUGE, "bytes", v->engine.bytes);
    num(&o, KEELD_STAT_GAUGE, "curr_items", v->engine.curr_items);
    num(&o, KEELD_STAT_COUNTER, "total_items", v->engine.total_items);
    emit_figs(&o, &v->engine, FIGS(memcached_figs));
    /* keel's own */
    text(&o, "keel_engine", keeld_engine_name(v->opts->engine));
    num(&o, KEELD_STAT_COUNTER, "keel_reactor_syscalls", v->reactor_syscalls);
    num(&o, KEELD_STAT_COUNTER, "keel_reactor_iterations", v->reactor_iterations);
    num(&o, KEELD_STAT_COUNTER, "keel_reactor_submissions", v->reactor_submissions);
    latency(&o, v->latency);
    if (v->opts->engine == KEELD_ENGINE_SEG)
        emit_figs(&o, &v->engine, FIGS(seg_figs));
    if (v->opts->engine == KEELD_ENGINE_DISK)
        emit_figs(&o, &v->engine, FIGS(disk_figs));
}

void keeld_stats_settings(const struct keeld_options *s, unsigned verbosity, bool detail_on,
                          keeld_stat_emit emit, void *sink)
{
    struct out o = {emit, sink};
    char listen[KEELD_MAX_LISTEN * KEELD_ADDR_BYTES];
    size_t len = 0;
    listen[0] = '\0';
    for (unsigned i = 0; i < s->listen_count; i++)
        len +=
            (size_t)snprintf(listen + len, sizeof listen - len, "%s%s", i ? "," : "", s->listen[i]);

    num(&o, KEELD_STAT_GAUGE, "maxbytes", s->memory_bytes);
    num(&o, KEELD_STAT_GAUGE, "maxconns", s->max_conns);
    num(&o, KEELD_STAT_INFO, "tcpport", s->port);
    num(&o, KEELD_STAT_INFO, "udpport", 0);
    text(&o, "inter", listen);
    num(&o, KEELD_STAT_GAUGE, "verbosity", verbosity);
    text(&o, "evictions", "on");
    text(&o, "domain_socket", "NULL");
    text(&o, "shutdown_command", s->allow_shutdown ? "yes" : "no");
    num(&o, KEELD_STAT_GAUGE, "num_threads", s->threads);
    char delimiter[2] = {s->prefix_delimiter, '\0'};
    text(&o, "stat_key_prefix", delimiter);
    text(&o, "detail_enabled", detail_on ? "yes" : "no");
    text(&o, "cas_enabled", "yes");
    num(&o, KEELD_STAT_GAUGE, "tcp_backlog", s->backlog);
    text(&o, "binding_protocol", "ascii");
    num(&o, KEELD_STAT_GAUGE, "item_size_max", s->max_item_size);
    num(&o, KEELD_STAT_GAUGE, "hashpower_init", s->hash_power);
    text(&o, "flush_enabled", s->disable_flush_all ? "no" : "yes");
    num(&o, KEELD_STAT_GAUGE, "idle_timeout", s->idle_timeout_s);
    /* keel's own */
    text(&o, "keel_engine", keeld_engine_name(s->engine));
    text(&o, "keel_backend", keeld_backend_name(s->backend));
    text(&o, "keel_listener", keeld_listener_name(s->listener));
    text(&o, "keel_busy_poll", s->busy_poll ? "yes" : "no");
    num(&o, KEELD_STAT_GAUGE, "keel_sched_slice_us", s->sched_slice_us);
    text(&o, "keel_evict", s->evict[0] ? s->evict : "merge");
    num(&o, KEELD_STAT_GAUGE, "keel_seg_size", s->seg_size);
    text(&o, "keel_data_dir", s->data_dir[0] ? s->data_dir : "NULL");
    text(&o, "keel_admin", s->admin[0] ? s->admin : "NULL");
}
