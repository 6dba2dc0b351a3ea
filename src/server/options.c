/* options.c: keeld's command line (see options.h).
 *
 * One table of long options serves getopt_long; `-o a=1,b` hands each
 * NAME[=VALUE] to the same setter the long options use, so --evict=fifo and
 * -o evict=fifo cannot drift apart. Numbers are parsed strictly (memcached
 * takes "-p abc" as port 0; keeld says what is wrong instead).
 */
#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB (1024ull * 1024ull)

/* Long-only options get codes above any character. */
enum {
    OPT_ENGINE = 256,
    OPT_BACKEND,
    OPT_BUSY_POLL,
    OPT_EVICT,
    OPT_LOG,
    OPT_ADMIN,
    OPT_IDLE_TIMEOUT,
    OPT_DATA_DIR,
    OPT_HASH_POWER,
    OPT_SEG_SIZE,
    OPT_DIRECT,
    OPT_SYNC,
    OPT_SYNC_MS,
    OPT_LISTENER,
    OPT_SCHED_SLICE,
};

static const char short_opts[] = ":p:U:l:m:c:t:I:b:vAFD:u:hVo:";

static const struct option long_opts[] = {
    {"port", required_argument, NULL, 'p'},
    {"udp-port", required_argument, NULL, 'U'},
    {"listen", required_argument, NULL, 'l'},
    {"memory-limit", required_argument, NULL, 'm'},
    {"conn-limit", required_argument, NULL, 'c'},
    {"threads", required_argument, NULL, 't'},
    {"max-item-size", required_argument, NULL, 'I'},
    {"listen-backlog", required_argument, NULL, 'b'},
    {"verbose", no_argument, NULL, 'v'},
    {"enable-shutdown", no_argument, NULL, 'A'},
    {"disable-flush-all", no_argument, NULL, 'F'},
    {"user", required_argument, NULL, 'u'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"extended", required_argument, NULL, 'o'},
    {"engine", required_argument, NULL, OPT_ENGINE},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"busy-poll", no_argument, NULL, OPT_BUSY_POLL},
    {"evict", required_argument, NULL, OPT_EVICT},
    {"log", required_argument, NULL, OPT_LOG},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"sched-slice-us", required_argument, NULL, OPT_SCHED_SLICE},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"hash-power", required_argument, NULL, OPT_HASH_POWER},
    {"seg-size", required_argument, NULL, OPT_SEG_SIZE},
    {"direct", no_argument, NULL, OPT_DIRECT},
    {"sync", required_argument, NULL, OPT_SYNC},
    {"sync-ms", required_argument, NULL, OPT_SYNC_MS},
    {"listener", required_argument, NULL, OPT_LISTENER},
    {NULL, 0, NULL, 0},
};

/* memcached -o tunables of machinery keel does not have: accepted, ignored. */
static const char *const memcached_ignored[] = {
    "maxconns_fast",
    "no_maxconns_fast",
    "tail_repair_time",
    "hash_algorithm",
    "lru_crawler",
    "no_lru_crawler",
    "lru_crawler_sleep",
    "lru_crawler_tocrawl",
    "lru_maintainer",
    "no_lru_maintainer",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temporary_ttl",
    "slab_chunk_max",
    "slab_reassign",
    "slab_automove",
    "slab_automove_ratio",
    "slab_automove_window",
    "watcher_logbuf_size",
    "worker_logbuf_size",
    "read_buf_mem_limit",
    "track_sizes",
    "no_hashexpand",
    "modern",
    "no_modern",
    "lru_segmented",
    "no_lru_segmented",
    "inline_ascii_response",
    "no_inline_ascii_response",
};

static const char *const evict_policies[] = {"merge", "fifo", "cte", "random", "s3fifo"};

struct parse {
    struct keeld_options *o;
    char *err;
    size_t err_len;
    bool udp_set_nonzero;
};

__attribute__((format(printf, 2, 3))) static int bad(struct parse *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* A whole decimal number in [min, max]. */
static int parse_u64(struct parse *p, const char *what, const char *s, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return bad(p, "%s: '%s' is not a number", what, s ? s : "");
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return bad(p, "%s: '%s' is not a number", what, s);
    if (v < min || v > max)
        return bad(p, "%s: %llu is out of range (%llu to %llu)", what, v, (unsigned long long)min,
                   (unsigned long long)max);
    *out = v;
    return 0;
}

static int parse_u32(struct parse *p, const char *what, const char *s, uint32_t min, uint32_t max,
                     uint32_t *out)
{
    uint64_t v = 0;
    if (parse_u64(p, what, s, min, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* A byte size: digits with an optional k/K or m/M suffix, as memcached's -I. */
static int parse_size(struct parse *p, const char *what, const char *s, uint64_t min, uint64_t max,
                      uint64_t *out)
{
    char num[32];
    size_t len = s ? strlen(s) : 0;
    uint64_t scale = 1;
    if (len == 0 || len >= sizeof num)
        return bad(p, "%s: '%s' is not a size", what, s ? s : "");
    memcpy(num, s, len + 1);
    switch (num[len - 1]) {
    case 'k':
    case 'K':
        scale = 1024;
        num[--len] = '\0';
        break;
    case 'm':
    case 'M':
        scale = MB;
        num[--len] = '\0';
        break;
    default: break;
    }
    uint64_t v = 0;
    if (parse_u64(p, what, num, 0, UINT64_MAX / MB, &v) < 0)
        return bad(p, "%s: '%s' is not a size (bytes, or a number with k or m)", what, s);
    v *= scale;
    if (v < min || v > max)
        return bad(p, "%s: %s is out of range (%llu to %llu bytes)", what, s,
                   (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

static int copy_str(struct parse *p, const char *what, char *dst, size_t cap, const char *s)
{
    size_t len = strlen(s);
    if (len == 0)
        return bad(p, "%s: empty value", what);
    if (len >= cap)
        return bad(p, "%s: '%s' is too long (at most %zu bytes)", what, s, cap - 1);
    memcpy(dst, s, len + 1);
    return 0;
}

/* "PORT" after the last ':' of "ADDR:PORT" or "[V6]:PORT" must be a port. */
static int check_addr_port(struct parse *p, const char *what, const char *s, bool need_port)
{
    const char *colon = strrchr(s, ':');
    bool bracketed = s[0] == '[';
    if (bracketed) {
        const char *close = strchr(s, ']');
        if (close == NULL || close == s + 1)
            return bad(p, "%s: '%s' is not an address ([IPv6]:PORT)", what, s);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && colon == NULL)
            return bad(p, "%s: '%s' is not an address ([IPv6]:PORT)", what, s);
    } else if (colon != NULL && strchr(s, ':') != colon) {
        colon = NULL; /* a bare IPv6 address */
    }
    if (colon == NULL) {
        if (need_port)
            return bad(p, "%s: '%s' has no port (ADDR:PORT)", what, s);
        return 0;
    }
    if (colon == s)
        return bad(p, "%s: '%s' has no address", what, s);
    uint64_t port;
    char what_port[64];
    snprintf(what_port, sizeof what_port, "%s port", what);
    return parse_u64(p, what_port, colon + 1, 0, 65535, &port);
}

static int add_listen(struct parse *p, const char *arg)
{
    char buf[KEELD_MAX_LISTEN * KEELD_ADDR_BYTES];
    if (copy_str(p, "-l", buf, sizeof buf, arg) < 0)
        return -1;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (p->o->listen_count == KEELD_MAX_LISTEN)
            return bad(p, "-l: at most %d addresses", KEELD_MAX_LISTEN);
        if (check_addr_port(p, "-l", tok, false) < 0)
            return -1;
        if (copy_str(p, "-l", p->o->listen[p->o->listen_count], KEELD_ADDR_BYTES, tok) < 0)
            return -1;
        p->o->listen_count++;
    }
    if (p->o->listen_count == 0)
        return bad(p, "-l: no address in '%s'", arg);
    return 0;
}

static int set_engine(struct parse *p, const char *v)
{
    if (strcmp(v, "seg") == 0)
        p->o->engine = KEELD_ENGINE_SEG;
    else if (strcmp(v, "disk") == 0)
        p->o->engine = KEELD_ENGINE_DISK;
    else
        return bad(p, "--engine: '%s' is not an engine (seg, disk)", v);
    return 0;
}

static int set_backend(struct parse *p, const char *v)
{
    if (strcmp(v, "io_uring") == 0 || strcmp(v, "uring") == 0)
        p->o->backend = KEELD_BACKEND_URING;
    else if (strcmp(v, "epoll") == 0)
        p->o->backend = KEELD_BACKEND_EPOLL;
    else if (strcmp(v, "auto") == 0)
        p->o->backend = KEELD_BACKEND_AUTO;
    else
        return bad(p, "--backend: '%s' is not a backend (io_uring, epoll, auto)", v);
    return 0;
}

static int set_listener(struct parse *p, const char *v)
{
    if (strcmp(v, "reuseport") == 0)
        p->o->listener = KEELD_LISTENER_REUSEPORT;
    else if (strcmp(v, "handoff") == 0)
        p->o->listener = KEELD_LISTENER_HANDOFF;
    else
        return bad(p, "--listener: '%s' is not a listener mode (reuseport, handoff)", v);
    return 0;
}

static int set_evict(struct parse *p, const char *v)
{
    for (size_t i = 0; i < sizeof evict_policies / sizeof evict_policies[0]; i++)
        if (strcmp(v, evict_policies[i]) == 0)
            return copy_str(p, "--evict", p->o->evict, sizeof p->o->evict, v);
    return bad(p, "--evict: '%s' is not a policy (merge, fifo, cte, random, s3fifo)", v);
}

/* A long-only option or its -o spelling; `v` is NULL for a flag. */
static int set_keel_option(struct parse *p, int code, const char *name, const char *v)
{
    struct keeld_options *o = p->o;
    bool flag = code == OPT_BUSY_POLL || code == OPT_DIRECT;
    if (!flag && v == NULL)
        return bad(p, "%s needs a value", name);
    switch (code) {
    case OPT_ENGINE: return set_engine(p, v);
    case OPT_BACKEND: return set_backend(p, v);
    case OPT_LISTENER: return set_listener(p, v);
    case OPT_BUSY_POLL:
        if (v != NULL)
            return bad(p, "%s takes no value", name);
        o->busy_poll = true;
        return 0;
    case OPT_EVICT: return set_evict(p, v);
    case OPT_LOG: return copy_str(p, name, o->log_path, sizeof o->log_path, v);
    case OPT_ADMIN:
        if (check_addr_port(p, name, v, true) < 0)
            return -1;
        return copy_str(p, name, o->admin, sizeof o->admin, v);
    case OPT_IDLE_TIMEOUT: return parse_u32(p, name, v, 0, 365u * 24 * 3600, &o->idle_timeout_s);
    case OPT_DATA_DIR: return copy_str(p, name, o->data_dir, sizeof o->data_dir, v);
    case OPT_DIRECT:
        if (v != NULL)
            return bad(p, "%s takes no value", name);
        o->direct = o->disk_opt_set = true;
        return 0;
    case OPT_SYNC:
        o->disk_opt_set = true;
        if (strcmp(v, "batch") == 0)
            o->sync = KEELD_SYNC_BATCH;
        else if (strcmp(v, "always") == 0)
            o->sync = KEELD_SYNC_ALWAYS;
        else if (strcmp(v, "none") == 0)
            o->sync = KEELD_SYNC_NONE;
        else
            return bad(p, "%s: '%s' is not a sync mode (always, batch, none)", name, v);
        return 0;
    case OPT_SYNC_MS: o->disk_opt_set = true; return parse_u32(p, name, v, 1, 60000, &o->sync_ms);
    case OPT_HASH_POWER: return parse_u32(p, name, v, 16, 32, &o->hash_power);
    case OPT_SCHED_SLICE:
        if (parse_u32(p, name, v, 0, 100000, &o->sched_slice_us) < 0)
            return -1;
        if (o->sched_slice_us != 0 && o->sched_slice_us < 100)
            return bad(p, "%s: 0 (the kernel's default) or 100 to 100000 microseconds", name);
        return 0;
    case OPT_SEG_SIZE: {
        uint64_t bytes;
        if (parse_size(p, name, v, 64 * 1024, 1024 * MB, &bytes) < 0)
            return -1;
        o->seg_size = (uint32_t)bytes;
        return 0;
    }
    default: return bad(p, "internal: option code %d", code);
    }
}

/* One NAME[=VALUE] of -o. */
static int set_extended(struct parse *p, char *item)
{
    char *eq = strchr(item, '=');
    const char *value = NULL;
    if (eq != NULL) {
        *eq = '\0';
        value = eq + 1;
    }
    /* memcached's names for what keel has */
    if (strcmp(item, "hashpower") == 0)
        return set_keel_option(p, OPT_HASH_POWER, "-o hashpower", value);
    if (strcmp(item, "idle_timeout") == 0)
        return set_keel_option(p, OPT_IDLE_TIMEOUT, "-o idle_timeout", value);
    /* keel's own, with '-' or '_' */
    for (const struct option *lo = long_opts; lo->name; lo++) {
        if (lo->val < OPT_ENGINE)
            continue;
        char under[32];
        snprintf(under, sizeof under, "%s", lo->name);
        for (char *c = under; *c; c++)
            if (*c == '-')
                *c = '_';
        if (strcmp(item, lo->name) == 0 || strcmp(item, under) == 0) {
            char what[48];
            snprintf(what, sizeof what, "-o %s", item);
            return set_keel_option(p, lo->val, what, value);
        }
    }
    for (size_t i = 0; i < sizeof memcached_ignored / sizeof memcached_ignored[0]; i++) {
        if (strcmp(item, memcached_ignored[i]) != 0)
            continue;
        if (p->o->ignored_count < KEELD_IGNORED_MAX)
            snprintf(p->o->ignored[p->o->ignored_count++], sizeof p->o->ignored[0], "%s", item);
        return 0;
    }
    return bad(p, "-o: unknown option '%s'", item);
}

static int parse_extended(struct parse *p, const char *arg)
{
    char buf[KEELD_PATH_BYTES + 64];
    if (copy_str(p, "-o", buf, sizeof buf, arg) < 0)
        return -1;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (set_extended(p, tok) < 0)
            return -1;
    return 0;
}

static int apply(struct parse *p, int c, const char *arg, enum keeld_parse_result *early)
{
    struct keeld_options *o = p->o;
    uint64_t v = 0;
    switch (c) {
    case 'p':
        if (parse_u64(p, "-p", arg, 0, 65535, &v) < 0)
            return -1;
        o->port = (uint16_t)v;
        return 0;
    case 'U':
        if (parse_u64(p, "-U", arg, 0, 65535, &v) < 0)
            return -1;
        p->udp_set_nonzero = v != 0;
        return 0;
    case 'l': return add_listen(p, arg);
    case 'm':
        if (parse_u64(p, "-m", arg, 1, 1024 * 1024, &v) < 0) /* up to 1 TiB */
            return -1;
        o->memory_bytes = v * MB;
        return 0;
    case 'c': return parse_u32(p, "-c", arg, 1, 10 * 1000 * 1000, &o->max_conns);
    case 't': return parse_u32(p, "-t", arg, 1, 256, &o->threads);
    case 'I':
        if (parse_size(p, "-I", arg, 1024, 1024 * MB, &v) < 0)
            return -1;
        o->max_item_size = (uint32_t)v;
        return 0;
    case 'b': return parse_u32(p, "-b", arg, 1, 65535, &o->backlog);
    case 'v': o->verbose++; return 0;
    case 'A': o->allow_shutdown = true; return 0;
    case 'F': o->disable_flush_all = true; return 0;
    case 'D':
        if (arg[0] == '\0')
            return bad(p, "-D takes a character (the key prefix delimiter)");
        o->prefix_delimiter = arg[0]; /* as memcached: the first character of the word */
        o->detail_on = true;          /* as memcached: -D turns the per-prefix stats on */
        return 0;
    case 'u': return copy_str(p, "-u", o->user, sizeof o->user, arg);
    case 'h': *early = KEELD_HELP; return 0;
    case 'V': *early = KEELD_VERSION; return 0;
    case 'o': return parse_extended(p, arg);
    default:
        for (const struct option *lo = long_opts; lo->name; lo++)
            if (lo->val == c) {
                char what[48];
                snprintf(what, sizeof what, "--%s", lo->name);
                return set_keel_option(p, c, what, arg);
            }
        return bad(p, "internal: option code %d", c);
    }
}

/* Checks that need every option. */
static int check_whole(struct parse *p)
{
    struct keeld_options *o = p->o;
    if (p->udp_set_nonzero)
        return bad(p, "-U: keeld does not serve UDP; only -U 0 is accepted");
    if (o->max_item_size > o->memory_bytes / 2)
        return bad(p, "-I: the item size limit cannot be more than half of -m");
    if (o->engine == KEELD_ENGINE_DISK && o->data_dir[0] == '\0')
        return bad(p, "--engine disk needs --data-dir DIR");
    if (o->engine != KEELD_ENGINE_DISK && o->data_dir[0] != '\0')
        return bad(p, "--data-dir is for --engine disk");
    if (o->evict[0] != '\0' && o->engine != KEELD_ENGINE_SEG)
        return bad(p, "--evict is for --engine seg");
    if (o->disk_opt_set && o->engine != KEELD_ENGINE_DISK)
        return bad(p, "--direct, --sync and --sync-ms are for --engine disk");
    return 0;
}

void keeld_options_defaults(struct keeld_options *o, unsigned cores)
{
    memset(o, 0, sizeof *o);
    o->port = KEELD_DEFAULT_PORT;
    o->memory_bytes = 64 * MB;
    o->max_conns = 1024;
    o->threads = cores == 0 ? 1 : cores < 4 ? cores : 4;
    o->max_item_size = 1024 * 1024;
    o->backlog = 1024;
    o->prefix_delimiter = ':';
    o->engine = KEELD_ENGINE_SEG;
    o->backend = KEELD_BACKEND_AUTO;
}

enum keeld_parse_result keeld_options_parse(struct keeld_options *o, int argc, char **argv,
                                            char *err, size_t err_len)
{
    struct parse p = {.o = o, .err = err, .err_len = err_len};
    enum keeld_parse_result early = KEELD_RUN;
    if (err_len > 0)
        err[0] = '\0';
    opterr = 0;
    optind = 0; /* GNU: 0 also resets getopt's internal state */
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, short_opts, long_opts, &idx);
        if (c == -1)
            break;
        if (c == '?') {
            if (optopt != 0)
                bad(&p, "unknown option -%c", optopt);
            else
                bad(&p, "unknown option %s", argv[optind - 1]);
            return KEELD_BAD;
        }
        if (c == ':') {
            if (optopt != 0 && optopt < 256)
                bad(&p, "option -%c needs a value", optopt);
            else
                bad(&p, "option %s needs a value", argv[optind - 1]);
            return KEELD_BAD;
        }
        if (apply(&p, c, optarg, &early) < 0)
            return KEELD_BAD;
    }
    if (optind < argc) {
        bad(&p, "unexpected argument '%s'", argv[optind]);
        return KEELD_BAD;
    }
    if (early != KEELD_RUN)
        return early;
    if (o->listen_count == 0) {
        memcpy(o->listen[0], "127.0.0.1", sizeof "127.0.0.1");
        o->listen_count = 1;
    }
    if (check_whole(&p) < 0)
        return KEELD_BAD;
    return KEELD_RUN;
}

const char *keeld_engine_name(enum keeld_engine e)
{
    return e == KEELD_ENGINE_DISK ? "disk" : "seg";
}

const char *keeld_listener_name(enum keeld_listener l)
{
    return l == KEELD_LISTENER_HANDOFF ? "handoff" : "reuseport";
}

const char *keeld_backend_name(enum keeld_backend b)
{
    switch (b) {
    case KEELD_BACKEND_URING: return "io_uring";
    case KEELD_BACKEND_EPOLL: return "epoll";
    default: return "auto";
    }
}

const char *keeld_usage(void)
{
    return "usage: keeld [options]\n"
           "A memcached-compatible cache server. It runs in the foreground; stop it with\n"
           "SIGTERM or SIGINT (requests in flight finish), SIGHUP reopens the log.\n"
           "\n"
           "memcached's options:\n"
           "  -p, --port=NUM            TCP port to listen on (default: 11211; 0 picks a free "
           "one)\n"
           "  -l, --listen=ADDR[,ADDR]  addresses to listen on, each ADDR or ADDR:PORT\n"
           "                            (default: 127.0.0.1; repeatable)\n"
           "  -U, --udp-port=0          UDP is not offered; only 0 is accepted\n"
           "  -m, --memory-limit=MB     item memory in megabytes (default: 64)\n"
           "  -c, --conn-limit=NUM      max simultaneous connections (default: 1024)\n"
           "  -t, --threads=NUM         worker threads (default: 4, at most the core count)\n"
           "  -I, --max-item-size=SIZE  largest value, bytes or with k/m (default: 1m,\n"
           "                            min: 1k, max: 1024m, at most half of -m)\n"
           "  -b, --listen-backlog=NUM  listen backlog (default: 1024)\n"
           "  -A, --enable-shutdown     allow the \"shutdown\" command\n"
           "  -F, --disable-flush-all   refuse \"flush_all\"\n"
           "  -D CHAR                   key prefix delimiter of the per-prefix stats (default:\n"
           "                            ':'); giving it turns them on (\"stats detail on\")\n"
           "  -u, --user=USER           drop privileges to USER (as root without -u keeld warns)\n"
           "  -v, --verbose             log errors and warnings; -vv also every command\n"
           "  -o, --extended=LIST       comma-separated NAME[=VALUE]: hashpower=N,\n"
           "                            idle_timeout=S, or any keel option below by its name\n"
           "                            (memcached's slab and LRU tunables are accepted and\n"
           "                            ignored, with a warning)\n"
           "  -h, --help                print this help and exit\n"
           "  -V, --version             print the version and exit\n"
           "\n"
           "keel's options:\n"
           "  --engine=seg|disk         storage engine (default: seg, in memory)\n"
           "  --data-dir=DIR            where --engine disk keeps its files (required with it)\n"
           "  --direct                  disk: O_DIRECT reads and writes of the data files\n"
           "                            (default: buffered)\n"
           "  --sync=always|batch|none  disk: a store returns once durable (always), or data\n"
           "                            is synced every --sync-ms (batch, the default), or\n"
           "                            when the kernel writes back (none)\n"
           "  --sync-ms=N               disk: the batch interval in ms (default: 10)\n"
           "  --evict=POLICY            seg eviction: merge (default), fifo, cte, random, s3fifo\n"
           "  --seg-size=SIZE           seg segment size (default: 1m)\n"
           "  --hash-power=N            hash table of 2^N slots (default: sized from -m)\n"
           "  --backend=io_uring|epoll  I/O backend (default: io_uring where the kernel allows)\n"
           "  --busy-poll               never block in the kernel (burns a core per thread)\n"
           "  --listener=MODE           how connections reach the threads: reuseport (default:\n"
           "                            a listening socket per thread, the kernel spreads\n"
           "                            them) or handoff (one acceptor on thread 0 deals them\n"
           "                            round-robin)\n"
           "  --idle-timeout=S          close connections idle for S seconds (default: 0, never)\n"
           "  --sched-slice-us=N        ask the kernel for an N us scheduler slice for the worker\n"
           "                            threads (Linux 6.12+): a woken worker preempts a busy\n"
           "                            thread sooner (100-100000; default: 0, the kernel's)\n"
           "  --log=PATH                keel's log (default: $KEEL_LOG or /tmp/keel.log)\n"
           "  --admin=ADDR:PORT         serve /metrics (Prometheus) and /health over HTTP\n"
           "\n"
           "Exit status: 0 after a clean stop, 1 on a start-up failure, 2 on bad usage.\n";
}
